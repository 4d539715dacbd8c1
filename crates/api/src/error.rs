//! The one error type of the API and its mapping to HTTP.
//!
//! Every error answers with JSON `{code, message, error, status}`: `code` and
//! `message` for API clients, `error` and `status` because the SDKs read those (the TS
//! SDK takes a register reply's outcome from `status`, not from the HTTP status).
//! Server-side failures (5xx) are logged here, once, and answered without details.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is malformed or invalid (400).
    #[error("{message}")]
    Invalid {
        /// Machine-readable reason, e.g. `invalid_json`.
        code: &'static str,
        message: String,
    },
    /// The body, or one event, is over its size limit (413).
    #[error("{0}")]
    TooLarge(String),
    /// Missing or wrong credentials (401).
    #[error("{0}")]
    Unauthorized(String),
    /// The thing asked for does not exist (404).
    #[error("{0} not found")]
    NotFound(String),
    /// The request clashes with stored state (409).
    #[error("{0}")]
    Conflict(String),
    /// An app could not be synced (502): the message says what the app answered.
    #[error("{0}")]
    Sync(String),
    /// A dependency (the database) is down (503). Logged, not returned.
    #[error("service unavailable: {0}")]
    Unavailable(String),
    /// A bug or an unexpected failure (500). Logged, not returned.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Results of handlers.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A 400 with a code and a message.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Error::Invalid {
            code,
            message: message.into(),
        }
    }

    /// The HTTP status.
    pub fn status(&self) -> StatusCode {
        match self {
            Error::Invalid { .. } => StatusCode::BAD_REQUEST,
            Error::TooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Error::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            Error::NotFound(_) => StatusCode::NOT_FOUND,
            Error::Conflict(_) => StatusCode::CONFLICT,
            Error::Sync(_) => StatusCode::BAD_GATEWAY,
            Error::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Error::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Invalid { code, .. } => code,
            Error::TooLarge(_) => "payload_too_large",
            Error::Unauthorized(_) => "unauthorized",
            Error::NotFound(_) => "not_found",
            Error::Conflict(_) => "conflict",
            Error::Sync(_) => "sync_failed",
            Error::Unavailable(_) => "unavailable",
            Error::Internal(_) => "internal",
        }
    }

    /// What the client is told.
    fn public_message(&self) -> String {
        match self {
            Error::Unavailable(_) => "the service is unavailable; try again shortly".into(),
            Error::Internal(_) => "internal error; see the server log".into(),
            other => other.to_string(),
        }
    }
}

impl From<sluice_store::Error> for Error {
    fn from(err: sluice_store::Error) -> Self {
        match err {
            sluice_store::Error::NotFound(what) => Error::NotFound(what),
            sluice_store::Error::Conflict(what) => Error::Conflict(what),
            other => Error::Unavailable(other.to_string()),
        }
    }
}

impl From<sluice_broker::Error> for Error {
    fn from(err: sluice_broker::Error) -> Self {
        match err {
            sluice_broker::Error::Store(err) => err.into(),
            err @ sluice_broker::Error::InvalidFunction { .. } => {
                Error::invalid("invalid_function", err.to_string())
            }
            sluice_broker::Error::Sync { message, .. } => Error::Sync(message),
            sluice_broker::Error::Closed => Error::Unavailable("broker is shut down".into()),
        }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(error = %self, code = self.code(), "request failed");
        }
        let message = self.public_message();
        let body = json!({
            "code": self.code(),
            "message": message,
            "error": message,
            "status": status.as_u16(),
        });
        (status, Json(body)).into_response()
    }
}
