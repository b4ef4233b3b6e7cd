//! NATS (issue 4), against a real `nats-server -js` started here: sign-ups with no
//! trigger against sign-ups through a PreSignUp worker (`cognate_worker`, in this
//! process), then the outbox: how fast JetStream acknowledges the log's events while
//! sign-ups run, how far behind it falls and how long it takes to catch up.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use serde_json::json;

use crate::load::{self, Outcome, Plan};
use crate::{Api, Creds, PASSWORD, procs, text};

/// The cheap argon2 parameters of the outbox phase, so events, not hashing, are the load.
pub const CHEAP_ARGON2_M_KIB: &str = "64";
pub const CHEAP_ARGON2_T: &str = "1";
const TRIGGER_ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:bench";
/// Metrics scrape interval during the outbox phase.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// Longest wait for the outbox to catch up after the load.
const DRAIN_LIMIT: Duration = Duration::from_secs(180);

/// The outbox numbers of one `/metrics` scrape.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sample {
    pub at: Duration,
    pub log_seq: u64,
    pub published: u64,
    pub events_behind: u64,
    pub seconds_behind: f64,
}

impl Sample {
    /// Events logged but not yet acknowledged, counted from the log: every event of this
    /// phase is one publication (no trigger, no message), on a fresh log.
    pub fn lag(&self) -> u64 {
        self.log_seq.saturating_sub(self.published)
    }
}

pub struct OutboxReport {
    /// Sign-ups logged with NATS off, and scrapes when the next daemon (NATS on)
    /// started and when it had published them all.
    pub backlog_load: Outcome,
    pub backlog_start: Sample,
    pub backlog_end: Sample,
    pub sign_up: Outcome,
    /// Scrapes just before and just after the load, and when the outbox caught up.
    pub before: Sample,
    pub after: Sample,
    pub drained: Option<Sample>,
    pub max_lag: u64,
    pub max_events_behind: u64,
    pub max_seconds_behind: f64,
    pub samples: usize,
}

impl OutboxReport {
    /// Publications acknowledged per second while the load ran.
    pub fn published_rate(&self) -> f64 {
        rate(
            self.after.published - self.before.published.min(self.after.published),
            self.after.at.saturating_sub(self.before.at),
        )
    }

    /// Events logged per second while the load ran.
    pub fn logged_rate(&self) -> f64 {
        rate(
            self.after.log_seq - self.before.log_seq.min(self.after.log_seq),
            self.after.at.saturating_sub(self.before.at),
        )
    }

    /// Publications acknowledged per second while the backlog was published (measured
    /// between the first scrape after the start and the one that found it done).
    pub fn backlog_rate(&self) -> f64 {
        rate(
            self.backlog_end.published
                - self.backlog_start.published.min(self.backlog_end.published),
            self.backlog_end.at.saturating_sub(self.backlog_start.at),
        )
    }

    /// Time from the end of the load until every event was acknowledged.
    pub fn drain(&self) -> Option<Duration> {
        self.drained.map(|d| d.at.saturating_sub(self.after.at))
    }

    /// Publications per second from the start of the load until caught up.
    pub fn overall_rate(&self) -> Option<f64> {
        self.drained.map(|d| {
            rate(
                d.published - self.before.published.min(d.published),
                d.at.saturating_sub(self.before.at),
            )
        })
    }
}

fn rate(n: u64, d: Duration) -> f64 {
    let s = d.as_secs_f64();
    if s > 0.0 { n as f64 / s } else { 0.0 }
}

pub struct Report {
    pub nats_version: String,
    pub no_trigger: Outcome,
    pub with_trigger: Outcome,
    pub outbox: OutboxReport,
}

pub struct Setup<'a> {
    pub daemon_bin: &'a Path,
    pub nats_bin: &'a Path,
    pub dir: &'a Path,
    pub creds: &'a Creds,
    pub plan: Plan,
}

