//! The Rust SDK test app: functions built with `sluice_sdk`, served in-process by axum
//! on 127.0.0.1 for the end-to-end tests in `rust_sdk.rs`.
//!
//! Every function's id, trigger and output is listed in [`functions`]. Step closures
//! count their executions in [`Calls`] (per run and step), so a test can tell a
//! memoized step from one that ran again.
//!
//! [`TsCaller`] is the other direction: `ts_caller.js`, a one-function app on the
//! official TS SDK that invokes this app's `child` by reference.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde_json::{Value, json};
use sluice_sdk::flow::Cancel;
use sluice_sdk::{
    App, Client, Config, Error, Event, Function, FunctionFailed, Input, Invoke, Mode, Step,
    Trigger, WaitForEvent,
};

use crate::support::app::{Target, repo_root};
use crate::support::process::{Proc, free_port};

/// The app id the Rust test app registers under.
pub const APP_ID: &str = "e2e-rust";
/// The app id of `ts_caller.js`.
pub const TS_CALLER_APP_ID: &str = "e2e-ts-caller";

/// Every function id (without the app prefix) the app registers.
pub const FUNCTIONS: &[&str] = &[
    "chain",
    "parallel",
    "sleeper",
    "waiter",
    "child",
    "invoker",
    "sender",
    "sent-item",
    "flaky",
    "non-retriable",
    "recovers",
    "always-fails",
    "always-fails-failure",
    "cancellable",
];

/// How many times each step closure ran: `(run id, step id)` → count.
#[derive(Debug, Clone, Default)]
pub struct Calls(Arc<Mutex<HashMap<(String, String), u32>>>);

impl Calls {
    /// Counts one execution; the count so far (1 on the first).
    fn bump(&self, run_id: &str, step: &str) -> u32 {
        let mut map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = map
            .entry((run_id.to_string(), step.to_string()))
            .or_insert(0);
        *n += 1;
        *n
    }

    /// How many times `step`'s closure ran in `run_id`.
    pub fn get(&self, run_id: &str, step: &str) -> u32 {
        let map = self.0.lock().unwrap_or_else(|e| e.into_inner());
        map.get(&(run_id.to_string(), step.to_string()))
            .copied()
            .unwrap_or(0)
    }
}

/// The app, served until dropped.
#[derive(Debug)]
pub struct RustApp {
    pub port: u16,
    /// The SDK client the app uses (also how tests send events).
    pub client: Client,
    pub calls: Calls,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for RustApp {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl RustApp {
    /// Serves the app on a free port, configured for `target` (dev mode without keys,
    /// cloud mode with them); the TS app `ts_app` is the target of cross-SDK invokes.
    pub async fn start(target: &Target, ts_app: &str) -> anyhow::Result<RustApp> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .context("bind the Rust app")?;
        let port = listener.local_addr()?.port();
        let config = Config::new(APP_ID)
            .base_url(&target.base)
            .serve_origin(format!("http://127.0.0.1:{port}"));
        let config = match &target.keys {
            None => config.mode(Mode::Dev),
            Some(keys) => config
                .mode(Mode::Cloud)
                .signing_key(&keys.signing)
                .event_key(&keys.event),
        };
        let client = Client::new(config);
        let calls = Calls::default();
        let mut app = App::new(client.clone());
        for function in functions(&calls, ts_app) {
            app = app.function(function);
        }
        let router = app.router();
        let server = tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                eprintln!("the Rust test app stopped: {e}");
            }
        });
        Ok(RustApp {
            port,
            client,
            calls,
            server,
        })
    }

    /// The SDK's serve URL.
    pub fn serve_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/inngest", self.port)
    }

    /// Syncs: `PUT <serve url>`, after which the SDK registers with the server.
    pub async fn sync(&self) -> anyhow::Result<()> {
        put(&self.serve_url(), "the Rust app").await
    }

    /// Sends one event through the SDK client; its id.
    pub async fn send(&self, name: &str, data: Value) -> anyhow::Result<String> {
        let sent = self
            .client
            .send(Event::new(name, data))
            .await
            .map_err(|e| anyhow::anyhow!("the SDK client's send of {name}: {e}"))?;
        anyhow::ensure!(sent.ids.len() == 1, "send of one event answered {sent:?}");
        Ok(sent.ids[0].clone())
    }
}

/// `ts_caller.js` (npm `inngest` 4.x from examples/typescript), a child process.
#[derive(Debug)]
pub struct TsCaller {
    pub port: u16,
    /// Killed on drop (its log printed if the test is failing).
    _proc: Proc,
}

