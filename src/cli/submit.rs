//! `neuronmap submit`: queue an extraction job and print its id. Takes the extract flags plus
//! `--priority`, `--after`, `--device` and `--hold`; starts the daemon when none runs
//! (config `jobs.auto_start_daemon`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use super::GlobalArgs;
use crate::config::Config;
use crate::engine::request::{Analysis, ExtractRequest};
use crate::jobs::job::{DeviceRequest, JobId, Submission};
use crate::jobs::store::Store;

/// Arguments of `neuronmap submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// Model: a folder, a Hugging Face cache id, or a registry id.
    #[arg(long)]
    pub model: String,
    /// Prompt file: `.txt` (one prompt per line) or `.jsonl` (objects with a `text` field).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Hook globs, comma-separated or repeated (e.g. 'blocks.*.hook_resid_post'); as for
    /// `extract`, `--analysis attention` without hooks takes every attention pattern.
    #[arg(long, value_name = "GLOB", value_delimiter = ',')]
    pub hooks: Vec<String>,
    /// Output folder.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// `activations`, `stats` or `attention`.
    #[arg(long, default_value = "activations", value_parser = parse_analysis)]
    pub analysis: Analysis,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch: usize,
    /// Maximum tokens per prompt (default: the model's maximum).
    #[arg(long, value_name = "N")]
    pub max_len: Option<usize>,
    /// `f32`, `f16` or `bf16` (default: f32 on the CPU, bf16 on a GPU that supports it).
    #[arg(long)]
    pub dtype: Option<String>,
    /// Higher runs first; equal priorities run in submission order.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub priority: i64,
    /// Run only after this job has succeeded.
    #[arg(long, value_name = "JOB")]
    pub after: Option<JobId>,
    /// `cpu`, `cuda:N` or `any` (a GPU that fits, else the CPU).
    #[arg(long, default_value = "any")]
    pub device: DeviceRequest,
    /// Submit held: it waits until `neuronmap release JOB`.
    #[arg(long)]
    pub hold: bool,
}

fn parse_analysis(s: &str) -> Result<Analysis, String> {
    serde_json::from_value(serde_json::Value::String(s.to_string()))
        .map_err(|_| format!("analysis must be activations, stats or attention, got `{s}`"))
}

/// Queues the job, prints its id, and starts the daemon if needed.
pub fn run(args: &SubmitArgs, global: &GlobalArgs, config: &Config) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(args.batch > 0, "--batch must be at least 1");
    anyhow::ensure!(
        args.max_len != Some(0),
        "--max-len must be at least 1 token"
    );
    if let Some(dtype) = &args.dtype {
        anyhow::ensure!(
            ["f32", "f16", "bf16"].contains(&dtype.as_str()),
            "--dtype must be f32, f16 or bf16, got `{dtype}`"
        );
    }
    anyhow::ensure!(
        args.input.is_file(),
        "input file {} does not exist; give a .txt or .jsonl prompt file",
        args.input.display()
    );
    let request = ExtractRequest {
        model: model_ref(&args.model)?,
        input: std::path::absolute(&args.input)?,
        hooks: args.hooks.clone(),
        out: std::path::absolute(&args.out)?,
        analysis: args.analysis,
        batch: args.batch,
        max_len: args.max_len,
        dtype: args.dtype.clone(),
        device: args.device.to_string(),
        resume: false,
    };
    let mut store = Store::open_default()?;
    let id = store.submit(&Submission {
        request,
        priority: args.priority,
        after: args.after,
        device: args.device,
        held: args.hold,
    })?;
    super::print_stdout(&format!("{id}\n"))?;
    super::daemon::ensure_running(global, config)?;
    Ok(ExitCode::SUCCESS)
}

/// A model given as a path becomes absolute (the daemon runs elsewhere); ids stay as given.
fn model_ref(model: &str) -> anyhow::Result<String> {
    let path = Path::new(model);
    let looks_like_path = model.starts_with('/') || model.starts_with('.') || path.exists();
    if looks_like_path {
        Ok(std::path::absolute(path)?.display().to_string())
    } else {
        Ok(model.to_string())
    }
}
