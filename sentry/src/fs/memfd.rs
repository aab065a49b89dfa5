//! `memfd_create`: an anonymous regular file in memory.
//!
//! The contents live in a host memfd the sentry creates for the purpose
//! (a host object the sentry owns, as the memory file is, used on the
//! application's behalf; the application's call itself never reaches the
//! host). Reads, writes, `ftruncate`, `fallocate` and `mmap` go through
//! it like a file the gofer donated; the seals are the host memfd's, so
//! the host enforces them on every write path, except `F_SEAL_FUTURE_WRITE`,
//! which the sentry keeps itself: the platform maps a file's pages only
//! when the application touches them, and a host seal would refuse the
//! mappings the application made before sealing. What `fstat` and
//! `/proc/PID/fd` show is the sandbox's: its own device and inode
//! numbers, the creator's ids, `/memfd:NAME (deleted)`.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Arc;

use rustix::fs::{MemfdFlags, SealFlags};
use rvisor_syscalls::abi::Stat;
use rvisor_syscalls::Errno;

use super::gofer::{host, HostBackedFile};
use crate::kernel::Task;
use crate::vfs::{File, FileOps};

/// `memfd_create` flags.
pub mod flags {
    #![allow(missing_docs)]
    pub const MFD_CLOEXEC: u32 = 1;
    pub const MFD_ALLOW_SEALING: u32 = 2;
    pub const MFD_HUGETLB: u32 = 4;
    pub const MFD_NOEXEC_SEAL: u32 = 8;
    pub const MFD_EXEC: u32 = 0x10;
    pub const ALL: u32 = MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_HUGETLB | MFD_NOEXEC_SEAL | MFD_EXEC;
}

/// The longest name (Linux's `NAME_MAX` less `memfd:`).
pub const NAME_MAX: usize = 249;

/// The device number memfds report (Linux's internal shm mount, 0:1).
const DEV: u64 = 1;

/// The seals Linux knows.
const KNOWN_SEALS: u32 = 0x3f;

const F_SEAL_SEAL: u32 = 0x1;
const F_SEAL_WRITE: u32 = 0x8;
const F_SEAL_FUTURE_WRITE: u32 = 0x10;

/// `F_SEAL_WRITE` and `F_SEAL_FUTURE_WRITE`.
pub const SEALS_DENYING_WRITES: u32 = F_SEAL_WRITE | F_SEAL_FUTURE_WRITE;

static NEXT_INO: AtomicU64 = AtomicU64::new(1);

/// A memfd.
pub struct MemFd {
    file: HostBackedFile,
    fd: Arc<OwnedFd>,
    ino: u64,
    uid: u32,
    gid: u32,
    /// `/memfd:NAME (deleted)`.
    link: String,
    /// Seals the sentry enforces itself (`F_SEAL_FUTURE_WRITE`).
    own: AtomicU32,
}

/// A new memfd named `name` (checked by the caller) for `t`, with the
/// `memfd_create` flags `f` (checked: no unknown bits, not both exec
/// flags, no huge pages).
pub fn new(t: &Task, name: &[u8], f: u32) -> Result<Arc<File>, Errno> {
    let mut host_flags = MemfdFlags::CLOEXEC;
    for (bit, hf) in [
        (flags::MFD_ALLOW_SEALING, MemfdFlags::ALLOW_SEALING),
        (flags::MFD_NOEXEC_SEAL, MemfdFlags::NOEXEC_SEAL),
        (flags::MFD_EXEC, MemfdFlags::EXEC),
    ] {
        if f & bit != 0 {
            host_flags |= hf;
        }
    }
    // The host sees a name of the sandbox's only in its own /proc.
    let fd = rustix::fs::memfd_create("rvisor-memfd", host_flags).map_err(|e| match host(e) {
        Errno::EMFILE | Errno::ENFILE => Errno::ENFILE,
        e => e,
    })?;
    let fd = Arc::new(fd);
    let c = t.tg().creds();
    let m = MemFd {
        file: HostBackedFile::new(fd.clone()),
        fd,
        ino: NEXT_INO.fetch_add(1, Ordering::Relaxed),
        uid: c.fsuid,
        gid: c.fsgid,
        link: format!("/memfd:{} (deleted)", String::from_utf8_lossy(name)),
        own: AtomicU32::new(0),
    };
    Ok(File::new(Box::new(m), crate::vfs::file::O_RDWR | crate::vfs::file::oflags::O_LARGEFILE))
}

