//! x86_64 architectural state of an application thread.

/// General-purpose registers, in the layout of the kernel's
/// `struct user_regs_struct` (what `PTRACE_GETREGS` fills in).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Regs {
    pub r15: u64,
    pub r14: u64,
    pub r13: u64,
    pub r12: u64,
    pub rbp: u64,
    pub rbx: u64,
    pub r11: u64,
    pub r10: u64,
    pub r9: u64,
    pub r8: u64,
    pub rax: u64,
    pub rcx: u64,
    pub rdx: u64,
    pub rsi: u64,
    pub rdi: u64,
    /// The system call number at a system call stop; `u64::MAX` otherwise.
    pub orig_rax: u64,
    pub rip: u64,
    pub cs: u64,
    pub eflags: u64,
    pub rsp: u64,
    pub ss: u64,
    pub fs_base: u64,
    pub gs_base: u64,
    pub ds: u64,
    pub es: u64,
    pub fs: u64,
    pub gs: u64,
}

const _: () = assert!(std::mem::size_of::<Regs>() == std::mem::size_of::<libc::user_regs_struct>());

impl Regs {
    /// The six system call arguments, in order.
    pub fn syscall_args(&self) -> [u64; 6] {
        [self.rdi, self.rsi, self.rdx, self.r10, self.r8, self.r9]
    }
}

/// Size in bytes of the XSAVE area for the features the host enabled
/// (CPUID leaf 0xD, sub-leaf 0, EBX), at least the 512-byte FXSAVE area plus
/// the 64-byte XSAVE header.
pub fn xsave_size() -> usize {
    static SIZE: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *SIZE.get_or_init(|| {
        let r = std::arch::x86_64::__cpuid_count(0xd, 0);
        usize::try_from(r.ebx).unwrap_or(0).max(FXSAVE_SIZE + XSAVE_HEADER_SIZE)
    })
}

/// The xsave features the host enabled (XCR0, from CPUID leaf 0xD).
pub fn xsave_features() -> u64 {
    let r = std::arch::x86_64::__cpuid_count(0xd, 0);
    u64::from(r.eax) | (u64::from(r.edx) << 32)
}

/// The state components the host kernel enabled (`XCR0`): what an XSAVE
/// image loaded into a thread may have in `XSTATE_BV`.
pub fn enabled_xfeatures() -> u64 {
    static XCR0: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *XCR0.get_or_init(|| {
        // CPUID.1:ECX.OSXSAVE says XGETBV may be used.
        let osxsave = std::arch::x86_64::__cpuid(1).ecx & (1 << 27) != 0;
        if !osxsave {
            return 3;
        }
        let (lo, hi): (u32, u32);
        // SAFETY: XGETBV with ECX = 0 reads XCR0; it is allowed at any
        // privilege level once the OS set CR4.OSXSAVE (checked above) and
        // touches no memory.
        #[allow(unsafe_code)]
        unsafe {
            std::arch::asm!("xgetbv", in("ecx") 0u32, out("eax") lo, out("edx") hi, options(nomem, nostack, preserves_flags));
        }
        u64::from(lo) | (u64::from(hi) << 32)
    })
}

/// Size of the legacy FXSAVE region.
pub const FXSAVE_SIZE: usize = 512;
/// Size of the XSAVE header that follows it.
pub const XSAVE_HEADER_SIZE: usize = 64;

/// Where the authoritative copy of a thread's FP/xsave state is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FpStatus {
    /// In the platform (the stub thread that last ran the context); `data`
    /// is stale.
    Live,
    /// In `data`, and the platform holds the same values.
    Saved,
    /// In `data`, newer than the platform's: it is loaded before the thread
    /// runs again.
    Dirty,
}

/// FP/xsave state (XSAVE standard format), fetched lazily.
#[derive(Clone, Debug)]
pub struct FpState {
    data: Vec<u8>,
    status: FpStatus,
}

impl FpState {
    /// The initial state of a new program (`execve`): x87 and SSE in their
    /// reset state (FCW 0x37f, MXCSR 0x1f80), every other component in its
    /// init state.
    pub fn initial() -> Self {
        let mut data = vec![0u8; xsave_size()];
        data[0..2].copy_from_slice(&0x37fu16.to_le_bytes());
        data[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        data[28..32].copy_from_slice(&0xffffu32.to_le_bytes());
        // XSTATE_BV: x87 and SSE are present (with the values above).
        data[FXSAVE_SIZE..FXSAVE_SIZE + 8].copy_from_slice(&3u64.to_le_bytes());
        FpState { data, status: FpStatus::Dirty }
    }

    /// Where the authoritative copy is.
    pub fn status(&self) -> FpStatus {
        self.status
    }

    /// The saved bytes. Valid only when [`status`](Self::status) is not
    /// `Live` (call [`Context::fetch_fp`](crate::Context::fetch_fp) first).
    pub fn bytes(&self) -> &[u8] {
        &self.data
    }

    /// The saved bytes, for changing. Marks the state dirty: the platform
    /// loads it before the thread runs again.
    pub fn bytes_mut(&mut self) -> &mut [u8] {
        self.status = FpStatus::Dirty;
        &mut self.data
    }

    /// For backends: the buffer to fill when fetching, and marks it saved.
    pub fn fill_from_platform(&mut self) -> &mut Vec<u8> {
        self.status = FpStatus::Saved;
        &mut self.data
    }

    /// For backends: the platform now holds the authoritative copy.
    pub fn mark_live(&mut self) {
        self.status = FpStatus::Live;
    }
}

/// Everything the platform needs to run an application thread.
#[derive(Clone, Debug)]
pub struct ArchState {
    /// General-purpose registers, segment selectors and FS/GS base.
    pub regs: Regs,
    /// FP/xsave state.
    pub fp: FpState,
}

impl ArchState {
    /// State for a new program: registers zeroed except the user segment
    /// selectors and `eflags`, FP state initial. The caller sets `rip` and
    /// `rsp`.
    pub fn new_user() -> Self {
        let regs = Regs { cs: 0x33, ss: 0x2b, eflags: 0x202, orig_rax: u64::MAX, ..Regs::default() };
        ArchState { regs, fp: FpState::initial() }
    }
}
