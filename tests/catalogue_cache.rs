//! Cache discovery and header reading on fake Hugging Face cache layouts built in a temp dir,
//! with real safetensors files written by the `safetensors` crate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use neuronmap::models::catalogue::{Catalogue, CatalogueSettings, Source};
use neuronmap::models::hf_cache::{self, CacheError};
use neuronmap::models::registry;
use neuronmap::models::resolve::{self, ResolveError};
use neuronmap::models::safetensors_header::{self, HeaderError};
use safetensors::tensor::{Dtype, TensorView};

const MAIN: &str = "1111111111111111111111111111111111111111";
const OLD: &str = "2222222222222222222222222222222222222222";

const TINY_GPT2: &str = r#"{"model_type":"gpt2","vocab_size":10,"n_positions":8,"n_embd":4,
    "n_layer":1,"n_head":2,"torch_dtype":"float32"}"#;

/// Writes a real safetensors file with the given tensors (f32 zeros).
fn safetensors_bytes(tensors: &[(&str, Vec<usize>)]) -> Vec<u8> {
    let buffers: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .iter()
        .map(|(name, shape)| {
            let n: usize = shape.iter().product();
            (name.to_string(), shape.clone(), vec![0u8; n * 4])
        })
        .collect();
    let views: Vec<(String, TensorView)> = buffers
        .iter()
        .map(|(name, shape, data)| {
            (
                name.clone(),
                TensorView::new(Dtype::F32, shape.clone(), data).unwrap(),
            )
        })
        .collect();
    safetensors::tensor::serialize(views, None).unwrap()
}

/// The tensors of the tiny GPT-2 config above, plus the causal-mask buffer.
fn tiny_gpt2_tensors() -> Vec<(&'static str, Vec<usize>)> {
    vec![
        ("wte.weight", vec![10, 4]),
        ("wpe.weight", vec![8, 4]),
        ("h.0.ln_1.weight", vec![4]),
        ("h.0.ln_1.bias", vec![4]),
        ("h.0.attn.c_attn.weight", vec![4, 12]),
        ("h.0.attn.c_attn.bias", vec![12]),
        ("h.0.attn.c_proj.weight", vec![4, 4]),
        ("h.0.attn.c_proj.bias", vec![4]),
        ("h.0.ln_2.weight", vec![4]),
        ("h.0.ln_2.bias", vec![4]),
        ("h.0.mlp.c_fc.weight", vec![4, 16]),
        ("h.0.mlp.c_fc.bias", vec![16]),
        ("h.0.mlp.c_proj.weight", vec![16, 4]),
        ("h.0.mlp.c_proj.bias", vec![4]),
        ("ln_f.weight", vec![4]),
        ("ln_f.bias", vec![4]),
        ("h.0.attn.bias", vec![1, 1, 8, 8]),
    ]
}

/// A repo in a fake cache: blobs, snapshot symlinks, refs.
struct FakeRepo {
    repo: PathBuf,
}

impl FakeRepo {
    fn new(root: &Path, id: &str) -> Self {
        let repo = root.join(hf_cache::repo_folder(id));
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        std::fs::create_dir_all(repo.join("refs")).unwrap();
        Self { repo }
    }

    fn file(&self, commit: &str, name: &str, bytes: &[u8]) {
        let blob_name = format!("blob-{commit}-{}", name.replace('/', "_"));
        let blob = self.repo.join("blobs").join(&blob_name);
        std::fs::write(&blob, bytes).unwrap();
        let link = self.repo.join("snapshots").join(commit).join(name);
        std::fs::create_dir_all(link.parent().unwrap()).unwrap();
        std::os::unix::fs::symlink(Path::new("../../blobs").join(&blob_name), &link).unwrap();
    }

    fn reference(&self, name: &str, commit: &str) {
        std::fs::write(self.repo.join("refs").join(name), commit).unwrap();
    }

    fn whole_model(&self, commit: &str) {
        self.file(commit, "config.json", TINY_GPT2.as_bytes());
        self.file(commit, "tokenizer.json", b"{}");
        self.file(
            commit,
            "model.safetensors",
            &safetensors_bytes(&tiny_gpt2_tensors()),
        );
    }
}

fn settings(root: &Path) -> CatalogueSettings {
    CatalogueSettings {
        cache_root: Some(root.to_path_buf()),
        folders: Vec::new(),
    }
}

