//! Trigger events as Cognito sends them to Lambda (the "user pool Lambda trigger event
//! parameters"), so a worker's logic ports line for line from a Lambda: the same
//! camelCase JSON with `version`, `triggerSource`, `region`, `userPoolId`, `userName`,
//! `callerContext`, `request` and `response` (DESIGN.md §4).
//!
//! A synchronous worker receives the event with `response` at its defaults and replies
//! with the same event, `response` filled in, or with [`ErrorReply`] to refuse.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Sensitive;

/// Attribute maps, client metadata and validation data: string to string.
pub type StringMap = BTreeMap<String, String>;

/// `version` of every event except PreTokenGeneration V2_0.
pub const EVENT_VERSION: &str = "1";
/// `version` of a PreTokenGeneration V2_0 event.
pub const EVENT_VERSION_V2: &str = "2";
/// What `codeParameter` holds: the placeholder a CustomMessage worker puts where the
/// code goes; the daemon substitutes the real code after the reply.
pub const CODE_PARAMETER: &str = "{####}";
/// What `usernameParameter` holds in AdminCreateUser custom messages.
pub const USERNAME_PARAMETER: &str = "{username}";

/// Every trigger cognate calls, named as in `LambdaConfig` and in the NATS subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Trigger {
    PreSignUp,
    PreAuthentication,
    CustomMessage,
    PreTokenGeneration,
    UserMigration,
    DefineAuthChallenge,
    CreateAuthChallenge,
    VerifyAuthChallengeResponse,
    PostConfirmation,
    PostAuthentication,
}

/// Synchronous triggers: core NATS request-reply, they can change or veto the outcome.
pub const SYNC_TRIGGERS: [Trigger; 8] = [
    Trigger::PreSignUp,
    Trigger::PreAuthentication,
    Trigger::CustomMessage,
    Trigger::PreTokenGeneration,
    Trigger::UserMigration,
    Trigger::DefineAuthChallenge,
    Trigger::CreateAuthChallenge,
    Trigger::VerifyAuthChallengeResponse,
];

/// Asynchronous triggers: JetStream stream `COGNATE_TRIGGERS`, they only react.
pub const ASYNC_TRIGGERS: [Trigger; 2] = [Trigger::PostConfirmation, Trigger::PostAuthentication];

impl Trigger {
    /// All triggers, synchronous first.
    pub const ALL: [Trigger; 10] = [
        Trigger::PreSignUp,
        Trigger::PreAuthentication,
        Trigger::CustomMessage,
        Trigger::PreTokenGeneration,
        Trigger::UserMigration,
        Trigger::DefineAuthChallenge,
        Trigger::CreateAuthChallenge,
        Trigger::VerifyAuthChallengeResponse,
        Trigger::PostConfirmation,
        Trigger::PostAuthentication,
    ];

