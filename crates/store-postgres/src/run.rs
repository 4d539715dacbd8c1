//! `runs`, `run_events` and `steps`.

use std::collections::HashMap;

use serde_json::Value;
use sluice_core::{EventId, FunctionId, Millis, RunId};
use sluice_store::{
    Error, NewRun, Page, Result, Run, RunFilter, RunStatus, RunUpdate, Step, StepRecord, StepStatus,
};
use sqlx::PgConnection;
use sqlx::types::Json;
use uuid::Uuid;

use crate::column::{from_json, parse, parse_opt, texts, to_json};
use crate::error::SqlxResultExt;
use crate::page::{page, page_limit};

/// A `runs` row.
#[derive(sqlx::FromRow, Clone)]
struct RunRow {
    id: String,
    function_id: Uuid,
    status: String,
    event_ids: Value,
    output: Option<Value>,
    error: Option<Value>,
    request_version: Option<i32>,
    disable_immediate_execution: bool,
    correlation_id: Option<String>,
    rerun_of: Option<String>,
    created_at: i64,
    started_at: Option<i64>,
    ended_at: Option<i64>,
}

impl RunRow {
    fn into_run(self) -> Result<Run> {
        Ok(Run {
            id: parse("run id", &self.id)?,
            function_id: FunctionId(self.function_id),
            status: parse::<RunStatus>("run status", &self.status)?,
            event_ids: from_json::<Vec<EventId>>("run event ids", self.event_ids)?,
            output: self.output,
            error: self.error,
            request_version: self.request_version,
            disable_immediate_execution: self.disable_immediate_execution,
            correlation_id: self.correlation_id,
            rerun_of: parse_opt("rerun id", self.rerun_of.as_deref())?,
            created_at: Millis(self.created_at),
            started_at: self.started_at.map(Millis),
            ended_at: self.ended_at.map(Millis),
        })
    }
}

fn into_runs(rows: Vec<RunRow>) -> Result<Vec<Run>> {
    rows.into_iter().map(RunRow::into_run).collect()
}

/// A `steps` row.
#[derive(sqlx::FromRow)]
struct StepRow {
    run_id: String,
    step_id: String,
    name: String,
    op: String,
    status: String,
    result: Option<Value>,
    error: Option<Value>,
    attempts: i32,
    opts: Option<Value>,
    created_at: i64,
    started_at: Option<i64>,
    ended_at: Option<i64>,
}

impl StepRow {
    fn into_step(self) -> Result<Step> {
        Ok(Step {
            run_id: parse("run id", &self.run_id)?,
            step_id: self.step_id,
            name: self.name,
            op: self.op,
            status: parse::<StepStatus>("step status", &self.status)?,
            result: self.result,
            error: self.error,
            attempts: self.attempts,
            opts: self.opts,
            created_at: Millis(self.created_at),
            started_at: self.started_at.map(Millis),
            ended_at: self.ended_at.map(Millis),
        })
    }
}

/// Inserts runs (status `queued`) and their `run_events` rows in one statement. Their
/// first items and waits are the caller's. A run id that exists is a conflict.
/// The `runs` columns of a batch of new runs, one array each, with their `run_events`
/// links, for `UNNEST` inserts.
pub(crate) struct RunColumns<'a> {
    pub ids: Vec<String>,
    pub functions: Vec<Uuid>,
    pub events: Vec<Json<Value>>,
    pub correlations: Vec<Option<&'a str>>,
    pub reruns: Vec<Option<String>>,
    pub created: Vec<i64>,
    pub link_events: Vec<String>,
    pub link_runs: Vec<String>,
}

