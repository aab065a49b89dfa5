//! `rvisor gofer`: the file server of a sandbox. Confines itself (mount
//! namespace, `pivot_root`, capabilities) before serving anything, then
//! serves each channel on its own thread until the sentry closes them.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;
use rvisor_gofer::setup::{confine, Export};
use rvisor_gofer::Server;

use super::adopt_fds;
use crate::cli::{Global, GoferArgs};

fn parse_export(s: &str) -> anyhow::Result<Export> {
    let (path, mode) = s.rsplit_once(':').context("export must be PATH:ro or PATH:rw")?;
    let read_only = match mode {
        "ro" => true,
        "rw" => false,
        _ => anyhow::bail!("export mode must be ro or rw: {s}"),
    };
    Ok(Export { source: PathBuf::from(path), read_only })
}

/// Runs the gofer; returns its exit code.
pub fn run(_g: &Global, a: &GoferArgs) -> anyhow::Result<i32> {
    let exports = a.exports.iter().map(|e| parse_export(e)).collect::<anyhow::Result<Vec<_>>>()?;
    let channels = adopt_fds(&a.channel_fds)?;
    super::confine::raise_nofile();
    let (points, fd_dir) = confine(&exports).context("confine the gofer")?;
    let server = Arc::new(Server::new(points, fd_dir));
    let threads: Vec<_> = channels
        .into_iter()
        .enumerate()
        .map(|(i, ch)| {
            let s = server.clone();
            std::thread::Builder::new().name(format!("gofer-{i}")).spawn(move || s.serve(ch))
        })
        .collect::<Result<_, _>>()?;
    rvisor_platform::trim_after_startup();
    for t in threads {
        let _ = t.join();
    }
    Ok(0)
}
