//! Run untrusted, model-written Python in a throw-away sandbox.
//!
//! **Threat model.** The program is hostile: it may try to read the caller's secrets, reach the
//! network or a local service, signal or kill other processes (sft-eval included), exhaust
//! memory, processes or disk, outlive its run, or leave files behind. What holds, on Linux, with
//! every layer the kernel allows (the result's [`Isolation`] says which ran):
//!
//! - **Its own namespaces**: user, PID (it is process 1 of an empty process tree: nothing of the
//!   host is visible or signalable, and `getppid()` is 0), network (only a downed loopback: no
//!   connection, not even to 127.0.0.1, no DNS, no abstract Unix socket of the host), IPC, UTS,
//!   and mount: every mount read-only, with an empty, size-limited tmpfs over `/tmp` (its
//!   working folder and `HOME`), `/var/tmp`, `/run`, `/dev/shm`, `/home`, `/root` and the
//!   caller's home — so no path socket, scratch file or key of the host is reachable.
//! - **A seccomp filter** ([`seccomp`]): no socket of any family, no ptrace, no new namespaces or
//!   mounts, no keyrings, BPF or modules (`EPERM`).
//! - **Budgets per item**: a cgroup (memory for all its processes together, process count) where
//!   the caller may create one ([`cgroup`]); per-process `RLIMIT_AS`, CPU seconds, file size and
//!   open files; `RLIMIT_NPROC` counted in its own user namespace; the tmpfs size for disk.
//! - **Nothing outlives it**: the process sft-eval spawns and process 1 both carry a parent-death
//!   `SIGKILL`, so whatever way sft-eval ends, the namespace dies and the kernel kills everything
//!   in it; on timeout the whole session is killed and `/proc` swept. The program arrives on
//!   stdin and works on the private tmpfs, so nothing is written to the host's disk.
//! - A root caller's program runs as `nobody` (65534); any caller's, with a cleared environment.
//!
//! Not hidden: world-readable files outside the private folders (`/etc/passwd`, the Python
//! installation, the caller's project folder when it is not under a home). A kernel that
//! refuses user namespaces runs the program with the seccomp filter and the rlimits only
//! ([`Isolation`] says so, and the suite's results carry the note). Note that `-I` makes Python
//! ignore all `PYTHON*` variables, so the hash seed is *not* fixed by `PYTHONHASHSEED`; tests
//! must not depend on set/dict order of strings.

mod cgroup;
mod child;
mod process;
mod seccomp;
#[cfg(test)]
pub(crate) mod tests;

use std::ffi::CString;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use child::{decode_step_error, ChildSetup, MODE_FULL, MODE_NONE, MODE_PID, NOBODY};
use process::{classify, exited_unreaped, join_reader, kill_leftovers, spawn_reader};

/// Resource limits for one sandboxed item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock timeout; the whole item is killed when it passes.
    pub wall: Duration,
    /// CPU time per process (`RLIMIT_CPU`, soft; the hard limit is one second more).
    pub cpu_secs: u64,
    /// Memory: for all the item's processes together (cgroup), and the address space of each
    /// (`RLIMIT_AS`).
    pub memory_bytes: u64,
    /// Largest file the program may write (`RLIMIT_FSIZE`).
    pub file_bytes: u64,
    /// Everything the item may write to its working folder together (the tmpfs size).
    pub disk_bytes: u64,
    /// Processes of the item (cgroup `pids.max`, and `RLIMIT_NPROC` in its user namespace).
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
            disk_bytes: 64 << 20,
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
    /// Memory (`MemoryError`, or killed by the item's cgroup).
    Memory,
    /// File size (`EFBIG`; Python ignores `SIGXFSZ`).
    FileSize,
    /// The item's disk budget (`ENOSPC` on its tmpfs).
    Disk,
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

