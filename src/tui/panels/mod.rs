//! Drawing: one module per panel, each a function of the [`App`] state and a rectangle.
//! Nothing here changes state; [`draw`] is the whole screen.

pub mod footer;
pub mod gpus;
pub mod header;
pub mod help;
pub mod host;
pub mod job_detail;
pub mod matrix;
pub mod processes;
pub mod queue;
pub mod submit_form;

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Wrap};
use ratatui::Frame;

use super::app::{App, Overlay};
use super::layout::{Panel, Screen, MIN_HEIGHT, MIN_WIDTH};
use super::theme::Level;

/// Draws the whole screen from `app`.
pub fn draw(frame: &mut Frame, app: &App) {
    let area = frame.area();
    match super::layout::compute(area, app.content()) {
        Screen::TooSmall { width, height } => too_small(frame, area, app, width, height),
        Screen::Dashboard(dashboard) => {
            header::draw(frame, dashboard.header, app);
            for placement in &dashboard.placements {
                match placement.panel {
                    Panel::Gpus => gpus::draw(frame, placement.area, app, dashboard.gpu_mode),
                    Panel::Processes => processes::draw(frame, placement.area, app),
                    Panel::Host => host::draw(frame, placement.area, app),
                    Panel::Jobs => queue::draw(frame, placement.area, app),
                    Panel::Matrix => matrix::draw(frame, placement.area, app),
                }
            }
            footer::draw(frame, dashboard.footer, app);
            match &app.overlay {
                Overlay::None => {}
                Overlay::Help => help::draw_help(frame, area, app),
                Overlay::ConfirmKill(request) => help::draw_confirm(frame, area, app, request),
                Overlay::JobDetail => job_detail::draw(frame, area, app),
                Overlay::SubmitForm => submit_form::draw(frame, area, app),
            }
        }
    }
}

fn too_small(frame: &mut Frame, area: Rect, app: &App, width: u16, height: u16) {
    let text = format!(
        "terminal too small (have {width}x{height}, need {MIN_WIDTH}x{MIN_HEIGHT}); enlarge it or press q to quit"
    );
    let paragraph = Paragraph::new(Line::from(Span::styled(text, app.theme.level(Level::Warn))))
        .wrap(Wrap { trim: true });
    frame.render_widget(paragraph, area);
}

/// The bordered block of `panel`, highlighted when it has the focus.
pub fn panel_block<'a>(app: &App, panel: Panel, title: Line<'a>) -> Block<'a> {
    let focused = app.focus == panel;
    let style = if focused {
        app.theme.focused_border()
    } else {
        app.theme.border()
    };
    Block::bordered()
        .border_set(app.theme.border_set())
        .border_style(style)
        .title(title.style(if focused {
            app.theme.focused_border()
        } else {
            app.theme.label()
        }))
}

/// A text gauge: `filled` in the gauge style, `empty` dim.
pub fn gauge_spans(app: &App, percent: f64, width: usize) -> Vec<Span<'static>> {
    let (filled, empty) = super::format::gauge_cells(percent, width, app.theme.gauge_chars());
    vec![
        Span::styled(filled, app.theme.gauge()),
        Span::styled(empty, app.theme.level(Level::Dim)),
    ]
}
