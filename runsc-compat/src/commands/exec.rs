//! `rvisor exec`: a new process in a running container.
//!
//! `create` binds `ROOT/ID/control.sock` (mode 0600) and hands the
//! listening socket to the sentry, which serves one request per
//! connection:
//!
//! - the client sends a length-prefixed JSON request (`{"process": …}`, the
//!   spec's `process`) with its standard descriptors attached
//!   (`SCM_RIGHTS`: stdin, stdout, stderr; or one host terminal replica
//!   when `process.terminal`);
//! - the sentry answers `pid N` once the program is loaded (or `error …`),
//!   later `exit N` or `signal N`;
//! - the client sends `kill N` for every signal it gets and `winch` when
//!   its terminal was resized. When the connection ends before the
//!   process did, the process is killed.
//!
//! The client is the host process that stands for the exec'd one (the
//! pid file's, as a shim expects of runc): it forwards signals, exits
//! with the process's status or dies by its signal. With `--detach` that
//! is a child of its own (`rvisor exec-proxy`), left to the caller.

use std::io::Write as _;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context as _};
use oci_spec::runtime::Process;
use rvisor_sentry::boot::{Sandbox, Stdio};

use crate::cli::{ExecArgs, ExecProxyArgs, Global};

/// Largest request the sentry reads.
const MAX_REQUEST: usize = 1 << 20;
/// Longest line of the protocol.
const MAX_LINE: usize = 256;
/// Connections served at once.
const MAX_CLIENTS: usize = 256;

/// The control socket of a container directory.
pub fn socket_path(dir: &Path) -> std::path::PathBuf {
    dir.join("control.sock")
}

/// Runs `f` with a short path for the control socket of `dir` (a shim's
/// state directories are longer than a socket address may be): through
/// an open descriptor of the directory.
fn short_path<T>(dir: &Path, f: impl FnOnce(&Path) -> std::io::Result<T>) -> std::io::Result<T> {
    let d = std::fs::File::open(dir)?;
    f(Path::new(&format!("/proc/self/fd/{}/control.sock", d.as_raw_fd())))
}

/// Binds and listens on the control socket of `dir` (mode 0600).
pub fn listen(dir: &Path) -> std::io::Result<OwnedFd> {
    use std::os::unix::fs::PermissionsExt;
    let l = short_path(dir, |p| std::os::unix::net::UnixListener::bind(p))?;
    std::fs::set_permissions(socket_path(dir), std::fs::Permissions::from_mode(0o600))?;
    Ok(l.into())
}

/// Frames a request: its length (u32, little-endian), then the JSON.
pub fn frame(json: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(json.len() + 4);
    v.extend_from_slice(&u32::try_from(json.len()).unwrap_or(u32::MAX).to_le_bytes());
    v.extend_from_slice(json);
    v
}

/// The request's length from the first bytes of a frame, checked.
pub fn frame_len(head: &[u8]) -> Result<Option<usize>, String> {
    let Some(b) = head.get(..4) else { return Ok(None) };
    let n = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
    if n > MAX_REQUEST {
        return Err(format!("request of {n} bytes (at most {MAX_REQUEST})"));
    }
    Ok(Some(n))
}

/// What a line of the protocol says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Line {
    /// The process runs with this pid in the sandbox.
    Pid(i32),
    /// It exited with this code.
    Exit(i32),
    /// It was killed by this signal.
    Signal(i32),
    /// Deliver this signal to it.
    Kill(i32),
    /// The terminal's size changed.
    Winch,
}

impl Line {
    /// Parses one line (without its newline); `None` for anything else.
    pub fn parse(s: &str) -> Option<Line> {
        let (word, rest) = s.split_once(' ').unwrap_or((s, ""));
        let n = || rest.trim().parse::<i32>().ok();
        let sig = || n().filter(|s| (1..=64).contains(s));
        match word {
            "pid" => n().filter(|&p| p > 0).map(Line::Pid),
            "exit" => n().filter(|c| (0..=255).contains(c)).map(Line::Exit),
            "signal" => sig().map(Line::Signal),
            "kill" => sig().map(Line::Kill),
            "winch" if rest.is_empty() => Some(Line::Winch),
            _ => None,
        }
    }

