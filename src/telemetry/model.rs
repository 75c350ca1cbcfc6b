//! The data the telemetry part produces: static facts about each GPU, one sample per GPU per
//! tick, host facts, and the `Frame` that bundles one tick for the rest of the program.
//!
//! Every optional field is `None` when the driver answered "not supported" (shown as `N/A`,
//! serialised as `null`). Units are in the field names.

use serde::{Deserialize, Serialize};

/// What the driver told us once at start-up, or why it could not be reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DriverInfo {
    /// True when NVML initialised and GPUs can be queried.
    pub available: bool,
    /// Why NVML is unavailable (library missing, driver not loaded, ...); `None` when available.
    pub error: Option<String>,
    /// Driver version string, e.g. `580.65.06`.
    pub driver_version: Option<String>,
    /// Highest CUDA version the driver supports, e.g. `13.0`.
    pub cuda_version: Option<String>,
    /// NVML library version.
    pub nvml_version: Option<String>,
}

impl DriverInfo {
    /// A driver that could not be used, with the reason shown to the user.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self {
            available: false,
            error: Some(reason.into()),
            driver_version: None,
            cuda_version: None,
            nvml_version: None,
        }
    }
}

/// Facts about one GPU that do not change while the program runs (read once).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuStatic {
    /// NVML index (the order `nvidia-smi` uses).
    pub index: u32,
    /// Marketing name, e.g. `NVIDIA H100 80GB HBM3`.
    pub name: String,
    /// `GPU-...` UUID.
    pub uuid: String,
    /// PCI bus id, e.g. `00000000:18:00.0`.
    pub pci_bus_id: Option<String>,
    /// Total framebuffer memory.
    pub memory_total_bytes: u64,
    /// Enforced power limit.
    pub power_limit_watts: Option<f64>,
    /// Maximum SM clock.
    pub max_sm_clock_mhz: Option<u32>,
    /// Maximum memory clock.
    pub max_memory_clock_mhz: Option<u32>,
    /// Maximum graphics clock.
    pub max_graphics_clock_mhz: Option<u32>,
    /// CUDA compute capability as `major.minor`, e.g. `9.0`.
    pub compute_capability: Option<String>,
    /// Persistence mode on/off.
    pub persistence_mode: Option<bool>,
    /// Current MIG mode on/off.
    pub mig_mode: Option<bool>,
    /// Number of fans (0 for passively cooled cards).
    pub fan_count: Option<u32>,
}

/// Whether a GPU answered on the last tick.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum GpuHealth {
    /// The GPU answered.
    #[default]
    Ok,
    /// The GPU stopped answering (fell off the bus, unknown error); it is retried every few
    /// seconds while the other GPUs keep updating.
    Lost {
        /// The driver's error, as text.
        reason: String,
    },
}

/// Whether a process uses the GPU for compute, graphics or both.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProcessKind {
    /// CUDA / compute context.
    Compute,
    /// Graphics context.
    Graphics,
    /// Both a compute and a graphics context.
    Both,
}

impl ProcessKind {
    /// One-letter code used in narrow tables (`C`, `G`, `C+G` as nvidia-smi prints them).
    pub fn code(self) -> &'static str {
        match self {
            Self::Compute => "C",
            Self::Graphics => "G",
            Self::Both => "C+G",
        }
    }
}

/// A process holding a context on a GPU, as the driver reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GpuProcess {
    /// Host process id.
    pub pid: u32,
    /// Compute, graphics or both.
    pub kind: ProcessKind,
    /// GPU memory used by the process (`None` when the driver does not say, e.g. in containers).
    pub gpu_memory_bytes: Option<u64>,
}

