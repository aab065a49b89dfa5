//! Thread groups (processes).

use std::sync::atomic::{AtomicBool, AtomicI32, AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use rvisor_syscalls::abi::Rlimit;

use super::creds::Credentials;

use super::signal::{self, default_action, sig, DefaultAction, SigActions, Siginfo, SIG_DFL, SIG_IGN};
use super::{Container, ExitStatus, Kernel, TaskShared};

/// The stop signals.
const STOP_SET: u64 = (1 << (sig::SIGSTOP - 1))
    | (1 << (sig::SIGTSTP - 1))
    | (1 << (sig::SIGTTIN - 1))
    | (1 << (sig::SIGTTOU - 1));

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
    /// The thread running `execve` while it ends the others.
    exec_by: Option<i32>,
}

/// A process's place in the process tree. Changed under the kernel's tree
/// lock ([`Kernel::tree`]), parent before child.
#[derive(Debug, Default)]
pub struct Family {
    /// The parent (none: a container's init, or an orphan of a dead init).
    pub parent: Weak<ThreadGroup>,
    /// Children, running or zombies, until reaped.
    pub children: Vec<Arc<ThreadGroup>>,
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
    /// Signal sent to the parent at exit (`SIGCHLD`, or what `clone`
    /// asked; 0: none).
    pub exit_signal: i32,
    /// Process group.
    pub pgid: AtomicI32,
    /// Session.
    pub sid: AtomicI32,
    /// Read and write counts (`/proc/PID/io`).
    pub io: IoCounters,
    /// The controlling terminal (inherited by `fork`, dropped by
    /// `setsid`).
    pub ctty: Mutex<Option<Arc<crate::fs::tty::Pty>>>,
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
    /// `PR_SET_CHILD_SUBREAPER`.
    pub subreaper: AtomicBool,
    /// `PR_SET_PDEATHSIG` (per process here; per thread on Linux).
    pub pdeathsig: AtomicI32,
    /// `PR_SET_DUMPABLE`.
    pub dumpable: AtomicU8,
    /// Nice value (`setpriority`; per process here, per thread on Linux).
    pub nice: AtomicI32,
    /// `/proc/PID/oom_score_adj` (inherited by `fork`).
    pub oom_score_adj: AtomicI32,
    /// When the process started, since the kernel booted.
    pub started: Duration,
    /// Whether the process called `execve` since it was forked
    /// (`setpgid` of a child that did: `EACCES`).
    pub did_exec: AtomicBool,
    /// Parent and children.
    pub family: Mutex<Family>,
    /// Threads of this process waiting for a child to change state.
    pub child_events: super::waitq::WaitQueue,
    /// Ready when the process has exited (pidfds poll it).
    pub exited: super::waitq::WaitQueue,
    /// `ITIMER_REAL` and POSIX timers.
    pub timers: Mutex<super::timers::ProcessTimers>,
    /// Job control: what the parent has not waited for yet.
    job: Mutex<JobState>,
    /// Stopped (job control); checked at every return to the
    /// application, so an atomic, changed under `job`'s lock.
    stopped: AtomicBool,
    /// CPU time of address spaces and threads that are gone, and of
    /// children waited for.
    cpu: Mutex<CpuTimes>,
    /// Signals sent to the process.
    pending: signal::Pending,
    state: Mutex<TgState>,
}

/// What a process read and wrote through the read and write families
/// (`/proc/PID/io`'s `rchar`, `wchar`, `syscr`, `syscw`).
#[derive(Debug, Default)]
pub struct IoCounters {
    /// Bytes read.
    pub rchar: AtomicU64,
    /// Bytes written.
    pub wchar: AtomicU64,
    /// Read calls.
    pub syscr: AtomicU64,
    /// Write calls.
    pub syscw: AtomicU64,
}

impl IoCounters {
    /// A read call ended with `r`.
    pub fn count_read(&self, r: &Result<u64, rvisor_syscalls::Errno>) {
        self.syscr.fetch_add(1, Ordering::Relaxed);
        if let Ok(n) = r {
            self.rchar.fetch_add(*n, Ordering::Relaxed);
        }
    }

    /// A write call ended with `r`.
    pub fn count_write(&self, r: &Result<u64, rvisor_syscalls::Errno>) {
        self.syscw.fetch_add(1, Ordering::Relaxed);
        if let Ok(n) = r {
            self.wchar.fetch_add(*n, Ordering::Relaxed);
        }
    }
}

