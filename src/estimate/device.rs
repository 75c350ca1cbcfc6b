//! The devices an estimate is checked against, with their free memory now: GPUs from the
//! telemetry frame (NVML or a replayed trace), the CPU from sysinfo's available memory.

use serde::{Deserialize, Serialize};

use super::workload::DType;
use crate::telemetry::model::{Frame, GpuHealth};

/// Which device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum DeviceId {
    /// The host CPU and RAM.
    Cpu,
    /// A GPU by NVML index.
    Cuda(u32),
}

impl DeviceId {
    /// `cpu` or `cuda:N`, as `--device` takes it.
    pub fn label(self) -> String {
        match self {
            Self::Cpu => "cpu".to_string(),
            Self::Cuda(i) => format!("cuda:{i}"),
        }
    }

    /// Parses `cpu` or `cuda:N` (plain `cuda` is `cuda:0`).
    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "cpu" => Some(Self::Cpu),
            "cuda" => Some(Self::Cuda(0)),
            _ => text.strip_prefix("cuda:")?.parse().ok().map(Self::Cuda),
        }
    }
}

/// A device as the estimator sees it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeviceSpec {
    /// Which device.
    pub id: DeviceId,
    /// Its name (GPU marketing name, or `CPU`).
    pub name: String,
    /// Total memory.
    pub total_bytes: u64,
    /// Memory free now (GPU: NVML free; CPU: available RAM).
    pub free_bytes: u64,
    /// bf16 is supported (compute capability 8.0 and newer).
    pub bf16: bool,
    /// How fast it runs the engine's work (the time estimate's inputs).
    pub speed: Speed,
}

/// How fast a device runs the engine's work: matmul FLOPs, a fixed cost per matmul call, and a
/// cost per byte that the other ops (bias adds, norms, softmax, GELU, head transposes, residual
/// adds) write into new tensors.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Speed {
    /// Dense matmul throughput (FLOP/s).
    pub flops_per_second: f64,
    /// Fixed cost of one matmul call (thread-pool dispatch on the CPU, a launch on a GPU).
    pub seconds_per_matmul: f64,
    /// Cost per byte an element-wise op, norm, softmax or copy writes into a new tensor.
    pub seconds_per_byte: f64,
}

impl Speed {
    /// For callers that only use memory verdicts (no time is shown).
    pub const NOT_MEASURED: Speed = Speed {
        flops_per_second: 1.0,
        seconds_per_matmul: 0.0,
        seconds_per_byte: 0.0,
    };
}

impl DeviceSpec {
    /// The CPU, with its RAM (total and available now) and its calibrated speed.
    pub fn cpu(total_bytes: u64, free_bytes: u64, speed: Speed) -> Self {
        Self {
            id: DeviceId::Cpu,
            name: "CPU".to_string(),
            total_bytes,
            free_bytes,
            bf16: false,
            speed,
        }
    }

    /// Whether this is a GPU.
    pub fn is_gpu(&self) -> bool {
        matches!(self.id, DeviceId::Cuda(_))
    }

    /// The dtype the engine uses when none is asked for: f32 on the CPU, bf16 on a GPU that
    /// supports it, else f16.
    pub fn default_dtype(&self) -> DType {
        match (self.is_gpu(), self.bf16) {
            (false, _) => DType::F32,
            (true, true) => DType::Bf16,
            (true, false) => DType::F16,
        }
    }

    /// The dtype actually used for a request: the CPU always computes in f32.
    pub fn effective_dtype(&self, requested: Option<DType>) -> DType {
        if self.is_gpu() {
            requested.unwrap_or_else(|| self.default_dtype())
        } else {
            DType::F32
        }
    }
}

/// Dense bf16/f16 throughput of well-known GPUs in TFLOP/s (vendor peak), by name fragment.
const GPU_PEAK_TFLOPS: [(&str, f64); 12] = [
    ("H200", 989.0),
    ("H100", 989.0),
    ("A100", 312.0),
    ("L40S", 362.0),
    ("A6000", 155.0),
    ("L4", 121.0),
    ("A10", 125.0),
    ("4090", 165.0),
    ("3090", 71.0),
    ("V100", 125.0),
    ("T4", 65.0),
    ("A40", 150.0),
];

