//! The OCI verbs over bundles, with runc's flags and outputs: `spec`,
//! `create`, `start`, `state`, `kill`, `delete`, `run`, `list`,
//! `features`. A container is a sentry (`rvisor boot`, on the one boot
//! path `rvisor do` uses) and its gofer; its state lives in `ROOT/ID/`:
//! `state.json` (what `state` needs besides liveness) and `start.fifo`,
//! which the sentry holds open for reading and `start` writes a byte to:
//! until then the container's init is loaded but has not run an
//! instruction. The pid file names the sentry: it lives exactly as long
//! as the container's init and exits with its status (or dies by its
//! signal).

use std::io::{Read, Seek, Write};
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use oci_spec::runtime::Spec;
use serde_json::{json, Value};

use super::do_cmd::{fd_list, gofer_channels, sentry_flags, spawn_gofer};
use crate::cli::{
    CreateArgs, DeleteArgs, EventsArgs, Global, IdArgs, KillArgs, ListArgs, PsArgs, RunArgs, SpecArgs,
    UpdateArgs,
};

/// The OCI runtime-spec version the state and features report.
const OCI_VERSION: &str = "1.0.2";

/// A container's directory under `--root`, after checking `id` (runc's
/// rule: letters, digits, `_`, `+`, `-`, `.`, not only dots).
fn dir_of(g: &Global, id: &str) -> anyhow::Result<PathBuf> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id.chars().all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c))
        && id.chars().any(|c| c != '.');
    if !ok {
        bail!("invalid container id format: {id}");
    }
    Ok(g.root.join(id))
}

/// What `ROOT/ID/state.json` keeps.
pub(super) struct Saved {
    id: String,
    bundle: PathBuf,
    rootfs: PathBuf,
    pid: i32,
    /// The sentry's start time (`/proc/PID/stat` field 22): a recycled pid
    /// is not the container.
    pid_start: u64,
    /// The sandbox's host cgroup (relative to each hierarchy's root).
    cgroup: String,
    created: String,
    started: bool,
    annotations: Value,
}

impl Saved {
    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "pid": self.pid,
            "pid_start": self.pid_start,
            "cgroup": self.cgroup,
            "created": self.created,
            "started": self.started,
            "annotations": self.annotations,
        })
    }

    fn from_json(v: &Value) -> Option<Saved> {
        Some(Saved {
            id: v["id"].as_str()?.to_string(),
            bundle: PathBuf::from(v["bundle"].as_str()?),
            rootfs: PathBuf::from(v["rootfs"].as_str()?),
            pid: i32::try_from(v["pid"].as_i64()?).ok()?,
            pid_start: v["pid_start"].as_u64()?,
            cgroup: v["cgroup"].as_str().unwrap_or_default().to_string(),
            created: v["created"].as_str()?.to_string(),
            started: v["started"].as_bool()?,
            annotations: v["annotations"].clone(),
        })
    }

    fn save(&self, dir: &Path) -> anyhow::Result<()> {
        let tmp = dir.join("state.json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(&self.to_json())?)?;
        std::fs::rename(&tmp, dir.join("state.json"))?;
        Ok(())
    }

    /// `created`, `running` or `stopped`.
    pub(super) fn status(&self) -> &'static str {
        if proc_start(self.pid) != Some(self.pid_start) {
            "stopped"
        } else if self.started && !self.cgroup.is_empty() && super::cgroup::frozen(&self.cgroup) {
            "paused"
        } else if self.started {
            "running"
        } else {
            "created"
        }
    }

    /// The OCI state.
    fn state(&self) -> Value {
        let status = self.status();
        json!({
            "ociVersion": OCI_VERSION,
            "id": self.id,
            "pid": if status == "stopped" { 0 } else { self.pid },
            "status": status,
            "bundle": self.bundle,
            "rootfs": self.rootfs,
            "created": self.created,
            "annotations": self.annotations,
            "owner": "",
        })
    }
}

