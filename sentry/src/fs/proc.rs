//! The sandbox's `/proc` (minimal; the synthetic-filesystems issue adds
//! the rest): `self`, and for each process `exe`, `cwd`, `root`, `fd/`,
//! `cmdline`, `environ`, `maps`, `stat`, `status`, `comm`, in Linux's
//! formats. Everything is computed from the sentry's own state when it is
//! looked at; nothing is cached and nothing of the host shows.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use rvisor_platform::Prot;
use rvisor_syscalls::Errno;

use super::synth::{Meta, SynthDir, SynthFile, SynthLink};
use crate::kernel::thread_group::ProcessView;
use crate::kernel::{Kernel, ThreadGroup};
use crate::mm::vma::{VmaFlags, VmaName};
use crate::vfs::inode::InodeRef;
use crate::vfs::inode::Jump;
use crate::vfs::{path_string, Path};

/// `statfs` type of procfs.
pub const PROC_SUPER_MAGIC: u64 = 0x9fa0;

fn meta(mode: u32) -> Meta {
    Meta::new(mode, PROC_SUPER_MAGIC)
}

/// The root the calling process sees paths from.
fn reader_root(k: &Kernel) -> Option<Path> {
    let v = k.thread_group(crate::kernel::current())?.view();
    let fs = v.fs?;
    let root = fs.lock().unwrap_or_else(|p| p.into_inner()).root.clone();
    Some(root)
}

/// A path as the reader sees it, " (deleted)" when its name is gone.
fn show_path(k: &Kernel, p: &Path) -> Vec<u8> {
    let mut s = match reader_root(k) {
        Some(root) => path_string(&root, p),
        None => b"/".to_vec(),
    };
    if p.dentry.is_unlinked() {
        s.extend_from_slice(b" (deleted)");
    }
    s
}

/// A new `/proc` for `kernel`.
pub fn new(kernel: &Arc<Kernel>) -> InodeRef {
    let k = Arc::downgrade(kernel);
    let system = super::procinfo::entries(kernel);
    let entries = move || -> Vec<(Vec<u8>, InodeRef)> {
        let Some(kernel) = k.upgrade() else { return Vec::new() };
        let kk = k.clone();
        let mut v: Vec<(Vec<u8>, InodeRef)> = vec![(
            b"self".to_vec(),
            SynthLink::new(
                meta(0),
                Box::new(move || {
                    let _alive = kk.upgrade().ok_or(Errno::ENOENT)?;
                    match crate::kernel::current() {
                        0 => Err(Errno::ENOENT),
                        t => Ok(t.to_string().into_bytes()),
                    }
                }),
                false,
            ),
        )];
        v.push((b"mounts".to_vec(), SynthLink::new(meta(0), Box::new(|| Ok(b"self/mounts".to_vec())), true)));
        v.extend(system.iter().map(|(n, i)| (n.as_bytes().to_vec(), i.clone())));
        for g in kernel.thread_groups().into_iter().filter(|g| !g.is_dead()) {
            v.push((g.tgid.to_string().into_bytes(), pid_dir(&k, &g)));
        }
        v
    };
    SynthDir::new(meta(0o555), Box::new(entries), false)
}

/// Runs `f` on a live process's view, or `ENOENT` once it is gone.
fn with_view<T>(
    g: &Weak<ThreadGroup>,
    f: impl FnOnce(&ThreadGroup, ProcessView) -> Result<T, Errno>,
) -> Result<T, Errno> {
    let g = g.upgrade().filter(|g| !g.is_dead()).ok_or(Errno::ENOENT)?;
    let v = g.view();
    f(&g, v)
}

fn comm_of(v: &ProcessView) -> String {
    let n = v.comm.iter().position(|&c| c == 0).unwrap_or(v.comm.len());
    String::from_utf8_lossy(&v.comm[..n]).into_owned()
}

/// Whether the calling task may follow `g`'s magic links (Linux's
/// ptrace read check: the same process, or the same user with `g`
/// dumpable, or `CAP_SYS_PTRACE`); `EACCES` otherwise.
fn may_follow(g: &ThreadGroup) -> Result<(), Errno> {
    const CAP_SYS_PTRACE: u64 = 1 << 19;
    let Some(me) = g.kernel.thread_group(crate::kernel::current()) else { return Err(Errno::EACCES) };
    if me.tgid == g.tgid {
        return Ok(());
    }
    let (mc, tc) = (me.creds(), g.creds());
    let same_user = mc.euid == tc.ruid && mc.euid == tc.euid && mc.euid == tc.suid;
    if (same_user && g.dumpable.load(Ordering::Relaxed) != 0) || mc.capable(CAP_SYS_PTRACE) {
        Ok(())
    } else {
        Err(Errno::EACCES)
    }
}

/// The name of thread `tid` of `g` (the process's when it is gone).
fn thread_comm(g: &ThreadGroup, v: &ProcessView, tid: i32) -> String {
    match g.tasks().into_iter().find(|t| t.tid == tid) {
        Some(t) => {
            let c = *t.comm.lock().unwrap_or_else(|p| p.into_inner());
            let n = c.iter().position(|&b| b == 0).unwrap_or(c.len());
            String::from_utf8_lossy(&c[..n]).into_owned()
        }
        None => comm_of(v),
    }
}

