//! [`Scheduler`] (the loops) and [`SchedulerHandle`] (what the rest of the node keeps).
//!
//! Tasks per node:
//! - the **claim loop**: claims due items in batches while there is capacity, then
//!   sleeps exactly until the next due item (`store.next_due`), a pushed wake-up
//!   (`store.subscribe`, or a same-node commit), or the slow safety poll;
//! - one task per claimed item running [`Dispatch::dispatch`], then handing its
//!   [`Commit`] to the group committer;
//! - the **heartbeat**: extends the leases of in-flight items, and drops the calls of
//!   items whose lease is gone (cancelled runs make no further calls);
//! - the **rescuer**, under a leader lease: re-queues expired leases, drops expired
//!   cancel watches; on the same leader, store housekeeping every second
//!   ([`Store::maintain`](sluice_store::Store::maintain));
//! - the **committers**: group commit (the private `committer` module).

use sluice_core::{Millis, QueueItemId};
use sluice_store::{Claim, Commit, CommitResult, Disposition, DynStore, LeaseRef, QueueItem};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::{AbortHandle, JoinHandle};
use tracing::Instrument;

use crate::committer::{Committer, Writer};
use crate::wake::Wake;
use crate::{Dispatch, Flight, Result, SchedulerOptions};

/// The leader lease the rescuer runs under.
pub const RESCUER_LEASE: &str = "scheduler.rescuer";

/// Starts a node's queue workers. See [`Scheduler::start`].
#[derive(Debug)]
pub struct Scheduler;

/// A cheap handle on a running scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerHandle {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    opts: SchedulerOptions,
    store: DynStore,
    handler: Arc<dyn Dispatch>,
    wake: Arc<Wake>,
    slots: Arc<Semaphore>,
    in_flight: Arc<AtomicUsize>,
    /// Whether this node held the rescuer lease at its last check.
    leading: AtomicBool,
    leases: Mutex<HashMap<QueueItemId, Held>>,
    committer: Committer,
    stop: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    writers: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Held {
    lease: LeaseRef,
    abort: Option<AbortHandle>,
}

impl Scheduler {
    /// Validates `opts`, subscribes to the store's wake-ups and starts the loops.
    pub async fn start(
        opts: SchedulerOptions,
        store: DynStore,
        handler: Arc<dyn Dispatch>,
    ) -> Result<SchedulerHandle> {
        opts.validate()?;
        let wake = Arc::new(Wake::new());
        let in_flight = Arc::new(AtomicUsize::new(0));
        let (committer, writers) = Committer::start(
            Writer {
                store: store.clone(),
                wake: wake.clone(),
                in_flight: in_flight.clone(),
                batch: opts.commit_batch,
                linger: opts.commit_linger,
            },
            opts.committers,
        );
        let (stop, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            slots: Arc::new(Semaphore::new(opts.concurrency)),
            opts,
            store: store.clone(),
            handler,
            wake: wake.clone(),
            in_flight,
            leading: AtomicBool::new(false),
            leases: Mutex::new(HashMap::new()),
            committer,
            stop,
            tasks: Mutex::new(Vec::new()),
            writers: Mutex::new(writers),
        });
        let signal = wake.clone();
        store.subscribe(Arc::new(move |at| signal.at(at))).await?;
        let tasks = vec![
            tokio::spawn(claim_loop(inner.clone())),
            tokio::spawn(rescue_loop(inner.clone())),
            tokio::spawn(maintain_loop(inner.clone())),
            tokio::spawn(heartbeat_loop(inner.clone())),
        ];
        *inner.tasks.lock().expect("not poisoned") = tasks;
        tracing::info!(node = %inner.opts.node_id, "scheduler started");
        Ok(SchedulerHandle { inner })
    }
}

impl SchedulerHandle {
    /// Tells the claim loop that items are available from `at` (e.g. after the API
    /// enqueued work outside a commit). The store's subscription usually does this.
    pub fn wake(&self, at: Millis) {
        self.inner.wake.at(at);
    }

    /// Calls in flight on this node.
    pub fn in_flight(&self) -> usize {
        self.inner.in_flight.load(Ordering::Relaxed)
    }

    /// Whether the lease of queue item `item` is currently held by this node for a
    /// call in flight (the checkpoint endpoint refuses steps of stale dispatches).
    pub fn holds(&self, item: QueueItemId) -> bool {
        self.inner
            .leases
            .lock()
            .expect("not poisoned")
            .contains_key(&item)
    }

