//! What an attempt writes: the reply (or its absence) turned into one [`Commit`] and
//! the events it emits. Pure: every input, `now` included, is passed in.
//!
//! The retry decision itself is [`RetryPolicy::decide`]; this module reads the reply
//! into an [`AttemptResult`] (step outcomes from the opcode, never from headers) and
//! applies the decision (protocol §3–4).

use rand::Rng;
use serde_json::{Map, Value, json};
use sluice_core::{AttemptResult, Millis, Outcome, RetryPolicy, RunStatus, WaitId};
use sluice_protocol::call::{step_data, step_error};
use sluice_protocol::op::{Op, Opcode, SleepTarget, parse_ops};
use sluice_store::{
    Commit, Disposition, Event, LeaseRef, NewQueueItem, NewWait, QueueItem, QueueKind, RunState,
    RunUpdate, StepRecord, StepStatus, WaitKind,
};

use crate::ending::{Ended, Ending, FUNCTION_FINISHED, FUNCTION_INVOKED, end_events, error_value};
use crate::options::Limits;
use crate::reply::Reply;
use crate::request::Target;

/// One attempt, as the executor saw it.
#[derive(Debug)]
pub struct Attempt<'a> {
    pub state: &'a RunState,
    pub item: &'a QueueItem,
    pub lease: LeaseRef,
    pub target: &'a Target,
    pub limits: &'a Limits,
    pub retry: &'a RetryPolicy,
    /// The reply, or why there was none.
    pub result: Result<Reply, String>,
    /// Steps the SDK checkpointed during the call (TS v4), saved with this commit.
    pub checkpointed: Vec<StepRecord>,
    /// Invoke targets (slugs) known not to be registered: those invokes fail at once.
    pub missing_functions: Vec<String>,
    pub now: Millis,
}

/// What to write: the commit, and the events it emits (fanned out by the caller
/// into `commit.publish`).
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub commit: Commit,
    pub emit: Vec<Event>,
    /// Set when the run ends.
    pub ending: Option<Ending>,
}

/// Reads a reply into the [`AttemptResult`] the retry decision takes, with the ops
/// of a 206 (or the reason they could not be read).
pub fn classify(result: &Result<Reply, String>) -> (AttemptResult, Vec<Op>) {
    let reply = match result {
        Err(error) => {
            return (
                AttemptResult::Transport {
                    error: error.clone(),
                },
                Vec::new(),
            );
        }
        Ok(reply) => reply,
    };
    match reply.status {
        200 => (AttemptResult::Responded, Vec::new()),
        206 => match parse_ops(&reply.body) {
            Ok(ops) => {
                let only = if ops.len() == 1 { Some(&ops[0]) } else { None };
                let message = |op: &Op| {
                    op.error
                        .as_ref()
                        .map(|e| e.to_string())
                        .unwrap_or_else(|| "step failed".into())
                };
                let result = match only.map(|op| &op.op) {
                    Some(Opcode::StepError) => AttemptResult::StepError {
                        error: message(&ops[0]),
                    },
                    Some(Opcode::StepFailed) => AttemptResult::StepFailed {
                        error: message(&ops[0]),
                    },
                    _ => AttemptResult::Responded,
                };
                (result, ops)
            }
            Err(e) => (
                AttemptResult::Http {
                    status: 206,
                    no_retry: None,
                    retry_after: None,
                    error: format!("unreadable ops: {e}"),
                },
                Vec::new(),
            ),
        },
        status => (
            AttemptResult::Http {
                status,
                no_retry: reply.no_retry,
                retry_after: reply.retry_after,
                error: reply.error_message(),
            },
            Vec::new(),
        ),
    }
}

