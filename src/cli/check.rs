//! `neuronmap check MODEL`: the memory breakdown, a verdict per device with the free memory now
//! (live, or the first frame of `--replay`), and the cheapest fallback where it does not fit.
//!
//! Exit status: 0 when it fits as asked (fits or tight) on at least one device asked for; 1 when
//! it does not (even if a fallback would; the output names it); 2 on any error.

use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use serde::Serialize;

use super::models::parameters_short;
use super::GlobalArgs;
use crate::config::Config;
use crate::estimate::device::{self, DeviceId, DeviceSpec};
use crate::estimate::verdict::{self, DeviceVerdict};
use crate::estimate::{self, time, AnalysisKind, Breakdown, TimeEstimate, Workload};
use crate::models::resolve;
use crate::models::{CatalogueEntry, CatalogueSettings};
use crate::telemetry;
use crate::tui::format::bytes_short;

/// Version of the `check --json` schema (documented in the README).
pub const CHECK_SCHEMA_VERSION: u32 = 1;

/// Exit status when the request does not fit as asked on any device asked for.
pub const EXIT_DOES_NOT_FIT: u8 = 1;

/// Arguments of `neuronmap check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A registry id, a Hugging Face cache id or a model folder.
    pub model: String,
    /// activations, stats, attention, saliency or concepts.
    #[arg(long, default_value = "activations", value_parser = parse_analysis)]
    pub analysis: AnalysisKind,
    /// Prompts per forward pass.
    #[arg(long, default_value_t = 8)]
    pub batch: u64,
    /// Tokens per prompt (padded length; capped by the model's maximum).
    #[arg(long, default_value_t = estimate::DEFAULT_SEQ)]
    pub seq: u64,
    /// f32, f16 or bf16 (default: f32 on the CPU, bf16 on GPUs that support it, else f16).
    #[arg(long)]
    pub dtype: Option<String>,
    /// Hook-name glob (repeatable; default depends on the analysis).
    #[arg(long = "hooks", value_name = "GLOB")]
    pub hooks: Vec<String>,
    /// cpu, cuda:N or all.
    #[arg(long, default_value = "all")]
    pub device: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

fn parse_analysis(text: &str) -> Result<AnalysisKind, String> {
    AnalysisKind::parse(text).ok_or_else(|| {
        format!(
            "unknown analysis \"{text}\"; use activations, stats, attention, saliency or concepts"
        )
    })
}

#[derive(Serialize)]
struct ModelJson<'a> {
    id: &'a str,
    family: Option<crate::models::Family>,
    parameters: Option<u64>,
    parameters_exact: bool,
    source: &'static str,
    revision: Option<&'a str>,
}

#[derive(Serialize)]
struct RequestJson<'a> {
    analysis: &'static str,
    batch: u64,
    seq: u64,
    dtype: Option<&'static str>,
    hooks: &'a [String],
    hook_count: usize,
    blocks_run: u64,
}

#[derive(Serialize)]
struct DeviceJson<'a> {
    device: String,
    name: &'a str,
    verdict: &'static str,
    estimated_peak_bytes: u64,
    free_bytes: u64,
    dtype: &'static str,
    breakdown: &'a Breakdown,
    time: &'a TimeEstimate,
    fallback: Option<&'a verdict::Fallback>,
    reason: Option<&'a str>,
}

#[derive(Serialize)]
struct CheckJson<'a> {
    schema_version: u32,
    model: ModelJson<'a>,
    request: RequestJson<'a>,
    devices: Vec<DeviceJson<'a>>,
    fits: bool,
}

