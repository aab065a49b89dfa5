//! The system call table: one entry per implemented call, mapping the
//! number to a handler with typed arguments. Registers become typed values
//! here and nowhere else ([`FromArg`]); handlers validate them.
//! Unimplemented numbers return `ENOSYS` and are reported once by name.

mod attr;
mod epoll;
mod exec;
mod fs;
pub(crate) mod futex;
mod mm;
mod mount;
mod namei;
mod open;
pub mod path;
mod pipe;
mod poll;
mod process;
mod signal;
mod socket;
mod stat;
mod task;
pub(crate) mod time;
mod timer;

use rvisor_syscalls::Errno;

use crate::kernel::Task;

/// What a handler returns: the value for `rax`, or an errno.
pub type SysResult = Result<u64, Errno>;

/// Conversion of a raw register into a handler argument, as the C ABI
/// does it: `int` arguments are the low 32 bits of the register.
pub trait FromArg {
    /// Converts.
    fn from_arg(raw: u64) -> Self;
}

impl FromArg for u64 {
    fn from_arg(raw: u64) -> Self {
        raw
    }
}

impl FromArg for i64 {
    fn from_arg(raw: u64) -> Self {
        raw.cast_signed()
    }
}

impl FromArg for u32 {
    #[allow(clippy::cast_possible_truncation)]
    fn from_arg(raw: u64) -> Self {
        // The register's low half, as an `unsigned int` parameter sees it.
        raw as u32
    }
}

impl FromArg for i32 {
    fn from_arg(raw: u64) -> Self {
        u32::from_arg(raw).cast_signed()
    }
}

/// A file descriptor argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fd(pub i32);

impl FromArg for Fd {
    fn from_arg(raw: u64) -> Self {
        Fd(i32::from_arg(raw))
    }
}

/// An application address argument.
pub type Addr = u64;

macro_rules! syscall_table {
    ($($nr:literal => $handler:path [$($ty:ty),*];)*) => {
        /// Runs system call `nr` with raw arguments `a`.
        pub fn dispatch(t: &mut Task, nr: u64, a: &[u64; 6]) -> SysResult {
            #[allow(unused_variables, unused_mut)]
            let mut args = a.iter().copied();
            match nr {
                $($nr => $handler(t, $(<$ty as FromArg>::from_arg(args.next().unwrap_or(0))),*),)*
                _ => {
                    t.kernel.report_unsupported(nr);
                    Err(Errno::ENOSYS)
                }
            }
        }

        /// Whether system call `nr` has a handler.
        pub fn implemented(nr: u64) -> bool {
            matches!(nr, $($nr)|*)
        }
    };
}

