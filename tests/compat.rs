//! The syscall-compatibility suite: every program under `tests/compat/` is
//! built statically (glibc and musl), run natively and under `rvisor do`,
//! and the two runs must print the same lines and end the same way.
//! Differences allowed on purpose are listed in `tests/compat/EXCLUDED`,
//! each with its reason.

use std::collections::HashSet;

use std::path::Path;
use std::process::{Command, Output, Stdio};

use rvisor_tests::{
    build_c, is_root, native_confined, output_within, run_native, run_native_namespaced, run_rvisor,
    rvisor_command, shell_code, test_env, Libc, RUN_LIMIT,
};

struct Case {
    prog: &'static str,
    args: Vec<String>,
    /// Natively, run as pid 1 of a throwaway pid/UTS namespace with this
    /// hostname.
    namespaced: Option<&'static str>,
    /// Runs on the file fixture (see `make_fixture`) as this user id; the
    /// fixture directory is the first argument.
    files: Option<u32>,
    /// With the fixture's `rw/` on a tmpfs (natively Linux's, in the
    /// sandbox the sentry's), filled from a copy of it before the program
    /// runs.
    tmpfs: bool,
    /// With the fixture's `rw/` on an overlay: natively Linux's overlayfs
    /// (the fixture's copy under a tmpfs upper layer), in the sandbox the
    /// memory overlay of the root (`ro/` a read-only volume).
    overlay: bool,
}

fn case(prog: &'static str, args: &[&str]) -> Case {
    Case {
        prog,
        args: args.iter().map(|s| (*s).to_string()).collect(),
        namespaced: None,
        files: None,
        tmpfs: false,
        overlay: false,
    }
}

fn files_case(prog: &'static str, uid: u32, args: &[&str]) -> Case {
    Case {
        prog,
        args: args.iter().map(|s| (*s).to_string()).collect(),
        namespaced: None,
        files: Some(uid),
        tmpfs: false,
        overlay: false,
    }
}

/// A file case as root with the fixture's `rw/` on an overlay.
fn overlay_case(prog: &'static str, args: &[&str]) -> Case {
    Case { overlay: true, ..files_case(prog, 0, args) }
}

/// A file program natively with `rw/` on Linux's overlayfs: the fixture's
/// `rw/` (moved to `rw.lower/`) under an upper layer on a tmpfs, in a
/// throwaway mount namespace whose root and `ro/` are read-only.
fn run_native_overlay(prog: &Path, dir: &Path, args: &[String]) -> Output {
    std::fs::rename(dir.join("rw"), dir.join("rw.lower")).expect("lower");
    std::fs::create_dir(dir.join("rw")).expect("rw");
    std::fs::create_dir(dir.join("layers")).expect("layers");
    let d = dir.to_str().expect("utf-8 path");
    let script = format!(
        "set -e; mount -t tmpfs tmpfs {d}/layers; mkdir -m 777 {d}/layers/up; mkdir {d}/layers/work; \
         mount -t overlay overlay -o xino=on,lowerdir={d}/rw.lower,upperdir={d}/layers/up,workdir={d}/layers/work {d}/rw; \
         mount --bind {d}/ro {d}/ro; mount -o remount,bind,ro {d}/ro; mount -o remount,bind,ro /; exec \"$@\""
    );
    run_native_mounting(&script, prog, dir, args)
}

/// Runs `prog dir args` natively after `script` (which ends with `exec
/// "$@"`) in a throwaway mount namespace.
fn run_native_mounting(script: &str, prog: &Path, dir: &Path, args: &[String]) -> Output {
    let mut c = Command::new("unshare");
    test_env(&mut c)
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c", script, "sh"])
        .arg(prog)
        .arg(dir)
        .args(args)
        .stdin(Stdio::null());
    output_within(&mut c, RUN_LIMIT)
}

/// A file program under rvisor on the memory overlay of the root, `ro/`
/// a read-only volume.
fn run_rvisor_overlay(prog: &Path, dir: &Path, args: &[String]) -> Output {
    let ro = dir.join("ro");
    let ro = ro.to_str().expect("utf-8 path");
    let mut c = rvisor_command();
    test_env(&mut c).args(["--overlay=memory", "do", "--volume", &format!("{ro}:{ro}:ro"), "--"]);
    c.arg(prog).arg(dir).args(args).stdin(Stdio::null());
    output_within(&mut c, RUN_LIMIT)
}

/// A file case as root with the fixture's `rw/` on a tmpfs.
fn tmpfs_case(prog: &'static str, args: &[&str]) -> Case {
    Case { tmpfs: true, ..files_case(prog, 0, args) }
}

