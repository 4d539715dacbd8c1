//! Serving functions over HTTP: the axum router the server syncs with and calls.

use crate::call::{CallRequest, memos};
use crate::client::{Client, SDK_HEADER_VALUE};
use crate::config::{Config, Mode};
use crate::error::{Error, ErrorBody};
use crate::function::{Function, RawInput, Registered};
use crate::op::{Op, Opcode};
use crate::step::{RunParams, Step};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use futures::FutureExt;
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};
use sluice_protocol::signing::{self, SigningKey};
use sluice_protocol::to_canonical_vec;
use std::collections::HashMap;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// The request version this SDK answers with (`x-inngest-req-version`).
///
/// ```
/// assert_eq!(sluice_sdk::serve::REQUEST_VERSION, "2");
/// ```
pub const REQUEST_VERSION: &str = "2";
/// The framework name sent in `x-inngest-framework`.
///
/// ```
/// assert_eq!(sluice_sdk::serve::FRAMEWORK, "axum");
/// ```
pub const FRAMEWORK: &str = "axum";
/// How far a signature's timestamp may be from now, in seconds.
const MAX_SIGNATURE_SKEW_SECS: i64 = 300;
const SCHEMA_VERSION: &str = "2024-05-24";

/// An app: a client and the functions it serves.
///
/// ```no_run
/// use sluice_sdk::{App, Client, Config, Function, Input, Step, Trigger};
///
/// # async fn demo() -> std::io::Result<()> {
/// let client = Client::new(Config::from_env("shop"));
/// let hello = Function::new("hello")
///     .trigger(Trigger::event("demo/hello"))
///     .handler(|_input: Input, _step: Step| async move { Ok("hi") });
/// let router = App::new(client).function(hello).router(); // serves /api/inngest
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
/// axum::serve(listener, router).await
/// # }
/// ```
#[derive(Clone)]
pub struct App {
    client: Client,
    functions: Vec<Function>,
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("app_id", &self.client.config().app_id())
            .field("functions", &self.functions.len())
            .finish()
    }
}

impl App {
    /// An app with no functions yet.
    ///
    /// ```
    /// let app = sluice_sdk::App::new(sluice_sdk::Client::new(sluice_sdk::Config::new("shop")));
    /// ```
    pub fn new(client: Client) -> Self {
        Self {
            client,
            functions: Vec::new(),
        }
    }

    /// Adds a function.
    ///
    /// ```
    /// use sluice_sdk::{App, Client, Config, Function, Input, Step};
    /// let f = Function::new("f").handler(|_: Input, _: Step| async { Ok(()) });
    /// let app = App::new(Client::new(Config::new("shop"))).function(f);
    /// ```
    pub fn function(mut self, function: Function) -> Self {
        self.functions.push(function);
        self
    }

    /// The router serving the app at the configured serve path (default
    /// `/api/inngest`): `GET` (introspection), `PUT` (sync) and `POST` (calls).
    /// Merge it into your own router, or serve it as it is; it is a tower `Service`.
    ///
    /// ```
    /// use sluice_sdk::{App, Client, Config};
    /// let api: axum::Router = axum::Router::new()
    ///     .route("/health", axum::routing::get(|| async { "ok" }))
    ///     .merge(App::new(Client::new(Config::new("shop"))).router());
    /// ```
    pub fn router(self) -> Router {
        let path = self.client.config().served_path().to_owned();
        let handlers = self
            .functions
            .iter()
            .flat_map(|f| f.registered(self.client.config().app_id(), ""))
            .map(|r| (r.composite_id.clone(), r))
            .collect();
        let inner = Arc::new(Inner {
            app: self,
            handlers,
        });
        Router::new().route(&path, any(handle)).with_state(inner)
    }
}

struct Inner {
    app: App,
    handlers: HashMap<String, Registered>,
}

impl Inner {
    fn config(&self) -> &Config {
        self.app.client.config()
    }

    /// The `POST /fn/register` body for an app served at `url`.
    fn register_body(&self, url: &str) -> Value {
        let config = self.config();
        let functions: Vec<Value> = self
            .app
            .functions
            .iter()
            .flat_map(|f| f.registered(config.app_id(), url))
            .map(|r| r.config)
            .collect();
        json!({
            "url": url,
            "deployType": "ping",
            "framework": FRAMEWORK,
            "appName": config.app_id(),
            "functions": functions,
            "sdk": SDK_HEADER_VALUE,
            "v": "0.1",
            "capabilities": {"trust_probe": "v1"},
        })
    }
}

/// A response under construction: status, JSON body and the SDK's headers.
struct Reply {
    status: StatusCode,
    body: Vec<u8>,
    headers: Vec<(HeaderName, String)>,
    sdk_headers: bool,
}

