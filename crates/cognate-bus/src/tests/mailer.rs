use std::time::Duration;

use async_nats::jetstream::consumer::PullConsumer;
use cognate_proto::messages::{Channel, MessageKind, OutgoingMessage, subjects};

use super::{WAIT, connected_bus};
use crate::Bus;
use crate::mailer::{MailerOptions, SmtpConfig, SmtpTls, run_mailer_with};
use crate::testing::{NatsServer, SmtpServer, free_port};

fn message(id: &str, to: &str, code: &str) -> OutgoingMessage {
    OutgoingMessage {
        message_id: id.to_owned(),
        pool_id: "us-east-1_MailPool1".to_owned(),
        username: "alice".to_owned(),
        channel: Channel::Email,
        destination: to.to_owned(),
        subject: Some("Your verification code".to_owned()),
        body: format!("Hello alice, your code is {code}.").into(),
        kind: MessageKind::SignUp,
    }
}

async fn publish(bus: &Bus, m: &OutgoingMessage) {
    bus.publish(
        &subjects::message("cognate", &m.pool_id, Channel::Email),
        &m.message_id,
        serde_json::to_vec(m).unwrap().into(),
    )
    .await
    .unwrap();
}

fn smtp(port: u16) -> SmtpConfig {
    SmtpConfig {
        host: "127.0.0.1".to_owned(),
        port,
        tls: SmtpTls::None,
        username: None,
        password: None,
        from: "Cognate <no-reply@cognate.test>".to_owned(),
    }
}

fn options() -> MailerOptions {
    MailerOptions {
        retry_delay: Duration::from_millis(200),
        max_retry_delay: Duration::from_millis(500),
        smtp_timeout: Duration::from_secs(5),
        ..MailerOptions::default()
    }
}

/// Waits (bounded) until the mailer's consumer has nothing pending or unacknowledged.
async fn wait_all_acked(bus: &Bus) {
    let stream = bus
        .jetstream()
        .get_stream(subjects::STREAM_MESSAGES)
        .await
        .unwrap();
    let mut consumer: PullConsumer = stream.get_consumer("cognate-mailer").await.unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let info = consumer.info().await.unwrap();
        if info.num_pending == 0 && info.num_ack_pending == 0 && info.delivered.stream_sequence > 0
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "mailer did not ack everything: {info:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn mailer_sends_email_messages_by_smtp_and_acks() {
    let server = NatsServer::start().await;
    let bus = connected_bus(&server).await;
    bus.ensure_streams().await.unwrap();
    let mut smtp_server = SmtpServer::start().await;

    // An SMS message on the same stream is not the mailer's business.
    bus.publish(
        &subjects::message("cognate", "us-east-1_MailPool1", Channel::Sms),
        "sms:1",
        b"{}".to_vec().into(),
    )
    .await
    .unwrap();
    publish(
        &bus,
        &message("us-east-1_MailPool1:5", "alice@example.com", "493817"),
    )
    .await;

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let mailer = {
        let bus = bus.clone();
        let config = smtp(smtp_server.port());
        tokio::spawn(async move {
            run_mailer_with(&bus, config, options(), async {
                let _ = stop_rx.await;
            })
            .await
        })
    };
    let received = smtp_server
        .next_message(WAIT)
        .await
        .expect("the SMTP server received no message");
    assert!(received.contains("To: alice@example.com"), "{received}");
    assert!(
        received.contains("Subject: Your verification code"),
        "{received}"
    );
    assert!(received.contains("no-reply@cognate.test"), "{received}");
    assert!(received.contains("your code is 493817"), "{received}");
    wait_all_acked(&bus).await;
    // Exactly one email: the SMS was not sent by mail, nothing was sent twice.
    assert_eq!(
        smtp_server.next_message(Duration::from_millis(500)).await,
        None
    );

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(10), mailer)
        .await
        .expect("mailer stops on shutdown")
        .unwrap()
        .unwrap();
}

#[tokio::test]
async fn mailer_retries_until_the_smtp_server_accepts() {
    let server = NatsServer::start().await;
    let bus = connected_bus(&server).await;
    bus.ensure_streams().await.unwrap();
    let smtp_port = free_port();
    publish(
        &bus,
        &message("us-east-1_MailPool1:9", "bob@example.org", "120044"),
    )
    .await;
    let mailer = {
        let bus = bus.clone();
        tokio::spawn(async move {
            run_mailer_with(&bus, smtp(smtp_port), options(), std::future::pending()).await
        })
    };
    // Wait (bounded) until the mailer has tried and failed at least twice.
    let stream = bus
        .jetstream()
        .get_stream(subjects::STREAM_MESSAGES)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(mut c) = stream
            .get_consumer::<async_nats::jetstream::consumer::pull::Config>("cognate-mailer")
            .await
            && let Ok(info) = c.info().await
            && info.num_redelivered >= 1
        {
            // Not acknowledged while the SMTP server is down.
            assert_eq!(info.ack_floor.stream_sequence, 0);
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "no redelivery seen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut smtp_server = SmtpServer::start_on(smtp_port).await;
    let received = smtp_server
        .next_message(WAIT)
        .await
        .expect("the message was not retried");
    assert!(received.contains("To: bob@example.org"), "{received}");
    assert!(received.contains("120044"), "{received}");
    wait_all_acked(&bus).await;
    assert_eq!(
        smtp_server.next_message(Duration::from_millis(800)).await,
        None
    );
    mailer.abort();
}
