//! Console accounts: people who sign in to the console with a name, a password and
//! optionally a TOTP code, kept in `console-users.json` in the data directory.
//!
//! A file, not events: redb holds its database file exclusively while the daemon runs,
//! so `cognate console-user add` could not append to the log of a running daemon, and
//! these are operator credentials for the daemon itself, not user-pool data: they must
//! not reach the domain-event stream or the pool projections. The file is 0600, holds
//! argon2id PHC strings and TOTP secrets sealed with the master key, is replaced
//! atomically, and is read again whenever it changes, so accounts added or removed
//! while the daemon runs take effect at once (removal also ends open sessions).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::SystemTime;

use cognate_crypto::{Keyring, PasswordHasher};
use serde::{Deserialize, Serialize};

/// The on-disk shape, versioned like every persisted format.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AccountsFileV1 {
    pub version: u32,
    pub accounts: Vec<Account>,
}

#[derive(Clone, Serialize, Deserialize)]
pub struct Account {
    pub name: String,
    /// argon2id PHC string.
    pub password: String,
    /// TOTP secret sealed with the master key, when the account uses a second factor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_sealed: Option<String>,
    pub created_at: i64,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("name", &self.name)
            .field("totp", &self.totp_sealed.is_some())
            .finish()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    #[error("reading or writing {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a console accounts file: {source}")]
    Format {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("{0}")]
    Invalid(String),
    #[error("password hashing: {0}")]
    Hash(#[from] cognate_crypto::PasswordError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> AccountError + '_ {
    move |source| AccountError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// The accounts file's name inside a data directory.
pub const FILE_NAME: &str = "console-users.json";

/// Reads the accounts file; a missing file means no accounts.
pub fn load(path: &Path) -> Result<AccountsFileV1, AccountError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(AccountsFileV1 {
                version: 1,
                accounts: vec![],
            });
        }
        Err(e) => return Err(io(path)(e)),
    };
    let file: AccountsFileV1 =
        serde_json::from_str(&text).map_err(|source| AccountError::Format {
            path: path.display().to_string(),
            source,
        })?;
    if file.version != 1 {
        return Err(AccountError::Invalid(format!(
            "{} has version {}, this build reads version 1",
            path.display(),
            file.version
        )));
    }
    Ok(file)
}

/// Writes the file readable only by its owner, replacing the old one atomically.
pub fn save(path: &Path, file: &AccountsFileV1) -> Result<(), AccountError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let json = serde_json::to_string_pretty(file).map_err(|source| AccountError::Format {
        path: path.display().to_string(),
        source,
    })?;
    let tmp = path.with_extension("json.tmp");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io(&tmp))?;
    f.write_all(json.as_bytes()).map_err(io(&tmp))?;
    f.write_all(b"\n").map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(io(path))?;
    Ok(())
}

/// Whether a name is acceptable: short, printable, no spaces (it appears in `console:<name>`).
pub fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._@-+".contains(c))
}

/// Shortest password the CLI accepts for a console account.
pub const MIN_PASSWORD: usize = 12;

/// What `add` created: the TOTP secret (base32) and its otpauth URI, when asked for.
pub struct Added {
    pub replaced: bool,
    pub totp: Option<(String, String)>,
}

/// An account to add.
pub struct NewAccount<'a> {
    pub name: &'a str,
    pub password: &'a str,
    /// Give the account a TOTP second factor.
    pub totp: bool,
    /// Replace an account of the same name instead of refusing.
    pub replace: bool,
}

/// Adds (or with `replace`, replaces) an account: hashes the password with `hasher` and,
/// with `totp`, makes a TOTP secret sealed with `keyring`.
pub async fn add(
    path: &Path,
    hasher: &PasswordHasher,
    keyring: &Keyring,
    new: NewAccount<'_>,
    now: i64,
) -> Result<Added, AccountError> {
    let NewAccount {
        name,
        password,
        totp,
        replace,
    } = new;
    if !valid_name(name) {
        return Err(AccountError::Invalid(
            "a name is 1-64 characters of letters, digits and . _ @ - +".into(),
        ));
    }
    if password.chars().count() < MIN_PASSWORD {
        return Err(AccountError::Invalid(format!(
            "the password must have at least {MIN_PASSWORD} characters"
        )));
    }
    let mut file = load(path)?;
    let existing = file.accounts.iter().position(|a| a.name == name);
    if existing.is_some() && !replace {
        return Err(AccountError::Invalid(format!(
            "an account named {name} exists (use --replace to change it)"
        )));
    }
    let hash = hasher.hash(password.to_owned()).await?;
    let mut out_totp = None;
    let totp_sealed = if totp {
        let secret = cognate_crypto::totp::generate_secret();
        let b32 = cognate_crypto::totp::base32(&secret);
        let uri = format!("otpauth://totp/cognate:{name}?secret={b32}&issuer=cognate");
        out_totp = Some((b32, uri));
        Some(keyring.seal(&secret))
    } else {
        None
    };
    let account = Account {
        name: name.to_owned(),
        password: hash,
        totp_sealed,
        created_at: now,
    };
    match existing {
        Some(i) => file.accounts[i] = account,
        None => file.accounts.push(account),
    }
    file.version = 1;
    save(path, &file)?;
    Ok(Added {
        replaced: existing.is_some(),
        totp: out_totp,
    })
}

/// Removes an account; `false` when there was none of that name.
pub fn remove(path: &Path, name: &str) -> Result<bool, AccountError> {
    let mut file = load(path)?;
    let before = file.accounts.len();
    file.accounts.retain(|a| a.name != name);
    if file.accounts.len() == before {
        return Ok(false);
    }
    save(path, &file)?;
    Ok(true)
}

/// The accounts file as the daemon sees it: read again whenever its mtime changes.
pub(crate) struct Accounts {
    path: PathBuf,
    cache: Mutex<Option<(Option<SystemTime>, Vec<Account>)>>,
}

impl Accounts {
    pub(crate) fn new(path: PathBuf) -> Self {
        Self {
            path,
            cache: Mutex::new(None),
        }
    }

    fn current(&self) -> Vec<Account> {
        let mtime = std::fs::metadata(&self.path)
            .and_then(|m| m.modified())
            .ok();
        let Ok(mut cache) = self.cache.lock() else {
            return vec![];
        };
        if let Some((seen, accounts)) = cache.as_ref()
            && *seen == mtime
        {
            return accounts.clone();
        }
        let accounts = match load(&self.path) {
            Ok(f) => f.accounts,
            Err(e) => {
                tracing::error!(error = %e, "console accounts file unreadable; no console account can sign in");
                vec![]
            }
        };
        *cache = Some((mtime, accounts.clone()));
        accounts
    }

    pub(crate) fn find(&self, name: &str) -> Option<Account> {
        self.current().into_iter().find(|a| a.name == name)
    }

    pub(crate) fn exists(&self, name: &str) -> bool {
        self.find(name).is_some()
    }
}
