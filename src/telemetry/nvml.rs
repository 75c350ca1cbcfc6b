//! The NVML implementation of [`GpuSource`], through nvml-wrapper.
//!
//! NVML is initialised once per process and its device handles are acquired once. A field that
//! answers "not supported" (or "no permission", or a symbol missing from an older driver) is
//! remembered per GPU and never asked again; it shows as `N/A`. A GPU that answers "GPU lost" or
//! "unknown error" is marked lost with the reason and retried every [`RETRY_INTERVAL`] while the
//! other GPUs keep updating.

use std::collections::HashSet;
use std::ffi::OsStr;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, PcieUtilCounter, TemperatureSensor,
};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::{Device, Nvml};

use super::model::{DriverInfo, GpuProcess, GpuSample, GpuStatic, ProcessKind};
use super::source::GpuSource;

/// How long a lost GPU waits before it is asked again.
pub const RETRY_INTERVAL: Duration = Duration::from_secs(3);

/// Library names tried in order: the plain name first, then the versioned one that driver
/// packages always install, then the usual absolute locations (containers, WSL).
const LIBRARY_CANDIDATES: &[&str] = &[
    "libnvidia-ml.so",
    "libnvidia-ml.so.1",
    "/usr/lib/x86_64-linux-gnu/libnvidia-ml.so.1",
    "/usr/lib64/libnvidia-ml.so.1",
    "/usr/lib/aarch64-linux-gnu/libnvidia-ml.so.1",
    "/usr/local/nvidia/lib64/libnvidia-ml.so.1",
    "/usr/lib/wsl/lib/libnvidia-ml.so.1",
];

static NVML: OnceLock<Result<Nvml, String>> = OnceLock::new();

/// The process-wide NVML handle, initialised on first use; the error is the reason shown to the
/// user when there is no usable driver.
pub fn nvml() -> Result<&'static Nvml, String> {
    NVML.get_or_init(init_nvml).as_ref().map_err(Clone::clone)
}

fn init_nvml() -> Result<Nvml, String> {
    let mut first_error = None;
    for candidate in LIBRARY_CANDIDATES {
        match Nvml::builder().lib_path(OsStr::new(candidate)).init() {
            Ok(nvml) => return Ok(nvml),
            Err(err) => {
                tracing::debug!(library = candidate, error = %err, "NVML init failed");
                // A driver-level answer (not loaded, no permission) beats "library not found".
                let keep = match (&first_error, &err) {
                    (None, _) => true,
                    (Some(NvmlError::LibloadingError(_)), e) => {
                        !matches!(e, NvmlError::LibloadingError(_))
                    }
                    _ => false,
                };
                if keep {
                    first_error = Some(err);
                }
            }
        }
    }
    Err(describe_init_error(first_error))
}

fn describe_init_error(err: Option<NvmlError>) -> String {
    match err {
        Some(NvmlError::LibloadingError(e)) => {
            format!("no NVIDIA driver found ({e}); install the NVIDIA driver to see GPUs")
        }
        Some(NvmlError::DriverNotLoaded) => {
            "NVIDIA driver is not loaded; load it (nvidia-smi should work) to see GPUs".into()
        }
        Some(NvmlError::NoPermission) => {
            "no permission to talk to the NVIDIA driver; check /dev/nvidia* permissions".into()
        }
        Some(e) => format!("NVML failed to initialise: {e}"),
        None => "NVML failed to initialise".into(),
    }
}

/// A field of a sample, so that "not supported" can be remembered per GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Field {
    Utilization,
    Memory,
    Temperature,
    Fan,
    Power,
    SmClock,
    MemoryClock,
    GraphicsClock,
    Pstate,
    PcieRx,
    PcieTx,
    Encoder,
    Decoder,
    EccCorrected,
    EccUncorrected,
    Throttle,
    ComputeProcesses,
    GraphicsProcesses,
}

/// How an NVML error affects a reading.
enum Failure {
    /// The GPU does not support the field: remember and stop asking.
    Unsupported,
    /// The GPU stopped answering: mark it lost.
    Lost(String),
    /// A passing failure (no data yet, timeout): `N/A` this tick only.
    Transient,
}

fn classify(err: &NvmlError) -> Failure {
    match err {
        NvmlError::NotSupported
        | NvmlError::NoPermission
        | NvmlError::FunctionNotFound
        | NvmlError::FailedToLoadSymbol(_)
        | NvmlError::InvalidArg
        | NvmlError::NotFound => Failure::Unsupported,
        NvmlError::GpuLost
        | NvmlError::Unknown
        | NvmlError::Uninitialized
        | NvmlError::DriverNotLoaded
        | NvmlError::ResetRequired
        | NvmlError::IrqIssue
        | NvmlError::InsufficientPower => Failure::Lost(err.to_string()),
        _ => Failure::Transient,
    }
}

