//! The model families, each a forward pass written on candle with TransformerLens hook points,
//! and the building blocks they share (linear layers with pre-transposed weights, norms, fused
//! attention with grouped-query support).

pub mod bert;
pub mod gelu;
pub mod gpt2;
pub mod llama;

use std::path::Path;

use candle_core::{DType, Device, Tensor};

use super::capture::{Batch, Capture};
use super::error::EngineError;
use super::hooks::{HookSite, HookSpec};
use super::weights::{ModelConfig, Weights};

/// A loaded model that can run hooked forward passes.
pub trait Architecture: Send {
    /// Family name written to the manifest (`gpt2`, `bert`, `llama`).
    fn family(&self) -> &'static str;
    /// Every hook point this model has, in forward order.
    fn hooks(&self) -> Vec<HookSpec>;
    /// Number of transformer blocks.
    fn n_blocks(&self) -> usize;
    /// Longest prompt the position embeddings allow (in tokens).
    fn max_positions(&self) -> usize;
    /// Runs the first `blocks` blocks (and the final norm if `final_norm`), filling `cap`.
    fn forward(
        &self,
        batch: &Batch,
        blocks: usize,
        final_norm: bool,
        cap: &mut Capture,
    ) -> Result<(), EngineError>;
}

/// A loaded model and what the manifest records about its files.
pub struct Loaded {
    /// The model.
    pub model: Box<dyn Architecture>,
    /// [`Weights::fingerprint`].
    pub weights_hash: String,
    /// config.json `model_type`.
    pub model_type: String,
}

/// Reads config.json, picks the family and loads the weights.
pub fn load(dir: &Path, dtype: DType, device: &Device) -> Result<Loaded, EngineError> {
    let cfg = ModelConfig::load(dir)?;
    let model_type = cfg.model_type()?;
    let family = family_of(&model_type).ok_or_else(|| EngineError::UnsupportedFamily {
        model_type: model_type.clone(),
        path: cfg.path.clone(),
    })?;
    let mut w = Weights::open(dir, dtype, device)?;
    let model: Box<dyn Architecture> = match family {
        Family::Gpt2 => Box::new(gpt2::Gpt2::load(&cfg, &mut w)?),
        Family::Bert => Box::new(bert::Bert::load(&cfg, &mut w, &model_type)?),
        Family::Llama => Box::new(llama::Llama::load(&cfg, &mut w)?),
    };
    Ok(Loaded {
        model,
        weights_hash: w.fingerprint()?,
        model_type,
    })
}

/// Model families the engine implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// gpt2, distilgpt2.
    Gpt2,
    /// bert (and sentence-transformers BERT), roberta, distilbert.
    Bert,
    /// llama, mistral, qwen2.
    Llama,
}

/// The family for a config.json `model_type`.
pub fn family_of(model_type: &str) -> Option<Family> {
    match model_type {
        "gpt2" => Some(Family::Gpt2),
        "bert" | "roberta" | "distilbert" => Some(Family::Bert),
        "llama" | "mistral" | "qwen2" => Some(Family::Llama),
        _ => None,
    }
}

/// A dense layer with its weight stored transposed (`[in, out]`, contiguous), so the forward is
/// one plain matmul.
pub struct Linear {
    w: Tensor,
    b: Option<Tensor>,
}

impl Linear {
    /// From a PyTorch `nn.Linear` weight `[out, in]`.
    pub fn from_torch(w: Tensor, b: Option<Tensor>) -> Result<Self, EngineError> {
        Ok(Self {
            w: w.t()?.contiguous()?,
            b,
        })
    }

    /// From a GPT-2 `Conv1D` weight, already `[in, out]`.
    pub fn from_conv1d(w: Tensor, b: Option<Tensor>) -> Self {
        Self { w, b }
    }

    /// Several PyTorch linears with the same input fused into one (outputs concatenated).
    pub fn fused(parts: Vec<(Tensor, Option<Tensor>)>, dtype: DType) -> Result<Self, EngineError> {
        let any_bias = parts.iter().any(|(_, b)| b.is_some());
        let mut ws = Vec::with_capacity(parts.len());
        let mut bs = Vec::with_capacity(parts.len());
        for (w, b) in parts {
            let out = w.dim(0)?;
            ws.push(w.t()?);
            if any_bias {
                bs.push(match b {
                    Some(b) => b,
                    None => Tensor::zeros(out, dtype, w.device())?,
                });
            }
        }
        Ok(Self {
            w: Tensor::cat(&ws, 1)?.contiguous()?,
            b: if any_bias {
                Some(Tensor::cat(&bs, 0)?)
            } else {
                None
            },
        })
    }

