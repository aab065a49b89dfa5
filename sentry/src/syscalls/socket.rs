//! Socket calls. AF_UNIX is the sentry's own (`fs::unix`); other families
//! are `EAFNOSUPPORT` until the sandbox has a network stack.

use std::sync::Arc;

use rvisor_syscalls::Errno;

use super::{Addr, Fd, SysResult};
use crate::fs::unix::{
    self, Name, Received, Sock, Ucred, SCM_MAX_FD, SOCK_DGRAM, SOCK_SEQPACKET, SOCK_STREAM,
};
use crate::kernel::Task;
use crate::vfs::file::oflags::{O_CLOEXEC, O_NONBLOCK};
use crate::vfs::File;

const AF_UNIX: i32 = 1;
/// `AF_MAX` of Linux 6.x: families at or above it do not exist.
const AF_MAX: i32 = 46;
const SOCK_NONBLOCK: i32 = 0o4000;
const SOCK_CLOEXEC: i32 = 0o2000000;
const SOCK_RAW: i32 = 3;

const MSG_OOB: i32 = 1;
const MSG_PEEK: i32 = 2;
const MSG_CTRUNC: i32 = 8;
const MSG_TRUNC: i32 = 0x20;
const MSG_DONTWAIT: i32 = 0x40;
const MSG_WAITALL: i32 = 0x100;
const MSG_NOSIGNAL: i32 = 0x4000;
const MSG_WAITFORONE: i32 = 0x10000;
const MSG_CMSG_CLOEXEC: i32 = 0x4000_0000;

const SOL_SOCKET: i32 = 1;
const SCM_RIGHTS: i32 = 1;
const SCM_CREDENTIALS: i32 = 2;

/// `sizeof(struct sockaddr_un)`.
const SUN_LEN: usize = 110;
/// Most bytes one send gathers or one receive stages.
const MAX_TRANSFER: usize = 8 << 20;
/// `UIO_MAXIOV`.
const UIO_MAXIOV: usize = 1024;

fn install(t: &Task, f: Arc<File>, cloexec: bool) -> Result<i32, Errno> {
    super::fs::install_new(t, f, cloexec)
}

/// The socket behind `fd` (`ENOTSOCK` for another file).
fn sock_of(t: &Task, fd: Fd) -> Result<(Arc<File>, Arc<Sock>), Errno> {
    let f = t.fds.get(fd.0)?;
    let s = f.ops().socket().cloned().ok_or(Errno::ENOTSOCK)?;
    Ok((f, s))
}

