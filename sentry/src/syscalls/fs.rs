//! File descriptor system calls: read, write and friends, descriptor
//! table operations, `fstat`, `ioctl`.

use rvisor_syscalls::abi::Iovec;
use rvisor_syscalls::consts::ioctl as ioc;
use rvisor_syscalls::Errno;

use super::{Addr, Fd, SysResult};
use crate::fs::{FdTable, O_NONBLOCK};
use crate::kernel::thread_group::RLIM_INFINITY;
use crate::kernel::Task;

/// `MAX_RW_COUNT`: Linux never transfers more in one call.
const MAX_RW_COUNT: u64 = 0x7fff_f000;
/// Largest buffer the sentry stages per host transfer.
const CHUNK: usize = 1 << 20;
/// `UIO_MAXIOV`.
const UIO_MAXIOV: i32 = 1024;
/// End of user space as Linux's `access_ok` sees it (`TASK_SIZE_MAX`).
const USER_TOP: u64 = 0x7fff_ffff_f000;

fn nofile_limit(t: &Task) -> usize {
    let l = t.tg().rlimit(7).cur;
    if l == RLIM_INFINITY {
        crate::fs::NR_OPEN
    } else {
        usize::try_from(l).unwrap_or(crate::fs::NR_OPEN)
    }
}

fn count(c: u64) -> usize {
    usize::try_from(c.min(MAX_RW_COUNT)).unwrap_or(CHUNK)
}

fn do_read(t: &mut Task, fd: Fd, buf: Addr, len: u64, off: Option<u64>) -> SysResult {
    let file = t.fds.get(fd.0)?;
    let n = count(len).min(CHUNK);
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

pub fn read(t: &mut Task, fd: Fd, buf: Addr, len: u64) -> SysResult {
    do_read(t, fd, buf, len, None)
}

pub fn write(t: &mut Task, fd: Fd, buf: Addr, len: u64) -> SysResult {
    do_write(t, fd, buf, len, None)
}

fn offset(off: i64) -> Result<Option<u64>, Errno> {
    u64::try_from(off).map(Some).map_err(|_| Errno::EINVAL)
}

pub fn pread64(t: &mut Task, fd: Fd, buf: Addr, len: u64, off: i64) -> SysResult {
    do_read(t, fd, buf, len, offset(off)?)
}

pub fn pwrite64(t: &mut Task, fd: Fd, buf: Addr, len: u64, off: i64) -> SysResult {
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

pub fn writev(t: &mut Task, fd: Fd, iov: Addr, cnt: i32) -> SysResult {
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

pub fn readv(t: &mut Task, fd: Fd, iov: Addr, cnt: i32) -> SysResult {
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
    t.fds.remove(fd.0)?;
    Ok(0)
}

pub fn dup(t: &mut Task, fd: Fd) -> SysResult {
    let f = t.fds.get(fd.0)?;
    let lim = nofile_limit(t);
    Ok(t.fds.install(f, false, 0, lim)?.cast_unsigned().into())
}

fn dup_to(fds: &FdTable, old: Fd, new: Fd, cloexec: bool, limit: usize) -> SysResult {
    let f = fds.get(old.0)?;
    if new.0 < 0 {
        return Err(Errno::EBADF);
    }
    fds.install_at(new.0, f, cloexec, limit)?;
    Ok(u64::from(new.0.cast_unsigned()))
}

pub fn dup2(t: &mut Task, old: Fd, new: Fd) -> SysResult {
    if old == new {
        t.fds.get(old.0)?;
        return Ok(u64::from(new.0.cast_unsigned()));
    }
    dup_to(&t.fds, old, new, false, nofile_limit(t))
}

pub fn dup3(t: &mut Task, old: Fd, new: Fd, flags: i32) -> SysResult {
    const O_CLOEXEC: i32 = 0o2000000;
    if flags & !O_CLOEXEC != 0 || old == new {
        return Err(Errno::EINVAL);
    }
    dup_to(&t.fds, old, new, flags & O_CLOEXEC != 0, nofile_limit(t))
}

pub fn fcntl(t: &mut Task, fd: Fd, cmd: i32, arg: u64) -> SysResult {
    const F_DUPFD: i32 = 0;
    const F_GETFD: i32 = 1;
    const F_SETFD: i32 = 2;
    const F_GETFL: i32 = 3;
    const F_SETFL: i32 = 4;
    const F_DUPFD_CLOEXEC: i32 = 1030;
    let entry = t.fds.entry(fd.0)?;
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
        _ => Err(Errno::EINVAL),
    }
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

pub fn newfstatat(t: &mut Task, dirfd: Fd, path: Addr, buf: Addr, flags: i32) -> SysResult {
    const AT_EMPTY_PATH: i32 = 0x1000;
    const AT_SYMLINK_NOFOLLOW: i32 = 0x100;
    const AT_NO_AUTOMOUNT: i32 = 0x800;
    if flags & !(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW | AT_NO_AUTOMOUNT) != 0 {
        return Err(Errno::EINVAL);
    }
    let p = t.mm.read_cstring(path, 4096)?;
    if p.is_empty() && flags & AT_EMPTY_PATH != 0 {
        return fstat(t, dirfd, buf);
    }
    if p.is_empty() {
        return Err(Errno::ENOENT);
    }
    // Path lookup needs the VFS (files issue).
    t.kernel.report_unsupported(262);
    Err(Errno::ENOSYS)
}

pub fn lseek(t: &mut Task, fd: Fd, off: i64, whence: u32) -> SysResult {
    t.fds.get(fd.0)?.seek(off, whence)
}
