//! Configuration: defaults → optional TOML file (`--config`) → `SLUICE_*` environment →
//! command-line flags, then validation with messages that say what to do.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

pub use sluice_core::Mode;

/// Where data lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Database {
    Sqlite(PathBuf),
    /// Kept as given (it may carry a password: never log it).
    Postgres(String),
}

/// The whole configuration, as layered from every source.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// `dev` or `start` (set by the subcommand).
    pub mode: Mode,
    /// Address to listen on.
    pub host: IpAddr,
    /// Port to listen on.
    pub port: u16,
    /// Data directory for the embedded SQLite store (`dev`, or `start` without a URL).
    pub data_dir: PathBuf,
    /// `sqlite://path` or `postgres://…`; in `dev` the default is `<data_dir>/sluice.db`.
    pub database_url: Option<String>,
    /// The signing key (`signkey-<env>-<hex>`): signs calls to apps, checks SDK auth.
    pub signing_key: Option<String>,
    /// A second signing key accepted during rotation.
    pub signing_key_fallback: Option<String>,
    /// Sign-in token of the dashboard and REST API in `start` mode (defaults to the
    /// signing key).
    pub dashboard_token: Option<String>,
    /// Event keys accepted by `POST /e/{key}` in `start` mode.
    pub event_keys: Vec<String>,
    /// App URLs to sync at start-up and re-sync when they come back.
    pub apps: Vec<String>,
    /// Largest accepted event, in bytes.
    pub max_event_bytes: usize,
    /// Largest accepted events request, in bytes.
    pub max_request_bytes: usize,
    /// Most events accepted in one request.
    pub max_events_per_request: usize,
    /// Concurrent SDK calls per node.
    pub concurrency: usize,
    /// Timeout of one SDK call (human duration, e.g. `"5m"`).
    pub call_timeout: String,
    /// How long a node leases a queue item; a node that dies mid-call delays the
    /// item by about this much before another node takes it over.
    pub lease: String,
    /// This node's name (owner of its leases); defaults to host name + process id.
    pub node_id: Option<String>,
    /// Let TS v4 SDKs run several steps per call, posting each to
    /// `/v1/checkpoint/{run}/async`. The checkpoint must reach the node running the
    /// call: turn this off behind a load balancer that spreads SDK requests over nodes.
    pub checkpointing: bool,
    /// Runs and events older than this many days are pruned (0 keeps everything).
    pub retention_days: u32,
    /// Log format: `pretty` or `json`.
    pub log_format: String,
}

/// Every setting's name, as in TOML files and (upper-cased, `SLUICE_`-prefixed) in
/// the environment.
const SETTINGS: &[&str] = &[
    "mode",
    "host",
    "port",
    "data_dir",
    "database_url",
    "signing_key",
    "signing_key_fallback",
    "dashboard_token",
    "event_keys",
    "apps",
    "max_event_bytes",
    "max_request_bytes",
    "max_events_per_request",
    "concurrency",
    "call_timeout",
    "lease",
    "node_id",
    "checkpointing",
    "retention_days",
    "log_format",
];

impl Default for Config {
    fn default() -> Self {
        Self {
            mode: Mode::Dev,
            host: IpAddr::from([127, 0, 0, 1]),
            port: 8288,
            data_dir: PathBuf::from(".sluice"),
            database_url: None,
            signing_key: None,
            signing_key_fallback: None,
            dashboard_token: None,
            event_keys: Vec::new(),
            apps: Vec::new(),
            max_event_bytes: 512 * 1024,
            max_request_bytes: 3 * 1024 * 1024,
            max_events_per_request: 5_000,
            concurrency: 256,
            call_timeout: "5m".into(),
            lease: "30s".into(),
            node_id: None,
            checkpointing: true,
            retention_days: 7,
            log_format: "pretty".into(),
        }
    }
}

/// Values given on the command line; `None`/empty means "not given".
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<Mode>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<IpAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub signing_key_fallback: Option<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub event_keys: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<String>,
}