impl Reply {
    fn json(status: StatusCode, body: &Value) -> Self {
        Self {
            status,
            body: serde_json::to_vec(body).unwrap_or_default(),
            headers: Vec::new(),
            sdk_headers: true,
        }
    }

    fn header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers
            .push((HeaderName::from_static(name), value.into()));
        self
    }

    fn unauthorized() -> Self {
        let mut reply = Self::json(
            StatusCode::UNAUTHORIZED,
            &json!({"message": "Unauthorized"}),
        );
        reply.sdk_headers = false;
        reply
    }

    fn internal(message: &str) -> Self {
        Self::json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({"type": "internal", "name": "Error", "message": message}),
        )
    }

    fn finish(self, request: &HeaderMap, key: Option<&SigningKey>) -> Response {
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if self.sdk_headers {
            let fixed = [
                ("x-inngest-sdk", SDK_HEADER_VALUE),
                ("x-inngest-req-version", REQUEST_VERSION),
                ("x-inngest-framework", FRAMEWORK),
                ("x-inngest-sdk-handled", "true"),
            ];
            for (name, value) in fixed {
                headers.insert(
                    HeaderName::from_static(name),
                    HeaderValue::from_static(value),
                );
            }
            if let Some(kind) = request.get("x-inngest-server-kind") {
                headers.insert("x-inngest-expected-server-kind", kind.clone());
            }
            if let Some(key) = key {
                let now = chrono::Utc::now().timestamp();
                if let Ok(v) = HeaderValue::from_str(&signing::sign(&self.body, key, now)) {
                    headers.insert("x-inngest-signature", v);
                }
            }
        }
        for (name, value) in self.headers {
            if let Ok(value) = HeaderValue::from_str(&value) {
                headers.insert(name, value);
            }
        }
        (self.status, headers, self.body).into_response()
    }
}

async fn handle(
    State(inner): State<Arc<Inner>>,
    method: Method,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let config = inner.config();
    let keys = config.signing_keys();
    let verified = verify(&headers, &body, &keys);
    let cloud = config.current_mode() == Mode::Cloud;
    let key = verified.and_then(|i| keys.get(i));
    let reply = match method {
        Method::GET => introspect(&inner, cloud, key.is_some()),
        Method::PUT => sync(&inner, &query, &headers).await,
        Method::POST if cloud && key.is_none() => Reply::unauthorized(),
        Method::POST if query.get("probe").map(String::as_str) == Some("trust") => Reply {
            status: StatusCode::OK,
            body: Vec::new(),
            headers: Vec::new(),
            sdk_headers: true,
        },
        Method::POST => call(&inner, &query, &headers, &body).await,
        _ => Reply::json(
            StatusCode::METHOD_NOT_ALLOWED,
            &json!({"message": "use GET, PUT or POST"}),
        ),
    };
    reply.finish(&headers, key)
}

/// The index of the key that signed the request, if any. Like the official SDKs, a
/// JSON body is verified in its canonical (RFC 8785) form only; other bodies (the
/// empty body of a `GET`) as they are.
fn verify(headers: &HeaderMap, body: &[u8], keys: &[SigningKey]) -> Option<usize> {
    let header = headers.get("x-inngest-signature")?.to_str().ok()?;
    let now = chrono::Utc::now().timestamp();
    let signed = match serde_json::from_slice::<Value>(body) {
        Ok(value) => to_canonical_vec(&value),
        Err(_) => body.to_vec(),
    };
    signing::verify(header, &signed, keys, now, Some(MAX_SIGNATURE_SKEW_SECS)).ok()
}

fn introspect(inner: &Inner, cloud: bool, signed: bool) -> Reply {
    let config = inner.config();
    let keys = config.signing_keys();
    let mut body = json!({
        "extra": {"is_mode_explicit": config.is_mode_explicit()},
        "has_event_key": config.has_event_key(),
        "has_signing_key": !keys.is_empty(),
        "function_count": inner.handlers.len(),
        "mode": if cloud { "cloud" } else { "dev" },
        "schema_version": SCHEMA_VERSION,
    });
    if cloud && !signed {
        return Reply::unauthorized();
    }
    if signed {
        fn hash(key: Option<&SigningKey>) -> Option<String> {
            key.and_then(|k| k.hashed().ok())
        }
        let map = body.as_object_mut().expect("built as an object");
        let more = json!({
            "authentication_succeeded": true,
            "app_id": config.app_id(),
            "api_origin": config.api_origin(),
            "event_api_origin": config.event_origin(),
            "env": config.env_name(),
            "framework": FRAMEWORK,
            "sdk_language": "rust",
            "sdk_version": env!("CARGO_PKG_VERSION"),
            "serve_origin": config.served_origin(),
            "serve_path": config.served_path(),
            "signing_key_hash": hash(keys.first()),
            "signing_key_fallback_hash": hash(keys.get(1)),
            "capabilities": {"trust_probe": "v1"},
        });
        if let Value::Object(more) = more {
            map.extend(more);
        }
    }
    Reply::json(StatusCode::OK, &body)
}

