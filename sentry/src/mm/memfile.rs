//! The memory file: one memfd per sandbox holding all anonymous and
//! copied application memory. The sentry maps the whole (sparse) file once
//! for copy-in/out; the platform maps ranges of it into application address
//! spaces. Freed ranges are punched out so the host gets the pages back.
#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Mutex;

use rvisor_syscalls::Errno;

use super::{PAGE, PAGE_BYTES};

/// First-fit allocator of page-aligned file ranges.
#[derive(Debug)]
pub(crate) struct Allocator {
    /// Free ranges: offset → length, coalesced.
    free: BTreeMap<u64, u64>,
}

impl Allocator {
    pub fn new(size: u64) -> Allocator {
        let mut free = BTreeMap::new();
        if size > 0 {
            free.insert(0, size);
        }
        Allocator { free }
    }

    /// A free range of `len` bytes (page multiple), aligned to `align`.
    pub fn allocate(&mut self, len: u64, align: u64) -> Option<u64> {
        debug_assert!(len > 0 && len.is_multiple_of(PAGE) && align.is_power_of_two());
        let (start, flen, at) = self.free.iter().find_map(|(&s, &l)| {
            let at = s.checked_add(align - 1)? & !(align - 1);
            (at.checked_add(len)? <= s + l).then_some((s, l, at))
        })?;
        self.free.remove(&start);
        if at > start {
            self.free.insert(start, at - start);
        }
        let end = at + len;
        if end < start + flen {
            self.free.insert(end, start + flen - end);
        }
        Some(at)
    }

    /// Returns `[off, off+len)` to the free set.
    pub fn free(&mut self, off: u64, len: u64) {
        let mut start = off;
        let mut end = off + len;
        if let Some((&ps, &pl)) = self.free.range(..off).next_back() {
            debug_assert!(ps + pl <= off, "double free");
            if ps + pl == off {
                self.free.remove(&ps);
                start = ps;
            }
        }
        if let Some(&nl) = self.free.get(&end) {
            self.free.remove(&end);
            end += nl;
        }
        self.free.insert(start, end - start);
    }

    /// Total free bytes.
    #[cfg(test)]
    pub fn free_bytes(&self) -> u64 {
        self.free.values().sum()
    }
}

/// Reference counts of memory-file ranges shared by several owners
/// (address spaces after `fork`, shared anonymous mappings): offset →
/// (end, owners − 1). A range not in the map has one owner.
#[derive(Debug, Default)]
pub(crate) struct RefCounts {
    shared: BTreeMap<u64, (u64, u32)>,
}

impl RefCounts {
    /// Splits the interval containing `at` (if it strictly contains it).
    fn split(&mut self, at: u64) {
        let Some((&s, &(e, c))) = self.shared.range(..at).next_back() else { return };
        if e > at {
            self.shared.insert(s, (at, c));
            self.shared.insert(at, (e, c));
        }
    }

    /// Merges the intervals around `at` when they touch and agree.
    fn merge_at(&mut self, at: u64) {
        let Some(&(e, c)) = self.shared.get(&at) else { return };
        if let Some((&ps, &(pe, pc))) = self.shared.range(..at).next_back() {
            if pe == at && pc == c {
                self.shared.remove(&at);
                self.shared.insert(ps, (e, c));
            }
        }
    }

    /// `[off, end)` in pieces: (start, end, extra owners) with 0 for the
    /// parts that have one owner. Splits at the edges first.
    fn pieces(&mut self, off: u64, end: u64) -> Vec<(u64, u64, u32)> {
        self.split(off);
        self.split(end);
        let mut out = Vec::new();
        let mut at = off;
        for (&s, &(e, c)) in self.shared.range(off..end) {
            if s > at {
                out.push((at, s, 0));
            }
            out.push((s, e, c));
            at = e;
        }
        if at < end {
            out.push((at, end, 0));
        }
        out
    }

