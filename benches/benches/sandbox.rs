//! Whole-sandbox benchmarks, against native and gVisor's runsc (ptrace
//! platform) measured in the same run:
//!
//! - trapped `getpid`: a static program looping on the raw system call,
//!   timing itself; also the machine's raw same-CPU ptrace floor;
//! - start-up: wall time of `rvisor do` running a static no-op (fork, exec,
//!   boot, load, run, exit, reap), against running it natively and
//!   `runsc do`;
//! - files: `openat`+`close` of a file and `newfstatat` of a 5-component
//!   path (`/tmp/rvisor-bench-PID/a/b/file`), raw system calls in a loop
//!   timed by the program itself (the sandbox reads the host's file
//!   through its gofer).
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
    let src = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("programs").join(format!("{name}.c"));
    let out = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(name);
    let st = Command::new("gcc").args(["-static", "-O2", "-o"]).arg(&out).arg(&src).status().expect("gcc");
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

/// The command line that runs `prog args` in each environment.
fn command(env: &str, prog: &Path, args: &[&str]) -> Command {
    let mut c = match env {
        "native" => Command::new(prog),
        "rvisor" => {
            let mut c = Command::new(rvisor());
            c.args(["do", "--"]).arg(prog);
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
    let mut envs = vec!["native", "rvisor"];
    if runsc().is_some() {
        envs.push("runsc");
    } else {
        println!("runsc not installed: ../shared/peers/runsc/build-runsc.sh installs it");
    }

    let floor = raw_floor(0, 7, 20_000);
    println!("## getpid round trip (best of 5 runs)");
    println!("ptrace floor (same CPU): {} us", us(floor));
    let mut rv = 0.0;
    for env in &envs {
        let n = if *env == "native" { 2_000_000 } else { 20_000 };
        let ns = getpid_ns(env, &getpid, n);
        if *env == "rvisor" {
            rv = ns;
        }
        println!("{env}: {:.2} us per getpid ({n} calls)", ns / 1000.0);
    }
    println!("rvisor / ptrace floor: {:.2} (goal <= 1.3)", rv / (floor.as_secs_f64() * 1e9));

    println!("## files (best of 5 runs)");
    let dir = std::env::temp_dir().join(format!("rvisor-bench-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("a/b")).expect("bench dir");
    let file = dir.join("a/b/file");
    std::fs::write(&file, b"bench\n").expect("bench file");
    let file_ops = build("file_ops");
    for op in ["open", "stat"] {
        let what = if op == "open" { "openat+close" } else { "newfstatat, 5 components" };
        let mut native = 0.0;
        for env in &envs {
            let n = match *env {
                "native" => 200_000,
                "rvisor" => 20_000,
                _ => 5_000,
            };
            let ns = file_op_ns(env, &file_ops, op, &file, n);
            if *env == "native" {
                native = ns;
            }
            println!("{env}: {what}: {:.2} us ({:.1}x native, {n} calls)", ns / 1000.0, ns / native);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);

    println!("## start-up of a static no-op (median, p90)");
    for env in &envs {
        let runs = if *env == "runsc" { 20 } else { 100 };
        let (med, p90) = startup(env, &noop, runs);
        println!(
            "{env}: median {:.2} ms, p90 {:.2} ms ({runs} runs)",
            med.as_secs_f64() * 1e3,
            p90.as_secs_f64() * 1e3
        );
    }
}
