//! File descriptor system calls: read, write and friends, descriptor
//! table operations, `fstat`, `ioctl`.

use rvisor_syscalls::abi::Iovec;
use rvisor_syscalls::consts::ioctl as ioc;
use rvisor_syscalls::Errno;

use super::{Addr, Fd, SysResult};
use crate::kernel::thread_group::RLIM_INFINITY;
use crate::kernel::Task;
use crate::vfs::dir::dirent_size;
use crate::vfs::file::{O_APPEND, O_NONBLOCK};
use crate::vfs::lock::{self, Flavor, Lock, LockKind, LockOwner};
use std::sync::Arc;

/// `MAX_RW_COUNT`: Linux never transfers more in one call.
const MAX_RW_COUNT: u64 = 0x7fff_f000;
/// Largest buffer the sentry stages per host transfer.
const CHUNK: usize = 1 << 20;
/// `UIO_MAXIOV`.
const UIO_MAXIOV: i32 = 1024;
/// End of user space as Linux's `access_ok` sees it (`TASK_SIZE_MAX`).
const USER_TOP: u64 = 0x7fff_ffff_f000;

/// Installs a new file at the lowest free descriptor (`RLIMIT_NOFILE`
/// applies): what every call making an anonymous file returns.
pub(super) fn install_new(
    t: &Task,
    f: std::sync::Arc<crate::vfs::File>,
    cloexec: bool,
) -> Result<i32, Errno> {
    t.fds.install(f, cloexec, 0, nofile_limit(t))
}

pub(super) fn nofile_limit(t: &Task) -> usize {
    let l = t.tg().rlimit(7).cur;
    if l == RLIM_INFINITY {
        crate::vfs::NR_OPEN
    } else {
        usize::try_from(l).unwrap_or(crate::vfs::NR_OPEN)
    }
}

fn count(c: u64) -> usize {
    usize::try_from(c.min(MAX_RW_COUNT)).unwrap_or(CHUNK)
}

fn do_read(t: &mut Task, fd: Fd, buf: Addr, len: u64, off: Option<u64>) -> SysResult {
    let file = t.fds.get(fd.0)?;
    // Regular files: straight into the task's memory, the whole count.
    let all = count(len);
    if file.path().is_some_and(|p| p.attr().is_ok_and(|a| a.is_dir())) {
        return Err(Errno::EISDIR);
    }
    t.mm.check_writable(buf, all.min(CHUNK))?;
    if let Some(r) = file.read_into(t, buf, all, off) {
        return Ok(r? as u64);
    }
    let n = all.min(CHUNK);
    // Nothing is consumed from the file if the buffer cannot take it.
    t.mm.check_writable(buf, n)?;
    let mut b = vec![0u8; n];
    let got = file.read(t, &mut b, off)?;
    t.mm.copy_out(buf, &b[..got])?;
    Ok(got as u64)
}

