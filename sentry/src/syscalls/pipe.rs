//! `pipe`, `pipe2`, `splice`, `tee`.

use std::sync::Arc;

use rvisor_syscalls::Errno;

use super::{Addr, Fd, SysResult};
use crate::fs::pipe::Pipe;
use crate::kernel::Task;
use crate::vfs::file::oflags::{O_CLOEXEC, O_DIRECT, O_NONBLOCK};
use crate::vfs::File;

fn nofile(t: &Task) -> usize {
    usize::try_from(t.tg().rlimit(7).cur).unwrap_or(usize::MAX)
}

pub fn pipe(t: &mut Task, fds: Addr) -> SysResult {
    pipe2(t, fds, 0)
}

pub fn pipe2(t: &mut Task, fds: Addr, flags: u32) -> SysResult {
    if flags & !(O_CLOEXEC | O_NONBLOCK | O_DIRECT) != 0 {
        return Err(Errno::EINVAL);
    }
    t.mm.check_writable(fds, 8)?;
    let (r, w) = crate::fs::pipe::pipe(flags);
    let cloexec = flags & O_CLOEXEC != 0;
    let limit = nofile(t);
    let rfd = t.fds.install(r, cloexec, 0, limit)?;
    let wfd = match t.fds.install(w, cloexec, 0, limit) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = t.fds.remove(rfd);
            return Err(e);
        }
    };
    if let Err(e) = t.mm.write_obj(fds, &[rfd, wfd]) {
        let _ = t.fds.remove(rfd);
        let _ = t.fds.remove(wfd);
        return Err(e);
    }
    Ok(0)
}

const SPLICE_F_NONBLOCK: u32 = 2;
const SPLICE_F_ALL: u32 = 0xf;
/// Most bytes one `splice` stages when a side is not a pipe.
const SPLICE_CHUNK: usize = 1 << 20;

/// The offset a `splice` side uses: `None` for its file position.
fn side_offset(t: &Task, f: &File, off: Addr) -> Result<Option<u64>, Errno> {
    if off == 0 {
        return Ok(None);
    }
    if f.pipe().is_some() {
        return Err(Errno::ESPIPE);
    }
    let v: i64 = t.mm.read_obj(off)?;
    u64::try_from(v).map(Some).map_err(|_| Errno::EINVAL)
}

pub fn splice(
    t: &mut Task,
    fd_in: Fd,
    off_in: Addr,
    fd_out: Fd,
    off_out: Addr,
    len: u64,
    flags: u32,
) -> SysResult {
    if flags & !SPLICE_F_ALL != 0 {
        return Err(Errno::EINVAL);
    }
    let fin = super::fs::io_file(t, fd_in)?;
    let fout = super::fs::io_file(t, fd_out)?;
    if !fin.readable() || !fout.writable() {
        return Err(Errno::EBADF);
    }
    if fout.flags() & crate::vfs::file::O_APPEND != 0 {
        return Err(Errno::EINVAL);
    }
    let oin = side_offset(t, &fin, off_in)?;
    let oout = side_offset(t, &fout, off_out)?;
    let max = usize::try_from(len.min(0x7fff_f000)).unwrap_or(SPLICE_CHUNK);
    if max == 0 {
        return Ok(0);
    }
    let nb = |f: &File| flags & SPLICE_F_NONBLOCK != 0 || f.nonblocking();
    match (fin.pipe().cloned(), fout.pipe().cloned()) {
        (Some(pi), Some(po)) => {
            if Arc::ptr_eq(&pi, &po) {
                return Err(Errno::EINVAL);
            }
            loop {
                if !pi.wait_data(t, flags & SPLICE_F_NONBLOCK != 0)? {
                    return Ok(0);
                }
                po.wait_room(t, flags & SPLICE_F_NONBLOCK != 0).map_err(|e| epipe(t, e))?;
                let n = Pipe::transfer(&pi, &po, max, true)?;
                if n > 0 {
                    return Ok(n as u64);
                }
            }
        }
        (None, Some(po)) => {
            // File to pipe: read only what surely fits.
            let room = po.wait_room(t, nb(&fout)).map_err(|e| epipe(t, e))?;
            let mut buf = vec![0u8; max.min(room).min(SPLICE_CHUNK)];
            let got = fin.read(t, &mut buf, oin)?;
            let put = po.put_bytes(&buf[..got]);
            if let Some(o) = oin {
                t.mm.write_obj(off_in, &(o + put as u64).cast_signed())?;
            }
            Ok(put as u64)
        }
        (Some(pi), None) => {
            if !pi.wait_data(t, nb(&fin))? {
                return Ok(0);
            }
            let data = pi.take_bytes(max.min(SPLICE_CHUNK));
            let n = fout.write(t, &data, oout).map_err(|e| epipe(t, e))?;
            if let Some(o) = oout {
                t.mm.write_obj(off_out, &(o + n as u64).cast_signed())?;
            }
            Ok(n as u64)
        }
        (None, None) => Err(Errno::EINVAL),
    }
}

fn epipe(t: &mut Task, e: Errno) -> Errno {
    if e == Errno::EPIPE {
        t.signal_self(crate::kernel::signal::sig::SIGPIPE);
    }
    e
}

pub fn tee(t: &mut Task, fd_in: Fd, fd_out: Fd, len: u64, flags: u32) -> SysResult {
    if flags & !SPLICE_F_ALL != 0 {
        return Err(Errno::EINVAL);
    }
    let fin = super::fs::io_file(t, fd_in)?;
    let fout = super::fs::io_file(t, fd_out)?;
    let (Some(pi), Some(po)) = (fin.pipe().cloned(), fout.pipe().cloned()) else { return Err(Errno::EINVAL) };
    if !fin.readable() || !fout.writable() {
        return Err(Errno::EBADF);
    }
    if Arc::ptr_eq(&pi, &po) {
        return Err(Errno::EINVAL);
    }
    let max = usize::try_from(len.min(0x7fff_f000)).unwrap_or(SPLICE_CHUNK);
    if max == 0 {
        return Ok(0);
    }
    let nonblock = flags & SPLICE_F_NONBLOCK != 0;
    loop {
        if !pi.wait_data(t, nonblock)? {
            return Ok(0);
        }
        po.wait_room(t, nonblock).map_err(|e| epipe(t, e))?;
        let n = Pipe::transfer(&pi, &po, max, false)?;
        if n > 0 {
            return Ok(n as u64);
        }
    }
}
