//! Program loading: ELF segments into a fresh address space, the initial
//! stack (argv, envp, auxv), the program break and the `mmap` base.

pub mod elf;

use rvisor_platform::Prot;
use rvisor_syscalls::consts::auxvec as at;
use rvisor_syscalls::Errno;

use self::elf::{ElfFile, ElfKind, ExecSource};
use crate::mm::vma::{FileMap, VmaName};
use crate::mm::{page_down, page_up, MapRequest, MemoryManager, PAGE};

/// What the loader needs to know about the process it loads for.
#[derive(Clone, Debug)]
pub struct LoadArgs {
    /// `argv`.
    pub argv: Vec<Vec<u8>>,
    /// `envp`.
    pub envp: Vec<Vec<u8>>,
    /// `AT_EXECFN`: the path the program was executed as.
    pub execfn: Vec<u8>,
    /// Credentials for the auxv.
    pub uid: u32,
    /// See `uid`.
    pub euid: u32,
    /// See `uid`.
    pub gid: u32,
    /// See `uid`.
    pub egid: u32,
    /// `RLIMIT_STACK` soft limit.
    pub stack_limit: u64,
    /// Whether to randomise the layout (ASLR).
    pub randomize: bool,
}

/// The result of loading a program.
#[derive(Clone, Copy, Debug)]
pub struct Loaded {
    /// Where execution starts.
    pub entry: u64,
    /// Initial stack pointer (pointing at `argc`).
    pub sp: u64,
    /// Bottom of the stack VMA.
    pub stack_start: u64,
    /// Where argv and envp strings went (for `/proc/PID/cmdline`).
    pub args: ArgArea,
}

/// Where the loader put the argument and environment strings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ArgArea {
    /// First byte of argv's strings.
    pub arg_start: u64,
    /// One past the last byte of argv's strings.
    pub arg_end: u64,
    /// First byte of envp's strings.
    pub env_start: u64,
    /// One past the last byte of envp's strings.
    pub env_end: u64,
    /// The auxiliary vector the program was given, up to and with
    /// `AT_NULL` (`/proc/PID/auxv`).
    pub auxv: [(u64, u64); MAX_AUXV],
    /// Entries of `auxv` in use.
    pub auxv_len: usize,
    /// The initial stack pointer (the address of `argc`).
    pub start_stack: u64,
}

/// Most auxiliary vector entries kept.
pub const MAX_AUXV: usize = 32;

/// Limits on `argv` + `envp`, as Linux: a quarter of the stack limit, at
/// least 128 KiB, and at most 6 MiB (a quarter of 24 MiB: below `_STK_LIM`
/// worth of pointers).
pub fn arg_limit(stack_limit: u64) -> u64 {
    (stack_limit / 4).clamp(128 << 10, 6 << 20)
}

/// `MAX_ARG_STRLEN`: one string may be at most 32 pages.
pub const MAX_ARG_STRLEN: usize = 32 * 4096;

/// Host facts that go into every auxv.
#[derive(Clone, Copy, Debug)]
pub struct AuxvFacts {
    /// `AT_HWCAP`.
    pub hwcap: u64,
    /// `AT_HWCAP2`.
    pub hwcap2: u64,
    /// `AT_MINSIGSTKSZ`.
    pub minsigstksz: u64,
}

impl AuxvFacts {
    /// From the CPU: `AT_HWCAP` is CPUID leaf 1 EDX, as Linux reports it;
    /// `AT_HWCAP2` says whether `FSGSBASE` is usable (the host kernel
    /// decides; the sentry's own auxv tells); `AT_MINSIGSTKSZ` is Linux's
    /// signal frame size for this CPU's xsave area.
    /// (Cached: the first call reads the sentry's own auxv, which needs
    /// `/proc` or `PR_GET_AUXV`; see [`crate::prepare`].)
    pub fn detect() -> AuxvFacts {
        static FACTS: std::sync::OnceLock<AuxvFacts> = std::sync::OnceLock::new();
        *FACTS.get_or_init(|| {
            let edx = std::arch::x86_64::__cpuid(1).edx;
            let hwcap2 = rustix::param::linux_hwcap().1 as u64 & rvisor_syscalls::consts::HWCAP2_FSGSBASE;
            AuxvFacts { hwcap: u64::from(edx), hwcap2, minsigstksz: min_sigstack_size() }
        })
    }
}

