//! The configuration file: types, defaults, loading and errors that point at a line and column.
//!
//! Lookup order: `--config PATH`, then `NEURONMAP_CONFIG`, then `config.toml` in the XDG config
//! directory (`~/.config/neuronmap/config.toml`). A missing file at the default location means
//! "all defaults"; a missing file that was named explicitly is an error. Unknown keys are errors.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Environment variable that names the config file when `--config` is not given.
pub const CONFIG_ENV: &str = "NEURONMAP_CONFIG";

/// Errors from reading the config file. Each says which file and what to do.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file named by `--config` or `NEURONMAP_CONFIG` could not be read.
    #[error(
        "cannot read config file {path}: {source}; fix the path given by --config or {CONFIG_ENV}"
    )]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML or does not match the schema.
    #[error("config file {path}, line {line}, column {column}: {message}; see config.example.toml for every key")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line of the problem.
        line: usize,
        /// 1-based column of the problem.
        column: usize,
        /// What is wrong (includes the key name for unknown keys).
        message: String,
    },
    /// A value is well-formed but out of range.
    #[error("config file {path}: {key} = {value} is out of range ({expected})")]
    Range {
        /// The file.
        path: PathBuf,
        /// Dotted key name.
        key: &'static str,
        /// The value given.
        value: String,
        /// The allowed range.
        expected: &'static str,
    },
}

/// The whole configuration. Every field has a default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Sampling of GPUs and the host.
    pub telemetry: TelemetryConfig,
    /// Look and feel of the dashboard.
    pub ui: UiConfig,
    /// Where models come from besides the registry and the Hugging Face cache.
    pub models: ModelsConfig,
    /// The job queue's scheduler.
    pub jobs: JobsConfig,
}

/// `[telemetry]`: how often to sample and how much history to keep.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Milliseconds between samples (100 to 60000).
    pub interval_ms: u64,
    /// Seconds of history kept per GPU for the graphs (10 to 86400).
    pub history_seconds: u64,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            interval_ms: 1000,
            history_seconds: 600,
        }
    }
}

impl TelemetryConfig {
    /// The sample interval as a duration.
    pub fn interval(&self) -> Duration {
        Duration::from_millis(self.interval_ms)
    }

    /// The history span as a duration.
    pub fn history(&self) -> Duration {
        Duration::from_secs(self.history_seconds)
    }
}

/// When to use colour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ColorMode {
    /// Colour unless `NO_COLOR` is set.
    #[default]
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Colour palette.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ThemeName {
    /// Bright colours on a dark background.
    #[default]
    Dark,
    /// Darker colours for light backgrounds.
    Light,
    /// The 16 basic ANSI colours only (safe in any terminal).
    Basic,
}

/// Which panel has the keyboard focus when the dashboard starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum FocusPanel {
    /// The GPU area.
    #[default]
    Gpus,
    /// The process table.
    Processes,
    /// The host panel.
    Host,
}

/// A field that a compact GPU row can show.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CompactField {
    /// GPU utilisation gauge.
    Util,
    /// Memory used / total.
    Memory,
    /// Temperature.
    Temp,
    /// Power draw / limit.
    Power,
    /// Fan speed.
    Fan,
    /// SM clock.
    Clock,
    /// Number of processes.
    Procs,
    /// Active throttle reasons.
    Throttle,
}

/// `[ui]`: colours, characters and layout choices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// `auto`, `always` or `never`; `NO_COLOR` and `--no-color` turn colour off under `auto`.
    pub color: ColorMode,
    /// `dark`, `light` or `basic`.
    pub theme: ThemeName,
    /// Use ASCII only (no box-drawing or block characters).
    pub ascii: bool,
    /// What the one-line-per-GPU rows show, in order.
    pub compact_fields: Vec<CompactField>,
    /// Panel focused at start.
    pub default_focus: FocusPanel,
}

impl Default for UiConfig {
    fn default() -> Self {
        Self {
            color: ColorMode::Auto,
            theme: ThemeName::Dark,
            ascii: false,
            compact_fields: vec![
                CompactField::Util,
                CompactField::Memory,
                CompactField::Temp,
                CompactField::Power,
                CompactField::Procs,
                CompactField::Throttle,
            ],
            default_focus: FocusPanel::Gpus,
        }
    }
}

/// `[models]`: extra model folders.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelsConfig {
    /// Local model folders (each with `config.json` and safetensors files) added to the catalogue.
    pub folders: Vec<PathBuf>,
}

/// `[jobs]`: how the scheduler daemon places and runs jobs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JobsConfig {
    /// `neuronmap submit` starts the daemon when none runs.
    pub auto_start_daemon: bool,
    /// The estimate is multiplied by this before it is compared with free memory (1.0 to 4.0).
    pub memory_margin: f64,
    /// Most jobs on one GPU at once (1 to 64).
    pub max_jobs_per_gpu: u32,
    /// CPU cores one CPU job may use; CPU jobs run at most `cores / this` at once (1 to 1024).
    pub cpu_cores_per_job: u32,
    /// Seconds a cancelled job gets to finish its shard before SIGKILL (1 to 3600).
    pub cancel_timeout_seconds: u64,
    /// How often the daemon looks for new jobs and finished workers, in ms (10 to 5000).
    pub poll_interval_ms: u64,
    /// Target shard size of job outputs in MiB (1 to 65536); a cancel or a crash loses at
    /// most one shard's work.
    pub shard_mib: u64,
}