/// Builds the commit for an attempt.
pub fn plan(attempt: Attempt<'_>, rng: &mut impl Rng) -> Plan {
    let (mut result, ops) = classify(&attempt.result);
    let no_ops = ops.iter().all(|op| op.op == Opcode::None);
    let is_206 = matches!(&attempt.result, Ok(r) if r.status == 206);
    if is_206 && no_ops && attempt.checkpointed.is_empty() {
        // Nothing ran and nothing was asked for: retry rather than leave the run
        // waiting on nothing.
        result = AttemptResult::Http {
            status: 206,
            no_retry: None,
            retry_after: None,
            error: "the SDK replied 206 with no ops".into(),
        };
    }
    let outcome = attempt.retry.decide(
        result.clone(),
        u32::try_from(attempt.item.attempt).unwrap_or(0),
        attempt.target.max_attempts,
        attempt.now,
        rng,
    );
    let mut b = Builder::new(&attempt);
    if let Ok(reply) = &attempt.result
        && attempt.state.run.request_version.is_none()
        && let Some(v) = reply.request_version
    {
        b.update.request_version = Some(v);
    }
    match outcome {
        Outcome::Completed => match &attempt.result {
            Ok(reply) if reply.status == 200 => {
                let output = reply.json();
                b.finish_with_output(output);
            }
            _ => {
                b.apply_ops(&ops, rng);
                if no_ops && let Some(last) = attempt.checkpointed.last() {
                    // Everything ran through checkpoints: carry on after the last.
                    b.continue_after(&last.step_id);
                }
            }
        },
        Outcome::Retry { at } => {
            let error = match &result {
                AttemptResult::StepError { error }
                | AttemptResult::Transport { error }
                | AttemptResult::Http { error, .. } => error.clone(),
                _ => String::new(),
            };
            if let (AttemptResult::StepError { .. }, Some(op)) = (&result, ops.first()) {
                let err = op.error.as_ref().map(|e| json!(e));
                b.step(op, StepStatus::Retrying, None, err);
            }
            b.commit.disposition = Disposition::Retry {
                at,
                error: Some(error_value("Error", error)),
            };
        }
        Outcome::Failed { error } => match (&result, ops.first()) {
            (AttemptResult::StepError { .. } | AttemptResult::StepFailed { .. }, Some(op)) => {
                // The step failed for good: memoize the error so user code can catch it.
                let err = op
                    .error
                    .as_ref()
                    .map(|e| json!(e))
                    .unwrap_or_else(|| error_value("Error", error));
                b.step(
                    op,
                    StepStatus::Failed,
                    Some(step_error(err.clone())),
                    Some(err),
                );
                b.continue_after(&op.id);
            }
            _ => {
                let err = match &attempt.result {
                    Ok(reply) => match reply.json() {
                        Value::Object(m) if m.contains_key("message") => {
                            let mut m = m;
                            m.remove("__serialized");
                            Value::Object(m)
                        }
                        _ => error_value("Error", error),
                    },
                    Err(_) => error_value("Error", error),
                };
                b.finish(Ending::Failed(err));
            }
        },
    }
    b.done()
}

/// Fails the run of `attempt` without a call (a limit broken, the function gone).
pub fn fail(attempt: Attempt<'_>, message: String) -> Plan {
    let mut b = Builder::new(&attempt);
    b.fail_run(message);
    b.done()
}

/// A sleep ended (`Wake`) or a wait timed out (`WaitTimeout`): memoize the step's
/// result (`null`, or an invoke timeout error) and continue the run.
pub fn resume(item: &QueueItem, lease: LeaseRef, state: &RunState, now: Millis) -> Commit {
    let mut commit = Commit::new(lease, Disposition::Done);
    let (Some(run_id), Some(step_id)) = (item.run_id, item.step_id.clone()) else {
        return commit;
    };
    if state.run.status.is_terminal() {
        return commit;
    }
    let kind = item.payload.get("kind").and_then(Value::as_str);
    let (result, status, op) = match (item.kind, kind) {
        (QueueKind::WaitTimeout, Some("invoke")) => {
            let err = error_value(
                "InngestInvokeTimeoutError",
                "timed out waiting for the invoked function to complete",
            );
            (step_error(err), StepStatus::Failed, "InvokeFunction")
        }
        (QueueKind::WaitTimeout, _) => (Value::Null, StepStatus::Completed, "WaitForEvent"),
        _ => (Value::Null, StepStatus::Completed, "Sleep"),
    };
    if item.kind == QueueKind::WaitTimeout {
        commit.require_wait = item
            .payload
            .get("wait_id")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<WaitId>().ok());
    }
    let existing = state.steps.iter().find(|s| s.step_id == step_id);
    commit.steps.push(StepRecord {
        run_id,
        step_id: step_id.clone(),
        name: existing.map(|s| s.name.clone()).unwrap_or_default(),
        op: existing
            .map(|s| s.op.clone())
            .unwrap_or_else(|| op.to_owned()),
        status,
        result: Some(result),
        error: None,
        attempts: existing.map(|s| s.attempts).unwrap_or(1),
        opts: existing.and_then(|s| s.opts.clone()),
        started_at: existing.and_then(|s| s.started_at),
        ended_at: Some(now),
    });
    commit
        .enqueue
        .push(discovery(item, &state.run, &step_id, false, now));
    commit
}

