//! Tasks (threads): one host thread in the sentry per application thread,
//! running the application on the platform and handling what it traps.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rvisor_platform::{ArchState, Context, Event, InterruptHandle};
use rvisor_syscalls::abi::{StackT, Timespec};
use rvisor_syscalls::Errno;

use std::sync::atomic::{AtomicU64, Ordering};

use super::signal::{self, sig, Siginfo};
use super::{ExitStatus, Kernel, ThreadGroup};
use crate::mm::{MemoryManager, SegvCode};
use crate::vfs::{FdTable, FsContext};

/// The part of a task other tasks and the host-signal thread can reach.
pub struct TaskShared {
    /// Thread id in the sandbox's pid namespace.
    pub tid: i32,
    /// The process.
    pub tg: Arc<ThreadGroup>,
    /// Wakes the task from host waits (an eventfd).
    wake: OwnedFd,
    /// The thread's name (`PR_SET_NAME`; `/proc/PID/task/TID/comm`).
    pub comm: Mutex<[u8; 16]>,
    /// Interrupts the task's platform context while it runs.
    interrupt: Mutex<Option<InterruptHandle>>,
    /// The host thread serving it (its CPU clock is the task's system
    /// time); 0 before it starts.
    pub host_tid: std::sync::atomic::AtomicI32,
    /// Signals sent to this thread.
    pending: signal::Pending,
    /// Blocked signals (the signal mask).
    blocked: AtomicU64,
    /// The mask before an `rt_sigtimedwait` unblocked what it waits for
    /// (Linux's `real_blocked`): a signal blocked there is not ignored.
    real_blocked: AtomicU64,
    /// The thread's CPU time in its stub threads, as last read.
    stub_cpu: Mutex<StubCpu>,
}

/// A thread's CPU time in the platform, read now and then: each address
/// space's stub thread counts from zero, the total goes on across them.
#[derive(Debug, Default)]
struct StubCpu {
    /// The address space of `raw` (held weakly: its allocation, and so
    /// its address, is not reused while this names it).
    aspace: std::sync::Weak<MemoryManager>,
    /// Last reading there.
    raw: Duration,
    /// Everything so far.
    total: Duration,
}

impl std::fmt::Debug for TaskShared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskShared").field("tid", &self.tid).finish_non_exhaustive()
    }
}

impl TaskShared {
    /// A new task of `tg` with id `tid`.
    pub fn new(tid: i32, tg: Arc<ThreadGroup>) -> std::io::Result<Arc<TaskShared>> {
        let wake = rustix::event::eventfd(
            0,
            rustix::event::EventfdFlags::CLOEXEC | rustix::event::EventfdFlags::NONBLOCK,
        )?;
        let t = Arc::new(TaskShared {
            tid,
            tg,
            wake,
            interrupt: Mutex::new(None),
            host_tid: std::sync::atomic::AtomicI32::new(0),
            pending: signal::Pending::default(),
            blocked: AtomicU64::new(0),
            real_blocked: AtomicU64::new(0),
            stub_cpu: Mutex::new(StubCpu::default()),
            comm: Mutex::new([0; 16]),
        });
        t.tg.kernel.register_task(&t);
        Ok(t)
    }

    /// The thread's CPU time in the platform, with `reading` (what the
    /// platform says of an address space now, if it was asked) counted
    /// in. Never goes back.
    pub fn stub_cpu_time(&self, reading: Option<(&Arc<MemoryManager>, Duration)>) -> Duration {
        let mut s = self.stub_cpu.lock().unwrap_or_else(|p| p.into_inner());
        if let Some((mm, r)) = reading {
            if !std::ptr::eq(s.aspace.as_ptr(), Arc::as_ptr(mm)) {
                s.aspace = Arc::downgrade(mm);
                s.raw = Duration::ZERO;
            }
            if r > s.raw {
                let more = r - s.raw;
                s.total += more;
                s.raw = r;
            }
        }
        s.total
    }

    /// CPU time of the sentry thread serving this thread (zero before it
    /// starts).
    pub fn sentry_cpu_time(&self) -> Duration {
        let tid = self.host_tid.load(Ordering::Relaxed);
        if tid > 0 {
            rvisor_platform::thread_cpu_time(tid).unwrap_or_default()
        } else {
            Duration::ZERO
        }
    }

