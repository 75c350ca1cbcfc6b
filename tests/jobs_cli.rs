//! The job commands against a real store in a temp state folder, with no daemon (auto-start
//! off): concurrent submits, the queue's order, hold/release, cancel, retry and rm, and the
//! exit status of user errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("config.toml"),
            "[jobs]\nauto_start_daemon = false\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("prompts.txt"), "hello\nworld\n").unwrap();
        Self { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_neuronmap"));
        c.env("NEURONMAP_STATE_DIR", self.path("state"))
            .env("NEURONMAP_CONFIG", self.path("config.toml"));
        c
    }

    /// A shell snippet with the same environment as [`Env::cmd`].
    fn shell(&self, script: &str) -> Command {
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg(script)
            .env("NEURONMAP_STATE_DIR", self.path("state"))
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

    fn submit(&self, out: &str, extra: &[&str]) -> i64 {
        let input = self.path("prompts.txt");
        let out_dir = self.path(out);
        let mut args = vec![
            "submit",
            "--model",
            "/nonexistent/model",
            "--input",
            input.to_str().unwrap(),
            "--out",
            out_dir.to_str().unwrap(),
            "--device",
            "cpu",
        ];
        args.extend_from_slice(extra);
        self.ok(&args).trim().parse().unwrap()
    }

    fn jobs_json(&self) -> Vec<serde_json::Value> {
        let text = self.ok(&["jobs", "--all", "--json"]);
        serde_json::from_str::<serde_json::Value>(&text)
            .unwrap()
            .as_array()
            .unwrap()
            .clone()
    }
}

fn field<'a>(job: &'a serde_json::Value, key: &str) -> &'a serde_json::Value {
    job.get(key)
        .unwrap_or_else(|| panic!("no `{key}` in {job}"))
}

#[test]
fn four_processes_submitting_250_jobs_each_make_exactly_1000() {
    let env = Env::new();
    // Create the database first so the four writers race on rows, not on the schema.
    env.ok(&["jobs"]);
    let script = r#"for i in $(seq 1 250); do "$BIN" submit --model /m --input "$IN" --out "$OUT/w$W-$i" --device cpu >/dev/null || exit 1; done"#;
    let children: Vec<_> = (0..4)
        .map(|w| {
            env.shell(script)
                .env("BIN", env!("CARGO_BIN_EXE_neuronmap"))
                .env("IN", env.path("prompts.txt"))
                .env("OUT", env.dir.path())
                .env("W", w.to_string())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut child in children {
        assert!(child.wait().unwrap().success());
    }
    let jobs = env.jobs_json();
    assert_eq!(jobs.len(), 1000);
    let mut ids: Vec<i64> = jobs
        .iter()
        .map(|j| field(j, "id").as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    assert_eq!(
        ids,
        (1..=1000).collect::<Vec<_>>(),
        "ids are dense and unique"
    );
    let mut outputs: Vec<String> = jobs
        .iter()
        .map(|j| field(j, "output").as_str().unwrap().to_string())
        .collect();
    outputs.sort();
    outputs.dedup();
    assert_eq!(
        outputs.len(),
        1000,
        "every submission is stored exactly once"
    );
    assert!(jobs.iter().all(|j| field(j, "state") == "queued"));
}

#[test]
fn the_queue_lists_by_priority_then_age_with_every_documented_field() {
    let env = Env::new();
    let a = env.submit("a", &[]);
    let b = env.submit("b", &["--priority", "5"]);
    let c = env.submit("c", &["--priority", "-1", "--after", &a.to_string()]);
    let jobs = env.jobs_json();
    let order: Vec<i64> = jobs
        .iter()
        .map(|j| field(j, "id").as_i64().unwrap())
        .collect();
    assert_eq!(order, vec![b, a, c]);
    for key in [
        "id",
        "state",
        "model",
        "analysis",
        "device",
        "progress",
        "wait_reason",
        "output",
        "error",
        "schema_version",
    ] {
        field(&jobs[0], key);
    }
    assert_eq!(field(&jobs[2], "after").as_i64(), Some(a));
    assert_eq!(field(&jobs[0], "progress").as_f64(), Some(0.0));
    assert!(Path::new(field(&jobs[0], "output").as_str().unwrap()).is_absolute());
    let table = env.ok(&["jobs"]);
    assert!(table.starts_with("ID"), "{table}");
    assert_eq!(table.lines().count(), 4);
}

#[test]
fn hold_release_cancel_retry_and_rm_change_state_with_events() {
    let env = Env::new();
    let id = env.submit("a", &["--hold"]);
    let s = id.to_string();
    let show = env.ok(&["show", &s, "--json"]);
    let v: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(v["job"]["held"], true);
    env.ok(&["release", &s]);
    env.ok(&["cancel", &s]);
    let v: serde_json::Value = serde_json::from_str(&env.ok(&["show", &s, "--json"])).unwrap();
    assert_eq!(v["job"]["state"], "cancelled");
    let reasons: Vec<&str> = v["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap())
        .collect();
    assert_eq!(
        reasons,
        vec![
            "submitted (held)",
            "released",
            "cancelled before it started"
        ]
    );
    // Cancelling twice is a user error, and so is an unknown job.
    let again = env.run(&["cancel", &s]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("is cancelled"));
    let unknown = env.run(&["show", "999"]);
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no job 999"));
    env.ok(&["retry", &s]);
    assert_eq!(field(&env.jobs_json()[0], "state"), "queued");
    env.ok(&["rm", &s]);
    assert!(env.jobs_json().is_empty());
}

#[test]
fn bad_submissions_change_nothing_and_exit_2() {
    let env = Env::new();
    let input = env.path("prompts.txt");
    let input = input.to_str().unwrap();
    for args in [
        vec![
            "submit",
            "--model",
            "m",
            "--input",
            "/no/such/file",
            "--out",
            "o",
        ],
        vec![
            "submit", "--model", "m", "--input", input, "--out", "o", "--device", "gpu",
        ],
        vec![
            "submit", "--model", "m", "--input", input, "--out", "o", "--after", "7",
        ],
        vec![
            "submit", "--model", "m", "--input", input, "--out", "o", "--dtype", "f64",
        ],
    ] {
        let out = env.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(!out.stderr.is_empty());
    }
    assert!(env.jobs_json().is_empty());
}
