//! `neuronmap daemon [--detach]`: the scheduler. In the foreground until Ctrl-C or SIGTERM;
//! `--detach` starts it in its own session with its output in `<state>/daemon.log`. Stopping
//! it never stops a job.

use std::ffi::OsString;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::Args;

use super::GlobalArgs;
use crate::config::Config;
use crate::jobs::daemon::{self, Daemon, DaemonSetup, DAEMON_LOG};
use crate::jobs::process;

/// Arguments of `neuronmap daemon`.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Start in the background (own session, output to <state dir>/daemon.log) and return.
    #[arg(long)]
    pub detach: bool,
}

/// Runs the daemon in the foreground, or starts it detached.
pub fn run(args: &DaemonArgs, global: &GlobalArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let state_dir = crate::paths::state_dir()?;
    if args.detach {
        if let Some(pid) = daemon::running_daemon(&state_dir)? {
            anyhow::bail!("a neuronmap daemon already runs (pid {pid})");
        }
        let pid = start_detached(global)?;
        super::print_stdout(&format!(
            "neuronmap daemon started (pid {pid}); log: {}\n",
            state_dir.join(DAEMON_LOG).display()
        ))?;
        return Ok(ExitCode::SUCCESS);
    }
    crate::paths::init_file_logging();
    let (source, _) = crate::telemetry::open_source(global)?;
    let setup = DaemonSetup {
        state_dir: state_dir.clone(),
        exe: std::env::current_exe()?,
        config: config.jobs.clone(),
    };
    let stop = process::stop_flag();
    let mut daemon = Daemon::start(setup, source)?;
    eprintln!(
        "neuronmap daemon running (pid {}) for {}; Ctrl-C stops it, running jobs carry on",
        std::process::id(),
        state_dir.display()
    );
    daemon.run(stop)?;
    let left = daemon.watched();
    if !left.is_empty() {
        eprintln!(
            "neuronmap daemon stopped; {} job(s) still running will be re-adopted by the next daemon",
            left.len()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Starts a detached daemon that uses the same config and telemetry flags as this command,
/// and waits until it holds its lock (or 3 s pass). Returns its pid.
pub fn start_detached(global: &GlobalArgs) -> anyhow::Result<u32> {
    let state_dir = crate::paths::state_dir()?;
    let mut args: Vec<OsString> = Vec::new();
    if let Some(config) = &global.config {
        args.push("--config".into());
        args.push(std::path::absolute(config)?.into_os_string());
    }
    if let Some(replay) = &global.replay {
        args.push("--replay".into());
        args.push(std::path::absolute(replay)?.into_os_string());
        args.push("--loop".into());
    }
    let pid = daemon::spawn_detached(&state_dir, &std::env::current_exe()?, &args)?;
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline {
        if daemon::running_daemon(&state_dir)?.is_some() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(pid)
}

/// Starts a daemon when none runs and the config allows it; returns its pid if one started.
pub fn ensure_running(global: &GlobalArgs, config: &Config) -> anyhow::Result<Option<u32>> {
    let state_dir = crate::paths::state_dir()?;
    if !config.jobs.auto_start_daemon || daemon::running_daemon(&state_dir)?.is_some() {
        return Ok(None);
    }
    start_detached(global).map(Some)
}