impl Default for JobsConfig {
    fn default() -> Self {
        Self {
            auto_start_daemon: true,
            memory_margin: 1.15,
            max_jobs_per_gpu: 2,
            cpu_cores_per_job: 4,
            cancel_timeout_seconds: 30,
            poll_interval_ms: 100,
            shard_mib: 256,
        }
    }
}

/// The default config file location (`$XDG_CONFIG_HOME/neuronmap/config.toml`).
pub fn default_path() -> Option<PathBuf> {
    directories::ProjectDirs::from("", "", "neuronmap").map(|d| d.config_dir().join("config.toml"))
}

impl Config {
    /// Loads the config: `explicit` (from `--config`), else `NEURONMAP_CONFIG`, else the default
    /// location; a missing default file gives the defaults.
    pub fn load(explicit: Option<&Path>) -> Result<Self, ConfigError> {
        let from_env = std::env::var_os(CONFIG_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        match explicit.map(Path::to_path_buf).or(from_env) {
            Some(path) => Self::load_file(&path),
            None => match default_path() {
                Some(path) if path.exists() => Self::load_file(&path),
                _ => Ok(Self::default()),
            },
        }
    }

    /// Reads and validates one file.
    pub fn load_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parses and validates config text; `path` is used in messages only.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let config: Config = toml::from_str(text).map_err(|e| {
            let (line, column) = e
                .span()
                .map(|span| line_column(text, span.start))
                .unwrap_or((1, 1));
            ConfigError::Parse {
                path: path.to_path_buf(),
                line,
                column,
                message: e.message().trim().to_string(),
            }
        })?;
        config.validate(path)?;
        Ok(config)
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let t = &self.telemetry;
        if !(100..=60_000).contains(&t.interval_ms) {
            return Err(ConfigError::Range {
                path: path.to_path_buf(),
                key: "telemetry.interval_ms",
                value: t.interval_ms.to_string(),
                expected: "100 to 60000",
            });
        }
        if !(10..=86_400).contains(&t.history_seconds) {
            return Err(ConfigError::Range {
                path: path.to_path_buf(),
                key: "telemetry.history_seconds",
                value: t.history_seconds.to_string(),
                expected: "10 to 86400",
            });
        }
        self.jobs.validate(path)
    }
}

impl JobsConfig {
    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let range = |key, value: String, ok: bool, expected| {
            if ok {
                Ok(())
            } else {
                Err(ConfigError::Range {
                    path: path.to_path_buf(),
                    key,
                    value,
                    expected,
                })
            }
        };
        range(
            "jobs.memory_margin",
            self.memory_margin.to_string(),
            (1.0..=4.0).contains(&self.memory_margin),
            "1.0 to 4.0",
        )?;
        range(
            "jobs.max_jobs_per_gpu",
            self.max_jobs_per_gpu.to_string(),
            (1..=64).contains(&self.max_jobs_per_gpu),
            "1 to 64",
        )?;
        range(
            "jobs.cpu_cores_per_job",
            self.cpu_cores_per_job.to_string(),
            (1..=1024).contains(&self.cpu_cores_per_job),
            "1 to 1024",
        )?;
        range(
            "jobs.cancel_timeout_seconds",
            self.cancel_timeout_seconds.to_string(),
            (1..=3600).contains(&self.cancel_timeout_seconds),
            "1 to 3600",
        )?;
        range(
            "jobs.poll_interval_ms",
            self.poll_interval_ms.to_string(),
            (10..=5000).contains(&self.poll_interval_ms),
            "10 to 5000",
        )?;
        range(
            "jobs.shard_mib",
            self.shard_mib.to_string(),
            (1..=65_536).contains(&self.shard_mib),
            "1 to 65536",
        )
    }
}

/// 1-based line and column of a byte offset.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, Path::new("test.toml"))
    }

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn unknown_key_names_the_key_and_its_line() {
        let err = parse("[telemetry]\ninterval_ms = 500\nbogus_key = 1\n").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bogus_key"), "{msg}");
        assert!(msg.contains("line 3, column 1"), "{msg}");
    }

    #[test]
    fn syntax_error_points_at_line_and_column() {
        let err = parse("[ui]\nascii = tru\n").unwrap_err();
        match err {
            ConfigError::Parse { line, column, .. } => assert_eq!((line, column), (2, 9)),
            other => panic!("unexpected {other}"),
        }
    }

    #[test]
    fn interval_out_of_range_is_rejected() {
        let err = parse("[telemetry]\ninterval_ms = 50\n").unwrap_err();
        assert!(err.to_string().contains("telemetry.interval_ms"));
    }

    #[test]
    fn jobs_margin_below_one_is_rejected() {
        let err = parse("[jobs]\nmemory_margin = 0.5\n").unwrap_err();
        assert!(err.to_string().contains("jobs.memory_margin"), "{err}");
    }

    #[test]
    fn example_config_parses_to_the_defaults() {
        let text = include_str!("../config.example.toml");
        assert_eq!(parse(text).unwrap(), Config::default());
    }
}
