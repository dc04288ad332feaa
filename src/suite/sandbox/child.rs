//! What runs in the forked child before `exec`: limits, identity, namespaces, mounts, seccomp.
//! Only async-signal-safe system calls on memory prepared before `fork`; a failed step comes
//! back through `spawn` as a raw OS error `STEP_ERR_BASE + step · 4096 + errno`.
//!
//! With namespaces the child forks once more after `unshare(CLONE_NEWPID)`: the grandchild is
//! process 1 of the new PID namespace and becomes the Python program; the child (the process
//! sft-eval spawned) closes every descriptor, waits for it and exits as it did. Both carry a
//! parent-death signal, so when sft-eval dies the child dies, its death kills process 1, and
//! the kernel kills everything else in the namespace with it.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use super::seccomp::Filter;
use super::{Limits, SandboxError};

/// Namespace levels, strongest first.
pub const MODE_FULL: u8 = 0; // user + pid + net + ipc + uts + mount (private dirs, read-only rest)
pub const MODE_PID: u8 = 1; // user + pid + net + ipc + uts, the host filesystem as it is
pub const MODE_NONE: u8 = 2;

pub const STEP_ERR_BASE: i32 = 1 << 20;
pub const STEPS: [&str; 15] = [
    "setsid",
    "setrlimit",
    "dropping to nobody",
    "unshare(CLONE_NEWUSER|CLONE_NEWPID|CLONE_NEWNET|CLONE_NEWIPC|CLONE_NEWUTS)",
    "writing the uid/gid map",
    "making mounts private",
    "mounting /proc",
    "making mounts read-only",
    "mounting a private tmpfs",
    "joining the cgroup",
    "fork",
    "setting the parent-death signal",
    "installing the seccomp filter",
    "chdir",
    "mount namespace",
];
const S_SETSID: i32 = 0;
const S_RLIMIT: i32 = 1;
const S_NOBODY: i32 = 2;
const S_UNSHARE: i32 = 3;
const S_IDMAP: i32 = 4;
const S_PRIVATE: i32 = 5;
const S_PROC: i32 = 6;
const S_READONLY: i32 = 7;
const S_TMPFS: i32 = 8;
const S_CGROUP: i32 = 9;
const S_FORK: i32 = 10;
const S_PDEATH: i32 = 11;
const S_SECCOMP: i32 = 12;
const S_CHDIR: i32 = 13;

/// The step and errno of a setup error.
pub fn decode_step_error(code: i32) -> (&'static str, i32) {
    let rest = code - STEP_ERR_BASE;
    let step = (rest / 4096) as usize;
    (
        STEPS.get(step).copied().unwrap_or("sandbox setup"),
        rest % 4096,
    )
}

/// `nobody`: the user a root caller's sandbox runs as.
pub const NOBODY: libc::uid_t = 65534;

/// Folders hidden behind an empty tmpfs in [`MODE_FULL`] (the caller's home is added): where
/// other programs keep sockets, scratch files and secrets.
pub const PRIVATE_DIRS: &[&str] = &["/tmp", "/var/tmp", "/run", "/dev/shm", "/home", "/root"];

/// The working folder inside the sandbox (on the private `/tmp`).
pub const INSIDE_WORKDIR: &str = "/tmp";

#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}
const MOUNT_ATTR_RDONLY: u64 = 0x1;
const AT_RECURSIVE: libc::c_uint = 0x8000;

/// Everything the `pre_exec` hook needs, allocated before `fork`.
pub struct ChildSetup {
    /// the working folder (inside, or on the host without a mount namespace)
    workdir: CString,
    root: CString,
    proc_dir: CString,
    proc_type: CString,
    tmpfs_type: CString,
    /// private folders and their tmpfs options (`size=…,mode=1777`)
    private: Vec<(CString, CString)>,
    uid_map_path: CString,
    gid_map_path: CString,
    setgroups_path: CString,
    max_userns_path: CString,
    id_map: Vec<u8>,
    cgroup_join: Vec<CString>,
    seccomp: Option<Filter>,
    limits: Limits,
    drop_to_nobody: bool,
    parent: libc::pid_t,
    mode: u8,
}

fn cstring(s: &[u8]) -> Result<CString, SandboxError> {
    CString::new(s)
        .map_err(|e| SandboxError::Setup(std::io::Error::new(std::io::ErrorKind::InvalidInput, e)))
}

