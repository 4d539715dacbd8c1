//! What happened: `GET /v1/events[/{id}]` (each with the runs it triggered),
//! `GET /v1/runs[/{id}]` and `GET /v1/runs/{id}/steps`. Lists are newest first with
//! cursor pagination: pass a page's `next` as `cursor` to get the following page.

use axum::extract::{Path, RawQuery, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use sluice_core::{EventId, Millis, RunId, RunStatus};
use sluice_store::{Event, EventFilter, RunFilter};

use crate::{AppState, Error, Result};

/// Page size when `limit` is absent.
const DEFAULT_LIMIT: u32 = 50;
/// Largest page.
const MAX_LIMIT: u32 = 200;

/// This module's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/v1/events", get(list_events))
        .route("/v1/events/{id}", get(get_event))
        .route("/v1/runs", get(list_runs))
        .route("/v1/runs/{id}", get(get_run))
        .route("/v1/runs/{id}/steps", get(list_steps))
}

/// Query parameters, repeated ones kept (`?status=a&status=b` or `?status=a,b`).
struct Params(Vec<(String, String)>);

impl Params {
    fn new(raw: Option<String>) -> Self {
        Params(
            url::form_urlencoded::parse(raw.unwrap_or_default().as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    fn one(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, v)| k == key && !v.is_empty())
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, key: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(k, _)| k == key)
            .flat_map(|(_, v)| v.split(','))
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .collect()
    }

    fn limit(&self) -> Result<u32> {
        match self.one("limit") {
            None => Ok(DEFAULT_LIMIT),
            Some(v) => match v.parse::<u32>() {
                Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
                _ => Err(Error::invalid(
                    "invalid_query",
                    format!("limit must be a number from 1 to {MAX_LIMIT}"),
                )),
            },
        }
    }

    /// A time: epoch milliseconds or RFC 3339.
    fn time(&self, key: &str) -> Result<Option<Millis>> {
        let Some(v) = self.one(key) else {
            return Ok(None);
        };
        if let Ok(ms) = v.parse::<i64>() {
            return Ok(Some(Millis(ms)));
        }
        chrono::DateTime::parse_from_rfc3339(v)
            .map(|t| Some(Millis::from(t.with_timezone(&chrono::Utc))))
            .map_err(|_| {
                Error::invalid(
                    "invalid_query",
                    format!("{key} must be epoch milliseconds or an RFC 3339 time"),
                )
            })
    }

    fn parsed<T: std::str::FromStr>(&self, key: &str) -> Result<Option<T>> {
        self.one(key)
            .map(|v| {
                v.parse().map_err(|_| {
                    Error::invalid("invalid_query", format!("{key} {v:?} is not valid"))
                })
            })
            .transpose()
    }
}

fn parse_path<T: std::str::FromStr>(what: &str, id: &str) -> Result<T> {
    id.parse()
        .map_err(|_| Error::invalid("invalid_id", format!("{id:?} is not a {what} id")))
}

async fn event_json(state: &AppState, event: Event) -> Result<Value> {
    let runs = state.store.runs_for_event(event.id).await?;
    let mut value = serde_json::to_value(&event).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("runs".into(), json!(runs));
    }
    Ok(value)
}

/// `GET /v1/events?name=&internal=true&after=&before=&cursor=&limit=`.
async fn list_events(
    State(state): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>> {
    let params = Params::new(raw);
    let include_internal = match params.one("internal") {
        None | Some("false") | Some("0") => false,
        Some("true") | Some("1") => true,
        Some(_) => {
            return Err(Error::invalid(
                "invalid_query",
                "internal must be true or false",
            ));
        }
    };
    let filter = EventFilter {
        names: params.all("name"),
        include_internal,
        received_after: params.time("after")?,
        received_before: params.time("before")?,
        cursor: params.parsed("cursor")?,
        limit: params.limit()?,
    };
    let page = state.store.list_events(filter).await?;
    let mut items = Vec::with_capacity(page.items.len());
    for event in page.items {
        items.push(event_json(&state, event).await?);
    }
    Ok(Json(json!({ "items": items, "next": page.next })))
}

async fn get_event(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>> {
    let event = state
        .store
        .get_event(parse_path::<EventId>("event", &id)?)
        .await?;
    Ok(Json(event_json(&state, event).await?))
}

/// `GET /v1/runs?status=&function=&after=&before=&q=&cursor=&limit=`.
async fn list_runs(State(state): State<AppState>, RawQuery(raw): RawQuery) -> Result<Json<Value>> {
    let filter = run_filter(&state, raw).await?;
    let page = state.store.list_runs(filter).await?;
    Ok(Json(json!({ "items": page.items, "next": page.next })))
}

/// The run filter a query string asks for: `status` (repeatable or comma-separated),
/// `function` (slug or id), `after`/`before` (epoch ms or RFC 3339), `q` (a run id, an
/// event id, or part of an event name), `cursor`, `limit`.
pub(crate) async fn run_filter(state: &AppState, raw: Option<String>) -> Result<RunFilter> {
    let params = Params::new(raw);
    let statuses = params
        .all("status")
        .iter()
        .map(|s| {
            s.parse::<RunStatus>().map_err(|_| {
                Error::invalid(
                    "invalid_query",
                    format!("status {s:?}: use queued, running, completed, failed or cancelled"),
                )
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let function_id = match params.one("function") {
        None => None,
        Some(f) => match f.parse() {
            Ok(id) => Some(id),
            Err(_) => Some(state.store.get_function_by_slug(f).await?.id),
        },
    };
    Ok(RunFilter {
        statuses,
        function_id,
        created_after: params.time("after")?,
        created_before: params.time("before")?,
        search: params
            .one("q")
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(String::from),
        cursor: params.parsed("cursor")?,
        limit: params.limit()?,
    })
}

/// A run with its triggering events.
async fn get_run(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>> {
    let run = state
        .store
        .get_run(parse_path::<RunId>("run", &id)?)
        .await?;
    let events = state.store.get_events(&run.event_ids).await?;
    let mut value = serde_json::to_value(&run).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("events".into(), json!(events));
    }
    Ok(Json(value))
}

async fn list_steps(State(state): State<AppState>, Path(id): Path<String>) -> Result<Json<Value>> {
    let run_id = parse_path::<RunId>("run", &id)?;
    // 404 for an unknown run rather than an empty list.
    state.store.get_run(run_id).await?;
    let steps = state.store.list_steps(run_id).await?;
    Ok(Json(json!({ "items": steps })))
}
