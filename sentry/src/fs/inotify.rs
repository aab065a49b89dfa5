//! inotify, for changes made inside the sandbox (after Linux's
//! `fs/notify/inotify`).
//!
//! Watches are kept per file, by the (device, inode) pair the sandbox
//! reports; the file-system calls tell this module what they changed
//! ([`notify`] and the helpers below), which queues events on the
//! instances watching the file or its directory. Changes the host makes
//! to files are not seen (the sandbox does not watch the host).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use rvisor_syscalls::abi::Stat;
use rvisor_syscalls::Errno;

use crate::kernel::waitq::{events, WaitQueue};
use crate::kernel::Task;
use crate::vfs::file::oflags::{O_NONBLOCK, O_RDONLY};
use crate::vfs::{File, FileOps, Path};

/// Event bits.
#[allow(missing_docs)]
pub mod bits {
    pub const ACCESS: u32 = 0x1;
    pub const MODIFY: u32 = 0x2;
    pub const ATTRIB: u32 = 0x4;
    pub const CLOSE_WRITE: u32 = 0x8;
    pub const CLOSE_NOWRITE: u32 = 0x10;
    pub const OPEN: u32 = 0x20;
    pub const MOVED_FROM: u32 = 0x40;
    pub const MOVED_TO: u32 = 0x80;
    pub const CREATE: u32 = 0x100;
    pub const DELETE: u32 = 0x200;
    pub const DELETE_SELF: u32 = 0x400;
    pub const MOVE_SELF: u32 = 0x800;
    pub const Q_OVERFLOW: u32 = 0x4000;
    pub const IGNORED: u32 = 0x8000;
    pub const ONLYDIR: u32 = 0x0100_0000;
    pub const DONT_FOLLOW: u32 = 0x0200_0000;
    pub const EXCL_UNLINK: u32 = 0x0400_0000;
    pub const MASK_CREATE: u32 = 0x1000_0000;
    pub const MASK_ADD: u32 = 0x2000_0000;
    pub const ISDIR: u32 = 0x4000_0000;
    pub const ONESHOT: u32 = 0x8000_0000;
    pub const ALL_EVENTS: u32 = 0xfff;
}
use bits::*;

/// `fs.inotify.max_queued_events`.
pub const MAX_QUEUED: usize = 16384;
/// Most watches the sandbox may have (`fs.inotify.max_user_watches`):
/// `ENOSPC` beyond.
pub const MAX_WATCHES: usize = 65536;
/// `sizeof(struct inotify_event)`.
const HEADER: usize = 16;

type Key = (u64, u64);

struct Watch {
    wd: i32,
    mask: AtomicU32,
    key: Key,
    owner: Weak<Inner>,
}

/// Every watch of the sandbox, by the file watched.
static WATCHES: LazyLock<Mutex<HashMap<Key, Vec<Arc<Watch>>>>> = LazyLock::new(Mutex::default);
/// How many watches exist: 0 lets the file-system calls skip all this.
static ACTIVE: AtomicUsize = AtomicUsize::new(0);

fn watches() -> MutexGuard<'static, HashMap<Key, Vec<Arc<Watch>>>> {
    WATCHES.lock().unwrap_or_else(|p| p.into_inner())
}

#[derive(Clone, PartialEq, Eq)]
struct Event {
    wd: i32,
    mask: u32,
    cookie: u32,
    name: Vec<u8>,
}

impl Event {
    /// Bytes in a read: the header and the name, NUL-padded to 16.
    fn size(&self) -> usize {
        HEADER + self.padded()
    }

    fn padded(&self) -> usize {
        if self.name.is_empty() {
            0
        } else {
            (self.name.len() + 1).div_ceil(HEADER) * HEADER
        }
    }
}

#[derive(Default)]
struct State {
    events: VecDeque<Event>,
    bytes: usize,
    next_wd: i32,
    by_wd: HashMap<i32, Arc<Watch>>,
}

struct Inner {
    st: Mutex<State>,
    queue: WaitQueue,
}