    /// Makes the task notice that something happened (an exit, a signal):
    /// its platform context returns and host waits end.
    pub fn kick(&self) {
        if let Some(h) = self.interrupt.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
            h.interrupt();
        }
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }

    /// The signal mask.
    pub fn blocked(&self) -> u64 {
        self.blocked.load(Ordering::Relaxed)
    }

    /// The signals this thread blocks, counting those an `rt_sigtimedwait`
    /// unblocked for its wait.
    pub fn blocked_or_waited(&self) -> u64 {
        self.blocked() | self.real_blocked.load(Ordering::Relaxed)
    }

    /// Records the mask an `rt_sigtimedwait` replaced (0 when it ends).
    pub fn set_real_blocked(&self, mask: u64) {
        self.real_blocked.store(mask, Ordering::Relaxed);
    }

    /// This thread's own pending signals.
    pub fn pending(&self) -> &signal::Pending {
        &self.pending
    }

    /// Signals pending for this thread alone.
    pub fn pending_bits(&self) -> u64 {
        self.pending.bits()
    }

    /// Queues `info` for this thread and makes it notice (unless it blocks
    /// the signal). `false` if the signal was dropped.
    pub fn send(&self, info: Siginfo) -> bool {
        let queued = self.pending.push(info);
        if queued && signal::bit(info.signo) & self.blocked() == 0 {
            self.kick();
        }
        if queued {
            crate::fs::signalfd::signal_queued();
        }
        queued
    }

    /// Takes this thread's next pending signal of `allowed`.
    pub fn take_signal(&self, allowed: u64) -> Option<Siginfo> {
        self.pending.take(allowed)
    }

    /// Drops pending instances of the signals in `set`.
    pub fn discard_signals(&self, set: u64) {
        self.pending.discard(set);
    }

    /// Moves `old`'s interrupt handle here (a thread taking its leader's
    /// place at `execve`).
    pub fn take_interrupt_from(&self, old: &TaskShared) {
        let h = old.interrupt.lock().unwrap_or_else(|p| p.into_inner()).take();
        *self.interrupt.lock().unwrap_or_else(|p| p.into_inner()) = h;
    }

    /// Ends the task's host waits (it is blocked, not running: nothing to
    /// interrupt).
    pub fn wake(&self) {
        let _ = rustix::io::write(&self.wake, &1u64.to_ne_bytes());
    }

    fn drain_wake(&self) {
        let mut b = [0u8; 8];
        let _ = rustix::io::read(&self.wake, &mut b);
    }
}

/// How `restart_syscall` goes on with an interrupted sleep.
#[derive(Clone, Copy, Debug)]
pub enum RestartBlock {
    /// `nanosleep`/`clock_nanosleep`: until `deadline`, the time left
    /// written to `rem` if interrupted again.
    Sleep { deadline: Instant, rem: u64 },
    /// A timed `FUTEX_WAIT`: the same wait, to the same deadline.
    FutexWait { addr: u64, private: bool, val: u32, deadline: Instant, bitset: u32 },
}

/// A task, owned by the host thread that runs it. System call handlers get
/// `&mut Task`.
pub struct Task {
    /// Shared state.
    pub shared: Arc<TaskShared>,
    /// Where the last fault that found its page mapped as its VMA allows
    /// was retried ([`SegvCode::Stale`]).
    /// (address, the address space's changes then): a fault there again
    /// with no change since is a real protection error.
    stale_fault: Option<(u64, u64)>,
    /// The kernel.
    pub kernel: Arc<Kernel>,
    /// Registers and FP state.
    pub arch: ArchState,
    /// The platform context.
    pub ctx: Box<dyn Context>,
    /// The address space.
    pub mm: Arc<MemoryManager>,
    /// File descriptors.
    pub fds: Arc<FdTable>,
    /// Root and working directory.
    pub fs: Arc<Mutex<FsContext>>,
    /// The mask to restore after a handler (or at once, if none runs)
    /// when a call changed it for its duration (`rt_sigsuspend`, `ppoll`,
    /// `pselect6`).
    pub saved_mask: Option<u64>,
    /// How the interrupted system call of the last trap continues
    /// (`ERESTARTSYS`, …), decided when signals are delivered.
    pub restart: Option<Errno>,
    /// What `restart_syscall` continues after a sleep was interrupted by
    /// a signal that ran no handler (Linux's `restart_block`).
    pub restart_block: Option<RestartBlock>,
    /// `set_tid_address`.
    pub clear_child_tid: u64,
    /// `set_robust_list` head and length.
    pub robust_list: (u64, u64),
    /// `sigaltstack`.
    pub altstack: StackT,
    /// `comm` (`PR_SET_NAME`), NUL-padded.
    pub comm: [u8; 16],
    /// Set when the task must end (its own `exit`).
    pub exit: Option<ExitStatus>,
    /// The parent waiting while this `vfork` child borrows its memory.
    pub vfork_done: Option<Arc<VforkDone>>,
}

