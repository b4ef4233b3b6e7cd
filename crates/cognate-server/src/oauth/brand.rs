//! What branding does to the hosted pages: a second stylesheet per app client
//! (`<base>/ui.css?client_id=…`), the logo (`<base>/logo?client_id=…`) and managed login
//! images (`<base>/asset?client_id=…&category=…`), all on the domain's own origin so the
//! pages' CSP stays `style-src 'self'; img-src 'self'`.
//!
//! A domain with ManagedLoginVersion 1 (classic hosted UI) shows the client's
//! UICustomization, else the pool's (`ALL`); one with version 2 shows CSS generated from
//! the client's managed login style (the subset of settings in `generated_css`).
//! URLs carry the style's version, and answers an ETag, so browsers cache them.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use cognate_domain::{ManagedLoginBranding, UiCustomization};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;
use serde_json::Value;

use super::Site;
use crate::branding::{branding_of_client, effective_ui};
use crate::state::AppState;

/// What a client's pages look like on this domain.
enum Look {
    Classic(Option<UiCustomization>),
    Managed(Option<ManagedLoginBranding>),
}

impl Look {
    fn version(&self) -> String {
        match self {
            Look::Classic(Some(c)) => format!("c{}", c.css_version),
            Look::Managed(Some(b)) => format!("m{}", b.updated_at),
            _ => "0".into(),
        }
    }

    fn has_logo(&self) -> bool {
        match self {
            Look::Classic(c) => c.as_ref().is_some_and(|c| c.logo.is_some()),
            Look::Managed(b) => b.as_ref().is_some_and(|b| b.asset("FORM_LOGO").is_some()),
        }
    }
}

async fn look(s: &AppState, site: &Site, client: Option<&str>) -> crate::error::Result<Look> {
    let client = client.filter(|c| *c != "ALL");
    if site.login_version >= 2 {
        let Some(c) = client else {
            return Ok(Look::Managed(None));
        };
        return Ok(Look::Managed(
            branding_of_client(s, &site.pool.id, c).await?,
        ));
    }
    Ok(Look::Classic(effective_ui(s, &site.pool.id, client).await?))
}

/// The branding links of a page: its stylesheet and, when there is one, its logo.
pub(crate) struct PageBrand {
    pub css: String,
    pub logo: Option<String>,
}

pub(crate) async fn page_brand(s: &AppState, site: &Site, client_id: &str) -> PageBrand {
    let look = match look(s, site, Some(client_id)).await {
        Ok(l) => l,
        Err(e) => {
            // The page still works unbranded.
            tracing::warn!(error = %e.message, "branding of a hosted page could not be read");
            Look::Classic(None)
        }
    };
    let q = format!("client_id={client_id}&v={}", look.version());
    PageBrand {
        css: format!("{}/ui.css?{q}", site.base),
        logo: look.has_logo().then(|| format!("{}/logo?{q}", site.base)),
    }
}

#[derive(Deserialize)]
pub struct BrandQuery {
    client_id: Option<String>,
    category: Option<String>,
    v: Option<String>,
}

/// Resolves the query's client (which must be of this pool) to its look.
async fn look_of(s: &AppState, site: &Site, q: &BrandQuery) -> Result<Look, Response> {
    let client = q.client_id.as_deref().filter(|c| *c != "ALL");
    if let Some(c) = client
        && crate::clients::load_client(s, &site.pool.id, c)
            .await
            .is_err()
    {
        return Err(StatusCode::NOT_FOUND.into_response());
    }
    look(s, site, client)
        .await
        .map_err(IntoResponse::into_response)
}

/// A cacheable answer: long-lived when the URL names the current version, revalidated
/// by ETag otherwise.
fn cached(
    headers: &HeaderMap,
    version: &str,
    asked: Option<&str>,
    content_type: &str,
    body: Vec<u8>,
) -> Response {
    let etag = format!("\"{version}\"");
    let cache = if asked == Some(version) {
        "public, max-age=86400"
    } else {
        "no-cache"
    };
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut resp = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        ([(header::CONTENT_TYPE, content_type.to_owned())], body).into_response()
    };
    let h = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    resp
}

