//! Time: floating-point operations of one batch over the device's throughput, plus tokenising
//! the batch's prompts at the rate measured on the input's first prompts. The CPU's
//! throughput comes from a short candle matmul run, cached in the state directory; a GPU's from
//! its vendor peak times a fixed efficiency (not yet checked on a real GPU).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::device::DeviceSpec;
use super::memory::blocks_run;
use super::workload::{AnalysisKind, Workload};

/// Fraction of the calibrated matmul throughput a whole forward pass reaches on the CPU
/// (norms, softmax, copies and the writer take the rest).
pub const CPU_FORWARD_EFFICIENCY: f64 = 0.6;

/// Floating-point operations of one batch.
pub fn batch_flops(w: &Workload) -> f64 {
    let arch = &w.arch;
    let tokens = (w.batch * w.seq) as f64;
    let blocks = blocks_run(w) as f64;
    let s = w.seq as f64;
    let matmuls = 2.0 * tokens * blocks * arch.block_parameters() as f64;
    // QK^T and attention-weighted V: 2 x 2 x S x a per token and block.
    let attention = 4.0 * tokens * s * arch.attention_width() as f64 * blocks;
    let logits = if w.analysis == AnalysisKind::Saliency {
        2.0 * tokens * (arch.vocab_size * arch.hidden_size) as f64
    } else {
        0.0
    };
    let forward = matmuls + attention + logits;
    if w.analysis == AnalysisKind::Saliency {
        // A backward pass costs about twice a forward pass.
        3.0 * forward
    } else {
        forward
    }
}

/// Seconds per batch and tokens per second on a device.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct TimeEstimate {
    /// Floating-point operations of one batch.
    pub flops_per_batch: f64,
    /// Seconds one batch takes.
    pub seconds_per_batch: f64,
    /// Padded tokens per second.
    pub tokens_per_second: f64,
}

/// The time estimate of `w` on `device`.
pub fn time(w: &Workload, device: &DeviceSpec) -> TimeEstimate {
    let flops = batch_flops(w);
    let rate = if device.is_gpu() {
        device.flops_per_second
    } else {
        device.flops_per_second * CPU_FORWARD_EFFICIENCY
    }
    .max(1.0);
    // The engine tokenises the batch's prompts on the host before each forward pass.
    let seconds = flops / rate + w.batch as f64 * w.input.tokenize_seconds_per_prompt;
    TimeEstimate {
        flops_per_batch: flops,
        seconds_per_batch: seconds,
        tokens_per_second: if seconds > 0.0 {
            (w.batch * w.seq) as f64 / seconds
        } else {
            0.0
        },
    }
}

/// A cached CPU calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// Version of this file's format.
    pub schema_version: u32,
    /// Threads candle used.
    pub threads: usize,
    /// Measured f32 matmul throughput.
    pub flops_per_second: f64,
    /// When it was measured (ms since the epoch).
    pub measured_at_ms: u64,
}

/// Why calibration failed.
#[derive(Debug, thiserror::Error)]
pub enum CalibrationError {
    /// The candle matmul failed.
    #[error("CPU calibration matmul failed: {0}")]
    Candle(#[from] candle_core::Error),
}

/// File name of the cache in the state directory.
pub const CALIBRATION_FILE: &str = "calibration.json";

const CALIBRATION_SCHEMA: u32 = 1;

/// Runs the calibration: a [256, 768] x [768, 3072] f32 matmul (a GPT-2 MLP on one batch),
/// once to warm up and then five times, timed.
pub fn calibrate_cpu() -> Result<Calibration, CalibrationError> {
    use candle_core::{Device, Tensor};
    let (m, k, n) = (256usize, 768usize, 3072usize);
    let a = Tensor::ones((m, k), candle_core::DType::F32, &Device::Cpu)?;
    let b = Tensor::ones((k, n), candle_core::DType::F32, &Device::Cpu)?;
    a.matmul(&b)?;
    let runs = 5;
    let start = Instant::now();
    for _ in 0..runs {
        a.matmul(&b)?;
    }
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    let flops = 2.0 * (m * k * n) as f64 * runs as f64;
    Ok(Calibration {
        schema_version: CALIBRATION_SCHEMA,
        threads: candle_core::utils::get_num_threads(),
        flops_per_second: flops / seconds,
        measured_at_ms: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    })
}

/// Reads a cached calibration when it is for the current thread count.
pub fn cached_calibration(path: &Path) -> Option<Calibration> {
    let text = std::fs::read_to_string(path).ok()?;
    let cal: Calibration = serde_json::from_str(&text).ok()?;
    (cal.schema_version == CALIBRATION_SCHEMA
        && cal.threads == candle_core::utils::get_num_threads()
        && cal.flops_per_second.is_finite()
        && cal.flops_per_second > 0.0)
        .then_some(cal)
}

/// The calibration file in the state directory, if there is one.
pub fn calibration_path() -> Option<PathBuf> {
    crate::paths::state_dir()
        .ok()
        .map(|d| d.join(CALIBRATION_FILE))
}

/// The cached calibration, or a fresh one (then cached; a failure to write it is ignored, the
/// next run measures again).
pub fn cpu_calibration() -> Result<Calibration, CalibrationError> {
    let path = calibration_path();
    if let Some(cal) = path.as_deref().and_then(cached_calibration) {
        return Ok(cal);
    }
    let cal = calibrate_cpu()?;
    if let (Some(path), Ok(text)) = (path, serde_json::to_string_pretty(&cal)) {
        let tmp = path.with_extension("json.tmp");
        if std::fs::write(&tmp, text).is_ok() {
            let _ = std::fs::rename(&tmp, &path);
        }
    }
    Ok(cal)
}
