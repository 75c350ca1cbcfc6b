//! Time of one batch: its matmul FLOPs over the device's matmul throughput, a fixed cost per
//! matmul call, the bytes the other ops write into new tensors (from the same simulation of the
//! forward pass as the memory estimate) at the device's element-wise rate, and tokenising the
//! batch's prompts at the rate measured on the input's first prompts. The CPU's three rates
//! come from short candle runs, cached in the state directory; a GPU's from its vendor peak
//! times a fixed efficiency and fixed launch/bandwidth figures (not yet checked on a real GPU).

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::device::{DeviceSpec, Speed};
use super::memory::{blocks_run, ForwardWork};
use super::workload::{AnalysisKind, Workload};

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

/// The time estimate of `w` on `device`, given its forward pass's work (simulated with the
/// memory estimate by [`super::memory::breakdown_and_work`]).
pub fn time_with(w: &Workload, device: &DeviceSpec, work: ForwardWork) -> TimeEstimate {
    let flops = batch_flops(w);
    let speed = &device.speed;
    let mut forward = work.matmuls as f64 * speed.seconds_per_matmul
        + work.bytes_written as f64 * speed.seconds_per_byte;
    if w.analysis == AnalysisKind::Saliency {
        // The backward pass runs each op about twice more.
        forward *= 3.0;
    }
    // The engine tokenises the batch's prompts on the host before each forward pass.
    let seconds = flops / speed.flops_per_second.max(1.0)
        + forward
        + w.batch as f64 * w.input.tokenize_seconds_per_prompt;
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
    /// The measured rates.
    pub speed: Speed,
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

const CALIBRATION_SCHEMA: u32 = 2;

/// Seconds per run of `f`: once to warm up, then `runs` times, timed.
fn timed(runs: u32, mut f: impl FnMut() -> candle_core::Result<()>) -> candle_core::Result<f64> {
    f()?;
    let start = Instant::now();
    for _ in 0..runs {
        f()?;
    }
    Ok(start.elapsed().as_secs_f64().max(1e-9) / f64::from(runs))
}

/// Runs the calibration (three short candle runs):
/// - throughput: a [256, 768] x [768, 3072] f32 matmul (a GPT-2 MLP on one batch);
/// - the fixed cost of a matmul call: a [1, 64] x [64, 64] matmul, whose arithmetic is nothing;
/// - the element-wise rate: the engine's other ops on a [512, 768] activation (bias add,
///   LayerNorm, GELU, the head-major transpose copy, softmax over [8, 12, 64, 64], residual
///   add), timed together over the bytes they write.
pub fn calibrate_cpu() -> Result<Calibration, CalibrationError> {
    use crate::engine::families::gelu::{gelu, GeluForm};
    use candle_core::{DType, Device, Tensor};
    let cpu = Device::Cpu;
    let (m, k, n) = (256usize, 768usize, 3072usize);
    let a = Tensor::ones((m, k), DType::F32, &cpu)?;
    let b = Tensor::ones((k, n), DType::F32, &cpu)?;
    let matmul = timed(5, || a.matmul(&b).map(drop))?;
    let flops_per_second = 2.0 * (m * k * n) as f64 / matmul;
    let x1 = Tensor::ones((1, 64), DType::F32, &cpu)?;
    let w1 = Tensor::ones((64, 64), DType::F32, &cpu)?;
    let seconds_per_matmul = timed(50, || x1.matmul(&w1).map(drop))?;
    let x = Tensor::randn(0f32, 1.0, (512, 768), &cpu)?;
    let bias = Tensor::randn(0f32, 1.0, 768, &cpu)?;
    let ones = Tensor::ones(768, DType::F32, &cpu)?;
    let heads = x.reshape((8, 64, 12, 64))?;
    let scores = x.reshape((8, 12, 64, 64))?;
    let mix = timed(5, || {
        let y = x.broadcast_add(&bias)?;
        let y = candle_nn::ops::layer_norm(&y, &ones, &bias, 1e-5)?;
        let y = gelu(&y, GeluForm::Tanh)?;
        let _ = heads.transpose(1, 2)?.contiguous()?;
        let _ = candle_nn::ops::softmax_last_dim(&scores)?;
        (&x + &y).map(drop)
    })?;
    let seconds_per_byte = mix / (6 * 512 * 768 * 4) as f64;
    Ok(Calibration {
        schema_version: CALIBRATION_SCHEMA,
        threads: candle_core::utils::get_num_threads(),
        speed: Speed {
            flops_per_second,
            seconds_per_matmul,
            seconds_per_byte,
        },
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
        && [
            cal.speed.flops_per_second,
            cal.speed.seconds_per_matmul,
            cal.speed.seconds_per_byte,
        ]
        .iter()
        .all(|v| v.is_finite() && *v > 0.0))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::memory::breakdown_and_work;
    use crate::estimate::workload::{HookPlan, InputShape};
    use crate::models::registry;

    fn gpt2(batch: u64, seq: u64) -> Workload {
        let arch = registry::builtin()
            .unwrap()
            .into_iter()
            .find(|e| e.id == "gpt2")
            .unwrap()
            .architecture;
        Workload {
            hooks: HookPlan::select(
                &arch,
                AnalysisKind::Activations,
                &["blocks.*.hook_resid_post".to_string()],
            )
            .unwrap(),
            arch,
            analysis: AnalysisKind::Activations,
            batch,
            seq,
            dtype: None,
            input: InputShape::assumed(seq),
            tokenizer_file_bytes: None,
        }
    }

    fn cpu(speed: Speed) -> DeviceSpec {
        DeviceSpec::cpu(u64::MAX / 4, u64::MAX / 4, speed)
    }

    #[test]
    fn each_term_adds_its_share() {
        let w = gpt2(8, 64);
        let flops_only = Speed {
            flops_per_second: 1e11,
            seconds_per_matmul: 0.0,
            seconds_per_byte: 0.0,
        };
        let time = |speed: Speed| {
            let device = cpu(speed);
            let (_, work) = breakdown_and_work(&w, &device);
            time_with(&w, &device, work).seconds_per_batch
        };
        let base = time(flops_only);
        assert!((base - batch_flops(&w) / 1e11).abs() < 1e-12);
        let with_calls = Speed {
            seconds_per_matmul: 1e-3,
            ..flops_only
        };
        let calls = time(with_calls) - base;
        assert!((calls - 12.0 * 6.0 * 1e-3).abs() < 1e-9, "{calls}");
        let with_bytes = Speed {
            seconds_per_byte: 1e-9,
            ..flops_only
        };
        let bytes = time(with_bytes) - base;
        let written = breakdown_and_work(&w, &cpu(flops_only)).1.bytes_written as f64;
        assert!((bytes - written * 1e-9).abs() < 1e-9, "{bytes}");
    }

    #[test]
    fn calibration_measures_three_positive_rates_and_is_cached_per_thread_count() {
        let cal = calibrate_cpu().unwrap();
        let s = cal.speed;
        assert!(s.flops_per_second > 1e8, "{s:?}");
        assert!(
            s.seconds_per_matmul > 0.0 && s.seconds_per_matmul < 0.1,
            "{s:?}"
        );
        assert!(
            s.seconds_per_byte > 0.0 && s.seconds_per_byte < 1e-6,
            "{s:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CALIBRATION_FILE);
        std::fs::write(&path, serde_json::to_string(&cal).unwrap()).unwrap();
        assert_eq!(cached_calibration(&path), Some(cal.clone()));
        let mut other = cal;
        other.threads += 1;
        std::fs::write(&path, serde_json::to_string(&other).unwrap()).unwrap();
        assert_eq!(cached_calibration(&path), None);
    }
}
