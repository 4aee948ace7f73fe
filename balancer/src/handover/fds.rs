//! One handover message over a Unix stream socket, with file descriptors riding along
//! (`SCM_RIGHTS`), and the peer's uid check (`SO_PEERCRED`). Blocking sockets with timeouts:
//! the conversation is four short lines.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;

use rustix::net::{
    RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};

use super::protocol::Message;

/// The most file descriptors one message carries (the three listeners, with room).
const MAX_FDS: usize = 8;
/// The longest line accepted.
const MAX_LINE: usize = 1024;

/// Sends `message` with `fds` (none for most messages) in one `sendmsg`.
pub fn send(stream: &UnixStream, message: &Message, fds: &[BorrowedFd<'_>]) -> std::io::Result<()> {
    let line = message.encode();
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() && !control.push(SendAncillaryMessage::ScmRights(fds)) {
        return Err(std::io::Error::other(
            "too many file descriptors for one message",
        ));
    }
    let sent = rustix::net::sendmsg(
        stream,
        &[IoSlice::new(&line)],
        &mut control,
        SendFlags::NOSIGNAL,
    )?;
    if sent != line.len() {
        return Err(std::io::Error::other(format!(
            "sent {sent} of {} bytes",
            line.len()
        )));
    }
    Ok(())
}

/// Receives one message and the file descriptors that came with it (in order). An end of stream
/// is an error: the peer went away mid-conversation.
pub fn recv(stream: &UnixStream) -> std::io::Result<(Message, Vec<OwnedFd>)> {
    let mut line = [0u8; MAX_LINE];
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let received = rustix::net::recvmsg(
        stream,
        &mut [IoSliceMut::new(&mut line)],
        &mut control,
        RecvFlags::CMSG_CLOEXEC,
    )?;
    let mut fds = Vec::new();
    for message in control.drain() {
        if let RecvAncillaryMessage::ScmRights(rights) = message {
            fds.extend(rights);
        }
    }
    if received.bytes == 0 {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the other balancer closed the handover connection",
        ));
    }
    let message = Message::decode(&line[..received.bytes])
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))?;
    Ok((message, fds))
}

/// The peer's pid when it runs as this process's uid; `Err` names both uids otherwise.
pub fn same_uid_peer(stream: &UnixStream) -> std::io::Result<u32> {
    let peer = rustix::net::sockopt::socket_peercred(stream)?;
    let ours = rustix::process::getuid();
    if peer.uid != ours {
        return Err(std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "the peer runs as uid {}, this balancer as uid {}",
                peer.uid.as_raw(),
                ours.as_raw()
            ),
        ));
    }
    Ok(peer.pid.as_raw_nonzero().get().unsigned_abs())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handover::protocol::Name;
    use std::os::fd::AsFd;

    #[test]
    fn a_listener_crosses_a_socket_pair_and_still_accepts() {
        let (a, b) = UnixStream::pair().unwrap();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let message = Message::Listeners(vec![Name::Listen]);
        send(&a, &message, &[listener.as_fd()]).unwrap();
        drop(listener);
        let (got, fds) = recv(&b).unwrap();
        assert_eq!(got, message);
        let [fd]: [OwnedFd; 1] = fds.try_into().unwrap();
        let received = std::net::TcpListener::from(fd);
        assert_eq!(received.local_addr().unwrap(), addr);
        let _client = std::net::TcpStream::connect(addr).unwrap();
        received.accept().unwrap();
        assert!(same_uid_peer(&a).unwrap() > 0);
        drop(a);
        assert!(recv(&b).is_err(), "the end of the stream is an error");
    }
}
