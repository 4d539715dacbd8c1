//! The results of a run: kept as JSON, rendered as a Markdown table.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::peer::Drain;
use crate::stats::Summary;
use crate::suite::{Settings, StoreResults};

/// The baselines' figures.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Peer {
    /// pgbench, one-row INSERT per transaction, same client count: transactions/s.
    pub pgbench_tps: Option<f64>,
    /// graphile-worker with its defaults.
    pub graphile_default: Option<Drain>,
    /// graphile-worker with its documented high-throughput settings.
    pub graphile_tuned: Option<Drain>,
    /// graphile-worker job-start latency.
    pub graphile_latency: Option<Summary>,
    /// The samples behind `graphile_latency`, milliseconds.
    pub graphile_latency_ms: Vec<f64>,
    /// What failed, in words.
    pub notes: Vec<String>,
}

/// One benchmark run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Results {
    /// The command that produced it.
    pub command: String,
    /// When it ran (UTC, from `date`).
    pub date: String,
    /// The machine, in words.
    pub machine: String,
    /// Load sizes.
    pub settings: Settings,
    /// Per store.
    pub stores: Vec<StoreResults>,
    /// Baselines.
    pub peer: Peer,
}

/// How a figure compares with its target.
#[derive(Debug, Clone, Copy)]
enum Goal {
    /// No target.
    None,
    /// At least this much.
    AtLeast(f64),
    /// At most this much.
    AtMost(f64),
    /// At least this much and at least this ratio to the baseline.
    AtLeastAndRatio(f64, f64),
}

struct Row {
    figure: String,
    store: String,
    sluice: Option<f64>,
    baseline: Option<f64>,
    baseline_label: &'static str,
    goal: Goal,
    decimals: usize,
}

impl Row {
    fn ratio(&self) -> Option<f64> {
        match (self.sluice, self.baseline) {
            (Some(s), Some(b)) if b != 0.0 => Some(s / b),
            _ => None,
        }
    }

    fn target(&self) -> String {
        let n = |v: f64| number(v, if v.fract() == 0.0 { 0 } else { self.decimals });
        match self.goal {
            Goal::None => "—".into(),
            Goal::AtLeast(v) => format!("≥ {}", n(v)),
            Goal::AtMost(v) => format!("≤ {}", n(v)),
            Goal::AtLeastAndRatio(v, r) => format!("≥ {} and ≥ {r:.1}×", n(v)),
        }
    }

    fn met(&self) -> &'static str {
        let Some(s) = self.sluice else { return "—" };
        let ok = match self.goal {
            Goal::None => return "",
            Goal::AtLeast(v) => s >= v,
            Goal::AtMost(v) => s <= v,
            Goal::AtLeastAndRatio(v, r) => s >= v && self.ratio().is_some_and(|x| x >= r),
        };
        if ok { "yes" } else { "**no**" }
    }
}

/// `v` with `decimals` places and thin thousands separators (`12,345.6`).
pub fn number(v: f64, decimals: usize) -> String {
    let text = format!("{:.*}", decimals, v.abs());
    let (int, frac) = text
        .split_once('.')
        .map_or((text.as_str(), None), |(i, f)| (i, Some(f)));
    let mut grouped = String::new();
    for (i, c) in int.chars().enumerate() {
        if i > 0 && (int.len() - i) % 3 == 0 {
            grouped.push(',');
        }
        grouped.push(c);
    }
    let sign = if v < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
        "-"
    } else {
        ""
    };
    match frac {
        Some(f) => format!("{sign}{grouped}.{f}"),
        None => format!("{sign}{grouped}"),
    }
}

