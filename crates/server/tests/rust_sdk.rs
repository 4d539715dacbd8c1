//! End-to-end: the Rust SDK (`sluice_sdk`) against the real `sluice` binary. The test
//! app (`rust_app`) is served in-process by axum; the official TS SDK's test app
//! (tests/sdk/ts on npm `inngest` 4.x) runs beside it in the same Sluice, so a Rust
//! function can invoke a TS one, and `rust_app/ts_caller.js` (same SDK) invokes a
//! Rust one. One server per backend; every scenario runs
//! concurrently against it and checks outputs and the stored step history through the
//! REST API.
//!
//! Needs `scripts/sdk-deps` (the TS app's npm packages); the Postgres test needs
//! `SLUICE_TEST_DATABASE_URL` (`source scripts/postgres.sh start`).

mod rust_app;
mod support;

use std::collections::HashMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use rust_app::{APP_ID, FUNCTIONS, RustApp, TS_CALLER_APP_ID, TsCaller};
use serde_json::{Value, json};
use support::api::{self, Api};
use support::app::{App, Program, Sdk, Target};
use support::sluice::{Backend, Sluice};
use support::{Report, Scenario, run_all};

/// The TS app the Rust invoker calls.
const TS: Sdk = Sdk::TsV4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_on_sqlite() {
    suite(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rust_sdk_on_postgres_signed() {
    suite(Backend::Postgres).await;
}

async fn suite(backend: Backend) {
    let title = format!("rust sdk on {backend:?}");
    let dir = tempfile::tempdir().expect("a temp dir");
    let Some(sluice) = Sluice::start_on(backend, "rust_sdk", dir.path(), &[]).await else {
        return;
    };
    let target = Target {
        base: sluice.base.clone(),
        keys: sluice.keys.clone(),
    };
    let api = Api::new(
        &sluice.base,
        sluice.keys.as_ref().map(|k| k.signing.clone()),
    );
    let app = RustApp::start(&target, &TS.app_id())
        .await
        .expect("the Rust app starts");
    let ts = App::start(TS.name(), Program::TestApp(TS), &target, dir.path(), None)
        .await
        .expect("the TS app starts");
    let caller = TsCaller::start(&target, dir.path())
        .await
        .expect("ts_caller.js starts");

    let mut report = Report::new(&title);
    let started = Instant::now();
    let synced = sync_and_map(&app, &ts, &caller, &api).await;
    let sync_result = synced
        .as_ref()
        .map(|_| ())
        .map_err(|e| anyhow::anyhow!("{e:#}"));
    report.record("sync (Rust + 2 TS)", sync_result, started.elapsed());
    let Ok(fns) = synced else {
        report.finish();
        return;
    };
    let c = Ctx {
        app: &app,
        api: &api,
        fns,
    };
    let scenarios: Vec<(&'static str, Scenario<'_>)> = vec![
        ("step.run chain + memo", Box::pin(chain(&c))),
        ("parallel steps", Box::pin(parallel(&c))),
        ("sleep + sleep_until", Box::pin(sleep(&c))),
        ("wait_for_event matched", Box::pin(wait_matched(&c))),
        ("wait_for_event timeout", Box::pin(wait_timeout(&c))),
        ("invoke rust->rust, ->ts", Box::pin(invoke(&c))),
        ("invoke ts->rust", Box::pin(invoke_from_ts(&c))),
        ("send_event fan-out", Box::pin(send_event(&c))),
        ("retry then succeed", Box::pin(flaky(&c))),
        ("NonRetriable", Box::pin(non_retriable(&c))),
        ("StepFailed recovered", Box::pin(recovers(&c))),
        ("on_failure", Box::pin(on_failure(&c))),
        ("cancel_on", Box::pin(cancel_on(&c))),
    ];
    report.add(run_all(Duration::from_secs(60), scenarios).await);
    report.finish();
}

/// Syncs the three apps and checks every function is registered; slug → function id.
async fn sync_and_map(
    app: &RustApp,
    ts: &App,
    caller: &TsCaller,
    api: &Api,
) -> anyhow::Result<HashMap<String, String>> {
    app.sync().await?;
    ts.sync().await?;
    caller.sync().await?;
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
        .map(|f| slug(f))
        .chain([
            format!("{}-child", TS.app_id()),
            format!("{TS_CALLER_APP_ID}-call-rust"),
        ])
        .filter(|slug| !fns.contains_key(slug))
        .collect();
    ensure!(
        missing.is_empty(),
        "after sync, GET /v1/functions lacks {missing:?}; it lists {}",
        Value::Array(listed)
    );
    Ok(fns)
}

fn slug(f: &str) -> String {
    format!("{APP_ID}-{f}")
}

/// What every scenario shares.
struct Ctx<'a> {
    app: &'a RustApp,
    api: &'a Api,
    /// slug → function id.
    fns: HashMap<String, String>,
}

impl Ctx<'_> {
    fn fn_id(&self, slug: &str) -> anyhow::Result<&str> {
        self.fns
            .get(slug)
            .map(String::as_str)
            .with_context(|| format!("function {slug} is not registered"))
    }

    /// Sends one event through the SDK client; its id.
    async fn send(&self, name: &str, data: Value) -> anyhow::Result<String> {
        self.app.send(name, data).await
    }

    /// The one run of `event_id`, not waiting for it to end; its id.
    async fn only_run(&self, event_id: &str) -> anyhow::Result<String> {
        let runs = self.api.wait_event_runs(event_id, 1).await?;
        ensure!(
            runs.len() == 1,
            "expected one run, got {}",
            Value::Array(runs)
        );
        Ok(api::id(&runs[0]))
    }

    /// The one run of `event_id`, ended (checked to belong to `f`), and its steps.
    async fn ended(&self, event_id: &str, f: &str) -> anyhow::Result<(Value, Vec<Value>)> {
        let run_id = self.only_run(event_id).await?;
        let run = self.api.wait_run_end(&run_id).await?;
        let want = self.fn_id(&slug(f))?;
        ensure!(
            run["function_id"] == want,
            "event {event_id} ran function {}, expected {f}",
            run["function_id"]
        );
        let steps = self.api.steps(&run_id).await?;
        Ok((run, steps))
    }

    /// Like [`Ctx::ended`], and the run completed; its output too.
    async fn completed(
        &self,
        event_id: &str,
        f: &str,
    ) -> anyhow::Result<(Value, Value, Vec<Value>)> {
        let (run, steps) = self.ended(event_id, f).await?;
        ensure!(
            api::status(&run) == "completed",
            "{f} run ended {}: {run}; steps: {}",
            api::status(&run),
            Value::Array(steps)
        );
        Ok((run["output"].clone(), run, steps))
    }

    /// Runs of a function (by slug), waiting until there are `n`, each ended.
    async fn fn_runs(&self, slug: &str, n: usize) -> anyhow::Result<Vec<Value>> {
        let id = self.fn_id(slug)?.to_string();
        let deadline = Instant::now() + api::WAIT;
        loop {
            let runs = self.api.runs_of(&id).await?;
            if runs.len() >= n && runs.iter().all(api::is_terminal) {
                return Ok(runs);
            }
            if Instant::now() > deadline {
                bail!(
                    "{slug}: expected {n} ended runs; GET /v1/runs?function= lists {}",
                    Value::Array(runs)
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// Polls the runs of a function (by slug) until one completed with `output`.
    async fn completed_run_with(&self, slug: &str, output: &Value) -> anyhow::Result<Value> {
        let id = self.fn_id(slug)?.to_string();
        let deadline = Instant::now() + api::WAIT;
        loop {
            let runs = self.api.runs_of(&id).await?;
            if let Some(run) = runs
                .iter()
                .find(|r| api::status(r) == "completed" && r["output"] == *output)
            {
                return Ok(run.clone());
            }
            if Instant::now() > deadline {
                bail!(
                    "{slug}: no run completed with {output}; GET /v1/runs?function= lists {}",
                    Value::Array(runs)
                );
            }
            tokio::time::sleep(Duration::from_millis(150)).await;
        }
    }

    /// How many times a step's closure ran in a run.
    fn calls(&self, run: &Value, step: &str) -> u32 {
        self.app.calls.get(&api::id(run), step)
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

/// The one step named `name`.
fn single<'a>(steps: &'a [Value], name: &str) -> anyhow::Result<&'a Value> {
    let found: Vec<&Value> = steps.iter().filter(|s| s["name"] == name).collect();
    ensure!(
        found.len() == 1,
        "expected one step named {name}; the run's steps: {}",
        Value::Array(steps.to_vec())
    );
    Ok(found[0])
}

/// The one step named `name`, completed with `want` as its value.
fn completed_step<'a>(steps: &'a [Value], name: &str, want: &Value) -> anyhow::Result<&'a Value> {
    let step = single(steps, name)?;
    ensure!(
        step["status"] == "completed" && step_data(step) == *want,
        "step {name}: expected completed with {want}, got {step}"
    );
    Ok(step)
}

fn attempts(step: &Value) -> Option<i64> {
    step["attempts"].as_i64()
}

fn is_waiting(steps: &[Value]) -> bool {
    steps.iter().any(|s| {
        s["status"] == "waiting"
            || s["op"]
                .as_str()
                .is_some_and(|op| op.contains("WaitForEvent"))
    })
}

fn is_sleeping(steps: &[Value]) -> bool {
    steps.iter().any(|s| {
        s["status"] == "sleeping" || s["op"].as_str().is_some_and(|op| op.contains("Sleep"))
    })
}

// ---------------------------------------------------------------- scenarios

async fn chain(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c.send("rs/chain", json!({"n": 4})).await?;
    let (out, run, steps) = c.completed(&id, "chain").await?;
    ensure!(out == json!({"a": {"v": 5}, "b": 10}), "chain output {out}");
    completed_step(&steps, "a", &json!({"v": 5}))?;
    completed_step(&steps, "b", &json!(10))?;
    for step in ["a", "b"] {
        let n = c.calls(&run, step);
        ensure!(
            n == 1,
            "step {step} ran {n} times (a memoized step ran again)"
        );
    }
    Ok(())
}

async fn parallel(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c.send("rs/parallel", json!({})).await?;
    let (out, run, steps) = c.completed(&id, "parallel").await?;
    ensure!(
        out == json!({"x": "one", "y": 2, "qs": [0, 10, 20], "z": "one+2+30"}),
        "parallel output {out}"
    );
    for (name, want) in [
        ("p1", json!("one")),
        ("p2", json!(2)),
        ("q0", json!(0)),
        ("q1", json!(10)),
        ("q2", json!(20)),
        ("after", json!("one+2+30")),
    ] {
        completed_step(&steps, name, &want)?;
        let n = c.calls(&run, name);
        ensure!(n == 1, "parallel step {name} ran {n} times");
    }
    Ok(())
}

async fn sleep(c: &Ctx<'_>) -> anyhow::Result<()> {
    let until_ms = now_ms() + 3_000;
    let id = c.send("rs/sleep", json!({"until_ms": until_ms})).await?;
    let (out, run, steps) = c.completed(&id, "sleeper").await?;
    ensure!(out == json!("awake"), "sleeper output {out}");
    if let Some(ended) = run["ended_at"].as_i64() {
        ensure!(
            ended >= until_ms,
            "the run ended at {ended}, before sleep_until {until_ms}"
        );
    }
    for name in ["nap", "until"] {
        let step = single(&steps, name)?;
        ensure!(
            step["status"] == "completed"
                && step["op"].as_str().is_some_and(|op| op.contains("Sleep")),
            "step {name}: {step}"
        );
    }
    Ok(())
}

async fn wait_matched(c: &Ctx<'_>) -> anyhow::Result<()> {
    let key = nonce();
    let id = c
        .send("rs/wait.start", json!({"id": key, "timeout_ms": 60_000}))
        .await?;
    let run_id = c.only_run(&id).await?;
    c.api
        .wait_steps(&run_id, "a wait_for_event", is_waiting)
        .await?;
    c.send("rs/wait.reply", json!({"id": "someone-else", "v": "wrong"}))
        .await?;
    c.send("rs/wait.reply", json!({"id": key, "v": "right"}))
        .await?;
    let (out, _, steps) = c.completed(&id, "waiter").await?;
    ensure!(out == json!({"got": "right"}), "waiter output {out}");
    // The matched event itself is stored as the step's result.
    let reply = single(&steps, "reply")?;
    ensure!(
        reply["status"] == "completed"
            && reply["result"]["name"] == "rs/wait.reply"
            && reply["result"]["data"]["v"] == "right",
        "step reply: {reply}"
    );
    Ok(())
}

async fn wait_timeout(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c
        .send("rs/wait.start", json!({"id": nonce(), "timeout_ms": 1_500}))
        .await?;
    let (out, _, steps) = c.completed(&id, "waiter").await?;
    ensure!(out == json!({"got": null}), "waiter output {out}");
    let reply = single(&steps, "reply")?;
    ensure!(
        reply["status"] == "completed" && step_data(reply).is_null(),
        "step reply after a timeout: {reply}"
    );
    Ok(())
}

async fn invoke(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c.send("rs/invoke", json!({"x": 21})).await?;
    let (out, _, steps) = c.completed(&id, "invoker").await?;
    ensure!(
        out == json!({"rust": {"tripled": 63}, "ts": {"doubled": 42}}),
        "invoker output {out}"
    );
    completed_step(&steps, "call-rust", &json!({"tripled": 63}))?;
    completed_step(&steps, "call-ts", &json!({"doubled": 42}))?;
    for s in ["call-rust", "call-ts"] {
        let step = single(&steps, s)?;
        ensure!(
            step["op"].as_str().is_some_and(|op| op.contains("Invoke")),
            "step {s} is not an invoke: {step}"
        );
    }
    c.completed_run_with(&slug("child"), &json!({"tripled": 63}))
        .await?;
    c.completed_run_with(&format!("{}-child", TS.app_id()), &json!({"doubled": 42}))
        .await?;
    Ok(())
}

/// A TS function invokes the Rust `child` by reference (`referenceFunction`).
async fn invoke_from_ts(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c.send("rs/ts-invoke", json!({"x": 5})).await?;
    let run_id = c.only_run(&id).await?;
    let run = c.api.wait_run_end(&run_id).await?;
    let caller = c.fn_id(&format!("{TS_CALLER_APP_ID}-call-rust"))?;
    ensure!(
        run["function_id"] == caller,
        "rs/ts-invoke ran {}, expected the TS caller",
        run["function_id"]
    );
    let steps = c.api.steps(&run_id).await?;
    ensure!(
        api::status(&run) == "completed" && run["output"] == json!({"rust": {"tripled": 15}}),
        "the TS caller's run: {run}; steps: {}",
        Value::Array(steps)
    );
    let call = completed_step(&steps, "rust-child", &json!({"tripled": 15}))?;
    ensure!(
        call["op"].as_str().is_some_and(|op| op.contains("Invoke")),
        "step rust-child is not an invoke: {call}"
    );
    c.completed_run_with(&slug("child"), &json!({"tripled": 15}))
        .await?;
    Ok(())
}

async fn send_event(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c.send("rs/send", json!({"batch": nonce()})).await?;
    let (out, _, steps) = c.completed(&id, "sender").await?;
    ensure!(out == json!({"sent": 2}), "sender output {out}");
    let emit = single(&steps, "emit")?;
    let ids = step_data(emit)["ids"].as_array().map(Vec::len);
    ensure!(
        emit["status"] == "completed" && ids == Some(2),
        "step emit (expected the two sent ids as its result): {emit}"
    );
    let runs = c.fn_runs(&slug("sent-item"), 2).await?;
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
    let id = c.send("rs/flaky", json!({})).await?;
    let (out, run, steps) = c.completed(&id, "flaky").await?;
    ensure!(
        out == json!({"result": "ok on attempt 1"}),
        "flaky output {out}"
    );
    let step = completed_step(&steps, "flaky", &json!("ok on attempt 1"))?;
    ensure!(
        attempts(step) == Some(2),
        "step step should record 2 attempts: {step}"
    );
    let n = c.calls(&run, "flaky");
    ensure!(n == 2, "the flaky step's closure ran {n} times, expected 2");
    Ok(())
}

async fn non_retriable(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c.send("rs/non-retriable", json!({})).await?;
    let (run, steps) = c.ended(&id, "non-retriable").await?;
    ensure!(api::status(&run) == "failed", "non-retriable ended {run}");
    ensure!(
        run["error"].to_string().contains("not retrying this"),
        "the run's error lacks the message: {run}"
    );
    let fatal = single(&steps, "fatal")?;
    ensure!(
        fatal["status"] == "failed" && fatal["error"].to_string().contains("NonRetriableError"),
        "step fatal: {fatal}"
    );
    ensure!(
        attempts(fatal) == Some(1),
        "step fatal should record 1 attempts: {fatal}"
    );
    let n = c.calls(&run, "fatal");
    ensure!(
        n == 1,
        "the non-retriable step ran {n} times, expected once"
    );
    Ok(())
}

async fn recovers(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c.send("rs/recovers", json!({})).await?;
    let (out, _, steps) = c.completed(&id, "recovers").await?;
    ensure!(
        out == json!({"recovered": "bad input", "name": "NonRetriableError"}),
        "recovers output {out}"
    );
    let fatal = single(&steps, "fatal")?;
    ensure!(
        fatal["status"] == "failed" && fatal["error"].to_string().contains("bad input"),
        "step fatal: {fatal}"
    );
    Ok(())
}

async fn on_failure(c: &Ctx<'_>) -> anyhow::Result<()> {
    let id = c.send("rs/always-fails", json!({})).await?;
    let (run, steps) = c.ended(&id, "always-fails").await?;
    ensure!(api::status(&run) == "failed", "always-fails ended {run}");
    ensure!(
        run["error"].to_string().contains("always fails"),
        "the run's error lacks the message: {run}"
    );
    // Two attempts (retries: 1), then the step's error is stored.
    let boom = single(&steps, "boom")?;
    ensure!(
        boom["status"] == "failed" && boom["error"].to_string().contains("always fails"),
        "step boom: {boom}"
    );
    ensure!(
        attempts(boom) == Some(2),
        "step boom should record 2 attempts: {boom}"
    );
    let handlers = c.fn_runs(&slug("always-fails-failure"), 1).await?;
    ensure!(
        handlers.len() == 1,
        "on_failure runs: {}",
        Value::Array(handlers)
    );
    let h = &handlers[0];
    ensure!(
        api::status(h) == "completed"
            && h["output"]["failed_fn"] == slug("always-fails")
            && h["output"]["failed_run"] == api::id(&run)
            && h["output"]["message"]
                .as_str()
                .is_some_and(|m| m.contains("always fails")),
        "on_failure run: {h}"
    );
    Ok(())
}

async fn cancel_on(c: &Ctx<'_>) -> anyhow::Result<()> {
    let (k1, k2) = (nonce(), nonce());
    let e1 = c.send("rs/cancellable", json!({"id": k1})).await?;
    let e2 = c.send("rs/cancellable", json!({"id": k2})).await?;
    let r1 = c.only_run(&e1).await?;
    let r2 = c.only_run(&e2).await?;
    c.api.wait_steps(&r1, "a sleep", is_sleeping).await?;
    c.api.wait_steps(&r2, "a sleep", is_sleeping).await?;
    c.send("rs/cancel", json!({"id": k1})).await?;
    let run = c.api.wait_run_end(&r1).await?;
    ensure!(
        api::status(&run) == "cancelled",
        "cancel_on run ended {run}"
    );
    let other = c.api.run(&r2).await?;
    let untouched = !api::is_terminal(&other);
    let _ = c.api.cancel(&r2).await;
    ensure!(
        untouched,
        "a cancel event for another id ended this run too: {other}"
    );
    Ok(())
}
