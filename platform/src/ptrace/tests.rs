//! Tests that need the backend's internals: proving the stub's seccomp
//! filter is in force (not merely installed) means running application code
//! *without* `PTRACE_SYSEMU`, which the public API never does.

use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd};

use super::*;
use crate::{FileRange, Platform, Prot};

const CODE: u64 = 0x10_0000;

/// `mov eax, 39; syscall; jmp .` — getpid from application memory.
const GETPID_FROM_APP: [u8; 9] = [0xb8, 0x27, 0x00, 0x00, 0x00, 0x0f, 0x05, 0xeb, 0xfe];

fn memfd_with(code: &[u8]) -> OwnedFd {
    // SAFETY: memfd_create with a static NUL-terminated name.
    let fd = unsafe { libc::memfd_create(c"t".as_ptr(), libc::MFD_CLOEXEC) };
    assert!(fd >= 0);
    // SAFETY: `fd` was just created and nobody else owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // SAFETY: plain-value call on our fd.
    assert_eq!(unsafe { libc::ftruncate(fd.as_raw_fd(), 4096) }, 0);
    // SAFETY: writes `code.len()` bytes from `code`.
    let n = unsafe { libc::pwrite(fd.as_raw_fd(), code.as_ptr().cast(), code.len(), 0) };
    assert_eq!(usize::try_from(n).unwrap(), code.len());
    fd
}

fn process_of(a: &dyn AddressSpace) -> Arc<StubProcess> {
    downcast(a).unwrap().inner.clone()
}

#[test]
fn syscall_from_application_memory_kills_the_stub() {
    let p = PtracePlatform::new(Config::default()).unwrap();
    let a = p.new_address_space().unwrap();
    let fd = memfd_with(&GETPID_FROM_APP);
    a.map(CODE, 4096, Prot::READ | Prot::EXEC, FileRange { fd: fd.as_fd(), offset: 0 }).unwrap();
    let process = process_of(a.as_ref());

    // Positive control: a call the stub makes, from the stub page, runs.
    let ppid = with_binding(&process, None, |b| b.tracee.inject(p.shared.region, 110, [0; 6])).unwrap();
    assert_eq!(ppid, i64::from(p.master_pid()));

    // Now let the application's own `syscall` instruction run for real
    // (PTRACE_CONT instead of PTRACE_SYSEMU): the filter must kill the stub
    // process with SIGSYS before the host executes the call.
    let stop = with_binding(&process, None, |b| {
        let mut r = b.tracee.base;
        r.rip = CODE;
        r.orig_rax = u64::MAX;
        sys::set_regs(b.tracee.tid, &r)?;
        sys::ptrace(libc::PTRACE_CONT, b.tracee.tid, 0, 0)?;
        loop {
            match wait(b.tracee.tid)? {
                s @ (Stop::Killed(_) | Stop::Exited(_)) => return Ok(s),
                // The SIGSYS of SECCOMP_RET_KILL_PROCESS is not reported as
                // a signal-delivery stop, but be tolerant of stray stops.
                _ => sys::ptrace(libc::PTRACE_CONT, b.tracee.tid, 0, 0).map(drop)?,
            }
        }
    })
    .unwrap();
    assert_eq!(stop, Stop::Killed(libc::SIGSYS));
    // The whole stub process is gone, not just the thread.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let gone = match std::fs::read_to_string(format!("/proc/{}/stat", process.pid)) {
            Err(_) => true,
            Ok(s) => s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')),
        };
        if gone {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "stub process survived");
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[test]
fn jumping_into_the_stub_code_does_not_open_the_host() {
    // The application may jump to the stub's own `syscall` instruction with
    // registers of its choosing: the filter also checks the call itself.
    let p = PtracePlatform::new(Config::default()).unwrap();
    let a = p.new_address_space().unwrap();
    let process = process_of(a.as_ref());
    let stop = with_binding(&process, None, |b| {
        let mut r = b.tracee.base;
        r.rip = p.stub_syscall_addr();
        r.rax = 39; // getpid: not a call the stub makes
        r.orig_rax = u64::MAX;
        sys::set_regs(b.tracee.tid, &r)?;
        sys::ptrace(libc::PTRACE_CONT, b.tracee.tid, 0, 0)?;
        wait(b.tracee.tid)
    })
    .unwrap();
    assert_eq!(stop, Stop::Killed(libc::SIGSYS));
}

