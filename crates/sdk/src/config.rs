//! Where the server is, which keys to use, and where this app is served.
//!
//! [`Config::from_env`] reads the same variables as the official SDKs; every field can
//! then be overridden in code.

use sluice_protocol::SigningKey;

/// The API origin in dev mode when `INNGEST_DEV` gives no URL.
///
/// ```
/// assert!(!sluice_sdk::config::DEV_ORIGIN.is_empty());
/// ```
pub const DEV_ORIGIN: &str = "http://localhost:8288";
/// The API origin in cloud mode when none is configured.
///
/// ```
/// assert!(!sluice_sdk::config::CLOUD_API_ORIGIN.is_empty());
/// ```
pub const CLOUD_API_ORIGIN: &str = "https://api.inngest.com";
/// The event API origin in cloud mode when none is configured.
///
/// ```
/// assert!(!sluice_sdk::config::CLOUD_EVENT_ORIGIN.is_empty());
/// ```
pub const CLOUD_EVENT_ORIGIN: &str = "https://inn.gs";
/// The path functions are served at unless configured otherwise.
///
/// ```
/// assert!(!sluice_sdk::config::DEFAULT_SERVE_PATH.is_empty());
/// ```
pub const DEFAULT_SERVE_PATH: &str = "/api/inngest";
/// The event key used in dev mode when none is configured.
///
/// ```
/// assert!(!sluice_sdk::config::DEV_EVENT_KEY.is_empty());
/// ```
pub const DEV_EVENT_KEY: &str = "NO_EVENT_KEY_SET";

/// Whether requests are verified and events need a key.
///
/// ```
/// use sluice_sdk::Mode;
/// assert_ne!(Mode::Dev, Mode::Cloud);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Local development: no signatures, any event key.
    Dev,
    /// Production: call requests must be signed with the signing key.
    Cloud,
}

/// SDK configuration.
///
/// ```
/// use sluice_sdk::{Config, Mode};
///
/// let config = Config::new("shop")
///     .mode(Mode::Dev)
///     .base_url("http://127.0.0.1:8288")
///     .serve_origin("http://127.0.0.1:3000");
/// assert_eq!(config.api_origin(), "http://127.0.0.1:8288");
/// assert_eq!(config.event_origin(), "http://127.0.0.1:8288");
/// ```
#[derive(Debug, Clone)]
pub struct Config {
    app_id: String,
    mode: Mode,
    mode_explicit: bool,
    dev_url: Option<String>,
    base_url: Option<String>,
    api_base_url: Option<String>,
    event_api_base_url: Option<String>,
    signing_key: Option<SigningKey>,
    signing_key_fallback: Option<SigningKey>,
    event_key: Option<String>,
    env: Option<String>,
    serve_origin: Option<String>,
    serve_path: String,
}

impl Config {
    /// Defaults for the app `app_id`: cloud mode, the default origins, no keys.
    ///
    /// ```
    /// let config = sluice_sdk::Config::new("shop");
    /// assert_eq!(config.app_id(), "shop");
    /// assert_eq!(config.served_path(), "/api/inngest");
    /// ```
    pub fn new(app_id: impl Into<String>) -> Self {
        Self {
            app_id: app_id.into(),
            mode: Mode::Cloud,
            mode_explicit: false,
            dev_url: None,
            base_url: None,
            api_base_url: None,
            event_api_base_url: None,
            signing_key: None,
            signing_key_fallback: None,
            event_key: None,
            env: None,
            serve_origin: None,
            serve_path: DEFAULT_SERVE_PATH.to_owned(),
        }
    }

    /// [`Config::new`], then the process environment: `SLUICE_DEV` / `INNGEST_DEV`
    /// (`1`, `0`, or the dev server's URL), `INNGEST_BASE_URL`, `INNGEST_API_BASE_URL`,
    /// `INNGEST_EVENT_API_BASE_URL`, `INNGEST_SIGNING_KEY`,
    /// `INNGEST_SIGNING_KEY_FALLBACK`, `INNGEST_EVENT_KEY`, `INNGEST_ENV`,
    /// `INNGEST_SERVE_ORIGIN` and `INNGEST_SERVE_PATH`.
    ///
    /// ```no_run
    /// let config = sluice_sdk::Config::from_env("shop");
    /// ```
    pub fn from_env(app_id: impl Into<String>) -> Self {
        Self::from_lookup(app_id, |name| std::env::var(name).ok())
    }