impl ChildSetup {
    pub fn new(
        host_workdir: Option<&Path>,
        limits: &Limits,
        drop_to_nobody: bool,
        mode: u8,
        cgroup_join: &[CString],
    ) -> Result<Self, SandboxError> {
        // SAFETY: plain syscalls.
        let (uid, gid, parent) = unsafe { (libc::geteuid(), libc::getegid(), libc::getpid()) };
        let (uid, gid) = if drop_to_nobody {
            (NOBODY, NOBODY)
        } else {
            (uid, gid)
        };
        let c = |s: &str| cstring(s.as_bytes());
        let mut dirs: Vec<String> = PRIVATE_DIRS.iter().map(|s| s.to_string()).collect();
        if let Some(home) = std::env::var_os("HOME") {
            let home = Path::new(&home);
            if home.is_absolute() && !dirs.iter().any(|d| home.starts_with(d)) {
                dirs.push(home.display().to_string());
            }
        }
        let private = dirs
            .iter()
            .filter(|d| Path::new(d).is_dir())
            .map(|d| {
                let size = if d == INSIDE_WORKDIR {
                    limits.disk_bytes
                } else {
                    1 << 20
                };
                Ok((c(d)?, c(&format!("size={size},nr_inodes=4096,mode=1777"))?))
            })
            .collect::<Result<Vec<_>, SandboxError>>()?;
        let workdir = match host_workdir {
            Some(p) => cstring(p.as_os_str().as_bytes())?,
            None => c(INSIDE_WORKDIR)?,
        };
        Ok(ChildSetup {
            workdir,
            root: c("/")?,
            proc_dir: c("/proc")?,
            proc_type: c("proc")?,
            tmpfs_type: c("tmpfs")?,
            private,
            uid_map_path: c("/proc/self/uid_map")?,
            gid_map_path: c("/proc/self/gid_map")?,
            setgroups_path: c("/proc/self/setgroups")?,
            max_userns_path: c("/proc/sys/user/max_user_namespaces")?,
            // The same ids inside as outside: the uid map line, then the gid map line.
            id_map: format!("{uid} {uid} 1\n\0{gid} {gid} 1\n\0").into_bytes(),
            cgroup_join: cgroup_join.to_vec(),
            seccomp: Filter::new(),
            limits: limits.clone(),
            drop_to_nobody,
            parent,
            mode,
        })
    }

    /// Whether the seccomp filter will be installed.
    pub fn has_seccomp(&self) -> bool {
        self.seccomp.is_some()
    }

