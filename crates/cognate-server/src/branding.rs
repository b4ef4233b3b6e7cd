//! Branding of a pool's hosted pages: the classic hosted UI's CSS and logo
//! (SetUICustomization, GetUICustomization), per pool (`ALL`) and per app client, and
//! managed login styles (CreateManagedLoginBranding and the rest), one per app client.
//! What the pages make of them is in `oauth/brand.rs`.

use base64::Engine as _;
use cognate_domain::{
    BrandingAsset, Command, Logo, ManagedLoginBranding, Pool, UiCustomization, View,
};
use cognate_proto as p;
use serde_json::{Value, json};

use crate::error::{ApiError, Result};
use crate::pools::load_pool;
use crate::state::AppState;
use crate::util::{epoch, now_ms};

/// The class selectors the classic hosted UI lets a customer style, as Cognito lists them
/// ("Specifying CSS customization in classic branding"); nothing else is accepted.
pub const CUSTOMIZABLE_SELECTORS: &[&str] = &[
    ".background-customizable",
    ".banner-customizable",
    ".errorMessage-customizable",
    ".idpButton-customizable",
    ".idpButton-customizable:hover",
    ".idpDescription-customizable",
    ".inputField-customizable",
    ".inputField-customizable:focus",
    ".label-customizable",
    ".legalText-customizable",
    ".logo-customizable",
    ".passwordCheck-valid-customizable",
    ".passwordCheck-notValid-customizable",
    ".redirect-customizable",
    ".socialButton-customizable",
    ".submitButton-customizable",
    ".submitButton-customizable:hover",
    ".textDescription-customizable",
];

/// Largest logo, as Cognito's classic branding: 100 KB before base64.
pub const MAX_LOGO_BYTES: usize = 100 * 1024;
/// Largest managed login asset (botocore's AssetBytesType).
pub const MAX_ASSET_BYTES: usize = 1_000_000;
/// Request body limit of the managed login operations: Cognito takes up to 2 MB there.
pub const MAX_BRANDING_REQUEST: usize = 2 * 1024 * 1024;

/// Checks classic hosted UI CSS as Cognito does: rules whose selectors are only the
/// `*-customizable` classes, no at-rules (`@import`, `@font-face`, …), no `url()` or
/// `expression()`, no `<` and no escapes that could spell them.
pub fn check_css(css: &str) -> Result<()> {
    let bad = |why: &str| Err(ApiError::invalid(format!("Invalid CSS: {why}")));
    let lower = css.to_ascii_lowercase();
    if css.contains('<') {
        return bad("'<' is not allowed.");
    }
    if css.contains('\\') {
        return bad("escapes ('\\') are not allowed.");
    }
    if css.contains('@') {
        return bad("at-rules such as @import are not allowed.");
    }
    for word in [
        "url(",
        "expression(",
        "javascript:",
        "behavior",
        "-moz-binding",
    ] {
        if lower.contains(word) {
            return bad(&format!("{word} is not allowed."));
        }
    }
    // Comments are dropped before the rules are read.
    let mut text = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        text.push_str(&rest[..start]);
        match rest[start + 2..].find("*/") {
            Some(end) => rest = &rest[start + 2 + end + 2..],
            None => return bad("a comment is not closed."),
        }
    }
    text.push_str(rest);
    let mut rest = text.as_str();
    loop {
        let Some(open) = rest.find('{') else {
            if rest.trim().is_empty() && !rest.contains('}') {
                return Ok(());
            }
            return bad("text outside a rule.");
        };
        let selectors = &rest[..open];
        let after = &rest[open + 1..];
        let Some(close) = after.find('}') else {
            return bad("a rule is not closed.");
        };
        if after[..close].contains('{') || selectors.contains('}') {
            return bad("nested or unbalanced braces.");
        }
        for sel in selectors.split(',') {
            let sel = sel.trim();
            if !CUSTOMIZABLE_SELECTORS.contains(&sel) {
                return bad(&format!(
                    "the selector {sel:?} is not one of the customizable classes ({}).",
                    CUSTOMIZABLE_SELECTORS.join(", ")
                ));
            }
        }
        rest = &after[close + 1..];
    }
}

