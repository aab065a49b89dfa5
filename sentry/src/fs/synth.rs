//! Building blocks of the sentry's own file systems (`/dev`, `/proc`):
//! directories whose entries are computed when looked at, files whose
//! contents are generated when opened, and links whose targets are
//! computed when read. Nothing here touches the host.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rvisor_syscalls::abi::Timespec;
use rvisor_syscalls::Errno;

use crate::kernel::Task;
use crate::vfs::file::{File, FileOps};
use crate::vfs::inode::{mode, DirEntry, FsStats, Inode, InodeAttr, InodeRef};

/// Inode numbers for synthetic files (one sequence for all of them).
static NEXT_INO: AtomicU64 = AtomicU64::new(1);

/// A fresh inode number.
pub fn new_ino() -> u64 {
    NEXT_INO.fetch_add(1, Ordering::Relaxed)
}

/// The time synthetic files report: when the sentry started.
pub fn boot_time() -> Timespec {
    static T: std::sync::OnceLock<Timespec> = std::sync::OnceLock::new();
    *T.get_or_init(|| {
        let n = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
        Timespec { tv_sec: n.tv_sec, tv_nsec: n.tv_nsec }
    })
}

/// Attributes every synthetic inode shares.
#[derive(Clone, Copy, Debug)]
pub struct Meta {
    /// Inode number.
    pub ino: u64,
    /// Mode, with the file type.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// Device number (device files).
    pub rdev: u64,
    /// `statfs` type of the file system.
    pub fs_type: u64,
}

impl Meta {
    /// A new inode's metadata, owned by root.
    pub fn new(mode: u32, fs_type: u64) -> Meta {
        Meta { ino: new_ino(), mode, uid: 0, gid: 0, rdev: 0, fs_type }
    }

    /// Owned by `uid`:`gid`.
    pub fn owned(self, uid: u32, gid: u32) -> Meta {
        Meta { uid, gid, ..self }
    }

    /// The attributes of an inode with `nlink` links.
    pub fn attr(&self, nlink: u64) -> InodeAttr {
        let t = boot_time();
        InodeAttr {
            ino: self.ino,
            dev: 0,
            mode: self.mode,
            nlink,
            uid: self.uid,
            gid: self.gid,
            rdev: self.rdev,
            size: 0,
            blksize: 4096,
            blocks: 0,
            atime: t,
            mtime: t,
            ctime: t,
        }
    }

    fn statfs(&self) -> FsStats {
        FsStats { fs_type: self.fs_type, bsize: 4096, namelen: 255, frsize: 4096, ..FsStats::default() }
    }
}

fn dtype(mode: u32) -> u8 {
    u8::try_from((mode & mode::S_IFMT) >> 12).unwrap_or(0)
}

/// Computes a directory's entries.
pub type Entries = Box<dyn Fn() -> Vec<(Vec<u8>, InodeRef)> + Send + Sync>;

/// A directory whose entries are computed each time (`cacheable`: whether
/// the dentry cache may keep what it finds in it).
pub struct SynthDir {
    meta: Meta,
    entries: Entries,
    cacheable: bool,
}

impl SynthDir {
    /// A directory (`mode`: permission bits).
    pub fn new(meta: Meta, entries: Entries, cacheable: bool) -> Arc<SynthDir> {
        Arc::new(SynthDir {
            meta: Meta { mode: mode::S_IFDIR | (meta.mode & 0o7777), ..meta },
            entries,
            cacheable,
        })
    }
}

impl Inode for SynthDir {
    fn attr(&self) -> Result<InodeAttr, Errno> {
        Ok(self.meta.attr(2))
    }

    fn lookup(&self, name: &[u8]) -> Result<InodeRef, Errno> {
        (self.entries)().into_iter().find(|(n, _)| n == name).map(|(_, i)| i).ok_or(Errno::ENOENT)
    }

    fn open(&self, _flags: u32) -> Result<Box<dyn FileOps>, Errno> {
        Err(Errno::EISDIR)
    }

