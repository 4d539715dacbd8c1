//! The endpoints SDKs call during a run (protocol §7), authenticated with the
//! signing key's Bearer hash in start mode:
//! - `POST /v1/checkpoint/{run}/async` (alias `/v1/http/runs/{run}/checkpoint`): TS v4
//!   posts the steps it ran; 200, or 409 for a stale dispatch;
//! - `GET /v0/runs/{run}/actions` and `/v0/runs/{run}/batch`: the steps and events of
//!   a call sent with `use_api`.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use sluice_executor::CheckpointRequest;

use crate::runs::{executor, map, run_id};
use crate::{AppState, Error, Result};

/// The SDK endpoint routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/checkpoint/{run}/async", post(checkpoint))
        .route("/v1/http/runs/{run}/checkpoint", post(checkpoint))
        .route("/v0/runs/{run}/actions", get(actions))
        .route("/v0/runs/{run}/batch", get(batch))
}

fn authorize(state: &AppState, headers: &HeaderMap) -> Result<()> {
    let auth = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    executor(state)?.authorize(auth).map_err(map)
}

async fn checkpoint(
    State(state): State<AppState>,
    Path(run): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>> {
    authorize(&state, &headers)?;
    let run = run_id(&run)?;
    let request: CheckpointRequest =
        serde_json::from_slice(&body).map_err(|e| Error::invalid("invalid_json", e.to_string()))?;
    let saved = executor(&state)?.checkpoint(run, request).map_err(map)?;
    Ok(Json(json!({"ok": true, "saved": saved})))
}

async fn actions(
    State(state): State<AppState>,
    Path(run): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    authorize(&state, &headers)?;
    let steps = executor(&state)?
        .run_actions(run_id(&run)?)
        .await
        .map_err(map)?;
    Ok(Json(Value::Object(steps)))
}

async fn batch(
    State(state): State<AppState>,
    Path(run): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>> {
    authorize(&state, &headers)?;
    let events = executor(&state)?
        .run_events(run_id(&run)?)
        .await
        .map_err(map)?;
    Ok(Json(Value::Array(events)))
}