fn decode_base64(b64: &str, what: &str) -> Result<Vec<u8>> {
    base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .map_err(|_| ApiError::invalid(format!("{what} is not valid base64.")))
}

/// The media type of a PNG or JPEG file, by its signature.
fn image_type(bytes: &[u8]) -> Option<&'static str> {
    if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
        Some("image/png")
    } else if bytes.starts_with(&[0xff, 0xd8, 0xff]) {
        Some("image/jpeg")
    } else {
        None
    }
}

fn logo_of(b64: &str) -> Result<Logo> {
    let bytes = decode_base64(b64, "ImageFile")?;
    if bytes.len() > MAX_LOGO_BYTES {
        return Err(ApiError::invalid(format!(
            "ImageFile is {} bytes; the logo may be at most {MAX_LOGO_BYTES} bytes (100 KB).",
            bytes.len()
        )));
    }
    let content_type = image_type(&bytes)
        .ok_or_else(|| ApiError::invalid("ImageFile must be a PNG or JPEG image."))?;
    Ok(Logo {
        content_type: content_type.to_owned(),
        base64: base64::engine::general_purpose::STANDARD.encode(&bytes),
    })
}

/// The base URL of a pool's (first) domain, where its pages, stylesheets and logos are.
fn domain_base(s: &AppState, pool: &Pool) -> Option<String> {
    pool.domains
        .first()
        .map(|d| crate::oauth::Site::public_base(s, d))
}

/// `client_id` of a customization as the wire and the pages name it.
fn client_param(c: &UiCustomization) -> &str {
    c.client_id.as_deref().unwrap_or("ALL")
}

fn wire_ui(s: &AppState, pool: &Pool, c: &UiCustomization) -> p::UICustomizationType {
    let image_url = c.logo.as_ref().and_then(|_| {
        domain_base(s, pool)
            .map(|b| format!("{b}/logo?client_id={}&v={}", client_param(c), c.css_version))
    });
    p::UICustomizationType {
        user_pool_id: Some(c.pool_id.clone()),
        client_id: Some(client_param(c).to_owned()),
        image_url,
        css: c.css.clone(),
        css_version: Some(c.css_version.clone()),
        last_modified_date: Some(epoch(c.updated_at)),
        creation_date: Some(epoch(c.created_at)),
    }
}

/// `ALL` (or nothing) names the pool's default.
fn client_arg(c: Option<&str>) -> Option<String> {
    c.filter(|c| *c != "ALL").map(str::to_owned)
}

pub async fn set_ui_customization(
    s: AppState,
    r: p::SetUICustomizationRequest,
) -> Result<p::SetUICustomizationResponse> {
    let pool = load_pool(&s, &r.user_pool_id).await?;
    if let Some(css) = &r.css {
        check_css(css)?;
    }
    let logo = r.image_file.as_deref().map(logo_of).transpose()?;
    let css = r.css.clone().filter(|c| !c.is_empty());
    let css_version = {
        let mut seed = css.clone().unwrap_or_default();
        seed.push('\0');
        if let Some(l) = &logo {
            seed.push_str(&l.base64);
        }
        cognate_crypto::sha256_hex(seed.as_bytes())[..16].to_owned()
    };
    let now = now_ms();
    let customization = UiCustomization {
        pool_id: r.user_pool_id.clone(),
        client_id: client_arg(r.client_id.as_deref()),
        css,
        css_version,
        logo,
        created_at: now,
        updated_at: now,
    };
    let executed = s
        .run(
            Command::SetUiCustomization {
                customization: customization.clone(),
            },
            now,
        )
        .await?;
    // The event carries the creation time kept from an earlier customization.
    let stored = executed
        .iter()
        .find_map(|e| match &e.event {
            cognate_domain::Event::PoolUiCustomizationSet { customization } => {
                Some(customization.clone())
            }
            _ => None,
        })
        .unwrap_or(customization);
    Ok(p::SetUICustomizationResponse {
        ui_customization: wire_ui(&s, &pool, &stored),
    })
}

