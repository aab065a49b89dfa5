//! The gofer protocol: typed messages over `SOCK_SEQPACKET`, one request
//! and one reply per message, host descriptors (opened files) passed with
//! `SCM_RIGHTS`.
//!
//! Every message starts with a 16-byte header: version (`u16`), operation
//! (`u16`), payload length (`u32`), request id (`u64`); all integers are
//! little-endian. Replies carry the request's id and operation with
//! [`REPLY`] set, or [`OP_ERROR`] with an errno. There is one decoder for
//! each direction ([`Request::decode`], [`Reply::decode`]); it rejects
//! anything malformed: a wrong version, an unknown operation, a length that
//! does not match, trailing bytes, counts or sizes over the limits, and
//! names that are empty, longer than 255 bytes, contain `/` or NUL, or are
//! `.` or `..`. Both sides treat the other as hostile.

use thiserror::Error;

/// Protocol version.
pub const VERSION: u16 = 1;
/// Size of the header.
pub const HEADER: usize = 16;
/// Largest message (header and payload).
pub const MAX_MESSAGE: usize = 192 * 1024;
/// Longest name.
pub const MAX_NAME: usize = 255;
/// Longest symbolic link target (`PATH_MAX` without the NUL).
pub const MAX_TARGET: usize = 4095;
/// Most components in one walk.
pub const MAX_WALK: usize = 256;
/// Largest extended attribute value (`XATTR_SIZE_MAX`).
pub const MAX_XATTR: usize = 65536;
/// Most fids in one close.
pub const MAX_CLOSE: usize = 4096;
/// Most bytes of directory entries in one reply.
pub const MAX_DIRENTS: usize = 64 * 1024;
/// Set on reply operations.
pub const REPLY: u16 = 0x8000;
/// The error reply.
pub const OP_ERROR: u16 = 0xffff;

/// A file id: the gofer's handle on a file it opened for the sentry.
pub type Fid = u64;

/// Why a message was rejected.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum DecodeError {
    /// Shorter than its header or than its fields.
    #[error("message truncated")]
    Truncated,
    /// Longer than the header said or than allowed.
    #[error("message too long or with trailing bytes")]
    TooLong,
    /// Another protocol version.
    #[error("protocol version {0}")]
    Version(u16),
    /// An operation this side does not know.
    #[error("unknown operation {0:#x}")]
    UnknownOp(u16),
    /// A name that is not a single path component.
    #[error("invalid name")]
    BadName,
    /// A count or size over the protocol's limits.
    #[error("count or size over the limit")]
    Limit,
}

/// A validated single path component.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Name(Vec<u8>);

impl std::fmt::Debug for Name {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(&self.0))
    }
}

impl Name {
    /// `b` as a name, if it is one: 1 to 255 bytes, no `/`, no NUL, not
    /// `.` or `..`.
    pub fn new(b: &[u8]) -> Result<Name, DecodeError> {
        if b.is_empty()
            || b.len() > MAX_NAME
            || b == b"."
            || b == b".."
            || b.iter().any(|&c| c == b'/' || c == 0)
        {
            return Err(DecodeError::BadName);
        }
        Ok(Name(b.to_vec()))
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// File attributes, as the gofer reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct Attr {
    pub dev: u64,
    pub ino: u64,
    pub mode: u32,
    pub nlink: u64,
    pub uid: u32,
    pub gid: u32,
    pub rdev: u64,
    pub size: u64,
    pub blksize: u64,
    pub blocks: u64,
    pub atime: (i64, u32),
    pub mtime: (i64, u32),
    pub ctime: (i64, u32),
}

/// File-system statistics (`statfs`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[allow(missing_docs)]
pub struct FsStat {
    pub fs_type: u64,
    pub bsize: u64,
    pub blocks: u64,
    pub bfree: u64,
    pub bavail: u64,
    pub files: u64,
    pub ffree: u64,
    pub fsid: u64,
    pub namelen: u64,
    pub frsize: u64,
    pub flags: u64,
}

/// A directory entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dirent {
    /// Inode number.
    pub ino: u64,
    /// Cookie of the next entry.
    pub off: u64,
    /// `DT_*` type.
    pub typ: u8,
    /// Name (may be `.` or `..`, the only place those appear).
    pub name: Vec<u8>,
}