    /// The line, with its newline.
    pub fn render(self) -> String {
        match self {
            Line::Pid(p) => format!("pid {p}\n"),
            Line::Exit(c) => format!("exit {c}\n"),
            Line::Signal(s) => format!("signal {s}\n"),
            Line::Kill(s) => format!("kill {s}\n"),
            Line::Winch => "winch\n".into(),
        }
    }
}

/// Reads newline-terminated lines from a descriptor, one byte of
/// look-ahead at most (nothing after a line is consumed early).
struct Lines<'a>(BorrowedFd<'a>);

impl Lines<'_> {
    /// The next line; `None` at end of file, on an error or on a line
    /// longer than [`MAX_LINE`].
    fn next_line(&mut self) -> Option<String> {
        let mut v = Vec::new();
        let mut b = [0u8; 1];
        loop {
            match rustix::io::read(self.0, &mut b) {
                Ok(0) => return None,
                Ok(_) if b[0] == b'\n' => return String::from_utf8(v).ok(),
                Ok(_) => {
                    v.push(b[0]);
                    if v.len() > MAX_LINE {
                        return None;
                    }
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(_) => return None,
            }
        }
    }
}

fn send_line(fd: BorrowedFd<'_>, s: &str) -> bool {
    let mut done = 0;
    while done < s.len() {
        match rustix::io::write(fd, &s.as_bytes()[done..]) {
            Ok(n) => done += n,
            Err(rustix::io::Errno::INTR) => {}
            Err(_) => return false,
        }
    }
    true
}

// ---- the sentry's side ----

/// The request.
struct Request {
    process: Process,
}

/// Reads a request and the descriptors that came with it.
fn read_request(conn: &OwnedFd) -> Result<(Request, Vec<OwnedFd>), String> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
    let mut data = Vec::new();
    let mut fds = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    loop {
        let want = match frame_len(&data)? {
            Some(n) if data.len() >= n + 4 => break,
            Some(n) => (n + 4 - data.len()).min(buf.len()),
            None => 4 - data.len(),
        };
        let got = if fds.is_empty() {
            let mut anc = RecvAncillaryBuffer::new(&mut space);
            let mut iov = [std::io::IoSliceMut::new(&mut buf[..want])];
            let r = rustix::net::recvmsg(conn, &mut iov, &mut anc, RecvFlags::CMSG_CLOEXEC)
                .map_err(|e| format!("read the request: {e}"))?;
            for m in anc.drain() {
                if let RecvAncillaryMessage::ScmRights(r) = m {
                    fds.extend(r);
                }
            }
            r.bytes
        } else {
            rustix::io::read(conn, &mut buf[..want]).map_err(|e| format!("read the request: {e}"))?
        };
        if got == 0 {
            return Err("the request ended early".into());
        }
        data.extend_from_slice(&buf[..got]);
    }
    let mut v: serde_json::Value =
        serde_json::from_slice(&data[4..]).map_err(|e| format!("the request: {e}"))?;
    let process =
        serde_json::from_value(v["process"].take()).map_err(|e| format!("the request's process: {e}"))?;
    Ok((Request { process }, fds))
}

