//! The stub: the only code a stub process ever runs besides the
//! application's.
//!
//! It is one page of position-independent machine code, copied to a page
//! above the application's address range (the *stub region*), at the same
//! address in the sentry and in every stub process. The sentry keeps the
//! page mapped (read+execute) so that the master stub it forks inherits it.
//!
//! Entry points:
//! - `init`: run by the master stub right after the sentry's factory thread
//!   forked it, with `r12` pointing at [`InitParams`] (still mapped then). It
//!   arms the parent-death signal, checks its parent, asks to be traced,
//!   leaves the sentry's session, keeps only two of the descriptors it
//!   copied from the sentry (see [`super::files`]), resets signal state, forbids core dumps,
//!   installs the seccomp filter, drops every capability, unmaps everything
//!   but the stub page (the sentry's memory, stack, vDSO and vvar), and
//!   stops with `int3` to tell its tracer it is ready.
//! - `pause`: an idle loop; untraced stub threads wait here to be seized.
//! - `syscall`: `syscall; int3` — the tracer sets the registers of a call,
//!   resumes with `PTRACE_CONT` and collects the result at the `int3` stop.
//! - `batch`: several calls in one stop — `r12` points at a read-only page
//!   of requests (the process's batch page, see [`super::batch`]), `r13`
//!   says how many; each is 8 words (number, six arguments, unused). It
//!   stops at the first call that fails (or an `mmap` that lands elsewhere)
//!   with `rax` = that result and `rbx` = its index, else with `rax` = 0.
//! - `clone`: like `syscall`, but the child of a `clone` goes on to arm its
//!   parent-death signal, checks that its parent is the master stub (whose
//!   pid the tracer put in `r12`) and idles in `pause`.

use std::sync::OnceLock;

use crate::{sys, Error, Result, PAGE_SIZE};

const SYS_RT_SIGACTION: u32 = 13;
const SYS_RT_SIGPROCMASK: u32 = 14;
const SYS_MUNMAP: u32 = 11;
const SYS_PAUSE: u32 = 34;
const SYS_PTRACE: u32 = 101;
const SYS_GETPPID: u32 = 110;
const SYS_SETSID: u32 = 112;
const SYS_CAPSET: u32 = 126;
const SYS_SIGALTSTACK: u32 = 131;
const SYS_PRCTL: u32 = 157;
const SYS_SETRLIMIT: u32 = 160;
const SYS_EXIT_GROUP: u32 = 231;
const SYS_SECCOMP: u32 = 317;
const SYS_DUP3: u32 = 292;
const SYS_CLOSE_RANGE: u32 = 436;

/// What `init` reads through `r12`. Field offsets are used by the assembly.
#[repr(C)]
#[derive(Debug)]
pub(crate) struct InitParams {
    /// Expected parent pid (the sentry's).
    pub ppid: u64, // 0
    /// `struct sock_fprog`: length…
    pub fprog_len: u64, // 8 (u16 + padding)
    /// …and pointer to the filter.
    pub fprog_filter: u64, // 16
    /// Start of the stub region.
    pub stub_start: u64, // 24
    /// End of the stub region.
    pub stub_end: u64, // 32
    /// End of the user address space.
    pub top: u64, // 40
    /// `struct kernel_sigaction` with `SIG_IGN`.
    pub sig_ign: [u64; 4], // 48
    /// `struct kernel_sigaction` with `SIG_DFL`.
    pub sig_dfl: [u64; 4], // 80
    /// `struct __user_cap_header_struct` (version 3, pid 0).
    pub cap_header: [u32; 2], // 112
    /// Two `struct __user_cap_data_struct`, all zero.
    pub cap_data: [u32; 6], // 120
    /// `struct rlimit` {0, 0}.
    pub rlimit_zero: [u64; 2], // 144
    /// An empty signal mask.
    pub empty_mask: u64, // 160
    /// `stack_t` with `SS_DISABLE`.
    pub altstack: [u64; 3], // 168
    /// The descriptor kept as [`super::files::SOCK_FD`] (3 or more).
    pub sock_fd: u64, // 192
    /// The descriptor kept as [`super::files::BATCH_FD`] (3 or more).
    pub batch_fd: u64, // 200
}

