//! End-to-end: the real `sluice` binary driving the official, unmodified SDKs
//! (npm `inngest` 4.x and 3.x, PyPI `inngest` 0.5.x) through the test apps in
//! tests/sdk. One server and one app per test; every scenario runs concurrently
//! against them, then the re-sync scenario restarts the app without a function.
//!
//! Needs `scripts/sdk-deps` (npm and pip packages); the Postgres tests need
//! `SLUICE_TEST_DATABASE_URL` (`source scripts/postgres.sh start`).

mod support;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use serde_json::{Value, json};
use support::api::{self, Api};
use support::app::{App, Program, Sdk, Target};
use support::sluice::{Backend, Keys, Sluice};
use support::{Report, Scenario, run_all};

#[tokio::test]
async fn ts_v4_on_sqlite() {
    suite(Sdk::TsV4, Backend::Sqlite, &[]).await;
}

/// TS v4 on its classic path (one step per call): the server sends no `ctx.fn_id`.
#[tokio::test]
async fn ts_v4_without_checkpointing_on_sqlite() {
    suite(
        Sdk::TsV4,
        Backend::Sqlite,
        &[("SLUICE_CHECKPOINTING", "false")],
    )
    .await;
}

#[tokio::test]
async fn ts_v3_on_sqlite() {
    suite(Sdk::TsV3, Backend::Sqlite, &[]).await;
}

#[tokio::test]
async fn python_on_sqlite() {
    suite(Sdk::Python, Backend::Sqlite, &[]).await;
}

#[tokio::test]
async fn ts_v4_on_postgres_signed() {
    suite(Sdk::TsV4, Backend::Postgres, &[]).await;
}

#[tokio::test]
async fn ts_v3_on_postgres_signed() {
    suite(Sdk::TsV3, Backend::Postgres, &[]).await;
}

#[tokio::test]
async fn python_on_postgres_signed() {
    suite(Sdk::Python, Backend::Postgres, &[]).await;
}

