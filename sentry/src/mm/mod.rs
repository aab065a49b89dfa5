//! Memory management: the VMAs of an address space, the memory-file pages
//! behind them, the platform address space as a cache of both, and the one
//! gateway to application memory (copy-in/out).
//!
//! - VMAs ([`vma::VmaSet`]) are the application's view: what `mmap`,
//!   `munmap`, `mprotect`, `brk` and `mremap` manipulate.
//! - PMAs are the memory behind private anonymous VMAs: ranges of the memory
//!   file, allocated lazily (on the first fault or write), a 2 MiB window at
//!   a time. Commit is lazy as on Linux: a PMA costs host memory only for
//!   the pages actually touched.
//! - The platform address space maps PMAs on fault, with the VMA's
//!   protections; a fault on a page already mapped with its VMA's
//!   protections is a real access violation.
//! - File mappings (VMAs with a [`vma::FileMap`]) are mapped straight from
//!   the host file the gofer donated, so the host page cache is shared by
//!   every sandbox and `MAP_SHARED` mappings stay coherent with `read` and
//!   `write` of the file. Pages of a private file mapping are mapped
//!   without write access; a write (a fault on a page already mapped with
//!   everything else the VMA allows: the ptrace platform does not report
//!   access types) copies the page into the memory file first. A page
//!   wholly past the end of the file gives `SIGBUS`, as on Linux (the host
//!   raises it for pages mapped from the file; the sentry for copies).

pub mod memfile;
pub mod vma;

use std::collections::BTreeMap;
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex, MutexGuard};

use rvisor_platform::{AddressSpace, FileRange, MapOp, Platform, Prot};
use rvisor_syscalls::Errno;
use zerocopy::{FromBytes, Immutable, IntoBytes};

pub use self::memfile::MemoryFile;
use self::vma::{FileMap, Vma, VmaFlags, VmaName, VmaSet};

/// Page size.
pub const PAGE: u64 = 4096;
/// Page size, as a length.
pub const PAGE_BYTES: usize = 4096;
/// Allocation and fault-around unit of anonymous memory.
pub const HUGE_PAGE: u64 = 2 << 20;
/// Most VMAs an address space may have (Linux's `vm.max_map_count`).
pub const MAX_MAP_COUNT: usize = 65530;
/// Most pages one `mincore` call of the memory manager reports.
pub const MINCORE_CHUNK: u64 = 4096;
/// Most memory `MAP_POPULATE` maps ahead (the rest faults in as usual).
const MAX_POPULATE: u64 = 64 << 20;

/// Rounds down to a page boundary.
pub fn page_down(v: u64) -> u64 {
    v & !(PAGE - 1)
}

/// Rounds up to a page boundary (`None` on overflow).
pub fn page_up(v: u64) -> Option<u64> {
    Some(v.checked_add(PAGE - 1)? & !(PAGE - 1))
}

/// `si_code` of a fault the application must see as `SIGSEGV`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegvCode {
    /// No mapping at the address.
    MapErr,
    /// A mapping that does not allow the access.
    AccErr,
    /// A file page wholly past the end of the file (`SIGBUS`).
    Bus,
    /// The page is mapped with everything its VMA allows: either the
    /// access is forbidden (`AccErr`) or the fault is stale (another
    /// thread changed the mapping between the host's fault and this
    /// handling: a copy-on-write broken, a page made writable). The
    /// faulting thread retries once to tell.
    Stale,
}

/// Memory behind a range of a VMA: memory-file pages (anonymous memory,
/// copies of private file pages) or the VMA's file itself.
#[derive(Clone, Copy, Debug)]
struct Pma {
    end: u64,
    /// Offset of the first byte in the memory file, or in the VMA's file
    /// when `file`.
    off: u64,
    /// Backed by the VMA's file, not the memory file.
    file: bool,
    /// Memory-file pages shared copy-on-write with another address space
    /// (since a `fork`): a write copies them first, unless this address
    /// space turns out to be their last owner.
    cow: bool,
    /// Protections it is mapped with in the platform address space.
    mapped: Option<Prot>,
}

/// What a PMA is mapped with: the VMA's rights, less writing for file
/// pages of a private mapping and for copy-on-write pages (a write copies
/// them first).
fn eff_prot(vma: &Vma, p: &Pma) -> Prot {
    if p.cow || (p.file && !vma.flags.contains(VmaFlags::SHARED)) {
        vma.prot - Prot::WRITE
    } else {
        vma.prot
    }
}

/// A piece of application memory, as copy-in/out sees it.
enum Piece {
    /// Memory-file bytes at this offset.
    Mem(u64),
    /// Never touched anonymous memory: zeros.
    Zero,
    /// Bytes of a mapped file at this offset.
    File(Arc<OwnedFd>, u64),
}

/// Reads `buf.len()` bytes of a mapped file at `off`, as an access through
/// a mapping would: bytes past the end of the file but inside its last page
/// are zeros; a page wholly past the end is `EFAULT`.
fn read_mapped(fd: &OwnedFd, off: u64, buf: &mut [u8]) -> Result<(), Errno> {
    let size = rustix::fs::fstat(fd).map_err(|_| Errno::EFAULT)?.st_size.cast_unsigned();
    let limit = page_up(size).unwrap_or(u64::MAX);
    if off.checked_add(buf.len() as u64).is_none_or(|e| e > limit) {
        return Err(Errno::EFAULT);
    }
    let mut done = 0;
    while done < buf.len() {
        match rustix::io::pread(fd, &mut buf[done..], off + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return Err(Errno::EFAULT),
        }
    }
    buf[done..].fill(0);
    Ok(())
}

/// Writes `data` to a shared file mapping's file at `off`: bytes past the
/// end of the file (inside its last page) are not kept, as on Linux.
fn write_mapped(fd: &OwnedFd, off: u64, data: &[u8]) -> Result<(), Errno> {
    let size = rustix::fs::fstat(fd).map_err(|_| Errno::EFAULT)?.st_size.cast_unsigned();
    let limit = page_up(size).unwrap_or(u64::MAX);
    if off.checked_add(data.len() as u64).is_none_or(|e| e > limit) {
        return Err(Errno::EFAULT);
    }
    let keep = usize::try_from(size.saturating_sub(off)).unwrap_or(usize::MAX).min(data.len());
    let mut done = 0;
    while done < keep {
        match rustix::io::pwrite(fd, &data[done..keep], off + done as u64) {
            Ok(0) => return Err(Errno::EFAULT),
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return Err(Errno::EFAULT),
        }
    }
    Ok(())
}

#[derive(Debug, Default)]
struct MmState {
    vmas: VmaSet,
    pmas: BTreeMap<u64, Pma>,
    brk_start: u64,
    brk: u64,
    mmap_base: u64,
    /// Ranges a fresh address space will likely touch first (what the
    /// parent had mapped at `fork`; a new program's segments and stack):
    /// the first fault maps what memory they already have, in one batch.
    prefault: Vec<(u64, u64)>,
}

/// Most runs one prefault maps (each is one `mmap` in the platform).
const PREFAULT_RUNS: usize = 64;

/// A run of pages to map: `[start, end)`, contiguous at `off` in the
/// file (`file`: the VMA's file, else the memory file), with `prot`.
#[derive(Clone, Copy, Debug)]
struct Run {
    start: u64,
    end: u64,
    off: u64,
    file: bool,
    prot: Prot,
}

/// Flags of an `mmap` request, decoded.
#[derive(Clone, Copy, Debug, Default)]
pub struct MapRequest {
    /// Address hint or fixed address.
    pub addr: u64,
    /// Length (not yet rounded).
    pub len: u64,
    /// Protections.
    pub prot: Prot,
    /// `MAP_SHARED`.
    pub shared: bool,
    /// `MAP_FIXED`: replace whatever is there.
    pub fixed: bool,
    /// `MAP_FIXED_NOREPLACE`: fail with `EEXIST` if anything is there.
    pub noreplace: bool,
    /// `MAP_GROWSDOWN`.
    pub growsdown: bool,
    /// `MAP_POPULATE`.
    pub populate: bool,
}

