//! [`Dispatch`]: what works a claimed queue item. The executor implements it, so the
//! dependency arrow points scheduler ← executor.

use sluice_store::{Commit, CommitResult, QueueItem};

/// Works claimed queue items.
///
/// The scheduler calls [`dispatch`](Dispatch::dispatch) on its own task for each item it
/// leased, heartbeats the lease while the future runs, and writes the returned
/// [`Commit`] with other commits in one transaction (group commit). The future may be
/// dropped at any await point: when the lease is lost (the run was cancelled, or the
/// item rescued elsewhere) or when shutdown's grace period ends, in which case the
/// scheduler releases the item itself. Nothing the future did before its commit may
/// be visible to others except the call it made (at-least-once).
#[async_trait::async_trait]
pub trait Dispatch: Send + Sync + std::fmt::Debug + 'static {
    /// Works one item and says how it ends: the commit must carry `item.lease()` and
    /// a [`Disposition`](sluice_store::Disposition).
    async fn dispatch(&self, item: QueueItem) -> Commit;

    /// Told how an item's commit went (metrics, logs). `LeaseLost` means the result
    /// was refused: another holder or a cancellation got there first.
    fn committed(&self, item: &QueueItem, result: CommitResult) {
        let _ = (item, result);
    }
}
