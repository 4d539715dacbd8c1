//! `events` and `event_dedupe`, and the publish use case that writes an event's
//! whole fan-out.

use std::collections::HashSet;

use sluice_core::{EventId, Millis};
use sluice_store::{DEDUPE_WINDOW_MS, Event, EventFilter, Page, Publish, Published};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::codec::{CHUNK, json, parse, parse_json, push_in};
use crate::error::{Error, Result};
use crate::queue::{self, Woken};
use crate::runs::{self, page_limit};
use crate::waits;

macro_rules! event_columns {
    () => {
        "id, external_id, name, data, \"user\", version, ts, received_at"
    };
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: String,
    external_id: Option<String>,
    name: String,
    data: String,
    user: String,
    version: Option<String>,
    ts: i64,
    received_at: i64,
}

impl TryFrom<EventRow> for Event {
    type Error = Error;
    fn try_from(r: EventRow) -> Result<Self> {
        Ok(Event {
            id: parse("event id", &r.id)?,
            external_id: r.external_id,
            name: r.name,
            data: parse_json(&r.data)?,
            user: parse_json(&r.user)?,
            version: r.version,
            ts: Millis(r.ts),
            received_at: Millis(r.received_at),
        })
    }
}

fn events(rows: Vec<EventRow>) -> Result<Vec<Event>> {
    rows.into_iter().map(Event::try_from).collect()
}

/// Which of `ids` are stored events.
async fn stored(conn: &mut SqliteConnection, ids: &[String]) -> Result<HashSet<String>> {
    let mut found = HashSet::new();
    for chunk in ids.chunks(CHUNK) {
        let mut qb: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new("SELECT id FROM events WHERE id IN ");
        push_in(&mut qb, chunk);
        let rows: Vec<(String,)> = qb.build_query_as().fetch_all(&mut *conn).await?;
        found.extend(rows.into_iter().map(|(id,)| id));
    }
    Ok(found)
}

/// Claims `event`'s external id for the dedupe window; returns the event it
/// duplicates when another event holds it.
async fn claim_external(
    conn: &mut SqliteConnection,
    event: &Event,
    external: &str,
    now: Millis,
) -> Result<Option<EventId>> {
    let claimed: Option<(String,)> = sqlx::query_as(
        "INSERT INTO event_dedupe (external_id, event_id, expires_at) VALUES (?1, ?2, ?3) \
         ON CONFLICT (external_id) DO UPDATE SET event_id = excluded.event_id, \
         expires_at = excluded.expires_at WHERE event_dedupe.expires_at <= ?4 \
         RETURNING event_id",
    )
    .bind(external)
    .bind(event.id.to_string())
    .bind(now.plus_ms(DEDUPE_WINDOW_MS).0)
    .bind(now.0)
    .fetch_optional(&mut *conn)
    .await?;
    if claimed.is_some() {
        return Ok(None);
    }
    let (existing,): (String,) =
        sqlx::query_as("SELECT event_id FROM event_dedupe WHERE external_id = ?1")
            .bind(external)
            .fetch_one(conn)
            .await?;
    Ok(Some(parse("event id", &existing)?))
}

/// Binds one row of `event_columns!()`.
fn bind_event(mut b: sqlx::query_builder::Separated<'_, '_, Sqlite, &'static str>, e: &Event) {
    b.push_bind(e.id.to_string())
        .push_bind(e.external_id.clone())
        .push_bind(e.name.clone())
        .push_bind(json(&e.data))
        .push_bind(json(&e.user))
        .push_bind(e.version.clone())
        .push_bind(e.ts.0)
        .push_bind(e.received_at.0);
}

