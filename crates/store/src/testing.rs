//! The storage conformance suite: one set of cases every backend must pass.
//!
//! A backend instantiates it in its own `tests/` with
//! `sluice_store::conformance_suite!(make_store);`, where `make_store` is a path to an
//! `async fn() -> DynStore` returning a fresh, empty store on every call. The macro
//! expands to one `#[tokio::test(flavor = "multi_thread", worker_threads = 4)]` per
//! case (so the calling crate needs `tokio` as a dependency), each calling the
//! same-named `pub async fn` here.
//!
//! Contracts the cases pin down beyond the trait docs:
//! - pages: `Page::next` is the last item's id when more items may follow, `None`
//!   on the last page (an empty final page is allowed); lists are by id descending
//!   (ULIDs sort by creation time);
//! - `claim` returns the items in `priority, available_at, id` order;
//! - `expire_waits` deletes an expired wait unless a `wait_timeout` queue item exists
//!   for the same run and step (so cancel watches, which have no step, always go).

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use sluice_core::{EventId, FunctionId, Millis, QueueItemId, RunId, WaitId};
use ulid::Ulid;

use crate::{
    AppSync, Claim, Commit, CommitResult, DEDUPE_WINDOW_MS, Disposition, DynStore, Error, Event,
    EventFilter, FunctionDef, LeaseRef, NewQueueItem, NewRun, NewWait, Publish, QueueItem,
    QueueKind, QueueStats, Resume, RunFilter, RunStatus, RunUpdate, StepRecord, StepStatus,
    Trigger, WaitKind,
};

/// Expands to one tokio test per conformance case; see the [module docs](self).
#[macro_export]
macro_rules! conformance_suite {
    ($make:path) => {
        $crate::conformance_suite!(@cases $make;
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
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                $crate::testing::$case($make().await).await;
            }
        )*
    };
}

// ---- fixtures -------------------------------------------------------------------

/// A fixed base time, so cases never depend on the clock.
const T0: Millis = Millis(1_800_000_000_000);

fn at(offset_ms: i64) -> Millis {
    T0.plus_ms(offset_ms)
}

static SEQ: AtomicU64 = AtomicU64::new(1);

/// A ULID at `ms` whose random part grows, so ids sort like their times.
fn ulid_at(ms: Millis) -> Ulid {
    Ulid::from_parts(ms.0 as u64, u128::from(SEQ.fetch_add(1, Ordering::Relaxed)))
}

fn event(name: &str, received_at: Millis) -> Event {
    Event {
        id: EventId(ulid_at(received_at)),
        external_id: None,
        name: name.to_string(),
        data: json!({ "n": SEQ.fetch_add(1, Ordering::Relaxed), "nested": { "ok": true } }),
        user: json!({}),
        version: Some("2024-01-01.1".into()),
        ts: received_at.plus_ms(-5),
        received_at,
    }
}

fn with_external(mut event: Event, external: &str) -> Event {
    event.external_id = Some(external.to_string());
    event
}

fn new_run(function_id: FunctionId, event_ids: Vec<EventId>, created_at: Millis) -> NewRun {
    let id = RunId(ulid_at(created_at));
    NewRun {
        id,
        function_id,
        event_ids,
        correlation_id: None,
        rerun_of: None,
        created_at,
        first: NewQueueItem::call(id, function_id, None, created_at),
        waits: Vec::new(),
    }
}

fn publish(event: Event, runs: Vec<NewRun>) -> Publish {
    Publish {
        event,
        runs,
        resumes: Vec::new(),
        cancels: Vec::new(),
    }
}

fn item(available_at: Millis, priority: i32) -> NewQueueItem {
    NewQueueItem {
        kind: QueueKind::Wake,
        run_id: None,
        function_id: None,
        step_id: None,
        payload: json!({ "p": priority, "at": available_at.0 }),
        available_at,
        priority,
        concurrency_keys: Vec::new(),
        dedupe_key: None,
    }
}

fn step(run_id: RunId, step_id: &str, status: StepStatus, ended_at: Option<Millis>) -> StepRecord {
    StepRecord {
        run_id,
        step_id: step_id.to_string(),
        name: format!("name of {step_id}"),
        op: "StepRun".into(),
        status,
        result: status.is_memoized().then(|| json!({ "data": step_id })),
        error: None,
        attempts: 1,
        opts: None,
        started_at: Some(at(1)),
        ended_at,
    }
}

fn wait(
    run_id: RunId,
    kind: WaitKind,
    step_id: Option<&str>,
    name: &str,
    expires_at: Option<Millis>,
) -> NewWait {
    NewWait {
        id: WaitId(ulid_at(T0)),
        run_id,
        kind,
        step_id: step_id.map(str::to_string),
        event_name: name.to_string(),
        expression: Some("async.data.id == event.data.id".into()),
        correlation_id: (kind == WaitKind::Invoke).then(|| "corr-1".to_string()),
        trigger_event: json!({ "name": "trigger", "data": { "id": 7 } }),
        expires_at,
        created_at: T0,
    }
}

fn claim(limit: u32, lease_ms: i64, now: Millis) -> Claim {
    Claim {
        owner: "node-a".into(),
        limit,
        lease_ms,
        now,
    }
}

fn lease_of(item: &QueueItem) -> LeaseRef {
    item.lease().expect("a claimed item has a lease")
}

fn done(item: &QueueItem) -> Commit {
    Commit::new(lease_of(item), Disposition::Done)
}

/// Creates one run (outside a publish) and claims its first item.
async fn run_in_flight(store: &DynStore, now: Millis) -> (RunId, QueueItem) {
    let run = new_run(FunctionId::new(), Vec::new(), now);
    let id = run.id;
    store.create_runs(vec![run]).await.expect("create run");
    let claimed = store.claim(claim(10, 60_000, now)).await.expect("claim");
    let first = claimed
        .into_iter()
        .find(|i| i.run_id == Some(id))
        .expect("the run's first item is claimable");
    (id, first)
}

async fn commit_one(store: &DynStore, commit: Commit, now: Millis) -> CommitResult {
    let results = store.commit(vec![commit], now).await.expect("commit");
    assert_eq!(results.len(), 1, "one result per commit");
    results[0]
}

fn assert_not_found<T: std::fmt::Debug>(result: crate::Result<T>, what: &str) {
    match result {
        Err(Error::NotFound(_)) => {}
        other => panic!("{what}: expected NotFound, got {other:?}"),
    }
}

// ---- events ---------------------------------------------------------------------

/// Internal-id and external-id dedupe, the 24 h window, and dedupe inside one batch.
pub async fn event_insert_and_dedupe_window(store: DynStore) {
    let f = FunctionId::new();
    let e1 = with_external(event("shop/order", at(0)), "ext-1");
    let r1 = new_run(f, vec![e1.id], at(0));
    let out = store
        .publish(vec![publish(e1.clone(), vec![r1.clone()])], at(0))
        .await
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!((out[0].id, out[0].duplicate), (e1.id, false));
    assert_eq!(
        store.get_event(e1.id).await.unwrap(),
        e1,
        "event round-trips"
    );

    // Same internal id again: a duplicate, nothing written.
    let r_again = new_run(f, vec![e1.id], at(1));
    let out = store
        .publish(vec![publish(e1.clone(), vec![r_again.clone()])], at(1))
        .await
        .unwrap();
    assert_eq!((out[0].id, out[0].duplicate), (e1.id, true));
    assert_not_found(store.get_run(r_again.id).await, "run of a duplicate");

    // Same external id within the window: duplicate pointing at the stored event.
    let e2 = with_external(event("shop/order", at(3_600_000)), "ext-1");
    let r2 = new_run(f, vec![e2.id], at(3_600_000));
    let out = store
        .publish(vec![publish(e2.clone(), vec![r2.clone()])], at(3_600_000))
        .await
        .unwrap();
    assert_eq!((out[0].id, out[0].duplicate), (e1.id, true));
    assert_not_found(store.get_event(e2.id).await, "deduped event");
    assert_not_found(store.get_run(r2.id).await, "run of a deduped event");
    let runs = store.runs_for_event(e1.id).await.unwrap();
    assert_eq!(runs.iter().map(|r| r.id).collect::<Vec<_>>(), vec![r1.id]);

    // After the window the same external id is accepted, and opens a new window.
    let later = at(DEDUPE_WINDOW_MS + 1);
    let e3 = with_external(event("shop/order", later), "ext-1");
    let r3 = new_run(f, vec![e3.id], later);
    let out = store
        .publish(vec![publish(e3.clone(), vec![r3.clone()])], later)
        .await
        .unwrap();
    assert_eq!((out[0].id, out[0].duplicate), (e3.id, false));
    assert_eq!(
        store.get_run(r3.id).await.unwrap().status,
        RunStatus::Queued
    );
    let e4 = with_external(event("shop/order", later.plus_ms(1)), "ext-1");
    let out = store
        .publish(vec![publish(e4.clone(), vec![])], later.plus_ms(1))
        .await
        .unwrap();
    assert_eq!((out[0].id, out[0].duplicate), (e3.id, true));

    // Two events with one external id in the same batch, plus one without.
    let now = later.plus_ms(10);
    let e5 = with_external(event("a", now), "ext-2");
    let e6 = with_external(event("a", now), "ext-2");
    let e7 = event("b", now);
    let r6 = new_run(f, vec![e6.id], now);
    let out = store
        .publish(
            vec![
                publish(e5.clone(), vec![]),
                publish(e6.clone(), vec![r6.clone()]),
                publish(e7.clone(), vec![]),
            ],
            now,
        )
        .await
        .unwrap();
    let got: Vec<_> = out.iter().map(|p| (p.id, p.duplicate)).collect();
    assert_eq!(got, vec![(e5.id, false), (e5.id, true), (e7.id, false)]);
    assert_not_found(store.get_run(r6.id).await, "run of an in-batch duplicate");
    let fetched = store.get_events(&[e7.id, e6.id, e5.id]).await.unwrap();
    assert_eq!(
        fetched.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![e7.id, e5.id],
        "get_events keeps the asked order and leaves out missing ids"
    );
}

