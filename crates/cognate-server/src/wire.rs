//! The AWS JSON 1.1 endpoint: reads `X-Amz-Target`, bounds and decodes the body, checks
//! SigV4 for operations that need it, validates the request against the model's
//! constraints, dispatches to the handler and encodes the answer. Every refusal on the way
//! is a Cognito-style 4xx that changed nothing.

use std::future::Future;
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use cognate_domain::ErrorKind;
use cognate_proto::{Operation, TARGET_PREFIX, Validate};
use http::{HeaderMap, HeaderValue, Method, Uri};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tracing::Instrument;

use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::{
    admin, auth, branding, clients, devices, domains, groups, lifecycle, mfa, pools, users,
};

tokio::task_local! {
    /// The admin access key that signed the current request, for event attribution.
    static ACTOR: Option<String>;
}

/// Who is acting in the current request: the signing admin access key, if any.
pub fn actor() -> Option<String> {
    ACTOR.try_with(|a| a.clone()).ok().flatten()
}

/// Runs `fut` on behalf of `actor` (`console:<account>`, `admin:<access key id>`), so the
/// handlers it calls attribute their events as they do for a signed API request.
pub(crate) async fn with_actor<F: Future>(actor: String, fut: F) -> F::Output {
    ACTOR.scope(Some(actor), fut).await
}

pub async fn api(
    State(s): State<AppState>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let started = Instant::now();
    let request_id = crate::util::new_sub();
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let op_name = target
        .strip_prefix(TARGET_PREFIX)
        .unwrap_or("unknown")
        .to_owned();
    let span = tracing::info_span!("request", op = %op_name, request_id = %request_id, pool = tracing::field::Empty, client = tracing::field::Empty, sub = tracing::field::Empty);
    let result = handle(&s, &method, &uri, &headers, body, &target)
        .instrument(span.clone())
        .await;
    let outcome = match &result {
        Ok(_) => "ok",
        Err(e) => e.kind.name(),
    };
    let known = Operation::from_name(&op_name)
        .map(|o| o.name())
        .unwrap_or("unknown");
    s.metrics()
        .observe(known, outcome, started.elapsed().as_secs_f64());
    let mut resp = match result {
        Ok(bytes) => {
            let mut r = Response::new(Body::from(bytes));
            r.headers_mut().insert(
                http::header::CONTENT_TYPE,
                HeaderValue::from_static(cognate_proto::CONTENT_TYPE),
            );
            r
        }
        Err(e) => {
            span.in_scope(|| {
                if e.kind == ErrorKind::InternalError {
                    tracing::error!(error = e.kind.name(), "request failed");
                } else {
                    tracing::info!(error = e.kind.name(), message = %e.message, "request refused");
                }
            });
            e.into_response()
        }
    };
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        resp.headers_mut().insert("x-amzn-requestid", v);
    }
    resp
}

async fn handle(
    s: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
    target: &str,
) -> Result<Vec<u8>> {
    if target == crate::export::TARGET {
        return export_request(s, method, uri, headers, body).await;
    }
    let op = target
        .strip_prefix(TARGET_PREFIX)
        .and_then(Operation::from_name)
        .ok_or_else(|| {
            ApiError::new(
                ErrorKind::UnknownOperation,
                format!(
                    "Unknown operation: X-Amz-Target {target:?} is not an operation of {}",
                    TARGET_PREFIX.trim_end_matches('.')
                ),
            )
        })?;
    // Managed login styles carry their images: Cognito takes up to 2 MB there.
    let limit = match op {
        Operation::CreateManagedLoginBranding | Operation::UpdateManagedLoginBranding => {
            s.config().max_body.max(branding::MAX_BRANDING_REQUEST)
        }
        _ => s.config().max_body,
    };
    let bytes = to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            ErrorKind::RequestEntityTooLarge,
            format!("Request body is larger than the limit of {limit} bytes."),
        )
    })?;
    let mut actor = if op.is_unauthenticated() {
        None
    } else {
        Some(format!(
            "admin:{}",
            check_signature(s, method, uri, headers, &bytes)?
        ))
    };
    let value: Value = if bytes.is_empty() {
        Value::Object(Default::default())
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::new(
                ErrorKind::Serialization,
                format!("Request body is not valid JSON: {e}"),
            )
        })?
    };
    if !value.is_object() {
        return Err(ApiError::new(
            ErrorKind::Serialization,
            "Request body must be a JSON object.",
        ));
    }
    let span = tracing::Span::current();
    if let Some(p) = value.get("UserPoolId").and_then(Value::as_str) {
        span.record("pool", p);
    }
    if let Some(c) = value.get("ClientId").and_then(Value::as_str) {
        span.record("client", c);
        // A user's own request is attributed to the app client it came through.
        if actor.is_none() && c.len() <= 128 {
            actor = Some(format!("client:{c}"));
        }
    }
    ACTOR.scope(actor, dispatch(s.clone(), op, value)).await
}

