//! AF_UNIX sockets, in the sentry (after Linux's `net/unix/af_unix.c`):
//! stream, datagram and seqpacket; names in the sandbox's file systems
//! (a socket node, bound to the sentry's socket by its inode) and in the
//! abstract namespace (the sandbox's own); descriptors and credentials
//! passed with messages. No host socket is ever reached.
//!
//! A socket is a [`Sock`]; connected sockets know each other weakly, so
//! that closing one (the last descriptor of its file) tells the other:
//! a stream peer then reads end-of-file and writes `EPIPE`, a datagram
//! sender gets `ECONNREFUSED`.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex, MutexGuard, Weak};

use rvisor_syscalls::abi::Stat;
use rvisor_syscalls::Errno;

use crate::kernel::waitq::{events, WaitQueue};
use crate::kernel::Task;
use crate::vfs::file::oflags::{O_NONBLOCK, O_RDWR};
use crate::vfs::{File, FileOps};

/// `SOCK_STREAM`.
pub const SOCK_STREAM: i32 = 1;
/// `SOCK_DGRAM`.
pub const SOCK_DGRAM: i32 = 2;
/// `SOCK_SEQPACKET`.
pub const SOCK_SEQPACKET: i32 = 5;

/// `SHUT_RD` as a bit of a socket's shutdown state (`RCV_SHUTDOWN`).
const RCV: u8 = 1;
/// `SEND_SHUTDOWN`.
const SEND: u8 = 2;

/// Default and largest buffer sizes (`net.core.wmem_default`, a
/// sandbox's own `wmem_max`).
pub const BUF_DEFAULT: usize = 212_992;
/// See [`BUF_DEFAULT`].
pub const BUF_MAX: usize = 4 << 20;
/// `net.unix.max_dgram_qlen`.
const MAX_DGRAM_QLEN: usize = 10;
/// `net.core.somaxconn`.
pub const SOMAXCONN: usize = 4096;
/// Most descriptors one message carries (`SCM_MAX_FD`).
pub const SCM_MAX_FD: usize = 253;

/// A socket's name.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Name {
    /// A path (as given to `bind`), with the socket node's (dev, ino).
    Path(Vec<u8>),
    /// An abstract name (the bytes after the leading NUL).
    Abstract(Vec<u8>),
}

/// Credentials a message or a connection carries (`struct ucred`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Ucred {
    /// Process id in the sandbox.
    pub pid: i32,
    /// User id.
    pub uid: u32,
    /// Group id.
    pub gid: u32,
}

/// What a message costs its sender's send buffer besides its bytes (as
/// Linux charges an skb's `truesize`).
const OVERHEAD: usize = 768;

/// One message (a datagram, a record, or a stream write).
struct Msg {
    data: Vec<u8>,
    /// Bytes of `data` already read (stream).
    pos: usize,
    rights: Vec<Arc<File>>,
    cred: Ucred,
    from: Option<Name>,
    /// Charged to the sender's `wmem` until the message is gone.
    charge: usize,
    sender: Weak<Sock>,
}

impl Drop for Msg {
    fn drop(&mut self) {
        if let Some(s) = self.sender.upgrade() {
            s.wmem.fetch_sub(self.charge, Ordering::AcqRel);
            s.queue.notify_events(events::OUT);
        }
    }
}

impl Msg {
    fn left(&self) -> usize {
        self.data.len() - self.pos
    }
}

#[derive(Default)]
struct Inner {
    name: Option<Name>,
    listening: bool,
    backlog: usize,
    pending: VecDeque<Arc<Sock>>,
    /// The peer (stream, seqpacket) or default destination (datagram).
    peer: Option<Weak<Sock>>,
    /// Ever connected (a stream socket whose peer went is not "unconnected").
    connected: bool,
    rx: VecDeque<Msg>,
    rx_bytes: usize,
    shut: u8,
    err: Option<Errno>,
    passcred: bool,
    sndbuf: usize,
    rcvbuf: usize,
    peer_cred: Option<Ucred>,
    /// The listener's credentials (a client's `SO_PEERCRED`).
    own_cred: Option<Ucred>,
    closed: bool,
}

