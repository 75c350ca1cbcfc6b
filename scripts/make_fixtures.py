#!/usr/bin/env python3
"""Make the engine's test fixtures: tiny random-weight models and Hugging Face reference tensors.

Writes tests/fixtures/<family>/ with config.json, model.safetensors (or shards), tokenizer.json,
and reference.safetensors holding, for every prompt k:
  p{k}.input_ids            [len] i64, exactly what the tokenizer gives (truncated to the model max)
  p{k}.hidden_states.{i}    HF output_hidden_states=True
  p{k}.attentions.{i}       HF output_attentions=True (eager attention)
  p{k}.{hook}               the TransformerLens-named hook, taken with PyTorch forward hooks on the
                            HF modules ([pos, ...] without the batch axis)
Needs: torch, transformers, tokenizers, safetensors. Run from the repository root:
  python3 scripts/make_fixtures.py            # every family
  python3 scripts/make_fixtures.py mistral    # only the named ones (the others are still built,
                                              # unsaved, so the random weights stay the same)
"""
import json
import os
import shutil
import sys

import torch
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers, decoders
import transformers as tf

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")

PROMPTS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello",
    "Grüße aus Zürich — 東京 🚀 naïve café",
    "Interpretability researchers extract activations from every layer of a transformer. " * 6,
    "Tabs\tand\nnewlines inside one prompt.",
]

CORPUS = [
    "the quick brown fox jumps over the lazy dog",
    "interpretability researchers extract activations from every layer of a transformer",
    "hello world, tabs and newlines inside one prompt",
    "grüße aus zürich naïve café 東京",
    "attention patterns and residual streams are written to safetensors shards",
] * 20


def byte_level_bpe(bos=None, eos_token="<|endoftext|>"):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = [eos_token] + ([bos] if bos else [])
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS, trainer)
    if bos:
        bos_id = tok.token_to_id(bos)
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, bos_id)])
    else:
        tok.post_processor = processors.ByteLevel(trim_offsets=False)
    return tok


def wordpiece(forced_padding=True):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True, strip_accents=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=400, special_tokens=specials)
    tok.train_from_iterator(CORPUS, trainer)
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    tok.decoder = decoders.WordPiece()
    if forced_padding:
        # Like many sentence-transformers checkpoints: the tokenizer.json itself forces padding
        # to a fixed length. The engine must override it.
        tok.enable_padding(length=128, pad_id=tok.token_to_id("[PAD]"), pad_token="[PAD]")
        tok.enable_truncation(max_length=128)
    return tok


