//! `queue_items`: enqueue, the SKIP LOCKED claim, heartbeats, lease-guarded ends,
//! rescue of expired leases and queue depth.
//!
//! Every statement that makes items available also sends
//! `pg_notify(<wake channel>, <min available_at>)` in the same statement, so the
//! wake-up is delivered exactly when (and only if) the transaction commits.

use std::collections::HashMap;

use serde_json::Value;
use sluice_core::{FunctionId, Millis, QueueItemId, RunId};
use sluice_store::{
    Claim, Disposition, LeaseRef, LeaseToken, NewQueueItem, QueueItem, QueueKind, QueueStats,
    Result,
};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::column::{from_json, parse, parse_opt};
use crate::error::SqlxResultExt;

/// A `queue_items` row.
#[derive(sqlx::FromRow)]
struct Row {
    id: i64,
    kind: String,
    run_id: Option<String>,
    function_id: Option<Uuid>,
    step_id: Option<String>,
    payload: Value,
    available_at: i64,
    priority: i32,
    attempt: i32,
    concurrency_keys: Value,
    dedupe_key: Option<String>,
    last_error: Option<Value>,
    lease_owner: Option<String>,
    lease_token: Option<Uuid>,
    lease_expires_at: Option<i64>,
    created_at: i64,
}

impl Row {
    fn into_item(self) -> Result<QueueItem> {
        Ok(QueueItem {
            id: QueueItemId(self.id),
            kind: parse::<QueueKind>("queue kind", &self.kind)?,
            run_id: parse_opt::<RunId>("run id", self.run_id.as_deref())?,
            function_id: self.function_id.map(FunctionId),
            step_id: self.step_id,
            payload: self.payload,
            available_at: Millis(self.available_at),
            priority: self.priority,
            attempt: self.attempt,
            concurrency_keys: from_json("concurrency keys", self.concurrency_keys)?,
            dedupe_key: self.dedupe_key,
            last_error: self.last_error,
            lease_owner: self.lease_owner,
            lease_token: self.lease_token.map(LeaseToken),
            lease_expires_at: self.lease_expires_at.map(Millis),
            created_at: Millis(self.created_at),
        })
    }
}

fn into_items(rows: Vec<Row>) -> Result<Vec<QueueItem>> {
    rows.into_iter().map(Row::into_item).collect()
}

/// The `queue_items` columns of new items, one array each, for `UNNEST` inserts.
pub(crate) struct ItemColumns<'a> {
    pub kinds: Vec<&'static str>,
    pub runs: Vec<Option<String>>,
    pub functions: Vec<Option<Uuid>>,
    pub steps: Vec<Option<&'a str>>,
    pub payloads: Vec<Json<&'a Value>>,
    pub available: Vec<i64>,
    pub priorities: Vec<i32>,
    pub keys: Vec<Json<&'a Vec<String>>>,
    pub dedupe: Vec<Option<&'a str>>,
}

impl<'a> ItemColumns<'a> {
    pub(crate) fn new(items: &[&'a NewQueueItem]) -> Self {
        Self {
            kinds: items.iter().map(|i| i.kind.as_str()).collect(),
            runs: items
                .iter()
                .map(|i| i.run_id.map(|r| r.to_string()))
                .collect(),
            functions: items.iter().map(|i| i.function_id.map(|f| f.0)).collect(),
            steps: items.iter().map(|i| i.step_id.as_deref()).collect(),
            payloads: items.iter().map(|i| Json(&i.payload)).collect(),
            available: items.iter().map(|i| i.available_at.0).collect(),
            priorities: items.iter().map(|i| i.priority).collect(),
            keys: items.iter().map(|i| Json(&i.concurrency_keys)).collect(),
            dedupe: items.iter().map(|i| i.dedupe_key.as_deref()).collect(),
        }
    }
}

/// Inserts items (skipping those whose `dedupe_key` exists) in one statement and
/// notifies `channel` when any went in. Returns the inserted ids, ascending.
pub(crate) async fn insert(
    conn: &mut PgConnection,
    channel: &str,
    items: &[&NewQueueItem],
    now: Millis,
) -> Result<Vec<QueueItemId>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let c = ItemColumns::new(items);
    let (ids, _): (Vec<i64>, Option<bool>) = sqlx::query_as(
        "WITH ins AS (
             INSERT INTO queue_items (kind, run_id, function_id, step_id, payload, available_at,
                                      priority, concurrency_keys, dedupe_key, created_at)
             SELECT k, r, f, s, p, a, pr, ck, d, $10
             FROM UNNEST($1::text[], $2::text[], $3::uuid[], $4::text[], $5::jsonb[],
                         $6::bigint[], $7::int[], $8::jsonb[], $9::text[])
                  WITH ORDINALITY AS t(k, r, f, s, p, a, pr, ck, d, ord)
             ORDER BY ord
             ON CONFLICT (dedupe_key) DO NOTHING
             RETURNING id, available_at)
         SELECT COALESCE(array_agg(id ORDER BY id), '{}'),
                CASE WHEN count(*) > 0 THEN pg_notify($11, min(available_at)::text) END IS NULL
         FROM ins",
    )
    .bind(&c.kinds)
    .bind(&c.runs)
    .bind(&c.functions)
    .bind(&c.steps)
    .bind(&c.payloads)
    .bind(&c.available)
    .bind(&c.priorities)
    .bind(&c.keys)
    .bind(&c.dedupe)
    .bind(now.0)
    .bind(channel)
    .fetch_one(&mut *conn)
    .await
    .db()?;
    Ok(ids.into_iter().map(QueueItemId).collect())
}

