//! The executor and scheduler against a scripted fake SDK endpoint (axum on
//! 127.0.0.1:0) and a real SQLite store.

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use sluice_broker::{Broker, BrokerOptions};
use sluice_core::{EventId, FunctionId, Millis, RetryPolicy, RunId, RunStatus};
use sluice_executor::{CheckpointRequest, Executor, ExecutorOptions, FanOut, Mode, StoreOnly};
use sluice_protocol::SigningKey;
use sluice_protocol::signing;
use sluice_scheduler::{Dispatch, Scheduler, SchedulerHandle, SchedulerOptions};
use sluice_store::{
    AppSync, Claim, CommitResult, DynStore, Event, EventFilter, FunctionDef, NewQueueItem, NewRun,
    Publish, Trigger,
};
use sluice_store_sqlite::SqliteStore;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

const KEY: &str = "signkey-test-12345678abcdef";

/// One call the fake SDK received.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    raw: Bytes,
    body: Value,
    at: Instant,
}

/// What the fake SDK answers.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Value,
    delay: Duration,
}

fn ops(ops: Value) -> Answer {
    Answer {
        status: 206,
        headers: vec![],
        body: ops,
        delay: Duration::ZERO,
    }
}

fn done(output: Value) -> Answer {
    Answer {
        status: 200,
        headers: vec![],
        body: output,
        delay: Duration::ZERO,
    }
}

type Script = Arc<dyn Fn(&Value) -> Answer + Send + Sync>;

struct Sdk {
    calls: Arc<Mutex<Vec<Received>>>,
    url: String,
}

impl Sdk {
    /// Starts a fake SDK answering with `script`; in signed mode it checks request
    /// signatures (401 if wrong) and signs its replies.
    async fn start(script: Script, key: Option<SigningKey>) -> Sdk {
        let calls = Arc::new(Mutex::new(Vec::new()));
        let recorded = calls.clone();
        let handler = move |headers: HeaderMap, raw: Bytes| {
            let script = script.clone();
            let recorded = recorded.clone();
            let key = key.clone();
            async move {
                let body: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
                recorded.lock().unwrap().push(Received {
                    headers: headers.clone(),
                    raw: raw.clone(),
                    body: body.clone(),
                    at: Instant::now(),
                });
                if let Some(key) = &key {
                    let sig = headers
                        .get("x-inngest-signature")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    let canonical = sluice_protocol::to_canonical_vec(&body);
                    let now = chrono::Utc::now().timestamp();
                    if signing::verify(sig, &canonical, std::slice::from_ref(key), now, Some(300))
                        .is_err()
                    {
                        return (StatusCode::UNAUTHORIZED, "{}").into_response();
                    }
                }
                let answer = script(&body);
                tokio::time::sleep(answer.delay).await;
                let out = serde_json::to_vec(&answer.body).unwrap();
                let mut response: Response =
                    (StatusCode::from_u16(answer.status).unwrap(), out.clone()).into_response();
                let h = response.headers_mut();
                h.insert("content-type", "application/json".parse().unwrap());
                h.insert("x-inngest-sdk", "inngest-js:v4.24.0".parse().unwrap());
                h.insert("x-inngest-req-version", "2".parse().unwrap());
                for (k, v) in answer.headers {
                    h.insert(k, v.parse().unwrap());
                }
                if let Some(key) = &key {
                    let sig = signing::sign(&out, key, chrono::Utc::now().timestamp());
                    h.insert("x-inngest-signature", sig.parse().unwrap());
                }
                response
            }
        };
        let app = axum::Router::new().route("/api/inngest", axum::routing::post(handler));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Sdk {
            calls,
            url: format!("http://{addr}/api/inngest"),
        }
    }

    fn calls(&self) -> Vec<Received> {
        self.calls.lock().unwrap().clone()
    }
}

struct Harness {
    store: DynStore,
    sdk: Sdk,
    executor: Executor,
    scheduler: SchedulerHandle,
    function: FunctionId,
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base: Duration::from_millis(20),
        min: Duration::from_millis(10),
        max: Duration::from_millis(50),
        max_retry_after: Duration::from_secs(60),
    }
}

