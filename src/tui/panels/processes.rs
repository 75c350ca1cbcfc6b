//! The process table: every GPU context with its owner, memory, CPU and command.

use ratatui::layout::{Constraint, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Cell, Paragraph, Row, Table, TableState};
use ratatui::Frame;

use super::panel_block;
use crate::tui::app::{App, InputMode};
use crate::tui::format;
use crate::tui::layout::Panel;
use crate::tui::process_table::{SortColumn, SortOrder};
use crate::tui::theme::Level;

const WIDTHS: [Constraint; 8] = [
    Constraint::Length(3),
    Constraint::Length(7),
    Constraint::Length(8),
    Constraint::Length(4),
    Constraint::Length(8),
    Constraint::Length(6),
    Constraint::Length(8),
    Constraint::Fill(1),
];

/// Draws the table in `area`.
pub fn draw(frame: &mut Frame, area: Rect, app: &App) {
    let theme = &app.theme;
    let mut title = vec![Span::raw(format!(" Processes ({}) ", app.rows.len()))];
    if app.input_mode == InputMode::Filter {
        title.push(Span::styled(
            format!("filter: {}_ ", app.filter),
            theme.level(Level::Warn),
        ));
    } else if !app.filter.is_empty() {
        title.push(Span::styled(
            format!("filter: {} (Esc clears) ", app.filter),
            theme.level(Level::Warn),
        ));
    }
    let block = panel_block(app, Panel::Processes, Line::from(title));

    let (up, down) = theme.sort_arrows();
    let header = Row::new(SortColumn::ALL.iter().map(|c| {
        let mut text = c.title().to_string();
        if *c == app.sort.column {
            text.push_str(match app.sort.order {
                SortOrder::Ascending => up,
                SortOrder::Descending => down,
            });
            Cell::from(text).style(theme.focused_border())
        } else {
            Cell::from(text).style(theme.label())
        }
    }));

    let selected = app.selected_row_index();
    let rows: Vec<Row> = app
        .rows
        .iter()
        .map(|r| {
            let row = Row::new([
                Cell::from(r.gpu.to_string()),
                Cell::from(r.pid.to_string()),
                Cell::from(r.user.clone().unwrap_or_else(|| format::NA.into())),
                Cell::from(r.kind.code()),
                Cell::from(format::opt_bytes(r.gpu_memory_bytes)),
                Cell::from(
                    r.cpu_percent
                        .map_or_else(|| format::NA.into(), |c| format!("{c:.1}")),
                ),
                Cell::from(format::opt_bytes(r.host_memory_bytes)),
                Cell::from(match app.queue.job_of_pid(r.pid) {
                    Some(id) => format!("[job {id}] {}", r.command),
                    None => r.command.clone(),
                }),
            ]);
            if r.uid == Some(app.viewer_uid) {
                row.style(theme.own_process())
            } else {
                row
            }
        })
        .collect();
    if rows.is_empty() {
        // Below the heading, inside the borders.
        let note = Rect::new(
            area.x + 1,
            area.y + 2,
            area.width.saturating_sub(2),
            area.height.saturating_sub(3).min(1),
        );
        let text = match &app.frame {
            None => "waiting for the first sample".to_string(),
            Some(_) if !app.filter.is_empty() => {
                format!("no process matches \"{}\"", app.filter)
            }
            Some(_) => "no processes on any GPU".to_string(),
        };
        let table = Table::new(rows, WIDTHS).header(header).block(block);
        frame.render_widget(table, area);
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
    let mut state = TableState::new()
        .with_offset(app.process_offset)
        .with_selected(selected);
    frame.render_stateful_widget(table, area, &mut state);
}
