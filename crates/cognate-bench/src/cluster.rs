//! Cluster against embedded (issue 13, docs/cluster.md): the same loads on one
//! embedded daemon and on three cluster daemons on a three-node JetStream cluster
//! (nats-server 2.11+), all on this machine. Reports SignUp, a write without hashing
//! (AdminUpdateUserAttributes), GetUser on each daemon, replication lag between
//! daemons, and what one append to the shared log costs.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::load::{self, Outcome, Plan};
use crate::{Api, Creds, PASSWORD, procs, text};

pub struct Setup<'a> {
    pub daemon_bin: &'a Path,
    pub nats_bin: &'a Path,
    pub dir: &'a Path,
    pub creds: &'a Creds,
    pub plan: Plan,
}

/// One mode's numbers.
pub struct ModeReport {
    pub name: &'static str,
    pub sign_up: Outcome,
    pub update: Outcome,
    /// GetUser on each daemon (one for embedded).
    pub get_user: Vec<Outcome>,
    /// Appends to the shared log during the update phase, and their total time.
    pub appends: Option<(u64, f64)>,
    pub conflicts: Option<u64>,
}

pub struct Report {
    pub embedded: ModeReport,
    pub cluster: ModeReport,
    /// Write acknowledged on one daemon → applied on another.
    pub lag: Vec<Duration>,
}

/// Runs `make` against every address at once, the connections split among them.
async fn spread(
    plan: &Plan,
    addrs: &[SocketAddr],
    make: Arc<dyn Fn(u64) -> load::Request + Send + Sync>,
) -> Result<Outcome> {
    let per = (plan.connections / addrs.len()).max(1);
    let mut tasks = Vec::new();
    for (i, addr) in addrs.iter().enumerate() {
        let plan = Plan {
            addr: *addr,
            connections: per,
            ..plan.clone()
        };
        let n = addrs.len() as u64;
        let make = make.clone();
        // Request numbers interleave across daemons so users stay distinct.
        tasks.push(tokio::spawn(async move {
            load::run(&plan, Arc::new(move |k| make(k * n + i as u64))).await
        }));
    }
    let mut total = Outcome::default();
    for t in tasks {
        let o = t.await.context("load task")??;
        total.elapsed = total.elapsed.max(o.elapsed);
        total.ok.extend(o.ok);
        total.failed += o.failed;
        if total.first_error.is_none() {
            total.first_error = o.first_error;
        }
    }
    Ok(total)
}

/// A metric's value from a daemon's `/metrics` (a line `name value`).
async fn metric(addr: SocketAddr, name: &str) -> Result<f64> {
    let (_, body) = load::get(addr, "/metrics").await?;
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .filter_map(|l| l.strip_prefix(name))
        .filter_map(|rest| {
            let rest = rest.trim_start();
            // `name value` or `name{labels} value`.
            let value = if rest.starts_with('{') {
                rest.split_once("} ").map(|(_, v)| v)?
            } else {
                rest
            };
            value.trim().parse::<f64>().ok()
        })
        .reduce(|a, b| a + b)
        .with_context(|| format!("no {name} in /metrics of {addr}"))
}

async fn wait_ready(addr: SocketAddr) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok((200, _)) = load::get(addr, "/readyz").await {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{addr} not ready within 60 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn mode(
    name: &'static str,
    apis: &[Arc<Api>],
    plan: &Plan,
    clustered: bool,
) -> Result<(ModeReport, String, String)> {
    let api = &apis[0];
    let pool = api
        .admin(
            "CreateUserPool",
            json!({"PoolName": "bench", "Policies": {"PasswordPolicy": {"MinimumLength": 8}}}),
        )
        .await?;
    let pool_id = text(&pool, &["UserPool", "Id"])?;
    let client = api
        .admin(
            "CreateUserPoolClient",
            json!({
                "UserPoolId": pool_id,
                "ClientName": "b",
                "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_ADMIN_USER_PASSWORD_AUTH"],
            }),
        )
        .await?;
    let client_id = text(&client, &["UserPoolClient", "ClientId"])?;
    let addrs: Vec<SocketAddr> = apis.iter().map(|a| a.addr).collect();
    let sign_up = {
        let (api, client_id) = (api.clone(), client_id.clone());
        spread(
            plan,
            &addrs,
            Arc::new(move |n| {
                api.unsigned(
                    "SignUp",
                    &json!({"ClientId": client_id, "Username": format!("u{n}"), "Password": PASSWORD}),
                )
            }),
        )
        .await?
    };
    if sign_up.ok.is_empty() {
        bail!("{name}: no sign-up succeeded: {:?}", sign_up.first_error);
    }
    // Updates of the signed-up users' attributes: a write that hashes nothing.
    let mut users: Vec<u64> = sign_up.ok.iter().map(|(n, _)| *n).collect();
    users.sort_unstable();
    let users = Arc::new(users);
    let before = if clustered {
        Some((
            metric(addrs[0], "cognate_cluster_appends").await?,
            metric(addrs[0], "cognate_cluster_append_seconds").await?,
        ))
    } else {
        None
    };
    let update = {
        let (api, pool_id, users) = (api.clone(), pool_id.clone(), users.clone());
        spread(
            plan,
            &addrs[..1],
            Arc::new(move |n| {
                let user = users[(n as usize) % users.len()];
                api.signed(
                    "AdminUpdateUserAttributes",
                    &json!({
                        "UserPoolId": pool_id,
                        "Username": format!("u{user}"),
                        "UserAttributes": [{"Name": "given_name", "Value": format!("n{n}")}],
                    }),
                )
            }),
        )
        .await?
    };
    let appends = match before {
        Some((n0, s0)) => Some((
            (metric(addrs[0], "cognate_cluster_appends").await? - n0) as u64,
            metric(addrs[0], "cognate_cluster_append_seconds").await? - s0,
        )),
        None => None,
    };
    let conflicts = if clustered {
        let mut c = 0.0;
        for a in &addrs {
            c += metric(*a, "cognate_cluster_conflicts").await?;
        }
        Some(c as u64)
    } else {
        None
    };
    // GetUser with an access token, on each daemon in turn.
    let user = users[0];
    api.admin(
        "AdminConfirmSignUp",
        json!({"UserPoolId": pool_id, "Username": format!("u{user}")}),
    )
    .await?;
    let auth = api
        .call(
            "InitiateAuth",
            json!({
                "AuthFlow": "USER_PASSWORD_AUTH",
                "ClientId": client_id,
                "AuthParameters": {"USERNAME": format!("u{user}"), "PASSWORD": PASSWORD},
            }),
        )
        .await?;
    let token = text(&auth, &["AuthenticationResult", "AccessToken"])?;
    let mut get_user = Vec::new();
    for a in apis {
        let req = a.unsigned("GetUser", &json!({"AccessToken": token}));
        get_user.push(
            load::run(
                &Plan {
                    addr: a.addr,
                    ..plan.clone()
                },
                Arc::new(move |_| req.clone()),
            )
            .await?,
        );
    }
    Ok((
        ModeReport {
            name,
            sign_up,
            update,
            get_user,
            appends,
            conflicts,
        },
        pool_id,
        format!("u{user}"),
    ))
}

