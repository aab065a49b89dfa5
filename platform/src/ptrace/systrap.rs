//! The systrap platform: application threads run *untraced* in the same
//! stub processes as the ptrace platform's, and their system calls, faults
//! and interrupts reach the sentry through a signal handler in the stub and
//! shared memory instead of ptrace stops.
//!
//! - **Trapping.** The stub filter of a systrap platform answers
//!   `SECCOMP_RET_TRAP` (not a kill) to a system call from outside the stub's
//!   code, so the kernel raises `SIGSYS` in the thread without executing the
//!   call. Every application thread also has a filter of its own (added
//!   before it first runs application code, see
//!   [`crate::seccomp::app_thread_filter`]) that lets it make only the
//!   handler's calls: `futex` on its context words, `rt_sigreturn`, `exit`.
//!   Whatever the application jumps to, the host runs nothing else for it.
//! - **The handler** (`systrap_handler` in the stub page) runs for `SIGSYS`,
//!   the fault signals and the interrupt signal, on a signal stack inside
//!   the thread's *context slot* of the process's *area* (a memfd the
//!   sentry maps too). It saves the FS/GS bases, marks the slot trapped,
//!   waits for the sentry's answer and `rt_sigreturn`s into the registers
//!   the sentry left in the signal frame.
//! - **Hand-off.** One 32-bit state word per slot. Each side spins a little
//!   on it (when a CPU is free this is the fast path), then sleeps with
//!   `FUTEX_WAIT`, announcing it in the word so that the other side knows
//!   to `FUTEX_WAKE` it. The state word is also the thread's
//!   `clear_child_tid`: it becomes 0 (dead) when the thread exits.
//! - **Address-space changes** are made as on the ptrace platform: injected
//!   into a *traced* stub thread of the process (never an application
//!   thread), one at a time or batched.
//! - **Hostile memory.** The application can write its area (a sibling
//!   thread can write any slot of its process at any time). The sentry
//!   reads from it only registers, signal numbers and pointers, and checks
//!   every pointer against the slot before use; what the application gains
//!   by scribbling is the ability to set its own registers or to stop or
//!   kill its own process.

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::stub::StubRegion;
use super::{batch_addr, downcast, result_addr, IntrState, PtraceAddressSpace, PtracePlatform, StubProcess};
use super::{Config, Placement, INTERRUPT_SIGNAL};
use crate::arch::{xsave_size, FpStatus, FXSAVE_SIZE};
use crate::{
    sys, AddressSpace, ArchState, Capabilities, Context, Error, Event, FpState, InterruptHandle, Platform,
    Regs, Result, PAGE_SIZE,
};

/// Size of one thread's context slot: a header page, then its signal stack.
pub(crate) const SLOT_SIZE: u64 = 32 << 10;
/// `rsp & SLOT_MASK` is the slot's header (the handler's computation).
pub(crate) const SLOT_MASK: i64 = -(32 << 10);
/// Threads one process can have running application code.
const SLOTS: u32 = 256;
/// Size of a process's area (aligned to its size, so it never crosses a
/// 4 GiB boundary).
const AREA_SIZE: u64 = SLOT_SIZE * SLOTS as u64;
/// The header page at the start of a slot.
const HEADER: u64 = PAGE_SIZE;

// Header fields (byte offsets), shared with the handler's assembly.
/// `u32` state word (below).
pub(crate) const H_STATE: usize = 0;
/// Command: 0 run, 1 exit.
pub(crate) const H_CMD: usize = 40;
/// Address of the signal frame's `ucontext` (written by the handler).
pub(crate) const H_UCTX: usize = 8;
/// How many times the handler spins before it sleeps.
pub(crate) const H_SPIN: usize = 16;
/// FS base (saved and restored by the handler).
pub(crate) const H_FS: usize = 24;
/// GS base (saved and restored by the handler).
pub(crate) const H_GS: usize = 32;

/// The thread is gone (its `clear_child_tid`).
const DEAD: u32 = 0;
/// The thread is in the handler, waiting; its frame is the sentry's.
pub(crate) const TRAPPED: u32 = 1;
/// The sentry answered: the thread runs application code.
pub(crate) const RESUME: u32 = 2;
/// Trapped, and the handler sleeps on the word (wake it).
pub(crate) const STUB_SLEEPS: u32 = 3;
/// The sentry answered (as RESUME) and then slept on the word: the handler
/// returns on it as on RESUME, and wakes the sentry at its next trap.
pub(crate) const SENTRY_SLEEPS: u32 = 4;

// struct ucontext and struct sigcontext (x86_64) offsets.
const UC_STACK: usize = 16;
const UC_MCONTEXT: usize = 40;
const UC_SIGMASK: usize = 296;
/// `struct rt_sigframe` puts the siginfo right after the ucontext.
const UC_SIGINFO: usize = 304;
const SIGINFO_SIZE: usize = 128;
const MC_CSGSFS: usize = 144;
const MC_FPSTATE: usize = 184;
/// `_fpx_sw_bytes` in the FXSAVE area's software-reserved bytes.
const FX_SW: usize = 464;
const FP_XSTATE_MAGIC1: u32 = 0x4650_5853;

const SA_SIGINFO: u64 = 4;
const SA_ONSTACK: u64 = 0x0800_0000;
const SA_RESTORER: u64 = 0x0400_0000;
const SYS_SECCOMP_CODE: i32 = 1;
const SI_TKILL: i32 = -6;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// The signals the handler takes: system calls, faults, the interrupt.
const HANDLED: [i32; 7] =
    [libc::SIGSYS, libc::SIGSEGV, libc::SIGBUS, libc::SIGILL, libc::SIGFPE, libc::SIGTRAP, INTERRUPT_SIGNAL];

