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

use rvisor_tests::{is_root, native_confined, rvisor_command, shell_code, test_env, Terminal};

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
    // Fixed times: archives of the tree (tar) must not depend on the
    // second each run made it in.
    for p in ["in/a.txt", "in/sub/b.txt", "in/link", "in/sub", "in"] {
        let c = std::ffi::CString::new(dir.join(p).as_os_str().as_encoded_bytes()).expect("path");
        let t = [libc::timespec { tv_sec: 1_700_000_000, tv_nsec: 0 }; 2];
        // SAFETY: a NUL-terminated path and two timespecs.
        let r = unsafe { libc::utimensat(libc::AT_FDCWD, c.as_ptr(), t.as_ptr(), libc::AT_SYMLINK_NOFOLLOW) };
        assert_eq!(r, 0, "utimensat {p}");
    }
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

/// What a native run and a sandboxed one of `label` printed, when they
/// differ.
fn differs(label: &str, n: &Output, s: &Output) -> String {
    format!(
        "{label}: differs (exit {} natively, {} under rvisor)\n  native: {:?}\n  rvisor: {:?}\n  rvisor stderr: {}",
        shell_code(n),
        shell_code(s),
        String::from_utf8_lossy(&n.stdout),
        String::from_utf8_lossy(&s.stdout),
        String::from_utf8_lossy(&s.stderr).trim()
    )
}

