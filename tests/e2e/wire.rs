//! Wire robustness with raw HTTP: malformed JSON, unknown targets, oversized bodies,
//! wrong field types; error shape and header; no state change; CORS preflight.

use crate::common::*;

/// Asserts an AWS JSON 1.1 error: 4xx, `__type`, `message`, `x-amzn-ErrorType`.
#[track_caller]
fn assert_wire_error(status: u16, header: Option<&str>, body: &Value) -> String {
    assert!((400..500).contains(&status), "status {status}, body {body}");
    let t = type_name(body).to_owned();
    assert!(!t.is_empty(), "no __type in {body}");
    assert!(body["message"].is_string(), "no message in {body}");
    let h = header.unwrap_or_else(|| panic!("no x-amzn-ErrorType header for {body}"));
    assert_eq!(error_type_name(h), t);
    t
}

async fn user_exists(f: &Fixture, username: &str) -> bool {
    match f
        .c
        .admin_get_user()
        .user_pool_id(&f.pool)
        .username(username)
        .send()
        .await
    {
        Ok(_) => true,
        Err(e) => {
            assert_eq!(e.code(), Some("UserNotFoundException"), "{e:?}");
            false
        }
    }
}

#[tokio::test]
async fn malformed_json_is_a_serialization_error() {
    let f = Fixture::new().await;
    let (status, header, body) = raw_post(
        &f.d,
        "SignUp",
        format!(
            r#"{{"ClientId":"{}","Username":"mal","Password":"#,
            f.client
        ),
    )
    .await;
    assert_eq!(status, 400);
    let t = assert_wire_error(status, header.as_deref(), &body);
    assert!(t.contains("Serialization"), "__type {t}");
    let (status, header, body) = raw_post(&f.d, "SignUp", "not json at all").await;
    assert_eq!(status, 400);
    assert_wire_error(status, header.as_deref(), &body);
    assert!(!user_exists(&f, "mal").await);
}

#[tokio::test]
async fn unknown_target_is_rejected() {
    let f = Fixture::new().await;
    let (status, header, body) = raw_post(&f.d, "DoSomethingElse", "{}").await;
    assert_eq!(status, 400);
    assert_eq!(
        assert_wire_error(status, header.as_deref(), &body),
        "UnknownOperationException"
    );
    // A target outside the Cognito service prefix too.
    let resp = http()
        .post(f.d.url("/"))
        .header("content-type", AMZ_JSON)
        .header("x-amz-target", "DynamoDB_20120810.ListTables")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    // No target at all.
    let resp = http()
        .post(f.d.url("/"))
        .header("content-type", AMZ_JSON)
        .body("{}")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
}

#[tokio::test]
async fn oversized_body_is_refused() {
    let f = Fixture::new().await;
    let huge = "x".repeat(1536 * 1024);
    let body = json!({
        "ClientId": f.client,
        "Username": "huge",
        "Password": PASSWORD,
        "UserAttributes": [{"Name": "name", "Value": huge}]
    })
    .to_string();
    let result = http()
        .post(f.d.url("/"))
        .header("content-type", AMZ_JSON)
        .header("x-amz-target", "AWSCognitoIdentityProviderService.SignUp")
        .body(body)
        .send()
        .await;
    match result {
        Ok(resp) => assert!(
            resp.status().is_client_error(),
            "oversized body answered {}",
            resp.status()
        ),
        // A server may also close the connection before reading the whole body.
        Err(e) => assert!(e.is_request() || e.is_body(), "{e:?}"),
    }
    assert!(!user_exists(&f, "huge").await);
    // The daemon still serves normal requests.
    f.c.sign_up()
        .client_id(&f.client)
        .username("normal")
        .password(PASSWORD)
        .send()
        .await
        .unwrap();
}

#[tokio::test]
async fn wrong_field_type_is_invalid_parameter() {
    let f = Fixture::new().await;
    let (status, header, body) = raw_post(
        &f.d,
        "SignUp",
        json!({"ClientId": f.client, "Username": 12345, "Password": PASSWORD}).to_string(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        assert_wire_error(status, header.as_deref(), &body),
        "InvalidParameterException"
    );
    let (status, header, body) = raw_post(
        &f.d,
        "SignUp",
        json!({"ClientId": f.client, "Username": "typed", "Password": PASSWORD, "UserAttributes": "email"})
            .to_string(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        assert_wire_error(status, header.as_deref(), &body),
        "InvalidParameterException"
    );
    // Missing a required member.
    let (status, header, body) = raw_post(
        &f.d,
        "SignUp",
        json!({"Username": "typed", "Password": PASSWORD}).to_string(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        assert_wire_error(status, header.as_deref(), &body),
        "InvalidParameterException"
    );
    assert!(!user_exists(&f, "12345").await);
    assert!(!user_exists(&f, "typed").await);
}

#[tokio::test]
async fn service_errors_carry_type_message_and_header() {
    let f = Fixture::new().await;
    f.user("xena").await;
    let (status, header, body) = raw_post(
        &f.d,
        "InitiateAuth",
        json!({
            "AuthFlow": "USER_PASSWORD_AUTH",
            "ClientId": f.client,
            "AuthParameters": {"USERNAME": "xena", "PASSWORD": "Wr0ng-password!"}
        })
        .to_string(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        assert_wire_error(status, header.as_deref(), &body),
        "NotAuthorizedException"
    );
    assert_eq!(body["message"], "Incorrect username or password.");
    // Error bodies never echo secrets.
    assert!(!body.to_string().contains("Wr0ng-password!"));
}

#[tokio::test]
async fn cors_preflight_is_answered() {
    let f = Fixture::new().await;
    let origin = "http://localhost:5173";
    let resp = http()
        .request(reqwest::Method::OPTIONS, f.d.url("/"))
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "content-type,x-amz-target,x-amz-user-agent",
        )
        .send()
        .await
        .unwrap();
    assert!(
        matches!(resp.status().as_u16(), 200 | 204),
        "preflight status {}",
        resp.status()
    );
    let allow_origin = resp
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned());
    assert!(
        matches!(
            allow_origin.as_deref(),
            Some("*") | Some("http://localhost:5173")
        ),
        "{allow_origin:?}"
    );
    let allow_headers = resp
        .headers()
        .get("access-control-allow-headers")
        .map(|v| v.to_str().unwrap().to_ascii_lowercase())
        .unwrap_or_default();
    for h in ["content-type", "x-amz-target", "x-amz-user-agent"] {
        assert!(
            allow_headers == "*" || allow_headers.contains(h),
            "{h} not allowed: {allow_headers:?}"
        );
    }
    let allow_methods = resp
        .headers()
        .get("access-control-allow-methods")
        .map(|v| v.to_str().unwrap().to_ascii_uppercase())
        .unwrap_or_default();
    assert!(
        allow_methods == "*" || allow_methods.contains("POST"),
        "{allow_methods:?}"
    );

    // The actual cross-origin call carries the header as well.
    let resp = http()
        .post(f.d.url("/"))
        .header("origin", origin)
        .header("content-type", AMZ_JSON)
        .header("x-amz-target", "AWSCognitoIdentityProviderService.SignUp")
        .body(json!({"ClientId": f.client, "Username": "cors", "Password": PASSWORD}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().contains_key("access-control-allow-origin"));
}
