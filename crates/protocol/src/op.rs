//! The SDK's reply to a call: a 206 body is a JSON array of [`Op`]s (possibly `[]`).
//!
//! Parsing is lenient: the opcode may be a name or its integer; an unknown opcode is
//! [`Opcode::Unknown`], not an error; Python's `opts: null` and `userland.index: null`
//! are accepted; unknown fields are ignored.

use crate::duration::parse_duration;
use chrono::{DateTime, NaiveDate, Utc};
use serde::de::Deserializer;
use serde::{Deserialize, Serialize, Serializer};
use serde_json::{Map, Value};
use std::fmt;

/// What an op asks the server to do.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Opcode {
    /// Nothing (an empty reply).
    None,
    /// A step ran (legacy form: data stored unwrapped).
    Step,
    /// A step ran; `data` is its result.
    StepRun,
    /// A step threw and may be retried.
    StepError,
    /// A step was found but not run: call back with `stepId=<id>`.
    StepPlanned,
    /// Sleep until a time.
    Sleep,
    /// Wait for a matching event.
    WaitForEvent,
    /// Invoke another function and wait for its result.
    InvokeFunction,
    /// An AI inference request made by the server.
    AIGateway,
    /// An HTTP request made by the server.
    Gateway,
    /// Wait for a signal.
    WaitForSignal,
    /// The function returned (checkpoint mode); `data` is its result.
    RunComplete,
    /// A step failed for good.
    StepFailed,
    /// A sync (durable endpoint) run finished.
    SyncRunComplete,
    /// A discovery request.
    DiscoveryRequest,
    /// Add a deferred item.
    DeferAdd,
    /// Abort a deferred item.
    DeferAbort,
    /// The targeted step was not found.
    StepNotFound,
    /// An opcode this server does not know.
    Unknown(String),
}

/// Opcodes in the order of their integer values.
const BY_NUMBER: [Opcode; 17] = [
    Opcode::None,
    Opcode::Step,
    Opcode::StepRun,
    Opcode::StepError,
    Opcode::StepPlanned,
    Opcode::Sleep,
    Opcode::WaitForEvent,
    Opcode::InvokeFunction,
    Opcode::AIGateway,
    Opcode::Gateway,
    Opcode::WaitForSignal,
    Opcode::RunComplete,
    Opcode::StepFailed,
    Opcode::SyncRunComplete,
    Opcode::DiscoveryRequest,
    Opcode::DeferAdd,
    Opcode::DeferAbort,
];

impl Opcode {
    /// The opcode's wire name.
    pub fn as_str(&self) -> &str {
        match self {
            Opcode::None => "None",
            Opcode::Step => "Step",
            Opcode::StepRun => "StepRun",
            Opcode::StepError => "StepError",
            Opcode::StepPlanned => "StepPlanned",
            Opcode::Sleep => "Sleep",
            Opcode::WaitForEvent => "WaitForEvent",
            Opcode::InvokeFunction => "InvokeFunction",
            Opcode::AIGateway => "AIGateway",
            Opcode::Gateway => "Gateway",
            Opcode::WaitForSignal => "WaitForSignal",
            Opcode::RunComplete => "RunComplete",
            Opcode::StepFailed => "StepFailed",
            Opcode::SyncRunComplete => "SyncRunComplete",
            Opcode::DiscoveryRequest => "DiscoveryRequest",
            Opcode::DeferAdd => "DeferAdd",
            Opcode::DeferAbort => "DeferAbort",
            Opcode::StepNotFound => "StepNotFound",
            Opcode::Unknown(s) => s,
        }
    }

    /// The opcode for a wire name; never fails.
    pub fn from_name(name: &str) -> Self {
        BY_NUMBER
            .iter()
            .chain([&Opcode::StepNotFound])
            .find(|op| op.as_str() == name)
            .cloned()
            .unwrap_or_else(|| Opcode::Unknown(name.to_owned()))
    }

