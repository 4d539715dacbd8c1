//! The real `sluice` binary, started as a child process.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::process::{Proc, free_port};

/// Production-mode keys (`sluice start`), given to the server and to the SDK apps.
#[derive(Debug, Clone)]
pub struct Keys {
    pub signing: String,
    pub event: String,
}

impl Keys {
    /// Made-up keys for tests.
    pub fn test() -> Keys {
        Keys {
            signing: format!("signkey-test-{}", "8e2e".repeat(16)),
            event: "e2e-event-key".into(),
        }
    }
}

/// A running `sluice` server.
#[derive(Debug)]
pub struct Sluice {
    pub proc: Proc,
    pub port: u16,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    /// Set in `start` mode.
    pub keys: Option<Keys>,
}

/// How to start a server.
#[derive(Debug, Clone)]
pub enum Mode {
    /// `sluice dev --data-dir <dir>`: embedded SQLite, no keys.
    Dev,
    /// `sluice start --database-url <url>` with [`Keys`].
    Start { database_url: String, keys: Keys },
}

/// What [`Sluice::spawn`] needs.
#[derive(Debug, Clone)]
pub struct SluiceParams<'a> {
    pub name: &'a str,
    pub mode: Mode,
    /// Where the log (and, in dev mode, the SQLite data) goes.
    pub dir: &'a Path,
    /// App URLs passed as `-u`.
    pub apps: Vec<String>,
    /// `None` picks a free port.
    pub port: Option<u16>,
    /// Extra environment (`SLUICE_*` settings).
    pub env: Vec<(String, String)>,
}

impl Sluice {
    /// Starts the binary and waits until `GET /health` answers 200.
    pub async fn spawn(p: SluiceParams<'_>) -> anyhow::Result<Sluice> {
        let port = p.port.unwrap_or_else(free_port);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        let keys = match &p.mode {
            Mode::Dev => {
                let data = p.dir.join(format!("{}-data", p.name));
                cmd.arg("dev").arg("--data-dir").arg(data);
                None
            }
            Mode::Start { database_url, keys } => {
                cmd.args(["start", "--database-url", database_url])
                    .args(["--signing-key", &keys.signing])
                    .args(["--event-key", &keys.event]);
                Some(keys.clone())
            }
        };
        cmd.args(["--port", &port.to_string()]);
        for app in &p.apps {
            cmd.args(["-u", app]);
        }
        // Keep the test's own settings away from the server's config layer.
        for (key, _) in std::env::vars() {
            if key.starts_with("SLUICE_") {
                cmd.env_remove(key);
            }
        }
        cmd.env(
            "RUST_LOG",
            std::env::var("SLUICE_E2E_LOG").unwrap_or_else(|_| "info".into()),
        );
        cmd.envs(p.env.iter().map(|(k, v)| (k, v)));
        let log = p.dir.join(format!("{}.log", p.name));
        let proc = Proc::spawn(p.name, cmd, &log)?;
        let mut sluice = Sluice {
            proc,
            port,
            base: format!("http://127.0.0.1:{port}"),
            keys,
        };
        sluice.wait_healthy(Duration::from_secs(30)).await?;
        Ok(sluice)
    }

    /// Polls `GET /health` until 200.
    pub async fn wait_healthy(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.proc.exited() {
                anyhow::bail!("{} exited during start-up with {status}", self.proc.name);
            }
            let url = format!("{}/health", self.base);
            if let Ok(resp) = http.get(&url).timeout(Duration::from_secs(2)).send().await {
                if resp.status().is_success() {
                    return Ok(());
                }
            }
            if Instant::now() > deadline {
                anyhow::bail!(
                    "{}: GET /health did not answer 200 within {timeout:?}",
                    self.proc.name
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Which store an end-to-end suite runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `sluice dev --data-dir`: SQLite, no keys; apps in dev mode.
    Sqlite,
    /// `sluice start --database-url postgres://…` with keys; apps in cloud mode
    /// (signed requests both ways).
    Postgres,
}

impl Sluice {
    /// Starts a server named `sluice` on `backend` (a fresh Postgres database named
    /// after `db_prefix`), with extra `SLUICE_*` settings. `None` when Postgres is not
    /// configured outside CI (the test skips; under `CI` it fails).
    pub async fn start_on(
        backend: Backend,
        db_prefix: &str,
        dir: &Path,
        env: &[(&str, &str)],
    ) -> Option<Sluice> {
        let mode = match backend {
            Backend::Sqlite => Mode::Dev,
            Backend::Postgres => Mode::Start {
                database_url: super::fresh_database(db_prefix)
                    .await
                    .expect("a fresh Postgres database")?,
                keys: Keys::test(),
            },
        };
        let sluice = Sluice::spawn(SluiceParams {
            name: "sluice",
            mode,
            dir,
            apps: Vec::new(),
            port: None,
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        })
        .await
        .expect("sluice starts");
        Some(sluice)
    }
}
