//! The public error vocabulary: Cognito's exception names. Every failure a caller can see
//! is one of these kinds with a message a person can act on; internal details never leave
//! the daemon.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    InvalidParameter,
    NotAuthorized,
    ResourceNotFound,
    UserNotFound,
    UsernameExists,
    AliasExists,
    GroupExists,
    InvalidPassword,
    CodeMismatch,
    ExpiredCode,
    LimitExceeded,
    TooManyRequests,
    TooManyFailedAttempts,
    UserNotConfirmed,
    PasswordResetRequired,
    SoftwareTokenMfaNotFound,
    EnableSoftwareTokenMfa,
    InvalidUserPoolConfiguration,
    InternalError,
    ConcurrentModification,
    UnsupportedTokenType,
    Unauthorized,
    UnsupportedOperation,
    UnsupportedUserState,
    UserLambdaValidation,
    UnexpectedLambda,
    InvalidLambdaResponse,
    CodeDeliveryFailure,
    InvalidOAuthFlow,
    ScopeDoesNotExist,
    ManagedLoginBrandingExists,
    // Transport-level errors of the AWS JSON protocol.
    MissingAuthenticationToken,
    UnrecognizedClient,
    InvalidSignature,
    IncompleteSignature,
    Serialization,
    UnknownOperation,
    RequestEntityTooLarge,
}

impl ErrorKind {
    /// The `__type` / `x-amzn-ErrorType` name.
    pub fn name(self) -> &'static str {
        use ErrorKind::*;
        match self {
            InvalidParameter => "InvalidParameterException",
            NotAuthorized => "NotAuthorizedException",
            ResourceNotFound => "ResourceNotFoundException",
            UserNotFound => "UserNotFoundException",
            UsernameExists => "UsernameExistsException",
            AliasExists => "AliasExistsException",
            GroupExists => "GroupExistsException",
            InvalidPassword => "InvalidPasswordException",
            CodeMismatch => "CodeMismatchException",
            ExpiredCode => "ExpiredCodeException",
            LimitExceeded => "LimitExceededException",
            TooManyRequests => "TooManyRequestsException",
            TooManyFailedAttempts => "TooManyFailedAttemptsException",
            UserNotConfirmed => "UserNotConfirmedException",
            PasswordResetRequired => "PasswordResetRequiredException",
            SoftwareTokenMfaNotFound => "SoftwareTokenMFANotFoundException",
            EnableSoftwareTokenMfa => "EnableSoftwareTokenMFAException",
            InvalidUserPoolConfiguration => "InvalidUserPoolConfigurationException",
            InternalError => "InternalErrorException",
            ConcurrentModification => "ConcurrentModificationException",
            UnsupportedTokenType => "UnsupportedTokenTypeException",
            Unauthorized => "UnauthorizedException",
            UnsupportedOperation => "UnsupportedOperationException",
            UnsupportedUserState => "UnsupportedUserStateException",
            UserLambdaValidation => "UserLambdaValidationException",
            UnexpectedLambda => "UnexpectedLambdaException",
            InvalidLambdaResponse => "InvalidLambdaResponseException",
            CodeDeliveryFailure => "CodeDeliveryFailureException",
            InvalidOAuthFlow => "InvalidOAuthFlowException",
            ScopeDoesNotExist => "ScopeDoesNotExistException",
            ManagedLoginBrandingExists => "ManagedLoginBrandingExistsException",
            MissingAuthenticationToken => "MissingAuthenticationTokenException",
            UnrecognizedClient => "UnrecognizedClientException",
            InvalidSignature => "InvalidSignatureException",
            IncompleteSignature => "IncompleteSignatureException",
            Serialization => "SerializationException",
            UnknownOperation => "UnknownOperationException",
            RequestEntityTooLarge => "RequestEntityTooLargeException",
        }
    }

    /// HTTP status: 500 only for our own faults, 413 for oversized bodies, 400 otherwise.
    pub fn status(self) -> u16 {
        match self {
            ErrorKind::InternalError => 500,
            ErrorKind::RequestEntityTooLarge => 413,
            ErrorKind::MissingAuthenticationToken => 403,
            _ => 400,
        }
    }
}

/// A refusal with the exception kind and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainError {
    pub kind: ErrorKind,
    pub message: String,
}

impl DomainError {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::InvalidParameter, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::ResourceNotFound, message)
    }
    pub fn user_not_found() -> Self {
        Self::new(ErrorKind::UserNotFound, "User does not exist.")
    }
    pub fn not_authorized(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::NotAuthorized, message)
    }
}

impl fmt::Display for DomainError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.name(), self.message)
    }
}

impl std::error::Error for DomainError {}