/// Moves the fixture's `rw/` to `rw.template/` and leaves an empty `rw/`
/// for the tmpfs; returns the shell line that fills the tmpfs and runs
/// the program (`"$@"`).
fn tmpfs_fixture(dir: &Path) -> String {
    std::fs::rename(dir.join("rw"), dir.join("rw.template")).expect("template");
    std::fs::create_dir(dir.join("rw")).expect("rw");
    let d = dir.to_str().expect("utf-8 path");
    format!("cp -a {d}/rw.template/. {d}/rw/ && exec \"$@\"")
}

/// A file program natively with `rw/` on Linux's tmpfs (in a throwaway
/// mount namespace whose root and `ro/` are read-only).
fn run_native_tmpfs(prog: &Path, dir: &Path, args: &[String]) -> Output {
    let fill = tmpfs_fixture(dir);
    let d = dir.to_str().expect("utf-8 path");
    let script = format!(
        "set -e; mount -t tmpfs -o mode=777 tmpfs {d}/rw; mount --bind {d}/ro {d}/ro; \
         mount -o remount,bind,ro {d}/ro; mount -o remount,bind,ro /; {fill}"
    );
    run_native_mounting(&script, prog, dir, args)
}

/// A file program under rvisor with `--tmpfs` on `rw/`.
fn run_rvisor_tmpfs(prog: &Path, dir: &Path, args: &[String]) -> Output {
    let fill = tmpfs_fixture(dir);
    let rw = dir.join("rw");
    let rw = rw.to_str().expect("utf-8 path");
    let mut c = rvisor_command();
    test_env(&mut c).args([
        "--overlay=none",
        "do",
        "--tmpfs",
        &format!("{rw}:mode=777"),
        "--",
        "/bin/sh",
        "-c",
        &fill,
        "sh",
    ]);
    c.arg(prog).arg(dir).args(args).stdin(Stdio::null());
    output_within(&mut c, RUN_LIMIT)
}

/// The user id of the unprivileged file cases (`nobody` on Debian).
const NOBODY: u32 = 65534;