/// CPU time a process has used (user: the application's own, in its
/// address spaces; system: its sentry threads serving it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CpuTimes {
    /// User time.
    pub user: Duration,
    /// System time.
    pub sys: Duration,
    /// User time of children waited for (and theirs).
    pub child_user: Duration,
    /// System time of children waited for (and theirs).
    pub child_sys: Duration,
}

/// The calling host thread's CPU time.
pub fn own_thread_time() -> Duration {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(ts.tv_sec.cast_unsigned(), u32::try_from(ts.tv_nsec).unwrap_or(0))
}

/// A job-control state change the parent may wait for (`WUNTRACED`,
/// `WCONTINUED`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobReport {
    /// Stopped by this signal.
    Stopped(i32),
    /// Continued by `SIGCONT`.
    Continued,
}

#[derive(Debug, Default)]
struct JobState {
    /// The last change, until the parent waits for it.
    report: Option<JobReport>,
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
    /// A container's init: a new process with no threads yet, no parent,
    /// in a session and process group of its own.
    pub fn new(
        kernel: &Arc<Kernel>,
        container: Arc<Container>,
        tgid: i32,
        creds: Credentials,
        rlimits: [Rlimit; RLIM_NLIMITS],
    ) -> Arc<ThreadGroup> {
        let tg = Arc::new(Self::blank(kernel, container, tgid, 0, creds, rlimits));
        kernel.register_group(&tg);
        tg
    }

    fn blank(
        kernel: &Arc<Kernel>,
        container: Arc<Container>,
        tgid: i32,
        exit_signal: i32,
        creds: Credentials,
        rlimits: [Rlimit; RLIM_NLIMITS],
    ) -> ThreadGroup {
        ThreadGroup {
            tgid,
            kernel: kernel.clone(),
            container,
            exit_signal,
            pgid: AtomicI32::new(tgid),
            sid: AtomicI32::new(tgid),
            io: IoCounters::default(),
            ctty: Mutex::new(None),
            umask: AtomicU32::new(0o022),
            no_new_privs: AtomicBool::new(false),
            creds: Mutex::new(creds),
            rlimits: Mutex::new(rlimits),
            actions: Mutex::new(SigActions::default()),
            view: Mutex::new(ProcessView::default()),
            subreaper: AtomicBool::new(false),
            pdeathsig: AtomicI32::new(0),
            dumpable: AtomicU8::new(1),
            nice: AtomicI32::new(0),
            oom_score_adj: AtomicI32::new(0),
            started: kernel.boot.elapsed(),
            did_exec: AtomicBool::new(false),
            family: Mutex::new(Family::default()),
            child_events: super::waitq::WaitQueue::default(),
            exited: super::waitq::WaitQueue::default(),
            timers: Mutex::default(),
            job: Mutex::default(),
            stopped: AtomicBool::new(false),
            cpu: Mutex::default(),
            pending: signal::Pending::default(),
            state: Mutex::new(TgState::default()),
        }
    }

    /// `fork`: a child of `parent` (or, with `CLONE_PARENT`, of its
    /// parent) with a copy of what a process inherits: credentials,
    /// limits, dispositions, umask, process group and session. The caller
    /// adds it to the tree ([`Kernel::add_child`]).
    pub fn fork_from(self: &Arc<Self>, tgid: i32, exit_signal: i32) -> Arc<ThreadGroup> {
        let tg = Self::blank(
            &self.kernel,
            self.container.clone(),
            tgid,
            exit_signal,
            self.creds(),
            *self.rlimits.lock().unwrap_or_else(|p| p.into_inner()),
        );
        tg.pgid.store(self.pgid.load(Ordering::Relaxed), Ordering::Relaxed);
        tg.sid.store(self.sid.load(Ordering::Relaxed), Ordering::Relaxed);
        *tg.ctty.lock().unwrap_or_else(|p| p.into_inner()) = crate::fs::tty::ctty(self);
        tg.umask.store(self.umask.load(Ordering::Relaxed), Ordering::Relaxed);
        tg.no_new_privs.store(self.no_new_privs.load(Ordering::Relaxed), Ordering::Relaxed);
        tg.dumpable.store(self.dumpable.load(Ordering::Relaxed), Ordering::Relaxed);
        tg.nice.store(self.nice.load(Ordering::Relaxed), Ordering::Relaxed);
        tg.oom_score_adj.store(self.oom_score_adj.load(Ordering::Relaxed), Ordering::Relaxed);
        *tg.actions.lock().unwrap_or_else(|p| p.into_inner()) =
            self.actions.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let tg = Arc::new(tg);
        self.kernel.register_group(&tg);
        tg
    }

