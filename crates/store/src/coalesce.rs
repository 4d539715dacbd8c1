//! Coalesced reads, for backends: concurrent callers of the same per-key read share
//! one query.
//!
//! A claimed batch starts dozens of calls at once, and each reads its run's state;
//! run endings each look up waits for `inngest/function.finished`. One query per
//! caller costs a round trip (Postgres) or a hop to the database thread (SQLite), and
//! an execution each. Here callers queue their keys, and a few worker tasks take
//! everything queued and answer it with one query. A lone caller is served at once (no
//! lingering), and every answer comes from a query that started after its caller
//! asked, so coalescing never serves a stale read.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use std::collections::HashMap;

use sluice_core::{EventId, Millis, RunId};

use crate::{Error, Event, Result, Run, RunState, Step, Wait};
use tokio::sync::{Mutex, mpsc, oneshot};

type Reply<V> = oneshot::Sender<Result<V>>;

/// Answers a batch of keys: one result per key, in order.
pub type Load<K, V> = Arc<
    dyn Fn(Vec<K>) -> Pin<Box<dyn Future<Output = Result<Vec<Result<V>>>> + Send>> + Send + Sync,
>;

/// The callers' side of a coalesced read. Workers end when it is dropped.
pub struct Coalescer<K, V> {
    tx: mpsc::UnboundedSender<(K, Reply<V>)>,
}

impl<K, V> std::fmt::Debug for Coalescer<K, V> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coalescer").finish_non_exhaustive()
    }
}

impl<K: Send + 'static, V: Send + 'static> Coalescer<K, V> {
    /// Starts `workers` tasks, each answering up to `max` queued keys per query.
    pub fn start(workers: usize, max: usize, load: Load<K, V>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel::<(K, Reply<V>)>();
        let rx = Arc::new(Mutex::new(rx));
        for _ in 0..workers.max(1) {
            let (rx, load) = (rx.clone(), load.clone());
            tokio::spawn(async move {
                loop {
                    let batch = {
                        let mut rx = rx.lock().await;
                        let Some(first) = rx.recv().await else { return };
                        let mut batch = vec![first];
                        while batch.len() < max {
                            match rx.try_recv() {
                                Ok(next) => batch.push(next),
                                Err(_) => break,
                            }
                        }
                        batch
                    };
                    let (keys, replies): (Vec<K>, Vec<Reply<V>>) = batch.into_iter().unzip();
                    // On a task of its own, so a panicking read fails its callers and
                    // the worker lives on.
                    let loaded = match tokio::spawn(load(keys)).await {
                        Ok(loaded) => loaded,
                        Err(e) => Err(Error::Backend(format!("a coalesced read failed: {e}"))),
                    };
                    match loaded {
                        Ok(values) => {
                            for (reply, value) in replies.into_iter().zip(values) {
                                let _ = reply.send(value);
                            }
                        }
                        Err(e) => {
                            let message = e.to_string();
                            for reply in replies {
                                let _ = reply.send(Err(Error::Backend(message.clone())));
                            }
                        }
                    }
                }
            });
        }
        Self { tx }
    }

    /// Reads `key`, with whatever other keys are queued.
    pub async fn get(&self, key: K) -> Result<V> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send((key, reply))
            .map_err(|_| Error::Backend("the store is shut down".into()))?;
        rx.await
            .unwrap_or_else(|_| Err(Error::Backend("a coalesced read was dropped".into())))
    }
}

/// The event ids of `runs`, sorted, each once: what a batch of state reads asks of
/// the events table.
pub fn event_ids_of<'a>(runs: impl IntoIterator<Item = &'a Run>) -> Vec<EventId> {
    let mut ids: Vec<EventId> = runs
        .into_iter()
        .flat_map(|r| r.event_ids.iter().copied())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// The answers of a batch of `run_state` asks, in the order asked, from one read of
/// the runs with their steps and one of their events. A run asked twice is answered
/// twice; a missing run is [`Error::NotFound`].
pub fn states_in_order(
    ids: &[RunId],
    mut runs: HashMap<RunId, (Run, Vec<Step>)>,
    events: Vec<Event>,
) -> Vec<Result<RunState>> {
    let events: HashMap<EventId, Event> = events.into_iter().map(|e| (e.id, e)).collect();
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            // The last ask for a run takes it; earlier duplicates get a copy.
            let found = if ids[i + 1..].contains(id) {
                runs.get(id).cloned()
            } else {
                runs.remove(id)
            };
            let (run, steps) = found.ok_or_else(|| Error::NotFound(format!("run {id}")))?;
            Ok(RunState {
                events: run
                    .event_ids
                    .iter()
                    .filter_map(|e| events.get(e).cloned())
                    .collect(),
                run,
                steps,
            })
        })
        .collect()
}

/// One `waits_for_events` ask: the event names and `now`.
pub type WaitsAsk = (Vec<String>, Millis);

