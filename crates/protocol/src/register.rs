//! The `POST /fn/register` body an SDK sends when it syncs its app.
//!
//! Parsing is tolerant: both SDK spellings of the top-level keys (TS `appName` /
//! `deployType`, Python `appname` / `deploy_type`), unknown fields ignored, and `null`
//! wherever a list or an optional field may be. Each [`FunctionConfig`] also keeps the
//! JSON it was parsed from ([`FunctionConfig::raw`]), for the store.

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Retries when a function sets none (so 5 attempts).
pub const DEFAULT_RETRIES: u32 = 4;
/// The most retries a function may ask for.
pub const MAX_RETRIES: u32 = 20;

/// The register request body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegisterRequest {
    /// The app's serve URL.
    pub url: String,
    /// `ping` for an out-of-band sync; optional.
    #[serde(
        rename = "deployType",
        alias = "deploy_type",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub deploy_type: Option<String>,
    /// The app id (`appName` in TS, `appname` in Python).
    #[serde(rename = "appName", alias = "appname", alias = "app_name")]
    pub app_name: String,
    /// The web framework (`express`, `flask`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub framework: Option<String>,
    /// The SDK, e.g. `js:v4.24.0` or `py:v0.5.19`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdk: Option<String>,
    /// The body's schema version (`"0.1"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub v: Option<String>,
    /// SDK capabilities (`{"trust_probe":"v1",…}`), opaque.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Value>,
    /// The functions the app serves.
    #[serde(default, deserialize_with = "null_as_default")]
    pub functions: Vec<FunctionConfig>,
}

impl RegisterRequest {
    /// Parses a register body.
    pub fn from_slice(body: &[u8]) -> crate::Result<Self> {
        Ok(serde_json::from_slice(body)?)
    }

    /// Normalises the app URL and every step URL with [`normalize_app_url`], in the
    /// typed fields and in each function's raw JSON.
    pub fn normalize_urls(&mut self) {
        self.url = normalize_app_url(&self.url);
        for function in &mut self.functions {
            function.normalize_urls();
        }
    }
}

/// One function's configuration, as registered.
#[derive(Debug, Clone, PartialEq)]
pub struct FunctionConfig {
    /// Composite id `<app id>-<function id>`.
    pub id: String,
    /// Display name; see [`FunctionConfig::name`].
    pub name: Option<String>,
    /// What starts a run.
    pub triggers: Vec<Trigger>,
    /// The steps map; HTTP-served functions have one, `"step"`.
    pub steps: BTreeMap<String, StepConfig>,
    /// Concurrency limits (at most two), normalised from a number, an object or a list.
    pub concurrency: Vec<ConcurrencyLimit>,
    /// Throttle (delays runs).
    pub throttle: Option<Throttle>,
    /// Rate limit (drops runs).
    pub rate_limit: Option<RateLimit>,
    /// Debounce.
    pub debounce: Option<Debounce>,
    /// Event batching.
    pub batch_events: Option<BatchEvents>,
    /// Priority.
    pub priority: Option<Priority>,
    /// Idempotency key expression (one run per key per 24 h).
    pub idempotency: Option<String>,
    /// Cancellation triggers.
    pub cancel: Vec<Cancel>,
    /// Start / finish timeouts.
    pub timeouts: Option<Timeouts>,
    /// Singleton mode.
    pub singleton: Option<Singleton>,
    /// Checkpointing settings, opaque (`{batch_steps, batch_interval, max_runtime}`).
    pub checkpoint: Option<Value>,
    /// The JSON this config was parsed from, unknown fields included.
    pub raw: Value,
}

/// The typed view of a function config, parsed from `raw`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Fields {
    id: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    triggers: Vec<Trigger>,
    #[serde(default, deserialize_with = "null_as_default")]
    steps: BTreeMap<String, StepConfig>,
    #[serde(default, deserialize_with = "concurrency")]
    concurrency: Vec<ConcurrencyLimit>,
    #[serde(default)]
    throttle: Option<Throttle>,
    #[serde(default)]
    rate_limit: Option<RateLimit>,
    #[serde(default)]
    debounce: Option<Debounce>,
    #[serde(default)]
    batch_events: Option<BatchEvents>,
    #[serde(default)]
    priority: Option<Priority>,
    #[serde(default)]
    idempotency: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    cancel: Vec<Cancel>,
    #[serde(default)]
    timeouts: Option<Timeouts>,
    #[serde(default)]
    singleton: Option<Singleton>,
    #[serde(default)]
    checkpoint: Option<Value>,
}

