//! The sandbox's walls, each tried by a hostile program (as root and, by running this test
//! binary again as `nobody`, as an unprivileged caller), and its limits.

use super::process::sandbox_processes;
use super::*;

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

/// The attacks run as probes, each a program and what it printed: here as this process's user,
/// and below again from this test binary re-run as `nobody` (an unprivileged caller).
const PROBES: &[(&str, &str)] = &[
    // no host process is visible, and the parent is outside the namespace
    (
        "pid",
        "import os\nprint('ppid', os.getppid())\nprint('procs', len([p for p in os.listdir('/proc') if p.isdigit()]))\n",
    ),
    // killing the parent (sft-eval without a PID namespace) reaches nothing
    // the parent (sft-eval itself without a PID namespace) is out of reach; with one the
    // parent pid is 0 (kill(0) would only signal the program's own group)
    (
        "kill-parent",
        "import os, signal\nppid = os.getppid()\nif ppid > 0:\n    try:\n        os.kill(ppid, signal.SIGKILL)\n    except OSError as e:\n        print('refused', e.errno)\nelse:\n    print('no parent visible')\nprint('alive')\n",
    ),
    // no socket of any family can be made (seccomp), so no path, abstract or network socket
    // is reachable whatever the namespaces
    (
        "sockets",
        "import socket\nfor fam in [socket.AF_UNIX, socket.AF_INET, socket.AF_INET6]:\n    try:\n        socket.socket(fam)\n        print('created', fam)\n    except OSError as e:\n        print('blocked', e.errno)\n",
    ),
    // the item's disk is its tmpfs: 64 files of 15 MB do not fit in 64 MiB
    (
        "disk",
        "try:\n    for i in range(64):\n        open(f'f{i}', 'wb').write(b'x' * (15 << 20))\n    print('wrote all')\nexcept OSError as e:\n    print('full', e.errno)\n",
    ),
    // a fork bomb stops at the item's process limit
    (
        "forks",
        "import os, time\nn = 0\ntry:\n    while n < 1000:\n        if os.fork() == 0:\n            time.sleep(5)\n            os._exit(0)\n        n += 1\nexcept OSError as e:\n    print('stopped after', n, e.errno)\n",
    ),
    // private folders are empty and writable; the rest is read-only
    (
        "dirs",
        "import os\nfor d in ['/tmp', '/var/tmp', '/run', '/dev/shm', '/home', '/root', os.path.expanduser('~')]:\n    print(d, sorted(os.listdir(d)) if os.path.isdir(d) else 'absent')\nopen('/tmp/inside', 'w').write('ok')\ntry:\n    open('/etc/sft-eval-escape', 'w')\n    print('etc writable')\nexcept OSError as e:\n    print('etc', e.errno)\n",
    ),
];

fn probe(name: &str) -> &'static str {
    PROBES
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, p)| *p)
        .unwrap()
}

/// What every probe must show, given the layers the run had.
fn check_probe(name: &str, out: &Outcome) {
    assert_eq!(out.status, Status::Passed, "{name}: {}", out.stderr);
    let o = &out.stdout;
    if name == "sockets" {
        if out.isolation.seccomp {
            assert!(
                !o.contains("created")
                    && o.matches(&format!("blocked {}", libc::EPERM)).count() == 3,
                "{o}"
            );
        }
        return;
    }
    if !out.isolation.namespaces {
        eprintln!(
            "{name}: no namespaces here ({:?}); only rlimits and seccomp",
            out.isolation_note
        );
        return;
    }
    match name {
        "disk" => {
            if out.isolation.private_mounts {
                assert!(o.contains(&format!("full {}", libc::ENOSPC)), "{o}");
            }
        }
        "forks" => {
            let n: usize = o
                .split_whitespace()
                .nth(2)
                .and_then(|x| x.parse().ok())
                .unwrap_or(usize::MAX);
            assert!(n < 64, "{o}");
        }
        "pid" => {
            assert!(o.contains("ppid 0"), "{o}");
            let n: usize = o
                .lines()
                .find_map(|l| l.strip_prefix("procs "))
                .unwrap()
                .trim()
                .parse()
                .unwrap();
            if out.isolation.private_mounts {
                assert!(n <= 2, "{n} processes visible: {o}");
            }
        }
        "kill-parent" => assert!(
            o.contains("no parent visible") && o.contains("alive"),
            "{o}"
        ),
        "dirs" => {
            if out.isolation.private_mounts {
                for line in o.lines().filter(|l| l.starts_with('/')) {
                    assert!(
                        line.ends_with(" []") || line.ends_with("absent"),
                        "not empty: {line}"
                    );
                }
                assert!(o.contains(&format!("etc {}", libc::EROFS)), "{o}");
            }
        }
        _ => unreachable!(),
    }
}

