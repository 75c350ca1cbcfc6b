//! GPU and host telemetry: the data model, the sources (NVML, replayed traces, sysinfo), the
//! sampler thread and the bounded histories the panels draw from.

pub mod history;
pub mod host;
pub mod live;
pub mod model;
pub mod nvml;
pub mod replay;
pub mod sampler;
pub mod source;
pub mod synthetic;
pub mod trace;

use std::path::PathBuf;

pub use source::{FrameSource, GpuSource, TelemetryError, Tick};

use crate::cli::GlobalArgs;
use crate::config::Config;
use model::Frame;

/// Where the frames come from, for the dashboard's header and for trace headers.
#[derive(Debug, Clone, PartialEq)]
pub enum Origin {
    /// NVML and sysinfo on this machine.
    Live,
    /// A recorded trace.
    Replay {
        /// The trace file.
        path: PathBuf,
        /// The trace header's `source` (`nvml`, `synthetic`, ...).
        recorded_from: String,
    },
}

/// Opens the source the command line asks for: `--replay FILE` (with `--speed`, `--loop`) or
/// the live machine.
pub fn open_source(global: &GlobalArgs) -> Result<(Box<dyn FrameSource>, Origin), TelemetryError> {
    match &global.replay {
        Some(path) => {
            let replay = replay::ReplaySource::open(path, global.speed, global.loop_replay)?;
            let origin = Origin::Replay {
                path: path.clone(),
                recorded_from: replay.header().source.clone(),
            };
            Ok((Box::new(replay), origin))
        }
        None => Ok((Box::new(live::LiveSource::open()?), Origin::Live)),
    }
}

/// One frame, now: the first frame of `--replay FILE`, or a live reading whose CPU figures are
/// measured over a short window. Used by `snapshot`, `check` and other one-shot commands.
pub fn current_frame(global: &GlobalArgs, _config: &Config) -> Result<Frame, TelemetryError> {
    match &global.replay {
        Some(path) => {
            let mut replay = replay::ReplaySource::open(path, 1.0, false)?;
            match replay.next_tick() {
                Tick::Frame { frame, .. } => Ok(*frame),
                Tick::End => Err(TelemetryError::EmptyTrace { path: path.clone() }),
                Tick::Failed(message) => Err(TelemetryError::BadTrace {
                    path: path.clone(),
                    line: 2,
                    message,
                }),
            }
        }
        None => Ok(live::LiveSource::open()?.measured_frame()),
    }
}
