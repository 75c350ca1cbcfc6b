//! Where everything goes: the panel registry (the focus ring) and the screen layout.
//!
//! Design decision: the screen is a header band, a **GPU band** across the top, a **lower
//! area**, and a footer line. The GPU band only ever holds the GPU panel and is sized first
//! (full panels when they fit, one row per GPU otherwise). Every other panel lives in the
//! lower area, whose placement is computed from [`Panel::RING`]: today that is the host panel
//! and the process table, stacked (or side by side on wide terminals). A later compatibility
//! matrix or job queue panel is one more [`Panel`] variant and one more placement rule in
//! [`lower_area`]; the lower area then becomes split or switchable without the GPU band, the
//! focus ring, mouse hit-testing or drawing dispatch changing, because all of them iterate over
//! the [`Placement`] list this module returns.

use ratatui::layout::{Position, Rect};

/// Smallest terminal the dashboard draws in; below it a "terminal too small" notice is shown.
pub const MIN_WIDTH: u16 = 60;
/// Smallest terminal height the dashboard draws in.
pub const MIN_HEIGHT: u16 = 16;

/// Header lines (identity line, then the replay marker and status line).
pub const HEADER_HEIGHT: u16 = 2;
/// Footer lines (key hints).
pub const FOOTER_HEIGHT: u16 = 1;
/// Height of one full GPU panel, borders included.
pub const FULL_GPU_HEIGHT: u16 = 10;
/// Narrowest full GPU panel.
pub const FULL_GPU_MIN_WIDTH: u16 = 46;
/// Process table with its heading, five rows and borders.
pub const PROCESS_MIN_HEIGHT: u16 = 8;
/// Host panel as one line with borders.
pub const HOST_COMPACT_HEIGHT: u16 = 3;
/// Width from which the host panel sits beside the process table.
pub const SIDE_BY_SIDE_WIDTH: u16 = 150;

/// A panel that can hold the keyboard focus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Panel {
    /// The GPU band.
    Gpus,
    /// The process table.
    Processes,
    /// Host CPU, memory, load.
    Host,
    /// The job queue.
    Jobs,
    /// The model x analysis compatibility matrix (shown in place of the lower area with `m`).
    Matrix,
}

impl Panel {
    /// The focus ring, in Tab order.
    pub const RING: [Panel; 4] = [Panel::Gpus, Panel::Processes, Panel::Host, Panel::Jobs];

    fn position(self) -> usize {
        Self::RING.iter().position(|p| *p == self).unwrap_or(0)
    }

    /// The panel after this one in Tab order.
    pub fn next(self) -> Self {
        Self::RING[(self.position() + 1) % Self::RING.len()]
    }

    /// The panel before this one in Tab order.
    pub fn previous(self) -> Self {
        Self::RING[(self.position() + Self::RING.len() - 1) % Self::RING.len()]
    }

    /// Title shown on the panel's border.
    pub fn title(self) -> &'static str {
        match self {
            Self::Gpus => "GPUs",
            Self::Processes => "Processes",
            Self::Host => "Host",
            Self::Jobs => "Jobs",
            Self::Matrix => "Matrix",
        }
    }
}

/// How the GPU band shows each GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuMode {
    /// A full panel per GPU, in a grid of `columns` columns.
    Full {
        /// Panels per grid row.
        columns: u16,
    },
    /// One row per GPU.
    Compact,
    /// No GPUs to show (no driver, or none found): one line saying why.
    Reason,
}

/// A panel and the rectangle it is drawn in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// Which panel.
    pub panel: Panel,
    /// Where, borders included.
    pub area: Rect,
}

/// The layout of a dashboard-sized screen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dashboard {
    /// Header band.
    pub header: Rect,
    /// Footer line.
    pub footer: Rect,
    /// How GPUs are drawn.
    pub gpu_mode: GpuMode,
    /// Every panel on screen.
    pub placements: Vec<Placement>,
}

