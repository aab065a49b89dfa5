//! Signal system calls: dispositions, masks, the alternate stack,
//! sending, waiting, and the return from a handler.

use rvisor_syscalls::abi::{KernelSigaction, StackT};
use rvisor_syscalls::Errno;

use std::sync::atomic::Ordering;
use std::sync::Arc;

use super::{Addr, SysResult};
use crate::kernel::signal::{self, code, sig, Siginfo, UNBLOCKABLE};
use crate::kernel::{Task, ThreadGroup};

const SIGSET_SIZE: u64 = 8;

pub fn rt_sigaction(t: &mut Task, signo: i32, act: Addr, oact: Addr, size: u64) -> SysResult {
    if size != SIGSET_SIZE || !signal::valid(signo) {
        return Err(Errno::EINVAL);
    }
    let new: Option<KernelSigaction> = if act != 0 { Some(t.mm.read_obj(act)?) } else { None };
    if new.is_some() && (signo == sig::SIGKILL || signo == sig::SIGSTOP) {
        return Err(Errno::EINVAL);
    }
    let old = {
        let mut acts = t.tg().actions.lock().unwrap_or_else(|p| p.into_inner());
        let old = acts.get(signo);
        if let Some(mut n) = new {
            n.mask &= !UNBLOCKABLE;
            acts.set(signo, n);
        }
        old
    };
    if let Some(n) = new {
        // A signal now ignored is dropped if pending (POSIX).
        let ignored = n.handler == signal::SIG_IGN
            || (n.handler == signal::SIG_DFL
                && signal::default_action(signo) == signal::DefaultAction::Ignore);
        if ignored {
            t.tg().discard_signals(signal::bit(signo));
        }
    }
    if oact != 0 {
        t.mm.write_obj(oact, &old)?;
    }
    Ok(0)
}

pub fn rt_sigprocmask(t: &mut Task, how: i32, set: Addr, oset: Addr, size: u64) -> SysResult {
    const SIG_BLOCK: i32 = 0;
    const SIG_UNBLOCK: i32 = 1;
    const SIG_SETMASK: i32 = 2;
    if size != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let old = t.sigmask();
    if set != 0 {
        let s: u64 = t.mm.read_obj(set)?;
        let m = match how {
            SIG_BLOCK => old | s,
            SIG_UNBLOCK => old & !s,
            SIG_SETMASK => s,
            _ => return Err(Errno::EINVAL),
        };
        t.set_sigmask(m);
    }
    if oset != 0 {
        t.mm.write_obj(oset, &old)?;
    }
    Ok(0)
}

pub fn rt_sigreturn(t: &mut Task) -> SysResult {
    t.sigreturn()
}

pub fn rt_sigsuspend(t: &mut Task, mask: Addr, size: u64) -> SysResult {
    if size != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let m: u64 = t.mm.read_obj(mask)?;
    t.saved_mask = Some(t.sigmask());
    t.set_sigmask(m);
    // Until a signal is delivered (its handler then runs with the mask
    // restored by rt_sigreturn), or the task must stop.
    while t.wait_kick(None).is_ok() {}
    Err(Errno::ERESTARTNOHAND)
}

pub fn rt_sigpending(t: &mut Task, set: Addr, size: u64) -> SysResult {
    if size > SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let pending = (t.shared.pending_bits() | t.tg().pending_bits()) & t.sigmask();
    let n = usize::try_from(size).unwrap_or(0);
    t.mm.copy_out(set, &pending.to_le_bytes()[..n])?;
    Ok(0)
}

pub fn rt_sigtimedwait(t: &mut Task, set: Addr, info: Addr, tmo: Addr, size: u64) -> SysResult {
    if size != SIGSET_SIZE {
        return Err(Errno::EINVAL);
    }
    let want: u64 = t.mm.read_obj(set)?;
    let want = want & !UNBLOCKABLE;
    let deadline = if tmo != 0 {
        let ts: rvisor_syscalls::abi::Timespec = t.mm.read_obj(tmo)?;
        let d = super::time::duration(ts)?;
        Some(std::time::Instant::now() + d)
    } else {
        None
    };
    // The signals waited for are unblocked for the wait (as Linux does),
    // so that their arrival ends it; they are taken here, not delivered.
    let old = t.sigmask();
    t.shared.set_real_blocked(old);
    t.set_sigmask(old & !want);
    let r = loop {
        if let Some(mut i) = t.shared.take_signal(want).or_else(|| t.tg().take_signal(want)) {
            crate::kernel::timers::delivered(t.tg(), &mut i);
            break Ok(i);
        }
        match t.wait_kick(deadline) {
            Ok(true) => {}
            Ok(false) => break Err(Errno::EAGAIN),
            Err(_) => break Err(Errno::EINTR),
        }
    };
    t.set_sigmask(old);
    t.shared.set_real_blocked(0);
    let i = r?;
    if info != 0 {
        t.mm.write_obj(info, &i)?;
    }
    Ok(u64::from(i.signo.cast_unsigned()))
}

