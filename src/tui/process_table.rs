//! The rows of the process table: GPU processes joined with what the host knows about them
//! (by pid), sorted and filtered. Pure data, so sorting and filtering are tested without a
//! terminal.

use std::cmp::Ordering;
use std::collections::HashMap;

use crate::telemetry::model::{Frame, HostProcess, ProcessKind};

/// One row: a process's context on one GPU (a process on two GPUs gives two rows).
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessRow {
    /// Index of the GPU the context is on.
    pub gpu: u32,
    /// Host process id.
    pub pid: u32,
    /// Owner's user name, when the host knows it.
    pub user: Option<String>,
    /// Owner's uid, when the host knows it.
    pub uid: Option<u32>,
    /// Compute, graphics or both.
    pub kind: ProcessKind,
    /// GPU memory held by the context.
    pub gpu_memory_bytes: Option<u64>,
    /// CPU use in percent of one core.
    pub cpu_percent: Option<f32>,
    /// Resident host memory.
    pub host_memory_bytes: Option<u64>,
    /// Command line (empty when the host does not know the pid).
    pub command: String,
}

impl ProcessRow {
    /// The key that identifies this row across frames, for keeping the selection.
    pub fn key(&self) -> RowKey {
        RowKey {
            gpu: self.gpu,
            pid: self.pid,
        }
    }
}

/// Identifies a row across frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RowKey {
    /// GPU index.
    pub gpu: u32,
    /// Process id.
    pub pid: u32,
}

/// The column the table is sorted by, in the order the columns are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortColumn {
    /// GPU index.
    Gpu,
    /// Process id.
    Pid,
    /// User name.
    User,
    /// Compute / graphics.
    Kind,
    /// GPU memory.
    GpuMemory,
    /// CPU percent.
    Cpu,
    /// Host memory.
    HostMemory,
    /// Command line.
    Command,
}

impl SortColumn {
    /// Every column, left to right.
    pub const ALL: [SortColumn; 8] = [
        Self::Gpu,
        Self::Pid,
        Self::User,
        Self::Kind,
        Self::GpuMemory,
        Self::Cpu,
        Self::HostMemory,
        Self::Command,
    ];

    /// The column heading.
    pub fn title(self) -> &'static str {
        match self {
            Self::Gpu => "GPU",
            Self::Pid => "PID",
            Self::User => "USER",
            Self::Kind => "TYPE",
            Self::GpuMemory => "GPU MEM",
            Self::Cpu => "CPU%",
            Self::HostMemory => "HOST MEM",
            Self::Command => "COMMAND",
        }
    }

    fn position(self) -> usize {
        Self::ALL.iter().position(|c| *c == self).unwrap_or(0)
    }

    /// The column to the right (wrapping).
    pub fn next(self) -> Self {
        Self::ALL[(self.position() + 1) % Self::ALL.len()]
    }

    /// The column to the left (wrapping).
    pub fn previous(self) -> Self {
        Self::ALL[(self.position() + Self::ALL.len() - 1) % Self::ALL.len()]
    }
}

/// Sort direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    /// Smallest first.
    Ascending,
    /// Largest first.
    Descending,
}

impl SortOrder {
    /// The other direction.
    pub fn flipped(self) -> Self {
        match self {
            Self::Ascending => Self::Descending,
            Self::Descending => Self::Ascending,
        }
    }
}

/// How the table is ordered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// The column.
    pub column: SortColumn,
    /// The direction.
    pub order: SortOrder,
}

impl Default for Sort {
    fn default() -> Self {
        Self {
            column: SortColumn::Gpu,
            order: SortOrder::Ascending,
        }
    }
}

/// Joins the GPU processes of `frame` with the host's view of them.
pub fn join(frame: &Frame) -> Vec<ProcessRow> {
    let host: HashMap<u32, &HostProcess> =
        frame.host.processes.iter().map(|p| (p.pid, p)).collect();
    frame
        .gpus
        .iter()
        .flat_map(|gpu| {
            let host = &host;
            gpu.processes.iter().map(move |p| {
                let h = host.get(&p.pid);
                ProcessRow {
                    gpu: gpu.index,
                    pid: p.pid,
                    user: h.and_then(|h| h.user.clone()),
                    uid: h.and_then(|h| h.uid),
                    kind: p.kind,
                    gpu_memory_bytes: p.gpu_memory_bytes,
                    cpu_percent: h.and_then(|h| h.cpu_percent),
                    host_memory_bytes: h.and_then(|h| h.rss_bytes),
                    command: h.map(|h| h.command.clone()).unwrap_or_default(),
                }
            })
        })
        .collect()
}

