//! `sluice-bench`: measures Sluice side by side with what a user would pick instead,
//! in one run on one machine, and writes a Markdown table and a PNG chart.
//!
//! Run it through `bench/run` (which builds, installs the peer, and starts Postgres);
//! see `bench/README.md`.
//!
//! # Layout
//! - [`client`] — a minimal HTTP/1.1 keep-alive client (cheap per request).
//! - [`endpoint`] — the function endpoint (three `sluice-sdk` functions) and its call recorder.
//! - [`load`] — closed-loop ingest, bulk sends and paced sends.
//! - [`server`] — the `sluice` process under test and `/proc` readings.
//! - [`peer`] — pgbench and graphile-worker.
//! - [`suite`] — the six measurements against one store.
//! - [`stats`] — percentiles.
//! - [`report`] — results as JSON and the Markdown table.
//! - [`chart`] — the PNG chart.

mod chart;
mod client;
mod endpoint;
mod load;
mod peer;
mod report;
mod server;
mod stats;
mod suite;

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Parser, ValueEnum};

use crate::report::{Peer, Results};
use crate::server::Backend;
use crate::stats::Summary;
use crate::suite::Settings;

/// Which parts to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Part {
    /// Sluice on Postgres.
    Postgres,
    /// Sluice on embedded SQLite.
    Sqlite,
    /// pgbench and graphile-worker.
    Peers,
}

/// Measures Sluice against pgbench and graphile-worker; see bench/README.md.
#[derive(Debug, Parser)]
#[command(name = "sluice-bench")]
struct Cli {
    /// The release `sluice` binary.
    #[arg(long, default_value = "target/release/sluice")]
    sluice: PathBuf,
    /// A Postgres URL whose server the benchmark may create databases on.
    #[arg(long, env = "SLUICE_TEST_DATABASE_URL")]
    database_url: Option<String>,
    /// That server's directory from scripts/postgres.sh (for Postgres CPU readings).
    #[arg(long, env = "SLUICE_TEST_PG_DIR")]
    pg_dir: Option<PathBuf>,
    /// Directory with psql and pgbench.
    #[arg(long, default_value = "/usr/lib/postgresql/15/bin")]
    pg_bin: PathBuf,
    /// The peer's directory (package.json, graphile.cjs, node_modules).
    #[arg(long, default_value = "bench/peer")]
    peer_dir: PathBuf,
    /// Where results go.
    #[arg(long, default_value = "bench/results")]
    out: PathBuf,
    /// Scratch directory (logs, SQLite data) [default: a new temporary directory].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Parts to run (comma-separated).
    #[arg(long, value_delimiter = ',', default_values = ["postgres", "sqlite", "peers"])]
    parts: Vec<Part>,
    /// Measurements to make on each store (comma-separated; for profiling one phase).
    #[arg(long, value_delimiter = ',', default_values = ["ingest", "runs", "latency", "timers", "ten-steps"])]
    phases: Vec<suite::Phase>,
    /// Small loads for a smoke run (figures not comparable).
    #[arg(long)]
    quick: bool,
    /// Re-render the report and chart from `<out>/results.json` and measure nothing.
    #[arg(long)]
    render_only: bool,
    /// The command line to record in the report.
    #[arg(long, default_value = "bench/run")]
    command: String,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(cli))
}

fn shell(command: &str) -> String {
    std::process::Command::new("sh")
        .args(["-c", command])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!(
        "{} cores ({cpu}), {}, Linux {}, {}",
        shell("nproc"),
        shell("free -g | awk '/Mem:/ {print $2 \" GiB RAM\"}'"),
        shell("uname -r"),
        shell("/usr/lib/postgresql/15/bin/postgres --version 2>/dev/null || echo 'Postgres ?'"),
    )
}

async fn run(cli: Cli) -> Result<()> {
    std::fs::create_dir_all(&cli.out)?;
    let json_path = cli.out.join("results.json");
    let results = if cli.render_only {
        let text = std::fs::read_to_string(&json_path)
            .with_context(|| format!("cannot read {}", json_path.display()))?;
        serde_json::from_str(&text)?
    } else {
        measure(&cli).await?
    };
    if !cli.render_only {
        std::fs::write(&json_path, serde_json::to_vec_pretty(&results)?)?;
    }
    let chart_file = "latency.png";
    if let Err(err) = chart::draw(&results, &cli.out.join(chart_file)) {
        eprintln!("bench: chart: {err:#}");
    }
    let md = report::markdown(&results, chart_file);
    std::fs::write(cli.out.join("RESULTS.md"), &md)?;
    println!("{md}");
    Ok(())
}