    /// `x [B, S, in] -> [B, S, out]`.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, s, d) = x.dims3()?;
        let y = x.reshape((b * s, d))?.matmul(&self.w)?;
        let y = match &self.b {
            Some(bias) => y.broadcast_add(bias)?,
            None => y,
        };
        y.reshape((b, s, ()))
    }
}

/// LayerNorm with weight and bias.
pub struct LayerNorm {
    w: Tensor,
    b: Tensor,
    eps: f32,
}

impl LayerNorm {
    /// Loads `{name}.weight` and `{name}.bias`.
    pub fn load(w: &Weights, name: &str, eps: f64) -> Result<Self, EngineError> {
        Ok(Self {
            w: w.get(&format!("{name}.weight"))?,
            b: w.get(&format!("{name}.bias"))?,
            eps: eps as f32,
        })
    }

    /// Normalises over the last axis.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::layer_norm(&x.contiguous()?, &self.w, &self.b, self.eps)
    }
}

/// RMSNorm with weight (Llama family).
pub struct RmsNorm {
    w: Tensor,
    eps: f32,
}

impl RmsNorm {
    /// Loads `{name}.weight`.
    pub fn load(w: &Weights, name: &str, eps: f64) -> Result<Self, EngineError> {
        Ok(Self {
            w: w.get(&format!("{name}.weight"))?,
            eps: eps as f32,
        })
    }

    /// Normalises over the last axis.
    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        candle_nn::ops::rms_norm(&x.contiguous()?, &self.w, self.eps)
    }
}

/// MLP activation functions by their config.json names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// Exact GELU (`gelu`).
    GeluErf,
    /// Tanh-approximated GELU (`gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`).
    GeluTanh,
    /// ReLU.
    Relu,
    /// SiLU / swish.
    Silu,
}

impl Activation {
    /// Parses a config.json activation name.
    pub fn parse(name: &str, cfg: &ModelConfig) -> Result<Self, EngineError> {
        match name {
            "gelu" => Ok(Self::GeluErf),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Ok(Self::GeluTanh),
            "relu" => Ok(Self::Relu),
            "silu" | "swish" => Ok(Self::Silu),
            other => Err(cfg.unsupported(format!("activation {other:?} is not supported"))),
        }
    }

    /// Applies the activation.
    pub fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Self::GeluErf => gelu::gelu(x, gelu::GeluForm::Erf),
            Self::GeluTanh => gelu::gelu(x, gelu::GeluForm::Tanh),
            Self::Relu => x.relu(),
            Self::Silu => x.silu(),
        }
    }
}

/// Shapes of one attention layer.
#[derive(Debug, Clone, Copy)]
pub struct AttnDims {
    /// Query heads.
    pub heads: usize,
    /// Key/value heads (grouped-query attention when fewer than `heads`).
    pub kv_heads: usize,
    /// Dimension per head.
    pub d_head: usize,
}

/// Splits a fused `[B, S, (H + 2 KV) * D]` projection into q `[B, H, S, D]`, k and v
/// `[B, KV, S, D]` (contiguous) and records `hook_q`/`hook_k`/`hook_v` ([pos, head, d_head]).
pub fn split_qkv(
    qkv: &Tensor,
    dims: AttnDims,
    layer: usize,
    cap: &mut Capture,
) -> Result<(Tensor, Tensor, Tensor), EngineError> {
    let (b, s, _) = qkv.dims3()?;
    let AttnDims {
        heads,
        kv_heads,
        d_head,
    } = dims;
    let q = qkv.narrow(2, 0, heads * d_head)?;
    let k = qkv.narrow(2, heads * d_head, kv_heads * d_head)?;
    let v = qkv.narrow(2, (heads + kv_heads) * d_head, kv_heads * d_head)?;
    cap.block(layer, "attn.hook_q", || Ok(q.clone()))?;
    cap.block(layer, "attn.hook_k", || Ok(k.clone()))?;
    cap.block(layer, "attn.hook_v", || Ok(v.clone()))?;
    let heads_first = |t: &Tensor, n: usize| -> candle_core::Result<Tensor> {
        t.reshape((b, s, n, d_head))?.transpose(1, 2)?.contiguous()
    };
    Ok((
        heads_first(&q, heads)?,
        heads_first(&k, kv_heads)?,
        heads_first(&v, kv_heads)?,
    ))
}

