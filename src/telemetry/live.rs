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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::model::{DriverInfo, GpuHealth, GpuStatic};
    use crate::telemetry::synthetic;

    /// Two GPUs; the second is lost on the second tick only.
    struct Flaky {
        tick: usize,
        devices: Vec<GpuStatic>,
    }

    impl GpuSource for Flaky {
        fn driver(&self) -> DriverInfo {
            synthetic::driver()
        }
        fn devices(&self) -> Vec<GpuStatic> {
            self.devices.clone()
        }
        fn sample(&mut self) -> Vec<GpuSample> {
            self.tick += 1;
            let mut out = synthetic::frames(2, 1, 1000, self.tick as u64)
                .remove(0)
                .gpus;
            // Report this very process as the first GPU's user so the host probe looks it up.
            out[0].processes[0].pid = std::process::id();
            if self.tick == 2 {
                out[1] = GpuSample::lost(1, "GPU is lost");
            }
            out
        }
    }

    #[test]
    fn a_lost_gpu_is_reported_while_the_others_keep_updating() {
        let flaky = Flaky {
            tick: 0,
            devices: synthetic::devices(2),
        };
        let mut live = LiveSource::with_gpus(Box::new(flaky)).unwrap();
        let mut frames = Vec::new();
        for _ in 0..3 {
            match live.next_tick() {
                Tick::Frame { frame, wait } => {
                    assert_eq!(wait, None, "live sources use the configured interval");
                    frames.push(*frame);
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(
            frames[1].gpus[1].health,
            GpuHealth::Lost {
                reason: "GPU is lost".into()
            }
        );
        assert_eq!(frames[1].gpus[0].health, GpuHealth::Ok);
        assert!(frames[1].gpus[0].utilization_gpu_percent.is_some());
        assert_eq!(
            frames[2].gpus[1].health,
            GpuHealth::Ok,
            "the GPU comes back"
        );
        // The host half is real: this process was looked up by pid.
        let me = std::process::id();
        assert!(frames[0].host.processes.iter().any(|p| p.pid == me));
        assert!(frames
            .windows(2)
            .all(|w| w[0].timestamp_ms <= w[1].timestamp_ms));
    }
}
