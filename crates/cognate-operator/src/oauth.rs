//! The OAuth 2.0 side of a UserPool: its domain and its resource servers, reconciled
//! through the domain and resource-server operations of the admin API. The spec is
//! authoritative for what it names; what it no longer names is deleted only when this
//! resource configured it before (recorded in status), so domains and resource servers
//! made through the API by someone else survive a spec that never mentioned them.

use std::collections::BTreeSet;

use cognate_crds::{PoolDomain, ResourceServer, UserPool};
use cognate_proto as p;
use serde_json::{Value, json};

use crate::context::Daemon;
use crate::{Error, Result};

/// What the OAuth pass left in the daemon and what it changed.
#[derive(Debug, Default)]
pub struct Synced {
    /// The domain the spec names, now configured.
    pub domain: Option<String>,
    /// Identifiers of the spec's resource servers, now configured.
    pub resource_servers: Vec<String>,
    /// Human-readable changes, for events and logs.
    pub changes: Vec<String>,
}

/// Brings the pool's domain and resource servers to the spec. `pool` is the described
/// pool (its `Domain` and `CustomDomain`); `managed_*` is what the status says this
/// resource configured before.
pub async fn sync(
    up: &UserPool,
    daemon: &Daemon,
    pool: &p::UserPoolType,
    managed_domain: Option<&str>,
    managed_servers: &[String],
) -> Result<Synced> {
    let pool_id = pool.id.clone().unwrap_or_default();
    let mut out = Synced::default();
    sync_domain(
        daemon,
        &pool_id,
        pool,
        up.spec.domain.as_ref(),
        managed_domain,
        &mut out,
    )
    .await?;
    sync_servers(
        daemon,
        &pool_id,
        &up.spec.resource_servers,
        managed_servers,
        &mut out,
    )
    .await?;
    Ok(out)
}

async fn call(daemon: &Daemon, op: &'static str, req: Value) -> Result<Value> {
    daemon
        .admin
        .call::<_, Value>(op, &req)
        .await
        .map_err(|e| Error::from_admin(op, e))
}

async fn describe_domain(daemon: &Daemon, domain: &str) -> Result<p::DomainDescriptionType> {
    let v = call(
        daemon,
        "DescribeUserPoolDomain",
        json!({ "Domain": domain }),
    )
    .await?;
    let d: p::DescribeUserPoolDomainResponse =
        serde_json::from_value(v).map_err(|e| Error::Invalid(e.to_string()))?;
    Ok(d.domain_description.unwrap_or_default())
}

async fn delete_domain(daemon: &Daemon, pool_id: &str, domain: &str) -> Result<()> {
    match daemon
        .admin
        .call::<_, Value>(
            "DeleteUserPoolDomain",
            &json!({ "UserPoolId": pool_id, "Domain": domain }),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if e.is_not_found() => Ok(()),
        Err(e) => Err(Error::from_admin("DeleteUserPoolDomain", e)),
    }
}

/// The request fields that describe `want` (the domain name aside).
fn domain_settings(want: &PoolDomain) -> serde_json::Map<String, Value> {
    let mut m = serde_json::Map::new();
    m.insert(
        "ManagedLoginVersion".into(),
        Value::from(want.managed_login_version),
    );
    if let Some(c) = &want.custom_domain {
        m.insert(
            "CustomDomainConfig".into(),
            json!({ "CertificateArn": c.certificate_arn }),
        );
    }
    m
}

async fn sync_domain(
    daemon: &Daemon,
    pool_id: &str,
    pool: &p::UserPoolType,
    want: Option<&PoolDomain>,
    managed: Option<&str>,
    out: &mut Synced,
) -> Result<()> {
    // (name, is custom) of the domains the pool has: at most one of each kind.
    let have: Vec<(String, bool)> = [(&pool.domain, false), (&pool.custom_domain, true)]
        .into_iter()
        .filter_map(|(d, custom)| d.clone().map(|d| (d, custom)))
        .collect();
    let Some(want) = want else {
        if let Some(m) = managed
            && have.iter().any(|(d, _)| d == m)
        {
            delete_domain(daemon, pool_id, m).await?;
            out.changes.push(format!("deleted domain {m}"));
        }
        return Ok(());
    };
    let Some(name) = want.name() else {
        return Err(Error::Invalid(
            "spec.domain needs one of prefix and customDomain".into(),
        ));
    };
    let custom = want.custom_domain.is_some();
    if have.iter().any(|(d, _)| d == name) {
        let current = describe_domain(daemon, name).await?;
        let cert = current.custom_domain_config.map(|c| c.certificate_arn);
        let want_cert = want
            .custom_domain
            .as_ref()
            .map(|c| c.certificate_arn.clone());
        let version = current.managed_login_version.unwrap_or(1);
        if version != i64::from(want.managed_login_version) || cert != want_cert {
            let mut req = domain_settings(want);
            req.insert("UserPoolId".into(), Value::from(pool_id));
            req.insert("Domain".into(), Value::from(name));
            call(daemon, "UpdateUserPoolDomain", Value::Object(req)).await?;
            out.changes.push(format!("updated domain {name}"));
        }
    } else {
        // Refuse before deleting anything when the name is another pool's.
        let owner = describe_domain(daemon, name).await?.user_pool_id;
        if let Some(other) = owner.filter(|o| o != pool_id) {
            return Err(Error::Invalid(format!(
                "domain {name} belongs to pool {other}; choose another name"
            )));
        }
        // One domain of each kind per pool: the old one of this kind makes room.
        for (d, _) in have.iter().filter(|(_, c)| *c == custom) {
            delete_domain(daemon, pool_id, d).await?;
            out.changes.push(format!("deleted domain {d}"));
        }
        let mut req = domain_settings(want);
        req.insert("UserPoolId".into(), Value::from(pool_id));
        req.insert("Domain".into(), Value::from(name));
        call(daemon, "CreateUserPoolDomain", Value::Object(req)).await?;
        out.changes.push(format!("created domain {name}"));
    }
    // The domain this resource had before, of the other kind, goes too.
    if let Some(m) = managed
        && m != name
        && have.iter().any(|(d, c)| d == m && *c != custom)
    {
        delete_domain(daemon, pool_id, m).await?;
        out.changes.push(format!("deleted domain {m}"));
    }
    out.domain = Some(name.to_owned());
    Ok(())
}

