//! Futexes: wait queues keyed by where the futex word lives: its address
//! in its address space, or, for a shared futex in a shared file mapping,
//! the file and offset (so that every mapping of the file, in any process,
//! meets on it). Checking the word and queueing happen under one lock that
//! wakers take too, so no wake-up is lost. (Shared anonymous memory is
//! keyed by address until processes can share it.)

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::TaskShared;

/// Where a futex word lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Key {
    /// (address space, address).
    Private(usize, u64),
    /// (device, inode, offset) of a shared file mapping.
    File(u64, u64, u64),
}

/// A task waiting on a futex.
struct Waiter {
    task: Arc<TaskShared>,
    bitset: u32,
    /// For a PI futex waiter, the tid that owned the word when it queued
    /// (0 otherwise): that thread's end hands the futex on (Linux's
    /// `exit_pi_state_list`).
    pi_owner: u32,
    woken: AtomicBool,
    /// Woken because `pi_owner` ended.
    owner_gone: AtomicBool,
}

/// A queued wait; dropping it leaves the queue.
pub struct Ticket {
    waiter: Arc<Waiter>,
}

impl Ticket {
    /// Whether a wake-up reached this waiter.
    pub fn woken(&self) -> bool {
        self.waiter.woken.load(Ordering::Acquire)
    }

    /// The PI futex owner this waiter queued behind ended (see
    /// [`Locked::wake_pi_waiters_of`]): its tid, else 0.
    pub fn dead_owner(&self) -> u32 {
        if self.waiter.owner_gone.load(Ordering::Acquire) {
            self.waiter.pi_owner
        } else {
            0
        }
    }
}

/// The kernel's futex queues.
#[derive(Default)]
pub struct FutexTable {
    queues: Mutex<HashMap<Key, Vec<Arc<Waiter>>>>,
}

impl std::fmt::Debug for FutexTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FutexTable").finish_non_exhaustive()
    }
}

/// The queues, locked: check the word, then queue, under one lock.
pub struct Locked<'a> {
    q: MutexGuard<'a, HashMap<Key, Vec<Arc<Waiter>>>>,
}

impl Locked<'_> {
    /// Queues `task` on `key`.
    pub fn enqueue(&mut self, key: Key, task: Arc<TaskShared>, bitset: u32) -> Ticket {
        self.enqueue_as(key, task, bitset, 0)
    }

    /// Queues `task` on PI futex `key`, owned by thread `owner`.
    pub fn enqueue_pi(&mut self, key: Key, task: Arc<TaskShared>, owner: u32) -> Ticket {
        self.enqueue_as(key, task, u32::MAX, owner)
    }

    fn enqueue_as(&mut self, key: Key, task: Arc<TaskShared>, bitset: u32, pi_owner: u32) -> Ticket {
        let waiter = Arc::new(Waiter {
            task,
            bitset,
            pi_owner,
            woken: AtomicBool::new(false),
            owner_gone: AtomicBool::new(false),
        });
        self.q.entry(key).or_default().push(waiter.clone());
        Ticket { waiter }
    }

    /// Thread `tid` ends: the first waiter of every PI futex it owned
    /// when they queued is woken to take it over. Returns how many.
    pub fn wake_pi_waiters_of(&mut self, tid: u32) -> usize {
        let mut n = 0;
        self.q.retain(|_, list| {
            if let Some(i) = list.iter().position(|w| w.pi_owner == tid) {
                let w = list.remove(i);
                w.owner_gone.store(true, Ordering::Release);
                w.woken.store(true, Ordering::Release);
                w.task.kick();
                n += 1;
            }
            !list.is_empty()
        });
        n
    }

    /// Wakes up to `n` waiters of `key` whose bitset meets `bitset`.
    pub fn wake(&mut self, key: Key, n: usize, bitset: u32) -> usize {
        let Some(list) = self.q.get_mut(&key) else { return 0 };
        let mut woken = 0;
        list.retain(|w| {
            if woken < n && w.bitset & bitset != 0 {
                woken += 1;
                w.woken.store(true, Ordering::Release);
                w.task.kick();
                false
            } else {
                true
            }
        });
        if list.is_empty() {
            self.q.remove(&key);
        }
        woken
    }

    /// Whether anyone waits on `key`.
    pub fn has_waiters(&self, key: Key) -> bool {
        self.q.get(&key).is_some_and(|l| !l.is_empty())
    }

    /// The first waiter of `key`, without waking it.
    pub fn first_waiter(&self, key: Key) -> Option<i32> {
        self.q.get(&key).and_then(|l| l.first()).map(|w| w.task.tid)
    }

    /// Wakes up to `n` waiters of `from`, then moves up to `m` more to
    /// `to`; returns how many were woken plus moved.
    pub fn requeue(&mut self, from: Key, to: Key, n: usize, m: usize) -> usize {
        let woken = self.wake(from, n, u32::MAX);
        let Some(list) = self.q.get_mut(&from) else { return woken };
        let k = m.min(list.len());
        let moved: Vec<Arc<Waiter>> = list.drain(..k).collect();
        if list.is_empty() {
            self.q.remove(&from);
        }
        self.q.entry(to).or_default().extend(moved);
        woken + k
    }
}

impl FutexTable {
    /// Locks the queues.
    pub fn lock(&self) -> Locked<'_> {
        Locked { q: self.queues.lock().unwrap_or_else(|p| p.into_inner()) }
    }

    /// Takes `ticket`'s waiter off its queue (a wait that ended without a
    /// wake-up: timeout, signal).
    pub fn cancel(&self, key: Key, ticket: &Ticket) {
        let mut q = self.lock();
        // The waiter may have been requeued: look everywhere only if it is
        // not where it was put.
        let mut found = false;
        if let Some(list) = q.q.get_mut(&key) {
            let before = list.len();
            list.retain(|w| !Arc::ptr_eq(w, &ticket.waiter));
            found = list.len() != before;
            if list.is_empty() {
                q.q.remove(&key);
            }
        }
        if !found {
            for list in q.q.values_mut() {
                list.retain(|w| !Arc::ptr_eq(w, &ticket.waiter));
            }
            q.q.retain(|_, l| !l.is_empty());
        }
    }
}
