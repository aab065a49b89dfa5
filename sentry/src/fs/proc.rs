//! The sandbox's `/proc` (minimal; the synthetic-filesystems issue adds
//! the rest): `self`, and for each process `exe`, `cwd`, `root`, `fd/`,
//! `cmdline`, `environ`, `maps`, `stat`, `status`, `comm`, in Linux's
//! formats. Everything is computed from the sentry's own state when it is
//! looked at; nothing is cached and nothing of the host shows.

use std::fmt::Write as _;
use std::sync::{Arc, Weak};

use rvisor_platform::Prot;
use rvisor_syscalls::Errno;

use super::synth::{Meta, SynthDir, SynthFile, SynthLink};
use crate::kernel::thread_group::ProcessView;
use crate::kernel::{Kernel, ThreadGroup};
use crate::mm::vma::{VmaFlags, VmaName};
use crate::vfs::inode::InodeRef;
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

fn pid_dir(k: &Weak<Kernel>, g: &Arc<ThreadGroup>) -> InodeRef {
    let c = g.creds();
    let owned = |m: u32| meta(m).owned(c.euid, c.egid);
    let w = Arc::downgrade(g);
    let file = |name: &str, mode: u32, gen: Box<dyn Fn() -> Result<Vec<u8>, Errno> + Send + Sync>| {
        (name.as_bytes().to_vec(), SynthFile::new(owned(mode), gen) as InodeRef)
    };
    let link = |name: &str, target: Box<dyn Fn() -> Result<Vec<u8>, Errno> + Send + Sync>| {
        (name.as_bytes().to_vec(), SynthLink::new(owned(0), target, false) as InodeRef)
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
        file("stat", 0o444, Box::new(move || with_view(&w8, |g, v| Ok(stat(g, &v))))),
        file("status", 0o444, Box::new(move || with_view(&w9, |g, v| Ok(status(g, &v))))),
        file(
            "comm",
            0o644,
            Box::new(move || with_view(&w10, |_, v| Ok(format!("{}\n", comm_of(&v)).into_bytes()))),
        ),
    ];
    SynthDir::new(owned(0o555), Box::new(move || entries.clone()), false)
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
            out.push((n.to_string().into_bytes(), SynthLink::new(m, Box::new(target), false) as InodeRef));
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
        out.push_str(line.trim_end_matches(' '));
        out.push('\n');
    }
    out.into_bytes()
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

fn stat(g: &ThreadGroup, v: &ProcessView) -> Vec<u8> {
    let state = if g.tgid == crate::kernel::current() { 'R' } else { 'S' };
    let (vsize, start_brk, brk) = v.mm.as_ref().map_or((0, 0, 0), |m| {
        let vsize: u64 = m.vmas().iter().map(|x| x.end - x.start).sum();
        (vsize, m.brk_start(), m.current_brk())
    });
    let a = v.mm.as_ref().map(|m| m.meta().args).unwrap_or_default();
    let (ignored, caught) = sig_words(g);
    // CPU times in clock ticks (USER_HZ, 100).
    let cpu = g.cpu_times();
    let ticks = |d: std::time::Duration| d.as_millis() / 10;
    let s = format!(
        // The 52 fields of proc(5); those the sentry does not track are 0.
        "{pid} ({comm}) {state} {ppid} {pgrp} {sid} 0 -1 4194560 0 0 0 0 {utime} {stime} {cutime} {cstime} 20 0 \
         {threads} 0 0 {vsize} 0 \
         18446744073709551615 0 0 0 0 0 0 0 {ignored} {caught} 0 0 0 17 0 0 0 0 0 0 0 0 {start_brk} {arg_start} \
         {arg_end} {env_start} {env_end} 0\n",
        pid = g.tgid,
        comm = comm_of(v),
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

fn status(g: &ThreadGroup, v: &ProcessView) -> Vec<u8> {
    let c = g.creds();
    let mut s = String::new();
    let state = if g.tgid == crate::kernel::current() { "R (running)" } else { "S (sleeping)" };
    let _ = writeln!(s, "Name:\t{}", comm_of(v));
    let _ = writeln!(s, "Umask:\t{:04o}", g.umask.load(std::sync::atomic::Ordering::Relaxed));
    let _ = writeln!(s, "State:\t{state}");
    let _ = writeln!(s, "Tgid:\t{}\nNgid:\t0\nPid:\t{}\nPPid:\t{}\nTracerPid:\t0", g.tgid, g.tgid, g.ppid());
    let _ = writeln!(s, "Uid:\t{}\t{}\t{}\t{}", c.ruid, c.euid, c.suid, c.fsuid);
    let _ = writeln!(s, "Gid:\t{}\t{}\t{}\t{}", c.rgid, c.egid, c.sgid, c.fsgid);
    let fd_size = v.fds.as_ref().map_or(64, |f| f.list().last().map_or(64, |(n, _)| (n + 64) / 64 * 64));
    let _ = writeln!(s, "FDSize:\t{fd_size}");
    let groups: Vec<String> = c.groups.iter().map(ToString::to_string).collect();
    let _ = writeln!(s, "Groups:\t{}", groups.join(" "));
    if let Some(m) = &v.mm {
        let kb = |b: u64| b / 1024;
        let vmas = m.vmas();
        let size: u64 = vmas.iter().map(|x| x.end - x.start).sum();
        let stack: u64 = vmas.iter().filter(|x| x.name == VmaName::Stack).map(|x| x.end - x.start).sum();
        let data = m.current_brk().saturating_sub(m.brk_start());
        let _ = writeln!(s, "VmPeak:\t{:8} kB\nVmSize:\t{:8} kB", kb(size), kb(size));
        let _ = writeln!(s, "VmData:\t{:8} kB\nVmStk:\t{:8} kB", kb(data), kb(stack));
    }
    let _ = writeln!(s, "Threads:\t{}", g.task_count().max(1));
    let (ignored, caught) = sig_words(g);
    let _ = writeln!(s, "SigQ:\t0/{}", g.rlimit(11).cur);
    let _ = writeln!(s, "SigPnd:\t{:016x}\nShdPnd:\t{:016x}\nSigBlk:\t{:016x}", 0, 0, 0);
    let _ = writeln!(s, "SigIgn:\t{ignored:016x}\nSigCgt:\t{caught:016x}");
    let _ = writeln!(
        s,
        "CapInh:\t{:016x}\nCapPrm:\t{:016x}\nCapEff:\t{:016x}",
        c.cap_inheritable, c.cap_permitted, c.cap_effective
    );
    let _ = writeln!(s, "CapBnd:\t{:016x}\nCapAmb:\t{:016x}", c.cap_bounding, 0);
    let nnp = u8::from(g.no_new_privs.load(std::sync::atomic::Ordering::Relaxed));
    let _ = writeln!(s, "NoNewPrivs:\t{nnp}\nSeccomp:\t0\nSeccomp_filters:\t0");
    let cpus = g.kernel.cpus.max(1);
    let _ = writeln!(s, "Cpus_allowed_list:\t0-{}", cpus - 1);
    s.into_bytes()
}
