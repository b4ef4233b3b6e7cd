//! Password hashing under a flood: requests beyond the bounded hashing pool and its
//! queue are refused at once with TooManyRequestsException, nothing is half-created, and
//! the daemon keeps serving.

use std::collections::BTreeMap;

use cognate_testkit::{Daemon, DaemonOptions};

use crate::common::*;

#[tokio::test]
async fn hashing_flood_is_refused_with_too_many_requests_and_leaves_no_partial_user() {
    // One hashing thread, nobody may wait, and a hash that takes a while, so concurrent
    // sign-ups overflow the pool for sure.
    let mut env = BTreeMap::new();
    env.insert("COGNATE_HASH_THREADS".to_owned(), "1".to_owned());
    env.insert("COGNATE_HASH_QUEUE".to_owned(), "0".to_owned());
    let d = Daemon::start_with(DaemonOptions {
        argon2: Some((65_536, 8, 1)),
        env,
        ..Default::default()
    })
    .await;
    let c = sdk_no_retry(&d);
    let pool = c
        .create_user_pool()
        .pool_name("flood")
        .send()
        .await
        .unwrap();
    let pool_id = pool.user_pool().unwrap().id().unwrap().to_owned();
    let client = c
        .create_user_pool_client()
        .user_pool_id(&pool_id)
        .client_name("web")
        .send()
        .await
        .unwrap()
        .user_pool_client()
        .unwrap()
        .client_id()
        .unwrap()
        .to_owned();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (c, client) = (c.clone(), client.clone());
        tasks.push(tokio::spawn(async move {
            let r = c
                .sign_up()
                .client_id(&client)
                .username(format!("flood{i}"))
                .password("Passw0rd!")
                .send()
                .await;
            (
                format!("flood{i}"),
                r.map_err(|e| e.into_service_error().meta().code().map(str::to_owned)),
            )
        }));
    }
    let mut ok = Vec::new();
    let mut refused = Vec::new();
    for t in tasks {
        let (name, r) = t.await.unwrap();
        match r {
            Ok(_) => ok.push(name),
            Err(code) => {
                assert_eq!(code.as_deref(), Some("TooManyRequestsException"), "{name}");
                refused.push(name);
            }
        }
    }
    assert!(!ok.is_empty(), "no sign-up got through");
    assert!(!refused.is_empty(), "the flood was not refused");
    for name in &refused {
        let e = c
            .admin_get_user()
            .user_pool_id(&pool_id)
            .username(name)
            .send()
            .await
            .unwrap_err();
        assert_eq!(
            e.into_service_error().meta().code(),
            Some("UserNotFoundException"),
            "{name} half-created"
        );
    }
    for name in &ok {
        c.admin_get_user()
            .user_pool_id(&pool_id)
            .username(name)
            .send()
            .await
            .unwrap();
    }
    // Once the flood is over, the same request succeeds.
    c.sign_up()
        .client_id(&client)
        .username("after")
        .password("Passw0rd!")
        .send()
        .await
        .unwrap();
}