/// The kind and flags of `type`, as `socket`/`socketpair` take them.
fn kind_of(ty: i32) -> Result<(i32, u32), Errno> {
    if ty & !(0xf | SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let kind = match ty & 0xf {
        SOCK_STREAM => SOCK_STREAM,
        // Linux's unix_create turns SOCK_RAW into SOCK_DGRAM.
        SOCK_DGRAM | SOCK_RAW => SOCK_DGRAM,
        SOCK_SEQPACKET => SOCK_SEQPACKET,
        _ => return Err(Errno::ESOCKTNOSUPPORT),
    };
    let mut flags = 0;
    if ty & SOCK_NONBLOCK != 0 {
        flags |= O_NONBLOCK;
    }
    if ty & SOCK_CLOEXEC != 0 {
        flags |= O_CLOEXEC;
    }
    Ok((kind, flags))
}

fn check_family(domain: i32, proto: i32) -> Result<(), Errno> {
    if !(0..AF_MAX).contains(&domain) || domain != AF_UNIX {
        return Err(Errno::EAFNOSUPPORT);
    }
    if proto != 0 && proto != AF_UNIX {
        return Err(Errno::EPROTONOSUPPORT);
    }
    Ok(())
}

pub fn socket(t: &mut Task, domain: i32, ty: i32, proto: i32) -> SysResult {
    check_family(domain, proto)?;
    let (kind, flags) = kind_of(ty)?;
    let (f, _) = unix::new_file(kind, flags);
    Ok(u64::try_from(install(t, f, flags & O_CLOEXEC != 0)?).unwrap_or(0))
}

pub fn socketpair(t: &mut Task, domain: i32, ty: i32, proto: i32, sv: Addr) -> SysResult {
    check_family(domain, proto)?;
    let (kind, flags) = kind_of(ty)?;
    t.mm.check_writable(sv, 8)?;
    let (a, b) = unix::pair(kind, flags, unix::peer_creds_of(t));
    let cloexec = flags & O_CLOEXEC != 0;
    let fa = install(t, a, cloexec)?;
    let fb = match install(t, b, cloexec) {
        Ok(fd) => fd,
        Err(e) => {
            let _ = t.fds.remove(fa);
            return Err(e);
        }
    };
    if let Err(e) = t.mm.write_obj(sv, &[fa, fb]) {
        let _ = t.fds.remove(fa);
        let _ = t.fds.remove(fb);
        return Err(e);
    }
    Ok(0)
}

/// A `sockaddr_un` from the application: `None` for a bare family (an
/// automatic name for `bind`).
fn read_name(t: &Task, addr: Addr, len: u32) -> Result<Option<Name>, Errno> {
    let len = usize::try_from(len).map_err(|_| Errno::EINVAL)?;
    if !(2..=SUN_LEN).contains(&len) {
        return Err(Errno::EINVAL);
    }
    let raw = t.mm.read_bytes(addr, len)?;
    if i32::from(u16::from_le_bytes([raw[0], raw[1]])) != AF_UNIX {
        return Err(Errno::EINVAL);
    }
    let path = &raw[2..];
    if path.is_empty() {
        return Ok(None);
    }
    if path[0] == 0 {
        return Ok(Some(Name::Abstract(path[1..].to_vec())));
    }
    let end = path.iter().position(|&b| b == 0).unwrap_or(path.len());
    Ok(Some(Name::Path(path[..end].to_vec())))
}

/// The bytes of `name` as a `sockaddr_un`.
fn encode(name: Option<&Name>) -> Vec<u8> {
    let mut v = vec![1u8, 0];
    match name {
        None => {}
        Some(Name::Path(p)) => {
            v.extend_from_slice(p);
            v.push(0);
        }
        Some(Name::Abstract(a)) => {
            v.push(0);
            v.extend_from_slice(a);
        }
    }
    v
}

/// Writes `name` to (`addr`, `*len_addr`) as `getsockname` does: at most
/// the buffer's length, and the full length back.
fn write_name(t: &Task, addr: Addr, len_addr: Addr, name: Option<&Name>) -> Result<(), Errno> {
    write_name_as(t, addr, len_addr, name, false)
}

/// See [`write_name`]; `received`: the sender of a message, whose lack of
/// a name is a length of 0 (Linux's `unix_copy_addr`), not a bare family.
fn write_name_as(
    t: &Task,
    addr: Addr,
    len_addr: Addr,
    name: Option<&Name>,
    received: bool,
) -> Result<(), Errno> {
    if addr == 0 || len_addr == 0 {
        return Ok(());
    }
    let room: i32 = t.mm.read_obj(len_addr)?;
    let room = usize::try_from(room).map_err(|_| Errno::EINVAL)?;
    if received && name.is_none() {
        t.mm.write_obj(len_addr, &0u32)?;
        return Ok(());
    }
    let bytes = encode(name);
    t.mm.copy_out(addr, &bytes[..bytes.len().min(room)])?;
    t.mm.write_obj(len_addr, &u32::try_from(bytes.len()).unwrap_or(0))?;
    Ok(())
}

/// The socket a name names.
fn resolve(t: &Task, name: &Name) -> Result<Arc<Sock>, Errno> {
    let key = match name {
        Name::Path(p) => Some(super::namei::socket_target(t, p)?),
        Name::Abstract(_) => None,
    };
    Sock::lookup(name, key)
}

pub fn bind(t: &mut Task, fd: Fd, addr: Addr, len: u32) -> SysResult {
    let (_, s) = sock_of(t, fd)?;
    let name = read_name(t, addr, len)?;
    if s.is_bound() {
        return Err(Errno::EINVAL);
    }
    let key = match &name {
        Some(Name::Path(p)) => Some(super::namei::socket_node(t, p)?),
        _ => None,
    };
    s.bind(name, key)?;
    Ok(0)
}

pub fn listen(t: &mut Task, fd: Fd, backlog: i32) -> SysResult {
    let (_, s) = sock_of(t, fd)?;
    // Linux compares the backlog as unsigned: a negative one is the most.
    let backlog = if backlog < 0 { i32::MAX } else { backlog };
    s.listen(backlog, unix::peer_creds_of(t))?;
    Ok(0)
}

pub fn accept(t: &mut Task, fd: Fd, addr: Addr, len: Addr) -> SysResult {
    accept4(t, fd, addr, len, 0)
}

pub fn accept4(t: &mut Task, fd: Fd, addr: Addr, len: Addr, flags: i32) -> SysResult {
    if flags & !(SOCK_NONBLOCK | SOCK_CLOEXEC) != 0 {
        return Err(Errno::EINVAL);
    }
    let (f, s) = sock_of(t, fd)?;
    let new = s.accept(t, f.nonblocking())?;
    let peer = new.peer_name().unwrap_or(None);
    let fl = if flags & SOCK_NONBLOCK != 0 { O_NONBLOCK } else { 0 };
    let file = unix::file_of(new, fl);
    let nfd = install(t, file, flags & SOCK_CLOEXEC != 0)?;
    if let Err(e) = write_name(t, addr, len, peer.as_ref()) {
        let _ = t.fds.remove(nfd);
        return Err(e);
    }
    Ok(u64::try_from(nfd).unwrap_or(0))
}

pub fn connect(t: &mut Task, fd: Fd, addr: Addr, len: u32) -> SysResult {
    let (f, s) = sock_of(t, fd)?;
    let name = read_name(t, addr, len)?.ok_or(Errno::EINVAL)?;
    let other = resolve(t, &name)?;
    s.connect(t, &other, f.nonblocking(), unix::peer_creds_of(t))?;
    Ok(0)
}

pub fn getsockname(t: &mut Task, fd: Fd, addr: Addr, len: Addr) -> SysResult {
    let (_, s) = sock_of(t, fd)?;
    t.mm.check_writable(len, 4)?;
    write_name(t, addr, len, s.name().as_ref())?;
    Ok(0)
}

pub fn getpeername(t: &mut Task, fd: Fd, addr: Addr, len: Addr) -> SysResult {
    let (_, s) = sock_of(t, fd)?;
    let name = s.peer_name()?;
    t.mm.check_writable(len, 4)?;
    write_name(t, addr, len, name.as_ref())?;
    Ok(0)
}

pub fn shutdown(t: &mut Task, fd: Fd, how: i32) -> SysResult {
    let (_, s) = sock_of(t, fd)?;
    s.shutdown(how)?;
    Ok(0)
}

/// Ancillary data a send carries.
#[derive(Default)]
struct Control {
    rights: Vec<Arc<File>>,
    cred: Option<Ucred>,
}

/// Parses a send's control buffer (Linux's `__scm_send`).
fn read_control(t: &Task, addr: Addr, len: usize) -> Result<Control, Errno> {
    let mut c = Control::default();
    if len == 0 {
        return Ok(c);
    }
    if len > 1 << 16 {
        return Err(Errno::ENOBUFS);
    }
    let raw = t.mm.read_bytes(addr, len)?;
    let mut off = 0usize;
    while off + 16 <= raw.len() {
        let cl =
            usize::try_from(u64::from_le_bytes(raw[off..off + 8].try_into().map_err(|_| Errno::EINVAL)?))
                .map_err(|_| Errno::EINVAL)?;
        let level = i32::from_le_bytes(raw[off + 8..off + 12].try_into().map_err(|_| Errno::EINVAL)?);
        let ty = i32::from_le_bytes(raw[off + 12..off + 16].try_into().map_err(|_| Errno::EINVAL)?);
        if cl < 16 || off + cl > raw.len() {
            return Err(Errno::EINVAL);
        }
        let data = &raw[off + 16..off + cl];
        if level == SOL_SOCKET {
            match ty {
                SCM_RIGHTS => {
                    let n = data.len() / 4;
                    if c.rights.len() + n > SCM_MAX_FD || n == 0 {
                        return Err(Errno::EINVAL);
                    }
                    for w in data.chunks_exact(4) {
                        let fd = i32::from_le_bytes(w.try_into().map_err(|_| Errno::EINVAL)?);
                        c.rights.push(t.fds.get(fd)?);
                    }
                }
                SCM_CREDENTIALS => {
                    if data.len() != 12 {
                        return Err(Errno::EINVAL);
                    }
                    let word =
                        |i: usize| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]);
                    let u = Ucred { pid: word(0).cast_signed(), uid: word(4), gid: word(8) };
                    check_cred(t, u)?;
                    c.cred = Some(u);
                }
                _ => return Err(Errno::EINVAL),
            }
        }
        // CMSG_ALIGN.
        off += cl.div_ceil(8) * 8;
    }
    Ok(c)
}

