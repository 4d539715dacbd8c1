//! Events and the fan-out a publish writes with them.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::{EventId, Millis, RunId, WaitId};

use crate::queue::NewQueueItem;
use crate::run::{NewRun, StepRecord};

/// How long an event's external `id` dedupes later events with the same id.
pub const DEDUPE_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

/// A stored event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Internal id (ULID).
    pub id: EventId,
    /// The sender's `id`, an idempotency key deduping for 24 h.
    pub external_id: Option<String>,
    pub name: String,
    pub data: Value,
    /// Deprecated `user` object; `{}` when absent.
    pub user: Value,
    /// The sender's schema version `v`.
    pub version: Option<String>,
    /// Event time (`ts`).
    pub ts: Millis,
    pub received_at: Millis,
}

impl Event {
    /// The event as SDKs receive it in a call request.
    pub fn to_sdk_json(&self) -> Value {
        let mut obj = serde_json::Map::new();
        obj.insert("name".into(), Value::String(self.name.clone()));
        obj.insert("data".into(), self.data.clone());
        obj.insert(
            "id".into(),
            Value::String(
                self.external_id
                    .clone()
                    .unwrap_or_else(|| self.id.to_string()),
            ),
        );
        obj.insert("ts".into(), Value::from(self.ts.0));
        obj.insert("user".into(), self.user.clone());
        if let Some(v) = &self.version {
            obj.insert("v".into(), Value::String(v.clone()));
        }
        Value::Object(obj)
    }
}

/// One event to publish, with everything it causes. Written in one transaction with
/// the other publishes of the same call. If the event is a duplicate (same internal id
/// already stored, or same external id within the dedupe window), nothing of it is
/// written: no runs, resumes or cancellations.
#[derive(Debug, Clone, PartialEq)]
pub struct Publish {
    pub event: Event,
    /// Runs the event triggers, each with its first queue item.
    pub runs: Vec<NewRun>,
    /// Waits the event satisfies.
    pub resumes: Vec<Resume>,
    /// Runs the event cancels.
    pub cancels: Vec<RunId>,
}

/// Whether a batch can go in as plain inserts, with nothing to look up first: no
/// external ids (no dedupe window), no resumes or cancels, no waits on new runs, no
/// event id twice. Backends write such batches in one statement.
pub fn is_plain(batch: &[Publish]) -> bool {
    let mut ids = std::collections::HashSet::with_capacity(batch.len());
    batch.iter().all(|p| {
        p.event.external_id.is_none()
            && p.resumes.is_empty()
            && p.cancels.is_empty()
            && p.runs.iter().all(|r| r.waits.is_empty())
            && ids.insert(p.event.id)
    })
}

/// What [`crate::Store::publish_unwaited`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Unwaited {
    /// No wait was there: the batch is written, as [`crate::Store::publish`] would.
    Published(Vec<Published>),
    /// A wait for one of the names exists; nothing was written. The batch is handed
    /// back so its events can be planned again with the waits.
    Waited(Vec<Publish>),
}

/// The result of one [`Publish`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Published {
    pub id: EventId,
    /// The event was a duplicate; `id` is the id of the event already stored when it
    /// was deduped by external id.
    pub duplicate: bool,
}

/// Resume a run waiting on an event (`waitForEvent`, or an invoked child finishing).
/// Applied only if the wait still exists (it is deleted in the same transaction), so
/// a wait resumes at most once, whichever of event and timeout comes first.
#[derive(Debug, Clone, PartialEq)]
pub struct Resume {
    pub wait_id: WaitId,
    pub run_id: RunId,
    /// The step's result, stored as memoized (e.g. the raw matched event).
    pub step: StepRecord,
    /// The call that continues the run.
    pub next: NewQueueItem,
}

/// Filter for listing events, newest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EventFilter {
    /// Exact event names to include (any when empty).
    pub names: Vec<String>,
    /// Include internal `inngest/*` events.
    pub include_internal: bool,
    pub received_after: Option<Millis>,
    pub received_before: Option<Millis>,
    /// Resume after this event id (exclusive), from a previous page's `next`.
    pub cursor: Option<EventId>,
    pub limit: u32,
}
