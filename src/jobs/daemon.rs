//! The scheduler daemon: one per state directory (guarded by a file lock). It polls the store,
//! places queued jobs, starts workers in their own sessions, reaps them, escalates cancels, and
//! on start-up re-adopts workers that outlived an earlier daemon or requeues their jobs.
//!
//! Stopping the daemon (SIGTERM, Ctrl-C, `kill -9`) never stops a job: workers run on and
//! report to the store themselves.

use std::collections::{HashMap, HashSet};
use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use super::engine_link;
use super::job::{Failure, JobId, JobState, Target};
use super::placement::{Limits, Load};
use super::process::{self, FileLock};
use super::scheduler::{self, Decision, EstimateCache};
use super::store::{Candidate, Ending, RunningJob, Store, StoreError};
use crate::config::JobsConfig;
use crate::telemetry::model::Frame;
use crate::telemetry::{FrameSource, Tick};

/// Lock file that marks a running daemon (holds its pid and start time).
pub const DAEMON_LOCK: &str = "daemon.lock";
/// The detached daemon's own log.
pub const DAEMON_LOG: &str = "daemon.log";

/// How often telemetry is read for placement.
const TELEMETRY_EVERY: Duration = Duration::from_secs(1);
/// A pass runs at least this often even when nothing changed in the store.
const PASS_EVERY: Duration = Duration::from_secs(2);

