//! The sandbox's `/dev`: `null`, `zero`, `full`, `random`, `urandom`,
//! the terminals (`tty`: the caller's controlling terminal; `console`: the
//! sandbox's console when it has one; `ptmx` and the `pts` directory where
//! devpts is mounted, `fs::tty`), the links `fd`, `stdin`, `stdout`,
//! `stderr` into `/proc/self/fd`, and `shm` (where a tmpfs is mounted).
//! The devices are the sentry's own: no host device is ever opened.

use std::sync::Arc;

use rvisor_syscalls::Errno;

use super::synth::{Meta, SynthDir, SynthLink};
use super::tty::{Device, TtyDevNode};
use crate::kernel::Task;
use crate::vfs::file::{File, FileOps};
use crate::vfs::inode::{mode, FsStats, Inode, InodeAttr, InodeRef};

/// `statfs` type of `/dev` (devtmpfs reports tmpfs's).
pub const TMPFS_MAGIC: u64 = 0x0102_1994;

/// What a device node does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Null,
    Zero,
    Full,
    Random,
}

/// Linux's device number encoding.
pub fn makedev(major: u64, minor: u64) -> u64 {
    (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12) | ((major & !0xfff) << 32)
}

struct DevNode {
    meta: Meta,
    kind: Kind,
}

impl Inode for DevNode {
    fn attr(&self) -> Result<InodeAttr, Errno> {
        Ok(self.meta.attr(1))
    }

    fn open(&self, _flags: u32) -> Result<Box<dyn FileOps>, Errno> {
        Ok(Box::new(DevFile { kind: self.kind }))
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(FsStats { fs_type: TMPFS_MAGIC, bsize: 4096, namelen: 255, frsize: 4096, ..FsStats::default() })
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

struct DevFile {
    kind: Kind,
}

impl FileOps for DevFile {
    fn read(&self, _t: &Task, _f: &File, buf: &mut [u8], _off: Option<u64>) -> Result<usize, Errno> {
        match self.kind {
            Kind::Null => Ok(0),
            Kind::Zero | Kind::Full => {
                buf.fill(0);
                Ok(buf.len())
            }
            Kind::Random => rustix::rand::getrandom(&mut *buf, rustix::rand::GetRandomFlags::empty())
                .map_err(|_| Errno::EIO),
        }
    }

    fn write(&self, _t: &Task, _f: &File, data: &[u8], _off: Option<u64>) -> Result<usize, Errno> {
        match self.kind {
            Kind::Full => Err(Errno::ENOSPC),
            _ => Ok(data.len()),
        }
    }

    fn seek(&self, _off: i64, _whence: u32) -> Result<u64, Errno> {
        // Linux's null, zero, full and random devices stay at 0.
        Ok(0)
    }

    fn maps_anonymous(&self) -> bool {
        self.kind == Kind::Zero
    }
}

/// A new `/dev`.
pub fn new() -> InodeRef {
    let node = |name: &str, major: u64, minor: u64, kind: Kind| -> (Vec<u8>, InodeRef) {
        let meta = Meta { rdev: makedev(major, minor), ..Meta::new(mode::S_IFCHR | 0o666, TMPFS_MAGIC) };
        (name.as_bytes().to_vec(), Arc::new(DevNode { meta, kind }) as InodeRef)
    };
    let tty = |name: &str, major: u64, minor: u64, perm: u32, device: Device| -> (Vec<u8>, InodeRef) {
        let meta = Meta { rdev: makedev(major, minor), ..Meta::new(mode::S_IFCHR | perm, TMPFS_MAGIC) };
        (name.as_bytes().to_vec(), TtyDevNode::new(device, meta) as InodeRef)
    };
    let link = |name: &str, target: &'static str| -> (Vec<u8>, InodeRef) {
        let l =
            SynthLink::new(Meta::new(0, TMPFS_MAGIC), Box::new(move || Ok(target.as_bytes().to_vec())), true);
        (name.as_bytes().to_vec(), l as InodeRef)
    };
    let entries: Vec<(Vec<u8>, InodeRef)> = vec![
        node("null", 1, 3, Kind::Null),
        node("zero", 1, 5, Kind::Zero),
        node("full", 1, 7, Kind::Full),
        node("random", 1, 8, Kind::Random),
        node("urandom", 1, 9, Kind::Random),
        tty("tty", 5, 0, 0o666, Device::Ctty),
        tty("console", 5, 1, 0o600, Device::Console),
        tty("ptmx", 5, 2, 0o666, Device::Ptmx),
        link("fd", "/proc/self/fd"),
        link("stdin", "/proc/self/fd/0"),
        link("stdout", "/proc/self/fd/1"),
        link("stderr", "/proc/self/fd/2"),
        // Where devpts is mounted.
        (b"pts".to_vec(), SynthDir::new(Meta::new(0o755, TMPFS_MAGIC), Box::new(Vec::new), true) as InodeRef),
        // Where a tmpfs is mounted.
        (
            b"shm".to_vec(),
            SynthDir::new(Meta::new(0o1777, TMPFS_MAGIC), Box::new(Vec::new), true) as InodeRef,
        ),
    ];
    SynthDir::new(Meta::new(0o755, TMPFS_MAGIC), Box::new(move || entries.clone()), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_numbers_encode_as_linux() {
        assert_eq!(makedev(1, 3), 0x103);
        assert_eq!(makedev(5, 0), 0x500);
        assert_eq!(makedev(259, 300), 0x11_032c);
    }
}
