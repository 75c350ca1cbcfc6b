#!/bin/sh
# Job placement on a real NVIDIA machine: NVML free memory, wait reasons and the environment a
# worker gets. Usage: scripts/device-check-jobs.sh NEURONMAP_BINARY OUTDIR [--replay TRACE]
# Run from the repository root (it uses tests/fixtures/gpt2). A CPU-only build is enough: a job
# placed on a GPU then fails in the engine ("built without CUDA"), after placement was recorded.
set -u
BIN=$1
OUT=$2
shift 2
mkdir -p "$OUT"
export NEURONMAP_STATE_DIR="$OUT/state" NEURONMAP_CONFIG="$OUT/config.toml"
printf '[jobs]\nauto_start_daemon = false\npoll_interval_ms = 50\n' > "$NEURONMAP_CONFIG"
nvidia-smi --query-gpu=index,name,memory.free,memory.total --format=csv > "$OUT/nvidia-smi.csv" 2>&1
for i in $(seq 1 16); do echo "The quick brown fox number $i jumps over the lazy dog"; done > "$OUT/p.txt"
# Long prompts (about 1000 tokens each), so gpt2-xl's attention patterns cannot fit.
for i in $(seq 1 4); do for w in $(seq 1 1000); do printf 'word%s ' "$w"; done; echo; done > "$OUT/long.txt"
{
  echo "small job on cuda:0 (fits):"
  "$BIN" submit --model tests/fixtures/gpt2 --input "$OUT/p.txt" --out "$OUT/o-small" --device cuda:0 --hooks "blocks.*.hook_resid_post"
  echo "attention of gpt2-xl, 512 prompts a batch (cannot fit):"
  "$BIN" submit --model gpt2-xl --input "$OUT/long.txt" --out "$OUT/o-xl" --device cuda:0 \
    --analysis attention --batch 512 --max-len 1024
  echo "small job, any device:"
  "$BIN" submit --model tests/fixtures/gpt2 --input "$OUT/p.txt" --out "$OUT/o-any" --device any --hooks "blocks.*.hook_resid_post"
  echo "small job on the CPU:"
  "$BIN" submit --model tests/fixtures/gpt2 --input "$OUT/p.txt" --out "$OUT/o-cpu" --device cpu --hooks "blocks.*.hook_resid_post"
} > "$OUT/submit.txt" 2>&1
"$BIN" "$@" snapshot --json > "$OUT/snapshot.json" 2>&1
"$BIN" "$@" daemon > "$OUT/daemon.txt" 2>&1 &
DAEMON=$!
sleep 6
"$BIN" jobs --all > "$OUT/jobs.txt" 2>&1
"$BIN" jobs --all --json > "$OUT/jobs.json" 2>&1
for id in 1 2 3 4; do "$BIN" show "$id"; echo; done > "$OUT/show.txt" 2>&1
kill "$DAEMON"
wait "$DAEMON" 2>/dev/null
cat "$OUT/nvidia-smi.csv" "$OUT/jobs.txt"
