//! The state that events fold into: pools, app clients, users and sign-in sessions, plus
//! the read (`View`) and write (`Projections`) interfaces the store implements over its
//! tables, so `decide` and `evolve` stay pure.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use crate::Millis;
use crate::policy::PasswordPolicy;
use crate::schema::AttributeDef;

/// A pool's RS256 signing key, private half sealed with the master key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedKey {
    pub kid: String,
    pub sealed_pkcs8: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Pool {
    pub id: String,
    pub name: String,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub schema: Vec<AttributeDef>,
    pub username_attributes: Vec<String>,
    pub alias_attributes: Vec<String>,
    pub case_sensitive: bool,
    pub auto_verified_attributes: Vec<String>,
    pub password_policy: PasswordPolicy,
    pub mfa_configuration: String,
    pub deletion_protection: bool,
    /// Trigger name (`PreSignUp`, …) to the configured ARN-shaped value.
    pub lambda_config: BTreeMap<String, String>,
    /// Settings the daemon stores and returns but whose rules live outside the domain
    /// (message templates, admin-create-user config, recovery, tags, …), by wire name.
    pub settings: BTreeMap<String, serde_json::Value>,
    pub keys: Vec<SealedKey>,
    /// Its domains (CreateUserPoolDomain): at most one prefix and one custom domain.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub domains: Vec<PoolDomain>,
    /// Resource servers by identifier, with their custom scopes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub resource_servers: BTreeMap<String, ResourceServer>,
}

/// A user pool domain: a prefix (served as `<prefix>.<domain suffix>`) or a custom
/// domain name (with the certificate ARN Cognito requires for one).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PoolDomain {
    pub domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate_arn: Option<String>,
    pub managed_login_version: i64,
    pub created_at: Millis,
}

impl PoolDomain {
    pub fn is_custom(&self) -> bool {
        self.certificate_arn.is_some()
    }
}

/// An OAuth 2.0 resource server of a pool: its scopes are `<identifier>/<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceServer {
    pub identifier: String,
    pub name: String,
    /// (scope name, description), in the order given.
    pub scopes: Vec<(String, String)>,
}

/// Classic hosted UI branding (SetUICustomization) of a pool (`client_id` absent: the
/// `ALL` default) or of one app client, which overrides the pool's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UiCustomization {
    pub pool_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub css: Option<String>,
    /// Changes with the CSS and the logo: the version in the stylesheet's URL.
    pub css_version: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo: Option<Logo>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// An image as stored: its media type and its bytes in base64, as the wire carries them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Logo {
    pub content_type: String,
    pub base64: String,
}

/// A managed login branding style (CreateManagedLoginBranding), one per app client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManagedLoginBranding {
    /// A UUID.
    pub id: String,
    pub pool_id: String,
    pub client_id: String,
    pub use_cognito_provided_values: bool,
    /// The settings document exactly as given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub settings: Option<serde_json::Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub assets: Vec<BrandingAsset>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// One image of a managed login style: its role (`FORM_LOGO`, `PAGE_BACKGROUND`, …), the
/// display mode (`LIGHT`, `DARK`, `DYNAMIC`), the file type and the base64 bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrandingAsset {
    pub category: String,
    pub color_mode: String,
    pub extension: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resource_id: Option<String>,
}

impl ManagedLoginBranding {
    /// The asset of a category, light or browser-adaptive mode first (the pages have no
    /// dark mode).
    pub fn asset(&self, category: &str) -> Option<&BrandingAsset> {
        let of = |mode: &str| {
            self.assets
                .iter()
                .find(|a| a.category == category && a.color_mode == mode && a.bytes.is_some())
        };
        of("LIGHT").or_else(|| of("DYNAMIC")).or_else(|| of("DARK"))
    }
}

/// Resource servers per pool, as Cognito's quota.
pub const MAX_RESOURCE_SERVERS: usize = 25;
/// Custom scopes per resource server, as Cognito's quota.
pub const MAX_RESOURCE_SERVER_SCOPES: usize = 100;

impl Pool {
    /// The key under which usernames and alias values are unique.
    pub fn fold(&self, value: &str) -> String {
        if self.case_sensitive {
            value.to_owned()
        } else {
            value.to_lowercase()
        }
    }

    /// Whether usernames are generated (sign-up by email or phone as username).
    pub fn uses_username_attributes(&self) -> bool {
        !self.username_attributes.is_empty()
    }

