//! The ptrace platform.
//!
//! - One stub process per address space, forked from the master stub (see
//!   [`factory`]). Its first thread (the *leader*) never runs application
//!   code: it idles untraced in the stub's `pause` loop and is seized for a
//!   moment whenever a sentry thread needs a new stub thread in that process
//!   (an injected `clone`).
//! - One stub thread per (sentry thread, address space, context): a sentry
//!   task thread traces the stub thread that runs its application thread,
//!   and makes it stop at every system call with `PTRACE_SYSEMU`, so the
//!   call is never executed by the host. Bindings live in a thread-local
//!   table because ptrace binds a tracee to the thread that attached.
//! - Address-space changes (`mmap`, `munmap`, `mprotect`) are injected into
//!   the calling thread's stub thread of that address space: one at a time,
//!   or many in one stop through the process's read-only batch page (see
//!   [`batch`]).
//! - Once a sandbox forks, the factory keeps one stub process made ahead
//!   (with an idle thread and its batch page), so `fork` and `execve` take
//!   it without waiting.
//! - Every stub runs under a seccomp filter that allows system calls only
//!   from the stub's code page (see [`crate::seccomp`]).
//! - Placement: before running a stub thread, the sentry thread binds it to
//!   the CPU the sentry thread is on, so that each trap is a same-CPU
//!   handoff (about 9.5 µs on the reference machines, against about 45 µs
//!   across CPUs).

mod batch;
mod factory;
mod files;
mod placement;
mod stub;
pub mod systrap;
mod tracee;

use std::any::Any;
use std::cell::RefCell;
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use self::batch::BatchPages;
use self::factory::Factory;
use self::stub::StubRegion;
use self::tracee::{try_reap, wait, Stop, Tracee};
use crate::arch::FpStatus;
use crate::{
    page_aligned, sys, AddressSpace, ArchState, Capabilities, Context, Error, Event, FileRange, FpState,
    HostSignal, Interrupt, InterruptHandle, MapOp, Platform, Prot, Result,
};

/// Where stub threads run relative to the sentry threads that trace them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Placement {
    /// Bind each sentry task thread to one CPU of its allowed set (the
    /// least used one when it first runs application code) and its stub
    /// threads to the same CPU: every trap is a same-CPU handoff.
    #[default]
    Pinned,
    /// Leave the sentry thread free and bind its stub thread to whatever
    /// CPU the sentry thread is on at each switch. On an idle machine the
    /// host scheduler then often wakes the tracer on the other, idle CPU.
    FollowTracer,
    /// Leave placement to the host scheduler.
    Unpinned,
}

/// Configuration of the ptrace platform.
#[derive(Clone, Copy, Debug, Default)]
pub struct Config {
    /// CPU placement policy.
    pub placement: Placement,
}

/// The signal the interrupt handle sends to a running stub thread.
const INTERRUPT_SIGNAL: i32 = libc::SIGCHLD;

/// `clone` flags of a new stub process: a fork of the master, with a copy
/// of the master's descriptor table (never the sentry's: see [`files`]).
pub(crate) const FORK_FLAGS: u32 = libc::SIGCHLD.cast_unsigned();
/// `clone` flags of a new stub thread.
pub(crate) const THREAD_FLAGS: u32 = (libc::CLONE_VM
    | libc::CLONE_THREAD
    | libc::CLONE_SIGHAND
    | libc::CLONE_FILES
    | libc::CLONE_FS
    | libc::CLONE_SYSVSEM)
    .cast_unsigned();

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn next_id() -> u64 {
    NEXT_ID.fetch_add(1, Ordering::Relaxed)
}

struct Shared {
    region: &'static StubRegion,
    factory: Factory,
    /// Batch and result pages.
    batch: Arc<BatchPages>,
    /// How files reach the stubs' descriptor tables.
    files: files::Channel,
    config: Config,
    /// The systrap platform's (see [`systrap`]): application threads run
    /// untraced, with a signal handler in the stub.
    systrap: bool,
    min_addr: u64,
    /// CPUs the sentry may use, read once at start-up (task threads later
    /// inherit a pinned affinity and would see one CPU).
    cpus: Vec<usize>,
}

/// The ptrace platform.
pub struct PtracePlatform {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for PtracePlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PtracePlatform")
            .field("stub_region", &self.shared.region.start)
            .field("master", &self.shared.factory.master)
            .finish()
    }
}

