//! Percentiles over latency samples (nearest rank, no interpolation).

use serde::{Deserialize, Serialize};

/// The spread of a set of samples, in their unit (milliseconds here).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// How many samples.
    pub count: usize,
    /// Smallest sample.
    pub min: f64,
    /// Median (nearest rank).
    pub p50: f64,
    /// 99th percentile (nearest rank).
    pub p99: f64,
    /// Largest sample.
    pub max: f64,
}

impl Summary {
    /// The summary of `samples`, or `None` when there are none.
    pub fn of(samples: &[f64]) -> Option<Self> {
        if samples.is_empty() {
            return None;
        }
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        Some(Self {
            count: sorted.len(),
            min: sorted[0],
            p50: percentile(&sorted, 0.50),
            p99: percentile(&sorted, 0.99),
            max: sorted[sorted.len() - 1],
        })
    }
}

/// The nearest-rank `q`-quantile of ascending, non-empty `sorted`.
pub fn percentile(sorted: &[f64], q: f64) -> f64 {
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let hundred: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        type Spread = (f64, f64, f64, f64);
        let cases: &[(&[f64], Option<Spread>)] = &[
            (&[], None),
            (&[7.0], Some((7.0, 7.0, 7.0, 7.0))),
            (&[3.0, 1.0, 2.0, 4.0], Some((1.0, 2.0, 4.0, 4.0))),
            (&hundred, Some((1.0, 50.0, 99.0, 100.0))),
            (&[-0.5, 2.0], Some((-0.5, -0.5, 2.0, 2.0))),
        ];
        for (samples, want) in cases {
            let got = Summary::of(samples).map(|s| (s.min, s.p50, s.p99, s.max));
            assert_eq!(got, *want, "{samples:?}");
        }
    }
}
