//! `epoll_create`, `epoll_create1`, `epoll_ctl`, `epoll_wait`,
//! `epoll_pwait`, `epoll_pwait2`, `eventfd`, `eventfd2`, `signalfd`,
//! `signalfd4` (the files are in `fs::epoll`, `fs::eventfd` and
//! `fs::signalfd`).

use std::time::{Duration, Instant};

use rvisor_syscalls::abi::Timespec;
use rvisor_syscalls::Errno;

use super::{Addr, Fd, SysResult};
use crate::fs::epoll::{self, Op, EPOLLET, EPOLLEXCLUSIVE, EPOLLWAKEUP};
use crate::fs::eventfd::{self, EFD_SEMAPHORE};
use crate::kernel::waitq::events;
use crate::kernel::Task;
use crate::vfs::file::oflags::{O_CLOEXEC, O_NONBLOCK};

/// `struct epoll_event` is packed on x86_64: 4 bytes of events, 8 of data.
const EVENT_SIZE: usize = 12;
/// Most events one wait returns (Linux's `EP_MAX_EVENTS`).
const MAX_EVENTS: usize = (i32::MAX as usize) / EVENT_SIZE;

pub fn epoll_create(t: &mut Task, size: i32) -> SysResult {
    if size <= 0 {
        return Err(Errno::EINVAL);
    }
    install(t, epoll::new(), false)
}

pub fn epoll_create1(t: &mut Task, flags: i32) -> SysResult {
    let flags = flags.cast_unsigned();
    if flags & !O_CLOEXEC != 0 {
        return Err(Errno::EINVAL);
    }
    install(t, epoll::new(), flags & O_CLOEXEC != 0)
}

fn install(t: &Task, f: std::sync::Arc<crate::vfs::File>, cloexec: bool) -> SysResult {
    Ok(u64::try_from(super::fs::install_new(t, f, cloexec)?).unwrap_or(0))
}

pub fn epoll_ctl(t: &mut Task, epfd: Fd, op: i32, fd: Fd, event: Addr) -> SysResult {
    const ADD: i32 = 1;
    const DEL: i32 = 2;
    const MOD: i32 = 3;
    // The event is read first, as Linux does (EFAULT before EBADF).
    let (mut ev, data) = if op == DEL {
        (0, 0)
    } else {
        let raw = t.mm.read_bytes(event, EVENT_SIZE)?;
        let ev = u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]);
        let mut d = [0u8; 8];
        d.copy_from_slice(&raw[4..12]);
        (ev, u64::from_le_bytes(d))
    };
    let ep_file = t.fds.get(epfd.0)?;
    let target = t.fds.get(fd.0)?;
    if !epoll::pollable(&target) {
        return Err(Errno::EPERM);
    }
    let Some(ep) = ep_file.ops().epoll() else { return Err(Errno::EINVAL) };
    if std::sync::Arc::ptr_eq(&ep_file, &target) {
        return Err(Errno::EINVAL);
    }
    // EPOLLWAKEUP needs CAP_BLOCK_SUSPEND; without it Linux drops the bit.
    ev &= !EPOLLWAKEUP;
    if ev & EPOLLEXCLUSIVE != 0 {
        let allowed =
            events::IN | events::OUT | events::ERR | events::HUP | EPOLLWAKEUP | EPOLLET | EPOLLEXCLUSIVE;
        if op == MOD || target.ops().epoll().is_some() || ev & !allowed != 0 {
            return Err(Errno::EINVAL);
        }
    }
    let op = match op {
        ADD => Op::Add,
        DEL => Op::Del,
        MOD => Op::Mod,
        _ => return Err(Errno::EINVAL),
    };
    ep.ctl(op, fd.0, &target, ev, data)?;
    Ok(0)
}

/// The shared part of the waits: checks, waits, writes the events.
fn wait(t: &mut Task, epfd: Fd, out: Addr, max: i32, deadline: Option<Instant>) -> SysResult {
    let max = usize::try_from(max).map_err(|_| Errno::EINVAL)?;
    if max == 0 || max > MAX_EVENTS {
        return Err(Errno::EINVAL);
    }
    // Linux checks only that the buffer is in the user half here; an
    // unmapped one fails when an event is copied to it.
    const TASK_SIZE_MAX: u64 = 0x7fff_ffff_f000;
    if out.checked_add((max * EVENT_SIZE) as u64).is_none_or(|end| end > TASK_SIZE_MAX) {
        return Err(Errno::EFAULT);
    }
    let f = t.fds.get(epfd.0)?;
    let Some(ep) = f.ops().epoll() else { return Err(Errno::EINVAL) };
    let got = ep.wait(t, max, deadline)?;
    let mut buf = Vec::with_capacity(got.len() * EVENT_SIZE);
    for (ev, data) in &got {
        buf.extend_from_slice(&ev.to_le_bytes());
        buf.extend_from_slice(&data.to_le_bytes());
    }
    t.mm.copy_out(out, &buf)?;
    Ok(got.len() as u64)
}

fn deadline_ms(ms: i32) -> Option<Instant> {
    let ms = u64::try_from(ms).ok()?;
    let now = Instant::now();
    Some(now.checked_add(Duration::from_millis(ms)).unwrap_or(now + Duration::from_secs(1 << 40)))
}

