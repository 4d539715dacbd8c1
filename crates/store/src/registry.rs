//! Apps and their functions, as synced from SDKs.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sluice_core::{AppId, FunctionId, Millis};

/// A synced (or attempted) app.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    pub id: AppId,
    /// The app's own id (TS `appName`, Python `appname`). For an app that has never
    /// synced successfully this is its URL.
    pub name: String,
    /// Normalised serve URL (no `deployId`/`probe`).
    pub url: String,
    /// SDK as reported in the register body, e.g. `js:v4.24.0`.
    pub sdk: Option<String>,
    /// Framework, e.g. `express`.
    pub framework: Option<String>,
    /// Number of functions currently registered.
    pub function_count: i64,
    /// Last successful sync.
    pub last_synced_at: Option<Millis>,
    /// Error of the last failed sync attempt; cleared by a successful sync.
    pub sync_error: Option<String>,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// A trigger of a function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Trigger {
    /// Runs on an event whose name matches `event` (exact, or `prefix/*`) and for which
    /// the CEL `expression` (if any) holds.
    Event {
        event: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expression: Option<String>,
    },
    /// Runs on a cron schedule.
    Cron {
        cron: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jitter: Option<String>,
    },
}

/// A registered function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    /// Internal id, stable across re-syncs of the same slug.
    pub id: FunctionId,
    pub app_id: AppId,
    /// The SDK's composite id, `<app>-<fn>`; unique.
    pub slug: String,
    pub name: String,
    pub triggers: Vec<Trigger>,
    /// The full function config exactly as the SDK registered it.
    pub config: Value,
    pub created_at: Millis,
    pub updated_at: Millis,
}

/// One function in a sync.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionDef {
    pub slug: String,
    pub name: String,
    pub triggers: Vec<Trigger>,
    pub config: Value,
}

/// A successful sync of an app: replaces the app's function set atomically.
#[derive(Debug, Clone, PartialEq)]
pub struct AppSync {
    pub name: String,
    pub url: String,
    pub sdk: Option<String>,
    pub framework: Option<String>,
    pub functions: Vec<FunctionDef>,
    pub now: Millis,
}

/// What a sync changed.
#[derive(Debug, Clone, PartialEq)]
pub struct Synced {
    pub app: App,
    /// The app's functions after the sync.
    pub functions: Vec<Function>,
    /// Whether anything (URL, SDK, function set or any config) differs from before.
    pub modified: bool,
}
