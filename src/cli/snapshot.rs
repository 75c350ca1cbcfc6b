//! `neuronmap snapshot`: one frame as plain text or versioned JSON, then exit (for `watch`, logs
//! and `ssh host neuronmap snapshot`).

use std::fmt::Write as _;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::GlobalArgs;
use crate::config::Config;
use crate::telemetry::model::{Frame, GpuHealth, GpuSample, GpuStatic, HostProcess};
use crate::telemetry::{self};

/// Version of the `snapshot --json` schema (documented in the README).
pub const SNAPSHOT_SCHEMA_VERSION: u32 = 1;

/// Arguments of `neuronmap snapshot`.
#[derive(Debug, Args)]
pub struct SnapshotArgs {
    /// Print JSON (numbers as numbers, units in key names, null for N/A).
    #[arg(long)]
    pub json: bool,
}

/// Takes one frame (live, or the first of `--replay`) and prints it.
pub fn run(args: &SnapshotArgs, global: &GlobalArgs, config: &Config) -> anyhow::Result<ExitCode> {
    let frame = telemetry::current_frame(global, config)?;
    let text = if args.json {
        let mut s = serde_json::to_string_pretty(&SnapshotJson::from(&frame))?;
        s.push('\n');
        s
    } else {
        render_text(&frame)
    };
    super::print_stdout(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// The JSON document: field names are the public schema.
#[derive(Debug, Serialize)]
pub struct SnapshotJson<'a> {
    schema_version: u32,
    timestamp: String,
    timestamp_ms: u64,
    host: HostJson<'a>,
    driver: &'a crate::telemetry::model::DriverInfo,
    gpus: Vec<GpuJson<'a>>,
}

#[derive(Debug, Serialize)]
struct HostJson<'a> {
    hostname: &'a str,
    cpu_percent: f32,
    per_core_percent: &'a [f32],
    load_average: [f64; 3],
    memory_total_bytes: u64,
    memory_used_bytes: u64,
    memory_available_bytes: u64,
    swap_total_bytes: u64,
    swap_used_bytes: u64,
    uptime_seconds: u64,
}

#[derive(Debug, Serialize)]
struct GpuJson<'a> {
    index: u32,
    name: &'a str,
    uuid: &'a str,
    pci_bus_id: Option<&'a str>,
    status: &'static str,
    lost_reason: Option<&'a str>,
    compute_capability: Option<&'a str>,
    persistence_mode: Option<bool>,
    mig_mode: Option<bool>,
    memory_total_bytes: u64,
    memory_used_bytes: Option<u64>,
    memory_free_bytes: Option<u64>,
    memory_reserved_bytes: Option<u64>,
    utilization_gpu_percent: Option<u32>,
    utilization_memory_percent: Option<u32>,
    temperature_celsius: Option<u32>,
    fan_percent: Option<u32>,
    power_draw_watts: Option<f64>,
    power_limit_watts: Option<f64>,
    sm_clock_mhz: Option<u32>,
    memory_clock_mhz: Option<u32>,
    graphics_clock_mhz: Option<u32>,
    max_sm_clock_mhz: Option<u32>,
    max_memory_clock_mhz: Option<u32>,
    max_graphics_clock_mhz: Option<u32>,
    pstate: Option<u32>,
    pcie_rx_bytes_per_second: Option<u64>,
    pcie_tx_bytes_per_second: Option<u64>,
    encoder_percent: Option<u32>,
    decoder_percent: Option<u32>,
    ecc_corrected_errors: Option<u64>,
    ecc_uncorrected_errors: Option<u64>,
    throttle_reasons: Option<&'a [String]>,
    processes: Vec<ProcessJson<'a>>,
}

#[derive(Debug, Serialize)]
struct ProcessJson<'a> {
    pid: u32,
    #[serde(rename = "type")]
    kind: &'static str,
    gpu_memory_bytes: Option<u64>,
    user: Option<&'a str>,
    command: Option<&'a str>,
    cpu_percent: Option<f32>,
    host_memory_bytes: Option<u64>,
}

impl<'a> From<&'a Frame> for SnapshotJson<'a> {
    fn from(frame: &'a Frame) -> Self {
        let h = &frame.host;
        Self {
            schema_version: SNAPSHOT_SCHEMA_VERSION,
            timestamp: rfc3339_utc(frame.timestamp_ms),
            timestamp_ms: frame.timestamp_ms,
            host: HostJson {
                hostname: &h.hostname,
                cpu_percent: h.cpu_percent,
                per_core_percent: &h.per_core_percent,
                load_average: h.load_average,
                memory_total_bytes: h.memory_total_bytes,
                memory_used_bytes: h.memory_used_bytes,
                memory_available_bytes: h.memory_available_bytes,
                swap_total_bytes: h.swap_total_bytes,
                swap_used_bytes: h.swap_used_bytes,
                uptime_seconds: h.uptime_seconds,
            },
            driver: &frame.driver,
            gpus: frame
                .devices
                .iter()
                .zip(&frame.gpus)
                .map(|(d, s)| gpu_json(d, s, &h.processes))
                .collect(),
        }
    }
}

