//! Program execution: finding and checking the file, `#!` scripts, the ELF
//! interpreter, and a new address space with the program loaded. Used by
//! boot (the container's first process) and by `execve`.

use std::sync::Arc;

use rvisor_syscalls::Errno;

use super::creds::Credentials;
use super::Kernel;
use crate::loader::elf::{ElfFile, ExecFile, ExecSource};
use crate::loader::{self, LoadArgs, Loaded};
use crate::mm::vma::MappedFile;
use crate::mm::MemoryManager;
use crate::vfs::file::oflags::O_RDONLY;
use crate::vfs::perm::{self, MAY_EXEC};
use crate::vfs::walk::Walker;
use crate::vfs::{mflags, path_string, MountNamespace, Path};

/// `BINPRM_BUF_SIZE`: how much of a file decides its format.
const BINPRM_BUF: usize = 256;
/// Most `#!` scripts in a chain (Linux's `exec_binprm` gives up past a
/// depth of 5: five scripts and the program that finally runs).
const MAX_SCRIPT_DEPTH: usize = 5;

/// Where and as whom to look a program up.
pub struct ExecContext<'a> {
    /// The mount namespace.
    pub ns: &'a MountNamespace,
    /// The process's root.
    pub root: Path,
    /// Where the program's path starts when relative (the working
    /// directory or an `execveat` dirfd).
    pub start: Path,
    /// The working directory (`#!` interpreters and `PT_INTERP` are looked
    /// up from it, as Linux's `open_exec` does).
    pub cwd: Path,
    /// The caller's credentials.
    pub creds: &'a Credentials,
}

/// A program ready to run: its address space and where to start.
pub struct Image {
    /// The new address space.
    pub mm: Arc<MemoryManager>,
    /// Entry point, stack pointer, argument area.
    pub loaded: Loaded,
    /// The ELF file that runs (the interpreter of a script).
    pub exe: Path,
    /// `comm`: the last component of the path executed.
    pub comm: Vec<u8>,
}

/// Opens `path` for execution, with Linux's checks: a regular file
/// (`EACCES`), on a mount that allows execution (`EACCES`), that the
/// caller may execute (`EACCES`).
fn open_exec(
    cx: &ExecContext<'_>,
    start: Path,
    path: &[u8],
    follow: bool,
) -> Result<(Path, ExecFile), Errno> {
    let w = Walker { ns: cx.ns, root: cx.root.clone(), creds: cx.creds, no_symlinks: false, beneath: None };
    let p = w.walk(start, path, follow)?;
    open_exec_path(cx, p)
}

/// [`open_exec`] of a place already found (`execveat` with `AT_EMPTY_PATH`).
pub fn open_exec_path(cx: &ExecContext<'_>, p: Path) -> Result<(Path, ExecFile), Errno> {
    let a = p.attr()?;
    if !a.is_reg() || p.mount.flags & mflags::NOEXEC != 0 {
        return Err(Errno::EACCES);
    }
    perm::check(&a, cx.creds, MAY_EXEC)?;
    let deny = crate::vfs::textbusy::deny_write((a.dev, a.ino)).ok_or(Errno::ETXTBSY)?;
    let ops = p.inode().open(O_RDONLY)?;
    let mapped = ops.mappable().map(|fd| {
        Arc::new(MappedFile {
            fd,
            writable: false,
            exec_ok: true,
            write_access: None,
            dev: a.dev,
            ino: a.ino,
            path: String::from_utf8_lossy(&path_string(&cx.root, &p)).into(),
        })
    });
    Ok((p, ExecFile { ops, size: a.size, mapped, deny_write: Some(deny) }))
}

/// A `#!` line: the interpreter and its optional single argument.
#[derive(Debug, PartialEq, Eq)]
struct Shebang {
    interp: Vec<u8>,
    arg: Option<Vec<u8>>,
}

/// Parses a `#!` line as Linux's `load_script` reads it.
fn parse_shebang(buf: &[u8]) -> Result<Option<Shebang>, Errno> {
    let Some(line) = buf.strip_prefix(b"#!") else { return Ok(None) };
    let is_blank = |c: &u8| *c == b' ' || *c == b'\t';
    let (line, complete) = match line.iter().position(|&c| c == b'\n') {
        Some(n) => (&line[..n], true),
        None => (line, false),
    };
    let line = &line[line.iter().position(|c| !is_blank(c)).unwrap_or(line.len())..];
    let name_len = line.iter().position(is_blank).unwrap_or(line.len());
    if name_len == 0 || (!complete && name_len == line.len()) {
        // No interpreter, or its name may be cut by the buffer's end.
        return Err(Errno::ENOEXEC);
    }
    let interp = line[..name_len].to_vec();
    let rest = &line[name_len..];
    let first = rest.iter().position(|c| !is_blank(c));
    let arg = first.map(|f| {
        let last = rest.iter().rposition(|c| !is_blank(c)).unwrap_or(f);
        rest[f..=last].to_vec()
    });
    Ok(Some(Shebang { interp, arg }))
}

