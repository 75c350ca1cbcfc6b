//! Rendering snapshots (TestBackend + insta) from the demo traces and synthetic frames, and
//! behaviour tests that drive [`App::update`] with the keys a user would press.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers, MouseButton, MouseEvent, MouseEventKind};
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::style::Color;
use ratatui::Terminal;

use super::app::{App, Effect, Input, Overlay, Signal, SourceInfo};
use super::layout::Panel;
use super::panels;
use super::process_table::{SortColumn, SortOrder};
use super::theme::{Theme, ThemeChoice};
use crate::config::{ThemeName, UiConfig};
use crate::telemetry::history::History;
use crate::telemetry::model::{DriverInfo, Frame, GpuHealth};
use crate::telemetry::sampler::SamplerEvent;
use crate::telemetry::trace::TraceReader;
use crate::telemetry::{synthetic, Origin};

const VIEWER_UID: u32 = 1000;

fn trace(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("assets/traces")
        .join(name)
}

fn trace_frames(name: &str) -> Vec<Frame> {
    let (_, frames) = TraceReader::open(&trace(name))
        .and_then(TraceReader::read_all)
        .expect("demo trace reads");
    frames
}

fn replay_origin(name: &str) -> Origin {
    Origin::Replay {
        path: trace(name),
        recorded_from: "synthetic".into(),
    }
}

fn theme(ascii: bool, color: bool) -> Theme {
    Theme::new(ThemeChoice {
        color,
        name: ThemeName::Dark,
        ascii,
    })
}

fn app_with(origin: Origin, ascii: bool, frames: impl IntoIterator<Item = Frame>) -> App {
    let source = SourceInfo {
        origin,
        interval_ms: 1000,
        speed: 1.0,
        looping: false,
    };
    let history = History::for_span(Duration::from_secs(600), Duration::from_secs(1));
    let mut app = App::new(
        source,
        theme(ascii, true),
        &UiConfig::default(),
        history,
        VIEWER_UID,
    );
    for frame in frames {
        app.update(Input::Sampler(SamplerEvent::Frame(Box::new(frame))));
    }
    app
}

fn render(app: &mut App, width: u16, height: u16) -> Buffer {
    app.update(Input::Resize(width, height));
    let mut terminal = Terminal::new(TestBackend::new(width, height)).expect("test terminal");
    terminal
        .draw(|frame| panels::draw(frame, app))
        .expect("draw");
    terminal.backend().buffer().clone()
}

fn text(buffer: &Buffer) -> String {
    let area = buffer.area;
    let mut out = String::new();
    for y in 0..area.height {
        let line: String = (0..area.width)
            .map(|x| buffer[(x, y)].symbol().to_string())
            .collect();
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

fn key(code: KeyCode) -> Input {
    Input::Key(KeyEvent::new(code, KeyModifiers::NONE))
}

fn press(app: &mut App, codes: &[KeyCode]) -> Vec<Effect> {
    codes.iter().filter_map(|c| app.update(key(*c))).collect()
}

fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        app.update(key(KeyCode::Char(c)));
    }
}

fn no_driver_frame() -> Frame {
    let mut frame = synthetic::frames(1, 1, 1000, 3).remove(0);
    frame.driver = DriverInfo::unavailable(
        "a libloading error occurred: libnvidia-ml.so.1: cannot open shared object file: No such file or directory",
    );
    frame.devices.clear();
    frame.gpus.clear();
    frame.host.processes.clear();
    frame
}

fn na_frame() -> Frame {
    let mut frame = synthetic::frames(1, 1, 1000, 3).remove(0);
    let gpu = &mut frame.gpus[0];
    gpu.temperature_celsius = None;
    gpu.power_draw_watts = None;
    gpu.fan_percent = None;
    gpu.sm_clock_mhz = None;
    gpu.graphics_clock_mhz = None;
    gpu.pcie_rx_bytes_per_second = None;
    gpu.pcie_tx_bytes_per_second = None;
    gpu.encoder_percent = None;
    gpu.decoder_percent = None;
    gpu.throttle_reasons = None;
    gpu.processes[0].gpu_memory_bytes = None;
    frame.devices[0].power_limit_watts = None;
    frame.host.processes[0].cpu_percent = None;
    frame
}

