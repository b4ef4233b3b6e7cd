//! NATS as a trust boundary (docs/nats-security.md): a nats-server that requires TLS
//! with client certificates and users whose permissions follow the docs. The daemon
//! connects with a password over TLS, the pool's worker with an NKey seed over TLS, and
//! an intruder (valid certificate and password: the worker user of another pool) can
//! neither receive the pool's trigger requests nor get a forged answer accepted.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use cognate_bus::testing::NatsServer;
use cognate_worker::{NatsSettings, Worker};
use futures::{FutureExt as _, StreamExt as _};
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::common::*;
use crate::nats::{Tail, WAIT, assert_no_user, sign_up, trigger_pool};

/// The pool the intruder is a worker of (any id but the test's pool).
const OTHER_POOL: &str = "us-east-1_NotYours1";

/// A CA, a server certificate for 127.0.0.1 and one client certificate, as PEM files.
struct Pki {
    dir: tempfile::TempDir,
}

impl Pki {
    fn generate() -> Pki {
        use rcgen::{
            BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer,
            KeyPair, KeyUsagePurpose, SanType,
        };
        let dir = tempfile::Builder::new()
            .prefix("cognate-pki-")
            .tempdir()
            .unwrap();
        let write = |name: &str, pem: String| std::fs::write(dir.path().join(name), pem).unwrap();

        let ca_key = KeyPair::generate().unwrap();
        let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(DnType::CommonName, "cognate test CA");
        ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca.self_signed(&ca_key).unwrap();
        write("ca.pem", ca_cert.pem());
        let issuer = Issuer::new(ca, ca_key);

        let leaf = |name: &str, usage: ExtendedKeyUsagePurpose| {
            let key = KeyPair::generate().unwrap();
            let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
            params
                .subject_alt_names
                .push(SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()));
            params.distinguished_name.push(DnType::CommonName, name);
            params.extended_key_usages = vec![usage];
            let cert = params.signed_by(&key, &issuer).unwrap();
            write(&format!("{name}.pem"), cert.pem());
            write(&format!("{name}-key.pem"), key.serialize_pem());
        };
        leaf("server", ExtendedKeyUsagePurpose::ServerAuth);
        leaf("client", ExtendedKeyUsagePurpose::ClientAuth);
        Pki { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// TLS settings of a client: the CA and the client certificate.
    fn client(&self) -> NatsSettings {
        NatsSettings {
            tls_ca: Some(self.path("ca.pem")),
            tls_cert: Some(self.path("client.pem")),
            tls_key: Some(self.path("client-key.pem")),
            ..NatsSettings::default()
        }
    }
}

/// Passwords of the daemon, the test's own admin connection and the intruder, and the
/// worker's NKey (its seed in a file, as a worker deployment would mount it).
struct Users {
    daemon: String,
    admin: String,
    intruder: String,
    worker_public: String,
    worker_seed_file: PathBuf,
}

impl Users {
    fn new(pki: &Pki) -> Users {
        let pair = nkeys::KeyPair::new_user();
        let seed_file = pki.path("worker.nk");
        std::fs::write(&seed_file, pair.seed().unwrap()).unwrap();
        let password = || unique_suffix() + &unique_suffix();
        Users {
            daemon: password(),
            admin: password(),
            intruder: password(),
            worker_public: pair.public_key(),
            worker_seed_file: seed_file,
        }
    }

    fn with_password(pki: &Pki, user: &str, password: &str) -> NatsSettings {
        NatsSettings {
            user: Some(user.to_owned()),
            password: Some(password.into()),
            ..pki.client()
        }
    }

    /// How the pool's worker connects: its seed, TLS, and the inbox prefix its
    /// permissions allow (`_INBOX_<pool>`).
    fn worker(&self, pki: &Pki, pool: &str) -> NatsSettings {
        NatsSettings {
            nkey_seed_file: Some(self.worker_seed_file.clone()),
            inbox_prefix: Some(format!("_INBOX_{pool}")),
            ..pki.client()
        }
    }

