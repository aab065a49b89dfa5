//! `rvisor do`: output, exit statuses, missing and unrunnable programs,
//! `--strace`, signal forwarding, and what is left behind.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvisor_tests::{build_program, rvisor_command, shell_code, test_env};

fn rvisor_do(args: &[&str]) -> std::process::Output {
    let mut c = rvisor_command();
    test_env(&mut c).arg("do").arg("--").args(args).stdin(Stdio::null());
    c.output().expect("run rvisor")
}

#[test]
fn hello_prints_what_it_prints_natively() {
    let hello = build_program("hello");
    let native = Command::new(&hello).arg("world").output().unwrap();
    let o = rvisor_do(&[hello.to_str().unwrap(), "world"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello world\n");
    assert_eq!(o.stdout, native.stdout);
    assert_eq!(shell_code(&o), 0);
    assert!(o.stderr.is_empty(), "stderr: {}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn exit_status_is_the_applications() {
    let prog = rvisor_tests::build_c("exit", rvisor_tests::Libc::Glibc);
    for code in ["0", "7", "42", "255"] {
        let o = rvisor_do(&[prog.to_str().unwrap(), code]);
        assert_eq!(shell_code(&o).to_string(), code);
    }
}

#[test]
fn missing_program_exits_127_with_one_line() {
    let o = rvisor_do(&["/nonexistent/program"]);
    assert_eq!(shell_code(&o), 127);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(err.lines().count(), 1, "stderr: {err}");
    assert!(err.contains("/nonexistent/program"), "stderr: {err}");
    let o = rvisor_do(&["no-such-command-rvisor-test"]);
    assert_eq!(shell_code(&o), 127);
    assert!(String::from_utf8_lossy(&o.stderr).contains("not found"));
}

#[test]
fn unrunnable_program_exits_126() {
    let dir = std::env::temp_dir().join(format!("rvisor-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let plain = dir.join("not-executable");
    std::fs::write(&plain, "#!/bin/sh\necho hi\n").unwrap();
    let o = rvisor_do(&[plain.to_str().unwrap()]);
    assert_eq!(shell_code(&o), 126);
    assert_eq!(String::from_utf8_lossy(&o.stderr).lines().count(), 1);
    let o = rvisor_do(&[dir.to_str().unwrap()]);
    assert_eq!(shell_code(&o), 126, "a directory");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn strace_shows_decoded_calls() {
    let hello = build_program("hello");
    let mut c = rvisor_command();
    test_env(&mut c).args(["--strace", "do", "--"]).arg(&hello).arg("world").stdin(Stdio::null());
    let o = c.output().unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains(r#"write(1, "hello world\n", 12) = 12"#), "strace output:\n{err}");
    assert!(err.contains("arch_prctl(ARCH_SET_FS, 0x"), "strace output:\n{err}");
    assert!(err.contains("exit_group(0) = ?"), "strace output:\n{err}");
    assert!(err.contains("-1 ENOSYS"), "an unimplemented call shows its error:\n{err}");
    assert_eq!(String::from_utf8_lossy(&o.stdout), "hello world\n");
}

#[test]
fn clock_reads_do_not_trap() {
    // The vDSO answers clock_gettime, gettimeofday and time: between the
    // markers the sentry sees no system call but the end marker's write.
    // Only where the host's clock is an invariant TSC (elsewhere every
    // vDSO call traps on purpose).
    let source = std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .unwrap_or_default();
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    if source.trim() != "tsc" || !flags.contains(" constant_tsc") || !flags.contains(" nonstop_tsc") {
        println!("skip: the host's clocksource is not an invariant TSC");
        return;
    }
    let prog = build_program("clock_loop");
    let mut c = rvisor_command();
    test_env(&mut c).args(["--strace", "do", "--"]).arg(&prog).stdin(Stdio::null());
    let o = c.output().unwrap();
    assert!(o.status.success(), "{o:?}");
    let err = String::from_utf8_lossy(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    let begin = lines.iter().position(|l| l.contains(r#"write(1, "begin\n", 6)"#)).expect("begin marker");
    let end = lines.iter().position(|l| l.contains(r#"write(1, "end\n", 4)"#)).expect("end marker");
    let trapped: Vec<&&str> = lines[begin + 1..end].iter().filter(|l| l.contains('(')).collect();
    assert!(trapped.is_empty(), "system calls between the markers: {trapped:?}");
    // Not a test that cannot fail: the same calls made outside the vDSO
    // do show (the program's nanosleep before the markers).
    assert!(lines[..begin].iter().any(|l| l.starts_with("nanosleep(") || l.contains("clock_nanosleep(")));
    assert_eq!(String::from_utf8_lossy(&o.stdout), "begin\nend\n1\n");
}

#[test]
fn debug_log_reports_unsupported_syscalls_by_name() {
    let hello = build_program("unsupported");
    let dir = std::env::temp_dir().join(format!("rvisor-log-{}", std::process::id()));
    let mut c = rvisor_command();
    test_env(&mut c).arg(format!("--debug-log={}", dir.display())).args(["do", "--"]).arg(&hello);
    let o = c.output().unwrap();
    assert_eq!(shell_code(&o), 0);
    let mut logs = String::new();
    for e in std::fs::read_dir(&dir).unwrap() {
        logs.push_str(&std::fs::read_to_string(e.unwrap().path()).unwrap());
    }
    assert!(logs.contains("unsupported syscall add_key"), "logs:\n{logs}");
    assert!(logs.lines().all(|l| l.starts_with('{')), "structured (JSON) lines");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Starts `spin` under rvisor and waits for it to say it is ready.
fn start_spin() -> std::process::Child {
    let spin = build_program("spin");
    let mut c = rvisor_command();
    test_env(&mut c).args(["do", "--"]).arg(spin).stdout(Stdio::piped()).stdin(Stdio::null());
    let mut child = c.spawn().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "ready\n");
    child
}

#[test]
fn signals_sent_to_rvisor_reach_the_application() {
    for (sig, code) in [(libc::SIGTERM, 143), (libc::SIGINT, 130), (libc::SIGHUP, 129)] {
        let mut child = start_spin();
        let pid = i32::try_from(child.id()).unwrap();
        // SAFETY: signalling our own child.
        assert_eq!(unsafe { libc::kill(pid, sig) }, 0);
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        let got = status.code().unwrap_or_else(|| 128 + status.signal().unwrap());
        assert_eq!(got, code, "signal {sig}");
    }
}

/// Host pids of `pid` and all its descendants.
fn descendants(pid: u32) -> Vec<u32> {
    let mut all = vec![pid];
    let mut i = 0;
    while i < all.len() {
        let p = all[i];
        if let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) {
            for t in tasks.flatten() {
                let kids = std::fs::read_to_string(t.path().join("children")).unwrap_or_default();
                all.extend(kids.split_whitespace().filter_map(|k| k.parse::<u32>().ok()));
            }
        }
        i += 1;
    }
    all.sort_unstable();
    all.dedup();
    all
}

fn gone(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')),
    }
}

#[test]
fn killing_rvisor_leaves_no_process_behind() {
    let mut child = start_spin();
    let pids = descendants(child.id());
    // rvisor, the sentry, the master stub and the application's stub.
    assert!(pids.len() >= 4, "expected rvisor, sentry and stubs, got {pids:?}");
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    for p in pids {
        while !gone(p) {
            assert!(Instant::now() < deadline, "process {p} outlived rvisor");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn sandbox_processes_are_gone_after_a_normal_exit() {
    let spin = build_program("hello");
    let mut c = rvisor_command();
    test_env(&mut c).args(["do", "--"]).arg(spin).stdout(Stdio::null());
    let mut child = c.spawn().unwrap();
    let me = child.id();
    child.wait().unwrap();
    // Whatever rvisor started was a descendant; nothing may remain that
    // names rvisor's pid as an ancestor (they would be reparented).
    std::thread::sleep(Duration::from_millis(100));
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmdline);
        assert!(!cmd.contains(&format!("--id=do-{me}")) || gone(pid), "sentry {pid} still running: {cmd}");
    }
}

#[test]
fn dynamically_linked_programs_run() {
    let o = rvisor_do(&["/bin/echo", "dynamic", "echo"]);
    assert_eq!(shell_code(&o), 0, "stderr: {}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.stdout, b"dynamic echo\n");
}

#[test]
fn unknown_formats_are_refused_clearly() {
    let f = std::env::temp_dir().join(format!("rvisor-garbage-{}", std::process::id()));
    std::fs::write(&f, b"\x01\x02 not a program").unwrap();
    std::fs::set_permissions(&f, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let o = rvisor_do(&[f.to_str().unwrap()]);
    let _ = std::fs::remove_file(&f);
    assert_eq!(shell_code(&o), 126);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Exec format error"), "stderr: {err}");
}

#[test]
fn stdin_reaches_the_application() {
    let mut c = rvisor_command();
    test_env(&mut c).args(["do", "--", "/bin/busybox", "cat"]).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child.stdin.take().unwrap().write_all(b"line one\nline two\n").unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&o.stdout), "line one\nline two\n");
    assert_eq!(shell_code(&o), 0);
}