async fn measure(cli: &Cli) -> Result<Results> {
    let settings = if cli.quick {
        Settings::quick()
    } else {
        Settings::full()
    };
    let work_dir = match &cli.work_dir {
        Some(dir) => dir.clone(),
        None => std::env::temp_dir().join(format!("sluice-bench-{}", std::process::id())),
    };
    std::fs::create_dir_all(&work_dir)?;
    eprintln!("bench: scratch directory {}", work_dir.display());
    // Absolute: the peer runs with its directory as working directory.
    let peer_dir = std::path::absolute(&cli.peer_dir)?;
    let tools = peer::Tools {
        pg_bin: cli.pg_bin.clone(),
        peer_dir,
        work_dir: work_dir.clone(),
    };
    let ctx = suite::Context::new(
        cli.sluice.clone(),
        cli.pg_dir.as_ref().map(|d| d.join("data")),
        work_dir.clone(),
        settings.clone(),
        cli.phases.clone(),
        cli.pg_bin.join("psql"),
    );
    let mut stores = Vec::new();
    let mut peer = Peer::default();
    let url = cli.database_url.as_deref();
    let need_url = |what: &str| {
        url.with_context(|| format!("{what} needs --database-url (or SLUICE_TEST_DATABASE_URL)"))
    };

    if cli.parts.contains(&Part::Postgres) {
        let url = need_url("the Postgres run")?;
        let db = peer::fresh_database(&tools, url, "bench_sluice").await?;
        stores.push(suite::run(&ctx, &Backend::Postgres { url: db }).await);
        // The SQLite run and the peers come next, on the same machine.
        if let Err(e) = peer::drop_database(&tools, url, "bench_sluice").await {
            eprintln!("bench: dropping the Sluice database failed: {e:#}");
        }
    }
    if cli.parts.contains(&Part::Sqlite) {
        let data_dir = work_dir.join("sqlite");
        let _ = std::fs::remove_dir_all(&data_dir);
        std::fs::create_dir_all(&data_dir)?;
        stores.push(suite::run(&ctx, &Backend::Sqlite { data_dir }).await);
    }
    if cli.parts.contains(&Part::Peers) {
        let url = need_url("the peers")?;
        eprintln!(
            "bench: pgbench, {} clients, {} s",
            settings.clients, settings.pgbench_s
        );
        match peer::pgbench(&tools, url, settings.clients, settings.pgbench_s).await {
            Ok(tps) => peer.pgbench_tps = Some(tps),
            Err(err) => peer.notes.push(format!("pgbench: {err:#}")),
        }
        if peer::installed(&cli.peer_dir) {
            let jobs = settings.one_step_runs;
            for mode in ["tuned", "default"] {
                eprintln!("bench: graphile-worker ({mode}), {jobs} jobs");
                match peer::graphile_drain(&tools, url, mode, jobs).await {
                    Ok(d) if mode == "tuned" => peer.graphile_tuned = Some(d),
                    Ok(d) => peer.graphile_default = Some(d),
                    Err(err) => peer
                        .notes
                        .push(format!("graphile-worker drain ({mode}): {err:#}")),
                }
            }
            eprintln!(
                "bench: graphile-worker latency, {} jobs at {}/s",
                settings.latency_events, settings.latency_rate
            );
            match peer::graphile_latency(
                &tools,
                url,
                settings.latency_events,
                settings.latency_rate,
            )
            .await
            {
                Ok(samples) => {
                    peer.graphile_latency = Summary::of(&samples);
                    peer.graphile_latency_ms = samples;
                }
                Err(err) => peer.notes.push(format!("graphile-worker latency: {err:#}")),
            }
        } else {
            peer.notes.push(format!(
                "graphile-worker is not installed in {} (run bench/run)",
                cli.peer_dir.display()
            ));
        }
    }
    Ok(Results {
        command: cli.command.clone(),
        date: shell("date -u '+%Y-%m-%d %H:%M UTC'"),
        machine: machine(),
        settings,
        stores,
        peer,
    })
}
