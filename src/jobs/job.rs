//! The job as the queue sees it: its id, state, where it may and does run, why it failed, and the
//! row that `neuronmap jobs --json` prints.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::engine::request::{ExtractRequest, RunProgress};

/// A job's id: a positive integer, assigned in submission order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct JobId(pub i64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl FromStr for JobId {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().trim_start_matches('#').parse::<i64>() {
            Ok(n) if n > 0 => Ok(Self(n)),
            _ => Err(format!(
                "`{s}` is not a job id (a positive number, as `neuronmap jobs` lists)"
            )),
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a device, a dependency, or a release from hold.
    Queued,
    /// A worker process runs it.
    Running,
    /// The run completed.
    Succeeded,
    /// The run failed; `failure` says why.
    Failed,
    /// Cancelled by the user (a running job stops after its current shard).
    Cancelled,
    /// Its worker vanished while no daemon watched it; it is requeued to resume.
    Interrupted,
}

impl JobState {
    /// Every state, in lifecycle order.
    pub const ALL: [JobState; 6] = [
        Self::Queued,
        Self::Running,
        Self::Succeeded,
        Self::Failed,
        Self::Cancelled,
        Self::Interrupted,
    ];

    /// The word stored in the database and printed by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
            Self::Interrupted => "interrupted",
        }
    }

    /// True for states a job never leaves on its own (retry moves failed, cancelled and
    /// interrupted jobs back to the queue).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

impl fmt::Display for JobState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for JobState {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown job state `{s}`"))
    }
}

/// Where the user allows a job to run (`--device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DeviceRequest {
    /// The CPU only.
    Cpu,
    /// One GPU, by NVML index.
    Cuda(u32),
    /// Any GPU that fits, else the CPU.
    Any,
}

impl fmt::Display for DeviceRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Cuda(n) => write!(f, "cuda:{n}"),
            Self::Any => f.write_str("any"),
        }
    }
}

impl FromStr for DeviceRequest {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "cpu" => Ok(Self::Cpu),
            "any" => Ok(Self::Any),
            "cuda" => Ok(Self::Cuda(0)),
            other => other
                .strip_prefix("cuda:")
                .and_then(|n| n.parse().ok())
                .map(Self::Cuda)
                .ok_or_else(|| format!("device must be cpu, cuda:N or any, got `{other}`")),
        }
    }
}

/// Where the scheduler placed a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Target {
    /// The CPU.
    Cpu,
    /// The GPU with this NVML index.
    Gpu(u32),
}

impl Target {
    /// The device string the engine takes: `cpu`, or `cuda:0` because the worker sees only its
    /// GPU through `CUDA_VISIBLE_DEVICES`.
    pub fn engine_device(self) -> &'static str {
        match self {
            Self::Cpu => "cpu",
            Self::Gpu(_) => "cuda:0",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cpu => f.write_str("cpu"),
            Self::Gpu(n) => write!(f, "cuda:{n}"),
        }
    }
}

impl FromStr for Target {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.parse::<DeviceRequest>()? {
            DeviceRequest::Cpu => Ok(Self::Cpu),
            DeviceRequest::Cuda(n) => Ok(Self::Gpu(n)),
            DeviceRequest::Any => Err("a placement is cpu or cuda:N, not any".into()),
        }
    }
}

/// Why a job failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Failure {
    /// The worker exited with this status without reporting a result.
    ExitCode {
        /// The exit status.
        code: i32,
    },
    /// The worker was killed by this signal (9 after `kill -9` or the kernel's OOM killer).
    Signal {
        /// The signal number.
        signal: i32,
    },
    /// The run ran out of memory (the engine said so).
    Oom,
    /// The engine or the estimator reported an error (the message is in `error`).
    Engine,
    /// The worker process could not be started.
    Spawn,
}

impl Failure {
    /// Short label for tables: `exit 3`, `signal 9`, `oom`, `engine`, `spawn`.
    pub fn label(self) -> String {
        match self {
            Self::ExitCode { code } => format!("exit {code}"),
            Self::Signal { signal } => format!("signal {signal}"),
            Self::Oom => "oom".into(),
            Self::Engine => "engine".into(),
            Self::Spawn => "spawn".into(),
        }
    }
}

/// What the submitter asked for, besides the extraction itself.
#[derive(Debug, Clone, PartialEq)]
pub struct Submission {
    /// The extraction (paths already absolute).
    pub request: ExtractRequest,
    /// Higher runs first.
    pub priority: i64,
    /// Run only after this job succeeded.
    pub after: Option<JobId>,
    /// Where the job may run.
    pub device: DeviceRequest,
    /// Submit held (it waits until released).
    pub held: bool,
}

/// One job as stored, with its latest progress.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Job {
    /// Schema version of this JSON object.
    pub schema_version: u32,
    /// The id.
    pub id: JobId,
    /// Lifecycle state.
    pub state: JobState,
    /// The model named in the spec.
    pub model: String,
    /// The analysis named in the spec.
    pub analysis: String,
    /// Where the job may run (`cpu`, `cuda:N`, `any`).
    pub device: String,
    /// Where it runs or ran (`cpu`, `cuda:N`), once placed.
    pub placement: Option<String>,
    /// Output folder.
    pub output: String,
    /// Priority (higher first).
    pub priority: i64,
    /// The job this one waits for.
    pub after: Option<JobId>,
    /// Held jobs wait until released.
    pub held: bool,
    /// Prompts done over prompts in the dataset, 0 to 1.
    pub progress: f64,
    /// Why a queued job waits (`None` while running or finished).
    pub wait_reason: Option<String>,
    /// The error message of a failed job.
    pub error: Option<String>,
    /// Structured failure reason.
    pub failure: Option<Failure>,
    /// Submission time, ms since the epoch.
    pub submitted_ms: i64,
    /// Start of the latest attempt.
    pub started_ms: Option<i64>,
    /// End of the latest attempt.
    pub finished_ms: Option<i64>,
    /// Number of times a worker was started.
    pub attempts: i64,
    /// Worker process id while running.
    pub pid: Option<i64>,
    /// Estimated peak memory on the placement's device.
    pub estimate_bytes: Option<i64>,
    /// Latest progress report.
    pub run: RunProgress,
    /// True once a cancel was requested.
    pub cancel_requested: bool,
    /// The full extraction spec.
    pub spec: ExtractRequest,
}

/// One state change with its reason.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct JobEvent {
    /// When, ms since the epoch.
    pub at_ms: i64,
    /// The job.
    pub job: JobId,
    /// The state before (none for the submission).
    pub from: Option<JobState>,
    /// The state after.
    pub to: JobState,
    /// Why.
    pub reason: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_requests_round_trip() {
        for s in ["cpu", "any", "cuda:3"] {
            assert_eq!(s.parse::<DeviceRequest>().unwrap().to_string(), s);
        }
        assert!("gpu".parse::<DeviceRequest>().is_err());
        assert!("cuda:x".parse::<DeviceRequest>().is_err());
    }

    #[test]
    fn states_round_trip_and_finished_ones_are_terminal() {
        for st in JobState::ALL {
            assert_eq!(st.as_str().parse::<JobState>().unwrap(), st);
        }
        assert!(JobState::Succeeded.is_finished());
        assert!(!JobState::Interrupted.is_finished());
    }

    #[test]
    fn job_ids_must_be_positive() {
        assert_eq!("#12".parse::<JobId>().unwrap(), JobId(12));
        assert!("0".parse::<JobId>().is_err());
        assert!("abc".parse::<JobId>().is_err());
    }
}
