//! The sentry's confinement, applied before it runs any application code:
//! its root becomes an empty, read-only directory (it opens no host path
//! after start-up: files come from the gofer), and a seccomp allowlist
//! (`seccomp/sentry.json`, one comment per rule) is applied to every
//! thread.

use anyhow::Context as _;
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};

/// The allowlist, as reviewed data.
const SENTRY_FILTER: &str = include_str!("../../seccomp/sentry.json");

/// Makes an empty, read-only tmpfs the root of the calling process, in a
/// mount namespace of its own. Must run before the process starts threads.
pub fn empty_root() -> anyhow::Result<()> {
    #[allow(deprecated)]
    rustix::thread::unshare(rustix::thread::UnshareFlags::NEWNS).context("unshare(CLONE_NEWNS)")?;
    rustix::mount::mount_change("/", MountPropagationFlags::REC | MountPropagationFlags::PRIVATE)?;
    let base = ["/tmp", "/mnt", "/var/tmp", "/run"]
        .into_iter()
        .find(|d| std::path::Path::new(d).is_dir())
        .context("no directory for the sentry's empty root")?;
    rustix::mount::mount(
        "rvisor-sentry",
        base,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        c"size=4k,mode=0555",
    )
    .context("mount the empty root")?;
    rustix::process::chdir(base)?;
    rustix::process::pivot_root(".", ".").context("pivot_root")?;
    rustix::mount::unmount(".", UnmountFlags::DETACH).context("detach the old root")?;
    rustix::process::chdir("/")?;
    rustix::mount::mount_remount(
        "/",
        MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
        "",
    )
    .context("read-only root")?;
    Ok(())
}

/// Raises the soft limit on open descriptors to the hard one: the sentry
/// holds a host descriptor per open file of its application, the gofer one
/// per cached file (both bounded by their own caps, not by the caller's
/// soft limit).
pub fn raise_nofile() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
    }
}

/// The sentry's allowlist, compiled. With `RVISOR_SECCOMP_REPORT` set in
/// the environment (debugging the allowlist), a call off the list is
/// trapped and its number printed before the sentry exits (status 159, as
/// when the filter kills it).
pub fn sentry_filter() -> anyhow::Result<seccompiler::BpfProgram> {
    let json = if std::env::var_os("RVISOR_SECCOMP_REPORT").is_some() {
        rvisor_platform::report_seccomp_traps();
        SENTRY_FILTER.replace("\"mismatch_action\": \"kill_process\"", "\"mismatch_action\": \"trap\"")
    } else {
        SENTRY_FILTER.to_string()
    };
    let mut filters = seccompiler::compile_from_json(json.as_bytes(), seccompiler::TargetArch::x86_64)
        .context("compile the sentry's seccomp filter")?;
    filters.remove("sentry").context("no sentry filter")
}

/// Applies the sentry's seccomp allowlist to every thread.
pub fn seccomp() -> anyhow::Result<()> {
    let prog = sentry_filter()?;
    seccompiler::apply_filter_all_threads(&prog).context("apply the sentry's seccomp filter")?;
    Ok(())
}

// The crate has no unsafe code; this test forks, which cannot be safe.
#[cfg(test)]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    /// Runs `call` in a forked child under the sentry's filter; returns how
    /// the child ended (`Ok(code)` or `Err(signal)`).
    fn under_filter(call: fn() -> i64) -> Result<i32, i32> {
        let prog = sentry_filter().expect("the filter compiles");
        // SAFETY: the child makes only raw system calls (no allocation, no
        // locks another thread might hold) and leaves with exit_group.
        let pid = unsafe { libc::fork() };
        assert!(pid >= 0, "fork");
        if pid == 0 {
            let code = match seccompiler::apply_filter(&prog) {
                Ok(()) => i32::from(call() < 0),
                Err(_) => 100,
            };
            // SAFETY: ends the forked child at once.
            unsafe { libc::syscall(libc::SYS_exit_group, code) };
        }
        let mut status = 0;
        // SAFETY: waits for the child just forked, into a local.
        let r = unsafe { libc::waitpid(pid, &mut status, 0) };
        assert_eq!(r, pid);
        if libc::WIFEXITED(status) {
            Ok(libc::WEXITSTATUS(status))
        } else {
            Err(libc::WTERMSIG(status))
        }
    }

    #[test]
    fn the_filter_allows_the_sentrys_calls_and_kills_on_any_other() {
        // SAFETY: raw system calls with no memory arguments.
        assert_eq!(under_filter(|| unsafe { libc::syscall(libc::SYS_getpid) }), Ok(0));
        // Opening a host path, making a socket, executing: all off the list.
        // SAFETY: as above; the path is a static NUL-terminated string.
        let open = || unsafe { libc::syscall(libc::SYS_openat, libc::AT_FDCWD, c"/".as_ptr(), libc::O_RDWR) };
        assert_eq!(under_filter(open), Err(libc::SIGSYS), "openat for writing");
        // SAFETY: as above.
        let open_ro = || unsafe {
            libc::syscall(libc::SYS_openat, libc::AT_FDCWD, c"/".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC)
        };
        assert_eq!(under_filter(open_ro), Ok(0), "read-only openat (glibc's lazy reads; the root is empty)");
        // SAFETY: as above.
        let socket = || unsafe { libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_STREAM, 0) };
        assert_eq!(under_filter(socket), Err(libc::SIGSYS));
        // SAFETY: as above (null argv/envp are refused by the filter first).
        let exec = || unsafe { libc::syscall(libc::SYS_execve, c"/bin/true".as_ptr(), 0, 0) };
        assert_eq!(under_filter(exec), Err(libc::SIGSYS));
    }
}
