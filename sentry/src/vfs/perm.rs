//! Permission checks, made by the sentry with the task's credentials (the
//! gofer serves with its own, broader rights).

use rvisor_syscalls::Errno;

use super::inode::{mode, InodeAttr};
use crate::kernel::creds::Credentials;

/// Read.
pub const MAY_READ: u32 = 4;
/// Write.
pub const MAY_WRITE: u32 = 2;
/// Execute, or search a directory.
pub const MAY_EXEC: u32 = 1;

/// `CAP_CHOWN`.
pub const CAP_CHOWN: u64 = 1 << 0;
/// `CAP_DAC_OVERRIDE`.
pub const CAP_DAC_OVERRIDE: u64 = 1 << 1;
/// `CAP_DAC_READ_SEARCH`.
pub const CAP_DAC_READ_SEARCH: u64 = 1 << 2;
/// `CAP_FOWNER`.
pub const CAP_FOWNER: u64 = 1 << 3;
/// `CAP_FSETID`.
pub const CAP_FSETID: u64 = 1 << 4;
/// `CAP_MKNOD`.
pub const CAP_MKNOD: u64 = 1 << 27;

/// Whether the credentials hold capability `cap`.
pub fn capable(c: &Credentials, cap: u64) -> bool {
    c.cap_effective & cap == cap
}

/// Whether `gid` is one of the caller's groups.
pub fn in_group(c: &Credentials, gid: u32) -> bool {
    c.fsgid == gid || c.groups.contains(&gid)
}

/// Linux's `generic_permission`: `want` is a mask of `MAY_*`.
pub fn check(attr: &InodeAttr, c: &Credentials, want: u32) -> Result<(), Errno> {
    let m = attr.mode;
    let bits = if c.fsuid == attr.uid {
        (m >> 6) & 7
    } else if in_group(c, attr.gid) {
        (m >> 3) & 7
    } else {
        m & 7
    };
    if want & !bits == 0 {
        return Ok(());
    }
    let is_dir = attr.kind() == mode::S_IFDIR;
    // CAP_DAC_READ_SEARCH: read anything, search directories.
    if capable(c, CAP_DAC_READ_SEARCH) {
        let rs = if is_dir { MAY_READ | MAY_EXEC } else { MAY_READ };
        if want & !rs == 0 {
            return Ok(());
        }
    }
    // CAP_DAC_OVERRIDE: anything, except executing a file nobody may
    // execute.
    if capable(c, CAP_DAC_OVERRIDE) && (want & MAY_EXEC == 0 || is_dir || m & 0o111 != 0) {
        return Ok(());
    }
    Err(Errno::EACCES)
}

/// Whether the caller owns the file or may act as its owner
/// (`CAP_FOWNER`): for `chmod`, `utimes` with explicit times, sticky
/// directories.
pub fn owner_or_capable(attr: &InodeAttr, c: &Credentials) -> bool {
    c.fsuid == attr.uid || capable(c, CAP_FOWNER)
}

/// The sticky-bit rule for removing or renaming `victim` out of `dir`.
pub fn may_delete(dir: &InodeAttr, victim: &InodeAttr, c: &Credentials) -> Result<(), Errno> {
    check(dir, c, MAY_WRITE | MAY_EXEC)?;
    if dir.mode & mode::S_ISVTX != 0 && c.fsuid != victim.uid && c.fsuid != dir.uid && !capable(c, CAP_FOWNER)
    {
        return Err(Errno::EPERM);
    }
    Ok(())
}

/// `fs.protected_hardlinks`, read from the host once at start-up (the
/// setting is not namespaced: a container on Linux sees the host's).
static PROTECTED_HARDLINKS: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Reads the host's `fs.protected_hardlinks` (before confinement).
pub fn detect_protected_hardlinks() {
    let on = std::fs::read_to_string("/proc/sys/fs/protected_hardlinks").map_or(true, |v| v.trim() != "0");
    PROTECTED_HARDLINKS.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// Linux's `may_linkat`: with `fs.protected_hardlinks`, only the owner,
/// `CAP_FOWNER`, or someone who could read and write a plain regular file
/// may link to it.
pub fn may_link(src: &InodeAttr, c: &Credentials) -> Result<(), Errno> {
    if !PROTECTED_HARDLINKS.load(std::sync::atomic::Ordering::Relaxed) || c.fsuid == src.uid {
        return Ok(());
    }
    let setgid_exec = src.mode & mode::S_ISGID != 0 && src.mode & 0o010 != 0;
    let safe = src.kind() == mode::S_IFREG && src.mode & mode::S_ISUID == 0 && !setgid_exec;
    if safe && check(src, c, MAY_READ | MAY_WRITE).is_ok() || capable(c, CAP_FOWNER) {
        return Ok(());
    }
    Err(Errno::EPERM)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(mode: u32, uid: u32, gid: u32) -> InodeAttr {
        InodeAttr { mode, uid, gid, ..InodeAttr::default() }
    }

    #[test]
    fn owner_group_other_and_capabilities() {
        let user = Credentials::new(1000, 1000, vec![50]);
        let root = Credentials::new(0, 0, vec![]);
        let f = attr(0o100640, 1000, 50);
        assert!(check(&f, &user, MAY_READ | MAY_WRITE).is_ok());
        assert_eq!(check(&f, &user, MAY_EXEC), Err(Errno::EACCES));
        let other = Credentials::new(2000, 2000, vec![50]);
        assert!(check(&f, &other, MAY_READ).is_ok(), "supplementary group");
        assert_eq!(check(&f, &other, MAY_WRITE), Err(Errno::EACCES));
        let stranger = Credentials::new(3000, 3000, vec![]);
        assert_eq!(check(&f, &stranger, MAY_READ), Err(Errno::EACCES));
        // Owner bits win even when they give less than "other".
        let odd = attr(0o100007, 1000, 1000);
        assert_eq!(check(&odd, &user, MAY_READ), Err(Errno::EACCES));
        // Root: anything but executing a file with no x bit.
        assert!(check(&attr(0o100000, 5, 5), &root, MAY_READ | MAY_WRITE).is_ok());
        assert_eq!(check(&attr(0o100600, 5, 5), &root, MAY_EXEC), Err(Errno::EACCES));
        assert!(check(&attr(0o100001, 5, 5), &root, MAY_EXEC).is_ok());
        assert!(check(&attr(0o040000, 5, 5), &root, MAY_EXEC).is_ok());
    }

    #[test]
    fn protected_hardlinks() {
        let user = Credentials::new(1000, 1000, vec![]);
        assert!(may_link(&attr(0o100600, 1000, 1000), &user).is_ok(), "owner");
        assert_eq!(may_link(&attr(0o100644, 0, 0), &user), Err(Errno::EPERM), "not writable");
        assert!(may_link(&attr(0o100666, 0, 0), &user).is_ok(), "readable and writable");
        assert_eq!(may_link(&attr(0o104666, 0, 0), &user), Err(Errno::EPERM), "set-uid");
        assert_eq!(may_link(&attr(0o102676, 0, 0), &user), Err(Errno::EPERM), "set-gid, group x");
        assert!(may_link(&attr(0o100000, 5, 5), &Credentials::new(0, 0, vec![])).is_ok(), "CAP_FOWNER");
    }

    #[test]
    fn sticky_directories() {
        let user = Credentials::new(1000, 1000, vec![]);
        let tmp = attr(0o041777, 0, 0);
        assert!(may_delete(&tmp, &attr(0o100644, 1000, 1000), &user).is_ok());
        assert_eq!(may_delete(&tmp, &attr(0o100644, 1001, 1001), &user), Err(Errno::EPERM));
    }
}
