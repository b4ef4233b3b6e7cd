//! Erasure (issue 14): a user who used everything is deleted; afterwards none of their
//! values is anywhere in the daemon's data directory or in nats-server's JetStream store,
//! the rebuilt state equals the live one, and everyone else is untouched. The export of a
//! live user holds every value set for them.

use std::path::Path;

use aws_sdk_cognitoidentityprovider::types::{
    AttributeDataType, DeviceConfigurationType, DeviceSecretVerifierConfigType,
    SchemaAttributeType, SoftwareTokenMfaSettingsType, UserPoolMfaType, VerifiedAttributeType,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use cognate_crypto::srp;

use crate::common::*;
use crate::nats::{Env, trigger_pool};

const PASSWORD: &str = "Erasure-Passw0rd!";

/// Every byte of every file under `dir`.
fn all_bytes(dir: &Path) -> Vec<u8> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.extend(std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    out
}

fn holds(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

struct Person {
    username: &'static str,
    email: &'static str,
    phone: &'static str,
    name: &'static str,
    renamed: &'static str,
    nickname: &'static str,
    device: &'static str,
}

const GONE: Person = Person {
    username: "erasable-zq7",
    email: "zq7.erasable@example.org",
    phone: "+15550107777",
    name: "Zq7 Erasableperson",
    renamed: "Zq7 Renamedperson",
    nickname: "Zq7Nickname",
    device: "Zq7 Laptop Device",
};

const KEPT: Person = Person {
    username: "keeper-k4",
    email: "k4.keeper@example.org",
    phone: "+15550104444",
    name: "K4 Keeperperson",
    renamed: "K4 Renamedkeeper",
    nickname: "K4Nickname",
    device: "K4 Phone Device",
};

/// Signs up, confirms, signs in, renames, tracks a device, sets up TOTP and joins a
/// group: every kind of personal value the daemon keeps.
async fn use_everything(env: &Env, pool: &str, client: &str, p: &Person) -> String {
    let c = &env.c;
    c.sign_up()
        .client_id(client)
        .username(p.username)
        .password(PASSWORD)
        .user_attributes(attr("email", p.email))
        .user_attributes(attr("phone_number", p.phone))
        .user_attributes(attr("name", p.name))
        .user_attributes(attr("custom:petname", p.nickname))
        .send()
        .await
        .unwrap();
    c.admin_confirm_sign_up()
        .user_pool_id(pool)
        .username(p.username)
        .send()
        .await
        .unwrap();
    let tokens = login(c, client, p.username, PASSWORD).await;
    let at = tokens.access_token().unwrap().to_owned();
    c.update_user_attributes()
        .access_token(&at)
        .user_attributes(attr("name", p.renamed))
        .send()
        .await
        .unwrap();
    let meta = tokens.new_device_metadata().expect("NewDeviceMetadata");
    let (device_key, group_key) = (
        meta.device_key().unwrap().to_owned(),
        meta.device_group_key().unwrap().to_owned(),
    );
    let salt = srp::new_salt();
    let verifier = srp::verifier(&group_key, &device_key, "device-password", &salt);
    c.confirm_device()
        .access_token(&at)
        .device_key(&device_key)
        .device_name(p.device)
        .device_secret_verifier_config(
            DeviceSecretVerifierConfigType::builder()
                .password_verifier(STANDARD.encode(&verifier))
                .salt(STANDARD.encode(&salt))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let secret = c
        .associate_software_token()
        .access_token(&at)
        .send()
        .await
        .unwrap();
    let mut app = Totp::new(secret.secret_code().unwrap());
    c.verify_software_token()
        .access_token(&at)
        .user_code(app.next_code())
        .send()
        .await
        .unwrap();
    c.set_user_mfa_preference()
        .access_token(&at)
        .software_token_mfa_settings(
            SoftwareTokenMfaSettingsType::builder()
                .enabled(true)
                .preferred_mfa(false)
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.admin_add_user_to_group()
        .user_pool_id(pool)
        .username(p.username)
        .group_name("erasure-staff")
        .send()
        .await
        .unwrap();
    device_key
}

/// The export document through the signed extension operation.
async fn export(env: &Env, pool: &str, username: &str) -> (u16, Value) {
    let body = serde_json::to_vec(&json!({"UserPoolId": pool, "Username": username})).unwrap();
    let url = reqwest::Url::parse(env.d.endpoint()).unwrap();
    let host = format!("{}:{}", url.host_str().unwrap(), url.port().unwrap());
    let headers = vec![
        (
            "content-type".to_owned(),
            "application/x-amz-json-1.1".to_owned(),
        ),
        (
            "x-amz-target".to_owned(),
            "CognateService.AdminExportUserData".to_owned(),
        ),
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let signed = cognate_crypto::sigv4::sign(
        "POST",
        &host,
        "/",
        "",
        &headers,
        &body,
        now,
        "us-east-1",
        "cognito-idp",
        env.d.admin_access_key(),
        env.d.admin_secret(),
    );
    let mut rb = reqwest::Client::new().post(env.d.endpoint());
    for (k, v) in headers.iter().chain(signed.iter()) {
        rb = rb.header(k, v);
    }
    let resp = rb.body(body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

#[tokio::test]
async fn a_deleted_user_is_gone_from_the_data_directory_and_the_jetstream_store() {
    let mut env = Env::start().await;
    let pool = trigger_pool(&env.c, &["PostConfirmation", "PostAuthentication"], &[]).await;
    let mut events = env.events(&pool).await;
    events
        .take("pool.created", |g| g.json["type"] == "pool.created")
        .await;
    let c = &env.c;
    c.update_user_pool()
        .user_pool_id(&pool)
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .mfa_configuration(UserPoolMfaType::Optional)
        .device_configuration(
            DeviceConfigurationType::builder()
                .challenge_required_on_new_device(false)
                .device_only_remembered_on_user_prompt(false)
                .build(),
        )
        .lambda_config(
            aws_sdk_cognitoidentityprovider::types::LambdaConfigType::builder()
                .post_confirmation(crate::nats::arn("PostConfirmation"))
                .post_authentication(crate::nats::arn("PostAuthentication"))
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.set_user_pool_mfa_config()
        .user_pool_id(&pool)
        .software_token_mfa_configuration(
            aws_sdk_cognitoidentityprovider::types::SoftwareTokenMfaConfigType::builder()
                .enabled(true)
                .build(),
        )
        .mfa_configuration(UserPoolMfaType::Optional)
        .send()
        .await
        .unwrap();
    c.add_custom_attributes()
        .user_pool_id(&pool)
        .custom_attributes(
            SchemaAttributeType::builder()
                .name("petname")
                .attribute_data_type(AttributeDataType::String)
                .mutable(true)
                .build(),
        )
        .send()
        .await
        .unwrap();
    c.create_group()
        .user_pool_id(&pool)
        .group_name("erasure-staff")
        .send()
        .await
        .unwrap();
    let client = create_client(c, &pool).await;
    let gone_device = use_everything(&env, &pool, &client, &GONE).await;
    use_everything(&env, &pool, &client, &KEPT).await;

    // The export of a live user holds every value set in the test, and no secret.
    let (status, doc) = export(&env, &pool, GONE.username).await;
    assert_eq!(status, 200, "{doc}");
    let text = doc.to_string();
    for v in [
        GONE.username,
        GONE.email,
        GONE.phone,
        GONE.renamed,
        GONE.nickname,
        GONE.device,
        "erasure-staff",
        gone_device.as_str(),
    ] {
        assert!(text.contains(v), "{v} missing from the export: {doc:#}");
    }
    assert_eq!(doc["Attributes"]["name"], GONE.renamed);
    assert_eq!(doc["Mfa"]["SoftwareTokenMfaEnabled"], true);
    assert_eq!(doc["Devices"][0]["DeviceName"], GONE.device);
    assert_eq!(doc["Groups"][0], "erasure-staff");
    assert!(!doc["Sessions"].as_array().unwrap().is_empty());
    let types: Vec<&str> = doc["Events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["Type"].as_str().unwrap())
        .collect();
    for t in [
        "user.signed_up",
        "user.confirmed",
        "user.signed_in",
        "user.attributes_changed",
        "user.device_confirmed",
        "user.mfa_settings_changed",
        "user.added_to_group",
    ] {
        assert!(types.contains(&t), "{t} missing from {types:?}");
    }
    for secret in [
        "password_hash",
        "argon2",
        "verifier",
        "totp_secret",
        "refresh_hash",
    ] {
        assert!(!text.contains(secret), "the export carries {secret}");
    }
    // `cognate export-user` signs the same request from the command line.
    let out = tokio::process::Command::new(cognate_testkit::cognate_bin())
        .args([
            "export-user",
            "--user-pool-id",
            &pool,
            "--username",
            KEPT.username,
            "--endpoint",
            env.d.endpoint(),
        ])
        .env("AWS_ACCESS_KEY_ID", env.d.admin_access_key())
        .env("AWS_SECRET_ACCESS_KEY", env.d.admin_secret())
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(cli["Attributes"]["email"], KEPT.email);
    assert_eq!(cli["Devices"][0]["DeviceName"], KEPT.device);
    let out = tokio::process::Command::new(cognate_testkit::cognate_bin())
        .args([
            "export-user",
            "--user-pool-id",
            &pool,
            "--username",
            "nobody",
        ])
        .args(["--endpoint", env.d.endpoint()])
        .env("AWS_ACCESS_KEY_ID", env.d.admin_access_key())
        .env("AWS_SECRET_ACCESS_KEY", env.d.admin_secret())
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("UserNotFoundException"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Unsigned, it is refused like any admin operation.
    let unsigned = reqwest::Client::new()
        .post(env.d.endpoint())
        .header("content-type", "application/x-amz-json-1.1")
        .header("x-amz-target", "CognateService.AdminExportUserData")
        .body(json!({"UserPoolId": pool, "Username": GONE.username}).to_string())
        .send()
        .await
        .unwrap();
    assert!(unsigned.status().is_client_error());
    assert_eq!(
        unsigned.headers()["x-amzn-errortype"],
        "MissingAuthenticationTokenException"
    );

    // The published copies exist before the deletion (the scan can see them).
    events
        .take("a sign-in of the user", |g| {
            g.json["type"] == "user.signed_in" && g.raw.contains(GONE.username)
        })
        .await;
    assert!(holds(&all_bytes(env.nats.dir()), GONE.email));

    c.admin_delete_user()
        .user_pool_id(&pool)
        .username(GONE.username)
        .send()
        .await
        .unwrap();
    let deleted = events
        .take("user.deleted", |g| g.json["type"] == "user.deleted")
        .await;
    // Subscribers learn which sub to erase on their side, and nothing else.
    assert!(
        is_uuid(deleted.json["aggregate"].as_str().unwrap()),
        "{}",
        deleted.raw
    );
    assert!(!deleted.raw.contains(GONE.username));
    let (status, doc) = export(&env, &pool, GONE.username).await;
    assert_eq!(status, 400);
    assert_eq!(doc["__type"], "UserNotFoundException");

    env.d.stop().await;
    env.nats.stop().await;
    let data = all_bytes(env.d.data_dir());
    let store = all_bytes(env.nats.dir());
    for v in [
        GONE.username,
        GONE.email,
        GONE.phone,
        GONE.name,
        GONE.renamed,
        GONE.nickname,
        GONE.device,
    ] {
        assert!(!holds(&data, v), "{v:?} is still in the data directory");
        assert!(!holds(&store, v), "{v:?} is still in the JetStream store");
    }
    // The other user is untouched: sealed at rest in the data directory, and still
    // published (the scan does find values that are there).
    assert!(
        !holds(&data, KEPT.email),
        "values must not be stored in plain text"
    );
    assert!(holds(&store, KEPT.email));

    let report = env.d.rebuild().await;
    assert!(report.success(), "{}\n{}", report.stdout, report.stderr);
    assert_eq!(
        report.digest_live, report.digest_rebuilt,
        "{}",
        report.stdout
    );
    assert!(
        report.stdout.contains("events-of-erased-users "),
        "{}",
        report.stdout
    );
    let erased: u64 = report
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("events-of-erased-users "))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(erased >= 8, "{}", report.stdout);

    env.d.start_again().await;
    let c = sdk(&env.d);
    let kept = c
        .admin_get_user()
        .user_pool_id(&pool)
        .username(KEPT.username)
        .send()
        .await
        .unwrap();
    assert_eq!(
        attr_value(kept.user_attributes(), "email"),
        Some(KEPT.email)
    );
    assert_eq!(
        attr_value(kept.user_attributes(), "name"),
        Some(KEPT.renamed)
    );
    assert_code(
        c.admin_get_user()
            .user_pool_id(&pool)
            .username(GONE.username)
            .send()
            .await,
        "UserNotFoundException",
    );
    let found = c
        .list_users()
        .user_pool_id(&pool)
        .filter(format!("email ^= \"{}\"", &KEPT.email[..6]))
        .send()
        .await
        .unwrap();
    assert_eq!(found.users().len(), 1);
    // The password (its hash was sealed and rebuilt) still works; TOTP is asked next.
    let out = c
        .initiate_auth()
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .client_id(&client)
        .auth_parameters("USERNAME", KEPT.username)
        .auth_parameters("PASSWORD", PASSWORD)
        .send()
        .await
        .unwrap();
    assert_eq!(
        out.challenge_name(),
        Some(&ChallengeNameType::SoftwareTokenMfa)
    );
}