fn pid_dir(k: &Weak<Kernel>, g: &Arc<ThreadGroup>) -> InodeRef {
    let c = g.creds();
    let owned = |m: u32| meta(m).owned(c.euid, c.egid);
    let w = Arc::downgrade(g);
    let file = |name: &str, mode: u32, gen: Box<dyn Fn() -> Result<Vec<u8>, Errno> + Send + Sync>| {
        (name.as_bytes().to_vec(), SynthFile::new(owned(mode), gen) as InodeRef)
    };
    // `exe`, `cwd` and `root` lead to the file itself when followed.
    let link = |name: &str, target: Box<dyn Fn() -> Result<Vec<u8>, Errno> + Send + Sync>| {
        let w = w.clone();
        let which = name.to_string();
        let jump = move || -> Result<Jump, Errno> {
            with_view(&w, |g, v| {
                may_follow(g)?;
                let p = match which.as_str() {
                    "exe" => v.mm.and_then(|m| m.meta().exe),
                    "cwd" => v.fs.map(|f| f.lock().unwrap_or_else(|p| p.into_inner()).cwd.clone()),
                    _ => v.fs.map(|f| f.lock().unwrap_or_else(|p| p.into_inner()).root.clone()),
                };
                p.map(Jump::Path).ok_or(Errno::ENOENT)
            })
        };
        (name.as_bytes().to_vec(), SynthLink::magic(owned(0), target, Box::new(jump)) as InodeRef)
    };
    let (w1, w2, w3, w4, w5, w6, w7, w8, w9, w10) = (
        w.clone(),
        w.clone(),
        w.clone(),
        w.clone(),
        w.clone(),
        w.clone(),
        w.clone(),
        w.clone(),
        w.clone(),
        w.clone(),
    );
    let (k1, k2, k3, k4) = (k.clone(), k.clone(), k.clone(), k.clone());
    let entries: Vec<(Vec<u8>, InodeRef)> = vec![
        link(
            "exe",
            Box::new(move || {
                let k = k1.upgrade().ok_or(Errno::ENOENT)?;
                with_view(&w1, |_, v| {
                    let exe = v.mm.and_then(|m| m.meta().exe).ok_or(Errno::ENOENT)?;
                    Ok(show_path(&k, &exe))
                })
            }),
        ),
        link(
            "cwd",
            Box::new(move || {
                let k = k2.upgrade().ok_or(Errno::ENOENT)?;
                with_view(&w2, |_, v| {
                    let fs = v.fs.ok_or(Errno::ENOENT)?;
                    let cwd = fs.lock().unwrap_or_else(|p| p.into_inner()).cwd.clone();
                    Ok(show_path(&k, &cwd))
                })
            }),
        ),
        link(
            "root",
            Box::new(move || {
                let k = k3.upgrade().ok_or(Errno::ENOENT)?;
                with_view(&w3, |_, v| {
                    let fs = v.fs.ok_or(Errno::ENOENT)?;
                    let root = fs.lock().unwrap_or_else(|p| p.into_inner()).root.clone();
                    Ok(show_path(&k, &root))
                })
            }),
        ),
        (b"fd".to_vec(), fd_dir(&k4, &w4, owned(0o500))),
        file("cmdline", 0o444, Box::new(move || with_view(&w5, |_, v| Ok(arg_bytes(&v, false))))),
        file("environ", 0o400, Box::new(move || with_view(&w6, |_, v| Ok(arg_bytes(&v, true))))),
        file("maps", 0o444, Box::new(move || with_view(&w7, |_, v| Ok(maps(&v))))),
        file("stat", 0o444, Box::new(move || with_view(&w8, |g, v| Ok(stat_of(g, &v, g.tgid))))),
        file("status", 0o444, Box::new(move || with_view(&w9, |g, v| Ok(status_of(g, &v, g.tgid))))),
        file(
            "comm",
            0o644,
            Box::new(move || with_view(&w10, |_, v| Ok(format!("{}\n", comm_of(&v)).into_bytes()))),
        ),
    ];
    let mut entries = entries;
    entries.extend(more_entries(k, g, &owned));
    SynthDir::new(owned(0o555), Box::new(move || entries.clone()), false)
}

type PidGen = fn(&Kernel, &ThreadGroup, &ProcessView) -> String;

/// A file of process `g` generated by `f`.
fn pid_file(k: &Weak<Kernel>, g: &Weak<ThreadGroup>, m: Meta, f: PidGen) -> InodeRef {
    let (k, g) = (k.clone(), g.clone());
    SynthFile::new(
        m,
        Box::new(move || {
            let k = k.upgrade().ok_or(Errno::ENOENT)?;
            with_view(&g, |g, v| Ok(f(&k, g, &v).into_bytes()))
        }),
    )
}

