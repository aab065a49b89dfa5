//! The sandbox's clock and its vDSO.
//!
//! Every address space maps rvisor's own vDSO (`vdso/vdso.c`, built by
//! `build.rs`) and, in the page below it, the *vvar* page: clock
//! parameters this module keeps up to date. The vDSO answers
//! `clock_gettime` (realtime, monotonic, boottime, TAI and the coarse
//! ones), `gettimeofday`, `time`, `clock_getres` and `getcpu` without a
//! trap; any other call, or a call made before the parameters are ready,
//! is the real system call, which traps into the sentry like any other.
//!
//! The clock is the TSC, which this host's kernel also uses as its
//! clocksource (the vDSO is mapped either way; without a usable TSC its
//! calls all trap). A clock thread calibrates the TSC against the host's
//! `CLOCK_MONOTONIC` and steers the rate so that the sandbox's monotonic
//! clock follows the host's (an error is worked off over the next second,
//! never by stepping back); realtime, boottime and TAI are offsets from it.
//! The sentry's own answers ([`clock_ns`]) come from the same page by the
//! same formula, so a trapped `clock_gettime` and the vDSO's agree and
//! neither goes backwards against the other.

#![allow(unsafe_code)]

use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicI64, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rvisor_platform::Prot;
use rvisor_syscalls::Errno;

use crate::mm::vma::{FileMap, MappedFile, VmaName};
use crate::mm::{page_up, MapRequest, MemoryManager, PAGE};

/// The vDSO image: a position-independent shared object linked at 0,
/// without relocations.
pub const IMAGE: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/vdso.so"));

const NSEC: u64 = 1_000_000_000;

/// Clocks the parameters answer (Linux's clock ids).
pub const CLOCK_REALTIME: i32 = 0;
/// See [`CLOCK_REALTIME`].
pub const CLOCK_MONOTONIC: i32 = 1;
/// See [`CLOCK_REALTIME`].
pub const CLOCK_REALTIME_COARSE: i32 = 5;
/// See [`CLOCK_REALTIME`].
pub const CLOCK_MONOTONIC_COARSE: i32 = 6;
/// See [`CLOCK_REALTIME`].
pub const CLOCK_BOOTTIME: i32 = 7;
/// See [`CLOCK_REALTIME`].
pub const CLOCK_TAI: i32 = 11;

/// The vvar page as `vdso.c`'s `struct vvar` reads it (a seqlock: `seq`
/// is odd while the sentry writes).
#[repr(C)]
struct VvarPage {
    seq: AtomicU32,
    ready: AtomicU32,
    tsc_base: AtomicU64,
    mono_base: AtomicU64,
    mult: AtomicU64,
    real_off: AtomicI64,
    boot_off: AtomicI64,
    tai_off: AtomicI64,
    coarse_ns: AtomicU64,
}

const _: () = assert!(std::mem::offset_of!(VvarPage, tsc_base) == 8);
const _: () = assert!(std::mem::offset_of!(VvarPage, coarse_ns) == 56);

/// The clock parameters: `CLOCK_MONOTONIC` in ns is
/// `mono_base + ((tsc - tsc_base) * mult) >> 32`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Params {
    /// TSC at the base.
    pub tsc_base: u64,
    /// Monotonic ns at the base.
    pub mono_base: u64,
    /// ns per TSC tick, 32.32 fixed point.
    pub mult: u64,
    /// `CLOCK_REALTIME - CLOCK_MONOTONIC`, ns.
    pub real_off: i64,
    /// `CLOCK_BOOTTIME - CLOCK_MONOTONIC`, ns.
    pub boot_off: i64,
    /// `CLOCK_TAI - CLOCK_REALTIME`, ns.
    pub tai_off: i64,
    /// Resolution of the coarse clocks, ns.
    pub coarse_ns: u64,
}

impl Params {
    /// Monotonic ns at TSC `tsc` (`vdso.c`'s arithmetic, wrapping alike).
    pub fn mono_at(&self, tsc: u64) -> u64 {
        let d = tsc.saturating_sub(self.tsc_base);
        let x = (u128::from(d) * u128::from(self.mult)) >> 32;
        self.mono_base.wrapping_add(u64::try_from(x & u128::from(u64::MAX)).unwrap_or(0))
    }

