//! The virtual file system: mounts, the dentry cache, path walk,
//! permissions, open files and the descriptor table. File systems implement
//! [`inode::Inode`]; everything above is generic.
//!
//! Dentry cache policy: a sandbox has exclusive use of its files (as
//! runsc's default `--file-access=exclusive`), so positive dentries and
//! attributes are cached and never revalidated against the host; the
//! sentry invalidates what it changes itself. For `rvisor do` over the
//! host's root this means changes the host makes to a file after the
//! sandbox first looked it up may not be seen by the sandbox.
//!
//! The cache is bounded: past [`MAX_CACHED_DENTRIES`] dentries, unused
//! leaves (nothing but their parent holds them) are evicted in
//! second-chance order, which closes their gofer fids. Dentries in use (an
//! open file, a working directory, a mount point, an ancestor of a cached
//! dentry) are never evicted.

pub mod dir;
pub mod file;
pub mod inode;
pub mod lock;
pub mod perm;
pub mod textbusy;
pub mod walk;

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock, Weak};

use rvisor_syscalls::Errno;

pub use self::file::{FdEntry, FdTable, File, FileOps, NR_OPEN};
use self::inode::{InodeAttr, InodeRef};

/// A name in a directory, cached.
pub struct Dentry {
    /// (parent, name); `None` for a file system's root.
    link: Mutex<Option<(Arc<Dentry>, Vec<u8>)>>,
    /// The file.
    pub inode: InodeRef,
    /// Cached children.
    children: Mutex<HashMap<Vec<u8>, Arc<Dentry>>>,
    /// Its name was removed (`getcwd` then fails with `ENOENT`).
    unlinked: AtomicBool,
    /// Looked up since the evictor last passed (second chance).
    referenced: AtomicBool,
    /// Counted in `LIVE_DENTRIES` (cached children are).
    counted: bool,
}

/// Dentries kept before unused ones are evicted.
pub const MAX_CACHED_DENTRIES: usize = 4096;
/// Dentries with a parent, alive.
static LIVE_DENTRIES: AtomicUsize = AtomicUsize::new(0);
/// Eviction order: every cached dentry, oldest first (dead entries are
/// dropped as they come up).
static EVICTION: Mutex<VecDeque<Weak<Dentry>>> = Mutex::new(VecDeque::new());

/// Evicts unused leaf dentries until the cache is back under its bound
/// (at most a few hundred looked at per call).
fn evict() {
    let mut victims = Vec::new();
    {
        let mut q = EVICTION.lock().unwrap_or_else(|p| p.into_inner());
        let mut budget = q.len().min(512);
        while LIVE_DENTRIES.load(Ordering::Relaxed).saturating_sub(victims.len()) > MAX_CACHED_DENTRIES
            && budget > 0
        {
            budget -= 1;
            let Some(w) = q.pop_front() else { break };
            let Some(d) = w.upgrade() else { continue };
            if d.referenced.swap(false, Ordering::Relaxed) {
                q.push_back(w);
                continue;
            }
            let Some((parent, name)) = d.link.lock().unwrap_or_else(|p| p.into_inner()).clone() else {
                continue;
            };
            let mut siblings = parent.children.lock().unwrap_or_else(|p| p.into_inner());
            // Held only by the parent's map and by `d` here: nobody can
            // take another reference without this lock.
            let unused = Arc::strong_count(&d) == 2
                && d.children.lock().unwrap_or_else(|p| p.into_inner()).is_empty()
                && siblings.get(&name).is_some_and(|c| Arc::ptr_eq(c, &d));
            if unused {
                siblings.remove(&name);
                drop(siblings);
                victims.push(d);
            } else {
                drop(siblings);
                q.push_back(w);
            }
        }
    }
    // Dropped outside the locks: dropping closes gofer fids.
    drop(victims);
}

impl Drop for Dentry {
    fn drop(&mut self) {
        if self.counted {
            LIVE_DENTRIES.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for Dentry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dentry").field("name", &String::from_utf8_lossy(&self.name())).finish_non_exhaustive()
    }
}

impl Dentry {
    /// The root dentry of a file system.
    pub fn root(inode: InodeRef) -> Arc<Dentry> {
        Arc::new(Dentry {
            link: Mutex::new(None),
            inode,
            children: Mutex::new(HashMap::new()),
            unlinked: AtomicBool::new(false),
            referenced: AtomicBool::new(false),
            counted: false,
        })
    }

