//! Trap round trip of the ptrace platform, against the machine's raw
//! `PTRACE_SYSEMU` floor measured in the same run.
//!
//! Run: `cargo bench -p rvisor-benches --bench trap`
//!
//! - floor: a tracer and a forked tracee looping on `getpid`, both pinned to
//!   CPU 0; per round trip the tracer does SYSEMU, waitpid, GETREGS and
//!   SETREGS (the least any ptrace sandbox must do to read the arguments and
//!   write a result).
//! - rvisor same-CPU: `Context::switch` in a loop answering every call, the
//!   sentry thread pinned, placement `FollowTracer` (stub bound to the
//!   tracer's CPU).
//! - rvisor default: placement `Pinned` (the sentry thread binds itself to
//!   the least used allowed CPU, its stub thread to the same one).
//! - rvisor follow: the sentry thread free, placement `FollowTracer` (what
//!   the sentry does).
//! - rvisor unpinned: nothing pinned, placement `Unpinned`.
//! - systrap floors (`programs/wakeup.c`): a seccomp `SECCOMP_RET_TRAP`
//!   of `getpid` answered by the thread's own SIGSYS handler, or handed to
//!   another process by futex or by spinning, on one CPU and across two.

use std::os::fd::{AsFd, FromRawFd, OwnedFd};

use rvisor_benches::{median_per_iter, pin_self, raw_floor, unpin_self, us};
use rvisor_platform::ptrace::{Config, Placement, PtracePlatform};
use rvisor_platform::{ArchState, Event, FileRange, Platform, Prot};

std::arch::global_asm!(
    ".pushsection .text.rvisor_bench_code,\"ax\",@progbits",
    ".globl b_getpid_loop",
    "b_getpid_loop:",
    "mov eax, 39",
    "syscall",
    "jmp b_getpid_loop",
    ".globl b_getpid_loop_end",
    "b_getpid_loop_end:",
    ".popsection",
);

unsafe extern "C" {
    static b_getpid_loop: u8;
    static b_getpid_loop_end: u8;
}

fn code() -> &'static [u8] {
    let b = &raw const b_getpid_loop;
    let e = &raw const b_getpid_loop_end;
    // SAFETY: the assembled loop above, in this binary's text.
    unsafe { std::slice::from_raw_parts(b, e as usize - b as usize) }
}

const ITERS: u64 = 20_000;
const ROUNDS: usize = 7;

/// Measures in a fresh thread (fresh placement state, full affinity).
fn platform_round_trip(placement: Placement, pin: bool) -> std::time::Duration {
    std::thread::spawn(move || platform_round_trip_here(placement, pin)).join().unwrap()
}

fn platform_round_trip_here(placement: Placement, pin: bool) -> std::time::Duration {
    if pin {
        pin_self(0);
    }
    let platform = PtracePlatform::new(Config { placement }).expect("platform");
    // SAFETY: memfd_create with a static name.
    let fd = unsafe { libc::memfd_create(c"bench".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: fresh fd, owned here.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let f = std::fs::File::from(fd.try_clone().unwrap());
    f.set_len(4096).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&f, code(), 0).unwrap();
    let aspace = platform.new_address_space().unwrap();
    aspace.map(0x10_0000, 4096, Prot::READ | Prot::EXEC, FileRange { fd: fd.as_fd(), offset: 0 }).unwrap();
    let mut ctx = platform.new_context().unwrap();
    let mut arch = ArchState::new_user();
    arch.regs.rip = 0x10_0000;
    // Warm up: creates the stub thread and binds it.
    for _ in 0..100 {
        assert_eq!(ctx.switch(aspace.as_ref(), &mut arch).unwrap(), Event::Syscall);
        arch.regs.rax = 1;
    }
    let d = median_per_iter(ROUNDS, ITERS, |n| {
        for _ in 0..n {
            let ev = ctx.switch(aspace.as_ref(), &mut arch).unwrap();
            debug_assert_eq!(ev, Event::Syscall);
            arch.regs.rax = 1;
        }
    });
    drop(ctx);
    drop(aspace);
    if pin {
        unpin_self();
    }
    d
}

fn main() {
    let floor = raw_floor(0, ROUNDS, ITERS);
    let cross = if rvisor_benches::num_cpus() > 1 { Some(raw_floor(1, ROUNDS, ITERS)) } else { None };
    let same = platform_round_trip(Placement::FollowTracer, true);
    let pinned = platform_round_trip(Placement::Pinned, false);
    let follow = platform_round_trip(Placement::FollowTracer, false);
    let unpinned = platform_round_trip(Placement::Unpinned, false);
    println!("ptrace SYSEMU floor (same CPU, SYSEMU+wait+GETREGS+SETREGS): {} us", us(floor));
    if let Some(c) = cross {
        println!("ptrace SYSEMU across CPUs (tracer CPU 0, tracee CPU 1):       {} us", us(c));
    }
    println!("rvisor ptrace switch, sentry thread pinned, stub follows:     {} us", us(same));
    println!("rvisor ptrace switch, default placement (both pinned):        {} us", us(pinned));
    println!("rvisor ptrace switch, sentry thread free, stub follows:       {} us", us(follow));
    println!("rvisor ptrace switch, nothing pinned:                         {} us", us(unpinned));
    println!(
        "ratio same-CPU / floor: {:.2}; default / floor: {:.2} (goal <= 1.2); follow / floor: {:.2}; unpinned / floor: {:.2}",
        same.as_secs_f64() / floor.as_secs_f64(),
        pinned.as_secs_f64() / floor.as_secs_f64(),
        follow.as_secs_f64() / floor.as_secs_f64(),
        unpinned.as_secs_f64() / floor.as_secs_f64()
    );
    systrap_floors();
}

/// The seccomp-trap floors a systrap platform would stand on
/// (`programs/wakeup.c`), median of 7 runs each.
fn systrap_floors() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("programs/wakeup.c");
    let bin = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("wakeup");
    let st = std::process::Command::new("gcc").args(["-O2", "-o"]).arg(&bin).arg(&src).status().expect("gcc");
    assert!(st.success(), "build wakeup.c");
    let two = rvisor_benches::num_cpus() > 1;
    let cases: &[(&str, &str, u64, &str, bool)] = &[
        ("in-process SIGSYS (trap, handler, rt_sigreturn)", "0", 200_000, "0", true),
        ("SIGSYS + futex hand-off to another process, same CPU", "1", 50_000, "0", true),
        ("SIGSYS + futex hand-off, across CPUs", "1", 5_000, "1", two),
        ("SIGSYS + both spinning on a shared word, across CPUs", "2", 50_000, "1", two),
        ("SIGSYS + both spinning on one CPU", "2", 200, "0", true),
    ];
    for &(what, mode, n, sentry_cpu, run) in cases {
        if !run {
            continue;
        }
        let mut v: Vec<f64> = (0..7)
            .map(|_| {
                let o = std::process::Command::new(&bin)
                    .args([mode, &n.to_string(), "0", sentry_cpu])
                    .output()
                    .expect("run wakeup");
                assert!(o.status.success(), "wakeup {mode}: {o:?}");
                String::from_utf8_lossy(&o.stdout).trim().parse().expect("number")
            })
            .collect();
        v.sort_by(f64::total_cmp);
        println!("systrap floor: {what}: {:.2} us ({n} calls)", v[v.len() / 2]);
    }
}
