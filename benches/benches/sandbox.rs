//! Whole-sandbox benchmarks, against native and gVisor's runsc (ptrace
//! platform) measured in the same run; `rvisor` is rvisor on its default
//! platform (systrap), `rvisor-ptrace` on its ptrace platform:
//!
//! - trapped `getpid`: a static program looping on the raw system call,
//!   timing itself; also the machine's raw same-CPU ptrace floor;
//! - start-up: wall time of `rvisor do` running a static no-op (fork, exec,
//!   boot, load, run, exit, reap), against running it natively and
//!   `runsc do`; also with `--overlay=none` (the root read-only, not under
//!   the memory overlay `do` uses by default);
//! - files: `openat`+`close` of a file and `newfstatat` of a 5-component
//!   path (`/tmp/rvisor-bench-PID/a/b/file`), raw system calls in a loop
//!   timed by the program itself (the sandbox reads the host's file
//!   through its gofer; also with `--overlay=none`);
//! - sequential read of a 100 MiB file in 64 KiB chunks (best pass);
//! - `clock_gettime` through the libc (the vDSO), also with rvisor's vDSO
//!   turned off (`--no-vdso`: every read traps);
//! - `python3 -c pass` start-up (median), also with `--no-vdso`;
//! - synchronisation: a futex ping-pong between two threads and a signal
//!   round trip (`raise` with a handler), timed by the program itself;
//! - processes: fork+exit+wait, fork+exec+wait of a static no-op, and a
//!   one-byte ping-pong between two processes over two pipes, timed by the
//!   program itself (best of 3 runs);
//! - event loops and local sockets: a 64-byte request/response round
//!   trip between two processes over a connected AF_UNIX stream socket
//!   and over a datagram socketpair, and two threads handing a token back
//!   and forth through eventfds each waits for in `epoll_wait` (two
//!   wake-ups per round trip), timed by the program itself, unpinned and
//!   with every process on CPU 0 (`taskset -c 0`);
//! - a gcc build of a small C project (`make -j2`, eight files and a
//!   link) in the sandbox, median of 3;
//! - idle memory: the proportional set size (PSS) of every process of a
//!   sandbox (sentry, gofer, stubs) while its application, a static
//!   program, blocks reading its stdin; the application's own share is
//!   shown apart (it costs the same natively).
//!
//! Run: `cargo build --release -p rvisor && cargo bench -p rvisor-benches
//! --bench sandbox`. Uses `target/x86_64-unknown-linux-gnu/release/rvisor`
//! (or `$RVISOR`), and `/usr/local/bin/runsc` when installed
//! (`../shared/peers/runsc/build-runsc.sh`).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rvisor_benches::{raw_floor, us};

fn build(name: &str) -> PathBuf {
    build_with(name, &[])
}

fn build_with(name: &str, flags: &[&str]) -> PathBuf {
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("programs").join(format!("{name}.c"));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let st = Command::new("gcc")
        .args(["-static", "-O2"])
        .args(flags)
        .arg("-o")
        .arg(&out)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(st.success(), "build {name}");
    out
}

fn rvisor() -> PathBuf {
    std::env::var_os("RVISOR").map(PathBuf::from).unwrap_or_else(|| {
        let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        root.join("target/x86_64-unknown-linux-gnu/release/rvisor")
    })
}

fn runsc() -> Option<PathBuf> {
    let p = PathBuf::from("/usr/local/bin/runsc");
    p.exists().then_some(p)
}

/// rvisor without its vDSO (clock reads trap).
const NO_VDSO: &str = "rvisor --no-vdso";
/// rvisor on the ptrace platform (the others run on systrap, the default).
const PTRACE: &str = "rvisor-ptrace";

/// rvisor with the host's root read-only instead of under the memory
/// overlay.
const NO_OVERLAY: &str = "rvisor --overlay=none";

