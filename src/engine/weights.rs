//! Memory-mapped safetensors weights (one file or an index of shards) with the weight-name
//! prefixes real checkpoints use (`transformer.`, `bert.`, `roberta.`, `distilbert.`, `model.`,
//! none), and the model's config.json.

use std::collections::BTreeSet;
use std::io::Read;
use std::path::{Path, PathBuf};

use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::error::EngineError;

/// The model's config.json as loose JSON, with typed getters that name the field on error.
#[derive(Debug, Clone)]
pub struct ModelConfig {
    /// The parsed file.
    pub json: Value,
    /// Where it came from.
    pub path: PathBuf,
}

impl ModelConfig {
    /// Reads `dir/config.json`.
    pub fn load(dir: &Path) -> Result<Self, EngineError> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).map_err(|e| EngineError::Config {
            path: path.clone(),
            detail: format!("cannot read it ({e}); a model folder needs config.json"),
        })?;
        let json = serde_json::from_str(&text).map_err(|e| EngineError::Config {
            path: path.clone(),
            detail: format!("not valid JSON ({e})"),
        })?;
        Ok(Self { json, path })
    }

    /// `model_type`.
    pub fn model_type(&self) -> Result<String, EngineError> {
        self.json
            .get("model_type")
            .and_then(Value::as_str)
            .map(str::to_string)
            .ok_or_else(|| self.missing("model_type"))
    }

    /// An unsigned integer field, or the first of several alternative names.
    pub fn usize(&self, keys: &[&str]) -> Result<usize, EngineError> {
        self.opt_usize(keys)
            .ok_or_else(|| self.missing(&keys.join(" or ")))
    }

    /// An optional unsigned integer field (null counts as absent).
    pub fn opt_usize(&self, keys: &[&str]) -> Option<usize> {
        keys.iter()
            .find_map(|k| self.json.get(*k).and_then(Value::as_u64))
            .map(|v| v as usize)
    }

    /// An optional float field.
    pub fn opt_f64(&self, keys: &[&str]) -> Option<f64> {
        keys.iter()
            .find_map(|k| self.json.get(*k).and_then(Value::as_f64))
    }

    /// An optional string field.
    pub fn opt_str(&self, key: &str) -> Option<&str> {
        self.json.get(key).and_then(Value::as_str)
    }

    /// An optional boolean field.
    pub fn opt_bool(&self, key: &str) -> Option<bool> {
        self.json.get(key).and_then(Value::as_bool)
    }

    /// An error naming a missing field.
    pub fn missing(&self, key: &str) -> EngineError {
        EngineError::Config {
            path: self.path.clone(),
            detail: format!("field {key:?} is missing or not a number"),
        }
    }

    /// An error about a value the engine does not support.
    pub fn unsupported(&self, detail: String) -> EngineError {
        EngineError::Config {
            path: self.path.clone(),
            detail,
        }
    }
}

/// The weight files of a model folder, memory-mapped.
pub struct Weights {
    st: MmapedSafetensors,
    names: BTreeSet<String>,
    prefix: String,
    dir: PathBuf,
    files: Vec<PathBuf>,
    /// Compute dtype every tensor is converted to.
    pub dtype: DType,
    /// Device tensors are loaded onto.
    pub device: Device,
}

impl Weights {
    /// Opens `model.safetensors`, or the shards listed in `model.safetensors.index.json`.
    pub fn open(dir: &Path, dtype: DType, device: &Device) -> Result<Self, EngineError> {
        let files = weight_files(dir)?;
        for f in &files {
            if !f.is_file() {
                return Err(EngineError::BadWeights {
                    path: f.clone(),
                    detail: "the file listed in the index is missing".into(),
                });
            }
        }
        // SAFETY: the files are mapped read-only; the engine never writes them, and a user
        // changing a checkpoint while a run reads it is outside what we can guard against (the
        // same contract as candle's and Hugging Face's loaders).
        let st = unsafe { MmapedSafetensors::multi(&files) }.map_err(|e| {
            let path = first_bad_file(&files).unwrap_or_else(|| files[0].clone());
            EngineError::BadWeights {
                path,
                detail: e.to_string(),
            }
        })?;
        let names = st.tensors().into_iter().map(|(n, _)| n).collect();
        Ok(Self {
            st,
            names,
            prefix: String::new(),
            dir: dir.to_path_buf(),
            files,
            dtype,
            device: device.clone(),
        })
    }

    /// Picks the first prefix under which `probe` exists (e.g. `["transformer.", ""]` with
    /// `wte.weight`).
    pub fn choose_prefix(&mut self, prefixes: &[&str], probe: &str) -> Result<(), EngineError> {
        match pick_prefix(&self.names, prefixes, probe) {
            Some(p) => {
                self.prefix = p.to_string();
                Ok(())
            }
            None => Err(EngineError::MissingTensor {
                name: format!("{{{}}}{probe}", prefixes.join("|")),
                dir: self.dir.clone(),
            }),
        }
    }

