//! Waits: a run waiting for an event (`waitForEvent`), an invoked function to finish,
//! or a cancellation event.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::{Millis, RunId, WaitId};

/// What a wait is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaitKind {
    /// `step.waitForEvent`: resumes the run's step with the matched event.
    Event,
    /// `step.invoke`: resumes the run's step when the child run finishes
    /// (`inngest/function.finished` with the wait's correlation id).
    Invoke,
    /// A `cancel[]` entry of the function: cancels the run on a matching event.
    Cancel,
}

impl WaitKind {
    /// The text form stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            WaitKind::Event => "event",
            WaitKind::Invoke => "invoke",
            WaitKind::Cancel => "cancel",
        }
    }
}

impl std::str::FromStr for WaitKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "event" => WaitKind::Event,
            "invoke" => WaitKind::Invoke,
            "cancel" => WaitKind::Cancel,
            other => return Err(format!("unknown wait kind {other:?}")),
        })
    }
}

/// A wait to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewWait {
    pub id: WaitId,
    pub run_id: RunId,
    pub kind: WaitKind,
    /// The step that waits (none for cancellation watches).
    pub step_id: Option<String>,
    /// The event name that can satisfy the wait.
    pub event_name: String,
    /// CEL condition with `event` (the run's trigger) and `async` (the new event).
    pub expression: Option<String>,
    /// For invokes: the correlation id the child's finish event carries.
    pub correlation_id: Option<String>,
    /// The run's triggering event, bound as `event` when evaluating.
    pub trigger_event: Value,
    /// The wait ends (times out) at this time, if any.
    pub expires_at: Option<Millis>,
    pub created_at: Millis,
}

/// A stored wait.
pub type Wait = NewWait;
