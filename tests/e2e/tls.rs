//! The daemon as its own TLS endpoint (docs/tls.md): HTTPS only when given a certificate
//! chain and key, the AWS SDK and a plain rustls client trusting only a throw-away root,
//! certificates replaced on disk (as a Kubernetes Secret volume does it) served to new
//! connections, broken replacements ignored, stalled handshakes bounded like stalled
//! headers, and a start refused when the key does not match the certificate.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::common::*;

/// How long a replaced certificate may take to be served (the daemon looks every second).
const RELOAD_WAIT: Duration = Duration::from_secs(15);

/// A root CA (the only thing clients trust), an intermediate CA that signs the leaves,
/// and a certificate directory laid out as the kubelet mounts a `kubernetes.io/tls`
/// Secret: `tls.crt` and `tls.key` are symlinks through `..data`, which is swapped to a
/// new version directory at each update.
struct Pki {
    dir: tempfile::TempDir,
    root_pem: String,
    intermediate: Issuer<'static, KeyPair>,
    intermediate_pem: String,
    versions: usize,
}

/// One leaf: its certificate (DER, to compare with what a server presents), the PEM
/// chain to install (leaf, then intermediate) and its key.
struct Leaf {
    der: CertificateDer<'static>,
    chain_pem: String,
    key_pem: String,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("cognate-tls-")
            .tempdir()
            .unwrap();
        let ca = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, name);
            p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
            p
        };
        let root_key = KeyPair::generate().unwrap();
        let root_params = ca("cognate test root");
        let root_pem = root_params.self_signed(&root_key).unwrap().pem();
        let root = Issuer::new(root_params, root_key);
        let intermediate_key = KeyPair::generate().unwrap();
        let intermediate_params = ca("cognate test intermediate");
        let intermediate_pem = intermediate_params
            .signed_by(&intermediate_key, &root)
            .unwrap()
            .pem();
        let pki = Pki {
            dir,
            root_pem,
            intermediate: Issuer::new(intermediate_params, intermediate_key),
            intermediate_pem,
            versions: 0,
        };
        std::fs::write(pki.dir.path().join("root.pem"), &pki.root_pem).unwrap();
        pki
    }

    /// A new leaf for 127.0.0.1 and localhost with a fresh key and `name` as subject.
    fn leaf(&self, name: &str) -> Leaf {
        let key = KeyPair::generate().unwrap();
        let mut p = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
        p.subject_alt_names
            .push(SanType::IpAddress(Ipv4Addr::LOCALHOST.into()));
        p.distinguished_name.push(DnType::CommonName, name);
        let cert = p.signed_by(&key, &self.intermediate).unwrap();
        Leaf {
            der: cert.der().clone(),
            chain_pem: format!("{}{}", cert.pem(), self.intermediate_pem),
            key_pem: key.serialize_pem(),
        }
    }

    fn cert_path(&self) -> PathBuf {
        self.dir.path().join("tls.crt")
    }

    fn key_path(&self) -> PathBuf {
        self.dir.path().join("tls.key")
    }

    /// The daemon's `tls` option for the mounted files.
    fn files(&self) -> Option<(PathBuf, PathBuf)> {
        Some((self.cert_path(), self.key_path()))
    }

    /// Installs a certificate and key as the kubelet updates a Secret volume: a new
    /// version directory, then an atomic rename of the `..data` symlink onto it.
    fn install(&mut self, cert_pem: &str, key_pem: &str) {
        self.versions += 1;
        let root = self.dir.path();
        let version = format!("..v{}", self.versions);
        std::fs::create_dir(root.join(&version)).unwrap();
        std::fs::write(root.join(&version).join("tls.crt"), cert_pem).unwrap();
        std::fs::write(root.join(&version).join("tls.key"), key_pem).unwrap();
        let tmp = root.join("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, root.join("..data")).unwrap();
        for name in ["tls.crt", "tls.key"] {
            if std::fs::symlink_metadata(root.join(name)).is_err() {
                std::os::unix::fs::symlink(Path::new("..data").join(name), root.join(name))
                    .unwrap();
            }
        }
    }

    fn install_leaf(&mut self, leaf: &Leaf) {
        let (cert, key) = (leaf.chain_pem.clone(), leaf.key_pem.clone());
        self.install(&cert, &key);
    }

    /// A rustls client that trusts only the root, offering `alpn`. It never resumes a
    /// session: a resumed connection is shown no certificate (rustls reports the one of
    /// the original session), and the tests look at what a full handshake presents.
    fn client(&self, alpn: &[&[u8]]) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_slice(self.root_pem.as_bytes()).unwrap())
            .unwrap();
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        config.resumption = rustls::client::Resumption::disabled();
        TlsConnector::from(Arc::new(config))
    }

    /// An SDK client over HTTPS whose only trusted root is the test root.
    fn sdk(&self, d: &Daemon) -> Client {
        use aws_smithy_http_client::tls::{self, TlsContext, TrustStore};
        let http_client = aws_smithy_http_client::Builder::new()
            .tls_provider(tls::Provider::Rustls(
                tls::rustls_provider::CryptoMode::AwsLc,
            ))
            .tls_context(
                TlsContext::builder()
                    .with_trust_store(
                        TrustStore::empty()
                            .with_native_roots(false)
                            .with_pem_certificate(self.root_pem.as_bytes()),
                    )
                    .build()
                    .unwrap(),
            )
            .build_https();
        let config = cip::Config::builder()
            .endpoint_url(d.endpoint())
            .region(cip::config::Region::new("us-east-1"))
            .credentials_provider(cip::config::Credentials::new(
                d.admin_access_key(),
                d.admin_secret(),
                None,
                None,
                "test",
            ))
            .behavior_version(cip::config::BehaviorVersion::latest())
            .http_client(http_client)
            .build();
        Client::from_conf(config)
    }
}