/// What the platform reads from the host's `/proc` before the sentry
/// confines itself (its root becomes an empty directory): the stub page's
/// place (from `/proc/self/maps`) and `vm.mmap_min_addr`. Call it before
/// `pivot_root`; `PtracePlatform::new` calls it too.
pub fn prepare() -> Result<()> {
    StubRegion::get()?;
    min_addr();
    Ok(())
}

fn min_addr() -> u64 {
    static MIN: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *MIN.get_or_init(|| {
        std::fs::read_to_string("/proc/sys/vm/mmap_min_addr")
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .unwrap_or(65536)
            .max(crate::PAGE_SIZE)
    })
}

impl PtracePlatform {
    /// Starts the platform: reserves the stub page and forks the master
    /// stub. Call it early, before the sentry starts its task threads.
    pub fn new(config: Config) -> Result<PtracePlatform> {
        Self::start(config, false)
    }

    fn start(config: Config, systrap: bool) -> Result<PtracePlatform> {
        let region = StubRegion::get()?;
        let batch = Arc::new(BatchPages::new()?);
        let files = files::Channel::new()?;
        let factory = Factory::start(region, batch.clone(), files.stub_end(), systrap)?;
        let min_addr = min_addr();
        let cpus = sys::allowed_cpus().unwrap_or_default();
        Ok(PtracePlatform {
            shared: Arc::new(Shared { region, factory, batch, files, config, systrap, min_addr, cpus }),
        })
    }

    /// Host pid of the master stub (for tests and diagnostics).
    pub fn master_pid(&self) -> i32 {
        self.shared.factory.master
    }

    /// Address of the stub code page (for tests and diagnostics).
    pub fn stub_page(&self) -> u64 {
        self.shared.region.start
    }

    /// Address of the stub page's `syscall` instruction, reachable by the
    /// stub thread of a ptrace address space (for tests).
    pub fn stub_syscall_addr(&self) -> u64 {
        self.shared.region.addr(self.shared.region.off.syscall)
    }
}

impl Platform for PtracePlatform {
    fn name(&self) -> &'static str {
        "ptrace"
    }

    fn capabilities(&self) -> Capabilities {
        // PTRACE_GETSIGINFO gives the address of a fault, not whether it
        // was a read, a write or a fetch.
        Capabilities { fault_access_type: false }
    }

    fn min_user_address(&self) -> u64 {
        self.shared.min_addr
    }

    fn max_user_address(&self) -> u64 {
        self.shared.user_top()
    }

    fn new_address_space(&self) -> Result<Box<dyn AddressSpace>> {
        let made = self.shared.factory.new_process()?;
        Ok(Box::new(PtraceAddressSpace {
            inner: Arc::new(StubProcess {
                id: next_id(),
                pid: made.pid,
                pidfd: made.pidfd,
                idle_thread: [AtomicI32::new(made.idle_thread), AtomicI32::new(made.spare_thread)],
                batch_slot: made.batch_slot,
                batch_lock: Mutex::new(()),
                files: Mutex::new(files::Table::default()),
                area: Mutex::new(made.area.map(Arc::new)),
                cloner: Mutex::new(()),
                shared: self.shared.clone(),
            }),
        }))
    }

    fn new_context(&self) -> Result<Box<dyn Context>> {
        Ok(Box::new(PtraceContext {
            id: next_id(),
            shared: self.shared.clone(),
            intr: Arc::new(IntrState::default()),
            last: None,
        }))
    }
}

impl Shared {
    /// One past the highest application address: below the stub page
    /// are the process's batch page, its result page and a guard page,
    /// which keeps the application's mappings from ever being adjacent to
    /// them.
    fn user_top(&self) -> u64 {
        if self.systrap {
            // Below the systrap contexts, with a guard page too.
            return systrap::area_start(self.region) - crate::PAGE_SIZE;
        }
        result_addr(self.region) - crate::PAGE_SIZE
    }
}

/// Where a stub process's batch page is mapped: right below the stub code.
pub(crate) fn batch_addr(region: &StubRegion) -> u64 {
    region.start - crate::PAGE_SIZE
}

/// Where a stub process's result page is mapped: below its batch page.
pub(crate) fn result_addr(region: &StubRegion) -> u64 {
    batch_addr(region) - crate::PAGE_SIZE
}