    /// Clock `clk` in ns at TSC `tsc`, or `None` for a clock the
    /// parameters do not answer (as `vdso.c`'s `read_clock`).
    pub fn clock_at(&self, clk: i32, tsc: u64) -> Option<u64> {
        let t = self.mono_at(tsc);
        let coarse = self.coarse_ns.max(1);
        Some(match clk {
            CLOCK_MONOTONIC => t,
            CLOCK_MONOTONIC_COARSE => t - t % coarse,
            CLOCK_REALTIME => t.wrapping_add_signed(self.real_off),
            CLOCK_REALTIME_COARSE => (t - t % coarse).wrapping_add_signed(self.real_off),
            CLOCK_BOOTTIME => t.wrapping_add_signed(self.boot_off),
            CLOCK_TAI => t.wrapping_add_signed(self.real_off).wrapping_add_signed(self.tai_off),
            _ => return None,
        })
    }
}

/// One reading of the host's clocks against the TSC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sample {
    /// TSC, the middle of the bracket around the monotonic reading.
    pub tsc: u64,
    /// Host `CLOCK_MONOTONIC`, ns.
    pub mono: u64,
    /// Host `CLOCK_REALTIME - CLOCK_MONOTONIC`, ns.
    pub real_off: i64,
    /// Host `CLOCK_BOOTTIME - CLOCK_MONOTONIC`, ns.
    pub boot_off: i64,
    /// Host `CLOCK_TAI - CLOCK_REALTIME`, ns.
    pub tai_off: i64,
}

/// An offset that changed by less than this is measurement noise: the
/// old one stays (realtime does not jitter back and forth).
const OFFSET_NOISE_NS: i64 = 1_000_000;
/// An error larger than this (the host was suspended, say) is not
/// steered away but stepped, forwards only.
const STEP_NS: i64 = 100_000_000;

/// Calibration and steering, pure: from host samples to parameters.
#[derive(Debug, Default)]
pub struct Steer {
    origin: Option<Sample>,
}

impl Steer {
    /// Takes sample `s`; with the parameters in force (`cur`, if any)
    /// returns the next ones, based at `s.tsc`: the rate is the host's
    /// since the calibration's origin, plus what works off the error at
    /// `s` over the next `next_ns` (the time to the next update). `None`
    /// until two samples give a rate. A clock that went back (the TSC
    /// reset, the host migrated) or a jump beyond [`STEP_NS`] (a suspended
    /// host) starts the calibration afresh; the sandbox's clock then steps
    /// forwards or runs at half speed, never back.
    pub fn update(
        &mut self,
        s: Sample,
        cur: Option<&Params>,
        coarse_ns: u64,
        next_ns: u64,
    ) -> Option<Params> {
        let Some(o) = self.origin else {
            self.origin = Some(s);
            return None;
        };
        let keep = |old: i64, new: i64| if (new - old).abs() < OFFSET_NOISE_NS { old } else { new };
        let based = |mono_base: u64, mult: u64, c: Option<&Params>| Params {
            tsc_base: s.tsc,
            mono_base,
            mult: mult.max(1),
            real_off: c.map_or(s.real_off, |c| keep(c.real_off, s.real_off)),
            boot_off: c.map_or(s.boot_off, |c| keep(c.boot_off, s.boot_off)),
            tai_off: c.map_or(s.tai_off, |c| keep(c.tai_off, s.tai_off)),
            coarse_ns,
        };
        if s.tsc <= o.tsc || s.mono <= o.mono {
            self.origin = Some(s);
            let c = cur?;
            return Some(based(s.mono, c.mult, Some(c)));
        }
        let (dt, dns) = (s.tsc - o.tsc, s.mono - o.mono);
        if dt < 1_000 {
            return None;
        }
        let rate = u64::try_from((u128::from(dns) << 32) / u128::from(dt)).ok()?.max(1);
        let Some(cur) = cur else { return Some(based(s.mono, rate, None)) };
        let ours = cur.mono_at(s.tsc);
        let err = (i128::from(s.mono) - i128::from(ours)).clamp(i128::from(i64::MIN), i128::from(i64::MAX));
        let err = i64::try_from(err).unwrap_or(0);
        if err > STEP_NS {
            self.origin = Some(s);
            return Some(based(s.mono, cur.mult, Some(cur)));
        }
        if err < -STEP_NS {
            // Far ahead of the host (its clock stood still): half speed
            // until it catches up.
            self.origin = Some(s);
            return Some(based(ours, cur.mult / 2, Some(cur)));
        }
        // Work the error off over the next interval, at no less than
        // half and no more than twice the rate.
        let horizon = u64::try_from((u128::from(next_ns.max(1_000_000)) << 32) / u128::from(rate))
            .unwrap_or(u64::MAX)
            .max(1);
        let fix = (i128::from(err) << 32) / i128::from(horizon);
        let m = (i128::from(rate) + fix).clamp(i128::from(rate / 2).max(1), i128::from(rate) * 2);
        Some(based(ours, u64::try_from(m).unwrap_or(rate), Some(cur)))
    }
}

