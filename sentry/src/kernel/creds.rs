//! Credentials of a process, kept by the sentry (never the host's), and
//! the rules by which they change: the `set*id` family and their effect
//! on capabilities (capabilities(7), "Effect of user ID changes on
//! capabilities"), `capset`, and `execve`.

use rvisor_syscalls::Errno;

/// Linux's full capability set for this kernel version (CAP_LAST_CAP 40).
pub const ALL_CAPS: u64 = (1 << 41) - 1;
/// `CAP_SYS_ADMIN`.
pub const CAP_SYS_ADMIN: u64 = 1 << 21;
/// `CAP_SETGID`.
pub const CAP_SETGID: u64 = 1 << 6;
/// `CAP_SETUID`.
pub const CAP_SETUID: u64 = 1 << 7;
/// `CAP_SETPCAP`.
pub const CAP_SETPCAP: u64 = 1 << 8;
/// Capabilities that follow the file-system user id between 0 and
/// nonzero (`CAP_FS_MASK`: chown, dac_override, dac_read_search, fowner,
/// fsetid, linux_immutable, mknod, mac_override).
pub const CAP_FS_MASK: u64 = 0x1f | (1 << 9) | (1 << 27) | (1 << 32);

/// User and group ids and capability sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Real user id.
    pub ruid: u32,
    /// Effective user id.
    pub euid: u32,
    /// Saved user id.
    pub suid: u32,
    /// File-system user id (file permission checks and new files' owner).
    pub fsuid: u32,
    /// Real group id.
    pub rgid: u32,
    /// Effective group id.
    pub egid: u32,
    /// Saved group id.
    pub sgid: u32,
    /// File-system group id.
    pub fsgid: u32,
    /// Supplementary groups.
    pub groups: Vec<u32>,
    /// Effective capabilities.
    pub cap_effective: u64,
    /// Permitted capabilities.
    pub cap_permitted: u64,
    /// Inheritable capabilities.
    pub cap_inheritable: u64,
    /// Bounding set.
    pub cap_bounding: u64,
    /// `PR_SET_KEEPCAPS` (`SECBIT_KEEP_CAPS`): permitted capabilities
    /// survive all user ids becoming nonzero. Cleared by `execve`.
    pub keep_caps: bool,
}

/// An id argument of the `set*id` calls: `-1` leaves the id unchanged.
fn given(id: u32) -> Option<u32> {
    (id != u32::MAX).then_some(id)
}

impl Credentials {
    /// Credentials of a process running as `uid:gid`; root gets every
    /// capability (inside the sandbox), others none.
    pub fn new(uid: u32, gid: u32, groups: Vec<u32>) -> Credentials {
        let caps = if uid == 0 { ALL_CAPS } else { 0 };
        Credentials {
            ruid: uid,
            euid: uid,
            suid: uid,
            fsuid: uid,
            rgid: gid,
            egid: gid,
            sgid: gid,
            fsgid: gid,
            groups,
            cap_effective: caps,
            cap_permitted: caps,
            cap_inheritable: 0,
            cap_bounding: ALL_CAPS,
            keep_caps: false,
        }
    }

    /// Whether `cap` is in the effective set.
    pub fn capable(&self, cap: u64) -> bool {
        self.cap_effective & cap == cap
    }

    /// Applies new user ids and the capability rules that go with them
    /// (Linux's `cap_emulate_setxuid` and `cap_task_fix_setuid`).
    fn set_uids(&mut self, ruid: u32, euid: u32, suid: u32, fsuid: u32) {
        let old = self.clone();
        (self.ruid, self.euid, self.suid, self.fsuid) = (ruid, euid, suid, fsuid);
        let was_root = old.ruid == 0 || old.euid == 0 || old.suid == 0;
        let now_root = ruid == 0 || euid == 0 || suid == 0;
        if was_root && !now_root {
            if !self.keep_caps {
                self.cap_permitted = 0;
            }
            self.cap_effective = 0;
        }
        if old.euid == 0 && euid != 0 {
            self.cap_effective = 0;
        }
        if old.euid != 0 && euid == 0 {
            self.cap_effective = self.cap_permitted;
        }
        self.fix_fsuid(old.fsuid);
    }

