//! Flow control: how runs of a function are started, limited and cancelled.
//!
//! Each type here is one field of the function's registered configuration, spelled
//! as the official SDKs send it. Durations become Inngest time strings (`"1m30s"`).

use serde::Serialize;
use sluice_protocol::duration::format_duration;
use std::time::Duration;

fn time(d: &Duration) -> String {
    format_duration(*d)
}

fn serialize_time<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&time(d))
}

fn serialize_opt_time<S: serde::Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
    match d {
        Some(d) => s.serialize_str(&time(d)),
        None => s.serialize_none(),
    }
}

/// What starts a run: an event (optionally filtered by a CEL expression) or a cron
/// schedule.
///
/// ```
/// use sluice_sdk::Trigger;
/// let on_signup = Trigger::event("user/signup");
/// let vip_only = Trigger::event("user/signup").expression("event.data.plan == 'vip'");
/// let nightly = Trigger::cron("TZ=Europe/Paris 0 3 * * *");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum Trigger {
    /// Runs for each matching event.
    Event {
        /// The event name.
        event: String,
        /// A CEL expression over `event` that must be true.
        #[serde(skip_serializing_if = "Option::is_none")]
        expression: Option<String>,
    },
    /// Runs on a schedule (5 fields, optional `TZ=` prefix).
    Cron {
        /// The cron expression.
        cron: String,
    },
}

impl Trigger {
    /// An event trigger.
    ///
    /// ```
    /// let t = sluice_sdk::Trigger::event("user/signup");
    /// ```
    pub fn event(name: impl Into<String>) -> Self {
        Self::Event {
            event: name.into(),
            expression: None,
        }
    }

    /// A cron trigger.
    ///
    /// ```
    /// let t = sluice_sdk::Trigger::cron("*/5 * * * *");
    /// ```
    pub fn cron(schedule: impl Into<String>) -> Self {
        Self::Cron {
            cron: schedule.into(),
        }
    }

    /// Adds a CEL filter to an event trigger (no effect on a cron trigger).
    ///
    /// ```
    /// let t = sluice_sdk::Trigger::event("demo/manual").expression("event.data.ok == true");
    /// ```
    pub fn expression(self, expr: impl Into<String>) -> Self {
        match self {
            Self::Event { event, .. } => Self::Event {
                event,
                expression: Some(expr.into()),
            },
            cron => cron,
        }
    }
}

/// Which runs a concurrency limit counts.
///
/// ```
/// let scope = sluice_sdk::flow::Scope::Account;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Runs of this function.
    Fn,
    /// Runs in this environment sharing the key.
    Env,
    /// Runs in the whole account sharing the key.
    Account,
}

/// At most `limit` steps running at once (per key value, when keyed).
///
/// ```
/// use sluice_sdk::flow::{Concurrency, Scope};
/// let per_user = Concurrency::new(2).key("event.data.user").scope(Scope::Fn);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Concurrency {
    limit: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    scope: Option<Scope>,
}

impl Concurrency {
    /// A limit of `limit` concurrent steps.
    ///
    /// ```
    /// let c = sluice_sdk::flow::Concurrency::new(10);
    /// ```
    pub fn new(limit: u32) -> Self {
        Self {
            limit,
            key: None,
            scope: None,
        }
    }

    /// Applies the limit per value of this expression.
    ///
    /// ```
    /// let c = sluice_sdk::flow::Concurrency::new(1).key("event.data.account_id");
    /// ```
    pub fn key(mut self, expr: impl Into<String>) -> Self {
        self.key = Some(expr.into());
        self
    }

    /// Sets which runs count against the limit.
    ///
    /// ```
    /// use sluice_sdk::flow::{Concurrency, Scope};
    /// let c = Concurrency::new(10).key("\"shared\"").scope(Scope::Account);
    /// ```
    pub fn scope(mut self, scope: Scope) -> Self {
        self.scope = Some(scope);
        self
    }
}

/// Starts at most `limit` runs per `period`, delaying the rest.
///
/// ```
/// use std::time::Duration;
/// let t = sluice_sdk::flow::Throttle::new(5, Duration::from_secs(60)).key("event.data.user").burst(2);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Throttle {
    limit: u32,
    #[serde(serialize_with = "serialize_time")]
    period: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    burst: Option<u32>,
}

impl Throttle {
    /// `limit` runs per `period`.
    ///
    /// ```
    /// let t = sluice_sdk::flow::Throttle::new(1, std::time::Duration::from_secs(1));
    /// ```
    pub fn new(limit: u32, period: Duration) -> Self {
        Self {
            limit,
            period,
            key: None,
            burst: None,
        }
    }

