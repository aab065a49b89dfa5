//! Open file descriptions and the descriptor table.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use rvisor_syscalls::abi::Stat;
use rvisor_syscalls::Errno;

use super::inode::DirEntry;
use super::Path;
use crate::kernel::Task;

/// `open` flags (x86_64 values).
pub mod oflags {
    #![allow(missing_docs)]
    pub const O_ACCMODE: u32 = 3;
    pub const O_RDONLY: u32 = 0;
    pub const O_WRONLY: u32 = 1;
    pub const O_RDWR: u32 = 2;
    pub const O_CREAT: u32 = 0o100;
    pub const O_EXCL: u32 = 0o200;
    pub const O_NOCTTY: u32 = 0o400;
    pub const O_TRUNC: u32 = 0o1000;
    pub const O_APPEND: u32 = 0o2000;
    pub const O_NONBLOCK: u32 = 0o4000;
    pub const O_DSYNC: u32 = 0o10000;
    pub const O_ASYNC: u32 = 0o20000;
    pub const O_DIRECT: u32 = 0o40000;
    pub const O_LARGEFILE: u32 = 0o100000;
    pub const O_DIRECTORY: u32 = 0o200000;
    pub const O_NOFOLLOW: u32 = 0o400000;
    pub const O_NOATIME: u32 = 0o1000000;
    pub const O_CLOEXEC: u32 = 0o2000000;
    pub const O_SYNC: u32 = 0o4010000;
    pub const O_PATH: u32 = 0o10000000;
    pub const O_TMPFILE: u32 = 0o20200000;
}

pub use oflags::{O_ACCMODE, O_APPEND, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY};

/// What `fstat` says of an anonymous-inode file (eventfd, epoll,
/// pidfd…), as Linux 6.1 has them.
pub fn anon_stat() -> Stat {
    Stat { mode: 0o600, nlink: 1, blksize: 4096, ..Stat::default() }
}

/// What a kind of open file does.
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
    /// `fstat`, for files without an inode in the VFS (host stdio).
    fn stat(&self) -> Result<Stat, Errno> {
        Err(Errno::EBADF)
    }
    /// `ioctl` requests the file kind handles.
    fn ioctl(&self, _t: &Task, _cmd: u32, _arg: u64) -> Result<u64, Errno> {
        Err(Errno::ENOTTY)
    }
    /// Directory entries that fit in `max` bytes of `linux_dirent64`
    /// records, with the cookie of the entry after each; advances.
    fn getdents(&self, _max: usize) -> Result<Vec<(DirEntry, u64)>, Errno> {
        Err(Errno::ENOTDIR)
    }
    /// `ftruncate`.
    fn truncate(&self, _len: u64) -> Result<(), Errno> {
        Err(Errno::EINVAL)
    }
    /// `fsync`/`fdatasync`.
    fn fsync(&self) -> Result<(), Errno> {
        Ok(())
    }
    /// `fallocate`.
    fn allocate(&self, _mode: u32, _off: u64, _len: u64) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }
    /// Reads at `off` without a task (files whose reads never wait: the
    /// loader reading an executable).
    fn read_at(&self, _buf: &mut [u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }
    /// Writes at `off` without a task (the overlay copying a file up).
    fn write_at(&self, _data: &[u8], _off: u64) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }
    /// A new open of the same file (`/proc/PID/fd/N` followed), for
    /// files outside the VFS that can be opened again (host stdio).
    fn reopen(&self) -> Option<Result<Box<dyn FileOps>, Errno>> {
        None
    }
    /// The status flags changed (`F_SETFL`); `flags` are the new ones.
    fn status_changed(&self, _flags: u32) {}
    /// The host descriptor `mmap` maps, for files that have one.
    fn mappable(&self) -> Option<Arc<std::os::fd::OwnedFd>> {
        None
    }
    /// Whether `mmap` of the file gives anonymous memory (`/dev/zero`).
    fn maps_anonymous(&self) -> bool {
        false
    }
    /// Readiness for `poll`: the events of `mask` (`waitq::events`) the
    /// file is ready for now. Files that never wait are always ready.
    fn readiness(&self, _file: &File, mask: u32) -> u32 {
        use crate::kernel::waitq::events::{IN, OUT, RDNORM, WRNORM};
        mask & (IN | OUT | RDNORM | WRNORM)
    }
    /// The queue a task waiting for readiness registers on (files whose
    /// readiness the sentry changes: pipes, pidfds).
    fn wait_queue(&self) -> Option<&crate::kernel::waitq::WaitQueue> {
        None
    }
    /// The process a pidfd names.
    fn pidfd_target(&self) -> Option<Arc<crate::kernel::ThreadGroup>> {
        None
    }
    /// The pipe, for pipe ends and FIFOs (`splice`, `F_SETPIPE_SZ`).
    fn pipe(&self) -> Option<&Arc<crate::fs::pipe::Pipe>> {
        None
    }
    /// The host descriptor to wait on for readiness (host files).
    fn host_poll_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }
    /// For an anonymous-inode file: its name (`[eventfd]`), which
    /// `/proc/PID/fd` shows as `anon_inode:[eventfd]`.
    fn anon_name(&self) -> Option<&'static str> {
        None
    }
    /// The epoll instance, for epoll files (nesting checks).
    fn epoll(&self) -> Option<&crate::fs::epoll::Epoll> {
        None
    }
    /// The timerfd, for timerfds.
    fn timerfd(&self) -> Option<&crate::fs::timerfd::TimerFd> {
        None
    }
    /// The signalfd, for signalfds.
    fn signalfd(&self) -> Option<&crate::fs::signalfd::SignalFd> {
        None
    }
    /// The inotify instance, for inotify files.
    fn inotify(&self) -> Option<&crate::fs::inotify::Inotify> {
        None
    }
    /// The memfd, for memfds (seals).
    fn memfd(&self) -> Option<&crate::fs::memfd::MemFd> {
        None
    }
    /// The socket, for AF_UNIX sockets.
    fn socket(&self) -> Option<&Arc<crate::fs::unix::Sock>> {
        None
    }
    /// What `/proc/PID/fd` shows for a file outside the VFS.
    fn link_name(&self) -> Option<String> {
        self.anon_name().map(|a| format!("anon_inode:{a}"))
    }
    /// Reads up to `len` bytes (at `off` for `pread`) straight into the
    /// task's memory at `dst` (checked writable by the caller). `None`:
    /// the file kind has no such path (the caller stages the data).
    fn read_into(
        &self,
        _t: &Task,
        _f: &File,
        _dst: u64,
        _len: usize,
        _off: Option<u64>,
    ) -> Option<Result<usize, Errno>> {
        None
    }
}

