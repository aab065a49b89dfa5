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
    Ptrace,
    /// The same stub processes, application threads untraced: system
    /// calls trap through seccomp's SIGSYS and shared memory (the default;
    /// ptrace where the host lacks FSGSBASE).
    #[default]
    Systrap,
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
    /// Accepted for runc compatibility (rvisor needs no root inside).
    #[arg(long, global = true, num_args = 0..=1, default_missing_value = "true")]
    pub rootless: Option<String>,
    /// Platform running application code (default: `$RVISOR_PLATFORM`, else
    /// systrap).
    #[arg(long, global = true, value_enum, env = "RVISOR_PLATFORM", default_value_t = PlatformKind::Systrap)]
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
    /// Root file system overlay: memory or none (default: memory for
    /// `do`, none for containers, whose root is written through the gofer).
    #[arg(long, global = true)]
    pub overlay: Option<String>,
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
    /// Create a container from a bundle; its program waits for `start`.
    Create(CreateArgs),
    /// Start a created container.
    Start(IdArgs),
    /// Create and start a container (and wait for it unless --detach).
    Run(RunArgs),
    /// Print a container's state (OCI state JSON).
    State(IdArgs),
    /// Send a signal to a container's init.
    Kill(KillArgs),
    /// Delete a container.
    Delete(DeleteArgs),
    /// List containers.
    List(ListArgs),
    /// Write a starting config.json.
    Spec(SpecArgs),
    /// Print the OCI features document.
    Features,
    /// Freeze a container.
    Pause(IdArgs),
    /// Thaw a paused container.
    Resume(IdArgs),
    /// List a container's host processes.
    Ps(PsArgs),
    /// Print a container's resource usage.
    Events(EventsArgs),
    /// Change a container's resource limits.
    Update(UpdateArgs),
    /// Run a new process in a running container.
    Exec(ExecArgs),
    /// Internal: the host process standing for an exec'd process.
    #[command(hide = true)]
    ExecProxy(ExecProxyArgs),
}

