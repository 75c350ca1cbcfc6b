//! The job store: one SQLite file (`jobs.db` in the state directory) in WAL mode, shared by the
//! CLI, the daemon, the workers and the dashboard. It is the one source of truth; every state
//! change happens in one transaction together with its event row.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{params, Connection, OptionalExtension, Row, TransactionBehavior};

use super::job::{DeviceRequest, Failure, Job, JobEvent, JobId, JobState, Submission, Target};
use crate::engine::request::{ExtractRequest, RunProgress};
use crate::paths::PathsError;

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "jobs.db";

/// The schema version this build writes. Each entry of [`MIGRATIONS`] moves one version up.
pub const SCHEMA_VERSION: i64 = 1;

/// Schema migrations, in order; migration `i` takes the database from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[r"
CREATE TABLE jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    spec TEXT NOT NULL,
    model TEXT NOT NULL,
    analysis TEXT NOT NULL,
    output TEXT NOT NULL,
    device TEXT NOT NULL,
    priority INTEGER NOT NULL DEFAULT 0,
    after_job INTEGER,
    held INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    submitted_ms INTEGER NOT NULL,
    started_ms INTEGER,
    finished_ms INTEGER,
    attempts INTEGER NOT NULL DEFAULT 0,
    placement TEXT,
    estimate_bytes INTEGER,
    pid INTEGER,
    pid_start_ticks INTEGER,
    wait_reason TEXT,
    progress REAL NOT NULL DEFAULT 0,
    run_progress TEXT,
    peak_memory_bytes INTEGER,
    failure TEXT,
    error TEXT,
    cancel_requested_ms INTEGER
);
CREATE INDEX jobs_by_state ON jobs(state, priority DESC, id);
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    from_state TEXT,
    to_state TEXT NOT NULL,
    reason TEXT NOT NULL
);
CREATE INDEX events_by_job ON events(job_id, id);
"];

/// Errors from the job store. Each names the database or the job and says what to do.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The state directory is unusable.
    #[error(transparent)]
    StateDir(#[from] PathsError),
    /// SQLite failed.
    #[error(
        "job database {path}: {source}; check that the folder is writable and the disk not full"
    )]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The SQLite error.
        source: rusqlite::Error,
    },
    /// The database was written by a newer NeuronMap.
    #[error("job database {path} has schema version {found}, newer than this build's {SCHEMA_VERSION}; upgrade neuronmap")]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The version found.
        found: i64,
    },
    /// No job with this id.
    #[error("no job {0}; `neuronmap jobs --all` lists every job")]
    NoSuchJob(JobId),
    /// The job is not in a state that allows the action.
    #[error("job {id} is {state}; {action}")]
    WrongState {
        /// The job.
        id: JobId,
        /// Its state.
        state: JobState,
        /// What cannot be done and what can.
        action: &'static str,
    },
    /// A row could not be decoded (a damaged or hand-edited database).
    #[error("job database {path}: job {id} has a bad {column}: {message}")]
    BadRow {
        /// The database file.
        path: PathBuf,
        /// The job.
        id: i64,
        /// The column.
        column: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// What `cancel` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job had not started; it is cancelled now.
    Cancelled,
    /// The job runs; the request is recorded and its worker should be signalled.
    Requested {
        /// The worker's pid, when known.
        pid: Option<i64>,
        /// The worker's start time in clock ticks, when known.
        start_ticks: Option<i64>,
    },
}

/// A queued job as the scheduler needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The job.
    pub id: JobId,
    /// Its extraction.
    pub spec: ExtractRequest,
    /// Where it may run.
    pub device: DeviceRequest,
    /// The job it waits for.
    pub after: Option<JobId>,
    /// The wait reason stored now (to write only changes).
    pub wait_reason: Option<String>,
}

/// A running job as the scheduler needs it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunningJob {
    /// The job.
    pub id: JobId,
    /// Where it runs (`None` only in a damaged row).
    pub placement: Option<Target>,
    /// The worker's pid, once recorded.
    pub pid: Option<i64>,
    /// The worker's start time in clock ticks since boot, once recorded.
    pub pid_start_ticks: Option<i64>,
    /// Estimated peak memory (with no margin).
    pub estimate_bytes: Option<i64>,
    /// Highest memory the worker reported so far.
    pub peak_memory_bytes: Option<i64>,
    /// When a cancel was requested.
    pub cancel_requested_ms: Option<i64>,
}