/// The command line that runs `prog args` in each environment.
fn command(env: &str, prog: &Path, args: &[&str]) -> Command {
    let mut c = match env {
        "native" => Command::new(prog),
        "rvisor" => {
            let mut c = Command::new(rvisor());
            c.args(["do", "--"]).arg(prog);
            c
        }
        PTRACE => {
            let mut c = Command::new(rvisor());
            c.args(["--platform=ptrace", "do", "--"]).arg(prog);
            c
        }
        NO_VDSO => {
            let mut c = Command::new(rvisor());
            c.args(["--no-vdso", "do", "--"]).arg(prog);
            c
        }
        NO_OVERLAY => {
            let mut c = Command::new(rvisor());
            c.args(["--overlay=none", "do", "--"]).arg(prog);
            c
        }
        _ => {
            let mut c = Command::new(runsc().expect("runsc"));
            c.args(["--network=none", "--platform=ptrace", "do"]).arg(prog);
            c
        }
    };
    c.args(args).stdin(Stdio::null()).stderr(Stdio::null());
    c
}

/// `command`, with every process of it on CPU 0 (`taskset -c 0`): the
/// placement where a wake-up stays on one CPU.
fn pinned(c: &Command) -> Command {
    let mut p = Command::new("taskset");
    p.args(["-c", "0"]).arg(c.get_program()).args(c.get_args()).stdin(Stdio::null()).stderr(Stdio::null());
    p
}

/// Runs `prog OP N EXTRA…` (a program that prints its mean ns per
/// iteration) in each environment, best of 3, for each `(what, op,
/// [native, rvisor, runsc iterations])`, and prints ratios to native.
fn self_timed(envs: &[&str], prog: &Path, extra: &[&str], cases: &[(&str, &str, [u64; 3])]) {
    self_timed_placed(envs, prog, extra, cases, false);
}

/// [`self_timed`], optionally with everything on one CPU.
fn self_timed_placed(
    envs: &[&str],
    prog: &Path,
    extra: &[&str],
    cases: &[(&str, &str, [u64; 3])],
    pin: bool,
) {
    for &(what, op, counts) in cases {
        let mut native = 0.0;
        for env in envs {
            let n = match *env {
                "native" => counts[0],
                "rvisor" | PTRACE => counts[1],
                _ => counts[2],
            };
            let mut best = f64::MAX;
            for _ in 0..3 {
                let n_arg = n.to_string();
                let mut args = vec![op, n_arg.as_str()];
                args.extend_from_slice(extra);
                let c = command(env, prog, &args);
                let o = if pin { pinned(&c).output() } else { { c }.output() }.expect("run");
                assert!(o.status.success(), "{env} {op} loop failed");
                let v: f64 = String::from_utf8_lossy(&o.stdout).trim().parse().expect("number");
                best = best.min(v);
            }
            if *env == "native" {
                native = best;
            }
            let place = if pin { ", one CPU" } else { "" };
            println!(
                "{env}: {what}{place}: {:.1} us ({:.1}x native, {n} iterations)",
                best / 1000.0,
                best / native
            );
        }
    }
}

fn getpid_ns(env: &str, prog: &Path, n: u64) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..5 {
        let o = command(env, prog, &[&n.to_string()]).output().expect("run");
        assert!(o.status.success(), "{env} getpid loop failed");
        let v: f64 = String::from_utf8_lossy(&o.stdout).trim().parse().expect("number");
        best = best.min(v);
    }
    best
}

fn file_op_ns(env: &str, prog: &Path, op: &str, path: &Path, n: u64) -> f64 {
    let mut best = f64::MAX;
    let p = path.to_str().expect("utf-8 path");
    for _ in 0..5 {
        let o = command(env, prog, &[op, p, &n.to_string()]).output().expect("run");
        assert!(o.status.success(), "{env} {op} loop failed");
        let v: f64 = String::from_utf8_lossy(&o.stdout).trim().parse().expect("number");
        best = best.min(v);
    }
    best
}

