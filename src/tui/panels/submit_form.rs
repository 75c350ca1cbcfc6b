//! The submit form overlay: one line per field (the edited one highlighted, with a cursor),
//! then the verdict per device, or what is missing.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Clear, Paragraph, Wrap};
use ratatui::Frame;

use super::help::{centered, overlay_block};
use crate::tui::app::App;
use crate::tui::submit_form::FIELDS;
use crate::tui::theme::Level;

/// Draws `app.form` over the dashboard.
pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let Some(form) = &app.form else {
        return;
    };
    let theme = &app.theme;
    let mut lines = Vec::new();
    for (i, ((label, _), value)) in FIELDS.iter().zip(&form.values).enumerate() {
        let editing = i == form.focus;
        let value = if editing {
            format!("{value}_")
        } else {
            value.clone()
        };
        let style = if editing {
            theme.selection()
        } else {
            theme.level(Level::Normal)
        };
        lines.push(Line::from(vec![
            Span::styled(format!("{label:<10}"), theme.label()),
            Span::styled(value, style),
        ]));
    }
    lines.push(Line::from(""));
    match &form.problem {
        Some(problem) => lines.push(Line::from(Span::styled(
            problem.clone(),
            theme.level(Level::Warn),
        ))),
        None => {
            for v in &form.verdict {
                let level = if v.contains(": fits (") || v.contains(": tight (") {
                    Level::Good
                } else {
                    Level::Warn
                };
                lines.push(Line::from(Span::styled(v.clone(), theme.level(level))));
            }
        }
    }
    let height = (lines.len() as u16).saturating_add(2);
    let rect = centered(area, area.width.saturating_sub(4).min(90), height);
    frame.render_widget(Clear, rect);
    let paragraph = Paragraph::new(lines)
        .block(overlay_block(app, " Submit a job "))
        .wrap(Wrap { trim: false });
    frame.render_widget(paragraph, rect);
}