/// A publish writes runs, their first items, their waits and run_events together;
/// a failing batch writes nothing.
pub async fn publish_writes_fan_out_atomically(store: DynStore) {
    let (fa, fb) = (FunctionId::new(), FunctionId::new());
    let e = event("user/signup", at(0));
    let ra = new_run(fa, vec![e.id], at(0));
    let mut rb = new_run(fb, vec![e.id], at(0));
    rb.first.available_at = at(5_000);
    rb.first.step_id = Some("first".into());
    rb.correlation_id = Some("corr-9".into());
    rb.waits = vec![wait(
        rb.id,
        WaitKind::Cancel,
        None,
        "user/deleted",
        Some(at(60_000)),
    )];
    let out = store
        .publish(
            vec![publish(e.clone(), vec![ra.clone(), rb.clone()])],
            at(0),
        )
        .await
        .unwrap();
    assert!(!out[0].duplicate);

    let mut runs = store.runs_for_event(e.id).await.unwrap();
    runs.sort_by_key(|r| r.id);
    assert_eq!(runs.len(), 2);
    for (run, new) in runs.iter().zip([&ra, &rb]) {
        assert_eq!(run.id, new.id);
        assert_eq!(run.function_id, new.function_id);
        assert_eq!(run.status, RunStatus::Queued);
        assert_eq!(run.event_ids, vec![e.id]);
        assert_eq!(run.created_at, at(0));
        assert_eq!(run.correlation_id, new.correlation_id);
        assert_eq!((run.output.clone(), run.ended_at), (None, None));
        assert!(!run.disable_immediate_execution);
    }
    let items = store.run_queue_items(rb.id).await.unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].kind, QueueKind::Call);
    assert_eq!(items[0].function_id, Some(fb));
    assert_eq!(items[0].step_id.as_deref(), Some("first"));
    assert_eq!(items[0].available_at, at(5_000));
    assert_eq!((items[0].attempt, items[0].lease_token), (0, None));
    assert_eq!(store.run_queue_items(ra.id).await.unwrap().len(), 1);
    assert_eq!(store.run_waits(rb.id).await.unwrap(), rb.waits);
    assert!(store.run_waits(ra.id).await.unwrap().is_empty());
    assert_eq!(
        store.queue_stats(at(0)).await.unwrap(),
        QueueStats {
            due: 1,
            scheduled: 1,
            leased: 0
        }
    );

    // A batch whose second publish clashes (a run id that exists) writes nothing.
    let e2 = event("user/signup", at(10));
    let e3 = event("user/signup", at(10));
    let rc = new_run(fa, vec![e2.id], at(10));
    let clash = NewRun {
        id: ra.id,
        ..new_run(fa, vec![e3.id], at(10))
    };
    let result = store
        .publish(
            vec![
                publish(e2.clone(), vec![rc.clone()]),
                publish(e3.clone(), vec![clash]),
            ],
            at(10),
        )
        .await;
    assert!(
        result.is_err(),
        "a clashing run id fails the publish: {result:?}"
    );
    assert_not_found(store.get_event(e2.id).await, "event of a failed batch");
    assert_not_found(store.get_run(rc.id).await, "run of a failed batch");
    assert!(store.runs_for_event(e2.id).await.unwrap().is_empty());
    assert_eq!(store.queue_stats(at(10)).await.unwrap().due, 1);
}

fn fdef(slug: &str, config: Value) -> FunctionDef {
    FunctionDef {
        slug: slug.to_string(),
        name: format!("Function {slug}"),
        triggers: vec![
            Trigger::Event {
                event: "shop/*".into(),
                expression: Some("event.data.vip == true".into()),
            },
            Trigger::Cron {
                cron: "*/5 * * * *".into(),
                jitter: None,
            },
        ],
        config,
    }
}

fn app_sync(name: &str, url: &str, functions: Vec<FunctionDef>, now: Millis) -> AppSync {
    AppSync {
        name: name.to_string(),
        url: url.to_string(),
        sdk: Some("js:v3.40.0".into()),
        framework: Some("express".into()),
        functions,
        now,
    }
}

/// Function ids stay by slug, removed functions go, the version moves, identical
/// re-syncs are not `modified`, and a slug of another app is a conflict.
pub async fn registry_sync_replaces_function_set(store: DynStore) {
    let url = "http://127.0.0.1:3000/api/inngest";
    let first = store
        .sync_app(app_sync(
            "shop",
            url,
            vec![
                fdef("shop-a", json!({"retries": 3})),
                fdef("shop-b", json!({})),
            ],
            at(0),
        ))
        .await
        .unwrap();
    assert!(first.modified, "a new app is a modification");
    assert_eq!(first.app.name, "shop");
    assert_eq!(first.app.function_count, 2);
    assert_eq!(first.app.last_synced_at, Some(at(0)));
    assert_eq!(first.app.sync_error, None);
    let mut slugs: Vec<_> = first.functions.iter().map(|f| f.slug.clone()).collect();
    slugs.sort();
    assert_eq!(slugs, ["shop-a", "shop-b"]);
    let a = store.get_function_by_slug("shop-a").await.unwrap();
    let b = store.get_function_by_slug("shop-b").await.unwrap();
    assert_eq!(a.app_id, first.app.id);
    assert_eq!(a.config, json!({"retries": 3}));
    assert_eq!(
        a.triggers,
        fdef("shop-a", json!({})).triggers,
        "triggers round-trip"
    );
    assert_eq!(store.get_function(a.id).await.unwrap(), a);
    let v1 = store.registry_version().await.unwrap();

    // Identical re-sync: nothing modified, ids stable.
    let same = store
        .sync_app(app_sync(
            "shop",
            url,
            vec![
                fdef("shop-a", json!({"retries": 3})),
                fdef("shop-b", json!({})),
            ],
            at(1),
        ))
        .await
        .unwrap();
    assert!(!same.modified, "identical re-sync is not a modification");
    assert_eq!(same.app.id, first.app.id);
    assert_eq!(store.get_function_by_slug("shop-a").await.unwrap().id, a.id);

    // Changed config, one removed, one added.
    let changed = store
        .sync_app(app_sync(
            "shop",
            url,
            vec![
                fdef("shop-a", json!({"retries": 5})),
                fdef("shop-c", json!({})),
            ],
            at(2),
        ))
        .await
        .unwrap();
    assert!(changed.modified);
    assert_eq!(changed.app.function_count, 2);
    let a2 = store.get_function_by_slug("shop-a").await.unwrap();
    assert_eq!(a2.id, a.id, "function ids are stable by slug");
    assert_eq!(a2.config, json!({"retries": 5}));
    assert_not_found(store.get_function_by_slug("shop-b").await, "removed slug");
    assert_not_found(store.get_function(b.id).await, "removed function");
    let v2 = store.registry_version().await.unwrap();
    assert_ne!(v1, v2, "registry_version changes with the function set");
    let listed: Vec<_> = store
        .list_functions()
        .await
        .unwrap()
        .into_iter()
        .map(|f| f.slug)
        .collect();
    assert_eq!(listed, ["shop-a", "shop-c"], "functions are listed by slug");

    // Another app may not take a slug that is registered.
    let other = store
        .sync_app(app_sync(
            "other",
            "http://127.0.0.1:4000/api/inngest",
            vec![fdef("other-x", json!({})), fdef("shop-a", json!({}))],
            at(3),
        ))
        .await;
    assert!(matches!(other, Err(Error::Conflict(_))), "got {other:?}");
    let apps = store.list_apps().await.unwrap();
    assert_eq!(apps.len(), 1, "a conflicting sync writes nothing: {apps:?}");
    assert_not_found(
        store.get_function_by_slug("other-x").await,
        "function of a failed sync",
    );
    assert_eq!(
        store.get_function_by_slug("shop-a").await.unwrap().app_id,
        first.app.id
    );

    // Deleting the app removes its functions and moves the version.
    store.delete_app(first.app.id).await.unwrap();
    assert_not_found(store.get_app(first.app.id).await, "deleted app");
    assert!(store.list_functions().await.unwrap().is_empty());
    assert_ne!(store.registry_version().await.unwrap(), v2);
}

