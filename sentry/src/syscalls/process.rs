//! Process and thread identity, limits, `prctl`/`arch_prctl`, `uname`,
//! resource usage, randomness.

use std::sync::atomic::Ordering;

use rvisor_syscalls::abi::{Rlimit, Rusage, Sysinfo, Timeval, Tms, Utsname};
use rvisor_syscalls::Errno;

use super::{Addr, SysResult};
use crate::kernel::creds::Credentials;
use crate::kernel::thread_group::RLIM_NLIMITS;
use crate::kernel::{ExitStatus, Task, KERNEL_RELEASE, KERNEL_VERSION};

fn id(v: i32) -> u64 {
    u64::from(v.cast_unsigned())
}

pub fn exit(t: &mut Task, code: i32) -> SysResult {
    t.exit = Some(ExitStatus::Code(code.to_le_bytes()[0]));
    Ok(0)
}

pub fn exit_group(t: &mut Task, code: i32) -> SysResult {
    let status = ExitStatus::Code(code.to_le_bytes()[0]);
    t.tg().begin_exit(status);
    t.exit = Some(status);
    Ok(0)
}

pub fn getpid(t: &mut Task) -> SysResult {
    Ok(id(t.tgid()))
}

pub fn gettid(t: &mut Task) -> SysResult {
    Ok(id(t.tid()))
}

pub fn getppid(t: &mut Task) -> SysResult {
    Ok(id(t.tg().ppid()))
}

fn creds(t: &Task) -> Credentials {
    t.tg().creds()
}

pub fn getuid(t: &mut Task) -> SysResult {
    Ok(u64::from(creds(t).ruid))
}

pub fn geteuid(t: &mut Task) -> SysResult {
    Ok(u64::from(creds(t).euid))
}

pub fn getgid(t: &mut Task) -> SysResult {
    Ok(u64::from(creds(t).rgid))
}

pub fn getegid(t: &mut Task) -> SysResult {
    Ok(u64::from(creds(t).egid))
}

pub fn getresuid(t: &mut Task, r: Addr, e: Addr, s: Addr) -> SysResult {
    let c = creds(t);
    t.mm.write_obj(r, &c.ruid)?;
    t.mm.write_obj(e, &c.euid)?;
    t.mm.write_obj(s, &c.suid)?;
    Ok(0)
}

pub fn getresgid(t: &mut Task, r: Addr, e: Addr, s: Addr) -> SysResult {
    let c = creds(t);
    t.mm.write_obj(r, &c.rgid)?;
    t.mm.write_obj(e, &c.egid)?;
    t.mm.write_obj(s, &c.sgid)?;
    Ok(0)
}

pub fn getgroups(t: &mut Task, size: i32, list: Addr) -> SysResult {
    let c = creds(t);
    let n = c.groups.len();
    if size < 0 {
        return Err(Errno::EINVAL);
    }
    if size == 0 {
        return Ok(n as u64);
    }
    if usize::try_from(size).unwrap_or(0) < n {
        return Err(Errno::EINVAL);
    }
    let bytes: Vec<u8> = c.groups.iter().flat_map(|g| g.to_le_bytes()).collect();
    t.mm.copy_out(list, &bytes)?;
    Ok(n as u64)
}

/// Changes the process's credentials with `f` (on a copy, committed only
/// if it succeeds). A change of effective ids makes the process
/// undumpable, as Linux's `commit_creds` does.
fn change_creds<R>(t: &Task, f: impl FnOnce(&mut Credentials) -> Result<R, Errno>) -> Result<R, Errno> {
    let mut c = t.tg().creds.lock().unwrap_or_else(|p| p.into_inner());
    let mut new = c.clone();
    let r = f(&mut new)?;
    if new.euid != c.euid || new.egid != c.egid || new.fsuid != c.fsuid || new.fsgid != c.fsgid {
        t.tg().dumpable.store(0, Ordering::Relaxed);
    }
    *c = new;
    Ok(r)
}