#[test]
fn two_revisions_resolve_by_ref_and_by_commit() {
    let dir = tempfile::tempdir().unwrap();
    let repo = FakeRepo::new(dir.path(), "org/tiny");
    repo.whole_model(MAIN);
    repo.whole_model(OLD);
    repo.reference("main", MAIN);
    repo.reference("v1", OLD);

    let main = hf_cache::resolve_snapshot(dir.path(), "org/tiny", None).unwrap();
    assert!(main.ends_with(MAIN), "{main:?}");
    let v1 = hf_cache::resolve_snapshot(dir.path(), "org/tiny", Some("v1")).unwrap();
    assert!(v1.ends_with(OLD));
    let by_commit = hf_cache::resolve_snapshot(dir.path(), "org/tiny", Some(OLD)).unwrap();
    assert_eq!(by_commit, v1);
    let err = hf_cache::resolve_snapshot(dir.path(), "org/tiny", Some("v9")).unwrap_err();
    assert!(
        matches!(&err, CacheError::RevisionNotCached { available, .. } if available.contains("main") && available.contains("v1")),
        "{err}"
    );
    let err = hf_cache::resolve_snapshot(dir.path(), "org/absent", None).unwrap_err();
    assert!(
        err.to_string().contains("neuronmap pull org/absent"),
        "{err}"
    );

    let catalogue = Catalogue::build(&[], &settings(dir.path()));
    let revisions: Vec<_> = catalogue
        .entries
        .iter()
        .map(|e| e.revision.clone().unwrap())
        .collect();
    assert_eq!(revisions, vec!["main", "v1"], "main snapshot first");
}

#[test]
fn cached_model_has_exact_parameters_size_and_is_complete() {
    let dir = tempfile::tempdir().unwrap();
    let repo = FakeRepo::new(dir.path(), "org/tiny");
    repo.whole_model(MAIN);
    repo.reference("main", MAIN);
    let catalogue = Catalogue::build(&[], &settings(dir.path()));
    let entry = catalogue.find("org/tiny").unwrap();
    assert_eq!(entry.source, Source::Cache);
    assert!(entry.complete, "{entry:?}");
    assert!(entry.parameters_exact);
    // The formulas and the header agree, and the 8x8 mask buffer is not counted.
    let formula = entry.architecture.as_ref().unwrap().parameter_count();
    assert_eq!(entry.parameters, Some(formula));
    assert_eq!(entry.dtype.as_deref(), Some("f32"));
    let blobs: u64 = std::fs::read_dir(dir.path().join("models--org--tiny/blobs"))
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();
    assert_eq!(entry.size_bytes, Some(blobs));
}

#[test]
fn interrupted_download_is_listed_incomplete_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let repo = FakeRepo::new(dir.path(), "org/partial");
    repo.file(MAIN, "config.json", TINY_GPT2.as_bytes());
    repo.file(MAIN, "tokenizer.json", b"{}");
    repo.reference("main", MAIN);
    std::fs::write(
        dir.path()
            .join("models--org--partial/blobs/abcdef.incomplete"),
        b"half",
    )
    .unwrap();
    let catalogue = Catalogue::build(&[], &settings(dir.path()));
    let entry = catalogue.find("org/partial").unwrap();
    assert!(!entry.complete);
    let missing = entry.missing.join("; ");
    assert!(missing.contains("safetensors"), "{missing}");
    assert!(missing.contains("interrupted"), "{missing}");
    // Formulas still give the size for the estimator.
    assert!(entry.parameters.is_some() && !entry.parameters_exact);
}