/// What `/proc/PID` shows of an address space: the program and where its
/// arguments are (Linux keeps these in the `mm` too).
#[derive(Clone, Debug, Default)]
pub struct MmMeta {
    /// The executable (`/proc/PID/exe`).
    pub exe: Option<crate::vfs::Path>,
    /// argv and envp strings.
    pub args: crate::loader::ArgArea,
}

/// What one VMA holds in memory, in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VmaUsage {
    /// Resident.
    pub rss: u64,
    /// Anonymous (private memory-file pages).
    pub anon: u64,
    /// Memory-file pages of a shared mapping.
    pub shmem: u64,
    /// File pages of a shared mapping.
    pub shared_clean: u64,
    /// Memory-file pages shared with another address space.
    pub shared_dirty: u64,
    /// File pages of a private mapping.
    pub private_clean: u64,
    /// Memory-file pages only this address space has.
    pub private_dirty: u64,
}

/// An application address space.
pub struct MemoryManager {
    aspace: Box<dyn AddressSpace>,
    mf: Arc<MemoryFile>,
    min_addr: u64,
    max_addr: u64,
    state: Mutex<MmState>,
    meta: Mutex<MmMeta>,
    /// The executable may not be written while this runs it.
    exe_deny: Mutex<Option<crate::vfs::textbusy::DenyWrite>>,
    /// See [`MemoryManager::changes`].
    changes: std::sync::atomic::AtomicU64,
}

impl std::fmt::Debug for MemoryManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryManager").finish_non_exhaustive()
    }
}

