//! The call request: the body the server POSTs to a function's step URL.
//!
//! Sent as canonical JSON ([`CallRequest::to_canonical_vec`]), which is also what gets
//! signed: the SDKs canonicalise the body before checking the signature.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// The `version` to send on the first request of a run; the SDK then picks one and
/// reports it in `x-inngest-req-version`.
pub const VERSION_UNSET: i32 = -1;

/// The step id that asks the SDK to run the function up to its next new step.
pub const DISCOVERY_STEP_ID: &str = "step";

/// The call request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CallRequest {
    /// Run context.
    pub ctx: CallContext,
    /// Deferred items (`DeferAdd`), by id.
    #[serde(default)]
    pub defers: Map<String, Value>,
    /// The first event (`events[0]`).
    #[serde(default)]
    pub event: Value,
    /// Every event of the run (one, or a batch).
    #[serde(default)]
    pub events: Vec<Value>,
    /// Saved step results by hashed id: `{"data": …}`, `{"error": …}`, `{"input": …}`,
    /// a raw event (a wait's match) or `null` (a finished sleep or a wait's timeout).
    #[serde(default)]
    pub steps: Map<String, Value>,
    /// Python reads `use_api` here; TS reads `ctx.use_api`. Keep both the same.
    #[serde(default)]
    pub use_api: bool,
    /// Request version: [`VERSION_UNSET`] first, then what the SDK picked.
    #[serde(default = "version_unset")]
    pub version: i32,
}

fn version_unset() -> i32 {
    VERSION_UNSET
}

/// `ctx` of a call request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct CallContext {
    /// 0-based attempt of this queue item; 0 again after a step result is saved.
    #[serde(default)]
    pub attempt: u32,
    /// Set once a reply carried several ops: steps are then always planned first.
    #[serde(default)]
    pub disable_immediate_execution: bool,
    /// Environment name (`"dev"`).
    #[serde(default)]
    pub env: String,
    /// The function's internal id. Setting it turns TS v4 checkpointing on; `None`
    /// leaves it out of the body (one step per request).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fn_id: Option<String>,
    /// Attempts per step (retries + 1).
    #[serde(default)]
    pub max_attempts: u32,
    /// The queue item reference.
    #[serde(default)]
    pub qi_id: String,
    /// The run id (a ULID).
    #[serde(default)]
    pub run_id: String,
    /// Step completion order.
    #[serde(default)]
    pub stack: Stack,
    /// `"step"` for discovery, or the hashed id of a planned step to run.
    #[serde(default)]
    pub step_id: String,
    /// Whether the SDK must fetch events and steps from the API (`steps`/`events` empty).
    #[serde(default)]
    pub use_api: bool,
    /// Request id, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// Generation id, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generation_id: Option<u64>,
    /// Job id, when sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
}

/// `ctx.stack`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Stack {
    /// Hashed ids of saved steps, in the order they completed.
    #[serde(default)]
    pub stack: Vec<String>,
    /// `stack.len()`.
    #[serde(default)]
    pub current: u32,
}

impl Stack {
    /// A stack of these ids, `current` set to their count.
    pub fn new(stack: Vec<String>) -> Self {
        let current = u32::try_from(stack.len()).unwrap_or(u32::MAX);
        Self { stack, current }
    }
}

impl CallRequest {
    /// The body as canonical JSON (RFC 8785): the bytes to send and sign.
    pub fn to_canonical_vec(&self) -> Vec<u8> {
        // Serialising plain structs and JSON maps to a `Value` cannot fail.
        let value = serde_json::to_value(self).expect("call request serialises");
        crate::canonical::to_canonical_vec(&value)
    }

    /// Parses a call request (as an SDK does).
    pub fn from_slice(body: &[u8]) -> crate::Result<Self> {
        Ok(serde_json::from_slice(body)?)
    }
}

/// A step's saved result as the `steps` map holds it: `{"data": data}`.
pub fn step_data(data: Value) -> Value {
    let mut map = Map::new();
    map.insert("data".to_owned(), data);
    Value::Object(map)
}

