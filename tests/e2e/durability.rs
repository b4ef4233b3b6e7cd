//! Durability: state survives a graceful restart and a SIGKILL under load (every
//! acknowledged write is there afterwards), and `cognate rebuild` reproduces the
//! live projections from the event log.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::mpsc;

use crate::common::*;

#[tokio::test]
async fn restart_keeps_pools_clients_users_and_sessions() {
    // Let the daemon generate its master key, so the restart also shows that the
    // generated key is persisted and the signing keys decrypt again.
    let mut d = Daemon::start_with(DaemonOptions {
        master_key: None,
        ..DaemonOptions::default()
    })
    .await;
    let c = sdk(&d);
    let pool = c
        .create_user_pool()
        .pool_name("durable")
        .schema(
            SchemaAttributeType::builder()
                .name("tier")
                .attribute_data_type(AttributeDataType::String)
                .mutable(true)
                .build(),
        )
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .send()
        .await
        .unwrap()
        .user_pool()
        .unwrap()
        .id()
        .unwrap()
        .to_owned();
    let (client, secret) = create_secret_client(&c, &pool).await;
    let hash = secret_hash(&secret, "yuri", &client);
    let out = c
        .sign_up()
        .client_id(&client)
        .secret_hash(&hash)
        .username("yuri")
        .password(PASSWORD)
        .user_attributes(attr("email", "yuri@example.com"))
        .user_attributes(attr("custom:tier", "gold"))
        .send()
        .await
        .unwrap();
    let sub = out.user_sub().to_owned();
    let code = d.wait_code(&pool, "yuri", "SignUp").await;
    c.confirm_sign_up()
        .client_id(&client)
        .secret_hash(&hash)
        .username("yuri")
        .confirmation_code(code)
        .send()
        .await
        .unwrap();
    let auth = c
        .initiate_auth()
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .client_id(&client)
        .auth_parameters("USERNAME", "yuri")
        .auth_parameters("PASSWORD", PASSWORD)
        .auth_parameters("SECRET_HASH", &hash)
        .send()
        .await
        .unwrap();
    let auth = auth.authentication_result().unwrap().clone();
    let revoked = c
        .initiate_auth()
        .auth_flow(AuthFlowType::UserPasswordAuth)
        .client_id(&client)
        .auth_parameters("USERNAME", "yuri")
        .auth_parameters("PASSWORD", PASSWORD)
        .auth_parameters("SECRET_HASH", &hash)
        .send()
        .await
        .unwrap()
        .authentication_result()
        .unwrap()
        .refresh_token()
        .unwrap()
        .to_owned();
    c.revoke_token()
        .token(&revoked)
        .client_id(&client)
        .client_secret(&secret)
        .send()
        .await
        .unwrap();
    let pool_before = c
        .describe_user_pool()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    let keys_before = jwks(&d, &pool).await;
    let endpoint_before = d.endpoint().to_owned();

    d.restart().await;
    // The SDK client is reused: the testkit restarts on the same port.
    let c = sdk(&d);
    assert_eq!(
        d.endpoint(),
        endpoint_before,
        "restart moved to another port"
    );

    let pool_after = c
        .describe_user_pool()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    let (b, a) = (
        pool_before.user_pool().unwrap(),
        pool_after.user_pool().unwrap(),
    );
    assert_eq!(a.name(), b.name());
    assert_eq!(a.schema_attributes(), b.schema_attributes());
    assert_eq!(a.auto_verified_attributes(), b.auto_verified_attributes());
    let cl = c
        .describe_user_pool_client()
        .user_pool_id(&pool)
        .client_id(&client)
        .send()
        .await
        .unwrap();
    assert_eq!(
        cl.user_pool_client().unwrap().client_secret(),
        Some(secret.as_str())
    );
    let u = c
        .admin_get_user()
        .user_pool_id(&pool)
        .username("yuri")
        .send()
        .await
        .unwrap();
    assert_eq!(u.user_status(), Some(&UserStatusType::Confirmed));
    assert_eq!(attr_value(u.user_attributes(), "sub"), Some(sub.as_str()));
    assert_eq!(attr_value(u.user_attributes(), "custom:tier"), Some("gold"));

    // Signing keys survived: the same kids, and old tokens still verify and work.
    let keys_after = jwks(&d, &pool).await;
    let kids = |s: &jsonwebtoken::jwk::JwkSet| {
        s.keys
            .iter()
            .map(|k| k.common.key_id.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(kids(&keys_after), kids(&keys_before));
    verify_jwt(&d, &pool, auth.access_token().unwrap(), None).await;
    c.get_user()
        .access_token(auth.access_token().unwrap())
        .send()
        .await
        .unwrap();

    // The refresh token still works; the revoked one stays revoked.
    let refreshed = c
        .initiate_auth()
        .auth_flow(AuthFlowType::RefreshTokenAuth)
        .client_id(&client)
        .auth_parameters("REFRESH_TOKEN", auth.refresh_token().unwrap())
        .auth_parameters("SECRET_HASH", &hash)
        .send()
        .await
        .unwrap();
    let new_access = refreshed
        .authentication_result()
        .unwrap()
        .access_token()
        .unwrap();
    let claims = verify_jwt(&d, &pool, new_access, None).await;
    assert_eq!(claims["sub"], sub.as_str());
    assert_code(
        c.initiate_auth()
            .auth_flow(AuthFlowType::RefreshTokenAuth)
            .client_id(&client)
            .auth_parameters("REFRESH_TOKEN", &revoked)
            .auth_parameters("SECRET_HASH", &hash)
            .send()
            .await,
        "NotAuthorizedException",
    );
    // Usernames stay unique across the restart.
    assert_code(
        c.sign_up()
            .client_id(&client)
            .secret_hash(&hash)
            .username("yuri")
            .password(PASSWORD)
            .user_attributes(attr("email", "yuri2@example.com"))
            .send()
            .await,
        "UsernameExistsException",
    );
}

/// Signs up distinct users from `tasks` concurrent tasks until a call fails (the
/// daemon died) or `stop` is set; every successful SignUp is sent to `acks`.
fn spawn_load(
    c: &Client,
    client: &str,
    cycle: usize,
    tasks: usize,
    stop: &Arc<AtomicBool>,
    acks: &mpsc::UnboundedSender<String>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..tasks)
        .map(|t| {
            let c = c.clone();
            let client = client.to_owned();
            let stop = Arc::clone(stop);
            let acks = acks.clone();
            tokio::spawn(async move {
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    let username = format!("load-{cycle}-{t}-{n}");
                    n += 1;
                    let r = c
                        .sign_up()
                        .client_id(&client)
                        .username(&username)
                        .password(PASSWORD)
                        .send()
                        .await;
                    match r {
                        Ok(_) => {
                            if acks.send(username).is_err() {
                                return;
                            }
                        }
                        Err(_) => return,
                    }
                }
            })
        })
        .collect()
}

