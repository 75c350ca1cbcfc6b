//! The job queue end to end: a real daemon and real worker processes of the built binary, a
//! temp state folder, the tiny GPT-2 fixture on the CPU. Outputs are compared byte for byte
//! with direct `neuronmap extract` runs.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use safetensors::SafeTensors;
use serde_json::Value;

const EXE: &str = env!("CARGO_BIN_EXE_neuronmap");
const WAIT: Duration = Duration::from_secs(180);

struct Env {
    dir: tempfile::TempDir,
    daemon: Option<Child>,
}

impl Drop for Env {
    fn drop(&mut self) {
        self.kill_daemon();
        // Workers outlive daemons by design; stop any a failed test left behind.
        if let Ok(jobs) = self.try_jobs() {
            for job in jobs {
                if let Some(pid) = job["pid"].as_i64() {
                    // SAFETY: kill(2) on a worker this test started.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
            }
        }
    }
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        // One CPU job at a time on any machine, a fast poll, a short cancel timeout.
        std::fs::write(
            dir.path().join("config.toml"),
            "[jobs]\nauto_start_daemon = false\ncpu_cores_per_job = 1024\npoll_interval_ms = 20\ncancel_timeout_seconds = 20\nshard_mib = 1\n",
        )
        .unwrap();
        Self { dir, daemon: None }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(EXE);
        c.env("NEURONMAP_STATE_DIR", self.path("state"))
            .env("NEURONMAP_CONFIG", self.path("config.toml"));
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "{args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    fn start_daemon(&mut self) {
        let child = self
            .cmd()
            .arg("daemon")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.daemon = Some(child);
    }

    fn kill_daemon(&mut self) {
        if let Some(mut d) = self.daemon.take() {
            let _ = d.kill(); // SIGKILL: the crash case.
            let _ = d.wait();
        }
    }

    /// Writes `n` prompts and returns the file.
    fn prompts(&self, name: &str, n: usize) -> PathBuf {
        let text: String = (0..n)
            .map(|i| {
                format!("Prompt number {i} says the quick brown fox jumps over the lazy dog\n")
            })
            .collect();
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn submit(&self, model: &Path, input: &Path, out: &str, extra: &[&str]) -> i64 {
        let out = self.path(out);
        let mut args = vec![
            "submit",
            "--model",
            model.to_str().unwrap(),
            "--input",
            input.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
            "--device",
            "cpu",
            "--batch",
            "4",
            "--hooks",
            "blocks.*.hook_resid_post",
        ];
        args.extend_from_slice(extra);
        self.ok(&args).trim().parse().unwrap()
    }

    /// Runs `extract` directly into `out` with the same settings as [`Env::submit`].
    fn direct(&self, model: &Path, input: &Path, out: &str) -> PathBuf {
        let out = self.path(out);
        let o = Command::new(EXE)
            .args(["extract", "--batch", "4", "--shard-mib", "1"])
            .args(["--hooks", "blocks.*.hook_resid_post"])
            .arg("--model")
            .arg(model)
            .arg("--input")
            .arg(input)
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        out
    }

    fn try_jobs(&self) -> Result<Vec<Value>, String> {
        let out = self.run(&["jobs", "--all", "--json"]);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let v: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
        Ok(v.as_array().cloned().unwrap_or_default())
    }

    fn job(&self, id: i64) -> Value {
        let v: Value =
            serde_json::from_str(&self.ok(&["show", &id.to_string(), "--json"])).unwrap();
        v["job"].clone()
    }

    fn events(&self, id: i64) -> Vec<String> {
        let v: Value =
            serde_json::from_str(&self.ok(&["show", &id.to_string(), "--json"])).unwrap();
        v["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{} {}",
                    e["to"].as_str().unwrap(),
                    e["reason"].as_str().unwrap()
                )
            })
            .collect()
    }

    /// Waits until `pred` holds for job `id`; panics with the job after [`WAIT`].
    fn wait_for(&self, id: i64, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let start = Instant::now();
        loop {
            let job = self.job(id);
            if pred(&job) {
                return job;
            }
            assert!(
                start.elapsed() < WAIT,
                "job {id} never became {what}: {job:#}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn wait_state(&self, id: i64, state: &str) -> Value {
        self.wait_for(id, state, |j| j["state"] == state)
    }
}

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2")
}

/// Every file of `a` holds the same content as the file of the same name in `b`: the same
/// tensors (names, dtypes, shapes, bytes) and metadata for shards, the same JSON for the rest
/// (key order in headers is not part of the content).
fn assert_same_output(a: &Path, b: &Path) {
    let names = |d: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    assert_eq!(names(a), names(b), "{} vs {}", a.display(), b.display());
    for name in names(a) {
        let (x, y) = (
            std::fs::read(a.join(&name)).unwrap(),
            std::fs::read(b.join(&name)).unwrap(),
        );
        let what = format!("{name} in {} and {}", a.display(), b.display());
        if name.ends_with(".safetensors") {
            assert_same_tensors(&x, &y, &what);
        } else if name.ends_with(".json") {
            let (x, y): (Value, Value) = (
                serde_json::from_slice(&x).unwrap(),
                serde_json::from_slice(&y).unwrap(),
            );
            assert_eq!(x, y, "{what}");
        } else {
            assert!(x == y, "{what} differ");
        }
    }
}