    /// A child dentry the cache does not keep (its inode is not
    /// cacheable).
    fn uncached(parent: &Arc<Dentry>, name: &[u8], inode: InodeRef) -> Arc<Dentry> {
        Arc::new(Dentry {
            link: Mutex::new(Some((parent.clone(), name.to_vec()))),
            inode,
            children: Mutex::new(HashMap::new()),
            unlinked: AtomicBool::new(false),
            referenced: AtomicBool::new(false),
            counted: false,
        })
    }

    /// A dentry of an inode with no name yet (`O_TMPFILE`): `/#INO`
    /// below `parent`, already unlinked.
    pub fn anonymous(parent: &Arc<Dentry>, ino: u64, inode: InodeRef) -> Arc<Dentry> {
        let d = Self::uncached(parent, format!("#{ino}").as_bytes(), inode);
        d.mark_unlinked();
        d
    }

    fn child(parent: &Arc<Dentry>, name: &[u8], inode: InodeRef) -> Arc<Dentry> {
        let d = Arc::new(Dentry {
            link: Mutex::new(Some((parent.clone(), name.to_vec()))),
            inode,
            children: Mutex::new(HashMap::new()),
            unlinked: AtomicBool::new(false),
            referenced: AtomicBool::new(false),
            counted: true,
        });
        let live = LIVE_DENTRIES.fetch_add(1, Ordering::Relaxed) + 1;
        let mut q = EVICTION.lock().unwrap_or_else(|p| p.into_inner());
        q.push_back(Arc::downgrade(&d));
        // Entries of dentries gone since (created and removed below the
        // bound, where eviction never runs) are dropped once they are most
        // of the queue: amortised O(1) per dentry.
        if q.len() > 2 * live + 1024 {
            q.retain(|w| w.strong_count() > 0);
        }
        drop(q);
        d
    }

    /// Records that the name was removed.
    pub fn mark_unlinked(&self) {
        self.unlinked.store(true, Ordering::Relaxed);
    }

    /// Whether the name was removed.
    pub fn is_unlinked(&self) -> bool {
        self.unlinked.load(Ordering::Relaxed)
    }

    /// The parent dentry (`None` at a file system's root).
    pub fn parent(&self) -> Option<Arc<Dentry>> {
        self.link.lock().unwrap_or_else(|p| p.into_inner()).as_ref().map(|(p, _)| p.clone())
    }

    /// The name in its parent (empty at a root).
    pub fn name(&self) -> Vec<u8> {
        self.link
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .map(|(_, n)| n.clone())
            .unwrap_or_default()
    }

    /// The cached child `name`, or looks it up and caches it.
    pub fn lookup(self: &Arc<Dentry>, name: &[u8]) -> Result<Arc<Dentry>, Errno> {
        if let Some(d) = self.children.lock().unwrap_or_else(|p| p.into_inner()).get(name) {
            d.referenced.store(true, Ordering::Relaxed);
            return Ok(d.clone());
        }
        let inode = self.inode.lookup(name)?;
        if !inode.cacheable() {
            return Ok(Dentry::uncached(self, name, inode));
        }
        Ok(self.insert_child(name, inode))
    }

    /// Caches `inode` as child `name` (after a create).
    pub fn insert_child(self: &Arc<Dentry>, name: &[u8], inode: InodeRef) -> Arc<Dentry> {
        let d = Dentry::child(self, name, inode);
        self.children.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_vec(), d.clone());
        if LIVE_DENTRIES.load(Ordering::Relaxed) > MAX_CACHED_DENTRIES {
            evict();
        }
        d
    }

    /// Forgets child `name` (after an unlink or rename).
    pub fn forget_child(&self, name: &[u8]) -> Option<Arc<Dentry>> {
        self.children.lock().unwrap_or_else(|p| p.into_inner()).remove(name)
    }

    /// Moves this dentry under `parent` as `name` (after a rename).
    pub fn relink(&self, parent: &Arc<Dentry>, name: &[u8]) {
        *self.link.lock().unwrap_or_else(|p| p.into_inner()) = Some((parent.clone(), name.to_vec()));
    }

