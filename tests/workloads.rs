//! Real programs: Debian's dynamically linked tools and busybox applets
//! run natively and under `rvisor do` must print the same and (for file
//! tools) leave the same tree behind. Reads come from
//! the host's root (served read-only by the gofer); writes go to a scratch
//! directory (under rvisor a `--volume` at the same path), rebuilt before
//! each run.

use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use rvisor_tests::{is_root, native_confined, rvisor_bin, shell_code, test_env};

const BUSYBOX: &str = "/bin/busybox";

fn scratch() -> PathBuf {
    std::env::temp_dir().join(format!("rvisor-workload-{}", std::process::id()))
}

fn fresh(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir.join("in/sub")).expect("scratch");
    std::fs::write(dir.join("in/a.txt"), "alpha\nbeta\ngamma\n").expect("write");
    std::fs::write(dir.join("in/sub/b.txt"), "b\n".repeat(1000)).expect("write");
    std::fs::set_permissions(dir.join("in/a.txt"), std::fs::Permissions::from_mode(0o640)).expect("chmod");
    std::os::unix::fs::symlink("a.txt", dir.join("in/link")).expect("symlink");
}

/// Everything under `dir`: path -> (kind and mode, size, contents or
/// link target). Times and inode numbers are left out.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            let m = std::fs::symlink_metadata(&p).expect("lstat");
            let rel = p.strip_prefix(dir).expect("prefix").to_string_lossy().into_owned();
            let what = if m.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).expect("readlink").display())
            } else if m.is_dir() {
                stack.push(p.clone());
                format!("dir {:o}", m.mode())
            } else {
                let body = std::fs::read(&p).expect("read");
                format!(
                    "file {:o} {} {:x}",
                    m.mode(),
                    m.len(),
                    body.iter().fold(0u64, |h, b| h.wrapping_mul(31) ^ u64::from(*b))
                )
            };
            out.insert(rel, what);
        }
    }
    out
}

fn run(sandboxed: bool, dir: &Path, args: &[&str]) -> Output {
    let mut c = if sandboxed {
        let mut c = Command::new(rvisor_bin());
        let d = dir.to_str().expect("utf-8");
        c.args(["do", "--volume", &format!("{d}:{d}"), "--cwd", d, "--", BUSYBOX]);
        c
    } else {
        // The host's root read-only, as rvisor serves it: a case that
        // writes outside the scratch directory cannot change the host.
        let mut argv = vec![std::ffi::OsStr::new(BUSYBOX)];
        argv.extend(args.iter().map(std::ffi::OsStr::new));
        let mut c = native_confined(&[dir], &[], &argv);
        c.current_dir(dir);
        return c.output().expect("run");
    };
    test_env(&mut c).args(args).stdin(Stdio::null());
    c.output().expect("run")
}