/// The per-process entries beyond the first ones.
fn more_entries(
    k: &Weak<Kernel>,
    g: &Arc<ThreadGroup>,
    owned: &dyn Fn(u32) -> Meta,
) -> Vec<(Vec<u8>, InodeRef)> {
    let w = Arc::downgrade(g);
    let f =
        |name: &str, mode: u32, gen: PidGen| (name.as_bytes().to_vec(), pid_file(k, &w, owned(mode), gen));
    let w2 = w.clone();
    let oom = SynthFile::writable(
        owned(0o644),
        {
            let w = w.clone();
            Box::new(move || {
                with_view(
                    &w,
                    |g, _| Ok(format!("{}\n", g.oom_score_adj.load(Ordering::Relaxed)).into_bytes()),
                )
            })
        },
        Box::new(move |data| {
            let v: i32 = std::str::from_utf8(data)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .filter(|v| (-1000..=1000).contains(v))
                .ok_or(Errno::EINVAL)?;
            let g = w2.upgrade().ok_or(Errno::ESRCH)?;
            // Lowering it takes CAP_SYS_RESOURCE, as on Linux.
            let cur = g.oom_score_adj.load(Ordering::Relaxed);
            let writer = g.kernel.thread_group(crate::kernel::current());
            if v < cur && !writer.is_some_and(|w| w.creds().capable(1 << 24)) {
                return Err(Errno::EACCES);
            }
            g.oom_score_adj.store(v, Ordering::Relaxed);
            Ok(())
        }),
    );
    vec![
        f("statm", 0o444, |_, _, v| statm(v)),
        f("smaps", 0o444, |_, _, v| smaps(v)),
        f("smaps_rollup", 0o444, |_, _, v| smaps_rollup(v)),
        f("io", 0o400, |_, g, _| io_of(g)),
        (b"auxv".to_vec(), {
            let w = w.clone();
            SynthFile::new(
                owned(0o400),
                Box::new(move || {
                    with_view(&w, |_, v| {
                        let a = v.mm.as_ref().map(|m| m.meta().args).unwrap_or_default();
                        Ok(a.auxv[..a.auxv_len]
                            .iter()
                            .flat_map(|(k, v)| [k.to_le_bytes(), v.to_le_bytes()])
                            .flatten()
                            .collect())
                    })
                }),
            ) as InodeRef
        }),
        f("limits", 0o444, |_, g, _| limits(g)),
        f("cgroup", 0o444, |_, _, _| "0::/\n".into()),
        f("wchan", 0o444, |_, _, _| "0".into()),
        f("oom_score", 0o444, |_, _, _| "0\n".into()),
        f("mounts", 0o444, |_, g, v| mounts(g, v, false)),
        f("mountinfo", 0o444, |_, g, v| mounts(g, v, true)),
        (b"oom_score_adj".to_vec(), oom),
        (b"task".to_vec(), task_dir(&w, owned(0o555))),
        (b"fdinfo".to_vec(), fdinfo_dir(&w, owned(0o500))),
        (b"ns".to_vec(), ns_dir(owned(0o511))),
    ]
}

fn statm(v: &ProcessView) -> String {
    let Some(m) = &v.mm else { return "0 0 0 0 0 0 0\n".into() };
    let pages = |b: u64| b / crate::mm::PAGE;
    let vmas = m.vmas();
    let size: u64 = vmas.iter().map(|x| x.end - x.start).sum();
    let text: u64 = vmas
        .iter()
        .filter(|x| x.prot.contains(Prot::EXEC) && x.file.is_some())
        .map(|x| x.end - x.start)
        .sum();
    let data: u64 = vmas
        .iter()
        .filter(|x| x.prot.contains(Prot::WRITE) && !x.flags.contains(VmaFlags::SHARED))
        .map(|x| x.end - x.start)
        .sum();
    let (rss, file) = m
        .usage()
        .iter()
        .fold((0, 0), |(r, f), (_, u)| (r + u.rss, f + u.shared_clean + u.private_clean + u.shmem));
    format!("{} {} {} {} 0 {} 0\n", pages(size), pages(rss), pages(file), pages(text), pages(data))
}

fn limits(g: &ThreadGroup) -> String {
    const ROWS: [(&str, &str, usize); 16] = [
        ("Max cpu time", "seconds", 0),
        ("Max file size", "bytes", 1),
        ("Max data size", "bytes", 2),
        ("Max stack size", "bytes", 3),
        ("Max core file size", "bytes", 4),
        ("Max resident set", "bytes", 5),
        ("Max processes", "processes", 6),
        ("Max open files", "files", 7),
        ("Max locked memory", "bytes", 8),
        ("Max address space", "bytes", 9),
        ("Max file locks", "locks", 10),
        ("Max pending signals", "signals", 11),
        ("Max msgqueue size", "bytes", 12),
        ("Max nice priority", "", 13),
        ("Max realtime priority", "", 14),
        ("Max realtime timeout", "us", 15),
    ];
    let show = |v: u64| {
        if v == crate::kernel::thread_group::RLIM_INFINITY {
            "unlimited".to_string()
        } else {
            v.to_string()
        }
    };
    let mut s = format!("{:<26}{:<21}{:<21}{:<10}\n", "Limit", "Soft Limit", "Hard Limit", "Units");
    for (name, unit, r) in ROWS {
        let l = g.rlimit(r);
        // Linux pads the units only where there are some.
        let unit = if unit.is_empty() { String::new() } else { format!("{unit:<10}") };
        let _ = writeln!(s, "{name:<26}{:<21}{:<21}{unit}", show(l.cur), show(l.max));
    }
    s
}

