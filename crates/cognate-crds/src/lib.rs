//! The `UserPool` and `AppClient` custom resources (group `cognate.io`, `v1alpha1`):
//! Rust types from which the CRD YAML in `crds/` and in the Helm chart is generated, with
//! the CEL rules that make the API server refuse edits of what Cognito never lets change
//! (DESIGN.md §5). The operator enforces the same rules again, because CEL can be bypassed
//! (an older CRD, a direct etcd write, a cluster without transition rules).

// `printcolumn(.., type_ = "string", ..)` repeats keys clippy reads as duplicated attributes.
#![allow(clippy::duplicated_attributes)]

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use kube::core::cel::ValidationErrors;

/// API group of both kinds.
pub const GROUP: &str = "cognate.io";
/// The one served version.
pub const VERSION: &str = "v1alpha1";

/// Cognito's standard attribute names: everything else in a schema is custom.
pub const STANDARD_ATTRIBUTES: &[&str] = &[
    "sub",
    "name",
    "given_name",
    "family_name",
    "middle_name",
    "nickname",
    "preferred_username",
    "profile",
    "picture",
    "website",
    "email",
    "email_verified",
    "gender",
    "birthdate",
    "zoneinfo",
    "locale",
    "phone_number",
    "phone_number_verified",
    "address",
    "updated_at",
    "identities",
];

// ---------------------------------------------------------------- UserPool

/// A Cognito-compatible user pool in a cognate daemon.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cognate.io",
    version = "v1alpha1",
    kind = "UserPool",
    namespaced,
    status = "UserPoolStatus",
    shortname = "up",
    category = "cognate",
    cel,
    doc = "A user pool in a cognate daemon, reconciled through its Cognito admin API.",
    printcolumn(name = "Pool", type_ = "string", json_path = ".status.poolId"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(
    "size(self.usernameAttributes) == 0 || size(self.aliasAttributes) == 0"
).message("usernameAttributes and aliasAttributes are mutually exclusive"))]
#[serde(rename_all = "camelCase")]
pub struct UserPoolSpec {
    /// Pool name in the daemon (mutable); defaults to `<namespace>-<name>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub pool_name: Option<String>,

    /// Which daemon holds the pool. Defaults to the daemon the operator was installed with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub daemon: Option<DaemonRef>,

    /// What happens to the pool in the daemon when this resource is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,

    /// When true the daemon refuses to delete the pool, also for `deletionPolicy: Delete`.
    #[serde(default)]
    pub deletion_protection: bool,

    /// Attribute schema: standard attributes to adjust and custom attributes to add.
    /// Existing entries are immutable; new, non-required custom attributes may be appended.
    #[serde(default)]
    #[schemars(length(max = 70))]
    #[x_kube(validation = Rule::new(
        "oldSelf.all(o, self.exists(n, n == o))"
    ).message("spec.schema: existing attributes are immutable (type, required, mutable, developerOnly and constraints cannot change, and attributes cannot be removed); only new custom attributes can be added"))]
    #[x_kube(validation = Rule::new(
        "self.all(n, oldSelf.exists(o, o.name == n.name) || (!n.required && !(n.name in ['sub','name','given_name','family_name','middle_name','nickname','preferred_username','profile','picture','website','email','email_verified','gender','birthdate','zoneinfo','locale','phone_number','phone_number_verified','address','updated_at','identities'])))"
    ).message("spec.schema: attributes added after creation must be custom and not required"))]
    pub schema: Vec<SchemaAttribute>,

    /// Attributes users sign in with instead of a username (immutable).
    #[serde(default)]
    #[schemars(length(max = 2))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.usernameAttributes is immutable"))]
    pub username_attributes: Vec<UsernameAttribute>,

    /// Attributes users may sign in with besides their username (immutable).
    #[serde(default)]
    #[schemars(length(max = 3))]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.aliasAttributes is immutable"))]
    pub alias_attributes: Vec<AliasAttribute>,

    /// Whether usernames are case sensitive (immutable).
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.caseSensitive is immutable"))]
    pub case_sensitive: bool,

    /// Password rules.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_policy: Option<PasswordPolicy>,

    /// Multi-factor authentication.
    #[serde(default)]
    pub mfa: MfaConfiguration,

    /// Attributes verified by a code at sign-up.
    #[serde(default)]
    #[schemars(length(max = 2))]
    pub auto_verified_attributes: Vec<VerifiedAttribute>,

    /// Verification message (sign-up codes or links).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verification_message: Option<VerificationMessage>,

    /// Invitation message for users created by an administrator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invitation: Option<Invitation>,

    /// Workflow triggers, answered by NATS workers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub triggers: Option<Triggers>,

    /// Token validity that this pool's AppClients use unless they set their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_defaults: Option<TokenValidity>,

    /// Tags on the pool. Keys starting with `cognate.io/` are reserved.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,

    /// The pool's domain, which makes it an OAuth 2.0 / OpenID provider (sign-in by
    /// redirect, token endpoint). Removing it deletes the domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<PoolDomain>,

    /// OAuth 2.0 resource servers with their custom scopes (`<identifier>/<scope>`);
    /// one removed from the list is deleted from the pool.
    #[serde(default)]
    #[schemars(length(max = 25))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["identifier"]))]
    pub resource_servers: Vec<ResourceServer>,
}