/// A `vfork` parent's wait: over when the child executes or exits.
#[derive(Debug)]
pub struct VforkDone {
    done: std::sync::atomic::AtomicBool,
    parent: Arc<TaskShared>,
}

impl VforkDone {
    /// A wait of `parent`.
    pub fn new(parent: Arc<TaskShared>) -> Arc<VforkDone> {
        Arc::new(VforkDone { done: std::sync::atomic::AtomicBool::new(false), parent })
    }

    /// Whether the child let go of the parent's memory.
    pub fn is_done(&self) -> bool {
        self.done.load(std::sync::atomic::Ordering::Acquire)
    }

    /// The child executed or exited: the parent goes on.
    pub fn complete(&self) {
        self.done.store(true, std::sync::atomic::Ordering::Release);
        self.parent.wake();
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Task").field("tid", &self.shared.tid).finish_non_exhaustive()
    }
}

impl Task {
    /// A task ready to run `arch` in `mm`.
    pub fn new(
        shared: Arc<TaskShared>,
        ctx: Box<dyn Context>,
        arch: ArchState,
        mm: Arc<MemoryManager>,
        fds: Arc<FdTable>,
        fs: Arc<Mutex<FsContext>>,
        comm: &[u8],
    ) -> Task {
        *shared.interrupt.lock().unwrap_or_else(|p| p.into_inner()) = Some(ctx.interrupt_handle());
        let mut c = [0u8; 16];
        let n = comm.len().min(15);
        c[..n].copy_from_slice(&comm[..n]);
        *shared.comm.lock().unwrap_or_else(|p| p.into_inner()) = c;
        Task {
            stale_fault: None,
            kernel: shared.tg.kernel.clone(),
            shared,
            arch,
            ctx,
            mm,
            fds,
            fs,
            saved_mask: None,
            restart: None,
            restart_block: None,
            clear_child_tid: 0,
            robust_list: (0, 0),
            altstack: crate::kernel::sigframe::NO_ALTSTACK,
            comm: c,
            exit: None,
            vfork_done: None,
        }
    }

    /// Thread id.
    pub fn tid(&self) -> i32 {
        self.shared.tid
    }

    /// Process id.
    pub fn tgid(&self) -> i32 {
        self.shared.tg.tgid
    }

    /// The process.
    pub fn tg(&self) -> &Arc<ThreadGroup> {
        &self.shared.tg
    }

    /// The task's mount namespace.
    pub fn mntns(&self) -> &Arc<crate::vfs::MountNamespace> {
        &self.shared.tg.container.mntns
    }

