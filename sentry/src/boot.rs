//! Starting a sandbox: the kernel, the container's mounts (served by the
//! gofer), its init process.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use oci_spec::runtime::Spec;
use rvisor_platform::{ArchState, Platform};
use rvisor_syscalls::abi::{Rlimit, Winsize};
use rvisor_syscalls::Errno;

use crate::fs::gofer::GoferClient;
use crate::fs::host::HostFile;
use crate::fs::tmpfs::Options as TmpfsOptions;
use crate::kernel::creds::Credentials;
use crate::kernel::exec::{self, ExecContext, Program};
use crate::kernel::thread_group::{ProcessView, RLIM_INFINITY, RLIM_NLIMITS};
use crate::kernel::{Container, ExitStatus, Kernel, KernelOptions, Task, TaskShared, ThreadGroup};
use crate::vfs::file::O_ACCMODE;
use crate::vfs::inode::Owner;
use crate::vfs::walk::Walker;
use crate::vfs::{mflags, FdTable, File, FsContext, MountNamespace, MountSource};

/// Why a sandbox could not start.
#[derive(Debug, thiserror::Error)]
pub enum BootError {
    /// The spec lacks something the sandbox needs.
    #[error("invalid spec: {0}")]
    Spec(String),
    /// A host resource could not be set up.
    #[error("{0}: {1}")]
    Host(&'static str, std::io::Error),
    /// The file system could not be set up.
    #[error("{what}: {errno}")]
    Mount {
        /// What failed.
        what: String,
        /// Why.
        errno: Errno,
    },
    /// The program is not in the sandbox's `PATH`.
    #[error("exec: \"{0}\": executable file not found in $PATH")]
    NotFound(String),
    /// The program could not be executed.
    #[error("{path}: {errno}")]
    Exec {
        /// The program.
        path: String,
        /// Why.
        errno: Errno,
    },
}

/// Everything `boot` needs.
pub struct BootConfig {
    /// The OCI spec of the container.
    pub spec: Spec,
    /// Container id.
    pub id: String,
    /// The path of the program to run, as found by the caller (it is
    /// opened through the gofer).
    pub exe_path: String,
    /// The sandbox's stdin, stdout and stderr (host descriptors).
    pub stdio: [OwnedFd; 3],
    /// Channels to the gofer serving the root (attach point 0) and the
    /// spec's bind mounts (1, 2, … in order).
    pub gofer: Vec<OwnedFd>,
    /// The platform.
    pub platform: Arc<dyn Platform>,
    /// Kernel options.
    pub options: KernelOptions,
    /// Size of the memory file (sparse).
    pub memory_size: u64,
    /// The root is a memory overlay on the gofer's: writable, its changes
    /// kept in the sandbox's memory (`--overlay=memory`).
    pub overlay: bool,
    /// Hold the program before its first instruction until this
    /// descriptor (a FIFO's read end) gives a byte (`create`, `start`).
    pub start_gate: Option<OwnedFd>,
    /// Host descriptors for the init's 3, 4, … (`--preserve-fds`).
    pub extra_fds: Vec<OwnedFd>,
}

/// Waits until `gate` gives a byte (`start` wrote it).
fn wait_for_start(gate: &OwnedFd) {
    use rustix::event::{poll, PollFd, PollFlags};
    let mut b = [0u8; 1];
    loop {
        let mut fds = [PollFd::new(gate, PollFlags::IN)];
        let _ = poll(&mut fds, None);
        match rustix::io::read(gate, &mut b) {
            Ok(1..) => return,
            // No writer yet, or one that closed without writing.
            Ok(0) => std::thread::sleep(std::time::Duration::from_millis(10)),
            Err(_) => std::thread::sleep(std::time::Duration::from_millis(1)),
        }
    }
}

/// A running sandbox.
#[derive(Debug)]
pub struct Sandbox {
    /// The kernel.
    pub kernel: Arc<Kernel>,
    /// The container.
    pub container: Arc<Container>,
    /// The container's init process.
    pub init: Arc<ThreadGroup>,
    /// With `process.terminal`: the console, bridged to the host
    /// terminal the sandbox was given as its standard input and output.
    pub console: Option<Console>,
}

/// A sandbox's console: a pair of the sandbox's devpts whose master side
/// the sentry bridges to a host terminal (raw on the host side; the line
/// discipline is the sandbox's).
#[derive(Debug)]
pub struct Console {
    /// The pair.
    pub pty: Arc<crate::fs::tty::Pty>,
    /// The host terminal (for its window size).
    host: OwnedFd,
    /// Held while output taken from the pair is being written to the host.
    writing: Arc<Mutex<()>>,
}

impl Console {
    /// The host terminal's window size changed: the sandbox's follows
    /// (`SIGWINCH` to its foreground group).
    pub fn resize(&self) {
        if let Ok(w) = crate::host::get_winsize(&self.host) {
            self.pty.resize(w);
        }
    }

