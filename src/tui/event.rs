//! The event loop: one `tokio::select!` over terminal events, sampler messages, a render tick
//! and SIGTERM/SIGHUP/SIGINT. Terminal input is drawn at once; frames mark the screen dirty and the
//! tick draws, so a burst of frames (a fast replay) costs one draw, not one per frame.

use std::io::stdout;
use std::time::Duration;

use crossterm::cursor::Show;
use crossterm::event::{DisableMouseCapture, EnableMouseCapture, Event, EventStream};
use crossterm::execute;
use futures_util::StreamExt;
use ratatui::DefaultTerminal;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc::Receiver;

use super::app::{App, Effect, Input, KillRequest};
use super::panels;
use super::TuiError;
use crate::jobs::client::{self, JobFeedEvent};
use crate::jobs::daemon::{running_daemon, spawn_detached};
use crate::jobs::job::Submission;
use crate::jobs::store::Store;
use crate::telemetry::sampler::SamplerEvent;

/// Shortest time between two draws caused by frames.
const RENDER_TICK: Duration = Duration::from_millis(50);

/// The terminal in dashboard mode (raw, alternate screen, mouse reporting on). Dropping it,
/// or a panic, puts the terminal back: mouse reporting off, main screen, cursor visible.
struct TerminalSession {
    terminal: DefaultTerminal,
}

impl TerminalSession {
    fn enter() -> Result<Self, TuiError> {
        // Installed before ratatui's hook, so on a panic ratatui leaves raw mode and the
        // alternate screen first, then this turns mouse reporting off and shows the cursor.
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let _ = execute!(stdout(), DisableMouseCapture, Show);
            previous(info);
        }));
        let terminal = ratatui::try_init().map_err(TuiError::Terminal)?;
        let session = Self { terminal };
        execute!(stdout(), EnableMouseCapture).map_err(TuiError::Terminal)?;
        Ok(session)
    }
}

impl Drop for TerminalSession {
    fn drop(&mut self) {
        let _ = execute!(stdout(), DisableMouseCapture);
        ratatui::restore();
        let _ = execute!(stdout(), Show);
    }
}

/// Sends a confirmed signal; the error text is the OS's reason.
fn send_signal(request: &KillRequest) -> Result<(), String> {
    let pid = libc::pid_t::try_from(request.pid)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{} is not a valid process id", request.pid))?;
    // SAFETY: kill(2) takes plain integers and touches no memory of ours; `pid` is positive,
    // so it names one process, never a process group.
    let rc = unsafe { libc::kill(pid, request.signal.number()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

/// Performs an effect and returns the input that reports its result. Job actions open the
/// store for the moment they need it; they are single-row reads and writes.
fn perform(effect: Effect) -> Input {
    match effect {
        Effect::SendSignal(request) => {
            let result = send_signal(&request);
            Input::Signalled { request, result }
        }
        Effect::OpenJob(id) => Input::JobDetail(
            Store::open_default()
                .and_then(|store| {
                    let dir = crate::paths::state_dir()?;
                    client::detail(&store, &dir, id, 12)
                })
                .map(Box::new)
                .map_err(|e| e.to_string()),
        ),
        Effect::CancelJob(id) => Input::JobActed(
            Store::open_default()
                .and_then(|mut store| client::cancel(&mut store, id))
                .map_err(|e| e.to_string()),
        ),
        Effect::RetryJob(id) => Input::JobActed(
            Store::open_default()
                .and_then(|mut store| client::retry(&mut store, id))
                .map_err(|e| e.to_string()),
        ),
        Effect::SubmitJob {
            submission,
            start_daemon,
        } => Input::JobActed(submit(&submission, start_daemon)),
    }
}

/// Stores a job from the submit form and starts a daemon when asked and none runs.
fn submit(submission: &Submission, start_daemon: bool) -> Result<String, String> {
    let id = Store::open_default()
        .and_then(|mut store| store.submit(submission))
        .map_err(|e| e.to_string())?;
    if start_daemon {
        let dir = crate::paths::state_dir().map_err(|e| e.to_string())?;
        if running_daemon(&dir).map_err(|e| e.to_string())?.is_none() {
            let exe = std::env::current_exe().map_err(|e| e.to_string())?;
            spawn_detached(&dir, &exe, &[])
                .map_err(|e| format!("job {id} queued, but the daemon did not start: {e}"))?;
        }
    }
    Ok(format!("job {id} queued"))
}

fn draw(session: &mut TerminalSession, app: &App) -> Result<(), TuiError> {
    session
        .terminal
        .draw(|frame| panels::draw(frame, app))
        .map(|_| ())
        .map_err(TuiError::Terminal)
}

/// Runs the dashboard until `q`, Ctrl-C, SIGTERM or SIGHUP. Quitting never touches a job.
pub async fn run_loop(
    mut app: App,
    mut frames: Receiver<SamplerEvent>,
    mut jobs: Receiver<JobFeedEvent>,
) -> Result<(), TuiError> {
    let mut terminate = signal(SignalKind::terminate()).map_err(TuiError::Signal)?;
    let mut hangup = signal(SignalKind::hangup()).map_err(TuiError::Signal)?;
    // Raw mode turns Ctrl-C into a key, but `kill -INT` from elsewhere still arrives here.
    let mut interrupt = signal(SignalKind::interrupt()).map_err(TuiError::Signal)?;
    let mut session = TerminalSession::enter()?;
    let size = session.terminal.size().map_err(TuiError::Terminal)?;
    app.update(Input::Resize(size.width, size.height));
    draw(&mut session, &app)?;

    let mut events = EventStream::new();
    let mut tick = tokio::time::interval(RENDER_TICK);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut dirty = false;
    let mut sampler_open = true;
    let mut jobs_open = true;
    loop {
        tokio::select! {
            event = events.next() => {
                let input = match event {
                    Some(Ok(Event::Key(key))) => Input::Key(key),
                    Some(Ok(Event::Mouse(mouse))) => Input::Mouse(mouse),
                    Some(Ok(Event::Resize(w, h))) => Input::Resize(w, h),
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => return Err(TuiError::Terminal(e)),
                    None => break,
                };
                if let Some(effect) = app.update(input) {
                    app.update(perform(effect));
                }
                if app.should_quit {
                    break;
                }
                draw(&mut session, &app)?;
                dirty = false;
            }
            message = frames.recv(), if sampler_open => match message {
                Some(event) => {
                    app.update(Input::Sampler(event));
                    dirty = true;
                }
                None => sampler_open = false,
            },
            message = jobs.recv(), if jobs_open => match message {
                Some(event) => {
                    app.update(Input::JobFeed(event));
                    dirty = true;
                }
                None => jobs_open = false,
            },
            _ = tick.tick(), if dirty => {
                draw(&mut session, &app)?;
                dirty = false;
            }
            _ = terminate.recv() => break,
            _ = hangup.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    Ok(())
}
