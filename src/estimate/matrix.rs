//! The model x analysis compatibility matrix. Hook selection (glob matching) happens once in
//! [`PreparedMatrix::new`]; [`PreparedMatrix::evaluate`] is plain arithmetic and runs on every
//! dashboard tick with the free memory of that tick.

use super::device::{DeviceId, DeviceSpec};
use super::verdict::{self, DeviceVerdict, Verdict};
use super::workload::{AnalysisKind, Workload};
use super::{workload_for, DEFAULT_SEQ};
use crate::models::CatalogueEntry;

/// Batch used for the matrix cells.
pub const MATRIX_BATCH: u64 = 8;

/// One model row, ready to evaluate.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedRow {
    /// The catalogue entry.
    pub entry: CatalogueEntry,
    /// One workload per analysis in [`AnalysisKind::ALL`] order (`None`: no architecture).
    pub workloads: Vec<Option<Workload>>,
}

/// The matrix's rows with their workloads.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedMatrix {
    /// Rows: local models first, then the registry.
    pub rows: Vec<PreparedRow>,
    /// Prompts per batch in every cell.
    pub batch: u64,
    /// Sequence length in every cell (capped by each model's maximum).
    pub seq: u64,
}

/// One cell: every device's verdict and the best of them.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixCell {
    /// The analysis.
    pub analysis: AnalysisKind,
    /// The best verdict over devices.
    pub best: Verdict,
    /// The device with the best verdict.
    pub best_device: Option<DeviceId>,
    /// Estimated peak on that device.
    pub peak_bytes: Option<u64>,
    /// Per-device verdicts.
    pub devices: Vec<DeviceVerdict>,
}

/// The evaluated matrix: `cells[row][column]`.
#[derive(Debug, Clone, PartialEq)]
pub struct MatrixPlan {
    /// Cells per row, in [`AnalysisKind::ALL`] order.
    pub cells: Vec<Vec<MatrixCell>>,
}

impl PreparedMatrix {
    /// Prepares workloads for every entry (local first, as the catalogue orders them) at the
    /// default batch and sequence length.
    pub fn new(entries: &[CatalogueEntry]) -> Self {
        Self::with_shape(entries, MATRIX_BATCH, DEFAULT_SEQ)
    }

    /// Prepares workloads at a given batch and sequence length.
    pub fn with_shape(entries: &[CatalogueEntry], batch: u64, seq: u64) -> Self {
        let mut rows: Vec<PreparedRow> = entries
            .iter()
            .map(|entry| PreparedRow {
                entry: entry.clone(),
                workloads: AnalysisKind::ALL
                    .iter()
                    .map(|a| workload_for(entry, *a, batch, seq, None, &[]).ok())
                    .collect(),
            })
            .collect();
        rows.sort_by_key(|r| !r.entry.is_local());
        Self { rows, batch, seq }
    }

    /// Evaluates every cell against the devices' free memory now.
    pub fn evaluate(&self, devices: &[DeviceSpec]) -> MatrixPlan {
        MatrixPlan {
            cells: self
                .rows
                .iter()
                .map(|row| {
                    row.workloads
                        .iter()
                        .zip(AnalysisKind::ALL)
                        .map(|(w, analysis)| evaluate_cell(w.as_ref(), analysis, devices))
                        .collect()
                })
                .collect(),
        }
    }
}

/// Evaluates one cell.
pub fn evaluate_cell(
    workload: Option<&Workload>,
    analysis: AnalysisKind,
    devices: &[DeviceSpec],
) -> MatrixCell {
    let Some(w) = workload else {
        return MatrixCell {
            analysis,
            best: Verdict::NotSupported,
            best_device: None,
            peak_bytes: None,
            devices: Vec::new(),
        };
    };
    let verdicts = verdict::judge_all(w, devices);
    let (best, best_device, peak_bytes) = match verdict::best(&verdicts) {
        Some((_, v)) => (v.verdict, Some(v.device), Some(v.estimate.peak_bytes)),
        None => (Verdict::DoesNotFit, None, None),
    };
    MatrixCell {
        analysis,
        best,
        best_device,
        peak_bytes,
        devices: verdicts,
    }
}
