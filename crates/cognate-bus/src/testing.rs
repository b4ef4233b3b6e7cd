//! Test support (feature `testing`): a real `nats-server` with JetStream per test, that
//! can be stopped and started again on the same port and store (outage tests), and a
//! real SMTP server (Python's aiosmtpd) whose received messages the test can read.
//! Both clean up in `Drop`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

/// A free TCP port on 127.0.0.1 (bound, read and released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

fn send_signal(pid: u32, sig: &str) {
    // `kill(1)` instead of libc: the workspace forbids unsafe code.
    let _ = std::process::Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status();
}

/// A `nats-server -js` in its own temporary directory.
pub struct NatsServer {
    dir: tempfile::TempDir,
    child: Option<Child>,
    port: u16,
    /// `-c FILE`: a configuration (TLS, authorization); flags still set the port.
    config: Option<PathBuf>,
}

impl NatsServer {
    /// Starts on a free port chosen by the server itself.
    pub async fn start() -> NatsServer {
        let mut s = Self::new(0);
        s.spawn().await;
        s
    }

    /// Starts with `config` (nats-server configuration syntax) as its config file, on a
    /// free port, with JetStream storing under [`NatsServer::dir`].
    pub async fn start_with_config(config: &str) -> NatsServer {
        let mut s = Self::new(0);
        let path = s.dir.path().join("nats.conf");
        s.config = Some(path);
        s.write_config(config);
        s.spawn().await;
        s
    }

    /// Writes the config file with a `jetstream` block: a reload treats JetStream
    /// missing from the file as turned off, whatever the command line said.
    fn write_config(&self, config: &str) {
        let path = self.config.as_ref().expect("started with a config file");
        let store = self.dir.path().join("store");
        std::fs::write(
            path,
            format!(
                "{config}\njetstream {{ store_dir: \"{}\" }}\n",
                store.display()
            ),
        )
        .expect("write nats.conf");
    }

