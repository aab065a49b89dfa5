//! The memory overlay (`--overlay=memory`, the default root of `rvisor
//! do`): a read-only lower file system (the gofer's root) under a tmpfs
//! upper one, as Linux's overlayfs. Reads come from the lower layer until
//! a file is changed; the first change copies it up (data, mode, owner,
//! times, extended attributes; its parents first), and every change after
//! goes to the copy. Removing a name of the lower layer leaves a whiteout
//! (kept here, not as a device node) that hides the lower file for good:
//! a directory made where a lower one was removed shows none of the lower
//! one's entries (Linux's opaque directory). Inode numbers stay the lower
//! file's across a copy-up. Nothing is ever written to the lower layer:
//! writes never reach the host. Nodes are kept while something uses
//! them; those carrying what only the overlay knows (whiteouts, files
//! moved or linked) are kept for the sandbox's life.

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};

use rvisor_syscalls::Errno;

use crate::vfs::file::oflags::{O_ACCMODE, O_RDONLY, O_RDWR, O_TRUNC};
use crate::vfs::file::FileOps;
use crate::vfs::inode::{mode, DirEntry, FsStats, Inode, InodeAttr, InodeRef, Owner, SetAttr, TimeSet};

/// `statfs` type of overlayfs.
pub const OVERLAYFS_SUPER_MAGIC: u64 = 0x794c_7630;

/// Inode numbers of files only the upper layer has, above any the lower
/// one reports.
const UPPER_INO: u64 = 1 << 48;

/// Bytes copied per step of a copy-up.
const COPY_CHUNK: usize = 1 << 20;

/// One overlay.
struct Overlay {
    /// Serialises copy-ups (a file is copied once).
    copy: Mutex<()>,
    /// Changes of names (create, link, unlink, rename) exclude lookups,
    /// so a lookup cannot cache what a change just removed.
    names: RwLock<()>,
}

/// A file of the overlay: its lower file, its upper one, or both (a
/// directory on both layers is merged).
pub struct Node {
    ov: Arc<Overlay>,
    me: Weak<Node>,
    /// The directory it is in and its name there (none for the root).
    parent: Mutex<Option<(Arc<Node>, Vec<u8>)>>,
    lower: Option<InodeRef>,
    upper: Mutex<Option<InodeRef>>,
    /// The inode number reported (the lower file's, kept after a copy-up).
    ino: u64,
    dir: Mutex<DirState>,
    /// Removed from its directory: a copy-up would bring it back.
    removed: AtomicBool,
    /// Renamed: its lower file is not its directory's.
    moved: AtomicBool,
}

/// A looked-up child: kept only while used, or for good.
enum Child {
    Used(Weak<Node>),
    Kept(Arc<Node>),
}

impl Child {
    fn get(&self) -> Option<Arc<Node>> {
        match self {
            Child::Used(w) => w.upgrade(),
            Child::Kept(n) => Some(n.clone()),
        }
    }
}

#[derive(Default)]
struct DirState {
    /// Names whose lower files are hidden (removed, or replaced by a new
    /// file of the upper layer).
    whiteouts: BTreeSet<Vec<u8>>,
    /// Children looked up: one node per name.
    children: HashMap<Vec<u8>, Child>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// An overlay of `upper` (an empty tmpfs root) on `lower`.
pub fn new(lower: InodeRef, upper: InodeRef) -> InodeRef {
    let ov = Arc::new(Overlay { copy: Mutex::new(()), names: RwLock::new(()) });
    let ino = lower.attr().map_or(1, |a| a.ino);
    Node::make(&ov, None, Some(lower), Some(upper), ino)
}

impl Node {
    fn make(
        ov: &Arc<Overlay>,
        parent: Option<(Arc<Node>, Vec<u8>)>,
        lower: Option<InodeRef>,
        upper: Option<InodeRef>,
        ino: u64,
    ) -> Arc<Node> {
        Arc::new_cyclic(|me| Node {
            ov: ov.clone(),
            me: me.clone(),
            parent: Mutex::new(parent),
            lower,
            upper: Mutex::new(upper),
            ino,
            dir: Mutex::default(),
            removed: AtomicBool::new(false),
            moved: AtomicBool::new(false),
        })
    }

