//! Helpers shared by the engine tests: fixtures, requests, and reading an output folder back
//! with the plain safetensors crate (the way a user's script would).
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use neuronmap::engine::{
    run_extract_with, Analysis, EngineOptions, ExtractRequest, RunOutcome, RunProgress,
};
use safetensors::SafeTensors;

pub fn fixture(family: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("fixtures")
        .join(family)
}

/// Reference tensors of a fixture: name -> (shape, values as f64).
pub struct Reference {
    pub prompts: Vec<String>,
    pub tensors: BTreeMap<String, (Vec<usize>, Vec<f64>)>,
}

pub fn reference(family: &str) -> Reference {
    let bytes = std::fs::read(fixture(family).join("reference.safetensors")).unwrap();
    let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
    let prompts: Vec<String> =
        serde_json::from_str(meta.metadata().as_ref().unwrap().get("prompts").unwrap()).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors = BTreeMap::new();
    for (name, view) in st.tensors() {
        tensors.insert(name, (view.shape().to_vec(), values(&view)));
    }
    Reference { prompts, tensors }
}

pub fn values(view: &safetensors::tensor::TensorView<'_>) -> Vec<f64> {
    let d = view.data();
    match view.dtype() {
        safetensors::Dtype::F32 => d
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        safetensors::Dtype::I64 => d
            .chunks_exact(8)
            .map(|c| i64::from_le_bytes(c.try_into().unwrap()) as f64)
            .collect(),
        other => panic!("unexpected dtype {other:?}"),
    }
}

/// Writes prompts as JSON lines (they hold tabs and newlines).
pub fn write_prompts(dir: &Path, prompts: &[String]) -> PathBuf {
    let path = dir.join("prompts.jsonl");
    let text: String = prompts
        .iter()
        .map(|p| serde_json::json!({ "text": p }).to_string() + "\n")
        .collect();
    std::fs::write(&path, text).unwrap();
    path
}

pub fn request(
    model: &Path,
    input: &Path,
    out: &Path,
    hooks: &[&str],
    batch: usize,
) -> ExtractRequest {
    ExtractRequest {
        model: model.to_string_lossy().into_owned(),
        input: input.to_path_buf(),
        hooks: hooks.iter().map(|s| s.to_string()).collect(),
        out: out.to_path_buf(),
        analysis: Analysis::Activations,
        batch,
        max_len: None,
        dtype: None,
        device: "cpu".into(),
        resume: false,
    }
}

pub fn run(req: &ExtractRequest, opts: &EngineOptions) -> Vec<RunProgress> {
    let mut seen = Vec::new();
    let outcome = run_extract_with(
        req,
        opts,
        &mut |p| seen.push(p.clone()),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(outcome, RunOutcome::Completed);
    seen
}

/// An output folder read back.
pub struct Output {
    pub manifest: serde_json::Value,
    pub ids: Vec<i64>,
    /// Global offsets: prompt k's tokens are ids[offsets[k]..offsets[k+1]].
    pub offsets: Vec<usize>,
    pub index: Vec<i64>,
    /// Per-token hooks: (per-token shape, all rows).
    pub hooks: BTreeMap<String, (Vec<usize>, Vec<f64>)>,
    /// Per-prompt tensors by their full name.
    pub per_prompt: BTreeMap<String, (Vec<usize>, Vec<f64>)>,
    pub shard_files: Vec<String>,
}

pub fn load_output(dir: &Path) -> Output {
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let mut out = Output {
        manifest: manifest.clone(),
        ids: vec![],
        offsets: vec![0],
        index: vec![],
        hooks: BTreeMap::new(),
        per_prompt: BTreeMap::new(),
        shard_files: vec![],
    };
    for shard in manifest["shards"].as_array().unwrap() {
        let file = shard["file"].as_str().unwrap();
        out.shard_files.push(file.to_string());
        let bytes = std::fs::read(dir.join(file)).unwrap();
        let (_, meta) = SafeTensors::read_metadata(&bytes).unwrap();
        let meta = meta.metadata().clone().unwrap();
        assert_eq!(meta.get("schema_version").map(String::as_str), Some("1"));
        assert_eq!(
            meta.get("model").unwrap(),
            manifest["model"]["id"].as_str().unwrap()
        );
        let st = SafeTensors::deserialize(&bytes).unwrap();
        let base = out.ids.len();
        let ids = values(&st.tensor("input_ids").unwrap());
        assert_eq!(ids.len(), shard["tokens"].as_u64().unwrap() as usize);
        out.ids.extend(ids.iter().map(|&x| x as i64));
        let offs = values(&st.tensor("prompt_offsets").unwrap());
        assert_eq!(offs[0], 0.0);
        assert_eq!(*offs.last().unwrap() as usize, ids.len());
        out.offsets
            .extend(offs[1..].iter().map(|&o| base + o as usize));
        let idx = values(&st.tensor("prompt_index").unwrap());
        assert_eq!(idx[0] as u64, shard["prompt_start"].as_u64().unwrap());
        assert_eq!(
            idx.len() as u64,
            shard["prompt_end"].as_u64().unwrap() - shard["prompt_start"].as_u64().unwrap()
        );
        out.index.extend(idx.iter().map(|&x| x as i64));
        for (name, view) in st.tensors() {
            if ["input_ids", "prompt_offsets", "prompt_index"].contains(&name.as_str()) {
                continue;
            }
            if name.contains('@') {
                out.per_prompt
                    .insert(name, (view.shape().to_vec(), values(&view)));
            } else {
                assert_eq!(view.shape()[0], ids.len(), "{name} has one row per token");
                let e = out
                    .hooks
                    .entry(name)
                    .or_insert_with(|| (view.shape()[1..].to_vec(), vec![]));
                e.1.extend(values(&view));
            }
        }
    }
    out
}

impl Output {
    /// Prompt k's rows of a per-token hook.
    pub fn rows(&self, hook: &str, k: usize) -> &[f64] {
        let (shape, v) = &self.hooks[hook];
        let w: usize = shape.iter().product();
        &v[self.offsets[k] * w..self.offsets[k + 1] * w]
    }

    pub fn prompt_ids(&self, k: usize) -> &[i64] {
        &self.ids[self.offsets[k]..self.offsets[k + 1]]
    }
}

/// Asserts |a - b| <= 1e-4 + 1e-4 |b| elementwise.
pub fn assert_close(what: &str, got: &[f64], want: &[f64]) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        if w.is_infinite() || g.is_infinite() {
            assert_eq!(g, w, "{what}[{i}]");
            continue;
        }
        assert!(
            (g - w).abs() <= 1e-4 + 1e-4 * w.abs(),
            "{what}[{i}]: got {g}, want {w}"
        );
    }
}