/// What `SetAttr` changes (`mask` bits).
pub mod setattr {
    /// Permission bits.
    pub const MODE: u32 = 1;
    /// Owner.
    pub const UID: u32 = 2;
    /// Group.
    pub const GID: u32 = 4;
    /// Size (truncate).
    pub const SIZE: u32 = 8;
    /// Access time.
    pub const ATIME: u32 = 16;
    /// Modification time.
    pub const MTIME: u32 = 32;
    /// Access time := now.
    pub const ATIME_NOW: u32 = 64;
    /// Modification time := now.
    pub const MTIME_NOW: u32 = 128;
}

/// A request from the sentry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Request {
    /// The root of served tree number `point` (0: the container's root;
    /// then its bind mounts, in the order the gofer was given them).
    Attach { point: u32 },
    /// Walks `names` from directory `dir`, stopping before a missing name
    /// and after a non-directory (a symlink is returned, not followed).
    Walk { dir: Fid, names: Vec<Name> },
    /// Like `Walk` but returns attributes only, no fids.
    WalkStat { dir: Fid, names: Vec<Name> },
    /// Opens `fid` (a regular file or directory) with `flags`; the reply
    /// carries the host descriptor.
    Open { fid: Fid, flags: u32 },
    /// Creates and opens a regular file.
    Create { dir: Fid, name: Name, flags: u32, mode: u32, uid: u32, gid: u32 },
    /// Creates a directory.
    Mkdir { dir: Fid, name: Name, mode: u32, uid: u32, gid: u32 },
    /// Creates a FIFO or socket node (devices are the sentry's).
    Mknod { dir: Fid, name: Name, mode: u32, uid: u32, gid: u32 },
    /// Creates a symbolic link.
    Symlink { dir: Fid, name: Name, target: Vec<u8>, uid: u32, gid: u32 },
    /// Creates a hard link to `target`.
    Link { dir: Fid, name: Name, target: Fid },
    /// Removes a name (`flags`: `AT_REMOVEDIR`).
    Unlink { dir: Fid, name: Name, flags: u32 },
    /// Renames (`flags`: `RENAME_NOREPLACE`, `RENAME_EXCHANGE`).
    Rename { old_dir: Fid, old: Name, new_dir: Fid, new: Name, flags: u32 },
    /// Reads a symbolic link.
    Readlink { fid: Fid },
    /// Reads directory entries from cookie `off`.
    Getdents { fid: Fid, off: u64 },
    /// Attributes.
    Stat { fid: Fid },
    /// Changes attributes.
    SetAttr {
        fid: Fid,
        mask: u32,
        mode: u32,
        uid: u32,
        gid: u32,
        size: u64,
        atime: (i64, u32),
        mtime: (i64, u32),
    },
    /// File-system statistics.
    StatFs { fid: Fid },
    /// Flushes a file to its storage.
    Fsync { fid: Fid },
    /// Reads an extended attribute (`size` 0: its length only).
    GetXattr { fid: Fid, name: Vec<u8>, size: u32 },
    /// Sets an extended attribute.
    SetXattr { fid: Fid, name: Vec<u8>, value: Vec<u8>, flags: u32 },
    /// Lists extended attributes (`size` 0: the list's length only).
    ListXattr { fid: Fid, size: u32 },
    /// Removes an extended attribute.
    RemoveXattr { fid: Fid, name: Vec<u8> },
    /// Forgets fids.
    Close { fids: Vec<Fid> },
}

/// A reply from the gofer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// The request failed with this errno.
    Error(i32),
    /// A new fid and its attributes (`Attach`, `Mkdir`, `Mknod`, `Symlink`,
    /// `Link`; `Create`, with a descriptor).
    Node { fid: Fid, attr: Attr },
    /// Fids and attributes of the components walked.
    Walk(Vec<(Fid, Attr)>),
    /// Attributes of the components walked.
    WalkStat(Vec<Attr>),
    /// Success without data (`Open` carries its descriptor).
    Ok,
    /// Bytes (`Readlink`, xattr values and lists).
    Bytes(Vec<u8>),
    /// A length (xattr queries with size 0).
    Len(u32),
    /// Directory entries; empty at the end.
    Dirents(Vec<Dirent>),
    /// Attributes.
    Attr(Attr),
    /// File-system statistics.
    FsStat(FsStat),
}

