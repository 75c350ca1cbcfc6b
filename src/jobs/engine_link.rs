//! The only place the job queue calls the estimator and the engine, so the scheduler and the
//! worker do not depend on their details.

use std::sync::atomic::AtomicBool;

use super::job::Target;
use crate::engine::request::{ExtractRequest, RunOutcome, RunProgress};
use crate::estimate::device::{devices_from_frame, DeviceId, Speed};
use crate::estimate::estimate_request;
use crate::telemetry::model::Frame;

/// Why a run failed, as the worker records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFailure {
    /// The engine's message.
    pub message: String,
    /// True when the device ran out of memory.
    pub out_of_memory: bool,
}

/// Estimated peak memory of `req` on the device `target` as the current frame describes it
/// (a GPU that is gone falls back to the first GPU, so the estimate still exists for a job
/// that waits), or why it cannot be estimated (for example a missing model folder).
pub fn estimate_peak_bytes(
    req: &ExtractRequest,
    target: Target,
    frame: &Frame,
) -> Result<u64, String> {
    // Placement uses the memory figure only, so the throughput passed here does not matter.
    let devices = devices_from_frame(frame, Speed::NOT_MEASURED);
    let wanted = match target {
        Target::Cpu => DeviceId::Cpu,
        Target::Gpu(index) => DeviceId::Cuda(index),
    };
    let device = devices
        .iter()
        .find(|d| d.id == wanted)
        .or_else(|| {
            devices
                .iter()
                .find(|d| d.is_gpu() == (target != Target::Cpu))
        })
        .ok_or_else(|| format!("no {target} to estimate the job on"))?;
    estimate_request(req, device)
        .map(|e| e.peak_bytes)
        .map_err(|e| e.to_string())
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
