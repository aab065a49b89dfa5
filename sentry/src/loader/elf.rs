//! ELF64 x86_64 executable parsing. The file is hostile: every field is
//! checked before use and anything malformed is `ENOEXEC`, never a panic.

use rvisor_platform::Prot;
use rvisor_syscalls::Errno;

/// Where the loader reads an executable from.
pub trait ExecSource {
    /// Reads up to `buf.len()` bytes at `off`; returns how many were read.
    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno>;
    /// The file to map segments from (`None`: segments are copied).
    fn mapped(&self) -> Option<std::sync::Arc<crate::mm::vma::MappedFile>> {
        None
    }
    /// File size.
    fn len(&self) -> u64;
    /// Whether the file is empty.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl ExecSource for [u8] {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        let Ok(off) = usize::try_from(off) else { return Ok(0) };
        if off >= self.len() {
            return Ok(0);
        }
        let n = buf.len().min(self.len() - off);
        buf[..n].copy_from_slice(&self[off..off + n]);
        Ok(n)
    }
    fn len(&self) -> u64 {
        self.len() as u64
    }
}

impl ExecSource for std::os::fd::OwnedFd {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        loop {
            match rustix::io::pread(self, &mut *buf, off) {
                Ok(n) => return Ok(n),
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => return Err(Errno::new(e.raw_os_error()).unwrap_or(Errno::EIO)),
            }
        }
    }
    fn len(&self) -> u64 {
        rustix::fs::fstat(self).map(|s| u64::try_from(s.st_size).unwrap_or(0)).unwrap_or(0)
    }
}

/// An executable opened through the VFS.
pub struct ExecFile {
    /// The open file.
    pub ops: Box<dyn crate::vfs::FileOps>,
    /// Its size.
    pub size: u64,
    /// Its host descriptor and identity, to map segments from.
    pub mapped: Option<std::sync::Arc<crate::mm::vma::MappedFile>>,
    /// Writes refused while it is executed (`ETXTBSY`).
    pub deny_write: Option<crate::vfs::textbusy::DenyWrite>,
}

impl ExecSource for ExecFile {
    fn read_at(&self, off: u64, buf: &mut [u8]) -> Result<usize, Errno> {
        self.ops.read_at(buf, off)
    }
    fn len(&self) -> u64 {
        self.size
    }
    fn mapped(&self) -> Option<std::sync::Arc<crate::mm::vma::MappedFile>> {
        self.mapped.clone()
    }
}

/// Reads exactly `buf.len()` bytes at `off` or fails with `ENOEXEC`.
pub fn read_exact<S: ExecSource + ?Sized>(src: &S, off: u64, buf: &mut [u8]) -> Result<(), Errno> {
    let mut done = 0;
    while done < buf.len() {
        let n = src.read_at(off + done as u64, &mut buf[done..])?;
        if n == 0 {
            return Err(Errno::ENOEXEC);
        }
        done += n;
    }
    Ok(())
}

/// `e_type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElfKind {
    /// `ET_EXEC`: loaded at its link addresses.
    Exec,
    /// `ET_DYN`: position independent, loaded at a chosen base.
    Dyn,
}

/// A program header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phdr {
    /// `p_type`.
    pub p_type: u32,
    /// `p_flags` (`PF_R` 4, `PF_W` 2, `PF_X` 1).
    pub flags: u32,
    /// `p_offset`.
    pub offset: u64,
    /// `p_vaddr`.
    pub vaddr: u64,
    /// `p_filesz`.
    pub filesz: u64,
    /// `p_memsz`.
    pub memsz: u64,
    /// `p_align`.
    pub align: u64,
}

impl Phdr {
    /// The protections the segment asks for.
    pub fn prot(&self) -> Prot {
        let mut p = Prot::empty();
        if self.flags & 4 != 0 {
            p |= Prot::READ;
        }
        if self.flags & 2 != 0 {
            p |= Prot::WRITE;
        }
        if self.flags & 1 != 0 {
            p |= Prot::EXEC;
        }
        p
    }
}

/// `PT_LOAD`.
pub const PT_LOAD: u32 = 1;
/// `PT_INTERP`.
pub const PT_INTERP: u32 = 3;
/// `PT_PHDR`.
pub const PT_PHDR: u32 = 6;
/// `PT_GNU_STACK`.
pub const PT_GNU_STACK: u32 = 0x6474_e551;

