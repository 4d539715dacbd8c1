//! The HTTP API: the events API and SDK registration the SDKs call, and the JSON
//! REST API (`/v1/…`) the dashboard and operators use. Build it with [`router`] and
//! test it with `oneshot`, no socket.
//!
//! # Layout
//! - [`error`]: [`Error`], the one error → HTTP mapping (`{code, message}`).
//! - [`ingest`]: `POST /e/{key}` and `POST /v1/events`: bounded, validated events.
//! - [`register`]: `POST /fn/register`, the SDK's sync.
//! - [`apps`]: apps and functions: list/get, add and re-sync apps, invoke a function.
//! - [`runs`]: run actions (cancel, rerun).
//! - [`checkpoint`]: SDK endpoints during a run (checkpoint, `use_api` reads).
//! - [`history`]: events (with the runs each triggered), runs and their steps.
//! - `openapi.json`: the REST API's description, served at `/v1/openapi.json`.

pub mod apps;
pub mod checkpoint;
pub mod dashboard;
pub mod error;
pub mod history;
pub mod ingest;
mod payload;
pub mod register;
pub mod runs;
pub mod stream;

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use sluice_broker::{AppSyncer, Broker};
use sluice_protocol::SigningKey;
use sluice_store::DynStore;

pub use axum::Router as HttpRouter;
pub use error::{Error, Result};

/// Serves `app` on `listener` until `shutdown` completes, then lets in-flight requests
/// finish. The binary calls this so that only this crate depends on axum.
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// How the server runs.
pub use sluice_core::Mode;

/// Bounds on what the events API accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest single event, in bytes of JSON.
    pub max_event_bytes: usize,
    /// Largest request body, in bytes.
    pub max_request_bytes: usize,
    /// Most events in one request.
    pub max_events: usize,
    /// Deepest JSON nesting accepted.
    pub max_depth: usize,
    /// How far in the future an event's `ts` may lie, in milliseconds.
    pub max_future_ms: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_event_bytes: 512 * 1024,
            max_request_bytes: 3 * 1024 * 1024,
            max_events: 5_000,
            max_depth: 64,
            max_future_ms: 365 * 24 * 60 * 60 * 1000,
        }
    }
}

/// What the API needs to know about its deployment.
#[derive(Debug, Clone, Default)]
pub struct ApiOptions {
    pub mode: Mode,
    /// Event keys accepted in [`Mode::Start`] (ignored in dev, where any key works).
    pub event_keys: Vec<String>,
    /// Signing keys, primary first then fallback; SDKs' `Authorization: Bearer …` is
    /// checked against them in [`Mode::Start`].
    pub signing_keys: Vec<SigningKey>,
    pub limits: Limits,
    /// The dashboard and REST API sign-in token in [`Mode::Start`]; when `None`, the
    /// primary signing key is the token.
    pub dashboard_token: Option<String>,
}

/// Everything handlers share. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: DynStore,
    pub broker: Broker,
    pub options: Arc<ApiOptions>,
    /// Syncs app URLs (`POST /v1/apps`, `POST /v1/apps/{id}/sync`); `None` answers
    /// those with 503.
    pub syncer: Option<AppSyncer>,
    /// Runs calls, run actions and the SDK checkpoint endpoints; `None` answers those
    /// with 503.
    pub executor: Option<sluice_executor::Executor>,
}

impl AppState {
    /// State for a store and its broker.
    pub fn new(store: DynStore, broker: Broker, options: ApiOptions) -> Self {
        Self {
            store,
            broker,
            options: Arc::new(options),
            syncer: None,
            executor: None,
        }
    }

    /// With the node's executor (run actions, SDK checkpoint endpoints).
    pub fn with_executor(mut self, executor: sluice_executor::Executor) -> Self {
        self.executor = Some(executor);
        self
    }

    /// With an app syncer.
    pub fn with_syncer(mut self, syncer: AppSyncer) -> Self {
        self.syncer = Some(syncer);
        self
    }
}

/// The whole API.
pub fn router(state: AppState) -> Router {
    let dashboard = dashboard::Dashboard::new(
        state.store.clone(),
        dashboard::Auth::from_api(&state.options),
    );
    let auth = dashboard.auth.clone();
    Router::new()
        .route("/health", get(health))
        .route("/dev", get(dev_info))
        .route("/v1/openapi.json", get(openapi))
        .merge(ingest::routes())
        .merge(register::routes())
        .merge(apps::routes())
        .merge(history::routes())
        .merge(runs::routes())
        .merge(checkpoint::routes())
        .with_state(state)
        .merge(dashboard::routes(dashboard))
        .layer(axum::middleware::from_fn_with_state(
            auth,
            dashboard::require_auth,
        ))
}

/// `GET /health`: 200 when the store answers, 503 otherwise.
async fn health(State(state): State<AppState>) -> impl IntoResponse {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ok"}))),
        Err(err) => {
            tracing::warn!(error = %err, "health check: store does not answer");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
        }
    }
}

/// `GET /dev`: the dev server's self-description. SDKs in dev mode probe it to find a
/// local server; it answers only in [`Mode::Dev`].
async fn dev_info(State(state): State<AppState>) -> Result<impl IntoResponse> {
    if state.options.mode != Mode::Dev {
        return Err(Error::NotFound(
            "GET /dev is served by `sluice dev` only".into(),
        ));
    }
    let functions = state.store.list_functions().await?;
    let apps = state.store.list_apps().await?;
    Ok(Json(json!({
        "name": "sluice",
        "version": env!("CARGO_PKG_VERSION"),
        "mode": "dev",
        "functions": functions.iter().map(|f| json!({"id": f.slug, "name": f.name})).collect::<Vec<_>>(),
        "handlers": apps.iter().map(|a| json!({"url": a.url, "name": a.name, "sdk": a.sdk, "error": a.sync_error})).collect::<Vec<_>>(),
    })))
}

/// The REST API's OpenAPI description, checked in beside this crate.
const OPENAPI: &str = include_str!("../openapi.json");

async fn openapi() -> impl IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI,
    )
}