    /// The file-system capabilities follow the file-system user id.
    fn fix_fsuid(&mut self, old_fsuid: u32) {
        if old_fsuid == 0 && self.fsuid != 0 {
            self.cap_effective &= !CAP_FS_MASK;
        }
        if old_fsuid != 0 && self.fsuid == 0 {
            self.cap_effective |= self.cap_permitted & CAP_FS_MASK;
        }
    }

    /// `setuid(uid)`.
    pub fn setuid(&mut self, uid: u32) -> Result<(), Errno> {
        let uid = given(uid).ok_or(Errno::EINVAL)?;
        if self.capable(CAP_SETUID) {
            self.set_uids(uid, uid, uid, uid);
        } else if uid == self.ruid || uid == self.suid {
            self.set_uids(self.ruid, uid, self.suid, uid);
        } else {
            return Err(Errno::EPERM);
        }
        Ok(())
    }

    /// `setreuid(ruid, euid)`.
    pub fn setreuid(&mut self, ruid: u32, euid: u32) -> Result<(), Errno> {
        let (r, e) = (given(ruid), given(euid));
        let privileged = self.capable(CAP_SETUID);
        if let Some(r) = r {
            if !privileged && r != self.ruid && r != self.euid {
                return Err(Errno::EPERM);
            }
        }
        if let Some(e) = e {
            if !privileged && e != self.ruid && e != self.euid && e != self.suid {
                return Err(Errno::EPERM);
            }
        }
        let new_r = r.unwrap_or(self.ruid);
        let new_e = e.unwrap_or(self.euid);
        // The saved id follows the effective one when the real one is set
        // or the effective one changes away from the (old) real one.
        let new_s = if r.is_some() || e.is_some_and(|e| e != self.ruid) { new_e } else { self.suid };
        self.set_uids(new_r, new_e, new_s, new_e);
        Ok(())
    }

    /// `setresuid(ruid, euid, suid)`.
    pub fn setresuid(&mut self, ruid: u32, euid: u32, suid: u32) -> Result<(), Errno> {
        let ids = [given(ruid), given(euid), given(suid)];
        if !self.capable(CAP_SETUID) {
            let allowed = [self.ruid, self.euid, self.suid];
            if ids.iter().flatten().any(|id| !allowed.contains(id)) {
                return Err(Errno::EPERM);
            }
        }
        let new_e = ids[1].unwrap_or(self.euid);
        self.set_uids(ids[0].unwrap_or(self.ruid), new_e, ids[2].unwrap_or(self.suid), new_e);
        Ok(())
    }

    /// `setfsuid(uid)`: returns the previous file-system user id, whether
    /// or not the change is allowed.
    pub fn setfsuid(&mut self, uid: u32) -> u32 {
        let old = self.fsuid;
        let allowed = [self.ruid, self.euid, self.suid, self.fsuid];
        if given(uid).is_some() && (self.capable(CAP_SETUID) || allowed.contains(&uid)) {
            self.fsuid = uid;
            self.fix_fsuid(old);
        }
        old
    }

    /// `setgid(gid)`.
    pub fn setgid(&mut self, gid: u32) -> Result<(), Errno> {
        let gid = given(gid).ok_or(Errno::EINVAL)?;
        if self.capable(CAP_SETGID) {
            (self.rgid, self.egid, self.sgid, self.fsgid) = (gid, gid, gid, gid);
        } else if gid == self.rgid || gid == self.sgid {
            (self.egid, self.fsgid) = (gid, gid);
        } else {
            return Err(Errno::EPERM);
        }
        Ok(())
    }

