//! A pool as an OAuth 2.0 provider: user pool domains and resource servers through the
//! AWS SDK, and machine-to-machine tokens (`client_credentials`) from the domain's token
//! endpoint, found by Host or by path.

use base64::Engine as _;

use crate::common::*;

async fn domain_pool(c: &Client, domain: &str) -> String {
    let pool = create_pool(c, domain).await;
    c.create_user_pool_domain()
        .user_pool_id(&pool)
        .domain(domain)
        .send()
        .await
        .unwrap();
    pool
}

#[tokio::test]
async fn user_pool_domains_as_cognito_keeps_them() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = create_pool(&c, "shop").await;
    let out = c
        .create_user_pool_domain()
        .user_pool_id(&pool)
        .domain("shop-login")
        .send()
        .await
        .unwrap();
    assert_eq!(out.managed_login_version(), Some(1));
    assert!(out.cloud_front_domain().is_none());
    let desc = c
        .describe_user_pool_domain()
        .domain("shop-login")
        .send()
        .await
        .unwrap();
    let dd = desc.domain_description().unwrap();
    assert_eq!(dd.user_pool_id(), Some(pool.as_str()));
    assert_eq!(dd.domain(), Some("shop-login"));
    assert_eq!(dd.status(), Some(&DomainStatusType::Active));
    let up = c
        .describe_user_pool()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    assert_eq!(up.user_pool().unwrap().domain(), Some("shop-login"));

    // One prefix domain per pool; a name belongs to one pool; reserved words refused.
    assert_code(
        c.create_user_pool_domain()
            .user_pool_id(&pool)
            .domain("shop-other")
            .send()
            .await,
        "InvalidParameterException",
    );
    let other = create_pool(&c, "other").await;
    assert_code(
        c.create_user_pool_domain()
            .user_pool_id(&other)
            .domain("shop-login")
            .send()
            .await,
        "InvalidParameterException",
    );
    for bad in ["my-cognito", "-lead", "Upper"] {
        let r = c
            .create_user_pool_domain()
            .user_pool_id(&other)
            .domain(bad)
            .send()
            .await;
        assert!(r.is_err(), "{bad} was accepted");
    }
    // A custom domain besides it, with its certificate.
    let out = c
        .create_user_pool_domain()
        .user_pool_id(&pool)
        .domain("auth.shop.example")
        .custom_domain_config(
            CustomDomainConfigType::builder()
                .certificate_arn("arn:aws:acm:us-east-1:123456789012:certificate/abc")
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    assert!(out.cloud_front_domain().is_some());
    let up = c
        .describe_user_pool()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    assert_eq!(
        up.user_pool().unwrap().custom_domain(),
        Some("auth.shop.example")
    );
    let desc = c
        .describe_user_pool_domain()
        .domain("auth.shop.example")
        .send()
        .await
        .unwrap();
    let dd = desc.domain_description().unwrap();
    assert_eq!(dd.user_pool_id(), Some(pool.as_str()));
    assert!(dd.custom_domain_config().is_some());
    // A dotted name without a certificate is no prefix.
    assert_code(
        c.create_user_pool_domain()
            .user_pool_id(&other)
            .domain("login.other.example")
            .send()
            .await,
        "InvalidParameterException",
    );
    // Update the login version, then delete.
    let out = c
        .update_user_pool_domain()
        .user_pool_id(&pool)
        .domain("shop-login")
        .managed_login_version(2)
        .send()
        .await
        .unwrap();
    assert_eq!(out.managed_login_version(), Some(2));
    c.delete_user_pool_domain()
        .user_pool_id(&pool)
        .domain("shop-login")
        .send()
        .await
        .unwrap();
    let desc = c
        .describe_user_pool_domain()
        .domain("shop-login")
        .send()
        .await
        .unwrap();
    assert!(desc.domain_description().unwrap().user_pool_id().is_none());
    assert_code(
        c.delete_user_pool_domain()
            .user_pool_id(&pool)
            .domain("shop-login")
            .send()
            .await,
        "InvalidParameterException",
    );
    // Freed: another pool may take the name now; and the domain survives UpdateUserPool.
    c.create_user_pool_domain()
        .user_pool_id(&other)
        .domain("shop-login")
        .send()
        .await
        .unwrap();
    c.update_user_pool()
        .user_pool_id(&other)
        .mfa_configuration(UserPoolMfaType::Off)
        .send()
        .await
        .unwrap();
    let up = c
        .describe_user_pool()
        .user_pool_id(&other)
        .send()
        .await
        .unwrap();
    assert_eq!(up.user_pool().unwrap().domain(), Some("shop-login"));
}

