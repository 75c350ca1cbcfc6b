//! Accuracy report of the memory estimator: runs the real engine on every test fixture model
//! (and any model folder given in NEURONMAP_BENCH_MODELS, colon-separated) for each analysis the
//! engine supports and a grid of batch x sequence length, measures the peak heap with a counting
//! global allocator, and prints estimate / measured / error % per row.
//!
//! Run: `cargo bench --bench estimate_accuracy` (any profile gives the same byte counts).

use std::alloc::{GlobalAlloc, Layout, System};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use neuronmap::engine::request::{Analysis, ExtractRequest};
use neuronmap::estimate::memory::CPU_CONTEXT_BYTES;
use neuronmap::estimate::{self, DeviceId, DeviceSpec};

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

fn main() {
    let work =
        std::env::temp_dir().join(format!("neuronmap-bench-estimate-{}", std::process::id()));
    let cpu = DeviceSpec {
        id: DeviceId::Cpu,
        name: "CPU".into(),
        total_bytes: u64::MAX / 4,
        free_bytes: u64::MAX / 4,
        bf16: false,
        flops_per_second: 1e11,
    };
    // Long prompts, so every prompt is truncated to exactly --max-len tokens.
    let prompt =
        "the quick brown fox jumps over the lazy dog and keeps running far away ".repeat(40);
    println!(
        "{:<12} {:<12} {:>5} {:>5} {:>12} {:>12} {:>8}",
        "MODEL", "ANALYSIS", "BATCH", "SEQ", "EST_HEAP", "PEAK_HEAP", "ERROR%"
    );
    let mut worst: Option<(f64, String)> = None;
    for dir in models() {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for analysis in [Analysis::Activations, Analysis::Stats, Analysis::Attention] {
            for batch in [1usize, 4, 16] {
                for seq in [16usize, 32, 64] {
                    let _ = std::fs::remove_dir_all(&work);
                    std::fs::create_dir_all(&work).expect("temp dir");
                    let input = work.join("prompts.txt");
                    let lines: Vec<&str> =
                        std::iter::repeat_n(prompt.as_str(), batch * 3).collect();
                    std::fs::write(&input, lines.join("\n")).expect("prompt file");
                    let req = ExtractRequest {
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
                    };
                    let Ok(est) = estimate::estimate_request(&req, &cpu) else {
                        continue;
                    };
                    let base = CURRENT.load(Ordering::Relaxed);
                    PEAK.store(base, Ordering::Relaxed);
                    let result =
                        neuronmap::engine::run_extract(&req, &mut |_| {}, &AtomicBool::new(false));
                    if let Err(e) = result {
                        println!(
                            "{name:<12} {:<12} {batch:>5} {seq:>5}  engine error: {e}",
                            format!("{analysis:?}")
                        );
                        continue;
                    }
                    let measured = (PEAK.load(Ordering::Relaxed) - base) as f64;
                    // The runtime share of the context (code, thread stacks) is not heap.
                    let heap_estimate = est.peak_bytes - CPU_CONTEXT_BYTES;
                    let estimated = heap_estimate as f64;
                    let error = (estimated - measured) / measured * 100.0;
                    let row = format!("{name} {analysis:?} batch {batch} seq {seq}");
                    if worst.as_ref().is_none_or(|(w, _)| error.abs() > w.abs()) {
                        worst = Some((error, row));
                    }
                    println!(
                        "{name:<12} {:<12} {batch:>5} {seq:>5} {:>12} {:>12} {error:>+8.1}",
                        format!("{analysis:?}").to_lowercase(),
                        heap_estimate,
                        measured as u64
                    );
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&work);
    if let Some((error, row)) = worst {
        println!("worst row: {row}: {error:+.1}%");
    }
}
