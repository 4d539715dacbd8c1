//! Live updates for the dashboard: `GET /v1/stream`, Server-Sent Events.
//!
//! One poller per process (a [`Feed`]) reads the newest events and runs, the steps of
//! runs still going, and the apps, every [`FeedOptions::interval`] — only while at least
//! one client listens — and broadcasts what changed as [`Notice`]s to every client.
//! Clients then refetch what they show. Other components may [`Feed::publish`] notices
//! directly when they know of a change first.
//!
//! A client that falls behind the broadcast buffer gets a [`Notice::Resync`] and should
//! refetch everything it shows.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Weak};
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use futures::Stream;
use serde::Serialize;
use sluice_core::{EventId, FunctionId, Millis, RunId, RunStatus};
use sluice_store::{App, DynStore, Event, EventFilter, Run, RunFilter, Step};
use tokio::sync::broadcast;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::wrappers::errors::BroadcastStreamRecvError;

/// How the poller behind a [`Feed`] works.
#[derive(Debug, Clone)]
pub struct FeedOptions {
    /// Time between two polls of the store (while clients listen).
    pub interval: Duration,
    /// How many of the newest events and runs each poll reads.
    pub window: u32,
    /// At most this many unfinished runs have their steps checked per poll.
    pub active_runs: usize,
    /// Notices buffered per client before it must resync.
    pub buffer: usize,
}

impl Default for FeedOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(500),
            window: 100,
            active_runs: 25,
            buffer: 1024,
        }
    }
}

/// A change, as clients are told of it. Serialized as `{"kind": "...", ...}`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Notice {
    /// A new event was received.
    Event {
        id: EventId,
        name: String,
        received_at: Millis,
    },
    /// A run was created or its status changed.
    Run {
        id: RunId,
        function_id: FunctionId,
        status: RunStatus,
    },
    /// A running run's steps changed (a step finished, slept, retried, …).
    Steps { run_id: RunId },
    /// Apps or functions changed (a sync, a sync error, a deletion).
    Apps,
    /// The client missed notices: refetch everything.
    Resync,
}

struct Inner {
    tx: broadcast::Sender<Notice>,
    /// The store to poll and how, until the poller starts (on the first subscriber).
    poller: std::sync::Mutex<Option<(DynStore, FeedOptions)>>,
}

/// The shared change feed: cheap to clone; the poller stops when the last clone is
/// dropped.
#[derive(Clone)]
pub struct Feed {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("receivers", &self.inner.tx.receiver_count())
            .finish()
    }
}

impl Feed {
    /// A feed with no poller: only [`Feed::publish`] feeds it (tests, or wiring that
    /// hooks notices in itself).
    pub fn manual(buffer: usize) -> Self {
        let (tx, _) = broadcast::channel(buffer.max(1));
        Self {
            inner: Arc::new(Inner {
                tx,
                poller: std::sync::Mutex::new(None),
            }),
        }
    }

    /// A feed fed by polling `store`. The poller is spawned (on the caller's tokio
    /// runtime) when the first client subscribes, so building a router needs no
    /// runtime.
    pub fn polling(store: DynStore, options: FeedOptions) -> Self {
        let feed = Self::manual(options.buffer);
        if let Ok(mut p) = feed.inner.poller.lock() {
            *p = Some((store, options));
        }
        feed
    }

    /// Tells every listening client of `notice`.
    pub fn publish(&self, notice: Notice) {
        // No receivers is fine: nobody is watching.
        let _ = self.inner.tx.send(notice);
    }

    /// A receiver of the notices published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Notice> {
        let rx = self.inner.tx.subscribe();
        let start = self.inner.poller.lock().ok().and_then(|mut p| p.take());
        if let Some((store, options)) = start {
            tokio::spawn(poll_loop(store, options, Arc::downgrade(&self.inner)));
        }
        rx
    }
}