/// The customization that applies to a client: its own, else the pool's.
pub async fn effective_ui(
    s: &AppState,
    pool_id: &str,
    client: Option<&str>,
) -> Result<Option<UiCustomization>> {
    let (pool_id, client) = (pool_id.to_owned(), client_arg(client));
    Ok(s.store()
        .read(move |r| {
            if let Some(c) = &client
                && let Some(found) = r.ui_customization(&pool_id, Some(c.as_str()))?
            {
                return Ok(Some(found));
            }
            r.ui_customization(&pool_id, None)
        })
        .await?)
}

pub async fn get_ui_customization(
    s: AppState,
    r: p::GetUICustomizationRequest,
) -> Result<p::GetUICustomizationResponse> {
    let pool = load_pool(&s, &r.user_pool_id).await?;
    if let Some(c) = client_arg(r.client_id.as_deref()) {
        crate::clients::load_client(&s, &pool.id, &c).await?;
    }
    let found = effective_ui(&s, &pool.id, r.client_id.as_deref()).await?;
    Ok(p::GetUICustomizationResponse {
        ui_customization: match found {
            Some(c) => wire_ui(&s, &pool, &c),
            // Nothing set: Cognito answers with an empty customization.
            None => p::UICustomizationType {
                user_pool_id: Some(pool.id.clone()),
                client_id: r.client_id.clone(),
                ..Default::default()
            },
        },
    })
}

// ---- managed login ----

fn assets_of(list: &[p::AssetType]) -> Result<Vec<BrandingAsset>> {
    list.iter()
        .map(|a| {
            let bytes = match &a.bytes {
                Some(b64) => {
                    let raw = decode_base64(b64, "Asset Bytes")?;
                    if raw.len() > MAX_ASSET_BYTES {
                        return Err(ApiError::invalid(format!(
                            "Asset {} is {} bytes; at most {MAX_ASSET_BYTES} are allowed.",
                            a.category.as_str(),
                            raw.len()
                        )));
                    }
                    Some(base64::engine::general_purpose::STANDARD.encode(&raw))
                }
                None => None,
            };
            Ok(BrandingAsset {
                category: a.category.as_str().to_owned(),
                color_mode: a.color_mode.as_str().to_owned(),
                extension: a.extension.as_str().to_owned(),
                bytes,
                resource_id: a.resource_id.clone(),
            })
        })
        .collect()
}

fn settings_of(d: Option<&p::Document>) -> Result<Option<Value>> {
    match d.map(|d| &d.0) {
        None | Some(Value::Null) => Ok(None),
        Some(v @ Value::Object(_)) => Ok(Some(v.clone())),
        Some(_) => Err(ApiError::invalid("Settings must be a JSON object.")),
    }
}

/// The defaults of the settings cognate maps to the pages (see docs/hosted-pages.md),
/// in Cognito's settings document shape: what ReturnMergedResources fills in.
pub fn default_settings() -> Value {
    json!({
        "components": {
            "pageBackground": {"lightMode": {"color": "f6f8faff"}},
            "form": {
                "borderRadius": 8.0,
                "lightMode": {"backgroundColor": "ffffffff", "borderColor": "d0d7deff"}
            },
            "primaryButton": {"lightMode": {
                "defaults": {"backgroundColor": "0b5cadff", "textColor": "ffffffff"},
                "hover": {"backgroundColor": "094a8cff", "textColor": "ffffffff"}
            }},
            "pageText": {"lightMode": {
                "bodyColor": "1b1f24ff", "headingColor": "1b1f24ff", "descriptionColor": "57606aff"
            }}
        },
        "componentClasses": {
            "buttons": {"borderRadius": 6.0},
            "input": {
                "borderRadius": 6.0,
                "lightMode": {"defaults": {"backgroundColor": "ffffffff", "borderColor": "8c959fff"}}
            },
            "link": {"lightMode": {
                "defaults": {"textColor": "0b5cadff"},
                "hover": {"textColor": "094a8cff"}
            }}
        }
    })
}