/// What to execute.
pub struct Program {
    /// The path to look up (from `ExecContext::start`).
    pub path: Vec<u8>,
    /// The program's name: the path as given, or `/dev/fd/N[/path]` for
    /// `execveat` relative to a descriptor (`AT_EXECFN`, a script's
    /// argument, `comm`).
    pub name: Vec<u8>,
    /// The file already found (`execveat` with `AT_EMPTY_PATH`), or
    /// `None` to look `path` up.
    pub target: Option<Path>,
    /// Whether a final symbolic link is followed.
    pub follow: bool,
    /// Arguments.
    pub argv: Vec<Vec<u8>>,
    /// Environment.
    pub envp: Vec<Vec<u8>>,
    /// `RLIMIT_STACK` soft limit.
    pub stack_limit: u64,
}

/// Finds, checks and loads `prog` into a new address space. Nothing of
/// the caller changes: on error the caller goes on as before.
pub fn prepare(kernel: &Kernel, cx: &ExecContext<'_>, prog: Program) -> Result<Image, Errno> {
    let Program { path, name, target, follow, mut argv, envp, stack_limit } = prog;
    let (mut p, mut file) = match target {
        Some(t) => open_exec_path(cx, t)?,
        None => open_exec(cx, cx.start.clone(), &path, follow)?,
    };
    let execfn = name;
    let mut current = execfn.clone();
    let mut depth = 0;
    loop {
        let mut buf = [0u8; BINPRM_BUF];
        let n = file.read_at(0, &mut buf)?;
        let Some(Shebang { interp, arg }) = parse_shebang(&buf[..n])? else { break };
        depth += 1;
        if depth > MAX_SCRIPT_DEPTH {
            return Err(Errno::ELOOP);
        }
        // argv: the interpreter, its argument, the script's path, then the
        // script's arguments after its argv[0].
        let mut new = vec![interp.clone()];
        new.extend(arg);
        new.push(current);
        new.extend(argv.into_iter().skip(1));
        argv = new;
        (p, file) = open_exec(cx, cx.cwd.clone(), &interp, true)?;
        current = interp;
    }
    let elf = ElfFile::parse(&file)?;
    let interp = match &elf.interp {
        Some(i) => Some(open_exec(cx, cx.cwd.clone(), i, true)?.1),
        None => None,
    };
    let mm = Arc::new(MemoryManager::new(kernel.platform.as_ref(), kernel.mf.clone())?);
    let c = cx.creds;
    let args = LoadArgs {
        argv,
        envp,
        execfn: execfn.clone(),
        uid: c.ruid,
        euid: c.euid,
        gid: c.rgid,
        egid: c.egid,
        stack_limit,
        randomize: true,
    };
    let loaded =
        loader::load(&mm, &file, interp.as_ref().map(|i| i as &dyn ExecSource), &args, kernel.facts)?;
    // The program stays unwritable while this address space runs it.
    mm.hold_exe(file.deny_write.take());
    mm.prefault_all_on_first_fault();
    let comm = execfn.rsplit(|&c| c == b'/').next().unwrap_or_default().to_vec();
    Ok(Image { mm, loaded, exe: p, comm })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shebang_lines_parse_as_linux_reads_them() {
        assert_eq!(parse_shebang(b"\x7fELF"), Ok(None));
        let sb =
            |i: &[u8], a: Option<&[u8]>| Ok(Some(Shebang { interp: i.to_vec(), arg: a.map(<[u8]>::to_vec) }));
        assert_eq!(parse_shebang(b"#!/bin/sh\necho"), sb(b"/bin/sh", None));
        assert_eq!(
            parse_shebang(b"#! \t/usr/bin/env  python3 -u  \n"),
            sb(b"/usr/bin/env", Some(b"python3 -u"))
        );
        assert_eq!(parse_shebang(b"#!\n"), Err(Errno::ENOEXEC));
        assert_eq!(parse_shebang(b"#!   \n"), Err(Errno::ENOEXEC));
        // No newline: fine if the name ends before the buffer does.
        assert_eq!(parse_shebang(b"#!/bin/sh -x"), sb(b"/bin/sh", Some(b"-x")));
        assert_eq!(parse_shebang(b"#!/bin/sh"), Err(Errno::ENOEXEC));
    }
}