async fn harness(script: Script, retries: u32, signed: bool) -> Harness {
    harness_with(script, retries, signed, |_| {}).await
}

async fn harness_with(
    script: Script,
    retries: u32,
    signed: bool,
    tweak: fn(&mut ExecutorOptions),
) -> Harness {
    full_harness(script, retries, signed, tweak, &[]).await
}

/// A function registered beside `app-fn`: slug, trigger event, trigger expression.
type Extra = (&'static str, &'static str, Option<&'static str>);

/// With `extra` functions, the real broker computes the fan-out of emitted events.
async fn full_harness(
    script: Script,
    retries: u32,
    signed: bool,
    tweak: fn(&mut ExecutorOptions),
    extra: &[Extra],
) -> Harness {
    let key = signed.then(|| SigningKey::new(KEY).unwrap());
    let sdk = Sdk::start(script, key.clone()).await;
    let store: DynStore = Arc::new(SqliteStore::temporary().await.unwrap());
    let def = |slug: &str, event: &str, expression: Option<&str>| {
        let mut trigger = json!({"event": event});
        if let Some(e) = expression {
            trigger["expression"] = json!(e);
        }
        FunctionDef {
            slug: slug.into(),
            name: slug.into(),
            triggers: vec![Trigger::Event {
                event: event.into(),
                expression: expression.map(str::to_owned),
            }],
            config: json!({"id": slug, "name": slug, "triggers": [trigger],
                "steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "http",
                    "url": format!("{}?fnId={slug}&stepId=step", sdk.url)},
                    "retries": {"attempts": retries}}}}),
        }
    };
    let mut functions = vec![def("app-fn", "demo/go", None)];
    functions.extend(
        extra
            .iter()
            .map(|(slug, event, expr)| def(slug, event, *expr)),
    );
    let synced = store
        .sync_app(AppSync {
            name: "app".into(),
            url: sdk.url.clone(),
            sdk: Some("js:v4.24.0".into()),
            framework: None,
            functions,
            now: Millis::now(),
        })
        .await
        .unwrap();
    let function = synced
        .functions
        .iter()
        .find(|f| f.slug == "app-fn")
        .unwrap()
        .id;
    let mut options = ExecutorOptions {
        mode: if signed { Mode::Start } else { Mode::Dev },
        signing_key: key,
        retry: fast_retry(),
        request_timeout: Duration::from_secs(5),
        ..ExecutorOptions::default()
    };
    tweak(&mut options);
    let fanout: Arc<dyn FanOut> = if extra.is_empty() {
        Arc::new(StoreOnly)
    } else {
        Arc::new(
            Broker::start(store.clone(), BrokerOptions::default())
                .await
                .unwrap(),
        )
    };
    let executor = Executor::new(options, store.clone(), fanout).unwrap();
    let scheduler = Scheduler::start(
        SchedulerOptions {
            node_id: "test".into(),
            lease: Duration::from_secs(2),
            heartbeat_every: Duration::from_millis(50),
            rescue_every: Duration::from_millis(200),
            ..SchedulerOptions::default()
        },
        store.clone(),
        Arc::new(executor.clone()),
    )
    .await
    .unwrap();
    Harness {
        store,
        sdk,
        executor,
        scheduler,
        function,
    }
}

impl Harness {
    /// Publishes a `demo/go` event with one run of the function; returns the run id.
    async fn start_run(&self) -> RunId {
        let now = Millis::now();
        let id = RunId::new();
        let event = Event {
            id: EventId::new(),
            external_id: None,
            name: "demo/go".into(),
            data: json!({"n": 1.5, "z": "last", "a": [1, 2]}),
            user: json!({}),
            version: None,
            ts: now,
            received_at: now,
        };
        self.store
            .publish(
                vec![Publish {
                    runs: vec![NewRun {
                        id,
                        function_id: self.function,
                        event_ids: vec![event.id],
                        correlation_id: None,
                        rerun_of: None,
                        created_at: now,
                        first: NewQueueItem::call(id, self.function, None, now),
                        waits: vec![],
                    }],
                    event,
                    resumes: vec![],
                    cancels: vec![],
                }],
                now,
            )
            .await
            .unwrap();
        id
    }

