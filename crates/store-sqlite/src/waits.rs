//! `waits`: waits for events, invokes and cancellations.

use sluice_core::{Millis, WaitId};
use sluice_store::{NewWait, Wait};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::codec::{CHUNK, json, parse, parse_json, push_in};
use crate::error::Result;

macro_rules! wait_columns {
    () => {
        "id, run_id, kind, step_id, event_name, expression, correlation_id, trigger_event, \
         expires_at, created_at"
    };
}

#[derive(sqlx::FromRow)]
struct WaitRow {
    id: String,
    run_id: String,
    kind: String,
    step_id: Option<String>,
    event_name: String,
    expression: Option<String>,
    correlation_id: Option<String>,
    trigger_event: String,
    expires_at: Option<i64>,
    created_at: i64,
}

impl TryFrom<WaitRow> for Wait {
    type Error = crate::Error;
    fn try_from(r: WaitRow) -> Result<Self> {
        Ok(Wait {
            id: parse("wait id", &r.id)?,
            run_id: parse("run id", &r.run_id)?,
            kind: parse("wait kind", &r.kind)?,
            step_id: r.step_id,
            event_name: r.event_name,
            expression: r.expression,
            correlation_id: r.correlation_id,
            trigger_event: parse_json(&r.trigger_event)?,
            expires_at: r.expires_at.map(Millis),
            created_at: Millis(r.created_at),
        })
    }
}

fn waits(rows: Vec<WaitRow>) -> Result<Vec<Wait>> {
    rows.into_iter().map(Wait::try_from).collect()
}

/// Inserts waits with multi-row statements.
pub(crate) async fn insert(conn: &mut SqliteConnection, new: &[&NewWait]) -> Result<()> {
    for chunk in new.chunks(CHUNK) {
        let mut qb: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new(concat!("INSERT INTO waits (", wait_columns!(), ") "));
        qb.push_values(chunk, |mut b, w| {
            b.push_bind(w.id.to_string())
                .push_bind(w.run_id.to_string())
                .push_bind(w.kind.as_str())
                .push_bind(w.step_id.clone())
                .push_bind(w.event_name.clone())
                .push_bind(w.expression.clone())
                .push_bind(w.correlation_id.clone())
                .push_bind(json(&w.trigger_event))
                .push_bind(w.expires_at.map(|m| m.0))
                .push_bind(w.created_at.0);
        });
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Deletes the wait; true when it existed (so the caller is the one to resume it).
pub(crate) async fn take(conn: &mut SqliteConnection, id: WaitId) -> Result<bool> {
    let done = sqlx::query("DELETE FROM waits WHERE id = ?1")
        .bind(id.to_string())
        .execute(conn)
        .await?;
    Ok(done.rows_affected() > 0)
}

/// Unexpired waits for any of `names`.
pub(crate) async fn for_events(
    conn: &mut SqliteConnection,
    names: &[String],
    now: Millis,
) -> Result<Vec<Wait>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(concat!(
        "SELECT ",
        wait_columns!(),
        " FROM waits WHERE event_name IN "
    ));
    push_in(&mut qb, names.iter().map(String::as_str));
    qb.push(" AND (expires_at IS NULL OR expires_at > ")
        .push_bind(now.0)
        .push(") ORDER BY id");
    let rows: Vec<WaitRow> = qb.build_query_as().fetch_all(conn).await?;
    waits(rows)
}

/// Whether an unexpired wait for any of `names` exists.
pub(crate) async fn any_for_events(
    conn: &mut SqliteConnection,
    names: &[String],
    now: Millis,
) -> Result<bool> {
    if names.is_empty() {
        return Ok(false);
    }
    let mut qb: QueryBuilder<'_, Sqlite> =
        QueryBuilder::new("SELECT EXISTS (SELECT 1 FROM waits WHERE event_name IN ");
    push_in(&mut qb, names.iter().map(String::as_str));
    qb.push(" AND (expires_at IS NULL OR expires_at > ")
        .push_bind(now.0)
        .push("))");
    Ok(qb.build_query_scalar().fetch_one(conn).await?)
}

pub(crate) async fn for_run(conn: &mut SqliteConnection, run: &str) -> Result<Vec<Wait>> {
    let rows: Vec<WaitRow> = sqlx::query_as(concat!(
        "SELECT ",
        wait_columns!(),
        " FROM waits WHERE run_id = ?1 ORDER BY id"
    ))
    .bind(run)
    .fetch_all(conn)
    .await?;
    waits(rows)
}

pub(crate) async fn delete_for_runs(
    conn: &mut SqliteConnection,
    runs: &[sluice_core::RunId],
) -> Result<()> {
    for chunk in runs.chunks(CHUNK) {
        let mut qb: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new("DELETE FROM waits WHERE run_id IN ");
        push_in(&mut qb, chunk.iter().map(|run| run.to_string()));
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Deletes expired waits that no `wait_timeout` item of the same run and step will
/// end (cancel watches have no step, so they always go).
pub(crate) async fn expire(conn: &mut SqliteConnection, now: Millis) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM waits WHERE expires_at < ?1 AND NOT EXISTS (\
         SELECT 1 FROM queue_items q WHERE q.run_id = waits.run_id \
         AND q.kind = 'wait_timeout' AND q.step_id = waits.step_id)",
    )
    .bind(now.0)
    .execute(conn)
    .await?;
    Ok(done.rows_affected())
}
