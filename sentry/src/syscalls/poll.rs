//! `poll`, `ppoll`, `select`, `pselect6`: readiness of the sentry's own
//! files (pipes, pidfds) through their wait queues, of host files (stdio)
//! through a host `poll`, both at once when a set mixes them. Regular
//! files are always ready.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustix::event::PollFlags;
use rvisor_syscalls::abi::{Timespec, Timeval};
use rvisor_syscalls::Errno;

use super::{Addr, SysResult};
use crate::kernel::waitq::events::*;
use crate::kernel::Task;
use crate::vfs::File;

/// One `pollfd`: descriptor, wanted events, returned events.
#[derive(Clone, Copy, Debug)]
struct Entry {
    fd: i32,
    events: u32,
    revents: u32,
}

/// Polls `entries` until one is ready or `deadline` passes; returns how
/// many have events. `None` deadline: forever; a past one: just look.
fn do_poll(t: &Task, entries: &mut [Entry], deadline: Option<Instant>) -> Result<usize, Errno> {
    let files: Vec<Option<Arc<File>>> =
        entries.iter().map(|e| if e.fd < 0 { None } else { t.fds.get(e.fd).ok() }).collect();
    // Register before looking: no readiness change is missed.
    let mut regs = Vec::new();
    for (e, f) in entries.iter().zip(&files) {
        if let Some(q) = f.as_ref().and_then(|f| f.wait_queue()) {
            regs.push(q.register(&t.shared, e.events | ERR | HUP));
        }
    }
    loop {
        let mut n = 0;
        for (e, f) in entries.iter_mut().zip(&files) {
            e.revents = match f {
                None if e.fd < 0 => 0,
                None => NVAL,
                Some(f) => f.readiness(e.events | ERR | HUP) & (e.events | ERR | HUP),
            };
            if e.revents != 0 {
                n += 1;
            }
        }
        if n > 0 {
            return Ok(n);
        }
        let host: Vec<_> = entries
            .iter()
            .zip(&files)
            .filter_map(|(e, f)| {
                let fd = f.as_ref()?.host_poll_fd()?;
                Some((fd, PollFlags::from_bits_truncate(u16::try_from(e.events & 0xffff).unwrap_or(0))))
            })
            .collect();
        let woke = if host.is_empty() { t.wait_kick(deadline) } else { t.poll_host(&host, deadline) };
        match woke {
            Ok(true) => {}
            Ok(false) => return Ok(0),
            Err(_) => return Err(Errno::ERESTARTNOHAND),
        }
    }
}

fn deadline_after(d: Duration) -> Instant {
    Instant::now().checked_add(d).unwrap_or_else(|| Instant::now() + Duration::from_secs(1 << 40))
}

fn read_entries(t: &Task, fds: Addr, nfds: u32) -> Result<Vec<Entry>, Errno> {
    let limit = t.tg().rlimit(7).cur;
    if u64::from(nfds) > limit.min(crate::vfs::NR_OPEN as u64) {
        return Err(Errno::EINVAL);
    }
    let n = usize::try_from(nfds).map_err(|_| Errno::EINVAL)?;
    let raw = t.mm.read_bytes(fds, n * 8)?;
    Ok(raw
        .chunks_exact(8)
        .map(|c| Entry {
            fd: i32::from_le_bytes([c[0], c[1], c[2], c[3]]),
            events: u32::from(u16::from_le_bytes([c[4], c[5]])),
            revents: 0,
        })
        .collect())
}

fn write_revents(t: &Task, fds: Addr, entries: &[Entry]) -> Result<(), Errno> {
    for (i, e) in entries.iter().enumerate() {
        let r = u16::try_from(e.revents & 0xffff).unwrap_or(0);
        t.mm.write_obj(fds + i as u64 * 8 + 6, &r)?;
    }
    Ok(())
}

pub fn poll(t: &mut Task, fds: Addr, nfds: u32, timeout: i32) -> SysResult {
    let mut entries = read_entries(t, fds, nfds)?;
    let deadline = match timeout {
        ..0 => None,
        ms => Some(deadline_after(Duration::from_millis(u64::from(ms.cast_unsigned())))),
    };
    let n = do_poll(t, &mut entries, deadline)?;
    write_revents(t, fds, &entries)?;
    Ok(n as u64)
}

/// Applies a `ppoll`/`pselect6` signal mask for the call; the old one
/// comes back when the call ends ([`end_mask`]).
fn swap_mask(t: &mut Task, mask: Addr, size: u64) -> Result<(), Errno> {
    if mask == 0 {
        return Ok(());
    }
    if size != 8 {
        return Err(Errno::EINVAL);
    }
    let m: u64 = t.mm.read_obj(mask)?;
    t.saved_mask = Some(t.sigmask());
    t.set_sigmask(m);
    Ok(())
}

/// Restores the mask [`swap_mask`] replaced, unless a signal interrupted
/// the call: then it comes back after the handler (Linux's
/// `restore_saved_sigmask_unless`).
fn end_mask<T>(t: &mut Task, r: &Result<T, Errno>) {
    if !matches!(r, Err(e) if e.is_restart()) {
        if let Some(m) = t.saved_mask.take() {
            t.set_sigmask(m);
        }
    }
}

