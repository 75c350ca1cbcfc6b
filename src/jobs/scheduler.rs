//! One scheduling pass: walk the queue in order (priority, then submission), and for each job
//! decide to start it on a device, keep it waiting with a reason, or fail it because it can
//! never run. The daemon applies the decisions; this part touches no processes.

use std::collections::HashMap;

use super::job::{DeviceRequest, JobId, JobState, Target};
use super::placement::{self, Limits, Load, Need};
use super::store::Candidate;
use crate::telemetry::model::Frame;

/// What to do with one queued job.
#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Start it now.
    Start {
        /// The job.
        id: JobId,
        /// Its device.
        target: Target,
        /// Its estimate on that device (no margin).
        estimate_bytes: u64,
    },
    /// It waits; the reason is shown to the user.
    Wait {
        /// The job.
        id: JobId,
        /// Why.
        reason: String,
    },
    /// It can never run as submitted.
    Fail {
        /// The job.
        id: JobId,
        /// The message for the user.
        error: String,
    },
}

/// Cached estimates per job and device kind, so a pass over 10,000 queued jobs does not ask
/// the estimator 10,000 times.
#[derive(Debug, Default)]
pub struct EstimateCache {
    entries: HashMap<(JobId, bool), Result<u64, String>>,
}

impl EstimateCache {
    /// The estimate of `candidate` on a GPU (`gpu`) or the CPU, computed once.
    fn get(
        &mut self,
        candidate: &Candidate,
        gpu: bool,
        estimate: &mut dyn FnMut(&Candidate, Target) -> Result<u64, String>,
    ) -> Result<u64, String> {
        self.entries
            .entry((candidate.id, gpu))
            .or_insert_with(|| {
                let target = if gpu { Target::Gpu(0) } else { Target::Cpu };
                estimate(candidate, target)
            })
            .clone()
    }

    /// Forgets jobs that are no longer queued.
    pub fn retain(&mut self, queued: &[Candidate]) {
        let ids: std::collections::HashSet<JobId> = queued.iter().map(|c| c.id).collect();
        self.entries.retain(|(id, _), _| ids.contains(id));
    }
}

/// Decides for every candidate, in order. `running` holds the loads of jobs that run now and
/// grows as this pass starts jobs; `dependency` gives the state of a job another one waits for.
pub fn plan(
    candidates: &[Candidate],
    frame: &Frame,
    running: &mut Vec<Load>,
    limits: &Limits,
    cache: &mut EstimateCache,
    dependency: &mut dyn FnMut(JobId) -> Option<JobState>,
    estimate: &mut dyn FnMut(&Candidate, Target) -> Result<u64, String>,
) -> Vec<Decision> {
    let mut decisions = Vec::with_capacity(candidates.len());
    for c in candidates {
        if let Some(after) = c.after {
            match dependency(after) {
                Some(JobState::Succeeded) => {}
                None => {
                    decisions.push(Decision::Fail {
                        id: c.id,
                        error: format!("it depends on job {after}, which was removed"),
                    });
                    continue;
                }
                Some(state @ (JobState::Failed | JobState::Cancelled)) => {
                    decisions.push(Decision::Wait {
                        id: c.id,
                        reason: format!(
                            "waits for job {after}, which is {state}; retry it or cancel this job"
                        ),
                    });
                    continue;
                }
                Some(state) => {
                    decisions.push(Decision::Wait {
                        id: c.id,
                        reason: format!("waits for job {after} ({state}) to succeed"),
                    });
                    continue;
                }
            }
        }
        let wants_gpu = matches!(c.device, DeviceRequest::Cuda(_) | DeviceRequest::Any)
            && !frame.gpus.is_empty();
        let wants_cpu = matches!(c.device, DeviceRequest::Cpu | DeviceRequest::Any);
        let mut need = Need::default();
        let mut failed = None;
        if wants_gpu {
            match cache.get(c, true, estimate) {
                Ok(b) => need.gpu_bytes = Some(b),
                Err(e) => failed = Some(e),
            }
        }
        if wants_cpu && failed.is_none() {
            match cache.get(c, false, estimate) {
                Ok(b) => need.cpu_bytes = Some(b),
                Err(e) => failed = Some(e),
            }
        }
        if let Some(error) = failed {
            decisions.push(Decision::Fail { id: c.id, error });
            continue;
        }
        match placement::place(c.device, need, frame, running, limits) {
            Ok(p) => {
                running.push(Load::new(p.target, p.estimate_bytes, 0, limits.margin));
                decisions.push(Decision::Start {
                    id: c.id,
                    target: p.target,
                    estimate_bytes: p.estimate_bytes,
                });
            }
            Err(reason) => decisions.push(Decision::Wait { id: c.id, reason }),
        }
    }
    decisions
}

