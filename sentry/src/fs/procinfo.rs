//! The system-wide files of the sandbox's `/proc`: `meminfo`, `cpuinfo`,
//! `stat`, `uptime`, `loadavg`, `version`, `filesystems`, and the `sys`
//! keys programs read. They describe the sandbox (its memory, its CPUs,
//! its processes, its names), never the host's processes.

use std::fmt::Write as _;
use std::sync::{Arc, Weak};

use rvisor_syscalls::Errno;

use super::synth::{Meta, SynthDir, SynthFile};
use crate::kernel::Kernel;
use crate::vfs::inode::InodeRef;

fn meta(mode: u32) -> Meta {
    Meta::new(mode, super::proc::PROC_SUPER_MAGIC)
}

type Gen = Box<dyn Fn(&Kernel) -> String + Send + Sync>;

/// A read-only file generated from the kernel's state.
fn gen(k: &Weak<Kernel>, f: Gen) -> InodeRef {
    let k = k.clone();
    SynthFile::new(
        meta(0o444),
        Box::new(move || {
            let k = k.upgrade().ok_or(Errno::ENOENT)?;
            Ok(f(&k).into_bytes())
        }),
    )
}

/// A read-only file with fixed contents.
fn fixed(s: &str) -> InodeRef {
    let s = s.to_string();
    SynthFile::new(meta(0o444), Box::new(move || Ok(s.clone().into_bytes())))
}

fn dir(entries: Vec<(&str, InodeRef)>) -> InodeRef {
    let entries: Vec<(Vec<u8>, InodeRef)> =
        entries.into_iter().map(|(n, i)| (n.as_bytes().to_vec(), i)).collect();
    SynthDir::new(meta(0o555), Box::new(move || entries.clone()), true)
}

/// The system-wide entries of `/proc` (its per-process directories and
/// `self` are `proc.rs`'s).
pub fn entries(kernel: &Arc<Kernel>) -> Vec<(&'static str, InodeRef)> {
    let k = Arc::downgrade(kernel);
    vec![
        ("meminfo", gen(&k, Box::new(meminfo))),
        ("cpuinfo", gen(&k, Box::new(cpuinfo))),
        ("stat", gen(&k, Box::new(stat))),
        ("uptime", gen(&k, Box::new(uptime))),
        ("loadavg", gen(&k, Box::new(loadavg))),
        ("version", fixed(&version())),
        (
            "filesystems",
            fixed("nodev\tsysfs\nnodev\ttmpfs\nnodev\tproc\nnodev\tdevpts\nnodev\toverlay\nnodev\tgofer\n"),
        ),
        ("sys", sys(&k)),
    ]
}

fn version() -> String {
    format!(
        "Linux version {} (rvisor@rvisor) (rvisor) {}\n",
        crate::kernel::KERNEL_RELEASE,
        crate::kernel::KERNEL_VERSION
    )
}

fn meminfo(k: &Kernel) -> String {
    let total = k.mem_total() / 1024;
    let used = (k.mf.committed() / 1024).min(total);
    let free = total - used;
    let mut s = String::new();
    for (name, kb) in [
        ("MemTotal", total),
        ("MemFree", free),
        ("MemAvailable", free),
        ("Buffers", 0),
        ("Cached", 0),
        ("SwapCached", 0),
        ("Active", used),
        ("Inactive", 0),
        ("Active(anon)", used),
        ("Inactive(anon)", 0),
        ("Active(file)", 0),
        ("Inactive(file)", 0),
        ("Unevictable", 0),
        ("Mlocked", 0),
        ("SwapTotal", 0),
        ("SwapFree", 0),
        ("Dirty", 0),
        ("Writeback", 0),
        ("AnonPages", used),
        ("Mapped", 0),
        ("Shmem", 0),
        ("KReclaimable", 0),
        ("Slab", 0),
        ("SReclaimable", 0),
        ("SUnreclaim", 0),
        ("KernelStack", 0),
        ("PageTables", 0),
        ("CommitLimit", total),
        ("Committed_AS", used),
        ("VmallocTotal", 34_359_738_367),
        ("VmallocUsed", 0),
        ("VmallocChunk", 0),
        ("HugePages_Total", 0),
        ("HugePages_Free", 0),
        ("HugePages_Rsvd", 0),
        ("HugePages_Surp", 0),
        ("Hugepagesize", 2048),
    ] {
        if name.starts_with("HugePages_") {
            let _ = writeln!(s, "{:<16}{kb:>8}", format!("{name}:"));
        } else {
            let _ = writeln!(s, "{:<16}{kb:>8} kB", format!("{name}:"));
        }
    }
    s
}

