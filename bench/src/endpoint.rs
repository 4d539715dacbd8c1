//! The function endpoint the server calls: three functions built on the Rust SDK
//! (`sluice-sdk`) and a [`Recorder`] of when each run's calls arrived.
//!
//! The functions are ordinary [`sluice_sdk::Function`]s served by
//! [`sluice_sdk::App::router`]; the app registers itself the way SDKs do, through a
//! sync `PUT` to its serve URL ([`Endpoint::sync`]), after which the SDK posts its
//! register body to the server's `/fn/register`. With a signing key (the server's
//! `start` mode) the SDK runs in cloud mode: it verifies every call's signature and
//! signs its replies. A thin axum middleware around the SDK's router timestamps each
//! call and reads only the event's `data.n` from the body, the key of the recorder.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::IgnoredAny;
use sluice_sdk::{App, Client, Config, Input, Mode, Step, Trigger};

use crate::client::Conn;

/// The app id the endpoint registers under.
pub const APP_ID: &str = "bench";
/// The path the endpoint serves on.
pub const SERVE_PATH: &str = "/api/inngest";
/// How long [`Function::Sleep`] sleeps.
pub const SLEEP: Duration = Duration::from_secs(2);
/// How many steps [`Function::TenSteps`] runs.
pub const TEN: usize = 10;
/// A wait gives up when no call has arrived for this long (longer than [`SLEEP`]).
pub const STALL: Duration = Duration::from_secs(10);

/// The benchmark's functions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Function {
    /// One `step.run` that returns at once, then the function returns.
    OneStep,
    /// `step.sleep` for [`SLEEP`], then the function returns.
    Sleep,
    /// [`TEN`] `step.run`s, one per call (the classic path), then the function returns.
    TenSteps,
}

impl Function {
    const ALL: [Function; 3] = [Function::OneStep, Function::Sleep, Function::TenSteps];

    /// The function id within the app.
    fn id(self) -> &'static str {
        match self {
            Function::OneStep => "one-step",
            Function::Sleep => "sleep",
            Function::TenSteps => "ten-steps",
        }
    }

    /// The event name that triggers the function.
    pub fn event(self) -> &'static str {
        match self {
            Function::OneStep => "bench/one-step",
            Function::Sleep => "bench/sleep",
            Function::TenSteps => "bench/ten-steps",
        }
    }

    /// The function as the SDK serves it (no retries: a failure would skew a figure).
    fn sdk(self) -> sluice_sdk::Function {
        let builder = sluice_sdk::Function::new(self.id())
            .trigger(Trigger::event(self.event()))
            .retries(0);
        match self {
            Function::OneStep => builder.handler(one_step),
            Function::Sleep => builder.handler(sleep),
            Function::TenSteps => builder.handler(ten_steps),
        }
    }
}

/// The event data is not needed by the functions; `IgnoredAny` skips decoding it.
type Ignored = Input<IgnoredAny>;

/// A step's work: nothing, at once.
async fn done() -> sluice_sdk::Result<bool> {
    Ok(true)
}

async fn one_step(_: Ignored, step: Step) -> sluice_sdk::Result<()> {
    step.run("s", done).await?;
    Ok(())
}

async fn sleep(_: Ignored, step: Step) -> sluice_sdk::Result<()> {
    step.sleep("z", SLEEP).await?;
    Ok(())
}

async fn ten_steps(_: Ignored, step: Step) -> sluice_sdk::Result<()> {
    for i in 0..TEN {
        step.run(&format!("s{i}"), done).await?;
    }
    Ok(())
}

/// When the calls of one run (keyed by the event's `data.n`) reached the endpoint.
#[derive(Debug, Default, Clone, Copy)]
pub struct Trace {
    /// The first call's arrival.
    pub first_call: Option<Instant>,
    /// When the first call's reply was handed to the HTTP server.
    pub first_reply: Option<Instant>,
    /// The second call's arrival.
    pub second_call: Option<Instant>,
    /// When the function's final `200` was handed to the HTTP server.
    pub finished: Option<Instant>,
}

/// Call arrival times, shared by the endpoint and the load generator.
#[derive(Debug, Default)]
pub struct Recorder {
    traces: Mutex<HashMap<u64, Trace>>,
    finished: AtomicU64,
    calls: AtomicU64,
}

