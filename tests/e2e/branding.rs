//! Branding of the hosted pages: SetUICustomization / GetUICustomization (classic hosted
//! UI CSS and logo, per pool and per client) and the managed login branding operations,
//! through the AWS SDK for Rust; then what the pages make of them: the branded stylesheet
//! they link, the customer's rules or the generated colors in it, and the logo's bytes.

use aws_smithy_types::{Blob, Document, Number};
use base64::Engine as _;

use crate::common::*;
use crate::hosted::{Browser, Provider, attr_of, authorize_url, oauth_client};

/// A real 4×4 orange PNG.
const PNG_B64: &str = "iVBORw0KGgoAAAANSUhEUgAAAAQAAAAECAIAAAAmkwkpAAAAEElEQVR42mP4n8YARwzEcQBUYhZR/Jv5igAAAABJRU5ErkJggg==";

fn png() -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(PNG_B64)
        .unwrap()
}

/// A JPEG signature followed by filler: what the checks look at.
fn jpeg() -> Vec<u8> {
    [vec![0xff, 0xd8, 0xff, 0xe0], vec![7; 64]].concat()
}

/// The `href` of the page's branding stylesheet and the `src` of its logo, if any.
fn brand_links(body: &str) -> (String, Option<(String, String)>) {
    let link = body
        .split("<link")
        .find(|t| t.contains("id=\"brand-css\""))
        .unwrap_or_else(|| panic!("no branding stylesheet in:\n{body}"));
    let css = attr_of(&format!(" {}", &link[..link.find('>').unwrap()]), "href").unwrap();
    let logo = body.split("<img").nth(1).map(|t| {
        let tag = format!(" {}", &t[..t.find('>').unwrap()]);
        (attr_of(&tag, "src").unwrap(), attr_of(&tag, "alt").unwrap())
    });
    (css, logo)
}

/// GET on the daemon: status, content type and body bytes.
async fn fetch(d: &Daemon, path: &str) -> (u16, String, Vec<u8>, reqwest::header::HeaderMap) {
    let url = if path.starts_with("http") {
        path.to_owned()
    } else {
        d.url(path)
    };
    let resp = http().get(url).send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let ct = headers
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, ct, resp.bytes().await.unwrap().to_vec(), headers)
}

