//! Advisory file locks, local to the sandbox: `flock` locks and POSIX
//! record locks (`F_SETLK`, owned by a process) and open-file-description
//! record locks (`F_OFD_SETLK`, owned by the description). The two kinds
//! do not interact, as on Linux. Locks are not taken on the host: the
//! sandbox has its files to itself.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Who holds a lock.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LockOwner {
    /// A process (POSIX record locks).
    Process(i32),
    /// An open file description (`flock`, OFD locks), by address.
    File(usize),
}

/// A lock's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockKind {
    /// Shared.
    Read,
    /// Exclusive.
    Write,
}

/// A held lock on `[start, end)` (`end` `u64::MAX`: to the end of file).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lock {
    /// Holder.
    pub owner: LockOwner,
    /// Kind.
    pub kind: LockKind,
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
}

impl Lock {
    fn conflicts(&self, other: &Lock) -> bool {
        self.owner != other.owner
            && self.start < other.end
            && other.start < self.end
            && (self.kind == LockKind::Write || other.kind == LockKind::Write)
    }
}

/// A file's identity: (device, inode).
pub type FileKey = (u64, u64);

#[derive(Default)]
struct Table {
    flocks: HashMap<FileKey, Vec<Lock>>,
    records: HashMap<FileKey, Vec<Lock>>,
}

static TABLE: Mutex<Option<Table>> = Mutex::new(None);

fn table() -> MutexGuard<'static, Option<Table>> {
    let mut t = TABLE.lock().unwrap_or_else(|p| p.into_inner());
    if t.is_none() {
        *t = Some(Table::default());
    }
    t
}

/// Which lock list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `flock`.
    Flock,
    /// POSIX and OFD record locks.
    Record,
}

fn list(t: &mut Table, f: Flavor, key: FileKey) -> &mut Vec<Lock> {
    match f {
        Flavor::Flock => t.flocks.entry(key).or_default(),
        Flavor::Record => t.records.entry(key).or_default(),
    }
}

/// The first lock that conflicts with `want`.
pub fn test(flavor: Flavor, key: FileKey, want: &Lock) -> Option<Lock> {
    let mut g = table();
    let t = g.as_mut()?;
    list(t, flavor, key).iter().find(|l| l.conflicts(want)).copied()
}

/// Most locks one file carries (Linux bounds them by memory; a sandbox's
/// application must not grow the sentry without bound): `ENOLCK` past it.
pub const MAX_LOCKS_PER_FILE: usize = 16_384;

/// Why a lock was not taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetError {
    /// Another owner's lock is in the way.
    Conflict(Lock),
    /// The file has too many locks (`ENOLCK`).
    TooMany,
}

/// Takes `want` if nothing conflicts (replacing and splitting the owner's
/// own locks on the range, and merging it with the owner's adjacent locks
/// of the same kind, as Linux does); returns the conflict otherwise.
pub fn set(flavor: Flavor, key: FileKey, want: Lock) -> Result<(), SetError> {
    let mut g = table();
    let Some(t) = g.as_mut() else { return Ok(()) };
    let l = list(t, flavor, key);
    if let Some(c) = l.iter().find(|x| x.conflicts(&want)) {
        return Err(SetError::Conflict(*c));
    }
    carve(l, want.owner, want.start, want.end);
    let mut merged = want;
    l.retain(|x| {
        let touches =
            x.owner == want.owner && x.kind == want.kind && (x.end == want.start || x.start == want.end);
        if touches {
            merged.start = merged.start.min(x.start);
            merged.end = merged.end.max(x.end);
        }
        !touches
    });
    if l.len() >= MAX_LOCKS_PER_FILE {
        return Err(SetError::TooMany);
    }
    l.push(merged);
    Ok(())
}

/// Releases the owner's locks on `[start, end)`.
pub fn unlock(flavor: Flavor, key: FileKey, owner: LockOwner, start: u64, end: u64) {
    let mut g = table();
    if let Some(t) = g.as_mut() {
        carve(list(t, flavor, key), owner, start, end);
    }
}

/// Releases every lock of `owner` (a process closing a descriptor of the
/// file, or the last reference to a description going away).
pub fn release(owner: LockOwner, key: Option<FileKey>) {
    let mut g = table();
    let Some(t) = g.as_mut() else { return };
    for m in [&mut t.flocks, &mut t.records] {
        for (k, v) in m.iter_mut() {
            if key.is_none_or(|key| key == *k) {
                v.retain(|l| l.owner != owner);
            }
        }
        m.retain(|_, v| !v.is_empty());
    }
}

/// Removes `owner`'s coverage of `[start, end)`, splitting its locks.
fn carve(l: &mut Vec<Lock>, owner: LockOwner, start: u64, end: u64) {
    let mut out = Vec::with_capacity(l.len() + 1);
    for x in l.drain(..) {
        if x.owner != owner || x.end <= start || end <= x.start {
            out.push(x);
            continue;
        }
        if x.start < start {
            out.push(Lock { end: start, ..x });
        }
        if end < x.end {
            out.push(Lock { start: end, ..x });
        }
    }
    *l = out;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posix_ranges_split_and_conflict() {
        let key = (999, 1);
        let a = LockOwner::Process(1);
        let b = LockOwner::Process(2);
        let w = |o, s, e| Lock { owner: o, kind: LockKind::Write, start: s, end: e };
        set(Flavor::Record, key, w(a, 0, 100)).unwrap();
        assert_eq!(set(Flavor::Record, key, w(b, 50, 60)), Err(SetError::Conflict(w(a, 0, 100))));
        unlock(Flavor::Record, key, a, 40, 70);
        assert!(set(Flavor::Record, key, w(b, 50, 60)).is_ok());
        assert!(test(Flavor::Record, key, &w(b, 0, 10)).is_some(), "a still holds [0, 40)");
        assert!(test(Flavor::Flock, key, &w(b, 0, 10)).is_none(), "flock locks are separate");
        release(a, Some(key));
        assert!(test(Flavor::Record, key, &w(b, 0, 10)).is_none());
        release(b, None);
    }

    #[test]
    fn adjacent_locks_merge_and_a_file_has_a_bounded_number() {
        let key = (999, 2);
        let a = LockOwner::Process(3);
        let b = LockOwner::Process(4);
        let w = |o, s, e| Lock { owner: o, kind: LockKind::Write, start: s, end: e };
        set(Flavor::Record, key, w(a, 0, 5)).unwrap();
        set(Flavor::Record, key, w(a, 5, 10)).unwrap();
        assert_eq!(test(Flavor::Record, key, &w(b, 0, 10)), Some(w(a, 0, 10)), "merged");
        // Every other byte: no merging, so the count grows until ENOLCK.
        let mut n = 0u64;
        let err = loop {
            match set(Flavor::Record, key, w(a, 100 + 2 * n, 101 + 2 * n)) {
                Ok(()) => n += 1,
                Err(e) => break e,
            }
        };
        assert_eq!(err, SetError::TooMany);
        assert!(usize::try_from(n).is_ok_and(|n| n <= MAX_LOCKS_PER_FILE));
        release(a, None);
    }
}
