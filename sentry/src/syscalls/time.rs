//! Clocks and sleeps. The sentry reads the host's clocks as its time
//! source (as gVisor does); sleeps wait in the sentry, interruptibly.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rvisor_syscalls::abi::{Timespec, Timeval, Timezone};
use rvisor_syscalls::Errno;

use super::{Addr, SysResult};
use crate::kernel::task::RestartBlock;
use crate::kernel::thread_group::ThreadGroup;
use crate::kernel::{Task, TaskShared};

const CLOCK_REALTIME: i32 = 0;
const CLOCK_MONOTONIC: i32 = 1;
const CLOCK_PROCESS_CPUTIME_ID: i32 = 2;
const CLOCK_THREAD_CPUTIME_ID: i32 = 3;
const CLOCK_MONOTONIC_RAW: i32 = 4;
const CLOCK_REALTIME_COARSE: i32 = 5;
const CLOCK_MONOTONIC_COARSE: i32 = 6;
const CLOCK_BOOTTIME: i32 = 7;
const CLOCK_REALTIME_ALARM: i32 = 8;
const CLOCK_BOOTTIME_ALARM: i32 = 9;
const CLOCK_TAI: i32 = 11;

fn host_clock(clk: i32) -> Result<rustix::time::ClockId, Errno> {
    use rustix::time::ClockId as C;
    Ok(match clk {
        CLOCK_REALTIME | CLOCK_REALTIME_ALARM => C::Realtime,
        CLOCK_MONOTONIC => C::Monotonic,
        CLOCK_MONOTONIC_RAW => C::MonotonicRaw,
        CLOCK_REALTIME_COARSE => C::RealtimeCoarse,
        CLOCK_MONOTONIC_COARSE => C::MonotonicCoarse,
        CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => C::Boottime,
        CLOCK_TAI => C::Tai,
        _ => return Err(Errno::EINVAL),
    })
}

/// Clock `clk` now: the sandbox's clock (the vDSO's parameters, so a
/// trapped call and the vDSO agree) where it answers, else the host's.
pub(crate) fn now(clk: i32) -> Result<Timespec, Errno> {
    let host = host_clock(clk)?;
    let clk = if clk == CLOCK_REALTIME_ALARM {
        CLOCK_REALTIME
    } else if clk == CLOCK_BOOTTIME_ALARM {
        CLOCK_BOOTTIME
    } else {
        clk
    };
    if let Some(ns) = crate::kernel::vdso::clock_ns(clk) {
        const NSEC: u64 = 1_000_000_000;
        return Ok(Timespec {
            tv_sec: i64::try_from(ns / NSEC).unwrap_or(i64::MAX),
            tv_nsec: i64::try_from(ns % NSEC).unwrap_or(0),
        });
    }
    let ts = rustix::time::clock_gettime(host);
    Ok(Timespec { tv_sec: ts.tv_sec, tv_nsec: ts.tv_nsec })
}

/// What a CPU clock counts (Linux's `CPUCLOCK_WHICH`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum CpuWhich {
    /// `CPUCLOCK_PROF`: user and system time.
    Prof,
    /// `CPUCLOCK_VIRT`: user time.
    Virt,
    /// `CPUCLOCK_SCHED`: time on a CPU (user and system here).
    Sched,
}

/// Whose CPU time a clock counts.
enum CpuOf {
    /// The calling thread.
    Me,
    /// Another thread of the caller's process.
    Thread(Arc<TaskShared>),
    /// A process.
    Process(Arc<ThreadGroup>),
}

