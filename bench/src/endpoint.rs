//! The function endpoint the server calls: three functions answering at once, and a
//! [`Recorder`] of when each run's calls arrived.
//!
//! The SDK crate (`sluice-sdk`) has no serve handler yet, so this is a minimal
//! hand-rolled axum handler speaking the wire protocol: a new step is answered with
//! `206 [op]`, a finished function with `200`, and every reply carries
//! `x-inngest-sdk`. With a signing key (the server's `start` mode) it checks each
//! call's `x-inngest-signature` and signs its replies, as SDKs do.

use std::collections::HashMap;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};
use sluice_protocol::{SigningKey, signing, step_id_hash};

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
const SDK_HEADER: &str = "rust:v0.1.0-bench";

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

    /// The composite id the server calls with (`fnId=`).
    fn slug(self) -> String {
        format!("{APP_ID}-{}", self.id())
    }

    /// The event name that triggers the function.
    pub fn event(self) -> &'static str {
        match self {
            Function::OneStep => "bench/one-step",
            Function::Sleep => "bench/sleep",
            Function::TenSteps => "bench/ten-steps",
        }
    }
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

/// Replies prepared once: the op lists and step ids.
#[derive(Debug)]
struct Script {
    one_step_id: String,
    one_step_reply: Bytes,
    sleep_id: String,
    sleep_reply: Bytes,
    ten_ids: Vec<String>,
    ten_replies: Vec<Bytes>,
}

impl Script {
    fn new() -> Self {
        let step_run = |name: &str| {
            json!([{ "op": "StepRun", "id": step_id_hash(name, 0), "name": name,
                     "displayName": name, "opts": {}, "userland": { "id": name },
                     "data": { "ok": true } }])
        };
        let bytes = |v: Value| Bytes::from(serde_json::to_vec(&v).expect("json"));
        let ten_names: Vec<String> = (0..TEN).map(|i| format!("s{i}")).collect();
        Self {
            one_step_id: step_id_hash("s", 0),
            one_step_reply: bytes(step_run("s")),
            sleep_id: step_id_hash("z", 0),
            sleep_reply: bytes(json!([{ "op": "Sleep", "id": step_id_hash("z", 0),
                "name": "2s", "displayName": "z", "opts": {}, "userland": { "id": "z" },
                "data": null }])),
            ten_ids: ten_names.iter().map(|n| step_id_hash(n, 0)).collect(),
            ten_replies: ten_names.iter().map(|n| bytes(step_run(n))).collect(),
        }
    }
}

#[derive(Debug)]
struct Shared {
    recorder: Arc<Recorder>,
    script: Script,
    key: Option<SigningKey>,
}

/// The running endpoint.
#[derive(Debug)]
pub struct Endpoint {
    /// The serve URL to register (`http://127.0.0.1:<port>/api/inngest`).
    pub url: String,
    /// Arrival times of calls.
    pub recorder: Arc<Recorder>,
}

impl Endpoint {
    /// Serves on a free loopback port (IPv4 and, when available, the same port on IPv6:
    /// the server normalises `127.0.0.1` to `localhost`, which may resolve to `::1`).
    /// With `key`, calls must be signed with it and replies are signed with it.
    pub async fn start(key: Option<SigningKey>) -> Result<Self> {
        let recorder = Arc::new(Recorder::default());
        let shared = Arc::new(Shared {
            recorder: recorder.clone(),
            script: Script::new(),
            key,
        });
        let app = Router::new()
            .route(SERVE_PATH, post(call))
            .with_state(shared);
        let v4 = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("cannot bind the endpoint")?;
        let port = v4.local_addr()?.port();
        if let Ok(v6) =
            tokio::net::TcpListener::bind(SocketAddr::from((Ipv6Addr::LOCALHOST, port))).await
        {
            let app = app.clone();
            tokio::spawn(async move { axum::serve(v6, app).await });
        }
        tokio::spawn(async move { axum::serve(v4, app).await });
        Ok(Self {
            url: format!("http://127.0.0.1:{port}{SERVE_PATH}"),
            recorder,
        })
    }

    /// The body an SDK would POST to `/fn/register` for this endpoint.
    pub fn register_body(&self) -> Value {
        let functions: Vec<Value> = Function::ALL
            .iter()
            .map(|f| {
                json!({
                    "id": f.slug(),
                    "name": f.id(),
                    "triggers": [{ "event": f.event() }],
                    "steps": { "step": { "id": "step", "name": "step",
                        "runtime": { "type": "http",
                                     "url": format!("{}?fnId={}&stepId=step", self.url, f.slug()) },
                        "retries": { "attempts": 0 } } },
                })
            })
            .collect();
        json!({
            "url": self.url, "deployType": "ping", "framework": "axum", "appName": APP_ID,
            "sdk": "rust:v0.1.0", "v": "0.1", "capabilities": { "trust_probe": "v1" },
            "functions": functions,
        })
    }
}

#[derive(Debug, Deserialize)]
struct CallQuery {
    #[serde(rename = "fnId")]
    fn_id: String,
}

#[derive(Debug, Deserialize)]
struct CallBody {
    event: CallEvent,
    #[serde(default)]
    steps: HashMap<String, IgnoredAny>,
}

#[derive(Debug, Deserialize)]
struct CallEvent {
    data: CallData,
}