syscall_table! {
    0 => fs::read [Fd, Addr, u64];
    1 => fs::write [Fd, Addr, u64];
    3 => fs::close [Fd];
    5 => fs::fstat [Fd, Addr];
    7 => poll::poll [Addr, u32, i32];
    8 => fs::lseek [Fd, i64, u32];
    9 => mm::mmap [Addr, u64, u64, u64, Fd, u64];
    10 => mm::mprotect [Addr, u64, u64];
    11 => mm::munmap [Addr, u64];
    12 => mm::brk [Addr];
    13 => signal::rt_sigaction [i32, Addr, Addr, u64];
    14 => signal::rt_sigprocmask [i32, Addr, Addr, u64];
    15 => signal::rt_sigreturn [];
    16 => fs::ioctl [Fd, u32, u64];
    17 => fs::pread64 [Fd, Addr, u64, i64];
    18 => fs::pwrite64 [Fd, Addr, u64, i64];
    19 => fs::readv [Fd, Addr, i32];
    20 => fs::writev [Fd, Addr, i32];
    22 => pipe::pipe [Addr];
    23 => poll::select [i32, Addr, Addr, Addr, Addr];
    24 => process::sched_yield [];
    25 => mm::mremap [Addr, u64, u64, u64, Addr];
    26 => mm::msync [Addr, u64, i32];
    27 => mm::mincore [Addr, u64, Addr];
    28 => mm::madvise [Addr, u64, i32];
    32 => fs::dup [Fd];
    33 => fs::dup2 [Fd, Fd];
    35 => time::nanosleep [Addr, Addr];
    36 => timer::getitimer [i32, Addr];
    37 => timer::alarm [u32];
    38 => timer::setitimer [i32, Addr, Addr];
    39 => process::getpid [];
    56 => task::clone [u64, Addr, Addr, Addr, u64];
    57 => task::fork [];
    58 => task::vfork [];
    59 => exec::execve [Addr, Addr, Addr];
    61 => task::wait4 [i32, Addr, i32, Addr];
    60 => process::exit [i32];
    62 => signal::kill [i32, i32];
    63 => process::uname [Addr];
    72 => fs::fcntl [Fd, i32, u64];
    95 => process::umask [u32];
    96 => time::gettimeofday [Addr, Addr];
    97 => process::getrlimit [u32, Addr];
    98 => process::getrusage [i32, Addr];
    99 => process::sysinfo [Addr];
    100 => process::times [Addr];
    102 => process::getuid [];
    105 => process::setuid [u32];
    106 => process::setgid [u32];
    109 => task::setpgid [i32, i32];
    113 => process::setreuid [u32, u32];
    114 => process::setregid [u32, u32];
    116 => process::setgroups [i32, Addr];
    117 => process::setresuid [u32, u32, u32];
    119 => process::setresgid [u32, u32, u32];
    122 => process::setfsuid [u32];
    123 => process::setfsgid [u32];
    125 => process::capget [Addr, Addr];
    126 => process::capset [Addr, Addr];
    140 => process::getpriority [i32, i32];
    141 => process::setpriority [i32, i32, i32];
    104 => process::getgid [];
    107 => process::geteuid [];
    108 => process::getegid [];
    110 => process::getppid [];
    111 => process::getpgrp [];
    112 => task::setsid [];
    115 => process::getgroups [i32, Addr];
    118 => process::getresuid [Addr, Addr, Addr];
    120 => process::getresgid [Addr, Addr, Addr];
    121 => process::getpgid [i32];
    124 => process::getsid [i32];
    127 => signal::rt_sigpending [Addr, u64];
    128 => signal::rt_sigtimedwait [Addr, Addr, Addr, u64];
    129 => signal::rt_sigqueueinfo [i32, i32, Addr];
    130 => signal::rt_sigsuspend [Addr, u64];
    131 => signal::sigaltstack [Addr, Addr];
    149 => mm::mlock [Addr, u64];
    150 => mm::munlock [Addr, u64];
    151 => mm::mlockall [i32];
    152 => mm::munlockall [];
    157 => process::prctl [i32, u64, u64, u64, u64];
    158 => process::arch_prctl [i32, u64];
    160 => process::setrlimit [u32, Addr];
    186 => process::gettid [];
    200 => signal::tkill [i32, i32];
    201 => time::time [Addr];
    202 => futex::futex [Addr, i32, u32, Addr, Addr, u32];
    203 => process::sched_setaffinity [i32, u64, Addr];
    204 => process::sched_getaffinity [i32, u64, Addr];
    218 => process::set_tid_address [Addr];
    228 => time::clock_gettime [i32, Addr];
    229 => time::clock_getres [i32, Addr];
    230 => time::clock_nanosleep [i32, i32, Addr, Addr];
    231 => process::exit_group [i32];
    234 => signal::tgkill [i32, i32, i32];
    247 => task::waitid [i32, i32, Addr, i32, Addr];
    262 => stat::newfstatat [Fd, Addr, Addr, i32];
    270 => poll::pselect6 [i32, Addr, Addr, Addr, Addr, Addr];
    271 => poll::ppoll [Addr, u32, Addr, Addr, u64];
    213 => epoll::epoll_create [i32];
    253 => epoll::inotify_init [];
    254 => epoll::inotify_add_watch [i32, Addr, u32];
    255 => epoll::inotify_rm_watch [i32, i32];
    294 => epoll::inotify_init1 [i32];
    41 => socket::socket [i32, i32, i32];
    42 => socket::connect [Fd, Addr, u32];
    43 => socket::accept [Fd, Addr, Addr];
    44 => socket::sendto [Fd, Addr, u64, i32, Addr, u32];
    45 => socket::recvfrom [Fd, Addr, u64, i32, Addr, Addr];
    46 => socket::sendmsg [Fd, Addr, i32];
    47 => socket::recvmsg [Fd, Addr, i32];
    48 => socket::shutdown [Fd, i32];
    49 => socket::bind [Fd, Addr, u32];
    50 => socket::listen [Fd, i32];
    51 => socket::getsockname [Fd, Addr, Addr];
    52 => socket::getpeername [Fd, Addr, Addr];
    53 => socket::socketpair [i32, i32, i32, Addr];
    54 => socket::setsockopt [Fd, i32, i32, Addr, u32];
    55 => socket::getsockopt [Fd, i32, i32, Addr, Addr];
    288 => socket::accept4 [Fd, Addr, Addr, i32];
    299 => socket::recvmmsg [Fd, Addr, u32, i32, Addr];
    307 => socket::sendmmsg [Fd, Addr, u32, i32];
    283 => timer::timerfd_create [i32, i32];
    286 => timer::timerfd_settime [i32, i32, Addr, Addr];
    287 => timer::timerfd_gettime [i32, Addr];
    232 => epoll::epoll_wait [Fd, Addr, i32, i32];
    233 => epoll::epoll_ctl [Fd, i32, Fd, Addr];
    281 => epoll::epoll_pwait [Fd, Addr, i32, i32, Addr, u64];
    282 => epoll::signalfd [i32, Addr, u64];
    284 => epoll::eventfd [u32];
    289 => epoll::signalfd4 [i32, Addr, u64, i32];
    290 => epoll::eventfd2 [u32, i32];
    291 => epoll::epoll_create1 [i32];
    441 => epoll::epoll_pwait2 [Fd, Addr, i32, Addr, Addr, u64];
    275 => pipe::splice [Fd, Addr, Fd, Addr, u64, u32];
    276 => pipe::tee [Fd, Fd, u64, u32];
    273 => process::set_robust_list [Addr, u64];
    274 => process::get_robust_list [i32, Addr, Addr];
    292 => fs::dup3 [Fd, Fd, i32];
    293 => pipe::pipe2 [Addr, u32];
    302 => process::prlimit64 [i32, u32, Addr, Addr];
    309 => process::getcpu [Addr, Addr, Addr];
    322 => exec::execveat [Fd, Addr, Addr, Addr, i32];
    318 => process::getrandom [Addr, u64, u32];
    319 => fs::memfd_create [Addr, u32];
    165 => mount::mount [Addr, Addr, Addr, u64, Addr];
    166 => mount::umount2 [Addr, i32];
    161 => mount::chroot [Addr];
    170 => mount::sethostname [Addr, i32];
    171 => mount::setdomainname [Addr, i32];
    334 => process::rseq [Addr, u32, i32, u32];
    2 => open::open [Addr, u32, u32];
    4 => stat::stat [Addr, Addr];
    6 => stat::lstat [Addr, Addr];
    21 => stat::access [Addr, i32];
    40 => fs::sendfile [Fd, Fd, Addr, u64];
    73 => fs::flock [Fd, i32];
    74 => attr::fsync [Fd];
    75 => attr::fdatasync [Fd];
    76 => attr::truncate [Addr, i64];
    77 => attr::ftruncate [Fd, i64];
    78 => fs::getdents [Fd, Addr, u32];
    79 => namei::getcwd [Addr, u64];
    80 => namei::chdir [Addr];
    81 => namei::fchdir [Fd];
    82 => namei::rename [Addr, Addr];
    83 => namei::mkdir [Addr, u32];
    84 => namei::rmdir [Addr];
    85 => open::creat [Addr, u32];
    86 => namei::link [Addr, Addr];
    87 => namei::unlink [Addr];
    88 => namei::symlink [Addr, Addr];
    89 => stat::readlink [Addr, Addr, i32];
    90 => attr::chmod [Addr, u32];
    91 => attr::fchmod [Fd, u32];
    92 => attr::chown [Addr, u32, u32];
    93 => attr::fchown [Fd, u32, u32];
    94 => attr::lchown [Addr, u32, u32];
    133 => namei::mknod [Addr, u32, u64];
    137 => stat::statfs [Addr, Addr];
    138 => stat::fstatfs [Fd, Addr];
    162 => attr::sync [];
    188 => attr::setxattr [Addr, Addr, Addr, u64, u32];
    189 => attr::lsetxattr [Addr, Addr, Addr, u64, u32];
    190 => attr::fsetxattr [Fd, Addr, Addr, u64, u32];
    191 => attr::getxattr [Addr, Addr, Addr, u64];
    192 => attr::lgetxattr [Addr, Addr, Addr, u64];
    193 => attr::fgetxattr [Fd, Addr, Addr, u64];
    194 => attr::listxattr [Addr, Addr, u64];
    195 => attr::llistxattr [Addr, Addr, u64];
    196 => attr::flistxattr [Fd, Addr, u64];
    197 => attr::removexattr [Addr, Addr];
    198 => attr::lremovexattr [Addr, Addr];
    199 => attr::fremovexattr [Fd, Addr];
    217 => fs::getdents64 [Fd, Addr, u32];
    219 => time::restart_syscall [];
    221 => attr::fadvise64 [Fd, i64, i64, i32];
    222 => timer::timer_create [i32, Addr, Addr];
    223 => timer::timer_settime [i32, i32, Addr, Addr];
    224 => timer::timer_gettime [i32, Addr];
    225 => timer::timer_getoverrun [i32];
    226 => timer::timer_delete [i32];
    235 => attr::utimes [Addr, Addr];
    257 => open::openat [Fd, Addr, u32, u32];
    258 => namei::mkdirat [Fd, Addr, u32];
    259 => namei::mknodat [Fd, Addr, u32, u64];
    260 => attr::fchownat [Fd, Addr, u32, u32, i32];
    263 => namei::unlinkat [Fd, Addr, i32];
    264 => namei::renameat [Fd, Addr, Fd, Addr];
    265 => namei::linkat [Fd, Addr, Fd, Addr, i32];
    266 => namei::symlinkat [Addr, Fd, Addr];
    267 => stat::readlinkat [Fd, Addr, Addr, i32];
    268 => attr::fchmodat [Fd, Addr, u32];
    269 => stat::faccessat [Fd, Addr, i32];
    280 => attr::utimensat [Fd, Addr, Addr, i32];
    285 => attr::fallocate [Fd, u32, i64, i64];
    295 => fs::preadv [Fd, Addr, i32, i64];
    296 => fs::pwritev [Fd, Addr, i32, i64];
    297 => signal::rt_tgsigqueueinfo [i32, i32, i32, Addr];
    306 => attr::syncfs [Fd];
    316 => namei::renameat2 [Fd, Addr, Fd, Addr, u32];
    326 => fs::copy_file_range [Fd, Addr, Fd, Addr, u64, u32];
    327 => fs::preadv2 [Fd, Addr, i32, i64, i64, i32];
    328 => fs::pwritev2 [Fd, Addr, i32, i64, i64, i32];
    332 => stat::statx [Fd, Addr, i32, u32, Addr];
    424 => signal::pidfd_send_signal [i32, i32, Addr, u32];
    434 => task::pidfd_open [i32, u32];
    435 => task::clone3 [Addr, u64];
    436 => open::close_range [u32, u32, u32];
    437 => open::openat2 [Fd, Addr, Addr, u64];
    439 => stat::faccessat2 [Fd, Addr, i32, i32];
}

#[cfg(test)]
mod doc_test;
