//! Runs and their steps.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::{EventId, FunctionId, Millis, RunId};

pub use sluice_core::RunStatus;

use crate::queue::NewQueueItem;
use crate::wait::NewWait;

/// A function run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Run {
    pub id: RunId,
    pub function_id: FunctionId,
    pub status: RunStatus,
    /// The triggering events (one, or several for a batch), in order.
    pub event_ids: Vec<EventId>,
    /// The function's return value, once completed.
    pub output: Option<Value>,
    /// The final error, once failed or cancelled.
    pub error: Option<Value>,
    /// Request version the SDK chose on the first call (`x-inngest-req-version`);
    /// `None` until then, when calls send `-1`.
    pub request_version: Option<i32>,
    /// Set once an SDK reply carried several ops: from then on steps are planned first.
    pub disable_immediate_execution: bool,
    /// Set when this run was started by `step.invoke`: the caller's correlation id.
    pub correlation_id: Option<String>,
    /// The run this one re-runs, when started by a rerun.
    pub rerun_of: Option<RunId>,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
}

/// A run to create, with its first queue item and the waits it starts with (cancel
/// watches from the function's `cancel[]`).
#[derive(Debug, Clone, PartialEq)]
pub struct NewRun {
    pub id: RunId,
    pub function_id: FunctionId,
    pub event_ids: Vec<EventId>,
    pub correlation_id: Option<String>,
    pub rerun_of: Option<RunId>,
    pub created_at: Millis,
    pub first: NewQueueItem,
    pub waits: Vec<NewWait>,
}

/// A partial update of a run; `None` fields are left as they are. Setting a terminal
/// status also deletes the run's other queue items and its waits.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunUpdate {
    pub status: Option<RunStatus>,
    pub output: Option<Value>,
    pub error: Option<Value>,
    pub request_version: Option<i32>,
    pub disable_immediate_execution: Option<bool>,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
}

impl RunUpdate {
    /// Folds a later update of the same run into this one: its `Some` fields win.
    pub fn merge(&mut self, later: &RunUpdate) {
        self.status = later.status.or(self.status);
        if later.output.is_some() {
            self.output = later.output.clone();
        }
        if later.error.is_some() {
            self.error = later.error.clone();
        }
        self.request_version = later.request_version.or(self.request_version);
        self.disable_immediate_execution = later
            .disable_immediate_execution
            .or(self.disable_immediate_execution);
        self.started_at = later.started_at.or(self.started_at);
        self.ended_at = later.ended_at.or(self.ended_at);
    }
}

/// Where a step stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Planned (parallel) and queued to run.
    Planned,
    /// Failed an attempt and waits for a retry.
    Retrying,
    /// Sleeping until a time.
    Sleeping,
    /// Waiting for an event.
    Waiting,
    /// Waiting for an invoked function.
    Invoking,
    /// Done with a result (memoized).
    Completed,
    /// Done with a final error (memoized as `{error}`).
    Failed,
}

impl StepStatus {
    /// The text form stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Planned => "planned",
            StepStatus::Retrying => "retrying",
            StepStatus::Sleeping => "sleeping",
            StepStatus::Waiting => "waiting",
            StepStatus::Invoking => "invoking",
            StepStatus::Completed => "completed",
            StepStatus::Failed => "failed",
        }
    }

    /// Whether the step has a memoized result SDKs receive in `steps`.
    pub fn is_memoized(self) -> bool {
        matches!(self, StepStatus::Completed | StepStatus::Failed)
    }
}

impl std::str::FromStr for StepStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "planned" => StepStatus::Planned,
            "retrying" => StepStatus::Retrying,
            "sleeping" => StepStatus::Sleeping,
            "waiting" => StepStatus::Waiting,
            "invoking" => StepStatus::Invoking,
            "completed" => StepStatus::Completed,
            "failed" => StepStatus::Failed,
            other => return Err(format!("unknown step status {other:?}")),
        })
    }
}

/// A step write: inserted, or merged into the existing row for `(run_id, step_id)`.
/// On merge every field is overwritten except `started_at` (kept when already set)
/// and `attempts` (the larger value wins). A memoized step (completed or failed) is
/// final: later writes to it are ignored, so a commit planned from stale state (two
/// discoveries racing after parallel steps) can never undo a stored result.
#[derive(Debug, Clone, PartialEq)]
pub struct StepRecord {
    pub run_id: RunId,
    /// The hashed step id (`sha1` of the user's id).
    pub step_id: String,
    /// Display name.
    pub name: String,
    /// The opcode that produced this record (`StepRun`, `Sleep`, …).
    pub op: String,
    pub status: StepStatus,
    /// What SDKs receive under `steps[step_id]` once memoized: `{"data":…}`,
    /// `{"error":…}`, a raw event, or `null`.
    pub result: Option<Value>,
    /// The last attempt's error, for the timeline (retries).
    pub error: Option<Value>,
    /// Attempts made so far.
    pub attempts: i32,
    /// Op options (sleep target, wait expression, invoke target), for the timeline.
    pub opts: Option<Value>,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
}