    /// One more owner of `[off, off+len)`.
    pub fn incref(&mut self, off: u64, len: u64) {
        let end = off + len;
        for (s, e, c) in self.pieces(off, end) {
            self.shared.insert(s, (e, c.saturating_add(1)));
        }
        self.merge_at(off);
        self.merge_at(end);
    }

    /// One owner less of `[off, off+len)`; returns the parts nobody owns
    /// any more (to free).
    pub fn decref(&mut self, off: u64, len: u64) -> Vec<(u64, u64)> {
        let end = off + len;
        let mut free = Vec::new();
        for (s, e, c) in self.pieces(off, end) {
            match c {
                0 => match free.last_mut() {
                    Some((fs, fl)) if *fs + *fl == s => *fl += e - s,
                    _ => free.push((s, e - s)),
                },
                1 => {
                    self.shared.remove(&s);
                }
                _ => {
                    self.shared.insert(s, (e, c - 1));
                }
            }
        }
        self.merge_at(off);
        self.merge_at(end);
        free
    }

    /// Whether `[off, off+len)` has a single owner.
    pub fn exclusive(&self, off: u64, len: u64) -> bool {
        let end = off + len;
        let first = self.shared.range(..=off).next_back().filter(|(_, &(e, _))| e > off);
        first.is_none() && self.shared.range(off..end).next().is_none()
    }

    /// Number of intervals (for tests).
    #[cfg(test)]
    pub fn intervals(&self) -> usize {
        self.shared.len()
    }
}

#[derive(Debug)]
struct Inner {
    alloc: Allocator,
    refs: RefCounts,
}

/// The sandbox's memory file.
pub struct MemoryFile {
    fd: OwnedFd,
    base: NonNull<u8>,
    size: u64,
    inner: Mutex<Inner>,
}

impl std::fmt::Debug for MemoryFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryFile").field("size", &self.size).finish()
    }
}

// SAFETY: `base` points to a MAP_SHARED mapping owned by this object for its
// whole life; all access goes through bounds-checked copies.
unsafe impl Send for MemoryFile {}
// SAFETY: as above; the allocator is behind a mutex and byte copies from
// several threads are what shared memory is for.
unsafe impl Sync for MemoryFile {}

impl MemoryFile {
    /// A memory file of `size` bytes (sparse: nothing is committed).
    pub fn new(size: u64) -> std::io::Result<MemoryFile> {
        let size = size & !(PAGE - 1);
        let fd = rustix::fs::memfd_create("rvisor-memory", rustix::fs::MemfdFlags::CLOEXEC)?;
        rustix::fs::ftruncate(&fd, size)?;
        let len = usize::try_from(size).map_err(|_| std::io::Error::from_raw_os_error(libc::EINVAL))?;
        // SAFETY: a fresh shared mapping of our own memfd, at an address the
        // kernel picks; nothing else refers to it.
        let p = unsafe {
            rustix::mm::mmap(
                std::ptr::null_mut(),
                len,
                rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
                rustix::mm::MapFlags::SHARED | rustix::mm::MapFlags::NORESERVE,
                &fd,
                0,
            )?
        };
        let base =
            NonNull::new(p.cast::<u8>()).ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
        Ok(MemoryFile {
            fd,
            base,
            size,
            inner: Mutex::new(Inner { alloc: Allocator::new(size), refs: RefCounts::default() }),
        })
    }

    /// The memfd (for mapping ranges into address spaces).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Allocates `len` bytes (a page multiple), with one owner. The range
    /// reads as zeros.
    pub fn allocate(&self, len: u64) -> Result<u64, Errno> {
        let align = if len >= super::HUGE_PAGE { super::HUGE_PAGE } else { PAGE };
        self.lock().alloc.allocate(len, align).ok_or(Errno::ENOMEM)
    }

    /// Adds an owner to `[off, off+len)` (an address space that shares it
    /// after `fork`).
    pub fn incref(&self, off: u64, len: u64) {
        self.lock().refs.incref(off, len);
    }