/// Linux's `get_sigframe_size()` on x86_64 kernels built with ia32
/// emulation (Debian's and upstream's default): `sizeof(struct
/// sigframe_ia32)` (736) plus alignment padding (15), the xsave area with
/// its trailing magic (+4) and the legacy `fregs_state` (+112), and the
/// xsave alignment padding (63), rounded up to 16.
pub fn min_sigstack_size() -> u64 {
    let xsave = rvisor_platform::arch::xsave_size() as u64;
    (736 + 15 + xsave + 4 + 112 + 63).div_ceil(16) * 16
}

/// `ELF_ET_DYN_BASE` for 47-bit address spaces: where Linux puts the
/// program break of a static PIE.
const ELF_ET_DYN_BASE: u64 = (0x7fff_ffff_f000 / 3 * 2) & !(PAGE - 1);

fn random_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    u64::from_le_bytes(b)
}

fn random_pages(max: u64, randomize: bool) -> u64 {
    if !randomize || max == 0 {
        return 0;
    }
    (random_u64() % (max / PAGE)) * PAGE
}

/// Where an ELF image went.
struct Placed {
    /// `base - lowest vaddr`: add to an unrelocated address.
    bias: u64,
    /// One past the highest byte of the image.
    end: u64,
}

impl Placed {
    fn reloc(&self, v: u64) -> Option<u64> {
        v.checked_add(self.bias)
    }
}

/// Maps the `PT_LOAD` segments of `elf` (read from `src`) into `mm`: at
/// their link addresses (`ET_EXEC`), at `at` (`ET_DYN` with a chosen
/// base) or where `mmap` would place the whole image. As Linux's
/// `elf_map`: file pages are mapped private from the file (or copied when
/// the source is not a mappable file), the rest of a writable segment's
/// last file page is zeroed, and the bss beyond it is anonymous memory.
fn map_image<S: ExecSource + ?Sized>(
    mm: &MemoryManager,
    src: &S,
    elf: &ElfFile,
    at: Option<u64>,
    name: &VmaName,
) -> Result<Placed, Errno> {
    let (lo, hi) = elf.span();
    let base = match (elf.kind, at) {
        (ElfKind::Exec, _) => lo,
        (ElfKind::Dyn, Some(b)) => {
            let align = elf.max_align();
            b.checked_add(align - 1).ok_or(Errno::ENOMEM)? & !(align - 1)
        }
        (ElfKind::Dyn, None) => {
            // Reserve room for the whole image, aligned, then map over it.
            let align = elf.max_align();
            let span = page_up(hi - lo).ok_or(Errno::ENOEXEC)?;
            let req = MapRequest { len: span + align, ..MapRequest::default() };
            let at = mm.mmap_anon(req, VmaName::None)?;
            let base = (at + align - 1) & !(align - 1);
            mm.munmap(at, span + align)?;
            base
        }
    };
    // Every vaddr is >= lo, so base + (vaddr - lo) cannot wrap below base.
    let bias = base.wrapping_sub(lo);
    let placed = |v: u64| v.checked_sub(lo).and_then(|d| base.checked_add(d));
    let file = src.mapped();
    let mut end = 0;
    for p in elf.loads() {
        let vstart = placed(p.vaddr).ok_or(Errno::ENOEXEC)?;
        let vend = vstart.checked_add(p.memsz).ok_or(Errno::ENOEXEC)?;
        let start = page_down(vstart);
        let seg_end = page_up(vend).ok_or(Errno::ENOEXEC)?;
        if seg_end <= start {
            continue;
        }
        let prot = p.prot();
        let req = |addr: u64, len: u64| MapRequest { addr, len, prot, fixed: true, ..MapRequest::default() };
        let no_room = |e: Errno| if e == Errno::ENOMEM { e } else { Errno::ENOEXEC };
        let file_end = vstart.checked_add(p.filesz).ok_or(Errno::ENOEXEC)?;
        let mapped_end = match &file {
            Some(f) if p.filesz > 0 => {
                let off = p.offset.checked_sub(vstart - start).ok_or(Errno::ENOEXEC)?;
                let map_end = page_up(file_end).ok_or(Errno::ENOEXEC)?;
                let fm = FileMap { file: f.clone(), offset: off };
                mm.mmap_file(req(start, map_end - start), name.clone(), fm).map_err(no_room)?;
                if p.memsz > p.filesz && prot.contains(Prot::WRITE) && map_end > file_end {
                    // The bss begins inside the last file page.
                    let zeros = vec![0u8; usize::try_from(map_end - file_end).map_err(|_| Errno::ENOEXEC)?];
                    mm.poke(file_end, &zeros)?;
                }
                map_end
            }
            _ => start,
        };
        if seg_end > mapped_end {
            // The bss is anonymous memory (unnamed in /proc/PID/maps); a
            // copied segment keeps the file's name.
            let anon_name = if mapped_end == start { name.clone() } else { VmaName::None };
            mm.mmap_anon(req(mapped_end, seg_end - mapped_end), anon_name).map_err(no_room)?;
            if mapped_end == start {
                // Copied: the whole first file page, then the segment's
                // bytes; the rest reads as zeros (bss).
                copy_file(mm, src, page_down(p.offset), p.offset + p.filesz, start)?;
            }
        }
        end = end.max(vend);
    }
    Ok(Placed { bias, end })
}

