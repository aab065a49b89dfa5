//! The OCI lifecycle (issue 11) on bundles made from busybox: every case
//! runs against runc and against rvisor with the same expectations.
//! Each runtime gets its own `--root` under a scratch directory; after the
//! suite no container process or state directory is left.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rvisor_tests::{is_root, rvisor_bin, rvisor_command, shell_code};
use serde_json::Value;

struct Runtime {
    name: &'static str,
    bin: PathBuf,
    root: PathBuf,
}

impl Runtime {
    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = Command::new(&self.bin);
        if self.name == "rvisor" {
            c.args(rvisor_tests::platform_args());
        }
        c.arg("--root").arg(&self.root).args(args).stdin(Stdio::null());
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        rvisor_tests::output_within(&mut self.cmd(args), rvisor_tests::RUN_LIMIT)
    }

    /// For verbs whose container outlives them (`create`, `run
    /// --detach`): its output goes to a file (a pipe would stay open as
    /// long as the container), and only the exit status is kept.
    fn run_detached(&self, args: &[&str], log: &Path) -> Output {
        let out = std::fs::File::create(log).expect("log");
        let err = out.try_clone().expect("log");
        let mut child = self.cmd(args).stdout(out).stderr(err).spawn().expect("spawn");
        let end = Instant::now() + rvisor_tests::RUN_LIMIT;
        let status = loop {
            if let Some(s) = child.try_wait().expect("wait") {
                break s;
            }
            if Instant::now() > end {
                let _ = child.kill();
                break child.wait().expect("wait");
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        Output { status, stdout: Vec::new(), stderr: std::fs::read(log).unwrap_or_default() }
    }

    fn state(&self, id: &str) -> Option<Value> {
        let o = self.run(&["state", id]);
        o.status.success().then(|| serde_json::from_slice(&o.stdout).ok()).flatten()
    }

    fn status(&self, id: &str) -> String {
        self.state(id).and_then(|v| v["status"].as_str().map(str::to_string)).unwrap_or_else(|| "gone".into())
    }

    /// Waits (at most 10 s) for `id` to reach `want`.
    fn wait_status(&self, id: &str, want: &str) -> String {
        let end = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.status(id);
            if s == want || Instant::now() > end {
                return s;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A bundle whose rootfs is busybox and its applets, with `args` as the
/// process and the spec `runc spec` writes otherwise (read-only root).
fn bundle(dir: &Path, args: &[&str], edit: impl Fn(&mut Value)) -> PathBuf {
    let _ = std::fs::remove_dir_all(dir);
    let bin = dir.join("rootfs/bin");
    std::fs::create_dir_all(&bin).expect("rootfs");
    std::fs::copy("/bin/busybox", bin.join("busybox")).expect("busybox");
    for a in
        ["sh", "echo", "sleep", "cat", "ls", "touch", "kill", "true", "grep", "mount", "mkdir", "head", "tr"]
    {
        std::os::unix::fs::symlink("busybox", bin.join(a)).expect("applet");
    }
    let o = Command::new("runc").arg("spec").current_dir(dir).output().expect("runc spec");
    assert!(o.status.success(), "runc spec: {o:?}");
    let path = dir.join("config.json");
    let mut v: Value = serde_json::from_slice(&std::fs::read(&path).expect("config")).expect("json");
    v["process"]["terminal"] = Value::Bool(false);
    v["process"]["args"] = args.iter().map(|a| Value::String((*a).into())).collect();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec_pretty(&v).expect("json")).expect("write config");
    dir.to_path_buf()
}

fn runtimes(scratch: &Path) -> Vec<Runtime> {
    vec![
        Runtime { name: "runc", bin: "runc".into(), root: scratch.join("root-runc") },
        Runtime { name: "rvisor", bin: rvisor_bin(), root: scratch.join("root-rvisor") },
    ]
}

fn check(failures: &mut Vec<String>, rt: &Runtime, what: &str, ok: bool, detail: impl std::fmt::Debug) {
    if !ok {
        failures.push(format!("{}: {what}: {detail:?}", rt.name));
    }
}

fn pid_alive(pid: i64) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

#[test]
fn lifecycle_runc_vs_rvisor() {
    if !is_root() || Command::new("runc").arg("--version").output().is_err() {
        println!("skip: needs root and runc");
        return;
    }
    let scratch = std::env::temp_dir().join(format!("rvisor-oci-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("scratch");
    let mut failures = Vec::new();
    let mut pids = Vec::new();
    let mut hooks_seen = Vec::new();
    let mut creds_seen = Vec::new();
    for rt in runtimes(&scratch) {
        let b = bundle(
            &scratch.join(format!("b-{}", rt.name)),
            &["sh", "-c", "trap 'echo got TERM; exit 7' TERM; echo started; while true; do sleep 0.1; done"],
            |_| {},
        );
        let bs = b.to_str().expect("utf-8");
        let pid_file = scratch.join(format!("{}.pid", rt.name));
        // create: created, the pid file names the state's pid; start.
        let log = scratch.join(format!("{}.log", rt.name));
        let o = rt.run_detached(
            &["create", "--bundle", bs, "--pid-file", pid_file.to_str().expect("utf-8"), "c1"],
            &log,
        );
        check(&mut failures, &rt, "create", o.status.success(), &o);
        let st = rt.state("c1").unwrap_or_default();
        check(&mut failures, &rt, "state after create", st["status"] == "created", &st);
        check(
            &mut failures,
            &rt,
            "state fields",
            st["id"] == "c1" && st["bundle"] == bs && st["ociVersion"].is_string(),
            &st,
        );
        let pid = std::fs::read_to_string(&pid_file).unwrap_or_default().trim().parse::<i64>().unwrap_or(-1);
        check(&mut failures, &rt, "pid file", pid > 0 && st["pid"].as_i64() == Some(pid), (pid, &st["pid"]));
        pids.push(pid);
        let o = rt.run_detached(&["create", "--bundle", bs, "c1"], &log);
        check(&mut failures, &rt, "create of an existing id fails", !o.status.success(), &o);
        let o = rt.run(&["start", "c1"]);
        check(&mut failures, &rt, "start", o.status.success(), &o);
        check(&mut failures, &rt, "running", rt.status("c1") == "running", rt.status("c1"));
        let o = rt.run(&["start", "c1"]);
        check(&mut failures, &rt, "start twice fails", !o.status.success(), &o);
        let o = rt.run(&["delete", "c1"]);
        check(&mut failures, &rt, "delete of a running container fails", !o.status.success(), &o);
        let l = rt.run(&["list", "-q"]);
        check(&mut failures, &rt, "list -q", String::from_utf8_lossy(&l.stdout).trim() == "c1", &l);
        // pause and resume; ps; events --stats; update.
        let o = rt.run(&["pause", "c1"]);
        check(
            &mut failures,
            &rt,
            "pause",
            o.status.success() && rt.status("c1") == "paused",
            (&o, rt.status("c1")),
        );
        let o = rt.run(&["resume", "c1"]);
        check(
            &mut failures,
            &rt,
            "resume",
            o.status.success() && rt.status("c1") == "running",
            (&o, rt.status("c1")),
        );
        let o = rt.run(&["ps", "--format", "json", "c1"]);
        let ps: Vec<i64> = serde_json::from_slice(&o.stdout).unwrap_or_default();
        check(&mut failures, &rt, "ps --format json has the init", ps.contains(&pid), (&ps, pid));
        let o = rt.run(&["events", "--stats", "c1"]);
        let ev: Value = serde_json::from_slice(&o.stdout).unwrap_or_default();
        check(
            &mut failures,
            &rt,
            "events --stats",
            ev["type"] == "stats"
                && ev["data"]["memory"]["usage"]["usage"].as_u64().unwrap_or(0) > 0
                && ev["data"]["pids"]["current"].as_u64().unwrap_or(0) > 0,
            &ev,
        );
        let o = rt.run(&["update", "--pids-limit", "50", "c1"]);
        check(&mut failures, &rt, "update", o.status.success(), &o);

        // kill: the signal reaches the init, which exits.
        std::thread::sleep(Duration::from_millis(300));
        let o = rt.run(&["kill", "c1", "TERM"]);
        check(&mut failures, &rt, "kill", o.status.success(), &o);
        let s = rt.wait_status("c1", "stopped");
        check(&mut failures, &rt, "stopped after kill", s == "stopped", s);
        let o = rt.run(&["kill", "c1", "KILL"]);
        check(&mut failures, &rt, "kill of a stopped container fails", !o.status.success(), &o);
        let o = rt.run(&["delete", "c1"]);
        check(&mut failures, &rt, "delete", o.status.success(), &o);
        check(&mut failures, &rt, "gone after delete", rt.state("c1").is_none(), "state still answers");
        let o = rt.run(&["state", "nosuch"]);
        check(&mut failures, &rt, "state of an unknown id fails", !o.status.success(), &o);

        // delete --force of a running container leaves no process.
        rt.run_detached(&["run", "--detach", "--bundle", bs, "c2"], &log);
        let pid2 = rt.state("c2").and_then(|v| v["pid"].as_i64()).unwrap_or(-1);
        pids.push(pid2);
        check(&mut failures, &rt, "run --detach", rt.status("c2") == "running", rt.status("c2"));
        let o = rt.run(&["delete", "--force", "c2"]);
        check(&mut failures, &rt, "delete --force", o.status.success() && rt.state("c2").is_none(), &o);

        // run: exit codes and death by a signal.
        let b = bundle(&scratch.join(format!("e-{}", rt.name)), &["sh", "-c", "echo out; exit 3"], |_| {});
        let o = rt.run(&["run", "--bundle", b.to_str().expect("utf-8"), "c3"]);
        check(&mut failures, &rt, "run exit 3", shell_code(&o) == 3 && o.stdout == b"out\n", &o);
        // (The container's init is not killed by its own SIGKILL on Linux:
        // a child of it is.)
        let b = bundle(
            &scratch.join(format!("k-{}", rt.name)),
            &["sh", "-c", "sh -c 'kill -9 $$'; exit $?"],
            |_| {},
        );
        let o = rt.run(&["run", "--bundle", b.to_str().expect("utf-8"), "c4"]);
        check(&mut failures, &rt, "run: a child killed by SIGKILL: 137", shell_code(&o) == 137, &o);
        check(
            &mut failures,
            &rt,
            "run leaves no state",
            rt.state("c3").is_none() && rt.state("c4").is_none(),
            "",
        );

        // A read-only root, a read-write bind mount and a tmpfs.
        let data = scratch.join(format!("data-{}", rt.name));
        std::fs::create_dir_all(&data).expect("data");
        let ds = data.to_str().expect("utf-8").to_string();
        let b = bundle(
            &scratch.join(format!("m-{}", rt.name)),
            &["sh", "-c", "touch /ro 2>/dev/null && echo root-writable; echo hi > /data/f && echo bind-ok; echo t > /scratch/t && cat /scratch/t"],
            |v| {
                let mounts = v["mounts"].as_array_mut().expect("mounts");
                mounts.push(serde_json::json!({"destination": "/data", "type": "bind", "source": ds, "options": ["rbind", "rw"]}));
                mounts.push(serde_json::json!({"destination": "/scratch", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"]}));
            },
        );
        let o = rt.run(&["run", "--bundle", b.to_str().expect("utf-8"), "c5"]);
        check(&mut failures, &rt, "mounts", o.stdout == b"bind-ok\nt\n" && shell_code(&o) == 0, &o);
        check(
            &mut failures,
            &rt,
            "bind write reaches the host",
            std::fs::read(data.join("f")).unwrap_or_default() == b"hi\n",
            "",
        );

        // Memory and pids limits in the host cgroup (rvisor's with headroom
        // for the sentry's threads and stubs), gone after delete.
        let cg = format!("rvisor-oci-test-{}/{}", std::process::id(), rt.name);
        let cgs = format!("/{cg}");
        let b = bundle(&scratch.join(format!("cg-{}", rt.name)), &["sleep", "30"], |v| {
            v["linux"]["cgroupsPath"] = Value::String(cgs.clone());
            v["linux"]["resources"]["memory"] = serde_json::json!({"limit": 67_108_864});
            v["linux"]["resources"]["pids"] = serde_json::json!({"limit": 20});
        });
        let o = rt.run_detached(&["create", "--bundle", b.to_str().expect("utf-8"), "g1"], &log);
        check(&mut failures, &rt, "create with limits", o.status.success(), &o);
        // cgroup v1 (one tree per controller) or v2 (one tree).
        let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
        let dir_of = |ctrl: &str| {
            if v2 {
                format!("/sys/fs/cgroup/{cg}")
            } else {
                format!("/sys/fs/cgroup/{ctrl}/{cg}")
            }
        };
        let read = |ctrl: &str, file: &str| {
            std::fs::read_to_string(format!("{}/{file}", dir_of(ctrl))).unwrap_or_default().trim().to_string()
        };
        let mem = read("memory", if v2 { "memory.max" } else { "memory.limit_in_bytes" });
        let pids = read("pids", "pids.max");
        let want = if rt.name == "runc" { ("67108864", "20") } else { ("134217728", "144") };
        check(
            &mut failures,
            &rt,
            "limits in the host cgroup",
            (mem.as_str(), pids.as_str()) == want,
            (&mem, &pids),
        );
        let procs = read("pids", "cgroup.procs");
        check(&mut failures, &rt, "the container's processes are in it", !procs.is_empty(), &procs);
        rt.run(&["delete", "--force", "g1"]);
        let gone = !Path::new(&dir_of("memory")).exists() && !Path::new(&dir_of("pids")).exists();
        check(&mut failures, &rt, "cgroup gone after delete", gone, &cg);
        let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/rvisor-oci-test-{}", std::process::id()));
        for c in [
            "memory",
            "pids",
            "cpu",
            "cpuacct",
            "freezer",
            "devices",
            "blkio",
            "cpuset",
            "systemd",
            "net_cls",
            "perf_event",
            "hugetlb",
        ] {
            let _ = std::fs::remove_dir(format!("/sys/fs/cgroup/{c}/rvisor-oci-test-{}", std::process::id()));
        }

        // --preserve-fds: the caller's descriptor 3 is the container's 3.
        let b = bundle(&scratch.join(format!("f-{}", rt.name)), &["sh", "-c", "echo via-fd3 >&3"], |_| {});
        let out = scratch.join(format!("fd3-{}", rt.name));
        let script = format!(
            "exec 3>{}; exec {} --root {} run --preserve-fds 1 --bundle {} f1",
            out.display(),
            rt.bin.display(),
            rt.root.display(),
            b.display()
        );
        let o = rvisor_tests::output_within(
            Command::new("/bin/sh").args(["-c", &script]),
            rvisor_tests::RUN_LIMIT,
        );
        let got = std::fs::read_to_string(&out).unwrap_or_default();
        check(&mut failures, &rt, "--preserve-fds 1", o.status.success() && got == "via-fd3\n", (&o, got));

        // The memory limit: 200 MB in a shell variable under 64 MiB is
        // killed (137), 20 MB is not.
        for (bytes, want) in [(200_000_000, 137), (20_000_000, 0)] {
            let b = bundle(
                &scratch.join(format!("o-{}-{bytes}", rt.name)),
                &["sh", "-c", &format!("x=$(head -c {bytes} /dev/zero | tr '\\0' a); echo ${{#x}}")],
                |v| v["linux"]["resources"]["memory"] = serde_json::json!({"limit": 67_108_864}),
            );
            let o = rt.run(&["run", "--bundle", b.to_str().expect("utf-8"), "o1"]);
            check(
                &mut failures,
                &rt,
                &format!("{bytes} bytes under a 64 MiB limit"),
                shell_code(&o) == want,
                &o,
            );
        }

        // The spec's capabilities, no_new_privs, umask and oom score:
        // runc's spec gives root three capabilities, so mounting fails.
        let b = bundle(
            &scratch.join(format!("p-{}", rt.name)),
            &["sh", "-c", "grep -E '^(Cap(Inh|Prm|Eff|Bnd)|NoNewPrivs|Umask)' /proc/self/status; cat /proc/self/oom_score_adj; mkdir -p /tmp/m 2>/dev/null; mount -t tmpfs t /proc 2>/dev/null || echo mount refused"],
            |v| {
                v["process"]["oomScoreAdj"] = serde_json::json!(123);
                v["process"]["user"]["umask"] = serde_json::json!(0o27);
            },
        );
        let o = rt.run(&["run", "--bundle", b.to_str().expect("utf-8"), "p1"]);
        creds_seen.push((rt.name, String::from_utf8_lossy(&o.stdout).into_owned()));

        // A malformed config.json.
        let bad = scratch.join(format!("bad-{}", rt.name));
        std::fs::create_dir_all(&bad).expect("bad");
        std::fs::write(bad.join("config.json"), "{ not json").expect("write");
        let o = rt.run_detached(&["create", "--bundle", bad.to_str().expect("utf-8"), "c6"], &log);
        check(
            &mut failures,
            &rt,
            "malformed config.json fails",
            !o.status.success() && rt.state("c6").is_none(),
            &o,
        );

        // Hooks run in order, on the host, with the state on stdin.
        let hook_log = scratch.join(format!("hooks-{}", rt.name));
        let hl = hook_log.to_str().expect("utf-8").to_string();
        let b = bundle(&scratch.join(format!("h-{}", rt.name)), &["true"], |v| {
            let hook = |name: &str| {
                serde_json::json!({"path": "/bin/sh", "args": ["sh", "-c",
                    format!("s=$(cat); case \"$s\" in *'\"id\":\"h1\"'*) id=ok;; *) id=bad;; esac; \
                     st=$(printf '%s' \"$s\" | sed 's/.*\"status\":\"\\([a-z]*\\)\".*/\\1/'); echo {name} $id $st >> {hl}")],
                    "timeout": 10})
            };
            v["hooks"] = serde_json::json!({
                "prestart": [hook("prestart")],
                "createRuntime": [hook("createRuntime")],
                "createContainer": [hook("createContainer")],
                "startContainer": [hook("startContainer")],
                "poststart": [hook("poststart")],
                "poststop": [hook("poststop")],
            });
        });
        let bs = b.to_str().expect("utf-8");
        rt.run_detached(&["create", "--bundle", bs, "h1"], &log);
        rt.run(&["start", "h1"]);
        rt.wait_status("h1", "stopped");
        rt.run(&["delete", "h1"]);
        hooks_seen.push((rt.name, std::fs::read_to_string(&hook_log).unwrap_or_default()));
        // A failing create hook fails create and leaves nothing.
        let b = bundle(&scratch.join(format!("hf-{}", rt.name)), &["true"], |v| {
            v["hooks"] = serde_json::json!({"createRuntime": [{"path": "/bin/false", "args": ["false"]}]});
        });
        let o = rt.run_detached(&["create", "--bundle", b.to_str().expect("utf-8"), "h2"], &log);
        check(
            &mut failures,
            &rt,
            "failing hook fails create",
            !o.status.success() && rt.state("h2").is_none(),
            &o,
        );

        // features parses.
        let o = rt.run(&["features"]);
        let f: Option<Value> = serde_json::from_slice(&o.stdout).ok();
        check(&mut failures, &rt, "features", f.is_some_and(|f| f["ociVersionMax"].is_string()), &o);

        // Nothing is left in the state directory.
        let left: Vec<_> = std::fs::read_dir(&rt.root)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        check(&mut failures, &rt, "no state left", left.is_empty(), left);
    }
    println!("hooks: {hooks_seen:?}");
    println!("credentials: {creds_seen:?}");
    if creds_seen.len() == 2
        && (creds_seen[0].1 != creds_seen[1].1 || !creds_seen[0].1.contains("mount refused"))
    {
        failures.push(format!("credentials differ: {creds_seen:?}"));
    }
    // startContainer runs in the container's namespaces under runc (its
    // log line lands in the container) and on the host under rvisor.
    let host_side =
        |h: &str| h.lines().filter(|l| !l.starts_with("startContainer")).collect::<Vec<_>>().join("\n");
    if hooks_seen.len() == 2 && host_side(&hooks_seen[0].1) != host_side(&hooks_seen[1].1) {
        failures.push(format!("hooks differ: {hooks_seen:?}"));
    }
    if hooks_seen.get(1).is_some_and(|(_, h)| !h.contains("startContainer ok created")) {
        failures.push(format!("rvisor's startContainer hook: {hooks_seen:?}"));
    }
    if hooks_seen.first().is_some_and(|(_, h)| h.lines().count() != 5) {
        failures.push(format!("runc ran {:?}", hooks_seen[0]));
    }
    // `spec` writes a config.json rvisor can boot.
    let sdir = scratch.join("spec");
    std::fs::create_dir_all(&sdir).expect("spec dir");
    let o = rvisor_command().args(["spec", "--bundle"]).arg(&sdir).output().expect("spec");
    let ok = o.status.success()
        && serde_json::from_slice::<Value>(&std::fs::read(sdir.join("config.json")).unwrap_or_default())
            .is_ok_and(|v| v["process"]["args"].is_array() && v["root"]["path"] == "rootfs");
    if !ok {
        failures.push(format!("rvisor spec: {o:?}"));
    }
    std::thread::sleep(Duration::from_millis(200));
    for p in pids {
        if p > 0 && pid_alive(p) {
            failures.push(format!("container process {p} still alive"));
        }
    }
    // The test's cgroup parents (runc leaves its own in every hierarchy).
    let parent = format!("rvisor-oci-test-{}", std::process::id());
    for _ in 0..50 {
        let left: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
            .map(|d| d.flatten().map(|e| e.path().join(&parent)).filter(|p| p.exists()).collect())
            .unwrap_or_default();
        if left.is_empty() {
            break;
        }
        for p in left {
            for child in ["runc", "rvisor"] {
                let _ = std::fs::remove_dir(p.join(child));
            }
            let _ = std::fs::remove_dir(&p);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Receives one descriptor sent with `SCM_RIGHTS` on `conn`.
fn recv_fd(conn: &std::os::unix::net::UnixStream) -> Option<std::os::fd::OwnedFd> {
    use std::os::fd::{AsRawFd, FromRawFd};
    let mut buf = [0u8; 512];
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    let mut cmsg = [0u64; 16];
    // SAFETY: msghdr is plain data; zeroed is a valid empty header.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = cmsg.as_mut_ptr().cast();
    msg.msg_controllen = std::mem::size_of_val(&cmsg);
    // SAFETY: recvmsg into the buffers just set up.
    if unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, 0) } < 0 {
        return None;
    }
    // SAFETY: walking the control messages recvmsg filled.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&msg);
        if c.is_null() || (*c).cmsg_type != libc::SCM_RIGHTS {
            return None;
        }
        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>());
        Some(std::os::fd::OwnedFd::from_raw_fd(fd))
    }
}

/// Reads `master` until `want` appears in what was read since `from`
/// (at most 20 s).
fn read_until(master: &mut std::fs::File, seen: &mut Vec<u8>, want: &str) -> bool {
    use std::io::Read;
    use std::os::fd::AsRawFd;
    let end = Instant::now() + Duration::from_secs(20);
    while Instant::now() < end {
        if seen.windows(want.len()).any(|w| w == want.as_bytes()) {
            return true;
        }
        let mut p = libc::pollfd { fd: master.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: one pollfd.
        if unsafe { libc::poll(&mut p, 1, 100) } > 0 {
            let mut b = [0u8; 4096];
            match master.read(&mut b) {
                Ok(n) if n > 0 => seen.extend_from_slice(&b[..n]),
                _ => return false,
            }
        }
    }
    false
}

/// `create --console-socket`: the master of the container's terminal
/// arrives over the socket; a shell on it echoes, runs a command, follows
/// a resize, and its exit status is the container's. Same under runc.
#[test]
fn console_socket_runc_vs_rvisor() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    if !is_root() || Command::new("runc").arg("--version").output().is_err() {
        println!("skip: needs root and runc");
        return;
    }
    let scratch = std::env::temp_dir().join(format!("rvisor-oci-tty-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("scratch");
    let mut failures = Vec::new();
    for rt in runtimes(&scratch) {
        let b = bundle(&scratch.join(format!("t-{}", rt.name)), &["sh"], |v| {
            v["process"]["terminal"] = Value::Bool(true);
            v["process"]["env"] = serde_json::json!(["PATH=/bin", "PS1=cons$ ", "TERM=dumb"]);
        });
        std::os::unix::fs::symlink("busybox", b.join("rootfs/bin/stty")).expect("stty");
        let sock = scratch.join(format!("{}.sock", rt.name));
        let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind");
        let log = scratch.join(format!("{}.log", rt.name));
        let sock_s = sock.to_str().expect("utf-8").to_string();
        let bs = b.to_str().expect("utf-8").to_string();
        let accept = std::thread::spawn(move || {
            let (c, _) = listener.accept().ok()?;
            recv_fd(&c)
        });
        let o = rt.run_detached(&["create", "--bundle", &bs, "--console-socket", &sock_s, "t1"], &log);
        check(&mut failures, &rt, "create --console-socket", o.status.success(), &o);
        let Some(master) = accept.join().ok().flatten() else {
            failures.push(format!("{}: no master received", rt.name));
            rt.run(&["delete", "--force", "t1"]);
            continue;
        };
        let mut master = std::fs::File::from(master);
        rt.run(&["start", "t1"]);
        let mut seen = Vec::new();
        check(
            &mut failures,
            &rt,
            "prompt",
            read_until(&mut master, &mut seen, "cons$ "),
            String::from_utf8_lossy(&seen),
        );
        seen.clear();
        let _ = master.write_all(b"echo hi $((1+2))\r");
        check(
            &mut failures,
            &rt,
            "a command",
            read_until(&mut master, &mut seen, "hi 3\r\n"),
            String::from_utf8_lossy(&seen),
        );
        seen.clear();
        let w = libc::winsize { ws_row: 31, ws_col: 101, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one winsize.
        unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &w) };
        std::thread::sleep(Duration::from_millis(300));
        let _ = master.write_all(b"stty size\r");
        check(
            &mut failures,
            &rt,
            "resize",
            read_until(&mut master, &mut seen, "31 101\r\n"),
            String::from_utf8_lossy(&seen),
        );
        let _ = master.write_all(b"exit 5\r");
        let s = rt.wait_status("t1", "stopped");
        check(&mut failures, &rt, "stopped after exit", s == "stopped", s);
        rt.run(&["delete", "--force", "t1"]);
    }
    let _ = std::fs::remove_dir_all(&scratch);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