impl Config {
    /// Layers every source and validates the result. `env` is the process environment
    /// (passed in so tests control it).
    pub fn load(
        file: Option<&std::path::Path>,
        env: &[(String, String)],
        flags: Overrides,
    ) -> anyhow::Result<Config> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = file {
            if !path.exists() {
                bail!(
                    "config file {} does not exist: pass an existing TOML file to --config",
                    path.display()
                );
            }
            figment = figment.merge(Toml::file(path));
        }
        // Only variables naming a setting are read: tools and tests set other
        // `SLUICE_*` variables (e.g. `SLUICE_TEST_DATABASE_URL`) that are not ours.
        let env_pairs: Vec<(String, String)> = env
            .iter()
            .filter(|(k, _)| {
                k.strip_prefix("SLUICE_").is_some_and(|name| {
                    let name = name.to_ascii_lowercase();
                    SETTINGS.contains(&name.as_str()) || name == "event_key"
                })
            })
            .cloned()
            .collect();
        figment = figment.merge(env_figment(&env_pairs));
        figment = figment.merge(Serialized::defaults(flags));
        let config: Config = figment.extract().map_err(|e| {
            anyhow::anyhow!(
                "invalid configuration: {e} (check --config, SLUICE_* variables and flags)"
            )
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The socket address to bind.
    pub fn listen_addr(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// The SDK call timeout.
    pub fn call_timeout(&self) -> anyhow::Result<Duration> {
        humantime::parse_duration(&self.call_timeout).with_context(|| {
            format!(
                "call_timeout {:?} is not a duration: use e.g. \"30s\" or \"5m\"",
                self.call_timeout
            )
        })
    }

    /// The queue lease length.
    pub fn lease(&self) -> anyhow::Result<Duration> {
        let lease = humantime::parse_duration(&self.lease).with_context(|| {
            format!("lease {:?} is not a duration: use e.g. \"30s\"", self.lease)
        })?;
        if lease < Duration::from_secs(1) {
            bail!("lease must be at least 1s");
        }
        Ok(lease)
    }

    /// Where data lives, from `database_url` or the data directory.
    pub fn database(&self) -> anyhow::Result<Database> {
        let Some(url) = self.database_url.as_deref() else {
            return Ok(Database::Sqlite(self.data_dir.join("sluice.db")));
        };
        if let Some(path) = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
        {
            let path = path.split('?').next().unwrap_or(path);
            if path.is_empty() {
                bail!("database URL {url:?} names no file: use sqlite:///path/to/sluice.db");
            }
            return Ok(Database::Sqlite(PathBuf::from(path)));
        }
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            url::Url::parse(url).map_err(|e| {
                anyhow::anyhow!(
                    "database URL is not a valid URL ({e}): use postgres://user:password@host:5432/db"
                )
            })?;
            return Ok(Database::Postgres(url.to_string()));
        }
        bail!(
            "database URL must start with sqlite:// or postgres:// (got scheme {:?})",
            url.split(':').next().unwrap_or_default()
        )
    }

    /// Checks the combination of settings.
    pub fn validate(&self) -> anyhow::Result<()> {
        self.database()?;
        self.call_timeout()?;
        self.lease()?;
        if self.port == 0 && self.mode == Mode::Start {
            // Port 0 is fine for tests in dev mode; production needs a known port.
            bail!("port 0 is not allowed in start mode: pass --port");
        }
        for key in self.signing_key.iter().chain(&self.signing_key_fallback) {
            validate_signing_key(key)?;
        }
        if self.mode == Mode::Start {
            if self.database_url.is_none() {
                bail!(
                    "start mode needs a database: pass --database-url postgres://… or sqlite:///path (or set SLUICE_DATABASE_URL)"
                );
            }
            if self.signing_key.is_none() {
                bail!(
                    "start mode needs a signing key: pass --signing-key signkey-prod-<hex> (or set SLUICE_SIGNING_KEY); generate one with `openssl rand -hex 32`"
                );
            }
            if self.event_keys.is_empty() {
                bail!(
                    "start mode needs at least one event key: pass --event-key KEY (or set SLUICE_EVENT_KEYS=key1,key2)"
                );
            }
        }
        if self
            .dashboard_token
            .as_deref()
            .is_some_and(|t| t.len() < 16)
        {
            bail!("dashboard_token must be at least 16 characters (e.g. `openssl rand -hex 16`)");
        }
        if self.event_keys.iter().any(|k| k.trim().is_empty()) {
            bail!("event keys must not be empty");
        }
        if self.max_event_bytes == 0 || self.max_request_bytes < self.max_event_bytes {
            bail!("max_request_bytes must be at least max_event_bytes, and both above 0");
        }
        if self.concurrency == 0 {
            bail!("concurrency must be at least 1");
        }
        for app in &self.apps {
            let parsed = url::Url::parse(app).map_err(|e| {
                anyhow::anyhow!(
                    "app URL {app:?} is not a URL ({e}): use e.g. http://localhost:3000/api/inngest"
                )
            })?;
            if !matches!(parsed.scheme(), "http" | "https") {
                bail!("app URL {app:?} must be http:// or https://");
            }
        }
        if !matches!(self.log_format.as_str(), "pretty" | "json") {
            bail!("log_format must be \"pretty\" or \"json\"");
        }
        Ok(())
    }
}

/// Builds the environment layer from explicit pairs: scalars as given, list settings
/// (`SLUICE_EVENT_KEYS`, `SLUICE_APPS`) split on commas.
fn env_figment(pairs: &[(String, String)]) -> Figment {
    let mut figment = Figment::new();
    for (key, value) in pairs {
        let name = key.trim_start_matches("SLUICE_").to_ascii_lowercase();
        figment = match name.as_str() {
            "event_keys" | "event_key" | "apps" => {
                let list: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect();
                let field = if name == "event_key" {
                    "event_keys".to_string()
                } else {
                    name
                };
                figment.merge(Serialized::default(&field, list))
            }
            _ => figment.merge(Serialized::default(&name, env_scalar(value))),
        };
    }
    figment
}

/// An environment value as a typed scalar (numbers stay numbers).
fn env_scalar(value: &str) -> figment::value::Value {
    value
        .parse::<figment::value::Value>()
        .unwrap_or_else(|_| figment::value::Value::from(value.to_string()))
}

fn validate_signing_key(key: &str) -> anyhow::Result<()> {
    let hex = strip_signkey_prefix(key);
    if hex.is_empty() || hex.len() % 2 != 0 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!(
            "signing key must be hex text, optionally prefixed `signkey-<env>-` (e.g. signkey-prod-$(openssl rand -hex 32))"
        );
    }
    Ok(())
}

fn strip_signkey_prefix(key: &str) -> &str {
    let Some(rest) = key.strip_prefix("signkey-") else {
        return key;
    };
    match rest.find('-') {
        Some(i) if rest[..i].chars().all(|c| c.is_alphanumeric() || c == '_') => &rest[i + 1..],
        _ => key,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn layers_apply_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sluice.toml");
        std::fs::write(&file, "port = 9000\nconcurrency = 7\nretention_days = 3\n").unwrap();

        // File over defaults.
        let c = Config::load(Some(&file), &[], Overrides::default()).unwrap();
        assert_eq!((c.port, c.concurrency, c.retention_days), (9000, 7, 3));

        // Environment over file; lists split on commas.
        let e = env(&[
            ("SLUICE_PORT", "9100"),
            ("SLUICE_APPS", "http://a:1/x, http://b:2/y"),
        ]);
        let c = Config::load(Some(&file), &e, Overrides::default()).unwrap();
        assert_eq!(c.port, 9100);
        assert_eq!(c.apps, vec!["http://a:1/x", "http://b:2/y"]);
        assert_eq!(c.concurrency, 7);

        // Flags over environment.
        let flags = Overrides {
            port: Some(9200),
            ..Default::default()
        };
        let c = Config::load(Some(&file), &e, flags).unwrap();
        assert_eq!(c.port, 9200);
    }

    #[test]
    fn validation_says_what_to_do() {
        let start = |url: Option<&str>, key: Option<&str>, ek: &[&str]| Overrides {
            mode: Some(Mode::Start),
            database_url: url.map(String::from),
            signing_key: key.map(String::from),
            event_keys: ek.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        };
        let cases: &[(Overrides, &str)] = &[
            (
                start(None, Some("signkey-prod-abcd"), &["k"]),
                "--database-url",
            ),
            (
                start(Some("postgres://u@h/db"), None, &["k"]),
                "--signing-key",
            ),
            (
                start(Some("postgres://u@h/db"), Some("signkey-prod-abcd"), &[]),
                "--event-key",
            ),
            (
                start(Some("mysql://h/db"), Some("signkey-prod-abcd"), &["k"]),
                "sqlite:// or postgres://",
            ),
            (
                start(Some("postgres://u@h/db"), Some("signkey-prod-xyz"), &["k"]),
                "hex",
            ),
            (
                Overrides {
                    apps: vec!["not a url".into()],
                    ..Default::default()
                },
                "is not a URL",
            ),
        ];
        for (flags, needle) in cases {
            let err = Config::load(None, &[], flags.clone())
                .unwrap_err()
                .to_string();
            assert!(err.contains(needle), "{err:?} should mention {needle:?}");
        }
        let ok = Config::load(
            None,
            &[],
            start(
                Some("postgres://u:p@127.0.0.1/db"),
                Some("signkey-prod-abcd"),
                &["k"],
            ),
        )
        .unwrap();
        assert_eq!(
            ok.database().unwrap(),
            Database::Postgres("postgres://u:p@127.0.0.1/db".into())
        );
    }

    #[test]
    fn every_setting_is_named_for_the_environment() {
        let toml = toml_keys();
        let mut names: Vec<&str> = SETTINGS.to_vec();
        names.sort_unstable();
        assert_eq!(names, toml, "SETTINGS must list every Config field");
    }

    fn toml_keys() -> Vec<&'static str> {
        let value = Figment::from(Serialized::defaults(Config::default()));
        let dict = figment::Provider::data(&value).unwrap();
        let mut keys: Vec<&'static str> = dict
            .values()
            .flat_map(|d| d.keys())
            .map(|k| &*Box::leak(k.clone().into_boxed_str()))
            .collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn dev_defaults_to_sqlite_in_the_data_dir() {
        let c = Config::load(None, &[], Overrides::default()).unwrap();
        assert_eq!(c.port, 8288);
        assert_eq!(
            c.database().unwrap(),
            Database::Sqlite(PathBuf::from(".sluice/sluice.db"))
        );
        let c = Config::load(
            None,
            &[],
            Overrides {
                database_url: Some("sqlite:///tmp/x.db".into()),
                ..Default::default()
            },
        )
        .unwrap();
        assert_eq!(
            c.database().unwrap(),
            Database::Sqlite(PathBuf::from("/tmp/x.db"))
        );
    }
}
