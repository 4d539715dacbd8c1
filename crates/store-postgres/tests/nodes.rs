//! What only a shared PostgreSQL gives: several nodes (stores with pools of their own)
//! on one queue, wake-ups across nodes, a listener that survives a dropped
//! connection, and whole batches written in one transaction. Skips and fails like
//! `conformance.rs` (see `database`).

mod database;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sluice_core::{EventId, FunctionId, Millis, RunId};
use sluice_store::{
    Claim, Commit, CommitResult, Disposition, Event, NewQueueItem, NewRun, Publish, QueueKind,
    QueueStats, RunStatus, RunUpdate, StepRecord, StepStatus, Store,
};
use sluice_store_postgres::PostgresStore;
use tokio::sync::mpsc;

use database::{connect, database_url, fresh_schema};

const T0: Millis = Millis(1_800_000_000_000);

fn wake_item(at: Millis) -> NewQueueItem {
    NewQueueItem {
        kind: QueueKind::Wake,
        run_id: None,
        function_id: None,
        step_id: None,
        payload: json!(null),
        available_at: at,
        priority: 0,
        concurrency_keys: Vec::new(),
        dedupe_key: None,
    }
}

/// Subscribes and returns the channel the wake-ups arrive on.
async fn subscribe(store: &PostgresStore) -> mpsc::UnboundedReceiver<Millis> {
    let (tx, rx) = mpsc::unbounded_channel();
    store
        .subscribe(Arc::new(move |at| {
            let _ = tx.send(at);
        }))
        .await
        .unwrap();
    rx
}