impl FunctionConfig {
    /// Parses one function config from its JSON.
    pub fn from_value(raw: Value) -> crate::Result<Self> {
        let f = Fields::deserialize(&raw)?;
        Ok(Self {
            id: f.id,
            name: f.name,
            triggers: f.triggers,
            steps: f.steps,
            concurrency: f.concurrency,
            throttle: f.throttle,
            rate_limit: f.rate_limit,
            debounce: f.debounce,
            batch_events: f.batch_events,
            priority: f.priority,
            idempotency: f.idempotency,
            cancel: f.cancel,
            timeouts: f.timeouts,
            singleton: f.singleton,
            checkpoint: f.checkpoint,
            raw,
        })
    }

    /// The display name; the id when none is set.
    pub fn name(&self) -> &str {
        self.name.as_deref().unwrap_or(&self.id)
    }

    /// The step the server calls: `"step"`, else the first one.
    fn main_step(&self) -> Option<&StepConfig> {
        self.steps
            .get("step")
            .or_else(|| self.steps.values().next())
    }

    /// The URL to call the function at (the `"step"` step's runtime URL).
    pub fn step_url(&self) -> Option<&str> {
        self.main_step()?.runtime.url.as_deref()
    }

    /// The number of retries: `retries.attempts` (which counts retries, not attempts),
    /// [`DEFAULT_RETRIES`] when unset, capped to `0..=`[`MAX_RETRIES`].
    pub fn retries(&self) -> u32 {
        match self.main_step().and_then(|s| s.retries.as_ref()?.attempts) {
            Some(n) => n.clamp(0, i64::from(MAX_RETRIES)) as u32,
            None => DEFAULT_RETRIES,
        }
    }

    /// Attempts per step (`retries() + 1`), sent as `ctx.max_attempts`.
    pub fn max_attempts(&self) -> u32 {
        self.retries() + 1
    }

    /// The event triggers.
    pub fn event_triggers(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.triggers.iter().filter_map(|t| match t {
            Trigger::Event { event, expression } => Some((event.as_str(), expression.as_deref())),
            Trigger::Cron { .. } => None,
        })
    }

    /// The cron triggers' expressions.
    pub fn cron_triggers(&self) -> impl Iterator<Item = &str> {
        self.triggers.iter().filter_map(|t| match t {
            Trigger::Cron { cron, .. } => Some(cron.as_str()),
            Trigger::Event { .. } => None,
        })
    }

    /// Normalises each step's runtime URL with [`normalize_app_url`] (typed and raw).
    pub fn normalize_urls(&mut self) {
        for step in self.steps.values_mut() {
            if let Some(url) = &mut step.runtime.url {
                *url = normalize_app_url(url);
            }
        }
        if let Some(steps) = self.raw.get_mut("steps").and_then(Value::as_object_mut) {
            for step in steps.values_mut() {
                if let Some(url) = step.pointer_mut("/runtime/url") {
                    if let Some(s) = url.as_str() {
                        *url = Value::String(normalize_app_url(s));
                    }
                }
            }
        }
    }
}

impl<'de> Deserialize<'de> for FunctionConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = Value::deserialize(d)?;
        FunctionConfig::from_value(raw).map_err(de::Error::custom)
    }
}

impl Serialize for FunctionConfig {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.raw.serialize(s)
    }
}

/// What starts a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Trigger {
    /// An event by name, optionally filtered by a CEL expression.
    Event {
        /// The event name.
        event: String,
        /// A CEL filter over `event`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        expression: Option<String>,
    },
    /// A cron schedule (5 fields or a descriptor, `TZ=` prefix allowed).
    Cron {
        /// The schedule.
        cron: String,
        /// Random delay up to this time string.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        jitter: Option<String>,
    },
}

/// One entry of the steps map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepConfig {
    /// Step id (`"step"`).
    #[serde(default)]
    pub id: String,
    /// Step name.
    #[serde(default)]
    pub name: String,
    /// Where it is served.
    pub runtime: Runtime,
    /// Retry settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<Retries>,
}

