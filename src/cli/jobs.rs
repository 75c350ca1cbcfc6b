//! The job commands besides `submit`: `jobs` (list), `show`, `logs`, `cancel`, `retry`, `rm`,
//! `hold` and `release`. Each reads or changes the store and, where a worker must hear about
//! it, signals the worker directly, so they work with or without a running daemon.

use std::io::{Read, Seek, SeekFrom};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::GlobalArgs;
use crate::config::Config;
use crate::jobs::client;
use crate::jobs::daemon::{job_lock_path, job_log_path, running_daemon};
use crate::jobs::job::{Job, JobId, JobState};
use crate::jobs::store::Store;

/// Arguments of `neuronmap jobs`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    /// Every finished job too (default: active jobs and the 20 newest finished ones).
    #[arg(long)]
    pub all: bool,
    /// A JSON array of jobs (each with `schema_version`).
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `neuronmap show`.
#[derive(Debug, Args)]
pub struct ShowArgs {
    /// The job.
    pub job: JobId,
    /// The job and its events as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `neuronmap logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// The job.
    pub job: JobId,
    /// Keep printing new lines until the job ends.
    #[arg(short, long)]
    pub follow: bool,
}

/// Arguments of the commands that act on one job.
#[derive(Debug, Args)]
pub struct JobArg {
    /// The job.
    pub job: JobId,
}