/// One stub process.
struct StubProcess {
    id: u64,
    /// Host pid (= the leader's tid).
    pid: i32,
    /// Names the process for sure (its pid could be reused once it dies).
    pidfd: std::os::fd::OwnedFd,
    /// A thread the factory already cloned, idling untraced until the
    /// first sentry thread that needs one seizes it (0: taken).
    idle_thread: [AtomicI32; 2],
    /// Its batch page (a slot of the platform's batch file).
    batch_slot: u32,
    /// Held while the batch page or the result page is used.
    batch_lock: Mutex<()>,
    /// The files in its descriptor table; held for the whole of a call
    /// that maps, so that no descriptor it uses is closed under it.
    files: Mutex<files::Table>,
    /// Systrap: the application threads' contexts, made on first use.
    area: Mutex<Option<Arc<systrap::Area>>>,
    /// Held while the leader is seized to clone a thread.
    cloner: Mutex<()>,
    shared: Arc<Shared>,
}

impl StubProcess {
    /// A new stub thread in this process, traced by the calling thread:
    /// the one the factory made if it is still there, else a new clone.
    fn new_thread(&self) -> Result<Tracee> {
        let idle = self.idle_thread.iter().map(|t| t.swap(0, Ordering::SeqCst)).find(|&t| t > 0);
        let tid = match idle {
            Some(t) => t,
            None => {
                let _guard = self.cloner.lock().unwrap_or_else(|p| p.into_inner());
                Self::clone_idle_threads(
                    self.pid,
                    self.pidfd.as_fd(),
                    self.shared.region,
                    self.shared.factory.master,
                    &[],
                    &mut |_| Ok(()),
                    1,
                )?[0]
            }
        };
        let t = Tracee::seize(tid, self.pid, true)?;
        // Seized, the tid cannot be reused while we hold it: check that the
        // process it belonged to is still ours.
        if sys::pidfd_send_signal(self.pidfd.as_fd(), 0).is_err() {
            let _ = sys::ptrace(libc::PTRACE_DETACH, tid, 0, 0);
            return Err(Error::StubDied { tid, how: "stub process is gone".into() });
        }
        Ok(t)
    }

    /// Clones `count` (1 or 2) threads in stub process `pid` (seizing its
    /// leader for the time it takes, during which it also maps `pages`: the
    /// `mmap` arguments of a batch page and its result page); the threads
    /// idle untraced in `pause`.
    /// Returns their tids (0 for the second when there is none). The caller
    /// serialises calls for one process.
    pub(crate) fn clone_idle_threads(
        pid: i32,
        pidfd: std::os::fd::BorrowedFd<'_>,
        region: &StubRegion,
        master: i32,
        pages: &[[u64; 6]],
        set_up: &mut dyn FnMut(&Tracee) -> Result<()>,
        count: usize,
    ) -> Result<[i32; 2]> {
        let leader = Tracee::seize(pid, pid, false)?;
        // Seized, the pid cannot be reused while we hold it: check it
        // still names our process.
        if sys::pidfd_send_signal(pidfd, 0).is_err() {
            let _ = sys::ptrace(libc::PTRACE_DETACH, pid, 0, 0);
            return Err(Error::StubDied { tid: pid, how: "stub process is gone".into() });
        }
        let r = Self::arm(&leader, region, master)
            .and_then(|()| {
                for &args in pages {
                    let nr = u32::try_from(libc::SYS_mmap).unwrap_or(9);
                    let r = leader.inject(region, nr, args)?;
                    if r.cast_unsigned() != args[0] {
                        return Err(Error::errno("map batch page", i32::try_from(-r).unwrap_or(0)));
                    }
                }
                set_up(&leader)
            })
            .and_then(|()| {
                let mut tids = [0; 2];
                for t in tids.iter_mut().take(count.clamp(1, 2)) {
                    let tid = leader.inject_clone(region, u64::from(THREAD_FLAGS), master)?;
                    *t = i32::try_from(tid)
                        .ok()
                        .filter(|&t| t > 0)
                        .ok_or_else(|| Error::errno("clone stub thread", i32::try_from(-tid).unwrap_or(0)))?;
                }
                Ok(tids)
            });
        let detached = leader.detach_to_pause(region);
        let tids = r?;
        detached?;
        Ok(tids)
    }

    /// Makes sure the leader dies with the master: a leader stopped before
    /// it ran its own parent-death set-up gets it here.
    fn arm(leader: &Tracee, region: &StubRegion, master: i32) -> Result<()> {
        let r = leader.inject(region, crate::seccomp::allowed::PRCTL, [1, 9, 0, 0, 0, 0])?;
        if r != 0 {
            return Err(Error::errno("stub PR_SET_PDEATHSIG", i32::try_from(-r).unwrap_or(0)));
        }
        let ppid = leader.inject(region, crate::seccomp::allowed::GETPPID, [0; 6])?;
        if ppid != i64::from(master) {
            return Err(Error::StubDied { tid: leader.tid, how: "its master stub is gone".into() });
        }
        Ok(())
    }
}