    /// Waits (at most `timeout`) until the output the sandbox wrote has
    /// reached the host.
    pub fn flush(&self, timeout: std::time::Duration) {
        let end = std::time::Instant::now() + timeout;
        while self.pty.pending_output() > 0 && std::time::Instant::now() < end {
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        drop(self.writing.lock().unwrap_or_else(|p| p.into_inner()));
    }
}

/// Starts the threads that copy between host terminal descriptors and
/// the master side of `pty`: `input` to the pair, the pair's output to
/// `output`. When the host side ends, the pair hangs up.
fn bridge(
    pty: &Arc<crate::fs::tty::Pty>,
    input: OwnedFd,
    output: OwnedFd,
    writing: Arc<Mutex<()>>,
) -> Result<(), BootError> {
    // The bridge is the pair's one master holder (the count `allocate`
    // made): when the host side ends, the pair hangs up.
    let p = pty.clone();
    std::thread::Builder::new()
        .name("console-in".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                match rustix::io::read(&input, &mut buf) {
                    Ok(0) => break,
                    Ok(n) => {
                        if !p.bridge_input(&buf[..n]) {
                            break;
                        }
                    }
                    Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
                    Err(_) => break,
                }
            }
            p.bridge_closed();
        })
        .map_err(|e| BootError::Host("spawn console thread", e))?;
    let p = pty.clone();
    std::thread::Builder::new()
        .name("console-out".into())
        .spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                if !p.bridge_wait_output(std::time::Duration::from_millis(500)) {
                    break;
                }
                let _w = writing.lock().unwrap_or_else(|p| p.into_inner());
                let n = p.bridge_take_output(&mut buf);
                let mut done = 0;
                while done < n {
                    match rustix::io::write(&output, &buf[done..n]) {
                        Ok(k) => done += k,
                        Err(rustix::io::Errno::INTR) => {}
                        Err(_) => return,
                    }
                }
            }
        })
        .map_err(|e| BootError::Host("spawn console thread", e))?;
    Ok(())
}

impl Sandbox {
    /// Waits for the container's init to end.
    pub fn wait(&self) -> ExitStatus {
        self.container.wait()
    }

    /// Starts `process` in the running container (`exec`): a process of
    /// its own session, with no parent in the sandbox (its orphans go to
    /// the container's init).
    pub fn exec(&self, process: &oci_spec::runtime::Process, stdio: Stdio) -> Result<Started, BootError> {
        if self.container.wait_timeout(std::time::Duration::ZERO).is_some() {
            return Err(BootError::Spec("the container is not running".into()));
        }
        start_process(&self.kernel, &self.container, process, None, stdio, Vec::new(), None, false)
    }

    /// Delivers a signal from the host to the container's init process.
    pub fn forward_signal(&self, sig: i32) {
        use crate::kernel::signal::{code, Siginfo};
        self.init.send_signal(Siginfo::user(sig, code::SI_USER, 0, 0));
    }
}