    /// The `LambdaConfig` key and last subject token.
    pub const fn name(self) -> &'static str {
        match self {
            Trigger::PreSignUp => "PreSignUp",
            Trigger::PreAuthentication => "PreAuthentication",
            Trigger::CustomMessage => "CustomMessage",
            Trigger::PreTokenGeneration => "PreTokenGeneration",
            Trigger::UserMigration => "UserMigration",
            Trigger::DefineAuthChallenge => "DefineAuthChallenge",
            Trigger::CreateAuthChallenge => "CreateAuthChallenge",
            Trigger::VerifyAuthChallengeResponse => "VerifyAuthChallengeResponse",
            Trigger::PostConfirmation => "PostConfirmation",
            Trigger::PostAuthentication => "PostAuthentication",
        }
    }

    /// Parses a `LambdaConfig` key / subject token.
    pub fn from_name(name: &str) -> Option<Trigger> {
        Trigger::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Whether the trigger is request-reply (else it goes through JetStream).
    pub const fn is_sync(self) -> bool {
        !matches!(
            self,
            Trigger::PostConfirmation | Trigger::PostAuthentication
        )
    }
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// `triggerSource` values, as Cognito spells them.
pub mod source {
    pub const PRE_SIGN_UP_SIGN_UP: &str = "PreSignUp_SignUp";
    pub const PRE_SIGN_UP_ADMIN_CREATE_USER: &str = "PreSignUp_AdminCreateUser";
    pub const PRE_SIGN_UP_EXTERNAL_PROVIDER: &str = "PreSignUp_ExternalProvider";
    pub const POST_CONFIRMATION_CONFIRM_SIGN_UP: &str = "PostConfirmation_ConfirmSignUp";
    pub const POST_CONFIRMATION_CONFIRM_FORGOT_PASSWORD: &str =
        "PostConfirmation_ConfirmForgotPassword";
    pub const PRE_AUTHENTICATION_AUTHENTICATION: &str = "PreAuthentication_Authentication";
    pub const POST_AUTHENTICATION_AUTHENTICATION: &str = "PostAuthentication_Authentication";
    pub const CUSTOM_MESSAGE_SIGN_UP: &str = "CustomMessage_SignUp";
    pub const CUSTOM_MESSAGE_ADMIN_CREATE_USER: &str = "CustomMessage_AdminCreateUser";
    pub const CUSTOM_MESSAGE_RESEND_CODE: &str = "CustomMessage_ResendCode";
    pub const CUSTOM_MESSAGE_FORGOT_PASSWORD: &str = "CustomMessage_ForgotPassword";
    pub const CUSTOM_MESSAGE_UPDATE_USER_ATTRIBUTE: &str = "CustomMessage_UpdateUserAttribute";
    pub const CUSTOM_MESSAGE_VERIFY_USER_ATTRIBUTE: &str = "CustomMessage_VerifyUserAttribute";
    pub const CUSTOM_MESSAGE_AUTHENTICATION: &str = "CustomMessage_Authentication";
    pub const TOKEN_GENERATION_HOSTED_AUTH: &str = "TokenGeneration_HostedAuth";
    pub const TOKEN_GENERATION_AUTHENTICATION: &str = "TokenGeneration_Authentication";
    pub const TOKEN_GENERATION_NEW_PASSWORD_CHALLENGE: &str =
        "TokenGeneration_NewPasswordChallenge";
    pub const TOKEN_GENERATION_AUTHENTICATE_DEVICE: &str = "TokenGeneration_AuthenticateDevice";
    pub const TOKEN_GENERATION_REFRESH_TOKENS: &str = "TokenGeneration_RefreshTokens";
    pub const USER_MIGRATION_AUTHENTICATION: &str = "UserMigration_Authentication";
    pub const USER_MIGRATION_FORGOT_PASSWORD: &str = "UserMigration_ForgotPassword";
    pub const DEFINE_AUTH_CHALLENGE_AUTHENTICATION: &str = "DefineAuthChallenge_Authentication";
    pub const CREATE_AUTH_CHALLENGE_AUTHENTICATION: &str = "CreateAuthChallenge_Authentication";
    pub const VERIFY_AUTH_CHALLENGE_RESPONSE_AUTHENTICATION: &str =
        "VerifyAuthChallengeResponse_Authentication";
}

/// `callerContext`: who called the API that fired the trigger.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CallerContext {
    #[serde(default)]
    pub aws_sdk_version: String,
    #[serde(default)]
    pub client_id: String,
}

/// One trigger event; `Req`/`Resp` are the trigger's `request` and `response`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TriggerEvent<Req, Resp> {
    pub version: String,
    pub trigger_source: String,
    pub region: String,
    pub user_pool_id: String,
    /// Cognito sends the username (the `sub` in pools with username attributes).
    #[serde(default)]
    pub user_name: String,
    #[serde(default)]
    pub caller_context: CallerContext,
    pub request: Req,
    #[serde(default)]
    pub response: Resp,
}

impl<Req, Resp: Default> TriggerEvent<Req, Resp> {
    /// A version-1 event with the response at its defaults, as the daemon sends it.
    pub fn new(
        trigger_source: &str,
        region: &str,
        user_pool_id: &str,
        user_name: &str,
        client_id: &str,
        request: Req,
    ) -> Self {
        Self {
            version: EVENT_VERSION.to_owned(),
            trigger_source: trigger_source.to_owned(),
            region: region.to_owned(),
            user_pool_id: user_pool_id.to_owned(),
            user_name: user_name.to_owned(),
            caller_context: CallerContext {
                aws_sdk_version: String::new(),
                client_id: client_id.to_owned(),
            },
            request,
            response: Resp::default(),
        }
    }
}

/// Ties a trigger to its typed request and response, so generic code (the worker
/// SDK, the daemon's trigger client) can go from a type to its subject and back.
pub trait TriggerSpec {
    const TRIGGER: Trigger;
    type Request: Serialize + DeserializeOwned + Send + Sync + 'static;
    type Response: Serialize + DeserializeOwned + Default + Send + Sync + 'static;
}

