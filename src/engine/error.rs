//! The engine's error type: every message names the thing that failed and says what to do.

use std::path::PathBuf;

/// Why an extraction could not start or could not go on.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The model folder or cache entry does not exist.
    #[error("model {model:?} not found: {hint}")]
    ModelNotFound {
        /// What the user asked for.
        model: String,
        /// Where we looked and what to do.
        hint: String,
    },
    /// The model folder has no safetensors weights.
    #[error("no safetensors weights in {dir}: expected model.safetensors or model.safetensors.index.json (convert .bin checkpoints to safetensors first)")]
    MissingWeights {
        /// The model folder.
        dir: PathBuf,
    },
    /// A weight file is unreadable, truncated or not safetensors.
    #[error("weight file {path} is unreadable or truncated ({detail}); download it again")]
    BadWeights {
        /// The weight file.
        path: PathBuf,
        /// What the reader said.
        detail: String,
    },
    /// A tensor the architecture needs is not in the weights.
    #[error("weight {name:?} is missing from the checkpoint in {dir}; the weights do not match config.json")]
    MissingTensor {
        /// Full tensor name (with prefix).
        name: String,
        /// The model folder.
        dir: PathBuf,
    },
    /// The model folder has no tokenizer.json.
    #[error(
        "no tokenizer.json in {dir}: the engine needs a fast-tokenizer file next to the weights"
    )]
    MissingTokenizer {
        /// The model folder.
        dir: PathBuf,
    },
    /// tokenizer.json could not be loaded or a prompt could not be encoded.
    #[error("tokenizer {path}: {detail}")]
    Tokenizer {
        /// The tokenizer file.
        path: PathBuf,
        /// What went wrong.
        detail: String,
    },
    /// config.json is missing or lacks a field.
    #[error("model config {path}: {detail}")]
    Config {
        /// The config file.
        path: PathBuf,
        /// What is wrong with it.
        detail: String,
    },
    /// The model's architecture is not one the engine implements.
    #[error("unsupported model family {model_type:?} in {path}; supported: gpt2, bert, roberta, distilbert, llama, mistral, qwen2")]
    UnsupportedFamily {
        /// `model_type` from config.json.
        model_type: String,
        /// The config file.
        path: PathBuf,
    },
    /// A hook glob matches no hook of this model.
    #[error("no hook of this model matches {pattern:?}{}", close_list(close))]
    UnknownHook {
        /// The glob as given.
        pattern: String,
        /// Hook names close to it.
        close: Vec<String>,
    },
    /// The request itself is wrong (flags, hooks for the analysis, sizes).
    #[error("{0}")]
    BadRequest(String),
    /// The prompt file is missing or malformed.
    #[error("input {path}: {detail}")]
    Input {
        /// The prompt file.
        path: PathBuf,
        /// What is wrong, with a line number where there is one.
        detail: String,
    },
    /// Writing to the output folder failed.
    #[error("cannot write {path}: {}", io_hint(source))]
    Output {
        /// The file being written.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `--resume` was asked for but the folder does not hold a matching earlier run.
    #[error("cannot resume in {dir}: {detail}")]
    Resume {
        /// The output folder.
        dir: PathBuf,
        /// Why not.
        detail: String,
    },
    /// The output folder already holds a run and `--resume` was not given.
    #[error("{dir} already holds an extraction (manifest.json); pass --resume to go on with it or choose another folder")]
    OutputExists {
        /// The output folder.
        dir: PathBuf,
    },
    /// The device could not be opened.
    #[error("device {device:?}: {detail}")]
    Device {
        /// The device string.
        device: String,
        /// What candle said.
        detail: String,
    },
    /// A tensor operation failed (a bug or an out-of-memory condition).
    #[error("tensor computation failed: {0}")]
    Compute(#[from] candle_core::Error),
}

fn close_list(close: &[String]) -> String {
    if close.is_empty() {
        "; see the README's hook table for the names".to_string()
    } else {
        format!("; close matches: {}", close.join(", "))
    }
}

fn io_hint(err: &std::io::Error) -> String {
    if is_disk_full(err) {
        format!("{err} (the disk is full: free space and run again with --resume)")
    } else {
        err.to_string()
    }
}

/// Whether an I/O error means "no space left on the device" (or over quota).
pub fn is_disk_full(err: &std::io::Error) -> bool {
    matches!(err.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        || err.kind() == std::io::ErrorKind::StorageFull
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_disk_message_says_what_to_do() {
        let err = EngineError::Output {
            path: PathBuf::from("/out/shard-00000.safetensors"),
            source: std::io::Error::from_raw_os_error(libc::ENOSPC),
        };
        let text = err.to_string();
        assert!(text.contains("disk is full"), "{text}");
        assert!(text.contains("shard-00000"), "{text}");
        let other = EngineError::Output {
            path: PathBuf::from("/out/x"),
            source: std::io::Error::from_raw_os_error(libc::EACCES),
        };
        assert!(!other.to_string().contains("disk is full"));
    }

    #[test]
    fn unknown_hook_lists_close_matches() {
        let err = EngineError::UnknownHook {
            pattern: "blocks.*.hook_resid_pots".into(),
            close: vec!["blocks.0.hook_resid_post".into()],
        };
        assert!(err
            .to_string()
            .contains("close matches: blocks.0.hook_resid_post"));
    }
}