impl Inner {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.st.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues `e` (merged with an identical last event, as Linux does;
    /// an overflow event once the queue is full).
    fn push(&self, e: Event) {
        {
            let mut st = self.lock();
            if st.events.back() == Some(&e) {
                return;
            }
            if st.events.len() >= MAX_QUEUED {
                let o = Event { wd: -1, mask: Q_OVERFLOW, cookie: 0, name: Vec::new() };
                if st.events.back() != Some(&o) {
                    st.bytes += o.size();
                    st.events.push_back(o);
                }
            } else {
                st.bytes += e.size();
                st.events.push_back(e);
            }
        }
        self.queue.notify_events(events::IN);
    }
}

/// An inotify instance.
pub struct Inotify {
    inner: Arc<Inner>,
}

impl Drop for Inotify {
    fn drop(&mut self) {
        let ws: Vec<Arc<Watch>> = self.inner.lock().by_wd.drain().map(|(_, w)| w).collect();
        for w in ws {
            forget(&w);
        }
    }
}

/// Removes `w` from the global table.
fn forget(w: &Arc<Watch>) {
    let mut t = watches();
    if let Some(v) = t.get_mut(&w.key) {
        let before = v.len();
        v.retain(|x| !Arc::ptr_eq(x, w));
        ACTIVE.fetch_sub(before - v.len(), Ordering::Relaxed);
        if v.is_empty() {
            t.remove(&w.key);
        }
    }
}

/// The (dev, ino) a path is watched under.
fn key_of(p: &Path) -> Option<Key> {
    p.attr().ok().map(|a| (a.dev, a.ino))
}

impl Inotify {
    /// `inotify_add_watch` of the file at `p` (its attributes checked by
    /// the caller): returns the watch descriptor.
    pub fn add_watch(&self, p: &Path, mask: u32) -> Result<i32, Errno> {
        let key = key_of(p).ok_or(Errno::ENOENT)?;
        let mut st = self.inner.lock();
        let existing = st.by_wd.values().find(|w| w.key == key).cloned();
        let events = mask & (ALL_EVENTS | ONESHOT | EXCL_UNLINK);
        if let Some(w) = existing {
            if mask & MASK_CREATE != 0 {
                return Err(Errno::EEXIST);
            }
            if mask & MASK_ADD != 0 {
                w.mask.fetch_or(events, Ordering::Relaxed);
            } else {
                w.mask.store(events, Ordering::Relaxed);
            }
            return Ok(w.wd);
        }
        if ACTIVE.load(Ordering::Relaxed) >= MAX_WATCHES {
            return Err(Errno::ENOSPC);
        }
        st.next_wd = st.next_wd.checked_add(1).ok_or(Errno::ENOSPC)?;
        let wd = st.next_wd;
        let w = Arc::new(Watch { wd, mask: AtomicU32::new(events), key, owner: Arc::downgrade(&self.inner) });
        st.by_wd.insert(wd, w.clone());
        drop(st);
        watches().entry(key).or_default().push(w);
        ACTIVE.fetch_add(1, Ordering::Relaxed);
        Ok(wd)
    }

