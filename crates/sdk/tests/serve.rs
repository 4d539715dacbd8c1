//! The serve router end to end through `oneshot`: sync, step-by-step calls, parallel
//! steps, errors and signatures, checked against what the official TS SDK (v4.24.0)
//! answered in the same situations.

mod common;

use axum::Router;
use axum::body::Body;
use common::{FakeApi, call_body, fake_api, post_call, send};
use http::{Request, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_protocol::signing::{self, SigningKey};
use sluice_protocol::to_canonical_vec;
use sluice_sdk::flow::{
    Batch, Cancel, Concurrency, Debounce, Priority, RateLimit, Scope, Singleton, SingletonMode,
    Throttle, Timeouts,
};
use sluice_sdk::{
    App, Client, Config, Error, Event, Function, FunctionFailed, Input, Invoke, Mode, Step,
    Trigger, WaitForEvent,
};
use std::time::Duration;

const A: &str = "86f7e437faa5a7fce15d1ddcb9eaeaea377667b8";
const WAIT: &str = "daaad336276d15594d0e765f96c17cd746bf4971";
const B: &str = "e9d71f5ee7c92d6dc9e92ffdad17b8bd49418f98";
const W: &str = "aff024fe4ab0fece4091de044c58c9ae4233383a";
const SEND: &str = "37ed539c0cef13959abd980bebf30f4922f606e3";
const P1: &str = "b78f576611ec06f96af3ca654c22172a5d746c40";
const P2: &str = "c5fd961c9f737a955a308050062e7a2c34ee67c3";
const CALL_HELLO: &str = "e5071698f846db5f5aa5795ba2c563ad0c6baae5";
const LOOP: [&str; 3] = [
    "1df823e482339eb6067f4134408b0b8b28411a78",
    "a0cb75f0a464ed6731caadd18aa9932daf00bb50",
    "dd014976323740b5623326fd7169be3055c1b536",
];
/// A made-up key: the one the signature captures were made with.
const KEY: &str = "signkey-test-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

fn min(secs: u64) -> Duration {
    Duration::from_secs(secs * 60)
}

/// The functions of the probe app the captures were taken from, rebuilt in Rust.
fn functions() -> Vec<Function> {
    let hello = Function::new("hello")
        .name("Hello flow")
        .trigger(Trigger::event("demo/hello"))
        .handler(|input: Input, step: Step| async move {
            let id = input.event.data["id"].clone();
            let a = step
                .run("a", || {
                    let id = id.clone();
                    async move { Ok(json!({"a": 1, "id": id})) }
                })
                .await?;
            step.sleep("wait", Duration::from_secs(1)).await?;
            let b: String = step.run("b", || async { Ok("B".to_owned()) }).await?;
            let reply: Option<Event> = step
                .wait_for_event(
                    "w",
                    WaitForEvent::new("demo/reply", min(1))
                        .condition("async.data.id == event.data.id"),
                )
                .await?;
            let sent = step
                .send_event("send", vec![Event::new("demo/sent", json!({"id": id}))])
                .await?;
            Ok(json!({"a": a, "b": b, "reply": reply, "sent": sent, "runId": input.run_id}))
        });

    let configured = Function::new("cron-configured")
        .trigger(Trigger::cron("*/5 * * * *"))
        .trigger(Trigger::event("demo/manual").expression("event.data.ok == true"))
        .retries(5)
        .throttle(Throttle::new(5, min(1)).key("event.data.user").burst(2))
        .concurrency(Concurrency::new(2).key("event.data.user").scope(Scope::Fn))
        .concurrency(Concurrency::new(10).key("\"shared\"").scope(Scope::Account))
        .debounce(
            Debounce::new(Duration::from_secs(5))
                .key("event.data.user")
                .timeout(min(1)),
        )
        .priority(Priority::new("event.data.vip ? 120 : 0"))
        .timeouts(
            Timeouts::default()
                .start(Duration::from_secs(30))
                .finish(min(5)),
        )
        .cancel_on(
            Cancel::new("demo/cancel")
                .timeout(min(60))
                .condition("async.data.id == event.data.id"),
        )
        .on_failure(|input: Input<FunctionFailed>, _step: Step| async move {
            Ok(json!({"handled": input.event.data.error.message, "fn": input.event.data.function_id}))
        })
        .handler(|_input: Input, _step: Step| async move { Ok("cron done") });

    let batched = Function::new("batched")
        .trigger(Trigger::event("demo/batch"))
        .idempotency("event.data.order")
        .batch(Batch::new(10, Duration::from_secs(5)).key("event.data.user"))
        .rate_limit(RateLimit::new(3, min(60)).key("event.data.user"))
        .singleton(Singleton::new(SingletonMode::Skip).key("event.data.user"))
        .handler(
            |input: Input, _step: Step| async move { Ok(json!({"count": input.events.len()})) },
        );

    let parallel = Function::new("parallel")
        .trigger(Trigger::event("demo/parallel"))
        .handler(|_input: Input, step: Step| async move {
            let (x, y) = step
                .join(
                    step.run("p1", || async { Ok("X".to_owned()) }),
                    step.run("p2", || async { Ok("Y".to_owned()) }),
                )
                .await?;
            let inv: Value = step
                .invoke(
                    "call-hello",
                    Invoke::function("hello").data(json!({"id": "nested"})),
                )
                .await?;
            let mut again = Vec::new();
            for i in 0..3u32 {
                again.push(step.run("loop", move || async move { Ok(i) }).await?);
            }
            Ok(json!({"x": x, "y": y, "inv": inv, "again": again}))
        });

    #[derive(Deserialize)]
    struct Scenario {
        mode: String,
    }
    let errors = Function::new("errors")
        .trigger(Trigger::event("demo/errors"))
        .handler(|input: Input<Scenario>, step: Step| async move {
            let b = |error: Error| step.run("b", move || async move { Err::<String, _>(error) });
            match input.event.data.mode.as_str() {
                "step-retry" => b(Error::retriable("step b exploded")).await,
                "step-fatal" => b(Error::non_retriable("step b fatal")).await,
                "step-later" => b(Error::retry_after(Duration::from_millis(1500), "later")).await,
                "catch" => match b(Error::retriable("unused")).await {
                    Err(Error::StepFailed(failure)) => {
                        Ok(format!("recovered: {}", failure.message()))
                    }
                    other => other,
                },
                "uncaught" => b(Error::retriable("unused")).await,
                "fn-fatal" => Err(Error::non_retriable("fatal at fn level")),
                "fn-later" => Err(Error::retry_after(Duration::from_secs(30), "later")),
                "fn-retry" => Err("plain error at fn level".parse::<u8>().unwrap_err().into()),
                "swallow" => {
                    let _ = step.run("a", || async { Ok(1) }).await;
                    Ok("done".to_owned())
                }
                "swallow-err" => match step.run("a", || async { Ok(1) }).await {
                    Ok(_) => Ok("done".to_owned()),
                    Err(_) => Err(Error::retriable("converted the interrupt")),
                },
                "panic" => panic!("boom"),
                "adhoc-join" => {
                    // Joined without `step.join`: one step runs, the other is planned.
                    let (a, b) = futures::join!(
                        step.run("a", || async { Ok(1) }),
                        step.run("b", || async { Ok(2) })
                    );
                    Ok(format!("{}", a? + b?))
                }
                other => Err(Error::non_retriable(format!("unknown mode {other}"))),
            }
        });
    vec![hello, configured, batched, parallel, errors]
}

fn app(config: Config) -> Router {
    functions()
        .into_iter()
        .fold(App::new(Client::new(config)), App::function)
        .router()
}

fn dev_config(api: &FakeApi) -> Config {
    Config::new("probe-app")
        .mode(Mode::Dev)
        .base_url(&api.url)
        .serve_origin("http://127.0.0.1:3939")
}

fn event(name: &str, data: Value) -> Value {
    json!({"name": name, "data": data, "id": "01KEVT0000000000000000000A", "ts": 1764000000000_i64, "user": {}})
}

/// Drops the TS-only `timing` field so ops compare with the captured ones.
fn ops(body: &Value) -> Vec<Value> {
    let mut ops = body.as_array().expect("a 206 carries an array").clone();
    for op in &mut ops {
        op.as_object_mut().unwrap().remove("timing");
    }
    ops
}

#[tokio::test]
async fn sync_sends_the_register_body_the_ts_sdk_sends() {
    let api = fake_api(
        StatusCode::OK,
        json!({"ok": true, "modified": true, "app_id": "a", "sync_id": "s"}),
    )
    .await;
    let router = app(dev_config(&api).signing_key(KEY));
    let put = Request::put("/api/inngest?deployId=d-1")
        .header("host", "ignored:1")
        .body(Body::empty())
        .unwrap();
    let answer = send(&router, put).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body,
        json!({"message": "Successfully registered", "modified": true})
    );

    let received = api.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    let register = &received[0];
    assert_eq!(register.uri, "/fn/register?deployId=d-1");
    let header = |n: &str| {
        register
            .headers
            .get(n)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(header("x-inngest-sdk").as_deref(), Some("rust:v0.1.0"));
    assert_eq!(header("x-inngest-framework").as_deref(), Some("axum"));
    assert_eq!(
        header("authorization").as_deref(),
        Some(
            "Bearer signkey-test-4884fdaafea47c29fea7159d0daddd9c085d6200e1359e85bb81736af6b7c837"
        )
    );

    // Captured from the TS SDK registering the same functions (parallel and errors aside).
    let want: Value = serde_json::from_str(include_str!("fixtures/register_ts_v4.json")).unwrap();
    let body = &register.body;
    for key in ["url", "deployType", "appName", "v"] {
        assert_eq!(body[key], want[key], "{key}");
    }
    assert_eq!(
        (body["framework"].as_str(), body["sdk"].as_str()),
        (Some("axum"), Some("rust:v0.1.0"))
    );
    let got: Vec<&Value> = body["functions"].as_array().unwrap().iter().collect();
    let ids: Vec<&str> = got.iter().map(|f| f["id"].as_str().unwrap()).collect();
    assert_eq!(
        ids,
        [
            "probe-app-hello",
            "probe-app-cron-configured",
            "probe-app-cron-configured-failure",
            "probe-app-batched",
            "probe-app-parallel",
            "probe-app-errors"
        ]
    );
    for want in want["functions"].as_array().unwrap() {
        let got = got.iter().find(|f| f["id"] == want["id"]).unwrap();
        assert_eq!(*got, want, "{}", want["id"]);
    }
}

#[tokio::test]
async fn sync_reports_the_servers_refusal() {
    let cases = [
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad cron", "status": 400}),
            400,
            "bad cron",
        ),
        (
            StatusCode::OK,
            json!({"error": "nope", "status": 422}),
            422,
            "nope",
        ),
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            json!({}),
            500,
            "registration failed with status 500 Internal Server Error",
        ),
    ];
    for (http, reply, status, message) in cases {
        let api = fake_api(http, reply).await;
        let answer = send(
            &app(dev_config(&api)),
            Request::put("/api/inngest").body(Body::empty()).unwrap(),
        )
        .await;
        assert_eq!(answer.status.as_u16(), status);
        assert_eq!(answer.body, json!({"message": message, "modified": false}));
        let received = api.received.lock().unwrap().clone();
        assert!(
            received[0].headers.get("authorization").is_none(),
            "no key, no auth"
        );
    }
}

