//! Files served by the gofer: the client side of the protocol, inodes
//! backed by gofer fids, and regular files backed by the host descriptors
//! the gofer donates (reads and writes go straight to the host file, with
//! no round trip).
//!
//! Host descriptors are cached per inode and access mode (as gVisor's
//! gofer client does): the first open of a file for reading asks the gofer
//! for a read-only descriptor, later opens share it, so an `open` of a
//! cached file makes no round trip. File offsets therefore live in the
//! sentry's open files (`pread`/`pwrite` at that offset); `O_APPEND`
//! writes take the host file's size under a per-inode lock, which
//! serialises appends within the sandbox (not against host processes
//! writing the same file).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rvisor_gofer::channel;
use rvisor_gofer::protocol::{setattr, Attr, Fid, Name, Reply, Request};
use rvisor_syscalls::abi::Timespec;
use rvisor_syscalls::Errno;

use crate::kernel::Task;
use crate::vfs::file::oflags::{O_ACCMODE, O_RDONLY, O_RDWR, O_TRUNC, O_WRONLY};
use crate::vfs::file::{File, FileOps};
use crate::vfs::inode::{DirEntry, FsStats, Inode, InodeAttr, InodeRef, Owner, SetAttr, TimeSet};

/// Fids are closed in batches of this many.
const CLOSE_BATCH: usize = 64;

/// The sentry's connection to the gofer: a few channels so that
/// concurrent tasks do not wait for each other.
pub struct GoferClient {
    channels: Vec<Mutex<OwnedFd>>,
    next: AtomicUsize,
    ids: AtomicU64,
    to_close: Mutex<Vec<Fid>>,
}

impl std::fmt::Debug for GoferClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoferClient").field("channels", &self.channels.len()).finish_non_exhaustive()
    }
}

fn errno(e: i32) -> Errno {
    Errno::new(e).unwrap_or(Errno::EIO)
}

impl GoferClient {
    /// A client over connected `SOCK_SEQPACKET` channels.
    pub fn new(channels: Vec<OwnedFd>) -> Arc<GoferClient> {
        Arc::new(GoferClient {
            channels: channels.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
            ids: AtomicU64::new(1),
            to_close: Mutex::new(Vec::new()),
        })
    }

    /// Sends `req` and waits for its reply (and descriptor). A gofer
    /// error is the errno; anything malformed is `EIO`.
    pub fn call(&self, req: &Request) -> Result<(Reply, Option<OwnedFd>), Errno> {
        if self.channels.is_empty() {
            return Err(Errno::EIO);
        }
        let n = self.channels.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed) % n;
        // A free channel if there is one, else wait for ours.
        let mut guard = None;
        for i in 0..n {
            if let Ok(g) = self.channels[(start + i) % n].try_lock() {
                guard = Some(g);
                break;
            }
        }
        let sock = match guard {
            Some(g) => g,
            None => self.channels[start].lock().unwrap_or_else(|p| p.into_inner()),
        };
        let id = self.ids.fetch_add(1, Ordering::Relaxed);
        channel::send(sock.as_fd(), &req.encode(id), None).map_err(|_| Errno::EIO)?;
        let r = channel::recv(&*sock).map_err(|_| Errno::EIO)?;
        drop(sock);
        if r.malformed || r.msg.is_empty() {
            return Err(Errno::EIO);
        }
        let (rid, reply) = Reply::decode(&r.msg).map_err(|e| {
            tracing::error!("malformed gofer reply: {e}");
            Errno::EIO
        })?;
        if rid != id {
            tracing::error!("gofer reply for request {rid}, expected {id}");
            return Err(Errno::EIO);
        }
        match reply {
            Reply::Error(e) => Err(errno(e)),
            other => Ok((other, r.fd)),
        }
    }

    /// Forgets `fid` (batched).
    pub fn close_later(&self, fid: Fid) {
        let batch = {
            let mut v = self.to_close.lock().unwrap_or_else(|p| p.into_inner());
            v.push(fid);
            if v.len() < CLOSE_BATCH {
                return;
            }
            std::mem::take(&mut *v)
        };
        let _ = self.call(&Request::Close { fids: batch });
    }

    /// The root of served tree `point`.
    pub fn attach(self: &Arc<Self>, point: u32) -> Result<InodeRef, Errno> {
        match self.call(&Request::Attach { point })? {
            (Reply::Node { fid, attr }, _) => Ok(GoferInode::make(self, fid, attr)),
            _ => Err(Errno::EIO),
        }
    }
}