/// The discovery call that continues a run after `after` was saved. The dedupe key
/// collapses duplicates (two completions racing to continue the same run).
fn discovery(
    item: &QueueItem,
    run: &sluice_store::Run,
    after: &str,
    parallel: bool,
    now: Millis,
) -> NewQueueItem {
    let run_id = run.id;
    let mut next = NewQueueItem::call(run_id, run.function_id, None, now);
    next.priority = item.priority;
    next.concurrency_keys = item.concurrency_keys.clone();
    next.payload = json!({"after": after, "parallel": parallel});
    next.dedupe_key = Some(format!("{run_id}:after:{after}"));
    next
}

struct Builder<'a> {
    a: &'a Attempt<'a>,
    commit: Commit,
    update: RunUpdate,
    emit: Vec<Event>,
    ending: Option<Ending>,
    after: Option<String>,
}

impl<'a> Builder<'a> {
    fn new(a: &'a Attempt<'a>) -> Self {
        let mut commit = Commit::new(a.lease, Disposition::Done);
        commit.steps = a.checkpointed.clone();
        let mut update = RunUpdate::default();
        if a.state.run.status == RunStatus::Queued {
            update.status = Some(RunStatus::Running);
            update.started_at = Some(a.now);
        }
        Self {
            a,
            commit,
            update,
            emit: Vec::new(),
            ending: None,
            after: None,
        }
    }

    fn run_id(&self) -> sluice_core::RunId {
        self.a.state.run.id
    }

    fn step(&mut self, op: &Op, status: StepStatus, result: Option<Value>, error: Option<Value>) {
        let name = op
            .display_name
            .clone()
            .or_else(|| op.name.clone())
            .unwrap_or_default();
        let ended = matches!(status, StepStatus::Completed | StepStatus::Failed);
        // Ops that report a run of the step count this item's attempts.
        let ran = matches!(
            op.op,
            Opcode::StepRun | Opcode::Step | Opcode::StepError | Opcode::StepFailed
        );
        let attempts = if ran { self.a.item.attempt + 1 } else { 1 };
        let error = match error {
            Some(e) => Some(self.with_history(&op.id, e, attempts)),
            // A step that succeeded after failed attempts keeps their errors (timeline).
            None if status == StepStatus::Completed => self.previous_error(&op.id),
            None => None,
        };
        self.commit.steps.push(StepRecord {
            run_id: self.run_id(),
            step_id: op.id.clone(),
            name,
            op: op.op.as_str().to_owned(),
            status,
            result,
            error,
            attempts,
            opts: op.opts.clone().filter(|o| !o.is_null()),
            started_at: Some(self.a.now),
            ended_at: ended.then_some(self.a.now),
        });
    }

    /// A step's error for the timeline: the latest attempt's error, with `attempt`
    /// and a `history` of the earlier attempts' errors (`{attempt, name, message}`),
    /// carried over from what the step stored before.
    fn with_history(&self, step_id: &str, error: Value, attempt: i32) -> Value {
        let Value::Object(mut latest) = error else {
            return error;
        };
        let previous = self.previous_error(step_id);
        let previous = previous.as_ref();
        let mut history: Vec<Value> = previous
            .and_then(|p| p.get("history"))
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if let Some(p) = previous.and_then(Value::as_object) {
            history.push(json!({
                "attempt": p.get("attempt").cloned().unwrap_or(Value::Null),
                "name": p.get("name").cloned().unwrap_or(Value::Null),
                "message": p.get("message").cloned().unwrap_or(Value::Null),
            }));
        }
        latest.insert("attempt".into(), json!(attempt));
        if !history.is_empty() {
            latest.insert("history".into(), Value::Array(history));
        }
        Value::Object(latest)
    }