/// A step's saved error as the `steps` map holds it: `{"error": error}`.
pub fn step_error(error: Value) -> Value {
    let mut map = Map::new();
    map.insert("error".to_owned(), error);
    Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::step_id_hash;
    use crate::signing::{SigningKey, sign, verify};
    use serde_json::json;

    fn request() -> CallRequest {
        let a = step_id_hash("a", 0);
        let event = json!({"name": "demo/hello", "data": {"id": "x1"}, "id": "01KEVT0000000000000000000A",
            "ts": 1764000000000u64, "user": {}});
        CallRequest {
            ctx: CallContext {
                attempt: 0,
                disable_immediate_execution: false,
                env: "dev".into(),
                fn_id: None,
                max_attempts: 4,
                qi_id: "42".into(),
                run_id: "01KRUN0000000000000000000A".into(),
                stack: Stack::new(vec![a.clone()]),
                step_id: DISCOVERY_STEP_ID.into(),
                use_api: false,
                request_id: None,
                generation_id: Some(1),
                job_id: None,
            },
            defers: Map::new(),
            event: event.clone(),
            events: vec![event],
            steps: [(a, step_data(json!({"a": 1, "id": "x1"})))]
                .into_iter()
                .collect(),
            use_api: false,
            version: VERSION_UNSET,
        }
    }

    #[test]
    fn serialises_canonically_with_every_field_python_needs() {
        let req = request();
        let body = String::from_utf8(req.to_canonical_vec()).unwrap();
        let want = concat!(
            r#"{"ctx":{"attempt":0,"disable_immediate_execution":false,"env":"dev","generation_id":1,"#,
            r#""max_attempts":4,"qi_id":"42","run_id":"01KRUN0000000000000000000A","#,
            r#""stack":{"current":1,"stack":["86f7e437faa5a7fce15d1ddcb9eaeaea377667b8"]},"#,
            r#""step_id":"step","use_api":false},"defers":{},"#,
            r#""event":{"data":{"id":"x1"},"id":"01KEVT0000000000000000000A","name":"demo/hello","ts":1764000000000,"user":{}},"#,
            r#""events":[{"data":{"id":"x1"},"id":"01KEVT0000000000000000000A","name":"demo/hello","ts":1764000000000,"user":{}}],"#,
            r#""steps":{"86f7e437faa5a7fce15d1ddcb9eaeaea377667b8":{"data":{"a":1,"id":"x1"}}},"#,
            r#""use_api":false,"version":-1}"#
        );
        assert_eq!(body, want);
        assert!(!body.contains("fn_id"), "fn_id left out when unset");

        let mut with_fn = req.clone();
        with_fn.ctx.fn_id = Some("7b2f0e61-0000-4000-8000-000000000001".into());
        let back = CallRequest::from_slice(&with_fn.to_canonical_vec()).unwrap();
        assert_eq!(back, with_fn, "round trips");

        // Signed bytes verify after the SDK re-canonicalises the parsed body.
        let key = SigningKey::new("signkey-test-0123456789abcdef").unwrap();
        let bytes = req.to_canonical_vec();
        let header = sign(&bytes, &key, 1_796_396_716);
        let reparsed: Value = serde_json::from_slice(&bytes).unwrap();
        let recanon = crate::canonical::to_canonical_vec(&reparsed);
        assert_eq!(
            verify(&header, &recanon, &[key], 1_796_396_716, Some(300)),
            Ok(0)
        );

        // A lenient parse of a minimal body (what an SDK might get from an old server).
        let min =
            CallRequest::from_slice(br#"{"ctx":{"run_id":"r","stack":{"stack":[]}}}"#).unwrap();
        assert_eq!(
            (min.version, min.ctx.stack.current, min.events.len()),
            (VERSION_UNSET, 0, 0)
        );
        assert_eq!(
            step_error(json!({"name": "Error"})),
            json!({"error": {"name": "Error"}})
        );
    }
}