pub fn sigaltstack(t: &mut Task, ss: Addr, oss: Addr) -> SysResult {
    let new: Option<StackT> = if ss == 0 { None } else { Some(t.mm.read_obj(ss)?) };
    let sp = t.arch.regs.rsp;
    let old = t.set_altstack(new, sp)?;
    if oss != 0 {
        t.mm.write_obj(oss, &old)?;
    }
    Ok(0)
}

fn check_sig(signo: i32) -> Result<(), Errno> {
    if signo == 0 || signal::valid(signo) {
        Ok(())
    } else {
        Err(Errno::EINVAL)
    }
}

/// `CAP_KILL`.
const CAP_KILL: u64 = 1 << 5;

/// Linux's `kill_ok_by_cred`: the sender's real or effective uid matches
/// the target's real or saved uid, or `CAP_KILL`; `SIGCONT` within a
/// session.
fn may_signal(t: &Task, target: &ThreadGroup, signo: i32) -> bool {
    let me = t.tg().creds();
    let them = target.creds();
    me.capable(CAP_KILL)
        || [me.euid, me.ruid].iter().any(|u| *u == them.ruid || *u == them.suid)
        || (signo == sig::SIGCONT && t.tg().sid.load(Ordering::Relaxed) == target.sid.load(Ordering::Relaxed))
}

fn sender_info(t: &Task, signo: i32, code: i32) -> Siginfo {
    Siginfo::user(signo, code, t.tgid(), t.tg().creds().ruid)
}

/// Sends `signo` to each of `groups` the caller may signal: `ESRCH` if
/// there is none, `EPERM` if it may signal none of them.
fn signal_groups(t: &Task, groups: &[Arc<ThreadGroup>], signo: i32) -> SysResult {
    signal_groups_with(t, groups, signo, None)
}

/// [`signal_groups`] with the `siginfo` the caller gave (`None`: the
/// sender's, as `kill` makes it).
fn signal_groups_with(t: &Task, groups: &[Arc<ThreadGroup>], signo: i32, info: Option<Siginfo>) -> SysResult {
    let live: Vec<&Arc<ThreadGroup>> = groups.iter().filter(|g| g.zombie_status().is_none()).collect();
    if live.is_empty() && groups.is_empty() {
        return Err(Errno::ESRCH);
    }
    let mut sent = 0;
    for g in &live {
        if may_signal(t, g, signo) {
            if signo != 0 {
                g.send_signal(info.unwrap_or_else(|| sender_info(t, signo, code::SI_USER)));
            }
            sent += 1;
        }
    }
    // A zombie can be "signalled" (nothing happens).
    if sent == 0 && !live.is_empty() {
        return Err(Errno::EPERM);
    }
    Ok(0)
}

pub fn kill(t: &mut Task, pid: i32, signo: i32) -> SysResult {
    check_sig(signo)?;
    let all = t.kernel.thread_groups();
    let groups: Vec<Arc<ThreadGroup>> = if pid > 0 {
        vec![t.kernel.thread_group(pid).ok_or(Errno::ESRCH)?]
    } else if pid == -1 {
        // Everyone the caller may signal but itself and its container's
        // init.
        let init = t.tg().container.init.lock().unwrap_or_else(|p| p.into_inner()).upgrade();
        let v: Vec<_> = all
            .into_iter()
            .filter(|g| !Arc::ptr_eq(g, t.tg()) && !init.as_ref().is_some_and(|i| Arc::ptr_eq(i, g)))
            .filter(|g| g.zombie_status().is_none())
            .collect();
        if v.is_empty() {
            return Err(Errno::ESRCH);
        }
        v
    } else {
        let pgid = if pid == 0 {
            t.tg().pgid.load(Ordering::Relaxed)
        } else {
            pid.checked_neg().ok_or(Errno::ESRCH)?
        };
        let v: Vec<_> = all.into_iter().filter(|g| g.pgid.load(Ordering::Relaxed) == pgid).collect();
        if v.is_empty() {
            return Err(Errno::ESRCH);
        }
        v
    };
    signal_groups(t, &groups, signo)
}

