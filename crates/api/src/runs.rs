//! Run actions: `POST /v1/runs/{id}/cancel`, `POST /v1/runs/{id}/rerun`, and the
//! same for every run matching a filter: `POST /v1/runs/cancel?…`, `/v1/runs/rerun?…`.

use axum::extract::{Path, RawQuery, State};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use sluice_core::RunId;

use crate::{AppState, Error, Result};

/// The run action routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/runs/{id}/cancel", post(cancel))
        .route("/v1/runs/{id}/rerun", post(rerun))
        .route("/v1/runs/cancel", post(cancel_matching))
        .route("/v1/runs/rerun", post(rerun_matching))
}

/// Most runs one bulk action touches; past it the reply says `truncated`.
const BULK_MAX: usize = 10_000;

/// What a bulk action does to each run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bulk {
    Cancel,
    Rerun,
}

/// `POST /v1/runs/cancel?<filter>`: cancels every run that matches the filter (same
/// query as `GET /v1/runs`) and has not ended.
async fn cancel_matching(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>> {
    bulk(&state, raw, Bulk::Cancel).await
}

/// `POST /v1/runs/rerun?<filter>`: reruns every run that matches the filter.
async fn rerun_matching(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>> {
    bulk(&state, raw, Bulk::Rerun).await
}

/// Walks the filter's pages (collecting ids first, so reruns created on the way are
/// not picked up again), then applies the action to each run.
async fn bulk(state: &AppState, raw: Option<String>, action: Bulk) -> Result<Json<Value>> {
    let executor = executor(state)?;
    let mut filter = crate::history::run_filter(state, raw).await?;
    filter.limit = 500;
    if action == Bulk::Cancel && filter.statuses.is_empty() {
        filter.statuses = vec![
            sluice_core::RunStatus::Queued,
            sluice_core::RunStatus::Running,
        ];
    }
    let mut ids = Vec::new();
    let mut truncated = false;
    loop {
        let page = state.store.list_runs(filter.clone()).await?;
        ids.extend(page.items.iter().map(|r| r.id));
        if ids.len() >= BULK_MAX {
            truncated = ids.len() > BULK_MAX || page.next.is_some();
            ids.truncate(BULK_MAX);
            break;
        }
        match page.next.as_deref().map(str::parse::<RunId>) {
            Some(Ok(next)) => filter.cursor = Some(next),
            _ => break,
        }
    }
    let mut done = 0usize;
    let mut runs = Vec::new();
    for id in &ids {
        match action {
            Bulk::Cancel => {
                if executor.cancel(*id).await.map_err(map)? {
                    done += 1;
                }
            }
            Bulk::Rerun => {
                runs.push(executor.rerun(*id).await.map_err(map)?.to_string());
                done += 1;
            }
        }
    }
    let key = match action {
        Bulk::Cancel => "cancelled",
        Bulk::Rerun => "rerun",
    };
    let mut reply = json!({"matched": ids.len(), key: done, "truncated": truncated});
    if action == Bulk::Rerun {
        reply["runs"] = json!(runs);
    }
    Ok(Json(reply))
}

pub(crate) fn run_id(raw: &str) -> Result<RunId> {
    raw.parse()
        .map_err(|_| Error::invalid("invalid_run_id", format!("{raw:?} is not a run id")))
}

pub(crate) fn executor(state: &AppState) -> Result<&sluice_executor::Executor> {
    state
        .executor
        .as_ref()
        .ok_or_else(|| Error::Unavailable("this node runs no executor".into()))
}

pub(crate) fn map(err: sluice_executor::Error) -> Error {
    use sluice_executor::Error as E;
    match err {
        E::Store(e) => e.into(),
        E::Unauthorized => Error::Unauthorized(err.to_string()),
        E::Stale => Error::Conflict(err.to_string()),
        E::BadRequest(m) => Error::invalid("invalid_request", m),
        other => Error::Internal(other.to_string()),
    }
}

/// Cancels a run that has not ended; `{"id", "cancelled": bool}` (false when it had
/// already ended).
async fn cancel(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>> {
    let id = run_id(&id)?;
    state.store.get_run(id).await?;
    let cancelled = executor(&state)?.cancel(id).await.map_err(map)?;
    Ok(Json(json!({"id": id.to_string(), "cancelled": cancelled})))
}

/// Starts a new run from the same events; `{"id": <new run>, "rerun_of": <id>}`.
async fn rerun(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>> {
    let id = run_id(&id)?;
    let new = executor(&state)?.rerun(id).await.map_err(map)?;
    Ok(Json(
        json!({"id": new.to_string(), "rerun_of": id.to_string()}),
    ))
}