/// Where a step is served.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Runtime {
    /// `http` (or `ws` in connect mode).
    #[serde(rename = "type", default)]
    pub kind: String,
    /// The URL for `http`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
}

/// `retries` of a step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Retries {
    /// Number of **retries** (not attempts).
    #[serde(default)]
    pub attempts: Option<i64>,
}

/// Where a concurrency limit applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum ConcurrencyScope {
    /// Per function (the default).
    #[default]
    Fn,
    /// Per environment.
    Env,
    /// Per account.
    Account,
}

/// One concurrency limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConcurrencyLimit {
    /// The most runs in progress at once.
    pub limit: u32,
    /// A CEL key expression: the limit applies per key value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Where the limit applies.
    #[serde(default, deserialize_with = "null_as_default")]
    pub scope: ConcurrencyScope,
}

/// `throttle`: at most `limit` runs per `period` (plus `burst`), delaying the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Throttle {
    /// Runs per period.
    pub limit: u32,
    /// Time string.
    pub period: String,
    /// CEL key expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Extra runs allowed in a burst.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub burst: Option<u32>,
}

/// `rateLimit`: at most `limit` runs per `period`, dropping the rest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    /// Runs per period.
    pub limit: u32,
    /// Time string.
    pub period: String,
    /// CEL key expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// `debounce`: run once after `period` without new events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Debounce {
    /// Time string.
    pub period: String,
    /// CEL key expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The longest total delay (time string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// `batchEvents`: run once per batch of events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BatchEvents {
    /// Most events per batch (≤ 100).
    pub max_size: u32,
    /// The longest wait to fill a batch (time string, 1 s – 60 s).
    pub timeout: String,
    /// CEL key expression: one batch per key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// CEL filter: only matching events are batched.
    #[serde(rename = "if", default, skip_serializing_if = "Option::is_none")]
    pub if_expr: Option<String>,
}

/// `priority`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Priority {
    /// CEL expression giving −600..=600 seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
}

/// One `cancel` entry: an event that cancels the run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancel {
    /// The cancelling event's name.
    pub event: String,
    /// CEL over `event` (the trigger) and `async` (the cancelling event).
    #[serde(rename = "if", default, skip_serializing_if = "Option::is_none")]
    pub if_expr: Option<String>,
    /// How long the cancellation watch lasts (time string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

/// `timeouts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timeouts {
    /// The longest a run may wait to start (time string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<String>,
    /// The longest a run may take once started (time string).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finish: Option<String>,
}

/// What a singleton does when a run with the same key is in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SingletonMode {
    /// Drop the new run.
    Skip,
    /// Cancel the running one.
    Cancel,
}

/// `singleton`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Singleton {
    /// CEL key expression.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// What to do on a conflict.
    pub mode: SingletonMode,
}

fn null_as_default<'de, D, T>(d: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
}

/// `concurrency`: a number, one object, or a list of at most two; `null` for none.
fn concurrency<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<ConcurrencyLimit>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Shape {
        Limit(u32),
        One(ConcurrencyLimit),
        Many(Vec<ConcurrencyLimit>),
    }
    let limits = match Option::<Shape>::deserialize(d)? {
        None => Vec::new(),
        Some(Shape::Limit(limit)) => vec![ConcurrencyLimit {
            limit,
            key: None,
            scope: ConcurrencyScope::Fn,
        }],
        Some(Shape::One(one)) => vec![one],
        Some(Shape::Many(many)) => many,
    };
    if limits.len() > 2 {
        return Err(de::Error::custom(format!(
            "at most 2 concurrency limits are allowed, got {}",
            limits.len()
        )));
    }
    Ok(limits)
}

