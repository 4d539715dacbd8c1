//! The `sluice` process under test, and CPU/memory readings from `/proc`.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

use crate::client::Conn;

/// The signing key the server is started with (a made-up bench key).
pub const SIGNING_KEY: &str =
    "signkey-bench-5c1a7e0b5e4c43d6a1f0e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4e5f6a7b";
/// The event key the server accepts.
pub const EVENT_KEY: &str = "bench";
/// Linux reports `/proc/<pid>/stat` CPU times in these ticks per second (USER_HZ).
const TICKS_PER_SECOND: f64 = 100.0;

/// Which store the server runs on.
#[derive(Debug, Clone)]
pub enum Backend {
    /// `sluice start --database-url <url>`.
    Postgres {
        /// The database URL.
        url: String,
    },
    /// `sluice dev --data-dir <dir>` (embedded SQLite).
    Sqlite {
        /// The data directory.
        data_dir: PathBuf,
    },
}

impl Backend {
    /// A short name for tables and file names.
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Postgres { .. } => "Postgres",
            Backend::Sqlite { .. } => "SQLite",
        }
    }
}

/// A running `sluice` process.
#[derive(Debug)]
pub struct Server {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    /// Its process id.
    pub pid: u32,
    /// Whether the server checks keys (`start` mode).
    pub keyed: bool,
}

impl Server {
    /// Starts `binary` on `backend`, logging to `log` (level `warn`, or
    /// `$SLUICE_BENCH_LOG`), and waits for `/health`.
    pub async fn start(binary: &Path, backend: &Backend, log: &Path) -> Result<Self> {
        let port = free_port()?;
        let mut command = Command::new(binary);
        match backend {
            Backend::Postgres { url } => {
                command.args(["start", "--database-url", url, "--signing-key", SIGNING_KEY]);
                command.args(["--event-key", EVENT_KEY]);
            }
            Backend::Sqlite { data_dir } => {
                command.arg("dev").arg("--data-dir").arg(data_dir);
            }
        }
        command.args(["--port", &port.to_string()]);
        let log_file = std::fs::File::create(log)
            .with_context(|| format!("cannot create {}", log.display()))?;
        command
            .env(
                "RUST_LOG",
                std::env::var("SLUICE_BENCH_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .kill_on_drop(true);
        let mut child = command
            .spawn()
            .with_context(|| format!("cannot start {}", binary.display()))?;
        let pid = child.id().context("the server exited at once")?;
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "sluice exited with {status} during start-up; see {}",
                    log.display()
                );
            }
            if let Ok(mut conn) = Conn::connect(addr).await {
                if let Ok(reply) = conn.request("GET", "/health", &[], b"").await {
                    if reply.status == 200 {
                        break;
                    }
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "sluice did not become healthy in 30 s; see {}",
                    log.display()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self {
            child,
            addr,
            pid,
            keyed: matches!(backend, Backend::Postgres { .. }),
        })
    }

    /// CPU seconds (user + system) the server has used so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        cpu_seconds(self.pid)
    }

    /// The server's peak resident set size so far (`VmHWM`), in bytes.
    pub fn peak_rss_bytes(&self) -> Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid))?;
        let line = status
            .lines()
            .find(|l| l.starts_with("VmHWM:"))
            .context("no VmHWM in /proc status")?;
        let kib: u64 = line
            .split_whitespace()
            .nth(1)
            .and_then(|v| v.parse().ok())
            .context("bad VmHWM line")?;
        Ok(kib * 1024)
    }

    /// Asks the server to stop (SIGTERM, via `kill`) and waits up to 15 s, then kills it.
    pub async fn stop(mut self) -> Result<()> {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status()
            .await;
        if tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .is_err()
        {
            self.child.kill().await?;
        }
        Ok(())
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
fn free_port() -> Result<u16> {
    Ok(TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
        .local_addr()?
        .port())
}

/// CPU seconds (user + system) of process `pid`.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_cpu_ticks(&stat).map(|ticks| ticks as f64 / TICKS_PER_SECOND)
}

/// utime + stime from a `/proc/<pid>/stat` line (fields 14 and 15; the command name
/// in parentheses may hold spaces).
fn parse_cpu_ticks(stat: &str) -> Result<u64> {
    let after = stat.rfind(')').context("bad /proc stat")?;
    let fields: Vec<&str> = stat[after + 1..].split_whitespace().collect();
    // fields[0] is field 3 (state): utime is field 14, stime field 15.
    let utime: u64 = fields
        .get(11)
        .and_then(|v| v.parse().ok())
        .context("no utime")?;
    let stime: u64 = fields
        .get(12)
        .and_then(|v| v.parse().ok())
        .context("no stime")?;
    Ok(utime + stime)
}

fn parent_pid(stat: &str) -> Option<u32> {
    let after = stat.rfind(')')?;
    stat[after + 1..].split_whitespace().nth(1)?.parse().ok()
}

/// CPU seconds of the Postgres server whose data directory is `data_dir`: the
/// postmaster and its children alive now (the server's pooled backends live as long as
/// the server, so differences between two readings are meaningful).
pub fn postgres_cpu_seconds(data_dir: &Path) -> Result<f64> {
    let pid_file = std::fs::read_to_string(data_dir.join("postmaster.pid"))
        .with_context(|| format!("cannot read {}/postmaster.pid", data_dir.display()))?;
    let root: u32 = pid_file
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .context("bad postmaster.pid")?;
    let mut total = cpu_seconds(root)?;
    for entry in std::fs::read_dir("/proc")? {
        let Some(pid) = entry?
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        if parent_pid(&stat) == Some(root) {
            total += parse_cpu_ticks(&stat).unwrap_or(0) as f64 / TICKS_PER_SECOND;
        }
    }
    Ok(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_cpu_ticks_and_parent_from_stat_lines() {
        let cases: &[(&str, Option<u64>, Option<u32>)] = &[
            (
                "42 (sluice) S 7 42 42 0 -1 4194560 100 0 0 0 250 30 0 0 20 0 9 0",
                Some(280),
                Some(7),
            ),
            (
                "43 (postgres: sluice x (y)) R 1 43 43 0 -1 0 0 0 0 0 5 6 0 0",
                Some(11),
                Some(1),
            ),
            ("garbage", None, None),
        ];
        for (line, ticks, parent) in cases {
            assert_eq!(parse_cpu_ticks(line).ok(), *ticks, "{line}");
            assert_eq!(parent_pid(line), *parent, "{line}");
        }
        assert!(cpu_seconds(std::process::id()).unwrap() >= 0.0);
    }
}
