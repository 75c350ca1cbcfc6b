//! The GPU band: a full panel per GPU when there is room, one row per GPU when there is not,
//! or one line saying why there are no GPUs.

use ratatui::layout::Rect;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Paragraph, Wrap};
use ratatui::Frame;

use super::{gauge_spans, panel_block};
use crate::config::CompactField;
use crate::telemetry::model::{GpuHealth, GpuSample, GpuStatic};
use crate::tui::app::App;
use crate::tui::format::{self, NA};
use crate::tui::layout::{GpuMode, Panel, FULL_GPU_HEIGHT};
use crate::tui::theme::{Level, Theme};

/// Draws the band in `area`.
pub fn draw(frame: &mut Frame, area: Rect, app: &App, mode: GpuMode) {
    match mode {
        GpuMode::Reason => draw_reason(frame, area, app),
        GpuMode::Compact => draw_compact(frame, area, app),
        GpuMode::Full { columns } => draw_full(frame, area, app, columns),
    }
}

fn draw_reason(frame: &mut Frame, area: Rect, app: &App) {
    let (text, level) = match &app.frame {
        None => ("waiting for the first sample".to_string(), Level::Dim),
        Some(f) if !f.driver.available => (
            format!(
                "No GPUs: {}",
                f.driver
                    .error
                    .as_deref()
                    .unwrap_or("the NVIDIA driver is unavailable")
            ),
            Level::Warn,
        ),
        Some(_) => ("No GPUs found by the driver".to_string(), Level::Warn),
    };
    let block = panel_block(app, Panel::Gpus, Line::from(" GPUs "));
    frame.render_widget(
        Paragraph::new(Line::from(Span::styled(text, app.theme.level(level))))
            .wrap(Wrap { trim: true })
            .block(block),
        area,
    );
}

/// Short name and level of an NVML throttle reason.
fn throttle(reason: &str) -> (&str, Level) {
    match reason {
        "gpu_idle" => ("idle", Level::Dim),
        "sw_power_cap" => ("power cap", Level::Warn),
        "hw_slowdown" => ("hw slowdown", Level::Critical),
        "hw_thermal_slowdown" => ("hw thermal", Level::Critical),
        "sw_thermal_slowdown" => ("thermal", Level::Critical),
        "hw_power_brake_slowdown" => ("power brake", Level::Critical),
        "applications_clocks_setting" => ("app clocks", Level::Normal),
        "sync_boost" => ("sync boost", Level::Normal),
        "display_clock_setting" => ("display clock", Level::Normal),
        other => (other, Level::Warn),
    }
}

fn throttle_spans(theme: &Theme, sample: &GpuSample) -> Vec<Span<'static>> {
    match &sample.throttle_reasons {
        None => vec![Span::styled(NA, theme.level(Level::Dim))],
        Some(reasons) if reasons.is_empty() => vec![Span::styled("none", theme.level(Level::Dim))],
        Some(reasons) => {
            let mut spans = Vec::new();
            for (i, r) in reasons.iter().enumerate() {
                if i > 0 {
                    spans.push(Span::raw(","));
                }
                let (name, level) = throttle(r);
                spans.push(Span::styled(name.to_string(), theme.level(level)));
            }
            spans
        }
    }
}

fn temp_level(celsius: Option<u32>) -> Level {
    match celsius {
        Some(t) if t >= 90 => Level::Critical,
        Some(t) if t >= 80 => Level::Warn,
        Some(_) => Level::Normal,
        None => Level::Dim,
    }
}

fn memory_percent(device: &GpuStatic, sample: &GpuSample) -> Option<f64> {
    sample
        .memory_used_bytes
        .map(|u| format::percent_of(u, device.memory_total_bytes))
}

fn memory_text(device: &GpuStatic, sample: &GpuSample) -> String {
    sample.memory_used_bytes.map_or_else(
        || NA.to_string(),
        |u| format::used_of_total_gib(u, device.memory_total_bytes),
    )
}

fn power_text(device: &GpuStatic, sample: &GpuSample) -> String {
    match (sample.power_draw_watts, device.power_limit_watts) {
        (Some(draw), Some(limit)) => format!("{draw:.0}/{limit:.0}W"),
        (Some(draw), None) => format!("{draw:.0}W"),
        (None, Some(limit)) => format!("{NA}/{limit:.0}W"),
        (None, None) => NA.to_string(),
    }
}

fn padded(text: String, width: usize) -> String {
    format!("{:>width$}", format::fit(&text, width))
}

/// Width of a compact field's cell (the throttle field takes what is left).
fn field_width(field: CompactField) -> usize {
    match field {
        CompactField::Util => 5,
        CompactField::Memory => 12,
        CompactField::Temp => 5,
        CompactField::Power => 10,
        CompactField::Fan => 8,
        CompactField::Clock => 8,
        CompactField::Procs => 7,
        CompactField::Throttle => 0,
    }
}