/// `CognateService.AdminExportUserData`: signed like every admin operation.
async fn export_request(
    s: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<u8>> {
    let limit = s.config().max_body;
    let bytes = to_bytes(body, limit).await.map_err(|_| {
        ApiError::new(
            ErrorKind::RequestEntityTooLarge,
            format!("Request body is larger than the limit of {limit} bytes."),
        )
    })?;
    check_signature(s, method, uri, headers, &bytes)?;
    let req: crate::export::ExportRequest = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid(format!("Invalid request: {e}")))?;
    let doc = crate::export::export_user(s, &req.user_pool_id, &req.username).await?;
    serde_json::to_vec(&doc).map_err(|e| ApiError::internal("encode response", e))
}

fn check_signature(
    s: &AppState,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
) -> Result<String> {
    let pairs: Vec<(String, String)> = headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect();
    let req = cognate_crypto::sigv4::Request {
        method: method.as_str(),
        path: uri.path(),
        query: uri.query().unwrap_or(""),
        headers: &pairs,
        body,
    };
    let now = crate::util::now_ms() / 1000;
    let creds = &s.config().admin_credentials;
    cognate_crypto::sigv4::verify(&req, now, &s.config().region, "cognito-idp", |ak| {
        creds.get(ak).cloned()
    })
    .map_err(|e| {
        use cognate_crypto::SigV4Error as E;
        let kind = match e {
            E::Missing => ErrorKind::MissingAuthenticationToken,
            E::Malformed(_) => ErrorKind::IncompleteSignature,
            E::UnknownKey => ErrorKind::UnrecognizedClient,
            E::WrongScope(_) | E::Skewed | E::Mismatch => ErrorKind::InvalidSignature,
        };
        ApiError::new(kind, e.message())
    })
}

/// Decodes the typed request, checks the model's constraints and runs the handler.
async fn call<Req, Resp, F, Fut>(s: AppState, value: Value, f: F) -> Result<Vec<u8>>
where
    Req: DeserializeOwned + Validate,
    Resp: Serialize,
    F: FnOnce(AppState, Req) -> Fut,
    Fut: Future<Output = Result<Resp>>,
{
    let req: Req = serde_json::from_value(value)
        .map_err(|e| ApiError::invalid(format!("Invalid request: {e}")))?;
    if let Some(msg) = req.validate() {
        return Err(ApiError::invalid(msg));
    }
    let resp = f(s, req).await?;
    serde_json::to_vec(&resp).map_err(|e| ApiError::internal("encode response", e))
}

/// The domain operations: botocore's model gives `Domain` the pattern and length of a
/// prefix, but Cognito takes a custom domain's full name (`auth.example.com`) there too.
/// A name with a dot is checked by the handler (`domains::check_domain`) instead.
async fn call_domain<Req, Resp, F, Fut>(s: AppState, value: Value, f: F) -> Result<Vec<u8>>
where
    Req: DeserializeOwned + Validate,
    Resp: Serialize,
    F: FnOnce(AppState, Req) -> Fut,
    Fut: Future<Output = Result<Resp>>,
{
    let req: Req = decode_domain_request(value)?;
    let resp = f(s, req).await?;
    serde_json::to_vec(&resp).map_err(|e| ApiError::internal("encode response", e))
}

/// Decodes a domain operation's request with the model's checks, a dotted `Domain`
/// excepted (see `call_domain`). The console's domain forms go through it too.
pub(crate) fn decode_domain_request<Req>(value: Value) -> Result<Req>
where
    Req: DeserializeOwned + Validate,
{
    let decode = |v: Value| {
        serde_json::from_value::<Req>(v)
            .map_err(|e| ApiError::invalid(format!("Invalid request: {e}")))
    };
    let dotted = value
        .get("Domain")
        .and_then(Value::as_str)
        .is_some_and(|d| d.contains('.') && d.len() <= 253);
    let probe = if dotted {
        let mut probe = value.clone();
        probe["Domain"] = Value::from("custom");
        decode(probe)?
    } else {
        decode(value.clone())?
    };
    if let Some(msg) = probe.validate() {
        return Err(ApiError::invalid(msg));
    }
    if dotted { decode(value) } else { Ok(probe) }
}