#[derive(Debug, Deserialize)]
struct CallData {
    n: u64,
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

async fn call(
    State(shared): State<Arc<Shared>>,
    Query(query): Query<CallQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let arrived = Instant::now();
    if let Some(key) = &shared.key {
        let signature = headers
            .get("x-inngest-signature")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let keys = std::slice::from_ref(key);
        if signing::verify(signature, &body, keys, unix_now(), Some(300)).is_err() {
            return (StatusCode::UNAUTHORIZED, r#"{"message":"Unauthorized"}"#).into_response();
        }
    }
    let Some(function) = Function::ALL.into_iter().find(|f| f.slug() == query.fn_id) else {
        return (StatusCode::INTERNAL_SERVER_ERROR, "unknown fnId").into_response();
    };
    let call: CallBody = match serde_json::from_slice(&body) {
        Ok(call) => call,
        Err(err) => return (StatusCode::BAD_REQUEST, err.to_string()).into_response(),
    };
    let script = &shared.script;
    let next: Option<Bytes> = match function {
        Function::OneStep => {
            (!call.steps.contains_key(&script.one_step_id)).then(|| script.one_step_reply.clone())
        }
        Function::Sleep => {
            (!call.steps.contains_key(&script.sleep_id)).then(|| script.sleep_reply.clone())
        }
        Function::TenSteps => script
            .ten_ids
            .iter()
            .position(|id| !call.steps.contains_key(id))
            .map(|k| script.ten_replies[k].clone()),
    };
    let (status, body) = match next {
        Some(ops) => (StatusCode::PARTIAL_CONTENT, ops),
        None => (StatusCode::OK, Bytes::from_static(b"null")),
    };
    shared
        .recorder
        .record(call.event.data.n, arrived, status == StatusCode::OK);
    let signature = shared
        .key
        .as_ref()
        .map(|key| signing::sign(&body, key, unix_now()));
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    if let Some(signature) = signature.and_then(|s| HeaderValue::from_str(&s).ok()) {
        headers.insert("x-inngest-signature", signature);
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert("x-inngest-sdk", HeaderValue::from_static(SDK_HEADER));
    headers.insert("x-inngest-req-version", HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::Conn;

    fn call_body(n: u64, steps: &[String]) -> Vec<u8> {
        let steps: serde_json::Map<String, Value> = steps
            .iter()
            .map(|id| (id.clone(), json!({ "data": { "ok": true } })))
            .collect();
        serde_json::to_vec(
            &json!({ "ctx": { "run_id": "r" }, "event": { "data": { "n": n } },
            "events": [], "steps": steps, "use_api": false, "version": -1 }),
        )
        .unwrap()
    }

    /// Drives each function through its calls as the executor would and checks the
    /// replies and the recorded trace.
    #[tokio::test]
    async fn functions_answer_step_by_step_and_record_arrivals() {
        let endpoint = Endpoint::start(None).await.unwrap();
        let addr: SocketAddr = endpoint.url["http://".len()..]
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut conn = Conn::connect(addr).await.unwrap();
        let ten: Vec<String> = (0..TEN)
            .map(|i| step_id_hash(&format!("s{i}"), 0))
            .collect();
        type Calls<'a> = Vec<(Vec<String>, u16, &'a str)>;
        let cases: Vec<(Function, u64, Calls<'_>)> = vec![
            (
                Function::OneStep,
                1,
                vec![
                    (vec![], 206, "StepRun"),
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
            for (steps, status, needle) in calls {
                let path = format!("{SERVE_PATH}?fnId={}&stepId=step", function.slug());
                let reply = conn
                    .request("POST", &path, &[], &call_body(*n, steps))
                    .await
                    .unwrap();
                let body = String::from_utf8(reply.body).unwrap();
                assert_eq!(reply.status, *status, "{function:?} {body}");
                assert!(body.contains(needle), "{function:?}: {body} lacks {needle}");
            }
            let trace = endpoint.recorder.trace(*n).unwrap();
            assert!(trace.first_call.unwrap() <= trace.first_reply.unwrap());
            assert!(trace.first_reply.unwrap() <= trace.second_call.unwrap());
            assert!(trace.finished.is_some());
        }
        assert_eq!(endpoint.recorder.finished(), 3);
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
        let register = endpoint.register_body();
        assert_eq!(register["functions"].as_array().unwrap().len(), 3);
        assert!(
            register["functions"][0]["steps"]["step"]["runtime"]["url"]
                .as_str()
                .unwrap()
                .ends_with("?fnId=bench-one-step&stepId=step")
        );
    }

    /// With a key, unsigned or wrongly signed calls are refused and replies are signed.
    #[tokio::test]
    async fn signed_mode_checks_calls_and_signs_replies() {
        let key = SigningKey::new("signkey-test-00ff00ff").unwrap();
        let other = SigningKey::new("signkey-test-11ee11ee").unwrap();
        let endpoint = Endpoint::start(Some(key.clone())).await.unwrap();
        let addr: SocketAddr = endpoint.url["http://".len()..]
            .split('/')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let mut conn = Conn::connect(addr).await.unwrap();
        let path = format!("{SERVE_PATH}?fnId=bench-one-step&stepId=step");
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
            let reply = conn.request("POST", &path, &headers, &body).await.unwrap();
            assert_eq!(reply.status, status, "{signature:?}");
            if status == 206 {
                let sig = reply.header("x-inngest-signature").unwrap();
                let keys = std::slice::from_ref(&key);
                assert!(signing::verify(sig, &reply.body, keys, unix_now(), Some(60)).is_ok());
            }
        }
    }
}