/// Runs the check and prints it.
pub fn run(args: &CheckArgs, global: &GlobalArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let settings = CatalogueSettings::from_process(&config.models);
    let entry = resolve::describe_model(&args.model, None, &settings)?;
    let dtype = estimate::parse_dtype(args.dtype.as_deref())?;
    let workload = estimate::workload_for(
        &entry,
        args.analysis,
        args.batch,
        args.seq,
        dtype,
        &args.hooks,
    )?;
    let frame = telemetry::current_frame(global, config)?;
    let calibration = time::cpu_calibration()?;
    let devices = device::devices_from_frame(&frame, calibration.speed);
    let asked = select_devices(&args.device, &devices)?;
    let cpu = devices.iter().find(|d| !d.is_gpu());
    let verdicts: Vec<DeviceVerdict> = asked
        .iter()
        .map(|d| verdict::judge(&workload, d, cpu))
        .collect();
    let fits = verdicts.iter().any(|v| v.verdict.fits_as_asked());
    let text = if args.json {
        let doc = CheckJson {
            schema_version: CHECK_SCHEMA_VERSION,
            model: ModelJson {
                id: &entry.id,
                family: entry.family,
                parameters: entry.parameters,
                parameters_exact: entry.parameters_exact,
                source: entry.source.name(),
                revision: entry.revision.as_deref(),
            },
            request: RequestJson {
                analysis: args.analysis.name(),
                batch: workload.batch,
                seq: workload.seq,
                dtype: dtype.map(|d| d.name()),
                hooks: &args.hooks,
                hook_count: workload.hooks.count(),
                blocks_run: estimate::memory::blocks_run(&workload),
            },
            devices: verdicts.iter().map(device_json).collect(),
            fits,
        };
        let mut s = serde_json::to_string_pretty(&doc)?;
        s.push('\n');
        s
    } else {
        render_text(&entry, &workload, &verdicts)
    };
    super::print_stdout(&text)?;
    Ok(if fits {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_DOES_NOT_FIT)
    })
}

fn device_json(v: &DeviceVerdict) -> DeviceJson<'_> {
    DeviceJson {
        device: v.device.label(),
        name: &v.name,
        verdict: v.verdict.name(),
        estimated_peak_bytes: v.estimate.peak_bytes,
        free_bytes: v.free_bytes,
        dtype: v.estimate.dtype.name(),
        breakdown: &v.estimate.breakdown,
        time: &v.estimate.time,
        fallback: v.fallback.as_ref(),
        reason: v.reason.as_deref(),
    }
}

/// The devices `--device` names, among those present.
fn select_devices(asked: &str, devices: &[DeviceSpec]) -> anyhow::Result<Vec<DeviceSpec>> {
    if asked == "all" {
        return Ok(devices.to_vec());
    }
    let id = DeviceId::parse(asked)
        .with_context(|| format!("--device \"{asked}\" is not cpu, cuda:N or all"))?;
    let found: Vec<DeviceSpec> = devices.iter().filter(|d| d.id == id).cloned().collect();
    if found.is_empty() {
        let present: Vec<String> = devices.iter().map(|d| d.id.label()).collect();
        anyhow::bail!(
            "--device {asked}: no such device here (present: {})",
            present.join(", ")
        );
    }
    Ok(found)
}

fn render_text(entry: &CatalogueEntry, w: &Workload, verdicts: &[DeviceVerdict]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{} ({}, {} parameters, {}): {}, batch {}, seq {}, {} hooks, forward through block {}",
        entry.id,
        entry.family.map_or("?", |f| f.model_type()),
        entry
            .parameters
            .map_or_else(|| "?".to_string(), parameters_short),
        entry.source.name(),
        w.analysis.name(),
        w.batch,
        w.seq,
        w.hooks.count(),
        estimate::memory::blocks_run(w).saturating_sub(1),
    );
    if let Some((_, best)) = verdict::best(verdicts) {
        let _ = writeln!(
            out,
            "\nBreakdown on {} ({}):",
            best.device.label(),
            best.estimate.dtype.name()
        );
        for (label, bytes) in best.estimate.breakdown.items() {
            let _ = writeln!(out, "  {label:<28} {:>8}", bytes_short(bytes));
        }
        let _ = writeln!(
            out,
            "  {:<28} {:>8}",
            "estimated peak",
            bytes_short(best.estimate.peak_bytes)
        );
    }
    let _ = writeln!(
        out,
        "\n{:<8} {:<24} {:<18} {:>8} {:>8} {:>10}  FALLBACK",
        "DEVICE", "NAME", "VERDICT", "PEAK", "FREE", "S/BATCH"
    );
    for v in verdicts {
        let note = match (&v.fallback, &v.reason) {
            (Some(f), _) => format!(
                "{} (peak {})",
                f.description,
                bytes_short(f.estimated_peak_bytes)
            ),
            (None, Some(reason)) => reason.clone(),
            (None, None) => "-".to_string(),
        };
        let _ = writeln!(
            out,
            "{:<8} {:<24} {:<18} {:>8} {:>8} {:>10.3}  {}",
            v.device.label(),
            crate::tui::format::fit(&v.name, 24),
            v.verdict.name(),
            bytes_short(v.estimate.peak_bytes),
            bytes_short(v.free_bytes),
            v.estimate.time.seconds_per_batch,
            note
        );
    }
    out.push_str("time estimates are FLOPs over calibrated (CPU) or nominal (GPU) throughput; GPU times are not yet validated\n");
    out
}