async fn suite(sdk: Sdk, backend: Backend, env: &[(&str, &str)]) {
    let title = format!("{} on {backend:?} {env:?}", sdk.name());
    let dir = tempfile::tempdir().expect("a temp dir");
    let Some(sluice) = Sluice::start_on(
        backend,
        sdk.name().replace('-', "_").as_str(),
        dir.path(),
        env,
    )
    .await
    else {
        return;
    };
    let target = Target {
        base: sluice.base.clone(),
        keys: sluice.keys.clone(),
    };
    let mut app = App::start(sdk.name(), Program::TestApp(sdk), &target, dir.path(), None)
        .await
        .expect("the SDK app starts");
    let api = Api::new(
        &sluice.base,
        sluice.keys.as_ref().map(|k| k.signing.clone()),
    );

    let mut report = Report::new(&title);
    let started = Instant::now();
    let synced = sync_and_map(&app, &api, sdk).await;
    let sync_result = synced
        .as_ref()
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{e:#}"));
    report.record("sync", sync_result, started.elapsed());
    let Ok(fns) = synced else {
        report.finish();
        return;
    };
    let c = Ctx {
        sdk,
        app: &app,
        api: &api,
        fns,
    };

    let mut scenarios: Vec<(&'static str, Scenario<'_>)> = vec![
        ("fan-out", Box::pin(fan_out(&c))),
        ("expression filter", Box::pin(expression_filter(&c))),
        ("wildcard trigger", Box::pin(wildcard(&c))),
        ("duplicate event id", Box::pin(duplicate_event_id(&c))),
        ("future ts", Box::pin(future_ts(&c))),
        ("step chain + memo", Box::pin(chain(&c))),
        ("loop, repeated ids", Box::pin(loop_steps(&c))),
        ("parallel steps", Box::pin(parallel(&c))),
        ("sleep + sleepUntil", Box::pin(sleep(&c))),
        ("waitForEvent matched", Box::pin(wait_matched(&c))),
        ("waitForEvent timeout", Box::pin(wait_timeout(&c))),
        ("invoke", Box::pin(invoke(&c))),
        ("sendEvent fan-out", Box::pin(send_event(&c))),
        ("retry then succeed", Box::pin(flaky(&c))),
        ("NonRetriableError", Box::pin(non_retriable(&c))),
        ("RetryAfterError", Box::pin(retry_after(&c))),
        ("retries exhausted", Box::pin(on_failure(&c))),
        ("cancelOn event", Box::pin(cancel_on_event(&c))),
        ("cancel by API", Box::pin(cancel_by_api(&c))),
        ("rerun", Box::pin(rerun(&c))),
        ("hideable visible", Box::pin(hideable_visible(&c))),
        ("REST filters, OpenAPI", Box::pin(rest_filters(&c))),
    ];
    if let Some(keys) = &target.keys {
        scenarios.push((
            "wrong keys refused",
            Box::pin(wrong_keys(sdk, &target.base, keys, dir.path())),
        ));
    }
    report.add(run_all(Duration::from_secs(90), scenarios).await);

    // Last, as it restarts the app: re-sync without `hideable`.
    let started = Instant::now();
    let resynced = resync_without_hideable(&mut app, &api, sdk).await;
    report.record("re-sync drops fn", resynced, started.elapsed());
    report.finish();
}

/// Every test function id (without the app prefix) the apps serve.
const FUNCTIONS: &[&str] = &[
    "fanout-a",
    "fanout-b",
    "filtered",
    "shop-any",
    "echo",
    "hideable",
    "chain",
    "loop",
    "parallel",
    "sleeper",
    "waiter",
    "child",
    "invoker",
    "sender",
    "sent-item",
    "flaky",
    "non-retriable",
    "retry-after",
    "always-fails",
    "always-fails-failure",
    "cancellable",
    "slow",
];

/// Syncs the app and checks every function is registered; slug → function id.
async fn sync_and_map(app: &App, api: &Api, sdk: Sdk) -> anyhow::Result<HashMap<String, String>> {
    app.sync().await?;
    let listed = api.functions().await?;
    let fns: HashMap<String, String> = listed
        .iter()
        .filter_map(|f| {
            Some((
                f["slug"].as_str()?.to_string(),
                f["id"].as_str()?.to_string(),
            ))
        })
        .collect();
    let missing: Vec<String> = FUNCTIONS
        .iter()
        .map(|f| format!("{}-{f}", sdk.app_id()))
        .filter(|slug| !fns.contains_key(slug))
        .collect();
    ensure!(
        missing.is_empty(),
        "after sync, GET /v1/functions lacks {missing:?}; it lists {}",
        Value::Array(listed)
    );
    Ok(fns)
}

/// What every scenario shares.
struct Ctx<'a> {
    sdk: Sdk,
    app: &'a App,
    api: &'a Api,
    /// slug → function id.
    fns: HashMap<String, String>,
}

