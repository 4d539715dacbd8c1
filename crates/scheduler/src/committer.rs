//! [`Committer`]: group commit. Completions from concurrent calls queue up here and
//! are written several per transaction.

use sluice_core::Millis;
use sluice_store::{Commit, CommitResult, Disposition, DynStore};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::wake::Wake;

type Reply = oneshot::Sender<sluice_store::Result<CommitResult>>;

/// The sending side: submit a commit, await its result.
#[derive(Debug, Clone)]
pub(crate) struct Committer {
    tx: mpsc::UnboundedSender<(Commit, Reply)>,
}

/// What the writer tasks share.
#[derive(Debug)]
pub(crate) struct Writer {
    pub store: DynStore,
    pub wake: Arc<Wake>,
    /// Calls in flight on this node: lingering only helps when others may finish.
    pub in_flight: Arc<AtomicUsize>,
    pub batch: usize,
    pub linger: Duration,
}

impl Committer {
    /// Starts `writers` tasks draining one channel.
    pub(crate) fn start(writer: Writer, writers: usize) -> (Self, Vec<JoinHandle<()>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let rx = Arc::new(Mutex::new(rx));
        let writer = Arc::new(writer);
        let tasks = (0..writers)
            .map(|_| tokio::spawn(write_loop(writer.clone(), rx.clone())))
            .collect();
        (Self { tx }, tasks)
    }

    /// Writes `commit` (with others) and returns its result.
    pub(crate) async fn commit(&self, commit: Commit) -> sluice_store::Result<CommitResult> {
        let (reply, rx) = oneshot::channel();
        let item = commit.lease.item;
        self.tx
            .send((commit, reply))
            .map_err(|_| sluice_store::Error::Backend("scheduler is shut down".into()))?;
        rx.await
            .unwrap_or(Err(sluice_store::Error::LeaseLost(item)))
    }
}

async fn write_loop(writer: Arc<Writer>, rx: Arc<Mutex<mpsc::UnboundedReceiver<(Commit, Reply)>>>) {
    loop {
        let batch = {
            let mut rx = rx.lock().await;
            let Some(first) = rx.recv().await else { return };
            let mut batch = vec![first];
            while batch.len() < writer.batch {
                match rx.try_recv() {
                    Ok(next) => batch.push(next),
                    Err(_) => break,
                }
            }
            if !writer.linger.is_zero()
                && batch.len() < writer.batch
                && writer.in_flight.load(Ordering::Relaxed) > batch.len()
            {
                let deadline = tokio::time::Instant::now() + writer.linger;
                while batch.len() < writer.batch {
                    match tokio::time::timeout_at(deadline, rx.recv()).await {
                        Ok(Some(next)) => batch.push(next),
                        _ => break,
                    }
                }
            }
            batch
        };
        write(&writer, batch).await;
    }
}

/// Writes one batch, retrying transient failures; a batch refused for another reason
/// is split so one bad commit cannot sink the others.
async fn write(writer: &Writer, batch: Vec<(Commit, Reply)>) {
    let (commits, replies): (Vec<Commit>, Vec<Reply>) = batch.into_iter().unzip();
    let earliest = earliest_available(&commits);
    let mut delay = Duration::from_millis(20);
    let mut tries = 0;
    let outcome = loop {
        tries += 1;
        match writer.store.commit(commits.clone(), Millis::now()).await {
            Ok(results) => break Ok(results),
            Err(e) if e.is_transient() && tries < 6 => {
                tracing::warn!(error = %e, tries, "group commit failed; retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
            Err(e) => break Err(e),
        }
    };
    match outcome {
        Ok(results) => {
            let mut applied_any = false;
            for (reply, result) in replies.into_iter().zip(results) {
                applied_any |= result != CommitResult::LeaseLost;
                let _ = reply.send(Ok(result));
            }
            if applied_any && let Some(at) = earliest {
                writer.wake.at(at);
            }
        }
        Err(e) if commits.len() > 1 && !e.is_transient() => {
            tracing::warn!(error = %e, size = commits.len(), "group commit refused; writing one by one");
            for (commit, reply) in commits.into_iter().zip(replies) {
                let one = writer
                    .store
                    .commit(vec![commit.clone()], Millis::now())
                    .await;
                let one = one.map(|mut r| r.pop().unwrap_or(CommitResult::LeaseLost));
                if matches!(one, Ok(CommitResult::Applied | CommitResult::Skipped))
                    && let Some(at) = earliest_available(std::slice::from_ref(&commit))
                {
                    writer.wake.at(at);
                }
                let _ = reply.send(one);
            }
        }
        Err(e) => {
            tracing::error!(error = %e, size = commits.len(), "group commit failed; leases will expire and be rescued");
            for reply in replies {
                let _ = reply.send(Err(sluice_store::Error::Backend(e.to_string())));
            }
        }
    }
}

/// The earliest time a commit makes an item available on this node, so the claim
/// loop learns of same-node work without waiting for the store's notification.
fn earliest_available(commits: &[Commit]) -> Option<Millis> {
    commits
        .iter()
        .flat_map(|c| {
            let own = match &c.disposition {
                Disposition::Done | Disposition::Continue { .. } => None,
                Disposition::Retry { at, .. } | Disposition::Release { at } => Some(*at),
            };
            c.enqueue.iter().map(|q| q.available_at).chain(own)
        })
        .min()
}