/// Where a process's area is mapped: below its result page and a guard
/// page, aligned to its size.
pub(crate) fn area_start(region: &StubRegion) -> u64 {
    (result_addr(region) - PAGE_SIZE - AREA_SIZE) & !(AREA_SIZE - 1)
}

/// Hand-offs without spinning after which a context's sentry thread and
/// application thread share one CPU (until a probe finds spinning pays).
const COLOCATE_AFTER: u32 = 2 * Spin::PROBE_EVERY;

/// How long a sleeping side waits before it checks the other is alive.
const WAIT_SLICE: Duration = Duration::from_millis(100);
/// An interrupt not answered for this long means the application blocked
/// the signal (through a forged `rt_sigreturn`): its process is killed.
const INTERRUPT_GRACE: Duration = Duration::from_secs(5);

/// Largest spinning budgets (iterations of `pause`) of the hand-off; each
/// context adapts its own below them ([`Spin`]).
#[derive(Clone, Copy, Debug)]
pub struct SystrapConfig {
    /// The sentry waiting for the application's next trap.
    pub sentry_spin: u32,
    /// The handler waiting for the sentry's answer.
    pub stub_spin: u32,
}

impl Default for SystrapConfig {
    fn default() -> Self {
        // Chosen by measurement (docs/PERFORMANCE.md, "Systrap, the default
        // platform").
        SystrapConfig { sentry_spin: 2000, stub_spin: 2000 }
    }
}

/// An adaptive spinning budget: spinning pays only when the other side
/// answers while this one spins (a CPU is free for it and the answer is
/// quick). Each wait that ends in a sleep halves the budget, down to none;
/// each answer caught while spinning doubles it, up to the maximum. With no
/// budget left, one wait in [`Spin::PROBE_EVERY`] spins a little to find
/// out whether spinning pays again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spin {
    budget: u32,
    max: u32,
    since_probe: u32,
    /// What the last [`Spin::take`] gave (a probe's budget).
    last: u32,
}

impl Spin {
    /// Waits between two probes once the budget is gone.
    pub const PROBE_EVERY: u32 = 64;
    /// Budgets below this are not worth a spin.
    const MIN: u32 = 16;

    /// A budget starting (and capped) at `max` (0: never spin).
    pub fn new(max: u32) -> Spin {
        Spin { budget: max, max, since_probe: 0, last: 0 }
    }

    /// How long the next wait spins.
    pub fn take(&mut self) -> u32 {
        self.last = self.budget;
        if self.budget == 0 && self.max > 0 {
            self.since_probe += 1;
            if self.since_probe >= Self::PROBE_EVERY {
                self.since_probe = 0;
                self.last = (self.max / 4).max(Self::MIN.min(self.max));
            }
        }
        self.last
    }

    /// The answer came while spinning.
    pub fn hit(&mut self) {
        self.budget = self.budget.max(self.last).max(Self::MIN).saturating_mul(2).min(self.max);
    }

    /// The wait ended in a sleep.
    pub fn miss(&mut self) {
        self.budget /= 2;
        if self.budget < Self::MIN {
            self.budget = 0;
        }
    }
}

/// Whether spinning can ever pay: not when this process may run on one
/// CPU only (affinity, or a CPU quota of less than two CPUs), where the
/// spinning side only delays the other.
fn spinning_pays() -> bool {
    std::thread::available_parallelism().is_ok_and(|n| n.get() > 1)
}

/// The systrap platform.
pub struct SystrapPlatform {
    inner: PtracePlatform,
    config: SystrapConfig,
    cpus: Arc<[usize]>,
}

impl std::fmt::Debug for SystrapPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystrapPlatform").field("inner", &self.inner).finish()
    }
}

impl SystrapPlatform {
    /// Starts the platform (as [`PtracePlatform::new`] does). Fails on a
    /// host without user-mode FS/GS base instructions.
    pub fn new(config: SystrapConfig) -> Result<SystrapPlatform> {
        if !Self::supported() {
            return Err(Error::Internal("systrap needs FSGSBASE (kernel 5.9+ on a CPU with it)".into()));
        }
        let inner = PtracePlatform::start(Config { placement: Placement::Unpinned }, true)?;
        let config = if spinning_pays() { config } else { SystrapConfig { sentry_spin: 0, stub_spin: 0 } };
        let cpus: Arc<[usize]> = inner.shared.cpus.clone().into();
        Ok(SystrapPlatform { inner, config, cpus })
    }

    /// Whether this host can run systrap: its handler saves and restores
    /// the FS/GS bases with the user-mode FSGSBASE instructions.
    pub fn supported() -> bool {
        const HWCAP2_FSGSBASE: u64 = 1 << 1;
        // SAFETY: getauxval reads the process's auxiliary vector.
        let hwcap2 = unsafe { libc::getauxval(libc::AT_HWCAP2) };
        hwcap2 & HWCAP2_FSGSBASE != 0
    }

    /// Address of the stub code page (for tests and diagnostics).
    pub fn stub_page(&self) -> u64 {
        self.inner.stub_page()
    }

    /// Host pid of the master stub (for tests and diagnostics).
    pub fn master_pid(&self) -> i32 {
        self.inner.master_pid()
    }
}

