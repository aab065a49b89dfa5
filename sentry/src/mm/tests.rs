//! Memory manager tests on the fake platform: copy-in/out with hostile
//! addresses, fault decisions, and mapping changes.

use std::sync::{Arc, OnceLock};

use rvisor_platform::fake::{FakeAddressSpace, FakePlatform};
use rvisor_platform::Prot;
use rvisor_syscalls::Errno;

use super::*;

fn mf() -> Arc<MemoryFile> {
    static MF: OnceLock<Arc<MemoryFile>> = OnceLock::new();
    MF.get_or_init(|| Arc::new(MemoryFile::new(4 << 30).expect("memory file"))).clone()
}

fn mm() -> MemoryManager {
    MemoryManager::new(&FakePlatform::default(), mf()).unwrap()
}

fn fake(mm: &MemoryManager) -> &FakeAddressSpace {
    mm.address_space().as_any().downcast_ref::<FakeAddressSpace>().unwrap()
}

fn anon(mm: &MemoryManager, len: u64, prot: Prot) -> u64 {
    mm.mmap_anon(MapRequest { len, prot, ..MapRequest::default() }, VmaName::None).unwrap()
}

const RW: Prot = Prot::READ.union(Prot::WRITE);

#[test]
fn copy_round_trip_across_pages_and_vmas() {
    let m = mm();
    let a = anon(&m, 3 * PAGE, RW);
    // Make the middle page a separate VMA (different protections).
    m.mprotect(a + PAGE, PAGE, Prot::READ | Prot::WRITE | Prot::EXEC).unwrap();
    let data: Vec<u8> = (0..(2 * PAGE + 100)).map(|i| (i % 251) as u8).collect();
    m.copy_out(a + 50, &data).unwrap();
    let mut back = vec![0u8; data.len()];
    m.copy_in(a + 50, &mut back).unwrap();
    assert_eq!(back, data);
}

#[test]
fn bad_addresses_are_efault_never_a_panic() {
    let m = mm();
    let a = anon(&m, PAGE, RW);
    let mut b = [0u8; 16];
    for addr in
        [0, 8, a - 8, a + PAGE - 8, m.max_addr() - 8, m.max_addr(), u64::MAX - 4, 0xffff_8000_0000_0000]
    {
        assert_eq!(m.copy_in(addr, &mut b), Err(Errno::EFAULT), "copy_in {addr:#x}");
        assert_eq!(m.copy_out(addr, &b), Err(Errno::EFAULT), "copy_out {addr:#x}");
    }
    // Zero-length copies succeed anywhere but wrap-around.
    assert_eq!(m.copy_in(0, &mut []), Ok(()));
    assert_eq!(m.read_obj::<u64>(u64::MAX), Err(Errno::EFAULT));
}

#[test]
fn protections_are_honoured() {
    let m = mm();
    let ro = anon(&m, PAGE, Prot::READ);
    let none = anon(&m, PAGE, Prot::empty());
    let mut b = [0u8; 4];
    assert_eq!(m.copy_in(ro, &mut b), Ok(()));
    assert_eq!(m.copy_out(ro, &b), Err(Errno::EFAULT));
    assert_eq!(m.copy_in(none, &mut b), Err(Errno::EFAULT));
    assert_eq!(m.copy_out(none, &b), Err(Errno::EFAULT));
    // The loader may write read-only memory.
    assert_eq!(m.poke(ro, b"abcd"), Ok(()));
    m.copy_in(ro, &mut b).unwrap();
    assert_eq!(&b, b"abcd");
}

#[test]
fn untouched_memory_reads_as_zeros_without_allocating() {
    let m = mm();
    let a = anon(&m, 64 * PAGE, RW);
    let mut b = vec![1u8; 64 * 4096];
    m.copy_in(a, &mut b).unwrap();
    assert!(b.iter().all(|&x| x == 0));
    assert!(m.lock().pmas.is_empty(), "a read must not commit memory");
}