/// The file programs' fixture, rebuilt before each run (natively and under
/// rvisor see the same path): `rw/` is writable (natively a directory, in
/// the sandbox a `--volume` on the same path); `ro/` is read-only
/// (natively a read-only bind mount in a throwaway mount namespace, in the
/// sandbox part of the read-only root `rvisor do` serves).
fn make_fixture(dir: &Path) {
    use std::os::unix::fs::{symlink, PermissionsExt};
    let _ = std::fs::remove_dir_all(dir);
    let file = |p: &str, body: &str, mode: u32| {
        let p = dir.join(p);
        std::fs::write(&p, body).expect("fixture file");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    let mkdir = |p: &str, mode: u32| {
        let p = dir.join(p);
        std::fs::create_dir_all(&p).expect("fixture dir");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };
    mkdir("", 0o755);
    mkdir("rw", 0o777);
    mkdir("ro", 0o755);
    mkdir("ro/dir", 0o755);
    file("ro/file", "hello\n", 0o644);
    symlink("file", dir.join("ro/link")).expect("symlink");
    file("rw/rootfile", "secret\n", 0o600);
    file("rw/pubfile", "public\n", 0o644);
    mkdir("rw/noexec", 0o755);
    file("rw/noexec/f", "f\n", 0o644);
    mkdir("rw/nowrite", 0o755);
    file("rw/nowrite/f", "f\n", 0o666);
    mkdir("rw/sticky", 0o1777);
    file("rw/sticky/rootowned", "r\n", 0o666);
    mkdir("rw/sgid", 0o2777);
    mkdir("rw/rootdir", 0o755);
    mkdir("rw/mine", 0o755);
    file("rw/mine/minefile", "m\n", 0o644);
    std::fs::set_permissions(dir.join("rw/noexec"), std::fs::Permissions::from_mode(0o666)).expect("chmod");
    for p in ["rw/mine", "rw/mine/minefile"] {
        std::os::unix::fs::chown(dir.join(p), Some(NOBODY), Some(NOBODY)).expect("chown");
    }
}

/// Runs a file program natively: in a throwaway mount namespace where the
/// root and the fixture's `ro/` are read-only and `rw/` writable (so that a
/// wrong test cannot change the host), as `uid` (no capabilities unless 0).
fn run_native_files(prog: &Path, dir: &Path, uid: u32, args: &[String]) -> Output {
    let id = uid.to_string();
    let mut argv: Vec<&std::ffi::OsStr> = Vec::new();
    if uid != 0 {
        for a in ["setpriv", "--reuid", &id, "--regid", &id, "--clear-groups", "--inh-caps=-all", "--"] {
            argv.push(std::ffi::OsStr::new(a));
        }
    }
    argv.push(prog.as_os_str());
    argv.push(dir.as_os_str());
    argv.extend(args.iter().map(std::ffi::OsStr::new));
    let (rw, ro) = (dir.join("rw"), dir.join("ro"));
    output_within(&mut native_confined(&[&rw], &[&ro], &argv), RUN_LIMIT)
}

/// Runs a file program under rvisor with the fixture's `rw/` as a volume.
fn run_rvisor_files(prog: &Path, dir: &Path, uid: u32, args: &[String]) -> Output {
    let rw = dir.join("rw");
    let rw = rw.to_str().expect("utf-8 path");
    let mut c = rvisor_command();
    // The root read-only, as natively (not the memory overlay).
    test_env(&mut c).args(["--overlay=none", "do", "--volume", &format!("{rw}:{rw}")]);
    if uid != 0 {
        c.args(["--user", &format!("{uid}:{uid}")]);
    }
    c.arg("--").arg(prog).arg(dir).args(args).stdin(Stdio::null());
    output_within(&mut c, RUN_LIMIT)
}

fn cases() -> Vec<Case> {
    let mut v = vec![
        case("argv_env", &["first", "second arg", ""]),
        case("write", &[]),
        case("brk", &[]),
        case("mmap", &[]),
        case("efault", &[]),
        case("enosys", &[]),
        case("clock", &[]),
        case("rlimit", &[]),
        case("misc", &[]),
        case("fd", &[]),
        case("proc", &[]),
        case("proc_ids", &[]),
        case("signals", &[]),
        case("timers", &[]),
        case("jobs", &[]),
        case("futex_pi", &[]),
        case("cputime", &[]),
        case("vdso", &[]),
        case("epoll", &[]),
        case("eventfiles", &[]),
        case("memfd", &[]),
        case("pty", &[]),
        case("procfmt", &[]),
        case("reopen", &[]),
        case("cow_threads", &[]),
    ];
    for code in [&["0"][..], &["7"], &["255"], &["256"], &["9", "exit"], &["3", "return"]] {
        v.push(case("exit", code));
    }
    for s in [
        "prot_none_read",
        "read_only_write",
        "unmapped_read",
        "null_read",
        "non_canonical",
        "exec_data",
        "int3",
        "ud2",
        "div0",
        "abort",
        "raise_term",
        "kill_self_kill",
    ] {
        v.push(case("segv", &[s]));
    }
    let host_pid = std::process::id().to_string();
    v.push(Case {
        prog: "identity",
        args: vec![host_pid, "rvisor".into()],
        namespaced: Some("rvisor"),
        files: None,
        tmpfs: false,
        overlay: false,
    });
    for p in [
        "files_open",
        "files_walk",
        "files_rw",
        "files_stat",
        "files_dir",
        "files_attr",
        "files_erofs",
        "files_mmap",
    ] {
        v.push(files_case(p, 0, &[]));
    }
    v.push(files_case("files_perm", NOBODY, &[]));
    v.push(files_case("mounts", 0, &[]));
    v.push(files_case("pipe", 0, &[]));
    v.push(files_case("unix", 0, &[]));
    v.push(files_case("inotify", 0, &[]));
    for c in ["bus_read", "bus_write_private", "bus_after_truncate"] {
        v.push(files_case("files_mmap", 0, &[c]));
    }
    // The same programs on a tmpfs and on an overlay.
    const LAYERED: [&str; 10] = [
        "files_open",
        "files_walk",
        "files_rw",
        "files_stat",
        "files_dir",
        "files_attr",
        "files_mmap",
        "pipe",
        "unix",
        "inotify",
    ];
    for make in [tmpfs_case as fn(&'static str, &[&str]) -> Case, overlay_case] {
        for p in LAYERED {
            v.push(make(p, &[]));
        }
        for c in ["bus_read", "bus_write_private", "bus_after_truncate"] {
            v.push(make("files_mmap", &[c]));
        }
    }
    v.push(overlay_case("overlay", &[]));
    for c in [
        "reexec",
        "dynamic",
        "shebang",
        "shebang_arg",
        "shebang_nested",
        "chain",
        "empty_argv",
        "errors",
        "execveat",
        "proc",
        "devices",
    ] {
        v.push(files_case("files_exec", 0, &[c]));
    }
    v
}

/// `program case-name` pairs whose result may differ, from EXCLUDED.
fn excluded() -> HashSet<(String, String)> {
    let text = std::fs::read_to_string(rvisor_tests::compat_src().join("EXCLUDED")).unwrap_or_default();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .filter_map(|l| {
            let (key, reason) = l.split_once(" -- ")?;
            assert!(!reason.trim().is_empty(), "exclusion without a reason: {l}");
            let (p, c) = key.trim().split_once(' ')?;
            Some((p.to_string(), c.trim().to_string()))
        })
        .collect()
}

fn keep_line(prog: &str, line: &str, ex: &HashSet<(String, String)>) -> bool {
    let name = line
        .strip_prefix("ok ")
        .or_else(|| line.strip_prefix("fail "))
        .or_else(|| line.strip_prefix("skip "))
        .map(|r| r.split(':').next().unwrap_or(r).trim());
    !name.is_some_and(|n| ex.contains(&(prog.to_string(), n.to_string())))
}

#[test]
fn compat_suite_native_vs_rvisor() {
    let ex = excluded();
    let mut failures = Vec::new();
    let mut ran = 0;
    for libc in [Libc::Glibc, Libc::GlibcPie, Libc::GlibcDynamic, Libc::Musl] {
        if !libc.available() {
            println!("skip {}: compiler not installed", libc.name());
            continue;
        }
        // RVISOR_COMPAT_ONLY=prog[,prog…] narrows a run while developing.
        let only = std::env::var("RVISOR_COMPAT_ONLY").ok();
        for c in cases() {
            if only.as_deref().is_some_and(|o| !o.split(',').any(|p| p == c.prog)) {
                continue;
            }
            let fs = if c.tmpfs {
                " (tmpfs)"
            } else if c.overlay {
                " (overlay)"
            } else {
                ""
            };
            let label = format!("{}{fs} {} [{}]", c.prog, c.args.join(" "), libc.name());
            let bin = build_c(c.prog, libc);
            if (c.namespaced.is_some() || c.files.is_some()) && !is_root() {
                println!("skip {label}: native run needs root (namespaces)");
                continue;
            }
            let fixture =
                std::env::temp_dir().join(format!("rvisor-compat-{}-{}", std::process::id(), c.prog));
            let (native, sandboxed) = match (c.namespaced, c.files) {
                (_, Some(_)) if c.overlay => {
                    make_fixture(&fixture);
                    let n = run_native_overlay(&bin, &fixture, &c.args);
                    make_fixture(&fixture);
                    let s = run_rvisor_overlay(&bin, &fixture, &c.args);
                    let _ = std::fs::remove_dir_all(&fixture);
                    (n, s)
                }
                (_, Some(_)) if c.tmpfs => {
                    make_fixture(&fixture);
                    let n = run_native_tmpfs(&bin, &fixture, &c.args);
                    make_fixture(&fixture);
                    let s = run_rvisor_tmpfs(&bin, &fixture, &c.args);
                    let _ = std::fs::remove_dir_all(&fixture);
                    (n, s)
                }
                (_, Some(uid)) => {
                    make_fixture(&fixture);
                    let n = run_native_files(&bin, &fixture, uid, &c.args);
                    make_fixture(&fixture);
                    let s = run_rvisor_files(&bin, &fixture, uid, &c.args);
                    let _ = std::fs::remove_dir_all(&fixture);
                    (n, s)
                }
                (Some(host), None) => {
                    (run_native_namespaced(&bin, &c.args, host), run_rvisor(&bin, &c.args, &[]))
                }
                (None, None) => (run_native(&bin, &c.args), run_rvisor(&bin, &c.args, &[])),
            };
            ran += 1;
            let n_out = String::from_utf8_lossy(&native.stdout);
            let s_out = String::from_utf8_lossy(&sandboxed.stdout);
            let n_lines: Vec<&str> = n_out.lines().filter(|l| keep_line(c.prog, l, &ex)).collect();
            let s_lines: Vec<&str> = s_out.lines().filter(|l| keep_line(c.prog, l, &ex)).collect();
            if let Some(l) = n_lines.iter().find(|l| l.starts_with("fail ")) {
                failures.push(format!("{label}: fails natively (the test is wrong): {l}"));
                continue;
            }
            let (nc, sc) = (shell_code(&native), shell_code(&sandboxed));
            if n_lines != s_lines || nc != sc || !sandboxed.stderr.is_empty() && native.stderr.is_empty() {
                let mut msg = format!("{label}: differs\n  native exit {nc}, rvisor exit {sc}\n");
                for (i, (a, b)) in n_lines.iter().zip(s_lines.iter()).enumerate() {
                    if a != b {
                        msg.push_str(&format!("  line {i}: native `{a}`, rvisor `{b}`\n"));
                    }
                }
                if n_lines.len() != s_lines.len() {
                    msg.push_str(&format!(
                        "  native printed {} lines, rvisor {}; rvisor's last: {:?}\n",
                        n_lines.len(),
                        s_lines.len(),
                        s_lines.last()
                    ));
                }
                let err = String::from_utf8_lossy(&sandboxed.stderr);
                if !err.is_empty() {
                    msg.push_str(&format!("  rvisor stderr: {}\n", err.trim()));
                }
                failures.push(msg);
            } else {
                println!("ok {label} ({} lines, exit {nc})", n_lines.len());
            }
        }
    }
    assert!(ran > 0, "nothing ran");
    assert!(failures.is_empty(), "{} of {ran} runs differ:\n{}", failures.len(), failures.join("\n"));
}