fn ts((sec, nsec): (i64, u32)) -> Timespec {
    Timespec { tv_sec: sec, tv_nsec: i64::from(nsec) }
}

fn to_attr(a: &Attr) -> InodeAttr {
    InodeAttr {
        ino: a.ino,
        dev: 0,
        mode: a.mode,
        nlink: a.nlink,
        uid: a.uid,
        gid: a.gid,
        rdev: a.rdev,
        size: a.size,
        blksize: a.blksize,
        blocks: a.blocks,
        atime: ts(a.atime),
        mtime: ts(a.mtime),
        ctime: ts(a.ctime),
    }
}

fn from_host_stat(st: &rustix::fs::Stat) -> InodeAttr {
    let t = |sec: i64, nsec: u64| Timespec { tv_sec: sec, tv_nsec: nsec.cast_signed() };
    InodeAttr {
        ino: st.st_ino,
        dev: 0,
        mode: st.st_mode,
        nlink: st.st_nlink,
        uid: st.st_uid,
        gid: st.st_gid,
        rdev: st.st_rdev,
        size: st.st_size.cast_unsigned(),
        blksize: st.st_blksize.cast_unsigned(),
        blocks: st.st_blocks.cast_unsigned(),
        atime: t(st.st_atime, st.st_atime_nsec),
        mtime: t(st.st_mtime, st.st_mtime_nsec),
        ctime: t(st.st_ctime, st.st_ctime_nsec),
    }
}

fn name(n: &[u8]) -> Result<Name, Errno> {
    Name::new(n).map_err(|_| if n.len() > 255 { Errno::ENAMETOOLONG } else { Errno::ENOENT })
}

type AttrCache = Arc<Mutex<Option<InodeAttr>>>;

/// Host descriptors of one file, by access mode.
#[derive(Default)]
struct Handles {
    read: Option<Arc<OwnedFd>>,
    write: Option<Arc<OwnedFd>>,
    both: Option<Arc<OwnedFd>>,
}

impl Handles {
    /// A descriptor good for access mode `acc`.
    fn get(&self, acc: u32) -> Option<Arc<OwnedFd>> {
        match acc {
            O_RDONLY => self.read.clone().or_else(|| self.both.clone()),
            O_WRONLY => self.write.clone().or_else(|| self.both.clone()),
            _ => self.both.clone(),
        }
    }

    fn set(&mut self, acc: u32, fd: Arc<OwnedFd>) {
        match acc {
            O_RDONLY => self.read = Some(fd),
            O_WRONLY => self.write = Some(fd),
            _ => self.both = Some(fd),
        }
    }

    fn any(&self) -> Option<Arc<OwnedFd>> {
        self.both.clone().or_else(|| self.read.clone()).or_else(|| self.write.clone())
    }
}

/// A file served by the gofer.
pub struct GoferInode {
    client: Arc<GoferClient>,
    fid: Fid,
    /// Cached attributes (`None`: ask again).
    attr: AttrCache,
    /// Host descriptors for regular files, shared by their opens.
    handles: Mutex<Handles>,
    /// Serialises `O_APPEND` writes (size, then write).
    append: Arc<Mutex<()>>,
}

impl std::fmt::Debug for GoferInode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoferInode").field("fid", &self.fid).finish_non_exhaustive()
    }
}

impl Drop for GoferInode {
    fn drop(&mut self) {
        self.client.close_later(self.fid);
    }
}

impl GoferInode {
    fn make(client: &Arc<GoferClient>, fid: Fid, attr: Attr) -> InodeRef {
        Arc::new(GoferInode {
            client: client.clone(),
            fid,
            attr: Arc::new(Mutex::new(Some(to_attr(&attr)))),
            handles: Mutex::new(Handles::default()),
            append: Arc::new(Mutex::new(())),
        })
    }

