//! `waits`: event waits, invoke waits and cancellation watches.

use serde_json::Value;
use sluice_core::{Millis, RunId, WaitId};
use sluice_store::{NewWait, Result, Wait, WaitKind};
use sqlx::PgConnection;
use sqlx::types::Json;

use crate::column::{parse, texts};
use crate::error::SqlxResultExt;

/// A `waits` row.
#[derive(sqlx::FromRow)]
struct Row {
    id: String,
    run_id: String,
    kind: String,
    step_id: Option<String>,
    event_name: String,
    expression: Option<String>,
    correlation_id: Option<String>,
    trigger_event: Value,
    expires_at: Option<i64>,
    created_at: i64,
}

impl Row {
    fn into_wait(self) -> Result<Wait> {
        Ok(Wait {
            id: parse("wait id", &self.id)?,
            run_id: parse("run id", &self.run_id)?,
            kind: parse::<WaitKind>("wait kind", &self.kind)?,
            step_id: self.step_id,
            event_name: self.event_name,
            expression: self.expression,
            correlation_id: self.correlation_id,
            trigger_event: self.trigger_event,
            expires_at: self.expires_at.map(Millis),
            created_at: Millis(self.created_at),
        })
    }
}

fn into_waits(rows: Vec<Row>) -> Result<Vec<Wait>> {
    rows.into_iter().map(Row::into_wait).collect()
}

/// Inserts waits in one statement (an existing wait id is a conflict).
pub(crate) async fn insert(conn: &mut PgConnection, waits: &[&NewWait]) -> Result<()> {
    if waits.is_empty() {
        return Ok(());
    }
    let ids = texts(waits.iter().map(|w| w.id));
    let runs = texts(waits.iter().map(|w| w.run_id));
    let kinds: Vec<&str> = waits.iter().map(|w| w.kind.as_str()).collect();
    let steps: Vec<Option<&str>> = waits.iter().map(|w| w.step_id.as_deref()).collect();
    let names: Vec<&str> = waits.iter().map(|w| w.event_name.as_str()).collect();
    let exprs: Vec<Option<&str>> = waits.iter().map(|w| w.expression.as_deref()).collect();
    let corrs: Vec<Option<&str>> = waits.iter().map(|w| w.correlation_id.as_deref()).collect();
    let triggers: Vec<Json<&Value>> = waits.iter().map(|w| Json(&w.trigger_event)).collect();
    let expires: Vec<Option<i64>> = waits.iter().map(|w| w.expires_at.map(|m| m.0)).collect();
    let created: Vec<i64> = waits.iter().map(|w| w.created_at.0).collect();
    sqlx::query(
        "INSERT INTO waits (id, run_id, kind, step_id, event_name, expression, correlation_id,
                            trigger_event, expires_at, created_at)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::text[], $7::text[], $8::jsonb[], $9::bigint[], $10::bigint[])",
    )
    .bind(&ids)
    .bind(&runs)
    .bind(&kinds)
    .bind(&steps)
    .bind(&names)
    .bind(&exprs)
    .bind(&corrs)
    .bind(&triggers)
    .bind(&expires)
    .bind(&created)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}

/// Deletes the waits that exist among `ids`; returns those deleted.
pub(crate) async fn take(conn: &mut PgConnection, ids: &[WaitId]) -> Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar("DELETE FROM waits WHERE id = ANY($1) RETURNING id")
        .bind(texts(ids))
        .fetch_all(&mut *conn)
        .await
        .db()
}

pub(crate) async fn delete_for_runs(conn: &mut PgConnection, runs: &[String]) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    sqlx::query("DELETE FROM waits WHERE run_id = ANY($1)")
        .bind(runs)
        .execute(&mut *conn)
        .await
        .db()?;
    Ok(())
}

pub(crate) async fn for_run(conn: &mut PgConnection, run: RunId) -> Result<Vec<Wait>> {
    let rows: Vec<Row> =
        sqlx::query_as("SELECT * FROM waits WHERE run_id = $1 ORDER BY created_at, id")
            .bind(run.to_string())
            .fetch_all(&mut *conn)
            .await
            .db()?;
    into_waits(rows)
}

/// Unexpired waits for any of `names`.
pub(crate) async fn for_events(
    conn: &mut PgConnection,
    names: &[String],
    now: Millis,
) -> Result<Vec<Wait>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT * FROM waits
         WHERE event_name = ANY($1) AND (expires_at IS NULL OR expires_at > $2)
         ORDER BY created_at, id",
    )
    .bind(names)
    .bind(now.0)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    into_waits(rows)
}

/// Deletes waits that expired before `now` and that no `wait_timeout` item will end
/// (cancellation watches); returns how many.
pub(crate) async fn expire(conn: &mut PgConnection, now: Millis) -> Result<u64> {
    let done = sqlx::query(
        "DELETE FROM waits w
         WHERE w.expires_at < $1
           AND NOT EXISTS (
               SELECT 1 FROM queue_items q
               WHERE q.kind = 'wait_timeout' AND q.run_id = w.run_id AND q.step_id = w.step_id)",
    )
    .bind(now.0)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(done.rows_affected())
}
