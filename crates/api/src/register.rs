//! `POST /fn/register`: an SDK syncs its app (after our `PUT` to its URL, or on its
//! own). The body is parsed tolerantly (both SDK spellings, unknown fields ignored),
//! URLs are normalised, every expression is compiled (a bad one refuses the sync),
//! and the app's function set is replaced atomically.
//!
//! Replies always carry a JSON `status`: the TS SDK answers the sync `PUT` with that
//! status, not the HTTP one.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, header};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};
use sluice_core::Millis;
use sluice_protocol::register::Trigger as WireTrigger;
use sluice_protocol::{RegisterRequest, signing};
use sluice_store::{AppSync, FunctionDef, Trigger};

use crate::{AppState, Error, Mode, Result, payload};

/// Largest register body accepted (apps with many functions).
const MAX_REGISTER_BYTES: usize = 16 * 1024 * 1024;

/// This module's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/fn/register", post(register))
        .layer(DefaultBodyLimit::disable())
}

async fn register(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>> {
    if state.options.mode == Mode::Start {
        let authorization = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if !signing::bearer_matches(authorization, &state.options.signing_keys) {
            return Err(Error::Unauthorized(
                "missing or wrong signing key; set INNGEST_SIGNING_KEY to the server's key".into(),
            ));
        }
    }
    let bytes = payload::read(&headers, body, MAX_REGISTER_BYTES).await?;
    let sync = parse(&bytes, Millis::now())?;
    sluice_broker::check_functions(&sync.functions)?;
    let synced = state.store.sync_app(sync).await?;
    state.broker.registry_changed();
    tracing::info!(
        app.id = %synced.app.id,
        functions = synced.functions.len(),
        modified = synced.modified,
        "app synced"
    );
    Ok(Json(json!({
        "ok": true,
        "modified": synced.modified,
        "app_id": synced.app.id,
        "sync_id": uuid::Uuid::new_v4(),
        "status": 200,
    })))
}

/// Reads a register body into the sync to store (URLs normalised, full configs kept).
pub fn parse(bytes: &[u8], now: Millis) -> Result<AppSync> {
    let mut request = RegisterRequest::from_slice(bytes)
        .map_err(|e| Error::invalid("invalid_register", e.to_string()))?;
    request.normalize_urls();
    if request.app_name.trim().is_empty() {
        return Err(Error::invalid("invalid_register", "the app name is empty"));
    }
    if request.url.trim().is_empty() {
        return Err(Error::invalid("invalid_register", "the app url is empty"));
    }
    let mut functions: Vec<FunctionDef> = Vec::with_capacity(request.functions.len());
    for function in request.functions {
        if function.id.trim().is_empty() {
            return Err(Error::invalid(
                "invalid_register",
                "a function has an empty id",
            ));
        }
        if functions.iter().any(|f| f.slug == function.id) {
            return Err(Error::invalid(
                "invalid_register",
                format!("function id {:?} appears twice", function.id),
            ));
        }
        let triggers = function
            .triggers
            .iter()
            .map(|t| match t {
                WireTrigger::Event { event, expression } => Trigger::Event {
                    event: event.clone(),
                    expression: expression.clone(),
                },
                WireTrigger::Cron { cron, jitter } => Trigger::Cron {
                    cron: cron.clone(),
                    jitter: jitter.clone(),
                },
            })
            .collect();
        functions.push(FunctionDef {
            slug: function.id.clone(),
            name: function.name().to_owned(),
            triggers,
            config: function.raw.clone(),
        });
    }
    Ok(AppSync {
        name: request.app_name,
        url: request.url,
        sdk: request.sdk,
        framework: request.framework,
        functions,
        now,
    })
}
