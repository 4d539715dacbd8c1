//! The call request the server POSTs to run a function, and the memoized step state in it.

use crate::error::ErrorBody;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The call request body. Unknown fields are ignored; most fields may be missing.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct CallRequest {
    #[serde(default)]
    pub ctx: CallContext,
    #[serde(default)]
    pub event: Option<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub events: Vec<Value>,
    #[serde(default, deserialize_with = "null_as_default")]
    pub steps: Map<String, Value>,
    #[serde(default)]
    pub use_api: bool,
}

/// The `ctx` object of a call request.
#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct CallContext {
    #[serde(default)]
    pub run_id: String,
    #[serde(default)]
    pub attempt: u32,
    #[serde(default)]
    pub max_attempts: Option<u32>,
    #[serde(default)]
    pub disable_immediate_execution: bool,
    #[serde(default)]
    pub use_api: bool,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// What the server stored for a step.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Memo {
    /// The step's output (`{"data": …}`, or a bare value such as a matched event or
    /// the `null` of an elapsed sleep).
    Data(Value),
    /// The step's final failure (`{"error": …}`).
    Error(ErrorBody),
}

/// Reads the `steps` map: `{data}` / `{error}` objects are unwrapped, `{input}`
/// entries (inputs for steps not run yet) are skipped, anything else is raw data.
pub(crate) fn memos(steps: Map<String, Value>) -> HashMap<String, Memo> {
    steps
        .into_iter()
        .filter_map(|(id, value)| Some((id, memo(value)?)))
        .collect()
}

fn memo(value: Value) -> Option<Memo> {
    let Value::Object(mut map) = value else {
        return Some(Memo::Data(value));
    };
    let only = |key: &str, map: &Map<String, Value>| map.len() == 1 && map.contains_key(key);
    if only("data", &map) {
        return map.remove("data").map(Memo::Data);
    }
    if only("input", &map) {
        return None;
    }
    if only("error", &map) {
        let error = map.remove("error").unwrap_or(Value::Null);
        let body = serde_json::from_value(error.clone()).unwrap_or_else(|_| ErrorBody {
            name: "Error".to_owned(),
            message: error.to_string(),
            stack: None,
        });
        return Some(Memo::Error(body));
    }
    Some(Memo::Data(Value::Object(map)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn memos_unwrap_data_and_error_and_keep_raw_values() {
        let steps = json!({
            "a": {"data": {"a": 1, "id": "x1"}},
            "sleep": null,
            "wait": {"name": "demo/reply", "data": {"id": "x1"}, "id": "01K", "ts": 1, "user": {}},
            "b": {"error": {"name": "Error", "message": "step b exploded", "stack": "Error: ..."}},
            "odd": {"error": "just a string"},
            "pending": {"input": [1]},
            "bare": 7,
        });
        let Value::Object(steps) = steps else {
            unreachable!()
        };
        let got = memos(steps);
        assert_eq!(got["a"], Memo::Data(json!({"a": 1, "id": "x1"})));
        assert_eq!(got["sleep"], Memo::Data(Value::Null));
        assert_eq!(
            got["wait"],
            Memo::Data(
                json!({"name": "demo/reply", "data": {"id": "x1"}, "id": "01K", "ts": 1, "user": {}})
            )
        );
        assert_eq!(
            got["b"],
            Memo::Error(ErrorBody {
                name: "Error".into(),
                message: "step b exploded".into(),
                stack: Some("Error: ...".into())
            })
        );
        assert!(matches!(&got["odd"], Memo::Error(e) if e.message == "\"just a string\""));
        assert!(!got.contains_key("pending"));
        assert_eq!(got["bare"], Memo::Data(json!(7)));

        let req: CallRequest = serde_json::from_value(json!({
            "ctx": {"run_id": "01KRUN", "attempt": 2, "max_attempts": 4, "stack": {"stack": [], "current": 0},
                    "disable_immediate_execution": true, "fn_id": null},
            "event": {"name": "x", "data": {}}, "events": null, "steps": null, "version": -1
        }))
        .unwrap();
        assert_eq!((req.ctx.attempt, req.ctx.max_attempts), (2, Some(4)));
        assert!(
            req.ctx.disable_immediate_execution && req.events.is_empty() && req.steps.is_empty()
        );
    }
}