/// CPUID leaf `leaf`, subleaf `sub`: (eax, ebx, ecx, edx).
fn cpuid(leaf: u32, sub: u32) -> (u32, u32, u32, u32) {
    let r = std::arch::x86_64::__cpuid_count(leaf, sub);
    (r.eax, r.ebx, r.ecx, r.edx)
}

/// Linux's names of CPUID feature bits, by (register word, bit).
const FLAGS_1_EDX: [&str; 32] = [
    "fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8", "apic", "", "sep", "mtrr", "pge", "mca",
    "cmov", "pat", "pse36", "pn", "clflush", "", "dts", "acpi", "mmx", "fxsr", "sse", "sse2", "ss", "ht",
    "tm", "ia64", "pbe",
];
const FLAGS_1_ECX: [&str; 32] = [
    "pni",
    "pclmulqdq",
    "dtes64",
    "monitor",
    "ds_cpl",
    "vmx",
    "smx",
    "est",
    "tm2",
    "ssse3",
    "cid",
    "sdbg",
    "fma",
    "cx16",
    "xtpr",
    "pdcm",
    "",
    "pcid",
    "dca",
    "sse4_1",
    "sse4_2",
    "x2apic",
    "movbe",
    "popcnt",
    "tsc_deadline_timer",
    "aes",
    "xsave",
    "",
    "avx",
    "f16c",
    "rdrand",
    "hypervisor",
];
const FLAGS_7_EBX: [&str; 32] = [
    "fsgsbase",
    "tsc_adjust",
    "sgx",
    "bmi1",
    "hle",
    "avx2",
    "",
    "smep",
    "bmi2",
    "erms",
    "invpcid",
    "rtm",
    "cqm",
    "",
    "mpx",
    "rdt_a",
    "avx512f",
    "avx512dq",
    "rdseed",
    "adx",
    "smap",
    "avx512ifma",
    "",
    "clflushopt",
    "clwb",
    "intel_pt",
    "avx512pf",
    "avx512er",
    "avx512cd",
    "sha_ni",
    "avx512bw",
    "avx512vl",
];
const FLAGS_81_EDX: [(u32, &str); 5] =
    [(11, "syscall"), (20, "nx"), (26, "pdpe1gb"), (27, "rdtscp"), (29, "lm")];
const FLAGS_81_ECX: [(u32, &str); 5] =
    [(0, "lahf_lm"), (5, "abm"), (6, "sse4a"), (8, "3dnowprefetch"), (21, "tbm")];

