//! Peak memory of one run of OUR engine on one device, as a breakdown.
//!
//! The estimate follows what the engine (src/engine) allocates, in the order it does:
//!
//! 1. Every weight of the model is loaded in the compute dtype (all blocks, also when the
//!    forward pass stops early; no output head: no logits are computed). Fused q/k/v and
//!    gate/up matrices made at load time replace their parts (while the last block loads, the
//!    parts and two copies of the fused matrix are alive).
//! 2. The tokenizer is parsed from tokenizer.json and stays loaded; tokenising a prompt costs a
//!    transient proportional to its bytes.
//! 3. A shard (a statistics chunk) at a time: all its prompts are read and tokenised, its
//!    buffers made (the per-token hook bytes at their final size), and its batches run: the
//!    padded id tensor, then the forward pass, simulated tensor by tensor ([`forward_peak`]):
//!    the embeddings and the current residual stay alive, each block's locals live until the
//!    block ends, attention holds the scores, the masked scores and the pattern `[B, H, S, S]`
//!    at once, and a selected hook keeps its tensor (or the larger tensor it is a view of)
//!    alive until the batch's values are copied out.
//! 4. Activations and attention runs copy the hooks, as f32 bytes, into the shard (per-prompt
//!    tensors one prompt at a time), which is written through a 1 MiB buffered writer;
//!    statistics runs fold them into running sums at once.
//!
//! On the CPU all of it counts; on a GPU only the weights, the forward pass and the captured
//! tensors are on the device (prompts, tokenizer and shard buffers are host memory).
//!
//! Notation: B batch, S padded sequence length, T = B x S tokens, d width, a = heads x head
//! width, kv = key/value width, m MLP width, H heads, e bytes per element.

use std::sync::OnceLock;

use serde::Serialize;

use super::device::DeviceSpec;
use super::workload::{engine_family, AnalysisKind, DType, Workload};
use crate::engine::families::Family as EngineFamily;
use crate::engine::hooks::{HookLayout, HookSpec};
use crate::engine::run::{prompts_per_shard, EngineOptions};
use crate::models::Family;

const MIB: u64 = 1024 * 1024;

/// CUDA context, module images and allocator slack of a process on a GPU.
pub const GPU_CONTEXT_BYTES: u64 = 500 * MIB;
/// cuBLAS workspace on a GPU.
pub const GPU_WORKSPACE_BYTES: u64 = 64 * MIB;
/// Runtime overhead of the process on the CPU that is not heap (code, thread stacks).
pub const CPU_RUNTIME_BYTES: u64 = 16 * MIB;
/// Heap per loaded weight tensor besides its data (candle's `Arc<Tensor_>`, storage lock,
/// shape and stride vectors).
pub const TENSOR_OVERHEAD_BYTES: u64 = 256;
/// The tokenizer kept in memory, per byte of tokenizer.json (vocabulary maps in both
/// directions, merges, added tokens, normaliser and pre-tokeniser). Measured on the test
/// fixtures' WordPiece and byte-level BPE tokenizers: 3.1 to 3.5.
pub const TOKENIZER_RETAINED_PER_FILE_BYTE: f64 = 3.3;
/// Peak while the tokenizer is parsed, per byte of tokenizer.json: the file's bytes, serde's
/// buffered copy of the model section (every token string allocated once more) and the maps
/// being built. Measured on the test fixtures: 12 to 13.
pub const TOKENIZER_LOAD_PER_FILE_BYTE: u64 = 13;
/// tokenizer.json bytes per vocabulary entry when the file is not on disk (token string,
/// quoting, id, and one merge rule per entry for BPE vocabularies; GPT-2's is 27).
pub const TOKENIZER_FILE_BYTES_PER_TOKEN: u64 = 28;
/// Transient heap of tokenising one prompt, per byte of the prompt: the tokenizers crate keeps
/// the original and the normalised text with a (start, end) alignment per byte, every
/// pre-tokenised split as its own normalised string, and an Encoding (id, type id, token
/// string, offsets, word index, masks) per token, also for the part truncation cuts off.
/// Measured 81 (WordPiece) to 89 (byte-level BPE) on the test fixtures.
pub const ENCODE_BYTES_PER_PROMPT_BYTE: u64 = 89;
/// Heap per prompt of a shard besides its text and ids: its entries in the prompt list
/// (`(usize, String)`, 32 bytes) and in the id list (`Vec<u32>`, 24 bytes).
pub const PROMPT_ENTRY_BYTES: u64 = 56;
/// Capacity of the buffered writer the safetensors crate writes a shard through.
pub const SHARD_WRITER_BUFFER_BYTES: u64 = MIB;
/// Concept directions held by concept analysis.
pub const CONCEPT_BANK: u64 = 64;

/// Where the peak goes. Every field is in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Breakdown {
    /// Weights as loaded: every block and the embeddings, in the compute dtype.
    pub weights: u64,
    /// At the peak: selected hooks kept for the batch and the shard's byte buffers (filled
    /// until the shard is written), or the values being reduced (statistics).
    pub captured_activations: u64,
    /// At the peak: the rest of the forward pass's live set (embeddings, residual, projections,
    /// MLP hidden), or the tokenizer's transient, prompts and ids of the batch.
    pub transient_forward: u64,
    /// At the peak: attention scores and probabilities `[B, H, S, S]` alive.
    pub attention_patterns: u64,
    /// Tensors kept for the backward pass and their gradients (saliency only).
    pub gradients: u64,
    /// Logits and their softmax (saliency only).
    pub logits: u64,
    /// Device context and workspace (GPU: CUDA context and cuBLAS; CPU: runtime, matmul
    /// packing buffers and the loaded tokenizer).
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

