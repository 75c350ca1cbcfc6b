//! The dashboard's state and the one place it changes: [`App::update`] takes an [`Input`]
//! (a key, a mouse event, a resize, a sampler message) and returns the side effect the event
//! loop must perform, if any. Drawing only reads this state.

use std::collections::HashMap;

use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use ratatui::layout::Rect;

use super::job_queue::JobQueueView;
use super::layout::{self, Content, Dashboard, GpuMode, Panel, Screen};
use super::process_table::{self, ProcessRow, RowKey, Sort};
use super::submit_form::{FormAction, SubmitForm};
use super::theme::{Level, Theme};
use crate::config::{CompactField, FocusPanel};
use crate::jobs::client::{JobDetail, JobFeedEvent};
use crate::jobs::job::{JobId, Submission};
use crate::telemetry::history::History;
use crate::telemetry::model::Frame;
use crate::telemetry::sampler::SamplerEvent;
use crate::telemetry::Origin;

/// A signal the dashboard can send to a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// SIGTERM: ask the process to exit.
    Term,
    /// SIGKILL: end it now (offered after a SIGTERM to the same process).
    Kill,
}

impl Signal {
    /// The signal's name, as `kill -l` spells it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Term => "SIGTERM",
            Self::Kill => "SIGKILL",
        }
    }

    /// The signal number for `kill(2)`.
    pub fn number(self) -> i32 {
        match self {
            Self::Term => libc::SIGTERM,
            Self::Kill => libc::SIGKILL,
        }
    }
}

/// A signal the user asked to send, waiting for confirmation or for the loop to send it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KillRequest {
    /// Target process.
    pub pid: u32,
    /// Its command line, shown in the confirmation.
    pub command: String,
    /// Which signal.
    pub signal: Signal,
}

/// A side effect [`App::update`] asks the event loop to perform.
#[derive(Debug, Clone, PartialEq)]
pub enum Effect {
    /// Send a signal (confirmed by the user, checked to be the viewer's own process).
    SendSignal(KillRequest),
    /// Load a job's detail (answered with [`Input::JobDetail`]).
    OpenJob(JobId),
    /// Cancel a job (answered with [`Input::JobActed`]).
    CancelJob(JobId),
    /// Queue a job again (answered with [`Input::JobActed`]).
    RetryJob(JobId),
    /// Store a new job from the submit form (answered with [`Input::JobActed`]).
    SubmitJob {
        /// The job.
        submission: Box<Submission>,
        /// Start a daemon if none runs (`jobs.auto_start_daemon`).
        start_daemon: bool,
    },
}

/// Everything that can change the state.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// A key press.
    Key(KeyEvent),
    /// A mouse event.
    Mouse(MouseEvent),
    /// The terminal's new size.
    Resize(u16, u16),
    /// A message from the sampler thread.
    Sampler(SamplerEvent),
    /// The result of an [`Effect::SendSignal`].
    Signalled {
        /// What was sent.
        request: KillRequest,
        /// `Err` with the OS's reason when sending failed.
        result: Result<(), String>,
    },
    /// A reading of the job queue.
    JobFeed(JobFeedEvent),
    /// The answer to [`Effect::OpenJob`].
    JobDetail(Result<Box<JobDetail>, String>),
    /// The answer to [`Effect::CancelJob`] or [`Effect::RetryJob`]: a message either way.
    JobActed(Result<String, String>),
}

/// A modal layer over the dashboard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overlay {
    /// Nothing.
    None,
    /// The key list.
    Help,
    /// "Send SIGTERM to pid ...? y/n".
    ConfirmKill(KillRequest),
    /// The detail of the job in [`JobQueueView::detail`].
    JobDetail,
    /// The submit form in [`App::form`].
    SubmitForm,
}

/// Whether keys go to the filter prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputMode {
    /// Keys are commands.
    Normal,
    /// Keys edit the process filter.
    Filter,
}

/// The state of the frame feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Feed {
    /// Waiting for, or receiving, frames.
    Running,
    /// The replay reached its end; the last frame stays on screen.
    Ended,
    /// The source broke; the text says why.
    Failed(String),
}

