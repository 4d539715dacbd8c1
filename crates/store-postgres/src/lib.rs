//! The PostgreSQL backend of Sluice's storage traits: [`PostgresStore`] implements
//! [`sluice_store::Store`] with sqlx, for production and several nodes on one database.
//!
//! - Migrations (`migrations/postgres`) are embedded and run by [`PostgresStore::connect`].
//! - Claims lease due items with one `FOR UPDATE SKIP LOCKED` CTE, a fresh lease token
//!   per item; every end of a lease is guarded by its token.
//! - A publish or a batch of commits is ONE transaction of a few batched statements
//!   (`UNNEST` arrays), whatever the batch size.
//! - Every transaction that makes queue items available sends
//!   `pg_notify('sluice_wake', <min available_at>)` (channel `sluice_wake_<schema>`
//!   when a schema is set, so stores in different schemas never wake each other);
//!   [`Store::subscribe`] listens on a connection of its own and reconnects.
//! - With [`PostgresOptions::schema`] the store lives in its own schema (every pooled
//!   connection sets `search_path`), so tests can share one database.
//!
//! # Layout
//! - [`PostgresStore`], [`PostgresOptions`]: connecting, the pool, the trait impl.
//! - `registry`: `apps`, `functions`, the registry version.
//! - `event`: `events`, `event_dedupe`.
//! - `run`: `runs`, `run_events`, `steps`.
//! - `queue`: `queue_items` (claim, heartbeat, ends, rescue, stats).
//! - `wait`: `waits`.
//! - `lease`, `kv`: `leader_leases`, `kv`.
//! - `write`: the batched multi-table writes of a publish and a commit.
//! - `wake`: the `LISTEN` task behind [`Store::subscribe`].
//! - `error`, `column`, `page`: sqlx error mapping, column conversions, pagination.

mod column;
mod error;
mod event;
mod kv;
mod lease;
mod page;
mod queue;
mod registry;
mod run;
mod wait;
mod wake;
mod write;

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_core::{AppId, EventId, FunctionId, Millis, QueueItemId, RunId};
use sluice_store::{
    App, AppSync, Backend, Claim, Commit, CommitResult, Error, Event, EventFilter, Function,
    LeaseRef, NewQueueItem, NewRun, Page, Publish, Published, QueueItem, QueueStats, Result, Run,
    RunFilter, RunState, Step, Store, Synced, Unwaited, Wait, WakeFn,
};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{Executor, PgPool};
use tokio::task::JoinHandle;

use crate::error::SqlxResultExt;
use crate::write::Pending;
use sluice_store::coalesce::{self, Coalescer, Load};

/// A pooled connection idle at least this long is pinged before it is used.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(5);

/// Queries each coalesced read may have in flight at once, and keys per query.
const READ_WORKERS: usize = 2;
const READ_BATCH: usize = 256;

/// Run states for a batch of run ids: runs with steps in one statement, then their
/// events (immutable, so consistent with it) in one more.
fn load_states(pool: PgPool) -> Load<RunId, RunState> {
    Arc::new(move |ids: Vec<RunId>| {
        let pool = pool.clone();
        Box::pin(async move {
            let mut conn = pool.acquire().await.db()?;
            let runs = run::with_steps(&mut conn, &ids).await?;
            let event_ids = coalesce::event_ids_of(runs.values().map(|(r, _)| r));
            let events = event::get_many(&mut conn, &event_ids).await?;
            Ok(coalesce::states_in_order(&ids, runs, events))
        })
    })
}

/// Waits for a batch of (event names, now): one query for all names, each answer
/// filtered to its own names and time.
fn load_waits(pool: PgPool) -> Load<coalesce::WaitsAsk, Vec<Wait>> {
    Arc::new(move |asks: Vec<coalesce::WaitsAsk>| {
        let pool = pool.clone();
        Box::pin(async move {
            let (names, earliest) = coalesce::union_of(&asks);
            let waits =
                wait::for_events(&mut *pool.acquire().await.db()?, &names, earliest).await?;
            Ok(coalesce::split_waits(&asks, &waits))
        })
    })
}

/// How to reach the database.
#[derive(Clone)]
pub struct PostgresOptions {
    /// `postgres://user:password@host:port/database`.
    pub url: String,
    /// Pool size (the wake listener uses one more connection of its own).
    pub max_connections: u32,
    /// A schema to keep every table in (created if missing); `None` for the default
    /// `search_path`. Must be a plain identifier (`[A-Za-z_][A-Za-z0-9_]*`).
    pub schema: Option<String>,
}

impl fmt::Debug for PostgresOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The URL may carry a password.
        f.debug_struct("PostgresOptions")
            .field("max_connections", &self.max_connections)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