#[test]
fn cstrings() {
    let m = mm();
    let a = anon(&m, 2 * PAGE, RW);
    m.munmap(a + PAGE, PAGE).unwrap();
    // A string ending right before the unmapped page.
    let s = a + PAGE - 6;
    m.copy_out(s, b"hello\0").unwrap();
    assert_eq!(m.read_cstring(s, 4096).unwrap(), b"hello");
    // Without a NUL before the hole: EFAULT.
    m.copy_out(s, b"hellox").unwrap();
    assert_eq!(m.read_cstring(s, 4096), Err(Errno::EFAULT));
    // Longer than allowed: ENAMETOOLONG.
    m.copy_out(a, &[b'x'; 100]).unwrap();
    assert_eq!(m.read_cstring(a, 10), Err(Errno::ENAMETOOLONG));
}

#[test]
fn faults_map_once_then_report_access_errors() {
    let m = mm();
    let a = anon(&m, 4 * PAGE, Prot::READ);
    assert_eq!(m.handle_fault(a + 10), Ok(()));
    assert_eq!(fake(&m).mapped(a), Some(Prot::READ));
    // The fault-around window maps the whole (small) VMA.
    assert_eq!(fake(&m).mapped(a + 3 * PAGE), Some(Prot::READ));
    // Faulting again on a page mapped with all the VMA allows: a real
    // access violation (a write to read-only memory).
    assert_eq!(m.handle_fault(a + 10), Err(SegvCode::AccErr));
    m.mprotect(a, PAGE, RW).unwrap();
    assert_eq!(fake(&m).mapped(a), Some(RW));
    assert_eq!(fake(&m).mapped(a + PAGE), Some(Prot::READ));
    let none = anon(&m, PAGE, Prot::empty());
    assert_eq!(m.handle_fault(none), Err(SegvCode::AccErr));
    assert_eq!(m.handle_fault(0x1234_5000), Err(SegvCode::MapErr));
}

#[test]
fn munmap_unmaps_and_frees() {
    let m = mm();
    let a = anon(&m, 4 * PAGE, RW);
    m.copy_out(a, b"data").unwrap();
    m.handle_fault(a).unwrap();
    m.munmap(a, 4 * PAGE).unwrap();
    assert_eq!(fake(&m).mapped(a), None);
    assert!(m.lock().pmas.is_empty());
    let mut b = [0u8; 4];
    assert_eq!(m.copy_in(a, &mut b), Err(Errno::EFAULT));
    assert_eq!(m.munmap(a + 1, PAGE), Err(Errno::EINVAL));
    assert_eq!(m.munmap(a, 0), Err(Errno::EINVAL));
    assert_eq!(m.munmap(a, u64::MAX - a), Err(Errno::EINVAL));
}

#[test]
fn mremap_moves_contents() {
    let m = mm();
    m.set_mmap_base(0x7000_0000_0000);
    let a = anon(&m, 2 * PAGE, RW);
    let _blocker = m
        .mmap_anon(
            MapRequest { addr: a + 2 * PAGE, len: PAGE, prot: Prot::READ, fixed: true, ..Default::default() },
            VmaName::None,
        )
        .unwrap();
    m.copy_out(a + PAGE, b"moved").unwrap();
    m.handle_fault(a).unwrap();
    assert_eq!(m.mremap(a, 2 * PAGE, 4 * PAGE, false, None), Err(Errno::ENOMEM));
    let b = m.mremap(a, 2 * PAGE, 4 * PAGE, true, None).unwrap();
    assert_ne!(a, b);
    let mut buf = [0u8; 5];
    m.copy_in(b + PAGE, &mut buf).unwrap();
    assert_eq!(&buf, b"moved");
    assert_eq!(fake(&m).mapped(a), None, "old range unmapped from the platform");
    let mut z = [1u8; 8];
    m.copy_in(b + 3 * PAGE, &mut z).unwrap();
    assert_eq!(z, [0; 8]);
}