fn metric(body: &str, name: &str) -> Option<f64> {
    body.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

async fn scrape(addr: SocketAddr, started: Instant) -> Result<Sample> {
    let (status, body) = load::get(addr, "/metrics").await?;
    if status != 200 {
        bail!("GET /metrics: HTTP {status}");
    }
    let at = started.elapsed();
    let body = String::from_utf8_lossy(&body);
    let get = |name: &str| {
        metric(&body, name).ok_or_else(|| anyhow!("no {name} in the daemon's /metrics"))
    };
    Ok(Sample {
        at,
        log_seq: get("cognate_log_sequence")? as u64,
        published: get("cognate_outbox_published")? as u64,
        events_behind: get("cognate_outbox_events_behind")? as u64,
        seconds_behind: get("cognate_outbox_seconds_behind")?,
    })
}

/// Scrapes until the outbox has acknowledged every logged event, at most `limit`.
async fn wait_drained(
    addr: SocketAddr,
    started: Instant,
    limit: Duration,
) -> Result<Option<Sample>> {
    let deadline = Instant::now() + limit;
    loop {
        let s = scrape(addr, started).await?;
        if s.lag() == 0 && s.events_behind == 0 {
            return Ok(Some(s));
        }
        if Instant::now() > deadline {
            return Ok(None);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pool_and_client(api: &Api, name: &str, lambda: Option<&str>) -> Result<(String, String)> {
    let mut body = json!({"PoolName": name, "Policies": {"PasswordPolicy": {"MinimumLength": 8}}});
    if let Some(arn) = lambda {
        body["LambdaConfig"] = json!({"PreSignUp": arn});
    }
    let pool = api.admin("CreateUserPool", body).await?;
    let pool_id = text(&pool, &["UserPool", "Id"])?;
    let client = api
        .admin(
            "CreateUserPoolClient",
            json!({"UserPoolId": pool_id, "ClientName": "b", "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]}),
        )
        .await?;
    Ok((pool_id, text(&client, &["UserPoolClient", "ClientId"])?))
}

async fn sign_ups(
    api: &Arc<Api>,
    plan: &Plan,
    client_id: &str,
    tag: &'static str,
) -> Result<Outcome> {
    let (api, client_id) = (api.clone(), client_id.to_owned());
    load::run(
        plan,
        Arc::new(move |n| {
            api.unsigned(
                "SignUp",
                &json!({"ClientId": client_id, "Username": format!("{tag}{n}"), "Password": PASSWORD}),
            )
        }),
    )
    .await
}

fn nats_version(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "nats-server (version unknown)".to_owned())
}

pub async fn run(setup: Setup<'_>) -> Result<Report> {
    let nats_version = nats_version(setup.nats_bin);
    let nats = procs::start_nats(setup.nats_bin, &setup.dir.join("nats")).await?;
    let result = phases(&setup, &nats.url).await;
    nats.stop().await;
    let (no_trigger, with_trigger, outbox) = result?;
    Ok(Report {
        nats_version,
        no_trigger,
        with_trigger,
        outbox,
    })
}

async fn phases(setup: &Setup<'_>, url: &str) -> Result<(Outcome, Outcome, OutboxReport)> {
    // (a) Sign-ups without and with a PreSignUp worker, default argon2.
    eprintln!("      SignUp with NATS, no trigger, then with a PreSignUp worker ...");
    let daemon = procs::start_daemon(
        setup.daemon_bin,
        &setup.dir.join("nats-data"),
        &setup.dir.join("nats-daemon.log"),
        &setup.creds.access_key,
        &setup.creds.secret,
        &[("COGNATE_NATS_URL", url)],
    )
    .await?;
    let api = Arc::new(Api::new(daemon.addr, setup.creds));
    let plan = Plan {
        addr: daemon.addr,
        ..setup.plan.clone()
    };
    let (_, plain_client) = pool_and_client(&api, "nats-plain", None).await?;
    let (trigger_pool, trigger_client) =
        pool_and_client(&api, "nats-pre-sign-up", Some(TRIGGER_ARN)).await?;
    let worker = tokio::time::timeout(
        Duration::from_secs(30),
        cognate_worker::Worker::builder(url)
            .prefix("cognate")
            .pool(trigger_pool.clone())
            .pre_sign_up(|ev| async move { Ok::<_, cognate_worker::Refuse>(ev) })
            .build()
            .start(),
    )
    .await
    .context("the PreSignUp worker did not start within 30 s")?
    .context("starting the PreSignUp worker")?;
    // One sign-up through the trigger before measuring, so a broken setup shows as such.
    api.call(
        "SignUp",
        json!({"ClientId": trigger_client, "Username": "probe", "Password": PASSWORD}),
    )
    .await
    .context("a sign-up through the PreSignUp worker")?;
    // Interleaved halves (without, with, without, with), so a drift in what else the
    // machine does weighs on both alike.
    let half = Plan {
        duration: plan.duration / 2,
        ..plan.clone()
    };
    let mut no_trigger = sign_ups(&api, &half, &plain_client, "plain-a").await?;
    let mut with_trigger = sign_ups(&api, &half, &trigger_client, "trig-a").await?;
    no_trigger.absorb(sign_ups(&api, &half, &plain_client, "plain-b").await?);
    with_trigger.absorb(sign_ups(&api, &half, &trigger_client, "trig-b").await?);
    worker.run_until(async {}).await;
    daemon
        .terminate(Duration::from_secs(60))
        .await
        .context("stopping the daemon after the trigger phases")?;

    // (b) The outbox with cheap hashing. First a backlog: sign-ups logged by a daemon
    // without NATS, published from the start by the next one.
    eprintln!(
        "      outbox: backlog of SignUps without NATS, argon2 m={CHEAP_ARGON2_M_KIB} KiB t={CHEAP_ARGON2_T} ..."
    );
    let cheap = [
        ("COGNATE_ARGON2_M_KIB", CHEAP_ARGON2_M_KIB),
        ("COGNATE_ARGON2_T", CHEAP_ARGON2_T),
    ];
    let daemon = procs::start_daemon(
        setup.daemon_bin,
        &setup.dir.join("outbox-data"),
        &setup.dir.join("outbox-backlog-daemon.log"),
        &setup.creds.access_key,
        &setup.creds.secret,
        &cheap,
    )
    .await?;
    let api = Arc::new(Api::new(daemon.addr, setup.creds));
    let (_, client) = pool_and_client(&api, "outbox", None).await?;
    let backlog_load = sign_ups(
        &api,
        &Plan {
            addr: daemon.addr,
            ..setup.plan.clone()
        },
        &client,
        "backlog",
    )
    .await?;
    daemon
        .terminate(Duration::from_secs(60))
        .await
        .context("stopping the daemon after writing the backlog")?;

    eprintln!("      outbox: publishing the backlog, then SignUp with NATS ...");
    let daemon = procs::start_daemon(
        setup.daemon_bin,
        &setup.dir.join("outbox-data"),
        &setup.dir.join("outbox-daemon.log"),
        &setup.creds.access_key,
        &setup.creds.secret,
        &[
            ("COGNATE_NATS_URL", url),
            ("COGNATE_ARGON2_M_KIB", CHEAP_ARGON2_M_KIB),
            ("COGNATE_ARGON2_T", CHEAP_ARGON2_T),
        ],
    )
    .await?;
    let started = Instant::now();
    let backlog_start = scrape(daemon.addr, started).await?;
    let Some(backlog_end) = wait_drained(daemon.addr, started, DRAIN_LIMIT).await? else {
        bail!(
            "the outbox did not publish the backlog within {} s: {:?}",
            DRAIN_LIMIT.as_secs(),
            scrape(daemon.addr, started).await?
        );
    };
    let api = Arc::new(Api::new(daemon.addr, setup.creds));
    let plan = Plan {
        addr: daemon.addr,
        ..setup.plan.clone()
    };
    let before = scrape(daemon.addr, started).await?;
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (addr, stop) = (daemon.addr, stop.clone());
        let limit = setup.plan.duration + DRAIN_LIMIT + Duration::from_secs(30);
        tokio::spawn(async move {
            let mut samples = Vec::new();
            let end = Instant::now() + limit;
            let mut tick = tokio::time::interval(SAMPLE_EVERY);
            while Instant::now() < end && !stop.load(Ordering::Relaxed) {
                tick.tick().await;
                if let Ok(s) = scrape(addr, started).await {
                    samples.push(s);
                }
            }
            samples
        })
    };
    let sign_up = sign_ups(&api, &plan, &client, "o").await?;
    let after = scrape(daemon.addr, started).await?;
    let drained = wait_drained(daemon.addr, started, DRAIN_LIMIT).await?;
    stop.store(true, Ordering::Relaxed);
    let mut all: Vec<Sample> = sampler.await.context("the metrics sampler failed")?;
    all.extend([before, after]);
    all.extend(drained);
    let max_lag = all.iter().map(Sample::lag).max().unwrap_or(0);
    let max_events_behind = all.iter().map(|s| s.events_behind).max().unwrap_or(0);
    let max_seconds_behind = all.iter().map(|s| s.seconds_behind).fold(0.0, f64::max);
    daemon
        .terminate(Duration::from_secs(60))
        .await
        .context("stopping the daemon after the outbox phase")?;
    Ok((
        no_trigger,
        with_trigger,
        OutboxReport {
            backlog_load,
            backlog_start,
            backlog_end,
            sign_up,
            before,
            after,
            drained,
            max_lag,
            max_events_behind,
            max_seconds_behind,
            samples: all.len(),
        },
    ))
}
