//! Two `sluice start` nodes on one Postgres: the node calling a function is killed
//! (SIGKILL) in the middle of the call, and the other node finishes the run once the
//! dead node's lease expires.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use support::api::{self, Api};
use support::app::{App, Program, Sdk, Target};
use support::sluice::{Keys, Mode, Sluice, SluiceParams};

/// Short leases, so the rescue comes quickly.
const LEASE: &str = "2s";
/// How long the step takes: long enough to start the second node and kill the first.
const STEP_MS: u64 = 6_000;

#[tokio::test]
async fn a_run_survives_the_death_of_the_node_calling_it() {
    let Some(database_url) = support::fresh_database("two_node")
        .await
        .expect("a fresh Postgres database")
    else {
        return;
    };
    let dir = tempfile::tempdir().expect("a temp dir");
    let keys = Keys::test();
    let node = |name: &'static str| SluiceParams {
        name,
        mode: Mode::Start {
            database_url: database_url.clone(),
            keys: keys.clone(),
        },
        dir: dir.path(),
        apps: Vec::new(),
        port: None,
        env: vec![("SLUICE_LEASE".into(), LEASE.into())],
    };
    let mut a = Sluice::spawn(node("node-a")).await.expect("node a starts");
    // TS v3: no checkpoint calls back to node a while its step runs.
    let target = Target {
        base: a.base.clone(),
        keys: Some(keys.clone()),
    };
    let app = App::start(
        "ts-v3",
        Program::TestApp(Sdk::TsV3),
        &target,
        dir.path(),
        None,
    )
    .await
    .expect("the SDK app starts");
    app.sync().await.expect("the app syncs through node a");
    let api_a = Api::new(&a.base, Some(keys.signing.clone()));

    let ids = must(
        app.send(json!([{"name": "e2e/slow", "data": {"ms": STEP_MS}}]))
            .await,
    );
    let runs = must(api_a.wait_event_runs(&ids[0], 1).await);
    let run_id = api::id(&runs[0]);

    // Node a is the only node: it is the one calling the app.
    must(wait_inflight(&app, &run_id).await);
    let b = must(Sluice::spawn(node("node-b")).await);
    let api_b = Api::new(&b.base, Some(keys.signing.clone()));
    let before = must(api_b.run(&run_id).await);
    assert!(
        !api::is_terminal(&before),
        "inconclusive: the run ended before node a could be killed: {before}"
    );
    a.proc.kill();

    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let run = must(api_b.run(&run_id).await);
        if api::is_terminal(&run) {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "node b did not finish the run within 60 s of node a's death: {run}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        api::status(&run) == "completed" && run["output"] == json!({"a": "slept"}),
        "the rescued run ended {run}"
    );
    let steps = must(api_b.steps(&run_id).await);
    let slow: Vec<&Value> = steps.iter().filter(|s| s["name"] == "slow-step").collect();
    assert!(
        slow.len() == 1 && slow[0]["status"] == "completed",
        "steps of the rescued run: {}",
        Value::Array(steps.clone())
    );
}

/// The value, or a panic with the error's chain (the children's logs print as they drop).
fn must<T>(result: anyhow::Result<T>) -> T {
    result.unwrap_or_else(|e| panic!("{e:#}"))
}

/// Waits until the app reports the run's slow step executing.
async fn wait_inflight(app: &App, run_id: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let inflight = app.get_json("/inflight").await?;
        if inflight
            .as_array()
            .context("/inflight is not a list")?
            .iter()
            .any(|r| r == run_id)
        {
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the slow step of run {run_id} never started"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