fn scope(name: &str) -> ResourceServerScopeType {
    ResourceServerScopeType::builder()
        .scope_name(name)
        .scope_description(format!("{name} things"))
        .build()
        .unwrap()
}

#[tokio::test]
async fn resource_servers_with_custom_scopes() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = create_pool(&c, "rs").await;
    for id in ["https://api.example.com", "orders"] {
        let out = c
            .create_resource_server()
            .user_pool_id(&pool)
            .identifier(id)
            .name("orders api")
            .scopes(scope("read"))
            .scopes(scope("write"))
            .send()
            .await
            .unwrap();
        assert_eq!(out.resource_server().unwrap().scopes().len(), 2);
    }
    assert_code(
        c.create_resource_server()
            .user_pool_id(&pool)
            .identifier("orders")
            .name("again")
            .send()
            .await,
        "InvalidParameterException",
    );
    let page = c
        .list_resource_servers()
        .user_pool_id(&pool)
        .max_results(1)
        .send()
        .await
        .unwrap();
    assert_eq!(page.resource_servers().len(), 1);
    let rest = c
        .list_resource_servers()
        .user_pool_id(&pool)
        .max_results(1)
        .next_token(page.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.resource_servers().len(), 1);
    assert!(rest.next_token().is_none());
    assert_ne!(
        page.resource_servers()[0].identifier(),
        rest.resource_servers()[0].identifier()
    );
    c.update_resource_server()
        .user_pool_id(&pool)
        .identifier("orders")
        .name("Orders")
        .scopes(scope("read"))
        .send()
        .await
        .unwrap();
    let got = c
        .describe_resource_server()
        .user_pool_id(&pool)
        .identifier("orders")
        .send()
        .await
        .unwrap();
    let rs = got.resource_server().unwrap();
    assert_eq!(rs.name(), Some("Orders"));
    assert_eq!(rs.scopes().len(), 1);
    c.delete_resource_server()
        .user_pool_id(&pool)
        .identifier("orders")
        .send()
        .await
        .unwrap();
    assert_code(
        c.describe_resource_server()
            .user_pool_id(&pool)
            .identifier("orders")
            .send()
            .await,
        "ResourceNotFoundException",
    );
    assert_code(
        c.update_resource_server()
            .user_pool_id(&pool)
            .identifier("orders")
            .name("x")
            .send()
            .await,
        "ResourceNotFoundException",
    );
}

/// A confidential client allowed `client_credentials` with the given scopes.
async fn m2m_client(c: &Client, pool: &str, scopes: &[&str], flow: bool) -> (String, String) {
    let mut b = c
        .create_user_pool_client()
        .user_pool_id(pool)
        .client_name("m2m")
        .generate_secret(true)
        .allowed_o_auth_flows_user_pool_client(true);
    if flow {
        b = b.allowed_o_auth_flows(OAuthFlowType::ClientCredentials);
    } else {
        b = b
            .allowed_o_auth_flows(OAuthFlowType::Code)
            .callback_urls("https://app.example.com/callback");
    }
    for s in scopes {
        b = b.allowed_o_auth_scopes(*s);
    }
    let out = b.send().await.unwrap();
    let cl = out.user_pool_client().unwrap();
    (
        cl.client_id().unwrap().to_owned(),
        cl.client_secret().unwrap().to_owned(),
    )
}

