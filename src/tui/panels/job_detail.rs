//! The job detail view (an overlay): the spec, where it runs, progress, every state change
//! with its reason, the last log lines and the output folder.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::help::{centered, overlay_block};
use crate::tui::app::App;
use crate::tui::format;
use crate::tui::theme::Level;

/// Draws the detail of `app.queue.detail` over the dashboard.
pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let Some(detail) = &app.queue.detail else {
        return;
    };
    let theme = &app.theme;
    let job = &detail.job;
    let field = |k: &str, v: String| {
        Line::from(vec![
            Span::styled(format!("{k:<10}"), theme.label()),
            Span::raw(v),
        ])
    };
    let mut lines = vec![
        field("state", job.state.to_string()),
        field("model", job.model.clone()),
        field(
            "analysis",
            format!("{} (batch {})", job.analysis, job.spec.batch),
        ),
        field("input", job.spec.input.display().to_string()),
        field("hooks", job.spec.hooks.join(", ")),
        field("output", job.output.clone()),
        field(
            "device",
            match &job.placement {
                Some(p) => format!("{p} (asked: {})", job.device),
                None => job.device.clone(),
            },
        ),
        field(
            "progress",
            format!(
                "{:.0}%  {}/{} prompts  {} shards  {:.0} tok/s",
                job.progress * 100.0,
                job.run.prompts_done,
                job.run.prompts_total,
                job.run.shards_done,
                job.run.tokens_per_second
            ),
        ),
        field(
            "memory",
            format!(
                "peak {}  estimate {}",
                format::opt_bytes(job.run.peak_memory_bytes),
                format::opt_bytes(job.estimate_bytes.map(|b| b.max(0) as u64))
            ),
        ),
    ];
    if let Some(reason) = &job.wait_reason {
        lines.push(field("waits", reason.clone()));
    }
    if let Some(error) = &job.error {
        lines.push(Line::from(vec![
            Span::styled(format!("{:<10}", "error"), theme.label()),
            Span::styled(error.clone(), theme.level(Level::Critical)),
        ]));
    }
    lines.push(Line::from(Span::styled("events", theme.label())));
    for e in &detail.events {
        let from = e.from.map_or("-".to_string(), |s| s.to_string());
        lines.push(Line::from(format!(
            "  {}  {from} -> {}  {}",
            format::utc_clock(e.at_ms.max(0) as u64),
            e.to,
            e.reason
        )));
    }
    lines.push(Line::from(Span::styled(
        format!("log ({})", detail.log_path.display()),
        theme.label(),
    )));
    for l in &detail.log_tail {
        lines.push(Line::from(Span::styled(
            format!("  {l}"),
            theme.level(Level::Dim),
        )));
    }
    let height = (lines.len() as u16).saturating_add(2);
    let rect = centered(area, area.width.saturating_sub(4).min(110), height);
    frame.render_widget(Clear, rect);
    let title = format!(" Job {} ", job.id);
    let paragraph = Paragraph::new(lines)
        .block(overlay_block(app, &title))
        .wrap(Wrap { trim: false });
    frame.render_widget(paragraph, rect);
}
