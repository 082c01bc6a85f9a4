//! The launcher's side of `fs = overlay`: the run's layer, sent by the init while it sets up,
//! and the run's changes read from it once the run has ended.
//!
//! The layer is a tmpfs mounted only in the run's mount namespace, which ends with the run:
//! after `pivot_root` not even the init reaches it by path. So the init opens it right after
//! mounting it and sends the descriptor over a socket pair (`sys::send_directory`), without
//! waiting for the launcher; the command never has it. The descriptor in flight, then the
//! launcher's, keeps the layer alive after the namespace is gone, until the changes are read and
//! it is closed (before the run's cgroup, which its pages are charged to, is removed).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use crate::config::HostWrites;
use crate::fs_changes::{self, FsChange, Tree, XattrNamespace};
use crate::sys;

use super::Error;

/// An overlay run's layer, as the launcher holds it.
pub(crate) struct Layer {
    /// The launcher's end of the socket the init sends the layer on.
    socket: OwnedFd,
    trees: Vec<Tree>,
    xattrs: XattrNamespace,
    /// The run's policy, for the outcome.
    pub(crate) host_writes: HostWrites,
    keep_changes: Option<PathBuf>,
}

impl Layer {
    pub(crate) fn new(
        socket: OwnedFd,
        trees: Vec<Tree>,
        rootless: bool,
        host_writes: HostWrites,
        keep_changes: Option<PathBuf>,
    ) -> Layer {
        let xattrs = if rootless { XattrNamespace::User } else { XattrNamespace::Trusted };
        Layer { socket, trees, xattrs, host_writes, keep_changes }
    }

    /// Reads what the run changed (and copies it out, with `keep_changes`), then lets the
    /// layer go.
    /// A run whose init failed before it sent the layer has none: nothing to read.
    pub(crate) fn finish(self) -> Result<Vec<FsChange>, Error> {
        let received = sys::receive_fd(self.socket.as_fd())
            .map_err(|errno| Error::Io { action: "taking the overlay's layer from the sandbox's init", source: errno.into() })?;
        let Some(fd) = received else { return Ok(Vec::new()) };
        let layer: BorrowedFd<'_> = fd.as_fd();
        let changes = fs_changes::read_changes(layer, &self.trees, self.xattrs)
            .map_err(|source| Error::Io { action: "reading the run's changes from its layer", source })?;
        if let Some(dest) = &self.keep_changes {
            fs_changes::keep_changes(layer, &self.trees, &changes, dest)
                .map_err(|source| Error::Io { action: "copying the run's changes out (--keep-changes)", source })?;
        }
        Ok(changes)
    }
}
