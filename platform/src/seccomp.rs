//! The stub processes' seccomp filter.
//!
//! A stub may make a system call only from its own code, and only the calls
//! the stub's code makes. `PTRACE_SYSEMU` stops and skips every application
//! system call before seccomp runs, so this filter is what stands between
//! application code and the host whenever a stub runs without `SYSEMU`
//! (while the sentry injects a call, or in the instant between a tracer's
//! death and the `PTRACE_O_EXITKILL` kill). Two conditions, both needed:
//!
//! 1. The instruction pointer the kernel reports (the address *after* the
//!    `syscall` instruction) lies in `[code + 2, code + len]`: the
//!    instruction itself is inside the stub's code, not two bytes before
//!    it in application memory.
//! 2. The call is one the stub makes, with the arguments it uses: the
//!    application can jump into the stub's code with registers of its
//!    choosing, so an address check alone would prove nothing (nor would
//!    a check of numbers alone: the stub needs `mmap` and `clone`).
//!
//! Anything else kills the whole stub process. The program is built from a
//! small assembler with labels; [`run`] interprets it in the unit tests.

/// One classic-BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const BPF_JGT_K: u16 = 0x25; // BPF_JMP | BPF_JGT | BPF_K
const BPF_JSET_K: u16 = 0x45; // BPF_JMP | BPF_JSET | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const SECCOMP_RET_TRAP: u32 = 0x0003_0000;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

// Offsets in struct seccomp_data.
const OFF_NR: u32 = 0;
const OFF_ARCH: u32 = 4;
const OFF_IP_LO: u32 = 8;
const OFF_IP_HI: u32 = 12;
fn arg_lo(i: u32) -> u32 {
    16 + 8 * i
}
fn arg_hi(i: u32) -> u32 {
    20 + 8 * i
}

/// The flags of the stub's `recvmsg` (`MSG_DONTWAIT`).
pub const RECV_FLAGS: u32 = 0x40;

