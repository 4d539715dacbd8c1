//! The SQLite backend of [`sluice_store::Store`]: embedded, single-node, durable.
//!
//! One file in WAL mode with `synchronous=FULL`, so a write is on disk before its
//! call returns (an acknowledged event is never lost). All writes go through ONE
//! connection (`BEGIN IMMEDIATE`), which makes SQLite's single-writer rule explicit
//! and makes the claim a plain `UPDATE … RETURNING` that no two claimers can share;
//! reads use a separate pool of connections that WAL lets run beside the writer.
//! The schema is `migrations/sqlite`, embedded and applied at [`SqliteStore::open`].
//! Wake-ups ([`Store::subscribe`]) are in-process: after a committed write that made
//! queue items available, every registered callback hears the earliest time.
//!
//! # Layout
//! - [`SqliteStore`], [`SqliteOptions`]: opening, pools, the [`Store`] impl.
//! - [`error`]: [`Error`] and its mapping onto [`sluice_store::Error`].
//! - `codec`: JSON, id and enum text forms in columns.
//! - `registry`: `apps`, `functions`.
//! - `events`: `events`, `event_dedupe`, the publish use case.
//! - `runs`: `runs`, `run_events`, `steps`.
//! - `queue`: `queue_items`: enqueue, claim, heartbeat, commit, rescue.
//! - `waits`: `waits`.
//! - `kv`: `kv`, `leader_leases`.

mod codec;
pub mod error;
mod events;
mod kv;
mod queue;
mod registry;
mod runs;
mod waits;

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use serde_json::Value;
use sluice_core::{AppId, EventId, FunctionId, Millis, QueueItemId, RunId};
use sluice_store::{
    App, AppSync, Backend, Claim, Commit, CommitResult, Event, EventFilter, Function, LeaseRef,
    NewQueueItem, NewRun, Page, Publish, Published, QueueItem, QueueStats, Run, RunFilter,
    RunState, Step, Store, Synced, Unwaited, Wait, WakeFn,
};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Sqlite, SqliteConnection, Transaction};

pub use error::{Error, Result};
use queue::Woken;
use sluice_store::coalesce::{self, Coalescer, Load};

/// Where the database is and how to reach it.
#[derive(Debug, Clone)]
pub struct SqliteOptions {
    /// A file path (`.sluice/sluice.db`) or a `sqlite://` URL. The file and its
    /// directory are created when missing.
    pub location: String,
    /// Connections for reads (writes always use one dedicated connection).
    pub read_connections: u32,
    /// How long a statement waits on a lock held by another process.
    pub busy_timeout: Duration,
}

impl SqliteOptions {
    /// Defaults for the database at `location`.
    pub fn new(location: impl Into<String>) -> Self {
        Self {
            location: location.into(),
            read_connections: 4,
            busy_timeout: Duration::from_secs(5),
        }
    }
}

/// The SQLite store. Cheap to clone; share it as a [`sluice_store::DynStore`].
#[derive(Clone)]
pub struct SqliteStore {
    /// One connection: every write, serialized.
    write: SqlitePool,
    /// Reads, beside the writer (WAL).
    read: SqlitePool,
    wakers: Arc<RwLock<Vec<WakeFn>>>,
    /// `run_state` reads, coalesced (a batch costs the statements of one read).
    states: Arc<Coalescer<RunId, RunState>>,
    /// `waits_for_events` reads, coalesced.
    waits: Arc<coalesce::Waits>,
    /// Keeps a temporary database's directory alive as long as the store.
    _temp: Option<Arc<tempfile::TempDir>>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("write", &self.write)
            .field("read", &self.read)
            .finish_non_exhaustive()
    }
}

/// Run states for a batch of run ids, in one read transaction (a consistent snapshot):
/// the runs, their steps and their events, one statement each.
fn load_states(read: SqlitePool) -> Load<RunId, RunState> {
    Arc::new(move |ids: Vec<RunId>| {
        let read = read.clone();
        Box::pin(async move {
            let mut tx = read.begin().await.map_err(Error::from)?;
            let found = runs::get_many(&mut tx, &ids).await?;
            let mut steps = runs::steps_of(&mut tx, &ids).await?;
            let events = events::get_many(&mut tx, &coalesce::event_ids_of(found.values())).await?;
            tx.commit().await.map_err(Error::from)?;
            let runs = found
                .into_iter()
                .map(|(id, run)| (id, (run, steps.remove(&id).unwrap_or_default())))
                .collect();
            Ok(coalesce::states_in_order(&ids, runs, events))
        })
    })
}

