//! SMS delivery worker: consumes the daemon's outgoing SMS messages
//! (`<prefix>.messages.*.sms` on the COGNATE_MESSAGES stream) with a durable consumer and
//! POSTs each to an HTTP SMS gateway as `{"to", "body", "messageId"}`. A message is
//! acknowledged only after the gateway answered 2xx; otherwise it is redelivered later.
//! Env: SMS_GATEWAY_URL (e.g. http://127.0.0.1:8080/send), SMS_GATEWAY_TOKEN (optional,
//! sent as a bearer token).

use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::pull};
use clap::Parser;
use cognate_example_workers::{Common, connect, init_tracing, print_ready, shutdown_signal};
use cognate_proto::messages::OutgoingMessage;
use futures::StreamExt;

#[derive(Parser)]
struct Args {
    #[command(flatten)]
    common: Common,
    #[arg(long, env = "SMS_GATEWAY_URL")]
    gateway_url: String,
    #[arg(long, env = "SMS_GATEWAY_TOKEN")]
    gateway_token: Option<String>,
}

/// What the gateway receives.
fn gateway_body(m: &OutgoingMessage) -> serde_json::Value {
    serde_json::json!({ "to": m.destination, "body": m.body.expose(), "messageId": m.message_id })
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    init_tracing();
    let args = Args::parse();
    let client = connect(&args.common.nats_url).await?;
    let js = jetstream::new(client);
    // The daemon creates the stream with its first publication: wait for it.
    let stream = loop {
        match js.get_stream("COGNATE_MESSAGES").await {
            Ok(s) => break s,
            Err(e) => {
                tracing::info!(error = %e, "waiting for the COGNATE_MESSAGES stream");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let filter = format!("{}.messages.{}.sms", args.common.prefix, args.common.pool);
    let consumer = stream
        .get_or_create_consumer(
            "sms-gateway",
            pull::Config {
                durable_name: Some("sms-gateway".into()),
                filter_subject: filter,
                ack_wait: Duration::from_secs(30),
                max_deliver: 20,
                ..Default::default()
            },
        )
        .await?;
    let mut messages = consumer.messages().await?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    print_ready();
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let next = tokio::select! {
            () = &mut shutdown => break,
            n = messages.next() => n,
        };
        let Some(Ok(msg)) = next else { break };
        let parsed: Result<OutgoingMessage, _> = serde_json::from_slice(&msg.payload);
        let Ok(sms) = parsed else {
            tracing::warn!("not a message payload; dropped");
            let _ = msg.ack_with(AckKind::Term).await;
            continue;
        };
        let mut req = http.post(&args.gateway_url).json(&gateway_body(&sms));
        if let Some(t) = &args.gateway_token {
            req = req.bearer_auth(t);
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                tracing::info!(message = %sms.message_id, "SMS handed to the gateway");
                let _ = msg.ack().await;
            }
            Ok(r) => {
                tracing::warn!(status = %r.status(), "gateway refused the SMS; retrying later");
                let _ = msg
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(2))))
                    .await;
            }
            Err(e) => {
                tracing::warn!(error = %e, "gateway unreachable; retrying later");
                let _ = msg
                    .ack_with(AckKind::Nak(Some(Duration::from_secs(2))))
                    .await;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use cognate_proto::messages::{Channel, MessageKind};

    #[test]
    fn the_gateway_gets_destination_body_and_id() {
        let m = OutgoingMessage {
            message_id: "m1".into(),
            pool_id: "p".into(),
            username: "u".into(),
            channel: Channel::Sms,
            destination: "+15555550100".into(),
            subject: None,
            body: "Your code is 123456".into(),
            kind: MessageKind::SignUp,
        };
        let v = gateway_body(&m);
        assert_eq!(v["to"], "+15555550100");
        assert_eq!(v["body"], "Your code is 123456");
        assert_eq!(v["messageId"], "m1");
    }
}
