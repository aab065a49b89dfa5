//! `clone`: new threads and processes. A new task gets its own host thread
//! in the sentry and its own platform context; a new process gets a
//! copy-on-write copy of the address space (or shares it with
//! `CLONE_VM`), a copy of the descriptor table (or shares it with
//! `CLONE_FILES`) and of the root and working directory (or shares them
//! with `CLONE_FS`).

use std::sync::{Arc, Mutex};

use rvisor_syscalls::Errno;

use super::signal::{self, sig};
use super::task::VforkDone;
use super::{Task, TaskShared, ThreadGroup};

/// `clone` flags (x86_64 values).
#[allow(missing_docs)]
pub mod flags {
    pub const CSIGNAL: u64 = 0xff;
    pub const CLONE_VM: u64 = 0x100;
    pub const CLONE_FS: u64 = 0x200;
    pub const CLONE_FILES: u64 = 0x400;
    pub const CLONE_SIGHAND: u64 = 0x800;
    pub const CLONE_PIDFD: u64 = 0x1000;
    pub const CLONE_PTRACE: u64 = 0x2000;
    pub const CLONE_VFORK: u64 = 0x4000;
    pub const CLONE_PARENT: u64 = 0x8000;
    pub const CLONE_THREAD: u64 = 0x10000;
    pub const CLONE_NEWNS: u64 = 0x20000;
    pub const CLONE_SYSVSEM: u64 = 0x40000;
    pub const CLONE_SETTLS: u64 = 0x80000;
    pub const CLONE_PARENT_SETTID: u64 = 0x0010_0000;
    pub const CLONE_CHILD_CLEARTID: u64 = 0x0020_0000;
    pub const CLONE_DETACHED: u64 = 0x0040_0000;
    pub const CLONE_UNTRACED: u64 = 0x0080_0000;
    pub const CLONE_CHILD_SETTID: u64 = 0x0100_0000;
    pub const CLONE_NEWCGROUP: u64 = 0x0200_0000;
    pub const CLONE_NEWUTS: u64 = 0x0400_0000;
    pub const CLONE_NEWIPC: u64 = 0x0800_0000;
    pub const CLONE_NEWUSER: u64 = 0x1000_0000;
    pub const CLONE_NEWPID: u64 = 0x2000_0000;
    pub const CLONE_NEWNET: u64 = 0x4000_0000;
    pub const CLONE_IO: u64 = 0x8000_0000;
    pub const CLONE_NEWTIME: u64 = 0x80;
    /// clone3 only.
    pub const CLONE_CLEAR_SIGHAND: u64 = 0x1_0000_0000;
    /// clone3 only.
    pub const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    /// Every namespace flag.
    pub const NAMESPACES: u64 = CLONE_NEWNS
        | CLONE_NEWCGROUP
        | CLONE_NEWUTS
        | CLONE_NEWIPC
        | CLONE_NEWUSER
        | CLONE_NEWPID
        | CLONE_NEWNET
        | CLONE_NEWTIME;
}

use flags::*;

/// What `clone`/`clone3`/`fork`/`vfork` ask for.
#[derive(Clone, Copy, Debug, Default)]
pub struct CloneArgs {
    /// `CLONE_*` flags (without the exit signal).
    pub flags: u64,
    /// Where `CLONE_PIDFD` stores the pidfd (an `int`).
    pub pidfd: u64,
    /// `CLONE_CHILD_SETTID`/`CLONE_CHILD_CLEARTID` address.
    pub child_tid: u64,
    /// `CLONE_PARENT_SETTID` address.
    pub parent_tid: u64,
    /// Signal to the parent when the child exits.
    pub exit_signal: i32,
    /// The child's stack pointer (0: the parent's).
    pub stack: u64,
    /// `CLONE_SETTLS` value.
    pub tls: u64,
}

/// `CAP_SYS_ADMIN` and `CAP_SYS_RESOURCE` lift `RLIMIT_NPROC`.
const NPROC_EXEMPT: u64 = (1 << 21) | (1 << 24);

/// Checks the flag combinations Linux's `copy_process` refuses.
fn check_flags(t: &Task, a: &CloneArgs) -> Result<(), Errno> {
    let f = a.flags;
    if f & CLONE_THREAD != 0 && f & CLONE_SIGHAND == 0 {
        return Err(Errno::EINVAL);
    }
    if f & CLONE_SIGHAND != 0 && f & CLONE_VM == 0 {
        return Err(Errno::EINVAL);
    }
    if f & CLONE_PIDFD != 0 && f & CLONE_THREAD != 0 {
        return Err(Errno::EINVAL);
    }
    if f & NAMESPACES != 0 {
        // Namespaces inside the sandbox are not offered yet.
        tracing::warn!(flags = f, "clone: namespaces are not supported");
        return Err(Errno::EINVAL);
    }
    if f & CLONE_PARENT != 0 && t.tg().parent().is_none() {
        // A container's init cannot give itself siblings.
        return Err(Errno::EINVAL);
    }
    if !(0..=64).contains(&a.exit_signal) {
        return Err(Errno::EINVAL);
    }
    Ok(())
}