    /// `inotify_rm_watch`.
    pub fn rm_watch(&self, wd: i32) -> Result<(), Errno> {
        let w = self.inner.lock().by_wd.remove(&wd).ok_or(Errno::EINVAL)?;
        forget(&w);
        self.inner.push(Event { wd, mask: IGNORED, cookie: 0, name: Vec::new() });
        Ok(())
    }
}

impl FileOps for Inotify {
    fn read(&self, t: &Task, file: &File, buf: &mut [u8], _off: Option<u64>) -> Result<usize, Errno> {
        let _reg = (!file.nonblocking()).then(|| self.inner.queue.register(&t.shared, events::IN));
        loop {
            {
                let mut st = self.inner.lock();
                if let Some(first) = st.events.front() {
                    if first.size() > buf.len() {
                        return Err(Errno::EINVAL);
                    }
                    let mut n = 0;
                    while let Some(e) = st.events.front() {
                        if n + e.size() > buf.len() {
                            break;
                        }
                        let e = st.events.pop_front().unwrap_or_else(|| unreachable!("front was Some"));
                        st.bytes -= e.size();
                        buf[n..n + 4].copy_from_slice(&e.wd.to_le_bytes());
                        buf[n + 4..n + 8].copy_from_slice(&e.mask.to_le_bytes());
                        buf[n + 8..n + 12].copy_from_slice(&e.cookie.to_le_bytes());
                        let len = u32::try_from(e.padded()).unwrap_or(0);
                        buf[n + 12..n + 16].copy_from_slice(&len.to_le_bytes());
                        let body = &mut buf[n + HEADER..n + e.size()];
                        body.fill(0);
                        body[..e.name.len()].copy_from_slice(&e.name);
                        n += e.size();
                    }
                    return Ok(n);
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

    fn ioctl(&self, t: &Task, cmd: u32, arg: u64) -> Result<u64, Errno> {
        const FIONREAD: u32 = 0x541b;
        if cmd != FIONREAD {
            return Err(Errno::ENOTTY);
        }
        let n = u32::try_from(self.inner.lock().bytes).unwrap_or(u32::MAX);
        t.mm.write_obj(arg, &n)?;
        Ok(0)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(crate::vfs::file::anon_stat())
    }

    fn readiness(&self, _file: &File, mask: u32) -> u32 {
        if self.inner.lock().events.is_empty() {
            0
        } else {
            mask & (events::IN | events::RDNORM)
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.inner.queue)
    }

    fn anon_name(&self) -> Option<&'static str> {
        Some("inotify")
    }

    fn inotify(&self) -> Option<&Inotify> {
        Some(self)
    }
}

/// A new instance; `flags` may hold `O_NONBLOCK`.
pub fn new(flags: u32) -> Arc<File> {
    let inner = Arc::new(Inner { st: Mutex::default(), queue: WaitQueue::default() });
    File::new(Box::new(Inotify { inner }), O_RDONLY | (flags & O_NONBLOCK))
}

/// Whether any watch exists (the calls below cost nothing otherwise).
pub fn active() -> bool {
    ACTIVE.load(Ordering::Relaxed) > 0
}

/// Queues event `mask` (with `name`, `cookie`) on the watches of `key`
/// that want it; a one-shot watch then goes. `self_gone`: the file itself
/// went (its watches end with `IN_IGNORED`).
fn deliver(key: Key, mask: u32, cookie: u32, name: &[u8], isdir: bool, self_gone: bool) {
    let ws: Vec<Arc<Watch>> = watches().get(&key).cloned().unwrap_or_default();
    for w in ws {
        let Some(inst) = w.owner.upgrade() else { continue };
        let want = w.mask.load(Ordering::Relaxed);
        if want & mask != 0 {
            let m = mask | if isdir { ISDIR } else { 0 };
            inst.push(Event { wd: w.wd, mask: m, cookie, name: name.to_vec() });
            if want & ONESHOT != 0 {
                end_watch(&inst, &w);
                continue;
            }
        }
        if self_gone {
            end_watch(&inst, &w);
        }
    }
}

fn end_watch(inst: &Arc<Inner>, w: &Arc<Watch>) {
    let removed = inst.lock().by_wd.remove(&w.wd).is_some();
    if removed {
        forget(w);
        inst.push(Event { wd: w.wd, mask: IGNORED, cookie: 0, name: Vec::new() });
    }
}

/// Something happened to the file at `p`: its own watches hear `mask`,
/// its directory's hear it with the name.
pub fn file_event(p: &Path, mask: u32) {
    if !active() {
        return;
    }
    // The directory hears first, then the file's own watches (Linux's
    // fsnotify_parent, then fsnotify on the inode).
    let isdir = p.attr().is_ok_and(|a| a.is_dir());
    if let Some(parent) = p.dentry.parent() {
        let dir = Path { mount: p.mount.clone(), dentry: parent };
        if let Some(k) = key_of(&dir) {
            deliver(k, mask, 0, &p.dentry.name(), isdir, false);
        }
    }
    if let Some(k) = key_of(p) {
        deliver(k, mask, 0, &[], isdir, false);
    }
}

/// `name` was made (or linked) in directory `dir`.
pub fn created(dir: &Path, name: &[u8], isdir: bool) {
    if !active() {
        return;
    }
    if let Some(k) = key_of(dir) {
        deliver(k, CREATE, 0, name, isdir, false);
    }
}

/// `name` was removed from `dir`; `victim` is the file's (dev, ino) and
/// `last` whether that was its last name (the file's watches then end).
pub fn removed(dir: &Path, name: &[u8], victim: Key, isdir: bool, last: bool) {
    if !active() {
        return;
    }
    // As Linux's vfs_unlink and d_delete: the link count changed, then the
    // file itself went (its watches end), then the directory hears.
    if !isdir {
        deliver(victim, ATTRIB, 0, &[], false, false);
    }
    if last {
        deliver(victim, DELETE_SELF, 0, &[], false, true);
    }
    if let Some(k) = key_of(dir) {
        deliver(k, DELETE, 0, name, isdir, false);
    }
}

/// A rename of `file` from (`old_dir`, `old`) to (`new_dir`, `new`).
pub fn moved(old_dir: &Path, old: &[u8], new_dir: &Path, new: &[u8], file: Key, isdir: bool) {
    if !active() {
        return;
    }
    static COOKIE: AtomicU32 = AtomicU32::new(0);
    let cookie = COOKIE.fetch_add(1, Ordering::Relaxed).wrapping_add(1);
    if let Some(k) = key_of(old_dir) {
        deliver(k, MOVED_FROM, cookie, old, isdir, false);
    }
    if let Some(k) = key_of(new_dir) {
        deliver(k, MOVED_TO, cookie, new, isdir, false);
    }
    deliver(file, MOVE_SELF, 0, &[], isdir, false);
}
