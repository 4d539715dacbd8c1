//! Two `sluice start` nodes on one Postgres: the node calling a function is killed
//! (SIGKILL) in the middle of the call, and the other node finishes the run once the
//! dead node's lease expires.

mod support;

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use serde_json::{Value, json};
use sqlx::Connection;
use support::api::{self, Api};
use support::app::{App, Program, Sdk, Target};
use support::sluice::{Keys, Mode, Sluice, SluiceParams};

/// Short leases, so the rescue comes quickly.
const LEASE: &str = "2s";
/// How long the step takes: the node calling it is killed while it runs.
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
        env: vec![
            ("SLUICE_LEASE".into(), LEASE.into()),
            ("SLUICE_NODE_ID".into(), name.into()),
        ],
    };
    let mut nodes = [
        must(Sluice::spawn(node("node-a")).await),
        must(Sluice::spawn(node("node-b")).await),
    ];
    // TS v3: the app makes no calls back to a node while its step runs (no checkpoints).
    let target = Target {
        base: nodes[0].base.clone(),
        keys: Some(keys.clone()),
    };
    let app = must(
        App::start(
            "ts-v3",
            Program::TestApp(Sdk::TsV3),
            &target,
            dir.path(),
            None,
        )
        .await,
    );
    must(app.sync().await);
    let api_a = Api::new(&nodes[0].base, Some(keys.signing.clone()));

    let ids = must(
        app.send(json!([{"name": "e2e/slow", "data": {"ms": STEP_MS}}]))
            .await,
    );
    let runs = must(api_a.wait_event_runs(&ids[0], 1).await);
    let run_id = api::id(&runs[0]);

    // Kill the node that holds the call, while the step runs.
    must(wait_inflight(&app, &run_id).await);
    let holder = must(lease_owner(&database_url, &run_id).await);
    let (dead, alive) = match holder.as_str() {
        "node-a" => (0, 1),
        "node-b" => (1, 0),
        other => panic!("the run's queue item is leased by {other:?}, not by a node"),
    };
    eprintln!("killing {holder} (SIGKILL) in the middle of its call");
    nodes[dead].proc.kill();
    let api = Api::new(&nodes[alive].base, Some(keys.signing.clone()));
    let before = must(api.run(&run_id).await);
    assert!(
        !api::is_terminal(&before),
        "the run ended although the node calling it died mid-call: {before}"
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let run = loop {
        let run = must(api.run(&run_id).await);
        if api::is_terminal(&run) {
            break run;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not finish the run within 60 s of {holder}'s death: {run}",
            nodes[alive].proc.name
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(
        api::status(&run) == "completed" && run["output"] == json!({"a": "slept"}),
        "the rescued run ended {run}"
    );
    let steps = must(api.steps(&run_id).await);
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

/// The node id holding the lease on the run's queue item (read from the database).
async fn lease_owner(database_url: &str, run_id: &str) -> anyhow::Result<String> {
    let mut conn = sqlx::PgConnection::connect(database_url).await?;
    let owners: Vec<(String,)> = sqlx::query_as(
        "SELECT lease_owner FROM queue_items WHERE run_id = $1 AND lease_owner IS NOT NULL",
    )
    .bind(run_id)
    .fetch_all(&mut conn)
    .await
    .context("reading the run's queue items")?;
    conn.close().await?;
    ensure!(
        owners.len() == 1,
        "expected one leased queue item for run {run_id}, found {owners:?}"
    );
    Ok(owners[0].0.clone())
}
