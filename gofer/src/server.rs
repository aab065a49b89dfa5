//! The gofer's request handling.
//!
//! The gofer never resolves a path. Every file it knows is a *fid*: an
//! `O_PATH | O_NOFOLLOW` descriptor reached by walking one validated name at
//! a time from an attach point, never following a symbolic link (a link is
//! returned as itself; the sentry reads it and walks the target). Opening a
//! fid for I/O reopens it by (parent, name) with `O_NOFOLLOW` and checks the
//! result is the same inode. Only regular files and directories are ever
//! opened (a FIFO or device would block or reach host hardware; the sentry
//! implements those itself). The sentry is treated as possibly compromised:
//! unknown fids are `EBADF`, every message goes through the decoder, and a
//! bad request gets an error reply while the gofer goes on serving.

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rustix::fs::{AtFlags, Mode, OFlags, RawDir, StatxFlags};
use rustix::io::Errno;

use crate::channel;
use crate::protocol::{
    self, setattr, Attr, Dirent, Fid, FsStat, Name, Reply, Request, MAX_DIRENTS, MAX_TARGET, MAX_XATTR,
};

/// Most fids the gofer holds for one sandbox (each is a host descriptor).
pub const MAX_FIDS: usize = 1 << 18;

/// One directory tree the gofer serves.
#[derive(Debug)]
pub struct AttachPoint {
    /// `O_PATH` descriptor of its root.
    pub root: OwnedFd,
    /// Whether writes are refused (`EROFS`).
    pub read_only: bool,
}

struct FidEntry {
    fd: OwnedFd,
    /// The attach point (export) it was walked from.
    point: u32,
    read_only: bool,
    /// A readable directory descriptor for `Getdents`.
    dir: Mutex<Option<OwnedFd>>,
}

/// The file server state shared by every channel.
pub struct Server {
    attach: Vec<AttachPoint>,
    /// `/proc/self/fd` of the gofer, opened before it confined itself.
    fd_dir: OwnedFd,
    fids: Mutex<HashMap<Fid, Arc<FidEntry>>>,
    next: AtomicU64,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server").field("attach", &self.attach.len()).finish_non_exhaustive()
    }
}

type Result<T> = std::result::Result<T, Errno>;

fn attr_of(fd: BorrowedFd<'_>) -> Result<Attr> {
    let s =
        rustix::fs::statx(fd, "", AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW, StatxFlags::BASIC_STATS)?;
    let t = |t: rustix::fs::StatxTimestamp| (t.tv_sec, t.tv_nsec);
    Ok(Attr {
        dev: u64::from(s.stx_dev_major) << 32 | u64::from(s.stx_dev_minor),
        ino: s.stx_ino,
        mode: u32::from(s.stx_mode),
        nlink: u64::from(s.stx_nlink),
        uid: s.stx_uid,
        gid: s.stx_gid,
        rdev: u64::from(s.stx_rdev_major) << 32 | u64::from(s.stx_rdev_minor),
        size: s.stx_size,
        blksize: u64::from(s.stx_blksize),
        blocks: s.stx_blocks,
        atime: t(s.stx_atime),
        mtime: t(s.stx_mtime),
        ctime: t(s.stx_ctime),
    })
}

const S_IFMT: u32 = 0o170000;
const S_IFREG: u32 = 0o100000;
const S_IFDIR: u32 = 0o040000;
const S_IFIFO: u32 = 0o010000;
const S_IFSOCK: u32 = 0o140000;
const S_IFLNK: u32 = 0o120000;