    fn readdir(&self, cookie: u64) -> Result<Vec<(DirEntry, u64)>, Errno> {
        let mut all = vec![
            DirEntry { ino: self.meta.ino, typ: 4, name: b".".to_vec() },
            DirEntry { ino: self.meta.ino, typ: 4, name: b"..".to_vec() },
        ];
        for (name, inode) in (self.entries)() {
            let a = inode.attr()?;
            all.push(DirEntry { ino: a.ino, typ: dtype(a.mode), name });
        }
        let start = usize::try_from(cookie).unwrap_or(usize::MAX);
        Ok(all.into_iter().enumerate().skip(start).map(|(i, e)| (e, i as u64 + 1)).collect())
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(self.meta.statfs())
    }

    fn cacheable(&self) -> bool {
        self.cacheable
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// Generates a file's contents.
pub type Generate = Box<dyn Fn() -> Result<Vec<u8>, Errno> + Send + Sync>;

/// Bytes of generated contents held by open files, all together.
static SNAPSHOT_BYTES: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
/// Most bytes of generated contents held at once (`ENOMEM` past it): the
/// application chooses how many it opens and reads.
const MAX_SNAPSHOT_BYTES: usize = 64 << 20;

/// A read-only file whose contents are generated when it is first read
/// (a snapshot, as Linux's `seq_file` gives one per read window).
pub struct SynthFile {
    meta: Meta,
    generate: Arc<Generate>,
    store: Option<Arc<Store>>,
}

/// Takes what is written to a writable synthetic file (one `write` at a
/// time, as Linux's `/proc` files take a value per call).
pub type Store = Box<dyn Fn(&[u8]) -> Result<(), Errno> + Send + Sync>;

impl SynthFile {
    /// A file (`mode`: permission bits).
    pub fn new(meta: Meta, generate: Generate) -> Arc<SynthFile> {
        Arc::new(SynthFile {
            meta: Meta { mode: mode::S_IFREG | (meta.mode & 0o7777), ..meta },
            generate: Arc::new(generate),
            store: None,
        })
    }

    /// A file whose writes go to `store`.
    pub fn writable(meta: Meta, generate: Generate, store: Store) -> Arc<SynthFile> {
        Arc::new(SynthFile {
            meta: Meta { mode: mode::S_IFREG | (meta.mode & 0o7777), ..meta },
            generate: Arc::new(generate),
            store: Some(Arc::new(store)),
        })
    }
}

impl Inode for SynthFile {
    fn attr(&self) -> Result<InodeAttr, Errno> {
        Ok(self.meta.attr(1))
    }

    fn open(&self, _flags: u32) -> Result<Box<dyn FileOps>, Errno> {
        // Who may open it for writing is the VFS's business (its modes);
        // writes fail unless the file stores them.
        Ok(Box::new(BufferFile {
            generate: self.generate.clone(),
            store: self.store.clone(),
            data: Mutex::new(None),
            pos: Mutex::new(0),
        }))
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(self.meta.statfs())
    }

    fn cacheable(&self) -> bool {
        false
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}

/// An open generated file: the snapshot taken at its first read.
struct BufferFile {
    generate: Arc<Generate>,
    store: Option<Arc<Store>>,
    data: Mutex<Option<Vec<u8>>>,
    pos: Mutex<u64>,
}

impl Drop for BufferFile {
    fn drop(&mut self) {
        let held = self.data.get_mut().map(|d| d.as_ref().map_or(0, Vec::len)).unwrap_or(0);
        SNAPSHOT_BYTES.fetch_sub(held, std::sync::atomic::Ordering::Relaxed);
    }
}

impl BufferFile {
    /// Runs `f` on the snapshot, taking it first if needed.
    fn with_data<T>(&self, f: impl FnOnce(&[u8]) -> T) -> Result<T, Errno> {
        let mut d = self.data.lock().unwrap_or_else(|p| p.into_inner());
        if d.is_none() {
            let v = (self.generate)()?;
            let before = SNAPSHOT_BYTES.fetch_add(v.len(), std::sync::atomic::Ordering::Relaxed);
            if before + v.len() > MAX_SNAPSHOT_BYTES {
                SNAPSHOT_BYTES.fetch_sub(v.len(), std::sync::atomic::Ordering::Relaxed);
                return Err(Errno::ENOMEM);
            }
            *d = Some(v);
        }
        Ok(f(d.as_deref().unwrap_or_default()))
    }
}

impl FileOps for BufferFile {
    fn read(&self, _t: &Task, _f: &File, buf: &mut [u8], off: Option<u64>) -> Result<usize, Errno> {
        let mut pos = self.pos.lock().unwrap_or_else(|p| p.into_inner());
        let at = off.unwrap_or(*pos);
        let n = self.with_data(|data| {
            let start = usize::try_from(at).unwrap_or(usize::MAX).min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            n
        })?;
        if off.is_none() {
            *pos = at + n as u64;
        }
        Ok(n)
    }

    fn write(&self, _t: &Task, _f: &File, data: &[u8], _off: Option<u64>) -> Result<usize, Errno> {
        let store = self.store.as_ref().ok_or(Errno::EINVAL)?;
        store(data)?;
        Ok(data.len())
    }

    fn seek(&self, off: i64, whence: u32) -> Result<u64, Errno> {
        let mut pos = self.pos.lock().unwrap_or_else(|p| p.into_inner());
        let base = match whence {
            0 => 0,
            1 => i64::try_from(*pos).map_err(|_| Errno::EOVERFLOW)?,
            2 => i64::try_from(self.with_data(<[u8]>::len)?).map_err(|_| Errno::EOVERFLOW)?,
            _ => return Err(Errno::EINVAL),
        };
        let new = base.checked_add(off).filter(|v| *v >= 0).ok_or(Errno::EINVAL)?;
        *pos = new.cast_unsigned();
        Ok(*pos)
    }

    fn read_at(&self, buf: &mut [u8], off: u64) -> Result<usize, Errno> {
        self.with_data(|data| {
            let start = usize::try_from(off).unwrap_or(usize::MAX).min(data.len());
            let n = buf.len().min(data.len() - start);
            buf[..n].copy_from_slice(&data[start..start + n]);
            n
        })
    }
}

/// Computes a link's target.
pub type Target = Box<dyn Fn() -> Result<Vec<u8>, Errno> + Send + Sync>;

/// Where a magic link leads, computed when followed.
pub type JumpTarget = Box<dyn Fn() -> Result<crate::vfs::inode::Jump, Errno> + Send + Sync>;

/// A symbolic link whose target is computed when read.
pub struct SynthLink {
    meta: Meta,
    target: Target,
    cacheable: bool,
    jump: Option<JumpTarget>,
}

impl SynthLink {
    /// A link.
    pub fn new(meta: Meta, target: Target, cacheable: bool) -> Arc<SynthLink> {
        Arc::new(SynthLink {
            meta: Meta { mode: mode::S_IFLNK | 0o777, ..meta },
            target,
            cacheable,
            jump: None,
        })
    }

    /// A magic link: `readlink` shows `target`, following it leads to
    /// what `jump` says.
    pub fn magic(meta: Meta, target: Target, jump: JumpTarget) -> Arc<SynthLink> {
        Arc::new(SynthLink {
            meta: Meta { mode: mode::S_IFLNK | 0o777, ..meta },
            target,
            cacheable: false,
            jump: Some(jump),
        })
    }
}

impl Inode for SynthLink {
    fn attr(&self) -> Result<InodeAttr, Errno> {
        let mut a = self.meta.attr(1);
        a.size = (self.target)().map_or(0, |t| t.len() as u64);
        Ok(a)
    }

    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        (self.target)()
    }

    fn jump(&self) -> Option<Result<crate::vfs::inode::Jump, Errno>> {
        self.jump.as_ref().map(|j| j())
    }

    fn open(&self, _flags: u32) -> Result<Box<dyn FileOps>, Errno> {
        Err(Errno::ELOOP)
    }

    fn statfs(&self) -> Result<FsStats, Errno> {
        Ok(self.meta.statfs())
    }

    fn cacheable(&self) -> bool {
        self.cacheable
    }

    fn as_any(&self) -> &dyn std::any::Any {
        self
    }
}