/// The app URL as the server stores it: without `deployId` and `probe` query
/// parameters, with `127.0.0.1` and `0.0.0.0` as `localhost`, and without a default port.
/// A string that is not a URL comes back trimmed.
pub fn normalize_app_url(raw: &str) -> String {
    let raw = raw.trim();
    let Ok(mut url) = url::Url::parse(raw) else {
        return raw.to_owned();
    };
    if matches!(url.host_str(), Some("127.0.0.1" | "0.0.0.0")) {
        // Setting a domain host cannot fail on a URL that already has a host.
        let _ = url.set_host(Some("localhost"));
    }
    if url.query().is_some() {
        let kept: Vec<(String, String)> = url
            .query_pairs()
            .filter(|(k, _)| k != "deployId" && k != "probe")
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        if kept.is_empty() {
            url.set_query(None);
        } else {
            url.query_pairs_mut().clear().extend_pairs(kept);
        }
    }
    url.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const TS_V4: &str = include_str!("fixtures/register_ts_v4.json");
    const PYTHON: &str = include_str!("fixtures/register_py.json");

    #[test]
    fn parses_both_sdks_captured_bodies() {
        for (body, app, deploy, prefix) in [
            (TS_V4, "probe-app", Some("ping"), "js:"),
            (PYTHON, "probe-py", Some("ping"), "py:"),
        ] {
            let req = RegisterRequest::from_slice(body.as_bytes()).unwrap();
            assert_eq!(req.app_name, app);
            assert_eq!(req.deploy_type.as_deref(), deploy);
            assert!(req.sdk.as_deref().unwrap().starts_with(prefix));
            assert_eq!(req.functions.len(), 5);

            let hello = &req.functions[0];
            assert_eq!(hello.id, format!("{app}-hello"));
            assert_eq!(hello.name(), "Hello flow");
            assert_eq!(hello.retries(), DEFAULT_RETRIES);
            assert_eq!(hello.max_attempts(), 5);
            assert!(
                hello
                    .step_url()
                    .unwrap()
                    .ends_with(&format!("fnId={app}-hello&stepId=step"))
            );
            assert!(hello.concurrency.is_empty() && hello.cancel.is_empty());

            let cfg = &req.functions[1];
            assert_eq!(cfg.retries(), 5);
            assert_eq!(cfg.cron_triggers().collect::<Vec<_>>(), ["*/5 * * * *"]);
            assert_eq!(
                cfg.event_triggers().collect::<Vec<_>>(),
                [("demo/manual", Some("event.data.ok == true"))]
            );
            assert_eq!(
                cfg.concurrency,
                vec![
                    ConcurrencyLimit {
                        limit: 2,
                        key: Some("event.data.user".into()),
                        scope: ConcurrencyScope::Fn
                    },
                    ConcurrencyLimit {
                        limit: 10,
                        key: Some("\"shared\"".into()),
                        scope: ConcurrencyScope::Account
                    },
                ]
            );
            let throttle = cfg.throttle.as_ref().unwrap();
            assert_eq!(
                (throttle.limit, throttle.period.as_str(), throttle.burst),
                (5, "1m", Some(2))
            );
            assert_eq!(
                cfg.debounce.as_ref().unwrap().timeout.as_deref(),
                Some("1m")
            );
            assert_eq!(
                cfg.priority.as_ref().unwrap().run.as_deref(),
                Some("event.data.vip ? 120 : 0")
            );
            assert_eq!(cfg.timeouts.as_ref().unwrap().finish.as_deref(), Some("5m"));
            assert_eq!(
                cfg.cancel[0].if_expr.as_deref(),
                Some("async.data.id == event.data.id")
            );
            assert_eq!(cfg.cancel[0].timeout.as_deref(), Some("1h"));

            let failure = &req.functions[2];
            assert!(failure.id.ends_with("-failure"));
            assert_eq!(failure.retries(), if prefix == "js:" { 1 } else { 0 });
            let (event, expr) = failure.event_triggers().next().unwrap();
            assert_eq!(event, "inngest/function.failed");
            assert_eq!(
                expr,
                Some(format!("event.data.function_id == '{app}-cron-configured'").as_str())
            );

            let batched = &req.functions[3];
            assert_eq!(batched.idempotency.as_deref(), Some("event.data.order"));
            let batch = batched.batch_events.as_ref().unwrap();
            assert_eq!((batch.max_size, batch.timeout.as_str()), (10, "5s"));
            assert_eq!(batched.rate_limit.as_ref().unwrap().period, "1h");
            if prefix == "js:" {
                assert_eq!(
                    batched.singleton.as_ref().unwrap().mode,
                    SingletonMode::Skip
                );
            }

            // The raw JSON is kept whole and serialises back as it came.
            let back = serde_json::to_value(&req.functions).unwrap();
            let orig: Value = serde_json::from_str(body).unwrap();
            assert_eq!(back, orig["functions"]);
        }
    }

    #[test]
    fn tolerates_shapes_and_limits() {
        let parse = |f: Value| FunctionConfig::from_value(f);
        let base = |extra: Value| {
            let mut f = json!({"id": "a-f", "triggers": [{"event": "e"}],
                "steps": {"step": {"id": "step", "name": "step",
                    "runtime": {"type": "http", "url": "http://x/api?fnId=a-f&stepId=step"}}}});
            for (k, v) in extra.as_object().unwrap() {
                f[k] = v.clone();
            }
            f
        };
        // `None`: the config is rejected.
        type Limits = Option<Vec<(u32, ConcurrencyScope)>>;
        let cases: Vec<(Value, Limits)> = vec![
            (
                json!({"concurrency": 3}),
                Some(vec![(3, ConcurrencyScope::Fn)]),
            ),
            (
                json!({"concurrency": {"limit": 4, "scope": "env"}}),
                Some(vec![(4, ConcurrencyScope::Env)]),
            ),
            (json!({"concurrency": null}), Some(vec![])),
            (
                json!({"concurrency": [{"limit": 1}, {"limit": 2, "scope": null}]}),
                Some(vec![(1, ConcurrencyScope::Fn), (2, ConcurrencyScope::Fn)]),
            ),
            (
                json!({"concurrency": [{"limit": 1}, {"limit": 2}, {"limit": 3}]}),
                None,
            ),
            (json!({"concurrency": "lots"}), None),
            (
                json!({"cancel": null, "throttle": null, "unknownThing": {"x": 1}}),
                Some(vec![]),
            ),
        ];
        for (extra, want) in cases {
            let got = parse(base(extra.clone()));
            match want {
                Some(limits) => {
                    let f = got.unwrap_or_else(|e| panic!("{extra}: {e}"));
                    let got: Vec<_> = f.concurrency.iter().map(|c| (c.limit, c.scope)).collect();
                    assert_eq!(got, limits, "{extra}");
                }
                None => assert!(got.is_err(), "{extra} should fail"),
            }
        }
        let retries = |n: Value| {
            parse(base(json!({"steps": {"step": {"runtime": {"type": "http"}, "retries": {"attempts": n}}}}))).unwrap().retries()
        };
        assert_eq!(retries(json!(0)), 0);
        assert_eq!(retries(json!(50)), 20);
        assert_eq!(retries(json!(-3)), 0);
        assert_eq!(retries(json!(null)), 4);
        assert!(parse(json!({"name": "no id"})).is_err());

        // Python spelling, no deployType, unknown top-level fields.
        let req: RegisterRequest = serde_json::from_value(json!({
            "url": "http://127.0.0.1:3000/api?deployId=d1", "appname": "py", "functions": null,
            "in_band_sync": "v1"}))
        .unwrap();
        assert_eq!(
            (req.app_name.as_str(), req.deploy_type, req.functions.len()),
            ("py", None, 0)
        );
    }

    #[test]
    fn normalises_app_urls() {
        let cases = [
            (
                "http://127.0.0.1:3939/api/inngest",
                "http://localhost:3939/api/inngest",
            ),
            (
                "http://0.0.0.0:80/api/inngest?deployId=abc",
                "http://localhost/api/inngest",
            ),
            (
                "https://app.example.com:443/api",
                "https://app.example.com/api",
            ),
            (
                "http://127.0.0.1:3939/api/inngest?fnId=a-f&deployId=x&stepId=step&probe=trust",
                "http://localhost:3939/api/inngest?fnId=a-f&stepId=step",
            ),
            (
                "http://localhost:8080/x?probe=trust",
                "http://localhost:8080/x",
            ),
            ("  not a url ", "not a url"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize_app_url(input), want, "{input}");
        }
        let mut req = RegisterRequest::from_slice(TS_V4.as_bytes()).unwrap();
        req.normalize_urls();
        assert_eq!(req.url, "http://localhost:3939/api/inngest");
        let f = &req.functions[0];
        let want = "http://localhost:3939/api/inngest?fnId=probe-app-hello&stepId=step";
        assert_eq!(f.step_url(), Some(want));
        assert_eq!(f.raw["steps"]["step"]["runtime"]["url"], want);
    }
}