/// Credentials a sender may claim (Linux's `scm_check_creds`).
fn check_cred(t: &Task, u: Ucred) -> Result<(), Errno> {
    const CAP_SETUID: u64 = 1 << 7;
    const CAP_SETGID: u64 = 1 << 6;
    use crate::kernel::creds::CAP_SYS_ADMIN;
    let c = t.tg().creds();
    let pid_ok = u.pid == t.tgid() || c.capable(CAP_SYS_ADMIN);
    let uid_ok = u.uid == c.ruid || u.uid == c.euid || u.uid == c.suid || c.capable(CAP_SETUID);
    let gid_ok = u.gid == c.rgid || u.gid == c.egid || u.gid == c.sgid || c.capable(CAP_SETGID);
    if pid_ok && uid_ok && gid_ok {
        Ok(())
    } else {
        Err(Errno::EPERM)
    }
}

/// One `struct iovec`.
#[derive(Clone, Copy)]
struct Iov {
    base: u64,
    len: usize,
}

fn read_iovs(t: &Task, iov: Addr, n: usize) -> Result<Vec<Iov>, Errno> {
    if n > UIO_MAXIOV {
        return Err(Errno::EMSGSIZE);
    }
    let raw = t.mm.read_bytes(iov, n * 16)?;
    raw.chunks_exact(16)
        .map(|c| {
            let base = u64::from_le_bytes(c[..8].try_into().map_err(|_| Errno::EFAULT)?);
            let len = u64::from_le_bytes(c[8..].try_into().map_err(|_| Errno::EFAULT)?);
            if i64::try_from(len).is_err() {
                return Err(Errno::EINVAL);
            }
            Ok(Iov { base, len: usize::try_from(len).map_err(|_| Errno::EINVAL)? })
        })
        .collect()
}

