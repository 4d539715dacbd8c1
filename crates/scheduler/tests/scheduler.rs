//! The scheduler against a real SQLite store and a recording [`Dispatch`].

use sluice_core::Millis;
use sluice_scheduler::{Dispatch, Scheduler, SchedulerHandle, SchedulerOptions};
use sluice_store::{
    Claim, Commit, CommitResult, Disposition, DynStore, NewQueueItem, QueueItem, QueueKind,
};
use sluice_store_sqlite::SqliteStore;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Records when each item was dispatched and how its commit went.
#[derive(Debug, Default)]
struct Recorder {
    /// How long each dispatch takes.
    work: Duration,
    dispatched: Mutex<Vec<(QueueItem, Millis)>>,
    committed: Mutex<Vec<CommitResult>>,
}

#[async_trait::async_trait]
impl Dispatch for Recorder {
    async fn dispatch(&self, item: QueueItem, _flight: &sluice_scheduler::Flight) -> Commit {
        self.dispatched
            .lock()
            .unwrap()
            .push((item.clone(), Millis::now()));
        tokio::time::sleep(self.work).await;
        Commit::new(item.lease().unwrap(), Disposition::Done)
    }

    fn committed(&self, _item: &QueueItem, result: CommitResult) {
        self.committed.lock().unwrap().push(result);
    }
}

fn item(at: Millis) -> NewQueueItem {
    NewQueueItem {
        kind: QueueKind::Call,
        run_id: None,
        function_id: None,
        step_id: None,
        payload: serde_json::Value::Null,
        available_at: at,
        priority: 0,
        concurrency_keys: vec![],
        dedupe_key: None,
    }
}

async fn start(
    work: Duration,
    opts: SchedulerOptions,
) -> (DynStore, Arc<Recorder>, SchedulerHandle) {
    let store: DynStore = Arc::new(SqliteStore::temporary().await.unwrap());
    let recorder = Arc::new(Recorder {
        work,
        ..Recorder::default()
    });
    let handle = Scheduler::start(opts, store.clone(), recorder.clone())
        .await
        .unwrap();
    (store, recorder, handle)
}

fn opts() -> SchedulerOptions {
    SchedulerOptions {
        node_id: "test".into(),
        lease: Duration::from_millis(300),
        heartbeat_every: Duration::from_millis(50),
        rescue_every: Duration::from_millis(30),
        shutdown_grace: Duration::from_millis(100),
        ..SchedulerOptions::default()
    }
}

async fn wait_until(what: &str, within: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !ok() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delayed_items_never_run_early() {
    let (store, recorder, handle) = start(Duration::ZERO, opts()).await;
    let now = Millis::now();
    // Enqueued one at a time, as separate commits would: each is a pushed wake-up.
    for i in 0..40 {
        store
            .enqueue(vec![item(now.plus_ms(100 + i * 7))])
            .await
            .unwrap();
    }
    wait_until("all items", Duration::from_secs(5), || {
        recorder.dispatched.lock().unwrap().len() == 40
    })
    .await;
    let mut late: Vec<i64> = recorder
        .dispatched
        .lock()
        .unwrap()
        .iter()
        .map(|(item, at)| at.0 - item.available_at.0)
        .collect();
    late.sort();
    assert!(late[0] >= 0, "an item ran {} ms early", -late[0]);
    // How late is measured by bench/run (timers), not asserted here.
    eprintln!("lateness ms: {late:?}");
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_keep_a_long_call_leased() {
    let (store, recorder, handle) = start(Duration::from_millis(900), opts()).await;
    store.enqueue(vec![item(Millis::now())]).await.unwrap();
    wait_until("the commit", Duration::from_secs(5), || {
        !recorder.committed.lock().unwrap().is_empty()
    })
    .await;
    assert_eq!(
        recorder.dispatched.lock().unwrap().len(),
        1,
        "never rescued"
    );
    assert_eq!(
        *recorder.committed.lock().unwrap(),
        vec![CommitResult::Applied]
    );
    assert_eq!(store.queue_stats(Millis::now()).await.unwrap().leased, 0);
    handle.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_releases_calls_that_outlive_the_grace() {
    let (store, recorder, handle) = start(Duration::from_secs(30), opts()).await;
    store.enqueue(vec![item(Millis::now())]).await.unwrap();
    wait_until("the dispatch", Duration::from_secs(5), || {
        handle.in_flight() == 1
    })
    .await;
    // Had shutdown waited for the 30 s call, the item would be done, not claimable.
    handle.shutdown().await;
    assert_eq!(recorder.dispatched.lock().unwrap().len(), 1);
    assert!(recorder.committed.lock().unwrap().is_empty());
    let again = store
        .claim(Claim {
            owner: "other".into(),
            limit: 10,
            lease_ms: 1_000,
            now: Millis::now(),
        })
        .await
        .unwrap();
    assert_eq!(again.len(), 1, "released, claimable at once");
    assert_eq!(again[0].attempt, 0, "a release is not an attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drains_a_backlog_in_batches() {
    let (store, recorder, handle) = start(Duration::ZERO, opts()).await;
    let now = Millis::now();
    store
        .enqueue((0..2_000).map(|_| item(now)).collect())
        .await
        .unwrap();
    let started = Instant::now();
    wait_until("the backlog", Duration::from_secs(30), || {
        recorder.committed.lock().unwrap().len() == 2_000
    })
    .await;
    let rate = 2_000.0 / started.elapsed().as_secs_f64();
    eprintln!("drained 2000 items at {rate:.0}/s");
    assert!(
        recorder
            .committed
            .lock()
            .unwrap()
            .iter()
            .all(|r| *r == CommitResult::Applied)
    );
    assert_eq!(store.queue_stats(Millis::now()).await.unwrap().due, 0);
    handle.shutdown().await;
}