    /// The error the step stored before this attempt, if any.
    fn previous_error(&self, step_id: &str) -> Option<Value> {
        self.a
            .state
            .steps
            .iter()
            .find(|s| s.step_id == step_id)
            .and_then(|s| s.error.clone())
    }

    fn continue_after(&mut self, step_id: &str) {
        self.after = Some(step_id.to_owned());
    }

    fn enqueue(&mut self, kind: QueueKind, step_id: &str, at: Millis, payload: Value) {
        let run_id = self.run_id();
        let mut item = NewQueueItem::call(run_id, self.a.target.id, Some(step_id.to_owned()), at);
        item.kind = kind;
        item.payload = payload;
        item.priority = self.a.item.priority;
        item.concurrency_keys = self.a.item.concurrency_keys.clone();
        item.dedupe_key = Some(format!("{run_id}:{}:{step_id}", kind.as_str()));
        self.commit.enqueue.push(item);
    }

    fn fail_run(&mut self, message: String) {
        self.finish(Ending::Failed(error_value("Error", message)));
    }

    fn finish_with_output(&mut self, output: Value) {
        let size = serde_json::to_vec(&output).map(|v| v.len()).unwrap_or(0);
        if size > self.a.limits.max_step_output {
            return self.fail_run(format!(
                "function output is {size} bytes, more than the limit of {}",
                self.a.limits.max_step_output
            ));
        }
        self.finish(Ending::Completed(output));
    }

    fn finish(&mut self, ending: Ending) {
        self.update.status = Some(match ending {
            Ending::Completed(_) => RunStatus::Completed,
            Ending::Failed(_) => RunStatus::Failed,
            Ending::Cancelled => RunStatus::Cancelled,
        });
        match &ending {
            Ending::Completed(output) => self.update.output = Some(output.clone()),
            Ending::Failed(error) => self.update.error = Some(error.clone()),
            Ending::Cancelled => {}
        }
        self.update.ended_at = Some(self.a.now);
        // Nothing else of this run goes ahead.
        self.commit.enqueue.clear();
        self.commit.waits.clear();
        self.after = None;
        let events: Vec<Value> = self
            .a
            .state
            .events
            .iter()
            .map(|e| e.to_sdk_json())
            .collect();
        self.emit = self
            .emit
            .drain(..)
            .filter(|e| e.name != FUNCTION_INVOKED)
            .collect();
        self.emit.extend(end_events(Ended {
            run: &self.a.state.run,
            function_slug: &self.a.target.slug,
            events: &events,
            ending: &ending,
            now: self.a.now,
        }));
        self.ending = Some(ending);
    }