pub fn setuid(t: &mut Task, uid: u32) -> SysResult {
    change_creds(t, |c| c.setuid(uid)).map(|()| 0)
}

pub fn setgid(t: &mut Task, gid: u32) -> SysResult {
    change_creds(t, |c| c.setgid(gid)).map(|()| 0)
}

pub fn setreuid(t: &mut Task, r: u32, e: u32) -> SysResult {
    change_creds(t, |c| c.setreuid(r, e)).map(|()| 0)
}

pub fn setregid(t: &mut Task, r: u32, e: u32) -> SysResult {
    change_creds(t, |c| c.setregid(r, e)).map(|()| 0)
}

pub fn setresuid(t: &mut Task, r: u32, e: u32, s: u32) -> SysResult {
    change_creds(t, |c| c.setresuid(r, e, s)).map(|()| 0)
}

pub fn setresgid(t: &mut Task, r: u32, e: u32, s: u32) -> SysResult {
    change_creds(t, |c| c.setresgid(r, e, s)).map(|()| 0)
}

pub fn setfsuid(t: &mut Task, uid: u32) -> SysResult {
    change_creds(t, |c| Ok(c.setfsuid(uid))).map(u64::from)
}

pub fn setfsgid(t: &mut Task, gid: u32) -> SysResult {
    change_creds(t, |c| Ok(c.setfsgid(gid))).map(u64::from)
}

/// `NGROUPS_MAX`.
const NGROUPS_MAX: i32 = 65536;

