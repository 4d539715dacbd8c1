//! [`Executor`]: the [`Dispatch`] that calls SDKs, and the run actions and SDK
//! endpoints the API exposes.

use serde_json::{Map, Value};
use sluice_core::{FunctionId, Millis, QueueItemId, RunId};
use sluice_protocol::FunctionConfig;
use sluice_scheduler::{Dispatch, Flight};
use sluice_store::{
    Commit, CommitResult, Disposition, DynStore, LeaseRef, NewQueueItem, QueueItem, QueueKind,
    RunState, StepStatus,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::checkpoint::{CheckpointRequest, Flights};
use crate::ending::{Ended, Ending, end_events};
use crate::fanout::FanOut;
use crate::options::{ExecutorOptions, Mode};
use crate::outcome::{self, Attempt, Plan};
use crate::reply::{self, Signer};
use crate::request::{self, CallInput, Target};
use crate::{Error, Result};

/// How long an idle keep-alive connection to an SDK is reused. Node's HTTP server
/// (Express, Next.js, Fastify on Node) and uvicorn close idle connections after 5 s;
/// a call sent on a connection the app is closing at that moment fails in transit and
/// would count as a failed attempt. Below 5 s, Sluice lets go first.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// How long a function's call target is cached.
const TARGET_TTL: Duration = Duration::from_secs(2);

/// Calls function endpoints for claimed queue items. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Executor {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    opts: ExecutorOptions,
    store: DynStore,
    fanout: Arc<dyn FanOut>,
    client: reqwest::Client,
    targets: Mutex<HashMap<FunctionId, (Arc<Target>, Instant)>>,
    flights: Flights,
    /// Runs with a post-parallel discovery in flight on this node, by the item making
    /// it, until its commit is written (see [`Executor::claim_discovery`]).
    discovering: Mutex<HashMap<RunId, (QueueItemId, Instant)>>,
}

/// How long a discovery mark holds when its commit never reports back (the call was
/// abandoned or its commit failed): then another discovery may go ahead.
const DISCOVERY_MARK_TTL: Duration = Duration::from_secs(60);