/// File systems of the host's kernel interfaces, never served wherever
/// they are mounted in an exported tree (`statfs` magic numbers): procfs,
/// sysfs, debugfs, tracefs, securityfs, cgroup, cgroup2, devpts, bpf,
/// configfs, pstore, efivarfs, binfmt_misc, fusectl, selinuxfs, mqueue.
const KERNEL_FS: [i64; 16] = [
    0x9fa0,
    0x6265_6572,
    0x6462_6720,
    0x7472_6163,
    0x7363_6673,
    0x0027_e0eb,
    0x6367_7270,
    0x1cd1,
    0xcafe_4a11,
    0x6265_6570,
    0x6165_676c,
    0xde5e_81e4,
    0x4249_4e4d,
    0x6573_5546,
    0xf97c_ff8c,
    0x1980_0202,
];

/// Opens `name` in directory `dir` (`O_PATH`, never following a link);
/// refuses a mount of a kernel interface file system (`EACCES`).
fn walk_one(dir: BorrowedFd<'_>, name: &Name) -> Result<OwnedFd> {
    let fd = rustix::fs::openat(
        dir,
        name.as_bytes(),
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // Only a mount can change the file system: compare devices first.
    let (a, b) = (rustix::fs::fstat(dir)?, rustix::fs::fstat(&fd)?);
    if a.st_dev != b.st_dev {
        let f_type = rustix::fs::fstatfs(&fd)?.f_type;
        if KERNEL_FS.contains(&f_type) {
            return Err(Errno::ACCESS);
        }
    }
    Ok(fd)
}

fn is_dir(a: &Attr) -> bool {
    a.mode & S_IFMT == S_IFDIR
}

/// Mode bits the gofer lets the sentry set on host files: all of them, as
/// Linux and runc let a container's root (set-id bits included; the
/// security model says to export volumes `nosuid` when host users run
/// files from them). The sentry decides who may set what.
const SETTABLE_MODE: u32 = 0o7777;

fn uid(v: u32) -> rustix::fs::Uid {
    rustix::fs::Uid::from_raw(v)
}

fn gid(v: u32) -> rustix::fs::Gid {
    rustix::fs::Gid::from_raw(v)
}

/// Opens `/proc/self/fd` (`O_PATH`) for [`Server::new`]; call it before
/// confinement hides `/proc`.
pub fn open_fd_dir() -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::open("/proc/self/fd", OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?)
}

impl Server {
    /// A server for these trees (attach point `i` is what `Attach(i)`
    /// returns; the protocol's `Attach` serves point 0).
    ///
    /// `fd_dir` is the gofer's own `/proc/self/fd` (see [`open_fd_dir`]):
    /// a file is reopened through the descriptor the gofer holds for it, so
    /// a rename or unlink since the walk does not matter.
    pub fn new(attach: Vec<AttachPoint>, fd_dir: OwnedFd) -> Server {
        Server { attach, fd_dir, fids: Mutex::new(HashMap::new()), next: AtomicU64::new(1) }
    }

    fn fid(&self, f: Fid) -> Result<Arc<FidEntry>> {
        self.fids.lock().unwrap_or_else(|p| p.into_inner()).get(&f).cloned().ok_or(Errno::BADF)
    }

    fn insert(&self, e: FidEntry) -> Result<Fid> {
        let mut fids = self.fids.lock().unwrap_or_else(|p| p.into_inner());
        if fids.len() >= MAX_FIDS {
            return Err(Errno::NFILE);
        }
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        fids.insert(id, Arc::new(e));
        Ok(id)
    }

