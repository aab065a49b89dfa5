//! The kernel object: what one sandbox shares (platform, memory file, pid
//! namespace, UTS names, containers) and the processes and threads in it.

pub mod clone;
pub mod creds;
pub mod exec;
pub mod futex;
pub mod pidfd;
pub mod sigframe;
pub mod signal;
pub mod task;
pub mod thread_group;
pub mod timers;
pub mod vdso;
pub mod waitq;

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::time::Instant;

use rvisor_platform::Platform;

pub use self::task::{Task, TaskShared};
pub use self::thread_group::ThreadGroup;
use crate::loader::AuxvFacts;
use crate::mm::MemoryFile;
use crate::strace::Strace;

/// How a process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    /// `exit(code)`.
    Code(u8),
    /// Killed by a signal.
    Signal {
        /// Signal number.
        sig: i32,
        /// Whether Linux would have dumped core.
        core: bool,
    },
}

impl ExitStatus {
    /// The `wait(2)` status word.
    pub fn wait_status(self) -> i32 {
        match self {
            ExitStatus::Code(c) => i32::from(c) << 8,
            ExitStatus::Signal { sig, core } => sig | if core { 0x80 } else { 0 },
        }
    }

    /// The status a shell would report (`128 + N` for signal N).
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(c) => i32::from(c),
            ExitStatus::Signal { sig, .. } => 128 + sig,
        }
    }
}

thread_local! {
    static CURRENT: std::cell::Cell<i32> = const { std::cell::Cell::new(0) };
    static CURRENT_TASK: std::cell::RefCell<Weak<TaskShared>> = const { std::cell::RefCell::new(Weak::new()) };
}

/// Records the task this sentry thread runs (what a signalfd's
/// readiness is about: the caller's own pending signals).
pub fn set_current_task(t: &Arc<TaskShared>) {
    CURRENT_TASK.with(|c| *c.borrow_mut() = Arc::downgrade(t));
}

/// The task the calling sentry thread runs, if any.
pub fn current_task() -> Option<Arc<TaskShared>> {
    CURRENT_TASK.try_with(|c| c.borrow().upgrade()).ok().flatten()
}

/// Records that this sentry thread serves a task of process `tgid`
/// (`/proc/self` is resolved with it).
pub fn set_current(tgid: i32) {
    CURRENT.with(|c| c.set(tgid));
}

/// The process the calling sentry thread serves (0: none).
pub fn current() -> i32 {
    CURRENT.with(std::cell::Cell::get)
}

/// The sandbox's UTS names.
#[derive(Clone, Debug)]
pub struct Uts {
    /// `nodename`.
    pub hostname: String,
    /// `domainname`.
    pub domainname: String,
}

/// The release string `uname` reports.
pub const KERNEL_RELEASE: &str = "6.1.0-rvisor";
/// The version string `uname` reports.
pub const KERNEL_VERSION: &str = "#1 SMP PREEMPT_DYNAMIC rvisor";

/// A container in the sandbox: its root process and, later, its mount
/// namespace and gofer connection.
#[derive(Debug)]
pub struct Container {
    /// The OCI id.
    pub id: String,
    /// Its mount namespace.
    pub mntns: Arc<crate::vfs::MountNamespace>,
    /// Its init process (orphans are reparented to it).
    pub init: Mutex<Weak<ThreadGroup>>,
    exit: Mutex<Option<ExitStatus>>,
    exited: Condvar,
}

impl Container {
    /// A container with nothing running yet.
    pub fn new(id: &str, mntns: Arc<crate::vfs::MountNamespace>) -> Arc<Container> {
        Arc::new(Container {
            id: id.to_string(),
            mntns,
            init: Mutex::new(Weak::new()),
            exit: Mutex::new(None),
            exited: Condvar::new(),
        })
    }

    /// Records that the container's init process ended.
    pub fn set_exited(&self, status: ExitStatus) {
        let mut e = self.exit.lock().unwrap_or_else(|p| p.into_inner());
        if e.is_none() {
            *e = Some(status);
        }
        self.exited.notify_all();
    }

    /// The init's status, waiting at most `timeout` for it to end.
    pub fn wait_timeout(&self, timeout: std::time::Duration) -> Option<ExitStatus> {
        let e = self.exit.lock().unwrap_or_else(|p| p.into_inner());
        let (e, _) =
            self.exited.wait_timeout_while(e, timeout, |e| e.is_none()).unwrap_or_else(|p| p.into_inner());
        *e
    }

    /// Waits until the container's init process ends.
    pub fn wait(&self) -> ExitStatus {
        let mut e = self.exit.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            if let Some(s) = *e {
                return s;
            }
            e = self.exited.wait(e).unwrap_or_else(|p| p.into_inner());
        }
    }
}