/// The blocks that run: through the last needed one (all of them for the final norm or when
/// logits are needed).
pub fn blocks_run(w: &Workload) -> u64 {
    if needs_logits(w.analysis) {
        return w.arch.num_layers;
    }
    w.hooks.blocks_needed
}

fn needs_logits(analysis: AnalysisKind) -> bool {
    analysis == AnalysisKind::Saliency
}

/// Bytes the CPU process holds for its whole life whatever it runs, besides the tokenizer: the
/// runtime ([`CPU_RUNTIME_BYTES`]) and gemm's L2-sized packing buffer, one per thread that runs
/// a matmul (candle's worker threads and the calling thread).
pub fn cpu_process_bytes() -> u64 {
    // candle reads /proc/cpuinfo for its thread count; the matrix asks thousands of times a tick.
    static THREADS: OnceLock<u64> = OnceLock::new();
    let threads = *THREADS.get_or_init(|| candle_core::utils::get_num_threads() as u64 + 1);
    CPU_RUNTIME_BYTES + threads * l2_cache_bytes()
}

/// The L2 cache size gemm sizes its packing buffer with (1 MiB when unknown).
fn l2_cache_bytes() -> u64 {
    static L2: OnceLock<u64> = OnceLock::new();
    *L2.get_or_init(|| {
        std::fs::read_to_string("/sys/devices/system/cpu/cpu0/cache/index2/size")
            .ok()
            .and_then(|t| parse_cache_size(t.trim()))
            .unwrap_or(MIB)
    })
}

fn parse_cache_size(text: &str) -> Option<u64> {
    let (num, unit) = match text.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => text.split_at(i),
        None => (text, ""),
    };
    let n: u64 = num.parse().ok()?;
    Some(match unit {
        "K" => n << 10,
        "M" => n << 20,
        "" => n,
        _ => return None,
    })
}

/// Tokenizer bytes: (retained, peak while loading).
fn tokenizer_bytes(w: &Workload) -> (u64, u64) {
    let file = w
        .tokenizer_file_bytes
        .unwrap_or(w.arch.vocab_size * TOKENIZER_FILE_BYTES_PER_TOKEN);
    (
        (file as f64 * TOKENIZER_RETAINED_PER_FILE_BYTE) as u64,
        file * TOKENIZER_LOAD_PER_FILE_BYTE,
    )
}

/// Weights as the engine loads them: (bytes kept, peak while loading). The loading is
/// simulated in the family loader's order: each tensor is read in the checkpoint's dtype and
/// converted; `Linear::from_torch` keeps a transposed copy of a PyTorch weight (the original is
/// freed after); `Linear::fused` concatenates transposed parts, which candle does through a
/// transposed concatenation that `contiguous` copies once more; the embeddings come last.
fn weight_bytes(w: &Workload, e: u64) -> (u64, u64) {
    let arch = &w.arch;
    let (d, m, l, v) = (
        arch.hidden_size,
        arch.intermediate_size,
        arch.num_layers,
        arch.vocab_size,
    );
    let a = arch.attention_width();
    let kv = arch.num_kv_heads * arch.head_dim;
    let saved = arch.saved_dtype_bytes();
    let mut sim = Sim::default();
    let load = |sim: &mut Sim, elems: u64| -> Id {
        if saved == e {
            return sim.alloc(elems * e);
        }
        let read = sim.alloc(elems * saved);
        let converted = sim.alloc(elems * e);
        sim.free(read);
        converted
    };
    // `from_torch`: a transposed contiguous copy replaces the original.
    let transposed = |sim: &mut Sim, original: Id, elems: u64| {
        sim.alloc(elems * e);
        sim.free(original);
    };
    // `fused`: the concatenation and its contiguous copy, then the parts go.
    let fused = |sim: &mut Sim, parts: &[Id], elems: u64| {
        let cat = sim.alloc(elems * e);
        sim.alloc(elems * e);
        sim.free(cat);
        for p in parts {
            sim.free(*p);
        }
    };
    match engine_family(arch) {
        EngineFamily::Gpt2 => {
            for _ in 0..l {
                for elems in [d, d, d * 3 * d, 3 * d, d * d, d, d, d, d * m, m, m * d, d] {
                    load(&mut sim, elems);
                }
            }
            for elems in [v * d, arch.max_positions * d, d, d] {
                load(&mut sim, elems);
            }
        }
        EngineFamily::Bert => {
            for _ in 0..l {
                let parts: Vec<Id> = (0..6)
                    .map(|i| load(&mut sim, if i % 2 == 0 { d * d } else { d }))
                    .collect();
                fused(&mut sim, &parts[..], 3 * d * d + 3 * d);
                for (weight, bias) in [(d * d, d), (0, 0), (m * d, m), (d * m, d), (0, 0)] {
                    if weight == 0 {
                        load(&mut sim, d);
                        load(&mut sim, d);
                        continue;
                    }
                    let original = load(&mut sim, weight);
                    load(&mut sim, bias);
                    transposed(&mut sim, original, weight);
                }
            }
            if arch.type_vocab_size > 0 {
                load(&mut sim, arch.type_vocab_size * d);
            }
            for elems in [v * d, arch.max_positions * d, d, d] {
                load(&mut sim, elems);
            }
        }
        EngineFamily::Llama => {
            let bias = arch.family == Family::Qwen2;
            for _ in 0..l {
                let mut qkv: Vec<Id> = [a, kv, kv]
                    .into_iter()
                    .map(|rows| load(&mut sim, rows * d))
                    .collect();
                if bias {
                    qkv.extend([a, kv, kv].map(|n| load(&mut sim, n)));
                }
                let gate_up = [load(&mut sim, m * d), load(&mut sim, m * d)];
                let o = load(&mut sim, d * a);
                let down = load(&mut sim, d * m);
                load(&mut sim, d);
                fused(
                    &mut sim,
                    &qkv,
                    (a + 2 * kv) * d + if bias { a + 2 * kv } else { 0 },
                );
                transposed(&mut sim, o, d * a);
                load(&mut sim, d);
                fused(&mut sim, &gate_up, 2 * m * d);
                transposed(&mut sim, down, d * m);
            }
            load(&mut sim, v * d);
            load(&mut sim, d);
        }
    }
    // Tensors the model keeps: per block, and outside the blocks (BERT's token-type row is a
    // view: one more).
    let (per_block, outside) = match engine_family(arch) {
        EngineFamily::Gpt2 => (12, 4),
        EngineFamily::Bert => (12, 4 + 2 * u64::from(arch.type_vocab_size > 0)),
        EngineFamily::Llama => (6 + u64::from(arch.family == Family::Qwen2), 2),
    };
    let overhead = (l * per_block + outside) * TENSOR_OVERHEAD_BYTES;
    (sim.live + overhead, sim.peak + overhead)
}

