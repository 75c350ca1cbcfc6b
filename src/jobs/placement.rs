//! Where a job may start now, or why it must wait. Pure functions over one telemetry
//! [`Frame`] and the jobs already running, so they are tested against replayed GPU states.
//!
//! A job goes on a GPU only where `estimate × margin ≤ free memory − memory promised to running
//! jobs that have not reached their peak yet`. Free memory comes from NVML, so other users'
//! processes are counted as they are; only our own jobs' future growth is added.

use super::job::{DeviceRequest, Target};
use crate::telemetry::model::{Frame, GpuHealth, GpuSample};

/// Limits from the `[jobs]` config section.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Limits {
    /// Multiplier on the estimate (1.15 = 15 % headroom).
    pub margin: f64,
    /// Most jobs that may run on one GPU at once.
    pub max_jobs_per_gpu: u32,
    /// Most CPU jobs at once.
    pub cpu_slots: u32,
}

/// A job that runs now, as placement sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Its device.
    pub target: Target,
    /// Memory it may still grow by: `estimate × margin − memory it holds`, never negative.
    pub outstanding_bytes: u64,
}

impl Load {
    /// The load of a running job with this estimate (no margin) that has used `measured_bytes`
    /// at most so far.
    pub fn new(target: Target, estimate_bytes: u64, measured_bytes: u64, margin: f64) -> Self {
        let promised = (estimate_bytes as f64 * margin) as u64;
        Self {
            target,
            outstanding_bytes: promised.saturating_sub(measured_bytes),
        }
    }
}

/// The estimated peak memory of a job on each kind of device (`None`: not asked for).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Need {
    /// Peak bytes on a GPU.
    pub gpu_bytes: Option<u64>,
    /// Peak bytes of RAM on the CPU.
    pub cpu_bytes: Option<u64>,
}

/// Where the job goes and how much it is expected to use there (no margin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Placement {
    /// The device.
    pub target: Target,
    /// The estimate for that device.
    pub estimate_bytes: u64,
}

/// The device for a job that asks for `device` and needs `need`, or why it waits.
pub fn place(
    device: DeviceRequest,
    need: Need,
    frame: &Frame,
    running: &[Load],
    limits: &Limits,
) -> Result<Placement, String> {
    match device {
        DeviceRequest::Cpu => place_cpu(need.cpu_bytes, frame, running, limits),
        DeviceRequest::Cuda(index) => {
            place_gpu(Some(index), need.gpu_bytes, frame, running, limits)
        }
        DeviceRequest::Any => {
            if frame.gpus.is_empty() {
                return place_cpu(need.cpu_bytes, frame, running, limits);
            }
            match place_gpu(None, need.gpu_bytes, frame, running, limits) {
                Ok(p) => Ok(p),
                Err(gpu_reason) => place_cpu(need.cpu_bytes, frame, running, limits)
                    .map_err(|cpu_reason| format!("{gpu_reason}; CPU: {cpu_reason}")),
            }
        }
    }
}

fn place_cpu(
    need: Option<u64>,
    frame: &Frame,
    running: &[Load],
    limits: &Limits,
) -> Result<Placement, String> {
    let need = need.unwrap_or(0);
    let busy = running.iter().filter(|l| l.target == Target::Cpu).count() as u32;
    if busy >= limits.cpu_slots {
        let s = if limits.cpu_slots == 1 { "" } else { "s" };
        return Err(format!(
            "all {} CPU job slot{s} busy (jobs.cpu_cores_per_job)",
            limits.cpu_slots
        ));
    }
    let available = frame
        .host
        .memory_available_bytes
        .saturating_sub(promised(running, Target::Cpu));
    let wanted = with_margin(need, limits.margin);
    if wanted > available {
        return Err(format!(
            "needs {} RAM, {} available",
            gib(wanted),
            gib(available)
        ));
    }
    Ok(Placement {
        target: Target::Cpu,
        estimate_bytes: need,
    })
}

