//! What a caller asks the engine to do, and what it hears back while the run goes on.
//!
//! These types are the contract between the engine, `neuronmap extract` (foreground) and the
//! job queue's workers (which store an [`ExtractRequest`] as a job's spec, as JSON).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which analysis a run performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Analysis {
    /// The selected hooks go to safetensors shards.
    #[default]
    Activations,
    /// Streamed per-hook statistics, written to `stats.json`.
    Stats,
    /// Attention patterns (`blocks.*.attn.hook_pattern`), one tensor per prompt.
    Attention,
}

/// One extraction run: model, prompts, hooks, output folder and settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ExtractRequest {
    /// A model folder, a Hugging Face cache id, or a registry id that is cached.
    pub model: String,
    /// Prompt file: `.txt` (one prompt per line) or `.jsonl` (objects with a `text` field).
    pub input: PathBuf,
    /// Hook-name globs, e.g. `blocks.*.hook_resid_post`.
    pub hooks: Vec<String>,
    /// Output folder (manifest.json, shard-NNNNN.safetensors, stats.json).
    pub out: PathBuf,
    /// What to compute.
    pub analysis: Analysis,
    /// Prompts per forward pass.
    pub batch: usize,
    /// Maximum tokens per prompt (`None`: the model's maximum).
    pub max_len: Option<usize>,
    /// `f32`, `f16` or `bf16` (`None`: f32 on the CPU, bf16 on a GPU that supports it).
    pub dtype: Option<String>,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// Go on from the last whole shard of an earlier, interrupted run into the same folder.
    pub resume: bool,
}

/// Progress of a run, reported after every batch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunProgress {
    /// Prompts finished (including those of earlier runs when resuming).
    pub prompts_done: usize,
    /// Prompts in the dataset.
    pub prompts_total: usize,
    /// Tokens processed in this run.
    pub tokens_done: u64,
    /// Throughput of this run so far.
    pub tokens_per_second: f64,
    /// Estimated seconds left.
    pub eta_seconds: Option<f64>,
    /// Whole shards on disk.
    pub shards_done: usize,
    /// Peak memory of the process so far (RSS on the CPU, device memory on a GPU).
    pub peak_memory_bytes: Option<u64>,
}

/// How a run ended when it did not fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunOutcome {
    /// Every prompt was processed and the manifest says complete.
    Completed,
    /// Cancellation was requested; the run stopped after a whole shard and can be resumed.
    Cancelled,
}