async fn poll_loop(store: DynStore, options: FeedOptions, feed: Weak<Inner>) {
    let mut snapshot = Snapshot::default();
    let mut ticker = tokio::time::interval(options.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        ticker.tick().await;
        let Some(inner) = feed.upgrade() else { return };
        if inner.tx.receiver_count() == 0 {
            // Nobody listens: forget the baseline so the next client starts fresh.
            snapshot = Snapshot::default();
            continue;
        }
        match read_view(&store, &options, &snapshot).await {
            Ok(view) => {
                failing = false;
                for notice in snapshot.apply(view) {
                    let _ = inner.tx.send(notice);
                }
            }
            Err(error) => {
                if !failing {
                    tracing::warn!(%error, "live feed: cannot read the store; retrying");
                }
                failing = true;
            }
        }
    }
}

async fn read_view(
    store: &DynStore,
    options: &FeedOptions,
    snapshot: &Snapshot,
) -> sluice_store::Result<View> {
    let events = store
        .list_events(EventFilter {
            include_internal: true,
            limit: options.window,
            ..EventFilter::default()
        })
        .await?
        .items;
    let runs = store
        .list_runs(RunFilter {
            limit: options.window,
            ..RunFilter::default()
        })
        .await?
        .items;
    let mut steps = Vec::new();
    for run in runs
        .iter()
        .filter(|r| !r.status.is_terminal() || snapshot.is_active(r.id))
        .take(options.active_runs)
    {
        steps.push((run.id, store.list_steps(run.id).await?));
    }
    let apps = store.list_apps().await?;
    Ok(View {
        events,
        runs,
        steps,
        apps,
    })
}

/// What one poll read.
#[derive(Debug, Default)]
struct View {
    /// Newest first.
    events: Vec<Event>,
    /// Newest first.
    runs: Vec<Run>,
    /// Steps of unfinished runs.
    steps: Vec<(RunId, Vec<Step>)>,
    apps: Vec<App>,
}

/// What the poller last saw, to tell what changed.
#[derive(Debug, Default)]
struct Snapshot {
    baseline: bool,
    newest_event: Option<EventId>,
    runs: HashMap<RunId, RunStatus>,
    steps: HashMap<RunId, u64>,
    apps: u64,
}

impl Snapshot {
    fn is_active(&self, run: RunId) -> bool {
        self.steps.contains_key(&run)
    }

    /// Records `view` and returns the notices for what changed since the last one
    /// (nothing for the first view, which is the baseline).
    fn apply(&mut self, view: View) -> Vec<Notice> {
        let mut out = Vec::new();
        let first = !self.baseline;
        self.baseline = true;

        // Events: everything newer than the newest seen, oldest first.
        let fresh: Vec<&Event> = view
            .events
            .iter()
            .take_while(|e| self.newest_event.is_none_or(|n| e.id.0 > n.0))
            .collect();
        if let Some(newest) = view.events.first() {
            if self.newest_event.is_none_or(|n| newest.id.0 > n.0) {
                self.newest_event = Some(newest.id);
            }
        }
        if !first {
            out.extend(fresh.iter().rev().map(|e| Notice::Event {
                id: e.id,
                name: e.name.clone(),
                received_at: e.received_at,
            }));
        }

        // Runs: new ones and status changes, oldest first.
        let mut runs = HashMap::with_capacity(view.runs.len());
        for run in view.runs.iter().rev() {
            if !first && self.runs.get(&run.id) != Some(&run.status) {
                out.push(Notice::Run {
                    id: run.id,
                    function_id: run.function_id,
                    status: run.status,
                });
            }
            runs.insert(run.id, run.status);
        }

        // Steps of unfinished runs (a run's last step change may land with its end).
        let mut steps = HashMap::with_capacity(view.steps.len());
        for (run, list) in &view.steps {
            let print = fingerprint(list);
            if !first && self.steps.get(run).is_some_and(|old| *old != print) {
                out.push(Notice::Steps { run_id: *run });
            }
            steps.insert(*run, print);
        }
        // Keep watching only runs that are still going.
        steps.retain(|run, _| runs.get(run).is_some_and(|s| !s.is_terminal()));
        self.steps = steps;
        self.runs = runs;

        let apps = fingerprint_apps(&view.apps);
        if !first && apps != self.apps {
            out.push(Notice::Apps);
        }
        self.apps = apps;
        out
    }
}