#[test]
fn stub_cannot_be_reached_by_an_untraced_syscall_even_from_a_thread() {
    // Same proof with a second stub thread: every thread carries the filter.
    let p = PtracePlatform::new(Config::default()).unwrap();
    let a = p.new_address_space().unwrap();
    let fd = memfd_with(&GETPID_FROM_APP);
    a.map(CODE, 4096, Prot::READ | Prot::EXEC, FileRange { fd: fd.as_fd(), offset: 0 }).unwrap();
    let process = process_of(a.as_ref());
    let t = std::thread::spawn(move || {
        let stop = with_binding(&process, Some(77), |b| {
            let mut r = b.tracee.base;
            r.rip = CODE;
            r.orig_rax = u64::MAX;
            sys::set_regs(b.tracee.tid, &r)?;
            sys::ptrace(libc::PTRACE_CONT, b.tracee.tid, 0, 0)?;
            wait(b.tracee.tid)
        })
        .unwrap();
        assert_eq!(stop, Stop::Killed(libc::SIGSYS));
    });
    t.join().unwrap();
}

/// The descriptors open in process `pid`, with what they name.
fn open_files(pid: i32) -> Vec<(i32, String)> {
    let mut v: Vec<(i32, String)> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let n = e.file_name().to_str().unwrap().parse().unwrap();
            (n, std::fs::read_link(e.path()).unwrap().display().to_string())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn stubs_hold_only_the_files_they_were_given() {
    // Opened before the platform: the master's fork copies the sentry's
    // table, and must keep none of it.
    let before = std::fs::File::open("/proc/self/status").unwrap();
    let p = PtracePlatform::new(Config::default()).unwrap();
    let after = std::fs::File::open("/proc/self/stat").unwrap();
    let only_channel_and_batch = |pid: i32| {
        let files = open_files(pid);
        assert_eq!(files.len(), 2, "{files:?}");
        assert_eq!(files[0].0, 0);
        assert!(files[0].1.starts_with("socket:"), "{files:?}");
        assert_eq!(files[1].0, 1);
        assert!(files[1].1.contains("rvisor-batch"), "{files:?}");
    };
    only_channel_and_batch(p.master_pid());
    let a = p.new_address_space().unwrap();
    let process = process_of(a.as_ref());
    only_channel_and_batch(process.pid);

    // A mapped file arrives once, however often it is mapped.
    let fd = memfd_with(&GETPID_FROM_APP);
    for _ in 0..3 {
        a.map(CODE, 4096, Prot::READ | Prot::EXEC, FileRange { fd: fd.as_fd(), offset: 0 }).unwrap();
    }
    let dup = fd.try_clone().unwrap();
    a.map(CODE + 4096, 4096, Prot::READ, FileRange { fd: dup.as_fd(), offset: 0 }).unwrap();
    let files = open_files(process.pid);
    assert_eq!(files.len(), 3, "{files:?}");
    assert_eq!(files[2].0, 2);
    assert!(files[2].1.starts_with("/memfd:t"), "{files:?}");
    drop((before, after));

    // Past the table's bound it is emptied; the mappings stay.
    let many: Vec<OwnedFd> = (0..200).map(|_| memfd_with(&[0x90])).collect();
    for (i, f) in many.iter().enumerate() {
        let addr = CODE + 0x10_0000 + 4096 * u64::try_from(i).unwrap();
        a.map(addr, 4096, Prot::READ, FileRange { fd: f.as_fd(), offset: 0 }).unwrap();
    }
    let n = open_files(process.pid).len();
    assert!(n <= 2 + 128, "{n} files in the stub");
    assert_eq!(process.files.lock().unwrap().len() + 2, n);
    // Mapping in a batch, with files old and new.
    let ops: Vec<MapOp<'_>> = many[..100]
        .iter()
        .enumerate()
        .map(|(i, f)| MapOp::Map {
            addr: CODE + 0x20_0000 + 4096 * u64::try_from(i).unwrap(),
            len: 4096,
            prot: Prot::READ,
            file: FileRange { fd: f.as_fd(), offset: 0 },
        })
        .collect();
    a.apply(&ops).unwrap();
    let n = open_files(process.pid).len();
    assert!(n <= 2 + 128, "{n} files in the stub");
}
