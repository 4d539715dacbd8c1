//! App syncing over real sockets (127.0.0.1): the syncer `PUT`s a fake SDK app, which
//! registers by calling back into the API, as the real SDKs do.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{Request, StatusCode};
use axum::response::IntoResponse;
use axum::routing::put;
use serde_json::{Value, json};
use sluice_api::{ApiOptions, AppState, router};
use sluice_broker::{AppSyncer, Broker, BrokerOptions, SyncOptions};
use sluice_store::{App, DynStore};
use sluice_store_sqlite::SqliteStore;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tower::ServiceExt;

/// A fake SDK app: on `PUT` it registers `functions` with the API and answers with the
/// register reply's `status`, as the TS SDK does.
#[derive(Clone)]
struct FakeApp {
    api: String,
    url: String,
    functions: Arc<Mutex<Vec<&'static str>>>,
}

async fn on_put(State(app): State<FakeApp>) -> impl IntoResponse {
    let functions: Vec<Value> = app
        .functions
        .lock()
        .unwrap()
        .iter()
        .map(|id| {
            json!({"id": format!("synced-{id}"), "name": id, "triggers": [{"event": format!("demo/{id}")}],
                "steps": {"step": {"id": "step", "name": "step", "runtime": {"type": "http",
                    "url": format!("{}?fnId=synced-{id}&stepId=step", app.url)}}}})
        })
        .collect();
    let body = json!({"url": app.url, "appName": "synced", "deployType": "ping", "sdk": "js:v4.24.0",
        "framework": "express", "functions": functions});
    let reply: Value = reqwest::Client::new()
        .post(format!("{}/fn/register", app.api))
        .json(&body)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let status = StatusCode::from_u16(reply["status"].as_u64().unwrap_or(200) as u16).unwrap();
    (
        status,
        axum::Json(json!({"message": reply["error"], "modified": reply["modified"]})),
    )
}

/// Serves the fake app on `listener` until the returned sender is dropped or fired.
fn serve_app(listener: TcpListener, app: FakeApp) -> oneshot::Sender<()> {
    let (stop, stopped) = oneshot::channel::<()>();
    let router = Router::new()
        .route("/api/inngest", put(on_put).get(|| async { "{}" }))
        .with_state(app);
    tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(async {
                let _ = stopped.await;
            })
            .await
            .unwrap();
    });
    stop
}

async fn until<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("timed out waiting for {what}");
}

async fn app_at(store: &DynStore, url: &str) -> Option<App> {
    store
        .list_apps()
        .await
        .unwrap()
        .into_iter()
        .find(|a| a.url == url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn syncer_retries_records_failures_and_resyncs_an_app_that_comes_back() {
    let store: DynStore = Arc::new(SqliteStore::temporary().await.unwrap());
    let broker = Broker::start(store.clone(), BrokerOptions::default())
        .await
        .unwrap();

    // The app's port, free for now: the app is down.
    let app_port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app_url = format!("http://127.0.0.1:{app_port}/api/inngest");
    let stored_url = format!("http://localhost:{app_port}/api/inngest");

    let api_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_url = format!("http://{}", api_listener.local_addr().unwrap());
    let syncer = AppSyncer::start(
        store.clone(),
        broker.clone(),
        SyncOptions {
            urls: vec![app_url.clone()],
            min_backoff: Duration::from_millis(20),
            max_backoff: Duration::from_millis(100),
            probe_interval: Duration::from_millis(50),
            request_timeout: Duration::from_secs(5),
            ..SyncOptions::default()
        },
    )
    .unwrap();
    let state = AppState::new(store.clone(), broker, ApiOptions::default()).with_syncer(syncer);
    let api = router(state);
    tokio::spawn(axum::serve(api_listener, api.clone()).into_future());

    // Down: the failure is recorded on a placeholder app.
    until("a recorded sync failure", || async {
        app_at(&store, &stored_url)
            .await
            .is_some_and(|a| a.sync_error.is_some())
    })
    .await;

    // Up: synced, error cleared.
    let functions = Arc::new(Mutex::new(vec!["a", "b"]));
    let fake = FakeApp {
        api: api_url.clone(),
        url: app_url.clone(),
        functions: functions.clone(),
    };
    let listener = TcpListener::bind(("127.0.0.1", app_port)).await.unwrap();
    let stop = serve_app(listener, fake.clone());
    until("the first sync", || async {
        app_at(&store, &stored_url)
            .await
            .is_some_and(|a| a.name == "synced" && a.sync_error.is_none() && a.function_count == 2)
    })
    .await;
    assert_eq!(
        store.list_apps().await.unwrap().len(),
        1,
        "placeholder merged"
    );

    // Down again, then back with one function fewer: re-synced on its return.
    let _ = stop.send(());
    until("the outage to be noticed", || async {
        app_at(&store, &stored_url)
            .await
            .is_some_and(|a| a.sync_error.is_some())
    })
    .await;
    functions.lock().unwrap().retain(|f| *f != "b");
    let listener = TcpListener::bind(("127.0.0.1", app_port)).await.unwrap();
    let _stop = serve_app(listener, fake);
    until("the re-sync", || async {
        app_at(&store, &stored_url)
            .await
            .is_some_and(|a| a.sync_error.is_none() && a.function_count == 1)
    })
    .await;

    // On demand: `POST /v1/apps/{id}/sync`.
    functions.lock().unwrap().push("c");
    let id = app_at(&store, &stored_url).await.unwrap().id;
    let (status, body) = call(&api, &format!("/v1/apps/{id}/sync"), "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["functions"].as_array().unwrap().len(), 2);

    // `POST /v1/apps` with an app that does not answer: 502, failure stored.
    let dead_port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead = format!("http://127.0.0.1:{dead_port}/api/inngest");
    let (status, body) = call(&api, "/v1/apps", &json!({"url": dead}).to_string()).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_GATEWAY, json!("sync_failed"))
    );
    let placeholder = app_at(&store, &format!("http://localhost:{dead_port}/api/inngest"))
        .await
        .unwrap();
    assert!(placeholder.sync_error.unwrap().contains("did not answer"));
    let (status, body) = call(&api, "/v1/apps", r#"{"url":"ftp://x"}"#).await;
    assert_eq!(
        (status, body["code"].clone()),
        (StatusCode::BAD_REQUEST, json!("invalid_url"))
    );
}

async fn call(api: &Router, uri: &str, body: &str) -> (StatusCode, Value) {
    let response = api
        .clone()
        .oneshot(
            Request::post(uri)
                .header("content-type", "application/json")
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
        .unwrap();
    let status = response.status();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}
