//! System calls for the sandbox's init whose failure is expected and acted on: the init shares
//! the launcher thread's memory and with it glibc's `errno` (see [`super::clone_sharing_memory`]),
//! which the launcher, running meanwhile, sets too (std's `readdir` sets it to 0 before each
//! call). An error read from `errno` may be the launcher's, and the launcher may read the init's.
//! rustix's raw system calls return the error instead and leave `errno` alone. No allocation.

use std::ffi::CStr;

use nix::errno::Errno;
use rustix::mount::{MountFlags, UnmountFlags};

/// rustix's error as nix's, for the callers that speak nix.
pub(super) fn errno(err: rustix::io::Errno) -> Errno {
    Errno::from_raw(err.raw_os_error())
}

/// `umount2(MNT_DETACH)` of every mount stacked at `path`, until it is no mount point or the
/// kernel refuses (`EINVAL`), or it is missing (`ENOENT`). Whether a mount is left there (one
/// locked in a user namespace, which the kernel answers with `EINVAL` too).
pub fn detach_all(path: &CStr) -> Result<bool, Errno> {
    loop {
        match rustix::mount::unmount(path, UnmountFlags::DETACH) {
            Ok(()) => {}
            Err(err) if err == rustix::io::Errno::INVAL => return Ok(is_mount_root(path)),
            Err(err) if err == rustix::io::Errno::NOENT => return Ok(false),
            Err(err) => return Err(errno(err)),
        }
    }
}

/// Whether `path` is the root of a mount (`statx`'s `STATX_ATTR_MOUNT_ROOT`, Linux 5.8; before,
/// its device differs from its parent's).
fn is_mount_root(path: &CStr) -> bool {
    use rustix::fs::{AtFlags, StatxAttributes, StatxFlags, CWD};
    let flags = AtFlags::NO_AUTOMOUNT | AtFlags::SYMLINK_NOFOLLOW;
    let Ok(stat) = rustix::fs::statx(CWD, path, flags, StatxFlags::empty()) else { return false };
    if stat.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT) {
        return stat.stx_attributes.contains(StatxAttributes::MOUNT_ROOT);
    }
    // The parent: `path` with its last component cut, on a stack buffer.
    let bytes = path.to_bytes();
    let Some(slash) = bytes.iter().rposition(|&b| b == b'/') else { return false };
    let mut parent = [0u8; 256];
    let parent_len = slash.max(1);
    let Some(room) = parent.get_mut(..=parent_len) else { return false };
    room[..parent_len].copy_from_slice(&bytes[..parent_len]);
    let Ok(parent) = CStr::from_bytes_with_nul(&parent[..=parent_len]) else { return false };
    rustix::fs::statx(CWD, parent, flags, StatxFlags::empty())
        .is_ok_and(|above| (above.stx_dev_major, above.stx_dev_minor) != (stat.stx_dev_major, stat.stx_dev_minor))
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