fn gather(t: &Task, iovs: &[Iov]) -> Result<Vec<u8>, Errno> {
    let total = iovs.iter().fold(0usize, |a, v| a.saturating_add(v.len)).min(MAX_TRANSFER);
    let mut data = Vec::with_capacity(total);
    for v in iovs {
        let n = v.len.min(total - data.len());
        if n == 0 {
            continue;
        }
        data.extend_from_slice(&t.mm.read_bytes(v.base, n)?);
    }
    Ok(data)
}

fn scatter(t: &Task, iovs: &[Iov], data: &[u8]) -> Result<(), Errno> {
    let mut pos = 0;
    for v in iovs {
        if pos >= data.len() {
            break;
        }
        let n = v.len.min(data.len() - pos);
        t.mm.copy_out(v.base, &data[pos..pos + n])?;
        pos += n;
    }
    Ok(())
}

/// The parts of a `struct msghdr`.
struct MsgHdr {
    name: Addr,
    namelen: u32,
    iov: Addr,
    iovlen: usize,
    control: Addr,
    controllen: usize,
}

fn read_msghdr(t: &Task, msg: Addr) -> Result<MsgHdr, Errno> {
    let raw = t.mm.read_bytes(msg, 56)?;
    let w = |o: usize| u64::from_le_bytes(raw[o..o + 8].try_into().unwrap_or([0; 8]));
    Ok(MsgHdr {
        name: w(0),
        namelen: u32::from_le_bytes(raw[8..12].try_into().unwrap_or([0; 4])),
        iov: w(16),
        iovlen: usize::try_from(w(24)).map_err(|_| Errno::EMSGSIZE)?,
        control: w(32),
        controllen: usize::try_from(w(40)).map_err(|_| Errno::ENOBUFS)?,
    })
}

/// The whole of a send: target, data, control, flags.
fn do_send(
    t: &mut Task,
    fd: Fd,
    data: &[u8],
    to: Option<(Addr, u32)>,
    control: Control,
    flags: i32,
) -> Result<usize, Errno> {
    let (f, s) = sock_of(t, fd)?;
    if flags & MSG_OOB != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let target = match to {
        Some((a, l)) if a != 0 && s.kind != SOCK_SEQPACKET => {
            let name = read_name(t, a, l)?.ok_or(Errno::EINVAL)?;
            // A stream socket refuses any address (EISCONN/EOPNOTSUPP):
            // itself stands for it.
            Some(if s.kind == SOCK_STREAM { s.clone() } else { resolve(t, &name)? })
        }
        _ => None,
    };
    let nonblock = f.nonblocking() || flags & MSG_DONTWAIT != 0;
    let cred = control.cred.unwrap_or_else(|| unix::creds_of(t));
    let r = s.send(t, nonblock, data, control.rights, cred, target.as_ref());
    if r == Err(Errno::EPIPE) && flags & MSG_NOSIGNAL == 0 {
        t.signal_self(crate::kernel::signal::sig::SIGPIPE);
    }
    r
}

