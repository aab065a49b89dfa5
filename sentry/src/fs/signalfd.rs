//! signalfd: pending signals read from a file (`signalfd`, `signalfd4`).
//!
//! As Linux's `fs/signalfd.c`, a read takes signals of the file's mask
//! from the *reading* thread's pending signals and its process's, as
//! `sigtimedwait` would, and returns them as `signalfd_siginfo` records;
//! readiness is likewise the caller's. Every signal queued in the sandbox
//! wakes the tasks waiting on a signalfd (they look again).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};

use rvisor_syscalls::abi::Stat;
use rvisor_syscalls::Errno;

use crate::kernel::signal::{Siginfo, UNBLOCKABLE};
use crate::kernel::waitq::{events, WaitQueue};
use crate::kernel::{Task, TaskShared};
use crate::vfs::file::oflags::{O_NONBLOCK, O_RDWR};
use crate::vfs::{File, FileOps};

/// Size of `struct signalfd_siginfo`.
pub const RECORD: usize = 128;

/// Tasks waiting on any signalfd of the sandbox.
static QUEUE: LazyLock<WaitQueue> = LazyLock::new(WaitQueue::default);

/// A signal was queued somewhere in the sandbox.
pub fn signal_queued() {
    if QUEUE.has_waiters() {
        QUEUE.notify_events(events::IN);
    }
}

/// A signalfd.
pub struct SignalFd {
    mask: AtomicU64,
}

impl SignalFd {
    /// Replaces the mask (`signalfd` on an existing descriptor).
    pub fn set_mask(&self, mask: u64) {
        self.mask.store(mask & !UNBLOCKABLE, Ordering::Relaxed);
        signal_queued();
    }

    fn mask(&self) -> u64 {
        self.mask.load(Ordering::Relaxed)
    }
}

fn pending_for(t: &TaskShared, mask: u64) -> bool {
    (t.pending().bits() | t.tg.pending().bits()) & mask != 0
}

/// `signalfd_siginfo` of `i`, after Linux's `signalfd_copyinfo` and
/// `siginfo_layout`.
pub fn record(i: &Siginfo) -> [u8; RECORD] {
    const SI_USER: i32 = 0;
    const SI_KERNEL: i32 = 0x80;
    const SI_TIMER: i32 = -2;
    const SI_SIGIO: i32 = -5;
    let mut r = [0u8; RECORD];
    let mut put = |off: usize, bytes: &[u8]| r[off..off + bytes.len()].copy_from_slice(bytes);
    put(0, &i.signo.to_le_bytes());
    put(4, &i.errno.to_le_bytes());
    put(8, &i.code.to_le_bytes());
    let f = &i.fields;
    let lo = |w: u64| u32::try_from(w & 0xffff_ffff).unwrap_or(0);
    let hi = |w: u64| u32::try_from(w >> 32).unwrap_or(0);
    let fault = matches!(i.signo, 4 | 5 | 7 | 8 | 11);
    if i.code > SI_USER && i.code < SI_KERNEL && (fault || i.signo == 17 || i.signo == 29 || i.signo == 31) {
        match i.signo {
            // SIGCHLD: pid, uid, status, utime, stime.
            17 => {
                put(12, &lo(f[0]).to_le_bytes());
                put(16, &hi(f[0]).to_le_bytes());
                put(40, &lo(f[1]).to_le_bytes());
                put(56, &f[2].to_le_bytes());
                put(64, &f[3].to_le_bytes());
            }
            // SIGPOLL: band, fd.
            29 => {
                put(28, &lo(f[0]).to_le_bytes());
                put(20, &lo(f[1]).to_le_bytes());
            }
            // SIGSYS: call address, number, arch.
            31 => {
                put(88, &f[0].to_le_bytes());
                put(84, &lo(f[1]).to_le_bytes());
                put(96, &hi(f[1]).to_le_bytes());
            }
            // Faults: the address.
            _ => put(72, &f[0].to_le_bytes()),
        }
    } else if i.code == SI_TIMER {
        put(24, &lo(f[0]).to_le_bytes());
        put(32, &hi(f[0]).to_le_bytes());
        put(48, &f[1].to_le_bytes());
        put(44, &lo(f[1]).to_le_bytes());
    } else if i.code == SI_SIGIO {
        put(28, &lo(f[0]).to_le_bytes());
        put(20, &lo(f[1]).to_le_bytes());
    } else {
        // SI_USER, SI_KERNEL, SI_TKILL, SI_QUEUE…: pid and uid; the
        // queued value for the negative codes.
        put(12, &lo(f[0]).to_le_bytes());
        put(16, &hi(f[0]).to_le_bytes());
        if i.code < 0 {
            put(48, &f[1].to_le_bytes());
            put(44, &lo(f[1]).to_le_bytes());
        }
    }
    r
}

impl FileOps for SignalFd {
    fn read(&self, t: &Task, file: &File, buf: &mut [u8], _off: Option<u64>) -> Result<usize, Errno> {
        let room = buf.len() / RECORD;
        if room == 0 {
            return Err(Errno::EINVAL);
        }
        let _reg = (!file.nonblocking()).then(|| QUEUE.register(&t.shared, events::IN));
        loop {
            let mask = self.mask();
            let mut n = 0;
            while n < room {
                let Some(mut i) = t.shared.take_signal(mask).or_else(|| t.tg().take_signal(mask)) else {
                    break;
                };
                crate::kernel::timers::delivered(t.tg(), &mut i);
                buf[n * RECORD..(n + 1) * RECORD].copy_from_slice(&record(&i));
                n += 1;
            }
            if n > 0 {
                return Ok(n * RECORD);
            }
            if file.nonblocking() {
                return Err(Errno::EAGAIN);
            }
            t.wait_kick(None).map_err(|_| Errno::ERESTARTSYS)?;
        }
    }

    fn write(&self, _t: &Task, _f: &File, _data: &[u8], _off: Option<u64>) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(crate::vfs::file::anon_stat())
    }

    fn readiness(&self, _file: &File, mask: u32) -> u32 {
        let ready = crate::kernel::current_task().is_some_and(|t| pending_for(&t, self.mask()));
        if ready {
            mask & (events::IN | events::RDNORM)
        } else {
            0
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&QUEUE)
    }

    fn anon_name(&self) -> Option<&'static str> {
        Some("[signalfd]")
    }

    fn signalfd(&self) -> Option<&SignalFd> {
        Some(self)
    }
}

/// A new signalfd for `mask`; `flags` may hold `O_NONBLOCK`.
pub fn new(mask: u64, flags: u32) -> Arc<File> {
    File::new(Box::new(SignalFd { mask: AtomicU64::new(mask & !UNBLOCKABLE) }), O_RDWR | (flags & O_NONBLOCK))
}
