//! The client: sends events to the event API.

use crate::config::Config;
use crate::event::Event;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::{Deserialize, Serialize};
use sluice_protocol::event::EVENT_ID_SEED_HEADER;
use std::sync::Arc;
use std::time::Duration;

/// The SDK's name and version, as sent in `x-inngest-sdk`.
///
/// ```
/// assert!(sluice_sdk::client::SDK_HEADER_VALUE.starts_with("rust:v"));
/// ```
pub const SDK_HEADER_VALUE: &str = concat!("rust:v", env!("CARGO_PKG_VERSION"));
/// How many times a failed send is tried in all, with the same id seed.
const SEND_ATTEMPTS: u32 = 5;

/// Why events could not be sent.
///
/// ```
/// let e = sluice_sdk::client::Error::NoEventKey;
/// assert!(e.to_string().contains("INNGEST_EVENT_KEY"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Cloud mode needs an event key.
    #[error("no event key; set INNGEST_EVENT_KEY or Config::event_key (or use dev mode)")]
    NoEventKey,
    /// The request failed.
    #[error("sending events failed: {0}")]
    Http(#[from] reqwest::Error),
    /// The event API refused the events.
    #[error("the event API answered {status}: {message}")]
    Rejected {
        /// The HTTP status.
        status: u16,
        /// The API's error message.
        message: String,
    },
    /// An event's data could not be serialised.
    #[error("event data is not JSON: {0}")]
    Data(#[from] serde_json::Error),
}

/// `Result` with this module's [`Error`].
///
/// ```
/// fn none() -> sluice_sdk::client::Result<()> { Ok(()) }
/// ```
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The ids the event API gave the sent events, in order.
///
/// ```
/// let sent = sluice_sdk::SendResult { ids: vec!["01K…".into()] };
/// assert_eq!(sent.ids.len(), 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResult {
    /// One ULID per event.
    #[serde(default)]
    pub ids: Vec<String>,
}

/// A handle on the server: sends events. Cheap to clone.
///
/// ```no_run
/// # async fn demo() -> Result<(), sluice_sdk::client::Error> {
/// use sluice_sdk::{Client, Config, Event};
/// use serde_json::json;
///
/// let client = Client::new(Config::from_env("shop"));
/// let sent = client.send(Event::new("user/signup", json!({"email": "a@example.com"}))).await?;
/// println!("event id {}", sent.ids[0]);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Client {
    config: Arc<Config>,
    http: reqwest::Client,
}

impl Client {
    /// A client for `config`.
    ///
    /// ```
    /// let client = sluice_sdk::Client::new(sluice_sdk::Config::new("shop"));
    /// assert_eq!(client.config().app_id(), "shop");
    /// ```
    pub fn new(config: Config) -> Self {
        Self {
            config: Arc::new(config),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
        }
    }

    /// The configuration.
    ///
    /// ```
    /// let client = sluice_sdk::Client::new(sluice_sdk::Config::new("shop"));
    /// assert_eq!(client.config().served_path(), "/api/inngest");
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Sends one event.
    ///
    /// ```no_run
    /// # async fn demo(client: sluice_sdk::Client) -> Result<(), sluice_sdk::client::Error> {
    /// let sent = client.send(sluice_sdk::Event::new("app/ping", serde_json::json!({}))).await?;
    /// # Ok(()) }
    /// ```
    pub async fn send<T: Serialize>(&self, event: Event<T>) -> Result<SendResult> {
        self.send_many(std::slice::from_ref(&event)).await
    }