    /// Whether `[off, off+len)` has a single owner (a copy-on-write page
    /// can then simply be made writable).
    pub fn exclusive(&self, off: u64, len: u64) -> bool {
        self.lock().refs.exclusive(off, len)
    }

    /// Drops an owner of `[off, off+len)`; the parts nobody owns any more
    /// are freed.
    pub fn release(&self, off: u64, len: u64) {
        let free = self.lock().refs.decref(off, len);
        for (o, l) in free {
            self.free(o, l);
        }
    }

    /// [`release`](Self::release) of many ranges at once (an address space
    /// ending): what is freed is merged first, so that adjacent ranges go
    /// back to the host in one call.
    pub fn release_all(&self, ranges: &[(u64, u64)]) {
        let mut free = Vec::new();
        {
            let mut inner = self.lock();
            for &(off, len) in ranges {
                free.extend(inner.refs.decref(off, len));
            }
        }
        free.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(free.len());
        for (o, l) in free {
            match merged.last_mut() {
                Some((mo, ml)) if *mo + *ml == o => *ml += l,
                _ => merged.push((o, l)),
            }
        }
        for (o, l) in merged {
            self.free(o, l);
        }
    }

    /// Copies `len` bytes of the file from `from` to `to`.
    pub fn copy(&self, from: u64, to: u64, len: usize) {
        let f = self.check(from, len);
        let t = self.check(to, len);
        // SAFETY: both ranges lie in the mapping (checked) and are distinct
        // allocations (the caller copies into a fresh one), so they do not
        // overlap; raw copies only, as in `read`.
        unsafe { std::ptr::copy_nonoverlapping(self.base.as_ptr().add(f), self.base.as_ptr().add(t), len) };
    }

    /// Frees `[off, off+len)` (owned by nobody): its pages go back to the
    /// host and it reads as zeros when allocated again.
    fn free(&self, off: u64, len: u64) {
        let punched = rustix::fs::fallocate(
            &self.fd,
            rustix::fs::FallocateFlags::PUNCH_HOLE | rustix::fs::FallocateFlags::KEEP_SIZE,
            off,
            len,
        );
        if punched.is_err() {
            // The range must read as zeros when it is handed out again.
            if let Ok(n) = usize::try_from(len) {
                self.zero(off, n);
            }
        }
        self.lock().alloc.free(off, len);
    }

    fn check(&self, off: u64, len: usize) -> usize {
        let len64 = len as u64;
        assert!(off.checked_add(len64).is_some_and(|e| e <= self.size), "memory file access out of bounds");
        usize::try_from(off).unwrap_or(usize::MAX)
    }

    /// Copies `buf.len()` bytes at `off` into `buf`.
    pub fn read(&self, off: u64, buf: &mut [u8]) {
        let o = self.check(off, buf.len());
        // SAFETY: [off, off+len) lies in the mapping (checked); the mapping
        // may change concurrently (application threads write it), so only
        // raw copies are made, never references into it.
        unsafe { std::ptr::copy_nonoverlapping(self.base.as_ptr().add(o), buf.as_mut_ptr(), buf.len()) };
    }

    /// Copies `data` to `off`.
    pub fn write(&self, off: u64, data: &[u8]) {
        let o = self.check(off, data.len());
        // SAFETY: as in `read`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), self.base.as_ptr().add(o), data.len()) };
    }

    /// Runs `f` on the 32-bit word at `off` (4-byte aligned) as an atomic:
    /// futex words are changed by the sentry while application threads
    /// change them with their own atomic instructions, on the same page.
    pub fn atomic_u32<R>(&self, off: u64, f: impl FnOnce(&std::sync::atomic::AtomicU32) -> R) -> R {
        assert!(off.is_multiple_of(4), "unaligned atomic word");
        let o = self.check(off, 4);
        // SAFETY: [off, off+4) lies in the mapping (checked) and is 4-byte
        // aligned (the mapping is page aligned); the mapping lives as long
        // as `self`. The word may change under us (application threads
        // use atomic instructions on it), which is what an atomic is for.
        let word = unsafe { &*self.base.as_ptr().add(o).cast::<std::sync::atomic::AtomicU32>() };
        f(word)
    }

