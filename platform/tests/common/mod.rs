//! Shared helpers of the platform tests: application machine code to run
//! in a stub, and a memory file to map it from.
#![allow(dead_code)]

use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use rvisor_platform::ptrace::{Config, PtracePlatform};
use rvisor_platform::systrap::{SystrapConfig, SystrapPlatform};
use rvisor_platform::{AddressSpace, ArchState, Context, FileRange, Platform, Prot};

// Position-independent snippets of application code. Each label is an entry
// point; `syscall` numbers >= 1000 do not exist on the host, so a passthrough
// would fail with ENOSYS rather than do something.
std::arch::global_asm!(
    ".pushsection .text.rvisor_test_code,\"ax\",@progbits",
    ".balign 64",
    ".globl t_code_begin",
    "t_code_begin:",
    // A system call with known arguments, then `exit(rax)`.
    ".globl t_regs",
    "t_regs:",
    "mov rdi, 0x1111",
    "mov rsi, 0x2222",
    "mov rdx, 0x3333",
    "mov r10, 0x4444",
    "mov r8, 0x5555",
    "mov r9, 0x6666",
    "mov eax, 39",
    "syscall",
    ".globl t_regs_after",
    "t_regs_after:",
    "mov rdi, rax",
    "mov eax, 60",
    "syscall",
    "2: jmp 2b",
    // rdi = *(u64 *)rbx; syscall 1000; again.
    ".globl t_read",
    "t_read:",
    "mov rdi, [rbx]",
    "mov eax, 1000",
    "syscall",
    "jmp t_read",
    // *(u64 *)rbx = rcx; syscall 1001; again.
    ".globl t_write",
    "t_write:",
    "mov [rbx], rcx",
    "mov eax, 1001",
    "syscall",
    "jmp t_write",
    // Spin forever.
    ".globl t_spin",
    "t_spin:",
    "jmp t_spin",
    // rdi = *(u64 *)fs:0; syscall 1002.
    ".globl t_fs",
    "t_fs:",
    "mov rdi, fs:[0]",
    "mov eax, 1002",
    "syscall",
    "jmp t_fs",
    // rdi = low half of xmm0; xmm1 = rsi; syscall 1003.
    ".globl t_xmm",
    "t_xmm:",
    "movq rdi, xmm0",
    "movq xmm1, rsi",
    "mov eax, 1003",
    "syscall",
    "jmp t_xmm",
    // A breakpoint.
    ".globl t_int3",
    "t_int3:",
    "int3",
    "jmp t_int3",
    // A divide by zero.
    ".globl t_div0",
    "t_div0:",
    "xor ecx, ecx",
    "xor edx, edx",
    "mov eax, 1",
    "div ecx",
    "jmp t_div0",
    // getpid, issued from application code.
    ".globl t_getpid",
    "t_getpid:",
    "mov eax, 39",
    "syscall",
    "jmp t_getpid",
    // time(NULL) through the legacy vsyscall page.
    ".globl t_vsyscall",
    "t_vsyscall:",
    "xor edi, edi",
    "mov rax, 0xffffffffff600400",
    "call rax",
    "mov rdi, rax",
    "mov eax, 1004",
    "syscall",
    // getpid through the i386 entry: `int 0x80` with eax = 20.
    ".globl t_int80",
    "t_int80:",
    "mov eax, 20",
    "int 0x80",
    "2: jmp 2b",
    ".globl t_code_end",
    "t_code_end:",
    ".popsection",
);

unsafe extern "C" {
    static t_code_begin: u8;
    static t_code_end: u8;
    static t_regs: u8;
    static t_regs_after: u8;
    static t_read: u8;
    static t_write: u8;
    static t_spin: u8;
    static t_fs: u8;
    static t_xmm: u8;
    static t_int3: u8;
    static t_div0: u8;
    static t_getpid: u8;
    static t_vsyscall: u8;
    static t_int80: u8;
}

/// Entry points of the test code.
#[derive(Clone, Copy, Debug)]
pub enum Snippet {
    Regs,
    RegsAfter,
    Read,
    Write,
    Spin,
    Fs,
    Xmm,
    Int3,
    Div0,
    Getpid,
    Vsyscall,
    Int80,
}

fn code() -> &'static [u8] {
    let b = &raw const t_code_begin;
    let e = &raw const t_code_end;
    let len = e as usize - b as usize;
    // SAFETY: [t_code_begin, t_code_end) is the assembled code above, in
    // this binary's read-only text.
    unsafe { std::slice::from_raw_parts(b, len) }
}

fn offset(s: Snippet) -> u64 {
    let p = match s {
        Snippet::Regs => &raw const t_regs,
        Snippet::RegsAfter => &raw const t_regs_after,
        Snippet::Read => &raw const t_read,
        Snippet::Write => &raw const t_write,
        Snippet::Spin => &raw const t_spin,
        Snippet::Fs => &raw const t_fs,
        Snippet::Xmm => &raw const t_xmm,
        Snippet::Int3 => &raw const t_int3,
        Snippet::Div0 => &raw const t_div0,
        Snippet::Getpid => &raw const t_getpid,
        Snippet::Vsyscall => &raw const t_vsyscall,
        Snippet::Int80 => &raw const t_int80,
    };
    p as u64 - (&raw const t_code_begin) as u64
}

