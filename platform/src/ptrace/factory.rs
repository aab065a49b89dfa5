//! The master stub and the thread that traces it.
//!
//! Stub processes are never forked from the sentry: the platform forks one
//! small *master stub* when it starts (from this dedicated thread, so that
//! the master's parent-death signal is tied to a thread that lives as long
//! as the platform), and every stub process is then a fork of the master,
//! made by injecting `clone` into it. Neither the master nor any stub
//! process shares the sentry's descriptor table: files reach a stub's own
//! table over the platform's file channel (see [`super::files`]).

use std::os::fd::OwnedFd;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use super::batch::BatchPages;
use super::stub::{self, InitParams, StubRegion, TASK_TOP};
use super::tracee::{wait, Stop, Tracee};
use super::{FORK_FLAGS, THREAD_FLAGS};
use crate::seccomp::{stub_filter, SockFilter};
use crate::{sys, Error, Result};

type Reply = mpsc::SyncSender<Result<NewProcess>>;

/// What the factory thread is asked for.
enum Request {
    /// A process, now.
    Make(Reply),
    /// The spare was taken: make the next one.
    Replenish,
}

/// The process made ahead, taken without waking the factory thread.
type Spare = Arc<Mutex<Option<NewProcess>>>;

/// A stub process the factory made: a fork of the master idling untraced
/// in `pause`, with one more thread, also idle, ready to be seized.
#[derive(Debug)]
pub(crate) struct NewProcess {
    pub pid: i32,
    /// Taken before the process could run anything of the application's,
    /// so that the pid names it for sure.
    pub pidfd: OwnedFd,
    pub idle_thread: i32,
    /// On systrap, a second idle thread (0 if none): the first does the
    /// process's address-space calls, this one runs application code.
    pub spare_thread: i32,
    /// On systrap, its context area (made and mapped, the handler
    /// installed).
    pub area: Option<super::systrap::Area>,
    /// Its batch page's slot, mapped at [`super::batch_addr`].
    pub batch_slot: u32,
}

/// Handle on the factory thread.
#[derive(Debug)]
pub(crate) struct Factory {
    requests: Option<mpsc::Sender<Request>>,
    spare: Spare,
    thread: Option<JoinHandle<()>>,
    /// Host pid of the master stub.
    pub master: i32,
}

impl Factory {
    /// Starts the factory thread, which forks and initialises the master.
    pub fn start(
        region: &'static StubRegion,
        batch: Arc<BatchPages>,
        sock_fd: i32,
        systrap: bool,
    ) -> Result<Factory> {
        let (tx, rx) = mpsc::channel::<Request>();
        let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<i32>>(1);
        let spare = Spare::default();
        let slot = spare.clone();
        let thread = std::thread::Builder::new()
            .name("rvisor-stub-factory".into())
            .stack_size(256 << 10)
            .spawn(move || run(region, &batch, sock_fd, systrap, rx, ready_tx, &slot))
            .map_err(|e| Error::Os { op: "spawn factory thread", err: e })?;
        let master = ready_rx.recv().map_err(|_| Error::Internal("factory thread died".into()))??;
        Ok(Factory { requests: Some(tx), spare, thread: Some(thread), master })
    }

    /// A new stub process. Once a sandbox has asked for a second one (it
    /// forks), the factory keeps one made ahead, so that `fork` and
    /// `execve` do not wait for it.
    pub fn new_process(&self) -> Result<NewProcess> {
        let requests = self.requests.as_ref().ok_or_else(|| Error::Internal("factory stopped".into()))?;
        let ready = self.spare.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(p) = ready {
            let _ = requests.send(Request::Replenish);
            return Ok(p);
        }
        let (tx, rx) = mpsc::sync_channel(1);
        requests.send(Request::Make(tx)).map_err(|_| Error::Internal("factory thread died".into()))?;
        rx.recv().map_err(|_| Error::Internal("factory thread died".into()))?
    }
}

