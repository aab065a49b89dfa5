//! Docker (`--runtime=rvisor`) and containerd (`ctr run --runc-binary`)
//! against runc: every case runs the same commands under both runtimes on
//! the same locally built image and compares what they print, their exit
//! statuses and their effects on the host.
//!
//! Needs the environment `scripts/docker-env.sh` makes (root, dockerd and
//! containerd running, rvisor registered, the `rvisor-test/busybox` and
//! `rvisor-test/python` images). `scripts/test.sh` sets it up and sets
//! `RVISOR_DOCKER_TESTS=1`, which makes a missing environment a failure;
//! without it the tests say why they are skipped.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rvisor_tests::{rvisor_bin, Terminal};

const BUSYBOX: &str = "rvisor-test/busybox";
const PYTHON: &str = "rvisor-test/python";
const RUNTIMES: [&str; 2] = ["runc", "rvisor"];
/// Longest any one docker command may take.
const LIMIT: Duration = Duration::from_secs(120);

/// Whether the environment is there; `None` (skip) only when it was not
/// asked for.
fn ready() -> bool {
    let wanted = std::env::var_os("RVISOR_DOCKER_TESTS").is_some_and(|v| v == "1");
    let why = if !rvisor_tests::is_root() {
        Some("not root".to_string())
    } else {
        let info = run(Command::new("docker").args(["info", "--format", "{{json .Runtimes}}"]));
        let images = run(Command::new("docker").args(["image", "inspect", BUSYBOX, PYTHON]));
        if !info.status.success() {
            Some(format!("docker info: {}", String::from_utf8_lossy(&info.stderr).trim()))
        } else if !String::from_utf8_lossy(&info.stdout).contains("\"rvisor\"") {
            Some("rvisor is not a registered Docker runtime".into())
        } else if !images.status.success() {
            Some("the test images are missing".into())
        } else {
            None
        }
    };
    match why {
        None => true,
        Some(w) if wanted => panic!("the Docker test environment is missing: {w} (scripts/docker-env.sh)"),
        Some(w) => {
            eprintln!("skip: {w} (run scripts/docker-env.sh and set RVISOR_DOCKER_TESTS=1)");
            false
        }
    }
}

fn run(cmd: &mut Command) -> Output {
    rvisor_tests::output_within(cmd.stdin(Stdio::null()), LIMIT)
}

fn docker(args: &[&str]) -> Output {
    run(Command::new("docker").args(args))
}

/// Stdout, stderr and the exit code, as one transcript.
fn transcript(o: &Output) -> String {
    format!(
        "out:{}|err:{}|code:{}",
        String::from_utf8_lossy(&o.stdout).trim_end(),
        String::from_utf8_lossy(&o.stderr).trim_end(),
        rvisor_tests::shell_code(o)
    )
}

/// `docker run --rm --runtime=RT EXTRA… IMAGE CMD…`.
fn docker_run(rt: &str, extra: &[&str], image: &str, cmd: &[&str]) -> Output {
    let rt = format!("--runtime={rt}");
    let mut args = vec!["run", "--rm", rt.as_str()];
    args.extend_from_slice(extra);
    args.push(image);
    args.extend_from_slice(cmd);
    docker(&args)
}

/// A fresh host directory for a runtime's case (removed first).
fn scratch(name: &str, rt: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("rvisor-docker-{}-{name}-{rt}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("scratch dir");
    d
}

fn owner(p: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).map_or_else(|e| format!("{e}"), |m| format!("{}:{}", m.uid(), m.gid()))
}