impl Drop for StubProcess {
    fn drop(&mut self) {
        // Every thread dies; tracers reap theirs lazily (bindings hold only
        // weak references), the master reaps the process. The pidfd makes
        // sure no other process is signalled if this one is already gone.
        let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), libc::SIGKILL);
        // Dead (or about to be, never running again): its page is free.
        self.shared.batch.release(self.batch_slot);
    }
}

/// A ptrace address space: a stub process.
pub struct PtraceAddressSpace {
    inner: Arc<StubProcess>,
}

impl std::fmt::Debug for PtraceAddressSpace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PtraceAddressSpace").field("pid", &self.inner.pid).finish()
    }
}

impl PtraceAddressSpace {
    /// Host pid of the stub process (for tests and diagnostics).
    pub fn stub_pid(&self) -> i32 {
        self.inner.pid
    }

    fn check_range(&self, addr: u64, len: u64) -> Result<()> {
        let s = &self.inner.shared;
        let ok = len > 0
            && page_aligned(addr)
            && page_aligned(len)
            && addr >= s.min_addr
            && addr.checked_add(len).is_some_and(|end| end <= s.user_top());
        if ok {
            Ok(())
        } else {
            Err(Error::InvalidRange { addr, len })
        }
    }

    fn inject(&self, nr: i64, args: [u64; 6]) -> Result<i64> {
        let nr = u32::try_from(nr).map_err(|_| Error::Internal("syscall number".into()))?;
        with_binding(&self.inner, None, |b| b.tracee.inject(self.inner.shared.region, nr, args))
    }
}

impl PtraceAddressSpace {
    /// Reads CPU clock `clock` (`CLOCK_THREAD_CPUTIME_ID` or a thread
    /// clock of one of the process's threads): such clocks are readable
    /// only from inside the process, so a stub thread (context `ctx`'s, or
    /// any) reads it into the result page.
    pub(super) fn read_clock(&self, ctx: Option<u64>, clock: u64) -> Option<std::time::Duration> {
        let process = &self.inner;
        let (batch, slot) = (process.shared.batch.clone(), process.batch_slot);
        let region = process.shared.region;
        let _one_at_a_time = process.batch_lock.lock().unwrap_or_else(|p| p.into_inner());
        let args = [clock, result_addr(region), 0, 0, 0, 0];
        let r = with_binding(process, ctx, |b| {
            b.tracee.inject(region, crate::seccomp::allowed::CLOCK_GETTIME, args)
        })
        .ok()?;
        if r != 0 {
            return None;
        }
        // Hostile words: the application may have changed them since.
        let [sec, nsec] = batch.read_result(slot);
        (nsec < 1_000_000_000).then(|| std::time::Duration::new(sec, u32::try_from(nsec).unwrap_or(0)))
    }

    /// The system call (number and arguments) that makes `op`, checked as
    /// `map`, `unmap` and `protect` check theirs; a file to map is put in
    /// the stub's descriptor table first if it is not there yet.
    fn encode(&self, table: &mut files::Table, op: &MapOp<'_>) -> Result<[u64; 7]> {
        let host_prot = |p: Prot| u64::try_from(p.to_host()).unwrap_or(0);
        let nr = |n: i64| u64::try_from(n).unwrap_or(u64::MAX);
        Ok(match *op {
            MapOp::Map { addr, len, prot, file } => {
                self.check_range(addr, len)?;
                if !page_aligned(file.offset) {
                    return Err(Error::InvalidRange { addr: file.offset, len });
                }
                let flags = u64::try_from(libc::MAP_SHARED | libc::MAP_FIXED).unwrap_or(0);
                let fd =
                    u64::try_from(self.stub_fd(table, file)?).map_err(|_| Error::Internal("fd".into()))?;
                [nr(libc::SYS_mmap), addr, len, host_prot(prot), flags, fd, file.offset]
            }
            MapOp::Unmap { addr, len } => {
                self.check_range(addr, len)?;
                [nr(libc::SYS_munmap), addr, len, 0, 0, 0, 0]
            }
            MapOp::Protect { addr, len, prot } => {
                self.check_range(addr, len)?;
                [nr(libc::SYS_mprotect), addr, len, host_prot(prot), 0, 0, 0]
            }
        })
    }
}

fn check_result(op: &'static str, r: i64) -> Result<()> {
    if r < 0 {
        Err(Error::errno(op, i32::try_from(-r).unwrap_or(0)))
    } else {
        Ok(())
    }
}