// The assembly below addresses InitParams fields by these offsets.
const _: () = {
    use std::mem::offset_of;
    assert!(offset_of!(InitParams, ppid) == 0);
    assert!(offset_of!(InitParams, fprog_len) == 8);
    assert!(offset_of!(InitParams, stub_start) == 24);
    assert!(offset_of!(InitParams, stub_end) == 32);
    assert!(offset_of!(InitParams, top) == 40);
    assert!(offset_of!(InitParams, sig_ign) == 48);
    assert!(offset_of!(InitParams, sig_dfl) == 80);
    assert!(offset_of!(InitParams, cap_header) == 112);
    assert!(offset_of!(InitParams, cap_data) == 120);
    assert!(offset_of!(InitParams, rlimit_zero) == 144);
    assert!(offset_of!(InitParams, empty_mask) == 160);
    assert!(offset_of!(InitParams, altstack) == 168);
    assert!(offset_of!(InitParams, sock_fd) == 192);
    assert!(offset_of!(InitParams, batch_fd) == 200);
    assert!(super::files::SOCK_FD == 0 && super::files::BATCH_FD == 1 && super::files::FIRST_FILE_FD == 2);
};

std::arch::global_asm!(
    ".pushsection .text.rvisor_stub,\"ax\",@progbits",
    ".balign 4096",
    ".globl rvisor_stub_begin",
    "rvisor_stub_begin:",
    // ---- init (master stub, right after fork; r12 = InitParams) ----
    ".globl rvisor_stub_init",
    "rvisor_stub_init:",
    "mov eax, {prctl}",
    "mov edi, 1", // PR_SET_PDEATHSIG
    "mov esi, 9", // SIGKILL
    "syscall",
    "mov eax, {getppid}",
    "syscall",
    "cmp rax, [r12 + 0]",
    "jne .Lrvisor_stub_die",
    "mov eax, {ptrace}",
    "xor edi, edi", // PTRACE_TRACEME
    "xor esi, esi",
    "xor edx, edx",
    "xor r10d, r10d",
    "syscall",
    "test rax, rax",
    "jnz .Lrvisor_stub_die",
    "mov eax, {setsid}",
    "syscall",
    "test rax, rax",
    "js .Lrvisor_stub_die",
    // Keep two descriptors of the sentry's table, copied by the fork: the
    // file channel as 0 and the batch file as 1. Close every other.
    "mov eax, {dup3}",
    "mov rdi, [r12 + 192]",
    "xor esi, esi",
    "xor edx, edx",
    "syscall",
    "test rax, rax",
    "jnz .Lrvisor_stub_die",
    "mov eax, {dup3}",
    "mov rdi, [r12 + 200]",
    "mov esi, 1",
    "xor edx, edx",
    "syscall",
    "cmp rax, 1",
    "jne .Lrvisor_stub_die",
    "mov eax, {close_range}",
    "mov edi, 2",
    "mov esi, -1",
    "xor edx, edx",
    "syscall",
    "test rax, rax",
    "jnz .Lrvisor_stub_die",
    // Reset every signal disposition inherited from the sentry (errors for
    // SIGKILL, SIGSTOP and unused numbers are expected and ignored).
    "mov ebx, 1",
    "2:",
    "mov eax, {rt_sigaction}",
    "mov edi, ebx",
    "lea rsi, [r12 + 80]",
    "xor edx, edx",
    "mov r10d, 8",
    "syscall",
    "inc ebx",
    "cmp ebx, 65",
    "jne 2b",
    // SIGCHLD ignored: stub processes are reaped without a wait.
    "mov eax, {rt_sigaction}",
    "mov edi, 17",
    "lea rsi, [r12 + 48]",
    "xor edx, edx",
    "mov r10d, 8",
    "syscall",
    "test rax, rax",
    "jnz .Lrvisor_stub_die",
    "mov eax, {rt_sigprocmask}",
    "mov edi, 2", // SIG_SETMASK
    "lea rsi, [r12 + 160]",
    "xor edx, edx",
    "mov r10d, 8",
    "syscall",
    "test rax, rax",
    "jnz .Lrvisor_stub_die",
    "mov eax, {sigaltstack}",
    "lea rdi, [r12 + 168]",
    "xor esi, esi",
    "syscall",
    "mov eax, {setrlimit}",
    "mov edi, 4", // RLIMIT_CORE
    "lea rsi, [r12 + 144]",
    "syscall",
    "test rax, rax",
    "jnz .Lrvisor_stub_die",
    "mov eax, {prctl}",
    "mov edi, 38", // PR_SET_NO_NEW_PRIVS
    "mov esi, 1",
    "xor edx, edx",
    "xor r10d, r10d",
    "xor r8d, r8d",
    "syscall",
    "test rax, rax",
    "jnz .Lrvisor_stub_die",
    "mov eax, {seccomp}",
    "mov edi, 1", // SECCOMP_SET_MODE_FILTER
    "xor esi, esi",
    "lea rdx, [r12 + 8]",
    "syscall",
    "test rax, rax",
    "jnz .Lrvisor_stub_die",
    "mov eax, {capset}",
    "lea rdi, [r12 + 112]",
    "lea rsi, [r12 + 120]",
    "syscall",
    "test rax, rax",
    "jnz .Lrvisor_stub_die",
    // Unmap everything but the stub region. InitParams goes away with the
    // first munmap, so load what the second needs first.
    "mov r13, [r12 + 24]",
    "mov r14, [r12 + 32]",
    "mov r15, [r12 + 40]",
    "mov eax, {munmap}",
    "xor edi, edi",
    "mov rsi, r13",
    "syscall",
    "test rax, rax",
    "jnz .Lrvisor_stub_die",
    "cmp r14, r15",
    "jae 3f",
    "mov eax, {munmap}",
    "mov rdi, r14",
    "mov rsi, r15",
    "sub rsi, r14",
    "syscall",
    "test rax, rax",
    "jnz .Lrvisor_stub_die",
    "3:",
    "xor r12d, r12d",
    "int3",
    "jmp .Lrvisor_stub_pause",
    ".Lrvisor_stub_die:",
    "mov eax, {exit_group}",
    "mov edi, 1",
    "syscall",
    "ud2",
    // ---- pause: untraced stub threads idle here ----
    ".globl rvisor_stub_pause",
    "rvisor_stub_pause:",
    ".Lrvisor_stub_pause:",
    "mov eax, {pause}",
    "syscall",
    "jmp .Lrvisor_stub_pause",
    // ---- syscall: one injected system call ----
    ".globl rvisor_stub_syscall",
    "rvisor_stub_syscall:",
    "syscall",
    ".globl rvisor_stub_syscall_trap",
    "rvisor_stub_syscall_trap:",
    "int3",
    "jmp .Lrvisor_stub_pause",
    // ---- batch: r13 calls described at r12 ----
    ".globl rvisor_stub_batch",
    "rvisor_stub_batch:",
    "xor ebx, ebx",
    "5:",
    "cmp rbx, r13",
    "jae 6f",
    "mov r14, rbx",
    "shl r14, 6",
    "add r14, r12",
    "mov rax, [r14]",
    "mov rdi, [r14 + 8]",
    "mov rsi, [r14 + 16]",
    "mov rdx, [r14 + 24]",
    "mov r10, [r14 + 32]",
    "mov r8, [r14 + 40]",
    "mov r9, [r14 + 48]",
    "syscall",
    "cmp rax, -4095",
    "jae 7f",
    "cmp qword ptr [r14], 9", // mmap must land where asked
    "jne 8f",
    "cmp rax, rdi",
    "jne 7f",
    "8:",
    "inc rbx",
    "jmp 5b",
    "6:",
    "xor eax, eax",
    "7:",
    ".globl rvisor_stub_batch_trap",
    "rvisor_stub_batch_trap:",
    "int3",
    "jmp .Lrvisor_stub_pause",
    // ---- clone: an injected clone; the child idles ----
    ".globl rvisor_stub_clone",
    "rvisor_stub_clone:",
    "syscall",
    "test rax, rax",
    "jz 4f",
    ".globl rvisor_stub_clone_trap",
    "rvisor_stub_clone_trap:",
    "int3",
    "jmp .Lrvisor_stub_pause",
    "4:",
    "mov eax, {prctl}",
    "mov edi, 1", // PR_SET_PDEATHSIG
    "mov esi, 9", // SIGKILL
    "syscall",
    "mov eax, {getppid}",
    "syscall",
    "cmp rax, r12",
    "jne .Lrvisor_stub_die",
    "jmp .Lrvisor_stub_pause",
    // ---- systrap: the signal handler of application threads ----
    // Entered on the thread's signal stack (inside its context slot, see
    // super::systrap) with rdi = signo, rsi = siginfo, rdx = ucontext and
    // rsp at the frame. Every register is in the frame, so any may be used.
    // It saves the FS/GS bases, publishes "trapped", waits (spinning, then
    // sleeping) for the sentry's "resume", and returns through
    // rt_sigreturn into the registers the sentry left in the frame.
    ".globl rvisor_stub_systrap_handler",
    "rvisor_stub_systrap_handler:",
    "mov rbx, rsp",
    "and rbx, {slot_mask}",
    "mov [rbx + {h_uctx}], rdx",
    "rdfsbase rax",
    "mov [rbx + {h_fs}], rax",
    "rdgsbase rax",
    "mov [rbx + {h_gs}], rax",
    "mov eax, {trapped}",
    "xchg [rbx], eax",
    "cmp eax, {sentry_sleeps}",
    "jne 21f",
    "mov eax, {futex}",
    "mov rdi, rbx",
    "mov esi, 1", // FUTEX_WAKE
    "mov edx, 1",
    "syscall",
    "21:",
    "mov rcx, [rbx + {h_spin}]",
    // RESUME, or SENTRY_SLEEPS (the sentry answered, then went to sleep
    // before this thread saw the answer): return to the application.
    "22:",
    "mov eax, [rbx]",
    "cmp eax, {resume}",
    "je 25f",
    "cmp eax, {sentry_sleeps}",
    "je 25f",
    "test rcx, rcx",
    "jz 23f",
    "pause",
    "dec rcx",
    "jmp 22b",
    "23:",
    "mov eax, {trapped}",
    "mov edx, {stub_sleeps}",
    "lock cmpxchg [rbx], edx",
    "jne 24f",
    "26:",
    "mov eax, {futex}",
    "mov rdi, rbx",
    "xor esi, esi", // FUTEX_WAIT
    "mov edx, {stub_sleeps}",
    "xor r10d, r10d",
    "syscall",
    "24:",
    "mov eax, [rbx]",
    "cmp eax, {resume}",
    "je 25f",
    "cmp eax, {sentry_sleeps}",
    "je 25f",
    "cmp eax, {stub_sleeps}",
    "je 26b",
    "jmp 23b",
    "25:",
    "cmp qword ptr [rbx + {h_cmd}], 1",
    "je 27f",
    "mov rax, [rbx + {h_fs}]",
    "wrfsbase rax",
    "mov rax, [rbx + {h_gs}]",
    "wrgsbase rax",
    "add rsp, 8",
    ".globl rvisor_stub_systrap_restorer",
    "rvisor_stub_systrap_restorer:",
    "mov eax, 15", // rt_sigreturn
    "syscall",
    "ud2",
    "27:",
    "mov eax, 60", // exit
    "xor edi, edi",
    "syscall",
    "ud2",
    // A new application thread's first stop: the handler's first report.
    ".globl rvisor_stub_systrap_park",
    "rvisor_stub_systrap_park:",
    "ud2",
    ".globl rvisor_stub_end",
    "rvisor_stub_end:",
    ".balign 4096",
    ".popsection",
    prctl = const SYS_PRCTL,
    getppid = const SYS_GETPPID,
    ptrace = const SYS_PTRACE,
    setsid = const SYS_SETSID,
    rt_sigaction = const SYS_RT_SIGACTION,
    rt_sigprocmask = const SYS_RT_SIGPROCMASK,
    sigaltstack = const SYS_SIGALTSTACK,
    setrlimit = const SYS_SETRLIMIT,
    seccomp = const SYS_SECCOMP,
    capset = const SYS_CAPSET,
    munmap = const SYS_MUNMAP,
    exit_group = const SYS_EXIT_GROUP,
    pause = const SYS_PAUSE,
    dup3 = const SYS_DUP3,
    close_range = const SYS_CLOSE_RANGE,
    futex = const 202u32,
    slot_mask = const super::systrap::SLOT_MASK,
    h_uctx = const super::systrap::H_UCTX,
    h_spin = const super::systrap::H_SPIN,
    h_fs = const super::systrap::H_FS,
    h_gs = const super::systrap::H_GS,
    h_cmd = const super::systrap::H_CMD,
    trapped = const super::systrap::TRAPPED,
    resume = const super::systrap::RESUME,
    stub_sleeps = const super::systrap::STUB_SLEEPS,
    sentry_sleeps = const super::systrap::SENTRY_SLEEPS,
);

