//! Peak memory of one run of OUR engine on one device, as a breakdown.
//!
//! The model of the engine (src/engine): weights are loaded into the compute dtype (f32 on the
//! CPU, a copy out of the memory-mapped file); only the blocks up to the last one a selected hook
//! needs are run; one batch of padded prompts goes through at a time; hooks are materialised
//! only when selected; captures of a batch are handed to the shard writer and dropped.
//!
//! Notation: B batch, S padded sequence length, d width, a = heads x head width, kv = key/value
//! width, m MLP width, H heads, V vocabulary, e bytes per element.

use serde::Serialize;

use super::device::DeviceSpec;
use super::workload::{AnalysisKind, DType, Workload};
use crate::models::Family;

const MIB: u64 = 1024 * 1024;

/// CUDA context, module images and allocator slack of a process on a GPU.
pub const GPU_CONTEXT_BYTES: u64 = 500 * MIB;
/// cuBLAS workspace on a GPU.
pub const GPU_WORKSPACE_BYTES: u64 = 64 * MIB;
/// Runtime overhead of the process on the CPU (code, threads, allocator) besides the tokenizer.
pub const CPU_CONTEXT_BYTES: u64 = 16 * MIB;
/// Tokenizer in memory, per vocabulary entry (token strings, two hash maps, merges).
pub const TOKENIZER_BYTES_PER_TOKEN: u64 = 300;
/// Fixed heap of the shard writer (serialisation buffers, offsets, manifest), measured with the
/// accuracy benchmark (`cargo bench --bench estimate_accuracy`).
pub const SHARD_WRITER_BYTES: u64 = MIB;
/// Concept directions held by concept analysis.
pub const CONCEPT_BANK: u64 = 64;

/// Where the peak goes. Every field is in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Breakdown {
    /// Weights of the embeddings and the blocks that run (and the head when logits are needed).
    pub weights: u64,
    /// Selected hooks of one batch, held until the writer has them (or, for streamed analyses,
    /// one block's worth plus the running reductions).
    pub captured_activations: u64,
    /// Largest set of temporaries alive inside one block (residual, projections, MLP hidden).
    pub transient_forward: u64,
    /// Attention scores and probabilities of one block ([B, H, S, S], twice).
    pub attention_patterns: u64,
    /// Tensors kept for the backward pass and their gradients (saliency only).
    pub gradients: u64,
    /// Logits and their softmax (saliency only).
    pub logits: u64,
    /// Device context and workspace (GPU: CUDA context and cuBLAS; CPU: runtime and tokenizer).
    pub context: u64,
}

impl Breakdown {
    /// The sum: the estimated peak.
    pub fn total(&self) -> u64 {
        self.weights
            + self.captured_activations
            + self.transient_forward
            + self.attention_patterns
            + self.gradients
            + self.logits
            + self.context
    }

