//! The executor: calls a function's HTTP endpoint, where the SDK runs the function
//! up to its next new step, and turns the reply into one commit (protocol §2–4, §7).
//!
//! [`Executor`] implements the scheduler's [`Dispatch`](sluice_scheduler::Dispatch):
//! for each claimed item it reads the run's state, builds the call request
//! (canonical JSON, signed in start mode), calls the SDK with a pooled client, reads
//! the reply into the one retry decision ([`sluice_core::RetryPolicy::decide`]) and
//! applies the ops: save step results, plan parallel steps, sleep, wait for events,
//! invoke functions, finish the run and emit `inngest/function.*` events. It also
//! serves the run actions (cancel, rerun) and SDK endpoints (checkpoint, actions,
//! batch) the API exposes.
//!
//! # Layout
//! - [`options`]: [`ExecutorOptions`], [`Mode`], [`Limits`].
//! - [`service`]: [`Executor`], the dispatcher and the actions.
//! - [`request`]: building the call request ([`request::build`]).
//! - [`reply`]: sending it and reading the reply ([`reply::Reply`]).
//! - [`outcome`]: the reply as a commit ([`outcome::plan`], [`outcome::resume`]).
//! - [`ending`]: the events a run's end emits.
//! - [`checkpoint`]: TS v4 checkpoints kept with the in-flight call.
//! - [`fanout`]: [`FanOut`], how emitted events find what they cause.
//! - [`error`]: the crate's [`Error`] type.

pub mod checkpoint;
pub mod ending;
pub mod error;
pub mod fanout;
pub mod options;
pub mod outcome;
pub mod reply;
pub mod request;
pub mod service;

pub use checkpoint::CheckpointRequest;
pub use error::{Error, Result};
pub use fanout::{FanOut, StoreOnly};
pub use options::{ExecutorOptions, Limits, Mode};
pub use service::Executor;
