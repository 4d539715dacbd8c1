//! `queue_items`: enqueue, claim, heartbeat, commit, rescue, and depth.

use sluice_core::{Millis, QueueItemId};
use sluice_store::{
    Claim, Commit, CommitResult, Disposition, LeaseRef, LeaseToken, NewQueueItem, QueueItem,
    QueueStats,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

use crate::codec::{json, opt_json, parse, parse_json, parse_opt, parse_opt_json};
use crate::error::Result;
use crate::{events, runs, waits};

/// Rows per multi-row INSERT (10 binds each, far below SQLite's bind limit).
const INSERT_CHUNK: usize = 500;

macro_rules! item_columns {
    () => {
        "id, kind, run_id, function_id, step_id, payload, available_at, priority, attempt, \
         concurrency_keys, dedupe_key, last_error, lease_owner, lease_token, lease_expires_at, \
         created_at"
    };
}

#[derive(sqlx::FromRow)]
struct ItemRow {
    id: i64,
    kind: String,
    run_id: Option<String>,
    function_id: Option<String>,
    step_id: Option<String>,
    payload: String,
    available_at: i64,
    priority: i32,
    attempt: i32,
    concurrency_keys: String,
    dedupe_key: Option<String>,
    last_error: Option<String>,
    lease_owner: Option<String>,
    lease_token: Option<String>,
    lease_expires_at: Option<i64>,
    created_at: i64,
}

impl TryFrom<ItemRow> for QueueItem {
    type Error = crate::Error;
    fn try_from(r: ItemRow) -> Result<Self> {
        Ok(QueueItem {
            id: QueueItemId(r.id),
            kind: parse("queue kind", &r.kind)?,
            run_id: parse_opt("run id", r.run_id.as_deref())?,
            function_id: parse_opt("function id", r.function_id.as_deref())?,
            step_id: r.step_id,
            payload: parse_json(&r.payload)?,
            available_at: Millis(r.available_at),
            priority: r.priority,
            attempt: r.attempt,
            concurrency_keys: serde_json::from_str(&r.concurrency_keys)?,
            dedupe_key: r.dedupe_key,
            last_error: parse_opt_json(r.last_error.as_deref())?,
            lease_owner: r.lease_owner,
            lease_token: parse_opt::<Uuid>("lease token", r.lease_token.as_deref())?
                .map(LeaseToken),
            lease_expires_at: r.lease_expires_at.map(Millis),
            created_at: Millis(r.created_at),
        })
    }
}

fn items(rows: Vec<ItemRow>) -> Result<Vec<QueueItem>> {
    rows.into_iter().map(QueueItem::try_from).collect()
}

/// The earliest time at which a write made items available, for the wake-up that
/// follows its commit.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Woken(pub(crate) Option<Millis>);

impl Woken {
    pub(crate) fn add(&mut self, at: Millis) {
        self.0 = Some(self.0.map_or(at, |m| m.min(at)));
    }
}

/// Inserts items (skipping those whose dedupe key exists) and returns the new ids.
pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    new: &[NewQueueItem],
    now: Millis,
    woken: &mut Woken,
) -> Result<Vec<QueueItemId>> {
    let mut ids = Vec::with_capacity(new.len());
    for chunk in new.chunks(INSERT_CHUNK) {
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "INSERT INTO queue_items (kind, run_id, function_id, step_id, payload, \
             available_at, priority, concurrency_keys, dedupe_key, created_at) ",
        );
        qb.push_values(chunk, |mut b, i| {
            b.push_bind(i.kind.as_str())
                .push_bind(i.run_id.map(|r| r.to_string()))
                .push_bind(i.function_id.map(|f| f.to_string()))
                .push_bind(i.step_id.clone())
                .push_bind(json(&i.payload))
                .push_bind(i.available_at.0)
                .push_bind(i.priority)
                .push_bind(serde_json::to_string(&i.concurrency_keys).unwrap_or_default())
                .push_bind(i.dedupe_key.clone())
                .push_bind(now.0);
        });
        qb.push(" ON CONFLICT (dedupe_key) DO NOTHING RETURNING id, available_at");
        let rows: Vec<(i64, i64)> = qb.build_query_as().fetch_all(&mut *conn).await?;
        for (id, at) in rows {
            ids.push(QueueItemId(id));
            woken.add(Millis(at));
        }
    }
    // RETURNING order is unspecified; ids grow with insertion order.
    ids.sort_unstable();
    Ok(ids)
}

