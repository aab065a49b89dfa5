//! The sandbox's `/sys` (minimal): the CPUs the sandbox has
//! (`devices/system/cpu/{online,possible,present,kernel_max}` and a
//! directory per CPU), and empty `fs/cgroup`, `kernel` and `class`
//! directories. Nothing of the host's devices shows.

use std::sync::Arc;

use super::synth::{Meta, SynthDir, SynthFile};
use crate::kernel::Kernel;
use crate::vfs::inode::InodeRef;

/// `statfs` type of sysfs.
pub const SYSFS_MAGIC: u64 = 0x6265_6572;

fn meta(mode: u32) -> Meta {
    Meta::new(mode, SYSFS_MAGIC)
}

/// A directory of fixed entries.
fn dir(entries: Vec<(&str, InodeRef)>) -> InodeRef {
    let entries: Vec<(Vec<u8>, InodeRef)> =
        entries.into_iter().map(|(n, i)| (n.as_bytes().to_vec(), i)).collect();
    SynthDir::new(meta(0o755), Box::new(move || entries.clone()), true)
}

/// A read-only file with fixed contents.
fn text(s: String) -> InodeRef {
    SynthFile::new(meta(0o444), Box::new(move || Ok(s.clone().into_bytes())))
}

/// The CPU list `0-N` (or `0`) of `n` CPUs.
pub fn cpu_list(n: usize) -> String {
    if n <= 1 {
        "0\n".into()
    } else {
        format!("0-{}\n", n - 1)
    }
}

/// A new `/sys` for `kernel`.
pub fn new(kernel: &Arc<Kernel>) -> InodeRef {
    let n = kernel.cpus.max(1);
    let mut cpu: Vec<(String, InodeRef)> = vec![
        ("online".into(), text(cpu_list(n))),
        ("possible".into(), text(cpu_list(n))),
        ("present".into(), text(cpu_list(n))),
        ("kernel_max".into(), text("8191\n".into())),
    ];
    for i in 0..n {
        cpu.push((format!("cpu{i}"), dir(vec![("online", text("1\n".into()))])));
    }
    let cpu: Vec<(&str, InodeRef)> = cpu.iter().map(|(n, i)| (n.as_str(), i.clone())).collect();
    dir(vec![
        ("devices", dir(vec![("system", dir(vec![("cpu", dir(cpu))]))])),
        ("fs", dir(vec![("cgroup", dir(vec![]))])),
        ("kernel", dir(vec![])),
        ("class", dir(vec![])),
    ])
}