/// Leases up to `limit` due items with one CTE (`FOR UPDATE SKIP LOCKED`), a fresh
/// token per item.
pub(crate) async fn claim(conn: &mut PgConnection, claim: &Claim) -> Result<Vec<QueueItem>> {
    if claim.limit == 0 {
        return Ok(Vec::new());
    }
    let rows: Vec<Row> = sqlx::query_as(
        "WITH due AS (
             SELECT id FROM queue_items
             WHERE lease_token IS NULL AND available_at <= $1
             ORDER BY priority, available_at, id
             LIMIT $2
             FOR UPDATE SKIP LOCKED)
         UPDATE queue_items q
         SET lease_owner = $3, lease_token = gen_random_uuid(), lease_expires_at = $4
         FROM due WHERE q.id = due.id
         RETURNING q.*",
    )
    .bind(claim.now.0)
    .bind(i64::from(claim.limit))
    .bind(&claim.owner)
    .bind(claim.now.0 + claim.lease_ms)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    let mut items = into_items(rows)?;
    items.sort_by_key(|i| (i.priority, i.available_at, i.id));
    Ok(items)
}

/// Extends the leases still held; returns the items whose lease is not.
pub(crate) async fn heartbeat(
    conn: &mut PgConnection,
    leases: &[LeaseRef],
    expires_at: Millis,
) -> Result<Vec<QueueItemId>> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = leases.iter().map(|l| l.item.0).collect();
    let tokens: Vec<Uuid> = leases.iter().map(|l| l.token.0).collect();
    let held: Vec<i64> = sqlx::query_scalar(
        // Rows are locked in id order first, as commits lock them, so a heartbeat
        // and a commit never deadlock.
        "WITH locked AS MATERIALIZED (
             SELECT id FROM queue_items WHERE id = ANY($1) ORDER BY id FOR UPDATE)
         UPDATE queue_items q SET lease_expires_at = $3
         FROM UNNEST($1::bigint[], $2::uuid[]) AS t(id, token)
         WHERE q.id = t.id AND q.lease_token = t.token AND q.id IN (SELECT id FROM locked)
         RETURNING q.id",
    )
    .bind(&ids)
    .bind(&tokens)
    .bind(expires_at.0)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    Ok(leases
        .iter()
        .map(|l| l.item)
        .filter(|id| !held.contains(&id.0))
        .collect())
}

