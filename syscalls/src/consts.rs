//! Constants of the ABI (flags, commands, auxv keys), from `linux-raw-sys`,
//! plus the few it does not carry.

pub use linux_raw_sys::auxvec;
pub use linux_raw_sys::general;
pub use linux_raw_sys::ioctl;
pub use linux_raw_sys::prctl;

/// `ARCH_GET_CPUID` / `ARCH_SET_CPUID` (arch_prctl).
pub const ARCH_GET_CPUID: u32 = 0x1011;
/// See [`ARCH_GET_CPUID`].
pub const ARCH_SET_CPUID: u32 = 0x1012;

/// `HWCAP2_FSGSBASE`: user-space `rdfsbase`/`wrfsbase` are enabled.
pub const HWCAP2_FSGSBASE: u64 = 1 << 1;

/// Number of signals (1..=64).
pub const NSIG: u32 = 64;