/// Tracks live bytes and their peak through a simulated sequence of tensor allocations.
#[derive(Default)]
struct Sim {
    live: u64,
    attn_live: u64,
    pinned_live: u64,
    peak: u64,
    /// (attention, pinned) bytes at the peak.
    at_peak: (u64, u64),
    bufs: Vec<Buf>,
    /// Bytes written into new tensors by everything but the matmuls.
    written_by_ops: u64,
    /// Matmul calls.
    matmuls: u64,
}

#[derive(Clone, Copy)]
struct Buf {
    bytes: u64,
    attn: bool,
    pinned: bool,
    freed: bool,
}

/// A simulated tensor storage.
#[derive(Clone, Copy)]
struct Id(usize);

impl Sim {
    fn alloc_kind(&mut self, bytes: u64, attn: bool) -> Id {
        self.written_by_ops += bytes;
        self.live += bytes;
        if attn {
            self.attn_live += bytes;
        }
        self.bufs.push(Buf {
            bytes,
            attn,
            pinned: false,
            freed: false,
        });
        if self.live > self.peak {
            self.peak = self.live;
            self.at_peak = (self.attn_live, self.pinned_live);
        }
        Id(self.bufs.len() - 1)
    }

    fn alloc(&mut self, bytes: u64) -> Id {
        self.alloc_kind(bytes, false)
    }

    /// A matmul's output: counted as a call, not as element-wise traffic.
    fn alloc_matmul(&mut self, bytes: u64, attn: bool) -> Id {
        let id = self.alloc_kind(bytes, attn);
        self.matmuls += 1;
        self.written_by_ops -= bytes;
        id
    }

    fn free(&mut self, id: Id) {
        let b = &mut self.bufs[id.0];
        if b.pinned || b.freed {
            return;
        }
        b.freed = true;
        self.live -= b.bytes;
        if b.attn {
            self.attn_live -= b.bytes;
        }
    }

    /// A selected hook keeps the storage alive until the batch is written out.
    fn pin(&mut self, id: Id) {
        let b = &mut self.bufs[id.0];
        if !b.pinned && !b.freed {
            b.pinned = true;
            self.pinned_live += b.bytes;
            // Counted as captured from now on.
            if b.attn {
                b.attn = false;
                self.attn_live -= b.bytes;
            }
        }
    }
}

/// The per-block hook names the simulation asks about (`blocks.{i}.{suffix}`), one bit each.
const BLOCK_SUFFIXES: [&str; 17] = [
    "hook_resid_pre",
    "ln1.hook_normalized",
    "attn.hook_q",
    "attn.hook_k",
    "attn.hook_v",
    "attn.hook_rot_q",
    "attn.hook_rot_k",
    "attn.hook_attn_scores",
    "attn.hook_pattern",
    "attn.hook_z",
    "hook_attn_out",
    "hook_resid_mid",
    "mlp.hook_pre",
    "mlp.hook_pre_linear",
    "mlp.hook_post",
    "hook_mlp_out",
    "hook_resid_post",
];

/// The selected hooks, parsed once per simulation: a bit per [`BLOCK_SUFFIXES`] entry for each
/// block, and the names outside blocks. (The dashboard's matrix runs thousands of simulations
/// per tick, so a hook test must not format or scan strings.)
struct Wanted {
    blocks: Vec<u32>,
    other: Vec<String>,
}