/// A one-line message for the user (results, refusals).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The message.
    pub text: String,
    /// How it is coloured.
    pub level: Level,
}

/// Where the frames come from and how they are paced, for the header.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// Live or a replayed file.
    pub origin: Origin,
    /// Configured sample interval (live pace).
    pub interval_ms: u64,
    /// Replay speed factor.
    pub speed: f64,
    /// Replay loops at the end.
    pub looping: bool,
}

/// The whole dashboard state.
#[derive(Debug, Clone)]
pub struct App {
    /// Source description for the header.
    pub source: SourceInfo,
    /// Styles and glyphs.
    pub theme: Theme,
    /// What compact GPU rows show.
    pub compact_fields: Vec<CompactField>,
    /// The newest frame.
    pub frame: Option<Frame>,
    /// Time between the last two frames, from their clocks.
    pub observed_interval_ms: Option<u64>,
    /// Utilisation and memory histories.
    pub history: History,
    /// State of the frame feed.
    pub feed: Feed,
    /// Panel with the keyboard focus.
    pub focus: Panel,
    /// Modal layer.
    pub overlay: Overlay,
    /// Whether keys edit the filter.
    pub input_mode: InputMode,
    /// Process filter text.
    pub filter: String,
    /// Process table order.
    pub sort: Sort,
    /// Process rows of the newest frame, sorted and filtered.
    pub rows: Vec<ProcessRow>,
    /// Selected process row.
    pub selected_process: Option<RowKey>,
    /// First process row shown.
    pub process_offset: usize,
    /// Selected GPU (position in the frame's list).
    pub selected_gpu: usize,
    /// First GPU shown when the band scrolls.
    pub gpu_offset: usize,
    /// Message line.
    pub status: Option<Status>,
    /// Terminal size.
    pub size: (u16, u16),
    /// uid of the person running the dashboard (whose processes may be signalled).
    pub viewer_uid: u32,
    /// Last signal sent to each pid, so asking again escalates to SIGKILL.
    pub signalled: HashMap<u32, Signal>,
    /// First line of the help overlay shown (it scrolls on small terminals).
    pub help_scroll: u16,
    /// The compatibility matrix panel.
    pub matrix: super::matrix::MatrixState,
    /// Set when the user asked to quit.
    pub should_quit: bool,
    /// The job queue panel's state.
    pub queue: JobQueueView,
    /// The submit form, while open.
    pub form: Option<SubmitForm>,
    /// Submitting from the dashboard starts a daemon when none runs (`jobs.auto_start_daemon`).
    pub auto_start_daemon: bool,
}

impl App {
    /// A dashboard with no frame yet.
    pub fn new(
        source: SourceInfo,
        theme: Theme,
        ui: &crate::config::UiConfig,
        history: History,
        viewer_uid: u32,
    ) -> Self {
        Self {
            source,
            theme,
            compact_fields: ui.compact_fields.clone(),
            frame: None,
            observed_interval_ms: None,
            history,
            feed: Feed::Running,
            focus: match ui.default_focus {
                FocusPanel::Gpus => Panel::Gpus,
                FocusPanel::Processes => Panel::Processes,
                FocusPanel::Host => Panel::Host,
            },
            overlay: Overlay::None,
            input_mode: InputMode::Normal,
            filter: String::new(),
            sort: Sort::default(),
            rows: Vec::new(),
            selected_process: None,
            process_offset: 0,
            selected_gpu: 0,
            gpu_offset: 0,
            status: None,
            size: (80, 24),
            viewer_uid,
            signalled: HashMap::new(),
            help_scroll: 0,
            matrix: super::matrix::MatrixState::new(
                &[],
                crate::estimate::device::Speed::NOT_MEASURED,
            ),
            should_quit: false,
            queue: JobQueueView::default(),
            form: None,
            auto_start_daemon: true,
        }
    }

