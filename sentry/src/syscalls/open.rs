//! `open` and friends.

use std::sync::Arc;

use rvisor_syscalls::Errno;

use super::path::{creds, read_path, start_dir, walker};
use super::{Addr, Fd, SysResult};
use crate::kernel::Task;
use crate::vfs::dir::DirFile;
use crate::vfs::file::oflags::*;
use crate::vfs::file::{File, FileOps};
use crate::vfs::inode::{mode, Owner};
use crate::vfs::perm::{self, MAY_EXEC, MAY_READ, MAY_WRITE};
use crate::vfs::textbusy;
use crate::vfs::walk::Walker;
use crate::vfs::Path;

/// `RESOLVE_*` flags of `openat2`.
mod resolve {
    pub const NO_XDEV: u64 = 1;
    pub const NO_MAGICLINKS: u64 = 2;
    pub const NO_SYMLINKS: u64 = 4;
    pub const BENEATH: u64 = 8;
    pub const IN_ROOT: u64 = 0x10;
    pub const CACHED: u64 = 0x20;
    pub const ALL: u64 = NO_XDEV | NO_MAGICLINKS | NO_SYMLINKS | BENEATH | IN_ROOT | CACHED;
}

/// Flags `open` knows (others are ignored, as Linux does for `open`).
const VALID: u32 = O_ACCMODE
    | O_CREAT
    | O_EXCL
    | O_NOCTTY
    | O_TRUNC
    | O_APPEND
    | O_NONBLOCK
    | O_DSYNC
    | O_ASYNC
    | O_DIRECT
    | O_LARGEFILE
    | O_DIRECTORY
    | O_NOFOLLOW
    | O_NOATIME
    | O_CLOEXEC
    | O_SYNC
    | O_PATH
    | O_TMPFILE;

/// An `O_PATH` descriptor: a place, no I/O.
struct PathOnly;

impl FileOps for PathOnly {
    fn read(&self, _t: &Task, _f: &File, _b: &mut [u8], _o: Option<u64>) -> Result<usize, Errno> {
        Err(Errno::EBADF)
    }
    fn write(&self, _t: &Task, _f: &File, _d: &[u8], _o: Option<u64>) -> Result<usize, Errno> {
        Err(Errno::EBADF)
    }
}

fn nofile(t: &Task) -> usize {
    let l = t.tg().rlimit(7).cur;
    usize::try_from(l).unwrap_or(crate::vfs::NR_OPEN).min(crate::vfs::NR_OPEN)
}

fn install(t: &Task, file: Arc<File>, flags: u32) -> SysResult {
    if let (Some(p), false) = (file.path(), file.is_path_only()) {
        crate::fs::inotify::file_event(p, crate::fs::inotify::bits::OPEN);
    }
    let fd = t.fds.install(file, flags & O_CLOEXEC != 0, 0, nofile(t))?;
    Ok(u64::from(fd.cast_unsigned()))
}

/// The owner of a file created in `dir`: the caller's fs ids, the group of
/// a set-group-id directory.
pub fn new_owner(t: &Task, dir: &Path) -> Result<Owner, Errno> {
    let c = creds(t);
    let d = dir.attr()?;
    let gid = if d.mode & mode::S_ISGID != 0 { d.gid } else { c.fsgid };
    Ok(Owner { uid: c.fsuid, gid })
}

/// Linux's `mode_strip_sgid` for a new non-directory in `dir`: in a
/// set-group-id directory, a group-executable set-group-id file keeps the
/// bit only if its creator is in the directory's group or has
/// `CAP_FSETID` (CVE-2018-13405).
pub fn strip_sgid(t: &Task, dir: &Path, m: u32) -> Result<u32, Errno> {
    if m & (mode::S_ISGID | 0o010) != (mode::S_ISGID | 0o010) {
        return Ok(m);
    }
    let d = dir.attr()?;
    let c = creds(t);
    if d.mode & mode::S_ISGID == 0 || perm::in_group(&c, d.gid) || perm::capable(&c, perm::CAP_FSETID) {
        return Ok(m);
    }
    Ok(m & !mode::S_ISGID)
}

/// Checks the caller may create or remove names in directory `dir`.
pub fn may_create(t: &Task, dir: &Path) -> Result<(), Errno> {
    let a = dir.attr()?;
    if !a.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    // Linux asks for write access to the mount before the permission.
    if dir.mount.read_only() {
        return Err(Errno::EROFS);
    }
    perm::check(&a, &creds(t), MAY_WRITE | MAY_EXEC)
}