/// `/proc/PID/mounts` (`info`: `mountinfo`) of the process's mount
/// namespace, paths as the process sees them.
fn mounts(g: &ThreadGroup, v: &ProcessView, info: bool) -> String {
    let Some(fs) = &v.fs else { return String::new() };
    let root = fs.lock().unwrap_or_else(|p| p.into_inner()).root.clone();
    let ns = g.container.mntns.clone();
    let mut s = String::new();
    for m in ns.mounts() {
        let point = match &m.parent {
            None => Path { mount: m.clone(), dentry: m.root.clone() },
            Some((pm, d)) => Path { mount: pm.clone(), dentry: d.clone() },
        };
        let at = String::from_utf8_lossy(&path_string(&root, &point)).into_owned();
        if at.starts_with("(unreachable)") {
            continue;
        }
        let at = escape(&at);
        let mut opts = String::from(if m.read_only() { "ro" } else { "rw" });
        for (bit, name) in [
            (crate::vfs::mflags::NOSUID, "nosuid"),
            (crate::vfs::mflags::NODEV, "nodev"),
            (crate::vfs::mflags::NOEXEC, "noexec"),
        ] {
            if m.flags & bit != 0 {
                opts.push(',');
                opts.push_str(name);
            }
        }
        opts.push_str(",relatime");
        let src = &m.source;
        if info {
            let parent = m.parent.as_ref().map_or(m.id, |(p, _)| p.id);
            let major = (m.dev >> 8) & 0xfff;
            let minor = (m.dev & 0xff) | ((m.dev >> 12) & 0xfff00);
            let ro = if m.read_only() { "ro" } else { "rw" };
            let _ = writeln!(
                s,
                "{} {parent} {major}:{minor} / {at} {opts} - {} {} {ro}",
                m.id, src.fs_type, src.source
            );
        } else {
            let _ = writeln!(s, "{} {at} {} {opts} 0 0", src.source, src.fs_type);
        }
    }
    s
}

/// Linux's octal escapes for the separators of a mount line.
fn escape(p: &str) -> String {
    let mut out = String::new();
    for c in p.chars() {
        match c {
            ' ' => out.push_str("\\040"),
            '\t' => out.push_str("\\011"),
            '\n' => out.push_str("\\012"),
            '\\' => out.push_str("\\134"),
            c => out.push(c),
        }
    }
    out
}

/// `/proc/PID/task`: a directory per thread with its `stat`, `status`
/// and `comm` (the process's, with the thread's id).
fn task_dir(g: &Weak<ThreadGroup>, m: Meta) -> InodeRef {
    let g = g.clone();
    let entries = move || -> Vec<(Vec<u8>, InodeRef)> {
        let Some(tg) = g.upgrade() else { return Vec::new() };
        let mut out = Vec::new();
        for tid in tg.tids() {
            let file = |name: &str, f: fn(&ThreadGroup, &ProcessView, i32) -> Vec<u8>| {
                let g = g.clone();
                let gen = Box::new(move || with_view(&g, |g, v| Ok(f(g, &v, tid))));
                (
                    name.as_bytes().to_vec(),
                    SynthFile::new(Meta { ino: super::synth::new_ino(), ..m }, gen) as InodeRef,
                )
            };
            let entries = vec![
                file("stat", stat_of),
                file("status", status_of),
                file("comm", |g, v, tid| format!("{}\n", thread_comm(g, v, tid)).into_bytes()),
            ];
            out.push((
                tid.to_string().into_bytes(),
                SynthDir::new(
                    Meta { ino: super::synth::new_ino(), ..m },
                    Box::new(move || entries.clone()),
                    false,
                ) as InodeRef,
            ));
        }
        out
    };
    SynthDir::new(m, Box::new(entries), false)
}

/// `/proc/PID/fdinfo`: each descriptor's offset, flags, mount and inode.
fn fdinfo_dir(g: &Weak<ThreadGroup>, m: Meta) -> InodeRef {
    let g = g.clone();
    let file_meta = Meta { mode: 0o444, ..m };
    let entries = move || -> Vec<(Vec<u8>, InodeRef)> {
        let Ok(fds) = with_view(&g, |_, v| v.fds.ok_or(Errno::ENOENT)) else { return Vec::new() };
        let mut out = Vec::new();
        for (n, file) in fds.list() {
            let fds = Arc::downgrade(&fds);
            let file = Arc::downgrade(&file);
            let gen = move || -> Result<Vec<u8>, Errno> {
                let f = file.upgrade().ok_or(Errno::ENOENT)?;
                let cloexec = fds.upgrade().and_then(|t| t.entry(n).ok()).is_some_and(|e| e.cloexec);
                let pos = f.ops().seek(0, 1).unwrap_or(0);
                let mut flags = f.flags();
                if cloexec {
                    flags |= crate::vfs::file::oflags::O_CLOEXEC;
                }
                let mnt = f.path().map_or(0, |p| p.mount.id);
                let ino = f.stat().map_or(0, |st| st.ino);
                Ok(format!("pos:\t{pos}\nflags:\t0{flags:o}\nmnt_id:\t{mnt}\nino:\t{ino}\n").into_bytes())
            };
            out.push((
                n.to_string().into_bytes(),
                SynthFile::new(Meta { ino: super::synth::new_ino(), ..file_meta }, Box::new(gen)) as InodeRef,
            ));
        }
        out
    };
    SynthDir::new(m, Box::new(entries), false)
}

