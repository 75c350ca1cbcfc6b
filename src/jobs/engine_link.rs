//! The only place the job queue calls the estimator and the engine, so the scheduler and the
//! worker do not depend on their details.

use std::sync::atomic::AtomicBool;

use super::job::Target;
use crate::engine::request::{ExtractRequest, RunOutcome, RunProgress};
use crate::telemetry::model::Frame;

/// Why a run failed, as the worker records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFailure {
    /// The engine's message.
    pub message: String,
    /// True when the device ran out of memory.
    pub out_of_memory: bool,
}

/// Estimated peak memory of `req` on a device of this kind, or why it cannot be estimated
/// (for example a missing model folder). Until the estimator is merged this is the size of
/// the model's weight files, a lower bound.
pub fn estimate_peak_bytes(
    req: &ExtractRequest,
    target: Target,
    frame: &Frame,
) -> Result<u64, String> {
    let _ = (target, frame);
    let dir = crate::engine::resolve_model_dir(&req.model).map_err(|e| e.to_string())?;
    let entries =
        std::fs::read_dir(&dir).map_err(|e| format!("model folder {}: {e}", dir.display()))?;
    Ok(entries
        .flatten()
        .filter(|e| e.path().extension().is_some_and(|x| x == "safetensors"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum())
}

/// Runs the extraction with shards of about `shard_bytes`, reporting progress after every
/// batch and stopping after a whole shard once `cancel` is set.
pub fn run(
    req: &ExtractRequest,
    shard_bytes: u64,
    on_progress: &mut dyn FnMut(&RunProgress),
    cancel: &AtomicBool,
) -> Result<RunOutcome, RunFailure> {
    let options = crate::engine::EngineOptions {
        shard_target_bytes: shard_bytes,
        ..crate::engine::EngineOptions::default()
    };
    crate::engine::run_extract_with(req, &options, on_progress, cancel).map_err(|e| {
        let message = e.to_string();
        let lower = message.to_lowercase();
        RunFailure {
            out_of_memory: lower.contains("out of memory") || lower.contains("out_of_memory"),
            message,
        }
    })
}