// ---------------------------------------------------------------------------
// Encoding.

struct W(Vec<u8>);

impl W {
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u32(&mut self, v: u32) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn i64(&mut self, v: i64) {
        self.0.extend_from_slice(&v.to_le_bytes());
    }
    fn bytes(&mut self, b: &[u8]) {
        self.u32(u32::try_from(b.len()).unwrap_or(u32::MAX));
        self.0.extend_from_slice(b);
    }
    fn name(&mut self, n: &Name) {
        self.bytes(n.as_bytes());
    }
    fn count(&mut self, n: usize) {
        self.u32(u32::try_from(n).unwrap_or(u32::MAX));
    }
    fn time(&mut self, t: (i64, u32)) {
        self.i64(t.0);
        self.u32(t.1);
    }
    fn attr(&mut self, a: &Attr) {
        self.u64(a.dev);
        self.u64(a.ino);
        self.u32(a.mode);
        self.u64(a.nlink);
        self.u32(a.uid);
        self.u32(a.gid);
        self.u64(a.rdev);
        self.u64(a.size);
        self.u64(a.blksize);
        self.u64(a.blocks);
        self.time(a.atime);
        self.time(a.mtime);
        self.time(a.ctime);
    }
}

struct R<'a>(&'a [u8]);

impl<'a> R<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        if self.0.len() < n {
            return Err(DecodeError::Truncated);
        }
        let (a, b) = self.0.split_at(n);
        self.0 = b;
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, DecodeError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, DecodeError> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, DecodeError> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64(&mut self) -> Result<u64, DecodeError> {
        let mut a = [0u8; 8];
        a.copy_from_slice(self.take(8)?);
        Ok(u64::from_le_bytes(a))
    }
    fn i64(&mut self) -> Result<i64, DecodeError> {
        Ok(self.u64()?.cast_signed())
    }
    fn bytes(&mut self, max: usize) -> Result<Vec<u8>, DecodeError> {
        let n = usize::try_from(self.u32()?).map_err(|_| DecodeError::Limit)?;
        if n > max {
            return Err(DecodeError::Limit);
        }
        Ok(self.take(n)?.to_vec())
    }
    fn name(&mut self) -> Result<Name, DecodeError> {
        Name::new(&self.bytes(MAX_NAME)?)
    }
    fn count(&mut self, max: usize) -> Result<usize, DecodeError> {
        let n = usize::try_from(self.u32()?).map_err(|_| DecodeError::Limit)?;
        if n > max {
            return Err(DecodeError::Limit);
        }
        Ok(n)
    }
    fn time(&mut self) -> Result<(i64, u32), DecodeError> {
        let s = self.i64()?;
        let ns = self.u32()?;
        if ns >= 1_000_000_000 {
            return Err(DecodeError::Limit);
        }
        Ok((s, ns))
    }
    fn attr(&mut self) -> Result<Attr, DecodeError> {
        Ok(Attr {
            dev: self.u64()?,
            ino: self.u64()?,
            mode: self.u32()?,
            nlink: self.u64()?,
            uid: self.u32()?,
            gid: self.u32()?,
            rdev: self.u64()?,
            size: self.u64()?,
            blksize: self.u64()?,
            blocks: self.u64()?,
            atime: self.time()?,
            mtime: self.time()?,
            ctime: self.time()?,
        })
    }
    fn names(&mut self) -> Result<Vec<Name>, DecodeError> {
        let n = self.count(MAX_WALK)?;
        (0..n).map(|_| self.name()).collect()
    }
    fn end(&self) -> Result<(), DecodeError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TooLong)
        }
    }
}

fn frame(op: u16, id: u64, payload: W) -> Vec<u8> {
    let mut m = Vec::with_capacity(HEADER + payload.0.len());
    m.extend_from_slice(&VERSION.to_le_bytes());
    m.extend_from_slice(&op.to_le_bytes());
    m.extend_from_slice(&u32::try_from(payload.0.len()).unwrap_or(u32::MAX).to_le_bytes());
    m.extend_from_slice(&id.to_le_bytes());
    m.extend_from_slice(&payload.0);
    m
}

