//! The stubs' descriptor tables.
//!
//! A stub process never shares the sentry's descriptor table (the gofer
//! connection, the control socket, donated host files, stdio…): the master
//! stub is forked with a copy of it, and its `init` keeps only two
//! descriptors before it runs anything else:
//!
//! - [`SOCK_FD`]: the receiving end of the platform's *file channel*, a
//!   `SOCK_SEQPACKET` pair whose other end only the sentry holds;
//! - [`BATCH_FD`]: the batch file, which each new stub process maps its
//!   batch and result pages from.
//!
//! Every stub process is a fork of the master and starts with the same two.
//! A file the sentry maps into a stub (the memory file, a donated host
//! file) is sent over the channel and received by the stub with an
//! injected `recvmsg`, then kept in the stub's table (see [`Table`]) so
//! that later mappings of it cost nothing more. Transfers are serialised
//! platform-wide (all stubs read one channel), and each received
//! descriptor's number is checked with `kcmp` against the sentry's own: the
//! application can rewrite the result page the stub received into, but
//! cannot make the sentry map a file under another file's number.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};
use std::sync::Mutex;

use super::{check_result, result_addr, PtraceAddressSpace};
use crate::sys::{self, FileKey};
use crate::{Error, FileRange, Result};

/// The stub's end of the file channel.
pub(crate) const SOCK_FD: i32 = 0;
/// The batch file in the stub.
pub(crate) const BATCH_FD: i32 = 1;
/// The lowest number a received file gets.
pub(crate) const FIRST_FILE_FD: i32 = 2;
/// Files one stub process keeps at most; past this, its table is emptied
/// (mappings keep their files alive without a descriptor).
const MAX_FILES: usize = 128;
/// The only `recvmsg` flags the stub uses (its filter checks them).
const RECV_FLAGS: u64 = crate::seccomp::RECV_FLAGS as u64;

/// The file channel.
#[derive(Debug)]
pub(crate) struct Channel {
    /// The sentry's end.
    tx: OwnedFd,
    /// The stubs' end, inherited by the master; kept to drain what a stub
    /// failed to take.
    rx: OwnedFd,
    /// Held for one transfer (send and receive).
    lock: Mutex<()>,
}

impl Channel {
    /// A new channel. Both descriptors are numbered 3 or more, so that the
    /// master's `init` can move its end to 0 without overwriting the batch
    /// file.
    pub fn new() -> Result<Channel> {
        let mut fds = [0i32; 2];
        // SAFETY: socketpair writes two descriptors into `fds`.
        let r = unsafe {
            libc::socketpair(libc::AF_UNIX, libc::SOCK_SEQPACKET | libc::SOCK_CLOEXEC, 0, fds.as_mut_ptr())
        };
        if r != 0 {
            return Err(Error::os("socketpair for the stubs' files"));
        }
        // SAFETY: the kernel just made both descriptors; nothing else owns
        // them.
        let (tx, rx) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
        Ok(Channel { tx: above_stdio(tx)?, rx: above_stdio(rx)?, lock: Mutex::new(()) })
    }

    /// The descriptor the master stub keeps as [`SOCK_FD`].
    pub fn stub_end(&self) -> i32 {
        self.rx.as_raw_fd()
    }
}

/// `fd`, renumbered to 3 or more if it is below.
pub(crate) fn above_stdio(fd: OwnedFd) -> Result<OwnedFd> {
    if fd.as_raw_fd() > 2 {
        return Ok(fd);
    }
    // SAFETY: plain-value call on a descriptor we own.
    let n = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_DUPFD_CLOEXEC, 3) };
    if n < 0 {
        return Err(Error::os("renumber descriptor"));
    }
    // SAFETY: the kernel just made `n`; nothing else owns it.
    Ok(unsafe { OwnedFd::from_raw_fd(n) })
}

/// The files a stub process holds, by what they are (not by the sentry's
/// descriptor numbers, which are reused).
#[derive(Debug, Default)]
pub(crate) struct Table {
    files: Vec<(FileKey, i32)>,
}