/// Loads the executable `src` into the empty address space `mm`, with
/// `interp` (the program's `PT_INTERP`, opened by the caller) when it is
/// dynamically linked.
pub fn load<S: ExecSource + ?Sized>(
    mm: &MemoryManager,
    src: &S,
    interp: Option<&dyn ExecSource>,
    args: &LoadArgs,
    facts: AuxvFacts,
) -> Result<Loaded, Errno> {
    let elf = ElfFile::parse(src)?;
    let interp_elf = match (&elf.interp, interp) {
        (None, _) => None,
        (Some(_), Some(i)) => {
            let ie = ElfFile::parse(i)?;
            // An interpreter is itself static.
            if ie.interp.is_some() {
                return Err(Errno::ELIBBAD);
            }
            Some((ie, i))
        }
        (Some(_), None) => return Err(Errno::ENOEXEC),
    };
    // The stack goes at the top of the user range, randomised by up to
    // 16 GiB like Linux; mmap placement starts below its growth area.
    let stack_limit = args.stack_limit.clamp(128 << 10, 1 << 30);
    let stack_top = page_down(mm.max_addr() - random_pages(16 << 30, args.randomize));
    let stack_start = stack_top - page_up(stack_limit).ok_or(Errno::ENOMEM)?;
    let gap = stack_limit.clamp(128 << 20, 1 << 40) + (1 << 20);
    let mmap_base = page_down(stack_top - gap - random_pages(1 << 40, args.randomize));
    mm.set_mmap_base(mmap_base);

    let name = VmaName::File(
        src.mapped().map_or_else(|| String::from_utf8_lossy(&args.execfn).into(), |m| m.path.clone()),
    );
    // A position-independent executable with an interpreter goes at
    // ELF_ET_DYN_BASE (randomised); a static PIE where mmap would put it.
    let at = (elf.kind == ElfKind::Dyn && elf.interp.is_some())
        .then(|| ELF_ET_DYN_BASE + random_pages(1 << 40, args.randomize));
    let exe = map_image(mm, src, &elf, at, &name)?;
    let entry = exe.reloc(elf.entry).ok_or(Errno::ENOEXEC)?;
    let (start, interp_base) = match &interp_elf {
        Some((ie, i)) => {
            let iname = VmaName::File(i.mapped().map_or_else(
                || String::from_utf8_lossy(elf.interp.as_deref().unwrap_or_default()).into(),
                |m| m.path.clone(),
            ));
            let placed = map_image(mm, *i, ie, None, &iname)?;
            let base = placed.reloc(ie.span().0).ok_or(Errno::ELIBBAD)?;
            (placed.reloc(ie.entry).ok_or(Errno::ELIBBAD)?, base)
        }
        None => (entry, 0),
    };
    let brk = match elf.kind {
        ElfKind::Dyn if elf.interp.is_none() => ELF_ET_DYN_BASE,
        _ => page_up(exe.end).ok_or(Errno::ENOEXEC)?,
    };
    mm.set_brk_start(brk + random_pages(32 << 20, args.randomize));

    // The stack.
    let prot = if elf.exec_stack { Prot::READ | Prot::WRITE | Prot::EXEC } else { Prot::READ | Prot::WRITE };
    let req = MapRequest {
        addr: stack_start,
        len: stack_top - stack_start,
        prot,
        fixed: true,
        ..MapRequest::default()
    };
    mm.mmap_anon(req, VmaName::Stack)?;
    // The vDSO, as Linux maps it after the stack (arch_setup_additional_pages).
    let vdso = crate::kernel::vdso::map_into(mm)?;
    let phdr = elf.phdr_vaddr().and_then(|v| exe.reloc(v)).unwrap_or(0);
    let (sp, area) = build_stack(
        mm,
        stack_top,
        stack_start,
        args,
        facts,
        vdso,
        &[
            (u64::from(at::AT_PHDR), phdr),
            (u64::from(at::AT_PHENT), 56),
            (u64::from(at::AT_PHNUM), u64::from(elf.phnum)),
            (u64::from(at::AT_BASE), interp_base),
            (u64::from(at::AT_FLAGS), 0),
            (u64::from(at::AT_ENTRY), entry),
        ],
    )?;
    Ok(Loaded { entry: start, sp, stack_start, args: area })
}

