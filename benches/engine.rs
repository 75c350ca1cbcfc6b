//! Engine throughput and memory: tokens/s of BERT-base-sized and GPT-2-small-sized models with
//! random weights (forward pass with the hidden-state hooks, and a full `extract` that writes
//! them), and peak RSS of an extraction of 100 against 10,000 prompts. The forward columns run
//! batches of the prompts in file order (as a plain PyTorch loop does) and in length order (as
//! `extract` does within each shard, to pad less); the extract column is the real pipeline.
//!
//! `cargo bench --bench engine` writes the models and the prompts under
//! `target/engine-bench/` (or `$NEURONMAP_BENCH_DIR`) and prints a table. The PyTorch side is
//! `python3 scripts/bench_pytorch.py target/engine-bench` on the same folder, prompts and
//! thread count.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use neuronmap::engine::capture::{Batch, Capture};
use neuronmap::engine::hooks::HookSelection;
use neuronmap::engine::tokenize::PromptTokenizer;
use neuronmap::engine::{families, run_extract_with, Analysis, EngineOptions, ExtractRequest};

const BATCH: usize = 8;
const PROMPTS: usize = 64;
/// Each figure is the best of this many runs (the VM's other load only ever slows a run down).
const REPEAT: usize = 3;

fn main() {
    if let Ok(n) = std::env::var("NEURONMAP_BENCH_RSS_CHILD") {
        rss_child(n.parse().expect("prompt count"));
        return;
    }
    let root = bench_dir();
    std::fs::create_dir_all(&root).expect("bench dir");
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures");
    make_bert(&root.join("bert-base"), &fixtures.join("bert"));
    make_gpt2(&root.join("gpt2-small"), &fixtures.join("gpt2"));
    write_prompts(&root.join("prompts.txt"), PROMPTS, 10, 60, 1);
    let threads = candle_core::utils::get_num_threads();
    println!(
        "engine benchmark: {threads} threads, batch {BATCH}, {PROMPTS} prompts, f32 CPU, best of {REPEAT}"
    );
    println!(
        "| model | forward, file order tokens/s | forward, length order tokens/s | extract (writing) tokens/s | tokens |"
    );
    println!("|---|---|---|---|---|");
    for (name, hooks) in [
        (
            "bert-base",
            vec!["blocks.*.hook_resid_pre", "blocks.11.hook_resid_post"],
        ),
        (
            "gpt2-small",
            vec!["blocks.*.hook_resid_pre", "ln_final.hook_normalized"],
        ),
    ] {
        let dir = root.join(name);
        let mut fwd = 0f64;
        let mut sorted = 0f64;
        let mut written = 0f64;
        let mut tokens = 0;
        for _ in 0..REPEAT {
            let (f, t) = forward_only(&dir, &root.join("prompts.txt"), &hooks, false);
            fwd = fwd.max(f);
            tokens = t;
            sorted = sorted.max(forward_only(&dir, &root.join("prompts.txt"), &hooks, true).0);
            written = written.max(extract(
                &dir,
                &root.join("prompts.txt"),
                &hooks,
                &root.join(format!("{name}-out")),
            ));
        }
        println!("| {name} | {fwd:.0} | {sorted:.0} | {written:.0} | {tokens} |");
    }
    println!();
    println!("peak RSS, gpt2-small, hook blocks.0.hook_resid_post (early stop after block 0):");
    println!("| prompts | peak RSS MiB |");
    println!("|---|---|");
    let mut peaks = Vec::new();
    for n in [100usize, 10_000] {
        let out = Command::new(std::env::current_exe().expect("exe"))
            .env("NEURONMAP_BENCH_RSS_CHILD", n.to_string())
            .env("NEURONMAP_BENCH_DIR", &root)
            .output()
            .expect("child");
        let text = String::from_utf8_lossy(&out.stdout);
        let peak: u64 = text
            .lines()
            .find_map(|l| l.strip_prefix("peak_rss_bytes="))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("child failed: {}", String::from_utf8_lossy(&out.stderr)));
        println!("| {n} | {:.1} |", peak as f64 / (1 << 20) as f64);
        peaks.push(peak as f64);
    }
    println!(
        "growth 100 -> 10,000 prompts: {:+.1}%",
        (peaks[1] / peaks[0] - 1.0) * 100.0
    );
}

fn bench_dir() -> PathBuf {
    std::env::var_os("NEURONMAP_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("target")
                .join("engine-bench")
        })
}

