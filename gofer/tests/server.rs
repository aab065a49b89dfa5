//! The gofer serving a real directory over a real socket pair: hostile
//! requests fail cleanly and the gofer keeps serving.

use std::os::fd::{AsFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;

use rustix::fs::{Mode, OFlags};
use rustix::net::{socketpair, AddressFamily, SocketFlags, SocketType};
use rvisor_gofer::channel;
use rvisor_gofer::protocol::{Attr, Name, Reply, Request};
use rvisor_gofer::{AttachPoint, Server};

struct Fixture {
    dir: PathBuf,
    sock: OwnedFd,
    next: u64,
}

impl Fixture {
    fn new(read_only: bool) -> Fixture {
        let dir = std::env::temp_dir().join(format!("rvisor-gofer-{}-{}", std::process::id(), rand_suffix()));
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(dir.join("file"), b"contents").unwrap();
        std::fs::write(dir.join("sub/inner"), b"inner").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", dir.join("escape")).unwrap();
        std::os::unix::fs::symlink("../..", dir.join("up")).unwrap();
        let root = rustix::fs::open(&dir, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())
            .unwrap();
        let fd_dir = rvisor_gofer::server::open_fd_dir().unwrap();
        let server = Arc::new(Server::new(vec![AttachPoint { root, read_only }], fd_dir));
        let (a, b) =
            socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None).unwrap();
        std::thread::spawn(move || server.serve(b));
        Fixture { dir, sock: a, next: 1 }
    }

    fn raw(&mut self, msg: &[u8]) -> (u64, Reply, Option<OwnedFd>) {
        channel::send(self.sock.as_fd(), msg, None).unwrap();
        let r = channel::recv(&self.sock).unwrap();
        let (id, reply) = Reply::decode(&r.msg).unwrap();
        (id, reply, r.fd)
    }

    fn call(&mut self, req: Request) -> (Reply, Option<OwnedFd>) {
        self.next += 1;
        let id = self.next;
        let (got, reply, fd) = self.raw(&req.encode(id));
        assert_eq!(got, id);
        (reply, fd)
    }

    fn attach(&mut self) -> (u64, Attr) {
        match self.call(Request::Attach { point: 0 }).0 {
            Reply::Node { fid, attr } => (fid, attr),
            r => panic!("attach: {r:?}"),
        }
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn name(s: &str) -> Name {
    Name::new(s.as_bytes()).unwrap()
}

#[test]
fn walks_opens_and_reads() {
    let mut f = Fixture::new(true);
    let (root, attr) = f.attach();
    assert_eq!(attr.mode & 0o170000, 0o040000);
    let (r, _) = f.call(Request::Walk { dir: root, names: vec![name("sub"), name("inner")] });
    let Reply::Walk(v) = r else { panic!("{r:?}") };
    assert_eq!(v.len(), 2);
    assert_eq!(v[1].1.size, 5);
    let (r, fd) = f.call(Request::Open { fid: v[1].0, flags: 0 });
    assert_eq!(r, Reply::Ok);
    let fd = fd.expect("descriptor donated");
    let mut b = [0u8; 16];
    let n = rustix::io::read(&fd, &mut b).unwrap();
    assert_eq!(&b[..n], b"inner");
    // The walk stops before a missing name.
    let (r, _) = f.call(Request::Walk { dir: root, names: vec![name("sub"), name("missing"), name("x")] });
    assert!(matches!(r, Reply::Walk(ref v) if v.len() == 1), "{r:?}");
    let (r, _) = f.call(Request::Walk { dir: root, names: vec![name("missing")] });
    assert_eq!(r, Reply::Error(libc::ENOENT));
    // Directory entries.
    let (r, _) = f.call(Request::Getdents { fid: root, off: 0 });
    let Reply::Dirents(d) = r else { panic!("{r:?}") };
    let mut names: Vec<String> = d.iter().map(|e| String::from_utf8_lossy(&e.name).into_owned()).collect();
    names.sort();
    assert_eq!(names, [".", "..", "escape", "file", "sub", "up"]);
}

#[test]
fn symlinks_are_never_followed() {
    let mut f = Fixture::new(true);
    let (root, _) = f.attach();
    for link in ["escape", "up"] {
        let (r, _) = f.call(Request::Walk { dir: root, names: vec![name(link), name("x")] });
        let Reply::Walk(v) = r else { panic!("{r:?}") };
        assert_eq!(v.len(), 1, "the walk stops at the link itself");
        assert_eq!(v[0].1.mode & 0o170000, 0o120000);
        let (r, fd) = f.call(Request::Open { fid: v[0].0, flags: 0 });
        assert_eq!(r, Reply::Error(libc::ENXIO), "a link is not opened");
        assert!(fd.is_none());
        let (r, _) = f.call(Request::Readlink { fid: v[0].0 });
        assert!(matches!(r, Reply::Bytes(_)));
    }
}

#[test]
fn hostile_requests_fail_cleanly_and_serving_goes_on() {
    let mut f = Fixture::new(true);
    let (root, _) = f.attach();
    // Garbage, a bad version, truncated headers.
    for msg in
        [&b"garbage"[..], &[0u8; 16][..], &[1, 0, 2, 0, 255, 255, 255, 255, 1, 0, 0, 0, 0, 0, 0, 0][..]]
    {
        let (_, r, _) = f.raw(msg);
        assert_eq!(r, Reply::Error(libc::EBADMSG));
    }
    // A name with a slash or "..", smuggled past the encoder.
    let mut m = Request::Walk { dir: root, names: vec![name("xx")] }.encode(5);
    let l = m.len();
    m[l - 2..].copy_from_slice(b"..");
    let (id, r, _) = f.raw(&m);
    assert_eq!((id, r), (5, Reply::Error(libc::EBADMSG)));
    m[l - 2..].copy_from_slice(b"a/");
    let (_, r, _) = f.raw(&m);
    assert_eq!(r, Reply::Error(libc::EBADMSG));
    // A fid it never issued.
    let (r, _) = f.call(Request::Stat { fid: 999_999 });
    assert_eq!(r, Reply::Error(libc::EBADF));
    let (r, _) = f.call(Request::Open { fid: 424_242, flags: 0 });
    assert_eq!(r, Reply::Error(libc::EBADF));
    // Closed fids are gone.
    let (r, _) = f.call(Request::Walk { dir: root, names: vec![name("file")] });
    let Reply::Walk(v) = r else { panic!() };
    f.call(Request::Close { fids: vec![v[0].0] });
    assert_eq!(f.call(Request::Stat { fid: v[0].0 }).0, Reply::Error(libc::EBADF));
    // Still serving.
    let (r, _) = f.call(Request::Stat { fid: root });
    assert!(matches!(r, Reply::Attr(_)));
}

#[test]
fn read_only_exports_refuse_writes() {
    let mut f = Fixture::new(true);
    let (root, _) = f.attach();
    let (r, _) = f.call(Request::Mkdir { dir: root, name: name("d"), mode: 0o755, uid: 0, gid: 0 });
    assert_eq!(r, Reply::Error(libc::EROFS));
    let (r, _) = f.call(Request::Walk { dir: root, names: vec![name("file")] });
    let Reply::Walk(v) = r else { panic!() };
    assert_eq!(
        f.call(Request::Open { fid: v[0].0, flags: libc::O_RDWR as u32 }).0,
        Reply::Error(libc::EROFS)
    );
    assert_eq!(
        f.call(Request::Unlink { dir: root, name: name("file"), flags: 0 }).0,
        Reply::Error(libc::EROFS)
    );
    assert!(f.dir.join("file").exists());
}

#[test]
fn writable_exports_create_with_the_callers_ids_and_mode() {
    let mut f = Fixture::new(false);
    let (root, _) = f.attach();
    let (r, fd) = f.call(Request::Create {
        dir: root,
        name: name("new"),
        flags: libc::O_RDWR as u32,
        mode: 0o4755,
        uid: 1234,
        gid: 5678,
    });
    let Reply::Node { attr, .. } = r else { panic!("{r:?}") };
    assert_eq!((attr.uid, attr.gid), (1234, 5678));
    assert_eq!(attr.mode & 0o7777, 0o4755, "the mode survives the change of owner");
    rustix::io::write(fd.unwrap(), b"hi").unwrap();
    assert_eq!(std::fs::read(f.dir.join("new")).unwrap(), b"hi");
    // Devices are refused; FIFOs are fine.
    let (r, _) = f.call(Request::Mknod { dir: root, name: name("dev"), mode: 0o020644, uid: 0, gid: 0 });
    assert_eq!(r, Reply::Error(libc::EPERM));
    let (r, _) = f.call(Request::Mknod { dir: root, name: name("fifo"), mode: 0o010644, uid: 0, gid: 0 });
    assert!(matches!(r, Reply::Node { .. }), "{r:?}");
    let (r, _) = f.call(Request::Rename {
        old_dir: root,
        old: name("new"),
        new_dir: root,
        new: name("renamed"),
        flags: 0,
    });
    assert_eq!(r, Reply::Ok);
    assert!(f.dir.join("renamed").exists());
}
