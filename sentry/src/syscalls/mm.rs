//! Memory system calls.

use rvisor_platform::Prot;
use rvisor_syscalls::Errno;

use super::{Addr, Fd, SysResult};
use crate::kernel::Task;
use std::sync::Arc;

use crate::mm::vma::{FileMap, MappedFile, VmaFlags, VmaName};
use crate::mm::{page_up, MapRequest, PAGE};

const PROT_READ: u64 = 1;
const PROT_WRITE: u64 = 2;
const PROT_EXEC: u64 = 4;
const PROT_SEM: u64 = 8;
const PROT_GROWSDOWN: u64 = 0x0100_0000;
const PROT_GROWSUP: u64 = 0x0200_0000;

const MAP_SHARED: u64 = 1;
const MAP_PRIVATE: u64 = 2;
const MAP_SHARED_VALIDATE: u64 = 3;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_GROWSDOWN: u64 = 0x100;
const MAP_DENYWRITE: u64 = 0x800;
const MAP_EXECUTABLE: u64 = 0x1000;
const MAP_LOCKED: u64 = 0x2000;
const MAP_NORESERVE: u64 = 0x4000;
const MAP_POPULATE: u64 = 0x8000;
const MAP_NONBLOCK: u64 = 0x10000;
const MAP_STACK: u64 = 0x20000;
const MAP_HUGETLB: u64 = 0x40000;
const MAP_SYNC: u64 = 0x80000;
const MAP_FIXED_NOREPLACE: u64 = 0x100000;
const MAP_UNINITIALIZED: u64 = 0x400_0000;
/// Huge page size bits (`MAP_HUGE_SHIFT` 26, 6 bits).
const MAP_HUGE_MASK: u64 = 0x3f << 26;
/// Flags `MAP_SHARED_VALIDATE` accepts.
const MAP_KNOWN: u64 = MAP_FIXED
    | MAP_ANONYMOUS
    | MAP_GROWSDOWN
    | MAP_DENYWRITE
    | MAP_EXECUTABLE
    | MAP_LOCKED
    | MAP_NORESERVE
    | MAP_POPULATE
    | MAP_NONBLOCK
    | MAP_STACK
    | MAP_HUGETLB
    | MAP_SYNC
    | MAP_FIXED_NOREPLACE
    | MAP_UNINITIALIZED
    | MAP_HUGE_MASK
    | 3;

fn prot(p: u64) -> Result<Prot, Errno> {
    if p & !(PROT_READ | PROT_WRITE | PROT_EXEC | PROT_SEM | PROT_GROWSDOWN | PROT_GROWSUP) != 0 {
        return Err(Errno::EINVAL);
    }
    let mut r = Prot::empty();
    if p & PROT_READ != 0 {
        r |= Prot::READ;
    }
    if p & PROT_WRITE != 0 {
        r |= Prot::WRITE;
    }
    if p & PROT_EXEC != 0 {
        r |= Prot::EXEC;
    }
    Ok(r)
}

pub fn mmap(t: &mut Task, addr: Addr, len: u64, prot_bits: u64, flags: u64, fd: Fd, off: u64) -> SysResult {
    // Linux's order: the offset, then the descriptor, then the rest.
    if !off.is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    let anonymous = flags & MAP_ANONYMOUS != 0;
    let file = if anonymous { None } else { Some(t.fds.get(fd.0)?) };
    // Linux's mmap ignores protection bits it does not know.
    let prot = prot(prot_bits & (PROT_READ | PROT_WRITE | PROT_EXEC))?;
    let shared = match flags & 3 {
        MAP_SHARED => true,
        MAP_PRIVATE => false,
        // Linux accepts the validating type for files only.
        MAP_SHARED_VALIDATE if anonymous => return Err(Errno::EINVAL),
        MAP_SHARED_VALIDATE => {
            if flags & !MAP_KNOWN != 0 {
                return Err(Errno::EOPNOTSUPP);
            }
            true
        }
        _ => return Err(Errno::EINVAL),
    };
    if len == 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_up(len).ok_or(Errno::ENOMEM)?;
    if off.checked_add(len).is_none() {
        return Err(Errno::EOVERFLOW);
    }
    if shared && flags & MAP_GROWSDOWN != 0 {
        return Err(Errno::EINVAL);
    }
    let req = MapRequest {
        addr,
        len,
        prot,
        shared,
        fixed: flags & MAP_FIXED != 0,
        noreplace: flags & MAP_FIXED_NOREPLACE != 0,
        growsdown: flags & MAP_GROWSDOWN != 0,
        populate: flags & MAP_POPULATE != 0 && flags & MAP_NONBLOCK == 0,
    };
    match file {
        None => t.mm.mmap_anon(req, VmaName::None),
        // /dev/zero: anonymous memory (shared or private as asked), with
        // the descriptor's access checked as for any file.
        Some(f) if f.maps_anonymous() && !f.is_path_only() => {
            if !f.readable() || req.shared && req.prot.contains(Prot::WRITE) && !f.writable() {
                return Err(Errno::EACCES);
            }
            t.mm.mmap_anon(req, VmaName::None)
        }
        Some(f) => mmap_file(t, &f, req, off),
    }
}