/// Deterministic prompts of `min..max` words.
fn write_prompts(path: &Path, n: usize, min: usize, max: usize, seed: u64) {
    const WORDS: &[&str] = &[
        "the",
        "quick",
        "brown",
        "fox",
        "jumps",
        "over",
        "lazy",
        "dog",
        "interpretability",
        "researchers",
        "extract",
        "activations",
        "from",
        "every",
        "layer",
        "of",
        "a",
        "transformer",
        "attention",
        "patterns",
        "and",
        "residual",
        "streams",
        "are",
        "written",
        "to",
        "safetensors",
        "shards",
        "hello",
        "world",
    ];
    let mut state = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    let mut next = |m: usize| {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((state >> 33) as usize) % m
    };
    let mut text = String::new();
    for _ in 0..n {
        let len = min + next(max - min + 1);
        let words: Vec<&str> = (0..len).map(|_| WORDS[next(WORDS.len())]).collect();
        text.push_str(&words.join(" "));
        text.push('\n');
    }
    std::fs::write(path, text).expect("prompts");
}

fn save(dir: &Path, tensors: HashMap<String, Tensor>, config: serde_json::Value, tok: &Path) {
    std::fs::create_dir_all(dir).expect("model dir");
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).expect("weights");
    std::fs::write(dir.join("config.json"), config.to_string()).expect("config");
    std::fs::copy(tok.join("tokenizer.json"), dir.join("tokenizer.json")).expect("tokenizer");
}

fn randn(shape: &[usize]) -> Tensor {
    Tensor::randn(0f32, 0.02, shape, &Device::Cpu).expect("randn")
}

fn norm(t: &mut HashMap<String, Tensor>, name: &str, d: usize) {
    t.insert(
        format!("{name}.weight"),
        Tensor::ones(d, DType::F32, &Device::Cpu).expect("ones"),
    );
    t.insert(
        format!("{name}.bias"),
        Tensor::zeros(d, DType::F32, &Device::Cpu).expect("zeros"),
    );
}

fn linear(t: &mut HashMap<String, Tensor>, name: &str, out: usize, inp: usize) {
    t.insert(format!("{name}.weight"), randn(&[out, inp]));
    t.insert(format!("{name}.bias"), randn(&[out]));
}

/// BERT-base shapes (768, 12 layers, 12 heads, 3072), vocabulary of the fixture tokenizer.
fn make_bert(dir: &Path, tok: &Path) {
    if dir.join("model.safetensors").exists() {
        return;
    }
    let (d, l, m, vocab) = (768, 12, 3072, 400);
    let mut t = HashMap::new();
    t.insert(
        "embeddings.word_embeddings.weight".into(),
        randn(&[vocab, d]),
    );
    t.insert(
        "embeddings.position_embeddings.weight".into(),
        randn(&[512, d]),
    );
    t.insert(
        "embeddings.token_type_embeddings.weight".into(),
        randn(&[2, d]),
    );
    norm(&mut t, "embeddings.LayerNorm", d);
    for i in 0..l {
        let p = format!("encoder.layer.{i}");
        for n in ["query", "key", "value"] {
            linear(&mut t, &format!("{p}.attention.self.{n}"), d, d);
        }
        linear(&mut t, &format!("{p}.attention.output.dense"), d, d);
        norm(&mut t, &format!("{p}.attention.output.LayerNorm"), d);
        linear(&mut t, &format!("{p}.intermediate.dense"), m, d);
        linear(&mut t, &format!("{p}.output.dense"), d, m);
        norm(&mut t, &format!("{p}.output.LayerNorm"), d);
    }
    let config = serde_json::json!({
        "model_type": "bert", "architectures": ["BertModel"], "hidden_size": d,
        "num_hidden_layers": l, "num_attention_heads": 12, "intermediate_size": m,
        "max_position_embeddings": 512, "vocab_size": vocab, "type_vocab_size": 2,
        "hidden_act": "gelu", "layer_norm_eps": 1e-12, "pad_token_id": 0
    });
    save(dir, t, config, tok);
}