/// A user pool domain: exactly one of a prefix (served as `<prefix>.<domain suffix>`)
/// and a custom domain with its certificate, as in Cognito. Either is also served under
/// `<public-url>/domains/<domain>/`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[x_kube(validation = Rule::new("has(self.prefix) != has(self.customDomain)")
    .message("spec.domain needs exactly one of prefix and customDomain"))]
#[serde(rename_all = "camelCase")]
pub struct PoolDomain {
    /// Lowercase letters, digits and hyphens (not at either end), without the reserved
    /// words `aws`, `amazon` and `cognito`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9](?:[a-z0-9\-]{0,61}[a-z0-9])?$")
    )]
    #[x_kube(validation = Rule::new(
        "!self.contains('aws') && !self.contains('amazon') && !self.contains('cognito')"
    ).message("spec.domain.prefix cannot contain the reserved words aws, amazon or cognito"))]
    pub prefix: Option<String>,
    /// A domain of your own, such as `auth.example.com`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom_domain: Option<CustomDomain>,
    /// 1: the classic hosted UI; 2: managed login.
    #[serde(default = "one")]
    #[schemars(range(min = 1, max = 2))]
    pub managed_login_version: u8,
}

fn one() -> u8 {
    1
}

impl PoolDomain {
    /// The domain's name in the daemon: the prefix, or the custom domain's host name.
    pub fn name(&self) -> Option<&str> {
        self.prefix
            .as_deref()
            .or(self.custom_domain.as_ref().map(|c| c.domain.as_str()))
    }
}

/// A custom domain. Cognito requires a certificate (an ACM ARN) for it; cognate keeps
/// the ARN and serves the domain with the daemon's own TLS settings.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CustomDomain {
    /// A host name of at least two lowercase labels.
    #[schemars(
        length(min = 3, max = 253),
        regex(
            pattern = r"^([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$"
        )
    )]
    pub domain: String,
    /// `arn:aws:acm:<region>:<account>:certificate/<id>`.
    #[schemars(
        length(min = 20, max = 2048),
        regex(
            pattern = r"^arn:[\w+=/,.@-]+:[\w+=/,.@-]+:([\w+=/,.@-]*)?:[0-9]+:[\w+=/,.@-]+(:[\w+=/,.@-]+)?(:[\w+=/,.@-]+)?$"
        )
    )]
    pub certificate_arn: String,
}

/// An OAuth 2.0 resource server (an API) and the scopes clients may be granted on it.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceServer {
    /// Usually the API's URL, such as `https://api.example.com`; scopes are
    /// `<identifier>/<scope name>`.
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[\x21\x23-\x5B\x5D-\x7E]+$")
    )]
    pub identifier: String,
    /// A friendly name.
    #[schemars(length(min = 1, max = 256), regex(pattern = r"^[\w\s+=,.@-]+$"))]
    pub name: String,
    #[serde(default)]
    #[schemars(length(max = 100))]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["name"]))]
    pub scopes: Vec<ResourceServerScope>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ResourceServerScope {
    /// Printable ASCII without spaces, `"`, `\\` or `/`.
    #[schemars(
        length(min = 1, max = 256),
        regex(pattern = r"^[\x21\x23-\x2E\x30-\x5B\x5D-\x7E]+$")
    )]
    pub name: String,
    #[schemars(length(min = 1, max = 256))]
    pub description: String,
}

