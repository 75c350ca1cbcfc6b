//! Verdicts per device: fits, tight (under 10% headroom), fits with a named fallback, does not
//! fit, or not supported by the engine; and the search for the cheapest fallback.

use serde::Serialize;

use super::device::{DeviceId, DeviceSpec};
use super::workload::{DType, Workload};
use super::{estimate, Estimate};

/// Below this fraction of free memory left over, a fit is "tight".
pub const TIGHT_HEADROOM: f64 = 0.10;

/// Smallest sequence length a fallback suggests.
const MIN_FALLBACK_SEQ: u64 = 16;

/// The outcome for one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Fits with at least 10% of the free memory to spare.
    Fits,
    /// Fits with under 10% to spare.
    Tight,
    /// Does not fit as asked; a named change makes it fit.
    FitsWithFallback,
    /// Nothing we know of makes it fit.
    DoesNotFit,
    /// The engine does not implement this family or analysis yet.
    NotSupported,
}

impl Verdict {
    /// The name used in text and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Fits => "fits",
            Self::Tight => "tight",
            Self::FitsWithFallback => "fits_with_fallback",
            Self::DoesNotFit => "does_not_fit",
            Self::NotSupported => "not_supported",
        }
    }

    /// Fits as asked (fits or tight).
    pub fn fits_as_asked(self) -> bool {
        matches!(self, Self::Fits | Self::Tight)
    }
}

/// A change to the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Change {
    /// A 16-bit dtype on the GPU.
    Dtype {
        /// The dtype.
        dtype: DType,
    },
    /// Fewer prompts per forward pass.
    Batch {
        /// The largest batch that fits.
        batch: u64,
    },
    /// Shorter prompts.
    Seq {
        /// The longest length that fits.
        max_len: u64,
    },
    /// Hooks in fewer blocks, spread over the same depth.
    FewerHooks {
        /// Keep every n-th block that has hooks.
        every: usize,
        /// Blocks kept.
        blocks: usize,
    },
    /// Hooks only up to a block, so the forward pass stops there.
    StopAfterBlock {
        /// The last block.
        block: u64,
    },
    /// The CPU instead of this GPU.
    Cpu,
}

impl Change {
    /// What to do, as a user would type or read it.
    pub fn describe(&self) -> String {
        match self {
            Self::Dtype { dtype } => format!("use --dtype {}", dtype.name()),
            Self::Batch { batch } => format!("use --batch {batch}"),
            Self::Seq { max_len } => format!("use --max-len {max_len}"),
            Self::FewerHooks { every, blocks } => {
                format!("hook every {every}th hooked block and the last ({blocks} blocks)")
            }
            Self::StopAfterBlock { block } => format!(
                "select hooks in blocks 0-{block} only (the forward pass stops after block {block})"
            ),
            Self::Cpu => "run on the CPU (--device cpu)".to_string(),
        }
    }

    /// Applies the change to a workload (`Cpu` changes the device, not the workload).
    pub fn apply(&self, w: &Workload) -> Workload {
        let mut changed = w.clone();
        match *self {
            Self::Dtype { dtype } => changed.dtype = Some(dtype),
            Self::Batch { batch } => changed.batch = batch,
            Self::Seq { max_len } => changed.seq = max_len,
            Self::FewerHooks { every, .. } => changed.hooks = w.hooks.thinned(every),
            Self::StopAfterBlock { block } => changed.hooks = w.hooks.truncated(block),
            Self::Cpu => {}
        }
        changed
    }
}

/// The change that makes a request fit, with the estimate after it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fallback {
    /// The change.
    pub change: Change,
    /// It, in words.
    pub description: String,
    /// Peak after the change (on the CPU for [`Change::Cpu`]).
    pub estimated_peak_bytes: u64,
}

