//! The backend-neutral storage error.

/// What can go wrong in a store call, whatever the backend.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The thing asked for does not exist.
    #[error("{0} not found")]
    NotFound(String),
    /// A write clashed with existing data (a unique key, a state that forbids it).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The queue item's lease is no longer held by this caller (it expired and was
    /// re-claimed, or the item was deleted, e.g. by a cancellation).
    #[error("lease lost on queue item {0}")]
    LeaseLost(sluice_core::QueueItemId),
    /// The backend failed (connection, I/O, a bad migration). Details are for logs only.
    #[error("storage backend error: {0}")]
    Backend(String),
}

impl Error {
    /// Whether retrying the same call later may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, Error::Backend(_))
    }
}

/// Results of store calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
