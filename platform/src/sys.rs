//! Thin wrappers over the host system calls the platform makes. Each
//! `unsafe` block here is one libc call with plain-value or local-buffer
//! arguments.

use crate::{Error, Regs, Result};

/// `ptrace(2)` with integer arguments.
pub fn ptrace(req: libc::c_uint, tid: i32, addr: usize, data: usize) -> Result<i64> {
    // SAFETY: the requests the platform makes with integer arguments
    // (SEIZE, INTERRUPT, CONT, SYSEMU, DETACH, SETOPTIONS) read no memory.
    let r = unsafe { libc::ptrace(req, tid, addr, data) };
    if r < 0 {
        Err(Error::os("ptrace"))
    } else {
        Ok(r)
    }
}

/// `PTRACE_GETREGS`.
pub fn get_regs(tid: i32) -> Result<Regs> {
    let mut regs = Regs::default();
    // SAFETY: GETREGS writes one user_regs_struct, the size and layout of
    // `Regs` (checked at compile time in arch.rs).
    let r = unsafe {
        libc::ptrace(libc::PTRACE_GETREGS, tid, 0usize, std::ptr::from_mut(&mut regs).cast::<libc::c_void>())
    };
    if r < 0 {
        return Err(Error::os("PTRACE_GETREGS"));
    }
    Ok(regs)
}

/// `PTRACE_SETREGS`.
pub fn set_regs(tid: i32, regs: &Regs) -> Result<()> {
    // SAFETY: SETREGS reads one user_regs_struct, the layout of `Regs`.
    let r = unsafe {
        libc::ptrace(libc::PTRACE_SETREGS, tid, 0usize, std::ptr::from_ref(regs).cast::<libc::c_void>())
    };
    if r < 0 {
        return Err(Error::os("PTRACE_SETREGS"));
    }
    Ok(())
}

/// `PTRACE_GETSIGINFO`.
pub fn get_siginfo(tid: i32) -> Result<libc::siginfo_t> {
    // SAFETY: siginfo_t is plain data; all-zero is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: GETSIGINFO writes one siginfo_t into `info`.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETSIGINFO,
            tid,
            0usize,
            std::ptr::from_mut(&mut info).cast::<libc::c_void>(),
        )
    };
    if r < 0 {
        return Err(Error::os("PTRACE_GETSIGINFO"));
    }
    Ok(info)
}

const NT_X86_XSTATE: usize = 0x202;

/// `PTRACE_GETREGSET(NT_X86_XSTATE)` into `buf`, which is resized to what
/// the kernel wrote.
pub fn get_xstate(tid: i32, buf: &mut Vec<u8>) -> Result<()> {
    buf.resize(crate::arch::xsave_size(), 0);
    let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
    // SAFETY: the kernel writes at most iov_len bytes at iov_base, which is
    // `buf`'s storage, and updates iov_len.
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_GETREGSET,
            tid,
            NT_X86_XSTATE,
            std::ptr::from_mut(&mut iov).cast::<libc::c_void>(),
        )
    };
    if r < 0 {
        return Err(Error::os("PTRACE_GETREGSET"));
    }
    let len = iov.iov_len;
    buf.truncate(len);
    Ok(())
}

/// `PTRACE_SETREGSET(NT_X86_XSTATE)` from `buf`.
pub fn set_xstate(tid: i32, buf: &[u8]) -> Result<()> {
    let mut iov = libc::iovec { iov_base: buf.as_ptr().cast_mut().cast(), iov_len: buf.len() };
    // SAFETY: the kernel reads at most iov_len bytes at iov_base (`buf`).
    let r = unsafe {
        libc::ptrace(
            libc::PTRACE_SETREGSET,
            tid,
            NT_X86_XSTATE,
            std::ptr::from_mut(&mut iov).cast::<libc::c_void>(),
        )
    };
    if r < 0 {
        return Err(Error::os("PTRACE_SETREGSET"));
    }
    Ok(())
}