#[test]
fn probes_find_the_walls_as_this_user() {
    for (name, program) in PROBES {
        let Some((out, pid)) = run(program, &short()) else {
            return;
        };
        check_probe(name, &out);
        assert_nothing_left(pid);
        if !out.isolation.namespaces {
            // without a PID namespace the kill-parent probe would kill this test binary
            return;
        }
    }
}

/// A host process of the user the sandboxed code runs as (`nobody` for a root caller) and a
/// program that tries to kill it: the outcome, and whether the host process survived.
fn kill_host_probe() -> Option<(Outcome, bool)> {
    let python = python()?;
    let mut sleeper = Command::new("sleep");
    sleeper.arg("30");
    if is_root() {
        sleeper.uid(NOBODY).gid(NOBODY);
    }
    let mut host = sleeper.spawn().unwrap();
    let program = format!(
        "import os, signal\ntry:\n    os.kill({}, signal.SIGKILL)\n    print('sent')\nexcept OSError as e:\n    print('refused', e.errno)\n",
        host.id()
    );
    let (out, _) = run_inner(&python, &program, &short()).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let alive = host.try_wait().unwrap().is_none();
    let _ = host.kill();
    let _ = host.wait();
    Some((out, alive))
}

fn check_kill_host(out: &Outcome, alive: bool) {
    assert_eq!(out.status, Status::Passed, "{}", out.stderr);
    if out.isolation.namespaces {
        assert!(
            alive && out.stdout.contains(&format!("refused {}", libc::ESRCH)),
            "{}",
            out.stdout
        );
    } else {
        eprintln!("no PID namespace here: host processes of the same user are reachable");
    }
}

#[test]
fn host_processes_of_the_same_user_cannot_be_signalled() {
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((out, alive)) = kill_host_probe() {
        check_kill_host(&out, alive);
    }
}

/// The helper the tests below run in a second process: the probe named by
/// `SFT_EVAL_SANDBOX_PROBE`, its outcome on stdout; or with `SFT_EVAL_SANDBOX_HANG`, one item
/// that sleeps until it is killed.
#[test]
#[ignore = "run by the tests below in a second process"]
fn sandbox_helper() {
    if std::env::var("SFT_EVAL_SANDBOX_PROBE").as_deref() == Ok("kill-host") {
        let (out, alive) = kill_host_probe().expect("python present");
        println!(
            "PROBE kill-host\nSTATUS {:?}\nNAMESPACES {} {}\n{}host {}\nPROBE-END",
            out.status,
            out.isolation.namespaces,
            out.isolation.private_mounts,
            out.stdout,
            if alive { "alive" } else { "dead" }
        );
        return;
    }
    if let Ok(name) = std::env::var("SFT_EVAL_SANDBOX_PROBE") {
        let program = match std::env::var("SFT_EVAL_SANDBOX_SECRET") {
            Ok(path) if name == "secret" => format!(
                "try:\n    print(open({path:?}).read())\nexcept OSError as e:\n    print('hidden', e.errno)\n"
            ),
            _ => probe(&name).to_string(),
        };
        let out = run_python(&program, &short()).expect("sandbox runs");
        println!(
            "PROBE {}\nSTATUS {:?}\nNAMESPACES {} {}\n{}PROBE-END",
            name, out.status, out.isolation.namespaces, out.isolation.private_mounts, out.stdout
        );
    }
    if std::env::var_os("SFT_EVAL_SANDBOX_HANG").is_some() {
        let limits = Limits {
            wall: Duration::from_secs(120),
            cpu_secs: 120,
            ..Limits::default()
        };
        let _ = run_python(
            "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(120)\ntime.sleep(120)\n",
            &limits,
        );
    }
}

