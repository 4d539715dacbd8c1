//! Sluice's storage layer: the traits every backend implements, the domain types they
//! speak, and a backend-neutral [`Error`]. No SQL and no sqlx types live here; each
//! backend (`sluice-store-sqlite`, `sluice-store-postgres`) is the only place its SQL
//! lives, and both pass the same conformance suite (`testing`, feature `testing`).
//!
//! The trait offers use-case methods rather than transactions: a [`Publish`] writes an
//! event and its whole fan-out in one transaction; a [`Commit`] writes one attempt's
//! outcome (step results, run update, next items, waits, emitted events) guarded by the
//! queue item's lease.
//!
//! Times are [`Millis`] (epoch milliseconds) everywhere and are passed in by the
//! caller (`now`), so behaviour is testable without sleeping.
//!
//! # Layout
//! - [`error`]: [`Error`] (not found, conflict, lease lost, backend).
//! - [`registry`]: apps and functions ([`App`], [`Function`], [`AppSync`]).
//! - [`event`]: events and the fan-out a publish carries ([`Publish`], [`Resume`]).
//! - [`run`]: runs and steps ([`Run`], [`NewRun`], [`RunUpdate`], [`StepRecord`]).
//! - [`queue`]: queue items, claims, leases and commits.
//! - [`wait`]: waits for events, invokes and cancellations.
//! - [`coalesce`]: coalesced reads, for backends.
//! - `testing` (feature `testing`): the conformance suite.

pub mod coalesce;
pub mod error;
pub mod event;
pub mod queue;
pub mod registry;
pub mod run;
pub mod wait;

#[cfg(feature = "testing")]
pub mod testing;

use std::sync::Arc;

pub use error::{Error, Result};
pub use event::{DEDUPE_WINDOW_MS, Event, EventFilter, Publish, Published, Resume, Unwaited};
pub use queue::{
    Claim, Commit, CommitResult, Disposition, LeaseRef, LeaseToken, NewQueueItem, QueueItem,
    QueueKind, QueueStats,
};
pub use registry::{App, AppSync, Function, FunctionDef, Synced, Trigger};
pub use run::{
    NewRun, Page, Run, RunFilter, RunState, RunStatus, RunUpdate, Step, StepRecord, StepStatus,
};
use sluice_core::{AppId, EventId, FunctionId, Millis, QueueItemId, RunId};
pub use wait::{NewWait, Wait, WaitKind};

/// Which backend a store is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// A shared handle to a store.
pub type DynStore = Arc<dyn Store>;

/// Told the earliest `available_at` of items just made available (enqueued, retried,
/// released or rescued) so schedulers can wake at once instead of polling.
pub type WakeFn = Arc<dyn Fn(Millis) + Send + Sync>;

/// [`Store::publish_unwaited`] in two steps: a waits read, then [`Store::publish`]
/// (a wait created between the two is missed, as it would be a moment later).
pub async fn publish_after_reading_waits<S: Store + ?Sized>(
    store: &S,
    batch: Vec<Publish>,
    names: &[String],
    now: Millis,
) -> Result<Unwaited> {
    if !store.waits_for_events(names, now).await?.is_empty() {
        return Ok(Unwaited::Waited(batch));
    }
    Ok(Unwaited::Published(store.publish(batch, now).await?))
}