/// Reads the TSC after every load before it has completed (Linux's
/// `rdtsc_ordered`).
fn rdtsc() -> u64 {
    // SAFETY: LFENCE and RDTSC only order and read; every x86_64 CPU has
    // both (SSE2 is part of x86_64), and user-space RDTSC is what the
    // host's own vDSO uses.
    unsafe {
        std::arch::x86_64::_mm_lfence();
        std::arch::x86_64::_rdtsc()
    }
}

fn host_ns(c: rustix::time::ClockId) -> i128 {
    let t = rustix::time::clock_gettime(c);
    i128::from(t.tv_sec) * i128::from(NSEC) + i128::from(t.tv_nsec)
}

/// Samples the host's clocks: the best of a few bracketed readings.
fn sample() -> Sample {
    use rustix::time::ClockId as C;
    let mut best: Option<(u64, Sample)> = None;
    for _ in 0..5 {
        let t1 = rdtsc();
        let m1 = host_ns(C::Monotonic);
        let t2 = rdtsc();
        let real = host_ns(C::Realtime);
        let boot = host_ns(C::Boottime);
        let tai = host_ns(C::Tai);
        let m2 = host_ns(C::Monotonic);
        let width = t2.wrapping_sub(t1);
        let mid = (m1 + m2) / 2;
        let s = Sample {
            tsc: t1 + width / 2,
            mono: u64::try_from(m1).unwrap_or(0),
            real_off: i64::try_from(real - mid).unwrap_or(0),
            boot_off: i64::try_from(boot - mid).unwrap_or(0),
            tai_off: i64::try_from(tai - real).unwrap_or(0),
        };
        if best.is_none_or(|(w, _)| width < w) {
            best = Some((width, s));
        }
    }
    best.map_or_else(|| unreachable!("five samples taken"), |(_, s)| s)
}

/// The vDSO of this sentry: the memfd holding the vvar page and the
/// image, and the sentry's own mapping of the vvar page.
pub struct Vdso {
    file: Arc<MappedFile>,
    page: NonNull<VvarPage>,
    image_len: u64,
    tsc_ok: bool,
    coarse_ns: u64,
}

// SAFETY: the page is a shared mapping that lives as long as the process
// (it is never unmapped); it is only accessed through atomics.
unsafe impl Send for Vdso {}
// SAFETY: as above.
unsafe impl Sync for Vdso {}

impl std::fmt::Debug for Vdso {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vdso").field("image_len", &self.image_len).field("tsc_ok", &self.tsc_ok).finish()
    }
}

static VDSO: OnceLock<Option<Vdso>> = OnceLock::new();

/// Whether the host's TSC can be the sandbox's clock: invariant
/// (`constant_tsc`, `nonstop_tsc`) and the host kernel's own clocksource
/// (so it found it synchronised across CPUs). Read from the host's
/// `/proc` and `/sys` at start-up.
fn tsc_usable() -> bool {
    let flags = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = flags.lines().find(|l| l.starts_with("flags")).unwrap_or_default();
    let has = |f: &str| flags.split_whitespace().any(|w| w == f);
    let source = std::fs::read_to_string("/sys/devices/system/clocksource/clocksource0/current_clocksource")
        .unwrap_or_default();
    has("constant_tsc") && has("nonstop_tsc") && source.trim() == "tsc"
}