/// Places on GPU `only` or on the GPU with the most room.
fn place_gpu(
    only: Option<u32>,
    need: Option<u64>,
    frame: &Frame,
    running: &[Load],
    limits: &Limits,
) -> Result<Placement, String> {
    if frame.gpus.is_empty() {
        let why = frame
            .driver
            .error
            .as_deref()
            .map_or(String::new(), |e| format!(" ({e})"));
        return Err(format!(
            "no GPU found{why}; submit with --device cpu to run on the CPU"
        ));
    }
    let need = need.unwrap_or(0);
    let wanted = with_margin(need, limits.margin);
    let candidates: Vec<&GpuSample> = match only {
        Some(index) => match frame.gpus.iter().find(|g| g.index == index) {
            Some(g) => vec![g],
            None => {
                return Err(format!(
                    "cuda:{index} does not exist ({} GPUs found)",
                    frame.gpus.len()
                ))
            }
        },
        None => frame.gpus.iter().collect(),
    };
    let mut best: Option<(u32, u64)> = None;
    let mut full = 0usize;
    let mut lost = Vec::new();
    for gpu in &candidates {
        if let GpuHealth::Lost { reason } = &gpu.health {
            lost.push(format!("cuda:{} is lost ({reason})", gpu.index));
            continue;
        }
        let target = Target::Gpu(gpu.index);
        let jobs = running.iter().filter(|l| l.target == target).count() as u32;
        if jobs >= limits.max_jobs_per_gpu {
            full += 1;
            continue;
        }
        let free = gpu
            .memory_free_bytes
            .unwrap_or(0)
            .saturating_sub(promised(running, target));
        if best.is_none_or(|(_, b)| free > b) {
            best = Some((gpu.index, free));
        }
    }
    match best {
        Some((index, free)) if wanted <= free => Ok(Placement {
            target: Target::Gpu(index),
            estimate_bytes: need,
        }),
        Some((index, free)) => {
            let which = if only.is_some() || candidates.len() == 1 {
                format!("cuda:{index}")
            } else {
                format!("best GPU (cuda:{index})")
            };
            Err(format!(
                "needs {}, {which} has {} free",
                gib(wanted),
                gib(free)
            ))
        }
        None if full > 0 => {
            let who = if candidates.len() == 1 {
                format!("cuda:{} is", candidates[0].index)
            } else {
                "every GPU is".to_string()
            };
            let s = if limits.max_jobs_per_gpu == 1 {
                ""
            } else {
                "s"
            };
            Err(format!(
                "{who} at the limit of {} job{s} per GPU (jobs.max_jobs_per_gpu)",
                limits.max_jobs_per_gpu
            ))
        }
        None => Err(lost.join("; ")),
    }
}

fn promised(running: &[Load], target: Target) -> u64 {
    running
        .iter()
        .filter(|l| l.target == target)
        .map(|l| l.outstanding_bytes)
        .sum()
}

fn with_margin(bytes: u64, margin: f64) -> u64 {
    (bytes as f64 * margin).ceil() as u64
}