const EHDR_SIZE: usize = 64;
const PHDR_SIZE: u64 = 56;
/// Linux refuses program header tables over 64 KiB.
const MAX_PHDRS_BYTES: u64 = 65536;
/// Longest interpreter path.
const MAX_INTERP: u64 = 4096;
/// A user address space is 47 bits; nothing may span more.
pub const MAX_SPAN: u64 = 1 << 47;

/// A parsed, validated executable.
#[derive(Clone, Debug)]
pub struct ElfFile {
    /// `e_type`.
    pub kind: ElfKind,
    /// `e_entry` (unrelocated).
    pub entry: u64,
    /// `e_phoff`.
    pub phoff: u64,
    /// `e_phnum`.
    pub phnum: u16,
    /// Program headers.
    pub phdrs: Vec<Phdr>,
    /// `PT_INTERP` path, without its NUL.
    pub interp: Option<Vec<u8>>,
    /// Whether `PT_GNU_STACK` asks for an executable stack.
    pub exec_stack: bool,
}

fn u16_at(b: &[u8], o: usize) -> u16 {
    u16::from_le_bytes([b[o], b[o + 1]])
}
fn u32_at(b: &[u8], o: usize) -> u32 {
    u32::from_le_bytes([b[o], b[o + 1], b[o + 2], b[o + 3]])
}
fn u64_at(b: &[u8], o: usize) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[o..o + 8]);
    u64::from_le_bytes(a)
}

impl ElfFile {
    /// The `PT_LOAD` headers, in file order (validated to be ascending).
    pub fn loads(&self) -> impl Iterator<Item = &Phdr> {
        self.phdrs.iter().filter(|p| p.p_type == PT_LOAD)
    }

    /// `[lowest page, end of highest segment)` of the unrelocated image.
    pub fn span(&self) -> (u64, u64) {
        let lo = self.loads().map(|p| p.vaddr & !0xfff).min().unwrap_or(0);
        let hi = self.loads().map(|p| p.vaddr + p.memsz).max().unwrap_or(0);
        (lo, hi)
    }

    /// Largest power-of-two `p_align` of the `PT_LOAD`s (at least a page,
    /// at most 1 GiB).
    pub fn max_align(&self) -> u64 {
        self.loads()
            .map(|p| p.align)
            .filter(|a| a.is_power_of_two())
            .max()
            .unwrap_or(4096)
            .clamp(4096, 1 << 30)
    }

    /// The unrelocated address of the program headers in memory.
    pub fn phdr_vaddr(&self) -> Option<u64> {
        if let Some(p) = self.phdrs.iter().find(|p| p.p_type == PT_PHDR) {
            return Some(p.vaddr);
        }
        self.loads()
            .find(|p| p.offset <= self.phoff && self.phoff - p.offset < p.filesz)
            .map(|p| p.vaddr + (self.phoff - p.offset))
    }

