//! The real binary's telemetry commands: snapshot (text and JSON), record from a replay and the
//! round trip back, bad traces and bad config files.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_neuronmap"));
    // Keep the user's real config and state out of the tests.
    cmd.env_remove("NEURONMAP_CONFIG")
        .env("XDG_CONFIG_HOME", "/nonexistent/neuronmap-test-config")
        .env("NO_COLOR", "1");
    cmd
}

fn demo_trace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/traces/synthetic-8gpu.jsonl")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the neuronmap binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn snapshot_json_from_a_replay_has_the_documented_keys() {
    let out = run(bin()
        .args(["--replay"])
        .arg(demo_trace())
        .args(["snapshot", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["schema_version"], 1);
    assert!(v["timestamp"].as_str().unwrap().ends_with('Z'));
    for key in [
        "hostname",
        "cpu_percent",
        "memory_total_bytes",
        "memory_used_bytes",
    ] {
        assert!(!v["host"][key].is_null(), "host.{key}");
    }
    assert_eq!(v["driver"]["available"], true);
    let gpus = v["gpus"].as_array().unwrap();
    assert_eq!(gpus.len(), 8);
    for g in gpus {
        for key in [
            "index",
            "name",
            "uuid",
            "memory_total_bytes",
            "memory_used_bytes",
            "utilization_gpu_percent",
            "temperature_celsius",
            "power_draw_watts",
        ] {
            assert!(g[key].is_number() || g[key].is_string(), "gpu.{key} in {g}");
        }
        assert!(g["processes"].is_array());
    }
}

#[test]
fn snapshot_without_a_driver_still_reports_the_host() {
    if Path::new("/dev/nvidiactl").exists() {
        return; // a machine with a driver: the no-driver path cannot be tested here
    }
    let out = run(bin().args(["snapshot", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["driver"]["available"], false);
    assert!(v["driver"]["error"].as_str().unwrap().contains("NVIDIA"));
    assert_eq!(v["gpus"].as_array().unwrap().len(), 0);
    assert!(v["host"]["memory_total_bytes"].as_u64().unwrap() > 0);

    let text = run(bin().arg("snapshot"));
    assert!(text.status.success());
    assert!(String::from_utf8_lossy(&text.stdout).contains("no GPUs:"));
}

#[test]
fn recording_a_replay_and_replaying_the_recording_gives_the_same_samples() {
    use neuronmap::telemetry::trace::TraceReader;
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("copy.jsonl");
    let out = run(bin()
        .args(["--replay"])
        .arg(demo_trace())
        .args(["--speed", "1000", "record", "--out"])
        .arg(&copy));
    assert!(out.status.success(), "{}", stderr(&out));
    let (orig_header, orig) = TraceReader::open(&demo_trace())
        .unwrap()
        .read_all()
        .unwrap();
    let (copy_header, back) = TraceReader::open(&copy).unwrap().read_all().unwrap();
    assert_eq!(
        copy_header.source, "synthetic",
        "re-recording keeps the label"
    );
    assert_eq!(copy_header.devices, orig_header.devices);
    assert_eq!(back, orig);

    // And the copy drives snapshot like the original.
    let a = run(bin().arg("--replay").arg(&copy).arg("snapshot"));
    let b = run(bin().arg("--replay").arg(demo_trace()).arg("snapshot"));
    assert_eq!(a.stdout, b.stdout);
}

#[test]
fn record_stops_after_its_duration() {
    let dir = tempfile::tempdir().unwrap();
    let out_file = dir.path().join("short.jsonl");
    let out = run(bin()
        .args(["--replay"])
        .arg(demo_trace())
        .args([
            "--speed",
            "10",
            "--loop",
            "record",
            "--duration",
            "0.5",
            "--out",
        ])
        .arg(&out_file));
    assert!(out.status.success(), "{}", stderr(&out));
    let (_, frames) = neuronmap::telemetry::trace::TraceReader::open(&out_file)
        .unwrap()
        .read_all()
        .unwrap();
    // 10x speed of a 1 s trace: about 5 samples in 0.5 s; far fewer than the 120 in the trace.
    assert!(!frames.is_empty() && frames.len() < 60, "{}", frames.len());
}

#[test]
fn a_truncated_trace_is_an_error_naming_the_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.jsonl");
    let text = std::fs::read_to_string(demo_trace()).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let first = lines.next().unwrap();
    std::fs::write(&bad, format!("{header}\n{}\n", &first[..first.len() / 2])).unwrap();
    let out = run(bin().arg("--replay").arg(&bad).arg("snapshot"));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("bad.jsonl"), "{err}");
}

#[test]
fn a_missing_trace_is_an_error_naming_the_file() {
    let out = run(bin().args(["--replay", "/nonexistent/trace.jsonl", "snapshot"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("/nonexistent/trace.jsonl"));
}

#[test]
fn bad_config_files_exit_2_with_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    let cases = [
        ("[telemetry]\ninterval_ms = \n", "line 2"),
        ("[ui]\ncolour = \"auto\"\n", "colour"),
        ("[telemetry]\ninterval_ms = 5\n", "telemetry.interval_ms"),
        ("[ui]\ntheme = \"neon\"\n", "neon"),
    ];
    for (text, expect) in cases {
        std::fs::write(&cfg, text).unwrap();
        let out = run(bin().arg("--config").arg(&cfg).arg("snapshot"));
        assert_eq!(out.status.code(), Some(2), "{text}");
        let err = stderr(&out);
        assert!(err.contains(expect), "{text}: {err}");
        assert!(err.contains("config.toml"), "{err}");
        assert!(out.stdout.is_empty());
    }
    // The same through the environment variable.
    std::fs::write(&cfg, "nonsense = true\n").unwrap();
    let out = run(bin().env("NEURONMAP_CONFIG", &cfg).arg("snapshot"));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("nonsense"));
}

#[test]
fn out_of_range_interval_and_speed_are_rejected() {
    let out = run(bin().arg("--replay").arg(demo_trace()).args([
        "--interval",
        "50",
        "record",
        "--out",
        "/dev/null",
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--interval"));
    let out = run(bin()
        .arg("--replay")
        .arg(demo_trace())
        .args(["--speed", "0", "snapshot"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--speed"));
}

#[test]
fn the_real_h100_trace_drives_snapshot_with_its_recorded_values() {
    use neuronmap::telemetry::trace::TraceReader;
    let trace =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/traces/h100-80gb-hbm3-2026-11-27.jsonl");
    let (header, samples) = TraceReader::open(&trace).unwrap().read_all().unwrap();
    assert_eq!(header.source, "nvml", "a real recording, not synthetic");
    assert!(samples.len() >= 200, "60 s at 250 ms");
    // The load ran on the GPU for part of the recording: utilisation and a process show up.
    assert!(samples
        .iter()
        .any(|s| s.gpus[0].utilization_gpu_percent.unwrap_or(0) > 90));
    assert!(samples.iter().any(|s| !s.gpus[0].processes.is_empty()));

    let out = run(bin()
        .arg("--replay")
        .arg(&trace)
        .args(["snapshot", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let g = &v["gpus"][0];
    assert_eq!(g["name"], header.devices[0].name.as_str());
    assert_eq!(g["uuid"], header.devices[0].uuid.as_str());
    assert_eq!(
        g["memory_total_bytes"],
        header.devices[0].memory_total_bytes
    );
    assert_eq!(
        g["memory_used_bytes"].as_u64(),
        samples[0].gpus[0].memory_used_bytes
    );
    assert_eq!(
        v["driver"]["driver_version"].as_str(),
        header.driver.driver_version.as_deref()
    );
}