#[test]
fn sharded_model_counts_every_shard_and_reports_a_missing_one() {
    let dir = tempfile::tempdir().unwrap();
    let repo = FakeRepo::new(dir.path(), "org/sharded");
    let tensors = tiny_gpt2_tensors();
    let (first, second) = tensors.split_at(8);
    repo.file(MAIN, "config.json", TINY_GPT2.as_bytes());
    repo.file(MAIN, "tokenizer.json", b"{}");
    let mut map = HashMap::new();
    for (name, _) in first {
        map.insert(name.to_string(), "model-00001-of-00002.safetensors");
    }
    for (name, _) in second {
        map.insert(name.to_string(), "model-00002-of-00002.safetensors");
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    repo.file(
        MAIN,
        "model.safetensors.index.json",
        index.to_string().as_bytes(),
    );
    repo.file(
        MAIN,
        "model-00001-of-00002.safetensors",
        &safetensors_bytes(first),
    );
    repo.reference("main", MAIN);
    let incomplete = Catalogue::build(&[], &settings(dir.path()));
    let entry = incomplete.find("org/sharded").unwrap();
    assert!(!entry.complete);
    assert_eq!(entry.missing, vec!["model-00002-of-00002.safetensors"]);

    repo.file(
        MAIN,
        "model-00002-of-00002.safetensors",
        &safetensors_bytes(second),
    );
    let whole = Catalogue::build(&[], &settings(dir.path()));
    let entry = whole.find("org/sharded").unwrap();
    assert!(entry.complete, "{entry:?}");
    assert_eq!(
        entry.parameters,
        Some(entry.architecture.as_ref().unwrap().parameter_count())
    );
}

#[test]
fn bin_only_model_is_listed_with_a_note() {
    let dir = tempfile::tempdir().unwrap();
    let repo = FakeRepo::new(dir.path(), "org/pickled");
    repo.file(MAIN, "config.json", TINY_GPT2.as_bytes());
    repo.file(MAIN, "tokenizer.json", b"{}");
    repo.file(MAIN, "pytorch_model.bin", b"pickle");
    repo.reference("main", MAIN);
    let catalogue = Catalogue::build(&[], &settings(dir.path()));
    let entry = catalogue.find("org/pickled").unwrap();
    assert!(!entry.complete);
    assert!(entry.note.as_deref().unwrap().contains(".bin"), "{entry:?}");
}

#[test]
fn cached_models_come_first_and_replace_their_registry_entry() {
    let dir = tempfile::tempdir().unwrap();
    let repo = FakeRepo::new(dir.path(), "gpt2");
    repo.whole_model(MAIN);
    repo.reference("main", MAIN);
    let registry = registry::builtin().unwrap();
    let catalogue = Catalogue::build(&registry, &settings(dir.path()));
    assert_eq!(catalogue.entries[0].id, "gpt2");
    assert_eq!(catalogue.entries[0].source, Source::Cache);
    assert_eq!(
        catalogue.entries.iter().filter(|e| e.id == "gpt2").count(),
        1
    );
    assert_eq!(catalogue.entries.len(), registry.len());
}

#[test]
fn model_strings_resolve_to_folders_cache_or_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let repo = FakeRepo::new(dir.path(), "org/tiny");
    repo.whole_model(MAIN);
    repo.reference("main", MAIN);
    let s = settings(dir.path());

    let cached = resolve::resolve_model_dir("org/tiny", None, &s).unwrap();
    assert!(cached.dir.ends_with(MAIN));
    let folder = resolve::resolve_model_dir(cached.dir.to_str().unwrap(), None, &s).unwrap();
    assert_eq!(folder.dir, cached.dir);

    let err = resolve::resolve_model_dir("gpt2-medium", None, &s).unwrap_err();
    assert!(matches!(err, ResolveError::NotDownloaded { .. }), "{err}");
    assert!(err.to_string().contains("neuronmap pull gpt2-medium"));
    // The registry entry is still enough for an estimate.
    let described = resolve::describe_model("gpt2-medium", None, &s).unwrap();
    assert_eq!(described.source, Source::Registry);

    let err = resolve::resolve_model_dir("gpt-2-mediun", None, &s).unwrap_err();
    assert!(
        err.to_string().contains("unknown model \"gpt-2-mediun\""),
        "{err}"
    );
}

fn write(dir: &Path, bytes: &[u8]) -> PathBuf {
    let path = dir.join("broken.safetensors");
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn header_reader_gives_clear_errors_on_broken_files() {
    let dir = tempfile::tempdir().unwrap();
    let good = safetensors_bytes(&[("w", vec![2, 3])]);

    let truncated = write(dir.path(), &good[..5]);
    let err = safetensors_header::read_header(&truncated).unwrap_err();
    assert!(
        matches!(err, HeaderError::Truncated { len: 5, .. }),
        "{err}"
    );
    assert!(err.to_string().contains("broken.safetensors"));

    let past_end = write(dir.path(), &good[..20]);
    let err = safetensors_header::read_header(&past_end).unwrap_err();
    assert!(matches!(err, HeaderError::PastEnd { .. }), "{err}");
    assert!(err.to_string().contains("incomplete"), "{err}");

    let data_cut = write(dir.path(), &good[..good.len() - 4]);
    let err = safetensors_header::read_header(&data_cut).unwrap_err();
    assert!(err.to_string().contains("tensor \"w\""), "{err}");

    let mut bad_json = 6u64.to_le_bytes().to_vec();
    bad_json.extend_from_slice(b"{nope}");
    let err = safetensors_header::read_header(&write(dir.path(), &bad_json)).unwrap_err();
    assert!(matches!(err, HeaderError::InvalidJson { .. }), "{err}");

    let header = r#"{"w":{"dtype":"F33","shape":[1],"data_offsets":[0,4]}}"#;
    let mut bad_dtype = (header.len() as u64).to_le_bytes().to_vec();
    bad_dtype.extend_from_slice(header.as_bytes());
    bad_dtype.extend_from_slice(&[0; 4]);
    let err = safetensors_header::read_header(&write(dir.path(), &bad_dtype)).unwrap_err();
    assert!(
        matches!(&err, HeaderError::BadDtype { dtype, tensor, .. } if dtype == "F33" && tensor == "w"),
        "{err}"
    );

    let ok = safetensors_header::read_header(&write(dir.path(), &good)).unwrap();
    assert_eq!(ok.tensors[0].shape, vec![2, 3]);
    assert_eq!(ok.tensors[0].dtype, "F32");
}
