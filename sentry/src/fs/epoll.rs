//! epoll instances, after Linux's `fs/eventpoll.c`.
//!
//! An instance watches *items*, each a (file description, descriptor
//! number) pair with an event mask and a user word. An item hooks the
//! file's wait queue: a notification that concerns its events puts it on
//! the instance's *ready list* (once) and wakes the instance's own queue
//! (tasks in `epoll_wait`, `poll` on the epoll file, outer instances).
//! `epoll_wait` takes items off the front of the ready list, asks each
//! file for its readiness now, reports those that have some, and puts
//! level-triggered ones back at the tail: the order Linux reports in.
//! Edge-triggered items come back only with the next notification,
//! one-shot ones are disarmed until `EPOLL_CTL_MOD`.
//!
//! Items follow the file description, not the descriptor: closing one of
//! two descriptors of a file leaves its item; the item goes once the
//! description is gone. Host files (the sandbox's stdio) have no queue the
//! sentry can hook: their items are asked at every scan, and their waits
//! go through a host `poll`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Instant;

use rustix::event::PollFlags;
use rvisor_syscalls::abi::Stat;
use rvisor_syscalls::Errno;

use crate::kernel::waitq::{events, Hook, WaitQueue};
use crate::kernel::Task;
use crate::vfs::file::oflags::O_RDWR;
use crate::vfs::{File, FileOps};

/// `EPOLLEXCLUSIVE`.
pub const EPOLLEXCLUSIVE: u32 = 1 << 28;
/// `EPOLLWAKEUP`.
pub const EPOLLWAKEUP: u32 = 1 << 29;
/// `EPOLLONESHOT`.
pub const EPOLLONESHOT: u32 = 1 << 30;
/// `EPOLLET`.
pub const EPOLLET: u32 = 1 << 31;
/// Bits that are not events.
const PRIVATE: u32 = EPOLLEXCLUSIVE | EPOLLWAKEUP | EPOLLONESHOT | EPOLLET;
/// Events always reported, asked for or not.
const ALWAYS: u32 = events::ERR | events::HUP;
/// How deep instances may nest (Linux's `EP_MAX_NESTS`).
const MAX_NESTS: usize = 4;

/// An item's identity: the file description (its address while it lives)
/// and the descriptor number it was added under.
type Key = (usize, i32);

fn key_of(file: &Arc<File>, fd: i32) -> Key {
    (Arc::as_ptr(file) as usize, fd)
}

struct Item {
    fd: i32,
    file: Weak<File>,
    /// Requested events and `EPOLLET`/`EPOLLONESHOT`; only the private
    /// bits once a one-shot item has fired.
    events: AtomicU32,
    data: AtomicU64,
    /// On the ready list.
    queued: AtomicBool,
    /// Still in the instance (a hook may outlive its removal briefly).
    live: AtomicBool,
    /// A host file: asked at every scan.
    host: bool,
    owner: Weak<Inner>,
    hook: Mutex<Option<Arc<dyn Hook>>>,
}

impl Item {
    fn wanted(&self) -> u32 {
        let ev = self.events.load(Ordering::Relaxed);
        if ev & !PRIVATE == 0 && ev & EPOLLONESHOT != 0 {
            // Disarmed.
            0
        } else {
            (ev & !PRIVATE) | ALWAYS
        }
    }

    /// Puts the item on its instance's ready list (once) and wakes the
    /// instance's waiters.
    fn enqueue(self: &Arc<Self>) {
        let Some(ep) = self.owner.upgrade() else { return };
        if !self.queued.swap(true, Ordering::AcqRel) {
            ep.ready_list().push_back(self.clone());
        }
        ep.queue.notify_events(events::IN);
    }
}

/// The hook an item puts on its file's wait queue.
struct ItemHook(Weak<Item>);

impl Hook for ItemHook {
    fn notify(&self, ev: u32) {
        let Some(item) = self.0.upgrade() else { return };
        if !item.live.load(Ordering::Relaxed) {
            return;
        }
        let want = item.wanted();
        if want == 0 || (ev != events::ALL && ev & want == 0) {
            return;
        }
        item.enqueue();
    }
}

struct Inner {
    items: Mutex<HashMap<Key, Arc<Item>>>,
    /// Item count after the last sweep of items whose file is gone (a
    /// program adding descriptors it closes never grows the map for good).
    swept: AtomicUsize,
    ready: Mutex<VecDeque<Arc<Item>>>,
    /// Tasks in `epoll_wait`, `poll` of this instance, outer instances.
    queue: WaitQueue,
}

