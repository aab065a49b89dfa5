//! `rvisor do`: run a command in a sandbox over the host's root, with no
//! bundle. The spec is built in memory and booted exactly as `create` +
//! `start` boot one: `rvisor boot` (the sentry) started with the spec and
//! the descriptors it needs on inherited descriptors.

use std::io::{Seek, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use oci_spec::runtime::{
    MountBuilder, PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, UserBuilder,
};

use crate::cli::{DoArgs, Global};

/// Why a program cannot be executed, with the exit code a shell uses.
enum Unrunnable {
    NotFound,
    Denied(&'static str),
}

fn executable(p: &Path) -> Result<(), Unrunnable> {
    let md = std::fs::metadata(p).map_err(|_| Unrunnable::NotFound)?;
    if md.is_dir() {
        return Err(Unrunnable::Denied("Is a directory"));
    }
    if !md.is_file() || md.permissions().mode() & 0o111 == 0 {
        return Err(Unrunnable::Denied("Permission denied"));
    }
    if rustix::fs::access(p, rustix::fs::Access::EXEC_OK).is_err() && md.uid() != 0 {
        return Err(Unrunnable::Denied("Permission denied"));
    }
    Ok(())
}

/// Finds `prog` as `execvp` would, in the host's `PATH`.
fn resolve(prog: &str) -> Result<PathBuf, Unrunnable> {
    if prog.contains('/') {
        let p = PathBuf::from(prog);
        executable(&p)?;
        return Ok(p);
    }
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/local/bin:/usr/bin:/bin".into());
    let mut denied = None;
    for dir in path.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let cand = Path::new(dir).join(prog);
        match executable(&cand) {
            Ok(()) => return Ok(cand),
            Err(Unrunnable::Denied(why)) if cand.exists() => denied = Some(why),
            Err(_) => {}
        }
    }
    Err(denied.map_or(Unrunnable::NotFound, Unrunnable::Denied))
}

fn host_rlimits() -> Vec<oci_spec::runtime::PosixRlimit> {
    use nix::sys::resource::{getrlimit, Resource as R};
    let all = [
        (R::RLIMIT_CPU, PosixRlimitType::RlimitCpu),
        (R::RLIMIT_FSIZE, PosixRlimitType::RlimitFsize),
        (R::RLIMIT_DATA, PosixRlimitType::RlimitData),
        (R::RLIMIT_STACK, PosixRlimitType::RlimitStack),
        (R::RLIMIT_CORE, PosixRlimitType::RlimitCore),
        (R::RLIMIT_RSS, PosixRlimitType::RlimitRss),
        (R::RLIMIT_NPROC, PosixRlimitType::RlimitNproc),
        (R::RLIMIT_NOFILE, PosixRlimitType::RlimitNofile),
        (R::RLIMIT_MEMLOCK, PosixRlimitType::RlimitMemlock),
        (R::RLIMIT_AS, PosixRlimitType::RlimitAs),
        (R::RLIMIT_LOCKS, PosixRlimitType::RlimitLocks),
        (R::RLIMIT_SIGPENDING, PosixRlimitType::RlimitSigpending),
        (R::RLIMIT_MSGQUEUE, PosixRlimitType::RlimitMsgqueue),
        (R::RLIMIT_NICE, PosixRlimitType::RlimitNice),
        (R::RLIMIT_RTPRIO, PosixRlimitType::RlimitRtprio),
        (R::RLIMIT_RTTIME, PosixRlimitType::RlimitRttime),
    ];
    all.into_iter()
        .filter_map(|(r, t)| {
            let (soft, hard) = getrlimit(r).ok()?;
            PosixRlimitBuilder::default().typ(t).soft(soft).hard(hard).build().ok()
        })
        .collect()
}

/// The spec `do` boots: the host's root, read-only; the caller's
/// environment (plus `-e`), working directory (or `--cwd`), ids and
/// limits; the sandbox's own hostname; `--volume` bind mounts and
/// `--tmpfs` mounts.
fn build_spec(a: &DoArgs) -> anyhow::Result<Spec> {
    let mut env: Vec<String> = std::env::vars_os()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    for e in &a.env {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        env.retain(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) != key);
        env.push(e.clone());
    }
    let cwd = match &a.cwd {
        Some(c) => c.clone(),
        None => std::env::current_dir().map_or_else(|_| "/".into(), |p| p.to_string_lossy().into_owned()),
    };
    let (uid, gid) = match &a.user {
        None => (nix::unistd::getuid().as_raw(), nix::unistd::getgid().as_raw()),
        Some(u) => parse_user(u)?,
    };
    let user = UserBuilder::default().uid(uid).gid(gid).build()?;
    let process = ProcessBuilder::default()
        .args(a.command.clone())
        .env(env)
        .cwd(cwd)
        .user(user)
        .rlimits(host_rlimits())
        .terminal(a.tty)
        .build()?;
    let mut process = process;
    // The caller's capabilities, not oci-spec's default container set:
    // root in a `do` sandbox has every capability (inside it), as the
    // caller has on the host.
    process.set_capabilities(None);
    // Nor does oci-spec's default no_new_privs apply: the caller's.
    process.set_no_new_privileges(None);
    if a.tty {
        let w = rustix::termios::tcgetwinsize(rustix::stdio::stdin()).context("window size")?;
        process.set_console_size(Some(
            oci_spec::runtime::BoxBuilder::default()
                .height(u32::from(w.ws_row))
                .width(u32::from(w.ws_col))
                .build()?,
        ));
    }
    let mut spec = Spec::default();
    spec.set_process(Some(process));
    spec.set_root(Some(RootBuilder::default().path("/").readonly(true).build()?));
    spec.set_hostname(Some(a.hostname.clone()));
    let mut mounts = Vec::new();
    for v in &a.volumes {
        let mut parts = v.splitn(3, ':');
        let (Some(src), Some(dst)) = (parts.next(), parts.next()) else {
            anyhow::bail!("--volume wants SRC:DST[:ro], got {v}");
        };
        let ro = match parts.next() {
            None | Some("rw") => false,
            Some("ro") => true,
            Some(o) => anyhow::bail!("--volume option must be ro or rw, got {o}"),
        };
        let src = std::fs::canonicalize(src).with_context(|| format!("volume source {src}"))?;
        anyhow::ensure!(src.is_dir(), "volume source {} is not a directory", src.display());
        anyhow::ensure!(dst.starts_with('/'), "volume destination {dst} is not absolute");
        mounts.push(
            MountBuilder::default()
                .typ("bind")
                .source(src)
                .destination(dst)
                .options(vec!["rbind".to_string(), if ro { "ro" } else { "rw" }.to_string()])
                .build()?,
        );
    }
    for t in &a.tmpfs {
        let (dst, opts) = t.split_once(':').unwrap_or((t, ""));
        anyhow::ensure!(dst.starts_with('/'), "--tmpfs destination {dst} is not absolute");
        let options: Vec<String> = opts.split(',').filter(|o| !o.is_empty()).map(str::to_string).collect();
        mounts.push(
            MountBuilder::default().typ("tmpfs").source("tmpfs").destination(dst).options(options).build()?,
        );
    }
    spec.set_mounts(Some(mounts));
    Ok(spec)
}

