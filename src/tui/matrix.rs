//! State of the compatibility matrix panel: the prepared model x analysis workloads, the plan
//! evaluated against the newest frame's free memory, the selection, the `/` filter and the
//! command shown on Enter. Keys reach it only while it is shown (`m` toggles it).

use std::time::{Duration, Instant};

use crossterm::event::{KeyCode, KeyEvent};

use crate::estimate::device::{devices_from_frame, DeviceSpec, Speed};
use crate::estimate::matrix::{MatrixCell, MatrixPlan, PreparedMatrix, PreparedRow};
use crate::estimate::AnalysisKind;
use crate::models::CatalogueEntry;
use crate::telemetry::model::Frame;

/// The matrix panel's state.
#[derive(Debug, Clone)]
pub struct MatrixState {
    /// Whether the panel replaces the lower area.
    pub shown: bool,
    /// Rows and their workloads (prepared once).
    pub prepared: PreparedMatrix,
    /// Cells evaluated on the newest frame.
    pub plan: MatrixPlan,
    /// Devices of the newest frame.
    pub devices: Vec<DeviceSpec>,
    /// The CPU's calibrated speed, for time estimates.
    pub cpu_speed: Speed,
    /// Selected row among the visible (filtered) rows.
    pub row: usize,
    /// Selected column (analysis).
    pub column: usize,
    /// Model filter.
    pub filter: String,
    /// Keys edit the filter.
    pub filtering: bool,
    /// The `neuronmap extract` command for the selected cell, after Enter.
    pub command: Option<String>,
    /// How long the last evaluation took.
    pub last_compute: Duration,
    /// The devices `plan` was evaluated on (none before the first frame).
    evaluated_on: Option<Vec<DeviceSpec>>,
}

/// Free memory has to move by this fraction of a device's total before the matrix is
/// evaluated again.
pub const REFRESH_FRACTION: f64 = 0.01;

/// Whether the devices differ enough from the last evaluation's to evaluate again.
fn moved(old: &[DeviceSpec], new: &[DeviceSpec]) -> bool {
    old.len() != new.len()
        || old.iter().zip(new).any(|(a, b)| {
            a.id != b.id
                || a.total_bytes != b.total_bytes
                || a.speed != b.speed
                || a.free_bytes.abs_diff(b.free_bytes) as f64
                    > REFRESH_FRACTION * a.total_bytes as f64
        })
}

impl MatrixState {
    /// A matrix over catalogue entries (local ones first).
    pub fn new(entries: &[CatalogueEntry], cpu_speed: Speed) -> Self {
        let prepared = PreparedMatrix::new(entries);
        Self {
            shown: false,
            plan: prepared.evaluate(&[]),
            prepared,
            devices: Vec::new(),
            cpu_speed,
            row: 0,
            column: 0,
            filter: String::new(),
            filtering: false,
            command: None,
            last_compute: Duration::ZERO,
            evaluated_on: None,
        }
    }

    /// Re-evaluates every cell with the free memory of `frame`, when it differs from the last
    /// evaluation's: another set of devices, or a device whose free memory moved by more than
    /// [`REFRESH_FRACTION`] of its total (an evaluation simulates thousands of forward passes;
    /// a steady machine needs none).
    pub fn refresh(&mut self, frame: &Frame) {
        self.devices = devices_from_frame(frame, self.cpu_speed);
        if self
            .evaluated_on
            .as_deref()
            .is_some_and(|old| !moved(old, &self.devices))
        {
            // The verdicts stand; the free memory shown beside them is this frame's.
            for dv in self
                .plan
                .cells
                .iter_mut()
                .flatten()
                .flat_map(|c| &mut c.devices)
            {
                if let Some(d) = self.devices.iter().find(|d| d.id == dv.device) {
                    dv.free_bytes = d.free_bytes;
                }
            }
            return;
        }
        let start = Instant::now();
        self.plan = self.prepared.evaluate(&self.devices);
        self.evaluated_on = Some(self.devices.clone());
        self.last_compute = start.elapsed();
    }

    /// Indices (into the prepared rows) of the rows the filter keeps.
    pub fn visible_rows(&self) -> Vec<usize> {
        let needle = self.filter.to_ascii_lowercase();
        (0..self.prepared.rows.len())
            .filter(|&i| {
                needle.is_empty()
                    || self.prepared.rows[i]
                        .entry
                        .id
                        .to_ascii_lowercase()
                        .contains(&needle)
            })
            .collect()
    }

    /// The selected row and cell.
    pub fn selected(&self) -> Option<(&PreparedRow, &MatrixCell)> {
        let index = *self.visible_rows().get(self.row)?;
        let cell = self.plan.cells.get(index)?.get(self.column)?;
        Some((&self.prepared.rows[index], cell))
    }