/// One reading of one GPU.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct GpuSample {
    /// NVML index of the GPU this sample belongs to.
    pub index: u32,
    /// Whether the GPU answered; when lost, the other fields are `None`.
    pub health: GpuHealth,
    /// Percent of time a kernel was running over the last sample period.
    pub utilization_gpu_percent: Option<u32>,
    /// Percent of time device memory was read or written.
    pub utilization_memory_percent: Option<u32>,
    /// Memory in use (includes reserved memory, as nvidia-smi's "used" does on recent drivers).
    pub memory_used_bytes: Option<u64>,
    /// Memory free.
    pub memory_free_bytes: Option<u64>,
    /// Memory reserved by the driver (v2 memory info).
    pub memory_reserved_bytes: Option<u64>,
    /// Core temperature.
    pub temperature_celsius: Option<u32>,
    /// Fan speed as a percent of maximum (average over fans).
    pub fan_percent: Option<u32>,
    /// Power draw.
    pub power_draw_watts: Option<f64>,
    /// Current SM clock.
    pub sm_clock_mhz: Option<u32>,
    /// Current memory clock.
    pub memory_clock_mhz: Option<u32>,
    /// Current graphics clock.
    pub graphics_clock_mhz: Option<u32>,
    /// Performance state, 0 (fastest) to 15.
    pub pstate: Option<u32>,
    /// PCIe receive throughput.
    pub pcie_rx_bytes_per_second: Option<u64>,
    /// PCIe transmit throughput.
    pub pcie_tx_bytes_per_second: Option<u64>,
    /// Video encoder utilisation.
    pub encoder_percent: Option<u32>,
    /// Video decoder utilisation.
    pub decoder_percent: Option<u32>,
    /// Volatile corrected ECC errors since the driver loaded.
    pub ecc_corrected_errors: Option<u64>,
    /// Volatile uncorrected ECC errors since the driver loaded.
    pub ecc_uncorrected_errors: Option<u64>,
    /// Active clock throttle / event reasons, in NVML's names turned to snake case
    /// (`gpu_idle`, `sw_power_cap`, `hw_slowdown`, `sw_thermal_slowdown`, ...).
    pub throttle_reasons: Option<Vec<String>>,
    /// Processes with a context on this GPU.
    pub processes: Vec<GpuProcess>,
}

impl GpuSample {
    /// A sample that only says the GPU is lost, and why.
    pub fn lost(index: u32, reason: impl Into<String>) -> Self {
        Self {
            index,
            health: GpuHealth::Lost {
                reason: reason.into(),
            },
            ..Self::default()
        }
    }
}

/// A host process that holds a GPU context, with what the OS knows about it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostProcess {
    /// Process id.
    pub pid: u32,
    /// Owner's user name (or numeric uid when it has no name).
    pub user: Option<String>,
    /// Numeric uid of the owner, used to decide whether the viewer may signal it.
    pub uid: Option<u32>,
    /// Command line, space-joined.
    pub command: String,
    /// CPU use in percent of one core.
    pub cpu_percent: Option<f32>,
    /// Resident set size.
    pub rss_bytes: Option<u64>,
}

/// One reading of the host.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct HostSample {
    /// Host name.
    pub hostname: String,
    /// Total CPU use in percent (0 to 100, all cores together).
    pub cpu_percent: f32,
    /// Per-core CPU use in percent.
    pub per_core_percent: Vec<f32>,
    /// 1, 5 and 15 minute load averages.
    pub load_average: [f64; 3],
    /// Total RAM.
    pub memory_total_bytes: u64,
    /// RAM in use.
    pub memory_used_bytes: u64,
    /// RAM available to new allocations (what the estimator treats as free for the CPU).
    pub memory_available_bytes: u64,
    /// Total swap.
    pub swap_total_bytes: u64,
    /// Swap in use.
    pub swap_used_bytes: u64,
    /// Seconds since boot.
    pub uptime_seconds: u64,
    /// Details of every process that holds a GPU context.
    pub processes: Vec<HostProcess>,
}

/// One tick of telemetry: everything every screen draws from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// Wall-clock time of the sample, milliseconds since the Unix epoch.
    pub timestamp_ms: u64,
    /// Driver status (the same for every frame of a session).
    pub driver: DriverInfo,
    /// Static facts, one per GPU, in index order.
    pub devices: Vec<GpuStatic>,
    /// Samples, one per GPU, in the same order as `devices`.
    pub gpus: Vec<GpuSample>,
    /// Host reading.
    pub host: HostSample,
}