pub fn sendto(t: &mut Task, fd: Fd, buf: Addr, len: u64, flags: i32, addr: Addr, alen: u32) -> SysResult {
    let len = usize::try_from(len).map_err(|_| Errno::EINVAL)?.min(MAX_TRANSFER);
    let data = t.mm.read_bytes(buf, len)?;
    let to = (addr != 0).then_some((addr, alen));
    Ok(do_send(t, fd, &data, to, Control::default(), flags)? as u64)
}

pub fn sendmsg(t: &mut Task, fd: Fd, msg: Addr, flags: i32) -> SysResult {
    let h = read_msghdr(t, msg)?;
    let iovs = read_iovs(t, h.iov, h.iovlen)?;
    let data = gather(t, &iovs)?;
    let control = read_control(t, h.control, h.controllen)?;
    let to = (h.name != 0).then_some((h.name, h.namelen));
    Ok(do_send(t, fd, &data, to, control, flags)? as u64)
}

/// A receive's result as the caller sees it.
struct Got {
    /// The return value (`MSG_TRUNC`: the message's whole length).
    ret: usize,
    /// `msg_flags`.
    flags: i32,
}

/// Receives and writes the data to `iovs`, the name to `name`, the
/// control data to `control`.
fn do_recv(
    t: &mut Task,
    fd: Fd,
    iovs: &[Iov],
    name: Option<(Addr, Addr)>,
    control: Option<(Addr, usize)>,
    flags: i32,
) -> Result<(Got, usize), Errno> {
    let (f, s) = sock_of(t, fd)?;
    if flags & MSG_OOB != 0 {
        return Err(Errno::EOPNOTSUPP);
    }
    let max = iovs.iter().fold(0usize, |a, v| a.saturating_add(v.len)).min(MAX_TRANSFER);
    let nonblock = f.nonblocking() || flags & MSG_DONTWAIT != 0;
    let r: Received = s.recv(t, nonblock, max, flags & MSG_PEEK != 0, flags & MSG_WAITALL != 0)?;
    scatter(t, iovs, &r.data)?;
    let mut out_flags = 0;
    let mut ret = r.data.len();
    if s.kind != SOCK_STREAM && r.len > r.data.len() {
        out_flags |= MSG_TRUNC;
        if flags & MSG_TRUNC != 0 {
            ret = r.len;
        }
    }
    if let Some((addr, len_addr)) = name {
        if addr != 0 {
            let from = if s.kind == SOCK_DGRAM { r.from.clone() } else { s.peer_name().unwrap_or(None) };
            write_name_as(t, addr, len_addr, from.as_ref(), true)?;
        } else if len_addr != 0 {
            t.mm.write_obj(len_addr, &0u32)?;
        }
    }
    let mut used = 0usize;
    if let Some((caddr, clen)) = control {
        let (bytes, truncated) = build_control(t, &s, &r, clen, flags & MSG_CMSG_CLOEXEC != 0)?;
        if !bytes.is_empty() {
            t.mm.copy_out(caddr, &bytes)?;
        }
        used = bytes.len();
        if truncated {
            out_flags |= MSG_CTRUNC;
        }
    } else if !r.rights.is_empty() {
        // Descriptors with nowhere to go are closed (dropped here).
        out_flags |= MSG_CTRUNC;
    }
    Ok((Got { ret, flags: out_flags }, used))
}