    /// Zeroes `len` bytes at `off`.
    pub fn zero(&self, off: u64, len: usize) {
        let o = self.check(off, len);
        // SAFETY: as in `read`.
        unsafe { std::ptr::write_bytes(self.base.as_ptr().add(o), 0, len) };
    }

    /// Reads up to `len` bytes of host file `fd` at `file_off` straight
    /// into the file's bytes at `off` (one copy, by the host kernel).
    pub fn read_from(&self, off: u64, len: usize, fd: BorrowedFd<'_>, file_off: u64) -> Result<usize, Errno> {
        let o = self.check(off, len);
        let file_off = i64::try_from(file_off).map_err(|_| Errno::EINVAL)?;
        loop {
            // SAFETY: [off, off+len) lies in the mapping (checked); the
            // kernel writes it (application threads may touch it too: no
            // Rust reference into it exists).
            let r = unsafe { libc::pread(fd.as_raw_fd(), self.base.as_ptr().add(o).cast(), len, file_off) };
            if r >= 0 {
                return Ok(usize::try_from(r).unwrap_or(0));
            }
            let e = std::io::Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
            if e != libc::EINTR {
                return Err(Errno::new(e).unwrap_or(Errno::EIO));
            }
        }
    }

    /// Whether the page at `off` holds host memory (was ever touched and
    /// not freed since): `mincore` of the sentry's mapping of the file.
    pub fn resident(&self, off: u64) -> bool {
        let o = self.check(off & !(PAGE - 1), PAGE_BYTES);
        let mut v = 0u8;
        // SAFETY: one page of the mapping (checked), and one byte of output.
        let r = unsafe { libc::mincore(self.base.as_ptr().add(o).cast(), PAGE_BYTES, &raw mut v) };
        r == 0 && v & 1 == 1
    }

    /// How many of the pages of `[off, off + len)` hold host memory.
    pub fn resident_pages(&self, off: u64, len: u64) -> u64 {
        const CHUNK: usize = 512;
        let mut count = 0;
        let mut at = off & !(PAGE - 1);
        let end = off.saturating_add(len);
        while at < end {
            let n = (end - at).div_ceil(PAGE).min(CHUNK as u64);
            let bytes = usize::try_from(n * PAGE).unwrap_or(0);
            let o = self.check(at, bytes);
            let mut v = [0u8; CHUNK];
            // SAFETY: `n` pages of the mapping (checked), `n` bytes of output.
            let r = unsafe { libc::mincore(self.base.as_ptr().add(o).cast(), bytes, v.as_mut_ptr()) };
            if r == 0 {
                count += v[..usize::try_from(n).unwrap_or(0)].iter().filter(|b| *b & 1 == 1).count() as u64;
            }
            at += n * PAGE;
        }
        count
    }

    /// Bytes of host memory the file holds.
    pub fn committed(&self) -> u64 {
        rustix::fs::fstat(&self.fd).map(|s| u64::try_from(s.st_blocks).unwrap_or(0) * 512).unwrap_or(0)
    }
}

