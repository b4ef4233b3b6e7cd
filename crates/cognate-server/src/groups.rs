//! Groups: create, read, update, delete and list them, manage membership, and the
//! `cognito:groups`, `cognito:roles` and `cognito:preferred_role` claims by precedence.

use base64::Engine;
use cognate_domain::{Command, ErrorKind, Group, View};
use cognate_proto as p;

use crate::admin::user_type;
use crate::error::{ApiError, Result};
use crate::state::AppState;
use crate::users::admin_user;
use crate::util::{epoch, now_ms};
use crate::wire::actor;

fn group_type(g: &Group) -> p::GroupType {
    p::GroupType {
        group_name: Some(g.name.clone()),
        user_pool_id: Some(g.pool_id.clone()),
        description: g.description.clone(),
        role_arn: g.role_arn.clone(),
        precedence: g.precedence,
        last_modified_date: Some(epoch(g.updated_at)),
        creation_date: Some(epoch(g.created_at)),
    }
}

async fn load_group(s: &AppState, pool: &str, name: &str) -> Result<Group> {
    let (p, n) = (pool.to_owned(), name.to_owned());
    s.store()
        .read(move |r| r.group(&p, &n))
        .await?
        .ok_or_else(|| ApiError::new(ErrorKind::ResourceNotFound, "Group not found."))
}

fn token(next: Option<String>) -> Option<String> {
    next.map(|n| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(n))
}

fn untoken(t: &Option<String>) -> Result<Option<String>> {
    match t {
        None => Ok(None),
        Some(t) => base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(t)
            .ok()
            .and_then(|b| String::from_utf8(b).ok())
            .map(Some)
            .ok_or_else(|| ApiError::invalid("Invalid NextToken.")),
    }
}

pub async fn create_group(s: AppState, r: p::CreateGroupRequest) -> Result<p::CreateGroupResponse> {
    crate::pools::load_pool(&s, &r.user_pool_id).await?;
    let now = now_ms();
    let g = Group {
        pool_id: r.user_pool_id,
        name: r.group_name,
        description: r.description,
        role_arn: r.role_arn,
        precedence: r.precedence,
        created_at: now,
        updated_at: now,
    };
    s.store()
        .run_as(Command::CreateGroup { group: g.clone() }, now, actor())
        .await?;
    Ok(p::CreateGroupResponse {
        group: Some(group_type(&g)),
    })
}

pub async fn get_group(s: AppState, r: p::GetGroupRequest) -> Result<p::GetGroupResponse> {
    crate::pools::load_pool(&s, &r.user_pool_id).await?;
    Ok(p::GetGroupResponse {
        group: Some(group_type(
            &load_group(&s, &r.user_pool_id, &r.group_name).await?,
        )),
    })
}

pub async fn update_group(s: AppState, r: p::UpdateGroupRequest) -> Result<p::UpdateGroupResponse> {
    let mut g = load_group(&s, &r.user_pool_id, &r.group_name).await?;
    if r.description.is_some() {
        g.description = r.description;
    }
    if r.role_arn.is_some() {
        g.role_arn = r.role_arn;
    }
    if r.precedence.is_some() {
        g.precedence = r.precedence;
    }
    let now = now_ms();
    g.updated_at = now;
    s.store()
        .run_as(Command::UpdateGroup { group: g.clone() }, now, actor())
        .await?;
    Ok(p::UpdateGroupResponse {
        group: Some(group_type(&g)),
    })
}

pub async fn delete_group(s: AppState, r: p::DeleteGroupRequest) -> Result<p::Empty> {
    s.store()
        .run_as(
            Command::DeleteGroup {
                pool_id: r.user_pool_id,
                name: r.group_name,
            },
            now_ms(),
            actor(),
        )
        .await?;
    Ok(p::Empty {})
}

pub async fn list_groups(s: AppState, r: p::ListGroupsRequest) -> Result<p::ListGroupsResponse> {
    crate::pools::load_pool(&s, &r.user_pool_id).await?;
    let limit = r.limit.unwrap_or(60).clamp(1, 60) as usize;
    let (pool, after) = (r.user_pool_id.clone(), untoken(&r.next_token)?);
    let groups = s
        .store()
        .read(move |rd| rd.groups_of(&pool, after.as_deref(), limit + 1))
        .await?;
    let more = groups.len() > limit;
    let page: Vec<Group> = groups.into_iter().take(limit).collect();
    Ok(p::ListGroupsResponse {
        next_token: token(if more {
            page.last().map(|g| g.name.clone())
        } else {
            None
        }),
        groups: Some(page.iter().map(group_type).collect()),
    })
}

