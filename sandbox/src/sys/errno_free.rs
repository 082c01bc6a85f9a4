//! System calls for the sandbox's init whose failure is expected and acted on: the init shares
//! the launcher thread's memory and with it glibc's `errno` (see [`super::clone_sharing_memory`]),
//! which the launcher, running meanwhile, sets too (std's `readdir` sets it to 0 before each
//! call). An error read from `errno` may be the launcher's, and the launcher may read the init's.
//! rustix's raw system calls return the error instead and leave `errno` alone. No allocation.

use std::ffi::CStr;

use nix::errno::Errno;
use rustix::mount::{MountFlags, UnmountFlags};

fn errno(err: rustix::io::Errno) -> Errno {
    Errno::from_raw(err.raw_os_error())
}

/// `umount2(MNT_DETACH)` of every mount stacked at `path`, until it is no mount point (`EINVAL`)
/// or missing (`ENOENT`).
pub fn detach_all(path: &CStr) -> Result<(), Errno> {
    loop {
        match rustix::mount::unmount(path, UnmountFlags::DETACH) {
            Ok(()) => {}
            Err(err) if err == rustix::io::Errno::INVAL || err == rustix::io::Errno::NOENT => return Ok(()),
            Err(err) => return Err(errno(err)),
        }
    }
}

/// `path` bound onto itself and remounted read-only (`nosuid`, `nodev`, `noexec`); nothing where
/// it does not exist (`ENOENT`).
pub fn bind_read_only(path: &CStr) -> Result<(), Errno> {
    match rustix::mount::mount_bind(path, path) {
        Ok(()) => {}
        Err(err) if err == rustix::io::Errno::NOENT => return Ok(()),
        Err(err) => return Err(errno(err)),
    }
    let flags = MountFlags::BIND | MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    rustix::mount::mount_remount(path, flags, c"").map_err(errno)
}

/// `mkdir(2)` with `mode`; an existing entry is no error.
pub fn make_directory(path: &CStr, mode: u32) -> Result<(), Errno> {
    match rustix::fs::mkdir(path, rustix::fs::Mode::from_raw_mode(mode)) {
        Ok(()) => Ok(()),
        Err(err) if err == rustix::io::Errno::EXIST => Ok(()),
        Err(err) => Err(errno(err)),
    }
}

/// `mount(MS_BIND|MS_REMOUNT|MS_RDONLY)` of the mount at `target`, keeping `flags` (`nosuid`,
/// `nodev`, `noexec`, atime: a user namespace may not clear them).
pub fn remount_bind_read_only(target: &CStr, flags: nix::mount::MsFlags) -> Result<(), Errno> {
    let flags = MountFlags::from_bits_retain(flags.bits() as _) | MountFlags::BIND | MountFlags::RDONLY;
    rustix::mount::mount_remount(target, flags, c"").map_err(errno)
}

/// `mount(MS_MOVE)`: the mount at `source`, with every mount below it, moved to `target`.
pub fn move_mount(source: &CStr, target: &CStr) -> Result<(), Errno> {
    rustix::mount::mount_move(source, target).map_err(errno)
}

/// `mount(2)` of a new file system of type `fstype` on `target`, with `flags` and `data`.
pub fn mount_file_system(fstype: &CStr, target: &CStr, flags: nix::mount::MsFlags, data: &CStr) -> Result<(), Errno> {
    rustix::mount::mount(fstype, target, fstype, MountFlags::from_bits_retain(flags.bits() as _), data).map_err(errno)
}
