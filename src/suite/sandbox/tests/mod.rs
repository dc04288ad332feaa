//! The sandbox's walls, each tried by a hostile program (as root and, by running this test
//! binary again as `nobody`, as an unprivileged caller), and its limits.

use super::process::sandbox_processes;
use super::*;

mod probes;

/// Sandboxed runs are serialised: some of them deliberately use up processes and memory, and
/// some look for leftover sandbox processes (other tests' long runs would confuse them).
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

/// Whether this process runs as root.
fn is_root() -> bool {
    // SAFETY: plain syscall.
    unsafe { libc::geteuid() == 0 }
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
                    .is_ok_and(|c| c.contains("-I\0-B\0-\0"))
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
         assert sorted(os.environ) == ['HOME', 'LANG', 'PATH', 'PYTHONDONTWRITEBYTECODE', 'PYTHONHASHSEED', 'TMPDIR'], sorted(os.environ)\n\
         assert os.environ['HOME'] == os.getcwd() == os.environ['TMPDIR']\n\
         assert os.listdir('.') == [], os.listdir('.')\n\
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
    // A directory anyone may write to, so only the read-only mount can stop the write (not
    // under /tmp, which the sandbox replaces with its own).
    let outside = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
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
        // Under a folder the sandbox replaces with its own empty tmpfs (a checkout in /tmp or
        // a home directory), the path does not exist inside at all; elsewhere the read-only
        // mount refuses the write.
        let masked = ["/tmp", "/var/tmp", "/run", "/dev/shm", "/home", "/root"]
            .iter()
            .any(|m| outside.path().starts_with(m))
            || std::env::var_os("HOME").is_some_and(|h| outside.path().starts_with(h));
        let want = if masked {
            "blocked ENOENT"
        } else {
            "blocked EROFS"
        };
        assert_eq!(out.stdout.trim(), want);
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
         try:\n    s = socket.socket()\n    s.settimeout(1)\n    s.connect(('127.0.0.1', {port}))\n    print('connected')\nexcept OSError as e:\n    print('refused', e)\n\
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