fn copy_file<S: ExecSource + ?Sized>(
    mm: &MemoryManager,
    src: &S,
    from: u64,
    to: u64,
    addr: u64,
) -> Result<(), Errno> {
    let mut buf = vec![0u8; 64 << 10];
    let mut off = from;
    while off < to {
        let n = usize::try_from((to - off).min(buf.len() as u64)).map_err(|_| Errno::ENOEXEC)?;
        elf::read_exact(src, off, &mut buf[..n])?;
        mm.poke(addr + (off - from), &buf[..n])?;
        off += n as u64;
    }
    Ok(())
}

/// Writes argv, envp and auxv below `top` and returns the stack pointer.
fn build_stack(
    mm: &MemoryManager,
    top: u64,
    bottom: u64,
    args: &LoadArgs,
    facts: AuxvFacts,
    vdso: Option<u64>,
    elf_aux: &[(u64, u64)],
) -> Result<(u64, ArgArea), Errno> {
    let total: u64 = args.argv.iter().chain(&args.envp).map(|s| s.len() as u64 + 1).sum::<u64>()
        + (args.argv.len() + args.envp.len()) as u64 * 8;
    let room = top - bottom;
    if total > arg_limit(args.stack_limit)
        || total + args.execfn.len() as u64 + 4 * PAGE > room
        || args.argv.iter().chain(&args.envp).any(|s| s.len() + 1 > MAX_ARG_STRLEN)
    {
        return Err(Errno::E2BIG);
    }
    let mut sp = top - 8; // a NULL word at the very top, as Linux leaves
    let push_str = |sp: &mut u64, s: &[u8]| -> Result<u64, Errno> {
        *sp -= s.len() as u64 + 1;
        let mut v = s.to_vec();
        v.push(0);
        mm.copy_out(*sp, &v)?;
        Ok(*sp)
    };
    // Strings: the executable's path highest, then envp, then argv, each
    // list in order from low to high addresses.
    let execfn = push_str(&mut sp, &args.execfn)?;
    let env_end = sp;
    let mut envp = Vec::with_capacity(args.envp.len());
    for s in args.envp.iter().rev() {
        envp.push(push_str(&mut sp, s)?);
    }
    envp.reverse();
    let (env_start, arg_end) = (sp, sp);
    let mut argv = Vec::with_capacity(args.argv.len());
    for s in args.argv.iter().rev() {
        argv.push(push_str(&mut sp, s)?);
    }
    argv.reverse();
    let mut area = ArgArea { arg_start: sp, arg_end, env_start, env_end, ..ArgArea::default() };
    sp &= !15;
    let platform = push_str(&mut sp, b"x86_64")?;
    sp -= 16;
    sp &= !15;
    let random = sp;
    let mut rnd = [0u8; 16];
    let _ = rustix::rand::getrandom(&mut rnd, rustix::rand::GetRandomFlags::empty());
    mm.copy_out(random, &rnd)?;

    // AT_SYSINFO_EHDR first, as Linux's ARCH_DLINFO puts it.
    let mut aux: Vec<(u64, u64)> = vdso.map(|v| (u64::from(at::AT_SYSINFO_EHDR), v)).into_iter().collect();
    aux.extend_from_slice(&[
        (u64::from(at::AT_MINSIGSTKSZ), facts.minsigstksz),
        (u64::from(at::AT_HWCAP), facts.hwcap),
        (u64::from(at::AT_PAGESZ), PAGE),
        (u64::from(at::AT_CLKTCK), 100),
    ]);
    aux.extend_from_slice(elf_aux);
    aux.extend_from_slice(&[
        (u64::from(at::AT_UID), u64::from(args.uid)),
        (u64::from(at::AT_EUID), u64::from(args.euid)),
        (u64::from(at::AT_GID), u64::from(args.gid)),
        (u64::from(at::AT_EGID), u64::from(args.egid)),
        (u64::from(at::AT_SECURE), 0),
        (u64::from(at::AT_RANDOM), random),
        (u64::from(at::AT_HWCAP2), facts.hwcap2),
        (u64::from(at::AT_EXECFN), execfn),
        (u64::from(at::AT_PLATFORM), platform),
        (u64::from(at::AT_NULL), 0),
    ]);
    for (slot, e) in area.auxv.iter_mut().zip(&aux) {
        *slot = *e;
    }
    area.auxv_len = aux.len().min(MAX_AUXV);
    let words = 1 + argv.len() + 1 + envp.len() + 1 + aux.len() * 2;
    let mut table: Vec<u64> = Vec::with_capacity(words);
    table.push(argv.len() as u64);
    table.extend(&argv);
    table.push(0);
    table.extend(&envp);
    table.push(0);
    for (k, v) in aux {
        table.push(k);
        table.push(v);
    }
    sp -= words as u64 * 8;
    sp &= !15;
    if sp < bottom + PAGE {
        return Err(Errno::E2BIG);
    }
    let bytes: Vec<u8> = table.iter().flat_map(|w| w.to_le_bytes()).collect();
    mm.copy_out(sp, &bytes)?;
    area.start_stack = sp;
    Ok((sp, area))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use rvisor_platform::fake::FakePlatform;

    use super::*;
    use crate::mm::MemoryFile;

    fn args() -> LoadArgs {
        LoadArgs {
            argv: vec![b"prog".to_vec(), b"arg one".to_vec()],
            envp: vec![b"A=1".to_vec()],
            execfn: b"/bin/prog".to_vec(),
            uid: 1,
            euid: 2,
            gid: 3,
            egid: 4,
            stack_limit: 8 << 20,
            randomize: true,
        }
    }

    fn facts() -> AuxvFacts {
        AuxvFacts { hwcap: 1, hwcap2: 2, minsigstksz: 3 }
    }

    #[test]
    fn loads_a_static_image_and_builds_the_stack() {
        let mf = Arc::new(MemoryFile::new(1 << 30).unwrap());
        let mm = MemoryManager::new(&FakePlatform::default(), mf).unwrap();
        let img = elf::tests::tiny_elf();
        let l = load(&mm, img.as_slice(), None, &args(), facts()).unwrap();
        assert_eq!(l.entry, 0x40_1000);
        assert_eq!(l.sp % 16, 0);
        let word = |a: u64| mm.read_obj::<u64>(a).unwrap();
        assert_eq!(word(l.sp), 2, "argc");
        assert_eq!(mm.read_cstring(word(l.sp + 8), 100).unwrap(), b"prog");
        assert_eq!(mm.read_cstring(word(l.sp + 16), 100).unwrap(), b"arg one");
        assert_eq!(word(l.sp + 24), 0);
        assert_eq!(mm.read_cstring(word(l.sp + 32), 100).unwrap(), b"A=1");
        assert_eq!(word(l.sp + 40), 0);
        // auxv: find AT_ENTRY, AT_EXECFN and AT_RANDOM.
        let mut at = l.sp + 48;
        let mut seen = std::collections::HashMap::new();
        loop {
            let (k, v) = (word(at), word(at + 8));
            if k == 0 {
                break;
            }
            seen.insert(k, v);
            at += 16;
        }
        assert_eq!(seen[&9], 0x40_1000, "AT_ENTRY");
        assert_eq!(seen[&3], 0x40_0040, "AT_PHDR");
        assert_eq!(seen[&12], 2, "AT_EUID");
        assert_eq!(mm.read_cstring(seen[&31], 100).unwrap(), b"/bin/prog");
        assert_eq!(mm.read_bytes(seen[&25], 16).unwrap().len(), 16);
        // The segments hold the file's bytes; the bss reads as zeros.
        assert_eq!(mm.read_bytes(0x40_1000, 3).unwrap(), [0xb8, 0x3c, 0]);
        assert_eq!(mm.read_bytes(0x40_2110, 16).unwrap(), [0; 16]);
    }

    #[test]
    fn argument_limits_are_e2big() {
        let mf = Arc::new(MemoryFile::new(1 << 30).unwrap());
        let mm = MemoryManager::new(&FakePlatform::default(), mf).unwrap();
        let img = elf::tests::tiny_elf();
        let mut a = args();
        a.argv.push(vec![b'x'; MAX_ARG_STRLEN]);
        assert_eq!(load(&mm, img.as_slice(), None, &a, facts()).unwrap_err(), Errno::E2BIG);
        let mut a = args();
        a.envp = vec![vec![b'y'; 1000]; 3000];
        assert_eq!(load(&mm, img.as_slice(), None, &a, facts()).unwrap_err(), Errno::E2BIG);
    }

    #[test]
    fn sigstack_size_follows_linux() {
        // 2432-byte xsave areas (AVX-512, no PKRU) give Linux's 3376.
        let xsave = rvisor_platform::arch::xsave_size() as u64;
        assert_eq!(min_sigstack_size(), (736 + 15 + xsave + 4 + 112 + 63).div_ceil(16) * 16);
    }
}