/// An open file description.
pub struct File {
    ops: Box<dyn FileOps>,
    /// Status flags (`O_APPEND`, `O_NONBLOCK`, access mode, `O_PATH`…).
    flags: AtomicU32,
    /// Where it was opened, for files of the VFS.
    path: Option<Path>,
    /// Write access held (`ETXTBSY` for executions meanwhile); released
    /// when the description goes.
    _write_access: Option<super::textbusy::WriteAccess>,
}

impl std::fmt::Debug for File {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("File").field("flags", &self.flags()).finish_non_exhaustive()
    }
}

impl File {
    /// A new open file description not in the VFS (host stdio).
    pub fn new(ops: Box<dyn FileOps>, flags: u32) -> Arc<File> {
        Arc::new(File { ops, flags: AtomicU32::new(flags), path: None, _write_access: None })
    }

    /// A new open file description of `path`.
    pub fn with_path(ops: Box<dyn FileOps>, flags: u32, path: Path) -> Arc<File> {
        Arc::new(File { ops, flags: AtomicU32::new(flags), path: Some(path), _write_access: None })
    }

    /// A new open file description of `path`, open for writing.
    pub fn writing(
        ops: Box<dyn FileOps>,
        flags: u32,
        path: Path,
        access: super::textbusy::WriteAccess,
    ) -> Arc<File> {
        Arc::new(File { ops, flags: AtomicU32::new(flags), path: Some(path), _write_access: Some(access) })
    }

    /// Status flags.
    pub fn flags(&self) -> u32 {
        self.flags.load(Ordering::Relaxed)
    }

