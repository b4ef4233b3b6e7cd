//! Handler tests of the console: every page and action through the router with
//! `oneshot`, over a real store in a temp directory, including the refusals (no session,
//! wrong or missing CSRF token, wrong credentials) and the attribution of every event.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, to_bytes};
use cognate_crypto::{HashPolicy, Keyring, PasswordHasher};
use cognate_domain::{Envelope, Event, UserStatus, View};
use cognate_proto as p;
use cognate_store::{Store, WriterConfig};
use http::{Request, StatusCode, header};
use tower::ServiceExt;

use super::accounts::{self, NewAccount};
use super::{ConsoleOptions, router_with};
use crate::{AppState, Config, StdoutSink};

const AK: &str = "AKIATESTCONSOLE00001";
const SECRET: &str = "console-test-secret-0123456789";
const PASSWORD: &str = "Corr3ct-Horse!";

struct Resp {
    status: StatusCode,
    headers: http::HeaderMap,
    body: String,
}

impl Resp {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
    fn cookies(&self) -> Vec<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok().map(str::to_owned))
            .collect()
    }
}

struct T {
    state: AppState,
    app: Router,
    dir: tempfile::TempDir,
    keyring: Keyring,
}

fn keyring() -> Keyring {
    Keyring::from_master_key(&[7u8; 32]).unwrap()
}

async fn setup_with(public_url: &str, idle: Duration) -> T {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new("us-east-1", public_url);
    config.admin_credentials.insert(AK.into(), SECRET.into());
    config.hash_policy = HashPolicy::cheap_for_tests();
    let store = Store::open(
        &dir.path().join("cognate.redb"),
        keyring(),
        WriterConfig::default(),
    )
    .unwrap();
    let state = AppState::new(config, store, keyring(), Arc::new(StdoutSink)).unwrap();
    let app = router_with::<()>(
        state.clone(),
        ConsoleOptions {
            accounts_file: Some(dir.path().join(accounts::FILE_NAME)),
            idle_timeout: idle,
        },
    );
    T {
        state,
        app,
        dir,
        keyring: keyring(),
    }
}

async fn setup() -> T {
    setup_with("http://127.0.0.1:9229", Duration::from_secs(1800)).await
}

impl T {
    async fn send(&self, req: Request<Body>) -> Resp {
        let resp = self.app.clone().oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let body = to_bytes(resp.into_body(), 4 << 20).await.unwrap();
        Resp {
            status,
            headers,
            body: String::from_utf8_lossy(&body).into_owned(),
        }
    }

    async fn get(&self, path: &str, cookie: &str) -> Resp {
        let mut b = Request::get(path);
        if !cookie.is_empty() {
            b = b.header(header::COOKIE, cookie);
        }
        self.send(b.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, path: &str, cookie: &str, form: &[(&str, &str)]) -> Resp {
        let body = form
            .iter()
            .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
            .collect::<Vec<_>>()
            .join("&");
        let mut b =
            Request::post(path).header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if !cookie.is_empty() {
            b = b.header(header::COOKIE, cookie);
        }
        self.send(b.body(Body::from(body)).unwrap()).await
    }

    /// Signs in and returns the session cookie and its CSRF token.
    async fn sign_in(&self, name: &str, secret: &str, code: &str) -> Resp {
        let page = self.get("/console/login", "").await;
        assert_eq!(page.status, StatusCode::OK);
        let login_cookie = cookie_pair(&page.cookies(), "cognate_console_login");
        let token = hidden(&page.body, "login_csrf");
        self.post(
            "/console/login",
            &login_cookie,
            &[
                ("login_csrf", &token),
                ("name", name),
                ("secret", secret),
                ("code", code),
            ],
        )
        .await
    }

    async fn session(&self) -> Session {
        let r = self.sign_in(AK, SECRET, "").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
        let cookie = cookie_pair(&r.cookies(), "cognate_console");
        let page = self.get("/console/pools", &cookie).await;
        assert_eq!(page.status, StatusCode::OK);
        Session {
            csrf: hidden(&page.body, "csrf"),
            cookie,
        }
    }

    /// Posts a form with the session's token and follows the redirect to read the flash.
    async fn act(&self, s: &Session, path: &str, form: &[(&str, &str)]) -> Resp {
        let mut f: Vec<(&str, &str)> = vec![("csrf", &s.csrf)];
        f.extend_from_slice(form);
        let r = self.post(path, &s.cookie, &f).await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}: {}", r.body);
        let next = self.get(r.location(), &s.cookie).await;
        assert_eq!(next.status, StatusCode::OK, "{}", r.location());
        next
    }

