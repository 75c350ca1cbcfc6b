//! NeuronMap: a terminal dashboard for GPU machines that run neural-network analysis jobs.
//!
//! The library is split by part of the design (see DESIGN.md in the README):
//! - [`telemetry`]: GPU (NVML or a replayed trace) and host (sysinfo) sampling, histories.
//! - [`config`]: the config file.
//! - [`models`]: the model catalogue (registry, Hugging Face cache, folders, safetensors headers).
//! - [`engine`]: hooked forward passes on candle and streamed extraction to safetensors shards.
//! - [`estimate`]: memory and time estimates of a request on a device, and verdicts.
//! - [`jobs`]: the persistent job queue (SQLite), the scheduler daemon and its workers.
//! - [`tui`]: the dashboard (ratatui); only this and [`cli`] know about terminals.
//! - [`cli`]: the subcommands, each a thin layer over the library calls above.

// Links MKL's BLAS into the binary when candle is built with `--features mkl`.
#[cfg(feature = "mkl")]
extern crate intel_mkl_src;

pub mod cli;
pub mod config;
pub mod engine;
pub mod estimate;
pub mod jobs;
pub mod models;
pub mod paths;
pub mod telemetry;
pub mod tui;