fn gpu_json<'a>(d: &'a GpuStatic, s: &'a GpuSample, host: &'a [HostProcess]) -> GpuJson<'a> {
    let (status, lost_reason) = match &s.health {
        GpuHealth::Ok => ("ok", None),
        GpuHealth::Lost { reason } => ("lost", Some(reason.as_str())),
    };
    GpuJson {
        index: d.index,
        name: &d.name,
        uuid: &d.uuid,
        pci_bus_id: d.pci_bus_id.as_deref(),
        status,
        lost_reason,
        compute_capability: d.compute_capability.as_deref(),
        persistence_mode: d.persistence_mode,
        mig_mode: d.mig_mode,
        memory_total_bytes: d.memory_total_bytes,
        memory_used_bytes: s.memory_used_bytes,
        memory_free_bytes: s.memory_free_bytes,
        memory_reserved_bytes: s.memory_reserved_bytes,
        utilization_gpu_percent: s.utilization_gpu_percent,
        utilization_memory_percent: s.utilization_memory_percent,
        temperature_celsius: s.temperature_celsius,
        fan_percent: s.fan_percent,
        power_draw_watts: s.power_draw_watts,
        power_limit_watts: d.power_limit_watts,
        sm_clock_mhz: s.sm_clock_mhz,
        memory_clock_mhz: s.memory_clock_mhz,
        graphics_clock_mhz: s.graphics_clock_mhz,
        max_sm_clock_mhz: d.max_sm_clock_mhz,
        max_memory_clock_mhz: d.max_memory_clock_mhz,
        max_graphics_clock_mhz: d.max_graphics_clock_mhz,
        pstate: s.pstate,
        pcie_rx_bytes_per_second: s.pcie_rx_bytes_per_second,
        pcie_tx_bytes_per_second: s.pcie_tx_bytes_per_second,
        encoder_percent: s.encoder_percent,
        decoder_percent: s.decoder_percent,
        ecc_corrected_errors: s.ecc_corrected_errors,
        ecc_uncorrected_errors: s.ecc_uncorrected_errors,
        throttle_reasons: s.throttle_reasons.as_deref(),
        processes: s
            .processes
            .iter()
            .map(|p| {
                let hp = host.iter().find(|h| h.pid == p.pid);
                ProcessJson {
                    pid: p.pid,
                    kind: match p.kind {
                        crate::telemetry::model::ProcessKind::Compute => "compute",
                        crate::telemetry::model::ProcessKind::Graphics => "graphics",
                        crate::telemetry::model::ProcessKind::Both => "compute+graphics",
                    },
                    gpu_memory_bytes: p.gpu_memory_bytes,
                    user: hp.and_then(|h| h.user.as_deref()),
                    command: hp.map(|h| h.command.as_str()),
                    cpu_percent: hp.and_then(|h| h.cpu_percent),
                    host_memory_bytes: hp.and_then(|h| h.rss_bytes),
                }
            })
            .collect(),
    }
}

