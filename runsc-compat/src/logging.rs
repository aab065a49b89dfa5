//! Logging: `--debug-log DIR` writes structured (JSON lines) `tracing` logs,
//! one file per process and role; `--debug` logs to standard error;
//! otherwise only errors reach standard error.

use std::fs::OpenOptions;

use tracing_subscriber::EnvFilter;

use crate::cli::Global;

/// Installs the global subscriber for a process playing `role`.
pub fn init(g: &Global, role: &str) {
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