/// Decodes CPU clock `clk`: `CLOCK_PROCESS_CPUTIME_ID`,
/// `CLOCK_THREAD_CPUTIME_ID`, or a negative id made by
/// `clock_getcpuclockid`/`pthread_getcpuclockid` (`~pid << 3 | thread << 2
/// | which`), found as Linux's `pid_for_clock` finds it: a thread only in
/// the caller's process, else `EINVAL`. `Ok(None)`: not a CPU clock.
fn cpu_clock(t: &Task, clk: i32) -> Result<Option<(CpuOf, CpuWhich)>, Errno> {
    match clk {
        CLOCK_PROCESS_CPUTIME_ID => return Ok(Some((CpuOf::Process(t.tg().clone()), CpuWhich::Sched))),
        CLOCK_THREAD_CPUTIME_ID => return Ok(Some((CpuOf::Me, CpuWhich::Sched))),
        c if c >= 0 => return Ok(None),
        _ => {}
    }
    let which = match clk & 3 {
        0 => CpuWhich::Prof,
        1 => CpuWhich::Virt,
        2 => CpuWhich::Sched,
        _ => return Err(Errno::EINVAL),
    };
    let pid = !(clk >> 3);
    let of = if clk & 4 != 0 {
        if pid == 0 || pid == t.tid() {
            CpuOf::Me
        } else {
            let other = t.kernel.task(pid).filter(|o| Arc::ptr_eq(&o.tg, t.tg())).ok_or(Errno::EINVAL)?;
            CpuOf::Thread(other)
        }
    } else if pid == 0 || pid == t.tid() {
        CpuOf::Process(t.tg().clone())
    } else {
        CpuOf::Process(t.kernel.thread_group(pid).ok_or(Errno::EINVAL)?)
    };
    Ok(Some((of, which)))
}

/// The calling thread's (user, system) CPU time: its time running
/// application code, as the platform tells it, and its sentry thread's.
pub(crate) fn thread_cpu_times(t: &mut Task) -> (Duration, Duration) {
    // One thread's reading is at most its address space's whole time:
    // the platform's reading may pass through application-writable
    // memory.
    let reading = t.ctx.thread_cpu_time(t.mm.address_space()).map(|d| (&t.mm, d.min(t.mm.cpu_time())));
    let user = t.shared.stub_cpu_time(reading);
    (user, crate::kernel::thread_group::own_thread_time())
}

/// The time CPU clock `of`/`which` shows.
fn cpu_clock_now(t: &mut Task, of: CpuOf, which: CpuWhich) -> Duration {
    let (user, sys) = match of {
        CpuOf::Me => thread_cpu_times(t),
        // Its platform time as it last read it (a thread's stub time can
        // only be read by the thread itself); its sentry thread's now.
        CpuOf::Thread(o) => (o.stub_cpu_time(None), o.sentry_cpu_time()),
        CpuOf::Process(g) => {
            let c = g.cpu_times();
            (c.user, c.sys)
        }
    };
    if which == CpuWhich::Virt {
        user
    } else {
        user + sys
    }
}

pub fn clock_gettime(t: &mut Task, clk: i32, tp: Addr) -> SysResult {
    let ts = match cpu_clock(t, clk)? {
        Some((of, which)) => Timespec::from_duration(cpu_clock_now(t, of, which)),
        None => now(clk)?,
    };
    t.mm.write_obj(tp, &ts)?;
    Ok(0)
}

pub fn clock_getres(t: &mut Task, clk: i32, tp: Addr) -> SysResult {
    let res = match cpu_clock(t, clk)? {
        // As Linux: 1 ns for CPUCLOCK_SCHED, a tick (HZ = 250, as
        // Debian's kernels) for the sampled ones.
        Some((_, CpuWhich::Sched)) => Timespec { tv_sec: 0, tv_nsec: 1 },
        Some(_) => Timespec { tv_sec: 0, tv_nsec: 4_000_000 },
        None => {
            let r = rustix::time::clock_getres(host_clock(clk)?);
            Timespec { tv_sec: r.tv_sec, tv_nsec: r.tv_nsec }
        }
    };
    if tp != 0 {
        t.mm.write_obj(tp, &res)?;
    }
    Ok(0)
}

pub fn gettimeofday(t: &mut Task, tv: Addr, tz: Addr) -> SysResult {
    if tv != 0 {
        let ts = now(CLOCK_REALTIME)?;
        t.mm.write_obj(tv, &Timeval { tv_sec: ts.tv_sec, tv_usec: ts.tv_nsec / 1000 })?;
    }
    if tz != 0 {
        t.mm.write_obj(tz, &Timezone::default())?;
    }
    Ok(0)
}

pub fn time(t: &mut Task, tloc: Addr) -> SysResult {
    let s = now(CLOCK_REALTIME)?.tv_sec;
    if tloc != 0 {
        t.mm.write_obj(tloc, &s)?;
    }
    Ok(s.cast_unsigned())
}

pub fn duration(ts: Timespec) -> Result<Duration, Errno> {
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    Ok(Duration::new(ts.tv_sec.cast_unsigned(), u32::try_from(ts.tv_nsec).unwrap_or(0)))
}

