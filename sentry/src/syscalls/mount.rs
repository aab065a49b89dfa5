//! Mounts and names inside the sandbox: `mount` (tmpfs, proc, sysfs,
//! binds, remounts, propagation changes), `umount2`, `chroot`,
//! `sethostname`, `setdomainname`. They change the sandbox's own mount
//! namespace and names; the host's are never touched.

use rvisor_syscalls::Errno;

use super::path::{creds, read_path, start_dir, walker, AT_FDCWD};
use super::{Addr, Fd, SysResult};
use crate::kernel::Task;
use crate::vfs::{mflags, perm, MountSource, Path};

const CAP_SYS_CHROOT: u64 = 1 << 18;
use crate::kernel::creds::CAP_SYS_ADMIN;

const MS_RDONLY: u64 = 1;
const MS_NOSUID: u64 = 2;
const MS_NODEV: u64 = 4;
const MS_NOEXEC: u64 = 8;
const MS_REMOUNT: u64 = 32;
const MS_BIND: u64 = 4096;
const MS_MOVE: u64 = 8192;
const MS_UNBINDABLE: u64 = 1 << 17;
const MS_PRIVATE: u64 = 1 << 18;
const MS_SLAVE: u64 = 1 << 19;
const MS_SHARED: u64 = 1 << 20;
const MS_MGC_MSK: u64 = 0xffff_0000;
const MS_MGC_VAL: u64 = 0xc0ed_0000;

/// Longest host or domain name.
const UTS_LEN: usize = 64;

/// Bytes of a mount's data the kernel copies (one page).
const DATA_MAX: usize = 4096;

fn mount_flags(flags: u64) -> u32 {
    let mut f = 0;
    for (ms, m) in [
        (MS_RDONLY, mflags::RDONLY),
        (MS_NOSUID, mflags::NOSUID),
        (MS_NODEV, mflags::NODEV),
        (MS_NOEXEC, mflags::NOEXEC),
    ] {
        if flags & ms != 0 {
            f |= m;
        }
    }
    f
}

/// A string argument of `mount` (`None` for a null pointer).
fn string(t: &Task, addr: Addr, max: usize) -> Result<Option<Vec<u8>>, Errno> {
    if addr == 0 {
        return Ok(None);
    }
    match t.mm.read_cstring(addr, max) {
        Ok(s) => Ok(Some(s)),
        // Linux copies at most a page and cuts the rest.
        Err(Errno::ENAMETOOLONG) => Ok(Some(t.mm.read_bytes(addr, max)?)),
        Err(e) => Err(e),
    }
}

fn lookup(t: &Task, path: &[u8], follow: bool) -> Result<Path, Errno> {
    let c = creds(t);
    walker(t, &c).walk(start_dir(t, Fd(AT_FDCWD))?, path, follow)
}

/// Whether `p` is the root of its mount.
fn is_mount_root(p: &Path) -> bool {
    std::sync::Arc::ptr_eq(&p.dentry, &p.mount.root)
}