fn signal_thread(t: &Task, target: &Arc<crate::kernel::TaskShared>, signo: i32) -> SysResult {
    signal_thread_with(t, target, signo, None)
}

fn signal_thread_with(
    t: &Task,
    target: &Arc<crate::kernel::TaskShared>,
    signo: i32,
    info: Option<Siginfo>,
) -> SysResult {
    if !may_signal(t, &target.tg, signo) {
        return Err(Errno::EPERM);
    }
    if signo == sig::SIGKILL {
        target.tg.begin_exit(crate::kernel::ExitStatus::Signal { sig: signo, core: false });
    } else if signo != 0 {
        target.send(info.unwrap_or_else(|| sender_info(t, signo, code::SI_TKILL)));
    }
    Ok(0)
}

/// The `siginfo` an application gives `rt_sigqueueinfo` and friends, as
/// Linux takes it: its own `si_signo` replaced by `signo` (or refused,
/// `check_signo`), only the kernel's 48 bytes kept. Only a process
/// signalling itself may claim a code the kernel or `kill`/`tgkill` use
/// (`si_code >= 0` or `SI_TKILL`): nobody else can pretend to be them.
fn user_info(t: &Task, addr: Addr, signo: i32, to_self: bool, check_signo: bool) -> Result<Siginfo, Errno> {
    let mut info: Siginfo = t.mm.read_obj(addr)?;
    if check_signo && info.signo != signo {
        return Err(Errno::EINVAL);
    }
    info.signo = signo;
    info.fields[4..].fill(0);
    if (info.code >= 0 || info.code == code::SI_TKILL) && !to_self {
        return Err(Errno::EPERM);
    }
    Ok(info)
}

pub fn rt_sigqueueinfo(t: &mut Task, tgid: i32, signo: i32, uinfo: Addr) -> SysResult {
    let info = user_info(t, uinfo, signo, tgid == t.tid(), false)?;
    // POSIX.1b says nothing of process groups: a positive pid only.
    let g = if tgid > 0 { t.kernel.thread_group(tgid) } else { None }.ok_or(Errno::ESRCH)?;
    check_sig(signo)?;
    signal_groups_with(t, &[g], signo, Some(info))
}

pub fn rt_tgsigqueueinfo(t: &mut Task, tgid: i32, tid: i32, signo: i32, uinfo: Addr) -> SysResult {
    if tgid <= 0 || tid <= 0 {
        return Err(Errno::EINVAL);
    }
    let info = user_info(t, uinfo, signo, tid == t.tid(), false)?;
    let target = t.kernel.task(tid).ok_or(Errno::ESRCH)?;
    if target.tg.tgid != tgid {
        return Err(Errno::ESRCH);
    }
    check_sig(signo)?;
    signal_thread_with(t, &target, signo, Some(info))
}

pub fn tkill(t: &mut Task, tid: i32, signo: i32) -> SysResult {
    check_sig(signo)?;
    if tid <= 0 {
        return Err(Errno::EINVAL);
    }
    let target = t.kernel.task(tid).ok_or(Errno::ESRCH)?;
    signal_thread(t, &target, signo)
}

pub fn tgkill(t: &mut Task, tgid: i32, tid: i32, signo: i32) -> SysResult {
    check_sig(signo)?;
    if tid <= 0 || tgid <= 0 {
        return Err(Errno::EINVAL);
    }
    let target = t.kernel.task(tid).ok_or(Errno::ESRCH)?;
    if target.tg.tgid != tgid {
        return Err(Errno::ESRCH);
    }
    signal_thread(t, &target, signo)
}

pub fn pidfd_send_signal(t: &mut Task, pidfd: i32, signo: i32, info: Addr, flags: u32) -> SysResult {
    check_sig(signo)?;
    if flags != 0 {
        return Err(Errno::EINVAL);
    }
    let f = t.fds.get(pidfd)?;
    let g = f.pidfd_target().ok_or(Errno::EBADF)?;
    if g.zombie_status().is_some() {
        return Err(Errno::ESRCH);
    }
    let info = if info == 0 {
        None
    } else {
        // Only a process signalling itself may claim kill's codes.
        Some(user_info(t, info, signo, Arc::ptr_eq(&g, t.tg()), true)?)
    };
    signal_groups_with(t, &[g], signo, info)
}
