//! The crate's error, and its mapping onto the backend-neutral [`sluice_store::Error`].

use std::path::PathBuf;

/// What can go wrong opening or using the SQLite store.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database's directory could not be created.
    #[error("cannot create database directory {path}: {source}; check the data dir setting")]
    Dir {
        path: PathBuf,
        source: std::io::Error,
    },
    /// SQLite (or the driver) failed.
    #[error("sqlite: {0}")]
    Sqlx(#[from] sqlx::Error),
    /// The schema could not be brought up to date.
    #[error("sqlite migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value did not decode into its domain type.
    #[error("corrupt stored value: {0}")]
    Decode(String),
    /// A domain outcome (not found, conflict) decided in this crate.
    #[error(transparent)]
    Store(#[from] sluice_store::Error),
}

/// Results of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn decode(what: &str, detail: impl std::fmt::Display) -> Self {
        Error::Decode(format!("{what}: {detail}"))
    }
}

impl From<serde_json::Error> for Error {
    fn from(e: serde_json::Error) -> Self {
        Error::decode("json", e)
    }
}

impl From<Error> for sluice_store::Error {
    fn from(e: Error) -> Self {
        match e {
            Error::Store(e) => e,
            Error::Sqlx(sqlx::Error::Database(db)) if db.is_unique_violation() => {
                sluice_store::Error::Conflict(db.message().to_string())
            }
            Error::Sqlx(sqlx::Error::RowNotFound) => sluice_store::Error::NotFound("row".into()),
            other => sluice_store::Error::Backend(other.to_string()),
        }
    }
}