/// `/proc/PID/ns`: the namespaces, one of each kind in the sandbox.
fn ns_dir(m: Meta) -> InodeRef {
    const NS: [(&str, u64); 10] = [
        ("cgroup", 4_026_531_835),
        ("ipc", 4_026_531_839),
        ("mnt", 4_026_531_841),
        ("net", 4_026_531_840),
        ("pid", 4_026_531_836),
        ("pid_for_children", 4_026_531_836),
        ("time", 4_026_531_834),
        ("time_for_children", 4_026_531_834),
        ("user", 4_026_531_837),
        ("uts", 4_026_531_838),
    ];
    let entries: Vec<(Vec<u8>, InodeRef)> = NS
        .iter()
        .map(|&(name, ino)| {
            let kind = name.trim_end_matches("_for_children");
            let target = format!("{kind}:[{ino}]").into_bytes();
            let link = SynthLink::new(
                Meta { ino: super::synth::new_ino(), ..m },
                Box::new(move || Ok(target.clone())),
                true,
            );
            (name.as_bytes().to_vec(), link as InodeRef)
        })
        .collect();
    SynthDir::new(m, Box::new(move || entries.clone()), true)
}

fn fd_dir(k: &Weak<Kernel>, g: &Weak<ThreadGroup>, m: Meta) -> InodeRef {
    let (k, g) = (k.clone(), g.clone());
    let entries = move || -> Vec<(Vec<u8>, InodeRef)> {
        let Ok(fds) = with_view(&g, |_, v| v.fds.ok_or(Errno::ENOENT)) else { return Vec::new() };
        let mut out = Vec::new();
        for (n, file) in fds.list() {
            let k = k.clone();
            // Weak: a link looked up and held must not keep the file open.
            let file = Arc::downgrade(&file);
            let file2 = file.clone();
            let target = move || -> Result<Vec<u8>, Errno> {
                let k = k.upgrade().ok_or(Errno::ENOENT)?;
                let file = file.upgrade().ok_or(Errno::ENOENT)?;
                Ok(match (file.path(), file.ops().link_name()) {
                    (Some(p), _) => show_path(&k, p),
                    (None, Some(a)) => a.into_bytes(),
                    // Host stdio: gVisor's notation.
                    (None, None) => format!("host:[{n}]").into_bytes(),
                })
            };
            let g2 = g.clone();
            let jump = move || -> Result<Jump, Errno> {
                let tg = g2.upgrade().ok_or(Errno::ENOENT)?;
                may_follow(&tg)?;
                let file = file2.upgrade().ok_or(Errno::ENOENT)?;
                Ok(match file.path() {
                    Some(p) => Jump::Path(p.clone()),
                    None => Jump::Inode(super::reopen::ReopenNode::node(&file)),
                })
            };
            out.push((
                n.to_string().into_bytes(),
                SynthLink::magic(m, Box::new(target), Box::new(jump)) as InodeRef,
            ));
        }
        out
    };
    SynthDir::new(m, Box::new(entries), false)
}

/// The argv (or envp) strings, read from the process's memory.
fn arg_bytes(v: &ProcessView, env: bool) -> Vec<u8> {
    let Some(mm) = &v.mm else { return Vec::new() };
    let a = mm.meta().args;
    let (s, e) = if env { (a.env_start, a.env_end) } else { (a.arg_start, a.arg_end) };
    let len = usize::try_from(e.saturating_sub(s)).unwrap_or(0).min(1 << 20);
    mm.read_bytes(s, len).unwrap_or_default()
}

fn maps(v: &ProcessView) -> Vec<u8> {
    let Some(mm) = &v.mm else { return Vec::new() };
    let mut out = String::new();
    for vma in mm.vmas() {
        out.push_str(&map_line(&vma, heap_of(mm)));
        out.push('\n');
    }
    out.into_bytes()
}

/// Sizes in smaps form: the name padded to 16 columns, the value to 8.
fn kb_line(s: &mut String, name: &str, bytes: u64) {
    let _ = writeln!(s, "{name:<16}{:>8} kB", bytes / 1024);
}

/// `VmFlags` of `/proc/PID/smaps`, in Linux's order.
fn vm_flags(vma: &crate::mm::vma::Vma) -> String {
    match vma.name {
        VmaName::Vvar => return "rd mr pf io de dd ".into(),
        VmaName::Vdso => return "rd ex mr mw me de ".into(),
        _ => {}
    }
    let shared = vma.flags.contains(VmaFlags::SHARED);
    let read_only_file = shared && vma.file.as_ref().is_some_and(|f| !f.file.writable);
    let mut out = String::new();
    let mut put = |on: bool, f: &str| {
        if on {
            out.push_str(f);
            out.push(' ');
        }
    };
    put(vma.prot.contains(Prot::READ), "rd");
    put(vma.prot.contains(Prot::WRITE), "wr");
    put(vma.prot.contains(Prot::EXEC), "ex");
    put(shared && !read_only_file, "sh");
    put(true, "mr");
    put(!read_only_file, "mw");
    put(true, "me");
    put(shared, "ms");
    put(vma.flags.contains(VmaFlags::GROWSDOWN), "gd");
    put(vma.flags.contains(VmaFlags::DONTFORK), "dc");
    put(vma.flags.contains(VmaFlags::ACCOUNT) && !shared, "ac");
    put(vma.flags.contains(VmaFlags::WIPEONFORK), "wf");
    out
}