    /// Where it was opened.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_ref()
    }

    /// Replaces the changeable status flags (`F_SETFL`: `O_APPEND`,
    /// `O_NONBLOCK`, `O_NOATIME`, `O_ASYNC`, `O_DIRECT`).
    pub fn set_status_flags(&self, flags: u32) {
        use oflags::*;
        let changeable = O_APPEND | O_NONBLOCK | O_NOATIME | O_ASYNC | O_DIRECT;
        let keep = self.flags() & !changeable;
        let new = keep | (flags & changeable);
        self.flags.store(new, Ordering::Relaxed);
        self.ops.status_changed(new);
    }

    /// The host descriptor `mmap` maps (regular files the gofer serves).
    pub fn mappable(&self) -> Option<Arc<std::os::fd::OwnedFd>> {
        self.ops.mappable()
    }

    /// See [`FileOps::read_into`] (access mode checked here).
    pub fn read_into(
        &self,
        t: &Task,
        dst: u64,
        len: usize,
        off: Option<u64>,
    ) -> Option<Result<usize, Errno>> {
        if !self.readable() {
            return Some(Err(Errno::EBADF));
        }
        let r = self.ops.read_into(t, self, dst, len, off);
        if let (Some(Ok(1..)), Some(p)) = (&r, &self.path) {
            crate::fs::inotify::file_event(p, crate::fs::inotify::bits::ACCESS);
        }
        r
    }

    /// Whether `mmap` of the file gives anonymous memory (`/dev/zero`).
    pub fn maps_anonymous(&self) -> bool {
        self.ops.maps_anonymous()
    }

    /// See [`FileOps::readiness`].
    pub fn readiness(&self, mask: u32) -> u32 {
        self.ops.readiness(self, mask)
    }

    /// See [`FileOps::wait_queue`].
    pub fn wait_queue(&self) -> Option<&crate::kernel::waitq::WaitQueue> {
        self.ops.wait_queue()
    }

    /// The process the file names, if it is a pidfd.
    pub fn pidfd_target(&self) -> Option<Arc<crate::kernel::ThreadGroup>> {
        self.ops.pidfd_target()
    }

    /// The pipe behind a pipe end or FIFO.
    pub fn pipe(&self) -> Option<&Arc<crate::fs::pipe::Pipe>> {
        self.ops.pipe()
    }

    /// See [`FileOps::host_poll_fd`].
    pub fn host_poll_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.ops.host_poll_fd()
    }

    /// The file's operations, for kinds that need their own type back
    /// (`splice` between pipes).
    pub fn ops(&self) -> &dyn FileOps {
        self.ops.as_ref()
    }

    /// Opened with `O_PATH`: only descriptor operations work.
    pub fn is_path_only(&self) -> bool {
        self.flags() & oflags::O_PATH != 0
    }

    /// Whether the description was opened for reading.
    pub fn readable(&self) -> bool {
        !self.is_path_only() && self.flags() & O_ACCMODE != O_WRONLY
    }

    /// Whether the description was opened for writing.
    pub fn writable(&self) -> bool {
        !self.is_path_only() && matches!(self.flags() & O_ACCMODE, O_WRONLY | O_RDWR)
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
        let r = self.ops.read(t, self, buf, off);
        if let (Ok(1..), Some(p)) = (&r, &self.path) {
            crate::fs::inotify::file_event(p, crate::fs::inotify::bits::ACCESS);
        }
        r
    }

    /// See [`FileOps::write`].
    pub fn write(&self, t: &Task, data: &[u8], off: Option<u64>) -> Result<usize, Errno> {
        if !self.writable() {
            return Err(Errno::EBADF);
        }
        let r = self.ops.write(t, self, data, off);
        if let (Ok(1..), Some(p)) = (&r, &self.path) {
            crate::fs::inotify::file_event(p, crate::fs::inotify::bits::MODIFY);
        }
        r
    }

    /// See [`FileOps::seek`].
    pub fn seek(&self, off: i64, whence: u32) -> Result<u64, Errno> {
        if self.is_path_only() {
            return Err(Errno::EBADF);
        }
        self.ops.seek(off, whence)
    }

    /// `fstat`: the inode's attributes for VFS files.
    pub fn stat(&self) -> Result<Stat, Errno> {
        match &self.path {
            Some(p) => Ok(p.attr()?.to_stat()),
            None => self.ops.stat(),
        }
    }

    /// See [`FileOps::ioctl`].
    pub fn ioctl(&self, t: &Task, cmd: u32, arg: u64) -> Result<u64, Errno> {
        if self.is_path_only() {
            return Err(Errno::EBADF);
        }
        self.ops.ioctl(t, cmd, arg)
    }

    /// See [`FileOps::getdents`].
    pub fn getdents(&self, max: usize) -> Result<Vec<(DirEntry, u64)>, Errno> {
        if self.is_path_only() {
            return Err(Errno::EBADF);
        }
        self.ops.getdents(max)
    }

    /// See [`FileOps::truncate`].
    pub fn truncate(&self, len: u64) -> Result<(), Errno> {
        if !self.writable() {
            return Err(Errno::EINVAL);
        }
        self.ops.truncate(len)
    }

    /// See [`FileOps::fsync`].
    pub fn fsync(&self) -> Result<(), Errno> {
        if self.is_path_only() {
            return Err(Errno::EBADF);
        }
        self.ops.fsync()
    }

    /// See [`FileOps::allocate`].
    pub fn allocate(&self, mode: u32, off: u64, len: u64) -> Result<(), Errno> {
        if !self.writable() {
            return Err(Errno::EBADF);
        }
        self.ops.allocate(mode, off, len)
    }
}

impl Drop for File {
    fn drop(&mut self) {
        // flock and OFD locks belong to the description.
        super::lock::release(super::lock::LockOwner::File(std::ptr::from_ref(self) as usize), None);
        if let (Some(p), false) = (&self.path, self.is_path_only()) {
            use crate::fs::inotify::{bits, file_event};
            file_event(p, if self.writable() { bits::CLOSE_WRITE } else { bits::CLOSE_NOWRITE });
        }
    }
}

