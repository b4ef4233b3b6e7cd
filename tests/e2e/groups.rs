//! Groups: CreateGroup, GetGroup, UpdateGroup, DeleteGroup, ListGroups, membership
//! (AdminAddUserToGroup, AdminRemoveUserFromGroup, AdminListGroupsForUser,
//! ListUsersInGroup) and the `cognito:groups` / `cognito:roles` /
//! `cognito:preferred_role` claims by precedence.

use std::collections::BTreeSet;

use crate::common::*;

const ROLE: &str = "arn:aws:iam::123456789012:role/";

async fn create_group(c: &Client, pool: &str, name: &str, precedence: Option<i32>, role: bool) {
    c.create_group()
        .user_pool_id(pool)
        .group_name(name)
        .description(format!("the {name}"))
        .set_precedence(precedence)
        .set_role_arn(role.then(|| format!("{ROLE}{name}")))
        .send()
        .await
        .unwrap();
}

async fn add(c: &Client, pool: &str, user: &str, group: &str) {
    c.admin_add_user_to_group()
        .user_pool_id(pool)
        .username(user)
        .group_name(group)
        .send()
        .await
        .unwrap();
}

async fn groups_of(c: &Client, pool: &str, user: &str) -> BTreeSet<String> {
    let out = c
        .admin_list_groups_for_user()
        .user_pool_id(pool)
        .username(user)
        .send()
        .await
        .unwrap();
    out.groups()
        .iter()
        .map(|g| g.group_name().unwrap().to_owned())
        .collect()
}

/// Members of a group over all pages of `limit`.
async fn members(c: &Client, pool: &str, group: &str, limit: i32) -> Vec<String> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..50 {
        let page = c
            .list_users_in_group()
            .user_pool_id(pool)
            .group_name(group)
            .limit(limit)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        assert!(page.users().len() <= limit as usize);
        out.extend(
            page.users()
                .iter()
                .map(|u| u.username().unwrap().to_owned()),
        );
        token = page.next_token().map(str::to_owned);
        if token.is_none() {
            return out;
        }
    }
    panic!("ListUsersInGroup pagination did not end");
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn group_crud_and_errors() {
    let f = Fixture::new().await;
    let out =
        f.c.create_group()
            .user_pool_id(&f.pool)
            .group_name("admins")
            .description("Administrators")
            .precedence(1)
            .role_arn(format!("{ROLE}admins"))
            .send()
            .await
            .unwrap();
    let g = out.group().unwrap();
    assert_eq!(g.group_name(), Some("admins"));
    assert_eq!(g.user_pool_id(), Some(f.pool.as_str()));
    assert_eq!(g.description(), Some("Administrators"));
    assert_eq!(g.precedence(), Some(1));
    assert_eq!(g.role_arn(), Some(format!("{ROLE}admins").as_str()));
    assert!(g.creation_date().is_some() && g.last_modified_date().is_some());

    assert_code(
        f.c.create_group()
            .user_pool_id(&f.pool)
            .group_name("admins")
            .send()
            .await,
        "GroupExistsException",
    );
    let got =
        f.c.get_group()
            .user_pool_id(&f.pool)
            .group_name("admins")
            .send()
            .await
            .unwrap();
    assert_eq!(got.group().unwrap().description(), Some("Administrators"));
    assert_code(
        f.c.get_group()
            .user_pool_id(&f.pool)
            .group_name("nope")
            .send()
            .await,
        "ResourceNotFoundException",
    );

    let out =
        f.c.update_group()
            .user_pool_id(&f.pool)
            .group_name("admins")
            .description("Admins, renamed")
            .precedence(7)
            .send()
            .await
            .unwrap();
    assert_eq!(out.group().unwrap().precedence(), Some(7));
    let got =
        f.c.get_group()
            .user_pool_id(&f.pool)
            .group_name("admins")
            .send()
            .await
            .unwrap();
    let g = got.group().unwrap();
    assert_eq!(g.description(), Some("Admins, renamed"));
    assert_eq!(g.precedence(), Some(7));
    assert_eq!(
        g.role_arn(),
        Some(format!("{ROLE}admins").as_str()),
        "unchanged fields stay"
    );
    assert_code(
        f.c.update_group()
            .user_pool_id(&f.pool)
            .group_name("nope")
            .description("x")
            .send()
            .await,
        "ResourceNotFoundException",
    );

    f.c.delete_group()
        .user_pool_id(&f.pool)
        .group_name("admins")
        .send()
        .await
        .unwrap();
    assert_code(
        f.c.get_group()
            .user_pool_id(&f.pool)
            .group_name("admins")
            .send()
            .await,
        "ResourceNotFoundException",
    );
    assert_code(
        f.c.delete_group()
            .user_pool_id(&f.pool)
            .group_name("admins")
            .send()
            .await,
        "ResourceNotFoundException",
    );
    assert_code(
        f.c.create_group()
            .user_pool_id("us-east-1_Nope12345")
            .group_name("x")
            .send()
            .await,
        "ResourceNotFoundException",
    );
}

