//! Credentials of a process, kept by the sentry (never the host's).

/// Linux's full capability set for this kernel version (CAP_LAST_CAP 40).
pub const ALL_CAPS: u64 = (1 << 41) - 1;

/// User and group ids and capability sets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    /// Real user id.
    pub ruid: u32,
    /// Effective user id.
    pub euid: u32,
    /// Saved user id.
    pub suid: u32,
    /// Real group id.
    pub rgid: u32,
    /// Effective group id.
    pub egid: u32,
    /// Saved group id.
    pub sgid: u32,
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
            rgid: gid,
            egid: gid,
            sgid: gid,
            groups,
            cap_effective: caps,
            cap_permitted: caps,
            cap_inheritable: 0,
            cap_bounding: ALL_CAPS,
        }
    }
}
