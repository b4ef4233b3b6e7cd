//! Remembered devices, as Cognito tracks them when a pool has a DeviceConfiguration:
//! NewDeviceMetadata after a sign-in, ConfirmDevice with the device's SRP verifier (the
//! DEVICE_SRP_AUTH steps are in `srp`), and GetDevice, ListDevices, UpdateDeviceStatus,
//! ForgetDevice with their Admin variants.
//!
//! A device key is `<region>_<uuid>`. Its group key is not stored before ConfirmDevice: it
//! is a keyed hash of pool, user and device key, so a device key handed out in
//! NewDeviceMetadata needs no write and ConfirmDevice can recompute it.

use cognate_domain::{Command, Device, ErrorKind, Pool, SrpVerifier, User};
use cognate_proto as p;
use serde::Serialize;

use crate::auth::Outcome;
use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::tokens;
use crate::util::{epoch, get_setting, now_ms};

/// The pool's DeviceConfiguration, when device tracking is on.
pub fn tracking(pool: &Pool) -> Option<p::DeviceConfigurationType> {
    get_setting(&pool.settings, "DeviceConfiguration")
}

/// An empty JSON object, for operations whose output shape has no members.
#[derive(Serialize)]
pub struct Empty {}

fn group_key(s: &AppState, pool_id: &str, sub: &str, device_key: &str) -> String {
    let h = s.keyring().token_hash(&format!(
        "device-group\u{0}{pool_id}\u{0}{sub}\u{0}{device_key}"
    ));
    format!("-{}", &h[..9.min(h.len())])
}

fn valid_device_key(s: &AppState, key: &str) -> bool {
    key.strip_prefix(&format!("{}_", s.config().region))
        .is_some_and(|rest| uuid::Uuid::parse_str(rest).is_ok())
}

/// Adds NewDeviceMetadata to a sign-in that issued tokens, unless device tracking is off or
/// the client signed in from a device the user already tracks.
pub(crate) async fn attach_metadata(
    s: &AppState,
    pool: &Pool,
    outcome: &mut Outcome,
    given_device: Option<&str>,
) -> Result<()> {
    if tracking(pool).is_none() {
        return Ok(());
    }
    let Some(result) = outcome.result.as_mut() else {
        return Ok(());
    };
    let Some(token) = result.access_token.as_ref() else {
        return Ok(());
    };
    let a = tokens::authorize(s, token.as_str()).await?;
    if given_device.is_some_and(|d| a.user.devices.contains_key(d)) {
        return Ok(());
    }
    let device_key = format!("{}_{}", s.config().region, crate::util::new_sub());
    result.new_device_metadata = Some(p::NewDeviceMetadataType {
        device_group_key: Some(group_key(s, &pool.id, &a.user.sub, &device_key)),
        device_key: Some(device_key),
    });
    Ok(())
}

fn device_type(d: &Device) -> p::DeviceType {
    let attr = |n: &str, v: &str| p::AttributeType {
        name: n.to_owned(),
        value: Some(v.to_owned()),
    };
    let mut attrs = vec![attr("device_status", "valid")];
    if let Some(n) = &d.name {
        attrs.push(attr("device_name", n));
    }
    attrs.push(attr(
        "dev:device_remembered_status",
        if d.remembered {
            "remembered"
        } else {
            "not_remembered"
        },
    ));
    p::DeviceType {
        device_key: Some(d.key.clone()),
        device_attributes: Some(attrs),
        device_create_date: Some(epoch(d.created_at)),
        device_last_modified_date: Some(epoch(d.updated_at)),
        device_last_authenticated_date: Some(epoch(d.last_authenticated_at.max(d.created_at))),
    }
}

fn find<'a>(user: &'a User, key: &str) -> Result<&'a Device> {
    user.devices
        .get(key)
        .ok_or_else(|| ApiError::new(ErrorKind::ResourceNotFound, "Device does not exist."))
}

/// Devices newest first, paged by device key.
fn page(
    user: &User,
    limit: Option<i64>,
    token: Option<&str>,
) -> (Vec<p::DeviceType>, Option<String>) {
    let limit = usize::try_from(limit.unwrap_or(60).clamp(1, 60)).unwrap_or(60);
    let mut all: Vec<&Device> = user.devices.values().collect();
    all.sort_by(|a, b| b.created_at.cmp(&a.created_at).then(a.key.cmp(&b.key)));
    let start = token
        .and_then(|t| all.iter().position(|d| d.key == t))
        .unwrap_or(0);
    let items: Vec<p::DeviceType> = all
        .iter()
        .skip(start)
        .take(limit)
        .map(|d| device_type(d))
        .collect();
    let next = all.get(start + limit).map(|d| d.key.clone());
    (items, next)
}

