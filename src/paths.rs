//! Where NeuronMap keeps its state (job database, logs): `NEURONMAP_STATE_DIR` if set, else the
//! XDG state directory (`~/.local/state/neuronmap`). The directory is created with mode 0700,
//! since job specs and logs may name private data sets.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::PathBuf;

/// Environment variable that overrides the state directory.
pub const STATE_DIR_ENV: &str = "NEURONMAP_STATE_DIR";

/// Errors finding or creating the state directory.
#[derive(Debug, thiserror::Error)]
pub enum PathsError {
    /// No home directory to put the state under.
    #[error("cannot find a home directory for the state folder; set {STATE_DIR_ENV}")]
    NoHome,
    /// The directory could not be created or opened.
    #[error(
        "cannot create state folder {path}: {source}; set {STATE_DIR_ENV} to a writable folder"
    )]
    Create {
        /// The folder.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// The state directory, created (mode 0700) if missing.
pub fn state_dir() -> Result<PathBuf, PathsError> {
    state_dir_from(std::env::var_os(STATE_DIR_ENV))
}

/// The state directory given the value of [`STATE_DIR_ENV`] (or `None`), created if missing.
pub fn state_dir_from(overridden: Option<std::ffi::OsString>) -> Result<PathBuf, PathsError> {
    let path = match overridden.filter(|v| !v.is_empty()) {
        Some(p) => PathBuf::from(p),
        None => {
            let dirs =
                directories::ProjectDirs::from("", "", "neuronmap").ok_or(PathsError::NoHome)?;
            dirs.state_dir()
                .map(PathBuf::from)
                .unwrap_or_else(|| dirs.data_local_dir().to_path_buf())
        }
    };
    let create = |source| PathsError::Create {
        path: path.clone(),
        source,
    };
    if !path.is_dir() {
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&path)
            .map_err(create)?;
    }
    Ok(path)
}

/// Sends `tracing` output to `<state dir>/neuronmap.log` (level from `NEURONMAP_LOG`, default
/// `info`), never to the terminal the dashboard draws on. Without a usable state directory the
/// program runs without a log.
pub fn init_file_logging() {
    let Ok(dir) = state_dir() else {
        return;
    };
    let path = dir.join("neuronmap.log");
    let Ok(file) = OpenOptions::new().create(true).append(true).open(&path) else {
        return;
    };
    let _ = file.set_permissions(std::fs::Permissions::from_mode(0o600));
    let filter = tracing_subscriber::EnvFilter::try_from_env("NEURONMAP_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::sync::Mutex::new(file))
        .with_ansi(false)
        .with_env_filter(filter)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_dir_is_created_private() {
        let tmp = tempfile::tempdir().unwrap();
        let target = tmp.path().join("a/b/state");
        let got = state_dir_from(Some(target.clone().into_os_string())).unwrap();
        assert_eq!(got, target);
        let mode = std::fs::metadata(&target).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
    }
}
