//! tmpfs: a file system in the sentry's memory (`/dev/shm`, `rvisor do
//! --tmpfs DIR`, a spec's `tmpfs` mounts).
//!
//! Directories, symbolic links, FIFO and socket nodes, attributes and
//! extended attributes are the sentry's own objects. A regular file's
//! contents live in a host memfd the sentry creates for it, as memfds'
//! do (`memfd.rs`): reads, writes, truncation and mappings go through
//! it like a file the gofer donated, and its size is the memfd's; its
//! times are kept here, as every other inode's. Nothing here touches the
//! host's file systems.

use std::collections::BTreeMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use rvisor_syscalls::abi::Timespec;
use rvisor_syscalls::Errno;

use super::gofer::{host, HostBackedFile};
use crate::vfs::file::oflags::O_TRUNC;
use crate::vfs::file::FileOps;
use crate::vfs::inode::{mode, DirEntry, FsStats, Inode, InodeAttr, InodeRef, Owner, SetAttr, TimeSet};
use crate::vfs::mflags;

/// `statfs` type of tmpfs.
pub const TMPFS_MAGIC: u64 = 0x0102_1994;

/// What Linux's tmpfs counts per directory entry in a directory's size.
const BOGO_DIRENT_SIZE: u64 = 20;

/// Longest name.
const NAME_MAX: usize = 255;

/// Most extended-attribute bytes (names and values) one inode holds.
const XATTR_BYTES: usize = 64 << 10;

/// A tmpfs mount's options (`mount -t tmpfs -o …`).
#[derive(Debug, PartialEq, Eq)]
pub struct Options {
    /// Size `statfs` reports.
    pub bytes: u64,
    /// The root's permission bits.
    pub mode: u32,
    /// The root's owner.
    pub owner: Owner,
    /// `mflags` of the mount.
    pub flags: u32,
}

impl Options {
    /// Parses `opts`; `memory`: the sandbox's memory (the default size is
    /// half of it, `size=N%` a share of it).
    pub fn parse<'a>(opts: impl IntoIterator<Item = &'a str>, memory: u64) -> Result<Options, Errno> {
        let mut t = Options { bytes: memory / 2, mode: 0o1777, owner: Owner { uid: 0, gid: 0 }, flags: 0 };
        for o in opts.into_iter().filter(|o| !o.is_empty()) {
            let (k, v) = o.split_once('=').unwrap_or((o, ""));
            let num = |v: &str| v.parse::<u64>().map_err(|_| Errno::EINVAL);
            match k {
                "size" => {
                    let (n, mul) = match v.as_bytes().last() {
                        Some(b'k' | b'K') => (&v[..v.len() - 1], 1 << 10),
                        Some(b'm' | b'M') => (&v[..v.len() - 1], 1 << 20),
                        Some(b'g' | b'G') => (&v[..v.len() - 1], 1 << 30),
                        Some(b'%') => (&v[..v.len() - 1], 0),
                        _ => (v, 1),
                    };
                    let n = num(n)?;
                    t.bytes = if mul == 0 { memory / 100 * n.min(100) } else { n.saturating_mul(mul) };
                }
                "mode" => t.mode = u32::from_str_radix(v, 8).map_err(|_| Errno::EINVAL)? & 0o7777,
                "uid" => t.owner.uid = u32::try_from(num(v)?).map_err(|_| Errno::EINVAL)?,
                "gid" => t.owner.gid = u32::try_from(num(v)?).map_err(|_| Errno::EINVAL)?,
                "ro" => t.flags |= mflags::RDONLY,
                "rw" => t.flags &= !mflags::RDONLY,
                "nosuid" => t.flags |= mflags::NOSUID,
                "nodev" => t.flags |= mflags::NODEV,
                "noexec" => t.flags |= mflags::NOEXEC,
                // What only changes how Linux keeps its pages.
                "suid" | "dev" | "exec" | "nr_inodes" | "nr_blocks" | "huge" | "mpol" | "relatime"
                | "noatime" | "strictatime" | "nostrictatime" | "rprivate" | "private" | "rshared"
                | "shared" | "rslave" | "slave" | "inode64" | "inode32" => {}
                _ => return Err(Errno::EINVAL),
            }
        }
        Ok(t)
    }
}

