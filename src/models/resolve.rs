//! Turns the MODEL a user types (a folder, a cache id, a registry id) into a catalogue entry or
//! a local folder, with errors that say what to do.

use std::path::{Path, PathBuf};

use super::catalogue::{self, Catalogue, CatalogueEntry, CatalogueSettings, Source};
use super::hf_cache::{self, CacheError};
use super::registry::RegistryError;

/// Why a MODEL string could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ResolveError {
    /// Not a folder, not cached, not in the registry.
    #[error("unknown model \"{model}\": not a folder, not in the Hugging Face cache{cache}, not in the registry{hint}; see `neuronmap models`")]
    Unknown {
        /// What was asked for.
        model: String,
        /// ` at PATH` when a cache was searched.
        cache: String,
        /// `; did you mean ...` when something is close.
        hint: String,
    },
    /// In the registry but not downloaded, and the caller needs the files.
    #[error(
        "\"{model}\" is in the registry but not downloaded; run `neuronmap pull {model}` first"
    )]
    NotDownloaded {
        /// The id.
        model: String,
    },
    /// The cache has the repo but not the revision asked for.
    #[error(transparent)]
    Cache(#[from] CacheError),
    /// The built-in registry is broken.
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// A model found on disk.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedModel {
    /// The id (repo id, or the folder as given).
    pub id: String,
    /// The folder with `config.json`, the weights and the tokenizer.
    pub dir: PathBuf,
    /// The snapshot's commit for cache models.
    pub revision: Option<String>,
}

/// The local folder of MODEL: a folder path, or a cached repo id at `revision` (`None`: main).
pub fn resolve_model_dir(
    model: &str,
    revision: Option<&str>,
    settings: &CatalogueSettings,
) -> Result<ResolvedModel, ResolveError> {
    let path = Path::new(model);
    if path.is_dir() {
        return Ok(ResolvedModel {
            id: model.to_string(),
            dir: path.to_path_buf(),
            revision: None,
        });
    }
    if let Some(root) = &settings.cache_root {
        match hf_cache::resolve_snapshot(root, model, revision) {
            Ok(dir) => {
                let commit = dir.file_name().map(|n| n.to_string_lossy().into_owned());
                return Ok(ResolvedModel {
                    id: model.to_string(),
                    dir,
                    revision: commit,
                });
            }
            Err(CacheError::NotCached { .. }) => {}
            Err(other) => return Err(other.into()),
        }
    }
    let catalogue = Catalogue::load(&CatalogueSettings {
        cache_root: None,
        folders: Vec::new(),
    })?;
    if catalogue.find(model).is_some() {
        return Err(ResolveError::NotDownloaded {
            model: model.to_string(),
        });
    }
    Err(unknown(model, settings, &catalogue))
}

/// The catalogue entry of MODEL: a folder, a cached repo (at `revision`), or a registry model
/// that need not be downloaded (what `check` and the matrix need).
pub fn describe_model(
    model: &str,
    revision: Option<&str>,
    settings: &CatalogueSettings,
) -> Result<CatalogueEntry, ResolveError> {
    match resolve_model_dir(model, revision, settings) {
        Ok(found) => {
            let source = if Path::new(model).is_dir() {
                Source::Folder
            } else {
                Source::Cache
            };
            let mut entry = catalogue::inspect_dir(&found.dir, &found.id, source);
            entry.revision = found.revision.map(|c| c[..c.len().min(12)].to_string());
            Ok(entry)
        }
        Err(ResolveError::NotDownloaded { .. }) => {
            let registry = super::registry::builtin()?;
            registry
                .iter()
                .find(|r| r.id == model)
                .map(CatalogueEntry::from_registry)
                .ok_or_else(|| ResolveError::NotDownloaded {
                    model: model.to_string(),
                })
        }
        Err(other) => Err(other),
    }
}

fn unknown(model: &str, settings: &CatalogueSettings, catalogue: &Catalogue) -> ResolveError {
    let matches = catalogue.close_matches(model);
    ResolveError::Unknown {
        model: model.to_string(),
        cache: settings
            .cache_root
            .as_ref()
            .map(|r| format!(" at {}", r.display()))
            .unwrap_or_default(),
        hint: if matches.is_empty() {
            String::new()
        } else {
            format!("; did you mean {}", matches.join(", "))
        },
    }
}