/// Splits a message into (operation, id, payload), checking the header.
pub fn parse_header(msg: &[u8]) -> Result<(u16, u64, &[u8]), DecodeError> {
    if msg.len() < HEADER {
        return Err(DecodeError::Truncated);
    }
    if msg.len() > MAX_MESSAGE {
        return Err(DecodeError::TooLong);
    }
    let mut r = R(msg);
    let version = r.u16()?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let op = r.u16()?;
    let len = usize::try_from(r.u32()?).map_err(|_| DecodeError::TooLong)?;
    let id = r.u64()?;
    match len.cmp(&r.0.len()) {
        std::cmp::Ordering::Greater => Err(DecodeError::Truncated),
        std::cmp::Ordering::Less => Err(DecodeError::TooLong),
        std::cmp::Ordering::Equal => Ok((op, id, r.0)),
    }
}

mod op {
    pub const ATTACH: u16 = 1;
    pub const WALK: u16 = 2;
    pub const WALK_STAT: u16 = 3;
    pub const OPEN: u16 = 4;
    pub const CREATE: u16 = 5;
    pub const MKDIR: u16 = 6;
    pub const MKNOD: u16 = 7;
    pub const SYMLINK: u16 = 8;
    pub const LINK: u16 = 9;
    pub const UNLINK: u16 = 10;
    pub const RENAME: u16 = 11;
    pub const READLINK: u16 = 12;
    pub const GETDENTS: u16 = 13;
    pub const STAT: u16 = 14;
    pub const SETATTR: u16 = 15;
    pub const STATFS: u16 = 16;
    pub const FSYNC: u16 = 17;
    pub const GETXATTR: u16 = 18;
    pub const SETXATTR: u16 = 19;
    pub const LISTXATTR: u16 = 20;
    pub const REMOVEXATTR: u16 = 21;
    pub const CLOSE: u16 = 22;
}

impl Request {
    /// Encodes the request with id `id`.
    pub fn encode(&self, id: u64) -> Vec<u8> {
        let mut w = W(Vec::new());
        let op = match self {
            Request::Attach { point } => {
                w.u32(*point);
                op::ATTACH
            }
            Request::Walk { dir, names } | Request::WalkStat { dir, names } => {
                w.u64(*dir);
                w.count(names.len());
                for n in names {
                    w.name(n);
                }
                if matches!(self, Request::Walk { .. }) {
                    op::WALK
                } else {
                    op::WALK_STAT
                }
            }
            Request::Open { fid, flags } => {
                w.u64(*fid);
                w.u32(*flags);
                op::OPEN
            }
            Request::Create { dir, name, flags, mode, uid, gid } => {
                w.u64(*dir);
                w.name(name);
                w.u32(*flags);
                w.u32(*mode);
                w.u32(*uid);
                w.u32(*gid);
                op::CREATE
            }
            Request::Mkdir { dir, name, mode, uid, gid } | Request::Mknod { dir, name, mode, uid, gid } => {
                w.u64(*dir);
                w.name(name);
                w.u32(*mode);
                w.u32(*uid);
                w.u32(*gid);
                if matches!(self, Request::Mkdir { .. }) {
                    op::MKDIR
                } else {
                    op::MKNOD
                }
            }
            Request::Symlink { dir, name, target, uid, gid } => {
                w.u64(*dir);
                w.name(name);
                w.bytes(target);
                w.u32(*uid);
                w.u32(*gid);
                op::SYMLINK
            }
            Request::Link { dir, name, target } => {
                w.u64(*dir);
                w.name(name);
                w.u64(*target);
                op::LINK
            }
            Request::Unlink { dir, name, flags } => {
                w.u64(*dir);
                w.name(name);
                w.u32(*flags);
                op::UNLINK
            }
            Request::Rename { old_dir, old, new_dir, new, flags } => {
                w.u64(*old_dir);
                w.name(old);
                w.u64(*new_dir);
                w.name(new);
                w.u32(*flags);
                op::RENAME
            }
            Request::Readlink { fid } => {
                w.u64(*fid);
                op::READLINK
            }
            Request::Getdents { fid, off } => {
                w.u64(*fid);
                w.u64(*off);
                op::GETDENTS
            }
            Request::Stat { fid } => {
                w.u64(*fid);
                op::STAT
            }
            Request::SetAttr { fid, mask, mode, uid, gid, size, atime, mtime } => {
                w.u64(*fid);
                w.u32(*mask);
                w.u32(*mode);
                w.u32(*uid);
                w.u32(*gid);
                w.u64(*size);
                w.time(*atime);
                w.time(*mtime);
                op::SETATTR
            }
            Request::StatFs { fid } => {
                w.u64(*fid);
                op::STATFS
            }
            Request::Fsync { fid } => {
                w.u64(*fid);
                op::FSYNC
            }
            Request::GetXattr { fid, name, size } => {
                w.u64(*fid);
                w.bytes(name);
                w.u32(*size);
                op::GETXATTR
            }
            Request::SetXattr { fid, name, value, flags } => {
                w.u64(*fid);
                w.bytes(name);
                w.bytes(value);
                w.u32(*flags);
                op::SETXATTR
            }
            Request::ListXattr { fid, size } => {
                w.u64(*fid);
                w.u32(*size);
                op::LISTXATTR
            }
            Request::RemoveXattr { fid, name } => {
                w.u64(*fid);
                w.bytes(name);
                op::REMOVEXATTR
            }
            Request::Close { fids } => {
                w.count(fids.len());
                for f in fids {
                    w.u64(*f);
                }
                op::CLOSE
            }
        };
        frame(op, id, w)
    }