impl Task {
    /// `clone`: starts a new task; returns its thread id.
    pub fn clone_task(&mut self, a: &CloneArgs) -> Result<i32, Errno> {
        check_flags(self, a)?;
        let f = a.flags;
        let kernel = self.kernel.clone();
        // Limits: the sandbox's pids limit, then RLIMIT_NPROC.
        if kernel.pids_limit.is_some_and(|l| kernel.task_count() as u64 >= l) {
            return Err(Errno::EAGAIN);
        }
        let creds = self.tg().creds();
        if creds.ruid != 0 && creds.cap_effective & NPROC_EXEMPT == 0 {
            let limit = self.tg().rlimit(6).cur;
            if kernel.tasks_of_user(creds.ruid) as u64 >= limit {
                return Err(Errno::EAGAIN);
            }
        }
        if f & CLONE_PIDFD != 0 {
            self.mm.check_writable(a.pidfd, 4)?;
        }
        // The child's registers: the parent's, returning 0, with its FP
        // state as it is now.
        self.ctx.fetch_fp(&mut self.arch).map_err(|e| {
            tracing::error!(tid = self.tid(), "clone: FP state: {e}");
            Errno::EAGAIN
        })?;
        let mut arch = self.arch.clone();
        arch.fp.bytes_mut();
        arch.regs.rax = 0;
        if a.stack != 0 {
            arch.regs.rsp = a.stack;
        }
        if f & CLONE_SETTLS != 0 {
            arch.regs.fs_base = a.tls;
        }
        let tid = kernel.alloc_tid().ok_or(Errno::EAGAIN)?;
        let mm = if f & CLONE_VM != 0 {
            self.mm.clone()
        } else {
            Arc::new(self.mm.fork(kernel.platform.as_ref())?)
        };
        let fds = if f & CLONE_FILES != 0 { self.fds.clone() } else { Arc::new(self.fds.fork()) };
        let fs = if f & CLONE_FS != 0 { self.fs.clone() } else { Arc::new(Mutex::new(self.fs_context())) };
        let ctx = kernel.platform.new_context().map_err(|e| {
            tracing::error!("clone: new context: {e}");
            Errno::EAGAIN
        })?;
        let tg = if f & CLONE_THREAD != 0 {
            self.tg().clone()
        } else {
            let child = self.tg().fork_from(tid, a.exit_signal);
            let parent = if f & CLONE_PARENT != 0 {
                self.tg().parent().ok_or(Errno::EINVAL)?
            } else {
                self.tg().clone()
            };
            kernel.add_child(&parent, &child);
            child
        };
        let shared = TaskShared::new(tid, tg.clone()).map_err(|_| Errno::EAGAIN)?;
        let mut child = Task::new(shared.clone(), ctx, arch, mm.clone(), fds.clone(), fs.clone(), &self.comm);
        child.set_sigmask(self.sigmask());
        // A thread on its own stack in the same memory starts without the
        // parent's alternate signal stack.
        child.altstack = if f & (CLONE_VM | CLONE_VFORK) == CLONE_VM {
            crate::kernel::sigframe::NO_ALTSTACK
        } else {
            self.altstack
        };
        if f & CLONE_CHILD_CLEARTID != 0 {
            child.clear_child_tid = a.child_tid;
        }
        if f & CLONE_CHILD_SETTID != 0 {
            // Failures are ignored, as Linux's schedule_tail does.
            let _ = mm.write_obj(a.child_tid, &tid);
        }
        if f & CLONE_THREAD == 0 {
            tg.set_view(super::thread_group::ProcessView {
                mm: Some(mm),
                fds: Some(fds),
                fs: Some(fs),
                comm: self.comm,
            });
            tg.add_task(shared.clone());
        } else if !tg.try_add_task(shared.clone()) {
            // The group is exiting or executing: no new threads.
            return Err(Errno::EINTR);
        }
        if f & CLONE_PARENT_SETTID != 0 {
            let _ = self.mm.write_obj(a.parent_tid, &tid);
        }
        if f & CLONE_PIDFD != 0 {
            let file = super::pidfd::open(&tg, 0);
            let limit = usize::try_from(self.tg().rlimit(7).cur).unwrap_or(usize::MAX);
            match self.fds.install(file, true, 0, limit) {
                Ok(fd) => {
                    let _ = self.mm.write_obj(a.pidfd, &fd);
                }
                Err(e) => {
                    tg.begin_exit(super::ExitStatus::Signal { sig: sig::SIGKILL, core: false });
                    child.exit = Some(super::ExitStatus::Signal { sig: sig::SIGKILL, core: false });
                    spawn(child);
                    return Err(e);
                }
            }
        }
        let vfork = (f & CLONE_VFORK != 0).then(|| VforkDone::new(self.shared.clone()));
        child.vfork_done = vfork.clone();
        if !spawn(child) {
            return Err(Errno::EAGAIN);
        }
        if let Some(v) = vfork {
            // The parent sleeps until the child executes or exits (only
            // a fatal signal ends the wait early).
            let _ = self.block_killable(|| v.is_done());
        }
        Ok(tid)
    }
}

/// Runs `task` on a new host thread. `false` (and the task counted as
/// exited) if the thread could not be made.
fn spawn(task: Task) -> bool {
    let tid = task.tid();
    let tg: Arc<ThreadGroup> = task.tg().clone();
    let cell = Arc::new(Mutex::new(Some(task)));
    let inner = cell.clone();
    let r = std::thread::Builder::new().name(format!("task-{tid}")).spawn(move || {
        let task = inner.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let Some(t) = task {
            t.run();
        }
    });
    if r.is_err() {
        tracing::error!(tid, "no host thread for a new task");
        if let Some(t) = cell.lock().unwrap_or_else(|p| p.into_inner()).take() {
            let _ = t.vfork_done.as_ref().map(|v| v.complete());
            drop(t);
        }
        tg.task_exited(tid, super::ExitStatus::Signal { sig: signal::sig::SIGKILL, core: false });
        return false;
    }
    true
}
