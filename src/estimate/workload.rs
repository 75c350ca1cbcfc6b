//! What is being estimated: the model's dimensions, the analysis, batch, sequence length, dtype
//! and the selected hooks (reduced to what memory depends on).

use serde::Serialize;

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

/// How big one hook's tensor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookSize {
    /// `elements` per token ([pos, ...]).
    PerToken(u64),
    /// [head, q_pos, k_pos] per prompt: `heads` x S x S.
    Pattern(u64),
}

/// One hook point of a family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HookPoint {
    /// TransformerLens name, e.g. `blocks.3.hook_resid_post`.
    pub name: String,
    /// Block index (`None` for `hook_embed`, `hook_pos_embed`: before block 0; the final norm
    /// counts as after the last block).
    pub block: Option<u64>,
    /// Its size.
    pub size: HookSize,
}

/// Every hook point of a model, named as in TransformerLens.
pub fn hook_points(arch: &Architecture) -> Vec<HookPoint> {
    let d = arch.hidden_size;
    let a = arch.attention_width();
    let kv = arch.num_kv_heads * arch.head_dim;
    let m = arch.intermediate_size;
    let h = arch.num_heads;
    let mut hooks = vec![HookPoint {
        name: "hook_embed".to_string(),
        block: None,
        size: HookSize::PerToken(d),
    }];
    if matches!(
        arch.family,
        Family::Gpt2 | Family::Bert | Family::Roberta | Family::DistilBert
    ) {
        hooks.push(HookPoint {
            name: "hook_pos_embed".to_string(),
            block: None,
            size: HookSize::PerToken(d),
        });
    }
    for i in 0..arch.num_layers {
        let per_block = [
            ("hook_resid_pre", HookSize::PerToken(d)),
            ("ln1.hook_normalized", HookSize::PerToken(d)),
            ("attn.hook_q", HookSize::PerToken(a)),
            ("attn.hook_k", HookSize::PerToken(kv)),
            ("attn.hook_v", HookSize::PerToken(kv)),
            ("attn.hook_attn_scores", HookSize::Pattern(h)),
            ("attn.hook_pattern", HookSize::Pattern(h)),
            ("attn.hook_z", HookSize::PerToken(a)),
            ("hook_attn_out", HookSize::PerToken(d)),
            ("hook_resid_mid", HookSize::PerToken(d)),
            ("mlp.hook_pre", HookSize::PerToken(m)),
            ("mlp.hook_post", HookSize::PerToken(m)),
            ("hook_mlp_out", HookSize::PerToken(d)),
            ("hook_resid_post", HookSize::PerToken(d)),
        ];
        hooks.extend(per_block.into_iter().map(|(name, size)| HookPoint {
            name: format!("blocks.{i}.{name}"),
            block: Some(i),
            size,
        }));
    }
    if !matches!(
        arch.family,
        Family::Bert | Family::Roberta | Family::DistilBert
    ) {
        hooks.push(HookPoint {
            name: "ln_final.hook_normalized".to_string(),
            block: Some(arch.num_layers.saturating_sub(1)),
            size: HookSize::PerToken(d),
        });
    }
    hooks
}

/// A bad `--hooks` glob.
#[derive(Debug, thiserror::Error)]
#[error("bad hook glob \"{glob}\": {message}; use names like blocks.*.hook_resid_post")]
pub struct HookGlobError {
    /// The glob.
    pub glob: String,
    /// The parser's message.
    pub message: String,
}

/// The selected hooks, reduced to what memory depends on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct HookPlan {
    /// Per-token elements captured, per block (index = block; embeddings count in block 0).
    pub per_token: Vec<u64>,
    /// Heads of [head, S, S] hooks captured, per block.
    pub pattern_heads: Vec<u64>,
    /// Number of selected hook points.
    pub count: usize,
    /// Last block the forward pass must run (`None`: only embeddings).
    pub last_block: Option<u64>,
    /// The final norm's output is selected.
    pub needs_final_norm: bool,
}

