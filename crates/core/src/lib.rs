//! Sluice's domain logic, free of I/O.
//!
//! # Layout
//! - [`expr`]: CEL [`Expression`]s over events (filters, matchers, priorities).
//! - [`id`]: identifier newtypes (`RunId`, `EventId`, `FunctionId`, …).
//! - [`retry`]: [`RetryPolicy`] and [`decide`](retry::decide), what follows an attempt.
//! - [`run`]: [`RunStatus`], the run state machine.
//! - [`time`]: [`Millis`](time::Millis), the one time type the store keeps.

pub mod expr;
pub mod id;
pub mod retry;
pub mod run;
pub mod time;

pub use expr::Expression;
pub use id::{AppId, EventId, FunctionId, QueueItemId, RunId, WaitId};
pub use retry::{AttemptResult, Outcome, RetryPolicy};
pub use run::RunStatus;
pub use time::Millis;