/// `AUDIT_ARCH_X86_64`.
pub const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

/// The ABI of the system call a tracee is stopped at
/// (`PTRACE_GET_SYSCALL_INFO`).
pub fn syscall_arch(tid: i32) -> Result<u32> {
    // struct ptrace_syscall_info: op (u8), pad, arch (u32), …
    let mut info = [0u8; 88];
    // SAFETY: the kernel writes at most `info.len()` bytes into `info`.
    let r = unsafe { libc::ptrace(0x420e, tid, info.len(), info.as_mut_ptr().cast::<libc::c_void>()) };
    if r < 0 {
        return Err(Error::os("PTRACE_GET_SYSCALL_INFO"));
    }
    Ok(u32::from_le_bytes([info[4], info[5], info[6], info[7]]))
}

/// `waitpid(tid, __WALL | extra)`, retried on `EINTR`. Returns the pid
/// (0 with `WNOHANG` when nothing changed) and the status.
pub fn wait(tid: i32, extra: i32) -> Result<(i32, i32)> {
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes one int into `status`.
        let r = unsafe { libc::waitpid(tid, &mut status, libc::__WALL | extra) };
        if r >= 0 {
            return Ok((r, status));
        }
        let e = std::io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(Error::Os { op: "waitpid", err: e });
        }
    }
}

/// `tgkill(2)`.
pub fn tgkill(tgid: i32, tid: i32, sig: i32) -> Result<()> {
    // SAFETY: plain-value system call.
    let r = unsafe { libc::syscall(libc::SYS_tgkill, tgid, tid, sig) };
    if r < 0 {
        return Err(Error::os("tgkill"));
    }
    Ok(())
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: i32) -> Result<std::os::fd::OwnedFd> {
    // SAFETY: plain-value system call.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    if r < 0 {
        return Err(Error::os("pidfd_open"));
    }
    let fd = i32::try_from(r).map_err(|_| Error::Internal("pidfd".into()))?;
    // SAFETY: the kernel just returned this new descriptor; nothing else
    // owns it.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// `pidfd_getfd(2)`: a duplicate of descriptor `fd` of the process
/// `pidfd` names (close-on-exec).
pub fn pidfd_getfd(pidfd: std::os::fd::BorrowedFd<'_>, fd: i32) -> Result<std::os::fd::OwnedFd> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain-value system call.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), fd, 0) };
    if r < 0 {
        return Err(Error::os("pidfd_getfd"));
    }
    let fd = i32::try_from(r).map_err(|_| Error::Internal("pidfd_getfd".into()))?;
    // SAFETY: the kernel just returned this new descriptor; nothing else
    // owns it.
    Ok(unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) })
}

/// `pidfd_send_signal(2)` (signal 0: is the process alive?).
pub fn pidfd_send_signal(pidfd: std::os::fd::BorrowedFd<'_>, sig: i32) -> Result<()> {
    use std::os::fd::AsRawFd;
    // SAFETY: plain values; a null siginfo is allowed.
    let r = unsafe { libc::syscall(libc::SYS_pidfd_send_signal, pidfd.as_raw_fd(), sig, 0usize, 0) };
    if r < 0 {
        return Err(Error::os("pidfd_send_signal"));
    }
    Ok(())
}

/// `kill(2)`.
pub fn kill(pid: i32, sig: i32) -> Result<()> {
    // SAFETY: plain-value system call.
    let r = unsafe { libc::kill(pid, sig) };
    if r < 0 {
        return Err(Error::os("kill"));
    }
    Ok(())
}

/// The calling process's host pid.
pub fn getpid() -> i32 {
    // SAFETY: getpid has no arguments and cannot fail.
    unsafe { libc::getpid() }
}

/// The CPU the calling thread runs on.
pub fn current_cpu() -> Option<usize> {
    // SAFETY: sched_getcpu has no arguments.
    let c = unsafe { libc::sched_getcpu() };
    usize::try_from(c).ok()
}

