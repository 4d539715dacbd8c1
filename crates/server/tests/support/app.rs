//! SDK apps (official TS 4.x / 3.x and Python SDKs, unmodified), started as children.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::Value;

use super::process::{Proc, free_port};
use super::sluice::Keys;

/// Which official SDK an app runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sdk {
    /// npm `inngest` 4.x (examples/typescript's node_modules).
    TsV4,
    /// npm `inngest` 3.x (tests/sdk/ts-v3).
    TsV3,
    /// PyPI `inngest` 0.5.x (tests/sdk/.venv).
    Python,
}

impl Sdk {
    pub fn name(self) -> &'static str {
        match self {
            Sdk::TsV4 => "ts-v4",
            Sdk::TsV3 => "ts-v3",
            Sdk::Python => "python",
        }
    }

    /// The app id the test app registers under.
    pub fn app_id(self) -> String {
        format!("e2e-{}", self.name().replace("python", "py"))
    }
}

/// What an app is pointed at.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's base URL (`INNGEST_BASE_URL`).
    pub base: String,
    /// `None`: dev mode (`INNGEST_DEV=1`); `Some`: cloud mode with these keys.
    pub keys: Option<Keys>,
}

impl Target {
    /// Points an SDK app's process at this server on `port`: drops any `INNGEST_*`
    /// variable inherited from the test's environment, then sets `PORT`,
    /// `INNGEST_BASE_URL`, `INNGEST_DEV` and, in cloud mode, the keys.
    pub fn configure(&self, cmd: &mut Command, port: u16) {
        for (key, _) in std::env::vars() {
            if key.starts_with("INNGEST_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("PORT", port.to_string())
            .env("INNGEST_BASE_URL", &self.base);
        match &self.keys {
            None => {
                cmd.env("INNGEST_DEV", "1");
            }
            Some(keys) => {
                cmd.env("INNGEST_DEV", "0")
                    .env("INNGEST_SIGNING_KEY", &keys.signing)
                    .env("INNGEST_EVENT_KEY", &keys.event);
            }
        }
    }
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The app program to run, as a command ready for env and args.
#[derive(Debug, Clone)]
pub enum Program {
    /// One of the end-to-end test apps in tests/sdk.
    TestApp(Sdk),
    /// examples/typescript.
    ExampleTs,
    /// examples/python.
    ExamplePy,
}

impl Program {
    fn command(&self) -> anyhow::Result<Command> {
        let root = repo_root();
        let python = root.join("tests/sdk/.venv/bin/python");
        let need = |path: PathBuf| -> anyhow::Result<()> {
            anyhow::ensure!(
                path.exists(),
                "{} is missing: run scripts/sdk-deps first",
                path.display()
            );
            Ok(())
        };
        Ok(match self {
            Program::TestApp(sdk @ (Sdk::TsV4 | Sdk::TsV3)) => {
                let pkg = if *sdk == Sdk::TsV4 {
                    root.join("examples/typescript")
                } else {
                    root.join("tests/sdk/ts-v3")
                };
                need(pkg.join("node_modules/inngest"))?;
                let mut cmd = Command::new("node");
                cmd.arg(root.join("tests/sdk/ts/app.js")).arg(pkg);
                cmd
            }
            Program::TestApp(Sdk::Python) => {
                need(python.clone())?;
                let mut cmd = Command::new(python);
                cmd.arg("app.py").current_dir(root.join("tests/sdk/py"));
                cmd
            }
            Program::ExampleTs => {
                need(root.join("examples/typescript/node_modules/inngest"))?;
                let mut cmd = Command::new("node");
                cmd.arg("src/server.js")
                    .current_dir(root.join("examples/typescript"));
                cmd
            }
            Program::ExamplePy => {
                need(python.clone())?;
                let mut cmd = Command::new(python);
                cmd.arg("app.py").current_dir(root.join("examples/python"));
                cmd
            }
        })
    }
}

/// A running SDK app.
#[derive(Debug)]
pub struct App {
    pub name: String,
    pub program: Program,
    pub port: u16,
    pub proc: Proc,
    pub target: Target,
    log: PathBuf,
    http: reqwest::Client,
}

impl App {
    /// Starts `program` on a free port (or `port`) and waits until it answers.
    /// `hide` lists function ids the test apps leave out (`E2E_HIDE`).
    pub async fn start(
        name: &str,
        program: Program,
        target: &Target,
        dir: &Path,
        port: Option<u16>,
    ) -> anyhow::Result<App> {
        let port = port.unwrap_or_else(free_port);
        let log = dir.join(format!("{name}.log"));
        let proc = spawn(name, &program, target, port, &log, &[])?;
        let mut app = App {
            name: name.to_string(),
            program,
            port,
            proc,
            target: target.clone(),
            log,
            http: reqwest::Client::new(),
        };
        app.wait_ready().await?;
        Ok(app)
    }

    /// Stops the app and starts it again on the same port, hiding `hide`.
    pub async fn restart(&mut self, hide: &[&str]) -> anyhow::Result<()> {
        self.proc.kill();
        self.proc = spawn(
            &self.name,
            &self.program,
            &self.target,
            self.port,
            &self.log,
            hide,
        )?;
        self.wait_ready().await
    }

    /// The SDK's serve URL, as synced.
    pub fn serve_url(&self) -> String {
        format!("http://127.0.0.1:{}/api/inngest", self.port)
    }

    /// Syncs the app: `PUT <serve url>`; the SDK then registers with the server. An
    /// error when the PUT fails or the reply's `status` says the server refused.
    pub async fn sync(&self) -> anyhow::Result<Value> {
        let resp = self
            .http
            .put(self.serve_url())
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .context("PUT the serve URL")?;
        let status = resp.status();
        let text = resp.text().await.unwrap_or_default();
        anyhow::ensure!(
            status.is_success(),
            "sync of {}: PUT {} answered {status}: {text}",
            self.name,
            self.serve_url()
        );
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::String(text.clone()));
        // The Python SDK answers the PUT with 200 and passes the server's reply through:
        // its `status` tells.
        let inner = body["status"].as_u64().unwrap_or(200);
        anyhow::ensure!(
            (200..300).contains(&inner),
            "sync of {}: the server refused the registration ({inner}): {text}",
            self.name
        );
        Ok(body)
    }

    /// Sends events through the SDK's own `send` (the app's `POST /send`); the event ids.
    pub async fn send(&self, events: Value) -> anyhow::Result<Vec<String>> {
        let resp = self
            .http
            .post(format!("http://127.0.0.1:{}/send", self.port))
            .json(&events)
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .context("POST /send to the app")?;
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        anyhow::ensure!(
            status.is_success(),
            "the SDK's send failed ({status}): {body}"
        );
        let ids = body["ids"]
            .as_array()
            .with_context(|| format!("send answered no ids: {body}"))?;
        Ok(ids
            .iter()
            .filter_map(|v| v.as_str().map(String::from))
            .collect())
    }

    /// `GET <path>` on the app, as JSON.
    pub async fn get_json(&self, path: &str) -> anyhow::Result<Value> {
        let resp = self
            .http
            .get(format!("http://127.0.0.1:{}{path}", self.port))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .with_context(|| format!("GET {path} on the app"))?;
        Ok(resp.error_for_status()?.json().await?)
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = match self.program {
            Program::TestApp(_) => format!("http://127.0.0.1:{}/ready", self.port),
            _ => self.serve_url(),
        };
        loop {
            if let Some(status) = self.proc.exited() {
                anyhow::bail!("{} exited during start-up with {status}", self.name);
            }
            if let Ok(resp) = self
                .http
                .get(&url)
                .timeout(Duration::from_secs(2))
                .send()
                .await
            {
                if resp.status().is_success() {
                    return Ok(());
                }
            }
            anyhow::ensure!(
                Instant::now() < deadline,
                "{} did not answer GET {url} within 30s",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn spawn(
    name: &str,
    program: &Program,
    target: &Target,
    port: u16,
    log: &Path,
    hide: &[&str],
) -> anyhow::Result<Proc> {
    let mut cmd = program.command()?;
    target.configure(&mut cmd, port);
    cmd.env("E2E_HIDE", hide.join(","))
        .env("PYTHONUNBUFFERED", "1");
    Proc::spawn(name, cmd, log)
}