/// How to reach a daemon's admin API.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct DaemonRef {
    /// Base URL of the daemon's API, e.g. `http://cognate.cognate.svc:9229`.
    #[schemars(length(min = 1, max = 2048))]
    pub endpoint: String,
    /// Base of token issuers when it differs from `endpoint` (the daemon's `--public-url`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// SigV4 region the daemon accepts.
    #[serde(default = "default_region")]
    pub region: String,
    /// Secret in this resource's namespace with the admin credentials.
    pub credentials_secret: CredentialsSecretRef,
}

fn default_region() -> String {
    "us-east-1".to_owned()
}

/// A Secret holding an admin access key id and secret.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecretRef {
    pub name: String,
    #[serde(default = "default_access_key_key")]
    pub access_key_id_key: String,
    #[serde(default = "default_secret_key_key")]
    pub secret_access_key_key: String,
}

fn default_access_key_key() -> String {
    "accessKeyId".to_owned()
}
fn default_secret_key_key() -> String {
    "secretAccessKey".to_owned()
}

/// What deleting the resource does to the pool in the daemon.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Keep the pool and its users (the default: data outlives a `kubectl delete`).
    #[default]
    Retain,
    /// Delete the pool, unless its deletion protection is on.
    Delete,
}

/// One attribute of the pool's schema, as CreateUserPool's `SchemaAttributeType`.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct SchemaAttribute {
    /// Standard attribute name (`email`) or custom name (`tenant`, stored as `custom:tenant`).
    #[schemars(length(min = 1, max = 32))]
    pub name: String,
    #[serde(default)]
    pub attribute_data_type: AttributeDataType,
    #[serde(default)]
    pub required: bool,
    #[serde(default = "yes")]
    pub mutable: bool,
    /// Only administrators can read and write it (`dev:custom:` prefix).
    #[serde(default)]
    pub developer_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub string_constraints: Option<StringConstraints>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub number_constraints: Option<NumberConstraints>,
}

fn yes() -> bool {
    true
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AttributeDataType {
    #[default]
    String,
    Number,
    DateTime,
    Boolean,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StringConstraints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2048))]
    pub min_length: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 2048))]
    pub max_length: Option<u32>,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NumberConstraints {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_value: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_value: Option<i64>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UsernameAttribute {
    Email,
    PhoneNumber,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum AliasAttribute {
    Email,
    PhoneNumber,
    PreferredUsername,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum VerifiedAttribute {
    Email,
    PhoneNumber,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PasswordPolicy {
    #[serde(default = "default_min_length")]
    #[schemars(range(min = 6, max = 99))]
    pub minimum_length: u32,
    #[serde(default = "yes")]
    pub require_uppercase: bool,
    #[serde(default = "yes")]
    pub require_lowercase: bool,
    #[serde(default = "yes")]
    pub require_numbers: bool,
    #[serde(default = "yes")]
    pub require_symbols: bool,
    #[serde(default = "default_temp_days")]
    #[schemars(range(min = 0, max = 365))]
    pub temporary_password_validity_days: u32,
}

fn default_min_length() -> u32 {
    8
}
fn default_temp_days() -> u32 {
    7
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum MfaConfiguration {
    #[default]
    Off,
    On,
    Optional,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMessage {
    #[serde(default)]
    pub default_email_option: EmailOption,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_subject: Option<String>,
    /// Must contain `{####}` (the code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_message: Option<String>,
    /// Must contain `{####}` (the code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_message: Option<String>,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum EmailOption {
    #[default]
    ConfirmWithCode,
    ConfirmWithLink,
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Invitation {
    /// Only administrators may create users (no self sign-up).
    #[serde(default)]
    pub allow_admin_create_user_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_subject: Option<String>,
    /// Must contain `{username}` and `{####}` (the temporary password).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_message: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sms_message: Option<String>,
}

/// Triggers the daemon calls over NATS (DESIGN.md §4).
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Triggers {
    /// Which triggers are on for this pool.
    #[serde(default)]
    #[schemars(length(max = 10))]
    pub enabled: Vec<TriggerName>,
    /// How long a synchronous trigger may take before the call fails.
    #[serde(default = "default_timeout_ms")]
    #[schemars(range(min = 100, max = 30000))]
    pub timeout_millis: u32,
    /// What a synchronous trigger without any worker listening does to the call.
    #[serde(default)]
    pub no_responder: NoResponderPolicy,
}

fn default_timeout_ms() -> u32 {
    5000
}

#[derive(
    JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord,
)]
pub enum TriggerName {
    PreSignUp,
    PostConfirmation,
    PreAuthentication,
    PostAuthentication,
    CustomMessage,
    PreTokenGeneration,
    UserMigration,
    DefineAuthChallenge,
    CreateAuthChallenge,
    VerifyAuthChallengeResponse,
}

impl TriggerName {
    /// The `LambdaConfig` key, which is also the NATS subject's last token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PreSignUp => "PreSignUp",
            Self::PostConfirmation => "PostConfirmation",
            Self::PreAuthentication => "PreAuthentication",
            Self::PostAuthentication => "PostAuthentication",
            Self::CustomMessage => "CustomMessage",
            Self::PreTokenGeneration => "PreTokenGeneration",
            Self::UserMigration => "UserMigration",
            Self::DefineAuthChallenge => "DefineAuthChallenge",
            Self::CreateAuthChallenge => "CreateAuthChallenge",
            Self::VerifyAuthChallengeResponse => "VerifyAuthChallengeResponse",
        }
    }
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum NoResponderPolicy {
    /// Fail the API call (`UnexpectedLambdaException`), as Cognito does when a Lambda fails.
    #[default]
    Fail,
    /// Carry on as if the trigger were off.
    Continue,
}

/// Token lifetimes, in the units Cognito's defaults use.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct TokenValidity {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 1440))]
    pub access_token_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 5, max = 1440))]
    pub id_token_minutes: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3650))]
    pub refresh_token_days: Option<u32>,
}