fn rlimits(process: &oci_spec::runtime::Process) -> [Rlimit; RLIM_NLIMITS] {
    // Linux's defaults for init, then what the spec sets.
    let mut l = [Rlimit { cur: RLIM_INFINITY, max: RLIM_INFINITY }; RLIM_NLIMITS];
    l[3] = Rlimit { cur: 8 << 20, max: RLIM_INFINITY }; // STACK
    l[4] = Rlimit { cur: 0, max: RLIM_INFINITY }; // CORE
    l[6] = Rlimit { cur: 63_471, max: 63_471 }; // NPROC
    l[7] = Rlimit { cur: 1024, max: 4096 }; // NOFILE
    l[8] = Rlimit { cur: 8 << 20, max: 8 << 20 }; // MEMLOCK
    l[11] = Rlimit { cur: 63_471, max: 63_471 }; // SIGPENDING
    l[12] = Rlimit { cur: 819_200, max: 819_200 }; // MSGQUEUE
    l[13] = Rlimit { cur: 0, max: 0 }; // NICE
    l[14] = Rlimit { cur: 0, max: 0 }; // RTPRIO
    let names = rvisor_syscalls::strace::RESOURCE_NAMES;
    let from_spec = process.rlimits().clone().unwrap_or_default();
    for r in from_spec {
        let name = serde_json::to_value(r.typ()).ok().and_then(|v| v.as_str().map(str::to_string));
        if let Some(i) = name.and_then(|n| names.iter().position(|x| *x == n)) {
            l[i] = Rlimit { cur: r.soft(), max: r.hard() };
        }
    }
    l
}