/// Which hooks.
#[derive(Clone, Copy, Debug)]
enum HookKind {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

/// Runs the spec's hooks of `kind` in order, on the host, each with the
/// container's state on its standard input (with `status`) and killed
/// after its timeout; the first failure is the error.
fn run_hooks(spec: &Spec, kind: HookKind, state: &Value, status: &str) -> anyhow::Result<()> {
    let Some(h) = spec.hooks() else { return Ok(()) };
    let list = match kind {
        HookKind::Prestart => h.prestart(),
        HookKind::CreateRuntime => h.create_runtime(),
        HookKind::CreateContainer => h.create_container(),
        HookKind::StartContainer => h.start_container(),
        HookKind::Poststart => h.poststart(),
        HookKind::Poststop => h.poststop(),
    };
    let mut state = state.clone();
    state["status"] = Value::String(status.into());
    let input = serde_json::to_vec(&state)?;
    for hook in list.iter().flatten() {
        let path = hook.path();
        let args = hook.args().clone().unwrap_or_default();
        let mut cmd = Command::new(path);
        if let Some(a0) = args.first() {
            cmd.arg0(a0);
        }
        cmd.args(args.iter().skip(1)).env_clear();
        for e in hook.env().iter().flatten() {
            if let Some((k, v)) = e.split_once('=') {
                cmd.env(k, v);
            }
        }
        cmd.stdin(std::process::Stdio::piped());
        let mut child = cmd.spawn().with_context(|| format!("{kind:?} hook {}", path.display()))?;
        if let Some(mut i) = child.stdin.take() {
            // A hook that does not read its input may close it: no error.
            let _ = i.write_all(&input);
        }
        let limit = hook.timeout().filter(|&t| t > 0).map(|t| Duration::from_secs(t.unsigned_abs()));
        let end = limit.map(|l| Instant::now() + l);
        let status = loop {
            if let Some(s) = child.try_wait()? {
                break s;
            }
            if end.is_some_and(|e| Instant::now() > e) {
                let _ = child.kill();
                let _ = child.wait();
                bail!("{kind:?} hook {}: timed out", path.display());
            }
            std::thread::sleep(Duration::from_millis(5));
        };
        if !status.success() {
            bail!("{kind:?} hook {}: {status}", path.display());
        }
    }
    Ok(())
}

/// The spec `create` saved in the container's directory.
fn saved_spec(dir: &Path) -> Option<Spec> {
    Spec::load(dir.join("config.json")).ok()
}

pub(super) fn load(g: &Global, id: &str) -> anyhow::Result<(PathBuf, Saved)> {
    let dir = dir_of(g, id)?;
    let text = match std::fs::read(dir.join("state.json")) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!("container does not exist: {id}"),
        Err(e) => return Err(e).context("state.json"),
    };
    let v: Value = serde_json::from_slice(&text).context("state.json")?;
    let s = Saved::from_json(&v).context("state.json: malformed")?;
    Ok((dir, s))
}

/// A live process's start time (not a zombie's).
fn proc_start(pid: i32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    if f.first() == Some(&"Z") || f.first() == Some(&"X") {
        return None;
    }
    f.get(19)?.parse().ok()
}

/// Now, as RFC 3339 in UTC with nanoseconds (runc's `created`).
pub fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        d.subsec_nanos()
    )
}

/// Finds `prog` inside `rootfs` as the container would (`PATH` from the
/// spec's environment); returns its path in the container.
fn find_in_rootfs(rootfs: &Path, prog: &str, cwd: &str, env: &[String]) -> Option<String> {
    let exists = |p: &str| rootfs.join(p.trim_start_matches('/')).symlink_metadata().is_ok();
    if prog.contains('/') {
        let p = if prog.starts_with('/') {
            prog.to_string()
        } else {
            format!("{}/{prog}", cwd.trim_end_matches('/'))
        };
        return exists(&p).then_some(p);
    }
    let path = env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    path.split(':')
        .filter(|d| d.starts_with('/'))
        .map(|d| format!("{}/{prog}", d.trim_end_matches('/')))
        .find(|p| exists(p))
}

/// A started sentry with its container's state.
struct Launched {
    child: std::process::Child,
    saved: Saved,
    dir: PathBuf,
}

