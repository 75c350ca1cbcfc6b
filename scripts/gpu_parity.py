#!/usr/bin/env python3
"""Compare a `neuronmap extract` output folder with a fixture's Hugging Face reference tensors.

usage: gpu_parity.py prompts FIXTURE_DIR OUT.jsonl
       gpu_parity.py compare FIXTURE_DIR OUTPUT_DIR [--atol A --rtol R]

`prompts` writes the prompts the reference was made from (scripts/make_fixtures.py stores them
in the reference's metadata) as JSON lines, for `neuronmap extract --input`.
`compare` checks every reference tensor against the extraction made with `--hooks '*'`, the same
mapping as tests/engine_parity.rs: input ids exactly, `hidden_states.i` against
`blocks.i.hook_resid_pre` (the last one against `ln_final.hook_normalized` or the last
`hook_resid_post`), `attentions.i` against `blocks.i.attn.hook_pattern@k`, other names against the
hook of that name. It prints one JSON line: tensors compared, the largest absolute difference,
the largest difference beyond atol + rtol*|want|, and whether all are within tolerance.

Standard library only (the GPU machine has python3 but maybe not numpy or safetensors), so it is
written for small fixtures, not for large outputs.
"""
import argparse
import array
import json
import math
import os
import struct
import sys


def read_safetensors(path):
    """Returns ({name: (dtype, shape, flat list of floats)}, metadata)."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {}) or {}
    out = {}
    for name, t in header.items():
        start, end = t["data_offsets"]
        raw = data[start:end]
        dtype = t["dtype"]
        if dtype == "F32":
            vals = array.array("f")
            vals.frombytes(raw)
        elif dtype == "I64":
            vals = array.array("q")
            vals.frombytes(raw)
        elif dtype == "F16":
            vals = [v[0] for v in struct.iter_unpack("<e", raw)]
        elif dtype == "BF16":
            vals = [struct.unpack("<f", b"\0\0" + raw[i : i + 2])[0] for i in range(0, len(raw), 2)]
        else:
            raise SystemExit(f"{path}: tensor {name} has dtype {dtype}, which this script does not read")
        if sys.byteorder != "little" and isinstance(vals, array.array):
            vals.byteswap()
        out[name] = (dtype, t["shape"], list(vals))
    return out, meta


class Output:
    """An extraction folder: every shard's tensors, addressable per prompt."""

    def __init__(self, folder):
        with open(os.path.join(folder, "manifest.json")) as f:
            self.manifest = json.load(f)
        self.rows = {}  # hook -> {prompt: flat rows}
        self.per_prompt = {}  # "hook@k" -> flat
        self.ids = {}
        for shard in self.manifest["shards"]:
            tensors, _ = read_safetensors(os.path.join(folder, shard["file"]))
            offsets = [int(x) for x in tensors["prompt_offsets"][2]]
            index = [int(x) for x in tensors["prompt_index"][2]]
            ids = tensors["input_ids"][2]
            for j, k in enumerate(index):
                self.ids[k] = [int(x) for x in ids[offsets[j] : offsets[j + 1]]]
            for name, (_, shape, vals) in tensors.items():
                if name in ("input_ids", "prompt_offsets", "prompt_index"):
                    continue
                if "@" in name:
                    self.per_prompt[name] = vals
                    continue
                width = 1
                for d in shape[1:]:
                    width *= d
                by_prompt = self.rows.setdefault(name, {})
                for j, k in enumerate(index):
                    by_prompt[k] = vals[offsets[j] * width : offsets[j + 1] * width]


def compare(fixture, folder, atol, rtol):
    ref, meta = read_safetensors(os.path.join(fixture, "reference.safetensors"))
    out = Output(folder)
    n_blocks = int(out.manifest["model"]["n_blocks"])
    compared, worst_abs, worst_excess, failures = 0, 0.0, 0.0, []
    for name, (_, _, want) in sorted(ref.items()):
        prompt, key = name.split(".", 1)
        k = int(prompt[1:])
        if key == "input_ids":
            if out.ids.get(k) != [int(x) for x in want]:
                failures.append(f"{name}: input ids differ")
            compared += 1
            continue
        if key.startswith("hidden_states."):
            i = int(key.split(".")[1])
            if i < n_blocks:
                hook = f"blocks.{i}.hook_resid_pre"
            elif "ln_final.hook_normalized" in out.rows:
                hook = "ln_final.hook_normalized"
            else:
                hook = f"blocks.{n_blocks - 1}.hook_resid_post"
            got = out.rows.get(hook, {}).get(k)
        elif key.startswith("attentions."):
            got = out.per_prompt.get(f"blocks.{key.split('.')[1]}.attn.hook_pattern@{k}")
        else:
            got = out.rows.get(key, {}).get(k)
        if got is None or len(got) != len(want):
            failures.append(f"{name}: missing or wrong size in the output")
            compared += 1
            continue
        for g, w in zip(got, want):
            d = abs(g - w)
            if math.isnan(d):
                d = math.inf
            worst_abs = max(worst_abs, d)
            excess = d - (atol + rtol * abs(w))
            if excess > worst_excess:
                worst_excess = excess
        compared += 1
    if worst_excess > 0:
        failures.append(f"largest difference beyond tolerance: {worst_excess:.3g}")
    return {
        "fixture": os.path.basename(os.path.normpath(fixture)),
        "dtype": out.manifest.get("dtype"),
        "device": out.manifest.get("device"),
        "tensors_compared": compared,
        "max_abs_diff": worst_abs,
        "atol": atol,
        "rtol": rtol,
        "within_tolerance": not failures,
        "failures": failures[:5],
        "prompts": json.loads(meta.get("prompts", "[]")) and len(json.loads(meta["prompts"])),
    }


def main():
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("prompts")
    a.add_argument("fixture")
    a.add_argument("out")
    c = sub.add_parser("compare")
    c.add_argument("fixture")
    c.add_argument("output")
    c.add_argument("--atol", type=float, default=1e-4)
    c.add_argument("--rtol", type=float, default=1e-4)
    args = p.parse_args()
    if args.cmd == "prompts":
        _, meta = read_safetensors(os.path.join(args.fixture, "reference.safetensors"))
        with open(args.out, "w") as f:
            for text in json.loads(meta["prompts"]):
                f.write(json.dumps({"text": text}) + "\n")
        return 0
    result = compare(args.fixture, args.output, args.atol, args.rtol)
    print(json.dumps(result))
    return 0 if result["within_tolerance"] else 1


if __name__ == "__main__":
    sys.exit(main())