struct Slot {
    index: u32,
    handle: Option<Device<'static>>,
    unsupported: HashSet<Field>,
    fan_count: u32,
    lost: Option<(String, Instant)>,
}

impl Slot {
    /// Reads one field; `Err` means the GPU is lost.
    fn read<T>(
        &mut self,
        field: Field,
        f: impl FnOnce(&Device<'static>) -> Result<T, NvmlError>,
    ) -> Result<Option<T>, String> {
        if self.unsupported.contains(&field) {
            return Ok(None);
        }
        let Some(device) = self.handle.as_ref() else {
            return Err("no device handle".into());
        };
        match f(device) {
            Ok(v) => Ok(Some(v)),
            Err(err) => match classify(&err) {
                Failure::Unsupported => {
                    tracing::debug!(gpu = self.index, ?field, error = %err, "field not supported");
                    self.unsupported.insert(field);
                    Ok(None)
                }
                Failure::Lost(reason) => Err(reason),
                Failure::Transient => Ok(None),
            },
        }
    }

    fn sample(&mut self) -> Result<GpuSample, String> {
        let mut s = GpuSample {
            index: self.index,
            ..GpuSample::default()
        };
        if let Some(mem) = self.read(Field::Memory, |d| d.memory_info())? {
            s.memory_used_bytes = Some(mem.used);
            s.memory_free_bytes = Some(mem.free);
            s.memory_reserved_bytes = Some(mem.reserved);
        }
        if let Some(u) = self.read(Field::Utilization, |d| d.utilization_rates())? {
            s.utilization_gpu_percent = Some(u.gpu);
            s.utilization_memory_percent = Some(u.memory);
        }
        s.temperature_celsius = self.read(Field::Temperature, |d| {
            d.temperature(TemperatureSensor::Gpu)
        })?;
        let fans = self.fan_count;
        if fans > 0 {
            s.fan_percent = self.read(Field::Fan, |d| {
                let mut total = 0;
                for i in 0..fans {
                    total += d.fan_speed(i)?;
                }
                Ok(total / fans)
            })?;
        }
        s.power_draw_watts = self
            .read(Field::Power, |d| d.power_usage())?
            .map(|mw| f64::from(mw) / 1000.0);
        s.sm_clock_mhz = self.read(Field::SmClock, |d| d.clock_info(Clock::SM))?;
        s.memory_clock_mhz = self.read(Field::MemoryClock, |d| d.clock_info(Clock::Memory))?;
        s.graphics_clock_mhz =
            self.read(Field::GraphicsClock, |d| d.clock_info(Clock::Graphics))?;
        s.pstate = self
            .read(Field::Pstate, |d| d.performance_state())?
            .map(|p| p.as_c())
            .filter(|p| *p <= 15);
        s.pcie_rx_bytes_per_second = self
            .read(Field::PcieRx, |d| {
                d.pcie_throughput(PcieUtilCounter::Receive)
            })?
            .map(|kb| u64::from(kb) * 1024);
        s.pcie_tx_bytes_per_second = self
            .read(Field::PcieTx, |d| d.pcie_throughput(PcieUtilCounter::Send))?
            .map(|kb| u64::from(kb) * 1024);
        s.encoder_percent = self
            .read(Field::Encoder, |d| d.encoder_utilization())?
            .map(|u| u.utilization);
        s.decoder_percent = self
            .read(Field::Decoder, |d| d.decoder_utilization())?
            .map(|u| u.utilization);
        s.ecc_corrected_errors = self.read(Field::EccCorrected, |d| {
            d.total_ecc_errors(MemoryError::Corrected, EccCounter::Volatile)
        })?;
        s.ecc_uncorrected_errors = self.read(Field::EccUncorrected, |d| {
            d.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Volatile)
        })?;
        s.throttle_reasons = self
            .read(Field::Throttle, |d| d.current_throttle_reasons())?
            .map(throttle_names);
        let compute = self
            .read(Field::ComputeProcesses, |d| d.running_compute_processes())?
            .unwrap_or_default();
        let graphics = self
            .read(Field::GraphicsProcesses, |d| d.running_graphics_processes())?
            .unwrap_or_default();
        s.processes = merge_processes(&compute, &graphics);
        Ok(s)
    }
}

