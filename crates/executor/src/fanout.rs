//! [`FanOut`]: how events the executor emits (`inngest/function.finished`, `…failed`,
//! `…invoked`, `…cancelled`) find what they cause. The broker implements it; the
//! resulting [`Publish`]es go into the same commit as the outcome that emitted them.

use sluice_core::{Millis, RunId};
use sluice_store::{Event, NewQueueItem, NewRun, Publish, Run};

/// Computes the fan-out of events without writing anything.
#[async_trait::async_trait]
pub trait FanOut: Send + Sync + std::fmt::Debug + 'static {
    /// One [`Publish`] per event, in order.
    async fn fan_out(&self, events: Vec<Event>, now: Millis) -> Result<Vec<Publish>, String>;

    /// A new run repeating `run` from its stored `events`, planned as its trigger plans
    /// a run. The default is a bare run of the same function (no priority, no cancel
    /// watches).
    async fn rerun(&self, run: &Run, _events: &[Event], now: Millis) -> Result<NewRun, String> {
        Ok(bare_rerun(run, now))
    }
}

/// A rerun with nothing from the function's configuration.
fn bare_rerun(run: &Run, now: Millis) -> NewRun {
    let id = RunId::new();
    NewRun {
        id,
        function_id: run.function_id,
        event_ids: run.event_ids.clone(),
        correlation_id: None,
        rerun_of: Some(run.id),
        created_at: now,
        first: NewQueueItem::call(id, run.function_id, None, now),
        waits: Vec::new(),
    }
}

/// Stores emitted events and nothing else (no runs, resumes or cancels): for tests
/// and tools that run without a broker.
#[derive(Debug, Clone, Copy, Default)]
pub struct StoreOnly;

#[async_trait::async_trait]
impl FanOut for StoreOnly {
    async fn fan_out(&self, events: Vec<Event>, _now: Millis) -> Result<Vec<Publish>, String> {
        Ok(events
            .into_iter()
            .map(|event| Publish {
                event,
                runs: Vec::new(),
                resumes: Vec::new(),
                cancels: Vec::new(),
            })
            .collect())
    }
}

/// The broker computes the fan-out: runs the events trigger (including the target of
/// an `inngest/function.invoked`), waits they resume (an invoke's
/// `inngest/function.finished`), runs they cancel.
#[async_trait::async_trait]
impl FanOut for sluice_broker::Broker {
    async fn fan_out(&self, events: Vec<Event>, now: Millis) -> Result<Vec<Publish>, String> {
        sluice_broker::Broker::fan_out(self, events, now)
            .await
            .map_err(|e| e.to_string())
    }

    /// Priority and cancel watches from the function's current configuration; a bare
    /// rerun when the function is no longer registered.
    async fn rerun(&self, run: &Run, events: &[Event], now: Millis) -> Result<NewRun, String> {
        let planned = self
            .plan_rerun(run, events, now)
            .await
            .map_err(|e| e.to_string())?;
        Ok(planned.unwrap_or_else(|| bare_rerun(run, now)))
    }
}