/// `neuronmap jobs`.
pub fn list(args: &JobsArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open_default()?;
    let jobs = store.list(args.all)?;
    if args.json {
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&jobs)?))?;
    } else {
        super::print_stdout(&table(&jobs))?;
        let waiting = jobs.iter().any(|j| j.state == JobState::Queued && !j.held);
        if waiting && running_daemon(&crate::paths::state_dir()?)?.is_none() {
            eprintln!(
                "note: no daemon runs, so queued jobs wait; `neuronmap daemon --detach` starts one"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The job table, one line per job.
pub fn table(jobs: &[Job]) -> String {
    if jobs.is_empty() {
        return "no jobs; `neuronmap submit` queues one\n".into();
    }
    let rows: Vec<[String; 8]> = jobs
        .iter()
        .map(|j| {
            [
                j.id.to_string(),
                j.state.to_string(),
                j.priority.to_string(),
                short_model(&j.model),
                j.analysis.clone(),
                j.placement.clone().unwrap_or_else(|| j.device.clone()),
                format!("{:>3.0}%", j.progress * 100.0),
                info(j),
            ]
        })
        .collect();
    let head = [
        "ID", "STATE", "PRI", "MODEL", "ANALYSIS", "DEVICE", "DONE", "INFO",
    ];
    let mut widths: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row.iter()).take(7) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, cell) in cells.iter().enumerate() {
            if i < 7 {
                s.push_str(&format!("{cell:<w$}  ", w = widths[i]));
            } else {
                s.push_str(cell);
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(head.to_vec());
    for row in &rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

/// The last path component of a model folder, or the id as given.
fn short_model(model: &str) -> String {
    std::path::Path::new(model)
        .file_name()
        .map_or(model.to_string(), |n| n.to_string_lossy().into_owned())
}

/// The most useful extra fact for a job's state.
fn info(j: &Job) -> String {
    match j.state {
        JobState::Queued | JobState::Interrupted => {
            let held = if j.held { "held" } else { "" };
            j.wait_reason.clone().unwrap_or_else(|| held.to_string())
        }
        JobState::Running => {
            let mut parts = Vec::new();
            if j.cancel_requested {
                parts.push("cancelling".to_string());
            }
            if let Some(eta) = j.run.eta_seconds {
                parts.push(format!("ETA {}", human_seconds(eta)));
            }
            if j.run.tokens_per_second > 0.0 {
                parts.push(format!("{:.0} tok/s", j.run.tokens_per_second));
            }
            if let Some(peak) = j.run.peak_memory_bytes {
                parts.push(format!("peak {}", human_bytes(peak)));
            }
            parts.join(", ")
        }
        JobState::Succeeded => j.output.clone(),
        JobState::Failed => j.error.clone().unwrap_or_default(),
        JobState::Cancelled => String::new(),
    }
}

/// Bytes in GiB from 1 GiB up, else in MiB.
fn human_bytes(bytes: u64) -> String {
    if bytes >= 1 << 30 {
        crate::jobs::placement::gib(bytes)
    } else {
        format!("{:.0} MiB", bytes as f64 / (1u64 << 20) as f64)
    }
}

fn human_seconds(s: f64) -> String {
    let s = s.max(0.0) as u64;
    match s {
        0..=99 => format!("{s}s"),
        100..=5999 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// `neuronmap show JOB`.
pub fn show(args: &ShowArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open_default()?;
    let detail = client::detail(&store, &crate::paths::state_dir()?, args.job, 10)?;
    let (job, events) = (&detail.job, &detail.events);
    if args.json {
        let value = serde_json::json!({ "job": job, "events": events });
        super::print_stdout(&format!("{}\n", serde_json::to_string_pretty(&value)?))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut out = String::new();
    let mut field = |k: &str, v: String| out.push_str(&format!("{k:<12}{v}\n"));
    field("job", job.id.to_string());
    field("state", job.state.to_string());
    field("model", job.model.clone());
    field("analysis", job.analysis.clone());
    field("input", job.spec.input.display().to_string());
    field("hooks", job.spec.hooks.join(", "));
    field("output", job.output.clone());
    field(
        "device",
        match &job.placement {
            Some(p) => format!("{} (asked: {})", p, job.device),
            None => job.device.clone(),
        },
    );
    field("priority", job.priority.to_string());
    if let Some(after) = job.after {
        field("after", format!("job {after}"));
    }
    field(
        "progress",
        format!(
            "{:.0}% ({}/{} prompts, {} shards)",
            job.progress * 100.0,
            job.run.prompts_done,
            job.run.prompts_total,
            job.run.shards_done
        ),
    );
    if let Some(e) = job.estimate_bytes {
        field("estimate", human_bytes(e.max(0) as u64));
    }
    if let Some(p) = job.run.peak_memory_bytes {
        field("peak", human_bytes(p));
    }
    field("attempts", job.attempts.to_string());
    let extra = info(job);
    if !extra.is_empty() && job.state != JobState::Succeeded {
        field("info", extra);
    }
    if let Some(f) = job.failure {
        field("failure", f.label());
    }
    out.push_str("\nevents:\n");
    for e in events {
        let from = e.from.map_or("-".to_string(), |s| s.to_string());
        out.push_str(&format!(
            "  {}  {from} -> {}  {}\n",
            clock(e.at_ms),
            e.to,
            e.reason
        ));
    }
    if !detail.log_tail.is_empty() {
        out.push_str(&format!(
            "\nlast log lines ({}):\n",
            detail.log_path.display()
        ));
        for l in &detail.log_tail {
            out.push_str(&format!("  {l}\n"));
        }
    }
    super::print_stdout(&out)?;
    Ok(ExitCode::SUCCESS)
}

/// UTC time of day of a timestamp, `HH:MM:SS`.
fn clock(ms: i64) -> String {
    let s = (ms / 1000).rem_euclid(86_400);
    format!("{:02}:{:02}:{:02}", s / 3600, (s % 3600) / 60, s % 60)
}

/// `neuronmap logs JOB [-f]`.
pub fn logs(args: &LogsArgs) -> anyhow::Result<ExitCode> {
    let store = Store::open_default()?;
    store.get(args.job)?;
    let path = job_log_path(&crate::paths::state_dir()?, args.job);
    let mut offset = 0u64;
    loop {
        if let Ok(mut file) = std::fs::File::open(&path) {
            file.seek(SeekFrom::Start(offset))?;
            let mut text = String::new();
            file.read_to_string(&mut text)?;
            offset += text.len() as u64;
            super::print_stdout(&text)?;
        } else if !args.follow {
            anyhow::bail!(
                "job {} has no log yet ({} appears when it starts)",
                args.job,
                path.display()
            );
        }
        if !args.follow {
            return Ok(ExitCode::SUCCESS);
        }
        match store.state_of(args.job)? {
            Some(state) if state.is_finished() => {
                // One more read catches the worker's last lines.
                if let Ok(mut file) = std::fs::File::open(&path) {
                    file.seek(SeekFrom::Start(offset))?;
                    let mut text = String::new();
                    file.read_to_string(&mut text)?;
                    super::print_stdout(&text)?;
                }
                return Ok(ExitCode::SUCCESS);
            }
            None => return Ok(ExitCode::SUCCESS),
            _ => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// `neuronmap cancel JOB`.
pub fn cancel(args: &JobArg, config: &Config) -> anyhow::Result<ExitCode> {
    let mut store = Store::open_default()?;
    let message = client::cancel(&mut store, args.job)?;
    let timeout = if message.contains("cancelling") {
        format!(" (killed after {} s)", config.jobs.cancel_timeout_seconds)
    } else {
        String::new()
    };
    super::print_stdout(&format!("{message}{timeout}\n"))?;
    Ok(ExitCode::SUCCESS)
}

/// `neuronmap retry JOB`.
pub fn retry(args: &JobArg, global: &GlobalArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let mut store = Store::open_default()?;
    let message = client::retry(&mut store, args.job)?;
    super::print_stdout(&format!("{message}\n"))?;
    super::daemon::ensure_running(global, config)?;
    Ok(ExitCode::SUCCESS)
}

/// `neuronmap rm JOB`: the job, its events and its log; the output folder stays.
pub fn remove(args: &JobArg) -> anyhow::Result<ExitCode> {
    let mut store = Store::open_default()?;
    store.remove(args.job)?;
    let dir = crate::paths::state_dir()?;
    for path in [job_log_path(&dir, args.job), job_lock_path(&dir, args.job)] {
        match std::fs::remove_file(&path) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                anyhow::bail!("job {} removed, but not {}: {e}", args.job, path.display())
            }
            _ => {}
        }
    }
    super::print_stdout(&format!(
        "job {} removed (its output folder stays)\n",
        args.job
    ))?;
    Ok(ExitCode::SUCCESS)
}

/// `neuronmap hold JOB` (`held = true`) and `neuronmap release JOB`.
pub fn hold(args: &JobArg, held: bool) -> anyhow::Result<ExitCode> {
    let mut store = Store::open_default()?;
    store.set_held(args.job, held)?;
    let word = if held { "held" } else { "released" };
    super::print_stdout(&format!("job {} {word}\n", args.job))?;
    Ok(ExitCode::SUCCESS)
}
