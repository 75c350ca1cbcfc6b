//! `neuronmap extract` as a process: exit statuses, Ctrl-C then `--resume`, and the README's
//! Python loading snippet run against a fresh extraction.

mod engine_support;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use engine_support::*;

fn neuronmap() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_neuronmap"));
    c.env(
        "NEURONMAP_STATE_DIR",
        std::env::temp_dir().join("neuronmap-engine-cli-state"),
    );
    c
}

fn extract(input: &Path, out: &Path, extra: &[&str]) -> Command {
    let mut c = neuronmap();
    c.arg("extract")
        .arg("--model")
        .arg(fixture("gpt2"))
        .arg("--input")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(extra);
    c
}

/// `dir/many.txt` with `n` numbered prompts of about 14 tokens.
fn many_prompts(dir: &Path, n: usize) -> std::path::PathBuf {
    let input = dir.join("many.txt");
    let text: String = (0..n)
        .map(|i| format!("prompt {i} about the quick brown fox and the lazy dog {i}\n"))
        .collect();
    std::fs::write(&input, text).unwrap();
    input
}

#[test]
fn exit_statuses_and_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("p.txt");
    std::fs::write(&input, "Hello world\nThe quick brown fox\n").unwrap();
    let out = tmp.path().join("out");
    let ok = extract(
        &input,
        &out,
        &["--hooks", "blocks.*.hook_resid_post,hook_embed"],
    )
    .output()
    .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("2 prompts"));
    let o = load_output(&out);
    assert_eq!(o.hooks.len(), 4);

    let bad = extract(
        &input,
        &tmp.path().join("o2"),
        &["--hooks", "blocks.*.hook_resid_pots"],
    )
    .output()
    .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    let err = String::from_utf8_lossy(&bad.stderr);
    assert!(
        err.contains("close matches: blocks.0.hook_resid_post"),
        "{err}"
    );
    assert!(!tmp.path().join("o2").exists());

    let again = extract(&input, &out, &["--hooks", "hook_embed"])
        .output()
        .unwrap();
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--resume"));
}

#[test]
fn ctrl_c_finishes_the_shard_and_resume_completes_it() {
    let tmp = tempfile::tempdir().unwrap();
    let input = many_prompts(tmp.path(), 1500);
    let args = [
        "--hooks",
        "blocks.*.hook_resid_post",
        "--batch",
        "1",
        "--shard-mib",
        "1",
    ];
    let whole = tmp.path().join("whole");
    let status = extract(&input, &whole, &args)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());

    let parts = tmp.path().join("parts");
    let child = extract(&input, &parts, &args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        let shards = std::fs::read_to_string(parts.join("manifest.json"))
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map_or(0, |m| m["shards"].as_array().map_or(0, Vec::len));
        if shards >= 1 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no shard appeared"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    // SAFETY: sending SIGINT to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let m = load_output(&parts).manifest;
    if out.status.code() == Some(130) {
        assert_eq!(m["complete"], false);
        assert!(stderr.contains("--resume"), "{stderr}");
    } else {
        // The run was already finishing its last shard.
        assert!(out.status.success(), "{stderr}");
    }
    let status = extract(&input, &parts, &[&args[..], &["--resume"]].concat())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let (a, b) = (load_output(&whole), load_output(&parts));
    assert_eq!(b.manifest["complete"], true);
    assert_eq!(a.shard_files, b.shard_files);
    assert_eq!(a.ids, b.ids);
    assert_eq!(a.index, b.index);
    assert_eq!(a.hooks, b.hooks);
}

#[test]
fn readme_python_snippet_loads_a_shard() {
    if std::env::var_os("CI").is_none() {
        eprintln!("skipped: the README Python snippet test runs when CI is set (needs python3 with safetensors and numpy)");
        return;
    }
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap();
    let after = readme
        .split("<!-- engine-python-snippet -->")
        .nth(1)
        .unwrap();
    let code = after
        .split("```python\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    assert_eq!(code.lines().count(), 5, "the README promises five lines");
    let tmp = tempfile::tempdir().unwrap();
    let r = reference("gpt2");
    let input = write_prompts(tmp.path(), &r.prompts);
    let status = Command::new(env!("CARGO_BIN_EXE_neuronmap"))
        .arg("extract")
        .arg("--model")
        .arg(fixture("gpt2"))
        .arg("--input")
        .arg(&input)
        .args(["--hooks", "blocks.*.hook_resid_post", "--out", "out"])
        .current_dir(tmp.path())
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success());
    let py = Command::new("python3")
        .args(["-c", code])
        .current_dir(tmp.path())
        .output()
        .expect("python3 must be installed when CI is set");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let o = load_output(&tmp.path().join("out"));
    let len = o.offsets[2] - o.offsets[1];
    assert_eq!(
        String::from_utf8_lossy(&py.stdout).trim(),
        format!("({len}, 32)")
    );
}

/// A small tmpfs mounted for one test, unmounted on drop.
struct SmallDisk {
    dir: tempfile::TempDir,
}

impl SmallDisk {
    /// Mounts a tmpfs of `kib` KiB, or `None` where this process may not mount (not root, or
    /// a container without CAP_SYS_ADMIN).
    fn mount(kib: u64) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "tmpfs"])
            .arg(dir.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(Self { dir })
    }

    fn grow(&self, kib: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={kib}k")])
            .arg(self.dir.path())
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.dir.path()).status();
    }
}

#[test]
fn a_full_disk_fails_clearly_keeps_whole_shards_and_resumes() {
    let Some(disk) = SmallDisk::mount(3 * 1024) else {
        eprintln!("skipped: cannot mount a small tmpfs here (needs root); the full-disk path is unit-tested in engine::error");
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let input = many_prompts(tmp.path(), 400);
    let args = ["--hooks", "blocks.*.mlp.hook_post", "--shard-mib", "1"];
    let out = disk.dir.path().join("out");
    let full = extract(&input, &out, &args).output().unwrap();
    let stderr = String::from_utf8_lossy(&full.stderr);
    assert_eq!(full.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("disk is full"), "{stderr}");
    assert!(stderr.contains("--resume"), "{stderr}");
    let names: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.ends_with(".tmp")),
        "temporary files left: {names:?}"
    );
    let partial = load_output(&out);
    assert_eq!(partial.manifest["complete"], false);
    assert!(
        !partial.shard_files.is_empty(),
        "the shards that fit are kept"
    );

    // Space freed: --resume finishes, equal to a run that never hit the full disk.
    disk.grow(64 * 1024);
    let resumed = extract(&input, &out, &[&args[..], &["--resume"]].concat())
        .output()
        .unwrap();
    assert!(
        resumed.status.success(),
        "{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    let whole = tmp.path().join("whole");
    assert!(extract(&input, &whole, &args)
        .output()
        .unwrap()
        .status
        .success());
    let (a, b) = (load_output(&whole), load_output(&out));
    assert_eq!(b.manifest["complete"], true);
    assert_eq!(a.shard_files, b.shard_files);
    assert_eq!(a.ids, b.ids);
    assert_eq!(a.hooks, b.hooks);
}
