//! Mapping sqlx errors onto the backend-neutral [`sluice_store::Error`].

use sluice_store::Error;

/// Maps a sqlx error: a unique violation is a [`Error::Conflict`] (naming the
/// constraint), a missing row [`Error::NotFound`], anything else [`Error::Backend`].
pub(crate) fn from_sqlx(err: sqlx::Error) -> Error {
    match &err {
        sqlx::Error::RowNotFound => Error::NotFound("row".into()),
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            Error::Conflict(db.constraint().unwrap_or("unique key").to_string())
        }
        _ => Error::Backend(err.to_string()),
    }
}

/// A stored value the domain types cannot read back (a bad id, an unknown status).
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Backend(format!("corrupt {what} in database: {detail}"))
}

/// Extension to map sqlx results in one call.
pub(crate) trait SqlxResultExt<T> {
    fn db(self) -> sluice_store::Result<T>;
}

impl<T> SqlxResultExt<T> for Result<T, sqlx::Error> {
    fn db(self) -> sluice_store::Result<T> {
        self.map_err(from_sqlx)
    }
}
