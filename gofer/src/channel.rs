//! Sending and receiving one protocol message, with at most one descriptor,
//! over a `SOCK_SEQPACKET` socket.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use crate::protocol::MAX_MESSAGE;

/// Sends `msg`, passing `fd` along when given.
pub fn send(sock: BorrowedFd<'_>, msg: &[u8], fd: Option<BorrowedFd<'_>>) -> std::io::Result<()> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut anc = SendAncillaryBuffer::new(&mut space);
    let fds;
    if let Some(fd) = fd {
        fds = [fd];
        anc.push(SendAncillaryMessage::ScmRights(&fds));
    }
    loop {
        match sendmsg(sock, &[IoSlice::new(msg)], &mut anc, SendFlags::NOSIGNAL) {
            Ok(n) if n == msg.len() => return Ok(()),
            Ok(_) => return Err(std::io::Error::other("short send on a message socket")),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// A received message and the descriptor that came with it, if any.
#[derive(Debug)]
pub struct Received {
    /// The message bytes (empty: the peer closed the channel).
    pub msg: Vec<u8>,
    /// A descriptor passed along.
    pub fd: Option<OwnedFd>,
    /// The message was cut (longer than the buffer) or carried more than
    /// one descriptor: it must be rejected.
    pub malformed: bool,
}

/// Receives one message (blocking).
pub fn recv(sock: impl AsFd) -> std::io::Result<Received> {
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    loop {
        let mut anc = RecvAncillaryBuffer::new(&mut space);
        let r = recvmsg(&sock, &mut [IoSliceMut::new(&mut buf)], &mut anc, RecvFlags::CMSG_CLOEXEC);
        let r = match r {
            Ok(r) => r,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        let mut fds: Vec<OwnedFd> = Vec::new();
        for m in anc.drain() {
            if let RecvAncillaryMessage::ScmRights(it) = m {
                fds.extend(it);
            }
        }
        let cut = r.flags.contains(rustix::net::ReturnFlags::TRUNC)
            || r.flags.contains(rustix::net::ReturnFlags::CTRUNC);
        let malformed = cut || fds.len() > 1;
        buf.truncate(r.bytes);
        return Ok(Received { msg: buf, fd: if malformed { None } else { fds.pop() }, malformed });
    }
}
