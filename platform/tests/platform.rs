//! The systrap platform (or, with `RVISOR_PLATFORM=ptrace`, the ptrace
//! platform), driven with raw machine code in a stub.

mod common;

use std::os::fd::AsFd;
use std::time::{Duration, Instant};

const _SEGV_CODES: () = (); // SEGV_MAPERR = 1, SEGV_ACCERR = 2, FPE_INTDIV = 1 (asm-generic/siginfo.h)
use common::{addr_of, process_gone, Sandbox, Snippet, TestPlatform, CODE, DATA};
use rvisor_platform::{Event, FileRange, Prot};

fn expect_syscall(sb: &mut Sandbox, arch: &mut rvisor_platform::ArchState, nr: u64) {
    let ev = sb.ctx.switch(sb.aspace.as_ref(), arch).expect("switch");
    assert_eq!(ev, Event::Syscall, "expected a system call, got {ev:?}");
    assert_eq!(arch.regs.orig_rax, nr);
}

#[test]
fn syscall_is_trapped_with_its_registers() {
    let mut sb = Sandbox::new();
    let mut arch = sb.arch_at(Snippet::Regs);
    expect_syscall(&mut sb, &mut arch, 39);
    assert_eq!(arch.regs.syscall_args(), [0x1111, 0x2222, 0x3333, 0x4444, 0x5555, 0x6666]);
    assert_eq!(arch.regs.rip, addr_of(Snippet::RegsAfter));
}

#[test]
fn register_writes_take_effect() {
    let mut sb = Sandbox::new();
    let mut arch = sb.arch_at(Snippet::Regs);
    expect_syscall(&mut sb, &mut arch, 39);
    // The "result" of getpid; the code then calls exit(rax), which the
    // platform traps too (nothing reaches the host).
    arch.regs.rax = 0xabcd;
    expect_syscall(&mut sb, &mut arch, 60);
    assert_eq!(arch.regs.rdi, 0xabcd);
    // rip and other registers set by the sentry are honoured as well.
    arch.regs.rip = addr_of(Snippet::Regs);
    expect_syscall(&mut sb, &mut arch, 39);
}

#[test]
fn i386_system_calls_are_told_apart() {
    let mut sb = Sandbox::new();
    let mut arch = sb.arch_at(Snippet::Int80);
    let ev = sb.ctx.switch(sb.aspace.as_ref(), &mut arch).expect("switch");
    assert_eq!(ev, Event::ForeignSyscall);
    assert_eq!(arch.regs.orig_rax, 20);
}

#[test]
fn mappings_next_to_the_stub_page_are_refused() {
    let sb = Sandbox::new();
    let fd = FileRange { fd: sb.memfd.as_fd(), offset: 0 };
    let top = sb.platform.max_user_address();
    assert!(top < sb.platform.stub_page(), "a guard page separates them");
    assert!(sb.aspace.map(top - 4096, 4096, Prot::READ | Prot::EXEC, fd).is_ok());
    assert!(sb.aspace.map(sb.platform.stub_page() - 4096, 4096, Prot::READ | Prot::EXEC, fd).is_err());
}

#[test]
fn nothing_reaches_the_host_getpid() {
    let mut sb = Sandbox::new();
    let mut arch = sb.arch_at(Snippet::Getpid);
    for i in 0..100u64 {
        expect_syscall(&mut sb, &mut arch, 39);
        // The host left rax as the kernel's "no such call" marker (ptrace)
        // or the call's number (systrap's SIGSYS): the call was skipped,
        // not run (getpid would have left the stub's pid).
        let skipped = if TestPlatform::systrap() { 39 } else { -i64::from(libc::ENOSYS) };
        assert_eq!(arch.regs.rax.cast_signed(), skipped, "iteration {i}");
        arch.regs.rax = 1;
    }
}