/// Write on daemon 0, then poll daemon `1`'s applied position until it has the write.
async fn lag(
    apis: &[Arc<Api>],
    pool_id: &str,
    username: &str,
    samples: usize,
) -> Result<Vec<Duration>> {
    let mut out = Vec::with_capacity(samples);
    for k in 0..samples {
        apis[0]
            .admin(
                "AdminUpdateUserAttributes",
                json!({
                    "UserPoolId": pool_id,
                    "Username": username,
                    "UserAttributes": [{"Name": "family_name", "Value": format!("f{k}")}],
                }),
            )
            .await?;
        let acked = Instant::now();
        let position = metric(apis[0].addr, "cognate_cluster_applied_position").await?;
        let other = apis[1 + k % (apis.len() - 1)].addr;
        loop {
            if metric(other, "cognate_cluster_applied_position").await? >= position {
                break;
            }
            if acked.elapsed() > Duration::from_secs(10) {
                bail!("{other} did not apply position {position} within 10 s");
            }
        }
        out.push(acked.elapsed());
    }
    Ok(out)
}

pub async fn run(s: Setup<'_>) -> Result<Report> {
    // Embedded: one daemon, nothing else.
    let embedded = {
        let d = procs::start_daemon(
            s.daemon_bin,
            &s.dir.join("cluster-embedded"),
            &s.dir.join("cluster-embedded.log"),
            &s.creds.access_key,
            &s.creds.secret,
            &[],
        )
        .await?;
        let apis = vec![Arc::new(Api::new(d.addr, s.creds))];
        let (r, _, _) = mode("embedded", &apis, &s.plan, false).await?;
        d.stop().await;
        r
    };
    // Three NATS nodes, three daemons (one per node).
    let nats = procs::start_nats_cluster(s.nats_bin, &s.dir.join("nats-cluster"), 3).await?;
    let master = hex::encode(cognate_crypto::random_bytes(32));
    let mut daemons = Vec::new();
    for i in 0..3 {
        let url = nats.url(i);
        daemons.push(
            procs::start_daemon(
                s.daemon_bin,
                &s.dir.join(format!("cluster-d{i}")),
                &s.dir.join(format!("cluster-d{i}.log")),
                &s.creds.access_key,
                &s.creds.secret,
                &[
                    ("COGNATE_CLUSTER", "true"),
                    ("COGNATE_NATS_URL", &url),
                    ("COGNATE_MASTER_KEY", &master),
                    ("COGNATE_PUBLIC_URL", "http://cognate-bench.test"),
                    ("COGNATE_LOG_REPLICAS", "3"),
                ],
            )
            .await?,
        );
    }
    for d in &daemons {
        wait_ready(d.addr).await?;
    }
    let apis: Vec<Arc<Api>> = daemons
        .iter()
        .map(|d| Arc::new(Api::new(d.addr, s.creds)))
        .collect();
    let (cluster, pool_id, username) = mode("cluster", &apis, &s.plan, true).await?;
    let lag = lag(&apis, &pool_id, &username, 200).await?;
    for d in daemons {
        d.stop().await;
    }
    nats.stop().await;
    Ok(Report {
        embedded,
        cluster,
        lag,
    })
}