#[test]
fn busybox_file_tools_native_vs_rvisor() {
    if !Path::new(BUSYBOX).exists() {
        println!("skip: {BUSYBOX} is not installed (busybox-static)");
        return;
    }
    if !is_root() {
        println!("skip: the native runs need root (a read-only mount namespace)");
        return;
    }
    let dir = scratch();
    let cases: &[&[&str]] = &[
        &["cat", "/etc/os-release"],
        &["ls", "-lan", "/usr/share/doc/bash"],
        &["ls", "-la", "in"],
        &["wc", "-c", BUSYBOX],
        &["md5sum", BUSYBOX],
        &["find", "/usr/share/doc/bash"],
        &["du", "-s", "/usr/share/doc"],
        &["stat", "-c", "%n %s %a %u %g %F %h", "/etc/passwd", "/etc", BUSYBOX, "in/link", "in"],
        &["readlink", "in/link"],
        &["realpath", "in/link"],
        &["grep", "-r", "beta", "in"],
        &["sort", "-r", "in/a.txt"],
        &["head", "-c", "64", BUSYBOX],
        &["cp", "-a", "in", "out"],
        &["cp", "/etc/os-release", "in/sub/"],
        &["mkdir", "-p", "deep/a/b/c/d"],
        &["mv", "in/a.txt", "in/sub/moved.txt"],
        &["rm", "-r", "in/sub"],
        &["ln", "-s", "/etc/hostname", "hostlink"],
        &["touch", "in/new"],
        &["chmod", "-R", "go-rwx", "in"],
        &["tar", "-cf", "x.tar", "in"],
        &["truncate", "-s", "12345", "in/a.txt"],
        &["dd", "if=in/a.txt", "of=copy", "bs=3", "seek=2"],
        &["mkdir", "/etc/nope"],
        &["rm", "/etc/passwd"],
        &["cat", "/no/such/file"],
    ];
    let mut failures = Vec::new();
    for args in cases {
        fresh(&dir);
        let n = run(false, &dir, args);
        let n_tree = tree(&dir);
        fresh(&dir);
        let s = run(true, &dir, args);
        let s_tree = tree(&dir);
        let label = args.join(" ");
        if n.stdout != s.stdout {
            failures.push(format!(
                "{label}: stdout differs\n  native: {:?}\n  rvisor: {:?}",
                String::from_utf8_lossy(&n.stdout),
                String::from_utf8_lossy(&s.stdout)
            ));
        }
        if shell_code(&n) != shell_code(&s) {
            failures.push(format!(
                "{label}: exit {} natively, {} under rvisor (stderr: {})",
                shell_code(&n),
                shell_code(&s),
                String::from_utf8_lossy(&s.stderr).trim()
            ));
        }
        if n_tree != s_tree {
            failures.push(format!("{label}: trees differ\n  native: {n_tree:?}\n  rvisor: {s_tree:?}"));
        }
        if failures.is_empty() {
            println!("ok {label}");
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The programs the files-II issue names, as Debian ships them
/// (dynamically linked): each must print exactly what it prints natively.
#[test]
fn dynamically_linked_programs_native_vs_rvisor() {
    if !is_root() {
        println!("skip: the native runs need root (a read-only mount namespace)");
        return;
    }
    let cases: &[&[&str]] = &[
        &["/bin/ls", "-la", "/etc"],
        &["/bin/cat", "/etc/os-release"],
        &["/usr/bin/sha256sum", "/etc/passwd"],
        &["/usr/bin/find", "/usr/share/doc", "-maxdepth", "1", "-name", "lib*"],
        &["/usr/bin/python3", "-c", "import json,os; print(json.dumps(sorted(os.listdir(\"/etc\"))[:5]))"],
        &["/bin/sh", "-c", "echo $((6*7))"],
        &["/usr/bin/perl", "-e", "print \"ok\\n\""],
        &["/bin/sh", "-c", "exec /bin/echo exec from a shell"],
        &["/usr/bin/env", "-i", "/bin/sh", "-c", "echo scrubbed"],
    ];
    let mut failures = Vec::new();
    for args in cases {
        if !Path::new(args[0]).exists() {
            println!("skip {}: not installed", args[0]);
            continue;
        }
        let argv: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        let n = native_confined(&[], &[], &argv).output().expect("run natively");
        let mut c = Command::new(rvisor_bin());
        test_env(&mut c).args(["do", "--"]).args(*args).stdin(Stdio::null());
        let s = c.output().expect("run rvisor");
        let label = args.join(" ");
        if n.stdout != s.stdout || shell_code(&n) != shell_code(&s) {
            failures.push(format!(
                "{label}: differs (exit {} natively, {} under rvisor)\n  native: {:?}\n  rvisor: {:?}\n  rvisor stderr: {}",
                shell_code(&n),
                shell_code(&s),
                String::from_utf8_lossy(&n.stdout),
                String::from_utf8_lossy(&s.stdout),
                String::from_utf8_lossy(&s.stderr).trim()
            ));
        } else {
            println!("ok {label}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
