//! The OAuth phase: a pool's token endpoint under load, against the rate at which this
//! machine signs RS256 tokens in process (the work no token endpoint can skip).
//!
//! - `client_credentials`: one access token per response.
//! - The authorization-code exchange: codes are made beforehand through the hosted pages
//!   (one password sign-in, then `/oauth2/authorize` with the remembered sign-in), then
//!   exchanged with PKCE as fast as the endpoint allows; each answer carries an access
//!   and an ID token, so its ratio counts two signatures per answer.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use hyper::Method;
use hyper::body::Bytes;
use serde_json::json;

use crate::load::{self, Outcome, Plan, Request};
use crate::{Api, Creds, PASSWORD, procs, text};

pub struct Setup<'a> {
    pub daemon_bin: &'a std::path::Path,
    pub dir: &'a std::path::Path,
    pub creds: &'a Creds,
    pub plan: &'a Plan,
    /// Codes to make for the exchange (each is single-use).
    pub codes: usize,
}

pub struct Report {
    /// RS256 signatures per second in process, on every core.
    pub signing: Outcome,
    pub client_credentials: Outcome,
    pub code_made: Outcome,
    pub code_exchange: Outcome,
}

/// RS256 signatures of access-token-sized claims, one thread per core, for `duration`.
pub async fn signing_baseline(duration: Duration) -> Result<Outcome> {
    let key = cognate_crypto::jwt::SigningKey::generate().map_err(|e| anyhow!("{e}"))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..cores {
        let key = key.clone();
        tasks.spawn_blocking(move || {
            let mut out = Outcome::default();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let claims = json!({
                    "sub": "4d6b3c1e-5f7a-4b8c-9d0e-1f2a3b4c5d6e",
                    "iss": "http://127.0.0.1:9229/us-east-1_AbCdEfGhI",
                    "client_id": "1example23456789",
                    "token_use": "access",
                    "scope": "https://orders.example.com/read",
                    "iat": 1_800_000_000u64 + n,
                    "exp": 1_800_003_600u64 + n,
                    "jti": format!("jti-{n}"),
                });
                let t = Instant::now();
                match key.sign(&claims) {
                    Ok(_) => out.ok.push((n, t.elapsed())),
                    Err(e) => out.fail(e.to_string()),
                }
                n += 1;
            }
            out
        });
    }
    let mut total = Outcome::default();
    while let Some(done) = tasks.join_next().await {
        let o = done.context("a signing task failed")?;
        total.ok.extend(o.ok);
        total.failed += o.failed;
        total.first_error = total.first_error.or(o.first_error);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

fn form(pairs: &[(&str, &str)]) -> String {
    let mut out = Vec::new();
    for (k, v) in pairs {
        let enc: String = v
            .bytes()
            .map(|b| {
                if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                    (b as char).to_string()
                } else {
                    format!("%{b:02X}")
                }
            })
            .collect();
        out.push(format!("{k}={enc}"));
    }
    out.join("&")
}