impl Platform for SystrapPlatform {
    fn name(&self) -> &'static str {
        "systrap"
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities { fault_access_type: false }
    }

    fn min_user_address(&self) -> u64 {
        self.inner.min_user_address()
    }

    fn max_user_address(&self) -> u64 {
        self.inner.max_user_address()
    }

    fn new_address_space(&self) -> Result<Box<dyn AddressSpace>> {
        self.inner.new_address_space()
    }

    fn new_context(&self) -> Result<Box<dyn Context>> {
        Ok(Box::new(SystrapContext {
            id: super::next_id(),
            config: self.config,
            intr: Arc::new(IntrState::default()),
            threads: Vec::new(),
            last: None,
            sentry_spin: Spin::new(self.config.sentry_spin),
            stub_spin: Spin::new(self.config.stub_spin),
            cpus: self.cpus.clone(),
            cpu: None,
            placed: false,
            no_spin: 0,
        }))
    }
}

// ---------------------------------------------------------------------------
// Areas.

/// A process's context slots: a memfd mapped shared in the sentry and, at
/// [`area_start`], in the stub process.
pub(crate) struct Area {
    /// The sentry's mapping.
    base: usize,
    /// Where the stub process maps it.
    stub_base: u64,
    slots: Mutex<Slots>,
}

#[derive(Default)]
struct Slots {
    /// Slots never handed out start here.
    next: u32,
    free: Vec<u32>,
    /// Released slots whose thread may not have exited yet.
    exiting: Vec<u32>,
}

impl Area {
    /// The area of a process that made it (memfd `fd`, mapped at
    /// `stub_base` there), mapped into the sentry.
    fn from_fd(fd: OwnedFd, stub_base: u64) -> Result<Area> {
        let len = usize::try_from(AREA_SIZE).map_err(|_| Error::Internal("area size".into()))?;
        // The process made it before it ran anything of the application's;
        // still, check it is what was asked for.
        let st = sys::fstat(fd.as_fd(), "fstat systrap area")?;
        let regular = st.st_mode & libc::S_IFMT == libc::S_IFREG;
        if u64::try_from(st.st_size).ok() != Some(AREA_SIZE) || !regular {
            return Err(Error::Internal("systrap area: not the file the stub was asked to make".into()));
        }
        // Unmapped in Drop.
        let base = sys::map_shared(fd.as_fd(), len, "map systrap area")?;
        // The mapping keeps the file; the descriptor closes here.
        Ok(Area { base, stub_base, slots: Mutex::new(Slots::default()) })
    }

    fn alloc(&self) -> Option<u32> {
        let mut s = self.slots.lock().unwrap_or_else(|p| p.into_inner());
        // Threads told to exit are gone once their state word is cleared.
        let exiting = std::mem::take(&mut s.exiting);
        for slot in exiting {
            if self.state(slot).load(Ordering::Acquire) == DEAD {
                s.free.push(slot);
            } else {
                s.exiting.push(slot);
            }
        }
        if let Some(slot) = s.free.pop() {
            return Some(slot);
        }
        (s.next < SLOTS).then(|| {
            s.next += 1;
            s.next - 1
        })
    }

    fn release(&self, slot: u32) {
        self.slots.lock().unwrap_or_else(|p| p.into_inner()).exiting.push(slot);
    }

    /// The sentry's address of byte `off` of slot `slot`'s header.
    fn header(&self, slot: u32, off: usize) -> usize {
        let slot = usize::try_from(slot).unwrap_or(0).min(SLOTS as usize - 1);
        self.base + slot * usize::try_from(SLOT_SIZE).unwrap_or(0) + off
    }

    fn state(&self, slot: u32) -> &AtomicU32 {
        // SAFETY: the header's first word, 4-aligned, inside the live
        // shared mapping (which lives as long as `self`); other processes
        // access it only atomically or through the kernel's futex and
        // clear_child_tid writes.
        unsafe { AtomicU32::from_ptr(self.header(slot, H_STATE) as *mut u32) }
    }

    fn write_word(&self, slot: u32, off: usize, v: u64) {
        // SAFETY: an 8-aligned word of slot `slot`'s header inside the live
        // mapping; volatile since the stub reads it concurrently.
        unsafe { std::ptr::write_volatile(self.header(slot, off) as *mut u64, v) }
    }

    fn read_word(&self, slot: u32, off: usize) -> u64 {
        // SAFETY: as in `write_word`.
        unsafe { std::ptr::read_volatile(self.header(slot, off) as *const u64) }
    }

    /// The stub's address of slot `slot`.
    fn stub_slot(&self, slot: u32) -> u64 {
        self.stub_base + u64::from(slot) * SLOT_SIZE
    }

    /// The sentry's address of `len` bytes at the stub's `addr`, if they lie
    /// in slot `slot`'s signal stack, aligned to `align`.
    fn in_stack(&self, slot: u32, addr: u64, len: u64, align: u64) -> Option<usize> {
        let lo = self.stub_slot(slot) + HEADER;
        let hi = self.stub_slot(slot) + SLOT_SIZE;
        let ok = addr >= lo && addr.checked_add(len).is_some_and(|e| e <= hi) && addr.is_multiple_of(align);
        ok.then(|| self.base + usize::try_from(addr - self.stub_base).unwrap_or(0))
    }
}

impl std::fmt::Debug for Area {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Area").field("stub_base", &self.stub_base).finish_non_exhaustive()
    }
}

impl Drop for Area {
    fn drop(&mut self) {
        let len = usize::try_from(AREA_SIZE).unwrap_or(0);
        // SAFETY: unmapping the mapping made in `new`; nothing refers to it
        // any more (threads and processes hold the Arc).
        unsafe { libc::munmap(self.base as *mut libc::c_void, len) };
    }
}