#[test]
fn mmap_placement_and_flags() {
    let m = mm();
    m.set_mmap_base(0x7000_0000_0000);
    let a = anon(&m, PAGE, RW);
    assert!(a < 0x7000_0000_0000);
    let b = anon(&m, PAGE, RW);
    assert_eq!(b, a - PAGE, "top-down");
    let fixed = |addr: u64, noreplace: bool| MapRequest {
        addr,
        len: PAGE,
        prot: RW,
        fixed: !noreplace,
        noreplace,
        ..Default::default()
    };
    assert_eq!(m.mmap_anon(fixed(a, true), VmaName::None), Err(Errno::EEXIST));
    assert_eq!(m.mmap_anon(fixed(a + 1, false), VmaName::None), Err(Errno::EINVAL));
    assert_eq!(m.mmap_anon(fixed(m.max_addr(), false), VmaName::None), Err(Errno::ENOMEM));
    assert_eq!(m.mmap_anon(fixed(0, false), VmaName::None), Err(Errno::EPERM));
    let huge = MapRequest { len: u64::MAX - 10, prot: RW, ..Default::default() };
    assert_eq!(m.mmap_anon(huge, VmaName::None), Err(Errno::ENOMEM));
    let big = MapRequest { len: 1 << 46, prot: Prot::empty(), ..Default::default() };
    assert!(m.mmap_anon(big, VmaName::None).is_ok(), "lazy: a huge reservation costs nothing");
}

#[test]
fn brk_grows_and_shrinks() {
    let m = mm();
    m.set_brk_start(0x10_0000);
    assert_eq!(m.brk(0), 0x10_0000);
    assert_eq!(m.brk(0x10_0000 + 3 * PAGE + 5), 0x10_0000 + 3 * PAGE + 5);
    m.copy_out(0x10_0000 + 3 * PAGE, b"x").unwrap();
    assert_eq!(m.brk(0x10_0000 + 10), 0x10_0000 + 10);
    assert_eq!(m.copy_out(0x10_0000 + 3 * PAGE, b"x"), Err(Errno::EFAULT));
    assert_eq!(m.brk(0x1000), 0x10_0000 + 10, "below the start: unchanged");
    assert_eq!(m.brk(u64::MAX), 0x10_0000 + 10, "overflow: unchanged");
    // A mapping in the way stops growth.
    m.mmap_anon(
        MapRequest { addr: 0x20_0000, len: PAGE, prot: RW, fixed: true, ..Default::default() },
        VmaName::None,
    )
    .unwrap();
    assert_eq!(m.brk(0x30_0000), 0x10_0000 + 10);
}

#[test]
fn dont_need_zeroes_private_memory() {
    let m = mm();
    let a = anon(&m, 2 * PAGE, RW);
    m.copy_out(a, b"gone").unwrap();
    m.handle_fault(a).unwrap();
    m.dont_need(a, PAGE).unwrap();
    let mut b = [1u8; 4];
    m.copy_in(a, &mut b).unwrap();
    assert_eq!(b, [0; 4]);
    assert_eq!(fake(&m).mapped(a), None);
    assert_eq!(m.dont_need(0x1234_0000, PAGE), Err(Errno::ENOMEM));
}

fn peek(m: &MemoryManager, addr: u64) -> [u8; 4] {
    let mut b = [0u8; 4];
    m.copy_in(addr, &mut b).unwrap();
    b
}

