//! Attributes: `chmod`, `chown`, `utimensat`, `truncate`, `fallocate`,
//! `fsync`, and extended attributes.

use rvisor_syscalls::abi::{Timespec, Timeval};
use rvisor_syscalls::Errno;

use super::path::{creds, read_path, resolve_at, Target, AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW};
use super::{Addr, Fd, SysResult};
use crate::kernel::Task;
use crate::vfs::inode::{mode, SetAttr, TimeSet};
use crate::vfs::perm::{self, MAY_READ, MAY_WRITE};
use crate::vfs::Path;

fn path_of(t: &Task, dirfd: Fd, path: &[u8], flags: i32) -> Result<Path, Errno> {
    match resolve_at(t, dirfd, path, flags, true)? {
        Target::Path(p) => Ok(p),
        // Host stdio: its attributes are the host's, never changed.
        Target::File(_) => Err(Errno::EPERM),
    }
}

/// The place of descriptor `fd` for the `f*` calls, which use the file
/// itself (`O_PATH` descriptors: `EBADF`, as Linux's `fdget`).
fn fd_path(t: &Task, fd: Fd) -> Result<Path, Errno> {
    super::fs::io_file(t, fd)?.path().cloned().ok_or(Errno::EPERM)
}

fn writable_mount(p: &Path) -> Result<(), Errno> {
    if p.mount.read_only() {
        Err(Errno::EROFS)
    } else {
        Ok(())
    }
}

fn chmod_path(t: &Task, p: &Path, m: u32) -> SysResult {
    // Linux asks for write access to the mount first.
    writable_mount(p)?;
    let a = p.attr()?;
    let c = creds(t);
    if !perm::owner_or_capable(&a, &c) {
        return Err(Errno::EPERM);
    }
    let mut m = m & 0o7777;
    if !perm::in_group(&c, a.gid) && !perm::capable(&c, perm::CAP_FSETID) {
        m &= !mode::S_ISGID;
    }
    p.inode().setattr(&SetAttr { mode: Some(m), ..SetAttr::default() })?;
    crate::fs::inotify::file_event(p, crate::fs::inotify::bits::ATTRIB);
    Ok(0)
}

pub fn chmod(t: &mut Task, path: Addr, m: u32) -> SysResult {
    let path = read_path(t, path)?;
    let p = path_of(t, Fd(AT_FDCWD), &path, 0)?;
    chmod_path(t, &p, m)
}

pub fn fchmod(t: &mut Task, fd: Fd, m: u32) -> SysResult {
    let f = t.fds.get(fd.0)?;
    if f.is_path_only() {
        return Err(Errno::EBADF);
    }
    let p = f.path().cloned().ok_or(Errno::EPERM)?;
    chmod_path(t, &p, m)
}

pub fn fchmodat(t: &mut Task, dirfd: Fd, path: Addr, m: u32) -> SysResult {
    let path = read_path(t, path)?;
    let p = path_of(t, dirfd, &path, 0)?;
    chmod_path(t, &p, m)
}

fn chown_path(t: &Task, p: &Path, uid: u32, gid: u32) -> SysResult {
    writable_mount(p)?;
    let a = p.attr()?;
    let c = creds(t);
    let (new_uid, new_gid) = ((uid != u32::MAX).then_some(uid), (gid != u32::MAX).then_some(gid));
    let may_chown = perm::capable(&c, perm::CAP_CHOWN);
    if let Some(u) = new_uid {
        if u != a.uid && !may_chown {
            return Err(Errno::EPERM);
        }
    }
    if let Some(g) = new_gid {
        if g != a.gid && !may_chown && (c.fsuid != a.uid || !perm::in_group(&c, g)) {
            return Err(Errno::EPERM);
        }
    }
    let mut set = SetAttr { uid: new_uid, gid: new_gid, ..SetAttr::default() };
    // A change of owner clears set-user-id and set-group-id on files
    // (set-group-id only when the group may execute).
    if a.kind() == mode::S_IFREG && (new_uid.is_some() || new_gid.is_some()) {
        let mut m = a.mode & 0o7777 & !mode::S_ISUID;
        if m & 0o010 != 0 {
            m &= !mode::S_ISGID;
        }
        if m != a.mode & 0o7777 {
            set.mode = Some(m);
        }
    }
    p.inode().setattr(&set)?;
    crate::fs::inotify::file_event(p, crate::fs::inotify::bits::ATTRIB);
    Ok(0)
}

pub fn chown(t: &mut Task, path: Addr, uid: u32, gid: u32) -> SysResult {
    let path = read_path(t, path)?;
    let p = path_of(t, Fd(AT_FDCWD), &path, 0)?;
    chown_path(t, &p, uid, gid)
}