    /// Keeps this node (and its directories) for the sandbox's life: it
    /// carries what a new lookup would not find again.
    fn keep(&self) {
        let Ok(me) = self.self_arc() else { return };
        let parent = lock(&self.parent).clone();
        if let Some((p, name)) = parent {
            let mut d = lock(&p.dir);
            if d.children.get(&name).and_then(Child::get).is_some_and(|n| Arc::ptr_eq(&n, &me)) {
                d.children.insert(name, Child::Kept(me));
            }
            drop(d);
            p.keep();
        }
    }

    fn upper(&self) -> Option<InodeRef> {
        lock(&self.upper).clone()
    }

    /// The layer answering for the file now: the upper one once it exists.
    fn top(&self) -> Result<InodeRef, Errno> {
        self.upper().or_else(|| self.lower.clone()).ok_or(Errno::ENOENT)
    }

    fn self_arc(&self) -> Result<Arc<Node>, Errno> {
        self.me.upgrade().ok_or(Errno::ENOENT)
    }

    fn of(i: &InodeRef) -> Option<&Node> {
        i.as_any().downcast_ref::<Node>()
    }

    fn is_dir(&self) -> bool {
        self.top().and_then(|t| t.attr()).is_ok_and(|a| a.is_dir())
    }

    /// The child node for `name` with these layers (the one already
    /// looked up if it lives, so a file has one node).
    fn child(
        &self,
        name: &[u8],
        lower: Option<InodeRef>,
        upper: Option<InodeRef>,
    ) -> Result<Arc<Node>, Errno> {
        let mut d = lock(&self.dir);
        if let Some(n) = d.children.get(name).and_then(Child::get) {
            return Ok(n);
        }
        let ino = match (&lower, &upper) {
            (Some(l), _) => l.attr()?.ino,
            (None, Some(u)) => UPPER_INO | u.attr()?.ino,
            (None, None) => return Err(Errno::ENOENT),
        };
        let n = Node::make(&self.ov, Some((self.self_arc()?, name.to_vec())), lower, upper, ino);
        // Names of nodes no longer used go now and then.
        if d.children.len() >= 64 && d.children.len().is_power_of_two() {
            d.children.retain(|_, c| matches!(c, Child::Kept(_)) || c.get().is_some());
        }
        d.children.insert(name.to_vec(), Child::Used(Arc::downgrade(&n)));
        Ok(n)
    }

    /// Makes sure the file has its upper copy (copying up its directories
    /// first); returns it.
    fn copy_up(&self) -> Result<InodeRef, Errno> {
        if let Some(u) = self.upper() {
            return Ok(u);
        }
        if self.removed.load(Ordering::Acquire) {
            return Err(Errno::ENOENT);
        }
        let parent = lock(&self.parent).clone();
        let Some((parent, name)) = parent else { return Err(Errno::EROFS) };
        let up_dir = parent.copy_up()?;
        let _one = lock(&self.ov.copy);
        if let Some(u) = self.upper() {
            return Ok(u);
        }
        let lower = self.lower.clone().ok_or(Errno::ENOENT)?;
        let a = lower.attr()?;
        let owner = Owner { uid: a.uid, gid: a.gid };
        let perm = a.mode & 0o7777;
        let upper = match a.kind() {
            mode::S_IFDIR => up_dir.mkdir(&name, perm, owner)?,
            mode::S_IFREG => {
                let (u, out) = up_dir.create(&name, perm, owner, O_RDWR)?;
                if let Err(e) = copy_data(&lower, &*out, a.size) {
                    let _ = up_dir.unlink(&name, false);
                    return Err(e);
                }
                u
            }
            mode::S_IFLNK => up_dir.symlink(&name, &lower.readlink()?, owner)?,
            mode::S_IFIFO | mode::S_IFSOCK => up_dir.mknod(&name, a.mode, owner)?,
            // Device nodes are never copied up: the sandbox's devices are
            // its own `/dev`'s.
            _ => return Err(Errno::EPERM),
        };
        // The exact mode (set-id bits too), and the times.
        let _ = upper.setattr(&SetAttr {
            mode: Some(perm),
            atime: TimeSet::At(a.atime),
            mtime: TimeSet::At(a.mtime),
            ..SetAttr::default()
        });
        if let Ok(names) = lower.listxattr() {
            for n in names.split(|&b| b == 0).filter(|n| !n.is_empty()) {
                if let Ok(v) = lower.getxattr(n, 0) {
                    let _ = upper.setxattr(n, &v, 0);
                }
            }
        }
        *lock(&self.upper) = Some(upper.clone());
        Ok(upper)
    }