    /// Runs in the forked child: only async-signal-safe syscalls, no allocation.
    pub fn apply(&self) -> std::io::Result<()> {
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
        // SAFETY (whole body): syscalls on pointers to memory owned by `self`, prepared before
        // fork; `_exit` where the process must not return into std.
        unsafe {
            if libc::setsid() < 0 {
                return Err(fail(S_SETSID));
            }
            for join in &self.cgroup_join {
                if !write_file(join, b"0") {
                    return Err(fail(S_CGROUP));
                }
            }
            let l = &self.limits;
            let ok = set(libc::RLIMIT_CPU, l.cpu_secs, l.cpu_secs + 1)
                && set(libc::RLIMIT_AS, l.memory_bytes, l.memory_bytes)
                && set(libc::RLIMIT_FSIZE, l.file_bytes, l.file_bytes)
                && set(libc::RLIMIT_NOFILE, l.open_files, l.open_files)
                && set(libc::RLIMIT_CORE, 0, 0);
            if !ok {
                return Err(fail(S_RLIMIT));
            }
            if self.drop_to_nobody
                && (libc::setgroups(0, std::ptr::null()) != 0
                    || libc::setgid(NOBODY) != 0
                    || libc::setuid(NOBODY) != 0)
            {
                return Err(fail(S_NOBODY));
            }
            // setuid cleared "dumpable", which leaves /proc/self owned by root and the uid map
            // unwritable; core dumps stay off through RLIMIT_CORE.
            if self.drop_to_nobody && libc::prctl(libc::PR_SET_DUMPABLE, 1, 0, 0, 0) != 0 {
                return Err(fail(S_NOBODY));
            }
            // Die with sft-eval (set after setuid, which clears it); if sft-eval is already
            // gone, stop here.
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(fail(S_PDEATH));
            }
            if libc::getppid() != self.parent {
                libc::_exit(137);
            }
            if self.mode < MODE_NONE {
                let mut flags = libc::CLONE_NEWUSER
                    | libc::CLONE_NEWPID
                    | libc::CLONE_NEWNET
                    | libc::CLONE_NEWIPC
                    | libc::CLONE_NEWUTS;
                if self.mode == MODE_FULL {
                    flags |= libc::CLONE_NEWNS;
                }
                if libc::unshare(flags) != 0 {
                    return Err(fail(S_UNSHARE));
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
                    return Err(fail(S_IDMAP));
                }
                // No nested user namespaces (best effort; seccomp forbids unshare anyway).
                write_file(&self.max_userns_path, b"0");
                self.become_init()?;
                if self.mode == MODE_FULL {
                    self.mount_private()?;
                }
            }
            if let Some(f) = &self.seccomp {
                if !f.install() {
                    return Err(fail(S_SECCOMP));
                }
            }
            // Inside a fresh user namespace this counts only the sandbox's own processes.
            if !set(libc::RLIMIT_NPROC, l.processes, l.processes) {
                return Err(fail(S_RLIMIT));
            }
            if libc::chdir(self.workdir.as_ptr()) != 0 {
                return Err(fail(S_CHDIR));
            }
        }
        Ok(())
    }

    /// Fork into the new PID namespace. The parent side waits for the grandchild (process 1)
    /// and exits as it did, never returning; the grandchild returns and goes on to `exec`.
    unsafe fn become_init(&self) -> std::io::Result<()> {
        fn fail(step: i32) -> std::io::Error {
            let errno = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            std::io::Error::from_raw_os_error(STEP_ERR_BASE + step * 4096 + errno.min(4095))
        }
        let pid = libc::fork();
        if pid < 0 {
            return Err(fail(S_FORK));
        }
        if pid == 0 {
            // process 1: die with the waiting parent
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(fail(S_PDEATH));
            }
            return Ok(());
        }
        // The waiting parent holds nothing open: sft-eval's pipes (and std's exec-status pipe)
        // see only process 1's ends.
        if libc::syscall(libc::SYS_close_range, 0u32, u32::MAX, 0u32) != 0 {
            for fd in 0..65536 {
                libc::close(fd);
            }
        }
        let mut status = 0;
        loop {
            let r = libc::waitpid(pid, &mut status, 0);
            if r == pid {
                break;
            }
            if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                libc::_exit(126);
            }
        }
        if libc::WIFEXITED(status) {
            libc::_exit(libc::WEXITSTATUS(status));
        }
        let sig = libc::WTERMSIG(status);
        libc::signal(sig, libc::SIG_DFL);
        libc::kill(libc::getpid(), sig);
        libc::_exit(128 + sig);
    }

    /// A private mount tree: a fresh /proc for the PID namespace, everything read-only, then an
    /// empty, size-limited tmpfs over each private folder.
    unsafe fn mount_private(&self) -> std::io::Result<()> {
        fn fail(step: i32) -> std::io::Error {
            let errno = std::io::Error::last_os_error()
                .raw_os_error()
                .unwrap_or(libc::EIO);
            std::io::Error::from_raw_os_error(STEP_ERR_BASE + step * 4096 + errno.min(4095))
        }
        let none = std::ptr::null::<libc::c_char>();
        if libc::mount(
            none,
            self.root.as_ptr(),
            none,
            libc::MS_REC | libc::MS_PRIVATE,
            std::ptr::null(),
        ) != 0
        {
            return Err(fail(S_PRIVATE));
        }
        if libc::mount(
            self.proc_type.as_ptr(),
            self.proc_dir.as_ptr(),
            self.proc_type.as_ptr(),
            libc::MS_NOSUID | libc::MS_NODEV | libc::MS_NOEXEC,
            std::ptr::null(),
        ) != 0
        {
            return Err(fail(S_PROC));
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
            return Err(fail(S_READONLY));
        }
        for (dir, options) in &self.private {
            if libc::mount(
                self.tmpfs_type.as_ptr(),
                dir.as_ptr(),
                self.tmpfs_type.as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                options.as_ptr().cast(),
            ) != 0
            {
                return Err(fail(S_TMPFS));
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
