//! Signal numbers, sets, default actions, `siginfo_t` and the pending
//! queues. Delivery (signal frames, `rt_sigreturn`) is in
//! [`super::sigframe`].

use rvisor_syscalls::abi::KernelSigaction;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

/// `SIG_DFL`.
pub const SIG_DFL: u64 = 0;
/// `SIG_IGN`.
pub const SIG_IGN: u64 = 1;

/// `SA_NOCLDSTOP`.
pub const SA_NOCLDSTOP: u64 = 1;
/// `SA_NOCLDWAIT`.
pub const SA_NOCLDWAIT: u64 = 2;
/// `SA_SIGINFO`.
pub const SA_SIGINFO: u64 = 4;
/// `SA_RESTORER`.
pub const SA_RESTORER: u64 = 0x0400_0000;
/// `SA_ONSTACK`.
pub const SA_ONSTACK: u64 = 0x0800_0000;
/// `SA_RESTART`.
pub const SA_RESTART: u64 = 0x1000_0000;
/// `SA_NODEFER`.
pub const SA_NODEFER: u64 = 0x4000_0000;
/// `SA_RESETHAND`.
pub const SA_RESETHAND: u64 = 0x8000_0000;

#[allow(missing_docs)]
pub mod sig {
    pub const SIGHUP: i32 = 1;
    pub const SIGINT: i32 = 2;
    pub const SIGQUIT: i32 = 3;
    pub const SIGILL: i32 = 4;
    pub const SIGTRAP: i32 = 5;
    pub const SIGABRT: i32 = 6;
    pub const SIGBUS: i32 = 7;
    pub const SIGFPE: i32 = 8;
    pub const SIGKILL: i32 = 9;
    pub const SIGUSR1: i32 = 10;
    pub const SIGSEGV: i32 = 11;
    pub const SIGUSR2: i32 = 12;
    pub const SIGPIPE: i32 = 13;
    pub const SIGALRM: i32 = 14;
    pub const SIGTERM: i32 = 15;
    pub const SIGSTKFLT: i32 = 16;
    pub const SIGCHLD: i32 = 17;
    pub const SIGCONT: i32 = 18;
    pub const SIGSTOP: i32 = 19;
    pub const SIGTSTP: i32 = 20;
    pub const SIGTTIN: i32 = 21;
    pub const SIGTTOU: i32 = 22;
    pub const SIGURG: i32 = 23;
    pub const SIGXCPU: i32 = 24;
    pub const SIGXFSZ: i32 = 25;
    pub const SIGVTALRM: i32 = 26;
    pub const SIGPROF: i32 = 27;
    pub const SIGWINCH: i32 = 28;
    pub const SIGIO: i32 = 29;
    pub const SIGPWR: i32 = 30;
    pub const SIGSYS: i32 = 31;
}

/// A signal's default action.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DefaultAction {
    /// Terminate the process.
    Terminate,
    /// Terminate and (on Linux) dump core.
    Core,
    /// Stop the process.
    Stop,
    /// Continue a stopped process.
    Continue,
    /// Nothing.
    Ignore,
}

/// The default action of `sig` (signal(7)).
pub fn default_action(sig: i32) -> DefaultAction {
    use sig::*;
    match sig {
        SIGQUIT | SIGILL | SIGTRAP | SIGABRT | SIGBUS | SIGFPE | SIGSEGV | SIGXCPU | SIGXFSZ | SIGSYS => {
            DefaultAction::Core
        }
        SIGCHLD | SIGURG | SIGWINCH => DefaultAction::Ignore,
        SIGSTOP | SIGTSTP | SIGTTIN | SIGTTOU => DefaultAction::Stop,
        SIGCONT => DefaultAction::Continue,
        _ => DefaultAction::Terminate,
    }
}

/// Whether `sig` is a valid signal number (1..=64).
pub fn valid(sig: i32) -> bool {
    (1..=64).contains(&sig)
}

/// The mask bit of `sig`.
pub fn bit(sig: i32) -> u64 {
    debug_assert!(valid(sig));
    1u64 << (sig - 1)
}

/// Signals that can be neither caught, blocked nor ignored.
pub const UNBLOCKABLE: u64 = (1 << (sig::SIGKILL - 1)) | (1 << (sig::SIGSTOP - 1));

