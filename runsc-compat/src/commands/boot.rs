//! `rvisor boot`: the sentry process of a sandbox. Started by the other
//! verbs with the spec and descriptors on inherited descriptors; exits with
//! the container's status (dying by the same signal if its init was
//! killed by one).

use std::io::{Read, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::Arc;

use anyhow::Context as _;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::SignalFd;
use oci_spec::runtime::Spec;
use rvisor_platform::ptrace::{Config, PtracePlatform};
use rvisor_platform::systrap::{SystrapConfig, SystrapPlatform};
use rvisor_sentry::boot::{boot, BootConfig, BootError};
use rvisor_sentry::kernel::{ExitStatus, KernelOptions};
use rvisor_sentry::Errno;

use super::{adopt_fd, adopt_fds};
use crate::cli::{BootArgs, Global, PlatformKind};

/// Size of the sandbox's (sparse) memory file.
const MEMORY_FILE_SIZE: u64 = 256 << 30;

fn dup_stdio(fd: i32) -> anyhow::Result<std::os::fd::OwnedFd> {
    let b = match fd {
        0 => rustix::stdio::stdin(),
        1 => rustix::stdio::stdout(),
        _ => rustix::stdio::stderr(),
    };
    Ok(rustix::io::fcntl_dupfd_cloexec(b, 3)?)
}

/// Runs the sentry; returns only on errors before the container started
/// (the exit code), otherwise exits with the container's status.
pub fn run(g: &Global, a: &BootArgs) -> anyhow::Result<i32> {
    if a.parent_death_kill {
        nix::sys::prctl::set_pdeathsig(Some(Signal::SIGKILL))?;
        if nix::unistd::getppid().as_raw() == 1 {
            return Ok(1);
        }
    }
    // Before any thread exists: signals for the sandbox are read from a
    // signalfd; SIGPIPE stays blocked so host writes fail with EPIPE.
    let forwarded: Vec<Signal> = if a.container {
        super::FORWARDED.iter().chain(super::CONTAINER_FORWARDED.iter()).copied().collect()
    } else {
        super::FORWARDED.to_vec()
    };
    let mut mask = SigSet::empty();
    for s in &forwarded {
        mask.add(*s);
    }
    mask.add(Signal::SIGPIPE);
    mask.add(Signal::SIGWINCH);
    mask.thread_block()?;
    let mut fwd = SigSet::empty();
    for s in &forwarded {
        fwd.add(*s);
    }
    fwd.add(Signal::SIGWINCH);
    let sigfd = SignalFd::new(&fwd)?;

    if a.console {
        // Window-size changes of the host terminal reach this process
        // (SIGWINCH) once it is the terminal's session leader.
        rustix::process::setsid().context("setsid")?;
        rustix::process::ioctl_tiocsctty(rustix::stdio::stdin()).context("TIOCSCTTY")?;
    }
    let mut spec_json = String::new();
    std::fs::File::from(adopt_fd(a.spec_fd)?).read_to_string(&mut spec_json)?;
    let spec: Spec = serde_json::from_str(&spec_json).context("spec")?;
    if a.container {
        join_network_namespace(&spec)?;
    }
    let gofer = adopt_fds(&a.gofer_fds)?;
    let stdio = [dup_stdio(0)?, dup_stdio(1)?, dup_stdio(2)?];
    let mut ready = a.ready_fd.map(adopt_fd).transpose()?.map(std::fs::File::from);
    let control = a.control_fd.map(adopt_fd).transpose()?;
    // `--preserve-fds N`: the caller's 3 … 3+N-1, for the init.
    let extra_fds = (0..a.preserve_fds)
        .map(|i| adopt_fd(3 + i32::try_from(i).unwrap_or(0)))
        .collect::<anyhow::Result<Vec<_>>>()
        .context("--preserve-fds")?;
    // The start FIFO is opened now: the sentry opens no path later.
    let start_gate = match &a.start_fifo {
        Some(p) => Some(OwnedFd::from(
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
                .open(p)
                .with_context(|| format!("{}", p.display()))?,
        )),
        None => None,
    };
    // Everything from the host's file system is read now: then the root
    // becomes an empty directory, before any thread exists.
    rvisor_platform::ptrace::prepare().context("ptrace platform")?;
    rvisor_sentry::prepare(!g.no_vdso);
    super::confine::raise_nofile();
    super::confine::empty_root().context("confine the sentry")?;
    let kind = if g.platform == PlatformKind::Systrap && !SystrapPlatform::supported() {
        tracing::warn!(
            "this host has no FSGSBASE (kernel 5.9+ on a CPU with it): systrap cannot run, using ptrace"
        );
        PlatformKind::Ptrace
    } else {
        g.platform
    };
    let platform: Arc<dyn rvisor_platform::Platform> = match kind {
        PlatformKind::Ptrace => Arc::new(PtracePlatform::new(Config::default()).context("ptrace platform")?),
        PlatformKind::Systrap => {
            Arc::new(SystrapPlatform::new(SystrapConfig::default()).context("systrap platform")?)
        }
    };
    super::confine::seccomp()?;
    let options = KernelOptions {
        strace: g.strace,
        strace_to_log: g.debug_log.is_some(),
        hostname: spec.hostname().clone().unwrap_or_else(|| "rvisor".into()),
        pids_limit: spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.pids().as_ref())
            .map(oci_spec::runtime::LinuxPids::limit)
            .and_then(|l| u64::try_from(l).ok())
            .filter(|&l| l > 0),
        memory_limit: spec
            .linux()
            .as_ref()
            .and_then(|l| l.resources().as_ref())
            .and_then(|r| r.memory().as_ref())
            .and_then(|m| m.limit())
            .and_then(|l| u64::try_from(l).ok())
            .filter(|&l| l > 0),
    };
    let cfg = BootConfig {
        spec,
        id: a.id.clone(),
        gofer,
        exe_path: a.exe_path.clone(),
        stdio,
        platform,
        options,
        memory_size: MEMORY_FILE_SIZE,
        start_gate,
        extra_fds,
        overlay: match g.overlay.as_deref().unwrap_or("memory") {
            "memory" => true,
            "none" => false,
            o => anyhow::bail!("--overlay must be memory or none, got {o}"),
        },
    };
    let sandbox = match boot(cfg) {
        Ok(s) => Arc::new(s),
        Err(BootError::Exec { path, errno }) => {
            if let Some(r) = &mut ready {
                let _ = writeln!(r, "exec {path}: {}", errno.description());
            }
            eprintln!("rvisor: {path}: {}", errno.description());
            return Ok(if errno == Errno::ENOENT { 127 } else { 126 });
        }
        Err(e) => {
            if let Some(r) = &mut ready {
                let _ = writeln!(r, "{e}");
            }
            return Err(e.into());
        }
    };
    if let Some(l) = control {
        super::exec::serve(sandbox.clone(), l).context("control thread")?;
    }
    if let Some(mut r) = ready.take() {
        let _ = r.write_all(b"ok\n");
    }
    let s = sandbox.clone();
    std::thread::Builder::new().name("host-signals".into()).spawn(move || {
        while let Ok(Some(info)) = sigfd.read_signal() {
            let signo = i32::try_from(info.ssi_signo).unwrap_or(0);
            // The host terminal was resized: with a console, the
            // sandbox's terminal follows (and signals its foreground
            // group); without, the host terminal is init's.
            if signo == Signal::SIGWINCH as i32 {
                if let Some(c) = &s.console {
                    c.resize();
                    continue;
                }
            }
            tracing::debug!(signo, "forwarding host signal");
            s.forward_signal(signo);
        }
    })?;
    // Start-up is over: what only it touched goes back to the host.
    rvisor_platform::trim_after_startup();
    let status = sandbox.wait();
    tracing::debug!(?status, "container exited");
    if let Some(c) = &sandbox.console {
        c.flush(std::time::Duration::from_secs(2));
    }
    exit_with(status)
}

