//! The AppClient reconciler: creates the client in its pool, keeps its settings equal
//! to the spec, and writes a Secret (owned by the AppClient, so it goes with it) with
//! the client id, secret, pool id, issuer URL, endpoint and, when the pool has a domain,
//! the OAuth 2.0 endpoints, ready for `envFrom`.
//!
//! A created client is recorded on the pool as the tag `cognate.io/appclient-<uid>`
//! before the status is written, so a lost status write (or a crash) never makes a
//! second client: the next pass finds the tag, or, when it died before tagging, the
//! untagged client of the pool with the desired name that no other AppClient claims.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use cognate_crds::{AppClient, AppClientStatus, TokenValidity, UserPool};
use cognate_proto as p;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{Controller, watcher};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Map, Value, json};

use crate::conditions::{Cond, READY, merge};
use crate::context::{Context, Daemon, key};
use crate::userpool::flatten;
use crate::{Error, FIELD_MANAGER, FINALIZER, Result};

pub const KIND: &str = "AppClient";
/// Pool tag that records which client an AppClient (by uid) created: the tag's value is
/// the client id.
pub const TAG_PREFIX: &str = "cognate.io/appclient-";
/// How soon to look again while the pool is not ready yet.
const POOL_WAIT: Duration = Duration::from_secs(10);

pub async fn controller(ctx: Arc<Context>) {
    let clients = Api::<AppClient>::all(ctx.client.clone());
    let secrets = Api::<Secret>::all(ctx.client.clone());
    let pools = Api::<UserPool>::all(ctx.client.clone());
    let controller = Controller::new(clients, watcher::Config::default().any_semantic());
    let store = controller.store();
    controller
        .owns(secrets, watcher::Config::default())
        // A pool that becomes ready or gains a domain changes its clients' Secrets.
        .watches(pools, watcher::Config::default(), move |up| {
            let (ns, name) = (up.namespace(), up.name_any());
            store
                .state()
                .into_iter()
                .filter(|ac| ac.namespace() == ns && ac.spec.user_pool_ref.name == name)
                .map(|ac| ObjectRef::from_obj(ac.as_ref()))
                .collect::<Vec<_>>()
        })
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "appclient reconcile failed");
            }
        })
        .await;
}

pub async fn reconcile(ac: Arc<AppClient>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    let ns = ac
        .namespace()
        .ok_or_else(|| Error::Invalid("an AppClient must be namespaced".into()))?;
    let span = tracing::info_span!("reconcile", kind = KIND, namespace = %ns, name = %ac.name_any(),
        client = ac.status.as_ref().and_then(|s| s.client_id.clone()).unwrap_or_default());
    let _enter = span.enter();
    let api: Api<AppClient> = Api::namespaced(ctx.client.clone(), &ns);
    let res = finalizer(&api, FINALIZER, ac.clone(), |ev| async {
        match ev {
            Finalizer::Apply(ac) => apply(&ac, &ctx, &api).await,
            Finalizer::Cleanup(ac) => cleanup(&ac, &ctx).await,
        }
    })
    .await
    .map_err(flatten);
    let outcome = match &res {
        Ok(_) => {
            ctx.succeeded(&key(ac.as_ref()));
            "ok"
        }
        Err(e) => e.metric_label(),
    };
    ctx.metrics.reconciled(KIND, outcome, start.elapsed());
    res
}

pub fn error_policy(ac: Arc<AppClient>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(name = %ac.name_any(), error = %err, "appclient reconcile failed; backing off");
    ctx.failed(&key(ac.as_ref()))
}

/// The Secret's name.
pub fn secret_name(ac: &AppClient) -> String {
    ac.spec.secret_name.clone().unwrap_or_else(|| ac.name_any())
}