    /// Root and working directory (a copy).
    pub fn fs_context(&self) -> FsContext {
        self.fs.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Whether the task must stop what it is doing (it or its process is
    /// exiting).
    pub fn must_stop(&self) -> bool {
        self.exit.is_some() || self.shared.tg.must_stop(self.shared.tid)
    }

    /// The signal mask.
    pub fn sigmask(&self) -> u64 {
        self.shared.blocked()
    }

    /// Sets the signal mask (`SIGKILL` and `SIGSTOP` stay unblocked).
    pub fn set_sigmask(&self, mask: u64) {
        self.shared.blocked.store(mask & !signal::UNBLOCKABLE, Ordering::Relaxed);
    }

    /// Whether a signal the task does not block is pending.
    pub fn signal_pending(&self) -> bool {
        (self.shared.pending_bits() | self.shared.tg.pending_bits()) & !self.sigmask() != 0
    }

    /// Whether a blocking call must end: the task must stop, or a signal
    /// is to be delivered.
    pub fn interrupted(&self) -> bool {
        self.must_stop() || self.signal_pending() || self.shared.tg.job_stopped()
    }

    /// Waits while the process is stopped (job control), until `SIGCONT`
    /// or the end. Nothing but those is looked at meanwhile.
    pub(crate) fn park_while_stopped(&self) {
        while self.shared.tg.job_stopped() && !self.must_stop() {
            self.sleep_on_wake(Some(&rustix::event::Timespec { tv_sec: 1, tv_nsec: 0 }));
        }
    }

    /// Runs the task until it exits.
    pub fn run(mut self) {
        super::set_current(self.tgid());
        super::set_current_task(&self.shared);
        self.shared.host_tid.store(rustix::thread::gettid().as_raw_nonzero().get(), Ordering::Relaxed);
        loop {
            if self.must_stop() {
                break;
            }
            self.deliver_signals();
            if self.must_stop() {
                break;
            }
            let ev = match self.ctx.switch(self.mm.address_space(), &mut self.arch) {
                Ok(ev) => ev,
                Err(e) => {
                    tracing::error!(tid = self.tid(), "platform: {e}");
                    self.shared.tg.begin_exit(ExitStatus::Signal { sig: sig::SIGKILL, core: false });
                    break;
                }
            };
            match ev {
                Event::Syscall => self.syscall(),
                // Only the x86_64 ABI is offered.
                Event::ForeignSyscall => self.arch.regs.rax = rvisor_syscalls::Errno::ENOSYS.to_ret(),
                // The host's SIGBUS: a page mapped from a file, wholly past
                // its end.
                Event::Fault { addr, signo, .. } if signo == sig::SIGBUS => {
                    tracing::debug!(tid = self.tid(), addr, "bus error");
                    self.force_signal(Siginfo::fault(sig::SIGBUS, signal::code::BUS_ADRERR, addr));
                }
                Event::Fault { addr, code: host_code, .. } => {
                    let not_mapped = host_code == signal::code::SEGV_MAPERR;
                    let r = match self.mm.handle_host_fault(addr, not_mapped) {
                        // Retried once: a second fault at the same place
                        // with nothing changed is a real protection error.
                        Err(SegvCode::Stale) if self.stale_fault != Some((addr, self.mm.changes())) => {
                            self.stale_fault = Some((addr, self.mm.changes()));
                            Ok(())
                        }
                        Err(SegvCode::Stale) => {
                            self.stale_fault = None;
                            Err(SegvCode::AccErr)
                        }
                        r => {
                            self.stale_fault = None;
                            r
                        }
                    };
                    if let Err(code) = r {
                        tracing::debug!(tid = self.tid(), addr, ?code, "fault");
                        let info = match code {
                            SegvCode::Bus => Siginfo::fault(sig::SIGBUS, signal::code::BUS_ADRERR, addr),
                            SegvCode::MapErr => Siginfo::fault(sig::SIGSEGV, signal::code::SEGV_MAPERR, addr),
                            SegvCode::AccErr | SegvCode::Stale => {
                                Siginfo::fault(sig::SIGSEGV, signal::code::SEGV_ACCERR, addr)
                            }
                        };
                        self.force_signal(info);
                    }
                }
                Event::Signal(hs) => {
                    tracing::debug!(tid = self.tid(), ?hs, "host signal");
                    self.force_signal(Siginfo::fault(hs.signo, hs.code, hs.addr));
                }
                Event::Interrupted => {}
            }
        }
        self.exit_task();
    }

    fn syscall(&mut self) {
        let nr = self.arch.regs.orig_rax;
        let args = self.arch.regs.syscall_args();
        let strace = self.kernel.strace.clone();
        let pending = strace.as_ref().map(|s| s.enter(self, nr, &args));
        let r = crate::syscalls::dispatch(self, nr, &args);
        if let (Some(s), Some(p)) = (strace.as_ref(), pending) {
            s.exit(self, p, &r);
        }
        self.arch.regs.rax = match r {
            Ok(v) => v,
            // Restarted, or EINTR, as signal delivery decides.
            Err(e) if e.is_restart() => {
                self.restart = Some(e);
                Errno::EINTR.to_ret()
            }
            Err(e) => e.to_ret(),
        };
    }

    /// A synchronous signal caused by the task itself (a fault). As on
    /// Linux, blocking or ignoring it does not help: the handler runs, or
    /// the default action is taken.
    pub fn force_signal(&mut self, info: Siginfo) {
        let signo = info.signo;
        {
            let mut acts = self.shared.tg.actions.lock().unwrap_or_else(|p| p.into_inner());
            let act = acts.get(signo);
            let blocked = self.sigmask() & signal::bit(signo) != 0;
            if act.handler == signal::SIG_IGN || blocked {
                acts.set(signo, rvisor_syscalls::abi::KernelSigaction::default());
            }
        }
        self.set_sigmask(self.sigmask() & !signal::bit(signo));
        self.shared.send(info);
    }

    /// Sends `signo` to this thread from the kernel (`SIGPIPE`).
    pub fn signal_self(&mut self, signo: i32) {
        self.shared.send(Siginfo::kernel(signo));
    }

    fn exit_task(mut self) {
        let own = self.exit.unwrap_or(ExitStatus::Code(0));
        crate::syscalls::futex::exit_robust_list(&self);
        // This thread's system time stays with the process.
        self.shared.tg.add_sys_time(super::thread_group::own_thread_time());
        if let Some(v) = self.vfork_done.take() {
            v.complete();
        }
        if self.clear_child_tid != 0 && self.shared.tg.exiting().is_none() {
            // CLONE_CHILD_CLEARTID: zero the word and wake one waiter.
            if self.mm.write_obj(self.clear_child_tid, &0u32).is_ok() {
                let key = super::futex::Key::Private(Arc::as_ptr(&self.mm) as usize, self.clear_child_tid);
                self.kernel.futexes.lock().wake(key, 1, u32::MAX);
            }
        }
        *self.shared.interrupt.lock().unwrap_or_else(|p| p.into_inner()) = None;
        // Dropping the context releases its stub thread.
        let tg = self.shared.tg.clone();
        let tid = self.tid();
        let kernel = self.kernel.clone();
        drop(self);
        tg.task_exited(tid, own);
        // PI futexes it still owned go to their first waiters (Linux's
        // exit_pi_state_list), once it no longer counts as alive.
        kernel.futexes.lock().wake_pi_waiters_of(tid.cast_unsigned());
    }

    // ------------------------------------------------------------------
    // Blocking.

    /// Waits until host file `fd` is ready for `events`, or the task must
    /// stop (`EINTR`). The wait is a `poll` with the task's wake-up eventfd.
    pub fn wait_host(&self, fd: impl AsFd, events: rustix::event::PollFlags) -> Result<(), Errno> {
        self.wait_host_until(fd, events, None).map(|_| ())
    }

    /// Like [`wait_host`](Self::wait_host) with a deadline; `Ok(false)` when
    /// it passed.
    pub fn wait_host_until(
        &self,
        fd: impl AsFd,
        events: rustix::event::PollFlags,
        deadline: Option<Instant>,
    ) -> Result<bool, Errno> {
        use rustix::event::{poll, PollFd, PollFlags};
        loop {
            if self.interrupted() {
                return Err(Errno::EINTR);
            }
            let Some(timeout) = time_left(deadline) else { return Ok(false) };
            let mut fds = [PollFd::new(&fd, events), PollFd::new(&self.shared.wake, PollFlags::IN)];
            match poll(&mut fds, timeout.as_ref()) {
                Ok(_) => {}
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Errno::new(e.raw_os_error()).unwrap_or(Errno::EIO)),
            }
            let woke = !fds[1].revents().is_empty();
            let ready = !fds[0].revents().is_empty();
            if woke {
                self.shared.drain_wake();
            }
            if ready {
                return Ok(true);
            }
        }
    }

    /// Blocks until `done()` holds (`Ok(true)`), `deadline` passes
    /// (`Ok(false)`) or the task must stop (`EINTR`). Whoever makes
    /// `done()` true kicks the task.
    pub fn block(&self, done: impl Fn() -> bool, deadline: Option<Instant>) -> Result<bool, Errno> {
        loop {
            if done() {
                return Ok(true);
            }
            if self.interrupted() {
                return Err(Errno::EINTR);
            }
            let Some(ts) = time_left(deadline) else { return Ok(false) };
            self.sleep_on_wake(ts.as_ref());
        }
    }

    /// Like [`block`](Self::block) without a deadline, ended early only
    /// when the task must stop (a fatal signal), not by other signals
    /// (`vfork`, `execve` waiting for the other threads).
    pub fn block_killable(&self, done: impl Fn() -> bool) -> Result<(), Errno> {
        loop {
            if done() {
                return Ok(());
            }
            if self.must_stop() {
                return Err(Errno::EINTR);
            }
            self.sleep_on_wake(None);
        }
    }

    /// Sleeps until kicked (`Ok(true)`; the caller checks again what it
    /// waits for), `deadline` passes (`Ok(false)`) or the task must stop
    /// (`EINTR`).
    pub fn wait_kick(&self, deadline: Option<Instant>) -> Result<bool, Errno> {
        if self.interrupted() {
            return Err(Errno::EINTR);
        }
        let Some(ts) = time_left(deadline) else { return Ok(false) };
        Ok(match self.sleep_on_wake(ts.as_ref()) {
            Some(false) => deadline.is_none(),
            Some(true) | None => true,
        })
    }

    /// Sleeps on the task's wake-up eventfd for at most `timeout`:
    /// `Some(true)` kicked, `Some(false)` timed out, `None` the wait failed
    /// (a host signal).
    fn sleep_on_wake(&self, timeout: Option<&rustix::event::Timespec>) -> Option<bool> {
        use rustix::event::{poll, PollFd, PollFlags};
        let mut fds = [PollFd::new(&self.shared.wake, PollFlags::IN)];
        let n = poll(&mut fds, timeout).ok()?;
        if n > 0 {
            self.shared.drain_wake();
        }
        Some(n > 0)
    }

    /// Like [`wait_kick`](Self::wait_kick), also ending when one of the
    /// host files `fds` is ready for its events.
    pub fn poll_host(
        &self,
        fds: &[(std::os::fd::BorrowedFd<'_>, rustix::event::PollFlags)],
        deadline: Option<Instant>,
    ) -> Result<bool, Errno> {
        use rustix::event::{poll, PollFd, PollFlags};
        if self.interrupted() {
            return Err(Errno::EINTR);
        }
        let Some(ts) = time_left(deadline) else { return Ok(false) };
        let mut pfds: Vec<PollFd<'_>> = fds.iter().map(|(fd, ev)| PollFd::new(fd, *ev)).collect();
        pfds.push(PollFd::new(&self.shared.wake, PollFlags::IN));
        match poll(&mut pfds, ts.as_ref()) {
            Ok(0) => Ok(deadline.is_none()),
            Ok(_) => {
                if pfds.last().is_some_and(|p| !p.revents().is_empty()) {
                    self.shared.drain_wake();
                }
                Ok(true)
            }
            Err(_) => Ok(true),
        }
    }

    /// Sleeps until `deadline`, or until the task must stop (`EINTR`).
    pub fn sleep_until(&self, deadline: Instant) -> Result<(), Errno> {
        loop {
            if self.interrupted() {
                return Err(Errno::EINTR);
            }
            let Some(ts) = time_left(Some(deadline)) else { return Ok(()) };
            self.sleep_on_wake(ts.as_ref());
        }
    }
}

/// The `poll` timeout left until `deadline`: `None` once it has passed,
/// `Some(None)` without a deadline.
fn time_left(deadline: Option<Instant>) -> Option<Option<rustix::event::Timespec>> {
    let Some(d) = deadline else { return Some(None) };
    let left = d.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return None;
    }
    let ts = Timespec::from_duration(left);
    Some(Some(rustix::event::Timespec { tv_sec: ts.tv_sec, tv_nsec: ts.tv_nsec }))
}