/// `UID[:GID]`, numeric; the group defaults to the user id.
fn parse_user(u: &str) -> anyhow::Result<(u32, u32)> {
    let (uid, gid) = u.split_once(':').unwrap_or((u, u));
    let n = |s: &str| s.parse::<u32>().with_context(|| format!("--user wants numeric UID[:GID], got {u}"));
    Ok((n(uid)?, n(gid)?))
}

fn inheritable(fd: &OwnedFd) -> anyhow::Result<()> {
    nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()))?;
    Ok(())
}

/// Channels between the sentry and the gofer.
pub const GOFER_CHANNELS: usize = 4;

/// Socket pairs for the gofer channels: (gofer ends, sentry ends), all
/// close-on-exec until a child is about to inherit its own ends.
pub fn gofer_channels() -> anyhow::Result<(Vec<OwnedFd>, Vec<OwnedFd>)> {
    let mut g = Vec::new();
    let mut s = Vec::new();
    for _ in 0..GOFER_CHANNELS {
        let (a, b) = rustix::net::socketpair(
            rustix::net::AddressFamily::UNIX,
            rustix::net::SocketType::SEQPACKET,
            rustix::net::SocketFlags::CLOEXEC,
            None,
        )?;
        g.push(a);
        s.push(b);
    }
    Ok((g, s))
}

