//! `stat`, `statx`, `statfs`, `readlink`, `access`.

use rvisor_syscalls::Errno;

use super::path::{
    creds, read_path, resolve_at, start_dir, walker, Target, AT_EACCESS, AT_EMPTY_PATH, AT_FDCWD,
    AT_NO_AUTOMOUNT, AT_SYMLINK_NOFOLLOW,
};
use super::{Addr, Fd, SysResult};
use crate::kernel::Task;
use crate::vfs::inode::{mode, InodeAttr};
use crate::vfs::perm::{self, MAY_EXEC};
use crate::vfs::{mflags, Path};

fn stat_target(_t: &Task, target: Target) -> Result<rvisor_syscalls::abi::Stat, Errno> {
    match target {
        Target::Path(p) => Ok(p.attr()?.to_stat()),
        Target::File(f) => f.stat(),
    }
}

pub fn stat(t: &mut Task, path: Addr, buf: Addr) -> SysResult {
    let p = read_path(t, path)?;
    let st = stat_target(t, resolve_at(t, Fd(AT_FDCWD), &p, 0, true)?)?;
    t.mm.write_obj(buf, &st)?;
    Ok(0)
}

pub fn lstat(t: &mut Task, path: Addr, buf: Addr) -> SysResult {
    let p = read_path(t, path)?;
    let st = stat_target(t, resolve_at(t, Fd(AT_FDCWD), &p, AT_SYMLINK_NOFOLLOW, true)?)?;
    t.mm.write_obj(buf, &st)?;
    Ok(0)
}

pub fn newfstatat(t: &mut Task, dirfd: Fd, path: Addr, buf: Addr, flags: i32) -> SysResult {
    if flags & !(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT) != 0 {
        return Err(Errno::EINVAL);
    }
    let p = read_path(t, path)?;
    let st = stat_target(t, resolve_at(t, dirfd, &p, flags, true)?)?;
    t.mm.write_obj(buf, &st)?;
    Ok(0)
}

/// `struct statx` fields the sentry fills (`STATX_BASIC_STATS | STATX_MNT_ID`).
const STATX_BASIC_STATS: u32 = 0x7ff;
const STATX_MNT_ID: u32 = 0x1000;

/// Major number of a Linux `dev_t`.
fn dev_major(d: u64) -> u32 {
    u32::try_from(((d >> 8) & 0xfff) | ((d >> 32) & !0xfff)).unwrap_or(0)
}

/// Minor number of a Linux `dev_t`.
fn dev_minor(d: u64) -> u32 {
    u32::try_from((d & 0xff) | ((d >> 12) & !0xff)).unwrap_or(0)
}

fn statx_bytes(a: &InodeAttr, mnt_id: u64, mask: u32) -> Vec<u8> {
    let mut b = vec![0u8; 256];
    let put = |b: &mut Vec<u8>, off: usize, v: &[u8]| b[off..off + v.len()].copy_from_slice(v);
    put(&mut b, 0, &(STATX_BASIC_STATS | (mask & STATX_MNT_ID)).to_le_bytes());
    put(&mut b, 4, &u32::try_from(a.blksize).unwrap_or(4096).to_le_bytes());
    put(&mut b, 16, &u32::try_from(a.nlink).unwrap_or(u32::MAX).to_le_bytes());
    put(&mut b, 20, &a.uid.to_le_bytes());
    put(&mut b, 24, &a.gid.to_le_bytes());
    put(&mut b, 28, &u16::try_from(a.mode & 0xffff).unwrap_or(0).to_le_bytes());
    put(&mut b, 32, &a.ino.to_le_bytes());
    put(&mut b, 40, &a.size.to_le_bytes());
    put(&mut b, 48, &a.blocks.to_le_bytes());
    let ts = |b: &mut Vec<u8>, off: usize, t: rvisor_syscalls::abi::Timespec| {
        put(b, off, &t.tv_sec.to_le_bytes());
        put(b, off + 8, &u32::try_from(t.tv_nsec).unwrap_or(0).to_le_bytes());
    };
    ts(&mut b, 64, a.atime);
    ts(&mut b, 96, a.ctime);
    ts(&mut b, 112, a.mtime);
    put(&mut b, 128, &dev_major(a.rdev).to_le_bytes());
    put(&mut b, 132, &dev_minor(a.rdev).to_le_bytes());
    put(&mut b, 136, &dev_major(a.dev).to_le_bytes());
    put(&mut b, 140, &dev_minor(a.dev).to_le_bytes());
    put(&mut b, 144, &mnt_id.to_le_bytes());
    b
}

pub fn statx(t: &mut Task, dirfd: Fd, path: Addr, flags: i32, mask: u32, buf: Addr) -> SysResult {
    const AT_STATX_SYNC_TYPE: i32 = 0x6000;
    if flags & !(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT | AT_STATX_SYNC_TYPE) != 0
        || flags & AT_STATX_SYNC_TYPE == AT_STATX_SYNC_TYPE
    {
        return Err(Errno::EINVAL);
    }
    const STATX_RESERVED: u32 = 0x8000_0000;
    if mask & STATX_RESERVED != 0 {
        return Err(Errno::EINVAL);
    }
    let p = read_path(t, path)?;
    let bytes = match resolve_at(t, dirfd, &p, flags, true)? {
        Target::Path(p) => statx_bytes(&p.attr()?, p.mount.id, mask),
        Target::File(f) => statx_bytes(&InodeAttr::from_stat(&f.stat()?), 0, mask),
    };
    t.mm.copy_out(buf, &bytes)?;
    Ok(0)
}