fn rd(p: usize) -> u64 {
    // SAFETY: callers pass addresses checked by `Area::in_stack` (inside
    // the live mapping); volatile since the application may write them.
    unsafe { std::ptr::read_volatile(p as *const u64) }
}

fn wr(p: usize, v: u64) {
    // SAFETY: as in `rd`.
    unsafe { std::ptr::write_volatile(p as *mut u64, v) }
}

fn futex(word: &AtomicU32, op: i32, val: u32, timeout: Option<Duration>) -> i64 {
    let ts = timeout.map(|d| libc::timespec {
        tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(1),
        tv_nsec: libc::c_long::from(d.subsec_nanos()),
    });
    let tsp = ts.as_ref().map_or(std::ptr::null(), std::ptr::from_ref);
    // SAFETY: futex on a live 4-aligned word with a valid (or null)
    // timeout; shared (not private) since the stub maps the word too.
    unsafe { libc::syscall(libc::SYS_futex, word.as_ptr(), op, val, tsp, 0usize, 0u32) }
}

impl PtraceAddressSpace {
    /// The process's area (made with the process, [`make_area`]).
    fn area(&self) -> Result<Arc<Area>> {
        let g = self.inner.area.lock().unwrap_or_else(|p| p.into_inner());
        g.clone().ok_or_else(|| Error::Internal("stub process without a systrap area".into()))
    }
}

/// Gives a new stub process (its `leader` seized, its batch page at slot
/// `slot` mapped, nothing of the application's run yet) its context area
/// and the handler, in one batch: the process makes a memfd (descriptor 2,
/// its lowest free one), sizes and maps it, and installs the handler for
/// every signal it takes, with every signal blocked while it runs. The
/// sentry takes the file with `pidfd_getfd`, then the process closes its
/// descriptor (its mapping keeps the file). The structures are in the
/// batch page, which the application cannot write.
pub(crate) fn make_area(
    leader: &super::tracee::Tracee,
    region: &StubRegion,
    batch: &super::batch::BatchPages,
    slot: u32,
    pidfd: std::os::fd::BorrowedFd<'_>,
) -> Result<Area> {
    use crate::seccomp::allowed::{CLOSE_RANGE, FTRUNCATE, MEMFD_CREATE, MMAP, RT_SIGACTION};
    const FD: i32 = super::files::FIRST_FILE_FD;
    let fd = u64::try_from(FD).unwrap_or(2);
    let stub_base = area_start(region);
    let prot = u64::try_from(libc::PROT_READ | libc::PROT_WRITE).unwrap_or(3);
    let flags = u64::try_from(libc::MAP_SHARED | libc::MAP_FIXED).unwrap_or(0x11);
    let data = data_addr(region, 3 + HANDLED.len());
    let mut calls = vec![
        [u64::from(MEMFD_CREATE), data + 32, 0, 0, 0, 0, 0],
        [u64::from(FTRUNCATE), fd, AREA_SIZE, 0, 0, 0, 0],
        [u64::from(MMAP), stub_base, AREA_SIZE, prot, flags, fd, 0],
    ];
    for sig in HANDLED {
        let sig = u64::try_from(sig).unwrap_or(0);
        calls.push([u64::from(RT_SIGACTION), sig, data, 0, 8, 0, 0]);
    }
    let handler = region.addr(region.off.systrap_handler);
    let restorer = region.addr(region.off.systrap_restorer);
    // struct sigaction, then the memfd's name.
    let name = [u64::from_le_bytes(*b"rvisor-s"), u64::from_le_bytes(*b"ystrap\0\0")];
    let act = [handler, SA_SIGINFO | SA_ONSTACK | SA_RESTORER, restorer, u64::MAX, name[0], name[1]];
    batch.write_words(slot, &batch_words(&calls, &act));
    let n = u64::try_from(calls.len()).unwrap_or(0);
    let r = leader.inject_batch(region, batch_addr(region), n)?;
    batch_done("make the systrap area and install its handler", r)?;
    let file = sys::pidfd_getfd(pidfd, FD)?;
    let r = leader.inject(region, CLOSE_RANGE, [fd, u64::from(u32::MAX), 0, 0, 0, 0])?;
    if r != 0 {
        return Err(Error::errno("close the systrap area in the stub", i32::try_from(-r).unwrap_or(0)));
    }
    Area::from_fd(file, stub_base)
}

/// The batch page's words for `calls` (number and six arguments each)
/// followed by `data`, at [`data_addr`]`(region, calls.len())`.
fn batch_words(calls: &[[u64; 7]], data: &[u64]) -> Vec<u64> {
    let mut w = Vec::with_capacity(calls.len() * 8 + data.len());
    for c in calls {
        w.extend_from_slice(c);
        w.push(0);
    }
    w.extend_from_slice(data);
    w
}

/// The stub's address of the data after `calls` calls in the batch page.
fn data_addr(region: &StubRegion, calls: usize) -> u64 {
    batch_addr(region) + 64 * u64::try_from(calls).unwrap_or(0)
}

/// A batch's outcome: the first call that failed, if one did.
fn batch_done(what: &str, r: Option<(u64, i64)>) -> Result<()> {
    match r {
        None => Ok(()),
        Some((i, res)) => Err(Error::Internal(format!("{what}: call {i} returned {res}"))),
    }
}

// ---------------------------------------------------------------------------
// Application threads.