    /// A host descriptor for access mode `acc`: cached, or from the gofer.
    fn handle(&self, acc: u32) -> Result<Arc<OwnedFd>, Errno> {
        if let Some(fd) = self.handles.lock().unwrap_or_else(|p| p.into_inner()).get(acc) {
            return Ok(fd);
        }
        // Not held across the round trip: two first opens may both ask, and
        // the second descriptor replaces the first in the cache.
        match self.client.call(&Request::Open { fid: self.fid, flags: acc })? {
            (Reply::Ok, Some(fd)) => {
                let fd = Arc::new(fd);
                self.handles.lock().unwrap_or_else(|p| p.into_inner()).set(acc, fd.clone());
                Ok(fd)
            }
            _ => Err(Errno::EIO),
        }
    }

    fn file(&self, fd: Arc<OwnedFd>) -> Box<dyn FileOps> {
        Box::new(HostBackedFile {
            fd,
            pos: Mutex::new(0),
            attr: self.attr.clone(),
            append: self.append.clone(),
            on_change: None,
            space: None,
        })
    }

    fn node(&self, reply: Reply) -> Result<InodeRef, Errno> {
        self.invalidate();
        match reply {
            Reply::Node { fid, attr } => Ok(GoferInode::make(&self.client, fid, attr)),
            _ => Err(Errno::EIO),
        }
    }

    fn ok(&self, req: &Request) -> Result<(), Errno> {
        self.client.call(req).map(drop)
    }

    fn fid_of(other: &InodeRef) -> Result<Fid, Errno> {
        other.as_any().downcast_ref::<GoferInode>().map(|g| g.fid).ok_or(Errno::EXDEV)
    }
}

impl Inode for GoferInode {
    fn attr(&self) -> Result<InodeAttr, Errno> {
        let mut cache = self.attr.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(a) = *cache {
            return Ok(a);
        }
        // A held host descriptor answers without a round trip.
        let held = self.handles.lock().unwrap_or_else(|p| p.into_inner()).any();
        if let Some(st) = held.and_then(|fd| rustix::fs::fstat(&*fd).ok()) {
            let a = from_host_stat(&st);
            *cache = Some(a);
            return Ok(a);
        }
        match self.client.call(&Request::Stat { fid: self.fid })? {
            (Reply::Attr(a), _) => {
                let a = to_attr(&a);
                *cache = Some(a);
                Ok(a)
            }
            _ => Err(Errno::EIO),
        }
    }

