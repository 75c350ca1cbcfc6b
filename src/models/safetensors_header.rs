//! Reads safetensors headers only (the 8-byte little-endian length and the JSON after it), and
//! the `model.safetensors.index.json` of sharded checkpoints: exact parameter counts and dtypes
//! without touching the weights.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// Largest header accepted (the safetensors format's own limit is 100 MB).
pub const MAX_HEADER_BYTES: u64 = 100 * 1024 * 1024;

/// The dtype names the safetensors format defines.
pub const DTYPES: [&str; 17] = [
    "BOOL", "U8", "I8", "F8_E5M2", "F8_E4M3", "F8_E8M0", "F4", "I16", "U16", "F16", "BF16", "I32",
    "U32", "F32", "F64", "I64", "U64",
];

/// Tensor-name endings of buffers that checkpoints store but that are not parameters.
const BUFFER_SUFFIXES: [&str; 6] = [
    ".attn.bias",
    ".attn.masked_bias",
    ".attention.bias",
    ".attention.masked_bias",
    "position_ids",
    "rotary_emb.inv_freq",
];

/// What is wrong with a safetensors file or shard index. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum HeaderError {
    /// The file cannot be opened or read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Fewer than 8 bytes: not even the header length is there.
    #[error("{path} is truncated ({len} bytes, a safetensors file starts with an 8-byte header length); download it again")]
    Truncated {
        /// The file.
        path: PathBuf,
        /// Its length.
        len: u64,
    },
    /// The header length is larger than any real header.
    #[error("{path} declares a {declared}-byte header (limit {MAX_HEADER_BYTES}); it is not a safetensors file or it is corrupt")]
    AbsurdHeaderLength {
        /// The file.
        path: PathBuf,
        /// The declared length.
        declared: u64,
    },
    /// The header (or a tensor's data) would end past the end of the file.
    #[error("{path}: {what} ends at byte {end}, past the end of the file ({len} bytes); the download is incomplete, fetch it again")]
    PastEnd {
        /// The file.
        path: PathBuf,
        /// `the header` or `tensor NAME`.
        what: String,
        /// Where it would end.
        end: u64,
        /// The file's length.
        len: u64,
    },
    /// The header is not the JSON object the format specifies.
    #[error("{path}: the header is not valid safetensors JSON: {message}")]
    InvalidJson {
        /// The file.
        path: PathBuf,
        /// The parser's complaint.
        message: String,
    },
    /// A tensor's dtype is not one the format defines.
    #[error("{path}: tensor \"{tensor}\" has unknown dtype \"{dtype}\" (expected one of F32, F16, BF16, I64, ...)")]
    BadDtype {
        /// The file.
        path: PathBuf,
        /// The tensor.
        tensor: String,
        /// The dtype string found.
        dtype: String,
    },
    /// A shard index is not the JSON `transformers` writes.
    #[error("{path}: not a valid shard index ({message}); it needs a \"weight_map\" object of tensor name to file")]
    BadIndex {
        /// The index file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// One tensor listed in a header.
#[derive(Debug, Clone, PartialEq)]
pub struct TensorInfo {
    /// Tensor name.
    pub name: String,
    /// Safetensors dtype string (`F32`, `BF16`, ...).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<u64>,
}

impl TensorInfo {
    /// Number of elements.
    pub fn elements(&self) -> u64 {
        self.shape.iter().product()
    }

    /// Whether this is a buffer (a mask, position ids, rotary frequencies), not a parameter.
    pub fn is_buffer(&self) -> bool {
        BUFFER_SUFFIXES.iter().any(|s| self.name.ends_with(s))
    }
}

/// The header of one safetensors file.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    /// Tensors, in name order.
    pub tensors: Vec<TensorInfo>,
    /// The `__metadata__` strings.
    pub metadata: BTreeMap<String, String>,
}