/// Scaled dot-product attention with hooks. `q [B, H, S, D]`, `k`/`v [B, KV, S, D]`; `mask`
/// is additive and broadcastable to `[B, H, S, S]`. Returns z as `[B, S, H * D]`.
pub fn attention(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    mask: Option<&Tensor>,
    layer: usize,
    cap: &mut Capture,
) -> Result<Tensor, EngineError> {
    let (b, h, s, d) = q.dims4()?;
    let kv = k.dim(1)?;
    let group = h / kv;
    let scale = 1.0 / (d as f64).sqrt();
    // Heads of one group are adjacent, so [B, H, S, D] is [B, KV, G*S, D] without a copy.
    let qg = q.reshape((b, kv, group * s, d))?;
    let scores = qg.matmul(&k.t()?)?.affine(scale, 0.0)?;
    let scores = scores.reshape((b, h, s, s))?;
    let scores = match mask {
        Some(m) => scores.broadcast_add(m)?,
        None => scores,
    };
    cap.block_square(layer, "attn.hook_attn_scores", &scores);
    let pattern = candle_nn::ops::softmax_last_dim(&scores)?;
    cap.block_square(layer, "attn.hook_pattern", &pattern);
    let z = pattern.reshape((b, kv, group * s, s))?.matmul(v)?;
    let z = z.reshape((b, h, s, d))?.transpose(1, 2)?.contiguous()?;
    let z = z.reshape((b, s, h * d))?;
    cap.block(layer, "attn.hook_z", || Ok(z.clone()))?;
    Ok(z)
}

/// Additive causal mask `[S, S]` (0 on and below the diagonal, -inf above), optionally limited
/// to a sliding window of `window` keys.
pub fn causal_mask(
    s: usize,
    window: Option<usize>,
    dtype: DType,
    device: &Device,
) -> candle_core::Result<Tensor> {
    let mut m = vec![0f32; s * s];
    for i in 0..s {
        for j in 0..s {
            let outside = j > i || window.is_some_and(|w| i >= j + w);
            if outside {
                m[i * s + j] = f32::NEG_INFINITY;
            }
        }
    }
    Tensor::from_vec(m, (s, s), device)?.to_dtype(dtype)
}

/// Additive key-padding mask `[B, 1, 1, S]` (-inf on padding), or `None` without padding.
pub fn padding_mask(
    batch: &Batch,
    dtype: DType,
    device: &Device,
) -> candle_core::Result<Option<Tensor>> {
    if !batch.padded() {
        return Ok(None);
    }
    let s = batch.seq;
    let mut m = vec![0f32; batch.lens.len() * s];
    for (bi, &len) in batch.lens.iter().enumerate() {
        for j in len..s {
            m[bi * s + j] = f32::NEG_INFINITY;
        }
    }
    Ok(Some(
        Tensor::from_vec(m, (batch.lens.len(), 1, 1, s), device)?.to_dtype(dtype)?,
    ))
}

/// Position ids `[S]` as u32, starting at `offset`.
pub fn positions(s: usize, offset: usize, device: &Device) -> candle_core::Result<Tensor> {
    let ids: Vec<u32> = (0..s).map(|i| (i + offset) as u32).collect();
    Tensor::from_vec(ids, s, device)
}

/// Options for the standard hook catalogue.
pub struct HookCatalog {
    /// Blocks.
    pub n_blocks: usize,
    /// Residual width.
    pub d_model: usize,
    /// Attention shapes.
    pub attn: AttnDims,
    /// MLP width.
    pub d_mlp: usize,
    /// Learned absolute position embeddings (`hook_pos_embed`).
    pub pos_embed: bool,
    /// Token-type embeddings (`hook_token_type_embed`).
    pub token_type: bool,
    /// Rotary embeddings (`attn.hook_rot_q` / `hook_rot_k`).
    pub rotary: bool,
    /// Gated MLP (`mlp.hook_pre_linear`).
    pub gated: bool,
    /// A final norm (`ln_final.hook_normalized`).
    pub final_norm: bool,
}

impl HookCatalog {
    /// The catalogue of a model of engine family `family` with these shapes: the one place that
    /// decides which optional hook points a family has (learned positions, token types, rotary
    /// q/k, gated MLP, final norm). The family loaders and the estimator both build it here.
    pub fn for_family(
        family: Family,
        n_blocks: usize,
        d_model: usize,
        attn: AttnDims,
        d_mlp: usize,
        token_type: bool,
    ) -> Self {
        Self {
            n_blocks,
            d_model,
            attn,
            d_mlp,
            pos_embed: family != Family::Llama,
            token_type: family == Family::Bert && token_type,
            rotary: family == Family::Llama,
            gated: family == Family::Llama,
            final_norm: family != Family::Bert,
        }
    }

