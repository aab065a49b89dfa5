//! Names: `mkdir`, `rmdir`, `unlink`, `rename`, `symlink`, `link`,
//! `chdir`, `getcwd`.

use std::sync::Arc;

use rvisor_syscalls::Errno;

use super::open::{may_create, new_owner};
use super::path::{
    creds, read_path, resolve_at, start_dir, walker, Target, AT_EMPTY_PATH, AT_FDCWD, AT_REMOVEDIR,
    AT_SYMLINK_FOLLOW,
};
use super::stat::dir_at;
use super::{Addr, Fd, SysResult};
use crate::kernel::Task;
use crate::vfs::inode::mode;
use crate::vfs::perm::{self, MAY_EXEC};
use crate::vfs::walk::Parent;
use crate::vfs::{path_string, Path};

fn parent(t: &Task, dirfd: Fd, path: &[u8]) -> Result<Parent, Errno> {
    let c = creds(t);
    let start = if path.starts_with(b"/") { t.fs_context().cwd } else { start_dir(t, dirfd)? };
    walker(t, &c).walk_parent(start, path)
}

fn child(t: &Task, p: &Parent) -> Result<Path, Errno> {
    let c = creds(t);
    walker(t, &c).child(&p.dir, &p.name)
}

/// The parent of `path` for a name that must not exist yet (`mkdir`,
/// `mknod`, `symlink`, `link`): `EEXIST` for `.`, `..`, a name that
/// exists, and with `no_slash` a trailing slash.
fn absent_name(t: &Task, dirfd: Fd, path: &[u8], no_slash: bool) -> Result<Parent, Errno> {
    let p = parent(t, dirfd, path)?;
    if p.name == b"." || p.name == b".." || (no_slash && p.trailing_slash) {
        return Err(Errno::EEXIST);
    }
    match child(t, &p) {
        Ok(_) => Err(Errno::EEXIST),
        Err(Errno::ENOENT) => Ok(p),
        Err(e) => Err(e),
    }
}

fn umask(t: &Task) -> u32 {
    t.tg().umask.load(std::sync::atomic::Ordering::Relaxed)
}

fn do_mkdir(t: &mut Task, dirfd: Fd, path: Addr, mode_bits: u32) -> SysResult {
    let path = read_path(t, path)?;
    let p = absent_name(t, dirfd, &path, false)?;
    may_create(t, &p.dir)?;
    let d = p.dir.attr()?;
    let mut m = mode_bits & 0o1777 & !umask(t);
    if d.mode & mode::S_ISGID != 0 {
        m |= mode::S_ISGID;
    }
    let owner = new_owner(t, &p.dir)?;
    let inode = p.dir.inode().mkdir(&p.name, mode::S_IFDIR | m, owner)?;
    p.dir.dentry.insert_child(&p.name, inode);
    crate::fs::inotify::created(&p.dir, &p.name, true);
    Ok(0)
}

pub fn mkdir(t: &mut Task, path: Addr, mode_bits: u32) -> SysResult {
    do_mkdir(t, Fd(AT_FDCWD), path, mode_bits)
}

pub fn mkdirat(t: &mut Task, dirfd: Fd, path: Addr, mode_bits: u32) -> SysResult {
    do_mkdir(t, dirfd, path, mode_bits)
}

pub fn mknod(t: &mut Task, path: Addr, mode_bits: u32, dev: u64) -> SysResult {
    mknodat(t, Fd(AT_FDCWD), path, mode_bits, dev)
}

pub fn mknodat(t: &mut Task, dirfd: Fd, path: Addr, mode_bits: u32, _dev: u64) -> SysResult {
    let path = read_path(t, path)?;
    let kind = mode_bits & mode::S_IFMT;
    let kind = if kind == 0 { mode::S_IFREG } else { kind };
    match kind {
        mode::S_IFREG | mode::S_IFIFO | mode::S_IFSOCK => {}
        mode::S_IFCHR | mode::S_IFBLK => {
            if !perm::capable(&creds(t), perm::CAP_MKNOD) {
                return Err(Errno::EPERM);
            }
            // Device nodes need devfs (synthetic-filesystems issue).
            return Err(Errno::EPERM);
        }
        mode::S_IFDIR => return Err(Errno::EPERM),
        _ => return Err(Errno::EINVAL),
    }
    let p = absent_name(t, dirfd, &path, false)?;
    may_create(t, &p.dir)?;
    let m = super::open::strip_sgid(t, &p.dir, mode_bits & 0o7777 & !umask(t))?;
    let owner = new_owner(t, &p.dir)?;
    let inode = if kind == mode::S_IFREG {
        p.dir.inode().create(&p.name, kind | m, owner, 0)?.0
    } else {
        p.dir.inode().mknod(&p.name, kind | m, owner)?
    };
    p.dir.dentry.insert_child(&p.name, inode);
    crate::fs::inotify::created(&p.dir, &p.name, false);
    Ok(0)
}

