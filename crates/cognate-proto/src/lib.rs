//! Cognito's `cognito-idp` wire protocol (AWS JSON 1.1): request and response shapes,
//! operation names and the exception vocabulary, generated from botocore's service model
//! (`model.rs`), plus the small hand-written pieces around it.

pub mod messages;
mod model;
#[cfg(feature = "nats")]
pub mod nats;
mod sensitive;
pub mod triggers;
pub mod validate;

pub use model::*;
pub use sensitive::Sensitive;
pub use validate::{Validate, validation_message};

/// `X-Amz-Target` prefix of every operation.
pub const TARGET_PREFIX: &str = "AWSCognitoIdentityProviderService.";
/// Content type of requests and responses.
pub const CONTENT_TYPE: &str = "application/x-amz-json-1.1";

/// The answer of operations whose model has no output shape: `{}`.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Empty {}
