//! Process plumbing for the daemon and its workers: identity checks (pid plus start time, so a
//! recycled pid is never mistaken for a worker), signals, new sessions, advisory file locks,
//! and a stop flag set by SIGTERM / SIGINT / SIGHUP.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::os::fd::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
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

/// An exclusive advisory lock (flock) on a file, held while this value lives. The kernel
/// releases it when the process dies, however it dies, so "the lock is free" means "the holder
/// is gone". The file holds the holder's pid and start time.
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

impl FileLock {
    /// Takes the lock if nobody holds it (`Ok(None)` when someone does) and writes this
    /// process's pid and start time into the file.
    pub fn try_acquire(path: &Path) -> std::io::Result<Option<Self>> {
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)?;
        // SAFETY: flock(2) on a descriptor we own.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            return if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
                Ok(None)
            } else {
                Err(err)
            };
        }
        let me = std::process::id();
        let ticks = start_ticks(me).unwrap_or(0);
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{me} {ticks}")?;
        file.flush()?;
        Ok(Some(Self {
            file,
            path: path.to_path_buf(),
        }))
    }

    /// The locked file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Keeps the file open but unlocks it (for a short probe).
    fn release(self) {
        // SAFETY: flock(2) on a descriptor we own.
        unsafe { libc::flock(self.file.as_raw_fd(), libc::LOCK_UN) };
    }
}

/// Who holds the lock at `path`: `None` when nobody does (the probe takes and drops it),
/// else the pid and start time the holder wrote (zeros if it has not written them yet).
pub fn lock_holder(path: &Path) -> std::io::Result<Option<(u32, u64)>> {
    if let Some(lock) = FileLock::try_acquire(path)? {
        lock.release();
        return Ok(None);
    }
    let mut text = String::new();
    File::open(path)?.read_to_string(&mut text)?;
    let mut parts = text.split_whitespace().map(|p| p.parse::<u64>().ok());
    let pid = parts.next().flatten().unwrap_or(0) as u32;
    let ticks = parts.next().flatten().unwrap_or(0);
    Ok(Some((pid, ticks)))
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
        // flock locks belong to the open file, so a second open in this process conflicts too.
        assert!(FileLock::try_acquire(&path).unwrap().is_none());
        let (pid, ticks) = lock_holder(&path).unwrap().unwrap();
        assert_eq!(pid, std::process::id());
        assert_eq!(Some(ticks), start_ticks(pid));
        drop(lock);
        assert_eq!(lock_holder(&path).unwrap(), None);
    }
}