/// What the operator last saw and did.
#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct UserPoolStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_id: Option<String>,
    /// `<daemon public URL>/<poolId>`: the `iss` of this pool's tokens.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issuer_url: Option<String>,
    /// The daemon endpoint the pool lives in (AppClient Secrets copy it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// The domain this resource configured in the daemon (AppClient Secrets derive the
    /// authorize and token URLs from it); only it is deleted when `spec.domain` goes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Identifiers of the resource servers this resource configured; only these are
    /// deleted when they leave `spec.resourceServers`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 25))]
    pub resource_servers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `SchemaAccepted`: one entry per type.
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

// ---------------------------------------------------------------- AppClient

/// An app client of a UserPool; its credentials land in a Secret ready for `envFrom`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "cognate.io",
    version = "v1alpha1",
    kind = "AppClient",
    namespaced,
    status = "AppClientStatus",
    shortname = "upc",
    category = "cognate",
    cel,
    doc = "An app client of a UserPool; its credentials are written to a Secret.",
    printcolumn(name = "Client", type_ = "string", json_path = ".status.clientId"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[x_kube(validation = Rule::new(
    "!(self.allowedOAuthFlows.exists(f, f == 'client_credentials') && self.allowedOAuthFlows.exists(f, f != 'client_credentials'))"
).message("allowedOAuthFlows: client_credentials cannot be combined with code or implicit"))]
#[x_kube(validation = Rule::new(
    "!self.allowedOAuthFlows.exists(f, f == 'client_credentials') || self.generateSecret"
).message("allowedOAuthFlows: client_credentials needs a client secret (generateSecret: true)"))]
#[x_kube(validation = Rule::new(
    "!self.allowedOAuthFlows.exists(f, f == 'client_credentials') || self.allowedOAuthScopes.all(s, s.contains('/'))"
).message("allowedOAuthScopes: client_credentials grants only custom scopes (<resource server identifier>/<scope>)"))]
#[x_kube(validation = Rule::new(
    "!self.allowedOAuthFlowsUserPoolClient || (size(self.allowedOAuthFlows) > 0 && size(self.allowedOAuthScopes) > 0)"
).message("allowedOAuthFlowsUserPoolClient needs allowedOAuthFlows and allowedOAuthScopes"))]
#[x_kube(validation = Rule::new(
    "!self.allowedOAuthFlows.exists(f, f != 'client_credentials') || size(self.callbackUrls) > 0"
).message("allowedOAuthFlows: code and implicit need at least one callbackUrls entry"))]
#[x_kube(validation = Rule::new(
    "!has(self.defaultRedirectUri) || self.defaultRedirectUri in self.callbackUrls"
).message("defaultRedirectUri must be one of callbackUrls"))]
#[serde(rename_all = "camelCase")]
pub struct AppClientSpec {
    /// The UserPool (same namespace) this client belongs to (immutable).
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.userPoolRef is immutable"))]
    pub user_pool_ref: LocalRef,
    /// Client name in the daemon; defaults to the resource name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub client_name: Option<String>,
    /// Generate a client secret (immutable, as in Cognito).
    #[serde(default)]
    #[x_kube(validation = Rule::new("self == oldSelf").message("spec.generateSecret is immutable"))]
    pub generate_secret: bool,
    #[serde(default)]
    #[schemars(length(max = 8))]
    pub explicit_auth_flows: Vec<AuthFlow>,
    /// Token lifetimes; unset values come from the pool's `tokenDefaults`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_validity: Option<TokenValidity>,
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub read_attributes: Vec<String>,
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub write_attributes: Vec<String>,
    /// Answer unknown users like wrong passwords (Cognito's `ENABLED`).
    #[serde(default = "yes")]
    pub prevent_user_existence_errors: bool,
    /// Where the authorize endpoint may send users back to (Cognito's `CallbackURLs`):
    /// `https`, `http://localhost` or an app scheme (`myapp://`), without a fragment.
    #[serde(default)]
    #[schemars(length(max = 100), inner(length(min = 1, max = 1024)))]
    #[x_kube(validation = Rule::new(URL_LIST_RULE).message(URL_MESSAGE))]
    pub callback_urls: Vec<String>,
    /// Where the logout endpoint may send users (Cognito's `LogoutURLs`), same rules.
    #[serde(default)]
    #[schemars(length(max = 100), inner(length(min = 1, max = 1024)))]
    #[x_kube(validation = Rule::new(URL_LIST_RULE).message(URL_MESSAGE))]
    pub logout_urls: Vec<String>,
    /// The redirect used when a request names none; must be one of `callbackUrls`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 1024))]
    #[x_kube(validation = Rule::new(URL_RULE).message(URL_MESSAGE))]
    pub default_redirect_uri: Option<String>,
    /// OAuth 2.0 grants at the pool's domain: `code` and `implicit` sign users in by
    /// redirect, `client_credentials` is for machines (needs a secret, custom scopes only).
    #[serde(default, rename = "allowedOAuthFlows")]
    #[schemars(length(max = 3))]
    pub allowed_oauth_flows: Vec<OAuthFlow>,
    /// Scopes the client may be granted: `openid`, `email`, `phone`, `profile`,
    /// `aws.cognito.signin.user.admin`, or a resource server's `<identifier>/<scope>`.
    #[serde(default, rename = "allowedOAuthScopes")]
    #[schemars(
        length(max = 50),
        inner(
            length(min = 1, max = 256),
            regex(pattern = r"^[\x21\x23-\x5B\x5D-\x7E]+$")
        )
    )]
    pub allowed_oauth_scopes: Vec<String>,
    /// Turns the OAuth 2.0 settings above on (Cognito's `AllowedOAuthFlowsUserPoolClient`).
    #[serde(default, rename = "allowedOAuthFlowsUserPoolClient")]
    pub allowed_oauth_flows_user_pool_client: bool,
    /// Identity providers users of this client sign in with; `COGNITO` is the pool's own
    /// users. Empty means none (as in Cognito).
    #[serde(default)]
    #[schemars(length(max = 50), inner(length(min = 1, max = 32)))]
    pub supported_identity_providers: Vec<String>,
    /// `false` removes the client from the daemon (its tokens stop refreshing) and empties
    /// the Secret; turning it back on creates a new client id.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Name of the Secret to write; defaults to the resource name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

