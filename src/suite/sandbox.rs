//! Run untrusted, model-written Python in a throw-away sandbox.
//!
//! Each test program runs in its own `python3 -I -B` process with these layers (Linux only):
//!
//! - **Process limits** (`setrlimit` in the child before `exec`): CPU seconds, address space,
//!   file size, open files, core dumps off, and a process count. `RLIMIT_NPROC` counts *all*
//!   processes of the child's user, and the kernel ignores it entirely for root. So when the
//!   caller is root the child drops to `nobody` (65534) first, and the limit is set only *after*
//!   the child has entered its own user namespace, where the kernel counts just the processes of
//!   that namespace — neither the caller's other processes nor other sandboxes use it up.
//! - **Its own session** (`setsid`): on timeout, and after every run, the whole process group
//!   is killed with `SIGKILL`, then `/proc` is swept for anything left in the same session, group
//!   or user namespace (a descendant that called `setsid` itself is still caught by the last).
//! - **Namespaces** (`unshare(CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS)`): a fresh network
//!   namespace with only a downed loopback, so no connection (not even to 127.0.0.1) and no DNS
//!   can succeed; and a private mount namespace where every mount is made read-only except the
//!   working directory. When the kernel refuses, the run still happens with the layers that
//!   worked and [`Outcome::network_isolated`] / [`Outcome::fs_readonly`] say so, with the reason
//!   in [`Outcome::isolation_note`].
//! - **An empty working directory** (a fresh temp dir, also `HOME`, removed afterwards) and a
//!   **cleared environment** (minimal `PATH`, `HOME`, `LANG=C.UTF-8`, `PYTHONDONTWRITEBYTECODE`,
//!   `PYTHONHASHSEED=0`); stdin is closed (an empty pipe); stdout/stderr are captured up to a size cap.
//!
//! Not isolated: the program can still *read* world-readable files (`/etc/passwd`, the Python
//! installation) — hiding them would need a full chroot-style root filesystem — and it can see
//! other processes in `/proc` (no PID namespace), though not their environment when it runs as
//! another user. Note that `-I` makes Python ignore all `PYTHON*` variables, so the hash seed is
//! *not* fixed by `PYTHONHASHSEED`; tests must not depend on set/dict order of strings.

use std::ffi::CString;
use std::io::Read;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::OnceLock;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Resource limits for one sandboxed run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock timeout; the whole process group is killed when it passes.
    pub wall: Duration,
    /// CPU time (`RLIMIT_CPU`, soft; the hard limit is one second more).
    pub cpu_secs: u64,
    /// Address space (`RLIMIT_AS`).
    pub memory_bytes: u64,
    /// Largest file the program may write (`RLIMIT_FSIZE`).
    pub file_bytes: u64,
    /// Processes (`RLIMIT_NPROC`), counted inside the sandbox's user namespace (see module docs).
    pub processes: u64,
    /// Open file descriptors (`RLIMIT_NOFILE`).
    pub open_files: u64,
    /// Bytes kept of stdout and of stderr each; the rest is read and dropped.
    pub output_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall: Duration::from_secs(10),
            cpu_secs: 10,
            memory_bytes: 512 << 20,
            file_bytes: 16 << 20,
            processes: 32,
            open_files: 64,
            output_bytes: 64 << 10,
        }
    }
}

/// Which resource limit a program ran into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    /// CPU time (`SIGXCPU`, or killed at the hard limit).
    Cpu,
    /// Address space (`MemoryError`).
    Memory,
    /// File size (`EFBIG`; Python ignores `SIGXFSZ`).
    FileSize,
    /// Process count (`fork` failed with `EAGAIN`).
    Processes,
}

/// How a sandboxed program ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Exit code 0: every assertion held.
    Passed,
    /// A non-zero exit that is not a recognised resource limit (assertion, exception, `sys.exit`).
    Failed {
        /// The exit code.
        exit_code: i32,
    },
    /// Killed after the wall-clock limit.
    Timeout,
    /// Killed by a signal that is not a resource limit.
    Crashed {
        /// The signal number.
        signal: i32,
    },
    /// Stopped by one of the resource limits.
    ResourceLimit {
        /// Which limit.
        which: Resource,
    },
}