impl Ctx<'_> {
    fn slug(&self, f: &str) -> String {
        format!("{}-{f}", self.sdk.app_id())
    }

    fn fn_id(&self, f: &str) -> anyhow::Result<&str> {
        self.fns
            .get(&self.slug(f))
            .map(String::as_str)
            .with_context(|| format!("function {} is not registered", self.slug(f)))
    }

    /// The function (id without the app prefix) a run belongs to.
    fn fn_of(&self, run: &Value) -> String {
        let id = run["function_id"].as_str().unwrap_or_default();
        let prefix = format!("{}-", self.sdk.app_id());
        self.fns
            .iter()
            .find(|(_, v)| v.as_str() == id)
            .map(|(slug, _)| slug.strip_prefix(&prefix).unwrap_or(slug).to_string())
            .unwrap_or_else(|| format!("unknown function {id}"))
    }

    /// Sends one event through the SDK; its id.
    async fn send(&self, event: Value) -> anyhow::Result<String> {
        let ids = self.app.send(json!([event])).await?;
        ensure!(ids.len() == 1, "send of one event answered ids {ids:?}");
        Ok(ids[0].clone())
    }

    /// Waits for the runs of `event_id` to be exactly one per function in `fns` and
    /// for each to end; function → ended run.
    async fn runs(&self, event_id: &str, fns: &[&str]) -> anyhow::Result<BTreeMap<String, Value>> {
        let runs = self.api.wait_event_runs(event_id, fns.len()).await?;
        let mut out = BTreeMap::new();
        for run in &runs {
            let ended = self.api.wait_run_end(&api::id(run)).await?;
            out.insert(self.fn_of(&ended), ended);
        }
        let again = self.api.event_runs(event_id).await?;
        let mut got: Vec<String> = again.iter().map(|r| self.fn_of(r)).collect();
        got.sort();
        let mut want: Vec<String> = fns.iter().map(|s| s.to_string()).collect();
        want.sort();
        ensure!(
            got == want,
            "event {event_id} triggered {got:?}, expected {want:?}"
        );
        Ok(out)
    }

    /// The one run of `event_id`, ended and completed; its output.
    async fn output(&self, event_id: &str, f: &str) -> anyhow::Result<(Value, Value)> {
        let runs = self.runs(event_id, &[f]).await?;
        let run = runs.into_values().next().unwrap_or_default();
        ensure!(
            api::status(&run) == "completed",
            "{f} run ended {}: {run}",
            api::status(&run)
        );
        Ok((run["output"].clone(), run))
    }

    /// The one run of `event_id`, not waiting for it to end.
    async fn only_run(&self, event_id: &str) -> anyhow::Result<Value> {
        let runs = self.api.wait_event_runs(event_id, 1).await?;
        ensure!(
            runs.len() == 1,
            "expected one run, got {}",
            Value::Array(runs)
        );
        Ok(runs[0].clone())
    }

    /// Runs of a function, waiting until there are `n`, each ended.
    async fn fn_runs(&self, f: &str, n: usize) -> anyhow::Result<Vec<Value>> {
        let id = self.fn_id(f)?.to_string();
        let deadline = Instant::now() + api::WAIT;
        loop {
            let runs = self.api.runs_of(&id).await?;
            if runs.len() >= n && runs.iter().all(api::is_terminal) {
                return Ok(runs);
            }
            if Instant::now() > deadline {
                bail!(
                    "{f}: expected {n} ended runs; GET /v1/runs?function_id= lists {}",
                    Value::Array(runs)
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }
}

fn nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_string()
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or_default()
}

/// A step's memoized value: `result.data` when wrapped, else `result`.
fn step_data(step: &Value) -> Value {
    match step.get("result") {
        Some(Value::Object(o)) if o.contains_key("data") => o["data"].clone(),
        Some(v) => v.clone(),
        None => Value::Null,
    }
}

/// The steps named `name`, in stored order.
fn named<'a>(steps: &'a [Value], name: &str) -> Vec<&'a Value> {
    steps.iter().filter(|s| s["name"] == name).collect()
}

/// The one step named `name`.
fn single<'a>(steps: &'a [Value], name: &str) -> anyhow::Result<&'a Value> {
    let found = named(steps, name);
    ensure!(
        found.len() == 1,
        "expected one step named {name}; the run's steps: {}",
        Value::Array(steps.to_vec())
    );
    Ok(found[0])
}

fn ms(run: &Value, field: &str) -> Option<i64> {
    run[field].as_i64()
}

// ---------------------------------------------------------------- scenarios

async fn fan_out(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c
        .send(json!({"name": "e2e/fanout", "data": {"n": 7}}))
        .await?;
    let runs = c.runs(&id, &["fanout-a", "fanout-b"]).await?;
    for (f, letter) in [("fanout-a", "a"), ("fanout-b", "b")] {
        let run = &runs[f];
        ensure!(
            api::status(run) == "completed" && run["output"] == json!({"fn": letter, "n": 7}),
            "{f}: {run}"
        );
    }
    Ok(())
}

async fn expression_filter(c: &Ctx<'_>) -> anyhow::Result<()> {
    let ids = c
        .app
        .send(json!([
            {"name": "e2e/filter", "data": {"ok": true, "tag": "yes"}},
            {"name": "e2e/filter", "data": {"ok": false, "tag": "no"}},
            {"name": "e2e/filter", "data": {"tag": "missing"}},
        ]))
        .await?;
    ensure!(ids.len() == 3, "send answered {ids:?}");
    let (out, _) = c.output(&ids[0], "filtered").await?;
    ensure!(out == json!({"tag": "yes"}), "filtered output {out}");
    for id in &ids[1..] {
        let runs = c.api.event_runs(id).await?;
        ensure!(
            runs.is_empty(),
            "a non-matching event triggered {}",
            Value::Array(runs)
        );
    }
    Ok(())
}

async fn wildcard(c: &Ctx<'_>) -> anyhow::Result<()> {
    let ids = c
        .app
        .send(json!([
            {"name": "shop/order.created", "data": {}},
            {"name": "shop/refund.issued", "data": {}},
            {"name": "shopping/cart", "data": {}},
        ]))
        .await?;
    ensure!(ids.len() == 3, "send answered {ids:?}");
    for (id, name) in ids.iter().zip(["shop/order.created", "shop/refund.issued"]) {
        let (out, _) = c.output(id, "shop-any").await?;
        ensure!(out == json!({"name": name}), "shop-any output {out}");
    }
    let runs = c.api.event_runs(&ids[2]).await?;
    ensure!(
        runs.is_empty(),
        "shopping/cart triggered {}",
        Value::Array(runs)
    );
    Ok(())
}

