//! The `rvisor` command line: runc-compatible global flags plus runsc-style
//! ones, and one module per verb under [`commands`].
#![deny(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod logging;

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: cli::Cli) -> i32 {
    let role = match &cli.command {
        cli::Command::Boot(_) => "boot",
        cli::Command::Gofer(_) => "gofer",
        _ => "cli",
    };
    logging::init(&cli.global, role);
    let r = match &cli.command {
        cli::Command::Do(args) => commands::do_cmd::run(&cli.global, args),
        cli::Command::Boot(args) => commands::boot::run(&cli.global, args),
        cli::Command::Gofer(args) => commands::gofer::run(&cli.global, args),
        other => Err(anyhow::anyhow!("{}: not implemented yet", other.name())),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("rvisor: {e:#}");
            1
        }
    }
}