/// Joins the compute and graphics process lists; a pid in both becomes [`ProcessKind::Both`].
fn merge_processes(compute: &[ProcessInfo], graphics: &[ProcessInfo]) -> Vec<GpuProcess> {
    let memory = |p: &ProcessInfo| match p.used_gpu_memory {
        UsedGpuMemory::Used(bytes) => Some(bytes),
        UsedGpuMemory::Unavailable => None,
    };
    let mut out: Vec<GpuProcess> = compute
        .iter()
        .map(|p| GpuProcess {
            pid: p.pid,
            kind: ProcessKind::Compute,
            gpu_memory_bytes: memory(p),
        })
        .collect();
    for g in graphics {
        match out.iter_mut().find(|p| p.pid == g.pid) {
            Some(existing) => {
                existing.kind = ProcessKind::Both;
                if existing.gpu_memory_bytes.is_none() {
                    existing.gpu_memory_bytes = memory(g);
                }
            }
            None => out.push(GpuProcess {
                pid: g.pid,
                kind: ProcessKind::Graphics,
                gpu_memory_bytes: memory(g),
            }),
        }
    }
    out.sort_by_key(|p| p.pid);
    out
}

/// NVML's active throttle / event reason flags as snake-case names (`sw_power_cap`, ...).
fn throttle_names(reasons: ThrottleReasons) -> Vec<String> {
    reasons
        .iter_names()
        .filter(|(name, _)| *name != "NONE")
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect()
}

