//! `rvisor`: an OCI runtime that runs containers on the sentry, a
//! user-space Linux kernel. This binary is thin: argument parsing and one
//! short function per verb, over the `rvisor` library.
#![deny(unsafe_code)]

use clap::Parser;

fn main() {
    let cli = rvisor::cli::Cli::parse();
    let code = rvisor::run(cli);
    std::process::exit(code);
}