#[test]
fn injected_mapping_is_visible() {
    let mut sb = Sandbox::new();
    sb.set_data_u64(0, 0x1234_5678_9abc_def0);
    let mut arch = sb.arch_at(Snippet::Read);
    expect_syscall(&mut sb, &mut arch, 1000);
    assert_eq!(arch.regs.rdi, 0x1234_5678_9abc_def0);
    // Writes by the sentry through the memory file are seen at once.
    sb.set_data_u64(0, 42);
    expect_syscall(&mut sb, &mut arch, 1000);
    assert_eq!(arch.regs.rdi, 42);
    // Writes by the application reach the memory file.
    let mut arch = sb.arch_at(Snippet::Write);
    arch.regs.rcx = 0x5151;
    expect_syscall(&mut sb, &mut arch, 1001);
    assert_eq!(sb.data_u64(0), 0x5151);
}

#[test]
fn fault_reports_the_address() {
    let mut sb = Sandbox::new();
    let mut arch = sb.arch_at(Snippet::Read);
    arch.regs.rbx = 0x1234_5000;
    let ev = sb.ctx.switch(sb.aspace.as_ref(), &mut arch).expect("switch");
    match ev {
        Event::Fault { addr, access, signo, code } => {
            assert_eq!(addr, 0x1234_5000);
            assert_eq!(access, None, "ptrace cannot tell the access type");
            assert_eq!(signo, libc::SIGSEGV);
            assert_eq!(code, 1);
        }
        other => panic!("expected a fault, got {other:?}"),
    }
    // The faulting instruction is where rip points.
    assert_eq!(arch.regs.rip, addr_of(Snippet::Read));
    // Map the page and resume: the instruction now completes.
    sb.set_data_u64(8, 77);
    sb.aspace
        .map(0x1234_5000, 4096, Prot::READ, FileRange { fd: sb.memfd.as_fd(), offset: 4096 })
        .expect("map");
    arch.regs.rbx = 0x1234_5008;
    expect_syscall(&mut sb, &mut arch, 1000);
    assert_eq!(arch.regs.rdi, 77);
}

#[test]
fn unmap_and_protect_take_effect() {
    let mut sb = Sandbox::new();
    sb.set_data_u64(0, 5);
    let mut arch = sb.arch_at(Snippet::Write);
    arch.regs.rcx = 9;
    expect_syscall(&mut sb, &mut arch, 1001);
    // Read-only: the write faults with SEGV_ACCERR.
    sb.aspace.protect(DATA, 4096, Prot::READ).expect("protect");
    let ev = sb.ctx.switch(sb.aspace.as_ref(), &mut arch).expect("switch");
    assert!(matches!(ev, Event::Fault { addr: DATA, code: 2, .. }), "got {ev:?}");
    sb.aspace.protect(DATA, 4096, Prot::READ | Prot::WRITE).expect("protect");
    arch.regs.rcx = 10;
    expect_syscall(&mut sb, &mut arch, 1001);
    assert_eq!(sb.data_u64(0), 10);
    // Unmapped: SEGV_MAPERR.
    sb.aspace.unmap(DATA, 4096).expect("unmap");
    let ev = sb.ctx.switch(sb.aspace.as_ref(), &mut arch).expect("switch");
    assert!(matches!(ev, Event::Fault { addr: DATA, code: 1, .. }), "got {ev:?}");
}

#[test]
fn mappings_outside_the_user_range_are_refused() {
    let sb = Sandbox::new();
    let top = sb.platform.max_user_address();
    let fd = FileRange { fd: sb.memfd.as_fd(), offset: 0 };
    assert!(sb.aspace.map(top, 4096, Prot::READ, fd).is_err(), "stub page must not be replaceable");
    assert!(sb.aspace.map(top - 4096, 8192, Prot::READ, fd).is_err());
    assert!(sb.aspace.map(0, 4096, Prot::READ, fd).is_err());
    assert!(sb.aspace.map(CODE + 1, 4096, Prot::READ, fd).is_err());
    assert!(sb.aspace.unmap(top, 4096).is_err());
    assert!(sb.aspace.protect(top, 4096, Prot::READ | Prot::WRITE).is_err());
}

