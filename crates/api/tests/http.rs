//! The API through `router()` + `oneshot` (no socket), against a real SQLite store.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::{Value, json};
use sluice_api::{ApiOptions, AppState, Limits, Mode, router};
use sluice_broker::{Broker, BrokerOptions};
use sluice_core::{EventId, FunctionId, Millis, RunId, RunStatus, WaitId};
use sluice_protocol::SigningKey;
use sluice_store::{
    DynStore, EventFilter, NewQueueItem, NewRun, NewWait, QueueKind, StepStatus, WaitKind,
};
use sluice_store_sqlite::SqliteStore;
use tower::ServiceExt;

const KEY: &str = "signkey-test-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

struct Api {
    router: Router,
    store: DynStore,
}

async fn api(options: ApiOptions) -> Api {
    let store: DynStore = Arc::new(SqliteStore::temporary().await.unwrap());
    let broker = Broker::start(store.clone(), BrokerOptions::default())
        .await
        .unwrap();
    // An executor for run actions; no scheduler runs, so runs stay queued.
    let executor = sluice_executor::Executor::new(
        sluice_executor::ExecutorOptions::default(),
        store.clone(),
        Arc::new(broker.clone()),
    )
    .unwrap();
    Api {
        router: router(AppState::new(store.clone(), broker, options).with_executor(executor)),
        store,
    }
}

impl Api {
    async fn send(
        &self,
        method: &str,
        uri: &str,
        headers: &[(&str, &str)],
        body: impl Into<Body>,
    ) -> (StatusCode, Value) {
        let mut request = Request::builder().method(method).uri(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = self
            .router
            .clone()
            .oneshot(request.body(body.into()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        (status, value)
    }

    async fn post(&self, uri: &str, body: impl Into<Body>) -> (StatusCode, Value) {
        self.send("POST", uri, &[("content-type", "application/json")], body)
            .await
    }

    async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.send("GET", uri, &[], Body::empty()).await
    }

    async fn event_count(&self) -> usize {
        let page = self
            .store
            .list_events(EventFilter {
                include_internal: true,
                limit: 1000,
                ..EventFilter::default()
            })
            .await
            .unwrap();
        page.items.len()
    }

    /// Slugs of the functions an event started runs of, sorted.
    async fn triggered(&self, id: &str) -> Vec<String> {
        let runs = self
            .store
            .runs_for_event(id.parse().unwrap())
            .await
            .unwrap();
        let mut slugs = Vec::new();
        for run in runs {
            slugs.push(self.store.get_function(run.function_id).await.unwrap().slug);
        }
        slugs.sort();
        slugs
    }
}

/// A TS-SDK-shaped register body (v4 keys: `appName`, `deployType`, `deployId` left in
/// the URL, the full function config), for an app serving these functions.
fn ts_register(app: &str, functions: Value) -> String {
    json!({
        "url": "http://127.0.0.1:3939/api/inngest?deployId=dep-1",
        "deployType": "ping",
        "framework": "express",
        "appName": app,
        "sdk": "js:v4.24.0",
        "v": "0.1",
        "capabilities": {"trust_probe": "v1", "connect": "v1"},
        "featureObservations": {"anything": [1, 2]},
        "functions": functions,
    })
    .to_string()
}

fn ts_function(app: &str, id: &str, triggers: Value, extra: Value) -> Value {
    let mut f = json!({
        "id": format!("{app}-{id}"),
        "name": id,
        "triggers": triggers,
        "steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "http",
            "url": format!("http://127.0.0.1:3939/api/inngest?fnId={app}-{id}&stepId=step&deployId=dep-1")}}},
    });
    f.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    f
}

