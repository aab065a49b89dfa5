//! `futex`: wait, wake, bitsets, requeue, wake-op. Priority-inheritance
//! operations are not offered (`ENOSYS`; glibc uses them only for PI
//! mutexes).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvisor_syscalls::abi::Timespec;
use rvisor_syscalls::Errno;

use super::{Addr, SysResult};
use crate::kernel::futex::Key;
use crate::kernel::task::RestartBlock;
use crate::kernel::Task;

const FUTEX_WAIT: i32 = 0;
const FUTEX_WAKE: i32 = 1;
const FUTEX_REQUEUE: i32 = 3;
const FUTEX_CMP_REQUEUE: i32 = 4;
const FUTEX_WAKE_OP: i32 = 5;
const FUTEX_WAIT_BITSET: i32 = 9;
const FUTEX_WAKE_BITSET: i32 = 10;
const FUTEX_LOCK_PI: i32 = 6;
const FUTEX_UNLOCK_PI: i32 = 7;
const FUTEX_TRYLOCK_PI: i32 = 8;
const FUTEX_LOCK_PI2: i32 = 13;
const FUTEX_PRIVATE_FLAG: i32 = 128;

/// How often a futex word changed under a compare-and-swap is retried
/// before giving up: the futex queues are locked meanwhile, and an
/// application flipping the word from another thread must not hold them.
const CMPXCHG_TRIES: usize = 1000;

/// The owner's thread id in a PI futex word.
const FUTEX_TID_MASK: u32 = 0x3fff_ffff;
/// Someone waits in the kernel: unlocking must go through it.
const FUTEX_WAITERS: u32 = 0x8000_0000;
/// The owner died holding it (robust futexes).
const FUTEX_OWNER_DIED: u32 = 0x4000_0000;
const FUTEX_CLOCK_REALTIME: i32 = 256;

pub(crate) fn key(t: &Task, addr: Addr, private: bool) -> Result<Key, Errno> {
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
    // The sandbox's clock, which the application reads too.
    let now = super::time::now(if realtime { 0 } else { 1 })?;
    let now = Duration::new(now.tv_sec.cast_unsigned(), u32::try_from(now.tv_nsec).unwrap_or(0));
    let left = d.saturating_sub(now);
    Ok(Some(Instant::now().checked_add(left).unwrap_or_else(far_future)))
}

fn far_future() -> Instant {
    Instant::now() + Duration::from_secs(100 * 365 * 24 * 3600)
}

pub(crate) fn wait(
    t: &mut Task,
    addr: Addr,
    private: bool,
    val: u32,
    deadline: Option<Instant>,
    bitset: u32,
) -> SysResult {
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
    match (r, deadline) {
        (Ok(_), _) => Err(Errno::ETIMEDOUT),
        // Interrupted: a timed wait ends with EINTR if a handler runs
        // (whatever SA_RESTART says) and otherwise goes on to the same
        // deadline; an untimed one restarts as SA_RESTART says.
        (Err(e), Some(deadline)) if e == Errno::EINTR => {
            t.restart_block = Some(RestartBlock::FutexWait { addr, private, val, deadline, bitset });
            Err(Errno::ERESTART_RESTARTBLOCK)
        }
        (Err(e), _) => Err(if e == Errno::EINTR { Errno::ERESTARTSYS } else { e }),
    }
}

/// What one attempt at taking a PI futex found.
enum PiTry {
    /// The caller owns it now.
    Taken,
    /// Thread `.0` owns it (the waiters bit is now set, so that the
    /// owner's unlock comes to the kernel).
    Owned(u32),
}

