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
