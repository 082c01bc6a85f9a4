//! The launcher's side of `fs = overlay`: taking a descriptor of the run's layer from the init
//! while it sets up, and reading the run's changes from it once the run has ended.
//!
//! The layer is a tmpfs mounted only in the run's mount namespace, which ends with the run:
//! after `pivot_root` not even the init reaches it by path. So the init opens it during set-up
//! and, before the command starts, the launcher opens `/proc/<init>/fd/<n>` (a handshake over
//! the report and "go" pipes, see [`crate::init::InitArgs::layer_fd`]); the init then closes
//! its own, so that the command never has it. The launcher's descriptor keeps the layer alive
//! after the namespace is gone, until the changes are read and it is closed (before the run's
//! cgroup, which its pages are charged to, is removed).

use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd, RawFd};
use std::path::PathBuf;

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use crate::config::HostWrites;
use crate::fs_changes::{self, FsChange, Tree, XattrNamespace};
use crate::init::Report;
use crate::sys;

use super::error::io_error;
use super::Error;

/// An overlay run's layer, as the launcher holds it.
pub(crate) struct Layer {
    /// `/proc/<init>/fd/<n>`, made before "go" (the launcher allocates nothing after it until
    /// an init sharing its memory has started the command).
    proc_path: CString,
    /// Taken once the init has set up.
    fd: Option<OwnedFd>,
    trees: Vec<Tree>,
    xattrs: XattrNamespace,
    /// The run's policy, for the outcome.
    pub(crate) host_writes: HostWrites,
    keep_changes: Option<PathBuf>,
}

impl Layer {
    pub(crate) fn new(
        init: Pid,
        init_fd: RawFd,
        trees: Vec<Tree>,
        rootless: bool,
        host_writes: HostWrites,
        keep_changes: Option<PathBuf>,
    ) -> Layer {
        let proc_path = CString::new(format!("/proc/{init}/fd/{init_fd}")).expect("no NUL in a /proc path");
        let xattrs = if rootless { XattrNamespace::User } else { XattrNamespace::Trusted };
        Layer { proc_path, fd: None, trees, xattrs, host_writes, keep_changes }
    }

    /// Waits for the init's [`Report::LayerReady`] and opens the layer. Any other report is
    /// the set-up failure it names (`failure` turns it into an error); an init that ends
    /// without one failed before it could say why.
    pub(crate) fn take(
        &mut self,
        reports: BorrowedFd<'_>,
        init: BorrowedFd<'_>,
        failure: impl Fn(Report) -> Option<Error>,
    ) -> Result<(), Error> {
        let unexpected = || io_error("setting up the overlay")(Errno::EPROTO);
        loop {
            match Report::read_from(reports) {
                Ok(Some(Report::LayerReady)) => break,
                Ok(Some(report)) => return Err(failure(report).unwrap_or_else(unexpected)),
                Ok(None) => return Err(io_error("setting up the overlay (the sandbox's init ended)")(Errno::ESRCH)),
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => {
                    let (report_ready, init_ended) =
                        sys::poll_either(reports, Some(init), None).map_err(io_error("waiting for the sandbox's set-up"))?;
                    if init_ended && !report_ready {
                        // Its last words may have arrived meanwhile.
                        if let Ok(Some(report)) = Report::read_from(reports) {
                            return Err(failure(report).unwrap_or_else(unexpected));
                        }
                        return Err(io_error("setting up the overlay (the sandbox's init ended)")(Errno::ESRCH));
                    }
                }
                Err(errno) => return Err(io_error("reading the sandbox's reports")(errno)),
            }
        }
        let flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
        let fd = nix::fcntl::open(self.proc_path.as_c_str(), flags, Mode::empty())
            .map_err(io_error("opening the overlay's layer through /proc/<init>/fd"))?;
        // SAFETY: `open` just returned this descriptor, owned by nobody else.
        self.fd = Some(unsafe { sys::own_fd(fd) });
        Ok(())
    }

    /// Reads what the run changed (and copies it out, with `keep_changes`), then lets the
    /// layer go.
    pub(crate) fn finish(mut self) -> Result<Vec<FsChange>, Error> {
        let Some(fd) = self.fd.take() else { return Ok(Vec::new()) };
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
