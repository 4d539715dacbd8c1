//! Sluice's domain logic, free of I/O.
//!
//! # Layout
//! - [`cron`]: cron [`Schedule`]s (5-7 fields, descriptors, `TZ=` prefix).
//! - [`expr`]: CEL [`Expression`]s over events (filters, matchers, priorities).
//! - [`id`]: identifier newtypes (`RunId`, `EventId`, `FunctionId`, …).
//! - [`retry`]: [`RetryPolicy`] and [`decide`](retry::decide), what follows an attempt.
//! - [`mode`]: [`Mode`], `sluice dev` or `sluice start`.
//! - [`run`]: [`RunStatus`], the run state machine.
//! - [`time`]: [`Millis`], the one time type the store keeps.

pub mod cron;
pub mod expr;
pub mod id;
pub mod mode;
pub mod retry;
pub mod run;
pub mod time;

pub use cron::Schedule;
pub use expr::Expression;
pub use id::{AppId, EventId, FunctionId, QueueItemId, RunId, WaitId};
pub use mode::Mode;
pub use retry::{AttemptResult, Outcome, RetryPolicy};
pub use run::RunStatus;
pub use time::Millis;

/// A domain error: an expression or a cron schedule that does not compile.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// A CEL expression.
    #[error(transparent)]
    Expr(#[from] expr::Error),
    /// A cron schedule.
    #[error(transparent)]
    Cron(#[from] cron::Error),
}

/// `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
