//! A running sandbox's processes are confined: the sentry's root is an
//! empty directory and its seccomp filter is in force; the gofer sees the
//! tree it serves without the host's `/proc`, `/sys`, `/dev` and `/run`,
//! and holds only the capabilities file serving needs; both go away when
//! the sandbox does.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rvisor_tests::{build_program, is_root, rvisor_command, test_env};

/// The direct children of `pid`, with their command lines.
fn children(pid: u32) -> Vec<(u32, String)> {
    let mut v = Vec::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        // The parent pid is the second field after the ")" closing the name.
        let ppid = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok());
        if ppid == Some(pid) {
            let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
            v.push((p, String::from_utf8_lossy(&cmd).replace('\0', " ")));
        }
    }
    v
}

fn status_field(pid: u32, key: &str) -> String {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    s.lines().find_map(|l| l.strip_prefix(key)).map(|v| v.trim().to_string()).unwrap_or_default()
}

fn entries(dir: &str) -> Vec<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{dir}: {e}"))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect()
}

/// Starts a sandbox that waits on stdin; returns it with its sentry's and
/// gofer's pids once the application runs.
fn start() -> (Child, u32, u32) {
    let prog = build_program("wait_stdin");
    let mut c = rvisor_command();
    test_env(&mut c).arg("do").arg("--").arg(&prog).stdin(Stdio::piped()).stdout(Stdio::piped());
    let mut child = c.spawn().expect("start rvisor");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().expect("stdout")).read_line(&mut line).expect("read");
    assert_eq!(line, "ready\n");
    let kids = children(child.id());
    let find = |verb: &str| {
        kids.iter()
            .find(|(_, cmd)| cmd.split_whitespace().any(|w| w == verb))
            .map(|(p, _)| *p)
            .unwrap_or_else(|| panic!("no {verb} process among {kids:?}"))
    };
    let (sentry, gofer) = (find("boot"), find("gofer"));
    (child, sentry, gofer)
}

fn gone_within(pid: u32, limit: Duration) -> bool {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        // A zombie counts as gone: it runs nothing.
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        if state.is_empty() || state.rsplit_once(')').is_some_and(|(_, r)| r.trim_start().starts_with('Z')) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    false
}

#[test]
fn sentry_runs_in_an_empty_root_under_seccomp_and_the_gofer_without_host_kernel_trees() {
    if !is_root() {
        println!("skip: confinement needs root");
        return;
    }
    let (mut child, sentry, gofer) = start();

    let root = format!("/proc/{sentry}/root");
    assert_eq!(entries(&root), Vec::<String>::new(), "the sentry's root is empty");
    assert_eq!(status_field(sentry, "Seccomp:"), "2", "the sentry runs under a seccomp filter");
    assert_eq!(status_field(sentry, "NoNewPrivs:"), "1");

    let groot = format!("/proc/{gofer}/root");
    assert!(entries(&groot).iter().any(|e| e == "etc"), "the gofer serves the host's root");
    for hidden in ["proc", "sys", "dev", "run"] {
        let d = format!("{groot}/{hidden}");
        if std::path::Path::new(&d).exists() {
            assert_eq!(entries(&d), Vec::<String>::new(), "the gofer's /{hidden} is empty");
        }
    }
    // CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_FSETID.
    assert_eq!(status_field(gofer, "CapEff:"), "000000000000001f");
    assert_eq!(status_field(gofer, "CapBnd:"), "000000000000001f");

    drop(child.stdin.take());
    let st = child.wait().expect("wait");
    assert_eq!(st.code(), Some(0));
    assert!(gone_within(sentry, Duration::from_secs(5)) && gone_within(gofer, Duration::from_secs(5)));
}

#[test]
fn the_gofer_ends_with_its_sentry() {
    if !is_root() {
        println!("skip: confinement needs root");
        return;
    }
    let (mut child, sentry, gofer) = start();
    let _ = Command::new("kill").args(["-KILL", &sentry.to_string()]).status();
    let st = child.wait().expect("wait");
    assert_eq!(st.code(), Some(137), "rvisor do reports the sandbox killed");
    assert!(gone_within(gofer, Duration::from_secs(5)), "the gofer outlived its sentry");
}