    /// The opcode for its integer value; never fails.
    pub fn from_number(n: i64) -> Self {
        usize::try_from(n)
            .ok()
            .and_then(|i| BY_NUMBER.get(i).cloned())
            .unwrap_or_else(|| Opcode::Unknown(n.to_string()))
    }
}

impl fmt::Display for Opcode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for Opcode {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Opcode {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Ok(match Value::deserialize(d)? {
            Value::String(s) => Opcode::from_name(&s),
            Value::Number(n) => match n.as_i64() {
                Some(i) => Opcode::from_number(i),
                None => Opcode::Unknown(n.to_string()),
            },
            Value::Null => Opcode::None,
            other => Opcode::Unknown(other.to_string()),
        })
    }
}

/// A step error as the SDK reports it, and as the server stores it under `{"error": …}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct StepErrorBody {
    /// The error class, e.g. `Error`, `NonRetriableError`.
    pub name: String,
    /// The message.
    pub message: String,
    /// The stack trace, when sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stack: Option<String>,
    /// Python's error code, e.g. `step_errored`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

impl<'de> Deserialize<'de> for StepErrorBody {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        // An object is the norm; a bare string (or anything else) becomes the message.
        Ok(match Value::deserialize(d)? {
            Value::Object(map) => {
                let text = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_owned);
                StepErrorBody {
                    name: text("name").unwrap_or_else(|| "Error".to_owned()),
                    message: text("message").unwrap_or_default(),
                    stack: text("stack"),
                    code: text("code"),
                }
            }
            Value::String(message) => StepErrorBody {
                name: "Error".to_owned(),
                message,
                ..Default::default()
            },
            other => StepErrorBody {
                name: "Error".to_owned(),
                message: other.to_string(),
                ..Default::default()
            },
        })
    }
}

impl fmt::Display for StepErrorBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.name, self.message)
    }
}

/// The user's own step id and repeat index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Userland {
    /// The id the user gave the step.
    #[serde(default)]
    pub id: Option<String>,
    /// The repeat index (`n` in `"id:n"`); Python sends `null` for none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
}

/// One op of a 206 reply.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Op {
    /// The hashed step id.
    #[serde(default)]
    pub id: String,
    /// What the op asks for.
    #[serde(default = "no_op")]
    pub op: Opcode,
    /// Step name; for `Sleep` the duration or date, for `WaitForEvent` the event name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Display name.
    #[serde(
        rename = "displayName",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub display_name: Option<String>,
    /// Op options (`null` from Python).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opts: Option<Value>,
    /// The step's result (`StepRun`, `RunComplete`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    /// The step's error (`StepError`, `StepFailed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<StepErrorBody>,
    /// The user's step id and index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userland: Option<Userland>,
    /// TS timing `{a: start ns, b: duration ns}`, opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timing: Option<Value>,
}

fn no_op() -> Opcode {
    Opcode::None
}

/// Why an op could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The op lacks something its opcode needs.
    #[error("{op} op {id:?}: {reason}")]
    Invalid {
        /// The opcode.
        op: Opcode,
        /// The op's id.
        id: String,
        /// What is missing or wrong.
        reason: String,
    },
}

/// `Result` with this module's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// When a sleep ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SleepTarget {
    /// At this time, in milliseconds since the Unix epoch.
    Until(i64),
}

/// What a `WaitForEvent` op waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaitForEvent {
    /// The awaited event's name.
    pub event: String,
    /// CEL over `event` (the run's trigger) and `async` (the candidate); `match: "x"`
    /// becomes `event.x == async.x`.
    pub if_expr: Option<String>,
    /// When the wait times out, in epoch milliseconds.
    pub expires_at: i64,
}

/// The payload of an invoke.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct InvokePayload {
    /// The invoked function's event data.
    #[serde(default)]
    pub data: Value,
    /// The event version.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
    /// Event metadata, opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<Value>,
}

