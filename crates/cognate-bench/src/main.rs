//! `cognate-bench`: measures the daemon against baselines taken on the same machine in
//! the same run (argon2id alone, a trivial HTTP handler, one fsync per write) and prints
//! the rates, latencies and ratios against the targets in docs/benchmarks.md.
//!
//! It never fails on timing: a number below its target is printed as such, and the
//! run still exits 0. It fails only when the setup does (no daemon binary, a refused
//! admin call, no user to sign in).

mod cluster;
mod listusers;
mod load;
mod nats;
mod oauth;
mod oracle;
mod procs;
mod store;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Parser, Subcommand, ValueEnum};
use cognate_crypto::{HashPolicy, PasswordHasher};
use hyper::body::Bytes;
use serde_json::{Value, json};

use load::{Outcome, Plan, Request};

#[derive(Parser)]
#[command(
    name = "cognate-bench",
    about = "Measures the cognate daemon against this machine's baselines and prints the numbers"
)]
struct Cli {
    /// Length of each measured phase, in seconds.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Two-second phases: a smoke run, not a measurement.
    #[arg(long)]
    quick: bool,
    /// The daemon binary [default: <workspace>/target/release/cognate].
    #[arg(long)]
    daemon: Option<PathBuf>,
    /// Run only these phases (comma-separated) [default: all]. `signin` needs the
    /// users of `signup`, `getuser` a sign-in of `signin`: they bring them along.
    #[arg(long, value_delimiter = ',', value_name = "PHASE,...")]
    only: Vec<Phase>,
    /// Users in the ListUsers phase.
    #[arg(long, default_value_t = 1_000_000)]
    users: u64,
    /// Longest bulk insert of the ListUsers phase, in seconds; past it the phase goes
    /// on with the users inserted so far (and says so).
    #[arg(long, default_value_t = 900)]
    insert_budget: u64,
    /// The nats-server binary [default: $NATS_SERVER_BIN, the PATH, /usr/sbin, /usr/bin].
    #[arg(long)]
    nats_server: Option<PathBuf>,
    /// The nats-server (2.11+) of the cluster phase [default: $NATS_CLUSTER_SERVER_BIN,
    /// <workspace>/target/nats-venv/bin/nats-server].
    #[arg(long)]
    nats_cluster_server: Option<PathBuf>,
    /// Where the scratch directory goes (databases, data directories) [default:
    /// <workspace>/target/bench-tmp]: put it on the disk whose fsync you want measured.
    #[arg(long, value_name = "DIR")]
    scratch: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Cmd>,
}

/// The phases `--only` can pick, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Phase {
    /// argon2id hashes in process.
    #[value(name = "argon2")]
    Argon2,
    /// SignUp through the daemon.
    #[value(name = "signup")]
    SignUp,
    /// AdminConfirmSignUp and InitiateAuth.
    #[value(name = "signin")]
    SignIn,
    /// GetUser against the trivial handler.
    #[value(name = "getuser")]
    GetUser,
    /// Known against unknown users under PreventUserExistenceErrors: median latencies.
    #[value(name = "oracle")]
    Oracle,
    /// Group commit against one fsync per write, in process.
    #[value(name = "store")]
    Store,
    /// ListUsers over `--users` users.
    #[value(name = "listusers")]
    ListUsers,
    /// SignUp with and without a PreSignUp worker, and the outbox, with nats-server.
    #[value(name = "nats")]
    Nats,
    /// A domain's token endpoint (client_credentials, authorization-code exchange)
    /// against RS256 signing in process.
    #[value(name = "oauth")]
    OAuth,
    /// Three cluster daemons on a three-node JetStream cluster against one embedded
    /// daemon (needs nats-server 2.11+).
    #[value(name = "cluster")]
    Cluster,
}

impl Phase {
    const ALL: [Phase; 10] = [
        Phase::Argon2,
        Phase::SignUp,
        Phase::SignIn,
        Phase::GetUser,
        Phase::Oracle,
        Phase::Store,
        Phase::ListUsers,
        Phase::Nats,
        Phase::OAuth,
        Phase::Cluster,
    ];

    fn name(self) -> String {
        self.to_possible_value()
            .map_or_else(|| format!("{self:?}"), |v| v.get_name().to_owned())
    }

    /// Steps printed as `[i/n]` (GetUser has two: the daemon and the trivial handler).
    fn steps(self) -> usize {
        if self == Phase::GetUser { 2 } else { 1 }
    }
}

