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
    PosixRlimitBuilder, PosixRlimitType, ProcessBuilder, RootBuilder, Spec, UserBuilder,
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
/// environment, working directory, ids and limits; the sandbox's own
/// hostname.
fn build_spec(a: &DoArgs) -> anyhow::Result<Spec> {
    let env: Vec<String> = std::env::vars_os()
        .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
        .collect();
    let cwd = std::env::current_dir().map_or_else(|_| "/".into(), |p| p.to_string_lossy().into_owned());
    let user = UserBuilder::default()
        .uid(nix::unistd::getuid().as_raw())
        .gid(nix::unistd::getgid().as_raw())
        .build()?;
    let process = ProcessBuilder::default()
        .args(a.command.clone())
        .env(env)
        .cwd(cwd)
        .user(user)
        .rlimits(host_rlimits())
        .terminal(false)
        .build()?;
    let mut spec = Spec::default();
    spec.set_process(Some(process));
    spec.set_root(Some(RootBuilder::default().path("/").readonly(true).build()?));
    spec.set_hostname(Some(a.hostname.clone()));
    Ok(spec)
}

fn inheritable(fd: &OwnedFd) -> anyhow::Result<()> {
    nix::fcntl::fcntl(fd.as_fd(), nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()))?;
    Ok(())
}

/// Global flags the sentry needs too.
pub fn sentry_flags(g: &Global) -> Vec<String> {
    let mut v = vec![format!("--platform={}", "ptrace")];
    if g.strace {
        v.push("--strace".into());
    }
    if g.debug {
        v.push("--debug".into());
    }
    if let Some(d) = &g.debug_log {
        v.push(format!("--debug-log={}", d.display()));
    }
    v
}

/// Runs `rvisor do`; returns the exit code (the application's status, 128+N
/// if it was killed by signal N, 127/126 if it could not be executed).
pub fn run(g: &Global, a: &DoArgs) -> anyhow::Result<i32> {
    let prog = &a.command[0];
    let path = match resolve(prog) {
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
    let exe: OwnedFd = std::fs::File::open(&path).with_context(|| format!("open {}", path.display()))?.into();
    let spec = build_spec(a)?;
    let mut spec_file = std::fs::File::from(
        nix::sys::memfd::memfd_create("rvisor-spec", nix::sys::memfd::MFdFlags::MFD_CLOEXEC)
            .context("memfd_create")?,
    );
    spec_file.write_all(serde_json::to_string(&spec)?.as_bytes())?;
    spec_file.rewind()?;
    let spec_fd: OwnedFd = spec_file.into();
    inheritable(&spec_fd)?;
    inheritable(&exe)?;

    // Signals aimed at this process are forwarded; those the terminal
    // sends to the whole foreground group reach the sentry directly.
    let mut mask = SigSet::empty();
    for s in super::FORWARDED {
        mask.add(s);
    }
    mask.thread_block()?;
    let sigfd = SignalFd::new(&mask)?;

    let self_exe = std::env::current_exe().context("current_exe")?;
    let mut cmd = Command::new(self_exe);
    cmd.args(sentry_flags(g))
        .arg("boot")
        .arg(format!("--spec-fd={}", spec_fd.as_raw_fd()))
        .arg(format!("--exe-fd={}", exe.as_raw_fd()))
        .arg(format!("--exe-path={}", path.display()))
        .arg(format!("--id=do-{}", std::process::id()))
        .arg("--parent-death-kill");
    let mut child = cmd.spawn().context("start the sentry")?;
    drop(spec_fd);
    drop(exe);
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
    Ok(status.code().unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
}