/// Inserts events with multi-row statements.
async fn insert(conn: &mut SqliteConnection, new: &[&Event]) -> Result<()> {
    for chunk in new.chunks(CHUNK) {
        let mut qb: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new(concat!("INSERT INTO events (", event_columns!(), ") "));
        qb.push_values(chunk, |b, e| bind_event(b, e));
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Whether [`publish_unwaited_at_once`] can write `batch`: a plain batch
/// ([`sluice_store::event::is_plain`]) of at most [`CHUNK`] events (larger groups
/// measured faster as a transaction of chunked inserts) that start no runs.
pub(crate) fn at_once(batch: &[Publish]) -> bool {
    batch.len() <= CHUNK
        && batch.iter().all(|p| p.runs.is_empty())
        && sluice_store::event::is_plain(batch)
}

/// An [`at_once`] batch in ONE statement outside any transaction (a statement is
/// atomic and, with `synchronous=FULL`, durable when it returns), written only if no
/// unexpired wait for `names` exists: one round trip to sqlx's SQLite thread instead
/// of a transaction's five. `None` when a wait exists (nothing written). `conn` must
/// be the only write connection, held across both statements here, so nothing is
/// written between the insert and the check that tells "a wait blocked it" from
/// "every event was a duplicate".
pub(crate) async fn publish_unwaited_at_once(
    conn: &mut SqliteConnection,
    batch: &[Publish],
    names: &[String],
    now: Millis,
) -> Result<Option<Vec<Published>>> {
    let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(concat!(
        "INSERT INTO events (",
        event_columns!(),
        ") SELECT * FROM ("
    ));
    qb.push_values(batch, |b, p| bind_event(b, &p.event));
    // A WHERE clause also keeps SQLite from reading ON CONFLICT as a join's ON.
    qb.push(") WHERE NOT EXISTS (SELECT 1 FROM waits WHERE event_name IN ");
    push_in(&mut qb, names.iter().map(String::as_str));
    qb.push(" AND (expires_at IS NULL OR expires_at > ")
        .push_bind(now.0)
        .push(")) ON CONFLICT (id) DO NOTHING RETURNING id");
    let inserted: Vec<String> = qb.build_query_scalar().fetch_all(&mut *conn).await?;
    if inserted.is_empty() && waits::any_for_events(conn, names, now).await? {
        return Ok(None);
    }
    let inserted: HashSet<String> = inserted.into_iter().collect();
    Ok(Some(
        batch
            .iter()
            .map(|p| Published {
                id: p.event.id,
                duplicate: !inserted.contains(&p.event.id.to_string()),
            })
            .collect(),
    ))
}

/// Writes a batch of publishes inside the caller's transaction, a few statements for
/// the whole batch: which ids are stored, the events, their runs (with links and
/// first items); resumes, cancels and external-id claims go one by one.
pub(crate) async fn publish(
    conn: &mut SqliteConnection,
    batch: &[&Publish],
    now: Millis,
    woken: &mut Woken,
) -> Result<Vec<Published>> {
    let ids: Vec<String> = batch.iter().map(|p| p.event.id.to_string()).collect();
    let known = stored(conn, &ids).await?;
    let mut seen: HashSet<EventId> = HashSet::new();
    let mut out = Vec::with_capacity(batch.len());
    let mut winners: Vec<&Publish> = Vec::new();
    for (p, id) in batch.iter().zip(&ids) {
        let e = &p.event;
        let duplicate_of = if known.contains(id) || seen.contains(&e.id) {
            Some(e.id)
        } else if let Some(external) = &e.external_id {
            claim_external(conn, e, external, now).await?
        } else {
            None
        };
        match duplicate_of {
            Some(id) => out.push(Published {
                id,
                duplicate: true,
            }),
            None => {
                seen.insert(e.id);
                winners.push(p);
                out.push(Published {
                    id: e.id,
                    duplicate: false,
                });
            }
        }
    }
    let events: Vec<&Event> = winners.iter().map(|p| &p.event).collect();
    insert(conn, &events).await?;
    let new_runs: Vec<sluice_store::NewRun> = winners
        .iter()
        .flat_map(|p| p.runs.iter().cloned())
        .collect();
    runs::insert(conn, &new_runs, now, woken).await?;
    for p in &winners {
        for resume in &p.resumes {
            if waits::take(conn, resume.wait_id).await? {
                runs::upsert_steps(conn, std::slice::from_ref(&resume.step), now).await?;
                queue::insert(conn, std::slice::from_ref(&resume.next), now, woken).await?;
            }
        }
        runs::cancel(conn, &p.cancels, now).await?;
    }
    Ok(out)
}

pub(crate) async fn get(conn: &mut SqliteConnection, id: EventId) -> Result<Event> {
    let row: Option<EventRow> = sqlx::query_as(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE id = ?1"
    ))
    .bind(id.to_string())
    .fetch_optional(conn)
    .await?;
    match row {
        Some(row) => row.try_into(),
        None => Err(sluice_store::Error::NotFound(format!("event {id}")).into()),
    }
}

/// Events by id in the asked order, missing ones left out.
pub(crate) async fn get_many(conn: &mut SqliteConnection, ids: &[EventId]) -> Result<Vec<Event>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE id IN "
    ));
    push_in(&mut qb, ids.iter().map(|id| id.to_string()));
    let rows: Vec<EventRow> = qb.build_query_as().fetch_all(conn).await?;
    let mut found = events(rows)?;
    let mut ordered = Vec::with_capacity(found.len());
    for id in ids {
        if let Some(pos) = found.iter().position(|e| e.id == *id) {
            ordered.push(found.swap_remove(pos));
        }
    }
    Ok(ordered)
}

pub(crate) async fn list(conn: &mut SqliteConnection, f: &EventFilter) -> Result<Page<Event>> {
    let limit = page_limit(f.limit);
    let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(concat!(
        "SELECT ",
        event_columns!(),
        " FROM events WHERE 1 = 1"
    ));
    if !f.names.is_empty() {
        qb.push(" AND name IN ");
        push_in(&mut qb, f.names.iter().map(String::as_str));
    }
    if !f.include_internal {
        // substr, not LIKE: LIKE is case-insensitive in SQLite.
        qb.push(" AND substr(name, 1, 8) <> 'inngest/'");
    }
    if let Some(after) = f.received_after {
        qb.push(" AND received_at > ").push_bind(after.0);
    }
    if let Some(before) = f.received_before {
        qb.push(" AND received_at < ").push_bind(before.0);
    }
    if let Some(cursor) = f.cursor {
        qb.push(" AND id < ").push_bind(cursor.to_string());
    }
    qb.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(limit));
    let rows: Vec<EventRow> = qb.build_query_as().fetch_all(conn).await?;
    let items = events(rows)?;
    let next = (items.len() == limit as usize)
        .then(|| items.last().map(|e| e.id.to_string()))
        .flatten();
    Ok(Page { items, next })
}

/// Deletes events received before `before` (with their run links) and dedupe
/// entries that expired by then.
pub(crate) async fn prune(conn: &mut SqliteConnection, before: Millis) -> Result<u64> {
    sqlx::query(
        "DELETE FROM run_events WHERE event_id IN (SELECT id FROM events WHERE received_at < ?1)",
    )
    .bind(before.0)
    .execute(&mut *conn)
    .await?;
    let gone = sqlx::query("DELETE FROM events WHERE received_at < ?1")
        .bind(before.0)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM event_dedupe WHERE expires_at < ?1")
        .bind(before.0)
        .execute(conn)
        .await?;
    Ok(gone)
}