async fn token_request(
    url: &str,
    host: Option<&str>,
    basic: Option<(&str, &str)>,
    form: &[(&str, &str)],
) -> (u16, reqwest::header::HeaderMap, Value) {
    let body: String = form
        .iter()
        .map(|(k, v)| {
            format!(
                "{k}={}",
                v.replace(' ', "+").replace('/', "%2F").replace(':', "%3A")
            )
        })
        .collect::<Vec<_>>()
        .join("&");
    let mut req = http()
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(h) = host {
        req = req.header("host", h);
    }
    if let Some((id, secret)) = basic {
        let b64 = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
        req = req.header("authorization", format!("Basic {b64}"));
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.json().await.unwrap_or(Value::Null);
    (status, headers, body)
}

#[tokio::test]
async fn client_credentials_tokens_carry_the_granted_custom_scopes() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = domain_pool(&c, "machines").await;
    c.create_resource_server()
        .user_pool_id(&pool)
        .identifier("https://api.example.com")
        .name("api")
        .scopes(scope("read"))
        .scopes(scope("write"))
        .send()
        .await
        .unwrap();
    let (id, secret) = m2m_client(&c, &pool, &["https://api.example.com/read"], true).await;
    let url = d.url("/domains/machines/oauth2/token");

    // Discovery names the token endpoint.
    let doc: Value = http()
        .get(d.url(&format!("/{pool}/.well-known/openid-configuration")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["token_endpoint"], url.as_str());

    // HTTP Basic, no scope asked: every custom scope the client may have.
    let (status, headers, body) = token_request(
        &url,
        None,
        Some((&id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(body["token_type"], "Bearer");
    assert!(body["expires_in"].as_i64().unwrap() > 0);
    let token = body["access_token"].as_str().unwrap();
    let claims = verify_jwt(&d, &pool, token, None).await;
    assert_eq!(claims["sub"], id.as_str());
    assert_eq!(claims["client_id"], id.as_str());
    assert_eq!(claims["token_use"], "access");
    assert_eq!(claims["scope"], "https://api.example.com/read");
    // Such a token is no user's: GetUser refuses it.
    assert_code(
        c.get_user().access_token(token).send().await,
        "NotAuthorizedException",
    );

    // client_secret_post, by Host (<prefix>.<domain suffix>), with an explicit scope.
    let (status, _, body) = token_request(
        &d.url("/oauth2/token"),
        Some("machines.auth.localhost"),
        None,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &id),
            ("client_secret", &secret),
            ("scope", "https://api.example.com/read"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");

    // Refusals, each with its OAuth error.
    type Case<'a> = (
        Vec<(&'a str, &'a str)>,
        Option<(&'a str, &'a str)>,
        u16,
        &'a str,
    );
    let cases: Vec<Case> = vec![
        (
            vec![("grant_type", "client_credentials")],
            Some((&id, "wrong")),
            401,
            "invalid_client",
        ),
        (
            vec![("grant_type", "client_credentials")],
            Some(("nobody", "x")),
            401,
            "invalid_client",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("scope", "https://api.example.com/write"),
            ],
            Some((&id, &secret)),
            400,
            "invalid_scope",
        ),
        (
            vec![("grant_type", "client_credentials"), ("scope", "openid")],
            Some((&id, &secret)),
            400,
            "invalid_scope",
        ),
        (
            vec![("grant_type", "password")],
            Some((&id, &secret)),
            400,
            "unsupported_grant_type",
        ),
        (vec![], Some((&id, &secret)), 400, "invalid_request"),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("grant_type", "client_credentials"),
            ],
            Some((&id, &secret)),
            400,
            "invalid_request",
        ),
        (
            vec![
                ("grant_type", "client_credentials"),
                ("client_secret", &secret),
            ],
            Some((&id, &secret)),
            400,
            "invalid_request",
        ),
    ];
    for (form, basic, want_status, want) in cases {
        let (status, headers, body) = token_request(&url, None, basic, &form).await;
        assert_eq!(
            (status, body["error"].as_str()),
            (want_status, Some(want)),
            "{form:?}: {body}"
        );
        if want == "invalid_client" {
            assert!(headers.contains_key("www-authenticate"));
        }
    }
    // A client without the flow is not authorised for it.
    let (code_id, code_secret) =
        m2m_client(&c, &pool, &["https://api.example.com/read"], false).await;
    let (status, _, body) = token_request(
        &url,
        None,
        Some((&code_id, &code_secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("unauthorized_client"))
    );
    // Another pool's domain does not know this client.
    domain_pool(&c, "elsewhere").await;
    let (status, _, body) = token_request(
        &d.url("/domains/elsewhere/oauth2/token"),
        None,
        Some((&id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("invalid_client"))
    );
    // An unknown domain has no endpoint.
    let (status, _, _) = token_request(
        &d.url("/domains/nowhere/oauth2/token"),
        None,
        Some((&id, &secret)),
        &[("grant_type", "client_credentials")],
    )
    .await;
    assert_eq!(status, 404);
}