/// Frames of the 8-GPU demo trace up to the middle of the stretch where GPU 7 is lost.
fn frames_with_lost_gpu() -> Vec<Frame> {
    let frames = trace_frames("synthetic-8gpu.jsonl");
    let lost = frames
        .iter()
        .position(|f| matches!(f.gpus[7].health, GpuHealth::Lost { .. }))
        .expect("the demo trace loses GPU 7");
    frames.into_iter().take(lost + 3).collect()
}

// ---- snapshots -------------------------------------------------------------------------

#[test]
fn snapshot_one_gpu_80x24() {
    let frames = trace_frames("synthetic-1gpu.jsonl").into_iter().take(20);
    let mut app = app_with(replay_origin("synthetic-1gpu.jsonl"), false, frames);
    insta::assert_snapshot!(text(&render(&mut app, 80, 24)));
}

#[test]
fn snapshot_eight_gpus_80x24() {
    let frames = trace_frames("synthetic-8gpu.jsonl").into_iter().take(20);
    let mut app = app_with(replay_origin("synthetic-8gpu.jsonl"), false, frames);
    let screen = text(&render(&mut app, 80, 24));
    for i in 0..8 {
        assert!(
            screen.contains(&format!(" {i} H100")),
            "GPU {i} missing:\n{screen}"
        );
    }
    insta::assert_snapshot!(screen);
}

#[test]
fn snapshot_eight_gpus_200x60() {
    let frames = trace_frames("synthetic-8gpu.jsonl").into_iter().take(20);
    let mut app = app_with(replay_origin("synthetic-8gpu.jsonl"), false, frames);
    insta::assert_snapshot!(text(&render(&mut app, 200, 60)));
}