/// The counts smaps and smaps_rollup share, from `u`.
fn smaps_counts(s: &mut String, u: &crate::mm::VmaUsage, rollup: bool) {
    let shared = u.shared_clean + u.shared_dirty;
    // Shared pages count half (two owners, the common case).
    let pss = u.rss - shared + shared / 2;
    let pss_dirty = u.private_dirty + u.shared_dirty / 2;
    kb_line(s, "Rss:", u.rss);
    kb_line(s, "Pss:", pss);
    kb_line(s, "Pss_Dirty:", pss_dirty);
    if rollup {
        kb_line(s, "Pss_Anon:", u.private_dirty + (u.shared_dirty - u.shmem.min(u.shared_dirty)) / 2);
        kb_line(s, "Pss_File:", u.private_clean + u.shared_clean / 2);
        kb_line(s, "Pss_Shmem:", u.shmem / 2);
    }
    kb_line(s, "Shared_Clean:", u.shared_clean);
    kb_line(s, "Shared_Dirty:", u.shared_dirty);
    kb_line(s, "Private_Clean:", u.private_clean);
    kb_line(s, "Private_Dirty:", u.private_dirty);
    kb_line(s, "Referenced:", u.rss);
    kb_line(s, "Anonymous:", u.anon);
    for k in [
        "KSM:",
        "LazyFree:",
        "AnonHugePages:",
        "ShmemPmdMapped:",
        "FilePmdMapped:",
        "Shared_Hugetlb:",
        "Private_Hugetlb:",
        "Swap:",
        "SwapPss:",
        "Locked:",
    ] {
        kb_line(s, k, 0);
    }
}

fn smaps(v: &ProcessView) -> String {
    let Some(mm) = &v.mm else { return String::new() };
    let mut s = String::new();
    for (vma, u) in mm.usage() {
        s.push_str(&map_line(&vma, heap_of(mm)));
        s.push('\n');
        kb_line(&mut s, "Size:", vma.end - vma.start);
        kb_line(&mut s, "KernelPageSize:", crate::mm::PAGE);
        kb_line(&mut s, "MMUPageSize:", crate::mm::PAGE);
        smaps_counts(&mut s, &u, false);
        let _ = writeln!(s, "{:<16}{:>8}\nVmFlags: {}", "THPeligible:", 0, vm_flags(&vma));
    }
    s
}

fn smaps_rollup(v: &ProcessView) -> String {
    let Some(mm) = &v.mm else { return String::new() };
    let all = mm.usage();
    let (Some(first), Some(last)) = (all.first(), all.last()) else { return String::new() };
    let mut t = crate::mm::VmaUsage::default();
    for (_, u) in &all {
        t.rss += u.rss;
        t.anon += u.anon;
        t.shmem += u.shmem;
        t.shared_clean += u.shared_clean;
        t.shared_dirty += u.shared_dirty;
        t.private_clean += u.private_clean;
        t.private_dirty += u.private_dirty;
    }
    let mut s = format!("{:08x}-{:08x} ---p 00000000 00:00 0", first.0.start, last.0.end);
    while s.len() < 73 {
        s.push(' ');
    }
    s.push_str("[rollup]\n");
    smaps_counts(&mut s, &t, true);
    s
}

fn io_of(g: &ThreadGroup) -> String {
    let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    format!(
        "rchar: {}\nwchar: {}\nsyscr: {}\nsyscw: {}\nread_bytes: 0\nwrite_bytes: 0\ncancelled_write_bytes: 0\n",
        n(&g.io.rchar),
        n(&g.io.wchar),
        n(&g.io.syscr),
        n(&g.io.syscw)
    )
}

/// One line of `/proc/PID/maps` (without its newline).
/// The brk area (`[start, end)`): an anonymous mapping in it is
/// `[heap]`, however it was made, as on Linux.
fn heap_of(mm: &crate::mm::MemoryManager) -> (u64, u64) {
    (mm.brk_start(), mm.current_brk())
}

fn map_line(vma: &crate::mm::vma::Vma, heap: (u64, u64)) -> String {
    {
        let flag = |p: Prot, c: char| if vma.prot.contains(p) { c } else { '-' };
        let shared = if vma.flags.contains(VmaFlags::SHARED) { 's' } else { 'p' };
        let (off, dev, ino) = match &vma.file {
            // Linux's special mappings show no file.
            Some(_) if matches!(vma.name, VmaName::Vvar | VmaName::Vdso) => (0, 0, 0),
            Some(f) => (f.offset, f.file.dev, f.file.ino),
            None => (0, 0, 0),
        };
        let major = (dev >> 8) & 0xfff;
        let minor = (dev & 0xff) | ((dev >> 12) & 0xfff00);
        let mut line = format!(
            "{:08x}-{:08x} {}{}{}{} {:08x} {:02x}:{:02x} {} ",
            vma.start,
            vma.end,
            flag(Prot::READ, 'r'),
            flag(Prot::WRITE, 'w'),
            flag(Prot::EXEC, 'x'),
            shared,
            off,
            major,
            minor,
            ino
        );
        let name = match &vma.name {
            VmaName::None
                if vma.file.is_none() && vma.start <= heap.1 && vma.end >= heap.0 && heap.1 > heap.0 =>
            {
                Some("[heap]".to_string())
            }
            VmaName::None => None,
            VmaName::Heap => Some("[heap]".to_string()),
            VmaName::Stack => Some("[stack]".to_string()),
            VmaName::File(p) => Some(p.to_string()),
            VmaName::Vvar => Some("[vvar]".to_string()),
            VmaName::Vdso => Some("[vdso]".to_string()),
        };
        if let Some(n) = name {
            // Linux pads the fixed part to 73 columns before the name.
            while line.len() < 73 {
                line.push(' ');
            }
            line.push_str(&n);
        }
        // Without a name the line ends with the space after the inode,
        // as Linux's does.
        line
    }
}