/// Serves `exec` requests on `listener` (a thread of its own).
pub fn serve(sandbox: Arc<Sandbox>, listener: OwnedFd) -> std::io::Result<()> {
    let clients = Arc::new(AtomicUsize::new(0));
    std::thread::Builder::new().name("control".into()).spawn(move || loop {
        match rustix::net::accept_with(&listener, rustix::net::SocketFlags::CLOEXEC) {
            Ok(conn) => {
                if clients.fetch_add(1, Ordering::AcqRel) >= MAX_CLIENTS {
                    clients.fetch_sub(1, Ordering::AcqRel);
                    continue;
                }
                let (s, c) = (sandbox.clone(), clients.clone());
                let spawned = std::thread::Builder::new().name("exec".into()).spawn(move || {
                    serve_one(&s, &conn);
                    c.fetch_sub(1, Ordering::AcqRel);
                });
                if spawned.is_err() {
                    clients.fetch_sub(1, Ordering::AcqRel);
                }
            }
            Err(rustix::io::Errno::INTR | rustix::io::Errno::AGAIN) => {}
            Err(e) => {
                tracing::warn!("control socket: {e}");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
        }
    })?;
    Ok(())
}

fn serve_one(sb: &Sandbox, conn: &OwnedFd) {
    let fail = |why: &str| {
        let one_line = why.replace('\n', " ");
        let _ = send_line(conn.as_fd(), &format!("error {one_line}\n"));
    };
    let (req, fds) = match read_request(conn) {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    let terminal = req.process.terminal() == Some(true);
    let stdio = match (terminal, <[OwnedFd; 3]>::try_from(fds)) {
        (false, Ok(three)) => Stdio::Host(three),
        (true, Err(mut one)) if one.len() == 1 => {
            let Some(tty) = one.pop() else { return fail("no terminal") };
            match rustix::io::fcntl_dupfd_cloexec(&tty, 3) {
                Ok(out) => Stdio::Terminal(tty, out),
                Err(e) => return fail(&format!("dup: {e}")),
            }
        }
        _ => return fail("expected three standard descriptors, or one terminal"),
    };
    let started = match sb.exec(&req.process, stdio) {
        Ok(s) => s,
        Err(e) => return fail(&e.to_string()),
    };
    let tg = started.tg.clone();
    let console = started.console.map(Arc::new);
    tracing::debug!(pid = tg.tgid, "exec'd");
    if !send_line(conn.as_fd(), &Line::Pid(tg.tgid).render()) {
        tg.send_signal(kill_info(9));
    }
    // The client's signals and resizes, until it goes away (then the
    // process goes too, unless it already ended).
    let (t, c) = (tg.clone(), console.clone());
    let reader = conn.try_clone().ok().and_then(|r| {
        std::thread::Builder::new()
            .name("exec-in".into())
            .spawn(move || {
                let mut lines = Lines(r.as_fd());
                while let Some(l) = lines.next_line() {
                    match Line::parse(&l) {
                        Some(Line::Kill(s)) => t.send_signal(kill_info(s)),
                        Some(Line::Winch) => {
                            if let Some(c) = &c {
                                c.resize();
                            }
                        }
                        _ => break,
                    }
                }
                if t.zombie_status().is_none() {
                    t.send_signal(kill_info(9));
                }
            })
            .ok()
    });
    if reader.is_none() {
        tg.send_signal(kill_info(9));
    }
    let status = loop {
        if let Some(s) = tg.wait_exit(std::time::Duration::from_secs(3600)) {
            break s;
        }
    };
    if let Some(c) = &console {
        c.flush(std::time::Duration::from_secs(2));
    }
    let line = match status {
        rvisor_sentry::kernel::ExitStatus::Code(c) => Line::Exit(i32::from(c)),
        rvisor_sentry::kernel::ExitStatus::Signal { sig, .. } => Line::Signal(sig),
    };
    let _ = send_line(conn.as_fd(), &line.render());
}

fn kill_info(sig: i32) -> rvisor_sentry::kernel::signal::Siginfo {
    use rvisor_sentry::kernel::signal::{code, Siginfo};
    Siginfo::user(sig, code::SI_USER, 0, 0)
}

// ---- the host's side ----

/// The process `exec` runs: the file's, or the container's own with the
/// command line's changes.
fn process_of(dir: &Path, a: &ExecArgs) -> anyhow::Result<Process> {
    if let Some(f) = &a.process {
        let text = std::fs::read(f).with_context(|| format!("{}", f.display()))?;
        return serde_json::from_slice(&text).with_context(|| format!("{}", f.display()));
    }
    if a.command.is_empty() {
        bail!("exec args cannot be empty");
    }
    let spec =
        oci_spec::runtime::Spec::load(dir.join("config.json")).context("the container's config.json")?;
    let mut p = spec.process().clone().unwrap_or_default();
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    let mut env = p.env().clone().unwrap_or_default();
    for e in &a.env {
        let key = e.split_once('=').map_or(e.as_str(), |(k, _)| k);
        env.retain(|x| x.split_once('=').map_or(x.as_str(), |(k, _)| k) != key);
        env.push(e.clone());
    }
    p.set_env(Some(env));
    if let Some(c) = &a.cwd {
        p.set_cwd(c.into());
    }
    let mut user = p.user().clone();
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        user.set_uid(uid.parse().with_context(|| format!("--user {u}"))?);
        user.set_gid(gid.parse().with_context(|| format!("--user {u}"))?);
    }
    if !a.additional_gids.is_empty() {
        user.set_additional_gids(Some(a.additional_gids.clone()));
    }
    p.set_user(user);
    if !a.caps.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        let add = |set: &Option<oci_spec::runtime::Capabilities>| -> anyhow::Result<oci_spec::runtime::Capabilities> {
            let mut s = set.clone().unwrap_or_default();
            for c in &a.caps {
                let name = if c.starts_with("CAP_") { c.clone() } else { format!("CAP_{}", c.to_uppercase()) };
                s.insert(serde_json::from_value(serde_json::Value::String(name)).with_context(|| format!("--cap {c}"))?);
            }
            Ok(s)
        };
        caps.set_bounding(Some(add(caps.bounding())?));
        caps.set_effective(Some(add(caps.effective())?));
        caps.set_permitted(Some(add(caps.permitted())?));
        p.set_capabilities(Some(caps));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    Ok(p)
}

/// Sends the request with its descriptors.
fn send_request(conn: &UnixStream, p: &Process, fds: &[BorrowedFd<'_>]) -> anyhow::Result<()> {
    let body = frame(&serde_json::to_vec(&serde_json::json!({ "process": p }))?);
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(3))];
    let mut anc = rustix::net::SendAncillaryBuffer::new(&mut space);
    anc.push(rustix::net::SendAncillaryMessage::ScmRights(fds));
    let n = rustix::net::sendmsg(
        conn,
        &[std::io::IoSlice::new(&body)],
        &mut anc,
        rustix::net::SendFlags::empty(),
    )
    .context("send the request")?;
    (&*conn).write_all(&body[n..]).context("send the request")?;
    Ok(())
}

