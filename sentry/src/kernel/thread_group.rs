//! Thread groups (processes).

use std::sync::atomic::{AtomicI32, AtomicU32};
use std::sync::{Arc, Mutex, MutexGuard};

use rvisor_syscalls::abi::Rlimit;

use super::creds::Credentials;
use super::signal::{default_action, sig, DefaultAction, SigActions, SIG_DFL, SIG_IGN};
use super::{Container, ExitStatus, Kernel, TaskShared};

/// Number of rlimit resources.
pub const RLIM_NLIMITS: usize = 16;
/// `RLIM_INFINITY`.
pub const RLIM_INFINITY: u64 = u64::MAX;

#[derive(Debug, Default)]
struct TgState {
    tasks: Vec<Arc<TaskShared>>,
    /// Set once the group is exiting (`exit_group`, a fatal signal) or has
    /// exited.
    exit: Option<ExitStatus>,
    live: usize,
}

/// A process: threads sharing a pid, signal dispositions, credentials and
/// limits.
pub struct ThreadGroup {
    /// Process id in the sandbox's pid namespace.
    pub tgid: i32,
    /// The kernel.
    pub kernel: Arc<Kernel>,
    /// The container the process belongs to.
    pub container: Arc<Container>,
    /// Parent process id (0 for a container's init).
    pub ppid: i32,
    /// Process group.
    pub pgid: AtomicI32,
    /// Session.
    pub sid: AtomicI32,
    /// File mode creation mask.
    pub umask: AtomicU32,
    /// `PR_SET_NO_NEW_PRIVS` (per thread in Linux; per process here until
    /// execve makes the difference observable).
    pub no_new_privs: std::sync::atomic::AtomicBool,
    /// Credentials.
    pub creds: Mutex<Credentials>,
    /// Resource limits.
    pub rlimits: Mutex<[Rlimit; RLIM_NLIMITS]>,
    /// Signal dispositions.
    pub actions: Mutex<SigActions>,
    /// What `/proc/PID` shows of the process.
    pub view: Mutex<ProcessView>,
    state: Mutex<TgState>,
}

/// What other processes see of one through `/proc`: its address space,
/// descriptors, root and working directory, name. Set when it starts and
/// at `execve`; dropped when it ends.
#[derive(Clone, Default)]
pub struct ProcessView {
    /// The address space.
    pub mm: Option<Arc<crate::mm::MemoryManager>>,
    /// The descriptor table.
    pub fds: Option<Arc<crate::vfs::FdTable>>,
    /// Root and working directory.
    pub fs: Option<Arc<Mutex<crate::vfs::FsContext>>>,
    /// `comm`, NUL-padded.
    pub comm: [u8; 16],
}

impl std::fmt::Debug for ThreadGroup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ThreadGroup").field("tgid", &self.tgid).finish_non_exhaustive()
    }
}

impl ThreadGroup {
    /// A new process with no threads yet.
    pub fn new(
        kernel: &Arc<Kernel>,
        container: Arc<Container>,
        tgid: i32,
        ppid: i32,
        creds: Credentials,
        rlimits: [Rlimit; RLIM_NLIMITS],
    ) -> Arc<ThreadGroup> {
        let tg = Arc::new(ThreadGroup {
            tgid,
            kernel: kernel.clone(),
            container,
            ppid,
            pgid: AtomicI32::new(tgid),
            sid: AtomicI32::new(tgid),
            umask: AtomicU32::new(0o022),
            no_new_privs: std::sync::atomic::AtomicBool::new(false),
            creds: Mutex::new(creds),
            rlimits: Mutex::new(rlimits),
            actions: Mutex::new(SigActions::default()),
            view: Mutex::new(ProcessView::default()),
            state: Mutex::new(TgState::default()),
        });
        kernel.register_group(&tg);
        tg
    }

    fn lock(&self) -> MutexGuard<'_, TgState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The credentials (a copy).
    pub fn creds(&self) -> Credentials {
        self.creds.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The limit of `resource`.
    pub fn rlimit(&self, resource: usize) -> Rlimit {
        self.rlimits.lock().unwrap_or_else(|p| p.into_inner()).get(resource).copied().unwrap_or_default()
    }

    /// What `/proc` shows of the process (a copy).
    pub fn view(&self) -> ProcessView {
        self.view.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Replaces what `/proc` shows of the process.
    pub fn set_view(&self, v: ProcessView) {
        *self.view.lock().unwrap_or_else(|p| p.into_inner()) = v;
    }

    /// Live threads.
    pub fn task_count(&self) -> usize {
        self.lock().live
    }

    /// Whether the process has ended.
    pub fn is_dead(&self) -> bool {
        self.lock().live == 0
    }

    /// Adds a thread.
    pub fn add_task(&self, t: Arc<TaskShared>) {
        let mut st = self.lock();
        st.live += 1;
        st.tasks.push(t);
    }

    /// Whether the group is exiting: its threads must stop.
    pub fn exiting(&self) -> Option<ExitStatus> {
        self.lock().exit
    }

    /// Starts the exit of the whole group with `status` (the first status
    /// wins) and makes every thread stop.
    pub fn begin_exit(&self, status: ExitStatus) {
        let tasks = {
            let mut st = self.lock();
            if st.exit.is_none() {
                st.exit = Some(status);
            }
            st.tasks.clone()
        };
        for t in tasks {
            t.kick();
        }
    }

    /// A thread ended with `own` (its `exit` status). When it was the
    /// last, the process is gone: its status is reported.
    pub fn task_exited(&self, tid: i32, own: ExitStatus) {
        let status = {
            let mut st = self.lock();
            st.tasks.retain(|t| t.tid != tid);
            st.live = st.live.saturating_sub(1);
            if st.live > 0 {
                return;
            }
            // Nothing of it stays reachable through /proc.
            *self.view.lock().unwrap_or_else(|p| p.into_inner()) = ProcessView::default();
            *st.exit.get_or_insert(own)
        };
        tracing::debug!(tgid = self.tgid, ?status, "process exited");
        if self.ppid == 0 {
            self.container.set_exited(status);
        }
    }

    /// Sends `signo` to the process (from the host or another process).
    /// Until signal delivery lands, a handler acts as the default action.
    pub fn send_signal(&self, signo: i32) {
        let act = self.actions.lock().unwrap_or_else(|p| p.into_inner()).get(signo);
        if signo != sig::SIGKILL && signo != sig::SIGSTOP {
            if act.handler == SIG_IGN {
                return;
            }
            if act.handler != SIG_DFL {
                tracing::warn!(signo, "signal handlers are not supported yet: default action taken");
            }
        }
        match default_action(signo) {
            DefaultAction::Terminate => self.begin_exit(ExitStatus::Signal { sig: signo, core: false }),
            DefaultAction::Core => self.begin_exit(ExitStatus::Signal { sig: signo, core: true }),
            // Job control comes with the signals issue.
            DefaultAction::Stop | DefaultAction::Continue | DefaultAction::Ignore => {}
        }
    }

    /// Thread ids of the process.
    pub fn tids(&self) -> Vec<i32> {
        self.lock().tasks.iter().map(|t| t.tid).collect()
    }
}