    /// What the layout needs to know about the current frame.
    pub fn content(&self) -> Content {
        match &self.frame {
            Some(f) => Content {
                gpus: if f.driver.available { f.gpus.len() } else { 0 },
                cores: f.host.per_core_percent.len(),
                jobs: self.queue.jobs.len(),
                jobs_focused: self.focus == Panel::Jobs,
                matrix: self.matrix.shown,
            },
            None => Content {
                gpus: 0,
                cores: 0,
                jobs: self.queue.jobs.len(),
                jobs_focused: self.focus == Panel::Jobs,
                matrix: self.matrix.shown,
            },
        }
    }

    /// The layout of the current terminal size.
    pub fn screen(&self) -> Screen {
        layout::compute(Rect::new(0, 0, self.size.0, self.size.1), self.content())
    }

    fn dashboard(&self) -> Option<Dashboard> {
        match self.screen() {
            Screen::Dashboard(d) => Some(d),
            Screen::TooSmall { .. } => None,
        }
    }

    /// Position of the selected process in [`App::rows`].
    pub fn selected_row_index(&self) -> Option<usize> {
        let key = self.selected_process?;
        self.rows.iter().position(|r| r.key() == key)
    }

    /// The selected process row.
    pub fn selected_row(&self) -> Option<&ProcessRow> {
        self.selected_row_index().map(|i| &self.rows[i])
    }

    /// Applies one input; returns what the loop must do next, if anything.
    pub fn update(&mut self, input: Input) -> Option<Effect> {
        match input {
            Input::Key(key) if key.kind != KeyEventKind::Release => return self.on_key(key),
            Input::Key(_) => {}
            Input::Mouse(mouse) => self.on_mouse(mouse),
            Input::Resize(w, h) => {
                self.size = (w, h);
                self.keep_selection_visible();
            }
            Input::Sampler(event) => self.on_sampler(event),
            Input::Signalled { request, result } => self.on_signalled(request, result),
            Input::JobFeed(JobFeedEvent::Jobs(jobs)) => self.queue.set_jobs(jobs),
            Input::JobFeed(JobFeedEvent::Failed(why)) => self.queue.error = Some(why),
            Input::JobDetail(Ok(detail)) => {
                self.queue.detail = Some(*detail);
                self.overlay = Overlay::JobDetail;
            }
            Input::JobDetail(Err(why)) | Input::JobActed(Err(why)) => {
                self.set_status(why, Level::Warn)
            }
            Input::JobActed(Ok(message)) => self.set_status(message, Level::Good),
        }
        None
    }

    /// Opens the submit form with `model` filled in (from the job queue's `n`, or from any
    /// view that knows a model, such as a compatibility matrix cell).
    pub fn open_submit_form(&mut self, model: &str) {
        let mut form = SubmitForm::new(model);
        form.refresh(self.frame.as_ref());
        self.form = Some(form);
        self.overlay = Overlay::SubmitForm;
    }

    fn on_form_key(&mut self, code: KeyCode) -> Option<Effect> {
        let form = self.form.as_mut()?;
        match form.on_key(code, self.frame.as_ref()) {
            FormAction::None => None,
            FormAction::Close => {
                self.form = None;
                self.overlay = Overlay::None;
                None
            }
            FormAction::Submit(submission) => {
                self.form = None;
                self.overlay = Overlay::None;
                Some(Effect::SubmitJob {
                    submission,
                    start_daemon: self.auto_start_daemon,
                })
            }
        }
    }

    /// Keys of the job queue panel and the job detail view: Enter opens the detail, `c`
    /// cancels, `R` retries, `n` opens the submit form (with the selected job's model).
    fn on_job_key(&mut self, code: KeyCode) -> Option<Option<Effect>> {
        let in_detail = self.overlay == Overlay::JobDetail;
        let id = if in_detail {
            self.queue.detail.as_ref().map(|d| d.job.id)
        } else {
            self.queue.selected
        };
        match code {
            KeyCode::Enter if !in_detail => Some(id.map(Effect::OpenJob)),
            KeyCode::Char('c') => Some(id.map(Effect::CancelJob)),
            KeyCode::Char('R') => Some(id.map(Effect::RetryJob)),
            KeyCode::Char('n') if !in_detail => {
                let model = self
                    .queue
                    .selected_index()
                    .map(|i| self.queue.jobs[i].model.clone())
                    .unwrap_or_default();
                self.open_submit_form(&model);
                Some(None)
            }
            KeyCode::Esc | KeyCode::Enter if in_detail => {
                self.overlay = Overlay::None;
                self.queue.detail = None;
                Some(None)
            }
            _ => None,
        }
    }

