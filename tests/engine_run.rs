//! Runs of the engine end to end: batching with padding, cancel and resume, statistics,
//! attention, and the errors that must leave the output folder alone.

mod engine_support;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use engine_support::*;
use neuronmap::engine::{run_extract_with, Analysis, EngineError, EngineOptions, RunOutcome};

fn prompts() -> Vec<String> {
    let mut p = reference("gpt2").prompts;
    for i in 0..9 {
        p.push(format!(
            "prompt number {i} {}",
            "with more words ".repeat(i)
        ));
    }
    p
}

fn small_shards() -> EngineOptions {
    EngineOptions {
        shard_target_bytes: 30_000,
        stats_chunk_prompts: 4,
    }
}

fn assert_same_output(a: &Output, b: &Output, exact: bool) {
    assert_eq!(a.ids, b.ids);
    assert_eq!(a.offsets, b.offsets);
    assert_eq!(a.index, b.index);
    assert_eq!(
        a.hooks.keys().collect::<Vec<_>>(),
        b.hooks.keys().collect::<Vec<_>>()
    );
    assert_eq!(
        a.per_prompt.keys().collect::<Vec<_>>(),
        b.per_prompt.keys().collect::<Vec<_>>()
    );
    for (name, (shape, v)) in &a.hooks {
        assert_eq!(shape, &b.hooks[name].0);
        if exact {
            assert_eq!(v, &b.hooks[name].1, "{name}");
        } else {
            assert_close(name, v, &b.hooks[name].1);
        }
    }
    for (name, (shape, v)) in &a.per_prompt {
        assert_eq!(shape, &b.per_prompt[name].0);
        if exact {
            assert_eq!(v, &b.per_prompt[name].1, "{name}");
        } else {
            assert_close(name, v, &b.per_prompt[name].1);
        }
    }
}

#[test]
fn batched_with_padding_equals_one_at_a_time() {
    for family in ["gpt2", "bert", "llama"] {
        let tmp = tempfile::tempdir().unwrap();
        let input = write_prompts(tmp.path(), &prompts());
        let one = tmp.path().join("one");
        let many = tmp.path().join("many");
        run(
            &request(&fixture(family), &input, &one, &["*"], 1),
            &EngineOptions::default(),
        );
        run(
            &request(&fixture(family), &input, &many, &["*"], 5),
            &EngineOptions::default(),
        );
        let (a, b) = (load_output(&one), load_output(&many));
        assert_eq!(a.index.len(), prompts().len());
        assert_same_output(&a, &b, false);
    }
}