/// Coalesced `waits_for_events` reads.
pub type Waits = Coalescer<WaitsAsk, Vec<Wait>>;

/// The answers of a batch of `waits_for_events` asks — (event names, now) — from ONE
/// read of the waits for all their names that had not expired at the earliest `now`:
/// each answer keeps the waits for its own names, unexpired at its own `now`, in the
/// order read.
pub fn split_waits(asks: &[(Vec<String>, Millis)], waits: &[Wait]) -> Vec<Result<Vec<Wait>>> {
    asks.iter()
        .map(|(names, now)| {
            Ok(waits
                .iter()
                .filter(|w| names.contains(&w.event_name))
                .filter(|w| w.expires_at.is_none_or(|e| e > *now))
                .cloned()
                .collect())
        })
        .collect()
}

/// What the one read for a batch of `waits_for_events` asks covers: every name asked
/// (sorted, once) and the earliest `now`.
pub fn union_of(asks: &[WaitsAsk]) -> WaitsAsk {
    let mut names: Vec<String> = asks.iter().flat_map(|(n, _)| n.iter().cloned()).collect();
    names.sort_unstable();
    names.dedup();
    let earliest = asks.iter().map(|(_, now)| *now).min().unwrap_or(Millis(0));
    (names, earliest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_callers_share_queries_and_get_their_own_answer() {
        let queries = Arc::new(AtomicUsize::new(0));
        let counted = queries.clone();
        let load: Load<u32, u32> = Arc::new(move |keys: Vec<u32>| {
            counted.fetch_add(1, Ordering::Relaxed);
            Box::pin(async move {
                tokio::time::sleep(Duration::from_millis(20)).await;
                Ok(keys
                    .into_iter()
                    .map(|k| {
                        if k == 7 {
                            Err(Error::NotFound("seven".into()))
                        } else {
                            Ok(k * 10)
                        }
                    })
                    .collect())
            })
        });
        let c = Arc::new(Coalescer::start(1, 64, load));
        let tasks: Vec<_> = (0..40)
            .map(|k| {
                let c = c.clone();
                tokio::spawn(async move { (k, c.get(k).await) })
            })
            .collect();
        for t in tasks {
            let (k, got) = t.await.unwrap();
            match got {
                Ok(v) => assert_eq!(v, k * 10),
                Err(Error::NotFound(_)) => assert_eq!(k, 7),
                Err(e) => panic!("unexpected {e}"),
            }
        }
        let n = queries.load(Ordering::Relaxed);
        assert!(n < 40, "40 concurrent reads took {n} queries");
    }

    #[test]
    fn waits_read_once_are_split_by_name_and_time() {
        let wait = |name: &str, expires: Option<i64>| Wait {
            id: sluice_core::WaitId::new(),
            run_id: sluice_core::RunId::new(),
            kind: crate::WaitKind::Event,
            step_id: None,
            event_name: name.into(),
            expression: None,
            correlation_id: None,
            trigger_event: serde_json::Value::Null,
            expires_at: expires.map(Millis),
            created_at: Millis(0),
        };
        let asks = vec![
            (vec!["b".to_string(), "a".to_string()], Millis(10)),
            (vec!["a".to_string()], Millis(30)),
        ];
        assert_eq!(
            union_of(&asks),
            (vec!["a".to_string(), "b".to_string()], Millis(10))
        );
        let read = vec![wait("a", Some(20)), wait("b", None), wait("a", None)];
        let split = split_waits(&asks, &read);
        let names = |i: usize| -> Vec<(String, Option<Millis>)> {
            split[i]
                .as_ref()
                .unwrap()
                .iter()
                .map(|w| (w.event_name.clone(), w.expires_at))
                .collect()
        };
        assert_eq!(
            names(0),
            vec![
                ("a".into(), Some(Millis(20))),
                ("b".into(), None),
                ("a".into(), None)
            ]
        );
        assert_eq!(names(1), vec![("a".into(), None)], "expired at its own now");
    }

    #[tokio::test]
    async fn a_panicking_read_fails_its_callers_and_the_next_read_works() {
        let calls = Arc::new(AtomicUsize::new(0));
        let counted = calls.clone();
        let load: Load<u32, u32> = Arc::new(move |keys: Vec<u32>| {
            let first = counted.fetch_add(1, Ordering::Relaxed) == 0;
            Box::pin(async move {
                assert!(!first, "the first read panics");
                Ok(keys.into_iter().map(Ok).collect())
            })
        });
        let c = Coalescer::start(1, 8, load);
        assert!(matches!(c.get(1).await, Err(Error::Backend(_))));
        assert_eq!(c.get(2).await.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_failed_batch_fails_each_caller() {
        let load: Load<u32, u32> =
            Arc::new(|_| Box::pin(async { Err(Error::Backend("down".into())) }));
        let c = Coalescer::start(2, 8, load);
        assert!(matches!(c.get(1).await, Err(Error::Backend(_))));
    }
}