/// An AF_UNIX socket.
pub struct Sock {
    /// `SOCK_STREAM`, `SOCK_DGRAM` or `SOCK_SEQPACKET`.
    pub kind: i32,
    ino: u64,
    /// Bytes (with overhead) of this socket's messages not yet consumed.
    wmem: AtomicUsize,
    inner: Mutex<Inner>,
    queue: WaitQueue,
}

/// Names to sockets: the sandbox's abstract namespace, and path nodes by
/// (dev, ino).
type Names<K> = LazyLock<Mutex<HashMap<K, Weak<Sock>>>>;
static ABSTRACT: Names<Vec<u8>> = LazyLock::new(Mutex::default);
static PATHS: Names<(u64, u64)> = LazyLock::new(Mutex::default);

fn table<K, V>(m: &Mutex<HashMap<K, V>>) -> MutexGuard<'_, HashMap<K, V>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn next_ino() -> u64 {
    static NEXT: AtomicU64 = AtomicU64::new(1 << 20);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// What a receive returns.
#[derive(Default)]
pub struct Received {
    /// The bytes.
    pub data: Vec<u8>,
    /// The message's whole length (datagram and seqpacket: more than
    /// `data` when truncated).
    pub len: usize,
    /// Descriptors that came with it.
    pub rights: Vec<Arc<File>>,
    /// The sender's credentials.
    pub cred: Ucred,
    /// The sender's name (datagram).
    pub from: Option<Name>,
}

