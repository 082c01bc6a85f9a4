//! The user namespace a contained run's command enters as root: every user and group but one
//! mapped to itself, so that files, owners and `chown` look as they do outside, while the
//! capabilities its root holds reach only what that namespace owns.
//!
//! The problem: as root in the machine's user namespace a command keeps `CAP_SYS_ADMIN` over
//! the machine (a test mounts a tmpfs, makes a network namespace), and with it it can mount a
//! `/proc` of its own and write `kernel.core_pattern`, or unmount the read-only masks it was
//! given. In a user namespace of its own the same root may mount and unmount only in a mount
//! namespace that namespace owns, and the kernel locks every mount it inherited there
//! (`MNT_LOCKED`, read-only flags included): the masks stay, and a new `/proc` is refused while
//! masks cover the one it has.
//!
//! The race: a namespace's maps must be written from its parent namespace by a process with
//! `CAP_SETUID` there, and the command's process, once in it, has no rights in its parent. So a
//! holder process is created in a new namespace, its maps are written from outside, the
//! namespace is kept open as a descriptor, and the holder exits; the command later `setns`es
//! into that descriptor. One namespace serves every contained run of a process (what a run's
//! root may reach there is only what its own run's namespaces own: it sees no other run's
//! processes to join their namespaces through).
//!
//! One ID is left out of the map: the highest of this process's namespace
//! ([`withheld_ids`]). A file it owns is one the command's root neither owns nor may override
//! its permissions on (the kernel grants that only over files whose owner the namespace maps),
//! so the cgroups that contained runs share are given to it (`cgroup::shared`).

use std::os::fd::{AsRawFd, OwnedFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;

use super::{clone_sharing_memory, ChildStack};

/// `setns(2)` into the user namespace `namespace`, then a mount namespace and a cgroup
/// namespace owned by it: the mounts inherited are locked, and the cgroup one, rooted where
/// the caller is, lets the command mount its own cgroups. For the command's process (one
/// thread, its own `fs_struct`: a vfork child or a fork). No allocation.
pub fn enter_user_namespace(namespace: std::os::fd::RawFd) -> Result<(), Errno> {
    // SAFETY: plain system calls with integer arguments.
    Errno::result(unsafe { libc::setns(namespace, libc::CLONE_NEWUSER) })?;
    // SAFETY: as above.
    Errno::result(unsafe { libc::unshare(libc::CLONE_NEWNS | libc::CLONE_NEWCGROUP) }).map(drop)
}

/// A new user namespace that maps every user and group to itself, owned by this process's
/// effective user (root: every capability in it is its). Every ID this process's own namespace
/// has (all of them in the machine's; a range in a container's) maps to the same ID, but the
/// highest ([`withheld_ids`]). See the module doc. `hand_on` gets it as soon as it is open,
/// while its holder still lives: the holder's exit and reaping come after, off the path of
/// whoever waits for the namespace. What `hand_on` returns is returned.
pub fn identity_user_namespace<R>(hand_on: impl FnOnce(OwnedFd) -> R) -> Result<R, Errno> {
    let (holder_waits, release) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let stack = ChildStack::new(64 * 1024)?;
    /// The holder: its copy of the pipe's write end closed, it waits for the launcher's.
    fn hold(&(waits, release): &(std::os::fd::RawFd, std::os::fd::RawFd)) -> ! {
        let mut byte = [0u8; 1];
        // SAFETY: closes the holder's own copy of a descriptor, then reads into a buffer on
        // this stack; the end of the pipe (EOF) is the sign.
        unsafe {
            libc::close(release);
            libc::read(waits, byte.as_mut_ptr().cast(), 1)
        };
        super::exit_immediately(0)
    }
    let waits = (holder_waits.as_raw_fd(), release.as_raw_fd());
    // SAFETY: the holder touches only its stack and `waits`, which stay alive and unchanged
    // until it is reaped below; it allocates nothing and ends in _exit.
    let (pid, _pidfd) = unsafe { clone_sharing_memory(CloneFlags::CLONE_NEWUSER, &stack, hold, &waits) }?;
    let written = own_maps().and_then(|own| {
        ["uid_map", "gid_map"].into_iter().zip(own).try_for_each(|(file, own)| {
            // Written whole in one call: the kernel takes a map in a single write only.
            std::fs::write(format!("/proc/{pid}/{file}"), identity_map(&own)).map_err(|err| errno_of(&err))
        })
    });
    let namespace = written.and_then(|()| {
        std::fs::File::open(format!("/proc/{pid}/ns/user")).map(OwnedFd::from).map_err(|err| errno_of(&err))
    });
    let handed_on = namespace.map(hand_on);
    drop(release);
    // The holder exits at the pipe's end; reaped here, before its stack goes. No allocation
    // from `hand_on` on (the caller may have handed the namespace to a process that shares
    // this memory and copies it).
    while let Err(Errno::EINTR) = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::__WALL)) {}
    drop(stack);
    handed_on
}

