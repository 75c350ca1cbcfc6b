#!/usr/bin/env bash
# The engine on a real NVIDIA GPU: parity with Hugging Face and tokens/s against PyTorch.
# Called by scripts/device-check.sh (or on its own); needs a binary built with CUDA (README,
# "CUDA"), nvidia-smi, python3 with torch (transformers and tokenizers for the PyTorch row).
#
#   scripts/device-check-engine.sh OUTDIR [BINARY]
#
# Writes OUTDIR/engine-CARD-DATE.txt:
#   1. parity: every test fixture (tests/fixtures/*) extracted on cuda:0 in f32 with every hook,
#      compared with the fixture's Hugging Face reference tensors (scripts/gpu_parity.py:
#      1e-4 absolute + 1e-4 relative, input ids exact); bf16 with a loose tolerance, to show the
#      size of the rounding;
#   2. speed: a GPT-2-small-sized random model (124M parameters), 512 prompts, batch 8:
#      `neuronmap extract` (activations of every block's residual stream written to disk, and
#      stats only) in f32 and bf16, tokens/s and peak GPU memory (nvidia-smi every 100 ms),
#      next to PyTorch + transformers on the same GPU (output_hidden_states=True, copied to host);
#   3. the estimate of `neuronmap check` for the same run, when the binary has that command.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)
out=${1:?usage: device-check-engine.sh OUTDIR [BINARY]}
bin=${2:-$root/target/release/neuronmap}
mkdir -p "$out"
card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1 | tr 'A-Z' 'a-z' | sed -E 's/nvidia //; s/[^a-z0-9]+/-/g; s/-+$//')
tag="$card-$(date -u +%Y-%m-%d)"
report="$out/engine-$tag.txt"
work=$(mktemp -d)
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" | tee -a "$report" >&2; }
export NEURONMAP_STATE_DIR="$work/state"

# Peak GPU memory of a command: nvidia-smi every 100 ms, minus what was in use before.
peak_run() {
  local mem="$work/mem.txt" base peak rc t0 t1
  base=$(nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 | head -n1)
  nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 -lms 100 > "$mem" 2>/dev/null &
  local smi=$!
  t0=$(date +%s%N)
  "$@" >> "$work/run.log" 2>&1
  rc=$?
  t1=$(date +%s%N)
  kill "$smi" 2>/dev/null; wait "$smi" 2>/dev/null
  peak=$(sort -n "$mem" | tail -n1)
  echo "rc=$rc seconds=$(( (t1 - t0) / 1000000 ))e-3 peak_mib=$(( ${peak:-$base} - base ))"
}

log "engine check on $card; binary: $("$bin" --version)"
if "$bin" extract --model "$root/tests/fixtures/gpt2" --input /dev/null --hooks '*' \
    --out "$work/probe" --device cuda:0 2>&1 | tee "$work/probe.log" | grep -q "needs a build with --features cuda"; then
  log "this binary has no CUDA support: $(tail -n1 "$work/probe.log")"
  exit 0
fi

log "1. parity with Hugging Face (tests/fixtures), cuda:0"
for fixture in "$root"/tests/fixtures/*/; do
  name=$(basename "$fixture")
  [ -f "$fixture/reference.safetensors" ] || continue
  python3 "$here/gpu_parity.py" prompts "$fixture" "$work/$name.jsonl"
  for dtype in f32 bf16; do
    o="$work/parity-$name-$dtype"
    if "$bin" extract --model "$fixture" --input "$work/$name.jsonl" --hooks '*' --out "$o" \
        --device cuda:0 --dtype "$dtype" --batch 2 >> "$work/run.log" 2>&1; then
      tol=(); [ "$dtype" = bf16 ] && tol=(--atol 0.1 --rtol 0.1)
      python3 "$here/gpu_parity.py" compare "$fixture" "$o" "${tol[@]}" | tee -a "$report"
    else
      log "$name $dtype: extract failed: $(tail -n2 "$work/run.log" | tr '\n' ' ')"
    fi
  done
done

log "2. tokens/s, GPT-2-small-sized random model, 512 prompts, batch 8, max 256 tokens"
python3 "$here/gpu_bench_model.py" make "$work/bench" "$root/tests/fixtures/gpt2/tokenizer.json" | tee -a "$report"
model="$work/bench/model"
prompts="$work/bench/prompts.txt"
for dtype in f32 bf16; do
  for analysis in activations stats; do
    o="$work/bench-$dtype-$analysis"
    # Warm-up run (CUDA context, kernels), then the measured one.
    "$bin" extract --model "$model" --input "$prompts" --hooks 'blocks.*.hook_resid_post' --out "$o-warm" \
      --device cuda:0 --dtype "$dtype" --batch 8 --max-len 256 --analysis "$analysis" >> "$work/run.log" 2>&1
    r=$(peak_run "$bin" extract --model "$model" --input "$prompts" --hooks 'blocks.*.hook_resid_post' \
      --out "$o" --device cuda:0 --dtype "$dtype" --batch 8 --max-len 256 --analysis "$analysis")
    tokens=$(python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); print(sum(s.get("tokens",0) for s in m.get("shards",[])) or m.get("tokens",0))' "$o/manifest.json" 2>/dev/null)
    log "neuronmap $dtype $analysis: $r tokens=${tokens:-?}"
  done
  python3 "$here/gpu_bench_model.py" torch "$work/bench" --dtype "$dtype" --batch 8 --max-len 256 2>> "$work/run.log" | tee -a "$report" \
    || log "pytorch $dtype: not run ($(tail -n1 "$work/run.log"))"
done

if "$bin" check --help > /dev/null 2>&1; then
  log "3. estimator: neuronmap check for the same runs"
  for dtype in f32 bf16; do
    "$bin" check "$model" --analysis activations --batch 8 --seq 256 --dtype "$dtype" \
      --hooks 'blocks.*.hook_resid_post' --device cuda:0 --json >> "$report" 2>&1
  done
fi
cp "$work/run.log" "$out/engine-run-$tag.log"
log "done: $report"