    /// Decodes a request; returns it with its id.
    pub fn decode(msg: &[u8]) -> Result<(u64, Request), DecodeError> {
        let (o, id, payload) = parse_header(msg)?;
        let mut r = R(payload);
        let req = match o {
            op::ATTACH => Request::Attach { point: r.u32()? },
            op::WALK => Request::Walk { dir: r.u64()?, names: r.names()? },
            op::WALK_STAT => Request::WalkStat { dir: r.u64()?, names: r.names()? },
            op::OPEN => Request::Open { fid: r.u64()?, flags: r.u32()? },
            op::CREATE => Request::Create {
                dir: r.u64()?,
                name: r.name()?,
                flags: r.u32()?,
                mode: r.u32()?,
                uid: r.u32()?,
                gid: r.u32()?,
            },
            op::MKDIR => Request::Mkdir {
                dir: r.u64()?,
                name: r.name()?,
                mode: r.u32()?,
                uid: r.u32()?,
                gid: r.u32()?,
            },
            op::MKNOD => Request::Mknod {
                dir: r.u64()?,
                name: r.name()?,
                mode: r.u32()?,
                uid: r.u32()?,
                gid: r.u32()?,
            },
            op::SYMLINK => {
                let dir = r.u64()?;
                let name = r.name()?;
                let target = r.bytes(MAX_TARGET)?;
                if target.is_empty() || target.contains(&0) {
                    return Err(DecodeError::BadName);
                }
                Request::Symlink { dir, name, target, uid: r.u32()?, gid: r.u32()? }
            }
            op::LINK => Request::Link { dir: r.u64()?, name: r.name()?, target: r.u64()? },
            op::UNLINK => Request::Unlink { dir: r.u64()?, name: r.name()?, flags: r.u32()? },
            op::RENAME => Request::Rename {
                old_dir: r.u64()?,
                old: r.name()?,
                new_dir: r.u64()?,
                new: r.name()?,
                flags: r.u32()?,
            },
            op::READLINK => Request::Readlink { fid: r.u64()? },
            op::GETDENTS => Request::Getdents { fid: r.u64()?, off: r.u64()? },
            op::STAT => Request::Stat { fid: r.u64()? },
            op::SETATTR => Request::SetAttr {
                fid: r.u64()?,
                mask: r.u32()?,
                mode: r.u32()?,
                uid: r.u32()?,
                gid: r.u32()?,
                size: r.u64()?,
                atime: r.time()?,
                mtime: r.time()?,
            },
            op::STATFS => Request::StatFs { fid: r.u64()? },
            op::FSYNC => Request::Fsync { fid: r.u64()? },
            op::GETXATTR => Request::GetXattr { fid: r.u64()?, name: xattr_name(&mut r)?, size: r.u32()? },
            op::SETXATTR => Request::SetXattr {
                fid: r.u64()?,
                name: xattr_name(&mut r)?,
                value: r.bytes(MAX_XATTR)?,
                flags: r.u32()?,
            },
            op::LISTXATTR => Request::ListXattr { fid: r.u64()?, size: r.u32()? },
            op::REMOVEXATTR => Request::RemoveXattr { fid: r.u64()?, name: xattr_name(&mut r)? },
            op::CLOSE => {
                let n = r.count(MAX_CLOSE)?;
                Request::Close { fids: (0..n).map(|_| r.u64()).collect::<Result<_, _>>()? }
            }
            other => return Err(DecodeError::UnknownOp(other)),
        };
        r.end()?;
        Ok((id, req))
    }
}