/// `mmap` of an open file: Linux's checks on the descriptor, then a VMA
/// backed by the file's host descriptor.
fn mmap_file(t: &Task, f: &crate::vfs::File, req: MapRequest, off: u64) -> SysResult {
    let host = f.mappable();
    if f.is_path_only() {
        return Err(Errno::EBADF);
    }
    let Some(fd) = host else {
        // Directories, host stdio (pipes and terminals), special files.
        return Err(if f.path().is_some_and(|p| p.attr().is_ok_and(|a| a.is_dir())) {
            Errno::ENODEV
        } else {
            Errno::EACCES
        });
    };
    if !f.readable() {
        return Err(Errno::EACCES);
    }
    if req.shared && req.prot.contains(Prot::WRITE) && !f.writable() {
        return Err(Errno::EACCES);
    }
    // Where the file is: a path of the VFS, or a memfd.
    let mut writable = f.writable();
    let (dev, ino, name, exec_ok) = if let Some(m) = f.ops().memfd() {
        // Sealed against writes: no shared mapping may ever write.
        if m.seals()? & crate::fs::memfd::SEALS_DENYING_WRITES != 0 {
            if req.shared && req.prot.contains(Prot::WRITE) {
                return Err(Errno::EPERM);
            }
            writable = false;
        }
        let (dev, ino) = m.key();
        (dev, ino, f.ops().link_name().unwrap_or_default(), true)
    } else {
        let path = f.path().ok_or(Errno::EACCES)?;
        if req.prot.contains(Prot::EXEC) && path.mount.flags & crate::vfs::mflags::NOEXEC != 0 {
            return Err(Errno::EPERM);
        }
        let a = path.attr()?;
        let ctx = t.fs_context();
        let name = crate::vfs::path_string(&ctx.root, path);
        let exec_ok = path.mount.flags & crate::vfs::mflags::NOEXEC == 0;
        (a.dev, a.ino, String::from_utf8_lossy(&name).into_owned(), exec_ok)
    };
    // A shared writable mapping counts as a writer while it lives
    // (ETXTBSY for an execution meanwhile; EBUSY for a memfd's write seal).
    let write_access = if req.shared && writable {
        Some(crate::vfs::textbusy::get_write((dev, ino)).ok_or(Errno::ETXTBSY)?)
    } else {
        None
    };
    let file = Arc::new(MappedFile { fd, writable, exec_ok, write_access, dev, ino, path: name.into() });
    t.mm.mmap_file(req, VmaName::File(file.path.clone()), FileMap { file, offset: off })
}

pub fn munmap(t: &mut Task, addr: Addr, len: u64) -> SysResult {
    t.mm.munmap(addr, len)?;
    Ok(0)
}

pub fn mprotect(t: &mut Task, addr: Addr, len: u64, prot_bits: u64) -> SysResult {
    let p = prot(prot_bits)?;
    if prot_bits & PROT_GROWSUP != 0 {
        // x86_64 has no upward-growing stacks.
        return Err(Errno::EINVAL);
    }
    if prot_bits & PROT_GROWSDOWN != 0 && !t.mm.grows_down(addr) {
        return Err(Errno::EINVAL);
    }
    t.mm.mprotect(addr, len, p)?;
    Ok(0)
}

pub fn brk(t: &mut Task, addr: Addr) -> SysResult {
    Ok(t.mm.brk(addr))
}

pub fn mremap(t: &mut Task, old: Addr, old_len: u64, new_len: u64, flags: u64, new_addr: Addr) -> SysResult {
    const MREMAP_MAYMOVE: u64 = 1;
    const MREMAP_FIXED: u64 = 2;
    const MREMAP_DONTUNMAP: u64 = 4;
    if flags & !(MREMAP_MAYMOVE | MREMAP_FIXED | MREMAP_DONTUNMAP) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MREMAP_FIXED != 0 && flags & MREMAP_MAYMOVE == 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MREMAP_DONTUNMAP != 0 {
        // Not supported yet; Linux also refuses it for many mappings.
        return Err(Errno::EINVAL);
    }
    let fixed = (flags & MREMAP_FIXED != 0).then_some(new_addr);
    t.mm.mremap(old, old_len, new_len, flags & MREMAP_MAYMOVE != 0, fixed)
}