async fn apply(ac: &AppClient, ctx: &Context, api: &Api<AppClient>) -> Result<Action> {
    let ns = ac.namespace().unwrap_or_default();
    let old = ac.status.clone().unwrap_or_default();
    let pools: Api<UserPool> = Api::namespaced(ctx.client.clone(), &ns);
    let pool_ref = &ac.spec.user_pool_ref.name;
    let pool = pools.get_opt(pool_ref).await?;
    let ready = pool.as_ref().and_then(|p| {
        let st = p.status.as_ref()?;
        Some((st.pool_id.clone()?, p.clone()))
    });
    let Some((pool_id, pool)) = ready else {
        let msg = format!("waiting for UserPool {pool_ref} to have a pool id");
        patch_status(
            api,
            ac,
            status_with(&old, ac, &[Cond::new(READY, false, "PoolNotReady", msg)]),
        )
        .await?;
        return Ok(Action::requeue(POOL_WAIT));
    };
    let daemon = ctx.daemon(&ns, pool.spec.daemon.as_ref()).await?;
    let result = sync(ac, ctx, &daemon, &pool_id, &pool).await;
    let (client, secret_value) = match result {
        Ok(x) => x,
        Err(e) => {
            let reason = if matches!(e, Error::DaemonUnreachable(_)) {
                "DaemonUnreachable"
            } else {
                "DaemonError"
            };
            let mut msg = e.to_string();
            if reason == "DaemonUnreachable" {
                msg.push_str("; retrying with back-off");
            }
            patch_status(
                api,
                ac,
                status_with(&old, ac, &[Cond::new(READY, false, reason, msg.clone())]),
            )
            .await?;
            ctx.event(ac, true, reason, "Reconcile", msg).await;
            return Err(e);
        }
    };
    let name = secret_name(ac);
    let mut data = BTreeMap::new();
    if let Some(c) = &client {
        data.insert("COGNITO_CLIENT_ID".to_owned(), c.clone());
        data.insert("COGNITO_USER_POOL_ID".to_owned(), pool_id.clone());
        data.insert("COGNITO_ISSUER_URL".to_owned(), daemon.issuer(&pool_id));
        data.insert("COGNITO_ENDPOINT".to_owned(), daemon.endpoint.clone());
        data.insert("COGNITO_REGION".to_owned(), daemon.region.clone());
        if let Some(s) = secret_value {
            data.insert("COGNITO_CLIENT_SECRET".to_owned(), s);
        }
        let domain = pool.status.as_ref().and_then(|s| s.domain.clone());
        if let Some(d) = domain {
            let base = crate::oauth::domain_base(&daemon.public_url, &d);
            data.insert("COGNITO_DOMAIN".to_owned(), d);
            data.insert(
                "COGNITO_AUTHORIZE_URL".to_owned(),
                format!("{base}/oauth2/authorize"),
            );
            data.insert(
                "COGNITO_TOKEN_URL".to_owned(),
                format!("{base}/oauth2/token"),
            );
            data.insert("COGNITO_DOMAIN_URL".to_owned(), base);
        }
    }
    apply_secret(ctx, ac, &ns, &name, data).await?;
    let (ok, reason, msg) = match &client {
        Some(c) => (
            true,
            "Reconciled",
            format!("client {c} matches the spec; credentials in Secret {name}"),
        ),
        None => (
            false,
            "Disabled",
            "spec.enabled is false: the client is removed from the daemon".to_owned(),
        ),
    };
    let mut st = status_with(&old, ac, &[Cond::new(READY, ok, reason, msg)]);
    st.client_id = client;
    st.pool_id = Some(pool_id);
    st.secret_name = Some(name);
    patch_status(api, ac, st).await?;
    Ok(Action::requeue(ctx.resync))
}

fn status_with(old: &AppClientStatus, ac: &AppClient, conds: &[Cond]) -> AppClientStatus {
    let generation = ac.metadata.generation;
    AppClientStatus {
        client_id: old.client_id.clone(),
        pool_id: old.pool_id.clone(),
        secret_name: old.secret_name.clone(),
        observed_generation: generation,
        conditions: merge(
            &old.conditions,
            conds,
            generation,
            k8s_openapi::jiff::Timestamp::now(),
        ),
    }
}