pub async fn confirm_device(
    s: AppState,
    r: p::ConfirmDeviceRequest,
) -> Result<p::ConfirmDeviceResponse> {
    let a = tokens::authorize(&s, r.access_token.as_str()).await?;
    let Some(config) = tracking(&a.pool) else {
        return Err(ApiError::invalid(
            "Device tracking is not enabled for this user pool.",
        ));
    };
    if !valid_device_key(&s, &r.device_key) {
        return Err(ApiError::new(
            ErrorKind::ResourceNotFound,
            "Device does not exist.",
        ));
    }
    let cfg = r
        .device_secret_verifier_config
        .ok_or_else(|| ApiError::invalid("DeviceSecretVerifierConfig is required."))?;
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let decode = |v: Option<String>, what: &str| -> Result<Vec<u8>> {
        let v = v.ok_or_else(|| ApiError::invalid(format!("{what} is required.")))?;
        let bytes = b64
            .decode(v.trim())
            .map_err(|_| ApiError::invalid(format!("{what} is not base64.")))?;
        if bytes.is_empty() || bytes.len() > 1024 {
            return Err(ApiError::invalid(format!("{what} has an invalid length.")));
        }
        Ok(bytes)
    };
    let verifier = decode(cfg.password_verifier, "PasswordVerifier")?;
    let salt = decode(cfg.salt, "Salt")?;
    let prompt = config.device_only_remembered_on_user_prompt == Some(true);
    let now = now_ms();
    let device = Device {
        key: r.device_key.clone(),
        group_key: group_key(&s, &a.pool.id, &a.user.sub, &r.device_key),
        name: r.device_name.clone(),
        remembered: !prompt,
        srp: SrpVerifier {
            salt: hex::encode(salt),
            verifier: s.keyring().seal(&verifier),
        },
        created_at: a
            .user
            .devices
            .get(&r.device_key)
            .map_or(now, |d| d.created_at),
        updated_at: now,
        last_authenticated_at: now,
    };
    s.store()
        .run(
            Command::ConfirmDevice {
                pool_id: a.pool.id.clone(),
                username_key: a.username_key.clone(),
                device,
            },
            now,
        )
        .await?;
    Ok(p::ConfirmDeviceResponse {
        user_confirmation_necessary: Some(prompt),
    })
}

async fn user_by_token(
    s: &AppState,
    token: Option<&p::Sensitive<String>>,
) -> Result<tokens::Authorized> {
    let token = token.ok_or_else(|| ApiError::not_authorized("Access Token is required."))?;
    tokens::authorize(s, token.as_str()).await
}

pub async fn get_device(s: AppState, r: p::GetDeviceRequest) -> Result<p::GetDeviceResponse> {
    let a = user_by_token(&s, r.access_token.as_ref()).await?;
    Ok(p::GetDeviceResponse {
        device: device_type(find(&a.user, &r.device_key)?),
    })
}

pub async fn list_devices(s: AppState, r: p::ListDevicesRequest) -> Result<p::ListDevicesResponse> {
    let a = tokens::authorize(&s, r.access_token.as_str()).await?;
    let (devices, pagination_token) = page(&a.user, r.limit, r.pagination_token.as_deref());
    Ok(p::ListDevicesResponse {
        devices: Some(devices),
        pagination_token,
    })
}

fn remembered(status: Option<p::DeviceRememberedStatusType>) -> bool {
    !matches!(status, Some(p::DeviceRememberedStatusType::NotRemembered))
}

async fn run(s: &AppState, cmd: Command) -> Result<()> {
    s.store().run(cmd, now_ms()).await?;
    Ok(())
}

pub async fn update_device_status(
    s: AppState,
    r: p::UpdateDeviceStatusRequest,
) -> Result<p::UpdateDeviceStatusResponse> {
    let a = tokens::authorize(&s, r.access_token.as_str()).await?;
    find(&a.user, &r.device_key)?;
    let cmd = Command::UpdateDeviceStatus {
        pool_id: a.pool.id.clone(),
        username_key: a.username_key,
        device_key: r.device_key,
        remembered: remembered(r.device_remembered_status),
    };
    run(&s, cmd).await?;
    Ok(p::UpdateDeviceStatusResponse {})
}

pub async fn forget_device(s: AppState, r: p::ForgetDeviceRequest) -> Result<Empty> {
    let a = user_by_token(&s, r.access_token.as_ref()).await?;
    find(&a.user, &r.device_key)?;
    let cmd = Command::ForgetDevice {
        pool_id: a.pool.id.clone(),
        username_key: a.username_key,
        device_key: r.device_key,
    };
    run(&s, cmd).await?;
    Ok(Empty {})
}

pub async fn admin_get_device(
    s: AppState,
    r: p::AdminGetDeviceRequest,
) -> Result<p::AdminGetDeviceResponse> {
    let (_, _, user) = crate::users::admin_user(&s, &r.user_pool_id, &r.username).await?;
    Ok(p::AdminGetDeviceResponse {
        device: device_type(find(&user, &r.device_key)?),
    })
}

pub async fn admin_list_devices(
    s: AppState,
    r: p::AdminListDevicesRequest,
) -> Result<p::AdminListDevicesResponse> {
    let (_, _, user) = crate::users::admin_user(&s, &r.user_pool_id, &r.username).await?;
    let (devices, pagination_token) = page(&user, r.limit, r.pagination_token.as_deref());
    Ok(p::AdminListDevicesResponse {
        devices: Some(devices),
        pagination_token,
    })
}

pub async fn admin_update_device_status(
    s: AppState,
    r: p::AdminUpdateDeviceStatusRequest,
) -> Result<p::AdminUpdateDeviceStatusResponse> {
    let (pool, key, user) = crate::users::admin_user(&s, &r.user_pool_id, &r.username).await?;
    find(&user, &r.device_key)?;
    let cmd = Command::UpdateDeviceStatus {
        pool_id: pool.id.clone(),
        username_key: key,
        device_key: r.device_key,
        remembered: remembered(r.device_remembered_status),
    };
    run(&s, cmd).await?;
    Ok(p::AdminUpdateDeviceStatusResponse {})
}

pub async fn admin_forget_device(s: AppState, r: p::AdminForgetDeviceRequest) -> Result<Empty> {
    let (pool, key, user) = crate::users::admin_user(&s, &r.user_pool_id, &r.username).await?;
    find(&user, &r.device_key)?;
    let cmd = Command::ForgetDevice {
        pool_id: pool.id.clone(),
        username_key: key,
        device_key: r.device_key,
    };
    run(&s, cmd).await?;
    Ok(Empty {})
}