impl AddressSpace for PtraceAddressSpace {
    fn map(&self, addr: u64, len: u64, prot: Prot, file: FileRange<'_>) -> Result<()> {
        self.check_range(addr, len)?;
        if !page_aligned(file.offset) {
            return Err(Error::InvalidRange { addr: file.offset, len });
        }
        let mut table = self.inner.files.lock().unwrap_or_else(|p| p.into_inner());
        self.make_room(&mut table, 1)?;
        let flags = u64::try_from(libc::MAP_SHARED | libc::MAP_FIXED).unwrap_or(0);
        let prot = u64::try_from(prot.to_host()).unwrap_or(0);
        let fd = u64::try_from(self.stub_fd(&mut table, file)?).map_err(|_| Error::Internal("fd".into()))?;
        let r = self.inject(libc::SYS_mmap, [addr, len, prot, flags, fd, file.offset])?;
        check_result("mmap in stub", r)?;
        if r.cast_unsigned() != addr {
            return Err(Error::Internal(format!("stub mmap returned {r:#x} for {addr:#x}")));
        }
        Ok(())
    }

    fn unmap(&self, addr: u64, len: u64) -> Result<()> {
        self.check_range(addr, len)?;
        let r = self.inject(libc::SYS_munmap, [addr, len, 0, 0, 0, 0])?;
        check_result("munmap in stub", r)
    }

    fn protect(&self, addr: u64, len: u64, prot: Prot) -> Result<()> {
        self.check_range(addr, len)?;
        let prot = u64::try_from(prot.to_host()).unwrap_or(0);
        let r = self.inject(libc::SYS_mprotect, [addr, len, prot, 0, 0, 0])?;
        check_result("mprotect in stub", r)
    }

