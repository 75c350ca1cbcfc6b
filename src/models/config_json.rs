//! `config.json` essentials per family: the dimensions the estimator needs and the parameter
//! count computed from them by our own formulas.
//!
//! The same parser reads a cached checkpoint's `config.json` and the registry's entries in
//! `assets/models.toml` (which keep the original `config.json` key names), so a registry model
//! and the same model once downloaded give the same numbers.
//!
//! Counting conventions (they match the figures the model cards publish): tied input/output
//! embeddings count once; BERT and RoBERTa include the pooler (it is in their checkpoints);
//! non-parameter buffers (GPT-2's causal mask, rotary frequencies, position ids) never count.

use serde::Serialize;
use serde_json::Value;

/// A model family: one way of laying out weights and running a forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// GPT-2 and distilgpt2 (`model_type = "gpt2"`).
    Gpt2,
    /// BERT and BERT-shaped sentence-transformers checkpoints.
    Bert,
    /// RoBERTa (BERT with a position-id offset and one token type).
    Roberta,
    /// DistilBERT (no token types, no pooler).
    DistilBert,
    /// T5 and Flan-T5 (encoder-decoder).
    T5,
    /// GPT-NeoX / Pythia.
    GptNeox,
    /// Llama 2 and 3.
    Llama,
    /// Mistral.
    Mistral,
    /// Qwen2 / Qwen2.5 (Llama layout with q/k/v biases).
    Qwen2,
}

impl Family {
    /// Every family, in display order.
    pub const ALL: [Family; 9] = [
        Family::Gpt2,
        Family::Bert,
        Family::Roberta,
        Family::DistilBert,
        Family::T5,
        Family::GptNeox,
        Family::Llama,
        Family::Mistral,
        Family::Qwen2,
    ];

    /// The family of a `config.json` `model_type`.
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.model_type() == model_type)
    }

    /// The `model_type` string Hugging Face uses for this family.
    pub fn model_type(self) -> &'static str {
        match self {
            Self::Gpt2 => "gpt2",
            Self::Bert => "bert",
            Self::Roberta => "roberta",
            Self::DistilBert => "distilbert",
            Self::T5 => "t5",
            Self::GptNeox => "gpt_neox",
            Self::Llama => "llama",
            Self::Mistral => "mistral",
            Self::Qwen2 => "qwen2",
        }
    }

    /// Whether our engine has a forward pass for this family today.
    pub fn engine_supported(self) -> bool {
        !matches!(self, Self::T5 | Self::GptNeox)
    }

    /// Whether attention is causal (decoder-only language models).
    pub fn is_causal(self) -> bool {
        matches!(
            self,
            Self::Gpt2 | Self::GptNeox | Self::Llama | Self::Mistral | Self::Qwen2
        )
    }
}

impl std::fmt::Display for Family {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.model_type())
    }
}

/// Why a `config.json` could not be turned into an [`Architecture`].
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ConfigJsonError {
    /// `model_type` is missing or not a string.
    #[error("config.json has no \"model_type\"; it is not a Hugging Face transformers config")]
    NoModelType,
    /// A family we have no formulas for.
    #[error("model_type \"{model_type}\" is not a family NeuronMap knows (known: gpt2, bert, roberta, distilbert, t5, gpt_neox, llama, mistral, qwen2)")]
    UnknownFamily {
        /// The `model_type` found.
        model_type: String,
    },
    /// A field the family needs is missing or not a positive integer.
    #[error("config.json of a {family} model lacks \"{field}\" (a positive integer)")]
    MissingField {
        /// The family.
        family: Family,
        /// The key.
        field: &'static str,
    },
    /// Dimensions that cannot belong together (for example heads that do not divide the width).
    #[error("config.json of a {family} model is inconsistent: {reason}")]
    Inconsistent {
        /// The family.
        family: Family,
        /// What does not add up.
        reason: String,
    },
}

