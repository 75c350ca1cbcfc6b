//! The registry of well-known models (`assets/models.toml`, embedded in the binary): each entry
//! keeps the public `config.json` keys, so the estimator works before anything is downloaded.

use serde::Deserialize;

use super::config_json::{self, Architecture, ConfigJsonError};

/// The registry file, embedded at build time.
pub const REGISTRY_TOML: &str = include_str!("../../assets/models.toml");

/// Why the registry could not be read (only possible with a broken build).
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The TOML does not parse.
    #[error("assets/models.toml is not valid: {0}; fix the file and rebuild")]
    Toml(#[from] toml::de::Error),
    /// An entry's config cannot be read.
    #[error("assets/models.toml entry \"{id}\": {source}")]
    Config {
        /// The entry.
        id: String,
        /// What is wrong.
        source: ConfigJsonError,
    },
    /// An entry's config table is not representable as JSON.
    #[error("assets/models.toml entry \"{id}\": config is not JSON-like: {message}")]
    NotJson {
        /// The entry.
        id: String,
        /// Why.
        message: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RegistryFile {
    model: Vec<RawEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEntry {
    id: String,
    #[serde(default)]
    gated: bool,
    config: toml::Table,
}

/// One registry model.
#[derive(Debug, Clone, PartialEq)]
pub struct RegistryEntry {
    /// Hugging Face repo id.
    pub id: String,
    /// The hub wants an accepted licence and a token before downloads work.
    pub gated: bool,
    /// The `config.json` essentials, as JSON.
    pub config: serde_json::Value,
    /// The dimensions read from `config`.
    pub architecture: Architecture,
}

/// Parses registry text (the embedded file, or another for tests).
pub fn parse(text: &str) -> Result<Vec<RegistryEntry>, RegistryError> {
    let file: RegistryFile = toml::from_str(text)?;
    file.model
        .into_iter()
        .map(|raw| {
            let config = serde_json::to_value(&raw.config).map_err(|e| RegistryError::NotJson {
                id: raw.id.clone(),
                message: e.to_string(),
            })?;
            let architecture =
                config_json::parse_config(&config).map_err(|source| RegistryError::Config {
                    id: raw.id.clone(),
                    source,
                })?;
            Ok(RegistryEntry {
                id: raw.id,
                gated: raw.gated,
                config,
                architecture,
            })
        })
        .collect()
}

/// The embedded registry.
pub fn builtin() -> Result<Vec<RegistryEntry>, RegistryError> {
    parse(REGISTRY_TOML)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::config_json::Family;

    fn count(id: &str) -> u64 {
        builtin()
            .unwrap()
            .into_iter()
            .find(|e| e.id == id)
            .unwrap_or_else(|| panic!("{id} not in the registry"))
            .architecture
            .parameter_count()
    }

    #[test]
    fn registry_counts_match_published_figures() {
        // Figures from the model cards / `model.num_parameters()` in transformers.
        assert_eq!(count("gpt2"), 124_439_808);
        assert_eq!(count("bert-base-uncased"), 109_482_240);
        assert_eq!(count("t5-small"), 60_506_624);
        assert_eq!(count("meta-llama/Llama-2-7b-hf"), 6_738_415_616);
    }

    #[test]
    fn registry_counts_match_more_published_figures() {
        assert_eq!(count("distilbert-base-uncased"), 66_362_880);
        assert_eq!(count("roberta-base"), 124_645_632);
        assert_eq!(count("EleutherAI/pythia-160m"), 162_322_944);
        assert_eq!(count("Qwen/Qwen2.5-0.5B"), 494_032_768);
        assert_eq!(count("meta-llama/Llama-3.2-1B"), 1_235_814_400);
        assert_eq!(count("meta-llama/Llama-3.1-8B"), 8_030_261_248);
        assert_eq!(count("mistralai/Mistral-7B-v0.1"), 7_241_732_096);
        assert_eq!(count("google/flan-t5-base"), 247_577_856);
        assert_eq!(count("t5-base"), 222_903_552);
        assert_eq!(count("Qwen/Qwen2.5-7B"), 7_615_616_512);
    }

    #[test]
    fn registry_lists_every_model_the_matrix_promises() {
        let ids: Vec<String> = builtin().unwrap().into_iter().map(|e| e.id).collect();
        for id in [
            "gpt2",
            "gpt2-medium",
            "gpt2-large",
            "gpt2-xl",
            "distilgpt2",
            "bert-base-uncased",
            "bert-large-uncased",
            "roberta-base",
            "distilbert-base-uncased",
            "sentence-transformers/all-MiniLM-L6-v2",
            "t5-small",
            "t5-base",
            "google/flan-t5-base",
            "EleutherAI/pythia-160m",
            "EleutherAI/pythia-1.4b",
            "meta-llama/Llama-2-7b-hf",
            "meta-llama/Llama-3.2-1B",
            "meta-llama/Llama-3.1-8B",
            "mistralai/Mistral-7B-v0.1",
            "Qwen/Qwen2.5-0.5B",
            "Qwen/Qwen2.5-7B",
        ] {
            assert!(ids.iter().any(|i| i == id), "{id} missing");
        }
    }

    #[test]
    fn bad_entry_names_the_model() {
        let err =
            parse("[[model]]\nid = \"x\"\n[model.config]\nmodel_type = \"gpt2\"\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("\"x\"") && msg.contains("n_embd"), "{msg}");
    }

    #[test]
    fn families_parse_from_the_registry() {
        let entries = builtin().unwrap();
        let t5 = entries
            .iter()
            .find(|e| e.id == "google/flan-t5-base")
            .unwrap();
        assert_eq!(t5.architecture.family, Family::T5);
        assert!(t5.architecture.gated_mlp && !t5.architecture.tied_embeddings);
    }
}