/// The verdict for one device, with the estimate behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceVerdict {
    /// The device.
    pub device: DeviceId,
    /// Its name.
    pub name: String,
    /// The verdict.
    pub verdict: Verdict,
    /// The estimate as asked.
    pub estimate: Estimate,
    /// Free memory now.
    pub free_bytes: u64,
    /// The cheapest change that fits, when it does not fit as asked.
    pub fallback: Option<Fallback>,
    /// Why it is not supported.
    pub reason: Option<String>,
}

fn fits(e: &Estimate, device: &DeviceSpec) -> bool {
    e.peak_bytes <= device.free_bytes
}

/// Why the engine cannot run `w`, if it cannot.
pub fn unsupported_reason(w: &Workload) -> Option<String> {
    if !w.arch.family.engine_supported() {
        return Some(format!(
            "the engine does not implement the {} family yet",
            w.arch.family
        ));
    }
    if !w.analysis.engine_supported() {
        return Some(format!(
            "the engine does not implement {} analysis yet",
            w.analysis.name()
        ));
    }
    None
}

/// The largest value in the halving sequence from `start / 2` down to `min` for which
/// `try_value` fits.
fn halving(start: u64, min: u64, mut fits: impl FnMut(u64) -> bool) -> Option<u64> {
    let mut v = start / 2;
    while v >= min && v > 0 {
        if fits(v) {
            return Some(v);
        }
        v /= 2;
    }
    None
}

/// Searches the changes in order of cost: 16-bit dtype on a GPU, smaller batch, shorter
/// sequence, hooks in fewer blocks, stopping after an earlier block, the CPU.
pub fn cheapest_fallback(
    w: &Workload,
    device: &DeviceSpec,
    cpu: Option<&DeviceSpec>,
) -> Option<Fallback> {
    let found = |change: Change, peak: u64| Fallback {
        change,
        description: change.describe(),
        estimated_peak_bytes: peak,
    };
    let try_change = |change: Change| {
        let e = estimate(&change.apply(w), device);
        fits(&e, device).then(|| found(change, e.peak_bytes))
    };
    if device.is_gpu() && device.effective_dtype(w.dtype) == DType::F32 {
        let dtype = if device.bf16 { DType::Bf16 } else { DType::F16 };
        if let Some(f) = try_change(Change::Dtype { dtype }) {
            return Some(f);
        }
    }
    let fits_with = |change: Change| fits(&estimate(&change.apply(w), device), device);
    if let Some(batch) = halving(w.batch, 1, |b| fits_with(Change::Batch { batch: b })) {
        return try_change(Change::Batch { batch });
    }
    if let Some(max_len) = halving(w.seq, MIN_FALLBACK_SEQ, |s| {
        fits_with(Change::Seq { max_len: s })
    }) {
        return try_change(Change::Seq { max_len });
    }
    let hooked = w.hooks.blocks_with_hooks().len();
    let mut every = 2;
    while every < hooked {
        let blocks = w.hooks.thinned(every).blocks_with_hooks().len();
        let change = Change::FewerHooks { every, blocks };
        if let Some(f) = try_change(change) {
            return Some(f);
        }
        every *= 2;
    }
    if let Some(last) = w.hooks.last_block() {
        if let Some(f) = (0..last)
            .rev()
            .find_map(|block| try_change(Change::StopAfterBlock { block }))
        {
            return Some(f);
        }
    }
    if let Some(cpu) = cpu.filter(|_| device.is_gpu()) {
        let e = estimate(w, cpu);
        if fits(&e, cpu) {
            return Some(found(Change::Cpu, e.peak_bytes));
        }
    }
    None
}

/// The verdict of `w` on `device`; `cpu` is offered as the last fallback for a GPU.
pub fn judge(w: &Workload, device: &DeviceSpec, cpu: Option<&DeviceSpec>) -> DeviceVerdict {
    let estimate = estimate(w, device);
    let reason = unsupported_reason(w);
    let (verdict, fallback) = if reason.is_some() {
        (Verdict::NotSupported, None)
    } else if fits(&estimate, device) {
        let headroom =
            (device.free_bytes - estimate.peak_bytes) as f64 / device.free_bytes.max(1) as f64;
        if headroom < TIGHT_HEADROOM {
            (Verdict::Tight, None)
        } else {
            (Verdict::Fits, None)
        }
    } else {
        match cheapest_fallback(w, device, cpu) {
            Some(f) => (Verdict::FitsWithFallback, Some(f)),
            None => (Verdict::DoesNotFit, None),
        }
    };
    DeviceVerdict {
        device: device.id,
        name: device.name.clone(),
        verdict,
        estimate,
        free_bytes: device.free_bytes,
        fallback,
        reason,
    }
}

