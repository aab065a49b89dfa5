//! Inodes: what a file system implements for each file.

use std::any::Any;
use std::sync::Arc;

use rvisor_syscalls::abi::{Stat, Timespec};
use rvisor_syscalls::Errno;

use super::file::FileOps;

/// `S_IFMT` and the file types.
pub mod mode {
    #![allow(missing_docs)]
    pub const S_IFMT: u32 = 0o170000;
    pub const S_IFSOCK: u32 = 0o140000;
    pub const S_IFLNK: u32 = 0o120000;
    pub const S_IFREG: u32 = 0o100000;
    pub const S_IFBLK: u32 = 0o060000;
    pub const S_IFDIR: u32 = 0o040000;
    pub const S_IFCHR: u32 = 0o020000;
    pub const S_IFIFO: u32 = 0o010000;
    pub const S_ISUID: u32 = 0o4000;
    pub const S_ISGID: u32 = 0o2000;
    pub const S_ISVTX: u32 = 0o1000;
}

/// Where a magic link leads.
pub enum Jump {
    /// A file in the VFS.
    Path(super::Path),
    /// An open file outside the VFS (a pipe, host stdio): a node that
    /// opens it again.
    Inode(InodeRef),
}

impl Jump {
    /// The path following the link at `link` leads to (a node outside
    /// the VFS gets an anonymous dentry under the link's).
    pub fn into_path(self, link: &super::Path) -> Result<super::Path, Errno> {
        Ok(match self {
            Jump::Path(p) => p,
            Jump::Inode(inode) => {
                let ino = inode.attr()?.ino;
                super::Path {
                    mount: link.mount.clone(),
                    dentry: super::Dentry::anonymous(&link.dentry, ino, inode),
                }
            }
        })
    }
}

/// Attributes of an inode.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct InodeAttr {
    pub ino: u64,
    pub dev: u64,
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub blksize: u64,
    pub blocks: u64,
    pub atime: Timespec,
    pub mtime: Timespec,
    pub ctime: Timespec,
}

impl InodeAttr {
    /// The attributes a `struct stat` gives (files outside the VFS).
    pub fn from_stat(s: &Stat) -> InodeAttr {
        let ts = |sec: i64, nsec: i64| Timespec { tv_sec: sec, tv_nsec: nsec };
        InodeAttr {
            ino: s.ino,
            dev: s.dev,
            mode: s.mode,
            nlink: s.nlink,
            uid: s.uid,
            gid: s.gid,
            rdev: s.rdev,
            size: u64::try_from(s.size).unwrap_or(0),
            blksize: u64::try_from(s.blksize).unwrap_or(0),
            blocks: u64::try_from(s.blocks).unwrap_or(0),
            atime: ts(s.atime, s.atime_nsec),
            mtime: ts(s.mtime, s.mtime_nsec),
            ctime: ts(s.ctime, s.ctime_nsec),
        }
    }

    /// The file type bits.
    pub fn kind(&self) -> u32 {
        self.mode & mode::S_IFMT
    }

    /// Whether it is a directory.
    pub fn is_dir(&self) -> bool {
        self.kind() == mode::S_IFDIR
    }

    /// Whether it is a symbolic link.
    pub fn is_symlink(&self) -> bool {
        self.kind() == mode::S_IFLNK
    }

    /// Whether it is a regular file.
    pub fn is_reg(&self) -> bool {
        self.kind() == mode::S_IFREG
    }

    /// As `struct stat`.
    pub fn to_stat(&self) -> Stat {
        let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        Stat {
            dev: self.dev,
            ino: self.ino,
            nlink: self.nlink,
            mode: self.mode,
            uid: self.uid,
            gid: self.gid,
            pad0: 0,
            rdev: self.rdev,
            size: i(self.size),
            blksize: i(self.blksize),
            blocks: i(self.blocks),
            atime: self.atime.tv_sec,
            atime_nsec: self.atime.tv_nsec,
            mtime: self.mtime.tv_sec,
            mtime_nsec: self.mtime.tv_nsec,
            ctime: self.ctime.tv_sec,
            ctime_nsec: self.ctime.tv_nsec,
            unused: [0; 3],
        }
    }
}

/// A time to set: a value, now, or unchanged.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeSet {
    /// Leave it.
    Omit,
    /// The current time.
    Now,
    /// This time.
    At(Timespec),
}

/// Attribute changes (`chmod`, `chown`, `truncate`, `utimensat`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: TimeSet,
    pub mtime: TimeSet,
}

impl Default for SetAttr {
    fn default() -> Self {
        SetAttr { mode: None, uid: None, gid: None, size: None, atime: TimeSet::Omit, mtime: TimeSet::Omit }
    }
}

/// A directory entry, as `getdents64` returns it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirEntry {
    /// Inode number.
    pub ino: u64,
    /// `DT_*` type.
    pub typ: u8,
    /// Name.
    pub name: Vec<u8>,
}