/// Which layers a run had.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Isolation {
    /// its own user, PID, network, IPC and UTS namespaces
    pub namespaces: bool,
    /// its own mount namespace: private tmpfs folders, everything else read-only
    pub private_mounts: bool,
    /// the seccomp filter
    pub seccomp: bool,
    /// `cgroup v2` / `cgroup v1` when the item had a memory and process budget of its own
    pub cgroup: Option<&'static str>,
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
    /// The layers it ran with.
    pub isolation: Isolation,
    /// Whether the program ran in its own, empty network namespace.
    pub network_isolated: bool,
    /// Whether every mount but its private folders was read-only for the program.
    pub fs_readonly: bool,
    /// Why a layer is missing, when one is.
    pub isolation_note: Option<String>,
}

impl Outcome {
    /// How the program ran, for results and `sft-eval doctor`: the sandbox's layers, and why
    /// any is missing.
    pub fn isolation_summary(&self) -> String {
        let i = &self.isolation;
        let mut layers = vec!["CPU, memory, file and process limits"];
        if i.namespaces {
            layers.push("its own PID, network, IPC and user namespaces (no network)");
        }
        if i.private_mounts {
            layers.push("private /tmp, /run and home folders, the rest read-only");
        }
        if i.seccomp {
            layers.push("a seccomp filter (no sockets, no ptrace)");
        }
        match i.cgroup {
            Some("cgroup v2") => layers.push("a cgroup v2 memory and process budget per item"),
            Some(_) => layers.push("a cgroup v1 memory and process budget per item"),
            None => {}
        }
        let head = if i.namespaces {
            "code ran in a sandbox"
        } else {
            "code ran WITHOUT namespaces (no network or PID isolation)"
        };
        let mut note = format!("{head}: {}", layers.join("; "));
        if let Some(why) = &self.isolation_note {
            note.push_str(&format!(" ({why})"));
        }
        note
    }
}

/// Why a program could not be run at all (its own failures are an [`Outcome`]).
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// No usable `python3`.
    #[error("python3 not found: {0} (install Python 3 so that `python3` is on PATH, e.g. `apt-get install python3`)")]
    PythonNotFound(String),
    /// The temp dir or the program could not be prepared.
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