impl<'a> RunColumns<'a> {
    pub(crate) fn new(runs: &[&'a NewRun]) -> Self {
        let (link_events, link_runs) = runs
            .iter()
            .flat_map(|r| {
                r.event_ids
                    .iter()
                    .map(|e| (e.to_string(), r.id.to_string()))
            })
            .unzip();
        Self {
            ids: texts(runs.iter().map(|r| r.id)),
            functions: runs.iter().map(|r| r.function_id.0).collect(),
            events: runs.iter().map(|r| Json(to_json(&r.event_ids))).collect(),
            correlations: runs.iter().map(|r| r.correlation_id.as_deref()).collect(),
            reruns: runs
                .iter()
                .map(|r| r.rerun_of.map(|id| id.to_string()))
                .collect(),
            created: runs.iter().map(|r| r.created_at.0).collect(),
            link_events,
            link_runs,
        }
    }
}

pub(crate) async fn insert(conn: &mut PgConnection, runs: &[NewRun]) -> Result<()> {
    if runs.is_empty() {
        return Ok(());
    }
    let refs: Vec<&NewRun> = runs.iter().collect();
    let c = RunColumns::new(&refs);
    sqlx::query(
        "WITH r AS (
             INSERT INTO runs (id, function_id, status, event_ids, correlation_id, rerun_of,
                               created_at)
             SELECT id, f, 'queued', e, c, rr, ca
             FROM UNNEST($1::text[], $2::uuid[], $3::jsonb[], $4::text[], $5::text[],
                         $6::bigint[]) AS t(id, f, e, c, rr, ca)
             RETURNING id)
         INSERT INTO run_events (event_id, run_id)
         SELECT * FROM UNNEST($7::text[], $8::text[])
         ON CONFLICT DO NOTHING",
    )
    .bind(&c.ids)
    .bind(&c.functions)
    .bind(&c.events)
    .bind(&c.correlations)
    .bind(&c.reruns)
    .bind(&c.created)
    .bind(&c.link_events)
    .bind(&c.link_runs)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}

/// Folds updates of the same run (later `Some` fields win), keeping first-seen order.
fn merge_updates(updates: Vec<(RunId, RunUpdate)>) -> Vec<(RunId, RunUpdate)> {
    let mut merged: Vec<(RunId, RunUpdate)> = Vec::with_capacity(updates.len());
    let mut index: HashMap<RunId, usize> = HashMap::new();
    for (id, u) in updates {
        match index.get(&id) {
            Some(&i) => merged[i].1.merge(&u),
            None => {
                index.insert(id, merged.len());
                merged.push((id, u));
            }
        }
    }
    merged
}

/// Applies partial updates in one statement; returns the ids of runs that are now in
/// a terminal status.
pub(crate) async fn update(
    conn: &mut PgConnection,
    updates: Vec<(RunId, RunUpdate)>,
) -> Result<Vec<String>> {
    if updates.is_empty() {
        return Ok(Vec::new());
    }
    let updates = merge_updates(updates);
    let n = updates.len();
    let mut ids = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut set_output = Vec::with_capacity(n);
    let mut outputs = Vec::with_capacity(n);
    let mut set_error = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut versions = Vec::with_capacity(n);
    let mut dies = Vec::with_capacity(n);
    let mut started = Vec::with_capacity(n);
    let mut ended = Vec::with_capacity(n);
    for (id, u) in &updates {
        ids.push(id.to_string());
        statuses.push(u.status.map(|s| s.as_str()));
        set_output.push(u.output.is_some());
        outputs.push(u.output.as_ref().map(Json));
        set_error.push(u.error.is_some());
        errors.push(u.error.as_ref().map(Json));
        versions.push(u.request_version);
        dies.push(u.disable_immediate_execution);
        started.push(u.started_at.map(|m| m.0));
        ended.push(u.ended_at.map(|m| m.0));
    }
    let rows: Vec<(String, String)> = sqlx::query_as(
        // Rows are locked in id order first, so concurrent batches touching the same
        // runs queue up instead of deadlocking.
        "WITH locked AS MATERIALIZED (
             SELECT id FROM runs WHERE id = ANY($1) ORDER BY id FOR UPDATE)
         UPDATE runs r SET
             status = COALESCE(u.status, r.status),
             output = CASE WHEN u.set_output THEN u.output ELSE r.output END,
             error = CASE WHEN u.set_error THEN u.error ELSE r.error END,
             request_version = COALESCE(u.request_version, r.request_version),
             disable_immediate_execution = COALESCE(u.die, r.disable_immediate_execution),
             started_at = COALESCE(u.started_at, r.started_at),
             ended_at = COALESCE(u.ended_at, r.ended_at)
         FROM UNNEST($1::text[], $2::text[], $3::bool[], $4::jsonb[], $5::bool[], $6::jsonb[],
                     $7::int[], $8::bool[], $9::bigint[], $10::bigint[])
              AS u(id, status, set_output, output, set_error, error, request_version, die,
                   started_at, ended_at)
         WHERE r.id = u.id AND r.id IN (SELECT id FROM locked)
         RETURNING r.id, r.status",
    )
    .bind(&ids)
    .bind(&statuses)
    .bind(&set_output)
    .bind(&outputs)
    .bind(&set_error)
    .bind(&errors)
    .bind(&versions)
    .bind(&dies)
    .bind(&started)
    .bind(&ended)
    .fetch_all(&mut *conn)
    .await
    .db()?;
    Ok(rows
        .into_iter()
        .filter(|(_, status)| {
            status
                .parse::<RunStatus>()
                .map(RunStatus::is_terminal)
                .unwrap_or(false)
        })
        .map(|(id, _)| id)
        .collect())
}