    async fn pool(&self, name: &str) -> String {
        let r = crate::pools::create(
            self.state.clone(),
            p::CreateUserPoolRequest {
                pool_name: name.into(),
                auto_verified_attributes: Some(vec![p::VerifiedAttributeType::Email]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        r.user_pool.unwrap().id.unwrap()
    }

    async fn client(&self, pool: &str) -> String {
        let r = crate::clients::create(
            self.state.clone(),
            p::CreateUserPoolClientRequest {
                user_pool_id: pool.into(),
                client_name: "web".into(),
                explicit_auth_flows: Some(vec![
                    p::ExplicitAuthFlowsType::AllowUserPasswordAuth,
                    p::ExplicitAuthFlowsType::AllowRefreshTokenAuth,
                ]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        r.user_pool_client.unwrap().client_id.unwrap()
    }

    /// A confirmed user created by the admin API, with its sub.
    async fn user(&self, pool: &str, name: &str, email: &str) -> String {
        let r = crate::admin::admin_create_user(
            self.state.clone(),
            p::AdminCreateUserRequest {
                user_pool_id: pool.into(),
                username: name.into(),
                user_attributes: Some(vec![p::AttributeType {
                    name: "email".into(),
                    value: Some(email.into()),
                }]),
                message_action: Some(p::MessageActionType::Suppress),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        r.user
            .unwrap()
            .attributes
            .unwrap()
            .into_iter()
            .find(|a| a.name == "sub")
            .and_then(|a| a.value)
            .unwrap()
    }

    /// An unconfirmed user who signed up through an app client.
    async fn signed_up(&self, client: &str, name: &str) -> String {
        let r = crate::users::sign_up(
            self.state.clone(),
            p::SignUpRequest {
                client_id: client.into(),
                username: name.into(),
                password: Some(p::Sensitive(PASSWORD.into())),
                user_attributes: Some(vec![p::AttributeType {
                    name: "email".into(),
                    value: Some(format!("{name}@example.com")),
                }]),
                ..Default::default()
            },
        )
        .await
        .unwrap();
        r.user_sub
    }

    async fn read_user(&self, pool: &str, sub: &str) -> Option<cognate_domain::User> {
        let (p, s) = (pool.to_owned(), sub.to_owned());
        self.state
            .store()
            .read(move |r| r.user_by_sub(&p, &s))
            .await
            .unwrap()
    }

    async fn events_after(&self, seq: u64) -> Vec<Envelope> {
        self.state
            .store()
            .read(move |r| r.events(seq + 1, 100_000))
            .await
            .unwrap()
    }

    async fn last_seq(&self) -> u64 {
        self.state.store().read(|r| r.last_seq()).await.unwrap()
    }
}

struct Session {
    cookie: String,
    csrf: String,
}

fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// `name=value` of a cookie among `Set-Cookie` headers.
fn cookie_pair(set: &[String], name: &str) -> String {
    set.iter()
        .filter_map(|c| c.split(';').next())
        .find(|c| c.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie in {set:?}"))
        .to_owned()
}

/// The value of the first hidden field of that name in a page.
fn hidden(html: &str, name: &str) -> String {
    let needle = format!("name=\"{name}\" value=\"");
    let at = html
        .find(&needle)
        .unwrap_or_else(|| panic!("no {name} field in {html}"))
        + needle.len();
    html[at..].split('"').next().unwrap().to_owned()
}

/// Every visible form control has a label pointing at it.
fn assert_labelled(html: &str) {
    for part in html.split('<').filter(|p| {
        (p.starts_with("input ") || p.starts_with("select ") || p.starts_with("textarea "))
            && !p.contains("type=\"hidden\"")
    }) {
        let id = part
            .split("id=\"")
            .nth(1)
            .and_then(|r| r.split('"').next())
            .unwrap_or_else(|| panic!("control without id: <{part}"));
        assert!(
            html.contains(&format!("<label for=\"{id}\"")),
            "no label for #{id}"
        );
    }
}

#[tokio::test]
async fn pages_and_actions_need_a_session() {
    let t = setup().await;
    let pool = t.pool("p").await;
    let sub = t.user(&pool, "alice", "alice@example.com").await;
    let client = t.client(&pool).await;
    for path in [
        "/console".to_owned(),
        "/console/pools".to_owned(),
        format!("/console/pools/{pool}"),
        format!("/console/pools/{pool}/clients/{client}"),
        format!("/console/pools/{pool}/users"),
        format!("/console/pools/{pool}/users/new"),
        format!("/console/pools/{pool}/users/{sub}"),
    ] {
        let r = t.get(&path, "").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
        assert!(r.location().ends_with("/console/login") || r.location() == "/console/pools");
        let r = t.get(&path, "cognate_console=forged").await;
        assert_eq!(r.status, StatusCode::SEE_OTHER, "{path}");
    }
    for action in ["disable", "delete", "set-password", "confirm"] {
        let r = t
            .post(
                &format!("/console/pools/{pool}/users/{sub}/{action}"),
                "cognate_console=forged",
                &[("csrf", "x"), ("confirm_username", "alice")],
            )
            .await;
        assert_eq!(r.status, StatusCode::SEE_OTHER);
        assert_eq!(r.location(), "/console/login");
    }
    let r = t
        .post(
            &format!("/console/pools/{pool}/clients"),
            "",
            &[("name", "x")],
        )
        .await;
    assert_eq!(r.location(), "/console/login");
    let before = t.last_seq().await;
    for (path, form) in [
        (
            format!("/console/pools/{pool}/domain/create"),
            vec![("domain", "shop")],
        ),
        (
            format!("/console/pools/{pool}/resource-servers/create"),
            vec![("identifier", "api"), ("name", "api")],
        ),
        (
            format!("/console/pools/{pool}/clients/{client}/oauth"),
            vec![("oauth_on", "yes")],
        ),
    ] {
        let mut form = form;
        form.push(("csrf", "x"));
        let r = t.post(&path, "cognate_console=forged", &form).await;
        assert_eq!(r.location(), "/console/login", "{path}");
    }
    assert_eq!(t.events_after(before).await.len(), 0);
    let u = t.read_user(&pool, &sub).await.unwrap();
    assert!(u.enabled, "nothing changed without a session");
}

#[tokio::test]
async fn admin_sign_in_sets_a_strict_http_only_cookie_and_security_headers() {
    let t = setup().await;
    let login = t.get("/console/login", "").await;
    assert_eq!(login.status, StatusCode::OK);
    assert_labelled(&login.body);
    let csp = login
        .headers
        .get(header::CONTENT_SECURITY_POLICY)
        .unwrap()
        .to_str()
        .unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    assert!(!login.body.contains("<script"), "no scripts at all");
    assert!(!login.body.contains("style="), "no inline styles");
    assert_eq!(login.headers.get(header::X_FRAME_OPTIONS).unwrap(), "DENY");
    let r = t.sign_in(AK, SECRET, "").await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/console/pools");
    let c = r
        .cookies()
        .into_iter()
        .find(|c| c.starts_with("cognate_console="))
        .unwrap();
    assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && c.contains("Path=/console"));
    assert!(!c.contains("Secure"), "plain http: {c}");
    let s = t.session().await;
    let page = t.get("/console/pools", &s.cookie).await;
    assert!(page.body.contains(&format!("admin:{AK}")));
    assert_eq!(page.headers.get(header::CACHE_CONTROL).unwrap(), "no-store");
    let css = t.get("/console/static/console.css", "").await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.headers
            .get(header::CONTENT_TYPE)
            .unwrap()
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    assert!(css.body.contains(":focus-visible"));
}

#[tokio::test]
async fn cookies_are_secure_behind_https() {
    let t = setup_with("https://id.example.com", Duration::from_secs(60)).await;
    let r = t.sign_in(AK, SECRET, "").await;
    assert!(
        r.cookies().iter().all(|c| c.contains("; Secure")),
        "{:?}",
        r.cookies()
    );
}

#[tokio::test]
async fn sign_in_refusals() {
    let t = setup().await;
    let r = t.sign_in(AK, "wrong", "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert!(
        r.cookies()
            .iter()
            .all(|c| !c.starts_with("cognate_console="))
    );
    let r = t.sign_in("AKIAUNKNOWN", SECRET, "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    // Without the double-submitted login token.
    let r = t
        .post("/console/login", "", &[("name", AK), ("secret", SECRET)])
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    let r = t
        .post(
            "/console/login",
            "cognate_console_login=abc",
            &[("login_csrf", "abd"), ("name", AK), ("secret", SECRET)],
        )
        .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);
    // Five failures lock the name, even for the right secret.
    for _ in 0..4 {
        t.sign_in(AK, "wrong", "").await;
    }
    let r = t.sign_in(AK, SECRET, "").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "locked");
}

#[tokio::test]
async fn console_accounts_sign_in_with_password_and_totp() {
    let t = setup().await;
    let path = t.dir.path().join(accounts::FILE_NAME);
    let hasher = PasswordHasher::new(HashPolicy::cheap_for_tests()).unwrap();
    let added = accounts::add(
        &path,
        &hasher,
        &t.keyring,
        NewAccount {
            name: "ops",
            password: "a long console password",
            totp: true,
            replace: false,
        },
        0,
    )
    .await
    .unwrap();
    assert!(added.totp.unwrap().1.starts_with("otpauth://totp/"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains("$argon2id$") && !text.contains("a long console password"));
    let file = accounts::load(&path).unwrap();
    let secret = t
        .keyring
        .open(file.accounts[0].totp_sealed.as_ref().unwrap())
        .unwrap();
    // Duplicate names are refused unless replacing.
    assert!(
        accounts::add(
            &path,
            &hasher,
            &t.keyring,
            NewAccount {
                name: "ops",
                password: "another long password",
                totp: false,
                replace: false
            },
            0,
        )
        .await
        .is_err()
    );

    assert_eq!(
        t.sign_in("ops", "a long console password", "").await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        t.sign_in("ops", "wrong password!!", "000000").await.status,
        StatusCode::UNAUTHORIZED
    );
    let step = (crate::util::now_ms() / 1000 / 30) as u64;
    let code = cognate_crypto::totp::code_at(&secret, step);
    let r = t.sign_in("ops", "a long console password", &code).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    let cookie = cookie_pair(&r.cookies(), "cognate_console");
    let page = t.get("/console/pools", &cookie).await;
    assert!(page.body.contains("console:ops"));
    let s = Session {
        csrf: hidden(&page.body, "csrf"),
        cookie,
    };

    // Its actions are attributed to the account.
    let pool = t.pool("p").await;
    let sub = t.user(&pool, "alice", "alice@example.com").await;
    let before = t.last_seq().await;
    t.act(
        &s,
        &format!("/console/pools/{pool}/users/{sub}/disable"),
        &[],
    )
    .await;
    let events = t.events_after(before).await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].actor.as_deref(), Some("console:ops"));

    // Removing the account ends its sessions.
    assert!(accounts::remove(&path, "ops").unwrap());
    // The cache follows the file's mtime; make sure it moves on coarse clocks.
    let f = std::fs::File::options().append(true).open(&path).unwrap();
    f.set_modified(std::time::SystemTime::now() + Duration::from_secs(5))
        .unwrap();
    let r = t.get("/console/pools", &s.cookie).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
}

#[tokio::test]
async fn sign_out_and_idle_timeout_end_sessions() {
    let t = setup_with("http://127.0.0.1:1", Duration::from_millis(300)).await;
    let s = t.session().await;
    let r = t
        .post("/console/logout", &s.cookie, &[("csrf", &s.csrf)])
        .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.cookies()
            .iter()
            .any(|c| c.starts_with("cognate_console=;") && c.contains("Max-Age=0"))
    );
    assert_eq!(
        t.get("/console/pools", &s.cookie).await.status,
        StatusCode::SEE_OTHER
    );

    let s = t.session().await;
    tokio::time::sleep(Duration::from_millis(450)).await;
    let r = t.get("/console/pools", &s.cookie).await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert_eq!(r.location(), "/console/login");
}

#[tokio::test]
async fn state_changing_forms_need_the_session_csrf_token() {
    let t = setup().await;
    let pool = t.pool("p").await;
    let sub = t.user(&pool, "alice", "alice@example.com").await;
    let s = t.session().await;
    let other = t.session().await;
    let before = t.last_seq().await;
    let path = format!("/console/pools/{pool}/users/{sub}/disable");
    for form in [
        vec![],
        vec![("csrf", "")],
        vec![("csrf", "forged")],
        vec![("csrf", other.csrf.as_str())],
    ] {
        let r = t.post(&path, &s.cookie, &form).await;
        assert_eq!(r.status, StatusCode::FORBIDDEN);
        assert!(r.body.contains("security token"));
    }
    for path in [
        format!("/console/pools/{pool}/clients"),
        format!("/console/pools/{pool}/users"),
        format!("/console/pools/{pool}/domain/create"),
        format!("/console/pools/{pool}/resource-servers/create"),
        format!("/console/pools/{pool}/clients/x/oauth"),
        "/console/logout".to_owned(),
    ] {
        let r = t
            .post(&path, &s.cookie, &[("name", "x"), ("username", "x")])
            .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}");
    }
    // A body that is not a form is refused too.
    let r = t
        .send(
            Request::post(&path)
                .header(header::COOKIE, &s.cookie)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(format!("{{\"csrf\":\"{}\"}}", s.csrf)))
                .unwrap(),
        )
        .await;
    assert_eq!(r.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        t.events_after(before).await.len(),
        0,
        "nothing was recorded"
    );
    assert!(t.read_user(&pool, &sub).await.unwrap().enabled);
    // The logout form of the signed-in page works (the session is still alive).
    assert_eq!(
        t.get("/console/pools", &s.cookie).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn pools_list_and_pool_page() {
    let t = setup().await;
    let pool = t.pool("shop <customers>").await;
    t.user(&pool, "alice", "alice@example.com").await;
    t.user(&pool, "bob", "bob@example.com").await;
    let client = t.client(&pool).await;
    crate::groups::create_group(
        t.state.clone(),
        p::CreateGroupRequest {
            user_pool_id: pool.clone(),
            group_name: "admins".into(),
            description: Some("People who run the shop".into()),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let s = t.session().await;
    let page = t.get("/console/pools", &s.cookie).await;
    assert!(page.body.contains(&pool));
    assert!(
        page.body.contains("shop &#60;customers&#62;"),
        "names are escaped"
    );
    assert!(!page.body.contains("<customers>"));
    assert!(
        page.body.contains("<td class=\"num\">2</td>"),
        "users count"
    );
    assert!(page.body.contains(">OFF<"), "MFA setting");
    assert!(page.body.contains("<td>none</td>"), "no triggers");
    crate::pools::update(
        t.state.clone(),
        p::UpdateUserPoolRequest {
            user_pool_id: pool.clone(),
            lambda_config: Some(p::LambdaConfigType {
                pre_sign_up: Some("arn:aws:lambda:us-east-1:000000000000:function:check".into()),
                ..Default::default()
            }),
            auto_verified_attributes: Some(vec![p::VerifiedAttributeType::Email]),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let page = t.get("/console/pools", &s.cookie).await;
    assert!(page.body.contains("<td>PreSignUp</td>"), "triggers");
    let page = t.get(&format!("/console/pools/{pool}"), &s.cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<code>email</code>"));
    assert!(
        page.body.contains("class=\"fixed\""),
        "immutable parts are marked"
    );
    assert!(page.body.contains(&client));
    assert!(page.body.contains("People who run the shop"));
    assert!(page.body.contains("ALLOW_USER_PASSWORD_AUTH"));
    assert!(page.body.contains("function:check"));
    assert!(
        page.body
            .contains("NATS</dt><dd id=\"nats\">not configured")
    );
    assert_labelled(&page.body);
    assert_eq!(
        t.get("/console/pools/us-east-1_nope", &s.cookie)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn app_client_actions() {
    let t = setup().await;
    let pool = t.pool("p").await;
    let s = t.session().await;
    let before = t.last_seq().await;
    let page = t
        .act(
            &s,
            &format!("/console/pools/{pool}/clients"),
            &[
                ("name", "backend"),
                ("secret", "yes"),
                ("flow", "ALLOW_USER_PASSWORD_AUTH"),
                ("flow", "ALLOW_REFRESH_TOKEN_AUTH"),
            ],
        )
        .await;
    assert!(
        page.body.contains("created. Its secret is"),
        "{}",
        page.body
    );
    let (pid, all) = (pool.clone(), pool.clone());
    let clients = t
        .state
        .store()
        .read(move |r| r.clients_of(&pid, None, 10))
        .await
        .unwrap();
    assert_eq!(clients.len(), 1);
    let c = clients[0].clone();
    assert_eq!(c.name, "backend");
    assert_eq!(
        c.explicit_auth_flows,
        vec!["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
    );
    let old_secret = c.secret_sealed.clone().unwrap();

    let page = t
        .act(
            &s,
            &format!("/console/pools/{pool}/clients/{}/rotate-secret", c.id),
            &[],
        )
        .await;
    assert!(page.body.contains("New secret of app client"));
    let cid = c.id.clone();
    let c2 = t
        .state
        .store()
        .read(move |r| r.client(&cid))
        .await
        .unwrap()
        .unwrap();
    let (a, b) = (
        t.keyring.open(&old_secret).unwrap(),
        t.keyring.open(c2.secret_sealed.as_ref().unwrap()).unwrap(),
    );
    assert_ne!(a, b, "the secret changed");
    assert_eq!(b.len(), 51);

    // There is no "disable" (Cognito has none, and emptying ExplicitAuthFlows made a
    // legacy client that still allowed SRP and refresh): the action is refused, the
    // client's flows stay as they were, and the page offers no such button.
    let flows_before = c2.explicit_auth_flows.clone();
    assert!(!flows_before.is_empty());
    let resp = t
        .post(
            &format!("/console/pools/{pool}/clients/{}/disable", c.id),
            &s.cookie,
            &[("csrf", &s.csrf)],
        )
        .await;
    assert_eq!(resp.status, StatusCode::NOT_FOUND, "{}", resp.body);
    let cid = c.id.clone();
    let c3 = t
        .state
        .store()
        .read(move |r| r.client(&cid))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(c3.explicit_auth_flows, flows_before);
    let page = t.get(&format!("/console/pools/{pool}"), &s.cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(&c.id));
    assert!(!page.body.contains("/disable\""), "{}", page.body);

    let page = t
        .act(
            &s,
            &format!("/console/pools/{pool}/clients/{}/delete", c.id),
            &[],
        )
        .await;
    assert!(page.body.contains("Tick the confirmation box"));
    let page = t
        .act(
            &s,
            &format!("/console/pools/{pool}/clients/{}/delete", c.id),
            &[("confirm", "yes")],
        )
        .await;
    assert!(page.body.contains("deleted"));
    let left = t
        .state
        .store()
        .read(move |r| r.clients_of(&all, None, 10))
        .await
        .unwrap();
    assert!(left.is_empty());

    let events = t.events_after(before).await;
    let kinds: Vec<&str> = events.iter().map(|e| e.event.type_name()).collect();
    assert_eq!(
        kinds,
        vec!["client.created", "client.updated", "client.deleted"]
    );
    for e in &events[1..] {
        assert_eq!(e.actor.as_deref(), Some(format!("admin:{AK}").as_str()));
    }
}

#[tokio::test]
async fn user_search_uses_cognito_filters_and_paginates() {
    let t = setup().await;
    let pool = t.pool("p").await;
    t.user(&pool, "alice", "alice@example.com").await;
    t.user(&pool, "alfred", "alfred@example.org").await;
    t.user(&pool, "bob", "bob@example.com").await;
    let s = t.session().await;
    let base = format!("/console/pools/{pool}/users");
    let page = t
        .get(&format!("{base}?attr=email&match=prefix&q=al"), &s.cookie)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains(">alice<") && page.body.contains(">alfred<"));
    assert!(!page.body.contains(">bob<"));
    assert_labelled(&page.body);
    let page = t
        .get(
            &format!("{base}?attr=email&match=exact&q=alice%40example.com"),
            &s.cookie,
        )
        .await;
    assert!(page.body.contains(">alice<") && !page.body.contains(">alfred<"));
    let page = t
        .get(&format!("{base}?attr=email&match=exact&q=al"), &s.cookie)
        .await;
    assert!(page.body.contains("No user matches."));
    let page = t
        .get(&format!("{base}?attr=username&match=prefix&q=B"), &s.cookie)
        .await;
    assert!(
        page.body.contains(">bob<"),
        "usernames fold case as in the pool"
    );
    let page = t
        .get(
            &format!("{base}?attr=cognito%3Auser_status&match=exact&q=FORCE_CHANGE_PASSWORD"),
            &s.cookie,
        )
        .await;
    assert_eq!(page.body.matches("FORCE_CHANGE_PASSWORD</span>").count(), 3);
    let page = t.get(&format!("{base}?attr=email&q=%22"), &s.cookie).await;
    assert_eq!(
        page.status,
        StatusCode::OK,
        "quotes are escaped in the filter"
    );

    for i in 0..27 {
        t.user(
            &pool,
            &format!("user{i:02}"),
            &format!("u{i:02}@example.net"),
        )
        .await;
    }
    let page = t
        .get(&format!("{base}?attr=email&match=prefix&q=u"), &s.cookie)
        .await;
    assert_eq!(page.body.matches("<th scope=\"row\">").count(), 25);
    let next = page
        .body
        .split("href=\"")
        .find(|p| p.contains("rel=\"next\""))
        .and_then(|p| p.split('"').next())
        .unwrap()
        .replace("&#38;", "&");
    let page = t.get(&next, &s.cookie).await;
    assert_eq!(page.body.matches("<th scope=\"row\">").count(), 2);
    assert!(!page.body.contains("rel=\"next\""));
    // The whole pool without a value.
    let page = t.get(&base, &s.cookie).await;
    assert_eq!(page.body.matches("<th scope=\"row\">").count(), 25);
}

#[tokio::test]
async fn user_actions_go_through_the_command_path_attributed_to_the_admin() {
    let t = setup().await;
    let pool = t.pool("p").await;
    crate::mfa::set_user_pool_mfa_config(
        t.state.clone(),
        p::SetUserPoolMfaConfigRequest {
            user_pool_id: pool.clone(),
            email_mfa_configuration: Some(Default::default()),
            mfa_configuration: Some(p::UserPoolMfaType::Optional),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    crate::groups::create_group(
        t.state.clone(),
        p::CreateGroupRequest {
            user_pool_id: pool.clone(),
            group_name: "staff".into(),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let client = t.client(&pool).await;
    let carol = t.signed_up(&client, "carol").await;
    let sub = t.user(&pool, "alice", "alice@example.com").await;
    let s = t.session().await;
    let before = t.last_seq().await;
    let u = |a: &str| format!("/console/pools/{pool}/users/{sub}/{a}");

    // Confirm an unconfirmed user.
    let page = t
        .get(&format!("/console/pools/{pool}/users/{carol}"), &s.cookie)
        .await;
    assert!(page.body.contains("id=\"btn-confirm\""));
    let page = t
        .act(
            &s,
            &format!("/console/pools/{pool}/users/{carol}/confirm"),
            &[],
        )
        .await;
    assert!(page.body.contains("carol is confirmed"), "{}", page.body);
    assert!(!page.body.contains("id=\"btn-confirm\""));
    assert_eq!(
        t.read_user(&pool, &carol).await.unwrap().status,
        UserStatus::Confirmed
    );
    let page = t
        .act(
            &s,
            &format!("/console/pools/{pool}/users/{carol}/confirm"),
            &[],
        )
        .await;
    assert!(
        page.body.contains("flash error"),
        "confirming twice is refused"
    );

    // Disable and enable.
    t.act(&s, &u("disable"), &[]).await;
    assert!(!t.read_user(&pool, &sub).await.unwrap().enabled);
    let page = t.act(&s, &u("enable"), &[]).await;
    assert!(page.body.contains("alice is enabled"));
    assert!(t.read_user(&pool, &sub).await.unwrap().enabled);

    // Set a password: refused by the policy, then temporary, then permanent.
    let page = t
        .act(&s, &u("set-password"), &[("password", "short")])
        .await;
    assert!(page.body.contains("flash error"));
    t.act(
        &s,
        &u("set-password"),
        &[("password", PASSWORD), ("permanent", "yes")],
    )
    .await;
    assert_eq!(
        t.read_user(&pool, &sub).await.unwrap().status,
        UserStatus::Confirmed
    );

    // Reset the password.
    t.act(&s, &u("reset-password"), &[]).await;
    assert_eq!(
        t.read_user(&pool, &sub).await.unwrap().status,
        UserStatus::ResetRequired
    );

    // Sign out everywhere.
    let g = t.read_user(&pool, &sub).await.unwrap().generation;
    t.act(&s, &u("sign-out"), &[]).await;
    assert_eq!(t.read_user(&pool, &sub).await.unwrap().generation, g + 1);

    // MFA on and off.
    let page = t
        .act(&s, &u("mfa"), &[("factor", "EMAIL_OTP"), ("state", "on")])
        .await;
    assert!(page.body.contains("EMAIL_OTP turned on"), "{}", page.body);
    let m = t.read_user(&pool, &sub).await.unwrap().mfa;
    assert!(m.email_enabled);
    assert_eq!(m.preferred.as_deref(), Some("EMAIL_OTP"));
    t.act(&s, &u("mfa"), &[("factor", "EMAIL_OTP"), ("state", "off")])
        .await;
    let m = t.read_user(&pool, &sub).await.unwrap().mfa;
    assert!(!m.email_enabled && m.preferred.is_none());
    let page = t
        .act(
            &s,
            &u("mfa"),
            &[("factor", "SOFTWARE_TOKEN_MFA"), ("state", "on")],
        )
        .await;
    assert!(page.body.contains("not verified software token"));

    // Attributes: set one, clear one.
    let page = t
        .act(
            &s,
            &u("attributes"),
            &[
                ("attr.name", "Alice <b>A</b>"),
                ("attr.email", "alice@example.com"),
            ],
        )
        .await;
    assert!(
        page.body.contains("Attributes saved: updated name"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("Alice &#60;b&#62;A&#60;/b&#62;"),
        "values are escaped"
    );
    assert!(!page.body.contains("<b>A</b>"));
    t.act(
        &s,
        &u("attributes"),
        &[("attr.name", ""), ("attr.email", "alice@example.com")],
    )
    .await;
    assert!(
        !t.read_user(&pool, &sub)
            .await
            .unwrap()
            .attributes
            .contains_key("name")
    );

    // Groups.
    let page = t.act(&s, &u("group-add"), &[("group", "staff")]).await;
    assert!(page.body.contains("alice added to staff"));
    assert!(
        t.read_user(&pool, &sub)
            .await
            .unwrap()
            .groups
            .contains("staff")
    );
    t.act(&s, &u("group-remove"), &[("group", "staff")]).await;
    assert!(t.read_user(&pool, &sub).await.unwrap().groups.is_empty());
    let page = t.act(&s, &u("group-add"), &[("group", "nope")]).await;
    assert!(page.body.contains("flash error"));

    // The timeline shows what happened and who did it.
    let page = t
        .get(&format!("/console/pools/{pool}/users/{sub}"), &s.cookie)
        .await;
    assert_labelled(&page.body);
    for what in [
        "Disabled",
        "Enabled",
        "Password set",
        "Password reset required",
        "Signed out everywhere",
        "MFA settings changed",
        "Added to group",
        "Removed from group",
        "Attributes changed",
        "Created by an administrator",
    ] {
        assert!(
            page.body.contains(&format!("<strong>{what}</strong>")),
            "{what} in timeline"
        );
    }
    assert!(page.body.contains(&format!("by admin key {AK}")));
    assert!(!page.body.contains("$argon2id$"), "no hash is shown");

    // Every event the console caused names the administrator.
    let events = t.events_after(before).await;
    assert!(events.len() >= 12, "{}", events.len());
    for e in &events {
        assert_eq!(
            e.actor.as_deref(),
            Some(format!("admin:{AK}").as_str()),
            "{}",
            e.event.type_name()
        );
    }

    // Export: everything held about the user, as a JSON download; the POST needs the
    // session's CSRF token like every other action.
    let r = t.post(&u("export"), &s.cookie, &[("csrf", &s.csrf)]).await;
    assert_eq!(r.status, StatusCode::OK, "{}", r.body);
    let doc: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(doc["Sub"], sub.as_str());
    assert_eq!(doc["Attributes"]["email"], "alice@example.com");
    assert!(
        doc["Events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["Type"] == "user.created" || e["Type"] == "user.signed_up")
    );
    assert!(!r.body.contains("argon2"));
    let r = t.post(&u("export"), &s.cookie, &[("csrf", "forged")]).await;
    assert_ne!(r.status, StatusCode::OK);

    // Delete with an explicit confirmation.
    let page = t
        .act(&s, &u("delete"), &[("confirm_username", "alic")])
        .await;
    assert!(page.body.contains("Type the username exactly"));
    assert!(t.read_user(&pool, &sub).await.is_some());
    let r = t
        .post(
            &u("delete"),
            &s.cookie,
            &[("csrf", &s.csrf), ("confirm_username", "alice")],
        )
        .await;
    assert_eq!(r.location(), format!("/console/pools/{pool}/users"));
    assert!(t.read_user(&pool, &sub).await.is_none());
    // The deletion is recorded, then the user's key is gone: the entry is unreadable
    // but for its type, its time and who did it.
    let last = t
        .state
        .store()
        .read(move |r| r.entries(before + 1, 100_000))
        .await
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(last.type_name, "user.deleted");
    assert!(last.body.is_none());
    assert_eq!(last.actor.as_deref(), Some(format!("admin:{AK}").as_str()));
    assert_eq!(
        t.get(&format!("/console/pools/{pool}/users/{sub}"), &s.cookie)
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn timeline_pages_through_older_events() {
    let t = setup().await;
    let pool = t.pool("p").await;
    let sub = t.user(&pool, "alice", "alice@example.com").await;
    let s = t.session().await;
    for _ in 0..15 {
        t.act(
            &s,
            &format!("/console/pools/{pool}/users/{sub}/disable"),
            &[],
        )
        .await;
        t.act(
            &s,
            &format!("/console/pools/{pool}/users/{sub}/enable"),
            &[],
        )
        .await;
    }
    let page = t
        .get(&format!("/console/pools/{pool}/users/{sub}"), &s.cookie)
        .await;
    assert_eq!(page.body.matches("<div class=\"when\">").count(), 25);
    let older = page
        .body
        .split("href=\"")
        .find(|p| p.contains("rel=\"next\""))
        .and_then(|p| p.split('"').next())
        .unwrap()
        .to_owned();
    let page = t.get(&older, &s.cookie).await;
    assert_eq!(page.body.matches("<div class=\"when\">").count(), 6);
    assert!(page.body.contains("Created by an administrator"));
    assert!(page.body.contains("Newest events"));
}

#[tokio::test]
async fn create_user_with_invitation_options() {
    let t = setup().await;
    let pool = t.pool("p").await;
    let s = t.session().await;
    let page = t
        .get(&format!("/console/pools/{pool}/users/new"), &s.cookie)
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert_labelled(&page.body);
    let before = t.last_seq().await;
    let page = t
        .act(
            &s,
            &format!("/console/pools/{pool}/users"),
            &[
                ("username", "dave"),
                ("attr.email", "dave@example.com"),
                ("email_verified", "yes"),
                ("attr.phone_number", ""),
                ("password", ""),
                ("invitation", "suppress"),
            ],
        )
        .await;
    assert!(page.body.contains("User dave created."), "{}", page.body);
    assert!(page.body.contains("FORCE_CHANGE_PASSWORD"));
    let events = t.events_after(before).await;
    assert_eq!(events.len(), 1);
    assert_eq!(
        events[0].actor.as_deref(),
        Some(format!("admin:{AK}").as_str())
    );
    let Event::UserCreated { user } = &events[0].event else {
        panic!("{:?}", events[0].event)
    };
    assert_eq!(
        user.attributes.get("email_verified").map(String::as_str),
        Some("true")
    );
    // A duplicate goes back to the form with the API's reason.
    let page = t
        .act(
            &s,
            &format!("/console/pools/{pool}/users"),
            &[("username", "dave"), ("password", "weak")],
        )
        .await;
    assert!(
        page.body.contains("The user was not created"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn the_daemon_router_serves_the_console() {
    let t = setup().await;
    let app = crate::router(t.state.clone());
    let r = app
        .oneshot(Request::get("/console/login").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert!(r.headers().get(header::CONTENT_SECURITY_POLICY).is_some());
}

/// The first `href` of an `<a id="...">` in a page, unescaped.
fn link(html: &str, id: &str) -> Option<String> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let start = html[..at].rfind("<a href=\"")? + "<a href=\"".len();
    let href = html[start..].split('"').next()?;
    Some(href.replace("&#38;", "&").replace("&amp;", "&"))
}

#[tokio::test]
async fn domains_resource_servers_and_client_oauth_settings() {
    let t = setup().await;
    let pool = t.pool("p").await;
    let client = t.client(&pool).await;
    // Settings away from their defaults, so that passing them through is seen.
    crate::clients::update(
        t.state.clone(),
        p::UpdateUserPoolClientRequest {
            user_pool_id: pool.clone(),
            client_id: client.clone(),
            client_name: Some("web shop".into()),
            access_token_validity: Some(2),
            refresh_token_validity: Some(7),
            token_validity_units: Some(p::TokenValidityUnitsType {
                access_token: Some(p::TimeUnitsType::Hours),
                ..Default::default()
            }),
            read_attributes: Some(vec!["email".into()]),
            explicit_auth_flows: Some(vec![p::ExplicitAuthFlowsType::AllowUserSrpAuth]),
            prevent_user_existence_errors: Some(p::PreventUserExistenceErrorTypes::Enabled),
            enable_token_revocation: Some(false),
            auth_session_validity: Some(10),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    let s = t.session().await;
    let pool_page = format!("/console/pools/{pool}");
    let page = t.get(&pool_page, &s.cookie).await;
    assert!(page.body.contains("id=\"no-domain\""), "{}", page.body);
    assert!(page.body.contains("id=\"no-servers\""));
    assert!(page.body.contains("<legend>Kind of domain</legend>"));
    assert_labelled(&page.body);
    let read_pool = || {
        let (pid, st) = (pool.clone(), t.state.clone());
        async move {
            st.store()
                .read(move |r| r.pool(&pid))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let read_client = || {
        let (cid, st) = (client.clone(), t.state.clone());
        async move {
            st.store()
                .read(move |r| r.client(&cid))
                .await
                .unwrap()
                .unwrap()
        }
    };
    let before = t.last_seq().await;

    // Domain: a bad prefix is the service's refusal in the flash; a good one is created
    // with the chosen version, which can then change.
    let domain = |action: &str| format!("/console/pools/{pool}/domain/{action}");
    let page = t
        .act(
            &s,
            &domain("create"),
            &[("kind", "prefix"), ("domain", "My_Shop"), ("version", "2")],
        )
        .await;
    assert!(page.body.contains("class=\"flash error\""), "{}", page.body);
    assert!(
        page.body.contains("InvalidParameterException"),
        "{}",
        page.body
    );
    assert!(read_pool().await.domains.is_empty());
    let page = t
        .act(
            &s,
            &domain("create"),
            &[("kind", "prefix"), ("domain", "shop"), ("version", "2")],
        )
        .await;
    assert!(page.body.contains("Domain shop created."), "{}", page.body);
    let d = read_pool().await.domains;
    assert_eq!(
        (d.len(), d[0].domain.as_str(), d[0].managed_login_version),
        (1, "shop", 2)
    );
    assert!(page.body.contains("http://127.0.0.1:9229/domains/shop"));
    assert_labelled(&page.body);
    let page = t
        .act(
            &s,
            &domain("update"),
            &[("domain", "shop"), ("version", "1")],
        )
        .await;
    assert!(
        page.body.contains("managed login version 1"),
        "{}",
        page.body
    );
    assert_eq!(read_pool().await.domains[0].managed_login_version, 1);
    // A custom domain takes its certificate.
    let page = t
        .act(
            &s,
            &domain("create"),
            &[
                ("kind", "custom"),
                ("domain", "auth.example.com"),
                (
                    "certificate_arn",
                    "arn:aws:acm:us-east-1:000000000000:certificate/abc",
                ),
            ],
        )
        .await;
    assert!(
        page.body.contains("point its DNS name at 127.0.0.1"),
        "{}",
        page.body
    );
    assert!(page.body.contains("certificate/abc"));

    // Resource servers: create with scopes, edit the scopes.
    let rs = |action: &str| format!("/console/pools/{pool}/resource-servers/{action}");
    let page = t
        .act(
            &s,
            &rs("create"),
            &[
                ("identifier", "https://api.example.com"),
                ("name", "Orders API"),
                ("scopes", "read Read orders\r\n\r\nwrite\r\n"),
            ],
        )
        .await;
    assert!(
        page.body
            .contains("Resource server https://api.example.com created."),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains("<code>https://api.example.com/read</code>: Read orders")
    );
    assert_labelled(&page.body);
    let server = |p: &cognate_domain::Pool| p.resource_servers["https://api.example.com"].clone();
    assert_eq!(
        server(&read_pool().await).scopes,
        vec![
            ("read".to_owned(), "Read orders".to_owned()),
            ("write".to_owned(), "write".to_owned())
        ]
    );

    // OAuth settings of the client, on its own page: the scopes offered include the
    // custom ones; the other settings of the client are kept.
    let client_page = format!("/console/pools/{pool}/clients/{client}");
    let page = t.get(&client_page, &s.cookie).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("value=\"https://api.example.com/write\"")
    );
    assert!(page.body.contains("<legend>Allowed scopes</legend>"));
    assert!(page.body.contains("id=\"no-hosted-login\""));
    assert_labelled(&page.body);
    let old = read_client().await;
    assert!(old.units_given && !old.enable_token_revocation);
    let oauth = format!("/console/pools/{pool}/clients/{client}/oauth");
    let form = [
        ("oauth_on", "yes"),
        ("oauth_flow", "code"),
        ("scope", "openid"),
        ("scope", "email"),
        ("scope", "https://api.example.com/write"),
        ("provider", "COGNITO"),
        (
            "callbacks",
            "https://app.example.com/cb\r\nhttp://localhost:3000/cb",
        ),
        ("logouts", "https://app.example.com/bye"),
        ("default_redirect", ""),
    ];
    let page = t.act(&s, &oauth, &form).await;
    assert!(
        page.body.contains("OAuth settings of app client"),
        "{}",
        page.body
    );
    let new = read_client().await;
    let o = super::pages::OAuth::of(&new);
    assert!(o.on);
    assert_eq!(o.flows, vec!["code"]);
    assert_eq!(
        o.scopes,
        vec!["openid", "email", "https://api.example.com/write"]
    );
    assert_eq!(
        o.callbacks,
        vec!["https://app.example.com/cb", "http://localhost:3000/cb"]
    );
    assert_eq!(o.logouts, vec!["https://app.example.com/bye"]);
    assert_eq!(o.providers, vec!["COGNITO"]);
    assert_eq!(o.default_redirect, None);
    // Everything else as it was (UpdateUserPoolClient resets what it is not given).
    let mut kept = new.clone();
    for k in [
        "AllowedOAuthFlowsUserPoolClient",
        "AllowedOAuthFlows",
        "AllowedOAuthScopes",
        "CallbackURLs",
        "LogoutURLs",
        "SupportedIdentityProviders",
    ] {
        assert!(kept.settings.remove(k).is_some(), "{k}");
    }
    kept.updated_at = old.updated_at;
    assert_eq!(kept, old);

    // The hosted-login link: first callback URL, code, the allowed scopes, on the
    // pool's domain; the daemon serves the sign-in page there.
    let expected = format!(
        "http://127.0.0.1:9229/domains/shop/login?client_id={client}&response_type=code&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&scope=openid%20email%20https%3A%2F%2Fapi.example.com%2Fwrite"
    );
    let page = t.get(&client_page, &s.cookie).await;
    assert_eq!(
        link(&page.body, "hosted-login").as_deref(),
        Some(expected.as_str())
    );
    assert!(
        page.body.contains("checked><label for=\"oflow-code\""),
        "the form shows what is saved"
    );
    let page = t.get(&pool_page, &s.cookie).await;
    assert_eq!(
        link(&page.body, &format!("hosted-{client}")).as_deref(),
        Some(expected.as_str())
    );
    let hosted = crate::router(t.state.clone())
        .oneshot(
            Request::get(expected.trim_start_matches("http://127.0.0.1:9229"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(hosted.status(), StatusCode::OK);
    let html = to_bytes(hosted.into_body(), 1 << 20).await.unwrap();
    let html = String::from_utf8_lossy(&html);
    assert!(html.contains("name=\"password\""), "{html}");

    // Refusals are the service's, named in the flash, and change nothing.
    let saved = read_client().await;
    let page = t
        .act(
            &s,
            &oauth,
            &[
                ("oauth_on", "yes"),
                ("oauth_flow", "client_credentials"),
                ("scope", "https://api.example.com/write"),
            ],
        )
        .await;
    assert!(
        page.body.contains("InvalidOAuthFlowException"),
        "{}",
        page.body
    );
    assert!(page.body.contains("were not saved"));
    let page = t
        .act(
            &s,
            &oauth,
            &[
                ("oauth_on", "yes"),
                ("oauth_flow", "code"),
                ("scope", "https://api.example.com/nope"),
                ("callbacks", "https://app.example.com/cb"),
            ],
        )
        .await;
    assert!(
        page.body.contains("ScopeDoesNotExistException"),
        "{}",
        page.body
    );
    let page = t
        .act(
            &s,
            &oauth,
            &[
                ("oauth_on", "yes"),
                ("oauth_flow", "code"),
                ("scope", "openid"),
            ],
        )
        .await;
    assert!(
        page.body.contains("CallbackURLs are required"),
        "{}",
        page.body
    );
    assert_eq!(read_client().await, saved);

    // Editing the scopes: a scope the client uses can still be removed from the server
    // (as in Cognito); the client page keeps showing it so saving does not drop it.
    let page = t
        .act(
            &s,
            &rs("update"),
            &[
                ("identifier", "https://api.example.com"),
                ("name", "Orders"),
                ("scopes", "read Read orders"),
            ],
        )
        .await;
    assert!(page.body.contains("saved"), "{}", page.body);
    let srv = server(&read_pool().await);
    assert_eq!((srv.name.as_str(), srv.scopes.len()), ("Orders", 1));
    let page = t.get(&client_page, &s.cookie).await;
    assert!(
        page.body
            .contains("value=\"https://api.example.com/write\" checked")
    );

    // Deletions need the confirmation box.
    let page = t
        .act(
            &s,
            &rs("delete"),
            &[("identifier", "https://api.example.com")],
        )
        .await;
    assert!(
        page.body.contains("Tick the confirmation box"),
        "{}",
        page.body
    );
    assert_eq!(read_pool().await.resource_servers.len(), 1);
    let page = t
        .act(
            &s,
            &rs("delete"),
            &[
                ("identifier", "https://api.example.com"),
                ("confirm", "yes"),
            ],
        )
        .await;
    assert!(page.body.contains("deleted"), "{}", page.body);
    assert!(read_pool().await.resource_servers.is_empty());
    for d in ["shop", "auth.example.com"] {
        let page = t.act(&s, &domain("delete"), &[("domain", d)]).await;
        assert!(
            page.body.contains("Tick the confirmation box"),
            "{}",
            page.body
        );
        let page = t
            .act(&s, &domain("delete"), &[("domain", d), ("confirm", "yes")])
            .await;
        assert!(
            page.body.contains(&format!("Domain {d} deleted")),
            "{}",
            page.body
        );
    }
    assert!(read_pool().await.domains.is_empty());
    let page = t.get(&client_page, &s.cookie).await;
    assert!(page.body.contains("The pool has no domain yet."));
    assert!(link(&page.body, "hosted-login").is_none());

    // Every change is in the log, attributed to the signed-in administrator.
    let events = t.events_after(before).await;
    assert!(events.len() >= 9, "{}", events.len());
    for e in &events {
        assert_eq!(
            e.actor.as_deref(),
            Some(format!("admin:{AK}").as_str()),
            "{}",
            e.event.type_name()
        );
    }
}
