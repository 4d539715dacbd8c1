//! The dashboard: its web assets (the `web/` folder, embedded at build time), the
//! token login for `start` mode, and the two endpoints the dashboard needs beyond the
//! REST API: `GET /v1/runs/{id}/pending` (what a run waits for right now) and the
//! live feed `GET /v1/stream` ([`crate::stream`]).
//!
//! Routing is hash-based (`/#/runs/…`), so the only HTML paths are `/` and `/login`.
//!
//! # Auth
//! In `dev` mode the dashboard and REST API are open ([`Auth::open`]). In `start` mode
//! ([`Auth::token`]) [`require_auth`] guards every path [`is_protected`] names (the
//! dashboard, its assets, `/v1/…` except the SDK checkpoint endpoints): a browser signs
//! in at `/login` by posting the token and gets an HTTP-only, `SameSite=Strict` session
//! cookie (an HMAC of the token, so changing the token signs everyone out); scripts send
//! `Authorization: Bearer <token>`. No CORS headers are sent: the dashboard is same-origin.

use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::get;
use rust_embed::RustEmbed;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sluice_core::{Millis, RunId, RunStatus};
use sluice_store::{DynStore, QueueItem, QueueKind, Run, Step, Wait, WaitKind};

use crate::stream::{self, Feed};

/// The `web/` folder, embedded into the binary (read from disk in debug builds).
#[derive(RustEmbed)]
#[folder = "../../web/"]
struct Assets;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "sluice_session";

/// What the dashboard routes need.
#[derive(Debug, Clone)]
pub struct Dashboard {
    pub store: DynStore,
    pub feed: Feed,
    pub auth: Auth,
}

impl Dashboard {
    /// The dashboard over `store`, with a live feed polling it.
    pub fn new(store: DynStore, auth: Auth) -> Self {
        let feed = Feed::polling(store.clone(), stream::FeedOptions::default());
        Self { store, feed, auth }
    }
}

impl FromRef<Dashboard> for Auth {
    fn from_ref(d: &Dashboard) -> Self {
        d.auth.clone()
    }
}

impl FromRef<Dashboard> for Feed {
    fn from_ref(d: &Dashboard) -> Self {
        d.feed.clone()
    }
}

/// Who may use the dashboard and REST API.
#[derive(Clone)]
pub struct Auth {
    secret: Option<Arc<Secret>>,
}

struct Secret {
    token: String,
    /// The session cookie value that proves a login.
    session: String,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token.
        f.debug_struct("Auth")
            .field("open", &self.secret.is_none())
            .finish()
    }
}

impl Auth {
    /// No auth (`dev` mode).
    pub fn open() -> Self {
        Self { secret: None }
    }

    /// Requires `token` (`start` mode). An empty token is refused at login, so it locks
    /// everyone out rather than letting everyone in.
    pub fn token(token: &str) -> Self {
        let session = match sluice_protocol::signing::SigningKey::new(token) {
            Ok(key) => {
                let sig = sluice_protocol::signing::sign(b"sluice-dashboard-session/v1", &key, 0);
                sig.rsplit("s=").next().unwrap_or_default().to_owned()
            }
            Err(_) => String::new(),
        };
        Self {
            secret: Some(Arc::new(Secret {
                token: token.to_owned(),
                session,
            })),
        }
    }

    /// Auth as the API's deployment asks: open in dev mode; in start mode the token is
    /// the primary signing key as configured (`signkey-<env>-<hex>`).
    pub fn from_api(options: &crate::ApiOptions) -> Self {
        match (options.mode, options.signing_keys.first()) {
            (crate::Mode::Dev, _) => Self::open(),
            (crate::Mode::Start, _) if options.dashboard_token.is_some() => {
                Self::token(options.dashboard_token.as_deref().unwrap_or_default())
            }
            (crate::Mode::Start, Some(key)) => {
                Self::token(&format!("{}{}", key.prefix(), key.secret()))
            }
            // No key configured: locked (an empty token admits nobody).
            (crate::Mode::Start, None) => Self::token(""),
        }
    }

    /// Whether no sign-in is needed.
    pub fn is_open(&self) -> bool {
        self.secret.is_none()
    }