/// One untraced stub thread running a context's application thread in one
/// process; between switches it waits in the handler.
struct AppThread {
    asid: u64,
    process: Weak<StubProcess>,
    area: Arc<Area>,
    slot: u32,
    tid: i32,
    tgid: i32,
    /// The sentry's addresses of the signal frame's ucontext and FP state
    /// (checked at the last trap).
    uc: usize,
    fp: usize,
    /// Bytes of FP state in the frame.
    fp_len: usize,
    /// The CPU it is bound to while its context does not spin.
    cpu: Option<usize>,
}

impl AppThread {
    /// A new thread in `aspace`'s process, set up and parked in the handler.
    fn new(aspace: &PtraceAddressSpace, config: &SystrapConfig) -> Result<AppThread> {
        let process = &aspace.inner;
        let area = aspace.area()?;
        let slot = area.alloc().ok_or_else(|| Error::errno("systrap context slot", libc::EAGAIN))?;
        let r = Self::start(aspace, &area, slot, config);
        if r.is_err() {
            area.release(slot);
        }
        let (tid, tgid) = r?;
        let mut t = AppThread {
            asid: process.id,
            process: Arc::downgrade(process),
            area,
            slot,
            tid,
            tgid,
            uc: 0,
            fp: 0,
            fp_len: 0,
            cpu: None,
        };
        // Its first report: the `ud2` at the park entry.
        let r = t.wait_trap(None, config.sentry_spin).and_then(|_| t.check_frame());
        if let Err(e) = r {
            t.kill();
            return Err(e);
        }
        Ok(t)
    }

    fn start(
        aspace: &PtraceAddressSpace,
        area: &Area,
        slot: u32,
        config: &SystrapConfig,
    ) -> Result<(i32, i32)> {
        let process = &aspace.inner;
        let region = process.shared.region;
        area.write_word(slot, H_CMD, 0);
        area.write_word(slot, H_SPIN, u64::from(config.stub_spin));
        area.write_word(slot, H_FS, 0);
        area.write_word(slot, H_GS, 0);
        area.state(slot).store(RESUME, Ordering::SeqCst);
        let tracee = process.new_thread()?;
        let stack = area.stub_slot(slot) + HEADER;
        let filter = crate::seccomp::app_thread_filter(area.stub_base, area.stub_base + AREA_SIZE);
        // One batch in the new thread: its signal stack, its state word as
        // its clear_child_tid, its filter. After the calls: stack_t at
        // word 0, sock_fprog at word 4, the filter from word 8.
        use crate::seccomp::allowed::{SECCOMP, SET_TID_ADDRESS, SIGALTSTACK};
        let data = data_addr(region, 3);
        let state = area.stub_slot(slot) + H_STATE as u64;
        let calls = [
            [u64::from(SIGALTSTACK), data, 0, 0, 0, 0, 0],
            [u64::from(SET_TID_ADDRESS), state, 0, 0, 0, 0, 0],
            [u64::from(SECCOMP), 1, 0, data + 32, 0, 0, 0],
        ];
        let mut words = vec![stack, 0, SLOT_SIZE - HEADER, 0];
        words.extend([u64::try_from(filter.len()).unwrap_or(0), data + 64, 0, 0]);
        for f in &filter {
            words.push(
                u64::from(f.code) | u64::from(f.jt) << 16 | u64::from(f.jf) << 24 | u64::from(f.k) << 32,
            );
        }
        let words = batch_words(&calls, &words);
        let set_up = || -> Result<()> {
            {
                let _one_at_a_time = process.batch_lock.lock().unwrap_or_else(|p| p.into_inner());
                process.shared.batch.write_words(process.batch_slot, &words);
                batch_done("set up a systrap thread", tracee.inject_batch(region, batch_addr(region), 3)?)?;
            }
            tracee.detach_at(region.addr(region.off.systrap_park))
        };
        let (tid, tgid) = (tracee.tid, tracee.tgid);
        if let Err(e) = set_up() {
            let _ = tracee.exit_thread(region);
            return Err(e);
        }
        Ok((tid, tgid))
    }

    fn state(&self) -> &AtomicU32 {
        self.area.state(self.slot)
    }

    /// Checks the frame the handler reported and remembers where it is.
    fn check_frame(&mut self) -> Result<()> {
        let a = &self.area;
        let uc_stub = a.read_word(self.slot, H_UCTX);
        let frame_len = (UC_SIGINFO + SIGINFO_SIZE) as u64;
        let uc = a.in_stack(self.slot, uc_stub, frame_len, 8).ok_or_else(|| self.broken("frame"))?;
        let fp_stub = rd(uc + UC_MCONTEXT + MC_FPSTATE);
        let min = (FXSAVE_SIZE + crate::arch::XSAVE_HEADER_SIZE) as u64;
        // The XSAVE size the kernel wrote (software-reserved bytes), no more
        // than ours and than the stack holds.
        let sw = a.in_stack(self.slot, fp_stub, min, 64).ok_or_else(|| self.broken("FP state"))?;
        // SAFETY: inside the checked range.
        let magic = unsafe { std::ptr::read_volatile((sw + FX_SW) as *const u32) };
        // SAFETY: as above.
        let size = unsafe { std::ptr::read_volatile((sw + FX_SW + 16) as *const u32) };
        let mut len =
            if magic == FP_XSTATE_MAGIC1 { usize::try_from(size).unwrap_or(0) } else { FXSAVE_SIZE };
        len = len.clamp(FXSAVE_SIZE, xsave_size());
        let fp = a
            .in_stack(self.slot, fp_stub, u64::try_from(len).unwrap_or(0), 64)
            .ok_or_else(|| self.broken("FP state size"))?;
        self.uc = uc;
        self.fp = fp;
        self.fp_len = len;
        Ok(())
    }