async fn patch_status(api: &Api<AppClient>, ac: &AppClient, status: AppClientStatus) -> Result<()> {
    let patch = json!({
        "apiVersion": format!("{}/{}", cognate_crds::GROUP, cognate_crds::VERSION),
        "kind": KIND,
        "status": status,
    });
    api.patch_status(
        &ac.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await?;
    Ok(())
}

/// Server-side applies the Secret with an owner reference to the AppClient.
async fn apply_secret(
    ctx: &Context,
    ac: &AppClient,
    ns: &str,
    name: &str,
    data: BTreeMap<String, String>,
) -> Result<()> {
    let owner = ac
        .controller_owner_ref(&())
        .ok_or_else(|| Error::Invalid("AppClient without uid".into()))?;
    let patch = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": ns,
            "labels": { "app.kubernetes.io/managed-by": "cognate-operator" },
            "ownerReferences": [owner],
        },
        "type": "Opaque",
        "stringData": data,
    });
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    secrets
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(patch),
        )
        .await?;
    Ok(())
}

/// Creates, repairs or removes the client; returns its id and secret.
async fn sync(
    ac: &AppClient,
    ctx: &Context,
    daemon: &Daemon,
    pool_id: &str,
    pool: &UserPool,
) -> Result<(Option<String>, Option<String>)> {
    let known = ac
        .status
        .as_ref()
        .filter(|s| s.pool_id.as_deref() == Some(pool_id))
        .and_then(|s| s.client_id.clone());
    let mut current = None;
    if let Some(id) = &known {
        match describe(daemon, pool_id, id).await {
            Ok(c) => current = Some(c),
            Err(Error::Daemon { source, .. }) if source.is_not_found() => {
                if ac.spec.enabled {
                    ctx.event(
                        ac,
                        true,
                        "ClientMissing",
                        "Recreate",
                        format!("client {id} is gone from pool {pool_id}; creating it again"),
                    )
                    .await;
                }
            }
            Err(e) => return Err(e),
        }
    }
    let tag = tag_key(ac)?;
    let pool_desc = describe_pool(daemon, pool_id).await?;
    let tags = pool_desc.user_pool_tags.clone().unwrap_or_default();
    if !ac.spec.enabled {
        // The tag knows the client also when the status does not.
        let id = current
            .and_then(|c| c.client_id)
            .or_else(|| tags.get(&tag).cloned());
        if let Some(c) = id {
            delete_client(daemon, pool_id, &c).await?;
            ctx.event(
                ac,
                false,
                "Disabled",
                "Delete",
                format!("removed client {c} (spec.enabled is false)"),
            )
            .await;
        }
        untag(daemon, &pool_desc, &tag).await?;
        return Ok((None, None));
    }
    let desired = desired_settings(ac, pool);
    if current.is_none() {
        current = adopt(ac, ctx, daemon, pool_id, &tags, &tag, &desired).await?;
    }
    let current = match current {
        Some(c) => c,
        None => {
            let mut req = request(&desired);
            req.insert("UserPoolId".into(), Value::from(pool_id));
            req.insert(
                "GenerateSecret".into(),
                Value::from(ac.spec.generate_secret),
            );
            let resp: p::CreateUserPoolClientResponse = daemon
                .admin
                .call("CreateUserPoolClient", &req)
                .await
                .map_err(|e| Error::from_admin("CreateUserPoolClient", e))?;
            let c = resp.user_pool_client.ok_or_else(|| {
                Error::Invalid("CreateUserPoolClient answered without a client".into())
            })?;
            let id = c.client_id.clone().unwrap_or_default();
            ctx.event(
                ac,
                false,
                "Created",
                "Create",
                format!("created client {id} in pool {pool_id}"),
            )
            .await;
            c
        }
    };
    let id = current.client_id.clone().unwrap_or_default();
    // Recorded before the status is written: what makes a retry adopt, not create.
    if tags.get(&tag) != Some(&id) {
        let arn = pool_desc
            .arn
            .clone()
            .ok_or_else(|| Error::Invalid("DescribeUserPool answered without an Arn".into()))?;
        daemon
            .admin
            .call::<_, Value>(
                "TagResource",
                &json!({ "ResourceArn": arn, "Tags": { tag.clone(): id.clone() } }),
            )
            .await
            .map_err(|e| Error::from_admin("TagResource", e))?;
    }
    if current.client_secret.is_some() != ac.spec.generate_secret {
        return Err(Error::Invalid(format!(
            "client {id}: generateSecret cannot change after the client is created"
        )));
    }
    let actual = serde_json::to_value(&current).unwrap_or_default();
    let drifted = drift(&desired, &actual);
    if !drifted.is_empty() {
        let mut req = request(&desired);
        req.insert("UserPoolId".into(), Value::from(pool_id));
        req.insert("ClientId".into(), Value::from(id.clone()));
        daemon
            .admin
            .call::<_, Value>("UpdateUserPoolClient", &req)
            .await
            .map_err(|e| Error::from_admin("UpdateUserPoolClient", e))?;
        ctx.event(
            ac,
            false,
            "Updated",
            "Update",
            format!("applied {}", drifted.join(", ")),
        )
        .await;
    }
    Ok((
        Some(id),
        current.client_secret.map(p::Sensitive::into_inner),
    ))
}

