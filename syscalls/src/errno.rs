//! Error numbers.

use std::fmt;

/// A Linux error number (positive). System call handlers return
/// `Result<u64, Errno>`; the application sees `-errno` in `rax`.
///
/// Besides the errors applications see, the kernel-internal restart values
/// (`ERESTARTSYS` …) say how an interrupted call continues; they never reach
/// the application (see [`Errno::is_restart`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Errno(i32);

macro_rules! errnos {
    ($($name:ident = $v:expr,)*) => {
        impl Errno {
            $(
                #[allow(missing_docs)]
                pub const $name: Errno = Errno($v);
            )*
        }
    };
}

errnos! {
    EPERM = 1, ENOENT = 2, ESRCH = 3, EINTR = 4, EIO = 5, ENXIO = 6, E2BIG = 7, ENOEXEC = 8,
    EBADF = 9, ECHILD = 10, EAGAIN = 11, ENOMEM = 12, EACCES = 13, EFAULT = 14, ENOTBLK = 15,
    EBUSY = 16, EEXIST = 17, EXDEV = 18, ENODEV = 19, ENOTDIR = 20, EISDIR = 21, EINVAL = 22,
    ENFILE = 23, EMFILE = 24, ENOTTY = 25, ETXTBSY = 26, EFBIG = 27, ENOSPC = 28, ESPIPE = 29,
    EROFS = 30, EMLINK = 31, EPIPE = 32, EDOM = 33, ERANGE = 34, EDEADLK = 35, ENAMETOOLONG = 36,
    ENOLCK = 37, ENOSYS = 38, ENOTEMPTY = 39, ELOOP = 40, ENOMSG = 42, EIDRM = 43, ENODATA = 61,
    ETIME = 62, EOVERFLOW = 75, ELIBBAD = 80, EBADFD = 77, EILSEQ = 84, ENOTSOCK = 88, EDESTADDRREQ = 89,
    EMSGSIZE = 90, EPROTOTYPE = 91, ENOPROTOOPT = 92, EPROTONOSUPPORT = 93, ESOCKTNOSUPPORT = 94, EOPNOTSUPP = 95,
    EAFNOSUPPORT = 97, EADDRINUSE = 98, EADDRNOTAVAIL = 99, ENETUNREACH = 101, ECONNABORTED = 103,
    ECONNRESET = 104, ENOBUFS = 105, EISCONN = 106, ENOTCONN = 107, ETIMEDOUT = 110,
    ECONNREFUSED = 111, EALREADY = 114, EINPROGRESS = 115, ESTALE = 116, EDQUOT = 122,
    ECANCELED = 125, EOWNERDEAD = 130, ENOTRECOVERABLE = 131,
    // Kernel-internal: how an interrupted call continues.
    ERESTARTSYS = 512, ERESTARTNOINTR = 513, ERESTARTNOHAND = 514, ERESTART_RESTARTBLOCK = 516,
}

impl Errno {
    /// Would-block, as Linux spells it for non-blocking calls.
    pub const EWOULDBLOCK: Errno = Errno::EAGAIN;

    /// The errno with value `v` (1..=4095).
    pub fn new(v: i32) -> Option<Errno> {
        (1..=4095).contains(&v).then_some(Errno(v))
    }

    /// The positive value.
    pub fn get(self) -> i32 {
        self.0
    }

    /// The value the application sees in `rax`: `-errno` as a 64-bit word.
    pub fn to_ret(self) -> u64 {
        (-i64::from(self.0)).cast_unsigned()
    }

    /// Decodes a system call return value: `Some(errno)` for -4095..=-1.
    pub fn from_ret(ret: u64) -> Option<Errno> {
        let v = ret.cast_signed();
        if (-4095..0).contains(&v) {
            i32::try_from(-v).ok().map(Errno)
        } else {
            None
        }
    }

    /// Whether this is one of the kernel-internal restart values.
    pub fn is_restart(self) -> bool {
        matches!(self.0, 512..=516)
    }

    /// The symbolic name (`ENOENT`).
    pub fn name(self) -> &'static str {
        match self.0 {
            512 => "ERESTARTSYS",
            513 => "ERESTARTNOINTR",
            514 => "ERESTARTNOHAND",
            516 => "ERESTART_RESTARTBLOCK",
            v => syscalls::Errno::new(v).name().unwrap_or("E?"),
        }
    }

    /// A short description, as strace prints it.
    pub fn description(self) -> &'static str {
        match self.0 {
            512..=516 => "To be restarted",
            25 => "Inappropriate ioctl for device",
            38 => "Function not implemented",
            v => syscalls::Errno::new(v).description().unwrap_or("Unknown error"),
        }
    }
}

impl fmt::Debug for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl fmt::Display for Errno {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.description())
    }
}

impl std::error::Error for Errno {}

impl From<std::io::Error> for Errno {
    /// Host errors the sentry hits on the application's behalf (a host
    /// stdio write, say) become the same errno, or `EIO`.
    fn from(e: std::io::Error) -> Self {
        e.raw_os_error().and_then(Errno::new).unwrap_or(Errno::EIO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn return_values_round_trip() {
        assert_eq!(Errno::ENOENT.to_ret(), (-2i64).cast_unsigned());
        assert_eq!(Errno::from_ret(Errno::EFAULT.to_ret()), Some(Errno::EFAULT));
        assert_eq!(Errno::from_ret(0), None);
        assert_eq!(Errno::from_ret((-4096i64).cast_unsigned()), None);
        assert_eq!(Errno::from_ret(0x7fff_0000_0000), None);
        assert_eq!(Errno::ENOSYS.name(), "ENOSYS");
        assert!(Errno::ERESTARTSYS.is_restart() && !Errno::EINTR.is_restart());
        assert_eq!(Errno::new(0), None);
    }
}
