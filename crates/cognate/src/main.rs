//! The `cognate` binary: reads flags and environment, sets up logging, loads or creates
//! the secrets kept in the data directory, and runs `serve` or `rebuild`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use cognate_crypto::{HashPolicy, Keyring};
use cognate_server::{AppState, Config, StdoutSink};
use cognate_store::{Store, WriterConfig};

mod nats_args;

#[derive(Parser)]
#[command(
    name = "cognate",
    version,
    about = "Self-hosted user pools that speak Cognito's API"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Serve the API, JWKS, health and metrics.
    Serve(Box<Serve>),
    /// Replay the event log into fresh projections and print digests (daemon stopped).
    Rebuild {
        #[arg(long, env = "COGNATE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        /// The database is a cluster daemon's: its data keys are read from the cluster
        /// (--nats-url).
        #[arg(long, env = "COGNATE_CLUSTER", requires = "nats_url")]
        cluster: bool,
        #[arg(long, env = "COGNATE_NATS_URL")]
        nats_url: Option<String>,
        #[arg(long, env = "COGNATE_NATS_PREFIX", default_value = "cognate")]
        nats_prefix: String,
        #[command(flatten)]
        nats: nats_args::NatsArgs,
    },
    /// Move a single-node daemon's log into a cluster (docs/cluster.md): its data keys
    /// and every entry go to the empty JetStream streams on --nats-url; the data
    /// directory is left as it was. Stop the daemon first; then start the cluster's
    /// daemons with empty data directories and COGNATE_MASTER_KEY set to this one's key.
    ClusterImport {
        #[arg(long, env = "COGNATE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        #[arg(long, env = "COGNATE_NATS_URL")]
        nats_url: String,
        #[arg(long, env = "COGNATE_NATS_PREFIX", default_value = "cognate")]
        nats_prefix: String,
        #[command(flatten)]
        nats: nats_args::NatsArgs,
        /// Replicas of the streams this creates (1 for a single nats-server).
        #[arg(long, env = "COGNATE_LOG_REPLICAS", default_value_t = 3)]
        log_replicas: usize,
    },
    /// Convert, once, a database written before personal data was sealed per user: a new
    /// sealed log and projections, checked against the old state, replace it; the old
    /// one is kept as cognate.redb.unsealed for you to delete (daemon stopped).
    SealLog {
        #[arg(long, env = "COGNATE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
    /// Print everything the running daemon holds about a user as one JSON document
    /// (GDPR Art. 15): a signed admin request to --endpoint.
    ExportUser(ExportUser),
    /// Manage admin console accounts (kept in <data dir>/console-users.json).
    #[command(subcommand)]
    ConsoleUser(ConsoleUser),
    /// Send the email messages published on NATS by SMTP (a durable JetStream consumer;
    /// run one or more beside the daemons).
    SendEmail(SendEmail),
}

#[derive(Args)]
struct ExportUser {
    #[arg(long)]
    user_pool_id: String,
    /// Username, alias (email, phone) or sub.
    #[arg(long)]
    username: String,
    #[arg(
        long,
        env = "COGNATE_ENDPOINT",
        default_value = "http://127.0.0.1:9229"
    )]
    endpoint: String,
    #[arg(long, env = "COGNATE_REGION", default_value = "us-east-1")]
    region: String,
    /// Credentials: AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY, or else the first pair in
    /// <data dir>/admin-credentials.
    #[arg(long, env = "COGNATE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
}

#[derive(Args)]
struct SendEmail {
    #[arg(long, env = "COGNATE_NATS_URL")]
    nats_url: String,
    #[arg(long, env = "COGNATE_NATS_PREFIX", default_value = "cognate")]
    nats_prefix: String,
    #[command(flatten)]
    nats: nats_args::NatsArgs,
    #[arg(long, env = "COGNATE_SMTP_HOST")]
    smtp_host: String,
    #[arg(long, env = "COGNATE_SMTP_PORT", default_value_t = 25)]
    smtp_port: u16,
    /// none, starttls or tls.
    #[arg(long, env = "COGNATE_SMTP_TLS", default_value = "none")]
    smtp_tls: String,
    #[arg(long, env = "COGNATE_SMTP_USERNAME")]
    smtp_username: Option<String>,
    /// Prefer the environment variable: flags show up in process listings.
    #[arg(long, env = "COGNATE_SMTP_PASSWORD", hide_env_values = true)]
    smtp_password: Option<String>,
    /// The From: address, e.g. "Example <no-reply@example.com>".
    #[arg(long, env = "COGNATE_SMTP_FROM")]
    from: String,
}