/// CPUs the sentry may use (cached: the first call may read cgroup files,
/// see [`crate::prepare`]).
pub fn host_cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map(std::num::NonZero::get).unwrap_or(1))
}

/// The host's memory in bytes, read once before the sentry confines
/// itself (see [`crate::prepare`]; 0 if unknown).
pub fn host_memory() -> u64 {
    static HOST: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *HOST.get_or_init(|| {
        let i = rustix::system::sysinfo();
        i.totalram.saturating_mul(u64::from(i.mem_unit.max(1)))
    })
}

/// Options the kernel is booted with.
#[derive(Clone, Debug, Default)]
pub struct KernelOptions {
    /// Print every system call.
    pub strace: bool,
    /// Where `--strace` lines go when not to standard error.
    pub strace_to_log: bool,
    /// Hostname.
    pub hostname: String,
    /// Most tasks the sandbox may have (the OCI `pids` limit).
    pub pids_limit: Option<u64>,
    /// Most memory the application may hold (the OCI `memory` limit):
    /// past it the process holding most is killed, as Linux's OOM killer
    /// does in a memory cgroup.
    pub memory_limit: Option<u64>,
}

/// The sandbox kernel.
pub struct Kernel {
    /// The platform running application threads.
    pub platform: Arc<dyn Platform>,
    /// The memory file.
    pub mf: Arc<MemoryFile>,
    /// UTS names.
    pub uts: RwLock<Uts>,
    /// Facts for the auxv.
    pub facts: AuxvFacts,
    /// System call tracing, when enabled.
    pub strace: Option<Strace>,
    /// When the kernel booted (uptime, `CLOCK_BOOTTIME` offset).
    pub boot: Instant,
    /// CPUs the sandbox has (the sentry's allowed CPUs when it booted,
    /// before task threads were bound to theirs).
    pub cpus: usize,
    /// Futex wait queues.
    pub futexes: futex::FutexTable,
    /// Serialises changes to the process tree (parents, children,
    /// reaping, reparenting). Taken before any process's `family`.
    pub tree: Mutex<()>,
    /// Most tasks the sandbox may have.
    pub pids_limit: Option<u64>,
    /// See [`KernelOptions::memory_limit`].
    pub memory_limit: Option<u64>,
    /// Interval timers' expiries.
    pub timers: Arc<timers::TimerQueue>,
    /// The sandbox's pseudo-terminals.
    pub devpts: Arc<crate::fs::tty::Devpts>,
    /// The sandbox's console (`/dev/console`): the pair boot bridges to
    /// the host's terminal, when there is one.
    pub console: Mutex<Option<Arc<crate::fs::tty::Pty>>>,
    mf_size: u64,
    containers: Mutex<Vec<Arc<Container>>>,
    pids: Mutex<PidTable>,
    unsupported: Mutex<BTreeSet<u64>>,
}

impl std::fmt::Debug for Kernel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kernel").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct PidTable {
    next: i32,
    tasks: HashMap<i32, Weak<TaskShared>>,
    groups: HashMap<i32, Weak<ThreadGroup>>,
}

/// Largest pid (`/proc/sys/kernel/pid_max` default on 64-bit).
pub const PID_MAX: i32 = 4_194_304;

impl Kernel {
    /// A kernel over `platform`, with a memory file of `mem_size` bytes.
    pub fn new(
        platform: Arc<dyn Platform>,
        mem_size: u64,
        opts: &KernelOptions,
    ) -> std::io::Result<Arc<Kernel>> {
        let mf = Arc::new(MemoryFile::new(mem_size)?);
        vdso::start();
        Ok(Arc::new(Kernel {
            platform,
            mf,
            uts: RwLock::new(Uts { hostname: opts.hostname.clone(), domainname: "(none)".into() }),
            facts: AuxvFacts::detect(),
            strace: opts.strace.then(|| Strace::new(opts.strace_to_log)),
            boot: Instant::now(),
            cpus: host_cpus(),
            futexes: futex::FutexTable::default(),
            tree: Mutex::new(()),
            pids_limit: opts.pids_limit,
            memory_limit: opts.memory_limit,
            timers: Arc::default(),
            devpts: Arc::default(),
            console: Mutex::new(None),
            mf_size: mem_size,
            containers: Mutex::new(Vec::new()),
            pids: Mutex::new(PidTable { next: 1, ..PidTable::default() }),
            unsupported: Mutex::new(BTreeSet::new()),
        }))
    }

    /// Size of the memory file: the memory the sandbox may use.
    pub fn mf_size(&self) -> u64 {
        self.mf_size
    }

    /// The memory the sandbox reports (`/proc/meminfo`, `sysinfo`): its
    /// memory file's size, or the host's memory when that is less.
    pub fn mem_total(&self) -> u64 {
        let host = host_memory();
        let total = if host == 0 { self.mf_size } else { self.mf_size.min(host) };
        self.memory_limit.map_or(total, |l| total.min(l))
    }

