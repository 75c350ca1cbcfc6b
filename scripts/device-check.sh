#!/usr/bin/env bash
# NeuronMap on a real NVIDIA machine: telemetry accuracy against nvidia-smi, a real trace, and
# timings. For a machine with nvidia-smi, python3 and torch, and no network. About 3 minutes.
#
# 1. Build the binary where the toolchain is (no GPU needed):
#        cargo build --release            # -> target/release/neuronmap (about 10 MB)
# 2. Copy this repository (scripts/ is enough) and target/release/neuronmap to the GPU machine.
#    With the device tool: run it from the repository root with
#        carry: ["target/release/neuronmap"]
#        command: bash scripts/device-check.sh "$OUT"
# 3. Run:   scripts/device-check.sh OUTDIR [BINARY]      (BINARY: target/release/neuronmap)
#
# It writes into OUTDIR (CARD is the first GPU's name as a slug, DATE is today, UTC):
#   trace-CARD-DATE.jsonl      `neuronmap record`, 60 s at 250 ms; a torch matmul load runs on
#                              GPU 0 for the first 30 s, then the GPU idles
#   compare-CARD-DATE.json     ten `neuronmap snapshot --json` / `nvidia-smi --query-gpu` pairs
#   compare-CARD-DATE.txt      per-field comparison table of those pairs
#   timings-CARD-DATE.txt      `neuronmap snapshot` vs `nvidia-smi` wall time (ten runs each),
#                              and the dashboard's CPU % and peak RSS over 30 s (live, 1 s)
#   engine-CARD-DATE.txt       scripts/device-check-engine.sh: parity with Hugging Face on the
#                              GPU and tokens/s against PyTorch (only with a binary built with
#                              `--features cuda`, see README "CUDA"; about 2 more minutes)
# Set SKIP_TELEMETRY=1 to run only the engine part.
# Commit the trace under assets/traces/ and the rest under bench-results/.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: device-check.sh OUTDIR [BINARY]}
bin=${2:-$here/../target/release/neuronmap}
mkdir -p "$out"
[ -x "$bin" ] || { echo "no neuronmap binary at $bin (build it with cargo build --release)" >&2; exit 2; }
command -v nvidia-smi >/dev/null || { echo "nvidia-smi not found: this is not an NVIDIA machine" >&2; exit 2; }
export NO_COLOR=1 HOME=${HOME:-/tmp} XDG_STATE_HOME=$(mktemp -d)

card=$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1 | tr 'A-Z' 'a-z' | sed -E 's/nvidia //; s/[^a-z0-9]+/-/g; s/-+$//')
date=$(date -u +%Y-%m-%d)
tag="$card-$date"
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
log "card: $card; binary: $("$bin" --version)"
nvidia-smi -L > "$out/nvidia-smi-L-$tag.txt" 2>&1
nvidia-smi > "$out/nvidia-smi-$tag.txt" 2>&1

fields=index,name,uuid,pci.bus_id,driver_version,memory.total,memory.used,memory.free,utilization.gpu,utilization.memory,temperature.gpu,fan.speed,power.draw,enforced.power.limit,clocks.sm,clocks.mem,clocks.gr,pstate,compute_cap

if [ "${SKIP_TELEMETRY:-0}" = 1 ]; then
  bash "$here/device-check-engine.sh" "$out" "$bin"
  exit $?
fi

# 1. A 60 s recording at 250 ms, with a 30 s matmul load on GPU 0 at the start.
log "recording 60 s at 250 ms"
"$bin" record --interval 250 --duration 60 --out "$out/trace-$tag.jsonl" 2> "$out/record-$tag.log" &
rec=$!
sleep 2
python3 - > "$out/load-$tag.log" 2>&1 <<'PY' &
import time, torch
a = torch.randn(8192, 8192, device="cuda")
end = time.time() + 30
n = 0
while time.time() < end:
    b = a @ a
    n += 1
torch.cuda.synchronize()
print(f"matmuls: {n}")
PY
load=$!

# 2. Ten snapshot / nvidia-smi pairs: five under load, five idle.
pairs="$out/pairs-$tag.jsonl"
: > "$pairs"
take_pair() {
  local snap smi
  snap=$("$bin" snapshot --json 2>>"$out/snapshot-errors-$tag.log")
  smi=$(nvidia-smi --query-gpu=$fields --format=csv,noheader,nounits 2>&1)
  python3 -c 'import json,sys; print(json.dumps({"phase": sys.argv[1], "snapshot": json.loads(sys.argv[2]), "nvidia_smi_csv": sys.argv[3]}))' \
    "$1" "$snap" "$smi" >> "$pairs" || log "pair failed"
}
sleep 8
for i in 1 2 3 4 5; do take_pair load; sleep 2; done
wait "$load"
sleep 8
for i in 1 2 3 4 5; do take_pair idle; sleep 1; done
wait "$rec"
log "recorded $(($(wc -l < "$out/trace-$tag.jsonl") - 1)) samples"

# 3. Per-field comparison.
python3 "$here/compare_nvidia_smi.py" "$pairs" "$fields" "$out/compare-$tag.json" > "$out/compare-$tag.txt"
cat "$out/compare-$tag.txt" >&2

# 4. Timings: snapshot vs nvidia-smi, ten runs each; the dashboard over 30 s.
{
  echo "# $tag: wall time of ten runs each (ms)"
  for cmd in "$bin snapshot" "$bin snapshot --json" "nvidia-smi" "nvidia-smi --query-gpu=$fields --format=csv"; do
    times=()
    for i in $(seq 10); do
      t0=$(date +%s%N); $cmd > /dev/null 2>&1; t1=$(date +%s%N)
      times+=($(( (t1 - t0) / 1000000 )))
    done
    printf '%-40.40s min %5s  median %5s  max %5s   (%s)\n' "$cmd" \
      "$(printf '%s\n' "${times[@]}" | sort -n | head -1)" \
      "$(printf '%s\n' "${times[@]}" | sort -n | sed -n 5p)" \
      "$(printf '%s\n' "${times[@]}" | sort -n | tail -1)" "${times[*]}"
  done
  echo
  echo "# dashboard, live NVML, 1 s interval, 120x40 pty, 30 s window"
  python3 "$here/measure_process.py" --seconds 30 --marker "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1 | cut -c1-12)" -- "$bin"
  echo "# dashboard, live NVML, 250 ms interval"
  python3 "$here/measure_process.py" --seconds 30 --marker "$(nvidia-smi --query-gpu=name --format=csv,noheader | head -n1 | cut -c1-12)" -- "$bin" --interval 250
} > "$out/timings-$tag.txt" 2>&1
cat "$out/timings-$tag.txt" >&2
log "done: $out"

# 5. The engine on the GPU (skipped, with a line saying so, when the binary has no CUDA).
bash "$here/device-check-engine.sh" "$out" "$bin"
