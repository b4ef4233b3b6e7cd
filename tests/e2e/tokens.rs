//! Tokens as standard JWT verifiers see them: RS256 against the served JWKS,
//! OIDC discovery, Cognito's claims, validity from the client settings.

use crate::common::*;

fn int(v: &Value) -> i64 {
    v.as_i64()
        .unwrap_or_else(|| panic!("not an integer claim: {v}"))
}

#[tokio::test]
async fn discovery_document_and_jwks() {
    let f = Fixture::new().await;
    let issuer = f.d.issuer(&f.pool);
    assert_eq!(issuer, format!("{}/{}", f.d.endpoint(), f.pool));
    let resp = http()
        .get(f.d.url(&format!("/{}/.well-known/openid-configuration", f.pool)))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let doc: Value = resp.json().await.unwrap();
    assert_eq!(doc["issuer"], issuer.as_str());
    assert_eq!(
        doc["jwks_uri"],
        format!("{issuer}/.well-known/jwks.json").as_str()
    );
    let set = jwks(&f.d, &f.pool).await;
    assert!(!set.keys.is_empty());
    for k in &set.keys {
        assert!(k.common.key_id.is_some(), "every key has a kid");
    }
    // A pool that does not exist has no keys.
    let resp = http()
        .get(f.d.url("/us-east-1_NOPOOL000/.well-known/jwks.json"))
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_client_error(), "{}", resp.status());
}

#[tokio::test]
async fn id_and_access_tokens_verify_and_carry_cognito_claims() {
    let f = Fixture::new().await;
    let sub = f.user("tess").await;
    let before = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let auth = f.login("tess").await;
    assert_eq!(auth.expires_in(), 3600);
    assert_eq!(auth.token_type(), Some("Bearer"));
    let issuer = f.d.issuer(&f.pool);

    let id = verify_jwt(&f.d, &f.pool, auth.id_token().unwrap(), Some(&f.client)).await;
    assert_eq!(id["iss"], issuer.as_str());
    assert_eq!(id["token_use"], "id");
    assert_eq!(id["sub"], sub.as_str());
    assert_eq!(id["cognito:username"], "tess");
    assert_eq!(id["aud"], f.client.as_str());
    assert_eq!(id["email"], "tess@example.com");
    assert_eq!(
        id["email_verified"],
        json!(true),
        "email_verified is a JSON boolean"
    );
    assert_eq!(int(&id["exp"]) - int(&id["iat"]), 3600);
    assert!(int(&id["auth_time"]) >= before - 5);
    assert!(int(&id["iat"]) >= before - 5);
    let id_jti = id["jti"].as_str().unwrap().to_owned();
    let origin = id["origin_jti"].as_str().unwrap().to_owned();
    assert!(is_uuid(&id_jti) && is_uuid(&origin), "{id}");

    let access = verify_jwt(&f.d, &f.pool, auth.access_token().unwrap(), None).await;
    assert_eq!(access["iss"], issuer.as_str());
    assert_eq!(access["token_use"], "access");
    assert_eq!(access["sub"], sub.as_str());
    assert_eq!(access["client_id"], f.client.as_str());
    assert_eq!(access["username"], "tess");
    assert!(
        access.get("aud").is_none(),
        "Cognito access tokens have no aud"
    );
    assert!(
        access["scope"]
            .as_str()
            .unwrap()
            .split(' ')
            .any(|s| s == "aws.cognito.signin.user.admin"),
        "{access}"
    );
    assert_eq!(int(&access["exp"]) - int(&access["iat"]), 3600);
    assert_eq!(access["origin_jti"], origin.as_str());
    assert_eq!(access["auth_time"], id["auth_time"]);
    let access_jti = access["jti"].as_str().unwrap();
    assert_ne!(access_jti, id_jti);

    // Refreshing keeps origin_jti and auth_time, with fresh jti values.
    let r = refresh(&f.c, &f.client, auth.refresh_token().unwrap())
        .await
        .unwrap();
    let r = r.authentication_result().unwrap();
    let id2 = verify_jwt(&f.d, &f.pool, r.id_token().unwrap(), Some(&f.client)).await;
    let access2 = verify_jwt(&f.d, &f.pool, r.access_token().unwrap(), None).await;
    assert_eq!(id2["origin_jti"], origin.as_str());
    assert_eq!(access2["origin_jti"], origin.as_str());
    assert_eq!(access2["auth_time"], access["auth_time"]);
    assert_ne!(access2["jti"], access["jti"]);
    assert_ne!(id2["jti"], id["jti"]);

    // A second sign-in is a new origin.
    let again = f.login("tess").await;
    let id3 = claims(again.id_token().unwrap());
    assert_ne!(id3["origin_jti"], origin.as_str());
}

#[tokio::test]
async fn token_validity_follows_client_settings() {
    let f = Fixture::new().await;
    let client = client_builder(&f.c, &f.pool)
        .access_token_validity(30)
        .id_token_validity(2)
        .refresh_token_validity(1)
        .token_validity_units(
            TokenValidityUnitsType::builder()
                .access_token(TimeUnitsType::Minutes)
                .id_token(TimeUnitsType::Hours)
                .refresh_token(TimeUnitsType::Days)
                .build(),
        )
        .send()
        .await
        .unwrap()
        .user_pool_client()
        .unwrap()
        .client_id()
        .unwrap()
        .to_owned();
    f.user("uma").await;
    let auth = login(&f.c, &client, "uma", PASSWORD).await;
    assert_eq!(auth.expires_in(), 1800);
    let access = verify_jwt(&f.d, &f.pool, auth.access_token().unwrap(), None).await;
    let id = verify_jwt(&f.d, &f.pool, auth.id_token().unwrap(), Some(&client)).await;
    assert_eq!(int(&access["exp"]) - int(&access["iat"]), 1800);
    assert_eq!(int(&id["exp"]) - int(&id["iat"]), 7200);

    let r = refresh(&f.c, &client, auth.refresh_token().unwrap())
        .await
        .unwrap();
    let r = r.authentication_result().unwrap();
    assert_eq!(r.expires_in(), 1800);
    let access2 = claims(r.access_token().unwrap());
    assert_eq!(int(&access2["exp"]) - int(&access2["iat"]), 1800);
}

#[tokio::test]
async fn tokens_of_one_pool_do_not_verify_in_another() {
    let f = Fixture::new().await;
    f.user("vic").await;
    let auth = f.login("vic").await;
    let other = create_pool(&f.c, "other").await;
    let other_keys = jwks(&f.d, &other).await;
    let header = jsonwebtoken::decode_header(auth.access_token().unwrap()).unwrap();
    assert!(
        other_keys.find(header.kid.as_deref().unwrap()).is_none(),
        "pools must not share signing keys"
    );
    let mine = jwks(&f.d, &f.pool).await;
    assert!(mine.find(header.kid.as_deref().unwrap()).is_some());
}
