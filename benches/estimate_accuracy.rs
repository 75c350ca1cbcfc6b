//! Accuracy report of the memory estimator: runs the real engine on every test fixture model,
//! on three larger models of the GPT-2, BERT and Llama (grouped-query) shapes written here with
//! random weights (d = 256, 4 blocks; the fixtures' tokenizers), and on any model folder given
//! in NEURONMAP_BENCH_MODELS (colon-separated), for each analysis the engine supports and a
//! grid of batch x sequence length. It measures the peak heap with a counting global allocator
//! and prints estimate / measured / error % per row; and the time of the second batch (between
//! the first two progress reports: its forward pass and captures; it writes no shard, and the
//! shard's prompts were tokenised before its first batch) against the time estimate per batch
//! without its tokenising share (FLOPs over the calibrated CPU throughput).
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

use candle_core::{Device, Tensor};
use neuronmap::engine::request::{Analysis, ExtractRequest};
use neuronmap::estimate::{self, memory, time, DeviceSpec};

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

/// Writes a model folder with random weights: `config` and `(name, shape)` tensors, and the
/// tokenizer of fixture `tokenizer_from`.
fn synthetic(
    root: &Path,
    name: &str,
    config: serde_json::Value,
    tensors: Vec<(String, Vec<usize>)>,
    tokenizer_from: &str,
) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("model folder");
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config.json");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    std::fs::copy(
        fixtures.join(tokenizer_from).join("tokenizer.json"),
        dir.join("tokenizer.json"),
    )
    .expect("tokenizer.json");
    let map: std::collections::HashMap<String, Tensor> = tensors
        .into_iter()
        .map(|(n, shape)| {
            let t = Tensor::randn(0f32, 0.02, shape, &Device::Cpu).expect("random weights");
            (n, t)
        })
        .collect();
    candle_core::safetensors::save(&map, dir.join("model.safetensors")).expect("weights");
    dir
}

