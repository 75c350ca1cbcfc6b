//! Layer statistics, streamed per hook: mean, std, min, max, mean L2 norm per token (per query
//! row for attention hooks) and the fraction of values near zero. Accumulated in f64 and kept
//! in `stats.json` together with the raw sums, so an interrupted run resumes exactly.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Values with `|x| <` this count as near zero.
pub const NEAR_ZERO: f32 = 1e-3;

/// Running sums for one hook.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Accumulator {
    /// Finite values seen.
    pub count: u64,
    /// Sum of values.
    pub sum: f64,
    /// Sum of squares.
    pub sum_sq: f64,
    /// Smallest value.
    pub min: Option<f32>,
    /// Largest value.
    pub max: Option<f32>,
    /// Sum of per-row L2 norms.
    pub norm_sum: f64,
    /// Rows seen.
    pub rows: u64,
    /// Values with `|x| <` [`NEAR_ZERO`].
    pub near_zero: u64,
}

impl Accumulator {
    /// Adds rows of `width` values (non-finite values, such as masked attention scores, are
    /// skipped).
    pub fn add_rows(&mut self, values: &[f32], width: usize) {
        for row in values.chunks(width.max(1)) {
            let mut sq = 0f64;
            for &x in row {
                if !x.is_finite() {
                    continue;
                }
                let xd = f64::from(x);
                self.count += 1;
                self.sum += xd;
                self.sum_sq += xd * xd;
                sq += xd * xd;
                self.min = Some(self.min.map_or(x, |m| m.min(x)));
                self.max = Some(self.max.map_or(x, |m| m.max(x)));
                if x.abs() < NEAR_ZERO {
                    self.near_zero += 1;
                }
            }
            self.norm_sum += sq.sqrt();
            self.rows += 1;
        }
    }

    /// The derived statistics.
    pub fn summary(&self) -> Summary {
        let n = self.count.max(1) as f64;
        let mean = self.sum / n;
        let var = (self.sum_sq / n - mean * mean).max(0.0);
        Summary {
            mean,
            std: var.sqrt(),
            min: self.min,
            max: self.max,
            mean_l2_norm: self.norm_sum / self.rows.max(1) as f64,
            frac_near_zero: self.near_zero as f64 / n,
            count: self.count,
        }
    }
}

/// What the dashboard shows for one hook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Mean value.
    pub mean: f64,
    /// Standard deviation (population).
    pub std: f64,
    /// Smallest value.
    pub min: Option<f32>,
    /// Largest value.
    pub max: Option<f32>,
    /// Mean L2 norm of a token's vector (a query row for attention hooks).
    pub mean_l2_norm: f64,
    /// Fraction of values with `|x| <` `near_zero_threshold`.
    pub frac_near_zero: f64,
    /// Values counted.
    pub count: u64,
}

/// `OUT/stats.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatsFile {
    /// Output schema version.
    pub schema_version: u32,
    /// Whether every prompt is in.
    pub complete: bool,
    /// Prompts included.
    pub prompts_done: usize,
    /// Tokens included.
    pub tokens: u64,
    /// The near-zero threshold.
    pub near_zero_threshold: f32,
    /// Per hook: the summary.
    pub hooks: BTreeMap<String, Summary>,
    /// Per hook: the raw sums (what a resumed run continues from).
    pub accumulators: BTreeMap<String, Accumulator>,
}

impl StatsFile {
    /// Builds the file from accumulators.
    pub fn new(
        accumulators: BTreeMap<String, Accumulator>,
        prompts_done: usize,
        tokens: u64,
        complete: bool,
    ) -> Self {
        Self {
            schema_version: super::output::SCHEMA_VERSION,
            complete,
            prompts_done,
            tokens,
            near_zero_threshold: NEAR_ZERO,
            hooks: accumulators
                .iter()
                .map(|(k, a)| (k.clone(), a.summary()))
                .collect(),
            accumulators,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_values() {
        let mut a = Accumulator::default();
        a.add_rows(&[3.0, 4.0, 0.0, 0.0, f32::NEG_INFINITY, 0.0], 3);
        let s = a.summary();
        assert_eq!(s.count, 5);
        assert!((s.mean - 7.0 / 5.0).abs() < 1e-12);
        assert_eq!(s.min, Some(0.0));
        assert_eq!(s.max, Some(4.0));
        assert!((s.mean_l2_norm - 2.5).abs() < 1e-12);
        assert!((s.frac_near_zero - 3.0 / 5.0).abs() < 1e-12);
        let var: f64 = [3.0f64, 4.0, 0.0, 0.0, 0.0]
            .iter()
            .map(|x| (x - 1.4).powi(2))
            .sum::<f64>()
            / 5.0;
        assert!((s.std - var.sqrt()).abs() < 1e-12);
    }
}