/// Sets up `ROOT/ID` and starts the container's gofer and sentry; returns
/// once the sentry has loaded the program (held before its first
/// instruction when `hold`).
fn launch(
    g: &Global,
    id: &str,
    bundle: &Path,
    pid_file: Option<&Path>,
    hold: bool,
    console_socket: Option<&Path>,
    preserve_fds: u32,
) -> anyhow::Result<Launched> {
    let dir = dir_of(g, id)?;
    let bundle = std::fs::canonicalize(bundle).with_context(|| format!("bundle {}", bundle.display()))?;
    let mut spec = Spec::load(bundle.join("config.json")).context("config.json")?;
    let root = spec.root().as_ref().context("config.json: no root")?.clone();
    let rootfs = if root.path().is_absolute() { root.path().clone() } else { bundle.join(root.path()) };
    let rootfs = std::fs::canonicalize(&rootfs).with_context(|| format!("rootfs {}", rootfs.display()))?;
    let mut r = root.clone();
    r.set_path(rootfs.clone());
    spec.set_root(Some(r));
    let process = spec.process().as_ref().context("config.json: no process")?;
    let args = process.args().clone().unwrap_or_default();
    let Some(prog) = args.first() else { bail!("config.json: process.args is empty") };
    let env = process.env().clone().unwrap_or_default();
    let cwd = process.cwd().to_string_lossy().into_owned();
    let exe = find_in_rootfs(&rootfs, prog, &cwd, &env)
        .with_context(|| format!("exec: {prog:?}: executable file not found in $PATH"))?;
    let terminal = process.terminal() == Some(true);
    if terminal && console_socket.is_none() {
        bail!("cannot allocate tty if runc will detach without setting console socket");
    }
    if !terminal && console_socket.is_some() {
        bail!("cannot use console socket if runc will not detach or allocate tty");
    }

    // Mount points the rootfs lacks are made, as runc makes them (a file
    // for a bind of a file). Not under /dev, /proc and /sys, which are the
    // sentry's own (runc makes those in the file systems mounted there,
    // not in the rootfs), and not for the types the sentry does not mount.
    let sentrys = |d: &str| ["/dev/", "/proc/", "/sys/"].iter().any(|p| d.starts_with(p));
    let unserved = |m: &&oci_spec::runtime::Mount| {
        matches!(m.typ().as_deref(), Some("mqueue" | "cgroup" | "cgroup2"))
            || sentrys(&m.destination().to_string_lossy())
    };
    let points = ["/dev", "/proc", "/sys"].into_iter().map(|d| (d.to_string(), false)).chain(
        spec.mounts().iter().flatten().filter(|m| !unserved(m)).map(|m| {
            let file = m.typ().as_deref() == Some("bind") && m.source().as_ref().is_some_and(|s| s.is_file());
            (m.destination().to_string_lossy().into_owned(), file)
        }),
    );
    for (d, file) in points {
        let p = rootfs.join(d.trim_start_matches('/'));
        if p.symlink_metadata().is_err() {
            if file {
                let _ = p.parent().map(std::fs::create_dir_all);
                let _ = std::fs::File::create(&p);
            } else {
                let _ = std::fs::create_dir_all(&p);
            }
        }
    }
    std::fs::create_dir_all(&g.root).with_context(|| format!("--root {}", g.root.display()))?;
    match std::fs::create_dir(&dir) {
        Ok(()) => {
            use std::os::unix::fs::PermissionsExt;
            // Only the runtime's user may start or inspect it (runc: 0711).
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711));
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => bail!("container with id exists: {id}"),
        Err(e) => return Err(e).with_context(|| format!("{}", dir.display())),
    }
    let cg = super::cgroup::path_of(&spec, id);
    let cleanup = |e: anyhow::Error| {
        let _ = std::fs::remove_dir_all(&dir);
        super::cgroup::remove(&cg);
        e
    };
    super::cgroup::create(&spec, &cg).map_err(cleanup)?;
    // The gofer, the sentry and its stubs are born in the cgroup.
    let back_out = Leave(super::cgroup::enter(&cg).map_err(cleanup)?);
    let fifo = dir.join("start.fifo");
    if hold {
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .map_err(|e| cleanup(anyhow::anyhow!("start.fifo: {e}")))?;
    }

    let mut spec_file = std::fs::File::from(
        nix::sys::memfd::memfd_create("rvisor-spec", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .map_err(|e| cleanup(e.into()))?,
    );
    spec_file.write_all(serde_json::to_string(&spec)?.as_bytes()).map_err(|e| cleanup(e.into()))?;
    spec_file.rewind().map_err(|e| cleanup(e.into()))?;
    let spec_fd: OwnedFd = spec_file.into();
    let (ready_r, ready_w) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| cleanup(e.into()))?;

    // `exec` requests reach the sentry through this socket.
    let control =
        super::exec::listen(&dir).map_err(|e| cleanup(anyhow::Error::from(e).context("control socket")))?;
    let (gofer_ends, sentry_ends) = gofer_channels().map_err(cleanup)?;
    let mut gofer = spawn_gofer(g, &spec, &gofer_ends, true).map_err(cleanup)?;
    drop(gofer_ends);
    for fd in [&spec_fd, &ready_w, &control].into_iter().chain(&sentry_ends) {
        nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()))
            .map_err(|e| cleanup(e.into()))?;
    }
    // A terminal: a host pty whose master goes to the console socket; its
    // replica (raw: the line discipline is the sandbox's) becomes the
    // sentry's stdio and controlling terminal, bridged to the sandbox's
    // console.
    let replica = match console_socket {
        Some(sock) => {
            let size = spec.process().as_ref().and_then(|p| p.console_size());
            Some(host_console(sock, size).map_err(cleanup)?)
        }
        None => None,
    };
    let mut cmd = Command::new(std::env::current_exe().context("current_exe")?);
    cmd.args(sentry_flags(g, "none"));
    if let Some(l) = &g.log {
        // Where the sentry's own errors go (its stderr is the container's).
        cmd.arg(format!("--log={}", l.display())).arg(format!("--log-format={}", g.log_format));
    }
    cmd.arg("boot")
        .arg(format!("--spec-fd={}", spec_fd.as_raw_fd()))
        .arg(format!("--gofer-fds={}", fd_list(&sentry_ends)))
        .arg(format!("--exe-path={exe}"))
        .arg(format!("--id={id}"))
        .arg(format!("--ready-fd={}", ready_w.as_raw_fd()))
        .arg(format!("--control-fd={}", control.as_raw_fd()))
        .arg("--container")
        .arg(format!("--preserve-fds={preserve_fds}"));
    if hold {
        cmd.arg(format!("--start-fifo={}", fifo.display()));
    }
    if let Some(r) = &replica {
        // The sentry makes a session of its own with the replica as its
        // controlling terminal (window-size changes reach it as SIGWINCH).
        let io = |f: &OwnedFd| -> anyhow::Result<std::process::Stdio> { Ok(f.try_clone()?.into()) };
        cmd.arg("--console").stdin(io(r)?).stdout(io(r)?).stderr(io(r)?);
    } else if hold {
        // The container outlives `create`: a process group of its own, so
        // the caller's terminal signals do not reach it.
        cmd.process_group(0);
    }
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            let _ = gofer.kill();
            return Err(cleanup(anyhow::Error::from(e).context("start the sentry")));
        }
    };
    drop((spec_fd, ready_w, sentry_ends, replica, control));
    drop(back_out);
    // The sentry says "ok" once the program is loaded, or why it is not.
    let mut msg = String::new();
    let _ = std::fs::File::from(ready_r).read_to_string(&mut msg);
    let pid = i32::try_from(child.id()).unwrap_or(0);
    if msg.trim() != "ok" {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        let _ = gofer.kill();
        let why = if msg.trim().is_empty() {
            "the sentry exited before the container was ready".into()
        } else {
            msg
        };
        return Err(cleanup(anyhow::anyhow!("{}", why.trim())));
    }
    let saved = Saved {
        id: id.to_string(),
        bundle,
        rootfs,
        pid,
        pid_start: proc_start(pid).unwrap_or(0),
        cgroup: cg.clone(),
        created: now_rfc3339(),
        started: !hold,
        annotations: spec.annotations().as_ref().map_or(json!({}), |a| json!(a)),
    };
    saved.save(&dir).map_err(cleanup)?;
    let _ = std::fs::write(dir.join("config.json"), serde_json::to_vec(&spec).unwrap_or_default());
    // The create hooks, on the host: the sandbox exists, its program has
    // not run. A failure destroys the container.
    let st = saved.state();
    for (kind, status) in [
        (HookKind::Prestart, "creating"),
        (HookKind::CreateRuntime, "creating"),
        (HookKind::CreateContainer, "creating"),
    ] {
        if let Err(e) = run_hooks(&spec, kind, &st, status) {
            kill_and_wait(&saved);
            let _ = gofer.kill();
            return Err(cleanup(e));
        }
    }
    if let Some(p) = pid_file {
        write_pid_file(p, pid).map_err(|e| cleanup(e.into()))?;
    }
    Ok(Launched { child, saved, dir })
}