async fn duplicate_event_id(c: &Ctx<'_>) -> anyhow::Result<()> {
    let event =
        json!({"name": "e2e/echo", "id": format!("dup-{}", nonce()), "data": {"case": "dup"}});
    let first = c.send(event.clone()).await?;
    let second = c.send(event).await?;
    let (out, _) = c.output(&first, "echo").await?;
    ensure!(out == json!({"case": "dup"}), "echo output {out}");
    if second != first {
        // A deduped event need not be stored; if it is, it must have no runs.
        if let Ok(runs) = c.api.event_runs(&second).await {
            ensure!(
                runs.is_empty(),
                "the duplicate (id {second}) triggered {}",
                Value::Array(runs)
            );
        }
    }
    Ok(())
}

async fn future_ts(c: &Ctx<'_>) -> anyhow::Result<()> {
    let ts = now_ms() + 4_000;
    let id = c
        .send(json!({"name": "e2e/echo", "ts": ts, "data": {"case": "future"}}))
        .await?;
    let run = c.only_run(&id).await?;
    ensure!(
        !api::is_terminal(&run) && api::status(&run) != "running",
        "a run for an event dated 4 s ahead already started: {run}"
    );
    let (out, run) = c.output(&id, "echo").await?;
    ensure!(out == json!({"case": "future"}), "echo output {out}");
    if let Some(started) = ms(&run, "started_at") {
        ensure!(
            started >= ts,
            "the run started at {started}, before the event's ts {ts}"
        );
    }
    Ok(())
}

async fn chain(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c
        .send(json!({"name": "e2e/chain", "data": {"n": 4}}))
        .await?;
    let (out, run) = c.output(&id, "chain").await?;
    ensure!(
        out == json!({"a": {"v": 5}, "b": 10, "runsOfA": 1, "runsOfB": 1}),
        "chain output {out} (runsOf* > 1 means a memoized step ran again)"
    );
    let steps = c.api.steps(&api::id(&run)).await?;
    for (name, want) in [("a", json!({"v": 5})), ("b", json!(10))] {
        let found = named(&steps, name);
        ensure!(
            found.len() == 1,
            "steps named {name}: {}",
            Value::Array(steps.clone())
        );
        ensure!(
            found[0]["status"] == "completed" && step_data(found[0]) == want,
            "step {name}: {}",
            found[0]
        );
    }
    Ok(())
}

async fn loop_steps(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c.send(json!({"name": "e2e/loop", "data": {}})).await?;
    let (out, run) = c.output(&id, "loop").await?;
    ensure!(out == json!([0, 10, 20]), "loop output {out}");
    let steps = c.api.steps(&api::id(&run)).await?;
    let items = named(&steps, "item");
    let mut ids: Vec<&str> = items.iter().filter_map(|s| s["step_id"].as_str()).collect();
    ids.sort();
    ids.dedup();
    let mut values: Vec<Value> = items.iter().map(|s| step_data(s)).collect();
    values.sort_by_key(|v| v.as_i64());
    ensure!(
        items.len() == 3 && ids.len() == 3 && values == vec![json!(0), json!(10), json!(20)],
        "steps named item: {}",
        Value::Array(steps.clone())
    );
    Ok(())
}

async fn parallel(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c.send(json!({"name": "e2e/parallel", "data": {}})).await?;
    let (out, run) = c.output(&id, "parallel").await?;
    ensure!(
        out == json!({"x": "one", "y": "two", "z": "one+two"}),
        "parallel output {out}"
    );
    let steps = c.api.steps(&api::id(&run)).await?;
    for (name, want) in [("p1", "one"), ("p2", "two"), ("after", "one+two")] {
        let found = named(&steps, name);
        ensure!(
            found.len() == 1 && step_data(found[0]) == want,
            "step {name}: {}",
            Value::Array(steps.clone())
        );
    }
    Ok(())
}