fn read_timeout(t: &Task, tmo: Addr) -> Result<Option<Instant>, Errno> {
    if tmo == 0 {
        return Ok(None);
    }
    let ts: Timespec = t.mm.read_obj(tmo)?;
    Ok(Some(deadline_after(super::time::duration(ts)?)))
}

fn write_left(t: &Task, tmo: Addr, deadline: Option<Instant>) -> Result<(), Errno> {
    if let (true, Some(d)) = (tmo != 0, deadline) {
        t.mm.write_obj(tmo, &Timespec::from_duration(d.saturating_duration_since(Instant::now())))?;
    }
    Ok(())
}

pub fn ppoll(t: &mut Task, fds: Addr, nfds: u32, tmo: Addr, mask: Addr, size: u64) -> SysResult {
    let mut entries = read_entries(t, fds, nfds)?;
    let deadline = read_timeout(t, tmo)?;
    swap_mask(t, mask, size)?;
    let r = do_poll(t, &mut entries, deadline);
    end_mask(t, &r);
    let n = r?;
    write_revents(t, fds, &entries)?;
    write_left(t, tmo, deadline)?;
    Ok(n as u64)
}

const POLLIN_SET: u32 = RDNORM | RDBAND | IN | HUP | ERR;
const POLLOUT_SET: u32 = WRBAND | WRNORM | OUT | ERR;
const POLLEX_SET: u32 = PRI;

/// The three descriptor sets of a `select`, as words.
fn read_set(t: &Task, addr: Addr, words: usize) -> Result<Vec<u64>, Errno> {
    if addr == 0 {
        return Ok(vec![0; words]);
    }
    let raw = t.mm.read_bytes(addr, words * 8)?;
    Ok(raw.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect())
}

fn do_select(t: &Task, nfds: i32, sets: [Addr; 3], deadline: Option<Instant>) -> Result<usize, Errno> {
    // Linux looks only at descriptors the table has room for: bits past
    // it are neither checked (no EBADF) nor written back.
    let nfds = usize::try_from(nfds).map_err(|_| Errno::EINVAL)?.min(t.fds.max_fds());
    let words = nfds.div_ceil(64);
    let r = read_set(t, sets[0], words)?;
    let w = read_set(t, sets[1], words)?;
    let x = read_set(t, sets[2], words)?;
    let mut entries = Vec::new();
    for fd in 0..nfds {
        let bit = |s: &[u64]| s[fd / 64] >> (fd % 64) & 1 == 1;
        let mut ev = 0;
        if bit(&r) {
            ev |= POLLIN_SET;
        }
        if bit(&w) {
            ev |= POLLOUT_SET;
        }
        if bit(&x) {
            ev |= POLLEX_SET;
        }
        if ev != 0 {
            let fd = i32::try_from(fd).map_err(|_| Errno::EINVAL)?;
            if t.fds.get(fd).is_err() {
                return Err(Errno::EBADF);
            }
            entries.push(Entry { fd, events: ev, revents: 0 });
        }
    }
    do_poll(t, &mut entries, deadline)?;
    let (mut ro, mut wo, mut xo) = (vec![0u64; words], vec![0u64; words], vec![0u64; words]);
    let mut n = 0;
    for e in &entries {
        let i = usize::try_from(e.fd).unwrap_or(0);
        let set = |v: &mut Vec<u64>| v[i / 64] |= 1 << (i % 64);
        if e.revents & POLLIN_SET != 0 && e.events & IN != 0 {
            set(&mut ro);
            n += 1;
        }
        if e.revents & POLLOUT_SET != 0 && e.events & OUT != 0 {
            set(&mut wo);
            n += 1;
        }
        if e.revents & POLLEX_SET != 0 && e.events & PRI != 0 {
            set(&mut xo);
            n += 1;
        }
    }
    for (addr, v) in sets.iter().zip([ro, wo, xo]) {
        if *addr != 0 {
            let bytes: Vec<u8> = v.iter().flat_map(|w| w.to_le_bytes()).collect();
            t.mm.copy_out(*addr, &bytes)?;
        }
    }
    Ok(n)
}

pub fn select(t: &mut Task, nfds: i32, r: Addr, w: Addr, x: Addr, tmo: Addr) -> SysResult {
    let deadline = if tmo == 0 {
        None
    } else {
        let tv: Timeval = t.mm.read_obj(tmo)?;
        Some(deadline_after(tv.to_duration().ok_or(Errno::EINVAL)?))
    };
    let n = do_select(t, nfds, [r, w, x], deadline)?;
    if let (true, Some(d)) = (tmo != 0, deadline) {
        t.mm.write_obj(tmo, &Timeval::from_duration(d.saturating_duration_since(Instant::now())))?;
    }
    Ok(n as u64)
}

pub fn pselect6(t: &mut Task, nfds: i32, r: Addr, w: Addr, x: Addr, tmo: Addr, sig: Addr) -> SysResult {
    let deadline = read_timeout(t, tmo)?;
    // The last argument points to { const sigset_t *ss; size_t ss_len; }.
    let (mask, size) = if sig != 0 {
        let v: [u64; 2] = t.mm.read_obj(sig)?;
        (v[0], v[1])
    } else {
        (0, 0)
    };
    swap_mask(t, mask, size)?;
    let r = do_select(t, nfds, [r, w, x], deadline);
    end_mask(t, &r);
    let n = r?;
    write_left(t, tmo, deadline)?;
    Ok(n as u64)
}