impl HookPlan {
    /// Selects hooks matching any of `globs` (empty: the analysis's defaults).
    pub fn select(
        arch: &Architecture,
        analysis: AnalysisKind,
        globs: &[String],
    ) -> Result<Self, HookGlobError> {
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
        let mut builder = globset::GlobSetBuilder::new();
        for g in globs {
            let glob = globset::Glob::new(g).map_err(|e| HookGlobError {
                glob: g.clone(),
                message: e.kind().to_string(),
            })?;
            builder.add(glob);
        }
        let set = builder.build().map_err(|e| HookGlobError {
            glob: globs.join(","),
            message: e.to_string(),
        })?;
        let blocks = arch.num_layers as usize;
        let mut plan = HookPlan {
            per_token: vec![0; blocks.max(1)],
            pattern_heads: vec![0; blocks.max(1)],
            ..Self::default()
        };
        for hook in hook_points(arch) {
            if !set.is_match(&hook.name) {
                continue;
            }
            plan.count += 1;
            let block = hook.block.unwrap_or(0) as usize;
            match hook.size {
                HookSize::PerToken(n) => plan.per_token[block] += n,
                HookSize::Pattern(h) => plan.pattern_heads[block] += h,
            }
            if hook.name.starts_with("ln_final") {
                plan.needs_final_norm = true;
            }
            if let Some(b) = hook.block {
                plan.last_block = Some(plan.last_block.map_or(b, |l| l.max(b)));
            }
        }
        Ok(plan)
    }

    /// The same selection limited to blocks `0..=last` (what "stop after block N" means).
    pub fn truncated(&self, last: u64) -> Self {
        let keep = (last + 1) as usize;
        let mut plan = self.clone();
        for v in plan.per_token.iter_mut().skip(keep) {
            *v = 0;
        }
        for v in plan.pattern_heads.iter_mut().skip(keep) {
            *v = 0;
        }
        plan.last_block = self.last_block.map(|l| l.min(last));
        plan.needs_final_norm = self.needs_final_norm && self.last_block == plan.last_block;
        plan
    }

    /// Blocks that hold at least one selected hook.
    pub fn blocks_with_hooks(&self) -> Vec<u64> {
        (0..self.per_token.len())
            .filter(|&i| self.per_token[i] > 0 || self.pattern_heads[i] > 0)
            .map(|i| i as u64)
            .collect()
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
        for i in 0..plan.per_token.len() {
            if !keep.contains(&(i as u64)) {
                plan.per_token[i] = 0;
                plan.pattern_heads[i] = 0;
            }
        }
        plan.count = self.count * keep.len() / hooked.len().max(1);
        plan
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
        assert_eq!(plan.count, 12);
        assert_eq!(plan.last_block, Some(11));
        assert!(plan.per_token.iter().all(|n| *n == 768));
    }

    #[test]
    fn globs_pick_blocks_and_patterns() {
        let globs = [
            "blocks.2.attn.hook_pattern".to_string(),
            "hook_embed".to_string(),
        ];
        let plan = HookPlan::select(&gpt2(), AnalysisKind::Attention, &globs).unwrap();
        assert_eq!(plan.count, 2);
        assert_eq!(plan.last_block, Some(2));
        assert_eq!(plan.pattern_heads[2], 12);
        assert_eq!(plan.per_token[0], 768);
        let err = HookPlan::select(&gpt2(), AnalysisKind::Attention, &["blocks.[".to_string()])
            .unwrap_err();
        assert!(err.to_string().contains("blocks.["), "{err}");
    }

    #[test]
    fn truncating_and_thinning_keep_what_they_promise() {
        let plan = HookPlan::select(&gpt2(), AnalysisKind::Activations, &[]).unwrap();
        let cut = plan.truncated(3);
        assert_eq!(cut.last_block, Some(3));
        assert_eq!(cut.blocks_with_hooks(), vec![0, 1, 2, 3]);
        let thin = plan.thinned(4);
        assert_eq!(thin.blocks_with_hooks(), vec![0, 4, 8, 11]);
        assert_eq!(thin.last_block, Some(11));
    }

    #[test]
    fn dtype_names_parse() {
        assert_eq!(DType::parse("bfloat16"), Some(DType::Bf16));
        assert_eq!(DType::parse("F16"), Some(DType::F16));
        assert_eq!(DType::parse("int8"), None);
    }
}
