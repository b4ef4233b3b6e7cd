//! Post authentication worker: counts sign-ins and mails a new-sign-in notice.
//! Env: NOTIFY_EVERY_SIGN_IN (true: notice on every sign-in, not only new devices).

use std::sync::Arc;

use clap::Parser;
use cognate_example_workers::post_authentication::{Counter, notice};
use cognate_example_workers::{
    Common, connect, init_tracing, print_ready, send_email, shutdown_signal,
};
use cognate_worker::Worker;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: Common,
    #[arg(long, env = "NOTIFY_EVERY_SIGN_IN", default_value_t = false)]
    notify_every_sign_in: bool,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let args = Args::parse();
    let client = connect(&args.common.nats_url).await?;
    let counter = Arc::new(Counter::default());
    let (prefix, every) = (args.common.prefix.clone(), args.notify_every_sign_in);
    let publisher = client.clone();
    let running = Worker::with_client(client)
        .prefix(args.common.prefix)
        .pool(args.common.pool)
        .durable_name("sign-in-counter")
        .post_authentication(move |event| {
            let (counter, client, prefix) = (Arc::clone(&counter), publisher.clone(), prefix.clone());
            async move {
                let n = counter.count(&event.user_pool_id, &event.user_name);
                tracing::info!(pool = %event.user_pool_id, user = %event.user_name, sign_ins = n, "sign-in counted");
                if let Some(message) = notice(&event, n, every) {
                    send_email(&client, &prefix, &message).await?;
                }
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
