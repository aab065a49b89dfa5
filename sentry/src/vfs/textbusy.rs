//! `ETXTBSY`: a file being executed cannot be opened for writing, and a
//! file open for writing cannot be executed (Linux's `i_writecount`), for
//! the sandbox's own opens and executions.

use std::collections::HashMap;
use std::sync::Mutex;

/// A file: (device, inode).
pub type Key = (u64, u64);

/// Per file: writers (positive) or executions (negative).
static COUNTS: Mutex<Option<HashMap<Key, i64>>> = Mutex::new(None);

fn adjust(key: Key, delta: i64, ok: impl Fn(i64) -> bool) -> bool {
    let mut g = COUNTS.lock().unwrap_or_else(|p| p.into_inner());
    let m = g.get_or_insert_with(HashMap::new);
    let c = m.get(&key).copied().unwrap_or(0);
    if !ok(c) {
        return false;
    }
    let n = c + delta;
    if n == 0 {
        m.remove(&key);
    } else {
        m.insert(key, n);
    }
    true
}

/// Held while a file is open for writing.
#[derive(Debug)]
pub struct WriteAccess(Key);

impl Drop for WriteAccess {
    fn drop(&mut self) {
        adjust(self.0, -1, |_| true);
    }
}

/// Held while a file is executed.
#[derive(Debug)]
pub struct DenyWrite(Key);

impl DenyWrite {
    /// Another execution of the same file (a forked address space keeps
    /// running the program).
    pub fn duplicate(&self) -> DenyWrite {
        adjust(self.0, -1, |_| true);
        DenyWrite(self.0)
    }
}

impl Drop for DenyWrite {
    fn drop(&mut self) {
        adjust(self.0, 1, |_| true);
    }
}

/// Write access to `key`: `None` (`ETXTBSY`) while it is executed.
pub fn get_write(key: Key) -> Option<WriteAccess> {
    // `then`, not `then_some`: a guard built and dropped would count.
    adjust(key, 1, |c| c >= 0).then(|| WriteAccess(key))
}

/// Executes `key`: `None` (`ETXTBSY`) while it is open for writing.
pub fn deny_write(key: Key) -> Option<DenyWrite> {
    adjust(key, -1, |c| c <= 0).then(|| DenyWrite(key))
}

/// How many hold write access to `key` now.
pub fn writers(key: Key) -> i64 {
    let g = COUNTS.lock().unwrap_or_else(|p| p.into_inner());
    g.as_ref().and_then(|m| m.get(&key)).copied().unwrap_or(0).max(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writers_and_executions_exclude_each_other() {
        let k = (77, 1);
        let w = get_write(k).unwrap();
        let w2 = get_write(k).unwrap();
        assert!(deny_write(k).is_none());
        drop((w, w2));
        let d = deny_write(k).unwrap();
        let d2 = deny_write(k).unwrap();
        assert!(get_write(k).is_none());
        drop(d);
        assert!(get_write(k).is_none());
        drop(d2);
        assert!(get_write(k).is_some());
    }
}
