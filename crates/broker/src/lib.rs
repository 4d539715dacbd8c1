//! The broker: events in, fanned out.
//!
//! For every event it finds the functions whose trigger matches (exact name or a
//! `prefix/*` wildcard, then the trigger's CEL `expression`), creates one run per match
//! with its first queue item, resumes runs waiting on the event (`waitForEvent`, an
//! invoked child finishing) and cancels runs whose `cancel[]` rule matches. All of it
//! is written with the event in ONE store transaction ([`sluice_store::Publish`]), so an
//! acknowledged event is never lost and never half-fanned-out.
//!
//! Ingest uses group commit: request tasks hand their events to a writer task, which
//! takes every pending request, fans them out and stores them in one `publish` call,
//! then answers each waiter.
//!
//! # Layout
//! - [`service`]: [`Broker`] (the cheap handle), [`BrokerOptions`], the group-commit
//!   writer and [`Broker::fan_out`] for events the platform emits itself.
//! - [`registry`]: the in-memory function registry with compiled expressions
//!   ([`Registry`]), refreshed when `store.registry_version()` changes, and
//!   [`check_functions`] for registration.
//! - [`fanout`]: the pure decision of what one event causes ([`fanout::plan`]).
//! - [`sync`]: [`AppSyncer`], which syncs app URLs (`PUT`) and re-syncs apps that come
//!   back after being down.

pub mod fanout;
pub mod registry;
pub mod service;
pub mod sync;

pub use registry::{Registry, check_functions};
pub use service::{Broker, BrokerOptions, Ingested};
pub use sync::{AppSyncer, SyncOptions};

/// What can go wrong in the broker.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The store failed; see [`sluice_store::Error`].
    #[error(transparent)]
    Store(#[from] sluice_store::Error),
    /// A function definition cannot be registered (an expression that does not
    /// compile, a malformed duration).
    #[error("function {function:?}: {message}")]
    InvalidFunction {
        /// The function's slug.
        function: String,
        /// What is wrong, and where.
        message: String,
    },
    /// The broker's writer has stopped (shutdown).
    #[error("broker is shut down")]
    Closed,
    /// Syncing an app failed (the app did not answer, or refused the sync).
    #[error("sync of {url} failed: {message}")]
    Sync {
        /// The app URL.
        url: String,
        /// Why.
        message: String,
    },
}

/// Results of broker calls.
pub type Result<T, E = Error> = std::result::Result<T, E>;