/// A Python-SDK-shaped register body (`appname`, `deploy_type`, `in_band_sync`, empty
/// `cancel`/`concurrency` lists on the failure function, retries 0).
const PY_REGISTER: &str = r#"{
 "appname": "probe-py",
 "capabilities": {"connect": "v1", "in_band_sync": "v1", "trust_probe": "v1"},
 "deploy_type": "ping",
 "framework": "flask",
 "sdk": "py:v0.5.19",
 "url": "http://127.0.0.1:3950/api/inngest",
 "v": "0.1",
 "functions": [
  {"id": "probe-py-hello", "name": "Hello flow",
   "steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "http",
     "url": "http://127.0.0.1:3950/api/inngest?fnId=probe-py-hello&stepId=step"}}},
   "triggers": [{"event": "demo/hello"}]},
  {"cancel": [{"event": "demo/cancel", "if": "async.data.id == event.data.id", "timeout": "1h"}],
   "concurrency": [{"key": "event.data.user", "limit": 2, "scope": "fn"}],
   "debounce": {"key": "event.data.user", "period": "5s", "timeout": "1m"},
   "id": "probe-py-configured", "name": "configured",
   "priority": {"run": "event.data.vip ? 120 : 0"},
   "steps": {"step": {"id": "step", "name": "step", "retries": {"attempts": 5}, "runtime": {"type": "http",
     "url": "http://127.0.0.1:3950/api/inngest?fnId=probe-py-configured&stepId=step"}}},
   "throttle": {"key": "event.data.user", "limit": 5, "period": "1m", "burst": 2},
   "timeouts": {"start": "30s", "finish": "5m"},
   "triggers": [{"cron": "*/5 * * * *"}, {"event": "demo/manual", "expression": "event.data.ok == true"}]},
  {"cancel": [], "concurrency": [],
   "id": "probe-py-configured-failure", "name": "configured (failure)",
   "steps": {"step": {"id": "step", "name": "step", "retries": {"attempts": 0}, "runtime": {"type": "http",
     "url": "http://127.0.0.1:3950/api/inngest?fnId=probe-py-configured-failure&stepId=step"}}},
   "triggers": [{"event": "inngest/function.failed", "expression": "event.data.function_id == 'probe-py-configured'"}]}
 ]
}"#;

fn shop_functions() -> Value {
    json!([
        ts_function("shop", "all", json!([{"event": "shop/order"}]), json!({})),
        ts_function(
            "shop",
            "big",
            json!([{"event": "shop/order", "expression": "event.data.total > 100"}]),
            json!({})
        ),
        ts_function("shop", "wild", json!([{"event": "shop/*"}]), json!({})),
        ts_function(
            "shop",
            "other",
            json!([{"event": "other/thing"}]),
            json!({})
        ),
        ts_function(
            "shop",
            "cancellable",
            json!([{"event": "shop/subscribe"}]),
            json!({"cancel": [{"event": "shop/unsubscribe", "if": "async.data.user == event.data.user", "timeout": "1h"}]})
        ),
    ])
}