pub fn lchown(t: &mut Task, path: Addr, uid: u32, gid: u32) -> SysResult {
    let path = read_path(t, path)?;
    let p = path_of(t, Fd(AT_FDCWD), &path, AT_SYMLINK_NOFOLLOW)?;
    chown_path(t, &p, uid, gid)
}

pub fn fchown(t: &mut Task, fd: Fd, uid: u32, gid: u32) -> SysResult {
    let p = fd_path(t, fd)?;
    chown_path(t, &p, uid, gid)
}

pub fn fchownat(t: &mut Task, dirfd: Fd, path: Addr, uid: u32, gid: u32, flags: i32) -> SysResult {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let path = read_path(t, path)?;
    let p = path_of(t, dirfd, &path, flags)?;
    chown_path(t, &p, uid, gid)
}

const UTIME_NOW: i64 = (1 << 30) - 1;
const UTIME_OMIT: i64 = (1 << 30) - 2;

fn time_set(ts: Timespec) -> Result<TimeSet, Errno> {
    match ts.tv_nsec {
        UTIME_NOW => Ok(TimeSet::Now),
        UTIME_OMIT => Ok(TimeSet::Omit),
        0..=999_999_999 => Ok(TimeSet::At(ts)),
        _ => Err(Errno::EINVAL),
    }
}

fn set_times(t: &Task, p: &Path, atime: TimeSet, mtime: TimeSet) -> SysResult {
    if atime == TimeSet::Omit && mtime == TimeSet::Omit {
        return Ok(0);
    }
    writable_mount(p)?;
    let a = p.attr()?;
    let c = creds(t);
    let explicit = matches!(atime, TimeSet::At(_)) || matches!(mtime, TimeSet::At(_));
    if !perm::owner_or_capable(&a, &c) {
        // Setting both to "now" needs only write permission.
        if explicit || atime == TimeSet::Omit || mtime == TimeSet::Omit {
            return Err(Errno::EPERM);
        }
        perm::check(&a, &c, MAY_WRITE)?;
    }
    p.inode().setattr(&SetAttr { atime, mtime, ..SetAttr::default() })?;
    crate::fs::inotify::file_event(p, crate::fs::inotify::bits::ATTRIB);
    Ok(0)
}

