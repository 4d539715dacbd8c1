//! Queue items: work due now or at a time, claimed under a lease.
//!
//! State machine (see ARCHITECTURE.md): an item is *available* (unleased) from
//! `available_at`; a claim leases it to one owner until `lease_expires_at`; the holder
//! heartbeats to extend the lease and ends it with a [`Commit`] (done, retry at a time,
//! or release). An expired lease is rescued: the item becomes available again with
//! `attempt + 1`. Every end is guarded by the lease token, so a stale holder gets
//! [`Error::LeaseLost`](crate::Error::LeaseLost).

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::{FunctionId, Millis, QueueItemId, RunId, WaitId};
use uuid::Uuid;

use crate::event::Publish;
use crate::run::{RunUpdate, StepRecord};
use crate::wait::NewWait;

/// What a queue item asks the scheduler to do. The store keeps it as text and never
/// interprets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum QueueKind {
    /// Call the SDK: `step_id` `None` means discovery (`stepId=step`), `Some(hash)`
    /// runs one planned step.
    Call,
    /// A sleep has ended: memoize `null` for `step_id`, then continue the run.
    Wake,
    /// A `waitForEvent` or invoke has timed out (payload names the wait).
    WaitTimeout,
    /// A cron trigger's tick (payload: the schedule and fire time).
    Cron,
    /// A debounce period has ended.
    Debounce,
    /// A batch is due to be flushed.
    Batch,
}

impl QueueKind {
    /// The text form stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            QueueKind::Call => "call",
            QueueKind::Wake => "wake",
            QueueKind::WaitTimeout => "wait_timeout",
            QueueKind::Cron => "cron",
            QueueKind::Debounce => "debounce",
            QueueKind::Batch => "batch",
        }
    }
}

impl std::str::FromStr for QueueKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "call" => QueueKind::Call,
            "wake" => QueueKind::Wake,
            "wait_timeout" => QueueKind::WaitTimeout,
            "cron" => QueueKind::Cron,
            "debounce" => QueueKind::Debounce,
            "batch" => QueueKind::Batch,
            other => return Err(format!("unknown queue kind {other:?}")),
        })
    }
}

/// An item to enqueue.
#[derive(Debug, Clone, PartialEq)]
pub struct NewQueueItem {
    pub kind: QueueKind,
    pub run_id: Option<RunId>,
    pub function_id: Option<FunctionId>,
    pub step_id: Option<String>,
    /// Kind-specific details.
    pub payload: Value,
    /// Not claimable before this time.
    pub available_at: Millis,
    /// Lower runs first among due items.
    pub priority: i32,
    /// Flow-control keys the claim path will honour (concurrency limits).
    pub concurrency_keys: Vec<String>,
    /// When set, enqueueing is a no-op if an item with the same key exists (cron
    /// ticks, debounce timers).
    pub dedupe_key: Option<String>,
}

impl NewQueueItem {
    /// A call item for a run, due at `at`, with defaults for everything else.
    pub fn call(
        run_id: RunId,
        function_id: FunctionId,
        step_id: Option<String>,
        at: Millis,
    ) -> Self {
        Self {
            kind: QueueKind::Call,
            run_id: Some(run_id),
            function_id: Some(function_id),
            step_id,
            payload: Value::Null,
            available_at: at,
            priority: 0,
            concurrency_keys: Vec::new(),
            dedupe_key: None,
        }
    }
}

/// A token proving a lease; a new one on every claim.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct LeaseToken(pub Uuid);

/// A claimed item's lease, as the holder keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LeaseRef {
    pub item: QueueItemId,
    pub token: LeaseToken,
}

/// A queue item.
#[derive(Debug, Clone, PartialEq)]
pub struct QueueItem {
    pub id: QueueItemId,
    pub kind: QueueKind,
    pub run_id: Option<RunId>,
    pub function_id: Option<FunctionId>,
    pub step_id: Option<String>,
    pub payload: Value,
    pub available_at: Millis,
    pub priority: i32,
    /// 0-based; increased by a retry or a rescued lease.
    pub attempt: i32,
    pub concurrency_keys: Vec<String>,
    pub dedupe_key: Option<String>,
    /// Last error recorded by a retry.
    pub last_error: Option<Value>,
    pub lease_owner: Option<String>,
    pub lease_token: Option<LeaseToken>,
    pub lease_expires_at: Option<Millis>,
    pub created_at: Millis,
}

impl QueueItem {
    /// The lease, if the item is claimed.
    pub fn lease(&self) -> Option<LeaseRef> {
        self.lease_token.map(|token| LeaseRef {
            item: self.id,
            token,
        })
    }
}

/// A claim request: lease up to `limit` due, unleased items, in
/// `priority, available_at, id` order.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    /// Who holds the leases (node id), for operators.
    pub owner: String,
    pub limit: u32,
    /// Lease length.
    pub lease_ms: i64,
    pub now: Millis,
}

/// How a [`Commit`] ends the leased item.
#[derive(Debug, Clone, PartialEq)]
pub enum Disposition {
    /// Done: the item is deleted.
    Done,
    /// Try again at `at` with `attempt + 1`, recording `error`.
    Retry { at: Millis, error: Option<Value> },
    /// Give the item back unchanged (same attempt), available at `at` (shutdown).
    Release { at: Millis },
    /// Keep the lease and turn the item, in place, into `next` with attempt 0: its
    /// kind, step, payload and concurrency keys. Everything indexed stays as it is
    /// (lease, `available_at`, priority, `dedupe_key`, run, function), so on Postgres
    /// the update can be a HOT one; heartbeats go on extending the lease. The holder
    /// carries on with the item in the same dispatch, so a run's next call needs no
    /// claim; should the holder die, the item is rescued as `next`.
    Continue { next: Box<NewQueueItem> },
}

/// Everything one attempt's outcome writes, atomically, guarded by the lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    pub lease: LeaseRef,
    pub disposition: Disposition,
    /// Apply the writes below only if this wait still exists (and delete it); used by
    /// timeouts so that an event and its timeout never both resume a run. When the
    /// wait is gone the item is still ended by `disposition` and the result is
    /// [`CommitResult::Skipped`].
    pub require_wait: Option<WaitId>,
    pub run: Option<(RunId, RunUpdate)>,
    pub steps: Vec<StepRecord>,
    pub enqueue: Vec<NewQueueItem>,
    pub waits: Vec<NewWait>,
    /// Events emitted by this outcome (`inngest/function.finished`, `…failed`,
    /// `sendEvent`, invoke), with their fan-out.
    pub publish: Vec<Publish>,
}

impl Commit {
    /// A commit that only ends the item.
    pub fn new(lease: LeaseRef, disposition: Disposition) -> Self {
        Self {
            lease,
            disposition,
            require_wait: None,
            run: None,
            steps: Vec::new(),
            enqueue: Vec::new(),
            waits: Vec::new(),
            publish: Vec::new(),
        }
    }
}

/// The result of one commit in a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitResult {
    Applied,
    /// The item was ended but `require_wait` was gone, so nothing else was written.
    Skipped,
    /// The lease was not held: nothing was written.
    LeaseLost,
}

/// Queue depth, for health and the dashboard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueStats {
    pub due: i64,
    pub scheduled: i64,
    pub leased: i64,
}
