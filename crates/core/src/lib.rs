//! Sluice's domain logic, free of I/O.
//!
//! # Layout
//! - [`id`]: identifier newtypes (`RunId`, `EventId`, `FunctionId`, …).
//! - [`run`]: [`RunStatus`], the run state machine.
//! - [`time`]: [`Millis`](time::Millis), the one time type the store keeps.

pub mod id;
pub mod run;
pub mod time;

pub use id::{AppId, EventId, FunctionId, QueueItemId, RunId, WaitId};
pub use run::RunStatus;
pub use time::Millis;
