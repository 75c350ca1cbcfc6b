//! The footer: the keys that matter in the current mode.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::tui::app::{App, InputMode, Overlay};
use crate::tui::layout::Panel;

/// Draws the key hints.
pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let hints: &[(&str, &str)] = match (&app.input_mode, &app.overlay) {
        (InputMode::Filter, _) => &[
            ("type", "filter"),
            ("Enter", "keep"),
            ("Esc", "clear"),
            ("Up/Down", "select"),
        ],
        (_, Overlay::ConfirmKill(_)) => &[("y", "send signal"), ("n/Esc", "cancel")],
        (_, Overlay::Help) => &[("Esc/?", "close help"), ("q", "quit")],
        (_, Overlay::SubmitForm) => &[
            ("type", "edit"),
            ("Tab/Up/Dn", "field"),
            ("Enter", "submit"),
            ("Esc", "close"),
        ],
        (_, Overlay::JobDetail) => &[
            ("Esc", "close"),
            ("c", "cancel"),
            ("R", "retry"),
            ("q", "quit"),
        ],
        (_, Overlay::None) if app.focus == Panel::Jobs => &[
            ("q", "quit"),
            ("?", "help"),
            ("Tab", "panel"),
            ("Up/Dn", "select"),
            ("Enter", "detail"),
            ("c", "cancel"),
            ("R", "retry"),
            ("n", "new job"),
        ],
        (_, Overlay::None) if app.focus == Panel::Processes => &[
            ("q", "quit"),
            ("?", "help"),
            ("Tab", "panel"),
            ("Up/Dn", "select"),
            ("s/r", "sort"),
            ("/", "filter"),
            ("k", "kill"),
        ],
        (_, Overlay::None) => &[
            ("q", "quit"),
            ("?", "help"),
            ("Tab", "panel"),
            ("j/k", "select"),
            ("s/r", "sort"),
            ("/", "filter"),
            ("K", "kill"),
        ],
    };
    let mut spans = Vec::with_capacity(hints.len() * 3);
    for (key, what) in hints {
        spans.push(Span::styled(format!(" {key}"), app.theme.focused_border()));
        spans.push(Span::raw(format!(" {what} ")));
    }
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}
