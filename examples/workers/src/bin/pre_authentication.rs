//! Pre authentication worker: maintenance mode and a concurrent-session limit.
//! Env: MAINTENANCE (true/false), MAINTENANCE_FILE (on while it exists),
//! MAINTENANCE_ADMINS (comma list of usernames), MAX_SESSIONS (0: no limit),
//! SESSION_TTL_SECS (default 3600).

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use cognate_example_workers::pre_authentication::{Maintenance, Sessions, decide};
use cognate_example_workers::{Common, init_tracing, list, print_ready, shutdown_signal};
use cognate_worker::Worker;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: Common,
    #[arg(long, env = "MAINTENANCE", default_value_t = false)]
    maintenance: bool,
    #[arg(long, env = "MAINTENANCE_FILE")]
    maintenance_file: Option<std::path::PathBuf>,
    #[arg(long, env = "MAINTENANCE_ADMINS", default_value = "")]
    maintenance_admins: String,
    #[arg(long, env = "MAX_SESSIONS", default_value_t = 0)]
    max_sessions: usize,
    #[arg(long, env = "SESSION_TTL_SECS", default_value_t = 3600)]
    session_ttl_secs: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let args = Args::parse();
    let maintenance = Arc::new(Maintenance {
        flag: args.maintenance,
        flag_file: args.maintenance_file,
        admins: list(&args.maintenance_admins),
    });
    let sessions = Arc::new(Sessions::new(
        args.max_sessions,
        Duration::from_secs(args.session_ttl_secs),
    ));
    let counted = Arc::clone(&sessions);
    let running = Worker::builder(args.common.nats_url)
        .prefix(args.common.prefix)
        .pool(args.common.pool)
        .nats_settings(cognate_worker::NatsSettings::from_env())
        .durable_name("session-limit")
        .pre_authentication(move |event| {
            let (maintenance, sessions) = (Arc::clone(&maintenance), Arc::clone(&sessions));
            async move { decide(event, &maintenance, &sessions, Instant::now()) }
        })
        .post_authentication(move |event| {
            let sessions = Arc::clone(&counted);
            async move {
                sessions.record(&event.user_name, Instant::now());
                Ok(())
            }
        })
        .build()
        .start()
        .await?;
    print_ready();
    running.run_until(shutdown_signal()).await;
    Ok(())
}