impl MemoryManager {
    /// A new, empty address space.
    pub fn new(platform: &dyn Platform, mf: Arc<MemoryFile>) -> Result<MemoryManager, Errno> {
        let aspace = platform.new_address_space().map_err(|e| {
            tracing::error!("new address space: {e}");
            Errno::ENOMEM
        })?;
        Ok(MemoryManager {
            aspace,
            mf,
            min_addr: platform.min_user_address(),
            max_addr: platform.max_user_address(),
            state: Mutex::new(MmState::default()),
            meta: Mutex::new(MmMeta::default()),
            exe_deny: Mutex::new(None),
            changes: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Keeps the executable unwritable while this address space lives.
    pub fn hold_exe(&self, deny: Option<crate::vfs::textbusy::DenyWrite>) {
        *self.exe_deny.lock().unwrap_or_else(|p| p.into_inner()) = deny;
    }

    /// Records the program this address space runs and its argument area.
    pub fn set_exe(&self, exe: crate::vfs::Path, args: crate::loader::ArgArea) {
        *self.meta.lock().unwrap_or_else(|p| p.into_inner()) = MmMeta { exe: Some(exe), args };
    }

    /// The program and argument area.
    pub fn meta(&self) -> MmMeta {
        self.meta.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// `fork`: a copy of this address space in a new platform address
    /// space. Private memory is shared copy-on-write (both sides lose write
    /// access to it until they write, when the writer copies the page or,
    /// as its last owner, takes it); shared memory stays shared;
    /// `MADV_DONTFORK` areas are left out and `MADV_WIPEONFORK` ones are
    /// zero in the child. Nothing is copied now.
    pub fn fork(&self, platform: &dyn Platform) -> Result<MemoryManager, Errno> {
        let child = MemoryManager::new(platform, self.mf.clone())?;
        let mut st = self.lock();
        // Shared anonymous memory is shared through its memory-file pages:
        // every part gets them now (ranges of a sparse file: no memory is
        // committed).
        let shared_anon: Vec<(u64, u64)> = st
            .vmas
            .iter()
            .filter(|v| v.flags.contains(VmaFlags::SHARED) && !v.flags.contains(VmaFlags::DONTFORK))
            .filter(|v| v.file.is_none())
            .map(|v| (v.start, v.end))
            .collect();
        for (s, e) in shared_anon {
            self.ensure_pmas(&mut st, s, e)?;
        }
        let vmas: Vec<Vma> =
            st.vmas.iter().filter(|v| !v.flags.contains(VmaFlags::DONTFORK)).cloned().collect();
        let mut cst =
            MmState { brk_start: st.brk_start, brk: st.brk, mmap_base: st.mmap_base, ..MmState::default() };
        let mut protect: Vec<(u64, u64, Prot)> = Vec::new();
        let mut hot: Vec<(u64, u64)> = Vec::new();
        for v in vmas {
            split_pma(&mut st.pmas, v.start);
            split_pma(&mut st.pmas, v.end);
            let shared = v.flags.contains(VmaFlags::SHARED);
            let wipe = v.flags.contains(VmaFlags::WIPEONFORK) && !shared;
            let (vs, ve) = (v.start, v.end);
            cst.vmas.insert(v.clone());
            if wipe {
                continue;
            }
            for (&k, p) in st.pmas.range_mut(vs..ve) {
                let mut c = Pma { mapped: None, ..*p };
                if p.mapped.is_some() {
                    match hot.last_mut() {
                        Some(r) if r.1 == k => r.1 = p.end,
                        _ => hot.push((k, p.end)),
                    }
                }
                if !p.file {
                    self.mf.incref(p.off, p.end - k);
                    if !shared {
                        c.cow = true;
                        p.cow = true;
                        let want = eff_prot(&v, p);
                        if p.mapped.is_some_and(|m| m != want) {
                            p.mapped = Some(want);
                            match protect.last_mut() {
                                Some(r) if r.1 == k && r.2 == want => r.1 = p.end,
                                _ => protect.push((k, p.end, want)),
                            }
                        }
                    }
                }
                cst.pmas.insert(k, c);
            }
        }
        let ops: Vec<MapOp<'_>> =
            protect.iter().map(|&(s, e, prot)| MapOp::Protect { addr: s, len: e - s, prot }).collect();
        if let Err((done, err)) = self.aspace.apply(&ops) {
            // Never leave the parent writing pages the child shares: drop
            // the mappings not known to be read-only (they fault back in).
            tracing::error!("platform protect after fork: {err}");
            for &(s, e, _) in &protect[done..] {
                for (_, p) in st.pmas.range_mut(s..e) {
                    p.mapped = None;
                }
                if !self.platform_unmap(s, e) {
                    return Err(Errno::ENOMEM);
                }
            }
        }
        drop(st);
        hot.truncate(PREFAULT_RUNS);
        cst.prefault = hot;
        *child.state.lock().unwrap_or_else(|p| p.into_inner()) = cst;
        *child.meta.lock().unwrap_or_else(|p| p.into_inner()) = self.meta();
        let deny = self.exe_deny.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|d| d.duplicate());
        child.hold_exe(deny);
        Ok(child)
    }

    /// `madvise(MADV_DONTFORK / MADV_DOFORK / MADV_WIPEONFORK /
    /// MADV_KEEPONFORK)`: sets or clears `flag` on `[addr, addr+len)`.
    /// `MADV_WIPEONFORK` applies to private anonymous memory only.
    pub fn set_fork_flag(&self, addr: u64, len: u64, flag: VmaFlags, on: bool) -> Result<(), Errno> {
        let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
        let mut st = self.lock();
        Self::room_for_vmas(&st)?;
        if !st.vmas.covers(addr, end) {
            return Err(Errno::ENOMEM);
        }
        let not_private_anon = |v: &Vma| v.flags.contains(VmaFlags::SHARED) || v.file.is_some();
        if flag == VmaFlags::WIPEONFORK && on && st.vmas.overlapping(addr, end).any(not_private_anon) {
            return Err(Errno::EINVAL);
        }
        st.vmas.update(addr, end, |v| v.flags.set(flag, on));
        Ok(())
    }

    /// CPU time the application has used in this address space (zero if
    /// the platform cannot tell).
    pub fn cpu_time(&self) -> std::time::Duration {
        self.aspace.cpu_time().unwrap_or_default()
    }

    /// The platform address space.
    pub fn address_space(&self) -> &dyn AddressSpace {
        self.aspace.as_ref()
    }

    /// Lowest mappable address.
    pub fn min_addr(&self) -> u64 {
        self.min_addr
    }

    /// One past the highest mappable address.
    pub fn max_addr(&self) -> u64 {
        self.max_addr
    }

    fn lock(&self) -> MutexGuard<'_, MmState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets where top-down `mmap` placement starts (the loader decides).
    pub fn set_mmap_base(&self, base: u64) {
        self.lock().mmap_base = base;
    }

    /// Sets the start of the `brk` area (the loader decides).
    pub fn set_brk_start(&self, start: u64) {
        let mut st = self.lock();
        st.brk_start = start;
        st.brk = start;
    }

    /// `ENOMEM` if an operation that may add two VMAs would pass the limit.
    fn room_for_vmas(st: &MmState) -> Result<(), Errno> {
        if st.vmas.len() + 2 > MAX_MAP_COUNT {
            Err(Errno::ENOMEM)
        } else {
            Ok(())
        }
    }

    fn in_user_range(&self, start: u64, len: u64) -> bool {
        start >= self.min_addr && start.checked_add(len).is_some_and(|e| e <= self.max_addr)
    }

    // ------------------------------------------------------------------
    // Mapping changes.

    /// `mmap` of anonymous memory. Returns the address.
    pub fn mmap_anon(&self, req: MapRequest, name: VmaName) -> Result<u64, Errno> {
        self.mmap_inner(req, name, None)
    }

    /// `mmap` of a file (the caller checked the file's access mode against
    /// the request). Returns the address.
    pub fn mmap_file(&self, req: MapRequest, name: VmaName, file: FileMap) -> Result<u64, Errno> {
        self.mmap_inner(req, name, Some(file))
    }

    fn mmap_inner(&self, req: MapRequest, name: VmaName, file: Option<FileMap>) -> Result<u64, Errno> {
        if req.len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_up(req.len).ok_or(Errno::ENOMEM)?;
        let mut st = self.lock();
        Self::room_for_vmas(&st)?;
        let start = self.place(&mut st, req, len)?;
        let mut flags = VmaFlags::empty();
        if req.shared {
            flags |= VmaFlags::SHARED;
        }
        if req.growsdown {
            flags |= VmaFlags::GROWSDOWN;
        }
        if !req.shared && req.prot.contains(Prot::WRITE) {
            flags |= VmaFlags::ACCOUNT;
        }
        if req.fixed && !req.noreplace {
            self.unmap_locked(&mut st, start, start + len)?;
        }
        st.vmas.insert(Vma { start, end: start + len, prot: req.prot, flags, name, file });
        if req.populate && !req.prot.is_empty() {
            // A hint: map the first part ahead; the rest faults in.
            let end = start + len.min(MAX_POPULATE);
            let mut at = start;
            while at < end && self.fault_locked(&mut st, at, false).is_ok() {
                at = (page_down(at) & !(HUGE_PAGE - 1)) + HUGE_PAGE;
            }
        }
        Ok(start)
    }

    fn place(&self, st: &mut MmState, req: MapRequest, len: u64) -> Result<u64, Errno> {
        if req.fixed || req.noreplace {
            if !req.addr.is_multiple_of(PAGE) {
                return Err(Errno::EINVAL);
            }
            if !self.in_user_range(req.addr, len) {
                return Err(if req.addr < self.min_addr { Errno::EPERM } else { Errno::ENOMEM });
            }
            if req.noreplace && st.vmas.intersects(req.addr, req.addr + len) {
                return Err(Errno::EEXIST);
            }
            return Ok(req.addr);
        }
        let hint = page_down(req.addr);
        if hint != 0 && self.in_user_range(hint, len) && !st.vmas.intersects(hint, hint + len) {
            return Ok(hint);
        }
        let base = if st.mmap_base == 0 { self.max_addr } else { st.mmap_base };
        st.vmas
            .find_gap_top_down(len, self.min_addr, base)
            .or_else(|| st.vmas.find_gap_top_down(len, self.min_addr, self.max_addr))
            .ok_or(Errno::ENOMEM)
    }

    /// `munmap`.
    pub fn munmap(&self, addr: u64, len: u64) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE) || len == 0 {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len).ok_or(Errno::EINVAL)?;
        let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
        if end > self.max_addr {
            return Err(Errno::EINVAL);
        }
        let mut st = self.lock();
        Self::room_for_vmas(&st)?;
        self.unmap_locked(&mut st, addr, end)
    }

    fn unmap_locked(&self, st: &mut MmState, start: u64, end: u64) -> Result<(), Errno> {
        st.vmas.remove(start, end);
        self.drop_pmas(st, start, end);
        Ok(())
    }

    /// Removes the PMAs in `[start, end)`: unmaps them from the platform
    /// address space, then frees their memory. Memory is never freed while
    /// an application thread could still reach it: if the unmap fails the
    /// memory is leaked (and the failure logged) rather than reused.
    fn drop_pmas(&self, st: &mut MmState, start: u64, end: u64) {
        split_pma(&mut st.pmas, start);
        split_pma(&mut st.pmas, end);
        let keys: Vec<u64> = st.pmas.range(start..end).map(|(&k, _)| k).collect();
        let mut mapped = false;
        let mut ranges = Vec::with_capacity(keys.len());
        for k in keys {
            if let Some(p) = st.pmas.remove(&k) {
                mapped |= p.mapped.is_some();
                if !p.file {
                    ranges.push((p.off, p.end - k));
                }
            }
        }
        if mapped && !self.platform_unmap(start, end) {
            return;
        }
        for (off, len) in ranges {
            self.mf.release(off, len);
        }
    }

    /// Unmaps `[start, end)` from the platform address space; false (and
    /// logged) if that failed.
    fn platform_unmap(&self, start: u64, end: u64) -> bool {
        let (s, e) = (start.max(self.min_addr), end.min(self.max_addr));
        if s < e {
            if let Err(err) = self.aspace.unmap(s, e - s) {
                tracing::error!("platform unmap {s:#x}-{e:#x}: {err}; memory leaked, not reused");
                return false;
            }
        }
        true
    }

    /// Checks that `[addr, addr+len)` is mapped with the application's
    /// rights (`write`: writable, otherwise readable), without touching it.
    pub fn check_access(&self, addr: u64, len: usize, write: bool) -> Result<(), Errno> {
        let end = addr.checked_add(len as u64).ok_or(Errno::EFAULT)?;
        if len == 0 {
            return Ok(());
        }
        if addr < self.min_addr || end > self.max_addr {
            return Err(Errno::EFAULT);
        }
        let st = self.lock();
        let mut at = addr;
        while at < end {
            let v = st.vmas.find(at).ok_or(Errno::EFAULT)?;
            let ok = if write { v.prot.contains(Prot::WRITE) } else { !v.prot.is_empty() };
            if !ok {
                return Err(Errno::EFAULT);
            }
            at = v.end;
        }
        Ok(())
    }

    /// [`check_access`](Self::check_access) for writing.
    pub fn check_writable(&self, addr: u64, len: usize) -> Result<(), Errno> {
        self.check_access(addr, len, true)
    }

    /// Whether the VMA at `addr` grows down.
    pub fn grows_down(&self, addr: u64) -> bool {
        self.lock().vmas.find(addr).is_some_and(|v| v.flags.contains(VmaFlags::GROWSDOWN))
    }

    /// `mprotect`.
    pub fn mprotect(&self, addr: u64, len: u64, prot: Prot) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE) {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len).ok_or(Errno::ENOMEM)?;
        if len == 0 {
            return Ok(());
        }
        let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
        let mut st = self.lock();
        Self::room_for_vmas(&st)?;
        if !st.vmas.covers(addr, end) {
            return Err(Errno::ENOMEM);
        }
        // A shared mapping of a file opened read-only never becomes
        // writable.
        // Nor does the vDSO's clock page (Linux's [vvar] is not writable).
        let read_only_file = |v: &Vma| {
            (v.flags.contains(VmaFlags::SHARED) && v.file.as_ref().is_some_and(|f| !f.file.writable))
                || v.name == VmaName::Vvar
        };
        if prot.contains(Prot::WRITE) && st.vmas.overlapping(addr, end).any(read_only_file) {
            return Err(Errno::EACCES);
        }
        // Nor does a file from a noexec mount become executable.
        let no_exec = |v: &Vma| v.file.as_ref().is_some_and(|f| !f.file.exec_ok);
        if prot.contains(Prot::EXEC) && st.vmas.overlapping(addr, end).any(no_exec) {
            return Err(Errno::EACCES);
        }
        if !st.vmas.protect(addr, end, prot) {
            return Err(Errno::ENOMEM);
        }
        self.changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if prot.contains(Prot::WRITE) {
            st.vmas.update(addr, end, |v| {
                if !v.flags.contains(VmaFlags::SHARED) {
                    v.flags |= VmaFlags::ACCOUNT;
                }
            });
        }
        split_pma(&mut st.pmas, addr);
        split_pma(&mut st.pmas, end);
        let mut runs: Vec<(u64, u64, Prot)> = Vec::new();
        let keys: Vec<u64> = st.pmas.range(addr..end).map(|(&k, _)| k).collect();
        for k in keys {
            let Some(v) = st.vmas.find(k).cloned() else { continue };
            let Some(p) = st.pmas.get_mut(&k) else { continue };
            if p.mapped.is_some() {
                let want = eff_prot(&v, p);
                p.mapped = Some(want);
                match runs.last_mut() {
                    Some(r) if r.1 == k && r.2 == want => r.1 = p.end,
                    _ => runs.push((k, p.end, want)),
                }
            }
        }
        for (s, e, prot) in runs {
            if let Err(err) = self.aspace.protect(s, e - s, prot) {
                // Never leave the platform allowing more than the VMAs: drop
                // the mappings (they fault back in with the new rights).
                tracing::error!("platform protect {s:#x}-{e:#x}: {err}");
                for (_, p) in st.pmas.range_mut(s..e) {
                    p.mapped = None;
                }
                self.platform_unmap(s, e);
            }
        }
        Ok(())
    }

    /// `brk`: returns the new break, or the old one if it cannot move.
    pub fn brk(&self, new: u64) -> u64 {
        let mut st = self.lock();
        let (start, old) = (st.brk_start, st.brk);
        if new < start {
            return old;
        }
        let (Some(new_end), Some(old_end)) = (page_up(new), page_up(old)) else { return old };
        if new_end > old_end {
            let len = new_end - old_end;
            if !self.in_user_range(old_end, len) || st.vmas.intersects(old_end, new_end) {
                return old;
            }
            st.vmas.insert(Vma {
                start: old_end,
                end: new_end,
                prot: Prot::READ | Prot::WRITE,
                flags: VmaFlags::ACCOUNT,
                name: VmaName::Heap,
                file: None,
            });
        } else if new_end < old_end {
            let _ = self.unmap_locked(&mut st, new_end, old_end);
        }
        st.brk = new;
        new
    }

    /// `mremap` (private anonymous memory).
    pub fn mremap(
        &self,
        old: u64,
        old_len: u64,
        new_len: u64,
        may_move: bool,
        fixed: Option<u64>,
    ) -> Result<u64, Errno> {
        if !old.is_multiple_of(PAGE) || new_len == 0 {
            return Err(Errno::EINVAL);
        }
        let old_len = page_up(old_len).ok_or(Errno::EINVAL)?;
        let new_len = page_up(new_len).ok_or(Errno::EINVAL)?;
        if old_len == 0 {
            // Duplicating a shared mapping: not for anonymous private memory.
            return Err(Errno::EINVAL);
        }
        let old_end = old.checked_add(old_len).ok_or(Errno::EFAULT)?;
        let mut st = self.lock();
        Self::room_for_vmas(&st)?;
        let vma = st.vmas.find(old).cloned().ok_or(Errno::EFAULT)?;
        // The file offset of the grown mapping's end must exist (Linux's
        // vma_to_resize).
        if vma.file.is_some() && vma.file_offset(old).and_then(|o| o.checked_add(new_len)).is_none() {
            return Err(Errno::EINVAL);
        }
        if fixed.is_none() && new_len <= old_len {
            // Shrinking is an unmap of the tail, whatever VMAs it spans.
            self.unmap_locked(&mut st, old + new_len, old_end)?;
            return Ok(old);
        }
        if vma.end < old_end {
            return Err(Errno::EFAULT);
        }
        if let Some(dest) = fixed {
            if !dest.is_multiple_of(PAGE) || !self.in_user_range(dest, new_len) {
                return Err(Errno::EINVAL);
            }
            let dest_end = dest + new_len;
            if dest < old_end && old < dest_end {
                return Err(Errno::EINVAL);
            }
            self.unmap_locked(&mut st, dest, dest_end)?;
            return self.move_locked(&mut st, &vma, old, old_len, new_len, dest);
        }
        let grow_end = old.checked_add(new_len).ok_or(Errno::ENOMEM)?;
        if vma.end == old_end && self.in_user_range(old, new_len) && !st.vmas.intersects(old_end, grow_end) {
            st.vmas.insert(vma.part(old_end, grow_end));
            return Ok(old);
        }
        if !may_move {
            return Err(Errno::ENOMEM);
        }
        let base = if st.mmap_base == 0 { self.max_addr } else { st.mmap_base };
        let dest = st
            .vmas
            .find_gap_top_down(new_len, self.min_addr, base)
            .or_else(|| st.vmas.find_gap_top_down(new_len, self.min_addr, self.max_addr))
            .ok_or(Errno::ENOMEM)?;
        self.move_locked(&mut st, &vma, old, old_len, new_len, dest)
    }

    fn move_locked(
        &self,
        st: &mut MmState,
        vma: &Vma,
        old: u64,
        old_len: u64,
        new_len: u64,
        dest: u64,
    ) -> Result<u64, Errno> {
        let keep = old_len.min(new_len);
        // Take the PMAs of the part that moves.
        split_pma(&mut st.pmas, old);
        split_pma(&mut st.pmas, old + keep);
        let keys: Vec<u64> = st.pmas.range(old..old + keep).map(|(&k, _)| k).collect();
        let moved: Vec<(u64, Pma)> =
            keys.into_iter().filter_map(|k| st.pmas.remove(&k).map(|p| (k, p))).collect();
        let any_mapped = moved.iter().any(|(_, p)| p.mapped.is_some());
        // The moved memory is unmapped from the old place before anything
        // else; the rest of the old range is dropped as by munmap.
        if any_mapped && !self.platform_unmap(old, old + keep) {
            for (k, p) in moved {
                st.pmas.insert(k, p);
            }
            return Err(Errno::ENOMEM);
        }
        self.unmap_locked(st, old, old + old_len)?;
        let src = vma.part(old, old + keep);
        st.vmas.insert(Vma { start: dest, end: dest + new_len, ..src });
        for (k, p) in moved {
            let nk = k - old + dest;
            st.pmas.insert(nk, Pma { end: p.end - old + dest, mapped: None, ..p });
        }
        Ok(dest)
    }

    /// `madvise(MADV_DONTNEED)`: private anonymous pages read as zeros again.
    pub fn dont_need(&self, addr: u64, len: u64) -> Result<(), Errno> {
        if !addr.is_multiple_of(PAGE) {
            return Err(Errno::EINVAL);
        }
        let len = page_up(len).ok_or(Errno::EINVAL)?;
        let end = addr.checked_add(len).ok_or(Errno::EINVAL)?;
        let mut st = self.lock();
        if !st.vmas.covers(addr, end) {
            return Err(Errno::ENOMEM);
        }
        // Private parts read as zeros again; shared anonymous memory keeps
        // its contents.
        let private: Vec<(u64, u64)> = st
            .vmas
            .overlapping(addr, end)
            .filter(|v| !v.flags.contains(VmaFlags::SHARED))
            .map(|v| (v.start.max(addr), v.end.min(end)))
            .collect();
        for (s, e) in private {
            self.drop_pmas(&mut st, s, e);
        }
        Ok(())
    }

    /// Whether `[addr, addr+len)` is entirely mapped (for `madvise` etc.).
    pub fn is_mapped(&self, addr: u64, len: u64) -> bool {
        addr.checked_add(len).is_some_and(|end| self.lock().vmas.covers(addr, end))
    }

    // ------------------------------------------------------------------
    // Faults.

    /// Handles an application fault at `addr`: maps the memory if the VMA
    /// allows some access, or says which `SIGSEGV` the application gets.
    pub fn handle_fault(&self, addr: u64) -> Result<(), SegvCode> {
        self.handle_host_fault(addr, false)
            .map_err(|c| if c == SegvCode::Stale { SegvCode::AccErr } else { c })
    }

    /// A fault the host reported, `not_mapped` when the host had no
    /// mapping at `addr` (`SEGV_MAPERR`). Another thread may have mapped
    /// the page since: such a fault is not a protection error, the page
    /// is mapped (again) and the access retried.
    pub fn handle_host_fault(&self, addr: u64, not_mapped: bool) -> Result<(), SegvCode> {
        let mut st = self.lock();
        let r = self.fault_locked(&mut st, addr, not_mapped);
        if r.is_ok() {
            self.changes.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        r
    }

    /// Counts the faults handled and protections changed: a thread whose
    /// fault was [`SegvCode::Stale`] retries while this moves.
    pub fn changes(&self) -> u64 {
        self.changes.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn fault_locked(&self, st: &mut MmState, addr: u64, not_mapped: bool) -> Result<(), SegvCode> {
        if !st.prefault.is_empty() {
            let hints = std::mem::take(&mut st.prefault);
            self.prefault(st, &hints);
            // The access may work now; if not (a write to what was mapped
            // read-only), it faults again and is handled below.
            if st.pmas.range(..=addr).next_back().is_some_and(|(_, p)| p.end > addr && p.mapped.is_some()) {
                return Ok(());
            }
        }
        let vma = st.vmas.find(addr).cloned().ok_or(SegvCode::MapErr)?;
        if vma.prot.is_empty() {
            return Err(SegvCode::AccErr);
        }
        if not_mapped {
            // The host had nothing there: whatever the records say, the
            // page is mapped again below (usually another thread mapped it
            // meanwhile; the fault is stale, not a protection error).
            let page = page_down(addr);
            split_pma(&mut st.pmas, page);
            split_pma(&mut st.pmas, page + PAGE);
            if let Some(p) = st.pmas.get_mut(&page) {
                p.mapped = None;
            }
        }
        let private_file = vma.file.is_some() && !vma.flags.contains(VmaFlags::SHARED);
        if let Some((_, p)) = st.pmas.range(..=addr).next_back().filter(|(_, p)| p.end > addr) {
            if p.mapped == Some(eff_prot(&vma, p)) {
                if p.cow && vma.prot.contains(Prot::WRITE) {
                    // A write to a page shared since a fork.
                    let page = page_down(addr);
                    if self.unshare_exclusive_run(st, &vma, page) {
                        return Ok(());
                    }
                    return self.break_cow(st, &vma, page, page + PAGE).map_err(|_| SegvCode::MapErr);
                }
                if p.file && private_file && vma.prot.contains(Prot::WRITE) {
                    // Mapped from the file without write access in a
                    // writable private mapping: the access was a write.
                    return self.cow_page(st, &vma, page_down(addr));
                }
                // Mapped with everything the VMA allows: the access itself
                // is what is forbidden (a write to read-only memory…).
                return Err(SegvCode::Stale);
            }
        }
        let win = page_down(addr) & !(HUGE_PAGE - 1);
        let (mut ws, mut we) = (win.max(vma.start), (win + HUGE_PAGE).min(vma.end));
        if vma.file.is_some() {
            Self::ensure_file_pmas(st, &vma, ws, we);
        } else if self.ensure_pmas(st, ws, we).is_err() {
            // The memory file is fragmented or full: try the page alone.
            (ws, we) = (page_down(addr), page_down(addr) + PAGE);
            self.ensure_pmas(st, ws, we).map_err(|_| SegvCode::MapErr)?;
        }
        split_pma(&mut st.pmas, ws);
        split_pma(&mut st.pmas, we);
        let mut runs = Vec::new();
        self.unmapped_runs(st, &vma, ws, we, &mut runs);
        self.map_runs(st, &[(vma, runs)]).map_err(|()| SegvCode::MapErr)
    }

    /// The parts of `[ws, we)` (inside `vma`, with memory) not mapped as
    /// they should be, in runs contiguous in their file. Copy-on-write
    /// memory this address space alone owns now (the other side exited or
    /// executed) becomes simply writable first.
    fn unmapped_runs(&self, st: &mut MmState, vma: &Vma, ws: u64, we: u64, runs: &mut Vec<Run>) {
        split_pma(&mut st.pmas, ws);
        split_pma(&mut st.pmas, we);
        for (&k, p) in st.pmas.range_mut(ws..we) {
            if p.cow && self.mf.exclusive(p.off, p.end - k) {
                p.cow = false;
            }
        }
        for (&k, p) in st.pmas.range(ws..we) {
            let want = eff_prot(vma, p);
            if p.mapped != Some(want) {
                match runs.last_mut() {
                    Some(r)
                        if r.end == k
                            && r.file == p.file
                            && r.prot == want
                            && r.off + (r.end - r.start) == p.off =>
                    {
                        r.end = p.end;
                    }
                    _ => runs.push(Run { start: k, end: p.end, off: p.off, file: p.file, prot: want }),
                }
            }
        }
    }

    /// Maps `runs` (each list inside its VMA) in one platform batch and
    /// records them. On a failure, what the platform maps in the failed
    /// run is unknown: it is unmapped and recorded as unmapped.
    fn map_runs(&self, st: &mut MmState, runs: &[(Vma, Vec<Run>)]) -> Result<(), ()> {
        let mut ops = Vec::new();
        let mut flat = Vec::new();
        for (vma, rs) in runs {
            for r in rs {
                let fd = match (&vma.file, r.file) {
                    (Some(f), true) => f.file.fd.as_fd(),
                    _ => self.mf.fd(),
                };
                let file = FileRange { fd, offset: r.off };
                ops.push(MapOp::Map { addr: r.start, len: r.end - r.start, prot: r.prot, file });
                flat.push(*r);
            }
        }
        let done = match self.aspace.apply(&ops) {
            Ok(()) => flat.len(),
            Err((done, err)) => {
                tracing::error!("platform map: {err}");
                done
            }
        };
        // Recorded only once the platform really maps it.
        for r in &flat[..done] {
            for (_, p) in st.pmas.range_mut(r.start..r.end) {
                p.mapped = Some(r.prot);
            }
        }
        if let Some(r) = flat.get(done) {
            for (_, p) in st.pmas.range_mut(r.start..r.end) {
                p.mapped = None;
            }
            self.platform_unmap(r.start, r.end);
            return Err(());
        }
        Ok(())
    }

    /// Maps, in one batch, the memory the `hints` ranges already have
    /// (and, in file VMAs, the file pages of their first 2 MiB). Nothing
    /// is allocated; failures are left to the faults that follow.
    fn prefault(&self, st: &mut MmState, hints: &[(u64, u64)]) {
        let mut todo: Vec<(Vma, Vec<Run>)> = Vec::new();
        let mut n = 0;
        for &(hs, he) in hints {
            let vmas: Vec<Vma> = st.vmas.iter().filter(|v| v.start < he && v.end > hs).cloned().collect();
            for vma in vmas {
                if vma.prot.is_empty() || n >= PREFAULT_RUNS {
                    continue;
                }
                let (s, mut e) = (hs.max(vma.start), he.min(vma.end));
                if vma.file.is_some() {
                    e = e.min(s.saturating_add(HUGE_PAGE));
                    Self::ensure_file_pmas(st, &vma, s, e);
                }
                let mut runs = Vec::new();
                self.unmapped_runs(st, &vma, s, e, &mut runs);
                runs.truncate(PREFAULT_RUNS - n);
                n += runs.len();
                if !runs.is_empty() {
                    todo.push((vma, runs));
                }
            }
        }
        let _ = self.map_runs(st, &todo);
    }

    /// A new program's address space: its first fault maps every
    /// segment's (and the stack's) memory at once.
    pub fn prefault_all_on_first_fault(&self) {
        let mut st = self.lock();
        let all: Vec<(u64, u64)> = st.vmas.iter().map(|v| (v.start, v.end)).collect();
        st.prefault = all;
    }

    /// A write fault on copy-on-write page `page` that this address space
    /// alone owns again (the other side exited or executed): the page and
    /// its mapped, exclusively owned copy-on-write neighbours in the same
    /// VMA (within the fault window) become writable with one `protect`,
    /// instead of one fault each. Returns false, changing nothing, when
    /// `page` itself is still shared.
    fn unshare_exclusive_run(&self, st: &mut MmState, vma: &Vma, page: u64) -> bool {
        let win = page & !(HUGE_PAGE - 1);
        let (ws, we) = (win.max(vma.start), (win + HUGE_PAGE).min(vma.end));
        let ro = vma.prot - Prot::WRITE;
        let fits =
            |k: u64, p: &Pma| p.cow && !p.file && p.mapped == Some(ro) && self.mf.exclusive(p.off, p.end - k);
        let Some((&first, p)) = st.pmas.range(..=page).next_back() else { return false };
        if p.end <= page || !fits(first, p) {
            return false;
        }
        let mut start = first;
        for (&k, p) in st.pmas.range(ws.min(first)..first).rev() {
            if p.end != start || !fits(k, p) {
                break;
            }
            start = k;
        }
        let mut end = p.end;
        for (&k, p) in st.pmas.range(end..we.max(end)) {
            if k != end || !fits(k, p) {
                break;
            }
            end = p.end;
        }
        let (start, end) = (start.max(ws), end.min(we));
        split_pma(&mut st.pmas, start);
        split_pma(&mut st.pmas, end);
        if let Err(err) = self.aspace.protect(start, end - start, vma.prot) {
            tracing::error!("platform protect {start:#x}-{end:#x}: {err}");
            return false;
        }
        for (_, p) in st.pmas.range_mut(start..end) {
            p.cow = false;
            p.mapped = Some(vma.prot);
        }
        true
    }

    /// Gives `[start, end)` (inside one copy-on-write PMA of `vma`) memory
    /// of its own: the pages are made writable if this address space is
    /// their last owner, copied otherwise.
    fn break_cow(&self, st: &mut MmState, vma: &Vma, start: u64, end: u64) -> Result<(), Errno> {
        split_pma(&mut st.pmas, start);
        split_pma(&mut st.pmas, end);
        let Some(p) = st.pmas.get(&start).copied() else { return Err(Errno::EFAULT) };
        if !p.cow || p.file {
            return Ok(());
        }
        let len = p.end - start;
        let mut off = p.off;
        if !self.mf.exclusive(p.off, len) {
            let n = usize::try_from(len).map_err(|_| Errno::ENOMEM)?;
            off = self.mf.allocate(len)?;
            self.mf.copy(p.off, off, n);
        }
        if p.mapped.is_some() {
            let r = if off == p.off {
                self.aspace.protect(start, len, vma.prot)
            } else {
                self.aspace.map(start, len, vma.prot, FileRange { fd: self.mf.fd(), offset: off })
            };
            if let Err(err) = r {
                tracing::error!("platform copy-on-write {start:#x}: {err}");
                // What the platform maps there is unknown: nothing.
                if !self.platform_unmap(start, start + len) {
                    if off != p.off {
                        self.mf.release(off, len);
                    }
                    return Err(Errno::EFAULT);
                }
                if let Some(q) = st.pmas.get_mut(&start) {
                    q.mapped = None;
                }
            }
        }
        if off != p.off {
            self.mf.release(p.off, len);
        }
        if let Some(q) = st.pmas.get_mut(&start) {
            q.off = off;
            q.cow = false;
            if q.mapped.is_some() {
                q.mapped = Some(vma.prot);
            }
        }
        Ok(())
    }

    /// Records the file as the memory of every part of `[start, end)` (in
    /// file VMA `vma`) that has none.
    fn ensure_file_pmas(st: &mut MmState, vma: &Vma, start: u64, end: u64) {
        let Some(base) = vma.file_offset(start) else { return };
        for (s, e) in pma_gaps(&st.pmas, start, end) {
            st.pmas.insert(s, Pma { end: e, off: base + (s - start), file: true, cow: false, mapped: None });
        }
    }

    /// Copies the file page at `page` of private file VMA `vma` into the
    /// memory file and maps the copy writable (copy-on-write).
    fn cow_page(&self, st: &mut MmState, vma: &Vma, page: u64) -> Result<(), SegvCode> {
        let fm = vma.file.as_ref().ok_or(SegvCode::MapErr)?;
        Self::ensure_file_pmas(st, vma, page, page + PAGE);
        split_pma(&mut st.pmas, page);
        split_pma(&mut st.pmas, page + PAGE);
        let p = st.pmas.get(&page).copied().ok_or(SegvCode::MapErr)?;
        if !p.file {
            return Ok(());
        }
        let mut buf = [0u8; PAGE_BYTES];
        let mut got = 0;
        while got < buf.len() {
            match rustix::io::pread(&*fm.file.fd, &mut buf[got..], p.off + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => return Err(SegvCode::Bus),
            }
        }
        if got == 0 {
            // Wholly past the end of the file.
            return Err(SegvCode::Bus);
        }
        let m = self.mf.allocate(PAGE).map_err(|_| SegvCode::MapErr)?;
        self.mf.write(m, &buf);
        if let Err(err) = self.aspace.map(page, PAGE, vma.prot, FileRange { fd: self.mf.fd(), offset: m }) {
            tracing::error!("platform map {page:#x}: {err}");
            // The file page may still be mapped: the copy is not used.
            self.mf.release(m, PAGE);
            return Err(SegvCode::MapErr);
        }
        st.pmas
            .insert(page, Pma { end: page + PAGE, off: m, file: false, cow: false, mapped: Some(vma.prot) });
        st.vmas.mark(page, VmaFlags::COPIED);
        Ok(())
    }

    /// Allocates memory for every part of `[start, end)` that has none.
    fn ensure_pmas(&self, st: &mut MmState, start: u64, end: u64) -> Result<(), Errno> {
        for (s, e) in pma_gaps(&st.pmas, start, end) {
            let off = self.mf.allocate(e - s)?;
            st.pmas.insert(s, Pma { end: e, off, file: false, cow: false, mapped: None });
        }
        Ok(())
    }

    // ------------------------------------------------------------------
    // Copy-in/out: the one gateway to application memory.

    /// Visits `[addr, addr+len)` in pieces, checking the application's
    /// access rights (`write`: the VMA must be writable; otherwise
    /// readable). With `force`, rights are not checked (the loader writing
    /// read-only segments). `f(piece, len, position)` returns whether to
    /// go on. Writes to a private file mapping copy its pages first.
    fn visit(
        &self,
        addr: u64,
        len: usize,
        write: bool,
        force: bool,
        mut f: impl FnMut(Piece, usize, usize) -> Result<bool, Errno>,
    ) -> Result<(), Errno> {
        let len64 = u64::try_from(len).map_err(|_| Errno::EFAULT)?;
        let end = addr.checked_add(len64).ok_or(Errno::EFAULT)?;
        if len == 0 {
            return Ok(());
        }
        if addr < self.min_addr || end > self.max_addr {
            return Err(Errno::EFAULT);
        }
        let mut st = self.lock();
        let mut at = addr;
        while at < end {
            let vma = st.vmas.find(at).cloned().ok_or(Errno::EFAULT)?;
            let allowed = if write { vma.prot.contains(Prot::WRITE) } else { !vma.prot.is_empty() };
            if !allowed && !force {
                return Err(Errno::EFAULT);
            }
            let private = !vma.flags.contains(VmaFlags::SHARED);
            let chunk_end = end.min(vma.end);
            while at < chunk_end {
                let pos = usize::try_from(at - addr).map_err(|_| Errno::EFAULT)?;
                let pma = st.pmas.range(..=at).next_back().filter(|(_, p)| p.end > at).map(|(&k, p)| (k, *p));
                match (pma, &vma.file) {
                    (Some((_, p)), _) if !p.file && p.cow && write => {
                        // Shared since a fork: this address space gets its
                        // own copy of the pages written.
                        let stop = p.end.min(page_up(chunk_end).unwrap_or(p.end));
                        self.break_cow(&mut st, &vma, page_down(at), stop)?;
                    }
                    (Some((k, p)), _) if !p.file => {
                        let n = p.end.min(chunk_end) - at;
                        if !f(
                            Piece::Mem(p.off + (at - k)),
                            usize::try_from(n).map_err(|_| Errno::EFAULT)?,
                            pos,
                        )? {
                            return Ok(());
                        }
                        at += n;
                    }
                    (_, Some(_)) if write && private => {
                        // Copy the page, then write the copy.
                        self.cow_page(&mut st, &vma, page_down(at)).map_err(|_| Errno::EFAULT)?;
                    }
                    (Some((k, p)), Some(fm)) => {
                        let n = p.end.min(chunk_end) - at;
                        let piece = Piece::File(fm.file.fd.clone(), p.off + (at - k));
                        if !f(piece, usize::try_from(n).map_err(|_| Errno::EFAULT)?, pos)? {
                            return Ok(());
                        }
                        at += n;
                    }
                    (None, Some(fm)) => {
                        let next = st.pmas.range(at..).next().map_or(chunk_end, |(&k, _)| k.min(chunk_end));
                        let n = next - at;
                        let off = vma.file_offset(at).ok_or(Errno::EFAULT)?;
                        let go = f(
                            Piece::File(fm.file.fd.clone(), off),
                            usize::try_from(n).map_err(|_| Errno::EFAULT)?,
                            pos,
                        )?;
                        if !go {
                            return Ok(());
                        }
                        at += n;
                    }
                    (None, None) if !write => {
                        let next = st.pmas.range(at..).next().map_or(chunk_end, |(&k, _)| k.min(chunk_end));
                        let n = next - at;
                        if !f(Piece::Zero, usize::try_from(n).map_err(|_| Errno::EFAULT)?, pos)? {
                            return Ok(());
                        }
                        at += n;
                    }
                    (_, None) => {
                        let win = page_down(at) & !(HUGE_PAGE - 1);
                        self.ensure_pmas(&mut st, win.max(vma.start), (win + HUGE_PAGE).min(vma.end))?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Copies application memory at `addr` into `buf` (`EFAULT` if any of
    /// it is unmapped or unreadable).
    pub fn copy_in(&self, addr: u64, buf: &mut [u8]) -> Result<(), Errno> {
        let mf = &self.mf;
        self.visit(addr, buf.len(), false, false, |piece, n, pos| {
            let b = &mut buf[pos..pos + n];
            match piece {
                Piece::Mem(o) => mf.read(o, b),
                Piece::Zero => b.fill(0),
                Piece::File(fd, o) => read_mapped(&fd, o, b)?,
            }
            Ok(true)
        })
    }

    /// Runs `f` on the application's 32-bit word at `addr` (4-byte aligned,
    /// writable) as an atomic, in the memory file (a page shared since a
    /// fork is copied first). Words in shared file mappings are not offered
    /// (`EFAULT`... Linux can; no program has needed it).
    pub fn atomic_u32<R>(
        &self,
        addr: u64,
        f: impl FnOnce(&std::sync::atomic::AtomicU32) -> R,
    ) -> Result<R, Errno> {
        if !addr.is_multiple_of(4) {
            return Err(Errno::EINVAL);
        }
        // Done while the address space is locked: the page cannot be
        // unmapped (and its memory handed to someone else) meanwhile.
        let mut f = Some(f);
        let mut out = None;
        self.visit(addr, 4, true, false, |piece, n, _| {
            match (piece, f.take()) {
                (Piece::Mem(o), Some(f)) if n == 4 => out = Some(self.mf.atomic_u32(o, f)),
                _ => return Err(Errno::EFAULT),
            }
            Ok(false)
        })?;
        out.ok_or(Errno::EFAULT)
    }

    /// Copies `data` to application memory at `addr` (`EFAULT` if any of it
    /// is unmapped or not writable).
    pub fn copy_out(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.write_at(addr, data, false)
    }

    /// Writes `data` at `addr` whatever the protections (the loader filling
    /// read-only segments). The range must be mapped.
    pub fn poke(&self, addr: u64, data: &[u8]) -> Result<(), Errno> {
        self.write_at(addr, data, true)
    }

    fn write_at(&self, addr: u64, data: &[u8], force: bool) -> Result<(), Errno> {
        let mf = &self.mf;
        self.visit(addr, data.len(), true, force, |piece, n, pos| {
            let d = &data[pos..pos + n];
            match piece {
                Piece::Mem(o) => mf.write(o, d),
                Piece::Zero => {}
                Piece::File(fd, o) => write_mapped(&fd, o, d)?,
            }
            Ok(true)
        })
    }

    /// Reads up to `len` bytes of host file `fd` at `file_off` into
    /// application memory at `addr` (checked writable), straight into the
    /// memory file where the memory lives there (one copy). Stops at the
    /// end of the file; `Ok(bytes read)`.
    pub fn read_file_into(&self, addr: u64, len: usize, fd: &OwnedFd, file_off: u64) -> Result<usize, Errno> {
        let mf = &self.mf;
        let mut done = 0usize;
        let r = self.visit(addr, len, true, false, |piece, n, pos| {
            let at = file_off.checked_add(pos as u64).ok_or(Errno::EOVERFLOW)?;
            let got = match piece {
                Piece::Mem(o) => mf.read_from(o, n, fd.as_fd(), at)?,
                Piece::Zero => 0,
                Piece::File(mapped, o) => {
                    // The buffer is a shared file mapping: through a copy,
                    // a bounded chunk at a time.
                    let mut b = vec![0u8; n.min(1 << 20)];
                    let mut got = 0;
                    while got < n {
                        let k = (n - got).min(b.len());
                        let r = rustix::io::pread(fd, &mut b[..k], at + got as u64)
                            .map_err(|e| Errno::new(e.raw_os_error()).unwrap_or(Errno::EIO))?;
                        write_mapped(&mapped, o + got as u64, &b[..r])?;
                        got += r;
                        if r < k {
                            break;
                        }
                    }
                    got
                }
            };
            done += got;
            // At the end of the file: nothing more to read (and no more
            // pages of the buffer to copy).
            Ok(got == n)
        });
        match r {
            Ok(()) => Ok(done),
            Err(_) if done > 0 => Ok(done),
            Err(e) => Err(e),
        }
    }

    /// For a shared futex: (device, inode, offset) of the file a shared
    /// file mapping maps at `addr`.
    pub fn shared_file_offset(&self, addr: u64) -> Option<(u64, u64, u64)> {
        let st = self.lock();
        let v = st.vmas.find(addr)?;
        if !v.flags.contains(VmaFlags::SHARED) {
            return None;
        }
        let f = v.file.as_ref()?;
        Some((f.file.dev, f.file.ino, v.file_offset(addr)?))
    }

    /// `msync`: `[addr, addr+len)` must be mapped; with `sync`, the files
    /// of shared mappings in it are written back.
    pub fn msync(&self, addr: u64, len: u64, sync: bool) -> Result<(), Errno> {
        let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
        let files: Vec<Arc<OwnedFd>> = {
            let st = self.lock();
            if !st.vmas.covers(addr, end) {
                return Err(Errno::ENOMEM);
            }
            st.vmas
                .overlapping(addr, end)
                .filter(|v| v.flags.contains(VmaFlags::SHARED))
                .filter_map(|v| v.file.as_ref().map(|f| f.file.fd.clone()))
                .collect()
        };
        if sync {
            for fd in files {
                rustix::fs::fdatasync(&*fd).map_err(|_| Errno::EIO)?;
            }
        }
        Ok(())
    }

    /// `mincore`: one byte per page of `[addr, addr+len)`, 1 if resident.
    /// Touched anonymous memory and copied file pages are resident; file
    /// pages inside the file are reported resident (the host page cache is
    /// not asked).
    pub fn mincore(&self, addr: u64, len: u64) -> Result<Vec<u8>, Errno> {
        // The caller works in chunks: at most this many pages a call.
        if len / PAGE > MINCORE_CHUNK {
            return Err(Errno::EINVAL);
        }
        let end = addr.checked_add(len).ok_or(Errno::ENOMEM)?;
        let st = self.lock();
        if !st.vmas.covers(addr, end) {
            return Err(Errno::ENOMEM);
        }
        let pages = usize::try_from(len / PAGE).map_err(|_| Errno::ENOMEM)?;
        let mut out = Vec::with_capacity(pages);
        let mut sizes: Vec<(usize, u64)> = Vec::new();
        let mut at = addr;
        while at < end {
            let v = st.vmas.find(at).ok_or(Errno::ENOMEM)?;
            let pma = st.pmas.range(..=at).next_back().filter(|(_, p)| p.end > at).map(|(&k, p)| (k, *p));
            let resident = match (&v.file, pma) {
                (_, Some((k, p))) if !p.file => self.mf.resident(p.off + (at - k)),
                (Some(f), _) => {
                    let key = Arc::as_ptr(&f.file) as usize;
                    let size = match sizes.iter().find(|(k, _)| *k == key) {
                        Some(&(_, sz)) => sz,
                        None => {
                            let sz = rustix::fs::fstat(&*f.file.fd).map_or(0, |s| s.st_size.cast_unsigned());
                            sizes.push((key, sz));
                            sz
                        }
                    };
                    v.file_offset(at).is_some_and(|o| o < size)
                }
                (None, _) => false,
            };
            out.push(u8::from(resident));
            at += PAGE;
        }
        Ok(out)
    }

    /// Reads a `T` from application memory.
    pub fn read_obj<T: FromBytes + IntoBytes>(&self, addr: u64) -> Result<T, Errno> {
        let mut v = T::new_zeroed();
        self.copy_in(addr, v.as_mut_bytes())?;
        Ok(v)
    }

    /// Writes a `T` to application memory.
    pub fn write_obj<T: IntoBytes + Immutable>(&self, addr: u64, v: &T) -> Result<(), Errno> {
        self.copy_out(addr, v.as_bytes())
    }

    /// Reads `len` bytes (the caller bounds `len`).
    pub fn read_bytes(&self, addr: u64, len: usize) -> Result<Vec<u8>, Errno> {
        let mut v = vec![0u8; len];
        self.copy_in(addr, &mut v)?;
        Ok(v)
    }

    /// Reads a NUL-terminated string of at most `max` bytes (without the
    /// NUL). `Err(ENAMETOOLONG)` if no NUL comes within `max` bytes.
    pub fn read_cstring(&self, addr: u64, max: usize) -> Result<Vec<u8>, Errno> {
        let mut out = Vec::new();
        let mut at = addr;
        while out.len() < max {
            // Read up to the end of the page, so a string that ends just
            // before an unmapped page is read without faulting.
            let page_left = usize::try_from(PAGE - (at % PAGE)).unwrap_or(1);
            let n = page_left.min(max - out.len());
            let mut buf = vec![0u8; n];
            self.copy_in(at, &mut buf)?;
            if let Some(z) = buf.iter().position(|&b| b == 0) {
                out.extend_from_slice(&buf[..z]);
                return Ok(out);
            }
            out.extend_from_slice(&buf);
            at = at.checked_add(n as u64).ok_or(Errno::EFAULT)?;
        }
        Err(Errno::ENAMETOOLONG)
    }

    /// The VMAs with what each holds in memory (`/proc/PID/smaps`):
    /// touched pages of the memory file (anonymous or copied-on-write
    /// memory; "shared" while a `fork` shares them copy-on-write or the
    /// mapping is shared) and pages of a file mapped from the host.
    pub fn usage(&self) -> Vec<(Vma, VmaUsage)> {
        let st = self.lock();
        st.vmas
            .iter()
            .map(|v| {
                let mut u = VmaUsage::default();
                let shared_map = v.flags.contains(VmaFlags::SHARED);
                for (&k, p) in st.pmas.range(..v.end).rev().take_while(|(_, p)| p.end > v.start) {
                    let (s, e) = (k.max(v.start), p.end.min(v.end));
                    if p.file {
                        let b = e - s;
                        u.rss += b;
                        if shared_map {
                            u.shared_clean += b;
                        } else {
                            u.private_clean += b;
                        }
                    } else {
                        let b = self.mf.resident_pages(p.off + (s - k), e - s) * PAGE;
                        u.rss += b;
                        if shared_map {
                            u.shmem += b;
                            u.shared_dirty += b;
                        } else {
                            u.anon += b;
                            if p.cow {
                                u.shared_dirty += b;
                            } else {
                                u.private_dirty += b;
                            }
                        }
                    }
                }
                (v.clone(), u)
            })
            .collect()
    }

    /// The VMAs, for diagnostics and `/proc/PID/maps`.
    pub fn vmas(&self) -> Vec<Vma> {
        self.lock().vmas.iter().cloned().collect()
    }

    /// Where the program break started.
    pub fn brk_start(&self) -> u64 {
        self.lock().brk_start
    }

    /// The current program break.
    pub fn current_brk(&self) -> u64 {
        self.lock().brk
    }
}

impl Drop for MemoryManager {
    fn drop(&mut self) {
        // The platform address space ends first (nothing in it may reach
        // memory another address space gets next), then the memory goes,
        // without unmapping it page run by page run.
        self.aspace.destroy();
        let st = std::mem::take(self.state.get_mut().unwrap_or_else(|p| p.into_inner()));
        let ranges: Vec<(u64, u64)> =
            st.pmas.iter().filter(|(_, p)| !p.file).map(|(&k, p)| (p.off, p.end - k)).collect();
        self.mf.release_all(&ranges);
    }
}

/// The parts of `[start, end)` no PMA covers.
fn pma_gaps(pmas: &BTreeMap<u64, Pma>, start: u64, end: u64) -> Vec<(u64, u64)> {
    let mut gaps = Vec::new();
    let mut at = start;
    let first = pmas.range(..=start).next_back().filter(|(_, p)| p.end > start).map(|(&k, _)| k);
    for (&k, p) in pmas.range(first.unwrap_or(start)..end) {
        if k > at {
            gaps.push((at, k));
        }
        at = at.max(p.end);
    }
    if at < end {
        gaps.push((at, end));
    }
    gaps
}

/// Splits the PMA containing `addr` (if it strictly contains it).
fn split_pma(pmas: &mut BTreeMap<u64, Pma>, addr: u64) {
    let Some((&k, p)) = pmas.range(..addr).next_back() else { return };
    if p.end <= addr {
        return;
    }
    let tail = Pma { end: p.end, off: p.off + (addr - k), ..*p };
    if let Some(head) = pmas.get_mut(&k) {
        head.end = addr;
    }
    pmas.insert(addr, tail);
}

#[cfg(test)]
mod tests;
