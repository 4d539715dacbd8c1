//! The events API: `POST /e/{event_key}` (SDKs and apps) and `POST /v1/events` (the
//! dashboard). Bodies are bounded (size, JSON depth, event count) and every event is
//! validated before anything is stored; then the broker stores the events with their
//! fan-out in one transaction and the reply lists their ids.

use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Map, Value, json};
use sluice_core::{EventId, Millis};
use sluice_protocol::event::{EVENT_ID_SEED_HEADER, seeded_ulids};
use sluice_store::Event;

use crate::{AppState, Error, Limits, Mode, Result, payload};

/// This module's routes.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/e/{event_key}", post(events_api))
        .route("/v1/events", post(send_events))
        // Bodies are read under our own limit ([`Limits`]), with JSON errors.
        .layer(DefaultBodyLimit::disable())
}

/// `POST /e/{event_key}` → `{"ids":[…],"status":200}`.
async fn events_api(
    State(state): State<AppState>,
    Path(key): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    if state.options.mode == Mode::Start && !state.options.event_keys.contains(&key) {
        return Err(Error::Unauthorized(
            "event key not found; send a configured event key".into(),
        ));
    }
    let ingested = ingest(&state, &headers, body).await?;
    let ids: Vec<String> = ingested.iter().map(|i| i.id.to_string()).collect();
    Ok(Json(json!({ "ids": ids, "status": 200 })).into_response())
}

/// `POST /v1/events`: the same body and checks, answered with each event's runs too.
async fn send_events(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response> {
    let ingested = ingest(&state, &headers, body).await?;
    let ids: Vec<String> = ingested.iter().map(|i| i.id.to_string()).collect();
    let events: Vec<Value> = ingested
        .iter()
        .map(|i| json!({"id": i.id, "duplicate": i.duplicate, "runs": i.runs}))
        .collect();
    Ok(Json(json!({ "ids": ids, "status": 200, "events": events })).into_response())
}

async fn ingest(
    state: &AppState,
    headers: &HeaderMap,
    body: Body,
) -> Result<Vec<sluice_broker::Ingested>> {
    let limits = &state.options.limits;
    let bytes = payload::read(headers, body, limits.max_request_bytes).await?;
    let now = Millis::now();
    let drafts = parse(&bytes, limits, now)?;
    let seed = headers
        .get(EVENT_ID_SEED_HEADER)
        .and_then(|v| v.to_str().ok());
    let ids = event_ids(seed, drafts.len());
    let events = drafts
        .into_iter()
        .zip(ids)
        .map(|(draft, id)| draft.into_event(id, now))
        .collect();
    Ok(state.broker.publish(events).await?)
}

/// The ids for `count` events: from the SDK's seed when it sent a valid one (so a
/// retried request gets the same ids and is deduped), fresh otherwise.
pub fn event_ids(seed: Option<&str>, count: usize) -> Vec<EventId> {
    if let Some(seed) = seed {
        match seeded_ulids(seed, count) {
            Ok(ids) => return ids.into_iter().map(EventId).collect(),
            Err(err) => tracing::debug!(error = %err, "event id seed ignored"),
        }
    }
    let mut generator = ulid::Generator::new();
    (0..count)
        .map(|_| EventId(generator.generate().unwrap_or_else(|_| ulid::Ulid::new())))
        .collect()
}

/// A validated event, before it has an id.
#[derive(Debug, Clone, PartialEq)]
pub struct Draft {
    pub name: String,
    pub data: Value,
    pub external_id: Option<String>,
    pub ts: Millis,
    pub version: Option<String>,
    pub user: Value,
}

impl Draft {
    /// The event to store.
    pub fn into_event(self, id: EventId, received_at: Millis) -> Event {
        Event {
            id,
            external_id: self.external_id,
            name: self.name,
            data: self.data,
            user: self.user,
            version: self.version,
            ts: self.ts,
            received_at,
        }
    }
}

/// Reads and validates an events body: one event object or an array of them.
pub fn parse(bytes: &[u8], limits: &Limits, now: Millis) -> Result<Vec<Draft>> {
    if bytes.len() > limits.max_request_bytes {
        return Err(Error::TooLarge(format!(
            "request body is over the {}-byte limit",
            limits.max_request_bytes
        )));
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| Error::invalid("invalid_utf8", "request body is not valid UTF-8"))?;
    if text.trim().is_empty() {
        return Err(Error::invalid(
            "empty_body",
            "request body is empty; send an event object or an array of events",
        ));
    }
    if nesting_exceeds(text.as_bytes(), limits.max_depth) {
        return Err(Error::invalid(
            "too_deep",
            format!("JSON is nested deeper than {} levels", limits.max_depth),
        ));
    }
    let value: Value = serde_json::from_str(text).map_err(|e| {
        Error::invalid(
            "invalid_json",
            format!("request body is not valid JSON: {e}"),
        )
    })?;
    let items = match value {
        Value::Array(items) => items,
        object @ Value::Object(_) => vec![object],
        Value::Null => {
            return Err(Error::invalid(
                "empty_body",
                "request body is null; send an event object or an array of events",
            ));
        }
        _ => {
            return Err(Error::invalid(
                "invalid_body",
                "request body must be an event object or an array of events",
            ));
        }
    };
    if items.is_empty() {
        return Err(Error::invalid("empty_body", "the array holds no events"));
    }
    if items.len() > limits.max_events {
        return Err(Error::invalid(
            "too_many_events",
            format!(
                "{} events in one request; send at most {}",
                items.len(),
                limits.max_events
            ),
        ));
    }
    // Only a body bigger than one event's limit can hold an event over it.
    let measure = bytes.len() > limits.max_event_bytes;
    items
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            if measure {
                let size = serde_json::to_vec(&item).map_or(0, |v| v.len());
                if size > limits.max_event_bytes {
                    return Err(Error::TooLarge(format!(
                        "event {index} is {size} bytes; the limit is {}",
                        limits.max_event_bytes
                    )));
                }
            }
            draft(index, item, limits, now)
        })
        .collect()
}

