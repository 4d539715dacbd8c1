//! `events` and `event_dedupe` (the 24 h window of external ids).

use std::collections::{HashMap, HashSet};

use serde_json::Value;
use sluice_core::{EventId, Millis};
use sluice_store::{Error, Event, EventFilter, Page, Result};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::column::{parse, texts};
use crate::error::SqlxResultExt;
use crate::page::{page, page_limit};

/// An `events` row.
#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    external_id: Option<String>,
    name: String,
    data: Value,
    user: Value,
    version: Option<String>,
    ts: i64,
    received_at: i64,
}

impl Row {
    fn into_event(self) -> Result<Event> {
        Ok(Event {
            id: parse("event id", &self.id)?,
            external_id: self.external_id,
            name: self.name,
            data: self.data,
            user: self.user,
            version: self.version,
            ts: Millis(self.ts),
            received_at: Millis(self.received_at),
        })
    }
}

fn into_events(rows: Vec<Row>) -> Result<Vec<Event>> {
    rows.into_iter().map(Row::into_event).collect()
}

/// Claims external ids for events (`(external id, event id)`, external ids distinct)
/// until `expires_at`, taking over entries that expired by `now`. Returns, per
/// external id, the event that owns it afterwards: the given one when claimed,
/// else the event it dedupes to.
pub(crate) async fn claim_external_ids(
    conn: &mut PgConnection,
    claims: &[(&str, EventId)],
    expires_at: Millis,
    now: Millis,
) -> Result<HashMap<String, String>> {
    if claims.is_empty() {
        return Ok(HashMap::new());
    }
    let externals: Vec<&str> = claims.iter().map(|(e, _)| *e).collect();
    let ids = texts(claims.iter().map(|(_, id)| *id));
    let rows: Vec<(String, Option<String>)> = sqlx::query_as(
        "WITH input AS (SELECT * FROM UNNEST($1::text[], $2::text[]) AS t(ext, id)),
         ins AS (
             INSERT INTO event_dedupe (external_id, event_id, expires_at)
             SELECT ext, id, $3 FROM input ORDER BY ext
             ON CONFLICT (external_id) DO UPDATE
                 SET event_id = EXCLUDED.event_id, expires_at = EXCLUDED.expires_at
                 WHERE event_dedupe.expires_at <= $4
             RETURNING external_id, event_id)
         SELECT i.ext, COALESCE(ins.event_id, d.event_id)
         FROM input i
         LEFT JOIN ins ON ins.external_id = i.ext
         LEFT JOIN event_dedupe d ON d.external_id = i.ext",
    )
    .bind(&externals)
    .bind(&ids)
    .bind(expires_at.0)
    .bind(now.0)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    let mut owners = HashMap::with_capacity(rows.len());
    let mut unseen = Vec::new();
    for (ext, owner) in rows {
        match owner {
            Some(owner) => {
                owners.insert(ext, owner);
            }
            // Committed by a concurrent publish after this statement's snapshot.
            None => unseen.push(ext),
        }
    }
    if !unseen.is_empty() {
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT external_id, event_id FROM event_dedupe WHERE external_id = ANY($1)",
        )
        .bind(&unseen)
        .fetch_all(&mut *conn)
        .await
        .db()?;
        owners.extend(rows);
    }
    Ok(owners)
}

/// Inserts events in one statement, skipping ids stored concurrently; returns the ids
/// inserted.
/// The `events` columns of a batch, one array each, for `UNNEST` inserts.
pub(crate) struct EventColumns<'a> {
    pub ids: Vec<String>,
    pub externals: Vec<Option<&'a str>>,
    pub names: Vec<&'a str>,
    pub data: Vec<Json<&'a Value>>,
    pub users: Vec<Json<&'a Value>>,
    pub versions: Vec<Option<&'a str>>,
    pub ts: Vec<i64>,
    pub received: Vec<i64>,
}