    fn apply(&self, ops: &[MapOp<'_>]) -> std::result::Result<(), (usize, Error)> {
        if ops.len() < 2 {
            return crate::apply_each(self, ops);
        }
        let (b, slot) = (&self.inner.shared.batch, self.inner.batch_slot);
        let region = self.inner.shared.region;
        let page = batch_addr(region);
        let mut table = self.inner.files.lock().unwrap_or_else(|p| p.into_inner());
        let mut calls = Vec::with_capacity(batch::PER_PAGE.min(ops.len()));
        for (n, chunk) in ops.chunks(batch::PER_PAGE).enumerate() {
            let done = n * batch::PER_PAGE;
            // Room for every file of the chunk; then every call is checked
            // as the single-call paths check theirs.
            self.make_room(&mut table, chunk.len()).map_err(|e| (done, e))?;
            calls.clear();
            for (i, op) in chunk.iter().enumerate() {
                calls.push(self.encode(&mut table, op).map_err(|e| (done + i, e))?);
            }
            let _one_batch_at_a_time = self.inner.batch_lock.lock().unwrap_or_else(|p| p.into_inner());
            b.write(slot, &calls);
            let count = u64::try_from(chunk.len()).unwrap_or(0);
            let r = with_binding(&self.inner, None, |bd| bd.tracee.inject_batch(region, page, count))
                .map_err(|e| (done, e))?;
            if let Some((at, res)) = r {
                let at = done + usize::try_from(at).unwrap_or(0);
                let err = if res < 0 {
                    Error::errno("address-space call in stub", i32::try_from(-res).unwrap_or(0))
                } else {
                    Error::Internal(format!("stub mmap returned {res:#x}"))
                };
                return Err((at, err));
            }
        }
        Ok(())
    }

    fn cpu_time(&self) -> Option<std::time::Duration> {
        sys::process_cpu_time(self.inner.pid)
    }

    fn destroy(&self) {
        // Its stub threads run no application code (no context switches
        // into an address space being destroyed) and the leader only
        // pauses: once SIGKILL is queued, none of them runs user code
        // again.
        let _ = sys::pidfd_send_signal(self.inner.pidfd.as_fd(), libc::SIGKILL);
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------
// Bindings: which stub threads the calling sentry thread traces.

struct Binding {
    /// The address space's id.
    asid: u64,
    /// The context that runs on it (0: used only for address-space
    /// operations).
    ctx: u64,
    process: Weak<StubProcess>,
    tracee: Tracee,
    /// CPU the stub thread is bound to.
    cpu: Option<usize>,
}

#[derive(Default)]
struct Bindings {
    list: Vec<Binding>,
}

thread_local! {
    static BINDINGS: RefCell<Bindings> = RefCell::new(Bindings::default());
}

impl Bindings {
    /// Index of the binding for (`process`, `ctx`); with `ctx == None`, any
    /// binding of the process. Creates one if needed.
    fn get_or_create(&mut self, process: &Arc<StubProcess>, ctx: Option<u64>) -> Result<usize> {
        let found = self.list.iter().position(|b| b.asid == process.id && ctx.is_none_or(|c| b.ctx == c));
        if let Some(i) = found {
            return Ok(i);
        }
        // A context's first switch adopts the stub thread this sentry
        // thread made for address-space operations (loading a program),
        // instead of making a second one.
        if let Some(c) = ctx {
            if let Some(b) = self.list.iter_mut().find(|b| b.asid == process.id && b.ctx == 0) {
                b.ctx = c;
                return self
                    .list
                    .iter()
                    .position(|b| b.asid == process.id && b.ctx == c)
                    .ok_or(Error::Internal("binding".into()));
            }
        }
        self.sweep();
        let tracee = process.new_thread()?;
        // A sentry thread that is already bound to a CPU takes its new stub
        // thread there at once: address-space operations (loading a
        // program after execve) then stay on one CPU too.
        let mut cpu = None;
        if process.shared.config.placement == Placement::Pinned {
            if let Some(c) = placement::current() {
                if sys::pin_to_cpu(tracee.tid, c).is_ok() {
                    cpu = Some(c);
                }
            }
        }
        self.list.push(Binding {
            asid: process.id,
            ctx: ctx.unwrap_or(0),
            process: Arc::downgrade(process),
            tracee,
            cpu,
        });
        Ok(self.list.len() - 1)
    }

    /// Reaps stub threads whose address space is gone.
    fn sweep(&mut self) {
        self.list.retain(|b| b.process.strong_count() > 0 || !try_reap(b.tracee.tid));
    }

    /// Ends a binding: the stub thread exits (or, if its process was
    /// killed, is reaped).
    fn release(b: Binding) {
        if let Some(p) = b.process.upgrade() {
            if b.tracee.exit_thread(p.shared.region).is_ok() {
                return;
            }
        }
        // Killed with its process (or exit failed: kill it): wait for it.
        let _ = sys::tgkill(b.tracee.tgid, b.tracee.tid, libc::SIGKILL);
        let _ = sys::wait(b.tracee.tid, 0);
    }

    /// Ends every binding of context `ctx`.
    fn release_ctx(&mut self, ctx: u64) {
        let (mine, rest): (Vec<_>, Vec<_>) =
            std::mem::take(&mut self.list).into_iter().partition(|b| b.ctx == ctx);
        self.list = rest;
        for b in mine {
            Self::release(b);
        }
    }
}

impl Drop for Bindings {
    fn drop(&mut self) {
        for b in std::mem::take(&mut self.list) {
            Self::release(b);
        }
    }
}

/// Runs `f` on this thread's bindings (an error, not a panic, while the
/// thread is being torn down).
fn with_bindings<T>(f: impl FnOnce(&mut Bindings) -> Result<T>) -> Result<T> {
    BINDINGS
        .try_with(|cell| match cell.try_borrow_mut() {
            Ok(mut b) => f(&mut b),
            Err(_) => Err(Error::Internal("stub bindings busy".into())),
        })
        .unwrap_or_else(|_| Err(Error::Internal("thread exiting".into())))
}

fn with_binding<T>(
    process: &Arc<StubProcess>,
    ctx: Option<u64>,
    f: impl FnOnce(&mut Binding) -> Result<T>,
) -> Result<T> {
    with_bindings(|bindings| {
        let i = bindings.get_or_create(process, ctx)?;
        if process.shared.systrap {
            // Systrap's address-space stub threads (the only traced ones)
            // follow the sentry thread that injects into them: the
            // injection is then a same-CPU hand-off.
            let b = &mut bindings.list[i];
            if let Some(cpu) = sys::current_cpu() {
                if b.cpu != Some(cpu) && sys::pin_to_cpu(b.tracee.tid, cpu).is_ok() {
                    b.cpu = Some(cpu);
                }
            }
        }
        let r = f(&mut bindings.list[i]);
        if let Err(Error::StubDied { .. }) = r {
            // The thread is gone (and was reaped by the wait that saw it).
            bindings.list.swap_remove(i);
        }
        r
    })
}

// ---------------------------------------------------------------------------
// Contexts.

#[derive(Default)]
struct IntrState {
    pending: AtomicBool,
    /// `tgid << 32 | tid` of the stub thread while a switch runs it, else 0.
    running: AtomicU64,
}

impl Interrupt for IntrState {
    fn interrupt(&self) {
        self.pending.store(true, Ordering::SeqCst);
        let r = self.running.load(Ordering::SeqCst);
        if r != 0 {
            let tgid = i32::try_from(r >> 32).unwrap_or(0);
            let tid = i32::try_from(r & 0xffff_ffff).unwrap_or(0);
            // The stub thread is our tracee until the switch returns, so
            // the tid cannot have been reused.
            let _ = sys::tgkill(tgid, tid, INTERRUPT_SIGNAL);
        }
    }
}

/// A ptrace context.
pub struct PtraceContext {
    id: u64,
    shared: Arc<Shared>,
    intr: Arc<IntrState>,
    /// (address space, stub tid) that last ran this context: where its
    /// FP state lives while `arch.fp` is `Live`.
    last: Option<(u64, i32)>,
}

impl std::fmt::Debug for PtraceContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PtraceContext").field("id", &self.id).finish()
    }
}

impl Drop for PtraceContext {
    fn drop(&mut self) {
        let id = self.id;
        let _ = BINDINGS.try_with(|cell| {
            if let Ok(mut b) = cell.try_borrow_mut() {
                b.release_ctx(id);
            }
        });
    }
}

fn downcast(a: &dyn AddressSpace) -> Result<&PtraceAddressSpace> {
    a.as_any().downcast_ref::<PtraceAddressSpace>().ok_or(Error::ForeignAddressSpace)
}

/// Fetches `fp` from stub thread `tid` if the calling sentry thread still
/// traces it.
fn fetch_fp_from(bindings: &Bindings, tid: i32, fp: &mut FpState) -> bool {
    bindings.list.iter().any(|x| x.tracee.tid == tid) && sys::get_xstate(tid, fp.fill_from_platform()).is_ok()
}

impl PtraceContext {
    /// Makes sure stub thread `tid` gets `arch.fp` before it runs, when the
    /// context last ran on another stub thread.
    fn migrate_fp(&mut self, bindings: &Bindings, arch: &mut ArchState, asid: u64, tid: i32) -> Result<()> {
        if self.last == Some((asid, tid)) {
            return Ok(());
        }
        match arch.fp.status() {
            FpStatus::Dirty => {}
            // The copy is current but the new thread has other values.
            FpStatus::Saved => {
                arch.fp.bytes_mut();
            }
            FpStatus::Live => {
                let fetched = match self.last {
                    Some((_, old)) => fetch_fp_from(bindings, old, &mut arch.fp),
                    // Never ran: the new thread gets the initial state.
                    None => {
                        arch.fp = FpState::initial();
                        true
                    }
                };
                if !fetched {
                    return Err(Error::Internal(format!(
                        "FP state of context {} lost with its stub thread",
                        self.id
                    )));
                }
                arch.fp.bytes_mut();
            }
        }
        Ok(())
    }