#[test]
fn snapshot_no_driver() {
    let mut app = app_with(Origin::Live, false, [no_driver_frame()]);
    let screen = text(&render(&mut app, 80, 24));
    assert!(
        screen.contains("No GPUs: a libloading error occurred"),
        "{screen}"
    );
    assert!(screen.contains("CPU"), "host panel still drawn:\n{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn snapshot_lost_gpu() {
    let mut app = app_with(
        replay_origin("synthetic-8gpu.jsonl"),
        false,
        frames_with_lost_gpu(),
    );
    let screen = text(&render(&mut app, 80, 24));
    assert!(screen.contains("LOST: GPU is lost (synthetic)"), "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn snapshot_lost_gpu_full_panel() {
    let mut app = app_with(
        replay_origin("synthetic-8gpu.jsonl"),
        false,
        frames_with_lost_gpu(),
    );
    let screen = text(&render(&mut app, 200, 60));
    assert!(
        screen.contains("LOST: the GPU stopped answering"),
        "{screen}"
    );
    insta::assert_snapshot!(screen);
}

#[test]
fn snapshot_na_fields() {
    let mut app = app_with(Origin::Live, false, [na_frame()]);
    let screen = text(&render(&mut app, 100, 30));
    assert!(screen.matches("N/A").count() >= 8, "{screen}");
    insta::assert_snapshot!(screen);
}

#[test]
fn snapshot_ascii_mode() {
    let frames = trace_frames("synthetic-8gpu.jsonl").into_iter().take(20);
    let mut app = app_with(replay_origin("synthetic-8gpu.jsonl"), true, frames);
    insta::assert_snapshot!(text(&render(&mut app, 200, 60)));
}

#[test]
fn snapshot_too_small() {
    let frames = trace_frames("synthetic-8gpu.jsonl").into_iter().take(2);
    let mut app = app_with(replay_origin("synthetic-8gpu.jsonl"), false, frames);
    let screen = text(&render(&mut app, 50, 10));
    assert!(
        screen.contains("terminal too small (have 50x10, need 60x16)"),
        "{screen}"
    );
    insta::assert_snapshot!(screen);
}

#[test]
fn snapshot_help_overlay() {
    let frames = trace_frames("synthetic-8gpu.jsonl").into_iter().take(2);
    let mut app = app_with(replay_origin("synthetic-8gpu.jsonl"), false, frames);
    press(&mut app, &[KeyCode::Char('?')]);
    insta::assert_snapshot!(text(&render(&mut app, 80, 24)));
}

// ---- rendering properties ----------------------------------------------------------------

#[test]
fn ascii_render_contains_only_ascii_at_every_size_and_overlay() {
    let frames = frames_with_lost_gpu();
    for (w, h) in [(80, 24), (120, 40), (200, 60), (60, 16), (30, 5)] {
        let mut app = app_with(replay_origin("synthetic-8gpu.jsonl"), true, frames.clone());
        for overlay in [None, Some('?')] {
            if let Some(c) = overlay {
                press(&mut app, &[KeyCode::Char(c)]);
            }
            let screen = text(&render(&mut app, w, h));
            let bad: Vec<char> = screen.chars().filter(|c| !c.is_ascii()).collect();
            assert!(bad.is_empty(), "{w}x{h}: non-ASCII {bad:?}\n{screen}");
        }
    }
}

#[test]
fn tiny_and_empty_terminals_do_not_panic() {
    let frames = trace_frames("synthetic-8gpu.jsonl").into_iter().take(2);
    let mut app = app_with(replay_origin("synthetic-8gpu.jsonl"), false, frames);
    for (w, h) in [(1, 1), (0, 0), (0, 5), (5, 0), (59, 15), (60, 16), (61, 16)] {
        render(&mut app, w, h);
    }
    let mut empty = app_with(Origin::Live, false, []);
    let screen = text(&render(&mut empty, 80, 24));
    assert!(screen.contains("waiting for the first sample"), "{screen}");
}

#[test]
fn without_colour_no_cell_has_a_colour() {
    let frames = frames_with_lost_gpu();
    let mut app = app_with(replay_origin("synthetic-8gpu.jsonl"), false, frames);
    app.theme = theme(false, false);
    let buffer = render(&mut app, 200, 60);
    for cell in buffer.content() {
        assert_eq!((cell.fg, cell.bg), (Color::Reset, Color::Reset), "{cell:?}");
    }
    let mut coloured = app.clone();
    coloured.theme = theme(false, true);
    let buffer = render(&mut coloured, 200, 60);
    assert!(buffer.content().iter().any(|c| c.fg != Color::Reset));
}

#[test]
fn resize_redraws_for_the_new_size() {
    let frames = trace_frames("synthetic-8gpu.jsonl").into_iter().take(5);
    let mut app = app_with(replay_origin("synthetic-8gpu.jsonl"), false, frames);
    let small = text(&render(&mut app, 80, 24));
    let large = text(&render(&mut app, 200, 60));
    assert!(!small.contains("GPU 3: NVIDIA"), "compact rows at 80x24");
    assert!(
        large.contains("GPU 3: NVIDIA H100 80GB HBM3"),
        "full panels at 200x60"
    );
}

// ---- behaviour -----------------------------------------------------------------------------

fn demo_app(origin: Origin) -> App {
    let frames = trace_frames("synthetic-8gpu.jsonl").into_iter().take(3);
    let mut app = app_with(origin, false, frames);
    app.update(Input::Resize(120, 40));
    app
}

#[test]
fn s_cycles_the_sort_column_and_r_flips_the_order() {
    let mut app = demo_app(Origin::Live);
    assert_eq!(app.sort.column, SortColumn::Gpu);
    // GPU -> PID -> USER -> TYPE -> GPU MEM
    press(&mut app, &[KeyCode::Char('s'); 4]);
    assert_eq!(app.sort.column, SortColumn::GpuMemory);
    let ascending: Vec<Option<u64>> = app.rows.iter().map(|r| r.gpu_memory_bytes).collect();
    assert!(ascending.windows(2).all(|w| w[0] <= w[1]), "{ascending:?}");
    press(&mut app, &[KeyCode::Char('r')]);
    assert_eq!(app.sort.order, SortOrder::Descending);
    let descending: Vec<Option<u64>> = app.rows.iter().map(|r| r.gpu_memory_bytes).collect();
    assert!(
        descending.windows(2).all(|w| w[0] >= w[1]),
        "{descending:?}"
    );
    let screen = text(&render(&mut app, 120, 40));
    assert!(screen.contains("GPU MEM▼"), "{screen}");
}

#[test]
fn slash_filters_processes_and_esc_clears_the_filter() {
    let mut app = demo_app(Origin::Live);
    let all = app.rows.len();
    press(&mut app, &[KeyCode::Char('/')]);
    type_text(&mut app, "carol");
    press(&mut app, &[KeyCode::Enter]);
    assert!(!app.rows.is_empty() && app.rows.len() < all);
    assert!(app.rows.iter().all(|r| r.user.as_deref() == Some("carol")));
    // Typed `q` went into the filter, not to quit; after Enter keys are commands again.
    assert!(!app.should_quit);
    let screen = text(&render(&mut app, 120, 40));
    assert!(screen.contains("filter: carol"), "{screen}");
    press(&mut app, &[KeyCode::Esc]);
    assert_eq!(app.rows.len(), all);
    assert!(app.filter.is_empty());
}

#[test]
fn filter_prompt_esc_clears_what_was_typed() {
    let mut app = demo_app(Origin::Live);
    let all = app.rows.len();
    press(&mut app, &[KeyCode::Char('/')]);
    type_text(&mut app, "gpu2");
    assert!(app.rows.iter().all(|r| r.gpu == 2));
    press(&mut app, &[KeyCode::Esc]);
    assert_eq!(app.rows.len(), all);
}

#[test]
fn kill_is_refused_in_replay_mode_even_for_own_processes() {
    let mut app = demo_app(replay_origin("synthetic-8gpu.jsonl"));
    // The first row (GPU 0) belongs to alice, uid 1000, the viewer.
    assert_eq!(app.selected_row().and_then(|r| r.uid), Some(VIEWER_UID));
    app.focus = Panel::Processes;
    let effects = press(&mut app, &[KeyCode::Char('k'), KeyCode::Char('y')]);
    assert!(effects.is_empty());
    assert_eq!(app.overlay, Overlay::None);
    let status = app.status.clone().expect("a refusal message").text;
    assert!(
        status.contains("refused") && status.contains("replay"),
        "{status}"
    );
    let screen = text(&render(&mut app, 120, 40));
    assert!(screen.contains("kill refused"), "{screen}");
}

#[test]
fn kill_is_refused_for_other_users_processes() {
    let mut app = demo_app(Origin::Live);
    app.focus = Panel::Processes;
    type_text(&mut app, "j");
    type_text(&mut app, "j");
    let row = app.selected_row().cloned().expect("a selected row");
    assert_ne!(row.uid, Some(VIEWER_UID), "{row:?}");
    let effects = press(&mut app, &[KeyCode::Char('k'), KeyCode::Char('y')]);
    assert!(effects.is_empty());
    let status = app.status.clone().expect("a refusal message").text;
    assert!(
        status.contains(&format!("pid {} belongs to", row.pid)),
        "{status}"
    );
}

#[test]
fn kill_own_process_asks_then_sends_sigterm_then_offers_sigkill() {
    let mut app = demo_app(Origin::Live);
    app.focus = Panel::Processes;
    let pid = app.selected_row().map(|r| r.pid).expect("a selected row");
    // Asking and cancelling sends nothing.
    assert!(press(&mut app, &[KeyCode::Char('k'), KeyCode::Char('n')]).is_empty());
    assert_eq!(app.overlay, Overlay::None);

    assert!(press(&mut app, &[KeyCode::Char('k')]).is_empty());
    assert!(matches!(&app.overlay, Overlay::ConfirmKill(r) if r.signal == Signal::Term));
    let screen = text(&render(&mut app, 120, 40));
    assert!(
        screen.contains(&format!("Send SIGTERM to pid {pid}?")),
        "{screen}"
    );
    let effects = press(&mut app, &[KeyCode::Char('y')]);
    let [Effect::SendSignal(request)] = effects.as_slice() else {
        panic!("expected one signal, got {effects:?}");
    };
    assert_eq!((request.pid, request.signal), (pid, Signal::Term));
    app.update(Input::Signalled {
        request: request.clone(),
        result: Ok(()),
    });

    press(&mut app, &[KeyCode::Char('k')]);
    assert!(matches!(&app.overlay, Overlay::ConfirmKill(r) if r.signal == Signal::Kill));
    let effects = press(&mut app, &[KeyCode::Char('y')]);
    assert!(
        matches!(effects.as_slice(), [Effect::SendSignal(r)] if r.signal == Signal::Kill && r.pid == pid)
    );
}

#[test]
fn tab_and_shift_tab_walk_the_focus_ring() {
    let mut app = demo_app(Origin::Live);
    assert_eq!(app.focus, Panel::Gpus);
    let mut seen = vec![app.focus];
    for _ in 0..Panel::RING.len() {
        press(&mut app, &[KeyCode::Tab]);
        seen.push(app.focus);
    }
    assert_eq!(
        seen,
        vec![
            Panel::Gpus,
            Panel::Processes,
            Panel::Host,
            Panel::Jobs,
            Panel::Gpus
        ]
    );
    press(&mut app, &[KeyCode::BackTab]);
    assert_eq!(app.focus, Panel::Jobs);
}

#[test]
fn vim_keys_move_the_gpu_selection_and_enter_filters_its_processes() {
    let mut app = demo_app(Origin::Live);
    press(
        &mut app,
        &[KeyCode::Char('j'), KeyCode::Char('j'), KeyCode::Char('k')],
    );
    assert_eq!(app.selected_gpu, 1);
    press(&mut app, &[KeyCode::Char('G')]);
    assert_eq!(app.selected_gpu, 7);
    press(&mut app, &[KeyCode::Char('g')]);
    assert_eq!(app.selected_gpu, 0);
    press(
        &mut app,
        &[KeyCode::Char('j'), KeyCode::Char('j'), KeyCode::Enter],
    );
    assert_eq!(app.focus, Panel::Processes);
    assert!(!app.rows.is_empty() && app.rows.iter().all(|r| r.gpu == 2));
}

#[test]
fn help_opens_with_question_mark_and_esc_closes_it_q_quits() {
    let mut app = demo_app(Origin::Live);
    press(&mut app, &[KeyCode::Char('?')]);
    assert_eq!(app.overlay, Overlay::Help);
    press(&mut app, &[KeyCode::Esc]);
    assert_eq!(app.overlay, Overlay::None);
    assert!(!app.should_quit);
    press(&mut app, &[KeyCode::Char('?'), KeyCode::Char('q')]);
    assert!(app.should_quit);
    let mut other = demo_app(Origin::Live);
    other.update(Input::Key(KeyEvent::new(
        KeyCode::Char('c'),
        KeyModifiers::CONTROL,
    )));
    assert!(other.should_quit);
}

#[test]
fn mouse_click_focuses_and_selects_a_process_and_wheel_scrolls() {
    let mut app = demo_app(Origin::Live);
    let super::layout::Screen::Dashboard(d) = app.screen() else {
        panic!("dashboard expected at 120x40");
    };
    let procs = d.area_of(Panel::Processes).expect("process table placed");
    let click = |row| {
        Input::Mouse(MouseEvent {
            kind: MouseEventKind::Down(MouseButton::Left),
            column: procs.x + 5,
            row,
            modifiers: KeyModifiers::NONE,
        })
    };
    // Border, heading, then rows 0, 1, 2: click the third row.
    app.update(click(procs.y + 4));
    assert_eq!(app.focus, Panel::Processes);
    assert_eq!(app.selected_row_index(), Some(2));
    app.update(Input::Mouse(MouseEvent {
        kind: MouseEventKind::ScrollDown,
        column: procs.x + 5,
        row: procs.y + 4,
        modifiers: KeyModifiers::NONE,
    }));
    assert_eq!(app.selected_row_index(), Some(3));
}

#[test]
fn replay_end_and_trace_failure_show_as_status_lines() {
    let mut app = demo_app(replay_origin("synthetic-8gpu.jsonl"));
    app.update(Input::Sampler(SamplerEvent::Ended));
    let screen = text(&render(&mut app, 120, 40));
    assert!(screen.contains("replay ended"), "{screen}");
    app.update(Input::Sampler(SamplerEvent::Failed(
        "trace x.jsonl line 7: bad JSON".into(),
    )));
    let screen = text(&render(&mut app, 120, 40));
    assert!(
        screen.contains("telemetry stopped: trace x.jsonl line 7"),
        "{screen}"
    );
    assert!(screen.contains("GPU"), "last frame stays on screen");
}

#[test]
fn selection_follows_the_process_when_the_sort_changes() {
    let mut app = demo_app(Origin::Live);
    app.focus = Panel::Processes;
    press(&mut app, &[KeyCode::Char('j'), KeyCode::Char('j')]);
    let pid = app.selected_row().map(|r| r.pid);
    press(&mut app, &[KeyCode::Char('r')]);
    assert_eq!(app.selected_row().map(|r| r.pid), pid);
}

#[test]
fn many_gpus_scroll_the_compact_band_to_keep_the_selection_visible() {
    let frames = synthetic::frames(16, 3, 1000, 5);
    let mut app = app_with(Origin::Live, false, frames);
    let top = text(&render(&mut app, 80, 24));
    assert!(top.contains(" 0 H100") && !top.contains("15 H100"), "{top}");
    press(&mut app, &[KeyCode::Char('G')]);
    let bottom = text(&render(&mut app, 80, 24));
    assert!(
        bottom.contains("15 H100") && !bottom.contains(" 0 H100"),
        "{bottom}"
    );
    assert!(bottom.contains("of 16"), "{bottom}");
}

#[test]
fn help_scrolls_on_the_smallest_terminal_so_every_key_can_be_read() {
    let frames = trace_frames("synthetic-8gpu.jsonl").into_iter().take(2);
    let mut app = app_with(replay_origin("synthetic-8gpu.jsonl"), false, frames);
    press(&mut app, &[KeyCode::Char('?')]);
    let first = text(&render(&mut app, 60, 16));
    assert!(
        first.contains("j/k scroll") && first.contains("q, Ctrl-C"),
        "{first}"
    );
    assert!(!first.contains("wheel scrolls"), "{first}");
    press(&mut app, &[KeyCode::Char('j'); 20]);
    let last = text(&render(&mut app, 60, 16));
    assert!(last.contains("wheel scrolls"), "{last}");
    assert_eq!(
        app.overlay,
        Overlay::Help,
        "j/k scroll, they do not close the help"
    );
}

#[test]
fn compact_rows_show_the_configured_fields() {
    let frames = trace_frames("synthetic-8gpu.jsonl").into_iter().take(2);
    let mut app = app_with(replay_origin("synthetic-8gpu.jsonl"), false, frames);
    let default = text(&render(&mut app, 80, 24));
    assert!(
        !default.contains("fan N/A") && !default.contains("MHz"),
        "{default}"
    );
    app.compact_fields = vec![
        crate::config::CompactField::Fan,
        crate::config::CompactField::Clock,
        crate::config::CompactField::Temp,
    ];
    let custom = text(&render(&mut app, 80, 24));
    assert!(
        custom.contains("fan N/A") && custom.contains("1755MHz"),
        "{custom}"
    );
    assert!(
        !custom.contains("2 proc"),
        "procs not configured:\n{custom}"
    );
}

/// A real job store in a temp folder: job 1 runs (worker pid 40000, one of the trace's GPU
/// processes) at 50 %, job 2 waits with a reason, job 3 failed.
fn job_store() -> (tempfile::TempDir, crate::jobs::store::Store) {
    use crate::engine::request::{Analysis, ExtractRequest, RunProgress};
    use crate::jobs::job::{DeviceRequest, Failure, JobState, Submission, Target};
    use crate::jobs::store::{Ending, Store, DB_FILE};
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join(DB_FILE)).unwrap();
    let submit = |store: &mut Store, out: &str| {
        store
            .submit(&Submission {
                request: ExtractRequest {
                    model: "/models/tiny-gpt2".into(),
                    input: "/data/p.txt".into(),
                    hooks: vec!["blocks.*.hook_resid_post".into()],
                    out: out.into(),
                    analysis: Analysis::Activations,
                    batch: 8,
                    max_len: None,
                    dtype: None,
                    device: "any".into(),
                    resume: false,
                },
                priority: 0,
                after: None,
                device: DeviceRequest::Any,
                held: false,
            })
            .unwrap()
    };
    let running = submit(&mut store, "/runs/a");
    let waiting = submit(&mut store, "/runs/b");
    let failed = submit(&mut store, "/runs/c");
    store.start(running, Target::Gpu(0), Some(4 << 30)).unwrap();
    store.set_worker(running, 40000, 1).unwrap();
    store
        .report_progress(
            running,
            &RunProgress {
                prompts_done: 50,
                prompts_total: 100,
                tokens_per_second: 1234.0,
                eta_seconds: Some(42.0),
                peak_memory_bytes: Some(3 << 30),
                ..RunProgress::default()
            },
        )
        .unwrap();
    store
        .set_wait_reason(waiting, Some("needs 18.4 GiB, cuda:0 has 11.0 GiB free"))
        .unwrap();
    store.start(failed, Target::Cpu, None).unwrap();
    store
        .finish(
            failed,
            &Ending {
                state: JobState::Failed,
                failure: Some(Failure::Signal { signal: 9 }),
                error: Some("worker killed by SIGKILL".into()),
                reason: "worker killed by SIGKILL".into(),
            },
        )
        .unwrap();
    (dir, store)
}

#[test]
fn the_queue_panel_shows_progress_wait_reasons_and_marks_job_processes() {
    use crate::jobs::client::JobFeedEvent;
    let (_dir, store) = job_store();
    let mut app = demo_app(Origin::Live);
    app.update(Input::JobFeed(JobFeedEvent::Jobs(
        store.list(false).unwrap(),
    )));
    let screen = text(&render(&mut app, 200, 50));
    assert!(screen.contains("Jobs (1 running, 1 queued)"), "{screen}");
    assert!(screen.contains("cuda:0"), "{screen}");
    assert!(screen.contains(" 50%"), "{screen}");
    assert!(screen.contains("ETA 42s  1234 tok/s"), "{screen}");
    assert!(
        screen.contains("needs 18.4 GiB, cuda:0 has 11.0 GiB free"),
        "{screen}"
    );
    assert!(screen.contains("worker killed by SIGKILL"), "{screen}");
    // The trace's pid 40000 is job 1's worker: the process table says so.
    assert!(screen.contains("[job 1] "), "{screen}");
}

#[test]
fn enter_on_a_job_opens_its_detail_and_c_and_shift_r_ask_to_cancel_and_retry() {
    use crate::jobs::client::{self, JobFeedEvent};
    use crate::jobs::job::JobId;
    let (dir, store) = job_store();
    let mut app = demo_app(Origin::Live);
    app.update(Input::JobFeed(JobFeedEvent::Jobs(
        store.list(false).unwrap(),
    )));
    press(&mut app, &[KeyCode::Tab, KeyCode::Tab, KeyCode::Tab]);
    assert_eq!(app.focus, Panel::Jobs);
    press(&mut app, &[KeyCode::Down]);
    assert_eq!(app.queue.selected, Some(JobId(2)));
    assert_eq!(
        press(&mut app, &[KeyCode::Enter]),
        vec![Effect::OpenJob(JobId(2))]
    );
    let detail = client::detail(&store, dir.path(), JobId(2), 5).unwrap();
    app.update(Input::JobDetail(Ok(Box::new(detail))));
    assert_eq!(app.overlay, Overlay::JobDetail);
    let screen = text(&render(&mut app, 120, 40));
    assert!(screen.contains("Job 2"), "{screen}");
    assert!(screen.contains("-> queued  submitted"), "{screen}");
    assert!(screen.contains("/runs/b"), "{screen}");
    assert_eq!(
        press(&mut app, &[KeyCode::Char('c')]),
        vec![Effect::CancelJob(JobId(2))]
    );
    assert_eq!(
        press(&mut app, &[KeyCode::Char('R')]),
        vec![Effect::RetryJob(JobId(2))]
    );
    press(&mut app, &[KeyCode::Esc]);
    assert_eq!(app.overlay, Overlay::None);
    // Quitting the dashboard is only a flag for the loop: no job is touched.
    press(&mut app, &[KeyCode::Char('q')]);
    assert!(app.should_quit);
    assert_eq!(store.list(false).unwrap().len(), 3);
}

#[test]
fn n_in_the_job_queue_opens_the_submit_form_and_enter_submits() {
    use crate::jobs::client::JobFeedEvent;
    use crate::jobs::job::DeviceRequest;
    let (dir, store) = job_store();
    let input = dir.path().join("p.txt");
    std::fs::write(&input, "hello world\n").unwrap();
    let mut app = demo_app(Origin::Live);
    app.update(Input::JobFeed(JobFeedEvent::Jobs(
        store.list(false).unwrap(),
    )));
    press(
        &mut app,
        &[KeyCode::Tab, KeyCode::Tab, KeyCode::Tab, KeyCode::Char('n')],
    );
    assert_eq!(app.overlay, Overlay::SubmitForm);
    let form = app.form.as_ref().unwrap();
    assert_eq!(
        form.values[0], "/models/tiny-gpt2",
        "the selected job's model"
    );
    let screen = text(&render(&mut app, 120, 40));
    assert!(screen.contains("Submit a job"), "{screen}");
    // The dataset field has the focus: type a path, then the output folder.
    type_text(&mut app, input.to_str().unwrap());
    press(&mut app, &[KeyCode::Tab]);
    type_text(&mut app, dir.path().join("out").to_str().unwrap());
    let effects = press(&mut app, &[KeyCode::Enter]);
    let [Effect::SubmitJob {
        submission,
        start_daemon: true,
    }] = effects.as_slice()
    else {
        panic!("{effects:?}");
    };
    assert_eq!(submission.device, DeviceRequest::Any);
    assert_eq!(submission.request.input, input);
    assert_eq!(app.overlay, Overlay::None);
}