/// A cheap hash of what the dashboard shows of a run's steps.
fn fingerprint(steps: &[Step]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for s in steps {
        s.step_id.hash(&mut h);
        s.status.as_str().hash(&mut h);
        s.attempts.hash(&mut h);
        s.ended_at.map(|t| t.0).hash(&mut h);
    }
    h.finish()
}

fn fingerprint_apps(apps: &[App]) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    for a in apps {
        a.id.0.hash(&mut h);
        a.updated_at.0.hash(&mut h);
        a.function_count.hash(&mut h);
        a.sync_error.hash(&mut h);
        a.last_synced_at.map(|t| t.0).hash(&mut h);
    }
    h.finish()
}

/// `GET /v1/stream`: the feed as Server-Sent Events, one JSON [`Notice`] per message.
pub async fn sse(
    State(feed): State<Feed>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let stream = BroadcastStream::new(feed.subscribe()).map(|item| {
        let notice = match item {
            Ok(notice) => notice,
            Err(BroadcastStreamRecvError::Lagged(_)) => Notice::Resync,
        };
        let data = serde_json::to_string(&notice).unwrap_or_else(|_| "{}".into());
        Ok(SseEvent::default().data(data))
    });
    // Tell the client it is connected (and that it should load what it shows).
    let hello =
        futures::stream::once(async { Ok(SseEvent::default().data(r#"{"kind":"hello"}"#)) });
    Sse::new(hello.chain(stream)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use sluice_core::AppId;
    use sluice_store::StepStatus;

    fn event(id: u128, name: &str) -> Event {
        Event {
            id: EventId(ulid::Ulid(id)),
            external_id: None,
            name: name.into(),
            data: json!({}),
            user: json!({}),
            version: None,
            ts: Millis(1),
            received_at: Millis(id as i64),
        }
    }

    fn run(id: u128, status: RunStatus) -> Run {
        Run {
            id: RunId(ulid::Ulid(id)),
            function_id: FunctionId(uuid::Uuid::nil()),
            status,
            event_ids: vec![],
            output: None,
            error: None,
            request_version: None,
            disable_immediate_execution: false,
            correlation_id: None,
            rerun_of: None,
            created_at: Millis(1),
            started_at: None,
            ended_at: None,
        }
    }

    fn step(run: u128, id: &str, status: StepStatus, attempts: i32) -> Step {
        Step {
            run_id: RunId(ulid::Ulid(run)),
            step_id: id.into(),
            name: id.into(),
            op: "StepRun".into(),
            status,
            result: None,
            error: None,
            attempts,
            opts: None,
            created_at: Millis(1),
            started_at: None,
            ended_at: None,
        }
    }

    fn app(updated: i64, error: Option<&str>) -> App {
        App {
            id: AppId(uuid::Uuid::nil()),
            name: "a".into(),
            url: "http://x".into(),
            sdk: None,
            framework: None,
            function_count: 1,
            last_synced_at: None,
            sync_error: error.map(str::to_owned),
            created_at: Millis(0),
            updated_at: Millis(updated),
        }
    }

    fn rid(id: u128) -> RunId {
        RunId(ulid::Ulid(id))
    }

    #[test]
    fn snapshot_reports_only_changes_after_the_baseline() {
        use RunStatus::*;
        let mut s = Snapshot::default();
        let kinds = |n: &[Notice]| -> Vec<String> {
            n.iter()
                .map(|n| match n {
                    Notice::Event { name, .. } => format!("event {name}"),
                    Notice::Run { id, status, .. } => format!("run {} {status}", id.0.0),
                    Notice::Steps { run_id } => format!("steps {}", run_id.0.0),
                    Notice::Apps => "apps".into(),
                    Notice::Resync => "resync".into(),
                })
                .collect()
        };
        // (events newest first, runs newest first, steps, apps) -> expected notices
        let cases: Vec<(View, Vec<&str>)> = vec![
            // Baseline: nothing reported, however much there is.
            (
                View {
                    events: vec![event(2, "b"), event(1, "a")],
                    runs: vec![run(10, Running), run(9, Completed)],
                    steps: vec![(rid(10), vec![step(10, "s1", StepStatus::Completed, 1)])],
                    apps: vec![app(1, None)],
                },
                vec![],
            ),
            // Same again: still nothing.
            (
                View {
                    events: vec![event(2, "b"), event(1, "a")],
                    runs: vec![run(10, Running), run(9, Completed)],
                    steps: vec![(rid(10), vec![step(10, "s1", StepStatus::Completed, 1)])],
                    apps: vec![app(1, None)],
                },
                vec![],
            ),
            // Two new events (reported oldest first), a new run, a step retry, an app error.
            (
                View {
                    events: vec![event(4, "d"), event(3, "c"), event(2, "b")],
                    runs: vec![run(11, Queued), run(10, Running), run(9, Completed)],
                    steps: vec![
                        (rid(11), vec![]),
                        (
                            rid(10),
                            vec![
                                step(10, "s1", StepStatus::Completed, 1),
                                step(10, "s2", StepStatus::Retrying, 1),
                            ],
                        ),
                    ],
                    apps: vec![app(2, Some("down"))],
                },
                vec!["event c", "event d", "run 11 queued", "steps 10", "apps"],
            ),
            // Run 10 ends (its final step change is reported too), run 11 starts.
            (
                View {
                    events: vec![event(4, "d")],
                    runs: vec![run(11, Running), run(10, Failed), run(9, Completed)],
                    steps: vec![
                        (rid(11), vec![]),
                        (
                            rid(10),
                            vec![
                                step(10, "s1", StepStatus::Completed, 1),
                                step(10, "s2", StepStatus::Failed, 2),
                            ],
                        ),
                    ],
                    apps: vec![app(2, Some("down"))],
                },
                vec!["run 10 failed", "run 11 running", "steps 10"],
            ),
        ];
        for (i, (view, want)) in cases.into_iter().enumerate() {
            assert_eq!(kinds(&s.apply(view)), want, "poll {i}");
        }
        // Run 10 ended, so its steps are no longer watched; 11 still is.
        assert!(!s.is_active(rid(10)) && s.is_active(rid(11)));
    }

    #[tokio::test]
    async fn sse_greets_then_streams_published_notices() {
        use axum::body::Body;
        use http::Request;
        use tower::ServiceExt;

        let feed = Feed::manual(8);
        let app = axum::Router::new()
            .route("/v1/stream", axum::routing::get(sse))
            .with_state(feed.clone());
        let resp = app
            .oneshot(Request::get("/v1/stream").body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(resp.headers()["content-type"], "text/event-stream");
        feed.publish(Notice::Steps { run_id: rid(7) });
        let mut body = resp.into_body().into_data_stream();
        let mut text = String::new();
        while !text.contains("steps") {
            let chunk = tokio::time::timeout(Duration::from_secs(5), body.next())
                .await
                .expect("a notice within 5s")
                .expect("stream open")
                .unwrap();
            text.push_str(std::str::from_utf8(&chunk).unwrap());
        }
        assert!(text.starts_with("data: {\"kind\":\"hello\"}\n\n"), "{text}");
        let want = format!("data: {{\"kind\":\"steps\",\"run_id\":\"{}\"}}\n\n", rid(7));
        assert!(text.ends_with(&want), "{text}");
    }
}
