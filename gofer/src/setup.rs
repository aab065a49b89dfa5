//! Confining the gofer before it serves anything: its own mount namespace,
//! `pivot_root`ed into exactly the tree it serves (with the host's `/proc`,
//! `/sys`, `/dev` and `/run` detached and covered by empty directories),
//! every other served tree held only
//! by a descriptor, and only the capabilities file serving needs.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags};
use rustix::mount::{MountFlags, MountPropagationFlags, UnmountFlags};
use rustix::thread::{CapabilitySet, CapabilitySets};

use crate::server::AttachPoint;

/// A tree to serve.
#[derive(Clone, Debug)]
pub struct Export {
    /// Host path.
    pub source: PathBuf,
    /// Refuse writes.
    pub read_only: bool,
}

/// Subtrees of the root export never served: the host's kernel
/// interfaces and runtime state (sockets of host daemons live in `/run`).
pub const HIDDEN: [&str; 4] = ["proc", "sys", "dev", "run"];

/// Capabilities the gofer keeps: create files for any owner, read and
/// write regardless of modes (the sentry makes the permission checks), and
/// keep set-group-id bits as the sentry asks.
pub fn kept_capabilities() -> CapabilitySet {
    CapabilitySet::CHOWN
        | CapabilitySet::DAC_OVERRIDE
        | CapabilitySet::DAC_READ_SEARCH
        | CapabilitySet::FOWNER
        | CapabilitySet::FSETID
}

fn scaffold() -> std::io::Result<PathBuf> {
    // Any existing directory will do: the tmpfs mounted on it exists only in
    // this mount namespace.
    for d in ["/mnt", "/tmp", "/var/tmp", "/opt", "/srv", "/home"] {
        if Path::new(d).is_dir() {
            return Ok(PathBuf::from(d));
        }
    }
    Err(std::io::Error::other("no directory to mount the gofer's scaffold on"))
}

/// Confines the calling process (before it starts threads) to serve
/// `exports` (the first is the root); returns their attach points and the
/// gofer's `/proc/self/fd` for reopening held files
/// ([`crate::server::Server::new`]).
pub fn confine(exports: &[Export]) -> std::io::Result<(Vec<AttachPoint>, OwnedFd)> {
    let (root, others) = exports.split_first().ok_or_else(|| std::io::Error::other("nothing to serve"))?;
    // `unshare` is deprecated in rustix for flags that can break the
    // process's own invariants (CLONE_FILES, CLONE_FS); NEWNS is not one.
    #[allow(deprecated)]
    rustix::thread::unshare(rustix::thread::UnshareFlags::NEWNS)?;
    rustix::mount::mount_change("/", MountPropagationFlags::REC | MountPropagationFlags::PRIVATE)?;
    let fd_dir = crate::server::open_fd_dir()?;

    // Other trees (or single files, a bind of /etc/hosts): held by descriptor only.
    let mut points = vec![];
    let mut held = Vec::new();
    for e in others {
        let fd = rustix::fs::open(&e.source, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?;
        held.push((fd, e.read_only));
    }

    // The root: a recursive bind of the source on a private scaffold, with
    // the hidden subtrees detached, becomes our root.
    let base = scaffold()?;
    rustix::mount::mount(
        "rvisor-gofer",
        &base,
        "tmpfs",
        MountFlags::NOSUID | MountFlags::NODEV,
        c"size=64k,mode=0700",
    )?;
    let new_root = base.join("root");
    rustix::fs::mkdir(&new_root, Mode::from_bits_truncate(0o700))?;
    rustix::mount::mount_bind_recursive(&root.source, &new_root)?;
    let scaffold_rel = base.strip_prefix("/").unwrap_or(&base).to_path_buf();
    for h in HIDDEN.iter().map(PathBuf::from).chain([scaffold_rel]) {
        let p = new_root.join(&h);
        // Not a mount point (EINVAL) or missing: nothing to detach.
        let _ = rustix::mount::unmount(&p, UnmountFlags::DETACH | UnmountFlags::NOFOLLOW);
    }
    // What the host keeps in those directories on the root file system
    // itself (device stubs, daemons' run-time directories) is covered by an
    // empty read-only tmpfs. Only real directories: a link in a bundle's
    // rootfs is not followed out of it.
    for h in HIDDEN {
        let p = new_root.join(h);
        if std::fs::symlink_metadata(&p).is_ok_and(|m| m.is_dir()) {
            rustix::mount::mount(
                "rvisor-hidden",
                &p,
                "tmpfs",
                MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC,
                c"size=4k,mode=0755",
            )?;
        }
    }
    if root.read_only {
        rustix::mount::mount_remount(&new_root, MountFlags::BIND | MountFlags::RDONLY, "")?;
    }
    rustix::process::chdir(&new_root)?;
    rustix::process::pivot_root(".", ".")?;
    rustix::mount::unmount(".", UnmountFlags::DETACH)?;
    rustix::process::chdir("/")?;
    let root_fd: OwnedFd =
        rustix::fs::open("/", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
    points.push(AttachPoint { root: root_fd, read_only: root.read_only });
    for (fd, ro) in held {
        points.push(AttachPoint { root: fd, read_only: ro });
    }
    drop_capabilities()?;
    // Modes come from the sentry, which applied the task's umask already.
    rustix::process::umask(Mode::empty());
    Ok((points, fd_dir))
}

fn drop_capabilities() -> std::io::Result<()> {
    let keep = kept_capabilities();
    for bit in 0..64u32 {
        let c = CapabilitySet::from_bits_retain(1u64 << bit);
        if !keep.contains(c) && rustix::thread::capability_is_in_bounding_set(c).unwrap_or(false) {
            rustix::thread::remove_capability_from_bounding_set(c)?;
        }
    }
    let now = rustix::thread::capabilities(None)?;
    rustix::thread::set_capabilities(
        None,
        CapabilitySets {
            effective: now.effective & keep,
            permitted: now.permitted & keep,
            inheritable: CapabilitySet::empty(),
        },
    )?;
    rustix::thread::set_no_new_privs(true)?;
    Ok(())
}