impl<'a> EventColumns<'a> {
    pub(crate) fn new(events: &[&'a Event]) -> Self {
        Self {
            ids: texts(events.iter().map(|e| e.id)),
            externals: events.iter().map(|e| e.external_id.as_deref()).collect(),
            names: events.iter().map(|e| e.name.as_str()).collect(),
            data: events.iter().map(|e| Json(&e.data)).collect(),
            users: events.iter().map(|e| Json(&e.user)).collect(),
            versions: events.iter().map(|e| e.version.as_deref()).collect(),
            ts: events.iter().map(|e| e.ts.0).collect(),
            received: events.iter().map(|e| e.received_at.0).collect(),
        }
    }
}

pub(crate) async fn insert(conn: &mut PgConnection, events: &[&Event]) -> Result<HashSet<String>> {
    if events.is_empty() {
        return Ok(HashSet::new());
    }
    let c = EventColumns::new(events);
    let inserted: Vec<String> = sqlx::query_scalar(
        r#"INSERT INTO events (id, external_id, name, data, "user", version, ts, received_at)
           SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::jsonb[], $5::jsonb[],
                                $6::text[], $7::bigint[], $8::bigint[])
           ON CONFLICT (id) DO NOTHING
           RETURNING id"#,
    )
    .bind(&c.ids)
    .bind(&c.externals)
    .bind(&c.names)
    .bind(&c.data)
    .bind(&c.users)
    .bind(&c.versions)
    .bind(&c.ts)
    .bind(&c.received)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    Ok(inserted.into_iter().collect())
}

pub(crate) async fn get(conn: &mut PgConnection, id: EventId) -> Result<Event> {
    let row: Option<Row> = sqlx::query_as("SELECT * FROM events WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    row.ok_or_else(|| Error::NotFound(format!("event {id}")))?
        .into_event()
}

/// Events by id in the order asked; missing ids are left out.
pub(crate) async fn get_many(conn: &mut PgConnection, ids: &[EventId]) -> Result<Vec<Event>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Row> = sqlx::query_as("SELECT * FROM events WHERE id = ANY($1)")
        .bind(texts(ids))
        .fetch_all(&mut *conn)
        .await
        .db()?;
    let mut by_id: std::collections::HashMap<String, Row> =
        rows.into_iter().map(|r| (r.id.clone(), r)).collect();
    let ordered = ids
        .iter()
        .filter_map(|id| by_id.remove(&id.to_string()))
        .collect();
    into_events(ordered)
}

/// Events newest first (by id, a ULID), one page. Internal `inngest/*` events are left
/// out unless asked for, or named explicitly.
pub(crate) async fn list(conn: &mut PgConnection, filter: &EventFilter) -> Result<Page<Event>> {
    let limit = page_limit(filter.limit);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT * FROM events
         WHERE (cardinality($1::text[]) = 0 OR name = ANY($1))
           AND ($2 OR cardinality($1::text[]) > 0 OR name NOT LIKE 'inngest/%')
           AND ($3::bigint IS NULL OR received_at > $3)
           AND ($4::bigint IS NULL OR received_at < $4)
           AND ($5::text IS NULL OR id < $5)
         ORDER BY id DESC
         LIMIT $6",
    )
    .bind(&filter.names)
    .bind(filter.include_internal)
    .bind(filter.received_after.map(|m| m.0))
    .bind(filter.received_before.map(|m| m.0))
    .bind(filter.cursor.map(|c| c.to_string()))
    .bind(limit + 1)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    Ok(page(into_events(rows)?, limit, |e| e.id.to_string()))
}

/// Deletes events received before `before` (with their run links) and expired dedupe
/// entries; returns how many events went.
pub(crate) async fn prune(conn: &mut PgConnection, before: Millis) -> Result<u64> {
    let count: i64 = sqlx::query_scalar(
        "WITH gone AS (DELETE FROM events WHERE received_at < $1 RETURNING id),
         l AS (DELETE FROM run_events WHERE event_id IN (SELECT id FROM gone)),
         d AS (DELETE FROM event_dedupe WHERE expires_at < $1)
         SELECT count(*) FROM gone",
    )
    .bind(before.0)
    .fetch_one(&mut *conn)
    .await
    .db()?;
    Ok(count as u64)
}
