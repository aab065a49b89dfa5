//! rvisor platforms.
//!
//! A platform runs application threads and hands every system call, fault and
//! host signal they produce to the sentry. It knows registers, traps, faults
//! and how to map file ranges into an application address space; it knows
//! nothing of Linux semantics (that is the sentry's job).
//!
//! The three traits:
//! - [`Platform`]: creates address spaces and contexts, says what it can do.
//! - [`AddressSpace`]: an application address space; the sentry maps *file
//!   ranges* into it (a range of the sandbox's memory file or of a host file
//!   the gofer donated), unmaps and changes protections. It is a cache of the
//!   sentry's own VMA set, populated on fault or eagerly.
//! - [`Context`]: one application thread's execution state on the platform.
//!   [`Context::switch`] runs it in an address space until it makes a system
//!   call, faults, receives a host signal or is interrupted.
//!
//! Backends: [`ptrace`] (stub processes traced with `PTRACE_SYSEMU`) and
//! [`systrap`] (the same stub processes, application threads untraced,
//! trapping through `SIGSYS` and shared memory).

pub mod arch;
pub mod fake;
pub mod ptrace;
mod seccomp;
pub use ptrace::systrap;
mod sys;

use std::any::Any;
use std::os::fd::BorrowedFd;
use std::sync::Arc;

pub use arch::{ArchState, FpState, Regs};
pub use sys::{limit_malloc_arenas, report_seccomp_traps, thread_cpu_time, trim_after_startup};

bitflags::bitflags! {
    /// Page protections of a mapping.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
    pub struct Prot: u32 {
        /// Readable.
        const READ = 1;
        /// Writable.
        const WRITE = 2;
        /// Executable.
        const EXEC = 4;
    }
}

impl Prot {
    /// The host `PROT_*` value.
    pub fn to_host(self) -> i32 {
        let mut p = 0;
        if self.contains(Prot::READ) {
            p |= libc::PROT_READ;
        }
        if self.contains(Prot::WRITE) {
            p |= libc::PROT_WRITE;
        }
        if self.contains(Prot::EXEC) {
            p |= libc::PROT_EXEC;
        }
        p
    }
}

/// A range of a host file to map: a range of the sandbox's memory file or of
/// a host file the gofer donated. The descriptor must stay open for the call.
#[derive(Clone, Copy, Debug)]
pub struct FileRange<'a> {
    /// The host file.
    pub fd: BorrowedFd<'a>,
    /// Offset of the range's first byte in the file (page aligned).
    pub offset: u64,
}

/// One change to an address space (see [`AddressSpace::apply`]).
#[derive(Clone, Copy, Debug)]
pub enum MapOp<'a> {
    /// As [`AddressSpace::map`].
    Map { addr: u64, len: u64, prot: Prot, file: FileRange<'a> },
    /// As [`AddressSpace::unmap`].
    Unmap { addr: u64, len: u64 },
    /// As [`AddressSpace::protect`].
    Protect { addr: u64, len: u64, prot: Prot },
}

/// Makes `ops` one call at a time (what [`AddressSpace::apply`] does by
/// default).
pub fn apply_each<A: AddressSpace + ?Sized>(
    aspace: &A,
    ops: &[MapOp<'_>],
) -> std::result::Result<(), (usize, Error)> {
    for (i, op) in ops.iter().enumerate() {
        let r = match *op {
            MapOp::Map { addr, len, prot, file } => aspace.map(addr, len, prot, file),
            MapOp::Unmap { addr, len } => aspace.unmap(addr, len),
            MapOp::Protect { addr, len, prot } => aspace.protect(addr, len, prot),
        };
        r.map_err(|e| (i, e))?;
    }
    Ok(())
}

/// How an access that faulted was made, when the platform can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A load.
    Read,
    /// A store.
    Write,
    /// An instruction fetch.
    Execute,
}

/// Host signal information, as the kernel reported it (`siginfo_t`'s
/// common fields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HostSignal {
    /// Signal number.
    pub signo: i32,
    /// `si_code`.
    pub code: i32,
    /// `si_addr` for faults (0 otherwise).
    pub addr: u64,
}

/// Why [`Context::switch`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Event {
    /// The thread made a system call. The number is in `regs.orig_rax`, the
    /// arguments in `rdi, rsi, rdx, r10, r8, r9`; `rip` points after the
    /// `syscall` instruction. Write the result to `rax` and switch again.
    Syscall,
    /// The thread touched memory it may not touch as currently mapped.
    /// Resuming re-executes the instruction.
    Fault {
        /// The faulting address.
        addr: u64,
        /// The kind of access, when the platform knows it
        /// ([`Capabilities::fault_access_type`]).
        access: Option<Access>,
        /// The host's `si_code` (`SEGV_MAPERR`, `SEGV_ACCERR`, `BUS_ADRERR`…).
        code: i32,
        /// `SIGSEGV` or `SIGBUS`.
        signo: i32,
    },
    /// The thread received a synchronous host signal that is not a memory
    /// fault (`SIGFPE`, `SIGILL`, `SIGTRAP`, a `SIGSEGV` with `SI_KERNEL`…),
    /// or an asynchronous one someone on the host sent to the stub.
    Signal(HostSignal),
    /// [`InterruptHandle::interrupt`] was called.
    Interrupted,
    /// A system call of another ABI (`int 0x80` or `sysenter`: i386
    /// numbers and registers). The sentry offers only x86_64: it answers
    /// `ENOSYS` in `rax`.
    ForeignSyscall,
}

/// What a platform can do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Capabilities {
    /// [`Event::Fault`] carries the access type.
    pub fault_access_type: bool,
}