/// Waits for a batch of (event names, now), one statement for all of them.
fn load_waits(read: SqlitePool) -> Load<coalesce::WaitsAsk, Vec<Wait>> {
    Arc::new(move |asks: Vec<coalesce::WaitsAsk>| {
        let read = read.clone();
        Box::pin(async move {
            let (names, earliest) = coalesce::union_of(&asks);
            let mut conn = read.acquire().await.map_err(Error::from)?;
            let waits = waits::for_events(&mut conn, &names, earliest).await?;
            Ok(coalesce::split_waits(&asks, &waits))
        })
    })
}

impl SqliteStore {
    /// Opens (creating if needed) the database and brings its schema up to date.
    pub async fn open(options: SqliteOptions) -> Result<Self> {
        Self::open_with(options, None).await
    }

    /// A fresh database in a new temporary directory, deleted when the last clone of
    /// the store is dropped. For tests and throwaway dev servers.
    pub async fn temporary() -> Result<Self> {
        let dir = tempfile::tempdir().map_err(|source| Error::Dir {
            path: std::env::temp_dir(),
            source,
        })?;
        let path = dir.path().join("sluice.db");
        let options = SqliteOptions::new(path.to_string_lossy().into_owned());
        Self::open_with(options, Some(Arc::new(dir))).await
    }

    async fn open_with(
        options: SqliteOptions,
        temp: Option<Arc<tempfile::TempDir>>,
    ) -> Result<Self> {
        let base = if options.location.starts_with("sqlite:") {
            SqliteConnectOptions::from_str(&options.location)?
        } else {
            SqliteConnectOptions::new().filename(&options.location)
        };
        let file: PathBuf = base.get_filename().to_path_buf();
        if let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| Error::Dir {
                path: dir.to_path_buf(),
                source,
            })?;
        }
        let connect = base
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(options.busy_timeout);
        // No ping before handing out a connection (sqlx's default): a local file
        // cannot drop a connection, and each ping is a round trip to sqlx's SQLite
        // thread.
        let write = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .min_connections(1)
            .max_connections(1)
            .acquire_timeout(Duration::from_secs(60))
            .connect_with(connect.clone())
            .await?;
        sqlx::migrate!("../../migrations/sqlite")
            .run(&write)
            .await?;
        let read = SqlitePoolOptions::new()
            .test_before_acquire(false)
            .max_connections(options.read_connections.max(1))
            .connect_with(connect)
            .await?;
        tracing::debug!(file = %file.display(), "sqlite store open");
        Ok(Self {
            states: Arc::new(Coalescer::start(1, 256, load_states(read.clone()))),
            waits: Arc::new(Coalescer::start(1, 256, load_waits(read.clone()))),
            write,
            read,
            wakers: Arc::default(),
            _temp: temp,
        })
    }

    /// Closes both pools (waits for checked-out connections).
    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>> {
        Ok(self.write.begin_with("BEGIN IMMEDIATE").await?)
    }

    async fn reader(&self) -> Result<sqlx::pool::PoolConnection<Sqlite>> {
        Ok(self.read.acquire().await?)
    }

    /// Tells the subscribers about items made available by a committed write.
    fn wake(&self, woken: Woken) {
        let Some(at) = woken.0 else { return };
        let wakers = self.wakers.read().unwrap_or_else(|p| p.into_inner());
        for wake in wakers.iter() {
            wake(at);
        }
    }
}

/// Runs `$body` in one write transaction on the write connection (`$c`), commits,
/// then wakes subscribers with what the body recorded in `$w`.
macro_rules! in_write {
    ($store:expr, |$c:ident, $w:ident| $body:expr) => {{
        #[allow(unused_mut)]
        let mut $w = Woken::default();
        let mut tx = $store.begin_write().await?;
        let out = {
            let $c: &mut SqliteConnection = &mut tx;
            $body
        };
        tx.commit().await.map_err(Error::from)?;
        $store.wake($w);
        Ok(out)
    }};
}

#[async_trait::async_trait]
impl Store for SqliteStore {
    fn backend(&self) -> Backend {
        Backend::Sqlite
    }

    async fn ping(&self) -> sluice_store::Result<()> {
        let mut conn = self.reader().await?;
        sqlx::query("SELECT 1")
            .execute(&mut *conn)
            .await
            .map_err(Error::from)?;
        Ok(())
    }

