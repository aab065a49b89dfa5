//! CPU placement of sentry task threads (and so of their stub threads).
//!
//! A ptrace trap is a handoff between two host threads; on the reference
//! machines it costs about 9.5 µs when both are on one CPU and about 45 µs
//! across CPUs (waking a halted vCPU). Left alone, the host scheduler often
//! wakes the tracer on an idle CPU, so the platform binds each sentry task
//! thread to one CPU of its allowed set, choosing the least used one, and
//! binds its stub threads to the same CPU.

use std::cell::Cell;
use std::sync::Mutex;

use crate::sys;

/// Number of sentry threads pinned to each CPU.
static LOAD: Mutex<Vec<usize>> = Mutex::new(Vec::new());

struct Pin(Option<usize>);

impl Drop for Pin {
    fn drop(&mut self) {
        if let Some(cpu) = self.0 {
            let mut load = LOAD.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(n) = load.get_mut(cpu) {
                *n = n.saturating_sub(1);
            }
        }
    }
}

thread_local! {
    static PINNED: Cell<Option<usize>> = const { Cell::new(None) };
    static PIN_GUARD: std::cell::RefCell<Pin> = const { std::cell::RefCell::new(Pin(None)) };
}

/// The CPU the calling sentry thread is already bound to, if any.
pub(crate) fn current() -> Option<usize> {
    PINNED.with(Cell::get)
}

/// The CPU the calling sentry thread is bound to, binding it on first use
/// to the least used of `allowed` (the sentry's CPUs at start-up).
pub(crate) fn pinned_cpu(allowed: &[usize]) -> Option<usize> {
    if let Some(c) = PINNED.with(Cell::get) {
        return Some(c);
    }
    let cpu = {
        let mut load = LOAD.lock().unwrap_or_else(|p| p.into_inner());
        let max = allowed.iter().copied().max()?;
        if load.len() <= max {
            load.resize(max + 1, 0);
        }
        // Least used allowed CPU; ties go to the CPU we are on.
        let here = sys::current_cpu();
        let cpu = *allowed.iter().min_by_key(|&&c| (load[c], Some(c) != here))?;
        load[cpu] += 1;
        cpu
    };
    if sys::pin_to_cpu(0, cpu).is_err() {
        let mut load = LOAD.lock().unwrap_or_else(|p| p.into_inner());
        load[cpu] = load[cpu].saturating_sub(1);
        return None;
    }
    PINNED.with(|p| p.set(Some(cpu)));
    PIN_GUARD.with(|g| g.borrow_mut().0 = Some(cpu));
    Some(cpu)
}
