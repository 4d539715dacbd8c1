//! `queue_items`: enqueue, claim, heartbeat, commit, rescue, and depth.

use std::collections::HashMap;

use sluice_core::{Millis, QueueItemId, RunId};
use sluice_store::{
    Claim, Commit, CommitResult, Disposition, LeaseRef, LeaseToken, NewQueueItem, NewWait, Publish,
    QueueItem, QueueStats, RunUpdate, StepRecord,
};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};
use uuid::Uuid;

use crate::codec::{CHUNK, json, opt_json, parse, parse_json, parse_opt, parse_opt_json, push_in};
use crate::error::Result;
use crate::{events, runs, waits};

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
    for chunk in new.chunks(CHUNK) {
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
    let mut held = std::collections::HashSet::new();
    for chunk in leases.chunks(CHUNK) {
        let mut qb: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new("UPDATE queue_items SET lease_expires_at = ");
        qb.push_bind(expires_at.0);
        qb.push(" FROM (");
        qb.push_values(chunk, |mut b, l| {
            b.push_bind(l.item.0).push_bind(l.token.0.to_string());
        });
        qb.push(
            ") AS t WHERE queue_items.id = t.column1 AND queue_items.lease_token = t.column2 \
             RETURNING queue_items.id",
        );
        let rows: Vec<(i64,)> = qb.build_query_as().fetch_all(&mut *conn).await?;
        held.extend(rows.into_iter().map(|(id,)| id));
    }
    Ok(leases
        .iter()
        .filter(|l| !held.contains(&l.item.0))
        .map(|l| l.item)
        .collect())
}

/// The lease tokens of the leased items among `ids`.
async fn lease_tokens(
    conn: &mut SqliteConnection,
    ids: &[QueueItemId],
) -> Result<HashMap<i64, String>> {
    let mut tokens = HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "SELECT id, lease_token FROM queue_items WHERE lease_token IS NOT NULL AND id IN ",
        );
        push_in(&mut qb, chunk.iter().map(|id| id.0));
        let rows: Vec<(i64, String)> = qb.build_query_as().fetch_all(&mut *conn).await?;
        tokens.extend(rows);
    }
    Ok(tokens)
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
        Disposition::Continue { next } => {
            sqlx::query(
                "UPDATE queue_items SET kind = ?1, step_id = ?2, payload = ?3, \
                 concurrency_keys = ?4, attempt = 0, last_error = NULL WHERE id = ?5",
            )
            .bind(next.kind.as_str())
            .bind(next.step_id.as_deref())
            .bind(json(&next.payload))
            .bind(serde_json::to_string(&next.concurrency_keys).unwrap_or_default())
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

/// Applies a batch of commits inside the caller's transaction, with a few statements
/// for the whole batch (lease check, run updates, steps, items, waits, publishes,
/// ends); one [`CommitResult`] per commit. A lease is used once: a second commit with
/// the same lease loses it. Items and waits of runs that end in the batch are not
/// written, and their other items and waits are deleted (those the batch is ending
/// itself are ended by their own dispositions).
pub(crate) async fn apply_all(
    conn: &mut SqliteConnection,
    commits: &[Commit],
    now: Millis,
    woken: &mut Woken,
) -> Result<Vec<CommitResult>> {
    let ids: Vec<QueueItemId> = commits.iter().map(|c| c.lease.item).collect();
    let mut tokens = lease_tokens(conn, &ids).await?;
    let mut results = Vec::with_capacity(commits.len());
    let mut writers: Vec<&Commit> = Vec::new();
    let mut ending: Vec<&Commit> = Vec::new();
    for c in commits {
        let token = c.lease.token.0.to_string();
        if tokens.get(&c.lease.item.0) != Some(&token) {
            results.push(CommitResult::LeaseLost);
            continue;
        }
        tokens.remove(&c.lease.item.0);
        ending.push(c);
        match c.require_wait {
            Some(wait) if !waits::take(conn, wait).await? => results.push(CommitResult::Skipped),
            _ => {
                results.push(CommitResult::Applied);
                writers.push(c);
            }
        }
    }

    let updates: Vec<(RunId, &RunUpdate)> = writers
        .iter()
        .filter_map(|c| c.run.as_ref().map(|(id, u)| (*id, u)))
        .collect();
    let ended = runs::update_many(conn, &updates).await?;
    if !ended.is_empty() {
        let keep: Vec<i64> = ending.iter().map(|c| c.lease.item.0).collect();
        delete_for_runs(conn, &ended, &keep).await?;
        waits::delete_for_runs(conn, &ended).await?;
    }
    let live = |run: Option<RunId>| run.is_none_or(|r| !ended.contains(&r));

    let steps: Vec<StepRecord> = writers
        .iter()
        .flat_map(|c| c.steps.iter().cloned())
        .collect();
    runs::upsert_steps(conn, &steps, now).await?;
    let items: Vec<NewQueueItem> = writers
        .iter()
        .flat_map(|c| c.enqueue.iter())
        .filter(|i| live(i.run_id))
        .cloned()
        .collect();
    insert(conn, &items, now, woken).await?;
    let new_waits: Vec<&NewWait> = writers
        .iter()
        .flat_map(|c| c.waits.iter())
        .filter(|w| live(Some(w.run_id)))
        .collect();
    waits::insert(conn, &new_waits).await?;
    let publishes: Vec<&Publish> = writers.iter().flat_map(|c| c.publish.iter()).collect();
    if !publishes.is_empty() {
        events::publish(conn, &publishes, now, woken).await?;
    }

    let done: Vec<i64> = ending
        .iter()
        .filter(|c| c.disposition == Disposition::Done)
        .map(|c| c.lease.item.0)
        .collect();
    for chunk in done.chunks(CHUNK) {
        let mut qb: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new("DELETE FROM queue_items WHERE id IN ");
        push_in(&mut qb, chunk.iter().copied());
        qb.build().execute(&mut *conn).await?;
    }
    for c in ending.iter().filter(|c| c.disposition != Disposition::Done) {
        end(conn, c.lease.item, &c.disposition, woken).await?;
    }
    Ok(results)
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

/// Deletes the items of `runs`, except those in `keep` (items being ended by their
/// own commits).
pub(crate) async fn delete_for_runs(
    conn: &mut SqliteConnection,
    runs: &[RunId],
    keep: &[i64],
) -> Result<()> {
    for chunk in runs.chunks(CHUNK) {
        let mut qb: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new("DELETE FROM queue_items WHERE run_id IN ");
        push_in(&mut qb, chunk.iter().map(|run| run.to_string()));
        // -1 (no item) keeps the list non-empty.
        qb.push(" AND id NOT IN ");
        push_in(&mut qb, std::iter::once(-1i64).chain(keep.iter().copied()));
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}