unsafe extern "C" {
    static rvisor_stub_begin: u8;
    static rvisor_stub_end: u8;
    static rvisor_stub_init: u8;
    static rvisor_stub_pause: u8;
    static rvisor_stub_syscall: u8;
    static rvisor_stub_syscall_trap: u8;
    static rvisor_stub_clone: u8;
    static rvisor_stub_clone_trap: u8;
    static rvisor_stub_batch: u8;
    static rvisor_stub_batch_trap: u8;
    static rvisor_stub_systrap_handler: u8;
    static rvisor_stub_systrap_restorer: u8;
    static rvisor_stub_systrap_park: u8;
}

/// Offsets of the entry points in the stub page.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Offsets {
    pub init: u64,
    pub pause: u64,
    pub syscall: u64,
    pub syscall_trap: u64,
    pub clone: u64,
    pub clone_trap: u64,
    pub batch: u64,
    pub batch_trap: u64,
    pub systrap_handler: u64,
    pub systrap_restorer: u64,
    pub systrap_park: u64,
}

fn code() -> (&'static [u8], Offsets) {
    let begin = (&raw const rvisor_stub_begin) as u64;
    let end = (&raw const rvisor_stub_end) as u64;
    let off = |p: *const u8| p as u64 - begin;
    let offsets = Offsets {
        init: off(&raw const rvisor_stub_init),
        pause: off(&raw const rvisor_stub_pause),
        syscall: off(&raw const rvisor_stub_syscall),
        syscall_trap: off(&raw const rvisor_stub_syscall_trap),
        clone: off(&raw const rvisor_stub_clone),
        clone_trap: off(&raw const rvisor_stub_clone_trap),
        batch: off(&raw const rvisor_stub_batch),
        batch_trap: off(&raw const rvisor_stub_batch_trap),
        systrap_handler: off(&raw const rvisor_stub_systrap_handler),
        systrap_restorer: off(&raw const rvisor_stub_systrap_restorer),
        systrap_park: off(&raw const rvisor_stub_systrap_park),
    };
    let len = usize::try_from(end - begin).unwrap_or(0);
    assert!(len > 0 && len as u64 <= PAGE_SIZE, "stub code must fit one page");
    // SAFETY: [begin, end) is the assembled stub code above, in the
    // read-only text of this binary, alive for the whole program.
    let bytes = unsafe { std::slice::from_raw_parts(&raw const rvisor_stub_begin, len) };
    (bytes, offsets)
}

