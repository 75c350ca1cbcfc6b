//! The dashboard: state, event loop, layout and panels (ratatui + crossterm).
//!
//! Data flows one way: the sampler thread sends frames, [`app::App::update`] folds them (and
//! keys, mouse events, resizes) into the state, and [`panels::draw`] paints the state. Only
//! [`event`] touches the terminal.

pub mod app;
pub mod event;
pub mod format;
pub mod job_queue;
pub mod layout;
pub mod matrix;
pub mod panels;
pub mod process_table;
pub mod submit_form;
pub mod theme;

use std::time::Duration;

use crate::cli::GlobalArgs;
use crate::config::Config;
use crate::jobs::client::JobFeed;
use crate::telemetry::history::History;
use crate::telemetry::sampler::Sampler;
use crate::telemetry::{self, TelemetryError};
use app::{App, SourceInfo};
use theme::{Theme, ThemeChoice};

/// How often the job queue panel reads the store.
pub const JOB_FEED_INTERVAL: Duration = Duration::from_millis(500);

/// Allowed sample intervals in milliseconds.
pub const INTERVAL_RANGE_MS: std::ops::RangeInclusive<u64> = 100..=60_000;

/// Why the dashboard could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// `--interval` outside the allowed range.
    #[error("--interval {value} is out of range; give a sample interval from 100 to 60000 ms")]
    Interval {
        /// The value given.
        value: u64,
    },
    /// The telemetry source could not be opened (unreadable or corrupt trace, ...).
    #[error(transparent)]
    Telemetry(#[from] TelemetryError),
    /// The terminal could not be set up, read or drawn on.
    #[error("terminal error: {0}; run neuronmap in an interactive terminal (or use `neuronmap snapshot`)")]
    Terminal(std::io::Error),
    /// SIGTERM/SIGHUP handlers could not be installed.
    #[error("cannot install signal handlers: {0}")]
    Signal(std::io::Error),
    /// The async runtime could not start.
    #[error("cannot start the event loop: {0}")]
    Runtime(std::io::Error),
}

/// The sample interval to use: `--interval` over `telemetry.interval_ms`, checked.
pub fn sample_interval(global: &GlobalArgs, config: &Config) -> Result<Duration, TuiError> {
    let ms = global.interval.unwrap_or(config.telemetry.interval_ms);
    if !INTERVAL_RANGE_MS.contains(&ms) {
        return Err(TuiError::Interval { value: ms });
    }
    Ok(Duration::from_millis(ms))
}

/// The uid whose processes the viewer may signal.
pub fn viewer_uid() -> u32 {
    // SAFETY: getuid(2) has no preconditions and cannot fail.
    unsafe { libc::getuid() }
}

/// Runs the dashboard until the user quits (or SIGTERM/SIGHUP). The terminal is restored on
/// every exit path, panics included.
pub fn run(global: &GlobalArgs, config: &Config) -> anyhow::Result<()> {
    let interval = sample_interval(global, config)?;
    let (source, origin) = telemetry::open_source(global).map_err(TuiError::from)?;
    let choice = ThemeChoice::resolve(
        &config.ui,
        global.no_color,
        global.ascii,
        std::env::var("NO_COLOR").ok().as_deref(),
    );
    let source_info = SourceInfo {
        origin,
        interval_ms: interval.as_millis() as u64,
        speed: global.speed,
        looping: global.loop_replay,
    };
    let history = History::for_span(config.telemetry.history(), interval);
    let mut app = App::new(
        source_info,
        Theme::new(choice),
        &config.ui,
        history,
        viewer_uid(),
    );
    app.auto_start_daemon = config.jobs.auto_start_daemon;
    // The matrix: the catalogue and the CPU calibration (cached after the first run).
    let catalogue = crate::models::Catalogue::load(
        &crate::models::CatalogueSettings::from_process(&config.models),
    )?;
    let cpu_speed = crate::estimate::time::cpu_calibration()?.speed;
    app.matrix = matrix::MatrixState::new(&catalogue.entries, cpu_speed);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(TuiError::Runtime)?;
    // The sampler lives as long as the loop; dropping it stops its thread.
    let (sampler, frames) = Sampler::spawn(source, interval);
    let (job_feed, jobs) = JobFeed::spawn(JOB_FEED_INTERVAL);
    let result = runtime.block_on(event::run_loop(app, frames, jobs));
    drop(job_feed);
    drop(sampler);
    result.map_err(Into::into)
}

#[cfg(test)]
mod tests;
