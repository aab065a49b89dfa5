//! Following a magic link to an open file outside the VFS: opening
//! `/proc/PID/fd/N` (`/dev/stdin`, `/dev/fd/63` of a shell's process
//! substitution) of a pipe opens the pipe again, as Linux does; of host
//! stdio, the same host file. Other files outside the VFS (sockets, event
//! files) cannot be opened this way: `ENXIO`.

use std::sync::{Arc, Weak};

use rvisor_syscalls::Errno;

use crate::kernel::Task;
use crate::vfs::file::{File, FileOps, O_ACCMODE, O_NONBLOCK};
use crate::vfs::inode::{Inode, InodeAttr, InodeRef};
use crate::vfs::Path;

/// The node a magic link to `file` leads to.
pub struct ReopenNode {
    file: Weak<File>,
}

impl ReopenNode {
    /// A node for `file`.
    pub fn node(file: &Arc<File>) -> InodeRef {
        Arc::new(ReopenNode { file: Arc::downgrade(file) })
    }
}

impl Inode for ReopenNode {
    fn attr(&self) -> Result<InodeAttr, Errno> {
        Ok(InodeAttr::from_stat(&self.file.upgrade().ok_or(Errno::ENOENT)?.stat()?))
    }

    fn open(&self, _flags: u32) -> Result<Box<dyn FileOps>, Errno> {
        Err(Errno::ENXIO)
    }

    fn cacheable(&self) -> bool {
        false
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Opens `p` when it is a [`ReopenNode`] (`None` otherwise).
pub fn open(_t: &Task, p: &Path, flags: u32) -> Option<Result<Arc<File>, Errno>> {
    let node = p.inode().as_any().downcast_ref::<ReopenNode>()?;
    Some((|| {
        let file = node.file.upgrade().ok_or(Errno::ENOENT)?;
        let acc = flags & O_ACCMODE;
        if acc == O_ACCMODE {
            return Err(Errno::EINVAL);
        }
        if let Some(pipe) = file.ops().pipe() {
            let extra = flags & (O_NONBLOCK | crate::vfs::file::oflags::O_DIRECT);
            return Ok(pipe.end(acc, extra, Some(p.clone())));
        }
        let ops = file.ops().reopen().ok_or(Errno::ENXIO)??;
        let status = flags & !(crate::vfs::file::oflags::O_CREAT | crate::vfs::file::oflags::O_EXCL);
        Ok(File::with_path(ops, status & !crate::vfs::file::oflags::O_CLOEXEC, p.clone()))
    })())
}
