//! How `--strace` prints each system call: argument kinds and flag names.
//! Calls without an entry print their name and six hex arguments.

use crate::Sysno;

/// How to print one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Arg {
    /// Signed 32-bit decimal.
    Int,
    /// Signed 64-bit decimal.
    Long,
    /// Unsigned 64-bit decimal.
    ULong,
    /// Hexadecimal.
    Hex,
    /// Octal (modes).
    Oct,
    /// File descriptor.
    Fd,
    /// Directory descriptor or `AT_FDCWD`.
    AtFd,
    /// Pointer: `NULL` or hex.
    Ptr,
    /// NUL-terminated string read at entry.
    Str,
    /// Buffer read at entry, its length in argument `n`.
    InBuf(u8),
    /// Buffer written by the call: `min(return value, argument n)` bytes.
    OutBuf(u8),
    /// `struct iovec` array read at entry, its count in argument `n`.
    InIovec(u8),
    /// Signal number.
    Signal,
    /// Clock id.
    Clock,
    /// `arch_prctl` code.
    ArchPrctl,
    /// `mmap`/`mprotect` protections.
    Prot,
    /// `mmap` flags.
    MapFlags,
    /// `open` flags.
    OpenFlags,
    /// rlimit resource.
    Resource,
    /// ioctl request.
    Ioctl,
    /// `SIG_BLOCK` / `SIG_UNBLOCK` / `SIG_SETMASK`.
    SigHow,
}

/// How to print the result.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ret {
    /// Signed decimal, or `-1 ERRNO (description)`.
    Dec,
    /// Hex (addresses), or an error.
    Hex,
    /// The call does not return (`exit`): printed as `?`.
    NoReturn,
}

/// Printing information of one system call.
#[derive(Clone, Copy, Debug)]
pub struct Info {
    /// Name.
    pub name: &'static str,
    /// Argument kinds (as many as the call takes).
    pub args: &'static [Arg],
    /// Result kind.
    pub ret: Ret,
}

use Arg::*;

const fn i(name: &'static str, args: &'static [Arg], ret: Ret) -> Info {
    Info { name, args, ret }
}

