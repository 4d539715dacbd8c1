//! Syncing apps: `PUT` to an app's serve URL makes its SDK register its functions
//! (`POST /fn/register`). [`AppSyncer`] does that for the URLs it is given, retries
//! with backoff until it works, then probes each app (`GET`) so that an app that went
//! down is synced again when it comes back. Failures are recorded on the app
//! (`store.record_sync_error`) for the dashboard.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sluice_core::Millis;
use sluice_store::{App, DynStore};
use tokio::task::AbortHandle;

use crate::service::Broker;
use crate::{Error, Result};

/// How [`AppSyncer`] works.
#[derive(Debug, Clone)]
pub struct SyncOptions {
    /// App serve URLs to sync at start-up and keep synced (`sluice dev -u URL`).
    pub urls: Vec<String>,
    /// `X-Inngest-Server-Kind` sent with each `PUT`: `dev` or `cloud`.
    pub server_kind: String,
    /// Delay before the first retry of a failed sync; doubles up to `max_backoff`.
    pub min_backoff: Duration,
    /// Longest delay between retries of a failing sync.
    pub max_backoff: Duration,
    /// How often a synced app is probed (`GET`) to notice it went down.
    pub probe_interval: Duration,
    /// Timeout of one `PUT` (the SDK registers before it answers) or probe.
    pub request_timeout: Duration,
}

impl Default for SyncOptions {
    fn default() -> Self {
        Self {
            urls: Vec::new(),
            server_kind: "dev".into(),
            min_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(10),
            probe_interval: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
        }
    }
}

#[derive(Debug)]
struct Inner {
    store: DynStore,
    broker: Broker,
    client: reqwest::Client,
    options: SyncOptions,
    /// Watched URL (as given) → its watch task.
    watched: Mutex<HashMap<String, AbortHandle>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Ok(watched) = self.watched.get_mut() {
            for task in watched.values() {
                task.abort();
            }
        }
    }
}

/// A handle to the app syncer; clone it freely. Watch tasks stop when the last handle
/// is dropped.
#[derive(Debug, Clone)]
pub struct AppSyncer {
    inner: Arc<Inner>,
}

impl AppSyncer {
    /// Starts watching `options.urls` (needs a tokio runtime). Call it once the API
    /// is listening: the SDK registers by calling back into it.
    pub fn start(store: DynStore, broker: Broker, options: SyncOptions) -> Result<AppSyncer> {
        let client = reqwest::Client::builder()
            .timeout(options.request_timeout)
            .build()
            .map_err(|e| Error::Sync {
                url: String::new(),
                message: format!("cannot build the HTTP client: {e}"),
            })?;
        let urls = options.urls.clone();
        let syncer = AppSyncer {
            inner: Arc::new(Inner {
                store,
                broker,
                client,
                options,
                watched: Mutex::new(HashMap::new()),
            }),
        };
        for url in urls {
            syncer.watch(&url);
        }
        Ok(syncer)
    }

    /// The URLs being kept synced.
    pub fn watched(&self) -> Vec<String> {
        let mut urls: Vec<String> = self.lock().keys().cloned().collect();
        urls.sort();
        urls
    }

    /// Keeps `url` synced from now on (no-op when already watched).
    pub fn watch(&self, url: &str) {
        let mut watched = self.lock();
        if watched.contains_key(url) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        let url_owned = url.to_owned();
        let task = tokio::spawn(async move { watch_loop(weak, url_owned).await });
        watched.insert(url.to_owned(), task.abort_handle());
    }

    /// Syncs the app at `url` now: `PUT`s it and returns the app as stored after the
    /// SDK registered (`None` if the SDK registered under another URL). A failure is
    /// recorded on the app and returned as [`Error::Sync`].
    pub async fn sync(&self, url: &str) -> Result<Option<App>> {
        sync_once(&self.inner, url).await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, AbortHandle>> {
        self.inner.watched.lock().expect("syncer lock")
    }
}

async fn watch_loop(inner: std::sync::Weak<Inner>, url: String) {
    let mut backoff: Option<Duration> = None;
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let options = strong.options.clone();
        match sync_once(&strong, &url).await {
            Ok(_) => {
                backoff = None;
                drop(strong);
                // Synced: probe until the app stops answering, then sync again.
                loop {
                    tokio::time::sleep(options.probe_interval).await;
                    let Some(strong) = inner.upgrade() else {
                        return;
                    };
                    if !probe(&strong.client, &url).await {
                        tracing::info!(app.url = %url, "app stopped answering; will sync it when it is back");
                        break;
                    }
                }
            }
            Err(_) => {
                drop(strong);
                let delay =
                    backoff.map_or(options.min_backoff, |d| (d * 2).min(options.max_backoff));
                backoff = Some(delay);
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// Whether the app answers HTTP at all.
async fn probe(client: &reqwest::Client, url: &str) -> bool {
    client.get(url).send().await.is_ok()
}

async fn sync_once(inner: &Inner, url: &str) -> Result<Option<App>> {
    let normalized = sluice_protocol::normalize_app_url(url);
    let outcome = inner
        .client
        .put(url)
        .header("x-inngest-server-kind", &inner.options.server_kind)
        .send()
        .await;
    let failure = match outcome {
        Err(err) => Some(format!("app did not answer: {}", without_url(&err))),
        Ok(response) if response.status().is_success() => None,
        Ok(response) => {
            let status = response.status();
            let body = response.bytes().await.unwrap_or_default();
            Some(format!("app answered {status}: {}", reply_message(&body)))
        }
    };
    if let Some(message) = failure {
        tracing::warn!(app.url = %normalized, error = %message, "app sync failed");
        if let Err(err) = inner
            .store
            .record_sync_error(&normalized, &message, Millis::now())
            .await
        {
            tracing::error!(app.url = %normalized, error = %err, "cannot record the sync error");
        }
        return Err(Error::Sync {
            url: normalized,
            message,
        });
    }
    inner.broker.registry_changed();
    let apps = inner.store.list_apps().await?;
    Ok(apps.into_iter().find(|a| a.url == normalized))
}

fn without_url(err: &reqwest::Error) -> String {
    let mut message = err.to_string();
    if let Some(url) = err.url() {
        message = message.replace(&format!(" ({url})"), "");
    }
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        message = format!("{message}: {cause}");
        source = cause.source();
    }
    message
}

/// The message of an SDK's reply to the sync `PUT` (`message` or `error`), bounded.
fn reply_message(body: &[u8]) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    let text = parsed
        .as_ref()
        .and_then(|v| {
            v.get("message")
                .or_else(|| v.get("error"))
                .and_then(serde_json::Value::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let text = text.trim();
    match text.char_indices().nth(300) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None if text.is_empty() => "no details".into(),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sdk_replies_are_read() {
        assert_eq!(
            reply_message(br#"{"message":"bad key","modified":false}"#),
            "bad key"
        );
        assert_eq!(reply_message(br#"{"error":"nope","status":400}"#), "nope");
        assert_eq!(reply_message(b"plain"), "plain");
        assert_eq!(reply_message(b""), "no details");
        assert_eq!(reply_message(&[b'x'; 400]).chars().count(), 301);
    }
}