    /// Like [`Config::from_env`], reading variables through `var` (for tests).
    ///
    /// ```
    /// use sluice_sdk::{Config, Mode};
    /// let config = Config::from_lookup("shop", |name| match name {
    ///     "INNGEST_DEV" => Some("http://127.0.0.1:9000".to_owned()),
    ///     _ => None,
    /// });
    /// assert_eq!(config.current_mode(), Mode::Dev);
    /// assert_eq!(config.api_origin(), "http://127.0.0.1:9000");
    /// ```
    pub fn from_lookup(app_id: impl Into<String>, var: impl Fn(&str) -> Option<String>) -> Self {
        let var = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut config = Self::new(app_id);
        if let Some(dev) = var("SLUICE_DEV").or_else(|| var("INNGEST_DEV")) {
            config.mode_explicit = true;
            match dev.as_str() {
                "0" | "false" => config.mode = Mode::Cloud,
                "1" | "true" => config.mode = Mode::Dev,
                url => {
                    config.mode = Mode::Dev;
                    config.dev_url = Some(url.to_owned());
                }
            }
        }
        config.base_url = var("INNGEST_BASE_URL");
        config.api_base_url = var("INNGEST_API_BASE_URL");
        config.event_api_base_url = var("INNGEST_EVENT_API_BASE_URL");
        config.signing_key = var("INNGEST_SIGNING_KEY").and_then(|k| key(&k));
        config.signing_key_fallback = var("INNGEST_SIGNING_KEY_FALLBACK").and_then(|k| key(&k));
        config.event_key = var("INNGEST_EVENT_KEY");
        config.env = var("INNGEST_ENV");
        config.serve_origin = var("INNGEST_SERVE_ORIGIN");
        if let Some(path) = var("INNGEST_SERVE_PATH") {
            config.serve_path = path;
        }
        config
    }