/// A TLS connection to 127.0.0.1:`port` (the certificate must name that address).
async fn connect(tls: &TlsConnector, port: u16) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).await?;
    tls.connect(ServerName::IpAddress(Ipv4Addr::LOCALHOST.into()), tcp)
        .await
}

/// The leaf certificate a new connection is shown.
async fn presented(tls: &TlsConnector, port: u16) -> CertificateDer<'static> {
    let s = connect(tls, port).await.unwrap();
    s.get_ref().1.peer_certificates().unwrap()[0].clone()
}

/// Polls new connections until one is shown `want`, or fails at the deadline.
async fn wait_presented(d: &Daemon, tls: &TlsConnector, want: &Leaf, what: &str) {
    let deadline = Instant::now() + RELOAD_WAIT;
    loop {
        if presented(tls, d.port()).await == want.der {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: new connections were not shown the new certificate within {RELOAD_WAIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Sends one HTTP/1.1 request (`Connection: close`) and returns the whole response.
async fn request(s: &mut TlsStream<TcpStream>, head: &str, body: &str) -> String {
    let msg = format!(
        "{head}\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.write_all(msg.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

async fn start_tls(pki: &Pki, extra_args: &[&str]) -> Daemon {
    Daemon::start_with(DaemonOptions {
        tls: pki.files(),
        extra_args: extra_args.iter().map(|a| (*a).to_owned()).collect(),
        ..DaemonOptions::default()
    })
    .await
}

#[tokio::test]
async fn https_with_a_chain_serves_the_sdk_and_the_wire_api() {
    let mut pki = Pki::new();
    let leaf = pki.leaf("cognate leaf one");
    pki.install_leaf(&leaf);
    let d = start_tls(&pki, &["--console-listen", "127.0.0.1:0"]).await;
    let port = d.port();
    assert_eq!(d.endpoint(), format!("https://127.0.0.1:{port}"));

    // The official SDK, trusting only the root: the intermediate comes from the daemon.
    let c = pki.sdk(&d);
    let pool = create_pool(&c, "over-tls").await;
    let client = create_client(&c, &pool).await;
    admin_confirmed_user(&c, &pool, "tina", &[]).await;
    let tokens = login(&c, &client, "tina", PASSWORD).await;
    // Without --public-url, the issuer is the https address.
    assert_eq!(
        claims(tokens.id_token().unwrap())["iss"],
        format!("https://127.0.0.1:{port}/{pool}")
    );

    // A plain rustls client: HTTP/1.1 is chosen by ALPN, and a wire API call is answered
    // as Cognito answers it.
    let tls = pki.client(&[b"h2", b"http/1.1"]);
    let mut s = connect(&tls, port).await.unwrap();
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    assert_eq!(s.get_ref().1.peer_certificates().unwrap().len(), 2);
    let body = json!({
        "AuthFlow": "USER_PASSWORD_AUTH",
        "ClientId": client,
        "AuthParameters": {"USERNAME": "tina", "PASSWORD": "Wr0ng-password!"}
    })
    .to_string();
    let resp = request(
        &mut s,
        &format!(
            "POST / HTTP/1.1\r\nContent-Type: {AMZ_JSON}\r\nX-Amz-Target: AWSCognitoIdentityProviderService.InitiateAuth"
        ),
        &body,
    )
    .await;
    assert!(resp.starts_with("HTTP/1.1 400 "), "{resp}");
    assert!(resp.contains("NotAuthorizedException"), "{resp}");

    // The console on its own address is HTTPS too, with the same certificate.
    let out = d.all_output();
    let console = out
        .lines()
        .find_map(|l| l.strip_prefix("cognate console listening on https://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no https console address in {out}"));
    let console_port: u16 = console.trim().parse().unwrap();
    let mut s = connect(&tls, console_port).await.unwrap();
    assert_eq!(s.get_ref().1.peer_certificates().unwrap()[0], leaf.der);
    let resp = request(&mut s, "GET /console/login HTTP/1.1", "").await;
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
}

#[tokio::test]
async fn plain_http_to_the_tls_port_fails() {
    let mut pki = Pki::new();
    let leaf = pki.leaf("cognate leaf");
    pki.install_leaf(&leaf);
    let d = start_tls(&pki, &[]).await;
    let port = d.port();
    let plain = http()
        .get(format!("http://127.0.0.1:{port}/healthz"))
        .send()
        .await;
    assert!(plain.is_err(), "plain http was answered: {plain:?}");
    // The same port answers over TLS, so the failure is the scheme, not the daemon.
    let mut s = connect(&pki.client(&[]), port).await.unwrap();
    let resp = request(&mut s, "GET /healthz HTTP/1.1", "").await;
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");
}

#[tokio::test]
async fn replaced_certificates_reach_new_connections_and_broken_ones_do_not() {
    let mut pki = Pki::new();
    let first = pki.leaf("cognate leaf one");
    pki.install_leaf(&first);
    let d = start_tls(&pki, &[]).await;
    let tls = pki.client(&[]);
    assert_eq!(presented(&tls, d.port()).await, first.der);
    // A connection opened before the swap keeps working after it.
    let mut before = connect(&tls, d.port()).await.unwrap();

    let second = pki.leaf("cognate leaf two");
    assert_ne!(second.der, first.der);
    pki.install_leaf(&second);
    wait_presented(&d, &tls, &second, "after a Secret update").await;
    let resp = request(&mut before, "GET /healthz HTTP/1.1", "").await;
    assert!(resp.starts_with("HTTP/1.1 200 "), "{resp}");

    // Broken replacements: a certificate with a key that is not its own, then garbage.
    // Each is reported, and the second certificate stays.
    let third = pki.leaf("cognate leaf three");
    let broken: [(String, String); 2] = [
        (third.chain_pem.clone(), second.key_pem.clone()),
        (
            "-----BEGIN CERTIFICATE-----\nnot base64\n".to_owned(),
            "garbage".to_owned(),
        ),
    ];
    for (i, (cert, key)) in broken.iter().enumerate() {
        pki.install(cert, key);
        let deadline = Instant::now() + RELOAD_WAIT;
        while d
            .all_output()
            .matches("still serving the previous certificate")
            .count()
            <= i
        {
            assert!(
                Instant::now() < deadline,
                "broken replacement {i} was not reported; stderr:\n{}",
                d.stderr_tail(20)
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            presented(&tls, d.port()).await,
            second.der,
            "broken replacement {i}"
        );
    }

    // Repaired files are picked up again.
    let fourth = pki.leaf("cognate leaf four");
    pki.install_leaf(&fourth);
    wait_presented(&d, &tls, &fourth, "after a repair").await;
}

#[tokio::test]
async fn stalled_handshakes_are_cut_and_hold_a_connection_slot() {
    let mut pki = Pki::new();
    let leaf = pki.leaf("cognate leaf");
    pki.install_leaf(&leaf);
    let d = start_tls(
        &pki,
        &["--http-header-timeout-secs", "3", "--max-connections", "1"],
    )
    .await;
    // A client that opens a connection and never starts its handshake.
    let mut stalled = TcpStream::connect((Ipv4Addr::LOCALHOST, d.port()))
        .await
        .unwrap();
    let tls = pki.client(&[]);
    let port = d.port();
    let waiting = tokio::spawn(async move {
        let started = Instant::now();
        let s = connect(&tls, port).await.map(|_| ());
        (s, started.elapsed())
    });
    // While the stalled connection holds the only slot, nobody else is served. (A wait
    // for something that must not happen; the slot is held for 3 s.)
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !waiting.is_finished(),
        "a second handshake completed while the only connection slot was taken"
    );
    // ...and it is closed once the header timeout has passed.
    let mut buf = [0u8; 16];
    let closed = tokio::time::timeout(Duration::from_secs(20), stalled.read(&mut buf)).await;
    assert!(
        matches!(closed, Ok(Ok(0)) | Ok(Err(_))),
        "the stalled handshake was not cut: {closed:?}"
    );
    let (second, waited) = tokio::time::timeout(Duration::from_secs(20), waiting)
        .await
        .expect("the waiting handshake never completed")
        .unwrap();
    second.unwrap();
    assert!(waited >= Duration::from_secs(1), "waited only {waited:?}");
}

#[tokio::test]
async fn a_key_that_does_not_match_the_certificate_stops_the_start() {
    let mut pki = Pki::new();
    let one = pki.leaf("cognate leaf one");
    let two = pki.leaf("cognate leaf two");
    pki.install(&one.chain_pem, &two.key_pem);
    let err = Daemon::try_start_with(DaemonOptions {
        tls: pki.files(),
        ..DaemonOptions::default()
    })
    .await
    .err()
    .expect("the daemon started with a mismatched key");
    let key = pki.key_path().display().to_string();
    assert!(
        err.contains("does not match the certificate") && err.contains(&key),
        "unclear refusal: {err}"
    );

    // A missing key file is named too.
    let missing = pki.dir.path().join("missing.key");
    let err = Daemon::try_start_with(DaemonOptions {
        tls: Some((pki.cert_path(), missing.clone())),
        ..DaemonOptions::default()
    })
    .await
    .err()
    .expect("the daemon started without its key file");
    assert!(
        err.contains(&missing.display().to_string()),
        "the missing file is not named: {err}"
    );
}