/// The typed event of a [`TriggerSpec`].
pub type EventOf<T> = TriggerEvent<<T as TriggerSpec>::Request, <T as TriggerSpec>::Response>;

macro_rules! spec {
    ($(#[$m:meta])* $name:ident, $trigger:ident, $req:ty, $resp:ty, $alias:ident) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, Default)]
        pub struct $name;
        impl TriggerSpec for $name {
            const TRIGGER: Trigger = Trigger::$trigger;
            type Request = $req;
            type Response = $resp;
        }
        pub type $alias = TriggerEvent<$req, $resp>;
    };
}

/// The `response` of triggers that return nothing: `{}`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NoResponse {}

// ---- PreSignUp -------------------------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreSignUpRequest {
    #[serde(default)]
    pub user_attributes: StringMap,
    #[serde(default)]
    pub validation_data: Option<StringMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<StringMap>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreSignUpResponse {
    #[serde(default)]
    pub auto_confirm_user: bool,
    #[serde(default)]
    pub auto_verify_email: bool,
    #[serde(default)]
    pub auto_verify_phone: bool,
}

spec!(
    /// PreSignUp (sources `PreSignUp_SignUp`, `PreSignUp_AdminCreateUser`).
    PreSignUp, PreSignUp, PreSignUpRequest, PreSignUpResponse, PreSignUpEvent
);

// ---- PostConfirmation -------------------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostConfirmationRequest {
    #[serde(default)]
    pub user_attributes: StringMap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<StringMap>,
}

spec!(
    /// PostConfirmation (asynchronous; sources `PostConfirmation_ConfirmSignUp`,
    /// `PostConfirmation_ConfirmForgotPassword`).
    PostConfirmation, PostConfirmation, PostConfirmationRequest, NoResponse, PostConfirmationEvent
);

// ---- PreAuthentication / PostAuthentication --------------------------------------

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreAuthenticationRequest {
    #[serde(default)]
    pub user_attributes: StringMap,
    #[serde(default)]
    pub validation_data: Option<StringMap>,
    /// Set only when the pool prevents user-existence errors.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_not_found: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<StringMap>,
}

spec!(
    /// PreAuthentication (source `PreAuthentication_Authentication`).
    PreAuthentication, PreAuthentication, PreAuthenticationRequest, NoResponse, PreAuthenticationEvent
);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PostAuthenticationRequest {
    #[serde(default)]
    pub new_device_used: bool,
    #[serde(default)]
    pub user_attributes: StringMap,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<StringMap>,
}

spec!(
    /// PostAuthentication (asynchronous; source `PostAuthentication_Authentication`).
    PostAuthentication, PostAuthentication, PostAuthenticationRequest, NoResponse, PostAuthenticationEvent
);

// ---- CustomMessage ----------------------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomMessageRequest {
    #[serde(default)]
    pub user_attributes: StringMap,
    /// The placeholder for the code, [`CODE_PARAMETER`].
    #[serde(default)]
    pub code_parameter: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub link_parameter: Option<String>,
    /// The placeholder for the username ([`USERNAME_PARAMETER`]) in AdminCreateUser
    /// messages, null otherwise.
    #[serde(default)]
    pub username_parameter: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<StringMap>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CustomMessageResponse {
    #[serde(default)]
    pub sms_message: Option<String>,
    #[serde(default)]
    pub email_message: Option<String>,
    #[serde(default)]
    pub email_subject: Option<String>,
}

spec!(
    /// CustomMessage (sources `CustomMessage_SignUp`, `_ResendCode`, `_ForgotPassword`,
    /// `_UpdateUserAttribute`, `_VerifyUserAttribute`, `_AdminCreateUser`,
    /// `_Authentication`).
    CustomMessage, CustomMessage, CustomMessageRequest, CustomMessageResponse, CustomMessageEvent
);

// ---- PreTokenGeneration -----------------------------------------------------------

/// `groupConfiguration` in the request, `groupOverrideDetails` in the response.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GroupConfiguration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groups_to_override: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iam_roles_to_override: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preferred_role: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreTokenGenerationRequest {
    #[serde(default)]
    pub user_attributes: StringMap,
    #[serde(default)]
    pub group_configuration: GroupConfiguration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<StringMap>,
}

