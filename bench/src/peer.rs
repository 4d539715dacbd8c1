//! The baselines run on the same machine in the same run: `pgbench` (the durable
//! one-row-commit ceiling of this disk) and graphile-worker (a Postgres job queue users
//! pick instead), driven through `bench/peer/graphile.cjs`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use tokio::process::Command;

/// Where the Postgres tools and the peer live.
#[derive(Debug, Clone)]
pub struct Tools {
    /// Directory with `psql` and `pgbench`.
    pub pg_bin: PathBuf,
    /// `bench/peer` (with `node_modules` installed).
    pub peer_dir: PathBuf,
    /// A scratch directory.
    pub work_dir: PathBuf,
}

/// `url` with its database name replaced by `database`.
pub fn database_url(url: &str, database: &str) -> String {
    let (base, _) = url.rsplit_once('/').unwrap_or((url, ""));
    format!("{base}/{database}")
}

async fn output(command: &mut Command, what: &str) -> Result<String> {
    let out = command
        .output()
        .await
        .with_context(|| format!("cannot run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Drops and creates database `name` on the server of `url` (a maintenance database).
pub async fn fresh_database(tools: &Tools, url: &str, name: &str) -> Result<String> {
    drop_then(
        tools,
        url,
        name,
        &format!("CREATE DATABASE {name}"),
        "create database",
    )
    .await?;
    Ok(database_url(url, name))
}

/// Drops database `name` and checkpoints, so what it left behind (a million events for
/// autovacuum to visit, a gigabyte of WAL to flush) does not land in later figures.
pub async fn drop_database(tools: &Tools, url: &str, name: &str) -> Result<()> {
    drop_then(tools, url, name, "CHECKPOINT", "drop database").await
}

/// Drops database `name` (if there), then runs `then`, from the maintenance database.
async fn drop_then(tools: &Tools, url: &str, name: &str, then: &str, what: &str) -> Result<()> {
    let admin = database_url(url, "postgres");
    output(
        Command::new(tools.pg_bin.join("psql"))
            .args(["-q", "-v", "ON_ERROR_STOP=1", &admin])
            .args([
                "-c",
                &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
            ])
            .args(["-c", then]),
        &format!("psql ({what})"),
    )
    .await?;
    Ok(())
}

/// pgbench with one durable one-row INSERT (an event-sized row) per transaction,
/// `clients` clients for `seconds`; returns transactions per second.
pub async fn pgbench(tools: &Tools, url: &str, clients: usize, seconds: u64) -> Result<f64> {
    let db = fresh_database(tools, url, "bench_pgbench").await?;
    output(
        Command::new(tools.pg_bin.join("psql")).args(["-q", "-v", "ON_ERROR_STOP=1", &db]).args([
            "-c",
            "CREATE TABLE events (id bigserial PRIMARY KEY, name text NOT NULL, data jsonb NOT NULL, ts bigint NOT NULL)",
        ]),
        "psql (create table)",
    )
    .await?;
    let script = tools.work_dir.join("pgbench-insert.sql");
    std::fs::write(
        &script,
        "INSERT INTO events (name, data, ts) VALUES ('bench/ingest', \
         '{\"client\":1,\"i\":0,\"user\":{\"id\":\"u_7f3a9c\",\"plan\":\"pro\"},\
         \"payload\":\"0123456789abcdef0123456789abcdef0123456789abcdef\"}', 1700000000000);\n",
    )?;
    let stdout = output(
        Command::new(tools.pg_bin.join("pgbench"))
            .args([
                "-n",
                "-c",
                &clients.to_string(),
                "-j",
                "2",
                "-T",
                &seconds.to_string(),
                "-f",
            ])
            .arg(&script)
            .arg(&db),
        "pgbench",
    )
    .await?;
    parse_tps(&stdout).with_context(|| format!("no tps in pgbench output: {stdout}"))
}

fn parse_tps(stdout: &str) -> Option<f64> {
    stdout
        .lines()
        .find(|l| l.starts_with("tps = "))
        .and_then(|l| l["tps = ".len()..].split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// graphile-worker's drain: `jobs` no-op jobs enqueued (bulk `addJobs`) into a running
/// worker; seconds from the first enqueue to the last job's handler.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct Drain {
    /// `default` or `tuned`.
    pub mode: String,
    /// Jobs enqueued.
    pub jobs: u64,
    /// Jobs that ran.
    pub done: u64,
    /// Elapsed seconds.
    pub seconds: f64,
    /// Jobs per second.
    pub per_second: f64,
}

#[derive(Debug, Deserialize)]
struct Latency {
    done: u64,
    latencies_ms: Vec<f64>,
}

fn node_command(tools: &Tools, url: &str) -> Command {
    let node = tools.peer_dir.join("node_modules/.bin/node");
    let mut command = Command::new(node);
    command
        .arg(tools.peer_dir.join("graphile.cjs"))
        .current_dir(&tools.peer_dir)
        .env("DATABASE_URL", url)
        .kill_on_drop(true);
    command
}

/// Runs graphile-worker's drain in `mode` (`default` or `tuned`) on a fresh database.
pub async fn graphile_drain(tools: &Tools, url: &str, mode: &str, jobs: u64) -> Result<Drain> {
    let db = fresh_database(tools, url, "bench_graphile").await?;
    let mut command = node_command(tools, &db);
    command.args(["drain", mode, &jobs.to_string()]);
    let run = output(&mut command, "graphile-worker drain");
    let stdout = tokio::time::timeout(Duration::from_secs(300), run)
        .await
        .context("graphile-worker drain timed out")??;
    serde_json::from_str(stdout.trim()).with_context(|| format!("bad peer output: {stdout}"))
}

/// graphile-worker's job-start latency (add_job acknowledged → task start), `events`
/// jobs at `rate` per second; returns the samples in milliseconds.
pub async fn graphile_latency(
    tools: &Tools,
    url: &str,
    events: u64,
    rate: f64,
) -> Result<Vec<f64>> {
    let db = fresh_database(tools, url, "bench_graphile").await?;
    let mut command = node_command(tools, &db);
    command.args(["latency", &events.to_string(), &rate.to_string()]);
    let run = output(&mut command, "graphile-worker latency");
    let stdout = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .context("graphile-worker latency timed out")??;
    let latency: Latency = serde_json::from_str(stdout.trim())
        .with_context(|| format!("bad peer output: {stdout}"))?;
    if latency.done < events {
        bail!("graphile-worker ran {} of {events} jobs", latency.done);
    }
    Ok(latency.latencies_ms)
}

/// True when the peer's Node and graphile-worker are installed in `peer_dir`.
pub fn installed(peer_dir: &Path) -> bool {
    peer_dir.join("node_modules/.bin/node").exists()
        && peer_dir.join("node_modules/graphile-worker").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_pgbench_output() {
        assert_eq!(
            database_url("postgres://u@127.0.0.1:5/sluice", "x"),
            "postgres://u@127.0.0.1:5/x"
        );
        let out = "transaction type: f.sql\nlatency average = 0.9 ms\ntps = 17523.401 (without initial connection time)\n";
        assert_eq!(parse_tps(out), Some(17523.401));
        assert_eq!(parse_tps("tps: none"), None);
    }
}
