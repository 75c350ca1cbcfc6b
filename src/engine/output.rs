//! The output format: `manifest.json` (atomic), `shard-NNNNN.safetensors` (written under a
//! temporary name, synced and renamed) and the byte buffers a shard is built from.

use std::borrow::Cow;
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use safetensors::tensor::{Dtype, View};
use serde::{Deserialize, Serialize};

use super::error::EngineError;
use super::hooks::HookLayout;
use super::input::PromptFormat;
use super::request::Analysis;
use super::tokenize::TokenizerSettings;

/// Version of the output format; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// `OUT/manifest.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Whether every prompt has been processed.
    pub complete: bool,
    /// Which analysis produced this folder.
    pub analysis: Analysis,
    /// The model.
    pub model: ModelInfo,
    /// Compute dtype (`f32`, `f16`, `bf16`).
    pub dtype: String,
    /// Dtype of the stored hook tensors (always `f32`).
    pub stored_dtype: String,
    /// `cpu` or `cuda:N`.
    pub device: String,
    /// The globs asked for.
    pub hook_globs: Vec<String>,
    /// The selected hooks, with their per-token shapes.
    pub hooks: Vec<HookEntry>,
    /// The prompt file.
    pub dataset: DatasetInfo,
    /// Prompts in the dataset.
    pub prompt_count: usize,
    /// Prompts processed (the end of the last whole shard).
    pub prompts_done: usize,
    /// Tokenizer settings.
    pub tokenizer: TokenizerSettings,
    /// Prompts per forward pass.
    pub batch: usize,
    /// Prompts per shard (a multiple of `batch`).
    pub prompts_per_shard: usize,
    /// Whole shards, in order.
    pub shards: Vec<ShardEntry>,
    /// The program that wrote it.
    pub created_by: String,
}

/// Model identity in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// As given (`--model`).
    pub id: String,
    /// The folder the weights were read from.
    pub path: PathBuf,
    /// Snapshot revision when read from the Hugging Face cache.
    pub revision: Option<String>,
    /// sha256 over the weight files' names, sizes and safetensors headers.
    pub weights_hash: String,
    /// Family (`gpt2`, `bert`, `llama`).
    pub family: String,
    /// config.json `model_type`.
    pub model_type: String,
    /// Transformer blocks in the model.
    pub n_blocks: usize,
}

/// One selected hook.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HookEntry {
    /// TransformerLens name.
    pub name: String,
    /// Per-token shape (`[T, ...shape]` in a shard), or `[head]` for per-prompt hooks
    /// (`[head, len, len]` per prompt).
    pub shape: Vec<usize>,
    /// Storage layout.
    pub layout: HookLayout,
}

/// The prompt file in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// Path as given.
    pub path: PathBuf,
    /// sha256 of its bytes.
    pub sha256: String,
    /// Its format.
    pub format: PromptFormat,
}

/// One whole shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardEntry {
    /// File name inside OUT.
    pub file: String,
    /// First prompt index (inclusive).
    pub prompt_start: usize,
    /// Last prompt index (exclusive).
    pub prompt_end: usize,
    /// Tokens in the shard.
    pub tokens: usize,
}

impl Manifest {
    /// Reads `dir/manifest.json`, if there is one.
    pub fn read(dir: &Path) -> Result<Option<Self>, EngineError> {
        let path = dir.join("manifest.json");
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(EngineError::Resume {
                    dir: dir.to_path_buf(),
                    detail: format!("cannot read manifest.json ({e})"),
                })
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| EngineError::Resume {
                dir: dir.to_path_buf(),
                detail: format!("manifest.json is not a NeuronMap manifest ({e})"),
            })
    }

    /// Writes `dir/manifest.json` atomically.
    pub fn write(&self, dir: &Path) -> Result<(), EngineError> {
        let mut text = serde_json::to_string_pretty(self).map_err(|e| EngineError::Output {
            path: dir.join("manifest.json"),
            source: std::io::Error::other(e),
        })?;
        text.push('\n');
        write_atomic(dir, "manifest.json", text.as_bytes())
    }
}

/// Writes `dir/name` through a synced temporary file and a rename.
pub fn write_atomic(dir: &Path, name: &str, bytes: &[u8]) -> Result<(), EngineError> {
    let tmp = dir.join(format!(".{name}.tmp"));
    let path = dir.join(name);
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        sync_dir(dir)
    })();
    result.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        EngineError::Output { path, source }
    })
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

/// The file name of shard `n`.
pub fn shard_name(n: usize) -> String {
    format!("shard-{n:05}.safetensors")
}

