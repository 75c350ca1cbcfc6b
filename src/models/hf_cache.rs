//! The local Hugging Face cache, read with the same rules as Python's `huggingface_hub`.
//!
//! Location: `HF_HUB_CACHE`, then the legacy `HUGGINGFACE_HUB_CACHE`, then `HF_HOME/hub`, then
//! `XDG_CACHE_HOME/huggingface/hub`, then `~/.cache/huggingface/hub`. Layout of one repo:
//!
//! ```text
//! models--org--name/refs/main                 the commit hash a branch or tag points at
//! models--org--name/snapshots/<commit>/FILE   symlinks into blobs/ (or plain files on Windows)
//! models--org--name/blobs/<etag>[.incomplete] file contents; `.incomplete` (Python) or `.part`
//!                                             (hf-hub) while a download is in flight
//! ```

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// Why a cached model could not be found.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CacheError {
    /// No `models--org--name` folder.
    #[error("\"{id}\" is not in the Hugging Face cache at {root}; download it with `neuronmap pull {id}`")]
    NotCached {
        /// The repo id.
        id: String,
        /// The cache root searched.
        root: PathBuf,
    },
    /// The repo is cached but not at this revision.
    #[error("\"{id}\" is cached, but not at revision \"{revision}\" (cached: {available}); run `neuronmap pull {id} --revision {revision}`")]
    RevisionNotCached {
        /// The repo id.
        id: String,
        /// The revision asked for.
        revision: String,
        /// Revisions that are there.
        available: String,
    },
}

/// Reads an environment variable as a non-empty string.
pub type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment, as an [`EnvLookup`].
pub fn process_env(key: &str) -> Option<String> {
    std::env::var(key).ok().filter(|v| !v.is_empty())
}

/// The cache root from the environment (see the module docs for the order).
pub fn cache_root(env: EnvLookup) -> Option<PathBuf> {
    if let Some(dir) = env("HF_HUB_CACHE").or_else(|| env("HUGGINGFACE_HUB_CACHE")) {
        return Some(PathBuf::from(dir));
    }
    if let Some(home) = env("HF_HOME") {
        return Some(Path::new(&home).join("hub"));
    }
    if let Some(xdg) = env("XDG_CACHE_HOME") {
        return Some(Path::new(&xdg).join("huggingface").join("hub"));
    }
    env("HOME").map(|home| {
        Path::new(&home)
            .join(".cache")
            .join("huggingface")
            .join("hub")
    })
}

/// `HF_HUB_OFFLINE` as `huggingface_hub` reads it: `1`, `ON`, `YES` or `TRUE` (any case).
pub fn offline(env: EnvLookup) -> bool {
    env("HF_HUB_OFFLINE").is_some_and(|v| {
        matches!(
            v.trim().to_ascii_uppercase().as_str(),
            "1" | "ON" | "YES" | "TRUE"
        )
    })
}

/// The folder name of a model repo: `org/name` becomes `models--org--name`.
pub fn repo_folder(id: &str) -> String {
    format!("models--{}", id.replace('/', "--"))
}

/// The repo id of a `models--org--name` folder name.
pub fn repo_id(folder: &str) -> Option<String> {
    folder
        .strip_prefix("models--")
        .filter(|rest| !rest.is_empty())
        .map(|rest| rest.replace("--", "/"))
}

fn is_commit_hash(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The snapshot folder of `id` at `revision` (a branch or tag under `refs/`, or a commit hash;
/// `None` means `main`).
pub fn resolve_snapshot(
    cache_root: &Path,
    id: &str,
    revision: Option<&str>,
) -> Result<PathBuf, CacheError> {
    let repo = cache_root.join(repo_folder(id));
    if !repo.join("snapshots").is_dir() {
        return Err(CacheError::NotCached {
            id: id.to_string(),
            root: cache_root.to_path_buf(),
        });
    }
    let revision = revision.unwrap_or("main");
    let commit = match std::fs::read_to_string(repo.join("refs").join(revision)) {
        Ok(text) => text.trim().to_string(),
        Err(_) => revision.to_string(),
    };
    let snapshot = repo.join("snapshots").join(&commit);
    if is_commit_hash(&commit) && snapshot.is_dir() {
        return Ok(snapshot);
    }
    let repo_scan = scan_repo(&repo, id);
    // `main` may be absent when only a pinned revision was downloaded: one snapshot is then
    // unambiguous.
    if revision == "main" && repo_scan.snapshots.len() == 1 {
        return Ok(repo_scan.snapshots[0].path.clone());
    }
    let available: Vec<String> = repo_scan
        .snapshots
        .iter()
        .map(|s| s.label())
        .collect::<Vec<_>>();
    Err(CacheError::RevisionNotCached {
        id: id.to_string(),
        revision: revision.to_string(),
        available: if available.is_empty() {
            "none".to_string()
        } else {
            available.join(", ")
        },
    })
}

/// One cached repo.
#[derive(Debug, Clone, PartialEq)]
pub struct CachedRepo {
    /// The repo id (`org/name`).
    pub id: String,
    /// The `models--org--name` folder.
    pub path: PathBuf,
    /// Its snapshots, the one `main` points at first.
    pub snapshots: Vec<Snapshot>,
    /// Blobs still being downloaded (`*.incomplete`, `*.part`).
    pub incomplete_blobs: usize,
}

/// One snapshot (a commit) of a cached repo.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// The commit hash.
    pub commit: String,
    /// Branches and tags under `refs/` that point at it.
    pub refs: Vec<String>,
    /// The snapshot folder.
    pub path: PathBuf,
    /// Files present (relative paths), with the size of what they point at; `None` for a
    /// dangling link.
    pub files: BTreeMap<String, Option<u64>>,
    /// Bytes on disk of the blobs this snapshot uses (each blob once).
    pub size_bytes: u64,
}

impl Snapshot {
    /// `main (abc1234)` or the short commit.
    pub fn label(&self) -> String {
        let short = &self.commit[..self.commit.len().min(7)];
        if self.refs.is_empty() {
            short.to_string()
        } else {
            format!("{} ({short})", self.refs.join(","))
        }
    }

    /// The revision to show: the first ref, else the short commit.
    pub fn revision(&self) -> String {
        self.refs
            .first()
            .cloned()
            .unwrap_or_else(|| self.commit[..self.commit.len().min(12)].to_string())
    }
}

/// Every model repo in the cache (an unreadable or missing root gives none).
pub fn scan(cache_root: &Path) -> Vec<CachedRepo> {
    let Ok(entries) = std::fs::read_dir(cache_root) else {
        return Vec::new();
    };
    let mut repos: Vec<CachedRepo> = entries
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().to_string_lossy().into_owned();
            let id = repo_id(&name)?;
            entry.path().is_dir().then(|| scan_repo(&entry.path(), &id))
        })
        .collect();
    repos.sort_by(|a, b| a.id.cmp(&b.id));
    repos
}

