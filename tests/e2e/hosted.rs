//! The pool as an OpenID provider for people: `/oauth2/authorize`, the hosted pages
//! (sign-in, sign-up, confirmation, reset, new password, MFA), the authorization code
//! (with PKCE) and refresh grants, userInfo, revoke and logout, driven over HTTP by a
//! small cookie-keeping client that submits the pages' forms as a browser would.
//! (Headless Chromium drives the same pages with openid-client in tests/node.)

use std::collections::BTreeMap;

use base64::Engine as _;

use crate::common::*;

const CALLBACK: &str = "http://localhost:3000/callback";
const SIGNED_OUT: &str = "http://localhost:3000/signed-out";

/// What a page answered.
pub(crate) struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub body: String,
    pub headers: reqwest::header::HeaderMap,
}

impl Answer {
    fn redirect_params(&self) -> BTreeMap<String, String> {
        let loc = self.location.as_deref().expect("a redirect");
        let query = loc
            .split_once(['?', '#'])
            .map(|(_, q)| q)
            .unwrap_or_default();
        query
            .split('&')
            .filter_map(|kv| kv.split_once('='))
            .map(|(k, v)| (k.to_owned(), decode(v)))
            .collect()
    }
}

fn decode(v: &str) -> String {
    let v = v.replace('+', " ");
    let bytes = v.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 3 <= bytes.len() {
            out.push(u8::from_str_radix(&v[i + 1..i + 3], 16).unwrap());
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap()
}

fn encode(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn unescape(x: &str) -> String {
    // Named and numeric character references, as a browser reads attribute values.
    let mut out = String::new();
    let mut rest = x;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let Some(end) = tail.find(';') else {
            out.push_str(tail);
            return out;
        };
        let entity = &tail[1..end];
        let c = match entity {
            "amp" => Some('&'),
            "quot" => Some('"'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            "apos" => Some('\''),
            e if e.starts_with("#x") || e.starts_with("#X") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match c {
            Some(c) => {
                out.push(c);
                rest = &tail[end + 1..];
            }
            None => {
                out.push('&');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// An attribute of the first tag in `tag` text.
pub(crate) fn attr_of(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = tag[start..].find('"')? + start;
    Some(unescape(&tag[start..end]))
}

/// A browser without JavaScript: keeps cookies, follows nothing by itself.
pub(crate) struct Browser {
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
    origin: String,
}

impl Browser {
    pub fn new(d: &Daemon) -> Browser {
        Browser {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookies: BTreeMap::new(),
            origin: d.url(""),
        }
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{url}", self.origin.trim_end_matches('/'))
        }
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Answer {
        let cookie: Vec<String> = self
            .cookies
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let resp = req
            .header("cookie", cookie.join("; "))
            .send()
            .await
            .unwrap();
        for v in resp.headers().get_all("set-cookie") {
            let v = v.to_str().unwrap();
            let (pair, rest) = v.split_once(';').unwrap_or((v, ""));
            let (k, val) = pair.split_once('=').unwrap();
            if rest.contains("Max-Age=0") {
                self.cookies.remove(k);
            } else {
                self.cookies.insert(k.to_owned(), val.to_owned());
            }
        }
        Answer {
            status: resp.status().as_u16(),
            location: resp
                .headers()
                .get("location")
                .map(|v| v.to_str().unwrap().to_owned()),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, url: &str) -> Answer {
        let req = self.http.get(self.absolute(url));
        self.send(req).await
    }

    /// Follows redirects within the daemon; stops at one that leaves it.
    pub async fn browse(&mut self, url: &str) -> Answer {
        let mut a = self.get(url).await;
        while let Some(loc) = a.location.clone() {
            if loc.starts_with("http") && !loc.starts_with(&self.origin) {
                break;
            }
            a = self.get(&loc).await;
        }
        a
    }

    /// Submits the form `id` of a page with its hidden fields and `fill`.
    async fn submit(&mut self, page: &Answer, id: &str, fill: &[(&str, &str)]) -> Answer {
        let (action, mut fields) = form(&page.body, id);
        for (k, v) in fill {
            fields.retain(|(n, _)| n != k);
            fields.push(((*k).to_owned(), (*v).to_owned()));
        }
        self.post(&action, &fields).await
    }

    async fn post(&mut self, action: &str, fields: &[(String, String)]) -> Answer {
        let body: Vec<String> = fields
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        let req = self
            .http
            .post(self.absolute(action))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.join("&"));
        self.send(req).await
    }
}

/// The action and the prefilled fields (hidden or with a value) of form `id`.
fn form(body: &str, id: &str) -> (String, Vec<(String, String)>) {
    let start = body
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no form {id} in:\n{body}"));
    let open = body[..start].rfind("<form").unwrap();
    let end = body[open..].find("</form>").unwrap() + open;
    let html = &body[open..end];
    let tag_end = html.find('>').unwrap();
    let action = attr_of(&html[..tag_end], "action").unwrap();
    let mut fields = Vec::new();
    for chunk in html.split("<input").skip(1) {
        let tag = &chunk[..chunk.find('>').unwrap()];
        let tag = format!(" {tag}");
        if let (Some(name), Some(value)) = (attr_of(&tag, "name"), attr_of(&tag, "value")) {
            let is_radio = attr_of(&tag, "type").as_deref() == Some("radio");
            if !is_radio || tag.contains(" checked") {
                fields.push((name, value));
            }
        }
    }
    (action, fields)
}

/// A pool with a domain and a public client for the code flow, and the client's id.
pub(crate) struct Provider {
    pub d: Daemon,
    pub c: Client,
    pub pool: String,
    pub client: String,
    /// `/domains/<domain>`: where the domain's endpoints are served without DNS.
    pub base: String,
}

pub(crate) const DOMAIN_SCOPES: &[&str] = &[
    "openid",
    "email",
    "profile",
    "aws.cognito.signin.user.admin",
];

pub(crate) async fn oauth_client(
    c: &Client,
    pool: &str,
    flows: &[OAuthFlowType],
    scopes: &[&str],
    secret: bool,
) -> (String, Option<String>) {
    let mut b = client_builder(c, pool)
        .generate_secret(secret)
        .allowed_o_auth_flows_user_pool_client(true)
        .callback_urls(CALLBACK)
        .logout_urls(SIGNED_OUT)
        .supported_identity_providers("COGNITO");
    for f in flows {
        b = b.allowed_o_auth_flows(f.clone());
    }
    for s in scopes {
        b = b.allowed_o_auth_scopes(*s);
    }
    let out = b.send().await.unwrap();
    let cl = out.user_pool_client().unwrap();
    (
        cl.client_id().unwrap().to_owned(),
        cl.client_secret().map(str::to_owned),
    )
}

impl Provider {
    pub async fn new(domain: &str) -> Provider {
        let d = Daemon::start().await;
        let c = sdk(&d);
        let pool = c
            .create_user_pool()
            .pool_name(domain)
            .auto_verified_attributes(VerifiedAttributeType::Email)
            .schema(email_schema(true))
            .send()
            .await
            .unwrap()
            .user_pool()
            .unwrap()
            .id()
            .unwrap()
            .to_owned();
        c.create_user_pool_domain()
            .user_pool_id(&pool)
            .domain(domain)
            .send()
            .await
            .unwrap();
        let (client, _) =
            oauth_client(&c, &pool, &[OAuthFlowType::Code], DOMAIN_SCOPES, false).await;
        Provider {
            d,
            c,
            pool,
            client,
            base: format!("/domains/{domain}"),
        }
    }

    async fn user(&self, name: &str) -> String {
        sign_up_confirmed(
            &self.d,
            &self.c,
            &self.pool,
            &self.client,
            name,
            &format!("{name}@example.com"),
        )
        .await
    }
}

/// An authorize URL for the code flow with PKCE; returns (url, verifier).
pub(crate) fn authorize_url(base: &str, client: &str, extra: &str) -> (String, String) {
    let verifier = cognate_crypto::base64url(&cognate_crypto::random_bytes(32));
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, verifier.as_bytes());
    let challenge = cognate_crypto::base64url(digest.as_ref());
    (
        format!(
            "{base}/oauth2/authorize?response_type=code&client_id={client}&redirect_uri={}&state=xyz-1&nonce=n-0S6&code_challenge={challenge}&code_challenge_method=S256{extra}",
            encode(CALLBACK)
        ),
        verifier,
    )
}

async fn token_request(d: &Daemon, base: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let body: Vec<String> = form
        .iter()
        .map(|(k, v)| format!("{k}={}", encode(v)))
        .collect();
    let resp = http()
        .post(d.url(&format!("{base}/oauth2/token")))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body.join("&"))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Signs `user` in through the pages of `base`; returns the redirect back to the client.
async fn sign_in(b: &mut Browser, url: &str, user: &str, password: &str) -> Answer {
    let page = b.browse(url).await;
    assert_eq!(page.status, 200, "{}", page.body);
    b.submit(
        &page,
        "login-form",
        &[("username", user), ("password", password)],
    )
    .await
}

#[tokio::test]
async fn code_flow_with_pkce_through_the_hosted_pages() {
    let p = Provider::new("shop-login").await;
    p.user("ann").await;
    let mut b = Browser::new(&p.d);
    let (url, verifier) = authorize_url(
        &p.base,
        &p.client,
        "&scope=openid+email+aws.cognito.signin.user.admin",
    );

    // The authorize endpoint sends the browser to the sign-in page with the request.
    let first = b.get(&url).await;
    assert_eq!(first.status, 302);
    assert!(
        first
            .location
            .as_deref()
            .unwrap()
            .starts_with(&format!("{}/login?", p.base))
    );
    let page = b.get(first.location.as_deref().unwrap()).await;
    assert_eq!(page.status, 200);
    let csp = page.headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("default-src 'none'"),
        "{csp}"
    );
    assert!(
        page.body
            .contains("<label class=\"label-customizable\" for=\"password\">Password</label>")
    );

    // A wrong password: the page says so, nothing goes back to the client.
    let wrong = b
        .submit(
            &page,
            "login-form",
            &[("username", "ann"), ("password", "Wrong-pass-1!")],
        )
        .await;
    assert_eq!(wrong.status, 200);
    assert!(wrong.location.is_none());
    assert!(
        wrong.body.contains("Incorrect username or password."),
        "{}",
        wrong.body
    );

    let back = b
        .submit(
            &wrong,
            "login-form",
            &[("username", "ann"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(back.status, 302, "{}", back.body);
    let loc = back.location.clone().unwrap();
    assert!(loc.starts_with(&format!("{CALLBACK}?")), "{loc}");
    let params = back.redirect_params();
    assert_eq!(params["state"], "xyz-1");
    let code = params["code"].clone();

    let (status, tokens) = token_request(
        &p.d,
        &p.base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &p.client),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    let access = tokens["access_token"].as_str().unwrap();
    let id = tokens["id_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(tokens["token_type"], "Bearer");
    let idc = verify_jwt(&p.d, &p.pool, id, Some(&p.client)).await;
    assert_eq!(idc["nonce"], "n-0S6");
    assert_eq!(idc["email"], "ann@example.com");
    assert_eq!(idc["cognito:username"], "ann");
    let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, access.as_bytes());
    assert_eq!(
        idc["at_hash"],
        cognate_crypto::base64url(&digest.as_ref()[..16])
    );
    let ac = verify_jwt(&p.d, &p.pool, access, None).await;
    assert_eq!(ac["scope"], "openid email aws.cognito.signin.user.admin");
    assert_eq!(ac["username"], "ann");
    assert!(ac["auth_time"].as_i64().unwrap() <= ac["iat"].as_i64().unwrap());
    // The admin scope lets the access token call the user API.
    let me = p.c.get_user().access_token(access).send().await.unwrap();
    assert_eq!(me.username(), "ann");

    // userInfo answers for the token's scopes.
    let info: Value = http()
        .get(p.d.url(&format!("{}/oauth2/userInfo", p.base)))
        .bearer_auth(access)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "ann@example.com");
    assert_eq!(info["username"], "ann");
    assert_eq!(info["sub"], idc["sub"]);

    // A code works once; presented again it is refused and what it issued is revoked.
    let (status, again) = token_request(
        &p.d,
        &p.base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &p.client),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(again["error"], "invalid_grant");
    let (status, refreshed) = token_request(
        &p.d,
        &p.base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &p.client),
            ("refresh_token", refresh),
        ],
    )
    .await;
    assert_eq!(status, 400, "{refreshed}");
    assert_eq!(refreshed["error"], "invalid_grant");
    assert_code(
        p.c.get_user().access_token(access).send().await,
        "NotAuthorizedException",
    );
}

#[tokio::test]
async fn a_code_is_bound_to_its_verifier_redirect_uri_and_client() {
    let p = Provider::new("bound-codes").await;
    p.user("bo").await;
    let (other, _) = oauth_client(&p.c, &p.pool, &[OAuthFlowType::Code], &["openid"], false).await;
    let mut b = Browser::new(&p.d);
    let (url, verifier) = authorize_url(&p.base, &p.client, "");
    let back = sign_in(&mut b, &url, "bo", PASSWORD).await;
    let code = back.redirect_params()["code"].clone();
    let attempt = |client: String, redirect: &'static str, verifier: String| {
        let (d, base, code) = (&p.d, p.base.clone(), code.clone());
        async move {
            token_request(
                d,
                &base,
                &[
                    ("grant_type", "authorization_code"),
                    ("client_id", &client),
                    ("code", &code),
                    ("redirect_uri", redirect),
                    ("code_verifier", &verifier),
                ],
            )
            .await
        }
    };
    let wrong_verifier = cognate_crypto::base64url(&cognate_crypto::random_bytes(32));
    for (client, redirect, v, what) in [
        (p.client.clone(), CALLBACK, wrong_verifier, "PKCE mismatch"),
        (
            p.client.clone(),
            "http://localhost:3000/other",
            verifier.clone(),
            "other redirect",
        ),
        (other.clone(), CALLBACK, verifier.clone(), "other client"),
        (
            p.client.clone(),
            CALLBACK,
            "short".to_owned(),
            "bad verifier",
        ),
    ] {
        let (status, body) = attempt(client, redirect, v).await;
        assert_eq!(status, 400, "{what}: {body}");
        assert_eq!(body["error"], "invalid_grant", "{what}");
    }
    // None of those spent the code.
    let (status, body) = attempt(p.client.clone(), CALLBACK, verifier).await;
    assert_eq!(status, 200, "{body}");
    // A forged or mangled code is refused.
    let (status, body) = token_request(
        &p.d,
        &p.base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &p.client),
            ("code", "AAAA"),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("invalid_grant"))
    );
}

#[tokio::test]
async fn unregistered_redirect_and_logout_uris_are_never_redirected_to() {
    let p = Provider::new("no-open-redirects").await;
    let mut b = Browser::new(&p.d);
    for evil in [
        "https://evil.example/cb",
        "http://localhost:3000/callback/../x",
        "http://localhost:3000/callbackx",
    ] {
        let a = b
            .get(&format!(
                "{}/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}",
                p.base,
                p.client,
                encode(evil)
            ))
            .await;
        assert_eq!(a.status, 400, "{evil}");
        assert!(a.location.is_none(), "{evil} was redirected to");
        assert!(a.body.contains("redirect_mismatch"));
        let login = b
            .get(&format!(
                "{}/login?response_type=code&client_id={}&redirect_uri={}",
                p.base,
                p.client,
                encode(evil)
            ))
            .await;
        assert!(login.location.is_none() && login.status == 400);
    }
    // An unknown client: an error page.
    let a = b
        .get(&format!(
            "{}/oauth2/authorize?response_type=code&client_id=nope&redirect_uri={}",
            p.base,
            encode(CALLBACK)
        ))
        .await;
    assert!(a.location.is_none() && a.status == 400);
    // Errors about a valid client and redirect go back to it, with the state.
    let a = b.get(&format!(
        "{}/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&state=s1&scope=phone",
        p.base, p.client, encode(CALLBACK)
    )).await;
    assert_eq!(a.status, 302);
    let params = a.redirect_params();
    assert_eq!(
        (params["error"].as_str(), params["state"].as_str()),
        ("invalid_scope", "s1")
    );
    let a = b.get(&format!(
        "{}/oauth2/authorize?response_type=code&client_id={}&redirect_uri={}&code_challenge=abc&code_challenge_method=plain",
        p.base, p.client, encode(CALLBACK)
    )).await;
    assert_eq!(a.redirect_params()["error"], "invalid_request");

    for q in [
        format!(
            "client_id={}&logout_uri={}",
            p.client,
            encode("https://evil.example/")
        ),
        format!(
            "post_logout_redirect_uri={}&client_id={}",
            encode("https://evil.example/"),
            p.client
        ),
        format!(
            "client_id={}&redirect_uri={}&response_type=code",
            p.client,
            encode("https://evil.example/")
        ),
    ] {
        let a = b.get(&format!("{}/logout?{q}", p.base)).await;
        assert_eq!(a.status, 400, "{q}");
        assert!(a.location.is_none(), "{q} was redirected to");
    }
    let a = b
        .get(&format!(
            "{}/logout?client_id={}&logout_uri={}",
            p.base,
            p.client,
            encode(SIGNED_OUT)
        ))
        .await;
    assert_eq!(a.location.as_deref(), Some(SIGNED_OUT));
}

#[tokio::test]
async fn forms_without_their_csrf_token_are_refused() {
    let p = Provider::new("csrf-check").await;
    p.user("cy").await;
    let mut b = Browser::new(&p.d);
    let (url, _) = authorize_url(&p.base, &p.client, "");
    let page = b.browse(&url).await;
    let (action, fields) = form(&page.body, "login-form");
    let with = |token: Option<&str>| {
        let mut f: Vec<(String, String)> = fields
            .iter()
            .filter(|(k, _)| k != "_csrf")
            .cloned()
            .collect();
        if let Some(t) = token {
            f.push(("_csrf".into(), t.into()));
        }
        f.push(("username".into(), "cy".into()));
        f.push(("password".into(), PASSWORD.into()));
        f
    };
    // No token, a wrong token, and a right token without the browser's cookie.
    let a = b.post(&action, &with(None)).await;
    assert_eq!(a.status, 403);
    let a = b.post(&action, &with(Some(&"0".repeat(64)))).await;
    assert_eq!(a.status, 403);
    let token = fields.iter().find(|(k, _)| k == "_csrf").unwrap().1.clone();
    let mut stranger = Browser::new(&p.d);
    let a = stranger.post(&action, &with(Some(&token))).await;
    assert_eq!(a.status, 403);
    assert!(a.location.is_none());
    // Nothing was counted against the user: the real form signs in.
    let a = b
        .submit(
            &page,
            "login-form",
            &[("username", "cy"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(a.status, 302);
    assert!(a.location.unwrap().starts_with(CALLBACK));
}

#[tokio::test]
async fn a_remembered_sign_in_skips_the_form_until_logout() {
    let p = Provider::new("remembered").await;
    p.user("rhea").await;
    let mut b = Browser::new(&p.d);
    // prompt=none without a sign-in goes back with login_required.
    let (url, _) = authorize_url(&p.base, &p.client, "&prompt=none");
    let a = b.get(&url).await;
    assert_eq!(a.redirect_params()["error"], "login_required");

    let (url, _) = authorize_url(&p.base, &p.client, "");
    let first = sign_in(&mut b, &url, "rhea", PASSWORD).await;
    assert!(first.location.unwrap().starts_with(CALLBACK));
    // The next authorization needs no password: straight back with a new code.
    let (url, verifier) = authorize_url(&p.base, &p.client, "&prompt=none");
    let again = b.get(&url).await;
    assert_eq!(again.status, 302);
    let code = again.redirect_params()["code"].clone();
    let (status, tokens) = token_request(
        &p.d,
        &p.base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &p.client),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    // prompt=login asks again.
    let (url, _) = authorize_url(&p.base, &p.client, "&prompt=login");
    let a = b.get(&url).await;
    assert!(a.location.unwrap().contains("/login?"));

    // Cognito's logout form: forget the sign-in, go to a registered sign-out URL.
    let out = b
        .get(&format!(
            "{}/logout?client_id={}&logout_uri={}",
            p.base,
            p.client,
            encode(SIGNED_OUT)
        ))
        .await;
    assert_eq!(out.location.as_deref(), Some(SIGNED_OUT));
    let (url, _) = authorize_url(&p.base, &p.client, "");
    let a = b.get(&url).await;
    assert!(
        a.location.unwrap().contains("/login?"),
        "still signed in after logout"
    );

    // OpenID RP-initiated logout with an ID token hint, state passed back.
    let (url, _) = authorize_url(&p.base, &p.client, "");
    sign_in(&mut b, &url, "rhea", PASSWORD).await;
    let id = tokens["id_token"].as_str().unwrap();
    let out = b
        .get(&format!(
            "{}/logout?id_token_hint={id}&post_logout_redirect_uri={}&state=bye",
            p.base,
            encode(SIGNED_OUT)
        ))
        .await;
    assert_eq!(
        out.location.as_deref(),
        Some(format!("{SIGNED_OUT}?state=bye").as_str())
    );
    let (url, _) = authorize_url(&p.base, &p.client, "&prompt=none");
    assert_eq!(
        b.get(&url).await.redirect_params()["error"],
        "login_required"
    );

    // A global sign-out ends the remembered sign-in too.
    let (url, _) = authorize_url(&p.base, &p.client, "");
    sign_in(&mut b, &url, "rhea", PASSWORD).await;
    p.c.admin_user_global_sign_out()
        .user_pool_id(&p.pool)
        .username("rhea")
        .send()
        .await
        .unwrap();
    let (url, _) = authorize_url(&p.base, &p.client, "&prompt=none");
    assert_eq!(
        b.get(&url).await.redirect_params()["error"],
        "login_required"
    );
}

#[tokio::test]
async fn refresh_and_revoke_at_the_token_endpoints_with_a_secret_client() {
    let p = Provider::new("refreshing").await;
    p.user("rolf").await;
    let (client, secret) = oauth_client(
        &p.c,
        &p.pool,
        &[OAuthFlowType::Code],
        &["openid", "profile"],
        true,
    )
    .await;
    let secret = secret.unwrap();
    let mut b = Browser::new(&p.d);
    let url = format!(
        "{}/oauth2/authorize?response_type=code&client_id={client}&redirect_uri={}",
        p.base,
        encode(CALLBACK)
    );
    let back = sign_in(&mut b, &url, "rolf", PASSWORD).await;
    let code = back.redirect_params()["code"].clone();
    // A confidential client must authenticate.
    let (status, body) = token_request(
        &p.d,
        &p.base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client),
            ("code", &code),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // A wrong secret too, and neither attempt spent the code.
    let (status, body) = token_request(
        &p.d,
        &p.base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client),
            ("client_secret", "not-the-secret"),
            ("code", &code),
            ("redirect_uri", CALLBACK),
        ],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    let basic = base64::engine::general_purpose::STANDARD.encode(format!("{client}:{secret}"));
    let resp = http()
        .post(p.d.url(&format!("{}/oauth2/token", p.base)))
        .header("authorization", format!("Basic {basic}"))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", CALLBACK),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let tokens: Value = resp.json().await.unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    // Without the admin scope the token cannot call the user API.
    assert_eq!(claims(&access)["scope"], "openid profile");
    assert_code(
        p.c.get_user().access_token(&access).send().await,
        "NotAuthorizedException",
    );

    let (status, r) = token_request(
        &p.d,
        &p.base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client),
            ("client_secret", &secret),
            ("refresh_token", &refresh),
        ],
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(
        claims(r["access_token"].as_str().unwrap())["scope"],
        "openid profile"
    );
    assert!(r["id_token"].is_string());
    assert!(r.get("refresh_token").is_none());

    // Revocation needs the client's secret, then the refresh token is dead.
    let resp = http()
        .post(p.d.url(&format!("{}/oauth2/revoke", p.base)))
        .form(&[("token", refresh.as_str()), ("client_id", client.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let resp = http()
        .post(p.d.url(&format!("{}/oauth2/revoke", p.base)))
        .header("authorization", format!("Basic {basic}"))
        .form(&[("token", refresh.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (status, r) = token_request(
        &p.d,
        &p.base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client),
            ("client_secret", &secret),
            ("refresh_token", &refresh),
        ],
    )
    .await;
    assert_eq!((status, r["error"].as_str()), (400, Some("invalid_grant")));
    let info = http()
        .get(p.d.url(&format!("{}/oauth2/userInfo", p.base)))
        .bearer_auth(&access)
        .send()
        .await
        .unwrap();
    assert_eq!(info.status(), 401);
}

#[tokio::test]
async fn implicit_flow_returns_tokens_in_the_fragment() {
    let p = Provider::new("implicit-flow").await;
    p.user("ivy").await;
    let (client, _) = oauth_client(
        &p.c,
        &p.pool,
        &[OAuthFlowType::Implicit],
        &["openid", "email"],
        false,
    )
    .await;
    let mut b = Browser::new(&p.d);
    let url = format!(
        "{}/oauth2/authorize?response_type=token&client_id={client}&redirect_uri={}&state=st&nonce=nn",
        p.base,
        encode(CALLBACK)
    );
    let back = sign_in(&mut b, &url, "ivy", PASSWORD).await;
    let loc = back.location.clone().unwrap();
    assert!(loc.starts_with(&format!("{CALLBACK}#")), "{loc}");
    let params = back.redirect_params();
    assert_eq!(params["state"], "st");
    assert!(!params.contains_key("refresh_token"));
    let id = verify_jwt(&p.d, &p.pool, &params["id_token"], Some(&client)).await;
    assert_eq!(id["nonce"], "nn");
    // userInfo with openid email: the email and the basics only.
    let info: Value = http()
        .get(p.d.url(&format!("{}/oauth2/userInfo", p.base)))
        .bearer_auth(&params["access_token"])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(info["email"], "ivy@example.com");
    assert!(info.get("sub").is_some());
    // The code flow is not allowed for this client.
    let (url, _) = authorize_url(&p.base, &client, "");
    assert_eq!(
        b.get(&url).await.redirect_params()["error"],
        "unauthorized_client"
    );
}

#[tokio::test]
async fn sign_up_and_confirm_on_the_pages_end_signed_in() {
    let p = Provider::new("self-service").await;
    let mut b = Browser::new(&p.d);
    let (url, verifier) = authorize_url(&p.base, &p.client, "");
    let login = b.browse(&url).await;
    assert!(
        login.body.contains("id=\"signup-link\""),
        "sign-up offered: {}",
        login.body
    );
    let page = b
        .get(&format!(
            "{}/signup?{}",
            p.base,
            url.split_once('?').unwrap().1
        ))
        .await;
    assert!(
        page.body.contains("name=\"attr.email\""),
        "required email asked: {}",
        page.body
    );
    let mismatch = b
        .submit(
            &page,
            "signup-form",
            &[
                ("username", "sam"),
                ("attr.email", "sam@example.com"),
                ("password", PASSWORD),
                ("confirm_password", "other"),
            ],
        )
        .await;
    assert!(mismatch.body.contains("The two passwords differ."));
    let confirm = b
        .submit(
            &page,
            "signup-form",
            &[
                ("username", "sam"),
                ("attr.email", "sam@example.com"),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(confirm.status, 200, "{}", confirm.body);
    assert!(
        confirm.body.contains("id=\"confirm-form\""),
        "{}",
        confirm.body
    );
    let code = p.d.wait_code(&p.pool, "sam", "SignUp").await;
    let wrong = b
        .submit(&confirm, "confirm-form", &[("code", &other_code(&code))])
        .await;
    assert!(wrong.body.contains("role=\"alert\""), "{}", wrong.body);
    let done = b.submit(&wrong, "confirm-form", &[("code", &code)]).await;
    assert_eq!(done.status, 302, "{}", done.body);
    let params = done.redirect_params();
    let (status, tokens) = token_request(
        &p.d,
        &p.base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &p.client),
            ("code", &params["code"]),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(
        claims(tokens["id_token"].as_str().unwrap())["email"],
        "sam@example.com"
    );
    assert_eq!(
        admin_status(&p.c, &p.pool, "sam").await,
        UserStatusType::Confirmed
    );
}

#[tokio::test]
async fn forgot_password_on_the_pages() {
    let p = Provider::new("resets").await;
    p.user("flo").await;
    let mut b = Browser::new(&p.d);
    let (url, _) = authorize_url(&p.base, &p.client, "");
    b.browse(&url).await;
    let page = b
        .get(&format!(
            "{}/forgotPassword?{}",
            p.base,
            url.split_once('?').unwrap().1
        ))
        .await;
    let reset = b.submit(&page, "forgot-form", &[("username", "flo")]).await;
    assert!(reset.body.contains("id=\"reset-form\""), "{}", reset.body);
    assert!(
        reset.body.contains("f***@e***"),
        "masked destination shown: {}",
        reset.body
    );
    let code = p.d.wait_code(&p.pool, "flo", "ForgotPassword").await;
    let new_password = "Another-Passw0rd!";
    let done = b
        .submit(
            &reset,
            "reset-form",
            &[
                ("code", &code),
                ("password", new_password),
                ("confirm_password", new_password),
            ],
        )
        .await;
    assert!(
        done.body.contains("Your password has been changed."),
        "{}",
        done.body
    );
    let back = b
        .submit(
            &done,
            "login-form",
            &[("username", "flo"), ("password", new_password)],
        )
        .await;
    assert_eq!(back.status, 302);
    assert!(back.location.unwrap().starts_with(CALLBACK));
}

#[tokio::test]
async fn new_password_then_totp_setup_on_the_pages() {
    let p = Provider::new("first-login").await;
    p.c.set_user_pool_mfa_config()
        .user_pool_id(&p.pool)
        .software_token_mfa_configuration(
            SoftwareTokenMfaConfigType::builder().enabled(true).build(),
        )
        .mfa_configuration(UserPoolMfaType::On)
        .send()
        .await
        .unwrap();
    p.c.admin_create_user()
        .user_pool_id(&p.pool)
        .username("nina")
        .temporary_password("Temp-Passw0rd!")
        .user_attributes(attr("email", "nina@example.com"))
        .message_action(MessageActionType::Suppress)
        .send()
        .await
        .unwrap();
    let mut b = Browser::new(&p.d);
    let (url, verifier) = authorize_url(&p.base, &p.client, "");
    let page = sign_in(&mut b, &url, "nina", "Temp-Passw0rd!").await;
    assert!(
        page.body.contains("id=\"new-password-form\""),
        "{}",
        page.body
    );
    let setup = b
        .submit(
            &page,
            "new-password-form",
            &[("new_password", PASSWORD), ("confirm_password", PASSWORD)],
        )
        .await;
    assert!(
        setup.body.contains("id=\"mfa-setup-form\""),
        "{}",
        setup.body
    );
    assert!(setup.body.contains("<svg"), "a QR code is drawn");
    let secret = {
        let i = setup.body.find("id=\"secret\">").unwrap() + "id=\"secret\">".len();
        setup.body[i..i + setup.body[i..].find('<').unwrap()].to_owned()
    };
    let mut totp = Totp::new(&secret);
    let wrong = b
        .submit(&setup, "mfa-setup-form", &[("code", &totp.wrong_code())])
        .await;
    assert!(wrong.body.contains("role=\"alert\""), "{}", wrong.body);
    let back = b
        .submit(&wrong, "mfa-setup-form", &[("code", &totp.next_code())])
        .await;
    assert_eq!(back.status, 302, "{}", back.body);
    let code = back.redirect_params()["code"].clone();
    let (status, _) = token_request(
        &p.d,
        &p.base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &p.client),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200);

    // The next sign-in asks for the app's code.
    let mut b = Browser::new(&p.d);
    let (url, _) = authorize_url(&p.base, &p.client, "");
    let mfa = sign_in(&mut b, &url, "nina", PASSWORD).await;
    assert!(mfa.body.contains("id=\"mfa-form\""), "{}", mfa.body);
    let wrong = b
        .submit(&mfa, "mfa-form", &[("code", &totp.wrong_code())])
        .await;
    assert!(wrong.body.contains("role=\"alert\""));
    let back = b
        .submit(&wrong, "mfa-form", &[("code", &totp.next_code())])
        .await;
    assert_eq!(back.status, 302, "{}", back.body);
    assert!(back.location.unwrap().starts_with(CALLBACK));
}

#[tokio::test]
async fn prevent_user_existence_errors_hold_on_the_pages() {
    let p = Provider::new("no-oracle").await;
    p.c.update_user_pool_client()
        .user_pool_id(&p.pool)
        .client_id(&p.client)
        .prevent_user_existence_errors(PreventUserExistenceErrorTypes::Enabled)
        .allowed_o_auth_flows_user_pool_client(true)
        .allowed_o_auth_flows(OAuthFlowType::Code)
        .allowed_o_auth_scopes("openid")
        .callback_urls(CALLBACK)
        .supported_identity_providers("COGNITO")
        .send()
        .await
        .unwrap();
    p.user("pia").await;
    let mut b = Browser::new(&p.d);
    let (url, _) = authorize_url(&p.base, &p.client, "");
    let known = sign_in(&mut b, &url, "pia", "Wrong-passw0rd!").await;
    let unknown = sign_in(&mut b, &url, "nobody", "Wrong-passw0rd!").await;
    assert!(known.body.contains("Incorrect username or password."));
    assert!(
        unknown.body.contains("Incorrect username or password."),
        "{}",
        unknown.body
    );
}

#[tokio::test]
async fn discovery_lists_the_domain_endpoints_and_clients_are_validated() {
    let p = Provider::new("discover").await;
    let doc: Value = http()
        .get(p.d.url(&format!("/{}/.well-known/openid-configuration", p.pool)))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let base = p.d.url(&p.base);
    assert_eq!(
        doc["authorization_endpoint"],
        format!("{base}/oauth2/authorize")
    );
    assert_eq!(doc["userinfo_endpoint"], format!("{base}/oauth2/userInfo"));
    assert_eq!(doc["end_session_endpoint"], format!("{base}/logout"));
    assert_eq!(doc["revocation_endpoint"], format!("{base}/oauth2/revoke"));
    assert_eq!(
        doc["code_challenge_methods_supported"],
        serde_json::json!(["S256"])
    );
    assert!(
        doc["token_endpoint_auth_methods_supported"]
            .as_array()
            .unwrap()
            .contains(&Value::from("none"))
    );

    // Cognito's rules for OAuth settings.
    let base = || {
        client_builder(&p.c, &p.pool)
            .allowed_o_auth_flows_user_pool_client(true)
            .supported_identity_providers("COGNITO")
    };
    assert_code(
        base()
            .allowed_o_auth_flows(OAuthFlowType::Code)
            .allowed_o_auth_scopes("openid")
            .callback_urls("http://app.example.com/cb")
            .send()
            .await,
        "InvalidParameterException",
    );
    assert_code(
        base()
            .allowed_o_auth_flows(OAuthFlowType::Code)
            .allowed_o_auth_scopes("nope/read")
            .callback_urls(CALLBACK)
            .send()
            .await,
        "ScopeDoesNotExistException",
    );
    assert_code(
        base()
            .allowed_o_auth_flows(OAuthFlowType::ClientCredentials)
            .allowed_o_auth_scopes("openid")
            .send()
            .await,
        "InvalidOAuthFlowException",
    );
    assert_code(
        base()
            .allowed_o_auth_flows(OAuthFlowType::Code)
            .allowed_o_auth_scopes("openid")
            .send()
            .await,
        "InvalidOAuthFlowException",
    );
    assert_code(
        base()
            .allowed_o_auth_flows(OAuthFlowType::Code)
            .allowed_o_auth_scopes("openid")
            .callback_urls(CALLBACK)
            .default_redirect_uri("https://elsewhere.example/cb")
            .send()
            .await,
        "InvalidParameterException",
    );
    // A native app's custom scheme is fine.
    base()
        .allowed_o_auth_flows(OAuthFlowType::Code)
        .allowed_o_auth_scopes("openid")
        .callback_urls("myapp://callback")
        .send()
        .await
        .unwrap();
}

/// The pages run the API's triggers: PreSignUp refuses or auto-confirms a sign-up on the
/// sign-up page, PreTokenGeneration (source TokenGeneration_HostedAuth) shapes the tokens
/// of the code exchange, and its refresh (TokenGeneration_RefreshTokens).
#[tokio::test]
async fn nats_hosted_pages_run_the_pools_triggers() {
    use crate::nats::{Env, Seen, seen, trigger_pool};
    use cognate_worker::{Refuse, StringMap};
    use std::sync::Arc;

    let env = Env::start().await;
    let pool = trigger_pool(&env.c, &["PreSignUp", "PreTokenGeneration"], &[]).await;
    env.c
        .create_user_pool_domain()
        .user_pool_id(&pool)
        .domain("triggered")
        .send()
        .await
        .unwrap();
    let (client, _) = oauth_client(
        &env.c,
        &pool,
        &[OAuthFlowType::Code],
        &["openid", "email"],
        false,
    )
    .await;
    let sources: Seen<String> = seen();
    let rec = Arc::clone(&sources);
    let _w = env
        .worker(&pool)
        .pre_sign_up(|mut ev| async move {
            if ev.user_name.starts_with("blocked") {
                return Err(Refuse::new("This name is blocked"));
            }
            ev.response.auto_confirm_user = true;
            Ok(ev)
        })
        .pre_token_generation(move |mut ev| {
            let rec = Arc::clone(&rec);
            async move {
                rec.lock().unwrap().push(ev.trigger_source.clone());
                ev.response.claims_override_details = Some(cognate_worker::ClaimsOverrideDetails {
                    claims_to_add_or_override: Some(StringMap::from([(
                        "tier".into(),
                        "gold".into(),
                    )])),
                    ..Default::default()
                });
                Ok(ev)
            }
        })
        .build()
        .start()
        .await
        .unwrap();

    let base = "/domains/triggered";
    let mut b = Browser::new(&env.d);
    let (url, verifier) = authorize_url(base, &client, "");
    b.browse(&url).await;
    let page = b
        .get(&format!("{base}/signup?{}", url.split_once('?').unwrap().1))
        .await;
    let refused = b
        .submit(
            &page,
            "signup-form",
            &[
                ("username", "blocked-bob"),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert!(
        refused.body.contains("This name is blocked"),
        "{}",
        refused.body
    );
    assert_code(
        env.c
            .admin_get_user()
            .user_pool_id(&pool)
            .username("blocked-bob")
            .send()
            .await,
        "UserNotFoundException",
    );
    // Auto-confirmed by the trigger: no code page, straight back signed in.
    let back = b
        .submit(
            &page,
            "signup-form",
            &[
                ("username", "gwen"),
                ("password", PASSWORD),
                ("confirm_password", PASSWORD),
            ],
        )
        .await;
    assert_eq!(back.status, 302, "{}", back.body);
    let code = back.redirect_params()["code"].clone();
    let (status, tokens) = token_request(
        &env.d,
        base,
        &[
            ("grant_type", "authorization_code"),
            ("client_id", &client),
            ("code", &code),
            ("redirect_uri", CALLBACK),
            ("code_verifier", &verifier),
        ],
    )
    .await;
    assert_eq!(status, 200, "{tokens}");
    assert_eq!(claims(tokens["id_token"].as_str().unwrap())["tier"], "gold");
    let (status, r) = token_request(
        &env.d,
        base,
        &[
            ("grant_type", "refresh_token"),
            ("client_id", &client),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(claims(r["id_token"].as_str().unwrap())["tier"], "gold");
    assert_eq!(
        *sources.lock().unwrap(),
        vec![
            "TokenGeneration_HostedAuth".to_owned(),
            "TokenGeneration_RefreshTokens".to_owned()
        ]
    );
}

#[tokio::test]
async fn choose_a_factor_then_an_email_code_on_the_pages() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let (pool, api_client) =
        crate::mfa::mfa_pool(&c, UserPoolMfaType::Optional, false, true, true).await;
    crate::mfa::mfa_user(&d, &c, &pool, &api_client, "sel", Some("+15555550177")).await;
    c.admin_set_user_mfa_preference()
        .user_pool_id(&pool)
        .username("sel")
        .sms_mfa_settings(
            SmsMfaSettingsType::builder()
                .enabled(true)
                .preferred_mfa(false)
                .build(),
        )
        .email_mfa_settings(
            EmailMfaSettingsType::builder()
                .enabled(true)
                .preferred_mfa(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.create_user_pool_domain()
        .user_pool_id(&pool)
        .domain("factors")
        .send()
        .await
        .unwrap();
    let (client, _) = oauth_client(&c, &pool, &[OAuthFlowType::Code], &["openid"], false).await;
    let mut b = Browser::new(&d);
    let (url, _) = authorize_url("/domains/factors", &client, "");
    let select = sign_in(&mut b, &url, "sel", PASSWORD).await;
    assert!(
        select.body.contains("id=\"select-mfa-form\""),
        "{}",
        select.body
    );
    assert!(
        select.body.contains("value=\"SMS_MFA\"") && select.body.contains("value=\"EMAIL_OTP\"")
    );
    let code_page = b
        .submit(&select, "select-mfa-form", &[("answer", "EMAIL_OTP")])
        .await;
    assert!(
        code_page.body.contains("We sent a code by email to"),
        "{}",
        code_page.body
    );
    let m = d.wait_message(&pool, "sel", "Authentication").await;
    assert_eq!(m["channel"], "email");
    let code = extract_code(m["body"].as_str().unwrap()).unwrap();
    let wrong = b
        .submit(&code_page, "mfa-form", &[("code", &other_code(&code))])
        .await;
    assert!(wrong.body.contains("role=\"alert\""), "{}", wrong.body);
    let back = b.submit(&wrong, "mfa-form", &[("code", &code)]).await;
    assert_eq!(back.status, 302, "{}", back.body);
    assert!(back.location.unwrap().starts_with(CALLBACK));
    // The same code a second time opens nothing.
    let replay = b.submit(&wrong, "mfa-form", &[("code", &code)]).await;
    assert_ne!(replay.status, 302);
}