    fn intruder(&self, pki: &Pki) -> NatsSettings {
        NatsSettings {
            inbox_prefix: Some(format!("_INBOX_{OTHER_POOL}")),
            ..Self::with_password(pki, "intruder", &self.intruder)
        }
    }
}

/// The permissions of a pool's trigger worker, as in docs/nats-security.md.
/// Its PostConfirmation consumer is created beforehand (see [`post_confirmation_consumer`]).
fn worker_permissions(pool: &str) -> String {
    let durable = format!("cognate-worker-{pool}-PostConfirmation");
    format!(
        r#"permissions: {{
        subscribe: {{ allow: ["cognate.triggers.{pool}.>", "_INBOX_{pool}.>"] }}
        publish: {{ allow: [
          "_INBOX_{pool}.>",
          "$JS.API.STREAM.INFO.COGNATE_TRIGGERS",
          "$JS.API.CONSUMER.INFO.COGNATE_TRIGGERS.{durable}",
          "$JS.API.CONSUMER.MSG.NEXT.COGNATE_TRIGGERS.{durable}",
          "$JS.ACK.COGNATE_TRIGGERS.{durable}.>"
        ] }}
        allow_responses: true
      }}"#
    )
}

/// The durable consumer an administrator creates for a pool's PostConfirmation
/// workers (named as the SDK names it, filtered to the pool), since workers may not
/// create consumers.
async fn post_confirmation_consumer(js: &jetstream::Context, pool: &str) {
    use jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
    let durable = format!("cognate-worker-{pool}-PostConfirmation");
    js.get_stream("COGNATE_TRIGGERS")
        .await
        .unwrap()
        .create_consumer(pull::Config {
            durable_name: Some(durable),
            filter_subject: format!("cognate.triggers.{pool}.PostConfirmation"),
            ack_policy: AckPolicy::Explicit,
            deliver_policy: DeliverPolicy::All,
            max_deliver: 5,
            ack_wait: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .unwrap();
}

/// The JetStream API subjects the daemon needs: its three streams' info, create and
/// update, nothing else (as in docs/nats-security.md).
fn daemon_stream_permissions() -> String {
    ["COGNATE_TRIGGERS", "COGNATE_MESSAGES", "COGNATE_EVENTS"]
        .iter()
        .flat_map(|stream| {
            ["INFO", "CREATE", "UPDATE"].map(|op| format!("\"$JS.API.STREAM.{op}.{stream}\""))
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// nats-server configuration: TLS with client certificates required, and the users of
/// docs/nats-security.md. The pool's worker is added once the pool exists.
fn server_config(pki: &Pki, users: &Users, pool: Option<&str>) -> String {
    let worker = pool
        .map(|pool| {
            format!(
                "    {{ nkey: \"{}\", {} }}\n",
                users.worker_public,
                worker_permissions(pool)
            )
        })
        .unwrap_or_default();
    format!(
        r#"
tls {{
  cert_file: "{server}"
  key_file: "{server_key}"
  ca_file: "{ca}"
  verify: true
  timeout: 5
}}
authorization {{
  users = [
    {{ user: cognate, password: "{daemon}", permissions: {{
        publish: {{ allow: ["cognate.>", {streams}] }}
        subscribe: {{ allow: ["_INBOX_cognate.>"] }}
      }} }}
    {{ user: admin, password: "{admin}" }}
    {{ user: intruder, password: "{intruder}", {intruder_permissions} }}
{worker}  ]
}}
"#,
        server = pki.path("server.pem").display(),
        server_key = pki.path("server-key.pem").display(),
        ca = pki.path("ca.pem").display(),
        daemon = users.daemon,
        admin = users.admin,
        intruder = users.intruder,
        intruder_permissions = worker_permissions(OTHER_POOL),
        streams = daemon_stream_permissions(),
    )
}

/// The daemon's environment: user, password (environment only) and TLS files.
fn daemon_env(pki: &Pki, password: &str) -> std::collections::BTreeMap<String, String> {
    let path = |name: &str| pki.path(name).display().to_string();
    [
        ("COGNATE_NATS_USER", "cognate".to_owned()),
        ("COGNATE_NATS_PASSWORD", password.to_owned()),
        ("COGNATE_NATS_TLS_CA", path("ca.pem")),
        ("COGNATE_NATS_TLS_CERT", path("client.pem")),
        ("COGNATE_NATS_TLS_KEY", path("client-key.pem")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// A test connection with `settings`; the server's error messages (permission
/// violations) go to `errors`.
async fn connect(
    nats: &NatsServer,
    settings: &NatsSettings,
    errors: Option<mpsc::UnboundedSender<String>>,
) -> async_nats::Client {
    let options = async_nats::ConnectOptions::new()
        .name("cognate-e2e")
        .event_callback(move |event| {
            let errors = errors.clone();
            async move {
                if let (async_nats::Event::ServerError(e), Some(tx)) = (event, errors) {
                    let _ = tx.send(e.to_string());
                }
            }
        });
    settings
        .apply(options)
        .await
        .unwrap()
        .connect(nats.url())
        .await
        .unwrap()
}

/// Waits until the server has handled everything `client` sent before (and delivered
/// everything queued for it): a message to its own inbox comes back after them.
async fn round_trip(client: &async_nats::Client) {
    let inbox = client.new_inbox();
    let mut echo = client.subscribe(inbox.clone()).await.unwrap();
    client.publish(inbox, "ping".into()).await.unwrap();
    tokio::time::timeout(WAIT, echo.next())
        .await
        .expect("round trip through the server")
        .unwrap();
}

/// Waits for `n` permission violations containing `what`; returns them.
async fn violations(
    errors: &mut mpsc::UnboundedReceiver<String>,
    n: usize,
    what: &str,
) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut found = Vec::new();
    while found.len() < n {
        match tokio::time::timeout_at(deadline, errors.recv()).await {
            Ok(Some(e)) => {
                if e.to_lowercase().contains("permissions violation") && e.contains(what) {
                    found.push(e);
                }
            }
            _ => panic!("{n} permission violations for {what:?} expected, got {found:?}"),
        }
    }
    found
}

fn assert_nothing_received(sub: &mut async_nats::Subscriber, what: &str) {
    if let Some(Some(m)) = sub.next().now_or_never() {
        panic!("{what} received {} ({:?})", m.subject, m.payload);
    }
}

#[tokio::test]
async fn nats_auth_only_the_pools_worker_receives_and_answers_triggers() {
    let pki = Pki::generate();
    let users = Users::new(&pki);
    let nats = NatsServer::start_with_config(&server_config(&pki, &users, None)).await;
    let d = Daemon::start_with(DaemonOptions {
        nats_url: Some(nats.url()),
        env: daemon_env(&pki, &users.daemon),
        ..DaemonOptions::default()
    })
    .await;
    let c = sdk_no_retry(&d);
    let admin = connect(
        &nats,
        &Users::with_password(&pki, "admin", &users.admin),
        None,
    )
    .await;
    let js = jetstream::new(admin.clone());

    // The daemon, over TLS with its password, creates the streams and publishes.
    let pool = trigger_pool(&c, &["PreSignUp", "PostConfirmation"], &[]).await;
    Tail::events(&js, &pool)
        .await
        .take("pool.created", |g| g.json["type"] == "pool.created")
        .await;
    let client = create_client(&c, &pool).await;
    // The operator adds the pool's worker user.
    nats.reload_config(&server_config(&pki, &users, Some(&pool)))
        .await;
    post_confirmation_consumer(&js, &pool).await;

    // (a) The pool's worker, with its NKey over TLS, answers; its answer takes effect.
    // It also consumes the pool's PostConfirmation events.
    let handled = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&handled);
    let (confirmed_tx, mut confirmed) = mpsc::unbounded_channel();
    let worker = Worker::builder(nats.url())
        .pool(&pool)
        .nats_settings(users.worker(&pki, &pool))
        .pre_sign_up(move |mut ev| {
            count.fetch_add(1, Ordering::SeqCst);
            async move {
                ev.response.auto_confirm_user = ev.user_name.starts_with("ann");
                Ok(ev)
            }
        })
        .post_confirmation(move |ev| {
            let _ = confirmed_tx.send(ev.user_name);
            async { Ok(()) }
        })
        .build()
        .start()
        .await
        .unwrap();

    // (b) The intruder is refused every subscription that would show it requests or
    // replies: all triggers, this pool's queue group, the daemon's inbox.
    let (tx, mut errors) = mpsc::unbounded_channel();
    let intruder = connect(&nats, &users.intruder(&pki), Some(tx)).await;
    let mut all = intruder.subscribe("cognate.triggers.>").await.unwrap();
    let mut queue = intruder
        .queue_subscribe(
            format!("cognate.triggers.{pool}.PreSignUp"),
            "cognate-workers".to_owned(),
        )
        .await
        .unwrap();
    let mut inbox = intruder.subscribe("_INBOX_cognate.>").await.unwrap();
    violations(&mut errors, 3, "Subscription").await;

    for i in 0..4 {
        let name = format!("ann{i}");
        let out = sign_up(&c, &client, &name, &[("email", "ann@example.com")], &[])
            .await
            .unwrap();
        assert!(out.user_confirmed(), "the worker's autoConfirmUser applies");
    }
    assert_eq!(handled.load(Ordering::SeqCst), 4);
    let out = sign_up(&c, &client, "bob", &[("email", "bob@example.com")], &[])
        .await
        .unwrap();
    assert!(!out.user_confirmed());
    c.admin_confirm_sign_up()
        .user_pool_id(&pool)
        .username("bob")
        .send()
        .await
        .unwrap();
    let got = tokio::time::timeout(WAIT, confirmed.recv()).await;
    assert_eq!(
        got,
        Ok(Some("bob".to_owned())),
        "PostConfirmation reaches the worker"
    );
    // Nor may the intruder read a stream (the codes in COGNATE_MESSAGES).
    let intruder_js = jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(intruder.clone());
    assert!(intruder_js.get_stream("COGNATE_MESSAGES").await.is_err());
    violations(&mut errors, 1, "$JS.API.STREAM.INFO.COGNATE_MESSAGES").await;
    // Anything the server had queued for the intruder arrives before this echo.
    round_trip(&intruder).await;
    assert_nothing_received(&mut all, "cognate.triggers.>");
    assert_nothing_received(&mut queue, "the pool's queue group");
    assert_nothing_received(&mut inbox, "the daemon's inbox");

    // (c) Even knowing the exact reply subject of a request, the intruder cannot
    // answer it. The worker stops; a relay with the worker's credentials takes the
    // request, does not answer, and hands the reply subject to the intruder, which
    // publishes a forged auto-confirming answer. The server drops it: the sign-up
    // fails as if nobody answered.
    worker.run_until(async {}).await;
    let relay = connect(&nats, &users.worker(&pki, &pool), None).await;
    let mut requests = relay
        .queue_subscribe(
            format!("cognate.triggers.{pool}.PreSignUp"),
            "cognate-workers".to_owned(),
        )
        .await
        .unwrap();
    round_trip(&relay).await;
    let forger = {
        let intruder = intruder.clone();
        tokio::spawn(async move {
            let msg = requests.next().await.unwrap();
            let reply = msg.reply.clone().unwrap().to_string();
            let mut event: Value = serde_json::from_slice(&msg.payload).unwrap();
            event["response"]["autoConfirmUser"] = json!(true);
            intruder
                .publish(reply.clone(), serde_json::to_vec(&event).unwrap().into())
                .await
                .unwrap();
            intruder.flush().await.unwrap();
            reply
        })
    };
    let r = sign_up(&c, &client, "mallory", &[("email", "m@example.com")], &[]).await;
    assert_code(r, "UnexpectedLambdaException");
    let reply = forger.await.unwrap();
    assert!(
        reply.starts_with("_INBOX_cognate."),
        "the daemon replies under its own inbox prefix: {reply}"
    );
    let refused = violations(&mut errors, 1, "Publish").await;
    assert!(refused[0].contains(&reply), "{refused:?}");
    assert_no_user(&c, &pool, "mallory").await;
}

/// A daemon whose NATS password is wrong keeps serving the API, says why NATS is not
/// connected, and a client without TLS is not let in even with a valid password.
#[tokio::test]
async fn nats_auth_wrong_credentials_are_refused_and_the_api_keeps_serving() {
    let pki = Pki::generate();
    let users = Users::new(&pki);
    let nats = NatsServer::start_with_config(&server_config(&pki, &users, None)).await;
    let d = Daemon::start_with(DaemonOptions {
        nats_url: Some(nats.url()),
        env: daemon_env(&pki, "not-the-password"),
        ..DaemonOptions::default()
    })
    .await;
    let c = sdk_no_retry(&d);
    let pool = create_pool(&c, &format!("auth-{}", unique_suffix())).await;
    c.describe_user_pool()
        .user_pool_id(&pool)
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while !d
        .stderr_tail(400)
        .to_lowercase()
        .contains("authorization violation")
    {
        assert!(
            Instant::now() < deadline,
            "the daemon does not log the refused credentials:\n{}",
            d.stderr_tail(60)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        !d.stderr_tail(400).contains("not-the-password"),
        "the password must not be logged"
    );

    // The right password without TLS: refused by the server.
    let plain = async_nats::ConnectOptions::new()
        .user_and_password("cognate".into(), users.daemon.clone())
        .connect(nats.url())
        .await;
    assert!(plain.is_err(), "a plain-text connection must be refused");
}
