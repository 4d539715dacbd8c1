//! The load generator: closed-loop ingest, bulk sends, and paced (open-loop) sends.

use std::net::SocketAddr;
use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::client::{Conn, Pool};

/// A closed-loop ingest run: `clients` connections, each sending `batch` events per
/// request back to back.
#[derive(Debug, Clone)]
pub struct IngestParams {
    /// The server.
    pub addr: SocketAddr,
    /// `/e/<key>`.
    pub path: String,
    /// Concurrent connections.
    pub clients: usize,
    /// Events per request.
    pub batch: usize,
    /// Time before counting starts.
    pub warmup: Duration,
    /// Time counted.
    pub measure: Duration,
}

/// What an ingest run achieved.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IngestOutcome {
    /// Events acknowledged (200) within the measured window.
    pub events: u64,
    /// The window, in seconds.
    pub seconds: f64,
    /// Acknowledged events per second.
    pub per_second: f64,
    /// Non-200 replies over the whole run.
    pub errors: u64,
    /// The first error seen, if any.
    pub first_error: Option<String>,
}

/// An event body of realistic size (~200 bytes) for the ingest runs.
fn ingest_event(client: usize, i: usize) -> serde_json::Value {
    json!({ "name": "bench/ingest",
            "data": { "client": client, "i": i, "user": { "id": "u_7f3a9c", "plan": "pro" },
                      "payload": "0123456789abcdef0123456789abcdef0123456789abcdef" } })
}

/// Runs a closed-loop ingest. Each client sends the same body over and over: events
/// carry no `id`, so none is deduplicated.
pub async fn ingest(params: &IngestParams) -> Result<IngestOutcome> {
    let start = Instant::now();
    let from = start + params.warmup;
    let until = from + params.measure;
    let counted = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    for client in 0..params.clients {
        let events: Vec<_> = (0..params.batch).map(|i| ingest_event(client, i)).collect();
        let body = serde_json::to_vec(&events)?;
        let (counted, errors, params) = (counted.clone(), errors.clone(), params.clone());
        tasks.push(tokio::spawn(async move {
            let mut conn = Conn::connect(params.addr).await?;
            let mut first_error = None;
            loop {
                let reply = conn.request("POST", &params.path, &[], &body).await?;
                let now = Instant::now();
                if reply.status == 200 {
                    if now >= from && now < until {
                        counted.fetch_add(params.batch as u64, Ordering::Relaxed);
                    }
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    if first_error.is_none() {
                        first_error = Some(format!(
                            "{} {}",
                            reply.status,
                            String::from_utf8_lossy(&reply.body)
                        ));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                if now >= until {
                    return anyhow::Ok(first_error);
                }
            }
        }));
    }
    let mut first_error = None;
    for task in tasks {
        if let Some(e) = task.await?? {
            first_error.get_or_insert(e);
        }
    }
    let events = counted.load(Ordering::Relaxed);
    let seconds = params.measure.as_secs_f64();
    Ok(IngestOutcome {
        events,
        seconds,
        per_second: events as f64 / seconds,
        errors: errors.load(Ordering::Relaxed),
        first_error,
    })
}

/// The body of one event for `event` carrying its key `n`.
fn keyed_event(event: &str, n: u64) -> serde_json::Value {
    json!({ "name": event, "data": { "n": n } })
}

/// Sends the events `ns` (each `{name: event, data: {n}}`) in requests of `batch`,
/// `concurrency` requests at a time, as fast as the server takes them.
pub async fn send_all(
    pool: &Arc<Pool>,
    path: &str,
    event: &str,
    ns: Range<u64>,
    batch: u64,
    concurrency: usize,
) -> Result<()> {
    let chunks: Vec<Range<u64>> = (ns.start..ns.end)
        .step_by(batch as usize)
        .map(|s| s..(s + batch).min(ns.end))
        .collect();
    let chunks = Arc::new(std::sync::Mutex::new(chunks.into_iter()));
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (pool, chunks, path, event) = (
            pool.clone(),
            chunks.clone(),
            path.to_owned(),
            event.to_owned(),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let Some(chunk) = chunks.lock().expect("chunks lock").next() else {
                    return anyhow::Ok(());
                };
                let events: Vec<_> = chunk.map(|n| keyed_event(&event, n)).collect();
                let reply = pool
                    .request("POST", &path, &[], &serde_json::to_vec(&events)?)
                    .await?;
                if reply.status != 200 {
                    bail!(
                        "ingest answered {}: {}",
                        reply.status,
                        String::from_utf8_lossy(&reply.body)
                    );
                }
            }
        }));
    }
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// Sends the events `ns` one per request at `rate` per second on a fixed schedule (a
/// slow reply does not delay the next send) and returns each event's acknowledgement
/// time, in `ns` order.
pub async fn send_paced(
    pool: &Arc<Pool>,
    path: &str,
    event: &str,
    ns: Range<u64>,
    rate: f64,
) -> Result<Vec<(u64, Instant)>> {
    let begin = Instant::now();
    let mut tasks = Vec::new();
    for (i, n) in ns.enumerate() {
        let due = begin + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let (pool, path) = (pool.clone(), path.to_owned());
        let body = serde_json::to_vec(&[keyed_event(event, n)])?;
        tasks.push(tokio::spawn(async move {
            let reply = pool.request("POST", &path, &[], &body).await?;
            let acked = Instant::now();
            if reply.status != 200 {
                bail!(
                    "ingest answered {}: {}",
                    reply.status,
                    String::from_utf8_lossy(&reply.body)
                );
            }
            anyhow::Ok((n, acked))
        }));
    }
    let mut acks = Vec::with_capacity(tasks.len());
    for task in tasks {
        acks.push(task.await??);
    }
    Ok(acks)
}