impl Drop for MemoryFile {
    fn drop(&mut self) {
        // SAFETY: unmapping the mapping made in `new`; no copies are in
        // flight (we have `&mut self`).
        unsafe {
            let _ = rustix::mm::munmap(self.base.as_ptr().cast(), usize::try_from(self.size).unwrap_or(0));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocator_first_fit_and_coalescing() {
        let mut a = Allocator::new(16 * PAGE);
        let x = a.allocate(4 * PAGE, PAGE).unwrap();
        let y = a.allocate(4 * PAGE, PAGE).unwrap();
        let z = a.allocate(8 * PAGE, PAGE).unwrap();
        assert_eq!((x, y, z), (0, 4 * PAGE, 8 * PAGE));
        assert_eq!(a.allocate(PAGE, PAGE), None);
        a.free(y, 4 * PAGE);
        assert_eq!(a.allocate(2 * PAGE, PAGE), Some(4 * PAGE));
        a.free(x, 4 * PAGE);
        a.free(z, 8 * PAGE);
        a.free(4 * PAGE, 2 * PAGE);
        assert_eq!(a.free_bytes(), 16 * PAGE);
        assert_eq!(a.free.len(), 1, "fully coalesced: {:?}", a.free);
    }

    #[test]
    fn allocator_alignment() {
        let mut a = Allocator::new(64 * PAGE);
        a.allocate(PAGE, PAGE).unwrap();
        let big = a.allocate(16 * PAGE, 16 * PAGE).unwrap();
        assert_eq!(big % (16 * PAGE), 0);
        assert_eq!(a.allocate(PAGE, PAGE), Some(PAGE));
    }

    #[test]
    fn refcounts_split_merge_and_free_what_nobody_owns() {
        let mut r = RefCounts::default();
        // Two owners of 0..8, then a third of 2..4.
        r.incref(0, 8 * PAGE);
        r.incref(2 * PAGE, 2 * PAGE);
        assert_eq!(r.intervals(), 3);
        assert!(!r.exclusive(0, PAGE) && r.exclusive(8 * PAGE, PAGE));
        // One owner of 0..8 goes: 2..4 still shared, the rest exclusive.
        assert!(r.decref(0, 8 * PAGE).is_empty());
        assert!(r.exclusive(0, 2 * PAGE) && r.exclusive(4 * PAGE, 4 * PAGE));
        assert!(!r.exclusive(PAGE, 2 * PAGE));
        // Releasing 0..8 again frees all but the shared part.
        assert_eq!(r.decref(0, 8 * PAGE), vec![(0, 2 * PAGE), (4 * PAGE, 4 * PAGE)]);
        assert_eq!(r.decref(2 * PAGE, 2 * PAGE), vec![(2 * PAGE, 2 * PAGE)]);
        assert_eq!(r.intervals(), 0);
        // Adjacent increments merge.
        r.incref(0, PAGE);
        r.incref(PAGE, PAGE);
        assert_eq!(r.intervals(), 1);
    }

    #[test]
    fn shared_ranges_are_freed_by_their_last_owner() {
        let mf = MemoryFile::new(1 << 30).unwrap();
        let off = mf.allocate(2 * PAGE).unwrap();
        mf.write(off, b"x");
        mf.incref(off, 2 * PAGE);
        mf.release(off, 2 * PAGE);
        assert!(mf.exclusive(off, 2 * PAGE));
        let mut b = [0u8; 1];
        mf.read(off, &mut b);
        assert_eq!(&b, b"x", "still owned: not freed");
        mf.release(off, 2 * PAGE);
        assert_eq!(mf.allocate(2 * PAGE).unwrap(), off);
        mf.read(off, &mut b);
        assert_eq!(b, [0], "freed and zeroed");
    }

    #[test]
    fn memory_file_reads_what_was_written_and_zeroes_freed_ranges() {
        let mf = MemoryFile::new(1 << 30).unwrap();
        let off = mf.allocate(2 * PAGE).unwrap();
        mf.write(off + 10, b"hello");
        let mut b = [0u8; 5];
        mf.read(off + 10, &mut b);
        assert_eq!(&b, b"hello");
        mf.release(off, 2 * PAGE);
        let off2 = mf.allocate(2 * PAGE).unwrap();
        assert_eq!(off2, off);
        mf.read(off2 + 10, &mut b);
        assert_eq!(b, [0; 5]);
    }
}