/// `struct statfs` (120 bytes).
fn statfs_bytes(p: &Path) -> Result<Vec<u8>, Errno> {
    let s = p.inode().statfs()?;
    let mut flags = s.flags & !0xf;
    if p.mount.flags & mflags::RDONLY != 0 {
        flags |= 1; // ST_RDONLY
    }
    if p.mount.flags & mflags::NOSUID != 0 {
        flags |= 2;
    }
    let dev = p.mount.dev;
    let fields: [u64; 7] = [s.fs_type, s.bsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree];
    let mut b: Vec<u8> = fields.iter().flat_map(|v| v.to_le_bytes()).collect();
    b.extend_from_slice(&u32::try_from(dev & 0xffff_ffff).unwrap_or(0).to_le_bytes());
    b.extend_from_slice(&u32::try_from(dev >> 32).unwrap_or(0).to_le_bytes());
    for v in [s.namelen, s.frsize, flags, 0, 0, 0, 0] {
        b.extend_from_slice(&v.to_le_bytes());
    }
    Ok(b)
}

pub fn statfs(t: &mut Task, path: Addr, buf: Addr) -> SysResult {
    let p = read_path(t, path)?;
    let Target::Path(p) = resolve_at(t, Fd(AT_FDCWD), &p, 0, true)? else { return Err(Errno::ENOSYS) };
    let b = statfs_bytes(&p)?;
    t.mm.copy_out(buf, &b)?;
    Ok(0)
}

pub fn fstatfs(t: &mut Task, fd: Fd, buf: Addr) -> SysResult {
    let f = t.fds.get(fd.0)?;
    let p = f.path().cloned().ok_or(Errno::ENOSYS)?;
    let b = statfs_bytes(&p)?;
    t.mm.copy_out(buf, &b)?;
    Ok(0)
}

fn do_readlink(t: &mut Task, dirfd: Fd, path: Addr, buf: Addr, size: i32) -> SysResult {
    if size <= 0 {
        return Err(Errno::EINVAL);
    }
    let p = read_path(t, path)?;
    let target = if p.is_empty() {
        // An O_PATH|O_NOFOLLOW descriptor of a link.
        match resolve_at(t, dirfd, &p, AT_EMPTY_PATH, false)? {
            Target::Path(p) => p,
            Target::File(_) => return Err(Errno::ENOENT),
        }
    } else {
        match resolve_at(t, dirfd, &p, AT_SYMLINK_NOFOLLOW, true)? {
            Target::Path(p) => p,
            Target::File(_) => return Err(Errno::EINVAL),
        }
    };
    if !target.attr()?.is_symlink() {
        // Linux: an empty path names no link (ENOENT); a path, a non-link.
        return Err(if p.is_empty() { Errno::ENOENT } else { Errno::EINVAL });
    }
    let link = target.inode().readlink()?;
    let n = link.len().min(usize::try_from(size).unwrap_or(0));
    t.mm.copy_out(buf, &link[..n])?;
    Ok(n as u64)
}

pub fn readlink(t: &mut Task, path: Addr, buf: Addr, size: i32) -> SysResult {
    do_readlink(t, Fd(AT_FDCWD), path, buf, size)
}

pub fn readlinkat(t: &mut Task, dirfd: Fd, path: Addr, buf: Addr, size: i32) -> SysResult {
    do_readlink(t, dirfd, path, buf, size)
}

fn do_access(t: &mut Task, dirfd: Fd, path: Addr, how: i32, flags: i32) -> SysResult {
    const R_OK: i32 = 4;
    const W_OK: i32 = 2;
    const X_OK: i32 = 1;
    if how & !(R_OK | W_OK | X_OK) != 0 || flags & !(AT_EACCESS | AT_SYMLINK_NOFOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let p = read_path(t, path)?;
    let target = resolve_at(t, dirfd, &p, flags, true)?;
    let Target::Path(target) = target else { return Ok(0) };
    if how == 0 {
        return Ok(0);
    }
    let a = target.attr()?;
    // access() checks with the real ids unless AT_EACCESS.
    let mut c = creds(t);
    if flags & AT_EACCESS == 0 {
        c.fsuid = c.ruid;
        c.fsgid = c.rgid;
        if c.ruid != 0 {
            c.cap_effective = 0;
        }
    }
    let want = u32::try_from(how).unwrap_or(0);
    perm::check(&a, &c, want)?;
    if how & W_OK != 0
        && target.mount.read_only()
        && matches!(a.kind(), mode::S_IFREG | mode::S_IFDIR | mode::S_IFLNK)
    {
        return Err(Errno::EROFS);
    }
    Ok(0)
}

pub fn access(t: &mut Task, path: Addr, how: i32) -> SysResult {
    do_access(t, Fd(AT_FDCWD), path, how, 0)
}

pub fn faccessat(t: &mut Task, dirfd: Fd, path: Addr, how: i32) -> SysResult {
    do_access(t, dirfd, path, how, 0)
}

pub fn faccessat2(t: &mut Task, dirfd: Fd, path: Addr, how: i32, flags: i32) -> SysResult {
    do_access(t, dirfd, path, how, flags)
}

/// Used by `chdir`-like calls: the directory `path` names.
pub fn dir_at(t: &Task, path: &[u8]) -> Result<Path, Errno> {
    let c = creds(t);
    let p = walker(t, &c).walk(start_dir(t, Fd(AT_FDCWD))?, path, true)?;
    let a = p.attr()?;
    if !a.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    perm::check(&a, &c, MAY_EXEC)?;
    Ok(p)
}
