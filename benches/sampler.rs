//! Sampler cost per tick: replaying a trace (1 and 8 GPUs), the sysinfo host probe, recording
//! into the histories, and live NVML when a driver is present. Prints a table.
//!
//! `cargo bench --bench sampler`

use std::path::Path;
use std::time::{Duration, Instant};

use neuronmap::telemetry::history::History;
use neuronmap::telemetry::host::HostProbe;
use neuronmap::telemetry::nvml::NvmlSource;
use neuronmap::telemetry::replay::ReplaySource;
use neuronmap::telemetry::{FrameSource, GpuSource, Tick};

struct Row {
    what: String,
    gpus: usize,
    ticks: usize,
    per_tick: Duration,
}

fn time_ticks(ticks: usize, mut f: impl FnMut()) -> Duration {
    f(); // warm up
    let start = Instant::now();
    for _ in 0..ticks {
        f();
    }
    start.elapsed() / ticks as u32
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/traces");
    let mut rows = Vec::new();
    for (file, gpus) in [("synthetic-1gpu.jsonl", 1), ("synthetic-8gpu.jsonl", 8)] {
        let mut replay = match ReplaySource::open(&root.join(file), 1.0, true) {
            Ok(r) => r,
            Err(e) => {
                eprintln!("skipping {file}: {e}");
                continue;
            }
        };
        let ticks = 2000;
        let per_tick = time_ticks(ticks, || {
            if let Tick::Frame { frame, .. } = replay.next_tick() {
                std::hint::black_box(frame);
            }
        });
        rows.push(Row {
            what: format!("replay tick ({file})"),
            gpus,
            ticks,
            per_tick,
        });

        let mut history = History::with_capacity(600);
        let frame = match replay.next_tick() {
            Tick::Frame { frame, .. } => frame,
            _ => continue,
        };
        let per_tick = time_ticks(ticks, || history.record(&frame));
        rows.push(Row {
            what: "history record".into(),
            gpus,
            ticks,
            per_tick,
        });
    }

    if let Ok(mut host) = HostProbe::new() {
        let me = [std::process::id()];
        let ticks = 50;
        let per_tick = time_ticks(ticks, || {
            std::hint::black_box(host.sample(&me));
        });
        rows.push(Row {
            what: "host probe (sysinfo, 1 GPU pid)".into(),
            gpus: 0,
            ticks,
            per_tick,
        });
    }

    let mut nvml = NvmlSource::open();
    let gpus = nvml.devices().len();
    if gpus > 0 {
        let ticks = 20;
        let per_tick = time_ticks(ticks, || {
            std::hint::black_box(nvml.sample());
        });
        rows.push(Row {
            what: "NVML sample (live)".into(),
            gpus,
            ticks,
            per_tick,
        });
    } else {
        eprintln!(
            "no live NVML row: {}",
            nvml.driver().error.unwrap_or_default()
        );
    }

    println!(
        "{:<40} {:>5} {:>6} {:>14} {:>14}",
        "sampler step", "gpus", "ticks", "per tick (us)", "per GPU (us)"
    );
    for r in rows {
        let us = r.per_tick.as_secs_f64() * 1e6;
        let per_gpu = if r.gpus > 0 {
            format!("{:.1}", us / r.gpus as f64)
        } else {
            "-".into()
        };
        println!(
            "{:<40} {:>5} {:>6} {:>14.1} {:>14}",
            r.what, r.gpus, r.ticks, us, per_gpu
        );
    }
}