/// `rvisor exec`.
#[derive(Clone, Debug, Args)]
pub struct ExecArgs {
    /// A process JSON file (the spec's `process`), instead of a command.
    #[arg(long, short = 'p')]
    pub process: Option<PathBuf>,
    /// Unix socket to send the terminal's master to.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Return once started; a host process stands for it (the pid file's).
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// Write the pid of the process standing for the exec'd one here.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Allocate a terminal.
    #[arg(long, short = 't')]
    pub tty: bool,
    /// Working directory.
    #[arg(long)]
    pub cwd: Option<String>,
    /// Set an environment variable (repeatable).
    #[arg(long, short = 'e')]
    pub env: Vec<String>,
    /// UID[:GID].
    #[arg(long, short = 'u')]
    pub user: Option<String>,
    /// More groups (repeatable).
    #[arg(long = "additional-gids", short = 'g')]
    pub additional_gids: Vec<u32>,
    /// A capability to add (repeatable).
    #[arg(long = "cap", short = 'c')]
    pub caps: Vec<String>,
    /// Set no_new_privs.
    #[arg(long = "no-new-privs")]
    pub no_new_privs: bool,
    /// Accepted for runc compatibility.
    #[arg(long = "process-label")]
    pub process_label: Option<String>,
    /// Accepted for runc compatibility.
    #[arg(long)]
    pub apparmor: Option<String>,
    /// Accepted for runc compatibility (0 only).
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// Accepted for runc compatibility.
    #[arg(long)]
    pub cgroup: Option<String>,
    /// Accepted for runc compatibility.
    #[arg(long = "ignore-paused")]
    pub ignore_paused: bool,
    /// The container.
    pub id: String,
    /// The command and its arguments (without --process).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `rvisor exec-proxy` (internal).
#[derive(Clone, Debug, Args)]
pub struct ExecProxyArgs {
    /// The connection to the sentry.
    #[arg(long = "conn-fd")]
    pub conn_fd: i32,
    /// The terminal's replica, when the process has one (window sizes).
    #[arg(long = "tty-fd")]
    pub tty_fd: Option<i32>,
}

/// `rvisor ps`.
#[derive(Clone, Debug, Args)]
pub struct PsArgs {
    /// table or json.
    #[arg(long, short = 'f', default_value = "table")]
    pub format: String,
    /// The container.
    pub id: String,
    /// `ps` options (accepted; the table is `ps -ef`'s).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

/// `rvisor events`.
#[derive(Clone, Debug, Args)]
pub struct EventsArgs {
    /// Print the stats once.
    #[arg(long)]
    pub stats: bool,
    /// How often to print them.
    #[arg(long, default_value = "5s")]
    pub interval: String,
    /// The container.
    pub id: String,
}

/// `rvisor update`.
#[derive(Clone, Debug, Args)]
pub struct UpdateArgs {
    /// A LinuxResources JSON file, or - for standard input.
    #[arg(long, short = 'r')]
    pub resources: Option<String>,
    /// Memory limit in bytes.
    #[arg(long)]
    pub memory: Option<i64>,
    /// Most tasks.
    #[arg(long = "pids-limit")]
    pub pids_limit: Option<i64>,
    /// CPU quota per period (µs).
    #[arg(long = "cpu-quota")]
    pub cpu_quota: Option<i64>,
    /// CPU period (µs).
    #[arg(long = "cpu-period")]
    pub cpu_period: Option<u64>,
    /// CPU shares.
    #[arg(long = "cpu-share")]
    pub cpu_shares: Option<u64>,
    /// The container.
    pub id: String,
}

/// A container id.
#[derive(Clone, Debug, Args)]
pub struct IdArgs {
    /// The container.
    pub id: String,
}

/// `rvisor create`.
#[derive(Clone, Debug, Args)]
pub struct CreateArgs {
    /// The bundle (holds config.json).
    #[arg(long, short = 'b', default_value = ".")]
    pub bundle: PathBuf,
    /// Write the container's pid here.
    #[arg(long = "pid-file")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket to send the console's master to.
    #[arg(long = "console-socket")]
    pub console_socket: Option<PathBuf>,
    /// Accepted for runc compatibility (the sentry never pivots the host).
    #[arg(long = "no-pivot")]
    pub no_pivot: bool,
    /// Accepted for runc compatibility.
    #[arg(long = "no-new-keyring")]
    pub no_new_keyring: bool,
    /// Descriptors 3, 4, … (this many) to pass to the container's init.
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// The container.
    pub id: String,
}

/// `rvisor run`.
#[derive(Clone, Debug, Args)]
pub struct RunArgs {
    /// Return once started.
    #[arg(long, short = 'd')]
    pub detach: bool,
    /// What `create` takes.
    #[command(flatten)]
    pub create: CreateArgs,
}

/// `rvisor kill`.
#[derive(Clone, Debug, Args)]
pub struct KillArgs {
    /// Signal every process of the container (the init alone so far:
    /// the others end with the sandbox when it is SIGKILL).
    #[arg(long, short = 'a')]
    pub all: bool,
    /// The container.
    pub id: String,
    /// The signal, by name or number (default SIGTERM).
    pub signal: Option<String>,
}

/// `rvisor delete`.
#[derive(Clone, Debug, Args)]
pub struct DeleteArgs {
    /// Kill a running container first.
    #[arg(long, short = 'f')]
    pub force: bool,
    /// The container.
    pub id: String,
}

/// `rvisor list`.
#[derive(Clone, Debug, Args)]
pub struct ListArgs {
    /// table or json.
    #[arg(long, short = 'f', default_value = "table")]
    pub format: String,
    /// Ids only.
    #[arg(long, short = 'q')]
    pub quiet: bool,
}

/// `rvisor spec`.
#[derive(Clone, Debug, Args)]
pub struct SpecArgs {
    /// Where to write config.json.
    #[arg(long, short = 'b', default_value = ".")]
    pub bundle: PathBuf,
}

impl Command {
    /// The verb as typed.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Do(_) => "do",
            Command::Boot(_) => "boot",
            Command::Gofer(_) => "gofer",
            Command::Create(_) => "create",
            Command::Start(_) => "start",
            Command::Run(_) => "run",
            Command::State(_) => "state",
            Command::Kill(_) => "kill",
            Command::Delete(_) => "delete",
            Command::List(_) => "list",
            Command::Spec(_) => "spec",
            Command::Features => "features",
            Command::Pause(_) => "pause",
            Command::Resume(_) => "resume",
            Command::Ps(_) => "ps",
            Command::Events(_) => "events",
            Command::Update(_) => "update",
            Command::Exec(_) => "exec",
            Command::ExecProxy(_) => "exec-proxy",
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
    /// Write "ok" here once the program is loaded (or why it is not).
    #[arg(long = "ready-fd")]
    pub ready_fd: Option<i32>,
    /// Hold the program before its first instruction until a byte
    /// arrives on this FIFO (`create` … `start`).
    #[arg(long = "start-fifo")]
    pub start_fifo: Option<PathBuf>,
    /// An OCI container (not `do`): every catchable signal is forwarded
    /// to its init.
    #[arg(long)]
    pub container: bool,
    /// Standard input is a host terminal for the container's console:
    /// make a session with it as the controlling terminal.
    #[arg(long)]
    pub console: bool,
    /// Descriptors 3, 4, … (this many) go to the container's init as its
    /// own 3, 4, ….
    #[arg(long = "preserve-fds", default_value_t = 0)]
    pub preserve_fds: u32,
    /// A listening Unix socket for `exec` requests.
    #[arg(long = "control-fd")]
    pub control_fd: Option<i32>,
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

#[cfg(test)]
mod tests {
    #[test]
    fn verify_cli() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