async fn sleep(c: &Ctx<'_>) -> anyhow::Result<()> {
    let until_ms = now_ms() + 4_000;
    let until =
        humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(until_ms as u64));
    let id = c
        .send(json!({"name": "e2e/sleep", "data": {"until": until.to_string()}}))
        .await?;
    let (out, run) = c.output(&id, "sleeper").await?;
    ensure!(out == json!("awake"), "sleeper output {out}");
    if let Some(ended) = ms(&run, "ended_at") {
        ensure!(
            ended >= until_ms,
            "the run ended at {ended}, before sleepUntil {until_ms}"
        );
    }
    let steps = c.api.steps(&api::id(&run)).await?;
    for name in ["nap", "until"] {
        ensure!(
            named(&steps, name).len() == 1,
            "no single step {name}: {}",
            Value::Array(steps.clone())
        );
    }
    Ok(())
}

fn is_waiting(steps: &[Value]) -> bool {
    steps.iter().any(|s| {
        s["status"] == "waiting"
            || s["op"]
                .as_str()
                .is_some_and(|op| op.contains("WaitForEvent"))
    })
}

async fn wait_matched(c: &Ctx<'_>) -> anyhow::Result<()> {
    let key = nonce();
    let id = c
        .send(json!({"name": "e2e/wait.start", "data": {"id": key, "timeout": "60s"}}))
        .await?;
    let run = c.only_run(&id).await?;
    c.api
        .wait_steps(&api::id(&run), "a waitForEvent", is_waiting)
        .await?;
    c.app
        .send(json!([
            {"name": "e2e/wait.reply", "data": {"id": "someone-else", "v": "wrong"}},
            {"name": "e2e/wait.reply", "data": {"id": key, "v": "right"}},
        ]))
        .await?;
    let (out, run) = c.output(&id, "waiter").await?;
    ensure!(out == json!({"got": "right"}), "waiter output {out}");
    // The matched event is stored as the step's result.
    let steps = c.api.steps(&api::id(&run)).await?;
    let reply = single(&steps, "reply")?;
    ensure!(
        reply["status"] == "completed" && step_data(reply)["v"] == "right",
        "step reply: {reply}"
    );
    Ok(())
}

async fn wait_timeout(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c
        .send(json!({"name": "e2e/wait.start", "data": {"id": nonce(), "timeout": "2s"}}))
        .await?;
    let (out, run) = c.output(&id, "waiter").await?;
    ensure!(out == json!({"got": null}), "waiter output {out}");
    let steps = c.api.steps(&api::id(&run)).await?;
    let reply = single(&steps, "reply")?;
    ensure!(
        reply["status"] == "completed" && reply["result"].is_null(),
        "step reply after a timeout: {reply}"
    );
    Ok(())
}

async fn invoke(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c
        .send(json!({"name": "e2e/invoke", "data": {"x": 21}}))
        .await?;
    let (out, run) = c.output(&id, "invoker").await?;
    let steps = c.api.steps(&api::id(&run)).await?;
    let call = single(&steps, "call-child")?;
    ensure!(
        call["status"] == "completed" && step_data(call) == json!({"doubled": 42}),
        "step call-child: {call}"
    );
    ensure!(
        out == json!({"child": {"doubled": 42}}),
        "invoker output {out}"
    );
    let child = c.fn_runs("child", 1).await?;
    ensure!(
        child.len() == 1 && api::status(&child[0]) == "completed",
        "child runs: {}",
        Value::Array(child)
    );
    Ok(())
}

async fn send_event(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c
        .send(json!({"name": "e2e/send", "data": {"batch": nonce()}}))
        .await?;
    let (out, _) = c.output(&id, "sender").await?;
    ensure!(out == json!("sent"), "sender output {out}");
    let runs = c.fn_runs("sent-item", 2).await?;
    let mut outs: Vec<Value> = runs.iter().map(|r| r["output"].clone()).collect();
    outs.sort_by_key(|v| v.as_i64());
    ensure!(
        runs.len() == 2 && outs == vec![json!(1), json!(2)],
        "sent-item runs: {}",
        Value::Array(runs)
    );
    Ok(())
}

async fn flaky(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c.send(json!({"name": "e2e/flaky", "data": {}})).await?;
    let (out, run) = c.output(&id, "flaky").await?;
    ensure!(
        out == json!({"result": "ok on attempt 1"}),
        "flaky output {out}"
    );
    let steps = c.api.steps(&api::id(&run)).await?;
    let step = named(&steps, "flaky");
    ensure!(step.len() == 1, "steps: {}", Value::Array(steps.clone()));
    if let Some(attempts) = step[0]["attempts"].as_i64() {
        ensure!(
            attempts >= 2,
            "step flaky records {attempts} attempts: {}",
            step[0]
        );
    }
    Ok(())
}