/// The spec's network namespace, before any thread exists: a new one, or
/// the one at its path. The sandbox has no network stack of its own yet
/// (loopback only, inside); this keeps what a runtime hook configures for
/// the container (Docker's `libnetwork-setkey`) off the host's namespace.
fn join_network_namespace(spec: &Spec) -> anyhow::Result<()> {
    let ns = spec.linux().as_ref().and_then(|l| l.namespaces().clone()).unwrap_or_default();
    let Some(net) = ns.iter().find(|n| n.typ() == oci_spec::runtime::LinuxNamespaceType::Network) else {
        return Ok(());
    };
    match net.path() {
        Some(p) => {
            let f = std::fs::File::open(p).with_context(|| format!("network namespace {}", p.display()))?;
            rustix::thread::move_into_link_name_space(
                std::os::fd::AsFd::as_fd(&f),
                Some(rustix::thread::LinkNameSpaceType::Network),
            )
            .context("join the network namespace")?;
        }
        // Deprecated in rustix only for flags that break the process's own
        // invariants (CLONE_FILES, CLONE_FS); NEWNET is not one.
        #[allow(deprecated)]
        None => {
            rustix::thread::unshare(rustix::thread::UnshareFlags::NEWNET).context("new network namespace")?
        }
    }
    Ok(())
}

/// Exits with `status`: the same code, or death by the same signal (with
/// core dumps disabled: the host gets no core file of the sentry).
pub(super) fn exit_with(status: ExitStatus) -> ! {
    match status {
        ExitStatus::Code(c) => std::process::exit(i32::from(c)),
        ExitStatus::Signal { sig, .. } => {
            use nix::sys::resource::{setrlimit, Resource};
            let _ = setrlimit(Resource::RLIMIT_CORE, 0, 0);
            let _ = nix::sys::prctl::set_dumpable(false);
            if let Ok(s) = Signal::try_from(sig) {
                let mut m = SigSet::empty();
                m.add(s);
                let _ = m.thread_unblock();
                let _ = nix::sys::signal::raise(s);
                // Still here: the signal does not terminate by default.
            }
            std::process::exit(128 + sig)
        }
    }
}