    /// The server's log so far (its stderr), e.g. to find permission violations.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("nats.log")).unwrap_or_default()
    }

    /// Replaces the config file of a server started with
    /// [`NatsServer::start_with_config`] and makes the running server reload it
    /// (SIGHUP, as an operator adding a user would); returns once the server logged
    /// the reload.
    pub async fn reload_config(&self, config: &str) {
        const RELOADED: &str = "Reloaded server configuration";
        let before = self.log().matches(RELOADED).count();
        self.write_config(config);
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("nats-server is running");
        send_signal(pid, "HUP");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.log().matches(RELOADED).count() == before {
            assert!(
                Instant::now() < deadline,
                "nats-server did not reload its configuration:\n{}",
                self.log()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// A server that will use `port` but is not running yet: its URL can be handed
    /// to clients before [`NatsServer::start_again`] starts it.
    pub fn not_started(port: u16) -> NatsServer {
        Self::new(port)
    }

    fn new(port: u16) -> NatsServer {
        let dir = tempfile::Builder::new()
            .prefix("cognate-bus-nats-")
            .tempdir()
            .expect("create temp dir");
        std::fs::create_dir_all(dir.path().join("store")).expect("create store dir");
        NatsServer {
            dir,
            child: None,
            port,
            config: None,
        }
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the server with SIGINT (its clean shutdown) and waits for the exit.
    pub async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Some(pid) = child.id() {
            send_signal(pid, "INT");
        }
        if tokio::time::timeout(Duration::from_secs(10), child.wait())
            .await
            .is_err()
        {
            let _ = child.start_kill();
            let _ = child.wait().await;
        }
    }

    /// Starts the server (again) on the same port and store directory.
    pub async fn start_again(&mut self) {
        assert!(self.child.is_none(), "nats-server is already running");
        self.spawn().await;
    }

    async fn spawn(&mut self) {
        let log_path = self.dir.path().join("nats.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open nats log");
        let port = if self.port == 0 {
            "-1".to_owned()
        } else {
            self.port.to_string()
        };
        let mut command = Command::new(
            std::env::var_os("NATS_SERVER_BIN").unwrap_or_else(|| "nats-server".into()),
        );
        match &self.config {
            // JetStream and its store are in the file (see `write_config`).
            Some(config) => command.arg("-c").arg(config),
            None => command
                .args(["-js", "-sd"])
                .arg(self.dir.path().join("store")),
        };
        let mut child = command
            .args(["-a", "127.0.0.1", "-p", &port])
            .arg("--ports_file_dir")
            .arg(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .kill_on_drop(true)
            .spawn()
            .expect("spawn nats-server (apt-get install nats-server)");
        let pid = child.id().expect("nats-server pid");
        let ports_file: PathBuf = self.dir.path().join(format!("nats-server_{pid}.ports"));
        let deadline = Instant::now() + Duration::from_secs(10);
        // The server writes the file once it listens; poll it with a deadline.
        let url = loop {
            if let Ok(text) = std::fs::read_to_string(&ports_file)
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(u) = v["nats"][0].as_str()
            {
                break u.to_owned();
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "nats-server exited early ({status}): {}",
                    std::fs::read_to_string(&log_path).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not write {}",
                ports_file.display()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        self.port = url
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("cannot parse port in {url}"));
        self.child = Some(child);
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
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
}

/// Installs aiosmtpd with pip when `python3 -c 'import aiosmtpd'` fails.
pub fn ensure_aiosmtpd() {
    let present = std::process::Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false);
    if present {
        return;
    }
    let pip = |extra: &[&str]| {
        std::process::Command::new("python3")
            .args(["-m", "pip", "install", "--quiet"])
            .args(extra)
            .arg("aiosmtpd")
            .status()
            .map(|s| s.success())
            .unwrap_or(false)
    };
    // Debian's Python refuses plain `pip install` outside a venv (PEP 668).
    assert!(
        pip(&[]) || pip(&["--break-system-packages"]),
        "cannot install aiosmtpd (pip install aiosmtpd)"
    );
}

/// A real SMTP server: `python3 -m aiosmtpd -n -l 127.0.0.1:PORT`, whose default
/// handler prints every accepted message to stdout.
pub struct SmtpServer {
    child: Child,
    port: u16,
    messages: mpsc::UnboundedReceiver<String>,
}

impl SmtpServer {
    /// Starts on a free port and waits until it accepts connections.
    pub async fn start() -> SmtpServer {
        Self::start_on(free_port()).await
    }

    pub async fn start_on(port: u16) -> SmtpServer {
        ensure_aiosmtpd();
        let mut child = Command::new("python3")
            .args(["-u", "-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn python3 -m aiosmtpd");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, messages) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            let mut current: Option<String> = None;
            while let Ok(Some(line)) = lines.next_line().await {
                if line.starts_with("---------- MESSAGE FOLLOWS") {
                    current = Some(String::new());
                } else if line.starts_with("------------ END MESSAGE") {
                    if let Some(m) = current.take() {
                        let _ = tx.send(m);
                    }
                } else if let Some(m) = current.as_mut() {
                    m.push_str(&line);
                    m.push('\n');
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        // Ready when it accepts a connection; poll with a deadline.
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!("aiosmtpd exited early ({status})");
            }
            assert!(
                Instant::now() < deadline,
                "aiosmtpd did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        SmtpServer {
            child,
            port,
            messages,
        }
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The next received message (headers and body as printed), or `None` when none
    /// arrives within `timeout`.
    pub async fn next_message(&mut self, timeout: Duration) -> Option<String> {
        tokio::time::timeout(timeout, self.messages.recv())
            .await
            .ok()
            .flatten()
    }

    /// A message received already, without waiting.
    pub fn try_message(&mut self) -> Option<String> {
        self.messages.try_recv().ok()
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
