//! Passwordless worker: CUSTOM_AUTH with a one-time code by email (DefineAuthChallenge,
//! CreateAuthChallenge, VerifyAuthChallengeResponse). The code goes out through cognate's
//! message stream like any other email. Configure the pool's LambdaConfig with the three
//! challenge triggers and an app client with ALLOW_CUSTOM_AUTH.

use clap::Parser;
use cognate_example_workers::passwordless::{create, define, random_code, verify};
use cognate_example_workers::{
    Common, connect, init_tracing, print_ready, send_email, shutdown_signal,
};
use cognate_worker::{Refuse, Worker};

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: Common,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let args = Args::parse();
    let client = connect(&args.common.nats_url).await?;
    let (publisher, prefix) = (client.clone(), args.common.prefix.clone());
    let running = Worker::with_client(client)
        .prefix(args.common.prefix)
        .pool(args.common.pool)
        .define_auth_challenge(|event| async move { Ok(define(event)) })
        .create_auth_challenge(move |event| {
            let (client, prefix) = (publisher.clone(), prefix.clone());
            async move {
                let code = random_code().map_err(|e| Refuse::new(format!("no randomness: {e}")))?;
                let id = format!(
                    "otp:{}:{}:{}",
                    event.user_pool_id,
                    event.user_name,
                    random_code().map_err(|e| Refuse::new(e.to_string()))?
                );
                let (event, message) = create(event, || code, &id);
                if let Some(message) = message {
                    send_email(&client, &prefix, &message).await?;
                }
                Ok(event)
            }
        })
        .verify_auth_challenge_response(|event| async move { Ok(verify(event)) })
        .build()
        .start()
        .await?;
    print_ready();
    running.run_until(shutdown_signal()).await;
    Ok(())
}
