//! The six measurements against one store, in order, on one `sluice` process.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};

use crate::client::Pool;
use crate::endpoint::{Endpoint, Function, Recorder, SLEEP};
use crate::load::{self, IngestOutcome, IngestParams};
use crate::server::{self, Backend, EVENT_KEY, SIGNING_KEY, Server};
use crate::stats::Summary;

/// One of the measurements made on each store.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// Ingest, single and batched requests.
    Ingest,
    /// End-to-end one-step runs (and the CPU figures).
    Runs,
    /// Event acknowledged → first call.
    Latency,
    /// Sleeping runs' lateness.
    Timers,
    /// The ten-step function.
    TenSteps,
}

/// How much load each measurement applies.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Settings {
    /// Concurrent ingest clients.
    pub clients: usize,
    /// Events per request in the batched ingest.
    pub batch: usize,
    /// Ingest warm-up, seconds (not counted).
    pub ingest_warmup_s: u64,
    /// Ingest measured window, seconds.
    pub ingest_measure_s: u64,
    /// pgbench duration, seconds.
    pub pgbench_s: u64,
    /// Runs of the one-step function (and graphile-worker jobs).
    pub one_step_runs: u64,
    /// Events of the latency measurement.
    pub latency_events: u64,
    /// Their rate, per second.
    pub latency_rate: f64,
    /// Runs of the sleeping function.
    pub timer_runs: u64,
    /// Their rate, per second.
    pub timer_rate: f64,
    /// Runs of the ten-step function.
    pub ten_step_runs: u64,
}

impl Settings {
    /// The figures the issue asks for.
    pub fn full() -> Self {
        Self {
            clients: 16,
            batch: 100,
            ingest_warmup_s: 2,
            ingest_measure_s: 10,
            pgbench_s: 10,
            one_step_runs: 20_000,
            latency_events: 1_000,
            latency_rate: 100.0,
            timer_runs: 1_000,
            timer_rate: 200.0,
            ten_step_runs: 2_000,
        }
    }

    /// A smoke run of a minute or so (figures not comparable).
    pub fn quick() -> Self {
        Self {
            ingest_warmup_s: 1,
            ingest_measure_s: 3,
            pgbench_s: 3,
            one_step_runs: 2_000,
            latency_events: 200,
            timer_runs: 200,
            ten_step_runs: 200,
            ..Self::full()
        }
    }
}

/// Runs per second of a function.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Throughput {
    /// Runs started (events sent).
    pub runs: u64,
    /// Runs that finished before the time limit.
    pub finished: u64,
    /// Seconds from the first send to the last finish (or to the time limit).
    pub seconds: f64,
    /// `finished / seconds`.
    pub per_second: f64,
}

/// Lateness of sleeping runs.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timers {
    /// Lateness (second call − (first reply + sleep)), milliseconds.
    pub lateness: Option<Summary>,
    /// Second calls that arrived before first call + sleep: woken early.
    pub early: u64,
    /// Runs whose timer fired.
    pub fired: u64,
    /// Runs started.
    pub runs: u64,
}

/// What the server cost.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Footprint {
    /// Peak RSS over the whole run (all phases), MiB.
    pub peak_rss_mib: f64,
    /// Server CPU seconds per 1,000 one-step runs.
    pub server_cpu_per_1000_runs: f64,
    /// Postgres CPU seconds per 1,000 one-step runs (Postgres only).
    pub postgres_cpu_per_1000_runs: Option<f64>,
    /// This process's (load generator + endpoint) CPU seconds per 1,000 runs.
    pub bench_cpu_per_1000_runs: f64,
}

/// Everything measured on one store.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StoreResults {
    /// `Postgres` or `SQLite`.
    pub store: String,
    /// Single-event requests.
    pub ingest_single: Option<IngestOutcome>,
    /// Batched requests.
    pub ingest_batch: Option<IngestOutcome>,
    /// One-step runs.
    pub one_step: Option<Throughput>,
    /// Event acknowledged → first call, milliseconds.
    pub latency: Option<Summary>,
    /// The samples behind `latency`.
    pub latency_ms: Vec<f64>,
    /// Timer lateness.
    pub timers: Option<Timers>,
    /// The samples behind `timers`.
    pub timer_lateness_ms: Vec<f64>,
    /// Ten-step runs.
    pub ten_steps: Option<Throughput>,
    /// Memory and CPU.
    pub footprint: Option<Footprint>,
    /// What failed, in words.
    pub notes: Vec<String>,
}

