//! What one event causes, decided without I/O: the runs it triggers (with their first
//! queue item and cancel watches), the waits it resumes and the runs it cancels.
//!
//! Two steps, because resuming a wait needs the waiting run's function and step (a
//! store read the caller makes only for waits that matched):
//! 1. [`match_waits`]: which of the unexpired waits for the event's name it satisfies;
//! 2. [`plan`]: the [`Publish`] for the event.

use std::collections::HashMap;

use serde_json::{Value, json};
use sluice_core::expr::Bindings;
use sluice_core::{Expression, FunctionId, Millis, RunId, WaitId};
use sluice_store::{
    Event, NewQueueItem, NewRun, NewWait, Publish, Resume, Run, Step, StepRecord, StepStatus, Wait,
    WaitKind,
};

use crate::registry::{CompiledFunction, Registry};

/// The event a run is started by to invoke one function directly (`step.invoke`, the
/// API's invoke); its `data._inngest.fn_id` names the function.
pub const FUNCTION_INVOKED: &str = "inngest/function.invoked";
/// The event emitted when a run ends; resumes the invoking run's wait.
pub const FUNCTION_FINISHED: &str = "inngest/function.finished";

/// A wait the event satisfies.
#[derive(Debug, Clone, PartialEq)]
pub enum WaitMatch {
    /// Resume the waiting step with this memoized result.
    Resume {
        wait_id: WaitId,
        run_id: RunId,
        step_id: String,
        /// `Event` or `Invoke`.
        kind: WaitKind,
        result: Value,
    },
    /// Cancel the run.
    Cancel(RunId),
}

/// The waits (of any name; others are skipped) that `event` satisfies.
pub fn match_waits(event: &Event, waits: &[Wait]) -> Vec<WaitMatch> {
    let incoming = event.to_sdk_json();
    let mut out = Vec::new();
    for wait in waits.iter().filter(|w| w.event_name == event.name) {
        let matched = match wait.kind {
            WaitKind::Invoke => {
                let correlation = event.data.get("correlation_id").and_then(Value::as_str);
                wait.correlation_id.is_some() && correlation == wait.correlation_id.as_deref()
            }
            WaitKind::Event | WaitKind::Cancel => match &wait.expression {
                None => true,
                Some(src) => condition_holds(src, &wait.trigger_event, &incoming),
            },
        };
        if !matched {
            continue;
        }
        match (wait.kind, &wait.step_id) {
            (WaitKind::Cancel, _) => out.push(WaitMatch::Cancel(wait.run_id)),
            (kind, Some(step_id)) => out.push(WaitMatch::Resume {
                wait_id: wait.id,
                run_id: wait.run_id,
                step_id: step_id.clone(),
                kind,
                result: match kind {
                    WaitKind::Invoke => invoke_result(&event.data),
                    // `waitForEvent` memoizes the raw event, not wrapped.
                    _ => incoming.clone(),
                },
            }),
            (kind, None) => {
                tracing::warn!(run.id = %wait.run_id, kind = kind.as_str(), "wait without a step skipped");
            }
        }
    }
    out
}

fn condition_holds(src: &str, trigger: &Value, incoming: &Value) -> bool {
    match Expression::compile(src)
        .and_then(|e| e.eval_bool(Bindings::with_async(trigger, incoming)))
    {
        Ok(holds) => holds,
        Err(err) => {
            tracing::debug!(error = %err, "wait condition does not match");
            false
        }
    }
}

/// What an invoking step memoizes from the child's `inngest/function.finished` data.
fn invoke_result(data: &Value) -> Value {
    match data.get("error") {
        Some(error) if !error.is_null() => json!({ "error": error }),
        _ => json!({ "data": data.get("result").cloned().unwrap_or(Value::Null) }),
    }
}