impl Dashboard {
    /// The rectangle of `panel`, if it is on screen.
    pub fn area_of(&self, panel: Panel) -> Option<Rect> {
        self.placements
            .iter()
            .find(|p| p.panel == panel)
            .map(|p| p.area)
    }

    /// The panel under a screen position (for mouse clicks and the wheel).
    pub fn panel_at(&self, column: u16, row: u16) -> Option<Panel> {
        self.placements
            .iter()
            .find(|p| p.area.contains(Position::new(column, row)))
            .map(|p| p.panel)
    }
}

/// What the screen shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Screen {
    /// The terminal is smaller than [`MIN_WIDTH`] x [`MIN_HEIGHT`].
    TooSmall {
        /// Current width.
        width: u16,
        /// Current height.
        height: u16,
    },
    /// The dashboard.
    Dashboard(Dashboard),
}

/// What the layout needs to know about the data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Content {
    /// Number of GPUs to show (0 when there is no driver).
    pub gpus: usize,
    /// Number of CPU cores (for the per-core bars).
    pub cores: usize,
    /// Number of jobs in the queue panel (0: no panel unless focused).
    pub jobs: usize,
    /// The job queue has the focus: it takes the process table's place when both do not fit.
    pub jobs_focused: bool,
    /// The compatibility matrix takes the lower area.
    pub matrix: bool,
}

/// Lays out a screen of `area` for `content`.
pub fn compute(area: Rect, content: Content) -> Screen {
    if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
        return Screen::TooSmall {
            width: area.width,
            height: area.height,
        };
    }
    let header = Rect::new(area.x, area.y, area.width, HEADER_HEIGHT);
    let footer = Rect::new(
        area.x,
        area.bottom() - FOOTER_HEIGHT,
        area.width,
        FOOTER_HEIGHT,
    );
    let body = Rect::new(
        area.x,
        area.y + HEADER_HEIGHT,
        area.width,
        area.height - HEADER_HEIGHT - FOOTER_HEIGHT,
    );
    let side_by_side = area.width >= SIDE_BY_SIDE_WIDTH;
    let lower_min = if side_by_side {
        PROCESS_MIN_HEIGHT
    } else {
        PROCESS_MIN_HEIGHT + HOST_COMPACT_HEIGHT
    };

    let (gpu_mode, gpu_height) = gpu_band(body, content.gpus, lower_min);
    let gpus = Rect::new(body.x, body.y, body.width, gpu_height);
    let lower = Rect::new(
        body.x,
        body.y + gpu_height,
        body.width,
        body.height - gpu_height,
    );
    let mut placements = vec![Placement {
        panel: Panel::Gpus,
        area: gpus,
    }];
    if content.matrix {
        placements.push(Placement {
            panel: Panel::Matrix,
            area: lower,
        });
    } else {
        placements.extend(lower_area(lower, content, side_by_side));
    }
    Screen::Dashboard(Dashboard {
        header,
        footer,
        gpu_mode,
        placements,
    })
}

/// Chooses full panels or compact rows, and the band's height.
fn gpu_band(body: Rect, gpus: usize, lower_min: u16) -> (GpuMode, u16) {
    if gpus == 0 {
        // Room for a reason that wraps once (library errors are long).
        return (GpuMode::Reason, 4);
    }
    let columns = (body.width / FULL_GPU_MIN_WIDTH).clamp(1, gpus as u16);
    let grid_rows = (gpus as u16).div_ceil(columns);
    let full_height = grid_rows.saturating_mul(FULL_GPU_HEIGHT);
    if full_height.saturating_add(lower_min) <= body.height {
        return (GpuMode::Full { columns }, full_height);
    }
    // One row per GPU plus borders; when even that does not fit, the band scrolls.
    let wanted = (gpus as u16).saturating_add(2);
    let room = body.height.saturating_sub(lower_min).max(3);
    let min_lower = HOST_COMPACT_HEIGHT + 4;
    let height = wanted
        .min(room)
        .min(body.height.saturating_sub(min_lower))
        .max(3);
    (GpuMode::Compact, height)
}