/// Writes `pid` to the pid file `p`, whole or not at all (as runc does).
pub(super) fn write_pid_file(p: &Path, pid: impl std::fmt::Display) -> std::io::Result<()> {
    let tmp = p.with_extension("rvisor-tmp");
    std::fs::write(&tmp, pid.to_string())?;
    std::fs::rename(&tmp, p)
}

/// Moves this process back out of the container's cgroup when dropped.
struct Leave(Vec<(PathBuf, String)>);

impl Drop for Leave {
    fn drop(&mut self) {
        super::cgroup::leave(&self.0);
    }
}

/// A host pty for a container's terminal: the master is sent over the
/// console socket (`SCM_RIGHTS`, as runc sends it); returns the replica,
/// in raw mode, sized as the spec's `consoleSize` says.
pub(super) fn host_console(sock: &Path, size: Option<oci_spec::runtime::Box>) -> anyhow::Result<OwnedFd> {
    use rustix::pty::{grantpt, openpt, ptsname, unlockpt, OpenptFlags};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC).context("ptmx")?;
    grantpt(&master).context("grantpt")?;
    unlockpt(&master).context("unlockpt")?;
    let name = ptsname(&master, Vec::new()).context("ptsname")?;
    let replica: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(std::ffi::OsStr::from_bytes(name.as_bytes()))
        .context("pty replica")?
        .into();
    let mut t = rustix::termios::tcgetattr(&replica).context("tcgetattr")?;
    t.make_raw();
    rustix::termios::tcsetattr(&replica, rustix::termios::OptionalActions::Now, &t).context("tcsetattr")?;
    if let Some(b) = size {
        let w = rustix::termios::Winsize {
            ws_row: u16::try_from(b.height()).unwrap_or(u16::MAX),
            ws_col: u16::try_from(b.width()).unwrap_or(u16::MAX),
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        let _ = rustix::termios::tcsetwinsize(&master, w);
    }
    let conn = std::os::unix::net::UnixStream::connect(sock)
        .with_context(|| format!("console socket {}", sock.display()))?;
    let fds = [std::os::fd::AsFd::as_fd(&master)];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = rustix::net::SendAncillaryBuffer::new(&mut space);
    anc.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
    let iov = [std::io::IoSlice::new(name.as_bytes())];
    rustix::net::sendmsg(&conn, &iov, &mut anc, rustix::net::SendFlags::empty())
        .context("send the console")?;
    Ok(replica)
}

