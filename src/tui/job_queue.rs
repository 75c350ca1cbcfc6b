//! The dashboard's view of the job queue: the latest list from the job feed, the selected job,
//! the scroll offset, and the detail of the job opened with Enter. Pure state, so selection
//! and the pid-to-job marks are tested without a terminal.

use crate::jobs::client::JobDetail;
use crate::jobs::job::{Job, JobId, JobState};

/// The queue as the dashboard shows it.
#[derive(Debug, Clone, Default)]
pub struct JobQueueView {
    /// Jobs in queue order (running, then queued, then recently finished).
    pub jobs: Vec<Job>,
    /// The selected job, kept across refreshes.
    pub selected: Option<JobId>,
    /// First row shown.
    pub offset: usize,
    /// Why the store could not be read, if it could not.
    pub error: Option<String>,
    /// The job shown in the detail view.
    pub detail: Option<JobDetail>,
}

impl JobQueueView {
    /// Takes a new reading of the queue, keeping the selection when the job is still listed.
    pub fn set_jobs(&mut self, jobs: Vec<Job>) {
        self.error = None;
        self.jobs = jobs;
        let still_there = self
            .selected
            .is_some_and(|id| self.jobs.iter().any(|j| j.id == id));
        if !still_there {
            self.selected = self.jobs.first().map(|j| j.id);
        }
        if let Some(detail) = &mut self.detail {
            if let Some(job) = self.jobs.iter().find(|j| j.id == detail.job.id) {
                detail.job = job.clone();
            }
        }
    }

    /// Position of the selected job.
    pub fn selected_index(&self) -> Option<usize> {
        let id = self.selected?;
        self.jobs.iter().position(|j| j.id == id)
    }

    /// Moves the selection by `step` rows and scrolls so it stays among `visible` rows.
    pub fn move_selection(&mut self, step: isize, visible: usize) {
        if self.jobs.is_empty() {
            return;
        }
        let current = self.selected_index().unwrap_or(0) as isize;
        let last = self.jobs.len() as isize - 1;
        let index = current.saturating_add(step).clamp(0, last) as usize;
        self.selected = Some(self.jobs[index].id);
        let visible = visible.max(1);
        if index < self.offset {
            self.offset = index;
        } else if index >= self.offset + visible {
            self.offset = index + 1 - visible;
        }
    }

    /// The running job whose worker has this pid (for the process table's marks).
    pub fn job_of_pid(&self, pid: u32) -> Option<JobId> {
        self.jobs
            .iter()
            .find(|j| j.state == JobState::Running && j.pid == Some(i64::from(pid)))
            .map(|j| j.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::request::{Analysis, ExtractRequest};
    use crate::jobs::job::{DeviceRequest, Submission, Target};
    use crate::jobs::store::{Store, DB_FILE};

    fn jobs(n: usize) -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join(DB_FILE)).unwrap();
        for i in 0..n {
            store
                .submit(&Submission {
                    request: ExtractRequest {
                        model: "m".into(),
                        input: "/in".into(),
                        hooks: vec![],
                        out: format!("/out{i}").into(),
                        analysis: Analysis::Stats,
                        batch: 1,
                        max_len: None,
                        dtype: None,
                        device: "cpu".into(),
                        resume: false,
                    },
                    priority: 0,
                    after: None,
                    device: DeviceRequest::Cpu,
                    held: false,
                })
                .unwrap();
        }
        (dir, store)
    }

    #[test]
    fn the_selection_follows_its_job_across_refreshes_and_scrolls_into_view() {
        let (_dir, mut store) = jobs(10);
        let mut view = JobQueueView::default();
        view.set_jobs(store.list(false).unwrap());
        assert_eq!(view.selected, Some(JobId(1)));
        view.move_selection(6, 3);
        assert_eq!(view.selected, Some(JobId(7)));
        assert_eq!(view.offset, 4, "row 7 is the last of three visible rows");
        // Job 7 starts running and moves to the top of the list: still selected.
        store.start(JobId(7), Target::Cpu, None).unwrap();
        store.set_worker(JobId(7), 4242, 1).unwrap();
        view.set_jobs(store.list(false).unwrap());
        assert_eq!(view.selected_index(), Some(0));
        assert_eq!(view.job_of_pid(4242), Some(JobId(7)));
        assert_eq!(view.job_of_pid(4243), None);
        // A removed job's selection falls back to the first row.
        store.remove(JobId(3)).unwrap();
        view.selected = Some(JobId(3));
        view.set_jobs(store.list(false).unwrap());
        assert_eq!(view.selected, Some(JobId(7)));
        view.move_selection(-100, 3);
        assert_eq!(view.offset, 0);
    }
}