impl Inner {
    fn ready_list(&self) -> MutexGuard<'_, VecDeque<Arc<Item>>> {
        self.ready.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn item_map(&self) -> MutexGuard<'_, HashMap<Key, Arc<Item>>> {
        self.items.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The live item of `key` (an item whose file is gone is dropped: its
    /// address may name a new file now).
    fn find(&self, key: Key) -> Option<Arc<Item>> {
        let mut m = self.item_map();
        let it = m.get(&key)?.clone();
        if it.file.strong_count() == 0 {
            m.remove(&key);
            it.live.store(false, Ordering::Relaxed);
            return None;
        }
        Some(it)
    }

    /// Items of host files, asked at every scan.
    fn host_items(&self) -> Vec<Arc<Item>> {
        self.item_map().values().filter(|i| i.host).cloned().collect()
    }

    /// Reports up to `max` ready items (`(events, data)`), as
    /// `ep_send_events`: level-triggered ones go back on the list.
    fn collect(&self, max: usize) -> Vec<(u32, u64)> {
        let mut out = Vec::new();
        let mut again = Vec::new();
        let mut host: Vec<Arc<Item>> = self.host_items();
        host.retain(|i| !i.queued.load(Ordering::Relaxed));
        let mut host = host.into_iter();
        while out.len() < max {
            let item = {
                let mut r = self.ready_list();
                match r.pop_front() {
                    Some(i) => {
                        i.queued.store(false, Ordering::Release);
                        i
                    }
                    None => match host.next() {
                        Some(i) => i,
                        None => break,
                    },
                }
            };
            if !item.live.load(Ordering::Relaxed) {
                continue;
            }
            let Some(file) = item.file.upgrade() else { continue };
            let want = item.wanted();
            if want == 0 {
                continue;
            }
            let got = file.readiness(want) & want;
            if got == 0 {
                continue;
            }
            out.push((got, item.data.load(Ordering::Relaxed)));
            let ev = item.events.load(Ordering::Relaxed);
            if ev & EPOLLONESHOT != 0 {
                item.events.store(ev & PRIVATE, Ordering::Relaxed);
            } else if ev & EPOLLET == 0 && !item.host {
                again.push(item);
            }
        }
        if !again.is_empty() {
            let mut r = self.ready_list();
            for i in again {
                if !i.queued.swap(true, Ordering::AcqRel) {
                    r.push_back(i);
                }
            }
        }
        out
    }

    /// Whether some item is ready (`poll` of the instance), as
    /// `ep_read_events_proc`.
    fn any_ready(&self) -> bool {
        let mut cands: Vec<Arc<Item>> = self.ready_list().iter().cloned().collect();
        cands.extend(self.host_items());
        cands.iter().any(|i| {
            let want = i.wanted();
            i.live.load(Ordering::Relaxed)
                && want != 0
                && i.file.upgrade().is_some_and(|f| f.readiness(want) & want != 0)
        })
    }

    /// How deep instances nest below this one, `None` if `target` is among
    /// them (a loop).
    fn depth_below(&self, target: *const Inner, level: usize) -> Option<usize> {
        if std::ptr::eq(self, target) {
            return None;
        }
        if level > MAX_NESTS + 1 {
            return Some(level);
        }
        let subs: Vec<Arc<File>> = self.item_map().values().filter_map(|i| i.file.upgrade()).collect();
        let mut deepest = level;
        for f in subs {
            if let Some(e) = f.ops().epoll() {
                deepest = deepest.max(e.inner.depth_below(target, level + 1)?);
            }
        }
        Some(deepest)
    }
}

/// An epoll instance (the file's operations).
pub struct Epoll {
    inner: Arc<Inner>,
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // Unhook from every file that is still open.
        let items: Vec<Arc<Item>> = self.inner.item_map().drain().map(|(_, v)| v).collect();
        for it in items {
            unhook(&it);
        }
    }
}

fn unhook(it: &Item) {
    it.live.store(false, Ordering::Relaxed);
    let hook = it.hook.lock().unwrap_or_else(|p| p.into_inner()).take();
    if let (Some(h), Some(f)) = (hook, it.file.upgrade()) {
        if let Some(q) = f.wait_queue() {
            q.remove_hook(&h);
        }
    }
}

/// Whether `file` can be watched (Linux's `file_can_poll`): files whose
/// readiness changes, not regular files or directories.
pub fn pollable(file: &File) -> bool {
    file.wait_queue().is_some() || file.host_poll_fd().is_some()
}

/// `EPOLL_CTL_*`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `EPOLL_CTL_ADD`.
    Add,
    /// `EPOLL_CTL_DEL`.
    Del,
    /// `EPOLL_CTL_MOD`.
    Mod,
}

