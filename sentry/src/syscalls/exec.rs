//! `execve` and `execveat`: the new program replaces the process's image
//! once it is loaded; any error before that leaves the caller as it was.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use rvisor_platform::ArchState;
use rvisor_syscalls::Errno;

use super::path::{creds, read_path, start_dir, AT_EMPTY_PATH, AT_FDCWD, AT_SYMLINK_NOFOLLOW};
use super::{Addr, Fd, SysResult};
use crate::kernel::exec::{self, ExecContext, Program};
use crate::kernel::{Task, TaskShared};
use crate::loader::{arg_limit, MAX_ARG_STRLEN};

/// Reads a NULL-terminated array of strings (argv or envp), counting
/// against `budget` bytes as Linux does (`E2BIG` past it).
fn read_strings(t: &Task, mut at: Addr, budget: &mut u64) -> Result<Vec<Vec<u8>>, Errno> {
    let mut out = Vec::new();
    if at == 0 {
        return Ok(out);
    }
    loop {
        let p: u64 = t.mm.read_obj(at)?;
        if p == 0 {
            return Ok(out);
        }
        let s = t.mm.read_cstring(p, MAX_ARG_STRLEN).map_err(|e| {
            if e == Errno::ENAMETOOLONG {
                Errno::E2BIG
            } else {
                e
            }
        })?;
        let cost = s.len() as u64 + 1 + 8;
        *budget = budget.checked_sub(cost).ok_or(Errno::E2BIG)?;
        out.push(s);
        at = at.checked_add(8).ok_or(Errno::EFAULT)?;
    }
}

pub fn execve(t: &mut Task, path: Addr, argv: Addr, envp: Addr) -> SysResult {
    execveat(t, Fd(AT_FDCWD), path, argv, envp, 0)
}

pub fn execveat(t: &mut Task, dirfd: Fd, path: Addr, argv: Addr, envp: Addr, flags: i32) -> SysResult {
    if flags & !(AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) != 0 {
        return Err(Errno::EINVAL);
    }
    let p = read_path(t, path)?;
    let stack_limit = t.tg().rlimit(3).cur;
    let mut budget = arg_limit(stack_limit);
    let mut args = read_strings(t, argv, &mut budget)?;
    let env = read_strings(t, envp, &mut budget)?;
    if args.is_empty() {
        // Linux runs the program with one empty argument.
        args.push(Vec::new());
    }
    let ctx = t.fs_context();
    let c = creds(t);
    let (start, target) = if p.is_empty() {
        if flags & AT_EMPTY_PATH == 0 {
            return Err(Errno::ENOENT);
        }
        let f = t.fds.get(dirfd.0)?;
        (ctx.cwd.clone(), Some(f.path().cloned().ok_or(Errno::EACCES)?))
    } else if p.starts_with(b"/") {
        (ctx.cwd.clone(), None)
    } else {
        (start_dir(t, dirfd)?, None)
    };
    let cx = ExecContext { ns: t.mntns(), root: ctx.root.clone(), start, cwd: ctx.cwd.clone(), creds: &c };
    let follow = flags & AT_SYMLINK_NOFOLLOW == 0;
    // Linux names a program found through a descriptor /dev/fd/N[/path].
    let name = if dirfd.0 == AT_FDCWD || p.starts_with(b"/") {
        p.clone()
    } else if p.is_empty() {
        format!("/dev/fd/{}", dirfd.0).into_bytes()
    } else {
        let mut n = format!("/dev/fd/{}/", dirfd.0).into_bytes();
        n.extend_from_slice(&p);
        n
    };
    let prog = Program { path: p, name, target, follow, argv: args, envp: env, stack_limit };
    let image = exec::prepare(&t.kernel, &cx, prog)?;

    // The point of no return: the other threads end, then the new image
    // replaces the old.
    de_thread(t)?;
    // The old image's robust futexes go with it.
    super::futex::exit_robust_list(t);
    image.mm.set_exe(image.exe.clone(), image.loaded.args);
    // The old image's CPU time stays with the process (not a vfork
    // parent's, whose memory this was).
    if t.vfork_done.is_none() {
        t.tg().add_user_time(t.mm.cpu_time());
    }
    t.mm = image.mm.clone();
    if let Some(v) = t.vfork_done.take() {
        v.complete();
    }
    // The descriptor table is the process's own from now on (a table
    // shared with CLONE_FILES is copied), less its close-on-exec entries.
    t.fds = Arc::new(t.fds.fork());
    let gone = t.fds.close_on_exec();
    super::fs::closed(t, gone);
    {
        let tg = t.tg();
        tg.did_exec.store(true, Ordering::Relaxed);
        tg.dumpable.store(1, Ordering::Relaxed);
        tg.creds.lock().unwrap_or_else(|p| p.into_inner()).exec();
    }
    t.tg().actions.lock().unwrap_or_else(|p| p.into_inner()).reset_for_exec();
    // POSIX timers end; ITIMER_REAL (alarm) carries on.
    t.tg().timers.lock().unwrap_or_else(|p| p.into_inner()).exec();
    t.altstack = crate::kernel::sigframe::NO_ALTSTACK;
    t.clear_child_tid = 0;
    t.robust_list = (0, 0);
    let mut comm = [0u8; 16];
    let n = image.comm.len().min(15);
    comm[..n].copy_from_slice(&image.comm[..n]);
    t.comm = comm;
    *t.shared.comm.lock().unwrap_or_else(|p| p.into_inner()) = comm;
    {
        let mut v = t.tg().view.lock().unwrap_or_else(|p| p.into_inner());
        v.mm = Some(image.mm.clone());
        v.fds = Some(t.fds.clone());
        v.comm = comm;
    }
    let mut arch = ArchState::new_user();
    arch.regs.rip = image.loaded.entry;
    arch.regs.rsp = image.loaded.sp;
    t.arch = arch;
    // rax of the new program is 0, which is what this returns.
    Ok(0)
}

/// Linux's `de_thread`: every other thread of the process ends; a thread
/// other than the leader takes the leader's place and thread id.
fn de_thread(t: &mut Task) -> Result<(), Errno> {
    let tg = t.tg().clone();
    if tg.task_count() > 1 {
        if !tg.begin_exec(t.tid()) {
            // The process is exiting, or another thread executes.
            return Err(Errno::EINTR);
        }
        let r = t.block_killable(|| tg.task_count() == 1);
        tg.end_exec();
        r?;
    }
    if t.tid() != tg.tgid {
        let leader = TaskShared::new(tg.tgid, tg.clone()).map_err(|_| Errno::ENOMEM)?;
        leader.take_interrupt_from(&t.shared);
        tg.replace_task(t.tid(), leader.clone());
        t.shared = leader;
    }
    Ok(())
}
