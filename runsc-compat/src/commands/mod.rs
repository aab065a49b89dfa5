//! One module per verb.

pub mod boot;
pub mod cgroup;
pub mod confine;
pub mod do_cmd;
pub mod exec;
pub mod gofer;
pub mod oci;

use std::os::fd::OwnedFd;

/// Signals forwarded into the sandbox (to the container's init), as runc
/// forwards them to its init.
pub const FORWARDED: [nix::sys::signal::Signal; 6] = {
    use nix::sys::signal::Signal::*;
    [SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2]
};

/// Signals an OCI container's init gets besides [`FORWARDED`] (`kill`
/// sends them to the sentry; `SIGKILL` and `SIGSTOP` act on the sentry
/// itself, the fault signals stay the sentry's own).
pub const CONTAINER_FORWARDED: [nix::sys::signal::Signal; 13] = {
    use nix::sys::signal::Signal::*;
    [
        SIGALRM, SIGCONT, SIGTSTP, SIGTTIN, SIGTTOU, SIGURG, SIGXCPU, SIGXFSZ, SIGVTALRM, SIGPROF, SIGIO,
        SIGPWR, SIGSTKFLT,
    ]
};

/// Takes ownership of the comma-separated descriptors in `list`.
pub fn adopt_fds(list: &str) -> anyhow::Result<Vec<OwnedFd>> {
    list.split(',').filter(|s| !s.is_empty()).map(|s| adopt_fd(s.trim().parse()?)).collect()
}

/// Takes ownership of descriptor `fd`, inherited from the process that
/// started this one and named on the command line.
#[allow(unsafe_code)]
pub fn adopt_fd(fd: i32) -> anyhow::Result<OwnedFd> {
    use std::os::fd::FromRawFd;
    anyhow::ensure!(fd > 2, "descriptor {fd} is not an inherited one");
    nix::fcntl::fcntl(
        // SAFETY: only used for the F_GETFD probe below, while `fd` is open.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
        nix::fcntl::FcntlArg::F_GETFD,
    )
    .map_err(|e| anyhow::anyhow!("descriptor {fd}: {e}"))?;
    // SAFETY: the verb's contract: the parent opened `fd` for this process
    // and named it once on the command line; nothing else here owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
