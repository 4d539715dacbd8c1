//! `runs`, `run_events` and `steps`.

use std::collections::HashMap;

use sluice_core::{EventId, Millis, RunId};
use sluice_store::{NewRun, Page, Run, RunFilter, RunStatus, RunUpdate, Step, StepRecord};
use sqlx::{QueryBuilder, Sqlite, SqliteConnection};

use crate::codec::{CHUNK, opt_json, parse, parse_opt, parse_opt_json, push_in};
use crate::error::{Error, Result};
use crate::queue::{self, Woken};
use crate::waits;

macro_rules! run_columns {
    () => {
        "id, function_id, status, event_ids, output, error, request_version, \
         disable_immediate_execution, correlation_id, rerun_of, created_at, started_at, ended_at"
    };
}

macro_rules! step_columns {
    () => {
        "run_id, step_id, name, op, status, result, error, attempts, opts, created_at, \
         started_at, ended_at"
    };
}

/// Statuses of runs that have not ended.
const OPEN: &str = "('queued', 'running')";

#[derive(sqlx::FromRow)]
struct RunRow {
    id: String,
    function_id: String,
    status: String,
    event_ids: String,
    output: Option<String>,
    error: Option<String>,
    request_version: Option<i32>,
    disable_immediate_execution: bool,
    correlation_id: Option<String>,
    rerun_of: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    ended_at: Option<i64>,
}

impl TryFrom<RunRow> for Run {
    type Error = Error;
    fn try_from(r: RunRow) -> Result<Self> {
        Ok(Run {
            id: parse("run id", &r.id)?,
            function_id: parse("function id", &r.function_id)?,
            status: parse("run status", &r.status)?,
            event_ids: serde_json::from_str(&r.event_ids)?,
            output: parse_opt_json(r.output.as_deref())?,
            error: parse_opt_json(r.error.as_deref())?,
            request_version: r.request_version,
            disable_immediate_execution: r.disable_immediate_execution,
            correlation_id: r.correlation_id,
            rerun_of: parse_opt("run id", r.rerun_of.as_deref())?,
            created_at: Millis(r.created_at),
            started_at: r.started_at.map(Millis),
            ended_at: r.ended_at.map(Millis),
        })
    }
}

fn runs(rows: Vec<RunRow>) -> Result<Vec<Run>> {
    rows.into_iter().map(Run::try_from).collect()
}

#[derive(sqlx::FromRow)]
struct StepRow {
    run_id: String,
    step_id: String,
    name: String,
    op: String,
    status: String,
    result: Option<String>,
    error: Option<String>,
    attempts: i32,
    opts: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    ended_at: Option<i64>,
}

impl TryFrom<StepRow> for Step {
    type Error = Error;
    fn try_from(r: StepRow) -> Result<Self> {
        Ok(Step {
            run_id: parse("run id", &r.run_id)?,
            step_id: r.step_id,
            name: r.name,
            op: r.op,
            status: parse("step status", &r.status)?,
            result: parse_opt_json(r.result.as_deref())?,
            error: parse_opt_json(r.error.as_deref())?,
            attempts: r.attempts,
            opts: parse_opt_json(r.opts.as_deref())?,
            created_at: Millis(r.created_at),
            started_at: r.started_at.map(Millis),
            ended_at: r.ended_at.map(Millis),
        })
    }
}

