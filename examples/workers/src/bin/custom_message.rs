//! Custom message worker: greeting by name, tone by email domain, birthday wishes.
//! Env: CORPORATE_DOMAIN (e.g. corp.example).

use clap::Parser;
use cognate_example_workers::{
    Common, custom_message::compose, init_tracing, print_ready, shutdown_signal, today_utc,
};
use cognate_worker::Worker;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: Common,
    #[arg(long, env = "CORPORATE_DOMAIN")]
    corporate_domain: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let args = Args::parse();
    let corporate = args.corporate_domain.filter(|d| !d.is_empty());
    let running = Worker::builder(args.common.nats_url)
        .prefix(args.common.prefix)
        .pool(args.common.pool)
        .nats_settings(cognate_worker::NatsSettings::from_env())
        .custom_message(move |event| {
            let corporate = corporate.clone();
            async move {
                let (_, month, day) = today_utc();
                Ok(compose(event, (month, day), corporate.as_deref()))
            }
        })
        .build()
        .start()
        .await?;
    print_ready();
    running.run_until(shutdown_signal()).await;
    Ok(())
}