/// `rvisor create`.
pub fn create(g: &Global, a: &CreateArgs) -> anyhow::Result<i32> {
    let l = launch(
        g,
        &a.id,
        &a.bundle,
        a.pid_file.as_deref(),
        true,
        a.console_socket.as_deref(),
        a.preserve_fds,
    )?;
    // The sentry is not waited for here: the caller (a shim) reaps it.
    std::mem::forget(l.child);
    Ok(0)
}

fn do_start(dir: &Path, s: &mut Saved) -> anyhow::Result<()> {
    match s.status() {
        "created" => {}
        "running" => bail!("cannot start an already running container"),
        _ => bail!("cannot start a container that has stopped"),
    }
    let spec = saved_spec(dir);
    if let Some(spec) = &spec {
        run_hooks(spec, HookKind::StartContainer, &s.state(), "created")?;
    }
    let f = std::fs::OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(dir.join("start.fifo"))
        .context("start.fifo")?;
    (&f).write_all(b"s").context("start.fifo")?;
    s.started = true;
    s.save(dir)?;
    if let Some(spec) = &spec {
        // A poststart failure is reported; the container keeps running.
        // (runc hands poststart hooks a "created" state.)
        if let Err(e) = run_hooks(spec, HookKind::Poststart, &s.state(), "created") {
            eprintln!("rvisor: {e:#}");
        }
    }
    Ok(())
}

