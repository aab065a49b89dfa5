//! `alarm`, `getitimer`/`setitimer` and POSIX timers (`timer_create`,
//! `timer_settime`, `timer_gettime`, `timer_getoverrun`, `timer_delete`);
//! the timers themselves are in [`crate::kernel::timers`].

use std::sync::Arc;
use std::time::{Duration, Instant};

use rvisor_syscalls::abi::{Timespec, Timeval};
use rvisor_syscalls::Errno;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{Addr, SysResult};
use crate::kernel::signal;
use crate::kernel::timers::{CpuClock, CpuTimer, Kind, Notify, Setting, Timer};
use crate::kernel::Task;

const ITIMER_REAL: i32 = 0;
const ITIMER_VIRTUAL: i32 = 1;
const ITIMER_PROF: i32 = 2;

const SIGEV_SIGNAL: i32 = 0;
const SIGEV_NONE: i32 = 1;
const SIGEV_THREAD_ID: i32 = 4;

const TIMER_ABSTIME: i32 = 1;

/// `struct itimerval`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Itimerval {
    interval: Timeval,
    value: Timeval,
}

/// `struct itimerspec`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Itimerspec {
    interval: Timespec,
    value: Timespec,
}

/// `struct sigevent` (64 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct Sigevent {
    value: u64,
    signo: i32,
    notify: i32,
    tid: i32,
    pad: [i32; 11],
}

fn from_timeval(tv: Timeval) -> Result<Duration, Errno> {
    tv.to_duration().ok_or(Errno::EINVAL)
}

/// Far enough to mean never, near enough not to overflow an `Instant`.
fn after(d: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(d).unwrap_or_else(|| now + Duration::from_secs(1 << 40))
}

/// The process's `ITIMER_REAL`, made on first use.
fn real_timer(t: &Task) -> Arc<Timer> {
    let tg = t.tg().clone();
    let mut timers = tg.timers.lock().unwrap_or_else(|p| p.into_inner());
    timers.real.get_or_insert_with(|| Timer::new(&tg, Kind::Real)).clone()
}

/// `ITIMER_REAL` set to `value` (zero: disarmed) then every `interval`;
/// returns the old setting. Linux reports an armed timer as at least 1 µs.
fn set_real(t: &Task, value: Duration, interval: Duration) -> Setting {
    let timer = real_timer(t);
    let at = (!value.is_zero()).then(|| after(value));
    let mut old = timer.set(&t.kernel.timers, at, interval);
    if !old.value.is_zero() {
        old.value = old.value.max(Duration::from_micros(1));
    }
    old
}

/// The process's `ITIMER_VIRTUAL` or `ITIMER_PROF`, made on first use.
fn cpu_timer(t: &Task, clock: CpuClock) -> Arc<CpuTimer> {
    let tg = t.tg().clone();
    let mut timers = tg.timers.lock().unwrap_or_else(|p| p.into_inner());
    let slot = match clock {
        CpuClock::Virtual => &mut timers.virt,
        CpuClock::Prof => &mut timers.prof,
    };
    slot.get_or_insert_with(|| CpuTimer::new(&tg, clock)).clone()
}

fn which_clock(which: i32) -> Result<Option<CpuClock>, Errno> {
    match which {
        ITIMER_REAL => Ok(None),
        ITIMER_VIRTUAL => Ok(Some(CpuClock::Virtual)),
        ITIMER_PROF => Ok(Some(CpuClock::Prof)),
        _ => Err(Errno::EINVAL),
    }
}

pub fn getitimer(t: &mut Task, which: i32, cur: Addr) -> SysResult {
    let s = match which_clock(which)? {
        None => real_timer(t).get(Duration::from_micros(1)),
        Some(c) => cpu_timer(t, c).get(),
    };
    t.mm.write_obj(
        cur,
        &Itimerval { interval: Timeval::from_duration(s.interval), value: Timeval::from_duration(s.value) },
    )?;
    Ok(0)
}

pub fn setitimer(t: &mut Task, which: i32, new: Addr, old: Addr) -> SysResult {
    let clock = which_clock(which)?;
    // A null new value disarms (Linux since 5.x; before, EFAULT).
    let n: Itimerval = if new == 0 { Itimerval::default() } else { t.mm.read_obj(new)? };
    let (value, interval) = (from_timeval(n.value)?, from_timeval(n.interval)?);
    let prev = match clock {
        None => set_real(t, value, interval),
        Some(c) => cpu_timer(t, c).set(&t.kernel.timers, value, interval),
    };
    if old != 0 {
        t.mm.write_obj(
            old,
            &Itimerval {
                interval: Timeval::from_duration(prev.interval),
                value: Timeval::from_duration(prev.value),
            },
        )?;
    }
    Ok(0)
}