/// Printing information for system call `nr`.
pub fn info(nr: u64) -> Info {
    let sys = usize::try_from(nr).ok().and_then(Sysno::new);
    let Some(sys) = sys else {
        return i("syscall", &[Hex, Hex, Hex, Hex, Hex, Hex], Ret::Dec);
    };
    let r = Ret::Dec;
    match sys {
        Sysno::read => i("read", &[Fd, OutBuf(2), ULong], r),
        Sysno::write => i("write", &[Fd, InBuf(2), ULong], r),
        Sysno::open => i("open", &[Str, OpenFlags, Oct], r),
        Sysno::close => i("close", &[Fd], r),
        Sysno::stat => i("stat", &[Str, Ptr], r),
        Sysno::fstat => i("fstat", &[Fd, Ptr], r),
        Sysno::lstat => i("lstat", &[Str, Ptr], r),
        Sysno::poll => i("poll", &[Ptr, ULong, Int], r),
        Sysno::lseek => i("lseek", &[Fd, Long, Int], r),
        Sysno::mmap => i("mmap", &[Ptr, ULong, Prot, MapFlags, Fd, Hex], Ret::Hex),
        Sysno::mprotect => i("mprotect", &[Ptr, ULong, Prot], r),
        Sysno::munmap => i("munmap", &[Ptr, ULong], r),
        Sysno::brk => i("brk", &[Ptr], Ret::Hex),
        Sysno::rt_sigaction => i("rt_sigaction", &[Signal, Ptr, Ptr, ULong], r),
        Sysno::rt_sigprocmask => i("rt_sigprocmask", &[SigHow, Ptr, Ptr, ULong], r),
        Sysno::rt_sigreturn => i("rt_sigreturn", &[], r),
        Sysno::ioctl => i("ioctl", &[Fd, Ioctl, Hex], r),
        Sysno::pread64 => i("pread64", &[Fd, OutBuf(2), ULong, Long], r),
        Sysno::pwrite64 => i("pwrite64", &[Fd, InBuf(2), ULong, Long], r),
        Sysno::readv => i("readv", &[Fd, Ptr, Int], r),
        Sysno::writev => i("writev", &[Fd, InIovec(2), Int], r),
        Sysno::access => i("access", &[Str, Int], r),
        Sysno::pipe => i("pipe", &[Ptr], r),
        Sysno::sched_yield => i("sched_yield", &[], r),
        Sysno::mremap => i("mremap", &[Ptr, ULong, ULong, Hex, Ptr], Ret::Hex),
        Sysno::madvise => i("madvise", &[Ptr, ULong, Int], r),
        Sysno::dup => i("dup", &[Fd], r),
        Sysno::dup2 => i("dup2", &[Fd, Fd], r),
        Sysno::nanosleep => i("nanosleep", &[Ptr, Ptr], r),
        Sysno::getpid => i("getpid", &[], r),
        Sysno::clone => i("clone", &[Hex, Ptr, Ptr, Ptr, Hex], r),
        Sysno::fork => i("fork", &[], r),
        Sysno::vfork => i("vfork", &[], r),
        Sysno::execve => i("execve", &[Str, Ptr, Ptr], r),
        Sysno::exit => i("exit", &[Int], Ret::NoReturn),
        Sysno::wait4 => i("wait4", &[Int, Ptr, Hex, Ptr], r),
        Sysno::kill => i("kill", &[Int, Signal], r),
        Sysno::uname => i("uname", &[Ptr], r),
        Sysno::fcntl => i("fcntl", &[Fd, Int, Hex], r),
        Sysno::getcwd => i("getcwd", &[Ptr, ULong], r),
        Sysno::chdir => i("chdir", &[Str], r),
        Sysno::mkdir => i("mkdir", &[Str, Oct], r),
        Sysno::rmdir => i("rmdir", &[Str], r),
        Sysno::unlink => i("unlink", &[Str], r),
        Sysno::readlink => i("readlink", &[Str, OutBuf(1), ULong], r),
        Sysno::umask => i("umask", &[Oct], Ret::Dec),
        Sysno::gettimeofday => i("gettimeofday", &[Ptr, Ptr], r),
        Sysno::getrlimit => i("getrlimit", &[Resource, Ptr], r),
        Sysno::getrusage => i("getrusage", &[Int, Ptr], r),
        Sysno::sysinfo => i("sysinfo", &[Ptr], r),
        Sysno::times => i("times", &[Ptr], r),
        Sysno::getuid => i("getuid", &[], r),
        Sysno::getgid => i("getgid", &[], r),
        Sysno::geteuid => i("geteuid", &[], r),
        Sysno::getegid => i("getegid", &[], r),
        Sysno::getppid => i("getppid", &[], r),
        Sysno::getpgrp => i("getpgrp", &[], r),
        Sysno::setsid => i("setsid", &[], r),
        Sysno::sigaltstack => i("sigaltstack", &[Ptr, Ptr], r),
        Sysno::arch_prctl => i("arch_prctl", &[ArchPrctl, Hex], r),
        Sysno::setrlimit => i("setrlimit", &[Resource, Ptr], r),
        Sysno::gettid => i("gettid", &[], r),
        Sysno::time => i("time", &[Ptr], r),
        Sysno::futex => i("futex", &[Ptr, Int, Int, Ptr, Ptr, Int], r),
        Sysno::set_tid_address => i("set_tid_address", &[Ptr], r),
        Sysno::clock_gettime => i("clock_gettime", &[Clock, Ptr], r),
        Sysno::clock_getres => i("clock_getres", &[Clock, Ptr], r),
        Sysno::clock_nanosleep => i("clock_nanosleep", &[Clock, Int, Ptr, Ptr], r),
        Sysno::exit_group => i("exit_group", &[Int], Ret::NoReturn),
        Sysno::tgkill => i("tgkill", &[Int, Int, Signal], r),
        Sysno::tkill => i("tkill", &[Int, Signal], r),
        Sysno::openat => i("openat", &[AtFd, Str, OpenFlags, Oct], r),
        Sysno::mkdirat => i("mkdirat", &[AtFd, Str, Oct], r),
        Sysno::newfstatat => i("newfstatat", &[AtFd, Str, Ptr, Hex], r),
        Sysno::unlinkat => i("unlinkat", &[AtFd, Str, Hex], r),
        Sysno::readlinkat => i("readlinkat", &[AtFd, Str, OutBuf(2), ULong], r),
        Sysno::faccessat => i("faccessat", &[AtFd, Str, Int], r),
        Sysno::faccessat2 => i("faccessat2", &[AtFd, Str, Int, Hex], r),
        Sysno::set_robust_list => i("set_robust_list", &[Ptr, ULong], r),
        Sysno::get_robust_list => i("get_robust_list", &[Int, Ptr, Ptr], r),
        Sysno::pipe2 => i("pipe2", &[Ptr, Hex], r),
        Sysno::dup3 => i("dup3", &[Fd, Fd, Hex], r),
        Sysno::prlimit64 => i("prlimit64", &[Int, Resource, Ptr, Ptr], r),
        Sysno::getrandom => i("getrandom", &[OutBuf(1), ULong, Hex], r),
        Sysno::rseq => i("rseq", &[Ptr, ULong, Hex, Hex], r),
        Sysno::statx => i("statx", &[AtFd, Str, Hex, Hex, Ptr], r),
        Sysno::prctl => i("prctl", &[Int, Hex, Hex, Hex, Hex], r),
        Sysno::preadv => i("preadv", &[Fd, Ptr, Int, Long], r),
        Sysno::pwritev => i("pwritev", &[Fd, InIovec(2), Int, Long], r),
        Sysno::preadv2 => i("preadv2", &[Fd, Ptr, Int, Long, Long, Hex], r),
        Sysno::pwritev2 => i("pwritev2", &[Fd, InIovec(2), Int, Long, Long, Hex], r),
        Sysno::sendfile => i("sendfile", &[Fd, Fd, Ptr, ULong], r),
        Sysno::copy_file_range => i("copy_file_range", &[Fd, Ptr, Fd, Ptr, ULong, Hex], r),
        Sysno::flock => i("flock", &[Fd, Int], r),
        Sysno::fsync => i("fsync", &[Fd], r),
        Sysno::fdatasync => i("fdatasync", &[Fd], r),
        Sysno::truncate => i("truncate", &[Str, Long], r),
        Sysno::ftruncate => i("ftruncate", &[Fd, Long], r),
        Sysno::fallocate => i("fallocate", &[Fd, Hex, Long, Long], r),
        Sysno::fadvise64 => i("fadvise64", &[Fd, Long, Long, Int], r),
        Sysno::getdents => i("getdents", &[Fd, Ptr, ULong], r),
        Sysno::getdents64 => i("getdents64", &[Fd, Ptr, ULong], r),
        Sysno::fchdir => i("fchdir", &[Fd], r),
        Sysno::rename => i("rename", &[Str, Str], r),
        Sysno::renameat => i("renameat", &[AtFd, Str, AtFd, Str], r),
        Sysno::renameat2 => i("renameat2", &[AtFd, Str, AtFd, Str, Hex], r),
        Sysno::creat => i("creat", &[Str, Oct], r),
        Sysno::link => i("link", &[Str, Str], r),
        Sysno::linkat => i("linkat", &[AtFd, Str, AtFd, Str, Hex], r),
        Sysno::symlink => i("symlink", &[Str, Str], r),
        Sysno::symlinkat => i("symlinkat", &[Str, AtFd, Str], r),
        Sysno::chmod => i("chmod", &[Str, Oct], r),
        Sysno::fchmod => i("fchmod", &[Fd, Oct], r),
        Sysno::fchmodat => i("fchmodat", &[AtFd, Str, Oct], r),
        Sysno::chown => i("chown", &[Str, Int, Int], r),
        Sysno::fchown => i("fchown", &[Fd, Int, Int], r),
        Sysno::lchown => i("lchown", &[Str, Int, Int], r),
        Sysno::fchownat => i("fchownat", &[AtFd, Str, Int, Int, Hex], r),
        Sysno::mknod => i("mknod", &[Str, Oct, Hex], r),
        Sysno::mknodat => i("mknodat", &[AtFd, Str, Oct, Hex], r),
        Sysno::utimes => i("utimes", &[Str, Ptr], r),
        Sysno::utimensat => i("utimensat", &[AtFd, Str, Ptr, Hex], r),
        Sysno::statfs => i("statfs", &[Str, Ptr], r),
        Sysno::fstatfs => i("fstatfs", &[Fd, Ptr], r),
        Sysno::sync => i("sync", &[], r),
        Sysno::syncfs => i("syncfs", &[Fd], r),
        Sysno::openat2 => i("openat2", &[AtFd, Str, Ptr, ULong], r),
        Sysno::close_range => i("close_range", &[Fd, Fd, Hex], r),
        Sysno::setxattr => i("setxattr", &[Str, Str, InBuf(3), ULong, Hex], r),
        Sysno::lsetxattr => i("lsetxattr", &[Str, Str, InBuf(3), ULong, Hex], r),
        Sysno::fsetxattr => i("fsetxattr", &[Fd, Str, InBuf(3), ULong, Hex], r),
        Sysno::getxattr => i("getxattr", &[Str, Str, OutBuf(3), ULong], r),
        Sysno::lgetxattr => i("lgetxattr", &[Str, Str, OutBuf(3), ULong], r),
        Sysno::fgetxattr => i("fgetxattr", &[Fd, Str, OutBuf(3), ULong], r),
        Sysno::listxattr => i("listxattr", &[Str, Ptr, ULong], r),
        Sysno::llistxattr => i("llistxattr", &[Str, Ptr, ULong], r),
        Sysno::flistxattr => i("flistxattr", &[Fd, Ptr, ULong], r),
        Sysno::removexattr => i("removexattr", &[Str, Str], r),
        Sysno::lremovexattr => i("lremovexattr", &[Str, Str], r),
        Sysno::fremovexattr => i("fremovexattr", &[Fd, Str], r),
        other => Info { name: other.name(), args: &[Hex, Hex, Hex, Hex, Hex, Hex], ret: r },
    }
}