/// `2026-11-26T16:20:01.123Z` from milliseconds since the Unix epoch.
pub fn rfc3339_utc(ms: u64) -> String {
    let secs = ms / 1000;
    let (y, mo, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!(
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60,
        ms % 1000
    )
}

/// Gregorian date from days since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

const GIB: f64 = (1u64 << 30) as f64;

fn na<T: std::fmt::Display>(v: Option<T>, unit: &str) -> String {
    v.map_or_else(|| "N/A".to_string(), |v| format!("{v}{unit}"))
}

/// The plain-text frame: a host line, one line per GPU, then the GPU processes.
pub fn render_text(frame: &Frame) -> String {
    let h = &frame.host;
    let mut out = String::new();
    let driver = if frame.driver.available {
        format!(
            "driver {}  CUDA {}",
            frame.driver.driver_version.as_deref().unwrap_or("N/A"),
            frame.driver.cuda_version.as_deref().unwrap_or("N/A")
        )
    } else {
        format!(
            "no GPUs: {}",
            frame.driver.error.as_deref().unwrap_or("NVML unavailable")
        )
    };
    let ts = rfc3339_utc(frame.timestamp_ms);
    let _ = writeln!(
        out,
        "{}  {}  {}",
        h.hostname,
        &ts[..19].replace('T', " "),
        driver
    );
    let _ = writeln!(
        out,
        "CPU {:5.1}%  RAM {:.1}/{:.1} GiB  swap {:.1}/{:.1} GiB  load {:.2} {:.2} {:.2}  up {}d {}h",
        h.cpu_percent,
        h.memory_used_bytes as f64 / GIB,
        h.memory_total_bytes as f64 / GIB,
        h.swap_used_bytes as f64 / GIB,
        h.swap_total_bytes as f64 / GIB,
        h.load_average[0],
        h.load_average[1],
        h.load_average[2],
        h.uptime_seconds / 86_400,
        h.uptime_seconds % 86_400 / 3600
    );
    if frame.devices.is_empty() {
        return out;
    }
    let _ = writeln!(
        out,
        "{:<3} {:<24} {:>4} {:>17} {:>5} {:>11} {:>6} {:>4} {:>3} THROTTLE",
        "GPU", "NAME", "UTIL", "MEMORY", "TEMP", "POWER", "SM MHz", "FAN", "PST"
    );
    for (d, s) in frame.devices.iter().zip(&frame.gpus) {
        let name: String = d.name.chars().take(24).collect();
        if let GpuHealth::Lost { reason } = &s.health {
            let _ = writeln!(out, "{:<3} {:<24} LOST: {reason}", d.index, name);
            continue;
        }
        let memory = match s.memory_used_bytes {
            Some(used) => format!(
                "{:.1}/{:.1} GiB",
                used as f64 / GIB,
                d.memory_total_bytes as f64 / GIB
            ),
            None => "N/A".into(),
        };
        let power = match (s.power_draw_watts, d.power_limit_watts) {
            (Some(p), Some(l)) => format!("{p:.0}/{l:.0} W"),
            (Some(p), None) => format!("{p:.0} W"),
            _ => "N/A".into(),
        };
        let throttle = match &s.throttle_reasons {
            Some(r) if r.is_empty() => "-".to_string(),
            Some(r) => r.join(","),
            None => "N/A".into(),
        };
        let _ = writeln!(
            out,
            "{:<3} {:<24} {:>4} {:>17} {:>5} {:>11} {:>6} {:>4} {:>3} {}",
            d.index,
            name,
            na(s.utilization_gpu_percent, "%"),
            memory,
            na(s.temperature_celsius, "C"),
            power,
            na(s.sm_clock_mhz, ""),
            na(s.fan_percent, "%"),
            s.pstate.map_or_else(|| "N/A".into(), |p| format!("P{p}")),
            throttle
        );
    }
    let _ = writeln!(
        out,
        "{:<3} {:>8} {:<10} {:<4} {:>9} {:>6} {:>9}  COMMAND",
        "GPU", "PID", "USER", "TYPE", "GPU MEM", "CPU%", "HOST MEM"
    );
    let mut any = false;
    for s in &frame.gpus {
        for p in &s.processes {
            any = true;
            let hp = h.processes.iter().find(|x| x.pid == p.pid);
            let _ = writeln!(
                out,
                "{:<3} {:>8} {:<10} {:<4} {:>9} {:>6} {:>9}  {}",
                s.index,
                p.pid,
                hp.and_then(|x| x.user.as_deref())
                    .unwrap_or("?")
                    .chars()
                    .take(10)
                    .collect::<String>(),
                p.kind.code(),
                p.gpu_memory_bytes
                    .map_or_else(|| "N/A".into(), |b| format!("{:.1}G", b as f64 / GIB)),
                hp.and_then(|x| x.cpu_percent)
                    .map_or_else(|| "N/A".into(), |c| format!("{c:.1}")),
                hp.and_then(|x| x.rss_bytes)
                    .map_or_else(|| "N/A".into(), |b| format!("{:.1}G", b as f64 / GIB)),
                hp.map_or("?", |x| x.command.as_str())
            );
        }
    }
    if !any {
        let _ = writeln!(out, "(no GPU processes)");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::synthetic;

    #[test]
    fn timestamps_format_as_rfc3339() {
        assert_eq!(rfc3339_utc(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339_utc(951_782_400_123), "2000-02-29T00:00:00.123Z");
        assert_eq!(rfc3339_utc(1_795_651_200_000), "2026-11-26T00:00:00.000Z");
    }

    #[test]
    fn json_uses_null_for_missing_fields_and_names_units() {
        let frame = &synthetic::frames(8, 60, 1000, 1)[25];
        let v = serde_json::to_value(SnapshotJson::from(frame)).unwrap();
        assert_eq!(v["schema_version"], SNAPSHOT_SCHEMA_VERSION);
        assert_eq!(v["gpus"].as_array().unwrap().len(), 8);
        // Fans are N/A on these cards.
        assert!(v["gpus"][0]["fan_percent"].is_null());
        let total = v["gpus"][0]["memory_total_bytes"].as_u64().unwrap();
        assert_eq!(total, frame.devices[0].memory_total_bytes);
        // The last GPU is lost in the middle of the synthetic trace.
        assert_eq!(v["gpus"][7]["status"], "lost");
        assert!(v["gpus"][7]["utilization_gpu_percent"].is_null());
        let p = &v["gpus"][0]["processes"][0];
        assert_eq!(p["pid"], frame.gpus[0].processes[0].pid);
        assert_eq!(p["user"], "alice");
    }

    #[test]
    fn text_lists_every_gpu_and_marks_lost_ones() {
        let frame = &synthetic::frames(8, 60, 1000, 1)[25];
        let text = render_text(frame);
        for i in 0..7 {
            assert!(text
                .lines()
                .any(|l| l.starts_with(&format!("{i:<3} NVIDIA"))));
        }
        assert!(text.contains("LOST: GPU is lost"));
        assert!(text.contains("python train.py"));
    }
}