    /// Throttles per value of this expression.
    ///
    /// ```
    /// let t = sluice_sdk::flow::Throttle::new(1, std::time::Duration::from_secs(1)).key("event.data.user");
    /// ```
    pub fn key(mut self, expr: impl Into<String>) -> Self {
        self.key = Some(expr.into());
        self
    }

    /// Allows this many extra runs in a burst.
    ///
    /// ```
    /// let t = sluice_sdk::flow::Throttle::new(1, std::time::Duration::from_secs(1)).burst(3);
    /// ```
    pub fn burst(mut self, burst: u32) -> Self {
        self.burst = Some(burst);
        self
    }
}

/// Starts at most `limit` runs per `period`, dropping the rest.
///
/// ```
/// use std::time::Duration;
/// let r = sluice_sdk::flow::RateLimit::new(3, Duration::from_secs(3600)).key("event.data.user");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RateLimit {
    limit: u32,
    #[serde(serialize_with = "serialize_time")]
    period: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

impl RateLimit {
    /// `limit` runs per `period`.
    ///
    /// ```
    /// let r = sluice_sdk::flow::RateLimit::new(3, std::time::Duration::from_secs(60));
    /// ```
    pub fn new(limit: u32, period: Duration) -> Self {
        Self {
            limit,
            period,
            key: None,
        }
    }

    /// Limits per value of this expression.
    ///
    /// ```
    /// let r = sluice_sdk::flow::RateLimit::new(3, std::time::Duration::from_secs(60)).key("event.data.ip");
    /// ```
    pub fn key(mut self, expr: impl Into<String>) -> Self {
        self.key = Some(expr.into());
        self
    }
}

/// Waits until no new event arrived for `period`, then runs once with the last one.
///
/// ```
/// use std::time::Duration;
/// let d = sluice_sdk::flow::Debounce::new(Duration::from_secs(5))
///     .key("event.data.user")
///     .timeout(Duration::from_secs(60));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Debounce {
    #[serde(serialize_with = "serialize_time")]
    period: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_opt_time"
    )]
    timeout: Option<Duration>,
}

impl Debounce {
    /// Debounces over `period`.
    ///
    /// ```
    /// let d = sluice_sdk::flow::Debounce::new(std::time::Duration::from_secs(5));
    /// ```
    pub fn new(period: Duration) -> Self {
        Self {
            period,
            key: None,
            timeout: None,
        }
    }

    /// Debounces per value of this expression.
    ///
    /// ```
    /// let d = sluice_sdk::flow::Debounce::new(std::time::Duration::from_secs(5)).key("event.data.user");
    /// ```
    pub fn key(mut self, expr: impl Into<String>) -> Self {
        self.key = Some(expr.into());
        self
    }

    /// Runs anyway once the first event is this old.
    ///
    /// ```
    /// let d = sluice_sdk::flow::Debounce::new(std::time::Duration::from_secs(5))
    ///     .timeout(std::time::Duration::from_secs(60));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Runs once for up to `max_size` events, collected for at most `timeout`.
///
/// ```
/// use std::time::Duration;
/// let b = sluice_sdk::flow::Batch::new(10, Duration::from_secs(5)).key("event.data.user");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Batch {
    #[serde(rename = "maxSize")]
    max_size: u32,
    #[serde(serialize_with = "serialize_time")]
    timeout: Duration,
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    #[serde(rename = "if", skip_serializing_if = "Option::is_none")]
    condition: Option<String>,
}

impl Batch {
    /// Batches of at most `max_size` (≤ 100) events, waiting at most `timeout` (1–60 s).
    ///
    /// ```
    /// let b = sluice_sdk::flow::Batch::new(100, std::time::Duration::from_secs(60));
    /// ```
    pub fn new(max_size: u32, timeout: Duration) -> Self {
        Self {
            max_size,
            timeout,
            key: None,
            condition: None,
        }
    }

    /// Batches per value of this expression.
    ///
    /// ```
    /// let b = sluice_sdk::flow::Batch::new(10, std::time::Duration::from_secs(5)).key("event.data.user");
    /// ```
    pub fn key(mut self, expr: impl Into<String>) -> Self {
        self.key = Some(expr.into());
        self
    }