    /// Whether a request with these headers is signed in.
    pub fn allows(&self, headers: &HeaderMap) -> bool {
        let Some(secret) = &self.secret else {
            return true;
        };
        if secret.token.is_empty() || secret.session.is_empty() {
            return false;
        }
        if let Some(bearer) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
        {
            return same(bearer.trim(), &secret.token);
        }
        cookie(headers, SESSION_COOKIE).is_some_and(|c| same(c, &secret.session))
    }

    fn check_token(&self, token: &str) -> Option<&str> {
        let secret = self.secret.as_ref()?;
        (!secret.token.is_empty() && same(token, &secret.token)).then_some(&secret.session)
    }
}

/// Constant-time string comparison (length may leak; content does not).
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// The value of cookie `name`, if sent.
fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Whether `path` needs a signed-in user in `start` mode: the dashboard and the REST
/// API. The login page, health checks, ingest (`/e/…`, event keys) and the SDK
/// endpoints (signing keys) are not guarded here.
pub fn is_protected(path: &str) -> bool {
    if path == "/login" || path == "/logout" || path.starts_with("/assets/login") {
        return false;
    }
    if path.starts_with("/v1/checkpoint") {
        return false;
    }
    path == "/" || path == "/index.html" || path.starts_with("/assets/") || path.starts_with("/v1/")
}

/// Middleware for `start` mode: refuses requests to [`is_protected`] paths that are
/// not signed in — pages are redirected to `/login`, API calls get `401`. Apply it to
/// the whole router: `router.layer(axum::middleware::from_fn_with_state(auth,
/// require_auth))`.
pub async fn require_auth(State(auth): State<Auth>, req: Request, next: Next) -> Response {
    if auth.is_open() || !is_protected(req.uri().path()) || auth.allows(req.headers()) {
        return next.run(req).await;
    }
    if req.uri().path().starts_with("/v1/") {
        let body = json!({
            "code": "unauthorized",
            "message": "sign in at /login, or send Authorization: Bearer <token>",
        });
        return (StatusCode::UNAUTHORIZED, axum::Json(body)).into_response();
    }
    Redirect::to("/login").into_response()
}

/// The dashboard's routes: `/`, `/assets/…`, `/login`, `/logout`, `/v1/session`,
/// `/v1/runs/{id}/pending` and `/v1/stream`. They guard themselves with
/// [`require_auth`]; merge them into the API router.
pub fn routes(state: Dashboard) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/index.html", get(index))
        .route("/assets/{*path}", get(asset))
        .route("/login", get(login_page).post(login))
        .route("/logout", axum::routing::post(logout))
        .route("/v1/session", get(session))
        .route("/v1/runs/{id}/pending", get(pending))
        .route("/v1/stream", get(stream::sse))
        .route_layer(middleware::from_fn_with_state(
            state.auth.clone(),
            require_auth,
        ))
        .with_state(state)
}

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// Serves one embedded file, with an ETag (sha256) for cheap revalidation.
fn serve(path: &str, headers: &HeaderMap) -> Response {
    let Some(file) = Assets::get(path) else {
        return (StatusCode::NOT_FOUND, "not found").into_response();
    };
    let etag = format!("\"{}\"", hex_prefix(&file.metadata.sha256_hash()));
    if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        return StatusCode::NOT_MODIFIED.into_response();
    }
    let mut resp = file.data.into_owned().into_response();
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static(mime(path)));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    if path.ends_with(".html") {
        h.insert("content-security-policy", HeaderValue::from_static(CSP));
        h.insert("referrer-policy", HeaderValue::from_static("same-origin"));
        h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    }
    resp
}

fn hex_prefix(bytes: &[u8]) -> String {
    bytes.iter().take(12).map(|b| format!("{b:02x}")).collect()
}

