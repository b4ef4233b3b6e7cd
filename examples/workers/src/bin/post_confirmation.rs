//! Post confirmation worker: welcome email to the user, notice to an administrator.
//! Env: PRODUCT_NAME (default "our service"), ADMIN_EMAIL (no notice when unset: logged).

use clap::Parser;
use cognate_example_workers::post_confirmation::{admin_notice, welcome};
use cognate_example_workers::{
    Common, connect, init_tracing, print_ready, send_email, shutdown_signal,
};
use cognate_worker::Worker;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: Common,
    #[arg(long, env = "PRODUCT_NAME", default_value = "our service")]
    product_name: String,
    #[arg(long, env = "ADMIN_EMAIL")]
    admin_email: Option<String>,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let args = Args::parse();
    let client = connect(&args.common.nats_url).await?;
    let prefix = args.common.prefix.clone();
    let (product, admin) = (
        args.product_name,
        args.admin_email.filter(|a| !a.is_empty()),
    );
    let publisher = client.clone();
    let running = Worker::with_client(client)
        .prefix(args.common.prefix)
        .pool(args.common.pool)
        .durable_name("welcome")
        .post_confirmation(move |event| {
            let (client, prefix, product, admin) =
                (publisher.clone(), prefix.clone(), product.clone(), admin.clone());
            async move {
                if let Some(message) = welcome(&event, &product) {
                    send_email(&client, &prefix, &message).await?;
                }
                match admin.as_deref().and_then(|a| admin_notice(&event, a)) {
                    Some(message) => send_email(&client, &prefix, &message).await?,
                    None => tracing::info!(pool = %event.user_pool_id, user = %event.user_name, "new user confirmed"),
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