/// Fraction of vendor peak that forward passes of this size reach (unvalidated: no GPU run has
/// checked it yet; see the README).
pub const GPU_EFFICIENCY: f64 = 0.35;

/// Throughput assumed for an unknown GPU (TFLOP/s).
const UNKNOWN_GPU_TFLOPS: f64 = 50.0;

/// Fixed cost of one matmul on a GPU (kernel launch and cuBLAS dispatch; not yet checked on a
/// real GPU).
pub const GPU_SECONDS_PER_MATMUL: f64 = 10e-6;
/// Rate at which a GPU's element-wise kernels write new tensors (about half the HBM bandwidth of
/// an A100/H100 class card, as reads come with every write; not yet checked on a real GPU).
pub const GPU_BYTES_PER_SECOND: f64 = 1e12;

/// Expected FLOP/s of a GPU from its name.
pub fn gpu_flops(name: &str) -> f64 {
    let peak = GPU_PEAK_TFLOPS
        .iter()
        .find(|(fragment, _)| name.contains(fragment))
        .map_or(UNKNOWN_GPU_TFLOPS, |(_, t)| *t);
    peak * 1e12 * GPU_EFFICIENCY
}

/// Expected speed of a GPU from its name.
pub fn gpu_speed(name: &str) -> Speed {
    Speed {
        flops_per_second: gpu_flops(name),
        seconds_per_matmul: GPU_SECONDS_PER_MATMUL,
        seconds_per_byte: 1.0 / GPU_BYTES_PER_SECOND,
    }
}

fn compute_capability_at_least_8(cc: Option<&str>) -> bool {
    cc.and_then(|c| c.split('.').next())
        .and_then(|major| major.parse::<u32>().ok())
        .is_some_and(|major| major >= 8)
}

/// Every device of a frame: the CPU first, then each GPU that answered.
pub fn devices_from_frame(frame: &Frame, cpu: Speed) -> Vec<DeviceSpec> {
    let mut devices = vec![DeviceSpec::cpu(
        frame.host.memory_total_bytes,
        frame.host.memory_available_bytes,
        cpu,
    )];
    if frame.driver.available {
        for (stat, sample) in frame.devices.iter().zip(&frame.gpus) {
            if sample.health != GpuHealth::Ok {
                continue;
            }
            let free = sample.memory_free_bytes.unwrap_or_else(|| {
                stat.memory_total_bytes
                    .saturating_sub(sample.memory_used_bytes.unwrap_or(0))
            });
            devices.push(DeviceSpec {
                id: DeviceId::Cuda(stat.index),
                name: stat.name.clone(),
                total_bytes: stat.memory_total_bytes,
                free_bytes: free,
                bf16: compute_capability_at_least_8(stat.compute_capability.as_deref()),
                speed: gpu_speed(&stat.name),
            });
        }
    }
    devices
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_labels_round_trip() {
        for id in [DeviceId::Cpu, DeviceId::Cuda(0), DeviceId::Cuda(7)] {
            assert_eq!(DeviceId::parse(&id.label()), Some(id));
        }
        assert_eq!(DeviceId::parse("cuda"), Some(DeviceId::Cuda(0)));
        assert_eq!(DeviceId::parse("gpu0"), None);
    }

    #[test]
    fn gpus_of_a_replayed_frame_use_nvml_free_memory() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("assets/traces/synthetic-8gpu.jsonl");
        let mut replay = crate::telemetry::replay::ReplaySource::open(&path, 1.0, false).unwrap();
        let frame = match crate::telemetry::FrameSource::next_tick(&mut replay) {
            crate::telemetry::Tick::Frame { frame, .. } => *frame,
            _ => panic!("no frame"),
        };
        let devices = devices_from_frame(&frame, Speed::NOT_MEASURED);
        assert_eq!(devices[0].id, DeviceId::Cpu);
        assert_eq!(devices[0].free_bytes, frame.host.memory_available_bytes);
        let gpu0 = &devices[1];
        assert_eq!(gpu0.free_bytes, frame.gpus[0].memory_free_bytes.unwrap());
        assert_eq!(gpu0.default_dtype(), DType::Bf16);
    }
}