/// The map of a child namespace in which each ID of `own` (this namespace's map, as
/// `/proc/self/uid_map` shows it: `inside outside count` per line) is itself, but the one
/// [`withheld_id`] names.
fn identity_map(own: &str) -> String {
    let withheld = withheld_id(own);
    map_ranges(own)
        .filter_map(|(first, count)| {
            let count = if Some(first + count - 1) == withheld { count - 1 } else { count };
            (count > 0).then(|| format!("{first} {first} {count}\n"))
        })
        .collect()
}

/// Each range of a map as `(first ID in this namespace, count)`.
fn map_ranges(map: &str) -> impl Iterator<Item = (u64, u64)> + '_ {
    map.lines().filter_map(|line| {
        let mut fields = line.split_whitespace();
        let (first, _, count) = (fields.next()?.parse().ok()?, fields.next()?, fields.next()?.parse().ok()?);
        (count > 0).then_some((first, count))
    })
}

/// The highest ID of the map `own`, which a contained command's namespace leaves out; `None`
/// where the map has a single ID (leaving it out would leave none).
fn withheld_id(own: &str) -> Option<u64> {
    let total: u64 = map_ranges(own).map(|(_, count)| count).sum();
    (total > 1).then(|| map_ranges(own).map(|(first, count)| first + count - 1).max()).flatten()
}

/// The user and group ID of this process's namespace that a contained command's namespace does
/// not map (see the module doc): `4294967294` for both on the machine. `None` where the
/// namespace has a single ID.
pub fn withheld_ids() -> Option<(u32, u32)> {
    let [uids, gids] = own_maps().ok()?;
    let id = |own: &str| u32::try_from(withheld_id(own)?).ok();
    Some((id(&uids)?, id(&gids)?))
}

/// This process's `/proc/self/uid_map` and `gid_map`, read once per user namespace it is in
/// (in the machine's, known without reading):
/// the namespace and the owner of the shared cgroups are derived from the same maps, and a test
/// body, a copy of a fork server that read them, has entered a namespace of its own.
fn own_maps() -> Result<[String; 2], Errno> {
    static OWN: std::sync::Mutex<Option<(u64, [String; 2])>> = std::sync::Mutex::new(None);
    let namespace = user_namespace_inode()?;
    let mut own = OWN.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some((_, maps)) = own.as_ref().filter(|(read_in, _)| *read_in == namespace) {
        return Ok(maps.clone());
    }
    let maps = match namespace {
        // The machine's maps every ID to itself; the kernel fixes them (`init_user_ns`).
        INITIAL_USER_NAMESPACE_INODE => [INITIAL_MAP.to_string(), INITIAL_MAP.to_string()],
        _ => {
            let read = |file: &str| std::fs::read_to_string(format!("/proc/self/{file}")).map_err(|err| errno_of(&err));
            [read("uid_map")?, read("gid_map")?]
        }
    };
    *own = Some((namespace, maps.clone()));
    Ok(maps)
}

/// The inode number of the machine's initial user namespace (`PROC_USER_INIT_INO`).
const INITIAL_USER_NAMESPACE_INODE: u64 = 0xEFFF_FFFD;

/// Its `uid_map` and `gid_map`, as `/proc/self/uid_map` shows them there.
const INITIAL_MAP: &str = "         0          0 4294967295\n";

/// The inode number of this process's user namespace, which names it while it lives.
pub fn user_namespace_inode() -> Result<u64, Errno> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/user").map(|namespace| namespace.ino()).map_err(|err| errno_of(&err))
}

/// Whether this process is in a user namespace other than the machine's initial one (whose
/// inode number the kernel fixes: `PROC_USER_INIT_INO`), as a command of a contained run is:
/// root there, with every user mapped to itself, looks like root outside.
pub fn in_child_user_namespace() -> bool {
    user_namespace_inode().is_ok_and(|inode| inode != INITIAL_USER_NAMESPACE_INODE)
}

