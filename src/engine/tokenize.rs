//! Tokenisation with the tokenizers crate from `tokenizer.json`, with padding switched off and
//! truncation set explicitly (a checkpoint's own file may force padding to 128), and BOS/EOS as
//! the checkpoint's tokenizer files say.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use super::error::EngineError;

/// The tokenizer settings a run used, recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenizerSettings {
    /// File name inside the model folder.
    pub file: String,
    /// sha256 of tokenizer.json.
    pub sha256: String,
    /// Special tokens from the tokenizer's post-processor are added.
    pub add_special_tokens: bool,
    /// Always `none`: prompts are stored without padding (batches are padded internally).
    pub padding: String,
    /// Prompts longer than this are cut.
    pub max_length: usize,
    /// Which end is cut.
    pub truncation_side: String,
    /// BOS prepended because tokenizer_config.json asks for it and the post-processor does not.
    pub prepend_bos: Option<u32>,
    /// EOS appended because tokenizer_config.json asks for it and the post-processor does not.
    pub append_eos: Option<u32>,
}

/// A tokenizer configured for one run.
pub struct PromptTokenizer {
    tok: Tokenizer,
    path: PathBuf,
    /// What the run records.
    pub settings: TokenizerSettings,
}

impl PromptTokenizer {
    /// Loads `dir/tokenizer.json`, overrides its padding and sets truncation to `max_len`.
    pub fn load(dir: &Path, max_len: usize) -> Result<Self, EngineError> {
        let path = dir.join("tokenizer.json");
        if !path.is_file() {
            return Err(EngineError::MissingTokenizer {
                dir: dir.to_path_buf(),
            });
        }
        let bytes = std::fs::read(&path).map_err(|e| EngineError::Tokenizer {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        let bad = |detail: String| EngineError::Tokenizer {
            path: path.clone(),
            detail,
        };
        let mut tok = Tokenizer::from_bytes(&bytes).map_err(|e| bad(e.to_string()))?;
        tok.with_padding(None);
        tok.with_truncation(Some(TruncationParams {
            direction: TruncationDirection::Right,
            max_length: max_len,
            strategy: TruncationStrategy::LongestFirst,
            stride: 0,
        }))
        .map_err(|e| bad(e.to_string()))?;
        let extra = TokenizerConfig::load(dir)?;
        let probe = tok
            .encode("a", true)
            .map_err(|e| bad(e.to_string()))?
            .get_ids()
            .to_vec();
        let prepend_bos = extra
            .bos
            .filter(|_| extra.add_bos)
            .and_then(|t| tok.token_to_id(&t))
            .filter(|id| probe.first() != Some(id));
        let append_eos = extra
            .eos
            .filter(|_| extra.add_eos)
            .and_then(|t| tok.token_to_id(&t))
            .filter(|id| probe.last() != Some(id));
        let settings = TokenizerSettings {
            file: "tokenizer.json".into(),
            sha256: format!("{:x}", Sha256::digest(&bytes)),
            add_special_tokens: true,
            padding: "none".into(),
            max_length: max_len,
            truncation_side: "right".into(),
            prepend_bos,
            append_eos,
        };
        Ok(Self {
            tok,
            path,
            settings,
        })
    }

    /// Token ids of one prompt (at most `max_length`, at least one).
    pub fn encode(&self, text: &str, index: usize) -> Result<Vec<u32>, EngineError> {
        let enc = self
            .tok
            .encode(text, true)
            .map_err(|e| EngineError::Tokenizer {
                path: self.path.clone(),
                detail: format!("prompt {index}: {e}"),
            })?;
        let mut ids = enc.get_ids().to_vec();
        if let Some(bos) = self.settings.prepend_bos {
            ids.insert(0, bos);
        }
        if let Some(eos) = self.settings.append_eos {
            ids.push(eos);
        }
        let max = self.settings.max_length;
        if ids.len() > max {
            let eos = self.settings.append_eos;
            ids.truncate(max);
            if let Some(eos) = eos {
                ids[max - 1] = eos;
            }
        }
        if ids.is_empty() {
            return Err(EngineError::Input {
                path: PathBuf::from("prompt"),
                detail: format!(
                    "prompt {index} gives no tokens (an empty prompt with a tokenizer that adds no BOS); remove it"
                ),
            });
        }
        Ok(ids)
    }
}

/// The parts of tokenizer_config.json that decide BOS/EOS.
#[derive(Default)]
struct TokenizerConfig {
    add_bos: bool,
    add_eos: bool,
    bos: Option<String>,
    eos: Option<String>,
}

impl TokenizerConfig {
    /// Reads `dir/tokenizer_config.json`; a missing file means no extra BOS/EOS, a broken one
    /// is an error (transformers would refuse it too).
    fn load(dir: &Path) -> Result<Self, EngineError> {
        let path = dir.join("tokenizer_config.json");
        let Ok(text) = std::fs::read_to_string(&path) else {
            return Ok(Self::default());
        };
        let json = serde_json::from_str::<Value>(&text).map_err(|e| EngineError::Tokenizer {
            path: path.clone(),
            detail: format!("not valid JSON ({e}); fix or remove the file"),
        })?;
        let token = |key: &str| match json.get(key) {
            Some(Value::String(s)) => Some(s.clone()),
            Some(Value::Object(o)) => o.get("content").and_then(Value::as_str).map(str::to_string),
            _ => None,
        };
        Ok(Self {
            add_bos: json.get("add_bos_token").and_then(Value::as_bool) == Some(true),
            add_eos: json.get("add_eos_token").and_then(Value::as_bool) == Some(true),
            bos: token("bos_token"),
            eos: token("eos_token"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(family: &str) -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("fixtures")
            .join(family)
    }

    /// A model folder with `family`'s tokenizer.json and the given tokenizer_config.json text.
    fn folder(family: &str, config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::copy(
            fixture(family).join("tokenizer.json"),
            dir.path().join("tokenizer.json"),
        )
        .unwrap();
        std::fs::write(dir.path().join("tokenizer_config.json"), config).unwrap();
        dir
    }

    #[test]
    fn tokenizer_config_adds_the_bos_and_eos_the_post_processor_lacks() {
        // GPT-2's post-processor adds nothing; the config asks for both (object and string form).
        let plain = PromptTokenizer::load(&fixture("gpt2"), 64).unwrap();
        let base = plain.encode("Hello world", 0).unwrap();
        let eot = plain.tok.token_to_id("<|endoftext|>").unwrap();
        let dir = folder(
            "gpt2",
            r#"{"add_bos_token": true, "add_eos_token": true,
                "bos_token": {"content": "<|endoftext|>"}, "eos_token": "<|endoftext|>"}"#,
        );
        let tok = PromptTokenizer::load(dir.path(), 64).unwrap();
        assert_eq!(tok.settings.prepend_bos, Some(eot));
        assert_eq!(tok.settings.append_eos, Some(eot));
        let ids = tok.encode("Hello world", 0).unwrap();
        assert_eq!(ids.len(), base.len() + 2);
        assert_eq!(ids[0], eot);
        assert_eq!(&ids[1..=base.len()], &base[..]);
        assert_eq!(*ids.last().unwrap(), eot);
        // Truncated to 3: BOS, the first token, and the EOS kept at the end.
        let short = PromptTokenizer::load(dir.path(), 3).unwrap();
        assert_eq!(
            short.encode("Hello world", 0).unwrap(),
            vec![eot, base[0], eot]
        );
    }

    #[test]
    fn a_bos_the_post_processor_already_adds_is_not_doubled() {
        let plain = PromptTokenizer::load(&fixture("llama"), 64).unwrap();
        let base = plain.encode("Hello world", 0).unwrap();
        let bos = plain.tok.token_to_id("<s>").unwrap();
        assert_eq!(base[0], bos, "the fixture's post-processor adds <s>");
        let dir = folder("llama", r#"{"add_bos_token": true, "bos_token": "<s>"}"#);
        let tok = PromptTokenizer::load(dir.path(), 64).unwrap();
        assert_eq!(tok.settings.prepend_bos, None);
        assert_eq!(tok.encode("Hello world", 0).unwrap(), base);
    }

    #[test]
    fn a_broken_tokenizer_config_is_named() {
        let dir = folder("gpt2", "{ not json");
        let err = PromptTokenizer::load(dir.path(), 64)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("tokenizer_config.json"), "{err}");
        assert!(err.contains("not valid JSON"), "{err}");
    }
}
