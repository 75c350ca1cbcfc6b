//! The analysis engine: hooked forward passes on candle, tokenisation, streamed extraction and
//! the output format.
//!
//! Callers use [`run_extract`] (the job queue's workers and `neuronmap extract`) and
//! [`resolve_model_dir`]. Layout: [`hooks`] (names, globs, early stop), [`tokenize`],
//! [`families`] (GPT-2, BERT family, Llama family), [`run`] (batching, shards, resume),
//! [`output`] (manifest and shards), [`stats`].

pub mod capture;
pub mod error;
pub mod families;
pub mod hooks;
pub mod input;
pub mod output;
pub mod request;
pub mod run;
pub mod stats;
pub mod tokenize;
pub mod weights;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

pub use error::EngineError;
pub use request::{Analysis, ExtractRequest, RunOutcome, RunProgress};
pub use run::{run_extract_with, EngineOptions};

/// Runs one extraction: loads and checks everything before touching `req.out`, then streams
/// the selected hooks to shards (or statistics), reporting progress after every batch. When
/// `cancel` becomes true the run finishes the current shard, leaves a resumable manifest and
/// returns `Ok(RunOutcome::Cancelled)`.
pub fn run_extract(
    req: &ExtractRequest,
    on_progress: &mut dyn FnMut(&RunProgress),
    cancel: &AtomicBool,
) -> Result<RunOutcome, EngineError> {
    run_extract_with(req, &EngineOptions::default(), on_progress, cancel)
}

/// Turns `--model` into a folder: a folder path as is; an `org/name` id through the Hugging
/// Face hub cache (`models--org--name/refs/main` -> `snapshots/<rev>`).
pub fn resolve_model_dir(model: &str) -> Result<PathBuf, EngineError> {
    resolve_model_dir_in(model, run::hub_cache_dir())
}

/// [`resolve_model_dir`] with an explicit hub cache folder (`None`: there is none).
pub fn resolve_model_dir_in(model: &str, cache: Option<PathBuf>) -> Result<PathBuf, EngineError> {
    let path = Path::new(model);
    if path.is_dir() {
        return Ok(path.to_path_buf());
    }
    let looks_like_path = model.starts_with(['.', '/', '~']) || path.exists();
    let parts: Vec<&str> = model.split('/').collect();
    // Hub ids are `org/name`, or a bare `name` for the old top-level repos (gpt2, bert-base-uncased).
    if looks_like_path || parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        return Err(EngineError::ModelNotFound {
            model: model.to_string(),
            hint: "no such folder; give a model folder or a cached Hugging Face id (org/name, or name for old top-level repos like gpt2)"
                .into(),
        });
    }
    let Some(cache) = cache else {
        return Err(EngineError::ModelNotFound {
            model: model.to_string(),
            hint: "no Hugging Face cache location (set HF_HUB_CACHE or HF_HOME)".into(),
        });
    };
    let repo = cache.join(format!("models--{}", parts.join("--")));
    let not_cached = || {
        EngineError::ModelNotFound {
        model: model.to_string(),
        hint: format!(
            "not a folder and not in the Hugging Face cache ({}); download it first with `neuronmap pull {model}`",
            repo.display()
        ),
    }
    };
    let snapshots = repo.join("snapshots");
    let rev = match std::fs::read_to_string(repo.join("refs").join("main")) {
        Ok(r) => r.trim().to_string(),
        Err(_) => {
            let mut revs: Vec<PathBuf> = std::fs::read_dir(&snapshots)
                .map_err(|_| not_cached())?
                .flatten()
                .map(|e| e.path())
                .filter(|p| p.is_dir())
                .collect();
            if revs.len() != 1 {
                return Err(not_cached());
            }
            return revs.pop().ok_or_else(not_cached);
        }
    };
    let dir = snapshots.join(&rev);
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(not_cached())
    }
}
