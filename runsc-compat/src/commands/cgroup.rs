//! The sandbox's host cgroup (`linux.resources` of an OCI spec): made by
//! `create` before the gofer and sentry start (they and every stub are
//! born in it), limits written, removed by `delete`. cgroup v1 (one tree
//! per controller, as on this project's CI machines) and v2 (one tree).
//! The limits are the container's plus headroom for what the sandbox runs
//! besides the application: a sentry thread per application thread and
//! the stub processes, and the sentry's and gofer's own memory. The sentry
//! enforces the pids limit on the application's tasks itself.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use oci_spec::runtime::Spec;

const ROOT: &str = "/sys/fs/cgroup";
/// v1 controllers the sandbox joins.
const V1: [&str; 6] = ["memory", "pids", "cpu", "cpuacct", "freezer", "devices"];
/// Memory the sentry and gofer need besides the application's.
pub const MEMORY_HEADROOM: i64 = 64 << 20;

/// Host tasks per application task (its sentry thread, and its stub's
/// thread and control thread: measured 3 with ptrace), with one spare,
/// plus a fixed allowance for the sentry's and gofer's own threads.
pub fn pids_with_headroom(limit: i64) -> i64 {
    limit.saturating_mul(4).saturating_add(64)
}

fn unified() -> bool {
    Path::new(ROOT).join("cgroup.controllers").exists()
}

/// The cgroup path of the container: `linux.cgroupsPath` (systemd's
/// `slice:prefix:name` form becomes `/slice/prefix-name.scope`), else
/// `/rvisor/ID`.
pub fn path_of(spec: &Spec, id: &str) -> String {
    let p = spec
        .linux()
        .as_ref()
        .and_then(|l| l.cgroups_path().clone())
        .map(|p| p.to_string_lossy().into_owned());
    match p {
        Some(p) if p.contains(':') && !p.starts_with('/') => {
            let parts: Vec<&str> = p.splitn(3, ':').collect();
            let slice = if parts[0].is_empty() { "system.slice" } else { parts[0] };
            format!("/{slice}/{}-{}.scope", parts.get(1).unwrap_or(&"rvisor"), parts.get(2).unwrap_or(&id))
        }
        Some(p) if !p.is_empty() => format!("/{}", p.trim_start_matches('/')),
        _ => format!("/rvisor/{id}"),
    }
}

/// The directories of cgroup `rel`.
fn dirs(rel: &str) -> Vec<PathBuf> {
    let rel = rel.trim_start_matches('/');
    if unified() {
        vec![Path::new(ROOT).join(rel)]
    } else {
        V1.iter()
            .filter(|c| Path::new(ROOT).join(c).exists())
            .map(|c| Path::new(ROOT).join(c).join(rel))
            .collect()
    }
}

fn write(dir: &Path, file: &str, value: &str) -> anyhow::Result<()> {
    std::fs::write(dir.join(file), value).with_context(|| format!("{}/{file} = {value}", dir.display()))
}

/// Makes cgroup `rel` with the spec's limits.
pub fn create(spec: &Spec, rel: &str) -> anyhow::Result<()> {
    let res = spec.linux().as_ref().and_then(|l| l.resources().clone());
    let mem = res.as_ref().and_then(|r| r.memory().as_ref()).and_then(|m| m.limit()).filter(|&l| l > 0);
    let pids = res.as_ref().and_then(|r| r.pids().as_ref()).map(|p| p.limit()).filter(|&l| l > 0);
    let cpu = res.as_ref().and_then(|r| r.cpu().clone());
    let v2 = unified();
    for d in dirs(rel) {
        std::fs::create_dir_all(&d).with_context(|| format!("cgroup {}", d.display()))?;
        let ctrl = d
            .strip_prefix(ROOT)
            .ok()
            .and_then(|p| p.components().next())
            .map(|c| c.as_os_str().to_string_lossy().into_owned());
        let is = |c: &str| v2 || ctrl.as_deref() == Some(c);
        if let Some(m) = mem {
            if is("memory") {
                write(
                    &d,
                    if v2 { "memory.max" } else { "memory.limit_in_bytes" },
                    &(m + MEMORY_HEADROOM).to_string(),
                )?;
            }
        }
        if let Some(p) = pids {
            if is("pids") {
                write(&d, "pids.max", &pids_with_headroom(p).to_string())?;
            }
        }
        if let Some(c) = &cpu {
            if is("cpu") {
                if let (Some(q), Some(p)) = (c.quota().filter(|&q| q > 0), c.period()) {
                    if v2 {
                        write(&d, "cpu.max", &format!("{q} {p}"))?;
                    } else {
                        write(&d, "cpu.cfs_period_us", &p.to_string())?;
                        write(&d, "cpu.cfs_quota_us", &q.to_string())?;
                    }
                }
                if let Some(s) = c.shares().filter(|&s| s > 0) {
                    if v2 {
                        // runc's conversion of shares to a weight.
                        let w = 1 + ((s.clamp(2, 262_144) - 2) * 9999) / 262_142;
                        write(&d, "cpu.weight", &w.to_string())?;
                    } else {
                        write(&d, "cpu.shares", &s.to_string())?;
                    }
                }
            }
        }
    }
    Ok(())
}