/// What an `InvokeFunction` op invokes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvokeFunction {
    /// The composite id of the function to invoke.
    pub function_id: String,
    /// Its payload.
    pub payload: InvokePayload,
    /// When the caller stops waiting, in epoch milliseconds; `None` for no limit.
    pub expires_at: Option<i64>,
}

impl Op {
    fn invalid(&self, reason: impl Into<String>) -> Error {
        Error::Invalid {
            op: self.op.clone(),
            id: self.id.clone(),
            reason: reason.into(),
        }
    }

    fn opt(&self, key: &str) -> Option<&Value> {
        self.opts.as_ref()?.get(key).filter(|v| !v.is_null())
    }

    fn opt_str(&self, key: &str) -> Option<&str> {
        self.opt(key)?.as_str()
    }

    /// When a `Sleep` op ends, from `opts.duration` or else `name`: a time string
    /// (`"1s"`, `"2h30m10s"`) counted from `now_ms`, or an RFC 3339 / ISO-8601 date.
    pub fn sleep_target(&self, now_ms: i64) -> Result<SleepTarget> {
        let spec = self
            .opt_str("duration")
            .or(self.name.as_deref())
            .ok_or_else(|| self.invalid("no duration in opts.duration or name"))?;
        time_spec(spec, now_ms)
            .map(SleepTarget::Until)
            .ok_or_else(|| self.invalid(format!("cannot read {spec:?} as a duration or a date")))
    }

    /// What a `WaitForEvent` op waits for, its timeout counted from `now_ms`.
    pub fn wait_for_event(&self, now_ms: i64) -> Result<WaitForEvent> {
        let event = self
            .opt_str("event")
            .or(self.name.as_deref())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.invalid("no event name in name or opts.event"))?
            .to_owned();
        let if_expr = match (self.opt_str("if"), self.opt_str("match")) {
            (Some(expr), _) if !expr.is_empty() => Some(expr.to_owned()),
            (_, Some(field)) if !field.is_empty() => {
                let field = field.strip_prefix("event.").unwrap_or(field);
                Some(format!("event.{field} == async.{field}"))
            }
            _ => None,
        };
        let timeout = self
            .opt_str("timeout")
            .ok_or_else(|| self.invalid("no opts.timeout"))?;
        let expires_at = time_spec(timeout, now_ms)
            .ok_or_else(|| self.invalid(format!("cannot read timeout {timeout:?}")))?;
        Ok(WaitForEvent {
            event,
            if_expr,
            expires_at,
        })
    }

    /// What an `InvokeFunction` op invokes; its optional timeout counted from `now_ms`.
    pub fn invoke_function(&self, now_ms: i64) -> Result<InvokeFunction> {
        let function_id = self
            .opt_str("function_id")
            .filter(|s| !s.is_empty())
            .ok_or_else(|| self.invalid("no opts.function_id"))?
            .to_owned();
        let payload = match self.opt("payload") {
            Some(p) => InvokePayload::deserialize(p)
                .map_err(|e| self.invalid(format!("bad opts.payload: {e}")))?,
            None => InvokePayload::default(),
        };
        let expires_at = match self.opt_str("timeout") {
            Some(t) => Some(
                time_spec(t, now_ms)
                    .ok_or_else(|| self.invalid(format!("cannot read timeout {t:?}")))?,
            ),
            None => None,
        };
        Ok(InvokeFunction {
            function_id,
            payload: InvokePayload {
                data: if payload.data.is_null() {
                    Value::Object(Map::new())
                } else {
                    payload.data
                },
                ..payload
            },
            expires_at,
        })
    }
}

