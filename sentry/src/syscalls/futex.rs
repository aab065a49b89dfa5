//! `futex`: wait, wake, bitsets, requeue, wake-op. Priority-inheritance
//! operations are not offered (`ENOSYS`; glibc uses them only for PI
//! mutexes).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rvisor_syscalls::abi::Timespec;
use rvisor_syscalls::Errno;

use super::{Addr, SysResult};
use crate::kernel::futex::Key;
use crate::kernel::Task;

const FUTEX_WAIT: i32 = 0;
const FUTEX_WAKE: i32 = 1;
const FUTEX_REQUEUE: i32 = 3;
const FUTEX_CMP_REQUEUE: i32 = 4;
const FUTEX_WAKE_OP: i32 = 5;
const FUTEX_WAIT_BITSET: i32 = 9;
const FUTEX_WAKE_BITSET: i32 = 10;
const FUTEX_PRIVATE_FLAG: i32 = 128;
const FUTEX_CLOCK_REALTIME: i32 = 256;

fn key(t: &Task, addr: Addr, private: bool) -> Result<Key, Errno> {
    if !addr.is_multiple_of(4) {
        return Err(Errno::EINVAL);
    }
    if !private {
        if let Some((dev, ino, off)) = t.mm.shared_file_offset(addr) {
            return Ok(Key::File(dev, ino, off));
        }
    }
    Ok(Key::Private(Arc::as_ptr(&t.mm) as usize, addr))
}

