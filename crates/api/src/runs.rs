//! Run actions: `POST /v1/runs/{id}/cancel` and `POST /v1/runs/{id}/rerun`.

use axum::extract::{Path, State};
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