/// What `/proc/cpuinfo` says of one CPU of this machine, without the
/// `processor` and topology lines.
fn cpu_description() -> (String, String) {
    let (max, b, c, d) = cpuid(0, 0);
    let vendor: Vec<u8> = [b, d, c].iter().flat_map(|r| r.to_le_bytes()).collect();
    let vendor = String::from_utf8_lossy(&vendor).into_owned();
    let (a1, _, c1, d1) = cpuid(1, 0);
    let stepping = a1 & 0xf;
    let mut model = (a1 >> 4) & 0xf;
    let mut family = (a1 >> 8) & 0xf;
    if family == 0xf {
        family += (a1 >> 20) & 0xff;
    }
    if family >= 6 {
        model += ((a1 >> 16) & 0xf) << 4;
    }
    let (max_ext, ..) = cpuid(0x8000_0000, 0);
    let name = if max_ext >= 0x8000_0004 {
        let bytes: Vec<u8> = (0x8000_0002..=0x8000_0004u32)
            .flat_map(|l| {
                let (a, b, c, d) = cpuid(l, 0);
                [a, b, c, d].into_iter().flat_map(u32::to_le_bytes)
            })
            .collect();
        String::from_utf8_lossy(&bytes).trim_matches(char::from(0)).trim().to_string()
    } else {
        "unknown".into()
    };
    let mut flags: Vec<&str> = Vec::new();
    let bits = |word: u32, names: &[&'static str; 32], out: &mut Vec<&'static str>| {
        for (i, n) in names.iter().enumerate() {
            if !n.is_empty() && word & (1 << i) != 0 {
                out.push(n);
            }
        }
    };
    bits(d1, &FLAGS_1_EDX, &mut flags);
    bits(c1, &FLAGS_1_ECX, &mut flags);
    if max_ext >= 0x8000_0001 {
        let (_, _, c81, d81) = cpuid(0x8000_0001, 0);
        flags.extend(FLAGS_81_EDX.iter().filter(|(b, _)| d81 & (1 << b) != 0).map(|(_, n)| *n));
        flags.extend(FLAGS_81_ECX.iter().filter(|(b, _)| c81 & (1 << b) != 0).map(|(_, n)| *n));
    }
    if max >= 7 {
        let (_, b7, ..) = cpuid(7, 0);
        bits(b7, &FLAGS_7_EBX, &mut flags);
    }
    let mhz = crate::kernel::vdso::tsc_mhz().unwrap_or(0.0);
    let head = format!(
        "vendor_id\t: {vendor}\ncpu family\t: {family}\nmodel\t\t: {model}\nmodel name\t: {name}\nstepping\t: \
         {stepping}\ncpu MHz\t\t: {mhz:.3}\n"
    );
    let tail = format!(
        "fpu\t\t: yes\nfpu_exception\t: yes\ncpuid level\t: {max}\nwp\t\t: yes\nflags\t\t: {}\nbogomips\t: \
         {:.2}\nclflush size\t: 64\ncache_alignment\t: 64\naddress sizes\t: 46 bits physical, 48 bits virtual\npower \
         management:\n",
        flags.join(" "),
        mhz * 2.0
    );
    (head, tail)
}

fn cpuinfo(k: &Kernel) -> String {
    static DESC: std::sync::OnceLock<(String, String)> = std::sync::OnceLock::new();
    let (head, tail) = DESC.get_or_init(cpu_description);
    let n = k.cpus.max(1);
    let mut s = String::new();
    for i in 0..n {
        let _ = write!(
            s,
            "processor\t: {i}\n{head}physical id\t: 0\nsiblings\t: {n}\ncore id\t\t: {i}\ncpu cores\t: {n}\napicid\t\t: \
             {i}\ninitial apicid\t: {i}\n{tail}\n"
        );
    }
    s
}

/// The sandbox's CPU time in clock ticks (USER_HZ): (user, system), and
/// the ticks its CPUs have had since it booted.
fn ticks(k: &Kernel) -> (u64, u64, u64) {
    let (mut user, mut sys) = (0u128, 0u128);
    for g in k.thread_groups() {
        let c = g.cpu_times();
        user += c.user.as_millis() / 10;
        sys += c.sys.as_millis() / 10;
    }
    let up = k.boot.elapsed().as_millis() / 10 * k.cpus.max(1) as u128;
    let t = |v: u128| u64::try_from(v).unwrap_or(u64::MAX);
    (t(user), t(sys), t(up))
}

fn stat(k: &Kernel) -> String {
    let (user, sys, all) = ticks(k);
    let idle = all.saturating_sub(user + sys);
    let n = k.cpus.max(1) as u64;
    let mut s = format!("cpu  {user} 0 {sys} {idle} 0 0 0 0 0 0\n");
    for i in 0..n {
        // The sandbox does not track its time per CPU: an even share.
        let _ = writeln!(s, "cpu{i} {} 0 {} {} 0 0 0 0 0 0", user / n, sys / n, idle / n);
    }
    let boot = super::synth::boot_time().tv_sec;
    let running = k.thread_groups().len();
    let _ = write!(
        s,
        "intr 0\nctxt 0\nbtime {boot}\nprocesses {}\nprocs_running 1\nprocs_blocked 0\nsoftirq 0 0 0 0 0 0 0 0 0 0 \
         0\n",
        k.last_pid().max(i32::try_from(running).unwrap_or(i32::MAX))
    );
    s
}

fn uptime(k: &Kernel) -> String {
    let (user, sys, all) = ticks(k);
    let up = k.boot.elapsed();
    let idle = all.saturating_sub(user + sys);
    format!("{}.{:02} {}.{:02}\n", up.as_secs(), up.subsec_millis() / 10, idle / 100, idle % 100)
}

fn loadavg(k: &Kernel) -> String {
    // The sandbox keeps no load average.
    format!("0.00 0.00 0.00 1/{} {}\n", k.task_count().max(1), k.last_pid())
}

/// A key of `/proc/sys`: a value the sandbox has, read-only.
fn key(v: impl std::fmt::Display) -> InodeRef {
    fixed(&format!("{v}\n"))
}

fn sys(k: &Weak<Kernel>) -> InodeRef {
    let hostname =
        gen(k, Box::new(|k| format!("{}\n", k.uts.read().unwrap_or_else(|p| p.into_inner()).hostname)));
    let domainname =
        gen(k, Box::new(|k| format!("{}\n", k.uts.read().unwrap_or_else(|p| p.into_inner()).domainname)));
    let boot_id = key(uuid(&mut rand_bytes()));
    let uuid_file =
        SynthFile::new(meta(0o444), Box::new(|| Ok(format!("{}\n", uuid(&mut rand_bytes())).into_bytes())));
    let random = dir(vec![
        ("boot_id", boot_id),
        ("uuid", uuid_file),
        ("entropy_avail", key(256)),
        ("poolsize", key(256)),
    ]);
    let kernel = dir(vec![
        ("hostname", hostname),
        ("domainname", domainname),
        ("osrelease", key(crate::kernel::KERNEL_RELEASE)),
        ("ostype", key("Linux")),
        ("version", key(crate::kernel::KERNEL_VERSION)),
        ("pid_max", key(crate::kernel::PID_MAX)),
        ("threads-max", key(crate::kernel::PID_MAX)),
        ("ngroups_max", key(65536)),
        ("cap_last_cap", key(40)),
        ("randomize_va_space", key(2)),
        ("overflowuid", key(65534)),
        ("overflowgid", key(65534)),
        ("random", random),
    ]);
    let vm = dir(vec![
        ("overcommit_memory", key(0)),
        ("overcommit_ratio", key(50)),
        ("max_map_count", key(crate::mm::MAX_MAP_COUNT)),
        ("mmap_min_addr", key(65536)),
    ]);
    let inotify = dir(vec![
        ("max_user_watches", key(crate::fs::inotify::MAX_WATCHES)),
        ("max_user_instances", key(128)),
        ("max_queued_events", key(crate::fs::inotify::MAX_QUEUED)),
    ]);
    let fs = dir(vec![
        ("nr_open", key(crate::vfs::NR_OPEN)),
        ("file-max", key(i64::MAX)),
        ("pipe-max-size", key(crate::fs::pipe::PIPE_MAX_SIZE)),
        ("inotify", inotify),
    ]);
    let net = dir(vec![("core", dir(vec![("somaxconn", key(crate::fs::unix::SOMAXCONN))]))]);
    dir(vec![("kernel", kernel), ("vm", vm), ("fs", fs), ("net", net)])
}

fn rand_bytes() -> [u8; 16] {
    let mut b = [0u8; 16];
    let _ = rustix::rand::getrandom(&mut b, rustix::rand::GetRandomFlags::empty());
    b
}

/// A random (version 4) UUID in Linux's text form.
fn uuid(b: &mut [u8; 16]) -> String {
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h: Vec<String> = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        h[0..4].concat(),
        h[4..6].concat(),
        h[6..8].concat(),
        h[8..10].concat(),
        h[10..16].concat()
    )
}