fn remove(t: &mut Task, dirfd: Fd, path: Addr, dir: bool) -> SysResult {
    let path = read_path(t, path)?;
    let p = parent(t, dirfd, &path)?;
    if dir {
        if p.name == b"." {
            return Err(Errno::EINVAL);
        }
        if p.name == b".." {
            return Err(Errno::ENOTEMPTY);
        }
    } else if p.name == b"." || p.name == b".." {
        return Err(Errno::EISDIR);
    }
    // Linux asks for write access to the mount before it looks the name up.
    if p.dir.mount.read_only() {
        return Err(Errno::EROFS);
    }
    let victim = child(t, &p)?;
    let va = victim.attr()?;
    // Linux's order: unlink's trailing slash, the permission and sticky
    // rules, the kind, then mount points.
    if !dir && p.trailing_slash {
        return Err(if va.is_dir() { Errno::EISDIR } else { Errno::ENOTDIR });
    }
    let d = p.dir.attr()?;
    perm::may_delete(&d, &va, &creds(t))?;
    if dir && !va.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    if !dir && va.is_dir() {
        return Err(Errno::EISDIR);
    }
    if t.mntns().is_mount_point(&Path { mount: p.dir.mount.clone(), dentry: victim.dentry.clone() })
        || !Arc::ptr_eq(&victim.mount, &p.dir.mount)
    {
        return Err(Errno::EBUSY);
    }
    p.dir.inode().unlink(&p.name, dir)?;
    p.dir.dentry.forget_child(&p.name);
    victim.dentry.mark_unlinked();
    victim.inode().invalidate();
    crate::fs::inotify::removed(&p.dir, &p.name, (va.dev, va.ino), va.is_dir(), dir || va.nlink <= 1);
    Ok(0)
}

pub fn rmdir(t: &mut Task, path: Addr) -> SysResult {
    remove(t, Fd(AT_FDCWD), path, true)
}

pub fn unlink(t: &mut Task, path: Addr) -> SysResult {
    remove(t, Fd(AT_FDCWD), path, false)
}

pub fn unlinkat(t: &mut Task, dirfd: Fd, path: Addr, flags: i32) -> SysResult {
    if flags & !AT_REMOVEDIR != 0 {
        return Err(Errno::EINVAL);
    }
    remove(t, dirfd, path, flags & AT_REMOVEDIR != 0)
}

/// Whether `a` is `b` or one of its ancestors (on one mount).
fn is_ancestor(a: &Path, b: &Path) -> bool {
    let mut cur = Some(b.dentry.clone());
    for _ in 0..1 << 20 {
        match cur {
            Some(d) if Arc::ptr_eq(&d, &a.dentry) => return true,
            Some(d) => cur = d.parent(),
            None => return false,
        }
    }
    // Deeper than any real tree: refused, rather than risk a cycle.
    true
}