    /// Stops claiming, lets in-flight calls finish within `shutdown_grace`, releases
    /// the items of those that don't, writes the last commits and returns. Idempotent.
    pub async fn shutdown(&self) {
        let inner = &self.inner;
        if inner.stop.send_replace(true) {
            // Someone else is (or was) shutting down; wait for them.
            while !inner.writers.lock().expect("not poisoned").is_empty() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            return;
        }
        // The claim loop and the rescuer end at once; the heartbeat (last) keeps the
        // leases of in-flight calls alive through the grace period.
        let mut tasks = std::mem::take(&mut *inner.tasks.lock().expect("not poisoned"));
        let heartbeat = tasks.pop();
        for task in tasks {
            let _ = task.await;
        }
        let all = u32::try_from(inner.opts.concurrency).unwrap_or(u32::MAX);
        let drained = tokio::time::timeout(
            inner.opts.shutdown_grace,
            inner.slots.clone().acquire_many_owned(all),
        )
        .await;
        if drained.is_err() {
            let flights: Vec<Held> = inner
                .leases
                .lock()
                .expect("not poisoned")
                .drain()
                .map(|(_, f)| f)
                .collect();
            tracing::warn!(
                count = flights.len(),
                "shutdown grace over; releasing in-flight items"
            );
            let now = Millis::now();
            let releases = flights.into_iter().map(|f| {
                if let Some(abort) = f.abort {
                    abort.abort();
                }
                let commit = Commit::new(f.lease, Disposition::Release { at: now });
                let committer = inner.committer.clone();
                async move { committer.commit(commit).await }
            });
            for result in futures_join(releases).await {
                if let Err(e) = result {
                    tracing::warn!(error = %e, "could not release an item; its lease will expire");
                }
            }
        }
        if let Some(h) = heartbeat {
            h.abort();
        }
        // Every flight has awaited its commit (or been released above), so nothing
        // is pending in the committer.
        let writers = std::mem::take(&mut *inner.writers.lock().expect("not poisoned"));
        for w in writers {
            w.abort();
        }
        if let Err(e) = inner.store.resign(RESCUER_LEASE, &inner.opts.node_id).await {
            tracing::debug!(error = %e, "could not resign the rescuer lease");
        }
        tracing::info!(node = %inner.opts.node_id, "scheduler stopped");
    }
}

/// Awaits all futures concurrently.
async fn futures_join<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futs.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        if let Ok(v) = h.await {
            out.push(v);
        }
    }
    out
}

/// Converts a store time to a tokio deadline (store times are wall-clock ms).
fn deadline_of(at: Millis) -> tokio::time::Instant {
    let wait = (at.0 - Millis::now().0).max(0) as u64;
    tokio::time::Instant::now() + Duration::from_millis(wait)
}