fn assert_same_tensors(x: &[u8], y: &[u8], what: &str) {
    let (_, mx) = SafeTensors::read_metadata(x).unwrap();
    let (_, my) = SafeTensors::read_metadata(y).unwrap();
    assert_eq!(mx.metadata(), my.metadata(), "metadata of {what}");
    let (tx, ty) = (
        SafeTensors::deserialize(x).unwrap(),
        SafeTensors::deserialize(y).unwrap(),
    );
    let mut nx = tx.names();
    let mut ny = ty.names();
    nx.sort();
    ny.sort();
    assert_eq!(nx, ny, "tensor names of {what}");
    for n in nx {
        let (vx, vy) = (tx.tensor(n).unwrap(), ty.tensor(n).unwrap());
        assert_eq!(vx.dtype(), vy.dtype(), "{n} of {what}");
        assert_eq!(vx.shape(), vy.shape(), "{n} of {what}");
        assert!(vx.data() == vy.data(), "{n} of {what} differs");
    }
}

fn i(v: &Value) -> i64 {
    v.as_i64().unwrap_or_else(|| panic!("not an integer: {v}"))
}

#[test]
fn twenty_jobs_of_mixed_priority_run_in_order_with_outputs_equal_to_direct_runs() {
    let mut env = Env::new();
    let model = fixture();
    let input = env.prompts("p.txt", 12);
    let reference = env.direct(&model, &input, "direct");
    let priorities = [0, 3, 1, 3, 0, 2, 1, 0, 3, 2, 0, 1, 2, 3, 0, 1, 2, 0, 3, 1];
    let ids: Vec<i64> = priorities
        .iter()
        .enumerate()
        .map(|(n, p)| {
            env.submit(
                &model,
                &input,
                &format!("out{n}"),
                &["--priority", &p.to_string()],
            )
        })
        .collect();
    env.start_daemon();
    let jobs: Vec<Value> = ids
        .iter()
        .map(|&id| env.wait_state(id, "succeeded"))
        .collect();
    // Expected order: priority descending, then submission order.
    let mut expected: Vec<usize> = (0..ids.len()).collect();
    expected.sort_by_key(|&n| (-priorities[n], n));
    for pair in expected.windows(2) {
        let (a, b) = (&jobs[pair[0]], &jobs[pair[1]]);
        assert!(
            i(&a["finished_ms"]) <= i(&b["started_ms"]),
            "job {} (priority {}) should have finished before job {} (priority {}) started",
            a["id"],
            a["priority"],
            b["id"],
            b["priority"]
        );
    }
    for (n, job) in jobs.iter().enumerate() {
        assert_eq!(job["progress"].as_f64(), Some(1.0));
        assert_eq!(job["placement"], "cpu");
        assert_same_output(&env.path(&format!("out{n}")), &reference);
    }
}