    // ---- registry ---------------------------------------------------------------

    async fn sync_app(&self, sync: AppSync) -> sluice_store::Result<Synced> {
        in_write!(self, |c, _w| registry::sync_app(c, &sync).await?)
    }

    async fn record_sync_error(
        &self,
        url: &str,
        error: &str,
        now: Millis,
    ) -> sluice_store::Result<App> {
        in_write!(self, |c, _w| registry::record_sync_error(
            c, url, error, now
        )
        .await?)
    }

    async fn list_apps(&self) -> sluice_store::Result<Vec<App>> {
        Ok(registry::list_apps(&mut *self.reader().await?).await?)
    }

    async fn get_app(&self, id: AppId) -> sluice_store::Result<App> {
        Ok(registry::get_app(&mut *self.reader().await?, id).await?)
    }

    async fn delete_app(&self, id: AppId) -> sluice_store::Result<()> {
        in_write!(self, |c, _w| registry::delete_app(c, id).await?)
    }

    async fn list_functions(&self) -> sluice_store::Result<Vec<Function>> {
        Ok(registry::list_functions(&mut *self.reader().await?).await?)
    }

    async fn get_function(&self, id: FunctionId) -> sluice_store::Result<Function> {
        Ok(registry::get_function(&mut *self.reader().await?, id).await?)
    }

    async fn get_function_by_slug(&self, slug: &str) -> sluice_store::Result<Function> {
        Ok(registry::get_function_by_slug(&mut *self.reader().await?, slug).await?)
    }

    async fn registry_version(&self) -> sluice_store::Result<i64> {
        Ok(registry::version(&mut *self.reader().await?).await?)
    }

    // ---- events -------------------------------------------------------------------

    async fn publish(
        &self,
        batch: Vec<Publish>,
        now: Millis,
    ) -> sluice_store::Result<Vec<Published>> {
        let batch: Vec<&Publish> = batch.iter().collect();
        in_write!(self, |c, w| events::publish(c, &batch, now, &mut w).await?)
    }

    /// The waits check runs on the one write connection with the write (in the same
    /// statement for events that trigger nothing): no wait can be created between the
    /// check and the write.
    async fn publish_unwaited(
        &self,
        batch: Vec<Publish>,
        names: &[String],
        now: Millis,
    ) -> sluice_store::Result<Unwaited> {
        if !names.is_empty() && events::at_once(&batch) {
            let mut conn = self.write.acquire().await.map_err(Error::from)?;
            let published = events::publish_unwaited_at_once(&mut conn, &batch, names, now);
            return Ok(match published.await? {
                Some(published) => Unwaited::Published(published),
                None => Unwaited::Waited(batch),
            });
        }
        let mut woken = Woken::default();
        let mut tx = self.begin_write().await?;
        if waits::any_for_events(&mut tx, names, now).await? {
            tx.rollback().await.map_err(Error::from)?;
            return Ok(Unwaited::Waited(batch));
        }
        let refs: Vec<&Publish> = batch.iter().collect();
        let published = events::publish(&mut tx, &refs, now, &mut woken).await?;
        tx.commit().await.map_err(Error::from)?;
        self.wake(woken);
        Ok(Unwaited::Published(published))
    }

    async fn get_event(&self, id: EventId) -> sluice_store::Result<Event> {
        Ok(events::get(&mut *self.reader().await?, id).await?)
    }

    async fn get_events(&self, ids: &[EventId]) -> sluice_store::Result<Vec<Event>> {
        Ok(events::get_many(&mut *self.reader().await?, ids).await?)
    }

    async fn list_events(&self, filter: EventFilter) -> sluice_store::Result<Page<Event>> {
        Ok(events::list(&mut *self.reader().await?, &filter).await?)
    }

    // ---- runs and steps ---------------------------------------------------------------

    async fn get_run(&self, id: RunId) -> sluice_store::Result<Run> {
        Ok(runs::get(&mut *self.reader().await?, id).await?)
    }

    async fn list_runs(&self, filter: RunFilter) -> sluice_store::Result<Page<Run>> {
        Ok(runs::list(&mut *self.reader().await?, &filter).await?)
    }

    async fn runs_for_event(&self, id: EventId) -> sluice_store::Result<Vec<Run>> {
        Ok(runs::for_event(&mut *self.reader().await?, id).await?)
    }

    async fn list_steps(&self, run: RunId) -> sluice_store::Result<Vec<Step>> {
        Ok(runs::steps(&mut *self.reader().await?, run).await?)
    }

