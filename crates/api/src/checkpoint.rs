//! The endpoints SDKs call during a run (protocol §7), authenticated with the
//! signing key's Bearer hash in start mode:
//! - `POST /v1/checkpoint/{run}/async`: TS v4 posts the steps it ran; 200, or 409 for
//!   a stale dispatch. (The `/v1/http/runs/{run}/checkpoint` alias is not served: it
//!   sits under the dashboard's sign-in guard, and the SDKs use the first path.)
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

#[cfg(test)]
mod tests {
    use crate::{ApiOptions, AppState, Mode, router};
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use serde_json::{Value, json};
    use sluice_broker::{Broker, BrokerOptions};
    use sluice_executor::{Executor, ExecutorOptions, StoreOnly};
    use sluice_protocol::SigningKey;
    use sluice_store::DynStore;
    use sluice_store_sqlite::SqliteStore;
    use std::sync::Arc;
    use tower::ServiceExt;

    const KEY: &str = "signkey-test-00112233445566778899aabbccddeeff";

    async fn app(mode: Mode) -> axum::Router {
        let store: DynStore = Arc::new(SqliteStore::temporary().await.unwrap());
        let broker = Broker::start(store.clone(), BrokerOptions::default())
            .await
            .unwrap();
        let key = SigningKey::new(KEY).unwrap();
        let executor = Executor::new(
            ExecutorOptions {
                mode: match mode {
                    Mode::Dev => sluice_executor::Mode::Dev,
                    Mode::Start => sluice_executor::Mode::Start,
                },
                signing_key: Some(key.clone()),
                ..ExecutorOptions::default()
            },
            store.clone(),
            Arc::new(StoreOnly),
        )
        .unwrap();
        let options = ApiOptions {
            mode,
            signing_keys: vec![key],
            ..ApiOptions::default()
        };
        router(AppState::new(store, broker, options).with_executor(executor))
    }

    async fn send(app: &axum::Router, method: &str, uri: &str, auth: Option<&str>) -> StatusCode {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        let body = json!({"run_id": "x", "qi_id": "1:00000000-0000-0000-0000-000000000000",
            "steps": [{"op": "StepRun", "id": "a", "data": 1}]});
        let request = request
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
            .await
            .unwrap();
        if !bytes.is_empty() {
            let body: Value = serde_json::from_slice(&bytes).unwrap();
            assert!(body.get("code").is_some() || status.is_success(), "{body}");
        }
        status
    }

    #[tokio::test]
    async fn sdk_endpoints_authenticate_and_refuse_stale_checkpoints() {
        let run = sluice_core::RunId::new();
        let bearer = format!("Bearer {}", SigningKey::new(KEY).unwrap().bearer().unwrap());
        let python = format!("Bearer {}", SigningKey::new(KEY).unwrap().hashed().unwrap());
        let start = app(Mode::Start).await;
        let cases = [
            (
                "POST",
                format!("/v1/checkpoint/{run}/async"),
                None,
                StatusCode::UNAUTHORIZED,
            ),
            (
                "POST",
                format!("/v1/checkpoint/{run}/async"),
                Some("Bearer undefined"),
                StatusCode::UNAUTHORIZED,
            ),
            (
                "POST",
                format!("/v1/checkpoint/{run}/async"),
                Some(bearer.as_str()),
                StatusCode::CONFLICT,
            ),
            (
                "POST",
                format!("/v1/checkpoint/{run}/async"),
                Some(python.as_str()),
                StatusCode::CONFLICT,
            ),
            (
                "POST",
                "/v1/checkpoint/not-a-run/async".into(),
                Some(bearer.as_str()),
                StatusCode::BAD_REQUEST,
            ),
            (
                "GET",
                format!("/v0/runs/{run}/actions"),
                None,
                StatusCode::UNAUTHORIZED,
            ),
            (
                "GET",
                format!("/v0/runs/{run}/actions"),
                Some(bearer.as_str()),
                StatusCode::NOT_FOUND,
            ),
            (
                "GET",
                format!("/v0/runs/{run}/batch"),
                Some(python.as_str()),
                StatusCode::NOT_FOUND,
            ),
        ];
        for (method, uri, auth, want) in cases {
            assert_eq!(
                send(&start, method, &uri, auth).await,
                want,
                "{method} {uri} {auth:?}"
            );
        }
        // Dev mode checks nothing; run actions answer for unknown runs with 404.
        let dev = app(Mode::Dev).await;
        let cases = [
            (
                "POST",
                format!("/v1/checkpoint/{run}/async"),
                StatusCode::CONFLICT,
            ),
            (
                "GET",
                format!("/v0/runs/{run}/batch"),
                StatusCode::NOT_FOUND,
            ),
            (
                "POST",
                format!("/v1/runs/{run}/cancel"),
                StatusCode::NOT_FOUND,
            ),
            (
                "POST",
                format!("/v1/runs/{run}/rerun"),
                StatusCode::NOT_FOUND,
            ),
            (
                "POST",
                "/v1/runs/nope/cancel".into(),
                StatusCode::BAD_REQUEST,
            ),
        ];
        for (method, uri, want) in cases {
            assert_eq!(send(&dev, method, &uri, None).await, want, "{method} {uri}");
        }
    }
}
