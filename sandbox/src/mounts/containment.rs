//! A contained run's mounts: a cgroup namespace that shows the run its own cgroup and nothing
//! above it, and the kernel's knobs read-only.
//!
//! The problem: as root, a command that sees the host's cgroup mounts can move itself out of its
//! cgroup with one write to `cgroup.procs` (and out of every limit with it), raise its own
//! `pids.max`, or mount a v1 hierarchy and write its `release_agent`. The fix has three parts:
//! - the run's limits are written in its cgroup, and its processes live one level below, in the
//!   [`DELEGATED_DIR`](crate::cgroup::DELEGATED_DIR) (the launcher makes both);
//! - after joining that directory the init enters a new cgroup namespace rooted at it
//!   ([`Step::CgroupNamespace`]) and mounts each hierarchy the run has limits in where the host
//!   has it: the kernel roots such a mount at the namespace's root, so every path ends at the
//!   run's delegated directory, and a hierarchy's root files (`release_agent`) are not there (on
//!   v1 the run is in a cgroup of its own, or one it cannot write, in every other hierarchy too,
//!   so that one the command mounts itself is rooted there: `cgroup::v1`, `cgroup::shared`);
//! - the host's cgroup mounts are detached ([`Step::Detach`]), so that the run's mount table
//!   shows its own cgroup mounts only (a sandbox nested in the run reads its layout there); the
//!   host's `/proc` stays below the run's, which covers it. Neither can be reached from inside:
//!   the command's user namespace locks every mount it inherits, and the kernel refuses to
//!   unmount a locked mount, or to bind a tree without the locked mounts on it (`EINVAL`), so
//!   nothing below them is revealed (`/proc/1/ns/cgroup` of the host's init would let root
//!   `setns` back out).
//!
//! The race: the namespace must be entered after the init is in its cgroup (the namespace's
//! root is the cgroup the caller is in), which on v1 is only after the launcher's "go"; these
//! steps therefore run last, after the join ([`super::Plan::in_cgroup_from`]).
//!
//! The knobs: `/proc/sys`, `/proc/sysrq-trigger` and `/sys` with every mount below it are
//! read-only, so that a test as root that sets `kernel.core_pattern` for its own crash tests, or
//! writes a sysfs attribute, gets `EROFS` instead of changing the machine. The command keeps
//! `CAP_SYS_ADMIN` (tests mount a tmpfs, make a network namespace), but in a user namespace of
//! its own (`sys::user_namespace`), entered after these steps: the kernel locks every mount made
//! here for it, so it can neither unmount them nor remount them writable, nor mount a `/proc`
//! of its own while these masks cover the one it has. Every remount here is a bind remount (a
//! mount's own flags): the seccomp filter refuses a superblock's, to the init of a sandbox
//! nested in a contained run too.

use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::{cstring, Step};
use crate::cgroup::{NamespaceMount, NAMESPACE_MOUNT_SOURCE};

/// Where cgroup hierarchies are mounted on every current distribution.
pub(super) const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Steps before the join, after `/proc` is mounted: the host's cgroup mounts detached (`at`
/// gives a path's place before `pivot_root`), the knobs read-only and, for v1, a read-only tmpfs
/// holding a mount point per hierarchy. `exists` says whether the new root has `/sys/fs/cgroup`
/// at all, `sys_mount` whether its `/sys` is a mount.
pub(super) fn push_before_join(
    steps: &mut Vec<Step>,
    mounts: &[NamespaceMount],
    exists: bool,
    sys_mount: bool,
    at: &dyn Fn(&Path) -> PathBuf,
) {
    let root = Path::new(CGROUP_ROOT);
    if exists {
        // One recursive detach takes the tmpfs and every hierarchy below it (v1), or the
        // cgroup2 mount itself (v2); hierarchies mounted elsewhere go one by one.
        steps.push(Step::Detach(cstring(at(root))));
        for mount in mounts.iter().filter(|mount| !mount.mount_point.starts_with(root)) {
            steps.push(Step::Detach(cstring(at(&mount.mount_point))));
        }
    }
    // The run's /proc shows what the host's does: a knob the kernel lacks (sysrq without
    // CONFIG_MAGIC_SYSRQ) costs no step.
    for knob in ["/proc/sys", "/proc/sysrq-trigger"].into_iter().filter(|knob| Path::new(knob).exists()) {
        steps.push(Step::ReadOnlyPath(cstring(at(Path::new(knob)))));
    }
    // Before the run's own cgroup mounts, which stay writable.
    if sys_mount {
        let sysfs_flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        steps.push(Step::ReadOnlyTree { target: cstring(at(Path::new("/sys"))), flags: sysfs_flags });
    }
    if !exists {
        return;
    }
    let v1: Vec<&NamespaceMount> =
        mounts.iter().filter(|mount| mount.fstype == "cgroup" && mount.mount_point.starts_with(root)).collect();
    if v1.is_empty() {
        return;
    }
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    steps.push(Step::Mount {
        source: cstring("tmpfs"),
        target: cstring(at(root)),
        fstype: Some(cstring("tmpfs")),
        flags,
        data: Some(cstring("mode=755,size=64k")),
    });
    for mount in &v1 {
        steps.push(Step::Mkdir(cstring(at(&mount.mount_point))));
        // `cpu` and `cpuacct` beside `cpu,cpuacct`, where the host has those links.
        for controller in mount.options.iter().flat_map(|options| options.split(',')) {
            let link = root.join(controller);
            if link.as_path() != mount.mount_point {
                if let Ok(target) = std::fs::read_link(&link) {
                    steps.push(Step::Symlink(cstring(at(&link)), cstring(target)));
                }
            }
        }
    }
    steps.push(Step::Mount {
        source: cstring("tmpfs"),
        target: cstring(at(root)),
        fstype: None,
        flags: flags | MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY,
        data: None,
    });
}

/// Steps after the join, with paths as the command sees them: the namespace, then its mounts.
pub(super) fn push_in_cgroup(steps: &mut Vec<Step>, mounts: &[NamespaceMount], exists: bool) {
    steps.push(Step::CgroupNamespace);
    if !exists {
        return;
    }
    for mount in mounts {
        steps.push(Step::Mount {
            source: cstring(NAMESPACE_MOUNT_SOURCE),
            target: cstring(&mount.mount_point),
            fstype: Some(cstring(mount.fstype)),
            flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
            data: mount.options.as_deref().map(cstring),
        });
    }
}