/// The dimensions of a transformer, in one vocabulary for every family.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Architecture {
    /// The family.
    pub family: Family,
    /// Token vocabulary.
    pub vocab_size: u64,
    /// Width of the residual stream (`d_model`).
    pub hidden_size: u64,
    /// Transformer blocks (the encoder's, for T5).
    pub num_layers: u64,
    /// Decoder blocks (T5 only; 0 otherwise).
    pub num_decoder_layers: u64,
    /// Attention heads.
    pub num_heads: u64,
    /// Key/value heads (grouped-query attention); equals `num_heads` without GQA.
    pub num_kv_heads: u64,
    /// Width of one head.
    pub head_dim: u64,
    /// Width of the MLP's hidden layer (`d_mlp`).
    pub intermediate_size: u64,
    /// Maximum sequence length (learned or rotary positions).
    pub max_positions: u64,
    /// Token-type (segment) embeddings (BERT family); 0 when none.
    pub type_vocab_size: u64,
    /// Output projection shares the input embedding.
    pub tied_embeddings: bool,
    /// Gated MLP (gate, up, down) instead of two matrices.
    pub gated_mlp: bool,
    /// The dtype the checkpoint was saved in (`torch_dtype`), if the config says.
    pub torch_dtype: Option<String>,
}

fn field_u64(config: &Value, key: &str) -> Option<u64> {
    config.get(key).and_then(Value::as_u64).filter(|v| *v > 0)
}

fn need(config: &Value, family: Family, field: &'static str) -> Result<u64, ConfigJsonError> {
    field_u64(config, field).ok_or(ConfigJsonError::MissingField { family, field })
}

fn bool_or(config: &Value, key: &str, default: bool) -> bool {
    config.get(key).and_then(Value::as_bool).unwrap_or(default)
}

