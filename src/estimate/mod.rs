//! The estimator: peak memory (as a breakdown) and time of a run of our engine on a device, the
//! verdict per device with the cheapest fallback, and the model x analysis matrix.
//!
//! Entry points: [`estimate_request`] for an engine request, [`estimate`] for a [`Workload`],
//! [`verdict::judge_all`] over devices, [`matrix::PreparedMatrix`] for the dashboard.

pub mod device;
pub mod matrix;
pub mod memory;
pub mod prompts;
pub mod time;
pub mod verdict;
pub mod workload;

use serde::Serialize;

pub use device::{DeviceId, DeviceSpec};
pub use memory::Breakdown;
pub use time::TimeEstimate;
pub use verdict::{DeviceVerdict, Fallback, Verdict};
pub use workload::{AnalysisKind, DType, HookPlan, InputShape, Workload};

use crate::config::ModelsConfig;
use crate::engine::request::ExtractRequest;
use crate::models::resolve::{self, ResolveError};
use crate::models::{CatalogueEntry, CatalogueSettings};

/// Sequence length assumed when neither `--max-len` nor the prompts say (and for the matrix).
pub const DEFAULT_SEQ: u64 = 512;

/// Estimated peak memory and time of one workload on one device.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Estimate {
    /// Estimated peak bytes on the device (the breakdown's total).
    pub peak_bytes: u64,
    /// Where the bytes go.
    pub breakdown: Breakdown,
    /// Compute dtype used on this device.
    pub dtype: DType,
    /// Blocks the forward pass runs.
    pub blocks_run: u64,
    /// Time per batch.
    pub time: TimeEstimate,
}

/// Estimates `w` on `device`.
pub fn estimate(w: &Workload, device: &DeviceSpec) -> Estimate {
    let (breakdown, work) = memory::breakdown_and_work(w, device);
    Estimate {
        peak_bytes: breakdown.total(),
        breakdown,
        dtype: memory::compute_dtype(w, device),
        blocks_run: memory::blocks_run(w),
        time: time::time_with(w, device, work),
    }
}

/// Why a request cannot be estimated.
#[derive(Debug, thiserror::Error)]
pub enum EstimateError {
    /// The model could not be found.
    #[error(transparent)]
    Model(#[from] ResolveError),
    /// The model's config could not be read.
    #[error("cannot estimate \"{model}\": {reason}")]
    NoConfig {
        /// The model.
        model: String,
        /// Why.
        reason: String,
    },
    /// A hook glob that is invalid or matches no hook (the engine's own error, with close
    /// matches).
    #[error(transparent)]
    Hooks(#[from] crate::engine::EngineError),
    /// An unknown dtype.
    #[error("unknown dtype \"{0}\"; use f32, f16 or bf16")]
    Dtype(String),
    /// Batch or length of zero.
    #[error("{what} must be at least 1")]
    Zero {
        /// `batch` or `max_len`.
        what: &'static str,
    },
}

/// The workload of a model entry (its architecture must be known).
pub fn workload_for(
    entry: &CatalogueEntry,
    analysis: AnalysisKind,
    batch: u64,
    seq: u64,
    dtype: Option<DType>,
    hooks: &[String],
) -> Result<Workload, EstimateError> {
    let arch = entry
        .architecture
        .clone()
        .ok_or_else(|| EstimateError::NoConfig {
            model: entry.id.clone(),
            reason: entry
                .note
                .clone()
                .unwrap_or_else(|| "no readable config.json".to_string()),
        })?;
    if batch == 0 {
        return Err(EstimateError::Zero { what: "batch" });
    }
    if seq == 0 {
        return Err(EstimateError::Zero { what: "max_len" });
    }
    let hooks = HookPlan::select(&arch, analysis, hooks)?;
    let seq = seq.min(arch.max_positions);
    Ok(Workload {
        seq,
        arch,
        analysis,
        batch,
        dtype,
        hooks,
        input: InputShape::assumed(seq),
        tokenizer_file_bytes: entry
            .local_path
            .as_deref()
            .and_then(|d| std::fs::metadata(d.join("tokenizer.json")).ok())
            .map(|m| m.len()),
    })
}

/// Parses an optional dtype string.
pub fn parse_dtype(text: Option<&str>) -> Result<Option<DType>, EstimateError> {
    text.map(|t| DType::parse(t).ok_or_else(|| EstimateError::Dtype(t.to_string())))
        .transpose()
}

/// The workload of an engine request. The sequence length is the longest prompt of the input
/// (tokenised with the model's tokenizer when it is on disk), capped by `max_len` and the
/// model's maximum.
pub fn workload_for_request(req: &ExtractRequest) -> Result<Workload, EstimateError> {
    let settings = CatalogueSettings::from_process(&ModelsConfig::default());
    let entry = resolve::describe_model(&req.model, None, &settings)?;
    let cap = req.max_len.map(|n| n as u64);
    let facts = prompts::input_facts(&req.input, entry.local_path.as_deref(), cap);
    let seq = facts
        .as_ref()
        .map(|f| f.longest_tokens)
        .or(cap)
        .unwrap_or(DEFAULT_SEQ);
    let mut w = workload_for(
        &entry,
        req.analysis.into(),
        req.batch as u64,
        seq,
        parse_dtype(req.dtype.as_deref())?,
        &req.hooks,
    )?;
    if let Some(facts) = facts {
        w.input = facts.shape;
    }
    Ok(w)
}

/// Estimates an engine request on a device (what the job queue's placement calls).
pub fn estimate_request(
    req: &ExtractRequest,
    device: &DeviceSpec,
) -> Result<Estimate, EstimateError> {
    Ok(estimate(&workload_for_request(req)?, device))
}

/// Verdicts of an engine request on every device.
pub fn judge_request(
    req: &ExtractRequest,
    devices: &[DeviceSpec],
) -> Result<Vec<DeviceVerdict>, EstimateError> {
    Ok(verdict::judge_all(&workload_for_request(req)?, devices))
}