/// End of the user address space on x86_64 with 4-level paging.
pub(crate) const TASK_TOP: u64 = 0x7fff_ffff_f000;

/// The stub region: where the stub code lives in the sentry and in every
/// stub process. Application mappings stay below `start`.
#[derive(Debug)]
pub(crate) struct StubRegion {
    /// First byte (page aligned).
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Length of the code at `start`.
    pub code_len: u64,
    /// Entry points.
    pub off: Offsets,
}

impl StubRegion {
    /// Absolute address of an entry point.
    pub fn addr(&self, off: u64) -> u64 {
        self.start + off
    }

    /// The process-wide stub region, reserved and filled on first use.
    pub fn get() -> Result<&'static StubRegion> {
        static REGION: OnceLock<std::result::Result<StubRegion, String>> = OnceLock::new();
        REGION
            .get_or_init(|| Self::reserve().map_err(|e| e.to_string()))
            .as_ref()
            .map_err(|e| Error::Internal(format!("stub region: {e}")))
    }

    fn reserve() -> Result<StubRegion> {
        let (bytes, off) = code();
        let len = PAGE_SIZE;
        let len_us = 4096usize;
        for _ in 0..16 {
            let start = choose_start(len)?;
            // SAFETY: mapping a fresh anonymous page at an address we found
            // free; MAP_FIXED_NOREPLACE fails rather than replace anything.
            let p = unsafe {
                libc::mmap(
                    start as *mut libc::c_void,
                    len_us,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED_NOREPLACE,
                    -1,
                    0,
                )
            };
            if p == libc::MAP_FAILED {
                // Someone mapped it meanwhile: look again.
                continue;
            }
            if p as u64 != start {
                // Old kernels ignore MAP_FIXED_NOREPLACE and treat it as a hint.
                // SAFETY: unmapping the page this call just mapped.
                unsafe { libc::munmap(p, len_us) };
                continue;
            }
            // SAFETY: `p` is a fresh writable page of `len` bytes; the code is
            // at most one page (checked in `code`).
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p.cast::<u8>(), bytes.len()) };
            // SAFETY: changing the protections of the page mapped above.
            if unsafe { libc::mprotect(p, len_us, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
                return Err(Error::os("mprotect stub page"));
            }
            return Ok(StubRegion { start, end: start + len, code_len: bytes.len() as u64, off });
        }
        Err(Error::Internal("no free place for the stub page".into()))
    }
}