/// Reads the essentials of a `config.json` (already parsed as JSON).
pub fn parse_config(config: &Value) -> Result<Architecture, ConfigJsonError> {
    let model_type = config
        .get("model_type")
        .and_then(Value::as_str)
        .ok_or(ConfigJsonError::NoModelType)?;
    let family =
        Family::from_model_type(model_type).ok_or_else(|| ConfigJsonError::UnknownFamily {
            model_type: model_type.to_string(),
        })?;
    let torch_dtype = config
        .get("torch_dtype")
        .or_else(|| config.get("dtype"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let need = |field| need(config, family, field);
    let arch = match family {
        Family::Gpt2 => {
            let hidden = need("n_embd")?;
            Architecture {
                family,
                vocab_size: need("vocab_size")?,
                hidden_size: hidden,
                num_layers: need("n_layer")?,
                num_decoder_layers: 0,
                num_heads: need("n_head")?,
                num_kv_heads: need("n_head")?,
                head_dim: 0,
                intermediate_size: field_u64(config, "n_inner").unwrap_or(4 * hidden),
                max_positions: need("n_positions")?,
                type_vocab_size: 0,
                tied_embeddings: bool_or(config, "tie_word_embeddings", true),
                gated_mlp: false,
                torch_dtype,
            }
        }
        Family::Bert | Family::Roberta => Architecture {
            family,
            vocab_size: need("vocab_size")?,
            hidden_size: need("hidden_size")?,
            num_layers: need("num_hidden_layers")?,
            num_decoder_layers: 0,
            num_heads: need("num_attention_heads")?,
            num_kv_heads: need("num_attention_heads")?,
            head_dim: 0,
            intermediate_size: need("intermediate_size")?,
            max_positions: need("max_position_embeddings")?,
            type_vocab_size: field_u64(config, "type_vocab_size").unwrap_or(2),
            tied_embeddings: true,
            gated_mlp: false,
            torch_dtype,
        },
        Family::DistilBert => Architecture {
            family,
            vocab_size: need("vocab_size")?,
            hidden_size: need("dim")?,
            num_layers: need("n_layers")?,
            num_decoder_layers: 0,
            num_heads: need("n_heads")?,
            num_kv_heads: need("n_heads")?,
            head_dim: 0,
            intermediate_size: need("hidden_dim")?,
            max_positions: need("max_position_embeddings")?,
            type_vocab_size: 0,
            tied_embeddings: true,
            gated_mlp: false,
            torch_dtype,
        },
        Family::T5 => {
            let layers = need("num_layers")?;
            let proj = config
                .get("feed_forward_proj")
                .and_then(Value::as_str)
                .unwrap_or("relu");
            Architecture {
                family,
                vocab_size: need("vocab_size")?,
                hidden_size: need("d_model")?,
                num_layers: layers,
                num_decoder_layers: field_u64(config, "num_decoder_layers").unwrap_or(layers),
                num_heads: need("num_heads")?,
                num_kv_heads: need("num_heads")?,
                head_dim: need("d_kv")?,
                intermediate_size: need("d_ff")?,
                max_positions: field_u64(config, "n_positions").unwrap_or(512),
                type_vocab_size: field_u64(config, "relative_attention_num_buckets").unwrap_or(32),
                tied_embeddings: bool_or(config, "tie_word_embeddings", true),
                gated_mlp: proj.starts_with("gated"),
                torch_dtype,
            }
        }
        Family::GptNeox => Architecture {
            family,
            vocab_size: need("vocab_size")?,
            hidden_size: need("hidden_size")?,
            num_layers: need("num_hidden_layers")?,
            num_decoder_layers: 0,
            num_heads: need("num_attention_heads")?,
            num_kv_heads: need("num_attention_heads")?,
            head_dim: 0,
            intermediate_size: need("intermediate_size")?,
            max_positions: need("max_position_embeddings")?,
            type_vocab_size: 0,
            tied_embeddings: bool_or(config, "tie_word_embeddings", false),
            gated_mlp: false,
            torch_dtype,
        },
        Family::Llama | Family::Mistral | Family::Qwen2 => {
            let heads = need("num_attention_heads")?;
            Architecture {
                family,
                vocab_size: need("vocab_size")?,
                hidden_size: need("hidden_size")?,
                num_layers: need("num_hidden_layers")?,
                num_decoder_layers: 0,
                num_heads: heads,
                num_kv_heads: field_u64(config, "num_key_value_heads").unwrap_or(heads),
                head_dim: field_u64(config, "head_dim").unwrap_or(0),
                intermediate_size: need("intermediate_size")?,
                max_positions: need("max_position_embeddings")?,
                type_vocab_size: 0,
                tied_embeddings: bool_or(config, "tie_word_embeddings", false),
                gated_mlp: true,
                torch_dtype,
            }
        }
    };
    arch.finish()
}

impl Architecture {
    /// Fills in the head width and checks that the dimensions fit together.
    fn finish(mut self) -> Result<Self, ConfigJsonError> {
        if self.head_dim == 0 {
            if self.hidden_size % self.num_heads != 0 {
                return Err(ConfigJsonError::Inconsistent {
                    family: self.family,
                    reason: format!(
                        "{} heads do not divide the width {}",
                        self.num_heads, self.hidden_size
                    ),
                });
            }
            self.head_dim = self.hidden_size / self.num_heads;
        }
        if self.num_heads % self.num_kv_heads != 0 {
            return Err(ConfigJsonError::Inconsistent {
                family: self.family,
                reason: format!(
                    "{} key/value heads do not divide {} attention heads",
                    self.num_kv_heads, self.num_heads
                ),
            });
        }
        Ok(self)
    }

    /// Width of the concatenated heads (equals `hidden_size` except for some T5/Llama configs).
    pub fn attention_width(&self) -> u64 {
        self.num_heads * self.head_dim
    }

    /// Parameters of the embeddings (token, learned positions, token types, embedding norm).
    pub fn embedding_parameters(&self) -> u64 {
        let d = self.hidden_size;
        let tokens = self.vocab_size * d;
        match self.family {
            Family::Gpt2 => tokens + self.max_positions * d,
            Family::Bert | Family::Roberta => {
                tokens + self.max_positions * d + self.type_vocab_size * d + 2 * d
            }
            Family::DistilBert => tokens + self.max_positions * d + 2 * d,
            Family::T5 | Family::GptNeox | Family::Llama | Family::Mistral | Family::Qwen2 => {
                tokens
            }
        }
    }

    /// Parameters of one transformer block (the encoder's, for T5).
    pub fn block_parameters(&self) -> u64 {
        let d = self.hidden_size;
        let a = self.attention_width();
        let kv = self.num_kv_heads * self.head_dim;
        let m = self.intermediate_size;
        // Attention and MLP matrices with biases, and two LayerNorms (weight and bias).
        let biased = 3 * (d * a + a) + (a * d + d) + (d * m + m) + (m * d + d) + 4 * d;
        match self.family {
            Family::Gpt2 | Family::Bert | Family::Roberta | Family::DistilBert => biased,
            Family::GptNeox => biased,
            // No biases; RMS norms have a weight only.
            Family::T5 => self.t5_attention() + self.t5_mlp() + 2 * d,
            Family::Llama | Family::Mistral => d * a + 2 * d * kv + a * d + 3 * d * m + 2 * d,
            Family::Qwen2 => (d * a + a) + 2 * (d * kv + kv) + a * d + 3 * d * m + 2 * d,
        }
    }

    fn t5_attention(&self) -> u64 {
        4 * self.hidden_size * self.attention_width()
    }

    fn t5_mlp(&self) -> u64 {
        let matrices = if self.gated_mlp { 3 } else { 2 };
        matrices * self.hidden_size * self.intermediate_size
    }

    /// Parameters after the last block: final norm, pooler, untied output head.
    pub fn head_parameters(&self) -> u64 {
        let d = self.hidden_size;
        let untied_head = if self.tied_embeddings {
            0
        } else {
            self.vocab_size * d
        };
        match self.family {
            Family::Gpt2 | Family::GptNeox => 2 * d + untied_head,
            // The pooler (dense + bias); BERT has no final norm.
            Family::Bert | Family::Roberta => d * d + d,
            Family::DistilBert => 0,
            Family::T5 => {
                // Encoder final norm + relative position bias of the first encoder block, the
                // decoder (self-attention, cross-attention, MLP, three norms per block), its
                // relative bias and final norm.
                let bias = self.type_vocab_size * self.num_heads;
                let decoder_block = 2 * self.t5_attention() + self.t5_mlp() + 3 * d;
                d + bias + self.num_decoder_layers * decoder_block + bias + d + untied_head
            }
            Family::Llama | Family::Mistral | Family::Qwen2 => d + untied_head,
        }
    }

    /// Total parameters, from the formulas (tied embeddings counted once).
    pub fn parameter_count(&self) -> u64 {
        self.embedding_parameters()
            + self.num_layers * self.block_parameters()
            + self.head_parameters()
    }

    /// Parameters the engine loads when the forward pass stops after block `last_block`
    /// (0-based): embeddings and blocks `0..=last_block`, no head.
    pub fn parameters_through_block(&self, last_block: u64) -> u64 {
        let blocks = (last_block + 1).min(self.num_layers);
        self.embedding_parameters() + blocks * self.block_parameters()
    }

    /// Bytes per element of the checkpoint's saved dtype (2 when it says f16/bf16, else 4).
    pub fn saved_dtype_bytes(&self) -> u64 {
        match self.torch_dtype.as_deref() {
            Some("float16" | "bfloat16" | "half") => 2,
            _ => 4,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gpt2_config_gives_the_published_count() {
        let arch = parse_config(&json!({
            "model_type": "gpt2", "vocab_size": 50257, "n_positions": 1024,
            "n_embd": 768, "n_layer": 12, "n_head": 12, "n_inner": null
        }))
        .unwrap();
        assert_eq!(arch.intermediate_size, 3072);
        assert_eq!(arch.head_dim, 64);
        assert_eq!(arch.parameter_count(), 124_439_808);
    }

    #[test]
    fn llama_with_grouped_query_attention_counts_smaller_kv_projections() {
        let mha = parse_config(&json!({
            "model_type": "llama", "vocab_size": 1000, "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 8,
            "max_position_embeddings": 256
        }))
        .unwrap();
        let gqa = parse_config(&json!({
            "model_type": "llama", "vocab_size": 1000, "hidden_size": 64,
            "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 8,
            "num_key_value_heads": 2, "max_position_embeddings": 256
        }))
        .unwrap();
        // k and v shrink from 64x64 to 64x16 in both blocks.
        assert_eq!(
            mha.parameter_count() - gqa.parameter_count(),
            2 * 2 * 64 * 48
        );
    }

    #[test]
    fn missing_field_names_the_key_and_family() {
        let err = parse_config(&json!({"model_type": "bert", "vocab_size": 10})).unwrap_err();
        assert!(err.to_string().contains("hidden_size"), "{err}");
        assert!(err.to_string().contains("bert"), "{err}");
    }

    #[test]
    fn unknown_family_is_named() {
        let err = parse_config(&json!({"model_type": "mamba"})).unwrap_err();
        assert!(err.to_string().contains("\"mamba\""), "{err}");
    }

    #[test]
    fn heads_that_do_not_divide_the_width_are_refused() {
        let err = parse_config(&json!({
            "model_type": "gpt2", "vocab_size": 10, "n_positions": 8,
            "n_embd": 10, "n_layer": 1, "n_head": 3
        }))
        .unwrap_err();
        assert!(matches!(err, ConfigJsonError::Inconsistent { .. }), "{err}");
    }
}