/// Failed syncs create or mark an app by URL; a later successful sync merges the
/// placeholder away and clears the error.
pub async fn registry_placeholders_and_errors(store: DynStore) {
    let url = "http://127.0.0.1:3001/api/inngest";
    let placeholder = store
        .record_sync_error(url, "connection refused", at(0))
        .await
        .unwrap();
    assert_eq!(placeholder.name, url, "a placeholder is named by its URL");
    assert_eq!(placeholder.url, url);
    assert_eq!(
        placeholder.sync_error.as_deref(),
        Some("connection refused")
    );
    assert_eq!(
        (placeholder.last_synced_at, placeholder.function_count),
        (None, 0)
    );
    let again = store
        .record_sync_error(url, "timed out", at(1))
        .await
        .unwrap();
    assert_eq!(again.id, placeholder.id, "the same URL marks the same app");
    assert_eq!(
        store
            .get_app(placeholder.id)
            .await
            .unwrap()
            .sync_error
            .as_deref(),
        Some("timed out")
    );

    let synced = store
        .sync_app(app_sync(
            "billing",
            url,
            vec![fdef("billing-a", json!({}))],
            at(2),
        ))
        .await
        .unwrap();
    let apps = store.list_apps().await.unwrap();
    assert_eq!(apps.len(), 1, "the placeholder is merged away: {apps:?}");
    assert_eq!(apps[0].id, synced.app.id);
    assert_eq!(apps[0].name, "billing");
    assert_eq!(apps[0].sync_error, None);
    assert_eq!(apps[0].function_count, 1);

    // An error on a synced app's URL marks that app; the next sync clears it.
    let marked = store.record_sync_error(url, "500", at(3)).await.unwrap();
    assert_eq!(marked.id, synced.app.id);
    assert_eq!(marked.sync_error.as_deref(), Some("500"));
    assert_eq!(marked.last_synced_at, Some(at(2)));
    let cleared = store
        .sync_app(app_sync(
            "billing",
            url,
            vec![fdef("billing-a", json!({}))],
            at(4),
        ))
        .await
        .unwrap();
    assert_eq!(cleared.app.sync_error, None);
    assert_eq!(cleared.app.last_synced_at, Some(at(4)));
    assert_eq!(store.get_app(synced.app.id).await.unwrap().sync_error, None);
    assert_not_found(store.get_app(crate::AppId::new()).await, "unknown app");
}

// ---- runs and steps ---------------------------------------------------------------

/// Commits upsert steps (keeping `started_at`, max `attempts`), update the run, end
/// the item and enqueue the next; reads order memoized steps by `ended_at`.
pub async fn commit_writes_steps_and_run_updates(store: DynStore) {
    let (e1, e2) = (event("batch/item", at(0)), event("batch/item", at(0)));
    store
        .publish(
            vec![publish(e1.clone(), vec![]), publish(e2.clone(), vec![])],
            at(0),
        )
        .await
        .unwrap();
    let f = FunctionId::new();
    let run = new_run(f, vec![e2.id, e1.id], at(0));
    let run_id = run.id;
    store.create_runs(vec![run]).await.unwrap();
    assert_eq!(
        store
            .runs_for_event(e1.id)
            .await
            .unwrap()
            .iter()
            .map(|r| r.id)
            .collect::<Vec<_>>(),
        vec![run_id],
        "create_runs links events too"
    );
    let first = store
        .claim(claim(10, 60_000, at(1)))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(first.run_id, Some(run_id));

    let mut planned = step(run_id, "b-step", StepStatus::Planned, None);
    planned.attempts = 2;
    let mut commit = done(&first);
    commit.run = Some((
        run_id,
        RunUpdate {
            status: Some(RunStatus::Running),
            request_version: Some(1),
            disable_immediate_execution: Some(true),
            started_at: Some(at(1)),
            ..RunUpdate::default()
        },
    ));
    commit.steps = vec![
        step(run_id, "c-step", StepStatus::Completed, Some(at(5))),
        planned,
        step(run_id, "d-step", StepStatus::Sleeping, None),
    ];
    commit.enqueue = vec![NewQueueItem::call(run_id, f, Some("b-step".into()), at(2))];
    assert_eq!(
        commit_one(&store, commit, at(2)).await,
        CommitResult::Applied
    );

    let got = store.get_run(run_id).await.unwrap();
    assert_eq!(got.status, RunStatus::Running);
    assert_eq!(got.request_version, Some(1));
    assert!(got.disable_immediate_execution);
    assert_eq!((got.started_at, got.ended_at), (Some(at(1)), None));
    assert_eq!(got.event_ids, vec![e2.id, e1.id]);
    let items = store.run_queue_items(run_id).await.unwrap();
    assert_eq!(
        items.len(),
        1,
        "the claimed item is gone, the next is queued"
    );
    assert_eq!(items[0].step_id.as_deref(), Some("b-step"));

    // Merge: b-step completes earlier than c-step; a-step ties with b-step on ended_at.
    let next = store
        .claim(claim(10, 60_000, at(3)))
        .await
        .unwrap()
        .remove(0);
    let mut b_done = step(run_id, "b-step", StepStatus::Completed, Some(at(4)));
    b_done.started_at = Some(at(3));
    b_done.attempts = 1;
    b_done.name = "renamed".into();
    let mut commit = done(&next);
    commit.steps = vec![
        b_done,
        step(run_id, "a-step", StepStatus::Failed, Some(at(4))),
    ];
    commit.run = Some((run_id, RunUpdate::default()));
    assert_eq!(
        commit_one(&store, commit, at(4)).await,
        CommitResult::Applied
    );

    let steps = store.list_steps(run_id).await.unwrap();
    let order: Vec<_> = steps.iter().map(|s| s.step_id.as_str()).collect();
    assert_eq!(
        order,
        ["a-step", "b-step", "c-step", "d-step"],
        "memoized by ended_at, step_id first"
    );
    let b = &steps[1];
    assert_eq!(b.started_at, Some(at(1)), "started_at is kept once set");
    assert_eq!(b.attempts, 2, "the larger attempts wins");
    assert_eq!(b.name, "renamed", "other fields are overwritten");
    assert_eq!(b.status, StepStatus::Completed);
    assert_eq!(b.result, Some(json!({"data": "b-step"})));
    assert_eq!(b.ended_at, Some(at(4)));
    assert_eq!(steps[0].status, StepStatus::Failed);
    assert_eq!(
        store.get_run(run_id).await.unwrap().status,
        RunStatus::Running,
        "an empty update changes nothing"
    );

    // A memoized result is final: a stale write (planned from old state) is ignored.
    store
        .enqueue(vec![NewQueueItem::call(run_id, f, None, at(5))])
        .await
        .unwrap();
    let stale = store
        .claim(claim(10, 60_000, at(5)))
        .await
        .unwrap()
        .remove(0);
    let mut commit = done(&stale);
    commit.steps = vec![
        step(run_id, "c-step", StepStatus::Planned, None),
        step(run_id, "a-step", StepStatus::Retrying, None),
    ];
    assert_eq!(
        commit_one(&store, commit, at(5)).await,
        CommitResult::Applied
    );
    assert_eq!(
        store.list_steps(run_id).await.unwrap(),
        steps,
        "completed and failed steps keep their results"
    );

    let state = store.run_state(run_id).await.unwrap();
    assert_eq!(state.run.id, run_id);
    assert_eq!(
        state.events.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![e2.id, e1.id],
        "events in the run's order"
    );
    assert_eq!(state.events[1], e1);
    assert_eq!(state.steps, steps);
    assert_not_found(
        store.run_state(RunId::new()).await,
        "state of an unknown run",
    );
    assert_not_found(store.get_run(RunId::new()).await, "unknown run");
}