/// Sets `cancelled` on the runs that have not ended; returns those.
pub(crate) async fn cancel(
    conn: &mut PgConnection,
    ids: &[RunId],
    now: Millis,
) -> Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query_scalar(
        "UPDATE runs SET status = 'cancelled', ended_at = $2
         WHERE id = ANY($1) AND status NOT IN ('completed', 'failed', 'cancelled')
         RETURNING id",
    )
    .bind(texts(ids))
    .bind(now.0)
    .fetch_all(&mut *conn)
    .await
    .db()
}

pub(crate) async fn get(conn: &mut PgConnection, id: RunId) -> Result<Run> {
    let row: Option<RunRow> = sqlx::query_as("SELECT * FROM runs WHERE id = $1")
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await
        .db()?;
    row.ok_or_else(|| Error::NotFound(format!("run {id}")))?
        .into_run()
}

/// A run joined with one of its steps (all `s_` columns null when it has none).
#[derive(sqlx::FromRow)]
struct RunStepRow {
    #[sqlx(flatten)]
    run: RunRow,
    s_step_id: Option<String>,
    s_name: Option<String>,
    s_op: Option<String>,
    s_status: Option<String>,
    s_result: Option<Value>,
    s_error: Option<Value>,
    s_attempts: Option<i32>,
    s_opts: Option<Value>,
    s_created_at: Option<i64>,
    s_started_at: Option<i64>,
    s_ended_at: Option<i64>,
}

/// Runs and their steps (memoized ones first, in completion order) in one statement,
/// so each run and its steps come from one snapshot without a transaction. Runs that
/// do not exist are left out.
pub(crate) async fn with_steps(
    conn: &mut PgConnection,
    ids: &[RunId],
) -> Result<HashMap<RunId, (Run, Vec<Step>)>> {
    let rows: Vec<RunStepRow> = sqlx::query_as(
        "SELECT r.*, s.step_id AS s_step_id, s.name AS s_name, s.op AS s_op,
                s.status AS s_status, s.result AS s_result, s.error AS s_error,
                s.attempts AS s_attempts, s.opts AS s_opts, s.created_at AS s_created_at,
                s.started_at AS s_started_at, s.ended_at AS s_ended_at
         FROM runs r LEFT JOIN steps s ON s.run_id = r.id
         WHERE r.id = ANY($1)
         ORDER BY r.id,
                  CASE WHEN s.status IN ('completed', 'failed') THEN 0 ELSE 1 END,
                  CASE WHEN s.status IN ('completed', 'failed') THEN s.ended_at
                       ELSE s.created_at END,
                  s.step_id",
    )
    .bind(texts(ids.iter().copied()))
    .fetch_all(&mut *conn)
    .await
    .db()?;
    let mut out: HashMap<RunId, (Run, Vec<Step>)> = HashMap::new();
    for row in rows {
        let id: RunId = parse("run id", &row.run.id)?;
        let entry = match out.entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert((row.run.clone().into_run()?, Vec::new()))
            }
        };
        let (Some(step_id), Some(name), Some(op), Some(status), Some(attempts), Some(created)) = (
            row.s_step_id,
            row.s_name,
            row.s_op,
            row.s_status,
            row.s_attempts,
            row.s_created_at,
        ) else {
            continue;
        };
        entry.1.push(
            StepRow {
                run_id: row.run.id,
                step_id,
                name,
                op,
                status,
                result: row.s_result,
                error: row.s_error,
                attempts,
                opts: row.s_opts,
                created_at: created,
                started_at: row.s_started_at,
                ended_at: row.s_ended_at,
            }
            .into_step()?,
        );
    }
    Ok(out)
}

