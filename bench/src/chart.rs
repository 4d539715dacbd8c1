//! The PNG chart of latency distributions (plotters, bitmap backend, with the DejaVu
//! font embedded so no system font is needed).

use std::path::Path;
use std::sync::Once;

use anyhow::{Result, anyhow};
use plotters::prelude::*;
use plotters::style::{FontStyle, register_font};

use crate::report::Results;
use crate::stats::percentile;

/// Values at or below this are drawn at it (the x axis is logarithmic).
const FLOOR_MS: f64 = 0.05;

/// One line: a label and its samples in milliseconds.
struct Series<'a> {
    label: String,
    samples: &'a [f64],
    color: RGBColor,
}

fn register_fonts() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
        let _ = register_font("sans-serif", FontStyle::Bold, dejavu::sans::bold());
    });
}

/// Draws `results`' latency (event → first call, with the peer) and timer lateness
/// distributions as percentile curves into `path` (PNG).
pub fn draw(results: &Results, path: &Path) -> Result<()> {
    register_fonts();
    let colors = [
        RGBColor(31, 119, 180),
        RGBColor(44, 160, 44),
        RGBColor(214, 39, 40),
    ];
    let mut latency: Vec<Series<'_>> = results
        .stores
        .iter()
        .zip(colors)
        .filter(|(s, _)| !s.latency_ms.is_empty())
        .map(|(s, color)| Series {
            label: format!("Sluice ({})", s.store),
            samples: &s.latency_ms,
            color,
        })
        .collect();
    if !results.peer.graphile_latency_ms.is_empty() {
        latency.push(Series {
            label: "graphile-worker (job start)".into(),
            samples: &results.peer.graphile_latency_ms,
            color: colors[2],
        });
    }
    let timers: Vec<Series<'_>> = results
        .stores
        .iter()
        .zip(colors)
        .filter(|(s, _)| !s.timer_lateness_ms.is_empty())
        .map(|(s, color)| Series {
            label: format!("Sluice ({})", s.store),
            samples: &s.timer_lateness_ms,
            color,
        })
        .collect();

    let root = BitMapBackend::new(path, (1400, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| anyhow!("{e}"))?;
    let (left, right) = root.split_horizontally(700);
    panel(&left, "Event acknowledged → first function call", &latency)?;
    panel(&right, "Timer lateness (sleep 2 s)", &timers)?;
    root.present()
        .map_err(|e| anyhow!("cannot write {}: {e}", path.display()))?;
    Ok(())
}

fn panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    series: &[Series<'_>],
) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let max = series
        .iter()
        .flat_map(|s| s.samples.iter().copied())
        .fold(1.0_f64, f64::max)
        * 1.5;
    let mut chart = ChartBuilder::on(area)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(44)
        .y_label_area_size(56)
        .build_cartesian_2d((FLOOR_MS..max).log_scale(), 0.0..100.0)
        .map_err(|e| anyhow!("{e}"))?;
    chart
        .configure_mesh()
        .x_desc("milliseconds (log scale)")
        .y_desc("percentile")
        .y_label_formatter(&|v| format!("{v:.0}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    for s in series {
        let mut sorted = s.samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let points: Vec<(f64, f64)> = (0..=1000)
            .map(|i| {
                let q = f64::from(i) / 1000.0;
                (percentile(&sorted, q).max(FLOOR_MS), q * 100.0)
            })
            .collect();
        let p50 = percentile(&sorted, 0.5);
        let p99 = percentile(&sorted, 0.99);
        let color = s.color;
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| anyhow!("{e}"))?
            .label(format!("{}: p50 {:.2} ms, p99 {:.2} ms", s.label, p50, p99))
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 18, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 14))
        .draw()
        .map_err(|e| anyhow!("{e}"))?;
    Ok(())
}