/// Inserts runs with their event links, first items and waits.
pub(crate) async fn insert(
    conn: &mut SqliteConnection,
    new: &[NewRun],
    now: Millis,
    woken: &mut Woken,
) -> Result<()> {
    if new.is_empty() {
        return Ok(());
    }
    let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
        "INSERT INTO runs (id, function_id, status, event_ids, correlation_id, rerun_of, \
         created_at) ",
    );
    qb.push_values(new, |mut b, r| {
        b.push_bind(r.id.to_string())
            .push_bind(r.function_id.to_string())
            .push_bind(RunStatus::Queued.as_str())
            .push_bind(serde_json::to_string(&r.event_ids).unwrap_or_default())
            .push_bind(r.correlation_id.clone())
            .push_bind(r.rerun_of.map(|id| id.to_string()))
            .push_bind(r.created_at.0);
    });
    qb.build().execute(&mut *conn).await?;

    let links: Vec<(EventId, RunId)> = new
        .iter()
        .flat_map(|r| r.event_ids.iter().map(move |e| (*e, r.id)))
        .collect();
    if !links.is_empty() {
        let mut qb: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new("INSERT INTO run_events (event_id, run_id) ");
        qb.push_values(&links, |mut b, (e, r)| {
            b.push_bind(e.to_string()).push_bind(r.to_string());
        });
        qb.push(" ON CONFLICT DO NOTHING");
        qb.build().execute(&mut *conn).await?;
    }

    let firsts: Vec<_> = new.iter().map(|r| r.first.clone()).collect();
    queue::insert(conn, &firsts, now, woken).await?;
    let new_waits: Vec<&sluice_store::NewWait> = new.iter().flat_map(|r| r.waits.iter()).collect();
    waits::insert(conn, &new_waits).await?;
    Ok(())
}

/// Inserts or merges step records (`started_at` kept once set, larger `attempts`;
/// memoized steps are final), with multi-row statements. Records of one step later
/// in the slice merge into earlier ones, as if written one by one.
pub(crate) async fn upsert_steps(
    conn: &mut SqliteConnection,
    steps: &[StepRecord],
    now: Millis,
) -> Result<()> {
    for chunk in steps.chunks(CHUNK) {
        let mut qb: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new(concat!("INSERT INTO steps (", step_columns!(), ") "));
        qb.push_values(chunk, |mut b, s| {
            b.push_bind(s.run_id.to_string())
                .push_bind(s.step_id.clone())
                .push_bind(s.name.clone())
                .push_bind(s.op.clone())
                .push_bind(s.status.as_str())
                .push_bind(opt_json(s.result.as_ref()))
                .push_bind(opt_json(s.error.as_ref()))
                .push_bind(s.attempts)
                .push_bind(opt_json(s.opts.as_ref()))
                .push_bind(now.0)
                .push_bind(s.started_at.map(|m| m.0))
                .push_bind(s.ended_at.map(|m| m.0));
        });
        qb.push(
            " ON CONFLICT (run_id, step_id) DO UPDATE SET name = excluded.name, \
             op = excluded.op, status = excluded.status, result = excluded.result, \
             error = excluded.error, attempts = MAX(steps.attempts, excluded.attempts), \
             opts = excluded.opts, started_at = COALESCE(steps.started_at, excluded.started_at), \
             ended_at = excluded.ended_at \
             WHERE steps.status NOT IN ('completed', 'failed')",
        );
        qb.build().execute(&mut *conn).await?;
    }
    Ok(())
}

/// Applies partial updates to several runs in one statement (updates of the same run
/// fold, later fields winning); returns the runs whose update set a terminal status.
/// Their other items and waits are the caller's to delete.
pub(crate) async fn update_many(
    conn: &mut SqliteConnection,
    updates: &[(RunId, &RunUpdate)],
) -> Result<Vec<RunId>> {
    let mut merged: Vec<(RunId, RunUpdate)> = Vec::with_capacity(updates.len());
    for (id, u) in updates {
        match merged.iter_mut().find(|(m, _)| m == id) {
            Some((_, m)) => m.merge(u),
            None => merged.push((*id, (*u).clone())),
        }
    }
    for chunk in merged.chunks(CHUNK) {
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
            "UPDATE runs SET status = COALESCE(u.column2, runs.status), \
             output = COALESCE(u.column3, runs.output), error = COALESCE(u.column4, runs.error), \
             request_version = COALESCE(u.column5, runs.request_version), \
             disable_immediate_execution = COALESCE(u.column6, runs.disable_immediate_execution), \
             started_at = COALESCE(u.column7, runs.started_at), \
             ended_at = COALESCE(u.column8, runs.ended_at) FROM (",
        );
        qb.push_values(chunk, |mut b, (id, u)| {
            b.push_bind(id.to_string())
                .push_bind(u.status.map(|s| s.as_str()))
                .push_bind(opt_json(u.output.as_ref()))
                .push_bind(opt_json(u.error.as_ref()))
                .push_bind(u.request_version)
                .push_bind(u.disable_immediate_execution)
                .push_bind(u.started_at.map(|m| m.0))
                .push_bind(u.ended_at.map(|m| m.0));
        });
        qb.push(") AS u WHERE runs.id = u.column1");
        qb.build().execute(&mut *conn).await?;
    }
    Ok(merged
        .into_iter()
        .filter(|(_, u)| u.status.is_some_and(RunStatus::is_terminal))
        .map(|(id, _)| id)
        .collect())
}