/// Verdicts on every device (the CPU among them is the GPUs' last fallback).
pub fn judge_all(w: &Workload, devices: &[DeviceSpec]) -> Vec<DeviceVerdict> {
    let cpu = devices.iter().find(|d| !d.is_gpu());
    devices.iter().map(|d| judge(w, d, cpu)).collect()
}

/// The best verdict among devices (fits before tight before fallback ...), with its index.
pub fn best(verdicts: &[DeviceVerdict]) -> Option<(usize, &DeviceVerdict)> {
    verdicts
        .iter()
        .enumerate()
        .min_by_key(|(_, v)| (v.verdict, v.estimate.peak_bytes))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::{workload_for, AnalysisKind};
    use crate::models::registry;
    use crate::models::CatalogueEntry;

    const GB: u64 = 1_000_000_000;

    fn entry(id: &str) -> CatalogueEntry {
        let r = registry::builtin().unwrap();
        CatalogueEntry::from_registry(r.iter().find(|e| e.id == id).unwrap())
    }

    fn gpu(total: u64, used: u64) -> DeviceSpec {
        DeviceSpec {
            id: DeviceId::Cuda(0),
            name: "Synthetic GPU".to_string(),
            total_bytes: total,
            free_bytes: total - used,
            bf16: true,
            speed: crate::estimate::device::gpu_speed("Synthetic GPU"),
        }
    }

    fn cpu(free: u64) -> DeviceSpec {
        DeviceSpec::cpu(free, free, crate::estimate::device::Speed::NOT_MEASURED)
    }

    fn llama7b(dtype: DType) -> Workload {
        workload_for(
            &entry("meta-llama/Llama-2-7b-hf"),
            AnalysisKind::Activations,
            8,
            512,
            Some(dtype),
            &[],
        )
        .unwrap()
    }

    #[test]
    fn llama_7b_f16_fits_on_24gb_gpu_with_2gb_used_elsewhere() {
        let w = llama7b(DType::F16);
        let v = judge(&w, &gpu(24 * GB, 2 * GB), None);
        assert!(v.verdict.fits_as_asked(), "{v:?}");
        // Weights of embeddings, all 32 blocks and the final norm (no output head) in f16, and
        // candle's bookkeeping per tensor (6 per block, embeddings, final norm).
        let arch = &w.arch;
        let params = arch.embedding_parameters() + 32 * arch.block_parameters() + arch.hidden_size;
        assert_eq!(
            v.estimate.breakdown.weights,
            params * 2 + (32 * 6 + 2) * crate::estimate::memory::TENSOR_OVERHEAD_BYTES
        );
        assert!(v.estimate.peak_bytes > 13 * GB && v.estimate.peak_bytes < 22 * GB);
        assert!(v.fallback.is_none());
    }

    #[test]
    fn llama_7b_f16_on_8gb_gpu_falls_back_to_the_cpu() {
        // The engine loads every block even when the forward pass stops early, so no hook
        // selection makes 13 GB of weights fit in 8 GB; a large enough CPU does.
        let w = llama7b(DType::F16);
        let v = judge(&w, &gpu(8 * GB, 0), Some(&cpu(64 * GB)));
        assert_eq!(v.verdict, Verdict::FitsWithFallback, "{v:?}");
        let f = v.fallback.unwrap();
        assert_eq!(f.change, Change::Cpu, "{f:?}");
        let v = judge(&w, &gpu(8 * GB, 0), Some(&cpu(16 * GB)));
        assert_eq!(v.verdict, Verdict::DoesNotFit, "{v:?}");
    }

    #[test]
    fn stopping_early_saves_the_captures_of_later_blocks() {
        let w = workload_for(
            &entry("gpt2"),
            AnalysisKind::Attention,
            8,
            1024,
            Some(DType::F16),
            &["blocks.*.attn.hook_pattern".to_string()],
        )
        .unwrap();
        let full = estimate(&w, &gpu(24 * GB, 0));
        let cut = estimate(
            &Change::StopAfterBlock { block: 3 }.apply(&w),
            &gpu(24 * GB, 0),
        );
        assert_eq!(cut.breakdown.weights, full.breakdown.weights);
        assert!(cut.peak_bytes < full.peak_bytes, "{cut:?} vs {full:?}");
        assert_eq!(cut.blocks_run, 4);
    }

    #[test]
    fn f32_on_a_gpu_falls_back_to_bf16_first() {
        let w = llama7b(DType::F32);
        let v = judge(&w, &gpu(24 * GB, 2 * GB), None);
        assert_eq!(v.verdict, Verdict::FitsWithFallback);
        assert_eq!(
            v.fallback.unwrap().change,
            Change::Dtype { dtype: DType::Bf16 }
        );
    }

    #[test]
    fn big_batch_of_gpt2_falls_back_to_a_smaller_batch() {
        let w = workload_for(
            &entry("gpt2"),
            AnalysisKind::Activations,
            64,
            1024,
            Some(DType::Bf16),
            &["blocks.*.mlp.hook_post".to_string()],
        )
        .unwrap();
        let device = gpu(3 * GB, 0);
        let v = judge(&w, &device, None);
        assert_eq!(v.verdict, Verdict::FitsWithFallback, "{v:?}");
        let Change::Batch { batch } = v.fallback.unwrap().change else {
            panic!("expected a batch fallback");
        };
        assert!((1..64).contains(&batch));
        assert!(
            estimate(&Change::Batch { batch: batch * 2 }.apply(&w), &device).peak_bytes > 3 * GB
        );
    }

    #[test]
    fn a_gpu_too_small_for_anything_falls_back_to_the_cpu_or_does_not_fit() {
        let w = llama7b(DType::F16);
        let tiny = gpu(GB / 2, 0);
        let v = judge(&w, &tiny, Some(&cpu(64 * GB)));
        assert_eq!(v.fallback.map(|f| f.change), Some(Change::Cpu));
        let v = judge(&w, &tiny, Some(&cpu(GB)));
        assert_eq!(v.verdict, Verdict::DoesNotFit);
    }

    #[test]
    fn under_ten_percent_headroom_is_tight() {
        let w = llama7b(DType::F16);
        let peak = estimate(&w, &gpu(80 * GB, 0)).peak_bytes;
        let snug = gpu(peak + peak / 20, 0);
        assert_eq!(judge(&w, &snug, None).verdict, Verdict::Tight);
        let roomy = gpu(peak * 2, 0);
        assert_eq!(judge(&w, &roomy, None).verdict, Verdict::Fits);
    }

    #[test]
    fn unimplemented_family_and_analysis_are_not_supported() {
        let t5 = workload_for(
            &entry("t5-small"),
            AnalysisKind::Activations,
            1,
            64,
            None,
            &[],
        )
        .unwrap();
        let v = judge(&t5, &cpu(64 * GB), None);
        assert_eq!(v.verdict, Verdict::NotSupported);
        assert!(v.reason.unwrap().contains("t5"));
        let saliency =
            workload_for(&entry("gpt2"), AnalysisKind::Saliency, 1, 64, None, &[]).unwrap();
        let v = judge(&saliency, &cpu(64 * GB), None);
        assert_eq!(v.verdict, Verdict::NotSupported);
        // The estimate is still there, with the backward pass and logits in it.
        assert!(v.estimate.breakdown.gradients > 0 && v.estimate.breakdown.logits > 0);
    }
}