/// The control data of a receive (Linux's `scm_recv`: credentials first,
/// then descriptors, as many as fit); whether some did not fit.
fn build_control(
    t: &Task,
    s: &Sock,
    r: &Received,
    room: usize,
    cloexec: bool,
) -> Result<(Vec<u8>, bool), Errno> {
    let mut out = Vec::new();
    let mut truncated = false;
    let header = |len: usize, ty: i32| -> Vec<u8> {
        let mut h = (len as u64).to_le_bytes().to_vec();
        h.extend_from_slice(&SOL_SOCKET.to_le_bytes());
        h.extend_from_slice(&ty.to_le_bytes());
        h
    };
    if s.passcred() {
        let mut c = header(16 + 12, SCM_CREDENTIALS);
        c.extend_from_slice(&r.cred.pid.to_le_bytes());
        c.extend_from_slice(&r.cred.uid.to_le_bytes());
        c.extend_from_slice(&r.cred.gid.to_le_bytes());
        c.extend_from_slice(&[0u8; 4]);
        if room >= out.len() + c.len() {
            out.extend_from_slice(&c);
        } else {
            truncated = true;
        }
    }
    if !r.rights.is_empty() {
        let left = room.saturating_sub(out.len());
        if left < 16 {
            truncated = true;
        } else {
            let fit = ((left - 16) / 4).min(r.rights.len());
            if fit < r.rights.len() {
                truncated = true;
            }
            let mut fds = Vec::with_capacity(fit);
            for f in r.rights.iter().take(fit) {
                match install(t, f.clone(), cloexec) {
                    Ok(fd) => fds.push(fd),
                    Err(_) => {
                        truncated = true;
                        break;
                    }
                }
            }
            if !fds.is_empty() {
                let mut c = header(16 + 4 * fds.len(), SCM_RIGHTS);
                for fd in &fds {
                    c.extend_from_slice(&fd.to_le_bytes());
                }
                let space = (16 + 4 * fds.len()).div_ceil(8) * 8;
                c.resize(space.min(left), 0);
                out.extend_from_slice(&c);
            }
        }
    }
    Ok((out, truncated))
}

pub fn recvfrom(t: &mut Task, fd: Fd, buf: Addr, len: u64, flags: i32, addr: Addr, alen: Addr) -> SysResult {
    let len = usize::try_from(len).map_err(|_| Errno::EINVAL)?;
    let iovs = [Iov { base: buf, len }];
    let (g, _) = do_recv(t, fd, &iovs, Some((addr, alen)), None, flags)?;
    Ok(g.ret as u64)
}

fn recvmsg_one(t: &mut Task, fd: Fd, msg: Addr, flags: i32) -> Result<usize, Errno> {
    let h = read_msghdr(t, msg)?;
    let iovs = read_iovs(t, h.iov, h.iovlen)?;
    let name_len_addr = msg + 8;
    let name = if h.name != 0 {
        // msg_namelen is an in/out u32 in the header itself.
        Some((h.name, name_len_addr))
    } else {
        t.mm.write_obj(name_len_addr, &0u32)?;
        None
    };
    let (g, used) =
        do_recv(t, fd, &iovs, name, Some((h.control, if h.control == 0 { 0 } else { h.controllen })), flags)?;
    t.mm.write_obj(msg + 40, &(used as u64))?;
    t.mm.write_obj(msg + 48, &g.flags)?;
    Ok(g.ret)
}

pub fn recvmsg(t: &mut Task, fd: Fd, msg: Addr, flags: i32) -> SysResult {
    Ok(recvmsg_one(t, fd, msg, flags)? as u64)
}

/// `struct mmsghdr`: a `msghdr` and the length it moved.
const MMSG: u64 = 64;

