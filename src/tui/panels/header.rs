//! The header: who and what is being watched (host, driver, CUDA, the frame's clock, the
//! sample interval), then a line with the LIVE/REPLAY marker, the feed state and messages.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::Paragraph;
use ratatui::Frame;

use crate::telemetry::Origin;
use crate::tui::app::{App, Feed};
use crate::tui::format;
use crate::tui::theme::Level;

/// The first header line, in the richest form that fits `width`: the brand and the full date
/// are dropped first on narrow terminals, so host, versions, time and interval stay.
fn identity_line(app: &App, width: usize) -> Vec<Span<'static>> {
    let theme = &app.theme;
    let sep = || Span::styled(theme.separator(), theme.level(Level::Dim));
    let Some(f) = &app.frame else {
        return vec![
            Span::styled("NeuronMap", theme.focused_border()),
            sep(),
            Span::raw("waiting for the first sample"),
        ];
    };
    let clock = format::utc_clock(f.timestamp_ms);
    let time_only = clock
        .split_once(' ')
        .map_or(clock.clone(), |(_, t)| t.to_string());
    let interval = format::interval(app.observed_interval_ms.unwrap_or(app.source.interval_ms));
    let variants = [(true, clock.clone()), (false, clock), (false, time_only)];
    let mut best = Vec::new();
    for (brand, clock) in variants {
        let mut spans = Vec::new();
        if brand {
            spans.extend([Span::styled("NeuronMap", theme.focused_border()), sep()]);
        }
        spans.extend([
            Span::raw(f.host.hostname.clone()),
            sep(),
            Span::styled("driver ", theme.label()),
            Span::raw(
                f.driver
                    .driver_version
                    .clone()
                    .unwrap_or_else(|| format::NA.into()),
            ),
            sep(),
            Span::styled("CUDA ", theme.label()),
            Span::raw(
                f.driver
                    .cuda_version
                    .clone()
                    .unwrap_or_else(|| format::NA.into()),
            ),
            sep(),
            Span::raw(clock),
            sep(),
            Span::styled("every ", theme.label()),
            Span::raw(interval.clone()),
        ]);
        let fits = spans.iter().map(Span::width).sum::<usize>() <= width;
        best = spans;
        if fits {
            break;
        }
    }
    best
}

/// Draws the two header lines.
pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let first = identity_line(app, usize::from(area.width));
    let mut second = Vec::new();
    match &app.source.origin {
        Origin::Live => second.push(Span::styled(" LIVE ", theme.level(Level::Good))),
        Origin::Replay {
            path,
            recorded_from,
        } => {
            second.push(Span::styled(" REPLAY ", theme.replay_marker()));
            let name = path.file_name().map_or_else(
                || path.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            );
            let mut detail = format!(" {name}");
            if recorded_from == "synthetic" {
                detail.push_str(" (synthetic)");
            }
            if (app.source.speed - 1.0).abs() > f64::EPSILON {
                detail.push_str(&format!(" x{}", app.source.speed));
            }
            if app.source.looping {
                detail.push_str(" loop");
            }
            second.push(Span::styled(detail, theme.label()));
        }
    }
    match &app.feed {
        Feed::Running => {}
        Feed::Ended => second.push(Span::styled(
            "  replay ended; last frame shown (q quits)",
            theme.level(Level::Warn),
        )),
        Feed::Failed(why) => second.push(Span::styled(
            format!("  telemetry stopped: {why}"),
            theme.level(Level::Critical),
        )),
    }
    if let Some(status) = &app.status {
        second.push(Span::styled(
            format!("  {}", status.text),
            theme.level(status.level),
        ));
    }
    frame.render_widget(
        Paragraph::new(vec![Line::from(first), Line::from(second)]),
        area,
    );
}