/// A tensor's bytes, ready for safetensors.
pub struct RawTensor {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &RawTensor {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

/// Stores f32 values as little-endian bytes into `dst` (exactly `4 * values.len()` long).
pub fn put_f32(dst: &mut [u8], values: &[f32]) {
    for (d, v) in dst.chunks_exact_mut(4).zip(values) {
        d.copy_from_slice(&v.to_le_bytes());
    }
}

/// What one shard holds while it fills. The prompts and their ids are known when it is made,
/// so each per-token hook gets its whole buffer at once and prompts can be filled in any order
/// (the run computes them sorted by length, to pad less).
pub struct ShardBuffer {
    input_ids: Vec<i64>,
    offsets: Vec<i64>,
    prompt_index: Vec<i64>,
    per_token: Vec<(String, Vec<usize>, Vec<u8>)>,
    per_prompt: Vec<(String, Vec<usize>, Vec<u8>)>,
}

impl ShardBuffer {
    /// A shard for `prompts` (dataset index and token ids, in dataset order) and the given
    /// per-token hooks (name, per-token shape).
    pub fn new(per_token: &[(String, Vec<usize>)], prompts: &[(usize, &[u32])]) -> Self {
        let mut input_ids = Vec::new();
        let mut offsets = vec![0];
        let mut prompt_index = Vec::with_capacity(prompts.len());
        for (index, ids) in prompts {
            input_ids.extend(ids.iter().map(|&i| i64::from(i)));
            offsets.push(input_ids.len() as i64);
            prompt_index.push(*index as i64);
        }
        let tokens = input_ids.len();
        Self {
            input_ids,
            offsets,
            prompt_index,
            per_token: per_token
                .iter()
                .map(|(n, s)| {
                    let elems: usize = s.iter().product();
                    (n.clone(), s.clone(), vec![0u8; 4 * tokens * elems])
                })
                .collect(),
            per_prompt: Vec::new(),
        }
    }

    /// Stores the rows of prompt number `slot` (its position in the shard) for per-token hook
    /// number `k` (in the order given to `new`). `rows` holds the prompt's tokens x the hook's
    /// per-token elements.
    pub fn put_rows(&mut self, k: usize, slot: usize, rows: &[f32]) {
        let (start, end) = (self.offsets[slot] as usize, self.offsets[slot + 1] as usize);
        let (_, shape, data) = &mut self.per_token[k];
        let elems: usize = shape.iter().product();
        put_f32(&mut data[4 * start * elems..4 * end * elems], rows);
    }

    /// Adds a per-prompt tensor `{hook}@{prompt_index}`.
    pub fn push_per_prompt(&mut self, name: String, shape: Vec<usize>, bytes: Vec<u8>) {
        self.per_prompt.push((name, shape, bytes));
    }

    /// Writes the shard as `dir/file` (temporary name, sync, rename) and returns its entry.
    pub fn write(
        self,
        dir: &Path,
        file: &str,
        model_id: &str,
        prompt_start: usize,
    ) -> Result<ShardEntry, EngineError> {
        let t = self.input_ids.len();
        let n = self.prompt_index.len();
        let i64s = |v: &[i64]| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
        let mut tensors: Vec<(String, RawTensor)> = vec![
            (
                "input_ids".into(),
                RawTensor {
                    dtype: Dtype::I64,
                    shape: vec![t],
                    data: i64s(&self.input_ids),
                },
            ),
            (
                "prompt_offsets".into(),
                RawTensor {
                    dtype: Dtype::I64,
                    shape: vec![n + 1],
                    data: i64s(&self.offsets),
                },
            ),
            (
                "prompt_index".into(),
                RawTensor {
                    dtype: Dtype::I64,
                    shape: vec![n],
                    data: i64s(&self.prompt_index),
                },
            ),
        ];
        for (name, shape, data) in self.per_token {
            let mut full = vec![t];
            full.extend(shape);
            tensors.push((
                name,
                RawTensor {
                    dtype: Dtype::F32,
                    shape: full,
                    data,
                },
            ));
        }
        for (name, shape, data) in self.per_prompt {
            tensors.push((
                name,
                RawTensor {
                    dtype: Dtype::F32,
                    shape,
                    data,
                },
            ));
        }
        let metadata = HashMap::from([
            ("schema_version".to_string(), SCHEMA_VERSION.to_string()),
            ("model".to_string(), model_id.to_string()),
        ]);
        let tmp = dir.join(format!(".{file}.tmp"));
        let path = dir.join(file);
        let views = tensors.iter().map(|(n, r)| (n.as_str(), r));
        let written = safetensors::serialize_to_file(views, Some(metadata), &tmp)
            .map_err(|e| match e {
                safetensors::SafeTensorError::IoError(io) => io,
                other => std::io::Error::other(other.to_string()),
            })
            .and_then(|()| File::open(&tmp)?.sync_all())
            .and_then(|()| std::fs::rename(&tmp, &path))
            .and_then(|()| sync_dir(dir));
        if let Err(source) = written {
            let _ = std::fs::remove_file(&tmp);
            return Err(EngineError::Output { path, source });
        }
        Ok(ShardEntry {
            file: file.to_string(),
            prompt_start,
            prompt_end: prompt_start + n,
            tokens: t,
        })
    }
}

/// Removes temporary files an interrupted run may have left (`.shard-*.tmp`, `.manifest.json.tmp`).
pub fn remove_temporaries(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') && name.ends_with(".tmp") {
            let _ = std::fs::remove_file(e.path());
        }
    }
}
