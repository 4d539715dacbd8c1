//! TS v4 checkpointing (protocol §7): while a call is in flight, the SDK posts each
//! step it ran to `POST /v1/checkpoint/{run}/async`. The steps are kept with the
//! in-flight call on this node and saved in the same commit as the call's reply, so a
//! checkpoint costs no write of its own. A checkpoint whose dispatch is no longer in
//! flight here (the run ended, the lease moved) is stale: 409.

use serde::Deserialize;
use serde_json::Value;
use sluice_core::{Millis, QueueItemId, RunId};
use sluice_protocol::call::step_data;
use sluice_protocol::op::{Op, Opcode};
use sluice_store::{LeaseToken, StepRecord, StepStatus};
use std::collections::HashMap;
use std::sync::Mutex;

use crate::options::Limits;
use crate::{Error, Result};

/// The body of `POST /v1/checkpoint/{run}/async`.
#[derive(Debug, Clone, Deserialize)]
pub struct CheckpointRequest {
    #[serde(default)]
    pub run_id: Option<String>,
    #[serde(default)]
    pub fn_id: Option<String>,
    /// The `ctx.qi_id` of the call it belongs to.
    #[serde(default)]
    pub qi_id: String,
    /// The steps run so far (StepRun ops).
    #[serde(default)]
    pub steps: Vec<Op>,
}

#[derive(Debug)]
struct Flight {
    token: LeaseToken,
    run_id: RunId,
    steps: Vec<StepRecord>,
    bytes: usize,
}

/// Calls in flight on this node, with the steps checkpointed during each.
#[derive(Debug, Default)]
pub(crate) struct Flights {
    map: Mutex<HashMap<QueueItemId, Flight>>,
}

/// A registered in-flight call.
#[derive(Debug)]
pub(crate) struct InFlight<'a> {
    flights: &'a Flights,
    item: QueueItemId,
}

impl InFlight<'_> {
    /// Ends the call, returning the steps checkpointed during it.
    pub(crate) fn finish(self) -> Vec<StepRecord> {
        self.flights.finish(self.item)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.flights.finish(self.item);
    }
}

/// Reads `<item>:<lease token>` back.
fn parse_qi_id(qi_id: &str) -> Option<(QueueItemId, LeaseToken)> {
    let (item, token) = qi_id.split_once(':')?;
    Some((
        QueueItemId(item.parse().ok()?),
        LeaseToken(token.parse().ok()?),
    ))
}

impl Flights {
    /// Registers an in-flight call; the registration ends when the guard drops
    /// (also when the call is abandoned: lease lost, shutdown).
    pub(crate) fn start(
        &self,
        item: QueueItemId,
        token: LeaseToken,
        run_id: RunId,
    ) -> InFlight<'_> {
        self.insert(item, token, run_id);
        InFlight {
            flights: self,
            item,
        }
    }

    fn insert(&self, item: QueueItemId, token: LeaseToken, run_id: RunId) {
        self.map.lock().expect("not poisoned").insert(
            item,
            Flight {
                token,
                run_id,
                steps: Vec::new(),
                bytes: 0,
            },
        );
    }

    /// Ends a flight, returning its checkpointed steps.
    fn finish(&self, item: QueueItemId) -> Vec<StepRecord> {
        self.map
            .lock()
            .expect("not poisoned")
            .remove(&item)
            .map(|f| f.steps)
            .unwrap_or_default()
    }

    /// Adds checkpointed steps to their in-flight call.
    pub(crate) fn checkpoint(
        &self,
        run_id: RunId,
        request: CheckpointRequest,
        limits: &Limits,
        now: Millis,
    ) -> Result<usize> {
        let (item, token) = parse_qi_id(&request.qi_id).ok_or(Error::Stale)?;
        let mut map = self.map.lock().expect("not poisoned");
        let flight = map.get_mut(&item).ok_or(Error::Stale)?;
        if flight.token != token || flight.run_id != run_id {
            return Err(Error::Stale);
        }
        let mut added = 0;
        for op in request.steps {
            if !matches!(op.op, Opcode::StepRun | Opcode::Step) || op.id.is_empty() {
                continue;
            }
            let data = op.data.clone().unwrap_or(Value::Null);
            let size = serde_json::to_vec(&data).map(|v| v.len()).unwrap_or(0);
            if size > limits.max_step_output
                || flight.steps.len() >= limits.max_steps
                || flight.bytes + size > limits.use_api_above
            {
                // Refused: the SDK falls back to returning the step in its reply,
                // where the limit fails the run with a clear error.
                return Err(Error::BadRequest(format!(
                    "checkpointed step of {size} bytes is over a limit"
                )));
            }
            flight.bytes += size;
            let result = if op.op == Opcode::Step {
                data
            } else {
                step_data(data)
            };
            flight.steps.retain(|s| s.step_id != op.id);
            // Completion order is read back from `ended_at`: keep it strictly rising.
            let at = flight
                .steps
                .last()
                .and_then(|s| s.ended_at)
                .map_or(now, |last| now.max(last.plus_ms(1)));
            flight.steps.push(StepRecord {
                run_id,
                step_id: op.id.clone(),
                name: op
                    .display_name
                    .clone()
                    .or(op.name.clone())
                    .unwrap_or_default(),
                op: op.op.as_str().to_owned(),
                status: StepStatus::Completed,
                result: Some(result),
                error: None,
                attempts: 1,
                opts: op.opts.clone().filter(|o| !o.is_null()),
                started_at: Some(at),
                ended_at: Some(at),
            });
            added += 1;
        }
        Ok(added)
    }
}