async fn claim_loop(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    let mut backoff = Duration::from_millis(50);
    loop {
        if *stop.borrow() {
            return;
        }
        // Capacity first: at least one slot, then as many more as a batch takes.
        let first = tokio::select! {
            p = inner.slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => return },
            _ = stopped(&mut stop) => return,
        };
        let mut permits = vec![first];
        while permits.len() < inner.opts.claim_batch as usize {
            match inner.slots.clone().try_acquire_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        let now = Millis::now();
        let hint = inner.wake.take();
        let limit = permits.len() as u32;
        let claimed = inner
            .store
            .claim(Claim {
                owner: inner.opts.node_id.clone(),
                limit,
                lease_ms: inner.opts.lease_ms(),
                now,
            })
            .await;
        let items = match claimed {
            Ok(items) => {
                backoff = Duration::from_millis(50);
                items
            }
            Err(e) => {
                tracing::warn!(error = %e, "claim failed; retrying");
                drop(permits);
                if let Some(h) = hint {
                    inner.wake.at(h);
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stopped(&mut stop) => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let got = items.len();
        for (item, permit) in items.into_iter().zip(permits.drain(..)) {
            spawn_flight(&inner, item, permit);
        }
        drop(permits);
        if got as u32 == limit {
            continue; // more may be due
        }
        // Everything due at `now` is claimed: sleep until the next due item.
        let next = match inner.store.next_due().await {
            Ok(next) => next,
            Err(e) => {
                tracing::warn!(error = %e, "next_due failed");
                None
            }
        };
        let mut due = match (next, inner.wake.take()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(d) = due
            && d <= now
        {
            if got == 0 {
                // Due but not claimable (another node holds the claim lock, or it
                // was just claimed elsewhere): look again shortly, not in a spin.
                due = Some(Millis::now().plus_ms(5));
            } else {
                continue;
            }
        }
        let safety = tokio::time::Instant::now() + inner.opts.safety_poll;
        let mut deadline = due.map(deadline_of).unwrap_or(safety).min(safety);
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(deadline) => break,
                _ = inner.wake.notified() => {
                    match inner.wake.take() {
                        Some(at) if at > Millis::now() => {
                            deadline = deadline.min(deadline_of(at));
                        }
                        _ => break,
                    }
                }
                _ = stopped(&mut stop) => return,
            }
        }
    }
}

fn spawn_flight(inner: &Arc<Inner>, item: QueueItem, permit: OwnedSemaphorePermit) {
    let Some(lease) = item.lease() else {
        tracing::error!(item = item.id.0, "claimed item carries no lease");
        return;
    };
    inner
        .leases
        .lock()
        .expect("not poisoned")
        .insert(item.id, Held { lease, abort: None });
    inner.in_flight.fetch_add(1, Ordering::Relaxed);
    let span = tracing::debug_span!(
        "dispatch",
        item = item.id.0,
        kind = item.kind.as_str(),
        run.id = item.run_id.map(|r| r.to_string()),
        step.id = item.step_id.as_deref(),
        attempt = item.attempt,
    );
    let task_inner = inner.clone();
    let id = item.id;
    let task = tokio::spawn(
        async move {
            let inner = task_inner;
            let _guard = FlightGuard {
                inner: inner.clone(),
                id,
                _permit: permit,
            };
            let flight = Flight::new(inner.committer.clone());
            let commit = inner.handler.dispatch(item.clone(), &flight).await;
            // No more heartbeats: the commit decides now.
            inner.leases.lock().expect("not poisoned").remove(&id);
            let result = match inner.committer.commit(commit).await {
                Ok(result) => result,
                Err(sluice_store::Error::LeaseLost(_)) => CommitResult::LeaseLost,
                Err(e) => {
                    tracing::warn!(error = %e, "commit failed; the lease will expire and be rescued");
                    return;
                }
            };
            if result == CommitResult::LeaseLost {
                tracing::debug!("lease lost before commit; result dropped");
            }
            inner.handler.committed(&item, result);
        }
        .instrument(span),
    );
    if let Some(f) = inner.leases.lock().expect("not poisoned").get_mut(&id) {
        f.abort = Some(task.abort_handle());
    }
}

/// Ends a flight's bookkeeping however its task ends (done or aborted).
struct FlightGuard {
    inner: Arc<Inner>,
    id: QueueItemId,
    _permit: OwnedSemaphorePermit,
}

impl Drop for FlightGuard {
    fn drop(&mut self) {
        if let Ok(mut leases) = self.inner.leases.lock() {
            leases.remove(&self.id);
        }
        self.inner.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn heartbeat_loop(inner: Arc<Inner>) {
    // Runs until shutdown aborts it, after the grace period.
    let mut tick = tokio::time::interval(inner.opts.heartbeat_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let leases: Vec<LeaseRef> = inner
            .leases
            .lock()
            .expect("not poisoned")
            .values()
            .map(|f| f.lease)
            .collect();
        if leases.is_empty() {
            continue;
        }
        let until = Millis::now().plus(inner.opts.lease);
        match inner.store.heartbeat(&leases, until).await {
            Ok(lost) => {
                let mut map = inner.leases.lock().expect("not poisoned");
                for id in lost {
                    if let Some(f) = map.remove(&id) {
                        tracing::debug!(item = id.0, "lease lost; dropping the call");
                        if let Some(abort) = f.abort {
                            abort.abort();
                        }
                    }
                }
            }
            Err(e) => tracing::warn!(error = %e, "heartbeat failed"),
        }
    }
}

async fn rescue_loop(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    let ttl = i64::try_from(inner.opts.rescue_every.as_millis() * 3).unwrap_or(i64::MAX);
    loop {
        let now = Millis::now();
        let lead = inner
            .store
            .try_lead(RESCUER_LEASE, &inner.opts.node_id, ttl, now)
            .await;
        inner
            .leading
            .store(matches!(lead, Ok(true)), Ordering::Relaxed);
        match lead {
            Ok(true) => {
                match inner.store.rescue_expired(now).await {
                    Ok(0) => {}
                    Ok(n) => {
                        tracing::info!(count = n, "re-queued items with expired leases");
                        inner.wake.at(now);
                    }
                    Err(e) => tracing::warn!(error = %e, "rescue failed"),
                }
                if let Err(e) = inner.store.expire_waits(now).await {
                    tracing::warn!(error = %e, "expiring waits failed");
                }
            }
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "leader lease check failed"),
        }
        tokio::select! {
            _ = tokio::time::sleep(inner.opts.rescue_every) => {}
            _ = stopped(&mut stop) => return,
        }
    }
}

/// Store housekeeping ([`sluice_store::Store::maintain`]) every second, on the node
/// that leads the rescuer.
async fn maintain_loop(inner: Arc<Inner>) {
    let mut stop = inner.stop.subscribe();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(MAINTAIN_EVERY) => {}
            _ = stopped(&mut stop) => return,
        }
        if inner.leading.load(Ordering::Relaxed)
            && let Err(e) = inner.store.maintain().await
        {
            tracing::warn!(error = %e, "store maintenance failed");
        }
    }
}

/// How often the leader runs [`maintain_loop`].
const MAINTAIN_EVERY: Duration = Duration::from_secs(1);

/// Resolves once shutdown has begun (at once if it already has).
async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}
