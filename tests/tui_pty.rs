//! End-to-end: the real `neuronmap` binary in a pseudo-terminal, replaying the 8-GPU demo
//! trace, read back through a vt100 emulator. Checks that the dashboard starts, answers keys,
//! follows resizes, exits 0 and leaves the terminal as it found it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use portable_pty::{native_pty_system, Child, CommandBuilder, MasterPty, PtySize};

/// Generous: CI runs this on two busy cores.
const TIMEOUT: Duration = Duration::from_secs(60);

struct Session {
    parser: Arc<Mutex<vt100::Parser>>,
    master: Box<dyn MasterPty + Send>,
    writer: Box<dyn Write + Send>,
    child: Box<dyn Child + Send + Sync>,
    reader: Option<thread::JoinHandle<()>>,
    _home: tempfile::TempDir,
}

fn size(cols: u16, rows: u16) -> PtySize {
    PtySize {
        rows,
        cols,
        pixel_width: 0,
        pixel_height: 0,
    }
}

fn demo_trace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/traces/synthetic-8gpu.jsonl")
}

impl Session {
    fn start(cols: u16, rows: u16, extra_args: &[&str]) -> Self {
        Self::start_with_env(cols, rows, extra_args, &[])
    }

    fn start_with_env(cols: u16, rows: u16, extra_args: &[&str], env: &[(&str, &str)]) -> Self {
        let home = tempfile::tempdir().expect("temp home");
        let pair = native_pty_system()
            .openpty(size(cols, rows))
            .expect("open a pty");
        let mut cmd = CommandBuilder::new(env!("CARGO_BIN_EXE_neuronmap"));
        cmd.arg("--replay");
        cmd.arg(demo_trace());
        cmd.arg("--loop");
        for arg in extra_args {
            cmd.arg(arg);
        }
        cmd.cwd(home.path());
        cmd.env("TERM", "xterm-256color");
        cmd.env("HOME", home.path());
        for var in [
            "XDG_CONFIG_HOME",
            "XDG_STATE_HOME",
            "XDG_DATA_HOME",
            "XDG_CACHE_HOME",
        ] {
            cmd.env(var, home.path().join(var.to_lowercase()));
        }
        cmd.env_remove("NEURONMAP_CONFIG");
        cmd.env_remove("NO_COLOR");
        for (key, value) in env {
            cmd.env(key, value);
        }
        let child = pair.slave.spawn_command(cmd).expect("spawn neuronmap");
        // Only the child holds the slave side now, so the reader sees EOF when it exits.
        drop(pair.slave);
        let parser = Arc::new(Mutex::new(vt100::Parser::new(rows, cols, 0)));
        let mut reader = pair.master.try_clone_reader().expect("pty reader");
        let sink = Arc::clone(&parser);
        let reader = thread::spawn(move || {
            let mut buf = [0u8; 8192];
            loop {
                match reader.read(&mut buf) {
                    Ok(0) | Err(_) => return,
                    Ok(n) => sink.lock().expect("parser lock").process(&buf[..n]),
                }
            }
        });
        let writer = pair.master.take_writer().expect("pty writer");
        Self {
            parser,
            master: pair.master,
            writer,
            child,
            reader: Some(reader),
            _home: home,
        }
    }

    fn contents(&self) -> String {
        self.parser.lock().expect("parser lock").screen().contents()
    }

    fn wait_for(&self, what: &str, done: impl Fn(&str) -> bool) -> String {
        let start = Instant::now();
        loop {
            let screen = self.contents();
            if done(&screen) {
                return screen;
            }
            assert!(
                start.elapsed() < TIMEOUT,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            thread::sleep(Duration::from_millis(50));
        }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.writer.write_all(bytes).expect("write to pty");
        self.writer.flush().expect("flush pty");
    }

    fn resize(&mut self, cols: u16, rows: u16) {
        self.parser
            .lock()
            .expect("parser lock")
            .screen_mut()
            .set_size(rows, cols);
        self.master.resize(size(cols, rows)).expect("resize pty");
    }

    /// Waits for the child to exit and the reader to drain; returns the exit status.
    fn finish(&mut self) -> portable_pty::ExitStatus {
        let start = Instant::now();
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait for neuronmap") {
                break status;
            }
            if start.elapsed() > TIMEOUT {
                let _ = self.child.kill();
                panic!("neuronmap did not exit; screen:\n{}", self.contents());
            }
            thread::sleep(Duration::from_millis(50));
        };
        if let Some(reader) = self.reader.take() {
            let _ = reader.join();
        }
        status
    }

    fn assert_terminal_restored(&self) {
        let parser = self.parser.lock().expect("parser lock");
        let screen = parser.screen();
        assert!(!screen.alternate_screen(), "still in the alternate screen");
        assert!(!screen.hide_cursor(), "cursor left hidden");
        assert_eq!(
            screen.mouse_protocol_mode(),
            vt100::MouseProtocolMode::None,
            "mouse reporting left on"
        );
    }
}