pub fn sendmmsg(t: &mut Task, fd: Fd, vec: Addr, vlen: u32, flags: i32) -> SysResult {
    let n = usize::try_from(vlen).unwrap_or(0).min(UIO_MAXIOV);
    let mut done = 0usize;
    for i in 0..n {
        let m = vec + i as u64 * MMSG;
        match sendmsg(t, fd, m, flags) {
            Ok(len) => {
                t.mm.write_obj(m + 56, &u32::try_from(len).unwrap_or(u32::MAX))?;
                done += 1;
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done as u64)
}

pub fn recvmmsg(t: &mut Task, fd: Fd, vec: Addr, vlen: u32, flags: i32, timeout: Addr) -> SysResult {
    if timeout != 0 {
        let ts: rvisor_syscalls::abi::Timespec = t.mm.read_obj(timeout)?;
        super::time::duration(ts)?;
    }
    let n = usize::try_from(vlen).unwrap_or(0).min(UIO_MAXIOV);
    let mut done = 0usize;
    for i in 0..n {
        let m = vec + i as u64 * MMSG;
        let f = if done > 0 && flags & MSG_WAITFORONE != 0 { flags | MSG_DONTWAIT } else { flags };
        match recvmsg_one(t, fd, m, f & !MSG_WAITFORONE) {
            Ok(len) => {
                t.mm.write_obj(m + 56, &u32::try_from(len).unwrap_or(u32::MAX))?;
                done += 1;
            }
            Err(e) if done == 0 => return Err(e),
            Err(_) => break,
        }
    }
    Ok(done as u64)
}

const SO_REUSEADDR: i32 = 2;
const SO_TYPE: i32 = 3;
const SO_ERROR: i32 = 4;
const SO_SNDBUF: i32 = 7;
const SO_RCVBUF: i32 = 8;
const SO_KEEPALIVE: i32 = 9;
const SO_PASSCRED: i32 = 16;
const SO_PEERCRED: i32 = 17;
const SO_ACCEPTCONN: i32 = 30;
const SO_PROTOCOL: i32 = 38;
const SO_DOMAIN: i32 = 39;
/// `SOCK_MIN_SNDBUF` and `SOCK_MIN_RCVBUF`.
const MIN_SNDBUF: usize = 4608;
const MIN_RCVBUF: usize = 2304;
/// The sandbox's `wmem_max`/`rmem_max` (Linux's default).
const BUF_LIMIT: usize = 212_992;

pub fn setsockopt(t: &mut Task, fd: Fd, level: i32, opt: i32, val: Addr, len: u32) -> SysResult {
    let (_, s) = sock_of(t, fd)?;
    if level != SOL_SOCKET {
        return Err(Errno::EOPNOTSUPP);
    }
    let int = |t: &Task| -> Result<i32, Errno> {
        if len < 4 {
            return Err(Errno::EINVAL);
        }
        t.mm.read_obj::<i32>(val)
    };
    match opt {
        SO_SNDBUF | SO_RCVBUF => {
            let v = usize::try_from(int(t)?.max(0)).unwrap_or(0).min(BUF_LIMIT) * 2;
            let send = opt == SO_SNDBUF;
            s.set_buf(send, v.max(if send { MIN_SNDBUF } else { MIN_RCVBUF }));
        }
        SO_PASSCRED => s.set_passcred(int(t)? != 0),
        // Accepted without effect here (as for AF_UNIX on Linux).
        SO_REUSEADDR | SO_KEEPALIVE => {
            int(t)?;
        }
        _ => return Err(Errno::ENOPROTOOPT),
    }
    Ok(0)
}

pub fn getsockopt(t: &mut Task, fd: Fd, level: i32, opt: i32, val: Addr, len_addr: Addr) -> SysResult {
    let (_, s) = sock_of(t, fd)?;
    if level != SOL_SOCKET {
        return Err(Errno::EOPNOTSUPP);
    }
    let room: i32 = t.mm.read_obj(len_addr)?;
    let room = usize::try_from(room).map_err(|_| Errno::EINVAL)?;
    let as_int = |v: usize| i32::try_from(v).unwrap_or(i32::MAX).to_le_bytes().to_vec();
    let bytes = match opt {
        SO_TYPE => s.kind.to_le_bytes().to_vec(),
        SO_ERROR => s.take_error().map_or(0i32, Errno::get).to_le_bytes().to_vec(),
        SO_SNDBUF => as_int(s.buf(true)),
        SO_RCVBUF => as_int(s.buf(false)),
        SO_PASSCRED => i32::from(s.passcred()).to_le_bytes().to_vec(),
        SO_ACCEPTCONN => i32::from(s.is_listening()).to_le_bytes().to_vec(),
        SO_DOMAIN => AF_UNIX.to_le_bytes().to_vec(),
        SO_PROTOCOL => 0i32.to_le_bytes().to_vec(),
        SO_REUSEADDR | SO_KEEPALIVE => 0i32.to_le_bytes().to_vec(),
        SO_PEERCRED => {
            let c = s.peer_cred().unwrap_or(Ucred { pid: 0, uid: u32::MAX, gid: u32::MAX });
            let mut v = c.pid.to_le_bytes().to_vec();
            v.extend_from_slice(&c.uid.to_le_bytes());
            v.extend_from_slice(&c.gid.to_le_bytes());
            v
        }
        _ => return Err(Errno::ENOPROTOOPT),
    };
    let n = bytes.len().min(room);
    t.mm.copy_out(val, &bytes[..n])?;
    t.mm.write_obj(len_addr, &u32::try_from(n).unwrap_or(0))?;
    Ok(0)
}