    fn on_sampler(&mut self, event: SamplerEvent) {
        match event {
            SamplerEvent::Frame(frame) => {
                if let Some(prev) = &self.frame {
                    let gap = frame.timestamp_ms.saturating_sub(prev.timestamp_ms);
                    if gap > 0 {
                        self.observed_interval_ms = Some(gap);
                    }
                }
                self.history.record(&frame);
                self.matrix.refresh(&frame);
                self.frame = Some(*frame);
                self.refresh_rows();
            }
            SamplerEvent::Ended => self.feed = Feed::Ended,
            SamplerEvent::Failed(why) => self.feed = Feed::Failed(why),
        }
    }

    /// Rebuilds the process rows after the frame, the sort or the filter changed, keeping the
    /// selected process selected when it is still there.
    pub fn refresh_rows(&mut self) {
        let previous_index = self.selected_row_index();
        self.rows = match &self.frame {
            Some(f) => process_table::rows(f, self.sort, &self.filter),
            None => Vec::new(),
        };
        if self.selected_row_index().is_none() {
            let index = previous_index
                .unwrap_or(0)
                .min(self.rows.len().saturating_sub(1));
            self.selected_process = self.rows.get(index).map(ProcessRow::key);
        }
        let gpus = self.content().gpus;
        self.selected_gpu = self.selected_gpu.min(gpus.saturating_sub(1));
        self.keep_selection_visible();
    }

    fn set_status(&mut self, text: impl Into<String>, level: Level) {
        self.status = Some(Status {
            text: text.into(),
            level,
        });
    }

    fn on_key(&mut self, key: KeyEvent) -> Option<Effect> {
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && matches!(key.code, KeyCode::Char('c')) {
            self.should_quit = true;
            return None;
        }
        if self.input_mode == InputMode::Filter {
            self.on_filter_key(key);
            return None;
        }
        match self.overlay.clone() {
            Overlay::ConfirmKill(request) => return self.on_confirm_key(key, request),
            Overlay::Help => {
                match key.code {
                    KeyCode::Char('q') => self.should_quit = true,
                    KeyCode::Esc | KeyCode::Char('?') | KeyCode::Enter => {
                        self.overlay = Overlay::None
                    }
                    KeyCode::Down | KeyCode::Char('j') => {
                        self.help_scroll = self
                            .help_scroll
                            .saturating_add(1)
                            .min(self.max_help_scroll())
                    }
                    KeyCode::Up | KeyCode::Char('k') => {
                        self.help_scroll = self.help_scroll.saturating_sub(1)
                    }
                    _ => {}
                }
                return None;
            }
            Overlay::SubmitForm => return self.on_form_key(key.code),
            Overlay::JobDetail => {
                if key.code == KeyCode::Char('q') {
                    self.should_quit = true;
                }
                return self.on_job_key(key.code).flatten();
            }
            Overlay::None => {}
        }
        // Enter on a runnable matrix cell opens the submit form for it (the extract command
        // shown by the matrix itself is for cells the form cannot take).
        if self.matrix.shown && !self.matrix.filtering && key.code == KeyCode::Enter {
            if let Some((model, analysis, hooks)) = self.matrix.submit_defaults() {
                // The pane behind the form keeps the foreground equivalent on show.
                self.matrix.command = self.matrix.command_for_selection();
                let mut form = SubmitForm::for_cell(&model, analysis, &hooks);
                form.refresh(self.frame.as_ref());
                self.form = Some(form);
                self.overlay = Overlay::SubmitForm;
                return None;
            }
        }
        if self.matrix.shown && self.matrix.on_key(key) {
            if !self.matrix.shown {
                self.focus = Panel::Gpus;
            }
            return None;
        }
        if self.focus == Panel::Jobs {
            if let Some(effect) = self.on_job_key(key.code) {
                return effect;
            }
        }
        match key.code {
            KeyCode::Char('q') => self.should_quit = true,
            KeyCode::Char('m') => {
                self.matrix.shown = true;
                self.focus = Panel::Matrix;
            }
            KeyCode::Char('?') | KeyCode::F(1) => {
                self.overlay = Overlay::Help;
                self.help_scroll = 0;
            }
            KeyCode::Tab => self.focus = self.focus.next(),
            KeyCode::BackTab => self.focus = self.focus.previous(),
            KeyCode::Char('/') => {
                self.input_mode = InputMode::Filter;
                self.focus = Panel::Processes;
            }
            KeyCode::Esc => {
                if !self.filter.is_empty() {
                    self.filter.clear();
                    self.refresh_rows();
                }
                self.status = None;
            }
            KeyCode::Char('s') => self.set_sort(self.sort.column.next(), false),
            KeyCode::Char('S') => self.set_sort(self.sort.column.previous(), false),
            KeyCode::Char('r') => self.set_sort(self.sort.column, true),
            KeyCode::Char('K') => return self.request_kill(),
            KeyCode::Char('k') if self.focus == Panel::Processes => return self.request_kill(),
            KeyCode::Enter if self.focus == Panel::Gpus => self.filter_to_selected_gpu(),
            code => self.navigate(code),
        }
        None
    }