/// Descendants of `pid`.
fn descendants(pid: u32) -> Vec<u32> {
    let mut kids: std::collections::HashMap<u32, Vec<u32>> = std::collections::HashMap::new();
    for e in std::fs::read_dir("/proc").expect("/proc").flatten() {
        let Ok(p) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else { continue };
        let ppid = stat.rsplit_once(')').and_then(|(_, r)| r.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(pp) = ppid {
            kids.entry(pp).or_default().push(p);
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![pid];
    while let Some(q) = stack.pop() {
        for &c in kids.get(&q).map_or(&[][..], Vec::as_slice) {
            out.push(c);
            stack.push(c);
        }
    }
    out
}

/// PSS of `pid` in KiB: in total, and of mappings of `file`.
fn pss(pid: u32, file: &Path) -> (u64, u64) {
    let Ok(smaps) = std::fs::read_to_string(format!("/proc/{pid}/smaps")) else { return (0, 0) };
    let (mut total, mut of_file, mut in_file) = (0, 0, false);
    let name = file.to_string_lossy();
    for line in smaps.lines() {
        if line
            .split_whitespace()
            .next()
            .is_some_and(|r| r.contains('-') && r.chars().all(|c| c.is_ascii_hexdigit() || c == '-'))
        {
            in_file = line.ends_with(&*name);
        } else if let Some(v) = line.strip_prefix("Pss:") {
            let kb: u64 = v.trim().trim_end_matches("kB").trim().parse().unwrap_or(0);
            total += kb;
            if in_file {
                of_file += kb;
            }
        }
    }
    (total, of_file)
}

/// Idle memory of a sandbox running `prog`: (all its processes, the
/// application's own file mappings) in KiB.
fn idle_pss(env: &str, prog: &Path) -> (u64, u64) {
    let mut c = command(env, prog, &[]);
    let mut child = c.stdin(Stdio::piped()).stdout(Stdio::null()).spawn().expect("start");
    std::thread::sleep(Duration::from_millis(1500));
    let (mut total, mut app) = (0, 0);
    for p in descendants(child.id()) {
        let (t, a) = pss(p, prog);
        total += t;
        app += a;
    }
    drop(child.stdin.take());
    let _ = child.wait();
    (total, app)
}

fn startup(env: &str, prog: &Path, runs: usize) -> (Duration, Duration) {
    let mut v: Vec<Duration> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let st = command(env, prog, &[]).status().expect("run");
            assert!(st.success(), "{env} no-op failed");
            t.elapsed()
        })
        .collect();
    v.sort_unstable();
    (v[v.len() / 2], v[v.len() * 9 / 10])
}

fn main() {
    let getpid = build("getpid_loop");
    let noop = build("noop");
    assert!(rvisor().exists(), "build rvisor first: cargo build --release -p rvisor");
    let mut envs = vec!["native", "rvisor", PTRACE];
    if runsc().is_some() {
        envs.push("runsc");
    } else {
        println!("runsc not installed: ../shared/peers/runsc/build-runsc.sh installs it");
    }

    let floor = raw_floor(0, 7, 20_000);
    println!("## getpid round trip (best of 5 runs)");
    println!("ptrace floor (same CPU): {} us", us(floor));
    let (mut rv, mut native) = (0.0, 0.0);
    for env in &envs {
        let n = match *env {
            "native" => 2_000_000,
            "rvisor" => 200_000,
            _ => 20_000,
        };
        let ns = getpid_ns(env, &getpid, n);
        match *env {
            PTRACE => rv = ns,
            "native" => native = ns,
            _ => {}
        }
        println!("{env}: {:.2} us per getpid ({:.1}x native, {n} calls)", ns / 1000.0, ns / native);
    }
    println!("rvisor-ptrace / ptrace floor: {:.2} (goal <= 1.3)", rv / (floor.as_secs_f64() * 1e9));
    // Both platforms again with every process on CPU 0 (where a wake-up
    // stays on one CPU).
    for env in ["rvisor", PTRACE] {
        let o = pinned(&command(env, &getpid, &["20000"])).output().expect("run");
        let ns: f64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap_or(f64::NAN);
        println!("{env}: {:.2} us per getpid, one CPU (20000 calls)", ns / 1000.0);
    }

    println!("## files (best of 5 runs)");
    let dir = std::env::temp_dir().join(format!("rvisor-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("a/b")).expect("bench dir");
    let file = dir.join("a/b/file");
    std::fs::write(&file, b"bench\n").expect("bench file");
    let file_ops = build("file_ops");
    let mut file_envs = envs.clone();
    file_envs.insert(2, NO_OVERLAY);
    for op in ["open", "stat"] {
        let what = if op == "open" { "openat+close" } else { "newfstatat, 5 components" };
        let mut native = 0.0;
        for env in &file_envs {
            let n = match *env {
                "native" => 200_000,
                "rvisor" | PTRACE | NO_OVERLAY => 20_000,
                _ => 5_000,
            };
            let ns = file_op_ns(env, &file_ops, op, &file, n);
            if *env == "native" {
                native = ns;
            }
            println!("{env}: {what}: {:.2} us ({:.1}x native, {n} calls)", ns / 1000.0, ns / native);
        }
    }
    let big = dir.join("big");
    let data: Vec<u8> = (0..100u32 << 20).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    std::fs::write(&big, &data).expect("100 MiB file");
    drop(data);
    let read_seq = build("read_seq");
    println!("## sequential read of 100 MiB in 64 KiB chunks (best of 10 passes)");
    let mut native = 0.0;
    for env in &envs {
        let o =
            command(env, &read_seq, &[big.to_str().expect("utf-8"), "65536", "10"]).output().expect("run");
        let mibs: f64 = String::from_utf8_lossy(&o.stdout).trim().parse().unwrap_or(0.0);
        if *env == "native" {
            native = mibs;
        }
        println!("{env}: {mibs:.0} MiB/s ({:.2}x native)", mibs / native);
    }
    let _ = std::fs::remove_dir_all(&dir);

    // The vDSO's worth: the same sandbox with clock reads trapping.
    let mut clock_envs = envs.clone();
    clock_envs.insert(2, NO_VDSO);
    println!("## clock_gettime(CLOCK_MONOTONIC) through the libc (best of 3 runs)");
    let clock = build("clock");
    for env in &clock_envs {
        let n: u64 = if *env == NO_VDSO { 20_000 } else { 2_000_000 };
        let best = (0..3)
            .map(|_| {
                let o = command(env, &clock, &["gettime", &n.to_string()]).output().expect("run");
                assert!(o.status.success(), "{env} clock loop failed");
                String::from_utf8_lossy(&o.stdout).trim().parse::<f64>().expect("number")
            })
            .fold(f64::MAX, f64::min);
        println!("{env}: {best:.1} ns per clock_gettime ({n} calls)");
    }

    if Path::new("/usr/bin/python3").exists() {
        println!("## python3 -c pass (median, p90)");
        let py = Path::new("/usr/bin/python3");
        for env in &clock_envs {
            let runs = if *env == "runsc" { 10 } else { 30 };
            let mut v: Vec<Duration> = (0..runs)
                .map(|_| {
                    let t = Instant::now();
                    let st = command(env, py, &["-c", "pass"]).status().expect("run");
                    assert!(st.success(), "{env} python3 failed");
                    t.elapsed()
                })
                .collect();
            v.sort_unstable();
            let (med, p90) = (v[v.len() / 2], v[v.len() * 9 / 10]);
            println!(
                "{env}: median {:.1} ms, p90 {:.1} ms ({runs} runs)",
                med.as_secs_f64() * 1e3,
                p90.as_secs_f64() * 1e3
            );
        }
    }

    println!("## synchronisation (best of 3 runs)");
    let sync = build_with("sync", &["-pthread"]);
    self_timed(
        &envs,
        &sync,
        &[],
        &[
            ("futex ping-pong round trip between two threads", "futex", [20_000, 2000, 500]),
            ("signal round trip (raise + handler + sigreturn)", "signal", [100_000, 5000, 1000]),
        ],
    );

    println!("## processes (best of 3 runs)");
    let procs = build("procs");
    let noop_path = noop.to_str().expect("utf-8 path");
    self_timed(
        &envs,
        &procs,
        &[noop_path],
        &[
            ("fork+exit+wait", "fork", [2000, 300, 100]),
            ("fork+exec+wait of a static no-op", "exec", [1000, 200, 50]),
            ("pipe ping-pong round trip", "pipe", [20_000, 2000, 500]),
        ],
    );

    println!("## event loops and local sockets (best of 3 runs; unpinned, then all on CPU 0)");
    let events = build_with("events", &["-pthread"]);
    let event_cases = [
        ("AF_UNIX stream request/response round trip (64 B, two processes)", "unix", [20_000, 2000, 500]),
        (
            "AF_UNIX datagram request/response round trip (64 B, two processes)",
            "unix-dgram",
            [20_000, 2000, 500],
        ),
        ("epoll_wait wake-up round trip (two threads, two eventfds)", "epoll", [20_000, 2000, 500]),
    ];
    self_timed_placed(&envs, &events, &[], &event_cases, false);
    self_timed_placed(&envs, &events, &[], &event_cases, true);

    println!("## idle memory: PSS of the sandbox's processes, application blocked on stdin");
    let wait = build("wait_stdin");
    for env in envs.iter().filter(|e| **e != "native") {
        let (total, app) = idle_pss(env, &wait);
        println!(
            "{env}: {:.2} MiB in all, of which the application's own pages {:.2} MiB: sandbox overhead {:.2} MiB",
            total as f64 / 1024.0,
            app as f64 / 1024.0,
            (total - app) as f64 / 1024.0
        );
    }

    println!("## gcc build of a small C project: make -j2 of 8 files and a link (median of 3)");
    let proj = std::env::temp_dir().join(format!("rvisor-bench-cc-{}", std::process::id()));
    std::fs::create_dir_all(&proj).expect("project dir");
    let mut objs = String::new();
    for i in 0..8 {
        let body: String = (0..40)
            .map(|j| format!("int f{i}_{j}(int x) {{ int s = 0; for (int k = 0; k < x; k++) s += k * {j} ^ x; return s; }}\n"))
            .collect();
        std::fs::write(
            proj.join(format!("m{i}.c")),
            format!("#include <stdio.h>\n#include <string.h>\n{body}"),
        )
        .expect("source");
        objs.push_str(&format!(" m{i}.o"));
    }
    std::fs::write(proj.join("main.c"), "int main(void) { return 0; }\n").expect("main");
    std::fs::write(
        proj.join("Makefile"),
        format!("prog: main.o{objs}\n\tgcc -o $@ $^\n%.o: %.c\n\tgcc -O2 -c $<\n"),
    )
    .expect("Makefile");
    let sh = Path::new("/bin/sh");
    let script = format!("cd {} && rm -f *.o prog && make -s -j2", proj.display());
    for env in &envs {
        let mut v: Vec<Duration> = (0..3)
            .map(|_| {
                let t = Instant::now();
                let st = command(env, sh, &["-c", &script]).status().expect("run");
                assert!(st.success(), "{env} build failed");
                t.elapsed()
            })
            .collect();
        v.sort_unstable();
        println!("{env}: median {:.2} s (3 runs)", v[1].as_secs_f64());
    }
    let _ = std::fs::remove_dir_all(&proj);

    println!("## start-up of a static no-op (median, p90)");
    for env in &file_envs {
        let runs = if *env == "runsc" { 20 } else { 100 };
        let (med, p90) = startup(env, &noop, runs);
        println!(
            "{env}: median {:.2} ms, p90 {:.2} ms ({runs} runs)",
            med.as_secs_f64() * 1e3,
            p90.as_secs_f64() * 1e3
        );
    }
}