fn mime(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js" | "mjs") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

async fn index(headers: HeaderMap) -> Response {
    serve("index.html", &headers)
}

async fn asset(Path(path): Path<String>, headers: HeaderMap) -> Response {
    if path.contains("..") {
        return StatusCode::NOT_FOUND.into_response();
    }
    serve(&format!("assets/{path}"), &headers)
}

async fn login_page(State(auth): State<Auth>, headers: HeaderMap) -> Response {
    if auth.is_open() || auth.allows(&headers) {
        return Redirect::to("/").into_response();
    }
    serve("login.html", &headers)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(auth): State<Auth>,
    headers: HeaderMap,
    axum::Form(form): axum::Form<LoginForm>,
) -> Response {
    let Some(session) = auth.check_token(form.token.trim()) else {
        tracing::info!("dashboard: a sign-in with a wrong token was refused");
        return Redirect::to("/login?error=1").into_response();
    };
    let secure = headers
        .get("x-forwarded-proto")
        .is_some_and(|v| v.as_bytes() == b"https");
    let cookie = format!(
        "{SESSION_COOKIE}={session}; Path=/; HttpOnly; SameSite=Strict; Max-Age=2592000{}",
        if secure { "; Secure" } else { "" }
    );
    let mut resp = Redirect::to("/").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        resp.headers_mut().insert(header::SET_COOKIE, v);
    }
    resp
}

async fn logout() -> Response {
    let mut resp = Redirect::to("/login").into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("sluice_session=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    resp
}

/// `GET /v1/session`: whether sign-in is on (the dashboard shows "Sign out" then).
async fn session(State(auth): State<Auth>) -> axum::Json<Value> {
    axum::Json(json!({ "auth": if auth.is_open() { "open" } else { "token" } }))
}

// ---- what a run waits for ------------------------------------------------------

/// `GET /v1/runs/{id}/pending`: the run's queue items and waits, and what it waits
/// for right now.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pending {
    pub run_id: RunId,
    pub status: RunStatus,
    /// The server's clock when this was read.
    pub now: Millis,
    /// What the run waits for; `None` once it has ended.
    pub waiting_for: Option<WaitingFor>,
    pub queue: Vec<PendingItem>,
    pub waits: Vec<PendingWait>,
}

/// A queue item of a run, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingItem {
    pub kind: QueueKind,
    pub step_id: Option<String>,
    pub available_at: Millis,
    /// 0-based.
    pub attempt: i32,
    /// Whether a worker holds it now.
    pub leased: bool,
    pub last_error: Option<Value>,
}

/// A wait of a run, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PendingWait {
    pub kind: WaitKind,
    pub step_id: Option<String>,
    pub event_name: String,
    pub expression: Option<String>,
    pub expires_at: Option<Millis>,
}

/// What a run is waiting for right now; the dashboard words it ("sleeping until …").
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WaitingFor {
    /// Due, waiting for a worker (or a concurrency slot).
    Queued { since: Millis },
    /// Not due yet (a delayed start).
    Scheduled { at: Millis },
    /// A worker is calling the function now.
    Executing { step: Option<String> },
    /// `step.sleep` until a time.
    Sleeping { step: String, until: Millis },
    /// `step.waitForEvent`.
    Event {
        step: String,
        event: String,
        expression: Option<String>,
        until: Option<Millis>,
    },
    /// `step.invoke`: waiting for the invoked function to finish.
    Invoke {
        step: String,
        function: Option<String>,
        until: Option<Millis>,
    },
    /// A failed attempt will be retried at `at`.
    Retry {
        step: Option<String>,
        at: Millis,
        /// The attempt that will run, 1-based.
        attempt: i32,
        max_attempts: Option<i32>,
        error: Option<Value>,
    },
}

/// Inputs of [`waiting_for`].
#[derive(Debug, Clone, Copy)]
pub struct RunView<'a> {
    pub run: &'a Run,
    pub steps: &'a [Step],
    /// Soonest first.
    pub items: &'a [QueueItem],
    pub waits: &'a [Wait],
    /// The function's attempts per step (retries + 1), when known.
    pub max_attempts: Option<i32>,
    pub now: Millis,
}

