//! Host telemetry through sysinfo: CPU (total and per core), load, RAM, swap, uptime, and the
//! user, command, CPU% and RSS of every process that holds a GPU context.
//!
//! Only the processes that NVML reports are refreshed each tick, so the cost does not grow with
//! the number of processes on the machine.

use std::collections::HashMap;

use sysinfo::{
    CpuRefreshKind, MemoryRefreshKind, Pid, ProcessRefreshKind, ProcessesToUpdate, RefreshKind,
    System, UpdateKind, Users,
};

use super::model::{HostProcess, HostSample};
use super::source::TelemetryError;

/// Reads the host through sysinfo. CPU percentages are measured between two calls to
/// [`HostProbe::sample`], so the first reading shows the average since the probe was created.
pub struct HostProbe {
    system: System,
    users: Option<Users>,
    user_names: HashMap<u32, Option<String>>,
    hostname: String,
}

impl HostProbe {
    /// Creates the probe and takes the first CPU reading.
    pub fn new() -> Result<Self, TelemetryError> {
        let kind = RefreshKind::nothing()
            .with_cpu(CpuRefreshKind::nothing().with_usage())
            .with_memory(MemoryRefreshKind::everything());
        let system =
            System::new_with_specifics(kind).map_err(|e| TelemetryError::Host(e.to_string()))?;
        let users = Users::new_with_refreshed_list().ok();
        Ok(Self {
            system,
            users,
            user_names: HashMap::new(),
            hostname: System::host_name().unwrap_or_else(|_| "localhost".into()),
        })
    }

    /// Reads the host, with details of the given GPU process ids.
    pub fn sample(&mut self, gpu_pids: &[u32]) -> HostSample {
        self.system.refresh_cpu_usage();
        self.system.refresh_memory();
        let pids: Vec<Pid> = gpu_pids.iter().map(|p| Pid::from_u32(*p)).collect();
        if !pids.is_empty() {
            self.system.refresh_processes_specifics(
                ProcessesToUpdate::Some(&pids),
                true,
                ProcessRefreshKind::nothing()
                    .with_cpu()
                    .with_memory()
                    .with_user(UpdateKind::OnlyIfNotSet)
                    .with_cmd(UpdateKind::OnlyIfNotSet),
            );
        }
        let load = System::load_average().ok();
        let mut processes = Vec::with_capacity(pids.len());
        for pid in &pids {
            let Some(p) = self.system.process(*pid) else {
                continue;
            };
            let uid = p.user_id().map(|u| **u);
            let user = uid.and_then(|uid| user_name(&mut self.users, &mut self.user_names, uid));
            let mut command = p
                .cmd()
                .iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" ");
            if command.is_empty() {
                command = p.name().to_string_lossy().into_owned();
            }
            processes.push(HostProcess {
                pid: pid.as_u32(),
                user,
                uid,
                command,
                cpu_percent: Some(p.cpu_usage()),
                rss_bytes: Some(p.memory()),
            });
        }
        HostSample {
            hostname: self.hostname.clone(),
            cpu_percent: self.system.global_cpu_usage(),
            per_core_percent: self.system.cpus().iter().map(|c| c.usage()).collect(),
            load_average: load.map_or([0.0; 3], |l| [l.one, l.five, l.fifteen]),
            memory_total_bytes: self.system.total_memory(),
            memory_used_bytes: self.system.used_memory(),
            memory_available_bytes: self.system.available_memory(),
            swap_total_bytes: self.system.total_swap(),
            swap_used_bytes: self.system.used_swap(),
            uptime_seconds: System::uptime().unwrap_or(0),
            processes,
        }
    }
}

/// The name of `uid`, cached; falls back to the number when the user has no name.
fn user_name(
    users: &mut Option<Users>,
    cache: &mut HashMap<u32, Option<String>>,
    uid: u32,
) -> Option<String> {
    if let Some(name) = cache.get(&uid) {
        return name.clone();
    }
    let lookup = |users: &Option<Users>| {
        users
            .as_ref()?
            .iter()
            .find(|u| **u.id() == uid)
            .map(|u| u.name().to_string())
    };
    let mut name = lookup(users);
    if name.is_none() {
        // A user created after start-up: refresh the list once for this uid.
        if let Some(list) = users.as_mut() {
            list.refresh();
        }
        name = lookup(users);
    }
    let name = name.or_else(|| Some(uid.to_string()));
    cache.insert(uid, name.clone());
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_sample_reports_this_process() {
        let mut probe = HostProbe::new().unwrap();
        let me = std::process::id();
        let sample = probe.sample(&[me]);
        assert!(sample.memory_total_bytes > 0);
        assert!(sample.memory_used_bytes <= sample.memory_total_bytes);
        assert!(!sample.per_core_percent.is_empty());
        let proc_ = sample.processes.iter().find(|p| p.pid == me).unwrap();
        assert!(proc_.rss_bytes.unwrap_or(0) > 0);
        assert_eq!(proc_.uid, Some(unsafe { libc::getuid() }));
        assert!(!proc_.command.is_empty());
    }
}