/// A redirect URL as Cognito accepts one: absolute, no fragment, `https` unless it is
/// `http://localhost` (for development), or an app's own scheme.
const URL_RULE: &str = "!self.contains('#') && self.matches('^[a-zA-Z][a-zA-Z0-9+.-]*:[^ ]+$') && (!self.lowerAscii().startsWith('http:') || self.matches('^http://localhost(:[0-9]+)?(/.*)?$'))";
const URL_LIST_RULE: &str = "self.all(u, !u.contains('#') && u.matches('^[a-zA-Z][a-zA-Z0-9+.-]*:[^ ]+$') && (!u.lowerAscii().startsWith('http:') || u.matches('^http://localhost(:[0-9]+)?(/.*)?$')))";
const URL_MESSAGE: &str = "redirect URLs must be absolute, without a fragment, and https (http only for http://localhost) or an app scheme such as myapp://";

/// An OAuth 2.0 grant an app client may use.
#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum OAuthFlow {
    Code,
    Implicit,
    ClientCredentials,
}

impl OAuthFlow {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Code => "code",
            Self::Implicit => "implicit",
            Self::ClientCredentials => "client_credentials",
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
pub struct LocalRef {
    #[schemars(length(min = 1, max = 253))]
    pub name: String,
}

#[derive(JsonSchema, Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AuthFlow {
    AllowUserPasswordAuth,
    AllowAdminUserPasswordAuth,
    AllowRefreshTokenAuth,
    AllowUserSrpAuth,
    AllowCustomAuth,
    AllowUserAuth,
}