/// The URL the server should call: the configured origin, else the request's host.
fn serve_url(config: &Config, headers: &HeaderMap) -> String {
    let origin = match config.served_origin() {
        Some(origin) => origin.trim_end_matches('/').to_owned(),
        None => {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
            let host = header("x-forwarded-host")
                .or_else(|| header("host"))
                .unwrap_or("localhost");
            let proto = header("x-forwarded-proto").unwrap_or("http");
            format!("{proto}://{host}")
        }
    };
    format!("{origin}{}", config.served_path())
}

async fn sync(inner: &Inner, query: &HashMap<String, String>, headers: &HeaderMap) -> Reply {
    let config = inner.config();
    let url = serve_url(config, headers);
    let body = inner.register_body(&url);
    let mut register = format!("{}/fn/register", config.api_origin());
    if let Some(deploy_id) = query.get("deployId") {
        let mut u = match reqwest::Url::parse(&register) {
            Ok(u) => u,
            Err(e) => return Reply::internal(&format!("bad API origin: {e}")),
        };
        u.query_pairs_mut().append_pair("deployId", deploy_id);
        register = u.to_string();
    }
    let keys = config.signing_keys();
    let bearers: Vec<String> = keys.iter().filter_map(|k| k.bearer().ok()).collect();
    let mut bearers = bearers.into_iter().peekable();
    loop {
        let bearer = bearers.next();
        let mut request = inner
            .app
            .client
            .http()
            .post(&register)
            .header("content-type", "application/json")
            .header("user-agent", SDK_HEADER_VALUE)
            .header("x-inngest-sdk", SDK_HEADER_VALUE)
            .header("x-inngest-framework", FRAMEWORK)
            .header("x-inngest-sync-kind", "out_of_band")
            .json(&body);
        if let Some(bearer) = &bearer {
            request = request.header("authorization", format!("Bearer {bearer}"));
        }
        let response = match request.send().await {
            Ok(r) => r,
            Err(error) => {
                tracing::warn!(%error, "sync failed: the API is unreachable");
                return Reply::json(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    &json!({"message": format!("could not reach {register}: {error}"), "modified": false}),
                );
            }
        };
        let status = response.status();
        if matches!(status.as_u16(), 401 | 403) && bearers.peek().is_some() {
            continue; // try the fallback key
        }
        return sync_reply(status, &response.bytes().await.unwrap_or_default());
    }
}

/// Answers the sync `PUT` from the register reply: its JSON `status` (falling back
/// to the HTTP status), its `error` as the message, and `modified`.
fn sync_reply(http_status: StatusCode, body: &[u8]) -> Reply {
    #[derive(Deserialize, Default)]
    struct RegisterReply {
        status: Option<u16>,
        error: Option<String>,
        #[serde(default)]
        modified: bool,
    }
    let reply: RegisterReply = serde_json::from_slice(body).unwrap_or_default();
    let status = reply
        .status
        .and_then(|s| StatusCode::from_u16(s).ok())
        .unwrap_or(http_status);
    let message = match (&reply.error, status.is_success()) {
        (Some(error), _) => error.clone(),
        (None, true) => "Successfully registered".to_owned(),
        (None, false) => format!("registration failed with status {status}"),
    };
    if !status.is_success() {
        tracing::warn!(%status, %message, "sync was refused");
    }
    Reply::json(
        status,
        &json!({"message": message, "modified": reply.modified}),
    )
}