/// Runs newest first (by id, a ULID), one page.
pub(crate) async fn list(conn: &mut PgConnection, filter: &RunFilter) -> Result<Page<Run>> {
    let limit = page_limit(filter.limit);
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let rows: Vec<RunRow> = sqlx::query_as(
        "SELECT * FROM runs
         WHERE (cardinality($1::text[]) = 0 OR status = ANY($1))
           AND ($2::uuid IS NULL OR function_id = $2)
           AND ($3::bigint IS NULL OR created_at > $3)
           AND ($4::bigint IS NULL OR created_at < $4)
           AND ($5::text IS NULL OR id < $5)
           AND ($7::text IS NULL OR id = $7 OR EXISTS (
                SELECT 1 FROM run_events re JOIN events e ON e.id = re.event_id
                WHERE re.run_id = runs.id AND (e.id = $7 OR strpos(e.name, $7) > 0)))
         ORDER BY id DESC
         LIMIT $6",
    )
    .bind(&statuses)
    .bind(filter.function_id.map(|f| f.0))
    .bind(filter.created_after.map(|m| m.0))
    .bind(filter.created_before.map(|m| m.0))
    .bind(filter.cursor.map(|c| c.to_string()))
    .bind(limit + 1)
    .bind(filter.search.as_deref())
    .fetch_all(&mut *conn)
    .await
    .db()?;
    let runs = into_runs(rows)?;
    Ok(page(runs, limit, |r| r.id.to_string()))
}

pub(crate) async fn for_event(conn: &mut PgConnection, id: EventId) -> Result<Vec<Run>> {
    let rows: Vec<RunRow> = sqlx::query_as(
        "SELECT r.* FROM runs r JOIN run_events e ON e.run_id = r.id
         WHERE e.event_id = $1 ORDER BY r.id",
    )
    .bind(id.to_string())
    .fetch_all(&mut *conn)
    .await
    .db()?;
    into_runs(rows)
}

/// Folds records of the same step (see [`StepRecord`] for the merge rule), keeping
/// first-seen order, so one `INSERT … ON CONFLICT` never touches a row twice.
fn merge_steps(records: &[&StepRecord]) -> Vec<StepRecord> {
    let mut merged: Vec<StepRecord> = Vec::with_capacity(records.len());
    let mut index: HashMap<(RunId, &str), usize> = HashMap::new();
    for r in records {
        match index.get(&(r.run_id, r.step_id.as_str())) {
            Some(&i) => {
                let m = &mut merged[i];
                if m.status.is_memoized() {
                    // A memoized result is final (see `StepRecord`).
                    continue;
                }
                let started_at = m.started_at.or(r.started_at);
                let attempts = m.attempts.max(r.attempts);
                *m = (*r).clone();
                m.started_at = started_at;
                m.attempts = attempts;
            }
            None => {
                index.insert((r.run_id, r.step_id.as_str()), merged.len());
                merged.push((*r).clone());
            }
        }
    }
    merged
}

/// Inserts or merges step records in one statement.
pub(crate) async fn upsert_steps(
    conn: &mut PgConnection,
    records: &[&StepRecord],
    now: Millis,
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let mut records = merge_steps(records);
    // One lock order for every writer of the same steps.
    records.sort_by(|a, b| (a.run_id, &a.step_id).cmp(&(b.run_id, &b.step_id)));
    let n = records.len();
    let mut runs = Vec::with_capacity(n);
    let mut steps = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut ops = Vec::with_capacity(n);
    let mut statuses = Vec::with_capacity(n);
    let mut results = Vec::with_capacity(n);
    let mut errors = Vec::with_capacity(n);
    let mut attempts = Vec::with_capacity(n);
    let mut opts = Vec::with_capacity(n);
    let mut started = Vec::with_capacity(n);
    let mut ended = Vec::with_capacity(n);
    for r in &records {
        runs.push(r.run_id.to_string());
        steps.push(r.step_id.as_str());
        names.push(r.name.as_str());
        ops.push(r.op.as_str());
        statuses.push(r.status.as_str());
        results.push(r.result.as_ref().map(Json));
        errors.push(r.error.as_ref().map(Json));
        attempts.push(r.attempts);
        opts.push(r.opts.as_ref().map(Json));
        started.push(r.started_at.map(|m| m.0));
        ended.push(r.ended_at.map(|m| m.0));
    }
    sqlx::query(
        "INSERT INTO steps (run_id, step_id, name, op, status, result, error, attempts, opts,
                            started_at, ended_at, created_at)
         SELECT *, $12 FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                                   $6::jsonb[], $7::jsonb[], $8::int[], $9::jsonb[],
                                   $10::bigint[], $11::bigint[])
         ON CONFLICT (run_id, step_id) DO UPDATE SET
             name = EXCLUDED.name, op = EXCLUDED.op, status = EXCLUDED.status,
             result = EXCLUDED.result, error = EXCLUDED.error,
             attempts = GREATEST(steps.attempts, EXCLUDED.attempts), opts = EXCLUDED.opts,
             started_at = COALESCE(steps.started_at, EXCLUDED.started_at),
             ended_at = EXCLUDED.ended_at
         WHERE steps.status NOT IN ('completed', 'failed')",
    )
    .bind(&runs)
    .bind(&steps)
    .bind(&names)
    .bind(&ops)
    .bind(&statuses)
    .bind(&results)
    .bind(&errors)
    .bind(&attempts)
    .bind(&opts)
    .bind(&started)
    .bind(&ended)
    .bind(now.0)
    .execute(&mut *conn)
    .await
    .db()?;
    Ok(())
}