/// A platform error. These are host-side failures, not application errors.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A host system call failed.
    #[error("{op}: {err}")]
    Os {
        /// What was being done.
        op: &'static str,
        /// The host error.
        err: std::io::Error,
    },
    /// The stub thread running the context died.
    #[error("stub thread {tid} died: {how}")]
    StubDied {
        /// Host thread id.
        tid: i32,
        /// Exit description.
        how: String,
    },
    /// An address range outside what the platform lets applications use.
    #[error("invalid range {addr:#x}+{len:#x}")]
    InvalidRange {
        /// Start.
        addr: u64,
        /// Length.
        len: u64,
    },
    /// An address space of another platform was passed in.
    #[error("address space belongs to another platform")]
    ForeignAddressSpace,
    /// The platform misbehaved in a way that should not happen.
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn os(op: &'static str) -> Self {
        Error::Os { op, err: std::io::Error::last_os_error() }
    }
    pub(crate) fn errno(op: &'static str, errno: i32) -> Self {
        Error::Os { op, err: std::io::Error::from_raw_os_error(errno) }
    }
}

/// Platform result.
pub type Result<T> = std::result::Result<T, Error>;

/// A mechanism that runs application threads and traps their system calls.
pub trait Platform: Send + Sync {
    /// Short name, as `--platform` spells it.
    fn name(&self) -> &'static str;
    /// What the platform can tell the sentry.
    fn capabilities(&self) -> Capabilities;
    /// Lowest address an application may map.
    fn min_user_address(&self) -> u64;
    /// One past the highest address an application may map. Everything
    /// above belongs to the platform (stub code and shared pages).
    fn max_user_address(&self) -> u64;
    /// A new, empty application address space.
    fn new_address_space(&self) -> Result<Box<dyn AddressSpace>>;
    /// A new context (one application thread's execution state).
    fn new_context(&self) -> Result<Box<dyn Context>>;
}

/// An application address space, as the platform caches it. All addresses
/// and lengths are page aligned and lie within the platform's user range.
pub trait AddressSpace: Send + Sync + Any {
    /// Maps `len` bytes of `file` at `addr` with `prot`, replacing whatever
    /// was mapped there. Writes through the mapping reach the file.
    fn map(&self, addr: u64, len: u64, prot: Prot, file: FileRange<'_>) -> Result<()>;
    /// Removes mappings in `[addr, addr+len)`.
    fn unmap(&self, addr: u64, len: u64) -> Result<()>;
    /// Changes the protections of mappings in `[addr, addr+len)`.
    fn protect(&self, addr: u64, len: u64, prot: Prot) -> Result<()>;
    /// Makes `ops` in order, stopping at the first that fails: returns how
    /// many were made, and the error. Backends may make them all in one
    /// round trip; this default makes them one by one.
    fn apply(&self, ops: &[MapOp<'_>]) -> std::result::Result<(), (usize, Error)> {
        apply_each(self, ops)
    }
    /// CPU time the application has used in this address space (its
    /// threads' user time and the host's work for them), if the platform
    /// can tell.
    fn cpu_time(&self) -> Option<std::time::Duration> {
        None
    }
    /// Ends the address space for good: nothing runs in it again, so its
    /// memory may be reused without unmapping it first. Called when the
    /// last application thread using it is gone.
    fn destroy(&self) {}
    /// For backends: downcasting to their own type.
    fn as_any(&self) -> &dyn Any;
}

/// One application thread's execution state on a platform.
pub trait Context: Send {
    /// Runs the thread described by `arch` in `address_space` until it makes
    /// a system call, faults, gets a host signal or is interrupted, and
    /// returns why; `arch` then holds the thread's registers.
    fn switch(&mut self, address_space: &dyn AddressSpace, arch: &mut ArchState) -> Result<Event>;
    /// A handle other threads use to make a running (or the next) `switch`
    /// return [`Event::Interrupted`] promptly.
    fn interrupt_handle(&self) -> InterruptHandle;
    /// Makes `arch.fp` hold the thread's FP/xsave state, fetching it from
    /// the platform if only the platform has it. FP state is fetched only
    /// when asked (signal frames, ptrace, fork, execve).
    fn fetch_fp(&mut self, arch: &mut ArchState) -> Result<()>;
    /// CPU time the thread has used running application code in
    /// `address_space` (its user time and the host's work for it, as the
    /// host counts the thread that runs it), if the platform can tell.
    /// Called between switches, from the thread that switches it.
    fn thread_cpu_time(&mut self, address_space: &dyn AddressSpace) -> Option<std::time::Duration> {
        let _ = address_space;
        None
    }
}

/// Interrupts a context's `switch` (see [`Context::interrupt_handle`]).
#[derive(Clone)]
pub struct InterruptHandle(Arc<dyn Interrupt>);

impl InterruptHandle {
    /// Wraps a backend's interrupt mechanism.
    pub fn new(inner: Arc<dyn Interrupt>) -> Self {
        InterruptHandle(inner)
    }
    /// Makes the context's running or next `switch` return
    /// [`Event::Interrupted`].
    pub fn interrupt(&self) {
        self.0.interrupt();
    }
}

impl std::fmt::Debug for InterruptHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("InterruptHandle")
    }
}

/// A backend's interrupt mechanism.
pub trait Interrupt: Send + Sync {
    /// See [`InterruptHandle::interrupt`].
    fn interrupt(&self);
}

/// The page size of x86_64.
pub const PAGE_SIZE: u64 = 4096;

/// Whether `v` is page aligned.
pub fn page_aligned(v: u64) -> bool {
    v.is_multiple_of(PAGE_SIZE)
}