impl Executor {
    /// Builds the executor and its pooled HTTP client.
    pub fn new(opts: ExecutorOptions, store: DynStore, fanout: Arc<dyn FanOut>) -> Result<Self> {
        opts.validate()?;
        let client = reqwest::Client::builder()
            .connect_timeout(opts.connect_timeout)
            .timeout(opts.request_timeout)
            .pool_max_idle_per_host(opts.pool_idle_per_host)
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .tcp_nodelay(true)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Client(e.to_string()))?;
        Ok(Self {
            inner: Arc::new(Inner {
                opts,
                store,
                fanout,
                client,
                targets: Mutex::new(HashMap::new()),
                flights: Flights::default(),
                discovering: Mutex::default(),
            }),
        })
    }

    /// The options it runs with.
    pub fn options(&self) -> &ExecutorOptions {
        &self.inner.opts
    }

    /// Checks an SDK's `Authorization` header (start mode only): the Bearer hash of
    /// the signing key or its fallback.
    pub fn authorize(&self, authorization: Option<&str>) -> Result<()> {
        if self.inner.opts.mode == Mode::Dev {
            return Ok(());
        }
        let keys = self.inner.opts.keys();
        match authorization {
            Some(h) if sluice_protocol::signing::bearer_matches(h, &keys) => Ok(()),
            _ => Err(Error::Unauthorized),
        }
    }

    /// `POST /v1/checkpoint/{run}/async`: keeps the posted steps with the in-flight
    /// call they belong to. [`Error::Stale`] when that call is not in flight here.
    pub fn checkpoint(&self, run_id: RunId, request: CheckpointRequest) -> Result<usize> {
        self.inner
            .flights
            .checkpoint(run_id, request, &self.inner.opts.limits, Millis::now())
    }

    /// `GET /v0/runs/{id}/actions`: the run's saved steps, as a call's `steps`.
    pub async fn run_actions(&self, run_id: RunId) -> Result<Map<String, Value>> {
        let state = self.inner.store.run_state(run_id).await?;
        Ok(request::memoized(&state).1)
    }

    /// `GET /v0/runs/{id}/batch`: the run's events, as a call's `events`.
    pub async fn run_events(&self, run_id: RunId) -> Result<Vec<Value>> {
        let state = self.inner.store.run_state(run_id).await?;
        Ok(state.events.iter().map(|e| e.to_sdk_json()).collect())
    }

    /// Cancels a run that has not ended and emits `inngest/function.cancelled` (and
    /// `…finished`). Returns false when the run had already ended.
    pub async fn cancel(&self, run_id: RunId) -> Result<bool> {
        let store = &self.inner.store;
        let now = Millis::now();
        let cancelled = store.cancel_runs(&[run_id], now).await?;
        if cancelled.is_empty() {
            return Ok(false);
        }
        let state = store.run_state(run_id).await?;
        let slug = match store.get_function(state.run.function_id).await {
            Ok(f) => f.slug,
            Err(_) => state.run.function_id.to_string(),
        };
        let events: Vec<Value> = state.events.iter().map(|e| e.to_sdk_json()).collect();
        let emitted = end_events(Ended {
            run: &state.run,
            function_slug: &slug,
            events: &events,
            ending: &Ending::Cancelled,
            now,
        });
        let publish = self
            .inner
            .fanout
            .fan_out(emitted, now)
            .await
            .map_err(Error::FanOut)?;
        store.publish(publish, now).await?;
        Ok(true)
    }

    /// Starts a new run of the same function from the same events. Returns its id.
    pub async fn rerun(&self, run_id: RunId) -> Result<RunId> {
        let store = &self.inner.store;
        let run = store.get_run(run_id).await?;
        let events = store.get_events(&run.event_ids).await?;
        let now = Millis::now();
        let planned = self
            .inner
            .fanout
            .rerun(&run, &events, now)
            .await
            .map_err(Error::FanOut)?;
        let id = planned.id;
        store.create_runs(vec![planned]).await?;
        Ok(id)
    }

    async fn target(&self, id: FunctionId) -> Result<Arc<Target>> {
        if let Some((t, at)) = self.inner.targets.lock().expect("not poisoned").get(&id)
            && at.elapsed() < TARGET_TTL
        {
            return Ok(t.clone());
        }
        let function = self.inner.store.get_function(id).await?;
        let config = FunctionConfig::from_value(function.config.clone())
            .map_err(|e| Error::BadRequest(e.to_string()))?;
        let target = Arc::new(Target {
            id,
            slug: function.slug.clone(),
            url: config.step_url().unwrap_or_default().to_owned(),
            max_attempts: config.max_attempts(),
        });
        self.inner
            .targets
            .lock()
            .expect("not poisoned")
            .insert(id, (target.clone(), Instant::now()));
        Ok(target)
    }

    /// Marks `item` as the run's post-parallel discovery on this node; false when
    /// another item's discovery is in flight or its commit is not yet written (its
    /// state read may predate the other's commit, so it must not plan again). The
    /// mark is cleared in [`Dispatch::committed`], or expires.
    fn claim_discovery(&self, run: RunId, item: QueueItemId) -> bool {
        let mut marks = self.inner.discovering.lock().expect("not poisoned");
        match marks.get(&run) {
            Some((holder, at)) if *holder != item && at.elapsed() < DISCOVERY_MARK_TTL => false,
            _ => {
                marks.insert(run, (item, Instant::now()));
                true
            }
        }
    }

    /// Gives the item back for later: something this node relies on failed.
    fn release(lease: LeaseRef, why: &str) -> Commit {
        tracing::warn!(reason = why, "releasing item for a later attempt");
        Commit::new(
            lease,
            Disposition::Release {
                at: Millis::now().plus_ms(1_000),
            },
        )
    }

    async fn call(&self, item: &QueueItem, lease: LeaseRef, state: &RunState) -> Commit {
        let opts = &self.inner.opts;
        let parallel = item.payload.get("parallel").and_then(Value::as_bool) == Some(true);
        if parallel
            && state
                .steps
                .iter()
                .any(|s| matches!(s.status, StepStatus::Planned | StepStatus::Retrying))
        {
            // Other planned steps are still running; the last one to finish resumes.
            return Commit::new(lease, Disposition::Done);
        }
        // Parallel steps that finish together each queue a discovery; one in flight
        // here already sees every result, so the others are dropped.
        if parallel && !self.claim_discovery(state.run.id, item.id) {
            return Commit::new(lease, Disposition::Done);
        }
        let target = match self.target(state.run.function_id).await {
            Ok(t) => t,
            Err(Error::Store(sluice_store::Error::NotFound(_))) => {
                let gone = Target {
                    id: state.run.function_id,
                    slug: state.run.function_id.to_string(),
                    url: String::new(),
                    max_attempts: 1,
                };
                let plan = outcome::fail(
                    self.attempt(state, item, lease, &gone, Err(String::new()), Vec::new()),
                    "the function is no longer registered".into(),
                );
                return self.publish(plan, lease).await;
            }
            Err(e) => return Self::release(lease, &e.to_string()),
        };
        let built = request::build(CallInput {
            state,
            item,
            target: &target,
            env: &opts.env,
            checkpointing: opts.checkpointing,
            limits: &opts.limits,
        });
        let call = match built {
            Ok(call) => call,
            Err(limit) => {
                let plan = outcome::fail(
                    self.attempt(state, item, lease, &target, Err(String::new()), Vec::new()),
                    limit.to_string(),
                );
                return self.publish(plan, lease).await;
            }
        };
        let keys = if opts.mode == Mode::Start {
            opts.keys()
        } else {
            Vec::new()
        };
        let signer = Signer {
            key: if opts.mode == Mode::Start {
                opts.signing_key.as_ref()
            } else {
                None
            },
            verify_with: &keys,
            server_kind: if opts.mode == Mode::Start {
                "cloud"
            } else {
                "dev"
            },
        };
        let step_id = item.step_id.as_deref().unwrap_or("step");
        let flight = self.inner.flights.start(item.id, lease.token, state.run.id);
        let result = reply::send(
            &self.inner.client,
            &call,
            signer,
            &state.run.id.to_string(),
            step_id,
            opts.max_reply_bytes,
        )
        .await;
        let checkpointed = flight.finish();
        if let Err(e) = &result {
            tracing::info!(error = %e, "call failed");
        }
        let missing = match &result {
            Ok(reply) if reply.status == 206 => self.missing_invoke_targets(&reply.body).await,
            _ => Vec::new(),
        };
        let mut attempt = self.attempt(state, item, lease, &target, result, checkpointed);
        attempt.missing_functions = missing;
        let plan = outcome::plan(attempt, &mut rand::thread_rng());
        if let Some(Ending::Failed(_)) = &plan.ending {
            tracing::info!("run failed");
        }
        self.publish(plan, lease).await
    }

    fn attempt<'a>(
        &'a self,
        state: &'a RunState,
        item: &'a QueueItem,
        lease: LeaseRef,
        target: &'a Target,
        result: std::result::Result<reply::Reply, String>,
        checkpointed: Vec<sluice_store::StepRecord>,
    ) -> Attempt<'a> {
        Attempt {
            state,
            item,
            lease,
            target,
            limits: &self.inner.opts.limits,
            retry: &self.inner.opts.retry,
            result,
            checkpointed,
            missing_functions: Vec::new(),
            now: Millis::now(),
        }
    }

    /// The functions a 206 invokes that are not registered (one read per invoke).
    async fn missing_invoke_targets(&self, body: &[u8]) -> Vec<String> {
        let Ok(ops) = sluice_protocol::op::parse_ops(body) else {
            return Vec::new();
        };
        let mut missing = Vec::new();
        for op in ops
            .iter()
            .filter(|o| o.op == sluice_protocol::Opcode::InvokeFunction)
        {
            let Ok(inv) = op.invoke_function(0) else {
                continue;
            };
            if let Err(sluice_store::Error::NotFound(_)) = self
                .inner
                .store
                .get_function_by_slug(&inv.function_id)
                .await
            {
                missing.push(inv.function_id);
            }
        }
        missing
    }

    /// Fans out the plan's events into its commit.
    async fn publish(&self, plan: Plan, lease: LeaseRef) -> Commit {
        let Plan {
            mut commit, emit, ..
        } = plan;
        if !emit.is_empty() {
            match self.inner.fanout.fan_out(emit, Millis::now()).await {
                Ok(publish) => commit.publish = publish,
                Err(e) => return Self::release(lease, &format!("fan-out failed: {e}")),
            }
        }
        commit
    }
}

