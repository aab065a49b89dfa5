//! Clocks and sleeps. The sentry reads the host's clocks as its time
//! source (as gVisor does); sleeps wait in the sentry, interruptibly.

use std::time::{Duration, Instant};

use rvisor_syscalls::abi::{Timespec, Timeval, Timezone};
use rvisor_syscalls::Errno;

use super::{Addr, SysResult};
use crate::kernel::task::RestartBlock;
use crate::kernel::Task;

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
        // CPU time: the sentry thread's, which serves the task (the
        // application's own user time is spent in its stub; not counted
        // yet).
        CLOCK_PROCESS_CPUTIME_ID | CLOCK_THREAD_CPUTIME_ID => C::ThreadCPUTime,
        CLOCK_MONOTONIC_RAW => C::MonotonicRaw,
        CLOCK_REALTIME_COARSE => C::RealtimeCoarse,
        CLOCK_MONOTONIC_COARSE => C::MonotonicCoarse,
        CLOCK_BOOTTIME | CLOCK_BOOTTIME_ALARM => C::Boottime,
        CLOCK_TAI => C::Tai,
        _ => return Err(Errno::EINVAL),
    })
}

pub(crate) fn now(clk: i32) -> Result<Timespec, Errno> {
    let ts = rustix::time::clock_gettime(host_clock(clk)?);
    Ok(Timespec { tv_sec: ts.tv_sec, tv_nsec: ts.tv_nsec })
}

pub fn clock_gettime(t: &mut Task, clk: i32, tp: Addr) -> SysResult {
    let ts = if clk == CLOCK_PROCESS_CPUTIME_ID {
        // The application's time in its address space and the sentry's
        // serving it.
        let c = t.tg().cpu_times();
        Timespec::from_duration(c.user + c.sys)
    } else {
        now(clk)?
    };
    t.mm.write_obj(tp, &ts)?;
    Ok(0)
}

pub fn clock_getres(t: &mut Task, clk: i32, tp: Addr) -> SysResult {
    let c = host_clock(clk)?;
    if tp != 0 {
        let r = rustix::time::clock_getres(c);
        t.mm.write_obj(tp, &Timespec { tv_sec: r.tv_sec, tv_nsec: r.tv_nsec })?;
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
    sleep(t, d, rem)
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
        return match sleep(t, target.saturating_sub(n), 0) {
            Err(e) if e == Errno::ERESTART_RESTARTBLOCK => {
                t.restart_block = None;
                Err(Errno::ERESTARTNOHAND)
            }
            r => r,
        };
    }
    sleep(t, target, rem)
}