/// `PROT_*` names.
pub const PROT_NAMES: &[(u64, &str)] = &[(1, "PROT_READ"), (2, "PROT_WRITE"), (4, "PROT_EXEC")];

/// `MAP_*` flag names (the sharing type is printed separately).
pub const MAP_FLAG_NAMES: &[(u64, &str)] = &[
    (0x10, "MAP_FIXED"),
    (0x20, "MAP_ANONYMOUS"),
    (0x100, "MAP_GROWSDOWN"),
    (0x800, "MAP_DENYWRITE"),
    (0x1000, "MAP_EXECUTABLE"),
    (0x2000, "MAP_LOCKED"),
    (0x4000, "MAP_NORESERVE"),
    (0x8000, "MAP_POPULATE"),
    (0x10000, "MAP_NONBLOCK"),
    (0x20000, "MAP_STACK"),
    (0x40000, "MAP_HUGETLB"),
    (0x80000, "MAP_SYNC"),
    (0x100000, "MAP_FIXED_NOREPLACE"),
];

/// `O_*` flag names (the access mode is printed separately).
pub const OPEN_FLAG_NAMES: &[(u64, &str)] = &[
    (0o100, "O_CREAT"),
    (0o200, "O_EXCL"),
    (0o400, "O_NOCTTY"),
    (0o1000, "O_TRUNC"),
    (0o2000, "O_APPEND"),
    (0o4000, "O_NONBLOCK"),
    (0o10000, "O_DSYNC"),
    (0o40000, "O_DIRECT"),
    (0o200000, "O_DIRECTORY"),
    (0o400000, "O_NOFOLLOW"),
    (0o1000000, "O_NOATIME"),
    (0o2000000, "O_CLOEXEC"),
    (0o4010000, "O_SYNC"),
    (0o10000000, "O_PATH"),
    (0o20200000, "O_TMPFILE"),
];

