//! The only place the job queue calls the estimator and the engine, so the scheduler and the
//! worker do not depend on their details.

use std::sync::atomic::AtomicBool;

use super::job::Target;
use crate::engine::request::{ExtractRequest, RunOutcome, RunProgress};

/// Why a run failed, as the worker records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunFailure {
    /// The engine's message.
    pub message: String,
    /// True when the device ran out of memory.
    pub out_of_memory: bool,
}

/// Estimated peak memory of `req` on a device of this kind, or why it cannot be estimated
/// (for example a missing model folder).
pub fn estimate_peak_bytes(req: &ExtractRequest, target: Target) -> Result<u64, String> {
    let _ = (req, target);
    Err(NOT_BUILT.to_string())
}

/// Runs the extraction, reporting progress after every batch and stopping after a whole shard
/// once `cancel` is set.
pub fn run(
    req: &ExtractRequest,
    on_progress: &mut dyn FnMut(&RunProgress),
    cancel: &AtomicBool,
) -> Result<RunOutcome, RunFailure> {
    let _ = (req, on_progress, cancel);
    Err(RunFailure {
        message: NOT_BUILT.to_string(),
        out_of_memory: false,
    })
}

const NOT_BUILT: &str = "this build of neuronmap has no extraction engine yet";