fn draft(index: usize, item: Value, limits: &Limits, now: Millis) -> Result<Draft> {
    let Value::Object(mut event) = item else {
        return Err(Error::invalid(
            "invalid_event",
            format!("event {index} is not a JSON object"),
        ));
    };
    let name = match event.get("name") {
        Some(Value::String(name)) if !name.trim().is_empty() => name.trim().to_owned(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(Error::invalid(
                "missing_name",
                format!("event {index} has no name; every event needs a \"name\""),
            ));
        }
        Some(_) => {
            return Err(Error::invalid(
                "invalid_name",
                format!("event {index}: \"name\" must be a string"),
            ));
        }
    };
    if name.starts_with("inngest/") {
        return Err(Error::invalid(
            "reserved_name",
            format!("event {index}: names starting with \"inngest/\" are reserved"),
        ));
    }
    let data = match event.remove("data") {
        None | Some(Value::Null) => Value::Object(Map::new()),
        Some(Value::Object(mut data)) => {
            // Internal metadata is the platform's to set.
            data.remove("_inngest");
            Value::Object(data)
        }
        Some(_) => {
            return Err(Error::invalid(
                "invalid_data",
                format!("event {index}: \"data\" must be a JSON object"),
            ));
        }
    };
    let external_id = match event.remove("id") {
        None | Some(Value::Null) => None,
        Some(Value::String(id)) if id.is_empty() => None,
        Some(Value::String(id)) => Some(id),
        Some(_) => {
            return Err(Error::invalid(
                "invalid_id",
                format!("event {index}: \"id\" must be a string"),
            ));
        }
    };
    let ts = match event.get("ts") {
        None | Some(Value::Null) => now,
        Some(Value::Number(n)) => {
            let ms = n.as_i64().or_else(|| n.as_f64().map(|f| f as i64));
            match ms {
                Some(0) => now,
                Some(ms) if ms > 0 => Millis(ms),
                _ => {
                    return Err(Error::invalid(
                        "invalid_ts",
                        format!(
                            "event {index}: \"ts\" must be a positive epoch time in milliseconds"
                        ),
                    ));
                }
            }
        }
        Some(_) => {
            return Err(Error::invalid(
                "invalid_ts",
                format!("event {index}: \"ts\" must be an epoch time in milliseconds"),
            ));
        }
    };
    if ts.0 > now.0.saturating_add(limits.max_future_ms) {
        return Err(Error::invalid(
            "ts_too_far",
            format!(
                "event {index}: \"ts\" is more than {} days ahead",
                limits.max_future_ms / 86_400_000
            ),
        ));
    }
    let version = match event.get("v") {
        Some(Value::String(v)) if !v.is_empty() => Some(v.clone()),
        _ => None,
    };
    let user = match event.remove("user") {
        Some(user @ Value::Object(_)) => user,
        _ => Value::Object(Map::new()),
    };
    Ok(Draft {
        name,
        data,
        external_id,
        ts,
        version,
        user,
    })
}