    fn on_filter_key(&mut self, key: KeyEvent) {
        match key.code {
            KeyCode::Esc => {
                self.filter.clear();
                self.input_mode = InputMode::Normal;
            }
            KeyCode::Enter => self.input_mode = InputMode::Normal,
            KeyCode::Backspace => {
                self.filter.pop();
            }
            KeyCode::Char(c) => self.filter.push(c),
            KeyCode::Up | KeyCode::Down => {
                self.navigate(key.code);
                return;
            }
            _ => return,
        }
        self.refresh_rows();
    }

    fn on_confirm_key(&mut self, key: KeyEvent, request: KillRequest) -> Option<Effect> {
        match key.code {
            KeyCode::Char('y') | KeyCode::Char('Y') | KeyCode::Enter => {
                self.overlay = Overlay::None;
                Some(Effect::SendSignal(request))
            }
            KeyCode::Char('n') | KeyCode::Char('N') | KeyCode::Esc => {
                self.overlay = Overlay::None;
                self.set_status(
                    format!("{} to pid {} cancelled", request.signal.name(), request.pid),
                    Level::Dim,
                );
                None
            }
            KeyCode::Char('q') => {
                self.should_quit = true;
                None
            }
            _ => None,
        }
    }

    fn set_sort(&mut self, column: process_table::SortColumn, flip: bool) {
        self.sort.column = column;
        if flip {
            self.sort.order = self.sort.order.flipped();
        }
        self.refresh_rows();
    }

    fn filter_to_selected_gpu(&mut self) {
        if let Some(gpu) = self
            .frame
            .as_ref()
            .and_then(|f| f.gpus.get(self.selected_gpu))
        {
            self.filter = format!("gpu{}", gpu.index);
            self.focus = Panel::Processes;
            self.refresh_rows();
        }
    }

    /// Starts the kill flow for the selected process: refuses in replay mode and for other
    /// users' processes, otherwise asks for confirmation (SIGTERM first, SIGKILL when the same
    /// process was already sent SIGTERM).
    fn request_kill(&mut self) -> Option<Effect> {
        let Some(row) = self.selected_row().cloned() else {
            self.set_status("no process selected", Level::Warn);
            return None;
        };
        if let Origin::Replay { .. } = self.source.origin {
            self.set_status(
                format!(
                    "kill refused: replay mode, pid {} is a recorded process, not one on this machine",
                    row.pid
                ),
                Level::Warn,
            );
            return None;
        }
        if row.uid != Some(self.viewer_uid) {
            let owner = row.user.clone().unwrap_or_else(|| "an unknown user".into());
            self.set_status(
                format!(
                    "kill refused: pid {} belongs to {owner}, not to you",
                    row.pid
                ),
                Level::Warn,
            );
            return None;
        }
        let signal = match self.signalled.get(&row.pid) {
            Some(Signal::Term) | Some(Signal::Kill) => Signal::Kill,
            None => Signal::Term,
        };
        self.overlay = Overlay::ConfirmKill(KillRequest {
            pid: row.pid,
            command: row.command,
            signal,
        });
        None
    }