/// Derives what a run waits for from its queue items, waits and steps.
pub fn waiting_for(v: RunView<'_>) -> Option<WaitingFor> {
    if v.run.status.is_terminal() {
        return None;
    }
    let name = |id: &str| {
        v.steps
            .iter()
            .find(|s| s.step_id == id)
            .map_or_else(|| id.to_owned(), |s| s.name.clone())
    };
    // A waiting step blocks the run, whatever else is queued (its timeout item).
    if let Some(w) = v.waits.iter().find(|w| w.kind != WaitKind::Cancel) {
        let step = w.step_id.as_deref().map(name).unwrap_or_default();
        return Some(match w.kind {
            WaitKind::Invoke => {
                let function = w
                    .step_id
                    .as_deref()
                    .and_then(|id| v.steps.iter().find(|s| s.step_id == id))
                    .and_then(|s| s.opts.as_ref())
                    .and_then(|o| o.get("function_id"))
                    .and_then(Value::as_str)
                    .map(str::to_owned);
                WaitingFor::Invoke {
                    step,
                    function,
                    until: w.expires_at,
                }
            }
            _ => WaitingFor::Event {
                step,
                event: w.event_name.clone(),
                expression: w.expression.clone(),
                until: w.expires_at,
            },
        });
    }
    let item = v.items.iter().find(|i| i.kind != QueueKind::WaitTimeout)?;
    let step = item.step_id.as_deref().map(name);
    Some(match item.kind {
        QueueKind::Wake => WaitingFor::Sleeping {
            step: step.unwrap_or_default(),
            until: item.available_at,
        },
        _ if item.lease_token.is_some() => WaitingFor::Executing { step },
        _ if item.attempt > 0 => WaitingFor::Retry {
            step,
            at: item.available_at,
            attempt: item.attempt + 1,
            max_attempts: v.max_attempts,
            error: item.last_error.clone().or_else(|| {
                let id = item.step_id.as_deref()?;
                v.steps.iter().find(|s| s.step_id == id)?.error.clone()
            }),
        },
        _ if item.available_at > v.now => WaitingFor::Scheduled {
            at: item.available_at,
        },
        _ => WaitingFor::Queued {
            since: item.available_at,
        },
    })
}

/// Attempts per step from a function's registered config: `retries.attempts` counts
/// retries (default 4 when absent), so attempts are one more.
pub fn max_attempts(config: &Value) -> i32 {
    let retries = config
        .pointer("/steps/step/retries/attempts")
        .or_else(|| config.pointer("/retries/attempts"))
        .and_then(Value::as_i64)
        .unwrap_or(4)
        .clamp(0, 20);
    i32::try_from(retries).unwrap_or(4) + 1
}

async fn pending(State(d): State<Dashboard>, Path(id): Path<String>) -> Response {
    let Ok(id) = id.parse::<RunId>() else {
        return error(StatusCode::BAD_REQUEST, "bad_request", "not a run id");
    };
    match read_pending(&d.store, id).await {
        Ok(p) => axum::Json(p).into_response(),
        Err(sluice_store::Error::NotFound { .. }) => {
            error(StatusCode::NOT_FOUND, "not_found", "no such run")
        }
        Err(e) => {
            tracing::error!(error = %e, run.id = %id, "dashboard: cannot read a run's pending work");
            error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
        }
    }
}

fn error(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!({"code": code, "message": message})),
    )
        .into_response()
}