impl Status {
    /// Only [`Status::Passed`] counts as a pass.
    pub fn passed(&self) -> bool {
        matches!(self, Status::Passed)
    }
}

/// The result of one sandboxed run.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// How it ended.
    pub status: Status,
    /// Captured stdout (lossy UTF-8, at most [`Limits::output_bytes`]).
    pub stdout: String,
    /// Captured stderr (lossy UTF-8, at most [`Limits::output_bytes`]).
    pub stderr: String,
    /// Whether stdout or stderr was cut at the cap.
    pub output_truncated: bool,
    /// Wall time from spawn to exit.
    pub wall: Duration,
    /// Whether the program ran in its own, empty network namespace.
    pub network_isolated: bool,
    /// Whether every mount but the working directory was read-only for the program.
    pub fs_readonly: bool,
    /// Why a layer is missing, when one is.
    pub isolation_note: Option<String>,
}

/// Why a program could not be run at all (its own failures are an [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No usable `python3`.
    #[error("python3 not found: {0} (install Python 3 so that `python3` is on PATH, e.g. `apt-get install python3`)")]
    PythonNotFound(String),
    /// The temp dir or the program file could not be created.
    #[error("sandbox setup failed: {0}")]
    Setup(#[source] std::io::Error),
    /// The child process could not be started.
    #[error("could not start {python}: {source}")]
    Spawn {
        /// The interpreter.
        python: PathBuf,
        /// The error from spawning.
        #[source]
        source: std::io::Error,
    },
    /// Waiting for the child failed.
    #[error("waiting for the sandboxed process failed: {0}")]
    Wait(#[source] std::io::Error),
}

/// The HumanEval-style check program: the prompt plus completion, the test code, and
/// `check(entry_point)` when an entry point is given.
pub fn check_program(prompt_and_completion: &str, test: &str, entry_point: Option<&str>) -> String {
    let mut program = String::with_capacity(prompt_and_completion.len() + test.len() + 64);
    program.push_str(prompt_and_completion);
    program.push('\n');
    program.push_str(test);
    program.push('\n');
    if let Some(entry) = entry_point {
        program.push_str("check(");
        program.push_str(entry);
        program.push_str(")\n");
    }
    program
}

/// The `PATH` given to the sandboxed program, also searched first for `python3`.
const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin";
/// `nobody`: the user a root caller's sandbox runs as.
const NOBODY: libc::uid_t = 65534;

/// The interpreter: `python3` from the sandbox's minimal `PATH` (world-readable, so it also
/// works after dropping to `nobody`), else the one the caller's `PATH` resolves to (asked for its
/// `sys.executable`, which sees through pyenv-style shims). Found once per process.
pub fn find_python() -> Result<PathBuf, SandboxError> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            for dir in SANDBOX_PATH.split(':') {
                let candidate = Path::new(dir).join("python3");
                if is_executable(&candidate) {
                    return Ok(candidate);
                }
            }
            let out = Command::new("python3")
                .args(["-c", "import sys; print(sys.executable)"])
                .stdin(Stdio::null())
                .output()
                .map_err(|e| format!("not in {SANDBOX_PATH} and `python3` on PATH failed: {e}"))?;
            let exe = String::from_utf8_lossy(&out.stdout).trim().to_string();
            if out.status.success() && !exe.is_empty() && is_executable(Path::new(&exe)) {
                Ok(PathBuf::from(exe))
            } else {
                Err(format!(
                    "not in {SANDBOX_PATH}, and `python3` on PATH did not run"
                ))
            }
        })
        .clone()
        .map_err(SandboxError::PythonNotFound)
}

fn is_executable(path: &Path) -> bool {
    let Ok(c) = CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: `c` is a valid NUL-terminated string.
    unsafe { libc::access(c.as_ptr(), libc::X_OK) == 0 }
}

/// Run `program` with the interpreter from [`find_python`].
pub fn run_python(program: &str, limits: &Limits) -> Result<Outcome, SandboxError> {
    let python = find_python()?;
    run_python_with(&python, program, limits)
}

