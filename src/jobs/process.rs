//! Process plumbing for the daemon and its workers: identity checks (pid plus start time, so a
//! recycled pid is never mistaken for a worker), signals, new sessions, advisory file locks,
//! and a stop flag set by SIGTERM / SIGINT / SIGHUP.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};

/// Start time of a process in clock ticks since boot (field 22 of `/proc/PID/stat`), or `None`
/// when no such process exists or it is a zombie.
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses; fields after the last `)`
    // are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // `rest` starts at field 3 (state); the start time is field 22.
    fields.nth(18)?.parse().ok()
}

/// True when `pid` is alive and is the very process that started at `ticks`.
pub fn is_same_process(pid: u32, ticks: u64) -> bool {
    start_ticks(pid) == Some(ticks)
}

/// Sends `signal` to `pid` if it is still the process that started at `ticks`; true if sent.
pub fn signal_if_same(pid: u32, ticks: u64, signal: i32) -> bool {
    if !is_same_process(pid, ticks) {
        return false;
    }
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return false;
    };
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe { libc::kill(pid, signal) == 0 }
}

/// Makes `command` start in a new session (and so a new process group) without a controlling
/// terminal, so it outlives its parent, the terminal and the SSH connection.
pub fn detach_session(command: &mut Command) -> &mut Command {
    // SAFETY: setsid(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        })
    }
}

/// An exclusive lock on a file (a Linux open-file-description lock), held while this value
/// lives. The kernel releases it when the process dies, however it dies, so "the lock is free"
/// means "the holder is gone". The file holds the holder's pid and start time. Unlike `flock`,
/// these locks can be tested without taking them, so probing never races with a holder.
#[derive(Debug)]
pub struct FileLock {
    /// Kept open: closing it releases the lock.
    _file: File,
}

/// Applies `command` (`F_OFD_SETLK` or `F_OFD_GETLK`) with a whole-file lock of `kind`.
fn ofd_lock(file: &File, command: libc::c_int, kind: libc::c_int) -> std::io::Result<libc::flock> {
    // SAFETY: an all-zero `flock` is a valid value of this plain C struct.
    let mut lock: libc::flock = unsafe { std::mem::zeroed() };
    lock.l_type = kind as libc::c_short;
    lock.l_whence = libc::SEEK_SET as libc::c_short;
    // SAFETY: fcntl(2) with a pointer to a properly initialised `flock` we own.
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), command, &mut lock) };
    if rc == 0 {
        Ok(lock)
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn open_lock_file(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
}

impl FileLock {
    /// Takes the lock if nobody holds it (`Ok(None)` when someone does) and writes this
    /// process's pid and start time into the file.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<Self>> {
        let mut file = open_lock_file(path)?;
        if let Err(e) = ofd_lock(&file, libc::F_OFD_SETLK, libc::F_WRLCK) {
            return match e.raw_os_error() {
                Some(libc::EAGAIN) | Some(libc::EACCES) => Ok(None),
                _ => Err(e),
            };
        }
        let me = std::process::id();
        let ticks = start_ticks(me).unwrap_or(0);
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{me} {ticks}")?;
        file.flush()?;
        Ok(Some(Self { _file: file }))
    }
}

