//! Builds the vDSO image the sentry maps into every address space
//! (`vdso/vdso.c`, see `src/kernel/vdso.rs`) with the C compiler that
//! links Rust programs here (`$CC`, else `cc`).

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let so = out.join("vdso.so");
    for f in ["vdso/vdso.c", "vdso/vdso.lds"] {
        println!("cargo:rerun-if-changed={f}");
    }
    println!("cargo:rerun-if-env-changed=CC");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args([
            "-shared",
            "-nostdlib",
            "-fPIC",
            "-O2",
            "-fno-stack-protector",
            "-fcf-protection=none",
            "-fno-jump-tables",
            "-mno-red-zone",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-Wl,-T,vdso/vdso.lds",
            "-Wl,--hash-style=both",
            "-Wl,-soname=linux-vdso.so.1",
            "-Wl,--eh-frame-hdr",
            "-Wl,-Bsymbolic",
            "-Wl,--no-undefined",
            "-Wl,-z,max-page-size=4096",
            "-Wl,--build-id=none",
            "-o",
        ])
        .arg(&so)
        .arg("vdso/vdso.c")
        .status()
        .unwrap_or_else(|e| panic!("run {cc} to build the vDSO: {e}"));
    assert!(status.success(), "{cc} failed to build the vDSO");
}