    fn on_signalled(&mut self, request: KillRequest, result: Result<(), String>) {
        match result {
            Ok(()) => {
                self.signalled.insert(request.pid, request.signal);
                let hint = match request.signal {
                    Signal::Term => "; press k again to offer SIGKILL",
                    Signal::Kill => "",
                };
                self.set_status(
                    format!(
                        "sent {} to pid {}{hint}",
                        request.signal.name(),
                        request.pid
                    ),
                    Level::Good,
                );
            }
            Err(why) => self.set_status(
                format!(
                    "could not send {} to pid {}: {why}",
                    request.signal.name(),
                    request.pid
                ),
                Level::Critical,
            ),
        }
    }

    fn navigate(&mut self, code: KeyCode) {
        let step: isize = match code {
            KeyCode::Down | KeyCode::Char('j') => 1,
            KeyCode::Up | KeyCode::Char('k') => -1,
            KeyCode::PageDown => 10,
            KeyCode::PageUp => -10,
            KeyCode::Home | KeyCode::Char('g') => isize::MIN,
            KeyCode::End | KeyCode::Char('G') => isize::MAX,
            KeyCode::Left | KeyCode::Char('h') => {
                self.sideways(-1);
                return;
            }
            KeyCode::Right | KeyCode::Char('l') => {
                self.sideways(1);
                return;
            }
            _ => return,
        };
        self.move_selection(self.focus, step);
    }

    /// Left/right: neighbouring GPU in the grid, or the sort column in the process table.
    fn sideways(&mut self, step: isize) {
        match self.focus {
            Panel::Gpus => self.move_selection(Panel::Gpus, step),
            Panel::Processes => {
                let column = if step > 0 {
                    self.sort.column.next()
                } else {
                    self.sort.column.previous()
                };
                self.set_sort(column, false);
            }
            Panel::Host | Panel::Jobs | Panel::Matrix => {}
        }
    }

    fn move_selection(&mut self, panel: Panel, step: isize) {
        match panel {
            Panel::Gpus => {
                let count = self.content().gpus;
                let step = match (step, self.dashboard().map(|d| d.gpu_mode)) {
                    // Up/down in a grid moves by a whole row of panels.
                    (1 | -1, Some(GpuMode::Full { columns })) if self.focus == panel => {
                        step * columns as isize
                    }
                    _ => step,
                };
                self.selected_gpu = moved_index(self.selected_gpu, count, step);
            }
            Panel::Processes => {
                let current = self.selected_row_index().unwrap_or(0);
                let index = moved_index(current, self.rows.len(), step);
                self.selected_process = self.rows.get(index).map(ProcessRow::key);
            }
            Panel::Jobs => {
                let visible = self.visible_job_rows();
                self.queue.move_selection(step, visible);
            }
            Panel::Host | Panel::Matrix => {}
        }
        self.keep_selection_visible();
    }

    /// The help overlay scrolls no further than its last line at the bottom.
    fn max_help_scroll(&self) -> u16 {
        let lines = super::panels::help::help_line_count();
        let visible = self.size.1.min(lines + 2).saturating_sub(2);
        lines.saturating_sub(visible)
    }

    /// Rows of the process table that fit on screen.
    pub fn visible_process_rows(&self) -> usize {
        self.dashboard()
            .and_then(|d| d.area_of(Panel::Processes))
            .map_or(1, |a| usize::from(a.height.saturating_sub(3)).max(1))
    }