impl Recorder {
    /// How many runs have finished (answered `200`) so far.
    pub fn finished(&self) -> u64 {
        self.finished.load(Ordering::Relaxed)
    }

    /// The trace of the run for event `n`.
    pub fn trace(&self, n: u64) -> Option<Trace> {
        self.traces.lock().expect("recorder lock").get(&n).copied()
    }

    /// Waits until `target` runs have finished in all, `timeout` passes, or no call has
    /// arrived for [`STALL`]; returns the count reached.
    pub async fn wait_finished(&self, target: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        let mut seen = (self.calls.load(Ordering::Relaxed), Instant::now());
        loop {
            let done = self.finished();
            let now = Instant::now();
            let calls = self.calls.load(Ordering::Relaxed);
            if calls != seen.0 {
                seen = (calls, now);
            }
            if done >= target || now >= deadline || now - seen.1 > STALL {
                return done;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    fn record(&self, n: u64, arrived: Instant, finished: bool) {
        let now = Instant::now();
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut traces = self.traces.lock().expect("recorder lock");
        let trace = traces.entry(n).or_default();
        if trace.first_call.is_none() {
            trace.first_call = Some(arrived);
            trace.first_reply = Some(now);
        } else if trace.second_call.is_none() {
            trace.second_call = Some(arrived);
        }
        if finished && trace.finished.is_none() {
            trace.finished = Some(now);
            self.finished.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// The part of a call body the recorder reads: `event.data.n`.
#[derive(Debug, Deserialize)]
struct CallBody {
    event: CallEvent,
}

#[derive(Debug, Deserialize)]
struct CallEvent {
    data: CallData,
}

#[derive(Debug, Deserialize)]
struct CallData {
    n: u64,
}

/// Timestamps a `POST` call around the SDK's handling of it; records it when the SDK
/// answered `206` (a step) or `200` (the function returned).
async fn record(State(recorder): State<Arc<Recorder>>, request: Request, next: Next) -> Response {
    let arrived = Instant::now();
    if request.method() != Method::POST {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(bytes) => bytes,
        Err(_) => return StatusCode::BAD_REQUEST.into_response(),
    };
    let n = serde_json::from_slice::<CallBody>(&bytes)
        .ok()
        .map(|c| c.event.data.n);
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let status = response.status();
    if let Some(n) = n
        && (status == StatusCode::OK || status == StatusCode::PARTIAL_CONTENT)
    {
        recorder.record(n, arrived, status == StatusCode::OK);
    }
    response
}

/// The running endpoint.
#[derive(Debug)]
pub struct Endpoint {
    /// The serve URL the app registers (`http://127.0.0.1:<port>/api/inngest`).
    pub url: String,
    /// The address it listens on (IPv4).
    pub addr: SocketAddr,
    /// Arrival times of calls.
    pub recorder: Arc<Recorder>,
}

impl Endpoint {
    /// Serves the app on a free loopback port (IPv4 and, when available, the same port
    /// on IPv6: the server normalises `127.0.0.1` to `localhost`, which may resolve to
    /// `::1`). `api_origin` is the server's URL (`http://127.0.0.1:<port>`), where the
    /// sync registers. With `signing_key` the SDK is in cloud mode (calls must be
    /// signed with it, replies are signed with it); without, in dev mode.
    pub async fn start(api_origin: &str, signing_key: Option<&str>) -> Result<Self> {
        let v4 = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("cannot bind the endpoint")?;
        let addr = v4.local_addr()?;
        let origin = format!("http://127.0.0.1:{}", addr.port());
        let config = Config::new(APP_ID)
            .api_base_url(api_origin)
            .event_api_base_url(api_origin)
            .serve_origin(&origin)
            .serve_path(SERVE_PATH);
        let config = match signing_key {
            Some(key) => config.mode(Mode::Cloud).signing_key(key),
            None => config.mode(Mode::Dev),
        };
        let recorder = Arc::new(Recorder::default());
        let app = Function::ALL
            .into_iter()
            .fold(App::new(Client::new(config)), |app, f| {
                app.function(f.sdk())
            })
            .router()
            .layer(middleware::from_fn_with_state(recorder.clone(), record));
        if let Ok(v6) =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, addr.port())))
                .await
        {
            let app = app.clone();
            tokio::spawn(async move { axum::serve(v6, app).await });
        }
        tokio::spawn(async move { axum::serve(v4, app).await });
        Ok(Self {
            url: format!("{origin}{SERVE_PATH}"),
            addr,
            recorder,
        })
    }

    /// Syncs the app as a user would after deploying: `PUT` to its serve URL, and the
    /// SDK registers its functions with the server (`POST /fn/register`, with the
    /// signing key's Bearer hash in cloud mode). Fails unless the sync answered `200`.
    pub async fn sync(&self) -> Result<()> {
        let mut conn = Conn::connect(self.addr).await?;
        let reply = conn.request("PUT", SERVE_PATH, &[], &[]).await?;
        if reply.status != 200 {
            bail!(
                "the sync (PUT {}) answered {}: {}",
                self.url,
                reply.status,
                String::from_utf8_lossy(&reply.body)
            );
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::Json;
    use axum::http::HeaderMap;
    use axum::routing::post;
    use serde_json::{Value, json};
    use sluice_protocol::{SigningKey, signing, step_id_hash, to_canonical_vec};

    /// What a fake server's `/fn/register` received: the `authorization` header and body.
    type Registered = Arc<Mutex<Vec<(Option<String>, Value)>>>;

    /// A stand-in for the server's `/fn/register`; returns its origin and what it got.
    async fn fake_server() -> (String, Registered) {
        let got: Registered = Arc::default();
        let sink = got.clone();
        let app = axum::Router::new().route(
            "/fn/register",
            post(
                move |headers: HeaderMap, Json(body): Json<Value>| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_owned);
                    sink.lock().unwrap().push((auth, body));
                    Json(json!({ "ok": true, "modified": true }))
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (origin, got)
    }

    /// A call body as the executor sends it, in canonical JSON (what gets signed).
    fn call_body(n: u64, steps: &[String]) -> Vec<u8> {
        let steps: serde_json::Map<String, Value> = steps
            .iter()
            .map(|id| (id.clone(), json!({ "data": true })))
            .collect();
        to_canonical_vec(&json!({
            "ctx": { "run_id": "01J0000000000000000000000R", "attempt": 0,
                     "disable_immediate_execution": false, "use_api": false },
            "event": { "name": "bench/x", "data": { "n": n } },
            "events": [], "steps": steps, "use_api": false, "version": 1,
        }))
    }

    fn path(function: Function) -> String {
        format!("{SERVE_PATH}?fnId={APP_ID}-{}&stepId=step", function.id())
    }

    /// Syncs through the SDK, then drives each function through its calls as the
    /// executor would and checks the replies and the recorded trace.
    #[tokio::test]
    async fn sdk_functions_sync_answer_step_by_step_and_record_arrivals() {
        let (origin, registered) = fake_server().await;
        let endpoint = Endpoint::start(&origin, None).await.unwrap();
        endpoint.sync().await.unwrap();
        {
            let registered = registered.lock().unwrap();
            let [(auth, body)] = registered.as_slice() else {
                panic!("one register expected, got {registered:?}");
            };
            assert_eq!(*auth, None, "dev mode sends no key");
            assert_eq!(body["url"], endpoint.url);
            assert_eq!(body["appName"], APP_ID);
            let functions = body["functions"].as_array().unwrap();
            let ids: Vec<&str> = functions
                .iter()
                .map(|f| f["id"].as_str().unwrap())
                .collect();
            assert_eq!(ids, ["bench-one-step", "bench-sleep", "bench-ten-steps"]);
            assert_eq!(functions[1]["triggers"][0]["event"], "bench/sleep");
            let url = functions[0]["steps"]["step"]["runtime"]["url"]
                .as_str()
                .unwrap();
            assert!(url.starts_with(&endpoint.url), "{url}");
            assert!(url.contains("fnId=bench-one-step"), "{url}");
        }

        let mut conn = Conn::connect(endpoint.addr).await.unwrap();
        let ten: Vec<String> = (0..TEN)
            .map(|i| step_id_hash(&format!("s{i}"), 0))
            .collect();
        type Calls<'a> = Vec<(Vec<String>, u16, &'a str)>;
        let cases: Vec<(Function, u64, Calls<'_>)> = vec![
            (
                Function::OneStep,
                1,
                vec![
                    (vec![], 206, "\"StepRun\""),
                    (vec![step_id_hash("s", 0)], 200, "null"),
                ],
            ),
            (
                Function::Sleep,
                2,
                vec![
                    (vec![], 206, "\"2s\""),
                    (vec![step_id_hash("z", 0)], 200, "null"),
                ],
            ),
            (
                Function::TenSteps,
                3,
                vec![
                    (vec![], 206, &ten[0]),
                    (ten[..9].to_vec(), 206, &ten[9]),
                    (ten.clone(), 200, "null"),
                ],
            ),
        ];
        for (function, n, calls) in &cases {
            assert!(endpoint.recorder.trace(*n).is_none());
            for (steps, status, needle) in calls {
                let reply = conn
                    .request("POST", &path(*function), &[], &call_body(*n, steps))
                    .await
                    .unwrap();
                let body = String::from_utf8(reply.body.clone()).unwrap();
                assert_eq!(reply.status, *status, "{function:?} {body}");
                assert!(body.contains(needle), "{function:?}: {body} lacks {needle}");
                assert!(reply.header("x-inngest-sdk").is_some());
            }
            let trace = endpoint.recorder.trace(*n).unwrap();
            assert!(trace.first_call.unwrap() <= trace.first_reply.unwrap());
            assert!(trace.first_reply.unwrap() <= trace.second_call.unwrap());
            assert!(trace.second_call.unwrap() <= trace.finished.unwrap());
        }
        assert_eq!(endpoint.recorder.finished(), 3);
        assert_eq!(endpoint.recorder.calls.load(Ordering::Relaxed), 7);

        // An unknown function is the SDK's 500 and is not recorded.
        let unknown = conn
            .request(
                "POST",
                &format!("{SERVE_PATH}?fnId=x&stepId=step"),
                &[],
                &call_body(9, &[]),
            )
            .await
            .unwrap();
        assert_eq!(unknown.status, 500);
        assert!(endpoint.recorder.trace(9).is_none());
    }

    /// In cloud mode the SDK refuses unsigned, wrongly or stalely signed calls (not
    /// recorded), signs its replies, and syncs with the key's Bearer hash.
    #[tokio::test]
    async fn cloud_mode_verifies_calls_signs_replies_and_syncs_with_the_key() {
        let raw = "signkey-test-00ff00ff";
        let key = SigningKey::new(raw).unwrap();
        let other = SigningKey::new("signkey-test-11ee11ee").unwrap();
        let (origin, registered) = fake_server().await;
        let endpoint = Endpoint::start(&origin, Some(raw)).await.unwrap();
        endpoint.sync().await.unwrap();
        let auth = registered.lock().unwrap()[0].0.clone();
        assert_eq!(auth, Some(format!("Bearer {}", key.bearer().unwrap())));

        let mut conn = Conn::connect(endpoint.addr).await.unwrap();
        let body = call_body(1, &[]);
        let now = unix_now();
        let cases = [
            (None, 401),
            (Some(signing::sign(&body, &other, now)), 401),
            (Some(signing::sign(&body, &key, now - 3600)), 401),
            (Some(signing::sign(&body, &key, now)), 206),
        ];
        for (signature, status) in cases {
            let headers: Vec<(&str, &str)> = signature
                .as_deref()
                .map(|s| ("x-inngest-signature", s))
                .into_iter()
                .collect();
            let path = path(Function::OneStep);
            let reply = conn.request("POST", &path, &headers, &body).await.unwrap();
            assert_eq!(reply.status, status, "{signature:?}");
            let trace = endpoint.recorder.trace(1);
            assert_eq!(trace.is_some(), status == 206, "{signature:?}");
            if status == 206 {
                let sig = reply.header("x-inngest-signature").unwrap();
                let keys = std::slice::from_ref(&key);
                let now = unix_now();
                assert!(signing::verify(sig, &reply.body, keys, now, Some(60)).is_ok());
            }
        }
    }

    fn unix_now() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64)
    }
}