/// Larger models than the fixtures: GPT-2, BERT and Llama (GQA) shapes with d = 256, 4 blocks.
fn synthetic_models(root: &Path) -> Vec<PathBuf> {
    let (d, layers, positions) = (256usize, 4usize, 256usize);
    let vec = |n: String, shape: &[usize]| (n, shape.to_vec());
    let mut gpt2 = vec![
        vec("wte.weight".into(), &[400, d]),
        vec("wpe.weight".into(), &[positions, d]),
        vec("ln_f.weight".into(), &[d]),
        vec("ln_f.bias".into(), &[d]),
    ];
    let mut bert = vec![
        vec("embeddings.word_embeddings.weight".into(), &[210, d]),
        vec(
            "embeddings.position_embeddings.weight".into(),
            &[positions, d],
        ),
        vec("embeddings.token_type_embeddings.weight".into(), &[2, d]),
        vec("embeddings.LayerNorm.weight".into(), &[d]),
        vec("embeddings.LayerNorm.bias".into(), &[d]),
    ];
    let (heads, kv, head_dim, m_llama) = (8usize, 2usize, 32usize, 688usize);
    let mut llama = vec![
        vec("model.embed_tokens.weight".into(), &[400, d]),
        vec("model.norm.weight".into(), &[d]),
        vec("lm_head.weight".into(), &[400, d]),
    ];
    for i in 0..layers {
        let h = format!("h.{i}");
        for (n, shape) in [
            ("ln_1.weight", vec![d]),
            ("ln_1.bias", vec![d]),
            ("attn.c_attn.weight", vec![d, 3 * d]),
            ("attn.c_attn.bias", vec![3 * d]),
            ("attn.c_proj.weight", vec![d, d]),
            ("attn.c_proj.bias", vec![d]),
            ("ln_2.weight", vec![d]),
            ("ln_2.bias", vec![d]),
            ("mlp.c_fc.weight", vec![d, 4 * d]),
            ("mlp.c_fc.bias", vec![4 * d]),
            ("mlp.c_proj.weight", vec![4 * d, d]),
            ("mlp.c_proj.bias", vec![d]),
        ] {
            gpt2.push((format!("{h}.{n}"), shape));
        }
        let l = format!("encoder.layer.{i}");
        for (n, shape) in [
            ("attention.self.query.weight", vec![d, d]),
            ("attention.self.query.bias", vec![d]),
            ("attention.self.key.weight", vec![d, d]),
            ("attention.self.key.bias", vec![d]),
            ("attention.self.value.weight", vec![d, d]),
            ("attention.self.value.bias", vec![d]),
            ("attention.output.dense.weight", vec![d, d]),
            ("attention.output.dense.bias", vec![d]),
            ("attention.output.LayerNorm.weight", vec![d]),
            ("attention.output.LayerNorm.bias", vec![d]),
            ("intermediate.dense.weight", vec![4 * d, d]),
            ("intermediate.dense.bias", vec![4 * d]),
            ("output.dense.weight", vec![d, 4 * d]),
            ("output.dense.bias", vec![d]),
            ("output.LayerNorm.weight", vec![d]),
            ("output.LayerNorm.bias", vec![d]),
        ] {
            bert.push((format!("{l}.{n}"), shape));
        }
        let l = format!("model.layers.{i}");
        for (n, shape) in [
            ("input_layernorm.weight", vec![d]),
            ("self_attn.q_proj.weight", vec![heads * head_dim, d]),
            ("self_attn.k_proj.weight", vec![kv * head_dim, d]),
            ("self_attn.v_proj.weight", vec![kv * head_dim, d]),
            ("self_attn.o_proj.weight", vec![d, heads * head_dim]),
            ("post_attention_layernorm.weight", vec![d]),
            ("mlp.gate_proj.weight", vec![m_llama, d]),
            ("mlp.up_proj.weight", vec![m_llama, d]),
            ("mlp.down_proj.weight", vec![d, m_llama]),
        ] {
            llama.push((format!("{l}.{n}"), shape));
        }
    }
    vec![
        synthetic(
            root,
            "gpt2-d256",
            serde_json::json!({"model_type": "gpt2", "n_embd": d, "n_head": 8, "n_layer": layers,
                "n_positions": positions, "vocab_size": 400}),
            gpt2,
            "gpt2",
        ),
        synthetic(
            root,
            "bert-d256",
            serde_json::json!({"model_type": "bert", "hidden_size": d, "num_attention_heads": 4,
                "num_hidden_layers": layers, "intermediate_size": 4 * d,
                "max_position_embeddings": positions, "vocab_size": 210, "type_vocab_size": 2}),
            bert,
            "bert",
        ),
        synthetic(
            root,
            "llama-d256",
            serde_json::json!({"model_type": "llama", "hidden_size": d, "num_attention_heads": heads,
                "num_key_value_heads": kv, "head_dim": head_dim, "num_hidden_layers": layers,
                "intermediate_size": m_llama, "max_position_embeddings": positions,
                "vocab_size": 400, "tie_word_embeddings": false}),
            llama,
            "llama",
        ),
    ]
}

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
    let cpu = DeviceSpec::cpu(u64::MAX / 4, u64::MAX / 4, calibration.speed);
    // Long prompts, so every prompt is truncated to exactly --max-len tokens.
    let prompt =
        "the quick brown fox jumps over the lazy dog and keeps running far away ".repeat(40);
    let synthetic_root = std::env::temp_dir().join(format!(
        "neuronmap-bench-estimate-models-{}",
        std::process::id()
    ));
    let mut models = models();
    models.extend(synthetic_models(&synthetic_root));
    // Warm-up: the process-lifetime heap (gemm's packing buffer in every thread) is taken now.
    if let Some(dir) = models.first() {
        let req = request(&work, dir, &prompt, Analysis::Attention, 16, 64);
        let _ = neuronmap::engine::run_extract(&req, &mut |_| {}, &AtomicBool::new(false));
    }
    let process = memory::cpu_process_bytes();
    println!(
        "CPU calibration: f32 matmul {:.1} GFLOP/s, {:.1} us per matmul call, element-wise {:.2} GB/s written, {} threads",
        calibration.speed.flops_per_second / 1e9,
        calibration.speed.seconds_per_matmul * 1e6,
        1e-9 / calibration.speed.seconds_per_byte.max(1e-18),
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
        "BATCH_MS",
        "TIME_ERR%"
    );
    let mut worst: Option<(f64, String)> = None;
    let mut rows = 0usize;
    let mut within = 0usize;
    let mut time_errors: Vec<(f64, bool)> = Vec::new();
    for dir in models {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        for analysis in [Analysis::Activations, Analysis::Stats, Analysis::Attention] {
            let large = name.ends_with("-d256");
            for batch in [1usize, 4, 16] {
                let seqs: &[usize] = if large { &[32, 128] } else { &[16, 32, 64] };
                for &seq in seqs {
                    let req = request(&work, &dir, &prompt, analysis, batch, seq);
                    let Ok(workload) = estimate::workload_for_request(&req) else {
                        continue;
                    };
                    let est = estimate::estimate(&workload, &cpu);
                    let base = CURRENT.load(Ordering::Relaxed);
                    PEAK.store(base, Ordering::Relaxed);
                    let mut reports: Vec<Instant> = Vec::new();
                    let result = neuronmap::engine::run_extract(
                        &req,
                        &mut |_| reports.push(Instant::now()),
                        &AtomicBool::new(false),
                    );
                    // Seconds per batch: the second batch (between the first two reports),
                    // which writes no shard; the time estimate is per batch, and a shard's
                    // write and fsync come once per shard.
                    let per_batch = match (reports.first(), reports.get(1)) {
                        (Some(a), Some(b)) => (*b - *a).as_secs_f64(),
                        _ => f64::NAN,
                    };
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
                    // The engine tokenises a shard's prompts before its first batch, so the
                    // tokenising share of the estimate is not in the measured interval.
                    let est_seconds = est.time.seconds_per_batch
                        - batch as f64 * workload.input.tokenize_seconds_per_prompt;
                    let time_error = (est_seconds - per_batch) / per_batch * 100.0;
                    time_errors.push((time_error, large));
                    println!(
                        "{name:<12} {:<12} {batch:>5} {seq:>5} {:>12} {:>12} {error:>+8.1} {:>9.2} {:>9.2} {time_error:>+8.0}",
                        format!("{analysis:?}").to_lowercase(),
                        heap_estimate,
                        measured as u64,
                        est_seconds * 1e3,
                        per_batch * 1e3,
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
    let _ = std::fs::remove_dir_all(&synthetic_root);
    for (label, large) in [("fixture models", false), ("d = 256 models", true)] {
        let errors: Vec<f64> = time_errors
            .iter()
            .filter(|(e, l)| *l == large && e.is_finite())
            .map(|(e, _)| *e)
            .collect();
        let lo = errors.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = errors.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !errors.is_empty() {
            println!("time per batch, {label}: estimate error from {lo:+.0}% to {hi:+.0}%");
        }
    }
}