#[tokio::test]
async fn list_groups_paginates() {
    let f = Fixture::new().await;
    let names: BTreeSet<String> = (1..=5).map(|i| format!("team-{i}")).collect();
    for n in &names {
        create_group(&f.c, &f.pool, n, None, false).await;
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let out =
            f.c.list_groups()
                .user_pool_id(&f.pool)
                .limit(2)
                .set_next_token(token.clone())
                .send()
                .await
                .unwrap();
        pages += 1;
        assert!(out.groups().len() <= 2);
        seen.extend(
            out.groups()
                .iter()
                .map(|g| g.group_name().unwrap().to_owned()),
        );
        token = out.next_token().map(str::to_owned);
        if token.is_none() || pages > 10 {
            break;
        }
    }
    assert!(token.is_none());
    assert_eq!(pages, 3);
    let unique: BTreeSet<String> = seen.iter().cloned().collect();
    assert_eq!(unique.len(), seen.len(), "each group once: {seen:?}");
    assert_eq!(unique, names);
    let all =
        f.c.list_groups()
            .user_pool_id(&f.pool)
            .send()
            .await
            .unwrap();
    assert_eq!(all.groups().len(), 5);
    assert!(all.next_token().is_none());
}

#[tokio::test]
async fn membership_is_listed_both_ways() {
    let f = Fixture::new().await;
    for u in ["u1", "u2", "u3"] {
        admin_confirmed_user(&f.c, &f.pool, u, &[]).await;
    }
    create_group(&f.c, &f.pool, "alpha", Some(1), false).await;
    create_group(&f.c, &f.pool, "beta", Some(2), false).await;
    add(&f.c, &f.pool, "u1", "alpha").await;
    add(&f.c, &f.pool, "u1", "beta").await;
    add(&f.c, &f.pool, "u2", "alpha").await;
    add(&f.c, &f.pool, "u3", "alpha").await;
    // Adding twice is harmless.
    add(&f.c, &f.pool, "u3", "alpha").await;

    assert_eq!(
        groups_of(&f.c, &f.pool, "u1").await,
        BTreeSet::from(["alpha".to_owned(), "beta".to_owned()])
    );
    let m = members(&f.c, &f.pool, "alpha", 1).await;
    assert_eq!(m.len(), 3, "{m:?}");
    assert_eq!(
        m.into_iter().collect::<BTreeSet<_>>(),
        BTreeSet::from(["u1".to_owned(), "u2".to_owned(), "u3".to_owned()])
    );
    // AdminListGroupsForUser pages too.
    let first =
        f.c.admin_list_groups_for_user()
            .user_pool_id(&f.pool)
            .username("u1")
            .limit(1)
            .send()
            .await
            .unwrap();
    assert_eq!(first.groups().len(), 1);
    let second =
        f.c.admin_list_groups_for_user()
            .user_pool_id(&f.pool)
            .username("u1")
            .limit(1)
            .next_token(first.next_token().expect("a second page"))
            .send()
            .await
            .unwrap();
    assert_eq!(second.groups().len(), 1);
    assert_ne!(
        first.groups()[0].group_name(),
        second.groups()[0].group_name()
    );

    f.c.admin_remove_user_from_group()
        .user_pool_id(&f.pool)
        .username("u2")
        .group_name("alpha")
        .send()
        .await
        .unwrap();
    assert_eq!(
        members(&f.c, &f.pool, "alpha", 60)
            .await
            .into_iter()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["u1".to_owned(), "u3".to_owned()])
    );
    assert!(groups_of(&f.c, &f.pool, "u2").await.is_empty());

    assert_code(
        f.c.admin_add_user_to_group()
            .user_pool_id(&f.pool)
            .username("u1")
            .group_name("nope")
            .send()
            .await,
        "ResourceNotFoundException",
    );
    assert_code(
        f.c.admin_add_user_to_group()
            .user_pool_id(&f.pool)
            .username("nobody")
            .group_name("alpha")
            .send()
            .await,
        "UserNotFoundException",
    );
    assert_code(
        f.c.list_users_in_group()
            .user_pool_id(&f.pool)
            .group_name("nope")
            .send()
            .await,
        "ResourceNotFoundException",
    );

    // Deleting a group removes it from its members.
    f.c.delete_group()
        .user_pool_id(&f.pool)
        .group_name("beta")
        .send()
        .await
        .unwrap();
    assert_eq!(
        groups_of(&f.c, &f.pool, "u1").await,
        BTreeSet::from(["alpha".to_owned()])
    );
}