/// Finds the highest free page-aligned range of `len` bytes that does not
/// cross a 4 GiB boundary and leaves room for the main thread's stack to
/// grow (the stub page must never sit in the stack's growth area).
fn choose_start(len: u64) -> Result<u64> {
    let maps = std::fs::read_to_string("/proc/self/maps")
        .map_err(|e| Error::Os { op: "read /proc/self/maps", err: e })?;
    let mut busy: Vec<(u64, u64)> = Vec::new();
    for line in maps.lines() {
        let Some(range) = line.split_whitespace().next() else { continue };
        let Some((a, b)) = range.split_once('-') else { continue };
        let (Ok(a), Ok(b)) = (u64::from_str_radix(a, 16), u64::from_str_radix(b, 16)) else {
            continue;
        };
        if a >= TASK_TOP {
            continue;
        }
        if line.ends_with("[stack]") {
            // Keep the stack's growth area (RLIMIT_STACK, generously) free.
            busy.push((a.saturating_sub(STACK_RESERVE), b));
        } else {
            busy.push((a, b));
        }
    }
    busy.sort_unstable();
    let mut candidate = TASK_TOP - len;
    loop {
        if let Some(&(a, _)) = busy.iter().find(|&&(a, b)| a < candidate + len && candidate < b) {
            candidate = a.checked_sub(len).ok_or_else(|| Error::Internal("address space full".into()))?;
            candidate &= !(PAGE_SIZE - 1);
            continue;
        }
        if candidate >> 32 != (candidate + len - 1) >> 32 {
            candidate = ((candidate + len - 1) & !0xffff_ffff) - len;
            continue;
        }
        return Ok(candidate);
    }
}

const STACK_RESERVE: u64 = 256 << 20;

/// The thread's glibc rseq registration, undone so that a process forked
/// from this thread does not inherit an rseq area that the stub unmaps (the
/// kernel would raise SIGSEGV in the stub on its next preemption). False
/// if it is still registered: no stub may be forked from this thread then.
pub(crate) fn unregister_rseq() -> bool {
    unsafe extern "C" {
        static __rseq_offset: isize;
        static __rseq_size: u32;
    }
    // SAFETY: glibc (2.35+) defines these read-only variables.
    let (offset, size) = unsafe { (__rseq_offset, __rseq_size) };
    if size == 0 {
        return true;
    }
    let area = sys::thread_pointer().wrapping_add_signed(offset);
    const RSEQ_SIG: u32 = 0x5305_3053;
    // glibc 2.35/2.36 register the whole 32-byte area; later versions
    // register __rseq_size (at least 32).
    for len in [32u32, size] {
        // SAFETY: unregistering the calling thread's rseq area; the kernel
        // only compares the arguments with the registration.
        let r = unsafe { libc::syscall(libc::SYS_rseq, area, len, 1, RSEQ_SIG) };
        if r == 0 {
            return true;
        }
    }
    false
}