/// Bytes as GiB with one decimal, the unit wait reasons use.
pub fn gib(bytes: u64) -> String {
    format!("{:.1} GiB", bytes as f64 / (1u64 << 30) as f64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::model::{GpuProcess, ProcessKind};
    use crate::telemetry::replay::ReplaySource;
    use crate::telemetry::{FrameSource, Tick};

    const GIB: u64 = 1 << 30;

    fn replayed(trace: &str) -> Frame {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/traces")
            .join(trace);
        match ReplaySource::open(&path, 1.0, false).unwrap().next_tick() {
            Tick::Frame { frame, .. } => *frame,
            other => panic!("no frame in {trace}: {other:?}"),
        }
    }

    fn limits() -> Limits {
        Limits {
            margin: 1.15,
            max_jobs_per_gpu: 2,
            cpu_slots: 2,
        }
    }

    fn gpu_need(gib_needed: u64) -> Need {
        Need {
            gpu_bytes: Some(gib_needed * GIB),
            cpu_bytes: Some(gib_needed * GIB),
        }
    }

    /// Another user's process takes all but `left` of GPU `index`.
    fn fill_with_foreign_process(frame: &mut Frame, index: usize, left: u64) {
        let gpu = &mut frame.gpus[index];
        let total = frame.devices[index].memory_total_bytes;
        gpu.processes.push(GpuProcess {
            pid: 51_000,
            kind: ProcessKind::Compute,
            gpu_memory_bytes: Some(gpu.memory_free_bytes.unwrap() - left),
        });
        gpu.memory_free_bytes = Some(left);
        gpu.memory_used_bytes = Some(total - left);
    }

    #[test]
    fn the_job_goes_to_the_gpu_with_the_most_free_memory() {
        let frame = replayed("synthetic-8gpu.jsonl");
        let p = place(DeviceRequest::Any, gpu_need(20), &frame, &[], &limits()).unwrap();
        // GPU 3 has the most free memory in the first sample of the trace.
        let most_free = frame
            .gpus
            .iter()
            .max_by_key(|g| g.memory_free_bytes)
            .unwrap()
            .index;
        assert_eq!(p.target, Target::Gpu(most_free));
        assert_eq!(p.estimate_bytes, 20 * GIB);
    }

    #[test]
    fn another_users_process_filling_a_gpu_makes_the_job_wait_with_the_numbers() {
        let mut frame = replayed("synthetic-1gpu.jsonl");
        fill_with_foreign_process(&mut frame, 0, 11 * GIB);
        let err = place(DeviceRequest::Cuda(0), gpu_need(16), &frame, &[], &limits()).unwrap_err();
        assert_eq!(err, "needs 18.4 GiB, cuda:0 has 11.0 GiB free");
        // A job small enough for what is left still fits beside the other user.
        let ok = place(DeviceRequest::Cuda(0), gpu_need(9), &frame, &[], &limits()).unwrap();
        assert_eq!(ok.target, Target::Gpu(0));
    }

    #[test]
    fn a_filled_gpu_is_skipped_for_an_emptier_one() {
        let mut frame = replayed("synthetic-8gpu.jsonl");
        for i in 0..8 {
            if i != 6 {
                fill_with_foreign_process(&mut frame, i, GIB);
            }
        }
        let p = place(DeviceRequest::Any, gpu_need(20), &frame, &[], &limits()).unwrap();
        assert_eq!(p.target, Target::Gpu(6));
        let err = place(DeviceRequest::Cuda(0), gpu_need(20), &frame, &[], &limits()).unwrap_err();
        assert!(
            err.starts_with("needs 23.0 GiB, cuda:0 has 1.0 GiB free"),
            "{err}"
        );
    }

    #[test]
    fn memory_promised_to_running_jobs_counts_until_they_reach_their_peak() {
        let mut frame = replayed("synthetic-1gpu.jsonl");
        fill_with_foreign_process(&mut frame, 0, 40 * GIB);
        // A job estimated at 20 GiB started and has allocated 5 GiB so far: 18 GiB still promised.
        let started = Load::new(Target::Gpu(0), 20 * GIB, 5 * GIB, 1.15);
        assert_eq!(
            started.outstanding_bytes,
            (23.0 * GIB as f64) as u64 - 5 * GIB
        );
        let err = place(
            DeviceRequest::Cuda(0),
            gpu_need(20),
            &frame,
            &[started],
            &limits(),
        )
        .unwrap_err();
        assert_eq!(err, "needs 23.0 GiB, cuda:0 has 22.0 GiB free");
        // Once it reached its peak, NVML's free memory already shows it: nothing more promised.
        let at_peak = Load::new(Target::Gpu(0), 20 * GIB, 21 * GIB, 1.0);
        assert_eq!(at_peak.outstanding_bytes, 0);
        assert!(place(
            DeviceRequest::Cuda(0),
            gpu_need(20),
            &frame,
            &[at_peak],
            &limits()
        )
        .is_ok());
    }

    #[test]
    fn the_per_gpu_job_limit_holds() {
        let frame = replayed("synthetic-1gpu.jsonl");
        let running = [
            Load::new(Target::Gpu(0), 0, 0, 1.0),
            Load::new(Target::Gpu(0), 0, 0, 1.0),
        ];
        let err = place(DeviceRequest::Any, gpu_need(1), &frame, &running, &limits());
        // `any` falls back to the CPU when every GPU is at its limit.
        assert_eq!(err.unwrap().target, Target::Cpu);
        let err = place(
            DeviceRequest::Cuda(0),
            gpu_need(1),
            &frame,
            &running,
            &limits(),
        )
        .unwrap_err();
        assert!(err.contains("limit of 2 jobs per GPU"), "{err}");
    }

    #[test]
    fn cpu_jobs_are_limited_by_slots_and_available_ram() {
        let frame = replayed("synthetic-1gpu.jsonl");
        let ram = frame.host.memory_available_bytes;
        let err = place(
            DeviceRequest::Cpu,
            Need {
                gpu_bytes: None,
                cpu_bytes: Some(ram),
            },
            &frame,
            &[],
            &limits(),
        )
        .unwrap_err();
        assert!(
            err.starts_with("needs 805.0 GiB RAM, 700.0 GiB available"),
            "{err}"
        );
        let running = [
            Load::new(Target::Cpu, GIB, GIB, 1.0),
            Load::new(Target::Cpu, GIB, GIB, 1.0),
        ];
        let err = place(DeviceRequest::Cpu, gpu_need(1), &frame, &running, &limits()).unwrap_err();
        assert_eq!(err, "all 2 CPU job slots busy (jobs.cpu_cores_per_job)");
    }

    #[test]
    fn missing_or_lost_gpus_are_named() {
        let mut frame = replayed("synthetic-1gpu.jsonl");
        let err = place(DeviceRequest::Cuda(3), gpu_need(1), &frame, &[], &limits()).unwrap_err();
        assert_eq!(err, "cuda:3 does not exist (1 GPUs found)");
        frame.gpus[0] = GpuSample::lost(0, "GPU is lost");
        let err = place(DeviceRequest::Cuda(0), gpu_need(1), &frame, &[], &limits()).unwrap_err();
        assert_eq!(err, "cuda:0 is lost (GPU is lost)");
        frame.gpus.clear();
        frame.driver.error = Some("NVIDIA driver is not loaded".into());
        let err = place(DeviceRequest::Cuda(0), gpu_need(1), &frame, &[], &limits()).unwrap_err();
        assert!(
            err.starts_with("no GPU found (NVIDIA driver is not loaded)"),
            "{err}"
        );
        // `any` with no GPU at all just runs on the CPU.
        let p = place(DeviceRequest::Any, gpu_need(1), &frame, &[], &limits()).unwrap();
        assert_eq!(p.target, Target::Cpu);
    }
}