    async fn wait_end(&self, run: RunId, within: Duration) -> sluice_store::Run {
        let deadline = Instant::now() + within;
        loop {
            let r = self.store.get_run(run).await.unwrap();
            if r.status.is_terminal() {
                return r;
            }
            assert!(Instant::now() < deadline, "run did not end: {r:?}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn internal_events(&self, name: &str) -> Vec<Event> {
        self.store
            .list_events(EventFilter {
                names: vec![name.into()],
                include_internal: true,
                limit: 50,
                ..EventFilter::default()
            })
            .await
            .unwrap()
            .items
    }
}

fn hash(id: &str) -> String {
    sluice_protocol::step_id_hash(id, 0)
}

fn has_step(body: &Value, id: &str) -> bool {
    body["steps"].get(hash(id)).is_some()
}

fn step_op(op: &str, id: &str, data: Value) -> Value {
    json!({"op": op, "id": hash(id), "name": id, "displayName": id, "opts": {},
        "userland": {"id": id}, "data": data})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_chain_runs_to_output_with_a_signed_canonical_body() {
    let script: Script = Arc::new(|body| {
        if !has_step(body, "a") {
            ops(json!([step_op("StepRun", "a", json!({"a": 1}))]))
        } else if !has_step(body, "b") {
            ops(json!([step_op("StepRun", "b", json!("B"))]))
        } else {
            done(json!({"ok": true}))
        }
    });
    let h = harness(script, 3, true).await;
    let run = h.start_run().await;
    let ended = h.wait_end(run, Duration::from_secs(10)).await;
    assert_eq!(ended.status, RunStatus::Completed);
    assert_eq!(ended.output, Some(json!({"ok": true})));
    assert_eq!(ended.request_version, Some(2));

    let calls = h.sdk.calls();
    assert_eq!(calls.len(), 3, "one call per step, then the final one");
    let versions: Vec<i64> = calls
        .iter()
        .map(|c| c.body["version"].as_i64().unwrap())
        .collect();
    assert_eq!(versions, vec![-1, 2, 2]);
    // Each saved step continues the run at once on the same leased item: one claim.
    let items: Vec<&Value> = calls.iter().map(|c| &c.body["ctx"]["qi_id"]).collect();
    assert!(
        items.iter().all(|i| *i == items[0]),
        "every call of a step chain rides one queue item and lease: {items:?}"
    );
    for c in &calls {
        assert_eq!(
            c.raw.to_vec(),
            sluice_protocol::to_canonical_vec(&c.body),
            "canonical bytes"
        );
        let ctx = &c.body["ctx"];
        for field in [
            "attempt",
            "disable_immediate_execution",
            "env",
            "fn_id",
            "max_attempts",
            "qi_id",
            "run_id",
            "stack",
            "step_id",
            "use_api",
        ] {
            assert!(ctx.get(field).is_some(), "ctx.{field} missing");
        }
        assert_eq!(c.body["use_api"], json!(false));
        assert_eq!(ctx["max_attempts"], json!(4));
        assert_eq!(ctx["run_id"], json!(run.to_string()));
        assert_eq!(ctx["step_id"], json!("step"));
        assert_eq!(c.body["event"], c.body["events"][0]);
        assert_eq!(c.body["event"]["data"]["n"], json!(1.5));
        let sig = c.headers["x-inngest-signature"].to_str().unwrap();
        let keys = [SigningKey::new(KEY).unwrap()];
        signing::verify(
            sig,
            &c.raw,
            &keys,
            chrono::Utc::now().timestamp(),
            Some(300),
        )
        .unwrap();
    }
    assert_eq!(
        calls[2].body["ctx"]["stack"]["stack"],
        json!([hash("a"), hash("b")])
    );
    assert_eq!(calls[2].body["steps"][hash("a")], json!({"data": {"a": 1}}));
    let finished = h.internal_events("inngest/function.finished").await;
    assert_eq!(finished.len(), 1);
    assert_eq!(finished[0].data["result"], json!({"ok": true}));
    assert_eq!(finished[0].data["function_id"], json!("app-fn"));
    assert_eq!(finished[0].data["_inngest"]["status"], json!("completed"));
    h.scheduler.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sleeps_wake_on_time() {
    let script: Script = Arc::new(|body| {
        if !has_step(body, "nap") {
            ops(json!([{"op": "Sleep", "id": hash("nap"), "name": "300ms", "opts": {}}]))
        } else if !has_step(body, "until") {
            // Python sends an absolute date.
            let at = Millis::now().plus_ms(300).to_rfc3339();
            ops(json!([{"op": "Sleep", "id": hash("until"), "name": at, "opts": null}]))
        } else {
            done(json!(null))
        }
    });
    let h = harness(script, 0, false).await;
    let run = h.start_run().await;
    let ended = h.wait_end(run, Duration::from_secs(10)).await;
    assert_eq!(ended.status, RunStatus::Completed);
    let calls = h.sdk.calls();
    assert_eq!(calls.len(), 3);
    assert_eq!(calls[2].body["steps"][hash("nap")], Value::Null);
    assert!(calls[2].body["steps"].get(hash("until")).is_some());
    // Never early; how late is the benchmark's business (bench/run, timers),
    // not a test's: a loaded CI machine may be slow, never wrong.
    for pair in calls.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(290), "woke early: {gap:?}");
    }
    h.scheduler.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_steps_run_then_discovery_resumes_once() {
    let script: Script = Arc::new(|body| {
        let step = body["ctx"]["step_id"].as_str().unwrap_or("");
        if step == hash("p1") {
            return ops(json!([step_op("StepRun", "p1", json!(1))]));
        }
        if step == hash("p2") {
            let mut a = ops(json!([step_op("StepRun", "p2", json!(2))]));
            a.delay = Duration::from_millis(50);
            return a;
        }
        match (has_step(body, "p1"), has_step(body, "p2")) {
            (true, true) => done(json!(
                body["steps"][hash("p1")]["data"].as_i64().unwrap() + 2
            )),
            _ => ops(json!([
                step_op("StepPlanned", "p1", Value::Null),
                step_op("StepPlanned", "p2", Value::Null)
            ])),
        }
    });
    let h = harness(script, 0, false).await;
    let run = h.start_run().await;
    let ended = h.wait_end(run, Duration::from_secs(10)).await;
    assert_eq!(ended.output, Some(json!(3)));
    assert!(ended.disable_immediate_execution);
    let calls = h.sdk.calls();
    let steps: Vec<&str> = calls
        .iter()
        .map(|c| c.body["ctx"]["step_id"].as_str().unwrap())
        .collect();
    assert_eq!(
        steps.iter().filter(|s| **s == "step").count(),
        2,
        "{steps:?}"
    );
    assert_eq!(calls.len(), 4, "{steps:?}");
    let last = calls.last().unwrap();
    assert_eq!(last.body["ctx"]["disable_immediate_execution"], json!(true));
    assert!(
        calls
            .iter()
            .any(|c| c.body["ctx"]["step_id"] == json!(hash("p2")))
    );
    h.scheduler.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_error_is_retried_and_step_failed_is_stored() {
    let script: Script = Arc::new(|body| {
        let attempt = body["ctx"]["attempt"].as_u64().unwrap();
        if !has_step(body, "flaky") {
            if attempt < 2 {
                let mut op = step_op("StepError", "flaky", Value::Null);
                op["error"] = json!({"name": "Error", "message": "boom"});
                return ops(json!([op]));
            }
            return ops(json!([step_op("StepRun", "flaky", json!("ok"))]));
        }
        if !has_step(body, "fatal") {
            let mut op = step_op("StepFailed", "fatal", Value::Null);
            op["error"] = json!({"name": "NonRetriableError", "message": "no"});
            return ops(json!([op]));
        }
        // User code catches the memoized error and returns it.
        done(json!({"caught": body["steps"][hash("fatal")]["error"]["message"]}))
    });
    let h = harness(script, 3, false).await;
    let run = h.start_run().await;
    let ended = h.wait_end(run, Duration::from_secs(10)).await;
    assert_eq!(ended.status, RunStatus::Completed);
    assert_eq!(ended.output, Some(json!({"caught": "no"})));
    let attempts: Vec<u64> = h
        .sdk
        .calls()
        .iter()
        .map(|c| c.body["ctx"]["attempt"].as_u64().unwrap())
        .collect();
    assert_eq!(
        attempts,
        vec![0, 1, 2, 0, 0],
        "attempt resets after a saved step"
    );
    let steps = h.store.list_steps(run).await.unwrap();
    let flaky = steps.iter().find(|s| s.step_id == hash("flaky")).unwrap();
    assert_eq!(flaky.attempts, 3);
    // The timeline keeps each failed attempt's error, even after the step succeeded.
    let error = flaky.error.as_ref().expect("the failed attempts' errors");
    assert_eq!(
        (error["attempt"].clone(), error["message"].clone()),
        (json!(2), json!("boom"))
    );
    assert_eq!(
        error["history"],
        json!([{"attempt": 1, "name": "Error", "message": "boom"}])
    );
    let fatal = steps.iter().find(|s| s.step_id == hash("fatal")).unwrap();
    assert_eq!(
        fatal.result.as_ref().unwrap()["error"]["name"],
        json!("NonRetriableError")
    );
    h.scheduler.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_errors_retry_fail_and_emit_function_failed() {
    // Exhausted retries: 3 attempts, then failed with function.failed emitted.
    let h = harness(
        Arc::new(|_| Answer {
            status: 500,
            headers: vec![("x-inngest-no-retry", "false".into())],
            body: json!({"name": "Error", "message": "kaput", "stack": "s"}),
            delay: Duration::ZERO,
        }),
        2,
        false,
    )
    .await;
    let run = h.start_run().await;
    let ended = h.wait_end(run, Duration::from_secs(10)).await;
    assert_eq!(ended.status, RunStatus::Failed);
    assert_eq!(ended.error.as_ref().unwrap()["message"], json!("kaput"));
    assert_eq!(h.sdk.calls().len(), 3);
    let failed = h.internal_events("inngest/function.failed").await;
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].external_id, Some(run.to_string()));
    assert_eq!(failed[0].data["error"]["message"], json!("kaput"));
    assert_eq!(failed[0].data["run_id"], json!(run.to_string()));
    assert_eq!(
        h.internal_events("inngest/function.finished").await.len(),
        1
    );
    h.scheduler.shutdown().await;

    // The no-retry header fails at once.
    let h = harness(
        Arc::new(|_| Answer {
            status: 400,
            headers: vec![("x-inngest-no-retry", "true".into())],
            body: json!({"name": "NonRetriableError", "message": "nope"}),
            delay: Duration::ZERO,
        }),
        4,
        false,
    )
    .await;
    let run = h.start_run().await;
    assert_eq!(
        h.wait_end(run, Duration::from_secs(10)).await.status,
        RunStatus::Failed
    );
    assert_eq!(h.sdk.calls().len(), 1);
    h.scheduler.shutdown().await;

    // Retry-After is honoured (clamped to at least 1 s).
    let h = harness(
        Arc::new(|body| {
            if body["ctx"]["attempt"] == json!(0) {
                Answer {
                    status: 500,
                    headers: vec![("retry-after", "1".into())],
                    body: json!({"message": "later"}),
                    delay: Duration::ZERO,
                }
            } else {
                done(json!("ok"))
            }
        }),
        4,
        false,
    )
    .await;
    let run = h.start_run().await;
    assert_eq!(
        h.wait_end(run, Duration::from_secs(10)).await.status,
        RunStatus::Completed
    );
    let calls = h.sdk.calls();
    let gap = calls[1].at - calls[0].at;
    assert!(gap >= Duration::from_millis(990), "retried early: {gap:?}");
    h.scheduler.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_run_makes_no_further_calls() {
    let script: Script = Arc::new(|body| {
        if !has_step(body, "a") {
            ops(json!([step_op("StepRun", "a", json!(1))]))
        } else {
            let mut a = ops(json!([step_op("StepRun", "b", json!(2))]));
            a.delay = Duration::from_millis(400);
            a
        }
    });
    let h = harness(script, 0, false).await;
    let run = h.start_run().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while h.sdk.calls().len() < 2 {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert!(h.executor.cancel(run).await.unwrap());
    assert!(!h.executor.cancel(run).await.unwrap(), "already ended");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let r = h.store.get_run(run).await.unwrap();
    assert_eq!(r.status, RunStatus::Cancelled);
    assert_eq!(h.sdk.calls().len(), 2, "no call after the cancel");
    let steps = h.store.list_steps(run).await.unwrap();
    assert!(
        steps.iter().all(|s| s.step_id != hash("b")),
        "in-flight result dropped"
    );
    assert_eq!(
        h.internal_events("inngest/function.cancelled").await.len(),
        1
    );
    h.scheduler.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lease_holder_is_refused() {
    let script: Script = Arc::new(|_| {
        let mut a = done(json!("late"));
        a.delay = Duration::from_millis(300);
        a
    });
    let h = harness(script, 0, false).await;
    h.scheduler.shutdown().await; // drive the queue by hand
    let run = h.start_run().await;
    let claim = |lease_ms| Claim {
        owner: "a".into(),
        limit: 1,
        lease_ms,
        now: Millis::now(),
    };
    let item = h.store.claim(claim(50)).await.unwrap().pop().unwrap();
    let first = tokio::spawn({
        let executor = h.executor.clone();
        async move {
            executor
                .dispatch(item, &sluice_scheduler::Flight::detached())
                .await
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(h.store.rescue_expired(Millis::now()).await.unwrap(), 1);
    let again = h.store.claim(claim(10_000)).await.unwrap().pop().unwrap();
    assert_eq!(again.attempt, 1);
    let stale = first.await.unwrap();
    let results = h.store.commit(vec![stale], Millis::now()).await.unwrap();
    assert_eq!(results, vec![CommitResult::LeaseLost]);
    assert_eq!(
        h.store.get_run(run).await.unwrap().status,
        RunStatus::Queued
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpointed_steps_are_saved_with_the_reply() {
    let exec: Arc<OnceLock<Executor>> = Arc::new(OnceLock::new());
    let seen = exec.clone();
    let script: Script = Arc::new(move |body| {
        let ctx = &body["ctx"];
        if !has_step(body, "nap") {
            let run: RunId = ctx["run_id"].as_str().unwrap().parse().unwrap();
            let exec = seen.get().unwrap();
            let checkpoint = |qi_id: &str| -> CheckpointRequest {
                serde_json::from_value(json!({"run_id": run.to_string(), "qi_id": qi_id,
                    "steps": [step_op("StepRun", "a", json!(1)), step_op("StepRun", "b", json!(2))]}))
                .unwrap()
            };
            let stale = checkpoint("999999:00000000-0000-0000-0000-000000000000");
            assert!(matches!(
                exec.checkpoint(run, stale),
                Err(sluice_executor::Error::Stale)
            ));
            let saved = exec.checkpoint(run, checkpoint(ctx["qi_id"].as_str().unwrap()));
            assert_eq!(saved.unwrap(), 2);
            return ops(json!([{"op": "Sleep", "id": hash("nap"), "name": "50ms", "opts": {}}]));
        }
        let sum = body["steps"][hash("a")]["data"].as_i64().unwrap()
            + body["steps"][hash("b")]["data"].as_i64().unwrap();
        ops(
            json!([{"op": "RunComplete", "id": sluice_protocol::hash::run_complete_id(),
            "data": {"sum": sum}}]),
        )
    });
    let h = harness(script, 0, false).await;
    exec.set(h.executor.clone()).unwrap();
    let run = h.start_run().await;
    let ended = h.wait_end(run, Duration::from_secs(10)).await;
    assert_eq!(ended.output, Some(json!({"sum": 3})));
    let calls = h.sdk.calls();
    assert_eq!(calls.len(), 2);
    assert!(
        calls[0].body["ctx"]["fn_id"].is_string(),
        "fn_id switches v4 checkpointing on"
    );
    assert_eq!(
        calls[1].body["ctx"]["stack"]["stack"],
        json!([hash("a"), hash("b"), hash("nap")])
    );
    h.scheduler.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_state_is_fetched_through_the_api() {
    let script: Script = Arc::new(|body| match body["ctx"]["stack"]["current"].as_u64() {
        Some(0) => ops(json!([step_op("StepRun", "a", json!("x".repeat(300)))])),
        _ => done(json!(body["use_api"])),
    });
    let h = harness_with(script, 0, false, |o| o.limits.use_api_above = 600).await;
    let run = h.start_run().await;
    let ended = h.wait_end(run, Duration::from_secs(10)).await;
    assert_eq!(ended.output, Some(json!(true)));
    let calls = h.sdk.calls();
    assert_eq!(calls[0].body["ctx"]["use_api"], json!(false));
    let last = &calls[1].body;
    assert_eq!(
        (last["ctx"]["use_api"].clone(), last["use_api"].clone()),
        (json!(true), json!(true))
    );
    assert_eq!(last["steps"], json!({}));
    assert_eq!(last["events"], json!([]));
    let actions = h.executor.run_actions(run).await.unwrap();
    assert_eq!(actions[&hash("a")], json!({"data": "x".repeat(300)}));
    let events = h.executor.run_events(run).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0]["name"], json!("demo/go"));
    h.scheduler.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_limits_fail_the_run_with_a_clear_error() {
    // Too many steps: every call saves one more.
    let script: Script = Arc::new(|body| {
        let n = body["ctx"]["stack"]["current"].as_u64().unwrap();
        ops(json!([step_op("StepRun", &format!("s{n}"), json!(n))]))
    });
    let h = harness_with(script, 0, false, |o| o.limits.max_steps = 3).await;
    let run = h.start_run().await;
    let ended = h.wait_end(run, Duration::from_secs(10)).await;
    assert_eq!(ended.status, RunStatus::Failed);
    let message = ended.error.unwrap()["message"].as_str().unwrap().to_owned();
    assert!(
        message.contains("4 steps, more than the limit of 3"),
        "{message}"
    );
    assert_eq!(h.sdk.calls().len(), 4);
    assert_eq!(h.internal_events("inngest/function.failed").await.len(), 1);
    h.scheduler.shutdown().await;

    // A step output over the limit.
    let script: Script =
        Arc::new(|_| ops(json!([step_op("StepRun", "big", json!("y".repeat(200)))])));
    let h = harness_with(script, 0, false, |o| o.limits.max_step_output = 100).await;
    let run = h.start_run().await;
    let ended = h.wait_end(run, Duration::from_secs(10)).await;
    assert_eq!(ended.status, RunStatus::Failed);
    let message = ended.error.unwrap()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("more than the limit of 100"), "{message}");
    assert!(
        h.store.list_steps(run).await.unwrap().is_empty(),
        "the big output is not stored"
    );
    h.scheduler.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_and_invoke_timeouts_resume_the_run() {
    let script: Script = Arc::new(|body| {
        if !has_step(body, "w") {
            return ops(
                json!([{"op": "WaitForEvent", "id": hash("w"), "name": "demo/reply",
                "displayName": "w", "opts": {"timeout": "200ms", "if": "async.data.id == event.data.id"}}]),
            );
        }
        if !has_step(body, "inv") {
            return ops(
                json!([{"op": "InvokeFunction", "id": hash("inv"), "displayName": "inv",
                "opts": {"function_id": "app-fn", "payload": {"data": {"x": 1}}, "timeout": "200ms"}}]),
            );
        }
        if !has_step(body, "gone") {
            return ops(
                json!([{"op": "InvokeFunction", "id": hash("gone"), "displayName": "gone",
                "opts": {"function_id": "app-missing", "payload": {"data": {}}}}]),
            );
        }
        done(
            json!({"w": body["steps"][hash("w")], "inv": body["steps"][hash("inv")],
            "gone": body["steps"][hash("gone")]}),
        )
    });
    let h = harness(script, 0, false).await;
    let run = h.start_run().await;
    // While waiting, the wait is stored with its expression and trigger event.
    let deadline = Instant::now() + Duration::from_secs(5);
    let waits = loop {
        let waits = h.store.run_waits(run).await.unwrap();
        if !waits.is_empty() {
            break waits;
        }
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    assert_eq!(waits[0].event_name, "demo/reply");
    assert_eq!(
        waits[0].expression.as_deref(),
        Some("async.data.id == event.data.id")
    );
    assert_eq!(waits[0].trigger_event["name"], json!("demo/go"));

    let ended = h.wait_end(run, Duration::from_secs(10)).await;
    let output = ended.output.unwrap();
    assert_eq!(
        output["w"],
        Value::Null,
        "a timed-out wait resumes with null"
    );
    assert_eq!(
        output["inv"]["error"]["name"],
        json!("InngestInvokeTimeoutError")
    );
    let invoked = h.internal_events("inngest/function.invoked").await;
    assert_eq!(invoked.len(), 1);
    assert_eq!(invoked[0].data["x"], json!(1));
    assert_eq!(invoked[0].data["_inngest"]["fn_id"], json!("app-fn"));
    assert_eq!(
        invoked[0].data["_inngest"]["correlation_id"],
        json!(format!("{run}.{}", hash("inv")))
    );
    assert!(h.store.run_waits(run).await.unwrap().is_empty());
    let calls = h.sdk.calls();
    assert_eq!(calls.len(), 4);
    for pair in calls[..3].windows(2) {
        assert!(pair[1].at - pair[0].at >= Duration::from_millis(190));
    }
    h.scheduler.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_broker_invokes_resume_and_failures_run_on_failure_handlers() {
    let script: Script = Arc::new(|body| {
        let event = &body["event"];
        match event["name"].as_str().unwrap() {
            "inngest/function.invoked" => done(json!({"child": event["data"]["x"]})),
            "inngest/function.failed" => {
                done(json!({"handled": event["data"]["error"]["message"]}))
            }
            _ if !has_step(body, "inv") => ops(json!([{"op": "InvokeFunction", "id": hash("inv"),
                "displayName": "inv", "opts": {"function_id": "app-child",
                "payload": {"data": {"x": 5}}}}])),
            _ => Answer {
                status: 400,
                headers: vec![("x-inngest-no-retry", "true".into())],
                body: json!({"name": "Error", "message": format!("got {}", body["steps"][hash("inv")])}),
                delay: Duration::ZERO,
            },
        }
    });
    let extra: &[Extra] = &[
        ("app-child", "never/sent", None),
        (
            "app-fn-failure",
            "inngest/function.failed",
            Some("event.data.function_id == 'app-fn'"),
        ),
    ];
    let h = full_harness(script, 0, false, |_| {}, extra).await;
    let run = h.start_run().await;
    let ended = h.wait_end(run, Duration::from_secs(10)).await;
    assert_eq!(ended.status, RunStatus::Failed);
    let message = ended.error.unwrap()["message"].as_str().unwrap().to_owned();
    assert_eq!(
        message, r#"got {"data":{"child":5}}"#,
        "the child's result resumed the caller"
    );

    // The failure handler ran on the failed event.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let calls = h.sdk.calls();
        let handled = calls
            .iter()
            .any(|c| c.body["event"]["name"] == json!("inngest/function.failed"));
        if handled {
            break;
        }
        assert!(Instant::now() < deadline, "the -failure function never ran");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    h.scheduler.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallel_steps_finishing_together_always_resume() {
    let names = ["q1", "q2", "q3"];
    let script: Script = Arc::new(move |body| {
        let step = body["ctx"]["step_id"].as_str().unwrap_or("");
        if let Some(name) = names.iter().find(|n| hash(n) == step) {
            return ops(json!([step_op("StepRun", name, json!(1))]));
        }
        if names.iter().all(|n| has_step(body, n)) {
            return done(json!("all"));
        }
        let planned: Vec<Value> = names
            .iter()
            .filter(|n| !has_step(body, n))
            .map(|n| step_op("StepPlanned", n, Value::Null))
            .collect();
        ops(Value::Array(planned))
    });
    let h = harness(script, 0, false).await;
    let mut runs = Vec::new();
    for _ in 0..10 {
        runs.push(h.start_run().await);
    }
    for run in runs {
        let ended = h.wait_end(run, Duration::from_secs(10)).await;
        assert_eq!(ended.output, Some(json!("all")));
    }
    let finals = h
        .sdk
        .calls()
        .iter()
        .filter(|c| {
            c.body["ctx"]["step_id"] == json!("step") && names.iter().all(|n| has_step(&c.body, n))
        })
        .count();
    assert!(finals >= 10, "every run resumed");
    eprintln!("final discovery calls for 10 runs: {finals}");
    h.scheduler.shutdown().await;
}
