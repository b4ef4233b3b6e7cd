//! App clients: create/describe round trip, update, list with paging, delete (and
//! what deleting does to the client's tokens).

use std::collections::BTreeSet;

use crate::common::*;

#[tokio::test]
async fn create_and_describe_client_round_trip() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = create_pool(&c, "clients").await;
    let out = c
        .create_user_pool_client()
        .user_pool_id(&pool)
        .client_name("web")
        .generate_secret(true)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .access_token_validity(30)
        .id_token_validity(2)
        .refresh_token_validity(7)
        .token_validity_units(
            TokenValidityUnitsType::builder()
                .access_token(TimeUnitsType::Minutes)
                .id_token(TimeUnitsType::Hours)
                .refresh_token(TimeUnitsType::Days)
                .build(),
        )
        .read_attributes("email")
        .read_attributes("email_verified")
        .write_attributes("email")
        .prevent_user_existence_errors(PreventUserExistenceErrorTypes::Enabled)
        .enable_token_revocation(true)
        .auth_session_validity(5)
        .send()
        .await
        .unwrap();
    let created = out.user_pool_client().unwrap();
    let id = created.client_id().unwrap().to_owned();
    assert!(is_client_id(&id), "client id {id}");
    let secret = created.client_secret().unwrap().to_owned();
    assert!(secret.len() >= 32, "client secret too short: {secret}");
    assert_eq!(created.user_pool_id(), Some(pool.as_str()));

    let described = c
        .describe_user_pool_client()
        .user_pool_id(&pool)
        .client_id(&id)
        .send()
        .await
        .unwrap();
    let cl = described.user_pool_client().unwrap();
    assert_eq!(cl.client_id(), Some(id.as_str()));
    assert_eq!(cl.client_name(), Some("web"));
    assert_eq!(cl.client_secret(), Some(secret.as_str()));
    let flows: BTreeSet<_> = cl
        .explicit_auth_flows()
        .iter()
        .map(|f| f.as_str())
        .collect();
    assert_eq!(
        flows,
        BTreeSet::from(["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"])
    );
    assert_eq!(cl.access_token_validity(), Some(30));
    assert_eq!(cl.id_token_validity(), Some(2));
    assert_eq!(cl.refresh_token_validity(), 7);
    let units = cl.token_validity_units().unwrap();
    assert_eq!(units.access_token(), Some(&TimeUnitsType::Minutes));
    assert_eq!(units.id_token(), Some(&TimeUnitsType::Hours));
    assert_eq!(units.refresh_token(), Some(&TimeUnitsType::Days));
    let read: BTreeSet<_> = cl.read_attributes().iter().map(String::as_str).collect();
    assert_eq!(read, BTreeSet::from(["email", "email_verified"]));
    assert_eq!(cl.write_attributes(), &["email".to_owned()]);
    assert_eq!(
        cl.prevent_user_existence_errors(),
        Some(&PreventUserExistenceErrorTypes::Enabled)
    );
    assert_eq!(cl.enable_token_revocation(), Some(true));
    assert_eq!(cl.auth_session_validity(), Some(5));
    assert!(cl.creation_date().is_some());

    // A client without GenerateSecret has none.
    let plain = create_client(&c, &pool).await;
    let plain = c
        .describe_user_pool_client()
        .user_pool_id(&pool)
        .client_id(&plain)
        .send()
        .await
        .unwrap();
    assert!(plain.user_pool_client().unwrap().client_secret().is_none());

    // Unknown pool / unknown client.
    assert_code(
        c.create_user_pool_client()
            .user_pool_id("us-east-1_NOPOOL000")
            .client_name("x")
            .send()
            .await,
        "ResourceNotFoundException",
    );
    assert_code(
        c.describe_user_pool_client()
            .user_pool_id(&pool)
            .client_id("abcdefghijklmnopqrstuvwxyz")
            .send()
            .await,
        "ResourceNotFoundException",
    );
    // Out-of-range validity (access tokens: 5 minutes to 1 day).
    assert_code(
        c.create_user_pool_client()
            .user_pool_id(&pool)
            .client_name("bad")
            .access_token_validity(2)
            .token_validity_units(
                TokenValidityUnitsType::builder()
                    .access_token(TimeUnitsType::Days)
                    .build(),
            )
            .send()
            .await,
        "InvalidParameterException",
    );
}

