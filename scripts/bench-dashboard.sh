#!/usr/bin/env bash
# Benchmark: the dashboard as a process, the way a user runs it in a terminal.
#
# Replays the 8-GPU demo trace (looping) for SECONDS (default 60) at a 1 s and at a 100 ms
# sample cadence (a replay follows its trace's timing, so 100 ms is the 1 s trace at --speed 10)
# and prints a table: time to first frame, CPU % of one core, peak RSS.
#
# usage: scripts/bench-dashboard.sh [SECONDS] [BINARY]
#   BINARY defaults to target/release/neuronmap (build it with `cargo build --release`).
# Needs python3 (standard library only) for the pseudo-terminal driver.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
bin=${2:-target/release/neuronmap}
trace=${TRACE:-assets/traces/synthetic-8gpu.jsonl}
[ -x "$bin" ] || { echo "no binary at $bin: run cargo build --release first" >&2; exit 2; }
export NO_COLOR=
printf '%-10s %-8s %14s %12s %13s\n' cadence window first_frame_ms cpu_%_core peak_rss_MiB
for case in "1s 1" "100ms 10"; do
  set -- $case
  json=$(python3 scripts/measure_process.py --seconds "$seconds" --marker "H100" --cols 120 --rows 40 -- \
    "$bin" --replay "$trace" --loop --speed "$2")
  python3 - "$1" "$json" <<'PY'
import json, sys
r = json.loads(sys.argv[2])
print(f"{sys.argv[1]:<10} {r['window_s']:<8} {str(r['first_frame_ms']):>14} {r['cpu_percent_of_one_core']:>12} {r['peak_rss_mib']:>13}")
PY
done