/// Locks the leased items and returns those whose lease `token` is still held.
pub(crate) async fn lock_held(
    conn: &mut PgConnection,
    leases: &[LeaseRef],
) -> Result<Vec<LeaseRef>> {
    if leases.is_empty() {
        return Ok(Vec::new());
    }
    let ids: Vec<i64> = leases.iter().map(|l| l.item.0).collect();
    let rows: Vec<(i64, Uuid)> = sqlx::query_as(
        "SELECT id, lease_token FROM queue_items
         WHERE id = ANY($1) AND lease_token IS NOT NULL
         ORDER BY id
         FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    let tokens: HashMap<i64, Uuid> = rows.into_iter().collect();
    Ok(leases
        .iter()
        .filter(|l| tokens.get(&l.item.0) == Some(&l.token.0))
        .copied()
        .collect())
}

/// Ends leased items (already checked by [`lock_held`]) in one statement: deletes the
/// done ones, makes retried and released ones available again (notifying `channel`).
pub(crate) async fn end(
    conn: &mut PgConnection,
    channel: &str,
    ends: &[(QueueItemId, &Disposition)],
) -> Result<()> {
    if ends.is_empty() {
        return Ok(());
    }
    let mut done = Vec::new();
    let (mut ids, mut ats, mut bumps, mut set_errors, mut errors) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut cont = Continues::default();
    for (id, disposition) in ends {
        match disposition {
            Disposition::Continue { next } => cont.push(*id, next),
            Disposition::Done => done.push(id.0),
            Disposition::Retry { at, error } => {
                ids.push(id.0);
                ats.push(at.0);
                bumps.push(1i32);
                set_errors.push(true);
                errors.push(error.as_ref().map(Json));
            }
            Disposition::Release { at } => {
                ids.push(id.0);
                ats.push(at.0);
                bumps.push(0i32);
                set_errors.push(false);
                errors.push(None);
            }
        }
    }
    sqlx::query(
        "WITH gone AS (DELETE FROM queue_items WHERE id = ANY($1) RETURNING id),
         back AS (
             UPDATE queue_items q
             SET available_at = t.at, attempt = q.attempt + t.bump,
                 last_error = CASE WHEN t.set_error THEN t.error ELSE q.last_error END,
                 lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
             FROM UNNEST($2::bigint[], $3::bigint[], $4::int[], $5::bool[], $6::jsonb[])
                  AS t(id, at, bump, set_error, error)
             WHERE q.id = t.id
             RETURNING q.available_at),
         cont AS (
             UPDATE queue_items q
             SET kind = t.kind, step_id = t.step_id, payload = t.payload,
                 concurrency_keys = t.keys, attempt = 0, last_error = NULL
             FROM UNNEST($8::bigint[], $9::text[], $10::text[], $11::jsonb[], $12::jsonb[])
                  AS t(id, kind, step_id, payload, keys)
             WHERE q.id = t.id
             RETURNING q.id)
         SELECT (SELECT count(*) FROM gone), (SELECT count(*) FROM cont),
                (CASE WHEN (SELECT count(*) FROM back) > 0
                      THEN pg_notify($7, (SELECT min(available_at) FROM back)::text) END) IS NULL",
    )
    .bind(&done)
    .bind(&ids)
    .bind(&ats)
    .bind(&bumps)
    .bind(&set_errors)
    .bind(&errors)
    .bind(channel)
    .bind(&cont.ids)
    .bind(&cont.kinds)
    .bind(&cont.step_ids)
    .bind(&cont.payloads)
    .bind(&cont.keys)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}

/// The columns of [`Disposition::Continue`] updates, one array each.
#[derive(Default)]
struct Continues<'a> {
    ids: Vec<i64>,
    kinds: Vec<&'static str>,
    step_ids: Vec<Option<&'a str>>,
    payloads: Vec<Json<&'a Value>>,
    keys: Vec<Json<&'a [String]>>,
}

impl<'a> Continues<'a> {
    fn push(&mut self, id: QueueItemId, next: &'a NewQueueItem) {
        self.ids.push(id.0);
        self.kinds.push(next.kind.as_str());
        self.step_ids.push(next.step_id.as_deref());
        self.payloads.push(Json(&next.payload));
        self.keys.push(Json(next.concurrency_keys.as_slice()));
    }
}

/// Makes expired leases available at `now` with `attempt + 1`.
pub(crate) async fn rescue_expired(
    conn: &mut PgConnection,
    channel: &str,
    now: Millis,
) -> Result<u64> {
    let (count, _): (i64, Option<bool>) = sqlx::query_as(
        "WITH back AS (
             UPDATE queue_items
             SET available_at = $1, attempt = attempt + 1,
                 lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
             WHERE lease_token IS NOT NULL AND lease_expires_at < $1
             RETURNING available_at)
         SELECT count(*),
                CASE WHEN count(*) > 0 THEN pg_notify($2, min(available_at)::text) END IS NULL
         FROM back",
    )
    .bind(now.0)
    .bind(channel)
    .fetch_one(&mut *conn)
    .await
    .db()?;
    Ok(count as u64)
}

pub(crate) async fn next_due(conn: &mut PgConnection) -> Result<Option<Millis>> {
    let at: Option<i64> =
        sqlx::query_scalar("SELECT min(available_at) FROM queue_items WHERE lease_token IS NULL")
            .fetch_one(&mut *conn)
            .await
            .db()?;
    Ok(at.map(Millis))
}

pub(crate) async fn stats(conn: &mut PgConnection, now: Millis) -> Result<QueueStats> {
    let (due, scheduled, leased): (i64, i64, i64) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE lease_token IS NULL AND available_at <= $1),
                count(*) FILTER (WHERE lease_token IS NULL AND available_at > $1),
                count(*) FILTER (WHERE lease_token IS NOT NULL)
         FROM queue_items",
    )
    .bind(now.0)
    .fetch_one(&mut *conn)
    .await
    .db()?;
    Ok(QueueStats {
        due,
        scheduled,
        leased,
    })
}

/// A run's items, soonest first.
pub(crate) async fn for_run(conn: &mut PgConnection, run: RunId) -> Result<Vec<QueueItem>> {
    let rows: Vec<Row> =
        sqlx::query_as("SELECT * FROM queue_items WHERE run_id = $1 ORDER BY available_at, id")
            .bind(run.to_string())
            .fetch_all(&mut *conn)
            .await
            .db()?;
    into_items(rows)
}

/// Deletes the items of these runs except `keep` (items being ended by their holder).
pub(crate) async fn delete_for_runs(
    conn: &mut PgConnection,
    runs: &[String],
    keep: &[i64],
) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM queue_items WHERE run_id = ANY($1) AND NOT (id = ANY($2))")
        .bind(runs)
        .bind(keep)
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(())
}