/// `over` laid onto `base`, objects merged key by key.
fn merge(base: &mut Value, over: &Value) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                merge(b.entry(k.clone()).or_insert(Value::Null), v);
            }
        }
        (b, o) => *b = o.clone(),
    }
}

fn wire_branding(b: &ManagedLoginBranding, merged: bool) -> p::ManagedLoginBrandingType {
    let settings = if merged {
        let mut d = default_settings();
        if let Some(s) = &b.settings {
            merge(&mut d, s);
        }
        Some(d)
    } else {
        b.settings.clone()
    };
    let assets: Vec<p::AssetType> = b
        .assets
        .iter()
        .map(|a| p::AssetType {
            category: serde_json::from_value(Value::from(a.category.as_str())).unwrap_or_default(),
            color_mode: serde_json::from_value(Value::from(a.color_mode.as_str()))
                .unwrap_or_default(),
            extension: serde_json::from_value(Value::from(a.extension.as_str()))
                .unwrap_or_default(),
            bytes: a.bytes.clone(),
            resource_id: a.resource_id.clone(),
        })
        .collect();
    p::ManagedLoginBrandingType {
        managed_login_branding_id: Some(b.id.clone()),
        user_pool_id: Some(b.pool_id.clone()),
        use_cognito_provided_values: Some(b.use_cognito_provided_values),
        settings: settings.map(p::Document),
        assets: Some(assets),
        creation_date: Some(epoch(b.created_at)),
        last_modified_date: Some(epoch(b.updated_at)),
    }
}

/// The style a command left behind, from its event.
fn set_branding(events: &[cognate_domain::Envelope]) -> Option<ManagedLoginBranding> {
    events.iter().find_map(|e| match &e.event {
        cognate_domain::Event::PoolManagedLoginBrandingSet { branding } => Some(branding.clone()),
        _ => None,
    })
}

pub async fn create_managed_login_branding(
    s: AppState,
    r: p::CreateManagedLoginBrandingRequest,
) -> Result<p::CreateManagedLoginBrandingResponse> {
    let now = now_ms();
    let branding = ManagedLoginBranding {
        id: crate::util::new_sub(),
        pool_id: r.user_pool_id.clone(),
        client_id: r.client_id.clone(),
        use_cognito_provided_values: r.use_cognito_provided_values.unwrap_or(false),
        settings: settings_of(r.settings.as_ref())?,
        assets: assets_of(r.assets.as_deref().unwrap_or_default())?,
        created_at: now,
        updated_at: now,
    };
    let executed = s
        .run(
            Command::CreateManagedLoginBranding {
                branding: branding.clone(),
            },
            now,
        )
        .await?;
    let stored = set_branding(&executed).unwrap_or(branding);
    Ok(p::CreateManagedLoginBrandingResponse {
        managed_login_branding: Some(wire_branding(&stored, false)),
    })
}

fn required<'a>(v: &'a Option<String>, name: &str) -> Result<&'a str> {
    v.as_deref()
        .ok_or_else(|| ApiError::invalid(format!("{name} is required.")))
}

pub async fn update_managed_login_branding(
    s: AppState,
    r: p::UpdateManagedLoginBrandingRequest,
) -> Result<p::UpdateManagedLoginBrandingResponse> {
    let pool_id = required(&r.user_pool_id, "UserPoolId")?;
    let id = required(&r.managed_login_branding_id, "ManagedLoginBrandingId")?;
    let now = now_ms();
    let cmd = Command::UpdateManagedLoginBranding {
        pool_id: pool_id.to_owned(),
        id: id.to_owned(),
        use_cognito_provided_values: r.use_cognito_provided_values,
        settings: settings_of(r.settings.as_ref())?,
        assets: r.assets.as_deref().map(assets_of).transpose()?,
        at: now,
    };
    let executed = s.run(cmd, now).await?;
    Ok(p::UpdateManagedLoginBrandingResponse {
        managed_login_branding: set_branding(&executed).map(|b| wire_branding(&b, false)),
    })
}