/// Comma-separated descriptor numbers.
pub fn fd_list(fds: &[OwnedFd]) -> String {
    fds.iter().map(|f| f.as_raw_fd().to_string()).collect::<Vec<_>>().join(",")
}

/// Starts `rvisor gofer` serving the spec's root (read-only per the spec)
/// and bind mounts on `ends` (which it inherits). `detached`: it
/// keeps none of the caller's standard descriptors (a container outlives
/// `create`, whose caller may wait for their end; its errors reach the
/// sentry as EIO and the debug log).
pub fn spawn_gofer(
    g: &Global,
    spec: &Spec,
    ends: &[OwnedFd],
    detached: bool,
) -> anyhow::Result<std::process::Child> {
    let root_ro = spec.root().as_ref().is_some_and(|r| r.readonly() == Some(true));
    let root = spec.root().as_ref().map_or_else(|| PathBuf::from("/"), |r| r.path().clone());
    let mut cmd = Command::new(std::env::current_exe().context("current_exe")?);
    if let Some(d) = &g.debug_log {
        cmd.arg(format!("--debug-log={}", d.display()));
    }
    cmd.arg("gofer").arg(format!("--channel-fds={}", fd_list(ends)));
    cmd.arg(format!("--export={}:{}", root.display(), if root_ro { "ro" } else { "rw" }));
    for (src, _, ro) in rvisor_sentry::boot::bind_mounts(spec) {
        cmd.arg(format!("--export={src}:{}", if ro { "ro" } else { "rw" }));
    }
    for e in ends {
        inheritable(e)?;
    }
    cmd.stdin(std::process::Stdio::null());
    if detached {
        cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::null());
    }
    let child = cmd.spawn().context("start the gofer")?;
    Ok(child)
}

/// Global flags the sentry needs too (`overlay`: the overlay unless
/// `--overlay` says otherwise).
pub fn sentry_flags(g: &Global, overlay: &str) -> Vec<String> {
    let platform = match g.platform {
        crate::cli::PlatformKind::Ptrace => "ptrace",
        crate::cli::PlatformKind::Systrap => "systrap",
    };
    let mut v = vec![format!("--platform={platform}")];
    if g.strace {
        v.push("--strace".into());
    }
    if g.debug {
        v.push("--debug".into());
    }
    if g.no_vdso {
        v.push("--no-vdso".into());
    }
    v.push(format!("--overlay={}", g.overlay.as_deref().unwrap_or(overlay)));
    if let Some(d) = &g.debug_log {
        v.push(format!("--debug-log={}", d.display()));
    }
    v
}

/// The caller's terminal in raw mode until dropped.
struct RawTerminal {
    saved: rustix::termios::Termios,
}

impl RawTerminal {
    fn enter() -> anyhow::Result<RawTerminal> {
        use rustix::termios::{tcgetattr, tcsetattr, OptionalActions};
        let stdin = rustix::stdio::stdin();
        let saved = tcgetattr(stdin).context("terminal settings")?;
        let mut raw = saved.clone();
        raw.make_raw();
        tcsetattr(stdin, OptionalActions::Now, &raw).context("raw terminal")?;
        Ok(RawTerminal { saved })
    }
}

impl Drop for RawTerminal {
    fn drop(&mut self) {
        let _ = rustix::termios::tcsetattr(
            rustix::stdio::stdin(),
            rustix::termios::OptionalActions::Now,
            &self.saved,
        );
    }
}