/// Errors that stop the daemon.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// Another daemon holds the lock.
    #[error("a neuronmap daemon already runs for this state folder (pid {pid}); stop it first or leave it running")]
    AlreadyRunning {
        /// Its pid.
        pid: u32,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// A file in the state folder could not be used.
    #[error("{path}: {source}; check the state folder's permissions")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Where the daemon keeps its files and how it runs workers.
#[derive(Debug, Clone)]
pub struct DaemonSetup {
    /// The state directory (database, logs, locks).
    pub state_dir: PathBuf,
    /// The `neuronmap` binary the workers run.
    pub exe: PathBuf,
    /// The `[jobs]` config.
    pub config: JobsConfig,
}

/// The lock file of one job's worker.
pub fn job_lock_path(state_dir: &Path, id: JobId) -> PathBuf {
    state_dir.join("locks").join(format!("job-{id}.lock"))
}

/// The log file of one job.
pub fn job_log_path(state_dir: &Path, id: JobId) -> PathBuf {
    state_dir.join("logs").join(format!("job-{id}.log"))
}

/// The pid of the daemon that runs for `state_dir`, if any.
pub fn running_daemon(state_dir: &Path) -> std::io::Result<Option<u32>> {
    Ok(process::lock_holder(&state_dir.join(DAEMON_LOCK))?.map(|(pid, _)| pid))
}

/// A worker this daemon watches.
enum Worker {
    /// Started by this daemon: its exit status is ours to read.
    Child(Child),
    /// Found alive at start-up: watched through its job lock.
    Adopted,
}

/// The daemon's state while it runs.
pub struct Daemon {
    setup: DaemonSetup,
    store: Store,
    source: Box<dyn FrameSource>,
    frame: Option<Frame>,
    frame_at: Option<Instant>,
    workers: HashMap<JobId, Worker>,
    cancel_signalled: HashSet<JobId>,
    killed_after_cancel: HashSet<JobId>,
    oom_kills_at_start: HashMap<JobId, u64>,
    cache: EstimateCache,
    _lock: FileLock,
}

impl Daemon {
    /// Takes the daemon lock, opens the store and recovers jobs left running by an earlier
    /// daemon: live workers are adopted, the jobs of dead ones requeued.
    pub fn start(setup: DaemonSetup, source: Box<dyn FrameSource>) -> Result<Self, DaemonError> {
        let io = |path: &Path| {
            let path = path.to_path_buf();
            move |source| DaemonError::Io { path, source }
        };
        for sub in ["locks", "logs"] {
            let dir = setup.state_dir.join(sub);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        let lock_path = setup.state_dir.join(DAEMON_LOCK);
        let lock = match FileLock::try_acquire(&lock_path).map_err(io(&lock_path))? {
            Some(lock) => lock,
            None => {
                let pid = running_daemon(&setup.state_dir)
                    .map_err(io(&lock_path))?
                    .unwrap_or(0);
                return Err(DaemonError::AlreadyRunning { pid });
            }
        };
        let store = Store::open(&setup.state_dir.join(super::store::DB_FILE))?;
        let mut daemon = Self {
            setup,
            store,
            source,
            frame: None,
            frame_at: None,
            workers: HashMap::new(),
            cancel_signalled: HashSet::new(),
            killed_after_cancel: HashSet::new(),
            oom_kills_at_start: HashMap::new(),
            cache: EstimateCache::default(),
            _lock: lock,
        };
        daemon.recover()?;
        Ok(daemon)
    }

    /// Runs until `stop` is set. Workers keep running after it returns.
    pub fn run(&mut self, stop: &AtomicBool) -> Result<(), DaemonError> {
        let poll = Duration::from_millis(self.setup.config.poll_interval_ms);
        let mut seen_version = None;
        let mut seen_queue = None;
        let mut last_pass: Option<Instant> = None;
        while !stop.load(Ordering::SeqCst) {
            let changed = self.reap()?;
            self.escalate_cancels()?;
            let due = last_pass.is_none_or(|t| t.elapsed() >= PASS_EVERY);
            // data_version is nearly free; the signature is read only when another connection
            // wrote, and progress reports (which change neither) cause no pass.
            let version = self.store.data_version()?;
            let mut queue_changed = false;
            if seen_version != Some(version) {
                seen_version = Some(version);
                let signature = self.store.queue_signature()?;
                queue_changed = seen_queue != Some(signature);
                seen_queue = Some(signature);
            }
            if changed || due || queue_changed {
                self.pass()?;
                // Our own writes in the pass do not change data_version for this connection.
                seen_queue = Some(self.store.queue_signature()?);
                last_pass = Some(Instant::now());
            }
            std::thread::sleep(poll);
        }
        tracing::info!(
            workers = self.workers.len(),
            "daemon stopping; running workers carry on"
        );
        Ok(())
    }

    /// The job ids of workers this daemon watches.
    pub fn watched(&self) -> Vec<JobId> {
        let mut ids: Vec<JobId> = self.workers.keys().copied().collect();
        ids.sort();
        ids
    }

    fn recover(&mut self) -> Result<(), DaemonError> {
        for job in self.store.running()? {
            let lock = job_lock_path(&self.setup.state_dir, job.id);
            let holder = process::lock_holder(&lock).map_err(|source| DaemonError::Io {
                path: lock.clone(),
                source,
            })?;
            match holder {
                // The lock is held only while its worker lives, so a held lock means alive;
                // the pid and start time it names are what cancel signals later.
                Some((pid, ticks)) => {
                    tracing::info!(
                        job = %job.id,
                        pid,
                        verified = process::is_same_process(pid, ticks),
                        "re-adopted a live worker"
                    );
                    if job.pid != Some(i64::from(pid)) {
                        self.store.set_worker(job.id, pid, ticks)?;
                    }
                    self.workers.insert(job.id, Worker::Adopted);
                }
                None => {
                    let why = match job.pid {
                        Some(pid) => format!("worker (pid {pid}) ended while no daemon watched it"),
                        None => "the daemon stopped before its worker started".to_string(),
                    };
                    tracing::info!(job = %job.id, "{why}; requeued");
                    self.store.interrupt_and_requeue(job.id, &why)?;
                }
            }
        }
        Ok(())
    }

    /// Collects finished workers; true if any finished.
    fn reap(&mut self) -> Result<bool, DaemonError> {
        let mut ended: Vec<(JobId, Option<ExitStatus>)> = Vec::new();
        for (id, worker) in &mut self.workers {
            match worker {
                Worker::Child(child) => match child.try_wait() {
                    Ok(Some(status)) => ended.push((*id, Some(status))),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::warn!(job = %id, "cannot wait for worker: {e}");
                        ended.push((*id, None));
                    }
                },
                Worker::Adopted => {
                    let lock = job_lock_path(&self.setup.state_dir, *id);
                    if matches!(process::lock_holder(&lock), Ok(None)) {
                        ended.push((*id, None));
                    }
                }
            }
        }
        let any = !ended.is_empty();
        for (id, status) in ended {
            self.workers.remove(&id);
            self.cancel_signalled.remove(&id);
            let killed_by_us = self.killed_after_cancel.remove(&id);
            let oom_before = self.oom_kills_at_start.remove(&id);
            let oom_killed = matches!(
                (oom_before, process::cgroup_oom_kills()),
                (Some(before), Some(now)) if now > before
            );
            self.worker_ended(id, status, killed_by_us, oom_killed)?;
        }
        Ok(any)
    }

    /// Records how a worker ended when it could not say so itself.
    fn worker_ended(
        &mut self,
        id: JobId,
        status: Option<ExitStatus>,
        killed_by_us: bool,
        oom_killed: bool,
    ) -> Result<(), DaemonError> {
        if self.store.state_of(id)? != Some(JobState::Running) {
            return Ok(()); // The worker reported its result.
        }
        let timeout = self.setup.config.cancel_timeout_seconds;
        let ending = match status {
            _ if killed_by_us => Ending {
                state: JobState::Cancelled,
                failure: None,
                error: None,
                reason: format!(
                    "cancelled; killed after it did not stop within {timeout} s (cancel_timeout_seconds)"
                ),
            },
            Some(status) => match (status.signal(), status.code()) {
                (Some(libc::SIGKILL), _) if oom_killed => {
                    let message = format!(
                        "worker killed by the kernel's out-of-memory killer (SIGKILL while the cgroup's oom_kill count rose); lower --batch or --max-len, then `neuronmap retry {id}`"
                    );
                    Ending {
                        state: JobState::Failed,
                        failure: Some(Failure::Oom),
                        error: Some(message.clone()),
                        reason: message,
                    }
                }
                (Some(signal), _) => {
                    let name = process::signal_name(signal);
                    let hint = if signal == libc::SIGKILL {
                        " (kill -9 or the kernel's out-of-memory killer)"
                    } else {
                        ""
                    };
                    let message = format!("worker killed by {name}{hint}; `neuronmap retry {id}` resumes from the last whole shard");
                    Ending {
                        state: JobState::Failed,
                        failure: Some(Failure::Signal { signal }),
                        error: Some(message.clone()),
                        reason: message,
                    }
                }
                (None, Some(code)) => {
                    let message = format!("worker exited with status {code} without reporting a result; see `neuronmap logs {id}`");
                    Ending {
                        state: JobState::Failed,
                        failure: Some(Failure::ExitCode { code }),
                        error: Some(message.clone()),
                        reason: message,
                    }
                }
                (None, None) => unknown_status(id),
            },
            None => {
                // An adopted worker: its exit status went to its original parent.
                self.store.interrupt_and_requeue(
                    id,
                    "adopted worker ended without reporting a result (exit status unknown)",
                )?;
                return Ok(());
            }
        };
        self.store.finish(id, &ending)?;
        Ok(())
    }

    /// Sends SIGTERM to workers of jobs with a cancel request, SIGKILL after the timeout.
    fn escalate_cancels(&mut self) -> Result<(), DaemonError> {
        let timeout_ms = self.setup.config.cancel_timeout_seconds as i64 * 1000;
        let now = super::store::now_ms();
        for job in self.store.running()? {
            let (Some(requested), Some(pid), Some(ticks)) =
                (job.cancel_requested_ms, job.pid, job.pid_start_ticks)
            else {
                continue;
            };
            let (pid, ticks) = (pid as u32, ticks as u64);
            if self.cancel_signalled.insert(job.id) {
                process::signal_if_same(pid, ticks, libc::SIGTERM);
            } else if now - requested > timeout_ms
                && !self.killed_after_cancel.contains(&job.id)
                && process::signal_if_same(pid, ticks, libc::SIGKILL)
            {
                self.killed_after_cancel.insert(job.id);
            }
        }
        Ok(())
    }

    fn refresh_frame(&mut self) {
        if self.frame_at.is_some_and(|t| t.elapsed() < TELEMETRY_EVERY) {
            return;
        }
        match self.source.next_tick() {
            Tick::Frame { frame, .. } => self.frame = Some(*frame),
            Tick::End => {}
            Tick::Failed(message) => tracing::warn!("telemetry: {message}"),
        }
        self.frame_at = Some(Instant::now());
    }

    /// One scheduling pass over the queue.
    fn pass(&mut self) -> Result<(), DaemonError> {
        self.refresh_frame();
        let Some(frame) = self.frame.clone() else {
            return Ok(());
        };
        let candidates = self.store.candidates()?;
        self.cache.retain(&candidates);
        if candidates.is_empty() {
            return Ok(());
        }
        let cfg = &self.setup.config;
        let cores = if frame.host.per_core_percent.is_empty() {
            std::thread::available_parallelism().map_or(1, |n| n.get())
        } else {
            frame.host.per_core_percent.len()
        };
        let limits = Limits {
            margin: cfg.memory_margin,
            max_jobs_per_gpu: cfg.max_jobs_per_gpu,
            cpu_slots: scheduler::cpu_slots(cores, cfg.cpu_cores_per_job),
        };
        let mut loads: Vec<Load> = self
            .store
            .running()?
            .iter()
            .filter_map(|j| load_of(j, &frame, limits.margin))
            .collect();
        let store = &self.store;
        let mut dependency = |id: JobId| store.state_of(id).ok().flatten();
        let mut estimate = |c: &Candidate, target: Target| {
            engine_link::estimate_peak_bytes(&c.spec, target, &frame)
        };
        let decisions = scheduler::plan(
            &candidates,
            &frame,
            &mut loads,
            &limits,
            &mut self.cache,
            &mut dependency,
            &mut estimate,
        );
        let stored: HashMap<JobId, Option<String>> = candidates
            .into_iter()
            .map(|c| (c.id, c.wait_reason))
            .collect();
        for decision in decisions {
            match decision {
                Decision::Start {
                    id,
                    target,
                    estimate_bytes,
                } => self.launch(id, target, estimate_bytes)?,
                Decision::Wait { id, reason } => {
                    if stored.get(&id).and_then(|r| r.as_deref()) != Some(reason.as_str()) {
                        self.store.set_wait_reason(id, Some(&reason))?;
                    }
                }
                Decision::Fail { id, error } => {
                    self.store.fail_queued(id, Failure::Engine, &error)?;
                }
            }
        }
        Ok(())
    }

    /// Marks the job running and starts its worker in a new session.
    fn launch(&mut self, id: JobId, target: Target, estimate: u64) -> Result<(), DaemonError> {
        if !self.store.start(id, target, Some(estimate))? {
            return Ok(());
        }
        let attempt = self.store.get(id)?.attempts;
        match self.spawn_worker(id, attempt, target) {
            Ok(child) => {
                let pid = child.id();
                if let Some(count) = process::cgroup_oom_kills() {
                    self.oom_kills_at_start.insert(id, count);
                }
                if let Some(ticks) = process::start_ticks(pid) {
                    self.store.set_worker(id, pid, ticks)?;
                }
                tracing::info!(job = %id, pid, %target, "worker started");
                self.workers.insert(id, Worker::Child(child));
            }
            Err(e) => {
                let message = format!("cannot start the worker process: {e}");
                self.store.finish(
                    id,
                    &Ending {
                        state: JobState::Failed,
                        failure: Some(Failure::Spawn),
                        error: Some(message.clone()),
                        reason: message,
                    },
                )?;
            }
        }
        Ok(())
    }

    fn spawn_worker(&self, id: JobId, attempt: i64, target: Target) -> std::io::Result<Child> {
        let log_path = job_log_path(&self.setup.state_dir, id);
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&log_path)?;
        let mut cmd = Command::new(&self.setup.exe);
        cmd.arg("worker")
            .arg("--job")
            .arg(id.to_string())
            .arg("--attempt")
            .arg(attempt.to_string())
            .arg("--shard-mib")
            .arg(self.setup.config.shard_mib.to_string())
            .env(crate::paths::STATE_DIR_ENV, &self.setup.state_dir)
            .env("CUDA_DEVICE_ORDER", "PCI_BUS_ID")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        match target {
            Target::Gpu(index) => {
                cmd.env("CUDA_VISIBLE_DEVICES", index.to_string());
            }
            Target::Cpu => {
                let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
                let threads = (self.setup.config.cpu_cores_per_job as usize).min(cores);
                cmd.env("CUDA_VISIBLE_DEVICES", "")
                    .env("RAYON_NUM_THREADS", threads.to_string());
            }
        }
        process::detach_session(&mut cmd).spawn()
    }
}