/// One attempt at taking PI futex `addr` for the caller. A waiter whose
/// owner `dead` ended without releasing it takes it over (Linux's
/// `exit_pi_state_list` hands the futex to its first waiter, which finds
/// `FUTEX_OWNER_DIED` set). Called with the futex queues locked.
fn try_take_pi(
    t: &Task,
    addr: Addr,
    key: Key,
    q: &crate::kernel::futex::Locked<'_>,
    first: bool,
    dead: u32,
) -> Result<PiTry, Errno> {
    let me = t.tid().cast_unsigned() & FUTEX_TID_MASK;
    let waiters = if q.has_waiters(key) { FUTEX_WAITERS } else { 0 };
    for _ in 0..CMPXCHG_TRIES {
        let cur = t.mm.atomic_u32(addr, |w| w.load(Ordering::SeqCst))?;
        let owner = cur & FUTEX_TID_MASK;
        let (new, taken) = if owner == 0 {
            // Free (or its owner died and it was released): ours.
            ((cur & FUTEX_OWNER_DIED) | me | waiters, true)
        } else if owner == me {
            // Handed to us by an unlock (or a deadlock on the first try).
            return if first { Err(Errno::EDEADLK) } else { Ok(PiTry::Taken) };
        } else if dead != 0 && owner == dead && cur & FUTEX_OWNER_DIED == 0 {
            // As Linux's fixup_pi_state_owner: an owner that is gone
            // leaves FUTEX_OWNER_DIED behind.
            ((cur & FUTEX_WAITERS) | FUTEX_OWNER_DIED | me | waiters, true)
        } else if cur & FUTEX_OWNER_DIED == 0
            && i32::try_from(owner).ok().and_then(|o| t.kernel.task(o)).is_none()
        {
            return Err(Errno::ESRCH);
        } else if cur & FUTEX_WAITERS != 0 {
            return Ok(PiTry::Owned(owner));
        } else {
            (cur | FUTEX_WAITERS, false)
        };
        let swapped =
            t.mm.atomic_u32(addr, |w| w.compare_exchange(cur, new, Ordering::SeqCst, Ordering::SeqCst))?;
        if swapped.is_ok() {
            return Ok(if taken { PiTry::Taken } else { PiTry::Owned(owner) });
        }
    }
    Err(Errno::EAGAIN)
}

/// `FUTEX_LOCK_PI`, `FUTEX_LOCK_PI2`, `FUTEX_TRYLOCK_PI`. Priorities are
/// not inherited (the sentry does not schedule by priority); ownership,
/// hand-over on unlock, `EDEADLK`, `ESRCH` and dead owners are Linux's.
fn lock_pi(t: &Task, addr: Addr, private: bool, deadline: Option<Instant>, try_only: bool) -> SysResult {
    let k = key(t, addr, private)?;
    let mut first = true;
    let mut dead = 0;
    loop {
        let ticket = {
            let mut q = t.kernel.futexes.lock();
            let owner = match try_take_pi(t, addr, k, &q, first, dead)? {
                PiTry::Taken => return Ok(0),
                PiTry::Owned(owner) => owner,
            };
            if try_only {
                return Err(Errno::EAGAIN);
            }
            q.enqueue_pi(k, t.shared.clone(), owner)
        };
        first = false;
        let r = t.block(|| ticket.woken(), deadline);
        if ticket.woken() {
            // Handed over (the word names us), or the owner died: try again.
            dead = ticket.dead_owner();
            continue;
        }
        t.kernel.futexes.cancel(k, &ticket);
        // Handed over just as the wait ended?
        let me = t.tid().cast_unsigned() & FUTEX_TID_MASK;
        if t.mm.atomic_u32(addr, |w| w.load(Ordering::SeqCst))? & FUTEX_TID_MASK == me {
            return Ok(0);
        }
        return match r {
            Ok(_) => Err(Errno::ETIMEDOUT),
            // Restarted whatever the handler says, as Linux does.
            Err(_) => Err(Errno::ERESTARTNOINTR),
        };
    }
}