    async fn run_state(&self, id: RunId) -> sluice_store::Result<RunState> {
        self.states.get(id).await
    }

    async fn create_runs(&self, new: Vec<NewRun>) -> sluice_store::Result<()> {
        let now = Millis::now();
        in_write!(self, |c, w| runs::insert(c, &new, now, &mut w).await?)
    }

    async fn cancel_runs(&self, ids: &[RunId], now: Millis) -> sluice_store::Result<Vec<RunId>> {
        in_write!(self, |c, _w| runs::cancel(c, ids, now).await?)
    }

    async fn run_queue_items(&self, run: RunId) -> sluice_store::Result<Vec<QueueItem>> {
        Ok(queue::for_run(&mut *self.reader().await?, &run.to_string()).await?)
    }

    async fn run_waits(&self, run: RunId) -> sluice_store::Result<Vec<Wait>> {
        Ok(waits::for_run(&mut *self.reader().await?, &run.to_string()).await?)
    }

    // ---- queue --------------------------------------------------------------------

    async fn enqueue(&self, items: Vec<NewQueueItem>) -> sluice_store::Result<Vec<QueueItemId>> {
        let now = Millis::now();
        in_write!(self, |c, w| queue::insert(c, &items, now, &mut w).await?)
    }

    async fn claim(&self, claim: Claim) -> sluice_store::Result<Vec<QueueItem>> {
        // A single statement on the one write connection: no two claims interleave.
        let mut conn = self.write.acquire().await.map_err(Error::from)?;
        Ok(queue::claim(&mut conn, &claim).await?)
    }

    async fn heartbeat(
        &self,
        leases: &[LeaseRef],
        expires_at: Millis,
    ) -> sluice_store::Result<Vec<QueueItemId>> {
        in_write!(self, |c, _w| queue::heartbeat(c, leases, expires_at)
            .await?)
    }

    async fn commit(
        &self,
        commits: Vec<Commit>,
        now: Millis,
    ) -> sluice_store::Result<Vec<CommitResult>> {
        in_write!(self, |c, w| queue::apply_all(c, &commits, now, &mut w)
            .await?)
    }

    async fn rescue_expired(&self, now: Millis) -> sluice_store::Result<u64> {
        in_write!(self, |c, w| {
            let rescued = queue::rescue_expired(c, now).await?;
            if rescued > 0 {
                w.add(now);
            }
            rescued
        })
    }

    async fn next_due(&self) -> sluice_store::Result<Option<Millis>> {
        Ok(queue::next_due(&mut *self.reader().await?).await?)
    }

    async fn subscribe(&self, wake: WakeFn) -> sluice_store::Result<()> {
        self.wakers
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .push(wake);
        Ok(())
    }

    async fn queue_stats(&self, now: Millis) -> sluice_store::Result<QueueStats> {
        Ok(queue::stats(&mut *self.reader().await?, now).await?)
    }

    // ---- waits ----------------------------------------------------------------------

    async fn waits_for_events(
        &self,
        names: &[String],
        now: Millis,
    ) -> sluice_store::Result<Vec<Wait>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        self.waits.get((names.to_vec(), now)).await
    }

    async fn expire_waits(&self, now: Millis) -> sluice_store::Result<u64> {
        in_write!(self, |c, _w| waits::expire(c, now).await?)
    }

    // ---- leader leases and counters ----------------------------------------------------

    async fn try_lead(
        &self,
        name: &str,
        owner: &str,
        ttl_ms: i64,
        now: Millis,
    ) -> sluice_store::Result<bool> {
        in_write!(self, |c, _w| kv::try_lead(c, name, owner, ttl_ms, now)
            .await?)
    }

    async fn resign(&self, name: &str, owner: &str) -> sluice_store::Result<()> {
        in_write!(self, |c, _w| kv::resign(c, name, owner).await?)
    }

    async fn kv_get(&self, key: &str) -> sluice_store::Result<Option<Value>> {
        Ok(kv::get(&mut *self.reader().await?, key).await?)
    }

    async fn kv_put(&self, key: &str, value: Value) -> sluice_store::Result<()> {
        in_write!(self, |c, _w| kv::put(c, key, &value).await?)
    }

    // ---- retention ----------------------------------------------------------------------

    async fn prune(&self, before: Millis) -> sluice_store::Result<u64> {
        in_write!(self, |c, _w| {
            runs::prune(c, before).await? + events::prune(c, before).await?
        })
    }
}
