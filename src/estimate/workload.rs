//! What is being estimated: the model's dimensions, the analysis, batch, sequence length, dtype
//! and the selected hooks (reduced to what memory depends on).

use serde::Serialize;

use crate::engine::error::EngineError;
use crate::engine::families::{self, AttnDims, HookCatalog};
use crate::engine::hooks::{HookSelection, HookSite, HookSpec};
use crate::engine::request::Analysis;
use crate::models::{Architecture, Family};

/// Element type of the weights and activations on the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DType {
    /// 32-bit float (the engine's only dtype on the CPU).
    F32,
    /// IEEE half.
    F16,
    /// bfloat16.
    Bf16,
}

impl DType {
    /// Bytes per element.
    pub fn bytes(self) -> u64 {
        match self {
            Self::F32 => 4,
            Self::F16 | Self::Bf16 => 2,
        }
    }

    /// `f32`, `f16`, `bf16`.
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "f32",
            Self::F16 => "f16",
            Self::Bf16 => "bf16",
        }
    }

    /// Parses `f32`/`float32`, `f16`/`float16`/`half`, `bf16`/`bfloat16`.
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "f32" | "float32" | "float" => Some(Self::F32),
            "f16" | "float16" | "half" => Some(Self::F16),
            "bf16" | "bfloat16" => Some(Self::Bf16),
            _ => None,
        }
    }
}

/// The analyses the estimator knows (the engine implements the first three today).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnalysisKind {
    /// Selected hooks streamed to shards.
    Activations,
    /// Streamed per-hook statistics.
    Stats,
    /// Attention patterns, one [head, q, k] tensor per prompt and layer.
    Attention,
    /// Gradient of a target logit with respect to the input embeddings (needs a backward pass
    /// through the whole model and the logits).
    Saliency,
    /// Projections of hook activations onto a bank of concept directions, streamed.
    Concepts,
}

impl AnalysisKind {
    /// Every analysis, in matrix column order.
    pub const ALL: [AnalysisKind; 5] = [
        Self::Activations,
        Self::Stats,
        Self::Attention,
        Self::Saliency,
        Self::Concepts,
    ];

    /// The name used on the command line and in JSON.
    pub fn name(self) -> &'static str {
        match self {
            Self::Activations => "activations",
            Self::Stats => "stats",
            Self::Attention => "attention",
            Self::Saliency => "saliency",
            Self::Concepts => "concepts",
        }
    }

    /// Parses a name from [`AnalysisKind::name`].
    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.name() == text)
    }

    /// Whether the engine implements it today.
    pub fn engine_supported(self) -> bool {
        self.engine_analysis().is_some()
    }

    /// The engine's request type for it, when the engine implements it.
    pub fn engine_analysis(self) -> Option<Analysis> {
        match self {
            Self::Activations => Some(Analysis::Activations),
            Self::Stats => Some(Analysis::Stats),
            Self::Attention => Some(Analysis::Attention),
            Self::Saliency | Self::Concepts => None,
        }
    }

    /// Hook globs used when the user names none.
    pub fn default_hooks(self) -> &'static [&'static str] {
        match self {
            Self::Activations | Self::Stats | Self::Concepts => &["blocks.*.hook_resid_post"],
            Self::Attention => &["blocks.*.attn.hook_pattern"],
            Self::Saliency => &["hook_embed"],
        }
    }
}

impl From<Analysis> for AnalysisKind {
    fn from(a: Analysis) -> Self {
        match a {
            Analysis::Activations => Self::Activations,
            Analysis::Stats => Self::Stats,
            Analysis::Attention => Self::Attention,
        }
    }
}

/// The engine family whose forward pass (and hook catalogue) a model gets; families the engine
/// cannot run yet get the nearest one, so the matrix can still show an estimate for them.
pub fn engine_family(arch: &Architecture) -> families::Family {
    match arch.family {
        Family::Gpt2 => families::Family::Gpt2,
        Family::Bert | Family::Roberta | Family::DistilBert | Family::T5 => families::Family::Bert,
        Family::GptNeox | Family::Llama | Family::Mistral | Family::Qwen2 => {
            families::Family::Llama
        }
    }
}

