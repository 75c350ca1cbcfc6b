//! `neuronmap models`: every model of the catalogue (registry, Hugging Face cache, configured
//! folders) as a table or versioned JSON.

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::GlobalArgs;
use crate::config::Config;
use crate::models::{Catalogue, CatalogueEntry, CatalogueSettings};
use crate::tui::format::bytes_short;

/// Version of the `models --json` schema (documented in the README).
pub const MODELS_SCHEMA_VERSION: u32 = 1;

/// Arguments of `neuronmap models`.
#[derive(Debug, Args)]
pub struct ModelsArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize)]
struct ModelsJson<'a> {
    schema_version: u32,
    cache_root: Option<String>,
    models: &'a [CatalogueEntry],
}

/// Lists the catalogue.
pub fn run(args: &ModelsArgs, _global: &GlobalArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let settings = CatalogueSettings::from_process(&config.models);
    let catalogue = Catalogue::load(&settings)?;
    let text = if args.json {
        let doc = ModelsJson {
            schema_version: MODELS_SCHEMA_VERSION,
            cache_root: settings.cache_root.map(|p| p.display().to_string()),
            models: &catalogue.entries,
        };
        let mut s = serde_json::to_string_pretty(&doc)?;
        s.push('\n');
        s
    } else {
        render_table(&catalogue)
    };
    super::print_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// A parameter count as `124.4M` or `6.74B`.
pub fn parameters_short(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2}B", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1}M", n / 1e6)
    } else {
        format!("{:.1}K", n / 1e3)
    }
}

fn render_table(catalogue: &Catalogue) -> String {
    let width = catalogue
        .entries
        .iter()
        .map(|e| e.id.len())
        .max()
        .unwrap_or(5)
        .max(5);
    let mut out = format!(
        "{:<width$}  {:<10}  {:>8}  {:<5}  {:<8}  {:>6}  {:<12}  COMPLETE\n",
        "MODEL", "FAMILY", "PARAMS", "DTYPE", "SOURCE", "SIZE", "REVISION"
    );
    for e in &catalogue.entries {
        let params = e.parameters.map_or_else(
            || "?".to_string(),
            |p| {
                let mut s = parameters_short(p);
                if !e.parameters_exact {
                    s.insert(0, '~');
                }
                s
            },
        );
        let complete = if e.complete {
            "yes".to_string()
        } else {
            format!("no: {}", e.missing.join(", "))
        };
        let _ = writeln!(
            out,
            "{:<width$}  {:<10}  {:>8}  {:<5}  {:<8}  {:>6}  {:<12}  {}",
            e.id,
            e.family.map_or("?", |f| f.model_type()),
            params,
            e.dtype.as_deref().unwrap_or("?"),
            e.source.name(),
            e.size_bytes.map_or_else(|| "-".to_string(), bytes_short),
            e.revision.as_deref().unwrap_or("-"),
            complete,
        );
        if let Some(note) = &e.note {
            let _ = writeln!(out, "{:<width$}  note: {note}", "");
        }
    }
    out.push_str("~ = from config.json formulas; exact counts come from safetensors headers once downloaded\n");
    out
}