    /// Model id, analysis name and hook globs of the selected cell, when the engine runs it:
    /// what the submit form opened from this cell starts with.
    pub fn submit_defaults(&self) -> Option<(String, &'static str, String)> {
        let (row, cell) = self.selected()?;
        let analysis = match cell.analysis.engine_analysis()? {
            crate::engine::request::Analysis::Activations => "activations",
            crate::engine::request::Analysis::Stats => "stats",
            crate::engine::request::Analysis::Attention => "attention",
        };
        let hooks = cell.analysis.default_hooks().join(",");
        Some((row.entry.id.clone(), analysis, hooks))
    }

    /// The command that runs the selected cell in the foreground.
    pub fn command_for_selection(&self) -> Option<String> {
        let (row, cell) = self.selected()?;
        let analysis = cell.analysis.engine_analysis()?;
        let device = cell.best_device?.label();
        let hooks = cell.analysis.default_hooks().join(",");
        Some(format!(
            "neuronmap extract --model {} --input PROMPTS.txt --hooks '{hooks}' --out OUT --analysis {} --batch {} --max-len {} --device {device}",
            row.entry.id,
            match analysis {
                crate::engine::request::Analysis::Activations => "activations",
                crate::engine::request::Analysis::Stats => "stats",
                crate::engine::request::Analysis::Attention => "attention",
            },
            self.prepared.batch,
            self.prepared.seq.min(
                row.entry
                    .architecture
                    .as_ref()
                    .map_or(self.prepared.seq, |a| a.max_positions)
            ),
        ))
    }