/// The engine's hook catalogue of a model, built by the same constructor the engine's family
/// loaders use ([`HookCatalog::for_family`]).
pub fn hook_catalog(arch: &Architecture) -> HookCatalog {
    HookCatalog::for_family(
        engine_family(arch),
        arch.num_layers as usize,
        arch.hidden_size as usize,
        AttnDims {
            heads: arch.num_heads as usize,
            kv_heads: arch.num_kv_heads as usize,
            d_head: arch.head_dim as usize,
        },
        arch.intermediate_size as usize,
        arch.type_vocab_size > 0,
    )
}

/// The selected hooks (the engine's own selection), and how far the forward pass runs.
#[derive(Debug, Clone, PartialEq)]
pub struct HookPlan {
    /// Selected hook points in forward order, as the engine names and shapes them.
    pub hooks: Vec<HookSpec>,
    /// Blocks the forward pass runs (the engine stops after the last block a hook needs).
    pub blocks_needed: u64,
    /// The final norm runs (a final-norm hook is selected).
    pub needs_final: bool,
}

impl HookPlan {
    /// Selects hooks matching any of `globs` (empty: the analysis's defaults) exactly as
    /// `neuronmap extract` does ([`HookSelection::select`] over the engine's catalogue): the
    /// same names, and the same error with close matches for a glob that matches nothing.
    pub fn select(
        arch: &Architecture,
        analysis: AnalysisKind,
        globs: &[String],
    ) -> Result<Self, EngineError> {
        let defaults: Vec<String>;
        let globs = if globs.is_empty() {
            defaults = analysis
                .default_hooks()
                .iter()
                .map(|s| s.to_string())
                .collect();
            &defaults
        } else {
            globs
        };
        let available = hook_catalog(arch).build();
        let sel = HookSelection::select(&available, globs, arch.num_layers as usize)?;
        Ok(Self {
            hooks: sel.hooks,
            blocks_needed: sel.blocks_needed as u64,
            needs_final: sel.needs_final,
        })
    }

    /// Number of selected hook points.
    pub fn count(&self) -> usize {
        self.hooks.len()
    }

    /// The last block holding a selected hook (`None`: embeddings only).
    pub fn last_block(&self) -> Option<u64> {
        self.blocks_needed.checked_sub(1)
    }

