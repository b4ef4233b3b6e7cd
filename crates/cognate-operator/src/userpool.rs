//! The UserPool reconciler: creates the pool in the daemon (or adopts the one it made
//! before, found by its `cognate.io/uid` tag), adds new custom attributes, re-applies
//! the mutable settings whenever the daemon's differ from the spec, refuses immutable
//! changes without applying anything, and on deletion honours `deletionPolicy` together
//! with the pool's deletion protection.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use cognate_crds::{DeletionPolicy, SchemaAttribute, UserPool, UserPoolSpec, UserPoolStatus};
use cognate_proto as p;
use futures::StreamExt;
use kube::api::{Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event as Finalizer, finalizer};
use kube::runtime::{Controller, watcher};
use kube::{Api, ResourceExt};
use serde_json::{Map, Value, json};

use crate::conditions::{Cond, READY, SCHEMA_ACCEPTED, merge};
use crate::context::{Context, Daemon, key};
use crate::{Error, FIELD_MANAGER, FINALIZER, Result, oauth};

pub const KIND: &str = "UserPool";
/// Tag that ties a daemon pool to the resource that created it (for adoption).
pub const UID_TAG: &str = "cognate.io/uid";
const RESOURCE_TAG: &str = "cognate.io/resource";
const TIMEOUT_TAG: &str = "cognate.io/trigger-timeout-millis";
const NO_RESPONDER_TAG: &str = "cognate.io/trigger-no-responder";

pub async fn controller(ctx: Arc<Context>) {
    let pools = Api::<UserPool>::all(ctx.client.clone());
    Controller::new(pools, watcher::Config::default().any_semantic())
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "userpool reconcile failed");
            }
        })
        .await;
}

/// One reconciliation of `up`; the controller calls this, and so do the tests.
pub async fn reconcile(up: Arc<UserPool>, ctx: Arc<Context>) -> Result<Action> {
    let start = Instant::now();
    let ns = up
        .namespace()
        .ok_or_else(|| Error::Invalid("a UserPool must be namespaced".into()))?;
    let span = tracing::info_span!("reconcile", kind = KIND, namespace = %ns, name = %up.name_any(),
        pool = up.status.as_ref().and_then(|s| s.pool_id.clone()).unwrap_or_default());
    let _enter = span.enter();
    let api: Api<UserPool> = Api::namespaced(ctx.client.clone(), &ns);
    let res = finalizer(&api, FINALIZER, up.clone(), |ev| async {
        match ev {
            Finalizer::Apply(up) => apply(&up, &ctx, &api).await,
            Finalizer::Cleanup(up) => cleanup(&up, &ctx, &api).await,
        }
    })
    .await
    .map_err(flatten);
    let outcome = match &res {
        Ok(_) => {
            ctx.succeeded(&key(up.as_ref()));
            "ok"
        }
        Err(e) => e.metric_label(),
    };
    ctx.metrics.reconciled(KIND, outcome, start.elapsed());
    res
}

pub fn error_policy(up: Arc<UserPool>, err: &Error, ctx: Arc<Context>) -> Action {
    tracing::warn!(name = %up.name_any(), error = %err, "userpool reconcile failed; backing off");
    ctx.failed(&key(up.as_ref()))
}

pub(crate) fn flatten(e: kube::runtime::finalizer::Error<Error>) -> Error {
    use kube::runtime::finalizer::Error as F;
    match e {
        F::ApplyFailed(e) | F::CleanupFailed(e) => e,
        F::AddFinalizer(e) | F::RemoveFinalizer(e) => Error::Kube(e),
        other => Error::Invalid(other.to_string()),
    }
}

/// What one apply found and did.
enum Outcome {
    Synced {
        pool_id: String,
        changes: Vec<String>,
        oauth: oauth::Synced,
    },
    Refused {
        pool_id: String,
        violations: Vec<String>,
    },
}