fn assert_error(status: StatusCode, body: &Value, want_status: u16, code: &str) {
    assert_eq!(status.as_u16(), want_status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert_eq!(body["status"], want_status, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert_eq!(body["error"], body["message"], "{body}");
}

#[tokio::test]
async fn registration_accepts_both_sdks_and_resyncs_atomically() {
    let api = api(ApiOptions::default()).await;

    // TS shape.
    let (status, body) = api
        .post("/fn/register", ts_register("shop", shop_functions()))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        (
            body["ok"].clone(),
            body["status"].clone(),
            body["modified"].clone()
        ),
        (json!(true), json!(200), json!(true))
    );
    let (_, apps) = api.get("/v1/apps").await;
    let shop = apps["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["name"] == "shop")
        .unwrap()
        .clone();
    assert_eq!(
        shop["url"], "http://localhost:3939/api/inngest",
        "deployId stripped, host normalised"
    );
    assert_eq!(shop["sdk"], "js:v4.24.0");
    assert_eq!(shop["id"], body["app_id"]);

    // Python shape: every config field kept.
    let (status, body) = api.post("/fn/register", PY_REGISTER).await;
    assert_eq!(
        (status, body["status"].clone()),
        (StatusCode::OK, json!(200)),
        "{body}"
    );
    let (status, f) = api.get("/v1/functions/probe-py-configured").await;
    assert_eq!(status, StatusCode::OK);
    let config = &f["config"];
    assert_eq!(
        config["throttle"],
        json!({"key": "event.data.user", "limit": 5, "period": "1m", "burst": 2})
    );
    assert_eq!(config["debounce"]["period"], "5s");
    assert_eq!(config["timeouts"]["finish"], "5m");
    assert_eq!(config["priority"]["run"], "event.data.vip ? 120 : 0");
    assert_eq!(config["cancel"][0]["timeout"], "1h");
    assert_eq!(config["steps"]["step"]["retries"]["attempts"], 5);
    assert_eq!(f["triggers"].as_array().unwrap().len(), 2);
    let (_, app) = api
        .get(&format!("/v1/apps/{}", body["app_id"].as_str().unwrap()))
        .await;
    assert_eq!(app["functions"].as_array().unwrap().len(), 3);
    assert_eq!(app["name"], "probe-py");

    // Same sync again: nothing modified.
    let (_, again) = api.post("/fn/register", PY_REGISTER).await;
    assert_eq!(again["modified"], false);

    // A bad expression refuses the whole sync; nothing changes.
    let bad = ts_register(
        "shop",
        json!([ts_function(
            "shop",
            "all",
            json!([{"event": "shop/order", "expression": "event.data.total >"}]),
            json!({})
        )]),
    );
    let (status, body) = api.post("/fn/register", bad).await;
    assert_error(status, &body, 400, "invalid_function");
    let bad_cancel = ts_register(
        "shop",
        json!([ts_function(
            "shop",
            "all",
            json!([{"event": "a"}]),
            json!({"cancel": [{"event": "b", "if": "(("}]})
        )]),
    );
    let (status, body) = api.post("/fn/register", bad_cancel).await;
    assert_error(status, &body, 400, "invalid_function");
    for (body, code) in [
        ("{", "invalid_register"),
        ("{\"url\":\"x\"}", "invalid_register"),
        ("", "invalid_register"),
    ] {
        let (status, reply) = api.post("/fn/register", body).await;
        assert_error(status, &reply, 400, code);
    }
    let (_, fns) = api.get("/v1/functions").await;
    assert_eq!(
        fns["items"].as_array().unwrap().len(),
        8,
        "5 shop + 3 py, unchanged"
    );

    // Before the re-sync, `big` triggers.
    let (_, sent) = api
        .post("/e/key", r#"{"name":"shop/order","data":{"total":500}}"#)
        .await;
    assert_eq!(
        api.triggered(sent["ids"][0].as_str().unwrap()).await,
        ["shop-all", "shop-big", "shop-wild"]
    );

    // Re-sync without `big` and `wild`: they stop triggering.
    let fewer = shop_functions()
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["id"] != "shop-big" && f["id"] != "shop-wild")
        .cloned()
        .collect::<Vec<_>>();
    let (status, body) = api
        .post("/fn/register", ts_register("shop", json!(fewer)))
        .await;
    assert_eq!(
        (status, body["modified"].clone()),
        (StatusCode::OK, json!(true))
    );
    let (status, _) = api.get("/v1/functions/shop-big").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, sent) = api
        .post("/e/key", r#"{"name":"shop/order","data":{"total":500}}"#)
        .await;
    assert_eq!(
        api.triggered(sent["ids"][0].as_str().unwrap()).await,
        ["shop-all"]
    );
}

#[tokio::test]
async fn start_mode_checks_signing_and_event_keys() {
    let options = ApiOptions {
        mode: Mode::Start,
        event_keys: vec!["ek-1".into()],
        signing_keys: vec![SigningKey::new(KEY).unwrap()],
        ..ApiOptions::default()
    };
    let api = api(options).await;
    let hash = SigningKey::new(KEY).unwrap().hashed().unwrap();
    let ts_bearer = format!("Bearer signkey-test-{hash}");
    let py_bearer = format!("Bearer {hash}");
    let body = ts_register("shop", shop_functions());
    for (auth, want) in [
        (None, 401),
        (Some("Bearer undefined"), 401),
        (Some("Bearer signkey-test-0000"), 401),
        (Some(ts_bearer.as_str()), 200),
        (Some(py_bearer.as_str()), 200),
    ] {
        let mut headers = vec![("content-type", "application/json")];
        if let Some(auth) = auth {
            headers.push(("authorization", auth));
        }
        let (status, reply) = api
            .send("POST", "/fn/register", &headers, body.clone())
            .await;
        assert_eq!(status.as_u16(), want, "{auth:?}: {reply}");
        assert_eq!(reply["status"], want, "TS reads `status`");
    }
    let (status, body) = api.post("/e/wrong", r#"{"name":"shop/order"}"#).await;
    assert_error(status, &body, 401, "unauthorized");
    assert_eq!(api.event_count().await, 0);
    let (status, body) = api.post("/e/ek-1", r#"{"name":"shop/order"}"#).await;
    assert_eq!(
        (status, body["status"].clone()),
        (StatusCode::OK, json!(200))
    );
}

#[tokio::test]
async fn bad_input_is_refused_and_nothing_is_stored() {
    let limits = Limits {
        max_event_bytes: 1024,
        max_request_bytes: 8 * 1024,
        max_events: 3,
        ..Limits::default()
    };
    let api = api(ApiOptions {
        limits,
        ..ApiOptions::default()
    })
    .await;
    api.post("/fn/register", ts_register("shop", shop_functions()))
        .await;
    let far = Millis::now().0 + 366 * 24 * 3_600_000;
    let deep = format!(
        r#"{{"name":"a","data":{{"x":{}1{}}}}}"#,
        "[".repeat(70),
        "]".repeat(70)
    );
    let big_event = format!(r#"[{{"name":"a","data":{{"s":"{}"}}}}]"#, "x".repeat(2_000));
    let big_body = format!(r#"{{"name":"a","data":{{"s":"{}"}}}}"#, "x".repeat(9_000));
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"{\"name\": ".to_vec(), 400, "invalid_json"),
        (b"{\"name\":\"a\"} trailing".to_vec(), 400, "invalid_json"),
        (b"{\"name\":\"\xff\"}".to_vec(), 400, "invalid_utf8"),
        (b"".to_vec(), 400, "empty_body"),
        (b"null".to_vec(), 400, "empty_body"),
        (b"[]".to_vec(), 400, "empty_body"),
        (b"\"shop/order\"".to_vec(), 400, "invalid_body"),
        (b"{\"data\":{}}".to_vec(), 400, "missing_name"),
        (b"{\"name\":\"  \"}".to_vec(), 400, "missing_name"),
        (
            b"{\"name\":\"a\",\"data\":[1,2]}".to_vec(),
            400,
            "invalid_data",
        ),
        (b"{\"name\":\"a\",\"data\":5}".to_vec(), 400, "invalid_data"),
        (
            b"{\"name\":\"inngest/function.finished\"}".to_vec(),
            400,
            "reserved_name",
        ),
        // One bad event refuses the whole request, good ones included.
        (
            b"[{\"name\":\"shop/order\"},{\"nope\":1}]".to_vec(),
            400,
            "missing_name",
        ),
        (
            format!(r#"{{"name":"shop/order","ts":{far}}}"#).into_bytes(),
            400,
            "ts_too_far",
        ),
        (deep.into_bytes(), 400, "too_deep"),
        (big_event.into_bytes(), 413, "payload_too_large"),
        (big_body.into_bytes(), 413, "payload_too_large"),
        (
            br#"[{"name":"a"},{"name":"a"},{"name":"a"},{"name":"a"}]"#.to_vec(),
            400,
            "too_many_events",
        ),
    ];
    for (body, want, code) in cases {
        let shown = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
        for uri in ["/e/key", "/v1/events"] {
            let (status, reply) = api.post(uri, body.clone()).await;
            assert_eq!(status.as_u16(), want, "{uri} {shown}: {reply}");
            assert_error(status, &reply, want, code);
        }
    }
    assert_eq!(api.event_count().await, 0, "nothing stored");
    let (status, health) = api.get("/health").await;
    assert_eq!(
        (status, health),
        (StatusCode::OK, json!({"status": "ok"})),
        "server unaffected"
    );
    let (status, _) = api.post("/e/key", r#"{"name":"shop/order"}"#).await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn events_fan_out_dedupe_and_wait_for_their_time() {
    let api = api(ApiOptions::default()).await;
    api.post("/fn/register", ts_register("shop", shop_functions()))
        .await;

    // Several functions, expression filters and wildcards.
    let (status, body) = api
        .post(
            "/e/any-key",
            r#"[{"name":"shop/order","data":{"total":50}},{"name":"shop/order","data":{"total":500}},
                {"name":"shop/cart"},{"name":"nobody/listens"}]"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], 200);
    let ids: Vec<String> = body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 4);
    assert!(ids.iter().all(|id| id.parse::<EventId>().is_ok()), "ULIDs");
    let want: [&[&str]; 4] = [
        &["shop-all", "shop-wild"],
        &["shop-all", "shop-big", "shop-wild"],
        &["shop-wild"],
        &[],
    ];
    for (id, want) in ids.iter().zip(want) {
        assert_eq!(api.triggered(id).await, want, "{id}");
    }
    // Each run has its first call item, due now.
    let run = &api
        .store
        .runs_for_event(ids[2].parse().unwrap())
        .await
        .unwrap()[0];
    assert_eq!(run.status, RunStatus::Queued);
    let items = api.store.run_queue_items(run.id).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(
        (items[0].kind, items[0].step_id.clone()),
        (QueueKind::Call, None)
    );
    assert!(items[0].available_at <= Millis::now());

    // The event `id` dedupes: acknowledged, same id, nothing triggered again.
    let (_, first) = api
        .post("/e/k", r#"{"name":"shop/cart","id":"cart-1"}"#)
        .await;
    let (status, second) = api
        .post("/e/k", r#"{"name":"shop/cart","id":"cart-1"}"#)
        .await;
    assert_eq!(
        (status, second["status"].clone()),
        (StatusCode::OK, json!(200))
    );
    assert_eq!(first["ids"], second["ids"]);
    assert_eq!(
        api.triggered(first["ids"][0].as_str().unwrap()).await,
        ["shop-wild"]
    );

    // An SDK retry with the same seed gets the same ids and triggers nothing new.
    let seed = [
        ("x-inngest-event-id-seed", "1764000000000,AAECAwQFBgcICQ=="),
        ("content-type", "application/json"),
    ];
    let body = r#"[{"name":"shop/cart"},{"name":"shop/cart"}]"#;
    let (_, a) = api.send("POST", "/e/k", &seed, body).await;
    let (_, b) = api.send("POST", "/e/k", &seed, body).await;
    assert_eq!(a["ids"], b["ids"]);
    assert_ne!(a["ids"][0], a["ids"][1]);
    assert_eq!(
        EventId::from(
            a["ids"][0]
                .as_str()
                .unwrap()
                .parse::<EventId>()
                .unwrap()
                .ulid()
        )
        .ulid()
        .timestamp_ms(),
        1_764_000_000_000
    );
    for id in a["ids"].as_array().unwrap() {
        assert_eq!(api.triggered(id.as_str().unwrap()).await, ["shop-wild"]);
    }

    // A future `ts`: stored and acknowledged now, the run queued for then.
    let at = Millis::now().0 + 3_600_000;
    let (status, body) = api
        .post(
            "/e/k",
            format!(r#"{{"name":"shop/order","data":{{"total":1}},"ts":{at}}}"#),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let runs = api
        .store
        .runs_for_event(body["ids"][0].as_str().unwrap().parse().unwrap())
        .await
        .unwrap();
    assert_eq!(runs.len(), 2);
    for run in runs {
        let items = api.store.run_queue_items(run.id).await.unwrap();
        assert_eq!(items[0].available_at, Millis(at), "never before its time");
    }
    let event = api
        .store
        .get_event(body["ids"][0].as_str().unwrap().parse().unwrap())
        .await
        .unwrap();
    assert_eq!(event.ts, Millis(at));
}

#[tokio::test]
async fn cancel_rules_and_waits_are_matched() {
    let api = api(ApiOptions::default()).await;
    api.post("/fn/register", ts_register("shop", shop_functions()))
        .await;

    // `cancel[]`: a run watches for its cancel event.
    let (_, sub) = api
        .post("/e/k", r#"{"name":"shop/subscribe","data":{"user":"u1"}}"#)
        .await;
    // The event also starts `shop/*`'s run: take the cancellable function's.
    let cancellable = api
        .store
        .get_function_by_slug("shop-cancellable")
        .await
        .unwrap();
    let run = api
        .store
        .runs_for_event(sub["ids"][0].as_str().unwrap().parse().unwrap())
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.function_id == cancellable.id)
        .expect("a run of shop-cancellable");
    let waits = api.store.run_waits(run.id).await.unwrap();
    assert_eq!(waits.len(), 1);
    assert_eq!(
        (waits[0].kind, waits[0].event_name.as_str()),
        (WaitKind::Cancel, "shop/unsubscribe")
    );
    api.post(
        "/e/k",
        r#"{"name":"shop/unsubscribe","data":{"user":"someone-else"}}"#,
    )
    .await;
    assert_eq!(
        api.store.get_run(run.id).await.unwrap().status,
        RunStatus::Queued
    );
    api.post(
        "/e/k",
        r#"{"name":"shop/unsubscribe","data":{"user":"u1"}}"#,
    )
    .await;
    assert_eq!(
        api.store.get_run(run.id).await.unwrap().status,
        RunStatus::Cancelled
    );

    // `waitForEvent`: a waiting run resumes with the raw event.
    let (_, order) = api
        .post("/e/k", r#"{"name":"other/thing","data":{"id":"o1"}}"#)
        .await;
    let waiting = api
        .store
        .runs_for_event(order["ids"][0].as_str().unwrap().parse().unwrap())
        .await
        .unwrap()
        .remove(0);
    let function_id: FunctionId = waiting.function_id;
    let run_id = RunId::new();
    let trigger = api.store.get_event(waiting.event_ids[0]).await.unwrap();
    let now = Millis::now();
    api.store
        .create_runs(vec![NewRun {
            id: run_id,
            function_id,
            event_ids: vec![trigger.id],
            correlation_id: None,
            rerun_of: None,
            created_at: now,
            first: NewQueueItem::call(run_id, function_id, None, now.plus_ms(3_600_000)),
            waits: vec![NewWait {
                id: WaitId::new(),
                run_id,
                kind: WaitKind::Event,
                step_id: Some("wait-step".into()),
                event_name: "shop/reply".into(),
                expression: Some("async.data.id == event.data.id".into()),
                correlation_id: None,
                trigger_event: trigger.to_sdk_json(),
                expires_at: Some(now.plus_ms(3_600_000)),
                created_at: now,
            }],
        }])
        .await
        .unwrap();
    api.post("/e/k", r#"{"name":"shop/reply","data":{"id":"o2"}}"#)
        .await;
    assert!(
        api.store.list_steps(run_id).await.unwrap().is_empty(),
        "condition false"
    );
    let (_, reply) = api
        .post("/e/k", r#"{"name":"shop/reply","data":{"id":"o1"}}"#)
        .await;
    let steps = api.store.list_steps(run_id).await.unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(
        (steps[0].step_id.as_str(), steps[0].status),
        ("wait-step", StepStatus::Completed)
    );
    let result = steps[0].result.clone().unwrap();
    assert_eq!(
        (result["name"].clone(), result["data"].clone()),
        (json!("shop/reply"), json!({"id": "o1"}))
    );
    assert!(api.store.run_waits(run_id).await.unwrap().is_empty());
    let items = api.store.run_queue_items(run_id).await.unwrap();
    assert!(items.iter().any(|i| i.kind == QueueKind::Call
        && i.step_id.is_none()
        && i.available_at <= Millis::now()));
    assert_eq!(reply["status"], 200);
}

#[tokio::test]
async fn read_api_invoke_and_openapi() {
    let api = api(ApiOptions::default()).await;
    api.post("/fn/register", ts_register("shop", shop_functions()))
        .await;
    for total in [1, 200, 300] {
        api.post(
            "/v1/events",
            format!(r#"{{"name":"shop/order","data":{{"total":{total}}}}}"#),
        )
        .await;
    }
    let (status, events) = api.get("/v1/events?name=shop/order&limit=2").await;
    assert_eq!(status, StatusCode::OK);
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["data"]["total"], 300, "newest first");
    assert_eq!(items[0]["runs"].as_array().unwrap().len(), 3);
    let next = events["next"].as_str().unwrap();
    let (_, page2) = api
        .get(&format!("/v1/events?name=shop/order&limit=2&cursor={next}"))
        .await;
    assert_eq!(page2["items"].as_array().unwrap().len(), 1);
    assert_eq!(page2["items"][0]["data"]["total"], 1);

    let (_, runs) = api
        .get("/v1/runs?function=shop-big&status=queued,running")
        .await;
    assert_eq!(runs["items"].as_array().unwrap().len(), 2);
    let (_, none) = api.get("/v1/runs?status=completed").await;
    assert!(none["items"].as_array().unwrap().is_empty());
    let (_, paged) = api.get("/v1/runs?limit=4").await;
    assert_eq!(paged["items"].as_array().unwrap().len(), 4);
    let (_, rest) = api
        .get(&format!(
            "/v1/runs?limit=4&cursor={}",
            paged["next"].as_str().unwrap()
        ))
        .await;
    assert_eq!(rest["items"].as_array().unwrap().len(), 4, "8 runs in all");
    assert!(
        rest["next"].is_null()
            || api
                .get(&format!(
                    "/v1/runs?limit=4&cursor={}",
                    rest["next"].as_str().unwrap()
                ))
                .await
                .1["items"]
                == json!([])
    );
    let run_id = paged["items"][0]["id"].as_str().unwrap();
    let (status, run) = api.get(&format!("/v1/runs/{run_id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(run["events"][0]["name"], "shop/order");
    let (_, steps) = api.get(&format!("/v1/runs/{run_id}/steps")).await;
    assert_eq!(steps["items"], json!([]));
    for (uri, want, code) in [
        ("/v1/runs?status=bogus", 400, "invalid_query"),
        ("/v1/runs?limit=0", 400, "invalid_query"),
        ("/v1/runs?after=yesterday", 400, "invalid_query"),
        ("/v1/runs/not-a-ulid", 400, "invalid_id"),
        (
            &format!("/v1/runs/{}", RunId::new()) as &str,
            404,
            "not_found",
        ),
        ("/v1/functions/nope", 404, "not_found"),
        (
            "/v1/apps/00000000-0000-0000-0000-000000000000",
            404,
            "not_found",
        ),
    ] {
        let (status, body) = api.get(uri).await;
        assert_error(status, &body, want, code);
    }

    // Invoke starts exactly that function, through an internal event.
    let (status, invoked) = api
        .post("/v1/functions/shop-other/invoke", r#"{"data":{"x":1}}"#)
        .await;
    assert_eq!(status, StatusCode::OK, "{invoked}");
    let run = api
        .store
        .get_run(invoked["run_id"].as_str().unwrap().parse().unwrap())
        .await
        .unwrap();
    assert_eq!(
        api.store.get_function(run.function_id).await.unwrap().slug,
        "shop-other"
    );
    let event = api.store.get_event(run.event_ids[0]).await.unwrap();
    assert_eq!(event.name, "inngest/function.invoked");
    assert_eq!(
        (
            event.data["x"].clone(),
            event.data["_inngest"]["fn_id"].clone()
        ),
        (json!(1), json!("shop-other"))
    );
    let (status, body) = api
        .post("/v1/functions/shop-other/invoke", r#"{"data":[1]}"#)
        .await;
    assert_error(status, &body, 400, "invalid_data");
    let (status, body) = api.post("/v1/functions/nope/invoke", "{}").await;
    assert_error(status, &body, 404, "not_found");

    // The OpenAPI description is served and names every route it documents.
    let (status, spec) = api.get("/v1/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    let paths = spec["paths"].as_object().unwrap();
    for path in [
        "/e/{event_key}",
        "/fn/register",
        "/health",
        "/v1/apps",
        "/v1/apps/{id}",
        "/v1/apps/{id}/sync",
        "/v1/functions",
        "/v1/functions/{slug}",
        "/v1/functions/{slug}/invoke",
        "/v1/events",
        "/v1/events/{id}",
        "/v1/runs",
        "/v1/runs/{id}",
        "/v1/runs/{id}/steps",
        "/v1/runs/cancel",
        "/v1/runs/rerun",
        "/dev",
    ] {
        assert!(paths.contains_key(path), "{path} missing from openapi.json");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ingests_share_commits_and_all_land() {
    let api = Arc::new(api(ApiOptions::default()).await);
    api.post("/fn/register", ts_register("shop", shop_functions()))
        .await;
    let tasks: Vec<_> = (0..300)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                api.post(
                    "/e/k",
                    format!(r#"{{"name":"shop/cart","data":{{"i":{i}}}}}"#),
                )
                .await
            })
        })
        .collect();
    let mut ids = std::collections::HashSet::new();
    for task in tasks {
        let (status, body) = task.await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        ids.insert(body["ids"][0].as_str().unwrap().to_owned());
    }
    assert_eq!(ids.len(), 300);
    assert_eq!(api.event_count().await, 300);
    for id in ids.iter().take(20) {
        assert_eq!(api.triggered(id).await, ["shop-wild"]);
    }
}

#[tokio::test]
async fn dev_info_lists_functions_in_dev_mode_only() {
    let api_dev = api(ApiOptions::default()).await;
    api_dev
        .post("/fn/register", ts_register("shop", shop_functions()))
        .await;
    let (status, info) = api_dev.get("/dev").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["mode"], "dev");
    assert!(
        info["functions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|f| f["id"].as_str().is_some_and(|id| id.starts_with("shop-"))),
        "{info}"
    );
    let api_start = api(ApiOptions {
        mode: Mode::Start,
        event_keys: vec!["ek".into()],
        signing_keys: vec![SigningKey::new(KEY).unwrap()],
        ..ApiOptions::default()
    })
    .await;
    let (status, _) = api_start.get("/dev").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

/// A rerun is planned as its trigger plans a run: it gets the function's cancel
/// watches, so the cancel event that stopped the original stops the rerun too.
#[tokio::test]
async fn reruns_watch_for_their_cancel_events() {
    let api = api(ApiOptions::default()).await;
    api.post("/fn/register", ts_register("shop", shop_functions()))
        .await;
    let status_of = |run: String| {
        let api = &api;
        async move { api.get(&format!("/v1/runs/{run}")).await.1["status"].clone() }
    };
    let subscribe = r#"{"name":"shop/subscribe","data":{"user":"u1"}}"#;
    let unsubscribe = r#"{"name":"shop/unsubscribe","data":{"user":"u1"}}"#;
    assert_eq!(api.post("/e/k", subscribe).await.0, StatusCode::OK);
    let (_, runs) = api.get("/v1/runs?function=shop-cancellable").await;
    let first = runs["items"][0]["id"].as_str().unwrap().to_owned();
    assert_eq!(api.post("/e/k", unsubscribe).await.0, StatusCode::OK);
    assert_eq!(status_of(first.clone()).await, json!("cancelled"));

    let (status, reply) = api.post(&format!("/v1/runs/{first}/rerun"), "").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let again = reply["id"].as_str().unwrap().to_owned();
    assert_eq!(status_of(again.clone()).await, json!("queued"));
    // Another user's unsubscribe does not match the watch's expression.
    let other = r#"{"name":"shop/unsubscribe","data":{"user":"u2"}}"#;
    assert_eq!(api.post("/e/k", other).await.0, StatusCode::OK);
    assert_eq!(status_of(again.clone()).await, json!("queued"));
    assert_eq!(api.post("/e/k", unsubscribe).await.0, StatusCode::OK);
    assert_eq!(status_of(again).await, json!("cancelled"));
}

#[tokio::test]
async fn runs_are_searched_and_acted_on_by_filter() {
    let api = api(ApiOptions::default()).await;
    api.post("/fn/register", ts_register("shop", shop_functions()))
        .await;
    for total in [1, 2, 3] {
        let (status, _) = api
            .post(
                "/e/k",
                format!(r#"{{"name":"shop/order","data":{{"total":{total}}}}}"#),
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (_, other) = api.post("/e/k", r#"{"name":"other/thing"}"#).await;
    let other_id = other["ids"][0].as_str().unwrap().to_owned();

    // `q` searches event names and ids.
    let (_, found) = api.get("/v1/runs?q=shop/ord").await;
    assert_eq!(
        found["items"].as_array().unwrap().len(),
        6,
        "all + wild × 3"
    );
    let (_, found) = api.get(&format!("/v1/runs?q={other_id}")).await;
    assert_eq!(found["items"].as_array().unwrap().len(), 1);

    // Cancel everything matching a filter, and only that.
    let (status, reply) = api.post("/v1/runs/cancel?function=shop-all", "").await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(
        (reply["matched"].clone(), reply["cancelled"].clone()),
        (json!(3), json!(3))
    );
    let (_, left) = api.get("/v1/runs?status=queued").await;
    assert_eq!(
        left["items"].as_array().unwrap().len(),
        4,
        "wild × 3 + other"
    );

    // Rerun everything matching: new runs of the same events.
    let (status, reply) = api
        .post("/v1/runs/rerun?function=shop-all&status=cancelled", "")
        .await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["rerun"], json!(3));
    let (_, all_runs) = api.get("/v1/runs?function=shop-all").await;
    let items = all_runs["items"].as_array().unwrap();
    assert_eq!(items.len(), 6);
    assert_eq!(
        items.iter().filter(|r| r["rerun_of"].is_string()).count(),
        3
    );
    let (status, reply) = api.post("/v1/runs/cancel?status=bogus", "").await;
    assert_error(status, &reply, 400, "invalid_query");
}