fn create() -> std::io::Result<Vdso> {
    let image_len = page_up(IMAGE.len() as u64).unwrap_or(PAGE);
    let fd = rustix::fs::memfd_create(
        "rvisor-vdso",
        rustix::fs::MemfdFlags::CLOEXEC | rustix::fs::MemfdFlags::ALLOW_SEALING,
    )?;
    rustix::fs::ftruncate(&fd, PAGE + image_len)?;
    let mut done = 0;
    while done < IMAGE.len() {
        done += rustix::io::pwrite(&fd, &IMAGE[done..], PAGE + done as u64)?;
    }
    let len = usize::try_from(PAGE).unwrap_or(4096);
    // SAFETY: a fresh shared mapping of our own memfd's first page, at an
    // address the kernel picks; it is never unmapped.
    let p = unsafe {
        rustix::mm::mmap(
            std::ptr::null_mut(),
            len,
            rustix::mm::ProtFlags::READ | rustix::mm::ProtFlags::WRITE,
            rustix::mm::MapFlags::SHARED,
            &fd,
            0,
        )?
    };
    let page =
        NonNull::new(p.cast::<VvarPage>()).ok_or_else(|| std::io::Error::from_raw_os_error(libc::ENOMEM))?;
    // Nothing but the mapping just made may write it again (defence in
    // depth: the descriptor sits in the table the stubs share).
    use rustix::fs::SealFlags as S;
    rustix::fs::fcntl_add_seals(&fd, S::SHRINK | S::GROW | S::FUTURE_WRITE | S::SEAL)?;
    let coarse = rustix::time::clock_getres(rustix::time::ClockId::MonotonicCoarse);
    let coarse_ns = u64::try_from(coarse.tv_nsec).unwrap_or(4_000_000).max(1);
    let file = Arc::new(MappedFile {
        fd: Arc::new(fd),
        writable: false,
        exec_ok: true,
        write_access: None,
        dev: 0,
        ino: 0,
        path: "[vdso]".into(),
    });
    Ok(Vdso { file, page, image_len, tsc_ok: tsc_usable(), coarse_ns })
}

/// Creates the vDSO (before the sentry is confined: it reads the host's
/// CPU flags and clocksource). Without it, address spaces get no vDSO.
pub fn prepare() {
    VDSO.get_or_init(|| match create() {
        Ok(v) => Some(v),
        Err(e) => {
            tracing::warn!("no vDSO: {e}");
            None
        }
    });
}

fn get() -> Option<&'static Vdso> {
    VDSO.get().and_then(Option::as_ref)
}

impl Vdso {
    fn page(&self) -> &VvarPage {
        // SAFETY: the mapping is live for the process's life and holds a
        // `VvarPage` (all atomics, any bit pattern valid).
        unsafe { self.page.as_ref() }
    }

    /// The parameters in force (a consistent read of the seqlock).
    fn params(&self) -> Option<(Params, u64)> {
        let v = self.page();
        let mut spins = 0u32;
        loop {
            let seq = v.seq.load(Ordering::Acquire);
            if seq & 1 == 0 {
                if v.ready.load(Ordering::Relaxed) == 0 {
                    return None;
                }
                let p = Params {
                    tsc_base: v.tsc_base.load(Ordering::Relaxed),
                    mono_base: v.mono_base.load(Ordering::Relaxed),
                    mult: v.mult.load(Ordering::Relaxed),
                    real_off: v.real_off.load(Ordering::Relaxed),
                    boot_off: v.boot_off.load(Ordering::Relaxed),
                    tai_off: v.tai_off.load(Ordering::Relaxed),
                    coarse_ns: v.coarse_ns.load(Ordering::Relaxed),
                };
                let tsc = rdtsc();
                fence(Ordering::Acquire);
                if v.seq.load(Ordering::Relaxed) == seq {
                    return Some((p, tsc));
                }
            }
            spins += 1;
            if spins.is_multiple_of(64) {
                std::thread::yield_now();
            } else {
                std::hint::spin_loop();
            }
        }
    }