impl TsCaller {
    /// Starts the app on a free port, configured for `target`, and waits until it
    /// answers `GET /ready`.
    pub async fn start(target: &Target, dir: &std::path::Path) -> anyhow::Result<TsCaller> {
        let package = repo_root().join("examples/typescript");
        anyhow::ensure!(
            package.join("node_modules/inngest").exists(),
            "examples/typescript/node_modules is missing: run scripts/sdk-deps first"
        );
        let port = free_port();
        let mut cmd = std::process::Command::new("node");
        cmd.arg(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/rust_app/ts_caller.js"),
        )
        .arg(package);
        target.configure(&mut cmd, port);
        cmd.env("RUST_APP_ID", APP_ID);
        let mut proc = Proc::spawn("ts-caller", cmd, &dir.join("ts-caller.log"))?;
        let http = reqwest::Client::new();
        let url = format!("http://127.0.0.1:{port}/ready");
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = proc.exited() {
                anyhow::bail!("ts-caller exited during start-up with {status}");
            }
            let ready = http.get(&url).timeout(Duration::from_secs(2)).send().await;
            if ready.is_ok_and(|r| r.status().is_success()) {
                return Ok(TsCaller { port, _proc: proc });
            }
            anyhow::ensure!(
                std::time::Instant::now() < deadline,
                "ts-caller did not answer GET {url} within 30s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Syncs: `PUT <serve url>`.
    pub async fn sync(&self) -> anyhow::Result<()> {
        put(
            &format!("http://127.0.0.1:{}/api/inngest", self.port),
            "ts-caller",
        )
        .await
    }
}

/// `PUT url` (an SDK sync), expecting success.
async fn put(url: &str, what: &str) -> anyhow::Result<()> {
    let resp = reqwest::Client::new()
        .put(url)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .with_context(|| format!("PUT {url} ({what})"))?;
    let status = resp.status();
    let text = resp.text().await.unwrap_or_default();
    anyhow::ensure!(
        status.is_success(),
        "sync of {what} answered {status}: {text}"
    );
    Ok(())
}

fn int(data: &Value, field: &str) -> i64 {
    data[field].as_i64().unwrap_or_default()
}

/// The app's functions. `ts_app` is the TS app whose `child` the invoker calls.
pub fn functions(calls: &Calls, ts_app: &str) -> Vec<Function> {
    let ts_app = ts_app.to_string();
    vec![
        // Two sequential steps; the second uses the first's memoized result.
        Function::new("chain")
            .trigger(Trigger::event("rs/chain"))
            .handler({
                let calls = calls.clone();
                move |input: Input, step: Step| {
                    let calls = calls.clone();
                    async move {
                        let run = input.run_id.clone();
                        let n = int(&input.event.data, "n");
                        let a: Value = step
                            .run("a", || async {
                                calls.bump(&run, "a");
                                Ok(json!({"v": n + 1}))
                            })
                            .await?;
                        let b: i64 = step
                            .run("b", || async {
                                calls.bump(&run, "b");
                                Ok(a["v"].as_i64().unwrap_or_default() * 2)
                            })
                            .await?;
                        Ok(json!({"a": a, "b": b}))
                    }
                }
            }),
        // `join` of two steps of different types, `join_all` of three, then one more.
        Function::new("parallel")
            .trigger(Trigger::event("rs/parallel"))
            .handler({
                let calls = calls.clone();
                move |input: Input, step: Step| {
                    let calls = calls.clone();
                    async move {
                        let run = input.run_id.as_str();
                        let calls = &calls;
                        let (x, y): (String, u32) = step
                            .join(
                                step.run("p1", || async move {
                                    calls.bump(run, "p1");
                                    Ok("one".to_string())
                                }),
                                step.run("p2", || async move {
                                    calls.bump(run, "p2");
                                    Ok(2u32)
                                }),
                            )
                            .await?;
                        let group: Vec<_> = ["q0", "q1", "q2"]
                            .into_iter()
                            .enumerate()
                            .map(|(i, id)| {
                                step.run(id, move || async move {
                                    calls.bump(run, id);
                                    Ok(i as i64 * 10)
                                })
                            })
                            .collect();
                        let qs: Vec<i64> = step.join_all(group).await?;
                        let z: String = step
                            .run("after", || async {
                                calls.bump(run, "after");
                                Ok(format!("{x}+{y}+{}", qs.iter().sum::<i64>()))
                            })
                            .await?;
                        Ok(json!({"x": x, "y": y, "qs": qs, "z": z}))
                    }
                }
            }),
        // `sleep`, then `sleep_until` the event's `until_ms`.
        Function::new("sleeper")
            .trigger(Trigger::event("rs/sleep"))
            .handler(|input: Input, step: Step| async move {
                step.sleep("nap", Duration::from_secs(1)).await?;
                let until =
                    chrono::DateTime::from_timestamp_millis(int(&input.event.data, "until_ms"))
                        .ok_or_else(|| Error::non_retriable("until_ms is out of range"))?;
                step.sleep_until("until", until).await?;
                Ok("awake")
            }),
        // Waits for `rs/wait.reply` with the same `data.id`, at most `timeout_ms`.
        Function::new("waiter")
            .trigger(Trigger::event("rs/wait.start"))
            .handler(|input: Input, step: Step| async move {
                let timeout = Duration::from_millis(int(&input.event.data, "timeout_ms") as u64);
                let reply: Option<Event> = step
                    .wait_for_event(
                        "reply",
                        WaitForEvent::new("rs/wait.reply", timeout).matching("data.id"),
                    )
                    .await?;
                Ok(json!({"got": reply.map(|e| e.data["v"].clone())}))
            }),
        // Only ever invoked.
        Function::new("child")
            .trigger(Trigger::event("rs/child.never-sent"))
            .handler(|input: Input, _step: Step| async move {
                Ok(json!({"tripled": int(&input.event.data, "x") * 3}))
            }),
        // Invokes the Rust `child`, then the TS app's `child` (which doubles).
        Function::new("invoker")
            .trigger(Trigger::event("rs/invoke"))
            .handler(move |input: Input, step: Step| {
                let ts_app = ts_app.clone();
                async move {
                    let x = int(&input.event.data, "x");
                    let rust: Value = step
                        .invoke("call-rust", Invoke::function("child").data(json!({"x": x})))
                        .await?;
                    let ts: Value = step
                        .invoke(
                            "call-ts",
                            Invoke::app_function(ts_app, "child")
                                .data(json!({"x": x}))
                                .timeout(Duration::from_secs(60)),
                        )
                        .await?;
                    Ok(json!({"rust": rust, "ts": ts}))
                }
            }),
        // Sends two events from a step; they fan out to `sent-item`.
        Function::new("sender")
            .trigger(Trigger::event("rs/send"))
            .handler(|input: Input, step: Step| async move {
                let batch = input.event.data["batch"].clone();
                let sent = step
                    .send_event(
                        "emit",
                        vec![
                            Event::new("rs/sent.item", json!({"i": 1, "batch": batch})),
                            Event::new("rs/sent.item", json!({"i": 2, "batch": batch})),
                        ],
                    )
                    .await?;
                Ok(json!({"sent": sent.ids.len()}))
            }),
        Function::new("sent-item")
            .trigger(Trigger::event("rs/sent.item"))
            .handler(|input: Input, _step: Step| async move { Ok(input.event.data["i"].clone()) }),
        // Fails on the first attempt, succeeds on the second.
        Function::new("flaky")
            .trigger(Trigger::event("rs/flaky"))
            .retries(2)
            .handler({
                let calls = calls.clone();
                move |input: Input, step: Step| {
                    let calls = calls.clone();
                    async move {
                        let attempt = input.attempt;
                        let out: String = step
                            .run("flaky", || async {
                                calls.bump(&input.run_id, "flaky");
                                if attempt == 0 {
                                    return Err(Error::retriable("the first attempt fails"));
                                }
                                Ok(format!("ok on attempt {attempt}"))
                            })
                            .await?;
                        Ok(json!({"result": out}))
                    }
                }
            }),
        // A non-retriable step error fails the run at once, despite `retries(3)`.
        Function::new("non-retriable")
            .trigger(Trigger::event("rs/non-retriable"))
            .retries(3)
            .handler({
                let calls = calls.clone();
                move |input: Input, step: Step| {
                    let calls = calls.clone();
                    async move {
                        step.run("fatal", || async {
                            calls.bump(&input.run_id, "fatal");
                            Err::<(), _>(Error::non_retriable("not retrying this"))
                        })
                        .await?;
                        Ok("unreachable")
                    }
                }
            }),
        // Catches a step's final failure and completes anyway.
        Function::new("recovers")
            .trigger(Trigger::event("rs/recovers"))
            .retries(3)
            .handler(|_input: Input, step: Step| async move {
                let failed = step
                    .run("fatal", || async {
                        Err::<(), _>(Error::non_retriable("bad input"))
                    })
                    .await;
                match failed {
                    Err(Error::StepFailed(f)) => {
                        Ok(json!({"recovered": f.message(), "name": f.name()}))
                    }
                    Err(e) => Err(e),
                    Ok(()) => Ok(json!({"recovered": null})),
                }
            }),
        // Always fails (two attempts), then its `on_failure` handler runs.
        Function::new("always-fails")
            .trigger(Trigger::event("rs/always-fails"))
            .retries(1)
            .on_failure(|input: Input<FunctionFailed>, _step: Step| async move {
                let data = input.event.data;
                Ok(json!({
                    "failed_fn": data.function_id,
                    "failed_run": data.run_id,
                    "message": data.error.message,
                }))
            })
            .handler(|_input: Input, step: Step| async move {
                step.run("boom", || async {
                    Err::<(), _>(Error::retriable("always fails"))
                })
                .await?;
                Ok("unreachable")
            }),
        // Sleeps a minute unless `rs/cancel` with the same `data.id` arrives.
        Function::new("cancellable")
            .trigger(Trigger::event("rs/cancellable"))
            .cancel_on(Cancel::new("rs/cancel").condition("async.data.id == event.data.id"))
            .handler(|_input: Input, step: Step| async move {
                step.sleep("long", Duration::from_secs(60)).await?;
                Ok("woke")
            }),
    ]
}
