//! The storage conformance suite against PostgreSQL, each case in a fresh schema of
//! the database at `SLUICE_TEST_DATABASE_URL` (start one with
//! `source scripts/postgres.sh start`). Without a reachable database the cases are
//! skipped, except under CI (`CI` set), where they fail.

mod database;

use database::{database_url, fresh_store};

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
    continue_keeps_the_lease_and_applies_like_a_read,
    enqueue_dedupe_key,
    waits_found_by_event_and_resumed_once,
    publish_unwaited_writes_only_when_nobody_waits,
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