/// Binds thread `tid` to `cpu`.
pub fn pin_to_cpu(tid: i32, cpu: usize) -> Result<()> {
    set_cpus(tid, &[cpu])
}

/// Lets thread `tid` (0: the caller) run on `cpus` only.
pub fn set_cpus(tid: i32, cpus: &[usize]) -> Result<()> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &cpu in cpus {
        if cpu >= libc::CPU_SETSIZE as usize {
            return Err(Error::Internal(format!("cpu {cpu} out of range")));
        }
        // SAFETY: `cpu` is below CPU_SETSIZE (checked above).
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: sched_setaffinity reads one cpu_set_t of the given size.
    let r = unsafe { libc::sched_setaffinity(tid, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    if r < 0 {
        return Err(Error::os("sched_setaffinity"));
    }
    Ok(())
}

/// The CPUs the calling thread may run on.
pub fn allowed_cpus() -> Result<Vec<usize>> {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: sched_getaffinity writes one cpu_set_t of the given size.
    let r = unsafe { libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) };
    if r < 0 {
        return Err(Error::os("sched_getaffinity"));
    }
    let n = usize::try_from(libc::CPU_SETSIZE).unwrap_or(1024);
    // SAFETY: every index is below CPU_SETSIZE.
    Ok((0..n).filter(|&c| unsafe { libc::CPU_ISSET(c, &set) }).collect())
}

/// The thread pointer (FS base) of the calling thread.
pub fn thread_pointer() -> usize {
    let tp: usize;
    // SAFETY: on x86_64 Linux the first word of the TCB is its own address
    // (TLS variant II); reading it through %fs has no side effects.
    unsafe {
        std::arch::asm!("mov {}, fs:0", out(reg) tp, options(nostack, readonly, preserves_flags));
    }
    tp
}

/// Reports a system call the process's seccomp filter trapped
/// (`SECCOMP_RET_TRAP`: `SIGSYS`) on standard error, then exits with
/// 128 + `SIGSYS`: a debugging aid for allowlists (only async-signal-safe
/// calls in the handler).
extern "C" fn report_sigsys(_sig: libc::c_int, info: *mut libc::siginfo_t, _ctx: *mut libc::c_void) {
    // SAFETY: the kernel passes a valid siginfo_t for SA_SIGINFO handlers;
    // for SIGSYS the word after si_addr (at byte 24) holds si_syscall.
    let nr = unsafe { *(info.cast::<u8>().add(24).cast::<i32>()) };
    let mut buf = *b"rvisor: seccomp trapped system call            \n";
    let mut n = nr.unsigned_abs();
    let mut at = 46;
    loop {
        buf[at] = b'0' + u8::try_from(n % 10).unwrap_or(0);
        n /= 10;
        if n == 0 || at == 36 {
            break;
        }
        at -= 1;
    }
    // SAFETY: write(2) and _exit(2) are async-signal-safe; the buffer is
    // a local.
    unsafe {
        libc::write(2, buf.as_ptr().cast(), buf.len());
        libc::_exit(128 + libc::SIGSYS);
    }
}

/// Installs the `SIGSYS` reporter (see [`report_sigsys`]).
pub fn report_seccomp_traps() {
    // SAFETY: a zeroed sigaction with a valid handler and SA_SIGINFO is a
    // valid argument; the handler only makes async-signal-safe calls.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = report_sigsys as *const () as usize;
        sa.sa_flags = libc::SA_SIGINFO;
        libc::sigaction(libc::SIGSYS, &sa, std::ptr::null_mut());
    }
}