/// One tmpfs instance.
pub struct Tmpfs {
    next_ino: AtomicU64,
    /// Inodes that exist.
    inodes: AtomicU64,
    max_inodes: u64,
    /// Size `statfs` reports, in 4 KiB blocks.
    blocks: u64,
    /// The space regular files take (`size=`, enforced).
    space: Arc<super::gofer::SpacePool>,
    /// Serialises renames (two directories are locked in address order
    /// under it).
    rename: Mutex<()>,
}

enum Kind {
    Dir(Mutex<Dir>),
    /// The contents, and the lock that keeps `O_APPEND` writes of every
    /// open whole.
    Reg(Arc<OwnedFd>, Arc<Mutex<()>>, Arc<super::gofer::FileSpace>),
    Symlink(Vec<u8>),
    /// FIFO or socket node (the VFS finds their objects by device and
    /// inode number).
    Node,
}

#[derive(Default)]
struct Dir {
    /// Name → (child, its position).
    children: BTreeMap<Vec<u8>, (Arc<Node>, u64)>,
    /// Position → name: `readdir` order and cookies that survive
    /// removals.
    order: BTreeMap<u64, Vec<u8>>,
    next_pos: u64,
    parent: Weak<Node>,
    /// Removed: nothing may be created in it (Linux's `S_DEAD`).
    dead: bool,
}

/// First position of a child: cookies 0 and 1 are `.` and `..`.
const FIRST_POS: u64 = 2;

impl Dir {
    fn insert(&mut self, name: &[u8], n: Arc<Node>) {
        let pos = self.next_pos.max(FIRST_POS);
        self.next_pos = pos + 1;
        self.order.insert(pos, name.to_vec());
        self.children.insert(name.to_vec(), (n, pos));
    }

    fn remove(&mut self, name: &[u8]) -> Option<Arc<Node>> {
        let (n, pos) = self.children.remove(name)?;
        self.order.remove(&pos);
        Some(n)
    }

    fn get(&self, name: &[u8]) -> Option<Arc<Node>> {
        self.children.get(name).map(|(n, _)| n.clone())
    }
}

#[derive(Clone)]
struct Meta {
    mode: u32,
    uid: u32,
    gid: u32,
    nlink: u64,
    atime: Timespec,
    mtime: Timespec,
    ctime: Timespec,
    xattrs: BTreeMap<Vec<u8>, Vec<u8>>,
}

/// A tmpfs inode.
pub struct Node {
    me: Weak<Node>,
    fs: Arc<Tmpfs>,
    ino: u64,
    meta: Mutex<Meta>,
    kind: Kind,
    /// An `O_TMPFILE` file `linkat` may still give a first name.
    linkable: std::sync::atomic::AtomicBool,
}

/// The host memfd holding a regular file's contents.
fn new_memfd() -> Result<std::os::fd::OwnedFd, Errno> {
    rustix::fs::memfd_create("rvisor-tmpfs", rustix::fs::MemfdFlags::CLOEXEC).map_err(|e| match host(e) {
        Errno::EMFILE | Errno::ENFILE => Errno::ENOSPC,
        e => e,
    })
}

impl Drop for Node {
    fn drop(&mut self) {
        self.fs.inodes.fetch_sub(1, Ordering::Relaxed);
    }
}