impl Table {
    /// How many files the stub holds (for tests).
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.files.len()
    }
}

// Result-page layout of a transfer (in words): the `msghdr` at 0, its
// `iovec` at 8, the byte received at 12, the control buffer at 16.
const IOV: u64 = 8;
const DATA: u64 = 12;
const CONTROL: u64 = 16;
const CONTROL_LEN: u64 = 24; // CMSG_SPACE(sizeof(int))

impl PtraceAddressSpace {
    /// Empties the stub's descriptor table if `n` more files might not fit.
    pub(super) fn make_room(&self, table: &mut Table, n: usize) -> Result<()> {
        if table.files.len() + n <= MAX_FILES {
            return Ok(());
        }
        self.close_files(table)
    }

    fn close_files(&self, table: &mut Table) -> Result<()> {
        table.files.clear();
        let first = u64::try_from(FIRST_FILE_FD).unwrap_or(2);
        let r = self.inject(libc::SYS_close_range, [first, u64::from(u32::MAX), 0, 0, 0, 0])?;
        check_result("close_range in stub", r)
    }

    /// The stub's descriptor number for `file`, sending it there first if
    /// the stub does not hold it yet.
    pub(super) fn stub_fd(&self, table: &mut Table, file: FileRange<'_>) -> Result<i32> {
        let key = sys::file_key(file.fd)?;
        if let Some(&(_, fd)) = table.files.iter().find(|(k, _)| *k == key) {
            return Ok(fd);
        }
        if table.files.len() >= MAX_FILES {
            return Err(Error::Internal("stub descriptor table full".into()));
        }
        match self.transfer(file) {
            Ok(fd) => {
                table.files.push((key, fd));
                Ok(fd)
            }
            Err(e) => {
                // The stub may hold the file under a number nobody knows:
                // start its table afresh rather than let such files pile up.
                let _ = self.close_files(table);
                Err(e)
            }
        }
    }

    fn transfer(&self, file: FileRange<'_>) -> Result<i32> {
        let p = &self.inner;
        let channel = &p.shared.files;
        let _one_transfer = channel.lock.lock().unwrap_or_else(|e| e.into_inner());
        let _result_page = p.batch_lock.lock().unwrap_or_else(|e| e.into_inner());
        let base = result_addr(p.shared.region);
        let w = |i: u64| base + 8 * i;
        let msghdr = [0, 0, w(IOV), 1, w(CONTROL), CONTROL_LEN, 0, 0];
        p.shared.batch.write_result(p.batch_slot, 0, &msghdr);
        p.shared.batch.write_result(p.batch_slot, 8, &[w(DATA), 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        sys::send_fd(channel.tx.as_fd(), file.fd)?;
        let sock = u64::try_from(SOCK_FD).unwrap_or(0);
        let r = self.inject(libc::SYS_recvmsg, [sock, base, RECV_FLAGS, 0, 0, 0]);
        if !matches!(r, Ok(1)) {
            // Not taken: no other stub may receive it instead.
            sys::drain_fds(channel.rx.as_fd());
            return Err(match r {
                Ok(r) if r < 0 => Error::errno("recvmsg in stub", i32::try_from(-r).unwrap_or(0)),
                Ok(r) => Error::Internal(format!("recvmsg in stub returned {r}")),
                Err(e) => e,
            });
        }
        // The descriptor's number, from memory the application can write:
        // only the kernel's comparison makes it trusted.
        let word = p.shared.batch.result_word(p.batch_slot, usize::try_from(CONTROL + 2).unwrap_or(0));
        let candidate = i32::try_from(word & 0xffff_ffff).ok().filter(|&fd| fd >= FIRST_FILE_FD);
        if let Some(fd) = candidate {
            if sys::same_file(sys::getpid(), file.fd.as_raw_fd(), p.pid, fd)? {
                return Ok(fd);
            }
        }
        Err(Error::Internal("file sent to the stub not found under the number it reported".into()))
    }
}