pub async fn stylesheet(
    State(s): State<AppState>,
    site: Site,
    Query(q): Query<BrandQuery>,
    headers: HeaderMap,
) -> Response {
    let look = match look_of(&s, &site, &q).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let version = look.version();
    let css = match &look {
        Look::Classic(Some(c)) => format!(
            "/* UICustomization of {} */\n{}\n",
            c.client_id.as_deref().unwrap_or("ALL"),
            c.css.as_deref().unwrap_or_default()
        ),
        Look::Managed(Some(b)) if !b.use_cognito_provided_values => {
            let asset = |category: &str| {
                format!(
                    "asset?client_id={}&category={category}&v={version}",
                    b.client_id
                )
            };
            generated_css(b, &asset)
        }
        _ => "/* no branding: the default look */\n".into(),
    };
    cached(
        &headers,
        &version,
        q.v.as_deref(),
        "text/css; charset=utf-8",
        css.into_bytes(),
    )
}

fn image_response(
    headers: &HeaderMap,
    version: &str,
    asked: Option<&str>,
    content_type: &str,
    b64: &str,
) -> Response {
    match base64::engine::general_purpose::STANDARD.decode(b64) {
        Ok(bytes) => cached(headers, version, asked, content_type, bytes),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

/// The media type of a managed login asset's extension.
fn asset_type(extension: &str) -> &'static str {
    match extension {
        "PNG" => "image/png",
        "JPEG" => "image/jpeg",
        "SVG" => "image/svg+xml",
        "WEBP" => "image/webp",
        "ICO" => "image/x-icon",
        _ => "application/octet-stream",
    }
}

fn managed_asset(
    headers: &HeaderMap,
    version: &str,
    asked: Option<&str>,
    b: &ManagedLoginBranding,
    category: &str,
) -> Response {
    match b.asset(category) {
        Some(a) => image_response(
            headers,
            version,
            asked,
            asset_type(&a.extension),
            a.bytes.as_deref().unwrap_or_default(),
        ),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

pub async fn logo(
    State(s): State<AppState>,
    site: Site,
    Query(q): Query<BrandQuery>,
    headers: HeaderMap,
) -> Response {
    let look = match look_of(&s, &site, &q).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let version = look.version();
    match &look {
        Look::Classic(Some(UiCustomization {
            logo: Some(logo), ..
        })) => image_response(
            &headers,
            &version,
            q.v.as_deref(),
            &logo.content_type,
            &logo.base64,
        ),
        Look::Managed(Some(b)) => managed_asset(&headers, &version, q.v.as_deref(), b, "FORM_LOGO"),
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

pub async fn asset(
    State(s): State<AppState>,
    site: Site,
    Query(q): Query<BrandQuery>,
    headers: HeaderMap,
) -> Response {
    let look = match look_of(&s, &site, &q).await {
        Ok(l) => l,
        Err(r) => return r,
    };
    let version = look.version();
    match (&look, q.category.as_deref()) {
        (Look::Managed(Some(b)), Some(category)) => {
            managed_asset(&headers, &version, q.v.as_deref(), b, category)
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

// ---- managed login settings to CSS ----

fn at<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(v, |v, k| v.get(k))
}

/// A color of the settings document (`RRGGBB` or `RRGGBBAA` hex, as Cognito writes them),
/// or nothing: any other text never reaches the stylesheet.
fn color(v: &Value, path: &str) -> Option<String> {
    let c = at(v, path)?.as_str()?.trim_start_matches('#');
    ((c.len() == 6 || c.len() == 8) && c.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("#{}", c.to_ascii_lowercase()))
}

/// A length in pixels, within reason.
fn pixels(v: &Value, path: &str) -> Option<String> {
    let n = at(v, path)?.as_f64()?;
    (n.is_finite() && (0.0..=100.0).contains(&n)).then(|| format!("{n}px"))
}

/// CSS for a managed login style. The settings mapped (light mode; the pages have no dark
/// mode), in Cognito's settings document paths:
///
/// | setting | what it styles |
/// |---|---|
/// | `components.pageBackground.lightMode.color` | page background |
/// | `components.pageText.lightMode.bodyColor`, `.headingColor`, `.descriptionColor` | text, the heading, hints |
/// | `components.form.lightMode.backgroundColor`, `.borderColor`, `components.form.borderRadius` | the form's card |
/// | `components.primaryButton.lightMode.defaults.backgroundColor`, `.textColor`, and `.hover.…` | submit buttons |
/// | `componentClasses.buttons.borderRadius` | buttons |
/// | `componentClasses.input.lightMode.defaults.backgroundColor`, `.borderColor`, `componentClasses.input.borderRadius` | inputs |
/// | `componentClasses.link.lightMode.defaults.textColor`, `.hover.textColor` | links |
///
/// Assets: `PAGE_BACKGROUND` becomes the page's background image, `FORM_LOGO` the logo.
pub fn generated_css(b: &ManagedLoginBranding, asset_url: &dyn Fn(&str) -> String) -> String {
    let empty = Value::Null;
    let v = b.settings.as_ref().unwrap_or(&empty);
    let mut out = format!(
        "/* managed login branding {} of client {} */\n",
        b.id, b.client_id
    );
    let mut rule = |selector: &str, decls: Vec<(&str, Option<String>)>| {
        let body: Vec<String> = decls
            .into_iter()
            .filter_map(|(prop, val)| val.map(|v| format!("  {prop}: {v};")))
            .collect();
        if !body.is_empty() {
            out.push_str(&format!("{selector} {{\n{}\n}}\n", body.join("\n")));
        }
    };
    let bg_image = b
        .asset("PAGE_BACKGROUND")
        .map(|_| format!("url(\"{}\")", asset_url("PAGE_BACKGROUND")));
    rule(
        ".background-customizable",
        vec![
            (
                "background-color",
                color(v, "components.pageBackground.lightMode.color"),
            ),
            ("color", color(v, "components.pageText.lightMode.bodyColor")),
            ("background-image", bg_image.clone()),
            ("background-size", bg_image.as_ref().map(|_| "cover".into())),
            (
                "background-position",
                bg_image.as_ref().map(|_| "center".into()),
            ),
        ],
    );
    rule(
        ".card",
        vec![
            (
                "background-color",
                color(v, "components.form.lightMode.backgroundColor"),
            ),
            (
                "border-color",
                color(v, "components.form.lightMode.borderColor"),
            ),
            ("border-radius", pixels(v, "components.form.borderRadius")),
        ],
    );
    rule(
        ".card h1",
        vec![(
            "color",
            color(v, "components.pageText.lightMode.headingColor"),
        )],
    );
    rule(
        ".textDescription-customizable",
        vec![(
            "color",
            color(v, "components.pageText.lightMode.descriptionColor"),
        )],
    );
    let button_bg = color(
        v,
        "components.primaryButton.lightMode.defaults.backgroundColor",
    );
    rule(
        ".submitButton-customizable",
        vec![
            ("background-color", button_bg.clone()),
            ("border-color", button_bg),
            (
                "color",
                color(v, "components.primaryButton.lightMode.defaults.textColor"),
            ),
            (
                "border-radius",
                pixels(v, "componentClasses.buttons.borderRadius"),
            ),
        ],
    );
    let hover_bg = color(
        v,
        "components.primaryButton.lightMode.hover.backgroundColor",
    );
    rule(
        ".submitButton-customizable:hover",
        vec![
            ("background-color", hover_bg.clone()),
            ("border-color", hover_bg),
            (
                "color",
                color(v, "components.primaryButton.lightMode.hover.textColor"),
            ),
        ],
    );
    rule(
        ".inputField-customizable",
        vec![
            (
                "background-color",
                color(
                    v,
                    "componentClasses.input.lightMode.defaults.backgroundColor",
                ),
            ),
            (
                "border-color",
                color(v, "componentClasses.input.lightMode.defaults.borderColor"),
            ),
            (
                "border-radius",
                pixels(v, "componentClasses.input.borderRadius"),
            ),
        ],
    );
    rule(
        ".redirect-customizable",
        vec![(
            "color",
            color(v, "componentClasses.link.lightMode.defaults.textColor"),
        )],
    );
    rule(
        ".redirect-customizable:hover",
        vec![(
            "color",
            color(v, "componentClasses.link.lightMode.hover.textColor"),
        )],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_become_css_and_nothing_else_does() {
        let b = ManagedLoginBranding {
            id: "b".into(),
            pool_id: "p".into(),
            client_id: "c".into(),
            use_cognito_provided_values: false,
            settings: Some(serde_json::json!({
                "components": {
                    "pageBackground": {"lightMode": {"color": "112233ff"}},
                    "primaryButton": {"lightMode": {"defaults": {"backgroundColor": "red; } body { x: y"}}}
                },
                "componentClasses": {"input": {"borderRadius": 12.0}}
            })),
            assets: vec![],
            created_at: 0,
            updated_at: 0,
        };
        let css = generated_css(&b, &|c| format!("asset?category={c}"));
        assert!(css.contains("background-color: #112233ff;"), "{css}");
        assert!(css.contains("border-radius: 12px;"), "{css}");
        assert!(!css.contains("red"), "{css}");
        assert!(!css.contains("url("), "{css}");
    }
}