    fn lookup(&self, n: &[u8]) -> Result<InodeRef, Errno> {
        let req = Request::Walk { dir: self.fid, names: vec![name(n)?] };
        match self.client.call(&req)? {
            (Reply::Walk(v), _) => match v.first() {
                Some(&(fid, attr)) => Ok(GoferInode::make(&self.client, fid, attr)),
                None => Err(Errno::ENOENT),
            },
            _ => Err(Errno::EIO),
        }
    }

    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        if !self.attr()?.is_symlink() {
            return Err(Errno::EINVAL);
        }
        match self.client.call(&Request::Readlink { fid: self.fid })? {
            (Reply::Bytes(b), _) => Ok(b),
            _ => Err(Errno::EIO),
        }
    }

    fn open(&self, flags: u32) -> Result<Box<dyn FileOps>, Errno> {
        let acc = flags & O_ACCMODE;
        let fd = self.handle(acc)?;
        if flags & O_TRUNC != 0 {
            if acc == O_RDONLY {
                // Permitted by the sentry's checks; the handle cannot write.
                self.setattr(&SetAttr { size: Some(0), ..SetAttr::default() })?;
            } else {
                let r = rustix::fs::ftruncate(&*fd, 0).map_err(host);
                self.invalidate();
                r?;
            }
        }
        Ok(self.file(fd))
    }

    fn create(
        &self,
        n: &[u8],
        m: u32,
        owner: Owner,
        flags: u32,
    ) -> Result<(InodeRef, Box<dyn FileOps>), Errno> {
        // Access mode 3 (ioctl-only) opens read-write, as for open.
        let acc = if flags & O_ACCMODE == O_ACCMODE { O_RDWR } else { flags & O_ACCMODE };
        let req = Request::Create {
            dir: self.fid,
            name: name(n)?,
            flags: acc,
            mode: m,
            uid: owner.uid,
            gid: owner.gid,
        };
        let (reply, fd) = self.client.call(&req)?;
        let fd = Arc::new(fd.ok_or(Errno::EIO)?);
        let inode = self.node(reply)?;
        let g = inode.as_any().downcast_ref::<GoferInode>().ok_or(Errno::EIO)?;
        g.handles.lock().unwrap_or_else(|p| p.into_inner()).set(acc, fd.clone());
        let file = g.file(fd);
        Ok((inode, file))
    }

    fn mkdir(&self, n: &[u8], m: u32, owner: Owner) -> Result<InodeRef, Errno> {
        let req = Request::Mkdir { dir: self.fid, name: name(n)?, mode: m, uid: owner.uid, gid: owner.gid };
        self.node(self.client.call(&req)?.0)
    }

    fn mknod(&self, n: &[u8], m: u32, owner: Owner) -> Result<InodeRef, Errno> {
        let req = Request::Mknod { dir: self.fid, name: name(n)?, mode: m, uid: owner.uid, gid: owner.gid };
        self.node(self.client.call(&req)?.0)
    }

    fn symlink(&self, n: &[u8], target: &[u8], owner: Owner) -> Result<InodeRef, Errno> {
        let req = Request::Symlink {
            dir: self.fid,
            name: name(n)?,
            target: target.to_vec(),
            uid: owner.uid,
            gid: owner.gid,
        };
        self.node(self.client.call(&req)?.0)
    }

    fn link(&self, n: &[u8], target: &InodeRef) -> Result<InodeRef, Errno> {
        let req = Request::Link { dir: self.fid, name: name(n)?, target: Self::fid_of(target)? };
        let r = self.client.call(&req);
        // After the change: a concurrent lookup cannot cache what was.
        target.invalidate();
        self.node(r?.0)
    }

    fn unlink(&self, n: &[u8], dir: bool) -> Result<(), Errno> {
        let flags = if dir { 0x200 } else { 0 }; // AT_REMOVEDIR
        let r = self.ok(&Request::Unlink { dir: self.fid, name: name(n)?, flags });
        self.invalidate();
        r
    }

    fn rename(&self, n: &[u8], new_dir: &InodeRef, new_name: &[u8], flags: u32) -> Result<(), Errno> {
        let req = Request::Rename {
            old_dir: self.fid,
            old: name(n)?,
            new_dir: Self::fid_of(new_dir)?,
            new: name(new_name)?,
            flags,
        };
        let r = self.ok(&req);
        self.invalidate();
        new_dir.invalidate();
        r
    }

    fn readdir(&self, cookie: u64) -> Result<Vec<(DirEntry, u64)>, Errno> {
        match self.client.call(&Request::Getdents { fid: self.fid, off: cookie })? {
            (Reply::Dirents(v), _) => Ok(v
                .into_iter()
                .map(|d| (DirEntry { ino: d.ino, typ: d.typ, name: d.name }, d.off))
                .collect()),
            _ => Err(Errno::EIO),
        }
    }

    fn setattr(&self, a: &SetAttr) -> Result<(), Errno> {
        let mut mask = 0;
        let mut req_mode = 0;
        if let Some(m) = a.mode {
            mask |= setattr::MODE;
            req_mode = m;
        }
        if a.uid.is_some() {
            mask |= setattr::UID;
        }
        if a.gid.is_some() {
            mask |= setattr::GID;
        }
        if a.size.is_some() {
            mask |= setattr::SIZE;
        }
        let time = |t: TimeSet, set: u32, now: u32, mask: &mut u32| match t {
            TimeSet::Omit => (0, 0),
            TimeSet::Now => {
                *mask |= now;
                (0, 0)
            }
            TimeSet::At(ts) => {
                *mask |= set;
                (ts.tv_sec, u32::try_from(ts.tv_nsec).unwrap_or(0))
            }
        };
        let atime = time(a.atime, setattr::ATIME, setattr::ATIME_NOW, &mut mask);
        let mtime = time(a.mtime, setattr::MTIME, setattr::MTIME_NOW, &mut mask);
        let r = self.ok(&Request::SetAttr {
            fid: self.fid,
            mask,
            mode: req_mode,
            uid: a.uid.unwrap_or(0),
            gid: a.gid.unwrap_or(0),
            size: a.size.unwrap_or(0),
            atime,
            mtime,
        });
        self.invalidate();
        r
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        match self.client.call(&Request::StatFs { fid: self.fid })? {
            (Reply::FsStat(s), _) => Ok(FsStats {
                fs_type: s.fs_type,
                bsize: s.bsize,
                blocks: s.blocks,
                bfree: s.bfree,
                bavail: s.bavail,
                files: s.files,
                ffree: s.ffree,
                namelen: s.namelen,
                frsize: s.frsize,
                flags: s.flags,
            }),
            _ => Err(Errno::EIO),
        }
    }

    fn getxattr(&self, n: &[u8], size: usize) -> Result<Vec<u8>, Errno> {
        let size = u32::try_from(size).unwrap_or(u32::MAX);
        match self.client.call(&Request::GetXattr { fid: self.fid, name: n.to_vec(), size })? {
            (Reply::Bytes(b), _) => Ok(b),
            (Reply::Len(l), _) => Ok(vec![0; usize::try_from(l).unwrap_or(0)]),
            _ => Err(Errno::EIO),
        }
    }

    fn setxattr(&self, n: &[u8], value: &[u8], flags: u32) -> Result<(), Errno> {
        let r = self.ok(&Request::SetXattr { fid: self.fid, name: n.to_vec(), value: value.to_vec(), flags });
        self.invalidate();
        r
    }

    fn listxattr(&self) -> Result<Vec<u8>, Errno> {
        match self.client.call(&Request::ListXattr { fid: self.fid, size: 65536 })? {
            (Reply::Bytes(b), _) => Ok(b),
            _ => Err(Errno::EIO),
        }
    }

    fn removexattr(&self, n: &[u8]) -> Result<(), Errno> {
        let r = self.ok(&Request::RemoveXattr { fid: self.fid, name: n.to_vec() });
        self.invalidate();
        r
    }

    fn fsync(&self) -> Result<(), Errno> {
        self.ok(&Request::Fsync { fid: self.fid })
    }

    fn invalidate(&self) {
        *self.attr.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// A regular file through a host descriptor the gofer donated (shared
/// with other opens of the file: the offset is this file's own), or one
/// the sentry made itself (`memfd_create`).
pub(crate) struct HostBackedFile {
    fd: Arc<OwnedFd>,
    /// The file offset.
    pos: Mutex<u64>,
    /// The inode's attribute cache, dropped when the file changes.
    attr: AttrCache,
    /// The inode's append lock.
    append: Arc<Mutex<()>>,
    /// Told after each change of the contents or size (tmpfs keeps the
    /// times itself).
    on_change: Option<Arc<dyn Fn() + Send + Sync>>,
    /// The file's share of its file system's space (tmpfs `size=`).
    space: Option<Arc<FileSpace>>,
}

/// A file system's space (tmpfs `size=`), in pages.
#[derive(Debug)]
pub(crate) struct SpacePool {
    used: std::sync::atomic::AtomicU64,
    limit: u64,
}

const SPACE_PAGE: u64 = 4096;

fn pages(bytes: u64) -> u64 {
    bytes.div_ceil(SPACE_PAGE)
}

impl SpacePool {
    /// A pool of `bytes` (0: unlimited, as tmpfs's `size=0`).
    pub(crate) fn new(bytes: u64) -> Arc<SpacePool> {
        let limit = if bytes == 0 { u64::MAX } else { bytes / SPACE_PAGE };
        Arc::new(SpacePool { used: std::sync::atomic::AtomicU64::new(0), limit })
    }

    /// Pages in use.
    pub(crate) fn used(&self) -> u64 {
        self.used.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Up to `want` pages; how many were granted.
    fn take(&self, want: u64) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        let mut cur = self.used.load(Relaxed);
        loop {
            let got = want.min(self.limit.saturating_sub(cur));
            match self.used.compare_exchange_weak(cur, cur + got, Relaxed, Relaxed) {
                Ok(_) => return got,
                Err(c) => cur = c,
            }
        }
    }

    fn give(&self, n: u64) {
        let _ = self.used.fetch_update(
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
            |u| Some(u.saturating_sub(n)),
        );
    }
}

/// One file's charge against its [`SpacePool`]: the extent written so far
/// (holes below it count: an approximation of Linux's per-page charge).
#[derive(Debug)]
pub(crate) struct FileSpace {
    pool: Arc<SpacePool>,
    charged: Mutex<u64>,
}

impl FileSpace {
    /// A file with nothing charged yet.
    pub(crate) fn new(pool: &Arc<SpacePool>) -> Arc<FileSpace> {
        Arc::new(FileSpace { pool: pool.clone(), charged: Mutex::new(0) })
    }

    /// Before writing `len` bytes at `off`: how many of them fit
    /// (`ENOSPC` if none).
    fn reserve(&self, off: u64, len: usize) -> Result<usize, Errno> {
        let end = off.saturating_add(len as u64);
        let mut c = self.charged.lock().unwrap_or_else(|p| p.into_inner());
        if end <= *c || len == 0 {
            return Ok(len);
        }
        let have = pages(*c);
        let need = pages(end) - have;
        let got = self.pool.take(need);
        let new_end = if got == need { end } else { (have + got) * SPACE_PAGE };
        if new_end <= off {
            self.pool.give(got);
            return Err(Errno::ENOSPC);
        }
        *c = new_end.max(*c);
        Ok(usize::try_from(new_end - off).unwrap_or(len).min(len))
    }

    /// The file was truncated to `len`.
    pub(crate) fn truncate(&self, len: u64) {
        let mut c = self.charged.lock().unwrap_or_else(|p| p.into_inner());
        if len < *c {
            self.pool.give(pages(*c) - pages(len));
            *c = len;
        }
    }
}

impl Drop for FileSpace {
    fn drop(&mut self) {
        let c = *self.charged.get_mut().unwrap_or_else(|p| p.into_inner());
        self.pool.give(pages(c));
    }
}

pub(crate) fn host(e: rustix::io::Errno) -> Errno {
    Errno::new(e.raw_os_error()).unwrap_or(Errno::EIO)
}

/// Retries a host call interrupted by a signal to the sentry.
fn retry<T>(mut f: impl FnMut() -> rustix::io::Result<T>) -> Result<T, Errno> {
    loop {
        match f() {
            Err(rustix::io::Errno::INTR) => continue,
            r => return r.map_err(host),
        }
    }
}

impl HostBackedFile {
    /// A file over `fd` alone (no inode shares its caches).
    pub(crate) fn new(fd: Arc<OwnedFd>) -> HostBackedFile {
        HostBackedFile {
            fd,
            pos: Mutex::new(0),
            attr: Arc::default(),
            append: Arc::default(),
            on_change: None,
            space: None,
        }
    }

    /// A file over `fd` whose appends take `append` (shared by every open
    /// of the file) and whose changes call `on_change`.
    pub(crate) fn with_hook(
        fd: Arc<OwnedFd>,
        append: Arc<Mutex<()>>,
        on_change: Arc<dyn Fn() + Send + Sync>,
    ) -> HostBackedFile {
        HostBackedFile { append, on_change: Some(on_change), ..HostBackedFile::new(fd) }
    }

    /// Charges what the file's writes add against `space`.
    pub(crate) fn with_space(self, space: Arc<FileSpace>) -> HostBackedFile {
        HostBackedFile { space: Some(space), ..self }
    }

    /// How much of `len` bytes at `off` may be written.
    fn fits(&self, off: u64, len: usize) -> Result<usize, Errno> {
        match &self.space {
            Some(s) => s.reserve(off, len),
            None => Ok(len),
        }
    }

    fn changed(&self) {
        *self.attr.lock().unwrap_or_else(|p| p.into_inner()) = None;
        if let Some(f) = &self.on_change {
            f();
        }
    }

    fn size(&self) -> Result<u64, Errno> {
        Ok(rustix::fs::fstat(&*self.fd).map_err(host)?.st_size.cast_unsigned())
    }

    fn pos(&self) -> std::sync::MutexGuard<'_, u64> {
        self.pos.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl FileOps for HostBackedFile {
    fn read(&self, _t: &Task, _f: &File, buf: &mut [u8], off: Option<u64>) -> Result<usize, Errno> {
        match off {
            Some(o) => retry(|| rustix::io::pread(&*self.fd, &mut *buf, o)),
            None => {
                let mut pos = self.pos();
                let n = retry(|| rustix::io::pread(&*self.fd, &mut *buf, *pos))?;
                *pos += n as u64;
                Ok(n)
            }
        }
    }

    fn write(&self, _t: &Task, f: &File, data: &[u8], off: Option<u64>) -> Result<usize, Errno> {
        use crate::vfs::file::oflags::{O_APPEND, O_DSYNC, O_SYNC};
        let flags = f.flags();
        let n = if flags & O_APPEND != 0 {
            // At the end, even for pwrite (as Linux); the offset follows
            // only a plain write.
            let _one_appender = self.append.lock().unwrap_or_else(|p| p.into_inner());
            let mut pos = self.pos();
            let end = self.size()?;
            let data = &data[..self.fits(end, data.len())?];
            let n = retry(|| rustix::io::pwrite(&*self.fd, data, end))?;
            if off.is_none() {
                *pos = end + n as u64;
            }
            n
        } else {
            match off {
                Some(o) => {
                    let data = &data[..self.fits(o, data.len())?];
                    retry(|| rustix::io::pwrite(&*self.fd, data, o))?
                }
                None => {
                    let mut pos = self.pos();
                    let data = &data[..self.fits(*pos, data.len())?];
                    let n = retry(|| rustix::io::pwrite(&*self.fd, data, *pos))?;
                    *pos += n as u64;
                    n
                }
            }
        };
        // After the write: a concurrent stat cannot cache the old size.
        self.changed();
        if flags & O_SYNC == O_SYNC {
            rustix::fs::fsync(&*self.fd).map_err(host)?;
        } else if flags & O_DSYNC != 0 {
            rustix::fs::fdatasync(&*self.fd).map_err(host)?;
        }
        Ok(n)
    }

    fn seek(&self, off: i64, whence: u32) -> Result<u64, Errno> {
        use rustix::fs::SeekFrom;
        let mut pos = self.pos();
        let cur = i64::try_from(*pos).map_err(|_| Errno::EOVERFLOW)?;
        let new = match whence {
            0 => off,
            1 => cur.checked_add(off).ok_or(Errno::EOVERFLOW)?,
            2 => i64::try_from(self.size()?)
                .map_err(|_| Errno::EOVERFLOW)?
                .checked_add(off)
                .ok_or(Errno::EOVERFLOW)?,
            // The host descriptor's own offset is never used: only the
            // answer matters.
            3 | 4 => {
                let o = u64::try_from(off).map_err(|_| Errno::ENXIO)?;
                let to = if whence == 3 { SeekFrom::Data(o) } else { SeekFrom::Hole(o) };
                i64::try_from(rustix::fs::seek(&*self.fd, to).map_err(host)?).map_err(|_| Errno::EOVERFLOW)?
            }
            _ => return Err(Errno::EINVAL),
        };
        let new = u64::try_from(new).map_err(|_| Errno::EINVAL)?;
        *pos = new;
        Ok(new)
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        retry(|| rustix::io::pread(&*self.fd, &mut *buf, off))
    }

    fn write_at(&self, data: &[u8], off: u64) -> Result<usize, Errno> {
        let data = &data[..self.fits(off, data.len())?];
        let n = retry(|| rustix::io::pwrite(&*self.fd, data, off))?;
        self.changed();
        Ok(n)
    }

    fn mappable(&self) -> Option<Arc<OwnedFd>> {
        Some(self.fd.clone())
    }

    fn read_into(
        &self,
        t: &Task,
        _f: &File,
        dst: u64,
        len: usize,
        off: Option<u64>,
    ) -> Option<Result<usize, Errno>> {
        Some(match off {
            Some(o) => t.mm.read_file_into(dst, len, &self.fd, o),
            None => {
                let mut pos = self.pos();
                t.mm.read_file_into(dst, len, &self.fd, *pos).inspect(|&n| *pos += n as u64)
            }
        })
    }

    fn truncate(&self, len: u64) -> Result<(), Errno> {
        let r = rustix::fs::ftruncate(&*self.fd, len).map_err(host);
        if r.is_ok() {
            if let Some(s) = &self.space {
                s.truncate(len);
            }
        }
        self.changed();
        r
    }

    fn fsync(&self) -> Result<(), Errno> {
        rustix::fs::fsync(&*self.fd).map_err(host)
    }

    fn allocate(&self, m: u32, off: u64, len: u64) -> Result<(), Errno> {
        let flags = rustix::fs::FallocateFlags::from_bits(m).ok_or(Errno::EOPNOTSUPP)?;
        let grows = !flags.intersects(rustix::fs::FallocateFlags::PUNCH_HOLE);
        if grows
            && self.fits(off, usize::try_from(len).unwrap_or(usize::MAX))?
                < usize::try_from(len).unwrap_or(usize::MAX)
        {
            return Err(Errno::ENOSPC);
        }
        let r = rustix::fs::fallocate(&*self.fd, flags, off, len).map_err(host);
        self.changed();
        r
    }
}
