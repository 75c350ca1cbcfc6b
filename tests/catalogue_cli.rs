//! The real binary's catalogue commands: `models --json` over a fake cache, and `pull` refusing
//! at once when offline.

use std::process::{Command, Output};

fn bin(cache: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_neuronmap"));
    cmd.env_remove("NEURONMAP_CONFIG")
        .env_remove("HF_HOME")
        .env_remove("HF_HUB_OFFLINE")
        .env_remove("HF_ENDPOINT")
        .env("XDG_CONFIG_HOME", "/nonexistent/neuronmap-test-config")
        .env("HF_HUB_CACHE", cache)
        .env("NO_COLOR", "1");
    cmd
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the neuronmap binary runs")
}

#[test]
fn models_json_lists_cached_model_first_with_documented_keys() {
    let dir = tempfile::tempdir().unwrap();
    let snap = dir
        .path()
        .join("models--org--tiny/snapshots/1111111111111111111111111111111111111111");
    std::fs::create_dir_all(&snap).unwrap();
    std::fs::create_dir_all(dir.path().join("models--org--tiny/refs")).unwrap();
    std::fs::write(
        dir.path().join("models--org--tiny/refs/main"),
        "1111111111111111111111111111111111111111",
    )
    .unwrap();
    std::fs::write(
        snap.join("config.json"),
        r#"{"model_type":"llama","vocab_size":100,"hidden_size":16,"intermediate_size":32,
            "num_hidden_layers":2,"num_attention_heads":4,"max_position_embeddings":64}"#,
    )
    .unwrap();
    let out = run(bin(dir.path()).args(["models", "--json"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema_version"], 1);
    let models = v["models"].as_array().unwrap();
    let first = &models[0];
    assert_eq!(first["id"], "org/tiny");
    assert_eq!(first["source"], "cache");
    assert_eq!(first["family"], "llama");
    assert_eq!(first["revision"], "main");
    assert_eq!(first["complete"], false);
    for key in ["parameters", "dtype", "size_bytes", "local_path", "missing"] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }
    assert!(models.iter().any(|m| m["id"] == "gpt2"
        && m["source"] == "registry"
        && m["parameters"] == 124_439_808u64));
}

#[test]
fn pull_offline_fails_at_once_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let start = std::time::Instant::now();
    let out = run(bin(dir.path())
        .env("HF_HUB_OFFLINE", "1")
        .args(["pull", "gpt2"]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("HF_HUB_OFFLINE"), "{err}");
    assert!(start.elapsed().as_secs() < 5);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        0,
        "nothing written"
    );
}

#[test]
fn pull_with_an_unreachable_endpoint_fails_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    // Port 9 on localhost: nothing listens, the connection is refused at once.
    let out = run(bin(dir.path())
        .env("HF_ENDPOINT", "http://127.0.0.1:9")
        .args(["pull", "gpt2"]));
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach http://127.0.0.1:9"), "{err}");
}