#[test]
fn daemon_killed_mid_job_then_restarted_readopts_or_requeues_and_outputs_equal() {
    let mut env = Env::new();
    let model = fixture();
    let long = env.prompts("long.txt", 3000);
    let short = env.prompts("short.txt", 12);
    let a = env.submit(&model, &long, "a", &["--priority", "9"]);
    let b = env.submit(&model, &long, "b", &[]);
    let c = env.submit(&model, &short, "c", &[]);
    env.start_daemon();
    let running = env.wait_for(a, "running with progress", |j| {
        j["state"] == "running" && j["progress"].as_f64().unwrap_or(0.0) > 0.0
    });
    let worker_a = i(&running["pid"]);
    // Crash the daemon; the worker must carry on without it.
    env.kill_daemon();
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signal 0 only checks that the worker exists.
    assert_eq!(
        unsafe { libc::kill(worker_a as i32, 0) },
        0,
        "the worker outlived the daemon"
    );
    env.start_daemon();
    // Job b starts after a; crash the daemon again and this time kill b's worker while no
    // daemon watches, so the next daemon must requeue it.
    let running_b = env.wait_for(b, "running with progress", |j| {
        j["state"] == "running" && j["progress"].as_f64().unwrap_or(0.0) > 0.0
    });
    env.kill_daemon();
    // SAFETY: kill(2) on the worker this test's daemon started.
    unsafe { libc::kill(i(&running_b["pid"]) as i32, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(300));
    env.start_daemon();
    let ja = env.wait_state(a, "succeeded");
    let jb = env.wait_state(b, "succeeded");
    env.wait_state(c, "succeeded");
    assert_eq!(i(&ja["attempts"]), 1, "a was re-adopted, not run again");
    assert_eq!(i(&jb["attempts"]), 2, "b was requeued once");
    let events = env.events(b);
    assert!(
        events.iter().any(|e| e.starts_with("interrupted ")),
        "{events:?}"
    );
    let reference = env.direct(&model, &long, "direct-long");
    assert_same_output(&env.path("a"), &reference);
    assert_same_output(&env.path("b"), &reference);
    assert_same_output(&env.path("c"), &env.direct(&model, &short, "direct-short"));
}

#[test]
fn a_worker_killed_with_signal_9_is_failed_with_the_signal_and_retry_resumes() {
    let mut env = Env::new();
    let model = fixture();
    let long = env.prompts("long.txt", 3000);
    let id = env.submit(&model, &long, "a", &[]);
    env.start_daemon();
    let running = env.wait_for(id, "running with progress", |j| {
        j["state"] == "running" && j["progress"].as_f64().unwrap_or(0.0) > 0.0
    });
    // SAFETY: kill(2) on the worker this test's daemon started.
    unsafe { libc::kill(i(&running["pid"]) as i32, libc::SIGKILL) };
    let failed = env.wait_state(id, "failed");
    assert_eq!(failed["failure"]["kind"], "signal");
    assert_eq!(failed["failure"]["signal"], 9);
    assert!(
        failed["error"].as_str().unwrap().contains("SIGKILL"),
        "{failed}"
    );
    env.ok(&["retry", &id.to_string()]);
    let done = env.wait_state(id, "succeeded");
    assert_eq!(i(&done["attempts"]), 2);
    assert_same_output(&env.path("a"), &env.direct(&model, &long, "direct"));
}

#[test]
fn cancel_stops_a_running_job_after_a_whole_shard_and_retry_finishes_it() {
    let mut env = Env::new();
    let model = fixture();
    let long = env.prompts("long.txt", 3000);
    let id = env.submit(&model, &long, "a", &[]);
    let queued = env.submit(&model, &long, "b", &["--priority", "-1"]);
    env.start_daemon();
    env.wait_for(id, "running with progress", |j| {
        j["state"] == "running" && j["progress"].as_f64().unwrap_or(0.0) > 0.0
    });
    env.ok(&["cancel", &queued.to_string()]);
    assert_eq!(env.job(queued)["state"], "cancelled");
    env.ok(&["cancel", &id.to_string()]);
    let cancelled = env.wait_state(id, "cancelled");
    assert!(cancelled["error"].is_null());
    assert!(
        env.path("a").join("manifest.json").is_file(),
        "a cancelled run leaves a resumable manifest"
    );
    env.ok(&["retry", &id.to_string()]);
    env.wait_state(id, "succeeded");
    assert_same_output(&env.path("a"), &env.direct(&model, &long, "direct"));
    let log = env.ok(&["logs", &id.to_string()]);
    assert!(log.contains("resuming"), "{log}");
}

#[test]
fn a_dependent_job_waits_and_a_missing_model_fails_clearly_while_others_run() {
    let mut env = Env::new();
    let model = fixture();
    let input = env.prompts("p.txt", 12);
    let missing = env.path("no-such-model");
    let first = env.submit(&model, &input, "first", &[]);
    let bad = env.submit(&missing, &input, "bad", &["--priority", "5"]);
    let after_first = env.submit(
        &model,
        &input,
        "second",
        &["--after", &first.to_string(), "--priority", "9"],
    );
    let after_bad = env.submit(&model, &input, "never", &["--after", &bad.to_string()]);
    env.start_daemon();
    let failed = env.wait_state(bad, "failed");
    let error = failed["error"].as_str().unwrap();
    assert!(error.contains("no-such-model"), "{error}");
    assert!(
        error.contains("not a folder") || error.contains("not found"),
        "{error}"
    );
    assert_eq!(failed["failure"]["kind"], "engine");
    let a = env.wait_state(first, "succeeded");
    let b = env.wait_state(after_first, "succeeded");
    assert!(
        i(&a["finished_ms"]) <= i(&b["started_ms"]),
        "the dependency ran first"
    );
    let waiting = env.wait_for(after_bad, "waiting on the failed job", |j| {
        j["wait_reason"]
            .as_str()
            .is_some_and(|r| r.contains("which is failed"))
    });
    assert_eq!(waiting["state"], "queued");
    assert!(!env.path("never").exists());
}

#[test]
fn submit_starts_a_daemon_when_none_runs() {
    let env = Env::new();
    std::fs::write(
        env.path("config.toml"),
        "[jobs]\nauto_start_daemon = true\npoll_interval_ms = 20\n",
    )
    .unwrap();
    let input = env.prompts("p.txt", 4);
    let id = env.submit(&fixture(), &input, "a", &[]);
    env.wait_state(id, "succeeded");
    let lock = std::fs::read_to_string(env.path("state").join("daemon.lock")).unwrap();
    let pid: i32 = lock.split_whitespace().next().unwrap().parse().unwrap();
    // SAFETY: kill(2) on the daemon this test's submit started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
}