/// Opens the existing file at `p`.
pub fn open_path(t: &Task, p: Path, flags: u32) -> Result<Arc<File>, Errno> {
    if flags & O_PATH == 0 {
        if let Some(f) = crate::fs::reopen::open(t, &p, flags) {
            return f;
        }
    }
    let a = p.attr()?;
    if flags & O_PATH != 0 {
        if flags & O_DIRECTORY != 0 && !a.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let keep = O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
        return Ok(File::with_path(Box::new(PathOnly), flags & keep, p));
    }
    if flags & O_DIRECTORY != 0 && !a.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    let acc = flags & O_ACCMODE;
    let writes = acc != O_RDONLY || flags & O_TRUNC != 0;
    let c = creds(t);
    let mut access = None;
    let mut want = 0;
    if acc == O_RDONLY || acc == O_RDWR || acc == O_ACCMODE {
        want |= MAY_READ;
    }
    if writes {
        want |= MAY_WRITE;
    }
    let ops: Box<dyn FileOps> = match a.kind() {
        mode::S_IFDIR => {
            if acc != O_RDONLY || flags & O_TRUNC != 0 || flags & O_CREAT != 0 {
                return Err(Errno::EISDIR);
            }
            perm::check(&a, &c, MAY_READ)?;
            Box::new(DirFile::new(p.inode().clone()))
        }
        mode::S_IFREG => {
            perm::check(&a, &c, want)?;
            // Linux's order: write access to the file (ETXTBSY), then to
            // the mount.
            if writes {
                access = Some(textbusy::get_write((a.dev, a.ino)).ok_or(Errno::ETXTBSY)?);
            }
            if writes && p.mount.read_only() {
                return Err(Errno::EROFS);
            }
            let host_flags = flags & (O_ACCMODE | O_APPEND | O_TRUNC | O_NOATIME);
            p.inode().open(if acc == O_ACCMODE { host_flags & !O_ACCMODE | O_RDWR } else { host_flags })?
        }
        mode::S_IFLNK => return Err(Errno::ELOOP),
        // Device nodes are the sentry's own (`/dev`); the gofer refuses to
        // open anything but regular files and directories (FIFOs and
        // sockets on the host: ENXIO until the pipes issue).
        mode::S_IFCHR | mode::S_IFBLK => {
            if p.mount.flags & crate::vfs::mflags::NODEV != 0 {
                return Err(Errno::EACCES);
            }
            perm::check(&a, &c, want)?;
            match crate::fs::tty::open_device(t, p.inode(), flags) {
                Some(ops) => ops?,
                None => p.inode().open(flags & (O_ACCMODE | O_APPEND))?,
            }
        }
        mode::S_IFIFO => {
            perm::check(&a, &c, want)?;
            if acc == O_ACCMODE {
                return Err(Errno::EINVAL);
            }
            let extra = flags & !(O_ACCMODE | O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC);
            let f = crate::fs::pipe::open_fifo(t, p, (a.dev, a.ino), acc, extra)?;
            return Ok(f);
        }
        _ => return Err(Errno::ENXIO),
    };
    let status = flags & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC);
    // Read-only with O_TRUNC truncated above; only a writable description
    // keeps write access.
    Ok(match access.filter(|_| acc != O_RDONLY) {
        Some(w) => File::writing(ops, status, p, w),
        None => File::with_path(ops, status, p),
    })
}

/// Validates `open` flags as Linux's `build_open_flags`.
fn check_flags(flags: u32) -> Result<u32, Errno> {
    let flags = flags & VALID;
    if flags & O_TMPFILE == O_TMPFILE {
        let acc = flags & O_ACCMODE;
        if acc != O_WRONLY && acc != O_RDWR || flags & O_CREAT != 0 {
            return Err(Errno::EINVAL);
        }
        return Ok(flags);
    }
    if flags & O_CREAT != 0 && flags & O_DIRECTORY != 0 {
        return Err(Errno::EINVAL);
    }
    Ok(flags)
}

/// The walk for an open: follows the last link unless `O_NOFOLLOW`, and
/// `openat2`'s `RESOLVE_*` restrictions.
fn lookup(t: &Task, w: &Walker<'_>, start: Path, path: &[u8], flags: u32, how: u64) -> Result<Path, Errno> {
    let follow = flags & O_NOFOLLOW == 0;
    let p = w.walk(start.clone(), path, follow)?;
    check_resolve(t, &start, &p, path, how)?;
    Ok(p)
}

fn check_resolve(_t: &Task, start: &Path, p: &Path, path: &[u8], how: u64) -> Result<(), Errno> {
    if how & resolve::BENEATH != 0 && (path.starts_with(b"/") || !is_beneath(start, p)) {
        return Err(Errno::EXDEV);
    }
    if how & resolve::NO_XDEV != 0 && !Arc::ptr_eq(&start.mount, &p.mount) {
        return Err(Errno::EXDEV);
    }
    Ok(())
}