/// Fixes glibc's malloc arena limit (`M_ARENA_MAX`). Without it, glibc
/// computes the limit the first time threads contend for an arena, by
/// reading `/sys/devices/system/cpu/online`: an `openat` a confined
/// process may not make (and may make at any moment). Fewer arenas also
/// keep the sentry's memory small. Call it before confinement.
///
/// Also fixes the mmap threshold at its default (128 KiB): glibc raises it
/// after each large free, and large buffers (the gofer's 192 KiB message
/// buffers) then come zeroed from a heap, every page touched; mapped
/// fresh, only the pages a message fills are.
pub fn limit_malloc_arenas(max: i32) {
    // SAFETY: mallopt takes two ints and changes only malloc's parameters.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, max);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 << 10);
    }
}

/// This binary's own code and read-only data: `[start, end)`, page
/// aligned.
fn own_code() -> (usize, usize) {
    extern "C" {
        static __executable_start: u8;
        static etext: u8;
    }
    let (start, end) = (std::ptr::addr_of!(__executable_start) as usize, std::ptr::addr_of!(etext) as usize);
    let page = 4096;
    (start & !(page - 1), (end + page - 1) & !(page - 1))
}

/// Once start-up is over: drops this process's mappings of its own code
/// (`MADV_DONTNEED` on a clean, read-only file mapping: the pages stay in
/// the page cache and the ones still used fault back in, one by one) and
/// returns malloc's free memory to the host. What start-up alone touched
/// (argument parsing, spec decoding, filter compilation) then costs the
/// sandbox nothing. Best effort.
pub fn trim_after_startup() {
    let (s, e) = own_code();
    // SAFETY: the range is this binary's read-only, executable image
    // (never written), so dropping the mapping of its pages loses nothing;
    // malloc_trim only releases free memory.
    unsafe {
        if e > s {
            libc::madvise(s as *mut libc::c_void, e - s, libc::MADV_DONTNEED);
        }
        libc::malloc_trim(0);
    }
}

/// CPU time (user and system) used so far by process `pid`, all its
/// threads, dead or alive, from its process CPU clock (readable for any
/// process, `clock_getcpuclockid(3)`).
pub fn process_cpu_time(pid: i32) -> Option<std::time::Duration> {
    cpu_clock_time((!pid) << 3 | 2)
}

/// CPU time of thread `tid` of this process (its thread CPU clock).
pub fn thread_cpu_time(tid: i32) -> Option<std::time::Duration> {
    cpu_clock_time((!tid) << 3 | 6)
}

fn cpu_clock_time(clock: libc::clockid_t) -> Option<std::time::Duration> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes one timespec into a local.
    let r = unsafe { libc::clock_gettime(clock, &mut ts) };
    if r != 0 {
        return None;
    }
    Some(std::time::Duration::new(u64::try_from(ts.tv_sec).ok()?, u32::try_from(ts.tv_nsec).ok()?))
}

/// What names an open file for the stub file tables: the inode (device and
/// number) and the access mode it was opened with. While some descriptor
/// holds the file open, no other file has the same inode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub accmode: i32,
}

/// `fstat(2)` of `fd` (`op` names the failure).
pub fn fstat(fd: std::os::fd::BorrowedFd<'_>, op: &'static str) -> Result<libc::stat> {
    use std::os::fd::AsRawFd;
    // SAFETY: `stat` is plain data; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes one `struct stat` into `st`.
    if unsafe { libc::fstat(fd.as_raw_fd(), &raw mut st) } != 0 {
        return Err(Error::os(op));
    }
    Ok(st)
}

/// Maps the first `len` bytes of `fd` shared, readable and writable, at an
/// address the kernel chooses (`op` names the failure). The caller unmaps
/// it.
pub fn map_shared(fd: std::os::fd::BorrowedFd<'_>, len: usize, op: &'static str) -> Result<usize> {
    use std::os::fd::AsRawFd;
    // SAFETY: a fresh mapping at an address the kernel chooses: it overlaps
    // nothing of ours; its lifetime is the caller's.
    let p = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            fd.as_raw_fd(),
            0,
        )
    };
    if p == libc::MAP_FAILED {
        return Err(Error::os(op));
    }
    Ok(p as usize)
}