/// Who holds the lock at `path`, without taking it: `None` when nobody does, else the pid and
/// start time the holder wrote (read again briefly if the holder has not written them yet).
pub fn lock_holder(path: &Path) -> std::io::Result<Option<(u32, u64)>> {
    let file = match open_lock_file(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let probe = ofd_lock(&file, libc::F_OFD_GETLK, libc::F_WRLCK)?;
    if probe.l_type == libc::F_UNLCK as libc::c_short {
        return Ok(None);
    }
    let mut holder = (0, 0);
    for _ in 0..20 {
        let mut text = String::new();
        (&file).rewind()?;
        (&file).read_to_string(&mut text)?;
        let mut parts = text.split_whitespace().map(|p| p.parse::<u64>().ok());
        let pid = parts.next().flatten().unwrap_or(0) as u32;
        let ticks = parts.next().flatten().unwrap_or(0);
        holder = (pid, ticks);
        if pid != 0 && is_same_process(pid, ticks) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    Ok(Some(holder))
}

/// Kernel out-of-memory kills so far in this process's memory cgroup (cgroup v2
/// `memory.events` or v1 `memory.oom_control`), when the system exposes them. Workers share the
/// daemon's cgroup, so a rise while a worker ran means the kernel's OOM killer struck.
pub fn cgroup_oom_kills() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut candidates = Vec::new();
    for line in cgroups.lines() {
        let mut parts = line.splitn(3, ':');
        let (Some(_), Some(controllers), Some(path)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        let path = path.trim_start_matches('/');
        if controllers.split(',').any(|c| c == "memory") {
            let root = Path::new("/sys/fs/cgroup/memory");
            candidates.push(root.join(path).join("memory.oom_control"));
            candidates.push(root.join("memory.oom_control"));
        } else if controllers.is_empty() {
            let root = Path::new("/sys/fs/cgroup");
            candidates.push(root.join(path).join("memory.events"));
            candidates.push(root.join("memory.events"));
        }
    }
    candidates
        .iter()
        .find_map(|p| parse_oom_kill(&std::fs::read_to_string(p).ok()?))
}

/// The `oom_kill N` count of a cgroup memory file.
pub fn parse_oom_kill(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("oom_kill ")?.trim().parse().ok())
}

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_stop_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Installs handlers that set a flag on SIGTERM, SIGINT and SIGHUP, and returns the flag.
/// The daemon stops its loop when it is set; a worker finishes its current shard and exits.
pub fn stop_flag() -> &'static AtomicBool {
    let handler = on_stop_signal as extern "C" fn(libc::c_int) as libc::sighandler_t;
    for sig in [libc::SIGTERM, libc::SIGINT, libc::SIGHUP] {
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, handler) };
    }
    &STOP
}

/// Name of a signal number for messages (`SIGKILL`), or `signal N`.
pub fn signal_name(signal: i32) -> String {
    match signal {
        libc::SIGHUP => "SIGHUP".into(),
        libc::SIGINT => "SIGINT".into(),
        libc::SIGABRT => "SIGABRT".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGSEGV => "SIGSEGV".into(),
        libc::SIGBUS => "SIGBUS".into(),
        libc::SIGTERM => "SIGTERM".into(),
        other => format!("signal {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_process_is_recognised_and_a_wrong_start_time_is_not() {
        let me = std::process::id();
        let ticks = start_ticks(me).unwrap();
        assert!(is_same_process(me, ticks));
        assert!(!is_same_process(me, ticks + 1));
        assert!(!signal_if_same(me, ticks + 1, 0));
        assert!(signal_if_same(me, ticks, 0), "signal 0 only checks");
    }

    #[test]
    fn oom_kill_counts_are_read_from_v1_and_v2_files() {
        let v2 = "low 0\nhigh 0\nmax 3\noom 2\noom_kill 2\noom_group_kill 0\n";
        assert_eq!(parse_oom_kill(v2), Some(2));
        let v1 = "oom_kill_disable 0\nunder_oom 0\noom_kill 5\n";
        assert_eq!(parse_oom_kill(v1), Some(5));
        assert_eq!(parse_oom_kill("oom 1\n"), None);
    }

    #[test]
    fn an_exited_child_is_not_alive() {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id();
        child.wait().unwrap();
        assert_eq!(start_ticks(pid), None);
    }

    #[test]
    fn a_detached_child_leads_its_own_session() {
        let mut child = detach_session(&mut Command::new("sleep"))
            .arg("5")
            .spawn()
            .unwrap();
        let pid = child.id() as libc::pid_t;
        // SAFETY: getsid on a pid.
        let sid = unsafe { libc::getsid(pid) };
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(sid, pid);
    }

    #[test]
    fn a_held_lock_names_its_holder_and_frees_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        assert_eq!(lock_holder(&path).unwrap(), None);
        let lock = FileLock::try_acquire(&path).unwrap().unwrap();
        // The lock belongs to the open file, so a second open in this process conflicts too.
        assert!(FileLock::try_acquire(&path).unwrap().is_none());
        let (pid, ticks) = lock_holder(&path).unwrap().unwrap();
        assert_eq!(pid, std::process::id());
        assert_eq!(Some(ticks), start_ticks(pid));
        drop(lock);
        // A child forked by another test at this moment shares the descriptor until it execs
        // (descriptors are close-on-exec), so the release may take a moment to show.
        let released = (0..100).any(|_| {
            let free = lock_holder(&path).unwrap().is_none();
            if !free {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            free
        });
        assert!(released, "the lock is free once its holder dropped it");
    }
}