#[derive(Subcommand)]
enum ConsoleUser {
    /// Add an account; the password is read from standard input (first line).
    Add {
        #[arg(long, env = "COGNATE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        #[arg(long)]
        name: String,
        /// Also require a TOTP code; prints the secret to add to an authenticator app.
        #[arg(long)]
        totp: bool,
        /// Replace an existing account of that name.
        #[arg(long)]
        replace: bool,
    },
    /// Remove an account (its open console sessions end at their next request).
    Remove {
        #[arg(long, env = "COGNATE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
        #[arg(long)]
        name: String,
    },
    /// List the accounts.
    List {
        #[arg(long, env = "COGNATE_DATA_DIR", default_value = "./data")]
        data_dir: PathBuf,
    },
}

#[derive(Args)]
struct Serve {
    /// HTTP address for the API, JWKS, health and metrics.
    #[arg(long, env = "COGNATE_LISTEN", default_value = "127.0.0.1:9229")]
    listen: String,
    /// Where the redb file and generated secrets live.
    #[arg(long, env = "COGNATE_DATA_DIR", default_value = "./data")]
    data_dir: PathBuf,
    /// Base of token issuers; default http://<listen address> (https:// with --tls-cert).
    #[arg(long, env = "COGNATE_PUBLIC_URL")]
    public_url: Option<String>,
    /// NATS server; without it the daemon runs alone.
    #[arg(long, env = "COGNATE_NATS_URL")]
    nats_url: Option<String>,
    /// Subject prefix on NATS.
    #[arg(long, env = "COGNATE_NATS_PREFIX", default_value = "cognate")]
    nats_prefix: String,
    #[command(flatten)]
    nats: nats_args::NatsArgs,
    /// Region in pool ids and the SigV4 scope accepted.
    #[arg(long, env = "COGNATE_REGION", default_value = "us-east-1")]
    region: String,
    /// A file of admin credentials, one `ACCESS_KEY_ID SECRET` pair per line.
    #[arg(long, env = "COGNATE_ADMIN_CREDENTIALS_FILE")]
    admin_credentials_file: Option<PathBuf>,
    /// Browser origins allowed by CORS, comma-separated; all when unset.
    #[arg(long, env = "COGNATE_CORS_ORIGINS", value_delimiter = ',')]
    cors_origins: Option<Vec<String>>,
    /// argon2id memory in KiB.
    #[arg(long, env = "COGNATE_ARGON2_M_KIB", default_value_t = 19456)]
    argon2_m_kib: u32,
    /// argon2id iterations.
    #[arg(long, env = "COGNATE_ARGON2_T", default_value_t = 2)]
    argon2_t: u32,
    /// argon2id parallelism.
    #[arg(long, env = "COGNATE_ARGON2_P", default_value_t = 1)]
    argon2_p: u32,
    /// Password hashes computed at once (default: one per core).
    #[arg(long, env = "COGNATE_HASH_THREADS")]
    hash_threads: Option<usize>,
    /// Requests that may wait for a hashing thread before TooManyRequestsException
    /// (default: 64 per thread).
    #[arg(long, env = "COGNATE_HASH_QUEUE")]
    hash_queue: Option<usize>,
    /// Longest wait for a hashing thread, in milliseconds.
    #[arg(long, env = "COGNATE_HASH_WAIT_MS", default_value_t = 2000)]
    hash_wait_ms: u64,
    /// Most commands committed per write transaction (1 = one fsync per write).
    #[arg(long, env = "COGNATE_MAX_BATCH", default_value_t = 512)]
    max_batch: usize,
    /// Where the admin console is served: `same` (on --listen), `off`, or an address of
    /// its own such as 127.0.0.1:9230.
    #[arg(long, env = "COGNATE_CONSOLE_LISTEN", default_value = "same")]
    console_listen: String,
    /// Whether outgoing messages, codes included, are printed as `cognate-message` lines:
    /// `auto` does so only while no NATS server is configured and --listen is a loopback
    /// address (the quick start); `always`; `never`.
    #[arg(long, env = "COGNATE_PRINT_MESSAGES", default_value = "auto")]
    print_messages: PrintMessages,
    /// Seconds a client has to send a request's headers; also how long a kept-alive
    /// connection may stay idle.
    #[arg(long, env = "COGNATE_HTTP_HEADER_TIMEOUT_SECS", default_value_t = 20)]
    http_header_timeout_secs: u64,
    /// Seconds a client has to send a request's body.
    #[arg(long, env = "COGNATE_HTTP_BODY_TIMEOUT_SECS", default_value_t = 30)]
    http_body_timeout_secs: u64,
    /// Prefix domains of user pools are served as <prefix>.<this suffix> (by Host), and
    /// under <public url>/domains/<prefix>/ everywhere.
    #[arg(long, env = "COGNATE_DOMAIN_SUFFIX", default_value = "auth.localhost")]
    domain_suffix: String,
    /// HTTP connections open at once (per listener).
    #[arg(long, env = "COGNATE_MAX_CONNECTIONS", default_value_t = 4096)]
    max_connections: usize,
    /// Serve HTTPS only, with this PEM certificate chain (leaf first, then
    /// intermediates); replaced files are picked up without a restart (docs/tls.md).
    #[arg(long, env = "COGNATE_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "COGNATE_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Run as one of several daemons: the log is the JetStream stream COGNATE_LOG on
    /// --nats-url, the data directory holds this daemon's projections only
    /// (docs/cluster.md). Needs COGNATE_MASTER_KEY, the same on every daemon.
    #[arg(long, env = "COGNATE_CLUSTER", requires = "nats_url")]
    cluster: bool,
    /// Replicas of the cluster's streams when this daemon creates them (1 for a
    /// single nats-server).
    #[arg(long, env = "COGNATE_LOG_REPLICAS", default_value_t = 3)]
    log_replicas: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum PrintMessages {
    Auto,
    Always,
    Never,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Cmd::Serve(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(serve(*args)),
        Cmd::Rebuild {
            data_dir,
            cluster,
            nats_url,
            nats_prefix,
            nats,
        } => {
            let keys: Option<Arc<dyn cognate_store::SharedKeys>> = match (cluster, nats_url) {
                (true, Some(url)) => {
                    let link = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()?
                        .block_on(cognate_server::cluster::ClusterLink::connect(
                            &url,
                            &nats_prefix,
                            &nats.settings(),
                            1,
                        ))
                        .map_err(|e| anyhow::anyhow!(e))
                        .context("reaching the cluster's data keys on NATS")?;
                    Some(Arc::new(link))
                }
                _ => None,
            };
            rebuild(&data_dir, keys)
        }
        Cmd::SealLog { data_dir } => seal_log(&data_dir),
        Cmd::ClusterImport {
            data_dir,
            nats_url,
            nats_prefix,
            nats,
            log_replicas,
        } => cluster_import(&data_dir, &nats_url, &nats_prefix, &nats, log_replicas),
        Cmd::ExportUser(args) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
            .block_on(export_user(args)),
        Cmd::ConsoleUser(cmd) => console_user(cmd),
        Cmd::SendEmail(args) => tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()?
            .block_on(send_email(args)),
    }
}

async fn send_email(args: SendEmail) -> Result<()> {
    use cognate_bus::{SmtpConfig, SmtpTls};
    let tls = match args.smtp_tls.as_str() {
        "none" => SmtpTls::None,
        "starttls" => SmtpTls::StartTls,
        "tls" => SmtpTls::Tls,
        other => bail!("--smtp-tls must be none, starttls or tls, not {other:?}"),
    };
    let bus =
        cognate_bus::Bus::connect_with(&args.nats_url, &args.nats_prefix, &args.nats.settings())
            .await?;
    let smtp = SmtpConfig {
        host: args.smtp_host,
        port: args.smtp_port,
        tls,
        username: args.smtp_username,
        password: args.smtp_password.map(cognate_proto::Sensitive),
        from: args.from,
    };
    println!("cognate send-email ready");
    cognate_bus::run_mailer(&bus, smtp, shutdown_signal()).await?;
    Ok(())
}

fn console_user(cmd: ConsoleUser) -> Result<()> {
    use cognate_server::console::accounts;
    match cmd {
        ConsoleUser::Add {
            data_dir,
            name,
            totp,
            replace,
        } => {
            std::fs::create_dir_all(&data_dir)
                .with_context(|| format!("creating {}", data_dir.display()))?;
            let mut password = String::new();
            std::io::stdin()
                .read_line(&mut password)
                .context("reading the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            // The TOTP secret is sealed with the daemon's master key: the same key must
            // be used here, so none is generated.
            let keyring = if std::env::var("COGNATE_MASTER_KEY").is_err()
                && !data_dir.join("master.key").exists()
            {
                if totp {
                    bail!(
                        "no master key: set COGNATE_MASTER_KEY as for `serve`, or start the daemon once so it creates {}",
                        data_dir.join("master.key").display()
                    );
                }
                Keyring::from_master_key(&Keyring::generate_master_key())
                    .map_err(|e| anyhow::anyhow!("{e}"))?
            } else {
                master_key(&data_dir)?
            };
            let hasher = cognate_crypto::PasswordHasher::new(HashPolicy::default())
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let path = data_dir.join(accounts::FILE_NAME);
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_millis() as i64)
                .unwrap_or(0);
            let added = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?
                .block_on(accounts::add(
                    &path,
                    &hasher,
                    &keyring,
                    accounts::NewAccount {
                        name: &name,
                        password,
                        totp,
                        replace,
                    },
                    now,
                ))?;
            println!(
                "console account {name} {} in {}",
                if added.replaced { "replaced" } else { "added" },
                path.display()
            );
            if let Some((secret, uri)) = added.totp {
                println!("TOTP secret (add it to an authenticator app): {secret}");
                println!("{uri}");
            }
        }
        ConsoleUser::Remove { data_dir, name } => {
            let path = data_dir.join(accounts::FILE_NAME);
            if !accounts::remove(&path, &name)? {
                bail!("no console account named {name} in {}", path.display());
            }
            println!("console account {name} removed");
        }
        ConsoleUser::List { data_dir } => {
            let file = accounts::load(&data_dir.join(accounts::FILE_NAME))?;
            for a in file.accounts {
                println!(
                    "{}{}",
                    a.name,
                    if a.totp_sealed.is_some() {
                        " (TOTP)"
                    } else {
                        ""
                    }
                );
            }
        }
    }
    Ok(())
}

fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    if std::env::var("COGNATE_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

fn db_path(data_dir: &Path) -> PathBuf {
    data_dir.join("cognate.redb")
}

fn cluster_import(
    data_dir: &Path,
    url: &str,
    prefix: &str,
    nats: &nats_args::NatsArgs,
    replicas: usize,
) -> Result<()> {
    let path = db_path(data_dir);
    if !path.exists() {
        bail!("no database at {}", path.display());
    }
    let keyring = master_key(data_dir)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let link = rt
        .block_on(cognate_server::cluster::ClusterLink::connect(
            url,
            prefix,
            &nats.settings(),
            replicas.max(1),
        ))
        .map_err(|e| anyhow::anyhow!(e))
        .context("reaching the cluster on NATS")?;
    let moved = cognate_store::move_into_cluster(&path, keyring, &link, &link)
        .context("moving the log into the cluster")?;
    // What the single node published is not published again; a node that never ran
    // with NATS printed its messages, and they are not sent again either.
    let cursor = if moved.outbox_cursor > 0 {
        moved.outbox_cursor
    } else {
        moved.last_seq
    };
    rt.block_on(link.save_cursor("outbox", cursor))
        .map_err(|e| anyhow::anyhow!(e))
        .context("setting the cluster's outbox cursor")?;
    println!("events {}", moved.events);
    println!("messages {}", moved.messages);
    println!("data-keys {}", moved.keys);
    println!("erased-data-keys {}", moved.erased_keys);
    println!("outbox-cursor {cursor}");
    println!(
        "moved into the cluster: start its daemons with empty data directories, --cluster and this COGNATE_MASTER_KEY"
    );
    Ok(())
}

fn rebuild(data_dir: &Path, keys: Option<Arc<dyn cognate_store::SharedKeys>>) -> Result<()> {
    let path = db_path(data_dir);
    if !path.exists() {
        bail!("no database at {}", path.display());
    }
    let keyring = master_key(data_dir)?;
    let out = cognate_store::rebuild_with(&path, keyring, keys).context("rebuild")?;
    println!("events {}", out.events);
    println!("events-of-erased-users {}", out.erased);
    println!("digest-live {}", out.live_digest);
    println!("digest-rebuilt {}", out.rebuilt_digest);
    if out.live_digest != out.rebuilt_digest {
        eprintln!(
            "rebuild: the kept projections differed from the log; they were replaced by the rebuilt ones"
        );
        std::process::exit(1);
    }
    Ok(())
}

async fn export_user(args: ExportUser) -> Result<()> {
    let (id, secret) = match (
        std::env::var("AWS_ACCESS_KEY_ID"),
        std::env::var("AWS_SECRET_ACCESS_KEY"),
    ) {
        (Ok(id), Ok(secret)) => (id, secret),
        _ => {
            let path = args.data_dir.join("admin-credentials");
            let text = std::fs::read_to_string(&path).with_context(|| {
                format!(
                    "no AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY and cannot read {}",
                    path.display()
                )
            })?;
            parse_pairs(&text, &path.display().to_string())?
                .into_iter()
                .next()
                .context("no credentials in the admin-credentials file")?
        }
    };
    let url = reqwest::Url::parse(&args.endpoint).context("--endpoint")?;
    let host = match url.port() {
        Some(p) => format!("{}:{p}", url.host_str().unwrap_or_default()),
        None => url.host_str().unwrap_or_default().to_owned(),
    };
    let body = serde_json::to_vec(&serde_json::json!({
        "UserPoolId": args.user_pool_id,
        "Username": args.username,
    }))?;
    let headers = vec![
        (
            "content-type".to_owned(),
            cognate_proto::CONTENT_TYPE.to_owned(),
        ),
        (
            "x-amz-target".to_owned(),
            cognate_server::export::TARGET.to_owned(),
        ),
    ];
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let signed = cognate_crypto::sigv4::sign(
        "POST",
        &host,
        "/",
        "",
        &headers,
        &body,
        now,
        &args.region,
        "cognito-idp",
        &id,
        &secret,
    );
    let mut rb = reqwest::Client::new().post(url);
    for (k, v) in headers.iter().chain(signed.iter()) {
        rb = rb.header(k, v);
    }
    let resp = rb.body(body).send().await.context("calling the daemon")?;
    let status = resp.status();
    let text = resp.text().await?;
    let doc: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("the daemon answered HTTP {status}: {text}"))?;
    if !status.is_success() {
        bail!(
            "{}: {}",
            doc["__type"].as_str().unwrap_or("error"),
            doc["message"].as_str().unwrap_or(&text)
        );
    }
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}

fn seal_log(data_dir: &Path) -> Result<()> {
    let path = db_path(data_dir);
    if !path.exists() {
        bail!("no database at {}", path.display());
    }
    let keyring = master_key(data_dir)?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let out = cognate_store::seal_legacy(&path, keyring, now).context("seal-log")?;
    private_file(&path)?;
    private_file(&cognate_store::keys_path(&path))?;
    println!("events {}", out.events);
    println!("data-keys-erased {}", out.erased);
    println!("digest {}", out.digest);
    println!(
        "the old database, unsealed, is kept at {}: delete it once the daemon runs on the new one (it still holds every personal value in plain text)",
        out.backup.display()
    );
    Ok(())
}

/// Writes a file readable only by the owner.
fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    Ok(())
}