    /// `(label, bytes)` pairs in display order.
    pub fn items(&self) -> [(&'static str, u64); 7] {
        [
            ("weights", self.weights),
            ("captured activations", self.captured_activations),
            ("transient forward peak", self.transient_forward),
            ("attention patterns", self.attention_patterns),
            ("gradients", self.gradients),
            ("logits", self.logits),
            ("device context + workspace", self.context),
        ]
    }
}

/// The blocks that run: through the last needed one, or all of them when logits are needed.
pub fn blocks_run(w: &Workload) -> u64 {
    if needs_logits(w.analysis) || w.hooks.needs_final_norm {
        return w.arch.num_layers;
    }
    w.hooks.last_block.map_or(0, |b| b + 1)
}

fn needs_logits(analysis: AnalysisKind) -> bool {
    analysis == AnalysisKind::Saliency
}

/// Elements per token alive in the attention half of a block (without the [S, S] scores).
fn attention_phase(w: &Workload) -> u64 {
    let arch = &w.arch;
    let (d, a) = (arch.hidden_size, arch.attention_width());
    let kv = arch.num_kv_heads * arch.head_dim;
    // Grouped-query attention repeats k and v up to the query heads before the matmul.
    let repeated = if kv < a { 2 * a } else { 0 };
    // Residual, normed input, q/k/v, their head-major copies, z, its merged copy, output.
    2 * d + (a + 2 * kv) * 2 + repeated + 2 * a + d
}

/// Elements per token alive in the MLP half of a block.
fn mlp_phase(w: &Workload) -> u64 {
    let arch = &w.arch;
    let hidden = if arch.gated_mlp { 3 } else { 2 };
    2 * arch.hidden_size + hidden * arch.intermediate_size + arch.hidden_size
}

/// Estimates the peak of `w` on `device`.
pub fn breakdown(w: &Workload, device: &DeviceSpec) -> Breakdown {
    let dtype = device.effective_dtype(w.dtype);
    let e = dtype.bytes();
    let arch = &w.arch;
    let (b, s) = (w.batch, w.seq);
    let tokens = b * s;
    let blocks = blocks_run(w);
    let logits_needed = needs_logits(w.analysis);

    let mut params = arch.embedding_parameters() + blocks * arch.block_parameters();
    if logits_needed && !arch.tied_embeddings {
        params += arch.vocab_size * arch.hidden_size;
    }
    if matches!(arch.family, Family::T5) {
        // No partial T5 forward: the whole encoder-decoder is loaded.
        params = arch.parameter_count();
    }
    let weights = params * e;

    // Captures are per token (or [H, S, S] per prompt) in the compute dtype.
    let per_token: u64 = w.hooks.per_token.iter().sum();
    let pattern_heads: u64 = w.hooks.pattern_heads.iter().sum();
    let all_captures = tokens * per_token * e + b * pattern_heads * s * s * e;
    let captured_activations = match w.analysis {
        // Held for the whole batch, then copied once into the unpadded shard layout.
        AnalysisKind::Activations => 2 * all_captures + SHARD_WRITER_BYTES,
        // Per-prompt [H, len, len] slices are cut out of the padded batch tensor as well.
        AnalysisKind::Attention => 5 * all_captures / 2 + SHARD_WRITER_BYTES,
        // Streamed: one block's hooks at a time, reduced at once.
        AnalysisKind::Stats | AnalysisKind::Concepts => {
            let worst_block = w
                .hooks
                .per_token
                .iter()
                .zip(&w.hooks.pattern_heads)
                .map(|(p, h)| tokens * p * e + b * h * s * s * e)
                .max()
                .unwrap_or(0);
            let bank = if w.analysis == AnalysisKind::Concepts {
                CONCEPT_BANK * arch.hidden_size * 4 + tokens * CONCEPT_BANK * 4
            } else {
                0
            };
            worst_block + bank
        }
        AnalysisKind::Saliency => all_captures,
    };

    let phase = attention_phase(w).max(mlp_phase(w));
    let transient_forward = if blocks == 0 {
        tokens * arch.hidden_size * e * 2
    } else {
        tokens * phase * e
    };
    let attention_patterns = if blocks == 0 {
        0
    } else {
        2 * b * arch.num_heads * s * s * e
    };
    let (logits, gradients) = if logits_needed {
        let logits = 2 * tokens * arch.vocab_size * e;
        // Candle's autograd keeps every intermediate of every block, and the backward pass
        // holds a gradient for each.
        let saved =
            blocks * (tokens * (attention_phase(w) + mlp_phase(w)) * e + attention_patterns);
        (logits, 2 * saved + tokens * arch.hidden_size * e)
    } else {
        (0, 0)
    };
    let context = if device.is_gpu() {
        GPU_CONTEXT_BYTES + GPU_WORKSPACE_BYTES
    } else {
        CPU_CONTEXT_BYTES + arch.vocab_size * TOKENIZER_BYTES_PER_TOKEN
    };
    Breakdown {
        weights,
        captured_activations,
        transient_forward,
        attention_patterns,
        gradients,
        logits,
        context,
    }
}

/// The dtype a breakdown was computed in.
pub fn compute_dtype(w: &Workload, device: &DeviceSpec) -> DType {
    device.effective_dtype(w.dtype)
}