/// `statfs` results.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct FsStats {
    pub fs_type: u64,
    pub bsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub namelen: u64,
    pub frsize: u64,
    pub flags: u64,
}

/// Who creates a file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Owner {
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
}

/// A shared inode.
pub type InodeRef = Arc<dyn Inode>;

/// What a file system implements for each file. Defaults refuse.
pub trait Inode: Send + Sync + Any {
    /// Attributes.
    fn attr(&self) -> Result<InodeAttr, Errno>;
    /// The child `name` of this directory.
    fn lookup(&self, _name: &[u8]) -> Result<InodeRef, Errno> {
        Err(Errno::ENOTDIR)
    }
    /// The target of this symbolic link.
    fn readlink(&self) -> Result<Vec<u8>, Errno> {
        Err(Errno::EINVAL)
    }
    /// Opens the file (`flags`: the `open` flags, validated by the VFS).
    fn open(&self, flags: u32) -> Result<Box<dyn FileOps>, Errno>;
    /// Creates and opens the regular file `name`.
    fn create(
        &self,
        _name: &[u8],
        _mode: u32,
        _owner: Owner,
        _flags: u32,
    ) -> Result<(InodeRef, Box<dyn FileOps>), Errno> {
        Err(Errno::EPERM)
    }
    /// Creates directory `name`.
    /// `O_TMPFILE`: a regular file in this directory's file system with
    /// no name (`linkable`: `linkat` may give it one), and its open file.
    fn tmpfile(
        &self,
        _mode: u32,
        _owner: Owner,
        _flags: u32,
        _linkable: bool,
    ) -> Result<(InodeRef, Box<dyn FileOps>), Errno> {
        Err(Errno::EOPNOTSUPP)
    }
    fn mkdir(&self, _name: &[u8], _mode: u32, _owner: Owner) -> Result<InodeRef, Errno> {
        Err(Errno::EPERM)
    }
    /// Creates a FIFO or socket node `name`.
    fn mknod(&self, _name: &[u8], _mode: u32, _owner: Owner) -> Result<InodeRef, Errno> {
        Err(Errno::EPERM)
    }
    /// Creates symbolic link `name` → `target`.
    fn symlink(&self, _name: &[u8], _target: &[u8], _owner: Owner) -> Result<InodeRef, Errno> {
        Err(Errno::EPERM)
    }
    /// Creates hard link `name` to `target` (same file system).
    fn link(&self, _name: &[u8], _target: &InodeRef) -> Result<InodeRef, Errno> {
        Err(Errno::EPERM)
    }
    /// Removes `name` (`dir`: it must be an empty directory).
    fn unlink(&self, _name: &[u8], _dir: bool) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }
    /// Renames `name` to `new_name` in `new_dir` (same file system).
    fn rename(&self, _name: &[u8], _new_dir: &InodeRef, _new_name: &[u8], _flags: u32) -> Result<(), Errno> {
        Err(Errno::EXDEV)
    }
    /// Directory entries from cookie `cookie` (0: the start), each with
    /// the cookie of the entry after it; empty at the end.
    fn readdir(&self, _cookie: u64) -> Result<Vec<(DirEntry, u64)>, Errno> {
        Err(Errno::ENOTDIR)
    }
    /// Changes attributes.
    fn setattr(&self, _a: &SetAttr) -> Result<(), Errno> {
        Err(Errno::EPERM)
    }
    /// File-system statistics.
    fn statfs(&self) -> Result<FsStats, Errno> {
        Err(Errno::ENOSYS)
    }
    /// Reads extended attribute `name` (`size` 0: its length).
    fn getxattr(&self, _name: &[u8], _size: usize) -> Result<Vec<u8>, Errno> {
        Err(Errno::EOPNOTSUPP)
    }
    /// Sets extended attribute `name`.
    fn setxattr(&self, _name: &[u8], _value: &[u8], _flags: u32) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }
    /// Lists extended attribute names (NUL-separated).
    fn listxattr(&self) -> Result<Vec<u8>, Errno> {
        Err(Errno::EOPNOTSUPP)
    }
    /// Removes extended attribute `name`.
    fn removexattr(&self, _name: &[u8]) -> Result<(), Errno> {
        Err(Errno::EOPNOTSUPP)
    }
    /// Flushes to storage.
    fn fsync(&self) -> Result<(), Errno> {
        Ok(())
    }
    /// Forget cached attributes (after a change made through a file).
    fn invalidate(&self) {}
    /// Whether the dentry cache may keep this inode under its name
    /// (`false` for files that come and go on their own: `/proc`).
    fn cacheable(&self) -> bool {
        true
    }
    /// For a magic link (`/proc/PID/fd/N`, `exe`, `cwd`, `root`): where
    /// following it leads, the file itself rather than the text `readlink`
    /// shows.
    fn jump(&self) -> Option<Result<Jump, Errno>> {
        None
    }
    /// For downcasting within a file system (links, renames).
    fn as_any(&self) -> &dyn Any;
}
