//! Shared test fixtures: a scripted fake server API and a call helper.

#![allow(dead_code)]

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{OriginalUri, State};
use axum::routing::post;
use http::{HeaderMap, Request, StatusCode};
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

/// A request the fake API received.
#[derive(Debug, Clone)]
pub struct Received {
    pub uri: String,
    pub headers: HeaderMap,
    pub body: Value,
}

/// A fake server API on 127.0.0.1: records requests and answers `/fn/register`
/// with `register_reply` and `/e/{key}` with two ids.
pub struct FakeApi {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
}

pub async fn fake_api(register_status: StatusCode, register_reply: Value) -> FakeApi {
    let received: Arc<Mutex<Vec<Received>>> = Arc::default();
    let record = {
        let received = Arc::clone(&received);
        move |uri: OriginalUri, headers: HeaderMap, body: Bytes| {
            let received = Arc::clone(&received);
            async move {
                received.lock().unwrap().push(Received {
                    uri: uri.to_string(),
                    headers,
                    body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                });
            }
        }
    };
    let on_register = {
        let record = record.clone();
        move |State(()): State<()>, uri: OriginalUri, headers: HeaderMap, body: Bytes| {
            let record = record.clone();
            let reply = register_reply.clone();
            async move {
                record(uri, headers, body).await;
                (register_status, axum::Json(reply))
            }
        }
    };
    let on_event = move |uri: OriginalUri, headers: HeaderMap, body: Bytes| {
        let record = record.clone();
        async move {
            record(uri, headers, body).await;
            axum::Json(json!({"ids": ["01M90SCY2X10MZQ9Z3VSG63SRF"], "status": 200}))
        }
    };
    let app = Router::new()
        .route("/fn/register", post(on_register))
        .route("/e/{key}", post(on_event))
        .with_state(());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    FakeApi { url, received }
}

/// A response, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub raw: Bytes,
    pub body: Value,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

pub async fn send(router: &Router, request: Request<Body>) -> Answer {
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let raw = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body = serde_json::from_slice(&raw).unwrap_or(Value::Null);
    Answer {
        status,
        headers,
        raw,
        body,
    }
}

/// A call request body as the Go executor builds it.
pub fn call_body(event: Value, steps: Value, ctx: Value) -> Value {
    let mut full_ctx = json!({
        "attempt": 0, "disable_immediate_execution": false, "env": "dev",
        "fn_id": "7b2f0e61-0000-4000-8000-000000000001", "max_attempts": 4,
        "qi_id": "qi", "run_id": "01KRUN0000000000000000000A",
        "stack": {"current": 0, "stack": []}, "step_id": "step", "use_api": false,
    });
    if let Value::Object(extra) = ctx {
        full_ctx.as_object_mut().unwrap().extend(extra);
    }
    json!({"ctx": full_ctx, "defers": {}, "event": event, "events": [event], "steps": steps, "use_api": false, "version": 2})
}

/// `POST /api/inngest?fnId=…&stepId=…` with a JSON body.
pub fn post_call(fn_id: &str, step_id: &str, body: &Value) -> Request<Body> {
    Request::post(format!("/api/inngest?fnId={fn_id}&stepId={step_id}"))
        .header("content-type", "application/json")
        .header("x-inngest-server-kind", "dev")
        .body(Body::from(serde_json::to_vec(body).unwrap()))
        .unwrap()
}