async fn non_retriable(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c
        .send(json!({"name": "e2e/nonretriable", "data": {}}))
        .await?;
    let runs = c.runs(&id, &["non-retriable"]).await?;
    let run = &runs["non-retriable"];
    ensure!(api::status(run) == "failed", "non-retriable ended {run}");
    ensure!(
        run["error"].to_string().contains("not retrying this"),
        "the run's error lacks the message: {run}"
    );
    Ok(())
}

async fn retry_after(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c
        .send(json!({"name": "e2e/retryafter", "data": {}}))
        .await?;
    let (out, run) = c.output(&id, "retry-after").await?;
    ensure!(
        out == json!("done on attempt 1"),
        "retry-after output {out}"
    );
    if let (Some(started), Some(ended)) = (ms(&run, "started_at"), ms(&run, "ended_at")) {
        ensure!(
            ended - started >= 1_000,
            "the retry came {} ms after the first attempt; the SDK asked for 1 s",
            ended - started
        );
    }
    Ok(())
}

async fn on_failure(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c
        .send(json!({"name": "e2e/always-fails", "data": {}}))
        .await?;
    let runs = c.runs(&id, &["always-fails"]).await?;
    let run = &runs["always-fails"];
    ensure!(api::status(run) == "failed", "always-fails ended {run}");
    ensure!(
        run["error"].to_string().contains("always fails"),
        "the run's error lacks the message: {run}"
    );
    // Two attempts (retries: 1), then the step's error is stored.
    let steps = c.api.steps(&api::id(run)).await?;
    let boom = single(&steps, "boom")?;
    ensure!(
        boom["status"] == "failed" && boom.to_string().contains("always fails"),
        "step boom: {boom}"
    );
    if let Some(attempts) = boom["attempts"].as_i64() {
        ensure!(
            attempts == 2,
            "step boom records {attempts} attempts, expected 2: {boom}"
        );
    }
    let handlers = c.fn_runs("always-fails-failure", 1).await?;
    ensure!(
        handlers.len() == 1,
        "onFailure runs: {}",
        Value::Array(handlers)
    );
    let h = &handlers[0];
    ensure!(
        api::status(h) == "completed"
            && h["output"]["failedFn"] == c.slug("always-fails")
            && h["output"]["message"].to_string().contains("always fails"),
        "onFailure run: {h}"
    );
    Ok(())
}

fn is_sleeping(steps: &[Value]) -> bool {
    steps.iter().any(|s| {
        s["status"] == "sleeping" || s["op"].as_str().is_some_and(|op| op.contains("Sleep"))
    })
}

async fn cancel_on_event(c: &Ctx<'_>) -> anyhow::Result<()> {
    let (k1, k2) = (nonce(), nonce());
    let ids = c
        .app
        .send(json!([
            {"name": "e2e/cancellable", "data": {"id": k1}},
            {"name": "e2e/cancellable", "data": {"id": k2}},
        ]))
        .await?;
    ensure!(ids.len() == 2, "send answered {ids:?}");
    let r1 = api::id(&c.only_run(&ids[0]).await?);
    let r2 = api::id(&c.only_run(&ids[1]).await?);
    c.api.wait_steps(&r1, "a sleep", is_sleeping).await?;
    c.send(json!({"name": "e2e/cancel", "data": {"id": k1}}))
        .await?;
    let run = c.api.wait_run_end(&r1).await?;
    ensure!(api::status(&run) == "cancelled", "cancelOn run ended {run}");
    let other = c.api.run(&r2).await?;
    let untouched = !api::is_terminal(&other);
    let _ = c.api.cancel(&r2).await;
    ensure!(
        untouched,
        "a cancel event for another id ended this run too: {other}"
    );
    Ok(())
}

async fn cancel_by_api(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c
        .send(json!({"name": "e2e/cancellable", "data": {"id": nonce()}}))
        .await?;
    let run_id = api::id(&c.only_run(&id).await?);
    c.api.wait_steps(&run_id, "a sleep", is_sleeping).await?;
    c.api.cancel(&run_id).await?;
    let run = c.api.wait_run_end(&run_id).await?;
    ensure!(
        api::status(&run) == "cancelled",
        "cancelled run ended {run}"
    );
    Ok(())
}

