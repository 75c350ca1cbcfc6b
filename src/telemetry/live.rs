//! The live [`FrameSource`]: a [`GpuSource`] (NVML) plus the host probe (sysinfo).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::host::HostProbe;
use super::model::{Frame, GpuSample};
use super::nvml::NvmlSource;
use super::source::{FrameSource, GpuSource, TelemetryError, Tick};

/// sysinfo needs this long between two readings for CPU percentages to mean anything.
pub const CPU_MEASURE_WINDOW: Duration = Duration::from_millis(200);

/// GPUs and host read live.
pub struct LiveSource {
    gpus: Box<dyn GpuSource>,
    host: HostProbe,
}

impl LiveSource {
    /// NVML (or its absence, which is reported in every frame) plus sysinfo.
    pub fn open() -> Result<Self, TelemetryError> {
        Self::with_gpus(Box::new(NvmlSource::open()))
    }

    /// Any GPU source plus the real host probe.
    pub fn with_gpus(gpus: Box<dyn GpuSource>) -> Result<Self, TelemetryError> {
        Ok(Self {
            gpus,
            host: HostProbe::new()?,
        })
    }

    /// One frame whose CPU percentages (host and processes) are measured over at least
    /// [`CPU_MEASURE_WINDOW`]: for one-shot commands like `snapshot`.
    pub fn measured_frame(&mut self) -> Frame {
        let gpus = self.gpus.sample();
        let pids = gpu_pids(&gpus);
        self.host.sample(&pids);
        std::thread::sleep(CPU_MEASURE_WINDOW);
        self.frame(gpus)
    }

    fn frame(&mut self, gpus: Vec<GpuSample>) -> Frame {
        let pids = gpu_pids(&gpus);
        Frame {
            timestamp_ms: now_ms(),
            driver: self.gpus.driver(),
            devices: self.gpus.devices(),
            gpus,
            host: self.host.sample(&pids),
        }
    }
}

impl FrameSource for LiveSource {
    fn next_tick(&mut self) -> Tick {
        let gpus = self.gpus.sample();
        Tick::Frame {
            frame: Box::new(self.frame(gpus)),
            wait: None,
        }
    }
}

/// Every distinct pid holding a context on any GPU.
fn gpu_pids(gpus: &[GpuSample]) -> Vec<u32> {
    let mut pids: Vec<u32> = gpus
        .iter()
        .flat_map(|g| g.processes.iter().map(|p| p.pid))
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