async fn call(
    inner: &Inner,
    query: &HashMap<String, String>,
    headers: &HeaderMap,
    body: &[u8],
) -> Reply {
    let Some(fn_id) = query.get("fnId") else {
        return Reply::internal("No function ID found in request");
    };
    let Some(registered) = inner.handlers.get(fn_id) else {
        return Reply::internal(&format!(
            "Function {fn_id:?} was not found in this app; is the app synced correctly?"
        ));
    };
    let mut request: CallRequest = match serde_json::from_slice(body) {
        Ok(r) => r,
        Err(e) => return Reply::internal(&format!("the call request is not valid: {e}")),
    };
    if request.use_api || request.ctx.use_api {
        if let Err(e) = load_from_api(inner, &mut request).await {
            return Reply::internal(&format!("could not load the run's state from the API: {e}"));
        }
    }
    let target = query
        .get("stepId")
        .cloned()
        .or_else(|| {
            headers
                .get("x-inngest-step-id")
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        })
        .filter(|id| !id.is_empty() && id != "step");
    let ctx = &request.ctx;
    let step = Step::new(
        RunParams {
            app_id: inner.config().app_id().to_owned(),
            memos: memos(std::mem::take(&mut request.steps)),
            target: target.clone(),
            immediate: !ctx.disable_immediate_execution,
            attempt: ctx.attempt,
            max_attempts: ctx.max_attempts.unwrap_or(registered.retries + 1),
        },
        inner.app.client.clone(),
    );
    let event = request
        .event
        .take()
        .or_else(|| request.events.first().cloned())
        .unwrap_or(Value::Null);
    let events = if request.events.is_empty() {
        vec![event.clone()]
    } else {
        request.events
    };
    let input = RawInput {
        event,
        events,
        run_id: ctx.run_id.clone(),
        attempt: ctx.attempt,
    };
    let run = (registered.handler)(input, step.clone());
    let result = match AssertUnwindSafe(run).catch_unwind().await {
        Ok(result) => result,
        Err(_) => Err(Error::retriable("the function panicked")),
    };
    let mut state = step.lock();
    if state.interrupted {
        if !result.as_ref().is_err_and(Error::is_interrupt) {
            tracing::error!(
                function.id = %fn_id,
                "the function did not pass a step interrupt up (returned {}); reporting its steps anyway. \
                 Propagate step errors with `?`",
                if result.is_ok() { "Ok" } else { "another error" },
            );
        }
        let ops = std::mem::take(&mut state.ops);
        return ops_reply(&ops, state.retry_after, target.as_deref());
    }
    drop(state);
    match result {
        Ok(value) => Reply::json(StatusCode::OK, &value),
        Err(error) => error_reply(&error),
    }
}

/// 206 with the ops; `x-inngest-no-retry` when a step errored.
fn ops_reply(ops: &[Op], retry_after: Option<std::time::Duration>, target: Option<&str>) -> Reply {
    if ops.is_empty() {
        return Reply::json(
            StatusCode::INTERNAL_SERVER_ERROR,
            &json!({
                "error": "the requested step was not found; was the function changed during the run?",
                "requestedStep": target,
            }),
        )
        .header("x-inngest-no-retry", "false");
    }
    let body = serde_json::to_value(ops).unwrap_or(Value::Null);
    let mut reply = Reply::json(StatusCode::PARTIAL_CONTENT, &body);
    if ops.iter().any(|op| op.op == Opcode::StepFailed) {
        reply = reply.header("x-inngest-no-retry", "true");
    } else if ops.iter().any(|op| op.op == Opcode::StepError) {
        reply = reply.header("x-inngest-no-retry", "false");
        if let Some(after) = retry_after {
            reply = reply.header("retry-after", retry_after_secs(after).to_string());
        }
    }
    reply
}

fn retry_after_secs(after: std::time::Duration) -> u64 {
    after.as_secs() + u64::from(after.subsec_nanos() > 0)
}

/// A function's own error: 400 + no-retry for final failures, 500 otherwise.
fn error_reply(error: &Error) -> Reply {
    let ErrorBody {
        name,
        message,
        stack,
    } = error.to_body();
    let body = json!({"name": name, "message": message, "stack": stack.unwrap_or_default(), "__serialized": true});
    if error.is_retriable() {
        let mut reply = Reply::json(StatusCode::INTERNAL_SERVER_ERROR, &body)
            .header("x-inngest-no-retry", "false");
        if let Error::RetryAfter { after, .. } = error {
            reply = reply.header("retry-after", retry_after_secs(*after).to_string());
        }
        reply
    } else {
        Reply::json(StatusCode::BAD_REQUEST, &body).header("x-inngest-no-retry", "true")
    }
}

/// Fetches events and step state when the request was too large to carry them.
async fn load_from_api(inner: &Inner, request: &mut CallRequest) -> Result<(), reqwest::Error> {
    let config = inner.config();
    let base = format!("{}/v0/runs/{}", config.api_origin(), request.ctx.run_id);
    let bearer = config.signing_keys().first().and_then(|k| k.bearer().ok());
    let get = |path: &str| {
        let mut r = inner
            .app
            .client
            .http()
            .get(format!("{base}/{path}"))
            .header("x-inngest-sdk", SDK_HEADER_VALUE);
        if let Some(b) = &bearer {
            r = r.header("authorization", format!("Bearer {b}"));
        }
        r
    };
    let events: Vec<Value> = get("batch")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let steps: serde_json::Map<String, Value> = get("actions")
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    request.event = events.first().cloned().or(request.event.take());
    request.events = events;
    request.steps = steps;
    Ok(())
}
