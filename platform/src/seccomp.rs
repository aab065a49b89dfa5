//! The stub processes' seccomp filter.
//!
//! A stub may make a system call only from its own code page: the filter
//! allows a call when `seccomp_data.instruction_pointer` lies in
//! `[code_start, code_end)` and kills the whole stub process otherwise.
//! Under `PTRACE_SYSEMU` seccomp does not run at all (the call is stopped
//! and skipped first), so the filter is what stands between application code
//! and the host whenever a stub runs without `SYSEMU` (while the sentry
//! injects a call, or if the sentry ever resumed it wrongly). A filter keyed
//! on system call numbers alone would prove nothing: the stub itself needs
//! `mmap`, `clone` and friends, which the application must never reach.
//!
//! The program is small enough to review by eye; each instruction says why
//! it is there.

const BPF_LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
const BPF_JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
const BPF_JGE_K: u16 = 0x35; // BPF_JMP | BPF_JGE | BPF_K
const BPF_RET_K: u16 = 0x06; // BPF_RET | BPF_K

const SECCOMP_RET_ALLOW: u32 = 0x7fff_0000;
const SECCOMP_RET_KILL_PROCESS: u32 = 0x8000_0000;
const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;

// Offsets in struct seccomp_data.
const OFF_ARCH: u32 = 4;
const OFF_IP_LO: u32 = 8;
const OFF_IP_HI: u32 = 12;

/// One classic-BPF instruction (`struct sock_filter`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockFilter {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

fn stmt(code: u16, k: u32) -> SockFilter {
    SockFilter { code, jt: 0, jf: 0, k }
}

fn jump(code: u16, k: u32, jt: u8, jf: u8) -> SockFilter {
    SockFilter { code, jt, jf, k }
}

/// The filter allowing system calls only from `[code_start, code_end)`.
/// The range must not cross a 4 GiB boundary (checked by the caller).
pub fn stub_filter(code_start: u64, code_end: u64) -> Vec<SockFilter> {
    assert!(code_start < code_end && code_start >> 32 == (code_end - 1) >> 32);
    let hi = u32::try_from(code_start >> 32).unwrap_or(u32::MAX);
    let lo_start = u32::try_from(code_start & 0xffff_ffff).unwrap_or(0);
    // 0 when the range ends exactly on a 4 GiB boundary.
    let lo_end = u32::try_from(code_end & 0xffff_ffff).unwrap_or(0);
    // Jump offsets are relative to the next instruction; index 8 is the
    // kill return, index 7 the allow return.
    vec![
        // 0-1: only the x86_64 ABI (an `int 0x80` from the stub page would
        // otherwise be judged with i386 numbers).
        stmt(BPF_LD_W_ABS, OFF_ARCH),
        jump(BPF_JEQ_K, AUDIT_ARCH_X86_64, 0, 6),
        // 2-3: the instruction pointer's high half is the code page's.
        stmt(BPF_LD_W_ABS, OFF_IP_HI),
        jump(BPF_JEQ_K, hi, 0, 4),
        // 4-5: its low half is at or above the page's start…
        stmt(BPF_LD_W_ABS, OFF_IP_LO),
        jump(BPF_JGE_K, lo_start, 0, 2),
        // 6: …and below its end (always true if the page ends on a 4 GiB
        // boundary).
        if lo_end == 0 { jump(BPF_JGE_K, 0, 0, 0) } else { jump(BPF_JGE_K, lo_end, 1, 0) },
        // 7: from the stub's own code: allowed.
        stmt(BPF_RET_K, SECCOMP_RET_ALLOW),
        // 8: from anywhere else: the whole stub process dies.
        stmt(BPF_RET_K, SECCOMP_RET_KILL_PROCESS),
    ]
}

/// Interprets `prog` on a synthetic `seccomp_data` (for unit tests).
#[cfg(test)]
fn run(prog: &[SockFilter], arch: u32, ip: u64) -> u32 {
    let mut acc = 0u32;
    let mut pc = 0usize;
    loop {
        let ins = prog[pc];
        match ins.code {
            BPF_LD_W_ABS => {
                acc = match ins.k {
                    OFF_ARCH => arch,
                    OFF_IP_LO => (ip & 0xffff_ffff) as u32,
                    OFF_IP_HI => (ip >> 32) as u32,
                    _ => panic!("load"),
                };
                pc += 1;
            }
            BPF_JEQ_K | BPF_JGE_K => {
                let t = if ins.code == BPF_JEQ_K { acc == ins.k } else { acc >= ins.k };
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

    #[test]
    fn allows_only_the_code_page() {
        let start = 0x7fff_fffe_0000u64;
        let p = stub_filter(start, start + 0x1000);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, start), SECCOMP_RET_ALLOW);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, start + 0xfff), SECCOMP_RET_ALLOW);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, start + 0x1000), SECCOMP_RET_KILL_PROCESS);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, start - 1), SECCOMP_RET_KILL_PROCESS);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, 0x40_1000), SECCOMP_RET_KILL_PROCESS);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, start + (1 << 32)), SECCOMP_RET_KILL_PROCESS);
        assert_eq!(run(&p, 0x4000_0003, start + 8), SECCOMP_RET_KILL_PROCESS);
    }

    #[test]
    fn page_ending_on_4g_boundary() {
        let start = 0x7ffe_ffff_f000u64;
        let p = stub_filter(start, start + 0x1000);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, start + 4), SECCOMP_RET_ALLOW);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, start - 4), SECCOMP_RET_KILL_PROCESS);
        assert_eq!(run(&p, AUDIT_ARCH_X86_64, start + 0x1000), SECCOMP_RET_KILL_PROCESS);
    }
}
