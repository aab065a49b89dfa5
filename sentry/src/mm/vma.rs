//! The set of virtual memory areas of an address space: pure bookkeeping,
//! no memory behind it (see `MemoryManager` for that).

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::Arc;

use rvisor_platform::Prot;

bitflags::bitflags! {
    /// VMA attributes besides protections.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
    pub struct VmaFlags: u32 {
        /// `MAP_SHARED`: writes are seen by every mapping of the object.
        const SHARED = 1;
        /// `MAP_GROWSDOWN`.
        const GROWSDOWN = 2;
        /// A private file mapping with pages copied into memory (Linux's
        /// `anon_vma`): it no longer merges with parts that have none.
        const COPIED = 4;
        /// `MADV_DONTFORK`: a forked child does not get the area.
        const DONTFORK = 8;
        /// `MADV_WIPEONFORK`: a forked child gets the area zeroed.
        const WIPEONFORK = 16;
        /// A private mapping that has been writable (Linux's
        /// `VM_ACCOUNT`: `ac` in `/proc/PID/smaps`).
        const ACCOUNT = 32;
    }
}

/// What `/proc/PID/maps` would call the area.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum VmaName {
    /// Anonymous.
    #[default]
    None,
    /// `[heap]` (the `brk` area).
    Heap,
    /// `[stack]` (the initial thread's stack).
    Stack,
    /// A file (its path; shared by every VMA of the mapping).
    File(Arc<str>),
    /// `[vvar]`: the vDSO's clock parameters.
    Vvar,
    /// `[vdso]`.
    Vdso,
}

/// A file an address space maps: a host descriptor (one the gofer
/// donated), and what `/proc/PID/maps` says of it.
#[derive(Debug)]
pub struct MappedFile {
    /// The host descriptor (shared with the open file it came from).
    pub fd: Arc<OwnedFd>,
    /// Opened for writing: a shared mapping may be made writable.
    pub writable: bool,
    /// On a mount that allows execution: the mapping may be made
    /// executable.
    pub exec_ok: bool,
    /// Write access held by a shared writable mapping (`ETXTBSY` for
    /// executions meanwhile, as Linux keeps `i_writecount` for it).
    pub write_access: Option<crate::vfs::textbusy::WriteAccess>,
    /// Device number the sandbox reports.
    pub dev: u64,
    /// Inode number.
    pub ino: u64,
    /// Path, for `/proc/PID/maps`.
    pub path: Arc<str>,
}

/// The file behind a VMA.
#[derive(Clone, Debug)]
pub struct FileMap {
    /// The file.
    pub file: Arc<MappedFile>,
    /// Offset in the file of the VMA's first byte.
    pub offset: u64,
}

impl PartialEq for FileMap {
    fn eq(&self, o: &FileMap) -> bool {
        Arc::ptr_eq(&self.file, &o.file) && self.offset == o.offset
    }
}

impl Eq for FileMap {}

/// One virtual memory area: `[start, end)`, page aligned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Vma {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Current protections.
    pub prot: Prot,
    /// Attributes.
    pub flags: VmaFlags,
    /// Name.
    pub name: VmaName,
    /// The file mapped (`None`: anonymous memory).
    pub file: Option<FileMap>,
}

impl Vma {
    fn can_merge(&self, next: &Vma) -> bool {
        let files = match (&self.file, &next.file) {
            (None, None) => true,
            (Some(a), Some(b)) => {
                Arc::ptr_eq(&a.file, &b.file) && a.offset.checked_add(self.end - self.start) == Some(b.offset)
            }
            _ => false,
        };
        self.end == next.start
            && self.prot == next.prot
            && self.flags == next.flags
            && self.name == next.name
            && files
    }

    /// The file offset of address `addr` of this VMA.
    pub fn file_offset(&self, addr: u64) -> Option<u64> {
        self.file.as_ref().and_then(|f| f.offset.checked_add(addr.checked_sub(self.start)?))
    }

    /// This VMA's part `[start, end)` (inside it), with the file offset
    /// of the part's first byte.
    pub fn part(&self, start: u64, end: u64) -> Vma {
        let file = self.file.as_ref().map(|f| FileMap {
            file: f.file.clone(),
            offset: f.offset.wrapping_add(start.wrapping_sub(self.start)),
        });
        Vma { start, end, file, ..self.clone() }
    }
}

/// Non-overlapping VMAs, keyed by start.
#[derive(Clone, Debug, Default)]
pub struct VmaSet {
    map: BTreeMap<u64, Vma>,
}

