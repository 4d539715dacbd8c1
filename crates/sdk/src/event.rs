//! Events: what apps send and what functions receive.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// An event, with its `data` typed as `T` (untyped by default).
///
/// Received events carry the server's `id` and `ts`; when sending, leave them unset
/// (`ts` is filled with the current time, `id` is only an idempotency key).
///
/// ```
/// use serde::{Deserialize, Serialize};
/// use sluice_sdk::Event;
///
/// #[derive(Serialize, Deserialize)]
/// struct Signup { email: String }
///
/// let typed = Event::new("user/signup", Signup { email: "a@example.com".into() });
/// let untyped: Event = Event::new("user/signup", serde_json::json!({"email": "a@example.com"}));
/// assert_eq!(typed.name, untyped.name);
/// ```
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: DeserializeOwned"))]
pub struct Event<T = Value> {
    /// The event name, e.g. `"user/signup"`. Names under `inngest/` are reserved.
    pub name: String,
    /// The payload (the server always sends one; `{}` when the sender gave none).
    pub data: T,
    /// The event id: assigned by the server, or an idempotency key when sending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// When the event happened, in Unix milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ts: Option<i64>,
    /// An optional schema version of the payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
}

impl<T> Event<T> {
    /// An event to send, with no id and no timestamp.
    ///
    /// ```
    /// let e = sluice_sdk::Event::new("app/ping", serde_json::json!({}));
    /// assert!(e.id.is_none());
    /// ```
    pub fn new(name: impl Into<String>, data: T) -> Self {
        Self {
            name: name.into(),
            data,
            id: None,
            ts: None,
            v: None,
        }
    }

    /// Sets the idempotency id: the server accepts one event per id per 24 h.
    ///
    /// ```
    /// let e = sluice_sdk::Event::new("order/paid", serde_json::json!({})).with_id("order-9");
    /// assert_eq!(e.id.as_deref(), Some("order-9"));
    /// ```
    pub fn with_id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Sets the timestamp (Unix milliseconds).
    ///
    /// ```
    /// let e = sluice_sdk::Event::new("app/tick", serde_json::json!({})).with_ts(1_764_000_000_000);
    /// assert_eq!(e.ts, Some(1_764_000_000_000));
    /// ```
    pub fn with_ts(mut self, ts: i64) -> Self {
        self.ts = Some(ts);
        self
    }
}

/// The payload of `inngest/function.failed`, the event an `on_failure` handler gets.
///
/// ```
/// # use sluice_sdk::{FunctionFailed, Input, Step};
/// async fn alert(input: Input<FunctionFailed>, _step: Step) -> sluice_sdk::Result<()> {
///     let failed = &input.event.data;
///     eprintln!("{} failed in run {}: {}", failed.function_id, failed.run_id, failed.error.message);
///     Ok(())
/// }
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionFailed {
    /// The composite id of the function that failed (`<app>-<function>`).
    #[serde(default)]
    pub function_id: String,
    /// The failed run.
    #[serde(default)]
    pub run_id: String,
    /// Why it failed.
    #[serde(default)]
    pub error: FailureError,
    /// The event that triggered the failed run.
    #[serde(default)]
    pub event: Option<Event>,
}

/// The error of a failed run, in [`FunctionFailed`].
///
/// ```
/// let e = sluice_sdk::FailureError::default();
/// assert!(e.message.is_empty());
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FailureError {
    /// The error's name, e.g. `"Error"`.
    #[serde(default)]
    pub name: String,
    /// The error's message.
    #[serde(default)]
    pub message: String,
}