/// The deadline of a wait: `timeout` relative (`FUTEX_WAIT`) or absolute
/// on the chosen clock (`FUTEX_WAIT_BITSET`).
fn deadline(t: &Task, timeout: Addr, absolute: bool, realtime: bool) -> Result<Option<Instant>, Errno> {
    if timeout == 0 {
        return Ok(None);
    }
    let ts: Timespec = t.mm.read_obj(timeout)?;
    if ts.tv_sec < 0 || !(0..1_000_000_000).contains(&ts.tv_nsec) {
        return Err(Errno::EINVAL);
    }
    let d = Duration::new(ts.tv_sec.cast_unsigned(), u32::try_from(ts.tv_nsec).unwrap_or(0));
    if !absolute {
        return Ok(Some(Instant::now().checked_add(d).unwrap_or_else(far_future)));
    }
    let clock = if realtime { rustix::time::ClockId::Realtime } else { rustix::time::ClockId::Monotonic };
    let now = rustix::time::clock_gettime(clock);
    let now = Duration::new(now.tv_sec.cast_unsigned(), u32::try_from(now.tv_nsec).unwrap_or(0));
    let left = d.saturating_sub(now);
    Ok(Some(Instant::now().checked_add(left).unwrap_or_else(far_future)))
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

fn wait(t: &Task, addr: Addr, private: bool, val: u32, deadline: Option<Instant>, bitset: u32) -> SysResult {
    if bitset == 0 {
        return Err(Errno::EINVAL);
    }
    let k = key(t, addr, private)?;
    let ticket = {
        let mut q = t.kernel.futexes.lock();
        let cur: u32 = t.mm.read_obj(addr)?;
        if cur != val {
            return Err(Errno::EAGAIN);
        }
        q.enqueue(k, t.shared.clone(), bitset)
    };
    let r = t.block(|| ticket.woken(), deadline);
    if ticket.woken() {
        return Ok(0);
    }
    t.kernel.futexes.cancel(k, &ticket);
    match r {
        Ok(_) => Err(Errno::ETIMEDOUT),
        Err(e) => Err(if e == Errno::EINTR { Errno::ERESTARTSYS } else { e }),
    }
}

fn count(v: u32) -> usize {
    // A negative count (as an int) wakes everyone.
    usize::try_from(v.cast_signed()).unwrap_or(usize::MAX)
}

/// `FUTEX_WAKE_OP`'s operation on the old value of the second word and
/// its comparison.
fn wake_op(encoded: u32, old: u32) -> Result<(u32, bool), Errno> {
    let op = (encoded >> 28) & 7;
    let shift_arg = encoded & (8 << 28) != 0;
    let cmp = (encoded >> 24) & 15;
    let mut oparg = (encoded >> 12) & 0xfff;
    let cmparg = encoded & 0xfff;
    // Sign-extend the 12-bit fields, as Linux does.
    let sx = |v: u32| ((v << 20).cast_signed() >> 20).cast_unsigned();
    oparg = sx(oparg);
    let cmparg = sx(cmparg);
    if shift_arg {
        // Linux warns about shifts past 31 and masks them.
        oparg = 1 << (oparg & 31);
    }
    let new = match op {
        0 => oparg,
        1 => old.wrapping_add(oparg),
        2 => old | oparg,
        3 => old & !oparg,
        4 => old ^ oparg,
        _ => return Err(Errno::ENOSYS),
    };
    let (o, c) = (old.cast_signed(), cmparg.cast_signed());
    let hit = match cmp {
        0 => o == c,
        1 => o != c,
        2 => o < c,
        3 => o <= c,
        4 => o > c,
        5 => o >= c,
        _ => return Err(Errno::ENOSYS),
    };
    Ok((new, hit))
}

pub fn futex(
    t: &mut Task,
    addr: Addr,
    op: i32,
    val: u32,
    timeout: Addr,
    addr2: Addr,
    val3: u32,
) -> SysResult {
    let cmd = op & !(FUTEX_PRIVATE_FLAG | FUTEX_CLOCK_REALTIME);
    let realtime = op & FUTEX_CLOCK_REALTIME != 0;
    let private = op & FUTEX_PRIVATE_FLAG != 0;
    if realtime && cmd != FUTEX_WAIT && cmd != FUTEX_WAIT_BITSET {
        return Err(Errno::ENOSYS);
    }
    match cmd {
        FUTEX_WAIT => {
            let d = deadline(t, timeout, false, realtime)?;
            wait(t, addr, private, val, d, u32::MAX)
        }
        FUTEX_WAIT_BITSET => {
            let d = deadline(t, timeout, true, realtime)?;
            wait(t, addr, private, val, d, val3)
        }
        FUTEX_WAKE | FUTEX_WAKE_BITSET => {
            let bitset = if cmd == FUTEX_WAKE { u32::MAX } else { val3 };
            if bitset == 0 {
                return Err(Errno::EINVAL);
            }
            let k = key(t, addr, private)?;
            Ok(t.kernel.futexes.lock().wake(k, count(val), bitset) as u64)
        }
        FUTEX_REQUEUE | FUTEX_CMP_REQUEUE => {
            // The second count travels in the timeout argument.
            let n2 = count(u32::try_from(timeout & 0xffff_ffff).unwrap_or(0));
            let (k1, k2) = (key(t, addr, private)?, key(t, addr2, private)?);
            let mut q = t.kernel.futexes.lock();
            if cmd == FUTEX_CMP_REQUEUE {
                let cur: u32 = t.mm.read_obj(addr)?;
                if cur != val3 {
                    return Err(Errno::EAGAIN);
                }
            }
            Ok(q.requeue(k1, k2, count(val), n2) as u64)
        }
        FUTEX_WAKE_OP => {
            let n2 = count(u32::try_from(timeout & 0xffff_ffff).unwrap_or(0));
            let (k1, k2) = (key(t, addr, private)?, key(t, addr2, private)?);
            let mut q = t.kernel.futexes.lock();
            let old: u32 = t.mm.read_obj(addr2)?;
            let (new, hit) = wake_op(val3, old)?;
            t.mm.write_obj(addr2, &new)?;
            let mut n = q.wake(k1, count(val), u32::MAX);
            if hit {
                n += q.wake(k2, n2, u32::MAX);
            }
            Ok(n as u64)
        }
        // PI futexes (LOCK_PI, UNLOCK_PI, TRYLOCK_PI, WAIT_REQUEUE_PI,
        // CMP_REQUEUE_PI, LOCK_PI2) and anything else.
        _ => Err(Errno::ENOSYS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wake_op_decodes_like_linux() {
        // FUTEX_OP(FUTEX_OP_SET, 0, FUTEX_OP_CMP_GT, 1): glibc's
        // pthread_cond_signal of old.
        let enc = (4 << 24) | 1;
        assert_eq!(wake_op(enc, 5), Ok((0, true)));
        assert_eq!(wake_op(enc, 1), Ok((0, false)));
        // ADD with a shifted argument: old + (1 << 3).
        let enc = (1 << 28) | (8 << 28) | (3 << 12);
        assert_eq!(wake_op(enc, 1), Ok((9, false)), "1 == 0 is false");
        assert_eq!(wake_op(enc, 0), Ok((8, true)));
        // Negative 12-bit arguments are sign-extended.
        let enc = (1 << 28) | (0xfff << 12);
        assert_eq!(wake_op(enc, 5), Ok((4, false)));
        assert_eq!(wake_op(6 << 28, 0), Err(Errno::ENOSYS));
    }
}