    /// The hook list in forward order.
    pub fn build(&self) -> Vec<HookSpec> {
        let d = self.d_model;
        let AttnDims {
            heads,
            kv_heads,
            d_head,
        } = self.attn;
        let mut v = vec![HookSpec::token("hook_embed", HookSite::Embed, vec![d])];
        if self.pos_embed {
            v.push(HookSpec::token("hook_pos_embed", HookSite::Embed, vec![d]));
        }
        if self.token_type {
            v.push(HookSpec::token(
                "hook_token_type_embed",
                HookSite::Embed,
                vec![d],
            ));
        }
        for i in 0..self.n_blocks {
            let at = HookSite::Block(i);
            let n = |s: &str| format!("blocks.{i}.{s}");
            v.push(HookSpec::token(n("hook_resid_pre"), at, vec![d]));
            v.push(HookSpec::token(n("ln1.hook_normalized"), at, vec![d]));
            v.push(HookSpec::token(n("attn.hook_q"), at, vec![heads, d_head]));
            v.push(HookSpec::token(
                n("attn.hook_k"),
                at,
                vec![kv_heads, d_head],
            ));
            v.push(HookSpec::token(
                n("attn.hook_v"),
                at,
                vec![kv_heads, d_head],
            ));
            if self.rotary {
                v.push(HookSpec::token(
                    n("attn.hook_rot_q"),
                    at,
                    vec![heads, d_head],
                ));
                v.push(HookSpec::token(
                    n("attn.hook_rot_k"),
                    at,
                    vec![kv_heads, d_head],
                ));
            }
            v.push(HookSpec::square(n("attn.hook_attn_scores"), at, heads));
            v.push(HookSpec::square(n("attn.hook_pattern"), at, heads));
            v.push(HookSpec::token(n("attn.hook_z"), at, vec![heads, d_head]));
            v.push(HookSpec::token(n("hook_attn_out"), at, vec![d]));
            v.push(HookSpec::token(n("hook_resid_mid"), at, vec![d]));
            v.push(HookSpec::token(n("mlp.hook_pre"), at, vec![self.d_mlp]));
            if self.gated {
                v.push(HookSpec::token(
                    n("mlp.hook_pre_linear"),
                    at,
                    vec![self.d_mlp],
                ));
            }
            v.push(HookSpec::token(n("mlp.hook_post"), at, vec![self.d_mlp]));
            v.push(HookSpec::token(n("hook_mlp_out"), at, vec![d]));
            v.push(HookSpec::token(n("hook_resid_post"), at, vec![d]));
        }
        if self.final_norm {
            v.push(HookSpec::token(
                "ln_final.hook_normalized",
                HookSite::Final,
                vec![d],
            ));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::D;

    #[test]
    fn causal_mask_with_window() {
        let m = causal_mask(4, Some(2), DType::F32, &Device::Cpu).unwrap();
        let v: Vec<Vec<f32>> = m.to_vec2().unwrap();
        assert_eq!(v[0][0], 0.0);
        assert!(v[0][1].is_infinite());
        assert_eq!(v[3][2], 0.0);
        assert!(
            v[3][1].is_infinite(),
            "key 1 is outside query 3's window of 2"
        );
    }

    #[test]
    fn families_by_model_type() {
        assert_eq!(family_of("qwen2"), Some(Family::Llama));
        assert_eq!(family_of("roberta"), Some(Family::Bert));
        assert_eq!(family_of("t5"), None);
    }

    #[test]
    fn grouped_attention_rows_sum_to_one() {
        let dev = Device::Cpu;
        let q = Tensor::randn(0f32, 1.0, (1, 4, 3, 2), &dev).unwrap();
        let k = Tensor::randn(0f32, 1.0, (1, 2, 3, 2), &dev).unwrap();
        let sel = crate::engine::hooks::HookSelection::select(
            &[HookSpec::square(
                "blocks.0.attn.hook_pattern",
                HookSite::Block(0),
                4,
            )],
            &["*".into()],
            1,
        )
        .unwrap();
        let mut cap = Capture::new(&sel);
        let mask = causal_mask(3, None, DType::F32, &dev).unwrap();
        let z = attention(&q, &k, &k, Some(&mask), 0, &mut cap).unwrap();
        assert_eq!(z.dims(), &[1, 3, 8]);
        let sums: Vec<f32> = cap.per_prompt[0]
            .1
            .sum(D::Minus1)
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1()
            .unwrap();
        assert!(sums.iter().all(|s| (s - 1.0).abs() < 1e-5));
    }
}
