//! Accuracy report of the memory estimator: runs the real engine on every test fixture model
//! (and any model folder given in NEURONMAP_BENCH_MODELS, colon-separated) for each analysis the
//! engine supports and a grid of batch x sequence length, measures the peak heap with a counting
//! global allocator, and prints estimate / measured / error % per row; and the same for the
//! wall time of the run against the time estimate (FLOPs over the calibrated CPU throughput).
//!
//! The heap the process keeps for its whole life once it has run anything (gemm's per-thread
//! packing buffers, lazily built statics) is taken before the table by a warm-up run, and the
//! estimate's share for it ([`memory::cpu_process_bytes`]) is left out of the compared figure.
//!
//! Run: `cargo bench --bench estimate_accuracy` (any profile gives the same byte counts; time
//! figures need the bench profile).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Instant;

use neuronmap::engine::request::{Analysis, ExtractRequest};
use neuronmap::estimate::{self, memory, time, DeviceId, DeviceSpec};

/// Counts live heap bytes and their peak.
struct Counting;

static CURRENT: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn add(n: usize) {
    let now = CURRENT.fetch_add(n, Ordering::Relaxed) + n;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards every call to the system allocator unchanged; only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            add(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) };
        CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            CURRENT.fetch_sub(layout.size(), Ordering::Relaxed);
            add(new_size);
        }
        p
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn models() -> Vec<PathBuf> {
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&fixtures)
        .map(|e| {
            e.flatten()
                .map(|e| e.path())
                .filter(|p| p.join("config.json").is_file())
                .collect()
        })
        .unwrap_or_default();
    dirs.sort();
    if let Ok(extra) = std::env::var("NEURONMAP_BENCH_MODELS") {
        dirs.extend(
            extra
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from),
        );
    }
    dirs
}

/// A request for `batch * 3` copies of `prompt` in `work`.
fn request(
    work: &Path,
    dir: &Path,
    prompt: &str,
    analysis: Analysis,
    batch: usize,
    seq: usize,
) -> ExtractRequest {
    let _ = std::fs::remove_dir_all(work);
    std::fs::create_dir_all(work).expect("temp dir");
    let input = work.join("prompts.txt");
    let lines: Vec<&str> = std::iter::repeat_n(prompt, batch * 3).collect();
    std::fs::write(&input, lines.join("\n")).expect("prompt file");
    ExtractRequest {
        model: dir.display().to_string(),
        input,
        hooks: match analysis {
            Analysis::Attention => Vec::new(),
            _ => vec!["blocks.*.hook_resid_post".to_string()],
        },
        out: work.join("out"),
        analysis,
        batch,
        max_len: Some(seq),
        dtype: None,
        device: "cpu".into(),
        resume: false,
    }
}

fn main() {
    let work =
        std::env::temp_dir().join(format!("neuronmap-bench-estimate-{}", std::process::id()));
    let calibration = time::calibrate_cpu().expect("CPU calibration");
    let cpu = DeviceSpec {
        id: DeviceId::Cpu,
        name: "CPU".into(),
        total_bytes: u64::MAX / 4,
        free_bytes: u64::MAX / 4,
        bf16: false,
        flops_per_second: calibration.flops_per_second,
    };
    // Long prompts, so every prompt is truncated to exactly --max-len tokens.
    let prompt =
        "the quick brown fox jumps over the lazy dog and keeps running far away ".repeat(40);
    let models = models();
    // Warm-up: the process-lifetime heap (gemm's packing buffer in every thread) is taken now.
    if let Some(dir) = models.first() {
        let req = request(&work, dir, &prompt, Analysis::Attention, 16, 64);
        let _ = neuronmap::engine::run_extract(&req, &mut |_| {}, &AtomicBool::new(false));
    }
    let process = memory::cpu_process_bytes();
    println!(
        "CPU throughput (calibrated f32 matmul): {:.1} GFLOP/s, {} threads",
        calibration.flops_per_second / 1e9,
        calibration.threads
    );
    println!(
        "{:<12} {:<12} {:>5} {:>5} {:>12} {:>12} {:>8} {:>9} {:>9} {:>8}",
        "MODEL",
        "ANALYSIS",
        "BATCH",
        "SEQ",
        "EST_HEAP",
        "PEAK_HEAP",
        "ERROR%",
        "EST_MS",
        "WALL_MS",
        "TIME_ERR%"
    );
    let mut worst: Option<(f64, String)> = None;
    let mut rows = 0usize;
    let mut within = 0usize;
    let mut time_errors: Vec<f64> = Vec::new();
    for dir in models {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for analysis in [Analysis::Activations, Analysis::Stats, Analysis::Attention] {
            for batch in [1usize, 4, 16] {
                for seq in [16usize, 32, 64] {
                    let req = request(&work, &dir, &prompt, analysis, batch, seq);
                    let Ok(est) = estimate::estimate_request(&req, &cpu) else {
                        continue;
                    };
                    let base = CURRENT.load(Ordering::Relaxed);
                    PEAK.store(base, Ordering::Relaxed);
                    let started = Instant::now();
                    let result =
                        neuronmap::engine::run_extract(&req, &mut |_| {}, &AtomicBool::new(false));
                    let wall = started.elapsed().as_secs_f64();
                    if let Err(e) = result {
                        println!(
                            "{name:<12} {:<12} {batch:>5} {seq:>5}  engine error: {e}",
                            format!("{analysis:?}")
                        );
                        continue;
                    }
                    let measured = (PEAK.load(Ordering::Relaxed) - base) as f64;
                    // The runtime (not heap) and the process-lifetime heap taken by the warm-up.
                    let heap_estimate = est.peak_bytes - process;
                    let estimated = heap_estimate as f64;
                    let error = (estimated - measured) / measured * 100.0;
                    let row = format!(
                        "{name} {analysis:?} batch {batch} seq {seq}: {heap_estimate} estimated, {} measured",
                        measured as u64
                    );
                    rows += 1;
                    within += usize::from(error.abs() <= 10.0);
                    if worst.as_ref().is_none_or(|(w, _)| error.abs() > w.abs()) {
                        worst = Some((error, row));
                    }
                    let batches = (batch * 3).div_ceil(batch) as f64;
                    let est_seconds = est.time.seconds_per_batch * batches;
                    let time_error = (est_seconds - wall) / wall * 100.0;
                    time_errors.push(time_error);
                    println!(
                        "{name:<12} {:<12} {batch:>5} {seq:>5} {:>12} {:>12} {error:>+8.1} {:>9.2} {:>9.2} {time_error:>+8.0}",
                        format!("{analysis:?}").to_lowercase(),
                        heap_estimate,
                        measured as u64,
                        est_seconds * 1e3,
                        wall * 1e3,
                    );
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    println!("memory: {within} of {rows} rows within +-10%");
    if let Some((error, row)) = worst {
        println!("worst memory row: {row}: {error:+.1}%");
    }
    let lo = time_errors.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = time_errors
        .iter()
        .copied()
        .fold(f64::NEG_INFINITY, f64::max);
    if !time_errors.is_empty() {
        println!("time: estimate vs wall time error from {lo:+.0}% to {hi:+.0}%");
    }
}