    /// Caches `d` as child `name`.
    pub fn adopt(&self, name: &[u8], d: Arc<Dentry>) {
        self.children.lock().unwrap_or_else(|p| p.into_inner()).insert(name.to_vec(), d);
    }
}

/// Mount flags (`MS_*` subset the VFS honours).
pub mod mflags {
    /// Read-only.
    pub const RDONLY: u32 = 1;
    /// Ignore set-user-id and set-group-id bits.
    pub const NOSUID: u32 = 2;
    /// No device files.
    pub const NODEV: u32 = 4;
    /// No execution.
    pub const NOEXEC: u32 = 8;
}

static NEXT_MOUNT: AtomicU64 = AtomicU64::new(1);

/// A mounted file system.
pub struct Mount {
    /// Mount id.
    pub id: u64,
    /// Its root.
    pub root: Arc<Dentry>,
    /// `mflags` bits.
    pub flags: u32,
    /// The device number files on it report.
    pub dev: u64,
    /// Where it is mounted: (parent mount, mount point); `None` for the
    /// namespace's root.
    pub parent: Option<(Arc<Mount>, Arc<Dentry>)>,
    /// What `/proc/PID/mounts` calls it: (file-system type, source).
    pub source: MountSource,
}

/// A mount's file-system type and source, as `/proc/PID/mounts` shows
/// them.
#[derive(Clone, Debug)]
pub struct MountSource {
    /// File-system type (`proc`, `tmpfs`…).
    pub fs_type: &'static str,
    /// Source (`proc`, `none`…).
    pub source: &'static str,
}

impl MountSource {
    /// A file system whose source is named after its type (`proc` on `proc`).
    pub const fn named(fs_type: &'static str) -> MountSource {
        MountSource { fs_type, source: fs_type }
    }
}

impl std::fmt::Debug for Mount {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mount").field("id", &self.id).field("flags", &self.flags).finish_non_exhaustive()
    }
}

impl Mount {
    /// Whether the mount is read-only.
    pub fn read_only(&self) -> bool {
        self.flags & mflags::RDONLY != 0
    }
}

/// A location: a dentry on a mount.
#[derive(Clone, Debug)]
pub struct Path {
    /// The mount.
    pub mount: Arc<Mount>,
    /// The dentry.
    pub dentry: Arc<Dentry>,
}

impl Path {
    /// The inode's attributes, with the mount's device number.
    pub fn attr(&self) -> Result<InodeAttr, Errno> {
        let mut a = self.dentry.inode.attr()?;
        a.dev = self.mount.dev;
        Ok(a)
    }

    /// Whether two paths are the same place.
    pub fn same(&self, other: &Path) -> bool {
        Arc::ptr_eq(&self.mount, &other.mount) && Arc::ptr_eq(&self.dentry, &other.dentry)
    }

    /// The inode.
    pub fn inode(&self) -> &InodeRef {
        &self.dentry.inode
    }
}

fn key(m: &Arc<Mount>, d: &Arc<Dentry>) -> (u64, usize) {
    (m.id, Arc::as_ptr(d) as usize)
}

/// A mount namespace: a root mount and what is mounted where.
pub struct MountNamespace {
    /// The root mount (replaced, with the same id, when remounted).
    root: RwLock<Arc<Mount>>,
    mounts: RwLock<HashMap<(u64, usize), Arc<Mount>>>,
}

impl std::fmt::Debug for MountNamespace {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MountNamespace").finish_non_exhaustive()
    }
}

/// Device number of the `n`th mount (anonymous major 0, like Linux's
/// `set_anon_super`).
fn anon_dev(n: u64) -> u64 {
    n & 0xff | (n & !0xff) << 12
}

impl MountNamespace {
    /// A namespace whose root is file system root `root`.
    pub fn new(root: InodeRef, flags: u32, source: MountSource) -> Arc<MountNamespace> {
        let id = NEXT_MOUNT.fetch_add(1, Ordering::Relaxed);
        let m = Arc::new(Mount {
            id,
            root: Dentry::root(root),
            flags,
            dev: anon_dev(id + 40),
            parent: None,
            source,
        });
        Arc::new(MountNamespace { root: RwLock::new(m), mounts: RwLock::new(HashMap::new()) })
    }

    /// The root of the namespace.
    pub fn root(&self) -> Path {
        let m = self.root.read().unwrap_or_else(|e| e.into_inner()).clone();
        Path { dentry: m.root.clone(), mount: m }
    }