/// Where the test maps its pages in the application address space.
pub const CODE: u64 = 0x10_0000;
pub const DATA: u64 = 0x20_0000;

/// The platform under test: systrap (rvisor's default), or ptrace when
/// `$RVISOR_PLATFORM` says so (the test command runs these tests on both).
pub struct TestPlatform {
    inner: Box<dyn Platform>,
    stub_page: u64,
    master_pid: i32,
}

impl TestPlatform {
    pub fn new() -> TestPlatform {
        if Self::systrap() {
            let p = SystrapPlatform::new(SystrapConfig::default()).expect("systrap platform");
            let (stub_page, master_pid) = (p.stub_page(), p.master_pid());
            TestPlatform { inner: Box::new(p), stub_page, master_pid }
        } else {
            let p = PtracePlatform::new(Config::default()).expect("ptrace platform");
            let (stub_page, master_pid) = (p.stub_page(), p.master_pid());
            TestPlatform { inner: Box::new(p), stub_page, master_pid }
        }
    }

    /// Whether the tests run on systrap.
    pub fn systrap() -> bool {
        std::env::var("RVISOR_PLATFORM").map_or(true, |p| p != "ptrace")
    }

    pub fn stub_page(&self) -> u64 {
        self.stub_page
    }

    pub fn master_pid(&self) -> i32 {
        self.master_pid
    }
}

impl std::ops::Deref for TestPlatform {
    type Target = dyn Platform;

    fn deref(&self) -> &(dyn Platform + 'static) {
        self.inner.as_ref()
    }
}

/// A platform, an address space with the test code at [`CODE`] (read,
/// execute) and one data page at [`DATA`] (read, write), both from a
/// memory file, and a context.
pub struct Sandbox {
    pub platform: TestPlatform,
    pub aspace: Box<dyn AddressSpace>,
    pub ctx: Box<dyn Context>,
    pub memfd: OwnedFd,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        let platform = TestPlatform::new();
        let memfd = memfd(2 * 4096);
        let code = code();
        assert!(code.len() <= 4096);
        pwrite(&memfd, code, 0);
        let aspace = platform.new_address_space().expect("address space");
        aspace
            .map(CODE, 4096, Prot::READ | Prot::EXEC, FileRange { fd: memfd.as_fd(), offset: 0 })
            .expect("map code");
        aspace
            .map(DATA, 4096, Prot::READ | Prot::WRITE, FileRange { fd: memfd.as_fd(), offset: 4096 })
            .expect("map data");
        let ctx = platform.new_context().expect("context");
        Sandbox { platform, aspace, ctx, memfd }
    }

    /// Registers to start at `s`.
    pub fn arch_at(&self, s: Snippet) -> ArchState {
        let mut a = ArchState::new_user();
        a.regs.rip = CODE + offset(s);
        a.regs.rbx = DATA;
        a
    }

    /// Reads the u64 at `off` in the data page through the memory file.
    pub fn data_u64(&self, off: u64) -> u64 {
        let mut b = [0u8; 8];
        pread(&self.memfd, &mut b, 4096 + off);
        u64::from_le_bytes(b)
    }

    /// Writes the u64 at `off` in the data page through the memory file.
    pub fn set_data_u64(&self, off: u64, v: u64) {
        pwrite(&self.memfd, &v.to_le_bytes(), 4096 + off);
    }
}

/// Address of snippet `s` once mapped.
pub fn addr_of(s: Snippet) -> u64 {
    CODE + offset(s)
}

pub fn memfd(len: i64) -> OwnedFd {
    // SAFETY: memfd_create with a static NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"rvisor-test".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0, "memfd_create");
    // SAFETY: `fd` was just created and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain-value call on an fd we own.
    assert_eq!(unsafe { libc::ftruncate(std::os::fd::AsRawFd::as_raw_fd(&fd), len) }, 0);
    fd
}

pub fn pwrite(fd: &OwnedFd, buf: &[u8], off: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::from(fd.try_clone().expect("dup"));
    f.write_all_at(buf, off).expect("pwrite");
}

pub fn pread(fd: &OwnedFd, buf: &mut [u8], off: u64) {
    use std::os::unix::fs::FileExt;
    let f = std::fs::File::from(fd.try_clone().expect("dup"));
    f.read_exact_at(buf, off).expect("pread");
}

/// Whether host process `pid` is gone (no such process, or a zombie).
pub fn process_gone(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Err(_) => true,
        Ok(s) => s.rsplit(')').next().is_some_and(|rest| rest.trim_start().starts_with('Z')),
    }
}