    fn apply_ops(&mut self, ops: &[Op], rng: &mut impl Rng) {
        let now = self.a.now;
        if ops.len() > 1 && !self.a.state.run.disable_immediate_execution {
            self.update.disable_immediate_execution = Some(true);
        }
        for op in ops {
            if self.ending.is_some() {
                break;
            }
            match &op.op {
                Opcode::StepRun | Opcode::Step => {
                    let data = op.data.clone().unwrap_or(Value::Null);
                    let size = serde_json::to_vec(&data).map(|v| v.len()).unwrap_or(0);
                    if size > self.a.limits.max_step_output {
                        self.fail_run(format!(
                            "step {:?} output is {size} bytes, more than the limit of {}",
                            op.display_name.as_deref().unwrap_or(&op.id),
                            self.a.limits.max_step_output
                        ));
                        break;
                    }
                    let result = if op.op == Opcode::Step {
                        data
                    } else {
                        step_data(data)
                    };
                    self.step(op, StepStatus::Completed, Some(result), None);
                    self.continue_after(&op.id);
                }
                Opcode::StepFailed => {
                    let err = op.error.as_ref().map(|e| json!(e)).unwrap_or(Value::Null);
                    self.step(
                        op,
                        StepStatus::Failed,
                        Some(step_error(err.clone())),
                        Some(err),
                    );
                    self.continue_after(&op.id);
                }
                Opcode::StepError => {
                    // Only alone is a StepError retried by the decision; among other
                    // ops, run the step again on its own.
                    let err = op.error.as_ref().map(|e| json!(e));
                    self.step(op, StepStatus::Retrying, None, err);
                    let at = now.plus(self.a.retry.backoff(0, rng));
                    self.enqueue(QueueKind::Call, &op.id, at, Value::Null);
                }
                Opcode::StepPlanned => {
                    self.step(op, StepStatus::Planned, None, None);
                    self.enqueue(QueueKind::Call, &op.id, now, Value::Null);
                }
                // A relative sleep counts from the end of this millisecond: `now` is
                // truncated to the millisecond, and a sleep must never end early.
                Opcode::Sleep => match op.sleep_target(now.0 + 1) {
                    Ok(SleepTarget::Until(at)) => {
                        let at = Millis(at);
                        self.step(op, StepStatus::Sleeping, None, None);
                        if let Some(rec) = self.commit.steps.last_mut() {
                            rec.opts = Some(json!({"until": at.to_rfc3339()}));
                        }
                        self.enqueue(QueueKind::Wake, &op.id, at, Value::Null);
                    }
                    Err(e) => self.fail_run(e.to_string()),
                },
                Opcode::WaitForEvent => match op.wait_for_event(now.0) {
                    Ok(w) => {
                        let wait_id = WaitId::new();
                        let expires_at = Millis(w.expires_at);
                        self.commit.waits.push(NewWait {
                            id: wait_id,
                            run_id: self.run_id(),
                            kind: WaitKind::Event,
                            step_id: Some(op.id.clone()),
                            event_name: w.event.clone(),
                            expression: w.if_expr.clone(),
                            correlation_id: None,
                            trigger_event: self.trigger_event(),
                            expires_at: Some(expires_at),
                            created_at: now,
                        });
                        self.step(op, StepStatus::Waiting, None, None);
                        if let Some(rec) = self.commit.steps.last_mut() {
                            rec.opts = Some(json!({"event": w.event, "if": w.if_expr,
                                "timeout": expires_at.to_rfc3339()}));
                        }
                        let payload = json!({"wait_id": wait_id.to_string(), "kind": "event"});
                        self.enqueue(QueueKind::WaitTimeout, &op.id, expires_at, payload);
                    }
                    Err(e) => self.fail_run(e.to_string()),
                },
                Opcode::InvokeFunction => match op.invoke_function(now.0) {
                    Ok(inv) => self.invoke(op, inv),
                    Err(e) => self.fail_run(e.to_string()),
                },
                Opcode::RunComplete => {
                    let output = op.data.clone().unwrap_or(Value::Null);
                    self.finish_with_output(output);
                }
                Opcode::None => {}
                other => self.fail_run(format!(
                    "the SDK asked for {other}, which Sluice does not support"
                )),
            }
        }
    }

    fn trigger_event(&self) -> Value {
        self.a
            .state
            .events
            .first()
            .map(|e| e.to_sdk_json())
            .unwrap_or(Value::Null)
    }

    fn invoke(&mut self, op: &Op, inv: sluice_protocol::op::InvokeFunction) {
        let now = self.a.now;
        if self.a.missing_functions.contains(&inv.function_id) {
            let err = error_value(
                "Error",
                format!(
                    "could not invoke function {:?}: it is not registered",
                    inv.function_id
                ),
            );
            self.step(
                op,
                StepStatus::Failed,
                Some(step_error(err.clone())),
                Some(err),
            );
            self.continue_after(&op.id);
            return;
        }
        let run_id = self.run_id();
        let correlation_id = format!("{run_id}.{}", op.id);
        let mut data = match inv.payload.data {
            Value::Object(m) => m,
            other => {
                let mut m = Map::new();
                m.insert("data".into(), other);
                m
            }
        };
        data.insert(
            "_inngest".into(),
            json!({
                "fn_id": inv.function_id,
                "correlation_id": correlation_id,
                "expire": inv.expires_at,
                "gid": "",
                "name": FUNCTION_INVOKED,
                "source_app_id": "",
                "source_fn_id": self.a.target.id.to_string(),
                "source_fn_v": 0,
            }),
        );
        self.emit.push(Event {
            id: sluice_core::EventId::new(),
            external_id: None,
            name: FUNCTION_INVOKED.to_owned(),
            data: Value::Object(data),
            user: json!({}),
            version: inv.payload.v.clone(),
            ts: now,
            received_at: now,
        });
        let wait_id = WaitId::new();
        let expires_at = inv.expires_at.map(Millis);
        self.commit.waits.push(NewWait {
            id: wait_id,
            run_id,
            kind: WaitKind::Invoke,
            step_id: Some(op.id.clone()),
            event_name: FUNCTION_FINISHED.to_owned(),
            expression: None,
            correlation_id: Some(correlation_id),
            trigger_event: self.trigger_event(),
            expires_at,
            created_at: now,
        });
        self.step(op, StepStatus::Invoking, None, None);
        if let Some(at) = expires_at {
            let payload = json!({"wait_id": wait_id.to_string(), "kind": "invoke"});
            self.enqueue(QueueKind::WaitTimeout, &op.id, at, payload);
        }
    }