    /// The same selection limited to blocks `0..=last` (what "stop after block N" means).
    pub fn truncated(&self, last: u64) -> Self {
        let hooks: Vec<HookSpec> = self
            .hooks
            .iter()
            .filter(|h| match h.site {
                HookSite::Embed => true,
                HookSite::Block(i) => i as u64 <= last,
                HookSite::Final => false,
            })
            .cloned()
            .collect();
        let blocks_needed = hooks
            .iter()
            .filter_map(|h| match h.site {
                HookSite::Block(i) => Some(i as u64 + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        Self {
            hooks,
            blocks_needed,
            needs_final: false,
        }
    }

    /// Blocks that hold at least one selected hook.
    pub fn blocks_with_hooks(&self) -> Vec<u64> {
        let mut blocks: Vec<u64> = self
            .hooks
            .iter()
            .filter_map(|h| match h.site {
                HookSite::Block(i) => Some(i as u64),
                _ => None,
            })
            .collect();
        blocks.dedup();
        blocks
    }

    /// The same selection keeping every `every`-th block that has hooks, the first and the
    /// last included: fewer captures over the same depth (the forward pass still runs as far).
    pub fn thinned(&self, every: usize) -> Self {
        let hooked = self.blocks_with_hooks();
        let mut keep: Vec<u64> = hooked.iter().copied().step_by(every.max(1)).collect();
        if let Some(last) = hooked.last() {
            if keep.last() != Some(last) {
                keep.push(*last);
            }
        }
        let mut plan = self.clone();
        plan.hooks.retain(|h| match h.site {
            HookSite::Block(i) => keep.contains(&(i as u64)),
            _ => true,
        });
        plan
    }
}

/// What the input file says about the prompts (what the engine's buffers depend on).
#[derive(Debug, Clone, PartialEq)]
pub struct InputShape {
    /// Prompts in the file (`None`: unknown, as for the matrix; shards are then full).
    pub prompts: Option<u64>,
    /// Bytes of the longest prompt (tokenising it is the largest tokenizer transient).
    pub longest_prompt_bytes: u64,
    /// Mean tokens per prompt over the first prompts (the engine sizes shards with it).
    pub mean_tokens: f64,
    /// Seconds the model's tokenizer took per prompt on the first prompts, on this machine (the
    /// engine tokenises every prompt of a batch before its forward pass); 0 when not measured.
    pub tokenize_seconds_per_prompt: f64,
}

impl InputShape {
    /// Prompts of `seq` tokens of English text (about 4 bytes per token), count unknown.
    pub fn assumed(seq: u64) -> Self {
        Self {
            prompts: None,
            longest_prompt_bytes: seq * 4,
            mean_tokens: seq as f64,
            tokenize_seconds_per_prompt: 0.0,
        }
    }
}

/// One estimate's inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Workload {
    /// The model.
    pub arch: Architecture,
    /// The analysis.
    pub analysis: AnalysisKind,
    /// Prompts per forward pass.
    pub batch: u64,
    /// Padded tokens per prompt.
    pub seq: u64,
    /// Compute dtype (`None`: the device's default).
    pub dtype: Option<DType>,
    /// Selected hooks.
    pub hooks: HookPlan,
    /// The prompts.
    pub input: InputShape,
    /// Size of the model's tokenizer.json (`None`: not on disk; estimated from the vocabulary).
    pub tokenizer_file_bytes: Option<u64>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::registry;

    fn gpt2() -> Architecture {
        registry::builtin()
            .unwrap()
            .into_iter()
            .find(|e| e.id == "gpt2")
            .unwrap()
            .architecture
    }

    #[test]
    fn default_hooks_select_every_residual_stream() {
        let plan = HookPlan::select(&gpt2(), AnalysisKind::Activations, &[]).unwrap();
        assert_eq!(plan.count(), 12);
        assert_eq!(plan.last_block(), Some(11));
        assert!(plan.hooks.iter().all(|h| h.per_token_elems() == 768));
    }

    #[test]
    fn globs_pick_blocks_and_patterns() {
        let globs = [
            "blocks.2.attn.hook_pattern".to_string(),
            "hook_embed".to_string(),
        ];
        let plan = HookPlan::select(&gpt2(), AnalysisKind::Attention, &globs).unwrap();
        assert_eq!(plan.count(), 2);
        assert_eq!(plan.last_block(), Some(2));
        assert_eq!(plan.hooks[1].shape, vec![12]);
        let err = HookPlan::select(&gpt2(), AnalysisKind::Attention, &["blocks.[".to_string()])
            .unwrap_err();
        assert!(err.to_string().contains("blocks.["), "{err}");
    }

    #[test]
    fn unknown_hooks_get_the_engines_close_matches() {
        let err = HookPlan::select(
            &gpt2(),
            AnalysisKind::Activations,
            &["blocks.*.hook_resid_pots".to_string()],
        )
        .unwrap_err();
        match err {
            EngineError::UnknownHook { close, .. } => {
                assert_eq!(close[0], "blocks.0.hook_resid_post")
            }
            other => panic!("{other}"),
        }
    }

    #[test]
    fn truncating_and_thinning_keep_what_they_promise() {
        let plan = HookPlan::select(&gpt2(), AnalysisKind::Activations, &[]).unwrap();
        let cut = plan.truncated(3);
        assert_eq!(cut.last_block(), Some(3));
        assert_eq!(cut.blocks_with_hooks(), vec![0, 1, 2, 3]);
        let thin = plan.thinned(4);
        assert_eq!(thin.blocks_with_hooks(), vec![0, 4, 8, 11]);
        assert_eq!(thin.last_block(), Some(11));
    }

    #[test]
    fn dtype_names_parse() {
        assert_eq!(DType::parse("bfloat16"), Some(DType::Bf16));
        assert_eq!(DType::parse("F16"), Some(DType::F16));
        assert_eq!(DType::parse("int8"), None);
    }
}
