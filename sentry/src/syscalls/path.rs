//! Shared pieces of the path-based system calls: reading paths from the
//! application, where a relative path starts (`AT_FDCWD` or a directory
//! descriptor), the walker for the calling task.

use std::sync::Arc;

use rvisor_syscalls::Errno;

use super::Fd;
use crate::kernel::creds::Credentials;
use crate::kernel::Task;
use crate::vfs::walk::{Walker, PATH_MAX};
use crate::vfs::{File, Path};

/// `AT_FDCWD`.
pub const AT_FDCWD: i32 = -100;
/// `AT_SYMLINK_NOFOLLOW`.
pub const AT_SYMLINK_NOFOLLOW: i32 = 0x100;
/// `AT_REMOVEDIR`.
pub const AT_REMOVEDIR: i32 = 0x200;
/// `AT_SYMLINK_FOLLOW`.
pub const AT_SYMLINK_FOLLOW: i32 = 0x400;
/// `AT_NO_AUTOMOUNT`.
pub const AT_NO_AUTOMOUNT: i32 = 0x800;
/// `AT_EMPTY_PATH`.
pub const AT_EMPTY_PATH: i32 = 0x1000;
/// `AT_EACCESS`.
pub const AT_EACCESS: i32 = 0x200;

/// Reads a path argument (`ENAMETOOLONG` past `PATH_MAX`).
pub fn read_path(t: &Task, addr: u64) -> Result<Vec<u8>, Errno> {
    t.mm.read_cstring(addr, PATH_MAX)
}

/// The task's credentials.
pub fn creds(t: &Task) -> Credentials {
    t.tg().creds()
}

/// Where relative paths start: the working directory, or directory
/// descriptor `dirfd`.
pub fn start_dir(t: &Task, dirfd: Fd) -> Result<Path, Errno> {
    if dirfd.0 == AT_FDCWD {
        return Ok(t.fs_context().cwd);
    }
    let f = t.fds.get(dirfd.0)?;
    let p = f.path().cloned().ok_or(Errno::ENOTDIR)?;
    if !p.attr()?.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    Ok(p)
}

/// What a `*at` call with `AT_EMPTY_PATH` and an empty path names: the
/// descriptor's file itself.
pub enum Target {
    /// A place in the VFS.
    Path(Path),
    /// A file outside it (host stdio).
    File(Arc<File>),
}

/// Resolves (`dirfd`, `path`) for calls that take `AT_EMPTY_PATH` and
/// `AT_SYMLINK_NOFOLLOW`.
pub fn resolve_at(
    t: &Task,
    dirfd: Fd,
    path: &[u8],
    flags: i32,
    follow_default: bool,
) -> Result<Target, Errno> {
    if path.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        if dirfd.0 == AT_FDCWD {
            return Ok(Target::Path(t.fs_context().cwd));
        }
        let f = t.fds.get(dirfd.0)?;
        return Ok(match f.path() {
            Some(p) => Target::Path(p.clone()),
            None => Target::File(f),
        });
    }
    let follow =
        if follow_default { flags & AT_SYMLINK_NOFOLLOW == 0 } else { flags & AT_SYMLINK_FOLLOW != 0 };
    let start = if path.starts_with(b"/") { t.fs_context().cwd } else { start_dir(t, dirfd)? };
    let c = creds(t);
    Ok(Target::Path(walker(t, &c).walk(start, path, follow)?))
}

/// A walker for the task.
pub fn walker<'a>(t: &'a Task, c: &'a Credentials) -> Walker<'a> {
    Walker { ns: t.mntns(), root: t.fs_context().root, creds: c, no_symlinks: false, beneath: None }
}