/// What the measurements need.
#[derive(Debug)]
pub struct Context {
    /// The `sluice` binary.
    pub binary: PathBuf,
    /// Postgres data directory (for its CPU readings), when known.
    pub pg_data_dir: Option<PathBuf>,
    /// Scratch directory (server logs, SQLite data).
    pub work_dir: PathBuf,
    /// Load sizes.
    pub settings: Settings,
    /// The measurements to make.
    pub phases: Vec<Phase>,
    /// `psql`, to checkpoint Postgres between phases.
    pub psql: PathBuf,
    next_n: AtomicU64,
}

impl Context {
    /// A context; event keys `n` start at 0.
    pub fn new(
        binary: PathBuf,
        pg_data_dir: Option<PathBuf>,
        work_dir: PathBuf,
        settings: Settings,
        phases: Vec<Phase>,
        psql: PathBuf,
    ) -> Self {
        Self {
            binary,
            pg_data_dir,
            work_dir,
            settings,
            phases,
            psql,
            next_n: AtomicU64::new(0),
        }
    }

    fn does(&self, phase: Phase) -> bool {
        self.phases.contains(&phase)
    }

    /// `count` fresh event keys.
    fn keys(&self, count: u64) -> Range<u64> {
        let start = self.next_n.fetch_add(count, Ordering::Relaxed);
        start..start + count
    }
}

fn keep<T>(notes: &mut Vec<String>, what: &str, result: Result<T>) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(err) => {
            let note = format!("{what}: {err:#}");
            eprintln!("bench: {note}");
            notes.push(note);
            None
        }
    }
}

fn ms(later: Instant, earlier: Instant) -> f64 {
    if later >= earlier {
        (later - earlier).as_secs_f64() * 1000.0
    } else {
        -((earlier - later).as_secs_f64() * 1000.0)
    }
}

/// Runs the six measurements against `backend`.
pub async fn run(ctx: &Context, backend: &Backend) -> StoreResults {
    let mut r = StoreResults {
        store: backend.name().to_owned(),
        ingest_single: None,
        ingest_batch: None,
        one_step: None,
        latency: None,
        latency_ms: Vec::new(),
        timers: None,
        timer_lateness_ms: Vec::new(),
        ten_steps: None,
        footprint: None,
        notes: Vec::new(),
    };
    let log = ctx
        .work_dir
        .join(format!("sluice-{}.log", backend.name().to_lowercase()));
    let started = Server::start(&ctx.binary, backend, &log).await;
    let Some(server) = keep(&mut r.notes, "start", started) else {
        return r;
    };
    let s = &ctx.settings;
    let path = format!("/e/{EVENT_KEY}");
    let ingest = |batch| IngestParams {
        addr: server.addr,
        path: path.clone(),
        clients: s.clients,
        batch,
        warmup: Duration::from_secs(s.ingest_warmup_s),
        measure: Duration::from_secs(s.ingest_measure_s),
    };
    if ctx.does(Phase::Ingest) {
        eprintln!(
            "bench: {}: ingest, 1 event per request, {} clients",
            r.store, s.clients
        );
        r.ingest_single = keep(
            &mut r.notes,
            "ingest (single)",
            load::ingest(&ingest(1)).await,
        );
        eprintln!("bench: {}: ingest, {} events per request", r.store, s.batch);
        r.ingest_batch = keep(
            &mut r.notes,
            "ingest (batch)",
            load::ingest(&ingest(s.batch)).await,
        );
        settle(ctx, backend).await;
    }

    let api_origin = format!("http://{}", server.addr);
    let key = server.keyed.then_some(SIGNING_KEY);
    let endpoint = match Endpoint::start(&api_origin, key).await {
        Ok(e) => e,
        Err(err) => {
            r.notes.push(format!("endpoint: {err:#}"));
            let _ = server.stop().await;
            return r;
        }
    };
    if keep(&mut r.notes, "sync", endpoint.sync().await).is_some() {
        let pool = Arc::new(Pool::new(server.addr));
        measure_runs(ctx, backend, &server, &endpoint, &pool, &path, &mut r).await;
    }
    let peak = keep(&mut r.notes, "peak rss", server.peak_rss_bytes());
    if let (Some(f), Some(peak)) = (r.footprint.as_mut(), peak) {
        f.peak_rss_mib = peak as f64 / (1024.0 * 1024.0);
    }
    keep(&mut r.notes, "stop", server.stop().await);
    r
}