    /// Rows of the job queue that fit on screen.
    pub fn visible_job_rows(&self) -> usize {
        self.dashboard()
            .and_then(|d| d.area_of(Panel::Jobs))
            .map_or(1, |a| usize::from(a.height.saturating_sub(3)).max(1))
    }

    /// GPU rows that fit in the compact band.
    pub fn visible_gpu_rows(&self) -> usize {
        self.dashboard()
            .and_then(|d| d.area_of(Panel::Gpus))
            .map_or(1, |a| usize::from(a.height.saturating_sub(2)).max(1))
    }

    fn keep_selection_visible(&mut self) {
        let visible = self.visible_process_rows();
        if let Some(index) = self.selected_row_index() {
            self.process_offset = scrolled(self.process_offset, index, visible);
        }
        self.process_offset = self
            .process_offset
            .min(self.rows.len().saturating_sub(visible));
        let gpu_rows = self.visible_gpu_rows();
        self.gpu_offset = scrolled(self.gpu_offset, self.selected_gpu, gpu_rows)
            .min(self.content().gpus.saturating_sub(gpu_rows));
    }

    fn on_mouse(&mut self, mouse: MouseEvent) {
        let Some(dashboard) = self.dashboard() else {
            return;
        };
        if self.overlay != Overlay::None {
            return;
        }
        let Some(panel) = dashboard.panel_at(mouse.column, mouse.row) else {
            return;
        };
        match mouse.kind {
            MouseEventKind::ScrollDown => self.move_selection(panel, 1),
            MouseEventKind::ScrollUp => self.move_selection(panel, -1),
            MouseEventKind::Down(MouseButton::Left) => {
                self.focus = panel;
                if let Some(area) = dashboard.area_of(panel) {
                    self.click(panel, area, dashboard.gpu_mode, mouse.column, mouse.row);
                }
            }
            _ => {}
        }
    }

    /// Selects what was clicked inside `area`.
    fn click(&mut self, panel: Panel, area: Rect, mode: GpuMode, column: u16, row: u16) {
        match panel {
            Panel::Processes => {
                // Border, then the heading row.
                let Some(line) = row.checked_sub(area.y + 2) else {
                    return;
                };
                let index = self.process_offset + usize::from(line);
                if let Some(r) = self.rows.get(index) {
                    self.selected_process = Some(r.key());
                }
            }
            Panel::Gpus => {
                let count = self.content().gpus;
                let index = match mode {
                    GpuMode::Compact => row
                        .checked_sub(area.y + 1)
                        .map(|line| self.gpu_offset + usize::from(line)),
                    GpuMode::Full { columns } => {
                        let width = (area.width / columns).max(1);
                        let col = usize::from(((column - area.x) / width).min(columns - 1));
                        let grid_row = usize::from((row - area.y) / layout::FULL_GPU_HEIGHT);
                        Some(grid_row * usize::from(columns) + col)
                    }
                    GpuMode::Reason => None,
                };
                if let Some(i) = index.filter(|i| *i < count) {
                    self.selected_gpu = i;
                }
            }
            Panel::Jobs => {
                if let Some(line) = row.checked_sub(area.y + 2) {
                    let index = self.queue.offset + usize::from(line);
                    if let Some(job) = self.queue.jobs.get(index) {
                        self.queue.selected = Some(job.id);
                    }
                }
            }
            Panel::Host | Panel::Matrix => {}
        }
    }
}

/// `current` moved by `step` within `0..len` (saturating at both ends).
fn moved_index(current: usize, len: usize, step: isize) -> usize {
    if len == 0 {
        return 0;
    }
    let target = if step < 0 {
        current.saturating_sub(step.unsigned_abs())
    } else {
        current.saturating_add(step.unsigned_abs())
    };
    target.min(len - 1)
}

/// The smallest change of `offset` that keeps `index` among `visible` rows.
fn scrolled(offset: usize, index: usize, visible: usize) -> usize {
    if index < offset {
        index
    } else if index >= offset + visible {
        index + 1 - visible
    } else {
        offset
    }
}