fn parse_error(path: &Path, message: impl Into<String>) -> HeaderError {
    HeaderError::InvalidJson {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

/// Reads the header of one safetensors file (at most 8 + header-length bytes are read).
pub fn read_header(path: &Path) -> Result<Header, HeaderError> {
    let io = |source| HeaderError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::File::open(path).map_err(io)?;
    let len = file.metadata().map_err(io)?.len();
    if len < 8 {
        return Err(HeaderError::Truncated {
            path: path.to_path_buf(),
            len,
        });
    }
    let mut prefix = [0u8; 8];
    file.read_exact(&mut prefix).map_err(io)?;
    let declared = u64::from_le_bytes(prefix);
    if declared > MAX_HEADER_BYTES {
        return Err(HeaderError::AbsurdHeaderLength {
            path: path.to_path_buf(),
            declared,
        });
    }
    if 8 + declared > len {
        return Err(HeaderError::PastEnd {
            path: path.to_path_buf(),
            what: "the header".to_string(),
            end: 8 + declared,
            len,
        });
    }
    let mut text = vec![0u8; declared as usize];
    file.read_exact(&mut text).map_err(io)?;
    let value: Value =
        serde_json::from_slice(&text).map_err(|e| parse_error(path, e.to_string()))?;
    let object = value
        .as_object()
        .ok_or_else(|| parse_error(path, "the header is not a JSON object"))?;
    let data_len = len - 8 - declared;
    let mut header = Header {
        tensors: Vec::with_capacity(object.len()),
        metadata: BTreeMap::new(),
    };
    for (name, entry) in object {
        if name == "__metadata__" {
            if let Some(map) = entry.as_object() {
                for (k, v) in map {
                    header
                        .metadata
                        .insert(k.clone(), v.as_str().unwrap_or_default().to_string());
                }
            }
            continue;
        }
        header
            .tensors
            .push(parse_tensor(path, name, entry, data_len)?);
    }
    header.tensors.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(header)
}

fn parse_tensor(
    path: &Path,
    name: &str,
    entry: &Value,
    data_len: u64,
) -> Result<TensorInfo, HeaderError> {
    let bad = |what: &str| parse_error(path, format!("tensor \"{name}\": {what}"));
    let dtype = entry
        .get("dtype")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("no \"dtype\" string"))?;
    if !DTYPES.contains(&dtype) {
        return Err(HeaderError::BadDtype {
            path: path.to_path_buf(),
            tensor: name.to_string(),
            dtype: dtype.to_string(),
        });
    }
    let shape = entry
        .get("shape")
        .and_then(Value::as_array)
        .ok_or_else(|| bad("no \"shape\" array"))?
        .iter()
        .map(|d| {
            d.as_u64()
                .ok_or_else(|| bad("a shape entry is not an integer"))
        })
        .collect::<Result<Vec<u64>, _>>()?;
    let offsets = entry
        .get("data_offsets")
        .and_then(Value::as_array)
        .filter(|a| a.len() == 2)
        .and_then(|a| Some((a[0].as_u64()?, a[1].as_u64()?)))
        .ok_or_else(|| bad("\"data_offsets\" is not two integers"))?;
    if offsets.1 < offsets.0 {
        return Err(bad("\"data_offsets\" end before they start"));
    }
    if offsets.1 > data_len {
        return Err(HeaderError::PastEnd {
            path: path.to_path_buf(),
            what: format!("tensor \"{name}\""),
            end: offsets.1,
            len: data_len,
        });
    }
    Ok(TensorInfo {
        name: name.to_string(),
        dtype: dtype.to_string(),
        shape,
    })
}

/// What the weight files of a model folder say, all shards together.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WeightsSummary {
    /// Parameters (buffers excluded).
    pub parameters: u64,
    /// Parameters per dtype.
    pub parameters_by_dtype: BTreeMap<String, u64>,
    /// Weight files read.
    pub files: Vec<PathBuf>,
    /// Shards the index names that are not there.
    pub missing_shards: Vec<String>,
}

impl WeightsSummary {
    /// The dtype that holds most parameters (`F32`, `BF16`, ...).
    pub fn main_dtype(&self) -> Option<&str> {
        self.parameters_by_dtype
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(d, _)| d.as_str())
    }

    fn add(&mut self, header: &Header) {
        for t in header.tensors.iter().filter(|t| !t.is_buffer()) {
            self.parameters += t.elements();
            *self.parameters_by_dtype.entry(t.dtype.clone()).or_default() += t.elements();
        }
    }
}