async fn apply(up: &UserPool, ctx: &Context, api: &Api<UserPool>) -> Result<Action> {
    let ns = up.namespace().unwrap_or_default();
    let old = up.status.clone().unwrap_or_default();
    let daemon = match ctx.daemon(&ns, up.spec.daemon.as_ref()).await {
        Ok(d) => d,
        Err(e) => {
            let conds = [Cond::new(
                READY,
                false,
                "CredentialsUnavailable",
                e.to_string(),
            )];
            patch_status(api, up, status_with(&old, up, &conds, None)).await?;
            return Err(e);
        }
    };
    match sync(up, ctx, &daemon).await {
        Ok(Outcome::Synced {
            pool_id,
            changes,
            oauth,
        }) => {
            let conds = [
                Cond::new(
                    READY,
                    true,
                    "Reconciled",
                    format!("pool {pool_id} matches the spec"),
                ),
                Cond::new(
                    SCHEMA_ACCEPTED,
                    true,
                    "Accepted",
                    "the schema matches the pool",
                ),
            ];
            let mut st = status_with(&old, up, &conds, Some(&daemon));
            st.issuer_url = Some(daemon.issuer(&pool_id));
            st.pool_id = Some(pool_id);
            st.domain = oauth.domain;
            st.resource_servers = oauth.resource_servers;
            patch_status(api, up, st).await?;
            if !changes.is_empty() {
                tracing::info!(changes = ?changes, "pool reconciled");
            }
            Ok(Action::requeue(ctx.resync))
        }
        Ok(Outcome::Refused {
            pool_id,
            violations,
        }) => {
            let msg = format!(
                "immutable settings cannot change after the pool is created; nothing was applied: {}",
                violations.join("; ")
            );
            let conds = [
                Cond::new(READY, false, "ImmutableFieldChanged", msg.clone()),
                Cond::new(SCHEMA_ACCEPTED, false, "ImmutableFieldChanged", msg.clone()),
            ];
            let mut st = status_with(&old, up, &conds, Some(&daemon));
            st.issuer_url = Some(daemon.issuer(&pool_id));
            st.pool_id = Some(pool_id);
            patch_status(api, up, st).await?;
            ctx.event(up, true, "ImmutableFieldChanged", "Refuse", msg)
                .await;
            Ok(Action::requeue(ctx.resync))
        }
        Err(e) => {
            let (reason, msg) = match &e {
                Error::DaemonUnreachable(src) => (
                    "DaemonUnreachable",
                    format!("cannot reach the daemon ({src}); retrying with back-off"),
                ),
                Error::Daemon { .. } => ("DaemonError", e.to_string()),
                _ => ("Error", e.to_string()),
            };
            let conds = [Cond::new(READY, false, reason, msg.clone())];
            patch_status(api, up, status_with(&old, up, &conds, Some(&daemon))).await?;
            ctx.event(up, true, reason, "Reconcile", msg).await;
            Err(e)
        }
    }
}

fn status_with(
    old: &UserPoolStatus,
    up: &UserPool,
    conds: &[Cond],
    daemon: Option<&Daemon>,
) -> UserPoolStatus {
    let generation = up.metadata.generation;
    UserPoolStatus {
        pool_id: old.pool_id.clone(),
        issuer_url: old.issuer_url.clone(),
        endpoint: daemon
            .map(|d| d.endpoint.clone())
            .or_else(|| old.endpoint.clone()),
        domain: old.domain.clone(),
        resource_servers: old.resource_servers.clone(),
        observed_generation: generation,
        conditions: merge(
            &old.conditions,
            conds,
            generation,
            k8s_openapi::jiff::Timestamp::now(),
        ),
    }
}