/// Places the panels of the lower area: the host panel, the process table and the job queue.
fn lower_area(lower: Rect, content: Content, side_by_side: bool) -> Vec<Placement> {
    let (host, rest) = if side_by_side {
        let host_width = (lower.width / 3).clamp(40, 70);
        (
            Rect::new(lower.x, lower.y, host_width, lower.height),
            Rect::new(
                lower.x + host_width,
                lower.y,
                lower.width - host_width,
                lower.height,
            ),
        )
    } else {
        let host_height = host_height(lower, content.cores);
        (
            Rect::new(lower.x, lower.y, lower.width, host_height),
            Rect::new(
                lower.x,
                lower.y + host_height,
                lower.width,
                lower.height - host_height,
            ),
        )
    };
    let mut placements = vec![Placement {
        panel: Panel::Host,
        area: host,
    }];
    placements.extend(process_and_jobs(rest, content));
    placements
}

/// Smallest job queue panel: borders, a heading and three jobs.
pub const JOBS_MIN_HEIGHT: u16 = 6;

/// Splits the process table's area with the job queue: the queue below the table, sized for
/// its jobs, when both fit; else the focused one of the two gets the whole area.
fn process_and_jobs(area: Rect, content: Content) -> Vec<Placement> {
    let whole = |panel| vec![Placement { panel, area }];
    let wants_jobs = content.jobs > 0 || content.jobs_focused;
    if !wants_jobs {
        return whole(Panel::Processes);
    }
    if area.height < PROCESS_MIN_HEIGHT + JOBS_MIN_HEIGHT {
        return whole(if content.jobs_focused {
            Panel::Jobs
        } else {
            Panel::Processes
        });
    }
    let wanted = (content.jobs as u16).saturating_add(3).max(JOBS_MIN_HEIGHT);
    let jobs_height = wanted.min(area.height / 2).max(JOBS_MIN_HEIGHT);
    let table = area.height - jobs_height;
    vec![
        Placement {
            panel: Panel::Processes,
            area: Rect::new(area.x, area.y, area.width, table),
        },
        Placement {
            panel: Panel::Jobs,
            area: Rect::new(area.x, area.y + table, area.width, jobs_height),
        },
    ]
}

/// The host panel's height when stacked: its full form (CPU, memory and per-core bars) when
/// the process table keeps at least twice its minimum, else one line.
fn host_height(lower: Rect, cores: usize) -> u16 {
    let per_line = usize::from((lower.width.saturating_sub(2) / CORE_CELL_WIDTH).max(1));
    let core_lines = cores.div_ceil(per_line).min(4) as u16;
    // Borders, CPU, RAM, swap, load/uptime, then the per-core lines.
    let full = 2 + 4 + core_lines;
    if lower.height >= full + 2 * PROCESS_MIN_HEIGHT {
        full
    } else {
        HOST_COMPACT_HEIGHT.min(lower.height)
    }
}

/// Width of one per-core bar in the host panel (`c12 ######.. 75%` and a gap).
pub const CORE_CELL_WIDTH: u16 = 18;

#[cfg(test)]
mod tests {
    use super::*;

    fn dashboard(w: u16, h: u16, gpus: usize) -> Dashboard {
        match compute(
            Rect::new(0, 0, w, h),
            Content {
                gpus,
                cores: 32,
                jobs: 0,
                jobs_focused: false,
                matrix: false,
            },
        ) {
            Screen::Dashboard(d) => d,
            other => panic!("expected a dashboard, got {other:?}"),
        }
    }

    #[test]
    fn eight_gpus_fit_80x24_with_five_process_rows() {
        let d = dashboard(80, 24, 8);
        assert_eq!(d.gpu_mode, GpuMode::Compact);
        let gpus = d.area_of(Panel::Gpus).unwrap();
        assert!(gpus.height >= 8 + 2, "{gpus:?}");
        let procs = d.area_of(Panel::Processes).unwrap();
        // Borders and a heading row around at least five rows.
        assert!(procs.height >= 2 + 1 + 5, "{procs:?}");
    }