fn run(sandboxed: bool, dir: &Path, args: &[&str]) -> Output {
    let mut c = if sandboxed {
        let mut c = rvisor_command();
        let d = dir.to_str().expect("utf-8");
        // The root read-only, as natively (not the memory overlay).
        c.args(["--overlay=none", "do", "--volume", &format!("{d}:{d}"), "--cwd", d, "--", BUSYBOX]);
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
        let mut c = rvisor_command();
        test_env(&mut c).args(["--overlay=none", "do", "--"]).args(*args).stdin(Stdio::null());
        let s = c.output().expect("run rvisor");
        let label = args.join(" ");
        if n.stdout != s.stdout || shell_code(&n) != shell_code(&s) {
            failures.push(differs(&label, &n, &s));
        } else {
            println!("ok {label}");
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A shell script that forks, pipes, waits and signals: background jobs,
/// `wait`, exit statuses, a trapped signal, `kill` of a child.
const SHELL_SCRIPT: &str = r#"echo a | tr a b
(exit 3); echo "status $?"
for i in 1 2 3; do echo "job $i" & done; wait
( sleep 5 & k=$!; kill $k; wait $k; echo "killed $?" >&3 ) 3>&1 2>/dev/null
trap 'echo trapped' USR1; sh -c 'kill -USR1 $PPID'; echo after
seq 1 20 | xargs -n 3 echo | wc -l
v=$(echo sub; exit 4); echo "$v $?"
"#;

/// A Makefile project of three C files, built with `make -j2`.
fn make_project(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).expect("project dir");
    let files = [
        ("a.c", "int twice(int x) { return 2 * x; }\n"),
        ("b.c", "int plus(int x, int y) { return x + y; }\n"),
        (
            "main.c",
            "#include <stdio.h>\nint twice(int);\nint plus(int, int);\n\
             int main(void) { printf(\"%d\\n\", plus(twice(20), 2)); return 0; }\n",
        ),
        ("Makefile", "prog: a.o b.o main.o\n\t$(CC) -o $@ $^\n%.o: %.c\n\t$(CC) -O1 -c -o $@ $<\n"),
    ];
    for (name, body) in files {
        std::fs::write(dir.join(name), body).expect("project file");
    }
}

/// Multi-process workloads: shells (dash, bash, busybox sh) running
/// pipelines, background jobs and signals; Python's subprocess; sixteen
/// threads on one mutex; `make -j2` driving gcc. Each prints (and builds)
/// what it does natively.
#[test]
fn process_workloads_native_vs_rvisor() {
    if !is_root() {
        println!("skip: the native runs need root (a read-only mount namespace)");
        return;
    }
    let threads = rvisor_tests::build_program("threads");
    let threads = threads.to_str().expect("utf-8 path");
    // Not `scratch()`: the file-tools test runs at the same time.
    let dir = std::env::temp_dir().join(format!("rvisor-procs-{}", std::process::id()));
    let sorted = format!("( {SHELL_SCRIPT} ) 2>&1 | sort");
    let python = "import subprocess, sys\n\
        print(subprocess.check_output([\"echo\", \"hi\"]))\n\
        print(subprocess.check_output(['/bin/echo', 'hi']).decode(), end='')\n\
        print(subprocess.run(['/bin/sh', '-c', 'exit 7']).returncode)\n\
        p = subprocess.Popen(['/bin/cat'], stdin=subprocess.PIPE, stdout=subprocess.PIPE)\n\
        print(p.communicate(b'piped through cat')[0].decode())\n\
        print(subprocess.run([sys.executable, '-c', 'import os; os.kill(os.getpid(), 15)']).returncode)\n";
    // The issue's own line, verbatim.
    let verbatim =
        "/bin/sh -c 'echo a | tr a b; (exit 3); echo $?; for i in 1 2 3; do echo $i & done; wait' | sort";
    let python_timers = "import signal, time\n\
        hits = []\n\
        signal.signal(signal.SIGALRM, lambda s, f: hits.append(s))\n\
        signal.alarm(1)\n\
        time.sleep(3)\n\
        print('alarm', hits)\n\
        signal.setitimer(signal.ITIMER_REAL, 0.05, 0.05)\n\
        while len(hits) < 4: time.sleep(0.01)\n\
        signal.setitimer(signal.ITIMER_REAL, 0)\n\
        print('itimer', len(hits))\n";
    let python_threads =
        "import threading,time; ts=[threading.Thread(target=time.sleep,args=(0.05,)) for _ in range(8)]; \
        [t.start() for t in ts]; [t.join() for t in ts]; print(\"ok\")";
    // Readiness and local sockets (issue 9): the issue's epoll line,
    // verbatim, and an asyncio echo server on a unix socket in the scratch
    // directory with 50 concurrent clients.
    let python_epoll = "import select,os; r,w=os.pipe(); e=select.epoll(); \
        e.register(r, select.EPOLLIN|select.EPOLLET); os.write(w,b\"x\"); print(e.poll(1))";
    let python_asyncio = "import asyncio, os\n\
        path = os.path.join(os.environ['TMPDIR'], 'echo.sock')\n\
        async def handle(r, w):\n\
        \x20   while data := await r.readline():\n\
        \x20       w.write(data); await w.drain()\n\
        \x20   w.close()\n\
        async def client(i):\n\
        \x20   r, w = await asyncio.open_unix_connection(path)\n\
        \x20   got = []\n\
        \x20   for j in range(3):\n\
        \x20       w.write(b'%d-%d\\n' % (i, j)); await w.drain()\n\
        \x20       got.append(await r.readline())\n\
        \x20   w.close(); await w.wait_closed()\n\
        \x20   return got == [b'%d-%d\\n' % (i, j) for j in range(3)]\n\
        async def main():\n\
        \x20   srv = await asyncio.start_unix_server(handle, path)\n\
        \x20   res = await asyncio.gather(*(client(i) for i in range(50)))\n\
        \x20   srv.close(); await srv.wait_closed()\n\
        \x20   os.unlink(path)\n\
        \x20   print('echoed for', sum(res), 'of', len(res), 'clients')\n\
        asyncio.run(main())\n";
    let cases: Vec<Vec<&str>> = vec![
        vec!["/bin/sh", "-c", verbatim],
        vec!["/bin/sh", "-c", &sorted],
        vec!["/bin/bash", "-c", &sorted],
        vec![BUSYBOX, "sh", "-c", &sorted],
        vec!["/usr/bin/python3", "-c", python],
        vec![threads],
        vec!["/usr/bin/make", "-s", "-j2", "CC=/usr/bin/gcc"],
        vec!["./prog"],
        // Signals and timers (processes II): a trapped signal while a job
        // runs, coreutils' timeout (exit 124), Python's alarm and
        // setitimer handlers, threads sleeping.
        vec!["/bin/bash", "-c", "trap \"echo trapped\" USR1; kill -USR1 $$; sleep 0.2 & wait"],
        vec!["/usr/bin/timeout", "0.2", "sleep", "5"],
        vec!["/usr/bin/python3", "-c", python_timers],
        vec!["/usr/bin/python3", "-c", python_threads],
        vec!["/usr/bin/python3", "-c", python_epoll],
        vec!["/usr/bin/python3", "-c", python_asyncio],
    ];
    let mut failures = Vec::new();
    let mut built = BTreeMap::new();
    make_project(&dir);
    for args in &cases {
        if !args[0].starts_with('.') && !Path::new(args[0]).exists() {
            println!("skip {}: not installed", args[0]);
            continue;
        }
        let mut outs = Vec::new();
        for sandboxed in [false, true] {
            // Each side builds (and then runs) its own copy of the project.
            if args[0] == "/usr/bin/make" {
                make_project(&dir);
            }
            let o = if sandboxed {
                let d = dir.to_str().expect("utf-8");
                let mut c = rvisor_command();
                test_env(&mut c)
                    .env("TMPDIR", d)
                    .args([
                        "--overlay=none",
                        "do",
                        "--volume",
                        &format!("{d}:{d}"),
                        "--cwd",
                        d,
                        "-e",
                        &format!("TMPDIR={d}"),
                        "--",
                    ])
                    .args(args)
                    .stdin(Stdio::null());
                rvisor_tests::output_within(&mut c, rvisor_tests::RUN_LIMIT)
            } else {
                let argv: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
                let mut c = native_confined(&[&dir], &[], &argv);
                c.current_dir(&dir).env("TMPDIR", &dir);
                rvisor_tests::output_within(&mut c, rvisor_tests::RUN_LIMIT)
            };
            if args[0] == "/usr/bin/make" {
                built.insert(sandboxed, tree(&dir));
            }
            outs.push(o);
        }
        let (n, s) = (&outs[0], &outs[1]);
        let label = args.join(" ");
        if n.stdout != s.stdout || shell_code(n) != shell_code(s) {
            failures.push(differs(&label, n, s));
        } else {
            println!("ok {label}: {:?}", String::from_utf8_lossy(&s.stdout));
        }
    }
    if built.get(&false) != built.get(&true) {
        failures.push(format!(
            "make -j2 built different trees\n  native: {:?}\n  rvisor: {:?}",
            built[&false], built[&true]
        ));
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `/proc` and `/sys` describe the sandbox (issue 10): each command runs
/// under rvisor and natively in a fresh pid and mount namespace with its
/// own `/proc` (`unshare --pid --fork --mount-proc`), where Linux shows
/// exactly the namespace's processes, and must print the same.
#[test]
fn proc_and_sys_native_vs_rvisor() {
    if !is_root() {
        println!("skip: the native runs need root (pid and mount namespaces)");
        return;
    }
    let cases: &[&str] = &[
        // The issue's `ps` line: the sandbox's processes, pid 1 first.
        "sleep 1 & ps -eo pid,ppid,comm",
        "python3 -c 'import os,multiprocessing; print(multiprocessing.cpu_count(), os.cpu_count())'",
        // The sandbox's memory is the host's here (no limit is set).
        "free -m | awk '/^Mem:/ {print $1, $2}'",
        "awk '/^(MemTotal|SwapTotal):/' /proc/meminfo",
        "python3 -c 'import os; print(os.sysconf(\"SC_NPROCESSORS_ONLN\"), os.sysconf(\"SC_PHYS_PAGES\") * os.sysconf(\"SC_PAGE_SIZE\") // 2**20)'",
        "cat /sys/devices/system/cpu/online /sys/devices/system/cpu/possible",
        "grep -c ^processor /proc/cpuinfo",
        "test \"$(cat /proc/sys/kernel/osrelease)\" = \"$(uname -r)\" && test \"$(cat /proc/sys/kernel/hostname)\" = \"$(hostname)\" && echo names agree",
        "test \"$(ulimit -n)\" = \"$(awk '/^Max open files/ {print $4}' /proc/self/limits)\" && echo limits agree",
        "echo 500 > /proc/self/oom_score_adj && cat /proc/self/oom_score_adj",
        "ls /proc/self/task | wc -l; ls /proc/self/ns",
        "python3 -c 'import os; s=open(\"/proc/self/stat\").read().split(); print(s[0] == str(os.getpid()), s[3] == str(os.getppid()))'",
        "exec 5</etc/hostname; read x <&5; awk '/^(pos|flags):/' /proc/self/fdinfo/5 | sed 's/^flags:\\t0*/flags: /'",
        "top -b -n 1 | sed -n 's/^Tasks: *\\([0-9]*\\) total.*/tasks \\1/p'",
        // Natively the host's /proc is listed too, under the new one.
        "awk '$5 == \"/proc\" {t=$9\" \"$6} END {print t}' /proc/self/mountinfo; grep '^proc /proc ' /proc/mounts | tail -1",
    ];
    let mut failures = Vec::new();
    for script in cases {
        let mut native = Command::new("unshare");
        test_env(&mut native).args([
            "--pid",
            "--fork",
            "--mount",
            "--mount-proc",
            "--propagation",
            "private",
            "--",
        ]);
        native.args(["/bin/sh", "-c", script]).stdin(Stdio::null());
        let n = rvisor_tests::output_within(&mut native, rvisor_tests::RUN_LIMIT);
        let mut c = rvisor_command();
        test_env(&mut c).args(["do", "--", "/bin/sh", "-c", script]).stdin(Stdio::null());
        let s = rvisor_tests::output_within(&mut c, rvisor_tests::RUN_LIMIT);
        if n.stdout != s.stdout || shell_code(&n) != shell_code(&s) || n.stdout.is_empty() {
            failures.push(differs(script, &n, &s));
        } else {
            println!("ok {script}: {:?}", String::from_utf8_lossy(&s.stdout));
        }
    }
    // What has no native twin: the sandbox's own mounts and their sizes.
    let mut c = rvisor_command();
    test_env(&mut c).args(["do", "--", "/bin/sh", "-c", "mount; df -h /"]).stdin(Stdio::null());
    let s = rvisor_tests::output_within(&mut c, rvisor_tests::RUN_LIMIT);
    let out = String::from_utf8_lossy(&s.stdout);
    for want in [
        "proc on /proc type proc (rw,nosuid,nodev,noexec,relatime)",
        "sysfs on /sys type sysfs",
        " on / type ",
    ] {
        if !out.contains(want) {
            failures.push(format!("mount: no {want:?} in {out:?}"));
        }
    }
    if !s.status.success() || !out.lines().any(|l| l.ends_with(" /") && l.contains('%')) {
        failures.push(format!("df -h /: {out:?} {}", String::from_utf8_lossy(&s.stderr)));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The memory overlay, `rvisor do`'s default root (issue 10): the issue's
/// line succeeds inside, the host is unchanged afterwards, a second
/// sandbox does not see the first one's changes, and `--overlay=none`
/// keeps the root read-only.
#[test]
fn memory_overlay_keeps_writes_in_the_sandbox() {
    let marker = format!("/etc/rvisor-overlay-test-{}", std::process::id());
    let line = format!(
        "echo x > {marker} && cat {marker} && rm /usr/bin/env && ! ls /usr/bin/env 2>/dev/null && \
         echo more >> /etc/hostname && rm -r /usr/share/doc/bash && mkdir -p /opt/new/dir && echo done"
    );
    let mut c = rvisor_command();
    test_env(&mut c).args(["do", "--", "/bin/sh", "-c", &line]).stdin(Stdio::null());
    let s = rvisor_tests::output_within(&mut c, rvisor_tests::RUN_LIMIT);
    assert_eq!(
        String::from_utf8_lossy(&s.stdout),
        "x\ndone\n",
        "stderr: {}",
        String::from_utf8_lossy(&s.stderr)
    );
    assert!(s.status.success());
    assert!(!Path::new(&marker).exists(), "{marker} reached the host");
    assert!(Path::new("/usr/bin/env").exists(), "/usr/bin/env was removed on the host");
    assert!(Path::new("/usr/share/doc/bash").exists() || !Path::new("/usr/share/doc").exists());
    assert!(!Path::new("/opt/new").exists(), "/opt/new reached the host");
    let hostname = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    assert!(!hostname.contains("more"), "/etc/hostname changed on the host");
    // A new sandbox starts from the host's files again.
    let mut c = rvisor_command();
    test_env(&mut c)
        .args([
            "do",
            "--",
            "/bin/sh",
            "-c",
            &format!("test ! -e {marker} && test -e /usr/bin/env && echo fresh"),
        ])
        .stdin(Stdio::null());
    let s = rvisor_tests::output_within(&mut c, rvisor_tests::RUN_LIMIT);
    assert_eq!(String::from_utf8_lossy(&s.stdout), "fresh\n");
    // Without the overlay the root is read-only.
    let mut c = rvisor_command();
    test_env(&mut c)
        .args(["--overlay=none", "do", "--", "/bin/sh", "-c", &format!("echo x > {marker}")])
        .stdin(Stdio::null());
    let s = rvisor_tests::output_within(&mut c, rvisor_tests::RUN_LIMIT);
    assert!(!s.status.success());
    assert!(
        String::from_utf8_lossy(&s.stderr).contains("Read-only file system"),
        "{}",
        String::from_utf8_lossy(&s.stderr)
    );
}

/// The user's session of the issue: an interactive bash on a terminal
/// echoes and edits a line, runs commands, is not killed by Ctrl-C (the
/// running `sleep` is), stops and kills a job with Ctrl-Z, follows a
/// window resize (`stty size`, and `$COLUMNS` via SIGWINCH), and exits with
/// its status. The same script drives bash natively on a host pty and
/// `rvisor do -t bash` (whose console bridges the host pty).
fn terminal_session(mut cmd: Command) -> Result<(), String> {
    use std::time::Duration;
    let long = Duration::from_secs(30);
    let mut t = Terminal::spawn(&mut cmd, 24, 80);
    let prompt = "rv$ ";
    t.expect(prompt, long)?;
    // Readline edits: a typo erased with DEL.
    t.send("echo helx\x7flo wor\x7f\x7frld\r");
    t.expect("hello wrld\r\n", long)?;
    t.expect(prompt, long)?;
    // The line discipline edits (canonical read by `read`).
    // (The prompt is not in the echoed command line: "say2:".)
    t.send("read -p say$((1+1)): v; echo got:$v.\r");
    t.expect("say2:", long)?;
    t.send("ab\x7fc one\x17two\r");
    t.expect("got:ac two.\r\n", long)?;
    t.expect(prompt, long)?;
    // Ctrl-C interrupts the foreground job, not the shell.
    t.send("sleep 10; echo not-interrupted\r");
    std::thread::sleep(Duration::from_millis(700));
    let start = std::time::Instant::now();
    t.send("\x03");
    t.expect(prompt, long)?;
    if start.elapsed() > Duration::from_secs(8) {
        return Err(format!("Ctrl-C took {:?}", start.elapsed()));
    }
    t.send("echo status $?\r");
    t.expect("status 130\r\n", long)?;
    t.expect(prompt, long)?;
    // Ctrl-Z stops the job; the shell takes the terminal back.
    t.send("sleep 20\r");
    std::thread::sleep(Duration::from_millis(700));
    t.send("\x1a");
    t.expect("Stopped", long)?;
    t.expect(prompt, long)?;
    t.send("kill -9 %1; sleep 0.3\r");
    t.expect("Killed", long)?;
    t.expect(prompt, long)?;
    // A resize reaches the terminal's size and the shell (SIGWINCH).
    t.resize(33, 101);
    std::thread::sleep(Duration::from_millis(300));
    t.send("stty size; echo cols=$COLUMNS\r");
    t.expect("33 101\r\n", long)?;
    t.expect("cols=101\r\n", long)?;
    t.expect(prompt, long)?;
    t.send("tty | sed 's/[0-9]*$/N/'; exit 7\r");
    t.expect("/dev/pts/N\r\n", long)?;
    let end = std::time::Instant::now() + long;
    loop {
        if let Some(st) = t.child.try_wait().map_err(|e| e.to_string())? {
            return if st.code() == Some(7) { Ok(()) } else { Err(format!("exit status {st:?}, want 7")) };
        }
        if std::time::Instant::now() > end {
            let _ = t.child.kill();
            return Err("bash did not exit".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn interactive_bash_on_a_terminal_native_vs_rvisor() {
    let bash_args = ["bash", "--norc", "--noprofile", "-i"];
    let env = |c: &mut Command| {
        test_env(c).env("PS1", "rv$ ").env("TERM", "dumb");
    };
    let mut native = Command::new("/bin/bash");
    env(&mut native);
    native.args(&bash_args[1..]);
    let mut sandboxed = rvisor_command();
    env(&mut sandboxed);
    sandboxed.args(["do", "-t", "--"]).args(bash_args);
    let n = terminal_session(native);
    let s = terminal_session(sandboxed);
    assert!(n.is_ok() && s.is_ok(), "native: {n:?}\nrvisor: {s:?}");
}

/// `-t` wants a terminal: with none, `rvisor do -t` says so and fails.
#[test]
fn tty_flag_needs_a_terminal() {
    let mut c = rvisor_command();
    test_env(&mut c).args(["do", "-t", "--", "/bin/true"]).stdin(Stdio::null());
    let o = rvisor_tests::output_within(&mut c, rvisor_tests::RUN_LIMIT);
    assert_eq!(shell_code(&o), 125, "{o:?}");
    assert!(String::from_utf8_lossy(&o.stderr).contains("not a terminal"), "{o:?}");
}