/// A stored step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub run_id: RunId,
    pub step_id: String,
    pub name: String,
    pub op: String,
    pub status: StepStatus,
    pub result: Option<Value>,
    pub error: Option<Value>,
    pub attempts: i32,
    pub opts: Option<Value>,
    pub created_at: Millis,
    pub started_at: Option<Millis>,
    pub ended_at: Option<Millis>,
}

/// Everything the executor needs to call a run's SDK: the run, its events in order,
/// and its steps ordered by completion (memoized ones first, by `ended_at`, then
/// `step_id`).
#[derive(Debug, Clone, PartialEq)]
pub struct RunState {
    pub run: Run,
    pub events: Vec<crate::event::Event>,
    pub steps: Vec<Step>,
}

impl RunState {
    /// Applies what a commit writes to this run (its step records and run update) the
    /// way a store does, so the state equals what [`Store::run_state`] would read back
    /// afterwards: records merge as [`StepRecord`] says (memoized steps are final),
    /// new steps get `created_at = now`, and steps are re-sorted (memoized first by
    /// `ended_at`, the rest by `created_at`, then `step_id`). Records of other runs
    /// are ignored.
    ///
    /// [`Store::run_state`]: crate::Store::run_state
    pub fn apply(&mut self, records: &[StepRecord], update: Option<&RunUpdate>, now: Millis) {
        for r in records.iter().filter(|r| r.run_id == self.run.id) {
            match self.steps.iter_mut().find(|s| s.step_id == r.step_id) {
                Some(s) if s.status.is_memoized() => {}
                Some(s) => {
                    s.name = r.name.clone();
                    s.op = r.op.clone();
                    s.status = r.status;
                    s.result = r.result.clone();
                    s.error = r.error.clone();
                    s.attempts = s.attempts.max(r.attempts);
                    s.opts = r.opts.clone();
                    s.started_at = s.started_at.or(r.started_at);
                    s.ended_at = r.ended_at;
                }
                None => self.steps.push(Step {
                    run_id: r.run_id,
                    step_id: r.step_id.clone(),
                    name: r.name.clone(),
                    op: r.op.clone(),
                    status: r.status,
                    result: r.result.clone(),
                    error: r.error.clone(),
                    attempts: r.attempts,
                    opts: r.opts.clone(),
                    created_at: now,
                    started_at: r.started_at,
                    ended_at: r.ended_at,
                }),
            }
        }
        self.steps.sort_by(|a, b| step_order(a).cmp(&step_order(b)));
        if let Some(u) = update {
            let run = &mut self.run;
            run.status = u.status.unwrap_or(run.status);
            if u.output.is_some() {
                run.output = u.output.clone();
            }
            if u.error.is_some() {
                run.error = u.error.clone();
            }
            run.request_version = u.request_version.or(run.request_version);
            run.disable_immediate_execution = u
                .disable_immediate_execution
                .unwrap_or(run.disable_immediate_execution);
            run.started_at = u.started_at.or(run.started_at);
            run.ended_at = u.ended_at.or(run.ended_at);
        }
    }
}

/// The order of a run's steps in a [`RunState`].
fn step_order(s: &Step) -> (bool, Option<Millis>, &str) {
    let memoized = s.status.is_memoized();
    let at = if memoized {
        s.ended_at
    } else {
        Some(s.created_at)
    };
    (!memoized, at, s.step_id.as_str())
}

/// Filter for listing runs, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunFilter {
    /// Statuses to include (any when empty).
    pub statuses: Vec<RunStatus>,
    pub function_id: Option<FunctionId>,
    pub created_after: Option<Millis>,
    pub created_before: Option<Millis>,
    /// Text search: matches a run whose id equals it, or one of whose triggering events
    /// has this id or a name containing it (case-sensitive).
    pub search: Option<String>,
    /// Resume after this run id (exclusive), from a previous page's `next`.
    pub cursor: Option<RunId>,
    pub limit: u32,
}

/// A page of results and the cursor for the next one.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next: Option<String>,
}
