//! Command-line interface: argument structs and output formatting only. Each subcommand lives in
//! its own file and calls the same library functions as the dashboard.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;

/// Exit status for user errors (bad flags, bad config, unknown model, unreadable file).
pub const EXIT_ERROR: u8 = 2;

/// NeuronMap: live GPU panels, a model x analysis compatibility matrix and a job queue for
/// activation-extraction jobs, in one terminal screen.
#[derive(Debug, Parser)]
#[command(name = "neuronmap", version, about, long_about = None)]
pub struct Cli {
    /// Options shared by every subcommand.
    #[command(flatten)]
    pub global: GlobalArgs,
    /// What to do; without a subcommand the dashboard starts.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Options that apply to the dashboard and to every subcommand.
#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Config file (default: $NEURONMAP_CONFIG, then ~/.config/neuronmap/config.toml).
    #[arg(long, global = true, value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Drive the dashboard (and `snapshot`) from a recorded trace instead of live NVML.
    #[arg(long, global = true, value_name = "FILE")]
    pub replay: Option<PathBuf>,
    /// Replay speed factor (2 = twice as fast).
    #[arg(long, global = true, default_value_t = 1.0, value_name = "X")]
    pub speed: f64,
    /// Start the replay again when the trace ends.
    #[arg(long = "loop", global = true)]
    pub loop_replay: bool,
    /// Turn colours off (also: NO_COLOR=1).
    #[arg(long, global = true)]
    pub no_color: bool,
    /// ASCII only: no box-drawing, block or braille characters.
    #[arg(long, global = true)]
    pub ascii: bool,
    /// Sample interval in milliseconds (overrides the config; 100 to 60000).
    #[arg(long, global = true, value_name = "MS")]
    pub interval: Option<u64>,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {}

/// Runs the parsed command line and returns the process exit status.
pub fn run(cli: Cli) -> ExitCode {
    match dispatch(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("neuronmap: error: {err:#}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = Config::load(cli.global.config.as_deref())?;
    match cli.command {
        None => {
            crate::tui::run(&cli.global, &config)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