    /// Mounts file system root `fs_root` on `at`: a directory on a
    /// directory, or (a bind of a file) a non-directory on a non-directory.
    pub fn mount(&self, at: &Path, fs_root: InodeRef, flags: u32, source: MountSource) -> Result<(), Errno> {
        if at.attr()?.is_dir() != fs_root.attr()?.is_dir() {
            return Err(Errno::ENOTDIR);
        }
        let id = NEXT_MOUNT.fetch_add(1, Ordering::Relaxed);
        let at = self.cross(at.clone());
        let m = Arc::new(Mount {
            id,
            root: Dentry::root(fs_root),
            flags,
            dev: anon_dev(id + 40),
            parent: Some((at.mount.clone(), at.dentry.clone())),
            source,
        });
        self.mounts.write().unwrap_or_else(|p| p.into_inner()).insert(key(&at.mount, &at.dentry), m);
        Ok(())
    }

    /// The topmost mount on `p`, if something is mounted there.
    pub fn cross(&self, mut p: Path) -> Path {
        let mounts = self.mounts.read().unwrap_or_else(|e| e.into_inner());
        while let Some(m) = mounts.get(&key(&p.mount, &p.dentry)) {
            p = Path { mount: m.clone(), dentry: m.root.clone() };
        }
        p
    }

    /// Every mount, the root first, then in the order they were made.
    pub fn mounts(&self) -> Vec<Arc<Mount>> {
        let mut v: Vec<Arc<Mount>> =
            self.mounts.read().unwrap_or_else(|e| e.into_inner()).values().cloned().collect();
        v.sort_by_key(|m| m.id);
        v.insert(0, self.root.read().unwrap_or_else(|e| e.into_inner()).clone());
        v
    }

    /// Removes mount `m` (the topmost on its mount point). `EINVAL` for
    /// the root or a mount not in the namespace; `EBUSY` if others are
    /// mounted inside it, unless `detach` (they go with it).
    pub fn unmount(&self, m: &Arc<Mount>, detach: bool) -> Result<(), Errno> {
        let Some((pm, d)) = &m.parent else { return Err(Errno::EINVAL) };
        let mut mounts = self.mounts.write().unwrap_or_else(|e| e.into_inner());
        if !mounts.get(&key(pm, d)).is_some_and(|x| Arc::ptr_eq(x, m)) {
            return Err(Errno::EINVAL);
        }
        let inside = |mounts: &HashMap<(u64, usize), Arc<Mount>>, id: u64| -> Vec<(u64, usize)> {
            mounts
                .iter()
                .filter(|(_, x)| x.parent.as_ref().is_some_and(|(p, _)| p.id == id))
                .map(|(k, _)| *k)
                .collect()
        };
        if !detach && !inside(&mounts, m.id).is_empty() {
            return Err(Errno::EBUSY);
        }
        mounts.remove(&key(pm, d));
        // Detached: what was mounted inside goes too, recursively.
        let mut gone = vec![m.id];
        while let Some(id) = gone.pop() {
            for k in inside(&mounts, id) {
                if let Some(x) = mounts.remove(&k) {
                    gone.push(x.id);
                }
            }
        }
        Ok(())
    }

    /// Changes mount `m`'s flags (`MS_REMOUNT`): the mount is replaced by
    /// one with the same id, root and place.
    pub fn set_flags(&self, m: &Arc<Mount>, flags: u32) -> Result<(), Errno> {
        let new = Arc::new(Mount {
            id: m.id,
            root: m.root.clone(),
            flags,
            dev: m.dev,
            parent: m.parent.clone(),
            source: m.source.clone(),
        });
        match &m.parent {
            None => {
                let mut r = self.root.write().unwrap_or_else(|e| e.into_inner());
                if r.id != m.id {
                    return Err(Errno::EINVAL);
                }
                *r = new;
            }
            Some((pm, d)) => {
                let mut mounts = self.mounts.write().unwrap_or_else(|e| e.into_inner());
                let k = key(pm, d);
                if mounts.get(&k).is_none_or(|x| x.id != m.id) {
                    return Err(Errno::EINVAL);
                }
                mounts.insert(k, new);
            }
        }
        Ok(())
    }

