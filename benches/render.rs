//! Frame render time of the dashboard: mean, p50 and p99 over many draws into a TestBackend,
//! at 80x24 and 200x60, with 8 GPUs and 100 processes. Prints a table; run with
//! `cargo bench --bench render`.

use std::hint::black_box;
use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
use neuronmap::config::{ThemeName, UiConfig};
use neuronmap::telemetry::history::History;
use neuronmap::telemetry::model::{Frame, GpuProcess, HostProcess, ProcessKind};
use neuronmap::telemetry::sampler::SamplerEvent;
use neuronmap::telemetry::{synthetic, Origin};
use neuronmap::tui::app::{App, Input, SourceInfo};
use neuronmap::tui::panels;
use neuronmap::tui::theme::{Theme, ThemeChoice};
use ratatui::backend::TestBackend;
use ratatui::Terminal;

const PROCESSES: usize = 100;

/// The synthetic 8-GPU frames, topped up to 100 GPU processes in the newest one.
fn frames() -> Vec<Frame> {
    let mut frames = synthetic::frames(8, 600, 1000, 11);
    if let Some(last) = frames.last_mut() {
        let have: usize = last.gpus.iter().map(|g| g.processes.len()).sum();
        for i in 0..PROCESSES.saturating_sub(have) {
            let pid = 60_000 + i as u32;
            let gpu = i % last.gpus.len();
            last.gpus[gpu].processes.push(GpuProcess {
                pid,
                kind: ProcessKind::Compute,
                gpu_memory_bytes: Some(((i as u64 + 1) * 64) << 20),
            });
            last.host.processes.push(HostProcess {
                pid,
                user: Some(format!("user{}", i % 7)),
                uid: Some(1000 + (i % 7) as u32),
                command: format!("python extract.py --shard {i} --model meta-llama/Llama-3.2-1B"),
                cpu_percent: Some((i % 100) as f32),
                rss_bytes: Some((i as u64 + 1) << 28),
            });
        }
    }
    frames
}

fn app(ascii: bool) -> App {
    let source = SourceInfo {
        origin: Origin::Live,
        interval_ms: 1000,
        speed: 1.0,
        looping: false,
    };
    let theme = Theme::new(ThemeChoice {
        color: true,
        name: ThemeName::Dark,
        ascii,
    });
    let history = History::for_span(Duration::from_secs(600), Duration::from_secs(1));
    let mut app = App::new(source, theme, &UiConfig::default(), history, 1000);
    for frame in frames() {
        app.update(Input::Sampler(SamplerEvent::Frame(Box::new(frame))));
    }
    app
}

struct Stats {
    mean: Duration,
    p50: Duration,
    p99: Duration,
}

fn measure(app: &mut App, width: u16, height: u16, draws: usize) -> Stats {
    app.update(Input::Resize(width, height));
    // Focus the process table so the selection highlight is drawn too.
    app.update(Input::Key(KeyEvent::new(KeyCode::Tab, KeyModifiers::NONE)));
    let mut terminal = match Terminal::new(TestBackend::new(width, height)) {
        Ok(t) => t,
        Err(e) => panic!("test backend: {e}"),
    };
    let mut times = Vec::with_capacity(draws);
    for _ in 0..draws {
        let start = Instant::now();
        let drawn = terminal.draw(|frame| panels::draw(frame, black_box(app)));
        times.push(start.elapsed());
        black_box(drawn.is_ok());
    }
    times.sort();
    let mean = times.iter().sum::<Duration>() / draws as u32;
    let pick = |q: f64| times[((draws as f64 * q) as usize).min(draws - 1)];
    Stats {
        mean,
        p50: pick(0.50),
        p99: pick(0.99),
    }
}

fn main() {
    let draws = 2000;
    println!("dashboard frame render time, 8 GPUs, {PROCESSES} processes, {draws} draws each");
    println!(
        "{:<10} {:<8} {:>10} {:>10} {:>10}",
        "size", "glyphs", "mean", "p50", "p99"
    );
    for (width, height) in [(80u16, 24u16), (200, 60)] {
        for ascii in [false, true] {
            let mut app = app(ascii);
            let s = measure(&mut app, width, height, draws);
            println!(
                "{:<10} {:<8} {:>8.1}us {:>8.1}us {:>8.1}us",
                format!("{width}x{height}"),
                if ascii { "ascii" } else { "unicode" },
                s.mean.as_secs_f64() * 1e6,
                s.p50.as_secs_f64() * 1e6,
                s.p99.as_secs_f64() * 1e6
            );
        }
    }
}