/// The [`FileKey`] of `fd`.
pub fn file_key(fd: std::os::fd::BorrowedFd<'_>) -> Result<FileKey> {
    use std::os::fd::AsRawFd;
    let st = fstat(fd, "fstat file to map")?;
    // SAFETY: plain-value call.
    let fl = unsafe { libc::fcntl(fd.as_raw_fd(), libc::F_GETFL) };
    if fl < 0 {
        return Err(Error::os("fcntl file to map"));
    }
    Ok(FileKey { dev: st.st_dev, ino: st.st_ino, accmode: fl & libc::O_ACCMODE })
}

/// Whether descriptor `fd1` of process `pid1` and `fd2` of `pid2` are the
/// same open file description (`kcmp(KCMP_FILE)`).
pub fn same_file(pid1: i32, fd1: i32, pid2: i32, fd2: i32) -> Result<bool> {
    const KCMP_FILE: i32 = 0;
    // SAFETY: plain-value system call.
    let r = unsafe { libc::syscall(libc::SYS_kcmp, pid1, pid2, KCMP_FILE, fd1, fd2) };
    if r < 0 {
        return Err(Error::os("kcmp"));
    }
    Ok(r == 0)
}

/// Sends `fd` as one `SCM_RIGHTS` message with one byte on `sock`, without
/// blocking.
pub fn send_fd(sock: std::os::fd::BorrowedFd<'_>, fd: std::os::fd::BorrowedFd<'_>) -> Result<()> {
    use std::os::fd::AsRawFd;
    let mut byte = [0u8; 1];
    let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
    // u64 words keep the control buffer aligned for `cmsghdr`.
    let mut control = [0u64; 4];
    // SAFETY: CMSG_SPACE is arithmetic.
    let space = unsafe { libc::CMSG_SPACE(4) } as usize;
    // SAFETY: `msghdr` is plain data; all-zero is a valid value.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: `msg` describes a control buffer of `space` <= 32 bytes;
    // CMSG_FIRSTHDR returns its start, where one header and one int fit.
    unsafe {
        let c = libc::CMSG_FIRSTHDR(&raw const msg);
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = libc::SCM_RIGHTS;
        (*c).cmsg_len = libc::CMSG_LEN(4) as usize;
        std::ptr::write_unaligned(libc::CMSG_DATA(c).cast::<i32>(), fd.as_raw_fd());
    }
    // SAFETY: `msg` and the buffers it points to live across the call.
    let r =
        unsafe { libc::sendmsg(sock.as_raw_fd(), &raw const msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL) };
    if r != 1 {
        return Err(Error::os("send file to stub"));
    }
    Ok(())
}

/// Receives and closes every descriptor still queued on `sock` (messages a
/// stub did not take).
pub fn drain_fds(sock: std::os::fd::BorrowedFd<'_>) {
    use std::os::fd::AsRawFd;
    for _ in 0..64 {
        let mut byte = [0u8; 1];
        let mut iov = libc::iovec { iov_base: byte.as_mut_ptr().cast(), iov_len: 1 };
        let mut control = [0u64; 4];
        // SAFETY: `msghdr` is plain data; all-zero is a valid value.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &raw mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: `msg` and its buffers live across the call.
        let r = unsafe {
            libc::recvmsg(sock.as_raw_fd(), &raw mut msg, libc::MSG_DONTWAIT | libc::MSG_CMSG_CLOEXEC)
        };
        if r <= 0 {
            return;
        }
        // SAFETY: walking the control messages the kernel just wrote into
        // `control`, as described by `msg`.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let n = ((*c).cmsg_len - libc::CMSG_LEN(0) as usize) / 4;
                    for i in 0..n {
                        let fd = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast::<i32>().add(i));
                        libc::close(fd);
                    }
                }
                c = libc::CMSG_NXTHDR(&raw const msg, c);
            }
        }
    }
}