/// Waits for a wake-up at `want` (ignoring others, e.g. catch-up wakes).
async fn expect_wake(rx: &mut mpsc::UnboundedReceiver<Millis>, want: Millis) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, rx.recv()).await {
            Ok(Some(at)) if at == want => return,
            Ok(Some(_)) => continue,
            _ => panic!("no wake-up at {want:?} within 10 s"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_nodes_share_one_queue_and_wake_each_other() {
    let Some(url) = database_url().await else {
        return;
    };
    let schema = fresh_schema();
    let a = connect(url.clone(), schema.clone()).await;
    let b = connect(url, schema).await;
    let mut woken = subscribe(&b).await;

    // An enqueue on node a wakes node b with the earliest time it made available.
    let items: Vec<_> = (0..300).map(|i| wake_item(T0.plus_ms(i % 7))).collect();
    let ids: HashSet<_> = a.enqueue(items).await.unwrap().into_iter().collect();
    assert_eq!(ids.len(), 300);
    expect_wake(&mut woken, T0).await;

    // Four claimers on two pools drain it; no item is handed out twice.
    let mut claimers = Vec::new();
    for (n, store) in [a.clone(), b.clone(), a.clone(), b.clone()]
        .into_iter()
        .enumerate()
    {
        claimers.push(tokio::spawn(async move {
            let mut got = Vec::new();
            loop {
                let batch = store
                    .claim(Claim {
                        owner: format!("node-{n}"),
                        limit: 7,
                        lease_ms: 60_000,
                        now: T0.plus_ms(10),
                    })
                    .await
                    .unwrap();
                if batch.is_empty() {
                    return got;
                }
                got.extend(batch);
            }
        }));
    }
    let mut claimed = Vec::new();
    for c in claimers {
        claimed.extend(c.await.unwrap());
    }
    let unique: HashSet<_> = claimed.iter().map(|i| i.id).collect();
    assert_eq!(claimed.len(), 300, "every item claimed exactly once");
    assert_eq!(unique, ids);

    // Ending them all in one batch: a retry wakes the other node too.
    let mut commits: Vec<_> = claimed
        .iter()
        .map(|i| Commit::new(i.lease().unwrap(), Disposition::Done))
        .collect();
    commits[0].disposition = Disposition::Retry {
        at: T0.plus_ms(500),
        error: Some(json!({"message": "boom"})),
    };
    let results = b.commit(commits, T0.plus_ms(20)).await.unwrap();
    assert!(results.iter().all(|r| *r == CommitResult::Applied));
    expect_wake(&mut woken, T0.plus_ms(500)).await;
    assert_eq!(
        a.queue_stats(T0.plus_ms(20)).await.unwrap(),
        QueueStats {
            due: 0,
            scheduled: 1,
            leased: 0
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn wake_listener_survives_a_dropped_connection() {
    let Some(url) = database_url().await else {
        return;
    };
    let schema = fresh_schema();
    let store = connect(url, schema.clone()).await;
    let mut woken = subscribe(&store).await;
    store.enqueue(vec![wake_item(T0)]).await.unwrap();
    expect_wake(&mut woken, T0).await;

    // Kill this store's listening backend (its channel names the schema); the
    // listener reconnects and listens again.
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
         WHERE query LIKE 'LISTEN %' AND query LIKE '%' || $1 || '%'
           AND pid <> pg_backend_pid()",
    )
    .bind(&schema)
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert!(killed.contains(&true), "found the listening connection");
    // Catching up after the reconnect reports the earliest due item.
    expect_wake(&mut woken, T0).await;

    let deadline = Instant::now() + Duration::from_secs(10);
    let mut at = T0.plus_ms(1);
    loop {
        // Notifications sent before the new LISTEN lands are lost; keep sending.
        store.enqueue(vec![wake_item(at)]).await.unwrap();
        match tokio::time::timeout(Duration::from_millis(200), woken.recv()).await {
            Ok(Some(got)) if got == at => break,
            _ if Instant::now() > deadline => panic!("no wake-up after the reconnect"),
            _ => at = at.plus_ms(1),
        }
    }
}

fn event(n: u64) -> Event {
    Event {
        id: EventId(ulid::Ulid::from_parts(T0.0 as u64, u128::from(n))),
        external_id: (n % 2 == 0).then(|| format!("ext-{n}")),
        name: "load/tested".into(),
        data: json!({ "n": n }),
        user: json!({}),
        version: None,
        ts: T0,
        received_at: T0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn large_batches_in_one_transaction() {
    let Some(url) = database_url().await else {
        return;
    };
    let store = connect(url, fresh_schema()).await;
    let function = FunctionId::new();
    const N: u64 = 2_000;

    // One publish call: N events (half with external ids), a run each.
    let started = Instant::now();
    let batch: Vec<Publish> = (0..N)
        .map(|n| {
            let e = event(n);
            let run = RunId(ulid::Ulid::from_parts(T0.0 as u64, u128::from(n)));
            Publish {
                runs: vec![NewRun {
                    id: run,
                    function_id: function,
                    event_ids: vec![e.id],
                    correlation_id: None,
                    rerun_of: None,
                    created_at: T0,
                    first: NewQueueItem::call(run, function, None, T0),
                    waits: Vec::new(),
                }],
                event: e,
                resumes: Vec::new(),
                cancels: Vec::new(),
            }
        })
        .collect();
    let published = store.publish(batch.clone(), T0).await.unwrap();
    let publish_time = started.elapsed();
    assert!(published.iter().all(|p| !p.duplicate));
    // The same batch again is all duplicates, and writes nothing.
    let again = store.publish(batch, T0).await.unwrap();
    assert!(again.iter().all(|p| p.duplicate));
    assert_eq!(store.queue_stats(T0).await.unwrap().due, N as i64);

    // Claim everything, then end every run in one commit call.
    let claimed = store
        .claim(Claim {
            owner: "node".into(),
            limit: N as u32,
            lease_ms: 60_000,
            now: T0,
        })
        .await
        .unwrap();
    assert_eq!(claimed.len(), N as usize);
    let commits: Vec<Commit> = claimed
        .iter()
        .map(|item| {
            let run = item.run_id.unwrap();
            let mut c = Commit::new(item.lease().unwrap(), Disposition::Done);
            c.run = Some((
                run,
                RunUpdate {
                    status: Some(RunStatus::Completed),
                    output: Some(json!({"ok": true})),
                    ended_at: Some(T0.plus_ms(1)),
                    ..RunUpdate::default()
                },
            ));
            c.steps = vec![StepRecord {
                run_id: run,
                step_id: "s".into(),
                name: "s".into(),
                op: "StepRun".into(),
                status: StepStatus::Completed,
                result: Some(json!({"data": 1})),
                error: None,
                attempts: 1,
                opts: None,
                started_at: Some(T0),
                ended_at: Some(T0.plus_ms(1)),
            }];
            c
        })
        .collect();
    let started = Instant::now();
    let results = store.commit(commits, T0.plus_ms(1)).await.unwrap();
    let commit_time = started.elapsed();
    assert!(results.iter().all(|r| *r == CommitResult::Applied));
    let sample = claimed[N as usize / 2].run_id.unwrap();
    assert_eq!(
        store.get_run(sample).await.unwrap().status,
        RunStatus::Completed
    );
    assert_eq!(store.list_steps(sample).await.unwrap().len(), 1);
    assert_eq!(store.queue_stats(T0).await.unwrap(), QueueStats::default());
    eprintln!(
        "{N} events+runs published in {publish_time:?}, {N} run ends committed in {commit_time:?}"
    );
}

/// A queue table that grew from empty gets fresh planner statistics from
/// `maintain` (autovacuum would take a minute or more), so the claim's plan is made
/// for its real size.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn maintain_refreshes_statistics_of_grown_tables() {
    let Some(url) = database_url().await else {
        return;
    };
    let store = connect(url, fresh_schema()).await;
    let items: Vec<NewQueueItem> = (0..3_000).map(|i| wake_item(T0.plus_ms(i))).collect();
    store.enqueue(items).await.unwrap();
    let reltuples = || async {
        sqlx::query_scalar::<_, f32>(
            "SELECT reltuples FROM pg_class
             WHERE oid = (current_schema() || '.queue_items')::regclass",
        )
        .fetch_one(store.pool())
        .await
        .unwrap()
    };
    assert!(reltuples().await < 1_000.0, "not analyzed yet");
    // Table statistics reach pg_stat_user_tables within about a second.
    let deadline = Instant::now() + Duration::from_secs(15);
    while store.maintain().await.unwrap() == 0 {
        assert!(
            Instant::now() < deadline,
            "maintain never analyzed the grown queue"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(reltuples().await >= 2_000.0, "statistics now see the rows");
    assert_eq!(store.maintain().await.unwrap(), 0, "nothing grew since");
}

/// Pooled connections are not pinged before each use (that was a round trip per
/// statement). When the server drops them anyway, the store recovers on its own: a
/// broken connection fails at most the call that used it and leaves the pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pool_recovers_when_the_server_drops_its_connections() {
    let Some(url) = database_url().await else {
        return;
    };
    let schema = fresh_schema();
    let app = format!("recover_{}", &schema[2..14]);
    let sep = if url.contains('?') { '&' } else { '?' };
    let store = connect(format!("{url}{sep}application_name={app}"), schema).await;
    let (a, b, c) = tokio::join!(
        store.queue_stats(T0),
        store.queue_stats(T0),
        store.queue_stats(T0)
    );
    for stats in [a, b, c] {
        stats.unwrap();
    }

    let mut admin = <sqlx::PgConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    let killed: Vec<bool> = sqlx::query_scalar(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1",
    )
    .bind(&app)
    .fetch_all(&mut admin)
    .await
    .unwrap();
    assert!(
        killed.contains(&true),
        "found the store's pooled connections"
    );

    // At most one failure per pooled connection (8), then it works again.
    let mut failures = 0;
    while let Err(e) = store.queue_stats(T0).await {
        failures += 1;
        assert!(failures <= 8, "the store did not recover: {e}");
    }
    store.enqueue(vec![wake_item(T0)]).await.unwrap();
    assert_eq!(store.queue_stats(T0).await.unwrap().due, 1);
}
