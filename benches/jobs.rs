//! Job-queue benchmarks, printed as tables:
//! - daemon CPU use and memory while 0, 1,000 and 10,000 jobs wait in the queue;
//! - submit-to-start latency: from the moment `submit` stored a job to the moment the daemon
//!   marked it running, with the daemon idle (needs the tiny GPT-2 fixture in tests/fixtures);
//! - the dashboard with 1,000 jobs: one job-feed read of the store, and the frame render time
//!   with the job queue panel on screen.
//!
//! Run with `cargo bench --bench jobs` (a release build gives the figures in the README).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use neuronmap::engine::request::{Analysis, ExtractRequest};
use neuronmap::jobs::job::{DeviceRequest, JobId, Submission};
use neuronmap::jobs::store::{Store, DB_FILE};

const EXE: &str = env!("CARGO_BIN_EXE_neuronmap");

fn main() {
    let measure = Duration::from_secs(
        std::env::var("BENCH_SECONDS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(20),
    );
    println!(
        "daemon with waiting jobs (no GPU: every job waits for cuda:0), {} s per row",
        measure.as_secs()
    );
    println!(
        "{:>8}  {:>10}  {:>12}  {:>10}",
        "queued", "CPU %", "first pass", "RSS MiB"
    );
    for n in [0usize, 1_000, 10_000] {
        let (cpu, first_pass, rss) = daemon_cpu(n, measure);
        println!(
            "{n:>8}  {cpu:>10.2}  {:>9.0} ms  {rss:>10.1}",
            first_pass.as_secs_f64() * 1000.0
        );
    }
    println!();
    submit_latency();
    println!();
    dashboard_with_jobs(1_000);
}

/// Frame render time with `n` jobs in the queue panel (8 synthetic GPUs), and the cost of the
/// job feed's read.
fn dashboard_with_jobs(n: usize) {
    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use neuronmap::config::{ThemeName, UiConfig};
    use neuronmap::jobs::client::JobFeedEvent;
    use neuronmap::jobs::job::Target;
    use neuronmap::telemetry::history::History;
    use neuronmap::telemetry::sampler::SamplerEvent;
    use neuronmap::telemetry::{synthetic, Origin};
    use neuronmap::tui::app::{App, Input, SourceInfo};
    use neuronmap::tui::panels;
    use neuronmap::tui::theme::{Theme, ThemeChoice};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    let dir = tempfile::tempdir().expect("temp dir");
    let input = dir.path().join("p.txt");
    let mut store = Store::open(&dir.path().join(DB_FILE)).expect("store");
    for i in 0..n {
        let out = dir.path().join(format!("o{i}"));
        let id = store
            .submit(&Submission {
                request: request(&out, "/models/llama", &input),
                priority: (i % 5) as i64,
                after: None,
                device: DeviceRequest::Any,
                held: false,
            })
            .expect("submit");
        if i % 100 == 0 {
            store
                .start(id, Target::Gpu((i / 100) as u32 % 8), Some(20 << 30))
                .expect("start");
        }
    }
    let reads = 50;
    let t = Instant::now();
    let mut jobs = Vec::new();
    for _ in 0..reads {
        jobs = store.list(false).expect("list");
    }
    let read = t.elapsed() / reads;

    let source = SourceInfo {
        origin: Origin::Live,
        interval_ms: 1000,
        speed: 1.0,
        looping: false,
    };
    let theme = Theme::new(ThemeChoice {
        color: true,
        name: ThemeName::Dark,
        ascii: false,
    });
    let history = History::for_span(Duration::from_secs(600), Duration::from_secs(1));
    let mut app = App::new(source, theme, &UiConfig::default(), history, 1000);
    for frame in synthetic::frames(8, 60, 1000, 3) {
        app.update(Input::Sampler(SamplerEvent::Frame(Box::new(frame))));
    }
    app.update(Input::JobFeed(JobFeedEvent::Jobs(jobs)));
    // Focus the job queue (Gpus -> Processes -> Host -> Jobs) so it is on screen at any size.
    for _ in 0..3 {
        app.update(Input::Key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE)));
    }
    println!("dashboard with {n} jobs (8 GPUs), job queue focused");
    println!("{:<28}  {:>9}  {:>9}  {:>9}", "", "mean", "p50", "p99");
    println!(
        "{:<28}  {:>7.2}ms  {:>9}  {:>9}",
        "job feed read (store.list)",
        read.as_secs_f64() * 1000.0,
        "",
        ""
    );
    for (w, h) in [(80u16, 24u16), (200, 60)] {
        app.update(Input::Resize(w, h));
        let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("test backend");
        let draws = 500;
        let mut times = Vec::with_capacity(draws);
        for _ in 0..draws {
            let t = Instant::now();
            let drawn = terminal.draw(|frame| panels::draw(frame, &app));
            times.push(t.elapsed());
            assert!(drawn.is_ok());
        }
        times.sort();
        let mean = times.iter().sum::<Duration>() / draws as u32;
        let pick = |q: f64| times[((draws as f64 * q) as usize).min(draws - 1)];
        println!(
            "{:<28}  {:>7.2}ms  {:>7.2}ms  {:>7.2}ms",
            format!("frame render {w}x{h}"),
            mean.as_secs_f64() * 1000.0,
            pick(0.5).as_secs_f64() * 1000.0,
            pick(0.99).as_secs_f64() * 1000.0
        );
    }
}