/// The phases to run: all, or those asked for plus what they need.
fn selected(only: &[Phase]) -> Vec<Phase> {
    if only.is_empty() {
        return Phase::ALL.to_vec();
    }
    let mut out: Vec<Phase> = only.to_vec();
    if out.contains(&Phase::GetUser) {
        out.push(Phase::SignIn);
    }
    if out.contains(&Phase::SignIn) {
        out.push(Phase::SignUp);
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// `[i/n] what ...` on stderr.
struct Steps {
    done: usize,
    total: usize,
}

impl Steps {
    fn next(&mut self, what: &str) {
        self.done += 1;
        eprintln!("[{}/{}] {what} ...", self.done, self.total);
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// The trivial HTTP handler used as a baseline (started by the benchmark itself).
    #[command(hide = true)]
    TrivialServer,
}

const PASSWORD: &str = "Passw0rd!";
const REGION: &str = "us-east-1";
const CONTENT_TYPE: &str = "application/x-amz-json-1.1";
/// Users confirmed for the sign-in phase; sign-ins cycle through them.
const SIGN_IN_USERS: usize = 256;
/// Concurrent writers in the store phases.
const STORE_WRITERS: usize = 64;
/// Requests per HTTP phase at most, so a run ends even on a machine far faster than
/// expected.
const MAX_REQUESTS: u64 = 50_000_000;

const SIGN_UP_TARGET: f64 = 0.85;
const SIGN_IN_TARGET: f64 = 0.85;
const GET_USER_TARGET: f64 = 0.25;
const GROUP_COMMIT_TARGET: f64 = 10.0;
const LIST_USERS_P99_MS: f64 = 10.0;
/// Token-endpoint answers as a share of the RS256 signatures they need.
const TOKEN_ENDPOINT_TARGET: f64 = 0.5;

fn main() -> Result<()> {
    let cli = Cli::parse();
    if let Some(Cmd::TrivialServer) = cli.command {
        return procs::trivial_server();
    }
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(bench(cli))
}

fn workspace_root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let root = manifest.join("../..");
    root.canonicalize().unwrap_or(root)
}

fn unix_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// A well-mixed 64-bit hash (splitmix64): random-looking request parameters that need
/// no generator state.
fn splitmix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The admin credentials every daemon of the run is started with.
struct Creds {
    access_key: String,
    secret: String,
}

impl Creds {
    fn generate() -> Self {
        Creds {
            access_key: format!(
                "AKIABENCH{}",
                cognate_crypto::random_string(11, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
            ),
            secret: cognate_crypto::random_string(
                40,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
            ),
        }
    }
}

/// Builds Cognito wire requests for one daemon, signed or not.
struct Api {
    addr: SocketAddr,
    host: String,
    access_key: String,
    secret: String,
}

impl Api {
    fn new(addr: SocketAddr, creds: &Creds) -> Self {
        Api {
            addr,
            host: addr.to_string(),
            access_key: creds.access_key.clone(),
            secret: creds.secret.clone(),
        }
    }

    fn unsigned(&self, op: &str, body: &Value) -> Request {
        Request {
            path: "/".into(),
            headers: vec![
                ("content-type".into(), CONTENT_TYPE.into()),
                (
                    "x-amz-target".into(),
                    format!("AWSCognitoIdentityProviderService.{op}"),
                ),
            ],
            body: Bytes::from(body.to_string()),
        }
    }

    /// SigV4-signed as the AWS SDKs sign admin calls.
    fn signed(&self, op: &str, body: &Value) -> Request {
        let mut req = self.unsigned(op, body);
        let mut to_sign = req.headers.clone();
        to_sign.push(("host".into(), self.host.clone()));
        let added = cognate_crypto::sigv4::sign(
            "POST",
            &self.host,
            "/",
            "",
            &to_sign,
            &req.body,
            unix_secs(),
            REGION,
            "cognito-idp",
            &self.access_key,
            &self.secret,
        );
        req.headers.extend(added);
        req
    }

    async fn send(&self, req: Request, op: &str) -> Result<Value> {
        let (status, body) = load::one(self.addr, req).await?;
        if !(200..300).contains(&status) {
            bail!("{op}: HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        serde_json::from_slice(&body).with_context(|| format!("{op}: response is not JSON"))
    }

    async fn admin(&self, op: &str, body: Value) -> Result<Value> {
        self.send(self.signed(op, &body), op).await
    }

    async fn call(&self, op: &str, body: Value) -> Result<Value> {
        self.send(self.unsigned(op, &body), op).await
    }
}

fn text(v: &Value, path: &[&str]) -> Result<String> {
    path.iter()
        .try_fold(v, |v, key| v.get(key))
        .and_then(Value::as_str)
        .map(str::to_owned)
        .ok_or_else(|| anyhow!("no {} in {v}", path.join(".")))
}

/// argon2id hashes per second with the daemon's default policy, the pool kept busy by
/// twice as many callers as it runs at once (as a queue of requests keeps it busy).
async fn argon2_baseline(duration: Duration) -> Result<Outcome> {
    let hasher = PasswordHasher::new(HashPolicy::default()).map_err(|e| anyhow!("{e}"))?;
    let callers = hasher.policy().max_concurrent * 2;
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..callers {
        let hasher = hasher.clone();
        tasks.spawn(async move {
            let mut out = Outcome::default();
            while Instant::now() < deadline {
                let t = Instant::now();
                match hasher.hash(PASSWORD.to_owned()).await {
                    Ok(_) => out.ok.push((0, t.elapsed())),
                    Err(e) => {
                        out.failed += 1;
                        out.first_error.get_or_insert_with(|| e.to_string());
                    }
                }
            }
            out
        });
    }
    let mut total = Outcome::default();
    while let Some(done) = tasks.join_next().await {
        let o = done.context("a hashing task failed")?;
        total.ok.extend(o.ok);
        total.failed += o.failed;
        total.first_error = total.first_error.or(o.first_error);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

/// One line of the measurements table.
struct Row {
    name: String,
    ok: u64,
    failed: u64,
    rate: f64,
    p50: Option<Duration>,
    p99: Option<Duration>,
    first_error: Option<String>,
}

impl Row {
    fn http(name: &str, o: &Outcome) -> Self {
        let p = o.percentiles(&[0.50, 0.99]);
        Row {
            name: name.into(),
            ok: o.ok.len() as u64,
            failed: o.failed,
            rate: o.rate(),
            p50: p.first().copied().flatten(),
            p99: p.get(1).copied().flatten(),
            first_error: o.first_error.clone(),
        }
    }

    /// Sequential requests: their count, and the median and p99 of their latencies.
    fn latencies(name: &str, xs: &[Duration]) -> Self {
        let mut v = xs.to_vec();
        v.sort_unstable();
        let at = |q: f64| {
            v.get(((v.len() as f64 - 1.0) * q).round() as usize)
                .copied()
        };
        let total: f64 = v.iter().map(Duration::as_secs_f64).sum();
        Row {
            name: name.into(),
            ok: v.len() as u64,
            failed: 0,
            rate: if total > 0.0 {
                v.len() as f64 / total
            } else {
                0.0
            },
            p50: at(0.5),
            p99: at(0.99),
            first_error: None,
        }
    }

    fn store(name: &str, o: &store::StoreOutcome) -> Self {
        Row {
            name: name.into(),
            ok: o.ok,
            failed: o.failed,
            rate: o.rate(),
            p50: None,
            p99: None,
            first_error: o.first_error.clone(),
        }
    }
}

/// What a comparison's value is and how it is judged.
#[derive(Clone, Copy)]
enum Target {
    /// A share of a baseline, shown as a percentage; at least this.
    AtLeastShare(f64),
    /// A multiple of a baseline (`12.3x`); at least this.
    AtLeastTimes(f64),
    /// A latency in milliseconds; below this.
    BelowMs(f64),
    /// A share of a baseline with no target: reported only.
    Share,
    /// A ratio that should lie within these bounds.
    Within(f64, f64),
}

/// One line of the comparisons table.
struct Check {
    name: String,
    value: f64,
    target: Target,
}

impl Check {
    fn new(name: &str, value: f64, target: Target) -> Self {
        Check {
            name: name.into(),
            value,
            target,
        }
    }
}

fn ratio(a: f64, b: f64) -> f64 {
    if b > 0.0 { a / b } else { 0.0 }
}

fn ms(d: Option<Duration>) -> String {
    d.map_or_else(|| "-".into(), |d| format!("{:.2}", d.as_secs_f64() * 1e3))
}

fn print_check(c: &Check) {
    let pct = |v: f64| format!("{:.1}%", v * 100.0);
    let verdict = |ok: bool| if ok { "meets target" } else { "BELOW target" };
    let (value, target, status) = match c.target {
        Target::AtLeastShare(t) => (
            pct(c.value),
            format!(">= {:.0}%", t * 100.0),
            verdict(c.value >= t),
        ),
        Target::AtLeastTimes(t) => (
            format!("{:.1}x", c.value),
            format!(">= {t:.0}x"),
            verdict(c.value >= t),
        ),
        Target::BelowMs(t) => (
            format!("{:.2}", c.value),
            format!("< {t:.0}"),
            if c.value < t {
                "meets target"
            } else {
                "ABOVE target"
            },
        ),
        Target::Share => (pct(c.value), "-".to_owned(), "no target (reported)"),
        Target::Within(lo, hi) => (
            format!("{:.3}", c.value),
            format!("{lo}-{hi}"),
            if (lo..=hi).contains(&c.value) {
                "meets target"
            } else {
                "OUTSIDE target"
            },
        ),
    };
    println!("{:<34} {:>9} {:>9}  {status}", c.name, value, target);
}

fn print_report(rows: &[Row], checks: &[Check]) {
    println!();
    println!(
        "{:<34} {:>9} {:>7} {:>11} {:>9} {:>9}",
        "phase", "ok", "failed", "rate/s", "p50 ms", "p99 ms"
    );
    for r in rows {
        println!(
            "{:<34} {:>9} {:>7} {:>11.1} {:>9} {:>9}",
            r.name,
            r.ok,
            r.failed,
            r.rate,
            ms(r.p50),
            ms(r.p99)
        );
    }
    let (latencies, ratios): (Vec<&Check>, Vec<&Check>) = checks
        .iter()
        .partition(|c| matches!(c.target, Target::BelowMs(_)));
    if !ratios.is_empty() {
        println!();
        println!(
            "{:<34} {:>9} {:>9}  status",
            "comparison", "ratio", "target"
        );
        ratios.into_iter().for_each(print_check);
    }
    if !latencies.is_empty() {
        println!();
        println!("{:<34} {:>9} {:>9}  status", "latency", "ms", "target ms");
        latencies.into_iter().for_each(print_check);
    }
    let errors: Vec<&Row> = rows.iter().filter(|r| r.first_error.is_some()).collect();
    if !errors.is_empty() {
        println!();
        println!("first error per phase:");
        for r in errors {
            if let Some(e) = &r.first_error {
                let e: String = e.chars().take(300).collect();
                println!("  {}: {e}", r.name);
            }
        }
    }
}

fn mib(kib: Option<u64>) -> String {
    kib.map_or_else(
        || "unavailable".into(),
        |k| format!("{:.1} MiB", k as f64 / 1024.0),
    )
}

async fn bench(cli: Cli) -> Result<()> {
    let started = Instant::now();
    let phase = Duration::from_secs(if cli.quick { 2 } else { cli.seconds.max(1) });
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let connections = 4 * cores;
    let root = workspace_root();
    let daemon_bin = cli
        .daemon
        .clone()
        .unwrap_or_else(|| root.join("target/release/cognate"));
    let phases = selected(&cli.only);
    let runs = |p: Phase| phases.contains(&p);
    // Before anything long runs: a missing nats-server is a setup failure.
    let nats_bin = if runs(Phase::Nats) {
        Some(procs::find_nats_server(cli.nats_server.as_deref())?)
    } else {
        None
    };
    let cluster_nats_bin = if runs(Phase::Cluster) {
        Some(procs::find_cluster_nats_server(
            cli.nats_cluster_server.as_deref(),
            &root,
        )?)
    } else {
        None
    };
    // On the real disk (not a tmpfs /tmp) so fsync costs what it costs in production.
    let tmp_base = cli
        .scratch
        .clone()
        .unwrap_or_else(|| root.join("target/bench-tmp"));
    std::fs::create_dir_all(&tmp_base)
        .with_context(|| format!("creating {}", tmp_base.display()))?;
    let run_dir = tempfile::Builder::new()
        .prefix("run-")
        .tempdir_in(&tmp_base)
        .context("creating the run directory")?;

    println!(
        "cognate-bench: {cores} cores, {} s per phase, {connections} HTTP connections, {STORE_WRITERS} store writers",
        phase.as_secs()
    );
    println!("daemon: {}", daemon_bin.display());
    println!("scratch: {}", run_dir.path().display());
    println!(
        "phases: {}",
        phases
            .iter()
            .map(|p| p.name())
            .collect::<Vec<_>>()
            .join(", ")
    );

    let mut steps = Steps {
        done: 0,
        total: phases.iter().map(|p| p.steps()).sum(),
    };
    let mut rows = Vec::new();
    let mut checks = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    let creds = Creds::generate();
    let plan = Plan {
        addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        connections,
        duration: phase,
        max_requests: MAX_REQUESTS,
        timeout: Duration::from_secs(30),
    };

    // 1. What argon2id alone does on this machine.
    let argon = if runs(Phase::Argon2) {
        steps.next("argon2id baseline");
        let argon = argon2_baseline(phase).await?;
        rows.push(Row::http("argon2id hash (in process)", &argon));
        Some(argon)
    } else {
        None
    };
    let argon_rate = argon.as_ref().map(Outcome::rate);

    // 2-4. Sign-ups, sign-ins and GetUser through one daemon.
    let mut peak_rss = None;
    if runs(Phase::SignUp) {
        let (daemon_rows, daemon_checks, rss) = daemon_phases(
            &daemon_bin,
            run_dir.path(),
            &creds,
            &plan,
            &phases,
            argon_rate,
            &mut steps,
        )
        .await?;
        rows.extend(daemon_rows);
        checks.extend(daemon_checks);
        peak_rss = rss;
    }

    // Existence oracle: known and unknown users, one request at a time.
    if runs(Phase::Oracle) {
        steps.next("known vs unknown users (PreventUserExistenceErrors)");
        let pairs = oracle::run(oracle::Setup {
            daemon_bin: &daemon_bin,
            dir: run_dir.path(),
            creds: &creds,
            samples: if cli.quick { 20 } else { 100 },
        })
        .await?;
        for p in &pairs {
            rows.push(Row::latencies(&format!("{}: known", p.op), &p.known));
            rows.push(Row::latencies(&format!("{}: unknown", p.op), &p.unknown));
            checks.push(Check::new(
                &format!("{} known/unknown p50", p.op),
                p.ratio(),
                Target::Within(0.9, 1.1),
            ));
        }
    }

    // 5. Durable writes in process: group commit against one fsync per write.
    let mut store_runs = None;
    if runs(Phase::Store) {
        steps.next("store group commit vs fsync per write");
        let grouped = store::run(run_dir.path(), 512, STORE_WRITERS, phase).await?;
        let single = store::run(run_dir.path(), 1, STORE_WRITERS, phase).await?;
        rows.push(Row::store("store SignUp, max_batch 512", &grouped));
        rows.push(Row::store("store SignUp, max_batch 1", &single));
        checks.push(Check::new(
            "group commit / fsync per write",
            ratio(grouped.rate(), single.rate()),
            Target::AtLeastTimes(GROUP_COMMIT_TARGET),
        ));
        store_runs = Some((grouped, single));
    }

    // 6. ListUsers over many users.
    if runs(Phase::ListUsers) {
        steps.next(&format!("ListUsers over {} users", cli.users));
        let r = listusers::run(
            listusers::Setup {
                daemon_bin: &daemon_bin,
                dir: run_dir.path(),
                creds: &creds,
                plan: plan.clone(),
            },
            cli.users.max(1),
            Duration::from_secs(cli.insert_budget.max(1)),
        )
        .await?;
        rows.push(Row {
            name: "bulk insert (store, in process)".into(),
            ok: r.users - r.insert_failed.min(r.users),
            failed: r.insert_failed,
            rate: r.insert_rate(),
            p50: None,
            p99: None,
            first_error: r.insert_first_error.clone(),
        });
        rows.push(Row::http("ListUsers email ^= (prefix)", &r.prefix));
        rows.push(Row::http("ListUsers email = (equality)", &r.equality));
        let p99 = r.prefix.percentiles(&[0.99]).first().copied().flatten();
        checks.push(Check::new(
            &format!("ListUsers ^= p99, {} users", r.users),
            p99.map_or(f64::INFINITY, |d| d.as_secs_f64() * 1e3),
            Target::BelowMs(LIST_USERS_P99_MS),
        ));
        notes.extend(list_users_notes(&r));
    }

    // 7. NATS: triggers and the outbox.
    if let Some(nats_bin) = nats_bin.as_deref() {
        steps.next("NATS: PreSignUp worker and outbox");
        let r = nats::run(nats::Setup {
            daemon_bin: &daemon_bin,
            nats_bin,
            dir: run_dir.path(),
            creds: &creds,
            plan: plan.clone(),
        })
        .await?;
        rows.push(Row::http("SignUp, NATS, no trigger", &r.no_trigger));
        rows.push(Row::http("SignUp, NATS, PreSignUp worker", &r.with_trigger));
        let o = &r.outbox;
        let cheap = format!("m={} t={}", nats::CHEAP_ARGON2_M_KIB, nats::CHEAP_ARGON2_T);
        let published = |from: &nats::Sample, to: &nats::Sample, name: &str, rate: f64| Row {
            name: name.into(),
            ok: to.published.saturating_sub(from.published),
            failed: 0,
            rate,
            p50: None,
            p99: None,
            first_error: None,
        };
        rows.push(Row::http(
            &format!("SignUp, no NATS, argon2 {cheap}"),
            &o.backlog_load,
        ));
        rows.push(published(
            &o.backlog_start,
            &o.backlog_end,
            "outbox: that backlog -> JetStream",
            o.backlog_rate(),
        ));
        rows.push(Row::http(
            &format!("SignUp, NATS, argon2 {cheap}"),
            &o.sign_up,
        ));
        rows.push(published(
            &o.before,
            &o.after,
            "outbox: during that SignUp load",
            o.published_rate(),
        ));
        checks.push(Check::new(
            "SignUp PreSignUp / no trigger",
            ratio(r.with_trigger.rate(), r.no_trigger.rate()),
            Target::Share,
        ));
        notes.extend(nats_notes(&r));
    }

    // The token endpoint against RS256 signing.
    if runs(Phase::OAuth) {
        steps.next("token endpoint: client_credentials and code exchange vs RS256 signing");
        let r = oauth::run(oauth::Setup {
            daemon_bin: &daemon_bin,
            dir: run_dir.path(),
            creds: &creds,
            plan: &plan,
            codes: if cli.quick { 1_200 } else { 6_000 },
        })
        .await?;
        rows.push(Row::http("RS256 signatures (in process)", &r.signing));
        rows.push(Row::http(
            "/oauth2/token client_credentials",
            &r.client_credentials,
        ));
        rows.push(Row::http(
            "/oauth2/authorize, signed in (setup)",
            &r.code_made,
        ));
        rows.push(Row::http(
            "/oauth2/token authorization_code",
            &r.code_exchange,
        ));
        let signing = r.signing.rate();
        checks.push(Check::new(
            "client_credentials / RS256 (1 token each)",
            ratio(r.client_credentials.rate(), signing),
            Target::AtLeastShare(TOKEN_ENDPOINT_TARGET),
        ));
        checks.push(Check::new(
            "code exchange x2 / RS256 (2 tokens each)",
            ratio(2.0 * r.code_exchange.rate(), signing),
            Target::AtLeastShare(TOKEN_ENDPOINT_TARGET),
        ));
        if r.code_exchange.ok.len() as u64 >= r.code_made.ok.len() as u64 {
            notes.push(format!(
                "code exchange: all {} codes made beforehand were exchanged before the phase's end; its rate covers {:.1} s",
                r.code_made.ok.len(),
                r.code_exchange.elapsed.as_secs_f64()
            ));
        }
    }

    if let Some(nats_bin) = cluster_nats_bin.as_deref() {
        steps.next("cluster (3 daemons, 3 NATS nodes) vs embedded");
        let r = cluster::run(cluster::Setup {
            daemon_bin: &daemon_bin,
            nats_bin,
            dir: run_dir.path(),
            creds: &creds,
            plan: plan.clone(),
        })
        .await?;
        for m in [&r.embedded, &r.cluster] {
            rows.push(Row::http(&format!("{}: SignUp", m.name), &m.sign_up));
            rows.push(Row::http(
                &format!("{}: AdminUpdateUserAttributes", m.name),
                &m.update,
            ));
            for (i, g) in m.get_user.iter().enumerate() {
                rows.push(Row::http(&format!("{}: GetUser, daemon {i}", m.name), g));
            }
            if let Some(argon) = argon_rate {
                checks.push(Check::new(
                    &format!("{}: SignUp / argon2id", m.name),
                    ratio(m.sign_up.rate(), argon),
                    Target::AtLeastShare(SIGN_UP_TARGET),
                ));
            }
        }
        rows.push(Row::latencies(
            "cluster: replication lag (ack -> applied elsewhere)",
            &r.lag,
        ));
        checks.push(Check::new(
            "cluster/embedded AdminUpdateUserAttributes",
            ratio(r.cluster.update.rate(), r.embedded.update.rate()),
            Target::Share,
        ));
        if let Some((n, secs)) = r.cluster.appends {
            let commands = r.cluster.update.ok.len() as f64;
            notes.push(format!(
                "cluster: {n} appends to COGNATE_LOG during the update phase ({:.1} commands each), {:.2} ms each on average; {} conflicts (decided again) in the whole run",
                ratio(commands, n as f64),
                if n > 0 { secs * 1e3 / n as f64 } else { 0.0 },
                r.cluster.conflicts.unwrap_or(0)
            ));
        }
    }

    print_report(&rows, &checks);
    if let Some((grouped, single)) = &store_runs {
        println!();
        println!(
            "store commits: max_batch 512: {} transactions ({:.1} writes each); max_batch 1: {} transactions",
            grouped.batches,
            ratio(grouped.ok as f64, grouped.batches as f64),
            single.batches
        );
    }
    if runs(Phase::GetUser) {
        match peak_rss {
            Some(kib) => println!("daemon peak RSS (VmHWM): {:.1} MiB", kib as f64 / 1024.0),
            None => println!("daemon peak RSS (VmHWM): unavailable"),
        }
    }
    for n in &notes {
        println!("{n}");
    }
    println!("total run time: {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

fn list_users_notes(r: &listusers::Report) -> Vec<String> {
    let mut out = vec![String::new()];
    out.push(format!(
        "ListUsers: {} users in one pool{}",
        r.users,
        if r.budget_hit {
            format!(
                " (of {} asked for: the insert budget ran out; rate below)",
                r.requested
            )
        } else {
            String::new()
        }
    ));
    out.push(format!(
        "  bulk insert (in process, CreateUser, max_batch 4096, 8192 in flight): {:.1} s, {:.0} users/s, {} transactions",
        r.insert_elapsed.as_secs_f64(),
        r.insert_rate(),
        r.insert_transactions
    ));
    out.push(format!(
        "  database file: {:.1} MiB ({:.0} bytes per user)",
        r.db_bytes as f64 / (1024.0 * 1024.0),
        ratio(r.db_bytes as f64, r.users as f64)
    ));
    out.push(format!(
        "  cognate rebuild of that data: {:.1} s ({:.0} users/s): {}",
        r.rebuild.as_secs_f64(),
        ratio(r.users as f64, r.rebuild.as_secs_f64()),
        r.rebuild_output
    ));
    out.push(format!(
        "  daemon restart on that data: ready in {:.2} s; RSS idle: VmRSS {}, VmHWM {}",
        r.restart.as_secs_f64(),
        mib(r.idle_rss_kib),
        mib(r.idle_hwm_kib)
    ));
    out.push(format!(
        "  RSS after the ListUsers load: VmRSS {}, VmHWM {}",
        mib(r.after_rss_kib),
        mib(r.after_hwm_kib)
    ));
    out.push(format!(
        "  prefix filters: a random user's email cut to 7, 6 or 5 digits (1, 10 or 60 of 100 users per page, Limit 60; mean {:.1} users per answer)",
        listusers::mean_prefix_hits(r, r.prefix.ok.len() as u64 + r.prefix.failed)
    ));
    let probes: Vec<String> = r
        .probes
        .iter()
        .map(|p| match (&p.got, &p.error) {
            (Some(n), _) if *n == p.expected => format!("{} -> {n}", p.filter),
            (Some(n), _) => format!("{} -> {n} UNEXPECTED (expected {})", p.filter, p.expected),
            (None, e) => format!("{} -> error {}", p.filter, e.as_deref().unwrap_or("?")),
        })
        .collect();
    out.push(format!("  answers checked: {}", probes.join("; ")));
    out
}

fn nats_notes(r: &nats::Report) -> Vec<String> {
    let o = &r.outbox;
    let mut out = vec![String::new()];
    out.push(format!(
        "NATS: {}, JetStream store on the scratch disk",
        r.nats_version
    ));
    out.push(format!(
        "  SignUp, default argon2, same connections: {:.1}/s with a PreSignUp worker, {:.1}/s without ({:.1}%)",
        r.with_trigger.rate(),
        r.no_trigger.rate(),
        ratio(r.with_trigger.rate(), r.no_trigger.rate()) * 100.0
    ));
    out.push(format!(
        "  outbox (daemon with COGNATE_ARGON2_M_KIB={} COGNATE_ARGON2_T={}, so hashing is not the limit):",
        nats::CHEAP_ARGON2_M_KIB,
        nats::CHEAP_ARGON2_T
    ));
    out.push(format!(
        "    backlog: {} events logged with NATS off, published and acknowledged by the next daemon at {:.0} events/s ({:.2} s)",
        o.backlog_end.published.saturating_sub(o.backlog_start.published),
        o.backlog_rate(),
        o.backlog_end.at.saturating_sub(o.backlog_start.at).as_secs_f64()
    ));
    out.push(format!(
        "    during the SignUp load ({:.1} s): {:.0} events/s logged, {:.0} events/s published and acknowledged by JetStream",
        o.after.at.saturating_sub(o.before.at).as_secs_f64(),
        o.logged_rate(),
        o.published_rate()
    ));
    out.push(format!(
        "    lag (logged - acknowledged): max {} events, {} at the end of the load; max cognate_outbox_events_behind {}, max cognate_outbox_seconds_behind {:.2} s ({} scrapes)",
        o.max_lag,
        o.after.lag(),
        o.max_events_behind,
        o.max_seconds_behind,
        o.samples
    ));
    match (o.drain(), o.overall_rate(), o.drained) {
        (Some(d), Some(rate), Some(s)) => out.push(format!(
            "    drained {:.2} s after the load stopped ({} events in the log, all acknowledged); {:.0} events/s from the start of the load until drained",
            d.as_secs_f64(),
            s.log_seq,
            rate
        )),
        _ => out.push(format!(
            "    NOT drained within {} s of the load stopping",
            180
        )),
    }
    out
}

/// SignUp, then (if selected) AdminConfirmSignUp + InitiateAuth and GetUser against the
/// trivial handler: the daemon phases of the original benchmark, unchanged.
async fn daemon_phases(
    daemon_bin: &std::path::Path,
    dir: &std::path::Path,
    creds: &Creds,
    base_plan: &Plan,
    phases: &[Phase],
    argon_rate: Option<f64>,
    steps: &mut Steps,
) -> Result<(Vec<Row>, Vec<Check>, Option<u64>)> {
    let mut rows = Vec::new();
    let mut checks = Vec::new();
    steps.next("SignUp");
    let daemon = procs::start_daemon(
        daemon_bin,
        &dir.join("data"),
        &dir.join("daemon.log"),
        &creds.access_key,
        &creds.secret,
        &[],
    )
    .await?;
    let api = Arc::new(Api::new(daemon.addr, creds));
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
                "ExplicitAuthFlows": ["ALLOW_USER_PASSWORD_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"],
            }),
        )
        .await?;
    let client_id = text(&client, &["UserPoolClient", "ClientId"])?;

    let plan = Plan {
        addr: daemon.addr,
        ..base_plan.clone()
    };
    let sign_up = {
        let (api, client_id) = (api.clone(), client_id.clone());
        load::run(
            &plan,
            Arc::new(move |n| {
                api.unsigned(
                    "SignUp",
                    &json!({"ClientId": client_id, "Username": format!("u{n}"), "Password": PASSWORD}),
                )
            }),
        )
        .await?
    };
    rows.push(Row::http("SignUp", &sign_up));
    if let Some(argon) = argon_rate {
        checks.push(Check::new(
            "SignUp / argon2id",
            ratio(sign_up.rate(), argon),
            Target::AtLeastShare(SIGN_UP_TARGET),
        ));
    }
    if !phases.contains(&Phase::SignIn) {
        daemon.stop().await;
        return Ok((rows, checks, None));
    }

    // Sign-ins, after confirming some of those users.
    steps.next("AdminConfirmSignUp + InitiateAuth");
    let mut signed_up: Vec<u64> = sign_up.ok.iter().map(|(n, _)| *n).collect();
    signed_up.sort_unstable();
    signed_up.truncate(SIGN_IN_USERS);
    let signed_up = Arc::new(signed_up);
    let confirm = {
        let (api, pool_id, users) = (api.clone(), pool_id.clone(), signed_up.clone());
        load::run(
            &Plan {
                duration: Duration::from_secs(120),
                max_requests: users.len() as u64,
                ..plan.clone()
            },
            Arc::new(move |i| {
                let n = usize::try_from(i)
                    .ok()
                    .and_then(|i| users.get(i))
                    .copied()
                    .unwrap_or(0);
                api.signed(
                    "AdminConfirmSignUp",
                    &json!({"UserPoolId": pool_id, "Username": format!("u{n}")}),
                )
            }),
        )
        .await?
    };
    rows.push(Row::http("AdminConfirmSignUp (setup)", &confirm));
    let confirmed: Vec<u64> = confirm
        .ok
        .iter()
        .filter_map(|(i, _)| usize::try_from(*i).ok().and_then(|i| signed_up.get(i)))
        .copied()
        .collect();
    if confirmed.is_empty() {
        bail!(
            "no user could be signed up and confirmed; sign-up: {:?}, confirm: {:?}",
            sign_up.first_error,
            confirm.first_error
        );
    }
    let confirmed = Arc::new(confirmed);
    let sign_in_body = |user: u64, client_id: &str| {
        json!({
            "AuthFlow": "USER_PASSWORD_AUTH",
            "ClientId": client_id,
            "AuthParameters": {"USERNAME": format!("u{user}"), "PASSWORD": PASSWORD},
        })
    };
    let sign_in = {
        let (api, client_id, users) = (api.clone(), client_id.clone(), confirmed.clone());
        load::run(
            &plan,
            Arc::new(move |n| {
                let user = usize::try_from(n)
                    .ok()
                    .and_then(|n| users.get(n % users.len()))
                    .copied()
                    .unwrap_or(0);
                api.unsigned("InitiateAuth", &sign_in_body(user, &client_id))
            }),
        )
        .await?
    };
    rows.push(Row::http("InitiateAuth", &sign_in));

    if let Some(argon) = argon_rate {
        checks.push(Check::new(
            "InitiateAuth / argon2id",
            ratio(sign_in.rate(), argon),
            Target::AtLeastShare(SIGN_IN_TARGET),
        ));
    }
    if !phases.contains(&Phase::GetUser) {
        daemon.stop().await;
        return Ok((rows, checks, None));
    }

    // GetUser with one access token, then the same load on a trivial handler.
    steps.next("GetUser");
    let first = confirmed.first().copied().unwrap_or(0);
    let auth = api
        .call("InitiateAuth", sign_in_body(first, &client_id))
        .await?;
    let token = text(&auth, &["AuthenticationResult", "AccessToken"])?;
    let get_user_req = api.unsigned("GetUser", &json!({"AccessToken": token}));
    let get_user = {
        let req = get_user_req.clone();
        load::run(&plan, Arc::new(move |_| req.clone())).await?
    };
    rows.push(Row::http("GetUser", &get_user));
    let peak_rss = daemon.peak_rss_kib();
    daemon.stop().await;

    steps.next("trivial handler");
    let trivial = procs::start_trivial().await?;
    let trivial_out = {
        let req = get_user_req.clone();
        load::run(
            &Plan {
                addr: trivial.addr,
                ..plan.clone()
            },
            Arc::new(move |_| req.clone()),
        )
        .await?
    };
    trivial.stop().await;
    rows.push(Row::http("trivial handler (same requests)", &trivial_out));
    checks.push(Check::new(
        "GetUser / trivial handler",
        ratio(get_user.rate(), trivial_out.rate()),
        Target::AtLeastShare(GET_USER_TARGET),
    ));
    Ok((rows, checks, peak_rss))
}