/// Formats NVML's CUDA driver version integer (`12040`) as `12.4`.
fn cuda_version_string(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

/// Live GPUs through NVML.
pub struct NvmlSource {
    driver: DriverInfo,
    devices: Vec<GpuStatic>,
    slots: Vec<Slot>,
}

impl NvmlSource {
    /// Initialises NVML and reads the static facts of every GPU. Never fails: without a driver the
    /// source has no GPUs and its [`DriverInfo`] says why.
    pub fn open() -> Self {
        let nvml = match nvml() {
            Ok(n) => n,
            Err(reason) => {
                return Self {
                    driver: DriverInfo::unavailable(reason),
                    devices: Vec::new(),
                    slots: Vec::new(),
                }
            }
        };
        let driver = DriverInfo {
            available: true,
            error: None,
            driver_version: nvml.sys_driver_version().ok(),
            cuda_version: nvml.sys_cuda_driver_version().ok().map(cuda_version_string),
            nvml_version: nvml.sys_nvml_version().ok(),
        };
        let count = match nvml.device_count() {
            Ok(c) => c,
            Err(e) => {
                return Self {
                    driver: DriverInfo::unavailable(format!("NVML cannot count GPUs: {e}")),
                    devices: Vec::new(),
                    slots: Vec::new(),
                }
            }
        };
        let mut devices = Vec::new();
        let mut slots = Vec::new();
        for index in 0..count {
            let handle = nvml.device_by_index(index);
            let (info, slot) = match handle {
                Ok(d) => read_static(index, d),
                Err(e) => (
                    placeholder_static(index),
                    Slot {
                        index,
                        handle: None,
                        unsupported: HashSet::new(),
                        fan_count: 0,
                        lost: Some((e.to_string(), Instant::now())),
                    },
                ),
            };
            devices.push(info);
            slots.push(slot);
        }
        Self {
            driver,
            devices,
            slots,
        }
    }
}

fn placeholder_static(index: u32) -> GpuStatic {
    GpuStatic {
        index,
        name: format!("GPU {index}"),
        uuid: String::new(),
        pci_bus_id: None,
        memory_total_bytes: 0,
        power_limit_watts: None,
        max_sm_clock_mhz: None,
        max_memory_clock_mhz: None,
        max_graphics_clock_mhz: None,
        compute_capability: None,
        persistence_mode: None,
        mig_mode: None,
        fan_count: None,
    }
}

fn read_static(index: u32, d: Device<'static>) -> (GpuStatic, Slot) {
    let fan_count = d.num_fans().ok();
    let info = GpuStatic {
        index,
        name: d.name().unwrap_or_else(|_| format!("GPU {index}")),
        uuid: d.uuid().unwrap_or_default(),
        pci_bus_id: d.pci_info().ok().map(|p| p.bus_id),
        memory_total_bytes: d.memory_info().map(|m| m.total).unwrap_or(0),
        power_limit_watts: d
            .enforced_power_limit()
            .ok()
            .map(|mw| f64::from(mw) / 1000.0),
        max_sm_clock_mhz: d.max_clock_info(Clock::SM).ok(),
        max_memory_clock_mhz: d.max_clock_info(Clock::Memory).ok(),
        max_graphics_clock_mhz: d.max_clock_info(Clock::Graphics).ok(),
        compute_capability: d
            .cuda_compute_capability()
            .ok()
            .map(|c| format!("{}.{}", c.major, c.minor)),
        persistence_mode: d.is_in_persistent_mode().ok(),
        mig_mode: d.mig_mode().ok().map(|m| m.current == 1),
        fan_count,
    };
    let slot = Slot {
        index,
        handle: Some(d),
        unsupported: HashSet::new(),
        fan_count: fan_count.unwrap_or(0),
        lost: None,
    };
    (info, slot)
}

impl GpuSource for NvmlSource {
    fn driver(&self) -> DriverInfo {
        self.driver.clone()
    }

    fn devices(&self) -> Vec<GpuStatic> {
        self.devices.clone()
    }

    fn sample(&mut self) -> Vec<GpuSample> {
        self.slots
            .iter_mut()
            .map(|slot| {
                if let Some((reason, since)) = &slot.lost {
                    if since.elapsed() < RETRY_INTERVAL {
                        return GpuSample::lost(slot.index, reason.clone());
                    }
                    // Time to retry: get a fresh handle, then sample as usual.
                    match nvml()
                        .and_then(|n| n.device_by_index(slot.index).map_err(|e| e.to_string()))
                    {
                        Ok(handle) => slot.handle = Some(handle),
                        Err(reason) => {
                            slot.lost = Some((reason.clone(), Instant::now()));
                            return GpuSample::lost(slot.index, reason);
                        }
                    }
                }
                match slot.sample() {
                    Ok(s) => {
                        if slot.lost.take().is_some() {
                            tracing::info!(gpu = slot.index, "GPU answers again");
                        }
                        s
                    }
                    Err(reason) => {
                        tracing::warn!(gpu = slot.index, %reason, "GPU lost");
                        slot.lost = Some((reason.clone(), Instant::now()));
                        GpuSample::lost(slot.index, reason)
                    }
                }
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_version_formats_like_nvidia_smi() {
        assert_eq!(cuda_version_string(12040), "12.4");
        assert_eq!(cuda_version_string(13000), "13.0");
        assert_eq!(cuda_version_string(11080), "11.8");
    }

    #[test]
    fn throttle_flags_become_snake_case_names() {
        let names = throttle_names(ThrottleReasons::SW_POWER_CAP | ThrottleReasons::HW_SLOWDOWN);
        assert_eq!(names, vec!["sw_power_cap", "hw_slowdown"]);
        assert!(throttle_names(ThrottleReasons::NONE).is_empty());
        assert_eq!(throttle_names(ThrottleReasons::GPU_IDLE), vec!["gpu_idle"]);
    }

    #[test]
    fn lost_and_unsupported_errors_are_told_apart() {
        assert!(matches!(
            classify(&NvmlError::NotSupported),
            Failure::Unsupported
        ));
        assert!(matches!(
            classify(&NvmlError::NoPermission),
            Failure::Unsupported
        ));
        assert!(matches!(classify(&NvmlError::GpuLost), Failure::Lost(_)));
        assert!(matches!(classify(&NvmlError::Unknown), Failure::Lost(_)));
        assert!(matches!(classify(&NvmlError::Timeout), Failure::Transient));
    }

    #[test]
    fn processes_in_both_lists_become_compute_and_graphics() {
        let p = |pid, bytes| ProcessInfo {
            pid,
            used_gpu_memory: UsedGpuMemory::Used(bytes),
            gpu_instance_id: None,
            compute_instance_id: None,
        };
        let merged = merge_processes(&[p(20, 100), p(10, 50)], &[p(20, 100), p(30, 7)]);
        let kinds: Vec<_> = merged.iter().map(|p| (p.pid, p.kind)).collect();
        assert_eq!(
            kinds,
            vec![
                (10, ProcessKind::Compute),
                (20, ProcessKind::Both),
                (30, ProcessKind::Graphics)
            ]
        );
    }

    #[test]
    fn without_a_driver_the_source_is_empty_and_says_why() {
        // This machine (and CI) has no NVIDIA driver: the real "no driver" path.
        if std::path::Path::new("/dev/nvidiactl").exists() {
            return;
        }
        let source = NvmlSource::open();
        let driver = source.driver();
        assert!(!driver.available);
        let reason = driver.error.unwrap_or_default();
        assert!(reason.contains("NVIDIA"), "{reason}");
        assert!(source.devices().is_empty());
    }
}