/// `rvisor start`.
pub fn start(g: &Global, a: &IdArgs) -> anyhow::Result<i32> {
    let (dir, mut s) = load(g, &a.id)?;
    do_start(&dir, &mut s)?;
    Ok(0)
}

/// `rvisor state`.
pub fn state(g: &Global, a: &IdArgs) -> anyhow::Result<i32> {
    let (_, s) = load(g, &a.id)?;
    println!("{}", serde_json::to_string_pretty(&s.state())?);
    Ok(0)
}

/// A signal by name (`KILL`, `SIGKILL`) or number.
fn parse_signal(s: &str) -> anyhow::Result<nix::sys::signal::Signal> {
    use std::str::FromStr;
    if let Ok(n) = s.parse::<i32>() {
        return nix::sys::signal::Signal::try_from(n).map_err(|_| anyhow::anyhow!("invalid signal: {s}"));
    }
    let up = s.to_ascii_uppercase();
    let name = if up.starts_with("SIG") { up } else { format!("SIG{up}") };
    nix::sys::signal::Signal::from_str(&name).map_err(|_| anyhow::anyhow!("invalid signal: {s}"))
}

/// `rvisor kill`: the signal goes to the container's init, inside the
/// sandbox (`SIGKILL` ends the sandbox itself).
pub fn kill(g: &Global, a: &KillArgs) -> anyhow::Result<i32> {
    let (_, s) = load(g, &a.id)?;
    let sig = parse_signal(a.signal.as_deref().unwrap_or("SIGTERM"))?;
    if s.status() == "stopped" {
        bail!("container not running");
    }
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(s.pid), sig).context("kill")?;
    Ok(0)
}

