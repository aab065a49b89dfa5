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

/// Takes `want` if nothing conflicts (replacing and splitting the owner's
/// own locks on the range, as POSIX does); returns the conflict otherwise.
pub fn set(flavor: Flavor, key: FileKey, want: Lock) -> Result<(), Lock> {
    let mut g = table();
    let Some(t) = g.as_mut() else { return Ok(()) };
    let l = list(t, flavor, key);
    if let Some(c) = l.iter().find(|x| x.conflicts(&want)) {
        return Err(*c);
    }
    carve(l, want.owner, want.start, want.end);
    l.push(want);
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
        assert_eq!(set(Flavor::Record, key, w(b, 50, 60)), Err(w(a, 0, 100)));
        unlock(Flavor::Record, key, a, 40, 70);
        assert!(set(Flavor::Record, key, w(b, 50, 60)).is_ok());
        assert!(test(Flavor::Record, key, &w(b, 0, 10)).is_some(), "a still holds [0, 40)");
        assert!(test(Flavor::Flock, key, &w(b, 0, 10)).is_none(), "flock locks are separate");
        release(a, Some(key));
        assert!(test(Flavor::Record, key, &w(b, 0, 10)).is_none());
        release(b, None);
    }
}