def scale_attention(model, factor):
    """Random init gives near-uniform attention; scaling the query/key weights sharpens it."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if any(s in name for s in ("q_proj", "k_proj", "query", "key", "q_lin", "k_lin")):
                p.mul_(factor)
            if "c_attn.weight" in name:  # GPT-2: fused [d, 3d]; q and k are the first 2d columns
                d = p.shape[0]
                p[:, : 2 * d].mul_(factor)


def capture(model, family):
    """Registers forward hooks on HF modules; returns (store, handles)."""
    store = {}
    handles = []

    def out(name, fn=lambda o: o):
        def h(_m, _i, o):
            store[name] = fn(o[0] if isinstance(o, tuple) else o)
        return h

    def inp(name):
        def h(_m, i):
            store[name] = i[0]
        return h

    def reg(mod, name, pre=False, fn=lambda o: o):
        handles.append(mod.register_forward_pre_hook(inp(name)) if pre else mod.register_forward_hook(out(name, fn)))

    if family == "gpt2":
        t = model.transformer
        reg(t.wte, "hook_embed")
        reg(t.wpe, "hook_pos_embed")
        cfg = model.config
        nh, dh = cfg.n_head, cfg.n_embd // cfg.n_head
        for i, b in enumerate(t.h):
            p = f"blocks.{i}."
            reg(b, p + "hook_resid_pre", pre=True)
            reg(b.ln_1, p + "ln1.hook_normalized")
            def qkv(o, p=p):
                q, k, v = o.split(cfg.n_embd, dim=-1)
                store[p + "attn.hook_q"] = q.reshape(*q.shape[:-1], nh, dh)
                store[p + "attn.hook_k"] = k.reshape(*k.shape[:-1], nh, dh)
                store[p + "attn.hook_v"] = v.reshape(*v.shape[:-1], nh, dh)
                return o
            reg(b.attn.c_attn, p + "attn.qkv", fn=qkv)
            reg(b.attn.c_proj, p + "attn.hook_z", pre=True)
            reg(b.attn.c_proj, p + "hook_attn_out")
            reg(b.ln_2, p + "hook_resid_mid", pre=True)
            reg(b.mlp.c_fc, p + "mlp.hook_pre")
            reg(b.mlp.act, p + "mlp.hook_post")
            reg(b.mlp.c_proj, p + "hook_mlp_out")
            reg(b, p + "hook_resid_post")
        reg(t.ln_f, "ln_final.hook_normalized")
    elif family in ("bert", "roberta"):
        m = model
        reg(m.embeddings.word_embeddings, "hook_embed")
        reg(m.embeddings.position_embeddings, "hook_pos_embed")
        reg(m.embeddings.token_type_embeddings, "hook_token_type_embed")
        for i, b in enumerate(m.encoder.layer):
            p = f"blocks.{i}."
            a = b.attention
            reg(b, p + "hook_resid_pre", pre=True)
            reg(a.self.query, p + "attn.hook_q")
            reg(a.self.key, p + "attn.hook_k")
            reg(a.self.value, p + "attn.hook_v")
            reg(a.output.dense, p + "attn.hook_z", pre=True)
            reg(a.output.dense, p + "hook_attn_out")
            reg(a.output.LayerNorm, p + "hook_resid_mid", pre=True)
            reg(a.output.LayerNorm, p + "ln1.hook_normalized")
            reg(b.intermediate.dense, p + "mlp.hook_pre")
            reg(b.intermediate.intermediate_act_fn, p + "mlp.hook_post")
            reg(b.output.dense, p + "hook_mlp_out")
            reg(b, p + "hook_resid_post")
    elif family == "distilbert":
        m = model
        reg(m.embeddings.word_embeddings, "hook_embed")
        reg(m.embeddings.position_embeddings, "hook_pos_embed")
        for i, b in enumerate(m.transformer.layer):
            p = f"blocks.{i}."
            reg(b, p + "hook_resid_pre", pre=True)
            reg(b.attention.q_lin, p + "attn.hook_q")
            reg(b.attention.k_lin, p + "attn.hook_k")
            reg(b.attention.v_lin, p + "attn.hook_v")
            reg(b.attention.out_lin, p + "attn.hook_z", pre=True)
            reg(b.attention.out_lin, p + "hook_attn_out")
            reg(b.sa_layer_norm, p + "hook_resid_mid", pre=True)
            reg(b.sa_layer_norm, p + "ln1.hook_normalized")
            reg(b.ffn.lin1, p + "mlp.hook_pre")
            reg(b.ffn.lin2, p + "mlp.hook_post", pre=True)
            reg(b.ffn.lin2, p + "hook_mlp_out")
            reg(b, p + "hook_resid_post")
    else:  # llama family
        m = model.model
        reg(m.embed_tokens, "hook_embed")
        for i, b in enumerate(m.layers):
            p = f"blocks.{i}."
            reg(b, p + "hook_resid_pre", pre=True)
            reg(b.input_layernorm, p + "ln1.hook_normalized")
            reg(b.self_attn.q_proj, p + "attn.hook_q")
            reg(b.self_attn.k_proj, p + "attn.hook_k")
            reg(b.self_attn.v_proj, p + "attn.hook_v")
            reg(b.self_attn.o_proj, p + "attn.hook_z", pre=True)
            reg(b.self_attn.o_proj, p + "hook_attn_out")
            reg(b.post_attention_layernorm, p + "hook_resid_mid", pre=True)
            reg(b.mlp.gate_proj, p + "mlp.hook_pre")
            reg(b.mlp.up_proj, p + "mlp.hook_pre_linear")
            reg(b.mlp.down_proj, p + "mlp.hook_post", pre=True)
            reg(b.mlp.down_proj, p + "hook_mlp_out")
            reg(b, p + "hook_resid_post")
        reg(m.norm, "ln_final.hook_normalized")
    return store, handles


def head_shapes(family, cfg, store):
    """Reshape q/k/v/z from [pos, heads*d_head] to [pos, head, d_head] like TransformerLens."""
    if family == "gpt2":
        nh, nkv, dh = cfg.n_head, cfg.n_head, cfg.n_embd // cfg.n_head
    elif family == "distilbert":
        nh, nkv, dh = cfg.n_heads, cfg.n_heads, cfg.dim // cfg.n_heads
    elif family in ("bert", "roberta"):
        nh = nkv = cfg.num_attention_heads
        dh = cfg.hidden_size // nh
    else:
        nh, nkv = cfg.num_attention_heads, cfg.num_key_value_heads
        dh = getattr(cfg, "head_dim", None) or cfg.hidden_size // nh
    out = {}
    for k, v in store.items():
        if k.endswith("attn.qkv"):
            continue
        if k.endswith(("attn.hook_q", "attn.hook_z")) and v.shape[-1] == nh * dh:
            v = v.reshape(*v.shape[:-1], nh, dh)
        elif k.endswith(("attn.hook_k", "attn.hook_v")) and v.shape[-1] == nkv * dh:
            v = v.reshape(*v.shape[:-1], nkv, dh)
        out[k] = v
    return out


ONLY = set(sys.argv[1:])


def make(family, model, tok, max_len, extra_cfg=None, shard=None):
    if ONLY and family not in ONLY:
        return
    d = os.path.join(ROOT, family)
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    model.eval()
    if shard:
        model.save_pretrained(d, safe_serialization=True, max_shard_size=shard)
    else:
        model.save_pretrained(d, safe_serialization=True)
    tok.save(os.path.join(d, "tokenizer.json"))
    if extra_cfg:
        with open(os.path.join(d, "config.json")) as f:
            c = json.load(f)
        c.update(extra_cfg)
        with open(os.path.join(d, "config.json"), "w") as f:
            json.dump(c, f, indent=2)
    for name in ("generation_config.json",):
        p = os.path.join(d, name)
        if os.path.exists(p):
            os.remove(p)
    ref_tok = Tokenizer.from_str(tok.to_str())
    ref_tok.no_padding()
    ref_tok.enable_truncation(max_length=max_len)
    refs = {}
    store, handles = capture(model, family)
    peak = []
    for k, text in enumerate(PROMPTS):
        ids = ref_tok.encode(text).ids
        x = torch.tensor([ids], dtype=torch.long)
        store.clear()
        with torch.no_grad():
            o = model(input_ids=x, output_hidden_states=True, output_attentions=True)
        refs[f"p{k}.input_ids"] = x[0].clone()
        for i, h in enumerate(o.hidden_states):
            refs[f"p{k}.hidden_states.{i}"] = h[0].contiguous()
        for i, a in enumerate(o.attentions):
            refs[f"p{k}.attentions.{i}"] = a[0].contiguous()
            peak.append(a[0].max(-1).values.mean().item())
        for name, v in head_shapes(family, model.config, store).items():
            refs[f"p{k}.{name}"] = v[0].contiguous().clone()
    for h in handles:
        h.remove()
    save_file(refs, os.path.join(d, "reference.safetensors"), metadata={"prompts": json.dumps(PROMPTS)})
    print(f"{family}: {sum(v.numel() for v in model.parameters())} params, "
          f"mean max attention {sum(peak) / len(peak):.2f}, lengths "
          f"{[len(ref_tok.encode(p).ids) for p in PROMPTS]}")


def main():
    torch.manual_seed(0)
    kw = dict(attn_implementation="eager")
    gtok = byte_level_bpe()
    g = tf.GPT2LMHeadModel(tf.GPT2Config(
        vocab_size=gtok.get_vocab_size(), n_positions=64, n_embd=32, n_layer=3, n_head=4,
        bos_token_id=0, eos_token_id=0, **kw))
    scale_attention(g, 16.0)
    make("gpt2", g, gtok, 64)

    btok = wordpiece()
    bcfg = tf.BertConfig(vocab_size=btok.get_vocab_size(), hidden_size=32, num_hidden_layers=3,
                         num_attention_heads=4, intermediate_size=64, max_position_embeddings=64, **kw)
    b = tf.BertModel(bcfg, add_pooling_layer=False)  # saved without the `bert.` prefix
    scale_attention(b, 16.0)
    make("bert", b, btok, 64)

    rcfg = tf.RobertaConfig(vocab_size=btok.get_vocab_size(), hidden_size=32, num_hidden_layers=2,
                            num_attention_heads=4, intermediate_size=64, max_position_embeddings=66,
                            pad_token_id=1, type_vocab_size=1, **kw)
    r = tf.RobertaForMaskedLM(rcfg)  # saved with the `roberta.` prefix
    scale_attention(r, 16.0)
    make_prefixed("roberta", r, r.roberta, btok, 64)

    dcfg = tf.DistilBertConfig(vocab_size=btok.get_vocab_size(), dim=32, n_layers=2, n_heads=4,
                               hidden_dim=64, max_position_embeddings=64, **kw)
    db = tf.DistilBertModel(dcfg)
    scale_attention(db, 16.0)
    make("distilbert", db, btok, 64)

    ltok = byte_level_bpe(bos="<s>", eos_token="</s>")
    lcfg = tf.LlamaConfig(vocab_size=ltok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                          num_hidden_layers=3, num_attention_heads=4, num_key_value_heads=2,
                          head_dim=16, max_position_embeddings=64, rms_norm_eps=1e-5,
                          tie_word_embeddings=False, bos_token_id=ltok.token_to_id("<s>"),
                          eos_token_id=ltok.token_to_id("</s>"), **kw)
    lcfg.rope_parameters = {"rope_type": "default", "rope_theta": 500000.0}
    lm = tf.LlamaForCausalLM(lcfg)
    scale_attention(lm, 10.0)
    make("llama", lm, ltok, 64)

    qcfg = tf.Qwen2Config(vocab_size=ltok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                          num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                          max_position_embeddings=64, tie_word_embeddings=True, **kw)
    q = tf.Qwen2ForCausalLM(qcfg)
    with torch.no_grad():
        for name, p in q.named_parameters():
            if name.endswith("proj.bias"):
                p.normal_(0.0, 0.5)  # make the qkv biases matter
    scale_attention(q, 10.0)
    make("qwen2", q, ltok, 64, shard="60KB")

    # Mistral: a sliding window shorter than the long prompt, and llama3-style rope scaling
    # whose original context (16) is shorter than the prompts, so both change the outputs.
    mcfg = tf.MistralConfig(vocab_size=ltok.get_vocab_size(), hidden_size=32, intermediate_size=64,
                            num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=1,
                            head_dim=8, max_position_embeddings=64, sliding_window=6,
                            tie_word_embeddings=False, **kw)
    mcfg.rope_parameters = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 4.0,
                            "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                            "original_max_position_embeddings": 16}
    m = tf.MistralForCausalLM(mcfg)
    scale_attention(m, 10.0)
    make("mistral", m, ltok, 64)


def make_prefixed(family, full_model, base, tok, max_len):
    """Saves the full (prefixed) model but takes references from its base model."""
    if ONLY and family not in ONLY:
        return
    d = os.path.join(ROOT, family)
    make(family, base, tok, max_len)
    full_model.save_pretrained(d, safe_serialization=True)


if __name__ == "__main__":
    main()
