//! A seccomp filter for the sandboxed program: the system calls a test program never needs and
//! an escape would (creating sockets of any family, tracing other processes, namespaces and
//! mounts, keyrings, BPF, kernel modules) fail with `EPERM`; everything else is allowed.
//!
//! It is a second layer under the namespaces: with them, a socket could reach nothing anyway
//! (a fresh network namespace, private `/tmp` and `/run`); without them (a kernel that refuses
//! user namespaces) it is what keeps a program off the host's path sockets, abstract sockets and
//! network. `socketpair` stays allowed: its two ends reach only each other.

/// The filter program, built before `fork` (the child installs it without allocating).
pub struct Filter {
    program: Vec<libc::sock_filter>,
}

#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = 0xC000_003E; // AUDIT_ARCH_X86_64
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = 0xC000_00B7; // AUDIT_ARCH_AARCH64

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_ERRNO: u32 = 0x0005_0000;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_MODE_FILTER: libc::c_ulong = 2;

/// The denied system calls.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn denied() -> Vec<libc::c_long> {
    let mut v = vec![
        libc::SYS_socket,
        libc::SYS_ptrace,
        libc::SYS_process_vm_readv,
        libc::SYS_process_vm_writev,
        libc::SYS_unshare,
        libc::SYS_setns,
        libc::SYS_mount,
        libc::SYS_umount2,
        libc::SYS_pivot_root,
        libc::SYS_chroot,
        libc::SYS_keyctl,
        libc::SYS_add_key,
        libc::SYS_request_key,
        libc::SYS_bpf,
        libc::SYS_perf_event_open,
        libc::SYS_userfaultfd,
        libc::SYS_init_module,
        libc::SYS_finit_module,
        libc::SYS_delete_module,
        libc::SYS_kexec_load,
        libc::SYS_open_tree,
        libc::SYS_move_mount,
        libc::SYS_fsopen,
        libc::SYS_fsmount,
        libc::SYS_mount_setattr,
    ];
    #[cfg(target_arch = "x86_64")]
    v.push(libc::SYS_kexec_file_load);
    v
}

impl Filter {
    /// The filter, or `None` on an architecture it does not know.
    pub fn new() -> Option<Filter> {
        #[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
        {
            let stmt = |code: u16, k: u32| libc::sock_filter {
                code,
                jt: 0,
                jf: 0,
                k,
            };
            let jeq = |k: u32, jt: u8, jf: u8| libc::sock_filter {
                code: (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16,
                jt,
                jf,
                k,
            };
            let ld = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
            let ret = (libc::BPF_RET | libc::BPF_K) as u16;
            // seccomp_data: nr at offset 0, arch at offset 4
            let mut p = vec![
                stmt(ld, 4),
                jeq(AUDIT_ARCH, 1, 0),
                stmt(ret, SECCOMP_RET_KILL_PROCESS),
                stmt(ld, 0),
            ];
            for nr in denied() {
                // match: fall into the next instruction (the EPERM return); else skip it
                p.push(jeq(nr as u32, 0, 1));
                p.push(stmt(ret, SECCOMP_RET_ERRNO | libc::EPERM as u32));
            }
            p.push(stmt(ret, SECCOMP_RET_ALLOW));
            Some(Filter { program: p })
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        None
    }

    /// Install the filter on the calling thread (after `fork`, before `exec`): no allocation.
    /// Needs `no_new_privs`, which it sets.
    pub fn install(&self) -> bool {
        let prog = libc::sock_fprog {
            len: self.program.len() as libc::c_ushort,
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: prctl with a valid, live filter program.
        unsafe {
            libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
                && libc::prctl(
                    libc::PR_SET_SECCOMP,
                    SECCOMP_MODE_FILTER,
                    &prog as *const libc::sock_fprog,
                ) == 0
        }
    }
}
