//! The `rvisor` command line: runc-compatible global flags plus runsc-style
//! ones, and one module per verb under [`commands`].
#![deny(unsafe_code)]

pub mod cli;
pub mod commands;
pub mod logging;

/// Appends an error to `--log` as runc writes it (the shim reads the last
/// one): JSON lines with `--log-format json`, logfmt otherwise.
fn log_error(g: &cli::Global, msg: &str) {
    use std::io::Write;
    let Some(path) = &g.log else { return };
    let time = commands::oci::now_rfc3339();
    let line = if g.log_format == "json" {
        serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
    } else {
        format!("time={time:?} level=error msg={msg:?}")
    };
    if let Ok(mut f) = std::fs::OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(f, "{line}");
    }
}

/// Runs a parsed command line; returns the process exit code.
pub fn run(cli: cli::Cli) -> i32 {
    let role = match &cli.command {
        cli::Command::Boot(_) => "boot",
        cli::Command::Gofer(_) => "gofer",
        _ => "cli",
    };
    let app_stderr = matches!(&cli.command, cli::Command::Boot(a) if a.container);
    logging::init(&cli.global, role, app_stderr);
    let r = match &cli.command {
        cli::Command::Do(args) => commands::do_cmd::run(&cli.global, args),
        cli::Command::Boot(args) => commands::boot::run(&cli.global, args),
        cli::Command::Gofer(args) => commands::gofer::run(&cli.global, args),
        cli::Command::Create(a) => commands::oci::create(&cli.global, a),
        cli::Command::Start(a) => commands::oci::start(&cli.global, a),
        cli::Command::Run(a) => commands::oci::run(&cli.global, a),
        cli::Command::State(a) => commands::oci::state(&cli.global, a),
        cli::Command::Kill(a) => commands::oci::kill(&cli.global, a),
        cli::Command::Delete(a) => commands::oci::delete(&cli.global, a),
        cli::Command::List(a) => commands::oci::list(&cli.global, a),
        cli::Command::Spec(a) => commands::oci::spec(&cli.global, a),
        cli::Command::Features => commands::oci::features(&cli.global),
        cli::Command::Pause(a) => commands::oci::pause(&cli.global, a),
        cli::Command::Resume(a) => commands::oci::resume(&cli.global, a),
        cli::Command::Ps(a) => commands::oci::ps(&cli.global, a),
        cli::Command::Events(a) => commands::oci::events(&cli.global, a),
        cli::Command::Update(a) => commands::oci::update(&cli.global, a),
        cli::Command::Exec(a) => commands::exec::exec(&cli.global, a),
        cli::Command::ExecProxy(a) => commands::exec::proxy(a),
    };
    match r {
        Ok(code) => code,
        Err(e) => {
            tracing::error!("{e:#}");
            log_error(&cli.global, &format!("{e:#}"));
            eprintln!("rvisor: {e:#}");
            1
        }
    }
}
