//! `rvisor`: an OCI runtime that runs containers on the sentry, a
//! user-space Linux kernel. This binary is thin: argument parsing and one
//! short function per verb, over the `rvisor` library.
#![deny(unsafe_code)]

use clap::Parser;

fn main() {
    // Before any thread exists: glibc would otherwise open a /sys file to
    // size its arenas the first time threads contend, which the sentry's
    // seccomp filter forbids.
    rvisor_platform::limit_malloc_arenas(4);
    let cli = rvisor::cli::Cli::parse();
    let code = rvisor::run(cli);
    std::process::exit(code);
}
