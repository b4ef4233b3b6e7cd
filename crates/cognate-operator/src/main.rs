//! The `cognate-operator` binary: flags and environment, logging, the health/metrics
//! server, Lease leader election, then the UserPool and AppClient controllers while this
//! replica leads.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::Parser;
use cognate_operator::admin::Credentials;
use cognate_operator::http::{Health, router};
use cognate_operator::lease::LeaseLock;
use cognate_operator::{Context, DaemonDefaults};
use k8s_openapi::api::coordination::v1::Lease;
use kube::Api;

#[derive(Parser)]
#[command(
    name = "cognate-operator",
    version,
    about = "Reconciles UserPool and AppClient resources into a cognate daemon"
)]
struct Args {
    /// Address of /healthz, /readyz and /metrics.
    #[arg(long, env = "COGNATE_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Daemon for resources without spec.daemon (the chart's daemon).
    #[arg(long, env = "COGNATE_DAEMON_ENDPOINT")]
    daemon_endpoint: Option<String>,
    /// Base of token issuers of that daemon (its --public-url); defaults to the endpoint.
    #[arg(long, env = "COGNATE_DAEMON_PUBLIC_URL")]
    daemon_public_url: Option<String>,
    /// SigV4 region of that daemon.
    #[arg(long, env = "COGNATE_REGION", default_value = "us-east-1")]
    region: String,
    /// Namespace of the leader-election Lease.
    #[arg(long, env = "COGNATE_OPERATOR_NAMESPACE", default_value = "default")]
    namespace: String,
    /// Name of the leader-election Lease.
    #[arg(
        long,
        env = "COGNATE_OPERATOR_LEASE",
        default_value = "cognate-operator"
    )]
    lease_name: String,
    /// This replica's identity in the Lease (the pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Seconds a Lease stays valid without renewal.
    #[arg(long, env = "COGNATE_OPERATOR_LEASE_SECONDS", default_value_t = 15)]
    lease_seconds: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    init_tracing();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if std::env::var("COGNATE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(args: Args) -> Result<()> {
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration (in-cluster or KUBECONFIG)")?;
    let defaults = match &args.daemon_endpoint {
        Some(endpoint) => Some(DaemonDefaults {
            endpoint: endpoint.clone(),
            public_url: args.daemon_public_url.clone(),
            region: args.region.clone(),
            credentials: Credentials {
                access_key_id: std::env::var("COGNATE_ADMIN_ACCESS_KEY_ID").context(
                    "COGNATE_ADMIN_ACCESS_KEY_ID is required with COGNATE_DAEMON_ENDPOINT",
                )?,
                secret_access_key: std::env::var("COGNATE_ADMIN_SECRET_ACCESS_KEY").context(
                    "COGNATE_ADMIN_SECRET_ACCESS_KEY is required with COGNATE_DAEMON_ENDPOINT",
                )?,
            },
        }),
        None => None,
    };
    let identity = args
        .identity
        .clone()
        .unwrap_or_else(|| format!("cognate-operator-{}", std::process::id()));
    let ctx = Arc::new(Context::new(
        client.clone(),
        defaults,
        Some(identity.clone()),
    ));
    let health = Health {
        metrics: ctx.metrics.clone(),
        ready: Arc::new(AtomicBool::new(false)),
        leading: Arc::new(AtomicBool::new(false)),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("bind {}", args.listen))?;
    tracing::info!(listen = %args.listen, "health and metrics listening");
    let app = router(health.clone());
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "health server stopped");
        }
    });

    let lock = LeaseLock::new(
        Api::<Lease>::namespaced(client, &args.namespace),
        &args.lease_name,
        &identity,
        Duration::from_secs(args.lease_seconds.max(3)),
    );
    let retry = lock.ttl() / 3;
    health.ready.store(true, Ordering::Relaxed);
    // Stand by until the Lease is ours.
    loop {
        match lock.try_acquire_or_renew().await {
            Ok(true) => break,
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader election"),
        }
        tokio::select! {
            _ = tokio::time::sleep(retry) => {}
            _ = tokio::signal::ctrl_c() => return Ok(()),
        }
    }
    health.leading.store(true, Ordering::Relaxed);
    tracing::info!(identity = %identity, lease = %args.lease_name, "leading; starting controllers");

    let renew = async {
        let mut last_ok = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(retry).await;
            match lock.try_acquire_or_renew().await {
                Ok(true) => last_ok = tokio::time::Instant::now(),
                Ok(false) => return "another replica holds the Lease",
                Err(e) => tracing::warn!(error = %e, "renewing the Lease"),
            }
            // Stop before the Lease can expire, so two leaders never overlap.
            if last_ok.elapsed() >= lock.ttl() - retry {
                return "could not renew the Lease in time";
            }
        }
    };
    tokio::select! {
        why = renew => {
            tracing::error!(why, "lost leadership; exiting so a fresh process can stand by");
            std::process::exit(1);
        }
        _ = cognate_operator::run_controllers(ctx) => {
            tracing::info!("controllers stopped");
        }
    }
    if let Err(e) = lock.release().await {
        tracing::warn!(error = %e, "releasing the Lease");
    }
    Ok(())
}
