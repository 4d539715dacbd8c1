//! `events` and `event_dedupe`, and the publish use case that writes an event's
//! whole fan-out.

use sluice_core::{EventId, Millis};
use sluice_store::{DEDUPE_WINDOW_MS, Event, EventFilter, Page, Publish, Published};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::codec::{json, parse, parse_json};
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

/// The id this event duplicates, if it is a duplicate; otherwise claims its
/// external id for the dedupe window.
async fn dedupe(
    conn: &mut SqliteConnection,
    event: &Event,
    now: Millis,
) -> Result<Option<EventId>> {
    let known: Option<(i64,)> = sqlx::query_as("SELECT 1 FROM events WHERE id = ?1")
        .bind(event.id.to_string())
        .fetch_optional(&mut *conn)
        .await?;
    if known.is_some() {
        return Ok(Some(event.id));
    }
    let Some(external) = &event.external_id else {
        return Ok(None);
    };
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

/// Writes a batch of publishes inside the caller's transaction.
pub(crate) async fn publish(
    conn: &mut SqliteConnection,
    batch: &[Publish],
    now: Millis,
    woken: &mut Woken,
) -> Result<Vec<Published>> {
    let mut out = Vec::with_capacity(batch.len());
    for p in batch {
        let e = &p.event;
        if let Some(id) = dedupe(conn, e, now).await? {
            out.push(Published {
                id,
                duplicate: true,
            });
            continue;
        }
        sqlx::query(concat!(
            "INSERT INTO events (",
            event_columns!(),
            ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"
        ))
        .bind(e.id.to_string())
        .bind(&e.external_id)
        .bind(&e.name)
        .bind(json(&e.data))
        .bind(json(&e.user))
        .bind(&e.version)
        .bind(e.ts.0)
        .bind(e.received_at.0)
        .execute(&mut *conn)
        .await?;
        runs::insert(conn, &p.runs, now, woken).await?;
        for resume in &p.resumes {
            if waits::take(conn, resume.wait_id).await? {
                runs::upsert_steps(conn, std::slice::from_ref(&resume.step), now).await?;
                queue::insert(conn, std::slice::from_ref(&resume.next), now, woken).await?;
            }
        }
        runs::cancel(conn, &p.cancels, now).await?;
        out.push(Published {
            id: e.id,
            duplicate: false,
        });
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
        " FROM events WHERE id IN ("
    ));
    let mut list = qb.separated(", ");
    for id in ids {
        list.push_bind(id.to_string());
    }
    qb.push(")");
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
        qb.push(" AND name IN (");
        let mut list = qb.separated(", ");
        for name in &f.names {
            list.push_bind(name.as_str());
        }
        qb.push(")");
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