fn master_key(data_dir: &Path) -> Result<Keyring> {
    let hex_key = match std::env::var("COGNATE_MASTER_KEY") {
        Ok(k) => k,
        Err(_) => {
            let path = data_dir.join("master.key");
            if !path.exists() {
                write_private(&path, &hex::encode(Keyring::generate_master_key()))?;
                tracing::info!(path = %path.display(), "generated a master key; keep it safe, it encrypts signing keys and client secrets");
            }
            std::fs::read_to_string(&path)?.trim().to_owned()
        }
    };
    let bytes =
        hex::decode(hex_key.trim()).context("COGNATE_MASTER_KEY must be 64 hex characters")?;
    Keyring::from_master_key(&bytes).map_err(|e| anyhow::anyhow!("master key: {e}"))
}

/// Parses an admin credentials file: one `ACCESS_KEY_ID SECRET_ACCESS_KEY` pair per
/// line, separated by spaces or tabs; empty lines and lines starting with `#` are
/// skipped. Any other line is an error naming its number (never a silently shortened
/// secret).
fn parse_pairs(text: &str, source: &str) -> Result<HashMap<String, String>> {
    let mut pairs = HashMap::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        let [id, secret] = fields[..] else {
            bail!(
                "{source}, line {}: expected `ACCESS_KEY_ID SECRET_ACCESS_KEY` (two fields separated by spaces), found {} field(s)",
                i + 1,
                fields.len()
            );
        };
        let id_ok = (16..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric());
        if !id_ok {
            bail!(
                "{source}, line {}: the access key id must be 16 to 128 letters and digits",
                i + 1
            );
        }
        if secret.len() < 16 {
            bail!(
                "{source}, line {}: the secret access key must be at least 16 characters",
                i + 1
            );
        }
        if pairs.insert(id.to_owned(), secret.to_owned()).is_some() {
            bail!("{source}, line {}: access key id {id} appears twice", i + 1);
        }
    }
    Ok(pairs)
}