/// A terminal run update deletes the run's other items and its waits, not others'.
pub async fn terminal_status_clears_items_and_waits(store: DynStore) {
    let (run_id, first) = run_in_flight(&store, at(0)).await;
    let (other_run, other_item) = run_in_flight(&store, at(0)).await;
    let mut sleeping = item(at(100_000), 0);
    sleeping.run_id = Some(run_id);
    store.enqueue(vec![sleeping]).await.unwrap();
    let mut commit = done(&first);
    commit.waits = vec![wait(run_id, WaitKind::Event, Some("w"), "x/y", None)];
    commit.steps = vec![step(run_id, "s1", StepStatus::Completed, Some(at(1)))];
    assert_eq!(
        commit_one(&store, commit, at(1)).await,
        CommitResult::Applied
    );
    assert_eq!(store.run_waits(run_id).await.unwrap().len(), 1);
    assert_eq!(store.run_queue_items(run_id).await.unwrap().len(), 1);

    // A parallel item of the same run, in flight, is fenced off by the end of the run.
    let mut parallel = item(at(2), 0);
    parallel.run_id = Some(run_id);
    store
        .enqueue(vec![parallel.clone(), parallel])
        .await
        .unwrap();
    let claimed = store.claim(claim(10, 60_000, at(2))).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let (ender, loser) = (&claimed[0], &claimed[1]);
    let mut commit = done(ender);
    commit.run = Some((
        run_id,
        RunUpdate {
            status: Some(RunStatus::Completed),
            output: Some(json!({"total": 42})),
            ended_at: Some(at(3)),
            ..RunUpdate::default()
        },
    ));
    assert_eq!(
        commit_one(&store, commit, at(3)).await,
        CommitResult::Applied
    );
    let run = store.get_run(run_id).await.unwrap();
    assert_eq!(run.status, RunStatus::Completed);
    assert_eq!(run.output, Some(json!({"total": 42})));
    assert_eq!(run.ended_at, Some(at(3)));
    assert!(store.run_queue_items(run_id).await.unwrap().is_empty());
    assert!(store.run_waits(run_id).await.unwrap().is_empty());
    assert_eq!(
        commit_one(&store, done(loser), at(4)).await,
        CommitResult::LeaseLost
    );
    assert_eq!(
        store.list_steps(run_id).await.unwrap().len(),
        1,
        "steps are kept"
    );
    // The other run is untouched.
    assert_eq!(
        store.run_queue_items(other_run).await.unwrap(),
        vec![other_item]
    );
}

// ---- queue --------------------------------------------------------------------

/// Claims take due items by priority, then `available_at`, then id, and lease them.
pub async fn claim_orders_by_priority_time_id(store: DynStore) {
    let mut rich = item(at(2), 0);
    rich.kind = QueueKind::Cron;
    rich.function_id = Some(FunctionId::new());
    rich.step_id = Some("step-x".into());
    rich.concurrency_keys = vec!["fn:1".into(), "acct".into()];
    rich.dedupe_key = Some("cron:1".into());
    let specs = vec![
        item(at(0), 1),
        rich.clone(),
        item(at(1), 0),
        item(at(1), 0),
        item(at(3), -1),
    ];
    let ids = store.enqueue(specs).await.unwrap();
    assert_eq!(ids.len(), 5);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids grow in enqueue order"
    );

    let now = at(10);
    let first = store.claim(claim(3, 30_000, now)).await.unwrap();
    let got: Vec<_> = first.iter().map(|i| i.id).collect();
    assert_eq!(got, vec![ids[4], ids[2], ids[3]]);
    for i in &first {
        assert_eq!(i.lease_owner.as_deref(), Some("node-a"));
        assert!(i.lease_token.is_some());
        assert_eq!(i.lease_expires_at, Some(now.plus_ms(30_000)));
        assert_eq!(i.attempt, 0);
    }
    let rest = store.claim(claim(10, 30_000, now)).await.unwrap();
    assert_eq!(
        rest.iter().map(|i| i.id).collect::<Vec<_>>(),
        vec![ids[1], ids[0]]
    );
    let r = &rest[0];
    assert_eq!(r.kind, QueueKind::Cron);
    assert_eq!(
        (r.function_id, r.step_id.clone()),
        (rich.function_id, rich.step_id.clone())
    );
    assert_eq!(r.payload, rich.payload);
    assert_eq!(r.concurrency_keys, rich.concurrency_keys);
    assert_eq!(r.dedupe_key, rich.dedupe_key);
    assert_eq!(
        (r.priority, r.available_at, r.last_error.clone()),
        (0, at(2), None)
    );
    assert!(
        store
            .claim(claim(10, 30_000, now))
            .await
            .unwrap()
            .is_empty(),
        "all leased"
    );
    assert_eq!(
        store.queue_stats(now).await.unwrap(),
        QueueStats {
            due: 0,
            scheduled: 0,
            leased: 5
        }
    );
}

/// Items are never claimed before `available_at`; `next_due` tracks unleased items.
pub async fn delayed_items_wait_for_their_time(store: DynStore) {
    assert_eq!(store.next_due().await.unwrap(), None);
    let ids = store
        .enqueue(vec![item(at(1_000), 0), item(at(500), 0)])
        .await
        .unwrap();
    assert_eq!(store.next_due().await.unwrap(), Some(at(500)));
    assert!(
        store
            .claim(claim(10, 1_000, at(499)))
            .await
            .unwrap()
            .is_empty(),
        "1 ms early"
    );
    assert_eq!(
        store.queue_stats(at(499)).await.unwrap(),
        QueueStats {
            due: 0,
            scheduled: 2,
            leased: 0
        }
    );
    let got = store.claim(claim(10, 1_000, at(500))).await.unwrap();
    assert_eq!(got.iter().map(|i| i.id).collect::<Vec<_>>(), vec![ids[1]]);
    assert_eq!(
        store.next_due().await.unwrap(),
        Some(at(1_000)),
        "leased items are not due"
    );
    assert_eq!(
        store.queue_stats(at(500)).await.unwrap(),
        QueueStats {
            due: 0,
            scheduled: 1,
            leased: 1
        }
    );
    assert!(
        store
            .claim(claim(10, 1_000, at(999)))
            .await
            .unwrap()
            .is_empty()
    );
    let got = store.claim(claim(10, 1_000, at(1_000))).await.unwrap();
    assert_eq!(got.iter().map(|i| i.id).collect::<Vec<_>>(), vec![ids[0]]);
    assert_eq!(store.next_due().await.unwrap(), None);
}

/// 8 concurrent claimers drain 1,000 items: each is claimed exactly once and
/// completed through `commit`.
pub async fn concurrent_claimers_never_share_an_item(store: DynStore) {
    const ITEMS: usize = 1_000;
    const WORKERS: usize = 8;
    let mut enqueued = HashSet::new();
    for chunk in 0..4 {
        let items = (0..ITEMS / 4)
            .map(|i| item(at(((chunk * 250 + i) % 7) as i64), (i % 3) as i32))
            .collect();
        enqueued.extend(store.enqueue(items).await.unwrap());
    }
    assert_eq!(enqueued.len(), ITEMS);

    let seen: Arc<Mutex<HashSet<QueueItemId>>> = Arc::default();
    let completed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for w in 0..WORKERS {
        let (store, seen, completed) = (store.clone(), seen.clone(), completed.clone());
        tasks.push(tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while completed.load(Ordering::SeqCst) < ITEMS {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "worker {w} timed out"
                );
                let batch = store
                    .claim(Claim {
                        owner: format!("worker-{w}"),
                        limit: 7,
                        lease_ms: 600_000,
                        now: at(10),
                    })
                    .await
                    .expect("claim");
                if batch.is_empty() {
                    tokio::task::yield_now().await;
                    continue;
                }
                {
                    let mut seen = seen.lock().unwrap();
                    for i in &batch {
                        assert_eq!(
                            i.lease_owner.as_deref(),
                            Some(format!("worker-{w}").as_str())
                        );
                        assert!(seen.insert(i.id), "item {} claimed twice", i.id);
                    }
                }
                let results = store
                    .commit(batch.iter().map(done).collect(), at(11))
                    .await
                    .expect("commit");
                assert!(
                    results.iter().all(|r| *r == CommitResult::Applied),
                    "{results:?}"
                );
                completed.fetch_add(batch.len(), Ordering::SeqCst);
            }
        }));
    }
    for t in futures::future::join_all(tasks).await {
        t.expect("worker panicked");
    }
    assert_eq!(completed.load(Ordering::SeqCst), ITEMS);
    assert_eq!(*seen.lock().unwrap(), enqueued);
    assert_eq!(
        store.queue_stats(at(11)).await.unwrap(),
        QueueStats::default()
    );
}