#[test]
fn host_signals_are_reported() {
    let mut sb = Sandbox::new();
    let mut arch = sb.arch_at(Snippet::Int3);
    let ev = sb.ctx.switch(sb.aspace.as_ref(), &mut arch).expect("switch");
    assert!(matches!(ev, Event::Signal(s) if s.signo == libc::SIGTRAP), "got {ev:?}");
    let mut arch = sb.arch_at(Snippet::Div0);
    let ev = sb.ctx.switch(sb.aspace.as_ref(), &mut arch).expect("switch");
    assert!(matches!(ev, Event::Signal(s) if s.signo == libc::SIGFPE && s.code == 1), "got {ev:?}");
}

#[test]
fn fs_base_is_part_of_the_state() {
    let mut sb = Sandbox::new();
    sb.set_data_u64(16, 0xf5f5);
    let mut arch = sb.arch_at(Snippet::Fs);
    arch.regs.fs_base = DATA + 16;
    expect_syscall(&mut sb, &mut arch, 1002);
    assert_eq!(arch.regs.rdi, 0xf5f5);
    assert_eq!(arch.regs.fs_base, DATA + 16);
}

#[test]
fn fp_state_is_loaded_and_fetched() {
    let mut sb = Sandbox::new();
    let mut arch = sb.arch_at(Snippet::Xmm);
    // XMM0 lives at byte 160 of the FXSAVE area.
    arch.fp.bytes_mut()[160..168].copy_from_slice(&0x0102_0304_0506_0708u64.to_le_bytes());
    arch.regs.rsi = 0xdead_beef;
    expect_syscall(&mut sb, &mut arch, 1003);
    assert_eq!(arch.regs.rdi, 0x0102_0304_0506_0708);
    // The state stays in the stub until asked for…
    assert_eq!(arch.fp.status(), rvisor_platform::arch::FpStatus::Live);
    sb.ctx.fetch_fp(&mut arch).expect("fetch");
    // …and then holds what the application wrote (XMM1 at byte 176).
    let xmm1 = u64::from_le_bytes(arch.fp.bytes()[176..184].try_into().unwrap());
    assert_eq!(xmm1, 0xdead_beef);
}

#[test]
fn interrupt_stops_a_spinning_thread() {
    let mut sb = Sandbox::new();
    let mut arch = sb.arch_at(Snippet::Spin);
    let handle = sb.ctx.interrupt_handle();
    for round in 0..3 {
        let h = handle.clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            h.interrupt();
        });
        let start = Instant::now();
        let ev = sb.ctx.switch(sb.aspace.as_ref(), &mut arch).expect("switch");
        assert_eq!(ev, Event::Interrupted, "round {round}");
        assert!(start.elapsed() >= Duration::from_millis(40));
        assert!(start.elapsed() < Duration::from_secs(5));
        t.join().unwrap();
        // Still spinning where it was.
        assert_eq!(arch.regs.rip, addr_of(Snippet::Spin));
    }
    // An interrupt made while not switching makes the next switch return.
    handle.interrupt();
    let ev = sb.ctx.switch(sb.aspace.as_ref(), &mut arch).expect("switch");
    assert_eq!(ev, Event::Interrupted);
}