/// Whether `p` is `root` or below it.
fn is_beneath(root: &Path, p: &Path) -> bool {
    let mut cur = p.clone();
    for _ in 0..4096 {
        if cur.same(root) {
            return true;
        }
        if Arc::ptr_eq(&cur.dentry, &cur.mount.root) {
            match &cur.mount.parent {
                Some((m, d)) => cur = Path { mount: m.clone(), dentry: d.clone() },
                None => return false,
            }
            continue;
        }
        match cur.dentry.parent() {
            Some(d) => cur = Path { mount: cur.mount.clone(), dentry: d },
            None => return false,
        }
    }
    false
}

/// `O_TMPFILE` in directory `dir`: a regular file with no name, which
/// `linkat` may name unless `O_EXCL`.
fn open_tmpfile(t: &Task, dir: &Path, flags: u32, mode_bits: u32) -> Result<Arc<File>, Errno> {
    if !dir.attr()?.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    may_create(t, dir)?;
    let umask = t.tg().umask.load(std::sync::atomic::Ordering::Relaxed);
    let perm_bits = strip_sgid(t, dir, mode_bits & 0o7777 & !umask)?;
    let owner = new_owner(t, dir)?;
    let host_flags = flags & (O_ACCMODE | O_APPEND | O_NOATIME);
    let (inode, ops) =
        dir.inode().tmpfile(mode::S_IFREG | perm_bits, owner, host_flags, flags & O_EXCL == 0)?;
    let ino = inode.attr()?.ino;
    let p = Path { mount: dir.mount.clone(), dentry: crate::vfs::Dentry::anonymous(&dir.dentry, ino, inode) };
    let status = flags & !(O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC);
    let a = p.attr()?;
    Ok(match textbusy::get_write((a.dev, a.ino)) {
        Some(w) => File::writing(ops, status, p, w),
        None => File::with_path(ops, status, p),
    })
}

/// The one open routine.
pub fn do_open(t: &mut Task, dirfd: Fd, path: &[u8], flags: u32, mode_bits: u32, how: u64) -> SysResult {
    let flags = check_flags(flags)?;
    let c = creds(t);
    let mut w = walker(t, &c);
    // RESOLVE_IN_ROOT makes even an absolute path start at dirfd.
    let start = if path.starts_with(b"/") && how & resolve::IN_ROOT == 0 {
        t.fs_context().cwd
    } else {
        start_dir(t, dirfd)?
    };
    if how & resolve::IN_ROOT != 0 {
        w.root = start.clone();
    }
    if how & resolve::NO_SYMLINKS != 0 {
        w.no_symlinks = true;
    }
    if how & resolve::BENEATH != 0 {
        w.beneath = Some(start.clone());
    }
    if flags & O_TMPFILE == O_TMPFILE {
        let dir = lookup(t, &w, start, path, flags, how)?;
        let f = open_tmpfile(t, &dir, flags, mode_bits)?;
        return install(t, f, flags);
    }
    if flags & O_CREAT == 0 || flags & O_PATH != 0 {
        let p = lookup(t, &w, start, path, flags, how)?;
        if flags & O_NOFOLLOW != 0 && flags & O_PATH == 0 && p.attr()?.is_symlink() {
            return Err(Errno::ELOOP);
        }
        let f = open_path(t, p, flags)?;
        return install(t, f, flags);
    }
    // O_CREAT: a final symbolic link is followed, and a dangling one
    // creates its target (counted against the walk's link limit).
    let mut from = start.clone();
    let mut name_path = path.to_vec();
    let mut links = 0;
    loop {
        let parent =
            w.walk_parent(from, &name_path)
                .map_err(|e| if e == Errno::EEXIST { Errno::EISDIR } else { e })?;
        if parent.name == b"." || parent.name == b".." || parent.trailing_slash {
            return Err(Errno::EISDIR);
        }
        match w.child(&parent.dir, &parent.name) {
            Ok(existing) => {
                if flags & O_EXCL != 0 {
                    return Err(Errno::EEXIST);
                }
                if !existing.attr()?.is_symlink() {
                    check_resolve(t, &start, &existing, path, how)?;
                    let f = open_path(t, existing, flags)?;
                    return install(t, f, flags);
                }
                if flags & O_NOFOLLOW != 0 || w.no_symlinks {
                    return Err(Errno::ELOOP);
                }
                links += 1;
                if links > crate::vfs::walk::MAX_SYMLINKS {
                    return Err(Errno::ELOOP);
                }
                if let Some(j) = existing.inode().jump() {
                    // A magic link (`/dev/stdout` -> `/proc/self/fd/1`):
                    // the file itself, which exists.
                    if w.beneath.is_some() {
                        return Err(Errno::EXDEV);
                    }
                    let f = open_path(t, j?.into_path(&existing)?, flags)?;
                    return install(t, f, flags);
                }
                let target = existing.inode().readlink()?;
                if target.is_empty() {
                    return Err(Errno::ENOENT);
                }
                if target.starts_with(b"/") && w.beneath.is_some() {
                    return Err(Errno::EXDEV);
                }
                from = parent.dir;
                name_path = target;
            }
            Err(Errno::ENOENT) => {
                check_resolve(t, &start, &parent.dir, path, how)?;
                may_create(t, &parent.dir)?;
                let umask = t.tg().umask.load(std::sync::atomic::Ordering::Relaxed);
                let perm_bits = strip_sgid(t, &parent.dir, mode_bits & 0o7777 & !umask)?;
                let owner = new_owner(t, &parent.dir)?;
                let host_flags = flags & (O_ACCMODE | O_APPEND | O_NOATIME);
                let (inode, ops) =
                    parent.dir.inode().create(&parent.name, mode::S_IFREG | perm_bits, owner, host_flags)?;
                let dentry = parent.dir.dentry.insert_child(&parent.name, inode);
                crate::fs::inotify::created(&parent.dir, &parent.name, false);
                let p = Path { mount: parent.dir.mount.clone(), dentry };
                let status = flags & !(O_CREAT | O_EXCL | O_NOCTTY | O_TRUNC | O_CLOEXEC);
                let a = p.attr()?;
                let file = match textbusy::get_write((a.dev, a.ino)).filter(|_| flags & O_ACCMODE != O_RDONLY)
                {
                    Some(w) => File::writing(ops, status, p, w),
                    None => File::with_path(ops, status, p),
                };
                return install(t, file, flags);
            }
            Err(e) => return Err(e),
        }
    }
}