async fn read_pending(store: &DynStore, id: RunId) -> sluice_store::Result<Pending> {
    let run = store.get_run(id).await?;
    let steps = store.list_steps(id).await?;
    let items = store.run_queue_items(id).await?;
    let waits = store.run_waits(id).await?;
    let max = store
        .get_function(run.function_id)
        .await
        .ok()
        .map(|f| max_attempts(&f.config));
    let now = Millis::now();
    let waiting = waiting_for(RunView {
        run: &run,
        steps: &steps,
        items: &items,
        waits: &waits,
        max_attempts: max,
        now,
    });
    Ok(Pending {
        run_id: id,
        status: run.status,
        now,
        waiting_for: waiting,
        queue: items
            .iter()
            .map(|i| PendingItem {
                kind: i.kind,
                step_id: i.step_id.clone(),
                available_at: i.available_at,
                attempt: i.attempt,
                leased: i.lease_token.is_some(),
                last_error: i.last_error.clone(),
            })
            .collect(),
        waits: waits
            .iter()
            .map(|w| PendingWait {
                kind: w.kind,
                step_id: w.step_id.clone(),
                event_name: w.event_name.clone(),
                expression: w.expression.clone(),
                expires_at: w.expires_at,
            })
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use http::Request;
    use serde_json::json;
    use sluice_core::{FunctionId, QueueItemId, WaitId};
    use sluice_store::{LeaseToken, StepStatus};
    use tower::ServiceExt;

    fn run(status: RunStatus) -> Run {
        Run {
            id: RunId(ulid::Ulid(1)),
            function_id: FunctionId(uuid::Uuid::nil()),
            status,
            event_ids: vec![],
            output: None,
            error: None,
            request_version: None,
            disable_immediate_execution: false,
            correlation_id: None,
            rerun_of: None,
            created_at: Millis(0),
            started_at: None,
            ended_at: None,
        }
    }

    fn item(kind: QueueKind, step: Option<&str>, at: i64, attempt: i32, leased: bool) -> QueueItem {
        QueueItem {
            id: QueueItemId(1),
            kind,
            run_id: Some(RunId(ulid::Ulid(1))),
            function_id: None,
            step_id: step.map(str::to_owned),
            payload: Value::Null,
            available_at: Millis(at),
            priority: 0,
            attempt,
            concurrency_keys: vec![],
            dedupe_key: None,
            last_error: None,
            lease_owner: None,
            lease_token: leased.then(|| LeaseToken(uuid::Uuid::nil())),
            lease_expires_at: None,
            created_at: Millis(0),
        }
    }

    fn wait(kind: WaitKind, step: Option<&str>, until: Option<i64>) -> Wait {
        Wait {
            id: WaitId(ulid::Ulid(2)),
            run_id: RunId(ulid::Ulid(1)),
            kind,
            step_id: step.map(str::to_owned),
            event_name: "user/activated".into(),
            expression: Some("async.data.id == event.data.id".into()),
            correlation_id: None,
            trigger_event: json!({}),
            expires_at: until.map(Millis),
            created_at: Millis(0),
        }
    }

    fn step(id: &str, name: &str, error: Option<Value>, opts: Option<Value>) -> Step {
        Step {
            run_id: RunId(ulid::Ulid(1)),
            step_id: id.into(),
            name: name.into(),
            op: "StepRun".into(),
            status: StepStatus::Retrying,
            result: None,
            error,
            attempts: 2,
            opts,
            created_at: Millis(0),
            started_at: None,
            ended_at: None,
        }
    }

    /// (run status, queue items, waits, expected).
    type Case = (RunStatus, Vec<QueueItem>, Vec<Wait>, Option<WaitingFor>);

    #[test]
    fn waiting_for_reads_waits_first_then_the_soonest_item() {
        use QueueKind::*;
        use WaitingFor as W;
        let steps = vec![
            step(
                "h1",
                "charge",
                Some(json!({"message": "card declined"})),
                None,
            ),
            step("h2", "nap", None, None),
            step(
                "h3",
                "child",
                None,
                Some(json!({"function_id": "app-child"})),
            ),
        ];
        let now = 1_000;
        let cases: Vec<Case> = vec![
            (
                RunStatus::Completed,
                vec![item(Call, None, 0, 0, false)],
                vec![],
                None,
            ),
            (RunStatus::Running, vec![], vec![], None),
            (
                RunStatus::Queued,
                vec![item(Call, None, 900, 0, false)],
                vec![],
                Some(W::Queued { since: Millis(900) }),
            ),
            (
                RunStatus::Queued,
                vec![item(Call, None, 5_000, 0, false)],
                vec![],
                Some(W::Scheduled { at: Millis(5_000) }),
            ),
            (
                RunStatus::Running,
                vec![item(Call, None, 900, 0, true)],
                vec![],
                Some(W::Executing { step: None }),
            ),
            (
                RunStatus::Running,
                vec![item(Wake, Some("h2"), 9_000, 0, false)],
                vec![],
                Some(W::Sleeping {
                    step: "nap".into(),
                    until: Millis(9_000),
                }),
            ),
            (
                RunStatus::Running,
                vec![item(Call, Some("h1"), 7_000, 2, false)],
                vec![],
                Some(W::Retry {
                    step: Some("charge".into()),
                    at: Millis(7_000),
                    attempt: 3,
                    max_attempts: Some(5),
                    error: Some(json!({"message": "card declined"})),
                }),
            ),
            (
                // The wait's timeout item does not hide the wait; cancel watches are ignored.
                RunStatus::Running,
                vec![item(WaitTimeout, Some("h9"), 60_000, 0, false)],
                vec![
                    wait(WaitKind::Cancel, None, None),
                    wait(WaitKind::Event, Some("h9"), Some(60_000)),
                ],
                Some(W::Event {
                    step: "h9".into(),
                    event: "user/activated".into(),
                    expression: Some("async.data.id == event.data.id".into()),
                    until: Some(Millis(60_000)),
                }),
            ),
            (
                RunStatus::Running,
                vec![],
                vec![wait(WaitKind::Invoke, Some("h3"), None)],
                Some(W::Invoke {
                    step: "child".into(),
                    function: Some("app-child".into()),
                    until: None,
                }),
            ),
            (
                RunStatus::Running,
                vec![],
                vec![wait(WaitKind::Cancel, None, None)],
                None,
            ),
        ];
        for (i, (status, items, waits, want)) in cases.into_iter().enumerate() {
            let r = run(status);
            let got = waiting_for(RunView {
                run: &r,
                steps: &steps,
                items: &items,
                waits: &waits,
                max_attempts: Some(5),
                now: Millis(now),
            });
            assert_eq!(got, want, "case {i}");
        }
        assert_eq!(max_attempts(&json!({})), 5);
        assert_eq!(
            max_attempts(&json!({"steps": {"step": {"retries": {"attempts": 0}}}})),
            1
        );
        assert_eq!(
            max_attempts(&json!({"steps": {"step": {"retries": {"attempts": 99}}}})),
            21
        );
    }

    #[test]
    fn protected_paths() {
        let cases = [
            ("/", true),
            ("/index.html", true),
            ("/assets/app.js", true),
            ("/v1/runs", true),
            ("/v1/stream", true),
            ("/v1/events", true),
            ("/login", false),
            ("/logout", false),
            ("/assets/login.css", false),
            ("/v1/checkpoint/01H/async", false),
            ("/e/key", false),
            ("/fn/register", false),
            ("/v0/runs/x/actions", false),
            ("/health", false),
        ];
        for (path, want) in cases {
            assert_eq!(is_protected(path), want, "{path}");
        }
    }

    fn app(auth: Auth) -> Router {
        Router::new()
            .route("/", get(index))
            .route("/assets/{*path}", get(asset))
            .route("/login", get(login_page).post(login))
            .route("/v1/runs", get(|| async { "runs" }))
            .route("/e/{key}", axum::routing::post(|| async { "ingested" }))
            .layer(middleware::from_fn_with_state(auth.clone(), require_auth))
            .with_state(auth)
    }

    async fn call(app: &Router, req: Request<Body>) -> (StatusCode, HeaderMap, String) {
        let resp = app.clone().oneshot(req).await.unwrap();
        let (parts, body) = resp.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        (
            parts.status,
            parts.headers,
            String::from_utf8_lossy(&bytes).into_owned(),
        )
    }

    fn get_req(path: &str, cookie: Option<&str>, bearer: Option<&str>) -> Request<Body> {
        let mut b = Request::get(path);
        if let Some(c) = cookie {
            b = b.header(header::COOKIE, format!("theme=dark; {SESSION_COOKIE}={c}"));
        }
        if let Some(t) = bearer {
            b = b.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        b.body(Body::empty()).unwrap()
    }

    fn login_req(token: &str) -> Request<Body> {
        Request::post("/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(format!("token={token}")))
            .unwrap()
    }

    #[tokio::test]
    async fn token_mode_guards_pages_and_api_and_login_sets_a_cookie() {
        let app = app(Auth::token("s3cret"));
        // Unauthenticated: pages redirect, the API refuses, ingest passes through.
        let (s, h, _) = call(&app, get_req("/", None, None)).await;
        assert_eq!(
            (s, &h[header::LOCATION]),
            (StatusCode::SEE_OTHER, &HeaderValue::from_static("/login"))
        );
        let (s, _, body) = call(&app, get_req("/v1/runs", None, None)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        assert!(body.contains("\"code\":\"unauthorized\""), "{body}");
        let (s, _, _) = call(&app, get_req("/assets/app.js", Some("forged"), None)).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let (s, _, body) = call(&app, Request::post("/e/k").body(Body::empty()).unwrap()).await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "ingested"));
        let (s, h, body) = call(&app, get_req("/login", None, None)).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            body.contains("<form")
                && h["content-security-policy"]
                    .to_str()
                    .unwrap()
                    .contains("default-src 'self'")
        );

        // A wrong token is refused; the right one gets an HTTP-only session cookie.
        let (s, h, _) = call(&app, login_req("nope")).await;
        assert_eq!(
            (s, &h[header::LOCATION]),
            (
                StatusCode::SEE_OTHER,
                &HeaderValue::from_static("/login?error=1")
            )
        );
        assert!(h.get(header::SET_COOKIE).is_none());
        let (s, h, _) = call(&app, login_req("s3cret")).await;
        assert_eq!(s, StatusCode::SEE_OTHER);
        let set = h[header::SET_COOKIE].to_str().unwrap().to_owned();
        assert!(
            set.contains("HttpOnly") && set.contains("SameSite=Strict"),
            "{set}"
        );
        let value = set
            .split(';')
            .next()
            .unwrap()
            .split_once('=')
            .unwrap()
            .1
            .to_owned();
        assert!(!value.is_empty() && !value.contains("s3cret"));

        // The cookie or the bearer token opens pages and the API.
        let (s, h, body) = call(&app, get_req("/", Some(&value), None)).await;
        assert_eq!(s, StatusCode::OK);
        assert!(
            body.contains("<script type=\"module\"")
                && h[header::CONTENT_TYPE] == "text/html; charset=utf-8"
        );
        let (s, _, body) = call(&app, get_req("/v1/runs", None, Some("s3cret"))).await;
        assert_eq!((s, body.as_str()), (StatusCode::OK, "runs"));
        let (s, _, _) = call(&app, get_req("/v1/runs", None, Some("s3cre"))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        // Another token's cookie does not.
        let other = Auth::token("other").secret.unwrap().session.clone();
        let (s, _, _) = call(&app, get_req("/v1/runs", Some(&other), None)).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
    }

    #[tokio::test]
    async fn open_mode_serves_assets_with_etags() {
        let app = app(Auth::open());
        let (s, h, body) = call(&app, get_req("/assets/app.js", None, None)).await;
        assert_eq!(s, StatusCode::OK);
        assert_eq!(h[header::CONTENT_TYPE], "text/javascript; charset=utf-8");
        assert!(body.contains("import"));
        let etag = h[header::ETAG].clone();
        let req = Request::get("/assets/app.js")
            .header(header::IF_NONE_MATCH, etag)
            .body(Body::empty())
            .unwrap();
        assert_eq!(call(&app, req).await.0, StatusCode::NOT_MODIFIED);
        assert_eq!(
            call(&app, get_req("/assets/nope.js", None, None)).await.0,
            StatusCode::NOT_FOUND
        );
        assert_eq!(
            call(&app, get_req("/assets/../Cargo.toml", None, None))
                .await
                .0,
            StatusCode::NOT_FOUND
        );
        // Signing in is pointless when open: /login goes home; the API is open.
        assert_eq!(
            call(&app, get_req("/login", None, None)).await.0,
            StatusCode::SEE_OTHER
        );
        assert_eq!(
            call(&app, get_req("/v1/runs", None, None)).await.0,
            StatusCode::OK
        );
        // An empty configured token locks everyone out instead of letting everyone in.
        let locked = self::app(Auth::token(""));
        assert_eq!(
            call(&locked, login_req("")).await.1[header::LOCATION],
            "/login?error=1"
        );
        assert_eq!(
            call(&locked, get_req("/v1/runs", None, Some(""))).await.0,
            StatusCode::UNAUTHORIZED
        );
    }
}
