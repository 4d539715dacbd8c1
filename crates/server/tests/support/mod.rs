//! The end-to-end harness: the real `sluice` binary, the official SDKs in their own
//! processes (started from tests/sdk and examples/), and the REST API to check results.
//!
//! # Layout
//! - [`process`]: [`process::Proc`], a child killed on drop whose log is printed when
//!   the test fails; free ports.
//! - [`sluice`]: [`sluice::Sluice`], `sluice dev` / `sluice start` until `/health`.
//! - [`app`]: [`app::App`], an SDK app: start, restart, sync (`PUT`), send (SDK `send`).
//! - [`api`]: [`api::Api`], the REST API client and polling helpers.
//! - here: fresh Postgres databases and the per-scenario [`Report`].
#![allow(dead_code)] // each test binary uses a different part of the harness

pub mod api;
pub mod app;
pub mod process;
pub mod sluice;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

/// A fresh, empty Postgres database on the server named by `SLUICE_TEST_DATABASE_URL`;
/// its URL. `None` (with a note) when the variable is unset outside CI; in CI (`CI`
/// set) an unset variable fails the test.
pub async fn fresh_database(prefix: &str) -> anyhow::Result<Option<String>> {
    use sqlx::{Connection, Executor};
    let Ok(url) = std::env::var("SLUICE_TEST_DATABASE_URL") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "SLUICE_TEST_DATABASE_URL is unset in CI: scripts/test starts Postgres and sets it"
        );
        eprintln!(
            "note: skipping the Postgres half: set SLUICE_TEST_DATABASE_URL (source scripts/postgres.sh start)"
        );
        return Ok(None);
    };
    let mut conn = sqlx::PgConnection::connect(&url).await?;
    let name = format!("e2e_{prefix}_{}", uuid::Uuid::new_v4().simple())
        .chars()
        .take(60)
        .collect::<String>();
    conn.execute(format!("CREATE DATABASE {name}").as_str())
        .await?;
    conn.close().await?;
    let mut fresh = url::Url::parse(&url)?;
    fresh.set_path(&name);
    Ok(Some(fresh.to_string()))
}

/// A boxed scenario.
pub type Scenario<'a> = Pin<Box<dyn Future<Output = anyhow::Result<()>> + 'a>>;

/// Runs scenarios concurrently, each bounded by `limit`; their outcomes, in order.
pub async fn run_all<'a>(
    limit: Duration,
    scenarios: Vec<(&'static str, Scenario<'a>)>,
) -> Vec<(&'static str, anyhow::Result<()>, Duration)> {
    let runs = scenarios.into_iter().map(|(name, fut)| async move {
        let started = Instant::now();
        let result = match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(anyhow::anyhow!("scenario timed out after {limit:?}")),
        };
        (name, result, started.elapsed())
    });
    futures::future::join_all(runs).await
}

/// The outcome of every scenario of one test, printed as a table.
#[derive(Debug, Default)]
pub struct Report {
    title: String,
    rows: Vec<(String, Result<(), String>, Duration)>,
}

impl Report {
    pub fn new(title: &str) -> Report {
        Report {
            title: title.to_string(),
            rows: Vec::new(),
        }
    }

    pub fn add(&mut self, outcomes: Vec<(&'static str, anyhow::Result<()>, Duration)>) {
        for (name, result, took) in outcomes {
            self.rows
                .push((name.to_string(), result.map_err(|e| format!("{e:#}")), took));
        }
    }

    pub fn record(&mut self, name: &str, result: anyhow::Result<()>, took: Duration) {
        self.rows
            .push((name.to_string(), result.map_err(|e| format!("{e:#}")), took));
    }

    /// Prints the table; panics (so the children's logs are printed) if any failed.
    pub fn finish(self) {
        eprintln!("\n== {} ==", self.title);
        for (name, result, took) in &self.rows {
            match result {
                Ok(()) => eprintln!("  PASS  {name:<24} {:>6.1}s", took.as_secs_f64()),
                Err(e) => eprintln!("  FAIL  {name:<24} {:>6.1}s  {e}", took.as_secs_f64()),
            }
        }
        let failed: Vec<&str> = self
            .rows
            .iter()
            .filter(|(_, r, _)| r.is_err())
            .map(|(n, _, _)| n.as_str())
            .collect();
        assert!(
            failed.is_empty(),
            "{}: {} of {} scenarios failed: {}",
            self.title,
            failed.len(),
            self.rows.len(),
            failed.join(", ")
        );
    }
}