/// The shard files a `model.safetensors.index.json` names, in order.
pub fn read_index(path: &Path) -> Result<Vec<String>, HeaderError> {
    let bad = |message: String| HeaderError::BadIndex {
        path: path.to_path_buf(),
        message,
    };
    let text = std::fs::read_to_string(path).map_err(|source| HeaderError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let map = value
        .get("weight_map")
        .and_then(Value::as_object)
        .ok_or_else(|| bad("no \"weight_map\"".to_string()))?;
    let mut files = BTreeSet::new();
    for (tensor, file) in map {
        let file = file
            .as_str()
            .ok_or_else(|| bad(format!("\"{tensor}\" does not map to a file name")))?;
        if file.contains("..") || file.starts_with('/') {
            return Err(bad(format!("shard name \"{file}\" leaves the folder")));
        }
        files.insert(file.to_string());
    }
    Ok(files.into_iter().collect())
}

/// Where a folder's weights are.
#[derive(Debug, Clone, PartialEq)]
pub enum WeightFiles {
    /// Safetensors files (one, or the shards of an index with the index path).
    Safetensors {
        /// The index, for sharded checkpoints.
        index: Option<PathBuf>,
        /// Shard names relative to the folder.
        shards: Vec<String>,
    },
    /// Only PyTorch pickles (`pytorch_model*.bin`): listed, not loadable.
    BinOnly,
    /// No weights at all.
    None,
}

/// Finds the weight files of a model folder (without reading them).
pub fn find_weights(dir: &Path) -> Result<WeightFiles, HeaderError> {
    let index = dir.join("model.safetensors.index.json");
    if index.is_file() {
        let shards = read_index(&index)?;
        return Ok(WeightFiles::Safetensors {
            index: Some(index),
            shards,
        });
    }
    let names: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    if names.iter().any(|n| n == "model.safetensors") {
        return Ok(WeightFiles::Safetensors {
            index: None,
            shards: vec!["model.safetensors".to_string()],
        });
    }
    let mut safetensors: Vec<String> = names
        .iter()
        .filter(|n| n.ends_with(".safetensors"))
        .cloned()
        .collect();
    if !safetensors.is_empty() {
        safetensors.sort();
        return Ok(WeightFiles::Safetensors {
            index: None,
            shards: safetensors,
        });
    }
    if names
        .iter()
        .any(|n| n.starts_with("pytorch_model") && n.ends_with(".bin"))
    {
        return Ok(WeightFiles::BinOnly);
    }
    Ok(WeightFiles::None)
}

/// Reads every safetensors header of a folder; missing shards are listed, not errors.
pub fn summarize(dir: &Path, shards: &[String]) -> Result<WeightsSummary, HeaderError> {
    let mut summary = WeightsSummary::default();
    for shard in shards {
        let path = dir.join(shard);
        if !path.exists() {
            summary.missing_shards.push(shard.clone());
            continue;
        }
        summary.add(&read_header(&path)?);
        summary.files.push(path);
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn file_with_header(header: &str, data_len: usize) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(std::iter::repeat_n(0u8, data_len));
        bytes
    }

    #[test]
    fn buffers_do_not_count_as_parameters() {
        let dir = tempfile::tempdir().unwrap();
        let header = r#"{"h.0.attn.bias":{"dtype":"F32","shape":[1,1,4,4],"data_offsets":[0,64]},
            "h.0.attn.c_attn.bias":{"dtype":"F32","shape":[6],"data_offsets":[64,88]},
            "__metadata__":{"format":"pt"}}"#;
        let path = write(
            dir.path(),
            "model.safetensors",
            &file_with_header(header, 88),
        );
        let h = read_header(&path).unwrap();
        assert_eq!(h.tensors.len(), 2);
        assert_eq!(h.metadata.get("format").map(String::as_str), Some("pt"));
        let s = summarize(dir.path(), &["model.safetensors".to_string()]).unwrap();
        assert_eq!(s.parameters, 6);
        assert_eq!(s.main_dtype(), Some("F32"));
    }

    #[test]
    fn absurd_header_length_is_refused_without_allocating() {
        let dir = tempfile::tempdir().unwrap();
        let mut bytes = u64::MAX.to_le_bytes().to_vec();
        bytes.extend_from_slice(b"{}");
        let path = write(dir.path(), "x.safetensors", &bytes);
        let err = read_header(&path).unwrap_err();
        assert!(
            matches!(err, HeaderError::AbsurdHeaderLength { .. }),
            "{err}"
        );
    }
}
