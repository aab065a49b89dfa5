//! Logging: `--debug-log DIR` writes structured (JSON lines) `tracing` logs,
//! one file per process and role; `--debug` logs to standard error;
//! otherwise only errors reach standard error, except for a container's
//! sentry, whose standard error is the application's: its errors go to
//! `--log` (opened now, before the sentry confines itself), or nowhere.

use std::fs::OpenOptions;

use tracing_subscriber::EnvFilter;

use crate::cli::Global;

/// Installs the global subscriber for a process playing `role`
/// (`app_stderr`: its standard error belongs to the application).
pub fn init(g: &Global, role: &str, app_stderr: bool) {
    if let Some(dir) = &g.debug_log {
        let _ = std::fs::create_dir_all(dir);
        let path = dir.join(format!("rvisor.{role}.{}.log", std::process::id()));
        if let Ok(file) = OpenOptions::new().create(true).append(true).open(&path) {
            let _ = tracing_subscriber::fmt()
                .json()
                .with_writer(std::sync::Mutex::new(file))
                .with_env_filter(EnvFilter::new("debug"))
                .with_thread_names(true)
                .try_init();
            return;
        }
    }
    if app_stderr {
        let file = g.log.as_ref().and_then(|p| OpenOptions::new().create(true).append(true).open(p).ok());
        if let Some(file) = file {
            let _ = tracing_subscriber::fmt()
                .json()
                .with_writer(std::sync::Mutex::new(file))
                .with_env_filter(EnvFilter::new(if g.debug { "debug" } else { "error" }))
                .try_init();
        }
        return;
    }
    // The CLI prints its one error itself; the sentry and gofer log theirs.
    let level = if g.debug {
        "debug"
    } else if role == "cli" {
        "off"
    } else {
        "error"
    };
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::new(level))
        .without_time()
        .with_target(false)
        .try_init();
}