/// CPU job slots on a host with `cores` cores when each job may use `cores_per_job`.
pub fn cpu_slots(cores: usize, cores_per_job: u32) -> u32 {
    ((cores as u32) / cores_per_job.max(1)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::request::{Analysis, ExtractRequest};
    use crate::telemetry::synthetic;

    const GIB: u64 = 1 << 30;

    fn candidate(id: i64, device: DeviceRequest, after: Option<i64>) -> Candidate {
        Candidate {
            id: JobId(id),
            spec: ExtractRequest {
                model: format!("m{id}"),
                input: "/in.txt".into(),
                hooks: vec![],
                out: "/out".into(),
                analysis: Analysis::Stats,
                batch: 1,
                max_len: None,
                dtype: None,
                device: "cpu".into(),
                resume: false,
            },
            device,
            after: after.map(JobId),
            wait_reason: None,
        }
    }

    fn frame_with_one_gpu(free: u64) -> Frame {
        let mut f = synthetic::frames(1, 1, 1000, 0).remove(0);
        f.gpus[0].memory_free_bytes = Some(free);
        f.host.memory_available_bytes = 64 * GIB;
        f
    }

    #[test]
    fn jobs_that_fit_start_in_order_and_the_rest_wait_with_reasons() {
        let frame = frame_with_one_gpu(30 * GIB);
        let limits = Limits {
            margin: 1.0,
            max_jobs_per_gpu: 4,
            cpu_slots: 1,
        };
        let queue = [
            candidate(1, DeviceRequest::Cuda(0), None),
            candidate(2, DeviceRequest::Cuda(0), None),
            candidate(3, DeviceRequest::Cpu, None),
            candidate(4, DeviceRequest::Cpu, None),
        ];
        let mut running = Vec::new();
        let mut calls = 0;
        let decisions = plan(
            &queue,
            &frame,
            &mut running,
            &limits,
            &mut EstimateCache::default(),
            &mut |_| None,
            &mut |_, _| {
                calls += 1;
                Ok(20 * GIB)
            },
        );
        assert_eq!(
            decisions,
            vec![
                Decision::Start {
                    id: JobId(1),
                    target: Target::Gpu(0),
                    estimate_bytes: 20 * GIB
                },
                Decision::Wait {
                    id: JobId(2),
                    reason: "needs 20.0 GiB, cuda:0 has 10.0 GiB free".into()
                },
                Decision::Start {
                    id: JobId(3),
                    target: Target::Cpu,
                    estimate_bytes: 20 * GIB
                },
                Decision::Wait {
                    id: JobId(4),
                    reason: "all 1 CPU job slot busy (jobs.cpu_cores_per_job)".into()
                },
            ]
        );
        assert_eq!(calls, 4);
        assert_eq!(running.len(), 2);
    }

    #[test]
    fn dependencies_and_estimate_errors_are_decided_before_placement() {
        let frame = frame_with_one_gpu(30 * GIB);
        let limits = Limits {
            margin: 1.0,
            max_jobs_per_gpu: 4,
            cpu_slots: 4,
        };
        let queue = [
            candidate(5, DeviceRequest::Cpu, Some(1)),
            candidate(6, DeviceRequest::Cpu, Some(2)),
            candidate(7, DeviceRequest::Cpu, Some(3)),
            candidate(8, DeviceRequest::Cpu, None),
        ];
        let states = |id: JobId| match id.0 {
            1 => Some(JobState::Running),
            2 => Some(JobState::Succeeded),
            3 => Some(JobState::Failed),
            _ => None,
        };
        let decisions = plan(
            &queue,
            &frame,
            &mut Vec::new(),
            &limits,
            &mut EstimateCache::default(),
            &mut { states },
            &mut |c, _| {
                if c.id == JobId(8) {
                    Err("model \"m8\" not found".into())
                } else {
                    Ok(GIB)
                }
            },
        );
        assert_eq!(
            decisions[0],
            Decision::Wait {
                id: JobId(5),
                reason: "waits for job 1 (running) to succeed".into()
            }
        );
        assert!(matches!(decisions[1], Decision::Start { id: JobId(6), .. }));
        assert!(
            matches!(&decisions[2], Decision::Wait { reason, .. } if reason.contains("which is failed"))
        );
        assert_eq!(
            decisions[3],
            Decision::Fail {
                id: JobId(8),
                error: "model \"m8\" not found".into()
            }
        );
    }

    #[test]
    fn cpu_slots_never_drop_to_zero() {
        assert_eq!(cpu_slots(2, 4), 1);
        assert_eq!(cpu_slots(32, 4), 8);
    }
}