/// How a running job ended, as recorded by [`Store::finish`].
#[derive(Debug, Clone, PartialEq)]
pub struct Ending {
    /// `Succeeded`, `Failed` or `Cancelled`.
    pub state: JobState,
    /// Why it failed.
    pub failure: Option<Failure>,
    /// Error message.
    pub error: Option<String>,
    /// Event text.
    pub reason: String,
}

/// A connection to the job database.
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

/// The wait reason of a held job.
pub const HELD_REASON: &str = "held; `neuronmap release` lets it run";

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    crate::telemetry::live::now_ms() as i64
}

const JOB_COLUMNS: &str =
    "id, state, model, analysis, device, placement, output, priority, after_job, held, \
     progress, wait_reason, error, failure, submitted_ms, started_ms, finished_ms, attempts, pid, \
     estimate_bytes, run_progress, cancel_requested_ms, spec";

impl Store {
    /// Opens (creating and migrating) `jobs.db` in the state directory.
    pub fn open_default() -> Result<Self, StoreError> {
        let dir = crate::paths::state_dir()?;
        Self::open(&dir.join(DB_FILE))
    }

    /// Opens (creating and migrating) the database at `path`.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let err = |source| StoreError::Sqlite {
            path: path.to_path_buf(),
            source,
        };
        let conn = Connection::open(path).map_err(&err)?;
        conn.busy_timeout(Duration::from_secs(30)).map_err(&err)?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .map_err(&err)?;
        conn.pragma_update(None, "synchronous", "NORMAL")
            .map_err(&err)?;
        let mut store = Self {
            conn,
            path: path.to_path_buf(),
        };
        store.migrate()?;
        Ok(store)
    }

    fn sql(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sqlite {
            path: self.path.clone(),
            source,
        }
    }

    fn migrate(&mut self) -> Result<(), StoreError> {
        let err = sql_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        tx.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            .map_err(&err)?;
        let found: Option<i64> = tx
            .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
            .map_err(&err)?;
        let found = found.unwrap_or(0);
        if found > SCHEMA_VERSION {
            return Err(StoreError::TooNew {
                path: self.path.clone(),
                found,
            });
        }
        for (version, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
            tx.execute_batch(sql).map_err(&err)?;
            tx.execute(
                "INSERT INTO schema_version (version) VALUES (?1)",
                [version as i64 + 1],
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    /// A number that changes whenever another connection commits (SQLite's `data_version`):
    /// the daemon polls it to notice submissions without scanning the queue.
    pub fn data_version(&self) -> Result<i64, StoreError> {
        self.conn
            .query_row("PRAGMA data_version", [], |r| r.get(0))
            .map_err(|e| self.sql(e))
    }

    /// A summary that changes whenever the queue changes in a way scheduling cares about
    /// (a job added, started, ended, removed, held or released) but not on progress reports,
    /// so the daemon can skip passes that would decide nothing new.
    pub fn queue_signature(&self) -> Result<[i64; 4], StoreError> {
        self.conn
            .query_row(
                "SELECT count(*), coalesce(max(id), 0), \
                 coalesce(sum(state = 'running'), 0), coalesce(sum(state = 'queued' AND held = 0), 0) \
                 FROM jobs",
                [],
                |r| Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?]),
            )
            .map_err(|e| self.sql(e))
    }

    /// Adds a job and its `submitted` event; returns its id.
    pub fn submit(&mut self, sub: &Submission) -> Result<JobId, StoreError> {
        let spec = serde_json::to_string(&sub.request).map_err(|e| StoreError::BadRow {
            path: self.path.clone(),
            id: 0,
            column: "spec",
            message: e.to_string(),
        })?;
        let err = sql_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        if let Some(after) = sub.after {
            let exists: Option<i64> = tx
                .query_row("SELECT id FROM jobs WHERE id = ?1", [after.0], |r| r.get(0))
                .optional()
                .map_err(&err)?;
            if exists.is_none() {
                return Err(StoreError::NoSuchJob(after));
            }
        }
        let now = now_ms();
        tx.execute(
            "INSERT INTO jobs (spec, model, analysis, output, device, priority, after_job, held, \
             state, submitted_ms, wait_reason) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 'queued', ?9, ?10)",
            params![
                spec,
                sub.request.model,
                analysis_word(&sub.request),
                sub.request.out.display().to_string(),
                sub.device.to_string(),
                sub.priority,
                sub.after.map(|a| a.0),
                sub.held,
                now,
                sub.held.then_some(HELD_REASON)
            ],
        )
        .map_err(&err)?;
        let id = JobId(tx.last_insert_rowid());
        let reason = if sub.held {
            "submitted (held)"
        } else {
            "submitted"
        };
        insert_event(&tx, id, None, JobState::Queued, reason, now).map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(id)
    }

    /// One job, or [`StoreError::NoSuchJob`].
    pub fn get(&self, id: JobId) -> Result<Job, StoreError> {
        let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = ?1");
        let row = self
            .conn
            .query_row(&sql, [id.0], |r| Ok(RawJob::read(r)))
            .optional()
            .map_err(|e| self.sql(e))?;
        match row {
            Some(raw) => raw.map_err(|e| self.sql(e))?.decode(&self.path),
            None => Err(StoreError::NoSuchJob(id)),
        }
    }

    /// Jobs in queue order for the active ones (running, then queued by priority and age),
    /// followed by finished ones, newest first. Without `all`, only the 20 newest finished jobs.
    pub fn list(&self, all: bool) -> Result<Vec<Job>, StoreError> {
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('running', 'queued', 'interrupted') \
             ORDER BY state <> 'running', priority DESC, id"
        );
        let mut jobs = self.query_jobs(&sql)?;
        let limit = if all { "" } else { " LIMIT 20" };
        let sql = format!(
            "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('succeeded', 'failed', 'cancelled') \
             ORDER BY finished_ms DESC, id DESC{limit}"
        );
        jobs.extend(self.query_jobs(&sql)?);
        Ok(jobs)
    }

    fn query_jobs(&self, sql: &str) -> Result<Vec<Job>, StoreError> {
        let mut stmt = self.conn.prepare_cached(sql).map_err(|e| self.sql(e))?;
        let raws = stmt
            .query_map([], |r| Ok(RawJob::read(r)))
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for raw in raws {
            let raw = raw.map_err(|e| self.sql(e))?.map_err(|e| self.sql(e))?;
            out.push(raw.decode(&self.path)?);
        }
        Ok(out)
    }

    /// The events of one job, oldest first.
    pub fn events(&self, id: JobId) -> Result<Vec<JobEvent>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT at_ms, from_state, to_state, reason FROM events WHERE job_id = ?1 ORDER BY id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([id.0], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, Option<String>>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (at_ms, from, to, reason) = row.map_err(|e| self.sql(e))?;
            out.push(JobEvent {
                at_ms,
                job: id,
                from: from
                    .map(|s| parse_state(&self.path, id.0, &s))
                    .transpose()?,
                to: parse_state(&self.path, id.0, &to)?,
                reason,
            });
        }
        Ok(out)
    }

    /// Queued jobs that are not held, highest priority first, then oldest first.
    pub fn candidates(&self) -> Result<Vec<Candidate>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, spec, device, after_job, wait_reason FROM jobs \
                 WHERE state = 'queued' AND held = 0 ORDER BY priority DESC, id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, Option<i64>>(3)?,
                    r.get::<_, Option<String>>(4)?,
                ))
            })
            .map_err(|e| self.sql(e))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, spec, device, after, wait_reason) = row.map_err(|e| self.sql(e))?;
            out.push(Candidate {
                id: JobId(id),
                spec: parse_spec(&self.path, id, &spec)?,
                device: device.parse().map_err(|message| StoreError::BadRow {
                    path: self.path.clone(),
                    id,
                    column: "device",
                    message,
                })?,
                after: after.map(JobId),
                wait_reason,
            });
        }
        Ok(out)
    }

    /// Jobs in the running state.
    pub fn running(&self) -> Result<Vec<RunningJob>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT id, placement, pid, pid_start_ticks, estimate_bytes, peak_memory_bytes, \
                 cancel_requested_ms FROM jobs WHERE state = 'running' ORDER BY id",
            )
            .map_err(|e| self.sql(e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(RunningJob {
                    id: JobId(r.get(0)?),
                    placement: r
                        .get::<_, Option<String>>(1)?
                        .and_then(|p| p.parse::<Target>().ok()),
                    pid: r.get(2)?,
                    pid_start_ticks: r.get(3)?,
                    estimate_bytes: r.get(4)?,
                    peak_memory_bytes: r.get(5)?,
                    cancel_requested_ms: r.get(6)?,
                })
            })
            .map_err(|e| self.sql(e))?;
        rows.collect::<Result<_, _>>().map_err(|e| self.sql(e))
    }

    /// The state of one job, if it exists.
    pub fn state_of(&self, id: JobId) -> Result<Option<JobState>, StoreError> {
        let state: Option<String> = self
            .conn
            .query_row("SELECT state FROM jobs WHERE id = ?1", [id.0], |r| r.get(0))
            .optional()
            .map_err(|e| self.sql(e))?;
        state.map(|s| parse_state(&self.path, id.0, &s)).transpose()
    }

    /// Records why a queued job waits (no event: waiting is not a state change).
    pub fn set_wait_reason(&self, id: JobId, reason: Option<&str>) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE jobs SET wait_reason = ?2 WHERE id = ?1 AND state = 'queued'",
                params![id.0, reason],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Moves a queued job to running on `target`; false if it is no longer queued.
    pub fn start(
        &mut self,
        id: JobId,
        target: Target,
        estimate_bytes: Option<u64>,
    ) -> Result<bool, StoreError> {
        let reason = format!("placed on {target}");
        self.transition(
            id,
            &[JobState::Queued],
            JobState::Running,
            &reason,
            "placement = ?3, estimate_bytes = ?4, started_ms = ?5, finished_ms = NULL, \
             attempts = attempts + 1, pid = NULL, pid_start_ticks = NULL, wait_reason = NULL, \
             failure = NULL, error = NULL, cancel_requested_ms = NULL",
            params![
                id.0,
                JobState::Running.as_str(),
                target.to_string(),
                estimate_bytes.map(|b| b as i64),
                now_ms()
            ],
        )
    }

    /// Records the worker process of a running job.
    pub fn set_worker(&self, id: JobId, pid: u32, start_ticks: u64) -> Result<(), StoreError> {
        self.conn
            .execute(
                "UPDATE jobs SET pid = ?2, pid_start_ticks = ?3 WHERE id = ?1 AND state = 'running'",
                params![id.0, pid, start_ticks as i64],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Stores the latest progress of a running job.
    pub fn report_progress(&self, id: JobId, progress: &RunProgress) -> Result<(), StoreError> {
        let fraction = if progress.prompts_total == 0 {
            0.0
        } else {
            (progress.prompts_done as f64 / progress.prompts_total as f64).clamp(0.0, 1.0)
        };
        let json = serde_json::to_string(progress).unwrap_or_default();
        self.conn
            .execute(
                "UPDATE jobs SET progress = ?2, run_progress = ?3, \
                 peak_memory_bytes = max(coalesce(peak_memory_bytes, 0), coalesce(?4, 0)) \
                 WHERE id = ?1 AND state = 'running'",
                params![
                    id.0,
                    fraction,
                    json,
                    progress.peak_memory_bytes.map(|b| b as i64)
                ],
            )
            .map_err(|e| self.sql(e))?;
        Ok(())
    }

    /// Ends a running job; false if it was not running (someone else ended it first).
    pub fn finish(&mut self, id: JobId, ending: &Ending) -> Result<bool, StoreError> {
        let failure = ending
            .failure
            .map(|f| serde_json::to_string(&f).unwrap_or_default());
        let progress = if ending.state == JobState::Succeeded {
            "progress = 1.0,"
        } else {
            ""
        };
        let set =
            format!("{progress} finished_ms = ?3, failure = ?4, error = ?5, wait_reason = NULL");
        self.transition(
            id,
            &[JobState::Running],
            ending.state,
            &ending.reason,
            &set,
            params![id.0, ending.state.as_str(), now_ms(), failure, ending.error],
        )
    }

    /// Fails a queued job that can never start (its estimate failed, for example).
    pub fn fail_queued(
        &mut self,
        id: JobId,
        failure: Failure,
        error: &str,
    ) -> Result<bool, StoreError> {
        let failure = serde_json::to_string(&failure).unwrap_or_default();
        self.transition(
            id,
            &[JobState::Queued],
            JobState::Failed,
            error,
            "finished_ms = ?3, failure = ?4, error = ?5, wait_reason = NULL",
            params![id.0, JobState::Failed.as_str(), now_ms(), failure, error],
        )
    }

    /// A running job whose worker is gone while no daemon watched it: marked interrupted, then
    /// queued again so it resumes from its last whole shard. False if it was not running.
    pub fn interrupt_and_requeue(&mut self, id: JobId, why: &str) -> Result<bool, StoreError> {
        let err = sql_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let now = now_ms();
        let changed = tx
            .execute(
                "UPDATE jobs SET state = 'queued', finished_ms = NULL, pid = NULL, \
                 pid_start_ticks = NULL, wait_reason = 'requeued after an interruption' \
                 WHERE id = ?1 AND state = 'running'",
                [id.0],
            )
            .map_err(&err)?;
        if changed == 1 {
            insert_event(
                &tx,
                id,
                Some(JobState::Running),
                JobState::Interrupted,
                why,
                now,
            )
            .map_err(&err)?;
            insert_event(
                &tx,
                id,
                Some(JobState::Interrupted),
                JobState::Queued,
                "requeued to resume from its last whole shard",
                now,
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)?;
        Ok(changed == 1)
    }

    /// Cancels a queued job now, or records the request for a running one.
    pub fn cancel(&mut self, id: JobId) -> Result<CancelOutcome, StoreError> {
        let job = self.get(id)?;
        match job.state {
            JobState::Queued | JobState::Interrupted => {
                if self.transition(
                    id,
                    &[JobState::Queued, JobState::Interrupted],
                    JobState::Cancelled,
                    "cancelled before it started",
                    "finished_ms = ?3, wait_reason = NULL",
                    params![id.0, JobState::Cancelled.as_str(), now_ms()],
                )? {
                    Ok(CancelOutcome::Cancelled)
                } else {
                    self.cancel(id)
                }
            }
            JobState::Running => {
                self.conn
                    .execute(
                        "UPDATE jobs SET cancel_requested_ms = coalesce(cancel_requested_ms, ?2) \
                         WHERE id = ?1 AND state = 'running'",
                        params![id.0, now_ms()],
                    )
                    .map_err(|e| self.sql(e))?;
                let (pid, start_ticks) = self
                    .conn
                    .query_row(
                        "SELECT pid, pid_start_ticks FROM jobs WHERE id = ?1",
                        [id.0],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .map_err(|e| self.sql(e))?;
                Ok(CancelOutcome::Requested { pid, start_ticks })
            }
            state => Err(StoreError::WrongState {
                id,
                state,
                action: "only queued or running jobs can be cancelled",
            }),
        }
    }

    /// Puts a failed, cancelled or interrupted job back in the queue; its next run resumes from
    /// the last whole shard of its output folder.
    pub fn retry(&mut self, id: JobId) -> Result<(), StoreError> {
        let state = self.state_of(id)?.ok_or(StoreError::NoSuchJob(id))?;
        let from = [JobState::Failed, JobState::Cancelled, JobState::Interrupted];
        if !from.contains(&state)
            || !self.transition(
                id,
                &from,
                JobState::Queued,
                "retried",
                "finished_ms = NULL, failure = NULL, error = NULL, cancel_requested_ms = NULL",
                params![id.0, JobState::Queued.as_str()],
            )?
        {
            return Err(StoreError::WrongState {
                id,
                state,
                action: "only failed, cancelled or interrupted jobs can be retried",
            });
        }
        Ok(())
    }

    /// Holds (`true`) or releases (`false`) a queued job.
    pub fn set_held(&mut self, id: JobId, held: bool) -> Result<(), StoreError> {
        let state = self.state_of(id)?.ok_or(StoreError::NoSuchJob(id))?;
        if state != JobState::Queued {
            return Err(StoreError::WrongState {
                id,
                state,
                action: "only queued jobs can be held or released",
            });
        }
        let err = sql_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let reason = if held { "held" } else { "released" };
        let wait = held.then_some(HELD_REASON);
        let changed = tx
            .execute(
                "UPDATE jobs SET held = ?2, wait_reason = ?3 WHERE id = ?1 AND state = 'queued' AND held <> ?2",
                params![id.0, held, wait],
            )
            .map_err(&err)?;
        if changed == 1 {
            insert_event(
                &tx,
                id,
                Some(JobState::Queued),
                JobState::Queued,
                reason,
                now_ms(),
            )
            .map_err(&err)?;
        }
        tx.commit().map_err(&err)
    }

    /// Deletes a job that is not running, with its events. Its output folder stays.
    pub fn remove(&mut self, id: JobId) -> Result<(), StoreError> {
        let state = self.state_of(id)?.ok_or(StoreError::NoSuchJob(id))?;
        if state == JobState::Running {
            return Err(StoreError::WrongState {
                id,
                state,
                action: "cancel it first (`neuronmap cancel`), then remove it",
            });
        }
        let err = sql_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        tx.execute(
            "DELETE FROM jobs WHERE id = ?1 AND state <> 'running'",
            [id.0],
        )
        .map_err(&err)?;
        tx.execute("DELETE FROM events WHERE job_id = ?1", [id.0])
            .map_err(&err)?;
        tx.commit().map_err(&err)
    }

    /// Changes the state of `id` from one of `from` to `to`, applying `set` (SQL assignments
    /// whose parameters start at `?3`; `?1` is the id and `?2` the new state) and recording
    /// the event, in one transaction. False if the job was not in one of `from`.
    fn transition(
        &mut self,
        id: JobId,
        from: &[JobState],
        to: JobState,
        reason: &str,
        set: &str,
        params: &[&dyn rusqlite::ToSql],
    ) -> Result<bool, StoreError> {
        let err = sql_error(&self.path);
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(&err)?;
        let current: Option<String> = tx
            .query_row("SELECT state FROM jobs WHERE id = ?1", [id.0], |r| r.get(0))
            .optional()
            .map_err(&err)?;
        let Some(current) = current else {
            return Err(StoreError::NoSuchJob(id));
        };
        let current = parse_state(&self.path, id.0, &current)?;
        if !from.contains(&current) {
            return Ok(false);
        }
        tx.execute(
            &format!("UPDATE jobs SET state = ?2, {set} WHERE id = ?1"),
            params,
        )
        .map_err(&err)?;
        insert_event(&tx, id, Some(current), to, reason, now_ms()).map_err(&err)?;
        tx.commit().map_err(&err)?;
        Ok(true)
    }
}

/// Maps a SQLite error on the store at `path` to a [`StoreError`] that names the file.
fn sql_error(path: &Path) -> impl Fn(rusqlite::Error) -> StoreError + '_ {
    move |source| StoreError::Sqlite {
        path: path.to_path_buf(),
        source,
    }
}

fn insert_event(
    tx: &rusqlite::Transaction<'_>,
    id: JobId,
    from: Option<JobState>,
    to: JobState,
    reason: &str,
    at_ms: i64,
) -> rusqlite::Result<usize> {
    tx.execute(
        "INSERT INTO events (job_id, at_ms, from_state, to_state, reason) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![id.0, at_ms, from.map(JobState::as_str), to.as_str(), reason],
    )
}

fn analysis_word(req: &ExtractRequest) -> String {
    serde_json::to_value(req.analysis)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn parse_state(path: &Path, id: i64, s: &str) -> Result<JobState, StoreError> {
    s.parse().map_err(|message| StoreError::BadRow {
        path: path.to_path_buf(),
        id,
        column: "state",
        message,
    })
}

fn parse_spec(path: &Path, id: i64, s: &str) -> Result<ExtractRequest, StoreError> {
    serde_json::from_str(s).map_err(|e| StoreError::BadRow {
        path: path.to_path_buf(),
        id,
        column: "spec",
        message: e.to_string(),
    })
}

/// A row as read, before its JSON and enum columns are decoded.
struct RawJob {
    id: i64,
    state: String,
    model: String,
    analysis: String,
    device: String,
    placement: Option<String>,
    output: String,
    priority: i64,
    after: Option<i64>,
    held: bool,
    progress: f64,
    wait_reason: Option<String>,
    error: Option<String>,
    failure: Option<String>,
    submitted_ms: i64,
    started_ms: Option<i64>,
    finished_ms: Option<i64>,
    attempts: i64,
    pid: Option<i64>,
    estimate_bytes: Option<i64>,
    run_progress: Option<String>,
    cancel_requested_ms: Option<i64>,
    spec: String,
}

impl RawJob {
    fn read(r: &Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            id: r.get(0)?,
            state: r.get(1)?,
            model: r.get(2)?,
            analysis: r.get(3)?,
            device: r.get(4)?,
            placement: r.get(5)?,
            output: r.get(6)?,
            priority: r.get(7)?,
            after: r.get(8)?,
            held: r.get(9)?,
            progress: r.get(10)?,
            wait_reason: r.get(11)?,
            error: r.get(12)?,
            failure: r.get(13)?,
            submitted_ms: r.get(14)?,
            started_ms: r.get(15)?,
            finished_ms: r.get(16)?,
            attempts: r.get(17)?,
            pid: r.get(18)?,
            estimate_bytes: r.get(19)?,
            run_progress: r.get(20)?,
            cancel_requested_ms: r.get(21)?,
            spec: r.get(22)?,
        })
    }

    fn decode(self, path: &Path) -> Result<Job, StoreError> {
        let bad = |column, message: String| StoreError::BadRow {
            path: path.to_path_buf(),
            id: self.id,
            column,
            message,
        };
        let state = parse_state(path, self.id, &self.state)?;
        let failure = self
            .failure
            .as_deref()
            .map(serde_json::from_str::<Failure>)
            .transpose()
            .map_err(|e| bad("failure", e.to_string()))?;
        let run = self
            .run_progress
            .as_deref()
            .map(serde_json::from_str::<RunProgress>)
            .transpose()
            .map_err(|e| bad("run_progress", e.to_string()))?
            .unwrap_or_default();
        let spec = parse_spec(path, self.id, &self.spec)?;
        let wait_reason = if state == JobState::Queued {
            self.wait_reason
        } else {
            None
        };
        Ok(Job {
            schema_version: 1,
            id: JobId(self.id),
            state,
            model: self.model,
            analysis: self.analysis,
            device: self.device,
            placement: self.placement,
            output: self.output,
            priority: self.priority,
            after: self.after.map(JobId),
            held: self.held,
            progress: self.progress,
            wait_reason,
            error: self.error,
            failure,
            submitted_ms: self.submitted_ms,
            started_ms: self.started_ms,
            finished_ms: self.finished_ms,
            attempts: self.attempts,
            pid: self.pid.filter(|_| state == JobState::Running),
            estimate_bytes: self.estimate_bytes,
            run,
            cancel_requested: self.cancel_requested_ms.is_some(),
            spec,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::request::Analysis;

    fn request(out: &str) -> ExtractRequest {
        ExtractRequest {
            model: "/models/tiny-gpt2".into(),
            input: "/data/prompts.txt".into(),
            hooks: vec!["blocks.*.hook_resid_post".into()],
            out: out.into(),
            analysis: Analysis::Activations,
            batch: 4,
            max_len: None,
            dtype: None,
            device: "cpu".into(),
            resume: false,
        }
    }

    fn submission(out: &str, priority: i64) -> Submission {
        Submission {
            request: request(out),
            priority,
            after: None,
            device: DeviceRequest::Cpu,
            held: false,
        }
    }

    fn temp_store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join(DB_FILE)).unwrap();
        (dir, store)
    }

    #[test]
    fn a_new_database_is_migrated_to_the_current_version_in_wal_mode() {
        let (dir, store) = temp_store();
        let version: i64 = store
            .conn
            .query_row("SELECT max(version) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        drop(store);
        // Opening again applies nothing twice.
        let again = Store::open(&dir.path().join(DB_FILE)).unwrap();
        let rows: i64 = again
            .conn
            .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(rows, SCHEMA_VERSION);
    }

    #[test]
    fn a_database_from_a_newer_build_is_refused() {
        let (dir, store) = temp_store();
        store
            .conn
            .execute("INSERT INTO schema_version (version) VALUES (99)", [])
            .unwrap();
        drop(store);
        let err = Store::open(&dir.path().join(DB_FILE)).err().unwrap();
        assert!(err.to_string().contains("upgrade neuronmap"), "{err}");
    }

    #[test]
    fn candidates_come_by_priority_then_submission_order() {
        let (_dir, mut store) = temp_store();
        let low = store.submit(&submission("/o/a", 0)).unwrap();
        let high = store.submit(&submission("/o/b", 5)).unwrap();
        let low2 = store.submit(&submission("/o/c", 0)).unwrap();
        let mut held = submission("/o/d", 9);
        held.held = true;
        let held = store.submit(&held).unwrap();
        assert_eq!(
            store.get(held).unwrap().wait_reason.as_deref(),
            Some(HELD_REASON)
        );
        let order: Vec<JobId> = store.candidates().unwrap().iter().map(|c| c.id).collect();
        assert_eq!(order, vec![high, low, low2]);
        store.set_held(held, false).unwrap();
        assert_eq!(store.candidates().unwrap()[0].id, held);
    }

    #[test]
    fn every_state_change_is_an_event_with_its_reason() {
        let (_dir, mut store) = temp_store();
        let id = store.submit(&submission("/o/a", 0)).unwrap();
        assert!(store.start(id, Target::Gpu(1), Some(1 << 30)).unwrap());
        assert!(
            !store.start(id, Target::Cpu, None).unwrap(),
            "already running"
        );
        store.set_worker(id, 4242, 99).unwrap();
        let ending = Ending {
            state: JobState::Failed,
            failure: Some(Failure::Signal { signal: 9 }),
            error: Some("worker killed by signal 9".into()),
            reason: "worker killed by signal 9".into(),
        };
        assert!(store.finish(id, &ending).unwrap());
        store.retry(id).unwrap();
        let job = store.get(id).unwrap();
        assert_eq!(job.state, JobState::Queued);
        assert_eq!(job.attempts, 1);
        assert_eq!(job.error, None);
        let events: Vec<(Option<JobState>, JobState, String)> = store
            .events(id)
            .unwrap()
            .into_iter()
            .map(|e| (e.from, e.to, e.reason))
            .collect();
        assert_eq!(
            events,
            vec![
                (None, JobState::Queued, "submitted".into()),
                (
                    Some(JobState::Queued),
                    JobState::Running,
                    "placed on cuda:1".into()
                ),
                (
                    Some(JobState::Running),
                    JobState::Failed,
                    "worker killed by signal 9".into()
                ),
                (Some(JobState::Failed), JobState::Queued, "retried".into()),
            ]
        );
    }

    #[test]
    fn interrupted_jobs_are_requeued_with_both_events() {
        let (_dir, mut store) = temp_store();
        let id = store.submit(&submission("/o/a", 0)).unwrap();
        store.start(id, Target::Cpu, None).unwrap();
        assert!(store.interrupt_and_requeue(id, "worker gone").unwrap());
        assert!(!store.interrupt_and_requeue(id, "again").unwrap());
        let job = store.get(id).unwrap();
        assert_eq!(job.state, JobState::Queued);
        let tos: Vec<JobState> = store.events(id).unwrap().iter().map(|e| e.to).collect();
        assert_eq!(
            tos,
            vec![
                JobState::Queued,
                JobState::Running,
                JobState::Interrupted,
                JobState::Queued
            ]
        );
    }

    #[test]
    fn cancel_removes_queued_jobs_and_flags_running_ones() {
        let (_dir, mut store) = temp_store();
        let queued = store.submit(&submission("/o/a", 0)).unwrap();
        let running = store.submit(&submission("/o/b", 0)).unwrap();
        store.start(running, Target::Cpu, None).unwrap();
        store.set_worker(running, 77, 1234).unwrap();
        assert_eq!(store.cancel(queued).unwrap(), CancelOutcome::Cancelled);
        assert_eq!(
            store.cancel(running).unwrap(),
            CancelOutcome::Requested {
                pid: Some(77),
                start_ticks: Some(1234)
            }
        );
        assert!(store.get(running).unwrap().cancel_requested);
        let err = store.cancel(queued).unwrap_err();
        assert!(err.to_string().contains("cancelled"), "{err}");
        assert!(store.remove(running).is_err(), "running jobs stay");
        store.remove(queued).unwrap();
        assert!(matches!(store.get(queued), Err(StoreError::NoSuchJob(_))));
    }

    #[test]
    fn the_queue_signature_ignores_progress_but_sees_every_queue_change() {
        let (_dir, mut store) = temp_store();
        let empty = store.queue_signature().unwrap();
        let id = store.submit(&submission("/o/a", 0)).unwrap();
        let queued = store.queue_signature().unwrap();
        assert_ne!(empty, queued);
        store.set_held(id, true).unwrap();
        let held = store.queue_signature().unwrap();
        assert_ne!(held, queued);
        store.set_held(id, false).unwrap();
        store.start(id, Target::Cpu, None).unwrap();
        let running = store.queue_signature().unwrap();
        assert_ne!(running, queued);
        let progress = RunProgress {
            prompts_done: 1,
            prompts_total: 2,
            ..RunProgress::default()
        };
        store.report_progress(id, &progress).unwrap();
        assert_eq!(store.queue_signature().unwrap(), running);
    }

    #[test]
    fn a_dependency_must_exist() {
        let (_dir, mut store) = temp_store();
        let mut sub = submission("/o/a", 0);
        sub.after = Some(JobId(41));
        assert!(matches!(
            store.submit(&sub),
            Err(StoreError::NoSuchJob(JobId(41)))
        ));
    }

    #[test]
    fn progress_is_a_fraction_and_the_peak_only_grows() {
        let (_dir, mut store) = temp_store();
        let id = store.submit(&submission("/o/a", 0)).unwrap();
        store.start(id, Target::Cpu, None).unwrap();
        let mut p = RunProgress {
            prompts_done: 5,
            prompts_total: 20,
            peak_memory_bytes: Some(900),
            ..RunProgress::default()
        };
        store.report_progress(id, &p).unwrap();
        p.prompts_done = 10;
        p.peak_memory_bytes = Some(500);
        store.report_progress(id, &p).unwrap();
        let job = store.get(id).unwrap();
        assert!((job.progress - 0.5).abs() < 1e-9);
        assert_eq!(job.run.prompts_done, 10);
        assert_eq!(store.running().unwrap()[0].peak_memory_bytes, Some(900));
    }
}
