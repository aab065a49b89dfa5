//! The sentry: rvisor's user-space Linux kernel.
//!
//! Application threads run on a platform (see `rvisor-platform`); every
//! system call they make is handled here, never by the host kernel. See
//! `../shared/DESIGN.md` for the map.
#![deny(unsafe_code)]

pub mod boot;
pub mod fs;
mod host;
pub mod kernel;
pub mod loader;
pub mod mm;
pub mod strace;
pub mod syscalls;
pub mod vfs;

pub use rvisor_syscalls::Errno;

/// Reads, while the sentry can still see the host's `/proc` and `/sys`,
/// the facts it caches for later (auxv values, CPU count), and makes the
/// vDSO (unless `vdso` is false: programs then get none): call it before
/// the sentry confines itself.
pub fn prepare(vdso: bool) {
    let _ = loader::AuxvFacts::detect();
    let _ = kernel::host_cpus();
    let _ = kernel::host_memory();
    vfs::perm::detect_protected_hardlinks();
    if vdso {
        kernel::vdso::prepare();
    }
}