impl Wanted {
    fn of(w: &Workload) -> Self {
        let mut blocks = Vec::new();
        let mut other = Vec::new();
        for h in &w.hooks.hooks {
            let parsed = h
                .name
                .strip_prefix("blocks.")
                .and_then(|rest| rest.split_once('.'))
                .and_then(|(i, suffix)| {
                    let bit = BLOCK_SUFFIXES.iter().position(|s| *s == suffix)?;
                    Some((i.parse::<usize>().ok()?, bit))
                });
            match parsed {
                Some((i, bit)) => {
                    if blocks.len() <= i {
                        blocks.resize(i + 1, 0u32);
                    }
                    blocks[i] |= 1 << bit;
                }
                None => other.push(h.name.clone()),
            }
        }
        Self { blocks, other }
    }

    fn global(&self, name: &str) -> bool {
        self.other.iter().any(|n| n == name)
    }

    fn block(&self, i: u64, suffix: &str) -> bool {
        let Some(bit) = BLOCK_SUFFIXES.iter().position(|s| *s == suffix) else {
            return false;
        };
        usize::try_from(i)
            .ok()
            .and_then(|i| self.blocks.get(i))
            .is_some_and(|mask| mask & (1 << bit) != 0)
    }
}

/// The forward pass of one batch as the engine's family code runs it.
struct Forward<'a> {
    w: &'a Workload,
    e: u64,
    wanted: Wanted,
    sim: Sim,
}

impl<'a> Forward<'a> {
    fn new(w: &'a Workload, e: u64) -> Self {
        Self {
            w,
            e,
            wanted: Wanted::of(w),
            sim: Sim::default(),
        }
    }

    fn hook(&mut self, name: &str, id: Id) {
        if self.wanted.global(name) {
            self.sim.pin(id);
        }
    }

    fn block_hook(&mut self, i: u64, suffix: &str, id: Id) {
        if self.wanted.block(i, suffix) {
            self.sim.pin(id);
        }
    }

    /// `Linear::forward`: the matmul's output, plus a second buffer when a bias is added.
    fn linear(&mut self, out_elems: u64, bias: bool) -> Id {
        let e = self.e;
        let y = self.sim.alloc_matmul(out_elems * e, false);
        if bias {
            let z = self.sim.alloc(out_elems * e);
            self.sim.free(y);
            z
        } else {
            y
        }
    }

    /// The qkv projection, `split_qkv`, rotary q/k (Llama family) and `attention`; returns the
    /// block-local tensors still alive (q, k, v and their rotated copies), z last.
    fn attention(&mut self, i: u64, bias: bool, rotary: bool, mask: bool) -> Vec<Id> {
        let arch = &self.w.arch;
        let (b, s, e) = (self.w.batch, self.w.seq, self.e);
        let t = b * s;
        let (a, kv, h) = (
            arch.attention_width(),
            arch.num_kv_heads * arch.head_dim,
            arch.num_heads,
        );
        let qkv = self.linear(t * (a + 2 * kv), bias);
        let mut locals = Vec::new();
        for (name, width) in [("attn.hook_q", a), ("attn.hook_k", kv), ("attn.hook_v", kv)] {
            self.block_hook(i, name, qkv);
            // The narrow is strided: reshape copies it, then the head-major copy.
            let copy = self.sim.alloc(t * width * e);
            let heads = self.sim.alloc(t * width * e);
            self.sim.free(copy);
            locals.push(heads);
        }
        self.sim.free(qkv);
        if rotary {
            let q = self.sim.alloc(t * a * e);
            let k = self.sim.alloc(t * kv * e);
            self.block_hook(i, "attn.hook_rot_q", q);
            self.block_hook(i, "attn.hook_rot_k", k);
            locals.push(q);
            locals.push(k);
        }
        let square = b * h * s * s * e;
        let product = self.sim.alloc_matmul(square, true);
        let scaled = self.sim.alloc_kind(square, true);
        self.sim.free(product);
        let scores = if mask {
            self.sim.alloc_kind(square, true)
        } else {
            scaled
        };
        self.block_hook(i, "attn.hook_attn_scores", scores);
        let pattern = self.sim.alloc_kind(square, true);
        self.block_hook(i, "attn.hook_pattern", pattern);
        let z_heads = self.sim.alloc_matmul(t * a * e, false);
        let z = self.sim.alloc(t * a * e);
        self.block_hook(i, "attn.hook_z", z);
        for id in [z_heads, pattern, scores, scaled] {
            self.sim.free(id);
        }
        // q, k, v (and their rotated copies) are the block's locals: they live until it ends.
        locals.push(z);
        locals
    }