/// The login page of `client` and its branding links.
async fn login_page(p: &Provider, client: &str) -> (String, Option<(String, String)>, String) {
    let mut b = Browser::new(&p.d);
    let (url, _) = authorize_url(&p.base, client, "&scope=openid");
    let page = b.browse(&url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (css, logo) = brand_links(&page.body);
    (css, logo, page.body)
}

async fn client_name(p: &Provider, client: &str) -> String {
    p.c.describe_user_pool_client()
        .user_pool_id(&p.pool)
        .client_id(client)
        .send()
        .await
        .unwrap()
        .user_pool_client()
        .unwrap()
        .client_name()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn ui_customization_per_pool_and_per_client_brands_the_classic_pages() {
    let p = Provider::new("brand-classic").await;
    let c = &p.c;
    let (other, _) = oauth_client(
        c,
        &p.pool,
        &[OAuthFlowType::Code],
        crate::hosted::DOMAIN_SCOPES,
        false,
    )
    .await;

    // Unbranded: the page links the stylesheet, which has nothing in it, and no logo.
    let (css_url, logo, _) = login_page(&p, &p.client).await;
    assert!(
        css_url.starts_with(&format!("{}/ui.css?client_id={}&v=", p.base, p.client)),
        "{css_url}"
    );
    assert!(logo.is_none());
    let (status, ct, css, _) = fetch(&p.d, &css_url).await;
    assert_eq!((status, ct.as_str()), (200, "text/css; charset=utf-8"));
    assert!(!String::from_utf8(css).unwrap().contains("customizable"));

    // A pool without a domain cannot be customized.
    let bare = create_pool(c, "no-domain").await;
    assert_code(
        c.set_ui_customization()
            .user_pool_id(&bare)
            .css(".banner-customizable { color: red; }")
            .send()
            .await,
        "InvalidParameterException",
    );

    // The pool's default (ALL): CSS and logo.
    let pool_css = ".banner-customizable { background-color: #c0ffee; }\n.submitButton-customizable:hover { color: #101010; }";
    let set = c
        .set_ui_customization()
        .user_pool_id(&p.pool)
        .client_id("ALL")
        .css(pool_css)
        .image_file(Blob::new(png()))
        .send()
        .await
        .unwrap();
    let ui = set.ui_customization().unwrap();
    assert_eq!(ui.user_pool_id(), Some(p.pool.as_str()));
    assert_eq!(ui.client_id(), Some("ALL"));
    assert_eq!(ui.css(), Some(pool_css));
    let version = ui.css_version().unwrap().to_owned();
    assert!(!version.is_empty());
    assert!(ui.creation_date().is_some() && ui.last_modified_date().is_some());
    let image_url = ui.image_url().unwrap().to_owned();
    assert!(
        image_url.contains("/domains/brand-classic/logo?client_id=ALL"),
        "{image_url}"
    );
    let (status, ct, bytes, _) = fetch(&p.d, &image_url).await;
    assert_eq!((status, ct.as_str()), (200, "image/png"));
    assert_eq!(bytes, png());

    // A client without its own falls back to the pool's.
    let got = c
        .get_ui_customization()
        .user_pool_id(&p.pool)
        .client_id(&p.client)
        .send()
        .await
        .unwrap();
    let ui = got.ui_customization().unwrap();
    assert_eq!(ui.client_id(), Some("ALL"));
    assert_eq!(ui.css(), Some(pool_css));
    assert_eq!(ui.css_version(), Some(version.as_str()));

    // The client's own overrides it, entirely (no logo of its own: none shown).
    let client_css = ".submitButton-customizable { background-color: #ff6600; }";
    c.set_ui_customization()
        .user_pool_id(&p.pool)
        .client_id(&p.client)
        .css(client_css)
        .send()
        .await
        .unwrap();
    let got = c
        .get_ui_customization()
        .user_pool_id(&p.pool)
        .client_id(&p.client)
        .send()
        .await
        .unwrap();
    let ui = got.ui_customization().unwrap();
    assert_eq!(ui.client_id(), Some(p.client.as_str()));
    assert_eq!(ui.css(), Some(client_css));
    assert!(ui.image_url().is_none());
    let pool_level = c
        .get_ui_customization()
        .user_pool_id(&p.pool)
        .send()
        .await
        .unwrap();
    assert_eq!(pool_level.ui_customization().unwrap().css(), Some(pool_css));

    // The pages: the client's stylesheet carries its rule; the other client's the pool's
    // rules and logo, shown with the app's name as alt text.
    let (css_url, logo, _) = login_page(&p, &p.client).await;
    assert!(logo.is_none());
    let (_, _, css, headers) = fetch(&p.d, &css_url).await;
    let css = String::from_utf8(css).unwrap();
    assert!(css.contains(client_css), "{css}");
    assert!(!css.contains("#c0ffee"), "{css}");
    let etag = headers.get("etag").unwrap().to_str().unwrap().to_owned();
    assert!(
        headers
            .get("cache-control")
            .unwrap()
            .to_str()
            .unwrap()
            .contains("max-age"),
        "a versioned URL is cacheable"
    );
    let not_modified = http()
        .get(p.d.url(&css_url))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(not_modified.status().as_u16(), 304);

    let (css_url, logo, body) = login_page(&p, &other).await;
    for class in [
        "background-customizable",
        "banner-customizable",
        "logo-customizable",
        "label-customizable",
        "inputField-customizable",
        "submitButton-customizable",
        "redirect-customizable",
    ] {
        assert!(body.contains(class), "{class} missing:\n{body}");
    }
    let (_, _, css, _) = fetch(&p.d, &css_url).await;
    assert!(String::from_utf8(css).unwrap().contains("#c0ffee"));
    let (src, alt) = logo.expect("the pool's logo on the page");
    assert_eq!(alt, client_name(&p, &other).await);
    let (status, ct, bytes, _) = fetch(&p.d, &src).await;
    assert_eq!((status, ct.as_str()), (200, "image/png"));
    assert_eq!(bytes, png());

    // A new customization changes the stylesheet's URL.
    c.set_ui_customization()
        .user_pool_id(&p.pool)
        .client_id(&p.client)
        .css(".submitButton-customizable { background-color: #0000ff; }")
        .send()
        .await
        .unwrap();
    let (css_url2, _, _) = login_page(&p, &p.client).await;
    assert_ne!(css_url, css_url2);
    let (_, _, css, _) = fetch(&p.d, &css_url2).await;
    assert!(String::from_utf8(css).unwrap().contains("#0000ff"));

    // Unknown clients and pools.
    assert_code(
        c.set_ui_customization()
            .user_pool_id(&p.pool)
            .client_id("nosuchclient0000000000000a")
            .css("")
            .send()
            .await,
        "ResourceNotFoundException",
    );
    assert_code(
        c.get_ui_customization()
            .user_pool_id("us-east-1_nosuchpoo")
            .send()
            .await,
        "ResourceNotFoundException",
    );
}

#[tokio::test]
async fn ui_customization_refuses_css_and_images_cognito_refuses_and_keeps_the_old_one() {
    let p = Provider::new("brand-checks").await;
    let c = &p.c;
    let good = ".label-customizable { font-weight: 400; }";
    c.set_ui_customization()
        .user_pool_id(&p.pool)
        .css(good)
        .image_file(Blob::new(jpeg()))
        .send()
        .await
        .unwrap();
    let bad_css = [
        "@import url(https://evil.example/x.css);",
        ".banner-customizable { background-image: url(https://evil.example/x.png); }",
        ".banner-customizable { color: red; } </style><script>alert(1)</script>",
        "body { color: red; }",
        ".banner-customizable div { color: red; }",
        ".banner-customizable { color: red;",
    ];
    for css in bad_css {
        let msg = assert_code(
            c.set_ui_customization()
                .user_pool_id(&p.pool)
                .css(css)
                .send()
                .await,
            "InvalidParameterException",
        );
        assert!(msg.contains("CSS"), "{msg}");
    }
    // Larger than the model's 128 KiB.
    let huge = ".label-customizable { color: red; }\n".repeat(4000);
    assert_code(
        c.set_ui_customization()
            .user_pool_id(&p.pool)
            .css(huge)
            .send()
            .await,
        "InvalidParameterException",
    );
    // Only PNG and JPEG, at most 100 KB.
    assert_code(
        c.set_ui_customization()
            .user_pool_id(&p.pool)
            .image_file(Blob::new(b"GIF89a\x01\x00\x01\x00".to_vec()))
            .send()
            .await,
        "InvalidParameterException",
    );
    let too_big = [png(), vec![0; 100 * 1024]].concat();
    assert_code(
        c.set_ui_customization()
            .user_pool_id(&p.pool)
            .image_file(Blob::new(too_big))
            .send()
            .await,
        "InvalidParameterException",
    );
    // Nothing of the refused requests stayed.
    let got = c
        .get_ui_customization()
        .user_pool_id(&p.pool)
        .send()
        .await
        .unwrap();
    let ui = got.ui_customization().unwrap();
    assert_eq!(ui.css(), Some(good));
    let (status, ct, bytes, _) = fetch(&p.d, ui.image_url().unwrap()).await;
    assert_eq!((status, ct.as_str()), (200, "image/jpeg"));
    assert_eq!(bytes, jpeg());
}

fn doc(v: &Value) -> Document {
    match v {
        Value::Null => Document::Null,
        Value::Bool(b) => Document::Bool(*b),
        Value::Number(n) => Document::Number(Number::Float(n.as_f64().unwrap())),
        Value::String(s) => Document::String(s.clone()),
        Value::Array(a) => Document::Array(a.iter().map(doc).collect()),
        Value::Object(o) => Document::Object(o.iter().map(|(k, v)| (k.clone(), doc(v))).collect()),
    }
}

fn json_of(d: &Document) -> Value {
    match d {
        Document::Null => Value::Null,
        Document::Bool(b) => Value::Bool(*b),
        Document::Number(n) => json!(n.to_f64_lossy()),
        Document::String(s) => Value::String(s.clone()),
        Document::Array(a) => Value::Array(a.iter().map(json_of).collect()),
        Document::Object(o) => {
            Value::Object(o.iter().map(|(k, v)| (k.clone(), json_of(v))).collect())
        }
    }
}

fn asset(category: AssetCategoryType, ext: AssetExtensionType, bytes: Vec<u8>) -> AssetType {
    AssetType::builder()
        .category(category)
        .color_mode(ColorSchemeModeType::Light)
        .extension(ext)
        .bytes(Blob::new(bytes))
        .build()
        .unwrap()
}

#[tokio::test]
async fn managed_login_branding_lifecycle_and_its_generated_stylesheet() {
    let p = Provider::new("brand-managed").await;
    let c = &p.c;
    c.update_user_pool_domain()
        .user_pool_id(&p.pool)
        .domain("brand-managed")
        .managed_login_version(2)
        .send()
        .await
        .unwrap();

    // Defaults and settings exclude each other; the client must exist.
    assert_code(
        c.create_managed_login_branding()
            .user_pool_id(&p.pool)
            .client_id(&p.client)
            .use_cognito_provided_values(true)
            .settings(doc(&json!({"components": {}})))
            .send()
            .await,
        "InvalidParameterException",
    );
    assert_code(
        c.create_managed_login_branding()
            .user_pool_id(&p.pool)
            .client_id("nosuchclient0000000000000a")
            .use_cognito_provided_values(true)
            .send()
            .await,
        "ResourceNotFoundException",
    );

    let settings = json!({
        "components": {
            "pageBackground": {"lightMode": {"color": "123456ff"}},
            "primaryButton": {"lightMode": {"defaults": {"backgroundColor": "ff6600ff", "textColor": "000000ff"}}}
        },
        "componentClasses": {"input": {"borderRadius": 12.0}}
    });
    let created = c
        .create_managed_login_branding()
        .user_pool_id(&p.pool)
        .client_id(&p.client)
        .settings(doc(&settings))
        .assets(asset(
            AssetCategoryType::FormLogo,
            AssetExtensionType::Png,
            png(),
        ))
        .assets(asset(
            AssetCategoryType::PageBackground,
            AssetExtensionType::Jpeg,
            jpeg(),
        ))
        .send()
        .await
        .unwrap();
    let b = created.managed_login_branding().unwrap();
    let id = b.managed_login_branding_id().unwrap().to_owned();
    assert!(is_uuid(&id), "{id}");
    assert_eq!(b.user_pool_id(), Some(p.pool.as_str()));
    assert!(!b.use_cognito_provided_values());
    assert_eq!(json_of(b.settings().unwrap()), settings);
    assert_eq!(b.assets().len(), 2);
    assert!(b.creation_date().is_some() && b.last_modified_date().is_some());

    // One style per client.
    assert_code(
        c.create_managed_login_branding()
            .user_pool_id(&p.pool)
            .client_id(&p.client)
            .use_cognito_provided_values(true)
            .send()
            .await,
        "ManagedLoginBrandingExistsException",
    );

    // Describe answers exactly what was set, or merged with the defaults when asked.
    let by_client = c
        .describe_managed_login_branding_by_client()
        .user_pool_id(&p.pool)
        .client_id(&p.client)
        .send()
        .await
        .unwrap();
    let d = by_client.managed_login_branding().unwrap();
    assert_eq!(d.managed_login_branding_id(), Some(id.as_str()));
    assert_eq!(json_of(d.settings().unwrap()), settings);
    let logo = d
        .assets()
        .iter()
        .find(|a| a.category() == &AssetCategoryType::FormLogo)
        .unwrap();
    assert_eq!(logo.bytes().unwrap().as_ref(), png().as_slice());
    assert_eq!(logo.extension(), &AssetExtensionType::Png);
    let merged = c
        .describe_managed_login_branding()
        .user_pool_id(&p.pool)
        .managed_login_branding_id(&id)
        .return_merged_resources(true)
        .send()
        .await
        .unwrap();
    let m = json_of(merged.managed_login_branding().unwrap().settings().unwrap());
    assert_eq!(
        m["components"]["pageBackground"]["lightMode"]["color"],
        "123456ff"
    );
    assert!(
        m["componentClasses"]["link"]["lightMode"]["defaults"]["textColor"].is_string(),
        "{m}"
    );

    // The page: generated colors, the background image and the logo.
    let (css_url, logo, _) = login_page(&p, &p.client).await;
    let (status, ct, css, _) = fetch(&p.d, &css_url).await;
    assert_eq!((status, ct.as_str()), (200, "text/css; charset=utf-8"));
    let css = String::from_utf8(css).unwrap();
    assert!(css.contains("background-color: #123456ff;"), "{css}");
    assert!(css.contains("background-color: #ff6600ff;"), "{css}");
    assert!(css.contains("border-radius: 12px;"), "{css}");
    let bg = css
        .split("url(\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a background image");
    let (status, ct, bytes, _) = fetch(&p.d, &format!("{}/{bg}", p.base)).await;
    assert_eq!((status, ct.as_str()), (200, "image/jpeg"));
    assert_eq!(bytes, jpeg());
    let (src, alt) = logo.expect("the FORM_LOGO on the page");
    assert_eq!(alt, client_name(&p, &p.client).await);
    let (status, ct, bytes, _) = fetch(&p.d, &src).await;
    assert_eq!((status, ct.as_str()), (200, "image/png"));
    assert_eq!(bytes, png());

    // Update: new settings replace the old, assets not named stay.
    let updated = c
        .update_managed_login_branding()
        .user_pool_id(&p.pool)
        .managed_login_branding_id(&id)
        .settings(doc(
            &json!({"components": {"pageBackground": {"lightMode": {"color": "abcdefff"}}}}),
        ))
        .send()
        .await
        .unwrap();
    let u = updated.managed_login_branding().unwrap();
    assert_eq!(u.assets().len(), 2);
    let (css_url2, _, _) = login_page(&p, &p.client).await;
    assert_ne!(css_url, css_url2);
    let (_, _, css, _) = fetch(&p.d, &css_url2).await;
    let css = String::from_utf8(css).unwrap();
    assert!(
        css.contains("#abcdefff") && !css.contains("#ff6600ff"),
        "{css}"
    );

    // Back to Cognito's values: no settings, no assets, no logo.
    let reset = c
        .update_managed_login_branding()
        .user_pool_id(&p.pool)
        .managed_login_branding_id(&id)
        .use_cognito_provided_values(true)
        .send()
        .await
        .unwrap();
    let r = reset.managed_login_branding().unwrap();
    assert!(r.use_cognito_provided_values());
    assert!(r.settings().is_none() && r.assets().is_empty());
    let (_, logo, _) = login_page(&p, &p.client).await;
    assert!(logo.is_none());

    // Delete.
    c.delete_managed_login_branding()
        .user_pool_id(&p.pool)
        .managed_login_branding_id(&id)
        .send()
        .await
        .unwrap();
    assert_code(
        c.describe_managed_login_branding_by_client()
            .user_pool_id(&p.pool)
            .client_id(&p.client)
            .send()
            .await,
        "ResourceNotFoundException",
    );
    assert_code(
        c.delete_managed_login_branding()
            .user_pool_id(&p.pool)
            .managed_login_branding_id(&id)
            .send()
            .await,
        "ResourceNotFoundException",
    );
    assert_code(
        c.update_managed_login_branding()
            .user_pool_id(&p.pool)
            .managed_login_branding_id(&id)
            .use_cognito_provided_values(true)
            .send()
            .await,
        "ResourceNotFoundException",
    );
    let (css_url, _, _) = login_page(&p, &p.client).await;
    let (_, _, css, _) = fetch(&p.d, &css_url).await;
    assert!(!String::from_utf8(css).unwrap().contains("#abcdefff"));
    // A new style can be created again.
    c.create_managed_login_branding()
        .user_pool_id(&p.pool)
        .client_id(&p.client)
        .use_cognito_provided_values(true)
        .send()
        .await
        .unwrap();
}
