//! The scheduler's [`Error`].

/// What can stop the scheduler from starting.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The options are inconsistent.
    #[error("invalid scheduler options: {0}")]
    Options(String),
    /// The store failed (e.g. subscribing to wake-ups).
    #[error(transparent)]
    Store(#[from] sluice_store::Error),
}

/// Results of scheduler calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