#[async_trait::async_trait]
impl Dispatch for Executor {
    fn committed(&self, item: &QueueItem, _result: CommitResult) {
        if let Some(run) = item.run_id {
            let mut marks = self.inner.discovering.lock().expect("not poisoned");
            if marks
                .get(&run)
                .is_some_and(|(holder, _)| *holder == item.id)
            {
                marks.remove(&run);
            }
        }
    }

    async fn dispatch(&self, item: QueueItem, flight: &Flight) -> Commit {
        let Some(lease) = item.lease() else {
            unreachable_lease(&item);
            return Commit::new(
                sluice_store::LeaseRef {
                    item: item.id,
                    token: sluice_store::LeaseToken(uuid::Uuid::nil()),
                },
                Disposition::Done,
            );
        };
        if !matches!(
            item.kind,
            QueueKind::Call | QueueKind::Wake | QueueKind::WaitTimeout
        ) {
            // Not ours (cron, debounce, batch): never drop it; route it with
            // `sluice_scheduler::Routes`.
            tracing::error!(
                kind = item.kind.as_str(),
                "the executor does not handle this kind; released for 30s"
            );
            let at = Millis::now().plus_ms(30_000);
            return Commit::new(lease, Disposition::Release { at });
        }
        let Some(run_id) = item.run_id else {
            tracing::warn!(kind = item.kind.as_str(), "item without a run; dropped");
            return Commit::new(lease, Disposition::Done);
        };
        let state = match self.inner.store.run_state(run_id).await {
            Ok(state) => state,
            Err(sluice_store::Error::NotFound(_)) => return Commit::new(lease, Disposition::Done),
            Err(e) => return Self::release(lease, &e.to_string()),
        };
        if state.run.status.is_terminal() {
            return Commit::new(lease, Disposition::Done);
        }
        match item.kind {
            QueueKind::Call => self.run_on(item, lease, state, flight, Vec::new()).await,
            QueueKind::Wake => self.wake(item, lease, state, flight).await,
            _ => outcome::resume(&item, lease, &state, Millis::now()),
        }
    }
}