/// Clock names by id.
pub const CLOCK_NAMES: &[&str] = &[
    "CLOCK_REALTIME",
    "CLOCK_MONOTONIC",
    "CLOCK_PROCESS_CPUTIME_ID",
    "CLOCK_THREAD_CPUTIME_ID",
    "CLOCK_MONOTONIC_RAW",
    "CLOCK_REALTIME_COARSE",
    "CLOCK_MONOTONIC_COARSE",
    "CLOCK_BOOTTIME",
    "CLOCK_REALTIME_ALARM",
    "CLOCK_BOOTTIME_ALARM",
    "CLOCK_SGI_CYCLE",
    "CLOCK_TAI",
];

/// rlimit resource names by number.
pub const RESOURCE_NAMES: &[&str] = &[
    "RLIMIT_CPU",
    "RLIMIT_FSIZE",
    "RLIMIT_DATA",
    "RLIMIT_STACK",
    "RLIMIT_CORE",
    "RLIMIT_RSS",
    "RLIMIT_NPROC",
    "RLIMIT_NOFILE",
    "RLIMIT_MEMLOCK",
    "RLIMIT_AS",
    "RLIMIT_LOCKS",
    "RLIMIT_SIGPENDING",
    "RLIMIT_MSGQUEUE",
    "RLIMIT_NICE",
    "RLIMIT_RTPRIO",
    "RLIMIT_RTTIME",
];

