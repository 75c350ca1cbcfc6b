//! The worker: `neuronmap worker --job ID --attempt N`, started by the daemon in its own
//! session. It holds the job's lock for its whole life, runs the engine, writes progress to the
//! store at most every 500 ms, and records the result itself, so it needs no daemon to finish.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::daemon::job_lock_path;
use super::engine_link;
use super::job::{Failure, JobId, JobState, Target};
use super::process::{self, FileLock};
use super::store::{Ending, Store, StoreError};
use crate::engine::request::{RunOutcome, RunProgress};

/// Progress reaches the store at most this often.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);
/// Progress reaches the log at most this often.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// How a worker run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerExit {
    /// The job ended and its result is in the store.
    Reported(JobState),
    /// Nothing to do: another worker holds the job, or the job moved on (its attempt number
    /// changed, or it is no longer running).
    Stale(String),
}

/// Errors that keep the worker from running or recording its job.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The job lock could not be taken.
    #[error("job lock {path}: {source}")]
    Lock {
        /// The lock file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Runs job `id` for attempt `attempt`, in this process, cutting shards of about
/// `shard_bytes`.
pub fn run(
    state_dir: &Path,
    id: JobId,
    attempt: i64,
    shard_bytes: u64,
) -> Result<WorkerExit, WorkerError> {
    let lock_path = job_lock_path(state_dir, id);
    let lock_err = |source| WorkerError::Lock {
        path: lock_path.clone(),
        source,
    };
    if let Some(dir) = lock_path.parent() {
        std::fs::create_dir_all(dir).map_err(lock_err)?;
    }
    let Some(_lock) = FileLock::try_acquire(&lock_path).map_err(lock_err)? else {
        return Ok(WorkerExit::Stale(format!("another worker holds job {id}")));
    };
    let cancel = process::stop_flag();
    let mut store = Store::open(&state_dir.join(super::store::DB_FILE))?;
    let job = store.get(id)?;
    if job.state != JobState::Running || job.attempts != attempt {
        return Ok(WorkerExit::Stale(format!(
            "job {id} is {} at attempt {}, not running attempt {attempt}",
            job.state, job.attempts
        )));
    }
    let me = std::process::id();
    store.set_worker(id, me, process::start_ticks(me).unwrap_or(0))?;
    let target: Target = job
        .placement
        .as_deref()
        .and_then(|p| p.parse().ok())
        .unwrap_or(Target::Cpu);
    let mut request = job.spec.clone();
    request.device = target.engine_device().to_string();
    // Any later attempt goes on from the last whole shard the earlier ones left.
    request.resume = request.resume || attempt > 1;
    if job.cancel_requested {
        cancel.store(true, Ordering::SeqCst);
    }
    log(&format!(
        "job {id} attempt {attempt} on {target}: model {}, analysis {}, output {}{}",
        request.model,
        job.analysis,
        request.out.display(),
        if request.resume { " (resuming)" } else { "" }
    ));
    log(&format!(
        "CUDA_VISIBLE_DEVICES={} CUDA_DEVICE_ORDER={}",
        std::env::var("CUDA_VISIBLE_DEVICES").unwrap_or_else(|_| "(unset)".into()),
        std::env::var("CUDA_DEVICE_ORDER").unwrap_or_else(|_| "(unset)".into())
    ));

    let mut last_store: Option<Instant> = None;
    let mut last_log: Option<Instant> = None;
    let mut latest = RunProgress::default();
    let mut on_progress = |p: &RunProgress| {
        latest = p.clone();
        if last_store.is_none_or(|t| t.elapsed() >= PROGRESS_EVERY) {
            if let Err(e) = store.report_progress(id, p) {
                log(&format!("cannot store progress: {e}"));
            }
            last_store = Some(Instant::now());
        }
        if last_log.is_none_or(|t| t.elapsed() >= LOG_EVERY) {
            log(&progress_line(p));
            last_log = Some(Instant::now());
        }
    };
    let result = engine_link::run(&request, shard_bytes, &mut on_progress, cancel);
    store.report_progress(id, &latest)?;
    log(&progress_line(&latest));

    let ending = match result {
        Ok(RunOutcome::Completed) => Ending {
            state: JobState::Succeeded,
            failure: None,
            error: None,
            reason: "completed".into(),
        },
        Ok(RunOutcome::Cancelled) => {
            if store.get(id)?.cancel_requested {
                Ending {
                    state: JobState::Cancelled,
                    failure: None,
                    error: None,
                    reason: "cancelled; stopped after a whole shard".into(),
                }
            } else {
                // Stopped by a signal nobody asked for through neuronmap (shutdown, logout).
                let why = "worker stopped by a signal after a whole shard";
                log(why);
                store.interrupt_and_requeue(id, why)?;
                return Ok(WorkerExit::Reported(JobState::Interrupted));
            }
        }
        Err(failure) => Ending {
            state: JobState::Failed,
            failure: Some(if failure.out_of_memory {
                Failure::Oom
            } else {
                Failure::Engine
            }),
            error: Some(failure.message.clone()),
            reason: failure.message,
        },
    };
    log(&format!("job {id} {}: {}", ending.state, ending.reason));
    store.finish(id, &ending)?;
    Ok(WorkerExit::Reported(ending.state))
}

fn progress_line(p: &RunProgress) -> String {
    let eta = p
        .eta_seconds
        .map_or(String::new(), |s| format!(", ETA {s:.0} s"));
    format!(
        "progress: {}/{} prompts, {} shards, {} tokens, {:.0} tokens/s{eta}",
        p.prompts_done, p.prompts_total, p.shards_done, p.tokens_done, p.tokens_per_second
    )
}

/// One timestamped line to the job's log (the worker's stderr).
fn log(line: &str) {
    let ms = super::store::now_ms();
    eprintln!("[{}.{:03}] {line}", ms / 1000, ms % 1000);
}