    /// Attribute values a user can sign in with besides the username, each unique per pool.
    /// Emails and phone numbers count as aliases only once verified, as in Cognito.
    pub fn sign_in_keys(&self, user: &User) -> Vec<(String, String)> {
        let mut keys = Vec::new();
        for attr in &self.username_attributes {
            if let Some(v) = user.attributes.get(attr).filter(|v| !v.is_empty()) {
                keys.push((attr.clone(), self.fold(v)));
            }
        }
        for attr in &self.alias_attributes {
            let Some(v) = user.attributes.get(attr).filter(|v| !v.is_empty()) else {
                continue;
            };
            let active = match attr.as_str() {
                "email" => user.attr_true("email_verified"),
                "phone_number" => user.attr_true("phone_number_verified"),
                _ => true,
            };
            if active {
                keys.push((attr.clone(), self.fold(v)));
            }
        }
        keys
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum TimeUnit {
    Seconds,
    Minutes,
    Hours,
    Days,
}

impl TimeUnit {
    pub fn seconds(self, n: i64) -> i64 {
        match self {
            TimeUnit::Seconds => n,
            TimeUnit::Minutes => n * 60,
            TimeUnit::Hours => n * 3600,
            TimeUnit::Days => n * 86400,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Client {
    pub id: String,
    pub pool_id: String,
    pub name: String,
    /// Client secret sealed with the master key (Cognito returns it on describe).
    pub secret_sealed: Option<String>,
    pub explicit_auth_flows: Vec<String>,
    pub access_token_validity: i64,
    pub id_token_validity: i64,
    pub refresh_token_validity: i64,
    pub access_token_unit: TimeUnit,
    pub id_token_unit: TimeUnit,
    pub refresh_token_unit: TimeUnit,
    /// Whether the caller gave `TokenValidityUnits` (echoed back only then).
    pub units_given: bool,
    pub read_attributes: Option<Vec<String>>,
    pub write_attributes: Option<Vec<String>>,
    pub prevent_user_existence_errors: bool,
    pub enable_token_revocation: bool,
    pub auth_session_validity_minutes: i64,
    /// Refresh-token rotation (GetTokensFromRefreshToken): on, and the old token's grace period.
    pub refresh_rotation: bool,
    pub retry_grace_period_seconds: i64,
    pub settings: BTreeMap<String, serde_json::Value>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

impl Client {
    pub fn allows(&self, flow: &str) -> bool {
        self.explicit_auth_flows.iter().any(|f| f == flow)
    }
    pub fn access_seconds(&self) -> i64 {
        self.access_token_unit.seconds(self.access_token_validity)
    }
    pub fn id_seconds(&self) -> i64 {
        self.id_token_unit.seconds(self.id_token_validity)
    }
    pub fn refresh_seconds(&self) -> i64 {
        self.refresh_token_unit.seconds(self.refresh_token_validity)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UserStatus {
    #[default]
    Unconfirmed,
    Confirmed,
    ForceChangePassword,
    ResetRequired,
    Archived,
    Compromised,
    ExternalProvider,
}

impl UserStatus {
    pub fn name(self) -> &'static str {
        match self {
            UserStatus::Unconfirmed => "UNCONFIRMED",
            UserStatus::Confirmed => "CONFIRMED",
            UserStatus::ForceChangePassword => "FORCE_CHANGE_PASSWORD",
            UserStatus::ResetRequired => "RESET_REQUIRED",
            UserStatus::Archived => "ARCHIVED",
            UserStatus::Compromised => "COMPROMISED",
            UserStatus::ExternalProvider => "EXTERNAL_PROVIDER",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum CodePurpose {
    SignUp,
    ForgotPassword,
    VerifyAttribute,
    /// A sign-in challenge code (SMS_MFA, EMAIL_OTP).
    Mfa,
}

/// A code sent to the user, kept only as a keyed hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingCode {
    pub purpose: CodePurpose,
    pub hash: String,
    pub expires_at: Millis,
    pub failed_attempts: u32,
    /// The attribute a verification code is for (`email`, `phone_number`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribute: Option<String>,
    /// Keyed hash of the address or number a verification code was sent to: the code
    /// verifies that value only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// A user's MFA factors and preference.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MfaSettings {
    /// TOTP secret sealed with the master key, once associated.
    pub totp_secret: Option<String>,
    pub totp_verified: bool,
    /// Last accepted TOTP time step: a code is accepted once.
    pub totp_last_step: u64,
    pub totp_enabled: bool,
    pub sms_enabled: bool,
    pub email_enabled: bool,
    /// `SOFTWARE_TOKEN_MFA`, `SMS_MFA` or `EMAIL_OTP`.
    pub preferred: Option<String>,
}

impl MfaSettings {
    /// Enabled factors, in Cognito's names.
    pub fn enabled(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.sms_enabled {
            v.push("SMS_MFA");
        }
        if self.totp_enabled && self.totp_verified {
            v.push("SOFTWARE_TOKEN_MFA");
        }
        if self.email_enabled {
            v.push("EMAIL_OTP");
        }
        v
    }
}

/// A group of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub pool_id: String,
    pub name: String,
    pub description: Option<String>,
    pub role_arn: Option<String>,
    pub precedence: Option<i64>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// What SRP sign-in (USER_SRP_AUTH) checks instead of the password: the salt and the
/// verifier `g^x mod N`, derived whenever a password is set. The verifier allows an offline
/// guess of the password like a hash does, so it is kept sealed with the master key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SrpVerifier {
    /// Hex.
    pub salt: String,
    /// The verifier's bytes, sealed.
    pub verifier: String,
}

/// A device the user asked to track (ConfirmDevice), with the SRP verifier of its secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Device {
    pub key: String,
    pub group_key: String,
    pub name: Option<String>,
    /// `remembered` or `not_remembered`, as DeviceRememberedStatus says it.
    pub remembered: bool,
    pub srp: SrpVerifier,
    pub created_at: Millis,
    pub updated_at: Millis,
    #[serde(default)]
    pub last_authenticated_at: Millis,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct User {
    pub username: String,
    pub sub: String,
    pub attributes: BTreeMap<String, String>,
    pub status: UserStatus,
    pub enabled: bool,
    pub password_hash: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
    pub code: Option<PendingCode>,
    /// Bumped by a global sign-out: sessions of older generations are dead.
    pub generation: u64,
    #[serde(default)]
    pub mfa: MfaSettings,
    /// Code of a pending SMS_MFA / EMAIL_OTP challenge.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_code: Option<PendingCode>,
    /// Consecutive failed sign-ins and the lockout they caused.
    #[serde(default)]
    pub failed_sign_ins: u32,
    #[serde(default)]
    pub locked_until: Millis,
    /// When codes were last sent, for the per-user limit. Written before limits were
    /// kept per purpose; no longer counted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub code_sends: Vec<Millis>,
    /// When codes were last sent, by purpose (`CodePurpose` as in `code_purpose_key`): a
    /// limit per purpose, so that a flood of ForgotPassword calls cannot block the user's
    /// sign-up, verification or sign-in codes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub code_sends_by_purpose: BTreeMap<String, Vec<Millis>>,
    /// A temporary password stops working at this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub temporary_password_expires_at: Option<Millis>,
    /// New email or phone values waiting for verification while the old verified value
    /// stays active (UserAttributeUpdateSettings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub pending_attributes: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub groups: std::collections::BTreeSet<String>,
    /// Legacy MFAOptions of SetUserSettings.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mfa_options: Vec<(String, String)>,
    /// Salt and verifier of the current password for SRP; absent for passwords set before
    /// cognate derived them and for users without a password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub srp: Option<SrpVerifier>,
    /// Tracked devices by device key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub devices: BTreeMap<String, Device>,
    /// Sign-in challenge sessions answered so far, by session id, kept until they expire
    /// so that a session is good for one answer (or a few wrong MFA codes) only.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub answered_challenges: BTreeMap<String, AnsweredChallenge>,
}

/// What is known of one challenge session after it has been answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnsweredChallenge {
    pub expires_at: Millis,
    /// Wrong answers given with it.
    pub failures: u32,
    /// No further answer is accepted.
    pub spent: bool,
}

/// The key of a purpose in `User::code_sends_by_purpose`.
pub fn code_purpose_key(p: CodePurpose) -> &'static str {
    match p {
        CodePurpose::SignUp => "sign_up",
        CodePurpose::ForgotPassword => "forgot_password",
        CodePurpose::VerifyAttribute => "verify_attribute",
        CodePurpose::Mfa => "mfa",
    }
}

impl User {
    pub fn attr_true(&self, name: &str) -> bool {
        self.attributes.get(name).is_some_and(|v| v == "true")
    }
}

/// One sign-in: the refresh token (by hash) and the `origin_jti` of its tokens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub origin_jti: String,
    pub pool_id: String,
    pub username_key: String,
    pub sub: String,
    pub client_id: String,
    pub refresh_hash: String,
    /// The replaced refresh token still accepted until `previous_until` (rotation grace).
    pub previous_hash: Option<String>,
    pub previous_until: Millis,
    pub auth_time: Millis,
    pub created_at: Millis,
    pub expires_at: Millis,
    pub generation: u64,
    pub revoked: bool,
    /// OAuth scopes granted to a session opened through the pool's domain (hosted pages,
    /// `/oauth2/authorize`), reissued on refresh; `None` for sessions of the JSON API,
    /// whose access tokens carry `aws.cognito.signin.user.admin` only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
}

/// Reads of current state, implemented by the store inside its transactions.
pub trait View {
    type Error;
    fn pool(&self, id: &str) -> Result<Option<Pool>, Self::Error>;
    fn client(&self, id: &str) -> Result<Option<Client>, Self::Error>;
    /// By the folded username key.
    fn user(&self, pool: &str, username_key: &str) -> Result<Option<User>, Self::Error>;
    /// The username key owning a sign-in attribute value (folded).
    fn alias_owner(
        &self,
        pool: &str,
        attr: &str,
        value_key: &str,
    ) -> Result<Option<String>, Self::Error>;
    fn session(&self, origin_jti: &str) -> Result<Option<Session>, Self::Error>;
    /// The `origin_jti` of the session a refresh-token hash belongs to.
    fn session_by_refresh(&self, refresh_hash: &str) -> Result<Option<String>, Self::Error>;
    fn group(&self, pool: &str, name: &str) -> Result<Option<Group>, Self::Error>;
    /// Username keys of a group's members.
    fn group_members(&self, pool: &str, name: &str) -> Result<Vec<String>, Self::Error>;
    /// The pool that owns a domain (prefix or custom name), if any.
    fn pool_by_domain(&self, domain: &str) -> Result<Option<String>, Self::Error>;
    /// The classic hosted UI branding of a client, or of the pool (`None`, `ALL`).
    fn ui_customization(
        &self,
        pool: &str,
        client: Option<&str>,
    ) -> Result<Option<UiCustomization>, Self::Error>;
    /// The managed login branding style of a client.
    fn managed_login_branding(
        &self,
        pool: &str,
        client: &str,
    ) -> Result<Option<ManagedLoginBranding>, Self::Error>;
    /// The managed login branding styles of a pool.
    fn managed_login_brandings(&self, pool: &str)
    -> Result<Vec<ManagedLoginBranding>, Self::Error>;
    /// Up to `max` sessions that expired before `before`, soonest first, as
    /// (pool id, origin jti).
    fn expired_sessions(
        &self,
        before: Millis,
        max: usize,
    ) -> Result<Vec<(String, String)>, Self::Error>;
}

/// Writes of projected state; `put_user` keeps the sign-in indexes in step.
pub trait Projections: View {
    fn put_pool(&mut self, pool: &Pool) -> Result<(), Self::Error>;
    /// Removes the pool with its clients, users and indexes.
    fn delete_pool(&mut self, id: &str) -> Result<(), Self::Error>;
    fn put_client(&mut self, client: &Client) -> Result<(), Self::Error>;
    fn delete_client(&mut self, id: &str) -> Result<(), Self::Error>;
    fn put_user(&mut self, pool: &Pool, user: &User) -> Result<(), Self::Error>;
    fn delete_user(&mut self, pool: &Pool, user: &User) -> Result<(), Self::Error>;
    fn put_session(&mut self, session: &Session) -> Result<(), Self::Error>;
    /// Removes a session with its refresh-token entries (nothing if it is gone).
    fn drop_session(&mut self, origin_jti: &str) -> Result<(), Self::Error>;
    fn put_group(&mut self, group: &Group) -> Result<(), Self::Error>;
    fn delete_group(&mut self, pool: &str, name: &str) -> Result<(), Self::Error>;
    fn put_ui_customization(&mut self, c: &UiCustomization) -> Result<(), Self::Error>;
    fn put_managed_login_branding(&mut self, b: &ManagedLoginBranding) -> Result<(), Self::Error>;
    fn delete_managed_login_branding(
        &mut self,
        pool: &str,
        client: &str,
    ) -> Result<(), Self::Error>;
}