/// Cancels the runs that have not ended, deleting their items and waits.
pub(crate) async fn cancel(
    conn: &mut SqliteConnection,
    ids: &[RunId],
    now: Millis,
) -> Result<Vec<RunId>> {
    let mut cancelled = Vec::new();
    for run in ids {
        let id = run.to_string();
        let hit: Option<(String,)> = sqlx::query_as(&format!(
            "UPDATE runs SET status = 'cancelled', ended_at = ?1 \
             WHERE id = ?2 AND status IN {OPEN} RETURNING id"
        ))
        .bind(now.0)
        .bind(&id)
        .fetch_optional(&mut *conn)
        .await?;
        if hit.is_some() {
            cancelled.push(*run);
        }
    }
    if !cancelled.is_empty() {
        queue::delete_for_runs(conn, &cancelled, &[]).await?;
        waits::delete_for_runs(conn, &cancelled).await?;
    }
    Ok(cancelled)
}

pub(crate) async fn get(conn: &mut SqliteConnection, id: RunId) -> Result<Run> {
    let row: Option<RunRow> = sqlx::query_as(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE id = ?1"
    ))
    .bind(id.to_string())
    .fetch_optional(conn)
    .await?;
    match row {
        Some(row) => row.try_into(),
        None => Err(sluice_store::Error::NotFound(format!("run {id}")).into()),
    }
}

pub(crate) async fn for_event(conn: &mut SqliteConnection, event: EventId) -> Result<Vec<Run>> {
    let rows: Vec<RunRow> = sqlx::query_as(concat!(
        "SELECT ",
        run_columns!(),
        " FROM runs WHERE id IN (SELECT run_id FROM run_events WHERE event_id = ?1) ORDER BY id"
    ))
    .bind(event.to_string())
    .fetch_all(conn)
    .await?;
    runs(rows)
}

/// Page size when a filter asks for none, and the most a page may hold.
pub(crate) const DEFAULT_LIMIT: u32 = 50;
pub(crate) const MAX_LIMIT: u32 = 1_000;

pub(crate) fn page_limit(limit: u32) -> u32 {
    if limit == 0 {
        DEFAULT_LIMIT
    } else {
        limit.min(MAX_LIMIT)
    }
}

pub(crate) async fn list(conn: &mut SqliteConnection, f: &RunFilter) -> Result<Page<Run>> {
    let limit = page_limit(f.limit);
    let mut qb: QueryBuilder<'_, Sqlite> =
        QueryBuilder::new(concat!("SELECT ", run_columns!(), " FROM runs WHERE 1 = 1"));
    if !f.statuses.is_empty() {
        qb.push(" AND status IN ");
        push_in(&mut qb, f.statuses.iter().map(|s| s.as_str()));
    }
    if let Some(function) = f.function_id {
        qb.push(" AND function_id = ")
            .push_bind(function.to_string());
    }
    if let Some(after) = f.created_after {
        qb.push(" AND created_at > ").push_bind(after.0);
    }
    if let Some(before) = f.created_before {
        qb.push(" AND created_at < ").push_bind(before.0);
    }
    if let Some(q) = f.search.as_deref() {
        qb.push(" AND (id = ")
            .push_bind(q.to_owned())
            .push(
                " OR EXISTS (SELECT 1 FROM run_events re JOIN events e ON e.id = re.event_id \
                 WHERE re.run_id = runs.id AND (e.id = ",
            )
            .push_bind(q.to_owned())
            .push(" OR instr(e.name, ")
            .push_bind(q.to_owned())
            .push(") > 0)))");
    }
    if let Some(cursor) = f.cursor {
        qb.push(" AND id < ").push_bind(cursor.to_string());
    }
    qb.push(" ORDER BY id DESC LIMIT ")
        .push_bind(i64::from(limit));
    let rows: Vec<RunRow> = qb.build_query_as().fetch_all(conn).await?;
    let items = runs(rows)?;
    let next = (items.len() == limit as usize)
        .then(|| items.last().map(|r| r.id.to_string()))
        .flatten();
    Ok(Page { items, next })
}