impl File {
    /// The lock owner this description is for `flock` and OFD locks.
    pub fn lock_owner(&self) -> super::lock::LockOwner {
        super::lock::LockOwner::File(std::ptr::from_ref(self) as usize)
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

/// Descriptors a new table has room for (Linux's `NR_OPEN_DEFAULT`).
const TABLE_MIN: usize = 64;

/// The size Linux grows a descriptor table to so that it holds `fd`
/// (`alloc_fdtable`): whole KiB of pointers, a power of two of them. The
/// size is visible to applications: `select` ignores descriptors past it.
fn table_size(fd: usize) -> usize {
    if fd < TABLE_MIN {
        return TABLE_MIN;
    }
    let per_kib = 1024 / 8;
    ((fd / per_kib + 1).next_power_of_two() * per_kib).min(NR_OPEN)
}

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
            s.resize(table_size(i), None);
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
            s.resize(table_size(i), None);
        }
        Ok(s[i].replace(FdEntry { file, cloexec }))
    }

    /// Removes `fd`.
    pub fn remove(&self, fd: i32) -> Result<FdEntry, Errno> {
        let i = usize::try_from(fd).map_err(|_| Errno::EBADF)?;
        self.lock().get_mut(i).and_then(Option::take).ok_or(Errno::EBADF)
    }

    /// `close_range(first, last)`: closes (or with `cloexec`, marks) every
    /// open descriptor in the range.
    pub fn close_range(&self, first: u32, last: u32, cloexec: bool) -> Vec<FdEntry> {
        let mut s = self.lock();
        let lo = usize::try_from(first).unwrap_or(usize::MAX);
        let hi = usize::try_from(last).unwrap_or(usize::MAX).min(s.len().saturating_sub(1));
        let mut closed = Vec::new();
        if lo >= s.len() {
            return closed;
        }
        for slot in &mut s[lo..=hi] {
            if cloexec {
                if let Some(e) = slot {
                    e.cloexec = true;
                }
            } else if let Some(e) = slot.take() {
                closed.push(e);
            }
        }
        closed
    }

    /// `fork`: a copy of the table (the same open file descriptions),
    /// sized as Linux's `dup_fd` sizes it: to cover the highest open
    /// descriptor, not the parent's high-water mark.
    pub fn fork(&self) -> FdTable {
        let s = self.lock();
        let used = s.iter().rposition(Option::is_some).map_or(0, |last| (last + 1).next_multiple_of(64));
        let mut copy: Vec<_> = s[..used.min(s.len())].to_vec();
        copy.resize(table_size(used.saturating_sub(1)), None);
        FdTable { slots: Mutex::new(copy) }
    }

    /// How many descriptors the table has room for now (`max_fds`).
    pub fn max_fds(&self) -> usize {
        self.lock().len().max(TABLE_MIN)
    }

    /// `execve`: closes every close-on-exec descriptor; returns them.
    pub fn close_on_exec(&self) -> Vec<FdEntry> {
        let mut s = self.lock();
        s.iter_mut().filter(|e| e.as_ref().is_some_and(|e| e.cloexec)).filter_map(Option::take).collect()
    }

    /// The open descriptors and their files, in order.
    pub fn list(&self) -> Vec<(i32, Arc<File>)> {
        self.lock()
            .iter()
            .enumerate()
            .filter_map(|(i, e)| Some((i32::try_from(i).ok()?, e.as_ref()?.file.clone())))
            .collect()
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
        assert_eq!(t.close_range(2, u32::MAX, true).len(), 0);
        assert!(t.entry(7).unwrap().cloexec);
        assert_eq!(t.close_range(1, 5, false).len(), 3);
        assert_eq!(t.close_range(100, 200, false).len(), 0);
        assert!(t.get(0).is_ok() && t.get(7).is_ok() && t.get(5).is_err());
    }

    #[test]
    fn table_grows_and_forks_as_linux_sizes_it() {
        assert_eq!((table_size(0), table_size(63), table_size(64), table_size(127)), (64, 64, 128, 128));
        assert_eq!(
            (table_size(128), table_size(255), table_size(256), table_size(900)),
            (256, 256, 512, 1024)
        );
        assert_eq!(table_size(NR_OPEN + 5), NR_OPEN);
        let t = FdTable::default();
        let f = File::new(Box::new(Null), O_RDWR);
        assert_eq!(t.max_fds(), 64);
        t.install_at(300, f.clone(), false, 1024).unwrap();
        assert_eq!(t.max_fds(), 512);
        t.install(f, false, 0, 1024).unwrap();
        t.remove(300).unwrap();
        assert_eq!(t.max_fds(), 512, "a table never shrinks");
        assert_eq!(t.fork().max_fds(), 64, "a forked table covers what is open");
    }
}