    fn run(mut self) -> Sim {
        let arch = &self.w.arch;
        let (b, s, e) = (self.w.batch, self.w.seq, self.e);
        let t = b * s;
        let (d, m) = (arch.hidden_size, arch.intermediate_size);
        let family = engine_family(arch);
        let blocks = blocks_run(self.w);
        match family {
            EngineFamily::Gpt2 => {
                let tok = self.sim.alloc(t * d * e);
                let pos = self.sim.alloc(s * d * e);
                self.hook("hook_embed", tok);
                self.hook("hook_pos_embed", pos);
                let mut x = self.sim.alloc(t * d * e);
                let mask = self.sim.alloc(s * s * e);
                for i in 0..blocks {
                    self.block_hook(i, "hook_resid_pre", x);
                    let h = self.sim.alloc(t * d * e);
                    self.block_hook(i, "ln1.hook_normalized", h);
                    let mut locals = self.attention(i, true, false, true);
                    let attn_out = self.linear(t * d, true);
                    self.block_hook(i, "hook_attn_out", attn_out);
                    let mid = self.sim.alloc(t * d * e);
                    self.block_hook(i, "hook_resid_mid", mid);
                    let ln2 = self.sim.alloc(t * d * e);
                    let pre = self.linear(t * m, true);
                    self.sim.free(ln2);
                    self.block_hook(i, "mlp.hook_pre", pre);
                    let post = self.sim.alloc(t * m * e);
                    self.block_hook(i, "mlp.hook_post", post);
                    let mlp_out = self.linear(t * d, true);
                    self.block_hook(i, "hook_mlp_out", mlp_out);
                    let next = self.sim.alloc(t * d * e);
                    self.sim.free(x);
                    x = next;
                    self.block_hook(i, "hook_resid_post", x);
                    locals.extend([h, attn_out, mid, pre, post, mlp_out]);
                    for id in locals {
                        self.sim.free(id);
                    }
                }
                self.final_norm();
                for id in [tok, pos, x, mask] {
                    self.sim.free(id);
                }
            }
            EngineFamily::Bert => {
                let roberta = arch.family == Family::Roberta;
                let tok = self.sim.alloc(t * d * e);
                let pos = self.sim.alloc(if roberta { t } else { s } * d * e);
                self.hook("hook_embed", tok);
                self.hook("hook_pos_embed", pos);
                let mut sum = self.sim.alloc(t * d * e);
                if arch.type_vocab_size > 0 {
                    let with_types = self.sim.alloc(t * d * e);
                    self.sim.free(sum);
                    sum = with_types;
                }
                let mut x = self.sim.alloc(t * d * e);
                for i in 0..blocks {
                    self.block_hook(i, "hook_resid_pre", x);
                    // Full batches of equally long prompts: no padding mask.
                    let mut locals = self.attention(i, true, false, false);
                    let attn_out = self.linear(t * d, true);
                    self.block_hook(i, "hook_attn_out", attn_out);
                    let mid = self.sim.alloc(t * d * e);
                    self.block_hook(i, "hook_resid_mid", mid);
                    let normed = self.sim.alloc(t * d * e);
                    self.block_hook(i, "ln1.hook_normalized", normed);
                    let pre = self.linear(t * m, true);
                    self.block_hook(i, "mlp.hook_pre", pre);
                    let post = self.sim.alloc(t * m * e);
                    self.block_hook(i, "mlp.hook_post", post);
                    let mlp_out = self.linear(t * d, true);
                    self.block_hook(i, "hook_mlp_out", mlp_out);
                    let residual = self.sim.alloc(t * d * e);
                    let next = self.sim.alloc(t * d * e);
                    self.sim.free(residual);
                    self.sim.free(x);
                    x = next;
                    self.block_hook(i, "hook_resid_post", x);
                    locals.extend([attn_out, mid, normed, pre, post, mlp_out]);
                    for id in locals {
                        self.sim.free(id);
                    }
                }
                for id in [tok, pos, sum, x] {
                    self.sim.free(id);
                }
            }
            EngineFamily::Llama => {
                let bias = arch.family == Family::Qwen2;
                let mut x = self.sim.alloc(t * d * e);
                self.hook("hook_embed", x);
                let mask = self.sim.alloc(s * s * e);
                let tables = self.sim.alloc(s * arch.head_dim * e);
                for i in 0..blocks {
                    self.block_hook(i, "hook_resid_pre", x);
                    let h = self.sim.alloc(t * d * e);
                    self.block_hook(i, "ln1.hook_normalized", h);
                    let mut locals = self.attention(i, bias, true, true);
                    let attn_out = self.linear(t * d, false);
                    self.block_hook(i, "hook_attn_out", attn_out);
                    let mid = self.sim.alloc(t * d * e);
                    self.block_hook(i, "hook_resid_mid", mid);
                    let ln2 = self.sim.alloc(t * d * e);
                    let gate_up = self.linear(2 * t * m, false);
                    self.sim.free(ln2);
                    self.block_hook(i, "mlp.hook_pre", gate_up);
                    self.block_hook(i, "mlp.hook_pre_linear", gate_up);
                    let act = self.sim.alloc(t * m * e);
                    let post = self.sim.alloc(t * m * e);
                    self.sim.free(act);
                    self.block_hook(i, "mlp.hook_post", post);
                    let mlp_out = self.linear(t * d, false);
                    self.block_hook(i, "hook_mlp_out", mlp_out);
                    let next = self.sim.alloc(t * d * e);
                    self.sim.free(x);
                    x = next;
                    self.block_hook(i, "hook_resid_post", x);
                    locals.extend([h, attn_out, mid, gate_up, post, mlp_out]);
                    for id in locals {
                        self.sim.free(id);
                    }
                }
                self.final_norm();
                for id in [x, mask, tables] {
                    self.sim.free(id);
                }
            }
        }
        self.sim
    }

    fn final_norm(&mut self) {
        if self.w.hooks.needs_final {
            let t = self.w.batch * self.w.seq;
            let y = self.sim.alloc(t * self.w.arch.hidden_size * self.e);
            self.hook("ln_final.hook_normalized", y);
        }
    }
}