/// A run's steps: memoized ones first by `ended_at`, then the others by creation.
/// Runs by id (missing ones left out).
pub(crate) async fn get_many(
    conn: &mut SqliteConnection,
    ids: &[RunId],
) -> Result<HashMap<RunId, Run>> {
    let mut out = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(CHUNK) {
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(concat!(
            "SELECT ",
            run_columns!(),
            " FROM runs WHERE id IN "
        ));
        push_in(&mut qb, chunk.iter().map(|id| id.to_string()));
        let rows: Vec<RunRow> = qb.build_query_as().fetch_all(&mut *conn).await?;
        for row in rows {
            let run: Run = row.try_into()?;
            out.insert(run.id, run);
        }
    }
    Ok(out)
}

/// The steps of several runs, each run's in [`steps`] order.
pub(crate) async fn steps_of(
    conn: &mut SqliteConnection,
    runs: &[RunId],
) -> Result<HashMap<RunId, Vec<Step>>> {
    let mut out: HashMap<RunId, Vec<Step>> = HashMap::new();
    for chunk in runs.chunks(CHUNK) {
        let mut qb: QueryBuilder<'_, Sqlite> = QueryBuilder::new(concat!(
            "SELECT ",
            step_columns!(),
            " FROM steps WHERE run_id IN "
        ));
        push_in(&mut qb, chunk.iter().map(|id| id.to_string()));
        qb.push(
            " ORDER BY run_id, \
             CASE WHEN status IN ('completed', 'failed') THEN 0 ELSE 1 END, \
             CASE WHEN status IN ('completed', 'failed') THEN ended_at ELSE created_at END, \
             step_id",
        );
        let rows: Vec<StepRow> = qb.build_query_as().fetch_all(&mut *conn).await?;
        for row in rows {
            let step = Step::try_from(row)?;
            out.entry(step.run_id).or_default().push(step);
        }
    }
    Ok(out)
}

pub(crate) async fn steps(conn: &mut SqliteConnection, run: RunId) -> Result<Vec<Step>> {
    let rows: Vec<StepRow> = sqlx::query_as(concat!(
        "SELECT ",
        step_columns!(),
        " FROM steps WHERE run_id = ?1 ORDER BY \
         CASE WHEN status IN ('completed', 'failed') THEN 0 ELSE 1 END, \
         CASE WHEN status IN ('completed', 'failed') THEN ended_at ELSE created_at END, \
         step_id"
    ))
    .bind(run.to_string())
    .fetch_all(conn)
    .await?;
    rows.into_iter().map(Step::try_from).collect()
}

/// Deletes ended runs (with steps and event links) that ended before `before`.
pub(crate) async fn prune(conn: &mut SqliteConnection, before: Millis) -> Result<u64> {
    let old = format!("SELECT id FROM runs WHERE ended_at < ?1 AND status NOT IN {OPEN}");
    let steps = sqlx::query(&format!("DELETE FROM steps WHERE run_id IN ({old})"))
        .bind(before.0)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query(&format!("DELETE FROM run_events WHERE run_id IN ({old})"))
        .bind(before.0)
        .execute(&mut *conn)
        .await?;
    let runs = sqlx::query(&format!(
        "DELETE FROM runs WHERE ended_at < ?1 AND status NOT IN {OPEN}"
    ))
    .bind(before.0)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(steps + runs)
}