fn now() -> Timespec {
    crate::syscalls::time::now(0).unwrap_or_default()
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A new tmpfs of `bytes` (what `statfs` reports) whose root is owned by
/// `owner` with permission bits `perm`.
pub fn new(bytes: u64, perm: u32, owner: Owner) -> InodeRef {
    let fs = Arc::new(Tmpfs {
        next_ino: AtomicU64::new(1),
        inodes: AtomicU64::new(0),
        // Linux's default: half the memory's pages.
        max_inodes: (bytes / 8192).max(1024),
        blocks: bytes / 4096,
        space: super::gofer::SpacePool::new(bytes),
        rename: Mutex::new(()),
    });
    fs.inodes.fetch_add(1, Ordering::Relaxed);
    Node::build(&fs, mode::S_IFDIR | (perm & 0o7777), owner, 2, Kind::Dir(Mutex::default()))
}

fn check_name(name: &[u8]) -> Result<(), Errno> {
    if name.len() > NAME_MAX {
        Err(Errno::ENAMETOOLONG)
    } else {
        Ok(())
    }
}

impl Node {
    fn make(fs: &Arc<Tmpfs>, mode: u32, owner: Owner, nlink: u64, kind: Kind) -> Result<Arc<Node>, Errno> {
        if fs.inodes.fetch_add(1, Ordering::Relaxed) >= fs.max_inodes {
            fs.inodes.fetch_sub(1, Ordering::Relaxed);
            return Err(Errno::ENOSPC);
        }
        Ok(Node::build(fs, mode, owner, nlink, kind))
    }

    /// A new inode, counted already.
    fn build(fs: &Arc<Tmpfs>, mode: u32, owner: Owner, nlink: u64, kind: Kind) -> Arc<Node> {
        let t = now();
        Arc::new_cyclic(|me| Node {
            me: me.clone(),
            fs: fs.clone(),
            ino: fs.next_ino.fetch_add(1, Ordering::Relaxed),
            meta: Mutex::new(Meta {
                mode,
                uid: owner.uid,
                gid: owner.gid,
                nlink,
                atime: t,
                mtime: t,
                ctime: t,
                xattrs: BTreeMap::new(),
            }),
            kind,
            linkable: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// The `Arc` this inode lives in.
    fn self_arc(&self) -> Result<Arc<Node>, Errno> {
        self.me.upgrade().ok_or(Errno::ENOENT)
    }

    fn dir(&self) -> Result<MutexGuard<'_, Dir>, Errno> {
        match &self.kind {
            Kind::Dir(d) => Ok(lock(d)),
            _ => Err(Errno::ENOTDIR),
        }
    }

    fn is_dir(&self) -> bool {
        matches!(self.kind, Kind::Dir(_))
    }

    /// The contents changed (a directory's entries, a file's data).
    fn touch_dir(&self) {
        let t = now();
        let mut m = lock(&self.meta);
        m.mtime = t;
        m.ctime = t;
    }

    fn changed(&self) {
        lock(&self.meta).ctime = now();
    }

    fn add_links(&self, delta: i64) {
        let mut m = lock(&self.meta);
        m.nlink = m.nlink.saturating_add_signed(delta);
        m.ctime = now();
    }

    /// Adds `child` as `name` (which must be free).
    fn add_child(self: &Arc<Self>, name: &[u8], child: &Arc<Node>) -> Result<(), Errno> {
        check_name(name)?;
        let mut d = self.dir()?;
        if d.dead {
            return Err(Errno::ENOENT);
        }
        if d.children.contains_key(name) {
            return Err(Errno::EEXIST);
        }
        if let Kind::Dir(cd) = &child.kind {
            lock(cd).parent = Arc::downgrade(self);
        }
        d.insert(name, child.clone());
        drop(d);
        if child.is_dir() {
            self.add_links(1);
        }
        self.touch_dir();
        Ok(())
    }

    fn regular_file(
        &self,
        fd: &Arc<OwnedFd>,
        append: &Arc<Mutex<()>>,
        space: &Arc<super::gofer::FileSpace>,
        flags: u32,
    ) -> Result<Box<dyn FileOps>, Errno> {
        if flags & O_TRUNC != 0 {
            rustix::fs::ftruncate(&**fd, 0).map_err(host)?;
            space.truncate(0);
            self.touch_dir();
        }
        // Writes and truncations through the file change its times.
        let me = self.me.clone();
        let hook = Arc::new(move || {
            if let Some(n) = me.upgrade() {
                n.touch_dir();
            }
        });
        Ok(Box::new(HostBackedFile::with_hook(fd.clone(), append.clone(), hook).with_space(space.clone())))
    }

    /// A new regular file of this file system (`nlink` 0 or 1) and its
    /// open file.
    fn new_regular(
        &self,
        m: u32,
        owner: Owner,
        nlink: u64,
        flags: u32,
    ) -> Result<(Arc<Node>, Box<dyn FileOps>), Errno> {
        let fd = Arc::new(new_memfd()?);
        let append = Arc::new(Mutex::new(()));
        let space = super::gofer::FileSpace::new(&self.fs.space);
        let kind = Kind::Reg(fd.clone(), append.clone(), space.clone());
        let n = Node::make(&self.fs, mode::S_IFREG | (m & 0o7777), owner, nlink, kind)?;
        let f = n.regular_file(&fd, &append, &space, flags & !O_TRUNC)?;
        Ok((n, f))
    }

    fn of(i: &InodeRef) -> Option<&Node> {
        i.as_any().downcast_ref::<Node>()
    }
}

impl Inode for Node {
    fn attr(&self) -> Result<InodeAttr, Errno> {
        let m = lock(&self.meta).clone();
        let mut a = InodeAttr {
            ino: self.ino,
            dev: 0,
            mode: m.mode,
            nlink: m.nlink,
            uid: m.uid,
            gid: m.gid,
            rdev: 0,
            size: 0,
            blksize: 4096,
            blocks: 0,
            atime: m.atime,
            mtime: m.mtime,
            ctime: m.ctime,
        };
        match &self.kind {
            Kind::Dir(d) => a.size = (lock(d).children.len() as u64 + 2) * BOGO_DIRENT_SIZE,
            Kind::Symlink(t) => a.size = t.len() as u64,
            Kind::Reg(fd, ..) => {
                let h = rustix::fs::fstat(&**fd).map_err(host)?;
                a.size = h.st_size.cast_unsigned();
                a.blocks = h.st_blocks.cast_unsigned();
            }
            Kind::Node => {}
        }
        Ok(a)
    }

    fn lookup(&self, name: &[u8]) -> Result<InodeRef, Errno> {
        let d = self.dir()?;
        d.get(name).map(|n| n as InodeRef).ok_or(Errno::ENOENT)
    }

    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        match &self.kind {
            Kind::Symlink(t) => Ok(t.clone()),
            _ => Err(Errno::EINVAL),
        }
    }

    fn open(&self, flags: u32) -> Result<Box<dyn FileOps>, Errno> {
        match &self.kind {
            Kind::Reg(fd, append, space) => self.regular_file(fd, append, space, flags),
            _ => Err(Errno::ENXIO),
        }
    }

    fn tmpfile(
        &self,
        m: u32,
        owner: Owner,
        flags: u32,
        linkable: bool,
    ) -> Result<(InodeRef, Box<dyn FileOps>), Errno> {
        drop(self.dir()?);
        let (n, f) = self.new_regular(m, owner, 0, flags)?;
        n.linkable.store(linkable, Ordering::Relaxed);
        Ok((n, f))
    }

    fn create(
        &self,
        name: &[u8],
        m: u32,
        owner: Owner,
        flags: u32,
    ) -> Result<(InodeRef, Box<dyn FileOps>), Errno> {
        let me = self.self_arc()?;
        let (n, f) = self.new_regular(m, owner, 1, flags)?;
        me.add_child(name, &n)?;
        Ok((n, f))
    }

    fn mkdir(&self, name: &[u8], m: u32, owner: Owner) -> Result<InodeRef, Errno> {
        let me = self.self_arc()?;
        let n = Node::make(&self.fs, mode::S_IFDIR | (m & 0o7777), owner, 2, Kind::Dir(Mutex::default()))?;
        me.add_child(name, &n)?;
        Ok(n)
    }

    fn mknod(&self, name: &[u8], m: u32, owner: Owner) -> Result<InodeRef, Errno> {
        if !matches!(m & mode::S_IFMT, mode::S_IFIFO | mode::S_IFSOCK) {
            return Err(Errno::EPERM);
        }
        let me = self.self_arc()?;
        let n = Node::make(&self.fs, m, owner, 1, Kind::Node)?;
        me.add_child(name, &n)?;
        Ok(n)
    }

    fn symlink(&self, name: &[u8], target: &[u8], owner: Owner) -> Result<InodeRef, Errno> {
        let me = self.self_arc()?;
        if target.len() >= 4096 {
            return Err(Errno::ENAMETOOLONG);
        }
        let n = Node::make(&self.fs, mode::S_IFLNK | 0o777, owner, 1, Kind::Symlink(target.to_vec()))?;
        me.add_child(name, &n)?;
        Ok(n)
    }

    fn link(&self, name: &[u8], target: &InodeRef) -> Result<InodeRef, Errno> {
        let me = self.self_arc()?;
        let t = Node::of(target).ok_or(Errno::EXDEV)?;
        if !Arc::ptr_eq(&t.fs, &self.fs) {
            return Err(Errno::EXDEV);
        }
        if t.is_dir() {
            return Err(Errno::EPERM);
        }
        // A removed file has no name to come back to, an O_TMPFILE one
        // may get its first.
        let first_name = lock(&t.meta).nlink == 0;
        if first_name && !t.linkable.swap(false, Ordering::Relaxed) {
            return Err(Errno::ENOENT);
        }
        // A link that fails (the name exists, the directory is gone)
        // leaves an O_TMPFILE file as linkable as it was.
        let added = t.self_arc().and_then(|t| me.add_child(name, &t).map(|()| t));
        match added {
            Ok(t) => {
                t.add_links(1);
                Ok(t)
            }
            Err(e) => {
                if first_name {
                    t.linkable.store(true, Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }

    fn unlink(&self, name: &[u8], dir: bool) -> Result<(), Errno> {
        // No rename runs meanwhile (it may lock a child before its parent).
        let _one = lock(&self.fs.rename);
        let mut d = self.dir()?;
        let n = d.get(name).ok_or(Errno::ENOENT)?;
        if dir {
            let Kind::Dir(cd) = &n.kind else { return Err(Errno::ENOTDIR) };
            // Empty, and dead before anything can be created in it.
            let mut c = lock(cd);
            if !c.children.is_empty() {
                return Err(Errno::ENOTEMPTY);
            }
            c.dead = true;
        } else if n.is_dir() {
            return Err(Errno::EISDIR);
        }
        d.remove(name);
        drop(d);
        if dir {
            n.add_links(-2);
            self.add_links(-1);
        } else {
            n.add_links(-1);
        }
        self.touch_dir();
        Ok(())
    }

    fn rename(&self, name: &[u8], new_dir: &InodeRef, new_name: &[u8], flags: u32) -> Result<(), Errno> {
        const NOREPLACE: u32 = 1;
        const EXCHANGE: u32 = 2;
        check_name(new_name)?;
        let to = Node::of(new_dir).ok_or(Errno::EXDEV)?;
        if !Arc::ptr_eq(&to.fs, &self.fs) {
            return Err(Errno::EXDEV);
        }
        let _one = lock(&self.fs.rename);
        let same = std::ptr::eq(self, to);
        // Two directories locked in address order.
        let (mut a, mut b) = if same {
            (self.dir()?, None)
        } else if (self as *const Node) < (to as *const Node) {
            let a = self.dir()?;
            (a, Some(to.dir()?))
        } else {
            let b = to.dir()?;
            (self.dir()?, Some(b))
        };
        let src = a.get(name).ok_or(Errno::ENOENT)?;
        if b.as_ref().map_or(a.dead, |b| b.dead) {
            return Err(Errno::ENOENT);
        }
        let dst = match &b {
            Some(b) => b.get(new_name),
            None => a.get(new_name),
        };
        if let Some(d) = &dst {
            if Arc::ptr_eq(d, &src) {
                return Ok(());
            }
            // The target is one of the two directories (locked here):
            // an ancestor of the source.
            if std::ptr::eq(&**d, self) || std::ptr::eq(&**d, to) {
                return Err(if flags & EXCHANGE != 0 { Errno::EINVAL } else { Errno::ENOTEMPTY });
            }
            if flags & NOREPLACE != 0 {
                return Err(Errno::EEXIST);
            }
            if flags & EXCHANGE == 0 {
                if src.is_dir() != d.is_dir() {
                    return Err(if src.is_dir() { Errno::ENOTDIR } else { Errno::EISDIR });
                }
                if let Kind::Dir(dd) = &d.kind {
                    // Empty, and dead before anything is created in it.
                    let mut dd = lock(dd);
                    if !dd.children.is_empty() {
                        return Err(Errno::ENOTEMPTY);
                    }
                    dd.dead = true;
                }
            }
        } else if flags & EXCHANGE != 0 {
            return Err(Errno::ENOENT);
        }
        let to_arc = if same { None } else { Some(to.self_arc()?) };
        let from_arc = self.self_arc()?;
        a.remove(name);
        let target_dir = b.as_mut().unwrap_or(&mut a);
        let replaced = target_dir.remove(new_name);
        target_dir.insert(new_name, src.clone());
        if flags & EXCHANGE != 0 {
            if let Some(r) = &replaced {
                a.insert(name, r.clone());
            }
        }
        drop((a, b));
        // Parents of moved directories, and the links they hold.
        let new_parent = to_arc.clone().unwrap_or_else(|| from_arc.clone());
        let set_parent = |n: &Arc<Node>, p: &Arc<Node>| {
            if let Kind::Dir(d) = &n.kind {
                lock(d).parent = Arc::downgrade(p);
            }
        };
        set_parent(&src, &new_parent);
        if !same {
            if src.is_dir() {
                self.add_links(-1);
                to.add_links(1);
            }
            if flags & EXCHANGE != 0 {
                if let Some(r) = replaced.as_ref().filter(|r| r.is_dir()) {
                    set_parent(r, &from_arc);
                    self.add_links(1);
                    to.add_links(-1);
                }
            }
        }
        if flags & EXCHANGE == 0 {
            if let Some(r) = &replaced {
                if r.is_dir() {
                    r.add_links(-2);
                    to.add_links(-1);
                } else {
                    r.add_links(-1);
                }
            }
        }
        src.changed();
        self.touch_dir();
        to.touch_dir();
        Ok(())
    }

    fn readdir(&self, cookie: u64) -> Result<Vec<(DirEntry, u64)>, Errno> {
        let d = self.dir()?;
        let dt = |m: u32| u8::try_from((m & mode::S_IFMT) >> 12).unwrap_or(0);
        let mut out = Vec::new();
        if cookie == 0 {
            out.push((DirEntry { ino: self.ino, typ: 4, name: b".".to_vec() }, 1));
        }
        if cookie <= 1 {
            let up = d.parent.upgrade().map_or(self.ino, |p| p.ino);
            out.push((DirEntry { ino: up, typ: 4, name: b"..".to_vec() }, FIRST_POS));
        }
        for (&pos, name) in d.order.range(cookie.max(FIRST_POS)..) {
            if let Some((n, _)) = d.children.get(name) {
                let m = lock(&n.meta).mode;
                out.push((DirEntry { ino: n.ino, typ: dt(m), name: name.clone() }, pos + 1));
            }
            if out.len() >= 512 {
                break;
            }
        }
        Ok(out)
    }

    fn setattr(&self, a: &SetAttr) -> Result<(), Errno> {
        if let Some(size) = a.size {
            match &self.kind {
                Kind::Reg(fd, _, space) => {
                    rustix::fs::ftruncate(&**fd, size).map_err(host)?;
                    space.truncate(size);
                    self.touch_dir();
                }
                Kind::Dir(_) => return Err(Errno::EISDIR),
                _ => return Err(Errno::EINVAL),
            }
        }
        let t = now();
        let pick = |s: TimeSet, old: Timespec| match s {
            TimeSet::Omit => old,
            TimeSet::Now => t,
            TimeSet::At(v) => v,
        };
        let mut m = lock(&self.meta);
        if let Some(mode) = a.mode {
            m.mode = (m.mode & mode::S_IFMT) | (mode & 0o7777);
        }
        if let Some(uid) = a.uid {
            m.uid = uid;
        }
        if let Some(gid) = a.gid {
            m.gid = gid;
        }
        m.atime = pick(a.atime, m.atime);
        m.mtime = pick(a.mtime, m.mtime);
        m.ctime = t;
        Ok(())
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        let used = self.fs.inodes.load(Ordering::Relaxed);
        Ok(FsStats {
            fs_type: TMPFS_MAGIC,
            bsize: 4096,
            blocks: self.fs.blocks,
            bfree: self.fs.blocks.saturating_sub(self.fs.space.used()),
            bavail: self.fs.blocks.saturating_sub(self.fs.space.used()),
            files: self.fs.max_inodes,
            ffree: self.fs.max_inodes.saturating_sub(used),
            namelen: NAME_MAX as u64,
            frsize: 4096,
            flags: 0,
        })
    }

    fn getxattr(&self, name: &[u8], size: usize) -> Result<Vec<u8>, Errno> {
        let m = lock(&self.meta);
        let v = m.xattrs.get(name).ok_or(Errno::ENODATA)?;
        if size != 0 && v.len() > size {
            return Err(Errno::ERANGE);
        }
        Ok(v.clone())
    }

    fn setxattr(&self, name: &[u8], value: &[u8], flags: u32) -> Result<(), Errno> {
        const XATTR_CREATE: u32 = 1;
        const XATTR_REPLACE: u32 = 2;
        let mut m = lock(&self.meta);
        let exists = m.xattrs.contains_key(name);
        if flags & XATTR_CREATE != 0 && exists {
            return Err(Errno::EEXIST);
        }
        if flags & XATTR_REPLACE != 0 && !exists {
            return Err(Errno::ENODATA);
        }
        let held: usize =
            m.xattrs.iter().filter(|(k, _)| k.as_slice() != name).map(|(k, v)| k.len() + v.len()).sum();
        if held + name.len() + value.len() > XATTR_BYTES {
            return Err(Errno::ENOSPC);
        }
        m.xattrs.insert(name.to_vec(), value.to_vec());
        m.ctime = now();
        Ok(())
    }

    fn listxattr(&self) -> Result<Vec<u8>, Errno> {
        let m = lock(&self.meta);
        let mut out = Vec::new();
        for k in m.xattrs.keys() {
            out.extend_from_slice(k);
            out.push(0);
        }
        Ok(out)
    }

    fn removexattr(&self, name: &[u8]) -> Result<(), Errno> {
        let mut m = lock(&self.meta);
        m.xattrs.remove(name).ok_or(Errno::ENODATA)?;
        m.ctime = now();
        Ok(())
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfs::mflags;

    #[test]
    fn options_parse_as_mount_does() {
        let o = |v: &[&str]| Options::parse(v.iter().copied(), 1 << 30);
        let d = o(&[]).expect("defaults");
        assert_eq!((d.bytes, d.mode, d.flags), (1 << 29, 0o1777, 0));
        let t =
            o(&["size=64m", "mode=755", "uid=5", "gid=6", "nosuid", "nodev", "noexec", "ro"]).expect("parse");
        assert_eq!((t.bytes, t.mode, t.owner), (64 << 20, 0o755, Owner { uid: 5, gid: 6 }));
        assert_eq!(t.flags, mflags::NOSUID | mflags::NODEV | mflags::NOEXEC | mflags::RDONLY);
        assert_eq!(o(&["size=10%"]).expect("percent").bytes, (1 << 30) / 100 * 10);
        assert_eq!(o(&["size=12x"]), Err(Errno::EINVAL));
        assert_eq!(o(&["bogus"]), Err(Errno::EINVAL));
    }

    fn names(d: &InodeRef, cookie: u64) -> Vec<(String, u64)> {
        d.readdir(cookie)
            .expect("readdir")
            .into_iter()
            .map(|(e, c)| (String::from_utf8_lossy(&e.name).into_owned(), c))
            .collect()
    }

    #[test]
    fn readdir_cookies_survive_removals_and_links_are_counted() {
        let root = new(1 << 30, 0o1777, Owner { uid: 0, gid: 0 });
        let o = Owner { uid: 1, gid: 1 };
        for n in ["a", "b", "c"] {
            root.mkdir(n.as_bytes(), 0o755, o).expect("mkdir");
        }
        assert_eq!(root.attr().expect("attr").nlink, 5);
        let all = names(&root, 0);
        assert_eq!(all.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), [".", "..", "a", "b", "c"]);
        // Removing what was already returned does not skip what follows.
        let after_a = all[2].1;
        root.unlink(b"a", true).expect("rmdir");
        assert_eq!(names(&root, after_a).iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(), ["b", "c"]);
        assert_eq!(root.attr().expect("attr").nlink, 4);
        // rmdir of a non-empty directory, and creating in a removed one.
        let b = root.lookup(b"b").expect("b");
        b.mkdir(b"x", 0o755, o).expect("mkdir");
        assert_eq!(root.unlink(b"b", true), Err(Errno::ENOTEMPTY));
        b.unlink(b"x", true).expect("rmdir x");
        root.unlink(b"b", true).expect("rmdir b");
        assert_eq!(b.mkdir(b"y", 0o755, o).err(), Some(Errno::ENOENT));
        // Hard links share the inode and count.
        let (f, _) = root.create(b"f", 0o644, o, 0).expect("create");
        root.link(b"g", &f).expect("link");
        assert_eq!(f.attr().expect("attr").nlink, 2);
        root.rename(b"g", &root, b"f", 0).expect("rename onto its own link");
        let c = root.lookup(b"c").expect("c");
        root.rename(b"f", &c, b"moved", 0).expect("rename");
        assert_eq!(c.lookup(b"moved").expect("moved").attr().expect("attr").ino, f.attr().expect("attr").ino);
        assert_eq!(root.rename(b"c", &root, b"c2", 1), Ok(()));
        assert_eq!(root.lookup(b"c").err(), Some(Errno::ENOENT));
    }
}