/// Whether JSON text nests objects/arrays deeper than `max` (checked before parsing,
/// so a hostile body never reaches the parser's recursion).
fn nesting_exceeds(bytes: &[u8], max: usize) -> bool {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &b in bytes {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => {
                depth += 1;
                if depth > max {
                    return true;
                }
            }
            b'}' | b']' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drafts_are_validated_and_defaulted() {
        let limits = Limits::default();
        let now = Millis(1_700_000_000_000);
        let body = br#"[{"name":" app/a ","data":{"k":1,"_inngest":{"fn_id":"x"}},"id":"dup-1","ts":1600000000000,"v":"2","user":{"u":1}},
                        {"name":"app/b","ts":0},{"name":"app/c","data":null,"ts":1710000000000.7}]"#;
        let drafts = parse(body, &limits, now).unwrap();
        assert_eq!(drafts.len(), 3);
        assert_eq!(drafts[0].name, "app/a");
        assert_eq!(drafts[0].data, json!({"k": 1}), "_inngest stripped");
        assert_eq!(drafts[0].external_id.as_deref(), Some("dup-1"));
        assert_eq!(drafts[0].ts, Millis(1_600_000_000_000), "past ts kept");
        assert_eq!(drafts[0].version.as_deref(), Some("2"));
        assert_eq!(drafts[0].user, json!({"u": 1}));
        assert_eq!((drafts[1].ts, &drafts[1].data), (now, &json!({})));
        assert_eq!(
            drafts[2].ts,
            Millis(1_710_000_000_000),
            "future ts kept, fraction dropped"
        );
        let single = parse(br#"{"name":"x"}"#, &limits, now).unwrap();
        assert_eq!(single[0].user, json!({}));

        let deep = format!("{}{}", "[".repeat(65), "]".repeat(65));
        let ok_deep = format!(
            r#"{{"name":"x","data":{{"s":"{}{}"}}}}"#,
            "[".repeat(100),
            "\\\""
        );
        assert!(
            parse(ok_deep.as_bytes(), &limits, now).is_ok(),
            "brackets in strings"
        );
        let cases: &[(&[u8], &str)] = &[
            (b"", "empty_body"),
            (b"  ", "empty_body"),
            (b"null", "empty_body"),
            (b"[]", "empty_body"),
            (b"{\"name\":", "invalid_json"),
            (b"\xff\xfe", "invalid_utf8"),
            (b"42", "invalid_body"),
            (b"[1]", "invalid_event"),
            (b"{\"data\":{}}", "missing_name"),
            (b"{\"name\":\"\"}", "missing_name"),
            (b"{\"name\":7}", "invalid_name"),
            (b"{\"name\":\"inngest/function.finished\"}", "reserved_name"),
            (b"{\"name\":\"x\",\"data\":[1]}", "invalid_data"),
            (b"{\"name\":\"x\",\"data\":\"s\"}", "invalid_data"),
            (b"{\"name\":\"x\",\"id\":5}", "invalid_id"),
            (b"{\"name\":\"x\",\"ts\":\"now\"}", "invalid_ts"),
            (b"{\"name\":\"x\",\"ts\":-5}", "invalid_ts"),
            (b"{\"name\":\"x\",\"ts\":99999999999999}", "ts_too_far"),
            (deep.as_bytes(), "too_deep"),
        ];
        for (body, code) in cases {
            let err = parse(body, &limits, now).unwrap_err();
            assert_eq!(err.code(), *code, "{}", String::from_utf8_lossy(body));
            assert_eq!(err.status().as_u16(), 400);
        }
        let small = Limits {
            max_events: 2,
            max_event_bytes: 40,
            max_request_bytes: 100,
            ..Limits::default()
        };
        let three = br#"[{"name":"a"},{"name":"b"},{"name":"c"}]"#;
        assert_eq!(
            parse(three, &small, now).unwrap_err().code(),
            "too_many_events"
        );
        let big_event = format!(r#"[{{"name":"a","data":{{"s":"{}"}}}}]"#, "x".repeat(50));
        let err = parse(big_event.as_bytes(), &small, now).unwrap_err();
        assert_eq!(
            (err.status().as_u16(), err.code()),
            (413, "payload_too_large")
        );
        let huge = format!(r#"{{"name":"a","data":{{"s":"{}"}}}}"#, "x".repeat(200));
        assert_eq!(
            parse(huge.as_bytes(), &small, now)
                .unwrap_err()
                .status()
                .as_u16(),
            413
        );
    }

    #[test]
    fn seeded_ids_repeat_and_fresh_ids_ascend() {
        let seed = "1764000000000,AAECAwQFBgcICQ==";
        let a = event_ids(Some(seed), 3);
        assert_eq!(a, event_ids(Some(seed), 3));
        assert_eq!(a[0].ulid().timestamp_ms(), 1_764_000_000_000);
        let fresh = event_ids(Some("garbage"), 3);
        assert!(fresh[0] < fresh[1] && fresh[1] < fresh[2]);
        assert_ne!(fresh, event_ids(None, 3));
    }
}