#[test]
fn cancel_then_resume_equals_uninterrupted() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_prompts(tmp.path(), &prompts());
    let whole = tmp.path().join("whole");
    let parts = tmp.path().join("parts");
    let hooks = ["blocks.*.hook_resid_post", "blocks.1.attn.hook_pattern"];
    run(
        &request(&fixture("gpt2"), &input, &whole, &hooks, 2),
        &small_shards(),
    );

    let cancel = AtomicBool::new(false);
    let req = request(&fixture("gpt2"), &input, &parts, &hooks, 2);
    let mut calls = 0;
    let outcome = run_extract_with(
        &req,
        &small_shards(),
        &mut |_| {
            calls += 1;
            cancel.store(true, Ordering::SeqCst);
        },
        &cancel,
    )
    .unwrap();
    assert_eq!(outcome, RunOutcome::Cancelled);
    let partial = load_output(&parts);
    assert_eq!(partial.manifest["complete"], false);
    let done = partial.manifest["prompts_done"].as_u64().unwrap() as usize;
    assert!(
        done > 0 && done < prompts().len(),
        "stopped at a shard boundary: {done}"
    );
    assert_eq!(partial.shard_files.len(), 1);
    assert!(calls >= 1);

    // Without --resume the folder is refused and left as it is.
    let err =
        run_extract_with(&req, &small_shards(), &mut |_| {}, &AtomicBool::new(false)).unwrap_err();
    assert!(matches!(err, EngineError::OutputExists { .. }), "{err}");

    let mut resumed = req.clone();
    resumed.resume = true;
    let mut first = None;
    let outcome = run_extract_with(
        &resumed,
        &small_shards(),
        &mut |p| {
            first.get_or_insert(p.prompts_done);
        },
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(outcome, RunOutcome::Completed);
    assert!(
        first.unwrap() > done,
        "the resumed run skips finished prompts"
    );
    let (a, b) = (load_output(&whole), load_output(&parts));
    assert!(a.shard_files.len() > 2);
    assert_eq!(a.shard_files, b.shard_files);
    assert_same_output(&a, &b, true);
    let strip = |dir: &Path| {
        let mut m: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap())
                .unwrap();
        m.as_object_mut().unwrap().remove("model");
        m
    };
    assert_eq!(strip(&whole), strip(&parts), "manifests agree");

    // Resuming with other hooks is refused.
    let mut other = resumed.clone();
    other.hooks = vec!["hook_embed".into()];
    let err = run_extract_with(
        &other,
        &small_shards(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(err.to_string().contains("hooks differs"), "{err}");
}

#[test]
fn stats_match_the_activations_and_resume_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_prompts(tmp.path(), &prompts());
    let acts = tmp.path().join("acts");
    let hooks = ["blocks.*.hook_resid_post", "blocks.0.attn.hook_pattern"];
    run(
        &request(&fixture("gpt2"), &input, &acts, &hooks, 3),
        &EngineOptions::default(),
    );
    let o = load_output(&acts);

    let stats_dir = tmp.path().join("stats");
    let mut req = request(&fixture("gpt2"), &input, &stats_dir, &hooks, 3);
    req.analysis = Analysis::Stats;
    run(&req, &small_shards());
    let stats: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(stats_dir.join("stats.json")).unwrap())
            .unwrap();
    assert_eq!(stats["complete"], true);
    let (_, v) = &o.hooks["blocks.1.hook_resid_post"];
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let std = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n).sqrt();
    let s = &stats["hooks"]["blocks.1.hook_resid_post"];
    assert!((s["mean"].as_f64().unwrap() - mean).abs() < 1e-6);
    assert!((s["std"].as_f64().unwrap() - std).abs() < 1e-6);
    let max = v.iter().cloned().fold(f64::MIN, f64::max);
    assert!((s["max"].as_f64().unwrap() - max).abs() < 1e-6);
    let rows: Vec<f64> = v
        .chunks(32)
        .map(|r| r.iter().map(|x| x * x).sum::<f64>().sqrt())
        .collect();
    let norm = rows.iter().sum::<f64>() / rows.len() as f64;
    assert!((s["mean_l2_norm"].as_f64().unwrap() - norm).abs() < 1e-5);
    let p = &stats["hooks"]["blocks.0.attn.hook_pattern"];
    assert!((p["mean_l2_norm"].as_f64().unwrap() - 0.0).abs() > 0.1);
    assert!(p["max"].as_f64().unwrap() <= 1.0 + 1e-6);
    assert!(!stats_dir.join("shard-00000.safetensors").exists());

    // Cancelled after the first chunk, then resumed: the same stats.json.
    let again = tmp.path().join("again");
    let mut req2 = req.clone();
    req2.out = again.clone();
    let cancel = AtomicBool::new(true);
    let outcome = run_extract_with(&req2, &small_shards(), &mut |_| {}, &cancel).unwrap();
    assert_eq!(outcome, RunOutcome::Cancelled);
    req2.resume = true;
    run(&req2, &small_shards());
    assert_eq!(
        std::fs::read_to_string(stats_dir.join("stats.json")).unwrap(),
        std::fs::read_to_string(again.join("stats.json")).unwrap()
    );
}

