//! Command-line arguments (clap). Global flags are runc's (`--root`,
//! `--log`, `--log-format`, `--debug`, `--systemd-cgroup`) and runsc's
//! (`--platform`, `--network`, `--strace`, `--debug-log`, `--overlay`); they
//! may come before or after the verb.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// rvisor: runs containers on a user-space Linux kernel.
#[derive(Debug, Parser)]
#[command(name = "rvisor", version, about)]
pub struct Cli {
    /// Flags of every verb.
    #[command(flatten)]
    pub global: Global,
    /// The verb.
    #[command(subcommand)]
    pub command: Command,
}

/// The platform that runs application code.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum)]
pub enum PlatformKind {
    /// Stub processes traced with PTRACE_SYSEMU.
    #[default]
    Ptrace,
}

/// Global flags.
#[derive(Clone, Debug, Args)]
pub struct Global {
    /// Root directory for container state (runc's --root).
    #[arg(long, global = true, default_value = "/run/rvisor")]
    pub root: PathBuf,
    /// Log file (runc's --log).
    #[arg(long, global = true)]
    pub log: Option<PathBuf>,
    /// Log format: text or json.
    #[arg(long = "log-format", global = true, default_value = "text")]
    pub log_format: String,
    /// Debug logging to standard error (or --log).
    #[arg(long, global = true)]
    pub debug: bool,
    /// Accepted for runc compatibility.
    #[arg(long = "systemd-cgroup", global = true)]
    pub systemd_cgroup: bool,
    /// Platform running application code.
    #[arg(long, global = true, value_enum, default_value_t = PlatformKind::Ptrace)]
    pub platform: PlatformKind,
    /// Network: none, sandbox or host (only none exists so far).
    #[arg(long, global = true, default_value = "none")]
    pub network: String,
    /// Print every system call the sandbox makes, with decoded arguments.
    #[arg(long, global = true)]
    pub strace: bool,
    /// Directory for structured debug logs (one file per process).
    #[arg(long = "debug-log", global = true)]
    pub debug_log: Option<PathBuf>,
    /// Root file system overlay: memory or none.
    #[arg(long, global = true, default_value = "memory")]
    pub overlay: String,
    /// Map no vDSO into the sandbox's programs: their clock reads trap
    /// like any other system call (for debugging and measurement).
    #[arg(long = "no-vdso", global = true)]
    pub no_vdso: bool,
}

/// Verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a command in a new sandbox over the host's root file system.
    Do(DoArgs),
    /// Internal: the sentry of a sandbox (started by the other verbs).
    #[command(hide = true)]
    Boot(BootArgs),
    /// Internal: the file server of a sandbox (started by the other verbs).
    #[command(hide = true)]
    Gofer(GoferArgs),
    /// Create a container (not implemented yet).
    Create,
    /// Start a created container (not implemented yet).
    Start,
    /// Create and start a container (not implemented yet).
    Run,
    /// Print a container's state (not implemented yet).
    State,
    /// Signal a container (not implemented yet).
    Kill,
    /// Delete a container (not implemented yet).
    Delete,
}

impl Command {
    /// The verb as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Do(_) => "do",
            Command::Boot(_) => "boot",
            Command::Gofer(_) => "gofer",
            Command::Create => "create",
            Command::Start => "start",
            Command::Run => "run",
            Command::State => "state",
            Command::Kill => "kill",
            Command::Delete => "delete",
        }
    }
}

/// `rvisor do`.
#[derive(Clone, Debug, Args)]
pub struct DoArgs {
    /// Host name inside the sandbox.
    #[arg(long, default_value = "rvisor")]
    pub hostname: String,
    /// Working directory in the sandbox (default: the caller's).
    #[arg(long)]
    pub cwd: Option<String>,
    /// Set an environment variable (KEY=VALUE; repeatable).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Run as this user id (and group id; default: the caller's ids).
    /// A non-zero uid starts with no capabilities, as on Linux.
    #[arg(short = 'u', long = "user", value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Bind a host directory into the sandbox, writable unless `:ro`
    /// (SRC:DST[:ro]; repeatable). Writes to it reach the host.
    #[arg(short = 'v', long = "volume")]
    pub volumes: Vec<String>,
    /// Mount a tmpfs (in the sandbox's memory) on a directory
    /// (DST[:OPTIONS], options as `mount -t tmpfs`: `size=`, `mode=`,
    /// `uid=`, `gid=`, `ro`, `nosuid`, `nodev`, `noexec`; repeatable).
    #[arg(long = "tmpfs", value_name = "DST[:OPTIONS]")]
    pub tmpfs: Vec<String>,
    /// Give the sandbox a terminal (its console, a pseudo-terminal of the
    /// sandbox's own bridged to the caller's terminal, which stays in raw
    /// mode meanwhile). Standard input must be a terminal.
    #[arg(short = 't', long = "tty")]
    pub tty: bool,
    /// The program and its arguments.
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `rvisor boot` (internal).
#[derive(Clone, Debug, Args)]
pub struct BootArgs {
    /// Descriptor holding the OCI spec (JSON).
    #[arg(long = "spec-fd")]
    pub spec_fd: i32,
    /// Descriptors of the channels to the gofer (comma-separated).
    #[arg(long = "gofer-fds")]
    pub gofer_fds: String,
    /// Path the executable was found at.
    #[arg(long = "exe-path")]
    pub exe_path: String,
    /// Container id.
    #[arg(long)]
    pub id: String,
    /// Die with the parent process (`rvisor do`).
    #[arg(long = "parent-death-kill")]
    pub parent_death_kill: bool,
}

/// `rvisor gofer` (internal).
#[derive(Clone, Debug, Args)]
pub struct GoferArgs {
    /// Descriptors of the channels to serve (comma-separated).
    #[arg(long = "channel-fds")]
    pub channel_fds: String,
    /// A tree to serve: HOST_PATH:ro or HOST_PATH:rw; the first is the
    /// root (repeatable).
    #[arg(long = "export", required = true)]
    pub exports: Vec<String>,
}