/// Linux's capability names, by number.
const CAP_NAMES: [&str; 41] = [
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

/// The bit of a capability of the spec (unknown ones: none).
fn cap_bit(cap: &oci_spec::runtime::Capability) -> Option<u64> {
    let name = serde_json::to_value(cap).ok()?;
    let i = CAP_NAMES.iter().position(|n| Some(*n) == name.as_str())?;
    Some(1u64 << i)
}

fn stdio_file(fd: OwnedFd) -> Arc<File> {
    let acc = rustix::fs::fcntl_getfl(&fd).map(|f| f.bits() & O_ACCMODE).unwrap_or(crate::vfs::file::O_RDWR);
    File::new(Box::new(HostFile::new(fd)), acc)
}

/// Bind mounts of the spec, in order: (destination, read-only).
pub fn bind_mounts(spec: &Spec) -> Vec<(String, String, bool)> {
    spec.mounts()
        .clone()
        .unwrap_or_default()
        .iter()
        .filter(|m| m.typ().as_deref() == Some("bind"))
        .map(|m| {
            let ro = m.options().as_ref().is_some_and(|o| o.iter().any(|x| x == "ro"));
            let src = m.source().as_ref().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
            (src, m.destination().to_string_lossy().into_owned(), ro)
        })
        .collect()
}

/// What `/proc/PID/mounts` says of the file systems the gofer serves.
const GOFER_SOURCE: MountSource = MountSource { fs_type: "gofer", source: "none" };

/// The container's mount namespace: the gofer's root (under a memory
/// overlay with `overlay`), then the spec's
/// mounts in order (binds through the gofer, tmpfs in the sentry; other
/// types are not mounted yet).
fn mounts(
    spec: &Spec,
    client: &Arc<GoferClient>,
    kernel: &Arc<Kernel>,
    overlay: bool,
) -> Result<Arc<MountNamespace>, BootError> {
    let memory = kernel.mem_total();
    let err = |what: String| move |errno| BootError::Mount { what: what.clone(), errno };
    let root_ro = spec.root().as_ref().is_some_and(|r| r.readonly() == Some(true));
    let root = client.attach(0).map_err(err("attach the root".into()))?;
    let ns = if overlay {
        // The upper layer's root looks like the lower one's.
        let a = root.attr().map_err(err("the root's attributes".into()))?;
        let upper = crate::fs::tmpfs::new(memory, a.mode & 0o7777, Owner { uid: a.uid, gid: a.gid });
        let source = MountSource { fs_type: "overlay", source: "overlay" };
        MountNamespace::new(crate::fs::overlay::new(root, upper), 0, source)
    } else {
        MountNamespace::new(root, if root_ro { mflags::RDONLY } else { 0 }, GOFER_SOURCE)
    };
    // The sentry's own /dev, /proc and /sys first: a spec's mounts may go
    // on them (a tmpfs on /dev/shm).
    synthetic_mounts(&ns, kernel);
    let admin = Credentials::new(0, 0, vec![]);
    let mut binds = 0u32;
    for m in spec.mounts().clone().unwrap_or_default() {
        let dest = m.destination().to_string_lossy().into_owned();
        let opts = m.options().clone().unwrap_or_default();
        let served = |d: &str| dest.trim_end_matches('/') == d;
        let (fs, flags, source) = match m.typ().as_deref() {
            // What the sentry serves already where Linux's are mounted.
            Some("proc") if served("/proc") => continue,
            Some("sysfs") if served("/sys") => continue,
            Some("devpts") if served("/dev/pts") => continue,
            Some("tmpfs") if served("/dev") => continue,
            Some("proc") => (
                crate::fs::proc::new(kernel),
                mflags::NOSUID | mflags::NODEV | mflags::NOEXEC,
                MountSource::named("proc"),
            ),
            Some("sysfs") => (
                crate::fs::sys::new(kernel),
                mflags::RDONLY | mflags::NOSUID | mflags::NODEV | mflags::NOEXEC,
                MountSource::named("sysfs"),
            ),
            Some("devpts") => {
                (kernel.devpts.root(), mflags::NOSUID | mflags::NOEXEC, MountSource::named("devpts"))
            }
            // No POSIX message queues and no cgroup file system yet: the
            // directories stay as they are (/sys/fs/cgroup is empty).
            Some("mqueue" | "cgroup" | "cgroup2") => {
                tracing::debug!("mount of type {:?} on {dest}: not served yet", m.typ());
                continue;
            }
            Some("bind") => {
                binds += 1;
                let ro = opts.iter().any(|x| x == "ro");
                let fs = client.attach(binds).map_err(err(format!("attach {dest}")))?;
                (fs, if ro { mflags::RDONLY } else { 0 }, GOFER_SOURCE)
            }
            Some("tmpfs") => {
                let t = TmpfsOptions::parse(opts.iter().map(String::as_str), memory)
                    .map_err(err(format!("tmpfs options of {dest}")))?;
                (crate::fs::tmpfs::new(t.bytes, t.mode, t.owner), t.flags, MountSource::named("tmpfs"))
            }
            other => {
                return Err(BootError::Spec(format!("mount of type {other:?} on {dest}: not supported")));
            }
        };
        let w = Walker { ns: &ns, root: ns.root(), creds: &admin, no_symlinks: false, beneath: None };
        let at = w.walk(ns.root(), dest.as_bytes(), true).map_err(err(format!("mount point {dest}")))?;
        ns.mount(&at, fs, flags, source).map_err(err(format!("mount {dest}")))?;
    }
    // maskedPaths: an empty read-only directory over each directory there
    // (files there are not masked yet); readonlyPaths: a read-only view of
    // each directory. Paths the sandbox does not have are skipped, as runc
    // skips them.
    let linux = spec.linux().clone().unwrap_or_default();
    let w = Walker { ns: &ns, root: ns.root(), creds: &admin, no_symlinks: true, beneath: None };
    for p in linux.masked_paths().clone().unwrap_or_default() {
        if let Ok(at) = w.walk(ns.root(), p.as_bytes(), false) {
            if at.attr().is_ok_and(|a| a.is_dir()) {
                let empty = crate::fs::tmpfs::new(4096, 0o555, Owner { uid: 0, gid: 0 });
                ns.mount(&at, empty, mflags::RDONLY, MountSource::named("tmpfs"))
                    .map_err(err(format!("mask {p}")))?;
            }
        }
    }
    for p in linux.readonly_paths().clone().unwrap_or_default() {
        if let Ok(at) = w.walk(ns.root(), p.as_bytes(), false) {
            if at.attr().is_ok_and(|a| a.is_dir()) {
                let inode = at.inode().clone();
                ns.mount(&at, inode, mflags::RDONLY, MountSource::named("bind"))
                    .map_err(err(format!("read-only {p}")))?;
            }
        }
    }
    Ok(ns)
}

/// The sentry's own `/dev` (with a tmpfs on `/dev/shm`), `/proc` and
/// `/sys`, on the directories of those names the root has (the gofer
/// serves them empty).
fn synthetic_mounts(ns: &Arc<MountNamespace>, kernel: &Arc<Kernel>) {
    let admin = Credentials::new(0, 0, vec![]);
    let pseudo = mflags::NOSUID | mflags::NODEV | mflags::NOEXEC;
    let root_owner = Owner { uid: 0, gid: 0 };
    let shm = crate::fs::tmpfs::new(kernel.mem_total() / 2, 0o1777, root_owner);
    let all: [(&str, crate::vfs::inode::InodeRef, u32, MountSource); 5] = [
        ("/dev", crate::fs::dev::new(), mflags::NOSUID | mflags::NOEXEC, MountSource::named("tmpfs")),
        ("/dev/pts", kernel.devpts.root(), mflags::NOSUID | mflags::NOEXEC, MountSource::named("devpts")),
        ("/dev/shm", shm, mflags::NOSUID | mflags::NODEV, MountSource::named("tmpfs")),
        ("/proc", crate::fs::proc::new(kernel), pseudo, MountSource::named("proc")),
        ("/sys", crate::fs::sys::new(kernel), pseudo | mflags::RDONLY, MountSource::named("sysfs")),
    ];
    for (point, fs, flags, source) in all {
        let w = Walker { ns, root: ns.root(), creds: &admin, no_symlinks: true, beneath: None };
        match w.walk(ns.root(), point.as_bytes(), false) {
            Ok(at) if at.attr().is_ok_and(|a| a.is_dir()) => {
                if let Err(e) = ns.mount(&at, fs, flags, source) {
                    tracing::warn!("mount {point}: {e:?}");
                }
            }
            _ => tracing::debug!("no directory for {point}: not mounted"),
        }
    }
}

/// The standard descriptors of a new process.
#[derive(Debug)]
pub enum Stdio {
    /// Host descriptors, used as they are (0, 1, 2).
    Host([OwnedFd; 3]),
    /// A host terminal (its input and output side): the process gets a
    /// console pair of the sandbox's own, bridged to it, as its standard
    /// descriptors and controlling terminal.
    Terminal(OwnedFd, OwnedFd),
}

/// A process started in the sandbox.
#[derive(Debug)]
pub struct Started {
    /// The process.
    pub tg: Arc<ThreadGroup>,
    /// Its console, when it was given a terminal.
    pub console: Option<Console>,
}

/// Linux's default search path (`execvp` without `PATH`).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Where `prog` is in the sandbox: itself when it names a path, else the
/// first executable regular file of that name in `PATH`.
fn find_program(w: &Walker<'_>, cwd: &crate::vfs::Path, prog: &str, env: &[String]) -> Option<String> {
    if prog.contains('/') {
        return Some(prog.to_string());
    }
    let path = env.iter().rev().find_map(|e| e.strip_prefix("PATH=")).unwrap_or(DEFAULT_PATH);
    path.split(':').map(|d| if d.is_empty() { "." } else { d }).find_map(|dir| {
        let cand = format!("{}/{prog}", dir.trim_end_matches('/'));
        let p = w.walk(cwd.clone(), cand.as_bytes(), true).ok()?;
        let a = p.attr().ok()?;
        (a.is_reg() && a.mode & 0o111 != 0).then_some(cand)
    })
}

/// Starts `process` in `container` (its init with `is_init`). `exe`: the
/// program's path in the sandbox (found through `PATH` when `None`). The
/// process's first instruction waits for `gate` when given.
#[allow(clippy::too_many_arguments)]
fn start_process(
    kernel: &Arc<Kernel>,
    container: &Arc<Container>,
    process: &oci_spec::runtime::Process,
    exe: Option<&str>,
    stdio: Stdio,
    extra_fds: Vec<OwnedFd>,
    gate: Option<OwnedFd>,
    is_init: bool,
) -> Result<Started, BootError> {
    let ns = container.mntns.clone();
    let args = process.args().clone().unwrap_or_default();
    let Some(arg0) = args.first() else {
        return Err(BootError::Spec("process.args is empty".into()));
    };
    let user = process.user();
    let mut creds =
        Credentials::new(user.uid(), user.gid(), user.additional_gids().clone().unwrap_or_default());
    if let Some(c) = process.capabilities() {
        // The spec's sets replace the defaults (runc's spec gives root only
        // a few): the application's capabilities inside the sandbox.
        let bits = |set: &Option<oci_spec::runtime::Capabilities>| -> u64 {
            set.iter().flatten().filter_map(cap_bit).fold(0, |a, b| a | b)
        };
        creds.cap_bounding = bits(c.bounding());
        creds.cap_effective = bits(c.effective());
        creds.cap_permitted = bits(c.permitted());
        creds.cap_inheritable = bits(c.inheritable());
    }
    let cwd_path = process.cwd().to_string_lossy().into_owned();
    let w = Walker { ns: &ns, root: ns.root(), creds: &creds, no_symlinks: false, beneath: None };
    let cwd = w
        .walk(ns.root(), cwd_path.as_bytes(), true)
        .and_then(|p| if p.attr()?.is_dir() { Ok(p) } else { Err(Errno::ENOTDIR) })
        .map_err(|errno| BootError::Mount { what: format!("working directory {cwd_path}"), errno })?;
    let env = process.env().clone().unwrap_or_default();
    let exe_path = match exe {
        Some(e) => e.to_string(),
        None => find_program(&w, &cwd, arg0, &env).ok_or(BootError::NotFound(arg0.clone()))?,
    };
    let fs = Arc::new(Mutex::new(FsContext { root: ns.root(), cwd: cwd.clone() }));

    let tgid = kernel.alloc_tid().ok_or_else(|| BootError::Spec("no pid".into()))?;
    let tg = ThreadGroup::new(kernel, container.clone(), tgid, creds.clone(), rlimits(process));
    if process.no_new_privileges() == Some(true) {
        tg.no_new_privs.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    if let Some(m) = user.umask() {
        tg.umask.store(m & 0o777, std::sync::atomic::Ordering::Relaxed);
    }
    if let Some(a) = process.oom_score_adj() {
        tg.oom_score_adj.store(a.clamp(-1000, 1000), std::sync::atomic::Ordering::Relaxed);
    }
    if is_init {
        *container.init.lock().unwrap_or_else(|e| e.into_inner()) = std::sync::Arc::downgrade(&tg);
    }
    let shared = TaskShared::new(tgid, tg.clone()).map_err(|e| BootError::Host("eventfd", e))?;
    // Until its first thread runs, a failure ends the process quietly.
    let fail = |e: BootError| {
        tg.task_exited(tgid, ExitStatus::Code(if matches!(e, BootError::NotFound(_)) { 127 } else { 126 }));
        e
    };

    let cx = ExecContext { ns: &ns, root: ns.root(), start: cwd.clone(), cwd: cwd.clone(), creds: &creds };
    let argv: Vec<Vec<u8>> = args.iter().map(|a| a.as_bytes().to_vec()).collect();
    let envp: Vec<Vec<u8>> = env.iter().map(|e| e.as_bytes().to_vec()).collect();
    let prog = Program {
        path: exe_path.as_bytes().to_vec(),
        name: exe_path.as_bytes().to_vec(),
        target: None,
        follow: true,
        argv,
        envp,
        stack_limit: tg.rlimit(3).cur,
    };
    let image = exec::prepare(kernel, &cx, prog)
        .map_err(|errno| fail(BootError::Exec { path: exe_path.clone(), errno }))?;
    let (mm, loaded) = (image.mm.clone(), image.loaded);
    mm.set_exe(image.exe.clone(), loaded.args);

    let fds = Arc::new(FdTable::default());
    let console = match stdio {
        Stdio::Terminal(input, output) => {
            // A pair of the sandbox's own, its replica the standard
            // descriptors and the process's controlling terminal, its
            // master bridged to the host terminal.
            let pty = kernel
                .devpts
                .allocate(kernel, creds.euid)
                .map_err(|errno| fail(BootError::Mount { what: "console".into(), errno }))?;
            pty.unlock();
            let host = rustix::io::fcntl_dupfd_cloexec(&input, 3)
                .map_err(|e| fail(BootError::Host("dup", e.into())))?;
            let size = process.console_size().as_ref().map(|b| Winsize {
                row: u16::try_from(b.height()).unwrap_or(u16::MAX),
                col: u16::try_from(b.width()).unwrap_or(u16::MAX),
                xpixel: 0,
                ypixel: 0,
            });
            if let Some(w) = size.or_else(|| crate::host::get_winsize(&host).ok()) {
                pty.resize(w);
            }
            let writing = Arc::new(Mutex::new(()));
            bridge(&pty, input, output, writing.clone()).map_err(fail)?;
            // Opened at its /dev/pts path, so that fstat and stat agree
            // (`ttyname`).
            let at = format!("/dev/pts/{}", pty.index);
            let f = match w.walk(ns.root(), at.as_bytes(), true) {
                Ok(p) => File::with_path(pty.console_replica(), crate::vfs::file::O_RDWR, p),
                Err(_) => File::new(pty.console_replica(), crate::vfs::file::O_RDWR),
            };
            for n in 0..3 {
                let _ = fds.install_at(n, f.clone(), false, crate::vfs::NR_OPEN);
            }
            if is_init {
                *kernel.console.lock().unwrap_or_else(|e| e.into_inner()) = Some(pty.clone());
            }
            pty.set_ctty(&tg);
            Some(Console { pty, host, writing })
        }
        Stdio::Host(stdio) => {
            for (i, fd) in stdio.into_iter().enumerate() {
                let n = i32::try_from(i).unwrap_or(0);
                let _ = fds.install_at(n, stdio_file(fd), false, crate::vfs::NR_OPEN);
            }
            None
        }
    };
    tg.add_task(shared.clone());
    let comm = image.comm;
    let mut view_comm = [0u8; 16];
    let n = comm.len().min(15);
    view_comm[..n].copy_from_slice(&comm[..n]);
    tg.set_view(ProcessView {
        mm: Some(mm.clone()),
        fds: Some(fds.clone()),
        fs: Some(fs.clone()),
        comm: view_comm,
    });
    for (i, fd) in extra_fds.into_iter().enumerate() {
        let n = 3 + i32::try_from(i).unwrap_or(0);
        let _ = fds.install_at(n, stdio_file(fd), false, crate::vfs::NR_OPEN);
    }
    let platform = kernel.platform.clone();
    std::thread::Builder::new()
        .name(format!("task-{tgid}"))
        .spawn(move || {
            if let Some(g) = gate {
                wait_for_start(&g);
            }
            let ctx = match platform.new_context() {
                Ok(c) => c,
                Err(e) => {
                    tracing::error!("new context: {e}");
                    shared.tg.task_exited(shared.tid, ExitStatus::Signal { sig: 9, core: false });
                    return;
                }
            };
            let mut arch = ArchState::new_user();
            arch.regs.rip = loaded.entry;
            arch.regs.rsp = loaded.sp;
            Task::new(shared, ctx, arch, mm, fds, fs, &comm).run();
        })
        .map_err(|e| BootError::Host("spawn task thread", e))?;
    Ok(Started { tg, console })
}

/// Boots a sandbox running the spec's process.
pub fn boot(cfg: BootConfig) -> Result<Sandbox, BootError> {
    let kernel = Kernel::new(cfg.platform.clone(), cfg.memory_size, &cfg.options)
        .map_err(|e| BootError::Host("memory file", e))?;
    let process = cfg.spec.process().as_ref().ok_or_else(|| BootError::Spec("no process".into()))?;
    if process.args().as_ref().is_none_or(Vec::is_empty) {
        return Err(BootError::Spec("process.args is empty".into()));
    }
    let client = GoferClient::new(cfg.gofer);
    let ns = mounts(&cfg.spec, &client, &kernel, cfg.overlay)?;
    let container = Container::new(&cfg.id, ns);
    kernel.add_container(container.clone());
    let stdio = if process.terminal() == Some(true) {
        let [input, output, _] = cfg.stdio;
        Stdio::Terminal(input, output)
    } else {
        Stdio::Host(cfg.stdio)
    };
    let started = start_process(
        &kernel,
        &container,
        process,
        Some(&cfg.exe_path),
        stdio,
        cfg.extra_fds,
        cfg.start_gate,
        true,
    )?;
    kernel.start_oom_watch();
    Ok(Sandbox { kernel, container, init: started.tg, console: started.console })
}
