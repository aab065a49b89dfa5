//! Operations on one traced stub thread. Every function here must be
//! called from the thread that traces it (ptrace's rule).

use crate::ptrace::stub::StubRegion;
use crate::{sys, Error, Regs, Result};

const PTRACE_EVENT_STOP: i32 = 128;

/// What `waitpid` reported about a tracee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Syscall-entry stop (`PTRACE_O_TRACESYSGOOD`).
    Syscall,
    /// Signal-delivery stop.
    Signal(i32),
    /// `PTRACE_EVENT_STOP`: `PTRACE_INTERRUPT` or a group stop.
    Interrupt(i32),
    /// Another ptrace event.
    Event(i32),
    /// The thread exited.
    Exited(i32),
    /// The thread was killed by a signal.
    Killed(i32),
}

impl Stop {
    fn from_status(status: i32) -> Stop {
        if libc::WIFEXITED(status) {
            Stop::Exited(libc::WEXITSTATUS(status))
        } else if libc::WIFSIGNALED(status) {
            Stop::Killed(libc::WTERMSIG(status))
        } else {
            let sig = libc::WSTOPSIG(status);
            let event = status >> 16;
            if event == PTRACE_EVENT_STOP {
                Stop::Interrupt(sig)
            } else if event != 0 {
                Stop::Event(event)
            } else if sig == libc::SIGTRAP | 0x80 {
                Stop::Syscall
            } else {
                Stop::Signal(sig)
            }
        }
    }

    /// Whether the thread is gone.
    pub fn is_death(self) -> bool {
        matches!(self, Stop::Exited(_) | Stop::Killed(_))
    }

    pub fn describe(self) -> String {
        match self {
            Stop::Exited(c) => format!("exited with status {c}"),
            Stop::Killed(s) => format!("killed by signal {s}"),
            other => format!("{other:?}"),
        }
    }
}

/// A stub thread traced by the calling sentry thread.
#[derive(Debug)]
pub(crate) struct Tracee {
    /// Host thread id.
    pub tid: i32,
    /// Host thread-group id (the stub process).
    pub tgid: i32,
    /// Registers captured when it was attached: a valid template (segment
    /// selectors, flags) for injected calls.
    pub base: Regs,
}

impl Tracee {
    /// Seizes the untraced stub thread `tid` of process `tgid`, idling in
    /// `pause`, and stops it.
    pub fn seize(tid: i32, tgid: i32, exitkill: bool) -> Result<Tracee> {
        let mut opts = libc::PTRACE_O_TRACESYSGOOD;
        if exitkill {
            opts |= libc::PTRACE_O_EXITKILL;
        }
        let opts = usize::try_from(opts).unwrap_or(0);
        sys::ptrace(libc::PTRACE_SEIZE, tid, 0, opts)?;
        Self::stop_seized(tid, tgid).inspect_err(|_| {
            // Not left traced behind our back (EXITKILL would later kill
            // the whole stub process with this sentry thread).
            let _ = sys::ptrace(libc::PTRACE_DETACH, tid, 0, 0);
        })
    }

    fn stop_seized(tid: i32, tgid: i32) -> Result<Tracee> {
        sys::ptrace(libc::PTRACE_INTERRUPT, tid, 0, 0)?;
        loop {
            match wait(tid)? {
                Stop::Interrupt(_) => break,
                s if s.is_death() => {
                    return Err(Error::StubDied { tid, how: s.describe() });
                }
                // A signal that was pending: swallow it and wait for the
                // interrupt's stop, which stays pending.
                _ => sys::ptrace(libc::PTRACE_CONT, tid, 0, 0).map(drop)?,
            }
        }
        let base = sys::get_regs(tid)?;
        Ok(Tracee { tid, tgid, base })
    }

    /// Runs one system call in the stub (from its code page) and returns
    /// the raw result (negative errno on failure).
    pub fn inject(&self, region: &StubRegion, nr: u32, args: [u64; 6]) -> Result<i64> {
        self.run_at(region, region.off.syscall, region.off.syscall_trap, nr, args, 0)
    }

    /// Runs the `count` calls described at `page` (a batch page mapped in
    /// the stub): `Ok(None)` if all succeeded, else the index and result
    /// of the first that did not.
    pub fn inject_batch(&self, region: &StubRegion, page: u64, count: u64) -> Result<Option<(u64, i64)>> {
        let out = self
            .run_regs(region, region.off.batch, region.off.batch_trap, 0, [0; 6], [page, count])
            .map_err(|e| dead_if_gone(self.tid, e))?;
        Ok((out.rax != 0).then_some((out.rbx, out.rax.cast_signed())))
    }

    /// Runs `clone` in the stub; the child idles in `pause`. `master` is the
    /// pid the child must find as its parent.
    pub fn inject_clone(&self, region: &StubRegion, flags: u64, master: i32) -> Result<i64> {
        let master = u64::try_from(master).map_err(|_| Error::Internal("bad pid".into()))?;
        let nr = u32::try_from(libc::SYS_clone).unwrap_or(56);
        self.run_at(region, region.off.clone, region.off.clone_trap, nr, [flags, 0, 0, 0, 0, 0], master)
    }