async fn describe(daemon: &Daemon, pool_id: &str, id: &str) -> Result<p::UserPoolClientType> {
    let resp: p::DescribeUserPoolClientResponse = daemon
        .admin
        .call(
            "DescribeUserPoolClient",
            &json!({ "UserPoolId": pool_id, "ClientId": id }),
        )
        .await
        .map_err(|e| Error::from_admin("DescribeUserPoolClient", e))?;
    resp.user_pool_client
        .ok_or_else(|| Error::Invalid("DescribeUserPoolClient answered without a client".into()))
}

/// The pool tag of this AppClient.
pub fn tag_key(ac: &AppClient) -> Result<String> {
    let uid = ac
        .uid()
        .filter(|u| !u.is_empty())
        .ok_or_else(|| Error::Invalid("AppClient without uid".into()))?;
    Ok(format!("{TAG_PREFIX}{uid}"))
}

async fn describe_pool(daemon: &Daemon, pool_id: &str) -> Result<p::UserPoolType> {
    let resp: p::DescribeUserPoolResponse = daemon
        .admin
        .call("DescribeUserPool", &json!({ "UserPoolId": pool_id }))
        .await
        .map_err(|e| Error::from_admin("DescribeUserPool", e))?;
    resp.user_pool
        .ok_or_else(|| Error::Invalid("DescribeUserPool answered without a pool".into()))
}

async fn untag(daemon: &Daemon, pool: &p::UserPoolType, tag: &str) -> Result<()> {
    let has = pool
        .user_pool_tags
        .as_ref()
        .is_some_and(|t| t.contains_key(tag));
    let Some(arn) = pool.arn.as_deref().filter(|_| has) else {
        return Ok(());
    };
    match daemon
        .admin
        .call::<_, Value>(
            "UntagResource",
            &json!({ "ResourceArn": arn, "TagKeys": [tag] }),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(Error::from_admin("UntagResource", e)),
    }
}