pub fn setgroups(t: &mut Task, size: i32, list: Addr) -> SysResult {
    if !(0..=NGROUPS_MAX).contains(&size) {
        return Err(Errno::EINVAL);
    }
    let n = usize::try_from(size).unwrap_or(0);
    let bytes = if n > 0 { t.mm.read_bytes(list, n * 4)? } else { Vec::new() };
    let mut groups: Vec<u32> =
        bytes.chunks_exact(4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
    groups.sort_unstable();
    change_creds(t, |c| c.setgroups(groups)).map(|()| 0)
}

/// `_LINUX_CAPABILITY_VERSION_1`, `_2`, `_3`.
const CAP_V1: u32 = 0x1998_0330;
const CAP_V2: u32 = 0x2007_1026;
const CAP_V3: u32 = 0x2008_0522;

/// Reads a capability header; `Ok((pid, u32 words per set))`, or
/// `EINVAL` with the preferred version written back.
fn cap_header(t: &Task, hdr: Addr) -> Result<(i32, usize), Errno> {
    let version: u32 = t.mm.read_obj(hdr)?;
    let pid: i32 = t.mm.read_obj(hdr + 4)?;
    match version {
        CAP_V1 => Ok((pid, 1)),
        CAP_V2 | CAP_V3 => Ok((pid, 2)),
        _ => {
            t.mm.write_obj(hdr, &CAP_V3)?;
            Err(Errno::EINVAL)
        }
    }
}

pub fn capget(t: &mut Task, hdr: Addr, data: Addr) -> SysResult {
    let (pid, words) = match cap_header(t, hdr) {
        Ok(v) => v,
        // Asking for the version: no data pointer.
        Err(Errno::EINVAL) if data == 0 => return Ok(0),
        Err(e) => return Err(e),
    };
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    let tg = if pid == 0 { t.tg().clone() } else { t.kernel.task(pid).ok_or(Errno::ESRCH)?.tg.clone() };
    if data == 0 {
        return Ok(0);
    }
    let c = tg.creds();
    let mut out = Vec::with_capacity(words * 12);
    for w in 0..words {
        for set in [c.cap_effective, c.cap_permitted, c.cap_inheritable] {
            let v = u32::try_from((set >> (32 * w)) & 0xffff_ffff).unwrap_or(0);
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    t.mm.copy_out(data, &out)?;
    Ok(0)
}

pub fn capset(t: &mut Task, hdr: Addr, data: Addr) -> SysResult {
    let (pid, words) = cap_header(t, hdr)?;
    if pid != 0 && pid != t.tid() && pid != t.tgid() {
        return Err(Errno::EPERM);
    }
    let raw = t.mm.read_bytes(data, words * 12)?;
    let word = |i: usize| u64::from(u32::from_le_bytes([raw[i], raw[i + 1], raw[i + 2], raw[i + 3]]));
    let (mut e, mut p, mut i) = (0u64, 0u64, 0u64);
    for w in 0..words {
        let b = w * 12;
        e |= word(b) << (32 * w);
        p |= word(b + 4) << (32 * w);
        i |= word(b + 8) << (32 * w);
    }
    change_creds(t, |c| c.capset(e, p, i)).map(|()| 0)
}

/// `PRIO_PROCESS`, `PRIO_PGRP`, `PRIO_USER`.
fn prio_targets(
    t: &Task,
    which: i32,
    who: i32,
) -> Result<Vec<std::sync::Arc<crate::kernel::ThreadGroup>>, Errno> {
    let all = t.kernel.thread_groups().into_iter().filter(|g| g.task_count() > 0);
    let v: Vec<_> = match which {
        0 => {
            if who == 0 {
                vec![t.tg().clone()]
            } else {
                t.kernel.task(who).map(|x| x.tg.clone()).into_iter().collect()
            }
        }
        1 => {
            let pg = if who == 0 { t.tg().pgid.load(Ordering::Relaxed) } else { who };
            all.filter(|g| g.pgid.load(Ordering::Relaxed) == pg).collect()
        }
        2 => {
            let uid = if who == 0 { creds(t).euid } else { who.cast_unsigned() };
            all.filter(|g| g.creds().ruid == uid).collect()
        }
        _ => return Err(Errno::EINVAL),
    };
    if v.is_empty() {
        return Err(Errno::ESRCH);
    }
    Ok(v)
}

pub fn getpriority(t: &mut Task, which: i32, who: i32) -> SysResult {
    let best = prio_targets(t, which, who)?.iter().map(|g| g.nice.load(Ordering::Relaxed)).min().unwrap_or(0);
    // The kernel's encoding: 20 - nice (1..=40); libc turns it back.
    Ok(u64::try_from(20 - best).unwrap_or(20))
}

/// `CAP_SYS_NICE`.
const CAP_SYS_NICE: u64 = 1 << 23;

pub fn setpriority(t: &mut Task, which: i32, who: i32, prio: i32) -> SysResult {
    let nice = prio.clamp(-20, 19);
    let me = creds(t);
    let mut err = None;
    for g in prio_targets(t, which, who)? {
        let c = g.creds();
        if me.euid != 0 && me.euid != c.euid && me.euid != c.ruid && !me.capable(CAP_SYS_NICE) {
            err = Some(Errno::EPERM);
            continue;
        }
        let cur = g.nice.load(Ordering::Relaxed);
        // Lowering the nice value needs CAP_SYS_NICE or RLIMIT_NICE room.
        let floor = 20 - i32::try_from(g.rlimit(13).cur.min(40)).unwrap_or(0);
        if nice < cur && nice < floor && !me.capable(CAP_SYS_NICE) {
            err = Some(Errno::EACCES);
            continue;
        }
        g.nice.store(nice, Ordering::Relaxed);
    }
    err.map_or(Ok(0), Err)
}

pub fn getpgrp(t: &mut Task) -> SysResult {
    Ok(id(t.tg().pgid.load(Ordering::Relaxed)))
}

fn target_group(t: &Task, pid: i32) -> Result<std::sync::Arc<crate::kernel::ThreadGroup>, Errno> {
    if pid < 0 {
        return Err(Errno::ESRCH);
    }
    if pid == 0 || pid == t.tgid() {
        return Ok(t.tg().clone());
    }
    t.kernel.thread_group(pid).ok_or(Errno::ESRCH)
}

pub fn getpgid(t: &mut Task, pid: i32) -> SysResult {
    Ok(id(target_group(t, pid)?.pgid.load(Ordering::Relaxed)))
}

pub fn getsid(t: &mut Task, pid: i32) -> SysResult {
    Ok(id(target_group(t, pid)?.sid.load(Ordering::Relaxed)))
}

pub fn set_tid_address(t: &mut Task, addr: Addr) -> SysResult {
    t.clear_child_tid = addr;
    Ok(id(t.tid()))
}

/// `sizeof(struct robust_list_head)`.
const ROBUST_LIST_HEAD_SIZE: u64 = 24;

pub fn set_robust_list(t: &mut Task, head: Addr, len: u64) -> SysResult {
    if len != ROBUST_LIST_HEAD_SIZE {
        return Err(Errno::EINVAL);
    }
    t.robust_list = (head, len);
    Ok(0)
}

pub fn get_robust_list(t: &mut Task, pid: i32, head: Addr, len: Addr) -> SysResult {
    if pid != 0 && pid != t.tid() {
        return Err(if t.kernel.task(pid).is_some() { Errno::EPERM } else { Errno::ESRCH });
    }
    t.mm.write_obj(head, &t.robust_list.0)?;
    t.mm.write_obj(len, &t.robust_list.1)?;
    Ok(0)
}

pub fn arch_prctl(t: &mut Task, code: i32, addr: u64) -> SysResult {
    const ARCH_SET_GS: i32 = 0x1001;
    const ARCH_SET_FS: i32 = 0x1002;
    const ARCH_GET_FS: i32 = 0x1003;
    const ARCH_GET_GS: i32 = 0x1004;
    const ARCH_GET_CPUID: i32 = 0x1011;
    const ARCH_SET_CPUID: i32 = 0x1012;
    match code {
        ARCH_SET_FS | ARCH_SET_GS => {
            // Linux: the base must be a user address.
            if addr >= 0x7fff_ffff_f000 {
                return Err(Errno::EPERM);
            }
            if code == ARCH_SET_FS {
                t.arch.regs.fs_base = addr;
            } else {
                t.arch.regs.gs_base = addr;
            }
            Ok(0)
        }
        ARCH_GET_FS => {
            t.mm.write_obj(addr, &t.arch.regs.fs_base)?;
            Ok(0)
        }
        ARCH_GET_GS => {
            t.mm.write_obj(addr, &t.arch.regs.gs_base)?;
            Ok(0)
        }
        // CPUID is never made to fault.
        ARCH_GET_CPUID => Ok(1),
        ARCH_SET_CPUID => Err(Errno::ENODEV),
        _ => Err(Errno::EINVAL),
    }
}

fn rlimit_target(t: &Task, pid: i32) -> Result<std::sync::Arc<crate::kernel::ThreadGroup>, Errno> {
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    if pid == 0 || pid == t.tgid() {
        return Ok(t.tg().clone());
    }
    t.kernel.task(pid).map(|x| x.tg.clone()).ok_or(Errno::ESRCH)
}

/// `CAP_SYS_RESOURCE`.
const CAP_SYS_RESOURCE: u64 = 1 << 24;

pub fn prlimit64(t: &mut Task, pid: i32, resource: u32, new: Addr, old: Addr) -> SysResult {
    let r = usize::try_from(resource).map_err(|_| Errno::EINVAL)?;
    if r >= RLIM_NLIMITS {
        return Err(Errno::EINVAL);
    }
    let tg = rlimit_target(t, pid)?;
    let new_lim: Option<Rlimit> = if new != 0 { Some(t.mm.read_obj(new)?) } else { None };
    if let Some(n) = new_lim {
        if n.cur > n.max {
            return Err(Errno::EINVAL);
        }
        if r == 7 && n.max > crate::vfs::NR_OPEN as u64 {
            return Err(Errno::EPERM);
        }
    }
    let prev = {
        let mut lims = tg.rlimits.lock().unwrap_or_else(|p| p.into_inner());
        let prev = lims[r];
        if let Some(n) = new_lim {
            let privileged = creds(t).cap_effective & CAP_SYS_RESOURCE != 0;
            if n.max > prev.max && !privileged {
                return Err(Errno::EPERM);
            }
            lims[r] = n;
        }
        prev
    };
    if old != 0 {
        t.mm.write_obj(old, &prev)?;
    }
    Ok(0)
}

pub fn getrlimit(t: &mut Task, resource: u32, old: Addr) -> SysResult {
    if old == 0 {
        return Err(Errno::EFAULT);
    }
    prlimit64(t, 0, resource, 0, old)
}

pub fn setrlimit(t: &mut Task, resource: u32, new: Addr) -> SysResult {
    if new == 0 {
        return Err(Errno::EFAULT);
    }
    prlimit64(t, 0, resource, new, 0)
}

pub fn uname(t: &mut Task, buf: Addr) -> SysResult {
    let uts = t.kernel.uts.read().unwrap_or_else(|p| p.into_inner()).clone();
    let u = Utsname {
        sysname: Utsname::field("Linux"),
        nodename: Utsname::field(&uts.hostname),
        release: Utsname::field(KERNEL_RELEASE),
        version: Utsname::field(KERNEL_VERSION),
        machine: Utsname::field("x86_64"),
        domainname: Utsname::field(&uts.domainname),
    };
    t.mm.write_obj(buf, &u)?;
    Ok(0)
}

pub fn umask(t: &mut Task, mask: u32) -> SysResult {
    Ok(u64::from(t.tg().umask.swap(mask & 0o777, Ordering::Relaxed)))
}

pub fn prctl(t: &mut Task, option: i32, a2: u64, a3: u64, a4: u64, a5: u64) -> SysResult {
    const PR_SET_PDEATHSIG: i32 = 1;
    const PR_GET_PDEATHSIG: i32 = 2;
    const PR_GET_DUMPABLE: i32 = 3;
    const PR_SET_DUMPABLE: i32 = 4;
    const PR_SET_NAME: i32 = 15;
    const PR_GET_NAME: i32 = 16;
    const PR_GET_SECCOMP: i32 = 21;
    const PR_CAPBSET_READ: i32 = 23;
    const PR_GET_KEEPCAPS: i32 = 7;
    const PR_SET_KEEPCAPS: i32 = 8;
    const PR_CAPBSET_DROP: i32 = 24;
    const PR_SET_CHILD_SUBREAPER: i32 = 36;
    const PR_GET_CHILD_SUBREAPER: i32 = 37;
    const PR_SET_NO_NEW_PRIVS: i32 = 38;
    const PR_GET_NO_NEW_PRIVS: i32 = 39;
    match option {
        PR_SET_NAME => {
            let mut name = [0u8; 16];
            let s = match t.mm.read_cstring(a2, 15) {
                Ok(s) => s,
                Err(Errno::ENAMETOOLONG) => t.mm.read_bytes(a2, 15)?,
                Err(e) => return Err(e),
            };
            name[..s.len()].copy_from_slice(&s);
            t.comm = name;
            *t.shared.comm.lock().unwrap_or_else(|p| p.into_inner()) = name;
            if t.tid() == t.tgid() {
                t.tg().view.lock().unwrap_or_else(|p| p.into_inner()).comm = name;
            }
            Ok(0)
        }
        PR_GET_NAME => {
            t.mm.copy_out(a2, &t.comm)?;
            Ok(0)
        }
        PR_SET_PDEATHSIG => {
            if a2 > 64 {
                return Err(Errno::EINVAL);
            }
            t.tg().pdeathsig.store(i32::try_from(a2).unwrap_or(0), Ordering::Relaxed);
            Ok(0)
        }
        PR_GET_PDEATHSIG => {
            t.mm.write_obj(a2, &t.tg().pdeathsig.load(Ordering::Relaxed))?;
            Ok(0)
        }
        PR_GET_DUMPABLE => Ok(u64::from(t.tg().dumpable.load(Ordering::Relaxed))),
        PR_SET_DUMPABLE => {
            if a2 > 1 {
                return Err(Errno::EINVAL);
            }
            t.tg().dumpable.store(u8::try_from(a2).unwrap_or(0), Ordering::Relaxed);
            Ok(0)
        }
        PR_GET_KEEPCAPS => Ok(u64::from(creds(t).keep_caps)),
        PR_SET_KEEPCAPS => {
            if a2 > 1 {
                return Err(Errno::EINVAL);
            }
            change_creds(t, |c| {
                c.keep_caps = a2 == 1;
                Ok(0)
            })
        }
        PR_CAPBSET_DROP => {
            if a2 > 40 {
                return Err(Errno::EINVAL);
            }
            change_creds(t, |c| {
                if !c.capable(crate::kernel::creds::CAP_SETPCAP) {
                    return Err(Errno::EPERM);
                }
                c.cap_bounding &= !(1 << a2);
                Ok(0)
            })
        }
        PR_SET_CHILD_SUBREAPER => {
            t.tg().subreaper.store(a2 != 0, Ordering::Relaxed);
            Ok(0)
        }
        PR_GET_CHILD_SUBREAPER => {
            t.mm.write_obj(a2, &i32::from(t.tg().subreaper.load(Ordering::Relaxed)))?;
            Ok(0)
        }
        PR_GET_SECCOMP => Ok(0),
        PR_CAPBSET_READ => {
            if a2 > 40 {
                return Err(Errno::EINVAL);
            }
            Ok((creds(t).cap_bounding >> a2) & 1)
        }
        PR_SET_NO_NEW_PRIVS => {
            if a2 != 1 || a3 != 0 || a4 != 0 || a5 != 0 {
                return Err(Errno::EINVAL);
            }
            t.tg().no_new_privs.store(true, Ordering::Relaxed);
            Ok(0)
        }
        PR_GET_NO_NEW_PRIVS => Ok(u64::from(t.tg().no_new_privs.load(Ordering::Relaxed))),
        _ => Err(Errno::EINVAL),
    }
}

pub fn sched_yield(_t: &mut Task) -> SysResult {
    std::thread::yield_now();
    Ok(0)
}

/// CPUs the sandbox has: those the sentry could run on when it booted.
fn sandbox_cpus(t: &Task) -> usize {
    t.kernel.cpus
}

pub fn sched_getaffinity(t: &mut Task, pid: i32, len: u64, mask: Addr) -> SysResult {
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    if pid != 0 && t.kernel.task(pid).is_none() {
        return Err(Errno::ESRCH);
    }
    let n = sandbox_cpus(t);
    let bytes = n.div_ceil(64) * 8;
    if usize::try_from(len).unwrap_or(usize::MAX) < bytes || !len.is_multiple_of(8) {
        return Err(Errno::EINVAL);
    }
    let mut m = vec![0u8; bytes];
    for c in 0..n {
        m[c / 8] |= 1 << (c % 8);
    }
    t.mm.copy_out(mask, &m)?;
    Ok(bytes as u64)
}

pub fn sched_setaffinity(t: &mut Task, pid: i32, len: u64, mask: Addr) -> SysResult {
    if pid < 0 {
        return Err(Errno::EINVAL);
    }
    if pid != 0 && t.kernel.task(pid).is_none() {
        return Err(Errno::ESRCH);
    }
    let n = usize::try_from(len.min(128)).unwrap_or(0);
    let m = t.mm.read_bytes(mask, n)?;
    let cpus = sandbox_cpus(t);
    let any = (0..cpus).any(|c| m.get(c / 8).is_some_and(|b| b & (1 << (c % 8)) != 0));
    // Placement is the sentry's: accepted if it leaves a CPU to run on.
    if any {
        Ok(0)
    } else {
        Err(Errno::EINVAL)
    }
}

pub fn getcpu(t: &mut Task, cpu: Addr, node: Addr, _cache: Addr) -> SysResult {
    let c = u32::try_from(rustix::thread::sched_getcpu()).unwrap_or(0);
    if cpu != 0 {
        t.mm.write_obj(cpu, &c)?;
    }
    if node != 0 {
        t.mm.write_obj(node, &0u32)?;
    }
    Ok(0)
}

pub fn rseq(_t: &mut Task, _area: Addr, _len: u32, _flags: i32, _sig: u32) -> SysResult {
    // Restartable sequences are not offered; glibc falls back.
    Err(Errno::ENOSYS)
}

pub fn getrandom(t: &mut Task, buf: Addr, len: u64, flags: u32) -> SysResult {
    const GRND_NONBLOCK: u32 = 1;
    const GRND_RANDOM: u32 = 2;
    const GRND_INSECURE: u32 = 4;
    if flags & !(GRND_NONBLOCK | GRND_RANDOM | GRND_INSECURE) != 0
        || flags & (GRND_RANDOM | GRND_INSECURE) == GRND_RANDOM | GRND_INSECURE
    {
        return Err(Errno::EINVAL);
    }
    let n = usize::try_from(len.min(1 << 20)).unwrap_or(0);
    let mut b = vec![0u8; n];
    rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty())
        .map_err(|e| Errno::new(e.raw_os_error()).unwrap_or(Errno::EIO))?;
    t.mm.copy_out(buf, &b)?;
    Ok(n as u64)
}

/// A `struct rusage` with these times.
pub(crate) fn rusage_of(user: std::time::Duration, sys: std::time::Duration) -> Rusage {
    Rusage { utime: Timeval::from_duration(user), stime: Timeval::from_duration(sys), ..Rusage::default() }
}

pub fn getrusage(t: &mut Task, who: i32, usage: Addr) -> SysResult {
    const RUSAGE_SELF: i32 = 0;
    const RUSAGE_CHILDREN: i32 = -1;
    const RUSAGE_THREAD: i32 = 1;
    let maxrss = i64::try_from(t.kernel.mf.committed() / 1024).unwrap_or(0);
    let r = match who {
        RUSAGE_SELF => {
            // User: the application's time in its address space; system:
            // the sentry's threads serving it.
            let c = t.tg().cpu_times();
            Rusage { maxrss, ..rusage_of(c.user, c.sys) }
        }
        RUSAGE_THREAD => {
            let (user, sys) = super::time::thread_cpu_times(t);
            Rusage { maxrss, ..rusage_of(user, sys) }
        }
        RUSAGE_CHILDREN => {
            let c = t.tg().cpu_times();
            rusage_of(c.child_user, c.child_sys)
        }
        _ => return Err(Errno::EINVAL),
    };
    t.mm.write_obj(usage, &r)?;
    Ok(0)
}

pub fn times(t: &mut Task, buf: Addr) -> SysResult {
    let c = t.tg().cpu_times();
    let ticks = |d: std::time::Duration| i64::try_from(d.as_millis() / 10).unwrap_or(i64::MAX);
    if buf != 0 {
        let tms = Tms {
            utime: ticks(c.user),
            stime: ticks(c.sys),
            cutime: ticks(c.child_user),
            cstime: ticks(c.child_sys),
        };
        t.mm.write_obj(buf, &tms)?;
    }
    // Clock ticks since an arbitrary point: the host's boot, as Linux.
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    Ok((now.tv_sec * 100 + now.tv_nsec / 10_000_000).cast_unsigned())
}

pub fn sysinfo(t: &mut Task, info: Addr) -> SysResult {
    let total = t.kernel.mem_total();
    let used = t.kernel.mf.committed();
    let s = Sysinfo {
        uptime: i64::try_from(t.kernel.boot.elapsed().as_secs()).unwrap_or(0),
        totalram: total,
        freeram: total.saturating_sub(used),
        procs: u16::try_from(t.kernel.task_count()).unwrap_or(u16::MAX),
        mem_unit: 1,
        ..Sysinfo::default()
    };
    t.mm.write_obj(info, &s)?;
    Ok(0)
}