async fn patch_status(api: &Api<UserPool>, up: &UserPool, status: UserPoolStatus) -> Result<()> {
    let patch = json!({
        "apiVersion": format!("{}/{}", cognate_crds::GROUP, cognate_crds::VERSION),
        "kind": KIND,
        "status": status,
    });
    api.patch_status(
        &up.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await?;
    Ok(())
}

async fn sync(up: &UserPool, ctx: &Context, daemon: &Daemon) -> Result<Outcome> {
    let uid = up.uid().unwrap_or_default();
    let known = up.status.as_ref().and_then(|s| s.pool_id.clone());
    let mut current = None;
    if let Some(id) = &known {
        match describe(daemon, id).await {
            Ok(pool) => current = Some(pool),
            Err(Error::Daemon { source, .. }) if source.is_not_found() => {
                ctx.event(
                    up,
                    true,
                    "PoolMissing",
                    "Recreate",
                    format!("pool {id} is gone from the daemon; creating it again"),
                )
                .await;
            }
            Err(e) => return Err(e),
        }
    }
    if current.is_none() {
        current = find_adoptable(daemon, &pool_name(up), &uid).await?;
        if let Some(pool) = &current {
            ctx.event(
                up,
                false,
                "Adopted",
                "Adopt",
                format!(
                    "found pool {} created for this resource",
                    pool.id.clone().unwrap_or_default()
                ),
            )
            .await;
        }
    }
    let Some(current) = current else {
        let req = create_request(up);
        let resp: p::CreateUserPoolResponse = daemon
            .admin
            .call("CreateUserPool", &req)
            .await
            .map_err(|e| Error::from_admin("CreateUserPool", e))?;
        let created = resp
            .user_pool
            .filter(|p| p.id.is_some())
            .ok_or_else(|| Error::Invalid("CreateUserPool answered without a pool id".into()))?;
        let pool_id = created.id.clone().unwrap_or_default();
        ctx.event(
            up,
            false,
            "Created",
            "Create",
            format!("created pool {pool_id}"),
        )
        .await;
        let oauth = oauth::sync(up, daemon, &created, None, &[]).await?;
        let mut changes = vec!["created".to_owned()];
        changes.extend(oauth.changes.iter().cloned());
        return Ok(Outcome::Synced {
            pool_id,
            changes,
            oauth,
        });
    };
    let pool_id = current.id.clone().unwrap_or_default();

    let check = check_immutable(&up.spec, &current);
    if !check.violations.is_empty() {
        return Ok(Outcome::Refused {
            pool_id,
            violations: check.violations,
        });
    }
    let mut changes = vec![];
    if !check.to_add.is_empty() {
        let names: Vec<String> = check.to_add.iter().map(|a| a.name.clone()).collect();
        let req = json!({
            "UserPoolId": pool_id,
            "CustomAttributes": check.to_add.iter().map(schema_attribute).collect::<Vec<_>>(),
        });
        daemon
            .admin
            .call::<_, Value>("AddCustomAttributes", &req)
            .await
            .map_err(|e| Error::from_admin("AddCustomAttributes", e))?;
        ctx.event(
            up,
            false,
            "AttributesAdded",
            "Update",
            format!("added custom attributes {}", names.join(", ")),
        )
        .await;
        changes.push(format!("added {}", names.join(", ")));
    }
    let desired = desired_mutable(up);
    let mut actual = serde_json::to_value(&current).unwrap_or_default();
    // AppClients keep their own tags on the pool (their adoption record): they are not
    // this resource's to compare, and an update must carry them over.
    let client_tags = take_client_tags(&mut actual);
    let drifted = drift(&desired, &actual);
    if !drifted.is_empty() {
        let mut req = desired.clone();
        req.insert("UserPoolId".into(), Value::from(pool_id.clone()));
        if let Some(Value::Object(tags)) = req.get_mut("UserPoolTags") {
            tags.extend(client_tags);
        }
        daemon
            .admin
            .call::<_, Value>("UpdateUserPool", &req)
            .await
            .map_err(|e| Error::from_admin("UpdateUserPool", e))?;
        let observed = up.status.as_ref().and_then(|s| s.observed_generation);
        let (reason, what) = if observed == up.metadata.generation {
            (
                "DriftRepaired",
                "re-applied the spec to settings changed outside Kubernetes",
            )
        } else {
            ("Updated", "applied the spec")
        };
        ctx.event(
            up,
            false,
            reason,
            "Update",
            format!("{what}: {}", drifted.join(", ")),
        )
        .await;
        changes.extend(drifted);
    }
    let (managed_domain, managed_servers) = match &up.status {
        Some(st) if st.pool_id.as_deref() == Some(pool_id.as_str()) => {
            (st.domain.clone(), st.resource_servers.clone())
        }
        _ => (None, vec![]),
    };
    let oauth = oauth::sync(
        up,
        daemon,
        &current,
        managed_domain.as_deref(),
        &managed_servers,
    )
    .await?;
    if !oauth.changes.is_empty() {
        let observed = up.status.as_ref().and_then(|s| s.observed_generation);
        let reason = if observed == up.metadata.generation {
            "DriftRepaired"
        } else {
            "Updated"
        };
        ctx.event(up, false, reason, "Update", oauth.changes.join(", "))
            .await;
        changes.extend(oauth.changes.iter().cloned());
    }
    Ok(Outcome::Synced {
        pool_id,
        changes,
        oauth,
    })
}

/// Removes the AppClients' tags (`cognate.io/appclient-<uid>`) from a described pool's
/// `UserPoolTags` and returns them.
fn take_client_tags(actual: &mut Value) -> Map<String, Value> {
    let mut taken = Map::new();
    if let Some(Value::Object(tags)) = actual.get_mut("UserPoolTags") {
        let keys: Vec<String> = tags
            .keys()
            .filter(|k| k.starts_with(crate::appclient::TAG_PREFIX))
            .cloned()
            .collect();
        for k in keys {
            if let Some(v) = tags.remove(&k) {
                taken.insert(k, v);
            }
        }
    }
    taken
}

async fn describe(daemon: &Daemon, id: &str) -> Result<p::UserPoolType> {
    let resp: p::DescribeUserPoolResponse = daemon
        .admin
        .call("DescribeUserPool", &json!({ "UserPoolId": id }))
        .await
        .map_err(|e| Error::from_admin("DescribeUserPool", e))?;
    resp.user_pool
        .ok_or_else(|| Error::Invalid("DescribeUserPool answered without a pool".into()))
}

/// A pool named `name` whose `cognate.io/uid` tag is `uid`: one this resource created
/// before its status was written (a crash between the two, or a lost status).
async fn find_adoptable(daemon: &Daemon, name: &str, uid: &str) -> Result<Option<p::UserPoolType>> {
    if uid.is_empty() {
        return Ok(None);
    }
    let mut next: Option<String> = None;
    for _ in 0..100 {
        let mut req = json!({ "MaxResults": 60 });
        if let Some(t) = &next {
            req["NextToken"] = Value::from(t.clone());
        }
        let page: p::ListUserPoolsResponse = daemon
            .admin
            .call("ListUserPools", &req)
            .await
            .map_err(|e| Error::from_admin("ListUserPools", e))?;
        for d in page.user_pools.unwrap_or_default() {
            if d.name.as_deref() != Some(name) {
                continue;
            }
            let Some(id) = d.id else { continue };
            let pool = describe(daemon, &id).await?;
            let tagged = pool
                .user_pool_tags
                .as_ref()
                .and_then(|t| t.get(UID_TAG))
                .is_some_and(|t| t == uid);
            if tagged {
                return Ok(Some(pool));
            }
        }
        match page.next_token {
            Some(t) => next = Some(t),
            None => break,
        }
    }
    Ok(None)
}

async fn cleanup(up: &UserPool, ctx: &Context, api: &Api<UserPool>) -> Result<Action> {
    let Some(pool_id) = up.status.as_ref().and_then(|s| s.pool_id.clone()) else {
        return Ok(Action::await_change());
    };
    if up.spec.deletion_policy == DeletionPolicy::Retain {
        ctx.event(
            up,
            false,
            "Retained",
            "Delete",
            format!("deletionPolicy is Retain: pool {pool_id} stays in the daemon"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let old = up.status.clone().unwrap_or_default();
    if up.spec.deletion_protection {
        let msg = format!(
            "pool {pool_id} has deletion protection; set spec.deletionProtection to false (or deletionPolicy to Retain) to let the deletion finish"
        );
        let conds = [Cond::new(READY, false, "DeletionProtected", msg.clone())];
        patch_status(api, up, status_with(&old, up, &conds, None)).await?;
        ctx.event(up, true, "DeletionProtected", "Delete", msg)
            .await;
        return Err(Error::DeletionProtected(pool_id));
    }
    let ns = up.namespace().unwrap_or_default();
    let daemon = ctx.daemon(&ns, up.spec.daemon.as_ref()).await?;
    match daemon
        .admin
        .call::<_, Value>("DeleteUserPool", &json!({ "UserPoolId": pool_id }))
        .await
    {
        Ok(_) => {}
        Err(e) if e.is_not_found() => {}
        Err(e) => {
            let e = Error::from_admin("DeleteUserPool", e);
            let reason = if matches!(e, Error::DaemonUnreachable(_)) {
                "DaemonUnreachable"
            } else {
                "DeleteFailed"
            };
            let conds = [Cond::new(READY, false, reason, e.to_string())];
            patch_status(api, up, status_with(&old, up, &conds, Some(&daemon))).await?;
            ctx.event(up, true, reason, "Delete", e.to_string()).await;
            return Err(e);
        }
    }
    ctx.event(
        up,
        false,
        "Deleted",
        "Delete",
        format!("deleted pool {pool_id}"),
    )
    .await;
    Ok(Action::await_change())
}

// ------------------------------------------------------------------ spec → Cognito

/// The pool's name in the daemon.
pub fn pool_name(up: &UserPool) -> String {
    up.spec
        .pool_name
        .clone()
        .unwrap_or_else(|| format!("{}-{}", up.namespace().unwrap_or_default(), up.name_any()))
}

/// Full attribute name as the daemon stores it.
pub fn full_name(a: &SchemaAttribute) -> String {
    if cognate_crds::STANDARD_ATTRIBUTES.contains(&a.name.as_str()) {
        return a.name.clone();
    }
    let bare = a
        .name
        .strip_prefix("dev:custom:")
        .or_else(|| a.name.strip_prefix("custom:"))
        .unwrap_or(&a.name);
    if a.developer_only {
        format!("dev:custom:{bare}")
    } else {
        format!("custom:{bare}")
    }
}

fn data_type(t: cognate_crds::AttributeDataType) -> &'static str {
    use cognate_crds::AttributeDataType as T;
    match t {
        T::String => "String",
        T::Number => "Number",
        T::DateTime => "DateTime",
        T::Boolean => "Boolean",
    }
}

/// One attribute as CreateUserPool's `SchemaAttributeType` (constraints are strings).
pub fn schema_attribute(a: &SchemaAttribute) -> Value {
    let bare = a
        .name
        .strip_prefix("dev:custom:")
        .or_else(|| a.name.strip_prefix("custom:"))
        .unwrap_or(&a.name);
    let mut v = json!({
        "Name": bare,
        "AttributeDataType": data_type(a.attribute_data_type),
        "Required": a.required,
        "Mutable": a.mutable,
        "DeveloperOnlyAttribute": a.developer_only,
    });
    if let Some(c) = &a.string_constraints {
        let mut m = Map::new();
        if let Some(x) = c.min_length {
            m.insert("MinLength".into(), Value::from(x.to_string()));
        }
        if let Some(x) = c.max_length {
            m.insert("MaxLength".into(), Value::from(x.to_string()));
        }
        v["StringAttributeConstraints"] = Value::Object(m);
    }
    if let Some(c) = &a.number_constraints {
        let mut m = Map::new();
        if let Some(x) = c.min_value {
            m.insert("MinValue".into(), Value::from(x.to_string()));
        }
        if let Some(x) = c.max_value {
            m.insert("MaxValue".into(), Value::from(x.to_string()));
        }
        v["NumberAttributeConstraints"] = Value::Object(m);
    }
    v
}

fn names<T: serde::Serialize>(v: &[T]) -> Vec<String> {
    v.iter()
        .filter_map(|x| serde_json::to_value(x).ok())
        .filter_map(|x| x.as_str().map(str::to_owned))
        .collect()
}

/// The settings UpdateUserPool can change, always complete: the daemon (like Cognito)
/// resets what an update leaves out, and drift is measured against exactly this.
pub fn desired_mutable(up: &UserPool) -> Map<String, Value> {
    let s: &UserPoolSpec = &up.spec;
    let pp = s
        .password_policy
        .clone()
        .unwrap_or(cognate_crds::PasswordPolicy {
            minimum_length: 8,
            require_uppercase: true,
            require_lowercase: true,
            require_numbers: true,
            require_symbols: true,
            temporary_password_validity_days: 7,
        });
    let mut m = Map::new();
    m.insert("PoolName".into(), Value::from(pool_name(up)));
    m.insert(
        "Policies".into(),
        json!({ "PasswordPolicy": {
            "MinimumLength": pp.minimum_length,
            "RequireUppercase": pp.require_uppercase,
            "RequireLowercase": pp.require_lowercase,
            "RequireNumbers": pp.require_numbers,
            "RequireSymbols": pp.require_symbols,
            "TemporaryPasswordValidityDays": pp.temporary_password_validity_days,
        }}),
    );
    m.insert(
        "DeletionProtection".into(),
        Value::from(if s.deletion_protection {
            "ACTIVE"
        } else {
            "INACTIVE"
        }),
    );
    m.insert(
        "MfaConfiguration".into(),
        serde_json::to_value(s.mfa).unwrap_or(Value::Null),
    );
    m.insert(
        "AutoVerifiedAttributes".into(),
        Value::from(names(&s.auto_verified_attributes)),
    );
    let region = s
        .daemon
        .as_ref()
        .map(|d| d.region.clone())
        .unwrap_or_else(|| "us-east-1".into());
    let mut lambda = Map::new();
    let mut tags: BTreeMap<String, String> = s
        .tags
        .iter()
        .filter(|(k, _)| !k.starts_with("cognate.io/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    if let Some(t) = &s.triggers {
        for name in &t.enabled {
            // Any ARN-shaped value turns a trigger on; the subject comes from the key.
            lambda.insert(
                name.as_str().into(),
                Value::from(format!(
                    "arn:aws:lambda:{region}:000000000000:function:cognate-{}",
                    name.as_str()
                )),
            );
        }
        tags.insert(TIMEOUT_TAG.into(), t.timeout_millis.to_string());
        let nr = serde_json::to_value(t.no_responder)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        tags.insert(NO_RESPONDER_TAG.into(), nr);
    }
    m.insert("LambdaConfig".into(), Value::Object(lambda));
    tags.insert(UID_TAG.into(), up.uid().unwrap_or_default());
    tags.insert(
        RESOURCE_TAG.into(),
        format!("{}.{}", up.namespace().unwrap_or_default(), up.name_any()),
    );
    m.insert("UserPoolTags".into(), json!(tags));
    let mut vmt = Map::new();
    let vm = s
        .verification_message
        .clone()
        .unwrap_or(cognate_crds::VerificationMessage {
            default_email_option: cognate_crds::EmailOption::ConfirmWithCode,
            email_subject: None,
            email_message: None,
            sms_message: None,
        });
    vmt.insert(
        "DefaultEmailOption".into(),
        serde_json::to_value(vm.default_email_option).unwrap_or(Value::Null),
    );
    let by_link = vm.default_email_option == cognate_crds::EmailOption::ConfirmWithLink;
    if let Some(x) = vm.email_subject {
        let k = if by_link {
            "EmailSubjectByLink"
        } else {
            "EmailSubject"
        };
        vmt.insert(k.into(), Value::from(x));
    }
    if let Some(x) = vm.email_message {
        let k = if by_link {
            "EmailMessageByLink"
        } else {
            "EmailMessage"
        };
        vmt.insert(k.into(), Value::from(x));
    }
    if let Some(x) = vm.sms_message {
        vmt.insert("SmsMessage".into(), Value::from(x));
    }
    m.insert("VerificationMessageTemplate".into(), Value::Object(vmt));
    let inv = s.invitation.clone();
    let mut acu = Map::new();
    acu.insert(
        "AllowAdminCreateUserOnly".into(),
        Value::from(inv.as_ref().is_some_and(|i| i.allow_admin_create_user_only)),
    );
    if let Some(i) = inv {
        let mut t = Map::new();
        if let Some(x) = i.email_subject {
            t.insert("EmailSubject".into(), Value::from(x));
        }
        if let Some(x) = i.email_message {
            t.insert("EmailMessage".into(), Value::from(x));
        }
        if let Some(x) = i.sms_message {
            t.insert("SMSMessage".into(), Value::from(x));
        }
        if !t.is_empty() {
            acu.insert("InviteMessageTemplate".into(), Value::Object(t));
        }
    }
    m.insert("AdminCreateUserConfig".into(), Value::Object(acu));
    m
}

/// CreateUserPool: the mutable settings plus what can only be set at creation.
pub fn create_request(up: &UserPool) -> Value {
    let mut m = desired_mutable(up);
    let s = &up.spec;
    m.insert(
        "Schema".into(),
        Value::from(s.schema.iter().map(schema_attribute).collect::<Vec<_>>()),
    );
    if !s.username_attributes.is_empty() {
        m.insert(
            "UsernameAttributes".into(),
            Value::from(names(&s.username_attributes)),
        );
    }
    if !s.alias_attributes.is_empty() {
        m.insert(
            "AliasAttributes".into(),
            Value::from(names(&s.alias_attributes)),
        );
    }
    m.insert(
        "UsernameConfiguration".into(),
        json!({ "CaseSensitive": s.case_sensitive }),
    );
    Value::Object(m)
}

/// Top-level settings where `actual` (DescribeUserPool's `UserPool`) differs from
/// `desired`. Policies are compared as a subset (the daemon reports more fields);
/// everything else exactly, with an absent list or map equal to an empty one.
pub fn drift(desired: &Map<String, Value>, actual: &Value) -> Vec<String> {
    let mut out = vec![];
    for (k, want) in desired {
        let have = match k.as_str() {
            "PoolName" => actual.get("Name"),
            k => actual.get(k),
        };
        let same = match (k.as_str(), have) {
            ("Policies", Some(h)) => contains(h, want),
            (_, Some(h)) => h == want,
            (_, None) => is_empty(want),
        };
        if !same {
            out.push(k.clone());
        }
    }
    out
}

fn is_empty(v: &Value) -> bool {
    match v {
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.is_empty(),
        Value::Null => true,
        _ => false,
    }
}

fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(h), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| h.get(k).is_some_and(|hv| contains(hv, wv))),
        _ => have == want,
    }
}

/// The result of comparing the spec's immutable parts with the pool in the daemon.
#[derive(Debug, Default)]
pub struct ImmutableCheck {
    /// What the spec changes that cannot change (empty when acceptable).
    pub violations: Vec<String>,
    /// New custom attributes that AddCustomAttributes may add.
    pub to_add: Vec<SchemaAttribute>,
}

/// Compares the spec's schema, username attributes, aliases and case sensitivity with
/// the pool: the same rules as the CRD's CEL, for when CEL did not run.
pub fn check_immutable(spec: &UserPoolSpec, pool: &p::UserPoolType) -> ImmutableCheck {
    let mut out = ImmutableCheck::default();
    let actual: Vec<p::SchemaAttributeType> = pool.schema_attributes.clone().unwrap_or_default();
    let by_name = |n: &str| actual.iter().find(|a| a.name.as_deref() == Some(n));
    let mut named = vec![];
    for a in &spec.schema {
        let full = full_name(a);
        named.push(full.clone());
        let Some(have) = by_name(&full) else {
            if cognate_crds::STANDARD_ATTRIBUTES.contains(&a.name.as_str()) || a.required {
                out.violations.push(format!(
                    "schema attribute {full} cannot be added: attributes added after creation must be custom and not required"
                ));
            } else {
                out.to_add.push(a.clone());
            }
            continue;
        };
        let mut diffs = vec![];
        let have_type = have
            .attribute_data_type
            .map(|t| t.as_str())
            .unwrap_or("String");
        if have_type != data_type(a.attribute_data_type) {
            diffs.push(format!(
                "type {have_type} → {}",
                data_type(a.attribute_data_type)
            ));
        }
        let bool_diff = |what: &str, have: Option<bool>, want: bool, diffs: &mut Vec<String>| {
            if have.unwrap_or(false) != want {
                diffs.push(format!("{what} {} → {want}", have.unwrap_or(false)));
            }
        };
        bool_diff("required", have.required, a.required, &mut diffs);
        bool_diff("mutable", have.mutable, a.mutable, &mut diffs);
        bool_diff(
            "developerOnly",
            have.developer_only_attribute,
            a.developer_only,
            &mut diffs,
        );
        let num = |s: &Option<String>| s.as_deref().and_then(|x| x.parse::<i64>().ok());
        if let Some(c) = &a.string_constraints {
            let hc = have
                .string_attribute_constraints
                .clone()
                .unwrap_or_default();
            if c.min_length.map(i64::from) != num(&hc.min_length)
                || c.max_length.map(i64::from) != num(&hc.max_length)
            {
                diffs.push("string constraints".into());
            }
        }
        if let Some(c) = &a.number_constraints {
            let hc = have
                .number_attribute_constraints
                .clone()
                .unwrap_or_default();
            if c.min_value != num(&hc.min_value) || c.max_value != num(&hc.max_value) {
                diffs.push("number constraints".into());
            }
        }
        if !diffs.is_empty() {
            out.violations
                .push(format!("schema attribute {full}: {}", diffs.join(", ")));
        }
    }
    for have in &actual {
        let Some(name) = have.name.as_deref() else {
            continue;
        };
        if named.iter().any(|n| n == name) {
            continue;
        }
        let custom = name.starts_with("custom:") || name.starts_with("dev:custom:");
        if custom {
            out.violations.push(format!(
                "schema attribute {name} exists in the pool and cannot be removed"
            ));
        } else if cognate_crds::STANDARD_ATTRIBUTES.contains(&name)
            && name != "sub"
            && (have.required.unwrap_or(false) || !have.mutable.unwrap_or(true))
        {
            out.violations.push(format!(
                "schema attribute {name} was created with non-default settings and must stay in spec.schema"
            ));
        }
    }
    let mut have_user: Vec<String> = names(pool.username_attributes.as_deref().unwrap_or_default());
    let mut want_user = names(&spec.username_attributes);
    have_user.sort();
    want_user.sort();
    if have_user != want_user {
        out.violations.push(format!(
            "usernameAttributes are {have_user:?} in the pool and cannot change"
        ));
    }
    let mut have_alias: Vec<String> = names(pool.alias_attributes.as_deref().unwrap_or_default());
    let mut want_alias = names(&spec.alias_attributes);
    have_alias.sort();
    want_alias.sort();
    if have_alias != want_alias {
        out.violations.push(format!(
            "aliasAttributes are {have_alias:?} in the pool and cannot change"
        ));
    }
    let have_case = pool
        .username_configuration
        .as_ref()
        .map(|u| u.case_sensitive)
        .unwrap_or(false);
    if have_case != spec.case_sensitive {
        out.violations.push(format!(
            "caseSensitive is {have_case} in the pool and cannot change"
        ));
    }
    out
}
