//! The sentry's confinement, applied before it runs any application code:
//! its root becomes an empty, read-only directory (it opens no host path
//! after start-up: files come from the gofer), and a seccomp allowlist
//! (`seccomp/sentry.json`, one comment per rule) is applied to every
//! thread.

use anyhow::Context as _;
use rustix::fs::Mode;
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
    let _ = Mode::empty();
    Ok(())
}

/// Applies the sentry's seccomp allowlist to every thread.
pub fn seccomp() -> anyhow::Result<()> {
    let mut filters =
        seccompiler::compile_from_json(SENTRY_FILTER.as_bytes(), seccompiler::TargetArch::x86_64)
            .context("compile the sentry's seccomp filter")?;
    let prog = filters.remove("sentry").context("no sentry filter")?;
    seccompiler::apply_filter_all_threads(&prog).context("apply the sentry's seccomp filter")?;
    Ok(())
}