async fn assert_all_present(c: &Client, pool: &str, usernames: &[String]) {
    let mut missing = Vec::new();
    for chunk in usernames.chunks(16) {
        let mut set = tokio::task::JoinSet::new();
        for u in chunk {
            let (c, pool, u) = (c.clone(), pool.to_owned(), u.clone());
            set.spawn(async move {
                let r = c
                    .admin_get_user()
                    .user_pool_id(pool)
                    .username(&u)
                    .send()
                    .await;
                (u, r)
            });
        }
        while let Some(joined) = set.join_next().await {
            let (u, r) = joined.unwrap();
            match r {
                Ok(out) => assert_eq!(out.username(), u.as_str()),
                Err(e) if e.code() == Some("UserNotFoundException") => missing.push(u),
                Err(e) => panic!("AdminGetUser {u}: {e:?}"),
            }
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged sign-ups lost: {:?}",
        missing.len(),
        usernames.len(),
        &missing[..missing.len().min(20)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_under_signup_load_loses_no_acknowledged_write_and_rebuild_matches() {
    const TASKS: usize = 32;
    // Different kill points per cycle, so the kill lands at different batch phases.
    const KILL_AFTER: [usize; 3] = [97, 160, 233];

    let mut d = Daemon::start().await;
    let admin = sdk(&d);
    let pool = create_pool(&admin, "load").await;
    let client = create_client(&admin, &pool).await;
    let mut acked: Vec<String> = Vec::new();

    for (cycle, kill_after) in KILL_AFTER.into_iter().enumerate() {
        let load = sdk_no_retry(&d);
        let stop = Arc::new(AtomicBool::new(false));
        let (tx, mut rx) = mpsc::unbounded_channel();
        let handles = spawn_load(&load, &client, cycle, TASKS, &stop, &tx);
        drop(tx);
        let mut this_cycle = 0;
        while this_cycle < kill_after {
            let u = tokio::time::timeout(std::time::Duration::from_secs(60), rx.recv())
                .await
                .unwrap_or_else(|_| panic!("cycle {cycle}: only {this_cycle} sign-ups in 60 s"))
                .unwrap_or_else(|| {
                    panic!("cycle {cycle}: every load task failed after {this_cycle} acks")
                });
            acked.push(u);
            this_cycle += 1;
        }
        d.kill9().await;
        stop.store(true, Ordering::Relaxed);
        for h in handles {
            h.await.unwrap();
        }
        // Acks that raced with the kill are acknowledged writes as well.
        while let Ok(u) = rx.try_recv() {
            acked.push(u);
        }
        eprintln!(
            "cycle {cycle}: killed after {kill_after} acks, {} acknowledged in total",
            acked.len()
        );
        d.start_again().await;
        let admin = sdk(&d);
        assert_all_present(&admin, &pool, &acked).await;
    }

    // Writes keep working after the crashes, and usernames are still unique.
    let admin = sdk(&d);
    assert_code(
        admin
            .sign_up()
            .client_id(&client)
            .username(&acked[0])
            .password(PASSWORD)
            .send()
            .await,
        "UsernameExistsException",
    );
    admin
        .sign_up()
        .client_id(&client)
        .username("after-crashes")
        .password(PASSWORD)
        .send()
        .await
        .unwrap();

    let status = d.stop().await;
    assert!(status.success(), "graceful stop exited with {status}");
    let report = d.rebuild().await;
    assert!(
        report.success(),
        "rebuild failed: {}\n{}",
        report.stdout,
        report.stderr
    );
    let live = report.digest_live.clone().expect("digest-live line");
    let rebuilt = report.digest_rebuilt.clone().expect("digest-rebuilt line");
    assert!(
        !live.is_empty() && live.bytes().all(|b| b.is_ascii_hexdigit()),
        "{live}"
    );
    assert_eq!(live, rebuilt);
    let events = report.events.expect("events line");
    assert!(
        events >= acked.len() as u64 + 3,
        "{events} events for {} users, a pool and a client",
        acked.len()
    );

    d.start_again().await;
    let admin = sdk(&d);
    assert_all_present(&admin, &pool, &acked).await;
    admin
        .admin_get_user()
        .user_pool_id(&pool)
        .username("after-crashes")
        .send()
        .await
        .unwrap();
    // A second rebuild of an unchanged log gives the same digest.
    d.stop().await;
    let again = d.rebuild().await;
    assert!(again.success());
    assert_eq!(again.digest_live, again.digest_rebuilt);
    assert_eq!(
        again.digest_rebuilt,
        Some(rebuilt),
        "reads changed the state"
    );
}

#[tokio::test]
async fn rebuild_reproduces_state_after_mixed_operations() {
    let mut d = Daemon::start().await;
    let c = sdk(&d);
    let pool = create_pool(&c, "mixed").await;
    let doomed_pool = create_pool(&c, "doomed").await;
    let client = create_client(&c, &pool).await;
    let doomed_client = create_client(&c, &pool).await;
    // Users in several states.
    sign_up_confirmed(&d, &c, &pool, &client, "zack", "zack@example.com").await;
    sign_up_confirmed(&d, &c, &pool, &client, "zoe", "zoe@example.com").await;
    c.sign_up()
        .client_id(&client)
        .username("zed")
        .password(PASSWORD)
        .user_attributes(attr("email", "zed@example.com"))
        .send()
        .await
        .unwrap();
    c.admin_delete_user()
        .user_pool_id(&pool)
        .username("zoe")
        .send()
        .await
        .unwrap();
    c.admin_set_user_password()
        .user_pool_id(&pool)
        .username("zack")
        .password(OTHER_PASSWORD)
        .permanent(true)
        .send()
        .await
        .unwrap();
    let s = login(&c, &client, "zack", OTHER_PASSWORD).await;
    let kept = login(&c, &client, "zack", OTHER_PASSWORD).await;
    c.revoke_token()
        .token(s.refresh_token().unwrap())
        .client_id(&client)
        .send()
        .await
        .unwrap();
    c.update_user_pool()
        .user_pool_id(&pool)
        .pool_name("mixed-renamed")
        .auto_verified_attributes(VerifiedAttributeType::Email)
        .send()
        .await
        .unwrap();
    c.delete_user_pool_client()
        .user_pool_id(&pool)
        .client_id(&doomed_client)
        .send()
        .await
        .unwrap();
    c.delete_user_pool()
        .user_pool_id(&doomed_pool)
        .send()
        .await
        .unwrap();

    let status = d.stop().await;
    assert!(status.success());
    let report = d.rebuild().await;
    assert!(report.success(), "{}\n{}", report.stdout, report.stderr);
    assert_eq!(report.digest_live, report.digest_rebuilt);
    assert!(report.digest_live.is_some());
    assert!(report.events.unwrap_or(0) >= 10, "{}", report.stdout);

    d.start_again().await;
    let c = sdk(&d);
    let p = c
        .describe_user_pool()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    assert_eq!(p.user_pool().unwrap().name(), Some("mixed-renamed"));
    assert_code(
        c.describe_user_pool()
            .user_pool_id(&doomed_pool)
            .send()
            .await,
        "ResourceNotFoundException",
    );
    assert_code(
        c.describe_user_pool_client()
            .user_pool_id(&pool)
            .client_id(&doomed_client)
            .send()
            .await,
        "ResourceNotFoundException",
    );
    assert_code(
        c.admin_get_user()
            .user_pool_id(&pool)
            .username("zoe")
            .send()
            .await,
        "UserNotFoundException",
    );
    let zed = c
        .admin_get_user()
        .user_pool_id(&pool)
        .username("zed")
        .send()
        .await
        .unwrap();
    assert_eq!(zed.user_status(), Some(&UserStatusType::Unconfirmed));
    login(&c, &client, "zack", OTHER_PASSWORD).await;
    assert_code(
        refresh(&c, &client, s.refresh_token().unwrap()).await,
        "NotAuthorizedException",
    );
    refresh(&c, &client, kept.refresh_token().unwrap())
        .await
        .unwrap();
}
