//! Files served by the gofer: the client side of the protocol, inodes
//! backed by gofer fids, and regular files backed by the host descriptors
//! the gofer donates (reads and writes go straight to the host file, with
//! no round trip).

use std::os::fd::{AsFd, OwnedFd};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rvisor_gofer::channel;
use rvisor_gofer::protocol::{setattr, Attr, Fid, Name, Reply, Request};
use rvisor_syscalls::abi::Timespec;
use rvisor_syscalls::Errno;

use crate::kernel::Task;
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

fn name(n: &[u8]) -> Result<Name, Errno> {
    Name::new(n).map_err(|_| if n.len() > 255 { Errno::ENAMETOOLONG } else { Errno::ENOENT })
}

type AttrCache = Arc<Mutex<Option<InodeAttr>>>;

/// A file served by the gofer.
pub struct GoferInode {
    client: Arc<GoferClient>,
    fid: Fid,
    /// Cached attributes (`None`: ask again).
    attr: AttrCache,
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
        Arc::new(GoferInode { client: client.clone(), fid, attr: Arc::new(Mutex::new(Some(to_attr(&attr)))) })
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
        match self.client.call(&Request::Open { fid: self.fid, flags })? {
            (Reply::Ok, Some(fd)) => {
                if flags & crate::vfs::file::oflags::O_TRUNC != 0 {
                    self.invalidate();
                }
                Ok(Box::new(HostBackedFile { fd, attr: self.attr.clone() }))
            }
            _ => Err(Errno::EIO),
        }
    }

    fn create(
        &self,
        n: &[u8],
        m: u32,
        owner: Owner,
        flags: u32,
    ) -> Result<(InodeRef, Box<dyn FileOps>), Errno> {
        let req =
            Request::Create { dir: self.fid, name: name(n)?, flags, mode: m, uid: owner.uid, gid: owner.gid };
        let (reply, fd) = self.client.call(&req)?;
        let fd = fd.ok_or(Errno::EIO)?;
        let inode = self.node(reply)?;
        let attr = inode.as_any().downcast_ref::<GoferInode>().map(|g| g.attr.clone()).ok_or(Errno::EIO)?;
        Ok((inode, Box::new(HostBackedFile { fd, attr })))
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
        target.invalidate();
        self.node(self.client.call(&req)?.0)
    }

    fn unlink(&self, n: &[u8], dir: bool) -> Result<(), Errno> {
        let flags = if dir { 0x200 } else { 0 }; // AT_REMOVEDIR
        self.invalidate();
        self.ok(&Request::Unlink { dir: self.fid, name: name(n)?, flags })
    }

    fn rename(&self, n: &[u8], new_dir: &InodeRef, new_name: &[u8], flags: u32) -> Result<(), Errno> {
        let req = Request::Rename {
            old_dir: self.fid,
            old: name(n)?,
            new_dir: Self::fid_of(new_dir)?,
            new: name(new_name)?,
            flags,
        };
        self.invalidate();
        new_dir.invalidate();
        self.ok(&req)
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
        self.invalidate();
        self.ok(&Request::SetAttr {
            fid: self.fid,
            mask,
            mode: req_mode,
            uid: a.uid.unwrap_or(0),
            gid: a.gid.unwrap_or(0),
            size: a.size.unwrap_or(0),
            atime,
            mtime,
        })
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
        self.invalidate();
        self.ok(&Request::SetXattr { fid: self.fid, name: n.to_vec(), value: value.to_vec(), flags })
    }

    fn listxattr(&self) -> Result<Vec<u8>, Errno> {
        match self.client.call(&Request::ListXattr { fid: self.fid, size: 65536 })? {
            (Reply::Bytes(b), _) => Ok(b),
            _ => Err(Errno::EIO),
        }
    }

    fn removexattr(&self, n: &[u8]) -> Result<(), Errno> {
        self.invalidate();
        self.ok(&Request::RemoveXattr { fid: self.fid, name: n.to_vec() })
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

/// A regular file through a host descriptor the gofer donated.
struct HostBackedFile {
    fd: OwnedFd,
    /// The inode's attribute cache, dropped when the file changes.
    attr: AttrCache,
}

fn host(e: rustix::io::Errno) -> Errno {
    Errno::new(e.raw_os_error()).unwrap_or(Errno::EIO)
}

impl HostBackedFile {
    fn changed(&self) {
        *self.attr.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

impl FileOps for HostBackedFile {
    fn read(&self, _t: &Task, _f: &File, buf: &mut [u8], off: Option<u64>) -> Result<usize, Errno> {
        loop {
            let r = match off {
                Some(o) => rustix::io::pread(&self.fd, &mut *buf, o),
                None => rustix::io::read(&self.fd, &mut *buf),
            };
            match r {
                Err(rustix::io::Errno::INTR) => continue,
                r => return r.map_err(host),
            }
        }
    }

    fn write(&self, _t: &Task, _f: &File, data: &[u8], off: Option<u64>) -> Result<usize, Errno> {
        self.changed();
        loop {
            let r = match off {
                Some(o) => rustix::io::pwrite(&self.fd, data, o),
                None => rustix::io::write(&self.fd, data),
            };
            match r {
                Err(rustix::io::Errno::INTR) => continue,
                r => return r.map_err(host),
            }
        }
    }

    fn status_changed(&self, flags: u32) {
        // Appending is the host file's business (atomic at the end).
        let mut f = rustix::fs::fcntl_getfl(&self.fd).unwrap_or(rustix::fs::OFlags::empty());
        f.set(rustix::fs::OFlags::APPEND, flags & crate::vfs::file::O_APPEND != 0);
        let _ = rustix::fs::fcntl_setfl(&self.fd, f);
    }

    fn seek(&self, off: i64, whence: u32) -> Result<u64, Errno> {
        use rustix::fs::SeekFrom;
        let pos = match whence {
            0 => SeekFrom::Start(u64::try_from(off).map_err(|_| Errno::EINVAL)?),
            1 => SeekFrom::Current(off),
            2 => SeekFrom::End(off),
            3 => SeekFrom::Data(u64::try_from(off).map_err(|_| Errno::ENXIO)?),
            4 => SeekFrom::Hole(u64::try_from(off).map_err(|_| Errno::ENXIO)?),
            _ => return Err(Errno::EINVAL),
        };
        rustix::fs::seek(&self.fd, pos).map_err(host)
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        loop {
            match rustix::io::pread(&self.fd, &mut *buf, off) {
                Err(rustix::io::Errno::INTR) => continue,
                r => return r.map_err(host),
            }
        }
    }

    fn truncate(&self, len: u64) -> Result<(), Errno> {
        self.changed();
        rustix::fs::ftruncate(&self.fd, len).map_err(host)
    }

    fn fsync(&self) -> Result<(), Errno> {
        rustix::fs::fsync(&self.fd).map_err(host)
    }

    fn allocate(&self, m: u32, off: u64, len: u64) -> Result<(), Errno> {
        self.changed();
        let flags = rustix::fs::FallocateFlags::from_bits(m).ok_or(Errno::EOPNOTSUPP)?;
        rustix::fs::fallocate(&self.fd, flags, off, len).map_err(host)
    }
}
