//! Overlays: the key list (`?`) and the kill confirmation.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Wrap};
use ratatui::Frame;

use crate::tui::app::{App, KillRequest};
use crate::tui::theme::Level;

/// Every key, as the help overlay and the README list them.
pub const KEYS: &[(&str, &str)] = &[
    ("q, Ctrl-C", "quit"),
    ("?, F1", "this help (j/k scroll it, Esc or ? closes it)"),
    ("Tab, Shift-Tab", "focus the next / previous panel"),
    (
        "Down/Up, j/k",
        "move the selection (k kills in the process table)",
    ),
    ("PgDn/PgUp", "move the selection by 10"),
    ("g/G, Home/End", "first / last"),
    (
        "Left/Right, h/l",
        "GPU grid: neighbour GPU; processes: sort column",
    ),
    ("Enter", "on a GPU: show only its processes"),
    ("s / S", "sort processes by the next / previous column"),
    ("r", "reverse the sort order"),
    ("/", "filter processes by user, command, pid or gpuN"),
    ("Esc", "clear the filter and message; close overlays"),
    ("k", "processes: SIGTERM the selected process (yours only)"),
    ("K", "the same from any panel; again on it: SIGKILL"),
    (
        "Enter",
        "jobs: the selected job's detail (spec, events, log)",
    ),
    ("c / R", "jobs and job detail: cancel / retry the job"),
    ("n", "jobs: submit a new job (form with a live verdict)"),
    (
        "m",
        "compatibility matrix: show / hide it (arrows move, / filters models)",
    ),
    (
        "Enter",
        "matrix: submit form for the cell (or the extract command)",
    ),
    ("mouse", "wheel scrolls, click focuses and selects"),
];

/// Lines of the help overlay: every key, then the colour note.
pub fn help_line_count() -> u16 {
    KEYS.len() as u16 + 1
}

/// A `width` x `height` rectangle in the middle of `area` (clipped to it).
pub fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let w = width.min(area.width);
    let h = height.min(area.height);
    Rect::new(
        area.x + (area.width - w) / 2,
        area.y + (area.height - h) / 2,
        w,
        h,
    )
}

/// The bordered block of an overlay.
pub fn overlay_block<'a>(app: &App, title: &'a str) -> Block<'a> {
    Block::bordered()
        .border_set(app.theme.border_set())
        .border_style(app.theme.focused_border())
        .title(Line::from(title).style(app.theme.focused_border()))
}

/// Draws the key list over the dashboard.
pub fn draw_help(frame: &mut Frame, area: Rect, app: &App) {
    let key_width = KEYS.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let mut lines: Vec<Line> = KEYS
        .iter()
        .map(|(key, what)| {
            Line::from(vec![
                Span::styled(format!("{key:<key_width$}  "), app.theme.label()),
                Span::raw(*what),
            ])
        })
        .collect();
    lines.push(Line::from(Span::styled(
        "Colours: NO_COLOR or --no-color; --ascii for plain characters",
        app.theme.level(Level::Dim),
    )));
    let total = lines.len() as u16;
    let rect = centered(area, 76, total + 2);
    let fits = rect.height >= total + 2;
    let (title, scroll) = if fits {
        (" Help: keys ", 0)
    } else {
        (" Help: keys (j/k scroll) ", app.help_scroll)
    };
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .scroll((scroll, 0))
            .block(overlay_block(app, title)),
        rect,
    );
}

/// Draws the "send this signal?" question.
pub fn draw_confirm(frame: &mut Frame, area: Rect, app: &App, request: &KillRequest) {
    let lines = vec![
        Line::from(Span::styled(
            format!("Send {} to pid {}?", request.signal.name(), request.pid),
            app.theme.level(Level::Warn),
        )),
        Line::from(request.command.clone()),
        Line::from(vec![
            Span::styled("y", app.theme.focused_border()),
            Span::raw(" send   "),
            Span::styled("n/Esc", app.theme.focused_border()),
            Span::raw(" cancel"),
        ]),
    ];
    let rect = centered(area, 60, 5);
    frame.render_widget(Clear, rect);
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(overlay_block(app, " Confirm ")),
        rect,
    );
}
