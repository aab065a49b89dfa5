//! timerfd: a timer whose expiries are read from a file
//! (`timerfd_create`, `timerfd_settime`, `timerfd_gettime`).
//!
//! The timer is one of the sandbox's interval timers (`kernel::timers`,
//! served by its timer thread) that counts expiries into the file instead
//! of sending a signal; the file belongs to no process, so it keeps
//! running for whoever holds it.

use std::sync::{Arc, Mutex};

use rvisor_syscalls::abi::Stat;
use rvisor_syscalls::Errno;

use crate::kernel::timers::{ExpirySink, Kind, Timer};
use crate::kernel::waitq::{events, WaitQueue};
use crate::kernel::Task;
use crate::vfs::file::oflags::{O_NONBLOCK, O_RDWR};
use crate::vfs::{File, FileOps};

/// Expiries not yet read, and the queue of those waiting for them.
#[derive(Debug, Default)]
pub struct Counter {
    ticks: Mutex<u64>,
    queue: WaitQueue,
}

impl Counter {
    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.ticks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Forgets expiries not yet read (a new setting, as Linux's
    /// `timerfd_setup`).
    pub fn reset(&self) {
        *self.lock() = 0;
    }
}

impl ExpirySink for Counter {
    fn expired(&self, n: u64) {
        {
            let mut t = self.lock();
            *t = t.saturating_add(n);
        }
        self.queue.notify_events(events::IN);
    }
}

/// A timerfd.
pub struct TimerFd {
    /// The timer (its clock is the file's).
    pub timer: Arc<Timer>,
    counter: Arc<Counter>,
}

impl TimerFd {
    /// See [`Counter::reset`].
    pub fn reset(&self) {
        self.counter.reset();
    }
}

impl FileOps for TimerFd {
    fn read(&self, t: &Task, file: &File, buf: &mut [u8], _off: Option<u64>) -> Result<usize, Errno> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        let _reg = (!file.nonblocking()).then(|| self.counter.queue.register(&t.shared, events::IN));
        loop {
            {
                let mut c = self.counter.lock();
                if *c > 0 {
                    buf[..8].copy_from_slice(&c.to_ne_bytes());
                    *c = 0;
                    return Ok(8);
                }
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
        if *self.counter.lock() > 0 {
            mask & (events::IN | events::RDNORM)
        } else {
            0
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.counter.queue)
    }

    fn anon_name(&self) -> Option<&'static str> {
        Some("[timerfd]")
    }

    fn timerfd(&self) -> Option<&TimerFd> {
        Some(self)
    }
}

/// A disarmed timerfd on clock `clock`; `flags` may hold `O_NONBLOCK`.
pub fn new(clock: i32, flags: u32) -> Arc<File> {
    let counter = Arc::new(Counter::default());
    let sink: Arc<dyn ExpirySink> = counter.clone();
    let timer = Timer::detached(Kind::Fd { clock, sink: Arc::downgrade(&sink) });
    File::new(Box::new(TimerFd { timer, counter }), O_RDWR | (flags & O_NONBLOCK))
}