/// Signal names by number (index 0 unused).
pub const SIGNAL_NAMES: &[&str] = &[
    "0",
    "SIGHUP",
    "SIGINT",
    "SIGQUIT",
    "SIGILL",
    "SIGTRAP",
    "SIGABRT",
    "SIGBUS",
    "SIGFPE",
    "SIGKILL",
    "SIGUSR1",
    "SIGSEGV",
    "SIGUSR2",
    "SIGPIPE",
    "SIGALRM",
    "SIGTERM",
    "SIGSTKFLT",
    "SIGCHLD",
    "SIGCONT",
    "SIGSTOP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGXCPU",
    "SIGXFSZ",
    "SIGVTALRM",
    "SIGPROF",
    "SIGWINCH",
    "SIGIO",
    "SIGPWR",
    "SIGSYS",
];

/// `arch_prctl` code names.
pub const ARCH_PRCTL_NAMES: &[(u64, &str)] = &[
    (0x1001, "ARCH_SET_GS"),
    (0x1002, "ARCH_SET_FS"),
    (0x1003, "ARCH_GET_FS"),
    (0x1004, "ARCH_GET_GS"),
    (0x1011, "ARCH_GET_CPUID"),
    (0x1012, "ARCH_SET_CPUID"),
];

/// ioctl request names.
pub const IOCTL_NAMES: &[(u64, &str)] = &[
    (0x5401, "TCGETS"),
    (0x5402, "TCSETS"),
    (0x5403, "TCSETSW"),
    (0x5404, "TCSETSF"),
    (0x5409, "TCSBRK"),
    (0x540a, "TCXONC"),
    (0x540b, "TCFLSH"),
    (0x540c, "TIOCEXCL"),
    (0x540d, "TIOCNXCL"),
    (0x540e, "TIOCSCTTY"),
    (0x540f, "TIOCGPGRP"),
    (0x5410, "TIOCSPGRP"),
    (0x5411, "TIOCOUTQ"),
    (0x5413, "TIOCGWINSZ"),
    (0x5414, "TIOCSWINSZ"),
    (0x541b, "FIONREAD"),
    (0x5420, "TIOCPKT"),
    (0x5421, "FIONBIO"),
    (0x5422, "TIOCNOTTY"),
    (0x5423, "TIOCSETD"),
    (0x5424, "TIOCGETD"),
    (0x5425, "TCSBRKP"),
    (0x5429, "TIOCGSID"),
    (0x802c_542a, "TCGETS2"),
    (0x402c_542b, "TCSETS2"),
    (0x8004_5430, "TIOCGPTN"),
    (0x4004_5431, "TIOCSPTLCK"),
    (0x4004_5436, "TIOCSIG"),
    (0x8004_5438, "TIOCGPKT"),
    (0x8004_5439, "TIOCGPTLCK"),
    (0x5441, "TIOCGPTPEER"),
    (0x5450, "FIONCLEX"),
    (0x5451, "FIOCLEX"),
];