fn draw_compact(frame: &mut Frame, area: Rect, app: &App) {
    let Some(f) = &app.frame else {
        return;
    };
    let count = f.gpus.len();
    let title = if count > usize::from(area.height.saturating_sub(2)) {
        format!(
            " GPUs {}-{} of {count} ",
            app.gpu_offset,
            (app.gpu_offset + usize::from(area.height.saturating_sub(2))).min(count) - 1
        )
    } else {
        format!(" GPUs ({count}) ")
    };
    let block = panel_block(app, Panel::Gpus, Line::from(title));
    let inner_width = usize::from(area.width.saturating_sub(2));
    let fields = &app.compact_fields;
    let fixed: usize = fields.iter().map(|f| field_width(*f) + 1).sum();
    let has_util = fields.contains(&CompactField::Util);
    let has_throttle = fields.contains(&CompactField::Throttle);
    let rest = inner_width.saturating_sub(3 + fixed);
    let gauge_width = if has_util { (rest / 3).clamp(4, 30) } else { 0 };
    let name_width = rest
        .saturating_sub(gauge_width + if has_throttle { 10 } else { 0 })
        .clamp(4, 28);

    let lines: Vec<Line> = f
        .devices
        .iter()
        .zip(&f.gpus)
        .enumerate()
        .skip(app.gpu_offset)
        .map(|(pos, (device, sample))| {
            compact_row(app, pos, device, sample, name_width, gauge_width)
        })
        .collect();
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn compact_row(
    app: &App,
    pos: usize,
    device: &GpuStatic,
    sample: &GpuSample,
    name_width: usize,
    gauge_width: usize,
) -> Line<'static> {
    let theme = &app.theme;
    let selected = app.focus == Panel::Gpus && pos == app.selected_gpu;
    let name = format::fit(format::short_gpu_name(&device.name), name_width);
    let mut spans = vec![
        Span::styled(format!("{:>2} ", device.index), theme.label()),
        Span::raw(format!("{name:<name_width$}")),
    ];
    if let GpuHealth::Lost { reason } = &sample.health {
        spans.push(Span::styled(
            format!(" LOST: {reason} (retrying)"),
            theme.level(Level::Critical),
        ));
        return finish_row(theme, spans, selected);
    }
    for field in &app.compact_fields {
        spans.push(Span::raw(" "));
        let width = field_width(*field);
        match field {
            CompactField::Util => {
                let util = sample.utilization_gpu_percent;
                spans.extend(gauge_spans(app, f64::from(util.unwrap_or(0)), gauge_width));
                spans.push(Span::raw(padded(format::opt(util, "%"), width)));
            }
            CompactField::Memory => {
                let level = match memory_percent(device, sample) {
                    Some(p) if p >= 95.0 => Level::Critical,
                    Some(p) if p >= 85.0 => Level::Warn,
                    _ => Level::Normal,
                };
                spans.push(Span::styled(
                    padded(memory_text(device, sample), width),
                    theme.level(level),
                ));
            }
            CompactField::Temp => spans.push(Span::styled(
                padded(
                    format::opt(sample.temperature_celsius, theme.celsius()),
                    width,
                ),
                theme.level(temp_level(sample.temperature_celsius)),
            )),
            CompactField::Power => spans.push(Span::raw(padded(power_text(device, sample), width))),
            CompactField::Fan => spans.push(Span::raw(padded(
                format!("fan {}", format::opt(sample.fan_percent, "%")),
                width,
            ))),
            CompactField::Clock => spans.push(Span::raw(padded(
                format::opt(sample.sm_clock_mhz, "MHz"),
                width,
            ))),
            CompactField::Procs => spans.push(Span::raw(padded(
                format!("{} proc", sample.processes.len()),
                width,
            ))),
            CompactField::Throttle => spans.extend(throttle_spans(theme, sample)),
        }
    }
    finish_row(theme, spans, selected)
}