/// True when `row` matches the filter text: a case-insensitive substring of the user, the
/// command or the pid, or the GPU index written as `3` or `gpu3`.
pub fn matches(row: &ProcessRow, filter: &str) -> bool {
    let needle = filter.trim().to_lowercase();
    if needle.is_empty() {
        return true;
    }
    let gpu = row.gpu.to_string();
    needle == gpu
        || needle == format!("gpu{gpu}")
        || row.pid.to_string().contains(&needle)
        || row.command.to_lowercase().contains(&needle)
        || row
            .user
            .as_deref()
            .is_some_and(|u| u.to_lowercase().contains(&needle))
}

fn compare(a: &ProcessRow, b: &ProcessRow, column: SortColumn) -> Ordering {
    let by_value = match column {
        SortColumn::Gpu => a.gpu.cmp(&b.gpu),
        SortColumn::Pid => a.pid.cmp(&b.pid),
        SortColumn::User => a.user.cmp(&b.user),
        SortColumn::Kind => a.kind.code().cmp(b.kind.code()),
        SortColumn::GpuMemory => a.gpu_memory_bytes.cmp(&b.gpu_memory_bytes),
        SortColumn::Cpu => a
            .cpu_percent
            .unwrap_or(-1.0)
            .total_cmp(&b.cpu_percent.unwrap_or(-1.0)),
        SortColumn::HostMemory => a.host_memory_bytes.cmp(&b.host_memory_bytes),
        SortColumn::Command => a.command.cmp(&b.command),
    };
    by_value.then(a.gpu.cmp(&b.gpu)).then(a.pid.cmp(&b.pid))
}

/// The rows of `frame` that match `filter`, in `sort` order (ties by GPU then pid, so the
/// order is stable from frame to frame).
pub fn rows(frame: &Frame, sort: Sort, filter: &str) -> Vec<ProcessRow> {
    let mut rows: Vec<ProcessRow> = join(frame)
        .into_iter()
        .filter(|r| matches(r, filter))
        .collect();
    rows.sort_by(|a, b| {
        let ord = compare(a, b, sort.column);
        match sort.order {
            SortOrder::Ascending => ord,
            SortOrder::Descending => ord.reverse(),
        }
    });
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::telemetry::synthetic;

    fn frame() -> Frame {
        synthetic::frames(8, 3, 1000, 7).remove(0)
    }

    #[test]
    fn join_takes_user_and_command_from_the_host_by_pid() {
        let f = frame();
        let rows = join(&f);
        let expected: usize = f.gpus.iter().map(|g| g.processes.len()).sum();
        assert_eq!(rows.len(), expected);
        for row in &rows {
            let host = f.host.processes.iter().find(|p| p.pid == row.pid).unwrap();
            assert_eq!(row.command, host.command);
            assert_eq!(row.user, host.user);
        }
    }

    #[test]
    fn sorting_by_gpu_memory_descending_puts_the_biggest_first() {
        let sort = Sort {
            column: SortColumn::GpuMemory,
            order: SortOrder::Descending,
        };
        let rows = rows(&frame(), sort, "");
        let mems: Vec<u64> = rows.iter().filter_map(|r| r.gpu_memory_bytes).collect();
        assert!(mems.windows(2).all(|w| w[0] >= w[1]), "{mems:?}");
        assert!(mems.len() > 2);
    }

    #[test]
    fn filter_matches_user_command_pid_and_gpu() {
        let f = frame();
        let by_user = rows(&f, Sort::default(), "BOB");
        assert!(!by_user.is_empty());
        assert!(by_user.iter().all(|r| r.user.as_deref() == Some("bob")));
        let by_command = rows(&f, Sort::default(), "jupyter");
        assert!(by_command.iter().all(|r| r.command.contains("jupyter")));
        assert!(!by_command.is_empty());
        let by_gpu = rows(&f, Sort::default(), "gpu2");
        assert!(!by_gpu.is_empty());
        assert!(by_gpu.iter().all(|r| r.gpu == 2));
        let pid = by_gpu[0].pid;
        let by_pid = rows(&f, Sort::default(), &pid.to_string());
        assert!(by_pid.iter().any(|r| r.pid == pid));
        assert!(rows(&f, Sort::default(), "no-such-thing").is_empty());
    }

    #[test]
    fn sort_columns_cycle_through_every_column() {
        let mut c = SortColumn::Gpu;
        for _ in 0..SortColumn::ALL.len() {
            c = c.next();
        }
        assert_eq!(c, SortColumn::Gpu);
        assert_eq!(SortColumn::Gpu.previous(), SortColumn::Command);
    }
}