/// A named detached container (removed first, and by the caller after).
fn start_detached(rt: &str, name: &str, script: &str) -> Result<(), String> {
    let _ = docker(&["rm", "-f", name]);
    let rtf = format!("--runtime={rt}");
    let o = docker(&["run", "-d", "--name", name, &rtf, BUSYBOX, "sh", "-c", script]);
    if !o.status.success() {
        return Err(format!("docker run -d: {}", transcript(&o)));
    }
    // Until the script has said it is ready.
    let end = Instant::now() + Duration::from_secs(30);
    while Instant::now() < end {
        if String::from_utf8_lossy(&docker(&["logs", name]).stdout).contains("ready") {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("{name} never said ready: {}", transcript(&docker(&["logs", name]))))
}

fn remove(name: &str) {
    let _ = docker(&["rm", "-f", name]);
}

fn inspect(name: &str, what: &str) -> String {
    String::from_utf8_lossy(&docker(&["inspect", name, "--format", what]).stdout).trim().to_string()
}

type Case = (&'static str, fn(&str) -> Result<String, String>);

/// The simple cases: one `docker run` each.
fn one_shot_cases() -> Vec<Case> {
    vec![
        ("echo", |rt| Ok(transcript(&docker_run(rt, &[], BUSYBOX, &["echo", "hello", "world"])))),
        ("exit_code", |rt| Ok(transcript(&docker_run(rt, &[], BUSYBOX, &["sh", "-c", "exit 42"])))),
        ("env", |rt| {
            Ok(transcript(&docker_run(rt, &["-e", "FOO=bar baz"], BUSYBOX, &["sh", "-c", "echo \"$FOO\""])))
        }),
        ("workdir", |rt| Ok(transcript(&docker_run(rt, &["-w", "/tmp"], BUSYBOX, &["pwd"])))),
        ("user", |rt| Ok(transcript(&docker_run(rt, &["-u", "1000:1000"], BUSYBOX, &["id"])))),
        ("volume_read_write", |rt| {
            let d = scratch("vol", rt);
            std::fs::write(d.join("in.txt"), "from the host\n").map_err(|e| e.to_string())?;
            let v = format!("{}:/data", d.display());
            let o = docker_run(
                rt,
                &["-v", &v],
                BUSYBOX,
                &["sh", "-c", "cat /data/in.txt; echo written > /data/out.txt"],
            );
            let u = docker_run(
                rt,
                &["-v", &v, "-u", "1000:1000"],
                BUSYBOX,
                &["sh", "-c", "echo x > /data/u.txt"],
            );
            let r = format!(
                "{} host:{:?} owner:{} user:{} exists:{}",
                transcript(&o),
                std::fs::read_to_string(d.join("out.txt")).unwrap_or_default(),
                owner(&d.join("out.txt")),
                rvisor_tests::shell_code(&u),
                d.join("u.txt").exists()
            );
            let _ = std::fs::remove_dir_all(&d);
            Ok(r)
        }),
        ("read_only_root", |rt| Ok(transcript(&docker_run(rt, &["--read-only"], BUSYBOX, &["touch", "/x"])))),
        ("tmpfs", |rt| {
            let script = "echo a > /run/a && cat /run/a && grep ' /run ' /proc/mounts | cut -d' ' -f1-3";
            Ok(transcript(&docker_run(rt, &["--tmpfs", "/run"], BUSYBOX, &["sh", "-c", script])))
        }),
        ("memory_limit", |rt| {
            // 200 MiB of real bytes under a 64 MiB limit: OOM-killed.
            let name = format!("rvisor-test-mem-{rt}");
            remove(&name);
            let rtf = format!("--runtime={rt}");
            let o = docker(&[
                "run",
                "--name",
                &name,
                &rtf,
                "--memory",
                "64m",
                PYTHON,
                "python3",
                "-c",
                "x = b'a' * (200 << 20); print(len(x))",
            ]);
            let r = format!(
                "code:{} inspect:{}",
                rvisor_tests::shell_code(&o),
                inspect(&name, "{{.State.ExitCode}}")
            );
            remove(&name);
            Ok(r)
        }),
        ("pids_limit_fork_bomb", |rt| {
            // A fork bomb under a 20-task limit: forks fail, the shell
            // gives up, the host is unharmed. (Its `sleep` may find the
            // limit still reached, under runc too: it retries a few times,
            // counting in between, which needs no fork.)
            let bomb = "b() { b | b & }; b 2>/dev/null; i=0; \
                        until sleep 2 2>/dev/null || [ $i -ge 10 ]; do \
                        i=$((i+1)); j=0; while [ $j -lt 20000 ]; do j=$((j+1)); done; done; \
                        echo fork-failed-but-alive";
            let o = docker_run(rt, &["--pids-limit", "20"], BUSYBOX, &["sh", "-c", bomb]);
            let out = String::from_utf8_lossy(&o.stdout);
            // How many tasks the bomb got to is timing; that it ends is not.
            Ok(format!("code:{} alive:{}", rvisor_tests::shell_code(&o), out.contains("alive")))
        }),
        ("python_script_from_volume", |rt| {
            let d = scratch("py", rt);
            std::fs::write(
                d.join("s.py"),
                "import os, sys\nprint('python', sys.version_info[0], os.cpu_count() > 0)\nopen('/data/out.txt', 'w').write('from python\\n')\n",
            )
            .map_err(|e| e.to_string())?;
            let v = format!("{}:/data", d.display());
            let o = docker_run(rt, &["-v", &v], PYTHON, &["python3", "/data/s.py"]);
            let r = format!(
                "{} host:{:?}",
                transcript(&o),
                std::fs::read_to_string(d.join("out.txt")).unwrap_or_default()
            );
            let _ = std::fs::remove_dir_all(&d);
            Ok(r)
        }),
    ]
}

/// Cases on a running container.
fn running_cases() -> Vec<Case> {
    vec![
        ("run_detached_ps_logs", |rt| {
            let name = format!("rvisor-test-ps-{rt}");
            start_detached(rt, &name, "echo ready; echo to-stderr >&2; sleep 60")?;
            let ps =
                docker(&["ps", "--filter", &format!("name=^{name}$"), "--format", "{{.Names}} {{.Status}}"]);
            let logs = docker(&["logs", &name]);
            remove(&name);
            let up = String::from_utf8_lossy(&ps.stdout);
            Ok(format!("ps:{} logs:{}", up.starts_with(&format!("{name} Up")), transcript(&logs)))
        }),
        ("exec", |rt| {
            let name = format!("rvisor-test-exec-{rt}");
            start_detached(rt, &name, "echo ready; sleep 60")?;
            let a = docker(&["exec", &name, "sh", "-c", "echo in-exec; echo err >&2; exit 5"]);
            let b = docker(&[
                "exec",
                "-u",
                "1000",
                "-e",
                "X=1",
                "-w",
                "/tmp",
                &name,
                "sh",
                "-c",
                "id -u; echo $X; pwd",
            ]);
            let c = docker(&["exec", &name, "no-such-program"]);
            let d = docker(&["exec", &name, "ps", "-o", "pid,args"]);
            remove(&name);
            // The missing program's message is the runtime's own.
            let missing = String::from_utf8_lossy(&c.stderr).contains("executable file not found");
            Ok(format!(
                "{} {} missing:{} code:{} ps:{}",
                transcript(&a),
                transcript(&b),
                missing,
                rvisor_tests::shell_code(&c),
                String::from_utf8_lossy(&d.stdout).lines().nth(1).unwrap_or_default().trim()
            ))
        }),
        ("stop_sigterm", |rt| {
            let name = format!("rvisor-test-stop-{rt}");
            start_detached(
                rt,
                &name,
                "trap 'echo got TERM; exit 3' TERM; echo ready; while true; do sleep 0.1; done",
            )?;
            let o = docker(&["stop", "-t", "10", &name]);
            let r = format!(
                "stop:{} logs:{} exit:{}",
                rvisor_tests::shell_code(&o),
                String::from_utf8_lossy(&docker(&["logs", &name]).stdout).trim(),
                inspect(&name, "{{.State.ExitCode}}")
            );
            remove(&name);
            Ok(r)
        }),
        ("stop_timeout_sigkill", |rt| {
            let name = format!("rvisor-test-stopkill-{rt}");
            start_detached(rt, &name, "trap '' TERM; echo ready; while true; do sleep 0.1; done")?;
            let t = Instant::now();
            let o = docker(&["stop", "-t", "1", &name]);
            let took = t.elapsed();
            let r = format!(
                "stop:{} waited:{} exit:{}",
                rvisor_tests::shell_code(&o),
                took >= Duration::from_secs(1) && took < Duration::from_secs(20),
                inspect(&name, "{{.State.ExitCode}}")
            );
            remove(&name);
            Ok(r)
        }),
        ("kill_usr1", |rt| {
            let name = format!("rvisor-test-kill-{rt}");
            start_detached(
                rt,
                &name,
                "trap 'echo got USR1' USR1; echo ready; while true; do sleep 0.1; done",
            )?;
            let o = docker(&["kill", "-s", "USR1", &name]);
            let end = Instant::now() + Duration::from_secs(10);
            let mut logs = String::new();
            while Instant::now() < end && !logs.contains("USR1") {
                std::thread::sleep(Duration::from_millis(50));
                logs = String::from_utf8_lossy(&docker(&["logs", &name]).stdout).into_owned();
            }
            let running = inspect(&name, "{{.State.Running}}");
            remove(&name);
            Ok(format!("kill:{} logs:{} running:{running}", rvisor_tests::shell_code(&o), logs.trim()))
        }),
        ("cp_in_and_out_and_diff", |rt| {
            let name = format!("rvisor-test-cp-{rt}");
            start_detached(rt, &name, "echo ready; sleep 60")?;
            let d = scratch("cp", rt);
            std::fs::write(d.join("in"), "copied in\n").map_err(|e| e.to_string())?;
            let i = docker(&["cp", &format!("{}", d.join("in").display()), &format!("{name}:/tmp/in")]);
            let seen = docker(&["exec", &name, "cat", "/tmp/in"]);
            let made = docker(&["exec", &name, "sh", "-c", "echo made inside > /root/made"]);
            let o = docker(&["cp", &format!("{name}:/root/made"), &format!("{}", d.join("out").display())]);
            let diff = docker(&["diff", &name]);
            let mut diff_lines: Vec<String> =
                String::from_utf8_lossy(&diff.stdout).lines().map(str::to_string).collect();
            diff_lines.sort();
            remove(&name);
            let r = format!(
                "in:{} seen:{} made:{} out:{} host:{:?} diff:{}",
                rvisor_tests::shell_code(&i),
                transcript(&seen),
                rvisor_tests::shell_code(&made),
                rvisor_tests::shell_code(&o),
                std::fs::read_to_string(d.join("out")).unwrap_or_default(),
                diff_lines.join(",")
            );
            let _ = std::fs::remove_dir_all(&d);
            Ok(r)
        }),
    ]
}

/// `docker run -it`: a prompt, a command, Ctrl-C interrupting the
/// foreground command but not the shell, and the exit status.
fn interactive_run(rt: &str) -> Result<String, String> {
    let mut c = Command::new("docker");
    c.args(["run", "-it", "--rm", &format!("--runtime={rt}"), "-e", "PS1=rv$ ", BUSYBOX, "sh"]);
    terminal_session(c, 3)
}

/// `docker exec -it` into a running container.
fn interactive_exec(rt: &str) -> Result<String, String> {
    let name = format!("rvisor-test-execit-{rt}");
    start_detached(rt, &name, "echo ready; sleep 120")?;
    let mut c = Command::new("docker");
    c.args(["exec", "-it", "-e", "PS1=rv$ ", &name, "sh"]);
    let r = terminal_session(c, 4);
    remove(&name);
    r
}

fn terminal_session(mut cmd: Command, code: i32) -> Result<String, String> {
    let long = Duration::from_secs(60);
    let mut t = Terminal::spawn(&mut cmd, 24, 80);
    t.expect("rv$ ", long)?;
    t.send("echo $((6 * 7)); tty | sed 's/[0-9]*$/N/'\r");
    t.expect("42\r\n", long)?;
    t.expect("/dev/pts/N\r\n", long)?;
    t.expect("rv$ ", long)?;
    t.send("stty size\r");
    t.expect("24 80\r\n", long)?;
    t.expect("rv$ ", long)?;
    t.send("sleep 30; echo not-interrupted\r");
    std::thread::sleep(Duration::from_millis(800));
    let start = Instant::now();
    t.send("\x03");
    t.expect("rv$ ", long)?;
    if start.elapsed() > Duration::from_secs(10) {
        return Err(format!("Ctrl-C took {:?}", start.elapsed()));
    }
    t.send("echo status $?\r");
    t.expect("status 130\r\n", long)?;
    t.expect("rv$ ", long)?;
    t.send(&format!("exit {code}\r"));
    let end = Instant::now() + long;
    loop {
        if let Some(st) = t.child.try_wait().map_err(|e| e.to_string())? {
            return Ok(format!("exit:{:?}", st.code()));
        }
        if Instant::now() > end {
            let _ = t.child.kill();
            return Err("the session did not end".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What runc must give in some cases (a substring of its result), so
/// that a broken environment cannot pass by failing the same way twice.
fn runc_expectation(name: &str) -> Option<&'static str> {
    Some(match name {
        "echo" => "out:hello world|err:|code:0",
        "exit_code" => "code:42",
        "exec" => "out:in-exec|err:err|code:5",
        "memory_limit" => "code:137 inspect:137",
        "pids_limit_fork_bomb" => "alive:true",
        "stop_sigterm" => "got TERM exit:3",
        "stop_timeout_sigkill" => "waited:true exit:137",
        "kill_usr1" => "got USR1 running:true",
        "python_script_from_volume" => "host:\"from python\\n\"",
        "run_it" => "exit:Some(3)",
        "exec_it" => "exit:Some(4)",
        _ => return None,
    })
}

/// Runs `cases` under both runtimes: rvisor's result must equal runc's,
/// and runc's must meet [`runc_expectation`].
fn compare(cases: Vec<Case>) -> Vec<String> {
    let mut failures = Vec::new();
    for (name, f) in cases {
        let results: Vec<Result<String, String>> = RUNTIMES.iter().map(|rt| f(rt)).collect();
        match (&results[0], &results[1]) {
            (Ok(a), _) if runc_expectation(name).is_some_and(|w| !a.contains(w)) => failures.push(format!(
                "fail {name}: runc gave {a:?}, which lacks {:?}",
                runc_expectation(name).unwrap_or_default()
            )),
            (Ok(a), Ok(b)) if a == b => println!("ok {name}"),
            (Ok(a), Ok(b)) => failures.push(format!("fail {name}:\n  runc:   {a}\n  rvisor: {b}")),
            (a, b) => failures.push(format!("fail {name}:\n  runc:   {a:?}\n  rvisor: {b:?}")),
        }
    }
    failures
}

/// The whole suite, in order (one container at a time: two cores), then
/// the check that nothing is left behind.
#[test]
fn docker_and_containerd_runc_vs_rvisor() {
    if !ready() {
        return;
    }
    let mut cases = one_shot_cases();
    cases.extend(running_cases());
    cases.push(("run_it", interactive_run));
    cases.push(("exec_it", interactive_exec));
    let mut failures = compare(cases);
    if let Err(e) = ctr_run() {
        failures.push(format!("fail ctr_run: {e}"));
    }
    if let Err(e) = nothing_left_behind() {
        failures.push(format!("fail nothing_left_behind: {e}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// containerd without Docker: `ctr run --runc-binary` (the runc v2 shim)
/// runs the busybox image and returns its exit code, under both.
fn ctr_run() -> Result<(), String> {
    let ns = "rvisor-test";
    let image = format!("docker.io/{BUSYBOX}:latest");
    let have = run(Command::new("ctr").args(["-n", ns, "images", "ls", "-q"]));
    if !String::from_utf8_lossy(&have.stdout).lines().any(|l| l == image) {
        return Err(format!("containerd's {ns} namespace lacks {image} (scripts/docker-env.sh imports it)"));
    }
    let bin = rvisor_bin();
    let mut got = Vec::new();
    for (rt, binary) in [("runc", PathBuf::from("runc")), ("rvisor", bin)] {
        let id = format!("rvisor-test-ctr-{rt}-{}", std::process::id());
        let o = run(Command::new("ctr")
            .args(["-n", ns, "run", "--rm", "--runc-binary"])
            .arg(&binary)
            .args([&image, &id, "sh", "-c", "echo from-ctr; exit 7"]));
        got.push(transcript(&o));
    }
    if got[0] != "out:from-ctr|err:|code:7" || got[1] != got[0] {
        return Err(format!("runc: {}, rvisor: {}", got[0], got[1]));
    }
    println!("ok ctr_run");
    Ok(())
}

/// After the suite: no rvisor process (sentry, gofer, exec proxy), no
/// container in rvisor's state roots, no mount of a container's rootfs
/// made for an rvisor container, no cgroup of a container Docker no
/// longer has.
fn nothing_left_behind() -> Result<(), String> {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let mut left = Vec::new();
        for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let cmdline = std::fs::read(p.path().join("cmdline")).unwrap_or_default();
            let args: Vec<String> =
                cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
            let ours = args.first().is_some_and(|a| a.ends_with("/rvisor"))
                && args.iter().any(|a| ["boot", "gofer", "exec-proxy"].contains(&a.as_str()));
            if ours {
                left.push(format!("process {}: {}", p.file_name().to_string_lossy(), args.join(" ")));
            }
        }
        // The shims' runtime roots (Docker 20.10 gives every runtime
        // runc's), holding only containers that still exist.
        let live = String::from_utf8_lossy(&docker(&["ps", "-aq", "--no-trunc"]).stdout).into_owned();
        for root in ["/run/docker/runtime-runc/moby", "/run/containerd/runc/rvisor-test"] {
            for e in std::fs::read_dir(root).into_iter().flatten().flatten() {
                if !live.contains(&*e.file_name().to_string_lossy()) {
                    left.push(format!("state {}", e.path().display()));
                }
            }
        }
        for c in ["memory", "pids", "cpu"] {
            let dir = Path::new("/sys/fs/cgroup").join(c).join("docker");
            for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if e.path().is_dir() && n.len() == 64 && !live.contains(&n) {
                    left.push(format!("cgroup {}", e.path().display()));
                }
            }
        }
        let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
        for l in mounts.lines().filter(|l| l.contains("rvisor-gofer") || l.contains("rvisor-hidden")) {
            left.push(format!("mount {l}"));
        }
        if left.is_empty() {
            println!("ok nothing_left_behind");
            return Ok(());
        }
        if Instant::now() > end {
            return Err(format!("{left:#?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}