impl Epoll {
    /// `epoll_ctl` of `target` (open as `fd`); the caller checked the
    /// descriptors and that `target` is pollable and not this instance.
    pub fn ctl(&self, op: Op, fd: i32, target: &Arc<File>, events: u32, data: u64) -> Result<(), Errno> {
        let key = key_of(target, fd);
        match op {
            Op::Add => {
                if let Some(e) = target.ops().epoll() {
                    let me = Arc::as_ptr(&self.inner);
                    match e.inner.depth_below(me, 1) {
                        Some(d) if d <= MAX_NESTS => {}
                        _ => return Err(Errno::ELOOP),
                    }
                }
                let item = Arc::new(Item {
                    fd,
                    file: Arc::downgrade(target),
                    events: AtomicU32::new(events & !EPOLLWAKEUP),
                    data: AtomicU64::new(data),
                    queued: AtomicBool::new(false),
                    live: AtomicBool::new(true),
                    host: target.wait_queue().is_none(),
                    owner: Arc::downgrade(&self.inner),
                    hook: Mutex::new(None),
                });
                {
                    if self.inner.find(key).is_some() {
                        return Err(Errno::EEXIST);
                    }
                    let mut m = self.inner.item_map();
                    if m.len() >= 64 && m.len() >= 2 * self.inner.swept.load(Ordering::Relaxed) {
                        m.retain(|_, i| i.file.strong_count() > 0);
                        self.inner.swept.store(m.len(), Ordering::Relaxed);
                    }
                    m.insert(key, item.clone());
                }
                if let Some(q) = target.wait_queue() {
                    let h: Arc<dyn Hook> = Arc::new(ItemHook(Arc::downgrade(&item)));
                    *item.hook.lock().unwrap_or_else(|p| p.into_inner()) = Some(h.clone());
                    q.add_hook(h);
                }
                // Ready already: reported by the next wait (ep_insert).
                let want = item.wanted();
                if !item.host && target.readiness(want) & want != 0 {
                    item.enqueue();
                }
                Ok(())
            }
            Op::Mod => {
                let item = self.inner.find(key).ok_or(Errno::ENOENT)?;
                if item.events.load(Ordering::Relaxed) & EPOLLEXCLUSIVE != 0 {
                    return Err(Errno::EINVAL);
                }
                item.data.store(data, Ordering::Relaxed);
                item.events.store(events & !EPOLLWAKEUP, Ordering::Relaxed);
                let want = item.wanted();
                if !item.host && target.readiness(want) & want != 0 {
                    item.enqueue();
                }
                Ok(())
            }
            Op::Del => {
                let item = self.inner.find(key).ok_or(Errno::ENOENT)?;
                self.inner.item_map().remove(&key);
                unhook(&item);
                Ok(())
            }
        }
    }

    /// `epoll_wait`: up to `max` events, waiting until `deadline` (`None`:
    /// forever; a past one: just look).
    pub fn wait(&self, t: &Task, max: usize, deadline: Option<Instant>) -> Result<Vec<(u32, u64)>, Errno> {
        let _reg = self.inner.queue.register(&t.shared, events::IN);
        loop {
            let out = self.inner.collect(max);
            if !out.is_empty() {
                return Ok(out);
            }
            let host_items = self.inner.host_items();
            let files: Vec<(Arc<File>, u32)> =
                host_items.iter().filter_map(|i| Some((i.file.upgrade()?, i.wanted()))).collect();
            let host: Vec<_> = files
                .iter()
                .filter(|(_, w)| *w != 0)
                .filter_map(|(f, w)| {
                    Some((f.host_poll_fd()?, PollFlags::from_bits_truncate(u16::try_from(w & 0xffff).ok()?)))
                })
                .collect();
            let woke = if host.is_empty() { t.wait_kick(deadline) } else { t.poll_host(&host, deadline) };
            match woke {
                Ok(true) => {}
                Ok(false) => return Ok(Vec::new()),
                Err(_) => return Err(Errno::EINTR),
            }
        }
    }

    /// The descriptors watched (for `/proc/PID/fdinfo`, tests).
    pub fn watched(&self) -> Vec<i32> {
        let mut v: Vec<i32> = self.inner.item_map().values().map(|i| i.fd).collect();
        v.sort_unstable();
        v
    }
}

impl FileOps for Epoll {
    fn read(&self, _t: &Task, _f: &File, _buf: &mut [u8], _off: Option<u64>) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    fn write(&self, _t: &Task, _f: &File, _data: &[u8], _off: Option<u64>) -> Result<usize, Errno> {
        Err(Errno::EINVAL)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(crate::vfs::file::anon_stat())
    }

    fn readiness(&self, _file: &File, mask: u32) -> u32 {
        if self.inner.any_ready() {
            mask & (events::IN | events::RDNORM)
        } else {
            0
        }
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.inner.queue)
    }

    fn anon_name(&self) -> Option<&'static str> {
        Some("[eventpoll]")
    }

    fn epoll(&self) -> Option<&Epoll> {
        Some(self)
    }
}

/// A new epoll instance.
pub fn new() -> Arc<File> {
    let inner = Arc::new(Inner {
        items: Mutex::default(),
        swept: AtomicUsize::new(0),
        ready: Mutex::default(),
        queue: WaitQueue::default(),
    });
    File::new(Box::new(Epoll { inner }), O_RDWR)
}
