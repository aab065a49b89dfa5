//! Files: the descriptor table, open file descriptions, and the file kinds
//! the sentry serves so far (host stdio it owns). The VFS (mounts, path
//! walk, gofer-backed files) comes with the files issues.

pub mod host;

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rvisor_syscalls::abi::Stat;
use rvisor_syscalls::Errno;

use crate::kernel::Task;

/// `O_NONBLOCK`.
pub const O_NONBLOCK: u32 = 0o4000;
/// `O_APPEND`.
pub const O_APPEND: u32 = 0o2000;
/// `O_ACCMODE`.
pub const O_ACCMODE: u32 = 3;
/// `O_RDONLY`.
pub const O_RDONLY: u32 = 0;
/// `O_WRONLY`.
pub const O_WRONLY: u32 = 1;
/// `O_RDWR`.
pub const O_RDWR: u32 = 2;

/// What a kind of file does.
pub trait FileOps: Send + Sync {
    /// Reads into `buf` (at `off` for `pread`). Blocking reads wait through
    /// the task, so they end with `EINTR` when the task must stop.
    fn read(&self, t: &Task, file: &File, buf: &mut [u8], off: Option<u64>) -> Result<usize, Errno>;
    /// Writes `data` (at `off` for `pwrite`).
    fn write(&self, t: &Task, file: &File, data: &[u8], off: Option<u64>) -> Result<usize, Errno>;
    /// `lseek`.
    fn seek(&self, _off: i64, _whence: u32) -> Result<u64, Errno> {
        Err(Errno::ESPIPE)
    }
    /// `fstat`.
    fn stat(&self) -> Result<Stat, Errno>;
    /// `ioctl` requests the file kind handles.
    fn ioctl(&self, _t: &Task, _cmd: u32, _arg: u64) -> Result<u64, Errno> {
        Err(Errno::ENOTTY)
    }
}

/// An open file description.
pub struct File {
    ops: Box<dyn FileOps>,
    /// Status flags (`O_APPEND`, `O_NONBLOCK`, access mode).
    flags: AtomicU32,
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("File").field("flags", &self.flags()).finish_non_exhaustive()
    }
}

impl File {
    /// A new open file description.
    pub fn new(ops: Box<dyn FileOps>, flags: u32) -> Arc<File> {
        Arc::new(File { ops, flags: AtomicU32::new(flags) })
    }

    /// Status flags.
    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    /// Replaces the changeable status flags (`F_SETFL`: `O_APPEND`,
    /// `O_NONBLOCK`).
    pub fn set_status_flags(&self, flags: u32) {
        let keep = self.flags() & !(O_APPEND | O_NONBLOCK);
        self.flags.store(keep | (flags & (O_APPEND | O_NONBLOCK)), Ordering::Relaxed);
    }

    /// Whether the description was opened for reading.
    pub fn readable(&self) -> bool {
        self.flags() & O_ACCMODE != O_WRONLY
    }

    /// Whether the description was opened for writing.
    pub fn writable(&self) -> bool {
        matches!(self.flags() & O_ACCMODE, O_WRONLY | O_RDWR)
    }

    /// Whether `O_NONBLOCK` is set (on the description, not the host fd).
    pub fn nonblocking(&self) -> bool {
        self.flags() & O_NONBLOCK != 0
    }

    /// See [`FileOps::read`].
    pub fn read(&self, t: &Task, buf: &mut [u8], off: Option<u64>) -> Result<usize, Errno> {
        if !self.readable() {
            return Err(Errno::EBADF);
        }
        self.ops.read(t, self, buf, off)
    }

    /// See [`FileOps::write`].
    pub fn write(&self, t: &Task, data: &[u8], off: Option<u64>) -> Result<usize, Errno> {
        if !self.writable() {
            return Err(Errno::EBADF);
        }
        self.ops.write(t, self, data, off)
    }

    /// See [`FileOps::seek`].
    pub fn seek(&self, off: i64, whence: u32) -> Result<u64, Errno> {
        self.ops.seek(off, whence)
    }

    /// See [`FileOps::stat`].
    pub fn stat(&self) -> Result<Stat, Errno> {
        self.ops.stat()
    }

    /// See [`FileOps::ioctl`].
    pub fn ioctl(&self, t: &Task, cmd: u32, arg: u64) -> Result<u64, Errno> {
        self.ops.ioctl(t, cmd, arg)
    }
}