fn finish_row(theme: &Theme, spans: Vec<Span<'static>>, selected: bool) -> Line<'static> {
    let line = Line::from(spans);
    if selected {
        line.style(theme.selection())
    } else {
        line
    }
}

fn draw_full(frame: &mut Frame, area: Rect, app: &App, columns: u16) {
    let Some(f) = &app.frame else {
        return;
    };
    let width = area.width / columns.max(1);
    for (pos, (device, sample)) in f.devices.iter().zip(&f.gpus).enumerate() {
        let col = pos as u16 % columns;
        let row = pos as u16 / columns;
        // The last column takes the rounding remainder so the grid fills the band.
        let w = if col + 1 == columns {
            area.width - col * width
        } else {
            width
        };
        let rect = Rect::new(
            area.x + col * width,
            area.y + row * FULL_GPU_HEIGHT,
            w,
            FULL_GPU_HEIGHT,
        );
        if rect.bottom() > area.bottom() {
            break;
        }
        full_panel(frame, rect, app, pos, device, sample);
    }
}

fn full_panel(
    frame: &mut Frame,
    rect: Rect,
    app: &App,
    pos: usize,
    device: &GpuStatic,
    sample: &GpuSample,
) {
    let theme = &app.theme;
    let selected = pos == app.selected_gpu;
    let title = format!(" GPU {}: {} ", device.index, device.name);
    let mut block = panel_block(app, Panel::Gpus, Line::from(title));
    if !(selected && app.focus == Panel::Gpus) {
        block = block.border_style(theme.border());
    }
    let inner = usize::from(rect.width.saturating_sub(2));
    let label = |text: &str| Span::styled(format!("{text:<5}"), theme.label());
    let gauge_width = inner.saturating_sub(5 + 2 + 16).max(4);
    let spark_width = inner.saturating_sub(5);
    let history = app.history.gpu(pos);

    let mut lines: Vec<Line> = Vec::with_capacity(8);
    match &sample.health {
        GpuHealth::Lost { reason } => {
            lines.push(Line::from(Span::styled(
                "LOST: the GPU stopped answering",
                theme.level(Level::Critical),
            )));
            lines.push(Line::from(Span::styled(
                reason.clone(),
                theme.level(Level::Critical),
            )));
            lines.push(Line::from(Span::styled(
                "retrying every few seconds; other GPUs keep updating",
                theme.level(Level::Dim),
            )));
        }
        GpuHealth::Ok => {
            let util = sample.utilization_gpu_percent;
            let mut l = vec![label("UTIL"), Span::raw("[")];
            l.extend(gauge_spans(app, f64::from(util.unwrap_or(0)), gauge_width));
            l.push(Span::raw(format!("] {}", format::opt(util, "%"))));
            lines.push(Line::from(l));

            let mut l = vec![label("MEM"), Span::raw("[")];
            l.extend(gauge_spans(
                app,
                memory_percent(device, sample).unwrap_or(0.0),
                gauge_width,
            ));
            l.push(Span::raw(format!("] {}", memory_text(device, sample))));
            lines.push(Line::from(l));

            lines.push(Line::from(vec![
                label("TEMP"),
                Span::styled(
                    format::opt(sample.temperature_celsius, theme.celsius()),
                    theme.level(temp_level(sample.temperature_celsius)),
                ),
                Span::styled("  PWR ", theme.label()),
                Span::raw(power_text(device, sample)),
                Span::styled("  FAN ", theme.label()),
                Span::raw(format::opt(sample.fan_percent, "%")),
                Span::styled("  P", theme.label()),
                Span::raw(
                    sample
                        .pstate
                        .map_or_else(|| NA.to_string(), |p| p.to_string()),
                ),
            ]));
            lines.push(Line::from(vec![
                label("CLK"),
                Span::raw(format!(
                    "sm {}  mem {}  gfx {}",
                    format::opt(sample.sm_clock_mhz, ""),
                    format::opt(sample.memory_clock_mhz, ""),
                    format::opt(sample.graphics_clock_mhz, "")
                )),
                Span::styled(" MHz", theme.level(Level::Dim)),
            ]));
            lines.push(Line::from(vec![
                label("PCIE"),
                Span::raw(format!(
                    "rx {}  tx {}",
                    format::rate(sample.pcie_rx_bytes_per_second),
                    format::rate(sample.pcie_tx_bytes_per_second)
                )),
                Span::styled("  ENC ", theme.label()),
                Span::raw(format::opt(sample.encoder_percent, "%")),
                Span::styled(" DEC ", theme.label()),
                Span::raw(format::opt(sample.decoder_percent, "%")),
            ]));
            let mut l = vec![label("THR")];
            l.extend(throttle_spans(theme, sample));
            l.push(Span::styled(
                format!("  {} proc", sample.processes.len()),
                theme.level(Level::Dim),
            ));
            lines.push(Line::from(l));
        }
    }
    if let Some(h) = history {
        let levels = theme.spark_levels();
        let util_len = h.utilization_percent.len().min(spark_width);
        let mem_len = h.memory_percent.len().min(spark_width);
        lines.push(Line::from(vec![
            label("util"),
            Span::styled(
                format::sparkline(
                    h.utilization_percent.last_n(spark_width),
                    util_len,
                    spark_width,
                    levels,
                ),
                theme.gauge(),
            ),
        ]));
        lines.push(Line::from(vec![
            label("mem"),
            Span::styled(
                format::sparkline(
                    h.memory_percent.last_n(spark_width),
                    mem_len,
                    spark_width,
                    levels,
                ),
                theme.gauge(),
            ),
        ]));
    }
    frame.render_widget(Paragraph::new(lines).block(block), rect);
}