impl VmaSet {
    /// The VMA containing `addr`.
    pub fn find(&self, addr: u64) -> Option<&Vma> {
        self.map.range(..=addr).next_back().map(|(_, v)| v).filter(|v| addr < v.end)
    }

    /// VMAs intersecting `[start, end)`, in order.
    pub fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = &Vma> {
        let first = self.map.range(..=start).next_back().filter(|(_, v)| v.end > start).map(|(&k, _)| k);
        let from = first.unwrap_or(start);
        self.map.range(from..end).map(|(_, v)| v).filter(move |v| v.end > start)
    }

    /// Whether any VMA intersects `[start, end)`.
    pub fn intersects(&self, start: u64, end: u64) -> bool {
        self.overlapping(start, end).next().is_some()
    }

    /// Whether `[start, end)` is entirely covered by VMAs.
    pub fn covers(&self, start: u64, end: u64) -> bool {
        let mut at = start;
        for v in self.overlapping(start, end) {
            if v.start > at {
                return false;
            }
            at = v.end;
            if at >= end {
                return true;
            }
        }
        at >= end
    }

    /// Splits the VMA containing `addr` so that one starts at `addr`.
    fn split(&mut self, addr: u64) {
        let Some(v) = self.find(addr) else { return };
        if v.start == addr {
            return;
        }
        let tail = v.part(addr, v.end);
        if let Some(head) = self.map.get_mut(&v.start.clone()) {
            head.end = addr;
        }
        self.map.insert(addr, tail);
    }

    /// Removes `[start, end)`, splitting VMAs at the edges; returns the
    /// pieces removed.
    pub fn remove(&mut self, start: u64, end: u64) -> Vec<Vma> {
        self.split(start);
        self.split(end);
        let keys: Vec<u64> = self.map.range(start..end).map(|(&k, _)| k).collect();
        keys.into_iter().filter_map(|k| self.map.remove(&k)).collect()
    }

    /// Inserts `v`, which must not intersect any VMA, merging it with
    /// compatible neighbours.
    pub fn insert(&mut self, v: Vma) {
        debug_assert!(v.start < v.end && !self.intersects(v.start, v.end));
        let start = v.start;
        self.map.insert(start, v);
        self.merge_around(start);
    }

    fn merge_around(&mut self, start: u64) {
        // With the previous one.
        let mut key = start;
        if let Some((&pk, prev)) = self.map.range(..start).next_back() {
            if self.map.get(&start).is_some_and(|cur| prev.can_merge(cur)) {
                if let Some(cur) = self.map.remove(&start) {
                    if let Some(p) = self.map.get_mut(&pk) {
                        p.end = cur.end;
                    }
                }
                key = pk;
            }
        }
        // With the next one.
        let Some(cur) = self.map.get(&key) else { return };
        let end = cur.end;
        if self.map.get(&end).is_some_and(|next| cur.can_merge(next)) {
            if let Some(next) = self.map.remove(&end) {
                if let Some(c) = self.map.get_mut(&key) {
                    c.end = next.end;
                }
            }
        }
    }

    /// Adds `flag` to the VMA containing `addr`.
    pub fn mark(&mut self, addr: u64, flag: VmaFlags) {
        let Some(start) = self.find(addr).map(|v| v.start) else { return };
        if let Some(v) = self.map.get_mut(&start) {
            v.flags |= flag;
        }
    }

    /// Sets the protections of `[start, end)`, which must be covered.
    pub fn protect(&mut self, start: u64, end: u64, prot: Prot) -> bool {
        self.update(start, end, |v| v.prot = prot)
    }

    /// Applies `f` to `[start, end)`, which must be covered, splitting
    /// VMAs at the edges and merging what became alike.
    pub fn update(&mut self, start: u64, end: u64, f: impl Fn(&mut Vma)) -> bool {
        if !self.covers(start, end) {
            return false;
        }
        self.split(start);
        self.split(end);
        let keys: Vec<u64> = self.map.range(start..end).map(|(&k, _)| k).collect();
        for &k in &keys {
            if let Some(v) = self.map.get_mut(&k) {
                f(v);
            }
        }
        for k in keys {
            if self.map.contains_key(&k) {
                self.merge_around(k);
            }
        }
        true
    }

    /// The highest `a` with `[a, a+len)` free and inside `[lo, hi)`.
    pub fn find_gap_top_down(&self, len: u64, lo: u64, hi: u64) -> Option<u64> {
        let mut top = hi;
        for v in self.map.range(..hi).rev().map(|(_, v)| v) {
            if v.end <= top && top - v.end >= len {
                let a = top - len;
                return (a >= lo).then_some(a);
            }
            top = top.min(v.start);
            if top < lo.saturating_add(len) {
                return None;
            }
        }
        (top >= lo.checked_add(len)?).then(|| top - len)
    }