fn do_rename(t: &mut Task, olddir: Fd, old: Addr, newdir: Fd, new: Addr, flags: u32) -> SysResult {
    const NOREPLACE: u32 = 1;
    const EXCHANGE: u32 = 2;
    const WHITEOUT: u32 = 4;
    if flags & !(NOREPLACE | EXCHANGE | WHITEOUT) != 0 || flags & NOREPLACE != 0 && flags & EXCHANGE != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & WHITEOUT != 0 {
        // Whiteouts belong to overlays.
        return Err(Errno::EINVAL);
    }
    let (oldp, newp) = (read_path(t, old)?, read_path(t, new)?);
    let a = parent(t, olddir, &oldp)?;
    let b = parent(t, newdir, &newp)?;
    // Linux's order: mounts, the names, write access, then the lookups.
    if !Arc::ptr_eq(&a.dir.mount, &b.dir.mount) {
        return Err(Errno::EXDEV);
    }
    let dots = |n: &[u8]| n == b"." || n == b"..";
    if dots(&a.name) {
        return Err(Errno::EBUSY);
    }
    if dots(&b.name) {
        return Err(if flags & NOREPLACE != 0 { Errno::EEXIST } else { Errno::EBUSY });
    }
    if a.dir.mount.read_only() {
        return Err(Errno::EROFS);
    }
    let src = child(t, &a)?;
    // A name that is a mount point (the walk crossed into the mount):
    // neither moved nor replaced.
    if !Arc::ptr_eq(&src.mount, &a.dir.mount) {
        return Err(Errno::EBUSY);
    }
    let sa = src.attr()?;
    if (a.trailing_slash || b.trailing_slash) && !sa.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    let dst = match child(t, &b) {
        Ok(d) if !Arc::ptr_eq(&d.mount, &b.dir.mount) => return Err(Errno::EBUSY),
        Ok(d) => Some(d),
        Err(Errno::ENOENT) if flags & EXCHANGE == 0 => None,
        Err(e) => return Err(e),
    };
    // The target an ancestor of the source (Linux's rename trap).
    if dst.as_ref().is_some_and(|d| is_ancestor(d, &a.dir)) {
        return Err(if flags & EXCHANGE != 0 { Errno::EINVAL } else { Errno::ENOTEMPTY });
    }
    let c = creds(t);
    perm::may_delete(&a.dir.attr()?, &sa, &c)?;
    if let Some(d) = &dst {
        if Arc::ptr_eq(&d.dentry, &src.dentry) || d.inode().attr()?.ino == sa.ino && d.attr()?.dev == sa.dev {
            return Ok(0);
        }
        if flags & NOREPLACE != 0 {
            return Err(Errno::EEXIST);
        }
        let da = d.attr()?;
        if flags & EXCHANGE == 0 {
            if sa.is_dir() && !da.is_dir() {
                return Err(Errno::ENOTDIR);
            }
            if !sa.is_dir() && da.is_dir() {
                return Err(Errno::EISDIR);
            }
        }
        perm::may_delete(&b.dir.attr()?, &da, &c)?;
        if t.mntns().is_mount_point(d) {
            return Err(Errno::EBUSY);
        }
    } else {
        perm::check(&b.dir.attr()?, &c, perm::MAY_WRITE | MAY_EXEC)?;
    }
    // A directory changing parent has its ".." rewritten: it must be
    // writable (and so must an exchanged one).
    if !Arc::ptr_eq(&a.dir.dentry, &b.dir.dentry) {
        if sa.is_dir() {
            perm::check(&sa, &c, perm::MAY_WRITE)?;
        }
        if let Some(d) = dst.as_ref().filter(|_| flags & EXCHANGE != 0) {
            let da = d.attr()?;
            if da.is_dir() {
                perm::check(&da, &c, perm::MAY_WRITE)?;
            }
        }
    }
    // A directory cannot move below itself.
    if sa.is_dir() && is_ancestor(&src, &b.dir) {
        return Err(Errno::EINVAL);
    }
    if t.mntns().is_mount_point(&src) {
        return Err(Errno::EBUSY);
    }
    a.dir.inode().rename(&a.name, b.dir.inode(), &b.name, flags)?;
    // The dentry cache follows.
    let moved = a.dir.dentry.forget_child(&a.name);
    let replaced = b.dir.dentry.forget_child(&b.name);
    if let Some(m) = moved {
        m.relink(&b.dir.dentry, &b.name);
        b.dir.dentry.adopt(&b.name, m);
    }
    if let Some(r) = replaced {
        if flags & EXCHANGE != 0 {
            r.relink(&a.dir.dentry, &a.name);
            a.dir.dentry.adopt(&a.name, r);
        } else {
            r.mark_unlinked();
        }
    }
    src.inode().invalidate();
    crate::fs::inotify::moved(&a.dir, &a.name, &b.dir, &b.name, (sa.dev, sa.ino), sa.is_dir());
    Ok(0)
}

pub fn rename(t: &mut Task, old: Addr, new: Addr) -> SysResult {
    do_rename(t, Fd(AT_FDCWD), old, Fd(AT_FDCWD), new, 0)
}

pub fn renameat(t: &mut Task, olddir: Fd, old: Addr, newdir: Fd, new: Addr) -> SysResult {
    do_rename(t, olddir, old, newdir, new, 0)
}

pub fn renameat2(t: &mut Task, olddir: Fd, old: Addr, newdir: Fd, new: Addr, flags: u32) -> SysResult {
    do_rename(t, olddir, old, newdir, new, flags)
}

fn do_symlink(t: &mut Task, target: Addr, dirfd: Fd, path: Addr) -> SysResult {
    let target = read_path(t, target)?;
    if target.is_empty() {
        return Err(Errno::ENOENT);
    }
    let path = read_path(t, path)?;
    let p = absent_name(t, dirfd, &path, true)?;
    may_create(t, &p.dir)?;
    let owner = new_owner(t, &p.dir)?;
    let inode = p.dir.inode().symlink(&p.name, &target, owner)?;
    p.dir.dentry.insert_child(&p.name, inode);
    crate::fs::inotify::created(&p.dir, &p.name, false);
    Ok(0)
}

pub fn symlink(t: &mut Task, target: Addr, path: Addr) -> SysResult {
    do_symlink(t, target, Fd(AT_FDCWD), path)
}

pub fn symlinkat(t: &mut Task, target: Addr, dirfd: Fd, path: Addr) -> SysResult {
    do_symlink(t, target, dirfd, path)
}