fn sig_words(g: &ThreadGroup) -> (u64, u64) {
    let actions = g.actions.lock().unwrap_or_else(|p| p.into_inner());
    let (mut ignored, mut caught) = (0u64, 0u64);
    for sig in 1..=64 {
        let h = actions.get(sig).handler;
        if h == crate::kernel::signal::SIG_IGN {
            ignored |= 1 << (sig - 1);
        } else if h != crate::kernel::signal::SIG_DFL {
            caught |= 1 << (sig - 1);
        }
    }
    (ignored, caught)
}

fn stat_of(g: &ThreadGroup, v: &ProcessView, tid: i32) -> Vec<u8> {
    let state = if g.tgid == crate::kernel::current() { 'R' } else { 'S' };
    let (vsize, start_brk, brk) = v.mm.as_ref().map_or((0, 0, 0), |m| {
        let vsize: u64 = m.vmas().iter().map(|x| x.end - x.start).sum();
        (vsize, m.brk_start(), m.current_brk())
    });
    let a = v.mm.as_ref().map(|m| m.meta().args).unwrap_or_default();
    let (ignored, caught) = sig_words(g);
    let rss: u64 = v.mm.as_ref().map_or(0, |m| m.usage().iter().map(|(_, u)| u.rss).sum());
    let task = g.tasks().into_iter().find(|t| t.tid == tid);
    let (pending, blocked) = task.map_or((0, 0), |t| (t.pending_bits() | g.pending_bits(), t.blocked()));
    // Linux's stat shows the first 31 signals only.
    let low = |m: u64| m & 0x7fff_ffff;
    let (pending, blocked, ignored, caught) = (low(pending), low(blocked), low(ignored), low(caught));
    // The program's code: its executable mappings.
    let (start_code, end_code) = v.mm.as_ref().map_or((0, 0), |m| {
        let exe = m.meta().exe.map(|p| String::from_utf8_lossy(&show_path(&g.kernel, &p)).into_owned());
        m.vmas()
            .iter()
            .filter(|x| x.prot.contains(Prot::EXEC))
            .filter(|x| matches!(&x.name, VmaName::File(n) if Some(n.to_string()) == exe))
            .fold((0, 0), |(s, e), x| (if s == 0 { x.start } else { s.min(x.start) }, e.max(x.end)))
    });
    // CPU times in clock ticks (USER_HZ, 100).
    let cpu = g.cpu_times();
    let ticks = |d: std::time::Duration| d.as_millis() / 10;
    let s = format!(
        // The 52 fields of proc(5); those the sentry does not track are 0.
        "{pid} ({comm}) {state} {ppid} {pgrp} {sid} 0 -1 4194560 0 0 0 0 {utime} {stime} {cutime} {cstime} {prio} {nice} \
         {threads} 0 {start} {vsize} {rss} \
         18446744073709551615 {start_code} {end_code} {start_stack} 0 0 {pending} {blocked} {ignored} {caught} 0 0 0 {exit_signal} 0 0 0 0 0 0 0 0 {start_brk} {arg_start} \
         {arg_end} {env_start} {env_end} 0\n",
        pid = tid,
        start_stack = a.start_stack,
        rss = rss / crate::mm::PAGE,
        exit_signal = if tid == g.tgid { g.exit_signal } else { -1 },
        prio = 20 + g.nice.load(Ordering::Relaxed),
        nice = g.nice.load(Ordering::Relaxed),
        start = ticks(g.started),
        comm = thread_comm(g, v, tid),
        ppid = g.ppid(),
        pgrp = g.pgid.load(std::sync::atomic::Ordering::Relaxed),
        sid = g.sid.load(std::sync::atomic::Ordering::Relaxed),
        threads = g.task_count().max(1),
        utime = ticks(cpu.user),
        stime = ticks(cpu.sys),
        cutime = ticks(cpu.child_user),
        cstime = ticks(cpu.child_sys),
        arg_start = a.arg_start,
        arg_end = a.arg_end,
        env_start = a.env_start,
        env_end = a.env_end,
    );
    let _ = brk;
    s.into_bytes()
}

fn is_stack(x: &crate::mm::vma::Vma) -> bool {
    x.name == VmaName::Stack || x.flags.contains(VmaFlags::GROWSDOWN)
}

