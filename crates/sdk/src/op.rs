//! The ops an SDK reports in a 206 response: one per new step.

use crate::error::ErrorBody;
use serde::Serialize;
use serde_json::{Map, Value};

/// An op's kind, as the wire spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub(crate) enum Opcode {
    StepRun,
    StepError,
    StepFailed,
    StepPlanned,
    Sleep,
    WaitForEvent,
    InvokeFunction,
}

/// A step's ids in user terms: the id given and its repeat index (absent for the first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub(crate) struct Userland {
    pub id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<u32>,
}

/// One op, serialised with the field names the official SDKs use.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub(crate) struct Op {
    pub id: String,
    pub op: Opcode,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub opts: Map<String, Value>,
    #[serde(rename = "displayName")]
    pub display_name: String,
    pub userland: Userland,
    /// `Some(Value::Null)` is sent as `"data": null`; `None` leaves the key out.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}