    /// Whether the tensor exists (under the chosen prefix).
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains(&format!("{}{name}", self.prefix))
    }

    /// Loads one tensor (under the chosen prefix) in the compute dtype.
    pub fn get(&self, name: &str) -> Result<Tensor, EngineError> {
        let full = format!("{}{name}", self.prefix);
        if !self.names.contains(&full) {
            return Err(EngineError::MissingTensor {
                name: full,
                dir: self.dir.clone(),
            });
        }
        Ok(self.st.load(&full, &self.device)?.to_dtype(self.dtype)?)
    }

    /// Loads a tensor and checks its shape.
    pub fn get_shaped(&self, name: &str, shape: &[usize]) -> Result<Tensor, EngineError> {
        let t = self.get(name)?;
        if t.dims() != shape {
            return Err(EngineError::Config {
                path: self.dir.join("config.json"),
                detail: format!(
                    "weight {}{name} has shape {:?} but config.json implies {shape:?}",
                    self.prefix,
                    t.dims()
                ),
            });
        }
        Ok(t)
    }

    /// A hash identifying the weights: sha256 over each file's name, size and safetensors
    /// header (cheap for multi-GB checkpoints, and changes whenever a tensor is added, removed,
    /// reshaped or the file is truncated or replaced by another export).
    pub fn fingerprint(&self) -> Result<String, EngineError> {
        let mut h = Sha256::new();
        for f in &self.files {
            let bad = |e: std::io::Error| EngineError::BadWeights {
                path: f.clone(),
                detail: e.to_string(),
            };
            let mut file = std::fs::File::open(f).map_err(bad)?;
            let size = file.metadata().map_err(bad)?.len();
            let mut len = [0u8; 8];
            file.read_exact(&mut len).map_err(bad)?;
            let n = u64::from_le_bytes(len).min(100 << 20) as usize;
            let mut header = vec![0u8; n];
            file.read_exact(&mut header).map_err(bad)?;
            h.update(f.file_name().map(|s| s.as_encoded_bytes()).unwrap_or(b""));
            h.update(size.to_le_bytes());
            h.update(&header);
        }
        Ok(format!("{:x}", h.finalize()))
    }
}

/// The first prefix from `prefixes` under which `probe` is a tensor name.
pub fn pick_prefix<'a>(
    names: &BTreeSet<String>,
    prefixes: &[&'a str],
    probe: &str,
) -> Option<&'a str> {
    prefixes
        .iter()
        .copied()
        .find(|p| names.contains(&format!("{p}{probe}")))
}

fn weight_files(dir: &Path) -> Result<Vec<PathBuf>, EngineError> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let text = std::fs::read_to_string(&index).map_err(|e| EngineError::BadWeights {
            path: index.clone(),
            detail: e.to_string(),
        })?;
        let json: Value = serde_json::from_str(&text).map_err(|e| EngineError::BadWeights {
            path: index.clone(),
            detail: format!("not valid JSON ({e})"),
        })?;
        let map = json
            .get("weight_map")
            .and_then(Value::as_object)
            .ok_or_else(|| EngineError::BadWeights {
                path: index.clone(),
                detail: "no \"weight_map\" object".into(),
            })?;
        let files: BTreeSet<&str> = map.values().filter_map(Value::as_str).collect();
        if files.is_empty() {
            return Err(EngineError::MissingWeights {
                dir: dir.to_path_buf(),
            });
        }
        return Ok(files.into_iter().map(|f| dir.join(f)).collect());
    }
    let single = dir.join("model.safetensors");
    if single.is_file() {
        return Ok(vec![single]);
    }
    Err(EngineError::MissingWeights {
        dir: dir.to_path_buf(),
    })
}

/// Finds which file fails to parse, so the error names it.
fn first_bad_file(files: &[PathBuf]) -> Option<PathBuf> {
    files.iter().find_map(|f| {
        // SAFETY: as in `Weights::open`: read-only mapping of a file we do not modify.
        match unsafe { MmapedSafetensors::new(f) } {
            Ok(_) => None,
            Err(_) => Some(f.clone()),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeSet<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn prefixes_of_real_checkpoints() {
        let bert = &["bert.", "roberta.", ""];
        let st = names(&["embeddings.word_embeddings.weight"]);
        assert_eq!(
            pick_prefix(&st, bert, "embeddings.word_embeddings.weight"),
            Some("")
        );
        let hf = names(&["bert.embeddings.word_embeddings.weight", "cls.x"]);
        assert_eq!(
            pick_prefix(&hf, bert, "embeddings.word_embeddings.weight"),
            Some("bert.")
        );
        let gpt = names(&["transformer.wte.weight"]);
        assert_eq!(
            pick_prefix(&gpt, &["transformer.", ""], "wte.weight"),
            Some("transformer.")
        );
        let bare = names(&["wte.weight"]);
        assert_eq!(
            pick_prefix(&bare, &["transformer.", ""], "wte.weight"),
            Some("")
        );
        let llama = names(&["model.embed_tokens.weight"]);
        assert_eq!(
            pick_prefix(&llama, &["model.", ""], "embed_tokens.weight"),
            Some("model.")
        );
        assert_eq!(pick_prefix(&llama, &["transformer."], "wte.weight"), None);
    }
}