/// Leases up to `limit` due items in `priority, available_at, id` order.
pub(crate) async fn claim(conn: &mut SqliteConnection, claim: &Claim) -> Result<Vec<QueueItem>> {
    let token = Uuid::new_v4().to_string();
    let rows: Vec<ItemRow> = sqlx::query_as(concat!(
        "UPDATE queue_items SET lease_owner = ?1, lease_token = ?2, lease_expires_at = ?3 \
         WHERE id IN (SELECT id FROM queue_items WHERE lease_token IS NULL AND available_at <= ?4 \
         ORDER BY priority, available_at, id LIMIT ?5) RETURNING ",
        item_columns!()
    ))
    .bind(&claim.owner)
    .bind(token)
    .bind(claim.now.plus_ms(claim.lease_ms).0)
    .bind(claim.now.0)
    .bind(i64::from(claim.limit))
    .fetch_all(conn)
    .await?;
    let mut claimed = items(rows)?;
    claimed.sort_by_key(|i| (i.priority, i.available_at, i.id));
    Ok(claimed)
}

/// Extends held leases; returns the items whose lease is not held.
pub(crate) async fn heartbeat(
    conn: &mut SqliteConnection,
    leases: &[LeaseRef],
    expires_at: Millis,
) -> Result<Vec<QueueItemId>> {
    let mut lost = Vec::new();
    for lease in leases {
        let done = sqlx::query(
            "UPDATE queue_items SET lease_expires_at = ?1 WHERE id = ?2 AND lease_token = ?3",
        )
        .bind(expires_at.0)
        .bind(lease.item.0)
        .bind(lease.token.0.to_string())
        .execute(&mut *conn)
        .await?;
        if done.rows_affected() == 0 {
            lost.push(lease.item);
        }
    }
    Ok(lost)
}

async fn held(conn: &mut SqliteConnection, lease: &LeaseRef) -> Result<bool> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT 1 FROM queue_items WHERE id = ?1 AND lease_token = ?2")
            .bind(lease.item.0)
            .bind(lease.token.0.to_string())
            .fetch_optional(conn)
            .await?;
    Ok(row.is_some())
}

/// Ends a held item as its disposition says.
async fn end(
    conn: &mut SqliteConnection,
    item: QueueItemId,
    disposition: &Disposition,
    woken: &mut Woken,
) -> Result<()> {
    match disposition {
        Disposition::Done => {
            sqlx::query("DELETE FROM queue_items WHERE id = ?1")
                .bind(item.0)
                .execute(conn)
                .await?;
        }
        Disposition::Retry { at, error } => {
            sqlx::query(
                "UPDATE queue_items SET attempt = attempt + 1, available_at = ?1, \
                 last_error = ?2, lease_owner = NULL, lease_token = NULL, \
                 lease_expires_at = NULL WHERE id = ?3",
            )
            .bind(at.0)
            .bind(opt_json(error.as_ref()))
            .bind(item.0)
            .execute(conn)
            .await?;
            woken.add(*at);
        }
        Disposition::Continue {
            next,
            lease_expires_at,
        } => {
            sqlx::query(
                "UPDATE queue_items SET kind = ?1, step_id = ?2, payload = ?3, \
                 available_at = ?4, priority = ?5, concurrency_keys = ?6, attempt = 0, \
                 last_error = NULL, lease_expires_at = ?7 WHERE id = ?8",
            )
            .bind(next.kind.as_str())
            .bind(next.step_id.as_deref())
            .bind(json(&next.payload))
            .bind(next.available_at.0)
            .bind(next.priority)
            .bind(serde_json::to_string(&next.concurrency_keys).unwrap_or_default())
            .bind(lease_expires_at.0)
            .bind(item.0)
            .execute(conn)
            .await?;
        }
        Disposition::Release { at } => {
            sqlx::query(
                "UPDATE queue_items SET available_at = ?1, lease_owner = NULL, \
                 lease_token = NULL, lease_expires_at = NULL WHERE id = ?2",
            )
            .bind(at.0)
            .bind(item.0)
            .execute(conn)
            .await?;
            woken.add(*at);
        }
    }
    Ok(())
}

