//! User pool domains (CreateUserPoolDomain and the rest) and resource servers with their
//! custom scopes: the configuration that makes a pool an OAuth 2.0 / OpenID provider.
//! A prefix domain is served as `<prefix>.<domain suffix>` and under
//! `<public-url>/domains/<prefix>/`; a custom domain under its own name.

use cognate_domain::{Command, ErrorKind, Pool, PoolDomain, ResourceServer, View};
use cognate_proto as p;

use crate::error::{ApiError, Result};
use crate::pools::load_pool;
use crate::state::AppState;
use crate::util::now_ms;

/// Words Cognito refuses in prefix domains.
const RESERVED: [&str; 3] = ["aws", "amazon", "cognito"];

/// Checks a domain as Cognito does: a prefix is lowercase letters, digits and hyphens
/// (not at either end) without a reserved word; a custom domain is a host name of at least
/// two labels.
fn check_domain(domain: &str, custom: bool) -> Result<()> {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    if custom {
        let labels: Vec<&str> = domain.split('.').collect();
        if domain.len() > 253 || labels.len() < 2 || !labels.iter().all(|l| label_ok(l)) {
            return Err(ApiError::invalid(format!(
                "Custom domain {domain} is not a valid domain name: use lowercase labels of letters, digits and hyphens, such as auth.example.com."
            )));
        }
        return Ok(());
    }
    if !label_ok(domain) {
        return Err(ApiError::invalid(format!(
            "Domain {domain} is invalid: a prefix domain may contain only lowercase letters, numbers and hyphens, and may not begin or end with a hyphen."
        )));
    }
    if let Some(word) = RESERVED.iter().find(|w| domain.contains(**w)) {
        return Err(ApiError::invalid(format!(
            "Domain cannot contain reserved word: {word}"
        )));
    }
    Ok(())
}

fn login_version(v: Option<i64>) -> Result<i64> {
    match v.unwrap_or(1) {
        v @ (1 | 2) => Ok(v),
        other => Err(ApiError::invalid(format!(
            "ManagedLoginVersion must be 1 (classic hosted UI) or 2 (managed login), not {other}."
        ))),
    }
}

/// Where a custom domain's DNS name should point (Cognito answers with a CloudFront
/// host): the host of the daemon's public URL.
fn cname_target(s: &AppState) -> String {
    let url = &s.config().public_url;
    let rest = url.split_once("://").map_or(url.as_str(), |(_, r)| r);
    rest.split(['/', ':']).next().unwrap_or(rest).to_owned()
}

/// Refuses a custom domain name where a prefix is expected, and the other way round.
fn check_kind(domain: &str, custom: bool) -> Result<()> {
    if !custom && domain.contains('.') {
        return Err(ApiError::invalid(format!(
            "{domain} looks like a custom domain: give CustomDomainConfig with its certificate ARN, or use a prefix without dots."
        )));
    }
    Ok(())
}

async fn set_domain(
    s: &AppState,
    pool_id: &str,
    domain: &str,
    custom: Option<&p::CustomDomainConfigType>,
    version: Option<i64>,
    create: bool,
) -> Result<(i64, Option<String>)> {
    load_pool(s, pool_id).await?;
    check_kind(domain, custom.is_some())?;
    check_domain(domain, custom.is_some())?;
    let managed_login_version = login_version(version)?;
    let cmd = Command::SetDomain {
        pool_id: pool_id.to_owned(),
        domain: PoolDomain {
            domain: domain.to_owned(),
            certificate_arn: custom.map(|c| c.certificate_arn.clone()),
            managed_login_version,
            created_at: now_ms(),
        },
        create,
    };
    s.run(cmd, now_ms()).await?;
    Ok((managed_login_version, custom.map(|_| cname_target(s))))
}

pub async fn create_user_pool_domain(
    s: AppState,
    r: p::CreateUserPoolDomainRequest,
) -> Result<p::CreateUserPoolDomainResponse> {
    let (version, cname) = set_domain(
        &s,
        &r.user_pool_id,
        &r.domain,
        r.custom_domain_config.as_ref(),
        r.managed_login_version,
        true,
    )
    .await?;
    Ok(p::CreateUserPoolDomainResponse {
        managed_login_version: Some(version),
        cloud_front_domain: cname,
    })
}