pub async fn delete_managed_login_branding(
    s: AppState,
    r: p::DeleteManagedLoginBrandingRequest,
) -> Result<p::Empty> {
    s.run(
        Command::DeleteManagedLoginBranding {
            pool_id: r.user_pool_id.clone(),
            id: r.managed_login_branding_id.clone(),
        },
        now_ms(),
    )
    .await?;
    Ok(p::Empty {})
}

fn not_found(what: &str) -> ApiError {
    ApiError::new(
        cognate_domain::ErrorKind::ResourceNotFound,
        format!("{what} does not exist."),
    )
}

pub async fn describe_managed_login_branding(
    s: AppState,
    r: p::DescribeManagedLoginBrandingRequest,
) -> Result<p::DescribeManagedLoginBrandingResponse> {
    let pool = load_pool(&s, &r.user_pool_id).await?;
    let id = r.managed_login_branding_id.clone();
    let pool_id = pool.id.clone();
    let found = s
        .store()
        .read(move |v| {
            Ok(v.managed_login_brandings(&pool_id)?
                .into_iter()
                .find(|b| b.id == id))
        })
        .await?
        .ok_or_else(|| {
            not_found(&format!(
                "Managed login branding {}",
                r.managed_login_branding_id
            ))
        })?;
    Ok(p::DescribeManagedLoginBrandingResponse {
        managed_login_branding: Some(wire_branding(
            &found,
            r.return_merged_resources.unwrap_or(false),
        )),
    })
}

/// A client's managed login style, if it has one.
pub async fn branding_of_client(
    s: &AppState,
    pool_id: &str,
    client_id: &str,
) -> Result<Option<ManagedLoginBranding>> {
    let (pool_id, client_id) = (pool_id.to_owned(), client_id.to_owned());
    Ok(s.store()
        .read(move |v| v.managed_login_branding(&pool_id, &client_id))
        .await?)
}

pub async fn describe_managed_login_branding_by_client(
    s: AppState,
    r: p::DescribeManagedLoginBrandingByClientRequest,
) -> Result<p::DescribeManagedLoginBrandingByClientResponse> {
    let pool = load_pool(&s, &r.user_pool_id).await?;
    crate::clients::load_client(&s, &pool.id, &r.client_id).await?;
    let found = branding_of_client(&s, &pool.id, &r.client_id)
        .await?
        .ok_or_else(|| {
            not_found(&format!(
                "Managed login branding for client {}",
                r.client_id
            ))
        })?;
    Ok(p::DescribeManagedLoginBrandingByClientResponse {
        managed_login_branding: Some(wire_branding(
            &found,
            r.return_merged_resources.unwrap_or(false),
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn css_is_checked_like_cognitos_classic_hosted_ui() {
        assert!(check_css("").is_ok());
        assert!(
            check_css(
                "/* brand */ .banner-customizable { background-color: #123456; }\n\
                 .submitButton-customizable:hover, .label-customizable { color: red }"
            )
            .is_ok()
        );
        for bad in [
            "@import 'x.css';",
            ".banner-customizable { background: url(https://x/y.png) }",
            "body { color: red }",
            ".banner-customizable .x { color: red }",
            ".banner-customizable { color: red } </style>",
            ".banner-customizable { color: red",
            ".banner-customizable { a { color: red } }",
            "color: red;",
            ".banner-customizable { content: '\\75 rl(' }",
            ".banner-customizable { color: red } /* open",
        ] {
            assert!(check_css(bad).is_err(), "accepted {bad:?}");
        }
    }

    #[test]
    fn logos_are_png_or_jpeg_of_at_most_100_kb() {
        let enc = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &[0; 16]].concat();
        assert_eq!(logo_of(&enc(&png)).unwrap().content_type, "image/png");
        assert_eq!(
            logo_of(&enc(&[0xff, 0xd8, 0xff, 0xe0]))
                .unwrap()
                .content_type,
            "image/jpeg"
        );
        assert!(logo_of(&enc(b"GIF89a....")).is_err());
        assert!(logo_of("not base64!").is_err());
        let big = [png.clone(), vec![0; MAX_LOGO_BYTES]].concat();
        assert!(logo_of(&enc(&big)).is_err());
    }
}