/// GPT-2 small shapes (768, 12 layers, 12 heads, 1024 positions), fixture vocabulary.
fn make_gpt2(dir: &Path, tok: &Path) {
    if dir.join("model.safetensors").exists() {
        return;
    }
    let (d, l, vocab) = (768, 12, 400);
    let mut t = HashMap::new();
    t.insert("wte.weight".into(), randn(&[vocab, d]));
    t.insert("wpe.weight".into(), randn(&[1024, d]));
    for i in 0..l {
        let p = format!("h.{i}");
        norm(&mut t, &format!("{p}.ln_1"), d);
        norm(&mut t, &format!("{p}.ln_2"), d);
        for (n, inp, out) in [
            ("attn.c_attn", d, 3 * d),
            ("attn.c_proj", d, d),
            ("mlp.c_fc", d, 4 * d),
            ("mlp.c_proj", 4 * d, d),
        ] {
            t.insert(format!("{p}.{n}.weight"), randn(&[inp, out]));
            t.insert(format!("{p}.{n}.bias"), randn(&[out]));
        }
    }
    norm(&mut t, "ln_f", d);
    let config = serde_json::json!({
        "model_type": "gpt2", "architectures": ["GPT2Model"], "n_embd": d, "n_layer": l,
        "n_head": 12, "n_positions": 1024, "vocab_size": vocab,
        "activation_function": "gelu_new", "layer_norm_epsilon": 1e-5
    });
    save(dir, t, config, tok);
}

/// Forward passes with the hidden-state hooks captured (nothing converted or written), in
/// batches of the prompts in file order or sorted by length.
fn forward_only(dir: &Path, prompts: &Path, hooks: &[&str], by_length: bool) -> (f64, usize) {
    let loaded = families::load(dir, DType::F32, &Device::Cpu).expect("model");
    let model = loaded.model;
    let globs: Vec<String> = hooks.iter().map(|s| s.to_string()).collect();
    let sel = HookSelection::select(&model.hooks(), &globs, model.n_blocks()).expect("hooks");
    let tok = PromptTokenizer::load(dir, model.max_positions()).expect("tokenizer");
    let text = std::fs::read_to_string(prompts).expect("prompts");
    let mut ids: Vec<Vec<u32>> = text
        .lines()
        .enumerate()
        .map(|(i, l)| tok.encode(l, i).expect("encode"))
        .collect();
    if by_length {
        ids.sort_by_key(Vec::len);
    }
    let batches: Vec<Batch> = ids.chunks(BATCH).map(batch).collect();
    let run = |b: &Batch| {
        let mut cap = Capture::new(&sel);
        model
            .forward(b, sel.blocks_needed, sel.needs_final, &mut cap)
            .expect("forward");
    };
    run(&batches[0]);
    let start = Instant::now();
    for b in &batches {
        run(b);
    }
    let tokens: usize = ids.iter().map(Vec::len).sum();
    (tokens as f64 / start.elapsed().as_secs_f64(), tokens)
}

fn batch(ids: &[Vec<u32>]) -> Batch {
    let seq = ids.iter().map(Vec::len).max().unwrap_or(0);
    let mut flat = Vec::new();
    for p in ids {
        flat.extend_from_slice(p);
        flat.extend(std::iter::repeat_n(0u32, seq - p.len()));
    }
    Batch {
        ids: Tensor::from_vec(flat.clone(), (ids.len(), seq), &Device::Cpu).expect("ids"),
        host_ids: flat,
        lens: ids.iter().map(Vec::len).collect(),
        seq,
    }
}

/// A full `extract` run (tokenise, forward, write shards); returns its tokens/s.
fn extract(dir: &Path, prompts: &Path, hooks: &[&str], out: &Path) -> f64 {
    let _ = std::fs::remove_dir_all(out);
    let req = ExtractRequest {
        model: dir.to_string_lossy().into_owned(),
        input: prompts.to_path_buf(),
        hooks: hooks.iter().map(|s| s.to_string()).collect(),
        out: out.to_path_buf(),
        analysis: Analysis::Activations,
        batch: BATCH,
        max_len: None,
        dtype: None,
        device: "cpu".into(),
        resume: false,
    };
    let mut tps = 0.0;
    run_extract_with(
        &req,
        &EngineOptions::default(),
        &mut |p| tps = p.tokens_per_second,
        &AtomicBool::new(false),
    )
    .expect("extract");
    tps
}

/// Child process: one extraction of `n` short prompts; prints its peak RSS.
fn rss_child(n: usize) {
    let root = bench_dir();
    let prompts = root.join(format!("rss-{n}.txt"));
    write_prompts(&prompts, n, 4, 16, 7);
    let out = root.join(format!("rss-{n}-out"));
    let _ = std::fs::remove_dir_all(&out);
    extract(
        &root.join("gpt2-small"),
        &prompts,
        &["blocks.0.hook_resid_post"],
        &out,
    );
    let peak = neuronmap::engine::run::peak_rss().unwrap_or(0);
    println!("peak_rss_bytes={peak}");
}