    /// Sends several events in one request. Failed requests are retried (five tries
    /// in all) with the same `x-inngest-event-id-seed`, so the server gives the
    /// events the same ids every time.
    ///
    /// ```no_run
    /// # async fn demo(client: sluice_sdk::Client) -> Result<(), sluice_sdk::client::Error> {
    /// use sluice_sdk::Event;
    /// use serde_json::json;
    /// let sent = client
    ///     .send_many(&[Event::new("a/one", json!({})), Event::new("a/two", json!({}))])
    ///     .await?;
    /// assert_eq!(sent.ids.len(), 2);
    /// # Ok(()) }
    /// ```
    pub async fn send_many<T: Serialize>(&self, events: &[Event<T>]) -> Result<SendResult> {
        if events.is_empty() {
            return Ok(SendResult::default());
        }
        let key = self
            .config
            .event_key_or_default()
            .ok_or(Error::NoEventKey)?;
        let now = chrono::Utc::now().timestamp_millis();
        let body = events_body(events, now)?;
        let seed = event_id_seed(now, rand::random());
        let url = format!("{}/e/{key}", self.config.event_origin());
        let mut attempt = 0;
        loop {
            attempt += 1;
            let mut request = self
                .http
                .post(&url)
                .header("content-type", "application/json")
                .header("user-agent", SDK_HEADER_VALUE)
                .header("x-inngest-sdk", SDK_HEADER_VALUE)
                .header(EVENT_ID_SEED_HEADER, &seed)
                .body(body.clone());
            if let Some(env) = self.config.env_name() {
                request = request.header("x-inngest-env", env);
            }
            let result = match request.send().await {
                Ok(response) => read_send_reply(response).await,
                Err(error) => Err(Error::Http(error)),
            };
            match result {
                Err(error) if attempt < SEND_ATTEMPTS && transient(&error) => {
                    tracing::debug!(%error, attempt, "retrying the event send");
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                other => return other,
            }
        }
    }
}

fn transient(error: &Error) -> bool {
    match error {
        Error::Http(_) => true,
        Error::Rejected { status, .. } => *status >= 500 || *status == 429,
        Error::NoEventKey | Error::Data(_) => false,
    }
}

async fn read_send_reply(response: reqwest::Response) -> Result<SendResult> {
    #[derive(Deserialize)]
    struct Reply {
        #[serde(default)]
        ids: Vec<String>,
        #[serde(default)]
        status: Option<u16>,
        #[serde(default)]
        error: Option<String>,
    }
    let http_status = response.status().as_u16();
    let text = response.text().await?;
    let reply: Option<Reply> = serde_json::from_str(&text).ok();
    match reply {
        Some(Reply {
            ids,
            status,
            error: None,
        }) if http_status == 200 && status.unwrap_or(200) == 200 => Ok(SendResult { ids }),
        Some(reply) => Err(Error::Rejected {
            status: reply.status.unwrap_or(http_status),
            message: reply.error.unwrap_or_else(|| "no error message".to_owned()),
        }),
        None => Err(Error::Rejected {
            status: http_status,
            message: text.chars().take(200).collect(),
        }),
    }
}

/// The JSON array sent to `/e/{key}`: each event with `ts` (now, when unset) and
/// `data` (`{}` when null).
pub(crate) fn events_body<T: Serialize>(events: &[Event<T>], now_ms: i64) -> Result<Vec<u8>> {
    let mut list = Vec::with_capacity(events.len());
    for event in events {
        let mut value = serde_json::to_value(event)?;
        if let Some(map) = value.as_object_mut() {
            if map.get("data").is_none_or(|d| d.is_null()) {
                map.insert("data".into(), serde_json::json!({}));
            }
            map.entry("ts").or_insert(now_ms.into());
        }
        list.push(value);
    }
    Ok(serde_json::to_vec(&list)?)
}

/// `<unix ms>,<base64 of 10 random bytes>`: the seed the server derives event ids from.
pub(crate) fn event_id_seed(now_ms: i64, entropy: [u8; 10]) -> String {
    format!("{now_ms},{}", STANDARD.encode(entropy))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};
    use sluice_protocol::event::seeded_ulids;

    #[test]
    fn body_and_seed_match_the_wire() {
        let events = [
            Event::new("demo/sent", json!({"id": "x1"})),
            Event::new("demo/empty", Value::Null)
                .with_id("k")
                .with_ts(5),
        ];
        let body: Value =
            serde_json::from_slice(&events_body(&events, 1796396709977).unwrap()).unwrap();
        // As the TS SDK sent it (captured): an array, `ts` filled in.
        assert_eq!(
            body,
            json!([
                {"name": "demo/sent", "data": {"id": "x1"}, "ts": 1796396709977_i64},
                {"name": "demo/empty", "data": {}, "id": "k", "ts": 5},
            ])
        );

        let seed = event_id_seed(1764000000000, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
        assert_eq!(seed, "1764000000000,AAECAwQFBgcICQ==");
        let ids = seeded_ulids(&seed, 2).unwrap();
        assert_eq!(
            ids[0].timestamp_ms(),
            1764000000000,
            "the server can read the seed"
        );
        assert_ne!(ids[0], ids[1]);
    }
}