    /// Publishes `next` (based at its sample), rebased at the TSC now:
    /// continuous with the parameters in force, unless `next` steps
    /// forwards.
    fn publish(&self, cur: Option<&Params>, next: Params) -> Params {
        let v = self.page();
        let seq = v.seq.load(Ordering::Relaxed);
        v.seq.store(seq.wrapping_add(1), Ordering::Relaxed);
        // A full fence (mfence): the odd sequence is visible to every CPU
        // before the TSC is read for the new base.
        fence(Ordering::SeqCst);
        let tsc = rdtsc();
        let theirs = next.mono_at(tsc);
        let mono = match cur {
            Some(c) if theirs.saturating_sub(c.mono_at(tsc)) <= STEP_NS.unsigned_abs() => c.mono_at(tsc),
            _ => theirs,
        };
        let p = Params { tsc_base: tsc, mono_base: mono, ..next };
        v.tsc_base.store(p.tsc_base, Ordering::Relaxed);
        v.mono_base.store(p.mono_base, Ordering::Relaxed);
        v.mult.store(p.mult, Ordering::Relaxed);
        v.real_off.store(p.real_off, Ordering::Relaxed);
        v.boot_off.store(p.boot_off, Ordering::Relaxed);
        v.tai_off.store(p.tai_off, Ordering::Relaxed);
        v.coarse_ns.store(p.coarse_ns, Ordering::Relaxed);
        v.ready.store(1, Ordering::Relaxed);
        v.seq.store(seq.wrapping_add(2), Ordering::Release);
        p
    }

    /// The clock thread: refines the calibration after 10 ms, 100 ms and
    /// 1 s, then steers every second.
    fn run(&self, mut steer: Steer, mut cur: Option<Params>) {
        let mut waits = [10u64, 90, 900].into_iter().chain(std::iter::repeat(1000)).peekable();
        while let Some(wait) = waits.next() {
            std::thread::sleep(Duration::from_millis(wait));
            let next_ns = waits.peek().copied().unwrap_or(1000) * 1_000_000;
            if let Some(next) = steer.update(sample(), cur.as_ref(), self.coarse_ns, next_ns) {
                cur = Some(self.publish(cur.as_ref(), next));
            }
        }
    }
}

/// How long the first calibration runs, before the first program: the
/// sandbox's programs then read the TSC clock from their first call (no
/// switch from the host's clocks that they could see).
const FIRST_CALIBRATION: Duration = Duration::from_micros(200);

/// Calibrates the clock (once, for [`FIRST_CALIBRATION`]) and starts the
/// clock thread; nothing happens without a vDSO or with an unusable TSC
/// (every vDSO call then traps).
pub fn start() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    let Some(v) = get().filter(|v| v.tsc_ok) else { return };
    STARTED.call_once(|| {
        let mut steer = Steer::default();
        let _ = steer.update(sample(), None, v.coarse_ns, 0);
        let t0 = std::time::Instant::now();
        while t0.elapsed() < FIRST_CALIBRATION {
            std::hint::spin_loop();
        }
        let first = steer.update(sample(), None, v.coarse_ns, 10_000_000).map(|p| v.publish(None, p));
        if let Err(e) = std::thread::Builder::new().name("clock".into()).spawn(move || v.run(steer, first)) {
            tracing::warn!("no clock thread, the clock is not steered: {e}");
        }
    });
}

/// Clock `clk` in ns as the vDSO reads it, or `None` (another clock, no
/// parameters yet): the caller then reads the host's clock.
pub fn clock_ns(clk: i32) -> Option<u64> {
    let (p, tsc) = get()?.params()?;
    p.clock_at(clk, tsc)
}

/// The TSC's rate in MHz as calibrated (`/proc/cpuinfo`), or `None`.
pub fn tsc_mhz() -> Option<f64> {
    let (p, _) = get()?.params()?;
    // mult: ns per tick, times 2^32.
    Some(1000.0 * (1u64 << 32) as f64 / p.mult as f64)
}

