//! BERT family: bert (with `bert.` prefix or none, as sentence-transformers checkpoints such as
//! all-MiniLM-L6-v2 store it), roberta (positions offset by `pad_token_id + 1`) and distilbert.
//! Post-norm blocks: `ln1.hook_normalized` is the norm after attention, and `hook_resid_post`
//! is the block's output after its second norm (Hugging Face `hidden_states[i + 1]`).

use candle_core::{Device, Tensor};

use super::{
    attention, padding_mask, positions, split_qkv, Activation, Architecture, AttnDims, Family,
    HookCatalog, LayerNorm, Linear,
};
use crate::engine::capture::{Batch, Capture};
use crate::engine::error::EngineError;
use crate::engine::hooks::HookSpec;
use crate::engine::weights::{ModelConfig, Weights};

struct Block {
    qkv: Linear,
    attn_out: Linear,
    ln1: LayerNorm,
    fc: Linear,
    fc_out: Linear,
    ln2: LayerNorm,
}

/// A loaded BERT, RoBERTa or DistilBERT encoder.
pub struct Bert {
    word: Tensor,
    pos: Tensor,
    token_type: Option<Tensor>,
    ln_emb: LayerNorm,
    blocks: Vec<Block>,
    act: Activation,
    catalog: HookCatalog,
    /// RoBERTa: `Some(pad_token_id)`; positions count non-pad tokens from `pad + 1`.
    roberta_pad: Option<u32>,
    max_len: usize,
    device: Device,
}

/// Weight names of one variant.
struct Names {
    layer: &'static str,
    q: &'static str,
    k: &'static str,
    v: &'static str,
    o: &'static str,
    ln1: &'static str,
    fc: &'static str,
    fc_out: &'static str,
    ln2: &'static str,
}

const BERT: Names = Names {
    layer: "encoder.layer",
    q: "attention.self.query",
    k: "attention.self.key",
    v: "attention.self.value",
    o: "attention.output.dense",
    ln1: "attention.output.LayerNorm",
    fc: "intermediate.dense",
    fc_out: "output.dense",
    ln2: "output.LayerNorm",
};

const DISTILBERT: Names = Names {
    layer: "transformer.layer",
    q: "attention.q_lin",
    k: "attention.k_lin",
    v: "attention.v_lin",
    o: "attention.out_lin",
    ln1: "sa_layer_norm",
    fc: "ffn.lin1",
    fc_out: "ffn.lin2",
    ln2: "output_layer_norm",
};

impl Bert {
    /// Loads a checkpoint of `model_type` `bert`, `roberta` or `distilbert`.
    pub fn load(cfg: &ModelConfig, w: &mut Weights, model_type: &str) -> Result<Self, EngineError> {
        let distil = model_type == "distilbert";
        let prefixes: &[&str] = if distil {
            &["distilbert.", ""]
        } else {
            &["bert.", "roberta.", ""]
        };
        w.choose_prefix(prefixes, "embeddings.word_embeddings.weight")?;
        let names = if distil { &DISTILBERT } else { &BERT };
        let d = cfg.usize(&["hidden_size", "dim"])?;
        let heads = cfg.usize(&["num_attention_heads", "n_heads"])?;
        let n_layer = cfg.usize(&["num_hidden_layers", "n_layers"])?;
        let d_mlp = cfg.usize(&["intermediate_size", "hidden_dim"])?;
        let max_pos = cfg.usize(&["max_position_embeddings"])?;
        let eps = cfg.opt_f64(&["layer_norm_eps"]).unwrap_or(1e-12);
        let act_name = cfg
            .opt_str("hidden_act")
            .or_else(|| cfg.opt_str("activation"))
            .unwrap_or("gelu");
        let act = Activation::parse(act_name, cfg)?;
        if let Some(kind) = cfg.opt_str("position_embedding_type") {
            if kind != "absolute" {
                return Err(cfg.unsupported(format!(
                    "position_embedding_type {kind:?} is not supported (only \"absolute\")"
                )));
            }
        }
        if d % heads != 0 {
            return Err(cfg.unsupported(format!(
                "hidden size {d} is not a multiple of {heads} heads"
            )));
        }
        let roberta_pad =
            (model_type == "roberta").then(|| cfg.opt_usize(&["pad_token_id"]).unwrap_or(1) as u32);
        let pos_offset = roberta_pad.map_or(0, |p| p as usize + 1);
        let lin =
            |name: String, shape: [usize; 2]| -> Result<(Tensor, Option<Tensor>), EngineError> {
                Ok((
                    w.get_shaped(&format!("{name}.weight"), &shape)?,
                    Some(w.get(&format!("{name}.bias"))?),
                ))
            };
        let mut blocks = Vec::with_capacity(n_layer);
        for i in 0..n_layer {
            let p = format!("{}.{i}", names.layer);
            let qkv = vec![
                lin(format!("{p}.{}", names.q), [d, d])?,
                lin(format!("{p}.{}", names.k), [d, d])?,
                lin(format!("{p}.{}", names.v), [d, d])?,
            ];
            let one = |n: &str, shape| -> Result<Linear, EngineError> {
                let (wt, b) = lin(format!("{p}.{n}"), shape)?;
                Linear::from_torch(wt, b)
            };
            blocks.push(Block {
                qkv: Linear::fused(qkv, w.dtype)?,
                attn_out: one(names.o, [d, d])?,
                ln1: LayerNorm::load(w, &format!("{p}.{}", names.ln1), eps)?,
                fc: one(names.fc, [d_mlp, d])?,
                fc_out: one(names.fc_out, [d, d_mlp])?,
                ln2: LayerNorm::load(w, &format!("{p}.{}", names.ln2), eps)?,
            });
        }
        let token_type = if w.contains("embeddings.token_type_embeddings.weight") {
            Some(w.get("embeddings.token_type_embeddings.weight")?.get(0)?)
        } else {
            None
        };
        Ok(Self {
            word: w.get("embeddings.word_embeddings.weight")?,
            pos: w.get("embeddings.position_embeddings.weight")?,
            ln_emb: LayerNorm::load(w, "embeddings.LayerNorm", eps)?,
            catalog: HookCatalog::for_family(
                Family::Bert,
                n_layer,
                d,
                AttnDims {
                    heads,
                    kv_heads: heads,
                    d_head: d / heads,
                },
                d_mlp,
                token_type.is_some(),
            ),
            token_type,
            blocks,
            act,
            roberta_pad,
            max_len: max_pos.saturating_sub(pos_offset),
            device: w.device.clone(),
        })
    }
}

