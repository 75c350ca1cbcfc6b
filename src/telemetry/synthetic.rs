//! Synthetic telemetry: deterministic, made-up frames for tests, benchmarks and the demo trace
//! until a real recording replaces it. Traces made from these say `"source": "synthetic"` in
//! their header, and files holding them have `synthetic` in their name.

use super::model::{
    DriverInfo, Frame, GpuProcess, GpuSample, GpuStatic, HostProcess, HostSample, ProcessKind,
};

const GIB: u64 = 1 << 30;

/// A small deterministic pseudo-random generator (xorshift64*), so the same seed always gives
/// the same trace without pulling in a crate.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `0..n`.
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Static facts of `count` H100-like GPUs.
pub fn devices(count: usize) -> Vec<GpuStatic> {
    (0..count as u32)
        .map(|i| GpuStatic {
            index: i,
            name: "NVIDIA H100 80GB HBM3".into(),
            uuid: format!("GPU-5e7d0000-0000-4000-8000-{:012x}", 0x5_0000 + i),
            pci_bus_id: Some(format!("00000000:{:02X}:00.0", 0x18 + 0x10 * i)),
            memory_total_bytes: 81_559 * 1024 * 1024,
            power_limit_watts: Some(700.0),
            max_sm_clock_mhz: Some(1980),
            max_memory_clock_mhz: Some(2619),
            max_graphics_clock_mhz: Some(1980),
            compute_capability: Some("9.0".into()),
            persistence_mode: Some(true),
            mig_mode: Some(false),
            fan_count: Some(0),
        })
        .collect()
}

/// The driver of a synthetic machine.
pub fn driver() -> DriverInfo {
    DriverInfo {
        available: true,
        error: None,
        driver_version: Some("580.65.06".into()),
        cuda_version: Some("13.0".into()),
        nvml_version: Some("13.580.65.06".into()),
    }
}

/// `samples` frames of `gpus` GPUs, `interval_ms` apart, from `seed`.
///
/// Even GPUs run a training-like job (high utilisation, power cap throttling), odd GPUs are
/// mostly idle with one small process, and the last GPU of a machine with four or more is lost
/// for a stretch in the middle of the trace. Fans are `None`, as on passively cooled cards.
pub fn frames(gpus: usize, samples: usize, interval_ms: u64, seed: u64) -> Vec<Frame> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let devices = devices(gpus);
    let start_ms = 1_790_000_000_000;
    let users = ["alice", "bob", "carol", "dave"];
    (0..samples)
        .map(|t| {
            let mut host_processes = Vec::new();
            let gpu_samples = devices
                .iter()
                .map(|d| {
                    let i = d.index as usize;
                    let lost = gpus >= 4 && i == gpus - 1 && t >= samples / 3 && t < samples / 2;
                    if lost {
                        return GpuSample::lost(d.index, "GPU is lost (synthetic)");
                    }
                    let busy = i % 2 == 0;
                    let phase = (t as f64 / 12.0 + i as f64).sin();
                    let util = if busy {
                        (80.0 + 15.0 * phase) as u32 + rng.below(5) as u32
                    } else {
                        rng.below(4) as u32
                    };
                    let pid = 40_000 + 100 * d.index;
                    let job_bytes = if busy {
                        (30 + 4 * i as u64) * GIB + rng.below(GIB)
                    } else {
                        (2 + i as u64 % 3) * GIB
                    };
                    let mut processes = vec![GpuProcess {
                        pid,
                        kind: ProcessKind::Compute,
                        gpu_memory_bytes: Some(job_bytes),
                    }];
                    host_processes.push(HostProcess {
                        pid,
                        user: Some(users[i % users.len()].into()),
                        uid: Some(1000 + (i % users.len()) as u32),
                        command: if busy {
                            format!("python train.py --config exp{i}.yaml")
                        } else {
                            "python -m jupyter notebook".into()
                        },
                        cpu_percent: Some(if busy { 99.0 } else { 1.5 }),
                        rss_bytes: Some((4 + i as u64) * GIB),
                    });
                    if busy && i % 4 == 0 {
                        let helper = pid + 1;
                        processes.push(GpuProcess {
                            pid: helper,
                            kind: ProcessKind::Compute,
                            gpu_memory_bytes: Some(GIB / 2),
                        });
                        host_processes.push(HostProcess {
                            pid: helper,
                            user: Some(users[i % users.len()].into()),
                            uid: Some(1000 + (i % users.len()) as u32),
                            command: "python -m torch.distributed.run --nproc 1 eval.py".into(),
                            cpu_percent: Some(12.0),
                            rss_bytes: Some(2 * GIB),
                        });
                    }
                    let used: u64 = processes
                        .iter()
                        .filter_map(|p| p.gpu_memory_bytes)
                        .sum::<u64>()
                        + 512 * 1024 * 1024;
                    let power = if busy {
                        420.0 + 250.0 * phase.abs()
                    } else {
                        72.0 + rng.below(10) as f64
                    };
                    GpuSample {
                        index: d.index,
                        utilization_gpu_percent: Some(util.min(100)),
                        utilization_memory_percent: Some(util * 2 / 3),
                        memory_used_bytes: Some(used),
                        memory_free_bytes: Some(d.memory_total_bytes.saturating_sub(used)),
                        memory_reserved_bytes: Some(512 * 1024 * 1024),
                        temperature_celsius: Some(if busy { 62 + util / 10 } else { 33 }),
                        fan_percent: None,
                        power_draw_watts: Some((power * 10.0).round() / 10.0),
                        sm_clock_mhz: Some(if busy { 1755 } else { 345 }),
                        memory_clock_mhz: Some(2619),
                        graphics_clock_mhz: Some(if busy { 1755 } else { 345 }),
                        pstate: Some(0),
                        pcie_rx_bytes_per_second: Some(
                            rng.below(if busy { 900 } else { 5 }) * 1024 * 1024,
                        ),
                        pcie_tx_bytes_per_second: Some(
                            rng.below(if busy { 300 } else { 2 }) * 1024 * 1024,
                        ),
                        encoder_percent: Some(0),
                        decoder_percent: Some(0),
                        ecc_corrected_errors: Some(0),
                        ecc_uncorrected_errors: Some(0),
                        throttle_reasons: Some(if busy && power > 650.0 {
                            vec!["sw_power_cap".into()]
                        } else if !busy {
                            vec!["gpu_idle".into()]
                        } else {
                            Vec::new()
                        }),
                        processes,
                        health: Default::default(),
                    }
                })
                .collect();
            let cores = 32;
            let per_core: Vec<f32> = (0..cores).map(|c| ((c * 7 + t * 3) % 100) as f32).collect();
            Frame {
                timestamp_ms: start_ms + t as u64 * interval_ms,
                driver: driver(),
                devices: devices.clone(),
                gpus: gpu_samples,
                host: HostSample {
                    hostname: "synthetic-node".into(),
                    cpu_percent: per_core.iter().sum::<f32>() / cores as f32,
                    per_core_percent: per_core,
                    load_average: [12.5, 11.0, 9.75],
                    memory_total_bytes: 1024 * GIB,
                    memory_used_bytes: 300 * GIB + (t as u64 % 10) * GIB,
                    memory_available_bytes: 700 * GIB,
                    swap_total_bytes: 8 * GIB,
                    swap_used_bytes: 0,
                    uptime_seconds: 86_400 * 12 + t as u64,
                    processes: host_processes,
                },
            }
        })
        .collect()
}