    /// Runs the stub thread; a stub killed while stopped (ptrace calls
    /// then fail with `ESRCH`) is reaped and reported dead.
    fn run(&mut self, b: &mut Binding, arch: &mut ArchState) -> Result<Event> {
        let tid = b.tracee.tid;
        self.run_inner(b, arch).map_err(|e| tracee::dead_if_gone(tid, e))
    }

    fn run_inner(&mut self, b: &mut Binding, arch: &mut ArchState) -> Result<Event> {
        let tid = b.tracee.tid;
        let cpu = match self.shared.config.placement {
            Placement::Pinned => placement::pinned_cpu(&self.shared.cpus),
            Placement::FollowTracer => sys::current_cpu(),
            Placement::Unpinned => None,
        };
        if let Some(cpu) = cpu {
            if b.cpu != Some(cpu) && sys::pin_to_cpu(tid, cpu).is_ok() {
                b.cpu = Some(cpu);
            }
        }
        let mut regs = arch.regs;
        // Never let the host restart a "system call" on resume.
        regs.orig_rax = u64::MAX;
        sys::set_regs(tid, &regs)?;
        if arch.fp.status() == FpStatus::Dirty {
            sys::set_xstate(tid, arch.fp.bytes())?;
            arch.fp.mark_live();
        }
        self.last = Some((b.asid, tid));
        sys::ptrace(libc::PTRACE_SYSEMU, tid, 0, 0)?;
        loop {
            let stop = wait(tid)?;
            match stop {
                Stop::Syscall => {
                    arch.regs = sys::get_regs(tid)?;
                    // `int 0x80` and friends stop here too, with i386
                    // numbers: never mistake them for x86_64 calls. The
                    // `syscall` instruction leaves rcx = rip and r11 =
                    // rflags, which settles the common case without
                    // asking the kernel (an application faking that for
                    // an `int 0x80` only gets x86_64 semantics for it).
                    let r = &arch.regs;
                    let native = r.rcx == r.rip && r.r11 == r.eflags;
                    if !native && sys::syscall_arch(tid)? != sys::AUDIT_ARCH_X86_64 {
                        return Ok(Event::ForeignSyscall);
                    }
                    return Ok(Event::Syscall);
                }
                Stop::Signal(INTERRUPT_SIGNAL) if self.intr.pending.swap(false, Ordering::SeqCst) => {
                    arch.regs = sys::get_regs(tid)?;
                    return Ok(Event::Interrupted);
                }
                Stop::Signal(sig) if sig != INTERRUPT_SIGNAL && sig != libc::SIGSTOP => {
                    let info = sys::get_siginfo(tid)?;
                    arch.regs = sys::get_regs(tid)?;
                    return Ok(classify(&info));
                }
                s if s.is_death() => {
                    return Err(Error::StubDied { tid, how: s.describe() });
                }
                // A stale interrupt signal, a SIGSTOP from the host, a group
                // stop or another event: swallow it and go on.
                _ => {
                    sys::ptrace(libc::PTRACE_SYSEMU, tid, 0, 0)?;
                }
            }
        }
    }
}

fn classify(info: &libc::siginfo_t) -> Event {
    // SAFETY: si_addr is valid to read for SIGSEGV/SIGBUS/SIGILL/SIGFPE/
    // SIGTRAP, and reads zero bytes of the union otherwise.
    let addr = unsafe { info.si_addr() } as u64;
    event_of(info.si_signo, info.si_code, addr)
}

/// The event a signal of the application thread's (its number, code and
/// `si_addr`) makes: a fault the sentry handles, or a signal.
pub(crate) fn event_of(signo: i32, code: i32, addr: u64) -> Event {
    let is_fault = (signo == libc::SIGSEGV || signo == libc::SIGBUS) && code > 0 && code != 0x80;
    if is_fault {
        Event::Fault { addr, access: None, code, signo }
    } else {
        let fault_like =
            matches!(signo, libc::SIGSEGV | libc::SIGBUS | libc::SIGILL | libc::SIGFPE | libc::SIGTRAP);
        Event::Signal(HostSignal { signo, code, addr: if fault_like { addr } else { 0 } })
    }
}

impl Context for PtraceContext {
    fn switch(&mut self, address_space: &dyn AddressSpace, arch: &mut ArchState) -> Result<Event> {
        let process = downcast(address_space)?.inner.clone();
        let ctx = self.id;
        with_bindings(|bindings| {
            let i = bindings.get_or_create(&process, Some(ctx))?;
            let (asid, tid, tgid) = {
                let b = &bindings.list[i];
                (b.asid, b.tracee.tid, b.tracee.tgid)
            };
            self.migrate_fp(bindings, arch, asid, tid)?;
            let running = (u64::try_from(tgid).unwrap_or(0) << 32) | u64::try_from(tid).unwrap_or(0);
            self.intr.running.store(running, Ordering::SeqCst);
            if self.intr.pending.swap(false, Ordering::SeqCst) {
                self.intr.running.store(0, Ordering::SeqCst);
                return Ok(Event::Interrupted);
            }
            let r = self.run(&mut bindings.list[i], arch);
            self.intr.running.store(0, Ordering::SeqCst);
            if let Err(Error::StubDied { .. }) = r {
                bindings.list.swap_remove(i);
                self.last = None;
            }
            r
        })
    }

    fn interrupt_handle(&self) -> InterruptHandle {
        InterruptHandle::new(self.intr.clone())
    }

    fn thread_cpu_time(&mut self, address_space: &dyn AddressSpace) -> Option<std::time::Duration> {
        // The stub thread's own clock.
        downcast(address_space).ok()?.read_clock(Some(self.id), 3)
    }

    fn fetch_fp(&mut self, arch: &mut ArchState) -> Result<()> {
        if arch.fp.status() != FpStatus::Live {
            return Ok(());
        }
        let Some((_, tid)) = self.last else {
            arch.fp = FpState::initial();
            return Ok(());
        };
        if with_bindings(|b| Ok(fetch_fp_from(b, tid, &mut arch.fp)))? {
            Ok(())
        } else {
            Err(Error::Internal(format!("FP state of context {} lost with its stub thread", self.id)))
        }
    }
}

#[cfg(test)]
mod tests;