/// V1_0 `claimsOverrideDetails`: ID token only, string claims.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimsOverrideDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_to_add_or_override: Option<StringMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_to_suppress: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_override_details: Option<GroupConfiguration>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreTokenGenerationResponse {
    #[serde(default)]
    pub claims_override_details: Option<ClaimsOverrideDetails>,
}

spec!(
    /// PreTokenGeneration, event version 1 (`TokenGeneration_*` sources).
    PreTokenGeneration, PreTokenGeneration, PreTokenGenerationRequest, PreTokenGenerationResponse,
    PreTokenGenerationEvent
);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreTokenGenerationV2Request {
    #[serde(default)]
    pub user_attributes: StringMap,
    #[serde(default)]
    pub group_configuration: GroupConfiguration,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<StringMap>,
}

/// V2_0 `idTokenGeneration`: claim values may be any JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IdTokenGeneration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_to_add_or_override: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_to_suppress: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AccessTokenGeneration {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_to_add_or_override: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub claims_to_suppress: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_to_add: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes_to_suppress: Option<Vec<String>>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClaimsAndScopeOverrideDetails {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token_generation: Option<IdTokenGeneration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_token_generation: Option<AccessTokenGeneration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub group_override_details: Option<GroupConfiguration>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PreTokenGenerationV2Response {
    #[serde(default)]
    pub claims_and_scope_override_details: Option<ClaimsAndScopeOverrideDetails>,
}

spec!(
    /// PreTokenGeneration, event version 2 (`V2_0`: ID and access token). Same subject
    /// as V1: a pool sends one version, so a worker registers one of the two.
    PreTokenGenerationV2, PreTokenGeneration, PreTokenGenerationV2Request,
    PreTokenGenerationV2Response, PreTokenGenerationV2Event
);

// ---- UserMigration ----------------------------------------------------------------

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserMigrationRequest {
    /// The password the user typed (`UserMigration_Authentication` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<Sensitive<String>>,
    #[serde(default)]
    pub validation_data: Option<StringMap>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<StringMap>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct UserMigrationResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_attributes: Option<StringMap>,
    /// `CONFIRMED` or `RESET_REQUIRED`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub final_user_status: Option<String>,
    /// `SUPPRESS` to send no welcome message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_action: Option<String>,
    /// `EMAIL` and/or `SMS`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub desired_delivery_mediums: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub force_alias_creation: Option<bool>,
    #[serde(
        default,
        rename = "enableSMSMFA",
        skip_serializing_if = "Option::is_none"
    )]
    pub enable_sms_mfa: Option<bool>,
}

spec!(
    /// UserMigration (sources `UserMigration_Authentication`,
    /// `UserMigration_ForgotPassword`).
    UserMigration, UserMigration, UserMigrationRequest, UserMigrationResponse, UserMigrationEvent
);

// ---- Custom authentication challenges ---------------------------------------------

