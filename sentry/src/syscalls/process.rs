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
    Ok(id(t.tg().ppid))
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

pub fn setsid(t: &mut Task) -> SysResult {
    let tg = t.tg();
    if tg.pgid.load(Ordering::Relaxed) == tg.tgid {
        return Err(Errno::EPERM);
    }
    tg.pgid.store(tg.tgid, Ordering::Relaxed);
    tg.sid.store(tg.tgid, Ordering::Relaxed);
    Ok(id(tg.tgid))
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
            // Recorded; parents dying inside the sandbox come with the
            // processes issue.
            Ok(0)
        }
        PR_GET_PDEATHSIG => {
            t.mm.write_obj(a2, &0i32)?;
            Ok(0)
        }
        PR_GET_DUMPABLE => Ok(1),
        PR_SET_DUMPABLE => {
            if a2 > 1 {
                return Err(Errno::EINVAL);
            }
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

fn cpu_time() -> Timeval {
    let ts = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Timeval { tv_sec: ts.tv_sec, tv_usec: ts.tv_nsec / 1000 }
}

pub fn getrusage(t: &mut Task, who: i32, usage: Addr) -> SysResult {
    const RUSAGE_SELF: i32 = 0;
    const RUSAGE_CHILDREN: i32 = -1;
    const RUSAGE_THREAD: i32 = 1;
    let mut r = Rusage::default();
    match who {
        RUSAGE_SELF | RUSAGE_THREAD => {
            // The sentry thread's time serving the task (the application's
            // own user time runs in its stub and is not counted yet).
            r.stime = cpu_time();
            r.maxrss = i64::try_from(t.kernel.mf.committed() / 1024).unwrap_or(0);
        }
        RUSAGE_CHILDREN => {}
        _ => return Err(Errno::EINVAL),
    }
    t.mm.write_obj(usage, &r)?;
    Ok(0)
}

pub fn times(t: &mut Task, buf: Addr) -> SysResult {
    let tv = cpu_time();
    let ticks = |tv: Timeval| tv.tv_sec * 100 + tv.tv_usec / 10_000;
    if buf != 0 {
        t.mm.write_obj(buf, &Tms { utime: 0, stime: ticks(tv), cutime: 0, cstime: 0 })?;
    }
    // Clock ticks since an arbitrary point: the host's boot, as Linux.
    let now = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
    Ok((now.tv_sec * 100 + now.tv_nsec / 10_000_000).cast_unsigned())
}

pub fn sysinfo(t: &mut Task, info: Addr) -> SysResult {
    let total = t.kernel.mf_size();
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