/// The forward pass of one batch, simulated: (peak above what was live before it, bytes the
/// selected hooks keep alive after it, attention bytes at the peak, captured bytes at the
/// peak), and its [`ForwardWork`].
pub fn forward_peak(w: &Workload, e: u64) -> ((u64, u64, u64, u64), ForwardWork) {
    let sim = Forward::new(w, e).run();
    (
        (sim.peak, sim.pinned_live, sim.at_peak.0, sim.at_peak.1),
        ForwardWork {
            matmuls: sim.matmuls,
            bytes_written: sim.written_by_ops,
        },
    )
}

/// What one batch's forward pass does besides its FLOPs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardWork {
    /// Matmul calls (each projection, and the two batched attention products per block).
    pub matmuls: u64,
    /// Bytes the other ops (bias adds, norms, masks, softmax, activations, head transposes,
    /// residual adds, embeddings) write into new tensors.
    pub bytes_written: u64,
}

/// Whether the engine hands a hook's tensor over strided (a view into a larger tensor), so
/// turning it into f32 values copies it once more first.
fn strided(w: &Workload, h: &HookSpec) -> bool {
    let llama = engine_family(&w.arch) == EngineFamily::Llama;
    let name = h
        .name
        .rsplit_once("blocks.")
        .map_or(h.name.as_str(), |(_, r)| {
            r.split_once('.').map_or(r, |(_, s)| s)
        });
    matches!(
        name,
        "attn.hook_q" | "attn.hook_k" | "attn.hook_v" | "attn.hook_rot_q" | "attn.hook_rot_k"
    ) || (name == "hook_pos_embed" && w.arch.family != Family::Roberta)
        || name == "hook_token_type_embed"
        || (llama && matches!(name, "mlp.hook_pre" | "mlp.hook_pre_linear"))
}

/// Capacity of a vector after `n` appends of `unit` bytes each, growing by doubling (Rust's
/// amortised growth when each append reserves exactly what it adds).
fn doubled(unit: u64, n: u64) -> u64 {
    unit * n.max(1).next_power_of_two() * u64::from(n > 0)
}

/// Bytes above the weights and the context at one moment of the run.
#[derive(Debug, Clone, Copy, Default)]
struct Phase {
    /// Captured tensors and shard buffers (or values being reduced).
    captured: u64,
    /// Attention scores and patterns.
    attention: u64,
    /// Everything else.
    other: u64,
    /// Extra weight bytes alive only while loading.
    loading: u64,
}

impl Phase {
    fn total(&self) -> u64 {
        self.captured + self.attention + self.other + self.loading
    }
}

/// Estimates the peak of `w` on `device`.
pub fn breakdown(w: &Workload, device: &DeviceSpec) -> Breakdown {
    breakdown_and_work(w, device).0
}

