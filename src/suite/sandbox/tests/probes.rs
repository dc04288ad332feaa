//! Hostile programs, each looking for a way out: as this user, and as `nobody` by running this
//! test binary again on [`sandbox_helper`]; the item dying with its caller; per-item budgets.

use super::*;

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
        "suite::sandbox::tests::probes::sandbox_helper",
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
