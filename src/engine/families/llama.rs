//! Llama family: llama, mistral (sliding window), qwen2 (qkv biases). RMSNorm pre-norm blocks,
//! rotary positions (`rope_theta` at the top level or in `rope_parameters`/`rope_scaling`,
//! with the `linear` and `llama3` scalings), grouped-query attention, `head_dim` when given,
//! gated SiLU MLP. Tied or untied embeddings make no difference here: no logits are computed.

use candle_core::{DType, Device, Tensor};
use serde_json::Value;

use super::{
    attention, causal_mask, split_qkv, Activation, Architecture, AttnDims, Family, HookCatalog,
    Linear, RmsNorm,
};
use crate::engine::capture::{Batch, Capture};
use crate::engine::error::EngineError;
use crate::engine::hooks::HookSpec;
use crate::engine::weights::{ModelConfig, Weights};

struct Block {
    ln1: RmsNorm,
    qkv: Linear,
    o: Linear,
    ln2: RmsNorm,
    gate_up: Linear,
    down: Linear,
}

/// A loaded Llama-family decoder.
pub struct Llama {
    embed: Tensor,
    blocks: Vec<Block>,
    norm: RmsNorm,
    act: Activation,
    inv_freq: Vec<f32>,
    window: Option<usize>,
    catalog: HookCatalog,
    max_len: usize,
    device: Device,
    dtype: DType,
}

/// Rotary settings read from config.json.
#[derive(Debug, Clone, PartialEq)]
pub struct Rope {
    /// Base frequency.
    pub theta: f64,
    /// Scaling: `None` (default), or the factor with the llama3 parameters when present.
    pub scaling: Option<RopeScaling>,
}

/// Rotary scalings the engine implements.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    /// Positions divided by `factor`.
    Linear(f64),
    /// Llama 3.x frequency-dependent scaling.
    Llama3 {
        /// Scale factor.
        factor: f64,
        /// Low-frequency factor.
        low: f64,
        /// High-frequency factor.
        high: f64,
        /// Original training context.
        original: f64,
    },
}

impl Rope {
    /// Reads `rope_theta` from the top level or from `rope_parameters` / `rope_scaling`.
    pub fn from_config(cfg: &ModelConfig) -> Result<Self, EngineError> {
        let params = cfg
            .json
            .get("rope_parameters")
            .filter(|v| v.is_object())
            .or_else(|| cfg.json.get("rope_scaling").filter(|v| v.is_object()));
        let theta = cfg
            .opt_f64(&["rope_theta"])
            .or_else(|| {
                params
                    .and_then(|p| p.get("rope_theta"))
                    .and_then(Value::as_f64)
            })
            .unwrap_or(10_000.0);
        let kind = params
            .and_then(|p| p.get("rope_type").or_else(|| p.get("type")))
            .and_then(Value::as_str)
            .unwrap_or("default");
        let num = |key: &str| params.and_then(|p| p.get(key)).and_then(Value::as_f64);
        let scaling = match kind {
            "default" => None,
            "linear" => Some(RopeScaling::Linear(num("factor").unwrap_or(1.0))),
            "llama3" => Some(RopeScaling::Llama3 {
                factor: num("factor").unwrap_or(8.0),
                low: num("low_freq_factor").unwrap_or(1.0),
                high: num("high_freq_factor").unwrap_or(4.0),
                original: num("original_max_position_embeddings").unwrap_or(8192.0),
            }),
            other => {
                return Err(cfg.unsupported(format!(
                    "rope_type {other:?} is not supported (default, linear, llama3 are)"
                )))
            }
        };
        Ok(Self { theta, scaling })
    }

    /// Inverse frequencies for `d_head`, computed in f32 as Hugging Face does.
    pub fn inv_freq(&self, d_head: usize) -> Vec<f32> {
        let base = self.theta as f32;
        (0..d_head / 2)
            .map(|i| {
                let f = 1.0f32 / base.powf((2 * i) as f32 / d_head as f32);
                match &self.scaling {
                    None => f,
                    Some(RopeScaling::Linear(factor)) => f / *factor as f32,
                    Some(RopeScaling::Llama3 {
                        factor,
                        low,
                        high,
                        original,
                    }) => {
                        let (factor, low, high, original) =
                            (*factor as f32, *low as f32, *high as f32, *original as f32);
                        let wavelen = 2.0 * std::f32::consts::PI / f;
                        let low_wavelen = original / low;
                        let high_wavelen = original / high;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (original / wavelen - low) / (high - low);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    }
                }
            })
            .collect()
    }
}

