//! Waiting for a sandboxed process, killing what it left, reading its output, and telling how
//! it ended.

use std::io::Read;
use std::path::Path;
use std::thread::JoinHandle;
use std::time::Duration;

use super::{Resource, Status};

/// Whether `pid` has exited, without reaping it (`WNOWAIT`).
pub(super) fn exited_unreaped(pid: u32) -> std::io::Result<bool> {
    // SAFETY: zeroed siginfo_t is a valid out-parameter.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: valid pointer; pid is our unreaped child.
        let rc = unsafe {
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
            )
        };
        if rc == 0 {
            // SAFETY: filled in by waitid; 0 means no state change yet.
            return Ok(unsafe { info.si_pid() } != 0);
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// `SIGKILL` the process group and session of `leader`, and every process in the sandbox's
/// user namespace, until `/proc` shows none of them alive (zombies are left to their reaper).
pub(super) fn kill_leftovers(leader: u32, userns: Option<&Path>) {
    // SAFETY: plain syscall; ESRCH when the group is already empty.
    unsafe { libc::killpg(leader as libc::pid_t, libc::SIGKILL) };
    for round in 0..200 {
        let found = sandbox_processes(leader, userns);
        if found.is_empty() {
            return;
        }
        for pid in found {
            // SAFETY: plain syscall.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        std::thread::sleep(Duration::from_millis(if round < 10 { 1 } else { 5 }));
    }
}

/// Live (non-zombie) processes other than `leader` in its group, its session, or `userns`.
pub(super) fn sandbox_processes(leader: u32, userns: Option<&Path>) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == leader {
            continue;
        }
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // Fields after the parenthesised command: state ppid pgrp session ...
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.len() < 4 || fields[0] == "Z" || fields[0] == "X" {
            continue;
        }
        let in_group = fields[2] == leader.to_string() || fields[3] == leader.to_string();
        let in_ns = userns.is_some_and(|ns| {
            std::fs::read_link(format!("/proc/{pid}/ns/user")).is_ok_and(|l| l == ns)
        });
        if in_group || in_ns {
            found.push(pid);
        }
    }
    found
}

pub(super) fn spawn_reader<R: Read + Send + 'static>(
    pipe: Option<R>,
    cap: usize,
) -> Option<JoinHandle<(Vec<u8>, bool)>> {
    let mut pipe = pipe?;
    Some(std::thread::spawn(move || {
        let mut kept = Vec::new();
        let mut cut = false;
        let mut buf = [0u8; 8192];
        loop {
            match pipe.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    let room = cap.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                    cut |= n > room;
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        (kept, cut)
    }))
}

pub(super) fn join_reader(handle: Option<JoinHandle<(Vec<u8>, bool)>>) -> (String, bool) {
    match handle.map(JoinHandle::join) {
        Some(Ok((bytes, cut))) => (String::from_utf8_lossy(&bytes).into_owned(), cut),
        _ => (String::new(), false),
    }
}

pub(super) fn classify(exit: std::process::ExitStatus, timed_out: bool, stderr: &str) -> Status {
    use std::os::unix::process::ExitStatusExt;
    if timed_out {
        return Status::Timeout;
    }
    if let Some(signal) = exit.signal() {
        return match signal {
            // SIGKILL without a timeout from us: the hard CPU limit (one second past the soft one).
            libc::SIGXCPU | libc::SIGKILL => Status::ResourceLimit {
                which: Resource::Cpu,
            },
            libc::SIGXFSZ => Status::ResourceLimit {
                which: Resource::FileSize,
            },
            signal => Status::Crashed { signal },
        };
    }
    match exit.code() {
        Some(0) => Status::Passed,
        Some(code) => {
            // The exception that ended the program is the last line of its traceback; children
            // write to the same stderr, so any traceback line naming a resource error counts.
            let resource = |line: &str| {
                if line.starts_with("MemoryError") {
                    Some(Resource::Memory)
                } else if line.starts_with("OSError: [Errno 27]") {
                    Some(Resource::FileSize)
                } else if line.starts_with("BlockingIOError: [Errno 11]") {
                    Some(Resource::Processes)
                } else if line.starts_with("OSError: [Errno 28]") {
                    Some(Resource::Disk)
                } else {
                    None
                }
            };
            let last = stderr
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("");
            match resource(last).or_else(|| stderr.lines().find_map(resource)) {
                Some(which) => Status::ResourceLimit { which },
                None => Status::Failed { exit_code: code },
            }
        }
        None => Status::Crashed { signal: 0 },
    }
}