impl MemFd {
    /// The file's (device, inode): the key its writable shared mappings
    /// hold write access on.
    pub fn key(&self) -> (u64, u64) {
        (DEV, self.ino)
    }

    /// `F_GET_SEALS`.
    pub fn seals(&self) -> Result<u32, Errno> {
        let host_seals = rustix::fs::fcntl_get_seals(&*self.fd).map_err(host)?.bits();
        Ok(host_seals | self.own.load(Ordering::Acquire))
    }

    fn future_write_sealed(&self) -> bool {
        self.own.load(Ordering::Acquire) & F_SEAL_FUTURE_WRITE != 0
    }

    /// `F_ADD_SEALS` on a file open as `file` (the caller checks it is
    /// this memfd's).
    pub fn add_seals(&self, file: &File, seals: u32) -> Result<(), Errno> {
        if !file.writable() {
            return Err(Errno::EPERM);
        }
        if seals & !KNOWN_SEALS != 0 {
            return Err(Errno::EINVAL);
        }
        let cur = self.seals()?;
        if cur & F_SEAL_SEAL != 0 {
            return Err(Errno::EPERM);
        }
        // Mappings the platform has not made yet count as Linux counts
        // them: every shared mapping of a descriptor open for writing.
        if seals & F_SEAL_WRITE != 0
            && cur & F_SEAL_WRITE == 0
            && crate::vfs::textbusy::writers(self.key()) > 0
        {
            return Err(Errno::EBUSY);
        }
        let host_seals = seals & !F_SEAL_FUTURE_WRITE;
        if host_seals != 0 {
            rustix::fs::fcntl_add_seals(&*self.fd, SealFlags::from_bits_retain(host_seals)).map_err(host)?;
        }
        self.own.fetch_or(seals & F_SEAL_FUTURE_WRITE, Ordering::AcqRel);
        Ok(())
    }
}

impl FileOps for MemFd {
    fn read(&self, t: &Task, f: &File, buf: &mut [u8], off: Option<u64>) -> Result<usize, Errno> {
        self.file.read(t, f, buf, off)
    }

    fn write(&self, t: &Task, f: &File, data: &[u8], off: Option<u64>) -> Result<usize, Errno> {
        if self.future_write_sealed() {
            return Err(Errno::EPERM);
        }
        self.file.write(t, f, data, off)
    }

    fn seek(&self, off: i64, whence: u32) -> Result<u64, Errno> {
        self.file.seek(off, whence)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let h = rustix::fs::fstat(&*self.fd).map_err(host)?;
        Ok(Stat {
            dev: DEV,
            ino: self.ino,
            // Never linked anywhere.
            nlink: 0,
            mode: h.st_mode,
            uid: self.uid,
            gid: self.gid,
            size: h.st_size,
            blksize: 4096,
            blocks: h.st_blocks,
            atime: h.st_atime,
            atime_nsec: h.st_atime_nsec.cast_signed(),
            mtime: h.st_mtime,
            mtime_nsec: h.st_mtime_nsec.cast_signed(),
            ctime: h.st_ctime,
            ctime_nsec: h.st_ctime_nsec.cast_signed(),
            ..Stat::default()
        })
    }

    fn truncate(&self, len: u64) -> Result<(), Errno> {
        self.file.truncate(len)
    }

    fn fsync(&self) -> Result<(), Errno> {
        Ok(())
    }

    fn allocate(&self, mode: u32, off: u64, len: u64) -> Result<(), Errno> {
        const FALLOC_FL_PUNCH_HOLE: u32 = 2;
        if mode & FALLOC_FL_PUNCH_HOLE != 0 && self.future_write_sealed() {
            return Err(Errno::EPERM);
        }
        self.file.allocate(mode, off, len)
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        self.file.read_at(buf, off)
    }

    fn mappable(&self) -> Option<Arc<OwnedFd>> {
        Some(self.fd.clone())
    }

    fn read_into(
        &self,
        t: &Task,
        f: &File,
        dst: u64,
        len: usize,
        off: Option<u64>,
    ) -> Option<Result<usize, Errno>> {
        self.file.read_into(t, f, dst, len, off)
    }

    fn link_name(&self) -> Option<String> {
        Some(self.link.clone())
    }

    fn memfd(&self) -> Option<&MemFd> {
        Some(self)
    }
}