    /// The child `name` (the caller holds `names`).
    fn find(&self, name: &[u8]) -> Result<Arc<Node>, Errno> {
        let whited = {
            let d = lock(&self.dir);
            if let Some(n) = d.children.get(name).and_then(Child::get) {
                return Ok(n);
            }
            d.whiteouts.contains(name)
        };
        let upper = match self.upper() {
            Some(u) => match u.lookup(name) {
                Ok(c) => Some(c),
                Err(Errno::ENOENT) => None,
                Err(e) => return Err(e),
            },
            None => None,
        };
        let upper_is_dir = upper.as_ref().map(|u| u.attr().is_ok_and(|a| a.is_dir()));
        let lower = match (&self.lower, upper_is_dir) {
            // A file of the upper layer hides the lower one's.
            (_, Some(false)) => None,
            (Some(l), _) if !whited => match l.lookup(name) {
                Ok(c) => Some(c),
                Err(Errno::ENOENT) => None,
                Err(e) => return Err(e),
            },
            _ => None,
        };
        // Both directories merge; a lower non-directory under an upper
        // directory is hidden.
        let lower = match (lower, upper_is_dir) {
            (Some(l), Some(true)) if !l.attr().is_ok_and(|a| a.is_dir()) => None,
            (l, _) => l,
        };
        if upper.is_none() && lower.is_none() {
            return Err(Errno::ENOENT);
        }
        self.child(name, lower, upper)
    }

    /// Whether the directory, as the overlay shows it, has no entries.
    fn is_empty_dir(&self) -> Result<bool, Errno> {
        Ok(self.entries()?.iter().all(|e| e.name == b"." || e.name == b".."))
    }

    /// The merged entries: the upper layer's, then the lower one's not
    /// shadowed, whited out or hidden.
    fn entries(&self) -> Result<Vec<DirEntry>, Errno> {
        let whiteouts = lock(&self.dir).whiteouts.clone();
        let mut out = Vec::new();
        let mut seen = BTreeSet::new();
        let add = |e: DirEntry, out: &mut Vec<DirEntry>, seen: &mut BTreeSet<Vec<u8>>| {
            if seen.insert(e.name.clone()) {
                out.push(e);
            }
        };
        if let Some(u) = self.upper() {
            for e in all_entries(&u)? {
                let mut e = e;
                if e.name != b"." && e.name != b".." {
                    // Upper-only files report their overlay inode numbers.
                    e.ino = self.child_ino(&e.name).unwrap_or(UPPER_INO | e.ino);
                }
                add(e, &mut out, &mut seen);
            }
        }
        if let Some(l) = &self.lower {
            for e in all_entries(l)? {
                if !whiteouts.contains(&e.name) {
                    add(e, &mut out, &mut seen);
                }
            }
        }
        if out.iter().all(|e| e.name != b".") {
            out.insert(0, DirEntry { ino: self.ino, typ: 4, name: b".".to_vec() });
        }
        Ok(out)
    }

    /// The inode number a looked-up child reports.
    fn child_ino(&self, name: &[u8]) -> Option<u64> {
        lock(&self.dir).children.get(name).and_then(Child::get).map(|n| n.ino)
    }

    /// The upper directory a new name goes in (a whiteout of the name
    /// stays: the lower file remains hidden under the new one).
    fn prepare_new(&self) -> Result<InodeRef, Errno> {
        self.copy_up()
    }

    fn adopt(&self, name: &[u8], upper: InodeRef) -> Result<InodeRef, Errno> {
        lock(&self.dir).children.remove(name);
        Ok(self.child(name, None, Some(upper))?)
    }