impl Llama {
    /// Loads a llama, mistral or qwen2 checkpoint (`model.` prefix or none).
    pub fn load(cfg: &ModelConfig, w: &mut Weights) -> Result<Self, EngineError> {
        w.choose_prefix(&["model.", ""], "embed_tokens.weight")?;
        let d = cfg.usize(&["hidden_size"])?;
        let heads = cfg.usize(&["num_attention_heads"])?;
        let kv_heads = cfg.opt_usize(&["num_key_value_heads"]).unwrap_or(heads);
        let d_head = cfg.opt_usize(&["head_dim"]).unwrap_or(d / heads.max(1));
        let n_layer = cfg.usize(&["num_hidden_layers"])?;
        let d_mlp = cfg.usize(&["intermediate_size"])?;
        let max_len = cfg.usize(&["max_position_embeddings"])?;
        let eps = cfg.opt_f64(&["rms_norm_eps"]).unwrap_or(1e-6);
        let act = Activation::parse(cfg.opt_str("hidden_act").unwrap_or("silu"), cfg)?;
        if heads == 0 || kv_heads == 0 || heads % kv_heads != 0 || d_head % 2 != 0 {
            return Err(cfg.unsupported(format!(
                "{heads} heads, {kv_heads} key/value heads and head_dim {d_head} do not fit together"
            )));
        }
        let rope = Rope::from_config(cfg)?;
        let window = match cfg.model_type()?.as_str() {
            "qwen2" if cfg.opt_bool("use_sliding_window") != Some(true) => None,
            _ => cfg.opt_usize(&["sliding_window"]),
        };
        let lin =
            |name: String, shape: [usize; 2]| -> Result<(Tensor, Option<Tensor>), EngineError> {
                let bias = format!("{name}.bias");
                Ok((
                    w.get_shaped(&format!("{name}.weight"), &shape)?,
                    if w.contains(&bias) {
                        Some(w.get(&bias)?)
                    } else {
                        None
                    },
                ))
            };
        let mut blocks = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let p = format!("layers.{i}");
            let qkv = vec![
                lin(format!("{p}.self_attn.q_proj"), [heads * d_head, d])?,
                lin(format!("{p}.self_attn.k_proj"), [kv_heads * d_head, d])?,
                lin(format!("{p}.self_attn.v_proj"), [kv_heads * d_head, d])?,
            ];
            let gate_up = vec![
                lin(format!("{p}.mlp.gate_proj"), [d_mlp, d])?,
                lin(format!("{p}.mlp.up_proj"), [d_mlp, d])?,
            ];
            let (ow, ob) = lin(format!("{p}.self_attn.o_proj"), [d, heads * d_head])?;
            let (dw, db) = lin(format!("{p}.mlp.down_proj"), [d, d_mlp])?;
            blocks.push(Block {
                ln1: RmsNorm::load(w, &format!("{p}.input_layernorm"), eps)?,
                qkv: Linear::fused(qkv, w.dtype)?,
                o: Linear::from_torch(ow, ob)?,
                ln2: RmsNorm::load(w, &format!("{p}.post_attention_layernorm"), eps)?,
                gate_up: Linear::fused(gate_up, w.dtype)?,
                down: Linear::from_torch(dw, db)?,
            });
        }
        Ok(Self {
            embed: w.get("embed_tokens.weight")?,
            blocks,
            norm: RmsNorm::load(w, "norm", eps)?,
            act,
            inv_freq: rope.inv_freq(d_head),
            window,
            catalog: HookCatalog::for_family(
                Family::Llama,
                n_layer,
                d,
                AttnDims {
                    heads,
                    kv_heads,
                    d_head,
                },
                d_mlp,
                false,
            ),
            max_len,
            device: w.device.clone(),
            dtype: w.dtype,
        })
    }

    /// cos and sin tables `[S, d_head / 2]` for positions `0..s`.
    fn rope_tables(&self, s: usize) -> candle_core::Result<(Tensor, Tensor)> {
        let half = self.inv_freq.len();
        let mut cos = Vec::with_capacity(s * half);
        let mut sin = Vec::with_capacity(s * half);
        for p in 0..s {
            for f in &self.inv_freq {
                let a = p as f32 * f;
                cos.push(a.cos());
                sin.push(a.sin());
            }
        }
        Ok((
            Tensor::from_vec(cos, (s, half), &self.device)?.to_dtype(self.dtype)?,
            Tensor::from_vec(sin, (s, half), &self.device)?.to_dtype(self.dtype)?,
        ))
    }
}

