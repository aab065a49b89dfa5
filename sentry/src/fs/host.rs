//! Host files the sentry owns and serves to the application: the sandbox's
//! stdio. Reads and writes wait in `poll` with the task's wake-up eventfd,
//! so they are interruptible; the host descriptor's own flags are never
//! changed (it may be the user's terminal), and writes use `write`, not
//! `pwrite`, so appending redirections keep working.

use std::os::fd::OwnedFd;

use rustix::event::PollFlags;
use rvisor_syscalls::abi::{Stat, Termios, Winsize};
use rvisor_syscalls::consts::ioctl as nr;
use rvisor_syscalls::Errno;

use crate::kernel::Task;
use crate::vfs::{File, FileOps};

/// A host file descriptor donated to the sandbox.
#[derive(Debug)]
pub struct HostFile {
    fd: OwnedFd,
    tty: bool,
    /// A regular file or block device: `pread`/`pwrite`/`lseek` work and
    /// writes never wait for a reader.
    seekable: bool,
}

/// What one host write to a pipe, socket or terminal may carry: `POLLOUT`
/// promises room for `PIPE_BUF` bytes, so a write of at most that never
/// blocks the sentry thread (which must stay interruptible).
const PIPE_BUF: usize = 4096;

fn errno(e: rustix::io::Errno) -> Errno {
    Errno::new(e.raw_os_error()).unwrap_or(Errno::EIO)
}

impl HostFile {
    /// Wraps `fd`.
    pub fn new(fd: OwnedFd) -> HostFile {
        let tty = rustix::termios::isatty(&fd);
        let seekable = rustix::fs::fstat(&fd).is_ok_and(|s| {
            let kind = s.st_mode & 0o170000;
            kind == 0o100000 || kind == 0o060000
        });
        HostFile { fd, tty, seekable }
    }

    /// Waits until the host file is ready for `events`: without waiting
    /// for a non-blocking description (`EAGAIN` if not ready), otherwise
    /// interruptibly.
    fn ready(&self, t: &Task, file: &File, events: PollFlags) -> Result<(), Errno> {
        if !file.nonblocking() {
            return t.wait_host(&self.fd, events).map_err(|_| Errno::ERESTARTSYS);
        }
        let mut fds = [rustix::event::PollFd::new(&self.fd, events)];
        let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
        match rustix::event::poll(&mut fds, Some(&zero)) {
            Ok(n) if n > 0 => Ok(()),
            Ok(_) => Err(Errno::EAGAIN),
            Err(e) => Err(errno(e)),
        }
    }
}

