//! Creating and reaping tasks: `clone`, `clone3`, `fork`, `vfork`,
//! `wait4`, `waitid`, `pidfd_open`, process groups and sessions.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rvisor_syscalls::abi::Rusage;
use rvisor_syscalls::Errno;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use super::{Addr, SysResult};
use crate::kernel::clone::{flags::*, CloneArgs};
use crate::kernel::signal::sig;
use crate::kernel::thread_group::{CpuTimes, JobReport};
use crate::kernel::{ExitStatus, Task, ThreadGroup};

fn id(v: i32) -> u64 {
    u64::from(v.cast_unsigned())
}

pub fn clone(t: &mut Task, flags: u64, stack: Addr, ptid: Addr, ctid: Addr, tls: u64) -> SysResult {
    // clone's flags are an unsigned long whose low byte is the exit signal;
    // bits of clone3 only are refused.
    let flags = flags & 0xffff_ffff;
    if flags & CLONE_PIDFD != 0 && flags & CLONE_PARENT_SETTID != 0 {
        return Err(Errno::EINVAL);
    }
    let exit_signal = i32::try_from(flags & CSIGNAL).unwrap_or(0);
    let a = CloneArgs {
        flags: flags & !(CSIGNAL | CLONE_DETACHED),
        pidfd: ptid,
        child_tid: ctid,
        parent_tid: ptid,
        exit_signal,
        stack,
        tls,
    };
    t.clone_task(&a).map(id)
}