    /// Sets dev or cloud mode.
    ///
    /// ```
    /// let config = sluice_sdk::Config::new("shop").mode(sluice_sdk::Mode::Dev);
    /// ```
    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = mode;
        self.mode_explicit = true;
        self
    }

    /// Sets both the API and the event API origin (like `INNGEST_BASE_URL`).
    ///
    /// ```
    /// let config = sluice_sdk::Config::new("shop").base_url("http://localhost:8288");
    /// ```
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sets the API origin (sync, run state), like `INNGEST_API_BASE_URL`.
    ///
    /// ```
    /// let config = sluice_sdk::Config::new("shop").api_base_url("http://localhost:8288");
    /// ```
    pub fn api_base_url(mut self, url: impl Into<String>) -> Self {
        self.api_base_url = Some(url.into());
        self
    }

    /// Sets the event API origin, like `INNGEST_EVENT_API_BASE_URL`.
    ///
    /// ```
    /// let config = sluice_sdk::Config::new("shop").event_api_base_url("http://localhost:8288");
    /// ```
    pub fn event_api_base_url(mut self, url: impl Into<String>) -> Self {
        self.event_api_base_url = Some(url.into());
        self
    }

    /// Sets the signing key (`signkey-<env>-<hex>`). Ignored if it is empty.
    ///
    /// ```
    /// let config = sluice_sdk::Config::new("shop").signing_key("signkey-prod-00ff");
    /// ```
    pub fn signing_key(mut self, key: &str) -> Self {
        self.signing_key = self::key(key);
        self
    }

    /// Sets the fallback signing key, tried when the primary one does not match.
    ///
    /// ```
    /// let config = sluice_sdk::Config::new("shop").signing_key_fallback("signkey-prod-11ee");
    /// ```
    pub fn signing_key_fallback(mut self, key: &str) -> Self {
        self.signing_key_fallback = self::key(key);
        self
    }

    /// Sets the event key used to send events.
    ///
    /// ```
    /// let config = sluice_sdk::Config::new("shop").event_key("my-event-key");
    /// ```
    pub fn event_key(mut self, key: impl Into<String>) -> Self {
        self.event_key = Some(key.into());
        self
    }

    /// Sets the environment name sent as `x-inngest-env` (branch environments).
    ///
    /// ```
    /// let config = sluice_sdk::Config::new("shop").env("preview-42");
    /// ```
    pub fn env(mut self, env: impl Into<String>) -> Self {
        self.env = Some(env.into());
        self
    }

    /// Sets the origin the server reaches this app at (e.g. `https://shop.example.com`).
    /// Without it, the origin is taken from the sync request's `Host` header.
    ///
    /// ```
    /// let config = sluice_sdk::Config::new("shop").serve_origin("http://127.0.0.1:3000");
    /// ```
    pub fn serve_origin(mut self, origin: impl Into<String>) -> Self {
        self.serve_origin = Some(origin.into());
        self
    }

    /// Sets the path functions are served at (default `/api/inngest`).
    ///
    /// ```
    /// let config = sluice_sdk::Config::new("shop").serve_path("/sluice");
    /// assert_eq!(config.served_path(), "/sluice");
    /// ```
    pub fn serve_path(mut self, path: impl Into<String>) -> Self {
        self.serve_path = path.into();
        self
    }

    /// The app id, the prefix of every function's composite id.
    ///
    /// ```
    /// assert_eq!(sluice_sdk::Config::new("shop").app_id(), "shop");
    /// ```
    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// The mode in effect.
    ///
    /// ```
    /// assert_eq!(sluice_sdk::Config::new("shop").current_mode(), sluice_sdk::Mode::Cloud);
    /// ```
    pub fn current_mode(&self) -> Mode {
        self.mode
    }

    /// Whether the mode was set explicitly (in code or by `INNGEST_DEV`/`SLUICE_DEV`).
    ///
    /// ```
    /// assert!(!sluice_sdk::Config::new("shop").is_mode_explicit());
    /// ```
    pub fn is_mode_explicit(&self) -> bool {
        self.mode_explicit
    }

    /// The API origin, without a trailing slash.
    ///
    /// ```
    /// let dev = sluice_sdk::Config::new("shop").mode(sluice_sdk::Mode::Dev);
    /// assert_eq!(dev.api_origin(), "http://localhost:8288");
    /// ```
    pub fn api_origin(&self) -> String {
        self.origin(&self.api_base_url, CLOUD_API_ORIGIN)
    }

    /// The event API origin, without a trailing slash.
    ///
    /// ```
    /// assert_eq!(sluice_sdk::Config::new("shop").event_origin(), "https://inn.gs");
    /// ```
    pub fn event_origin(&self) -> String {
        self.origin(&self.event_api_base_url, CLOUD_EVENT_ORIGIN)
    }

    fn origin(&self, specific: &Option<String>, cloud: &str) -> String {
        let url = specific
            .as_deref()
            .or(self.base_url.as_deref())
            .or(match self.mode {
                Mode::Dev => Some(self.dev_url.as_deref().unwrap_or(DEV_ORIGIN)),
                Mode::Cloud => None,
            })
            .unwrap_or(cloud);
        url.trim_end_matches('/').to_owned()
    }

    /// The event key: the configured one, else [`DEV_EVENT_KEY`] in dev mode.
    ///
    /// ```
    /// let dev = sluice_sdk::Config::new("shop").mode(sluice_sdk::Mode::Dev);
    /// assert_eq!(dev.event_key_or_default(), Some("NO_EVENT_KEY_SET"));
    /// ```
    pub fn event_key_or_default(&self) -> Option<&str> {
        match (&self.event_key, self.mode) {
            (Some(key), _) => Some(key),
            (None, Mode::Dev) => Some(DEV_EVENT_KEY),
            (None, Mode::Cloud) => None,
        }
    }

    /// The configured environment name.
    ///
    /// ```
    /// assert_eq!(sluice_sdk::Config::new("shop").env_name(), None);
    /// ```
    pub fn env_name(&self) -> Option<&str> {
        self.env.as_deref()
    }

    /// The configured serve origin, if any.
    ///
    /// ```
    /// assert_eq!(sluice_sdk::Config::new("shop").served_origin(), None);
    /// ```
    pub fn served_origin(&self) -> Option<&str> {
        self.serve_origin.as_deref()
    }

    /// The path functions are served at.
    ///
    /// ```
    /// assert_eq!(sluice_sdk::Config::new("shop").served_path(), "/api/inngest");
    /// ```
    pub fn served_path(&self) -> &str {
        &self.serve_path
    }

    /// The signing keys to verify with: primary, then fallback.
    pub(crate) fn signing_keys(&self) -> Vec<SigningKey> {
        self.signing_key
            .iter()
            .chain(self.signing_key_fallback.iter())
            .cloned()
            .collect()
    }

    pub(crate) fn has_event_key(&self) -> bool {
        self.event_key.is_some()
    }
}