fn rows(results: &Results) -> Vec<Row> {
    let peer = &results.peer;
    let s = &results.settings;
    let mut rows = Vec::new();
    for store in &results.stores {
        let pg = store.store == "Postgres";
        let row = |figure: String,
                   sluice: Option<f64>,
                   baseline: Option<f64>,
                   baseline_label,
                   goal,
                   decimals| Row {
            figure,
            store: store.store.clone(),
            sluice,
            baseline,
            baseline_label,
            goal,
            decimals,
        };
        let per_s = |t: &Option<crate::suite::Throughput>| t.as_ref().map(|t| t.per_second);
        rows.push(row(
            format!("Ingest, 1 event/request, {} clients (events/s)", s.clients),
            store.ingest_single.as_ref().map(|i| i.per_second),
            peer.pgbench_tps,
            "pgbench 1-row INSERT/tx, same clients (tx/s)",
            if pg {
                Goal::AtLeastAndRatio(15_000.0, 1.0)
            } else {
                Goal::None
            },
            0,
        ));
        rows.push(row(
            format!(
                "Ingest, {} events/request, {} clients (events/s)",
                s.batch, s.clients
            ),
            store.ingest_batch.as_ref().map(|i| i.per_second),
            peer.pgbench_tps,
            "pgbench 1-row INSERT/tx, same clients (tx/s)",
            Goal::AtLeast(50_000.0),
            0,
        ));
        rows.push(row(
            format!(
                "End-to-end, {} one-step runs (runs/s)",
                number(s.one_step_runs as f64, 0)
            ),
            per_s(&store.one_step),
            peer.graphile_default.as_ref().map(|d| d.per_second),
            "graphile-worker, default settings (jobs/s)",
            if pg {
                Goal::AtLeastAndRatio(8_000.0, 4.0)
            } else {
                Goal::None
            },
            0,
        ));
        rows.push(row(
            format!(
                "End-to-end, {} one-step runs (runs/s)",
                number(s.one_step_runs as f64, 0)
            ),
            per_s(&store.one_step),
            peer.graphile_tuned.as_ref().map(|d| d.per_second),
            "graphile-worker, tuned batched settings (jobs/s)",
            Goal::None,
            0,
        ));
        let lat = |pick: fn(&Summary) -> f64| store.latency.as_ref().map(pick);
        let peer_lat = |pick: fn(&Summary) -> f64| peer.graphile_latency.as_ref().map(pick);
        rows.push(row(
            format!(
                "Latency, event ack → first call, p50 (ms; {}/s)",
                s.latency_rate
            ),
            lat(|x| x.p50),
            peer_lat(|x| x.p50),
            "graphile-worker add_job ack → job start, p50 (ms)",
            Goal::AtMost(3.0),
            2,
        ));
        rows.push(row(
            "Latency, event ack → first call, p99 (ms)".into(),
            lat(|x| x.p99),
            peer_lat(|x| x.p99),
            "graphile-worker add_job ack → job start, p99 (ms)",
            Goal::AtMost(10.0),
            2,
        ));
        let timers = store.timers.as_ref();
        let lateness =
            |pick: fn(&Summary) -> f64| timers.and_then(|t| t.lateness.as_ref()).map(pick);
        rows.push(row(
            format!(
                "Timers, {} runs sleeping 2 s: lateness p50 (ms)",
                s.timer_runs
            ),
            lateness(|x| x.p50),
            None,
            "—",
            Goal::AtMost(5.0),
            2,
        ));
        rows.push(row(
            "Timers: lateness p99 (ms)".into(),
            lateness(|x| x.p99),
            None,
            "—",
            Goal::AtMost(10.0),
            2,
        ));
        rows.push(row(
            "Timers: woken early (runs)".into(),
            timers.map(|t| t.early as f64),
            None,
            "—",
            Goal::AtMost(0.0),
            0,
        ));
        rows.push(row(
            format!(
                "Ten-step function, {} runs, one step per call (runs/s)",
                number(s.ten_step_runs as f64, 0)
            ),
            per_s(&store.ten_steps),
            per_s(&store.one_step),
            "Sluice one-step runs/s (this store)",
            Goal::None,
            0,
        ));
        let fp = store.footprint.as_ref();
        rows.push(row(
            "Server peak RSS, whole run (MiB)".into(),
            fp.map(|f| f.peak_rss_mib).filter(|v| *v > 0.0),
            None,
            "—",
            Goal::AtMost(150.0),
            1,
        ));
        rows.push(row(
            "Server CPU s per 1,000 one-step runs".into(),
            fp.map(|f| f.server_cpu_per_1000_runs),
            None,
            "—",
            Goal::None,
            3,
        ));
        if pg {
            rows.push(row(
                "Postgres CPU s per 1,000 one-step runs".into(),
                fp.and_then(|f| f.postgres_cpu_per_1000_runs),
                None,
                "—",
                Goal::None,
                3,
            ));
        }
        rows.push(row(
            "Load generator + endpoint CPU s per 1,000 runs".into(),
            fp.map(|f| f.bench_cpu_per_1000_runs),
            None,
            "—",
            Goal::None,
            3,
        ));
    }
    rows
}