/// Everything Sluice persists. Implementations are cheap to share (`Arc`) and safe to
/// call from many tasks.
#[async_trait::async_trait]
pub trait Store: Send + Sync + std::fmt::Debug + 'static {
    /// Which backend this is.
    fn backend(&self) -> Backend;

    /// Answers when the database does (health checks).
    async fn ping(&self) -> Result<()>;

    // ---- registry -------------------------------------------------------------

    /// Records a successful sync: upserts the app by `name` and replaces its function
    /// set atomically (functions keep their ids by slug; removed ones are deleted and
    /// stop triggering). Clears the app's sync error. A placeholder app created by
    /// [`Store::record_sync_error`] for the same URL is merged away. A slug registered
    /// by another app is a [`Error::Conflict`].
    async fn sync_app(&self, sync: AppSync) -> Result<Synced>;

    /// Records a failed sync of the app at `url` (creating a placeholder app named by
    /// its URL when none has that URL).
    async fn record_sync_error(&self, url: &str, error: &str, now: Millis) -> Result<App>;

    async fn list_apps(&self) -> Result<Vec<App>>;
    async fn get_app(&self, id: AppId) -> Result<App>;
    /// Deletes an app and its functions (their runs are kept).
    async fn delete_app(&self, id: AppId) -> Result<()>;
    /// All registered functions, ordered by slug.
    async fn list_functions(&self) -> Result<Vec<Function>>;
    async fn get_function(&self, id: FunctionId) -> Result<Function>;
    async fn get_function_by_slug(&self, slug: &str) -> Result<Function>;
    /// A number that changes whenever any app's function set changes, so nodes can
    /// tell when a cached registry is stale.
    async fn registry_version(&self) -> Result<i64>;

    // ---- events ---------------------------------------------------------------

    /// Stores events and everything they cause, all in ONE durable transaction, and
    /// returns one [`Published`] per input, in order. See [`Publish`] for dedupe.
    async fn publish(&self, batch: Vec<Publish>, now: Millis) -> Result<Vec<Published>>;
    /// [`Store::publish`] for a batch planned without waits: writes it only if no
    /// unexpired wait for any of `names` (the batch's event names) exists when the
    /// write happens, checked in the same statement or transaction. The common ingest
    /// (names nobody waits for) is then one round trip instead of a waits read and a
    /// write. When a wait exists nothing is written and the batch comes back.
    ///
    /// The default is [`publish_after_reading_waits`].
    async fn publish_unwaited(
        &self,
        batch: Vec<Publish>,
        names: &[String],
        now: Millis,
    ) -> Result<Unwaited> {
        publish_after_reading_waits(self, batch, names, now).await
    }
    async fn get_event(&self, id: EventId) -> Result<Event>;
    /// Events by id, in the order asked (missing ids are left out).
    async fn get_events(&self, ids: &[EventId]) -> Result<Vec<Event>>;
    /// Events newest first.
    async fn list_events(&self, filter: EventFilter) -> Result<Page<Event>>;

    // ---- runs and steps -------------------------------------------------------

    async fn get_run(&self, id: RunId) -> Result<Run>;
    /// Runs newest first.
    async fn list_runs(&self, filter: RunFilter) -> Result<Page<Run>>;
    /// The runs an event triggered.
    async fn runs_for_event(&self, id: EventId) -> Result<Vec<Run>>;
    /// A run's steps, memoized ones first in completion order.
    async fn list_steps(&self, run: RunId) -> Result<Vec<Step>>;
    /// The run, its events and its steps, in one read.
    async fn run_state(&self, run: RunId) -> Result<RunState>;
    /// Creates runs outside a publish (reruns, direct invokes).
    async fn create_runs(&self, runs: Vec<NewRun>) -> Result<()>;
    /// Cancels runs that have not ended: sets `cancelled`, deletes their queue items
    /// (so any in-flight holder loses its lease) and waits. Returns the runs that were
    /// cancelled by this call.
    async fn cancel_runs(&self, ids: &[RunId], now: Millis) -> Result<Vec<RunId>>;
    /// Queue items of a run (what it is waiting on), soonest first.
    async fn run_queue_items(&self, run: RunId) -> Result<Vec<QueueItem>>;
    /// Waits of a run.
    async fn run_waits(&self, run: RunId) -> Result<Vec<Wait>>;

    // ---- queue ----------------------------------------------------------------

    /// Enqueues items; an item whose `dedupe_key` already exists is skipped. Returns
    /// the ids of the items inserted.
    async fn enqueue(&self, items: Vec<NewQueueItem>) -> Result<Vec<QueueItemId>>;
    /// Leases up to `limit` due, unleased items in `priority, available_at, id` order.
    /// Concurrent claimers never receive the same item.
    async fn claim(&self, claim: Claim) -> Result<Vec<QueueItem>>;
    /// Extends leases still held to `expires_at`; returns the items whose lease is
    /// no longer held.
    async fn heartbeat(&self, leases: &[LeaseRef], expires_at: Millis) -> Result<Vec<QueueItemId>>;
    /// Applies commits, all in one transaction. A commit whose lease is not held
    /// writes nothing and yields [`CommitResult::LeaseLost`]; the others apply.
    async fn commit(&self, commits: Vec<Commit>, now: Millis) -> Result<Vec<CommitResult>>;
    /// Makes items whose lease expired before `now` available again at `now`, with
    /// `attempt + 1`. Returns how many.
    async fn rescue_expired(&self, now: Millis) -> Result<u64>;
    /// The earliest `available_at` among unleased items, if any.
    async fn next_due(&self) -> Result<Option<Millis>>;
    /// Registers `wake` to be told of newly available items after each commit that
    /// makes some: in-process for SQLite; on Postgres through `LISTEN`/`NOTIFY`, so
    /// items made available by any node wake every node. Call once per process.
    async fn subscribe(&self, wake: WakeFn) -> Result<()>;
    /// Queue depth at `now`.
    async fn queue_stats(&self, now: Millis) -> Result<QueueStats>;

    // ---- waits ----------------------------------------------------------------

    /// Unexpired waits for any of these event names.
    async fn waits_for_events(&self, names: &[String], now: Millis) -> Result<Vec<Wait>>;
    /// Deletes waits that expired before `now` and have no timeout item (cancel
    /// watches). Returns how many.
    async fn expire_waits(&self, now: Millis) -> Result<u64>;

    // ---- leader leases and counters ------------------------------------------

    /// Takes or renews the named lease for `owner` until `now + ttl_ms`; true when
    /// `owner` holds it afterwards.
    async fn try_lead(&self, name: &str, owner: &str, ttl_ms: i64, now: Millis) -> Result<bool>;
    /// Gives up the named lease if `owner` holds it.
    async fn resign(&self, name: &str, owner: &str) -> Result<()>;
    async fn kv_get(&self, key: &str) -> Result<Option<serde_json::Value>>;
    async fn kv_put(&self, key: &str, value: serde_json::Value) -> Result<()>;

    // ---- retention --------------------------------------------------------------

    /// Deletes ended runs (with their steps) and events received before `before`.
    /// Returns how many rows went.
    async fn prune(&self, before: Millis) -> Result<u64>;

    /// Housekeeping one node (the rescuer's leader) calls about once a second: on
    /// Postgres, refreshes planner statistics of tables that changed a lot since
    /// they were last analyzed, since a queue's tables go from empty to large faster
    /// than autovacuum looks. Returns how many tables it refreshed.
    async fn maintain(&self) -> Result<u64> {
        Ok(0)
    }
}