fn xattr_name(r: &mut R<'_>) -> Result<Vec<u8>, DecodeError> {
    let n = r.bytes(MAX_NAME)?;
    if n.is_empty() || n.contains(&0) {
        return Err(DecodeError::BadName);
    }
    Ok(n)
}

mod rop {
    pub const NODE: u16 = 1;
    pub const WALK: u16 = 2;
    pub const WALK_STAT: u16 = 3;
    pub const OK: u16 = 4;
    pub const BYTES: u16 = 5;
    pub const LEN: u16 = 6;
    pub const DIRENTS: u16 = 7;
    pub const ATTR: u16 = 8;
    pub const FSSTAT: u16 = 9;
}

impl Reply {
    /// Encodes the reply to request `id`.
    pub fn encode(&self, id: u64) -> Vec<u8> {
        let mut w = W(Vec::new());
        let op = match self {
            Reply::Error(e) => {
                w.u32(e.cast_unsigned());
                return frame(OP_ERROR, id, w);
            }
            Reply::Node { fid, attr } => {
                w.u64(*fid);
                w.attr(attr);
                rop::NODE
            }
            Reply::Walk(v) => {
                w.count(v.len());
                for (f, a) in v {
                    w.u64(*f);
                    w.attr(a);
                }
                rop::WALK
            }
            Reply::WalkStat(v) => {
                w.count(v.len());
                for a in v {
                    w.attr(a);
                }
                rop::WALK_STAT
            }
            Reply::Ok => rop::OK,
            Reply::Bytes(b) => {
                w.bytes(b);
                rop::BYTES
            }
            Reply::Len(n) => {
                w.u32(*n);
                rop::LEN
            }
            Reply::Dirents(v) => {
                w.count(v.len());
                for d in v {
                    w.u64(d.ino);
                    w.u64(d.off);
                    w.u8(d.typ);
                    w.bytes(&d.name);
                }
                rop::DIRENTS
            }
            Reply::Attr(a) => {
                w.attr(a);
                rop::ATTR
            }
            Reply::FsStat(s) => {
                for v in [
                    s.fs_type, s.bsize, s.blocks, s.bfree, s.bavail, s.files, s.ffree, s.fsid, s.namelen,
                    s.frsize, s.flags,
                ] {
                    w.u64(v);
                }
                rop::FSSTAT
            }
        };
        frame(REPLY | op, id, w)
    }