pub fn msync(t: &mut Task, addr: Addr, len: u64, flags: i32) -> SysResult {
    const MS_ASYNC: i32 = 1;
    const MS_INVALIDATE: i32 = 2;
    const MS_SYNC: i32 = 4;
    if !addr.is_multiple_of(PAGE) || flags & !(MS_ASYNC | MS_INVALIDATE | MS_SYNC) != 0 {
        return Err(Errno::EINVAL);
    }
    if flags & MS_ASYNC != 0 && flags & MS_SYNC != 0 {
        return Err(Errno::EINVAL);
    }
    let len = page_up(len).ok_or(Errno::ENOMEM)?;
    if len != 0 {
        t.mm.msync(addr, len, flags & MS_SYNC != 0)?;
    }
    Ok(0)
}

pub fn mincore(t: &mut Task, addr: Addr, len: u64, vec: Addr) -> SysResult {
    if !addr.is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    let len = page_up(len).ok_or(Errno::ENOMEM)?;
    if addr.checked_add(len).is_none_or(|e| e > t.mm.max_addr()) {
        return Err(Errno::ENOMEM);
    }
    if len == 0 {
        return Ok(0);
    }
    // Linux's access_ok: the vector must lie in the user range (whether it
    // is mapped shows when it is written).
    if vec.checked_add(len / PAGE).is_none_or(|e| e > t.mm.max_addr()) {
        return Err(Errno::EFAULT);
    }
    // A chunk at a time, as Linux: the range may span the whole address
    // space.
    let (mut at, end, mut out) = (addr, addr + len, vec);
    while at < end {
        let n = (end - at).min(crate::mm::MINCORE_CHUNK * PAGE);
        let v = t.mm.mincore(at, n)?;
        t.mm.copy_out(out, &v)?;
        at += n;
        out += v.len() as u64;
        if t.must_stop() {
            return Err(Errno::EINTR);
        }
    }
    Ok(0)
}

pub fn madvise(t: &mut Task, addr: Addr, len: u64, advice: i32) -> SysResult {
    const MADV_DONTNEED: i32 = 4;
    const MADV_FREE: i32 = 8;
    const MADV_REMOVE: i32 = 9;
    const MADV_DONTFORK: i32 = 10;
    const MADV_DOFORK: i32 = 11;
    const MADV_WIPEONFORK: i32 = 18;
    const MADV_KEEPONFORK: i32 = 19;
    const MADV_HWPOISON: i32 = 100;
    if !addr.is_multiple_of(PAGE) {
        return Err(Errno::EINVAL);
    }
    let len = page_up(len).ok_or(Errno::EINVAL)?;
    match advice {
        MADV_DONTNEED | MADV_FREE => {
            if len != 0 {
                t.mm.dont_need(addr, len)?;
            }
            Ok(0)
        }
        MADV_DONTFORK | MADV_DOFORK | MADV_WIPEONFORK | MADV_KEEPONFORK => {
            let flag = if advice == MADV_DONTFORK || advice == MADV_DOFORK {
                VmaFlags::DONTFORK
            } else {
                VmaFlags::WIPEONFORK
            };
            if len != 0 {
                t.mm.set_fork_flag(addr, len, flag, advice == MADV_DONTFORK || advice == MADV_WIPEONFORK)?;
            }
            Ok(0)
        }
        MADV_REMOVE => Err(Errno::EINVAL),
        MADV_HWPOISON => Err(Errno::EPERM),
        // Advice Linux 6.1 knows (hints need a mapped range).
        0..=3 | 10..=23 | 25 => {
            if len != 0 && !t.mm.is_mapped(addr, len) {
                return Err(Errno::ENOMEM);
            }
            Ok(0)
        }
        _ => Err(Errno::EINVAL),
    }
}

fn lock_range(t: &Task, addr: Addr, len: u64) -> SysResult {
    let start = addr & !(PAGE - 1);
    let end = page_up(addr.checked_add(len).ok_or(Errno::ENOMEM)?).ok_or(Errno::ENOMEM)?;
    if end > start && !t.mm.is_mapped(start, end - start) {
        return Err(Errno::ENOMEM);
    }
    Ok(0)
}

pub fn mlock(t: &mut Task, addr: Addr, len: u64) -> SysResult {
    // Sandbox memory is never swapped by the sentry; locking is accepted
    // for mapped ranges (accounting comes with memory limits).
    lock_range(t, addr, len)
}

pub fn munlock(t: &mut Task, addr: Addr, len: u64) -> SysResult {
    lock_range(t, addr, len)
}

pub fn mlockall(_t: &mut Task, flags: i32) -> SysResult {
    const MCL_CURRENT: i32 = 1;
    const MCL_FUTURE: i32 = 2;
    const MCL_ONFAULT: i32 = 4;
    if flags == 0 || flags & !(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT) != 0 || flags == MCL_ONFAULT {
        return Err(Errno::EINVAL);
    }
    Ok(0)
}

pub fn munlockall(_t: &mut Task) -> SysResult {
    Ok(0)
}