/// One descriptor slot.
#[derive(Clone, Debug)]
pub struct FdEntry {
    /// The description.
    pub file: Arc<File>,
    /// `FD_CLOEXEC`.
    pub cloexec: bool,
}

/// A descriptor table.
#[derive(Debug, Default)]
pub struct FdTable {
    slots: Mutex<Vec<Option<FdEntry>>>,
}

/// Largest descriptor table (`fs.nr_open` default).
pub const NR_OPEN: usize = 1 << 20;

impl FdTable {
    fn lock(&self) -> MutexGuard<'_, Vec<Option<FdEntry>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The description behind `fd`.
    pub fn get(&self, fd: i32) -> Result<Arc<File>, Errno> {
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        self.lock().get(i).and_then(|s| s.as_ref()).map(|e| e.file.clone()).ok_or(Errno::EBADF)
    }

    /// The slot of `fd`.
    pub fn entry(&self, fd: i32) -> Result<FdEntry, Errno> {
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        self.lock().get(i).and_then(|s| s.clone()).ok_or(Errno::EBADF)
    }

    /// Installs `file` at the lowest free descriptor `>= min`, below
    /// `limit` (`RLIMIT_NOFILE`).
    pub fn install(&self, file: Arc<File>, cloexec: bool, min: usize, limit: usize) -> Result<i32, Errno> {
        let limit = limit.min(NR_OPEN);
        let mut s = self.lock();
        let mut i = min;
        while i < s.len() && s[i].is_some() {
            i += 1;
        }
        if i >= limit {
            return Err(Errno::EMFILE);
        }
        if i >= s.len() {
            s.resize(i + 1, None);
        }
        s[i] = Some(FdEntry { file, cloexec });
        i32::try_from(i).map_err(|_| Errno::EMFILE)
    }

    /// Installs `file` at exactly `fd`, replacing (and returning) what was
    /// there.
    pub fn install_at(
        &self,
        fd: i32,
        file: Arc<File>,
        cloexec: bool,
        limit: usize,
    ) -> Result<Option<FdEntry>, Errno> {
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        if i >= limit.min(NR_OPEN) {
            return Err(Errno::EBADF);
        }
        let mut s = self.lock();
        if i >= s.len() {
            s.resize(i + 1, None);
        }
        Ok(s[i].replace(FdEntry { file, cloexec }))
    }

    /// Removes `fd`.
    pub fn remove(&self, fd: i32) -> Result<FdEntry, Errno> {
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        self.lock().get_mut(i).and_then(Option::take).ok_or(Errno::EBADF)
    }

    /// Sets `FD_CLOEXEC` on `fd`.
    pub fn set_cloexec(&self, fd: i32, cloexec: bool) -> Result<(), Errno> {
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        let mut s = self.lock();
        let e = s.get_mut(i).and_then(Option::as_mut).ok_or(Errno::EBADF)?;
        e.cloexec = cloexec;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Null;
    impl FileOps for Null {
        fn read(&self, _: &Task, _: &File, _: &mut [u8], _: Option<u64>) -> Result<usize, Errno> {
            Ok(0)
        }
        fn write(&self, _: &Task, _: &File, d: &[u8], _: Option<u64>) -> Result<usize, Errno> {
            Ok(d.len())
        }
        fn stat(&self) -> Result<Stat, Errno> {
            Ok(Stat::default())
        }
    }

    #[test]
    fn lowest_free_descriptor_and_limits() {
        let t = FdTable::default();
        let f = File::new(Box::new(Null), O_RDWR);
        assert_eq!(t.install(f.clone(), false, 0, 3), Ok(0));
        assert_eq!(t.install(f.clone(), false, 0, 3), Ok(1));
        assert_eq!(t.install(f.clone(), true, 0, 3), Ok(2));
        assert_eq!(t.install(f.clone(), false, 0, 3), Err(Errno::EMFILE));
        t.remove(1).unwrap();
        assert_eq!(t.install(f.clone(), false, 0, 3), Ok(1));
        assert_eq!(t.install(f.clone(), false, 5, 10), Ok(5));
        assert!(t.entry(2).unwrap().cloexec);
        assert_eq!(t.get(3).unwrap_err(), Errno::EBADF);
        assert_eq!(t.get(-1).unwrap_err(), Errno::EBADF);
        assert!(t.install_at(7, f.clone(), false, 10).unwrap().is_none());
        assert!(t.install_at(7, f, false, 10).unwrap().is_some());
    }
}