/// Moves the calling process into cgroup `rel` (what it starts is born
/// there); returns where it was, for [`leave`].
pub fn enter(rel: &str) -> anyhow::Result<Vec<(PathBuf, String)>> {
    let me = std::process::id().to_string();
    let own = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    let mut back = Vec::new();
    for d in dirs(rel) {
        let ctrl = d.strip_prefix(ROOT).ok().map(Path::to_path_buf).unwrap_or_default();
        let first = ctrl
            .components()
            .next()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .unwrap_or_default();
        // Where this process is now, for this hierarchy.
        let cur = own
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, names, path) = (f.next()?, f.next()?, f.next()?);
                let mine = if unified() { names.is_empty() } else { names.split(',').any(|n| n == first) };
                mine.then(|| path.to_string())
            })
            .next()
            .unwrap_or_else(|| "/".into());
        let base = if unified() { PathBuf::from(ROOT) } else { Path::new(ROOT).join(&first) };
        back.push((base.join(cur.trim_start_matches('/')), me.clone()));
        write(&d, "cgroup.procs", &me)?;
    }
    Ok(back)
}

/// Moves the calling process back (see [`enter`]).
pub fn leave(back: &[(PathBuf, String)]) {
    for (d, me) in back {
        let _ = write(d, "cgroup.procs", me);
    }
}

/// Removes cgroup `rel` (its processes are gone).
pub fn remove(rel: &str) {
    for d in dirs(rel) {
        for _ in 0..100 {
            match std::fs::remove_dir(&d) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    std::thread::sleep(std::time::Duration::from_millis(10))
                }
                _ => break,
            }
        }
        // The default parent (`/rvisor`) goes once empty.
        if let Some(p) = d.parent().filter(|p| p.file_name().is_some_and(|n| n == "rvisor")) {
            let _ = std::fs::remove_dir(p);
        }
    }
}

/// The directory of cgroup `rel` for controller `ctrl` (v1), or the one
/// tree's (v2).
fn dir_for(rel: &str, ctrl: &str) -> PathBuf {
    let rel = rel.trim_start_matches('/');
    if unified() {
        Path::new(ROOT).join(rel)
    } else {
        Path::new(ROOT).join(ctrl).join(rel)
    }
}

fn read_num(d: &Path, file: &str) -> Option<u64> {
    std::fs::read_to_string(d.join(file)).ok()?.trim().parse().ok()
}

/// Freezes or thaws the sandbox (`pause`, `resume`).
pub fn freeze(rel: &str, on: bool) -> anyhow::Result<()> {
    if unified() {
        write(&dir_for(rel, ""), "cgroup.freeze", if on { "1" } else { "0" })
    } else {
        let d = dir_for(rel, "freezer");
        write(&d, "freezer.state", if on { "FROZEN" } else { "THAWED" })?;
        // Freezing completes asynchronously.
        for _ in 0..500 {
            let s = std::fs::read_to_string(d.join("freezer.state")).unwrap_or_default();
            if s.trim() == if on { "FROZEN" } else { "THAWED" } {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        Ok(())
    }
}

/// Whether the sandbox is frozen.
pub fn frozen(rel: &str) -> bool {
    if unified() {
        std::fs::read_to_string(dir_for(rel, "").join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1")
    } else {
        std::fs::read_to_string(dir_for(rel, "freezer").join("freezer.state"))
            .is_ok_and(|s| s.trim() == "FROZEN")
    }
}

/// The host processes of the sandbox (`ps`).
pub fn pids(rel: &str) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_to_string(dir_for(rel, "pids").join("cgroup.procs"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect();
    v.sort_unstable();
    v
}

/// runc's stats document (`events --stats`) for the sandbox's cgroup.
pub fn stats(rel: &str) -> serde_json::Value {
    let v2 = unified();
    let mem = dir_for(rel, "memory");
    let pid = dir_for(rel, "pids");
    let cpu = dir_for(rel, "cpuacct");
    let limit = |n: Option<u64>| n.unwrap_or(0);
    let (usage, mem_limit, max) = if v2 {
        (read_num(&mem, "memory.current"), read_num(&mem, "memory.max"), read_num(&mem, "memory.peak"))
    } else {
        (
            read_num(&mem, "memory.usage_in_bytes"),
            read_num(&mem, "memory.limit_in_bytes"),
            read_num(&mem, "memory.max_usage_in_bytes"),
        )
    };
    let cpu_total = if v2 {
        std::fs::read_to_string(dir_for(rel, "").join("cpu.stat"))
            .ok()
            .and_then(|s| s.lines().find_map(|l| l.strip_prefix("usage_usec ")?.trim().parse::<u64>().ok()))
            .map(|us| us * 1000)
    } else {
        read_num(&cpu, "cpuacct.usage")
    };
    serde_json::json!({
        "cpu": {"usage": {"total": limit(cpu_total), "kernel": 0, "user": 0}, "throttling": {}},
        "memory": {
            "usage": {"usage": limit(usage), "max": limit(max), "limit": limit(mem_limit), "failcnt": 0},
            "swap": {"usage": 0, "limit": 0},
            "kernel": {"usage": 0, "limit": 0},
            "raw": {}
        },
        "pids": {"current": limit(read_num(&pid, "pids.current")), "limit": read_num(&pid, "pids.max").unwrap_or(0)},
        "blkio": {},
        "hugetlb": {},
        "intel_rdt": {},
        "network_interfaces": null
    })
}

/// New limits (`update`), with the same headroom as at creation.
pub fn update(rel: &str, res: &oci_spec::runtime::LinuxResources) -> anyhow::Result<()> {
    let mut spec = Spec::default();
    let mut linux = spec.linux().clone().unwrap_or_default();
    linux.set_resources(Some(res.clone()));
    spec.set_linux(Some(linux));
    create(&spec, rel)
}
