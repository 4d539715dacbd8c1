//! The events a run's end emits: `inngest/function.finished` always,
//! `inngest/function.failed` on failure (its id is the run id, so it fires once and
//! triggers the SDK's `-failure` function), `inngest/function.cancelled` on cancel.

use serde_json::{Map, Value, json};
use sluice_core::{EventId, Millis, RunId};
use sluice_store::{Event, Run};

/// Emitted when any run ends.
pub const FUNCTION_FINISHED: &str = "inngest/function.finished";
/// Emitted when a run fails.
pub const FUNCTION_FAILED: &str = "inngest/function.failed";
/// Emitted when a run is cancelled.
pub const FUNCTION_CANCELLED: &str = "inngest/function.cancelled";
/// Emitted to start an invoked run.
pub const FUNCTION_INVOKED: &str = "inngest/function.invoked";

/// How a run ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Ending {
    /// The function returned this output.
    Completed(Value),
    /// The run failed with this error (`{name, message, stack?}`).
    Failed(Value),
    /// The run was cancelled.
    Cancelled,
}

impl Ending {
    fn status(&self) -> &'static str {
        match self {
            Ending::Completed(_) => "completed",
            Ending::Failed(_) => "failed",
            Ending::Cancelled => "cancelled",
        }
    }
}

/// What the end events say about a run.
#[derive(Debug, Clone, Copy)]
pub struct Ended<'a> {
    pub run: &'a Run,
    /// The function's slug (`<app>-<fn>`), as SDKs name functions.
    pub function_slug: &'a str,
    /// The run's events as SDKs see them.
    pub events: &'a [Value],
    pub ending: &'a Ending,
    pub now: Millis,
}

/// The events emitted for a run's end, finished first.
pub fn end_events(ended: Ended<'_>) -> Vec<Event> {
    let Ended {
        run,
        function_slug,
        events,
        ending,
        now,
    } = ended;
    let mut data = Map::new();
    data.insert(
        "function_id".into(),
        Value::String(function_slug.to_owned()),
    );
    data.insert("run_id".into(), Value::String(run.id.to_string()));
    data.insert(
        "event".into(),
        events.first().cloned().unwrap_or(Value::Null),
    );
    data.insert("events".into(), Value::Array(events.to_vec()));
    match ending {
        Ending::Completed(output) => {
            data.insert("result".into(), output.clone());
        }
        Ending::Failed(error) => {
            data.insert("error".into(), error.clone());
        }
        Ending::Cancelled => {
            data.insert(
                "error".into(),
                json!({"name": "Error", "message": "function cancelled"}),
            );
        }
    }
    if let Some(c) = &run.correlation_id {
        data.insert("correlation_id".into(), Value::String(c.clone()));
    }
    data.insert("_inngest".into(), json!({"status": ending.status()}));
    let data = Value::Object(data);
    let event = |name: &str, external_id: Option<String>| Event {
        id: EventId::new(),
        external_id,
        name: name.to_owned(),
        data: data.clone(),
        user: json!({}),
        version: None,
        ts: now,
        received_at: now,
    };
    let mut out = vec![event(FUNCTION_FINISHED, None)];
    match ending {
        Ending::Failed(_) => out.push(event(FUNCTION_FAILED, Some(run.id.to_string()))),
        Ending::Cancelled => out.push(event(FUNCTION_CANCELLED, Some(cancel_id(run.id)))),
        Ending::Completed(_) => {}
    }
    out
}

fn cancel_id(run: RunId) -> String {
    format!("{run}.cancelled")
}

/// A run error as stored and emitted: `{name, message}`.
pub fn error_value(name: &str, message: impl Into<String>) -> Value {
    json!({"name": name, "message": message.into()})
}