fn status_of(g: &ThreadGroup, v: &ProcessView, tid: i32) -> Vec<u8> {
    let c = g.creds();
    let mut s = String::new();
    let state = if g.tgid == crate::kernel::current() { "R (running)" } else { "S (sleeping)" };
    let _ = writeln!(s, "Name:\t{}", thread_comm(g, v, tid));
    let _ = writeln!(s, "Umask:\t{:04o}", g.umask.load(Ordering::Relaxed));
    let _ = writeln!(s, "State:\t{state}");
    let _ = writeln!(s, "Tgid:\t{}\nNgid:\t0\nPid:\t{tid}\nPPid:\t{}\nTracerPid:\t0", g.tgid, g.ppid());
    let _ = writeln!(s, "Uid:\t{}\t{}\t{}\t{}", c.ruid, c.euid, c.suid, c.fsuid);
    let _ = writeln!(s, "Gid:\t{}\t{}\t{}\t{}", c.rgid, c.egid, c.sgid, c.fsgid);
    let fd_size = v.fds.as_ref().map_or(64, |f| f.list().last().map_or(64, |(n, _)| (n + 64) / 64 * 64));
    let _ = writeln!(s, "FDSize:\t{fd_size}");
    let mut groups: String = c.groups.iter().map(|g| format!("{g} ")).collect();
    if groups.is_empty() {
        groups.push(' ');
    }
    let _ = writeln!(s, "Groups:\t{groups}");
    // One pid namespace: the ids in it are the ids.
    let (pgid, sid) = (g.pgid.load(Ordering::Relaxed), g.sid.load(Ordering::Relaxed));
    let _ = writeln!(s, "NStgid:\t{}\nNSpid:\t{tid}\nNSpgid:\t{pgid}\nNSsid:\t{sid}\nKthread:\t0", g.tgid);
    if let Some(m) = &v.mm {
        let line = |s: &mut String, k: &str, b: u64| {
            let _ = writeln!(s, "{k}:\t{:8} kB", b / 1024);
        };
        let usage = m.usage();
        let size: u64 = usage.iter().map(|(x, _)| x.end - x.start).sum();
        let rss: u64 = usage.iter().map(|(_, u)| u.rss).sum();
        let anon: u64 = usage.iter().map(|(_, u)| u.anon).sum();
        let shmem: u64 = usage.iter().map(|(_, u)| u.shmem).sum();
        let stack: u64 = usage.iter().filter(|(x, _)| is_stack(x)).map(|(x, _)| x.end - x.start).sum();
        let data: u64 = usage
            .iter()
            .filter(|(x, _)| {
                x.prot.contains(Prot::WRITE) && !x.flags.contains(VmaFlags::SHARED) && !is_stack(x)
            })
            .map(|(x, _)| x.end - x.start)
            .sum();
        let exe = m.meta().exe.map(|p| String::from_utf8_lossy(&show_path(&g.kernel, &p)).into_owned());
        let code = |want_exe: bool| -> u64 {
            usage
                .iter()
                .filter(|(x, _)| x.prot.contains(Prot::EXEC) && x.file.is_some())
                .filter(
                    |(x, _)| matches!(&x.name, VmaName::File(n) if (Some(n.to_string()) == exe) == want_exe),
                )
                .map(|(x, _)| x.end - x.start)
                .sum()
        };
        line(&mut s, "VmPeak", size);
        line(&mut s, "VmSize", size);
        line(&mut s, "VmLck", 0);
        line(&mut s, "VmPin", 0);
        // No peak is kept: the high-water mark is the current size.
        line(&mut s, "VmHWM", rss);
        line(&mut s, "VmRSS", rss);
        let _ = writeln!(s, "RssAnon:\t{:8} kB", anon / 1024);
        let _ = writeln!(s, "RssFile:\t{:8} kB", (rss - anon - shmem) / 1024);
        let _ = writeln!(s, "RssShmem:\t{:8} kB", shmem / 1024);
        line(&mut s, "VmData", data);
        line(&mut s, "VmStk", stack);
        line(&mut s, "VmExe", code(true));
        line(&mut s, "VmLib", code(false));
        line(&mut s, "VmPTE", 0);
        line(&mut s, "VmSwap", 0);
        let _ = writeln!(s, "HugetlbPages:\t{:8} kB", 0);
    }
    let _ = writeln!(s, "CoreDumping:\t0\nTHP_enabled:\t1");
    let _ = writeln!(s, "Threads:\t{}", g.task_count().max(1));
    let (ignored, caught) = sig_words(g);
    let task = g.tasks().into_iter().find(|t| t.tid == tid);
    let (pending, blocked) = task.map_or((0, 0), |t| (t.pending_bits(), t.blocked()));
    let _ = writeln!(s, "SigQ:\t0/{}", g.rlimit(11).cur);
    let _ =
        writeln!(s, "SigPnd:\t{pending:016x}\nShdPnd:\t{:016x}\nSigBlk:\t{blocked:016x}", g.pending_bits());
    let _ = writeln!(s, "SigIgn:\t{ignored:016x}\nSigCgt:\t{caught:016x}");
    let _ = writeln!(
        s,
        "CapInh:\t{:016x}\nCapPrm:\t{:016x}\nCapEff:\t{:016x}",
        c.cap_inheritable, c.cap_permitted, c.cap_effective
    );
    let _ = writeln!(s, "CapBnd:\t{:016x}\nCapAmb:\t{:016x}", c.cap_bounding, 0);
    let nnp = u8::from(g.no_new_privs.load(Ordering::Relaxed));
    let _ = writeln!(s, "NoNewPrivs:\t{nnp}\nSeccomp:\t0\nSeccomp_filters:\t0");
    let cpus = g.kernel.cpus.clamp(1, 64);
    let mask = if cpus == 64 { u64::MAX } else { (1u64 << cpus) - 1 };
    let list = if cpus == 1 { "0".to_string() } else { format!("0-{}", cpus - 1) };
    let _ = writeln!(s, "Cpus_allowed:\t{mask:x}\nCpus_allowed_list:\t{list}");
    let _ = writeln!(s, "Mems_allowed:\t1\nMems_allowed_list:\t0");
    let _ = writeln!(s, "voluntary_ctxt_switches:\t0\nnonvoluntary_ctxt_switches:\t0");
    s.into_bytes()
}
