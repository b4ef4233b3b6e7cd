//! The one error type of the API and the one place it becomes an HTTP response: Cognito's
//! exception name in `__type` and `x-amzn-ErrorType`, a message for people, never an
//! internal detail (those are logged).

use axum::response::{IntoResponse, Response};
use cognate_crypto::PasswordError;
use cognate_domain::{DomainError, ErrorKind};
use http::{HeaderValue, StatusCode};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub kind: ErrorKind,
    pub message: String,
}

pub type Result<T, E = ApiError> = std::result::Result<T, E>;

impl ApiError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }
    pub fn not_authorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotAuthorized, message)
    }
    pub fn internal(context: &str, detail: impl std::fmt::Display) -> Self {
        tracing::error!(%context, error = %detail, "internal error");
        Self::new(
            ErrorKind::InternalError,
            "An internal error occurred; it has been logged.",
        )
    }
}

impl From<DomainError> for ApiError {
    fn from(e: DomainError) -> Self {
        Self {
            kind: e.kind,
            message: e.message,
        }
    }
}

impl From<cognate_store::Error> for ApiError {
    fn from(e: cognate_store::Error) -> Self {
        match e {
            cognate_store::Error::Refused(d) => d.into(),
            cognate_store::Error::Unavailable(detail) => {
                tracing::warn!(error = %detail, "a change could not be committed to the shared log");
                ApiError::new(
                    ErrorKind::InternalError,
                    "The change could not be committed to the cluster's log right now; nothing was changed. Try again.",
                )
            }
            other => ApiError::internal("store", other),
        }
    }
}

impl From<PasswordError> for ApiError {
    fn from(e: PasswordError) -> Self {
        match e {
            PasswordError::Busy => ApiError::new(
                ErrorKind::TooManyRequests,
                "Too many requests are waiting for password hashing; retry shortly.",
            ),
            other => ApiError::internal("password hashing", other),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.kind.status()).unwrap_or(StatusCode::BAD_REQUEST);
        let body = serde_json::json!({ "__type": self.kind.name(), "message": self.message });
        let mut resp = (status, body.to_string()).into_response();
        let h = resp.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static(cognate_proto::CONTENT_TYPE),
        );
        h.insert(
            "x-amzn-errortype",
            HeaderValue::from_static(self.kind.name()),
        );
        resp
    }
}