/// Applies one commit inside the caller's transaction.
pub(crate) async fn apply(
    conn: &mut SqliteConnection,
    commit: &Commit,
    now: Millis,
    woken: &mut Woken,
) -> Result<CommitResult> {
    if !held(conn, &commit.lease).await? {
        return Ok(CommitResult::LeaseLost);
    }
    if let Some(wait) = commit.require_wait {
        if !waits::take(conn, wait).await? {
            end(conn, commit.lease.item, &commit.disposition, woken).await?;
            return Ok(CommitResult::Skipped);
        }
    }
    if let Some((run, update)) = &commit.run {
        runs::update(conn, *run, update, Some(commit.lease.item)).await?;
    }
    runs::upsert_steps(conn, &commit.steps, now).await?;
    insert(conn, &commit.enqueue, now, woken).await?;
    waits::insert(conn, &commit.waits).await?;
    if !commit.publish.is_empty() {
        events::publish(conn, &commit.publish, now, woken).await?;
    }
    end(conn, commit.lease.item, &commit.disposition, woken).await?;
    Ok(CommitResult::Applied)
}

/// Makes expired leases available again at `now` with `attempt + 1`.
pub(crate) async fn rescue_expired(conn: &mut SqliteConnection, now: Millis) -> Result<u64> {
    let done = sqlx::query(
        "UPDATE queue_items SET lease_owner = NULL, lease_token = NULL, \
         lease_expires_at = NULL, available_at = ?1, attempt = attempt + 1 \
         WHERE lease_token IS NOT NULL AND lease_expires_at < ?1",
    )
    .bind(now.0)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}

pub(crate) async fn next_due(conn: &mut SqliteConnection) -> Result<Option<Millis>> {
    let (min,): (Option<i64>,) =
        sqlx::query_as("SELECT MIN(available_at) FROM queue_items WHERE lease_token IS NULL")
            .fetch_one(conn)
            .await?;
    Ok(min.map(Millis))
}

pub(crate) async fn stats(conn: &mut SqliteConnection, now: Millis) -> Result<QueueStats> {
    let (due, scheduled, leased): (i64, i64, i64) = sqlx::query_as(
        "SELECT \
         (SELECT COUNT(*) FROM queue_items WHERE lease_token IS NULL AND available_at <= ?1), \
         (SELECT COUNT(*) FROM queue_items WHERE lease_token IS NULL AND available_at > ?1), \
         (SELECT COUNT(*) FROM queue_items WHERE lease_token IS NOT NULL)",
    )
    .bind(now.0)
    .fetch_one(conn)
    .await?;
    Ok(QueueStats {
        due,
        scheduled,
        leased,
    })
}

/// A run's items, soonest first.
pub(crate) async fn for_run(conn: &mut SqliteConnection, run: &str) -> Result<Vec<QueueItem>> {
    let rows: Vec<ItemRow> = sqlx::query_as(concat!(
        "SELECT ",
        item_columns!(),
        " FROM queue_items WHERE run_id = ?1 ORDER BY available_at, id"
    ))
    .bind(run)
    .fetch_all(conn)
    .await?;
    items(rows)
}

/// Deletes a run's items, except `keep` (the item a commit is ending itself).
pub(crate) async fn delete_for_run(
    conn: &mut SqliteConnection,
    run: &str,
    keep: Option<QueueItemId>,
) -> Result<()> {
    sqlx::query("DELETE FROM queue_items WHERE run_id = ?1 AND id IS NOT ?2")
        .bind(run)
        .bind(keep.map(|k| k.0))
        .execute(conn)
        .await?;
    Ok(())
}
