//! [`Wake`]: the pushed wake-up signal the claim loop sleeps on.

use sluice_core::Millis;
use std::sync::atomic::{AtomicI64, Ordering};
use tokio::sync::Notify;

/// The earliest due time anyone told us about since the claim loop last looked,
/// and a notification to cut its sleep short.
#[derive(Debug)]
pub(crate) struct Wake {
    earliest: AtomicI64,
    notify: Notify,
}

impl Wake {
    pub(crate) fn new() -> Self {
        Self {
            earliest: AtomicI64::new(i64::MAX),
            notify: Notify::new(),
        }
    }

    /// Items are available from `at`.
    pub(crate) fn at(&self, at: Millis) {
        let prev = self.earliest.fetch_min(at.0, Ordering::AcqRel);
        if at.0 < prev {
            self.notify.notify_one();
        }
    }

    /// Takes the earliest time told so far (clearing it).
    pub(crate) fn take(&self) -> Option<Millis> {
        match self.earliest.swap(i64::MAX, Ordering::AcqRel) {
            i64::MAX => None,
            t => Some(Millis(t)),
        }
    }

    /// Resolves at the next [`Wake::at`] that moved the earliest time earlier.
    pub(crate) async fn notified(&self) {
        self.notify.notified().await;
    }
}