/// This test binary, run again on the helper.
fn helper() -> Command {
    let mut c = Command::new(std::env::current_exe().unwrap());
    c.args([
        "--exact",
        "suite::sandbox::tests::sandbox_helper",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env_remove("SFT_EVAL_SANDBOX_PROBE")
    .env_remove("SFT_EVAL_SANDBOX_HANG");
    c
}

/// As an unprivileged caller (`nobody`, whose home here holds a secret): the same walls, and
/// the caller's own processes and files out of reach.
#[test]
fn probes_find_the_walls_as_an_unprivileged_caller() {
    if python().is_none() {
        return;
    }
    if !is_root() {
        eprintln!("this test runs as an unprivileged user already: covered by the test above");
        return;
    }
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // a home outside /home, /root and /tmp: hidden only because it is the caller's
    let home = tempfile::tempdir_in(std::env::current_dir().unwrap()).unwrap();
    let secret = home.path().join("id_rsa");
    std::fs::write(&secret, "PRIVATE KEY").unwrap();
    for p in [home.path(), secret.as_path()] {
        let c = CString::new(p.as_os_str().as_bytes()).unwrap();
        // SAFETY: valid path.
        assert_eq!(unsafe { libc::chown(c.as_ptr(), NOBODY, NOBODY) }, 0);
    }
    let names = PROBES
        .iter()
        .map(|(n, _)| *n)
        .chain(["secret", "kill-host"]);
    for name in names {
        let mut c = helper();
        c.env("HOME", home.path())
            .env("SFT_EVAL_SANDBOX_PROBE", name)
            .env("SFT_EVAL_SANDBOX_SECRET", &secret)
            .uid(NOBODY)
            .gid(NOBODY);
        let o = match c.output() {
            Ok(o) => o,
            Err(e) => {
                eprintln!("skipping: cannot run this test binary as nobody ({e})");
                return;
            }
        };
        let text = String::from_utf8_lossy(&o.stdout).to_string();
        let Some(start) = text.find("PROBE ") else {
            eprintln!(
                "skipping: the helper did not run as nobody: {text} {}",
                String::from_utf8_lossy(&o.stderr)
            );
            return;
        };
        let block = &text[start..text.find("PROBE-END").expect("helper finished")];
        let mut lines = block.lines();
        lines.next();
        let status = lines
            .next()
            .unwrap()
            .strip_prefix("STATUS ")
            .unwrap()
            .to_string();
        let ns: Vec<bool> = lines
            .next()
            .unwrap()
            .strip_prefix("NAMESPACES ")
            .unwrap()
            .split(' ')
            .map(|x| x == "true")
            .collect();
        let stdout: String = lines.map(|l| format!("{l}\n")).collect();
        let out = Outcome {
            status: if status == "Passed" {
                Status::Passed
            } else {
                Status::Failed { exit_code: -1 }
            },
            stdout,
            stderr: status,
            output_truncated: false,
            wall: Duration::ZERO,
            isolation: Isolation {
                namespaces: ns[0],
                private_mounts: ns[1],
                seccomp: true,
                cgroup: None,
            },
            network_isolated: ns[0],
            fs_readonly: ns[1],
            isolation_note: None,
        };
        if name == "kill-host" {
            check_kill_host(&out, out.stdout.contains("host alive"));
        } else if name == "secret" {
            assert_eq!(out.status, Status::Passed, "{}", out.stderr);
            if out.isolation.private_mounts {
                assert_eq!(out.stdout.trim(), format!("hidden {}", libc::ENOENT));
            } else {
                eprintln!("no private mounts here: the caller's home is readable");
            }
        } else {
            check_probe(name, &out);
        }
        if !out.isolation.namespaces {
            return;
        }
    }
}

/// Descendants of `root` (by parent pid), alive.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else {
            continue;
        };
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let f: Vec<&str> = rest.split_whitespace().collect();
        if f.len() > 1 && f[0] != "Z" && f[0] != "X" {
            parent.insert(pid, f[1].parse::<u32>().unwrap_or(0));
        }
    }
    let mut out = vec![];
    let mut frontier = vec![root];
    while let Some(p) = frontier.pop() {
        for (&c, &pp) in &parent {
            if pp == p {
                out.push(c);
                frontier.push(c);
            }
        }
    }
    out
}