/// A run's steps: memoized ones first by `ended_at`, then the others by creation
/// (ties by `step_id`).
pub(crate) async fn steps(conn: &mut PgConnection, run: RunId) -> Result<Vec<Step>> {
    let rows: Vec<StepRow> = sqlx::query_as(
        "SELECT * FROM steps WHERE run_id = $1
         ORDER BY CASE WHEN status IN ('completed', 'failed') THEN 0 ELSE 1 END,
                  CASE WHEN status IN ('completed', 'failed') THEN ended_at ELSE created_at END,
                  step_id",
    )
    .bind(run.to_string())
    .fetch_all(&mut *conn)
    .await
    .db()?;
    rows.into_iter().map(StepRow::into_step).collect()
}

/// Deletes runs that ended before `before` with their steps and event links; returns
/// how many runs and steps went.
pub(crate) async fn prune(conn: &mut PgConnection, before: Millis) -> Result<u64> {
    let count: i64 = sqlx::query_scalar(
        "WITH gone AS (
             DELETE FROM runs
             WHERE status IN ('completed', 'failed', 'cancelled') AND ended_at < $1
             RETURNING id),
         s AS (DELETE FROM steps WHERE run_id IN (SELECT id FROM gone) RETURNING 1),
         l AS (DELETE FROM run_events WHERE run_id IN (SELECT id FROM gone))
         SELECT (SELECT count(*) FROM gone) + (SELECT count(*) FROM s)",
    )
    .bind(before.0)
    .fetch_one(&mut *conn)
    .await
    .db()?;
    Ok(count as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(step: &str, attempts: i32, started: Option<i64>, name: &str) -> StepRecord {
        StepRecord {
            run_id: RunId(ulid::Ulid::from_parts(1, 1)),
            step_id: step.into(),
            name: name.into(),
            op: "StepRun".into(),
            status: StepStatus::Retrying,
            result: None,
            error: None,
            attempts,
            opts: None,
            started_at: started.map(Millis),
            ended_at: None,
        }
    }

    #[test]
    fn batch_merges_follow_the_store_rules() {
        // (earlier, later) -> (name, attempts, started_at) after the merge
        let cases = [
            ((3, Some(1)), (1, Some(2)), (3, Some(1))),
            ((1, None), (2, Some(2)), (2, Some(2))),
            ((2, Some(5)), (2, None), (2, Some(5))),
        ];
        for ((a1, s1), (a2, s2), (attempts, started)) in cases {
            let (first, second) = (record("x", a1, s1, "old"), record("x", a2, s2, "new"));
            let other = record("y", 9, None, "other");
            let merged = merge_steps(&[&first, &other, &second]);
            assert_eq!(merged.len(), 2, "one row per step, first-seen order");
            assert_eq!(
                (
                    merged[0].name.as_str(),
                    merged[0].attempts,
                    merged[0].started_at
                ),
                ("new", attempts, started.map(Millis))
            );
            assert_eq!(merged[1], other);
        }
        // A memoized record is final: a later one for the same step is dropped.
        let mut done = record("x", 1, Some(1), "done");
        done.status = StepStatus::Completed;
        let merged = merge_steps(&[&done, &record("x", 2, None, "stale")]);
        assert_eq!(merged, vec![done]);

        let id = RunId(ulid::Ulid::from_parts(1, 2));
        let merged = merge_updates(vec![
            (
                id,
                RunUpdate {
                    status: Some(RunStatus::Running),
                    started_at: Some(Millis(1)),
                    ..RunUpdate::default()
                },
            ),
            (
                id,
                RunUpdate {
                    status: Some(RunStatus::Completed),
                    output: Some(Value::Null),
                    ..RunUpdate::default()
                },
            ),
        ]);
        assert_eq!(merged.len(), 1);
        let u = &merged[0].1;
        assert_eq!(
            (u.status, u.started_at, u.output.clone()),
            (
                Some(RunStatus::Completed),
                Some(Millis(1)),
                Some(Value::Null)
            )
        );
    }
}
