//! Helpers shared by rvisor's integration tests: finding the `rvisor`
//! binary, building the C test programs, running a program natively and
//! under `rvisor do`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `rvisor` binary under test: `$RVISOR`, or the one cargo built next
/// to this test binary (`cargo build -p rvisor` first).
pub fn rvisor_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RVISOR") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<triple>/<profile>/deps/<test> -> target/<triple>/<profile>/rvisor
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let p = dir.join("rvisor");
    assert!(p.exists(), "{} is missing: run `cargo build -p rvisor` first (or set RVISOR)", p.display());
    p
}

/// The platform the tests run rvisor on: `$RVISOR_PLATFORM` (ptrace or
/// systrap), or rvisor's default.
pub fn platform_args() -> Vec<String> {
    std::env::var("RVISOR_PLATFORM")
        .ok()
        .filter(|p| !p.is_empty())
        .map(|p| format!("--platform={p}"))
        .into_iter()
        .collect()
}

/// A command running [`rvisor_bin`] on the platform under test
/// ([`platform_args`]).
pub fn rvisor_command() -> Command {
    let mut c = Command::new(rvisor_bin());
    c.args(platform_args());
    c
}

/// Where test programs are built.
pub fn build_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let d = exe.parent().and_then(Path::parent).expect("target dir").join("compat-programs");
    std::fs::create_dir_all(&d).expect("create build dir");
    d
}

/// The C library a test program is linked with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Libc {
    /// glibc, static.
    Glibc,
    /// glibc, static position-independent executable (`-static-pie`).
    GlibcPie,
    /// glibc, dynamically linked (`ld.so` and `libc.so.6` from the root).
    GlibcDynamic,
    /// musl, static (musl-gcc).
    Musl,
}

impl Libc {
    /// Short name.
    pub fn name(self) -> &'static str {
        match self {
            Libc::Glibc => "glibc",
            Libc::GlibcPie => "glibc-pie",
            Libc::GlibcDynamic => "glibc-dyn",
            Libc::Musl => "musl",
        }
    }

    fn compiler(self) -> &'static str {
        match self {
            Libc::Glibc | Libc::GlibcPie | Libc::GlibcDynamic => "gcc",
            Libc::Musl => "musl-gcc",
        }
    }

    fn link_flag(self) -> &'static str {
        match self {
            Libc::GlibcPie => "-static-pie",
            Libc::GlibcDynamic => "-pie",
            _ => "-static",
        }
    }

    /// Whether the compiler is installed.
    pub fn available(self) -> bool {
        Command::new(self.compiler())
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

/// Source directory of the compatibility programs.
pub fn compat_src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("compat")
}

/// Source directory of other test programs.
pub fn programs_src() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("programs")
}

/// Builds `tests/programs/<name>.c` statically with glibc.
pub fn build_program(name: &str) -> PathBuf {
    build_from(&programs_src(), name, Libc::Glibc)
}

/// Builds `tests/compat/<name>.c` statically with `libc`; returns the binary.
pub fn build_c(name: &str, libc: Libc) -> PathBuf {
    build_from(&compat_src(), name, libc)
}

fn build_from(dir: &Path, name: &str, libc: Libc) -> PathBuf {
    static BUILDING: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = BUILDING.lock().unwrap_or_else(|p| p.into_inner());
    let src = dir.join(format!("{name}.c"));
    let out = build_dir().join(format!("{name}-{}", libc.name()));
    let fresh = out.metadata().and_then(|m| m.modified()).ok().is_some_and(|built| {
        [src.clone(), compat_src().join("compat.h")]
            .iter()
            .all(|s| s.metadata().and_then(|m| m.modified()).is_ok_and(|m| m <= built))
    });
    if !fresh {
        let tmp = out.with_extension(format!("tmp{}", std::process::id()));
        let st = Command::new(libc.compiler())
            .args([libc.link_flag(), "-O1", "-Wall", "-Wno-unused-result", "-fno-stack-protector", "-o"])
            .arg(&tmp)
            .arg(&src)
            .status()
            .expect("run the C compiler");
        assert!(st.success(), "building {} with {} failed", src.display(), libc.name());
        std::fs::rename(&tmp, &out).expect("rename built program");
    }
    out
}

/// How a run ended, normalised as a shell reports it: the exit code, or
/// 128 + N for death by signal N.
pub fn shell_code(o: &Output) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    o.status.code().unwrap_or_else(|| 128 + o.status.signal().unwrap_or(0))
}