/// However sft-eval ends — killed outright or asked to stop — nothing of the item it was
/// running survives it.
#[test]
fn the_item_dies_with_its_caller() {
    if python().is_none() {
        return;
    }
    let _guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    // as this user and, when that is root, as an unprivileged one
    let users: &[Option<u32>] = if is_root() {
        &[None, Some(NOBODY)]
    } else {
        &[None]
    };
    for (&user, signal) in users
        .iter()
        .flat_map(|u| [(u, libc::SIGKILL), (u, libc::SIGTERM)])
    {
        let mut cmd = helper();
        cmd.env("SFT_EVAL_SANDBOX_HANG", "1").stdout(Stdio::null());
        if let Some(uid) = user {
            cmd.uid(uid).gid(uid);
        }
        let mut h = cmd.spawn().unwrap();
        // wait for the item: a python3 below the helper
        let t0 = Instant::now();
        let item = loop {
            let d = descendants(h.id());
            let pythons: Vec<u32> = d
                .iter()
                .copied()
                .filter(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/cmdline"))
                        .is_ok_and(|c| c.contains("-I\0-B\0-\0"))
                })
                .collect();
            if pythons.len() >= 2 {
                break d;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(20),
                "the item did not start: {d:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        // SAFETY: plain syscall on our child.
        unsafe { libc::kill(h.id() as libc::pid_t, signal) };
        let _ = h.wait();
        let helper_pid = h.id();
        let t0 = Instant::now();
        loop {
            let alive: Vec<u32> = item
                .iter()
                .copied()
                .filter(|p| {
                    std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                        s.rfind(')')
                            .is_some_and(|i| !s[i + 1..].trim_start().starts_with('Z'))
                    })
                })
                .collect();
            if alive.is_empty() {
                break;
            }
            assert!(
                t0.elapsed() < Duration::from_secs(5),
                "signal {signal} ({user:?}): the item's processes {alive:?} outlived their caller"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        // the dead caller's (empty) cgroup goes with the next item's start
        let (out, _) = run_inner(&python().unwrap(), "pass", &short()).unwrap();
        assert!(
            !super::cgroup::left_by(helper_pid),
            "the cgroup of {helper_pid} is left ({:?})",
            out.isolation.cgroup
        );
    }
}

/// Budgets hold for the item as a whole: processes forked together cannot use more memory, and
/// files written together more disk, than the item is given.
#[test]
fn budgets_are_per_item() {
    let many = "import os\npids = []\nfor i in range(6):\n    pid = os.fork()\n    if pid == 0:\n        try:\n            b = bytearray(400 * 1024 * 1024)\n            for j in range(0, len(b), 4096):\n                b[j] = 1\n            os._exit(0)\n        except MemoryError:\n            os._exit(3)\n    pids.append(pid)\ncodes = [os.waitpid(p, 0)[1] for p in pids]\nprint(codes)\nimport sys\nsys.exit(0 if all(c == 0 for c in codes) else 1)\n";
    let limits = Limits {
        wall: Duration::from_secs(20),
        cpu_secs: 20,
        ..Limits::default()
    };
    let Some((out, pid)) = run(many, &limits) else {
        return;
    };
    match out.isolation.cgroup {
        Some(_) => assert!(
            !out.status.passed(),
            "6 × 400 MB ran in a 512 MB item: {}",
            out.stdout
        ),
        None => eprintln!(
            "no item cgroup here ({:?}): memory is per process",
            out.isolation_note
        ),
    }
    assert_nothing_left(pid);
    // 64 files × 15 MB: the item's 64 MiB of disk runs out
    let files = "for i in range(64):\n    with open(f'f{i}', 'wb') as f:\n        f.write(b'x' * (15 << 20))\n";
    let Some((out, _)) = run(files, &limits) else {
        return;
    };
    if out.isolation.private_mounts {
        assert_eq!(
            out.status,
            Status::ResourceLimit {
                which: Resource::Disk
            },
            "{}",
            out.stderr
        );
    } else {
        eprintln!("no private tmpfs here: disk is limited per file only");
    }
}

/// Sockets of the host — on a path (even 0777) or abstract — are out of reach.
#[test]
fn host_sockets_are_unreachable() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixListener};
    if python().is_none() {
        return;
    }
    let dir = std::path::Path::new("/tmp").join(format!("sft-eval-sock-{}", std::process::id()));
    let _ = std::fs::remove_file(&dir);
    let path_listener = UnixListener::bind(&dir).unwrap();
    std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    path_listener.set_nonblocking(true).unwrap();
    let name = format!("sft-eval-abstract-{}", std::process::id());
    let abstract_listener =
        UnixListener::bind_addr(&SocketAddr::from_abstract_name(name.as_bytes()).unwrap()).unwrap();
    abstract_listener.set_nonblocking(true).unwrap();
    let program = format!(
        "import socket\nfor addr in [{:?}, '\\0{}']:\n    try:\n        s = socket.socket(socket.AF_UNIX)\n        s.connect(addr)\n        s.send(b'escaped')\n        print('reached', repr(addr))\n    except OSError as e:\n        print('blocked', e.errno)\n",
        dir.display(),
        name
    );
    let Some((out, _)) = run(&program, &short()) else {
        return;
    };
    let _ = std::fs::remove_file(&dir);
    assert_eq!(out.status, Status::Passed, "{}", out.stderr);
    assert!(!out.stdout.contains("reached"), "{}", out.stdout);
    assert!(path_listener.accept().is_err() && abstract_listener.accept().is_err());
}
