//! The storage conformance suite against PostgreSQL, each case in a fresh schema of
//! the database at `SLUICE_TEST_DATABASE_URL` (start one with
//! `source scripts/postgres.sh start`). Without a reachable database the cases are
//! skipped, except under CI (`CI` set), where they fail.

use std::sync::Arc;

use sluice_store::DynStore;
use sluice_store_postgres::{PostgresOptions, PostgresStore};

/// The test database URL, or `None` (after a note) when the cases should be skipped.
/// Panics under CI when no database is configured or it cannot be reached.
async fn database_url() -> Option<String> {
    let ci = std::env::var_os("CI").is_some();
    let url = match std::env::var("SLUICE_TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => url,
        _ if ci => panic!(
            "SLUICE_TEST_DATABASE_URL is not set under CI: start PostgreSQL with \
             `source scripts/postgres.sh start` before the tests"
        ),
        _ => {
            eprintln!("note: SLUICE_TEST_DATABASE_URL unset; skipping the PostgreSQL tests");
            return None;
        }
    };
    let reachable = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        <sqlx::PgConnection as sqlx::Connection>::connect(&url),
    )
    .await;
    match reachable {
        Ok(Ok(conn)) => {
            let _ = sqlx::Connection::close(conn).await;
            Some(url)
        }
        Ok(Err(err)) if ci => panic!("cannot reach SLUICE_TEST_DATABASE_URL under CI: {err}"),
        Err(_) if ci => panic!("timed out reaching SLUICE_TEST_DATABASE_URL under CI"),
        _ => {
            eprintln!("note: SLUICE_TEST_DATABASE_URL unreachable; skipping the PostgreSQL tests");
            None
        }
    }
}

/// A fresh store in a new schema `t_<random>`.
async fn fresh_store(url: String) -> DynStore {
    let schema = format!("t_{}", uuid::Uuid::new_v4().simple());
    let store = PostgresStore::connect(PostgresOptions {
        url,
        max_connections: 8,
        schema: Some(schema),
    })
    .await
    .expect("connect and migrate a fresh schema");
    Arc::new(store)
}

/// Runs one conformance case on a fresh store, or skips it.
macro_rules! pg_conformance {
    ($($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let Some(url) = database_url().await else { return };
                sluice_store::testing::$case(fresh_store(url).await).await;
            }
        )*
    };
}

pg_conformance!(
    event_insert_and_dedupe_window,
    publish_writes_fan_out_atomically,
    registry_sync_replaces_function_set,
    registry_placeholders_and_errors,
    commit_writes_steps_and_run_updates,
    terminal_status_clears_items_and_waits,
    claim_orders_by_priority_time_id,
    delayed_items_wait_for_their_time,
    concurrent_claimers_never_share_an_item,
    expired_lease_rescued_and_stale_commit_refused,
    retry_and_release_dispositions,
    enqueue_dedupe_key,
    waits_found_by_event_and_resumed_once,
    require_wait_skips_when_gone,
    cancel_runs_clears_and_fences,
    list_runs_filters_and_pages,
    list_events_filters_and_pages,
    leader_lease_exclusive_and_expiring,
    kv_round_trip,
    prune_removes_old_history,
    subscribe_wakes_after_available,
);

/// The cases above are those of `sluice_store::conformance_suite!` (which cannot skip
/// without a database, hence the copy): fail when the suite gains or renames a case.
#[test]
fn every_conformance_case_is_instantiated() {
    const SUITE: &str = include_str!("../../store/src/testing.rs");
    const HERE: &str = include_str!("conformance.rs");
    let list = |source: &str, start: &str| -> Vec<String> {
        let from = source.find(start).expect("case list start") + start.len();
        let to = from + source[from..].find(");").expect("case list end");
        source[from..to]
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    let suite = list(SUITE, "$crate::conformance_suite!(@cases $make;");
    let here = list(HERE, "\npg_conformance!(");
    assert!(suite.len() > 10, "parsed too few suite cases: {suite:?}");
    assert_eq!(
        here, suite,
        "tests/conformance.rs must list every conformance case"
    );
}