#[test]
fn attention_analysis_writes_patterns_per_prompt() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_prompts(tmp.path(), &prompts());
    let out = tmp.path().join("att");
    let mut req = request(&fixture("llama"), &input, &out, &[], 4);
    req.analysis = Analysis::Attention;
    run(&req, &EngineOptions::default());
    let o = load_output(&out);
    assert!(o.hooks.is_empty());
    assert_eq!(o.per_prompt.len(), 3 * prompts().len());
    let len = o.offsets[3] - o.offsets[2];
    let (shape, v) = &o.per_prompt["blocks.2.attn.hook_pattern@2"];
    assert_eq!(shape, &vec![4, len, len]);
    for row in v.chunks(len) {
        assert!((row.iter().sum::<f64>() - 1.0).abs() < 1e-5);
    }
    let mut bad = req.clone();
    bad.hooks = vec!["blocks.0.hook_resid_post".into()];
    bad.out = tmp.path().join("bad");
    let err = run_extract_with(
        &bad,
        &EngineOptions::default(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(err.to_string().contains("per-token"), "{err}");
}

#[test]
fn max_len_truncates_and_bos_is_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_prompts(tmp.path(), &prompts());
    let out = tmp.path().join("o");
    let mut req = request(&fixture("llama"), &input, &out, &["hook_embed"], 4);
    req.max_len = Some(6);
    run(&req, &EngineOptions::default());
    let o = load_output(&out);
    let r = reference("llama");
    for k in 0..prompts().len() {
        let ids = o.prompt_ids(k);
        assert!(ids.len() <= 6);
        assert_eq!(ids[0], 1, "BOS from the tokenizer's post-processor");
    }
    let want: Vec<i64> = r.tensors["p3.input_ids"]
        .1
        .iter()
        .take(6)
        .map(|&x| x as i64)
        .collect();
    assert_eq!(o.prompt_ids(3), &want[..]);
    req.max_len = Some(10_000);
    req.out = tmp.path().join("o2");
    let err = run_extract_with(
        &req,
        &EngineOptions::default(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap_err();
    assert!(err.to_string().contains("--max-len"), "{err}");
}

/// Copies a fixture so a test can break it.
fn copy_fixture(family: &str, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(fixture(family)).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
    }
}

/// Runs a request expected to fail and checks the output folder is exactly as before.
fn fails_untouched(req: &neuronmap::engine::ExtractRequest) -> String {
    std::fs::create_dir_all(&req.out).unwrap();
    std::fs::write(req.out.join("keep.txt"), "mine").unwrap();
    let err = run_extract_with(
        req,
        &EngineOptions::default(),
        &mut |_| {},
        &AtomicBool::new(false),
    )
    .unwrap_err();
    let names: Vec<_> = std::fs::read_dir(&req.out)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(names, vec!["keep.txt".to_string()], "after: {err}");
    err.to_string()
}

#[test]
fn errors_are_clear_and_touch_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_prompts(tmp.path(), &prompts());
    let out = tmp.path().join("out");
    let model = tmp.path().join("model");
    let req = |m: &Path, hooks: &[&str]| request(m, &input, &out, hooks, 2);

    copy_fixture("gpt2", &model);
    let err = fails_untouched(&req(&model, &["blocks.*.hook_resid_pots"]));
    assert!(
        err.contains("close matches: blocks.0.hook_resid_post"),
        "{err}"
    );

    let bytes = std::fs::read(model.join("model.safetensors")).unwrap();
    std::fs::write(model.join("model.safetensors"), &bytes[..bytes.len() / 2]).unwrap();
    let err = fails_untouched(&req(&model, &["*"]));
    assert!(
        err.contains("truncated") && err.contains("model.safetensors"),
        "{err}"
    );

    std::fs::remove_file(model.join("model.safetensors")).unwrap();
    let err = fails_untouched(&req(&model, &["*"]));
    assert!(err.contains("no safetensors weights"), "{err}");

    std::fs::write(model.join("model.safetensors"), &bytes).unwrap();
    std::fs::remove_file(model.join("tokenizer.json")).unwrap();
    let err = fails_untouched(&req(&model, &["*"]));
    assert!(err.contains("no tokenizer.json"), "{err}");

    let cfg = std::fs::read_to_string(model.join("config.json")).unwrap();
    std::fs::write(model.join("config.json"), cfg.replace("\"gpt2\"", "\"t5\"")).unwrap();
    let err = fails_untouched(&req(&model, &["*"]));
    assert!(err.contains("unsupported model family \"t5\""), "{err}");

    let shards = tmp.path().join("qwen");
    copy_fixture("qwen2", &shards);
    std::fs::remove_file(shards.join("model-00002-of-00003.safetensors")).unwrap();
    let err = fails_untouched(&req(&shards, &["*"]));
    assert!(err.contains("model-00002-of-00003"), "{err}");

    let err = fails_untouched(&req(Path::new("no/such-model-here"), &["*"]));
    assert!(err.contains("not in the Hugging Face cache"), "{err}");

    let mut bad_input = req(&fixture("gpt2"), &["*"]);
    bad_input.input = tmp.path().join("prompts.csv");
    std::fs::write(&bad_input.input, "a,b\n").unwrap();
    let err = fails_untouched(&bad_input);
    assert!(err.contains(".jsonl"), "{err}");
}