fn cookie_of(h: &hyper::HeaderMap, name: &str) -> Option<String> {
    h.get_all(hyper::header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

fn code_of(h: &hyper::HeaderMap) -> Option<String> {
    let loc = h.get(hyper::header::LOCATION)?.to_str().ok()?;
    let query = loc.split_once('?')?.1;
    query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == "code")
        .map(|(_, v)| v.to_owned())
}

const CALLBACK: &str = "http://localhost:3000/callback";
/// Codes made per user, under the 32 sessions a user may have in flight.
const CODES_PER_USER: usize = 30;
const SCOPE: &str = "https://orders.example.com/read";

pub async fn run(s: Setup<'_>) -> Result<Report> {
    let signing = signing_baseline(s.plan.duration).await?;
    let daemon = procs::start_daemon(
        s.daemon_bin,
        &s.dir.join("oauth-data"),
        &s.dir.join("oauth.log"),
        &s.creds.access_key,
        &s.creds.secret,
        &[],
    )
    .await?;
    let api = Api::new(daemon.addr, s.creds);
    let pool = api
        .admin("CreateUserPool", json!({"PoolName": "oauth"}))
        .await?;
    let pool_id = text(&pool, &["UserPool", "Id"])?;
    api.admin(
        "CreateUserPoolDomain",
        json!({"UserPoolId": pool_id, "Domain": "bench"}),
    )
    .await?;
    api.admin(
        "CreateResourceServer",
        json!({"UserPoolId": pool_id, "Identifier": "https://orders.example.com", "Name": "orders",
               "Scopes": [{"ScopeName": "read", "ScopeDescription": "read"}]}),
    )
    .await?;
    let m2m = api
        .admin(
            "CreateUserPoolClient",
            json!({"UserPoolId": pool_id, "ClientName": "m2m", "GenerateSecret": true,
                   "AllowedOAuthFlowsUserPoolClient": true, "AllowedOAuthFlows": ["client_credentials"],
                   "AllowedOAuthScopes": [SCOPE]}),
        )
        .await?;
    let m2m_id = text(&m2m, &["UserPoolClient", "ClientId"])?;
    let m2m_secret = text(&m2m, &["UserPoolClient", "ClientSecret"])?;
    let web = api
        .admin(
            "CreateUserPoolClient",
            json!({"UserPoolId": pool_id, "ClientName": "web",
                   "AllowedOAuthFlowsUserPoolClient": true, "AllowedOAuthFlows": ["code"],
                   "AllowedOAuthScopes": ["openid", "email"], "CallbackURLs": [CALLBACK],
                   "SupportedIdentityProviders": ["COGNITO"]}),
        )
        .await?;
    let web_id = text(&web, &["UserPoolClient", "ClientId"])?;

    let token_path = "/domains/bench/oauth2/token".to_owned();
    let plan = Plan {
        addr: daemon.addr,
        ..s.plan.clone()
    };

    // client_credentials.
    let basic = {
        use base64::Engine as _;
        let raw = format!("{m2m_id}:{m2m_secret}");
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(raw)
        )
    };
    let cc_body = Bytes::from(form(&[
        ("grant_type", "client_credentials"),
        ("scope", SCOPE),
    ]));
    let client_credentials = {
        let (path, basic, body) = (token_path.clone(), basic.clone(), cc_body.clone());
        load::run(
            &plan,
            std::sync::Arc::new(move |_| Request {
                path: path.clone(),
                headers: vec![
                    (
                        "content-type".into(),
                        "application/x-www-form-urlencoded".into(),
                    ),
                    ("authorization".into(), basic.clone()),
                ],
                body: body.clone(),
            }),
        )
        .await?
    };

    // Codes through the hosted pages: a password sign-in per user, then the remembered
    // one. A user has at most 32 sign-in sessions and codes in flight per 5 minutes
    // (MAX_ANSWERED_CHALLENGES), so the codes are spread over users.
    let verifier = cognate_crypto::base64url(&cognate_crypto::random_bytes(32));
    let challenge = cognate_crypto::base64url(&cognate_crypto::sha256(verifier.as_bytes()));
    let query = form(&[
        ("response_type", "code"),
        ("client_id", &web_id),
        ("redirect_uri", CALLBACK),
        ("scope", "openid email"),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ]);
    let users = s.codes.div_ceil(CODES_PER_USER);
    let made_start = Instant::now();
    let mut code_made = Outcome::default();
    let mut codes = Vec::with_capacity(s.codes);
    let workers = 8;
    let mut tasks = tokio::task::JoinSet::new();
    let api = std::sync::Arc::new(api);
    for w in 0..workers {
        let (api, pool_id, query) = (api.clone(), pool_id.clone(), query.clone());
        tasks.spawn(async move {
            let mut out = Vec::new();
            let mut o = Outcome::default();
            for u in (w..users).step_by(workers) {
                let name = format!("u{u}");
                let sso = match signed_in(&api, &pool_id, &name, &query).await {
                    Ok(c) => c,
                    Err(e) => {
                        o.fail(format!("{e:#}"));
                        continue;
                    }
                };
                let path = format!("/domains/bench/oauth2/authorize?{query}");
                for i in 0..CODES_PER_USER {
                    let t = Instant::now();
                    let got = load::exchange(
                        api.addr,
                        Method::GET,
                        &path,
                        &[("cookie", format!("cognate_sso={sso}"))],
                        Bytes::new(),
                    )
                    .await;
                    match got {
                        Ok((302, h, _)) => match code_of(&h) {
                            Some(c) => {
                                o.ok.push(((u * CODES_PER_USER + i) as u64, t.elapsed()));
                                out.push(c);
                            }
                            None => o.fail("no code in the redirect".into()),
                        },
                        Ok((st, _, b)) => {
                            o.fail(format!("HTTP {st}: {}", String::from_utf8_lossy(&b)));
                        }
                        Err(e) => o.fail(format!("{e:#}")),
                    }
                }
            }
            (out, o)
        });
    }
    while let Some(done) = tasks.join_next().await {
        let (c, o) = done.context("a code task failed")?;
        codes.extend(c);
        code_made.ok.extend(o.ok);
        code_made.failed += o.failed;
        code_made.first_error = code_made.first_error.or(o.first_error);
    }
    code_made.elapsed = made_start.elapsed();
    if codes.is_empty() {
        bail!(
            "no authorization code could be made: {:?}",
            code_made.first_error
        );
    }
    let codes = std::sync::Arc::new(codes);
    let code_exchange = {
        let (path, codes, web_id, verifier) =
            (token_path, codes.clone(), web_id.clone(), verifier.clone());
        load::run(
            &Plan {
                max_requests: codes.len() as u64,
                ..plan.clone()
            },
            std::sync::Arc::new(move |n| {
                let code = usize::try_from(n)
                    .ok()
                    .and_then(|i| codes.get(i))
                    .cloned()
                    .unwrap_or_default();
                Request {
                    path: path.clone(),
                    headers: vec![(
                        "content-type".into(),
                        "application/x-www-form-urlencoded".into(),
                    )],
                    body: Bytes::from(form(&[
                        ("grant_type", "authorization_code"),
                        ("client_id", &web_id),
                        ("code", &code),
                        ("redirect_uri", CALLBACK),
                        ("code_verifier", &verifier),
                    ])),
                }
            }),
        )
        .await?
    };
    drop(api);
    daemon.stop().await;
    Ok(Report {
        signing,
        client_credentials,
        code_made,
        code_exchange,
    })
}