/// The dispositions of a process (shared by its threads).
#[derive(Clone, Debug)]
pub struct SigActions(pub [KernelSigaction; 64]);

impl Default for SigActions {
    fn default() -> Self {
        SigActions([KernelSigaction::default(); 64])
    }
}

impl SigActions {
    /// The action of `sig` (1..=64).
    pub fn get(&self, sig: i32) -> KernelSigaction {
        usize::try_from(sig - 1).ok().and_then(|i| self.0.get(i)).copied().unwrap_or_default()
    }

    /// `execve`: caught signals go back to their default action; ignored
    /// ones stay ignored.
    pub fn reset_for_exec(&mut self) {
        for a in &mut self.0 {
            if a.handler != SIG_IGN {
                *a = KernelSigaction::default();
            }
        }
    }

    /// Sets the action of `sig`.
    pub fn set(&mut self, sig: i32, act: KernelSigaction) {
        if let Some(a) = usize::try_from(sig - 1).ok().and_then(|i| self.0.get_mut(i)) {
            *a = act;
        }
    }
}

/// `si_code` values.
#[allow(missing_docs)]
pub mod code {
    pub const SI_USER: i32 = 0;
    pub const SI_KERNEL: i32 = 0x80;
    pub const SI_QUEUE: i32 = -1;
    pub const SI_TKILL: i32 = -6;
    pub const SEGV_MAPERR: i32 = 1;
    pub const SEGV_ACCERR: i32 = 2;
    pub const BUS_ADRERR: i32 = 2;
    pub const CLD_EXITED: i32 = 1;
    pub const CLD_KILLED: i32 = 2;
    pub const CLD_DUMPED: i32 = 3;
    pub const CLD_STOPPED: i32 = 5;
    pub const CLD_CONTINUED: i32 = 6;
}

/// A `siginfo_t` (128 bytes).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
pub struct Siginfo {
    /// Signal number.
    pub signo: i32,
    /// `si_errno`.
    pub errno: i32,
    /// `si_code`.
    pub code: i32,
    /// Padding.
    pub pad: i32,
    /// The union, as words.
    pub fields: [u64; 14],
}

impl Siginfo {
    /// A signal sent by process `pid` running as `uid` (`kill`, `tkill`).
    pub fn user(signo: i32, code: i32, pid: i32, uid: u32) -> Siginfo {
        let mut i = Siginfo { signo, code, ..Siginfo::default() };
        i.fields[0] = u64::from(pid.cast_unsigned()) | (u64::from(uid) << 32);
        i
    }

    /// A signal the kernel sends (`SIGPIPE`, a host signal forwarded).
    pub fn kernel(signo: i32) -> Siginfo {
        Siginfo { signo, code: code::SI_KERNEL, ..Siginfo::default() }
    }

    /// A fault at `addr`.
    pub fn fault(signo: i32, code: i32, addr: u64) -> Siginfo {
        let mut i = Siginfo { signo, code, ..Siginfo::default() };
        i.fields[0] = addr;
        i
    }

    /// A child's state change (`SIGCHLD`).
    pub fn child(signo: i32, code: i32, pid: i32, uid: u32, status: i32) -> Siginfo {
        let mut i = Siginfo::user(signo, code, pid, uid);
        i.fields[1] = u64::from(status.cast_unsigned());
        i
    }
}

/// Signals Linux dequeues before the others (`SYNCHRONOUS_MASK`).
const SYNCHRONOUS: u64 = (1 << (sig::SIGSEGV - 1))
    | (1 << (sig::SIGBUS - 1))
    | (1 << (sig::SIGILL - 1))
    | (1 << (sig::SIGTRAP - 1))
    | (1 << (sig::SIGFPE - 1))
    | (1 << (sig::SIGSYS - 1));

/// Most real-time signals queued in one queue (`RLIMIT_SIGPENDING` is
/// larger on Linux, but counted per user).
const MAX_QUEUED: usize = 4096;

/// Pending signals: a set, and the `siginfo` of each instance (one per
/// standard signal, queued for real-time ones).
#[derive(Debug, Default)]
pub struct SigQueue {
    bits: u64,
    list: std::collections::VecDeque<Siginfo>,
}

impl SigQueue {
    /// The pending set.
    pub fn bits(&self) -> u64 {
        self.bits
    }