    /// `setregid(rgid, egid)`.
    pub fn setregid(&mut self, rgid: u32, egid: u32) -> Result<(), Errno> {
        let (r, e) = (given(rgid), given(egid));
        let privileged = self.capable(CAP_SETGID);
        if r.is_some_and(|r| !privileged && r != self.rgid && r != self.egid) {
            return Err(Errno::EPERM);
        }
        if e.is_some_and(|e| !privileged && e != self.rgid && e != self.egid && e != self.sgid) {
            return Err(Errno::EPERM);
        }
        let new_e = e.unwrap_or(self.egid);
        if r.is_some() || e.is_some_and(|e| e != self.rgid) {
            self.sgid = new_e;
        }
        self.rgid = r.unwrap_or(self.rgid);
        (self.egid, self.fsgid) = (new_e, new_e);
        Ok(())
    }

    /// `setresgid(rgid, egid, sgid)`.
    pub fn setresgid(&mut self, rgid: u32, egid: u32, sgid: u32) -> Result<(), Errno> {
        let ids = [given(rgid), given(egid), given(sgid)];
        if !self.capable(CAP_SETGID) {
            let allowed = [self.rgid, self.egid, self.sgid];
            if ids.iter().flatten().any(|id| !allowed.contains(id)) {
                return Err(Errno::EPERM);
            }
        }
        self.rgid = ids[0].unwrap_or(self.rgid);
        self.egid = ids[1].unwrap_or(self.egid);
        self.sgid = ids[2].unwrap_or(self.sgid);
        self.fsgid = self.egid;
        Ok(())
    }

    /// `setfsgid(gid)`: returns the previous file-system group id.
    pub fn setfsgid(&mut self, gid: u32) -> u32 {
        let old = self.fsgid;
        let allowed = [self.rgid, self.egid, self.sgid, self.fsgid];
        if given(gid).is_some() && (self.capable(CAP_SETGID) || allowed.contains(&gid)) {
            self.fsgid = gid;
        }
        old
    }

    /// `setgroups`.
    pub fn setgroups(&mut self, groups: Vec<u32>) -> Result<(), Errno> {
        if !self.capable(CAP_SETGID) {
            return Err(Errno::EPERM);
        }
        self.groups = groups;
        Ok(())
    }

    /// `capset` of this process's own sets (Linux's `cap_capset`).
    pub fn capset(&mut self, effective: u64, permitted: u64, inheritable: u64) -> Result<(), Errno> {
        let (effective, permitted, inheritable) =
            (effective & ALL_CAPS, permitted & ALL_CAPS, inheritable & ALL_CAPS);
        let subset = |a: u64, b: u64| a & !b == 0;
        if !subset(inheritable, self.cap_inheritable | self.cap_permitted) && !self.capable(CAP_SETPCAP) {
            return Err(Errno::EPERM);
        }
        if !subset(inheritable, self.cap_inheritable | self.cap_bounding)
            || !subset(permitted, self.cap_permitted)
            || !subset(effective, permitted)
        {
            return Err(Errno::EPERM);
        }
        (self.cap_effective, self.cap_permitted, self.cap_inheritable) = (effective, permitted, inheritable);
        Ok(())
    }

