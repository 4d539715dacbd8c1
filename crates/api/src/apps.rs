//! Apps and functions: `GET /v1/apps[/{id}]`, `POST /v1/apps` (add and sync a URL),
//! `POST /v1/apps/{id}/sync`, `DELETE /v1/apps/{id}`, `GET /v1/functions[/{slug}]`,
//! and `POST /v1/functions/{slug}/invoke` (start a run directly).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sluice_broker::fanout::FUNCTION_INVOKED;
use sluice_core::{AppId, FunctionId, Millis};
use sluice_store::{App, Event, Function};

use crate::ingest::event_ids;
use crate::{AppState, Error, Result, payload};

/// Largest body of these endpoints (an invoke's data).
const MAX_BODY_BYTES: usize = 3 * 1024 * 1024;

/// This module's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/apps", get(list_apps).post(add_app))
        .route("/v1/apps/{id}", get(get_app).delete(delete_app))
        .route("/v1/apps/{id}/sync", post(sync_app))
        .route("/v1/functions", get(list_functions))
        .route("/v1/functions/{slug}", get(get_function))
        .route("/v1/functions/{slug}/invoke", post(invoke))
}

async fn list_apps(State(state): State<AppState>) -> Result<Json<Value>> {
    let apps = state.store.list_apps().await?;
    Ok(Json(json!({ "items": apps })))
}

fn parse_app_id(id: &str) -> Result<AppId> {
    id.parse()
        .map_err(|_| Error::invalid("invalid_id", format!("{id:?} is not an app id")))
}

async fn get_app(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>> {
    let app = state.store.get_app(parse_app_id(&id)?).await?;
    let functions = app_functions(&state, &app).await?;
    Ok(Json(app_json(&app, &functions)))
}

async fn app_functions(state: &AppState, app: &App) -> Result<Vec<Function>> {
    let mut functions = state.store.list_functions().await?;
    functions.retain(|f| f.app_id == app.id);
    Ok(functions)
}

fn app_json(app: &App, functions: &[Function]) -> Value {
    let mut value = serde_json::to_value(app).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("functions".into(), json!(functions));
    }
    value
}

async fn delete_app(State(state): State<AppState>, Path(id): Path<String>) -> Result<StatusCode> {
    state.store.delete_app(parse_app_id(&id)?).await?;
    state.broker.registry_changed();
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
struct AddApp {
    url: String,
}

/// `POST /v1/apps {url}`: keep the URL synced and sync it now. 200 with the app, or
/// 502 `sync_failed` with what the app answered (the failure is stored on the app).
async fn add_app(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>> {
    let AddApp { url } = payload::json(&headers, body, MAX_BODY_BYTES).await?;
    let parsed = url::Url::parse(url.trim())
        .ok()
        .filter(|u| matches!(u.scheme(), "http" | "https"));
    if parsed.is_none() {
        return Err(Error::invalid(
            "invalid_url",
            "url must be an http(s) URL, e.g. http://localhost:3000/api/inngest",
        ));
    }
    let syncer = syncer(&state)?;
    syncer.watch(url.trim());
    sync_reply(&state, syncer.sync(url.trim()).await?).await
}

/// `POST /v1/apps/{id}/sync`: sync a known app again now.
async fn sync_app(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>> {
    let app = state.store.get_app(parse_app_id(&id)?).await?;
    let synced = syncer(&state)?.sync(&app.url).await?;
    sync_reply(&state, synced.or(Some(app))).await
}

fn syncer(state: &AppState) -> Result<&sluice_broker::AppSyncer> {
    state
        .syncer
        .as_ref()
        .ok_or_else(|| Error::Unavailable("app syncing is not enabled on this server".into()))
}

async fn sync_reply(state: &AppState, app: Option<App>) -> Result<Json<Value>> {
    match app {
        Some(app) => {
            // Re-read: the SDK's register call updated it.
            let app = state.store.get_app(app.id).await?;
            let functions = app_functions(state, &app).await?;
            Ok(Json(app_json(&app, &functions)))
        }
        None => Ok(Json(json!({
            "app": null,
            "message": "the app answered, but registered under another URL; see GET /v1/apps",
        }))),
    }
}

async fn list_functions(State(state): State<AppState>) -> Result<Json<Value>> {
    let functions = state.store.list_functions().await?;
    Ok(Json(json!({ "items": functions })))
}

/// A function by slug, or by internal id.
async fn find_function(state: &AppState, slug: &str) -> Result<Function> {
    match state.store.get_function_by_slug(slug).await {
        Err(sluice_store::Error::NotFound(_)) => match slug.parse::<FunctionId>() {
            Ok(id) => Ok(state.store.get_function(id).await?),
            Err(_) => Err(Error::NotFound(format!("function {slug:?}"))),
        },
        other => Ok(other?),
    }
}

async fn get_function(
    State(state): State<AppState>,
    Path(slug): Path<String>,
) -> Result<Json<Function>> {
    Ok(Json(find_function(&state, &slug).await?))
}

#[derive(Debug, Default, Deserialize)]
struct Invoke {
    #[serde(default)]
    data: Option<Value>,
}

/// `POST /v1/functions/{slug}/invoke {data}`: starts a run of exactly this function
/// through an `inngest/function.invoked` event. Answers the event and run ids.
async fn invoke(
    State(state): State<AppState>,
    Path(slug): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<Value>> {
    let function = find_function(&state, &slug).await?;
    let bytes = payload::read(&headers, body, MAX_BODY_BYTES).await?;
    let invoke: Invoke = if bytes.iter().all(u8::is_ascii_whitespace) {
        Invoke::default()
    } else {
        serde_json::from_slice(&bytes).map_err(|e| {
            Error::invalid("invalid_json", format!("request body is not valid: {e}"))
        })?
    };
    let mut data = match invoke.data {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(Error::invalid(
                "invalid_data",
                "\"data\" must be a JSON object",
            ));
        }
    };
    data.insert(
        "_inngest".into(),
        json!({ "fn_id": function.slug, "source": "api" }),
    );
    if state
        .broker
        .registry()
        .await?
        .find(&function.slug)
        .is_none()
    {
        // Synced elsewhere moments ago: load it before fanning out.
        state.broker.registry_changed();
    }
    let now = Millis::now();
    let event = Event {
        id: event_ids(None, 1)[0],
        external_id: None,
        name: FUNCTION_INVOKED.into(),
        data: Value::Object(data),
        user: json!({}),
        version: None,
        ts: now,
        received_at: now,
    };
    let ingested = state.broker.publish(vec![event]).await?;
    let ingested = ingested
        .into_iter()
        .next()
        .ok_or_else(|| Error::Internal("publish answered no event".into()))?;
    let Some(run_id) = ingested.runs.first() else {
        // The registry had not caught up with a function the store knows.
        return Err(Error::Conflict(format!(
            "function {:?} is not loaded yet; try again",
            function.slug
        )));
    };
    Ok(Json(
        json!({ "event_id": ingested.id, "run_id": run_id, "status": 200 }),
    ))
}
