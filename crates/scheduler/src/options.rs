//! [`SchedulerOptions`]: how a node claims, leases and commits queue items.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How the scheduler of one node works the queue. Durations are human strings in
/// config files (`"30s"`, `"250us"`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SchedulerOptions {
    /// This node's name: the owner of its leases and leader leases. Must differ
    /// between nodes sharing a database.
    pub node_id: String,
    /// Most items dispatched at once on this node (calls in flight).
    pub concurrency: usize,
    /// Most items leased by one claim.
    pub claim_batch: u32,
    /// How long a claim (or a heartbeat) leases an item. A node that dies holding a
    /// lease delays its items by at most this, plus `rescue_every`.
    #[serde(with = "human")]
    pub lease: Duration,
    /// How often the leases of in-flight items are extended. Well under `lease`.
    #[serde(with = "human")]
    pub heartbeat_every: Duration,
    /// A slow fallback claim when no wake-up arrived (wake-ups are pushed; this only
    /// covers a lost notification).
    #[serde(with = "human")]
    pub safety_poll: Duration,
    /// How often the leader re-queues expired leases and drops expired waits.
    #[serde(with = "human")]
    pub rescue_every: Duration,
    /// Most commits written in one transaction (group commit).
    pub commit_batch: usize,
    /// Transactions in flight at once. 1 suits SQLite (one writer); Postgres gains
    /// from a few.
    pub committers: usize,
    /// How long a commit waits for others to join its transaction when more calls
    /// are in flight. Zero: take whatever is pending when the previous one ends.
    #[serde(with = "human")]
    pub commit_linger: Duration,
    /// On shutdown, how long in-flight calls may take before their items are
    /// released back to the queue.
    #[serde(with = "human")]
    pub shutdown_grace: Duration,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            node_id: "sluice".to_owned(),
            concurrency: 512,
            claim_batch: 64,
            lease: Duration::from_secs(30),
            heartbeat_every: Duration::from_secs(10),
            safety_poll: Duration::from_secs(5),
            rescue_every: Duration::from_secs(5),
            commit_batch: 256,
            committers: 2,
            commit_linger: Duration::from_micros(250),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

impl SchedulerOptions {
    /// Checks the options hang together.
    pub fn validate(&self) -> crate::Result<()> {
        let bad = |msg: &str| Err(crate::Error::Options(msg.to_owned()));
        if self.node_id.is_empty() {
            return bad("node_id must not be empty");
        }
        if self.concurrency == 0 || self.claim_batch == 0 {
            return bad("concurrency and claim_batch must be at least 1");
        }
        if self.commit_batch == 0 || self.committers == 0 {
            return bad("commit_batch and committers must be at least 1");
        }
        if self.heartbeat_every >= self.lease {
            return bad("heartbeat_every must be shorter than lease (a third of it is usual)");
        }
        if self.lease < Duration::from_millis(10) {
            return bad("lease must be at least 10ms");
        }
        Ok(())
    }

    pub(crate) fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }
}

/// Serde for durations as human strings (`"30s"`, `"1m 30s"`).
pub(crate) mod human {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_human_durations_and_validates() {
        let opts: SchedulerOptions = serde_json::from_value(serde_json::json!({
            "node_id": "n1", "lease": "2s", "heartbeat_every": "500ms", "commit_linger": "0s"
        }))
        .unwrap();
        assert_eq!(opts.lease, Duration::from_secs(2));
        assert_eq!(opts.heartbeat_every, Duration::from_millis(500));
        assert_eq!(opts.commit_linger, Duration::ZERO);
        assert_eq!(opts.concurrency, SchedulerOptions::default().concurrency);
        opts.validate().unwrap();
        let back = serde_json::to_value(&opts).unwrap();
        assert_eq!(back["lease"], "2s");

        let bad = SchedulerOptions {
            heartbeat_every: Duration::from_secs(30),
            ..SchedulerOptions::default()
        };
        assert!(bad.validate().is_err());
        assert!(
            serde_json::from_value::<SchedulerOptions>(serde_json::json!({"lease": 5})).is_err()
        );
    }
}