/// Whether `/proc` shows this process's own PID namespace: `/proc/self` names it by the
/// number it has there. Not so in a contained sandbox nested in another contained one, which
/// binds its parent's `/proc` (see `mounts::Step::Proc`).
pub fn proc_shows_own_pid_namespace() -> bool {
    std::fs::read_link("/proc/self")
        .ok()
        .and_then(|link| link.to_str()?.parse::<libc::pid_t>().ok())
        .is_some_and(|pid| pid == nix::unistd::getpid().as_raw())
}

fn errno_of(err: &std::io::Error) -> Errno {
    Errno::from_raw(err.raw_os_error().unwrap_or(libc::EIO))
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd;

    use super::*;
    use crate::sys::{in_forked_child, passed};

    #[test]
    fn the_initial_namespaces_maps_are_known_without_reading() {
        if in_child_user_namespace() {
            eprintln!("skipped: this process is not in the machine's initial user namespace");
            return;
        }
        for file in ["uid_map", "gid_map"] {
            assert_eq!(std::fs::read_to_string(format!("/proc/self/{file}")).unwrap(), INITIAL_MAP);
        }
        assert_eq!(own_maps().unwrap(), [INITIAL_MAP, INITIAL_MAP]);
    }

    /// The map as a process in the namespace reads it, on a stack buffer (the forked child of
    /// a multi-threaded harness must not allocate).
    fn own_uid_map_is_identity() -> bool {
        let mut text = [0u8; 128];
        // SAFETY: a NUL-terminated path; reads into a buffer on this stack.
        let read = unsafe {
            let fd = libc::open(c"/proc/self/uid_map".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
            let read = libc::read(fd, text.as_mut_ptr().cast(), text.len());
            libc::close(fd);
            read
        };
        let Ok(read) = usize::try_from(read) else { return false };
        let mut words = text[..read].split(|byte| byte.is_ascii_whitespace()).filter(|word| !word.is_empty());
        words.next() == Some(b"0") && words.next() == Some(b"0") && words.next() == Some(b"4294967294") && words.next().is_none()
    }

    #[test]
    fn the_command_enters_an_identity_mapped_namespace_of_its_own() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: making a user namespace whose maps map every user needs root");
            return;
        }
        assert!(!in_child_user_namespace(), "the harness runs in the machine's initial user namespace");
        let namespace = identity_user_namespace(|namespace| namespace).unwrap();
        let own = std::fs::read_link("/proc/self/ns/user").unwrap();
        let made = std::fs::read_link(format!("/proc/self/fd/{}", namespace.as_raw_fd())).unwrap();
        assert_ne!(own, made);
        let raw = namespace.as_raw_fd();
        // SAFETY: the check makes system calls only.
        let status = unsafe {
            in_forked_child(|| {
                enter_user_namespace(raw).is_ok() && in_child_user_namespace() && own_uid_map_is_identity()
                    // Root there: the capability to mount, in the mount namespace it owns.
                    && rustix::mount::mount_change(c"/", rustix::mount::MountPropagationFlags::PRIVATE).is_ok()
            })
        };
        assert!(passed(status), "{status:?}");
    }

    #[test]
    fn the_map_keeps_each_id_of_this_namespace_but_the_highest() {
        assert_eq!(identity_map("         0          0 4294967295\n"), "0 0 4294967294\n");
        assert_eq!(withheld_id("         0          0 4294967295\n"), Some(4294967294));
        // A rootless container's root and its subordinate range.
        assert_eq!(identity_map("0 1000 1\n1 100000 65536\n"), "0 0 1\n1 1 65535\n");
        assert_eq!(withheld_id("0 1000 1\n1 100000 65536\n"), Some(65536));
        // The highest ID alone in its range: the range goes.
        assert_eq!(identity_map("1 1001 9\n0 1000 1\n10 5000 1\n"), "1 1 9\n0 0 1\n");
        // A single ID is kept: nothing is withheld.
        assert_eq!(identity_map("0 1000 1\n"), "0 0 1\n");
        assert_eq!(withheld_id("0 1000 1\n"), None);
    }

    #[test]
    fn proc_shows_this_process() {
        assert!(proc_shows_own_pid_namespace());
    }
}
