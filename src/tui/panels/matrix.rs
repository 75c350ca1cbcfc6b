//! The compatibility matrix: models x analyses, each cell coloured by the best verdict over the
//! devices and showing the estimated peak there; beside it, the selected cell's breakdown and
//! per-device verdicts (free memory of the newest frame); the `extract` command after Enter.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::panel_block;
use crate::estimate::{AnalysisKind, Verdict};
use crate::tui::app::App;
use crate::tui::format::{bytes_short, fit};
use crate::tui::layout::Panel;
use crate::tui::theme::Level;

/// Width of the model column.
const MODEL_WIDTH: usize = 24;
/// Width of one analysis column.
const CELL_WIDTH: usize = 11;
/// Width of the detail pane when there is room for it.
const DETAIL_WIDTH: u16 = 44;

/// How a verdict is coloured and abbreviated in a cell.
fn verdict_style(verdict: Verdict) -> (Level, &'static str) {
    match verdict {
        Verdict::Fits => (Level::Good, "ok"),
        Verdict::Tight => (Level::Warn, "tight"),
        Verdict::FitsWithFallback => (Level::Warn, "fb"),
        Verdict::DoesNotFit => (Level::Critical, "no"),
        Verdict::NotSupported => (Level::Dim, "n/s"),
    }
}

/// Draws the panel.
pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let m = &app.matrix;
    let title = if m.filtering || !m.filter.is_empty() {
        format!(
            " Matrix (batch {}, seq {}) /{} ",
            m.prepared.batch, m.prepared.seq, m.filter
        )
    } else {
        format!(
            " Matrix (batch {}, seq {}) ",
            m.prepared.batch, m.prepared.seq
        )
    };
    let block = panel_block(app, Panel::Matrix, Line::from(title));
    let inner = block.inner(area);
    frame.render_widget(block, area);
    let detail_width = if inner.width >= 110 { DETAIL_WIDTH } else { 0 };
    let table = Rect::new(inner.x, inner.y, inner.width - detail_width, inner.height);
    draw_table(frame, table, app);
    if detail_width > 0 {
        let pane = Rect::new(
            inner.right() - detail_width,
            inner.y,
            detail_width,
            inner.height,
        );
        draw_detail(frame, pane, app);
    }
}

fn draw_table(frame: &mut Frame, area: Rect, app: &App) {
    let m = &app.matrix;
    let mut lines = Vec::new();
    let mut head = vec![Span::styled(
        format!("{:<MODEL_WIDTH$}", "MODEL"),
        app.theme.label(),
    )];
    for a in AnalysisKind::ALL {
        head.push(Span::styled(
            format!("{:>CELL_WIDTH$}", fit(a.name(), CELL_WIDTH - 1)),
            app.theme.label(),
        ));
    }
    lines.push(Line::from(head));
    let visible = m.visible_rows();
    let room = usize::from(area.height.saturating_sub(2)).max(1);
    let offset = m.row.saturating_sub(room - 1);
    for (pos, &index) in visible.iter().enumerate().skip(offset).take(room) {
        let row = &m.prepared.rows[index];
        let marker = if row.entry.is_local() { "*" } else { " " };
        let mut spans = vec![Span::raw(format!(
            "{marker}{:<w$}",
            fit(&row.entry.id, MODEL_WIDTH - 2),
            w = MODEL_WIDTH - 1
        ))];
        for (col, cell) in m.plan.cells[index].iter().enumerate() {
            let (level, short) = verdict_style(cell.best);
            let text = match (cell.best, cell.peak_bytes) {
                (Verdict::NotSupported, _) | (_, None) => short.to_string(),
                (_, Some(peak)) => format!("{short} {}", bytes_short(peak)),
            };
            let mut style = app.theme.level(level);
            if pos == m.row && col == m.column {
                style = app.theme.selection();
            }
            spans.push(Span::styled(format!("{text:>CELL_WIDTH$}"), style));
        }
        lines.push(Line::from(spans));
    }
    let footer = match (&m.command, m.filtering) {
        (_, true) => format!("filter: {}_  (Enter keeps, Esc clears)", m.filter),
        (Some(cmd), _) => cmd.clone(),
        (None, _) => "* cached  ok/tight/fb(fallback)/no/n/s  arrows move, Enter: command, / filter, m: close".to_string(),
    };
    let body = Rect::new(area.x, area.y, area.width, area.height.saturating_sub(1));
    frame.render_widget(Paragraph::new(lines), body);
    if area.height > 1 {
        let last = Rect::new(area.x, area.bottom() - 1, area.width, 1);
        frame.render_widget(
            Paragraph::new(Span::styled(footer, app.theme.level(Level::Dim))),
            last,
        );
    }
}

fn draw_detail(frame: &mut Frame, area: Rect, app: &App) {
    let Some((row, cell)) = app.matrix.selected() else {
        frame.render_widget(Paragraph::new("no model matches the filter"), area);
        return;
    };
    let mut lines = vec![
        Line::from(Span::styled(
            fit(&row.entry.id, area.width as usize),
            app.theme.label(),
        )),
        Line::from(format!("{} analysis", cell.analysis.name())),
    ];
    if let Some(best) = cell
        .devices
        .iter()
        .find(|d| Some(d.device) == cell.best_device)
    {
        lines.push(Line::from(format!(
            "on {} ({}):",
            best.device.label(),
            best.estimate.dtype.name()
        )));
        for (label, bytes) in best.estimate.breakdown.items() {
            lines.push(Line::from(format!(" {label:<27}{:>8}", bytes_short(bytes))));
        }
        lines.push(Line::from(format!(
            " {:<27}{:>8}",
            "estimated peak",
            bytes_short(best.estimate.peak_bytes)
        )));
    }
    for d in &cell.devices {
        let (level, _) = verdict_style(d.verdict);
        let extra = match (&d.fallback, &d.reason) {
            (Some(f), _) => format!(": {}", f.description),
            (None, Some(r)) => format!(": {r}"),
            _ => String::new(),
        };
        lines.push(Line::from(Span::styled(
            format!(
                "{:<7}{} {}/{}{extra}",
                d.device.label(),
                d.verdict.name(),
                bytes_short(d.estimate.peak_bytes),
                bytes_short(d.free_bytes)
            ),
            app.theme.level(level),
        )));
    }
    frame.render_widget(Paragraph::new(lines).wrap(Wrap { trim: true }), area);
}
