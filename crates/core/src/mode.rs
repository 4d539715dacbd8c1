//! [`Mode`]: how a Sluice deployment runs, as every component sees it.

use serde::{Deserialize, Serialize};

/// `sluice dev` or `sluice start`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Local development: embedded SQLite, any event key, nothing signed or checked,
    /// an open dashboard.
    #[default]
    Dev,
    /// Production: configured event keys only; calls are signed, SDK replies and
    /// Bearer tokens checked; the dashboard and REST API need a sign-in.
    Start,
}