    /// Queues `info`; `false` if it was dropped (a standard signal already
    /// pending, or the queue is full).
    pub fn push(&mut self, info: Siginfo) -> bool {
        if !valid(info.signo) {
            return false;
        }
        let b = bit(info.signo);
        if (info.signo < 32 && self.bits & b != 0) || self.list.len() >= MAX_QUEUED {
            return false;
        }
        self.list.push_back(info);
        self.bits |= b;
        true
    }

    /// Takes the next signal of `allowed`: synchronous ones first, then the
    /// lowest number; the oldest instance of it.
    pub fn take(&mut self, allowed: u64) -> Option<Siginfo> {
        let ready = self.bits & allowed;
        if ready == 0 {
            return None;
        }
        let pick = if ready & SYNCHRONOUS != 0 { ready & SYNCHRONOUS } else { ready };
        let signo = i32::try_from(pick.trailing_zeros()).ok()? + 1;
        let i = self.list.iter().position(|x| x.signo == signo)?;
        let info = self.list.remove(i)?;
        if !self.list.iter().any(|x| x.signo == signo) {
            self.bits &= !bit(signo);
        }
        Some(info)
    }

    /// Whether a pending instance satisfies `f`.
    pub fn holds(&self, f: impl Fn(&Siginfo) -> bool) -> bool {
        self.list.iter().any(f)
    }

    /// Drops every pending instance of the signals in `set`.
    pub fn discard(&mut self, set: u64) {
        self.list.retain(|x| !valid(x.signo) || bit(x.signo) & set == 0);
        self.bits &= !set;
    }
}

/// A thread's or a process's pending signals: the queue, and its set
/// readable without the lock (the fast check at each return to the
/// application).
#[derive(Debug, Default)]
pub struct Pending {
    q: std::sync::Mutex<SigQueue>,
    bits: std::sync::atomic::AtomicU64,
}

impl Pending {
    fn with<R>(&self, f: impl FnOnce(&mut SigQueue) -> R) -> R {
        let mut q = self.q.lock().unwrap_or_else(|p| p.into_inner());
        let r = f(&mut q);
        self.bits.store(q.bits(), std::sync::atomic::Ordering::Release);
        r
    }

    /// The pending set.
    pub fn bits(&self) -> u64 {
        self.bits.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Queues `info` (see [`SigQueue::push`]).
    pub fn push(&self, info: Siginfo) -> bool {
        self.with(|q| q.push(info))
    }

    /// Takes the next signal of `allowed` (see [`SigQueue::take`]).
    pub fn take(&self, allowed: u64) -> Option<Siginfo> {
        if self.bits() & allowed == 0 {
            return None;
        }
        self.with(|q| q.take(allowed))
    }

    /// Drops every pending instance of the signals in `set`.
    pub fn discard(&self, set: u64) {
        self.with(|q| q.discard(set));
    }

    /// Whether a pending instance satisfies `f`.
    pub fn holds(&self, f: impl Fn(&Siginfo) -> bool) -> bool {
        self.q.lock().unwrap_or_else(|p| p.into_inner()).holds(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standard_signals_coalesce_and_realtime_ones_queue() {
        let mut q = SigQueue::default();
        assert!(q.push(Siginfo::kernel(sig::SIGUSR1)));
        assert!(!q.push(Siginfo::kernel(sig::SIGUSR1)), "one instance of a standard signal");
        assert!(q.push(Siginfo::user(40, 0, 7, 0)));
        assert!(q.push(Siginfo::user(40, 0, 8, 0)));
        assert!(q.push(Siginfo::fault(sig::SIGSEGV, code::SEGV_MAPERR, 0x10)));
        // Synchronous first, then the lowest number, then RT in order.
        assert_eq!(q.take(u64::MAX).map(|i| i.signo), Some(sig::SIGSEGV));
        assert_eq!(q.take(!bit(sig::SIGUSR1)).map(|i| i.fields[0] & 0xffff_ffff), Some(7));
        assert_eq!(q.take(u64::MAX).map(|i| i.signo), Some(sig::SIGUSR1));
        assert_eq!(q.bits(), bit(40));
        assert_eq!(q.take(u64::MAX).map(|i| i.fields[0] & 0xffff_ffff), Some(8));
        assert_eq!((q.bits(), q.take(u64::MAX)), (0, None));
        assert!(!q.push(Siginfo::kernel(0)) && !q.push(Siginfo::kernel(65)));
    }
}