    /// Serves one channel until the sentry closes it.
    pub fn serve(&self, sock: OwnedFd) {
        loop {
            let r = match channel::recv(&sock) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!("gofer channel: {e}");
                    return;
                }
            };
            if r.msg.is_empty() && !r.malformed {
                return;
            }
            // Requests never carry descriptors: one that does is dropped
            // (closed) with the message.
            let (id, reply, fd) = match (r.malformed || r.fd.is_some(), Request::decode(&r.msg)) {
                (false, Ok((id, req))) => {
                    let (reply, fd) = self.handle(req);
                    (id, reply, fd)
                }
                (_, Ok((id, _))) => (id, Reply::Error(libc::EBADMSG), None),
                (_, Err(e)) => {
                    tracing::warn!("gofer: malformed request: {e}");
                    let id = protocol::parse_header(&r.msg).map(|(_, id, _)| id).unwrap_or(0);
                    (id, Reply::Error(libc::EBADMSG), None)
                }
            };
            if let Err(e) = channel::send(sock.as_fd(), &reply.encode(id), fd.as_ref().map(AsFd::as_fd)) {
                tracing::warn!("gofer reply: {e}");
                return;
            }
        }
    }

    /// Handles one request.
    pub fn handle(&self, req: Request) -> (Reply, Option<OwnedFd>) {
        match self.dispatch(req) {
            Ok(r) => r,
            Err(e) => (Reply::Error(e.raw_os_error()), None),
        }
    }

    fn writable(&self, e: &FidEntry) -> Result<()> {
        if e.read_only {
            Err(Errno::ROFS)
        } else {
            Ok(())
        }
    }

    fn child(&self, parent: &Arc<FidEntry>, name: &Name) -> Result<(Fid, Attr)> {
        let fd = walk_one(parent.fd.as_fd(), name)?;
        let attr = attr_of(fd.as_fd())?;
        self.adopt(parent, fd, attr)
    }

    /// A fid for `fd`, a file below `parent`'s export.
    fn adopt(&self, parent: &FidEntry, fd: OwnedFd, attr: Attr) -> Result<(Fid, Attr)> {
        let e = FidEntry { fd, point: parent.point, read_only: parent.read_only, dir: Mutex::new(None) };
        Ok((self.insert(e)?, attr))
    }

    /// The fid of a node just made as `name` in `d` (a directory, FIFO,
    /// socket or link, which give no descriptor when made), owned by
    /// `u`:`g`. Opened by name once, checked to be a node of `kind` the
    /// gofer itself owns (what it just made), then changed through that
    /// descriptor: a rename in between can at worst redirect the change to
    /// an equal node the gofer owns, never to someone else's file.
    fn created(&self, d: &Arc<FidEntry>, name: &Name, kind: u32, u: u32, g: u32) -> Result<(Fid, Attr)> {
        let fd = walk_one(d.fd.as_fd(), name)?;
        let a = attr_of(fd.as_fd())?;
        if a.mode & S_IFMT != kind || a.uid != rustix::process::geteuid().as_raw() {
            return Err(Errno::AGAIN);
        }
        rustix::fs::chownat(
            &fd,
            "",
            Some(uid(u)),
            Some(gid(g)),
            AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW,
        )?;
        let attr = attr_of(fd.as_fd())?;
        self.adopt(d, fd, attr)
    }

    /// A new descriptor for the file `e` holds (a regular file or
    /// directory: the callers check), through `/proc/self/fd/N` of the
    /// gofer's own `O_PATH` descriptor: the name the file was walked by may
    /// have been renamed or unlinked since. The name under `fd_dir` is a
    /// number the gofer formats itself.
    fn reopen(&self, e: &FidEntry, flags: OFlags) -> Result<OwnedFd> {
        let flags = flags | OFlags::CLOEXEC | OFlags::NOCTTY;
        let name = e.fd.as_raw_fd().to_string();
        let fd = rustix::fs::openat(&self.fd_dir, name.as_str(), flags, Mode::empty())?;
        let (a, b) = (attr_of(e.fd.as_fd())?, attr_of(fd.as_fd())?);
        if (a.dev, a.ino) != (b.dev, b.ino) {
            return Err(Errno::STALE);
        }
        Ok(fd)
    }

    fn dispatch(&self, req: Request) -> Result<(Reply, Option<OwnedFd>)> {
        let ok = |r: Reply| Ok((r, None));
        match req {
            Request::Attach { point } => {
                let a = usize::try_from(point).ok().and_then(|i| self.attach.get(i)).ok_or(Errno::NOENT)?;
                let fd = a.root.try_clone().map_err(|_| Errno::MFILE)?;
                if KERNEL_FS.contains(&rustix::fs::fstatfs(&fd)?.f_type) {
                    return Err(Errno::ACCESS);
                }
                let attr = attr_of(fd.as_fd())?;
                let fid =
                    self.insert(FidEntry { fd, point, read_only: a.read_only, dir: Mutex::new(None) })?;
                ok(Reply::Node { fid, attr })
            }
            Request::Walk { dir, names } => {
                let mut out = Vec::new();
                let mut at = self.fid(dir)?;
                for (i, n) in names.iter().enumerate() {
                    match self.child(&at, n) {
                        Ok((fid, attr)) => {
                            out.push((fid, attr));
                            if !is_dir(&attr) {
                                break;
                            }
                            at = self.fid(fid)?;
                        }
                        Err(e) if i == 0 => return Err(e),
                        Err(_) => break,
                    }
                }
                ok(Reply::Walk(out))
            }
            Request::WalkStat { dir, names } => {
                let mut out = Vec::new();
                let start = self.fid(dir)?;
                let mut cur: Option<OwnedFd> = None;
                for (i, n) in names.iter().enumerate() {
                    let base = cur.as_ref().map_or(start.fd.as_fd(), AsFd::as_fd);
                    let next = walk_one(base, n);
                    let fd = match next {
                        Ok(fd) => fd,
                        Err(e) if i == 0 => return Err(e),
                        Err(_) => break,
                    };
                    let attr = attr_of(fd.as_fd())?;
                    out.push(attr);
                    if !is_dir(&attr) {
                        break;
                    }
                    cur = Some(fd);
                }
                ok(Reply::WalkStat(out))
            }
            Request::Open { fid, flags } => {
                let e = self.fid(fid)?;
                let attr = attr_of(e.fd.as_fd())?;
                let flags = OFlags::from_bits_retain(flags);
                let acc = flags & OFlags::RWMODE;
                let mut open =
                    acc | (flags & (OFlags::APPEND | OFlags::TRUNC | OFlags::NOATIME | OFlags::DIRECTORY));
                match attr.mode & S_IFMT {
                    S_IFREG => {}
                    S_IFDIR if acc == OFlags::RDONLY && !flags.contains(OFlags::TRUNC) => {
                        open |= OFlags::DIRECTORY
                    }
                    S_IFDIR => return Err(Errno::ISDIR),
                    _ => return Err(Errno::NXIO),
                }
                if acc != OFlags::RDONLY || flags.contains(OFlags::TRUNC) {
                    self.writable(&e)?;
                }
                let fd = self.reopen(&e, open)?;
                Ok((Reply::Ok, Some(fd)))
            }
            Request::Create { dir, name, flags, mode, uid: u, gid: g } => {
                let d = self.fid(dir)?;
                self.writable(&d)?;
                let f = OFlags::from_bits_retain(flags);
                let open = (f & (OFlags::RWMODE | OFlags::APPEND))
                    | OFlags::CREATE
                    | OFlags::EXCL
                    | OFlags::NOFOLLOW
                    | OFlags::CLOEXEC
                    | OFlags::NOCTTY;
                let fd = rustix::fs::openat(
                    &d.fd,
                    name.as_bytes(),
                    open,
                    Mode::from_bits_truncate(mode & SETTABLE_MODE),
                )?;
                // The change of owner clears set-id bits: set them again.
                let owned = rustix::fs::fchown(&fd, Some(uid(u)), Some(gid(g))).and_then(|()| {
                    if mode & 0o6000 != 0 {
                        rustix::fs::fchmod(&fd, Mode::from_bits_truncate(mode & SETTABLE_MODE))
                    } else {
                        Ok(())
                    }
                });
                if let Err(e) = owned {
                    let _ = rustix::fs::unlinkat(&d.fd, name.as_bytes(), AtFlags::empty());
                    return Err(e);
                }
                // The fid is the created file itself (through the gofer's
                // /proc/self/fd), not whatever the name holds by now.
                let num = fd.as_raw_fd().to_string();
                let path = rustix::fs::openat(
                    &self.fd_dir,
                    num.as_str(),
                    OFlags::PATH | OFlags::CLOEXEC,
                    Mode::empty(),
                )?;
                let attr = attr_of(path.as_fd())?;
                let (fid, attr) = self.adopt(&d, path, attr)?;
                Ok((Reply::Node { fid, attr }, Some(fd)))
            }
            Request::Mkdir { dir, name, mode, uid: u, gid: g } => {
                let d = self.fid(dir)?;
                self.writable(&d)?;
                rustix::fs::mkdirat(&d.fd, name.as_bytes(), Mode::from_bits_truncate(mode & SETTABLE_MODE))?;
                let (fid, attr) = self.created(&d, &name, S_IFDIR, u, g)?;
                ok(Reply::Node { fid, attr })
            }
            Request::Mknod { dir, name, mode, uid: u, gid: g } => {
                let d = self.fid(dir)?;
                self.writable(&d)?;
                let kind = mode & S_IFMT;
                if kind != S_IFIFO && kind != S_IFSOCK {
                    // Device nodes are the sentry's (devfs), never the host's.
                    return Err(Errno::PERM);
                }
                let ft =
                    if kind == S_IFIFO { rustix::fs::FileType::Fifo } else { rustix::fs::FileType::Socket };
                rustix::fs::mknodat(
                    &d.fd,
                    name.as_bytes(),
                    ft,
                    Mode::from_bits_truncate(mode & SETTABLE_MODE),
                    0,
                )?;
                let (fid, attr) = self.created(&d, &name, kind, u, g)?;
                ok(Reply::Node { fid, attr })
            }
            Request::Symlink { dir, name, target, uid: u, gid: g } => {
                let d = self.fid(dir)?;
                self.writable(&d)?;
                rustix::fs::symlinkat(target.as_slice(), &d.fd, name.as_bytes())?;
                let (fid, attr) = self.created(&d, &name, S_IFLNK, u, g)?;
                ok(Reply::Node { fid, attr })
            }
            Request::Link { dir, name, target } => {
                let d = self.fid(dir)?;
                self.writable(&d)?;
                let t = self.fid(target)?;
                if t.point != d.point {
                    return Err(Errno::XDEV);
                }
                // By the held descriptor (CAP_DAC_READ_SEARCH), not by a name
                // that may have changed.
                rustix::fs::linkat(&t.fd, "", &d.fd, name.as_bytes(), AtFlags::EMPTY_PATH)?;
                let (fid, attr) = self.child(&d, &name)?;
                ok(Reply::Node { fid, attr })
            }
            Request::Unlink { dir, name, flags } => {
                let d = self.fid(dir)?;
                self.writable(&d)?;
                let f = AtFlags::from_bits_retain(flags) & AtFlags::REMOVEDIR;
                rustix::fs::unlinkat(&d.fd, name.as_bytes(), f)?;
                ok(Reply::Ok)
            }
            Request::Rename { old_dir, old, new_dir, new, flags } => {
                let (a, b) = (self.fid(old_dir)?, self.fid(new_dir)?);
                self.writable(&a)?;
                self.writable(&b)?;
                if a.point != b.point {
                    return Err(Errno::XDEV);
                }
                let f = rustix::fs::RenameFlags::from_bits_retain(flags)
                    & (rustix::fs::RenameFlags::NOREPLACE | rustix::fs::RenameFlags::EXCHANGE);
                rustix::fs::renameat_with(&a.fd, old.as_bytes(), &b.fd, new.as_bytes(), f)?;
                ok(Reply::Ok)
            }
            Request::Readlink { fid } => {
                let e = self.fid(fid)?;
                let t = rustix::fs::readlinkat(&e.fd, "", Vec::with_capacity(256))?;
                let t = t.into_bytes();
                if t.len() > MAX_TARGET {
                    return Err(Errno::NAMETOOLONG);
                }
                ok(Reply::Bytes(t))
            }
            Request::Getdents { fid, off } => ok(Reply::Dirents(self.getdents(fid, off)?)),
            Request::Stat { fid } => ok(Reply::Attr(attr_of(self.fid(fid)?.fd.as_fd())?)),
            Request::SetAttr { fid, mask, mode, uid: u, gid: g, size, atime, mtime } => {
                let e = self.fid(fid)?;
                self.writable(&e)?;
                self.setattr(&e, mask, mode, u, g, size, atime, mtime)?;
                ok(Reply::Ok)
            }
            Request::StatFs { fid } => {
                let s = rustix::fs::fstatfs(&self.fid(fid)?.fd)?;
                ok(Reply::FsStat(FsStat {
                    fs_type: u64::try_from(s.f_type).unwrap_or(0),
                    bsize: u64::try_from(s.f_bsize).unwrap_or(0),
                    blocks: s.f_blocks,
                    bfree: s.f_bfree,
                    bavail: s.f_bavail,
                    files: s.f_files,
                    ffree: s.f_ffree,
                    // The sentry reports its own file-system ids.
                    fsid: 0,
                    namelen: u64::try_from(s.f_namelen).unwrap_or(0),
                    frsize: u64::try_from(s.f_frsize).unwrap_or(0),
                    flags: u64::try_from(s.f_flags).unwrap_or(0),
                }))
            }
            Request::Fsync { fid } => {
                let e = self.fid(fid)?;
                let fd = self.reopen_for_attrs(&e)?;
                rustix::fs::fsync(&fd)?;
                ok(Reply::Ok)
            }
            Request::GetXattr { fid, name, size } => {
                let e = self.fid(fid)?;
                let fd = self.reopen_for_attrs(&e)?;
                if size == 0 {
                    let n = rustix::fs::fgetxattr_query(&fd, name.as_slice())?;
                    return ok(Reply::Len(u32::try_from(n).unwrap_or(u32::MAX)));
                }
                let mut v = vec![0u8; usize::try_from(size).unwrap_or(MAX_XATTR).min(MAX_XATTR)];
                let n = rustix::fs::fgetxattr(&fd, name.as_slice(), &mut v[..])?;
                v.truncate(n);
                ok(Reply::Bytes(v))
            }
            Request::SetXattr { fid, name, value, flags } => {
                let e = self.fid(fid)?;
                self.writable(&e)?;
                let fd = self.reopen_for_attrs(&e)?;
                let f = rustix::fs::XattrFlags::from_bits_retain(flags)
                    & (rustix::fs::XattrFlags::CREATE | rustix::fs::XattrFlags::REPLACE);
                rustix::fs::fsetxattr(&fd, name.as_slice(), &value, f)?;
                ok(Reply::Ok)
            }
            Request::ListXattr { fid, size } => {
                let e = self.fid(fid)?;
                let fd = self.reopen_for_attrs(&e)?;
                if size == 0 {
                    let n = rustix::fs::flistxattr_query(&fd)?;
                    return ok(Reply::Len(u32::try_from(n).unwrap_or(u32::MAX)));
                }
                let mut v = vec![0u8; usize::try_from(size).unwrap_or(MAX_XATTR).min(MAX_XATTR)];
                let n = rustix::fs::flistxattr(&fd, &mut v[..])?;
                v.truncate(n);
                ok(Reply::Bytes(v))
            }
            Request::RemoveXattr { fid, name } => {
                let e = self.fid(fid)?;
                self.writable(&e)?;
                let fd = self.reopen_for_attrs(&e)?;
                rustix::fs::fremovexattr(&fd, name.as_slice())?;
                ok(Reply::Ok)
            }
            Request::Close { fids } => {
                let mut t = self.fids.lock().unwrap_or_else(|p| p.into_inner());
                for f in fids {
                    t.remove(&f);
                }
                ok(Reply::Ok)
            }
        }
    }

    /// A descriptor to read or change attributes through: the file itself
    /// for regular files and directories, refused for anything else.
    fn reopen_for_attrs(&self, e: &FidEntry) -> Result<OwnedFd> {
        let a = attr_of(e.fd.as_fd())?;
        match a.mode & S_IFMT {
            S_IFREG => self.reopen(e, OFlags::RDONLY),
            S_IFDIR => self.reopen(e, OFlags::RDONLY | OFlags::DIRECTORY),
            _ => Err(Errno::OPNOTSUPP),
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn setattr(
        &self,
        e: &FidEntry,
        mask: u32,
        mode: u32,
        u: u32,
        g: u32,
        size: u64,
        atime: (i64, u32),
        mtime: (i64, u32),
    ) -> Result<()> {
        if mask & (setattr::UID | setattr::GID) != 0 {
            let o = (mask & setattr::UID != 0).then(|| uid(u));
            let gr = (mask & setattr::GID != 0).then(|| gid(g));
            rustix::fs::chownat(&e.fd, "", o, gr, AtFlags::EMPTY_PATH)?;
        }
        if mask & setattr::MODE != 0 {
            let fd = self.reopen_for_attrs(e)?;
            rustix::fs::fchmod(&fd, Mode::from_bits_truncate(mode & SETTABLE_MODE))?;
        }
        if mask & setattr::SIZE != 0 {
            if attr_of(e.fd.as_fd())?.mode & S_IFMT != S_IFREG {
                return Err(Errno::INVAL);
            }
            let fd = self.reopen(e, OFlags::WRONLY)?;
            rustix::fs::ftruncate(&fd, size)?;
        }
        let times = setattr::ATIME | setattr::MTIME | setattr::ATIME_NOW | setattr::MTIME_NOW;
        if mask & times != 0 {
            let ts = |set: u32, now: u32, t: (i64, u32)| rustix::fs::Timespec {
                tv_sec: t.0,
                tv_nsec: if mask & now != 0 {
                    rustix::fs::UTIME_NOW
                } else if mask & set != 0 {
                    i64::from(t.1)
                } else {
                    rustix::fs::UTIME_OMIT
                },
            };
            let t = rustix::fs::Timestamps {
                last_access: ts(setattr::ATIME, setattr::ATIME_NOW, atime),
                last_modification: ts(setattr::MTIME, setattr::MTIME_NOW, mtime),
            };
            rustix::fs::utimensat(&e.fd, "", &t, AtFlags::EMPTY_PATH | AtFlags::SYMLINK_NOFOLLOW)?;
        }
        Ok(())
    }

    fn getdents(&self, fid: Fid, off: u64) -> Result<Vec<Dirent>> {
        let e = self.fid(fid)?;
        let mut slot = e.dir.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            if !is_dir(&attr_of(e.fd.as_fd())?) {
                return Err(Errno::NOTDIR);
            }
            *slot = Some(self.reopen(&e, OFlags::RDONLY | OFlags::DIRECTORY)?);
        }
        let fd = slot.as_ref().ok_or(Errno::BADF)?;
        rustix::fs::seek(fd, rustix::fs::SeekFrom::Start(off))?;
        let mut buf = vec![MaybeUninit::uninit(); 32 * 1024];
        let mut dir = RawDir::new(fd, &mut buf);
        let mut out = Vec::new();
        let mut bytes = 0;
        while let Some(ent) = dir.next() {
            let ent = ent?;
            let name = ent.file_name().to_bytes().to_vec();
            bytes += name.len() + 24;
            let typ = u8::try_from(ent.file_type().as_raw_mode() >> 12).unwrap_or(0);
            out.push(Dirent { ino: ent.ino(), off: ent.next_entry_cookie(), typ, name });
            if bytes > MAX_DIRENTS - 512 {
                break;
            }
        }
        Ok(out)
    }
}
