//! What a client (the CLI or the dashboard) does to jobs besides submitting: a reading of the
//! queue for screens, one job's full detail, and cancel / retry with the worker signalled
//! directly, so they work with or without a daemon.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use super::daemon::job_log_path;
use super::job::{Job, JobEvent, JobId};
use super::process;
use super::store::{CancelOutcome, Store, StoreError};

/// A job with its events and the end of its log, for detail views.
#[derive(Debug, Clone, PartialEq)]
pub struct JobDetail {
    /// The job.
    pub job: Job,
    /// Every state change, oldest first.
    pub events: Vec<JobEvent>,
    /// The log file.
    pub log_path: PathBuf,
    /// Its last lines (empty before the job started).
    pub log_tail: Vec<String>,
}

/// Loads one job's detail with the last `lines` lines of its log.
pub fn detail(
    store: &Store,
    state_dir: &Path,
    id: JobId,
    lines: usize,
) -> Result<JobDetail, StoreError> {
    let job = store.get(id)?;
    let events = store.events(id)?;
    let log_path = job_log_path(state_dir, id);
    let text = std::fs::read_to_string(&log_path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    let log_tail = all[all.len().saturating_sub(lines)..]
        .iter()
        .map(|l| l.to_string())
        .collect();
    Ok(JobDetail {
        job,
        events,
        log_path,
        log_tail,
    })
}

/// Cancels a job: a queued one at once; for a running one the request is stored and its
/// worker gets SIGTERM (it stops after its current shard; the daemon kills it after the
/// timeout). Returns a sentence for the user.
pub fn cancel(store: &mut Store, id: JobId) -> Result<String, StoreError> {
    Ok(match store.cancel(id)? {
        CancelOutcome::Cancelled => format!("job {id} cancelled"),
        CancelOutcome::Requested { pid, start_ticks } => {
            if let (Some(pid), Some(ticks)) = (pid, start_ticks) {
                process::signal_if_same(pid as u32, ticks as u64, libc::SIGTERM);
            }
            format!("job {id}: cancelling; it stops after its current shard")
        }
    })
}

/// Queues a failed, cancelled or interrupted job again. Returns a sentence for the user.
pub fn retry(store: &mut Store, id: JobId) -> Result<String, StoreError> {
    store.retry(id)?;
    Ok(format!(
        "job {id} queued again; it resumes from its last whole shard"
    ))
}

/// A message from the [`JobFeed`] thread.
#[derive(Debug, Clone, PartialEq)]
pub enum JobFeedEvent {
    /// The queue as `neuronmap jobs` lists it.
    Jobs(Vec<Job>),
    /// The store could not be read; the text says why.
    Failed(String),
}

/// A thread that reads the queue every interval and sends it, so screens never wait on the
/// database. Dropping it stops the thread.
pub struct JobFeed {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl JobFeed {
    /// Starts reading `jobs.db` in the state directory every `interval`.
    pub fn spawn(interval: Duration) -> (Self, tokio::sync::mpsc::Receiver<JobFeedEvent>) {
        let (tx, rx) = tokio::sync::mpsc::channel(2);
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut store: Option<Store> = None;
            while !flag.load(Ordering::SeqCst) {
                if store.is_none() {
                    match Store::open_default() {
                        Ok(s) => store = Some(s),
                        Err(e) => {
                            if tx
                                .blocking_send(JobFeedEvent::Failed(e.to_string()))
                                .is_err()
                            {
                                return;
                            }
                        }
                    }
                }
                if let Some(s) = &store {
                    let event = match s.list(false) {
                        Ok(jobs) => JobFeedEvent::Jobs(jobs),
                        Err(e) => JobFeedEvent::Failed(e.to_string()),
                    };
                    if tx.blocking_send(event).is_err() {
                        return;
                    }
                }
                std::thread::sleep(interval);
            }
        });
        (
            Self {
                stop,
                handle: Some(handle),
            },
            rx,
        )
    }
}

impl Drop for JobFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
