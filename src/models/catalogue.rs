//! The catalogue: every model NeuronMap knows, from the registry, the Hugging Face cache and the
//! folders named in the config, with parameters, dtype, size, revision and completeness.
//!
//! Parameters come from the safetensors headers when the weights are on disk (exact), else from
//! the `config.json` formulas.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::config_json::{self, Architecture, Family};
use super::hf_cache::{self, EnvLookup};
use super::registry::{self, RegistryEntry, RegistryError};
use super::safetensors_header::{self, WeightFiles};
use crate::config::ModelsConfig;

/// Where a catalogue entry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// The built-in registry only (not downloaded).
    Registry,
    /// The Hugging Face cache.
    Cache,
    /// A folder named in the config (or on the command line).
    Folder,
}

impl Source {
    /// The name shown in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Registry => "registry",
            Self::Cache => "cache",
            Self::Folder => "folder",
        }
    }
}

/// One model the catalogue knows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CatalogueEntry {
    /// Repo id (`org/name`), or the folder path for folder models.
    pub id: String,
    /// The family, when the config names one we know.
    pub family: Option<Family>,
    /// The dimensions, when the config could be read.
    #[serde(skip)]
    pub architecture: Option<Architecture>,
    /// Parameter count.
    pub parameters: Option<u64>,
    /// True when `parameters` comes from safetensors headers, false when from the formulas.
    pub parameters_exact: bool,
    /// Stored dtype (`f32`, `f16`, `bf16`, ...).
    pub dtype: Option<String>,
    /// Where it comes from.
    pub source: Source,
    /// Bytes on disk (each blob once); `None` when not downloaded.
    pub size_bytes: Option<u64>,
    /// Revision (branch, tag or short commit) of a cached snapshot.
    pub revision: Option<String>,
    /// Config, every weight shard and a tokenizer are present.
    pub complete: bool,
    /// What is missing or unusable when not complete.
    pub missing: Vec<String>,
    /// The folder with `config.json` and the weights.
    pub local_path: Option<PathBuf>,
    /// The hub needs an accepted licence and a token to download it.
    pub gated: bool,
    /// Anything the user should know (only `.bin` weights, unreadable config, ...).
    pub note: Option<String>,
}

impl CatalogueEntry {
    /// Whether the weights are on this machine.
    pub fn is_local(&self) -> bool {
        self.local_path.is_some()
    }

    /// A registry model that is not downloaded.
    pub fn from_registry(entry: &RegistryEntry) -> Self {
        let arch = &entry.architecture;
        Self {
            id: entry.id.clone(),
            family: Some(arch.family),
            parameters: Some(arch.parameter_count()),
            parameters_exact: false,
            dtype: arch.torch_dtype.as_deref().map(short_dtype),
            architecture: Some(arch.clone()),
            source: Source::Registry,
            size_bytes: None,
            revision: None,
            complete: false,
            missing: vec!["not downloaded".to_string()],
            local_path: None,
            gated: entry.gated,
            note: None,
        }
    }
}

/// `float32` / `F32` style names to the short form used everywhere (`f32`).
pub fn short_dtype(name: &str) -> String {
    match name.to_ascii_lowercase().as_str() {
        "float32" | "f32" | "float" => "f32".to_string(),
        "float16" | "f16" | "half" => "f16".to_string(),
        "bfloat16" | "bf16" => "bf16".to_string(),
        "float64" | "f64" => "f64".to_string(),
        other => other.to_string(),
    }
}

/// Where to look for models.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CatalogueSettings {
    /// The Hugging Face cache root (`None`: no cache, e.g. no `HOME`).
    pub cache_root: Option<PathBuf>,
    /// Extra model folders.
    pub folders: Vec<PathBuf>,
}

impl CatalogueSettings {
    /// From the environment (cache rules of `huggingface_hub`) and the `[models]` config.
    pub fn from_env(env: EnvLookup, config: &ModelsConfig) -> Self {
        Self {
            cache_root: hf_cache::cache_root(env),
            folders: config.folders.clone(),
        }
    }

    /// From the process environment and the config.
    pub fn from_process(config: &ModelsConfig) -> Self {
        Self::from_env(&hf_cache::process_env, config)
    }
}

/// Every known model.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Catalogue {
    /// Local models first (cache, then folders, sorted by id), then registry-only ones.
    pub entries: Vec<CatalogueEntry>,
}

impl Catalogue {
    /// Builds the catalogue. Only the built-in registry can fail (a broken build).
    pub fn load(settings: &CatalogueSettings) -> Result<Self, RegistryError> {
        let registry = registry::builtin()?;
        Ok(Self::build(&registry, settings))
    }

