#!/usr/bin/env python3
"""GPU side of the engine check (scripts/device-check.sh): a GPT-2-small-sized random model,
prompts, and PyTorch's tokens/s on the same GPU.

usage: gpu_bench_model.py make DIR TOKENIZER_JSON [--prompts N]
       gpu_bench_model.py torch DIR [--dtype f32|bf16] [--batch 8] [--max-len 256] [--device cuda]

`make` writes DIR/model (config.json, model.safetensors, tokenizer.json: GPT-2 small's shapes,
124M parameters, random weights) and DIR/prompts.txt. `torch` runs Hugging Face transformers'
GPT2Model on cuda (or --device) over the same prompts (output_hidden_states=True, eager attention) and prints
one JSON line with tokens/s. Needs torch; `torch` also needs transformers and tokenizers.
"""
import argparse
import json
import os
import random
import shutil
import sys
import time

WORDS = (
    "the quick brown fox jumps over lazy dog interpretability researchers extract activations "
    "from every layer of a transformer attention patterns and residual streams are written to "
    "safetensors shards hello world grüße aus zürich naïve café"
).split()


def make(args):
    import torch

    torch.manual_seed(0)
    d, layers, vocab, positions = 768, 12, 50257, 1024
    model_dir = os.path.join(args.dir, "model")
    os.makedirs(model_dir, exist_ok=True)
    config = {
        "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "vocab_size": vocab,
        "n_positions": positions, "n_embd": d, "n_layer": layers, "n_head": 12, "n_inner": None,
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5, "bos_token_id": 0,
        "eos_token_id": 0, "tie_word_embeddings": True,
    }
    t = {"wte.weight": torch.randn(vocab, d) * 0.02, "wpe.weight": torch.randn(positions, d) * 0.01}
    for i in range(layers):
        p = f"h.{i}."
        for ln in ("ln_1", "ln_2"):
            t[p + ln + ".weight"] = torch.ones(d)
            t[p + ln + ".bias"] = torch.zeros(d)
        for name, shape in (("attn.c_attn", (d, 3 * d)), ("attn.c_proj", (d, d)),
                            ("mlp.c_fc", (d, 4 * d)), ("mlp.c_proj", (4 * d, d))):
            t[p + name + ".weight"] = torch.randn(*shape) * 0.02
            t[p + name + ".bias"] = torch.zeros(shape[1])
    t["ln_f.weight"] = torch.ones(d)
    t["ln_f.bias"] = torch.zeros(d)
    save(t, os.path.join(model_dir, "model.safetensors"))
    with open(os.path.join(model_dir, "config.json"), "w") as f:
        json.dump(config, f)
    shutil.copy(args.tokenizer, os.path.join(model_dir, "tokenizer.json"))
    rng = random.Random(1)
    with open(os.path.join(args.dir, "prompts.txt"), "w") as f:
        for _ in range(args.prompts):
            f.write(" ".join(rng.choice(WORDS) for _ in range(rng.randint(20, 60))) + "\n")
    print(json.dumps({"model": model_dir, "parameters": sum(v.numel() for v in t.values())}))


def save(tensors, path):
    """safetensors without the safetensors package: header + raw little-endian f32."""
    header, blobs, offset = {}, [], 0
    for name, v in tensors.items():
        raw = v.contiguous().to("cpu").float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(v.shape), "data_offsets": [offset, offset + len(raw)]}
        blobs.append(raw)
        offset += len(raw)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(len(h).to_bytes(8, "little"))
        f.write(h)
        for b in blobs:
            f.write(b)


def bench_torch(args):
    import torch
    import transformers as tf
    from tokenizers import Tokenizer

    model_dir = os.path.join(args.dir, "model")
    dtype = {"f32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
    model = tf.GPT2Model.from_pretrained(model_dir, attn_implementation="eager", torch_dtype=dtype)
    model = model.to(args.device).eval()
    tok = Tokenizer.from_file(os.path.join(model_dir, "tokenizer.json"))
    tok.no_padding()
    tok.enable_truncation(max_length=args.max_len)
    with open(os.path.join(args.dir, "prompts.txt")) as f:
        ids = [tok.encode(line.rstrip("\n")).ids for line in f if line.strip()]
    tokens = sum(len(x) for x in ids)

    def run():
        for i in range(0, len(ids), args.batch):
            chunk = ids[i:i + args.batch]
            seq = max(len(x) for x in chunk)
            x = torch.zeros((len(chunk), seq), dtype=torch.long)
            m = torch.zeros((len(chunk), seq), dtype=torch.long)
            for j, p in enumerate(chunk):
                x[j, :len(p)] = torch.tensor(p)
                m[j, :len(p)] = 1
            o = model(input_ids=x.to(args.device), attention_mask=m.to(args.device), output_hidden_states=True)
            # Bring the hidden states to the host, as an extraction must.
            [h.float().cpu() for h in o.hidden_states]
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()

    with torch.inference_mode():
        run()  # warm-up (kernels, allocator)
        if args.device.startswith("cuda"):
            torch.cuda.reset_peak_memory_stats()
        start = time.perf_counter()
        run()
        secs = time.perf_counter() - start
    print(json.dumps({"engine": "pytorch", "torch": torch.__version__, "transformers": tf.__version__,
                      "dtype": args.dtype, "batch": args.batch, "prompts": len(ids), "tokens": tokens,
                      "seconds": secs, "tokens_per_second": tokens / secs,
                      "device": args.device, "peak_allocated_bytes": torch.cuda.max_memory_allocated()
                      if args.device.startswith("cuda") else None}))


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("dir")
    m.add_argument("tokenizer")
    m.add_argument("--prompts", type=int, default=512)
    t = sub.add_parser("torch")
    t.add_argument("dir")
    t.add_argument("--dtype", default="f32", choices=["f32", "bf16"])
    t.add_argument("--batch", type=int, default=8)
    t.add_argument("--max-len", type=int, default=256)
    t.add_argument("--device", default="cuda")
    args = p.parse_args()
    make(args) if args.cmd == "make" else bench_torch(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