fn do_write(t: &mut Task, fd: Fd, buf: Addr, len: u64, off: Option<u64>) -> SysResult {
    let file = t.fds.get(fd.0)?;
    let total = count(len);
    let mut done = 0usize;
    while done < total {
        let n = (total - done).min(CHUNK);
        let b = match t.mm.read_bytes(buf + done as u64, n) {
            Ok(b) => b,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        let pos = off.map(|o| o + done as u64);
        match file.write(t, &b, pos) {
            Ok(w) => {
                done += w;
                if w < n {
                    break;
                }
            }
            Err(e) if done == 0 => return Err(pipe_error(t, e)),
            Err(_) => break,
        }
    }
    Ok(done as u64)
}

/// A write to a broken pipe also raises `SIGPIPE`, as on Linux.
fn pipe_error(t: &mut Task, e: Errno) -> Errno {
    if e == Errno::EPIPE {
        t.signal_self(crate::kernel::signal::sig::SIGPIPE);
    }
    e
}

fn read_inner(t: &mut Task, fd: Fd, buf: Addr, len: u64) -> SysResult {
    do_read(t, fd, buf, len, None)
}

fn write_inner(t: &mut Task, fd: Fd, buf: Addr, len: u64) -> SysResult {
    do_write(t, fd, buf, len, None)
}

fn offset(off: i64) -> Result<Option<u64>, Errno> {
    u64::try_from(off).map(Some).map_err(|_| Errno::EINVAL)
}

fn pread64_inner(t: &mut Task, fd: Fd, buf: Addr, len: u64, off: i64) -> SysResult {
    do_read(t, fd, buf, len, offset(off)?)
}

fn pwrite64_inner(t: &mut Task, fd: Fd, buf: Addr, len: u64, off: i64) -> SysResult {
    do_write(t, fd, buf, len, offset(off)?)
}

fn read_iovecs(t: &Task, iov: Addr, cnt: i32) -> Result<Vec<Iovec>, Errno> {
    if !(0..=UIO_MAXIOV).contains(&cnt) {
        return Err(Errno::EINVAL);
    }
    let n = usize::try_from(cnt).map_err(|_| Errno::EINVAL)?;
    let raw = t.mm.read_bytes(iov, n * 16)?;
    let mut v = Vec::with_capacity(n);
    for c in raw.chunks_exact(16) {
        let base = u64::from_le_bytes(c[..8].try_into().map_err(|_| Errno::EFAULT)?);
        let len = u64::from_le_bytes(c[8..].try_into().map_err(|_| Errno::EFAULT)?);
        // Each length must be a valid ssize_t and each range inside user
        // space (Linux's access_ok); the total is clipped to MAX_RW_COUNT
        // by the callers, as Linux does.
        if i64::try_from(len).is_err() {
            return Err(Errno::EINVAL);
        }
        if len > 0 && base.checked_add(len).is_none_or(|e| e > USER_TOP) {
            return Err(Errno::EFAULT);
        }
        v.push(Iovec { base, len });
    }
    Ok(v)
}

fn writev_inner(t: &mut Task, fd: Fd, iov: Addr, cnt: i32) -> SysResult {
    let file = t.fds.get(fd.0)?;
    let vecs = read_iovecs(t, iov, cnt)?;
    let mut budget = MAX_RW_COUNT;
    // Gather into one buffer per chunk, so a short vector list is one host
    // write (as atomic for pipes as Linux's).
    let mut staged: Vec<u8> = Vec::new();
    let mut done = 0u64;
    let flush = |t: &mut Task, staged: &mut Vec<u8>, done: &mut u64| -> Result<bool, Errno> {
        if staged.is_empty() {
            return Ok(true);
        }
        let r = file.write(t, staged, None);
        let full = match r {
            Ok(w) => {
                *done += w as u64;
                w == staged.len()
            }
            Err(e) if *done == 0 => return Err(pipe_error(t, e)),
            Err(_) => false,
        };
        staged.clear();
        Ok(full)
    };
    for v in vecs {
        let mut len = v.len.min(budget);
        budget -= len;
        let mut at = v.base;
        while len > 0 {
            let room = (CHUNK - staged.len()) as u64;
            let n = len.min(room);
            let b = match t.mm.read_bytes(at, usize::try_from(n).unwrap_or(0)) {
                Ok(b) => b,
                Err(e) if done == 0 && staged.is_empty() => return Err(e),
                Err(_) => {
                    flush(t, &mut staged, &mut done)?;
                    return Ok(done);
                }
            };
            staged.extend_from_slice(&b);
            at += n;
            len -= n;
            if staged.len() == CHUNK && !flush(t, &mut staged, &mut done)? {
                return Ok(done);
            }
        }
    }
    flush(t, &mut staged, &mut done)?;
    Ok(done)
}

fn readv_inner(t: &mut Task, fd: Fd, iov: Addr, cnt: i32) -> SysResult {
    let file = t.fds.get(fd.0)?;
    let vecs = read_iovecs(t, iov, cnt)?;
    let total: u64 = vecs.iter().fold(0u64, |a, v| a.saturating_add(v.len)).min(MAX_RW_COUNT);
    // Nothing is consumed from the file if the first buffer cannot take it.
    if let Some(v) = vecs.iter().find(|v| v.len > 0) {
        t.mm.check_writable(v.base, 1)?;
    }
    let mut b = vec![0u8; usize::try_from(total).unwrap_or(CHUNK).min(CHUNK)];
    let got = file.read(t, &mut b, None)?;
    let mut pos = 0usize;
    for v in vecs {
        if pos >= got {
            break;
        }
        let n = (got - pos).min(usize::try_from(v.len).unwrap_or(usize::MAX));
        if let Err(e) = t.mm.copy_out(v.base, &b[pos..pos + n]) {
            return if pos == 0 { Err(e) } else { Ok(pos as u64) };
        }
        pos += n;
    }
    Ok(got as u64)
}

pub fn close(t: &mut Task, fd: Fd) -> SysResult {
    let e = t.fds.remove(fd.0)?;
    closed(t, [e]);
    Ok(0)
}

/// After descriptors were closed (by `close`, `dup2` over them,
/// `close_range`): a process's record locks on a file go with any of its
/// descriptors for it.
pub fn closed(t: &Task, entries: impl IntoIterator<Item = crate::vfs::FdEntry>) {
    for e in entries {
        if let Some(a) = e.file.path().and_then(|p| p.attr().ok()) {
            lock::release(LockOwner::Process(t.tgid()), Some((a.dev, a.ino)));
        }
    }
}

/// The file at `fd`, which must not be an `O_PATH` descriptor (`EBADF`,
/// as Linux's `fdget` for calls that use the file itself).
pub fn io_file(t: &Task, fd: Fd) -> Result<Arc<crate::vfs::File>, Errno> {
    let f = t.fds.get(fd.0)?;
    if f.is_path_only() {
        return Err(Errno::EBADF);
    }
    Ok(f)
}

pub fn dup(t: &mut Task, fd: Fd) -> SysResult {
    let f = t.fds.get(fd.0)?;
    let lim = nofile_limit(t);
    Ok(t.fds.install(f, false, 0, lim)?.cast_unsigned().into())
}

fn dup_to(t: &Task, old: Fd, new: Fd, cloexec: bool) -> SysResult {
    let f = t.fds.get(old.0)?;
    if new.0 < 0 {
        return Err(Errno::EBADF);
    }
    let replaced = t.fds.install_at(new.0, f, cloexec, nofile_limit(t))?;
    closed(t, replaced);
    Ok(u64::from(new.0.cast_unsigned()))
}

pub fn dup2(t: &mut Task, old: Fd, new: Fd) -> SysResult {
    if old == new {
        t.fds.get(old.0)?;
        return Ok(u64::from(new.0.cast_unsigned()));
    }
    dup_to(t, old, new, false)
}

pub fn dup3(t: &mut Task, old: Fd, new: Fd, flags: i32) -> SysResult {
    const O_CLOEXEC: i32 = 0o2000000;
    if flags & !O_CLOEXEC != 0 || old == new {
        return Err(Errno::EINVAL);
    }
    dup_to(t, old, new, flags & O_CLOEXEC != 0)
}

pub fn fcntl(t: &mut Task, fd: Fd, cmd: i32, arg: u64) -> SysResult {
    const F_DUPFD: i32 = 0;
    const F_GETFD: i32 = 1;
    const F_SETFD: i32 = 2;
    const F_GETFL: i32 = 3;
    const F_SETFL: i32 = 4;
    const F_DUPFD_CLOEXEC: i32 = 1030;
    const F_GETLK: i32 = 5;
    const F_SETLK: i32 = 6;
    const F_SETLKW: i32 = 7;
    const F_OFD_GETLK: i32 = 36;
    const F_OFD_SETLK: i32 = 37;
    const F_OFD_SETLKW: i32 = 38;
    const F_SETPIPE_SZ: i32 = 1031;
    const F_GETPIPE_SZ: i32 = 1032;
    const F_ADD_SEALS: i32 = 1033;
    const F_GET_SEALS: i32 = 1034;
    let entry = t.fds.entry(fd.0)?;
    if entry.file.is_path_only() && !matches!(cmd, F_DUPFD | F_DUPFD_CLOEXEC | F_GETFD | F_SETFD | F_GETFL) {
        return Err(Errno::EBADF);
    }
    match cmd {
        F_DUPFD | F_DUPFD_CLOEXEC => {
            let min: i32 = super::FromArg::from_arg(arg);
            let min = usize::try_from(min).map_err(|_| Errno::EINVAL)?;
            let lim = nofile_limit(t);
            if min >= lim {
                return Err(Errno::EINVAL);
            }
            Ok(u64::from(t.fds.install(entry.file, cmd == F_DUPFD_CLOEXEC, min, lim)?.cast_unsigned()))
        }
        F_GETFD => Ok(u64::from(entry.cloexec)),
        F_SETFD => {
            t.fds.set_cloexec(fd.0, arg & 1 != 0)?;
            Ok(0)
        }
        F_GETFL => Ok(u64::from(entry.file.flags())),
        F_SETFL => {
            entry.file.set_status_flags(<u32 as super::FromArg>::from_arg(arg));
            Ok(0)
        }
        F_GETLK | F_SETLK | F_SETLKW => record_lock(t, &entry.file, cmd, arg, LockOwner::Process(t.tgid())),
        F_OFD_GETLK | F_OFD_SETLK | F_OFD_SETLKW => {
            let owner = entry.file.lock_owner();
            record_lock(t, &entry.file, cmd - 31, arg, owner)
        }
        F_ADD_SEALS => {
            let m = entry.file.ops().memfd().ok_or(Errno::EINVAL)?;
            m.add_seals(&entry.file, <u32 as super::FromArg>::from_arg(arg))?;
            Ok(0)
        }
        F_GET_SEALS => Ok(u64::from(entry.file.ops().memfd().ok_or(Errno::EINVAL)?.seals()?)),
        F_GETPIPE_SZ => Ok(entry.file.pipe().ok_or(Errno::EBADF)?.capacity() as u64),
        F_SETPIPE_SZ => {
            let pipe = entry.file.pipe().ok_or(Errno::EBADF)?;
            let privileged = t.tg().creds().capable(1 << 24);
            // The size is an unsigned int.
            let size = u64::from(<u32 as super::FromArg>::from_arg(arg));
            Ok(pipe.set_capacity(size, privileged)? as u64)
        }
        _ => Err(Errno::EINVAL),
    }
}

pub fn memfd_create(t: &mut Task, name: Addr, flags: u32) -> SysResult {
    use crate::fs::memfd::{flags::*, NAME_MAX};
    // Linux's order: the flags, then the name.
    if flags & MFD_HUGETLB == 0 && flags & !ALL != 0 || flags & MFD_EXEC != 0 && flags & MFD_NOEXEC_SEAL != 0
    {
        return Err(Errno::EINVAL);
    }
    if flags & MFD_HUGETLB != 0 {
        // The sandbox has no huge pages of its own to give.
        return Err(Errno::EINVAL);
    }
    let name = t.mm.read_cstring(name, NAME_MAX + 1).map_err(|e| match e {
        Errno::ENAMETOOLONG => Errno::EINVAL,
        e => e,
    })?;
    let f = crate::fs::memfd::new(t, &name, flags)?;
    Ok(u64::try_from(install_new(t, f, flags & MFD_CLOEXEC != 0)?).unwrap_or(0))
}

pub fn ioctl(t: &mut Task, fd: Fd, cmd: u32, arg: u64) -> SysResult {
    let file = t.fds.get(fd.0)?;
    match cmd {
        ioc::FIOCLEX | ioc::FIONCLEX => {
            t.fds.set_cloexec(fd.0, cmd == ioc::FIOCLEX)?;
            Ok(0)
        }
        ioc::FIONBIO => {
            let on: i32 = t.mm.read_obj(arg)?;
            let fl = file.flags();
            file.set_status_flags(if on != 0 { fl | O_NONBLOCK } else { fl & !O_NONBLOCK });
            Ok(0)
        }
        _ => file.ioctl(t, cmd, arg),
    }
}

pub fn fstat(t: &mut Task, fd: Fd, buf: Addr) -> SysResult {
    let st = t.fds.get(fd.0)?.stat()?;
    t.mm.write_obj(buf, &st)?;
    Ok(0)
}

pub fn lseek(t: &mut Task, fd: Fd, off: i64, whence: u32) -> SysResult {
    t.fds.get(fd.0)?.seek(off, whence)
}

// ---------------------------------------------------------------------------
// Directories.

fn getdents_common(t: &mut Task, fd: Fd, buf: Addr, count: u32, old: bool) -> SysResult {
    let f = t.fds.get(fd.0)?;
    let max = usize::try_from(count).unwrap_or(0).min(CHUNK);
    let entries = f.getdents(max)?;
    let mut out = Vec::with_capacity(max);
    for (e, next) in entries {
        let reclen = dirent_size(&e.name);
        let start = out.len();
        out.extend_from_slice(&e.ino.to_le_bytes());
        out.extend_from_slice(&next.to_le_bytes());
        out.extend_from_slice(&u16::try_from(reclen).unwrap_or(0).to_le_bytes());
        if !old {
            out.push(e.typ);
        }
        out.extend_from_slice(&e.name);
        out.push(0);
        out.resize(start + reclen, 0);
        if old {
            // linux_dirent keeps the type in the record's last byte.
            out[start + reclen - 1] = e.typ;
        }
    }
    t.mm.copy_out(buf, &out)?;
    Ok(out.len() as u64)
}

pub fn getdents64(t: &mut Task, fd: Fd, buf: Addr, count: u32) -> SysResult {
    getdents_common(t, fd, buf, count, false)
}

pub fn getdents(t: &mut Task, fd: Fd, buf: Addr, count: u32) -> SysResult {
    getdents_common(t, fd, buf, count, true)
}

// ---------------------------------------------------------------------------
// Vectored I/O at an offset.

/// `RWF_*` flags `preadv2`/`pwritev2` accept.
const RWF_KNOWN: i32 = 0x1f;

fn preadv_common(t: &mut Task, fd: Fd, iov: Addr, cnt: i32, off: i64, flags: i32) -> SysResult {
    if flags & !RWF_KNOWN != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let file = t.fds.get(fd.0)?;
    let vecs = read_iovecs(t, iov, cnt)?;
    let pos = if off == -1 { None } else { Some(u64::try_from(off).map_err(|_| Errno::EINVAL)?) };
    let total = vecs.iter().fold(0u64, |a, v| a.saturating_add(v.len)).min(MAX_RW_COUNT);
    let mut b = vec![0u8; usize::try_from(total).unwrap_or(CHUNK).min(CHUNK)];
    let got = file.read(t, &mut b, pos)?;
    let mut done = 0usize;
    for v in vecs {
        if done >= got {
            break;
        }
        let n = (got - done).min(usize::try_from(v.len).unwrap_or(usize::MAX));
        if let Err(e) = t.mm.copy_out(v.base, &b[done..done + n]) {
            return if done == 0 { Err(e) } else { Ok(done as u64) };
        }
        done += n;
    }
    Ok(got as u64)
}

/// `RWF_APPEND`: this write goes to the end of the file.
const RWF_APPEND: i32 = 0x10;

fn pwritev_common(t: &mut Task, fd: Fd, iov: Addr, cnt: i32, off: i64, flags: i32) -> SysResult {
    if flags & !RWF_KNOWN != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let file = t.fds.get(fd.0)?;
    let vecs = read_iovecs(t, iov, cnt)?;
    let mut pos = if off == -1 { None } else { Some(u64::try_from(off).map_err(|_| Errno::EINVAL)?) };
    // RWF_APPEND on a description without O_APPEND: at the current end;
    // the file position follows only when no offset was given.
    let mut move_pos = false;
    if flags & RWF_APPEND != 0 && file.flags() & O_APPEND == 0 {
        let size = u64::try_from(file_size(&file)?).map_err(|_| Errno::EOVERFLOW)?;
        move_pos = pos.is_none();
        pos = Some(size);
    }
    let mut data = Vec::new();
    for v in vecs {
        let room = CHUNK - data.len();
        let n = usize::try_from(v.len).unwrap_or(usize::MAX).min(room);
        match t.mm.read_bytes(v.base, n) {
            Ok(b) => data.extend_from_slice(&b),
            Err(e) if data.is_empty() => return Err(e),
            Err(_) => break,
        }
        if data.len() == CHUNK {
            break;
        }
    }
    let n = file.write(t, &data, pos)?;
    if move_pos {
        let end = pos.unwrap_or(0).saturating_add(n as u64);
        file.seek(i64::try_from(end).map_err(|_| Errno::EOVERFLOW)?, 0)?;
    }
    Ok(n as u64)
}

/// The size of an open file.
fn file_size(f: &crate::vfs::File) -> Result<i64, Errno> {
    match f.path() {
        Some(p) => Ok(i64::try_from(p.attr()?.size).map_err(|_| Errno::EOVERFLOW)?),
        None => Ok(f.stat()?.size),
    }
}

fn preadv_inner(t: &mut Task, fd: Fd, iov: Addr, cnt: i32, off: i64) -> SysResult {
    if off < 0 {
        return Err(Errno::EINVAL);
    }
    preadv_common(t, fd, iov, cnt, off, 0)
}

fn pwritev_inner(t: &mut Task, fd: Fd, iov: Addr, cnt: i32, off: i64) -> SysResult {
    if off < 0 {
        return Err(Errno::EINVAL);
    }
    pwritev_common(t, fd, iov, cnt, off, 0)
}

fn preadv2_inner(t: &mut Task, fd: Fd, iov: Addr, cnt: i32, off: i64, _hi: i64, flags: i32) -> SysResult {
    if off < -1 {
        return Err(Errno::EINVAL);
    }
    preadv_common(t, fd, iov, cnt, off, flags)
}

fn pwritev2_inner(t: &mut Task, fd: Fd, iov: Addr, cnt: i32, off: i64, _hi: i64, flags: i32) -> SysResult {
    if off < -1 {
        return Err(Errno::EINVAL);
    }
    pwritev_common(t, fd, iov, cnt, off, flags)
}

// ---------------------------------------------------------------------------
// Copies between files.

fn copy(
    t: &mut Task,
    from: &crate::vfs::File,
    mut in_off: Option<u64>,
    to: &crate::vfs::File,
    mut out_off: Option<u64>,
    len: u64,
) -> Result<(u64, Option<u64>, Option<u64>), Errno> {
    let mut done = 0u64;
    let len = len.min(MAX_RW_COUNT);
    while done < len {
        let n = usize::try_from((len - done).min(CHUNK as u64)).unwrap_or(CHUNK);
        let mut b = vec![0u8; n];
        let got = match from.read(t, &mut b, in_off) {
            Ok(0) => break,
            Ok(g) => g,
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        };
        let w = match to.write(t, &b[..got], out_off) {
            Ok(w) => w,
            Err(e) => {
                unread(from, in_off, got)?;
                if done == 0 {
                    return Err(e);
                }
                break;
            }
        };
        done += w as u64;
        in_off = in_off.map(|o| o + w as u64);
        out_off = out_off.map(|o| o + w as u64);
        if w < got {
            // What was read but not written goes back to the input.
            unread(from, in_off, got - w)?;
            break;
        }
        if got < n {
            // A short read: return what there is rather than wait for more.
            break;
        }
    }
    Ok((done, in_off, out_off))
}

/// Moves the input's file position back by `n` bytes read but not
/// written (when the copy uses the position, not an explicit offset).
fn unread(from: &crate::vfs::File, in_off: Option<u64>, n: usize) -> Result<(), Errno> {
    if in_off.is_none() && n > 0 {
        from.seek(-i64::try_from(n).map_err(|_| Errno::EOVERFLOW)?, 1)?;
    }
    Ok(())
}

pub fn sendfile(t: &mut Task, out_fd: Fd, in_fd: Fd, offset: Addr, count: u64) -> SysResult {
    let from = t.fds.get(in_fd.0)?;
    let to = t.fds.get(out_fd.0)?;
    if !from.readable() || !to.writable() {
        return Err(Errno::EBADF);
    }
    if to.flags() & O_APPEND != 0 {
        return Err(Errno::EINVAL);
    }
    let start = if offset != 0 {
        let o: i64 = t.mm.read_obj(offset)?;
        Some(u64::try_from(o).map_err(|_| Errno::EINVAL)?)
    } else {
        None
    };
    let (done, end, _) = copy(t, &from, start, &to, None, count)?;
    if let Some(e) = end {
        t.mm.write_obj(offset, &e.cast_signed())?;
    }
    Ok(done)
}

pub fn copy_file_range(
    t: &mut Task,
    fd_in: Fd,
    off_in: Addr,
    fd_out: Fd,
    off_out: Addr,
    len: u64,
    flags: u32,
) -> SysResult {
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let from = t.fds.get(fd_in.0)?;
    let to = t.fds.get(fd_out.0)?;
    // Linux's order: directories, other kinds, then the access modes.
    for f in [&from, &to] {
        let a = f.path().ok_or(Errno::EINVAL)?.attr()?;
        if a.is_dir() {
            return Err(Errno::EISDIR);
        }
        if !a.is_reg() {
            return Err(Errno::EINVAL);
        }
    }
    if !from.readable() || !to.writable() || to.flags() & O_APPEND != 0 {
        return Err(Errno::EBADF);
    }
    let read_off = |addr: Addr| -> Result<Option<u64>, Errno> {
        if addr == 0 {
            return Ok(None);
        }
        let o: i64 = t.mm.read_obj(addr)?;
        Ok(Some(u64::try_from(o).map_err(|_| Errno::EINVAL)?))
    };
    let (i, o) = (read_off(off_in)?, read_off(off_out)?);
    // No overlapping copy within one file (the length first shortened to
    // the end of the input, as Linux does).
    if file_key(&from)? == file_key(&to)? {
        let pin = match i {
            Some(v) => v,
            None => from.seek(0, 1)?,
        };
        let pout = match o {
            Some(v) => v,
            None => to.seek(0, 1)?,
        };
        let size = u64::try_from(file_size(&from)?).unwrap_or(0);
        let count = if pin >= size { 0 } else { len.min(size - pin) };
        if pout.saturating_add(count) > pin && pout < pin.saturating_add(count) {
            return Err(Errno::EINVAL);
        }
    }
    let (done, ie, oe) = copy(t, &from, i, &to, o, len)?;
    if let Some(e) = ie {
        t.mm.write_obj(off_in, &e.cast_signed())?;
    }
    if let Some(e) = oe {
        t.mm.write_obj(off_out, &e.cast_signed())?;
    }
    Ok(done)
}

// ---------------------------------------------------------------------------
// Locks.

fn file_key(f: &crate::vfs::File) -> Result<lock::FileKey, Errno> {
    let a = f.path().ok_or(Errno::EINVAL)?.attr()?;
    Ok((a.dev, a.ino))
}

/// Retries `attempt` every millisecond until it succeeds or the task must
/// stop.
fn wait_for_lock(t: &Task, mut attempt: impl FnMut() -> bool) -> Result<(), Errno> {
    while !attempt() {
        t.sleep_until(std::time::Instant::now() + std::time::Duration::from_millis(1))
            .map_err(|_| Errno::ERESTARTSYS)?;
    }
    Ok(())
}

/// The errno of a lock not taken: `busy` for a conflict, `ENOLCK` past
/// the table's bound.
fn lock_error(e: lock::SetError, busy: Errno) -> Errno {
    match e {
        lock::SetError::Conflict(_) => busy,
        lock::SetError::TooMany => Errno::ENOLCK,
    }
}

/// Retries a blocking lock; `ENOLCK` ends the wait.
fn set_lock_waiting(t: &Task, flavor: Flavor, key: lock::FileKey, want: Lock) -> Result<(), Errno> {
    let mut err = None;
    wait_for_lock(t, || match lock::set(flavor, key, want) {
        Ok(()) => true,
        Err(lock::SetError::TooMany) => {
            err = Some(Errno::ENOLCK);
            true
        }
        Err(lock::SetError::Conflict(_)) => false,
    })?;
    err.map_or(Ok(()), Err)
}

pub fn flock(t: &mut Task, fd: Fd, op: i32) -> SysResult {
    const LOCK_SH: i32 = 1;
    const LOCK_EX: i32 = 2;
    const LOCK_NB: i32 = 4;
    const LOCK_UN: i32 = 8;
    let f = io_file(t, fd)?;
    let key = file_key(&f)?;
    let owner = f.lock_owner();
    let kind = match op & !LOCK_NB {
        LOCK_SH => LockKind::Read,
        LOCK_EX => LockKind::Write,
        LOCK_UN => {
            lock::unlock(Flavor::Flock, key, owner, 0, u64::MAX);
            return Ok(0);
        }
        _ => return Err(Errno::EINVAL),
    };
    let want = Lock { owner, kind, start: 0, end: u64::MAX };
    if op & LOCK_NB != 0 {
        return lock::set(Flavor::Flock, key, want)
            .map(|()| 0)
            .map_err(|e| lock_error(e, Errno::EWOULDBLOCK));
    }
    set_lock_waiting(t, Flavor::Flock, key, want)?;
    Ok(0)
}

/// `F_GETLK`/`F_SETLK`/`F_SETLKW` (and the OFD forms, `cmd` mapped to
/// these) on a `struct flock` at `arg`.
fn record_lock(t: &mut Task, f: &crate::vfs::File, cmd: i32, arg: u64, owner: LockOwner) -> SysResult {
    const F_RDLCK: i16 = 0;
    const F_WRLCK: i16 = 1;
    const F_UNLCK: i16 = 2;
    let raw = t.mm.read_bytes(arg, 32)?;
    let l_type = i16::from_le_bytes([raw[0], raw[1]]);
    let whence = i16::from_le_bytes([raw[2], raw[3]]);
    let start = i64::from_le_bytes(raw[8..16].try_into().map_err(|_| Errno::EFAULT)?);
    let len = i64::from_le_bytes(raw[16..24].try_into().map_err(|_| Errno::EFAULT)?);
    if matches!(owner, LockOwner::File(_))
        && i32::from_le_bytes(raw[24..28].try_into().map_err(|_| Errno::EFAULT)?) != 0
    {
        return Err(Errno::EINVAL);
    }
    let base: i64 = match whence {
        0 => 0,
        1 => i64::try_from(f.seek(0, 1)?).map_err(|_| Errno::EOVERFLOW)?,
        2 => f.stat()?.size,
        _ => return Err(Errno::EINVAL),
    };
    let s = base.checked_add(start).ok_or(Errno::EOVERFLOW)?;
    // A negative length locks the bytes before start.
    let (s, e) = match len {
        0 => (s, i64::MAX),
        l if l > 0 => (s, s.checked_add(l).ok_or(Errno::EOVERFLOW)?),
        l => (s.checked_add(l).ok_or(Errno::EINVAL)?, s),
    };
    if s < 0 {
        return Err(Errno::EINVAL);
    }
    let (s, e) = (s.cast_unsigned(), if e == i64::MAX { u64::MAX } else { e.cast_unsigned() });
    let key = file_key(f)?;
    let kind = match l_type {
        F_RDLCK => LockKind::Read,
        F_WRLCK => LockKind::Write,
        F_UNLCK => {
            if cmd != 5 {
                lock::unlock(Flavor::Record, key, owner, s, e);
                return Ok(0);
            }
            LockKind::Read
        }
        _ => return Err(Errno::EINVAL),
    };
    if (cmd == 6 || cmd == 7)
        && (kind == LockKind::Read && !f.readable() || kind == LockKind::Write && !f.writable())
    {
        return Err(Errno::EBADF);
    }
    let want = Lock { owner, kind, start: s, end: e };
    match cmd {
        5 => {
            // F_GETLK: describe the first conflict, or set F_UNLCK.
            let mut out = raw.clone();
            match lock::test(Flavor::Record, key, &want) {
                None => out[0..2].copy_from_slice(&F_UNLCK.to_le_bytes()),
                Some(c) => {
                    let ty = if c.kind == LockKind::Write { F_WRLCK } else { F_RDLCK };
                    out[0..2].copy_from_slice(&ty.to_le_bytes());
                    out[2..4].copy_from_slice(&0i16.to_le_bytes());
                    out[8..16].copy_from_slice(&c.start.cast_signed().to_le_bytes());
                    let l = if c.end == u64::MAX { 0 } else { (c.end - c.start).cast_signed() };
                    out[16..24].copy_from_slice(&l.to_le_bytes());
                    let pid = match c.owner {
                        LockOwner::Process(p) => p,
                        LockOwner::File(_) => -1,
                    };
                    out[24..28].copy_from_slice(&pid.to_le_bytes());
                }
            }
            t.mm.copy_out(arg, &out)?;
            Ok(0)
        }
        6 => lock::set(Flavor::Record, key, want).map(|()| 0).map_err(|e| lock_error(e, Errno::EAGAIN)),
        _ => {
            set_lock_waiting(t, Flavor::Record, key, want)?;
            Ok(0)
        }
    }
}

// ---------------------------------------------------------------------------
// The read and write families, counted for `/proc/PID/io` (calls always,
// bytes when they moved).

pub fn read(t: &mut Task, fd: Fd, buf: Addr, len: u64) -> SysResult {
    let r = read_inner(t, fd, buf, len);
    t.tg().io.count_read(&r);
    r
}

pub fn pread64(t: &mut Task, fd: Fd, buf: Addr, len: u64, off: i64) -> SysResult {
    let r = pread64_inner(t, fd, buf, len, off);
    t.tg().io.count_read(&r);
    r
}

pub fn readv(t: &mut Task, fd: Fd, iov: Addr, cnt: i32) -> SysResult {
    let r = readv_inner(t, fd, iov, cnt);
    t.tg().io.count_read(&r);
    r
}

pub fn preadv(t: &mut Task, fd: Fd, iov: Addr, cnt: i32, off: i64) -> SysResult {
    let r = preadv_inner(t, fd, iov, cnt, off);
    t.tg().io.count_read(&r);
    r
}

pub fn preadv2(t: &mut Task, fd: Fd, iov: Addr, cnt: i32, off: i64, hi: i64, flags: i32) -> SysResult {
    let r = preadv2_inner(t, fd, iov, cnt, off, hi, flags);
    t.tg().io.count_read(&r);
    r
}

pub fn write(t: &mut Task, fd: Fd, buf: Addr, len: u64) -> SysResult {
    let r = write_inner(t, fd, buf, len);
    t.tg().io.count_write(&r);
    r
}

pub fn pwrite64(t: &mut Task, fd: Fd, buf: Addr, len: u64, off: i64) -> SysResult {
    let r = pwrite64_inner(t, fd, buf, len, off);
    t.tg().io.count_write(&r);
    r
}

pub fn writev(t: &mut Task, fd: Fd, iov: Addr, cnt: i32) -> SysResult {
    let r = writev_inner(t, fd, iov, cnt);
    t.tg().io.count_write(&r);
    r
}

pub fn pwritev(t: &mut Task, fd: Fd, iov: Addr, cnt: i32, off: i64) -> SysResult {
    let r = pwritev_inner(t, fd, iov, cnt, off);
    t.tg().io.count_write(&r);
    r
}

pub fn pwritev2(t: &mut Task, fd: Fd, iov: Addr, cnt: i32, off: i64, hi: i64, flags: i32) -> SysResult {
    let r = pwritev2_inner(t, fd, iov, cnt, off, hi, flags);
    t.tg().io.count_write(&r);
    r
}