/// The PostgreSQL store. Cheap to clone; clones share the pool.
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: PgPool,
    connect: PgConnectOptions,
    /// The `LISTEN`/`NOTIFY` channel for wake-ups.
    channel: String,
    listener: Mutex<Option<JoinHandle<()>>>,
    /// `run_state` reads, coalesced.
    states: Coalescer<RunId, RunState>,
    /// `waits_for_events` reads, coalesced.
    waits: coalesce::Waits,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(mut listener) = self.listener.lock()
            && let Some(task) = listener.take()
        {
            task.abort();
        }
    }
}

impl fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PostgresStore")
            .field("channel", &self.inner.channel)
            .finish_non_exhaustive()
    }
}

fn valid_schema(schema: &str) -> bool {
    let mut chars = schema.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && schema.len() <= 63
}

impl PostgresStore {
    /// Connects, creates the schema if one is set, and runs the migrations.
    pub async fn connect(options: PostgresOptions) -> Result<PostgresStore> {
        let connect: PgConnectOptions = options
            .url
            .parse()
            .map_err(|e| Error::Backend(format!("invalid database url: {e}")))?;
        let mut pool_options = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            // sqlx pings every connection it hands out by default: a round trip before
            // every statement. Ping only connections idle long enough to have been cut
            // (a server restart, an idle timeout on the way); a connection that broke
            // in use fails that call and is dropped from the pool.
            .test_before_acquire(false)
            .before_acquire(|conn, meta| {
                Box::pin(async move {
                    if meta.idle_for >= PING_IF_IDLE_FOR {
                        sqlx::Connection::ping(conn).await?;
                    }
                    Ok(true)
                })
            });
        if let Some(schema) = &options.schema {
            if !valid_schema(schema) {
                return Err(Error::Backend(format!(
                    "invalid schema name {schema:?}: use letters, digits and underscores"
                )));
            }
            let mut conn = sqlx::ConnectOptions::connect(&connect).await.db()?;
            conn.execute(format!(r#"CREATE SCHEMA IF NOT EXISTS "{schema}""#).as_str())
                .await
                .db()?;
            sqlx::Connection::close(conn).await.db()?;
            let set_path = format!(r#"SET search_path TO "{schema}""#);
            pool_options = pool_options.after_connect(move |conn, _meta| {
                let set_path = set_path.clone();
                Box::pin(async move {
                    conn.execute(set_path.as_str()).await?;
                    Ok(())
                })
            });
        }
        let pool = pool_options.connect_with(connect.clone()).await.db()?;
        sqlx::migrate!("../../migrations/postgres")
            .run(&pool)
            .await
            .map_err(|e| Error::Backend(format!("migrations failed: {e}")))?;
        Ok(PostgresStore {
            inner: Arc::new(Inner {
                states: Coalescer::start(READ_WORKERS, READ_BATCH, load_states(pool.clone())),
                waits: Coalescer::start(READ_WORKERS, READ_BATCH, load_waits(pool.clone())),
                pool,
                connect,
                channel: wake::channel(options.schema.as_deref()),
                listener: Mutex::new(None),
            }),
        })
    }

    /// The connection pool (for benchmarks and operators' tools).
    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    async fn conn(&self) -> Result<sqlx::pool::PoolConnection<sqlx::Postgres>> {
        self.inner.pool.acquire().await.db()
    }

    async fn begin(&self) -> Result<sqlx::Transaction<'static, sqlx::Postgres>> {
        self.inner.pool.begin().await.db()
    }
}

#[async_trait::async_trait]
impl Store for PostgresStore {
    fn backend(&self) -> Backend {
        Backend::Postgres
    }

    async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1")
            .execute(&self.inner.pool)
            .await
            .db()?;
        Ok(())
    }

    // ---- registry -------------------------------------------------------------

    async fn sync_app(&self, sync: AppSync) -> Result<Synced> {
        let mut tx = self.begin().await?;
        let synced = registry::sync(&mut tx, &sync).await?;
        tx.commit().await.db()?;
        Ok(synced)
    }

    async fn record_sync_error(&self, url: &str, error: &str, now: Millis) -> Result<App> {
        let mut tx = self.begin().await?;
        let app = registry::record_sync_error(&mut tx, url, error, now).await?;
        tx.commit().await.db()?;
        Ok(app)
    }

    async fn list_apps(&self) -> Result<Vec<App>> {
        registry::list_apps(&mut *self.conn().await?).await
    }

    async fn get_app(&self, id: AppId) -> Result<App> {
        registry::get_app(&mut *self.conn().await?, id).await
    }

    async fn delete_app(&self, id: AppId) -> Result<()> {
        let mut tx = self.begin().await?;
        registry::delete_app(&mut tx, id).await?;
        tx.commit().await.db()
    }

    async fn list_functions(&self) -> Result<Vec<Function>> {
        registry::list_functions(&mut *self.conn().await?).await
    }

    async fn get_function(&self, id: FunctionId) -> Result<Function> {
        registry::get_function(&mut *self.conn().await?, id).await
    }

    async fn get_function_by_slug(&self, slug: &str) -> Result<Function> {
        registry::get_function_by_slug(&mut *self.conn().await?, slug).await
    }

    async fn registry_version(&self) -> Result<i64> {
        registry::version(&mut *self.conn().await?).await
    }

    // ---- events ---------------------------------------------------------------

    async fn publish(&self, batch: Vec<Publish>, now: Millis) -> Result<Vec<Published>> {
        if batch.is_empty() {
            return Ok(Vec::new());
        }
        if sluice_store::event::is_plain(&batch) {
            let conn = &mut *self.conn().await?;
            let published = write::publish_at_once(conn, &self.inner.channel, &batch, &[], now);
            return Ok(published.await?.unwrap_or_default());
        }
        let refs: Vec<&Publish> = batch.iter().collect();
        let mut pending = Pending::default();
        let mut tx = self.begin().await?;
        let published = write::publish(&mut tx, &refs, now, &mut pending).await?;
        pending.flush(&mut tx, &self.inner.channel, now).await?;
        tx.commit().await.db()?;
        Ok(published)
    }

    async fn publish_unwaited(
        &self,
        batch: Vec<Publish>,
        names: &[String],
        now: Millis,
    ) -> Result<Unwaited> {
        if batch.is_empty() || !sluice_store::event::is_plain(&batch) {
            return sluice_store::publish_after_reading_waits(self, batch, names, now).await;
        }
        let conn = &mut *self.conn().await?;
        let published = write::publish_at_once(conn, &self.inner.channel, &batch, names, now);
        Ok(match published.await? {
            Some(published) => Unwaited::Published(published),
            None => Unwaited::Waited(batch),
        })
    }

    async fn get_event(&self, id: EventId) -> Result<Event> {
        event::get(&mut *self.conn().await?, id).await
    }

    async fn get_events(&self, ids: &[EventId]) -> Result<Vec<Event>> {
        event::get_many(&mut *self.conn().await?, ids).await
    }

    async fn list_events(&self, filter: EventFilter) -> Result<Page<Event>> {
        event::list(&mut *self.conn().await?, &filter).await
    }

    // ---- runs and steps -------------------------------------------------------

    async fn get_run(&self, id: RunId) -> Result<Run> {
        run::get(&mut *self.conn().await?, id).await
    }

    async fn list_runs(&self, filter: RunFilter) -> Result<Page<Run>> {
        run::list(&mut *self.conn().await?, &filter).await
    }

    async fn runs_for_event(&self, id: EventId) -> Result<Vec<Run>> {
        run::for_event(&mut *self.conn().await?, id).await
    }

    async fn list_steps(&self, id: RunId) -> Result<Vec<Step>> {
        run::steps(&mut *self.conn().await?, id).await
    }

    async fn run_state(&self, id: RunId) -> Result<RunState> {
        self.inner.states.get(id).await
    }

    async fn create_runs(&self, runs: Vec<NewRun>) -> Result<()> {
        if runs.is_empty() {
            return Ok(());
        }
        let now = Millis::now();
        let mut pending = Pending::default();
        let mut tx = self.begin().await?;
        run::insert(&mut tx, &runs).await?;
        pending.runs(runs.iter());
        pending.flush(&mut tx, &self.inner.channel, now).await?;
        tx.commit().await.db()
    }

    async fn cancel_runs(&self, ids: &[RunId], now: Millis) -> Result<Vec<RunId>> {
        let mut pending = Pending::default();
        let mut tx = self.begin().await?;
        let cancelled = write::cancel(&mut tx, ids, now, &mut pending).await?;
        tx.commit().await.db()?;
        cancelled
            .iter()
            .map(|id| column::parse("run id", id))
            .collect()
    }

    async fn run_queue_items(&self, id: RunId) -> Result<Vec<QueueItem>> {
        queue::for_run(&mut *self.conn().await?, id).await
    }

    async fn run_waits(&self, id: RunId) -> Result<Vec<Wait>> {
        wait::for_run(&mut *self.conn().await?, id).await
    }

    // ---- queue ----------------------------------------------------------------

    async fn enqueue(&self, items: Vec<NewQueueItem>) -> Result<Vec<QueueItemId>> {
        let refs: Vec<&NewQueueItem> = items.iter().collect();
        queue::insert(
            &mut *self.conn().await?,
            &self.inner.channel,
            &refs,
            Millis::now(),
        )
        .await
    }

    async fn claim(&self, claim: Claim) -> Result<Vec<QueueItem>> {
        queue::claim(&mut *self.conn().await?, &claim).await
    }

    async fn maintain(&self) -> Result<u64> {
        let mut conn = self.conn().await?;
        // Tables that grew fourfold since the planner last saw them (a fresh
        // database under load): a few ANALYZEs over a table's life, smallest first;
        // autovacuum keeps the statistics of tables at a steady size.
        let stale: Vec<String> = sqlx::query_scalar(
            "SELECT s.relname::text FROM pg_stat_user_tables s
             JOIN pg_class c ON c.oid = s.relid
             WHERE s.schemaname = current_schema()
               AND s.relname IN ('queue_items', 'runs', 'steps', 'events', 'run_events',
                                 'waits')
               AND s.n_live_tup > 4 * GREATEST(c.reltuples, 250)",
        )
        .fetch_all(&mut *conn)
        .await
        .db()?;
        for table in &stale {
            // Names come from the fixed list above.
            conn.execute(format!(r#"ANALYZE "{table}""#).as_str())
                .await
                .db()?;
        }
        if !stale.is_empty() {
            tracing::debug!(tables = ?stale, "refreshed planner statistics");
        }
        Ok(stale.len() as u64)
    }

    async fn heartbeat(&self, leases: &[LeaseRef], expires_at: Millis) -> Result<Vec<QueueItemId>> {
        queue::heartbeat(&mut *self.conn().await?, leases, expires_at).await
    }

    async fn commit(&self, commits: Vec<Commit>, now: Millis) -> Result<Vec<CommitResult>> {
        if commits.is_empty() {
            return Ok(Vec::new());
        }
        let mut pending = Pending::default();
        let mut tx = self.begin().await?;
        let results =
            write::commit(&mut tx, &self.inner.channel, &commits, now, &mut pending).await?;
        pending.flush(&mut tx, &self.inner.channel, now).await?;
        tx.commit().await.db()?;
        Ok(results)
    }

    async fn rescue_expired(&self, now: Millis) -> Result<u64> {
        queue::rescue_expired(&mut *self.conn().await?, &self.inner.channel, now).await
    }

    async fn next_due(&self) -> Result<Option<Millis>> {
        queue::next_due(&mut *self.conn().await?).await
    }

    async fn subscribe(&self, wake: WakeFn) -> Result<()> {
        let task = wake::spawn(
            self.inner.connect.clone(),
            self.inner.pool.clone(),
            self.inner.channel.clone(),
            wake,
        )
        .await?;
        let previous = self
            .inner
            .listener
            .lock()
            .map_err(|_| Error::Backend("wake listener lock poisoned".into()))?
            .replace(task);
        if let Some(previous) = previous {
            previous.abort();
        }
        Ok(())
    }

    async fn queue_stats(&self, now: Millis) -> Result<QueueStats> {
        queue::stats(&mut *self.conn().await?, now).await
    }

    // ---- waits ----------------------------------------------------------------

    async fn waits_for_events(&self, names: &[String], now: Millis) -> Result<Vec<Wait>> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        self.inner.waits.get((names.to_vec(), now)).await
    }

    async fn expire_waits(&self, now: Millis) -> Result<u64> {
        wait::expire(&mut *self.conn().await?, now).await
    }

    // ---- leader leases and counters ------------------------------------------

    async fn try_lead(&self, name: &str, owner: &str, ttl_ms: i64, now: Millis) -> Result<bool> {
        lease::try_lead(&mut *self.conn().await?, name, owner, ttl_ms, now).await
    }

    async fn resign(&self, name: &str, owner: &str) -> Result<()> {
        lease::resign(&mut *self.conn().await?, name, owner).await
    }

    async fn kv_get(&self, key: &str) -> Result<Option<serde_json::Value>> {
        kv::get(&mut *self.conn().await?, key).await
    }

    async fn kv_put(&self, key: &str, value: serde_json::Value) -> Result<()> {
        kv::put(&mut *self.conn().await?, key, &value).await
    }

    // ---- retention --------------------------------------------------------------

    async fn prune(&self, before: Millis) -> Result<u64> {
        let mut tx = self.begin().await?;
        let runs = run::prune(&mut tx, before).await?;
        let events = event::prune(&mut tx, before).await?;
        tx.commit().await.db()?;
        Ok(runs + events)
    }
}