    /// Decodes a reply; returns it with its id.
    pub fn decode(msg: &[u8]) -> Result<(u64, Reply), DecodeError> {
        let (o, id, payload) = parse_header(msg)?;
        let mut r = R(payload);
        let reply = if o == OP_ERROR {
            let e = r.u32()?.cast_signed();
            if !(1..4096).contains(&e) {
                return Err(DecodeError::Limit);
            }
            Reply::Error(e)
        } else {
            match o & !REPLY {
                _ if o & REPLY == 0 => return Err(DecodeError::UnknownOp(o)),
                rop::NODE => Reply::Node { fid: r.u64()?, attr: r.attr()? },
                rop::WALK => {
                    let n = r.count(MAX_WALK)?;
                    Reply::Walk((0..n).map(|_| Ok((r.u64()?, r.attr()?))).collect::<Result<_, _>>()?)
                }
                rop::WALK_STAT => {
                    let n = r.count(MAX_WALK)?;
                    Reply::WalkStat((0..n).map(|_| r.attr()).collect::<Result<_, _>>()?)
                }
                rop::OK => Reply::Ok,
                rop::BYTES => Reply::Bytes(r.bytes(MAX_XATTR.max(MAX_TARGET))?),
                rop::LEN => Reply::Len(r.u32()?),
                rop::DIRENTS => {
                    let n = r.count(MAX_DIRENTS / 20)?;
                    let mut v = Vec::with_capacity(n);
                    for _ in 0..n {
                        let ino = r.u64()?;
                        let off = r.u64()?;
                        let typ = r.u8()?;
                        let name = r.bytes(MAX_NAME)?;
                        if name.is_empty() || name.iter().any(|&c| c == b'/' || c == 0) {
                            return Err(DecodeError::BadName);
                        }
                        v.push(Dirent { ino, off, typ, name });
                    }
                    Reply::Dirents(v)
                }
                rop::ATTR => Reply::Attr(r.attr()?),
                rop::FSSTAT => {
                    let mut v = [0u64; 11];
                    for x in &mut v {
                        *x = r.u64()?;
                    }
                    Reply::FsStat(FsStat {
                        fs_type: v[0],
                        bsize: v[1],
                        blocks: v[2],
                        bfree: v[3],
                        bavail: v[4],
                        files: v[5],
                        ffree: v[6],
                        fsid: v[7],
                        namelen: v[8],
                        frsize: v[9],
                        flags: v[10],
                    })
                }
                _ => return Err(DecodeError::UnknownOp(o)),
            }
        };
        r.end()?;
        Ok((id, reply))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn n(s: &str) -> Name {
        Name::new(s.as_bytes()).unwrap()
    }

    fn all_requests() -> Vec<Request> {
        let t = (5, 6);
        vec![
            Request::Attach { point: 0 },
            Request::Walk { dir: 1, names: vec![n("usr"), n("bin")] },
            Request::WalkStat { dir: 1, names: vec![n("etc")] },
            Request::Open { fid: 3, flags: 2 },
            Request::Create { dir: 1, name: n("f"), flags: 0o100, mode: 0o644, uid: 1, gid: 2 },
            Request::Mkdir { dir: 1, name: n("d"), mode: 0o755, uid: 0, gid: 0 },
            Request::Mknod { dir: 1, name: n("p"), mode: 0o10644, uid: 0, gid: 0 },
            Request::Symlink { dir: 1, name: n("l"), target: b"/etc/passwd".to_vec(), uid: 0, gid: 0 },
            Request::Link { dir: 1, name: n("h"), target: 7 },
            Request::Unlink { dir: 1, name: n("x"), flags: 0x200 },
            Request::Rename { old_dir: 1, old: n("a"), new_dir: 2, new: n("b"), flags: 0 },
            Request::Readlink { fid: 9 },
            Request::Getdents { fid: 9, off: 12345 },
            Request::Stat { fid: 9 },
            Request::SetAttr { fid: 9, mask: 63, mode: 0o600, uid: 1, gid: 1, size: 10, atime: t, mtime: t },
            Request::StatFs { fid: 9 },
            Request::Fsync { fid: 9 },
            Request::GetXattr { fid: 9, name: b"user.a".to_vec(), size: 100 },
            Request::SetXattr { fid: 9, name: b"user.a".to_vec(), value: vec![1, 2, 3], flags: 1 },
            Request::ListXattr { fid: 9, size: 0 },
            Request::RemoveXattr { fid: 9, name: b"user.a".to_vec() },
            Request::Close { fids: vec![1, 2, 3] },
        ]
    }

    #[test]
    fn requests_round_trip() {
        for (i, r) in all_requests().into_iter().enumerate() {
            let m = r.encode(i as u64);
            assert_eq!(Request::decode(&m), Ok((i as u64, r)));
        }
    }

    #[test]
    fn replies_round_trip() {
        let a = Attr { ino: 5, mode: 0o100644, size: 3, atime: (1, 2), ..Attr::default() };
        let all = vec![
            Reply::Error(2),
            Reply::Node { fid: 4, attr: a },
            Reply::Walk(vec![(1, a), (2, a)]),
            Reply::WalkStat(vec![a]),
            Reply::Ok,
            Reply::Bytes(b"target".to_vec()),
            Reply::Len(7),
            Reply::Dirents(vec![Dirent { ino: 1, off: 2, typ: 4, name: b"..".to_vec() }]),
            Reply::Attr(a),
            Reply::FsStat(FsStat { bsize: 4096, ..FsStat::default() }),
        ];
        for (i, r) in all.into_iter().enumerate() {
            let m = r.encode(i as u64);
            assert_eq!(Reply::decode(&m), Ok((i as u64, r)));
        }
    }

    #[test]
    fn names_are_single_components() {
        for bad in [&b""[..], b".", b"..", b"a/b", b"/", b"a\0b", &[b'x'; 256]] {
            assert_eq!(Name::new(bad), Err(DecodeError::BadName), "{bad:?}");
        }
        assert!(Name::new(b"...").is_ok());
        assert!(Name::new(&[b'x'; 255]).is_ok());
        // A name smuggled past the encoder is rejected by the decoder.
        let mut m = Request::Walk { dir: 1, names: vec![n("ab")] }.encode(1);
        let at = m.len() - 1;
        m[at] = b'/';
        assert_eq!(Request::decode(&m), Err(DecodeError::BadName));
        let mut m = Request::Walk { dir: 1, names: vec![n("..a")] }.encode(1);
        let l = m.len();
        m.truncate(l - 1);
        m[8 + 4..8 + 8].copy_from_slice(&0u32.to_le_bytes());
        assert!(Request::decode(&m).is_err());
    }

    #[test]
    fn malformed_messages_are_rejected() {
        let good = Request::Stat { fid: 1 }.encode(7);
        assert_eq!(Request::decode(&good[..10]), Err(DecodeError::Truncated));
        let mut v = good.clone();
        v[0] = 9;
        assert_eq!(Request::decode(&v), Err(DecodeError::Version(9)));
        let mut v = good.clone();
        v[2] = 0x77;
        assert_eq!(Request::decode(&v), Err(DecodeError::UnknownOp(0x77)));
        let mut v = good.clone();
        v.push(0);
        assert_eq!(Request::decode(&v), Err(DecodeError::TooLong));
        let mut v = good.clone();
        v[4] = 100;
        assert_eq!(Request::decode(&v), Err(DecodeError::Truncated));
        // Lengths and counts over the limits.
        let mut w = W(Vec::new());
        w.u64(1);
        w.u32(u32::MAX);
        assert_eq!(Request::decode(&frame(op::WALK, 1, w)), Err(DecodeError::Limit));
        let mut w = W(Vec::new());
        w.u32(u32::try_from(MAX_CLOSE).unwrap() + 1);
        assert_eq!(Request::decode(&frame(op::CLOSE, 1, w)), Err(DecodeError::Limit));
        let mut w = W(Vec::new());
        w.u64(1);
        w.bytes(b"a");
        w.bytes(&vec![0; MAX_XATTR + 1]);
        w.u32(0);
        assert_eq!(Request::decode(&frame(op::SETXATTR, 1, w)), Err(DecodeError::Limit));
        // A reply is not a request and vice versa.
        assert!(Request::decode(&Reply::Ok.encode(1)).is_err());
        assert!(Reply::decode(&Request::Attach { point: 0 }.encode(1)).is_err());
        assert!(Reply::decode(&Reply::Error(0).encode(1)).is_err());
        // Times with out-of-range nanoseconds.
        let mut m = Request::SetAttr {
            fid: 1,
            mask: 0,
            mode: 0,
            uid: 0,
            gid: 0,
            size: 0,
            atime: (0, 0),
            mtime: (0, 0),
        }
        .encode(1);
        let l = m.len();
        m[l - 4..].copy_from_slice(&2_000_000_000u32.to_le_bytes());
        assert_eq!(Request::decode(&m), Err(DecodeError::Limit));
    }
}
