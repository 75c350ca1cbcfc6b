//! The host panel: CPU (total, and per core when there is room), RAM, swap, load, uptime.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use super::{gauge_spans, panel_block};
use crate::telemetry::model::HostSample;
use crate::tui::app::App;
use crate::tui::format;
use crate::tui::layout::{Panel, CORE_CELL_WIDTH};
use crate::tui::theme::Level;

/// Draws the panel in `area`: one line when it is three rows high, the full form otherwise.
pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let block = panel_block(app, Panel::Host, Line::from(" Host "));
    let Some(f) = &app.frame else {
        frame.render_widget(Paragraph::new("").block(block), area);
        return;
    };
    let host = &f.host;
    let inner_width = usize::from(area.width.saturating_sub(2));
    let inner_height = usize::from(area.height.saturating_sub(2));
    let lines = if inner_height <= 1 {
        vec![compact_line(app, host)]
    } else {
        full_lines(app, host, inner_width, inner_height)
    };
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn load_text(host: &HostSample) -> String {
    let [a, b, c] = host.load_average;
    format!("{a:.1} {b:.1} {c:.1}")
}

fn compact_line(app: &App, host: &HostSample) -> Line<'static> {
    let theme = &app.theme;
    let mut spans = vec![Span::styled("CPU ", theme.label())];
    spans.extend(gauge_spans(app, f64::from(host.cpu_percent), 6));
    spans.extend([
        Span::raw(format!(" {:>3.0}%", host.cpu_percent)),
        Span::styled("  RAM ", theme.label()),
        Span::raw(format::used_of_total_gib(
            host.memory_used_bytes,
            host.memory_total_bytes,
        )),
        Span::styled("  SWP ", theme.label()),
        Span::raw(format::used_of_total_gib(
            host.swap_used_bytes,
            host.swap_total_bytes,
        )),
        Span::styled("  load ", theme.label()),
        Span::raw(load_text(host)),
        Span::styled("  up ", theme.label()),
        Span::raw(format::uptime(host.uptime_seconds)),
    ]);
    Line::from(spans)
}

fn full_lines(
    app: &App,
    host: &HostSample,
    inner_width: usize,
    inner_height: usize,
) -> Vec<Line<'static>> {
    let theme = &app.theme;
    let gauge_width = inner_width.saturating_sub(5 + 2 + 20).clamp(4, 40);
    let bar = |label: &str, percent: f64, text: String| {
        let mut spans = vec![
            Span::styled(format!("{label:<5}"), theme.label()),
            Span::raw("["),
        ];
        spans.extend(gauge_spans(app, percent, gauge_width));
        spans.push(Span::raw(format!("] {text}")));
        Line::from(spans)
    };
    let mut lines = vec![
        bar(
            "CPU",
            f64::from(host.cpu_percent),
            format!(
                "{:.1}% of {} cores",
                host.cpu_percent,
                host.per_core_percent.len()
            ),
        ),
        bar(
            "RAM",
            format::percent_of(host.memory_used_bytes, host.memory_total_bytes),
            format::used_of_total_gib(host.memory_used_bytes, host.memory_total_bytes),
        ),
        bar(
            "SWAP",
            format::percent_of(host.swap_used_bytes, host.swap_total_bytes),
            format::used_of_total_gib(host.swap_used_bytes, host.swap_total_bytes),
        ),
        Line::from(vec![
            Span::styled("load ", theme.label()),
            Span::raw(load_text(host)),
            Span::styled("  up ", theme.label()),
            Span::raw(format::uptime(host.uptime_seconds)),
        ]),
    ];
    let per_line = (inner_width / usize::from(CORE_CELL_WIDTH)).max(1);
    let room = inner_height.saturating_sub(lines.len());
    for chunk in host.per_core_percent.chunks(per_line).take(room) {
        let base = lines.len() - 4;
        let mut spans = Vec::new();
        for (i, pct) in chunk.iter().enumerate() {
            let core = base * per_line + i;
            spans.push(Span::styled(format!("{core:>3} "), theme.level(Level::Dim)));
            spans.extend(gauge_spans(app, f64::from(*pct), 8));
            spans.push(Span::raw(format!(" {pct:>3.0}% ")));
        }
        lines.push(Line::from(spans));
    }
    lines
}
