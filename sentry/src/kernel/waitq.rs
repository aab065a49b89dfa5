//! Wait queues: tasks blocked until something changes (a child exits, a
//! pipe gets data or room). A waiter registers, checks its condition, and
//! sleeps until kicked; a notifier changes the state, then kicks the
//! registered tasks whose interest matches. Registering before checking
//! means no wake-up is lost (the kick stays pending on the task's
//! eventfd).

use std::sync::{Arc, Mutex};

use super::TaskShared;

/// Readiness events (`poll`'s bits).
pub mod events {
    #![allow(missing_docs)]
    pub const IN: u32 = 0x1;
    pub const PRI: u32 = 0x2;
    pub const OUT: u32 = 0x4;
    pub const ERR: u32 = 0x8;
    pub const HUP: u32 = 0x10;
    pub const NVAL: u32 = 0x20;
    pub const RDNORM: u32 = 0x40;
    pub const RDBAND: u32 = 0x80;
    pub const WRNORM: u32 = 0x100;
    pub const WRBAND: u32 = 0x200;
    pub const RDHUP: u32 = 0x2000;
    pub const ALL: u32 = u32::MAX;
}

/// Something other than a task told of readiness changes (an epoll
/// instance watching the file). Called with the queue locked: it must not
/// take locks a waiter holds while it registers.
pub trait Hook: Send + Sync {
    /// Events `ev` (`events::ALL` when unspecified) may have changed.
    fn notify(&self, ev: u32);
}

enum Waiter {
    Task(Arc<TaskShared>, u32),
    Hook(Arc<dyn Hook>),
}

/// Tasks waiting for something.
#[derive(Default)]
pub struct WaitQueue {
    waiters: Mutex<Vec<Waiter>>,
}

impl std::fmt::Debug for WaitQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WaitQueue").finish_non_exhaustive()
    }
}

/// A registration; dropping it leaves the queue.
pub struct Registration<'a> {
    q: &'a WaitQueue,
    task: Arc<TaskShared>,
}

impl Drop for Registration<'_> {
    fn drop(&mut self) {
        let mut w = self.q.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = w.iter().position(|x| matches!(x, Waiter::Task(t, _) if Arc::ptr_eq(t, &self.task)))
        {
            w.swap_remove(i);
        }
    }
}

impl WaitQueue {
    /// Registers `task` for `events` (its `poll` interest).
    pub fn register(&self, task: &Arc<TaskShared>, events: u32) -> Registration<'_> {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).push(Waiter::Task(task.clone(), events));
        Registration { q: self, task: task.clone() }
    }

    /// Adds `hook`: it hears of every notification until removed.
    pub fn add_hook(&self, hook: Arc<dyn Hook>) {
        self.waiters.lock().unwrap_or_else(|p| p.into_inner()).push(Waiter::Hook(hook));
    }

    /// Removes `hook` (added by [`WaitQueue::add_hook`]).
    pub fn remove_hook(&self, hook: &Arc<dyn Hook>) {
        let mut w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(i) = w.iter().position(
            |x| matches!(x, Waiter::Hook(h) if std::ptr::addr_eq(Arc::as_ptr(h), Arc::as_ptr(hook))),
        ) {
            w.swap_remove(i);
        }
    }

    /// Kicks every waiter.
    pub fn notify(&self) {
        self.notify_events(events::ALL);
    }

    /// Kicks the waiters interested in any of `events`.
    pub fn notify_events(&self, ev: u32) {
        let w = self.waiters.lock().unwrap_or_else(|p| p.into_inner());
        for x in w.iter() {
            match x {
                Waiter::Task(t, mask) if mask & ev != 0 => t.wake(),
                Waiter::Task(..) => {}
                Waiter::Hook(h) => h.notify(ev),
            }
        }
    }

    /// Whether anyone waits.
    pub fn has_waiters(&self) -> bool {
        !self.waiters.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
    }
}