/// The `PATH` given to the sandboxed program, also searched first for `python3`.
const SANDBOX_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// The strongest namespace level that works, remembered with why stronger ones did not.
static MODE: AtomicU8 = AtomicU8::new(MODE_FULL);
static MODE_NOTE: Mutex<Option<String>> = Mutex::new(None);
/// Why the item cgroup is unavailable, found once.
static CGROUP_NOTE: OnceLock<Option<String>> = OnceLock::new();

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
    // SAFETY: plain syscall.
    let drop_to_nobody = unsafe { libc::geteuid() } == 0;
    // a budget for the whole item, where the caller may create a cgroup
    let group = match CGROUP_NOTE.get() {
        Some(Some(_)) => None,
        _ => match cgroup::Cgroup::create(limits.memory_bytes, limits.processes) {
            Ok(g) => {
                let _ = CGROUP_NOTE.set(None);
                Some(g)
            }
            Err(why) => {
                let _ = CGROUP_NOTE.set(Some(format!(
                    "no cgroup ({why}): memory is limited per process (RLIMIT_AS), not per item"
                )));
                None
            }
        },
    };
    let mut mode = MODE.load(Ordering::Relaxed);
    // without a mount namespace the program works in a host temp folder
    let mut host_workdir: Option<tempfile::TempDir> = None;
    let start;
    let mut seccomp_on;
    let mut child = loop {
        if mode > MODE_FULL && host_workdir.is_none() {
            host_workdir = Some(host_folder(drop_to_nobody)?);
        }
        let workdir = host_workdir.as_ref().map(|d| d.path().to_path_buf());
        let home = workdir
            .clone()
            .unwrap_or_else(|| PathBuf::from(child::INSIDE_WORKDIR));
        let mut cmd = Command::new(python);
        cmd.args(["-I", "-B", "-"])
            .env_clear()
            .env("PATH", SANDBOX_PATH)
            .env("HOME", &home)
            .env("TMPDIR", &home)
            .env("LANG", "C.UTF-8")
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .env("PYTHONHASHSEED", "0")
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let join = group.as_ref().map(|g| g.join.clone()).unwrap_or_default();
        let setup = ChildSetup::new(workdir.as_deref(), limits, drop_to_nobody, mode, &join)?;
        seccomp_on = setup.has_seccomp();
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
            Err(e)
                if mode < MODE_NONE
                    && e.raw_os_error().is_some_and(|c| c >= child::STEP_ERR_BASE) =>
            {
                let (step, errno) = decode_step_error(e.raw_os_error().unwrap_or_default());
                let why = format!(
                    "{} failed ({}); running without {}",
                    step,
                    std::io::Error::from_raw_os_error(errno),
                    if mode == MODE_FULL {
                        "private mounts"
                    } else {
                        "namespaces (no PID, network or filesystem isolation)"
                    }
                );
                mode += 1;
                MODE.store(mode, Ordering::Relaxed);
                let mut note = MODE_NOTE.lock().unwrap_or_else(|e| e.into_inner());
                *note = Some(match note.take() {
                    Some(n) => format!("{n}; {why}"),
                    None => why,
                });
            }
            Err(e) => {
                let source = match e.raw_os_error() {
                    Some(c) if c >= child::STEP_ERR_BASE => {
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
    // the program goes in on stdin (from a thread: a large one fills the pipe), then EOF
    let stdin = child.stdin.take();
    let text = program.as_bytes().to_vec();
    let writer = std::thread::spawn(move || {
        if let Some(mut w) = stdin {
            let _ = w.write_all(&text);
        }
    });
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
    // Kill what is left while the leader is still a zombie, so its pid cannot have been
    // reused; then reap it.
    if let Some(g) = &group {
        g.kill_all();
    }
    kill_leftovers(pid, userns.as_deref());
    let exit = child.wait().map_err(SandboxError::Wait)?;
    kill_leftovers(pid, userns.as_deref());
    let _ = writer.join();
    let (stdout, out_cut) = join_reader(out_reader);
    let (stderr, err_cut) = join_reader(err_reader);
    drop(host_workdir);

    let mut status = classify(exit, timed_out, &stderr);
    if !timed_out && group.as_ref().is_some_and(|g| g.oom_killed()) {
        status = Status::ResourceLimit {
            which: Resource::Memory,
        };
    }
    let isolation = Isolation {
        namespaces: mode <= MODE_PID,
        private_mounts: mode == MODE_FULL,
        seccomp: seccomp_on,
        cgroup: group.as_ref().map(|g| g.describe()),
    };
    let mut notes: Vec<String> = Vec::new();
    if let Some(n) = MODE_NOTE.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        notes.push(n);
    }
    if let Some(Some(n)) = CGROUP_NOTE.get() {
        notes.push(n.clone());
    }
    if !isolation.seccomp {
        notes.push("no seccomp filter on this architecture".into());
    }
    let outcome = Outcome {
        status,
        stdout,
        stderr,
        output_truncated: out_cut || err_cut,
        wall,
        network_isolated: isolation.namespaces,
        fs_readonly: isolation.private_mounts,
        isolation,
        isolation_note: (!notes.is_empty()).then(|| notes.join("; ")),
    };
    Ok((outcome, pid))
}

/// A working folder on the host, for runs without a mount namespace (owned by `nobody` when
/// the program runs as it).
fn host_folder(drop_to_nobody: bool) -> Result<tempfile::TempDir, SandboxError> {
    let dir = tempfile::Builder::new()
        .prefix("sft-eval-sandbox-")
        .tempdir()
        .map_err(SandboxError::Setup)?;
    if drop_to_nobody {
        let c = CString::new(dir.path().as_os_str().as_bytes()).map_err(|e| {
            SandboxError::Setup(std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
        })?;
        // SAFETY: valid path; root may chown.
        if unsafe { libc::chown(c.as_ptr(), NOBODY, NOBODY) } != 0 {
            return Err(SandboxError::Setup(std::io::Error::last_os_error()));
        }
    }
    Ok(dir)
}