fn sleep(t: &mut Task, d: Duration, rem: Addr) -> SysResult {
    let deadline =
        Instant::now().checked_add(d).unwrap_or_else(|| Instant::now() + Duration::from_secs(1 << 40));
    sleep_to(t, deadline, rem)
}

/// Sleeps `d`, then until clock `clk` has moved on by `d` too: the wait
/// is timed by the host's monotonic clock, and the sandbox's clock (the
/// vDSO's) may run a little slower while it is steered, so it is read
/// again on waking and the rest slept. Interrupted, the remainder of
/// the sleep in progress goes to `rem`.
fn sleep_clock(t: &mut Task, clk: i32, d: Duration, rem: Addr) -> SysResult {
    let start = duration(now(clk)?)?;
    let target = start.checked_add(d).unwrap_or(Duration::MAX);
    sleep(t, d, rem)?;
    loop {
        let n = duration(now(clk)?)?;
        if n >= target {
            return Ok(0);
        }
        sleep(t, target - n, rem)?;
    }
}

/// Sleeps until `deadline`. Interrupted, it writes the time left to `rem`
/// and asks to be restarted through `restart_syscall` (if no handler runs:
/// a stop and `SIGCONT`, say), which sleeps on to the same deadline.
fn sleep_to(t: &mut Task, deadline: Instant, rem: Addr) -> SysResult {
    match t.sleep_until(deadline) {
        Ok(()) => Ok(0),
        Err(_) => {
            if rem != 0 {
                t.mm.write_obj(
                    rem,
                    &Timespec::from_duration(deadline.saturating_duration_since(Instant::now())),
                )?;
            }
            t.restart_block = Some(RestartBlock::Sleep { deadline, rem });
            Err(Errno::ERESTART_RESTARTBLOCK)
        }
    }
}

/// `restart_syscall`: goes on with what a signal interrupted (`EINTR` if
/// nothing is to be continued).
pub fn restart_syscall(t: &mut Task) -> SysResult {
    match t.restart_block.take() {
        Some(RestartBlock::Sleep { deadline, rem }) => sleep_to(t, deadline, rem),
        Some(RestartBlock::FutexWait { addr, private, val, deadline, bitset }) => {
            super::futex::wait(t, addr, private, val, Some(deadline), bitset)
        }
        None => Err(Errno::EINTR),
    }
}

pub fn nanosleep(t: &mut Task, req: Addr, rem: Addr) -> SysResult {
    let ts: Timespec = t.mm.read_obj(req)?;
    let d = duration(ts)?;
    sleep_clock(t, CLOCK_MONOTONIC, d, rem)
}

pub fn clock_nanosleep(t: &mut Task, clk: i32, flags: i32, req: Addr, rem: Addr) -> SysResult {
    const TIMER_ABSTIME: i32 = 1;
    match clk {
        CLOCK_REALTIME | CLOCK_MONOTONIC | CLOCK_BOOTTIME | CLOCK_TAI | CLOCK_REALTIME_ALARM
        | CLOCK_BOOTTIME_ALARM => {}
        // Linux has no sleep on a thread's CPU clock; sleeping on the
        // process's CPU clock is not offered yet.
        CLOCK_THREAD_CPUTIME_ID | CLOCK_PROCESS_CPUTIME_ID => return Err(Errno::EOPNOTSUPP),
        // Valid clocks that cannot be slept on.
        CLOCK_MONOTONIC_RAW | CLOCK_REALTIME_COARSE | CLOCK_MONOTONIC_COARSE => {
            return Err(Errno::EOPNOTSUPP)
        }
        _ => return Err(Errno::EINVAL),
    }
    let ts: Timespec = t.mm.read_obj(req)?;
    let target = duration(ts)?;
    if flags & TIMER_ABSTIME != 0 {
        let n = duration(now(clk)?)?;
        // An absolute sleep is restarted as it was asked (its deadline
        // still holds), and reports no remainder.
        return match sleep_clock(t, clk, target.saturating_sub(n), 0) {
            Err(e) if e == Errno::ERESTART_RESTARTBLOCK => {
                t.restart_block = None;
                Err(Errno::ERESTARTNOHAND)
            }
            r => r,
        };
    }
    sleep_clock(t, CLOCK_MONOTONIC, target, rem)
}