fn do_link(t: &mut Task, olddir: Fd, old: Addr, newdir: Fd, new: Addr, flags: i32) -> SysResult {
    if flags & !(AT_SYMLINK_FOLLOW | AT_EMPTY_PATH) != 0 {
        return Err(Errno::EINVAL);
    }
    let oldp = read_path(t, old)?;
    if oldp.is_empty() && flags & AT_EMPTY_PATH != 0 && !perm::capable(&creds(t), perm::CAP_DAC_READ_SEARCH) {
        return Err(Errno::ENOENT);
    }
    let Target::Path(src) = resolve_at(t, olddir, &oldp, flags, false)? else { return Err(Errno::EXDEV) };
    let sa = src.attr()?;
    let newp = read_path(t, new)?;
    let p = absent_name(t, newdir, &newp, true)?;
    // Linux's order: write access to the mount, same mount, the
    // hard-link protection, permission on the directory, then the kind.
    if p.dir.mount.read_only() {
        return Err(Errno::EROFS);
    }
    if !Arc::ptr_eq(&src.mount, &p.dir.mount) {
        return Err(Errno::EXDEV);
    }
    let c = creds(t);
    perm::may_link(&sa, &c)?;
    may_create(t, &p.dir)?;
    if sa.is_dir() {
        return Err(Errno::EPERM);
    }
    let inode = p.dir.inode().link(&p.name, src.inode())?;
    p.dir.dentry.insert_child(&p.name, inode);
    crate::fs::inotify::created(&p.dir, &p.name, false);
    Ok(0)
}

pub fn link(t: &mut Task, old: Addr, new: Addr) -> SysResult {
    do_link(t, Fd(AT_FDCWD), old, Fd(AT_FDCWD), new, 0)
}

pub fn linkat(t: &mut Task, olddir: Fd, old: Addr, newdir: Fd, new: Addr, flags: i32) -> SysResult {
    do_link(t, olddir, old, newdir, new, flags)
}

pub fn chdir(t: &mut Task, path: Addr) -> SysResult {
    let path = read_path(t, path)?;
    let p = dir_at(t, &path)?;
    t.fs.lock().unwrap_or_else(|e| e.into_inner()).cwd = p;
    Ok(0)
}

pub fn fchdir(t: &mut Task, fd: Fd) -> SysResult {
    let f = t.fds.get(fd.0)?;
    let p = f.path().cloned().ok_or(Errno::ENOTDIR)?;
    let a = p.attr()?;
    if !a.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    perm::check(&a, &creds(t), MAY_EXEC)?;
    t.fs.lock().unwrap_or_else(|e| e.into_inner()).cwd = p;
    Ok(0)
}

pub fn getcwd(t: &mut Task, buf: Addr, size: u64) -> SysResult {
    let ctx = t.fs_context();
    if ctx.cwd.dentry.is_unlinked() {
        return Err(Errno::ENOENT);
    }
    let mut s = path_string(&ctx.root, &ctx.cwd);
    s.push(0);
    if (s.len() as u64) > size {
        return Err(Errno::ERANGE);
    }
    t.mm.copy_out(buf, &s)?;
    Ok(s.len() as u64)
}

/// `bind` of an AF_UNIX socket to `path`: makes the socket node (mode
/// 0777 less the umask, as Linux) and returns its (dev, ino);
/// `EADDRINUSE` if the name exists.
pub(crate) fn socket_node(t: &Task, path: &[u8]) -> Result<(u64, u64), Errno> {
    let p = absent_name(t, Fd(AT_FDCWD), path, true).map_err(|e| {
        if e == Errno::EEXIST {
            Errno::EADDRINUSE
        } else {
            e
        }
    })?;
    may_create(t, &p.dir)?;
    let owner = new_owner(t, &p.dir)?;
    let inode = p.dir.inode().mknod(&p.name, mode::S_IFSOCK | (0o777 & !umask(t)), owner)?;
    let a = inode.attr()?;
    p.dir.dentry.insert_child(&p.name, inode);
    crate::fs::inotify::created(&p.dir, &p.name, false);
    // The device number the sandbox reports (the mount's), as `connect`
    // sees the node.
    Ok((p.dir.mount.dev, a.ino))
}

/// `connect`/`sendto` to the socket node at `path`: its (dev, ino), after
/// Linux's checks (write access; `ECONNREFUSED` for another kind of file).
pub(crate) fn socket_target(t: &Task, path: &[u8]) -> Result<(u64, u64), Errno> {
    let Target::Path(p) = resolve_at(t, Fd(AT_FDCWD), path, 0, true)? else {
        return Err(Errno::ECONNREFUSED);
    };
    let a = p.attr()?;
    perm::check(&a, &creds(t), perm::MAY_WRITE)?;
    if a.mode & mode::S_IFMT != mode::S_IFSOCK {
        return Err(Errno::ECONNREFUSED);
    }
    Ok((a.dev, a.ino))
}