/// Creates user `name`, signs them in on the hosted sign-in page and returns the
/// remembered sign-in cookie.
async fn signed_in(api: &Api, pool_id: &str, name: &str, query: &str) -> Result<String> {
    api.admin(
        "AdminCreateUser",
        json!({"UserPoolId": pool_id, "Username": name, "MessageAction": "SUPPRESS"}),
    )
    .await?;
    api.admin(
        "AdminSetUserPassword",
        json!({"UserPoolId": pool_id, "Username": name, "Password": PASSWORD, "Permanent": true}),
    )
    .await?;
    let login_path = format!("/domains/bench/login?{query}");
    let (status, headers, body) =
        load::exchange(api.addr, Method::GET, &login_path, &[], Bytes::new()).await?;
    if status != 200 {
        bail!("the sign-in page answered HTTP {status}");
    }
    let csrf_cookie = cookie_of(&headers, "cognate_csrf").context("no CSRF cookie")?;
    let page = String::from_utf8_lossy(&body);
    let token = page
        .split("name=\"_csrf\" value=\"")
        .nth(1)
        .and_then(|x| x.split('"').next())
        .context("no CSRF token on the sign-in page")?
        .to_owned();
    let (status, headers, body) = load::exchange(
        api.addr,
        Method::POST,
        &login_path,
        &[
            ("content-type", "application/x-www-form-urlencoded".into()),
            ("cookie", format!("cognate_csrf={csrf_cookie}")),
        ],
        Bytes::from(form(&[
            ("_csrf", &token),
            ("username", name),
            ("password", PASSWORD),
        ])),
    )
    .await?;
    if status != 302 {
        bail!(
            "sign-in on the hosted page answered HTTP {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
    cookie_of(&headers, "cognate_sso").context("no remembered sign-in")
}
