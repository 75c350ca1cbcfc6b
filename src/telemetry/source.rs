//! The sources of telemetry: the `GpuSource` trait (NVML, replayed traces, test doubles) and the
//! `FrameSource` trait the sampler thread drives.

use std::time::Duration;

use super::model::{DriverInfo, Frame, GpuSample, GpuStatic};

/// Something that can report on a set of GPUs: NVML on a live machine, or a recorded trace.
pub trait GpuSource: Send {
    /// Driver status and versions, read once.
    fn driver(&self) -> DriverInfo;
    /// Static facts about every GPU, in index order, read once.
    fn devices(&self) -> Vec<GpuStatic>;
    /// One sample per GPU (same order as [`GpuSource::devices`]). A GPU that fails is returned as
    /// a lost sample; this call never fails as a whole.
    fn sample(&mut self) -> Vec<GpuSample>;
}

/// What the sampler gets on each tick.
#[derive(Debug, Clone, PartialEq)]
pub enum Tick {
    /// A new frame, and how long to wait before asking again (`None`: the configured interval).
    Frame {
        /// The frame.
        frame: Box<Frame>,
        /// Wait that the source asks for (a replay follows its trace's timing).
        wait: Option<Duration>,
    },
    /// The source has nothing more to give (the end of a trace that does not loop).
    End,
    /// The source broke and cannot go on (a corrupt trace line); the text says why.
    Failed(String),
}

/// A source of whole frames (GPUs and host together) for the sampler thread.
pub trait FrameSource: Send {
    /// Produces the next frame.
    fn next_tick(&mut self) -> Tick;
}

/// Errors that stop telemetry from starting at all (a lost GPU or a missing driver is not an
/// error: it is shown in the frame).
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The trace file could not be opened.
    #[error("cannot open trace {path}: {source}; check the path given to --replay")]
    OpenTrace {
        /// The trace file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A line of the trace is not valid.
    #[error("trace {path}, line {line}: {message}; the file is truncated or corrupt (re-record it with `neuronmap record`)")]
    BadTrace {
        /// The trace file.
        path: std::path::PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong with it.
        message: String,
    },
    /// The trace was written by an incompatible version.
    #[error("trace {path} has schema version {found}, this build reads version {expected}; re-record it with this version of neuronmap")]
    TraceVersion {
        /// The trace file.
        path: std::path::PathBuf,
        /// Version in the file.
        found: u32,
        /// Version this build understands.
        expected: u32,
    },
    /// The trace has a header but no samples.
    #[error("trace {path} holds no samples; record at least one with `neuronmap record`")]
    EmptyTrace {
        /// The trace file.
        path: std::path::PathBuf,
    },
    /// Host telemetry (sysinfo) could not start.
    #[error("cannot read host statistics: {0}")]
    Host(String),
    /// Writing a trace failed.
    #[error("cannot write trace {path}: {source}")]
    WriteTrace {
        /// The trace file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}