    /// `execve` of a file without capabilities or set-id bits: root (real
    /// or effective) gets its inheritable and bounding capabilities as
    /// permitted (effective too when the effective id is 0); anyone else
    /// keeps none.
    pub fn exec(&mut self) {
        if self.ruid == 0 || self.euid == 0 {
            self.cap_permitted = (self.cap_inheritable | self.cap_bounding) & ALL_CAPS;
            self.cap_effective = if self.euid == 0 { self.cap_permitted } else { 0 };
        } else {
            self.cap_permitted = 0;
            self.cap_effective = 0;
        }
        self.keep_caps = false;
        self.suid = self.euid;
        self.fsuid = self.euid;
        self.sgid = self.egid;
        self.fsgid = self.egid;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_dropping_all_ids_loses_its_capabilities() {
        let mut c = Credentials::new(0, 0, vec![]);
        c.setresuid(1000, 1000, 1000).unwrap();
        assert_eq!((c.cap_effective, c.cap_permitted), (0, 0));
        assert_eq!(c.setuid(0), Err(Errno::EPERM), "no way back");
    }

    #[test]
    fn effective_id_swaps_keep_permitted_capabilities() {
        let mut c = Credentials::new(0, 0, vec![]);
        // seteuid(1000) (glibc: setresuid(-1, 1000, -1)): the saved id
        // stays 0.
        c.setresuid(u32::MAX, 1000, u32::MAX).unwrap();
        assert_eq!((c.ruid, c.euid, c.suid, c.fsuid), (0, 1000, 0, 1000));
        assert_eq!(c.cap_effective, 0);
        assert_eq!(c.cap_permitted, ALL_CAPS);
        // Back to 0: effective = permitted.
        c.setresuid(u32::MAX, 0, u32::MAX).unwrap();
        assert_eq!(c.cap_effective, ALL_CAPS);
        // setreuid(-1, 1000) with a real id of 0 moves the saved id too.
        c.setreuid(u32::MAX, 1000).unwrap();
        assert_eq!((c.ruid, c.euid, c.suid), (0, 1000, 1000));
    }

    #[test]
    fn unprivileged_changes_are_limited_to_known_ids() {
        let mut c = Credentials::new(1000, 1000, vec![]);
        assert_eq!(c.setuid(0), Err(Errno::EPERM));
        assert_eq!(c.setresuid(u32::MAX, 2000, u32::MAX), Err(Errno::EPERM));
        assert_eq!(c.setgroups(vec![1]), Err(Errno::EPERM));
        assert_eq!(c.setgid(5), Err(Errno::EPERM));
        c.setresuid(1000, 1000, 1000).unwrap();
        // setfsuid: refused quietly, returns the old value.
        assert_eq!(c.setfsuid(0), 1000);
        assert_eq!(c.fsuid, 1000);
    }

    #[test]
    fn keep_caps_keeps_permitted_only() {
        let mut c = Credentials::new(0, 0, vec![]);
        c.keep_caps = true;
        c.setresuid(1000, 1000, 1000).unwrap();
        assert_eq!((c.cap_effective, c.cap_permitted), (0, ALL_CAPS));
        c.capset(CAP_SETUID, ALL_CAPS, 0).unwrap();
        assert!(c.capable(CAP_SETUID));
        c.exec();
        assert_eq!((c.cap_effective, c.cap_permitted), (0, 0), "exec as non-root drops them");
    }

    #[test]
    fn capset_cannot_grow_permitted_or_exceed_it() {
        let mut c = Credentials::new(0, 0, vec![]);
        c.capset(CAP_SETUID, CAP_SETUID | CAP_SETGID, 0).unwrap();
        assert_eq!(c.capset(CAP_SETPCAP, CAP_SETUID, 0), Err(Errno::EPERM));
        assert_eq!(c.capset(0, ALL_CAPS, 0), Err(Errno::EPERM));
        c.capset(0, CAP_SETUID, 0).unwrap();
        assert_eq!(c.cap_permitted, CAP_SETUID);
        // Root regains its bounding set at exec.
        c.exec();
        assert_eq!(c.cap_effective, ALL_CAPS);
    }

    #[test]
    fn fs_capabilities_follow_the_fs_uid() {
        let mut c = Credentials::new(0, 0, vec![]);
        assert_eq!(c.setfsuid(1000), 0);
        assert_eq!(c.cap_effective & CAP_FS_MASK, 0);
        assert!(c.capable(CAP_SETUID));
        c.setfsuid(0);
        assert_eq!(c.cap_effective, ALL_CAPS);
    }
}