/// Run `program` with the given interpreter.
pub fn run_python_with(
    python: &Path,
    program: &str,
    limits: &Limits,
) -> Result<Outcome, SandboxError> {
    run_inner(python, program, limits).map(|(outcome, _pid)| outcome)
}

/// Namespace levels, strongest first; the strongest that works is remembered.
const MODE_FULL: u8 = 0; // user + net + mount (read-only everything but the workdir)
const MODE_NET: u8 = 1; // user + net
const MODE_NONE: u8 = 2;
static MODE: AtomicU8 = AtomicU8::new(MODE_FULL);
static MODE_NOTE: OnceLock<String> = OnceLock::new();

fn run_inner(
    python: &Path,
    program: &str,
    limits: &Limits,
) -> Result<(Outcome, u32), SandboxError> {
    if !python.exists() {
        return Err(SandboxError::PythonNotFound(format!(
            "{} does not exist",
            python.display()
        )));
    }
    let workdir = tempfile::Builder::new()
        .prefix("sft-eval-sandbox-")
        .tempdir()
        .map_err(SandboxError::Setup)?;
    std::fs::write(workdir.path().join("main.py"), program).map_err(SandboxError::Setup)?;
    // SAFETY: plain syscall.
    let drop_to_nobody = unsafe { libc::geteuid() } == 0;
    if drop_to_nobody {
        let dir = cstring(workdir.path())?;
        let file = cstring(&workdir.path().join("main.py"))?;
        // SAFETY: valid paths; root may chown.
        let ok = unsafe {
            libc::chown(dir.as_ptr(), NOBODY, NOBODY) == 0
                && libc::chown(file.as_ptr(), NOBODY, NOBODY) == 0
        };
        if !ok {
            return Err(SandboxError::Setup(std::io::Error::last_os_error()));
        }
    }

    let mut mode = MODE.load(Ordering::Relaxed);
    let mut note = MODE_NOTE.get().cloned();
    let start;
    let mut child = loop {
        let mut cmd = Command::new(python);
        cmd.args(["-I", "-B", "main.py"])
            .env_clear()
            .env("PATH", SANDBOX_PATH)
            .env("HOME", workdir.path())
            .env("LANG", "C.UTF-8")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONHASHSEED", "0")
            .current_dir(workdir.path())
            // A pipe closed right after spawning: reads see EOF (no dependence on /dev/null).
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let setup = ChildSetup::new(workdir.path(), limits, drop_to_nobody, mode)?;
        // SAFETY: the hook only makes async-signal-safe syscalls on memory prepared before fork.
        unsafe {
            cmd.pre_exec(move || setup.apply());
        }
        let t0 = Instant::now();
        match cmd.spawn() {
            Ok(child) => {
                start = t0;
                break child;
            }
            Err(e) if mode < MODE_NONE && e.raw_os_error().is_some_and(|c| c >= STEP_ERR_BASE) => {
                let (step, errno) = decode_step_error(e.raw_os_error().unwrap_or_default());
                let why = format!(
                    "{} failed ({}); running without {}",
                    step,
                    std::io::Error::from_raw_os_error(errno),
                    if mode == MODE_FULL {
                        "a read-only filesystem"
                    } else {
                        "network isolation"
                    }
                );
                mode += 1;
                MODE.store(mode, Ordering::Relaxed);
                let _ = MODE_NOTE.set(why.clone());
                note = Some(match note {
                    Some(n) if mode == MODE_NONE => format!("{n}; {why}"),
                    _ => why,
                });
            }
            Err(e) => {
                let source = match e.raw_os_error() {
                    Some(c) if c >= STEP_ERR_BASE => {
                        let (step, errno) = decode_step_error(c);
                        let os = std::io::Error::from_raw_os_error(errno);
                        std::io::Error::new(os.kind(), format!("{step}: {os}"))
                    }
                    _ => e,
                };
                return Err(SandboxError::Spawn {
                    python: python.to_path_buf(),
                    source,
                });
            }
        }
    };
    drop(child.stdin.take());
    let pid = child.id();
    let userns = if mode < MODE_NONE {
        std::fs::read_link(format!("/proc/{pid}/ns/user")).ok()
    } else {
        None
    };

    let cap = limits.output_bytes;
    let out_reader = spawn_reader(child.stdout.take(), cap);
    let err_reader = spawn_reader(child.stderr.take(), cap);

    let deadline = start + limits.wall;
    let mut timed_out = false;
    let mut sleep = Duration::from_millis(1);
    loop {
        if exited_unreaped(pid).map_err(SandboxError::Wait)? {
            break;
        }
        let now = Instant::now();
        if now >= deadline {
            timed_out = true;
            // SAFETY: the child is unreaped, so its pid (= its process group) is still ours.
            unsafe { libc::killpg(pid as libc::pid_t, libc::SIGKILL) };
            break;
        }
        std::thread::sleep(sleep.min(deadline - now));
        sleep = (sleep * 2).min(Duration::from_millis(10));
    }
    let wall = start.elapsed();
    // Kill what is left (background children, escapees) while the leader is still a zombie, so
    // its pid cannot have been reused; then reap it.
    kill_leftovers(pid, userns.as_deref());
    let exit = child.wait().map_err(SandboxError::Wait)?;
    kill_leftovers(pid, userns.as_deref());
    let (stdout, out_cut) = join_reader(out_reader);
    let (stderr, err_cut) = join_reader(err_reader);
    drop(workdir);

    let status = classify(exit, timed_out, &stderr);
    let outcome = Outcome {
        status,
        stdout,
        stderr,
        output_truncated: out_cut || err_cut,
        wall,
        network_isolated: mode <= MODE_NET,
        fs_readonly: mode == MODE_FULL,
        isolation_note: note,
    };
    Ok((outcome, pid))
}