    /// Parses and validates `src`.
    pub fn parse<S: ExecSource + ?Sized>(src: &S) -> Result<ElfFile, Errno> {
        let size = src.len();
        let mut eh = [0u8; EHDR_SIZE];
        read_exact(src, 0, &mut eh)?;
        if &eh[0..4] != b"\x7fELF" || eh[4] != 2 || eh[5] != 1 || eh[6] != 1 {
            return Err(Errno::ENOEXEC);
        }
        let kind = match u16_at(&eh, 16) {
            2 => ElfKind::Exec,
            3 => ElfKind::Dyn,
            _ => return Err(Errno::ENOEXEC),
        };
        if u16_at(&eh, 18) != 62 {
            return Err(Errno::ENOEXEC);
        }
        let entry = u64_at(&eh, 24);
        let phoff = u64_at(&eh, 32);
        let phentsize = u16_at(&eh, 54);
        let phnum = u16_at(&eh, 56);
        if u64::from(phentsize) != PHDR_SIZE || phnum == 0 {
            return Err(Errno::ENOEXEC);
        }
        let table = u64::from(phnum) * PHDR_SIZE;
        if table > MAX_PHDRS_BYTES || phoff.checked_add(table).is_none_or(|e| e > size) {
            return Err(Errno::ENOEXEC);
        }
        let mut raw = vec![0u8; usize::try_from(table).map_err(|_| Errno::ENOEXEC)?];
        read_exact(src, phoff, &mut raw)?;
        let mut phdrs = Vec::with_capacity(usize::from(phnum));
        for c in raw.chunks_exact(56) {
            phdrs.push(Phdr {
                p_type: u32_at(c, 0),
                flags: u32_at(c, 4),
                offset: u64_at(c, 8),
                vaddr: u64_at(c, 16),
                filesz: u64_at(c, 32),
                memsz: u64_at(c, 40),
                align: u64_at(c, 48),
            });
        }
        let mut interp = None;
        let mut exec_stack = false;
        let mut last_vaddr = None;
        for p in &phdrs {
            match p.p_type {
                PT_LOAD => {
                    if p.filesz > p.memsz
                        || p.offset.checked_add(p.filesz).is_none_or(|e| e > size)
                        || p.vaddr % 4096 != p.offset % 4096
                        || p.vaddr.checked_add(p.memsz).is_none_or(|e| e > MAX_SPAN)
                    {
                        return Err(Errno::ENOEXEC);
                    }
                    if last_vaddr.is_some_and(|l| p.vaddr < l) {
                        // The ELF specification requires ascending order.
                        return Err(Errno::ENOEXEC);
                    }
                    last_vaddr = Some(p.vaddr);
                }
                PT_INTERP => {
                    if interp.is_some()
                        || p.filesz < 2
                        || p.filesz > MAX_INTERP
                        || p.offset.checked_add(p.filesz).is_none_or(|e| e > size)
                    {
                        return Err(Errno::ENOEXEC);
                    }
                    let mut path = vec![0u8; usize::try_from(p.filesz).map_err(|_| Errno::ENOEXEC)?];
                    read_exact(src, p.offset, &mut path)?;
                    if path.pop() != Some(0) || path.contains(&0) {
                        return Err(Errno::ENOEXEC);
                    }
                    interp = Some(path);
                }
                PT_GNU_STACK => exec_stack = p.flags & 1 != 0,
                _ => {}
            }
        }
        let f = ElfFile { kind, entry, phoff, phnum, phdrs, interp, exec_stack };
        if f.loads().next().is_none() {
            return Err(Errno::ENOEXEC);
        }
        let (lo, hi) = f.span();
        if hi <= lo || hi - lo > MAX_SPAN {
            return Err(Errno::ENOEXEC);
        }
        if !f.loads().any(|p| p.vaddr <= entry && entry - p.vaddr < p.memsz) {
            return Err(Errno::ENOEXEC);
        }
        Ok(f)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal valid static executable image: one RX segment with the
    /// entry in it, one RW segment with bss.
    pub fn tiny_elf() -> Vec<u8> {
        let mut f = vec![0u8; 0x2000];
        f[0..4].copy_from_slice(b"\x7fELF");
        f[4] = 2;
        f[5] = 1;
        f[6] = 1;
        f[16..18].copy_from_slice(&2u16.to_le_bytes());
        f[18..20].copy_from_slice(&62u16.to_le_bytes());
        f[20..24].copy_from_slice(&1u32.to_le_bytes());
        f[24..32].copy_from_slice(&0x40_1000u64.to_le_bytes());
        f[32..40].copy_from_slice(&64u64.to_le_bytes());
        f[52..54].copy_from_slice(&64u16.to_le_bytes());
        f[54..56].copy_from_slice(&56u16.to_le_bytes());
        f[56..58].copy_from_slice(&2u16.to_le_bytes());
        let ph = |f: &mut Vec<u8>, at: usize, flags: u32, off: u64, vaddr: u64, filesz: u64, memsz: u64| {
            f[at..at + 4].copy_from_slice(&PT_LOAD.to_le_bytes());
            f[at + 4..at + 8].copy_from_slice(&flags.to_le_bytes());
            f[at + 8..at + 16].copy_from_slice(&off.to_le_bytes());
            f[at + 16..at + 24].copy_from_slice(&vaddr.to_le_bytes());
            f[at + 32..at + 40].copy_from_slice(&filesz.to_le_bytes());
            f[at + 40..at + 48].copy_from_slice(&memsz.to_le_bytes());
            f[at + 48..at + 56].copy_from_slice(&0x1000u64.to_le_bytes());
        };
        ph(&mut f, 64, 5, 0, 0x40_0000, 0x1010, 0x1010);
        ph(&mut f, 120, 6, 0x1010, 0x40_2010, 0x100, 0x3000);
        // Entry code: mov eax, 60; xor edi, edi; syscall.
        f[0x1000..0x1009].copy_from_slice(&[0xb8, 0x3c, 0, 0, 0, 0x31, 0xff, 0x0f, 0x05]);
        f
    }

    #[test]
    fn parses_a_valid_image() {
        let img = tiny_elf();
        let e = ElfFile::parse(img.as_slice()).unwrap();
        assert_eq!(e.kind, ElfKind::Exec);
        assert_eq!(e.entry, 0x40_1000);
        assert_eq!(e.loads().count(), 2);
        assert_eq!(e.span(), (0x40_0000, 0x40_5010));
        assert_eq!(e.phdr_vaddr(), Some(0x40_0040));
        assert!(e.interp.is_none() && !e.exec_stack);
    }

    fn with(f: impl FnOnce(&mut Vec<u8>)) -> Result<ElfFile, Errno> {
        let mut img = tiny_elf();
        f(&mut img);
        ElfFile::parse(img.as_slice())
    }

    #[test]
    fn rejects_malformed_images() {
        assert_eq!(ElfFile::parse(&b"\x7fELF"[..]).unwrap_err(), Errno::ENOEXEC);
        assert_eq!(ElfFile::parse(&b""[..]).unwrap_err(), Errno::ENOEXEC);
        assert!(with(|f| f[4] = 1).is_err(), "32-bit");
        assert!(with(|f| f[18] = 3).is_err(), "i386");
        assert!(with(|f| f[16] = 1).is_err(), "ET_REL");
        assert!(with(|f| f[54] = 32).is_err(), "phentsize");
        assert!(with(|f| f[56..58].copy_from_slice(&0u16.to_le_bytes())).is_err(), "no phdrs");
        assert!(with(|f| f[56..58].copy_from_slice(&0xffffu16.to_le_bytes())).is_err(), "table too big");
        assert!(with(|f| f[32..40].copy_from_slice(&0x1fffu64.to_le_bytes())).is_err(), "table past EOF");
        assert!(with(|f| f[24..32].copy_from_slice(&0x90_0000u64.to_le_bytes())).is_err(), "entry outside");
        // filesz > memsz
        assert!(with(|f| f[64 + 32..64 + 40].copy_from_slice(&0x2000u64.to_le_bytes())).is_err());
        // segment past EOF
        assert!(with(|f| f[120 + 8..120 + 16].copy_from_slice(&0x1f10u64.to_le_bytes())).is_err());
        // huge memsz
        assert!(with(|f| f[120 + 40..120 + 48].copy_from_slice(&u64::MAX.to_le_bytes())).is_err());
        // vaddr and offset not congruent
        assert!(with(|f| f[120 + 16..120 + 24].copy_from_slice(&0x40_2011u64.to_le_bytes())).is_err());
        // descending PT_LOADs
        assert!(with(|f| f[120 + 16..120 + 24].copy_from_slice(&0x3f_f010u64.to_le_bytes())).is_err());
    }

    #[test]
    fn interp_must_be_a_terminated_path() {
        let set_interp = |f: &mut Vec<u8>, path: &[u8]| {
            f[120..124].copy_from_slice(&PT_INTERP.to_le_bytes());
            f[120 + 8..120 + 16].copy_from_slice(&0x1800u64.to_le_bytes());
            f[120 + 32..120 + 40].copy_from_slice(&(path.len() as u64).to_le_bytes());
            f[0x1800..0x1800 + path.len()].copy_from_slice(path);
        };
        let e = with(|f| set_interp(f, b"/lib/ld.so\0")).unwrap();
        assert_eq!(e.interp.as_deref(), Some(&b"/lib/ld.so"[..]));
        assert!(with(|f| set_interp(f, b"/lib/ld.so")).is_err());
        assert!(with(|f| set_interp(f, b"/lib\0/ld\0")).is_err());
    }
}
