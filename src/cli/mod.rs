//! Command-line interface: argument structs and output formatting only. Each subcommand lives in
//! its own file and calls the same library functions as the dashboard.

pub mod check;
pub mod daemon;
pub mod extract;
pub mod jobs;
pub mod models;
pub mod pull;
pub mod record;
pub mod snapshot;
pub mod submit;
pub mod worker;

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

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
pub enum Command {
    /// Print one frame (GPUs, host, GPU processes) as text or JSON and exit.
    Snapshot(snapshot::SnapshotArgs),
    /// Record samples to a JSON-lines trace for `--replay`.
    Record(record::RecordArgs),
    /// Queue an extraction job (the extract flags plus --priority, --after, --device); prints its id.
    Submit(submit::SubmitArgs),
    /// List jobs (a table, or --json).
    Jobs(jobs::JobsArgs),
    /// Show one job: spec, progress, events and its last log lines.
    Show(jobs::ShowArgs),
    /// Print a job's log (-f follows it).
    Logs(jobs::LogsArgs),
    /// Cancel a job (a running one stops after its current shard).
    Cancel(jobs::JobArg),
    /// Queue a failed, cancelled or interrupted job again; it resumes from its last whole shard.
    Retry(jobs::JobArg),
    /// Remove a job that is not running (its output folder stays).
    Rm(jobs::JobArg),
    /// Keep a queued job from starting until it is released.
    Hold(jobs::JobArg),
    /// Let a held job start.
    Release(jobs::JobArg),
    /// Run the job scheduler (foreground; --detach to run it in the background).
    Daemon(daemon::DaemonArgs),
    /// Run one job (started by the daemon).
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
    /// Extract activations, statistics or attention patterns from a model (foreground).
    Extract(extract::ExtractArgs),
    /// List known models (registry, Hugging Face cache, configured folders).
    Models(models::ModelsArgs),
    /// Download a model into the Hugging Face cache.
    Pull(pull::PullArgs),
    /// Estimate memory and time of a model x analysis and say where it fits.
    Check(check::CheckArgs),
}

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
    if !(cli.global.speed.is_finite() && cli.global.speed > 0.0) {
        anyhow::bail!(
            "--speed must be a positive number, got {}",
            cli.global.speed
        );
    }
    match &cli.command {
        None => {
            crate::paths::init_file_logging();
            crate::tui::run(&cli.global, &config)?;
            Ok(ExitCode::SUCCESS)
        }
        Some(Command::Snapshot(args)) => snapshot::run(args, &cli.global, &config),
        Some(Command::Record(args)) => {
            crate::paths::init_file_logging();
            record::run(args, &cli.global, &config)
        }
        Some(Command::Submit(args)) => submit::run(args, &cli.global, &config),
        Some(Command::Jobs(args)) => jobs::list(args),
        Some(Command::Show(args)) => jobs::show(args),
        Some(Command::Logs(args)) => jobs::logs(args),
        Some(Command::Cancel(args)) => jobs::cancel(args, &config),
        Some(Command::Retry(args)) => jobs::retry(args, &cli.global, &config),
        Some(Command::Rm(args)) => jobs::remove(args),
        Some(Command::Hold(args)) => jobs::hold(args, true),
        Some(Command::Release(args)) => jobs::hold(args, false),
        Some(Command::Daemon(args)) => daemon::run(args, &cli.global, &config),
        Some(Command::Worker(args)) => worker::run(args),
        Some(Command::Extract(args)) => extract::run(args),
        Some(Command::Models(args)) => models::run(args, &cli.global, &config),
        Some(Command::Pull(args)) => pull::run(args, &cli.global, &config),
        Some(Command::Check(args)) => check::run(args, &cli.global, &config),
    }
}

/// The sample interval: `--interval` if given, else the config's; both limited to 100 ms..60 s.
pub fn sample_interval(global: &GlobalArgs, config: &Config) -> anyhow::Result<Duration> {
    let ms = global.interval.unwrap_or(config.telemetry.interval_ms);
    anyhow::ensure!(
        (100..=60_000).contains(&ms),
        "--interval must be between 100 and 60000 milliseconds, got {ms}"
    );
    Ok(Duration::from_millis(ms))
}

/// Writes to stdout; a closed pipe (`neuronmap snapshot | head -1`) is not an error.
pub fn print_stdout(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// Ctrl-C, SIGTERM and SIGHUP, as one async stream of "please stop".
pub struct StopSignals {
    term: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    /// Installs the handlers (must run inside a tokio runtime).
    pub fn new() -> std::io::Result<Self> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            hup: signal(SignalKind::hangup())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves when any of the signals arrives.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.hup.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