/// Maps the vvar page and the vDSO into `mm` (one page apart, as the
/// image expects); returns the image's address (`AT_SYSINFO_EHDR`), or
/// `None` when this sentry has no vDSO.
pub fn map_into(mm: &MemoryManager) -> Result<Option<u64>, Errno> {
    let Some(v) = get() else { return Ok(None) };
    let req = MapRequest { len: PAGE + v.image_len, prot: Prot::READ, ..MapRequest::default() };
    let at = mm.mmap_file(req, VmaName::Vvar, FileMap { file: v.file.clone(), offset: 0 })?;
    let req = MapRequest {
        addr: at + PAGE,
        len: v.image_len,
        prot: Prot::READ | Prot::EXEC,
        fixed: true,
        ..MapRequest::default()
    };
    mm.mmap_file(req, VmaName::Vdso, FileMap { file: v.file.clone(), offset: PAGE })?;
    Ok(Some(at + PAGE))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The next update a second away.
    const NS: u64 = 1_000_000_000;

    fn s(tsc: u64, mono: u64) -> Sample {
        Sample { tsc, mono, real_off: 1_000_000_000_000, boot_off: 5, tai_off: 37_000_000_000 }
    }

    #[test]
    fn the_image_is_a_relocation_free_shared_object_linked_at_zero() {
        assert_eq!(&IMAGE[..4], b"\x7fELF");
        assert_eq!(IMAGE[4], 2, "64-bit");
        assert_eq!(u16::from_le_bytes([IMAGE[16], IMAGE[17]]), 3, "ET_DYN");
        let phoff = usize::try_from(u64::from_le_bytes(IMAGE[32..40].try_into().unwrap())).unwrap();
        let phnum = usize::from(u16::from_le_bytes([IMAGE[56], IMAGE[57]]));
        let mut loads = 0;
        let mut dynamic = None;
        for i in 0..phnum {
            let ph = &IMAGE[phoff + i * 56..phoff + (i + 1) * 56];
            let word = |o: usize| u64::from_le_bytes(ph[o..o + 8].try_into().unwrap());
            match u32::from_le_bytes(ph[..4].try_into().unwrap()) {
                1 => {
                    loads += 1;
                    assert_eq!(word(16), 0, "PT_LOAD at 0");
                    assert!(word(40) <= IMAGE.len() as u64);
                }
                2 => dynamic = Some((word(8), word(32))),
                _ => {}
            }
        }
        assert_eq!(loads, 1);
        let (off, len) = dynamic.expect("PT_DYNAMIC");
        let d = &IMAGE[usize::try_from(off).unwrap()..usize::try_from(off + len).unwrap()];
        let tags: Vec<u64> = d.chunks(16).map(|c| u64::from_le_bytes(c[..8].try_into().unwrap())).collect();
        // DT_RELA, DT_REL, DT_JMPREL, DT_TEXTREL, DT_NEEDED.
        for bad in [7, 17, 23, 22, 1] {
            assert!(!tags.contains(&bad), "dynamic tag {bad}");
        }
        for need in [4, 0x6fff_fef5, 0x6fff_fff0, 0x6fff_fffc] {
            assert!(tags.contains(&need), "dynamic tag {need:#x} (hash, gnu hash, versym, verdef)");
        }
        let names = String::from_utf8_lossy(IMAGE);
        for sym in
            ["__vdso_clock_gettime", "__vdso_gettimeofday", "__vdso_time", "__vdso_getcpu", "LINUX_2.6"]
        {
            assert!(names.contains(sym), "{sym}");
        }
    }

    #[test]
    fn calibration_needs_two_samples_then_follows_the_host_rate() {
        let mut st = Steer::default();
        assert_eq!(st.update(s(1_000_000, 500), None, 4_000_000, NS), None);
        // 3 ticks per ns.
        let p = st.update(s(1_000_000 + 30_000_000, 500 + 10_000_000), None, 4_000_000, NS).unwrap();
        assert_eq!(p.mono_at(p.tsc_base), 10_000_500);
        // The rate is rounded down: within a nanosecond here.
        assert!((10_001_499..=10_001_500).contains(&p.mono_at(p.tsc_base + 3_000)));
        assert_eq!(p.clock_at(CLOCK_REALTIME, p.tsc_base), Some(10_000_500 + 1_000_000_000_000));
        assert_eq!(p.clock_at(CLOCK_TAI, p.tsc_base), Some(10_000_500 + 1_037_000_000_000));
        assert_eq!(p.clock_at(CLOCK_BOOTTIME, p.tsc_base), Some(10_000_505));
        assert_eq!(p.clock_at(CLOCK_MONOTONIC_COARSE, p.tsc_base), Some(8_000_000));
        assert_eq!(p.clock_at(4, p.tsc_base), None, "MONOTONIC_RAW traps");
        // Before the base (another CPU's TSC a hair behind): the base.
        assert_eq!(p.mono_at(p.tsc_base - 10), 10_000_500);
    }

    #[test]
    fn an_error_is_steered_off_without_going_back() {
        let mut st = Steer::default();
        st.update(s(0, 0), None, 1, NS);
        let p = st.update(s(1_000_000_000, 1_000_000_000), None, 1, NS).unwrap();
        // The host ran 1 µs slower than the rate so far: we are ahead.
        let n = st.update(s(2_000_000_000, 1_999_999_000), Some(&p), 1, NS).unwrap();
        assert_eq!(n.mono_base, p.mono_at(2_000_000_000), "continuous");
        assert!(n.mult < p.mult, "slows down");
        let later = n.mono_at(3_000_000_000);
        assert!(later.abs_diff(2_999_999_000) < 1_000, "converges: {later}");
        // Small offset changes are noise; a realtime step is taken.
        let mut q = s(3_000_000_000, 2_999_999_000);
        q.real_off += 500;
        assert_eq!(st.update(q, Some(&n), 1, NS).unwrap().real_off, p.real_off);
        q.real_off += 5_000_000_000;
        assert_eq!(st.update(q, Some(&n), 1, NS).unwrap().real_off, q.real_off);
    }

    #[test]
    fn a_clock_that_went_back_recalibrates_and_never_freezes() {
        let mut st = Steer::default();
        st.update(s(5_000_000_000, 5_000_000_000), None, 1, NS);
        let p = st.update(s(6_000_000_000, 6_000_000_000), None, 1, NS).unwrap();
        // The TSC reset: parameters based at the new reading, same rate.
        let n = st.update(s(1_000_000, 6_500_000_000), Some(&p), 1, NS).unwrap();
        assert_eq!((n.tsc_base, n.mult), (1_000_000, p.mult));
        assert!(n.mono_at(2_000_000) > n.mono_at(1_000_000), "runs on");
        // And the next update calibrates from there.
        let m = st.update(s(1_001_000_000, 7_500_000_000), Some(&n), 1, NS).unwrap();
        assert!(m.mult > 0 && m.mono_at(m.tsc_base + 1000) > m.mono_base);
    }

    #[test]
    fn a_large_gap_steps_forward_and_the_rate_stays_bounded() {
        let mut st = Steer::default();
        st.update(s(0, 0), None, 1, NS);
        let p = st.update(s(1_000_000_000, 1_000_000_000), None, 1, NS).unwrap();
        let n = st.update(s(2_000_000_000, 7_000_000_000), Some(&p), 1, NS).unwrap();
        assert_eq!((n.mono_base, n.mult), (7_000_000_000, p.mult), "stepped, same rate");
        // Far ahead of the host (8 s against 7.5 s): slower, by at most
        // half, never backwards.
        let m = st.update(s(3_000_000_000, 7_500_000_000), Some(&n), 1, NS).unwrap();
        assert_eq!(m.mono_base, n.mono_at(3_000_000_000));
        assert_eq!(m.mult, p.mult / 2);
    }

    #[test]
    fn the_sentry_and_the_page_agree() {
        // A page of the test's own: the global one is the clock thread's.
        let v = create().unwrap();
        let mut st = Steer::default();
        st.update(sample(), None, v.coarse_ns, NS);
        std::thread::sleep(Duration::from_millis(5));
        let Some(next) = st.update(sample(), None, v.coarse_ns, NS) else { return };
        // Published by hand: the test process has no clock thread.
        let p = v.publish(None, next);
        let (q, tsc) = v.params().unwrap();
        assert_eq!(p, q);
        let a = q.clock_at(CLOCK_MONOTONIC, tsc).unwrap();
        let host = u64::try_from(host_ns(rustix::time::ClockId::Monotonic)).unwrap();
        assert!(a.abs_diff(host) < 1_000_000, "sandbox {a} vs host {host}");
        let (r, tsc) = v.params().unwrap();
        assert!(r.clock_at(CLOCK_MONOTONIC, tsc).unwrap() >= a);
    }
}