    #[test]
    fn large_terminal_gets_full_gpu_panels() {
        let d = dashboard(200, 60, 8);
        assert!(matches!(d.gpu_mode, GpuMode::Full { columns } if columns >= 2));
    }

    #[test]
    fn panels_never_overlap_or_leave_the_screen() {
        for (w, h, gpus) in [
            (60, 16, 8),
            (80, 24, 1),
            (80, 24, 8),
            (200, 60, 8),
            (300, 100, 16),
            (61, 17, 0),
        ] {
            let d = dashboard(w, h, gpus);
            let screen = Rect::new(0, 0, w, h);
            for (i, a) in d.placements.iter().enumerate() {
                assert_eq!(screen.intersection(a.area), a.area, "{w}x{h}: {a:?}");
                assert!(!a.area.intersects(d.header) && !a.area.intersects(d.footer));
                for b in &d.placements[i + 1..] {
                    assert!(!a.area.intersects(b.area), "{w}x{h}: {a:?} overlaps {b:?}");
                }
            }
        }
    }

    #[test]
    fn below_the_minimum_is_too_small_never_a_panic() {
        for (w, h) in [(0, 0), (1, 1), (59, 24), (80, 15)] {
            assert_eq!(
                compute(
                    Rect::new(0, 0, w, h),
                    Content {
                        gpus: 8,
                        cores: 4,
                        jobs: 0,
                        jobs_focused: false,
                        matrix: false
                    }
                ),
                Screen::TooSmall {
                    width: w,
                    height: h
                }
            );
        }
    }

    #[test]
    fn focus_ring_visits_every_panel_and_returns() {
        let mut p = Panel::Gpus;
        let mut seen = Vec::new();
        for _ in 0..Panel::RING.len() {
            seen.push(p);
            p = p.next();
        }
        assert_eq!(p, Panel::Gpus);
        assert_eq!(seen.len(), Panel::RING.len());
        assert_eq!(Panel::Gpus.previous(), Panel::Jobs);
    }

    #[test]
    fn the_job_queue_shares_the_process_area_or_takes_it_when_focused() {
        let layout = |w, h, gpus, jobs, jobs_focused| match compute(
            Rect::new(0, 0, w, h),
            Content {
                gpus,
                cores: 32,
                jobs,
                jobs_focused,
                matrix: false,
            },
        ) {
            Screen::Dashboard(d) => d,
            other => panic!("{other:?}"),
        };
        // Room for both: the queue sits below the process table, sized for its jobs.
        let d = layout(120, 50, 1, 4, false);
        let jobs = d.area_of(Panel::Jobs).unwrap();
        let procs = d.area_of(Panel::Processes).unwrap();
        assert_eq!(jobs.height, 7);
        assert_eq!(procs.bottom(), jobs.top());
        // 80x24 with eight GPUs: only one fits; the focused one wins.
        let d = layout(80, 24, 8, 4, false);
        assert!(d.area_of(Panel::Jobs).is_none());
        let d = layout(80, 24, 8, 4, true);
        assert!(d.area_of(Panel::Processes).is_none());
        assert!(d.area_of(Panel::Jobs).unwrap().height >= PROCESS_MIN_HEIGHT);
        // No jobs and not focused: no queue panel.
        assert!(layout(120, 50, 1, 0, false).area_of(Panel::Jobs).is_none());
    }

    #[test]
    fn click_position_finds_its_panel() {
        let d = dashboard(80, 24, 8);
        let procs = d.area_of(Panel::Processes).unwrap();
        assert_eq!(d.panel_at(procs.x + 1, procs.y + 1), Some(Panel::Processes));
        assert_eq!(d.panel_at(0, 0), None);
    }
}
