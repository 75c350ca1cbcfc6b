//! Cost of one dashboard tick of the compatibility matrix: every registry model x analysis,
//! evaluated on the CPU and the 8 GPUs of the synthetic trace (with fallback searches).
//! Prints a table; run with `cargo bench --bench estimate_matrix`.

use std::path::Path;
use std::time::Instant;

use neuronmap::estimate::device::{devices_from_frame, Speed};
use neuronmap::estimate::matrix::PreparedMatrix;
use neuronmap::models::{registry, CatalogueEntry};
use neuronmap::telemetry::trace::TraceReader;

/// A CPU speed of the order calibration gives on a small machine.
const CPU: Speed = Speed {
    flops_per_second: 3e10,
    seconds_per_matmul: 30e-6,
    seconds_per_byte: 1e-9,
};

fn main() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/traces/synthetic-8gpu.jsonl");
    let (_, frames) = TraceReader::open(&path)
        .and_then(TraceReader::read_all)
        .expect("demo trace");
    let entries: Vec<CatalogueEntry> = registry::builtin()
        .expect("registry")
        .iter()
        .map(CatalogueEntry::from_registry)
        .collect();
    let start = Instant::now();
    let prepared = PreparedMatrix::new(&entries);
    let prepare = start.elapsed();
    let runs = 200;
    let start = Instant::now();
    let mut cells = 0;
    for i in 0..runs {
        let devices = devices_from_frame(&frames[i % frames.len()], CPU);
        cells += prepared.evaluate(&devices).cells.len();
    }
    let per_tick = start.elapsed() / runs as u32;
    println!("{:<28} {:>12}", "STEP", "TIME");
    println!("{:<28} {:>12.3?}", "prepare (once)", prepare);
    println!("{:<28} {:>12.3?}", "evaluate (per tick)", per_tick);
    println!(
        "rows {}, columns 5, devices 9, ticks {runs} ({cells} row evaluations)",
        prepared.rows.len()
    );
}