/// An expired lease is rescued with `attempt + 1` and re-claimed; the stale holder's
/// commit writes nothing and its heartbeat reports the lease lost.
pub async fn expired_lease_rescued_and_stale_commit_refused(store: DynStore) {
    let (run_id, a) = run_in_flight(&store, at(0)).await;
    let mut second = item(at(0), 0);
    second.run_id = Some(run_id);
    store.enqueue(vec![second]).await.unwrap();
    let b = store
        .claim(claim(10, 1_000, at(0)))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(b.lease_expires_at, Some(at(1_000)));

    assert!(
        store
            .heartbeat(&[lease_of(&a)], at(5_000))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        store.rescue_expired(at(1_000)).await.unwrap(),
        0,
        "not expired at its expiry"
    );
    assert_eq!(
        store.rescue_expired(at(1_001)).await.unwrap(),
        1,
        "only b expired"
    );
    let items = store.run_queue_items(run_id).await.unwrap();
    let rescued = items.iter().find(|i| i.id == b.id).unwrap();
    assert_eq!((rescued.attempt, rescued.available_at), (1, at(1_001)));
    assert_eq!(
        (rescued.lease_token, rescued.lease_owner.clone()),
        (None, None)
    );
    let held = items.iter().find(|i| i.id == a.id).unwrap();
    assert_eq!(
        held.lease_expires_at,
        Some(at(5_000)),
        "heartbeat extended a"
    );

    assert_eq!(
        store
            .heartbeat(&[lease_of(&a), lease_of(&b)], at(6_000))
            .await
            .unwrap(),
        vec![b.id]
    );
    let b2 = store
        .claim(claim(10, 1_000, at(1_001)))
        .await
        .unwrap()
        .remove(0);
    assert_eq!((b2.id, b2.attempt), (b.id, 1));
    assert_ne!(b2.lease_token, b.lease_token, "a new claim has a new token");

    let mut stale = done(&b);
    stale.run = Some((
        run_id,
        RunUpdate {
            status: Some(RunStatus::Running),
            ..RunUpdate::default()
        },
    ));
    stale.steps = vec![step(run_id, "s", StepStatus::Completed, Some(at(2)))];
    stale.enqueue = vec![item(at(0), 0)];
    let results = store
        .commit(vec![stale, done(&b2)], at(1_002))
        .await
        .unwrap();
    assert_eq!(
        results,
        vec![CommitResult::LeaseLost, CommitResult::Applied]
    );
    assert!(
        store.list_steps(run_id).await.unwrap().is_empty(),
        "the stale commit wrote no step"
    );
    assert_eq!(
        store.get_run(run_id).await.unwrap().status,
        RunStatus::Queued
    );
    assert_eq!(
        store.queue_stats(at(1_002)).await.unwrap().due,
        0,
        "the stale commit enqueued nothing"
    );
    assert_eq!(
        store.run_queue_items(run_id).await.unwrap().len(),
        1,
        "b is done, a remains"
    );
    assert_eq!(
        commit_one(&store, done(&a), at(1_003)).await,
        CommitResult::Applied
    );
    assert_eq!(
        commit_one(&store, done(&a), at(1_004)).await,
        CommitResult::LeaseLost,
        "commit twice"
    );
}

/// Retry bumps the attempt and reschedules with the error; Release reschedules
/// without a bump; both end the lease.
/// `Disposition::Continue` keeps the item leased to the same token and rewrites it in
/// place; a stale lease cannot continue; `RunState::apply` of the same commit equals
/// the state read back.
pub async fn continue_keeps_the_lease_and_applies_like_a_read(store: DynStore) {
    let (run_id, first) = run_in_flight(&store, at(0)).await;
    let mut state = store.run_state(run_id).await.unwrap();
    let f = state.run.function_id;
    let mut next = NewQueueItem::call(run_id, f, None, at(5));
    next.payload = json!({"after": "a-step"});
    next.concurrency_keys = vec!["k".into()];
    let mut commit = Commit::new(
        lease_of(&first),
        Disposition::Continue {
            next: Box::new(next),
        },
    );
    commit.steps = vec![
        step(run_id, "a-step", StepStatus::Completed, Some(at(5))),
        step(run_id, "b-step", StepStatus::Sleeping, None),
    ];
    let update = RunUpdate {
        status: Some(RunStatus::Running),
        request_version: Some(2),
        started_at: Some(at(5)),
        ..RunUpdate::default()
    };
    commit.run = Some((run_id, update.clone()));
    assert_eq!(
        commit_one(&store, commit.clone(), at(5)).await,
        CommitResult::Applied
    );

    let items = store.run_queue_items(run_id).await.unwrap();
    assert_eq!(items.len(), 1, "the item is rewritten, not replaced");
    let it = &items[0];
    assert_eq!(it.id, first.id);
    assert_eq!(it.lease(), first.lease(), "same lease token");
    assert_eq!(
        it.lease_expires_at, first.lease_expires_at,
        "heartbeats extend it"
    );
    assert_eq!(
        (it.available_at, it.priority),
        (first.available_at, first.priority),
        "indexed columns stay"
    );
    assert_eq!((it.kind, it.step_id.as_deref()), (QueueKind::Call, None));
    assert_eq!(it.payload, json!({"after": "a-step"}));
    assert_eq!(it.attempt, 0);
    assert_eq!(it.concurrency_keys, vec!["k".to_string()]);
    assert!(
        store
            .claim(claim(10, 60_000, at(10)))
            .await
            .unwrap()
            .is_empty(),
        "a continued item stays leased"
    );

    state.apply(&commit.steps, Some(&update), at(5));
    assert_eq!(store.run_state(run_id).await.unwrap(), state);

    // The holder ends it with the same lease; a stale copy cannot continue it again.
    let stale = commit;
    assert_eq!(
        commit_one(&store, done(&first), at(20)).await,
        CommitResult::Applied
    );
    assert_eq!(
        commit_one(&store, stale, at(21)).await,
        CommitResult::LeaseLost
    );
    assert!(store.run_queue_items(run_id).await.unwrap().is_empty());
}

pub async fn retry_and_release_dispositions(store: DynStore) {
    let id = store.enqueue(vec![item(at(0), 0)]).await.unwrap()[0];
    let c = store
        .claim(claim(1, 10_000, at(0)))
        .await
        .unwrap()
        .remove(0);
    let error = json!({"name": "Error", "message": "boom"});
    let retry = Commit::new(
        lease_of(&c),
        Disposition::Retry {
            at: at(3_000),
            error: Some(error.clone()),
        },
    );
    assert_eq!(
        commit_one(&store, retry, at(1)).await,
        CommitResult::Applied
    );
    assert_eq!(store.next_due().await.unwrap(), Some(at(3_000)));
    assert!(
        store
            .claim(claim(1, 10_000, at(2_999)))
            .await
            .unwrap()
            .is_empty()
    );
    let c2 = store
        .claim(claim(1, 10_000, at(3_000)))
        .await
        .unwrap()
        .remove(0);
    assert_eq!((c2.id, c2.attempt, c2.available_at), (id, 1, at(3_000)));
    assert_eq!(c2.last_error, Some(error));

    let release = Commit::new(lease_of(&c2), Disposition::Release { at: at(4_000) });
    assert_eq!(
        commit_one(&store, release.clone(), at(3_001)).await,
        CommitResult::Applied
    );
    assert_eq!(
        commit_one(&store, release, at(3_002)).await,
        CommitResult::LeaseLost
    );
    assert_eq!(
        store.queue_stats(at(3_002)).await.unwrap(),
        QueueStats {
            due: 0,
            scheduled: 1,
            leased: 0
        }
    );
    let c3 = store
        .claim(claim(1, 10_000, at(4_000)))
        .await
        .unwrap()
        .remove(0);
    assert_eq!((c3.id, c3.attempt, c3.available_at), (id, 1, at(4_000)));
    assert_eq!(c3.lease_token.map(|_| ()), Some(()));
}

/// An item whose dedupe key exists is skipped, in a batch, across calls and in a
/// commit; the key is free again once the item is gone.
pub async fn enqueue_dedupe_key(store: DynStore) {
    let keyed = |key: &str, ms| {
        let mut i = item(at(ms), 0);
        i.dedupe_key = Some(key.to_string());
        i
    };
    let ids = store
        .enqueue(vec![keyed("k1", 0), keyed("k1", 1), item(at(2), 0)])
        .await
        .unwrap();
    assert_eq!(ids.len(), 2, "the in-batch duplicate is skipped");
    assert!(
        store
            .enqueue(vec![keyed("k1", 3)])
            .await
            .unwrap()
            .is_empty()
    );
    let claimed = store.claim(claim(10, 10_000, at(5))).await.unwrap();
    assert_eq!(claimed.len(), 2);
    let k1 = claimed.iter().find(|i| i.dedupe_key.is_some()).unwrap();
    assert_eq!((k1.id, k1.available_at), (ids[0], at(0)));

    let other = claimed.iter().find(|i| i.dedupe_key.is_none()).unwrap();
    let mut commit = done(other);
    commit.enqueue = vec![keyed("k1", 6), keyed("k2", 6)];
    assert_eq!(
        commit_one(&store, commit, at(6)).await,
        CommitResult::Applied,
        "a duplicate key does not fail a commit"
    );
    assert_eq!(
        store.queue_stats(at(6)).await.unwrap().due,
        1,
        "only k2 was added"
    );

    assert_eq!(
        commit_one(&store, done(k1), at(7)).await,
        CommitResult::Applied
    );
    assert_eq!(
        store.enqueue(vec![keyed("k1", 8)]).await.unwrap().len(),
        1,
        "the key is free again"
    );
}

// ---- waits --------------------------------------------------------------------