    /// Builds the catalogue from a given registry.
    pub fn build(registry: &[RegistryEntry], settings: &CatalogueSettings) -> Self {
        let mut entries = Vec::new();
        if let Some(root) = &settings.cache_root {
            for repo in hf_cache::scan(root) {
                let gated = registry.iter().any(|r| r.id == repo.id && r.gated);
                for snapshot in &repo.snapshots {
                    let mut entry = inspect_dir(&snapshot.path, &repo.id, Source::Cache);
                    entry.revision = Some(snapshot.revision());
                    entry.size_bytes = Some(snapshot.size_bytes);
                    entry.gated = gated;
                    if repo.incomplete_blobs > 0 && !entry.complete {
                        entry.missing.push(format!(
                            "{} download(s) in progress or interrupted",
                            repo.incomplete_blobs
                        ));
                    }
                    entries.push(entry);
                }
            }
        }
        for folder in &settings.folders {
            entries.push(inspect_dir(
                folder,
                &folder.display().to_string(),
                Source::Folder,
            ));
        }
        for r in registry {
            if !entries.iter().any(|e| e.id == r.id) {
                entries.push(CatalogueEntry::from_registry(r));
            }
        }
        Self { entries }
    }

    /// The first entry with this id (the `main` snapshot when cached).
    pub fn find(&self, id: &str) -> Option<&CatalogueEntry> {
        self.entries.iter().find(|e| e.id == id)
    }

    /// Ids close to `wanted` (same name ignoring case and the org, or containing it).
    pub fn close_matches(&self, wanted: &str) -> Vec<String> {
        let needle = wanted.to_ascii_lowercase();
        let tail = needle.rsplit('/').next().unwrap_or(&needle).to_string();
        let mut ids: Vec<String> = self
            .entries
            .iter()
            .map(|e| e.id.clone())
            .filter(|id| {
                let id = id.to_ascii_lowercase();
                let id_tail = id.rsplit('/').next().unwrap_or(&id).to_string();
                id_tail == tail
                    || id.contains(&tail)
                    || (tail.len() >= 3 && tail.contains(&id_tail))
            })
            .collect();
        ids.dedup();
        ids.truncate(5);
        ids
    }
}

/// Reads a model folder: config, weights headers, tokenizer. Problems become `missing` and
/// `note`, never errors, so one broken folder does not hide the others.
pub fn inspect_dir(dir: &Path, id: &str, source: Source) -> CatalogueEntry {
    let mut entry = CatalogueEntry {
        id: id.to_string(),
        family: None,
        architecture: None,
        parameters: None,
        parameters_exact: false,
        dtype: None,
        source,
        size_bytes: None,
        revision: None,
        complete: false,
        missing: Vec::new(),
        local_path: Some(dir.to_path_buf()),
        gated: false,
        note: None,
    };
    let mut notes = Vec::new();
    match read_config(dir) {
        Ok(arch) => {
            entry.family = Some(arch.family);
            entry.parameters = Some(arch.parameter_count());
            entry.dtype = arch.torch_dtype.as_deref().map(short_dtype);
            entry.architecture = Some(arch);
        }
        Err(ConfigProblem::Missing) => entry.missing.push("config.json".to_string()),
        Err(ConfigProblem::Unreadable(why)) => notes.push(why),
    }
    match safetensors_header::find_weights(dir) {
        Ok(WeightFiles::Safetensors { shards, .. }) => {
            match safetensors_header::summarize(dir, &shards) {
                Ok(summary) => {
                    entry.missing.extend(summary.missing_shards.iter().cloned());
                    if summary.missing_shards.is_empty() && summary.parameters > 0 {
                        entry.parameters = Some(summary.parameters);
                        entry.parameters_exact = true;
                        entry.dtype = summary.main_dtype().map(short_dtype).or(entry.dtype);
                    }
                }
                Err(e) => {
                    entry.missing.push("readable weights".to_string());
                    notes.push(e.to_string());
                }
            }
        }
        Ok(WeightFiles::BinOnly) => notes.push(
            "only PyTorch .bin weights: the engine reads safetensors; convert them or pull a revision with model.safetensors".to_string(),
        ),
        Ok(WeightFiles::None) => entry.missing.push("weights (*.safetensors)".to_string()),
        Err(e) => {
            entry.missing.push("weights index".to_string());
            notes.push(e.to_string());
        }
    }
    if !dir.join("tokenizer.json").is_file() {
        entry.missing.push("tokenizer.json".to_string());
    }
    entry.complete = entry.missing.is_empty() && notes.is_empty();
    if entry.size_bytes.is_none() {
        entry.size_bytes = Some(folder_size(dir));
    }
    if !notes.is_empty() {
        entry.note = Some(notes.join("; "));
    }
    entry
}

enum ConfigProblem {
    Missing,
    Unreadable(String),
}

fn read_config(dir: &Path) -> Result<Architecture, ConfigProblem> {
    let path = dir.join("config.json");
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(ConfigProblem::Missing),
        Err(e) => {
            return Err(ConfigProblem::Unreadable(format!(
                "cannot read {}: {e}",
                path.display()
            )))
        }
    };
    let value: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        ConfigProblem::Unreadable(format!("{} is not valid JSON: {e}", path.display()))
    })?;
    config_json::parse_config(&value)
        .map_err(|e| ConfigProblem::Unreadable(format!("{}: {e}", path.display())))
}

/// Reads and parses `dir/config.json`, with a message naming the file on failure.
pub fn read_architecture(dir: &Path) -> Result<Architecture, String> {
    read_config(dir).map_err(|p| match p {
        ConfigProblem::Missing => format!("{} has no config.json", dir.display()),
        ConfigProblem::Unreadable(why) => why,
    })
}

fn folder_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| std::fs::metadata(e.path()).ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}