/// `rvisor exec`.
pub fn exec(g: &Global, a: &ExecArgs) -> anyhow::Result<i32> {
    let (dir, saved) = super::oci::load(g, &a.id)?;
    match saved.status() {
        "stopped" => bail!("cannot exec in a stopped container"),
        "paused" if !a.ignore_paused => bail!("cannot exec in a paused container"),
        _ => {}
    }
    let process = process_of(&dir, a)?;
    if process.args().as_ref().is_none_or(Vec::is_empty) {
        bail!("args must not be empty");
    }
    let terminal = process.terminal() == Some(true);
    if terminal && a.console_socket.is_none() {
        bail!("cannot allocate tty if runc will detach without setting console socket");
    }
    if !terminal && a.console_socket.is_some() {
        bail!("cannot use console socket if runc will not detach or allocate tty");
    }
    let replica = match &a.console_socket {
        Some(sock) => Some(super::oci::host_console(sock, process.console_size())?),
        None => None,
    };
    let conn = short_path(&dir, |p| UnixStream::connect(p)).context("the container's control socket")?;
    match &replica {
        Some(r) => send_request(&conn, &process, &[r.as_fd()])?,
        None => {
            let io = [rustix::stdio::stdin(), rustix::stdio::stdout(), rustix::stdio::stderr()];
            send_request(&conn, &process, &io)?;
        }
    }
    let mut lines = Lines(conn.as_fd());
    let first = lines.next_line().unwrap_or_default();
    match Line::parse(&first) {
        Some(Line::Pid(_)) => {}
        _ => {
            let why = first.strip_prefix("error ").unwrap_or("the sentry did not start the process");
            bail!("exec failed: unable to start container process: {why}");
        }
    }
    let conn_fd: OwnedFd = conn.into();
    if a.detach {
        // A process of its own stands for the exec'd one; the caller (a
        // shim, a subreaper) reaps it.
        let clear = |f: &OwnedFd| {
            nix::fcntl::fcntl(f, nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty())).map(|_| ())
        };
        clear(&conn_fd)?;
        let mut cmd = std::process::Command::new(std::env::current_exe().context("current_exe")?);
        cmd.arg("exec-proxy").arg(format!("--conn-fd={}", conn_fd.as_raw_fd()));
        if let Some(r) = &replica {
            clear(r)?;
            cmd.arg(format!("--tty-fd={}", r.as_raw_fd()));
        }
        let null = || std::fs::OpenOptions::new().read(true).write(true).open("/dev/null");
        cmd.stdin(null()?).stdout(null()?).stderr(null()?);
        let child = cmd.spawn().context("start the exec proxy")?;
        let pid = child.id();
        std::mem::forget(child);
        if let Some(p) = &a.pid_file {
            super::oci::write_pid_file(p, pid)?;
        }
        return Ok(0);
    }
    if let Some(p) = &a.pid_file {
        super::oci::write_pid_file(p, std::process::id())?;
    }
    run_proxy(conn_fd, replica)
}