#[tokio::test]
async fn group_claims_follow_precedence() {
    let f = Fixture::new().await;
    f.user("gail").await;
    let plain = f.login("gail").await;
    assert!(
        claims(plain.id_token().unwrap())
            .get("cognito:groups")
            .is_none()
    );
    assert!(
        claims(plain.access_token().unwrap())
            .get("cognito:groups")
            .is_none()
    );

    create_group(&f.c, &f.pool, "readers", Some(10), true).await;
    create_group(&f.c, &f.pool, "editors", Some(2), true).await;
    create_group(&f.c, &f.pool, "staff", Some(5), false).await;
    for g in ["readers", "editors", "staff"] {
        add(&f.c, &f.pool, "gail", g).await;
    }
    let auth = f.login("gail").await;
    let id = verify_jwt(&f.d, &f.pool, auth.id_token().unwrap(), Some(&f.client)).await;
    assert_eq!(
        strings(&id["cognito:groups"]),
        ["editors", "staff", "readers"],
        "lowest precedence first"
    );
    let roles: BTreeSet<String> = strings(&id["cognito:roles"]).into_iter().collect();
    assert_eq!(
        roles,
        BTreeSet::from([format!("{ROLE}editors"), format!("{ROLE}readers")])
    );
    assert_eq!(id["cognito:preferred_role"], format!("{ROLE}editors"));
    let access = jwt_part(auth.access_token().unwrap(), 1);
    assert_eq!(
        strings(&access["cognito:groups"]),
        ["editors", "staff", "readers"]
    );

    // Precedence changes are reflected in the next tokens.
    f.c.update_group()
        .user_pool_id(&f.pool)
        .group_name("readers")
        .precedence(1)
        .send()
        .await
        .unwrap();
    let id = jwt_part(f.login("gail").await.id_token().unwrap(), 1);
    assert_eq!(
        strings(&id["cognito:groups"]),
        ["readers", "editors", "staff"]
    );
    assert_eq!(id["cognito:preferred_role"], format!("{ROLE}readers"));

    // Leaving and deleting groups.
    f.c.delete_group()
        .user_pool_id(&f.pool)
        .group_name("editors")
        .send()
        .await
        .unwrap();
    f.c.admin_remove_user_from_group()
        .user_pool_id(&f.pool)
        .username("gail")
        .group_name("staff")
        .send()
        .await
        .unwrap();
    let auth = f.login("gail").await;
    let id = jwt_part(auth.id_token().unwrap(), 1);
    assert_eq!(strings(&id["cognito:groups"]), ["readers"]);
    assert_eq!(strings(&id["cognito:roles"]), [format!("{ROLE}readers")]);
    // Refreshed tokens carry the current groups too.
    let refreshed = refresh(&f.c, &f.client, auth.refresh_token().unwrap())
        .await
        .unwrap();
    let id = jwt_part(
        refreshed
            .authentication_result()
            .unwrap()
            .id_token()
            .unwrap(),
        1,
    );
    assert_eq!(strings(&id["cognito:groups"]), ["readers"]);
}