impl AuthFlow {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AllowUserPasswordAuth => "ALLOW_USER_PASSWORD_AUTH",
            Self::AllowAdminUserPasswordAuth => "ALLOW_ADMIN_USER_PASSWORD_AUTH",
            Self::AllowRefreshTokenAuth => "ALLOW_REFRESH_TOKEN_AUTH",
            Self::AllowUserSrpAuth => "ALLOW_USER_SRP_AUTH",
            Self::AllowCustomAuth => "ALLOW_CUSTOM_AUTH",
            Self::AllowUserAuth => "ALLOW_USER_AUTH",
        }
    }
}

#[derive(KubeSchema, Serialize, Deserialize, Clone, Debug, Default, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct AppClientStatus {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pool_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default)]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["type"]))]
    pub conditions: Vec<Condition>,
}

// ---------------------------------------------------------------- generation

/// The CRD of `UserPool` as YAML, exactly as written to `crds/userpool.yaml`.
pub fn userpool_yaml() -> Result<String, serde_yaml::Error> {
    to_yaml(&UserPool::crd())
}

/// The CRD of `AppClient` as YAML, exactly as written to `crds/appclient.yaml`.
pub fn appclient_yaml() -> Result<String, serde_yaml::Error> {
    to_yaml(&AppClient::crd())
}

/// Every generated file: path relative to the workspace root, and its contents. The
/// chart's copies come from the same strings, so they cannot drift from `crds/`.
pub fn generated_files() -> Result<Vec<(&'static str, String)>, serde_yaml::Error> {
    let up = userpool_yaml()?;
    let ac = appclient_yaml()?;
    Ok(vec![
        ("crds/userpool.yaml", up.clone()),
        ("crds/appclient.yaml", ac.clone()),
        ("charts/cognate/crds/userpool.yaml", up),
        ("charts/cognate/crds/appclient.yaml", ac),
    ])
}

fn to_yaml<T: Serialize>(v: &T) -> Result<String, serde_yaml::Error> {
    let body = serde_yaml::to_string(v)?;
    let mut out =
        String::from("# Generated by `cargo run -p cognate-crds --bin crdgen`; do not edit.\n");
    for line in body.lines() {
        out.push_str(&quote_yaml11_bools(line));
        out.push('\n');
    }
    Ok(out)
}

/// serde_yaml writes YAML 1.2, where `OFF` is a string; the YAML 1.1 parsers in
/// kubectl and Helm read an unquoted `OFF` or `ON` as a boolean. Cognito's enum values
/// (`MfaConfiguration: OFF | ON | OPTIONAL`) would break, so such scalars are quoted.
pub fn quote_yaml11_bools(line: &str) -> String {
    const WORDS: &[&str] = &[
        "y", "Y", "yes", "Yes", "YES", "n", "N", "no", "No", "NO", "on", "On", "ON", "off", "Off",
        "OFF",
    ];
    let (head, value) = match line.rfind(": ") {
        Some(i) => line.split_at(i + 2),
        None => match line.trim_start().strip_prefix("- ") {
            Some(v) => line.split_at(line.len() - v.len()),
            None => return line.to_owned(),
        },
    };
    if WORDS.contains(&value) {
        format!("{head}'{value}'")
    } else {
        line.to_owned()
    }
}