#[tokio::test]
async fn a_run_walks_step_by_step_like_the_ts_sdk() {
    let api = fake_api(StatusCode::OK, json!({})).await;
    let router = app(dev_config(&api));
    let trigger = event("demo/hello", json!({"id": "x1"}));
    let reply = json!({"name": "demo/reply", "data": {"id": "x1", "ok": true}, "id": "01KEVT0000000000000000000B", "ts": 1764000000000_i64, "user": {}});
    let memo = [
        (A, json!({"data": {"a": 1, "id": "x1"}})),
        (WAIT, Value::Null),
        (B, json!({"data": "B"})),
        (W, reply.clone()),
        (
            SEND,
            json!({"data": {"ids": ["01M90SCY2X10MZQ9Z3VSG63SRF"]}}),
        ),
    ];
    // What the TS SDK answered at each call (captured), `timing` dropped.
    let want = [
        json!({"id": A, "op": "StepRun", "name": "a", "opts": {}, "displayName": "a", "userland": {"id": "a"}, "data": {"a": 1, "id": "x1"}}),
        json!({"displayName": "wait", "op": "Sleep", "id": WAIT, "name": "1s", "opts": {}, "userland": {"id": "wait"}, "data": null}),
        json!({"id": B, "op": "StepRun", "name": "b", "opts": {}, "displayName": "b", "userland": {"id": "b"}, "data": "B"}),
        json!({"displayName": "w", "op": "WaitForEvent", "id": W, "name": "demo/reply", "opts": {"timeout": "1m", "if": "async.data.id == event.data.id"}, "userland": {"id": "w"}, "data": null}),
        json!({"id": SEND, "op": "StepRun", "name": "sendEvent", "opts": {"type": "step.sendEvent"}, "displayName": "send", "userland": {"id": "send"}, "data": {"ids": ["01M90SCY2X10MZQ9Z3VSG63SRF"]}}),
    ];
    for (n, want) in want.iter().enumerate() {
        let steps: serde_json::Map<String, Value> = memo[..n]
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect();
        let body = call_body(trigger.clone(), Value::Object(steps), json!({}));
        let answer = send(&router, post_call("probe-app-hello", "step", &body)).await;
        assert_eq!(
            answer.status,
            StatusCode::PARTIAL_CONTENT,
            "call {n}: {}",
            answer.body
        );
        assert_eq!(ops(&answer.body), vec![want.clone()], "call {n}");
        assert_eq!(answer.header("x-inngest-sdk"), Some("rust:v0.1.0"));
        assert_eq!(answer.header("x-inngest-req-version"), Some("2"));
        assert_eq!(answer.header("x-inngest-framework"), Some("axum"));
        assert_eq!(answer.header("x-inngest-expected-server-kind"), Some("dev"));
        assert_eq!(answer.header("x-inngest-no-retry"), None);
    }

    // The send step posted the event as the TS SDK does, with an id seed.
    let received = api.received.lock().unwrap().clone();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].uri, "/e/NO_EVENT_KEY_SET");
    let seed = received[0].headers["x-inngest-event-id-seed"]
        .to_str()
        .unwrap();
    assert!(
        sluice_protocol::event::seeded_ulids(seed, 1).is_ok(),
        "{seed}"
    );
    let sent = &received[0].body;
    assert_eq!(
        (sent[0]["name"].as_str(), &sent[0]["data"]),
        (Some("demo/sent"), &json!({"id": "x1"}))
    );
    assert!(sent[0]["ts"].as_i64().unwrap() > 1_700_000_000_000);

    let steps: serde_json::Map<String, Value> = memo
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    let body = call_body(trigger, Value::Object(steps), json!({}));
    let answer = send(&router, post_call("probe-app-hello", "step", &body)).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body,
        json!({"a": {"a": 1, "id": "x1"}, "b": "B",
               "reply": {"name": "demo/reply", "data": {"id": "x1", "ok": true}, "id": "01KEVT0000000000000000000B", "ts": 1764000000000_i64},
               "sent": {"ids": ["01M90SCY2X10MZQ9Z3VSG63SRF"]}, "runId": "01KRUN0000000000000000000A"})
    );

    // A wait that timed out is memoized as null.
    let steps = json!({A: memo[0].1, WAIT: null, B: memo[2].1, W: null, SEND: memo[4].1});
    let answer = send(
        &router,
        post_call(
            "probe-app-hello",
            "step",
            &call_body(event("demo/hello", json!({"id": "x1"})), steps, json!({})),
        ),
    )
    .await;
    assert_eq!(
        (answer.status, &answer.body["reply"]),
        (StatusCode::OK, &Value::Null)
    );
}