#[test]
fn stub_process_holds_only_the_stub_page_and_application_mappings() {
    let mut sb = Sandbox::new();
    let mut arch = sb.arch_at(Snippet::Getpid);
    expect_syscall(&mut sb, &mut arch, 39);
    let pid =
        sb.aspace.as_any().downcast_ref::<rvisor_platform::ptrace::PtraceAddressSpace>().unwrap().stub_pid();
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("maps");
    let stub = sb.platform.stub_page();
    let mut starts = Vec::new();
    // The vsyscall page is not a mapping the process can remove; calling
    // into it is killed by the stub filter (see `vsyscall_kills_the_stub`).
    for line in maps.lines().filter(|l| !l.ends_with("[vsyscall]")) {
        let start = u64::from_str_radix(line.split('-').next().unwrap(), 16).unwrap();
        assert!(
            !line.contains("[vdso]")
                && !line.contains("[vvar]")
                && !line.contains("[stack]")
                && !line.contains("[heap]"),
            "unexpected mapping in stub: {line}"
        );
        starts.push(start);
    }
    starts.sort_unstable();
    let batch = stub - 4096;
    let result = batch - 4096;
    let mut expected = vec![CODE, DATA, result, batch, stub];
    if TestPlatform::systrap() {
        // The context area, between the application's range and the
        // result page, shared and not executable.
        let area = *starts.get(2).expect("context area");
        assert!(area > sb.platform.max_user_address() && area < result, "maps:\n{maps}");
        let line = maps.lines().find(|l| l.starts_with(&format!("{area:x}-"))).expect("area");
        assert!(line.split_whitespace().nth(1) == Some("rw-s"), "context area: {line}");
        expected.insert(2, area);
    }
    assert_eq!(starts, expected, "maps:\n{maps}");
    // The batch page is the stub's to read, nobody's to write there; its
    // result page is writable.
    let line = maps.lines().find(|l| l.starts_with(&format!("{batch:x}-"))).expect("batch page");
    assert!(line.split_whitespace().nth(1) == Some("r--s"), "batch page: {line}");
    let line = maps.lines().find(|l| l.starts_with(&format!("{result:x}-"))).expect("result page");
    assert!(line.split_whitespace().nth(1) == Some("rw-s"), "result page: {line}");
    assert!(sb.platform.max_user_address() < result, "the application cannot map over them");
}

/// The mappings of `pid` starting in `[lo, hi)`: (start, end, permissions).
fn maps_between(pid: i32, lo: u64, hi: u64) -> Vec<(u64, u64, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .expect("maps")
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (s, e) = f.next()?.split_once('-')?;
            let (s, e) = (u64::from_str_radix(s, 16).ok()?, u64::from_str_radix(e, 16).ok()?);
            (s >= lo && s < hi).then(|| (s, e, f.next().unwrap_or_default().to_string()))
        })
        .collect()
}

#[test]
fn batched_address_space_calls_run_in_order_and_stop_at_the_first_failure() {
    use rvisor_platform::MapOp;
    let sb = Sandbox::new();
    let pid =
        sb.aspace.as_any().downcast_ref::<rvisor_platform::ptrace::PtraceAddressSpace>().unwrap().stub_pid();
    let file = FileRange { fd: sb.memfd.as_fd(), offset: 4096 };
    let base = 0x5000_0000u64;
    // More calls than one batch page holds.
    let mut ops: Vec<MapOp<'_>> = (0..100u64)
        .map(|i| MapOp::Map { addr: base + i * 0x2000, len: 4096, prot: Prot::READ, file })
        .collect();
    ops.push(MapOp::Protect { addr: base, len: 4096, prot: Prot::READ | Prot::WRITE });
    ops.push(MapOp::Unmap { addr: base + 0x2000, len: 4096 });
    sb.aspace.apply(&ops).expect("batch");
    let m = maps_between(pid, base, base + 0x100_0000);
    assert_eq!(m.len(), 99, "{m:x?}");
    assert_eq!(m[0], (base, base + 4096, "rw-s".to_string()));
    assert!(m.iter().all(|(s, _, _)| *s != base + 0x2000), "unmapped");
    assert!(m[1..].iter().all(|(_, _, p)| p == "r--s"));
    // A call the host refuses (mprotect of nothing) stops the batch there.
    let far = base + 0x80_0000;
    let bad = [
        MapOp::Map { addr: far, len: 4096, prot: Prot::READ, file },
        MapOp::Protect { addr: base + 0x2000, len: 4096, prot: Prot::READ },
        MapOp::Map { addr: far + 0x10000, len: 4096, prot: Prot::READ, file },
    ];
    let (at, _) = sb.aspace.apply(&bad).expect_err("mprotect of an unmapped page");
    assert_eq!(at, 1);
    let m = maps_between(pid, far, far + 0x100_0000);
    assert_eq!(m, vec![(far, far + 4096, "r--s".to_string())], "the first call made, the last not");
    // Ranges are checked before anything runs: none of these is made.
    let top = sb.platform.max_user_address();
    let refused = [
        MapOp::Map { addr: far + 0x20000, len: 4096, prot: Prot::READ, file },
        MapOp::Map { addr: top, len: 4096, prot: Prot::READ, file },
    ];
    let (at, _) = sb.aspace.apply(&refused).expect_err("over the top");
    assert_eq!(at, 1);
    assert!(maps_between(pid, far + 0x20000, far + 0x30000).is_empty());
}