pub fn alarm(t: &mut Task, secs: u32) -> SysResult {
    let prev = set_real(t, Duration::from_secs(u64::from(secs)), Duration::ZERO);
    // The seconds left, rounded to the nearest (and never 0 while armed).
    let mut left = prev.value.as_secs();
    if prev.value.subsec_micros() >= 500_000 || (left == 0 && !prev.value.is_zero()) {
        left += 1;
    }
    Ok(left)
}

/// Clocks a POSIX timer may use: the wall and monotonic clocks and the
/// process's CPU clock (a thread's CPU clock needs the thread's own user
/// time, which the ptrace platform cannot read).
fn timer_clock(clk: i32) -> Result<(), Errno> {
    match clk {
        0 | 1 | 2 | 7 | 11 => Ok(()),
        // CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM: CAP_WAKE_ALARM.
        8 | 9 => Err(Errno::EPERM),
        _ => Err(Errno::EINVAL),
    }
}

pub fn timer_create(t: &mut Task, clk: i32, sevp: Addr, idp: Addr) -> SysResult {
    let ev = if sevp == 0 {
        // SIGEV_SIGNAL, SIGALRM, the timer id as the value.
        None
    } else {
        Some(t.mm.read_obj::<Sigevent>(sevp)?)
    };
    timer_clock(clk)?;
    let tg = t.tg().clone();
    let mut timers = tg.timers.lock().unwrap_or_else(|p| p.into_inner());
    let id = timers.next_id().ok_or(Errno::EAGAIN)?;
    let (notify, signo, value) = match ev {
        None => (Notify::Process, signal::sig::SIGALRM, u64::from(id.cast_unsigned())),
        Some(ev) => {
            let notify = match ev.notify {
                SIGEV_NONE => Notify::None,
                SIGEV_SIGNAL => Notify::Process,
                SIGEV_THREAD_ID => {
                    let target =
                        t.kernel.task(ev.tid).filter(|x| Arc::ptr_eq(&x.tg, &tg)).ok_or(Errno::EINVAL)?;
                    Notify::Thread(Arc::downgrade(&target))
                }
                // SIGEV_THREAD is the C library's (it asks the kernel for
                // SIGEV_THREAD_ID).
                _ => return Err(Errno::EINVAL),
            };
            if !matches!(notify, Notify::None) && !signal::valid(ev.signo) {
                return Err(Errno::EINVAL);
            }
            (notify, ev.signo, ev.value)
        }
    };
    t.mm.write_obj(idp, &id)?;
    timers.posix.insert(id, Timer::new(&tg, Kind::Posix { id, clock: clk, notify, signo, value }));
    Ok(0)
}

fn posix_timer(t: &Task, id: i32) -> Result<Arc<Timer>, Errno> {
    t.tg().timers.lock().unwrap_or_else(|p| p.into_inner()).posix.get(&id).cloned().ok_or(Errno::EINVAL)
}

fn write_spec(t: &Task, addr: Addr, s: Setting) -> Result<(), Errno> {
    t.mm.write_obj(
        addr,
        &Itimerspec {
            interval: Timespec::from_duration(s.interval),
            value: Timespec::from_duration(s.value),
        },
    )
}

pub fn timer_settime(t: &mut Task, id: i32, flags: i32, new: Addr, old: Addr) -> SysResult {
    let timer = posix_timer(t, id)?;
    let n: Itimerspec = t.mm.read_obj(new)?;
    let (value, interval) = (super::time::duration(n.value)?, super::time::duration(n.interval)?);
    if timer.on_cpu_clock() {
        let target = if value.is_zero() {
            None
        } else if flags & TIMER_ABSTIME != 0 {
            Some(value)
        } else {
            Some(timer.cpu_used().saturating_add(value))
        };
        let prev = timer.set_cpu(&t.kernel.timers, target, interval);
        if old != 0 {
            write_spec(t, old, prev)?;
        }
        return Ok(0);
    }
    let at = if value.is_zero() {
        None
    } else if flags & TIMER_ABSTIME != 0 {
        // An absolute time on the timer's clock; the sandbox cannot set
        // clocks, so it is converted once.
        let clk = timer.clock().ok_or(Errno::EINVAL)?;
        let now = super::time::duration(super::time::now(clk)?)?;
        Some(after(value.saturating_sub(now)))
    } else {
        Some(after(value))
    };
    let prev = timer.set(&t.kernel.timers, at, interval);
    if old != 0 {
        write_spec(t, old, prev)?;
    }
    Ok(0)
}