pub fn epoll_wait(t: &mut Task, epfd: Fd, out: Addr, max: i32, timeout: i32) -> SysResult {
    wait(t, epfd, out, max, deadline_ms(timeout))
}

/// Runs `f` with the signal mask at `mask` (if any), restored after unless
/// a signal interrupted the call (then after its handler), as `ppoll`.
fn with_mask(t: &mut Task, mask: Addr, size: u64, f: impl FnOnce(&mut Task) -> SysResult) -> SysResult {
    if mask != 0 {
        if size != 8 {
            return Err(Errno::EINVAL);
        }
        let m: u64 = t.mm.read_obj(mask)?;
        t.saved_mask = Some(t.sigmask());
        t.set_sigmask(m);
    }
    let r = f(t);
    if !matches!(r, Err(Errno::EINTR)) {
        if let Some(m) = t.saved_mask.take() {
            t.set_sigmask(m);
        }
    }
    r
}

pub fn epoll_pwait(
    t: &mut Task,
    epfd: Fd,
    out: Addr,
    max: i32,
    timeout: i32,
    mask: Addr,
    size: u64,
) -> SysResult {
    with_mask(t, mask, size, |t| wait(t, epfd, out, max, deadline_ms(timeout)))
}

pub fn epoll_pwait2(
    t: &mut Task,
    epfd: Fd,
    out: Addr,
    max: i32,
    tmo: Addr,
    mask: Addr,
    size: u64,
) -> SysResult {
    let deadline = if tmo == 0 {
        None
    } else {
        let ts: Timespec = t.mm.read_obj(tmo)?;
        let d = super::time::duration(ts)?;
        let now = Instant::now();
        Some(now.checked_add(d).unwrap_or(now + Duration::from_secs(1 << 40)))
    };
    with_mask(t, mask, size, |t| wait(t, epfd, out, max, deadline))
}

pub fn eventfd(t: &mut Task, initval: u32) -> SysResult {
    install(t, eventfd::new(initval, 0), false)
}

pub fn eventfd2(t: &mut Task, initval: u32, flags: i32) -> SysResult {
    let flags = flags.cast_unsigned();
    if flags & !(O_CLOEXEC | O_NONBLOCK | EFD_SEMAPHORE) != 0 {
        return Err(Errno::EINVAL);
    }
    install(t, eventfd::new(initval, flags), flags & O_CLOEXEC != 0)
}

pub fn signalfd(t: &mut Task, fd: i32, mask: Addr, size: u64) -> SysResult {
    signalfd4(t, fd, mask, size, 0)
}

pub fn signalfd4(t: &mut Task, fd: i32, mask: Addr, size: u64, flags: i32) -> SysResult {
    let flags = flags.cast_unsigned();
    if flags & !(O_CLOEXEC | O_NONBLOCK) != 0 || size != 8 {
        return Err(Errno::EINVAL);
    }
    let m: u64 = t.mm.read_obj(mask)?;
    if fd == -1 {
        return install(t, crate::fs::signalfd::new(m, flags), flags & O_CLOEXEC != 0);
    }
    let f = t.fds.get(fd)?;
    let Some(s) = f.ops().signalfd() else { return Err(Errno::EINVAL) };
    s.set_mask(m);
    Ok(u64::try_from(fd).unwrap_or(0))
}

pub fn inotify_init(t: &mut Task) -> SysResult {
    inotify_init1(t, 0)
}

pub fn inotify_init1(t: &mut Task, flags: i32) -> SysResult {
    let flags = flags.cast_unsigned();
    if flags & !(O_CLOEXEC | O_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    install(t, crate::fs::inotify::new(flags), flags & O_CLOEXEC != 0)
}

pub fn inotify_add_watch(t: &mut Task, fd: i32, path: Addr, mask: u32) -> SysResult {
    use crate::fs::inotify::bits::*;
    let path = super::path::read_path(t, path)?;
    let f = t.fds.get(fd)?;
    let Some(ino) = f.ops().inotify() else { return Err(Errno::EINVAL) };
    if mask & ALL_EVENTS == 0 || mask & (MASK_ADD | MASK_CREATE) == MASK_ADD | MASK_CREATE {
        return Err(Errno::EINVAL);
    }
    let follow = if mask & DONT_FOLLOW != 0 { super::path::AT_SYMLINK_NOFOLLOW } else { 0 };
    let super::path::Target::Path(p) =
        super::path::resolve_at(t, Fd(super::path::AT_FDCWD), &path, follow, true)?
    else {
        return Err(Errno::ENOENT);
    };
    let a = p.attr()?;
    crate::vfs::perm::check(&a, &super::path::creds(t), crate::vfs::perm::MAY_READ)?;
    if mask & ONLYDIR != 0 && !a.is_dir() {
        return Err(Errno::ENOTDIR);
    }
    Ok(u64::try_from(ino.add_watch(&p, mask)?).unwrap_or(0))
}

pub fn inotify_rm_watch(t: &mut Task, fd: i32, wd: i32) -> SysResult {
    let f = t.fds.get(fd)?;
    let Some(ino) = f.ops().inotify() else { return Err(Errno::EINVAL) };
    ino.rm_watch(wd)?;
    Ok(0)
}