#[tokio::test]
async fn parallel_steps_are_planned_then_run_one_by_one() {
    let api = fake_api(StatusCode::OK, json!({})).await;
    let router = app(dev_config(&api));
    let trigger = event("demo/parallel", json!({}));
    let planned = |id: &str, name: &str, index: Option<u32>| {
        let mut userland = json!({"id": name});
        if let Some(i) = index {
            userland["index"] = json!(i);
        }
        json!({"displayName": name, "op": "StepPlanned", "id": id, "name": name, "opts": {}, "userland": userland, "data": null})
    };
    let ran = |id: &str, name: &str, index: Option<u32>, data: Value| {
        let mut op = planned(id, name, index);
        op["op"] = json!("StepRun");
        op["data"] = data;
        op
    };
    let x = json!({"data": "X"});
    let y = json!({"data": "Y"});
    let inv = json!({"data": {"hello": "result"}});
    let late = json!({"disable_immediate_execution": true});
    // (stepId, steps, ctx, expected ops) — the TS SDK's answers, captured.
    let calls: Vec<(&str, Value, Value, Vec<Value>)> = vec![
        (
            "step",
            json!({}),
            json!({}),
            vec![planned(P1, "p1", None), planned(P2, "p2", None)],
        ),
        (
            P1,
            json!({}),
            late.clone(),
            vec![ran(P1, "p1", None, json!("X"))],
        ),
        (
            P2,
            json!({P1: x}),
            late.clone(),
            vec![ran(P2, "p2", None, json!("Y"))],
        ),
        (
            "step",
            json!({P1: x, P2: y}),
            late.clone(),
            vec![
                json!({"displayName": "call-hello", "op": "InvokeFunction", "id": CALL_HELLO, "opts": {"payload": {"data": {"id": "nested"}}, "function_id": "probe-app-hello"}, "userland": {"id": "call-hello"}, "data": null}),
            ],
        ),
        (
            "step",
            json!({P1: x, P2: y, CALL_HELLO: inv}),
            late.clone(),
            vec![planned(LOOP[0], "loop", None)],
        ),
        (
            LOOP[0],
            json!({P1: x, P2: y, CALL_HELLO: inv}),
            late.clone(),
            vec![ran(LOOP[0], "loop", None, json!(0))],
        ),
        (
            "step",
            json!({P1: x, P2: y, CALL_HELLO: inv, LOOP[0]: {"data": 0}}),
            late.clone(),
            vec![planned(LOOP[1], "loop", Some(1))],
        ),
        (
            LOOP[2],
            json!({P1: x, P2: y, CALL_HELLO: inv, LOOP[0]: {"data": 0}, LOOP[1]: {"data": 1}}),
            late.clone(),
            vec![ran(LOOP[2], "loop", Some(2), json!(2))],
        ),
    ];
    for (n, (step_id, steps, ctx, want)) in calls.into_iter().enumerate() {
        let answer = send(
            &router,
            post_call(
                "probe-app-parallel",
                step_id,
                &call_body(trigger.clone(), steps, ctx),
            ),
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::PARTIAL_CONTENT,
            "call {n}: {}",
            answer.body
        );
        assert_eq!(ops(&answer.body), want, "call {n}");
    }
    let steps = json!({P1: x, P2: y, CALL_HELLO: inv, LOOP[0]: {"data": 0}, LOOP[1]: {"data": 1}, LOOP[2]: {"data": 2}});
    let answer = send(
        &router,
        post_call(
            "probe-app-parallel",
            "step",
            &call_body(trigger, steps, late),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.body,
        json!({"x": "X", "y": "Y", "inv": {"hello": "result"}, "again": [0, 1, 2]})
    );
}

#[tokio::test]
async fn errors_map_to_ops_statuses_and_retry_headers() {
    let api = fake_api(StatusCode::OK, json!({})).await;
    let router = app(dev_config(&api));
    let failed_b = json!({B: {"error": {"name": "Error", "message": "step b exploded", "stack": "Error: ..."}}});
    struct Case {
        mode: &'static str,
        step_id: &'static str,
        steps: Value,
        attempt: u32,
        status: u16,
        no_retry: Option<&'static str>,
        retry_after: Option<&'static str>,
        /// The op (or the body) expected, partially: `op`, `error.name`, `error.message`.
        want: (&'static str, &'static str, &'static str),
    }
    let case = |mode, step_id, steps: &Value, attempt, status, no_retry, retry_after, want| Case {
        mode,
        step_id,
        steps: steps.clone(),
        attempt,
        status,
        no_retry,
        retry_after,
        want,
    };
    let none = json!({});
    let cases = [
        // A step error with attempts left is retried; on the last attempt it fails.
        case(
            "step-retry",
            B,
            &none,
            0,
            206,
            Some("false"),
            None,
            ("StepError", "Error", "step b exploded"),
        ),
        case(
            "step-retry",
            B,
            &none,
            3,
            206,
            Some("true"),
            None,
            ("StepFailed", "Error", "step b exploded"),
        ),
        case(
            "step-retry",
            "step",
            &none,
            0,
            206,
            Some("false"),
            None,
            ("StepError", "Error", "step b exploded"),
        ),
        case(
            "step-fatal",
            B,
            &none,
            0,
            206,
            Some("true"),
            None,
            ("StepFailed", "NonRetriableError", "step b fatal"),
        ),
        case(
            "step-later",
            B,
            &none,
            0,
            206,
            Some("false"),
            Some("2"),
            ("StepError", "RetryAfterError", "later"),
        ),
        // A memoized failure: uncaught fails the run, caught recovers.
        case(
            "uncaught",
            "step",
            &failed_b,
            0,
            400,
            Some("true"),
            None,
            ("", "Error", "step b exploded"),
        ),
        case(
            "catch",
            "step",
            &failed_b,
            0,
            200,
            None,
            None,
            ("", "", "recovered: step b exploded"),
        ),
        // Errors returned by the function itself.
        case(
            "fn-fatal",
            "step",
            &none,
            0,
            400,
            Some("true"),
            None,
            ("", "NonRetriableError", "fatal at fn level"),
        ),
        case(
            "fn-later",
            "step",
            &none,
            0,
            500,
            Some("false"),
            Some("30"),
            ("", "RetryAfterError", "later"),
        ),
        case(
            "fn-retry",
            "step",
            &none,
            0,
            500,
            Some("false"),
            None,
            ("", "Error", "invalid digit found in string"),
        ),
        case(
            "panic",
            "step",
            &none,
            0,
            500,
            Some("false"),
            None,
            ("", "Error", "the function panicked"),
        ),
        // Swallowed interrupts are detected: the step is still reported.
        case(
            "swallow",
            "step",
            &none,
            0,
            206,
            None,
            None,
            ("StepRun", "", ""),
        ),
        case(
            "swallow-err",
            "step",
            &none,
            0,
            206,
            None,
            None,
            ("StepRun", "", ""),
        ),
    ];
    for c in cases {
        let body = call_body(
            event("demo/errors", json!({"mode": c.mode})),
            c.steps.clone(),
            json!({"attempt": c.attempt, "max_attempts": 4}),
        );
        let answer = send(&router, post_call("probe-app-errors", c.step_id, &body)).await;
        let label = format!(
            "{} @{} attempt {}: {}",
            c.mode, c.step_id, c.attempt, answer.body
        );
        assert_eq!(answer.status.as_u16(), c.status, "{label}");
        assert_eq!(answer.header("x-inngest-no-retry"), c.no_retry, "{label}");
        assert_eq!(answer.header("retry-after"), c.retry_after, "{label}");
        let (op, name, message) = c.want;
        match c.status {
            206 => {
                let ops = ops(&answer.body);
                assert_eq!(ops.len(), 1, "{label}");
                assert_eq!(ops[0]["op"], op, "{label}");
                if !name.is_empty() {
                    assert_eq!(
                        (ops[0]["id"].as_str(), ops[0]["name"].as_str()),
                        (Some(B), Some("b")),
                        "{label}"
                    );
                    assert_eq!(ops[0]["error"]["name"], name, "{label}");
                    assert_eq!(ops[0]["error"]["message"], message, "{label}");
                    assert!(ops[0].get("data").is_none(), "{label}");
                } else {
                    assert_eq!(
                        (ops[0]["id"].as_str(), &ops[0]["data"]),
                        (Some(A), &json!(1)),
                        "{label}"
                    );
                }
            }
            200 => assert_eq!(answer.body, json!(message), "{label}"),
            _ => {
                assert_eq!(answer.body["name"], name, "{label}");
                assert_eq!(answer.body["message"], message, "{label}");
                assert_eq!(answer.body["__serialized"], true, "{label}");
            }
        }
    }
}

#[tokio::test]
async fn bad_requests_are_refused() {
    let api = fake_api(StatusCode::OK, json!({})).await;
    let router = app(dev_config(&api));
    let body = call_body(
        event("demo/errors", json!({"mode": 7})),
        json!({}),
        json!({}),
    );
    // (fnId, status, body field, expected)
    let cases = [
        ("probe-app-errors", 400, "name", "NonRetriableError"), // event doesn't fit the type
        ("probe-app-nope", 500, "type", "internal"),
    ];
    for (fn_id, status, field, want) in cases {
        let answer = send(&router, post_call(fn_id, "step", &body)).await;
        assert_eq!(answer.status.as_u16(), status, "{fn_id}: {}", answer.body);
        assert_eq!(answer.body[field], want, "{fn_id}");
    }
    let no_fn = Request::post("/api/inngest")
        .body(Body::from("{}"))
        .unwrap();
    assert_eq!(
        send(&router, no_fn).await.status,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    // The failure handler is served under its own id and gets the failure event.
    let failed = event(
        "inngest/function.failed",
        json!({"function_id": "probe-app-cron-configured", "run_id": "01KRUN0", "error": {"name": "Error", "message": "boom"}, "event": event("demo/manual", json!({"ok": true}))}),
    );
    let answer = send(
        &router,
        post_call(
            "probe-app-cron-configured-failure",
            "step",
            &call_body(failed, json!({}), json!({})),
        ),
    )
    .await;
    assert_eq!(
        (answer.status, answer.body.clone()),
        (
            StatusCode::OK,
            json!({"handled": "boom", "fn": "probe-app-cron-configured"})
        )
    );

    // Batched runs see every event.
    let mut body = call_body(event("demo/batch", json!({})), json!({}), json!({}));
    body["events"] = json!([
        event("demo/batch", json!({})),
        event("demo/batch", json!({})),
        event("demo/batch", json!({}))
    ]);
    let answer = send(&router, post_call("probe-app-batched", "step", &body)).await;
    assert_eq!(answer.body, json!({"count": 3}));

    // Dev mode: introspection is open.
    let answer = send(
        &router,
        Request::get("/api/inngest").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        (
            answer.body["mode"].as_str(),
            answer.body["function_count"].as_u64()
        ),
        (Some("dev"), Some(6))
    );
}

#[tokio::test]
async fn cloud_mode_verifies_and_signs() {
    let api = fake_api(StatusCode::OK, json!({})).await;
    let key = SigningKey::new(KEY).unwrap();
    let other = SigningKey::new("signkey-test-abcdef").unwrap();
    let config = |primary: &str| {
        Config::new("probe-app")
            .mode(Mode::Cloud)
            .base_url(&api.url)
            .signing_key(primary)
            .signing_key_fallback(KEY)
    };
    let router = app(config(KEY));
    let body = call_body(
        event("demo/hello", json!({"id": "x1"})),
        json!({}),
        json!({}),
    );
    let canonical = to_canonical_vec(&body);
    let pretty = serde_json::to_vec_pretty(&body).unwrap();
    let now = chrono::Utc::now().timestamp();
    let signed = |bytes: &[u8], sig: Option<String>| {
        let mut r = Request::post("/api/inngest?fnId=probe-app-hello&stepId=step")
            .header("x-inngest-server-kind", "cloud");
        if let Some(sig) = sig {
            r = r.header("x-inngest-signature", sig);
        }
        r.body(Body::from(bytes.to_vec())).unwrap()
    };
    // (request, expected status): like the TS SDK, only the canonical body is verified.
    let cases = [
        (
            signed(&pretty, Some(signing::sign(&canonical, &key, now))),
            206,
        ),
        (
            signed(&canonical, Some(signing::sign(&canonical, &key, now - 60))),
            206,
        ),
        (
            signed(&pretty, Some(signing::sign(&pretty, &key, now))),
            401,
        ),
        (signed(&canonical, None), 401),
        (
            signed(&canonical, Some(signing::sign(&canonical, &other, now))),
            401,
        ),
        (
            signed(&canonical, Some(signing::sign(&canonical, &key, now - 600))),
            401,
        ),
    ];
    for (n, (request, status)) in cases.into_iter().enumerate() {
        let answer = send(&router, request).await;
        assert_eq!(answer.status.as_u16(), status, "case {n}: {}", answer.body);
        if status == 401 {
            assert_eq!(answer.body, json!({"message": "Unauthorized"}));
            assert_eq!(answer.header("x-inngest-sdk"), None, "case {n}");
            continue;
        }
        // The response is signed over its exact bytes with the key that matched.
        let sig = answer
            .header("x-inngest-signature")
            .expect("signed response");
        assert_eq!(
            signing::verify(sig, &answer.raw, std::slice::from_ref(&key), now, Some(300)),
            Ok(0)
        );
        assert_eq!(
            answer.header("x-inngest-expected-server-kind"),
            Some("cloud")
        );
        assert_eq!(ops(&answer.body)[0]["id"], A);
    }

    // The fallback key is accepted too.
    let router = app(config("signkey-test-abcdef"));
    let answer = send(
        &router,
        signed(&canonical, Some(signing::sign(&canonical, &key, now))),
    )
    .await;
    assert_eq!(answer.status, StatusCode::PARTIAL_CONTENT);

    // Introspection: 401 unsigned, the full body signed.
    let get = |sig: Option<String>| {
        let mut r = Request::get("/api/inngest");
        if let Some(sig) = sig {
            r = r.header("x-inngest-signature", sig);
        }
        r.body(Body::empty()).unwrap()
    };
    assert_eq!(
        send(&router, get(None)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let answer = send(&router, get(Some(signing::sign(b"", &key, now)))).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.body["authentication_succeeded"], true);
    assert_eq!(answer.body["mode"], "cloud");
    assert_eq!(
        answer.body["signing_key_fallback_hash"],
        "4884fdaafea47c29fea7159d0daddd9c085d6200e1359e85bb81736af6b7c837"
    );
}

#[tokio::test]
async fn steps_joined_without_the_helper_run_one_at_a_time() {
    let api = fake_api(StatusCode::OK, json!({})).await;
    let router = app(dev_config(&api));
    let trigger = event("demo/errors", json!({"mode": "adhoc-join"}));
    let answer = send(
        &router,
        post_call(
            "probe-app-errors",
            "step",
            &call_body(trigger.clone(), json!({}), json!({})),
        ),
    )
    .await;
    let got: Vec<(Value, Value)> = ops(&answer.body)
        .iter()
        .map(|op| (op["op"].clone(), op["id"].clone()))
        .collect();
    assert_eq!(
        got,
        [
            (json!("StepRun"), json!(A)),
            (json!("StepPlanned"), json!(B))
        ]
    );

    let steps = json!({A: {"data": 1}});
    let answer = send(
        &router,
        post_call(
            "probe-app-errors",
            B,
            &call_body(trigger.clone(), steps, json!({})),
        ),
    )
    .await;
    assert_eq!(ops(&answer.body)[0]["data"], 2);
    let steps = json!({A: {"data": 1}, B: {"data": 2}});
    let answer = send(
        &router,
        post_call(
            "probe-app-errors",
            "step",
            &call_body(trigger, steps, json!({})),
        ),
    )
    .await;
    assert_eq!((answer.status, answer.body), (StatusCode::OK, json!("3")));
}

#[test]
fn response_signatures_use_the_ts_sdks_scheme() {
    // A TS SDK response body and the signature it sent with it (captured).
    let body = r#"[{"id":"86f7e437faa5a7fce15d1ddcb9eaeaea377667b8","op":"StepRun","name":"a","opts":{},"displayName":"a","userland":{"id":"a"},"data":{"a":1,"id":"x1"},"timing":{"a":1796396715787000000,"b":0}}]"#;
    let key = SigningKey::new(KEY).unwrap();
    assert_eq!(
        signing::sign(body.as_bytes(), &key, 1796396716),
        "t=1796396716&s=c3d72f1014790d3888ac9bf3acf23b39684e5441e414506d3f19fda0d6575988"
    );
}