/// Waits are found by event name while unexpired; a resume applies once;
/// `expire_waits` keeps waits that have a timeout item.
/// `publish_unwaited` writes a batch (simple or with external ids) only when no
/// unexpired wait exists for its names; otherwise it writes nothing and hands the batch
/// back unchanged.
pub async fn publish_unwaited_writes_only_when_nobody_waits(store: DynStore) {
    use crate::Unwaited;
    let f = FunctionId::new();
    let trigger = event("order/created", at(0));
    let mut waiting = new_run(f, vec![trigger.id], at(0));
    let waiting_id = waiting.id;
    waiting.waits = vec![
        wait(
            waiting_id,
            WaitKind::Event,
            Some("s"),
            "order/paid",
            Some(at(1_000)),
        ),
        wait(
            waiting_id,
            WaitKind::Cancel,
            None,
            "order/voided",
            Some(at(100)),
        ),
    ];
    store
        .publish(vec![publish(trigger, vec![waiting])], at(0))
        .await
        .unwrap();

    // Nobody waits for these names: written, runs and all.
    let free = event("order/viewed", at(10));
    let run = new_run(f, vec![free.id], at(10));
    let run_id = run.id;
    let mut keyed = event("order/viewed", at(10));
    keyed.external_id = Some("viewed-1".into());
    let alone = event("order/shipped", at(10));
    let names = vec!["order/viewed".to_string(), "order/shipped".to_string()];
    for batch in [
        vec![publish(free.clone(), vec![run])],
        vec![publish(keyed.clone(), Vec::new())],
        vec![publish(alone.clone(), Vec::new())],
    ] {
        match store.publish_unwaited(batch, &names, at(10)).await.unwrap() {
            Unwaited::Published(p) => assert!(!p[0].duplicate),
            Unwaited::Waited(_) => panic!("no wait for these names"),
        }
    }
    assert_eq!(store.get_event(free.id).await.unwrap().name, "order/viewed");
    assert_eq!(
        store.get_event(keyed.id).await.unwrap().name,
        "order/viewed"
    );
    assert_eq!(
        store.get_event(alone.id).await.unwrap().name,
        "order/shipped"
    );
    // The same events again: duplicates, not refused.
    let again = vec![publish(alone.clone(), Vec::new())];
    match store.publish_unwaited(again, &names, at(10)).await.unwrap() {
        Unwaited::Published(p) => assert!(p[0].duplicate),
        Unwaited::Waited(_) => panic!("no wait for these names"),
    }
    assert_eq!(
        store.get_run(run_id).await.unwrap().status,
        RunStatus::Queued
    );

    // A wait (of any kind) for one of the names: nothing written, the batch comes back.
    for (name, now) in [("order/paid", at(20)), ("order/voided", at(20))] {
        let paid = event(name, now);
        let run = new_run(f, vec![paid.id], now);
        let run_id = run.id;
        let mut keyed = event(name, now);
        keyed.external_id = Some(format!("{name}-1"));
        let alone = event(name, now);
        for batch in [
            vec![publish(paid.clone(), vec![run.clone()])],
            vec![publish(keyed.clone(), Vec::new())],
            vec![publish(alone.clone(), Vec::new())],
        ] {
            let names = vec!["order/viewed".to_string(), name.to_string()];
            match store
                .publish_unwaited(batch.clone(), &names, now)
                .await
                .unwrap()
            {
                Unwaited::Waited(back) => assert_eq!(back, batch),
                Unwaited::Published(_) => panic!("{name} has a wait"),
            }
        }
        assert!(matches!(
            store.get_event(paid.id).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            store.get_event(keyed.id).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            store.get_event(alone.id).await,
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            store.get_run(run_id).await,
            Err(Error::NotFound(_))
        ));
    }

    // An expired wait does not count.
    let late = event("order/voided", at(200));
    let names = vec!["order/voided".to_string()];
    let batch = vec![publish(late.clone(), Vec::new())];
    assert!(matches!(
        store
            .publish_unwaited(batch, &names, at(200))
            .await
            .unwrap(),
        Unwaited::Published(_)
    ));
    assert!(store.get_event(late.id).await.is_ok());
}

pub async fn waits_found_by_event_and_resumed_once(store: DynStore) {
    let f = FunctionId::new();
    let trigger = event("order/created", at(0));
    let mut run = new_run(f, vec![trigger.id], at(0));
    let run_id = run.id;
    let w1 = wait(
        run_id,
        WaitKind::Event,
        Some("s1"),
        "order/paid",
        Some(at(10_000)),
    );
    let w2 = wait(
        run_id,
        WaitKind::Event,
        Some("s2"),
        "order/paid",
        Some(at(100)),
    );
    let w3 = wait(
        run_id,
        WaitKind::Invoke,
        Some("s3"),
        "inngest/function.finished",
        None,
    );
    let w4 = wait(
        run_id,
        WaitKind::Event,
        Some("s4"),
        "order/paid",
        Some(at(150)),
    );
    let w5 = wait(
        run_id,
        WaitKind::Cancel,
        None,
        "order/cancelled",
        Some(at(150)),
    );
    run.waits = vec![w1.clone(), w2.clone(), w3.clone(), w4.clone(), w5.clone()];
    store
        .publish(vec![publish(trigger, vec![run])], at(0))
        .await
        .unwrap();
    let mut timeout = item(at(150), 0);
    timeout.kind = QueueKind::WaitTimeout;
    timeout.run_id = Some(run_id);
    timeout.step_id = Some("s4".into());
    store.enqueue(vec![timeout]).await.unwrap();

    let ids = |ws: Vec<crate::Wait>| {
        let mut v: Vec<_> = ws.into_iter().map(|w| w.id).collect();
        v.sort();
        v
    };
    let mut want = vec![w1.id, w4.id];
    want.sort();
    assert_eq!(
        ids(store
            .waits_for_events(&["order/paid".into()], at(120))
            .await
            .unwrap()),
        want
    );
    let mut want = vec![w1.id, w3.id];
    want.sort();
    assert_eq!(
        ids(store
            .waits_for_events(
                &["order/paid".into(), "inngest/function.finished".into()],
                at(200)
            )
            .await
            .unwrap()),
        want,
        "expired waits are not returned"
    );
    let found = store
        .waits_for_events(&["inngest/function.finished".into()], at(200))
        .await
        .unwrap();
    assert_eq!(found, vec![w3.clone()], "waits round-trip");
    assert!(
        store
            .waits_for_events(&["nope".into()], at(0))
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        store.expire_waits(at(200)).await.unwrap(),
        2,
        "w2 and the cancel watch go"
    );
    let mut left = ids(store.run_waits(run_id).await.unwrap());
    let mut want = vec![w1.id, w3.id, w4.id];
    want.sort();
    left.sort();
    assert_eq!(left, want, "w4 has a timeout item and stays");

    // Resume w1 with an event; a second resume of the same wait is skipped.
    let resume = |result: Value| Resume {
        wait_id: w1.id,
        run_id,
        step: StepRecord {
            result: Some(result),
            ..step(run_id, "s1", StepStatus::Completed, Some(at(300)))
        },
        next: NewQueueItem::call(run_id, f, None, at(300)),
    };
    let before = store.run_queue_items(run_id).await.unwrap().len();
    let mut p = publish(event("order/paid", at(300)), vec![]);
    p.resumes = vec![resume(json!({"first": true}))];
    store.publish(vec![p], at(300)).await.unwrap();
    let mut p = publish(event("order/paid", at(301)), vec![]);
    p.resumes = vec![resume(json!({"second": true}))];
    store.publish(vec![p], at(301)).await.unwrap();
    let steps = store.list_steps(run_id).await.unwrap();
    assert_eq!(steps.len(), 1);
    assert_eq!(
        steps[0].result,
        Some(json!({"first": true})),
        "only the first resume applied"
    );
    assert_eq!(
        store.run_queue_items(run_id).await.unwrap().len(),
        before + 1,
        "one continuation"
    );
    assert!(
        !store
            .run_waits(run_id)
            .await
            .unwrap()
            .iter()
            .any(|w| w.id == w1.id),
        "the wait is consumed"
    );
}

