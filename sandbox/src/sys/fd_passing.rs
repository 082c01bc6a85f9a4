//! Handing an open directory from the sandbox's init to the launcher over a socket pair
//! (`SCM_RIGHTS`): the overlay's layer, which only the run's mount namespace has mounted.
//!
//! The descriptor in flight keeps the layer alive whatever the init does next: the init sends
//! it and goes on without waiting for an answer, and the launcher takes it when it reads the
//! run's changes, after the run (taking it through `/proc/<init>/fd/N` instead would need the
//! init to wait, with the descriptor open, until the launcher had it). A launcher that never
//! takes it closes its socket, and the kernel drops the descriptor with it.

use std::ffi::CStr;
use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;

use super::errno_free::errno;
use rustix::net::{
    AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, SendAncillaryBuffer, SendAncillaryMessage,
    SendFlags, SocketFlags, SocketType,
};

/// Opens the directory `path` (`O_PATH`), sends it on `socket`, and closes both: the socket
/// carries this one message. For the init: no allocation, no `errno`.
///
/// # Safety
/// `socket` must be an open descriptor that nothing else in this process owns or uses
/// afterwards (the init's end of [`fd_passing_pair`]): it is closed here.
pub unsafe fn send_directory(socket: RawFd, path: &CStr) -> Result<(), Errno> {
    // SAFETY: the caller hands over an open descriptor nobody else owns; it closes on drop.
    let socket = unsafe { OwnedFd::from_raw_fd(socket) };
    let flags = rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC;
    let dir = rustix::fs::open(path, flags, rustix::fs::Mode::empty()).map_err(errno)?;
    send_fd(socket.as_raw_fd(), dir.as_fd())
}

/// Sends `fd` on `socket` (one byte with it, `SCM_RIGHTS`), which stays open. No allocation, no
/// `errno`: for the init and the children it starts.
pub fn send_fd(socket: RawFd, fd: BorrowedFd<'_>) -> Result<(), Errno> {
    // SAFETY: borrowed for this call only; the kernel answers EBADF for a closed descriptor.
    let socket = unsafe { BorrowedFd::borrow_raw(socket) };
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    let fds = [fd];
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(socket, &[IoSlice::new(&[0])], &mut control, SendFlags::empty())
        .map(drop)
        .map_err(errno)
}

/// The descriptor sent on `socket`, if one was (the init got that far); never waits.
pub fn receive_fd(socket: BorrowedFd<'_>) -> Result<Option<OwnedFd>, Errno> {
    receive(socket, RecvFlags::DONTWAIT)
}

/// A connected pair of sequenced-packet sockets, closed on exec, over which a child hands one
/// descriptor to its parent: (the parent's end, the child's). Unlike a datagram pair, the
/// parent's end sees the end of the pair once every copy of the child's end is closed (the
/// child sent nothing and exec'd or exited). No allocation.
pub fn handover_pair() -> Result<(OwnedFd, OwnedFd), Errno> {
    rustix::net::socketpair(AddressFamily::UNIX, SocketType::SEQPACKET, SocketFlags::CLOEXEC, None)
        .map_err(errno)
}

/// Waits for the descriptor sent on the parent's end of a [`handover_pair`]: `None` when the
/// child's end was closed without one. No allocation.
pub fn wait_for_fd(socket: BorrowedFd<'_>) -> Result<Option<OwnedFd>, Errno> {
    receive(socket, RecvFlags::empty())
}

fn receive(socket: BorrowedFd<'_>, flags: RecvFlags) -> Result<Option<OwnedFd>, Errno> {
    let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut byte = [0u8; 1];
    match rustix::net::recvmsg(socket, &mut [IoSliceMut::new(&mut byte)], &mut control, flags | RecvFlags::CMSG_CLOEXEC) {
        Ok(_) => {}
        Err(err) if err == rustix::io::Errno::AGAIN => return Ok(None),
        Err(err) => return Err(errno(err)),
    }
    let received = control.drain().find_map(|message| match message {
        RecvAncillaryMessage::ScmRights(mut fds) => fds.next(),
        _ => None,
    });
    Ok(received)
}