    fn broken(&self, what: &str) -> Error {
        Error::StubDied { tid: self.tid, how: format!("systrap {what} outside its slot") }
    }

    /// Kills the thread's process (it is beyond repair).
    fn kill(&self) {
        if let Some(p) = self.process.upgrade() {
            let _ = sys::pidfd_send_signal(p.pidfd.as_fd(), libc::SIGKILL);
        }
    }

    /// Lets the handler return; false if it had gone to sleep.
    fn resume(&self) -> bool {
        let st = self.state();
        if st.swap(RESUME, Ordering::SeqCst) == STUB_SLEEPS {
            futex(st, libc::FUTEX_WAKE, 1, None);
            return false;
        }
        true
    }

    /// Waits until the thread is trapped (spinning up to `spin` times
    /// first); true if it trapped while this side spun.
    fn wait_trap(&self, intr: Option<&IntrState>, spin: u32) -> Result<bool> {
        let st = self.state();
        let mut spins = spin;
        let mut since: Option<Instant> = None;
        let mut slept = false;
        loop {
            let s = st.load(Ordering::Acquire);
            // STUB_SLEEPS: it trapped and went to sleep before this side
            // looked (the next `resume` wakes it).
            if s == TRAPPED || s == STUB_SLEEPS {
                return Ok(spin > 0 && !slept);
            }
            if s == DEAD {
                return Err(Error::StubDied { tid: self.tid, how: "exited".into() });
            }
            if spins > 0 {
                spins -= 1;
                std::hint::spin_loop();
                continue;
            }
            let mut s = s;
            if s == RESUME {
                if st.compare_exchange(RESUME, SENTRY_SLEEPS, Ordering::SeqCst, Ordering::SeqCst).is_err() {
                    continue;
                }
                s = SENTRY_SLEEPS;
            }
            slept = true;
            let r = futex(st, libc::FUTEX_WAIT, s, Some(WAIT_SLICE));
            if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ETIMEDOUT) {
                self.check_alive()?;
                if intr.is_some_and(|i| i.pending.load(Ordering::SeqCst)) {
                    let t0 = *since.get_or_insert_with(Instant::now);
                    if t0.elapsed() > INTERRUPT_GRACE {
                        self.kill();
                        return Err(Error::StubDied { tid: self.tid, how: "ignored its interrupt".into() });
                    }
                }
            }
        }
    }

    fn check_alive(&self) -> Result<()> {
        let Some(p) = self.process.upgrade() else {
            return Err(Error::StubDied { tid: self.tid, how: "stub process is gone".into() });
        };
        if sys::pidfd_send_signal(p.pidfd.as_fd(), 0).is_err() || sys::tgkill(self.tgid, self.tid, 0).is_err()
        {
            return Err(Error::StubDied { tid: self.tid, how: "gone".into() });
        }
        Ok(())
    }

    /// Puts `regs` (and the FP state, if the sentry changed it) in the
    /// frame for the handler's `rt_sigreturn`.
    fn write_frame(&self, arch: &mut ArchState) {
        let (uc, mc) = (self.uc, self.uc + UC_MCONTEXT);
        let r = &arch.regs;
        let gp = [
            r.r8, r.r9, r.r10, r.r11, r.r12, r.r13, r.r14, r.r15, r.rdi, r.rsi, r.rbp, r.rbx, r.rdx, r.rax,
            r.rcx, r.rsp, r.rip, r.eflags,
        ];
        for (i, v) in gp.into_iter().enumerate() {
            wr(mc + 8 * i, v);
        }
        // cs, gs, fs, ss (16 bits each): user code and stack selectors.
        wr(mc + MC_CSGSFS, 0x33 | 0x2b << 48);
        // The FP state where it was checked, the handler's own signal stack
        // for after the return, and no signal blocked.
        let fp_stub = self.area.stub_base + u64::try_from(self.fp - self.area.base).unwrap_or(0);
        wr(mc + MC_FPSTATE, fp_stub);
        wr(uc + UC_STACK, self.area.stub_slot(self.slot) + HEADER);
        wr(uc + UC_STACK + 8, 0);
        wr(uc + UC_STACK + 16, SLOT_SIZE - HEADER);
        wr(uc + UC_SIGMASK, 0);
        self.area.write_word(self.slot, H_FS, r.fs_base);
        self.area.write_word(self.slot, H_GS, r.gs_base);
        if arch.fp.status() == FpStatus::Dirty {
            let src = arch.fp.bytes();
            let n = self.fp_len.min(src.len());
            // The kernel's software-reserved bytes (which say how big the
            // frame's XSAVE image is) stay as it wrote them.
            for (from, to) in [(0, FX_SW.min(n)), (FXSAVE_SIZE, n)] {
                if to > from {
                    // SAFETY: [fp, fp + fp_len) was checked to lie in the
                    // slot's stack; `src` has at least `n` bytes.
                    unsafe {
                        std::ptr::copy_nonoverlapping(
                            src[from..to].as_ptr(),
                            (self.fp + from) as *mut u8,
                            to - from,
                        );
                    }
                }
            }
            arch.fp.mark_live();
        }
    }

    /// The registers in the frame.
    fn read_regs(&self, old: &Regs) -> Regs {
        let mc = self.uc + UC_MCONTEXT;
        let g = |i: usize| rd(mc + 8 * i);
        Regs {
            r8: g(0),
            r9: g(1),
            r10: g(2),
            r11: g(3),
            r12: g(4),
            r13: g(5),
            r14: g(6),
            r15: g(7),
            rdi: g(8),
            rsi: g(9),
            rbp: g(10),
            rbx: g(11),
            rdx: g(12),
            rax: g(13),
            rcx: g(14),
            rsp: g(15),
            rip: g(16),
            eflags: g(17),
            cs: 0x33,
            ss: 0x2b,
            orig_rax: u64::MAX,
            fs_base: self.area.read_word(self.slot, H_FS),
            gs_base: self.area.read_word(self.slot, H_GS),
            ..*old
        }
    }

    /// The frame's FP state into `fp`.
    fn read_fp(&self, fp: &mut FpState) {
        let buf = fp.fill_from_platform();
        buf.clear();
        buf.resize(xsave_size(), 0);
        let n = self.fp_len.min(buf.len());
        // SAFETY: [fp, fp + fp_len) lies in the slot's stack (checked).
        unsafe { std::ptr::copy_nonoverlapping(self.fp as *const u8, buf.as_mut_ptr(), n) };
    }

    /// (signo, code, addr or pid, syscall number, arch) from the frame's
    /// siginfo.
    fn siginfo(&self) -> (i32, i32, u64, i32, u32) {
        let si = self.uc + UC_SIGINFO;
        let w0 = rd(si);
        let w1 = rd(si + 8);
        let w2 = rd(si + 16);
        let w3 = rd(si + 24);
        let signo = u32::try_from(w0 & 0xffff_ffff).unwrap_or(0).cast_signed();
        let code = u32::try_from(w1 & 0xffff_ffff).unwrap_or(0).cast_signed();
        let nr = u32::try_from(w3 & 0xffff_ffff).unwrap_or(0).cast_signed();
        let arch = u32::try_from(w3 >> 32).unwrap_or(0);
        (signo, code, w2, nr, arch)
    }

    /// Tells the thread to exit (it is trapped).
    fn release(self) {
        if self.process.strong_count() > 0 && self.state().load(Ordering::SeqCst) != DEAD {
            self.area.write_word(self.slot, H_CMD, 1);
            self.resume();
        }
        self.area.release(self.slot);
    }
}