/// `struct clone_args`.
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct CloneArgs3 {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// `CLONE_ARGS_SIZE_VER0`.
const CLONE_ARGS_SIZE_VER0: u64 = 64;

pub fn clone3(t: &mut Task, uargs: Addr, size: u64) -> SysResult {
    let full = std::mem::size_of::<CloneArgs3>() as u64;
    if !(CLONE_ARGS_SIZE_VER0..=4096).contains(&size) {
        return Err(Errno::EINVAL);
    }
    let mut a = CloneArgs3::default();
    let n = usize::try_from(size.min(full)).map_err(|_| Errno::EINVAL)?;
    t.mm.copy_in(uargs, &mut a.as_mut_bytes()[..n])?;
    if size > full {
        // A newer structure: its extra bytes must be zero (E2BIG).
        let extra = usize::try_from(size - full).map_err(|_| Errno::EINVAL)?;
        let rest = t.mm.read_bytes(uargs + full, extra)?;
        if rest.iter().any(|&b| b != 0) {
            return Err(Errno::E2BIG);
        }
    }
    if a.flags & !(0xffff_ffff | CLONE_CLEAR_SIGHAND | CLONE_INTO_CGROUP) != 0
        || a.flags & (CSIGNAL | CLONE_DETACHED) != 0
        || a.exit_signal > 64
        || a.set_tid_size != 0
        || a.flags & CLONE_INTO_CGROUP != 0
    {
        return Err(Errno::EINVAL);
    }
    if a.flags & CLONE_CLEAR_SIGHAND != 0 {
        // Not with shared dispositions; the child's handlers reset is not
        // offered yet.
        return Err(Errno::EINVAL);
    }
    if (a.stack == 0) != (a.stack_size == 0) {
        return Err(Errno::EINVAL);
    }
    let stack = if a.stack != 0 { a.stack.checked_add(a.stack_size).ok_or(Errno::EINVAL)? } else { 0 };
    let args = CloneArgs {
        flags: a.flags,
        pidfd: a.pidfd,
        child_tid: a.child_tid,
        parent_tid: a.parent_tid,
        exit_signal: i32::try_from(a.exit_signal).unwrap_or(0),
        stack,
        tls: a.tls,
    };
    t.clone_task(&args).map(id)
}

pub fn fork(t: &mut Task) -> SysResult {
    t.clone_task(&CloneArgs { exit_signal: sig::SIGCHLD, ..CloneArgs::default() }).map(id)
}

pub fn vfork(t: &mut Task) -> SysResult {
    let a = CloneArgs { flags: CLONE_VM | CLONE_VFORK, exit_signal: sig::SIGCHLD, ..CloneArgs::default() };
    t.clone_task(&a).map(id)
}

// ----------------------------------------------------------------------
// Waiting.

const WNOHANG: i32 = 1;
const WUNTRACED: i32 = 2;
const WEXITED: i32 = 4;
const WCONTINUED: i32 = 8;
const WNOWAIT: i32 = 0x0100_0000;
const WNOTHREAD: i32 = 0x2000_0000;
const WALL: i32 = 0x4000_0000;
const WCLONE: i32 = 0x8000_0000_u32.cast_signed();

/// Which children a wait is for.
enum Which {
    Any,
    Pid(i32),
    Pgid(i32),
    Process(Arc<ThreadGroup>),
}

/// What a wait found.
#[derive(Clone, Copy)]
enum Change {
    Exited(ExitStatus),
    Job(JobReport),
}

/// A reaped (or, with `WNOWAIT`, seen) child, or one that stopped or
/// continued.
struct Waited {
    pid: i32,
    uid: u32,
    change: Change,
    /// Its CPU time with its children's (what `wait4` reports).
    cpu: CpuTimes,
}

impl Change {
    /// The `wait(2)` status word.
    fn wait_status(self) -> i32 {
        match self {
            Change::Exited(s) => s.wait_status(),
            Change::Job(JobReport::Stopped(sig)) => (sig << 8) | 0x7f,
            Change::Job(JobReport::Continued) => 0xffff,
        }
    }
}

fn selects(which: &Which, c: &Arc<ThreadGroup>) -> bool {
    match which {
        Which::Any => true,
        Which::Pid(p) => c.tgid == *p,
        Which::Pgid(g) => c.pgid.load(Ordering::Relaxed) == *g,
        Which::Process(g) => Arc::ptr_eq(g, c),
    }
}

/// Waits for a child selected by `which` to exit (`WEXITED`), stop
/// (`WUNTRACED`) or continue (`WCONTINUED`). `Ok(None)`: `WNOHANG` and
/// nothing to report.
fn do_wait(t: &Task, which: &Which, options: i32) -> Result<Option<Waited>, Errno> {
    let tg = t.tg().clone();
    let kernel = t.kernel.clone();
    let _reg = tg.child_events.register(&t.shared, crate::kernel::waitq::events::ALL);
    loop {
        {
            let _tree = kernel.tree.lock().unwrap_or_else(|e| e.into_inner());
            let mut fam = tg.family.lock().unwrap_or_else(|e| e.into_inner());
            let mut any = false;
            let mut found = None;
            for c in &fam.children {
                if !selects(which, c) {
                    continue;
                }
                // __WCLONE: children that report with another signal than
                // SIGCHLD; __WALL: both kinds.
                let clone_child = c.exit_signal != sig::SIGCHLD;
                if options & WALL == 0 && (options & WCLONE != 0) != clone_child {
                    continue;
                }
                any = true;
                if let Some(status) = c.zombie_status() {
                    if options & WEXITED != 0 {
                        found = Some((c.clone(), Change::Exited(status)));
                        break;
                    }
                    continue;
                }
                let want = |r: JobReport| match r {
                    JobReport::Stopped(_) => options & WUNTRACED != 0,
                    JobReport::Continued => options & WCONTINUED != 0,
                };
                if let Some(r) = c.take_job_report(want, options & WNOWAIT != 0) {
                    found = Some((c.clone(), Change::Job(r)));
                    break;
                }
            }
            if !any {
                return Err(Errno::ECHILD);
            }
            if let Some((c, change)) = found {
                if options & WNOWAIT == 0 && matches!(change, Change::Exited(_)) {
                    fam.children.retain(|x| !Arc::ptr_eq(x, &c));
                    tg.add_child_times(&c);
                }
                let t = c.cpu_times();
                let cpu =
                    CpuTimes { user: t.user + t.child_user, sys: t.sys + t.child_sys, ..CpuTimes::default() };
                return Ok(Some(Waited { pid: c.tgid, uid: c.creds().ruid, change, cpu }));
            }
        }
        if options & WNOHANG != 0 {
            return Ok(None);
        }
        t.wait_kick(None).map_err(|_| Errno::ERESTARTSYS)?;
    }
}

pub fn wait4(t: &mut Task, pid: i32, status: Addr, options: i32, rusage: Addr) -> SysResult {
    if options & !(WNOHANG | WUNTRACED | WCONTINUED | WNOTHREAD | WCLONE | WALL) != 0 {
        return Err(Errno::EINVAL);
    }
    let which = match pid {
        -1 => Which::Any,
        0 => Which::Pgid(t.tg().pgid.load(Ordering::Relaxed)),
        p if p > 0 => Which::Pid(p),
        // INT_MIN has no process group to name.
        p => Which::Pgid(p.checked_neg().ok_or(Errno::ESRCH)?),
    };
    let Some(w) = do_wait(t, &which, options | WEXITED)? else { return Ok(0) };
    if status != 0 {
        t.mm.write_obj(status, &w.change.wait_status())?;
    }
    if rusage != 0 {
        t.mm.write_obj(rusage, &super::process::rusage_of(w.cpu.user, w.cpu.sys))?;
    }
    Ok(id(w.pid))
}

/// The `SIGCHLD` part of a `siginfo_t` (128 bytes).
#[derive(Clone, Copy, Debug, Default, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C)]
struct ChildInfo {
    signo: i32,
    errno: i32,
    code: i32,
    pad: i32,
    pid: i32,
    uid: u32,
    status: i32,
    pad2: i32,
    utime: i64,
    stime: i64,
    rest: [u64; 10],
}

pub fn waitid(t: &mut Task, idtype: i32, pid: i32, infop: Addr, options: i32, rusage: Addr) -> SysResult {
    const P_ALL: i32 = 0;
    const P_PID: i32 = 1;
    const P_PGID: i32 = 2;
    const P_PIDFD: i32 = 3;
    use crate::kernel::signal::code::{CLD_CONTINUED, CLD_DUMPED, CLD_EXITED, CLD_KILLED, CLD_STOPPED};
    if options & !(WNOHANG | WUNTRACED | WEXITED | WCONTINUED | WNOWAIT | WNOTHREAD | WCLONE | WALL) != 0
        || options & (WEXITED | WUNTRACED | WCONTINUED) == 0
    {
        return Err(Errno::EINVAL);
    }
    let which = match idtype {
        P_ALL => Which::Any,
        P_PID if pid > 0 => Which::Pid(pid),
        P_PGID if pid > 0 => Which::Pgid(pid),
        P_PGID if pid == 0 => Which::Pgid(t.tg().pgid.load(Ordering::Relaxed)),
        P_PIDFD => {
            let f = t.fds.get(pid)?;
            let g = f.pidfd_target().ok_or(Errno::EBADF)?;
            if f.nonblocking() && g.zombie_status().is_none() && options & WNOHANG == 0 {
                // A non-blocking pidfd of a running child.
                let is_child = g.parent().is_some_and(|p| Arc::ptr_eq(&p, t.tg()));
                if is_child {
                    return Err(Errno::EAGAIN);
                }
            }
            Which::Process(g)
        }
        _ => return Err(Errno::EINVAL),
    };
    let w = do_wait(t, &which, options)?;
    if infop != 0 {
        let info = match &w {
            None => ChildInfo::default(),
            Some(w) => {
                let (code, status) = match w.change {
                    Change::Exited(ExitStatus::Code(c)) => (CLD_EXITED, i32::from(c)),
                    Change::Exited(ExitStatus::Signal { sig, core: false }) => (CLD_KILLED, sig),
                    Change::Exited(ExitStatus::Signal { sig, core: true }) => (CLD_DUMPED, sig),
                    Change::Job(JobReport::Stopped(sig)) => (CLD_STOPPED, sig),
                    Change::Job(JobReport::Continued) => (CLD_CONTINUED, sig::SIGCONT),
                };
                ChildInfo {
                    signo: sig::SIGCHLD,
                    code,
                    pid: w.pid,
                    uid: w.uid,
                    status,
                    ..ChildInfo::default()
                }
            }
        };
        t.mm.write_obj(infop, &info)?;
    }
    if rusage != 0 {
        let r = w.as_ref().map_or_else(Rusage::default, |w| super::process::rusage_of(w.cpu.user, w.cpu.sys));
        t.mm.write_obj(rusage, &r)?;
    }
    Ok(0)
}

pub fn pidfd_open(t: &mut Task, pid: i32, flags: u32) -> SysResult {
    const PIDFD_NONBLOCK: u32 = crate::vfs::file::oflags::O_NONBLOCK;
    if flags & !PIDFD_NONBLOCK != 0 || pid <= 0 {
        return Err(Errno::EINVAL);
    }
    let Some(tg) = t.kernel.thread_group(pid) else {
        // A thread that does not lead its group, or nothing.
        return Err(if t.kernel.task(pid).is_some() { Errno::EINVAL } else { Errno::ESRCH });
    };
    let file = crate::kernel::pidfd::open(&tg, flags);
    let limit = usize::try_from(t.tg().rlimit(7).cur).unwrap_or(usize::MAX);
    Ok(id(t.fds.install(file, true, 0, limit)?))
}

// ----------------------------------------------------------------------
// Process groups and sessions.

pub fn setpgid(t: &mut Task, pid: i32, pgid: i32) -> SysResult {
    if pgid < 0 {
        return Err(Errno::EINVAL);
    }
    let me = t.tg().clone();
    let kernel = t.kernel.clone();
    let _tree = kernel.tree.lock().unwrap_or_else(|e| e.into_inner());
    let target = if pid == 0 || pid == me.tgid {
        me.clone()
    } else {
        let c = me
            .family
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .children
            .iter()
            .find(|c| c.tgid == pid)
            .cloned()
            .ok_or(Errno::ESRCH)?;
        if c.sid.load(Ordering::Relaxed) != me.sid.load(Ordering::Relaxed) {
            return Err(Errno::EPERM);
        }
        if c.did_exec.load(Ordering::Relaxed) {
            return Err(Errno::EACCES);
        }
        c
    };
    let pgid = if pgid == 0 { target.tgid } else { pgid };
    let sid = target.sid.load(Ordering::Relaxed);
    if sid == target.tgid {
        // A session leader stays in its group.
        return Err(Errno::EPERM);
    }
    if pgid != target.tgid {
        // Joining a group: it must exist in the same session.
        let exists = kernel.thread_groups().iter().any(|g| {
            g.pgid.load(Ordering::Relaxed) == pgid && g.sid.load(Ordering::Relaxed) == sid && g.unreaped()
        });
        if !exists {
            return Err(Errno::EPERM);
        }
    }
    target.pgid.store(pgid, Ordering::Relaxed);
    Ok(0)
}

pub fn setsid(t: &mut Task) -> SysResult {
    let tg = t.tg().clone();
    let kernel = t.kernel.clone();
    let _tree = kernel.tree.lock().unwrap_or_else(|e| e.into_inner());
    // Not if a process group with the caller's id exists (it would lead
    // it in another session).
    let leads = kernel.thread_groups().iter().any(|g| g.pgid.load(Ordering::Relaxed) == tg.tgid);
    if leads {
        return Err(Errno::EPERM);
    }
    tg.pgid.store(tg.tgid, Ordering::Relaxed);
    tg.sid.store(tg.tgid, Ordering::Relaxed);
    *tg.ctty.lock().unwrap_or_else(|p| p.into_inner()) = None;
    Ok(id(tg.tgid))
}
