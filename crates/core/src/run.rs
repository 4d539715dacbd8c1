//! The run state machine.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    /// Created, its first call not yet made.
    Queued,
    /// At least one call made; not finished (includes sleeping and waiting).
    Running,
    /// Finished: the function returned.
    Completed,
    /// Finished: the function (or a step it didn't catch) failed for good.
    Failed,
    /// Finished: cancelled by an event, the API, a timeout or a singleton.
    Cancelled,
}

impl RunStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [RunStatus; 5] = [
        RunStatus::Queued,
        RunStatus::Running,
        RunStatus::Completed,
        RunStatus::Failed,
        RunStatus::Cancelled,
    ];

    /// The lowercase text form stored and served.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
        }
    }

    /// Whether the run has ended (no more calls).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }
}

impl fmt::Display for RunStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A status text that is not one of [`RunStatus::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown run status {0:?}; expected queued, running, completed, failed or cancelled")]
pub struct UnknownStatus(pub String);

impl FromStr for RunStatus {
    type Err = UnknownStatus;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RunStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_end() {
        let cases = [
            (RunStatus::Queued, "queued", false),
            (RunStatus::Running, "running", false),
            (RunStatus::Completed, "completed", true),
            (RunStatus::Failed, "failed", true),
            (RunStatus::Cancelled, "cancelled", true),
        ];
        assert_eq!(cases.len(), RunStatus::ALL.len());
        for (status, text, terminal) in cases {
            assert_eq!(status.as_str(), text);
            assert_eq!(status.to_string(), text);
            assert_eq!(text.parse::<RunStatus>(), Ok(status));
            assert_eq!(status.is_terminal(), terminal, "{text}");
            assert_eq!(serde_json::to_value(status).unwrap(), text);
            assert_eq!(
                serde_json::from_value::<RunStatus>(text.into()).unwrap(),
                status
            );
        }
        for bad in ["Queued", "done", ""] {
            assert_eq!(bad.parse::<RunStatus>(), Err(UnknownStatus(bad.to_owned())));
        }
    }
}