/// `rvisor exec-proxy`.
pub fn proxy(a: &ExecProxyArgs) -> anyhow::Result<i32> {
    let conn = super::adopt_fd(a.conn_fd)?;
    let tty = a.tty_fd.map(super::adopt_fd).transpose()?;
    run_proxy(conn, tty)
}

/// Stands for the exec'd process: forwards signals, exits as it did.
fn run_proxy(conn: OwnedFd, tty: Option<OwnedFd>) -> anyhow::Result<i32> {
    use nix::sys::signal::{SigSet, Signal};
    // Every signal but the ones that cannot be caught and SIGCHLD.
    let mut set = SigSet::all();
    for s in [Signal::SIGKILL, Signal::SIGSTOP, Signal::SIGCHLD] {
        set.remove(s);
    }
    set.thread_block()?;
    let sigfd = nix::sys::signalfd::SignalFd::new(&set)?;
    if let Some(t) = &tty {
        // The terminal's session leader, so that resizes arrive (SIGWINCH).
        if rustix::process::setsid().is_ok() {
            let _ = rustix::process::ioctl_tiocsctty(t);
        }
    }
    let reader = conn.try_clone()?;
    let waiter = std::thread::spawn(move || {
        let mut lines = Lines(reader.as_fd());
        loop {
            match lines.next_line().as_deref().and_then(Line::parse) {
                Some(Line::Exit(c)) => return Some(Line::Exit(c)),
                Some(Line::Signal(s)) => return Some(Line::Signal(s)),
                Some(_) => {}
                None => return None,
            }
        }
    });
    let sender = std::thread::spawn(move || {
        while let Ok(Some(info)) = sigfd.read_signal() {
            let sig = i32::try_from(info.ssi_signo).unwrap_or(0);
            let line = if sig == Signal::SIGWINCH as i32 { Line::Winch } else { Line::Kill(sig) };
            if !send_line(conn.as_fd(), &line.render()) {
                break;
            }
        }
    });
    drop(sender);
    match waiter.join().ok().flatten() {
        Some(Line::Exit(c)) => Ok(c),
        Some(Line::Signal(s)) => {
            super::boot::exit_with(rvisor_sentry::kernel::ExitStatus::Signal { sig: s, core: false })
        }
        _ => Ok(255),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip_and_reject_junk() {
        for l in [Line::Pid(7), Line::Exit(0), Line::Exit(255), Line::Signal(9), Line::Kill(15), Line::Winch]
        {
            let s = l.render();
            assert_eq!(Line::parse(s.trim_end_matches('\n')), Some(l));
        }
        for bad in [
            "", "pid", "pid -1", "pid 0", "exit 256", "exit -1", "kill 0", "kill 65", "signal x", "winch 1",
            "nope 1",
        ] {
            assert_eq!(Line::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn frames_carry_their_length_and_are_bounded() {
        let f = frame(b"{}");
        assert_eq!(frame_len(&f), Ok(Some(2)));
        assert_eq!(frame_len(&f[..3]), Ok(None));
        let big = u32::try_from(MAX_REQUEST + 1).unwrap_or(u32::MAX).to_le_bytes();
        assert!(frame_len(&big).is_err());
    }
}