    /// Handles a key while the panel is shown; returns false for keys it leaves to the app.
    pub fn on_key(&mut self, key: KeyEvent) -> bool {
        if self.filtering {
            match key.code {
                KeyCode::Esc => {
                    self.filter.clear();
                    self.filtering = false;
                }
                KeyCode::Enter => self.filtering = false,
                KeyCode::Backspace => {
                    self.filter.pop();
                }
                KeyCode::Char(c) => self.filter.push(c),
                _ => return true,
            }
            self.row = 0;
            return true;
        }
        let rows = self.visible_rows().len();
        match key.code {
            KeyCode::Down | KeyCode::Char('j') => {
                self.row = (self.row + 1).min(rows.saturating_sub(1))
            }
            KeyCode::Up | KeyCode::Char('k') => self.row = self.row.saturating_sub(1),
            KeyCode::Right | KeyCode::Char('l') => {
                self.column = (self.column + 1).min(AnalysisKind::ALL.len() - 1)
            }
            KeyCode::Left | KeyCode::Char('h') => self.column = self.column.saturating_sub(1),
            KeyCode::Char('/') => self.filtering = true,
            KeyCode::Enter => {
                self.command = Some(self.command_for_selection().unwrap_or_else(|| {
                    "not supported by the engine yet: nothing to run".to_string()
                }))
            }
            KeyCode::Esc => {
                if self.command.take().is_none() && self.filter.is_empty() {
                    self.shown = false;
                }
                self.filter.clear();
            }
            KeyCode::Char('m') => self.shown = false,
            _ => return false,
        }
        if !matches!(key.code, KeyCode::Enter) {
            self.command = None;
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
    use ratatui::backend::TestBackend;
    use ratatui::Terminal;

    use super::*;
    use crate::config::{ThemeName, UiConfig};
    use crate::estimate::Verdict;
    use crate::models::{registry, CatalogueEntry};
    use crate::telemetry::history::History;
    use crate::telemetry::sampler::SamplerEvent;
    use crate::telemetry::trace::TraceReader;
    use crate::telemetry::Origin;
    use crate::tui::app::{App, Input, SourceInfo};
    use crate::tui::layout::Panel;
    use crate::tui::panels;
    use crate::tui::theme::{Theme, ThemeChoice};

    fn frames() -> Vec<Frame> {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/traces/synthetic-8gpu.jsonl");
        TraceReader::open(&path)
            .and_then(TraceReader::read_all)
            .unwrap()
            .1
    }

    fn app(frames: &[Frame]) -> App {
        let entries: Vec<CatalogueEntry> = registry::builtin()
            .unwrap()
            .iter()
            .map(CatalogueEntry::from_registry)
            .collect();
        let mut app = App::new(
            SourceInfo {
                origin: Origin::Live,
                interval_ms: 1000,
                speed: 1.0,
                looping: false,
            },
            Theme::new(ThemeChoice {
                color: true,
                name: ThemeName::Dark,
                ascii: false,
            }),
            &UiConfig::default(),
            History::for_span(Duration::from_secs(60), Duration::from_secs(1)),
            1000,
        );
        app.matrix = MatrixState::new(
            &entries,
            Speed {
                flops_per_second: 3e10,
                seconds_per_matmul: 30e-6,
                seconds_per_byte: 1e-9,
            },
        );
        for f in frames {
            app.update(Input::Sampler(SamplerEvent::Frame(Box::new(f.clone()))));
        }
        app
    }

    fn press(app: &mut App, code: KeyCode) {
        app.update(Input::Key(KeyEvent::new(code, KeyModifiers::NONE)));
    }

    fn screen(app: &mut App, w: u16, h: u16) -> String {
        app.update(Input::Resize(w, h));
        let mut terminal = Terminal::new(TestBackend::new(w, h)).unwrap();
        terminal.draw(|f| panels::draw(f, app)).unwrap();
        let buffer = terminal.backend().buffer().clone();
        (0..h)
            .map(|y| {
                let line: String = (0..w)
                    .map(|x| buffer[(x, y)].symbol().to_string())
                    .collect();
                line.trim_end().to_string() + "\n"
            })
            .collect()
    }

    #[test]
    fn snapshot_matrix_160x40() {
        let mut app = app(&frames()[..3]);
        press(&mut app, KeyCode::Char('m'));
        assert_eq!(app.focus, Panel::Matrix);
        insta::assert_snapshot!(screen(&mut app, 160, 40));
    }

    #[test]
    fn snapshot_matrix_80x24_without_detail_pane() {
        let mut app = app(&frames()[..3]);
        press(&mut app, KeyCode::Char('m'));
        insta::assert_snapshot!(screen(&mut app, 80, 24));
    }

    #[test]
    fn filter_and_enter_open_the_submit_form_and_show_the_extract_command() {
        let mut app = app(&frames()[..3]);
        press(&mut app, KeyCode::Char('m'));
        press(&mut app, KeyCode::Char('/'));
        for c in "llama-3.2".chars() {
            press(&mut app, KeyCode::Char(c));
        }
        press(&mut app, KeyCode::Enter);
        assert_eq!(app.matrix.visible_rows().len(), 1);
        press(&mut app, KeyCode::Right);
        press(&mut app, KeyCode::Right);
        press(&mut app, KeyCode::Enter);
        // Enter opens the submit form for the cell: model, analysis and hooks filled in.
        let form = app.form.clone().expect("the submit form is open");
        assert_eq!(form.values[0], "meta-llama/Llama-3.2-1B");
        assert!(form.values.iter().any(|v| v == "attention"), "{form:?}");
        press(&mut app, KeyCode::Esc);
        assert!(app.form.is_none(), "Esc closes the form");
        let cmd = app.matrix.command.clone().unwrap();
        assert!(
            cmd.starts_with("neuronmap extract --model meta-llama/Llama-3.2-1B"),
            "{cmd}"
        );
        assert!(cmd.contains("--analysis attention"), "{cmd}");
        let text = screen(&mut app, 160, 40);
        assert!(
            text.contains("neuronmap extract --model meta-llama/Llama-3.2-1B"),
            "{text}"
        );
        press(&mut app, KeyCode::Esc);
        press(&mut app, KeyCode::Esc);
        assert!(!app.matrix.shown);
    }

    #[test]
    fn cells_follow_free_memory_of_the_newest_frame() {
        let all = frames();
        let mut frame = all[0].clone();
        for g in &mut frame.gpus {
            g.memory_free_bytes = Some(1 << 30);
        }
        frame.host.memory_available_bytes = 1 << 30;
        let mut app = app(std::slice::from_ref(&frame));
        let llama8b = app
            .matrix
            .prepared
            .rows
            .iter()
            .position(|r| r.entry.id == "meta-llama/Llama-3.1-8B")
            .unwrap();
        assert_ne!(app.matrix.plan.cells[llama8b][0].best, Verdict::Fits);
        app.update(Input::Sampler(SamplerEvent::Frame(Box::new(
            all[1].clone(),
        ))));
        assert_eq!(app.matrix.plan.cells[llama8b][0].best, Verdict::Fits);
        assert_eq!(
            app.matrix.plan.cells[llama8b][3].best,
            Verdict::NotSupported
        );
    }
}

#[cfg(test)]
mod refresh_tests {
    use super::*;
    use crate::estimate::device::DeviceId;

    fn gpu(index: u32, free: u64) -> DeviceSpec {
        DeviceSpec {
            id: DeviceId::Cuda(index),
            name: "GPU".into(),
            total_bytes: 80_000_000_000,
            free_bytes: free,
            bf16: true,
            speed: Speed::NOT_MEASURED,
        }
    }

    #[test]
    fn only_a_real_change_of_free_memory_or_devices_re_evaluates() {
        let before = vec![gpu(0, 40_000_000_000), gpu(1, 10_000_000_000)];
        // 500 MB is under 1% of 80 GB.
        let small = vec![gpu(0, 40_500_000_000), gpu(1, 10_000_000_000)];
        assert!(!moved(&before, &small));
        // A job took 2 GB on GPU 1.
        let job = vec![gpu(0, 40_000_000_000), gpu(1, 8_000_000_000)];
        assert!(moved(&before, &job));
        // A GPU fell off the bus.
        assert!(moved(&before, &before[..1]));
        let renumbered = vec![gpu(0, 40_000_000_000), gpu(2, 10_000_000_000)];
        assert!(moved(&before, &renumbered));
    }
}
