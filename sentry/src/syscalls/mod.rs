//! The system call table: one entry per implemented call, mapping the
//! number to a handler with typed arguments. Registers become typed values
//! here and nowhere else ([`FromArg`]); handlers validate them.
//! Unimplemented numbers return `ENOSYS` and are reported once by name.

mod fs;
mod mm;
mod process;
mod signal;
mod time;

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
    8 => fs::lseek [Fd, i64, u32];
    9 => mm::mmap [Addr, u64, u64, u64, Fd, u64];
    10 => mm::mprotect [Addr, u64, u64];
    11 => mm::munmap [Addr, u64];
    12 => mm::brk [Addr];
    13 => signal::rt_sigaction [i32, Addr, Addr, u64];
    14 => signal::rt_sigprocmask [i32, Addr, Addr, u64];
    16 => fs::ioctl [Fd, u32, u64];
    17 => fs::pread64 [Fd, Addr, u64, i64];
    18 => fs::pwrite64 [Fd, Addr, u64, i64];
    19 => fs::readv [Fd, Addr, i32];
    20 => fs::writev [Fd, Addr, i32];
    24 => process::sched_yield [];
    25 => mm::mremap [Addr, u64, u64, u64, Addr];
    26 => mm::msync [Addr, u64, i32];
    28 => mm::madvise [Addr, u64, i32];
    32 => fs::dup [Fd];
    33 => fs::dup2 [Fd, Fd];
    35 => time::nanosleep [Addr, Addr];
    39 => process::getpid [];
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
    104 => process::getgid [];
    107 => process::geteuid [];
    108 => process::getegid [];
    110 => process::getppid [];
    111 => process::getpgrp [];
    112 => process::setsid [];
    115 => process::getgroups [i32, Addr];
    118 => process::getresuid [Addr, Addr, Addr];
    120 => process::getresgid [Addr, Addr, Addr];
    121 => process::getpgid [i32];
    124 => process::getsid [i32];
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
    203 => process::sched_setaffinity [i32, u64, Addr];
    204 => process::sched_getaffinity [i32, u64, Addr];
    218 => process::set_tid_address [Addr];
    228 => time::clock_gettime [i32, Addr];
    229 => time::clock_getres [i32, Addr];
    230 => time::clock_nanosleep [i32, i32, Addr, Addr];
    231 => process::exit_group [i32];
    234 => signal::tgkill [i32, i32, i32];
    262 => fs::newfstatat [Fd, Addr, Addr, i32];
    273 => process::set_robust_list [Addr, u64];
    274 => process::get_robust_list [i32, Addr, Addr];
    292 => fs::dup3 [Fd, Fd, i32];
    302 => process::prlimit64 [i32, u32, Addr, Addr];
    309 => process::getcpu [Addr, Addr, Addr];
    318 => process::getrandom [Addr, u64, u32];
    334 => process::rseq [Addr, u32, i32, u32];
}

#[cfg(test)]
mod doc_test;