fn cstring(path: &Path) -> Result<CString, SandboxError> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|e| SandboxError::Setup(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))
}

/// Whether `pid` has exited, without reaping it (`WNOWAIT`).
fn exited_unreaped(pid: u32) -> std::io::Result<bool> {
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
fn kill_leftovers(leader: u32, userns: Option<&Path>) {
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
fn sandbox_processes(leader: u32, userns: Option<&Path>) -> Vec<u32> {
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

fn spawn_reader<R: Read + Send + 'static>(
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

fn join_reader(handle: Option<JoinHandle<(Vec<u8>, bool)>>) -> (String, bool) {
    match handle.map(JoinHandle::join) {
        Some(Ok((bytes, cut))) => (String::from_utf8_lossy(&bytes).into_owned(), cut),
        _ => (String::new(), false),
    }
}

fn classify(exit: std::process::ExitStatus, timed_out: bool, stderr: &str) -> Status {
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

/// Errors from the child's setup steps come back through `spawn` as a raw OS error of
/// `STEP_ERR_BASE + step * 4096 + errno`, so the parent knows which step failed.
const STEP_ERR_BASE: i32 = 1 << 20;
const STEPS: [&str; 10] = [
    "setsid",
    "setrlimit",
    "dropping to nobody",
    "unshare(CLONE_NEWUSER|CLONE_NEWNET)",
    "writing the uid/gid map",
    "making mounts private",
    "making mounts read-only",
    "bind-mounting the working directory",
    "making the working directory writable",
    "chdir",
];

fn decode_step_error(code: i32) -> (&'static str, i32) {
    let rest = code - STEP_ERR_BASE;
    let step = (rest / 4096) as usize;
    (
        STEPS.get(step).copied().unwrap_or("sandbox setup"),
        rest % 4096,
    )
}

/// Everything the `pre_exec` hook needs, allocated before `fork`.
struct ChildSetup {
    workdir: CString,
    root: CString,
    uid_map_path: CString,
    gid_map_path: CString,
    setgroups_path: CString,
    max_userns_path: CString,
    id_map: Vec<u8>,
    limits: Limits,
    drop_to_nobody: bool,
    mode: u8,
}

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const AT_RECURSIVE: libc::c_uint = 0x8000;

impl ChildSetup {
    fn new(
        workdir: &Path,
        limits: &Limits,
        drop_to_nobody: bool,
        mode: u8,
    ) -> Result<Self, SandboxError> {
        // SAFETY: plain syscalls.
        let (uid, gid) = unsafe { (libc::geteuid(), libc::getegid()) };
        let (uid, gid) = if drop_to_nobody {
            (NOBODY, NOBODY)
        } else {
            (uid, gid)
        };
        let c = |s: &str| CString::new(s).expect("no NUL in constant paths");
        Ok(ChildSetup {
            workdir: cstring(workdir)?,
            root: c("/"),
            uid_map_path: c("/proc/self/uid_map"),
            gid_map_path: c("/proc/self/gid_map"),
            setgroups_path: c("/proc/self/setgroups"),
            max_userns_path: c("/proc/sys/user/max_user_namespaces"),
            // The same ids inside as outside: the uid map line, then the gid map line.
            id_map: format!("{uid} {uid} 1\n\0{gid} {gid} 1\n\0").into_bytes(),
            limits: limits.clone(),
            drop_to_nobody,
            mode,
        })
    }

    /// Runs in the forked child: only async-signal-safe syscalls, no allocation.
    fn apply(&self) -> std::io::Result<()> {
        fn fail(step: i32) -> std::io::Error {
            let errno = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            std::io::Error::from_raw_os_error(STEP_ERR_BASE + step * 4096 + errno.min(4095))
        }
        fn set(resource: libc::__rlimit_resource_t, soft: u64, hard: u64) -> bool {
            let lim = libc::rlimit {
                rlim_cur: soft as libc::rlim_t,
                rlim_max: hard as libc::rlim_t,
            };
            // SAFETY: valid pointer.
            unsafe { libc::setrlimit(resource, &lim) == 0 }
        }
        // SAFETY (whole body): syscalls on pointers to memory owned by `self`, prepared before fork.
        unsafe {
            if libc::setsid() < 0 {
                return Err(fail(0));
            }
            let l = &self.limits;
            let ok = set(libc::RLIMIT_CPU, l.cpu_secs, l.cpu_secs + 1)
                && set(libc::RLIMIT_AS, l.memory_bytes, l.memory_bytes)
                && set(libc::RLIMIT_FSIZE, l.file_bytes, l.file_bytes)
                && set(libc::RLIMIT_NOFILE, l.open_files, l.open_files)
                && set(libc::RLIMIT_CORE, 0, 0);
            if !ok {
                return Err(fail(1));
            }
            if self.drop_to_nobody
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(NOBODY) != 0
                    || libc::setuid(NOBODY) != 0)
            {
                return Err(fail(2));
            }
            // setuid cleared "dumpable", which leaves /proc/self owned by root and the uid map
            // unwritable; core dumps stay off through RLIMIT_CORE.
            if self.drop_to_nobody && libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) != 0 {
                return Err(fail(2));
            }
            if self.mode < MODE_NONE {
                let mut flags = libc::CLONE_NEWUSER | libc::CLONE_NEWNET;
                if self.mode == MODE_FULL {
                    flags |= libc::CLONE_NEWNS;
                }
                if libc::unshare(flags) != 0 {
                    return Err(fail(3));
                }
                let split = self.id_map.iter().position(|&b| b == 0).unwrap_or(0);
                let (uid_line, gid_line) = (
                    &self.id_map[..split],
                    &self.id_map[split + 1..self.id_map.len() - 1],
                );
                if !write_file(&self.uid_map_path, uid_line)
                    || !write_file(&self.setgroups_path, b"deny")
                    || !write_file(&self.gid_map_path, gid_line)
                {
                    return Err(fail(4));
                }
                // No nested user namespaces: everything stays findable by ours (best effort).
                write_file(&self.max_userns_path, b"0");
                if self.mode == MODE_FULL {
                    let none = std::ptr::null::<libc::c_char>();
                    if libc::mount(
                        none,
                        self.root.as_ptr(),
                        none,
                        libc::MS_REC | libc::MS_PRIVATE,
                        std::ptr::null(),
                    ) != 0
                    {
                        return Err(fail(5));
                    }
                    let ro = MountAttr {
                        attr_set: MOUNT_ATTR_RDONLY,
                        attr_clr: 0,
                        propagation: 0,
                        userns_fd: 0,
                    };
                    if libc::syscall(
                        libc::SYS_mount_setattr,
                        libc::AT_FDCWD,
                        self.root.as_ptr(),
                        AT_RECURSIVE,
                        &ro as *const MountAttr,
                        std::mem::size_of::<MountAttr>(),
                    ) != 0
                    {
                        return Err(fail(6));
                    }
                    if libc::mount(
                        self.workdir.as_ptr(),
                        self.workdir.as_ptr(),
                        none,
                        libc::MS_BIND,
                        std::ptr::null(),
                    ) != 0
                    {
                        return Err(fail(7));
                    }
                    let rw = MountAttr {
                        attr_set: 0,
                        attr_clr: MOUNT_ATTR_RDONLY,
                        propagation: 0,
                        userns_fd: 0,
                    };
                    if libc::syscall(
                        libc::SYS_mount_setattr,
                        libc::AT_FDCWD,
                        self.workdir.as_ptr(),
                        0 as libc::c_uint,
                        &rw as *const MountAttr,
                        std::mem::size_of::<MountAttr>(),
                    ) != 0
                    {
                        return Err(fail(8));
                    }
                }
            }
            // Inside a fresh user namespace this counts only the sandbox's own processes.
            if !set(libc::RLIMIT_NPROC, l.processes, l.processes) {
                return Err(fail(1));
            }
            // Again, so the cwd is the (writable) bind mount rather than the directory below it.
            if libc::chdir(self.workdir.as_ptr()) != 0 {
                return Err(fail(9));
            }
        }
        Ok(())
    }
}

/// Write `data` to `path` in one `write` (procfs maps must be written at once).
fn write_file(path: &CString, data: &[u8]) -> bool {
    // SAFETY: valid path and buffer; the fd is closed before returning.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC);
        if fd < 0 {
            return false;
        }
        let n = libc::write(fd, data.as_ptr().cast(), data.len());
        libc::close(fd);
        n == data.len() as isize
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::Mutex;

    /// Sandboxed runs are serialised: some of them deliberately use up processes and memory, and
    /// one looks for leftover `main.py` processes (other tests' long runs take it too).
    pub(crate) static SERIAL: Mutex<()> = Mutex::new(());

    fn python() -> Option<PathBuf> {
        match find_python() {
            Ok(p) => Some(p),
            Err(e) => {
                eprintln!("skipping sandbox test: {e}");
                None
            }
        }
    }

    fn run(program: &str, limits: &Limits) -> Option<(Outcome, u32)> {
        let python = python()?;
        let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        Some(run_inner(&python, program, limits).expect("sandbox runs"))
    }

    fn short() -> Limits {
        Limits {
            wall: Duration::from_secs(2),
            cpu_secs: 5,
            ..Limits::default()
        }
    }

    fn assert_nothing_left(pid: u32) {
        let left = sandbox_processes(pid, None);
        assert!(
            left.is_empty(),
            "processes left behind in group/session {pid}: {left:?}"
        );
    }

    #[test]
    fn check_program_appends_test_and_check_call() {
        let p = check_program(
            "def f(x):\n    return x",
            "def check(c):\n    assert c(1) == 1",
            Some("f"),
        );
        assert_eq!(
            p,
            "def f(x):\n    return x\ndef check(c):\n    assert c(1) == 1\ncheck(f)\n"
        );
        assert!(!check_program("x = 1", "assert x == 1", None).contains("check("));
    }

    #[test]
    fn correct_solution_passes_and_wrong_one_fails() {
        let prompt = "def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n";
        let test = "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n";
        let good = check_program(&format!("{prompt}    return a + b\n"), test, Some("add"));
        let Some((out, pid)) = run(&good, &short()) else {
            return;
        };
        assert_eq!(out.status, Status::Passed, "stderr: {}", out.stderr);
        assert_nothing_left(pid);

        let bad = check_program(&format!("{prompt}    return a - b\n"), test, Some("add"));
        let (out, _) = run(&bad, &short()).expect("python present");
        assert_eq!(out.status, Status::Failed { exit_code: 1 });
        assert!(
            out.stderr.contains("AssertionError"),
            "stderr: {}",
            out.stderr
        );
    }

    #[test]
    fn output_is_captured_and_capped() {
        let limits = Limits {
            output_bytes: 100,
            ..short()
        };
        let Some((out, _)) = run(
            "import sys\nprint('hello')\nsys.stderr.write('e' * 10000)\n",
            &limits,
        ) else {
            return;
        };
        assert_eq!(out.status, Status::Passed);
        assert_eq!(out.stdout, "hello\n");
        assert_eq!(out.stderr.len(), 100);
        assert!(out.output_truncated);
    }

    #[test]
    fn infinite_loop_times_out_and_leaves_nothing() {
        // A background child too, which must die with the group.
        let program =
            "import os, time\nif os.fork() == 0:\n    time.sleep(60)\nwhile True:\n    pass\n";
        let limits = Limits {
            wall: Duration::from_secs(1),
            ..short()
        };
        let t0 = Instant::now();
        let Some((out, pid)) = run(program, &limits) else {
            return;
        };
        assert_eq!(out.status, Status::Timeout);
        assert!(
            t0.elapsed() < Duration::from_secs(2),
            "took {:?}",
            t0.elapsed()
        );
        assert!(out.wall >= Duration::from_secs(1));
        assert_nothing_left(pid);
    }

    #[test]
    fn escaped_session_is_still_killed() {
        // A grandchild that leaves the process group and session is found by its user namespace.
        let program = "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(60)\nprint('parent done')\n";
        let Some(python) = python() else { return };
        let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let (out, pid) = run_inner(&python, program, &short()).unwrap();
        assert_eq!(out.status, Status::Passed);
        if out.network_isolated {
            assert_nothing_left(pid);
            let userns_left = std::fs::read_dir("/proc")
                .unwrap()
                .flatten()
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("cmdline"))
                        .is_ok_and(|c| c.contains("main.py"))
                })
                .filter(|e| {
                    std::fs::read_to_string(e.path().join("stat")).is_ok_and(|s| !s.contains(") Z"))
                })
                .map(|e| {
                    let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
                    let ns = std::fs::read_link(e.path().join("ns/user")).ok();
                    format!("{stat} {ns:?}")
                })
                .collect::<Vec<_>>();
            assert!(
                userns_left.is_empty(),
                "an escaped sandbox process survived: {userns_left:?}"
            );
        }
    }

    #[test]
    fn fork_bomb_is_contained() {
        let program = "import os\nwhile True:\n    os.fork()\n";
        let t0 = Instant::now();
        let Some((out, pid)) = run(program, &short()) else {
            return;
        };
        assert!(!out.status.passed(), "{:?}", out.status);
        assert!(
            matches!(
                out.status,
                Status::ResourceLimit {
                    which: Resource::Processes
                } | Status::Timeout
            ),
            "{:?}: {}",
            out.status,
            out.stderr
        );
        assert!(
            t0.elapsed() < Duration::from_secs(4),
            "took {:?}",
            t0.elapsed()
        );
        assert_nothing_left(pid);
    }

    #[test]
    fn filling_the_disk_hits_the_file_size_limit() {
        let program = "with open('big', 'wb') as f:\n    for _ in range(100):\n        f.write(b'x' * (1 << 20))\n";
        let Some((out, _)) = run(program, &short()) else {
            return;
        };
        assert_eq!(
            out.status,
            Status::ResourceLimit {
                which: Resource::FileSize
            },
            "{}",
            out.stderr
        );
        // The working directory is gone, with the 16 MiB written into it.
        let left = std::fs::read_dir(std::env::temp_dir())
            .unwrap()
            .flatten()
            .filter(|e| {
                e.path().join("big").exists()
                    && e.file_name()
                        .to_string_lossy()
                        .starts_with("sft-eval-sandbox-")
            })
            .count();
        assert_eq!(left, 0, "a sandbox working directory was left behind");
    }

    #[test]
    fn memory_hog_hits_the_memory_limit() {
        let Some((out, _)) = run("x = bytearray(2 * 1024 ** 3)\n", &short()) else {
            return;
        };
        assert_eq!(
            out.status,
            Status::ResourceLimit {
                which: Resource::Memory
            },
            "{}",
            out.stderr
        );
    }

    #[test]
    fn cpu_limit_stops_a_busy_loop() {
        let limits = Limits {
            wall: Duration::from_secs(5),
            cpu_secs: 1,
            ..Limits::default()
        };
        let Some((out, _)) = run("while True:\n    pass\n", &limits) else {
            return;
        };
        assert_eq!(
            out.status,
            Status::ResourceLimit {
                which: Resource::Cpu
            }
        );
        assert!(out.wall < Duration::from_secs(3), "{:?}", out.wall);
    }

    #[test]
    fn parent_environment_is_not_visible() {
        std::env::set_var("SFT_EVAL_SANDBOX_CANARY", "leaked-secret");
        let program = format!(
            "import os\n\
             assert 'SFT_EVAL_SANDBOX_CANARY' not in os.environ, 'canary visible'\n\
             assert sorted(os.environ) == ['HOME', 'LANG', 'PATH', 'PYTHONDONTWRITEBYTECODE', 'PYTHONHASHSEED'], sorted(os.environ)\n\
             assert os.environ['HOME'] == os.getcwd()\n\
             assert sorted(os.listdir('.')) == ['main.py'], os.listdir('.')\n\
             try:\n    data = open('/proc/{}/environ', 'rb').read()\nexcept OSError:\n    data = b''\n\
             assert b'leaked-secret' not in data, 'parent environ readable'\n\
             print(open('/etc/passwd').readline().strip())\n",
            std::process::id()
        );
        let Some((out, _)) = run(&program, &short()) else {
            return;
        };
        assert_eq!(out.status, Status::Passed, "{}", out.stderr);
        // World-readable files are readable: documented, not isolated.
        assert!(out.stdout.starts_with("root:"), "{}", out.stdout);
    }

    #[test]
    fn writes_outside_the_workdir_are_blocked() {
        let Some(_) = python() else { return };
        // A directory anyone may write to, so only the read-only mount can stop the write.
        let outside = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            outside.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o777),
        )
        .unwrap();
        let target = outside.path().join("escaped");
        let program = format!(
            "open('inside', 'w').write('ok')\n\
             import errno\n\
             try:\n    open({:?}, 'w').write('x')\nexcept OSError as e:\n    print('blocked', errno.errorcode[e.errno])\n",
            target.to_str().unwrap()
        );
        let (out, _) = run(&program, &short()).unwrap();
        assert_eq!(out.status, Status::Passed, "{}", out.stderr);
        if out.fs_readonly {
            assert_eq!(out.stdout.trim(), "blocked EROFS");
            assert!(!target.exists());
        } else {
            eprintln!("filesystem not read-only here: {:?}", out.isolation_note);
        }
    }

    #[test]
    fn network_is_unreachable_when_isolated() {
        let Some(_) = python() else { return };
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let program = format!(
            "import socket\n\
             s = socket.socket()\ns.settimeout(1)\n\
             try:\n    s.connect(('127.0.0.1', {port}))\n    print('connected')\nexcept OSError as e:\n    print('refused', e)\n\
             try:\n    socket.getaddrinfo('example.com', 80)\n    print('dns ok')\nexcept OSError as e:\n    print('no dns', e)\n"
        );
        let (out, _) = run(&program, &short()).unwrap();
        assert_eq!(out.status, Status::Passed, "{}", out.stderr);
        if out.network_isolated {
            assert!(
                out.stdout.contains("refused") && out.stdout.contains("no dns"),
                "{}",
                out.stdout
            );
        } else {
            let note = out.isolation_note.as_deref().unwrap_or("");
            assert!(!note.is_empty(), "no isolation but no note either");
            eprintln!("network not isolated here: {note}");
        }
    }

    #[test]
    fn missing_interpreter_is_a_clear_error() {
        let err = run_python_with(
            Path::new("/nonexistent/python3"),
            "pass",
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(err, SandboxError::PythonNotFound(_)), "{err}");
        assert!(err.to_string().contains("install Python 3"));
    }
}