pub async fn update_user_pool_domain(
    s: AppState,
    r: p::UpdateUserPoolDomainRequest,
) -> Result<p::UpdateUserPoolDomainResponse> {
    let pool = load_pool(&s, &r.user_pool_id).await?;
    // A custom domain keeps its certificate unless a new one is given.
    let existing = pool.domains.iter().find(|d| d.domain == r.domain);
    let custom = r.custom_domain_config.clone().or_else(|| {
        existing
            .and_then(|d| d.certificate_arn.clone())
            .map(|certificate_arn| p::CustomDomainConfigType { certificate_arn })
    });
    let version = r
        .managed_login_version
        .or(existing.map(|d| d.managed_login_version));
    let (version, cname) = set_domain(
        &s,
        &r.user_pool_id,
        &r.domain,
        custom.as_ref(),
        version,
        false,
    )
    .await?;
    Ok(p::UpdateUserPoolDomainResponse {
        managed_login_version: Some(version),
        cloud_front_domain: cname,
    })
}

pub async fn delete_user_pool_domain(
    s: AppState,
    r: p::DeleteUserPoolDomainRequest,
) -> Result<p::DeleteUserPoolDomainResponse> {
    load_pool(&s, &r.user_pool_id).await?;
    let cmd = Command::DeleteDomain {
        pool_id: r.user_pool_id,
        domain: r.domain,
    };
    s.run(cmd, now_ms()).await?;
    Ok(p::DeleteUserPoolDomainResponse {})
}

/// The pool that owns `domain`, with that domain's settings.
pub async fn pool_of_domain(s: &AppState, domain: &str) -> Result<Option<(Pool, PoolDomain)>> {
    let d = domain.to_owned();
    let Some(pool_id) = s.store().read(move |r| r.pool_by_domain(&d)).await? else {
        return Ok(None);
    };
    let Some(pool) = s.pool(&pool_id).await? else {
        return Ok(None);
    };
    let found = pool.domains.iter().find(|x| x.domain == domain).cloned();
    Ok(found.map(|d| ((*pool).clone(), d)))
}

pub async fn describe_user_pool_domain(
    s: AppState,
    r: p::DescribeUserPoolDomainRequest,
) -> Result<p::DescribeUserPoolDomainResponse> {
    // Cognito answers an unknown domain with an empty description, not an error.
    let Some((pool, d)) = pool_of_domain(&s, &r.domain).await? else {
        return Ok(p::DescribeUserPoolDomainResponse {
            domain_description: Some(p::DomainDescriptionType::default()),
        });
    };
    Ok(p::DescribeUserPoolDomainResponse {
        domain_description: Some(p::DomainDescriptionType {
            user_pool_id: Some(pool.id.clone()),
            aws_account_id: Some(crate::pools::ACCOUNT_ID.to_owned()),
            domain: Some(d.domain.clone()),
            s3_bucket: None,
            cloud_front_distribution: d.is_custom().then(|| cname_target(&s)),
            version: Some(d.created_at.to_string()),
            status: Some(p::DomainStatusType::Active),
            custom_domain_config: d
                .certificate_arn
                .clone()
                .map(|certificate_arn| p::CustomDomainConfigType { certificate_arn }),
            managed_login_version: Some(d.managed_login_version),
        }),
    })
}

fn wire_server(pool_id: &str, rs: &ResourceServer) -> p::ResourceServerType {
    p::ResourceServerType {
        user_pool_id: Some(pool_id.to_owned()),
        identifier: Some(rs.identifier.clone()),
        name: Some(rs.name.clone()),
        scopes: Some(
            rs.scopes
                .iter()
                .map(|(n, d)| p::ResourceServerScopeType {
                    scope_name: n.clone(),
                    scope_description: d.clone(),
                })
                .collect(),
        ),
    }
}

async fn put_server(
    s: &AppState,
    pool_id: &str,
    identifier: &str,
    name: &str,
    scopes: &Option<Vec<p::ResourceServerScopeType>>,
    create: bool,
) -> Result<p::ResourceServerType> {
    load_pool(s, pool_id).await?;
    let server = ResourceServer {
        identifier: identifier.to_owned(),
        name: name.to_owned(),
        scopes: scopes
            .iter()
            .flatten()
            .map(|x| (x.scope_name.clone(), x.scope_description.clone()))
            .collect(),
    };
    let cmd = Command::PutResourceServer {
        pool_id: pool_id.to_owned(),
        server: server.clone(),
        create,
    };
    s.run(cmd, now_ms()).await?;
    Ok(wire_server(pool_id, &server))
}