/// Kills the sentry and waits (at most 10 s) until it is gone.
fn kill_and_wait(s: &Saved) {
    let pid = nix::unistd::Pid::from_raw(s.pid);
    if proc_start(s.pid) == Some(s.pid_start) {
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
    }
    let end = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while proc_start(s.pid) == Some(s.pid_start) && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// `rvisor delete`.
pub fn delete(g: &Global, a: &DeleteArgs) -> anyhow::Result<i32> {
    let (dir, s) = match load(g, &a.id) {
        Ok(x) => x,
        Err(_) if a.force => return Ok(0),
        Err(e) => return Err(e),
    };
    match s.status() {
        "running" if !a.force => bail!("cannot delete container {} that is not stopped: running", a.id),
        "stopped" => {}
        _ => kill_and_wait(&s),
    }
    let spec = saved_spec(&dir);
    std::fs::remove_dir_all(&dir).with_context(|| format!("{}", dir.display()))?;
    if !s.cgroup.is_empty() {
        super::cgroup::remove(&s.cgroup);
    }
    if let Some(spec) = spec {
        if let Err(e) = run_hooks(&spec, HookKind::Poststop, &s.state(), "stopped") {
            eprintln!("rvisor: {e:#}");
        }
    }
    Ok(0)
}

/// `rvisor run`: create, start, and (without `--detach`) wait for the
/// container and delete it, exiting with its status.
pub fn run(g: &Global, a: &RunArgs) -> anyhow::Result<i32> {
    if a.detach {
        let mut l = launch(
            g,
            &a.create.id,
            &a.create.bundle,
            a.create.pid_file.as_deref(),
            true,
            a.create.console_socket.as_deref(),
            a.create.preserve_fds,
        )?;
        do_start(&l.dir, &mut l.saved)?;
        std::mem::forget(l.child);
        return Ok(0);
    }
    let mut l = launch(
        g,
        &a.create.id,
        &a.create.bundle,
        a.create.pid_file.as_deref(),
        true,
        a.create.console_socket.as_deref(),
        a.create.preserve_fds,
    )?;
    // Signals sent to `run` go to the container's init, as runc forwards
    // them.
    use nix::sys::signal::{SigSet, Signal};
    let mut mask = SigSet::empty();
    for sig in super::FORWARDED.iter().chain(super::CONTAINER_FORWARDED.iter()) {
        mask.add(*sig);
    }
    mask.thread_block()?;
    let sigfd = nix::sys::signalfd::SignalFd::new(&mask)?;
    let pid = nix::unistd::Pid::from_raw(l.saved.pid);
    std::thread::spawn(move || {
        while let Ok(Some(info)) = sigfd.read_signal() {
            if let Ok(sig) = Signal::try_from(i32::try_from(info.ssi_signo).unwrap_or(0)) {
                let _ = nix::sys::signal::kill(pid, sig);
            }
        }
    });
    // Started as `start` starts it (its hooks run), then waited for.
    do_start(&l.dir, &mut l.saved)?;
    let status = l.child.wait()?;
    let spec = saved_spec(&l.dir);
    let _ = std::fs::remove_dir_all(&l.dir);
    super::cgroup::remove(&l.saved.cgroup);
    if let Some(spec) = spec {
        if let Err(e) = run_hooks(&spec, HookKind::Poststop, &l.saved.state(), "stopped") {
            eprintln!("rvisor: {e:#}");
        }
    }
    use std::os::unix::process::ExitStatusExt;
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}

/// `rvisor list`.
pub fn list(g: &Global, a: &ListArgs) -> anyhow::Result<i32> {
    let mut all = Vec::new();
    if let Ok(rd) = std::fs::read_dir(&g.root) {
        for e in rd.flatten() {
            let id = e.file_name().to_string_lossy().into_owned();
            if let Ok((_, s)) = load(g, &id) {
                all.push(s);
            }
        }
    }
    all.sort_by(|x, y| x.id.cmp(&y.id));
    if a.quiet {
        for s in &all {
            println!("{}", s.id);
        }
    } else if a.format == "json" {
        let v: Vec<Value> = all.iter().map(Saved::state).collect();
        println!("{}", serde_json::to_string(&v)?);
    } else {
        println!("{:<12}{:<8}{:<10}{:<40}{:<32}OWNER", "ID", "PID", "STATUS", "BUNDLE", "CREATED");
        for s in &all {
            let st = s.status();
            let pid = if st == "stopped" { 0 } else { s.pid };
            println!("{:<12}{:<8}{:<10}{:<40}{:<32}root", s.id, pid, st, s.bundle.display(), s.created);
        }
    }
    Ok(0)
}

/// `rvisor spec`: a starting `config.json`, as `runc spec` writes one.
pub fn spec(_g: &Global, a: &SpecArgs) -> anyhow::Result<i32> {
    let path = a.bundle.join("config.json");
    if path.exists() {
        bail!("File {} exists. Remove it first", path.display());
    }
    let mut spec = Spec::default();
    spec.set_hostname(Some("rvisor".into()));
    std::fs::write(&path, serde_json::to_string_pretty(&spec)?)
        .with_context(|| format!("{}", path.display()))?;
    Ok(0)
}

/// `rvisor features`: the OCI features document (dockerd reads it).
pub fn features(_g: &Global) -> anyhow::Result<i32> {
    let v = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": OCI_VERSION,
        "hooks": [],
        "mountOptions": ["ro", "rw", "bind", "rbind", "nosuid", "suid", "nodev", "dev", "noexec", "exec"],
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "user", "uts"],
            "capabilities": [],
            "cgroup": {"v1": true, "v2": false, "systemd": false, "systemdUser": false},
            "seccomp": {"enabled": false},
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false}
        },
        "annotations": {"org.opencontainers.runtime-spec.features.runtime": "rvisor"}
    });
    println!("{}", serde_json::to_string_pretty(&v)?);
    Ok(0)
}