/// What resuming a run needs to know about it.
#[derive(Debug, Clone, PartialEq)]
pub struct WaitingRun {
    pub function_id: FunctionId,
    /// The run's steps as stored (the waiting step's name, op, options and attempts
    /// are kept).
    pub steps: Vec<Step>,
}

/// Everything [`plan`] reads.
#[derive(Debug, Clone, Copy)]
pub struct PlanInput<'a> {
    pub registry: &'a Registry,
    /// From [`match_waits`] for this event.
    pub matches: &'a [WaitMatch],
    /// The runs named by resumes in `matches` (a resume whose run is missing is
    /// dropped: the run has ended).
    pub runs: &'a HashMap<RunId, WaitingRun>,
    pub now: Millis,
}

/// The [`Publish`] for one event.
pub fn plan(event: Event, input: PlanInput<'_>) -> Publish {
    let PlanInput {
        registry,
        matches,
        runs,
        now,
    } = input;
    let sdk_event = event.to_sdk_json();
    let mut new_runs = Vec::new();
    if event.name == FUNCTION_INVOKED {
        let meta = event.data.get("_inngest");
        let target = meta.and_then(|m| m.get("fn_id")).and_then(Value::as_str);
        match target.and_then(|t| registry.find(t)) {
            Some(function) => {
                let correlation_id = meta
                    .and_then(|m| m.get("correlation_id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                new_runs.push(new_run(function, &event, &sdk_event, correlation_id, now));
            }
            None => tracing::warn!(event.id = %event.id, "invoked function is not registered"),
        }
    } else {
        for function in registry.candidates(&event.name) {
            if triggers(function, &event.name, &sdk_event) {
                new_runs.push(new_run(function, &event, &sdk_event, None, now));
            }
        }
    }

    let mut resumes = Vec::new();
    let mut cancels = Vec::new();
    for matched in matches {
        match matched {
            WaitMatch::Cancel(run_id) => {
                if !cancels.contains(run_id) {
                    cancels.push(*run_id);
                }
            }
            WaitMatch::Resume {
                wait_id,
                run_id,
                step_id,
                kind,
                result,
            } => {
                let Some(run) = runs.get(run_id) else {
                    continue;
                };
                let step = run.steps.iter().find(|s| &s.step_id == step_id);
                let op = if *kind == WaitKind::Invoke {
                    "InvokeFunction"
                } else {
                    "WaitForEvent"
                };
                resumes.push(Resume {
                    wait_id: *wait_id,
                    run_id: *run_id,
                    step: StepRecord {
                        run_id: *run_id,
                        step_id: step_id.clone(),
                        name: step.map_or_else(|| step_id.clone(), |s| s.name.clone()),
                        op: step.map_or_else(|| op.to_owned(), |s| s.op.clone()),
                        status: StepStatus::Completed,
                        result: Some(result.clone()),
                        error: None,
                        attempts: step.map_or(0, |s| s.attempts),
                        opts: step.and_then(|s| s.opts.clone()),
                        started_at: step.and_then(|s| s.started_at),
                        ended_at: Some(now),
                    },
                    next: NewQueueItem::call(*run_id, run.function_id, None, now),
                });
            }
        }
    }
    Publish {
        event,
        runs: new_runs,
        resumes,
        cancels,
    }
}

/// A rerun of `run` from its stored `events` (first the triggering one): a new run of
/// the same function planned as its trigger plans one (priority, cancel watches, from
/// the function's current configuration), marked `rerun_of`. `None` when the function
/// is no longer registered or the events are gone.
pub fn plan_rerun(registry: &Registry, run: &Run, events: &[Event], now: Millis) -> Option<NewRun> {
    let function = registry.find(&run.function_id.to_string())?;
    let event = events.first()?;
    let mut planned = new_run(function, event, &event.to_sdk_json(), None, now);
    planned.event_ids = run.event_ids.clone();
    planned.rerun_of = Some(run.id);
    Some(planned)
}

/// Whether one of the function's triggers matches the name and its expression holds.
/// An expression that fails to evaluate (a missing field) does not match.
fn triggers(function: &CompiledFunction, name: &str, sdk_event: &Value) -> bool {
    function.triggers.iter().any(|trigger| {
        trigger.pattern.matches(name)
            && match &trigger.expression {
                None => true,
                Some(expr) => match expr.eval_bool(Bindings::event(sdk_event)) {
                    Ok(holds) => holds,
                    Err(err) => {
                        tracing::debug!(function.id = %function.function.id, error = %err, "trigger expression does not match");
                        false
                    }
                },
            }
    })
}

fn new_run(
    function: &CompiledFunction,
    event: &Event,
    sdk_event: &Value,
    correlation_id: Option<String>,
    now: Millis,
) -> NewRun {
    let id = RunId::new();
    let function_id = function.function.id;
    // A run never starts before its event's time.
    let mut first = NewQueueItem::call(id, function_id, None, now.max(event.ts));
    first.priority = priority(function, sdk_event);
    let waits = function
        .cancels
        .iter()
        .map(|rule| NewWait {
            id: WaitId::new(),
            run_id: id,
            kind: WaitKind::Cancel,
            step_id: None,
            event_name: rule.event.clone(),
            expression: rule.condition.clone(),
            correlation_id: None,
            trigger_event: sdk_event.clone(),
            expires_at: rule.timeout.map(|t| now.plus(t)),
            created_at: now,
        })
        .collect();
    NewRun {
        id,
        function_id,
        event_ids: vec![event.id],
        correlation_id,
        rerun_of: None,
        created_at: now,
        first,
        waits,
    }
}

/// The queue priority from the function's `priority.run` (seconds, −600..600, higher
/// runs sooner; the queue runs lower values first). 0 when absent or failing.
fn priority(function: &CompiledFunction, sdk_event: &Value) -> i32 {
    let Some(expr) = &function.priority else {
        return 0;
    };
    match expr.eval_int(Bindings::event(sdk_event)) {
        Ok(seconds) => -(seconds.clamp(-600, 600) as i32),
        Err(err) => {
            tracing::debug!(function.id = %function.function.id, error = %err, "priority expression failed; using 0");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_core::{AppId, EventId};
    use sluice_store::{Function, Trigger};

    fn function(slug: &str, event: &str, expression: Option<&str>, config: Value) -> Function {
        Function {
            id: FunctionId::new(),
            app_id: AppId::new(),
            slug: slug.into(),
            name: slug.into(),
            triggers: vec![Trigger::Event {
                event: event.into(),
                expression: expression.map(Into::into),
            }],
            config,
            created_at: Millis(0),
            updated_at: Millis(0),
        }
    }

    fn event(name: &str, data: Value, ts: i64) -> Event {
        Event {
            id: EventId::new(),
            external_id: None,
            name: name.into(),
            data,
            user: json!({}),
            version: None,
            ts: Millis(ts),
            received_at: Millis(1_000),
        }
    }

    fn wait(kind: WaitKind, name: &str, expression: Option<&str>, trigger: Value) -> Wait {
        Wait {
            id: WaitId::new(),
            run_id: RunId::new(),
            kind,
            step_id: (kind != WaitKind::Cancel).then(|| "s1".to_owned()),
            event_name: name.into(),
            expression: expression.map(Into::into),
            correlation_id: (kind == WaitKind::Invoke).then(|| "corr-1".to_owned()),
            trigger_event: trigger,
            expires_at: None,
            created_at: Millis(0),
        }
    }

    #[test]
    fn runs_for_matching_functions_at_the_event_time() {
        let registry = Registry::new(
            vec![
                function("all", "shop/order", None, json!({})),
                function(
                    "big",
                    "shop/order",
                    Some("event.data.total > 100"),
                    json!({}),
                ),
                function(
                    "wild",
                    "shop/*",
                    None,
                    json!({"priority": {"run": "event.data.vip ? 120 : 0"}}),
                ),
                function(
                    "missing",
                    "shop/order",
                    Some("event.data.nope == 1"),
                    json!({}),
                ),
                function(
                    "cancellable",
                    "shop/order",
                    None,
                    json!({"cancel": [{"event": "shop/cancel", "if": "async.data.id == event.data.id", "timeout": "1h"}]}),
                ),
                function("other", "other", None, json!({})),
            ],
            1,
        );
        let now = Millis(1_000);
        let cases: &[(Value, i64, &[&str])] = &[
            (json!({"total": 50}), 0, &["all", "wild", "cancellable"]),
            (
                json!({"total": 500, "vip": true}),
                0,
                &["all", "big", "wild", "cancellable"],
            ),
            (
                json!({"total": 500}),
                90_000,
                &["all", "big", "wild", "cancellable"],
            ),
        ];
        for (data, ts, want) in cases {
            let publish = plan(
                event("shop/order", data.clone(), *ts),
                PlanInput {
                    registry: &registry,
                    matches: &[],
                    runs: &HashMap::new(),
                    now,
                },
            );
            let slugs: Vec<&str> = publish
                .runs
                .iter()
                .map(|r| {
                    registry
                        .functions()
                        .iter()
                        .find(|f| f.function.id == r.function_id)
                        .unwrap()
                        .function
                        .slug
                        .as_str()
                })
                .collect();
            assert_eq!(&slugs, want, "{data}");
            for run in &publish.runs {
                assert_eq!(run.event_ids, vec![publish.event.id]);
                assert_eq!(run.first.run_id, Some(run.id));
                assert_eq!(run.first.step_id, None);
                assert_eq!(
                    run.first.available_at,
                    Millis((*ts).max(now.0)),
                    "never before ts"
                );
            }
            let wild = &publish.runs[slugs.iter().position(|s| *s == "wild").unwrap()];
            let vip = data.get("vip").is_some();
            assert_eq!(wild.first.priority, if vip { -120 } else { 0 });
            let cancellable = publish.runs.last().unwrap();
            assert_eq!(cancellable.waits.len(), 1);
            let w = &cancellable.waits[0];
            assert_eq!(
                (w.kind, w.event_name.as_str(), w.expires_at),
                (
                    WaitKind::Cancel,
                    "shop/cancel",
                    Some(Millis(1_000 + 3_600_000))
                )
            );
            assert_eq!(w.trigger_event["data"], *data);
        }
    }

    #[test]
    fn invoked_events_start_exactly_the_named_function() {
        let registry = Registry::new(
            vec![
                function("app-target", "never/sent", None, json!({})),
                function("app-listener", FUNCTION_INVOKED, None, json!({})),
            ],
            1,
        );
        let target_id = registry.find("app-target").unwrap().function.id;
        let input = PlanInput {
            registry: &registry,
            matches: &[],
            runs: &HashMap::new(),
            now: Millis(5),
        };
        let invoked = event(
            FUNCTION_INVOKED,
            json!({"x": 1, "_inngest": {"fn_id": "app-target", "correlation_id": "c-9"}}),
            0,
        );
        let publish = plan(invoked, input);
        assert_eq!(publish.runs.len(), 1);
        assert_eq!(publish.runs[0].function_id, target_id);
        assert_eq!(publish.runs[0].correlation_id.as_deref(), Some("c-9"));
        let unknown = event(
            FUNCTION_INVOKED,
            json!({"_inngest": {"fn_id": "app-gone"}}),
            0,
        );
        assert!(plan(unknown, input).runs.is_empty());
    }

    #[test]
    fn waits_resume_and_cancel() {
        let trigger = json!({"name": "shop/order", "data": {"id": "o1"}});
        let waits = vec![
            wait(
                WaitKind::Event,
                "shop/reply",
                Some("async.data.id == event.data.id"),
                trigger.clone(),
            ),
            wait(
                WaitKind::Event,
                "shop/reply",
                Some("async.data.id == 'other'"),
                trigger.clone(),
            ),
            wait(
                WaitKind::Event,
                "shop/reply",
                Some("async.data.missing == 1"),
                trigger.clone(),
            ),
            wait(WaitKind::Event, "shop/reply", None, trigger.clone()),
            wait(
                WaitKind::Cancel,
                "shop/reply",
                Some("async.data.id == event.data.id"),
                trigger.clone(),
            ),
            wait(WaitKind::Event, "elsewhere", None, trigger.clone()),
        ];
        let reply = event("shop/reply", json!({"id": "o1"}), 0);
        let matches = match_waits(&reply, &waits);
        let summary: Vec<(RunId, bool)> = matches
            .iter()
            .map(|m| match m {
                WaitMatch::Resume { run_id, .. } => (*run_id, true),
                WaitMatch::Cancel(run_id) => (*run_id, false),
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (waits[0].run_id, true),
                (waits[3].run_id, true),
                (waits[4].run_id, false)
            ]
        );
        let function_id = FunctionId::new();
        let runs: HashMap<RunId, WaitingRun> = [
            (
                waits[0].run_id,
                WaitingRun {
                    function_id,
                    steps: vec![Step {
                        run_id: waits[0].run_id,
                        step_id: "s1".into(),
                        name: "w".into(),
                        op: "WaitForEvent".into(),
                        status: StepStatus::Waiting,
                        result: None,
                        error: None,
                        attempts: 1,
                        opts: Some(json!({"timeout": "1m"})),
                        created_at: Millis(0),
                        started_at: Some(Millis(3)),
                        ended_at: None,
                    }],
                },
            ),
            // waits[3]'s run has ended: no entry, so no resume.
        ]
        .into();
        let registry = Registry::default();
        let publish = plan(
            reply.clone(),
            PlanInput {
                registry: &registry,
                matches: &matches,
                runs: &runs,
                now: Millis(77),
            },
        );
        assert_eq!(publish.cancels, vec![waits[4].run_id]);
        assert_eq!(publish.resumes.len(), 1);
        let resume = &publish.resumes[0];
        assert_eq!(
            (resume.wait_id, resume.run_id),
            (waits[0].id, waits[0].run_id)
        );
        assert_eq!(resume.step.status, StepStatus::Completed);
        assert_eq!(resume.step.result, Some(reply.to_sdk_json()), "raw event");
        assert_eq!((resume.step.name.as_str(), resume.step.attempts), ("w", 1));
        assert_eq!(resume.step.ended_at, Some(Millis(77)));
        assert_eq!(
            resume.next,
            NewQueueItem::call(waits[0].run_id, function_id, None, Millis(77))
        );

        // Invoke waits match the finished event by correlation id.
        let invoke = wait(WaitKind::Invoke, FUNCTION_FINISHED, None, json!({}));
        let finished = |corr: &str, extra: Value| {
            let mut data = json!({"correlation_id": corr, "function_id": "app-child"});
            data.as_object_mut()
                .unwrap()
                .extend(extra.as_object().unwrap().clone());
            event(FUNCTION_FINISHED, data, 0)
        };
        let result_of = |e: &Event| match match_waits(e, std::slice::from_ref(&invoke)).pop() {
            Some(WaitMatch::Resume { result, kind, .. }) => {
                assert_eq!(kind, WaitKind::Invoke);
                Some(result)
            }
            _ => None,
        };
        assert_eq!(
            result_of(&finished("corr-1", json!({"result": {"ok": 1}}))),
            Some(json!({"data": {"ok": 1}}))
        );
        assert_eq!(
            result_of(&finished("corr-1", json!({"error": {"message": "boom"}}))),
            Some(json!({"error": {"message": "boom"}}))
        );
        assert_eq!(result_of(&finished("corr-2", json!({"result": 1}))), None);
    }
}
