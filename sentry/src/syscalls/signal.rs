//! Signal system calls: dispositions, masks, the alternate stack, and
//! sending. Delivery to handlers comes with the signals issue.

use rvisor_syscalls::abi::{KernelSigaction, StackT};
use rvisor_syscalls::Errno;

use super::{Addr, SysResult};
use crate::kernel::signal::{self, sig, UNBLOCKABLE};
use crate::kernel::Task;

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
    let old = t.sigmask;
    if set != 0 {
        let s: u64 = t.mm.read_obj(set)?;
        let m = match how {
            SIG_BLOCK => old | s,
            SIG_UNBLOCK => old & !s,
            SIG_SETMASK => s,
            _ => return Err(Errno::EINVAL),
        };
        t.sigmask = m & !UNBLOCKABLE;
    }
    if oset != 0 {
        t.mm.write_obj(oset, &old)?;
    }
    Ok(0)
}

pub fn sigaltstack(t: &mut Task, ss: Addr, oss: Addr) -> SysResult {
    const SS_ONSTACK: i32 = 1;
    const SS_DISABLE: i32 = 2;
    const SS_AUTODISARM: i32 = 1 << 31;
    const MINSIGSTKSZ: u64 = 2048;
    let old = t.altstack;
    if ss != 0 {
        let mut n: StackT = t.mm.read_obj(ss)?;
        let mode = n.flags & !SS_AUTODISARM;
        if mode != 0 && mode != SS_DISABLE && mode != SS_ONSTACK {
            return Err(Errno::EINVAL);
        }
        if mode == SS_DISABLE {
            n = StackT { sp: 0, flags: SS_DISABLE, pad: 0, size: 0 };
        } else {
            if n.size < MINSIGSTKSZ {
                return Err(Errno::ENOMEM);
            }
            n.flags &= SS_AUTODISARM;
        }
        t.altstack = n;
    }
    if oss != 0 {
        t.mm.write_obj(oss, &StackT { pad: 0, ..old })?;
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

pub fn kill(t: &mut Task, pid: i32, signo: i32) -> SysResult {
    check_sig(signo)?;
    let own_pgid = t.tg().pgid.load(std::sync::atomic::Ordering::Relaxed);
    let groups = if pid > 0 {
        vec![t.kernel.thread_group(pid).ok_or(Errno::ESRCH)?]
    } else if pid == -1 {
        // Every process but init and the caller: with one process per
        // sandbox until the processes issue, there is none.
        return Err(Errno::ESRCH);
    } else {
        // Process groups come with the processes issue; until then the
        // only group is the caller's.
        let pgid = if pid == 0 { own_pgid } else { pid.checked_neg().ok_or(Errno::ESRCH)? };
        if pgid == own_pgid {
            vec![t.tg().clone()]
        } else {
            return Err(Errno::ESRCH);
        }
    };
    if signo != 0 {
        for g in groups {
            g.send_signal(signo);
        }
    }
    Ok(0)
}

pub fn tkill(t: &mut Task, tid: i32, signo: i32) -> SysResult {
    check_sig(signo)?;
    if tid <= 0 {
        return Err(Errno::EINVAL);
    }
    let target = t.kernel.task(tid).ok_or(Errno::ESRCH)?;
    if signo != 0 {
        target.tg.send_signal(signo);
    }
    Ok(0)
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
    if signo != 0 {
        target.tg.send_signal(signo);
    }
    Ok(0)
}
