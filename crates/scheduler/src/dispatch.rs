//! [`Dispatch`]: what works a claimed queue item. The executor implements it, so the
//! dependency arrow points scheduler ← executor.

use sluice_store::{Commit, CommitResult, QueueItem};

use crate::committer::Committer;

/// The scheduler's side of one dispatch, handed to [`Dispatch::dispatch`]: it writes
/// commits that keep the lease ([`Disposition::Continue`]) before the final one, so a
/// handler can carry a run on without a claim in between. The scheduler keeps
/// heartbeating the lease until the dispatch returns.
///
/// [`Disposition::Continue`]: sluice_store::Disposition::Continue
#[derive(Debug, Clone)]
pub struct Flight {
    committer: Option<Committer>,
}

impl Flight {
    pub(crate) fn new(committer: Committer) -> Self {
        Self {
            committer: Some(committer),
        }
    }

    /// A flight that cannot save (tests and tools calling a handler directly):
    /// [`Flight::save`] always fails, so handlers end the item the ordinary way.
    pub fn detached() -> Self {
        Self { committer: None }
    }

    /// Whether [`Flight::save`] can write.
    pub fn can_save(&self) -> bool {
        self.committer.is_some()
    }

    /// Writes `commit` now, group-committed with others, and returns how it went.
    /// Meant for `Continue` commits; any other disposition ends the item, after which
    /// the dispatch must return a commit that will find its lease gone.
    pub async fn save(&self, commit: Commit) -> sluice_store::Result<CommitResult> {
        match &self.committer {
            Some(c) => c.commit(commit).await,
            None => Err(sluice_store::Error::Backend(
                "this dispatch cannot save before it ends".into(),
            )),
        }
    }
}

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
    /// `flight` writes intermediate commits that keep the lease (see [`Flight`]).
    async fn dispatch(&self, item: QueueItem, flight: &Flight) -> Commit;

    /// Told how an item's commit went (metrics, logs). `LeaseLost` means the result
    /// was refused: another holder or a cancellation got there first.
    fn committed(&self, item: &QueueItem, result: CommitResult) {
        let _ = (item, result);
    }
}

/// Routes items by [`QueueKind`](sluice_store::QueueKind): the executor takes calls,
/// sleeps and timeouts; cron ticks, debounce and batch flushes may go elsewhere.
#[derive(Debug, Clone)]
pub struct Routes {
    default: std::sync::Arc<dyn Dispatch>,
    by_kind: Vec<(sluice_store::QueueKind, std::sync::Arc<dyn Dispatch>)>,
}

impl Routes {
    /// Every kind goes to `default` unless routed.
    pub fn new(default: std::sync::Arc<dyn Dispatch>) -> Self {
        Self {
            default,
            by_kind: Vec::new(),
        }
    }

    /// Items of `kind` go to `handler`.
    pub fn route(
        mut self,
        kind: sluice_store::QueueKind,
        handler: std::sync::Arc<dyn Dispatch>,
    ) -> Self {
        self.by_kind.retain(|(k, _)| *k != kind);
        self.by_kind.push((kind, handler));
        self
    }

    fn handler(&self, kind: sluice_store::QueueKind) -> &std::sync::Arc<dyn Dispatch> {
        self.by_kind
            .iter()
            .find(|(k, _)| *k == kind)
            .map(|(_, h)| h)
            .unwrap_or(&self.default)
    }
}

#[async_trait::async_trait]
impl Dispatch for Routes {
    async fn dispatch(&self, item: QueueItem, flight: &Flight) -> Commit {
        self.handler(item.kind).dispatch(item, flight).await
    }

    fn committed(&self, item: &QueueItem, result: CommitResult) {
        self.handler(item.kind).committed(item, result);
    }
}
