//! TLS termination for the daemon's listeners: a certificate chain and private key from
//! PEM files, served by a rustls resolver that picks up replaced files without a restart.
//!
//! Certificates are renewed by replacing files (cert-manager and the kubelet swap a
//! Secret's files with an atomic symlink change; certbot rewrites them). A watcher checks
//! the files' identity and modification time about once a second on a blocking thread,
//! never during a handshake, and swaps in the new pair when it loads. A pair that fails
//! to load (half-written, unparsable, key and certificate not matching) is reported once
//! and the last good certificate keeps being served: an expiring certificate is better
//! than a daemon that refuses every connection.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock, Weak};
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{InconsistentKeys, ServerConfig};
use tokio_rustls::TlsAcceptor;

/// Why a certificate and key could not be loaded; every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} holds no certificate (expected PEM `BEGIN CERTIFICATE` blocks, leaf first)", path.display())]
    NoCertificate { path: PathBuf },
    #[error("{} is not a PEM certificate chain: {source}", path.display())]
    CertificatePem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the first certificate in {} is not a valid X.509 certificate: {source}", path.display())]
    Certificate {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("{} holds no private key (expected a PEM `PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY` block)", path.display())]
    NoKey { path: PathBuf },
    #[error("{} is not a PEM private key: {source}", path.display())]
    KeyPem {
        path: PathBuf,
        #[source]
        source: rustls::pki_types::pem::Error,
    },
    #[error("the private key in {} is not usable: {source}", path.display())]
    Key {
        path: PathBuf,
        #[source]
        source: rustls::Error,
    },
    #[error("the private key in {} does not match the certificate in {}", key.display(), cert.display())]
    Mismatch { cert: PathBuf, key: PathBuf },
    #[error("TLS settings: {0}")]
    Config(#[source] rustls::Error),
}

/// The process-wide choice of cryptography: aws-lc-rs, as everywhere else in the daemon
/// (named explicitly so a second provider compiled in by some dependency changes nothing).
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// Reads and checks a certificate chain (leaf first, then intermediates) and its key.
pub fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert)?;
    let key_pem = read(key)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| TlsError::CertificatePem {
            path: cert.to_owned(),
            source,
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_owned(),
        });
    }
    let der = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|source| match source {
        rustls::pki_types::pem::Error::NoItemsFound => TlsError::NoKey {
            path: key.to_owned(),
        },
        source => TlsError::KeyPem {
            path: key.to_owned(),
            source,
        },
    })?;
    let signing_key = provider
        .key_provider
        .load_private_key(der)
        .map_err(|source| TlsError::Key {
            path: key.to_owned(),
            source,
        })?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // Unknown: the key type cannot say its public key; the handshake will tell.
        Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => Ok(certified),
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::Mismatch {
            cert: cert.to_owned(),
            key: key.to_owned(),
        }),
        Err(source) => Err(TlsError::Certificate {
            path: cert.to_owned(),
            source,
        }),
    }
}

/// What identifies one version of a file: a replaced file (rename or symlink swap) has a
/// new inode, a rewritten one a new modification or change time or size. `None` when
/// the file cannot be examined (in the middle of a swap, or gone).
type FileStamp = Option<(u64, u64, i64, i64, i64, i64, u64)>;

fn stamp(path: &Path) -> FileStamp {
    use std::os::unix::fs::MetadataExt as _;
    // `metadata` follows symlinks, so a swapped `..data` link shows as a new inode.
    let m = std::fs::metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
        m.len(),
    ))
}

/// Outcome of one look at the files.
#[derive(Debug, PartialEq, Eq)]
pub enum Reload {
    /// The files are as they were at the last look.
    Unchanged,
    /// A new certificate is served from now on.
    Reloaded,
    /// The files changed but did not load; the previous certificate is still served.
    Kept,
}

/// The certificate resolver: serves the last good pair, replaced by [`Self::reload_if_changed`].
#[derive(Debug)]
pub struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    current: RwLock<Arc<CertifiedKey>>,
    /// The stamps of the files at the last load attempt, good or not, so a broken pair is
    /// reported once rather than every second.
    seen: Mutex<(FileStamp, FileStamp)>,
}

impl ReloadingCert {
    /// Loads the pair; any problem is an error (the daemon does not start without TLS
    /// when TLS was asked for).
    pub fn open(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let provider = provider();
        // Stamped before reading: a change during the read shows at the next look.
        let seen = (stamp(cert), stamp(key));
        let loaded = load(cert, key, &provider)?;
        Ok(ReloadingCert {
            cert: cert.to_owned(),
            key: key.to_owned(),
            provider,
            current: RwLock::new(Arc::new(loaded)),
            seen: Mutex::new(seen),
        })
    }

    /// The certificate chain served now.
    pub fn current(&self) -> Arc<CertifiedKey> {
        match self.current.read() {
            Ok(c) => Arc::clone(&c),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Loads the files again if either changed since the last look. Blocking (file
    /// system reads); call it off the async workers.
    pub fn reload_if_changed(&self) -> Reload {
        let now = (stamp(&self.cert), stamp(&self.key));
        {
            let mut seen = match self.seen.lock() {
                Ok(s) => s,
                Err(poisoned) => poisoned.into_inner(),
            };
            if *seen == now {
                return Reload::Unchanged;
            }
            *seen = now;
        }
        match load(&self.cert, &self.key, &self.provider) {
            Ok(loaded) => {
                let changed = loaded.cert != self.current().cert;
                let mut current = match self.current.write() {
                    Ok(c) => c,
                    Err(poisoned) => poisoned.into_inner(),
                };
                *current = Arc::new(loaded);
                drop(current);
                if changed {
                    tracing::info!(cert = %self.cert.display(), key = %self.key.display(), "TLS certificate reloaded; new connections use it");
                }
                Reload::Reloaded
            }
            Err(e) => {
                tracing::warn!(error = %e, "the TLS certificate or key changed but does not load; still serving the previous certificate");
                Reload::Kept
            }
        }
    }

    /// Looks at the files every `every` on a blocking thread, until the resolver is
    /// dropped (every listener using it has stopped).
    pub fn watch(self: &Arc<Self>, every: Duration) -> tokio::task::JoinHandle<()> {
        let weak: Weak<Self> = Arc::downgrade(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(this) = weak.upgrade() else { break };
                if tokio::task::spawn_blocking(move || this.reload_if_changed())
                    .await
                    .is_err()
                {
                    break;
                }
            }
        })
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

/// How often the certificate files are looked at.
pub const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// TLS for the daemon's listeners: one acceptor (HTTP/1.1 only, as the server is) over a
/// reloading certificate.
#[derive(Clone)]
pub struct Tls {
    acceptor: TlsAcceptor,
    resolver: Arc<ReloadingCert>,
}

impl Tls {
    /// Loads the pair (an error names the file and the problem).
    pub fn from_files(cert: &Path, key: &Path) -> Result<Self, TlsError> {
        let resolver = Arc::new(ReloadingCert::open(cert, key)?);
        let mut config = ServerConfig::builder_with_provider(Arc::clone(&resolver.provider))
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(resolver.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            resolver,
        })
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Starts looking for replaced files every [`RELOAD_CHECK`].
    pub fn watch(&self) -> tokio::task::JoinHandle<()> {
        self.resolver.watch(RELOAD_CHECK)
    }
}

#[cfg(test)]
mod tests;