pub async fn create_resource_server(
    s: AppState,
    r: p::CreateResourceServerRequest,
) -> Result<p::CreateResourceServerResponse> {
    let rs = put_server(&s, &r.user_pool_id, &r.identifier, &r.name, &r.scopes, true).await?;
    Ok(p::CreateResourceServerResponse {
        resource_server: rs,
    })
}

pub async fn update_resource_server(
    s: AppState,
    r: p::UpdateResourceServerRequest,
) -> Result<p::UpdateResourceServerResponse> {
    let rs = put_server(
        &s,
        &r.user_pool_id,
        &r.identifier,
        &r.name,
        &r.scopes,
        false,
    )
    .await?;
    Ok(p::UpdateResourceServerResponse {
        resource_server: rs,
    })
}

fn server_of<'a>(pool: &'a Pool, identifier: &str) -> Result<&'a ResourceServer> {
    pool.resource_servers.get(identifier).ok_or_else(|| {
        ApiError::new(
            ErrorKind::ResourceNotFound,
            format!(
                "Resource server {identifier} does not exist in user pool {}.",
                pool.id
            ),
        )
    })
}

pub async fn describe_resource_server(
    s: AppState,
    r: p::DescribeResourceServerRequest,
) -> Result<p::DescribeResourceServerResponse> {
    let pool = load_pool(&s, &r.user_pool_id).await?;
    Ok(p::DescribeResourceServerResponse {
        resource_server: wire_server(&pool.id, server_of(&pool, &r.identifier)?),
    })
}

pub async fn delete_resource_server(
    s: AppState,
    r: p::DeleteResourceServerRequest,
) -> Result<p::Empty> {
    let cmd = Command::DeleteResourceServer {
        pool_id: r.user_pool_id,
        identifier: r.identifier,
    };
    s.run(cmd, now_ms()).await?;
    Ok(p::Empty {})
}

pub async fn list_resource_servers(
    s: AppState,
    r: p::ListResourceServersRequest,
) -> Result<p::ListResourceServersResponse> {
    let pool = load_pool(&s, &r.user_pool_id).await?;
    let max = usize::try_from(r.max_results.unwrap_or(50).clamp(1, 50)).unwrap_or(50);
    // The token is the identifier to continue after.
    let after = r.next_token.as_deref();
    let mut page: Vec<&ResourceServer> = pool
        .resource_servers
        .values()
        .filter(|rs| after.is_none_or(|a| rs.identifier.as_str() > a))
        .take(max + 1)
        .collect();
    let next_token = (page.len() > max).then(|| {
        page.truncate(max);
        page.last()
            .map(|rs| rs.identifier.clone())
            .unwrap_or_default()
    });
    Ok(p::ListResourceServersResponse {
        resource_servers: page.iter().map(|rs| wire_server(&pool.id, rs)).collect(),
        next_token,
    })
}

/// Every custom scope of the pool, as `<identifier>/<scope>`.
pub fn custom_scopes(pool: &Pool) -> Vec<String> {
    pool.resource_servers
        .values()
        .flat_map(|rs| {
            rs.scopes
                .iter()
                .map(move |(n, _)| format!("{}/{n}", rs.identifier))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::check_domain;

    #[test]
    fn domains_follow_cognitos_rules() {
        for ok in ["shop", "my-shop-1", "a"] {
            assert!(check_domain(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "-shop",
            "shop-",
            "Shop",
            "my_shop",
            "my.shop",
            "awsome",
            "mycognito",
            "",
        ] {
            assert!(check_domain(bad, false).is_err(), "{bad}");
        }
        assert!(check_domain("auth.example.com", true).is_ok());
        for bad in [
            "localhost",
            "auth..example.com",
            "Auth.example.com",
            "-a.example.com",
        ] {
            assert!(check_domain(bad, true).is_err(), "{bad}");
        }
    }
}