/// The fixed environment every test program gets (natively and in the
/// sandbox, which inherits the caller's environment).
pub fn test_env(cmd: &mut Command) -> &mut Command {
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", "/root")
        .env("LANG", "C")
        .env("COMPAT_A", "1")
        .env("COMPAT_B", "two words")
}

/// How long one run of a test program may take before it counts as hung.
pub const RUN_LIMIT: std::time::Duration = std::time::Duration::from_secs(120);

/// `cmd.output()`, but in a process group of its own (a program that
/// signals its own group, natively, does not reach the test runner) and
/// killed with its group after `limit` (a hang fails the test instead of
/// stalling the run; stderr then says so).
pub fn output_within(cmd: &mut Command, limit: std::time::Duration) -> Output {
    use std::io::Read;
    use std::os::unix::process::CommandExt;
    let mut child = cmd
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(child.stdout.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let err = drain(child.stderr.take().map(|r| Box::new(r) as Box<dyn Read + Send>));
    let start = std::time::Instant::now();
    let mut timed_out = false;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for child") {
            break st;
        }
        if start.elapsed() > limit && !timed_out {
            timed_out = true;
            let pgid = libc::pid_t::try_from(child.id()).expect("pid fits");
            // SAFETY: kill(2) on the process group this function created.
            unsafe { libc::kill(-pgid, libc::SIGKILL) };
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    if timed_out {
        // Whatever the group left behind holding the pipes is gone too.
        let pgid = libc::pid_t::try_from(child.id()).expect("pid fits");
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
    let stdout = out.join().expect("stdout reader");
    let mut stderr = err.join().expect("stderr reader");
    if timed_out {
        stderr.extend_from_slice(format!("(killed: still running after {limit:?})\n").as_bytes());
    }
    Output { status, stdout, stderr }
}

/// Runs `prog args` natively.
pub fn run_native(prog: &Path, args: &[String]) -> Output {
    let mut c = Command::new(prog);
    test_env(&mut c).args(args).stdin(Stdio::null());
    output_within(&mut c, RUN_LIMIT)
}

/// Runs `prog args` natively as pid 1 of a throwaway pid and UTS namespace
/// whose hostname is `hostname` (the host is not changed).
pub fn run_native_namespaced(prog: &Path, args: &[String], hostname: &str) -> Output {
    let mut c = Command::new("unshare");
    test_env(&mut c)
        .args([
            "--pid",
            "--fork",
            "--uts",
            "--kill-child",
            "--",
            "/bin/sh",
            "-c",
            "hostname \"$0\" && exec \"$@\"",
        ])
        .arg(hostname)
        .arg(prog)
        .args(args)
        .stdin(Stdio::null());
    output_within(&mut c, RUN_LIMIT)
}

/// A command that runs `argv` natively the way `rvisor do` serves files,
/// and so that it cannot change the host: in a throwaway mount namespace
/// whose root (and each of `read_only`) is read-only, with each of
/// `writable` bind-mounted read-write at its own path (the working directory
/// is entered again after the mounts, so that it is the new mount's).
pub fn native_confined(writable: &[&Path], read_only: &[&Path], argv: &[&std::ffi::OsStr]) -> Command {
    const SCRIPT: &str = r#"set -e
w=$1; r=$2; shift 2
i=0; while [ $i -lt "$w" ]; do mount --bind "$1" "$1"; shift; i=$((i+1)); done
i=0; while [ $i -lt "$r" ]; do mount --bind "$1" "$1"; mount -o remount,bind,ro "$1"; shift; i=$((i+1)); done
mount -o remount,bind,ro /
cd "$(pwd -P)"
exec "$@""#;
    let mut c = Command::new("unshare");
    test_env(&mut c)
        .args(["--mount", "--propagation", "private", "--", "/bin/sh", "-c", SCRIPT, "sh"])
        .arg(writable.len().to_string())
        .arg(read_only.len().to_string())
        .args(writable)
        .args(read_only)
        .args(argv)
        .stdin(Stdio::null());
    c
}

/// Runs `prog args` under `rvisor [flags] do -- prog args`.
pub fn run_rvisor(prog: &Path, args: &[String], flags: &[&str]) -> Output {
    let mut c = rvisor_command();
    test_env(&mut c).args(flags).arg("do").arg("--").arg(prog).args(args).stdin(Stdio::null());
    output_within(&mut c, RUN_LIMIT)
}

/// Whether this process runs as root (namespaced native runs need it).
pub fn is_root() -> bool {
    rustix_free_geteuid() == 0
}

fn rustix_free_geteuid() -> u32 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(u32::MAX)
}

/// The user's side of a host pseudo-terminal with a program behind it (in
/// a session of its own, the terminal its controlling one).
pub struct Terminal {
    master: std::fs::File,
    /// The program.
    pub child: std::process::Child,
    seen: Vec<u8>,
    /// Where the next `expect` starts looking.
    mark: usize,
}

fn check(r: libc::c_int, what: &str) -> libc::c_int {
    assert!(r >= 0, "{what}: {}", std::io::Error::last_os_error());
    r
}

impl Terminal {
    /// Starts `cmd` on a new terminal of `rows` × `cols`.
    pub fn spawn(cmd: &mut Command, rows: u16, cols: u16) -> Terminal {
        use std::os::fd::FromRawFd;
        // SAFETY: posix_openpt returns a new descriptor (checked) that the
        // File below owns.
        let m = check(unsafe { libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC) }, "ptmx");
        // SAFETY: as above.
        let master = unsafe { std::fs::File::from_raw_fd(m) };
        // SAFETY: grantpt/unlockpt on the master just opened.
        check(unsafe { libc::grantpt(m) }, "grantpt");
        // SAFETY: as above.
        check(unsafe { libc::unlockpt(m) }, "unlockpt");
        let mut name = [0 as libc::c_char; 64];
        // SAFETY: ptsname_r writes at most `name.len()` bytes.
        check(unsafe { libc::ptsname_r(m, name.as_mut_ptr(), name.len()) }, "ptsname");
        // SAFETY: ptsname_r wrote a NUL-terminated string.
        let path = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_string_lossy().into_owned();
        let replica = std::fs::OpenOptions::new().read(true).write(true).open(&path).expect("open replica");
        let t = Terminal { master, child: Self::start(cmd, &replica), seen: Vec::new(), mark: 0 };
        t.resize(rows, cols);
        t
    }

    fn start(cmd: &mut Command, replica: &std::fs::File) -> std::process::Child {
        use std::os::unix::process::CommandExt;
        let io = || std::process::Stdio::from(replica.try_clone().expect("dup replica"));
        cmd.stdin(io()).stdout(io()).stderr(io());
        // SAFETY: only async-signal-safe calls between fork and exec.
        unsafe {
            cmd.pre_exec(|| {
                if libc::setsid() < 0 || libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        cmd.spawn().expect("spawn on the terminal")
    }

    /// Changes the window size.
    pub fn resize(&self, rows: u16, cols: u16) {
        use std::os::fd::AsRawFd;
        let w = libc::winsize { ws_row: rows, ws_col: cols, ws_xpixel: 0, ws_ypixel: 0 };
        // SAFETY: TIOCSWINSZ reads one winsize.
        check(unsafe { libc::ioctl(self.master.as_raw_fd(), libc::TIOCSWINSZ, &w) }, "TIOCSWINSZ");
    }

    /// Types `s`.
    pub fn send(&mut self, s: &str) {
        use std::io::Write;
        self.master.write_all(s.as_bytes()).expect("write to the terminal");
    }

    /// Reads until `want` appears after the mark (then moves the mark past
    /// it) or `limit` passes.
    pub fn expect(&mut self, want: &str, limit: std::time::Duration) -> Result<(), String> {
        use std::io::Read;
        use std::os::fd::AsRawFd;
        let end = std::time::Instant::now() + limit;
        loop {
            if let Some(i) = find(&self.seen[self.mark..], want.as_bytes()) {
                self.mark += i + want.len();
                return Ok(());
            }
            let left = end.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Err(format!(
                    "no {want:?} within {limit:?}; after the mark: {:?}",
                    String::from_utf8_lossy(&self.seen[self.mark..])
                ));
            }
            let mut p = libc::pollfd { fd: self.master.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            let ms = libc::c_int::try_from(left.as_millis().min(100)).unwrap_or(100);
            // SAFETY: one pollfd.
            if unsafe { libc::poll(&mut p, 1, ms) } > 0 {
                let mut buf = [0u8; 4096];
                match self.master.read(&mut buf) {
                    Ok(0) | Err(_) => {
                        return Err(format!(
                            "terminal closed before {want:?}; after the mark: {:?}",
                            String::from_utf8_lossy(&self.seen[self.mark..])
                        ))
                    }
                    Ok(n) => self.seen.extend_from_slice(&buf[..n]),
                }
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
