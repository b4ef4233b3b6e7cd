//! Pre sign-up worker: access code, email-domain allow-list, unique nicknames.
//! Env: ACCESS_CODE, ALLOWED_DOMAINS (comma list), TAKEN_NICKNAMES (comma list).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use clap::Parser;
use cognate_example_workers::{
    Common, init_tracing, list, pre_signup::Policy, print_ready, shutdown_signal,
};
use cognate_worker::Worker;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: Common,
    #[arg(long, env = "ACCESS_CODE")]
    access_code: Option<String>,
    #[arg(long, env = "ALLOWED_DOMAINS", default_value = "")]
    allowed_domains: String,
    #[arg(long, env = "TAKEN_NICKNAMES", default_value = "")]
    taken_nicknames: String,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let args = Args::parse();
    let policy = Arc::new(Policy {
        access_code: args.access_code.filter(|c| !c.is_empty()),
        allowed_domains: list(&args.allowed_domains),
        taken: Mutex::new(
            list(&args.taken_nicknames)
                .into_iter()
                .collect::<BTreeSet<_>>(),
        ),
    });
    let running = Worker::builder(args.common.nats_url)
        .prefix(args.common.prefix)
        .pool(args.common.pool)
        .nats_settings(cognate_worker::NatsSettings::from_env())
        .pre_sign_up(move |event| {
            let policy = Arc::clone(&policy);
            async move { policy.decide(event) }
        })
        .build()
        .start()
        .await?;
    print_ready();
    running.run_until(shutdown_signal()).await;
    Ok(())
}
