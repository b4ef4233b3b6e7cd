//! The HTTP load driver: a fixed number of keep-alive HTTP/1.1 connections, one task
//! each, every task sending its next request as soon as the previous answer is in.
//! A run ends by itself at its deadline or after its request budget, whichever comes
//! first; the requests in flight at the deadline are awaited and counted.
//!
//! It only talks to loopback addresses: it exists to measure a local daemon, and
//! refusing anything else keeps it from being pointed at someone's service.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::client::conn::http1::{self, SendRequest};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// One request to send: headers besides `host` (which the driver sets) and a body.
/// Always a `POST`: to `/` for the Cognito wire API, or to a domain's token endpoint.
#[derive(Debug, Clone)]
pub struct Request {
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

/// Builds the `n`-th request of a run (`n` counts from 0 across all connections), so
/// a phase can give every request its own user.
pub type MakeRequest = Arc<dyn Fn(u64) -> Request + Send + Sync>;

/// How hard and how long to push.
#[derive(Debug, Clone)]
pub struct Plan {
    pub addr: SocketAddr,
    pub connections: usize,
    pub duration: Duration,
    pub max_requests: u64,
    /// Longest wait for one answer; past it the request counts as failed and the
    /// connection is replaced.
    pub timeout: Duration,
}

/// What a run did.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Sequence number and latency of each request answered with a 2xx status.
    pub ok: Vec<(u64, Duration)>,
    /// Requests answered with another status, or not answered at all.
    pub failed: u64,
    /// The first failure seen, to tell a broken setup from a slow one.
    pub first_error: Option<String>,
    /// From the first request to the last answer.
    pub elapsed: Duration,
}

impl Outcome {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.ok.len() as f64 / secs
        } else {
            0.0
        }
    }

    /// Latency percentiles (`q` in 0..=1) of the successful requests, in one sort.
    pub fn percentiles(&self, qs: &[f64]) -> Vec<Option<Duration>> {
        let mut lat: Vec<Duration> = self.ok.iter().map(|(_, d)| *d).collect();
        lat.sort_unstable();
        qs.iter()
            .map(|q| {
                if lat.is_empty() {
                    return None;
                }
                // Nearest rank: the smallest latency with at least q of the samples
                // at or below it.
                let rank = (q * lat.len() as f64).ceil() as usize;
                lat.get(rank.saturating_sub(1).min(lat.len() - 1)).copied()
            })
            .collect()
    }

    /// Adds another run of the same requests: its answers, failures and duration.
    pub fn absorb(&mut self, other: Outcome) {
        self.elapsed += other.elapsed;
        self.merge(other);
    }

    pub fn fail(&mut self, error: String) {
        self.failed += 1;
        if self.first_error.is_none() {
            self.first_error = Some(error);
        }
    }

    fn merge(&mut self, other: Outcome) {
        self.ok.extend(other.ok);
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
    }
}

fn check_loopback(addr: SocketAddr) -> Result<()> {
    if !addr.ip().is_loopback() {
        bail!("the load driver only targets loopback addresses, not {addr}");
    }
    Ok(())
}

/// Runs `plan`, building each request with `make`.
pub async fn run(plan: &Plan, make: MakeRequest) -> Result<Outcome> {
    check_loopback(plan.addr)?;
    let next = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let deadline = start + plan.duration;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..plan.connections.max(1) {
        tasks.spawn(connection(
            plan.clone(),
            deadline,
            next.clone(),
            make.clone(),
        ));
    }
    let mut total = Outcome::default();
    while let Some(done) = tasks.join_next().await {
        total.merge(done.context("a load task failed")?);
    }
    total.elapsed = start.elapsed();
    Ok(total)
}

type Sender = SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream)).await?;
    // The connection future drives the socket; it ends when the sender is dropped.
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

async fn send(sender: &mut Sender, addr: SocketAddr, req: Request) -> Result<(u16, Bytes)> {
    let mut builder = hyper::Request::builder()
        .method(hyper::Method::POST)
        .uri(req.path.as_str())
        .header(hyper::header::HOST, addr.to_string());
    for (name, value) in &req.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    let request = builder.body(Full::new(req.body))?;
    sender.ready().await?;
    let response = sender.send_request(request).await?;
    let status = response.status().as_u16();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, body))
}

async fn connection(
    plan: Plan,
    deadline: Instant,
    next: Arc<AtomicU64>,
    make: MakeRequest,
) -> Outcome {
    let mut out = Outcome::default();
    let mut sender: Option<Sender> = None;
    while Instant::now() < deadline {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= plan.max_requests {
            break;
        }
        let req = make(n);
        let live = match sender.take() {
            Some(s) if !s.is_closed() => s,
            _ => match connect(plan.addr).await {
                Ok(s) => s,
                Err(e) => {
                    out.fail(format!("{e:#}"));
                    // Do not spin on a refused connection; the deadline still ends the run.
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let mut live = live;
        let started = Instant::now();
        match tokio::time::timeout(plan.timeout, send(&mut live, plan.addr, req)).await {
            Ok(Ok((status, body))) => {
                if (200..300).contains(&status) {
                    out.ok.push((n, started.elapsed()));
                } else {
                    out.fail(format!("HTTP {status}: {}", String::from_utf8_lossy(&body)));
                }
                sender = Some(live);
            }
            Ok(Err(e)) => out.fail(format!("{e:#}")),
            Err(_) => out.fail(format!("no answer within {:?}", plan.timeout)),
        }
    }
    out
}

/// Sends one request on a fresh connection and returns the status and body: for the
/// setup calls around the measured phases.
pub async fn one(addr: SocketAddr, req: Request) -> Result<(u16, Bytes)> {
    check_loopback(addr)?;
    let mut sender = connect(addr).await?;
    tokio::time::timeout(Duration::from_secs(30), send(&mut sender, addr, req))
        .await
        .context("no answer within 30 s")?
}

/// Any request on a fresh connection, with the status, headers and body: for set-up
/// steps that follow redirects and cookies by hand (the OAuth phase).
pub async fn exchange(
    addr: SocketAddr,
    method: hyper::Method,
    path: &str,
    headers: &[(&str, String)],
    body: Bytes,
) -> Result<(u16, hyper::HeaderMap, Bytes)> {
    check_loopback(addr)?;
    let mut sender = connect(addr).await?;
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string());
    for (k, v) in headers {
        builder = builder.header(*k, v.as_str());
    }
    let request = builder.body(Full::new(body))?;
    tokio::time::timeout(Duration::from_secs(30), async move {
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, headers, body))
    })
    .await
    .context("no answer within 30 s")?
}

/// `GET path` on a fresh connection (the daemon's `/metrics`), with the status and body.
pub async fn get(addr: SocketAddr, path: &str) -> Result<(u16, Bytes)> {
    check_loopback(addr)?;
    let mut sender = connect(addr).await?;
    let request = hyper::Request::builder()
        .method(hyper::Method::GET)
        .uri(path)
        .header(hyper::header::HOST, addr.to_string())
        .body(Full::new(Bytes::new()))?;
    tokio::time::timeout(Duration::from_secs(30), async move {
        sender.ready().await?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, body))
    })
    .await
    .context("no answer within 30 s")?
}