/// What a running job may still add on its device: its estimate with the margin, less what it
/// holds now (its reported peak, or what NVML says its process holds on the GPU).
fn load_of(job: &RunningJob, frame: &Frame, margin: f64) -> Option<Load> {
    let target = job.placement?;
    let mut held = job.peak_memory_bytes.unwrap_or(0).max(0) as u64;
    if let (Target::Gpu(index), Some(pid)) = (target, job.pid) {
        let on_gpu = frame
            .gpus
            .iter()
            .filter(|g| g.index == index)
            .flat_map(|g| &g.processes)
            .filter(|p| i64::from(p.pid) == pid)
            .filter_map(|p| p.gpu_memory_bytes)
            .max()
            .unwrap_or(0);
        held = held.max(on_gpu);
    }
    let estimate = job.estimate_bytes.unwrap_or(0).max(0) as u64;
    Some(Load::new(target, estimate, held, margin))
}

/// An exit status with neither a code nor a signal does not occur on Unix; treat it as a
/// failure that says so rather than panicking.
fn unknown_status(id: JobId) -> Ending {
    let message = format!("worker ended with an unknown status; see `neuronmap logs {id}`");
    Ending {
        state: JobState::Failed,
        failure: None,
        error: Some(message.clone()),
        reason: message,
    }
}

/// Starts `exe daemon ARGS...` in its own session with its output in `daemon.log`, without
/// waiting for it; returns its pid. A second daemon started this way exits at once when one
/// already runs, so racing callers are harmless.
pub fn spawn_detached(
    state_dir: &Path,
    exe: &Path,
    args: &[std::ffi::OsString],
) -> std::io::Result<u32> {
    let log = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(state_dir.join(DAEMON_LOG))?;
    let mut cmd = Command::new(exe);
    cmd.arg("daemon")
        .args(args)
        .env(crate::paths::STATE_DIR_ENV, state_dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log);
    let child = process::detach_session(&mut cmd).spawn()?;
    Ok(child.id())
}