impl Executor {
    /// A sleep has ended: memoize `null` for its step and continue the run in the same
    /// dispatch, so a timer costs one claim, not two (sleeps wake on time). The memo
    /// rides in the call's commit; when that call is retried, the retried wake
    /// memoizes again (a no-op: memoized results are final) and calls again.
    async fn wake(
        &self,
        item: QueueItem,
        lease: LeaseRef,
        mut state: RunState,
        flight: &Flight,
    ) -> Commit {
        let now = Millis::now();
        let memo = outcome::resume(&item, lease, &state, now);
        if memo.steps.is_empty() {
            return memo;
        }
        state.apply(&memo.steps, None, now);
        let discovery = QueueItem {
            kind: QueueKind::Call,
            step_id: None,
            payload: Value::Null,
            ..item
        };
        self.run_on(discovery, lease, state, flight, memo.steps)
            .await
    }

    /// Calls the SDK for `item` and, while each reply only saved a step and asks to
    /// go on (a discovery call due now), saves that step keeping the lease
    /// ([`Disposition::Continue`]) and calls again at once: a run's steps cost one
    /// claim and one state read in all, not one each. `carry` (a woken sleep's memo)
    /// is written with the first commit. Bounded by [`MAX_CONTINUES`] and
    /// [`CONTINUE_BUDGET`], after which the next call goes through the queue again.
    async fn run_on(
        &self,
        mut item: QueueItem,
        lease: LeaseRef,
        mut state: RunState,
        flight: &Flight,
        mut carry: Vec<sluice_store::StepRecord>,
    ) -> Commit {
        let started = Instant::now();
        let mut continues = 0;
        loop {
            let mut commit = self.call(&item, lease, &state).await;
            if !carry.is_empty() {
                commit.steps.splice(0..0, carry.drain(..));
            }
            let next = match continuation(&commit, &state) {
                Some(next)
                    if flight.can_save()
                        && continues < MAX_CONTINUES
                        && started.elapsed() < CONTINUE_BUDGET =>
                {
                    next
                }
                _ => return commit,
            };
            continues += 1;
            commit.enqueue.clear();
            commit.disposition = Disposition::Continue {
                next: Box::new(next.clone()),
            };
            let steps = commit.steps.clone();
            let update = commit.run.as_ref().map(|(_, u)| u.clone());
            match flight.save(commit).await {
                Ok(CommitResult::Applied) => {}
                Ok(_) => {
                    // Cancelled (or rescued elsewhere) meanwhile: nothing more to do;
                    // the final commit will find the lease gone as well.
                    tracing::debug!("lease lost while continuing");
                    return Commit::new(lease, Disposition::Done);
                }
                Err(e) => return Self::release(lease, &format!("could not save a step: {e}")),
            }
            state.apply(&steps, update.as_ref(), Millis::now());
            item = QueueItem {
                kind: next.kind,
                step_id: next.step_id,
                payload: next.payload,
                attempt: 0,
                concurrency_keys: next.concurrency_keys,
                ..item
            };
        }
    }
}

/// At most this many calls continue one dispatch (see [`Executor::run_on`]).
const MAX_CONTINUES: usize = 1_000;
/// A dispatch stops continuing after this long, so one run cannot keep a slot.
const CONTINUE_BUDGET: Duration = Duration::from_secs(30);

/// The next call when `commit` only saves steps and continues its run at once: one
/// discovery call (not after parallel steps) due now, nothing else queued, no waits,
/// the run not ending.
fn continuation(commit: &Commit, state: &RunState) -> Option<NewQueueItem> {
    let [next] = commit.enqueue.as_slice() else {
        return None;
    };
    let ends_run = commit
        .run
        .as_ref()
        .and_then(|(_, u)| u.status)
        .is_some_and(|s| s.is_terminal());
    let parallel = next.payload.get("parallel").and_then(Value::as_bool) == Some(true);
    let plain = commit.disposition == Disposition::Done
        && commit.require_wait.is_none()
        && commit.waits.is_empty()
        && !ends_run;
    let discovery = next.kind == QueueKind::Call
        && next.run_id == Some(state.run.id)
        && next.step_id.is_none()
        && !parallel
        && next.available_at <= Millis::now();
    (plain && discovery).then(|| next.clone())
}

fn unreachable_lease(item: &QueueItem) {
    tracing::error!(item = item.id.0, "dispatched an item without a lease");
}
