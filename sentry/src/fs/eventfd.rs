//! eventfd: a 64-bit counter as a file (`eventfd`, `eventfd2`).
//!
//! As Linux's `fs/eventfd.c`: a read takes the whole count (or 1, with
//! `EFD_SEMAPHORE`) and waits while it is 0; a write adds, and waits while
//! the sum would pass `u64::MAX - 1`; both move 8 bytes exactly.

use std::sync::Mutex;

use rvisor_syscalls::abi::Stat;
use rvisor_syscalls::Errno;

use crate::kernel::waitq::{events, WaitQueue};
use crate::kernel::Task;
use crate::vfs::file::oflags::{O_NONBLOCK, O_RDWR};
use crate::vfs::{File, FileOps};

/// `EFD_SEMAPHORE`.
pub const EFD_SEMAPHORE: u32 = 1;
const MAX: u64 = u64::MAX - 1;

/// An eventfd.
pub struct EventFd {
    count: Mutex<u64>,
    semaphore: bool,
    queue: WaitQueue,
}

impl EventFd {
    fn lock(&self) -> std::sync::MutexGuard<'_, u64> {
        self.count.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FileOps for EventFd {
    fn read(&self, t: &Task, file: &File, buf: &mut [u8], _off: Option<u64>) -> Result<usize, Errno> {
        if buf.len() < 8 {
            return Err(Errno::EINVAL);
        }
        let _reg = (!file.nonblocking()).then(|| self.queue.register(&t.shared, events::IN));
        loop {
            {
                let mut c = self.lock();
                if *c > 0 {
                    let v = if self.semaphore { 1 } else { *c };
                    *c -= v;
                    drop(c);
                    buf[..8].copy_from_slice(&v.to_ne_bytes());
                    self.queue.notify_events(events::OUT);
                    return Ok(8);
                }
            }
            if file.nonblocking() {
                return Err(Errno::EAGAIN);
            }
            t.wait_kick(None).map_err(|_| Errno::ERESTARTSYS)?;
        }
    }

    fn write(&self, t: &Task, file: &File, data: &[u8], _off: Option<u64>) -> Result<usize, Errno> {
        let Some(bytes) = data.get(..8) else { return Err(Errno::EINVAL) };
        let v = u64::from_ne_bytes(bytes.try_into().map_err(|_| Errno::EINVAL)?);
        if v == u64::MAX {
            return Err(Errno::EINVAL);
        }
        let _reg = (!file.nonblocking()).then(|| self.queue.register(&t.shared, events::OUT));
        loop {
            {
                let mut c = self.lock();
                if MAX - *c >= v {
                    *c += v;
                    drop(c);
                    // Linux wakes readers even for a write of 0.
                    self.queue.notify_events(events::IN);
                    return Ok(8);
                }
            }
            if file.nonblocking() {
                return Err(Errno::EAGAIN);
            }
            t.wait_kick(None).map_err(|_| Errno::ERESTARTSYS)?;
        }
    }

    fn stat(&self) -> Result<Stat, Errno> {
        // An anonymous inode, as Linux has them.
        Ok(crate::vfs::file::anon_stat())
    }

    fn readiness(&self, _file: &File, mask: u32) -> u32 {
        let c = *self.lock();
        let mut r = 0;
        if c > 0 {
            r |= events::IN | events::RDNORM;
        }
        if c < MAX {
            r |= events::OUT | events::WRNORM;
        }
        r & mask
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.queue)
    }

    fn anon_name(&self) -> Option<&'static str> {
        Some("[eventfd]")
    }
}

/// A new eventfd counting from `initval`; `flags` may hold `O_NONBLOCK`
/// and [`EFD_SEMAPHORE`].
pub fn new(initval: u32, flags: u32) -> std::sync::Arc<File> {
    let ops = EventFd {
        count: Mutex::new(u64::from(initval)),
        semaphore: flags & EFD_SEMAPHORE != 0,
        queue: WaitQueue::default(),
    };
    File::new(Box::new(ops), O_RDWR | (flags & O_NONBLOCK))
}
