//! `neuronmap check` run as the real binary against the synthetic 8-GPU replay: JSON keys,
//! verdicts, fallbacks and exit statuses 0 / 1 / 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    cache: tempfile::TempDir,
    state: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        Self {
            cache: tempfile::tempdir().unwrap(),
            state: tempfile::tempdir().unwrap(),
        }
    }

    fn check(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_neuronmap"))
            .env_remove("NEURONMAP_CONFIG")
            .env_remove("HF_HOME")
            .env("XDG_CONFIG_HOME", "/nonexistent/neuronmap-test-config")
            .env("HF_HUB_CACHE", self.cache.path())
            .env("NEURONMAP_STATE_DIR", self.state.path())
            .env("NO_COLOR", "1")
            .arg("--replay")
            .arg(trace())
            .arg("check")
            .args(args)
            .output()
            .expect("the neuronmap binary runs")
    }
}

fn trace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/traces/synthetic-8gpu.jsonl")
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

#[test]
fn gpt2_fits_everywhere_and_exits_0_with_the_documented_keys() {
    let env = Env::new();
    let out = env.check(&["gpt2", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["schema_version"], 1);
    assert_eq!(v["model"]["id"], "gpt2");
    assert_eq!(v["model"]["family"], "gpt2");
    assert_eq!(v["model"]["parameters"], 124_439_808u64);
    let devices = v["devices"].as_array().unwrap();
    assert_eq!(devices.len(), 9, "the CPU and 8 GPUs");
    for d in devices {
        for key in [
            "device",
            "verdict",
            "estimated_peak_bytes",
            "free_bytes",
            "fallback",
        ] {
            assert!(d.get(key).is_some(), "{key} in {d}");
        }
        assert_eq!(d["verdict"], "fits");
        assert!(d["estimated_peak_bytes"].as_u64().unwrap() < d["free_bytes"].as_u64().unwrap());
    }
    assert_eq!(devices[0]["device"], "cpu");
    assert_eq!(devices[1]["device"], "cuda:0");
    assert_eq!(devices[1]["dtype"], "bf16");
    // The calibration was cached in the state directory.
    assert!(env.state.path().join("calibration.json").is_file());
}

/// Llama-3.1-8B at batch 64 x 4096 tokens on the replayed trace's cuda:6: too big as asked.
const TOO_BIG_ON_CUDA6: &[&str] = &[
    "meta-llama/Llama-3.1-8B",
    "--batch",
    "64",
    "--seq",
    "4096",
    "--device",
    "cuda:6",
];

#[test]
fn too_big_on_one_gpu_exits_1_and_names_the_fallback() {
    let env = Env::new();
    let out = env.check(&[TOO_BIG_ON_CUDA6, &["--json"]].concat());
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    let d = &v["devices"][0];
    assert_eq!(d["device"], "cuda:6");
    assert_eq!(d["verdict"], "fits_with_fallback");
    assert_eq!(d["fallback"]["change"]["kind"], "batch", "{d}");
    assert!(d["fallback"]["description"]
        .as_str()
        .unwrap()
        .contains("--batch"));
    assert!(
        d["fallback"]["estimated_peak_bytes"].as_u64().unwrap()
            <= d["free_bytes"].as_u64().unwrap()
    );
    assert_eq!(v["fits"], false);
}

#[test]
fn text_output_shows_the_breakdown_and_the_fallback() {
    let env = Env::new();
    let out = env.check(TOO_BIG_ON_CUDA6);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "weights",
        "captured activations",
        "attention patterns",
        "fits_with_fallback",
        "use --batch",
    ] {
        assert!(text.contains(needle), "{needle} in\n{text}");
    }
}

#[test]
fn unsupported_family_exits_1() {
    let env = Env::new();
    let out = env.check(&["t5-small", "--device", "cpu", "--json"]);
    assert_eq!(out.status.code(), Some(1));
    let v = json(&out);
    assert_eq!(v["devices"][0]["verdict"], "not_supported");
    assert!(v["devices"][0]["reason"].as_str().unwrap().contains("t5"));
}

#[test]
fn errors_exit_2_and_name_the_problem() {
    let env = Env::new();
    let out = env.check(&["no-such/model-xyz"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no-such/model-xyz"));

    let out = env.check(&["gpt2", "--device", "cuda:99"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cuda:99"));

    let out = env.check(&["gpt2", "--dtype", "int3"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("int3"));

    let out = env.check(&["gpt2", "--analysis", "vibes"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("vibes"));
}

#[test]
fn a_model_folder_is_checked_from_its_config() {
    let env = Env::new();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type":"qwen2","vocab_size":1000,"hidden_size":64,"intermediate_size":128,
            "num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,
            "max_position_embeddings":128}"#,
    )
    .unwrap();
    let out = env.check(&[dir.path().to_str().unwrap(), "--device", "cpu", "--json"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    assert_eq!(v["model"]["family"], "qwen2");
    assert_eq!(v["request"]["seq"], 128, "capped by the model's maximum");
}
