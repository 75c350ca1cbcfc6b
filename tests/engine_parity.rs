//! Every hook with a Hugging Face counterpart matches the reference tensors written by
//! scripts/make_fixtures.py (HF transformers, float32, eager attention), for GPT-2, BERT (no
//! prefix, forced padding in tokenizer.json), RoBERTa (prefix, position offset), DistilBERT,
//! Llama (GQA, head_dim, rope_parameters, untied) and Qwen2 (qkv biases, sharded weights).

mod engine_support;

use engine_support::*;
use neuronmap::engine::EngineOptions;

/// Extracts every hook of `family`'s fixture with the given batch size and compares it with
/// the references. Returns how many tensors were compared.
fn check_family(family: &str, batch: usize, min_compared: usize) {
    let r = reference(family);
    let tmp = tempfile::tempdir().unwrap();
    let input = write_prompts(tmp.path(), &r.prompts);
    let out = tmp.path().join("out");
    let opts = EngineOptions {
        shard_target_bytes: 40_000,
        ..EngineOptions::default()
    };
    run(
        &request(&fixture(family), &input, &out, &["*"], batch),
        &opts,
    );
    let o = load_output(&out);
    let n_blocks = o.manifest["model"]["n_blocks"].as_u64().unwrap() as usize;
    let mut compared = 0;
    for (name, (_, want)) in &r.tensors {
        let (prompt, key) = name.split_once('.').unwrap();
        let k: usize = prompt[1..].parse().unwrap();
        let what = format!("{family} batch {batch} prompt {k} {key}");
        if key == "input_ids" {
            let got: Vec<f64> = o.prompt_ids(k).iter().map(|&x| x as f64).collect();
            assert_eq!(&got, want, "{what}");
        } else if let Some(i) = key.strip_prefix("hidden_states.") {
            let i: usize = i.parse().unwrap();
            let hook = if i < n_blocks {
                format!("blocks.{i}.hook_resid_pre")
            } else if o.hooks.contains_key("ln_final.hook_normalized") {
                // HF applies the final norm to the last hidden state.
                "ln_final.hook_normalized".to_string()
            } else {
                format!("blocks.{}.hook_resid_post", n_blocks - 1)
            };
            assert_close(&what, o.rows(&hook, k), want);
        } else if let Some(i) = key.strip_prefix("attentions.") {
            let hook = format!("blocks.{i}.attn.hook_pattern@{k}");
            assert_close(&what, &o.per_prompt[&hook].1, want);
        } else {
            assert!(
                o.hooks.contains_key(key),
                "{what}: hook missing from the output"
            );
            assert_close(&what, o.rows(key, k), want);
        }
        compared += 1;
    }
    assert!(
        compared >= min_compared,
        "{family}: only {compared} tensors compared"
    );
    assert!(
        o.shard_files.len() > 1,
        "{family}: the test should span several shards"
    );
}

#[test]
fn gpt2_matches_transformers() {
    check_family("gpt2", 1, 5 * (1 + 3 + 3 + 3 * 12 + 3));
    check_family("gpt2", 3, 0);
}

#[test]
fn bert_without_prefix_matches_transformers() {
    check_family("bert", 1, 5 * (1 + 4 + 3 + 3 * 11 + 3));
    check_family("bert", 4, 0);
}

#[test]
fn roberta_matches_transformers() {
    check_family("roberta", 2, 5 * (1 + 3 + 2 + 2 * 11 + 2));
}

#[test]
fn distilbert_matches_transformers() {
    check_family("distilbert", 2, 5 * (1 + 2 + 2 + 2 * 11 + 2));
}

#[test]
fn llama_matches_transformers() {
    check_family("llama", 1, 5 * (1 + 1 + 3 + 3 * 12 + 4));
    check_family("llama", 2, 0);
}

#[test]
fn qwen2_matches_transformers() {
    check_family("qwen2", 3, 5 * (1 + 1 + 2 + 2 * 12 + 3));
}

#[test]
fn mistral_with_sliding_window_and_llama3_rope_scaling_matches_transformers() {
    check_family("mistral", 2, 5 * (1 + 1 + 2 + 2 * 12 + 3));
}