    /// Enforces the memory limit, if any, from a thread of its own: every
    /// few milliseconds the memory file's use is compared with the limit,
    /// and past it the process holding most memory gets `SIGKILL` (the
    /// host cgroup, with headroom, stops a burst between two checks).
    pub fn start_oom_watch(self: &Arc<Self>) {
        let Some(limit) = self.memory_limit else { return };
        let k = Arc::downgrade(self);
        let _ = std::thread::Builder::new().name("oom-watch".into()).spawn(move || loop {
            std::thread::sleep(std::time::Duration::from_millis(10));
            let Some(k) = k.upgrade() else { return };
            if k.mf.committed() <= limit {
                continue;
            }
            let victim = k
                .thread_groups()
                .into_iter()
                .filter(|g| g.zombie_status().is_none() && g.exiting().is_none())
                .max_by_key(|g| {
                    g.view().mm.map_or(0, |m| m.usage().iter().map(|(_, u)| u.anon + u.shmem).sum::<u64>())
                });
            if let Some(v) = victim {
                tracing::info!(tgid = v.tgid, limit, "memory limit reached: killing the largest process");
                v.send_signal(signal::Siginfo::kernel(signal::sig::SIGKILL));
                // Its memory goes back before the next check.
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        });
    }

    /// The last thread id handed out (`/proc/loadavg`).
    pub fn last_pid(&self) -> i32 {
        let p = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        if p.next <= 2 {
            1
        } else {
            p.next - 1
        }
    }

    /// Adds a container to the sandbox.
    pub fn add_container(&self, c: Arc<Container>) {
        self.containers.lock().unwrap_or_else(|e| e.into_inner()).push(c);
    }

    /// The container with OCI id `id`.
    pub fn container(&self, id: &str) -> Option<Arc<Container>> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner()).iter().find(|c| c.id == id).cloned()
    }

    /// Allocates a thread id in the sandbox's pid namespace.
    pub(crate) fn alloc_tid(&self) -> Option<i32> {
        let mut p = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..PID_MAX {
            let tid = p.next;
            p.next = if p.next >= PID_MAX { 2 } else { p.next + 1 };
            let used = p.tasks.get(&tid).is_some_and(|w| w.strong_count() > 0)
                || p.groups.get(&tid).is_some_and(|w| w.strong_count() > 0);
            if !used {
                p.tasks.remove(&tid);
                p.groups.remove(&tid);
                return Some(tid);
            }
        }
        None
    }

    pub(crate) fn register_task(&self, t: &Arc<TaskShared>) {
        let mut p = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        p.tasks.insert(t.tid, Arc::downgrade(t));
    }

    pub(crate) fn register_group(&self, g: &Arc<ThreadGroup>) {
        let mut p = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        p.groups.insert(g.tgid, Arc::downgrade(g));
    }

    /// The thread with id `tid`, if it is alive.
    pub fn task(&self, tid: i32) -> Option<Arc<TaskShared>> {
        let p = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        p.tasks.get(&tid).and_then(Weak::upgrade)
    }

    /// Every process, by id.
    pub fn thread_groups(&self) -> Vec<Arc<ThreadGroup>> {
        let p = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<Arc<ThreadGroup>> = p.groups.values().filter_map(Weak::upgrade).collect();
        v.sort_by_key(|g| g.tgid);
        v
    }

    /// The process `tgid`, if it is alive.
    pub fn thread_group(&self, tgid: i32) -> Option<Arc<ThreadGroup>> {
        let p = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        p.groups.get(&tgid).and_then(Weak::upgrade)
    }

    /// Number of live threads.
    pub fn task_count(&self) -> usize {
        let p = self.pids.lock().unwrap_or_else(|e| e.into_inner());
        p.tasks.values().filter(|w| w.strong_count() > 0).count()
    }

    /// Threads whose process runs as real user `uid` (`RLIMIT_NPROC`).
    pub fn tasks_of_user(&self, uid: u32) -> usize {
        self.thread_groups().iter().filter(|g| g.creds().ruid == uid).map(|g| g.task_count()).sum()
    }

    /// Makes `child` a child of `parent` in the process tree.
    pub fn add_child(&self, parent: &Arc<ThreadGroup>, child: &Arc<ThreadGroup>) {
        let _tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
        child.family.lock().unwrap_or_else(|e| e.into_inner()).parent = Arc::downgrade(parent);
        parent.family.lock().unwrap_or_else(|e| e.into_inner()).children.push(child.clone());
    }

    /// Who adopts the orphans of `tg`: its nearest living subreaper
    /// ancestor, else its container's init (none if that is `tg` itself
    /// or gone).
    fn reaper_for(tg: &Arc<ThreadGroup>) -> Option<Arc<ThreadGroup>> {
        let mut at = tg.family.lock().unwrap_or_else(|e| e.into_inner()).parent.upgrade();
        while let Some(p) = at {
            if p.subreaper.load(std::sync::atomic::Ordering::Relaxed) && p.exiting().is_none() {
                return Some(p);
            }
            at = p.family.lock().unwrap_or_else(|e| e.into_inner()).parent.upgrade();
        }
        let init = tg.container.init.lock().unwrap_or_else(|e| e.into_inner()).upgrade()?;
        (!Arc::ptr_eq(&init, tg) && init.zombie_status().is_none()).then_some(init)
    }

    /// Every thread of process `tg` is gone: its children go to a reaper,
    /// its parent learns of the exit (or reaps it at once when it ignores
    /// `SIGCHLD`); a container's init ending ends the container.
    pub(crate) fn process_exited(&self, tg: &Arc<ThreadGroup>, status: ExitStatus) {
        use signal::{code, sig, Siginfo, SA_NOCLDWAIT, SIG_IGN};
        let mut signals: Vec<(Arc<ThreadGroup>, Siginfo)> = Vec::new();
        let mut kill: Vec<Arc<ThreadGroup>> = Vec::new();
        let parent = {
            let _tree = self.tree.lock().unwrap_or_else(|e| e.into_inner());
            let orphans = std::mem::take(&mut tg.family.lock().unwrap_or_else(|e| e.into_inner()).children);
            let reaper = Self::reaper_for(tg);
            for c in orphans {
                let pdeath = c.pdeathsig.load(std::sync::atomic::Ordering::Relaxed);
                if pdeath != 0 {
                    signals.push((c.clone(), Siginfo::user(pdeath, code::SI_USER, 0, 0)));
                }
                match &reaper {
                    Some(r) => {
                        c.family.lock().unwrap_or_else(|e| e.into_inner()).parent = Arc::downgrade(r);
                        r.family.lock().unwrap_or_else(|e| e.into_inner()).children.push(c);
                    }
                    None => {
                        // No one to adopt it: the container is ending.
                        c.family.lock().unwrap_or_else(|e| e.into_inner()).parent = Weak::new();
                        kill.push(c);
                    }
                }
            }
            if let Some(r) = &reaper {
                r.child_events.notify();
            }
            let parent = tg.family.lock().unwrap_or_else(|e| e.into_inner()).parent.upgrade();
            if let Some(p) = &parent {
                let act = p.actions.lock().unwrap_or_else(|e| e.into_inner()).get(sig::SIGCHLD);
                let auto_reap = tg.exit_signal == sig::SIGCHLD
                    && (act.handler == SIG_IGN || act.flags & SA_NOCLDWAIT != 0);
                if auto_reap {
                    p.family
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .children
                        .retain(|c| !Arc::ptr_eq(c, tg));
                } else if tg.exit_signal != 0 {
                    let (c, st) = match status {
                        ExitStatus::Code(v) => (code::CLD_EXITED, i32::from(v)),
                        ExitStatus::Signal { sig, core: false } => (code::CLD_KILLED, sig),
                        ExitStatus::Signal { sig, core: true } => (code::CLD_DUMPED, sig),
                    };
                    let uid = tg.creds().ruid;
                    signals.push((p.clone(), Siginfo::child(tg.exit_signal, c, tg.tgid, uid, st)));
                }
            }
            parent
        };
        if let Some(p) = &parent {
            p.child_events.notify();
        }
        for (g, s) in signals {
            g.send_signal(s);
        }
        let is_init = tg
            .container
            .init
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
            .is_some_and(|i| Arc::ptr_eq(&i, tg));
        if is_init {
            // A pid namespace ends with its init: everything else in the
            // container is killed.
            for g in self.thread_groups() {
                if Arc::ptr_eq(&g.container, &tg.container) && !Arc::ptr_eq(&g, tg) {
                    g.begin_exit(ExitStatus::Signal { sig: sig::SIGKILL, core: false });
                }
            }
            tg.container.set_exited(status);
        }
        for g in kill {
            g.begin_exit(ExitStatus::Signal { sig: sig::SIGKILL, core: false });
        }
    }

    /// Reports an unimplemented system call, once per number.
    pub fn report_unsupported(&self, nr: u64) {
        let first = self.unsupported.lock().unwrap_or_else(|e| e.into_inner()).insert(nr);
        if first {
            let name = rvisor_syscalls::syscall_name(nr).map_or_else(|| format!("#{nr}"), str::to_string);
            tracing::warn!(syscall = %name, nr, "unsupported syscall {name}");
        }
    }

    /// The unimplemented system calls the sandbox made so far.
    pub fn unsupported_syscalls(&self) -> Vec<u64> {
        self.unsupported.lock().unwrap_or_else(|e| e.into_inner()).iter().copied().collect()
    }
}