/// amazon-cognito-identity-js sends `null` for absent entries of the string maps
/// (`"DEVICE_KEY": null` when no device is remembered); Cognito ignores them, so do we.
fn drop_null_entries(value: &mut Value) {
    for field in ["AuthParameters", "ChallengeResponses", "ClientMetadata"] {
        if let Some(Value::Object(m)) = value.get_mut(field) {
            m.retain(|_, v| !v.is_null());
        }
    }
}

async fn dispatch(s: AppState, op: Operation, mut value: Value) -> Result<Vec<u8>> {
    use Operation as O;
    drop_null_entries(&mut value);
    match op {
        O::CreateUserPool => call(s, value, pools::create).await,
        O::DescribeUserPool => call(s, value, pools::describe).await,
        O::UpdateUserPool => {
            pools::refuse_immutable_fields(&value)?;
            call(s, value, pools::update).await
        }
        O::DeleteUserPool => call(s, value, pools::delete).await,
        O::ListUserPools => call(s, value, pools::list).await,
        O::AddCustomAttributes => call(s, value, pools::add_custom_attributes).await,
        O::TagResource => call(s, value, pools::tag_resource).await,
        O::UntagResource => call(s, value, pools::untag_resource).await,
        O::ListTagsForResource => call(s, value, pools::list_tags_for_resource).await,
        O::CreateUserPoolClient => call(s, value, clients::create).await,
        O::DescribeUserPoolClient => call(s, value, clients::describe).await,
        O::UpdateUserPoolClient => call(s, value, clients::update).await,
        O::DeleteUserPoolClient => call(s, value, clients::delete).await,
        O::ListUserPoolClients => call(s, value, clients::list).await,
        O::SignUp => call(s, value, users::sign_up).await,
        O::ConfirmSignUp => call(s, value, users::confirm_sign_up).await,
        O::ResendConfirmationCode => call(s, value, users::resend_confirmation_code).await,
        O::AdminConfirmSignUp => call(s, value, users::admin_confirm_sign_up).await,
        O::AdminGetUser => call(s, value, users::admin_get_user).await,
        O::AdminSetUserPassword => call(s, value, users::admin_set_user_password).await,
        O::AdminDeleteUser => call(s, value, users::admin_delete_user).await,
        O::InitiateAuth => call(s, value, auth::initiate_auth).await,
        O::AdminInitiateAuth => call(s, value, auth::admin_initiate_auth).await,
        O::GetUser => call(s, value, auth::get_user).await,
        O::GlobalSignOut => call(s, value, auth::global_sign_out).await,
        O::RevokeToken => call(s, value, auth::revoke_token).await,
        O::GetTokensFromRefreshToken => call(s, value, auth::get_tokens_from_refresh_token).await,
        O::RespondToAuthChallenge => call(s, value, auth::respond_to_auth_challenge).await,
        O::AdminRespondToAuthChallenge => {
            call(s, value, auth::admin_respond_to_auth_challenge).await
        }
        O::ForgotPassword => call(s, value, lifecycle::forgot_password).await,
        O::ConfirmForgotPassword => call(s, value, lifecycle::confirm_forgot_password).await,
        O::ChangePassword => call(s, value, lifecycle::change_password).await,
        O::UpdateUserAttributes => call(s, value, lifecycle::update_user_attributes).await,
        O::GetUserAttributeVerificationCode => {
            call(s, value, lifecycle::get_user_attribute_verification_code).await
        }
        O::VerifyUserAttribute => call(s, value, lifecycle::verify_user_attribute).await,
        O::DeleteUserAttributes => call(s, value, lifecycle::delete_user_attributes).await,
        O::DeleteUser => call(s, value, lifecycle::delete_user).await,
        O::SetUserSettings => call(s, value, lifecycle::set_user_settings).await,
        O::AdminCreateUser => call(s, value, admin::admin_create_user).await,
        O::AdminDisableUser => call(s, value, admin::admin_disable_user).await,
        O::AdminEnableUser => call(s, value, admin::admin_enable_user).await,
        O::AdminResetUserPassword => call(s, value, admin::admin_reset_user_password).await,
        O::AdminUpdateUserAttributes => call(s, value, admin::admin_update_user_attributes).await,
        O::AdminDeleteUserAttributes => call(s, value, admin::admin_delete_user_attributes).await,
        O::AdminUserGlobalSignOut => call(s, value, admin::admin_user_global_sign_out).await,
        O::AdminListUserAuthEvents => call(s, value, admin::admin_list_user_auth_events).await,
        O::ListUsers => call(s, value, admin::list_users).await,
        O::CreateGroup => call(s, value, groups::create_group).await,
        O::GetGroup => call(s, value, groups::get_group).await,
        O::UpdateGroup => call(s, value, groups::update_group).await,
        O::DeleteGroup => call(s, value, groups::delete_group).await,
        O::ListGroups => call(s, value, groups::list_groups).await,
        O::AdminAddUserToGroup => call(s, value, groups::admin_add_user_to_group).await,
        O::AdminRemoveUserFromGroup => call(s, value, groups::admin_remove_user_from_group).await,
        O::AdminListGroupsForUser => call(s, value, groups::admin_list_groups_for_user).await,
        O::ListUsersInGroup => call(s, value, groups::list_users_in_group).await,
        O::SetUserPoolMfaConfig => call(s, value, mfa::set_user_pool_mfa_config).await,
        O::GetUserPoolMfaConfig => call(s, value, mfa::get_user_pool_mfa_config).await,
        O::AssociateSoftwareToken => call(s, value, mfa::associate_software_token).await,
        O::VerifySoftwareToken => call(s, value, mfa::verify_software_token).await,
        O::SetUserMFAPreference => call(s, value, mfa::set_user_mfa_preference).await,
        O::AdminSetUserMFAPreference => call(s, value, mfa::admin_set_user_mfa_preference).await,
        // Remembered devices (devices.rs).
        O::ConfirmDevice => call(s, value, devices::confirm_device).await,
        O::GetDevice => call(s, value, devices::get_device).await,
        O::ListDevices => call(s, value, devices::list_devices).await,
        O::UpdateDeviceStatus => call(s, value, devices::update_device_status).await,
        O::ForgetDevice => call(s, value, devices::forget_device).await,
        O::AdminGetDevice => call(s, value, devices::admin_get_device).await,
        O::AdminListDevices => call(s, value, devices::admin_list_devices).await,
        O::AdminUpdateDeviceStatus => call(s, value, devices::admin_update_device_status).await,
        O::AdminForgetDevice => call(s, value, devices::admin_forget_device).await,
        // Domains and resource servers (domains.rs).
        O::CreateUserPoolDomain => call_domain(s, value, domains::create_user_pool_domain).await,
        O::DescribeUserPoolDomain => {
            call_domain(s, value, domains::describe_user_pool_domain).await
        }
        O::UpdateUserPoolDomain => call_domain(s, value, domains::update_user_pool_domain).await,
        O::DeleteUserPoolDomain => call_domain(s, value, domains::delete_user_pool_domain).await,
        O::CreateResourceServer => call(s, value, domains::create_resource_server).await,
        O::DescribeResourceServer => call(s, value, domains::describe_resource_server).await,
        O::UpdateResourceServer => call(s, value, domains::update_resource_server).await,
        O::DeleteResourceServer => call(s, value, domains::delete_resource_server).await,
        O::ListResourceServers => call(s, value, domains::list_resource_servers).await,
        // Branding of the hosted pages (branding.rs).
        O::SetUICustomization => call(s, value, branding::set_ui_customization).await,
        O::GetUICustomization => call(s, value, branding::get_ui_customization).await,
        O::CreateManagedLoginBranding => {
            call(s, value, branding::create_managed_login_branding).await
        }
        O::UpdateManagedLoginBranding => {
            call(s, value, branding::update_managed_login_branding).await
        }
        O::DeleteManagedLoginBranding => {
            call(s, value, branding::delete_managed_login_branding).await
        }
        O::DescribeManagedLoginBranding => {
            call(s, value, branding::describe_managed_login_branding).await
        }
        O::DescribeManagedLoginBrandingByClient => {
            call(
                s,
                value,
                branding::describe_managed_login_branding_by_client,
            )
            .await
        }
        other => Err(ApiError::new(
            ErrorKind::UnsupportedOperation,
            format!(
                "{} is not supported by this version of cognate.",
                other.name()
            ),
        )),
    }
}
