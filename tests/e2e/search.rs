//! ListUsers: Cognito's filter grammar (`=` and `^=` on the searchable attributes,
//! `cognito:user_status` and `status`), AttributesToGet, Limit and pagination over
//! more than 100 users.

use std::collections::BTreeSet;

use crate::common::*;

type ListResult = Result<
    cip::operation::list_users::ListUsersOutput,
    SdkError<cip::operation::list_users::ListUsersError>,
>;

async fn list(c: &Client, pool: &str, filter: &str) -> ListResult {
    c.list_users()
        .user_pool_id(pool)
        .filter(filter)
        .send()
        .await
}

/// Usernames matching `filter`, following every page.
async fn names(c: &Client, pool: &str, filter: &str) -> BTreeSet<String> {
    let (all, _) = all_pages(c, pool, Some(filter), 60).await;
    let set: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(
        set.len(),
        all.len(),
        "a user listed twice for {filter}: {all:?}"
    );
    set
}

/// Every username over all pages (in order) and the page sizes.
async fn all_pages(
    c: &Client,
    pool: &str,
    filter: Option<&str>,
    limit: i32,
) -> (Vec<String>, Vec<usize>) {
    let mut out = Vec::new();
    let mut sizes = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..100 {
        let page = c
            .list_users()
            .user_pool_id(pool)
            .set_filter(filter.map(str::to_owned))
            .limit(limit)
            .set_pagination_token(token.clone())
            .send()
            .await
            .unwrap();
        sizes.push(page.users().len());
        out.extend(
            page.users()
                .iter()
                .map(|u| u.username().unwrap().to_owned()),
        );
        token = page.pagination_token().map(str::to_owned);
        if token.is_none() {
            return (out, sizes);
        }
    }
    panic!("pagination did not end");
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn list_users_filters_by_every_searchable_attribute() {
    let f = Fixture::new().await;
    let people: [(&str, [(&str, &str); 6]); 3] = [
        (
            "alice",
            [
                ("email", "alice@example.com"),
                ("phone_number", "+15550000001"),
                ("name", "Alice Liddell"),
                ("given_name", "Alice"),
                ("family_name", "Liddell"),
                ("preferred_username", "ally"),
            ],
        ),
        (
            "alina",
            [
                ("email", "alina@example.org"),
                ("phone_number", "+15550000002"),
                ("name", "Alina Zagitova"),
                ("given_name", "Alina"),
                ("family_name", "Zagitova"),
                ("preferred_username", "alz"),
            ],
        ),
        (
            "bob",
            [
                ("email", "bob@example.com"),
                ("phone_number", "+15560000003"),
                ("name", "Bob Builder"),
                ("given_name", "Bob"),
                ("family_name", "Builder"),
                ("preferred_username", "bobby"),
            ],
        ),
    ];
    for (name, attrs) in &people {
        let mut b =
            f.c.admin_create_user()
                .user_pool_id(&f.pool)
                .username(*name)
                .message_action(MessageActionType::Suppress);
        for (k, v) in attrs {
            b = b.user_attributes(attr(k, v));
        }
        b.send().await.unwrap();
    }
    // alice and bob CONFIRMED, alina stays FORCE_CHANGE_PASSWORD, carol UNCONFIRMED.
    for name in ["alice", "bob"] {
        f.c.admin_set_user_password()
            .user_pool_id(&f.pool)
            .username(name)
            .password(PASSWORD)
            .permanent(true)
            .send()
            .await
            .unwrap();
    }
    f.c.sign_up()
        .client_id(&f.client)
        .username("carol")
        .password(PASSWORD)
        .user_attributes(attr("email", "carol@example.net"))
        .send()
        .await
        .unwrap();
    f.c.admin_disable_user()
        .user_pool_id(&f.pool)
        .username("bob")
        .send()
        .await
        .unwrap();
    let alice_sub = admin_attrs(&f.c, &f.pool, "alice").await["sub"].clone();

    let cases: Vec<(String, BTreeSet<String>)> = vec![
        ("username = \"alice\"".into(), set(&["alice"])),
        ("username ^= \"al\"".into(), set(&["alice", "alina"])),
        ("email = \"bob@example.com\"".into(), set(&["bob"])),
        ("email=\"bob@example.com\"".into(), set(&["bob"])),
        ("email ^= \"ali\"".into(), set(&["alice", "alina"])),
        ("phone_number = \"+15550000001\"".into(), set(&["alice"])),
        ("phone_number ^= \"+1555\"".into(), set(&["alice", "alina"])),
        ("name = \"Bob Builder\"".into(), set(&["bob"])),
        ("name ^= \"Ali\"".into(), set(&["alice", "alina"])),
        ("given_name = \"Alina\"".into(), set(&["alina"])),
        ("given_name ^= \"Al\"".into(), set(&["alice", "alina"])),
        ("family_name = \"Liddell\"".into(), set(&["alice"])),
        ("family_name ^= \"Z\"".into(), set(&["alina"])),
        ("preferred_username = \"bobby\"".into(), set(&["bob"])),
        (
            "preferred_username ^= \"al\"".into(),
            set(&["alice", "alina"]),
        ),
        (format!("sub = \"{alice_sub}\""), set(&["alice"])),
        (format!("sub ^= \"{}\"", &alice_sub[..13]), set(&["alice"])),
        (
            "cognito:user_status = \"CONFIRMED\"".into(),
            set(&["alice", "bob"]),
        ),
        (
            "cognito:user_status = \"UNCONFIRMED\"".into(),
            set(&["carol"]),
        ),
        (
            "cognito:user_status = \"FORCE_CHANGE_PASSWORD\"".into(),
            set(&["alina"]),
        ),
        ("status = \"Disabled\"".into(), set(&["bob"])),
        (
            "status = \"Enabled\"".into(),
            set(&["alice", "alina", "carol"]),
        ),
        ("email = \"nobody@example.com\"".into(), set(&[])),
        ("email = \"alice\"".into(), set(&[])),
    ];
    for (filter, expected) in cases {
        assert_eq!(names(&f.c, &f.pool, &filter).await, expected, "{filter}");
    }

    // Filtered users come back whole.
    let out = list(&f.c, &f.pool, "username = \"alice\"").await.unwrap();
    let u = &out.users()[0];
    assert_eq!(attr_value(u.attributes(), "family_name"), Some("Liddell"));
    assert_eq!(u.user_status(), Some(&UserStatusType::Confirmed));
    assert!(u.enabled());
    let out = list(&f.c, &f.pool, "username = \"bob\"").await.unwrap();
    assert!(!out.users()[0].enabled());
}

#[tokio::test]
async fn list_users_attributes_to_get_limit_and_bad_filters() {
    let f = Fixture::new().await;
    for n in ["ann", "ben", "cid"] {
        admin_confirmed_user(
            &f.c,
            &f.pool,
            n,
            &[("email", &format!("{n}@example.com")), ("given_name", n)],
        )
        .await;
    }
    let out =
        f.c.list_users()
            .user_pool_id(&f.pool)
            .attributes_to_get("email")
            .send()
            .await
            .unwrap();
    assert_eq!(out.users().len(), 3);
    for u in out.users() {
        let names: Vec<&str> = u.attributes().iter().map(|a| a.name()).collect();
        assert!(names.contains(&"email"), "{names:?}");
        assert!(
            names.iter().all(|n| *n == "email" || *n == "sub"),
            "only the asked attributes: {names:?}"
        );
        assert!(u.username().is_some() && u.user_status().is_some());
    }

    let out =
        f.c.list_users()
            .user_pool_id(&f.pool)
            .limit(2)
            .send()
            .await
            .unwrap();
    assert_eq!(out.users().len(), 2);
    assert!(out.pagination_token().is_some());
    let out =
        f.c.list_users()
            .user_pool_id(&f.pool)
            .limit(60)
            .send()
            .await
            .unwrap();
    assert_eq!(out.users().len(), 3);
    assert!(out.pagination_token().is_none());
    assert_code(
        f.c.list_users()
            .user_pool_id(&f.pool)
            .limit(61)
            .send()
            .await,
        "InvalidParameterException",
    );

    for bad in [
        "email ~ \"x\"",
        "email = x",
        "email",
        "custom:tier = \"gold\"",
        "favourite_colour = \"blue\"",
        "email = \"unterminated",
    ] {
        assert_code(list(&f.c, &f.pool, bad).await, "InvalidParameterException");
    }
    assert_code(
        f.c.list_users()
            .user_pool_id("us-east-1_Nope12345")
            .send()
            .await,
        "ResourceNotFoundException",
    );
}

#[tokio::test]
async fn list_users_paginates_over_more_than_100_users() {
    const BULK: usize = 130;
    let f = Fixture::new().await;
    let mut workers = Vec::new();
    for w in 0..8 {
        let c = f.c.clone();
        let pool = f.pool.clone();
        workers.push(tokio::spawn(async move {
            for i in (w..BULK).step_by(8) {
                c.admin_create_user()
                    .user_pool_id(&pool)
                    .username(format!("bulk-{i:03}"))
                    .user_attributes(attr("email", &format!("bulk{i:03}@example.com")))
                    .message_action(MessageActionType::Suppress)
                    .send()
                    .await
                    .unwrap();
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    for n in ["other-1", "other-2", "zed"] {
        admin_confirmed_user(&f.c, &f.pool, n, &[("email", &format!("{n}@example.org"))]).await;
    }
    let bulk: BTreeSet<String> = (0..BULK).map(|i| format!("bulk-{i:03}")).collect();

    let (all, sizes) = all_pages(&f.c, &f.pool, None, 60).await;
    assert_eq!(sizes[0], 60, "{sizes:?}");
    assert!(sizes.iter().all(|s| *s <= 60), "{sizes:?}");
    assert!(sizes.len() >= 3, "{sizes:?}");
    let unique: BTreeSet<String> = all.iter().cloned().collect();
    assert_eq!(unique.len(), all.len(), "every user exactly once");
    assert_eq!(all.len(), BULK + 3);
    assert!(bulk.is_subset(&unique));

    for filter in ["username ^= \"bulk-\"", "email ^= \"bulk\""] {
        let (found, sizes) = all_pages(&f.c, &f.pool, Some(filter), 60).await;
        assert!(sizes.iter().all(|s| *s <= 60), "{filter}: {sizes:?}");
        assert_eq!(sizes[0], 60, "{filter}: {sizes:?}");
        let unique: BTreeSet<String> = found.iter().cloned().collect();
        assert_eq!(unique.len(), found.len(), "{filter}: a user listed twice");
        assert_eq!(unique, bulk, "{filter}");
    }
    // Small pages too: a token from a filtered page only continues that filter.
    let (found, sizes) = all_pages(&f.c, &f.pool, Some("username ^= \"bulk-1\""), 7).await;
    assert!(sizes.iter().all(|s| *s <= 7));
    let expected: BTreeSet<String> = bulk
        .iter()
        .filter(|n| n.starts_with("bulk-1"))
        .cloned()
        .collect();
    assert_eq!(found.len(), expected.len());
    assert_eq!(found.into_iter().collect::<BTreeSet<_>>(), expected);
}
