//! `--strace`: every system call with decoded arguments and its result, in
//! strace's format, to standard error or the debug log.

use std::fmt::Write as _;
use std::io::Write as _;

use rvisor_syscalls::strace::{self as data, Arg, Ret};
use rvisor_syscalls::Errno;

use crate::kernel::Task;

/// Longest string or buffer shown, as strace's default `-s 32`.
const MAX_SHOWN: usize = 32;

/// The tracer.
#[derive(Clone, Debug)]
pub struct Strace {
    to_log: bool,
}

/// Arguments captured when a call entered (inputs are shown as they were
/// before the call ran).
#[derive(Debug)]
pub struct Pending {
    nr: u64,
    args: [u64; 6],
    shown: Vec<Option<String>>,
}

fn escape(out: &mut String, b: &[u8], complete: bool) {
    out.push('"');
    for &c in b.iter().take(MAX_SHOWN) {
        match c {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\t' => out.push_str("\\t"),
            b'\r' => out.push_str("\\r"),
            0x20..=0x7e => out.push(char::from(c)),
            _ => {
                let _ = write!(out, "\\x{c:02x}");
            }
        }
    }
    out.push('"');
    if b.len() > MAX_SHOWN || !complete {
        out.push_str("...");
    }
}

fn flags(v: u64, names: &[(u64, &str)], out: &mut String) {
    let mut rest = v;
    let mut first = out.is_empty();
    for &(bit, name) in names {
        if bit != 0 && rest & bit == bit {
            if !first {
                out.push('|');
            }
            out.push_str(name);
            first = false;
            rest &= !bit;
        }
    }
    if rest != 0 || first {
        if !first {
            out.push('|');
        }
        let _ = write!(out, "{rest:#x}");
    }
}

fn named(v: u64, names: &[&str]) -> String {
    usize::try_from(v).ok().and_then(|i| names.get(i)).map_or_else(|| v.to_string(), |s| (*s).to_string())
}

fn ptr(v: u64) -> String {
    if v == 0 {
        "NULL".into()
    } else {
        format!("{v:#x}")
    }
}

fn int(v: u64) -> i32 {
    i32::from_le_bytes([v.to_le_bytes()[0], v.to_le_bytes()[1], v.to_le_bytes()[2], v.to_le_bytes()[3]])
}

impl Strace {
    /// A tracer writing to standard error, or to the debug log.
    pub fn new(to_log: bool) -> Strace {
        Strace { to_log }
    }

    fn show_input(t: &Task, kind: Arg, args: &[u64; 6], v: u64) -> Option<String> {
        let mut s = String::new();
        match kind {
            Arg::Str => match t.mm.read_cstring(v, 4096) {
                Ok(b) => escape(&mut s, &b, true),
                Err(_) => s = ptr(v),
            },
            Arg::InBuf(n) => {
                let len = usize::try_from(args[usize::from(n)]).unwrap_or(usize::MAX);
                match t.mm.read_bytes(v, len.min(MAX_SHOWN)) {
                    Ok(b) => escape(&mut s, &b, len <= MAX_SHOWN),
                    Err(_) => s = ptr(v),
                }
            }
            Arg::InIovec(n) => {
                let cnt = args[usize::from(n)].min(8);
                s.push('[');
                for i in 0..cnt {
                    let Ok(iov) = t.mm.read_obj::<rvisor_syscalls::abi::Iovec>(v + i * 16) else {
                        s = ptr(v);
                        return Some(s);
                    };
                    if i > 0 {
                        s.push_str(", ");
                    }
                    s.push_str("{iov_base=");
                    let len = usize::try_from(iov.len).unwrap_or(usize::MAX);
                    match t.mm.read_bytes(iov.base, len.min(MAX_SHOWN)) {
                        Ok(b) => escape(&mut s, &b, len <= MAX_SHOWN),
                        Err(_) => s.push_str(&ptr(iov.base)),
                    }
                    let _ = write!(s, ", iov_len={}}}", iov.len);
                }
                s.push(']');
            }
            _ => return None,
        }
        Some(s)
    }