#[tokio::test]
async fn update_and_list_clients() {
    let d = Daemon::start().await;
    let c = sdk(&d);
    let pool = create_pool(&c, "clients").await;
    let other_pool = create_pool(&c, "other").await;
    let mut ids = BTreeSet::new();
    for _ in 0..3 {
        ids.insert(create_client(&c, &pool).await);
    }
    let foreign = create_client(&c, &other_pool).await;
    let first = ids.iter().next().unwrap().clone();

    c.update_user_pool_client()
        .user_pool_id(&pool)
        .client_id(&first)
        .client_name("renamed")
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowUserPasswordAuth)
        .explicit_auth_flows(ExplicitAuthFlowsType::AllowRefreshTokenAuth)
        .access_token_validity(2)
        .token_validity_units(
            TokenValidityUnitsType::builder()
                .access_token(TimeUnitsType::Hours)
                .build(),
        )
        .prevent_user_existence_errors(PreventUserExistenceErrorTypes::Enabled)
        .send()
        .await
        .unwrap();
    let cl = c
        .describe_user_pool_client()
        .user_pool_id(&pool)
        .client_id(&first)
        .send()
        .await
        .unwrap();
    let cl = cl.user_pool_client().unwrap();
    assert_eq!(cl.client_name(), Some("renamed"));
    assert_eq!(cl.access_token_validity(), Some(2));
    assert_eq!(
        cl.token_validity_units().and_then(|u| u.access_token()),
        Some(&TimeUnitsType::Hours)
    );
    assert_eq!(
        cl.prevent_user_existence_errors(),
        Some(&PreventUserExistenceErrorTypes::Enabled)
    );
    assert!(
        !cl.explicit_auth_flows()
            .contains(&ExplicitAuthFlowsType::AllowAdminUserPasswordAuth),
        "update replaces the flow list"
    );

    // The updated validity is what the tokens get.
    let sub_user = "updater";
    sign_up_confirmed(&d, &c, &pool, &first, sub_user, "updater@example.com").await;
    let auth = login(&c, &first, sub_user, PASSWORD).await;
    assert_eq!(auth.expires_in(), 7200);

    let mut listed = BTreeSet::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let page = c
            .list_user_pool_clients()
            .user_pool_id(&pool)
            .max_results(2)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(page.user_pool_clients().len() <= 2);
        for cl in page.user_pool_clients() {
            assert_eq!(cl.user_pool_id(), Some(pool.as_str()));
            assert!(
                listed.insert(cl.client_id().unwrap().to_owned()),
                "listed twice"
            );
            if cl.client_id() == Some(first.as_str()) {
                assert_eq!(cl.client_name(), Some("renamed"));
            }
        }
        match page.next_token() {
            Some(t) => token = Some(t.to_owned()),
            None => break,
        }
        assert!(pages < 10);
    }
    assert_eq!(pages, 2);
    assert_eq!(listed, ids);
    assert!(!listed.contains(&foreign));

    assert_code(
        c.update_user_pool_client()
            .user_pool_id(&other_pool)
            .client_id(&first)
            .client_name("wrong pool")
            .send()
            .await,
        "ResourceNotFoundException",
    );
}

#[tokio::test]
async fn delete_client_invalidates_its_tokens() {
    let f = Fixture::new().await;
    f.user("leaver").await;
    let auth = f.login("leaver").await;
    let access = auth.access_token().unwrap().to_owned();
    let refresh_token = auth.refresh_token().unwrap().to_owned();
    // Both work before the delete.
    f.c.get_user().access_token(&access).send().await.unwrap();
    refresh(&f.c, &f.client, &refresh_token).await.unwrap();

    f.c.delete_user_pool_client()
        .user_pool_id(&f.pool)
        .client_id(&f.client)
        .send()
        .await
        .unwrap();

    assert_code(
        f.c.describe_user_pool_client()
            .user_pool_id(&f.pool)
            .client_id(&f.client)
            .send()
            .await,
        "ResourceNotFoundException",
    );
    assert_code(
        refresh(&f.c, &f.client, &refresh_token).await,
        "ResourceNotFoundException",
    );
    assert_code(
        f.c.get_user().access_token(&access).send().await,
        "NotAuthorizedException",
    );
    assert_code(
        f.c.sign_up()
            .client_id(&f.client)
            .username("late")
            .password(PASSWORD)
            .send()
            .await,
        "ResourceNotFoundException",
    );
    assert_code(
        f.c.initiate_auth()
            .auth_flow(AuthFlowType::UserPasswordAuth)
            .client_id(&f.client)
            .auth_parameters("USERNAME", "leaver")
            .auth_parameters("PASSWORD", PASSWORD)
            .send()
            .await,
        "ResourceNotFoundException",
    );
    let listed =
        f.c.list_user_pool_clients()
            .user_pool_id(&f.pool)
            .send()
            .await
            .unwrap();
    assert!(listed.user_pool_clients().is_empty());
    assert_code(
        f.c.delete_user_pool_client()
            .user_pool_id(&f.pool)
            .client_id(&f.client)
            .send()
            .await,
        "ResourceNotFoundException",
    );
    // The user is untouched and can sign in through another client.
    let other = create_client(&f.c, &f.pool).await;
    login(&f.c, &other, "leaver", PASSWORD).await;
}