async fn measure_runs(
    ctx: &Context,
    backend: &Backend,
    server: &Server,
    endpoint: &Endpoint,
    pool: &Arc<Pool>,
    path: &str,
    r: &mut StoreResults,
) {
    let s = &ctx.settings;
    let recorder = &endpoint.recorder;

    if ctx.does(Phase::Runs) {
        eprintln!("bench: {}: {} one-step runs", r.store, s.one_step_runs);
        let cpu = || -> Result<(f64, Option<f64>, f64)> {
            let pg = match &ctx.pg_data_dir {
                Some(dir) if server.keyed => Some(server::postgres_cpu_seconds(dir)?),
                _ => None,
            };
            Ok((
                server.cpu_seconds()?,
                pg,
                server::cpu_seconds(std::process::id())?,
            ))
        };
        let before = keep(&mut r.notes, "cpu", cpu());
        let keys = ctx.keys(s.one_step_runs);
        r.one_step = keep(
            &mut r.notes,
            "one-step runs",
            drain(
                pool,
                path,
                recorder,
                Function::OneStep,
                keys,
                Duration::from_secs(180),
            )
            .await,
        );
        let after = keep(&mut r.notes, "cpu", cpu());
        if let (Some(b), Some(a), Some(t)) = (
            before,
            after,
            r.one_step.as_ref().filter(|t| t.finished > 0),
        ) {
            let per = |x: f64| x / (t.finished as f64 / 1000.0);
            r.footprint = Some(Footprint {
                peak_rss_mib: 0.0,
                server_cpu_per_1000_runs: per(a.0 - b.0),
                postgres_cpu_per_1000_runs: a.1.zip(b.1).map(|(a, b)| per(a - b)),
                bench_cpu_per_1000_runs: per(a.2 - b.2),
            });
        }
        settle(ctx, backend).await;
    }

    if ctx.does(Phase::Latency) {
        eprintln!(
            "bench: {}: latency, {} events at {}/s",
            r.store, s.latency_events, s.latency_rate
        );
        let keys = ctx.keys(s.latency_events);
        if let Some(samples) = keep(
            &mut r.notes,
            "latency",
            latency(pool, path, recorder, keys, s.latency_rate).await,
        ) {
            r.latency = Summary::of(&samples);
            r.latency_ms = samples;
        }
        settle(ctx, backend).await;
    }

    if ctx.does(Phase::Timers) {
        eprintln!(
            "bench: {}: timers, {} runs sleeping {:?}",
            r.store, s.timer_runs, SLEEP
        );
        let keys = ctx.keys(s.timer_runs);
        if let Some((timers, samples)) = keep(
            &mut r.notes,
            "timers",
            timers(pool, path, recorder, keys, s.timer_rate).await,
        ) {
            r.timers = Some(timers);
            r.timer_lateness_ms = samples;
        }
        settle(ctx, backend).await;
    }

    if ctx.does(Phase::TenSteps) {
        eprintln!("bench: {}: {} ten-step runs", r.store, s.ten_step_runs);
        let keys = ctx.keys(s.ten_step_runs);
        r.ten_steps = keep(
            &mut r.notes,
            "ten-step runs",
            drain(
                pool,
                path,
                recorder,
                Function::TenSteps,
                keys,
                Duration::from_secs(180),
            )
            .await,
        );
    }
}

