//! GPT-2 (gpt2, distilgpt2): learned positions, pre-norm blocks, Conv1D weights stored
//! transposed (`[in, out]`), fused qkv.

use candle_core::{Device, Tensor};

use super::{
    attention, causal_mask, positions, split_qkv, Activation, Architecture, AttnDims, Family,
    HookCatalog, LayerNorm, Linear,
};
use crate::engine::capture::{Batch, Capture};
use crate::engine::error::EngineError;
use crate::engine::hooks::HookSpec;
use crate::engine::weights::{ModelConfig, Weights};

struct Block {
    ln1: LayerNorm,
    qkv: Linear,
    proj: Linear,
    ln2: LayerNorm,
    fc: Linear,
    fc_out: Linear,
}

/// A loaded GPT-2.
pub struct Gpt2 {
    wte: Tensor,
    wpe: Tensor,
    blocks: Vec<Block>,
    ln_f: LayerNorm,
    act: Activation,
    catalog: HookCatalog,
    n_positions: usize,
    device: Device,
}

impl Gpt2 {
    /// Loads a GPT-2 checkpoint (`transformer.` prefix or none).
    pub fn load(cfg: &ModelConfig, w: &mut Weights) -> Result<Self, EngineError> {
        w.choose_prefix(&["transformer.", ""], "wte.weight")?;
        let d = cfg.usize(&["n_embd", "hidden_size"])?;
        let heads = cfg.usize(&["n_head", "num_attention_heads"])?;
        let n_layer = cfg.usize(&["n_layer", "num_hidden_layers"])?;
        let n_positions = cfg.usize(&["n_positions", "max_position_embeddings"])?;
        let d_mlp = cfg.opt_usize(&["n_inner"]).unwrap_or(4 * d);
        let eps = cfg.opt_f64(&["layer_norm_epsilon"]).unwrap_or(1e-5);
        let act = Activation::parse(
            cfg.opt_str("activation_function").unwrap_or("gelu_new"),
            cfg,
        )?;
        if d % heads != 0 {
            return Err(cfg.unsupported(format!("n_embd {d} is not a multiple of n_head {heads}")));
        }
        let mut blocks = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let p = format!("h.{i}");
            let conv = |name: &str, shape: [usize; 2]| -> Result<Linear, EngineError> {
                Ok(Linear::from_conv1d(
                    w.get_shaped(&format!("{p}.{name}.weight"), &shape)?,
                    Some(w.get(&format!("{p}.{name}.bias"))?),
                ))
            };
            blocks.push(Block {
                ln1: LayerNorm::load(w, &format!("{p}.ln_1"), eps)?,
                qkv: conv("attn.c_attn", [d, 3 * d])?,
                proj: conv("attn.c_proj", [d, d])?,
                ln2: LayerNorm::load(w, &format!("{p}.ln_2"), eps)?,
                fc: conv("mlp.c_fc", [d, d_mlp])?,
                fc_out: conv("mlp.c_proj", [d_mlp, d])?,
            });
        }
        let attn = AttnDims {
            heads,
            kv_heads: heads,
            d_head: d / heads,
        };
        Ok(Self {
            wte: w.get("wte.weight")?,
            wpe: w.get("wpe.weight")?,
            blocks,
            ln_f: LayerNorm::load(w, "ln_f", eps)?,
            act,
            catalog: HookCatalog::for_family(Family::Gpt2, n_layer, d, attn, d_mlp, false),
            n_positions,
            device: w.device.clone(),
        })
    }
}

impl Architecture for Gpt2 {
    fn family(&self) -> &'static str {
        "gpt2"
    }

    fn hooks(&self) -> Vec<HookSpec> {
        self.catalog.build()
    }

    fn n_blocks(&self) -> usize {
        self.blocks.len()
    }

    fn max_positions(&self) -> usize {
        self.n_positions
    }

    fn forward(
        &self,
        batch: &Batch,
        blocks: usize,
        final_norm: bool,
        cap: &mut Capture,
    ) -> Result<(), EngineError> {
        let (b, s) = batch.ids.dims2()?;
        let tok = self
            .wte
            .embedding(&batch.ids.flatten_all()?)?
            .reshape((b, s, ()))?;
        let pos = self
            .wpe
            .embedding(&positions(s, 0, &self.device)?)?
            .unsqueeze(0)?;
        cap.token("hook_embed", || Ok(tok.clone()))?;
        cap.token("hook_pos_embed", || pos.broadcast_as(tok.shape()))?;
        let mut x = tok.broadcast_add(&pos)?;
        let mask = causal_mask(s, None, x.dtype(), &self.device)?;
        for (i, blk) in self.blocks.iter().take(blocks).enumerate() {
            cap.block(i, "hook_resid_pre", || Ok(x.clone()))?;
            let h = blk.ln1.forward(&x)?;
            cap.block(i, "ln1.hook_normalized", || Ok(h.clone()))?;
            let (q, k, v) = split_qkv(&blk.qkv.forward(&h)?, self.catalog.attn, i, cap)?;
            let z = attention(&q, &k, &v, Some(&mask), i, cap)?;
            let attn_out = blk.proj.forward(&z)?;
            cap.block(i, "hook_attn_out", || Ok(attn_out.clone()))?;
            let mid = (&x + &attn_out)?;
            cap.block(i, "hook_resid_mid", || Ok(mid.clone()))?;
            let pre = blk.fc.forward(&blk.ln2.forward(&mid)?)?;
            cap.block(i, "mlp.hook_pre", || Ok(pre.clone()))?;
            let post = self.act.apply(&pre)?;
            cap.block(i, "mlp.hook_post", || Ok(post.clone()))?;
            let mlp_out = blk.fc_out.forward(&post)?;
            cap.block(i, "hook_mlp_out", || Ok(mlp_out.clone()))?;
            x = (&mid + &mlp_out)?;
            cap.block(i, "hook_resid_post", || Ok(x.clone()))?;
        }
        if final_norm {
            let y = self.ln_f.forward(&x)?;
            cap.token("ln_final.hook_normalized", || Ok(y))?;
        }
        Ok(())
    }
}
