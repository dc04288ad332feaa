//! A control group per sandboxed item, where the caller may create one: a memory and a process
//! budget for the whole item (every process it starts together), instead of per process.
//!
//! cgroup v2 (`/sys/fs/cgroup` with the `memory` and `pids` controllers) or, failing that, v1
//! (`/sys/fs/cgroup/memory` and `/sys/fs/cgroup/pids`). Creating a group needs write access
//! there, which normally means root; otherwise the sandbox runs without one and says so
//! (per-process `RLIMIT_AS` and the per-namespace `RLIMIT_NPROC` still apply).

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// One item's group(s), removed on drop.
pub struct Cgroup {
    /// the group folders (one for v2; memory and pids for v1)
    dirs: Vec<PathBuf>,
    /// the files a process writes `0` into to join, prepared for the child
    pub join: Vec<CString>,
    v2: bool,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

fn name() -> String {
    format!(
        "sft-eval-sandbox-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

fn cstring(p: &Path) -> Option<CString> {
    CString::new(p.as_os_str().as_bytes()).ok()
}

impl Cgroup {
    /// A group capped at `memory` bytes (no swap) and `pids` processes, or why there is none.
    pub fn create(memory: u64, pids: u64) -> Result<Cgroup, String> {
        let root = Path::new("/sys/fs/cgroup");
        sweep(root);
        match Self::v2(root, memory, pids) {
            Ok(c) => Ok(c),
            Err(e2) => Self::v1(root, memory, pids).map_err(|e1| format!("{e2}; {e1}")),
        }
    }

    fn v2(root: &Path, memory: u64, pids: u64) -> Result<Cgroup, String> {
        let controllers = std::fs::read_to_string(root.join("cgroup.controllers"))
            .map_err(|e| format!("no cgroup v2 at {}: {e}", root.display()))?;
        if !(controllers.contains("memory") && controllers.contains("pids")) {
            return Err("cgroup v2 without the memory and pids controllers".into());
        }
        // the root must hand both controllers down already (sft-eval does not change it)
        let subtree =
            std::fs::read_to_string(root.join("cgroup.subtree_control")).unwrap_or_default();
        if !(subtree.contains("memory") && subtree.contains("pids")) {
            return Err("cgroup v2 does not delegate memory and pids to its children".into());
        }
        let dir = root.join(name());
        std::fs::create_dir(&dir).map_err(|e| format!("cgroup v2: {e}"))?;
        let group = Cgroup {
            join: vec![cstring(&dir.join("cgroup.procs")).ok_or("bad path")?],
            dirs: vec![dir.clone()],
            v2: true,
        };
        for (file, value) in [
            ("memory.max", memory.to_string()),
            ("memory.swap.max", "0".to_string()),
            ("pids.max", pids.to_string()),
        ] {
            let p = dir.join(file);
            if p.exists() {
                std::fs::write(&p, &value).map_err(|e| format!("cgroup v2 {file}: {e}"))?;
            }
        }
        Ok(group)
    }

    fn v1(root: &Path, memory: u64, pids: u64) -> Result<Cgroup, String> {
        let (mem, pid) = (root.join("memory"), root.join("pids"));
        // (the root of the pids hierarchy has no pids.max of its own: its children do)
        if !(mem.join("memory.limit_in_bytes").exists() && pid.join("cgroup.procs").exists()) {
            return Err("no cgroup v1 memory and pids hierarchies".into());
        }
        let n = name();
        let (mdir, pdir) = (mem.join(&n), pid.join(&n));
        std::fs::create_dir(&mdir).map_err(|e| format!("cgroup v1: {e}"))?;
        let mut group = Cgroup {
            dirs: vec![mdir.clone()],
            join: vec![],
            v2: false,
        };
        std::fs::create_dir(&pdir).map_err(|e| format!("cgroup v1: {e}"))?;
        group.dirs.push(pdir.clone());
        std::fs::write(mdir.join("memory.limit_in_bytes"), memory.to_string())
            .map_err(|e| format!("cgroup v1 memory: {e}"))?;
        // swap counts too where the kernel accounts it
        let memsw = mdir.join("memory.memsw.limit_in_bytes");
        if memsw.exists() {
            let _ = std::fs::write(memsw, memory.to_string());
        }
        std::fs::write(pdir.join("pids.max"), pids.to_string())
            .map_err(|e| format!("cgroup v1 pids: {e}"))?;
        group.join = [mdir.join("cgroup.procs"), pdir.join("cgroup.procs")]
            .iter()
            .map(|p| cstring(p).ok_or("bad path"))
            .collect::<Result<_, _>>()?;
        Ok(group)
    }

    /// A short description for the results.
    pub fn describe(&self) -> &'static str {
        if self.v2 {
            "cgroup v2"
        } else {
            "cgroup v1"
        }
    }

    /// Whether the memory controller killed a process of the item.
    pub fn oom_killed(&self) -> bool {
        let Some(dir) = self.dirs.first() else {
            return false;
        };
        if self.v2 {
            let events = std::fs::read_to_string(dir.join("memory.events")).unwrap_or_default();
            events
                .lines()
                .filter_map(|l| l.strip_prefix("oom_kill "))
                .any(|n| n.trim() != "0")
        } else {
            let oom = std::fs::read_to_string(dir.join("memory.oom_control")).unwrap_or_default();
            oom.lines()
                .filter_map(|l| l.strip_prefix("oom_kill "))
                .any(|n| n.trim() != "0")
                || std::fs::read_to_string(dir.join("memory.failcnt"))
                    .is_ok_and(|n| n.trim() != "0")
        }
    }

    /// Kill every process still in the group.
    pub fn kill_all(&self) {
        for dir in &self.dirs {
            let kill = dir.join("cgroup.kill");
            if kill.exists() && std::fs::write(&kill, "1").is_ok() {
                continue;
            }
            if let Ok(text) = std::fs::read_to_string(dir.join("cgroup.procs")) {
                for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
                    // SAFETY: plain syscall.
                    unsafe { libc::kill(pid, libc::SIGKILL) };
                }
            }
        }
    }
}

/// Remove the (empty) groups of sft-eval processes that died before removing their own.
fn sweep(root: &Path) {
    for dir in [root.to_path_buf(), root.join("memory"), root.join("pids")] {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let Some(pid) = name
                .to_str()
                .and_then(|n| n.strip_prefix("sft-eval-sandbox-"))
                .and_then(|rest| rest.split('-').next())
            else {
                continue;
            };
            if !Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir(e.path());
            }
        }
    }
}

/// Whether a group of the sft-eval process `pid` is left (for the tests).
#[cfg(test)]
pub fn left_by(pid: u32) -> bool {
    let prefix = format!("sft-eval-sandbox-{pid}-");
    [
        "/sys/fs/cgroup",
        "/sys/fs/cgroup/memory",
        "/sys/fs/cgroup/pids",
    ]
    .iter()
    .filter_map(|d| std::fs::read_dir(d).ok())
    .flatten()
    .flatten()
    .any(|e| e.file_name().to_string_lossy().starts_with(&prefix))
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        self.kill_all();
        for dir in &self.dirs {
            // a group can be removed once its last process is gone (a few ms after SIGKILL)
            for _ in 0..200 {
                if std::fs::remove_dir(dir).is_ok() || !dir.exists() {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
    }
}
