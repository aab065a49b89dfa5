//! Directory files: `getdents64` over an inode's `readdir`, with cookies.

use std::sync::Mutex;

use rvisor_syscalls::Errno;

use super::file::{File, FileOps};
use super::inode::{DirEntry, InodeRef};
use crate::kernel::Task;

/// Bytes a `linux_dirent64` record for `name` takes.
pub fn dirent_size(name: &[u8]) -> usize {
    (19 + name.len() + 1).div_ceil(8) * 8
}

/// An open directory.
pub struct DirFile {
    inode: InodeRef,
    state: Mutex<DirState>,
}

struct DirState {
    /// Cookie of the next entry to return.
    cookie: u64,
    /// Entries fetched and not yet returned: (entry, cookie after it).
    pending: Vec<(DirEntry, u64)>,
    done: bool,
}

impl DirFile {
    /// A directory file over `inode`.
    pub fn new(inode: InodeRef) -> DirFile {
        DirFile { inode, state: Mutex::new(DirState { cookie: 0, pending: Vec::new(), done: false }) }
    }
}

impl FileOps for DirFile {
    fn read(&self, _t: &Task, _f: &File, _b: &mut [u8], _o: Option<u64>) -> Result<usize, Errno> {
        Err(Errno::EISDIR)
    }

    fn write(&self, _t: &Task, _f: &File, _d: &[u8], _o: Option<u64>) -> Result<usize, Errno> {
        Err(Errno::EISDIR)
    }

    fn seek(&self, off: i64, whence: u32) -> Result<u64, Errno> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let to = match whence {
            0 => u64::try_from(off).map_err(|_| Errno::EINVAL)?,
            1 if off == 0 => return Ok(st.cookie),
            _ => return Err(Errno::EINVAL),
        };
        *st = DirState { cookie: to, pending: Vec::new(), done: false };
        Ok(to)
    }

    fn getdents(&self, max: usize) -> Result<Vec<(DirEntry, u64)>, Errno> {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = Vec::new();
        let mut used = 0;
        loop {
            if st.pending.is_empty() {
                if st.done {
                    break;
                }
                let batch = self.inode.readdir(st.cookie)?;
                if batch.is_empty() {
                    st.done = true;
                    break;
                }
                st.pending = batch;
                st.pending.reverse();
            }
            let Some((e, next)) = st.pending.last() else { break };
            let size = dirent_size(&e.name);
            if used + size > max {
                if out.is_empty() {
                    return Err(Errno::EINVAL);
                }
                break;
            }
            used += size;
            st.cookie = *next;
            if let Some(x) = st.pending.pop() {
                out.push(x);
            }
        }
        Ok(out)
    }

    fn fsync(&self) -> Result<(), Errno> {
        self.inode.fsync()
    }
}
