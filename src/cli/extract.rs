//! `neuronmap extract`: one extraction in the foreground, with a progress bar; Ctrl-C finishes
//! the current shard and leaves a folder that `--resume` continues.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};

use crate::engine::{
    run_extract_with, Analysis, EngineOptions, ExtractRequest, RunOutcome, RunProgress,
};

/// Arguments of `neuronmap extract`.
#[derive(Debug, Args)]
pub struct ExtractArgs {
    /// Model: a folder, or a Hugging Face id (org/name) that is in the local cache.
    #[arg(long, value_name = "M")]
    pub model: String,
    /// Prompts: .txt (one per line) or .jsonl (objects with a "text" field).
    #[arg(long, value_name = "FILE")]
    pub input: PathBuf,
    /// Hook globs, comma-separated or repeated (e.g. 'blocks.*.hook_resid_post').
    #[arg(long, value_name = "GLOB", value_delimiter = ',')]
    pub hooks: Vec<String>,
    /// Output folder (manifest.json, shard-NNNNN.safetensors, stats.json).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// What to compute.
    #[arg(long, value_enum, default_value_t = AnalysisArg::Activations)]
    pub analysis: AnalysisArg,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub batch: usize,
    /// Maximum tokens per prompt (default: the model's maximum).
    #[arg(long, value_name = "N")]
    pub max_len: Option<usize>,
    /// f32, f16 or bf16 (default: f32 on the CPU, bf16 on a GPU).
    #[arg(long, value_name = "D")]
    pub dtype: Option<String>,
    /// cpu or cuda:N.
    #[arg(long, default_value = "cpu", value_name = "DEV")]
    pub device: String,
    /// Go on from the last whole shard of an interrupted run in DIR.
    #[arg(long)]
    pub resume: bool,
    /// Target shard size in MiB.
    #[arg(long, default_value_t = 256, value_name = "MIB")]
    pub shard_mib: u64,
}

/// `--analysis` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum AnalysisArg {
    /// The selected hooks go to safetensors shards.
    Activations,
    /// Per-hook statistics to stats.json.
    Stats,
    /// Attention patterns (default hooks: blocks.*.attn.hook_pattern).
    Attention,
}

static CANCEL: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigint(_: libc::c_int) {
    CANCEL.store(true, Ordering::SeqCst);
}

/// Makes the first Ctrl-C (or SIGTERM) set [`CANCEL`]; a second one ends the process at once.
fn install_cancel_handler() {
    // SAFETY: the handler only stores to an atomic, which is async-signal-safe; SA_RESETHAND
    // restores the default action so a second signal terminates the process.
    unsafe {
        let mut action: libc::sigaction = std::mem::zeroed();
        action.sa_sigaction = on_sigint as *const () as libc::sighandler_t;
        action.sa_flags = libc::SA_RESETHAND;
        libc::sigemptyset(&mut action.sa_mask);
        libc::sigaction(libc::SIGINT, &action, std::ptr::null_mut());
        libc::sigaction(libc::SIGTERM, &action, std::ptr::null_mut());
    }
}

/// Runs the extraction.
pub fn run(args: &ExtractArgs) -> anyhow::Result<ExitCode> {
    let req = ExtractRequest {
        model: args.model.clone(),
        input: args.input.clone(),
        hooks: args.hooks.clone(),
        out: args.out.clone(),
        analysis: match args.analysis {
            AnalysisArg::Activations => Analysis::Activations,
            AnalysisArg::Stats => Analysis::Stats,
            AnalysisArg::Attention => Analysis::Attention,
        },
        batch: args.batch,
        max_len: args.max_len,
        dtype: args.dtype.clone(),
        device: args.device.clone(),
        resume: args.resume,
    };
    anyhow::ensure!(args.shard_mib > 0, "--shard-mib must be at least 1");
    let opts = EngineOptions {
        shard_target_bytes: args.shard_mib << 20,
        ..EngineOptions::default()
    };
    install_cancel_handler();
    let bar = ProgressBar::new(0);
    bar.set_style(
        ProgressStyle::with_template(
            "{bar:30} {pos}/{len} prompts  {msg}  elapsed {elapsed}  ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut last = RunProgress::default();
    let outcome = run_extract_with(
        &req,
        &opts,
        &mut |p| {
            bar.set_length(p.prompts_total as u64);
            bar.set_position(p.prompts_done as u64);
            let stopping = if CANCEL.load(Ordering::SeqCst) {
                "  stopping after this shard (Ctrl-C again to abort)"
            } else {
                ""
            };
            bar.set_message(format!("{:.0} tokens/s{stopping}", p.tokens_per_second));
            last = p.clone();
        },
        &CANCEL,
    );
    bar.finish_and_clear();
    let outcome = outcome?;
    let out = args.out.display();
    match outcome {
        RunOutcome::Completed => {
            super::print_stdout(&format!(
                "done: {} prompts, {} tokens this run at {:.0} tokens/s, {} shards in {out}\n",
                last.prompts_total, last.tokens_done, last.tokens_per_second, last.shards_done
            ))?;
            Ok(ExitCode::SUCCESS)
        }
        RunOutcome::Cancelled => {
            eprintln!(
                "neuronmap: stopped after {} of {} prompts ({} whole shards); run the same command with --resume to go on",
                last.prompts_done, last.prompts_total, last.shards_done
            );
            Ok(ExitCode::from(130))
        }
    }
}