impl Architecture for Llama {
    fn family(&self) -> &'static str {
        "llama"
    }

    fn hooks(&self) -> Vec<HookSpec> {
        self.catalog.build()
    }

    fn n_blocks(&self) -> usize {
        self.blocks.len()
    }

    fn max_positions(&self) -> usize {
        self.max_len
    }

    fn forward(
        &self,
        batch: &Batch,
        blocks: usize,
        final_norm: bool,
        cap: &mut Capture,
    ) -> Result<(), EngineError> {
        let (b, s) = batch.ids.dims2()?;
        let mut x = self
            .embed
            .embedding(&batch.ids.flatten_all()?)?
            .reshape((b, s, ()))?;
        cap.token("hook_embed", || Ok(x.clone()))?;
        let mask = causal_mask(s, self.window, self.dtype, &self.device)?;
        let (cos, sin) = self.rope_tables(s)?;
        let dims = self.catalog.attn;
        let d_mlp = self.catalog.d_mlp;
        for (i, blk) in self.blocks.iter().take(blocks).enumerate() {
            cap.block(i, "hook_resid_pre", || Ok(x.clone()))?;
            let h = blk.ln1.forward(&x)?;
            cap.block(i, "ln1.hook_normalized", || Ok(h.clone()))?;
            let (q, k, v) = split_qkv(&blk.qkv.forward(&h)?, dims, i, cap)?;
            let q = candle_nn::rotary_emb::rope(&q, &cos, &sin)?;
            let k = candle_nn::rotary_emb::rope(&k, &cos, &sin)?;
            cap.block(i, "attn.hook_rot_q", || q.transpose(1, 2))?;
            cap.block(i, "attn.hook_rot_k", || k.transpose(1, 2))?;
            let z = attention(&q, &k, &v, Some(&mask), i, cap)?;
            let attn_out = blk.o.forward(&z)?;
            cap.block(i, "hook_attn_out", || Ok(attn_out.clone()))?;
            let mid = (&x + &attn_out)?;
            cap.block(i, "hook_resid_mid", || Ok(mid.clone()))?;
            let gu = blk.gate_up.forward(&blk.ln2.forward(&mid)?)?;
            let gate = gu.narrow(2, 0, d_mlp)?;
            let up = gu.narrow(2, d_mlp, d_mlp)?;
            cap.block(i, "mlp.hook_pre", || Ok(gate.clone()))?;
            cap.block(i, "mlp.hook_pre_linear", || Ok(up.clone()))?;
            let post = (self.act.apply(&gate)? * up)?;
            cap.block(i, "mlp.hook_post", || Ok(post.clone()))?;
            let mlp_out = blk.down.forward(&post)?;
            cap.block(i, "hook_mlp_out", || Ok(mlp_out.clone()))?;
            x = (&mid + &mlp_out)?;
            cap.block(i, "hook_resid_post", || Ok(x.clone()))?;
        }
        if final_norm {
            let y = self.norm.forward(&x)?;
            cap.token("ln_final.hook_normalized", || Ok(y))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(json: &str) -> ModelConfig {
        ModelConfig {
            json: serde_json::from_str(json).unwrap(),
            path: "config.json".into(),
        }
    }

    #[test]
    fn rope_theta_from_top_level_or_parameters() {
        let top = Rope::from_config(&cfg(r#"{"rope_theta": 500000.0}"#)).unwrap();
        assert_eq!(top.theta, 500000.0);
        assert_eq!(top.scaling, None);
        let nested = Rope::from_config(&cfg(
            r#"{"rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0}}"#,
        ))
        .unwrap();
        assert_eq!(nested.theta, 1_000_000.0);
        let l3 = Rope::from_config(&cfg(
            r#"{"rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", "factor": 8.0,
                "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                "original_max_position_embeddings": 8192}}"#,
        ))
        .unwrap();
        let plain = Rope {
            theta: 500000.0,
            scaling: None,
        }
        .inv_freq(128);
        let scaled = l3.inv_freq(128);
        assert_eq!(scaled[0], plain[0], "high frequencies are kept");
        assert!(
            (scaled[63] - plain[63] / 8.0).abs() < 1e-12,
            "low ones divided"
        );
        assert!(Rope::from_config(&cfg(r#"{"rope_scaling": {"type": "yarn"}}"#)).is_err());
    }
}