/// The client this AppClient made before its status recorded it: the one its tag
/// names, else an untagged client of the pool with the desired name (a crash between
/// create and tag) whose secret matches `generateSecret` and no other AppClient's tag
/// claims.
async fn adopt(
    ac: &AppClient,
    ctx: &Context,
    daemon: &Daemon,
    pool_id: &str,
    tags: &BTreeMap<String, String>,
    tag: &str,
    desired: &Map<String, Value>,
) -> Result<Option<p::UserPoolClientType>> {
    if let Some(id) = tags.get(tag) {
        match describe(daemon, pool_id, id).await {
            Ok(c) => {
                ctx.event(
                    ac,
                    false,
                    "Adopted",
                    "Adopt",
                    format!("found client {id}, created for this resource (pool tag {tag})"),
                )
                .await;
                return Ok(Some(c));
            }
            Err(Error::Daemon { source, .. }) if source.is_not_found() => {}
            Err(e) => return Err(e),
        }
    }
    let claimed: BTreeSet<&String> = tags
        .iter()
        .filter(|(k, _)| k.starts_with(TAG_PREFIX) && k.as_str() != tag)
        .map(|(_, v)| v)
        .collect();
    let name = desired
        .get("ClientName")
        .and_then(Value::as_str)
        .unwrap_or_default();
    let mut next: Option<String> = None;
    for _ in 0..100 {
        let mut req = json!({ "UserPoolId": pool_id, "MaxResults": 60 });
        if let Some(t) = &next {
            req["NextToken"] = Value::from(t.clone());
        }
        let page: p::ListUserPoolClientsResponse = daemon
            .admin
            .call("ListUserPoolClients", &req)
            .await
            .map_err(|e| Error::from_admin("ListUserPoolClients", e))?;
        for d in page.user_pool_clients.unwrap_or_default() {
            let Some(id) = d.client_id else { continue };
            if d.client_name.as_deref() != Some(name) || claimed.contains(&id) {
                continue;
            }
            let c = describe(daemon, pool_id, &id).await?;
            if c.client_secret.is_some() != ac.spec.generate_secret {
                continue;
            }
            ctx.event(
                ac,
                false,
                "Adopted",
                "Adopt",
                format!("adopted untagged client {id} named {name} (created before a crash)"),
            )
            .await;
            return Ok(Some(c));
        }
        match page.next_token {
            Some(t) => next = Some(t),
            None => break,
        }
    }
    Ok(None)
}