/// A commit with `require_wait` applies and consumes the wait when present, and
/// only ends the item (`Skipped`) when the wait is gone.
pub async fn require_wait_skips_when_gone(store: DynStore) {
    let f = FunctionId::new();
    let (run_id, first) = run_in_flight(&store, at(0)).await;
    let w1 = wait(
        run_id,
        WaitKind::Event,
        Some("s1"),
        "x/done",
        Some(at(1_000)),
    );
    let w2 = wait(
        run_id,
        WaitKind::Event,
        Some("s2"),
        "x/done",
        Some(at(1_000)),
    );
    let timeout_for = |s: &str| {
        let mut t = item(at(1_000), 0);
        t.kind = QueueKind::WaitTimeout;
        t.run_id = Some(run_id);
        t.step_id = Some(s.to_string());
        t
    };
    let mut commit = done(&first);
    commit.waits = vec![w1.clone(), w2.clone()];
    commit.enqueue = vec![timeout_for("s1"), timeout_for("s2")];
    assert_eq!(
        commit_one(&store, commit, at(1)).await,
        CommitResult::Applied
    );

    // w1 times out while it still exists: applied, wait consumed.
    let timeouts = store.claim(claim(10, 60_000, at(1_000))).await.unwrap();
    assert_eq!(timeouts.len(), 2);
    let t1 = timeouts
        .iter()
        .find(|t| t.step_id.as_deref() == Some("s1"))
        .unwrap();
    let t2 = timeouts
        .iter()
        .find(|t| t.step_id.as_deref() == Some("s2"))
        .unwrap();
    let timed_out = |t: &QueueItem, wait_id: WaitId, s: &str| {
        let mut c = done(t);
        c.require_wait = Some(wait_id);
        c.steps = vec![StepRecord {
            result: Some(Value::Null),
            ..step(run_id, s, StepStatus::Completed, Some(at(1_000)))
        }];
        c.enqueue = vec![NewQueueItem::call(run_id, f, None, at(1_000))];
        c
    };
    assert_eq!(
        commit_one(&store, timed_out(t1, w1.id, "s1"), at(1_000)).await,
        CommitResult::Applied
    );
    assert_eq!(store.run_waits(run_id).await.unwrap(), vec![w2.clone()]);
    assert_eq!(store.list_steps(run_id).await.unwrap().len(), 1);

    // w2 is resumed by an event first; its timeout then only ends the item.
    let mut p = publish(event("x/done", at(1_000)), vec![]);
    p.resumes = vec![Resume {
        wait_id: w2.id,
        run_id,
        step: step(run_id, "s2", StepStatus::Completed, Some(at(1_000))),
        next: NewQueueItem::call(run_id, f, None, at(1_000)),
    }];
    store.publish(vec![p], at(1_000)).await.unwrap();
    let queued_before = store.run_queue_items(run_id).await.unwrap();
    assert_eq!(
        commit_one(&store, timed_out(t2, w2.id, "s2"), at(1_001)).await,
        CommitResult::Skipped
    );
    let queued_after = store.run_queue_items(run_id).await.unwrap();
    assert_eq!(
        queued_after.len(),
        queued_before.len() - 1,
        "the timeout item ended, nothing enqueued"
    );
    assert!(!queued_after.iter().any(|i| i.id == t2.id));
    let s2 = store
        .list_steps(run_id)
        .await
        .unwrap()
        .into_iter()
        .find(|s| s.step_id == "s2")
        .unwrap();
    assert_eq!(
        s2.result,
        Some(json!({"data": "s2"})),
        "the skipped commit wrote no step"
    );
}

/// Cancelling deletes a run's items and waits, fences its in-flight holder, and
/// leaves ended runs alone; a publish can cancel too.
pub async fn cancel_runs_clears_and_fences(store: DynStore) {
    let (r1, in_flight) = run_in_flight(&store, at(0)).await;
    let (r2, r2_item) = run_in_flight(&store, at(0)).await;
    let mut commit = done(&r2_item);
    commit.run = Some((
        r2,
        RunUpdate {
            status: Some(RunStatus::Failed),
            error: Some(json!({"message": "no"})),
            ended_at: Some(at(1)),
            ..RunUpdate::default()
        },
    ));
    assert_eq!(
        commit_one(&store, commit, at(1)).await,
        CommitResult::Applied
    );
    let mut sleeping = item(at(50_000), 0);
    sleeping.run_id = Some(r1);
    store.enqueue(vec![sleeping]).await.unwrap();
    let mut p = publish(event("x", at(2)), vec![]);
    let mut r3 = new_run(FunctionId::new(), vec![p.event.id], at(2));
    r3.waits = vec![wait(r3.id, WaitKind::Cancel, None, "x/cancel", None)];
    let r3_id = r3.id;
    p.runs = vec![r3];
    store.publish(vec![p], at(2)).await.unwrap();

    let cancelled = store
        .cancel_runs(&[r1, r2, RunId::new()], at(10))
        .await
        .unwrap();
    assert_eq!(
        cancelled,
        vec![r1],
        "only unended, existing runs are cancelled"
    );
    let run = store.get_run(r1).await.unwrap();
    assert_eq!(
        (run.status, run.ended_at),
        (RunStatus::Cancelled, Some(at(10)))
    );
    assert_eq!(store.get_run(r2).await.unwrap().status, RunStatus::Failed);
    assert!(store.run_queue_items(r1).await.unwrap().is_empty());
    let mut late = done(&in_flight);
    late.steps = vec![step(r1, "s", StepStatus::Completed, Some(at(11)))];
    assert_eq!(
        commit_one(&store, late, at(11)).await,
        CommitResult::LeaseLost
    );
    assert!(store.list_steps(r1).await.unwrap().is_empty());
    assert!(
        store.cancel_runs(&[r1], at(12)).await.unwrap().is_empty(),
        "cancel is once"
    );

    let mut p = publish(event("x/cancel", at(20)), vec![]);
    p.cancels = vec![r3_id];
    store.publish(vec![p], at(20)).await.unwrap();
    let run = store.get_run(r3_id).await.unwrap();
    assert_eq!(
        (run.status, run.ended_at),
        (RunStatus::Cancelled, Some(at(20)))
    );
    assert!(store.run_queue_items(r3_id).await.unwrap().is_empty());
    assert!(store.run_waits(r3_id).await.unwrap().is_empty());
    assert_eq!(
        store.queue_stats(at(20)).await.unwrap(),
        QueueStats::default()
    );
}

// ---- listings -------------------------------------------------------------------

/// Follows `next` cursors to the end, asserting pages never overlap.
async fn collect_pages<T, F, Fut>(
    limit: u32,
    mut fetch: F,
    id: impl Fn(&T) -> String,
) -> Vec<String>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: std::future::Future<Output = crate::Result<crate::Page<T>>>,
{
    let mut out = Vec::new();
    let mut cursor = None;
    for _ in 0..100 {
        let page = fetch(cursor.clone()).await.expect("page");
        assert!(page.items.len() <= limit as usize, "page over its limit");
        out.extend(page.items.iter().map(&id));
        match page.next {
            Some(next) => {
                assert_eq!(Some(&next), out.last(), "next is the last item's id");
                cursor = Some(next);
            }
            None => return out,
        }
    }
    panic!("pagination did not end");
}