    /// `c`, named `name`, is gone from this directory: the lower file of
    /// that name, if this directory's lower layer has it, is whited out.
    fn gone(&self, name: &[u8], c: &Node) {
        let whiteout = c.lower.is_some() && !c.moved.load(Ordering::Acquire);
        {
            let mut d = lock(&self.dir);
            d.children.remove(name);
            if whiteout {
                d.whiteouts.insert(name.to_vec());
            }
        }
        c.removed.store(true, Ordering::Release);
        if whiteout {
            self.keep();
        }
    }
}

/// Every entry of `dir` (all of its `readdir` pages).
fn all_entries(dir: &InodeRef) -> Result<Vec<DirEntry>, Errno> {
    let mut out = Vec::new();
    let mut cookie = 0;
    loop {
        let page = dir.readdir(cookie)?;
        let Some(&(_, last)) = page.last() else { break };
        out.extend(page.into_iter().map(|(e, _)| e));
        if last == cookie || out.len() > 1 << 20 {
            break;
        }
        cookie = last;
    }
    Ok(out)
}

/// Copies `size` bytes of `lower` into `out`.
fn copy_data(lower: &InodeRef, out: &dyn FileOps, size: u64) -> Result<(), Errno> {
    let src = lower.open(O_RDONLY)?;
    let mut buf = vec![0u8; COPY_CHUNK.min(usize::try_from(size).unwrap_or(COPY_CHUNK)).max(1)];
    let mut off = 0u64;
    while off < size {
        let n = src.read_at(&mut buf, off)?;
        if n == 0 {
            break;
        }
        let mut done = 0;
        while done < n {
            let w = out.write_at(&buf[done..n], off + done as u64)?;
            if w == 0 {
                return Err(Errno::EIO);
            }
            done += w;
        }
        off += n as u64;
    }
    Ok(())
}

impl Inode for Node {
    fn attr(&self) -> Result<InodeAttr, Errno> {
        let mut a = self.top()?.attr()?;
        a.ino = self.ino;
        Ok(a)
    }

    fn lookup(&self, name: &[u8]) -> Result<InodeRef, Errno> {
        let _names = self.ov.names.read().unwrap_or_else(|p| p.into_inner());
        Ok(self.find(name)?)
    }
    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        self.top()?.readlink()
    }

    fn open(&self, flags: u32) -> Result<Box<dyn FileOps>, Errno> {
        if flags & O_ACCMODE != O_RDONLY || flags & O_TRUNC != 0 {
            return self.copy_up()?.open(flags);
        }
        self.top()?.open(flags)
    }

    fn create(
        &self,
        name: &[u8],
        m: u32,
        owner: Owner,
        flags: u32,
    ) -> Result<(InodeRef, Box<dyn FileOps>), Errno> {
        let _names = self.ov.names.write().unwrap_or_else(|p| p.into_inner());
        let (u, f) = self.prepare_new()?.create(name, m, owner, flags)?;
        Ok((self.adopt(name, u)?, f))
    }

    fn mkdir(&self, name: &[u8], m: u32, owner: Owner) -> Result<InodeRef, Errno> {
        let _names = self.ov.names.write().unwrap_or_else(|p| p.into_inner());
        let u = self.prepare_new()?.mkdir(name, m, owner)?;
        self.adopt(name, u)
    }

    fn mknod(&self, name: &[u8], m: u32, owner: Owner) -> Result<InodeRef, Errno> {
        let _names = self.ov.names.write().unwrap_or_else(|p| p.into_inner());
        let u = self.prepare_new()?.mknod(name, m, owner)?;
        self.adopt(name, u)
    }

    fn symlink(&self, name: &[u8], target: &[u8], owner: Owner) -> Result<InodeRef, Errno> {
        let _names = self.ov.names.write().unwrap_or_else(|p| p.into_inner());
        let u = self.prepare_new()?.symlink(name, target, owner)?;
        self.adopt(name, u)
    }

    fn link(&self, name: &[u8], target: &InodeRef) -> Result<InodeRef, Errno> {
        let _names = self.ov.names.write().unwrap_or_else(|p| p.into_inner());
        let t = Node::of(target).ok_or(Errno::EXDEV)?;
        if !Arc::ptr_eq(&t.ov, &self.ov) {
            return Err(Errno::EXDEV);
        }
        let tu = t.copy_up()?;
        self.prepare_new()?.link(name, &tu)?;
        // The new name is the same file: the same node answers for it.
        let n = t.self_arc()?;
        n.keep();
        lock(&self.dir).children.insert(name.to_vec(), Child::Kept(n.clone()));
        self.keep();
        Ok(n)
    }

    fn unlink(&self, name: &[u8], dir: bool) -> Result<(), Errno> {
        let _names = self.ov.names.write().unwrap_or_else(|p| p.into_inner());
        let c = self.find(name)?;
        let is_dir = c.is_dir();
        if dir && !is_dir {
            return Err(Errno::ENOTDIR);
        }
        if !dir && is_dir {
            return Err(Errno::EISDIR);
        }
        if dir && !c.is_empty_dir()? {
            return Err(Errno::ENOTEMPTY);
        }
        if let Some(_u) = c.upper() {
            let up = self.copy_up()?;
            up.unlink(name, dir)?;
        }
        self.gone(name, &c);
        Ok(())
    }

