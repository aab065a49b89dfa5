//! Shared pieces of rvisor's benchmarks.
//!
//! Each benchmark is a `harness = false` binary under `benches/` that prints
//! one line per measurement (`name: value unit`) and the ratios the
//! acceptance goals are stated in. `docs/PERFORMANCE.md` records results
//! with the commands that reproduce them.

use std::time::{Duration, Instant};

/// Runs `f(iters)` `rounds` times and returns the median time per
/// iteration.
pub fn median_per_iter(rounds: usize, iters: u64, mut f: impl FnMut(u64)) -> Duration {
    let mut v: Vec<Duration> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f(iters);
            t.elapsed() / u32::try_from(iters).unwrap_or(u32::MAX)
        })
        .collect();
    v.sort_unstable();
    v[v.len() / 2]
}

/// Binds the calling thread to `cpu`.
pub fn pin_self(cpu: usize) {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    // SAFETY: `cpu` is a small CPU index, below CPU_SETSIZE.
    unsafe { libc::CPU_SET(cpu, &mut set) };
    // SAFETY: reads one cpu_set_t.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    assert_eq!(r, 0, "sched_setaffinity");
}

/// Lets the calling thread run on every CPU again.
pub fn unpin_self() {
    // SAFETY: cpu_set_t is plain data; all-zero is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for cpu in 0..num_cpus() {
        // SAFETY: `cpu` is below the number of online CPUs.
        unsafe { libc::CPU_SET(cpu, &mut set) };
    }
    // SAFETY: reads one cpu_set_t.
    let r = unsafe { libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) };
    assert_eq!(r, 0, "sched_setaffinity");
}

/// Number of online CPUs.
pub fn num_cpus() -> usize {
    // SAFETY: sysconf takes a plain value.
    let n = unsafe { libc::sysconf(libc::_SC_NPROCESSORS_ONLN) };
    usize::try_from(n).unwrap_or(1).max(1)
}

/// Formats a duration in microseconds with two decimals.
pub fn us(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e6)
}

/// The machine's raw ptrace round trip: a forked tracee looping on
/// `getpid` under `PTRACE_SYSEMU`, the tracer (this thread) on CPU 0 and the
/// tracee on `child_cpu`; per call SYSEMU, waitpid, GETREGS and SETREGS.
/// Median of `rounds` runs of `iters` calls.
pub fn raw_floor(child_cpu: usize, rounds: usize, iters: u64) -> Duration {
    pin_self(0);
    // SAFETY: fork in a single-threaded benchmark process; the child only
    // makes raw system calls and never returns.
    let pid = unsafe { libc::fork() };
    assert!(pid >= 0);
    if pid == 0 {
        // SAFETY: raw calls in the child; the loop never returns.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(child_cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0);
            libc::raise(libc::SIGSTOP);
            std::arch::asm!("2:", "mov eax, 39", "syscall", "jmp 2b", options(noreturn));
        }
    }
    let mut status = 0;
    // SAFETY: waiting for our child.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    // SAFETY: plain-value ptrace call on our stopped tracee.
    unsafe {
        libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, libc::PTRACE_O_TRACESYSGOOD | libc::PTRACE_O_EXITKILL)
    };
    let d = median_per_iter(rounds, iters, |n| {
        // SAFETY: ptrace on our stopped tracee with local buffers.
        unsafe {
            let mut regs: libc::user_regs_struct = std::mem::zeroed();
            for _ in 0..n {
                libc::ptrace(libc::PTRACE_SYSEMU, pid, 0, 0);
                libc::waitpid(pid, &mut status, libc::__WALL);
                libc::ptrace(libc::PTRACE_GETREGS, pid, 0, &mut regs);
                regs.rax = 1;
                libc::ptrace(libc::PTRACE_SETREGS, pid, 0, &regs);
            }
        }
    });
    // SAFETY: killing and reaping our child.
    unsafe {
        libc::kill(pid, libc::SIGKILL);
        libc::waitpid(pid, &mut status, 0);
    }
    unpin_self();
    d
}