/// [`breakdown`], and the forward pass's [`ForwardWork`] from the same simulation (the time
/// estimate's inputs).
pub fn breakdown_and_work(w: &Workload, device: &DeviceSpec) -> (Breakdown, ForwardWork) {
    let dtype = device.effective_dtype(w.dtype);
    let e = dtype.bytes();
    let arch = &w.arch;
    let (b, s) = (w.batch, w.seq);
    let t = b * s;
    let (weights, weights_loading) = weight_bytes(w, e);
    let ((fwd_peak, captures, fwd_attn, fwd_pinned), work) = forward_peak(w, e);
    let fwd_other = fwd_peak - fwd_attn - fwd_pinned;
    let loading = Phase {
        loading: weights_loading - weights,
        ..Phase::default()
    };

    let per_token: Vec<&HookSpec> = w
        .hooks
        .hooks
        .iter()
        .filter(|h| h.layout == HookLayout::PerToken)
        .collect();
    let per_prompt: Vec<&HookSpec> = w
        .hooks
        .hooks
        .iter()
        .filter(|h| h.layout == HookLayout::PerPrompt)
        .collect();
    // f32 values of a per-token hook for the batch, and of a per-prompt hook for one prompt.
    let values = |h: &HookSpec| t * h.per_token_elems() as u64 * 4;
    let square = |h: &HookSpec| h.per_token_elems() as u64 * s * s * 4;
    // The copy made before the values when the tensor is strided or not f32.
    let conversion = |h: &HookSpec| {
        if e != 4 || strided(w, h) {
            values(h)
        } else {
            0
        }
    };
    let square_conversion = |h: &HookSpec| if e != 4 { square(h) } else { 0 };

    let (logits, gradients) = if needs_logits(w.analysis) {
        let logits = 2 * t * arch.vocab_size * e;
        // Candle's autograd keeps every intermediate of every block, and the backward pass
        // holds a gradient for each.
        (
            logits,
            2 * arch.num_layers * fwd_peak + t * arch.hidden_size * e,
        )
    } else {
        (0, 0)
    };
    let concept_bank = if w.analysis == AnalysisKind::Concepts {
        CONCEPT_BANK * arch.hidden_size * 4 + t * CONCEPT_BANK * 4
    } else {
        0
    };

    let pick = |phases: &[Phase], context: u64| {
        let p = phases
            .iter()
            .copied()
            .max_by_key(Phase::total)
            .unwrap_or_default();
        Breakdown {
            weights: weights + p.loading,
            captured_activations: p.captured,
            transient_forward: p.other,
            attention_patterns: p.attention,
            gradients,
            logits,
            context,
        }
    };

    if device.is_gpu() {
        // On the device: the weights, the ids, the forward pass, then the captured tensors
        // while each is converted and copied to the host.
        let ids = t * 4;
        let convert = per_token
            .iter()
            .map(|h| conversion(h))
            .chain(per_prompt.iter().map(|h| b * square_conversion(h)))
            .max()
            .unwrap_or(0);
        let phases = [
            loading,
            Phase {
                captured: fwd_pinned,
                attention: fwd_attn,
                other: ids + fwd_other + concept_bank,
                loading: 0,
            },
            Phase {
                captured: captures,
                other: ids + convert,
                ..Phase::default()
            },
        ];
        return (pick(&phases, GPU_CONTEXT_BYTES + GPU_WORKSPACE_BYTES), work);
    }

    // The CPU: one process's heap. The engine works a shard (a statistics chunk) at a time: it
    // reads and tokenises all of its prompts, makes the shard's buffers (the per-token hook
    // bytes at their final size), runs its batches in order of length, and writes it.
    let (tokenizer, tokenizer_loading) = tokenizer_bytes(w);
    let prompt_bytes = w.input.longest_prompt_bytes;
    let encode = prompt_bytes * ENCODE_BYTES_PER_PROMPT_BYTE;
    let writes_shards = matches!(
        w.analysis,
        AnalysisKind::Activations | AnalysisKind::Attention
    );
    let per_shard = if writes_shards {
        let target = EngineOptions::default().shard_target_bytes;
        prompts_per_shard(&w.hooks.hooks, w.input.mean_tokens, b as usize, target) as u64
    } else {
        EngineOptions::default()
            .stats_chunk_prompts
            .div_ceil(b as usize) as u64
            * b
    };
    let n = w
        .input
        .prompts
        .map_or(per_shard, |p| p.min(per_shard))
        .max(1);
    // Its prompts and their ids (each as long as the longest), with their vector entries.
    let held = n * (prompt_bytes + s * 4 + PROMPT_ENTRY_BYTES);
    // One batch's ids: a copy, the padded host ids and the id tensor.
    let batch_host = 3 * t * 4;
    // The shard's ids (i64 per token, grown by doubling; offsets; indices) and hook bytes.
    let shard_ids = doubled(s * 8, n) + doubled(8, n + 1) + n * 8;
    let shard_tokens: u64 = per_token
        .iter()
        .map(|h| n * s * h.per_token_elems() as u64 * 4)
        .sum();
    let shard_squares: u64 = per_prompt.iter().map(|h| n * square(h)).sum();
    let batches = n.div_ceil(b);
    // Per-prompt tensors of the batches before the last.
    let squares_before = shard_squares / batches * (batches - 1);
    let (shard_before, shard_after, write) = if writes_shards {
        let fixed = shard_ids + shard_tokens;
        let i64_bytes = (n * s * 8).next_power_of_two();
        (
            fixed + squares_before,
            fixed + shard_squares,
            fixed + shard_squares + SHARD_WRITER_BUFFER_BYTES + i64_bytes,
        )
    } else {
        (0, 0, 0)
    };
    // Converting the last batch's hooks: per-token values one hook at a time; per-prompt ones
    // one prompt at a time, each then kept as the shard's bytes.
    let token_step = per_token
        .iter()
        .map(|h| values(h) + conversion(h))
        .max()
        .unwrap_or(0);
    let square_step = per_prompt
        .iter()
        .map(|h| square(h) + square_conversion(h))
        .max()
        .unwrap_or(0);
    let extraction = (shard_before + token_step).max(shard_after + square_step);

    let phases = [
        loading,
        Phase {
            other: tokenizer_loading.saturating_sub(tokenizer),
            ..Phase::default()
        },
        Phase {
            other: held + encode,
            ..Phase::default()
        },
        Phase {
            captured: shard_before + fwd_pinned,
            attention: fwd_attn,
            other: held + batch_host + fwd_other + concept_bank,
            loading: 0,
        },
        Phase {
            captured: captures + extraction,
            other: held + batch_host,
            ..Phase::default()
        },
        Phase {
            captured: write,
            other: held,
            ..Phase::default()
        },
    ];
    (pick(&phases, cpu_process_bytes() + tokenizer), work)
}

