//! The Linux x86_64 system call ABI as data: system call numbers and names,
//! argument kinds (for `--strace`), errno values, flags, and the layouts of
//! the structures that cross the user/kernel boundary. No behaviour.
#![deny(unsafe_code)]

pub mod abi;
pub mod consts;
pub mod errno;
pub mod strace;

pub use errno::Errno;
pub use syscalls::Sysno;

/// The name of system call `nr`, if it has one on x86_64.
pub fn syscall_name(nr: u64) -> Option<&'static str> {
    let nr = usize::try_from(nr).ok()?;
    Sysno::new(nr).map(|s| s.name())
}