    /// The parent, while it lives.
    pub fn parent(&self) -> Option<Arc<ThreadGroup>> {
        self.family.lock().unwrap_or_else(|p| p.into_inner()).parent.upgrade()
    }

    /// The parent's process id (0: none).
    pub fn ppid(&self) -> i32 {
        self.parent().map_or(0, |p| p.tgid)
    }

    /// The children (a copy).
    pub fn children(&self) -> Vec<Arc<ThreadGroup>> {
        self.family.lock().unwrap_or_else(|p| p.into_inner()).children.clone()
    }

    /// The exit status once every thread is gone (a zombie until reaped).
    pub fn zombie_status(&self) -> Option<ExitStatus> {
        let st = self.lock();
        if st.live == 0 {
            st.exit
        } else {
            None
        }
    }

    /// From a host thread: waits until the process has ended (its exit
    /// status), at most `timeout`.
    pub fn wait_exit(&self, timeout: Duration) -> Option<ExitStatus> {
        struct Wake(std::sync::Mutex<bool>, std::sync::Condvar);
        impl super::waitq::Hook for Wake {
            fn notify(&self, _ev: u32) {
                *self.0.lock().unwrap_or_else(|p| p.into_inner()) = true;
                self.1.notify_all();
            }
        }
        let end = std::time::Instant::now() + timeout;
        let wake = Arc::new(Wake(std::sync::Mutex::new(false), std::sync::Condvar::new()));
        let hook: Arc<dyn super::waitq::Hook> = wake.clone();
        self.exited.add_hook(hook.clone());
        let status = loop {
            if let Some(s) = self.zombie_status() {
                break Some(s);
            }
            let now = std::time::Instant::now();
            if now >= end {
                break None;
            }
            let g = wake.0.lock().unwrap_or_else(|p| p.into_inner());
            let (mut g, _) = wake
                .1
                .wait_timeout_while(g, (end - now).min(Duration::from_millis(100)), |w| !*w)
                .unwrap_or_else(|p| p.into_inner());
            *g = false;
        };
        self.exited.remove_hook(&hook);
        status
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

    /// Whether the process still holds its pid: alive, or a zombie its
    /// parent has not reaped (on Linux a zombie still counts as a member
    /// of its process group, which others may then join).
    pub fn unreaped(self: &Arc<Self>) -> bool {
        self.task_count() > 0
            || self.parent().is_some_and(|p| p.children().iter().any(|c| Arc::ptr_eq(c, self)))
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

    /// Adds a thread (`clone(CLONE_THREAD)`), unless the group is exiting
    /// or executing a new program.
    pub fn try_add_task(&self, t: Arc<TaskShared>) -> bool {
        let mut st = self.lock();
        if st.exit.is_some() || st.exec_by.is_some() {
            return false;
        }
        st.live += 1;
        st.tasks.push(t);
        true
    }

    /// Whether the group is exiting: its threads must stop.
    pub fn exiting(&self) -> Option<ExitStatus> {
        self.lock().exit
    }

    /// Whether thread `tid` must stop: the group exits, or another thread
    /// runs `execve`.
    pub fn must_stop(&self, tid: i32) -> bool {
        let st = self.lock();
        st.exit.is_some() || st.exec_by.is_some_and(|e| e != tid)
    }

    /// `execve` by thread `tid`: every other thread must end. `false` if
    /// the group is exiting or another thread got there first.
    pub fn begin_exec(&self, tid: i32) -> bool {
        let tasks = {
            let mut st = self.lock();
            if st.exit.is_some() || st.exec_by.is_some_and(|e| e != tid) {
                return false;
            }
            st.exec_by = Some(tid);
            st.tasks.clone()
        };
        for t in tasks.iter().filter(|t| t.tid != tid) {
            t.kick();
        }
        true
    }

    /// The `execve` is over (the other threads are gone).
    pub fn end_exec(&self) {
        self.lock().exec_by = None;
    }

    /// `execve` by a thread other than the leader: it takes the leader's
    /// place (and thread id).
    pub fn replace_task(&self, old: i32, new: Arc<TaskShared>) {
        let mut st = self.lock();
        st.tasks.retain(|t| t.tid != old);
        st.tasks.push(new);
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
    /// last, the process is gone: a zombie for its parent to reap.
    pub fn task_exited(self: &Arc<Self>, tid: i32, own: ExitStatus) {
        {
            let mut st = self.lock();
            st.tasks.retain(|t| t.tid != tid);
            if st.live > 1 {
                st.live -= 1;
                if st.live == 1 {
                    // An execve waits for the other threads to end.
                    if let Some(e) = st.exec_by {
                        if let Some(t) = st.tasks.iter().find(|t| t.tid == e) {
                            t.kick();
                        }
                    }
                }
                return;
            }
        }
        // The last thread (no other can be made: they come from live
        // threads of the group). What the process holds is released
        // before it counts as gone, so a parent that reaps it sees its
        // descriptors closed; and without the state lock held, as its last
        // file may be a terminal's master whose hang-up looks at this
        // process.
        let view = std::mem::take(&mut *self.view.lock().unwrap_or_else(|p| p.into_inner()));
        // Its last address space's time is final now.
        if let Some(mm) = &view.mm {
            self.cpu.lock().unwrap_or_else(|p| p.into_inner()).user += mm.cpu_time();
        }
        // Nothing of it stays reachable through /proc.
        drop(view);
        // Not stopped any more (a stopped process can be killed).
        self.stopped.store(false, Ordering::Release);
        // No timer fires for it any more.
        self.timers.lock().unwrap_or_else(|p| p.into_inner()).clear();
        // Its record locks go.
        crate::vfs::lock::release(crate::vfs::lock::LockOwner::Process(self.tgid), None);
        let status = {
            let mut st = self.lock();
            st.live = 0;
            *st.exit.get_or_insert(own)
        };
        tracing::debug!(tgid = self.tgid, ?status, "process exited");
        // A session leader's terminal hangs up its foreground group.
        crate::fs::tty::leader_exited(self);
        self.kernel.process_exited(self, status);
        self.exited.notify();
    }

    /// Signals pending for the whole process.
    pub fn pending_bits(&self) -> u64 {
        self.pending.bits()
    }

    /// Whether a signal sent now would be dropped: its disposition
    /// ignores it and no thread blocks it (a blocked signal stays pending:
    /// the disposition may change before it is unblocked).
    fn ignores(&self, signo: i32, tasks: &[Arc<TaskShared>]) -> bool {
        let act = self.actions.lock().unwrap_or_else(|p| p.into_inner()).get(signo);
        let ignored = act.handler == SIG_IGN
            || (act.handler == SIG_DFL && default_action(signo) == DefaultAction::Ignore);
        ignored && !tasks.iter().any(|t| t.blocked_or_waited() & signal::bit(signo) != 0)
    }

    /// System time of a thread that ended.
    pub fn add_sys_time(&self, d: Duration) {
        self.cpu.lock().unwrap_or_else(|p| p.into_inner()).sys += d;
    }

    /// User time of an address space the process leaves (`execve`, exit).
    pub fn add_user_time(&self, d: Duration) {
        self.cpu.lock().unwrap_or_else(|p| p.into_inner()).user += d;
    }

    /// The process's CPU times now: what is gone plus its current address
    /// space and live threads.
    pub fn cpu_times(&self) -> CpuTimes {
        let mut c = *self.cpu.lock().unwrap_or_else(|p| p.into_inner());
        if self.zombie_status().is_none() {
            if let Some(mm) = self.view.lock().unwrap_or_else(|p| p.into_inner()).mm.clone() {
                c.user += mm.cpu_time();
            }
            for t in self.tasks() {
                c.sys += t.sentry_cpu_time();
            }
        }
        c
    }

    /// A child waited for: its times (and its children's) count as the
    /// children's times of this process.
    pub fn add_child_times(&self, child: &ThreadGroup) {
        let c = child.cpu_times();
        let mut me = self.cpu.lock().unwrap_or_else(|p| p.into_inner());
        me.child_user += c.user + c.child_user;
        me.child_sys += c.sys + c.child_sys;
    }

    /// Whether the process is stopped (job control).
    pub fn job_stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// The job-control change the parent has not waited for; taken unless
    /// `keep` (`WNOWAIT`).
    pub fn take_job_report(&self, want: impl Fn(JobReport) -> bool, keep: bool) -> Option<JobReport> {
        let mut j = self.job.lock().unwrap_or_else(|p| p.into_inner());
        let r = j.report.filter(|r| want(*r))?;
        if !keep {
            j.report = None;
        }
        Some(r)
    }

    /// A stop signal's default action: the whole process stops until
    /// `SIGCONT` (or `SIGKILL`); the parent is told.
    pub fn group_stop(self: &Arc<Self>, signo: i32) {
        {
            let mut j = self.job.lock().unwrap_or_else(|p| p.into_inner());
            if self.stopped.swap(true, Ordering::AcqRel) {
                return;
            }
            j.report = Some(JobReport::Stopped(signo));
        }
        for t in self.tasks() {
            t.kick();
        }
        self.notify_parent_job(signal::code::CLD_STOPPED, signo);
    }

    /// `SIGCONT`: a stopped process runs again; the parent is told.
    fn group_continue(&self) {
        {
            let mut j = self.job.lock().unwrap_or_else(|p| p.into_inner());
            if !self.stopped.swap(false, Ordering::AcqRel) {
                return;
            }
            j.report = Some(JobReport::Continued);
        }
        for t in self.tasks() {
            t.kick();
        }
        self.notify_parent_job(signal::code::CLD_CONTINUED, sig::SIGCONT);
    }

    /// `SIGCHLD` (`CLD_STOPPED`/`CLD_CONTINUED`) to the parent, unless it
    /// ignores `SIGCHLD` or asked for `SA_NOCLDSTOP`; its waits wake.
    fn notify_parent_job(&self, code: i32, status: i32) {
        let parent = {
            let _tree = self.kernel.tree.lock().unwrap_or_else(|e| e.into_inner());
            self.family.lock().unwrap_or_else(|e| e.into_inner()).parent.upgrade()
        };
        let Some(p) = parent else { return };
        let act = p.actions.lock().unwrap_or_else(|e| e.into_inner()).get(sig::SIGCHLD);
        if act.handler != signal::SIG_IGN && act.flags & signal::SA_NOCLDSTOP == 0 {
            let uid = self.creds().ruid;
            p.send_signal(Siginfo::child(sig::SIGCHLD, code, self.tgid, uid, status));
        }
        p.child_events.notify();
    }

    /// Sends a signal to the process (`kill`, a child's exit, the host):
    /// `SIGKILL` ends it at once; anything else is queued for the process
    /// and one thread that does not block it is made to notice. `SIGCONT`
    /// continues a stopped process even if it is blocked or ignored.
    pub fn send_signal(&self, info: Siginfo) {
        let signo = info.signo;
        if !signal::valid(signo) {
            return;
        }
        if signo == sig::SIGKILL {
            self.begin_exit(ExitStatus::Signal { sig: sig::SIGKILL, core: false });
            return;
        }
        if signo == sig::SIGCONT {
            self.discard_signals(STOP_SET);
            self.group_continue();
        } else if signal::bit(signo) & STOP_SET != 0 {
            self.discard_signals(signal::bit(sig::SIGCONT));
        }
        let tasks = self.tasks();
        if self.ignores(signo, &tasks) {
            return;
        }
        // (Stops and SIGCONT already dropped each other above.)
        if !self.pending.push(info) {
            return;
        }
        crate::fs::signalfd::signal_queued();
        // The main thread first, then any other that does not block it.
        if let Some(t) = tasks.iter().find(|t| t.blocked() & signal::bit(signo) == 0) {
            t.kick();
        }
    }

    /// Drops pending instances of the signals in `set`, for the process
    /// and each of its threads.
    pub fn discard_signals(&self, set: u64) {
        self.pending.discard(set);
        for t in self.tasks() {
            t.discard_signals(set);
        }
    }

    /// The process's pending signals.
    pub fn pending(&self) -> &signal::Pending {
        &self.pending
    }

    /// Takes the process's next pending signal of `allowed`.
    pub fn take_signal(&self, allowed: u64) -> Option<Siginfo> {
        self.pending.take(allowed)
    }

    /// Thread ids of the process.
    pub fn tids(&self) -> Vec<i32> {
        self.lock().tasks.iter().map(|t| t.tid).collect()
    }

    /// The threads of the process.
    pub fn tasks(&self) -> Vec<Arc<TaskShared>> {
        self.lock().tasks.clone()
    }
}