// ---------------------------------------------------------------------------
// Contexts.

/// A systrap context.
pub struct SystrapContext {
    id: u64,
    config: SystrapConfig,
    intr: Arc<IntrState>,
    /// Its threads, one per address space it ran in.
    threads: Vec<AppThread>,
    /// Index in `threads` of the one that last ran: where the FP state is
    /// while `arch.fp` is `Live`.
    last: Option<usize>,
    /// Spinning budgets of the sentry's side and of the handler's.
    sentry_spin: Spin,
    stub_spin: Spin,
    /// The CPUs the sentry may use, and the one its thread is bound to
    /// while this context does not spin.
    cpus: Arc<[usize]>,
    cpu: Option<usize>,
    /// Whether its sentry thread was unbound at its first switch: a thread
    /// inherits the binding of the one that made it (a fork's parent).
    placed: bool,
    /// Hand-offs in a row where neither side spun (reset when spinning
    /// pays again).
    no_spin: u32,
}

impl std::fmt::Debug for SystrapContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystrapContext").field("id", &self.id).finish()
    }
}

impl Drop for SystrapContext {
    fn drop(&mut self) {
        for t in std::mem::take(&mut self.threads) {
            t.release();
        }
    }
}

impl SystrapContext {
    /// Drops the threads of processes that are gone (keeping the one that
    /// holds the FP state).
    fn sweep(&mut self) {
        let mut i = 0;
        while i < self.threads.len() {
            if self.threads[i].process.strong_count() == 0 && self.last != Some(i) {
                let t = self.threads.swap_remove(i);
                // The element moved into `i` was the last one.
                if self.last == Some(self.threads.len()) {
                    self.last = Some(i);
                }
                t.release();
            } else {
                i += 1;
            }
        }
    }

    fn thread_for(&mut self, aspace: &PtraceAddressSpace) -> Result<usize> {
        let asid = aspace.inner.id;
        if let Some(i) = self.threads.iter().position(|t| t.asid == asid) {
            return Ok(i);
        }
        self.sweep();
        let t = AppThread::new(aspace, &self.config)?;
        self.threads.push(t);
        Ok(self.threads.len() - 1)
    }

    /// Makes sure thread `i` gets `arch.fp` when the context last ran on
    /// another one.
    fn migrate_fp(&mut self, arch: &mut ArchState, i: usize) {
        if self.last == Some(i) {
            return;
        }
        match arch.fp.status() {
            FpStatus::Dirty => {}
            FpStatus::Saved => {
                arch.fp.bytes_mut();
            }
            FpStatus::Live => {
                match self.last.and_then(|j| self.threads.get(j)) {
                    Some(old) => old.read_fp(&mut arch.fp),
                    None => arch.fp = FpState::initial(),
                }
                arch.fp.bytes_mut();
            }
        }
    }