    /// Only batches events for which this expression is true.
    ///
    /// ```
    /// let b = sluice_sdk::flow::Batch::new(10, std::time::Duration::from_secs(5)).condition("event.data.bulk");
    /// ```
    pub fn condition(mut self, expr: impl Into<String>) -> Self {
        self.condition = Some(expr.into());
        self
    }
}

/// Cancels a running run when a matching event arrives.
///
/// Inside `if`, `event` is the run's trigger event and `async` the cancelling one.
///
/// ```
/// use std::time::Duration;
/// let c = sluice_sdk::flow::Cancel::new("user/deleted")
///     .condition("async.data.id == event.data.id")
///     .timeout(Duration::from_secs(3600));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Cancel {
    event: String,
    #[serde(rename = "if", skip_serializing_if = "Option::is_none")]
    condition: Option<String>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_opt_time"
    )]
    timeout: Option<Duration>,
}

impl Cancel {
    /// Cancels on this event.
    ///
    /// ```
    /// let c = sluice_sdk::flow::Cancel::new("order/cancelled");
    /// ```
    pub fn new(event: impl Into<String>) -> Self {
        Self {
            event: event.into(),
            condition: None,
            timeout: None,
        }
    }

    /// Only cancels when this expression is true.
    ///
    /// ```
    /// let c = sluice_sdk::flow::Cancel::new("order/cancelled").condition("async.data.id == event.data.id");
    /// ```
    pub fn condition(mut self, expr: impl Into<String>) -> Self {
        self.condition = Some(expr.into());
        self
    }

    /// Stops listening for the event after this long.
    ///
    /// ```
    /// let c = sluice_sdk::flow::Cancel::new("order/cancelled").timeout(std::time::Duration::from_secs(60));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = Some(timeout);
        self
    }
}

/// Cancels runs that wait too long to start or take too long to finish.
///
/// ```
/// use std::time::Duration;
/// let t = sluice_sdk::flow::Timeouts::default()
///     .start(Duration::from_secs(30))
///     .finish(Duration::from_secs(300));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Timeouts {
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_opt_time"
    )]
    start: Option<Duration>,
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "serialize_opt_time"
    )]
    finish: Option<Duration>,
}

impl Timeouts {
    /// The longest a run may wait before it starts.
    ///
    /// ```
    /// let t = sluice_sdk::flow::Timeouts::default().start(std::time::Duration::from_secs(30));
    /// ```
    pub fn start(mut self, timeout: Duration) -> Self {
        self.start = Some(timeout);
        self
    }

    /// The longest a run may take once started.
    ///
    /// ```
    /// let t = sluice_sdk::flow::Timeouts::default().finish(std::time::Duration::from_secs(300));
    /// ```
    pub fn finish(mut self, timeout: Duration) -> Self {
        self.finish = Some(timeout);
        self
    }
}

/// What a singleton function does with a new run while one is in progress.
///
/// ```
/// let mode = sluice_sdk::flow::SingletonMode::Cancel;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SingletonMode {
    /// Skip the new run.
    Skip,
    /// Cancel the running one and start the new run.
    Cancel,
}

/// At most one run at a time (per key value, when keyed).
///
/// ```
/// use sluice_sdk::flow::{Singleton, SingletonMode};
/// let s = Singleton::new(SingletonMode::Skip).key("event.data.user");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Singleton {
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
    mode: SingletonMode,
}

impl Singleton {
    /// A singleton in `mode`.
    ///
    /// ```
    /// let s = sluice_sdk::flow::Singleton::new(sluice_sdk::flow::SingletonMode::Cancel);
    /// ```
    pub fn new(mode: SingletonMode) -> Self {
        Self { key: None, mode }
    }

    /// One run at a time per value of this expression.
    ///
    /// ```
    /// use sluice_sdk::flow::{Singleton, SingletonMode};
    /// let s = Singleton::new(SingletonMode::Skip).key("event.data.user");
    /// ```
    pub fn key(mut self, expr: impl Into<String>) -> Self {
        self.key = Some(expr.into());
        self
    }
}

/// Run priority: an expression giving a number of seconds (−600..600) to move a run
/// ahead of (positive) or behind (negative) others.
///
/// ```
/// let p = sluice_sdk::flow::Priority::new("event.data.vip ? 120 : 0");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Priority {
    run: String,
}

impl Priority {
    /// Priority from this expression.
    ///
    /// ```
    /// let p = sluice_sdk::flow::Priority::new("60");
    /// ```
    pub fn new(run: impl Into<String>) -> Self {
        Self { run: run.into() }
    }
}