    fn show(kind: Arg, v: u64) -> String {
        let mut s = String::new();
        match kind {
            Arg::Int | Arg::Fd => s = int(v).to_string(),
            Arg::AtFd if int(v) == -100 => s.push_str("AT_FDCWD"),
            Arg::AtFd => s = int(v).to_string(),
            Arg::Long => s = v.cast_signed().to_string(),
            Arg::ULong => s = v.to_string(),
            Arg::Hex => s = format!("{v:#x}"),
            Arg::Oct => s = format!("{v:#o}"),
            Arg::Ptr | Arg::Str | Arg::InBuf(_) | Arg::OutBuf(_) | Arg::InIovec(_) => s = ptr(v),
            Arg::Signal => s = named(v, data::SIGNAL_NAMES),
            Arg::Clock => s = named(v, data::CLOCK_NAMES),
            Arg::Resource => s = named(v, data::RESOURCE_NAMES),
            Arg::ArchPrctl => flags(v, data::ARCH_PRCTL_NAMES, &mut s),
            Arg::Ioctl => match data::IOCTL_NAMES.iter().find(|(k, _)| *k == v & 0xffff_ffff) {
                Some((_, n)) => s.push_str(n),
                None => s = format!("{v:#x}"),
            },
            Arg::Prot if v == 0 => s.push_str("PROT_NONE"),
            Arg::Prot => flags(v, data::PROT_NAMES, &mut s),
            Arg::MapFlags => {
                s.push_str(match v & 3 {
                    1 => "MAP_SHARED",
                    2 => "MAP_PRIVATE",
                    3 => "MAP_SHARED_VALIDATE",
                    _ => "0",
                });
                if v & !3 != 0 {
                    s.push('|');
                    let mut f = String::new();
                    flags(v & !3, data::MAP_FLAG_NAMES, &mut f);
                    s.push_str(&f);
                }
            }
            Arg::OpenFlags => {
                s.push_str(match v & 3 {
                    0 => "O_RDONLY",
                    1 => "O_WRONLY",
                    2 => "O_RDWR",
                    _ => "O_ACCMODE",
                });
                if v & !3 != 0 {
                    s.push('|');
                    let mut f = String::new();
                    flags(v & !3, data::OPEN_FLAG_NAMES, &mut f);
                    s.push_str(&f);
                }
            }
            Arg::SigHow => {
                s.push_str(match v {
                    0 => "SIG_BLOCK",
                    1 => "SIG_UNBLOCK",
                    2 => "SIG_SETMASK",
                    _ => "?",
                });
            }
        }
        s
    }

    /// Captures a call's inputs at entry; prints calls that do not return.
    pub fn enter(&self, t: &Task, nr: u64, args: &[u64; 6]) -> Pending {
        let info = data::info(nr);
        let shown = info.args.iter().zip(args).map(|(&k, &v)| Self::show_input(t, k, args, v)).collect();
        let p = Pending { nr, args: *args, shown };
        if info.ret == Ret::NoReturn {
            let line = self.line(t, &p, "?".into());
            self.emit(&line);
        }
        p
    }

    /// Prints a call with its result.
    pub fn exit(&self, t: &Task, p: Pending, r: &Result<u64, Errno>) {
        let info = data::info(p.nr);
        if info.ret == Ret::NoReturn {
            return;
        }
        let ret = match r {
            Ok(v) if info.ret == Ret::Hex => format!("{v:#x}"),
            Ok(v) => v.cast_signed().to_string(),
            Err(e) => format!("-1 {} ({})", e.name(), e.description()),
        };
        // Output buffers are shown after the call filled them.
        let mut p = p;
        for (i, &k) in info.args.iter().enumerate() {
            if let (Arg::OutBuf(n), Ok(v)) = (k, r) {
                let len = usize::try_from((*v).min(p.args[usize::from(n)])).unwrap_or(0);
                let mut s = String::new();
                match t.mm.read_bytes(p.args[i], len.min(MAX_SHOWN)) {
                    Ok(b) => escape(&mut s, &b, len <= MAX_SHOWN),
                    Err(_) => s = ptr(p.args[i]),
                }
                p.shown[i] = Some(s);
            }
        }
        let line = self.line(t, &p, ret);
        self.emit(&line);
    }

    fn line(&self, t: &Task, p: &Pending, ret: String) -> String {
        let info = data::info(p.nr);
        let mut line = String::new();
        if t.tid() != 1 {
            let _ = write!(line, "[pid {}] ", t.tid());
        }
        if info.name == "syscall" {
            let _ = write!(line, "syscall_{:#x}(", p.nr);
        } else {
            let _ = write!(line, "{}(", info.name);
        }
        for (i, &k) in info.args.iter().enumerate() {
            if i > 0 {
                line.push_str(", ");
            }
            match &p.shown[i] {
                Some(s) => line.push_str(s),
                None => line.push_str(&Self::show(k, p.args[i])),
            }
        }
        let _ = write!(line, ") = {ret}");
        line
    }

    fn emit(&self, line: &str) {
        if self.to_log {
            tracing::info!(target: "strace", "{line}");
        } else {
            let mut b = line.as_bytes().to_vec();
            b.push(b'\n');
            let _ = std::io::stderr().lock().write_all(&b);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_strace() {
        let mut s = String::new();
        escape(&mut s, b"hi\n\"\\\x01", true);
        assert_eq!(s, r#""hi\n\"\\\x01""#);
        let mut s = String::new();
        escape(&mut s, &[b'a'; 40], true);
        assert_eq!(s, format!("\"{}\"...", "a".repeat(32)));
    }

    #[test]
    fn decodes_flags() {
        assert_eq!(Strace::show(Arg::Prot, 3), "PROT_READ|PROT_WRITE");
        assert_eq!(Strace::show(Arg::Prot, 0), "PROT_NONE");
        assert_eq!(Strace::show(Arg::MapFlags, 0x22), "MAP_PRIVATE|MAP_ANONYMOUS");
        assert_eq!(Strace::show(Arg::OpenFlags, 0o2000000), "O_RDONLY|O_CLOEXEC");
        assert_eq!(Strace::show(Arg::AtFd, (-100i64).cast_unsigned()), "AT_FDCWD");
        assert_eq!(Strace::show(Arg::Fd, 0xffff_ffff), "-1");
        assert_eq!(Strace::show(Arg::ArchPrctl, 0x1002), "ARCH_SET_FS");
        assert_eq!(Strace::show(Arg::Signal, 2), "SIGINT");
    }
}