/// One step of the `session` so far.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ChallengeResult {
    /// `CUSTOM_CHALLENGE`, `PASSWORD_VERIFIER`, `SMS_MFA`, `SRP_A`, …
    pub challenge_name: String,
    pub challenge_result: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub challenge_metadata: Option<String>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefineAuthChallengeRequest {
    #[serde(default)]
    pub user_attributes: StringMap,
    #[serde(default)]
    pub session: Vec<ChallengeResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<StringMap>,
    #[serde(default)]
    pub user_not_found: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DefineAuthChallengeResponse {
    #[serde(default)]
    pub challenge_name: Option<String>,
    #[serde(default)]
    pub issue_tokens: bool,
    #[serde(default)]
    pub fail_authentication: bool,
}

spec!(
    /// DefineAuthChallenge (custom authentication flow).
    DefineAuthChallenge, DefineAuthChallenge, DefineAuthChallengeRequest,
    DefineAuthChallengeResponse, DefineAuthChallengeEvent
);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAuthChallengeRequest {
    #[serde(default)]
    pub user_attributes: StringMap,
    #[serde(default)]
    pub challenge_name: String,
    #[serde(default)]
    pub session: Vec<ChallengeResult>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<StringMap>,
    #[serde(default)]
    pub user_not_found: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateAuthChallengeResponse {
    /// Sent to the client in the challenge.
    #[serde(default)]
    pub public_challenge_parameters: StringMap,
    /// Kept by the daemon and handed to VerifyAuthChallengeResponse only.
    #[serde(default)]
    pub private_challenge_parameters: StringMap,
    #[serde(default)]
    pub challenge_metadata: Option<String>,
}

spec!(
    /// CreateAuthChallenge (custom authentication flow).
    CreateAuthChallenge, CreateAuthChallenge, CreateAuthChallengeRequest,
    CreateAuthChallengeResponse, CreateAuthChallengeEvent
);

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyAuthChallengeResponseRequest {
    #[serde(default)]
    pub user_attributes: StringMap,
    #[serde(default)]
    pub private_challenge_parameters: StringMap,
    #[serde(default)]
    pub challenge_answer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_metadata: Option<StringMap>,
    #[serde(default)]
    pub user_not_found: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerifyAuthChallengeResponseResponse {
    #[serde(default)]
    pub answer_correct: bool,
}

spec!(
    /// VerifyAuthChallengeResponse (custom authentication flow).
    VerifyAuthChallengeResponse, VerifyAuthChallengeResponse, VerifyAuthChallengeResponseRequest,
    VerifyAuthChallengeResponseResponse, VerifyAuthChallengeResponseEvent
);

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

    use super::*;
    use serde_json::json;

    #[test]
    fn pre_sign_up_event_matches_cognito_json() {
        let mut attrs = StringMap::new();
        attrs.insert("email".into(), "alice@example.com".into());
        let ev = PreSignUpEvent::new(
            source::PRE_SIGN_UP_SIGN_UP,
            "us-east-1",
            "us-east-1_abcdefghi",
            "alice",
            "client1",
            PreSignUpRequest {
                user_attributes: attrs,
                validation_data: None,
                client_metadata: None,
            },
        );
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(
            v,
            json!({
                "version": "1",
                "triggerSource": "PreSignUp_SignUp",
                "region": "us-east-1",
                "userPoolId": "us-east-1_abcdefghi",
                "userName": "alice",
                "callerContext": {"awsSdkVersion": "", "clientId": "client1"},
                "request": {"userAttributes": {"email": "alice@example.com"}, "validationData": null},
                "response": {"autoConfirmUser": false, "autoVerifyEmail": false, "autoVerifyPhone": false}
            })
        );
        let back: PreSignUpEvent = serde_json::from_value(v).unwrap();
        assert_eq!(back, ev);
    }

    #[test]
    fn parses_a_lambda_style_reply_with_missing_fields() {
        // A JavaScript Lambda often sets only the field it cares about.
        let reply = json!({
            "version": "1", "triggerSource": "CustomMessage_SignUp", "region": "r",
            "userPoolId": "p", "userName": "u", "callerContext": {"clientId": "c"},
            "request": {"userAttributes": {}, "codeParameter": "{####}"},
            "response": {"emailMessage": "Hi, code {####}"}
        });
        let ev: CustomMessageEvent = serde_json::from_value(reply).unwrap();
        assert_eq!(
            ev.response.email_message.as_deref(),
            Some("Hi, code {####}")
        );
        assert_eq!(ev.response.email_subject, None);
        assert_eq!(ev.request.code_parameter, CODE_PARAMETER);
    }

    #[test]
    fn user_migration_uses_cognito_field_names_and_redacts_password() {
        let ev: UserMigrationEvent = serde_json::from_value(json!({
            "version": "1", "triggerSource": "UserMigration_Authentication", "region": "r",
            "userPoolId": "p", "userName": "bob", "callerContext": {"clientId": "c"},
            "request": {"password": "hunter2", "validationData": null},
            "response": {}
        }))
        .unwrap();
        assert!(!format!("{ev:?}").contains("hunter2"));
        let mut ev = ev;
        ev.response = UserMigrationResponse {
            user_attributes: Some(StringMap::from([("email".into(), "b@x.io".into())])),
            final_user_status: Some("CONFIRMED".into()),
            message_action: Some("SUPPRESS".into()),
            desired_delivery_mediums: Some(vec!["EMAIL".into()]),
            force_alias_creation: Some(false),
            enable_sms_mfa: Some(true),
        };
        let v = serde_json::to_value(&ev).unwrap();
        assert_eq!(v["request"]["password"], "hunter2");
        assert_eq!(v["response"]["enableSMSMFA"], true);
        assert_eq!(v["response"]["finalUserStatus"], "CONFIRMED");
        assert_eq!(v["response"]["desiredDeliveryMediums"][0], "EMAIL");
    }

    #[test]
    fn pre_token_generation_shapes() {
        let v1: PreTokenGenerationResponse = serde_json::from_value(json!({
            "claimsOverrideDetails": {
                "claimsToAddOrOverride": {"tier": "gold"},
                "claimsToSuppress": ["email"],
                "groupOverrideDetails": {"groupsToOverride": ["admins"], "preferredRole": "arn:r"}
            }
        }))
        .unwrap();
        let d = v1.claims_override_details.unwrap();
        assert_eq!(d.claims_to_add_or_override.unwrap()["tier"], "gold");
        assert_eq!(d.claims_to_suppress.unwrap(), vec!["email"]);
        let g = d.group_override_details.unwrap();
        assert_eq!(g.groups_to_override.unwrap(), vec!["admins"]);
        assert_eq!(g.preferred_role.as_deref(), Some("arn:r"));

        let v2: PreTokenGenerationV2Response = serde_json::from_value(json!({
            "claimsAndScopeOverrideDetails": {
                "idTokenGeneration": {"claimsToAddOrOverride": {"n": 1, "o": {"a": [1]}}},
                "accessTokenGeneration": {"scopesToAdd": ["x"], "scopesToSuppress": ["y"]}
            }
        }))
        .unwrap();
        let d = v2.claims_and_scope_override_details.unwrap();
        assert_eq!(
            d.id_token_generation
                .unwrap()
                .claims_to_add_or_override
                .unwrap()["o"],
            json!({"a": [1]})
        );
        assert_eq!(
            d.access_token_generation.unwrap().scopes_to_add.unwrap(),
            vec!["x"]
        );
        // The default response is what Cognito sends: an explicit null.
        assert_eq!(
            serde_json::to_value(PreTokenGenerationResponse::default()).unwrap(),
            json!({"claimsOverrideDetails": null})
        );
    }

    #[test]
    fn auth_challenge_shapes() {
        let ev: DefineAuthChallengeEvent = serde_json::from_value(json!({
            "version": "1", "triggerSource": "DefineAuthChallenge_Authentication",
            "region": "r", "userPoolId": "p", "userName": "u",
            "callerContext": {"awsSdkVersion": "aws-sdk-js-3", "clientId": "c"},
            "request": {"userAttributes": {}, "session": [
                {"challengeName": "CUSTOM_CHALLENGE", "challengeResult": true, "challengeMetadata": "Q1"}
            ], "userNotFound": false},
            "response": {"challengeName": null, "issueTokens": false, "failAuthentication": false}
        }))
        .unwrap();
        assert_eq!(ev.request.session[0].challenge_name, "CUSTOM_CHALLENGE");
        assert!(ev.request.session[0].challenge_result);
        let create = serde_json::to_value(CreateAuthChallengeResponse {
            public_challenge_parameters: StringMap::from([("q".into(), "2+2".into())]),
            private_challenge_parameters: StringMap::from([("a".into(), "4".into())]),
            challenge_metadata: Some("Q1".into()),
        })
        .unwrap();
        assert_eq!(create["publicChallengeParameters"]["q"], "2+2");
        assert_eq!(create["privateChallengeParameters"]["a"], "4");
        let verify: VerifyAuthChallengeResponseRequest = serde_json::from_value(json!({
            "userAttributes": {}, "privateChallengeParameters": {"a": "4"}, "challengeAnswer": "4"
        }))
        .unwrap();
        assert_eq!(verify.challenge_answer, "4");
        assert_eq!(
            serde_json::to_value(VerifyAuthChallengeResponseResponse {
                answer_correct: true
            })
            .unwrap(),
            json!({"answerCorrect": true})
        );
    }

    #[test]
    fn trigger_names_and_kinds() {
        for t in Trigger::ALL {
            assert_eq!(Trigger::from_name(t.name()), Some(t));
            assert_eq!(t.is_sync(), SYNC_TRIGGERS.contains(&t));
            assert_eq!(!t.is_sync(), ASYNC_TRIGGERS.contains(&t));
        }
        assert_eq!(Trigger::from_name("Nope"), None);
        assert_eq!(
            <PreTokenGenerationV2 as TriggerSpec>::TRIGGER,
            Trigger::PreTokenGeneration
        );
        assert_eq!(
            serde_json::to_value(NoResponse::default()).unwrap(),
            json!({})
        );
    }
}
