//! The executor's [`Error`].

/// What can go wrong outside a call (calls themselves end in an [`Outcome`](sluice_core::Outcome)).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options are inconsistent.
    #[error("invalid executor options: {0}")]
    Options(String),
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(String),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] sluice_store::Error),
    /// Fanning out an emitted event failed.
    #[error("fan-out failed: {0}")]
    FanOut(String),
    /// An SDK request to the server was not authenticated.
    #[error("unauthorized: send the signing key's hash as a Bearer token")]
    Unauthorized,
    /// The call a checkpoint names is not in flight here (run ended, lease moved).
    #[error("stale dispatch: the call is no longer in flight")]
    Stale,
    /// A request body was malformed.
    #[error("bad request: {0}")]
    BadRequest(String),
}

/// Results of executor calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
