//! The AppClient reconciler: creates the client in its pool, keeps its settings equal
//! to the spec, and writes a Secret (owned by the AppClient, so it goes with it) with
//! the client id, secret, pool id, issuer URL and endpoint, ready for `envFrom`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use cognate_crds::{AppClient, AppClientStatus, TokenValidity, UserPool};
use cognate_proto as p;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::{Controller, watcher};
use kube::{Api, Resource, ResourceExt};
use serde_json::{Map, Value, json};

use crate::conditions::{Cond, READY, merge};
use crate::context::{Context, Daemon, key};
use crate::userpool::flatten;
use crate::{Error, FIELD_MANAGER, FINALIZER, Result};

pub const KIND: &str = "AppClient";
/// How soon to look again while the pool is not ready yet.
const POOL_WAIT: Duration = Duration::from_secs(10);

pub async fn controller(ctx: Arc<Context>) {
    let clients = Api::<AppClient>::all(ctx.client.clone());
    let secrets = Api::<Secret>::all(ctx.client.clone());
    Controller::new(clients, watcher::Config::default().any_semantic())
        .owns(secrets, watcher::Config::default())
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
    if !ac.spec.enabled {
        if let Some(c) = current.and_then(|c| c.client_id) {
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
        return Ok((None, None));
    }
    let desired = desired_settings(ac, pool);
    let Some(current) = current else {
        let mut req = desired.clone();
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
        return Ok((Some(id), c.client_secret.map(p::Sensitive::into_inner)));
    };
    let id = current.client_id.clone().unwrap_or_default();
    if current.client_secret.is_some() != ac.spec.generate_secret {
        return Err(Error::Invalid(format!(
            "client {id}: generateSecret cannot change after the client is created"
        )));
    }
    let actual = serde_json::to_value(&current).unwrap_or_default();
    let drifted = drift(&desired, &actual);
    if !drifted.is_empty() {
        let mut req = desired.clone();
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
    let (Some(pool_id), Some(id)) = (
        ac.status.as_ref().and_then(|s| s.pool_id.clone()),
        ac.status.as_ref().and_then(|s| s.client_id.clone()),
    ) else {
        return Ok(Action::await_change());
    };
    let pools: Api<UserPool> = Api::namespaced(ctx.client.clone(), &ns);
    // Without its UserPool the daemon connection is unknown; a deleted pool took its
    // clients with it, a retained one keeps them (as `deletionPolicy: Retain` promises).
    let Some(pool) = pools.get_opt(&ac.spec.user_pool_ref.name).await? else {
        return Ok(Action::await_change());
    };
    let daemon = ctx.daemon(&ns, pool.spec.daemon.as_ref()).await?;
    delete_client(&daemon, &pool_id, &id).await?;
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
            (w, Some(h)) => w == h,
            (_, None) => false,
        };
        if !same {
            out.push(k.clone());
        }
    }
    out
}
