#!/usr/bin/env python3
"""Compare `neuronmap snapshot --json` with `nvidia-smi --query-gpu=... --format=csv,noheader,nounits`.

usage: compare_nvidia_smi.py PAIRS.jsonl FIELDS OUT.json   (prints a table on stdout)
Each line of PAIRS.jsonl: {"phase", "snapshot": {...}, "nvidia_smi_csv": "..."}; FIELDS is the
comma-separated list given to --query-gpu. Used by scripts/device-check.sh.
"""
import json
import sys

MIB = 1024 * 1024
# nvidia-smi field -> (snapshot getter, tolerance); static fields must match exactly.
MAP = {
    "index": (lambda g, s: g["index"], 0),
    "name": (lambda g, s: g["name"], 0),
    "uuid": (lambda g, s: g["uuid"], 0),
    "pci.bus_id": (lambda g, s: g["pci_bus_id"], 0),
    "driver_version": (lambda g, s: s["driver"]["driver_version"], 0),
    "memory.total": (lambda g, s: g["memory_total_bytes"] / MIB, 1),
    "memory.used": (lambda g, s: None if g["memory_used_bytes"] is None else g["memory_used_bytes"] / MIB, 64),
    "memory.free": (lambda g, s: None if g["memory_free_bytes"] is None else g["memory_free_bytes"] / MIB, 64),
    "utilization.gpu": (lambda g, s: g["utilization_gpu_percent"], 10),
    "utilization.memory": (lambda g, s: g["utilization_memory_percent"], 10),
    "temperature.gpu": (lambda g, s: g["temperature_celsius"], 2),
    "fan.speed": (lambda g, s: g["fan_percent"], 5),
    "power.draw": (lambda g, s: g["power_draw_watts"], 30),
    "enforced.power.limit": (lambda g, s: g["power_limit_watts"], 1),
    "clocks.sm": (lambda g, s: g["sm_clock_mhz"], 100),
    "clocks.mem": (lambda g, s: g["memory_clock_mhz"], 50),
    "clocks.gr": (lambda g, s: g["graphics_clock_mhz"], 100),
    "pstate": (lambda g, s: None if g["pstate"] is None else f"P{g['pstate']}", 0),
    "compute_cap": (lambda g, s: g["compute_capability"], 0),
}


def parse(v):
    v = v.strip()
    if v in ("[N/A]", "N/A", "[Not Supported]"):
        return None
    try:
        return float(v)
    except ValueError:
        return v


def same(a, b):
    if a is None or b is None:
        return a is None and b is None
    try:
        return float(a) == float(b)
    except (TypeError, ValueError):
        return str(a).strip() == str(b).strip()


def main():
    pairs_path, fields, out_path = sys.argv[1], sys.argv[2].split(","), sys.argv[3]
    rows = []
    for line in open(pairs_path):
        pair = json.loads(line)
        snap = pair["snapshot"]
        for csv_line in pair["nvidia_smi_csv"].strip().splitlines():
            values = [parse(v) for v in csv_line.split(",")]
            smi = dict(zip(fields, values))
            gpu = next((g for g in snap["gpus"] if g["index"] == int(smi["index"])), None)
            if gpu is None:
                continue
            for f in fields:
                getter, tol = MAP[f]
                ours, theirs = getter(gpu, snap), smi.get(f)
                if isinstance(ours, (int, float)) and isinstance(theirs, float):
                    diff = abs(ours - theirs)
                    ok = diff <= tol
                else:
                    diff = None
                    ok = same(ours, theirs)
                rows.append({"phase": pair["phase"], "gpu": gpu["index"], "field": f,
                             "neuronmap": ours, "nvidia_smi": theirs, "abs_diff": diff,
                             "tolerance": tol, "ok": ok})
    json.dump(rows, open(out_path, "w"), indent=1)
    print(f"{'field':<22} {'pairs':>5} {'within tol':>10} {'max |diff|':>11} {'tolerance':>9}")
    for f in fields:
        rs = [r for r in rows if r["field"] == f]
        diffs = [r["abs_diff"] for r in rs if r["abs_diff"] is not None]
        print(f"{f:<22} {len(rs):>5} {sum(r['ok'] for r in rs):>10} "
              f"{(max(diffs) if diffs else '-')!s:>11} {MAP[f][1]:>9}")


if __name__ == "__main__":
    main()