fn all_gpu_rows(screen: &str) -> bool {
    (0..8).all(|i| screen.contains(&format!("{i} H100 80GB")))
}

#[test]
fn dashboard_replays_answers_keys_survives_resizes_and_restores_the_terminal() {
    let mut s = Session::start(80, 24, &[]);
    let screen = s.wait_for("eight GPU rows", all_gpu_rows);
    assert!(screen.contains("REPLAY"), "{screen}");
    {
        let parser = s.parser.lock().expect("parser lock");
        assert!(parser.screen().alternate_screen());
        assert_ne!(
            parser.screen().mouse_protocol_mode(),
            vt100::MouseProtocolMode::None,
            "mouse reporting is on while the dashboard runs"
        );
    }

    s.send(b"?");
    s.wait_for("the help overlay", |t| t.contains("Help: keys"));
    s.send(b"\x1b");
    s.wait_for("the help overlay to close", |t| !t.contains("Help: keys"));

    // Taller: every process row and the full host panel fit.
    s.resize(120, 40);
    s.wait_for("the 120x40 layout", |t| {
        t.contains("40700") && t.contains("SWAP")
    });
    s.resize(80, 24);
    s.wait_for("the 80x24 layout again", |t| {
        !t.contains("SWAP") && t.contains("SWP") && all_gpu_rows(t)
    });

    s.send(b"q");
    let status = s.finish();
    assert!(status.success(), "exit status {status:?}");
    s.assert_terminal_restored();
}

/// Sends `signal` to the running dashboard and checks it exits 0 with the terminal restored.
fn signal_exits_cleanly_and_restores_the_terminal(signal: libc::c_int) {
    let mut s = Session::start(80, 24, &[]);
    s.wait_for("eight GPU rows", all_gpu_rows);
    let pid = s.child.process_id().expect("child pid");
    // SAFETY: kill(2) with a positive pid of our own child and a valid signal number.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signal) };
    assert_eq!(rc, 0);
    let status = s.finish();
    assert!(status.success(), "exit status {status:?}");
    s.assert_terminal_restored();
}

#[test]
fn sigterm_exits_cleanly_and_restores_the_terminal() {
    signal_exits_cleanly_and_restores_the_terminal(libc::SIGTERM);
}

#[test]
fn sighup_exits_cleanly_and_restores_the_terminal() {
    signal_exits_cleanly_and_restores_the_terminal(libc::SIGHUP);
}

#[test]
fn ascii_mode_and_no_color_draw_plain_ascii_in_a_real_terminal() {
    let mut s = Session::start_with_env(100, 30, &["--ascii"], &[("NO_COLOR", "1")]);
    let screen = s.wait_for("eight GPU rows", all_gpu_rows);
    let bad: Vec<char> = screen.chars().filter(|c| !c.is_ascii()).collect();
    assert!(bad.is_empty(), "non-ASCII {bad:?}:\n{screen}");
    {
        let parser = s.parser.lock().expect("parser lock");
        let vt = parser.screen();
        for row in 0..30 {
            for col in 0..100 {
                if let Some(cell) = vt.cell(row, col) {
                    assert_eq!(
                        (cell.fgcolor(), cell.bgcolor()),
                        (vt100::Color::Default, vt100::Color::Default),
                        "coloured cell at {row},{col} with NO_COLOR=1"
                    );
                }
            }
        }
    }
    s.send(b"q");
    assert!(s.finish().success());
}