/// A pause between measurements, so the server's last commits land first. On
/// Postgres also `VACUUM (ANALYZE)` and `CHECKPOINT`: the ingest phase leaves a
/// million events and a gigabyte of WAL behind, and autovacuum's pass over them (about
/// 8 s of a core here) or the checkpoint's writes would otherwise land in the next
/// phase's figures.
async fn settle(ctx: &Context, backend: &Backend) {
    tokio::time::sleep(Duration::from_millis(500)).await;
    if let Backend::Postgres { url } = backend {
        let done = tokio::process::Command::new(&ctx.psql)
            .args(["-q", url, "-c", "VACUUM (ANALYZE)", "-c", "CHECKPOINT"])
            .status()
            .await;
        if !matches!(done, Ok(s) if s.success()) {
            eprintln!("bench: VACUUM and CHECKPOINT between phases failed: {done:?}");
        }
    }
}

/// Sends one event per key (batches of 100, 4 requests at a time) and waits for every
/// run to finish: runs per second from the first send to the last finish.
async fn drain(
    pool: &Arc<Pool>,
    path: &str,
    recorder: &Recorder,
    function: Function,
    keys: Range<u64>,
    limit: Duration,
) -> Result<Throughput> {
    let runs = keys.end - keys.start;
    let target = recorder.finished() + runs;
    let start = Instant::now();
    load::send_all(pool, path, function.event(), keys.clone(), 100, 4).await?;
    recorder.wait_finished(target, limit).await;
    let ends: Vec<Instant> = keys
        .filter_map(|n| recorder.trace(n).and_then(|t| t.finished))
        .collect();
    let finished = ends.len() as u64;
    let seconds = match ends.iter().max() {
        Some(last) if finished == runs => (*last - start).as_secs_f64(),
        _ => start.elapsed().as_secs_f64(),
    };
    Ok(Throughput {
        runs,
        finished,
        seconds,
        per_second: finished as f64 / seconds,
    })
}

/// Event acknowledged → first call, one sample per event, milliseconds.
async fn latency(
    pool: &Arc<Pool>,
    path: &str,
    recorder: &Recorder,
    keys: Range<u64>,
    rate: f64,
) -> Result<Vec<f64>> {
    let target = recorder.finished() + (keys.end - keys.start);
    let acks = load::send_paced(pool, path, Function::OneStep.event(), keys, rate).await?;
    recorder
        .wait_finished(target, Duration::from_secs(30))
        .await;
    let samples: Vec<f64> = acks
        .iter()
        .filter_map(|(n, acked)| Some(ms(recorder.trace(*n)?.first_call?, *acked)))
        .collect();
    if samples.len() < acks.len() {
        bail!(
            "{} of {} events reached the function",
            samples.len(),
            acks.len()
        );
    }
    Ok(samples)
}

/// Lateness of each sleeping run's wake-up call, milliseconds.
async fn timers(
    pool: &Arc<Pool>,
    path: &str,
    recorder: &Recorder,
    keys: Range<u64>,
    rate: f64,
) -> Result<(Timers, Vec<f64>)> {
    let runs = keys.end - keys.start;
    let target = recorder.finished() + runs;
    let acks = load::send_paced(pool, path, Function::Sleep.event(), keys, rate).await?;
    recorder
        .wait_finished(target, SLEEP + Duration::from_secs(60))
        .await;
    let mut samples = Vec::new();
    let mut early = 0;
    for (n, _) in &acks {
        let Some(trace) = recorder.trace(*n) else {
            continue;
        };
        let (Some(first), Some(replied), Some(second)) =
            (trace.first_call, trace.first_reply, trace.second_call)
        else {
            continue;
        };
        if second < first + SLEEP {
            early += 1;
        }
        samples.push(ms(second, replied + SLEEP));
    }
    let timers = Timers {
        lateness: Summary::of(&samples),
        early,
        fired: samples.len() as u64,
        runs,
    };
    if timers.fired == 0 {
        bail!("none of {runs} timers fired");
    }
    Ok((timers, samples))
}
