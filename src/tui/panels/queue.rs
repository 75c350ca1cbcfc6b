//! The job queue panel: one row per job with its state, model, analysis, device, a progress
//! bar with ETA, tokens/s and memory, or why it waits / why it failed.

use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::panel_block;
use crate::jobs::job::{Job, JobState};
use crate::tui::app::App;
use crate::tui::format;
use crate::tui::layout::Panel;
use crate::tui::theme::Level;

const WIDTHS: [Constraint; 8] = [
    Constraint::Length(5),
    Constraint::Length(11),
    Constraint::Length(14),
    Constraint::Length(11),
    Constraint::Length(7),
    Constraint::Length(17),
    Constraint::Length(9),
    Constraint::Fill(1),
];

const HEADINGS: [&str; 8] = [
    "ID", "STATE", "MODEL", "ANALYSIS", "DEVICE", "PROGRESS", "MEM", "INFO",
];

/// The colour of a state.
fn level(state: JobState) -> Level {
    match state {
        JobState::Running => Level::Good,
        JobState::Queued | JobState::Interrupted => Level::Normal,
        JobState::Succeeded | JobState::Cancelled => Level::Dim,
        JobState::Failed => Level::Critical,
    }
}

/// The last path component of a model folder, or the id as given.
fn short_model(model: &str) -> String {
    std::path::Path::new(model)
        .file_name()
        .map_or(model.to_string(), |n| n.to_string_lossy().into_owned())
}

fn eta(seconds: f64) -> String {
    let s = seconds.max(0.0) as u64;
    match s {
        0..=99 => format!("{s}s"),
        100..=5999 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// Running: ETA and tokens/s; queued: the wait reason; failed: the error; done: the output.
fn info(job: &Job) -> String {
    match job.state {
        JobState::Running => {
            let mut parts = Vec::new();
            if job.cancel_requested {
                parts.push("cancelling".to_string());
            }
            if let Some(s) = job.run.eta_seconds {
                parts.push(format!("ETA {}", eta(s)));
            }
            if job.run.tokens_per_second > 0.0 {
                parts.push(format!("{:.0} tok/s", job.run.tokens_per_second));
            }
            parts.join("  ")
        }
        JobState::Queued | JobState::Interrupted => job.wait_reason.clone().unwrap_or_default(),
        JobState::Failed => job.error.clone().unwrap_or_default(),
        JobState::Succeeded => job.output.clone(),
        JobState::Cancelled => String::new(),
    }
}

/// Draws the queue in `area`.
pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let queue = &app.queue;
    let running = queue
        .jobs
        .iter()
        .filter(|j| j.state == JobState::Running)
        .count();
    let queued = queue
        .jobs
        .iter()
        .filter(|j| j.state == JobState::Queued)
        .count();
    let title = Line::from(format!(" Jobs ({running} running, {queued} queued) "));
    let block = panel_block(app, Panel::Jobs, title);
    let header = Row::new(HEADINGS.map(|h| Cell::from(h).style(theme.label())));
    // Only the rows that can show are built: the queue may hold thousands of jobs.
    let visible = usize::from(area.height.saturating_sub(3)).max(1);
    let first = queue.offset.min(queue.jobs.len());
    let rows: Vec<Row> = queue.jobs[first..]
        .iter()
        .take(visible)
        .map(|j| {
            let mut bar = super::gauge_spans(app, j.progress * 100.0, 10);
            bar.push(Span::raw(format!(" {:>3.0}%", j.progress * 100.0)));
            let memory = j
                .run
                .peak_memory_bytes
                .or(j.estimate_bytes.map(|b| b.max(0) as u64));
            Row::new([
                Cell::from(j.id.to_string()),
                Cell::from(j.state.as_str()).style(theme.level(level(j.state))),
                Cell::from(short_model(&j.model)),
                Cell::from(j.analysis.clone()),
                Cell::from(j.placement.clone().unwrap_or_else(|| j.device.clone())),
                Cell::from(Line::from(bar)),
                Cell::from(format::opt_bytes(memory)),
                Cell::from(info(j)),
            ])
        })
        .collect();
    if rows.is_empty() {
        let text = match &queue.error {
            Some(why) => format!("job store unreadable: {why}"),
            None => "no jobs; `neuronmap submit` queues one".to_string(),
        };
        frame.render_widget(Table::new(rows, WIDTHS).header(header).block(block), area);
        let note = Rect::new(
            area.x + 1,
            area.y + 2,
            area.width.saturating_sub(2),
            area.height.saturating_sub(3).min(1),
        );
        frame.render_widget(
            Paragraph::new(Span::styled(text, theme.level(Level::Dim))),
            note,
        );
        return;
    }
    let table = Table::new(rows, WIDTHS)
        .header(header)
        .block(block)
        .row_highlight_style(theme.selection());
    let selected = queue
        .selected_index()
        .and_then(|i| i.checked_sub(first))
        .filter(|i| *i < visible);
    let mut state = TableState::new().with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}
