//! The command line.

use std::net::IpAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, Mode, Overrides};

/// Sluice: durable functions triggered by events, in one binary.
#[derive(Debug, Parser)]
#[command(name = "sluice", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a local development server: embedded SQLite, no keys, open dashboard.
    Dev(DevArgs),
    /// Run in production: Postgres or SQLite, signing and event keys required.
    Start(StartArgs),
}

#[derive(Debug, Args)]
struct Common {
    /// Port to listen on [default: 8288].
    #[arg(short, long)]
    port: Option<u16>,
    /// Address to listen on [default: 127.0.0.1].
    #[arg(long)]
    host: Option<IpAddr>,
    /// A TOML configuration file (layered under SLUICE_* variables and flags).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct DevArgs {
    #[command(flatten)]
    common: Common,
    /// Directory of the embedded database [default: .sluice].
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// An app's serve URL to sync (repeatable), e.g. http://localhost:3000/api/inngest.
    #[arg(short = 'u', long = "sdk-url", value_name = "APP_URL")]
    apps: Vec<String>,
}

#[derive(Debug, Args)]
struct StartArgs {
    #[command(flatten)]
    common: Common,
    /// `postgres://user:pass@host/db` or `sqlite:///path/to/sluice.db`.
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// Signing key, `signkey-<env>-<hex>`.
    #[arg(long, value_name = "KEY")]
    signing_key: Option<String>,
    /// A second signing key accepted while rotating keys.
    #[arg(long, value_name = "KEY")]
    signing_key_fallback: Option<String>,
    /// An accepted event key (repeatable).
    #[arg(long = "event-key", value_name = "KEY")]
    event_keys: Vec<String>,
    /// An app's serve URL to sync (repeatable).
    #[arg(short = 'u', long = "sdk-url", value_name = "APP_URL")]
    apps: Vec<String>,
}

impl Cli {
    /// The layered, validated configuration this command line asks for.
    pub fn config(&self, env: &[(String, String)]) -> anyhow::Result<Config> {
        let (common, overrides) = match &self.command {
            Command::Dev(a) => (
                &a.common,
                Overrides {
                    mode: Some(Mode::Dev),
                    data_dir: a.data_dir.clone(),
                    apps: a.apps.clone(),
                    ..Default::default()
                },
            ),
            Command::Start(a) => (
                &a.common,
                Overrides {
                    mode: Some(Mode::Start),
                    database_url: a.database_url.clone(),
                    signing_key: a.signing_key.clone(),
                    signing_key_fallback: a.signing_key_fallback.clone(),
                    event_keys: a.event_keys.clone(),
                    apps: a.apps.clone(),
                    ..Default::default()
                },
            ),
        };
        let overrides = Overrides {
            port: common.port,
            host: common.host,
            ..overrides
        };
        Config::load(common.config.as_deref(), env, overrides)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subcommands_set_the_mode_and_flags() {
        let cli = Cli::parse_from([
            "sluice",
            "dev",
            "-u",
            "http://localhost:3000/api/inngest",
            "--port",
            "0",
        ]);
        let c = cli.config(&[]).unwrap();
        assert_eq!((c.mode, c.port), (Mode::Dev, 0));
        assert_eq!(c.apps, vec!["http://localhost:3000/api/inngest"]);

        let cli = Cli::parse_from([
            "sluice",
            "start",
            "--database-url",
            "sqlite:///tmp/s.db",
            "--signing-key",
            "signkey-prod-00ff",
            "--event-key",
            "a",
            "--event-key",
            "b",
        ]);
        let c = cli.config(&[]).unwrap();
        assert_eq!(c.mode, Mode::Start);
        assert_eq!(c.event_keys, vec!["a", "b"]);

        let cli = Cli::parse_from(["sluice", "start"]);
        assert!(
            cli.config(&[])
                .unwrap_err()
                .to_string()
                .contains("--database-url")
        );
    }
}