/// `FUTEX_UNLOCK_PI`: the caller must own it; the first waiter becomes
/// the owner, else it is free.
fn unlock_pi(t: &Task, addr: Addr, private: bool) -> SysResult {
    let k = key(t, addr, private)?;
    let me = t.tid().cast_unsigned() & FUTEX_TID_MASK;
    let mut q = t.kernel.futexes.lock();
    for _ in 0..CMPXCHG_TRIES {
        let cur = t.mm.atomic_u32(addr, |w| w.load(Ordering::SeqCst))?;
        if cur & FUTEX_TID_MASK != me {
            return Err(Errno::EPERM);
        }
        let next = q.first_waiter(k);
        // As Linux's wake_futex_pi, the new owner gets the word with the
        // waiters bit set: its unlock comes to the kernel, which knows
        // whether anyone else waits.
        let new = next.map_or(0, |tid| (tid.cast_unsigned() & FUTEX_TID_MASK) | FUTEX_WAITERS);
        let swapped =
            t.mm.atomic_u32(addr, |w| w.compare_exchange(cur, new, Ordering::SeqCst, Ordering::SeqCst))?;
        if swapped.is_ok() {
            if next.is_some() {
                q.wake(k, 1, u32::MAX);
            }
            return Ok(0);
        }
    }
    Err(Errno::EAGAIN)
}

/// Linux's `exit_robust_list`: at a thread's end (or `execve`), every
/// futex on its robust list that it still owns is marked
/// `FUTEX_OWNER_DIED` and one waiter woken. The list is the application's
/// (hostile input): walked at most 2048 entries, stopping at any fault.
pub fn exit_robust_list(t: &Task) {
    const LIMIT: usize = 2048;
    let (head, len) = t.robust_list;
    if head == 0 || len != 24 {
        return;
    }
    let Ok([first, offset, pending]) = t.mm.read_obj::<[u64; 3]>(head) else { return };
    let futex_at = |entry: u64| (entry & !1).wrapping_add(offset);
    let mut entry = first;
    let mut n = 0;
    while entry != head && n < LIMIT {
        let Ok(next) = t.mm.read_obj::<u64>(entry & !1) else { return };
        if entry != pending && futex_death(t, futex_at(entry), entry & 1 != 0, false).is_err() {
            return;
        }
        entry = next;
        n += 1;
    }
    if pending != 0 {
        let _ = futex_death(t, futex_at(pending), pending & 1 != 0, true);
    }
}

/// Linux's `handle_futex_death` for the futex word at `addr`.
fn futex_death(t: &Task, addr: Addr, pi: bool, pending_op: bool) -> Result<(), Errno> {
    let me = t.tid().cast_unsigned() & FUTEX_TID_MASK;
    let k = key(t, addr, false)?;
    let mut q = t.kernel.futexes.lock();
    for _ in 0..CMPXCHG_TRIES {
        let cur = t.mm.atomic_u32(addr, |w| w.load(Ordering::SeqCst))?;
        if pending_op && !pi && cur == 0 {
            // Died between taking it in user space and listing it.
            q.wake(k, 1, u32::MAX);
            return Ok(());
        }
        if cur & FUTEX_TID_MASK != me {
            return Ok(());
        }
        let new = (cur & FUTEX_WAITERS) | FUTEX_OWNER_DIED;
        let swapped =
            t.mm.atomic_u32(addr, |w| w.compare_exchange(cur, new, Ordering::SeqCst, Ordering::SeqCst))?;
        if swapped.is_ok() {
            if cur & FUTEX_WAITERS != 0 {
                q.wake(k, 1, u32::MAX);
            }
            return Ok(());
        }
    }
    // The word kept changing: left as it is.
    Ok(())
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
        FUTEX_LOCK_PI | FUTEX_LOCK_PI2 => {
            // LOCK_PI's timeout is absolute on CLOCK_REALTIME; LOCK_PI2's
            // on CLOCK_MONOTONIC unless FUTEX_CLOCK_REALTIME.
            let d = deadline(t, timeout, true, realtime || cmd == FUTEX_LOCK_PI)?;
            lock_pi(t, addr, private, d, false)
        }
        FUTEX_TRYLOCK_PI => lock_pi(t, addr, private, None, true),
        FUTEX_UNLOCK_PI => unlock_pi(t, addr, private),
        // WAIT_REQUEUE_PI, CMP_REQUEUE_PI (glibc's condition variables no
        // longer use them) and anything else.
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
