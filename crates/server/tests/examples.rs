//! End-to-end: the examples (examples/typescript, examples/python) as a user runs them:
//! the app first, then `sluice dev -u <app>`, then the app's own routes.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use support::api::{self, Api};
use support::app::{App, Program, Target};
use support::process::free_port;
use support::sluice::{Mode, Sluice, SluiceParams};
use support::{Report, Scenario, run_all};

#[tokio::test]
async fn typescript_example() {
    example(Program::ExampleTs, "shop-example").await;
}

#[tokio::test]
async fn python_example() {
    example(Program::ExamplePy, "shop-example-py").await;
}

async fn example(program: Program, app_id: &str) {
    let dir = tempfile::tempdir().expect("a temp dir");
    let sluice_port = free_port();
    let target = Target {
        base: format!("http://127.0.0.1:{sluice_port}"),
        keys: None,
    };
    let app = App::start("example", program.clone(), &target, dir.path(), None)
        .await
        .expect("the example starts");
    let sluice = Sluice::spawn(SluiceParams {
        name: "sluice",
        mode: Mode::Dev,
        dir: dir.path(),
        apps: vec![app.serve_url()],
        port: Some(sluice_port),
        env: Vec::new(),
    })
    .await
    .expect("sluice starts");
    let api = Api::new(&sluice.base, None);
    let mut report = Report::new(&format!("{program:?}"));

    let started = Instant::now();
    let synced = synced_by_flag(&api, app_id).await;
    if synced.is_err() {
        // Carry on with a manual sync so the rest is still checked.
        let _ = app.sync().await;
    }
    report.record("sync by -u", synced, started.elapsed());

    let c = Example {
        app: &app,
        api: &api,
        http: reqwest::Client::new(),
        app_id: app_id.to_string(),
    };
    let scenarios: Vec<(&'static str, Scenario<'_>)> = vec![
        ("order shipped", Box::pin(order_shipped(&c))),
        ("unknown item fails", Box::pin(unknown_item(&c))),
    ];
    report.add(run_all(Duration::from_secs(60), scenarios).await);
    report.finish();
}

/// Waits for the `-u` sync to list the example's functions.
async fn synced_by_flag(api: &Api, app_id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let want = format!("{app_id}-process-order");
    loop {
        let listed = api.functions().await.unwrap_or_default();
        if listed.iter().any(|f| f["slug"] == want.as_str()) {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "`sluice dev -u <app>` did not register {want} within 15 s; GET /v1/functions: {}",
            Value::Array(listed)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

struct Example<'a> {
    app: &'a App,
    api: &'a Api,
    http: reqwest::Client,
    app_id: String,
}

impl Example<'_> {
    async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        let resp = self
            .http
            .post(format!("http://127.0.0.1:{}{path}", self.app.port))
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path} to the example"))?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        ensure!(status.is_success(), "POST {path} answered {status}: {body}");
        Ok(body)
    }

    /// The event's runs, keyed by function slug without the app prefix.
    async fn runs(&self, event_id: &str, n: usize) -> anyhow::Result<Vec<(String, Value)>> {
        let runs = self.api.wait_event_runs(event_id, n).await?;
        let fns = self.api.functions().await?;
        let prefix = format!("{}-", self.app_id);
        Ok(runs
            .into_iter()
            .map(|r| {
                let slug = fns
                    .iter()
                    .find(|f| f["id"] == r["function_id"])
                    .and_then(|f| f["slug"].as_str())
                    .unwrap_or("?");
                (slug.trim_start_matches(&prefix).to_string(), r)
            })
            .collect())
    }
}

async fn order_shipped(c: &Example<'_>) -> anyhow::Result<()> {
    let placed = c
        .post(
            "/orders",
            json!({"item": "mug", "qty": 2, "email": "ada@example.com"}),
        )
        .await?;
    let (order_id, event_id) = (
        placed["orderId"].as_str().context("no orderId")?,
        placed["eventId"].as_str().context("no eventId")?,
    );
    let runs = c.runs(event_id, 2).await?;
    let mut names: Vec<&str> = runs.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    ensure!(
        names == ["process-order", "send-receipt"],
        "runs of the order: {names:?}"
    );
    let run_of = |name: &str| {
        runs.iter()
            .find(|(n, _)| n == name)
            .map(|(_, r)| api::id(r))
            .unwrap_or_default()
    };
    let receipt = c.api.wait_run_end(&run_of("send-receipt")).await?;
    ensure!(
        receipt["output"] == json!({"to": "ada@example.com", "total": 24}),
        "send-receipt: {receipt}"
    );
    let process = run_of("process-order");
    c.api
        .wait_steps(&process, "the wait for the shipment", |steps| {
            steps.iter().any(|s| {
                s["status"] == "waiting"
                    || s["op"]
                        .as_str()
                        .is_some_and(|op| op.contains("WaitForEvent"))
            })
        })
        .await?;
    c.post(
        &format!("/orders/{order_id}/shipped"),
        json!({"carrier": "dhl"}),
    )
    .await?;
    let run = c.api.wait_run_end(&process).await?;
    ensure!(
        api::status(&run) == "completed"
            && run["output"]["status"] == "shipped"
            && run["output"]["carrier"] == "dhl"
            && run["output"]["charged"] == 24,
        "process-order: {run}"
    );
    Ok(())
}

async fn unknown_item(c: &Example<'_>) -> anyhow::Result<()> {
    let placed = c
        .post("/orders", json!({"item": "yacht", "qty": 1}))
        .await?;
    let event_id = placed["eventId"].as_str().context("no eventId")?;
    let runs = c.runs(event_id, 2).await?;
    let process = runs
        .iter()
        .find(|(n, _)| n == "process-order")
        .map(|(_, r)| api::id(r))
        .context("no process-order run")?;
    let run = c.api.wait_run_end(&process).await?;
    ensure!(
        api::status(&run) == "failed",
        "process-order for a yacht: {run}"
    );
    // onFailure: the `-failure` function ran and released the stock.
    let failure_fn = c
        .api
        .function_id(&format!("{}-process-order-failure", c.app_id))
        .await?
        .context("the onFailure function is not registered")?;
    let deadline = Instant::now() + api::WAIT;
    loop {
        let runs = c.api.runs_of(&failure_fn).await?;
        if let Some(r) = runs.iter().find(|r| api::status(r) == "completed") {
            ensure!(
                r["output"]["released"] == "yacht",
                "the onFailure run released {}",
                r["output"]
            );
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "no completed onFailure run: {}",
            Value::Array(runs)
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
}