/// System calls the stub code makes after its filter is installed.
pub mod allowed {
    /// Injected by the sentry to change the address space.
    pub const MMAP: u32 = 9;
    /// See [`MMAP`].
    pub const MPROTECT: u32 = 10;
    /// See [`MMAP`]; also the stub's own start-up.
    pub const MUNMAP: u32 = 11;
    /// The idle loop.
    pub const PAUSE: u32 = 34;
    /// Receiving a file to map, from descriptor 0 only, with one set of
    /// flags (both checked).
    pub const RECVMSG: u32 = 47;
    /// Closing the received files, from descriptor 2 up (checked).
    pub const CLOSE_RANGE: u32 = 436;
    /// New stub processes and threads (argument checked).
    pub const CLONE: u32 = 56;
    /// A stub thread's end.
    pub const EXIT: u32 = 60;
    /// Checking the parent after a clone.
    pub const GETPPID: u32 = 110;
    /// Dropping capabilities at start-up.
    pub const CAPSET: u32 = 126;
    /// Only `PR_SET_PDEATHSIG, SIGKILL` (checked).
    pub const PRCTL: u32 = 157;
    /// Only `CLOCK_THREAD_CPUTIME_ID` (checked): the stub thread's CPU
    /// time, asked for by the sentry.
    pub const CLOCK_GETTIME: u32 = 228;
    /// Giving up when the parent is gone.
    pub const EXIT_GROUP: u32 = 231;
    /// Systrap: the signal handler's hand-off (`FUTEX_WAIT`/`FUTEX_WAKE`
    /// only, checked; application threads only on their context words).
    pub const FUTEX: u32 = 202;
    /// Systrap: the signal handler's return into application code.
    pub const RT_SIGRETURN: u32 = 15;
    /// Systrap: installing the handler (injected).
    pub const RT_SIGACTION: u32 = 13;
    /// Systrap: a stub thread's signal stack (injected).
    pub const SIGALTSTACK: u32 = 131;
    /// Systrap: the word cleared when a stub thread dies (injected).
    pub const SET_TID_ADDRESS: u32 = 218;
    /// Systrap: an application thread's own filter (injected;
    /// `SECCOMP_SET_MODE_FILTER` with no flags, checked).
    pub const SECCOMP: u32 = 317;
    /// Systrap: a new process's context area (injected by the factory;
    /// no flags, checked).
    pub const MEMFD_CREATE: u32 = 319;
    /// Systrap: sizing the context area (injected).
    pub const FTRUNCATE: u32 = 77;
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum L {
    Allow,
    Kill,
    Clone,
    Prctl,
    Clock,
    Recv,
    CloseRange,
    Trap,
    Futex,
    Seccomp,
    AppTrap,
    Memfd,
}

enum I {
    Ld(u32),
    Jmp(u16, u32, Option<L>, Option<L>),
    Ret(u32),
    Label(L),
}

/// Resolves labels: a `None` target is the next instruction.
fn assemble(prog: &[I]) -> Vec<SockFilter> {
    let mut at = std::collections::HashMap::new();
    let mut n = 0usize;
    for i in prog {
        match i {
            I::Label(l) => {
                at.insert(*l, n);
            }
            _ => n += 1,
        }
    }
    let mut out = Vec::with_capacity(n);
    for i in prog {
        let pc = out.len();
        let rel = |t: &Option<L>| -> u8 {
            t.map_or(0, |l| u8::try_from(at[&l] - pc - 1).expect("BPF jump too far"))
        };
        match i {
            I::Ld(off) => out.push(SockFilter { code: BPF_LD_W_ABS, jt: 0, jf: 0, k: *off }),
            I::Jmp(code, k, t, f) => out.push(SockFilter { code: *code, jt: rel(t), jf: rel(f), k: *k }),
            I::Ret(k) => out.push(SockFilter { code: BPF_RET_K, jt: 0, jf: 0, k: *k }),
            I::Label(_) => {}
        }
    }
    out
}

/// The stub filter. `code_start..code_start+code_len` is the stub's code
/// (not crossing a 4 GiB boundary); `clone_flags` are the only flag sets
/// `clone` may be called with. With `systrap`, a system call from outside
/// the stub's code (or of another ABI) raises `SIGSYS` in the thread
/// instead of killing the process (the systrap handler reports it to the
/// sentry), and the calls the systrap handler and its set-up make are
/// allowed too.
pub fn stub_filter(code_start: u64, code_len: u64, clone_flags: &[u32], systrap: bool) -> Vec<SockFilter> {
    let first_ip = code_start + 2;
    let last_ip = code_start + code_len;
    assert!(code_len >= 2 && first_ip >> 32 == last_ip >> 32, "stub code must not cross 4 GiB");
    let hi = u32::try_from(first_ip >> 32).unwrap_or(u32::MAX);
    let lo_first = u32::try_from(first_ip & 0xffff_ffff).unwrap_or(u32::MAX);
    let lo_last = u32::try_from(last_ip & 0xffff_ffff).unwrap_or(0);
    use allowed::*;
    use I::*;
    let eq = |k, t: L| Jmp(BPF_JEQ_K, k, Some(t), None);
    // Where application calls go: a kill under ptrace (they never reach
    // seccomp there, see above), the thread's SIGSYS handler under systrap.
    let app = if systrap { L::Trap } else { L::Kill };
    let mut p = vec![
        // x86_64 only: an `int 0x80` is judged with i386 numbers.
        Ld(OFF_ARCH),
        Jmp(BPF_JEQ_K, AUDIT_ARCH_X86_64, None, Some(app)),
        // The `syscall` instruction lies inside the stub's code.
        Ld(OFF_IP_HI),
        Jmp(BPF_JEQ_K, hi, None, Some(app)),
        Ld(OFF_IP_LO),
        Jmp(BPF_JGE_K, lo_first, None, Some(app)),
        Jmp(BPF_JGT_K, lo_last, Some(app), None),
        // And it is one the stub makes (x32 numbers never match).
        Ld(OFF_NR),
        eq(MMAP, L::Allow),
        eq(MPROTECT, L::Allow),
        eq(MUNMAP, L::Allow),
        eq(PAUSE, L::Allow),
        eq(EXIT, L::Allow),
        eq(EXIT_GROUP, L::Allow),
        eq(GETPPID, L::Allow),
        eq(CAPSET, L::Allow),
        eq(CLONE, L::Clone),
        eq(PRCTL, L::Prctl),
        eq(CLOCK_GETTIME, L::Clock),
        eq(RECVMSG, L::Recv),
        eq(CLOSE_RANGE, L::CloseRange),
    ];
    if systrap {
        p.extend([
            eq(RT_SIGRETURN, L::Allow),
            eq(RT_SIGACTION, L::Allow),
            eq(SIGALTSTACK, L::Allow),
            eq(SET_TID_ADDRESS, L::Allow),
            eq(FUTEX, L::Futex),
            eq(SECCOMP, L::Seccomp),
            eq(MEMFD_CREATE, L::Memfd),
            eq(FTRUNCATE, L::Allow),
        ]);
    }
    p.extend([
        Ret(SECCOMP_RET_KILL_PROCESS),
        // clone: exactly one of the stub's flag sets.
        Label(L::Clone),
        Ld(arg_hi(0)),
        Jmp(BPF_JEQ_K, 0, None, Some(L::Kill)),
        Ld(arg_lo(0)),
    ]);
    for &f in clone_flags {
        p.push(eq(f, L::Allow));
    }
    p.push(Ret(SECCOMP_RET_KILL_PROCESS));
    // A call allowed only with these (argument, value) pairs: each
    // argument's high and low halves are compared, anything else kills.
    let allow_if = |label: L, args: &[(u32, u32)]| {
        let mut v = vec![Label(label)];
        for &(i, k) in args {
            v.extend([
                Ld(arg_hi(i)),
                Jmp(BPF_JEQ_K, 0, None, Some(L::Kill)),
                Ld(arg_lo(i)),
                Jmp(BPF_JEQ_K, k, None, Some(L::Kill)),
            ]);
        }
        v.push(Ret(SECCOMP_RET_ALLOW));
        v
    };
    // prctl: PR_SET_PDEATHSIG (1), SIGKILL (9) only.
    p.extend(allow_if(L::Prctl, &[(0, 1), (1, 9)]));
    // clock_gettime: CLOCK_THREAD_CPUTIME_ID (3) only; on systrap also the
    // scheduler clock of one thread, `(~tid << 3) | 6` (the kernel answers
    // it only for a thread of the caller's own process: the sentry reads
    // its application threads' CPU time so).
    if systrap {
        p.extend([
            Label(L::Clock),
            Ld(arg_hi(0)),
            Jmp(BPF_JEQ_K, 0, None, Some(L::Kill)),
            Ld(arg_lo(0)),
            Jmp(BPF_JEQ_K, 3, Some(L::Allow), None),
            Jmp(BPF_JSET_K, 1, Some(L::Kill), None),
            Jmp(BPF_JSET_K, 4, None, Some(L::Kill)),
            Jmp(BPF_JSET_K, 2, Some(L::Allow), Some(L::Kill)),
        ]);
    } else {
        p.extend(allow_if(L::Clock, &[(0, 3)]));
    }
    // recvmsg(0, msg, MSG_DONTWAIT): the stub's end of the file channel.
    p.extend(allow_if(L::Recv, &[(0, 0), (2, RECV_FLAGS)]));
    // close_range(2, …, 0): the received files, never the channel or the
    // batch file.
    p.extend(allow_if(L::CloseRange, &[(0, 2), (2, 0)]));
    if systrap {
        // seccomp(SECCOMP_SET_MODE_FILTER, 0, …): an application thread's
        // filter, never SECCOMP_FILTER_FLAG_TSYNC or another operation.
        p.extend(allow_if(L::Seccomp, &[(0, 1), (1, 0)]));
        // memfd_create(name, 0).
        p.extend(allow_if(L::Memfd, &[(1, 0)]));
        p.extend(futex_op_check(L::Futex, L::Kill));
        p.extend([Label(L::Trap), Ret(SECCOMP_RET_TRAP)]);
    }
    p.extend([Label(L::Allow), Ret(SECCOMP_RET_ALLOW), Label(L::Kill), Ret(SECCOMP_RET_KILL_PROCESS)]);
    assemble(&p)
}

/// `futex` with operation `FUTEX_WAIT` (0) or `FUTEX_WAKE` (1), shared
/// (the words are in memory the sentry maps too): to `L::Allow`, anything
/// else to `deny`.
fn futex_op_check(label: L, deny: L) -> Vec<I> {
    use I::*;
    vec![
        Label(label),
        Ld(arg_hi(1)),
        Jmp(BPF_JEQ_K, 0, None, Some(deny)),
        Ld(arg_lo(1)),
        Jmp(BPF_JEQ_K, 0, Some(L::Allow), None),
        Jmp(BPF_JEQ_K, 1, Some(L::Allow), Some(deny)),
    ]
}

/// The filter a systrap application thread adds to the stub filter before
/// it first runs application code (filters stack: the strictest answer
/// wins). Whatever the instruction pointer, the thread may make only the
/// calls of the systrap handler: `futex` on its context words (inside
/// `[area_start, area_end)`, which must not cross a 4 GiB boundary),
/// `rt_sigreturn` and `exit`. Everything else, including the stub's own
/// address-space and descriptor calls reached by a jump into the stub's
/// code, raises `SIGSYS`, which the sentry sees as the application's
/// system call.
pub fn app_thread_filter(area_start: u64, area_end: u64) -> Vec<SockFilter> {
    let last = area_end - 1;
    assert!(area_start < area_end && area_start >> 32 == last >> 32, "systrap area must not cross 4 GiB");
    let hi = u32::try_from(area_start >> 32).unwrap_or(u32::MAX);
    let lo_start = u32::try_from(area_start & 0xffff_ffff).unwrap_or(u32::MAX);
    let lo_last = u32::try_from(last & 0xffff_ffff).unwrap_or(0);
    use allowed::*;
    use I::*;
    let mut p = vec![
        Ld(OFF_ARCH),
        Jmp(BPF_JEQ_K, AUDIT_ARCH_X86_64, None, Some(L::AppTrap)),
        Ld(OFF_NR),
        Jmp(BPF_JEQ_K, RT_SIGRETURN, Some(L::Allow), None),
        Jmp(BPF_JEQ_K, EXIT, Some(L::Allow), None),
        Jmp(BPF_JEQ_K, FUTEX, None, Some(L::AppTrap)),
        Ld(arg_hi(0)),
        Jmp(BPF_JEQ_K, hi, None, Some(L::AppTrap)),
        Ld(arg_lo(0)),
        Jmp(BPF_JGE_K, lo_start, None, Some(L::AppTrap)),
        Jmp(BPF_JGT_K, lo_last, Some(L::AppTrap), Some(L::Futex)),
    ];
    p.extend(futex_op_check(L::Futex, L::AppTrap));
    p.extend([Label(L::AppTrap), Ret(SECCOMP_RET_TRAP), Label(L::Allow), Ret(SECCOMP_RET_ALLOW)]);
    assemble(&p)
}

/// What the kernel gives a filter, for [`run`].
#[cfg(test)]
#[derive(Clone, Copy, Debug)]
pub struct Data {
    pub nr: u32,
    pub arch: u32,
    pub ip: u64,
    pub args: [u64; 6],
}

/// Interprets `prog` (for unit tests).
#[cfg(test)]
pub fn run(prog: &[SockFilter], d: Data) -> u32 {
    let mut acc = 0u32;
    let mut pc = 0usize;
    loop {
        let ins = prog[pc];
        match ins.code {
            BPF_LD_W_ABS => {
                acc = match ins.k {
                    OFF_NR => d.nr,
                    OFF_ARCH => d.arch,
                    OFF_IP_LO => (d.ip & 0xffff_ffff) as u32,
                    OFF_IP_HI => (d.ip >> 32) as u32,
                    k if (16..64).contains(&k) => {
                        let a = d.args[((k - 16) / 8) as usize];
                        if k % 8 == 0 {
                            (a & 0xffff_ffff) as u32
                        } else {
                            (a >> 32) as u32
                        }
                    }
                    _ => panic!("load"),
                };
                pc += 1;
            }
            BPF_JEQ_K | BPF_JGE_K | BPF_JGT_K | BPF_JSET_K => {
                let t = match ins.code {
                    BPF_JEQ_K => acc == ins.k,
                    BPF_JGE_K => acc >= ins.k,
                    BPF_JSET_K => acc & ins.k != 0,
                    _ => acc > ins.k,
                };
                pc += 1 + usize::from(if t { ins.jt } else { ins.jf });
            }
            BPF_RET_K => return ins.k,
            _ => panic!("op"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const START: u64 = 0x7fff_fffe_0000;
    const LEN: u64 = 0x300;
    const FORK: u32 = 0x400 | 17;
    const THREAD: u32 = 0x50f00;

    fn filter() -> Vec<SockFilter> {
        stub_filter(START, LEN, &[FORK, THREAD], false)
    }

    fn call(nr: u32, ip: u64, args: [u64; 6]) -> u32 {
        run(&filter(), Data { nr, arch: AUDIT_ARCH_X86_64, ip, args })
    }

    const A: u32 = SECCOMP_RET_ALLOW;
    const K: u32 = SECCOMP_RET_KILL_PROCESS;

    #[test]
    fn only_syscall_instructions_inside_the_stub_code() {
        let inside = START + 0x20;
        assert_eq!(call(allowed::MMAP, inside, [0; 6]), A);
        // The reported ip is after the instruction: start+2 is the first.
        assert_eq!(call(allowed::MMAP, START + 2, [0; 6]), A);
        assert_eq!(call(allowed::MMAP, START + LEN, [0; 6]), A);
        // A `syscall` in the last two bytes of the page below the stub.
        assert_eq!(call(allowed::MMAP, START, [0; 6]), K);
        assert_eq!(call(allowed::MMAP, START + 1, [0; 6]), K);
        assert_eq!(call(allowed::MMAP, START + LEN + 1, [0; 6]), K);
        assert_eq!(call(allowed::MMAP, 0x40_1000, [0; 6]), K);
        assert_eq!(call(allowed::MMAP, inside + (1 << 32), [0; 6]), K);
        let i386 = Data { nr: allowed::MMAP, arch: 0x4000_0003, ip: inside, args: [0; 6] };
        assert_eq!(run(&filter(), i386), K);
    }

    #[test]
    fn only_the_stubs_own_calls_and_arguments() {
        let ip = START + 0x40;
        for nr in [0u32, 1, 2, 39, 59, 62, 101, 257, 317, 322, 435, 0x4000_0009] {
            assert_eq!(call(nr, ip, [0; 6]), K, "syscall {nr}");
        }
        assert_eq!(call(allowed::CLONE, ip, [u64::from(FORK), 0, 0, 0, 0, 0]), A);
        assert_eq!(call(allowed::CLONE, ip, [u64::from(THREAD), 0, 0, 0, 0, 0]), A);
        assert_eq!(call(allowed::CLONE, ip, [u64::from(THREAD) | 0x2000, 0, 0, 0, 0, 0]), K);
        assert_eq!(call(allowed::CLONE, ip, [u64::from(FORK) | 1 << 32, 0, 0, 0, 0, 0]), K);
        assert_eq!(call(allowed::PRCTL, ip, [1, 9, 0, 0, 0, 0]), A);
        assert_eq!(call(allowed::PRCTL, ip, [1, 10, 0, 0, 0, 0]), K);
        assert_eq!(call(allowed::PRCTL, ip, [22, 2, 0, 0, 0, 0]), K, "PR_SET_SECCOMP");
        assert_eq!(call(allowed::PRCTL, ip, [1 | 1 << 32, 9, 0, 0, 0, 0]), K);
        assert_eq!(call(allowed::CLOCK_GETTIME, ip, [3, 0x1000, 0, 0, 0, 0]), A);
        assert_eq!(call(allowed::CLOCK_GETTIME, ip, [0, 0x1000, 0, 0, 0, 0]), K);
        assert_eq!(call(allowed::CLOCK_GETTIME, ip, [3 | 1 << 32, 0x1000, 0, 0, 0, 0]), K);
        assert_eq!(call(allowed::RECVMSG, ip, [0, 0x1000, 0x40, 0, 0, 0]), A);
        assert_eq!(call(allowed::RECVMSG, ip, [1, 0x1000, 0x40, 0, 0, 0]), K, "another descriptor");
        assert_eq!(call(allowed::RECVMSG, ip, [0, 0x1000, 0, 0, 0, 0]), K, "blocking");
        assert_eq!(call(allowed::RECVMSG, ip, [1 << 32, 0x1000, 0x40, 0, 0, 0]), K);
        assert_eq!(call(allowed::CLOSE_RANGE, ip, [2, u64::from(u32::MAX), 0, 0, 0, 0]), A);
        assert_eq!(call(allowed::CLOSE_RANGE, ip, [0, u64::from(u32::MAX), 0, 0, 0, 0]), K, "the channel");
        assert_eq!(
            call(allowed::CLOSE_RANGE, ip, [2, u64::from(u32::MAX), 4, 0, 0, 0]),
            K,
            "CLOSE_RANGE_CLOEXEC"
        );
        for nr in [allowed::PAUSE, allowed::EXIT, allowed::EXIT_GROUP, allowed::GETPPID, allowed::MUNMAP] {
            assert_eq!(call(nr, ip, [0; 6]), A);
        }
    }

    const T: u32 = SECCOMP_RET_TRAP;

    #[test]
    fn systrap_traps_application_calls_and_allows_the_handlers() {
        let f = stub_filter(START, LEN, &[FORK, THREAD], true);
        let at = |nr, ip, args| run(&f, Data { nr, arch: AUDIT_ARCH_X86_64, ip, args });
        // From application memory, or another ABI: SIGSYS, not a kill.
        assert_eq!(at(39, 0x40_1000, [0; 6]), T);
        assert_eq!(run(&f, Data { nr: 20, arch: 0x4000_0003, ip: 0x40_1000, args: [0; 6] }), T);
        let ip = START + 0x40;
        assert_eq!(at(allowed::FUTEX, ip, [0x1000, 0, 3, 0, 0, 0]), A);
        assert_eq!(at(allowed::FUTEX, ip, [0x1000, 1, 1, 0, 0, 0]), A);
        assert_eq!(at(allowed::FUTEX, ip, [0x1000, 9, 1, 0, 0, 0]), K, "FUTEX_WAIT_BITSET");
        assert_eq!(at(allowed::SECCOMP, ip, [1, 0, 0x1000, 0, 0, 0]), A);
        assert_eq!(at(allowed::SECCOMP, ip, [1, 1, 0x1000, 0, 0, 0]), K, "TSYNC");
        assert_eq!(at(allowed::RT_SIGRETURN, ip, [0; 6]), A);
        // The CPU clock of one of its threads, not of a process.
        let thread_clock = |tid: i32| u64::from(((!tid) << 3 | 6).cast_unsigned());
        assert_eq!(at(allowed::CLOCK_GETTIME, ip, [thread_clock(4242), 0x1000, 0, 0, 0, 0]), A);
        assert_eq!(at(allowed::CLOCK_GETTIME, ip, [3, 0x1000, 0, 0, 0, 0]), A);
        let process_clock = u64::from(((!4242) << 3 | 2_i32).cast_unsigned());
        assert_eq!(at(allowed::CLOCK_GETTIME, ip, [process_clock, 0x1000, 0, 0, 0, 0]), K);
        assert_eq!(at(allowed::CLOCK_GETTIME, ip, [thread_clock(4242) - 1, 0x1000, 0, 0, 0, 0]), K);
        assert_eq!(at(allowed::CLOCK_GETTIME, ip, [0, 0x1000, 0, 0, 0, 0]), K, "CLOCK_REALTIME");
        assert_eq!(at(allowed::CLOCK_GETTIME, ip, [thread_clock(1) | 1 << 32, 0x1000, 0, 0, 0, 0]), K);
        assert_eq!(call(allowed::CLOCK_GETTIME, ip, [thread_clock(4242), 0x1000, 0, 0, 0, 0]), K, "ptrace");
        assert_eq!(at(allowed::MEMFD_CREATE, ip, [0x1000, 0, 0, 0, 0, 0]), A);
        assert_eq!(at(allowed::MEMFD_CREATE, ip, [0x1000, 2, 0, 0, 0, 0]), K, "MFD_ALLOW_SEALING");
        assert_eq!(at(allowed::FTRUNCATE, ip, [2, 8 << 20, 0, 0, 0, 0]), A);
        assert_eq!(call(allowed::MEMFD_CREATE, ip, [0x1000, 0, 0, 0, 0, 0]), K, "ptrace");
        // Still killed from the stub page: what the stub never calls.
        assert_eq!(at(59, ip, [0; 6]), K);
        // The ptrace filter allows none of systrap's calls.
        for nr in [allowed::FUTEX, allowed::RT_SIGRETURN, allowed::SECCOMP, allowed::SIGALTSTACK] {
            assert_eq!(call(nr, ip, [0; 6]), K, "syscall {nr}");
        }
    }

    #[test]
    fn application_threads_may_only_use_their_context_words() {
        const AREA: u64 = 0x7fff_f000_0000;
        const SIZE: u64 = 8 << 20;
        let f = app_thread_filter(AREA, AREA + SIZE);
        let at = |nr, args| run(&f, Data { nr, arch: AUDIT_ARCH_X86_64, ip: START + 0x40, args });
        assert_eq!(at(allowed::FUTEX, [AREA, 0, 3, 0, 0, 0]), A);
        assert_eq!(at(allowed::FUTEX, [AREA + SIZE - 4, 1, 1, 0, 0, 0]), A);
        assert_eq!(at(allowed::FUTEX, [AREA + SIZE, 0, 3, 0, 0, 0]), T, "past the area");
        assert_eq!(at(allowed::FUTEX, [AREA - 4, 0, 3, 0, 0, 0]), T, "below the area");
        assert_eq!(at(allowed::FUTEX, [0x40_1000, 0, 3, 0, 0, 0]), T, "application memory");
        assert_eq!(at(allowed::FUTEX, [AREA, 5, 3, 0, 0, 0]), T, "FUTEX_WAKE_OP");
        assert_eq!(at(allowed::RT_SIGRETURN, [0; 6]), A);
        assert_eq!(at(allowed::EXIT, [0; 6]), A);
        // The stub's own calls, reached by a jump into its code, trap.
        for nr in [allowed::MMAP, allowed::MPROTECT, allowed::RECVMSG, allowed::CLOSE_RANGE, allowed::CLONE] {
            assert_eq!(at(nr, [0; 6]), T, "syscall {nr}");
        }
        assert_eq!(run(&f, Data { nr: 15, arch: 0x4000_0003, ip: 0, args: [0; 6] }), T);
    }
}