pub async fn admin_add_user_to_group(
    s: AppState,
    r: p::AdminAddUserToGroupRequest,
) -> Result<p::Empty> {
    let (pool, key, _) = admin_user(&s, &r.user_pool_id, &r.username).await?;
    load_group(&s, &pool.id, &r.group_name).await?;
    s.store()
        .run_as(
            Command::AddToGroup {
                pool_id: pool.id.clone(),
                username_key: key,
                group: r.group_name,
            },
            now_ms(),
            actor(),
        )
        .await?;
    Ok(p::Empty {})
}

pub async fn admin_remove_user_from_group(
    s: AppState,
    r: p::AdminRemoveUserFromGroupRequest,
) -> Result<p::Empty> {
    let (pool, key, _) = admin_user(&s, &r.user_pool_id, &r.username).await?;
    load_group(&s, &pool.id, &r.group_name).await?;
    s.store()
        .run_as(
            Command::RemoveFromGroup {
                pool_id: pool.id.clone(),
                username_key: key,
                group: r.group_name,
            },
            now_ms(),
            actor(),
        )
        .await?;
    Ok(p::Empty {})
}

pub async fn admin_list_groups_for_user(
    s: AppState,
    r: p::AdminListGroupsForUserRequest,
) -> Result<p::AdminListGroupsForUserResponse> {
    let (pool, _, user) = admin_user(&s, &r.user_pool_id, &r.username).await?;
    let limit = r.limit.unwrap_or(60).clamp(1, 60) as usize;
    let after = untoken(&r.next_token)?;
    let names: Vec<String> = user
        .groups
        .iter()
        .filter(|g| after.as_ref().is_none_or(|a| *g > a))
        .cloned()
        .collect();
    let more = names.len() > limit;
    let page: Vec<String> = names.into_iter().take(limit).collect();
    let pid = pool.id.clone();
    let wanted = page.clone();
    let groups = s
        .store()
        .read(move |rd| {
            let mut v = Vec::new();
            for n in &wanted {
                if let Some(g) = rd.group(&pid, n)? {
                    v.push(g);
                }
            }
            Ok(v)
        })
        .await?;
    Ok(p::AdminListGroupsForUserResponse {
        groups: Some(groups.iter().map(group_type).collect()),
        next_token: token(if more { page.last().cloned() } else { None }),
    })
}

pub async fn list_users_in_group(
    s: AppState,
    r: p::ListUsersInGroupRequest,
) -> Result<p::ListUsersInGroupResponse> {
    load_group(&s, &r.user_pool_id, &r.group_name).await?;
    let limit = r.limit.unwrap_or(60).clamp(1, 60) as usize;
    let (pool, group, after) = (
        r.user_pool_id.clone(),
        r.group_name.clone(),
        untoken(&r.next_token)?,
    );
    let (users, next) = s
        .store()
        .read(move |rd| {
            let keys = rd.members(&pool, &group, after.as_deref(), limit + 1)?;
            let more = keys.len() > limit;
            let mut users = Vec::new();
            for k in keys.iter().take(limit) {
                if let Some(u) = rd.user(&pool, k)? {
                    users.push(u);
                }
            }
            Ok((
                users,
                if more {
                    keys.get(limit - 1).cloned()
                } else {
                    None
                },
            ))
        })
        .await?;
    Ok(p::ListUsersInGroupResponse {
        users: Some(users.iter().map(|u| user_type(u, None)).collect()),
        next_token: token(next),
    })
}

/// Group claims for tokens: names ordered by precedence (lowest first, unset last),
/// their role ARNs, and the role of the highest-priority group that has one.
pub fn claims(groups: &[Group]) -> (Vec<String>, Vec<String>, Option<String>) {
    let mut sorted: Vec<&Group> = groups.iter().collect();
    sorted.sort_by(|a, b| {
        (a.precedence.is_none(), a.precedence, &a.name).cmp(&(
            b.precedence.is_none(),
            b.precedence,
            &b.name,
        ))
    });
    let names = sorted.iter().map(|g| g.name.clone()).collect();
    let roles: Vec<String> = sorted.iter().filter_map(|g| g.role_arn.clone()).collect();
    let preferred = sorted.iter().find_map(|g| g.role_arn.clone());
    (names, roles, preferred)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn g(name: &str, prec: Option<i64>, role: Option<&str>) -> Group {
        Group {
            pool_id: "p".into(),
            name: name.into(),
            description: None,
            role_arn: role.map(String::from),
            precedence: prec,
            created_at: 0,
            updated_at: 0,
        }
    }

    #[test]
    fn claims_follow_precedence() {
        let (names, roles, pref) = claims(&[
            g("c", None, Some("arn:c")),
            g("b", Some(5), Some("arn:b")),
            g("a", Some(1), None),
        ]);
        assert_eq!(names, vec!["a", "b", "c"]);
        assert_eq!(roles, vec!["arn:b", "arn:c"]);
        assert_eq!(pref.as_deref(), Some("arn:b"));
    }
}