    /// Whether `p` is a mount point.
    pub fn is_mount_point(&self, p: &Path) -> bool {
        self.mounts.read().unwrap_or_else(|e| e.into_inner()).contains_key(&key(&p.mount, &p.dentry))
    }
}

/// A task's root and working directory (shared with `CLONE_FS`).
#[derive(Clone, Debug)]
pub struct FsContext {
    /// The root (`chroot`).
    pub root: Path,
    /// The working directory.
    pub cwd: Path,
}

/// The path of `p` as seen from `root` (`getcwd`, `/proc/PID/cwd`). Paths
/// outside `root` get Linux's `(unreachable)` prefix.
pub fn path_string(root: &Path, p: &Path) -> Vec<u8> {
    let mut parts: Vec<Vec<u8>> = Vec::new();
    let mut cur = p.clone();
    let mut reachable = true;
    for _ in 0..4096 {
        if cur.same(root) {
            break;
        }
        if Arc::ptr_eq(&cur.dentry, &cur.mount.root) {
            match &cur.mount.parent {
                Some((m, d)) => {
                    cur = Path { mount: m.clone(), dentry: d.clone() };
                    continue;
                }
                None => {
                    reachable = false;
                    break;
                }
            }
        }
        match cur.dentry.parent() {
            Some(parent) => {
                parts.push(cur.dentry.name());
                cur = Path { mount: cur.mount.clone(), dentry: parent };
            }
            None => {
                reachable = false;
                break;
            }
        }
    }
    let mut out = Vec::new();
    if !reachable {
        out.extend_from_slice(b"(unreachable)");
    }
    for part in parts.iter().rev() {
        out.push(b'/');
        out.extend_from_slice(part);
    }
    if out.is_empty() || out == b"(unreachable)" {
        out.push(b'/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::inode::Inode;
    use super::*;

    static DROPPED: AtomicUsize = AtomicUsize::new(0);

    /// A directory whose every name exists.
    struct Everything;

    impl Drop for Everything {
        fn drop(&mut self) {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
    }

    impl Inode for Everything {
        fn attr(&self) -> Result<InodeAttr, Errno> {
            Ok(InodeAttr { mode: inode::mode::S_IFDIR | 0o755, ..InodeAttr::default() })
        }
        fn lookup(&self, _name: &[u8]) -> Result<InodeRef, Errno> {
            Ok(Arc::new(Everything))
        }
        fn open(&self, _flags: u32) -> Result<Box<dyn FileOps>, Errno> {
            Err(Errno::EISDIR)
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    #[test]
    fn the_dentry_cache_is_bounded_and_keeps_what_is_in_use() {
        let root = Dentry::root(Arc::new(Everything));
        let held = root.lookup(b"held").unwrap();
        let parent = root.lookup(b"parent").unwrap();
        let _child = parent.lookup(b"child").unwrap();
        drop(parent);
        let n = MAX_CACHED_DENTRIES + 3000;
        for i in 0..n {
            root.lookup(format!("f{i}").as_bytes()).unwrap();
        }
        assert!(LIVE_DENTRIES.load(Ordering::Relaxed) <= MAX_CACHED_DENTRIES + 16, "bounded");
        let dropped = DROPPED.load(Ordering::Relaxed);
        assert!(
            dropped >= 3000 - 3,
            "evicted inodes are released: {dropped}, live {}",
            LIVE_DENTRIES.load(Ordering::Relaxed)
        );
        let kids = root.children.lock().unwrap();
        assert!(kids.get(&b"held"[..]).is_some_and(|d| Arc::ptr_eq(d, &held)), "held: kept");
        assert!(kids.contains_key(&b"parent"[..]), "a parent of a cached dentry: kept");
        assert!(kids.contains_key(format!("f{}", n - 1).as_bytes()), "the newest: kept");
    }

    #[test]
    fn the_eviction_queue_does_not_grow_with_dentries_that_are_gone() {
        let root = Dentry::root(Arc::new(Everything));
        for i in 0..50_000 {
            let name = format!("tmp{i}");
            root.lookup(name.as_bytes()).unwrap();
            root.forget_child(name.as_bytes());
        }
        let q = EVICTION.lock().unwrap().len();
        assert!(q < 2 * MAX_CACHED_DENTRIES + 4096, "queue of {q} entries");
    }
}