#[test]
fn model_ids_resolve_through_the_hub_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("models--org--tiny");
    let snap = repo.join("snapshots").join("abc123");
    copy_fixture("gpt2", &snap);
    std::fs::create_dir_all(repo.join("refs")).unwrap();
    std::fs::write(repo.join("refs").join("main"), "abc123\n").unwrap();
    let cache = Some(tmp.path().to_path_buf());
    assert_eq!(
        neuronmap::engine::resolve_model_dir_in("org/tiny", cache.clone()).unwrap(),
        snap
    );
    // The manifest records the snapshot's revision.
    let input = write_prompts(tmp.path(), &prompts()[..2]);
    let out = tmp.path().join("out");
    run(
        &request(&snap, &input, &out, &["hook_embed"], 2),
        &EngineOptions::default(),
    );
    let m = load_output(&out).manifest;
    assert_eq!(m["model"]["revision"], "abc123");
    let err = neuronmap::engine::resolve_model_dir_in("org/missing", cache.clone()).unwrap_err();
    assert!(err.to_string().contains("models--org--missing"), "{err}");

    // Old top-level repos have no org: `gpt2` is cached as models--gpt2.
    let bare = tmp.path().join("models--tinygpt");
    let bare_snap = bare.join("snapshots").join("def456");
    copy_fixture("gpt2", &bare_snap);
    std::fs::create_dir_all(bare.join("refs")).unwrap();
    std::fs::write(bare.join("refs").join("main"), "def456").unwrap();
    assert_eq!(
        neuronmap::engine::resolve_model_dir_in("tinygpt", cache.clone()).unwrap(),
        bare_snap
    );
    let err = neuronmap::engine::resolve_model_dir_in("a/b/c", cache).unwrap_err();
    assert!(err.to_string().contains("no such folder"), "{err}");
}

#[test]
fn half_precision_stays_close_to_f32() {
    let tmp = tempfile::tempdir().unwrap();
    let input = write_prompts(tmp.path(), &prompts()[..4]);
    let full = tmp.path().join("f32");
    run(
        &request(
            &fixture("llama"),
            &input,
            &full,
            &["blocks.*.hook_resid_post"],
            2,
        ),
        &EngineOptions::default(),
    );
    let a = load_output(&full);
    for dtype in ["f16", "bf16"] {
        let out = tmp.path().join(dtype);
        let mut req = request(
            &fixture("llama"),
            &input,
            &out,
            &["blocks.*.hook_resid_post"],
            2,
        );
        req.dtype = Some(dtype.into());
        run(&req, &EngineOptions::default());
        let b = load_output(&out);
        assert_eq!(b.manifest["dtype"], dtype);
        assert_eq!(a.ids, b.ids);
        let (_, x) = &a.hooks["blocks.2.hook_resid_post"];
        let (_, y) = &b.hooks["blocks.2.hook_resid_post"];
        let err = x.iter().zip(y).map(|(p, q)| (p - q).abs()).sum::<f64>() / x.len() as f64;
        let scale = x.iter().map(|p| p.abs()).sum::<f64>() / x.len() as f64;
        assert!(
            err < 0.05 * scale,
            "{dtype}: mean error {err} against mean size {scale}"
        );
    }
}