fn request(out: &Path, model: &str, input: &Path) -> ExtractRequest {
    ExtractRequest {
        model: model.into(),
        input: input.into(),
        hooks: vec!["blocks.*.hook_resid_post".into()],
        out: out.into(),
        analysis: Analysis::Activations,
        batch: 4,
        max_len: None,
        dtype: None,
        device: "cpu".into(),
        resume: false,
    }
}

struct Daemon {
    child: Child,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_daemon(state: &Path, config: &Path) -> Daemon {
    let child = Command::new(EXE)
        .arg("daemon")
        .env("NEURONMAP_STATE_DIR", state)
        .env("NEURONMAP_CONFIG", config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    Daemon { child }
}

fn write_config(dir: &Path) -> PathBuf {
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        "[jobs]\nauto_start_daemon = false\ncpu_cores_per_job = 1\n",
    )
    .expect("write config");
    path
}

/// CPU ticks (user + system) of a process.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    // After the name: state is field 3, utime 14, stime 15.
    let get = |i: usize| {
        f.get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    get(14) + get(15)
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

/// CPU % of one core over `measure`, time until every job had its wait reason, and RSS.
fn daemon_cpu(n: usize, measure: Duration) -> (f64, Duration, f64) {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let config = write_config(dir.path());
    let input = dir.path().join("p.txt");
    std::fs::write(&input, "hello\n").expect("input");
    let mut store = Store::open(&state.join(DB_FILE)).expect("store");
    for i in 0..n {
        let out = dir.path().join(format!("o{i}"));
        store
            .submit(&Submission {
                request: request(&out, "/models/none", &input),
                priority: (i % 7) as i64,
                after: None,
                device: DeviceRequest::Cuda(0),
                held: false,
            })
            .expect("submit");
    }
    let started = Instant::now();
    let daemon = start_daemon(&state, &config);
    let pid = daemon.child.id();
    // The first pass is done when the last job in queue order has its wait reason.
    let last = store
        .list(false)
        .ok()
        .and_then(|jobs| jobs.last().map(|j| j.id));
    let first_pass = loop {
        let done = match last {
            Some(id) => store
                .get(id)
                .map(|j| j.wait_reason.is_some())
                .unwrap_or(false),
            None => true,
        };
        if done || started.elapsed() > Duration::from_secs(120) {
            break started.elapsed();
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    std::thread::sleep(Duration::from_secs(2));
    let t0 = cpu_ticks(pid);
    std::thread::sleep(measure);
    let t1 = cpu_ticks(pid);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu = (t1 - t0) as f64 / hz / measure.as_secs_f64() * 100.0;
    let rss = rss_mib(pid);
    drop(daemon);
    (cpu, first_pass, rss)
}

fn submit_latency() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/gpt2");
    if !fixture.join("config.json").is_file() {
        println!(
            "submit-to-start latency: skipped ({} not found)",
            fixture.display()
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let config = write_config(dir.path());
    let input = dir.path().join("p.txt");
    std::fs::write(&input, "The quick brown fox\njumps over the lazy dog\n").expect("input");
    let _daemon = start_daemon(&state, &config);
    std::thread::sleep(Duration::from_secs(1));
    let store = Store::open(&state.join(DB_FILE)).expect("store");
    let mut latencies = Vec::new();
    let mut cli = Vec::new();
    for i in 0..20 {
        let out = dir.path().join(format!("out{i}"));
        let t = Instant::now();
        let status = Command::new(EXE)
            .args([
                "submit",
                "--device",
                "cpu",
                "--hooks",
                "blocks.*.hook_resid_post",
            ])
            .arg("--model")
            .arg(&fixture)
            .arg("--input")
            .arg(&input)
            .arg("--out")
            .arg(&out)
            .env("NEURONMAP_STATE_DIR", &state)
            .env("NEURONMAP_CONFIG", &config)
            .output()
            .expect("submit");
        cli.push(t.elapsed().as_secs_f64() * 1000.0);
        let id: i64 = String::from_utf8_lossy(&status.stdout)
            .trim()
            .parse()
            .unwrap_or(0);
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut recorded = false;
        while Instant::now() < deadline {
            if let Ok(job) = store.get(JobId(id)) {
                if let (false, Some(started)) = (recorded, job.started_ms) {
                    latencies.push((started - job.submitted_ms) as f64);
                    recorded = true;
                }
                // The next submit waits until this job is done, so the daemon is idle again.
                if job.state.is_finished() {
                    break;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let stats = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        let pick = |q: f64| {
            v.get(((v.len() as f64 - 1.0) * q).round() as usize)
                .copied()
                .unwrap_or(f64::NAN)
        };
        (pick(0.5), pick(0.9), v.last().copied().unwrap_or(f64::NAN))
    };
    println!("submit-to-start latency, 20 jobs one at a time, idle daemon (poll 100 ms)");
    println!(
        "{:<28}  {:>8}  {:>8}  {:>8}",
        "", "p50 ms", "p90 ms", "max ms"
    );
    let (a, b, c) = stats(&mut latencies);
    println!("{:<28}  {a:>8.0}  {b:>8.0}  {c:>8.0}", "stored -> running");
    let (a, b, c) = stats(&mut cli);
    println!(
        "{:<28}  {a:>8.0}  {b:>8.0}  {c:>8.0}",
        "`neuronmap submit` wall time"
    );
}