/// Runs `rvisor do`; returns the exit code (the application's status, 128+N
/// if it was killed by signal N, 127/126 if it could not be executed).
pub fn run(g: &Global, a: &DoArgs) -> anyhow::Result<i32> {
    let prog = &a.command[0];
    // A relative path names a file in the sandbox's working directory,
    // which `--cwd` may move away from the caller's.
    let located = match &a.cwd {
        Some(cwd) if prog.contains('/') && !prog.starts_with('/') => {
            format!("{}/{prog}", cwd.trim_end_matches('/'))
        }
        _ => prog.clone(),
    };
    let path = match resolve(&located) {
        Ok(p) => p,
        Err(Unrunnable::NotFound) if prog.contains('/') => {
            eprintln!("rvisor: {prog}: No such file or directory");
            return Ok(127);
        }
        Err(Unrunnable::NotFound) => {
            eprintln!("rvisor: {prog}: command not found");
            return Ok(127);
        }
        Err(Unrunnable::Denied(why)) => {
            eprintln!("rvisor: {prog}: {why}");
            return Ok(126);
        }
    };
    let path = std::path::absolute(&path).unwrap_or(path);
    if a.tty && !rustix::termios::isatty(rustix::stdio::stdin()) {
        eprintln!("rvisor: -t: standard input is not a terminal");
        return Ok(125);
    }
    let spec = build_spec(a)?;
    // The host side of the console is raw: the sandbox's line discipline
    // edits, echoes and signals. Restored when the sandbox ends.
    let _raw = if a.tty { Some(RawTerminal::enter()?) } else { None };
    let mut spec_file = std::fs::File::from(
        nix::sys::memfd::memfd_create("rvisor-spec", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .context("memfd_create")?,
    );
    spec_file.write_all(serde_json::to_string(&spec)?.as_bytes())?;
    spec_file.rewind()?;
    let spec_fd: OwnedFd = spec_file.into();

    // Signals aimed at this process are forwarded; those the terminal
    // sends to the whole foreground group reach the sentry directly.
    let mut mask = SigSet::empty();
    for s in super::FORWARDED {
        mask.add(s);
    }
    mask.thread_block()?;
    let sigfd = SignalFd::new(&mask)?;

    let (gofer_ends, sentry_ends) = gofer_channels()?;
    let mut gofer = spawn_gofer(g, &spec, &gofer_ends, false)?;
    drop(gofer_ends);
    inheritable(&spec_fd)?;
    for e in &sentry_ends {
        inheritable(e)?;
    }
    let self_exe = std::env::current_exe().context("current_exe")?;
    let mut cmd = Command::new(self_exe);
    cmd.args(sentry_flags(g, "memory"))
        .arg("boot")
        .arg(format!("--spec-fd={}", spec_fd.as_raw_fd()))
        .arg(format!("--gofer-fds={}", fd_list(&sentry_ends)))
        .arg(format!("--exe-path={}", path.display()))
        .arg(format!("--id=do-{}", std::process::id()))
        .arg("--parent-death-kill");
    let mut child = cmd.spawn().context("start the sentry")?;
    drop(spec_fd);
    drop(sentry_ends);
    let pid = nix::unistd::Pid::from_raw(i32::try_from(child.id()).unwrap_or(0));
    std::thread::spawn(move || {
        const SI_KERNEL: i32 = 0x80;
        while let Ok(Some(info)) = sigfd.read_signal() {
            let Ok(sig) = Signal::try_from(i32::try_from(info.ssi_signo).unwrap_or(0)) else { continue };
            if info.ssi_code != SI_KERNEL {
                let _ = nix::sys::signal::kill(pid, sig);
            }
        }
    });
    let status = child.wait()?;
    // The gofer ends when the sentry's channels close; never leave it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    while gofer.try_wait()?.is_none() {
        if std::time::Instant::now() > deadline {
            let _ = gofer.kill();
            let _ = gofer.wait();
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