pub fn open(t: &mut Task, path: Addr, flags: u32, mode_bits: u32) -> SysResult {
    let p = read_path(t, path)?;
    do_open(t, Fd(super::path::AT_FDCWD), &p, flags | O_LARGEFILE, mode_bits, 0)
}

pub fn openat(t: &mut Task, dirfd: Fd, path: Addr, flags: u32, mode_bits: u32) -> SysResult {
    let p = read_path(t, path)?;
    do_open(t, dirfd, &p, flags | O_LARGEFILE, mode_bits, 0)
}

pub fn creat(t: &mut Task, path: Addr, mode_bits: u32) -> SysResult {
    let p = read_path(t, path)?;
    do_open(t, Fd(super::path::AT_FDCWD), &p, O_CREAT | O_WRONLY | O_TRUNC | O_LARGEFILE, mode_bits, 0)
}

/// `struct open_how`.
#[derive(Default)]
struct OpenHow {
    flags: u64,
    mode: u64,
    resolve: u64,
}

pub fn openat2(t: &mut Task, dirfd: Fd, path: Addr, how: Addr, size: u64) -> SysResult {
    const OPEN_HOW_SIZE: u64 = 24;
    if size < OPEN_HOW_SIZE {
        return Err(Errno::EINVAL);
    }
    if size > 4096 {
        return Err(Errno::E2BIG);
    }
    let raw = t.mm.read_bytes(how, usize::try_from(size).map_err(|_| Errno::E2BIG)?)?;
    if raw[24..].iter().any(|&b| b != 0) {
        return Err(Errno::E2BIG);
    }
    let word = |i: usize| u64::from_le_bytes(raw[i..i + 8].try_into().unwrap_or([0; 8]));
    let h = OpenHow { flags: word(0), mode: word(8), resolve: word(16) };
    let flags = u32::try_from(h.flags).map_err(|_| Errno::EINVAL)?;
    if flags & !VALID != 0 || h.resolve & !resolve::ALL != 0 {
        return Err(Errno::EINVAL);
    }
    if h.resolve & resolve::BENEATH != 0 && h.resolve & resolve::IN_ROOT != 0 {
        return Err(Errno::EINVAL);
    }
    let creating = flags & O_CREAT != 0 || flags & O_TMPFILE == O_TMPFILE;
    if (!creating && h.mode != 0) || h.mode & !0o7777 != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & O_ACCMODE == O_ACCMODE {
        return Err(Errno::EINVAL);
    }
    let p = read_path(t, path)?;
    do_open(t, dirfd, &p, flags, u32::try_from(h.mode).unwrap_or(0), h.resolve)
}

pub fn close_range(t: &mut Task, first: u32, last: u32, flags: u32) -> SysResult {
    const UNSHARE: u32 = 2;
    const CLOEXEC: u32 = 4;
    if flags & !(UNSHARE | CLOEXEC) != 0 || first > last {
        return Err(Errno::EINVAL);
    }
    // One descriptor table per process so far: nothing to unshare.
    let gone = t.fds.close_range(first, last, flags & CLOEXEC != 0);
    super::fs::closed(t, gone);
    Ok(0)
}