    fn done(mut self) -> Plan {
        if let Some(after) = self.after.take()
            && self.ending.is_none()
        {
            let parallel = self.a.item.step_id.is_some();
            let next = discovery(self.a.item, &self.a.state.run, &after, parallel, self.a.now);
            self.commit.enqueue.push(next);
        }
        if self.update != RunUpdate::default() {
            self.commit.run = Some((self.run_id(), self.update));
        }
        Plan {
            commit: self.commit,
            emit: self.emit,
            ending: self.ending,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(status: u16, body: &str, no_retry: Option<bool>) -> Result<Reply, String> {
        Ok(Reply {
            status,
            body: body.as_bytes().to_vec(),
            no_retry,
            ..Reply::default()
        })
    }

    fn fixture() -> (RunState, QueueItem, Target) {
        let run_id = sluice_core::RunId::new();
        let function_id = sluice_core::FunctionId::new();
        let run = sluice_store::Run {
            id: run_id,
            function_id,
            status: RunStatus::Running,
            event_ids: vec![],
            output: None,
            error: None,
            request_version: Some(2),
            disable_immediate_execution: false,
            correlation_id: None,
            rerun_of: None,
            created_at: Millis(0),
            started_at: Some(Millis(0)),
            ended_at: None,
        };
        let item = QueueItem {
            id: sluice_core::QueueItemId(7),
            kind: QueueKind::Call,
            run_id: Some(run_id),
            function_id: Some(function_id),
            step_id: None,
            payload: Value::Null,
            available_at: Millis(0),
            priority: 0,
            attempt: 0,
            concurrency_keys: vec![],
            dedupe_key: None,
            last_error: None,
            lease_owner: Some("n".into()),
            lease_token: Some(sluice_store::LeaseToken(uuid::Uuid::nil())),
            lease_expires_at: Some(Millis(1)),
            created_at: Millis(0),
        };
        let target = Target {
            id: function_id,
            slug: "app-fn".into(),
            url: "http://h/api".into(),
            max_attempts: 3,
        };
        let state = RunState {
            run,
            events: vec![],
            steps: vec![],
        };
        (state, item, target)
    }

    /// What one reply writes: dispositions, items, steps and run updates.
    #[test]
    fn plans_each_reply_into_one_commit() {
        let (state, item, target) = fixture();
        let now = Millis(1_000_000);
        let plan_for = |status: u16, body: &str| {
            let attempt = Attempt {
                state: &state,
                item: &item,
                lease: item.lease().unwrap(),
                target: &target,
                limits: &Limits::default(),
                retry: &RetryPolicy::default(),
                result: reply(status, body, None),
                checkpointed: vec![],
                missing_functions: vec![],
                now,
            };
            plan(attempt, &mut rand::thread_rng())
        };
        let kinds = |p: &Plan| -> Vec<(QueueKind, Option<String>, i64)> {
            p.commit
                .enqueue
                .iter()
                .map(|q| (q.kind, q.step_id.clone(), q.available_at.0 - now.0))
                .collect()
        };

        let p = plan_for(206, r#"[{"op":"StepRun","id":"a","data":1}]"#);
        assert_eq!(p.commit.disposition, Disposition::Done);
        assert_eq!(kinds(&p), vec![(QueueKind::Call, None, 0)]);
        assert_eq!(p.commit.steps[0].result, Some(json!({"data": 1})));
        assert_eq!(p.commit.run, None, "no run write for a plain step");

        let p = plan_for(
            206,
            r#"[{"op":"StepPlanned","id":"p1"},{"op":"StepPlanned","id":"p2"}]"#,
        );
        assert_eq!(
            kinds(&p),
            vec![
                (QueueKind::Call, Some("p1".into()), 0),
                (QueueKind::Call, Some("p2".into()), 0)
            ]
        );
        let update = &p.commit.run.as_ref().unwrap().1;
        assert_eq!(update.disable_immediate_execution, Some(true));

        // Relative sleeps count from the end of the (truncated) current millisecond,
        // so they never end early.
        let p = plan_for(206, r#"[{"op":"Sleep","id":"s","name":"1m"}]"#);
        assert_eq!(kinds(&p), vec![(QueueKind::Wake, Some("s".into()), 60_001)]);

        let p = plan_for(
            206,
            r#"[{"op":"WaitForEvent","id":"w","name":"x/y","opts":{"timeout":"2s"}}]"#,
        );
        assert_eq!(
            kinds(&p),
            vec![(QueueKind::WaitTimeout, Some("w".into()), 2_000)]
        );
        assert_eq!(p.commit.waits[0].event_name, "x/y");

        let p = plan_for(206, "[]");
        assert!(
            matches!(p.commit.disposition, Disposition::Retry { .. }),
            "an empty reply is retried"
        );

        let p = plan_for(206, r#"[{"op":"AIGateway","id":"g"}]"#);
        let update = &p.commit.run.as_ref().unwrap().1;
        assert_eq!(
            update.status,
            Some(RunStatus::Failed),
            "unsupported ops fail the run"
        );
        assert_eq!(p.emit.len(), 2, "finished and failed");

        let p = plan_for(200, r#"{"ok":1}"#);
        let update = &p.commit.run.as_ref().unwrap().1;
        assert_eq!(
            (update.status, update.output.clone()),
            (Some(RunStatus::Completed), Some(json!({"ok": 1})))
        );
        assert_eq!(p.emit.len(), 1);
        assert!(p.commit.enqueue.is_empty());
    }

    /// Step outcomes come from the opcode, whatever the headers say.
    #[test]
    fn classifies_replies_by_opcode_not_headers() {
        let step_failed =
            r#"[{"op":"StepFailed","id":"b","error":{"name":"Error","message":"x"}}]"#;
        let step_error = r#"[{"op":"StepError","id":"b","error":{"name":"Error","message":"x"}}]"#;
        let cases: Vec<(Result<Reply, String>, &str)> = vec![
            (reply(200, "null", None), "Responded"),
            (
                reply(206, r#"[{"op":"StepRun","id":"a","data":1}]"#, None),
                "Responded",
            ),
            (reply(206, "[]", None), "Responded"),
            // v4 sends no-retry true on StepFailed, v3 false: both are StepFailed.
            (reply(206, step_failed, Some(true)), "StepFailed"),
            (reply(206, step_failed, Some(false)), "StepFailed"),
            (reply(206, step_error, Some(true)), "StepError"),
            // Several ops are applied one by one, never retried as a whole.
            (
                reply(
                    206,
                    &format!(
                        "[{},{}]",
                        &step_error[1..step_error.len() - 1],
                        r#"{"op":"StepPlanned","id":"c"}"#
                    ),
                    None,
                ),
                "Responded",
            ),
            (reply(206, "not json", None), "Http"),
            (reply(500, r#"{"message":"boom"}"#, Some(false)), "Http"),
            (Err("reset".into()), "Transport"),
        ];
        for (result, want) in cases {
            let (got, _) = classify(&result);
            let name = format!("{got:?}");
            assert!(name.starts_with(want), "{result:?}: {name}");
        }
        let (got, _) = classify(&reply(
            400,
            r#"{"name":"Error","message":"nope"}"#,
            Some(true),
        ));
        assert_eq!(
            got,
            AttemptResult::Http {
                status: 400,
                no_retry: Some(true),
                retry_after: None,
                error: "nope".into()
            }
        );
    }
}
