//! pidfds: descriptors naming a process (`pidfd_open`, `CLONE_PIDFD`).
//! Readable (for `poll`) once the process has exited; `waitid(P_PIDFD)`
//! waits for it.

use std::sync::Arc;

use rvisor_syscalls::abi::Stat;
use rvisor_syscalls::Errno;

use super::waitq::{events, WaitQueue};
use super::{Task, ThreadGroup};
use crate::vfs::file::oflags::{O_NONBLOCK, O_RDWR};
use crate::vfs::{File, FileOps};

/// A pidfd.
pub struct PidFd {
    tg: Arc<ThreadGroup>,
}

impl FileOps for PidFd {
    fn read(&self, _t: &Task, _f: &File, _buf: &mut [u8], _off: Option<u64>) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    fn write(&self, _t: &Task, _f: &File, _data: &[u8], _off: Option<u64>) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        // An anonymous inode, as Linux 6.1 has them.
        Ok(crate::vfs::file::anon_stat())
    }

    fn readiness(&self, _file: &File, mask: u32) -> u32 {
        if self.tg.task_count() == 0 {
            mask & (events::IN | events::RDNORM)
        } else {
            0
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.tg.exited)
    }

    fn pidfd_target(&self) -> Option<Arc<ThreadGroup>> {
        Some(self.tg.clone())
    }

    fn anon_name(&self) -> Option<&'static str> {
        Some("[pidfd]")
    }
}

/// A pidfd of `tg`; `flags` may hold `O_NONBLOCK`.
pub fn open(tg: &Arc<ThreadGroup>, flags: u32) -> Arc<File> {
    File::new(Box::new(PidFd { tg: tg.clone() }), O_RDWR | (flags & O_NONBLOCK))
}