/// Admin credentials from the environment, a file, or (first start) generated ones.
fn admin_credentials(args: &Serve) -> Result<(HashMap<String, String>, String)> {
    let mut creds = HashMap::new();
    let mut source = String::new();
    if let (Ok(id), Ok(secret)) = (
        std::env::var("COGNATE_ADMIN_ACCESS_KEY_ID"),
        std::env::var("COGNATE_ADMIN_SECRET_ACCESS_KEY"),
    ) {
        creds.insert(id, secret);
        source = "COGNATE_ADMIN_ACCESS_KEY_ID / COGNATE_ADMIN_SECRET_ACCESS_KEY".into();
    }
    if let Some(file) = &args.admin_credentials_file {
        let text =
            std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
        creds.extend(parse_pairs(&text, &file.display().to_string())?);
        source = format!("{} ({source})", file.display());
    }
    if creds.is_empty() {
        let path = args.data_dir.join("admin-credentials");
        if !path.exists() {
            let id = format!(
                "AKIA{}",
                cognate_crypto::random_string(16, b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567")
            );
            let secret = cognate_crypto::random_string(
                40,
                b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
            );
            write_private(
                &path,
                &format!(
                    "# cognate admin credentials: ACCESS_KEY_ID SECRET_ACCESS_KEY\n{id} {secret}\n"
                ),
            )?;
        }
        creds = parse_pairs(
            &std::fs::read_to_string(&path)?,
            &path.display().to_string(),
        )?;
        source = path.display().to_string();
    }
    if creds.is_empty() {
        bail!("no admin credentials configured");
    }
    Ok((creds, source))
}

/// Creates the data directory if needed and makes it private (0700): it holds the
/// database, the master key (unless given outside) and the admin credentials.
fn private_data_dir(dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private (0700)", dir.display()))?;
    Ok(())
}

/// Makes a file readable and writable only by the owner (0600), when it exists.
fn private_file(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if path.exists() {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
            .with_context(|| format!("making {} private (0600)", path.display()))?;
    }
    Ok(())
}

async fn serve(args: Serve) -> Result<()> {
    // First, so a bad certificate stops the start before anything is created on disk.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            cognate_server::tls::Tls::from_files(cert, key)
                .context("TLS certificate and key (--tls-cert, --tls-key)")?,
        ),
        (None, None) => None,
        _ => bail!("--tls-cert and --tls-key go together"),
    };
    private_data_dir(&args.data_dir)?;
    if args.cluster && std::env::var_os("COGNATE_MASTER_KEY").is_none() {
        bail!(
            "--cluster needs COGNATE_MASTER_KEY (64 hex characters), the same on every daemon: the data keys they share are wrapped with it"
        );
    }
    if args.cluster && args.public_url.is_none() {
        bail!(
            "--cluster needs --public-url (COGNATE_PUBLIC_URL), the same on every daemon: it is the issuer of every token, and any daemon must accept the tokens of the others"
        );
    }
    let keyring = master_key(&args.data_dir)?;
    let unsealed = db_path(&args.data_dir).with_extension("redb.unsealed");
    if unsealed.exists() {
        tracing::warn!(path = %unsealed.display(), "the database from before `cognate seal-log` is still here, with every personal value in plain text: delete it once you trust the converted one");
    }
    let (creds, cred_source) = admin_credentials(&args)?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let listener = tokio::net::TcpListener::bind(&args.listen)
        .await
        .with_context(|| format!("binding {}", args.listen))?;
    let addr: SocketAddr = listener.local_addr()?;
    let public_url = args
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{addr}"));
    let mut config = Config::new(&args.region, &public_url);
    config.admin_credentials = creds;
    config.cors_origins = args.cors_origins.clone();
    config.domain_suffix = args.domain_suffix.trim_matches('.').to_ascii_lowercase();
    config.hash_policy = HashPolicy {
        m_kib: args.argon2_m_kib,
        t: args.argon2_t,
        p: args.argon2_p,
        ..HashPolicy::default()
    };
    if let Some(n) = args.hash_threads {
        config.hash_policy.max_concurrent = n.max(1);
        config.hash_policy.max_queue = 64 * n.max(1);
    }
    if let Some(q) = args.hash_queue {
        config.hash_policy.max_queue = q;
    }
    config.hash_policy.queue_wait = std::time::Duration::from_millis(args.hash_wait_ms);
    let bus = match &args.nats_url {
        Some(url) => Some(
            cognate_bus::Bus::connect_with(url, &args.nats_prefix, &args.nats.settings())
                .await
                .context("NATS settings (--nats-url, credentials, TLS)")?,
        ),
        None => None,
    };
    let outbox = bus
        .as_ref()
        .map(|_| cognate_bus::Outbox::new(cognate_bus::OutboxConfig::default()));
    let writer_config = WriterConfig {
        max_batch: args.max_batch.max(1),
        ..WriterConfig::default()
    };
    let cluster = match (&args.nats_url, args.cluster) {
        (Some(url), true) => Some(
            cognate_server::cluster::ClusterLink::connect(
                url,
                &args.nats_prefix,
                &args.nats.settings(),
                args.log_replicas.max(1),
            )
            .await
            .map_err(|e| anyhow::anyhow!(e))
            .context("joining the cluster's log on NATS (--cluster)")?,
        ),
        _ => None,
    };
    let store = match &cluster {
        Some(link) => Store::open_cluster(
            &db_path(&args.data_dir),
            keyring.clone(),
            writer_config,
            Arc::new(link.clone()),
            Arc::new(link.clone()),
        ),
        None => Store::open(&db_path(&args.data_dir), keyring.clone(), writer_config),
    }
    .context("opening the database")?;
    if let Some(link) = &cluster {
        link.follow(store.poker());
    }
    private_file(&db_path(&args.data_dir))?;
    private_file(&cognate_store::keys_path(&db_path(&args.data_dir)))?;
    let print = match args.print_messages {
        PrintMessages::Always => true,
        PrintMessages::Never => false,
        PrintMessages::Auto => bus.is_none() && addr.ip().is_loopback(),
    };
    let sink: Arc<dyn cognate_server::MessageSink> = if print {
        if bus.is_none() {
            tracing::info!(
                "no NATS server: outgoing messages, codes included, are printed as cognate-message lines on standard output (--print-messages)"
            );
        }
        Arc::new(StdoutSink)
    } else {
        Arc::new(cognate_server::DroppedSink)
    };
    let state = AppState::with_bus(
        config.clone(),
        store,
        keyring,
        sink,
        bus.clone(),
        outbox.as_ref().map(|o| o.stats()),
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    if let Some(link) = cluster {
        tracing::info!(
            replicas = args.log_replicas,
            "cluster mode: the log is the JetStream stream COGNATE_LOG"
        );
        state.set_cluster(link);
    }
    // The outbox publishes the log to JetStream until the server has stopped.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let sweeper = tokio::spawn(cognate_server::housekeeping::run(
        state.clone(),
        std::time::Duration::from_secs(60),
        stop_rx.clone(),
    ));
    let outbox_task = match (outbox, bus) {
        (Some(outbox), Some(bus)) => {
            let source = cognate_server::outbox::LogSource::new(state.clone(), &args.nats_prefix);
            let mut stop = stop_rx.clone();
            tracing::info!(prefix = %args.nats_prefix, "NATS enabled: triggers on, messages and events published");
            let lease = state.cluster().map(|link| link.lease("outbox"));
            Some(tokio::spawn(async move {
                let Some(mut lease) = lease else {
                    outbox
                        .run(source, &bus, async move {
                            let _ = stop.wait_for(|v| *v).await;
                        })
                        .await;
                    return;
                };
                // A cluster publishes from one daemon at a time: the lease holder's.
                loop {
                    tokio::select! {
                        _ = stop.wait_for(|v| *v) => return,
                        held = lease.wait_for(|h| *h) => if held.is_err() { return },
                    }
                    tracing::info!("this daemon now runs the cluster's outbox");
                    let mut lost = lease.clone();
                    let mut stopping = stop.clone();
                    outbox
                        .run(source.clone(), &bus, async move {
                            tokio::select! {
                                _ = stopping.wait_for(|v| *v) => {}
                                _ = lost.wait_for(|h| !*h) => {}
                            }
                        })
                        .await;
                    if *stop.borrow() {
                        return;
                    }
                }
            }))
        }
        _ => None,
    };
    cognate_server::console::use_accounts_file(
        args.data_dir
            .join(cognate_server::console::accounts::FILE_NAME),
    );
    let limits = cognate_server::listener::Limits {
        header_read: std::time::Duration::from_secs(args.http_header_timeout_secs.max(1)),
        body_read: std::time::Duration::from_secs(args.http_body_timeout_secs.max(1)),
        max_connections: args.max_connections.max(1),
    };
    let (app, console) = match args.console_listen.as_str() {
        "same" => (
            cognate_server::synced(cognate_server::router(state.clone()), state.clone()),
            None,
        ),
        "off" => (
            cognate_server::synced(cognate_server::api_router(state.clone()), state.clone()),
            None,
        ),
        console_addr => {
            let console_listener = tokio::net::TcpListener::bind(console_addr)
                .await
                .with_context(|| format!("binding the console to {console_addr}"))?;
            let console_app = cognate_server::synced(
                cognate_server::console::router(state.clone()),
                state.clone(),
            );
            println!(
                "cognate console listening on {scheme}://{}",
                console_listener.local_addr()?
            );
            (
                cognate_server::synced(cognate_server::api_router(state.clone()), state.clone()),
                Some(tokio::spawn(cognate_server::listener::serve(
                    console_listener,
                    console_app,
                    limits,
                    tls.as_ref().map(|t| t.acceptor()),
                    shutdown_signal(),
                ))),
            )
        }
    };
    // Replaced certificate files are looked for while the daemon runs.
    let tls_watch = tls.as_ref().map(|t| t.watch());
    tracing::info!(endpoint = %public_url, region = %config.region, data_dir = %args.data_dir.display(), admin_credentials = %cred_source, tls = tls.is_some(), "cognate started");
    println!("cognate listening on {scheme}://{addr}");
    println!("cognate admin credentials: {cred_source}");
    cognate_server::listener::serve(
        listener,
        app,
        limits,
        tls.as_ref().map(|t| t.acceptor()),
        shutdown_signal(),
    )
    .await?;
    if let Some(console) = console {
        console.await??;
    }
    if let Some(w) = tls_watch {
        w.abort();
    }
    tracing::info!("stopped accepting requests; in-flight requests drained");
    let _ = stop_tx.send(true);
    let _ = sweeper.await;
    if let Some(task) = outbox_task {
        let _ = task.await;
    }
    state.close();
    Ok(())
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
