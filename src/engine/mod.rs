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

use crate::models::hf_cache;
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

/// Turns `--model` into a folder: a folder path as is; an `org/name` (or bare `name`) id through
/// the Hugging Face hub cache found as `huggingface_hub` finds it ([`hf_cache::cache_root`]).
pub fn resolve_model_dir(model: &str) -> Result<PathBuf, EngineError> {
    resolve_model_dir_in(model, hf_cache::cache_root(&hf_cache::process_env))
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
    hf_cache::resolve_snapshot(&cache, model, None).map_err(|e| EngineError::ModelNotFound {
        model: model.to_string(),
        hint: format!(
            "not a folder; {e} (looked in {})",
            cache.join(hf_cache::repo_folder(model)).display()
        ),
    })
}