/// A time string from `now_ms`, or a date; strings of 10+ characters are tried as a
/// date first. Epoch milliseconds, or `None`.
fn time_spec(spec: &str, now_ms: i64) -> Option<i64> {
    let spec = spec.trim();
    let date = || -> Option<i64> {
        if let Ok(t) = DateTime::parse_from_rfc3339(spec) {
            return Some(t.timestamp_millis());
        }
        if let Ok(t) = spec.parse::<DateTime<Utc>>() {
            return Some(t.timestamp_millis());
        }
        for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
            if let Ok(t) = chrono::NaiveDateTime::parse_from_str(spec, fmt) {
                return Some(t.and_utc().timestamp_millis());
            }
        }
        NaiveDate::parse_from_str(spec, "%Y-%m-%d")
            .ok()
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_millis())
    };
    let duration = || {
        let d = parse_duration(spec).ok()?;
        Some(now_ms.saturating_add(i64::try_from(d.as_millis()).unwrap_or(i64::MAX)))
    };
    if spec.len() >= 10 {
        date().or_else(duration)
    } else {
        duration().or_else(date)
    }
}

/// Parses a 206 body: an array of ops (`[]` for none). A single op object is accepted too.
pub fn parse_ops(body: &[u8]) -> crate::Result<Vec<Op>> {
    let value: Value = serde_json::from_slice(body)?;
    Ok(match value {
        Value::Null => Vec::new(),
        Value::Object(_) => vec![Op::deserialize(&value)?],
        other => Vec::<Op>::deserialize(&other)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    // Ops as captured from TS v4 and Python 0.5.19 (stacks shortened).
    const TS_OPS: &str = r#"[
      {"displayName":"wait","op":"Sleep","id":"daaad336276d15594d0e765f96c17cd746bf4971","name":"1s","opts":{},"userland":{"id":"wait"},"data":null},
      {"displayName":"w","op":"WaitForEvent","id":"aff024fe4ab0fece4091de044c58c9ae4233383a","name":"demo/reply","opts":{"timeout":"1m","if":"async.data.id == event.data.id"},"userland":{"id":"w"},"data":null},
      {"op":"RunComplete","id":"0737c22d3bfae812339732d14d8c7dbd6dc4e09c","data":{"b":"B"}},
      {"displayName":"p1","op":"StepPlanned","id":"b78f576611ec06f96af3ca654c22172a5d746c40","name":"p1","opts":{},"userland":{"id":"p1"},"data":null},
      {"id":"b78f576611ec06f96af3ca654c22172a5d746c40","op":"StepRun","name":"p1","opts":{},"displayName":"p1","userland":{"id":"p1"},"data":"X","timing":{"a":1796396709603000000,"b":0}},
      {"displayName":"call-hello","op":"InvokeFunction","id":"e5071698f846db5f5aa5795ba2c563ad0c6baae5","opts":{"payload":{"data":{"id":"nested"}},"function_id":"probe-app-hello"},"userland":{"id":"call-hello"},"data":null},
      {"id":"e9d71f5ee7c92d6dc9e92ffdad17b8bd49418f98","op":"StepError","name":"b","opts":{},"displayName":"b","userland":{"id":"b"},"error":{"name":"Error","message":"step b exploded","stack":"Error: step b exploded\n    at file:///srv/probe/v4/app.mjs:31:51"}},
      {"id":"86f7e437faa5a7fce15d1ddcb9eaeaea377667b8","mode":"sync","op":"StepRun","name":"a","displayName":"a","userland":{"id":"a"},"opts":{},"rawArgs":["a",null],"hashedId":"86f7e437faa5a7fce15d1ddcb9eaeaea377667b8","promise":{},"fulfilled":true,"data":{"a":1,"id":"x1"}}
    ]"#;
    const PY_OPS: &str = r#"[
      {"displayName":"a","id":"86f7e437faa5a7fce15d1ddcb9eaeaea377667b8","name":"a","op":"StepRun","opts":null,"userland":{"id":"a","index":null},"data":{"a":1,"id":"x1"}},
      {"displayName":"wait","id":"daaad336276d15594d0e765f96c17cd746bf4971","name":"2026-12-04T15:05:17.633Z","op":"Sleep","opts":null,"userland":{"id":"wait","index":null},"data":null},
      {"displayName":"call-hello","id":"e5071698f846db5f5aa5795ba2c563ad0c6baae5","name":"call-hello","op":"InvokeFunction","opts":{"function_id":"probe-py-hello","payload":{"data":{"id":"nested"},"v":null},"timeout":null},"userland":{"id":"call-hello","index":null},"data":null},
      {"displayName":"b","id":"e9d71f5ee7c92d6dc9e92ffdad17b8bd49418f98","name":"b","op":"StepFailed","opts":null,"userland":{"id":"b","index":null},"error":{"code":"unknown","message":"step b exploded","name":"Exception","stack":"Traceback"},"data":null}
    ]"#;

    const NOW: i64 = 1_796_396_700_000;

    #[test]
    fn parses_captured_ops() {
        let ts = parse_ops(TS_OPS.as_bytes()).unwrap();
        let codes: Vec<&str> = ts.iter().map(|o| o.op.as_str()).collect();
        assert_eq!(
            codes,
            [
                "Sleep",
                "WaitForEvent",
                "RunComplete",
                "StepPlanned",
                "StepRun",
                "InvokeFunction",
                "StepError",
                "StepRun"
            ]
        );
        assert_eq!(ts[0].sleep_target(NOW), Ok(SleepTarget::Until(NOW + 1_000)));
        assert_eq!(
            ts[1].wait_for_event(NOW),
            Ok(WaitForEvent {
                event: "demo/reply".into(),
                if_expr: Some("async.data.id == event.data.id".into()),
                expires_at: NOW + 60_000,
            })
        );
        assert_eq!(ts[2].data, Some(json!({"b": "B"})));
        assert_eq!(ts[4].data, Some(json!("X")));
        let invoke = ts[5].invoke_function(NOW).unwrap();
        assert_eq!(invoke.function_id, "probe-app-hello");
        assert_eq!(invoke.payload.data, json!({"id": "nested"}));
        assert_eq!(invoke.expires_at, None);
        let err = ts[6].error.as_ref().unwrap();
        assert_eq!(
            (err.name.as_str(), err.message.as_str()),
            ("Error", "step b exploded")
        );
        assert_eq!(
            ts[7].data,
            Some(json!({"a": 1, "id": "x1"})),
            "internal fields ignored"
        );

        let py = parse_ops(PY_OPS.as_bytes()).unwrap();
        assert_eq!(py[0].opts, None);
        assert_eq!(
            py[0].userland,
            Some(Userland {
                id: Some("a".into()),
                index: None
            })
        );
        let until = DateTime::parse_from_rfc3339("2026-12-04T15:05:17.633Z").unwrap();
        assert_eq!(
            py[1].sleep_target(NOW),
            Ok(SleepTarget::Until(until.timestamp_millis()))
        );
        let invoke = py[2].invoke_function(NOW).unwrap();
        assert_eq!(
            (invoke.function_id.as_str(), invoke.expires_at),
            ("probe-py-hello", None)
        );
        assert_eq!(invoke.payload.v, None);
        assert_eq!(py[3].op, Opcode::StepFailed);
        assert_eq!(
            py[3].error.as_ref().unwrap().code.as_deref(),
            Some("unknown")
        );

        assert!(parse_ops(b"[]").unwrap().is_empty());
        assert_eq!(parse_ops(br#"{"op":"StepRun","id":"x"}"#).unwrap().len(), 1);
        assert!(parse_ops(b"not json").is_err());
        assert!(parse_ops(b"[1]").is_err());
    }

    #[test]
    fn opcodes_read_names_and_numbers() {
        let cases = [
            (json!("StepRun"), Opcode::StepRun),
            (json!("StepNotFound"), Opcode::StepNotFound),
            (json!("AIGateway"), Opcode::AIGateway),
            (json!(0), Opcode::None),
            (json!(2), Opcode::StepRun),
            (json!(5), Opcode::Sleep),
            (json!(12), Opcode::StepFailed),
            (json!(16), Opcode::DeferAbort),
            (json!(17), Opcode::Unknown("17".into())),
            (json!(-1), Opcode::Unknown("-1".into())),
            (json!("Teleport"), Opcode::Unknown("Teleport".into())),
            (json!(null), Opcode::None),
        ];
        for (wire, want) in cases {
            let got: Opcode = serde_json::from_value(wire.clone()).unwrap();
            assert_eq!(got, want, "{wire}");
        }
        for (i, op) in BY_NUMBER.iter().enumerate() {
            assert_eq!(Opcode::from_name(op.as_str()), *op);
            assert_eq!(Opcode::from_number(i as i64), *op);
            assert_eq!(serde_json::to_value(op).unwrap(), json!(op.as_str()));
        }
    }

    #[test]
    fn reads_sleep_wait_and_invoke_options() {
        let op = |v: Value| -> Op { serde_json::from_value(v).unwrap() };
        let sleeps = [
            (
                json!({"op": "Sleep", "id": "s", "name": "2h30m10s"}),
                Some(NOW + 9_010_000),
            ),
            (
                json!({"op": "Sleep", "id": "s", "name": "x", "opts": {"duration": "1w"}}),
                Some(NOW + 604_800_000),
            ),
            (
                json!({"op": "Sleep", "id": "s", "name": "2026-12-04T15:00:00+01:00"}),
                Some(1_796_392_800_000),
            ),
            (
                json!({"op": "Sleep", "id": "s", "name": "2026-12-04"}),
                Some(1_796_342_400_000),
            ),
            (
                json!({"op": "Sleep", "id": "s", "name": "1000000ms"}),
                Some(NOW + 1_000_000),
            ),
            (json!({"op": "Sleep", "id": "s", "name": "whenever"}), None),
            (json!({"op": "Sleep", "id": "s"}), None),
        ];
        for (v, want) in sleeps {
            let got = op(v.clone())
                .sleep_target(NOW)
                .ok()
                .map(|SleepTarget::Until(t)| t);
            assert_eq!(got, want, "{v}");
        }
        let wait = op(json!({"op": "WaitForEvent", "id": "w", "name": "w",
            "opts": {"event": "demo/reply", "match": "data.id", "timeout": "1h"}}))
        .wait_for_event(NOW)
        .unwrap();
        assert_eq!(wait.event, "demo/reply");
        assert_eq!(
            wait.if_expr.as_deref(),
            Some("event.data.id == async.data.id")
        );
        assert_eq!(wait.expires_at, NOW + 3_600_000);
        for bad in [
            json!({"op": "WaitForEvent", "id": "w", "name": "e"}),
            json!({"op": "WaitForEvent", "id": "w", "opts": {"timeout": "1m"}}),
            json!({"op": "WaitForEvent", "id": "w", "name": "e", "opts": {"timeout": "soon"}}),
        ] {
            assert!(op(bad.clone()).wait_for_event(NOW).is_err(), "{bad}");
        }
        let invoke = op(
            json!({"op": "InvokeFunction", "id": "i", "opts": {"function_id": "a-f",
            "payload": {"data": null, "v": "2", "meta": {"m": 1}}, "timeout": "10s"}}),
        )
        .invoke_function(NOW)
        .unwrap();
        assert_eq!(invoke.payload.data, json!({}));
        assert_eq!(invoke.payload.v.as_deref(), Some("2"));
        assert_eq!(invoke.expires_at, Some(NOW + 10_000));
        assert!(
            op(json!({"op": "InvokeFunction", "id": "i", "opts": {}}))
                .invoke_function(NOW)
                .is_err()
        );

        let err: StepErrorBody = serde_json::from_value(json!("plain")).unwrap();
        assert_eq!(err.to_string(), "Error: plain");
    }
}