#[test]
fn threads_in_one_address_space_run_concurrently() {
    let sb = Sandbox::new();
    let aspace: std::sync::Arc<dyn rvisor_platform::AddressSpace> = std::sync::Arc::from(sb.aspace);
    let mut handles = Vec::new();
    for i in 0..4u64 {
        let aspace = aspace.clone();
        let mut ctx = sb.platform.new_context().unwrap();
        handles.push(std::thread::spawn(move || {
            let mut arch = rvisor_platform::ArchState::new_user();
            arch.regs.rip = addr_of(Snippet::Regs);
            for _ in 0..50 {
                arch.regs.rip = addr_of(Snippet::Regs);
                let ev = ctx.switch(aspace.as_ref(), &mut arch).unwrap();
                assert_eq!(ev, Event::Syscall);
                arch.regs.rax = i;
                let ev = ctx.switch(aspace.as_ref(), &mut arch).unwrap();
                assert_eq!(ev, Event::Syscall);
                assert_eq!(arch.regs.rdi, i);
            }
        }));
    }
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
fn vsyscall_never_runs_on_the_host() {
    // The kernel emulates vsyscall calls itself, without a ptrace stop:
    // only the stub filter (which sees the vsyscall page's address) stands
    // between the application and a host `time()`. On ptrace it kills the
    // stub; on systrap it traps, and the kernel has already emulated the
    // `ret`: the sentry answers `time` and the code goes on after its call.
    let mut sb = Sandbox::new();
    let mut arch = sb.arch_at(Snippet::Vsyscall);
    arch.regs.rsp = DATA + 4096;
    let r = sb.ctx.switch(sb.aspace.as_ref(), &mut arch);
    if !TestPlatform::systrap() {
        assert!(matches!(r, Err(rvisor_platform::Error::StubDied { .. })), "got {r:?}");
        return;
    }
    assert_eq!(r.expect("switch"), Event::Syscall);
    assert_eq!(arch.regs.orig_rax, 201, "time");
    assert_eq!(arch.regs.rsp, DATA + 4096, "returned from the call");
    arch.regs.rax = 0x1234_5678;
    expect_syscall(&mut sb, &mut arch, 1004);
    assert_eq!(arch.regs.rdi, 0x1234_5678, "the sentry's answer, not the host's time");
}

#[test]
fn jumps_into_the_stub_code_trap_like_any_system_call() {
    // Every `syscall` instruction of the stub page, reached by a jump from
    // application code with the application's registers (here an mmap the
    // stub itself would be allowed to make), is the application's call for
    // the sentry to answer: the host makes no mapping.
    let mut sb = Sandbox::new();
    let mut arch = sb.arch_at(Snippet::Getpid);
    expect_syscall(&mut sb, &mut arch, 39);
    let pid =
        sb.aspace.as_any().downcast_ref::<rvisor_platform::ptrace::PtraceAddressSpace>().unwrap().stub_pid();
    let stub = sb.platform.stub_page();
    let mut page = vec![0u8; 4096];
    {
        use std::os::unix::fs::FileExt;
        let mem = std::fs::File::open(format!("/proc/{pid}/mem")).expect("stub memory");
        mem.read_exact_at(&mut page, stub).expect("read the stub page");
    }
    let calls: Vec<u64> =
        (0..4095).filter(|&i| page[i] == 0x0f && page[i + 1] == 0x05).map(|i| stub + i as u64).collect();
    assert!(calls.len() >= 4, "the stub page has its system calls: {calls:x?}");
    let target = 0x3000_0000u64;
    for at in calls {
        arch.regs.rip = at;
        arch.regs.rax = 9;
        arch.regs.rdi = target;
        arch.regs.rsi = 4096;
        arch.regs.rdx = u64::try_from(libc::PROT_READ).unwrap();
        arch.regs.r10 = u64::try_from(libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_FIXED).unwrap();
        arch.regs.r8 = u64::MAX;
        arch.regs.r9 = 0;
        let ev = sb.ctx.switch(sb.aspace.as_ref(), &mut arch).expect("switch");
        assert_eq!(
            (ev, arch.regs.orig_rax, arch.regs.rip),
            (Event::Syscall, 9, at + 2),
            "syscall at {at:#x}"
        );
        assert!(
            maps_between(pid, target, target + 4096).is_empty(),
            "the host mapped for the jump at {at:#x}"
        );
    }
}

/// Run by `stubs_die_with_their_sentry` in a child process: sets up a
/// platform, prints the stub pids and spins in a stub until killed.
#[test]
#[ignore = "helper process of stubs_die_with_their_sentry"]
fn helper_spin_forever() {
    if std::env::var_os("RVISOR_PLATFORM_HELPER").is_none() {
        return;
    }
    let mut sb = Sandbox::new();
    let mut arch = sb.arch_at(Snippet::Spin);
    let pid =
        sb.aspace.as_any().downcast_ref::<rvisor_platform::ptrace::PtraceAddressSpace>().unwrap().stub_pid();
    println!("PIDS {} {}", sb.platform.master_pid(), pid);
    use std::io::Write;
    std::io::stdout().flush().unwrap();
    let _ = sb.ctx.switch(sb.aspace.as_ref(), &mut arch);
    unreachable!("spin returned");
}

#[test]
fn stubs_die_with_their_sentry() {
    use std::io::{BufRead, BufReader};
    let exe = std::env::current_exe().unwrap();
    let mut child = std::process::Command::new(exe)
        .args(["--exact", "helper_spin_forever", "--ignored", "--nocapture", "--test-threads=1"])
        .env("RVISOR_PLATFORM_HELPER", "1")
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    let pids = loop {
        line.clear();
        assert!(out.read_line(&mut line).unwrap() > 0, "helper ended without printing pids");
        if let Some((_, rest)) = line.split_once("PIDS ") {
            let v: Vec<i32> = rest.split_whitespace().map(|p| p.parse().unwrap()).collect();
            break v;
        }
    };
    std::thread::sleep(Duration::from_millis(100));
    for &p in &pids {
        assert!(!process_gone(p), "stub {p} should be alive while its sentry is");
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    for &p in &pids {
        while !process_gone(p) {
            assert!(Instant::now() < deadline, "stub {p} outlived its sentry");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[test]
fn dropping_the_address_space_kills_the_stub() {
    let mut sb = Sandbox::new();
    let mut arch = sb.arch_at(Snippet::Getpid);
    expect_syscall(&mut sb, &mut arch, 39);
    let pid =
        sb.aspace.as_any().downcast_ref::<rvisor_platform::ptrace::PtraceAddressSpace>().unwrap().stub_pid();
    let aspace = std::mem::replace(&mut sb.aspace, sb.platform.new_address_space().unwrap());
    drop(aspace);
    let deadline = Instant::now() + Duration::from_secs(10);
    while !process_gone(pid) {
        assert!(Instant::now() < deadline, "stub {pid} outlived its address space");
        std::thread::sleep(Duration::from_millis(10));
    }
}
