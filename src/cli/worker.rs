//! `neuronmap worker --job ID --attempt N`: runs one job. Started by the daemon, not by hand.

use std::process::ExitCode;

use clap::Args;

use crate::jobs::job::JobId;
use crate::jobs::worker::{self, WorkerExit};

/// Arguments of `neuronmap worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// The job to run.
    #[arg(long)]
    pub job: JobId,
    /// The attempt the daemon started this worker for.
    #[arg(long)]
    pub attempt: i64,
    /// Target shard size in MiB (the daemon passes `jobs.shard_mib`).
    #[arg(long, default_value_t = 256)]
    pub shard_mib: u64,
}

/// Runs the job and records its result in the store.
pub fn run(args: &WorkerArgs) -> anyhow::Result<ExitCode> {
    let state_dir = crate::paths::state_dir()?;
    match worker::run(&state_dir, args.job, args.attempt, args.shard_mib << 20)? {
        WorkerExit::Reported(_) => {}
        WorkerExit::Stale(why) => eprintln!("neuronmap worker: nothing to do: {why}"),
    }
    Ok(ExitCode::SUCCESS)
}