#[test]
fn fork_shares_private_memory_copy_on_write() {
    let m = mm();
    let a = anon(&m, 4 * PAGE, RW);
    m.copy_out(a, b"old!").unwrap();
    m.copy_out(a + PAGE, b"page").unwrap();
    m.handle_fault(a).unwrap();
    assert_eq!(fake(&m).mapped(a), Some(RW));
    let c = m.fork(&FakePlatform::default()).unwrap();
    // The parent lost write access; the child maps nothing yet.
    assert_eq!(fake(&m).mapped(a), Some(Prot::READ));
    assert_eq!(fake(&c).mapped(a), None);
    assert_eq!(peek(&c, a), *b"old!");
    // A write through the sentry copies the page for the writer only.
    m.copy_out(a, b"new!").unwrap();
    assert_eq!(peek(&m, a), *b"new!");
    assert_eq!(peek(&c, a), *b"old!");
    // The parent copied the first page, so the child owns the original
    // alone: its first fault maps the (still shared) run read-only, the
    // write fault that follows makes the page writable without a copy.
    let orig = c.lock().pmas.range(..=a).next_back().map(|(_, p)| p.off).unwrap();
    c.handle_fault(a).unwrap();
    assert_eq!(fake(&c).mapped(a), Some(Prot::READ));
    c.handle_fault(a).unwrap();
    assert_eq!(fake(&c).mapped(a), Some(RW), "last owner: made writable");
    assert_eq!(c.lock().pmas.get(&a).map(|p| p.off), Some(orig), "not copied");
    // The second page is still shared: read-only in both, and a write
    // fault in the child copies it.
    assert_eq!(fake(&c).mapped(a + PAGE), Some(Prot::READ));
    let before = c.lock().pmas.range(..=a + PAGE).next_back().map(|(&k, p)| p.off + (a + PAGE - k)).unwrap();
    c.handle_fault(a + PAGE).unwrap();
    assert_eq!(fake(&c).mapped(a + PAGE), Some(RW));
    let after = c.lock().pmas.get(&(a + PAGE)).map(|p| p.off).unwrap();
    assert_ne!(before, after, "copied");
    assert_eq!(peek(&c, a + PAGE), *b"page");
    c.copy_out(a + PAGE, b"kid!").unwrap();
    assert_eq!(peek(&m, a + PAGE), *b"page");
    // Dropping the child leaves the parent the sole owner of the rest.
    drop(c);
    m.handle_fault(a + 2 * PAGE).unwrap();
    assert_eq!(fake(&m).mapped(a + 2 * PAGE), Some(RW));
}

#[test]
fn fork_keeps_shared_memory_shared_and_honours_madvise() {
    let m = mm();
    let sh = m
        .mmap_anon(MapRequest { len: 2 * PAGE, prot: RW, shared: true, ..Default::default() }, VmaName::None)
        .unwrap();
    let wipe = anon(&m, PAGE, RW);
    let gone = anon(&m, PAGE, Prot::READ);
    m.copy_out(wipe, b"wipe").unwrap();
    m.set_fork_flag(wipe, PAGE, VmaFlags::WIPEONFORK, true).unwrap();
    m.set_fork_flag(gone, PAGE, VmaFlags::DONTFORK, true).unwrap();
    assert_eq!(m.set_fork_flag(sh, PAGE, VmaFlags::WIPEONFORK, true), Err(Errno::EINVAL));
    let c = m.fork(&FakePlatform::default()).unwrap();
    // Written after the fork, by either side, in pages neither touched.
    m.copy_out(sh + PAGE, b"from").unwrap();
    assert_eq!(peek(&c, sh + PAGE), *b"from");
    c.copy_out(sh, b"back").unwrap();
    assert_eq!(peek(&m, sh), *b"back");
    c.handle_fault(sh).unwrap();
    assert_eq!(fake(&c).mapped(sh), Some(RW), "shared memory is never copy-on-write");
    assert_eq!(peek(&c, wipe), [0; 4]);
    assert_eq!(peek(&m, wipe), *b"wipe");
    let mut b = [0u8; 4];
    assert_eq!(c.copy_in(gone, &mut b), Err(Errno::EFAULT));
    drop(m);
    assert_eq!(peek(&c, sh), *b"back", "the survivor keeps shared memory");
}