    fn rename(&self, name: &[u8], new_dir: &InodeRef, new_name: &[u8], flags: u32) -> Result<(), Errno> {
        let _names = self.ov.names.write().unwrap_or_else(|p| p.into_inner());
        const EXCHANGE: u32 = 2;
        let to = Node::of(new_dir).ok_or(Errno::EXDEV)?;
        if !Arc::ptr_eq(&to.ov, &self.ov) {
            return Err(Errno::EXDEV);
        }
        let src = self.find(name)?;
        let dst = match to.find(new_name) {
            Ok(d) => Some(d),
            Err(Errno::ENOENT) => None,
            Err(e) => return Err(e),
        };
        // Moving a directory the lower layer has would need its lower
        // entries to move too (overlayfs without `redirect_dir`): `EXDEV`,
        // and `mv` copies instead. Exchanges likewise.
        if src.is_dir() && src.lower.is_some() {
            return Err(Errno::EXDEV);
        }
        if flags & EXCHANGE != 0 && (src.lower.is_some() || dst.as_ref().is_some_and(|d| d.lower.is_some())) {
            return Err(Errno::EXDEV);
        }
        if let Some(d) = &dst {
            if Arc::ptr_eq(d, &src) {
                return Ok(());
            }
            if flags & EXCHANGE == 0 && d.is_dir() && !d.is_empty_dir()? {
                return Err(Errno::ENOTEMPTY);
            }
        }
        src.copy_up()?;
        let from_up = self.copy_up()?;
        let to_up = to.copy_up()?;
        from_up.rename(name, &to_up, new_name, flags)?;
        self.gone(name, &src);
        src.removed.store(false, Ordering::Release);
        src.moved.store(true, Ordering::Release);
        if flags & EXCHANGE != 0 {
            if let Some(d) = &dst {
                *lock(&d.parent) = Some((self.self_arc()?, name.to_vec()));
                d.moved.store(true, Ordering::Release);
                lock(&self.dir).children.insert(name.to_vec(), Child::Kept(d.clone()));
                self.keep();
            }
        } else if let Some(d) = &dst {
            d.removed.store(true, Ordering::Release);
        }
        let whiteout = dst.as_ref().is_some_and(|d| d.lower.is_some() && !d.moved.load(Ordering::Acquire));
        {
            let mut td = lock(&to.dir);
            if whiteout && flags & EXCHANGE == 0 {
                // The lower target stays hidden under the moved file.
                td.whiteouts.insert(new_name.to_vec());
            }
            td.children.insert(new_name.to_vec(), Child::Kept(src.clone()));
        }
        *lock(&src.parent) = Some((to.self_arc()?, new_name.to_vec()));
        to.keep();
        Ok(())
    }

    fn readdir(&self, cookie: u64) -> Result<Vec<(DirEntry, u64)>, Errno> {
        // The whole merged listing at once, cookies by position: the
        // directory file keeps what it has not returned yet.
        let all = self.entries()?;
        let start = usize::try_from(cookie).unwrap_or(usize::MAX);
        Ok(all.into_iter().enumerate().skip(start).map(|(i, e)| (e, i as u64 + 1)).collect())
    }

    fn setattr(&self, a: &SetAttr) -> Result<(), Errno> {
        self.copy_up()?.setattr(a)
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        let mut s = match &self.lower {
            Some(l) => l.statfs()?,
            None => self.top()?.statfs()?,
        };
        s.fs_type = OVERLAYFS_SUPER_MAGIC;
        Ok(s)
    }

    fn getxattr(&self, name: &[u8], size: usize) -> Result<Vec<u8>, Errno> {
        self.top()?.getxattr(name, size)
    }

    fn setxattr(&self, name: &[u8], value: &[u8], flags: u32) -> Result<(), Errno> {
        self.copy_up()?.setxattr(name, value, flags)
    }

    fn listxattr(&self) -> Result<Vec<u8>, Errno> {
        self.top()?.listxattr()
    }

    fn removexattr(&self, name: &[u8]) -> Result<(), Errno> {
        self.copy_up()?.removexattr(name)
    }

    fn fsync(&self) -> Result<(), Errno> {
        self.top()?.fsync()
    }

    fn invalidate(&self) {
        if let Ok(t) = self.top() {
            t.invalidate();
        }
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