pub fn timer_gettime(t: &mut Task, id: i32, cur: Addr) -> SysResult {
    let timer = posix_timer(t, id)?;
    write_spec(t, cur, timer.get(Duration::from_nanos(1)))?;
    Ok(0)
}

pub fn timer_getoverrun(t: &mut Task, id: i32) -> SysResult {
    let timer = posix_timer(t, id)?;
    // DELAYTIMER_MAX is INT_MAX.
    Ok(u64::from(timer.overrun_last().min(i32::MAX.cast_unsigned())))
}

pub fn timer_delete(t: &mut Task, id: i32) -> SysResult {
    let timer =
        t.tg().timers.lock().unwrap_or_else(|p| p.into_inner()).posix.remove(&id).ok_or(Errno::EINVAL)?;
    timer.set(&t.kernel.timers, None, Duration::ZERO);
    Ok(0)
}

/// The timerfd behind descriptor `fd` (`EINVAL` for another file).
fn timerfd_of(t: &Task, fd: i32) -> Result<Arc<crate::vfs::File>, Errno> {
    let f = t.fds.get(fd)?;
    if f.ops().timerfd().is_none() {
        return Err(Errno::EINVAL);
    }
    Ok(f)
}

pub fn timerfd_create(t: &mut Task, clk: i32, flags: i32) -> SysResult {
    use crate::vfs::file::oflags::{O_CLOEXEC, O_NONBLOCK};
    const CAP_WAKE_ALARM: u64 = 1 << 35;
    let flags = flags.cast_unsigned();
    if flags & !(O_CLOEXEC | O_NONBLOCK) != 0 {
        return Err(Errno::EINVAL);
    }
    match clk {
        0 | 1 | 7 => {}
        // CLOCK_REALTIME_ALARM, CLOCK_BOOTTIME_ALARM.
        8 | 9 => {
            if !t.tg().creds().capable(CAP_WAKE_ALARM) {
                return Err(Errno::EPERM);
            }
        }
        _ => return Err(Errno::EINVAL),
    }
    let fd = super::fs::install_new(t, crate::fs::timerfd::new(clk, flags), flags & O_CLOEXEC != 0)?;
    Ok(u64::try_from(fd).unwrap_or(0))
}

pub fn timerfd_settime(t: &mut Task, fd: i32, flags: i32, new: Addr, old: Addr) -> SysResult {
    const TFD_TIMER_ABSTIME: i32 = 1;
    // Accepted; the sandbox cannot set its clocks, so nothing cancels.
    const TFD_TIMER_CANCEL_ON_SET: i32 = 2;
    if flags & !(TFD_TIMER_ABSTIME | TFD_TIMER_CANCEL_ON_SET) != 0 {
        return Err(Errno::EINVAL);
    }
    let n: Itimerspec = t.mm.read_obj(new)?;
    let (value, interval) = (super::time::duration(n.value)?, super::time::duration(n.interval)?);
    let f = timerfd_of(t, fd)?;
    let Some(tfd) = f.ops().timerfd() else { return Err(Errno::EINVAL) };
    let at = if value.is_zero() {
        None
    } else if flags & TFD_TIMER_ABSTIME != 0 {
        let clk = tfd.timer.clock().ok_or(Errno::EINVAL)?;
        let now = super::time::duration(super::time::now(clk)?)?;
        Some(after(value.saturating_sub(now)))
    } else {
        Some(after(value))
    };
    tfd.reset();
    let prev = tfd.timer.set(&t.kernel.timers, at, interval);
    if old != 0 {
        write_spec(t, old, prev)?;
    }
    Ok(0)
}

pub fn timerfd_gettime(t: &mut Task, fd: i32, cur: Addr) -> SysResult {
    let f = timerfd_of(t, fd)?;
    let Some(tfd) = f.ops().timerfd() else { return Err(Errno::EINVAL) };
    write_spec(t, cur, tfd.timer.get(Duration::ZERO))?;
    Ok(0)
}