async fn rerun(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c
        .send(json!({"name": "e2e/chain", "data": {"n": 10}}))
        .await?;
    let (out, run) = c.output(&id, "chain").await?;
    let old = api::id(&run);
    let new = c.api.rerun(&old).await?;
    ensure!(new != old, "rerun answered the same run id");
    let again = c.api.wait_run_end(&new).await?;
    ensure!(
        api::status(&again) == "completed" && again["output"] == out,
        "the rerun ended {again}, the original output was {out}"
    );
    if let Some(of) = again.get("rerun_of").filter(|v| !v.is_null()) {
        ensure!(of == &json!(old), "rerun_of is {of}, expected {old}");
    }
    Ok(())
}

/// `GET /v1/runs` filtered by function and status; the OpenAPI document lists it.
async fn rest_filters(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c
        .send(json!({"name": "e2e/nonretriable", "data": {}}))
        .await?;
    let runs = c.runs(&id, &["non-retriable"]).await?;
    let run_id = api::id(&runs["non-retriable"]);
    let f = c.fn_id("non-retriable")?;
    let failed = api::items(
        c.api
            .get(&format!("/v1/runs?function={f}&status=failed&limit=200"))
            .await?,
    );
    ensure!(
        failed.iter().any(|r| api::id(r) == run_id)
            && failed
                .iter()
                .all(|r| api::status(r) == "failed" && r["function_id"] == f),
        "?function=&status=failed answered {}",
        Value::Array(failed)
    );
    let completed = api::items(
        c.api
            .get(&format!("/v1/runs?function={f}&status=completed"))
            .await?,
    );
    ensure!(
        completed.is_empty(),
        "?status=completed lists runs of a function that always fails: {}",
        Value::Array(completed)
    );
    let openapi = c.api.get("/v1/openapi.json").await?;
    ensure!(
        openapi["paths"].get("/v1/runs").is_some(),
        "/v1/openapi.json does not describe /v1/runs"
    );
    Ok(())
}

async fn hideable_visible(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c.send(json!({"name": "e2e/hideable", "data": {}})).await?;
    let (out, _) = c.output(&id, "hideable").await?;
    ensure!(out == json!("visible"), "hideable output {out}");
    Ok(())
}

/// An app holding other keys than the server's: its sync and its events are refused.
async fn wrong_keys(
    sdk: Sdk,
    base: &str,
    keys: &Keys,
    dir: &std::path::Path,
) -> anyhow::Result<()> {
    let wrong = Keys {
        signing: format!("signkey-test-{}", "0bad".repeat(16)),
        event: "not-the-event-key".into(),
    };
    ensure!(wrong.signing != keys.signing && wrong.event != keys.event);
    let target = Target {
        base: base.to_string(),
        keys: Some(wrong),
    };
    let app = App::start("wrong-keys", Program::TestApp(sdk), &target, dir, None).await?;
    ensure!(
        app.sync().await.is_err(),
        "a sync signed with another signing key was accepted"
    );
    let sent = app
        .send(json!([{"name": "e2e/echo", "data": {"case": "wrong-key"}}]))
        .await;
    ensure!(
        sent.is_err(),
        "an event sent with an unknown event key was accepted: {sent:?}"
    );
    Ok(())
}

/// Restarts the app without `hideable`, re-syncs, and checks the function is gone:
/// not listed, and its event triggers nothing.
async fn resync_without_hideable(app: &mut App, api: &Api, sdk: Sdk) -> anyhow::Result<()> {
    app.restart(&["hideable"]).await?;
    app.sync().await?;
    let slugs: Vec<String> = api
        .functions()
        .await?
        .iter()
        .filter_map(|f| f["slug"].as_str().map(String::from))
        .collect();
    let app_id = sdk.app_id();
    ensure!(
        !slugs.contains(&format!("{app_id}-hideable")),
        "after a re-sync without it, hideable is still listed: {slugs:?}"
    );
    ensure!(
        slugs.contains(&format!("{app_id}-echo")),
        "after the re-sync, echo is gone: {slugs:?}"
    );
    let ids = app
        .send(json!([{"name": "e2e/hideable", "data": {}}]))
        .await?;
    let runs = api.event_runs(&ids[0]).await?;
    ensure!(
        runs.is_empty(),
        "a removed function still ran: {}",
        Value::Array(runs)
    );
    Ok(())
}
