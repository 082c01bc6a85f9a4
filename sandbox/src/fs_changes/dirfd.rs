//! File system calls relative to open directory descriptors, for the walk of the layer and
//! the host: the lookups `nix` wraps, with "not there" as `None`, and the two it does not
//! (`fgetxattr`, `name_to_handle_at`).

use std::ffi::{CStr, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AtFlags, OFlag};
use nix::sys::stat::{FileStat, Mode};
use nix::NixPath;

/// A kernel file handle, as `name_to_handle_at` gives it and an overlay's `origin` stores it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct FileHandle {
    pub(super) handle_type: i32,
    pub(super) bytes: Vec<u8>,
}

/// The handle of `name` in `dir` (not followed), as overlayfs encodes a lower file's: `None`
/// where the file system has none.
pub(super) fn file_handle(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<FileHandle>> {
    /// `MAX_HANDLE_SZ` of `<fcntl.h>`.
    const MAX_HANDLE_LEN: usize = 128;
    /// `struct file_handle` with room for the largest handle.
    #[repr(C)]
    struct RawHandle {
        handle_bytes: libc::c_uint,
        handle_type: libc::c_int,
        f_handle: [u8; MAX_HANDLE_LEN],
    }
    let mut raw = RawHandle { handle_bytes: MAX_HANDLE_LEN as libc::c_uint, handle_type: 0, f_handle: [0; MAX_HANDLE_LEN] };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: `raw` is a `struct file_handle` with room for the `handle_bytes` it announces,
    // `name` is a C string, `mount_id` an int for the kernel to write; no flags.
    let result = unsafe {
        libc::syscall(libc::SYS_name_to_handle_at, dir.as_raw_fd(), name.as_ptr(), &raw mut raw, &raw mut mount_id, 0)
    };
    match Errno::result(result) {
        Ok(_) => {
            let len = usize::try_from(raw.handle_bytes).map_or(0, |len| len.min(MAX_HANDLE_LEN));
            Ok(Some(FileHandle { handle_type: raw.handle_type, bytes: raw.f_handle[..len].to_vec() }))
        }
        Err(Errno::EOPNOTSUPP | Errno::EOVERFLOW) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

/// The value of the xattr `name` of `fd`; `None` when it has none.
pub(super) fn xattr(fd: BorrowedFd<'_>, name: &CStr) -> io::Result<Option<Vec<u8>>> {
    /// `XATTR_SIZE_MAX` of `<linux/limits.h>`.
    const MAX_LEN: usize = 64 * 1024;
    let mut value = vec![0; 256];
    loop {
        // SAFETY: `value` is valid for writes of its length; `name` is a C string.
        let len = unsafe { libc::fgetxattr(fd.as_raw_fd(), name.as_ptr(), value.as_mut_ptr().cast(), value.len()) };
        match Errno::result(len) {
            Ok(len) => {
                value.truncate(usize::try_from(len).unwrap_or(0));
                return Ok(Some(value));
            }
            Err(Errno::ENODATA | Errno::EOPNOTSUPP) => return Ok(None),
            Err(Errno::ERANGE) if value.len() < MAX_LEN => value.resize(MAX_LEN, 0),
            Err(error) => return Err(error.into()),
        }
    }
}

/// Opens `path` below `dir`, not following a symlink at its end.
pub(super) fn open_at<P: ?Sized + NixPath>(dir: BorrowedFd<'_>, path: &P, flags: OFlag) -> io::Result<OwnedFd> {
    let fd = nix::fcntl::openat(Some(dir.as_raw_fd()), path, flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: a successful `openat` returned a new descriptor that nothing else owns.
    Ok(unsafe { crate::sys::own_fd(fd) })
}

pub(super) fn open_dir_at<P: ?Sized + NixPath>(dir: BorrowedFd<'_>, path: &P) -> io::Result<OwnedFd> {
    open_at(dir, path, OFlag::O_RDONLY | OFlag::O_DIRECTORY)
}

/// [`open_dir_at`], `None` when there is no directory at `path`.
pub(super) fn open_dir_if_any(dir: BorrowedFd<'_>, path: &Path) -> io::Result<Option<OwnedFd>> {
    match open_dir_at(dir, path) {
        Ok(fd) => Ok(Some(fd)),
        Err(error) if matches!(error.raw_os_error(), Some(libc::ENOENT | libc::ENOTDIR | libc::ELOOP)) => Ok(None),
        Err(error) => Err(error),
    }
}

/// Opens a host directory by its path in the caller's view.
pub(super) fn open_dir(path: &Path) -> io::Result<OwnedFd> {
    let fd = nix::fcntl::open(path, OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, Mode::empty())?;
    // SAFETY: a successful `open` returned a new descriptor that nothing else owns.
    Ok(unsafe { crate::sys::own_fd(fd) })
}

/// `lstat` of `path` below `dir`; `None` when there is nothing there.
pub(super) fn stat_at<P: ?Sized + NixPath>(dir: BorrowedFd<'_>, path: &P) -> io::Result<Option<FileStat>> {
    match nix::sys::stat::fstatat(Some(dir.as_raw_fd()), path, AtFlags::AT_SYMLINK_NOFOLLOW) {
        Ok(stat) => Ok(Some(stat)),
        Err(Errno::ENOENT | Errno::ENOTDIR) => Ok(None),
        Err(error) => Err(error.into()),
    }
}

pub(super) fn readlink_at(dir: BorrowedFd<'_>, name: &CStr) -> io::Result<OsString> {
    Ok(nix::fcntl::readlinkat(Some(dir.as_raw_fd()), name)?)
}

/// Fills `buffer` from `file`, short only at its end; returns the bytes read.
pub(super) fn read_full(file: &mut File, buffer: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}