fn read_refs(repo: &Path) -> Vec<(String, String)> {
    let mut refs = Vec::new();
    let mut stack = vec![(repo.join("refs"), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let path = entry.path();
            if path.is_dir() {
                // Tags and PR refs (`refs/pr/1`) nest.
                stack.push((path, format!("{name}/")));
            } else if let Ok(text) = std::fs::read_to_string(&path) {
                refs.push((name, text.trim().to_string()));
            }
        }
    }
    refs.sort();
    refs
}

fn scan_repo(repo: &Path, id: &str) -> CachedRepo {
    let refs = read_refs(repo);
    let mut snapshots: Vec<Snapshot> = std::fs::read_dir(repo.join("snapshots"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| e.path().is_dir())
                .map(|e| {
                    let commit = e.file_name().to_string_lossy().into_owned();
                    let snapshot_refs = refs
                        .iter()
                        .filter(|(_, c)| *c == commit)
                        .map(|(name, _)| name.clone())
                        .collect();
                    scan_snapshot(&e.path(), commit, snapshot_refs)
                })
                .collect()
        })
        .unwrap_or_default();
    snapshots.sort_by_key(|s| {
        (
            !s.refs.iter().any(|r| r == "main"),
            s.refs.is_empty(),
            s.commit.clone(),
        )
    });
    let incomplete_blobs = std::fs::read_dir(repo.join("blobs"))
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.ends_with(".incomplete") || name.ends_with(".part")
                })
                .count()
        })
        .unwrap_or(0);
    CachedRepo {
        id: id.to_string(),
        path: repo.to_path_buf(),
        snapshots,
        incomplete_blobs,
    }
}

fn scan_snapshot(path: &Path, commit: String, refs: Vec<String>) -> Snapshot {
    let mut files = BTreeMap::new();
    let mut seen_blobs = HashSet::new();
    let mut size_bytes = 0;
    let mut stack = vec![(path.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
            let entry_path = entry.path();
            match std::fs::metadata(&entry_path) {
                Ok(meta) if meta.is_dir() => stack.push((entry_path, format!("{name}/"))),
                Ok(meta) => {
                    let target = std::fs::canonicalize(&entry_path).unwrap_or(entry_path);
                    if seen_blobs.insert(target) {
                        size_bytes += meta.len();
                    }
                    files.insert(name, Some(meta.len()));
                }
                // A symlink whose blob is gone.
                Err(_) => {
                    files.insert(name, None);
                }
            }
        }
    }
    Snapshot {
        commit,
        refs,
        path: path.to_path_buf(),
        files,
        size_bytes,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn cache_root_follows_huggingface_hub_precedence() {
        let all = [
            ("HF_HUB_CACHE", "/a"),
            ("HF_HOME", "/b"),
            ("XDG_CACHE_HOME", "/c"),
            ("HOME", "/d"),
        ];
        assert_eq!(cache_root(&env(&all)), Some(PathBuf::from("/a")));
        assert_eq!(cache_root(&env(&all[1..])), Some(PathBuf::from("/b/hub")));
        assert_eq!(
            cache_root(&env(&all[2..])),
            Some(PathBuf::from("/c/huggingface/hub"))
        );
        assert_eq!(
            cache_root(&env(&all[3..])),
            Some(PathBuf::from("/d/.cache/huggingface/hub"))
        );
        assert_eq!(cache_root(&env(&[])), None);
        assert_eq!(
            cache_root(&env(&[
                ("HUGGINGFACE_HUB_CACHE", "/legacy"),
                ("HF_HOME", "/b")
            ])),
            Some(PathBuf::from("/legacy"))
        );
    }

    #[test]
    fn offline_accepts_the_same_truthy_values_as_python() {
        for v in ["1", "ON", "yes", "True"] {
            assert!(offline(&env(&[("HF_HUB_OFFLINE", v)])), "{v}");
        }
        for v in ["0", "false", "no", ""] {
            assert!(!offline(&env(&[("HF_HUB_OFFLINE", v)])), "{v}");
        }
        assert!(!offline(&env(&[])));
    }

    #[test]
    fn repo_folder_round_trips() {
        assert_eq!(
            repo_folder("meta-llama/Llama-2-7b-hf"),
            "models--meta-llama--Llama-2-7b-hf"
        );
        assert_eq!(repo_id("models--gpt2").as_deref(), Some("gpt2"));
        assert_eq!(repo_id("datasets--x"), None);
    }
}