/// RoBERTa position ids as Hugging Face computes them: tokens equal to the pad id (and the
/// batch padding) sit at position `pad`; the others count up from `pad + 1`.
fn roberta_positions(ids: &[u32], lens: &[usize], s: usize, pad: u32) -> Vec<u32> {
    let mut out = Vec::with_capacity(ids.len());
    for (b, &len) in lens.iter().enumerate() {
        let mut count = 0;
        for j in 0..s {
            let id = ids[b * s + j];
            if j < len && id != pad {
                count += 1;
                out.push(pad + count);
            } else {
                out.push(pad);
            }
        }
    }
    out
}

impl Architecture for Bert {
    fn family(&self) -> &'static str {
        "bert"
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
        _final_norm: bool,
        cap: &mut Capture,
    ) -> Result<(), EngineError> {
        let (b, s) = batch.ids.dims2()?;
        let tok = self
            .word
            .embedding(&batch.ids.flatten_all()?)?
            .reshape((b, s, ()))?;
        let pos = match self.roberta_pad {
            None => self
                .pos
                .embedding(&positions(s, 0, &self.device)?)?
                .unsqueeze(0)?,
            Some(pad) => {
                let ids = roberta_positions(&batch.host_ids, &batch.lens, s, pad);
                let ids = Tensor::from_vec(ids, b * s, &self.device)?;
                self.pos.embedding(&ids)?.reshape((b, s, ()))?
            }
        };
        cap.token("hook_embed", || Ok(tok.clone()))?;
        cap.token("hook_pos_embed", || pos.broadcast_as(tok.shape()))?;
        let mut x = tok.broadcast_add(&pos)?;
        if let Some(tt) = &self.token_type {
            cap.token("hook_token_type_embed", || tt.broadcast_as(tok.shape()))?;
            x = x.broadcast_add(tt)?;
        }
        let mut x = self.ln_emb.forward(&x)?;
        let mask = padding_mask(batch, x.dtype(), &self.device)?;
        for (i, blk) in self.blocks.iter().take(blocks).enumerate() {
            cap.block(i, "hook_resid_pre", || Ok(x.clone()))?;
            let (q, k, v) = split_qkv(&blk.qkv.forward(&x)?, self.catalog.attn, i, cap)?;
            let z = attention(&q, &k, &v, mask.as_ref(), i, cap)?;
            let attn_out = blk.attn_out.forward(&z)?;
            cap.block(i, "hook_attn_out", || Ok(attn_out.clone()))?;
            let mid = (&x + &attn_out)?;
            cap.block(i, "hook_resid_mid", || Ok(mid.clone()))?;
            let normed = blk.ln1.forward(&mid)?;
            cap.block(i, "ln1.hook_normalized", || Ok(normed.clone()))?;
            let pre = blk.fc.forward(&normed)?;
            cap.block(i, "mlp.hook_pre", || Ok(pre.clone()))?;
            let post = self.act.apply(&pre)?;
            cap.block(i, "mlp.hook_post", || Ok(post.clone()))?;
            let mlp_out = blk.fc_out.forward(&post)?;
            cap.block(i, "hook_mlp_out", || Ok(mlp_out.clone()))?;
            x = blk.ln2.forward(&(&normed + &mlp_out)?)?;
            cap.block(i, "hook_resid_post", || Ok(x.clone()))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roberta_positions_skip_pad_tokens() {
        // Second row is batch padding after two tokens; id 1 is the pad id inside row one.
        let ids = [5, 1, 7, 9, 8, 0];
        assert_eq!(
            roberta_positions(&ids, &[3, 2], 3, 1),
            vec![2, 1, 3, 2, 3, 1]
        );
    }
}