pub fn mount(t: &mut Task, source: Addr, target: Addr, fstype: Addr, flags: u64, data: Addr) -> SysResult {
    let mut flags = flags;
    if flags & MS_MGC_MSK == MS_MGC_VAL {
        flags &= !MS_MGC_MSK;
    }
    // Linux's order: the strings, the target, the capability, the kind.
    let fstype = string(t, fstype, DATA_MAX)?;
    let source = string(t, source, DATA_MAX)?;
    let data = string(t, data, DATA_MAX)?;
    let target = read_path(t, target)?;
    let at = lookup(t, &target, true)?;
    if !creds(t).capable(CAP_SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    let ns = t.mntns().clone();
    if flags & MS_REMOUNT != 0 {
        if !is_mount_root(&at) {
            return Err(Errno::EINVAL);
        }
        // The mount's flags become the ones given (as `mount -o remount`
        // passes them all).
        ns.set_flags(&at.mount, mount_flags(flags))?;
        return Ok(0);
    }
    if flags & MS_BIND != 0 {
        let src = source.ok_or(Errno::EFAULT)?;
        let from = lookup(t, &src, true)?;
        let fs = from.inode().clone();
        // What was mounted below the source is not carried over (MS_REC).
        ns.mount(&at, fs, mount_flags(flags), from.mount.source.clone())?;
        return Ok(0);
    }
    if flags & (MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE) != 0 {
        // The sandbox's mounts propagate nowhere: every mount is private.
        return if is_mount_root(&at) { Ok(0) } else { Err(Errno::EINVAL) };
    }
    if flags & MS_MOVE != 0 {
        return Err(Errno::EINVAL);
    }
    let fstype = fstype.ok_or(Errno::EFAULT)?;
    let (fs, extra, src) = match fstype.as_slice() {
        b"tmpfs" => {
            let d = String::from_utf8_lossy(data.as_deref().unwrap_or_default()).into_owned();
            let o = crate::fs::tmpfs::Options::parse(d.split(','), t.kernel.mem_total())?;
            (crate::fs::tmpfs::new(o.bytes, o.mode, o.owner), o.flags, MountSource::named("tmpfs"))
        }
        b"proc" => (crate::fs::proc::new(&t.kernel), 0, MountSource::named("proc")),
        b"sysfs" => (crate::fs::sys::new(&t.kernel), 0, MountSource::named("sysfs")),
        // One devpts per sandbox: every mount shows the same pairs.
        b"devpts" => (t.kernel.devpts.root(), 0, MountSource::named("devpts")),
        _ => return Err(Errno::ENODEV),
    };
    if !at.attr()?.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    ns.mount(&at, fs, mount_flags(flags) | extra, src)?;
    Ok(0)
}

pub fn umount2(t: &mut Task, target: Addr, flags: i32) -> SysResult {
    const MNT_FORCE: i32 = 1;
    const MNT_DETACH: i32 = 2;
    const MNT_EXPIRE: i32 = 4;
    const UMOUNT_NOFOLLOW: i32 = 8;
    if flags & !(MNT_FORCE | MNT_DETACH | MNT_EXPIRE | UMOUNT_NOFOLLOW) != 0 {
        return Err(Errno::EINVAL);
    }
    let target = read_path(t, target)?;
    let at = lookup(t, &target, flags & UMOUNT_NOFOLLOW == 0)?;
    if !creds(t).capable(CAP_SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    if !is_mount_root(&at) {
        return Err(Errno::EINVAL);
    }
    t.mntns().unmount(&at.mount, flags & MNT_DETACH != 0)?;
    Ok(0)
}

pub fn chroot(t: &mut Task, path: Addr) -> SysResult {
    let path = read_path(t, path)?;
    let p = lookup(t, &path, true)?;
    let c = creds(t);
    let a = p.attr()?;
    if !a.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    perm::check(&a, &c, perm::MAY_EXEC)?;
    if !c.capable(CAP_SYS_CHROOT) {
        return Err(Errno::EPERM);
    }
    t.fs.lock().unwrap_or_else(|e| e.into_inner()).root = p;
    Ok(0)
}

fn uts_name(t: &Task, name: Addr, len: i32) -> Result<String, Errno> {
    if !creds(t).capable(CAP_SYS_ADMIN) {
        return Err(Errno::EPERM);
    }
    let len = usize::try_from(len).ok().filter(|&l| l <= UTS_LEN).ok_or(Errno::EINVAL)?;
    let b = t.mm.read_bytes(name, len)?;
    Ok(String::from_utf8_lossy(&b).into_owned())
}

pub fn sethostname(t: &mut Task, name: Addr, len: i32) -> SysResult {
    let n = uts_name(t, name, len)?;
    t.kernel.uts.write().unwrap_or_else(|p| p.into_inner()).hostname = n;
    Ok(0)
}

pub fn setdomainname(t: &mut Task, name: Addr, len: i32) -> SysResult {
    let n = uts_name(t, name, len)?;
    t.kernel.uts.write().unwrap_or_else(|p| p.into_inner()).domainname = n;
    Ok(0)
}
