//! The queue side of Sluice: claims due queue items in batches under leases, keeps
//! the leases alive while calls are in flight, writes their outcomes with group
//! commit, and re-queues the items of dead workers.
//!
//! A node starts one [`Scheduler`] with [`SchedulerOptions`], its store and a
//! [`Dispatch`] (the executor) and keeps the cheap [`SchedulerHandle`]. Wake-ups are
//! pushed (`Store::subscribe`, plus the node's own commits) and the claim loop sleeps
//! exactly until the next due item, so there is no polling interval on the hot path;
//! `safety_poll` only covers a lost notification.
//!
//! # Layout
//! - [`options`]: [`SchedulerOptions`] (human durations in config).
//! - [`dispatch`]: the [`Dispatch`] trait the executor implements; [`Routes`] by kind.
//! - [`service`]: [`Scheduler::start`], [`SchedulerHandle`]; the claim, heartbeat and
//!   rescuer loops.
//! - `committer`: group commit of completions.
//! - `wake`: the pushed wake-up signal.
//! - [`error`]: the crate's [`Error`] type.

pub mod dispatch;
pub mod error;
pub mod options;
pub mod service;

mod committer;
mod wake;

pub use dispatch::{Dispatch, Flight, Routes};
pub use error::{Error, Result};
pub use options::SchedulerOptions;
pub use service::{RESCUER_LEASE, Scheduler, SchedulerHandle};
