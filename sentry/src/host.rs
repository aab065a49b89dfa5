//! Terminal ioctls on host descriptors the sentry owns (the sandbox's
//! stdio when it is a host terminal). Each call passes a kernel-layout
//! structure from `rvisor_syscalls::abi` to the host.
#![allow(unsafe_code)]

use std::os::fd::{AsFd, AsRawFd};

use rvisor_syscalls::abi::{Termios, Winsize};
use rvisor_syscalls::consts::ioctl as nr;
use rvisor_syscalls::Errno;

fn check(r: libc::c_int) -> Result<(), Errno> {
    if r < 0 {
        Err(Errno::from(std::io::Error::last_os_error()))
    } else {
        Ok(())
    }
}

/// `TCGETS` on a host terminal.
pub fn tcgets(fd: impl AsFd) -> Result<Termios, Errno> {
    let mut t = Termios::default();
    // SAFETY: TCGETS writes one kernel `struct termios`, the layout of
    // `Termios` (size checked in rvisor-syscalls).
    check(unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::Ioctl::from(nr::TCGETS), &mut t) })?;
    Ok(t)
}

/// `TCSETS`, `TCSETSW` or `TCSETSF` on a host terminal.
pub fn tcsets(fd: impl AsFd, cmd: u32, t: &Termios) -> Result<(), Errno> {
    if ![nr::TCSETS, nr::TCSETSW, nr::TCSETSF].contains(&cmd) {
        return Err(Errno::EINVAL);
    }
    // SAFETY: the TCSETS family reads one kernel `struct termios`.
    check(unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::Ioctl::from(cmd), std::ptr::from_ref(t)) })
}

/// `TIOCGWINSZ` on a host terminal.
pub fn get_winsize(fd: impl AsFd) -> Result<Winsize, Errno> {
    let mut w = Winsize::default();
    // SAFETY: TIOCGWINSZ writes one `struct winsize`.
    check(unsafe { libc::ioctl(fd.as_fd().as_raw_fd(), libc::Ioctl::from(nr::TIOCGWINSZ), &mut w) })?;
    Ok(w)
}

/// `TIOCSWINSZ` on a host terminal.
pub fn set_winsize(fd: impl AsFd, w: &Winsize) -> Result<(), Errno> {
    // SAFETY: TIOCSWINSZ reads one `struct winsize`.
    check(unsafe {
        libc::ioctl(fd.as_fd().as_raw_fd(), libc::Ioctl::from(nr::TIOCSWINSZ), std::ptr::from_ref(w))
    })
}