impl Drop for Factory {
    fn drop(&mut self) {
        self.requests = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn run(
    region: &'static StubRegion,
    batch: &BatchPages,
    sock_fd: i32,
    systrap: bool,
    rx: mpsc::Receiver<Request>,
    ready: mpsc::SyncSender<Result<i32>>,
    slot: &Spare,
) {
    if !stub::unregister_rseq() {
        let _ =
            ready.send(Err(Error::Internal("could not unregister rseq on the stub factory thread".into())));
        return;
    }
    let master = match fork_master(region, sock_fd, batch.fd(), systrap) {
        Ok(m) => m,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let _ = ready.send(Ok(master.tid));
    let master_died =
        |r: &Result<NewProcess>| matches!(r, Err(Error::StubDied { tid, .. }) if *tid == master.tid);
    let mut master_dead = false;
    let mut made = 0u32;
    for req in rx {
        let want_spare = match req {
            Request::Make(reply) => {
                let r = make_process(region, batch, &master, systrap);
                master_dead = master_died(&r);
                let _ = reply.send(r);
                made = made.saturating_add(1);
                // The first process is the application's; a second means
                // the sandbox forks: from then on one waits ready (a
                // sandbox that never forks pays no memory for it).
                made >= 2
            }
            Request::Replenish => true,
        };
        if master_dead {
            break;
        }
        if want_spare && slot.lock().unwrap_or_else(|p| p.into_inner()).is_none() {
            let r = make_process(region, batch, &master, systrap);
            master_dead = master_died(&r);
            match r {
                Ok(p) => *slot.lock().unwrap_or_else(|p| p.into_inner()) = Some(p),
                Err(e) if !master_dead => tracing::warn!("stub factory: spare process: {e}"),
                Err(_) => break,
            }
        }
    }
    if let Some(p) = slot.lock().unwrap_or_else(|p| p.into_inner()).take() {
        let _ = sys::pidfd_send_signal(std::os::fd::AsFd::as_fd(&p.pidfd), libc::SIGKILL);
        batch.release(p.batch_slot);
    }
    // The platform is gone: so is the master (its children follow through
    // their parent-death signal). Once the master was reaped its pid may
    // name another process: no signal then.
    if !master_dead {
        let _ = sys::kill(master.tid, libc::SIGKILL);
        let _ = sys::wait(master.tid, 0);
    }
}

/// Clones a stub process from the master and one idle thread in it (two
/// on systrap).
fn make_process(
    region: &'static StubRegion,
    batch: &BatchPages,
    master: &Tracee,
    systrap: bool,
) -> Result<NewProcess> {
    let slot = batch.alloc().ok_or_else(|| Error::errno("batch page for a stub process", libc::EAGAIN))?;
    make_process_in(region, batch, slot, master, systrap).inspect_err(|_| batch.release(slot))
}

fn make_process_in(
    region: &'static StubRegion,
    batch: &BatchPages,
    slot: u32,
    master: &Tracee,
    systrap: bool,
) -> Result<NewProcess> {
    let pid = master.inject_clone(region, u64::from(FORK_FLAGS), master.tid)?;
    let pid = i32::try_from(pid)
        .ok()
        .filter(|&p| p > 0)
        .ok_or_else(|| Error::errno("clone stub process", i32::try_from(-pid).unwrap_or(0)))?;
    let pidfd = sys::pidfd_open(pid)?;
    let fd = std::os::fd::AsFd::as_fd(&pidfd);
    // The batch page, read-only, and its result page, read-write, mapped
    // by the leader while it is seized, from the stub's own copy of the
    // batch file.
    let ro = u64::try_from(libc::PROT_READ).unwrap_or(1);
    let rw = u64::try_from(libc::PROT_READ | libc::PROT_WRITE).unwrap_or(3);
    let flags = u64::try_from(libc::MAP_SHARED | libc::MAP_FIXED).unwrap_or(0x11);
    let file = u64::try_from(super::files::BATCH_FD).unwrap_or(1);
    let maps = [
        [super::batch_addr(region), crate::PAGE_SIZE, ro, flags, file, BatchPages::offset(slot)],
        [super::result_addr(region), crate::PAGE_SIZE, rw, flags, file, BatchPages::result_offset(slot)],
    ];
    let mut area = None;
    let mut systrap_set_up = |leader: &Tracee| -> Result<()> {
        if systrap {
            area = Some(super::systrap::make_area(leader, region, batch, slot, fd)?);
        }
        Ok(())
    };
    let threads = if systrap { 2 } else { 1 };
    let made = super::StubProcess::clone_idle_threads(
        pid,
        fd,
        region,
        master.tid,
        &maps,
        &mut systrap_set_up,
        threads,
    );
    match made {
        Ok(t) => Ok(NewProcess { pid, pidfd, idle_thread: t[0], spare_thread: t[1], area, batch_slot: slot }),
        Err(e) => {
            let _ = sys::pidfd_send_signal(fd, libc::SIGKILL);
            Err(e)
        }
    }
}

/// Forks the master stub from this thread and waits until its `init` has
/// run.
fn fork_master(region: &'static StubRegion, sock_fd: i32, batch_fd: i32, systrap: bool) -> Result<Tracee> {
    let flags = [FORK_FLAGS, THREAD_FLAGS];
    let filter: Vec<SockFilter> = stub_filter(region.start, region.code_len, &flags, systrap);
    let params = Box::new(InitParams {
        ppid: u64::try_from(sys::getpid()).unwrap_or(0),
        fprog_len: u64::try_from(filter.len()).unwrap_or(0),
        fprog_filter: filter.as_ptr() as u64,
        stub_start: region.start,
        stub_end: region.end,
        top: TASK_TOP,
        sig_ign: [1, 0, 0, 0], // SIG_IGN
        sig_dfl: [0; 4],
        cap_header: [0x2008_0522, 0], // _LINUX_CAPABILITY_VERSION_3, this process
        cap_data: [0; 6],
        rlimit_zero: [0, 0],
        empty_mask: 0,
        altstack: [0, 2, 0], // SS_DISABLE
        sock_fd: u64::try_from(sock_fd).map_err(|_| Error::Internal("file channel fd".into()))?,
        batch_fd: u64::try_from(batch_fd).map_err(|_| Error::Internal("batch fd".into()))?,
    });
    let entry = region.addr(region.off.init);
    let pid = raw_fork_into_stub(u64::from(FORK_FLAGS), entry, &params);
    if pid < 0 {
        return Err(Error::errno("fork master stub", i32::try_from(-pid).unwrap_or(0)));
    }
    let pid = i32::try_from(pid).map_err(|_| Error::Internal("bad pid".into()))?;
    // The child asks to be traced (PTRACE_TRACEME) and stops at `int3`
    // once it has confined and emptied itself.
    match wait(pid)? {
        Stop::Signal(libc::SIGTRAP) => {}
        other => {
            let _ = sys::kill(pid, libc::SIGKILL);
            let _ = sys::wait(pid, 0);
            return Err(Error::StubDied { tid: pid, how: format!("master stub init: {}", other.describe()) });
        }
    }
    let opts = usize::try_from(libc::PTRACE_O_EXITKILL | libc::PTRACE_O_TRACESYSGOOD).unwrap_or(0);
    sys::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, opts)?;
    let base = sys::get_regs(pid)?;
    drop(params);
    drop(filter);
    Ok(Tracee { tid: pid, tgid: pid, base })
}

/// `clone(flags)` from this thread; the child jumps straight to the stub's
/// `init` with `r12 = params` and never returns to Rust code.
fn raw_fork_into_stub(flags: u64, entry: u64, params: &InitParams) -> i64 {
    let ret: i64;
    // SAFETY: a raw clone without CLONE_VM: the child gets a copy of this
    // address space and immediately jumps to the stub code (mapped at
    // `entry` in this process, so in the child too), which makes only raw
    // system calls from the stub page, reads `params` (copied with the
    // address space) and unmaps everything but the stub page. No Rust code
    // and no lock of this process runs in the child. The parent only gets
    // the return value; rcx and r11 are clobbered by `syscall`.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            "jmp r9",
            "2:",
            inlateout("rax") libc::SYS_clone => ret,
            in("rdi") flags,
            in("rsi") 0u64,
            in("rdx") 0u64,
            in("r10") 0u64,
            in("r8") 0u64,
            in("r9") entry,
            in("r12") std::ptr::from_ref(params),
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}