/// `desired` as a request: settings the spec leaves unset (null) are left out.
fn request(desired: &Map<String, Value>) -> Map<String, Value> {
    desired
        .iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

async fn delete_client(daemon: &Daemon, pool_id: &str, id: &str) -> Result<()> {
    match daemon
        .admin
        .call::<_, Value>(
            "DeleteUserPoolClient",
            &json!({ "UserPoolId": pool_id, "ClientId": id }),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(Error::from_admin("DeleteUserPoolClient", e)),
    }
}

async fn cleanup(ac: &AppClient, ctx: &Context) -> Result<Action> {
    let ns = ac.namespace().unwrap_or_default();
    let pools: Api<UserPool> = Api::namespaced(ctx.client.clone(), &ns);
    // Without its UserPool the daemon connection is unknown; a deleted pool took its
    // clients with it, a retained one keeps them (as `deletionPolicy: Retain` promises).
    let Some(pool) = pools.get_opt(&ac.spec.user_pool_ref.name).await? else {
        return Ok(Action::await_change());
    };
    let Some(pool_id) = ac
        .status
        .as_ref()
        .and_then(|s| s.pool_id.clone())
        .or_else(|| pool.status.as_ref().and_then(|s| s.pool_id.clone()))
    else {
        return Ok(Action::await_change());
    };
    let daemon = ctx.daemon(&ns, pool.spec.daemon.as_ref()).await?;
    let tag = tag_key(ac)?;
    let pool_desc = match describe_pool(&daemon, &pool_id).await {
        Ok(p) => Some(p),
        Err(Error::Daemon { source, .. }) if source.is_not_found() => None,
        Err(e) => return Err(e),
    };
    // A client whose status write was lost is still known by its tag.
    let id = ac
        .status
        .as_ref()
        .and_then(|s| s.client_id.clone())
        .or_else(|| {
            pool_desc
                .as_ref()
                .and_then(|p| p.user_pool_tags.as_ref())
                .and_then(|t| t.get(&tag).cloned())
        });
    let Some(id) = id else {
        return Ok(Action::await_change());
    };
    delete_client(&daemon, &pool_id, &id).await?;
    if let Some(p) = &pool_desc {
        untag(&daemon, p, &tag).await?;
    }
    ctx.event(
        ac,
        false,
        "Deleted",
        "Delete",
        format!("deleted client {id}"),
    )
    .await;
    Ok(Action::await_change())
}

/// Settings of Create/UpdateUserPoolClient, complete (an update resets what it omits).
pub fn desired_settings(ac: &AppClient, pool: &UserPool) -> Map<String, Value> {
    let s = &ac.spec;
    let defaults = pool.spec.token_defaults.clone().unwrap_or(TokenValidity {
        access_token_minutes: None,
        id_token_minutes: None,
        refresh_token_days: None,
    });
    let tv = s.token_validity.clone().unwrap_or(TokenValidity {
        access_token_minutes: None,
        id_token_minutes: None,
        refresh_token_days: None,
    });
    let mut m = Map::new();
    m.insert(
        "ClientName".into(),
        Value::from(s.client_name.clone().unwrap_or_else(|| ac.name_any())),
    );
    m.insert(
        "ExplicitAuthFlows".into(),
        Value::from(
            s.explicit_auth_flows
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>(),
        ),
    );
    m.insert(
        "AccessTokenValidity".into(),
        Value::from(
            tv.access_token_minutes
                .or(defaults.access_token_minutes)
                .unwrap_or(60),
        ),
    );
    m.insert(
        "IdTokenValidity".into(),
        Value::from(
            tv.id_token_minutes
                .or(defaults.id_token_minutes)
                .unwrap_or(60),
        ),
    );
    m.insert(
        "RefreshTokenValidity".into(),
        Value::from(
            tv.refresh_token_days
                .or(defaults.refresh_token_days)
                .unwrap_or(30),
        ),
    );
    m.insert(
        "TokenValidityUnits".into(),
        json!({ "AccessToken": "minutes", "IdToken": "minutes", "RefreshToken": "days" }),
    );
    m.insert(
        "ReadAttributes".into(),
        Value::from(s.read_attributes.clone()),
    );
    m.insert(
        "WriteAttributes".into(),
        Value::from(s.write_attributes.clone()),
    );
    m.insert(
        "PreventUserExistenceErrors".into(),
        Value::from(if s.prevent_user_existence_errors {
            "ENABLED"
        } else {
            "LEGACY"
        }),
    );
    m.insert("CallbackURLs".into(), Value::from(s.callback_urls.clone()));
    m.insert("LogoutURLs".into(), Value::from(s.logout_urls.clone()));
    m.insert(
        "DefaultRedirectURI".into(),
        s.default_redirect_uri
            .clone()
            .map(Value::from)
            .unwrap_or(Value::Null),
    );
    m.insert(
        "AllowedOAuthFlows".into(),
        Value::from(
            s.allowed_oauth_flows
                .iter()
                .map(|f| f.as_str())
                .collect::<Vec<_>>(),
        ),
    );
    m.insert(
        "AllowedOAuthScopes".into(),
        Value::from(s.allowed_oauth_scopes.clone()),
    );
    m.insert(
        "AllowedOAuthFlowsUserPoolClient".into(),
        Value::from(s.allowed_oauth_flows_user_pool_client),
    );
    m.insert(
        "SupportedIdentityProviders".into(),
        Value::from(s.supported_identity_providers.clone()),
    );
    m
}

/// Keys where the described client differs from `desired`; lists compare as sets,
/// because the daemon may normalise their order.
pub fn drift(desired: &Map<String, Value>, actual: &Value) -> Vec<String> {
    let mut out = vec![];
    for (k, want) in desired {
        let same = match (want, actual.get(k)) {
            (Value::Array(w), Some(Value::Array(h))) => {
                let mut w: Vec<String> = w.iter().map(Value::to_string).collect();
                let mut h: Vec<String> = h.iter().map(Value::to_string).collect();
                w.sort();
                h.sort();
                w == h
            }
            (Value::Array(w), None) => w.is_empty(),
            (Value::Object(w), Some(Value::Object(h))) => {
                w.iter().all(|(k, v)| h.get(k) == Some(v))
            }
            (Value::Null, None) => true,
            (w, Some(h)) => w == h,
            (_, None) => false,
        };
        if !same {
            out.push(k.clone());
        }
    }
    out
}