    fn run(&mut self, i: usize, arch: &mut ArchState) -> Result<Event> {
        if !self.placed {
            self.placed = true;
            let _ = sys::set_cpus(0, &self.cpus);
        }
        let t = &mut self.threads[i];
        t.write_frame(arch);
        loop {
            let (stub_spin, sentry_spin) = (self.stub_spin.take(), self.sentry_spin.take());
            // Neither side spins: then both sleep and wake each other, which
            // costs least on one CPU (a wake-up across CPUs is the dearest
            // hand-off there is). Spinning needs them apart: unbound.
            // Only for a context that has gone without spinning for a
            // while (short-lived ones, a fork's child, are never bound).
            let idle = stub_spin == 0 && sentry_spin == 0;
            if idle {
                self.no_spin = self.no_spin.saturating_add(1);
            }
            let want = if idle && self.no_spin >= COLOCATE_AFTER {
                self.cpu.or_else(sys::current_cpu)
            } else {
                None
            };
            if want != self.cpu {
                let ok = match want {
                    Some(c) => sys::pin_to_cpu(0, c),
                    None => sys::set_cpus(0, &self.cpus),
                };
                if ok.is_ok() {
                    self.cpu = want;
                }
            }
            if t.cpu != self.cpu {
                let ok = match self.cpu {
                    Some(c) => sys::pin_to_cpu(t.tid, c),
                    None => sys::set_cpus(t.tid, &self.cpus),
                };
                if ok.is_ok() {
                    t.cpu = self.cpu;
                }
            }
            // The handler's budget for its next wait, then the answer.
            t.area.write_word(t.slot, H_SPIN, u64::from(stub_spin));
            if t.resume() {
                self.stub_spin.hit();
                self.no_spin = 0;
            } else {
                self.stub_spin.miss();
            }
            if t.wait_trap(Some(&self.intr), sentry_spin)? {
                self.sentry_spin.hit();
                self.no_spin = 0;
            } else {
                self.sentry_spin.miss();
            }
            t.check_frame()?;
            let (signo, code, addr, nr, sarch) = t.siginfo();
            if signo == INTERRUPT_SIGNAL && code == SI_TKILL {
                if self.intr.pending.swap(false, Ordering::SeqCst) {
                    arch.regs = t.read_regs(&arch.regs);
                    return Ok(Event::Interrupted);
                }
                // A stale interrupt: the frame holds the thread's state.
                continue;
            }
            arch.regs = t.read_regs(&arch.regs);
            if signo == libc::SIGSYS && code == SYS_SECCOMP_CODE {
                arch.regs.orig_rax = u64::from(nr.cast_unsigned());
                if sarch != AUDIT_ARCH_X86_64 {
                    return Ok(Event::ForeignSyscall);
                }
                return Ok(Event::Syscall);
            }
            return Ok(super::event_of(signo, code, addr));
        }
    }
}

impl Context for SystrapContext {
    fn switch(&mut self, address_space: &dyn AddressSpace, arch: &mut ArchState) -> Result<Event> {
        let aspace = downcast(address_space)?;
        let i = self.thread_for(aspace)?;
        self.migrate_fp(arch, i);
        let (tid, tgid) = (self.threads[i].tid, self.threads[i].tgid);
        let running = (u64::try_from(tgid).unwrap_or(0) << 32) | u64::try_from(tid).unwrap_or(0);
        self.intr.running.store(running, Ordering::SeqCst);
        if self.intr.pending.swap(false, Ordering::SeqCst) {
            self.intr.running.store(0, Ordering::SeqCst);
            return Ok(Event::Interrupted);
        }
        self.last = Some(i);
        let r = self.run(i, arch);
        self.intr.running.store(0, Ordering::SeqCst);
        match r {
            Ok(ev) => {
                arch.fp.mark_live();
                Ok(ev)
            }
            Err(e) => {
                let t = self.threads.swap_remove(i);
                t.kill();
                t.area.release(t.slot);
                self.last = None;
                Err(e)
            }
        }
    }

    fn interrupt_handle(&self) -> InterruptHandle {
        InterruptHandle::new(self.intr.clone())
    }

    fn thread_cpu_time(&mut self, address_space: &dyn AddressSpace) -> Option<Duration> {
        // The application thread's clock, read by a stub thread of its
        // process (such clocks are readable only from inside it).
        let aspace = downcast(address_space).ok()?;
        let t = self.threads.iter().find(|t| t.asid == aspace.inner.id)?;
        let clock = ((!t.tid) << 3) | 6;
        aspace.read_clock(None, u64::from(clock.cast_unsigned()))
    }

    fn fetch_fp(&mut self, arch: &mut ArchState) -> Result<()> {
        if arch.fp.status() != FpStatus::Live {
            return Ok(());
        }
        match self.last.and_then(|j| self.threads.get(j)) {
            Some(t) => t.read_fp(&mut arch.fp),
            None => arch.fp = FpState::initial(),
        }
        Ok(())
    }
}

#[cfg(test)]
mod spin_tests {
    use super::Spin;

    #[test]
    fn misses_take_the_budget_away_and_hits_bring_it_back() {
        let mut s = Spin::new(2000);
        assert_eq!(s.take(), 2000);
        for _ in 0..7 {
            s.miss();
        }
        // 2000 halved seven times is 15: below the minimum, so nothing.
        assert_eq!(s.take(), 0);
        s.hit();
        assert_eq!(s.take(), 32);
        for _ in 0..10 {
            s.hit();
        }
        assert_eq!(s.take(), 2000, "capped at the maximum");
    }

    #[test]
    fn with_no_budget_one_wait_in_sixty_four_probes() {
        let mut s = Spin::new(2000);
        for _ in 0..20 {
            s.miss();
        }
        let spins: Vec<u32> = (0..Spin::PROBE_EVERY * 2).map(|_| s.take()).collect();
        let probes: Vec<usize> = spins.iter().enumerate().filter(|(_, n)| **n > 0).map(|(i, _)| i).collect();
        assert_eq!(probes, vec![63, 127]);
        assert_eq!(spins[63], 500);
        // A probe that pays restores spinning.
        s.hit();
        assert!(s.take() >= 1000);
    }

    #[test]
    fn a_zero_maximum_never_spins() {
        let mut s = Spin::new(0);
        for _ in 0..200 {
            assert_eq!(s.take(), 0);
            s.hit();
        }
    }
}