async fn list_servers(daemon: &Daemon, pool_id: &str) -> Result<Vec<p::ResourceServerType>> {
    let mut all = vec![];
    let mut next: Option<String> = None;
    for _ in 0..100 {
        let mut req = json!({ "UserPoolId": pool_id, "MaxResults": 50 });
        if let Some(t) = &next {
            req["NextToken"] = Value::from(t.clone());
        }
        let v = call(daemon, "ListResourceServers", req).await?;
        let page: p::ListResourceServersResponse =
            serde_json::from_value(v).map_err(|e| Error::Invalid(e.to_string()))?;
        all.extend(page.resource_servers);
        match page.next_token {
            Some(t) => next = Some(t),
            None => break,
        }
    }
    Ok(all)
}

/// A resource server's scopes as a set, the order being of no meaning.
fn scope_set(scopes: impl IntoIterator<Item = (String, String)>) -> BTreeSet<(String, String)> {
    scopes.into_iter().collect()
}

fn server_request(pool_id: &str, rs: &ResourceServer) -> Value {
    json!({
        "UserPoolId": pool_id,
        "Identifier": rs.identifier,
        "Name": rs.name,
        "Scopes": rs.scopes.iter().map(|s| json!({
            "ScopeName": s.name, "ScopeDescription": s.description,
        })).collect::<Vec<_>>(),
    })
}

async fn sync_servers(
    daemon: &Daemon,
    pool_id: &str,
    want: &[ResourceServer],
    managed: &[String],
    out: &mut Synced,
) -> Result<()> {
    let have = list_servers(daemon, pool_id).await?;
    for rs in want {
        let current = have
            .iter()
            .find(|h| h.identifier.as_deref() == Some(rs.identifier.as_str()));
        match current {
            None => {
                call(daemon, "CreateResourceServer", server_request(pool_id, rs)).await?;
                out.changes
                    .push(format!("created resource server {}", rs.identifier));
            }
            Some(h) => {
                let same_name = h.name.as_deref() == Some(rs.name.as_str());
                let have_scopes = scope_set(
                    h.scopes
                        .iter()
                        .flatten()
                        .map(|s| (s.scope_name.clone(), s.scope_description.clone())),
                );
                let want_scopes = scope_set(
                    rs.scopes
                        .iter()
                        .map(|s| (s.name.clone(), s.description.clone())),
                );
                if !same_name || have_scopes != want_scopes {
                    call(daemon, "UpdateResourceServer", server_request(pool_id, rs)).await?;
                    out.changes
                        .push(format!("updated resource server {}", rs.identifier));
                }
            }
        }
        out.resource_servers.push(rs.identifier.clone());
    }
    for gone in managed {
        if want.iter().any(|w| &w.identifier == gone)
            || !have.iter().any(|h| h.identifier.as_deref() == Some(gone))
        {
            continue;
        }
        match daemon
            .admin
            .call::<_, Value>(
                "DeleteResourceServer",
                &json!({ "UserPoolId": pool_id, "Identifier": gone }),
            )
            .await
        {
            Ok(_) => {}
            Err(e) if e.is_not_found() => {}
            Err(e) => return Err(Error::from_admin("DeleteResourceServer", e)),
        }
        out.changes.push(format!("deleted resource server {gone}"));
    }
    Ok(())
}

/// The base URL of a pool domain's endpoints: `<public-url>/domains/<domain>`, which
/// the daemon serves whatever DNS says (the daemon's `oauth::endpoints` builds the same).
pub fn domain_base(public_url: &str, domain: &str) -> String {
    format!("{}/domains/{domain}", public_url.trim_end_matches('/'))
}