/// The Markdown report: the table, then what it means and how it was made.
pub fn markdown(results: &Results, chart_file: &str) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "# Sluice benchmark results\n");
    let _ = writeln!(md, "- Date: {}", results.date);
    let _ = writeln!(md, "- Machine: {}", results.machine);
    let _ = writeln!(md, "- Command: `{}`\n", results.command);
    let _ = writeln!(
        md,
        "Every figure below was measured in this one run, on this one machine: the server, its \
         store, the load generator, the function endpoint and the peers all share its cores. \
         Ratio = Sluice ÷ baseline (for latencies and times, lower is better).\n"
    );
    let _ = writeln!(
        md,
        "| Figure | Store | Sluice | Baseline / peer | Baseline | Ratio | Target | Met |"
    );
    let _ = writeln!(md, "|---|---|---:|---|---:|---:|---|---|");
    for row in rows(results) {
        let value = |v: Option<f64>| v.map_or("—".to_owned(), |v| number(v, row.decimals));
        let ratio = row.ratio().map_or("—".to_owned(), |r| format!("{r:.2}×"));
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            row.figure,
            row.store,
            value(row.sluice),
            row.baseline_label,
            value(row.baseline),
            ratio,
            row.target(),
            row.met()
        );
    }
    let _ = writeln!(md, "\n![Latency distributions]({chart_file})\n");
    let _ = writeln!(md, "## Details\n");
    for store in &results.stores {
        if let Some(t) = &store.one_step {
            let _ = writeln!(
                md,
                "- {}: {} of {} one-step runs finished in {:.2} s.",
                store.store, t.finished, t.runs, t.seconds
            );
        }
        if let Some(t) = &store.ten_steps {
            let _ = writeln!(
                md,
                "- {}: {} of {} ten-step runs finished in {:.2} s ({} calls/s).",
                store.store,
                t.finished,
                t.runs,
                t.seconds,
                number(t.per_second * 11.0, 0)
            );
        }
        if let Some(l) = &store.latency {
            let _ = writeln!(
                md,
                "- {}: latency min {:.2} ms, max {:.2} ms over {} events.",
                store.store, l.min, l.max, l.count
            );
        }
        if let Some(t) = &store.timers {
            if let Some(l) = &t.lateness {
                let _ = writeln!(
                    md,
                    "- {}: timers fired {}/{}; lateness min {:.2} ms, max {:.2} ms; woken early: {}.",
                    store.store, t.fired, t.runs, l.min, l.max, t.early
                );
            }
        }
        for (what, i) in [
            ("single", &store.ingest_single),
            ("batched", &store.ingest_batch),
        ] {
            if let Some(i) = i {
                if i.errors > 0 {
                    let _ = writeln!(
                        md,
                        "- {}: {what} ingest had {} error replies (first: {}).",
                        store.store,
                        i.errors,
                        i.first_error.as_deref().unwrap_or("?")
                    );
                }
            }
        }
        for note in &store.notes {
            let _ = writeln!(md, "- {}: **failed**: {note}", store.store);
        }
    }
    for d in [&results.peer.graphile_default, &results.peer.graphile_tuned]
        .into_iter()
        .flatten()
    {
        let _ = writeln!(
            md,
            "- graphile-worker ({}): {} of {} jobs in {:.2} s.",
            d.mode, d.done, d.jobs, d.seconds
        );
    }
    for note in &results.peer.notes {
        let _ = writeln!(md, "- peer: **failed**: {note}");
    }
    let s = &results.settings;
    let _ = writeln!(
        md,
        "\n## How each figure is measured\n\n\
         1. **Ingest**: {c} keep-alive HTTP/1.1 connections post to `POST /e/{{key}}` back to back \
         (closed loop), {w} s warm-up then {m} s counted; an event counts once its `200` (sent \
         after the durable commit) arrives. Bodies are ~200-byte events without `id`. Baseline: \
         `pgbench -n -c {c} -j 2 -T {p}` running one `INSERT` of an event-sized row per \
         transaction into a fresh database on the same Postgres (fsync on).\n\
         2. **End-to-end**: {r} events (batches of 100, 4 requests in flight), each triggering a \
         function with one `step.run` that returns at once; time from the first send to the \
         function's last `200` (the run's final call). Each run is two calls. Peer: \
         graphile-worker 0.18 (Node 22 from npm) running in the same way: the worker is started, \
         then {r} no-op jobs are enqueued with `addJobs` (1,000 per call); time from the first \
         enqueue to the last handler. Default settings = concurrency 1; tuned = concurrency 24, \
         pool 25, `localQueue.size` 500, `completeJobBatchDelay`/`failJobBatchDelay` 0 (its \
         performance page).\n\
         3. **Latency**: {le} events, one per request, sent at {lr}/s on a fixed schedule; time \
         from the `200` reaching the client to the function's first call reaching the endpoint \
         (same process, one monotonic clock; negative when the call beats the reply). Peer: \
         `addJob` resolved → task start at the same rate, default settings.\n\
         4. **Timers**: {tr} events at {trate}/s to a function whose first call answers `Sleep 2s`; \
         lateness = second call's arrival − (first reply + 2 s). *Early* = the second call \
         arrived less than 2 s after the first call arrived.\n\
         5. **Multi-step**: {ts} runs of a ten-step function on the classic path (one new step per \
         call, 11 calls per run).\n\
         6. **Footprint**: peak RSS is the server's `VmHWM` at the end of all phases; CPU seconds \
         are `/proc` utime+stime differences across the end-to-end phase, divided by its runs.\n",
        c = s.clients,
        w = s.ingest_warmup_s,
        m = s.ingest_measure_s,
        p = s.pgbench_s,
        r = number(s.one_step_runs as f64, 0),
        le = s.latency_events,
        lr = s.latency_rate,
        tr = s.timer_runs,
        trate = s.timer_rate,
        ts = s.ten_step_runs,
    );
    md
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_and_targets() {
        let cases: &[(f64, usize, &str)] = &[
            (0.0, 0, "0"),
            (999.4, 0, "999"),
            (15_000.0, 0, "15,000"),
            (1_234_567.891, 2, "1,234,567.89"),
            (-1234.5, 1, "-1,234.5"),
            (-0.001, 2, "0.00"),
        ];
        for (v, d, want) in cases {
            assert_eq!(number(*v, *d), *want);
        }
        let row = |sluice, baseline, goal| Row {
            figure: String::new(),
            store: String::new(),
            sluice,
            baseline,
            baseline_label: "",
            goal,
            decimals: 0,
        };
        let table: &[(Row, &str, Option<f64>)] = &[
            (
                row(
                    Some(16_000.0),
                    Some(15_000.0),
                    Goal::AtLeastAndRatio(15_000.0, 1.0),
                ),
                "yes",
                Some(16_000.0 / 15_000.0),
            ),
            (
                row(
                    Some(16_000.0),
                    Some(17_000.0),
                    Goal::AtLeastAndRatio(15_000.0, 1.0),
                ),
                "**no**",
                Some(16_000.0 / 17_000.0),
            ),
            (row(Some(2.5), None, Goal::AtMost(3.0)), "yes", None),
            (row(Some(0.0), None, Goal::AtMost(0.0)), "yes", None),
            (row(None, Some(1.0), Goal::AtLeast(1.0)), "—", None),
            (row(Some(1.0), Some(0.0), Goal::None), "", None),
        ];
        for (row, met, ratio) in table {
            assert_eq!((row.met(), row.ratio()), (*met, *ratio));
        }
    }
}
