//! Layouts of the structures that cross the user/kernel boundary on
//! x86_64. They derive `zerocopy` traits so the sentry copies them to and
//! from application memory without `unsafe`; tests check each size against
//! the kernel's (`linux-raw-sys`).

use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// Derives for plain ABI structures.
macro_rules! abi_struct {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* pub $f:ident : $t:ty,)* }) => {
        $(#[$m])*
        #[repr(C)]
        #[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
        #[allow(missing_docs)]
        pub struct $name { $($(#[$fm])* pub $f: $t,)* }
    };
}

abi_struct! {
    /// `struct timespec`.
    pub struct Timespec { pub tv_sec: i64, pub tv_nsec: i64, }
}

abi_struct! {
    /// `struct timeval`.
    pub struct Timeval { pub tv_sec: i64, pub tv_usec: i64, }
}

impl Timespec {
    /// `d`, saturating at the largest representable time.
    pub fn from_duration(d: std::time::Duration) -> Timespec {
        Timespec {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_nsec: i64::from(d.subsec_nanos()),
        }
    }
}

impl Timeval {
    /// `d`, to the microsecond below, saturating.
    pub fn from_duration(d: std::time::Duration) -> Timeval {
        Timeval {
            tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            tv_usec: i64::from(d.subsec_micros()),
        }
    }

    /// The duration it says, if it is one (`tv_sec >= 0`, `tv_usec` in
    /// `0..1_000_000`).
    pub fn to_duration(self) -> Option<std::time::Duration> {
        if self.tv_sec < 0 || !(0..1_000_000).contains(&self.tv_usec) {
            return None;
        }
        Some(std::time::Duration::new(self.tv_sec.cast_unsigned(), u32::try_from(self.tv_usec * 1000).ok()?))
    }
}

abi_struct! {
    /// `struct timezone`.
    pub struct Timezone { pub tz_minuteswest: i32, pub tz_dsttime: i32, }
}

abi_struct! {
    /// `struct rlimit` / `struct rlimit64`.
    pub struct Rlimit { pub cur: u64, pub max: u64, }
}

abi_struct! {
    /// `struct iovec`.
    pub struct Iovec { pub base: u64, pub len: u64, }
}

abi_struct! {
    /// `struct stat` (x86_64).
    pub struct Stat {
        pub dev: u64,
        pub ino: u64,
        pub nlink: u64,
        pub mode: u32,
        pub uid: u32,
        pub gid: u32,
        pub pad0: u32,
        pub rdev: u64,
        pub size: i64,
        pub blksize: i64,
        pub blocks: i64,
        pub atime: i64,
        pub atime_nsec: i64,
        pub mtime: i64,
        pub mtime_nsec: i64,
        pub ctime: i64,
        pub ctime_nsec: i64,
        pub unused: [i64; 3],
    }
}

abi_struct! {
    /// `struct kernel_sigaction` (what `rt_sigaction` takes).
    pub struct KernelSigaction { pub handler: u64, pub flags: u64, pub restorer: u64, pub mask: u64, }
}

abi_struct! {
    /// `stack_t`.
    pub struct StackT { pub sp: u64, pub flags: i32, pub pad: i32, pub size: u64, }
}

abi_struct! {
    /// The kernel's `struct termios` (`TCGETS`), not glibc's.
    pub struct Termios {
        pub iflag: u32,
        pub oflag: u32,
        pub cflag: u32,
        pub lflag: u32,
        pub line: u8,
        pub cc: [u8; 19],
    }
}

abi_struct! {
    /// `struct winsize`.
    pub struct Winsize { pub row: u16, pub col: u16, pub xpixel: u16, pub ypixel: u16, }
}

abi_struct! {
    /// `struct sysinfo`.
    pub struct Sysinfo {
        pub uptime: i64,
        pub loads: [u64; 3],
        pub totalram: u64,
        pub freeram: u64,
        pub sharedram: u64,
        pub bufferram: u64,
        pub totalswap: u64,
        pub freeswap: u64,
        pub procs: u16,
        pub pad: u16,
        pub pad2: u32,
        pub totalhigh: u64,
        pub freehigh: u64,
        pub mem_unit: u32,
        pub pad3: u32,
    }
}

abi_struct! {
    /// `struct tms`.
    pub struct Tms { pub utime: i64, pub stime: i64, pub cutime: i64, pub cstime: i64, }
}

abi_struct! {
    /// `struct rusage`.
    pub struct Rusage {
        pub utime: Timeval,
        pub stime: Timeval,
        pub maxrss: i64,
        pub ixrss: i64,
        pub idrss: i64,
        pub isrss: i64,
        pub minflt: i64,
        pub majflt: i64,
        pub nswap: i64,
        pub inblock: i64,
        pub oublock: i64,
        pub msgsnd: i64,
        pub msgrcv: i64,
        pub nsignals: i64,
        pub nvcsw: i64,
        pub nivcsw: i64,
    }
}

/// `struct new_utsname`: six NUL-terminated 65-byte fields.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
pub struct Utsname {
    /// Operating system name.
    pub sysname: [u8; 65],
    /// Host name.
    pub nodename: [u8; 65],
    /// Release.
    pub release: [u8; 65],
    /// Version.
    pub version: [u8; 65],
    /// Machine.
    pub machine: [u8; 65],
    /// NIS domain name.
    pub domainname: [u8; 65],
}

impl Utsname {
    /// Fills a field, truncating to 64 bytes plus the NUL.
    pub fn field(s: &str) -> [u8; 65] {
        let mut f = [0u8; 65];
        let b = s.as_bytes();
        let n = b.len().min(64);
        f[..n].copy_from_slice(&b[..n]);
        f
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use linux_raw_sys::general as k;
    use std::mem::size_of;

    #[test]
    fn sizes_match_the_kernel() {
        assert_eq!(size_of::<Timespec>(), size_of::<k::__kernel_timespec>());
        assert_eq!(size_of::<Timeval>(), size_of::<k::__kernel_old_timeval>());
        assert_eq!(size_of::<Timezone>(), size_of::<k::timezone>());
        assert_eq!(size_of::<Rlimit>(), size_of::<k::rlimit64>());
        assert_eq!(size_of::<Iovec>(), size_of::<k::iovec>());
        assert_eq!(size_of::<Stat>(), size_of::<k::stat>());
        assert_eq!(size_of::<Stat>(), 144);
        assert_eq!(size_of::<KernelSigaction>(), 32);
        assert_eq!(size_of::<StackT>(), size_of::<k::stack_t>());
        assert_eq!(size_of::<Termios>(), size_of::<k::termios>());
        assert_eq!(size_of::<Winsize>(), size_of::<k::winsize>());
        assert_eq!(size_of::<Sysinfo>(), 112);
        assert_eq!(size_of::<Tms>(), 32);
        assert_eq!(size_of::<Rusage>(), size_of::<k::rusage>());
        assert_eq!(size_of::<Utsname>(), 6 * 65);
    }
}