/// `rvisor pause`: the sandbox's host cgroup is frozen (sentry, gofer and
/// stubs: the application stops wherever it is).
pub fn pause(g: &Global, a: &IdArgs) -> anyhow::Result<i32> {
    let (_, s) = load(g, &a.id)?;
    if s.status() != "running" {
        bail!("container not running");
    }
    super::cgroup::freeze(&s.cgroup, true)?;
    Ok(0)
}

/// `rvisor resume`.
pub fn resume(g: &Global, a: &IdArgs) -> anyhow::Result<i32> {
    let (_, s) = load(g, &a.id)?;
    if s.status() != "paused" {
        bail!("container not paused");
    }
    super::cgroup::freeze(&s.cgroup, false)?;
    Ok(0)
}

/// `rvisor ps`: the sandbox's host processes (the sentry, its gofer and
/// stubs), as runc prints the container's.
pub fn ps(g: &Global, a: &PsArgs) -> anyhow::Result<i32> {
    let (_, s) = load(g, &a.id)?;
    if s.status() == "stopped" {
        bail!("container not running");
    }
    let pids = super::cgroup::pids(&s.cgroup);
    if a.format == "json" {
        println!("{}", serde_json::to_string(&pids)?);
        return Ok(0);
    }
    let out = Command::new("ps").arg("-ef").output().context("ps -ef")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    if let Some(h) = lines.next() {
        println!("{h}");
    }
    for l in lines {
        let pid = l.split_whitespace().nth(1).and_then(|p| p.parse::<i32>().ok());
        if pid.is_some_and(|p| pids.contains(&p)) {
            println!("{l}");
        }
    }
    Ok(0)
}

/// `rvisor events`: runc's stats document, once (`--stats`) or every
/// `--interval` until the container stops.
pub fn events(g: &Global, a: &EventsArgs) -> anyhow::Result<i32> {
    let (_, s) = load(g, &a.id)?;
    let interval = parse_duration(&a.interval)?;
    loop {
        if s.status() == "stopped" {
            bail!("container not running");
        }
        let v = json!({"type": "stats", "id": s.id, "data": super::cgroup::stats(&s.cgroup)});
        println!("{v}");
        if a.stats {
            return Ok(0);
        }
        std::thread::sleep(interval);
    }
}

/// `5s`, `100ms`, `1m`, or seconds.
fn parse_duration(s: &str) -> anyhow::Result<Duration> {
    let (n, unit) = s.find(|c: char| !c.is_ascii_digit() && c != '.').map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = n.parse().with_context(|| format!("invalid duration {s}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => bail!("invalid duration {s}"),
    };
    Duration::try_from_secs_f64(secs).map_err(|_| anyhow::anyhow!("invalid duration {s}"))
}

/// `rvisor update`: new limits for the sandbox's cgroup.
pub fn update(g: &Global, a: &UpdateArgs) -> anyhow::Result<i32> {
    let (_, s) = load(g, &a.id)?;
    if s.status() == "stopped" {
        bail!("container not running");
    }
    let mut res: oci_spec::runtime::LinuxResources = match a.resources.as_deref() {
        Some("-") => serde_json::from_reader(std::io::stdin()).context("resources from stdin")?,
        Some(f) => {
            serde_json::from_slice(&std::fs::read(f).with_context(|| f.to_string())?).context("resources")?
        }
        None => oci_spec::runtime::LinuxResources::default(),
    };
    if let Some(m) = a.memory {
        let mut mem = res.memory().unwrap_or_default();
        mem.set_limit(Some(m));
        res.set_memory(Some(mem));
    }
    if let Some(p) = a.pids_limit {
        res.set_pids(Some(oci_spec::runtime::LinuxPidsBuilder::default().limit(p).build()?));
    }
    if a.cpu_quota.is_some() || a.cpu_period.is_some() || a.cpu_shares.is_some() {
        let mut cpu = res.cpu().clone().unwrap_or_default();
        if a.cpu_quota.is_some() {
            cpu.set_quota(a.cpu_quota);
        }
        cpu.set_period(a.cpu_period.or(cpu.period()).or(Some(100_000)));
        if a.cpu_shares.is_some() {
            cpu.set_shares(a.cpu_shares);
        }
        res.set_cpu(Some(cpu));
    }
    super::cgroup::update(&s.cgroup, &res)?;
    Ok(0)
}
