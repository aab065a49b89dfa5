//! Signal numbers, sets and default actions. Delivery to handlers (signal
//! frames, `rt_sigreturn`) comes with the signals issue; until then a
//! signal whose disposition is a handler is reported and acts as its
//! default action.

use rvisor_syscalls::abi::KernelSigaction;

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
