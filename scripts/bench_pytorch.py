#!/usr/bin/env python3
"""PyTorch side of the engine benchmark (not part of CI; run it with your own Python).

Runs the same random-weight models, prompts, batch size and thread count as
`cargo bench --bench engine` with Hugging Face transformers (output_hidden_states=True), with
and without writing the hidden states to safetensors, with the prompts batched in file order
and sorted by length (what `neuronmap extract` does within a shard), and prints tokens/s.

  cargo bench --bench engine                 # writes target/engine-bench/{bert-base,gpt2-small,prompts.txt}
  python3 scripts/bench_pytorch.py target/engine-bench [--threads N] [--batch 8] [--repeat 3]
Needs: torch, transformers, tokenizers, safetensors, numpy.
"""
import argparse
import os
import shutil
import tempfile
import time

import numpy as np
import torch
import transformers as tf
from safetensors.numpy import save_file
from tokenizers import Tokenizer


def load(path):
    cfg = tf.AutoConfig.from_pretrained(path)
    cls = tf.BertModel if cfg.model_type == "bert" else tf.GPT2Model
    return cls.from_pretrained(path, attn_implementation="eager", dtype=torch.float32).eval()


def batches(ids, batch, pad):
    for i in range(0, len(ids), batch):
        chunk = ids[i:i + batch]
        seq = max(len(x) for x in chunk)
        x = torch.full((len(chunk), seq), pad, dtype=torch.long)
        m = torch.zeros((len(chunk), seq), dtype=torch.long)
        for j, p in enumerate(chunk):
            x[j, :len(p)] = torch.tensor(p)
            m[j, :len(p)] = 1
        yield x, m, [len(p) for p in chunk]


def run(model, ids, batch, out_dir=None):
    with torch.inference_mode():
        first = next(batches(ids, batch, 0))
        model(input_ids=first[0], attention_mask=first[1], output_hidden_states=True)
        start = time.perf_counter()
        for n, (x, m, lens) in enumerate(batches(ids, batch, 0)):
            o = model(input_ids=x, attention_mask=m, output_hidden_states=True)
            if out_dir:
                tensors = {}
                for i, h in enumerate(o.hidden_states):
                    rows = [h[j, :l] for j, l in enumerate(lens)]
                    tensors[f"hidden_states.{i}"] = torch.cat(rows).numpy()
                save_file(tensors, os.path.join(out_dir, f"batch-{n:05}.safetensors"))
        return time.perf_counter() - start


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir", help="the folder `cargo bench --bench engine` wrote")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3, help="report the best of this many runs")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    prompts = open(os.path.join(a.dir, "prompts.txt")).read().splitlines()
    print(f"pytorch {torch.__version__}, transformers {tf.__version__}, {a.threads} threads, "
          f"batch {a.batch}, {len(prompts)} prompts, f32 CPU, eager attention, best of {a.repeat}")
    print("| model | forward, file order tokens/s | forward, length order tokens/s "
          "| forward + write, file order tokens/s | forward + write, length order tokens/s | tokens |")
    print("|---|---|---|---|---|---|")
    for name in ("bert-base", "gpt2-small"):
        path = os.path.join(a.dir, name)
        tok = Tokenizer.from_file(os.path.join(path, "tokenizer.json"))
        tok.no_padding()
        model = load(path)
        tok.enable_truncation(max_length=model.config.max_position_embeddings)
        ids = [tok.encode(p).ids for p in prompts]
        tokens = sum(len(x) for x in ids)
        by_length = sorted(ids, key=len)
        row = []
        for write in (False, True):
            for order in (ids, by_length):
                best = 0.0
                for _ in range(a.repeat):
                    out = tempfile.mkdtemp() if write else None
                    try:
                        best = max(best, tokens / run(model, order, a.batch, out))
                    finally:
                        if out:
                            shutil.rmtree(out)
                row.append(f"{best:.0f}")
        print(f"| {name} | {' | '.join(row)} | {tokens} |")


if __name__ == "__main__":
    main()
