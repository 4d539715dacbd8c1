//! Rough throughput of the write paths (ignored by default: `cargo test --release
//! -p sluice-store-sqlite --test throughput -- --ignored --nocapture`).

use std::sync::Arc;
use std::time::Instant;

use sluice_core::{FunctionId, Millis, RunId};
use sluice_store::{Claim, Commit, Disposition, DynStore, NewQueueItem};
use sluice_store_sqlite::SqliteStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "a measurement, not a check"]
async fn enqueue_claim_commit_throughput() {
    let store: DynStore = Arc::new(SqliteStore::temporary().await.unwrap());
    let now = Millis::now();
    let f = FunctionId::new();
    const N: usize = 2_000;

    let start = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..N / 16 {
                store
                    .enqueue(vec![NewQueueItem::call(RunId::new(), f, None, now)])
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("enqueue one per call, 16 tasks: {:.0}/s", N as f64 / secs);

    let start = Instant::now();
    let mut tasks = Vec::new();
    for w in 0..16 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            loop {
                let got = store
                    .claim(Claim {
                        owner: format!("w{w}"),
                        limit: 1,
                        lease_ms: 60_000,
                        now,
                    })
                    .await
                    .unwrap();
                if got.is_empty() {
                    break;
                }
                let commits = got
                    .iter()
                    .map(|i| Commit::new(i.lease().unwrap(), Disposition::Done))
                    .collect();
                store.commit(commits, now).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let secs = start.elapsed().as_secs_f64();
    println!("claim 1 + commit, 16 tasks: {:.0}/s", N as f64 / secs);
}