/// Run listings: newest first, filtered by status, function and creation time,
/// paged by cursor.
pub async fn list_runs_filters_and_pages(store: DynStore) {
    let (fa, fb) = (FunctionId::new(), FunctionId::new());
    let mut runs = Vec::new();
    for i in 0..25 {
        runs.push(new_run(
            if i % 2 == 0 { fa } else { fb },
            vec![],
            at(i * 10),
        ));
    }
    store.create_runs(runs.clone()).await.unwrap();
    let newest_first: Vec<String> = runs.iter().rev().map(|r| r.id.to_string()).collect();
    let to_cancel: Vec<RunId> = runs.iter().step_by(5).map(|r| r.id).collect();
    store.cancel_runs(&to_cancel, at(1_000)).await.unwrap();

    let page = |filter: RunFilter| {
        let store = store.clone();
        move |cursor: Option<String>| {
            let store = store.clone();
            let mut filter = filter.clone();
            filter.cursor = cursor.map(|c| c.parse().expect("cursor is a run id"));
            async move { store.list_runs(filter).await }
        }
    };
    let all = collect_pages(
        10,
        page(RunFilter {
            limit: 10,
            ..RunFilter::default()
        }),
        |r: &crate::Run| r.id.to_string(),
    )
    .await;
    assert_eq!(all, newest_first);
    let first = store
        .list_runs(RunFilter {
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(first.items.len(), 10);
    assert!(first.next.is_some());

    let only_a = collect_pages(
        4,
        page(RunFilter {
            function_id: Some(fa),
            limit: 4,
            ..RunFilter::default()
        }),
        |r: &crate::Run| r.id.to_string(),
    )
    .await;
    let want: Vec<String> = runs
        .iter()
        .rev()
        .filter(|r| r.function_id == fa)
        .map(|r| r.id.to_string())
        .collect();
    assert_eq!(only_a, want);

    let cancelled = store
        .list_runs(RunFilter {
            statuses: vec![RunStatus::Cancelled],
            limit: 100,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    let want: Vec<RunId> = to_cancel.iter().rev().copied().collect();
    assert_eq!(
        cancelled.items.iter().map(|r| r.id).collect::<Vec<_>>(),
        want
    );
    assert_eq!(cancelled.next, None, "a short page is the last");
    let either = store
        .list_runs(RunFilter {
            statuses: vec![RunStatus::Cancelled, RunStatus::Queued],
            function_id: Some(fb),
            limit: 100,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(either.items.len(), 12);

    let window = store
        .list_runs(RunFilter {
            created_after: Some(at(55)),
            created_before: Some(at(125)),
            limit: 100,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    let want: Vec<RunId> = runs[6..=12].iter().rev().map(|r| r.id).collect();
    assert_eq!(window.items.iter().map(|r| r.id).collect::<Vec<_>>(), want);

    // Text search: a run id, one of its event ids, or part of its event's name.
    let (order, refund) = (event("shop/order", at(300)), event("shop/refund", at(301)));
    store
        .publish(
            vec![
                publish(order.clone(), vec![]),
                publish(refund.clone(), vec![]),
            ],
            at(301),
        )
        .await
        .unwrap();
    let (by_order, by_refund) = (
        new_run(fa, vec![order.id], at(302)),
        new_run(fa, vec![refund.id], at(303)),
    );
    store
        .create_runs(vec![by_order.clone(), by_refund.clone()])
        .await
        .unwrap();
    let search = |q: &str| {
        let store = store.clone();
        let q = q.to_owned();
        async move {
            store
                .list_runs(RunFilter {
                    search: Some(q),
                    limit: 100,
                    ..RunFilter::default()
                })
                .await
                .unwrap()
                .items
                .into_iter()
                .map(|r| r.id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(search("refund").await, vec![by_refund.id], "by event name");
    assert_eq!(
        search("shop/").await,
        vec![by_refund.id, by_order.id],
        "part of a name"
    );
    assert_eq!(search(&order.id.to_string()).await, vec![by_order.id]);
    assert_eq!(search(&runs[3].id.to_string()).await, vec![runs[3].id]);
    assert_eq!(search("Shop/").await, Vec::<RunId>::new(), "case-sensitive");
    assert_eq!(search("nothing-like-it").await, Vec::<RunId>::new());
}

/// Event listings: newest first, internal events hidden unless asked, filtered by
/// name and time, paged by cursor.
pub async fn list_events_filters_and_pages(store: DynStore) {
    let mut events = Vec::new();
    for i in 0..23 {
        let name = match i % 3 {
            0 => "shop/order",
            1 => "shop/refund",
            _ => "inngest/function.finished",
        };
        events.push(event(name, at(i * 10)));
    }
    store
        .publish(
            events.iter().map(|e| publish(e.clone(), vec![])).collect(),
            at(300),
        )
        .await
        .unwrap();

    let page = |filter: EventFilter| {
        let store = store.clone();
        move |cursor: Option<String>| {
            let store = store.clone();
            let mut filter = filter.clone();
            filter.cursor = cursor.map(|c| c.parse().expect("cursor is an event id"));
            async move { store.list_events(filter).await }
        }
    };
    let eid = |e: &Event| e.id.to_string();
    let user: Vec<String> = events
        .iter()
        .rev()
        .filter(|e| !e.name.starts_with("inngest/"))
        .map(eid)
        .collect();
    assert_eq!(
        collect_pages(
            5,
            page(EventFilter {
                limit: 5,
                ..EventFilter::default()
            }),
            eid
        )
        .await,
        user
    );
    let everything: Vec<String> = events.iter().rev().map(eid).collect();
    assert_eq!(
        collect_pages(
            7,
            page(EventFilter {
                include_internal: true,
                limit: 7,
                ..EventFilter::default()
            }),
            eid
        )
        .await,
        everything
    );
    let refunds: Vec<String> = events
        .iter()
        .rev()
        .filter(|e| e.name == "shop/refund")
        .map(eid)
        .collect();
    assert_eq!(
        collect_pages(
            3,
            page(EventFilter {
                names: vec!["shop/refund".into()],
                limit: 3,
                ..EventFilter::default()
            }),
            eid
        )
        .await,
        refunds
    );
    let window = store
        .list_events(EventFilter {
            received_after: Some(at(45)),
            received_before: Some(at(105)),
            include_internal: true,
            limit: 100,
            ..EventFilter::default()
        })
        .await
        .unwrap();
    let want: Vec<EventId> = events[5..=10].iter().rev().map(|e| e.id).collect();
    assert_eq!(window.items.iter().map(|e| e.id).collect::<Vec<_>>(), want);
    assert_eq!(window.items[0], events[10], "listed events round-trip");
}

// ---- leases, kv, retention, wake-ups ------------------------------------------------

/// One owner at a time per name, renewable, taken over after expiry, given up by
/// its holder only.
pub async fn leader_lease_exclusive_and_expiring(store: DynStore) {
    let lead = |name: &'static str, owner: &'static str, ms: i64| {
        let store = store.clone();
        async move { store.try_lead(name, owner, 1_000, at(ms)).await.unwrap() }
    };
    assert!(lead("cron", "a", 0).await);
    assert!(!lead("cron", "b", 500).await);
    assert!(lead("rescuer", "b", 500).await, "names are independent");
    assert!(lead("cron", "a", 900).await, "renewal until 1900");
    assert!(!lead("cron", "b", 1_500).await, "renewed lease still held");
    assert!(
        lead("cron", "b", 1_901).await,
        "expired lease is taken over"
    );
    assert!(!lead("cron", "a", 1_902).await);
    store.resign("cron", "a").await.unwrap();
    assert!(
        !lead("cron", "a", 1_903).await,
        "a non-holder cannot resign"
    );
    store.resign("cron", "b").await.unwrap();
    assert!(lead("cron", "a", 1_904).await, "resigned lease is free");
}

pub async fn kv_round_trip(store: DynStore) {
    assert_eq!(store.kv_get("settings").await.unwrap(), None);
    store
        .kv_put("settings", json!({"a": [1, 2.5, "x"], "b": null}))
        .await
        .unwrap();
    store.kv_put("counter", json!(7)).await.unwrap();
    assert_eq!(
        store.kv_get("settings").await.unwrap(),
        Some(json!({"a": [1, 2.5, "x"], "b": null}))
    );
    store.kv_put("settings", json!("replaced")).await.unwrap();
    assert_eq!(
        store.kv_get("settings").await.unwrap(),
        Some(json!("replaced"))
    );
    assert_eq!(store.kv_get("counter").await.unwrap(), Some(json!(7)));
}

/// Pruning removes ended runs (with steps) and events received before the cut,
/// and nothing newer or still running.
pub async fn prune_removes_old_history(store: DynStore) {
    let old_event = event("old", at(0));
    let new_event = event("new", at(100_000));
    store
        .publish(
            vec![
                publish(old_event.clone(), vec![]),
                publish(new_event.clone(), vec![]),
            ],
            at(100_000),
        )
        .await
        .unwrap();
    let end = |item: &QueueItem, run: RunId, ended: i64| {
        let mut c = done(item);
        c.run = Some((
            run,
            RunUpdate {
                status: Some(RunStatus::Completed),
                ended_at: Some(at(ended)),
                ..RunUpdate::default()
            },
        ));
        c.steps = vec![step(run, "s", StepStatus::Completed, Some(at(ended)))];
        c
    };
    let (old_done, i1) = run_in_flight(&store, at(0)).await;
    assert_eq!(
        commit_one(&store, end(&i1, old_done, 10), at(10)).await,
        CommitResult::Applied
    );
    let (old_running, _) = run_in_flight(&store, at(0)).await;
    let (new_done, i3) = run_in_flight(&store, at(0)).await;
    assert_eq!(
        commit_one(&store, end(&i3, new_done, 100_000), at(100_000)).await,
        CommitResult::Applied
    );

    assert!(store.prune(at(50_000)).await.unwrap() >= 2);
    assert_not_found(store.get_event(old_event.id).await, "pruned event");
    assert_not_found(store.get_run(old_done).await, "pruned run");
    assert!(store.list_steps(old_done).await.unwrap().is_empty());
    assert_eq!(store.get_event(new_event.id).await.unwrap(), new_event);
    assert_eq!(
        store.get_run(old_running).await.unwrap().status,
        RunStatus::Queued
    );
    assert_eq!(store.list_steps(new_done).await.unwrap().len(), 1);
    assert_eq!(
        store.prune(at(50_000)).await.unwrap(),
        0,
        "nothing left to prune"
    );
}

/// A registered wake callback hears of items made available by an enqueue and by
/// a retry, with their `available_at`.
pub async fn subscribe_wakes_after_available(store: DynStore) {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    store
        .subscribe(Arc::new(move |at: Millis| {
            let _ = tx.send(at);
        }))
        .await
        .unwrap();
    store
        .enqueue(vec![item(at(123), 0), item(at(456), 0)])
        .await
        .unwrap();
    expect_wake(&mut rx, at(123)).await;
    let c = store
        .claim(claim(1, 10_000, at(200)))
        .await
        .unwrap()
        .remove(0);
    let retry = Commit::new(
        lease_of(&c),
        Disposition::Retry {
            at: at(789),
            error: None,
        },
    );
    assert_eq!(
        commit_one(&store, retry, at(201)).await,
        CommitResult::Applied
    );
    expect_wake(&mut rx, at(789)).await;
}

async fn expect_wake(rx: &mut tokio::sync::mpsc::UnboundedReceiver<Millis>, want: Millis) {
    let got = tokio::time::timeout(Duration::from_secs(2), async {
        while let Some(at) = rx.recv().await {
            if at == want {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(got, Ok(true), "no wake-up for {want:?} within 2 s");
}