fn key(raw: &str) -> Option<SigningKey> {
    match SigningKey::new(raw) {
        Ok(key) => Some(key),
        Err(error) => {
            tracing::warn!(%error, "ignoring the signing key");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_follow_the_official_precedence() {
        type Case = (
            &'static [(&'static str, &'static str)],
            Mode,
            &'static str,
            &'static str,
        );
        let cases: &[Case] = &[
            (&[], Mode::Cloud, CLOUD_API_ORIGIN, CLOUD_EVENT_ORIGIN),
            (&[("INNGEST_DEV", "1")], Mode::Dev, DEV_ORIGIN, DEV_ORIGIN),
            (
                &[("SLUICE_DEV", "1"), ("INNGEST_DEV", "0")],
                Mode::Dev,
                DEV_ORIGIN,
                DEV_ORIGIN,
            ),
            (
                &[("INNGEST_DEV", "0")],
                Mode::Cloud,
                CLOUD_API_ORIGIN,
                CLOUD_EVENT_ORIGIN,
            ),
            (
                &[("INNGEST_DEV", "http://h:1/")],
                Mode::Dev,
                "http://h:1",
                "http://h:1",
            ),
            (
                &[("INNGEST_DEV", "1"), ("INNGEST_BASE_URL", "http://b:2")],
                Mode::Dev,
                "http://b:2",
                "http://b:2",
            ),
            (
                &[
                    ("INNGEST_BASE_URL", "http://b:2"),
                    ("INNGEST_API_BASE_URL", "http://a:3"),
                    ("INNGEST_EVENT_API_BASE_URL", "http://e:4"),
                ],
                Mode::Cloud,
                "http://a:3",
                "http://e:4",
            ),
        ];
        for (vars, mode, api, events) in cases {
            let config = Config::from_lookup("app", |n| {
                vars.iter()
                    .find(|(k, _)| *k == n)
                    .map(|(_, v)| v.to_string())
            });
            assert_eq!(config.current_mode(), *mode, "{vars:?}");
            assert_eq!(config.api_origin(), *api, "{vars:?}");
            assert_eq!(config.event_origin(), *events, "{vars:?}");
        }

        let config = Config::from_lookup("app", |n| {
            Some(match n {
                "INNGEST_SIGNING_KEY" => "signkey-test-00ff".to_owned(),
                "INNGEST_SIGNING_KEY_FALLBACK" => "signkey-test-11ee".to_owned(),
                "INNGEST_EVENT_KEY" => "ek".to_owned(),
                "INNGEST_SERVE_PATH" => "/x".to_owned(),
                "INNGEST_SERVE_ORIGIN" => "http://me:5".to_owned(),
                _ => return None,
            })
        });
        let keys: Vec<_> = config
            .signing_keys()
            .iter()
            .map(|k| k.secret().to_owned())
            .collect();
        assert_eq!(keys, ["00ff", "11ee"]);
        assert_eq!(config.event_key_or_default(), Some("ek"));
        assert_eq!(
            (config.served_path(), config.served_origin()),
            ("/x", Some("http://me:5"))
        );
        assert_eq!(
            Config::new("app").event_key_or_default(),
            None,
            "cloud needs a key"
        );
    }
}