pub fn utimensat(t: &mut Task, dirfd: Fd, path: Addr, times: Addr, flags: i32) -> SysResult {
    if flags & !(AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let (atime, mtime) = if times == 0 {
        (TimeSet::Now, TimeSet::Now)
    } else {
        let ts: [Timespec; 2] = [t.mm.read_obj(times)?, t.mm.read_obj(times + 16)?];
        (time_set(ts[0])?, time_set(ts[1])?)
    };
    // A NULL path: the descriptor itself (futimens).
    let p = if path == 0 {
        if dirfd.0 == AT_FDCWD {
            return Err(Errno::EFAULT);
        }
        fd_path(t, dirfd)?
    } else {
        let path = read_path(t, path)?;
        path_of(t, dirfd, &path, flags)?
    };
    set_times(t, &p, atime, mtime)
}

pub fn utimes(t: &mut Task, path: Addr, times: Addr) -> SysResult {
    let path = read_path(t, path)?;
    let (atime, mtime) = if times == 0 {
        (TimeSet::Now, TimeSet::Now)
    } else {
        let tv: [Timeval; 2] = [t.mm.read_obj(times)?, t.mm.read_obj(times + 16)?];
        let conv = |v: Timeval| -> Result<TimeSet, Errno> {
            if !(0..1_000_000).contains(&v.tv_usec) {
                return Err(Errno::EINVAL);
            }
            Ok(TimeSet::At(Timespec { tv_sec: v.tv_sec, tv_nsec: v.tv_usec * 1000 }))
        };
        (conv(tv[0])?, conv(tv[1])?)
    };
    let p = path_of(t, Fd(AT_FDCWD), &path, 0)?;
    set_times(t, &p, atime, mtime)
}

pub fn truncate(t: &mut Task, path: Addr, len: i64) -> SysResult {
    let len = u64::try_from(len).map_err(|_| Errno::EINVAL)?;
    let path = read_path(t, path)?;
    let p = path_of(t, Fd(AT_FDCWD), &path, 0)?;
    let a = p.attr()?;
    if a.is_dir() {
        return Err(Errno::EISDIR);
    }
    if !a.is_reg() {
        return Err(Errno::EINVAL);
    }
    writable_mount(&p)?;
    perm::check(&a, &creds(t), MAY_WRITE)?;
    let _writing = crate::vfs::textbusy::get_write((a.dev, a.ino)).ok_or(Errno::ETXTBSY)?;
    p.inode().setattr(&SetAttr { size: Some(len), ..SetAttr::default() })?;
    crate::fs::inotify::file_event(&p, crate::fs::inotify::bits::MODIFY);
    Ok(0)
}

pub fn ftruncate(t: &mut Task, fd: Fd, len: i64) -> SysResult {
    let len = u64::try_from(len).map_err(|_| Errno::EINVAL)?;
    let f = t.fds.get(fd.0)?;
    if f.is_path_only() {
        return Err(Errno::EBADF);
    }
    f.truncate(len)?;
    if let Some(p) = f.path() {
        p.inode().invalidate();
        crate::fs::inotify::file_event(p, crate::fs::inotify::bits::MODIFY);
    }
    Ok(0)
}

pub fn fallocate(t: &mut Task, fd: Fd, m: u32, off: i64, len: i64) -> SysResult {
    let (off, len) =
        (u64::try_from(off).map_err(|_| Errno::EINVAL)?, u64::try_from(len).map_err(|_| Errno::EINVAL)?);
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    let f = super::fs::io_file(t, fd)?;
    f.allocate(m, off, len)?;
    Ok(0)
}

pub fn fsync(t: &mut Task, fd: Fd) -> SysResult {
    super::fs::io_file(t, fd)?.fsync()?;
    Ok(0)
}

pub fn fdatasync(t: &mut Task, fd: Fd) -> SysResult {
    fsync(t, fd)
}

pub fn sync(_t: &mut Task) -> SysResult {
    Ok(0)
}

pub fn syncfs(t: &mut Task, fd: Fd) -> SysResult {
    super::fs::io_file(t, fd)?;
    Ok(0)
}

pub fn fadvise64(t: &mut Task, fd: Fd, _off: i64, len: i64, advice: i32) -> SysResult {
    let f = super::fs::io_file(t, fd)?;
    if f.path().is_none() {
        return Err(Errno::ESPIPE);
    }
    if !(0..=5).contains(&advice) || len < 0 {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

// --------------------------------------------------------------------------
// Extended attributes.

const XATTR_NAME_MAX: usize = 255;
const XATTR_SIZE_MAX: usize = 65536;
const XATTR_CREATE: u32 = 1;
const XATTR_REPLACE: u32 = 2;

fn xattr_name(t: &Task, addr: Addr) -> Result<Vec<u8>, Errno> {
    let n = t.mm.read_cstring(addr, XATTR_NAME_MAX + 1).map_err(|e| {
        if e == Errno::ENAMETOOLONG {
            Errno::ERANGE
        } else {
            e
        }
    })?;
    if n.is_empty() || n.len() > XATTR_NAME_MAX {
        return Err(Errno::ERANGE);
    }
    Ok(n)
}

/// Namespace rules: `user.` needs the file's read/write permission and a
/// regular file or directory; `trusted.` and `security.` writes need
/// `CAP_SYS_ADMIN`; other prefixes are not supported. Only `user.`
/// attributes are written to host files: the gofer holds no
/// `CAP_SYS_ADMIN` for `trusted.`, and `security.`/`system.` (capabilities,
/// ACLs) would grant rights the sentry does not check.
fn xattr_check(t: &Task, p: &Path, name: &[u8], write: bool) -> Result<(), Errno> {
    let a = p.attr()?;
    let c = creds(t);
    if name.starts_with(b"user.") {
        if !(a.is_reg() || a.is_dir()) {
            return Err(if write { Errno::EPERM } else { Errno::ENODATA });
        }
        perm::check(&a, &c, if write { MAY_WRITE } else { MAY_READ })?;
    } else if name.starts_with(b"trusted.") || name.starts_with(b"security.") {
        if write && !perm::capable(&c, 1 << 21) {
            return Err(Errno::EPERM);
        }
    } else if !name.starts_with(b"system.") {
        return Err(Errno::EOPNOTSUPP);
    }
    if write {
        writable_mount(p)?;
        if !name.starts_with(b"user.") {
            return Err(Errno::EOPNOTSUPP);
        }
    }
    Ok(())
}

/// Whether the gofer serves attributes of this kind of file (it opens
/// only regular files and directories).
fn has_xattrs(p: &Path) -> Result<bool, Errno> {
    let a = p.attr()?;
    Ok(a.is_reg() || a.is_dir())
}

fn getxattr_path(t: &Task, p: &Path, name: Addr, value: Addr, size: u64) -> SysResult {
    let name = xattr_name(t, name)?;
    xattr_check(t, p, &name, false)?;
    if !has_xattrs(p)? {
        return Err(Errno::ENODATA);
    }
    let size = usize::try_from(size).unwrap_or(usize::MAX).min(XATTR_SIZE_MAX);
    let v = p.inode().getxattr(&name, size)?;
    if size == 0 {
        return Ok(v.len() as u64);
    }
    if v.len() > size {
        return Err(Errno::ERANGE);
    }
    t.mm.copy_out(value, &v)?;
    Ok(v.len() as u64)
}

fn setxattr_path(t: &Task, p: &Path, name: Addr, value: Addr, size: u64, flags: u32) -> SysResult {
    if flags & !(XATTR_CREATE | XATTR_REPLACE) != 0 {
        return Err(Errno::EINVAL);
    }
    let name = xattr_name(t, name)?;
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size > XATTR_SIZE_MAX {
        return Err(Errno::E2BIG);
    }
    let v = t.mm.read_bytes(value, size)?;
    xattr_check(t, p, &name, true)?;
    p.inode().setxattr(&name, &v, flags)?;
    Ok(0)
}

fn listxattr_path(t: &Task, p: &Path, list: Addr, size: u64) -> SysResult {
    let v = if has_xattrs(p)? { p.inode().listxattr()? } else { Vec::new() };
    let size = usize::try_from(size).unwrap_or(usize::MAX);
    if size == 0 {
        return Ok(v.len() as u64);
    }
    if v.len() > size {
        return Err(Errno::ERANGE);
    }
    t.mm.copy_out(list, &v)?;
    Ok(v.len() as u64)
}

fn removexattr_path(t: &Task, p: &Path, name: Addr) -> SysResult {
    let name = xattr_name(t, name)?;
    xattr_check(t, p, &name, true)?;
    p.inode().removexattr(&name)?;
    Ok(0)
}

fn xpath(t: &Task, path: Addr, follow: bool) -> Result<Path, Errno> {
    let path = read_path(t, path)?;
    path_of(t, Fd(AT_FDCWD), &path, if follow { 0 } else { AT_SYMLINK_NOFOLLOW })
}

pub fn getxattr(t: &mut Task, path: Addr, name: Addr, value: Addr, size: u64) -> SysResult {
    let p = xpath(t, path, true)?;
    getxattr_path(t, &p, name, value, size)
}

pub fn lgetxattr(t: &mut Task, path: Addr, name: Addr, value: Addr, size: u64) -> SysResult {
    let p = xpath(t, path, false)?;
    getxattr_path(t, &p, name, value, size)
}

pub fn fgetxattr(t: &mut Task, fd: Fd, name: Addr, value: Addr, size: u64) -> SysResult {
    let p = fd_path(t, fd)?;
    getxattr_path(t, &p, name, value, size)
}

pub fn setxattr(t: &mut Task, path: Addr, name: Addr, value: Addr, size: u64, flags: u32) -> SysResult {
    let p = xpath(t, path, true)?;
    setxattr_path(t, &p, name, value, size, flags)
}

pub fn lsetxattr(t: &mut Task, path: Addr, name: Addr, value: Addr, size: u64, flags: u32) -> SysResult {
    let p = xpath(t, path, false)?;
    setxattr_path(t, &p, name, value, size, flags)
}

pub fn fsetxattr(t: &mut Task, fd: Fd, name: Addr, value: Addr, size: u64, flags: u32) -> SysResult {
    let p = fd_path(t, fd)?;
    setxattr_path(t, &p, name, value, size, flags)
}

pub fn listxattr(t: &mut Task, path: Addr, list: Addr, size: u64) -> SysResult {
    let p = xpath(t, path, true)?;
    listxattr_path(t, &p, list, size)
}

pub fn llistxattr(t: &mut Task, path: Addr, list: Addr, size: u64) -> SysResult {
    let p = xpath(t, path, false)?;
    listxattr_path(t, &p, list, size)
}

pub fn flistxattr(t: &mut Task, fd: Fd, list: Addr, size: u64) -> SysResult {
    let p = fd_path(t, fd)?;
    listxattr_path(t, &p, list, size)
}

pub fn removexattr(t: &mut Task, path: Addr, name: Addr) -> SysResult {
    let p = xpath(t, path, true)?;
    removexattr_path(t, &p, name)
}

pub fn lremovexattr(t: &mut Task, path: Addr, name: Addr) -> SysResult {
    let p = xpath(t, path, false)?;
    removexattr_path(t, &p, name)
}

pub fn fremovexattr(t: &mut Task, fd: Fd, name: Addr) -> SysResult {
    let p = fd_path(t, fd)?;
    removexattr_path(t, &p, name)
}