    /// All VMAs in order.
    pub fn iter(&self) -> impl Iterator<Item = &Vma> {
        self.map.values()
    }

    /// Number of VMAs.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const P: u64 = 0x1000;

    fn anon(start: u64, end: u64, prot: Prot) -> Vma {
        Vma { start, end, prot, flags: VmaFlags::empty(), name: VmaName::None, file: None }
    }

    fn ranges(s: &VmaSet) -> Vec<(u64, u64)> {
        s.iter().map(|v| (v.start, v.end)).collect()
    }

    #[test]
    fn insert_merges_compatible_neighbours() {
        let mut s = VmaSet::default();
        s.insert(anon(P, 2 * P, Prot::READ));
        s.insert(anon(3 * P, 4 * P, Prot::READ));
        s.insert(anon(2 * P, 3 * P, Prot::READ));
        assert_eq!(ranges(&s), vec![(P, 4 * P)]);
        s.insert(anon(4 * P, 5 * P, Prot::READ | Prot::WRITE));
        assert_eq!(ranges(&s), vec![(P, 4 * P), (4 * P, 5 * P)]);
    }

    #[test]
    fn remove_splits_at_edges() {
        let mut s = VmaSet::default();
        s.insert(anon(P, 10 * P, Prot::READ));
        let gone = s.remove(3 * P, 5 * P);
        assert_eq!(gone.len(), 1);
        assert_eq!((gone[0].start, gone[0].end), (3 * P, 5 * P));
        assert_eq!(ranges(&s), vec![(P, 3 * P), (5 * P, 10 * P)]);
        assert!(s.find(4 * P).is_none());
        assert_eq!(s.find(5 * P).map(|v| v.start), Some(5 * P));
        assert_eq!(s.find(3 * P - 1).map(|v| v.start), Some(P));
        // Removing a range that spans holes and several VMAs.
        let gone = s.remove(0, 20 * P);
        assert_eq!(gone.len(), 2);
        assert!(s.is_empty());
    }

    #[test]
    fn protect_needs_full_cover_and_remerges() {
        let mut s = VmaSet::default();
        s.insert(anon(P, 4 * P, Prot::READ));
        s.insert(anon(5 * P, 6 * P, Prot::READ));
        assert!(!s.protect(P, 6 * P, Prot::empty()), "hole at 4P");
        assert!(s.protect(2 * P, 3 * P, Prot::empty()));
        assert_eq!(ranges(&s), vec![(P, 2 * P), (2 * P, 3 * P), (3 * P, 4 * P), (5 * P, 6 * P)]);
        assert!(s.protect(2 * P, 3 * P, Prot::READ));
        assert_eq!(ranges(&s), vec![(P, 4 * P), (5 * P, 6 * P)]);
    }

    #[test]
    fn gaps_are_found_from_the_top() {
        let mut s = VmaSet::default();
        s.insert(anon(10 * P, 20 * P, Prot::READ));
        s.insert(anon(30 * P, 40 * P, Prot::WRITE));
        assert_eq!(s.find_gap_top_down(5 * P, P, 100 * P), Some(95 * P));
        assert_eq!(s.find_gap_top_down(5 * P, P, 42 * P), Some(25 * P));
        assert_eq!(s.find_gap_top_down(11 * P, P, 42 * P), None);
        assert_eq!(s.find_gap_top_down(9 * P, P, 40 * P), Some(21 * P));
        assert_eq!(s.find_gap_top_down(10 * P, P, 40 * P), Some(20 * P));
        assert_eq!(s.find_gap_top_down(11 * P, P, 40 * P), None);
        assert_eq!(s.find_gap_top_down(10 * P, 0, 10 * P), Some(0));
        assert_eq!(s.find_gap_top_down(10 * P, P, 10 * P), None);
        assert_eq!(s.find_gap_top_down(9 * P, P, 15 * P), Some(P));
        assert!(s.covers(12 * P, 18 * P) && !s.covers(12 * P, 22 * P));
    }

    #[test]
    fn overlapping_includes_the_vma_containing_start() {
        let mut s = VmaSet::default();
        s.insert(anon(P, 4 * P, Prot::READ));
        s.insert(anon(6 * P, 8 * P, Prot::WRITE));
        let v: Vec<_> = s.overlapping(2 * P, 7 * P).map(|v| v.start).collect();
        assert_eq!(v, vec![P, 6 * P]);
        assert_eq!(s.overlapping(4 * P, 6 * P).count(), 0);
    }
}