    fn run_at(
        &self,
        region: &StubRegion,
        entry: u64,
        trap: u64,
        nr: u32,
        args: [u64; 6],
        r12: u64,
    ) -> Result<i64> {
        self.run_regs(region, entry, trap, nr, args, [r12, 0])
            .map(|out| out.rax.cast_signed())
            .map_err(|e| dead_if_gone(self.tid, e))
    }

    /// Runs the stub from `entry` with a call's registers (and `r12`,
    /// `r13`) until its `int3` at `trap`; returns the registers there.
    fn run_regs(
        &self,
        region: &StubRegion,
        entry: u64,
        trap: u64,
        nr: u32,
        args: [u64; 6],
        r12_r13: [u64; 2],
    ) -> Result<Regs> {
        let mut r = self.base;
        r.rip = region.addr(entry);
        r.rax = u64::from(nr);
        r.orig_rax = u64::MAX;
        [r.rdi, r.rsi, r.rdx, r.r10, r.r8, r.r9] = args;
        [r.r12, r.r13] = r12_r13;
        sys::set_regs(self.tid, &r)?;
        sys::ptrace(libc::PTRACE_CONT, self.tid, 0, 0)?;
        loop {
            match wait(self.tid)? {
                Stop::Signal(libc::SIGTRAP) => break,
                s if s.is_death() => {
                    return Err(Error::StubDied { tid: self.tid, how: s.describe() });
                }
                // A fault in the stub's own code would repeat forever: the
                // stub is broken, kill it.
                Stop::Signal(sig @ (libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE)) => {
                    let _ = sys::tgkill(self.tgid, self.tid, libc::SIGKILL);
                    let _ = wait(self.tid);
                    return Err(Error::StubDied {
                        tid: self.tid,
                        how: format!("stub code faulted (signal {sig})"),
                    });
                }
                // Anything else (our interrupt signal, a stray host signal,
                // a group stop) is swallowed: injected calls are the
                // sentry's, not the application's.
                _ => sys::ptrace(libc::PTRACE_CONT, self.tid, 0, 0).map(drop)?,
            }
        }
        let out = sys::get_regs(self.tid)?;
        if out.rip != region.addr(trap) + 1 {
            return Err(Error::Internal(format!(
                "stub thread {} trapped at {:#x}, expected {:#x}",
                self.tid,
                out.rip,
                region.addr(trap) + 1
            )));
        }
        Ok(out)
    }

    /// Puts the thread back in the `pause` loop and detaches from it.
    pub fn detach_to_pause(self, region: &StubRegion) -> Result<()> {
        self.detach_at(region.addr(region.off.pause))
    }

    /// Detaches from the thread, which goes on at `rip` (in the stub page)
    /// with the registers it had when seized.
    pub fn detach_at(&self, rip: u64) -> Result<()> {
        let mut r = self.base;
        r.rip = rip;
        r.orig_rax = u64::MAX;
        sys::set_regs(self.tid, &r)?;
        sys::ptrace(libc::PTRACE_DETACH, self.tid, 0, 0)?;
        Ok(())
    }

    /// Makes the thread exit (`exit`, not `exit_group`) and reaps it.
    pub fn exit_thread(&self, region: &StubRegion) -> Result<()> {
        let nr = u32::try_from(libc::SYS_exit).unwrap_or(60);
        match self.inject(region, nr, [0; 6]) {
            Err(Error::StubDied { .. }) => Ok(()),
            Err(e) => Err(e),
            Ok(r) => Err(Error::Internal(format!("exit returned {r}"))),
        }
    }
}

/// A ptrace call on a tracee that was killed while stopped fails with
/// `ESRCH`: reap it and report it dead.
pub(crate) fn dead_if_gone(tid: i32, e: Error) -> Error {
    match &e {
        Error::Os { err, .. } if err.raw_os_error() == Some(libc::ESRCH) => {
            let how = match sys::wait(tid, 0) {
                Ok((_, status)) => Stop::from_status(status).describe(),
                Err(_) => "gone".into(),
            };
            Error::StubDied { tid, how }
        }
        _ => e,
    }
}

/// Waits for the next stop of `tid`.
pub(crate) fn wait(tid: i32) -> Result<Stop> {
    let (_, status) = sys::wait(tid, 0)?;
    Ok(Stop::from_status(status))
}

/// Reaps `tid` if it has died; true when it is gone.
pub(crate) fn try_reap(tid: i32) -> bool {
    match sys::wait(tid, libc::WNOHANG) {
        Ok((0, _)) => false,
        Ok((_, status)) => Stop::from_status(status).is_death(),
        // ECHILD: not ours any more (already reaped or detached).
        Err(_) => true,
    }
}
