#!/usr/bin/env python3
"""Run a terminal program in a pseudo-terminal and measure it like a user would see it.

Prints one JSON object: time from start to the first frame (the first time the screen output
contains MARKER), CPU use in percent of one core over the measuring window, and peak RSS.

usage: measure_process.py --seconds S [--marker TEXT] [--cols C] [--rows R] -- CMD [ARGS...]

Used by scripts/bench-dashboard.sh and scripts/device-check.sh. Needs only the Python standard
library (Linux /proc).
"""
import argparse
import fcntl
import json
import os
import pty
import select
import signal
import struct
import sys
import termios
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_ticks(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15 of the full line (12 and 13 after the comm field).
    return int(fields[11]) + int(fields[12])


def status_kib(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--marker", default="GPU")
    ap.add_argument("--cols", type=int, default=120)
    ap.add_argument("--rows", type=int, default=40)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    args = ap.parse_args()
    cmd = [c for c in args.cmd if c != "--"]
    if not cmd:
        ap.error("no command given")

    start = time.monotonic()
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = os.environ.get("TERM", "xterm-256color")
        try:
            os.execvp(cmd[0], cmd)
        except OSError as e:
            print(f"cannot run {cmd[0]}: {e}", file=sys.stderr)
            os._exit(127)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", args.rows, args.cols, 0, 0))

    seen = b""
    first_frame = None
    marker = args.marker.encode()
    deadline = start + args.seconds + 30
    # Wait for the first frame (or give up after 30 s).
    while first_frame is None and time.monotonic() < deadline:
        r, _, _ = select.select([fd], [], [], 0.05)
        if r:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            seen = (seen + chunk)[-65536:]
            if marker in seen:
                first_frame = time.monotonic() - start
    # Measure over the window, draining output so the program never blocks on the pty.
    t0 = time.monotonic()
    c0 = cpu_ticks(pid)
    peak_rss = 0
    while time.monotonic() - t0 < args.seconds:
        r, _, _ = select.select([fd], [], [], 0.2)
        if r:
            try:
                os.read(fd, 65536)
            except OSError:
                break
        rss = status_kib(pid, "VmRSS")
        if rss:
            peak_rss = max(peak_rss, rss)
    elapsed = time.monotonic() - t0
    c1 = cpu_ticks(pid)
    hwm = status_kib(pid, "VmHWM") or peak_rss
    # Quit the way a user does, then make sure it is gone.
    os.write(fd, b"q")
    code = None
    for _ in range(50):
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            code = os.waitstatus_to_exitcode(status)
            break
        try:
            os.read(fd, 65536)
        except OSError:
            pass
        time.sleep(0.1)
    if code is None:
        os.kill(pid, signal.SIGTERM)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
    print(json.dumps({
        "command": cmd,
        "first_frame_ms": None if first_frame is None else round(first_frame * 1000, 1),
        "window_s": round(elapsed, 2),
        "cpu_percent_of_one_core": round(100.0 * (c1 - c0) / CLK_TCK / elapsed, 3),
        "peak_rss_mib": round(hwm / 1024, 1),
        "exit_code": code,
    }))


if __name__ == "__main__":
    main()
