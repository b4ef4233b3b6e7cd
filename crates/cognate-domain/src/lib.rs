//! The pure domain of user pools: identifiers, the attribute schema, the password policy,
//! the state of pools, app clients, users and sessions, the events that change them, and
//! `decide`/`evolve`. No I/O, no clock, no randomness: time, ids, hashes and codes come
//! in with the commands, so every rule is a plain unit test.

pub mod command;
pub mod error;
pub mod event;
pub mod filter;
pub mod ids;
pub mod policy;
pub mod schema;
pub mod state;

pub use command::{Command, Outcome, decide};
pub use error::{DomainError, ErrorKind};
pub use event::{Envelope, Event, evolve};
pub use state::{
    BrandingAsset, Client, CodePurpose, Device, Group, Logo, ManagedLoginBranding, MfaSettings,
    PendingCode, Pool, PoolDomain, Projections, ResourceServer, Session, SrpVerifier,
    UiCustomization, User, UserStatus, View,
};

/// Milliseconds since the Unix epoch, always passed in by the caller.
pub type Millis = i64;

/// Constant-time equality for hashes compared in `decide` (codes, secrets).
pub fn ct_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