/// The dtype a breakdown was computed in.
pub fn compute_dtype(w: &Workload, device: &DeviceSpec) -> DType {
    device.effective_dtype(w.dtype)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::estimate::workload::{HookPlan, InputShape};
    use crate::models::registry;

    fn workload(
        id: &str,
        analysis: AnalysisKind,
        batch: u64,
        seq: u64,
        hooks: &[&str],
    ) -> Workload {
        let arch = registry::builtin()
            .unwrap()
            .into_iter()
            .find(|e| e.id == id)
            .unwrap()
            .architecture;
        let globs: Vec<String> = hooks.iter().map(|h| h.to_string()).collect();
        Workload {
            hooks: HookPlan::select(&arch, analysis, &globs).unwrap(),
            arch,
            analysis,
            batch,
            seq,
            dtype: None,
            input: InputShape::assumed(seq),
            tokenizer_file_bytes: None,
        }
    }

    fn cpu() -> DeviceSpec {
        DeviceSpec::cpu(
            u64::MAX / 4,
            u64::MAX / 4,
            crate::estimate::device::Speed::NOT_MEASURED,
        )
    }

    #[test]
    fn every_block_hook_of_every_family_has_a_bit() {
        use crate::engine::families::{AttnDims, HookCatalog};
        let attn = AttnDims {
            heads: 4,
            kv_heads: 2,
            d_head: 8,
        };
        for family in [EngineFamily::Gpt2, EngineFamily::Bert, EngineFamily::Llama] {
            for h in HookCatalog::for_family(family, 2, 32, attn, 64, true).build() {
                if let Some(rest) = h.name.strip_prefix("blocks.1.") {
                    assert!(BLOCK_SUFFIXES.contains(&rest), "{family:?}: {}", h.name);
                }
            }
        }
    }

    fn forward_work(w: &Workload, e: u64) -> ForwardWork {
        forward_peak(w, e).1
    }

    #[test]
    fn forward_work_counts_matmul_calls_and_element_wise_bytes() {
        // GPT-2 small, all 12 blocks: 4 projections and 2 attention products per block.
        let w = workload(
            "gpt2",
            AnalysisKind::Activations,
            2,
            16,
            &["blocks.11.hook_resid_post"],
        );
        let work = forward_work(&w, 4);
        assert_eq!(work.matmuls, 12 * 6);
        // Stopping after block 2 runs a quarter of it.
        let early = workload(
            "gpt2",
            AnalysisKind::Activations,
            2,
            16,
            &["blocks.2.hook_resid_post"],
        );
        let part = forward_work(&early, 4);
        assert_eq!(part.matmuls, 3 * 6);
        assert!(part.bytes_written < work.bytes_written / 3);
        // Element-wise traffic grows with the tokens, and the attention part with S^2.
        let longer = workload(
            "gpt2",
            AnalysisKind::Activations,
            2,
            64,
            &["blocks.11.hook_resid_post"],
        );
        assert!(forward_work(&longer, 4).bytes_written > 4 * work.bytes_written);
    }

    #[test]
    fn attention_holds_scores_masked_scores_and_pattern() {
        // Long prompts: the attention phase is the forward peak.
        let (b, s) = (1, 1024);
        let gpt2 = workload(
            "gpt2",
            AnalysisKind::Stats,
            b,
            s,
            &["blocks.*.hook_resid_post"],
        );
        let ((_, _, attention, _), _) = forward_peak(&gpt2, 4);
        assert_eq!(
            attention,
            3 * b * 12 * s * s * 4,
            "causal mask: three [B,H,S,S]"
        );
        let bert = workload(
            "bert-base-uncased",
            AnalysisKind::Stats,
            b,
            512,
            &["blocks.*.hook_resid_post"],
        );
        let ((_, _, attention, _), _) = forward_peak(&bert, 4);
        assert_eq!(attention, 2 * b * 12 * 512 * 512 * 4, "no mask: two");
    }

    #[test]
    fn selected_hooks_stay_alive_after_the_forward() {
        let w = workload(
            "gpt2",
            AnalysisKind::Stats,
            2,
            64,
            &["blocks.*.hook_resid_post"],
        );
        let ((_, kept, _, _), _) = forward_peak(&w, 4);
        assert_eq!(kept, 12 * 2 * 64 * 768 * 4);
        // q is a view of the fused qkv output: selecting it keeps all of qkv alive.
        let w = workload(
            "gpt2",
            AnalysisKind::Stats,
            2,
            64,
            &["blocks.0.attn.hook_q"],
        );
        let ((_, kept, _, _), _) = forward_peak(&w, 4);
        assert_eq!(kept, 2 * 64 * 3 * 768 * 4);
    }

    #[test]
    fn every_block_is_loaded_whatever_the_hooks() {
        let early = workload(
            "gpt2",
            AnalysisKind::Activations,
            1,
            32,
            &["blocks.0.hook_resid_post"],
        );
        let late = workload(
            "gpt2",
            AnalysisKind::Activations,
            1,
            32,
            &["blocks.11.hook_resid_post"],
        );
        let (a, b) = (breakdown(&early, &cpu()), breakdown(&late, &cpu()));
        assert_eq!(a.weights, b.weights);
        assert!(a.weights >= 124_439_808 * 4);
        assert_eq!(blocks_run(&early), 1);
    }

    #[test]
    fn shards_hold_their_batches_until_written() {
        // One small hook: 168 prompts (21 batches) fit in a 64 MiB shard, held until written.
        let hooks = ["blocks.11.hook_resid_post"];
        let mut act = workload("gpt2", AnalysisKind::Activations, 8, 128, &hooks);
        act.input.prompts = Some(8);
        let one_batch = breakdown(&act, &cpu());
        act.input.prompts = Some(160);
        let many = breakdown(&act, &cpu());
        let batch_bytes = 8 * 128 * 768 * 4;
        // The shard's hook bytes for its 20 batches exist from its start.
        assert!(many.captured_activations >= 20 * batch_bytes, "{many:?}");
        assert!(many.total() > one_batch.total() + 19 * batch_bytes);
        let mut stats = act.clone();
        stats.analysis = AnalysisKind::Stats;
        assert!(breakdown(&stats, &cpu()).total() <= one_batch.total());
    }

    #[test]
    fn doubling_capacity() {
        assert_eq!(doubled(10, 0), 0);
        assert_eq!(doubled(10, 1), 10);
        assert_eq!(doubled(10, 3), 40);
        assert_eq!(doubled(10, 4), 40);
        assert_eq!(parse_cache_size("1024K"), Some(1 << 20));
        assert_eq!(parse_cache_size("2M"), Some(2 << 20));
    }
}