impl Sock {
    fn new(kind: i32) -> Arc<Sock> {
        Arc::new(Sock {
            kind,
            ino: next_ino(),
            wmem: AtomicUsize::new(0),
            inner: Mutex::new(Inner { sndbuf: BUF_DEFAULT, rcvbuf: BUF_DEFAULT, ..Inner::default() }),
            queue: WaitQueue::default(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn connection(&self) -> bool {
        self.kind != SOCK_DGRAM
    }

    /// The socket's name.
    pub fn name(&self) -> Option<Name> {
        self.lock().name.clone()
    }

    /// The peer's name (`getpeername`): `ENOTCONN` if none.
    pub fn peer_name(&self) -> Result<Option<Name>, Errno> {
        let peer = self.lock().peer.as_ref().and_then(Weak::upgrade).ok_or(Errno::ENOTCONN)?;
        Ok(peer.name())
    }

    /// `SO_PEERCRED`.
    pub fn peer_cred(&self) -> Option<Ucred> {
        self.lock().peer_cred
    }

    /// `SO_PASSCRED`.
    pub fn set_passcred(&self, on: bool) {
        self.lock().passcred = on;
    }

    /// See [`Sock::set_passcred`].
    pub fn passcred(&self) -> bool {
        self.lock().passcred
    }

    /// `SO_SNDBUF`/`SO_RCVBUF` (`Some(send)`), already doubled and clamped.
    pub fn set_buf(&self, send: bool, v: usize) {
        let mut i = self.lock();
        if send {
            i.sndbuf = v;
        } else {
            i.rcvbuf = v;
        }
        drop(i);
        self.queue.notify_events(events::OUT);
    }

    /// See [`Sock::set_buf`].
    pub fn buf(&self, send: bool) -> usize {
        let i = self.lock();
        if send {
            i.sndbuf
        } else {
            i.rcvbuf
        }
    }

    /// `SO_ERROR`: takes the pending error.
    pub fn take_error(&self) -> Option<Errno> {
        self.lock().err.take()
    }

    /// `SO_ACCEPTCONN`.
    pub fn is_listening(&self) -> bool {
        self.lock().listening
    }

    /// `bind`: a path name (its node already made, `key` its (dev, ino))
    /// or an abstract one (`EADDRINUSE` if taken); `None` asks for an
    /// automatic abstract name.
    pub fn bind(self: &Arc<Self>, name: Option<Name>, key: Option<(u64, u64)>) -> Result<(), Errno> {
        let mut i = self.lock();
        if i.name.is_some() {
            return Err(Errno::EINVAL);
        }
        let name = match name {
            Some(Name::Abstract(a)) => {
                let mut t = table(&ABSTRACT);
                if t.get(&a).is_some_and(|w| w.strong_count() > 0) {
                    return Err(Errno::EADDRINUSE);
                }
                t.insert(a.clone(), Arc::downgrade(self));
                Name::Abstract(a)
            }
            Some(Name::Path(p)) => {
                if let Some(k) = key {
                    table(&PATHS).insert(k, Arc::downgrade(self));
                }
                Name::Path(p)
            }
            None => {
                // Linux's autobind: five hex digits in the abstract space.
                let mut t = table(&ABSTRACT);
                let mut n = self.ino & 0xfffff;
                let a = loop {
                    let a = format!("{n:05x}").into_bytes();
                    if t.get(&a).is_none_or(|w| w.strong_count() == 0) {
                        break a;
                    }
                    n = (n + 1) & 0xfffff;
                };
                t.insert(a.clone(), Arc::downgrade(self));
                Name::Abstract(a)
            }
        };
        i.name = Some(name);
        Ok(())
    }

    /// Whether the socket has a name (`connect` of a datagram socket with
    /// `SO_PASSCRED` autobinds, as Linux).
    pub fn is_bound(&self) -> bool {
        self.lock().name.is_some()
    }

    /// `listen`, by a task with credentials `cred`.
    pub fn listen(&self, backlog: i32, cred: Ucred) -> Result<(), Errno> {
        if !self.connection() {
            return Err(Errno::EOPNOTSUPP);
        }
        let mut i = self.lock();
        if i.name.is_none() || i.connected {
            return Err(Errno::EINVAL);
        }
        i.listening = true;
        i.own_cred = Some(cred);
        i.backlog = usize::try_from(backlog).unwrap_or(0).min(SOMAXCONN);
        drop(i);
        self.queue.notify();
        Ok(())
    }

    /// Finds the socket a name names, for `connect`/`sendto` (the path's
    /// node resolved by the caller to `key`).
    pub fn lookup(name: &Name, key: Option<(u64, u64)>) -> Result<Arc<Sock>, Errno> {
        match name {
            Name::Abstract(a) => table(&ABSTRACT).get(a).and_then(Weak::upgrade).ok_or(Errno::ECONNREFUSED),
            Name::Path(_) => {
                key.and_then(|k| table(&PATHS).get(&k).and_then(Weak::upgrade)).ok_or(Errno::ECONNREFUSED)
            }
        }
    }

    /// `connect` to `other`, as `me` (credentials for `SO_PEERCRED`).
    pub fn connect(
        self: &Arc<Self>,
        t: &Task,
        other: &Arc<Sock>,
        nonblock: bool,
        me: Ucred,
    ) -> Result<(), Errno> {
        if other.kind != self.kind {
            return Err(Errno::EPROTOTYPE);
        }
        if !self.connection() {
            // A datagram socket's default destination (and filter).
            self.lock().peer = Some(Arc::downgrade(other));
            return Ok(());
        }
        {
            let i = self.lock();
            if i.listening {
                return Err(Errno::EINVAL);
            }
            if i.connected {
                return Err(Errno::EISCONN);
            }
        }
        let _reg = (!nonblock).then(|| other.queue.register(&t.shared, events::OUT));
        loop {
            // The server's end, waiting to be accepted.
            let server = Sock::new(self.kind);
            let listener_cred = {
                let mut o = other.lock();
                if !o.listening || o.closed {
                    return Err(Errno::ECONNREFUSED);
                }
                if o.pending.len() <= o.backlog {
                    {
                        let mut s = server.lock();
                        s.name = o.name.clone();
                        s.peer = Some(Arc::downgrade(self));
                        s.connected = true;
                        s.peer_cred = Some(me);
                        s.passcred = o.passcred;
                    }
                    o.pending.push_back(server.clone());
                    Some(o.own_cred)
                } else {
                    None
                }
            };
            if let Some(cred) = listener_cred {
                {
                    let mut i = self.lock();
                    i.peer = Some(Arc::downgrade(&server));
                    i.connected = true;
                    i.peer_cred = cred;
                }
                other.queue.notify_events(events::IN);
                self.queue.notify_events(events::OUT);
                return Ok(());
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            t.wait_kick(None).map_err(|_| Errno::ERESTARTSYS)?;
        }
    }

    /// `accept`: the next connection, waiting for one unless `nonblock`.
    pub fn accept(&self, t: &Task, nonblock: bool) -> Result<Arc<Sock>, Errno> {
        if !self.connection() {
            return Err(Errno::EOPNOTSUPP);
        }
        let _reg = (!nonblock).then(|| self.queue.register(&t.shared, events::IN));
        loop {
            {
                let mut i = self.lock();
                if !i.listening {
                    return Err(Errno::EINVAL);
                }
                if let Some(s) = i.pending.pop_front() {
                    drop(i);
                    // Room in the backlog for a waiting connect.
                    self.queue.notify_events(events::OUT);
                    return Ok(s);
                }
            }
            if nonblock {
                return Err(Errno::EAGAIN);
            }
            t.wait_kick(None).map_err(|_| Errno::ERESTARTSYS)?;
        }
    }

    /// `shutdown` (`how`: 0 read, 1 write, 2 both).
    pub fn shutdown(&self, how: i32) -> Result<(), Errno> {
        let bits = match how {
            0 => RCV,
            1 => SEND,
            2 => RCV | SEND,
            _ => return Err(Errno::EINVAL),
        };
        let peer = {
            let mut i = self.lock();
            if self.connection() && !i.connected {
                return Err(Errno::ENOTCONN);
            }
            i.shut |= bits;
            i.peer.as_ref().and_then(Weak::upgrade)
        };
        self.queue.notify();
        if let (true, Some(p)) = (self.connection(), peer) {
            // Our reading end is their writing end, and the other way.
            let mut theirs = 0;
            if bits & RCV != 0 {
                theirs |= SEND;
            }
            if bits & SEND != 0 {
                theirs |= RCV;
            }
            p.lock().shut |= theirs;
            p.queue.notify();
        }
        Ok(())
    }

    /// The peer a send goes to: `to` for a datagram with an address, else
    /// the connected one.
    fn target(&self, to: Option<&Arc<Sock>>) -> Result<Arc<Sock>, Errno> {
        let i = self.lock();
        if self.kind == SOCK_STREAM && to.is_some() {
            return Err(if i.connected { Errno::EISCONN } else { Errno::EOPNOTSUPP });
        }
        if self.connection() {
            if !i.connected {
                return Err(Errno::ENOTCONN);
            }
            if let Some(e) = i.err.filter(|_| i.shut & SEND == 0) {
                return Err(e);
            }
            if i.shut & SEND != 0 {
                return Err(Errno::EPIPE);
            }
            return i.peer.as_ref().and_then(Weak::upgrade).ok_or(Errno::EPIPE);
        }
        if i.shut & SEND != 0 {
            return Err(Errno::EPIPE);
        }
        match to {
            Some(s) => Ok(s.clone()),
            None => match &i.peer {
                None => Err(Errno::ENOTCONN),
                Some(w) => w.upgrade().ok_or(Errno::ECONNREFUSED),
            },
        }
    }

    /// Sends `data` (with `rights`, as `cred`) to the peer or `to`;
    /// returns how much went (a stream send may be partial when
    /// non-blocking or interrupted).
    pub fn send(
        self: &Arc<Self>,
        t: &Task,
        nonblock: bool,
        data: &[u8],
        mut rights: Vec<Arc<File>>,
        cred: Ucred,
        to: Option<&Arc<Sock>>,
    ) -> Result<usize, Errno> {
        let to = if self.kind == SOCK_SEQPACKET { None } else { to };
        let peer = self.target(to)?;
        let sndbuf = self.lock().sndbuf;
        if self.kind == SOCK_STREAM && data.is_empty() {
            return Ok(0);
        }
        if self.kind != SOCK_STREAM && data.len() > sndbuf.saturating_sub(32).max(1) {
            return Err(Errno::EMSGSIZE);
        }
        let from = self.name();
        let _reg = (!nonblock).then(|| peer.queue.register(&t.shared, events::OUT));
        let mut done = 0usize;
        loop {
            {
                let mut p = peer.lock();
                if p.closed {
                    return if self.connection() { Err(Errno::EPIPE) } else { Err(Errno::ECONNREFUSED) };
                }
                if self.connection() && p.shut & RCV != 0 {
                    return if done > 0 { Ok(done) } else { Err(Errno::EPIPE) };
                }
                if !self.connection() {
                    // A receiver connected elsewhere takes nothing from us.
                    if let Some(w) = &p.peer {
                        if !std::ptr::eq(w.as_ptr(), Arc::as_ptr(self)) {
                            return Err(Errno::EPERM);
                        }
                    }
                }
                let wmem = self.wmem.load(Ordering::Acquire);
                let (room, n) = match self.kind {
                    SOCK_STREAM => {
                        let n = sndbuf.saturating_sub(wmem + OVERHEAD).min(data.len() - done);
                        (n > 0, n)
                    }
                    _ => {
                        let fits = wmem == 0 || wmem + data.len() + OVERHEAD <= sndbuf;
                        // Linux's unix_recvq_full, which a receiver connected
                        // back to the sender does not apply.
                        let back =
                            p.peer.as_ref().is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(self)));
                        let full = self.kind == SOCK_DGRAM && !back && p.rx.len() > MAX_DGRAM_QLEN;
                        (fits && !full, data.len())
                    }
                };
                if room {
                    let chunk = data[done..done + n].to_vec();
                    p.rx_bytes += chunk.len();
                    let charge = chunk.len() + OVERHEAD;
                    self.wmem.fetch_add(charge, Ordering::AcqRel);
                    p.rx.push_back(Msg {
                        data: chunk,
                        pos: 0,
                        rights: std::mem::take(&mut rights),
                        cred,
                        from: if self.connection() { None } else { from.clone() },
                        charge,
                        sender: Arc::downgrade(self),
                    });
                    done += n;
                    drop(p);
                    peer.queue.notify_events(events::IN);
                    if done == data.len() {
                        return Ok(done);
                    }
                    continue;
                }
            }
            if nonblock {
                return if done > 0 { Ok(done) } else { Err(Errno::EAGAIN) };
            }
            if t.wait_kick(None).is_err() {
                return if done > 0 { Ok(done) } else { Err(Errno::ERESTARTSYS) };
            }
        }
    }

    /// Receives up to `max` bytes (`peek`: leaves them; `waitall`: a
    /// stream read waits for all of them).
    pub fn recv(
        &self,
        t: &Task,
        nonblock: bool,
        max: usize,
        peek: bool,
        waitall: bool,
    ) -> Result<Received, Errno> {
        let _reg = (!nonblock).then(|| self.queue.register(&t.shared, events::IN));
        let mut out = Received::default();
        loop {
            {
                let mut i = self.lock();
                if i.listening {
                    return Err(Errno::EINVAL);
                }
                if self.kind == SOCK_STREAM {
                    Self::take_stream(&mut i, &mut out, max, peek);
                    let done = out.data.len();
                    let enough = done > 0 && (!waitall || peek || done >= max || !out.rights.is_empty());
                    if enough || max == 0 {
                        out.len = out.data.len();
                        drop(i);
                        if !peek {
                            self.notify_writer();
                        }
                        return Ok(out);
                    }
                } else if let Some(m) = i.rx.front() {
                    let n = m.left().min(max);
                    out.data = m.data[..n].to_vec();
                    out.len = m.data.len();
                    out.cred = m.cred;
                    out.from = m.from.clone();
                    if !peek {
                        if let Some(mut m) = i.rx.pop_front() {
                            i.rx_bytes -= m.data.len();
                            out.rights = std::mem::take(&mut m.rights);
                        }
                    } else {
                        out.rights = m.rights.clone();
                    }
                    drop(i);
                    if !peek {
                        self.notify_writer();
                    }
                    return Ok(out);
                }
                // Nothing (more) to read.
                if let Some(e) = i.err.take() {
                    if out.data.is_empty() {
                        return Err(e);
                    }
                }
                // A peer that closed set our shutdown to both directions.
                if i.shut & RCV != 0 {
                    out.len = out.data.len();
                    return Ok(out);
                }
                if self.connection() && !i.connected {
                    return Err(if self.kind == SOCK_STREAM { Errno::EINVAL } else { Errno::ENOTCONN });
                }
            }
            if nonblock {
                if !out.data.is_empty() {
                    out.len = out.data.len();
                    return Ok(out);
                }
                return Err(Errno::EAGAIN);
            }
            if t.wait_kick(None).is_err() {
                if !out.data.is_empty() {
                    out.len = out.data.len();
                    return Ok(out);
                }
                return Err(Errno::ERESTARTSYS);
            }
        }
    }

    /// Takes stream bytes: across messages, stopping after one that
    /// carries descriptors and before one that carries some once bytes
    /// were read.
    fn take_stream(i: &mut Inner, out: &mut Received, max: usize, peek: bool) {
        let mut idx = 0;
        while out.data.len() < max {
            let Some(m) = i.rx.get_mut(idx) else { break };
            if !m.rights.is_empty() && !out.data.is_empty() {
                break;
            }
            if out.data.is_empty() {
                out.cred = m.cred;
            }
            let n = m.left().min(max - out.data.len());
            out.data.extend_from_slice(&m.data[m.pos..m.pos + n]);
            let had_rights = !m.rights.is_empty();
            if peek {
                out.rights.extend(m.rights.iter().cloned());
                idx += 1;
            } else {
                m.pos += n;
                i.rx_bytes -= n;
                out.rights.append(&mut m.rights);
                if m.left() == 0 {
                    i.rx.pop_front();
                }
            }
            if had_rights {
                break;
            }
        }
    }

    /// Room was made: blocked writers wait on our queue, writers polling
    /// their own socket on theirs.
    fn notify_writer(&self) {
        self.queue.notify_events(events::OUT);
        let peer = self.lock().peer.as_ref().and_then(Weak::upgrade);
        if let Some(p) = peer {
            p.queue.notify_events(events::OUT);
        }
    }

    /// Readiness, as `unix_poll`/`unix_dgram_poll`.
    pub fn readiness(&self, mask: u32) -> u32 {
        let (mut r, peer, sndbuf, may_write) = {
            let i = self.lock();
            let mut r = 0;
            if i.err.is_some() {
                r |= events::ERR;
            }
            if i.shut == RCV | SEND {
                r |= events::HUP;
            }
            if i.shut & RCV != 0 {
                r |= events::RDHUP | events::IN | events::RDNORM;
            }
            if !i.rx.is_empty() || (i.listening && !i.pending.is_empty()) {
                r |= events::IN | events::RDNORM;
            }
            if self.connection() && !i.listening && !i.connected {
                // Linux's TCP_CLOSE state.
                r |= events::HUP;
            }
            (r, i.peer.as_ref().and_then(Weak::upgrade), i.sndbuf, !i.listening)
        };
        // The peer is looked at with our lock released (it may be looking
        // at us). Writable as Linux's unix_writable: a quarter of the send
        // buffer or less in flight, and for a connected datagram socket a
        // receiver with room (unless it is connected back to us).
        let writable = may_write
            && self.wmem.load(Ordering::Acquire) * 4 <= sndbuf
            && (self.kind != SOCK_DGRAM
                || peer.as_ref().is_none_or(|p| {
                    let p = p.lock();
                    let back = p.peer.as_ref().is_some_and(|w| std::ptr::eq(w.as_ptr(), self));
                    back || p.rx.len() <= MAX_DGRAM_QLEN
                }));
        if writable {
            r |= events::OUT | events::WRNORM | events::WRBAND;
        }
        r & (mask | events::ERR | events::HUP)
    }

    /// The socket's file is gone: tell the peer and forget the names.
    fn release(self: &Arc<Self>) {
        let (peer, pending, had_data, name) = {
            let mut i = self.lock();
            i.closed = true;
            let had = !i.rx.is_empty();
            i.rx.clear();
            i.rx_bytes = 0;
            (i.peer.take().and_then(|w| w.upgrade()), std::mem::take(&mut i.pending), had, i.name.clone())
        };
        match name {
            Some(Name::Abstract(a)) => {
                let mut t = table(&ABSTRACT);
                if t.get(&a).is_some_and(|w| std::ptr::eq(w.as_ptr(), Arc::as_ptr(self))) {
                    t.remove(&a);
                }
            }
            Some(Name::Path(_)) => {
                table(&PATHS)
                    .retain(|_, w| !std::ptr::eq(w.as_ptr(), Arc::as_ptr(self)) && w.strong_count() > 0);
            }
            None => {}
        }
        for s in pending {
            s.release();
        }
        if let (true, Some(p)) = (self.connection(), peer) {
            {
                let mut pi = p.lock();
                pi.shut = RCV | SEND;
                if had_data {
                    pi.err = Some(Errno::ECONNRESET);
                }
            }
            p.queue.notify();
        }
        self.queue.notify();
    }
}

/// A socket's file operations.
pub struct UnixFile {
    /// The socket.
    pub sock: Arc<Sock>,
}

impl Drop for UnixFile {
    fn drop(&mut self) {
        self.sock.release();
    }
}

impl FileOps for UnixFile {
    fn read(&self, t: &Task, file: &File, buf: &mut [u8], _off: Option<u64>) -> Result<usize, Errno> {
        let r = self.sock.recv(t, file.nonblocking(), buf.len(), false, false)?;
        buf[..r.data.len()].copy_from_slice(&r.data);
        Ok(r.data.len())
    }

    fn write(&self, t: &Task, file: &File, data: &[u8], _off: Option<u64>) -> Result<usize, Errno> {
        let cred = creds_of(t);
        self.sock.send(t, file.nonblocking(), data, Vec::new(), cred, None)
    }

    fn stat(&self) -> Result<Stat, Errno> {
        Ok(Stat { ino: self.sock.ino, mode: 0o140777, nlink: 1, blksize: 4096, ..Stat::default() })
    }

    fn readiness(&self, _file: &File, mask: u32) -> u32 {
        self.sock.readiness(mask)
    }

    fn wait_queue(&self) -> Option<&WaitQueue> {
        Some(&self.sock.queue)
    }

    fn socket(&self) -> Option<&Arc<Sock>> {
        Some(&self.sock)
    }

    fn link_name(&self) -> Option<String> {
        Some(format!("socket:[{}]", self.sock.ino))
    }
}

/// The credentials a task's messages carry.
pub fn creds_of(t: &Task) -> Ucred {
    let c = t.tg().creds();
    Ucred { pid: t.tgid(), uid: c.ruid, gid: c.rgid }
}

/// SO_PEERCRED's view of a task: effective ids.
pub fn peer_creds_of(t: &Task) -> Ucred {
    let c = t.tg().creds();
    Ucred { pid: t.tgid(), uid: c.euid, gid: c.egid }
}

/// A new socket's file; `flags` may hold `O_NONBLOCK`.
pub fn new_file(kind: i32, flags: u32) -> (Arc<File>, Arc<Sock>) {
    let sock = Sock::new(kind);
    (file_of(sock.clone(), flags), sock)
}

/// The file of an existing socket (an accepted connection).
pub fn file_of(sock: Arc<Sock>, flags: u32) -> Arc<File> {
    File::new(Box::new(UnixFile { sock }), O_RDWR | (flags & O_NONBLOCK))
}

/// `socketpair`: two connected sockets, both with `cred` as their peer's.
pub fn pair(kind: i32, flags: u32, cred: Ucred) -> (Arc<File>, Arc<File>) {
    let (a, b) = (Sock::new(kind), Sock::new(kind));
    for (x, y) in [(&a, &b), (&b, &a)] {
        let mut i = x.lock();
        i.peer = Some(Arc::downgrade(y));
        i.connected = true;
        i.peer_cred = Some(cred);
    }
    (file_of(a, flags), file_of(b, flags))
}