impl FileOps for HostFile {
    fn read(&self, t: &Task, file: &File, buf: &mut [u8], off: Option<u64>) -> Result<usize, Errno> {
        if off.is_some() && !self.seekable {
            return Err(Errno::ESPIPE);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if !self.seekable {
                self.ready(t, file, PollFlags::IN)?;
            }
            let r = match off {
                Some(o) => rustix::io::pread(&self.fd, &mut *buf, o),
                None => rustix::io::read(&self.fd, &mut *buf),
            };
            match r {
                Ok(n) => return Ok(n),
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) if !file.nonblocking() => continue,
                Err(e) => return Err(errno(e)),
            }
        }
    }

    fn write(&self, t: &Task, file: &File, data: &[u8], off: Option<u64>) -> Result<usize, Errno> {
        if off.is_some() && !self.seekable {
            return Err(Errno::ESPIPE);
        }
        if data.is_empty() {
            return Ok(0);
        }
        if self.seekable {
            loop {
                let r = match off {
                    Some(o) => rustix::io::pwrite(&self.fd, data, o),
                    None => rustix::io::write(&self.fd, data),
                };
                match r {
                    Ok(n) => return Ok(n),
                    Err(rustix::io::Errno::INTR) => continue,
                    Err(e) => return Err(errno(e)),
                }
            }
        }
        // Pipes, sockets, terminals: PIPE_BUF at a time, waiting
        // interruptibly for room before each piece.
        let mut done = 0;
        while done < data.len() {
            match self.ready(t, file, PollFlags::OUT) {
                Ok(()) => {}
                Err(e) if done == 0 => return Err(e),
                Err(_) => break,
            }
            let n = (data.len() - done).min(PIPE_BUF);
            match rustix::io::write(&self.fd, &data[done..done + n]) {
                Ok(w) => done += w,
                Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => continue,
                Err(e) if done == 0 => return Err(errno(e)),
                Err(_) => break,
            }
        }
        Ok(done)
    }

    fn readiness(&self, _file: &File, mask: u32) -> u32 {
        use crate::kernel::waitq::events::{ERR, HUP, IN, OUT, RDNORM, WRNORM};
        if self.seekable {
            return mask & (IN | OUT | RDNORM | WRNORM);
        }
        let want = PollFlags::from_bits_truncate(u16::try_from(mask & 0xffff).unwrap_or(0));
        let mut fds = [rustix::event::PollFd::new(&self.fd, want)];
        let zero = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
        match rustix::event::poll(&mut fds, Some(&zero)) {
            Ok(n) if n > 0 => u32::from(fds[0].revents().bits()) & (mask | ERR | HUP),
            _ => 0,
        }
    }

    fn host_poll_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        use std::os::fd::AsFd;
        (!self.seekable).then(|| self.fd.as_fd())
    }

    fn seek(&self, off: i64, whence: u32) -> Result<u64, Errno> {
        use rustix::fs::SeekFrom;
        if !self.seekable {
            return Err(Errno::ESPIPE);
        }
        let pos = match whence {
            0 => SeekFrom::Start(u64::try_from(off).map_err(|_| Errno::EINVAL)?),
            1 => SeekFrom::Current(off),
            2 => SeekFrom::End(off),
            _ => return Err(Errno::EINVAL),
        };
        rustix::fs::seek(&self.fd, pos).map_err(errno)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        let s = rustix::fs::fstat(&self.fd).map_err(errno)?;
        Ok(Stat {
            dev: s.st_dev,
            ino: s.st_ino,
            nlink: s.st_nlink,
            mode: s.st_mode,
            uid: s.st_uid,
            gid: s.st_gid,
            pad0: 0,
            rdev: s.st_rdev,
            size: s.st_size,
            blksize: s.st_blksize,
            blocks: s.st_blocks,
            atime: s.st_atime,
            atime_nsec: i64::try_from(s.st_atime_nsec).unwrap_or(0),
            mtime: s.st_mtime,
            mtime_nsec: i64::try_from(s.st_mtime_nsec).unwrap_or(0),
            ctime: s.st_ctime,
            ctime_nsec: i64::try_from(s.st_ctime_nsec).unwrap_or(0),
            unused: [0; 3],
        })
    }

    fn reopen(&self) -> Option<Result<Box<dyn FileOps>, Errno>> {
        // The same host file (a pipe or terminal the sandbox was given).
        Some(
            rustix::io::fcntl_dupfd_cloexec(&self.fd, 3)
                .map(|fd| Box::new(HostFile::new(fd)) as Box<dyn FileOps>)
                .map_err(errno),
        )
    }

    fn ioctl(&self, t: &Task, cmd: u32, arg: u64) -> Result<u64, Errno> {
        if !self.tty {
            return Err(Errno::ENOTTY);
        }
        match cmd {
            nr::TCGETS => {
                let tio = crate::host::tcgets(&self.fd)?;
                t.mm.write_obj(arg, &tio)?;
                Ok(0)
            }
            nr::TCSETS | nr::TCSETSW | nr::TCSETSF => {
                let tio: Termios = t.mm.read_obj(arg)?;
                crate::host::tcsets(&self.fd, cmd, &tio)?;
                Ok(0)
            }
            nr::TIOCGWINSZ => {
                let w = crate::host::get_winsize(&self.fd)?;
                t.mm.write_obj(arg, &w)?;
                Ok(0)
            }
            nr::TIOCSWINSZ => {
                let w: Winsize = t.mm.read_obj(arg)?;
                crate::host::set_winsize(&self.fd, &w)?;
                Ok(0)
            }
            nr::TIOCGPGRP => {
                // The sandbox's own process group, not the host's.
                let pgid = t.tg().pgid.load(std::sync::atomic::Ordering::Relaxed);
                t.mm.write_obj(arg, &pgid)?;
                Ok(0)
            }
            _ => Err(Errno::ENOTTY),
        }
    }
}
