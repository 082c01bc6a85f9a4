//! The sandbox's file-system view, as a list of steps planned in the launcher and carried out
//! by the sandbox's init inside the new mount namespace.
//!
//! Planning happens before the clone, where allocating and failing with rich errors is fine;
//! the init only walks the list (no allocation, see [`crate::sys`]) and reports the index of a
//! failed step, which the launcher turns back into "mounting tmpfs on /tmp: EACCES".

use std::ffi::{CString, OsStr};
use std::os::unix::ffi::OsStrExt;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nix::errno::Errno;
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sys::stat::Mode;

use crate::cgroup::NamespaceMount;
use crate::config::{Config, FsMode, NetMode};
use crate::fs_changes::Tree;

mod containment;
mod overlay;
pub(crate) use overlay::OverlayInput;

/// Device nodes a `--rootfs` sandbox gets in its private `/dev`, bound from the host's.
const DEVICES: [&str; 6] = ["null", "zero", "full", "random", "urandom", "tty"];
/// The usual `/dev` symlinks into `/proc`.
const DEV_LINKS: [(&str, &str); 4] =
    [("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"), ("stderr", "/proc/self/fd/2")];

/// One action of the init's set-up, with every argument already a C string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Step {
    /// `sethostname(2)` in the new UTS namespace.
    SetHostname(CString),
    /// `mount --make-rprivate /`: nothing mounted later propagates back to the host, even when
    /// the host's `/` is a shared mount.
    MakeRootPrivate,
    /// `mount(2)`.
    Mount {
        /// Source device or path (`"proc"`, `"tmpfs"`, a bind source).
        source: CString,
        /// Mount point.
        target: CString,
        /// File-system type; `None` for binds and remounts.
        fstype: Option<CString>,
        /// Mount flags.
        flags: MsFlags,
        /// File-system options, e.g. `size=64m`.
        data: Option<CString>,
    },
    /// Opens a bind source (`O_PATH`) before anything is mounted, onto descriptor `fd` (which
    /// the launcher holds open, so the number is known when the plan is made). It must be opened
    /// here, inside the new mount namespace: the kernel binds only mounts of the caller's own.
    OpenSource {
        /// The source as the user gave it.
        path: CString,
        /// The descriptor number to put it on.
        fd: RawFd,
    },
    /// A user's `--bind`, mounted through `/proc/self/fd/N` of its [`Step::OpenSource`], so that
    /// a source the sandbox's own tmpfs hides (a host `/tmp/x` bound below the new `/tmp`)
    /// still works.
    BindFd {
        /// `/proc/self/fd/N`.
        fd_path: CString,
        /// The source as the user gave it, for messages.
        source: CString,
        /// Mount point.
        target: CString,
    },
    /// `mount(MS_BIND|MS_REMOUNT|MS_RDONLY)` of one host mount, keeping its `flags` (a user
    /// namespace may not clear them): one step per mount for [`FsMode::ReadOnly`]. A mount point
    /// the init cannot reach (`EACCES`, `ENOENT`: below a directory it may not search) is
    /// skipped: the command, with the same credentials, cannot reach it either.
    ReadOnlyMount {
        /// The mount point.
        target: CString,
        /// The mount's own flags (`nosuid`, `nodev`, `noexec`, atime).
        flags: MsFlags,
    },
    /// An overlay (`fs = overlay`): makes its `upper` and `work` directories in the layer, then
    /// mounts it on `target`. A `lower` the init may not reach (`EACCES`: a FUSE mount of
    /// another user) is left out: the command, with the same credentials, cannot reach it
    /// either.
    Overlay {
        /// The lower directory, for messages.
        lower: CString,
        /// Its upper directory in the layer.
        upper: CString,
        /// Its work directory in the layer.
        work: CString,
        /// Mount point.
        target: CString,
        /// The host mount's flags it keeps (`nosuid`, `nodev`, `noexec`).
        flags: MsFlags,
        /// `lowerdir=..,upperdir=..,workdir=..,<options>`.
        data: CString,
    },
    /// Opens the overlay's layer (`path`, right after it is mounted) and sends it to the
    /// launcher on `socket`, the init's end of a socket pair, which it closes: the launcher
    /// reads the run's changes from it after the run (see `sys::send_directory`).
    SendLayer {
        /// The layer's mount point.
        path: CString,
        /// The init's end of the socket pair.
        socket: RawFd,
    },
    /// `mount(MS_MOVE)` of a mount with everything below it, within the old tree before
    /// `pivot_root` (`fs = overlay`): `/dev` and `/sys` into the new root, a contained run's
    /// cgroup mounts out of `/sys` into the layer, which goes with the old tree. A move copies
    /// nothing, and what is moved into the new root is not left for the old tree's detach to take
    /// down. Where the kernel refuses (`EINVAL`: mounts locked by a user namespace, or `source`
    /// no mount point), bound recursively instead if `copy_if_refused`, else left where it is.
    Move {
        /// The mount point in the old tree.
        source: CString,
        /// Where it goes.
        target: CString,
        /// Bind it recursively where it cannot be moved.
        copy_if_refused: bool,
    },
    /// A new `proc` for the sandbox's PID namespace on `target`. Where the kernel refuses one
    /// (`EPERM`: in a user namespace, while the `/proc` this one started with has masks locked
    /// over it, as a contained run nested in another has) and `bind_if_refused`, that `/proc`
    /// is bound instead, with its masks: it shows the outer PID namespace, this sandbox's
    /// processes included, under the outer numbers.
    Proc {
        /// The mount point.
        target: CString,
        /// A contained run's: bind the `/proc` there is where a new one is refused.
        bind_if_refused: bool,
    },
    /// `mkdir(2)` with exactly this mode (a directory of the overlay's layer standing in for a
    /// host directory).
    Directory {
        /// The path.
        path: CString,
        /// Its permission bits.
        mode: u32,
    },
    /// `mkdir(2)` inside one of the sandbox's own tmpfs mounts (a mount point, `TMPDIR`).
    Mkdir(CString),
    /// Creates an empty file as the mount point of a file bind.
    CreateFile(CString),
    /// `symlink(2)`: link path, then target.
    Symlink(CString, CString),
    /// `chdir(2)`.
    Chdir(CString),
    /// `pivot_root(".", ".")`: the old root ends up stacked on the new one...
    PivotRoot,
    /// ...and `umount2(".", MNT_DETACH)` takes it away, out of reach of the sandbox.
    DetachOldRoot,
    /// Bring `lo` up in the new network namespace.
    LoopbackUp,
    /// `umount2(MNT_DETACH)` of the mounts at a path (all of them, where several are stacked)
    /// and everything below them, in this mount namespace only (see [`containment`]). A path
    /// that is no mount point is left. A mount the kernel will not let go (locked: a sandbox
    /// nested in a contained run, in its user namespace) stays, under an empty read-only tmpfs,
    /// so that what is mounted there next does not meet it (a cgroup2 mount on the root of
    /// another of the same superblock is `EBUSY`).
    Detach(CString),
    /// `unshare(CLONE_NEWCGROUP)`: a cgroup namespace rooted at the cgroup the init is in.
    CgroupNamespace,
    /// A path bound onto itself and remounted read-only: a kernel knob (`/proc/sys`,
    /// `/proc/sysrq-trigger`) the command may read but not write. A path the kernel does not
    /// have is left.
    ReadOnlyPath(CString),
    /// `mount_setattr(AT_RECURSIVE, MOUNT_ATTR_RDONLY)`: a mount and every mount below it
    /// read-only (`/sys`); where the call is missing (before Linux 5.12) or refused (a seccomp
    /// filter), the top mount only, remounted keeping `flags`. A path that is no mount point is
    /// left.
    ReadOnlyTree {
        /// The mount point.
        target: CString,
        /// The mount's own flags, for the fallback.
        flags: MsFlags,
    },
}

fn cstring(path: impl AsRef<OsStr>) -> CString {
    // Paths and hostnames come from OsStr/str, which cannot hold NUL except by explicit escape;
    // the config validation rejects those, so a NUL here is a bug.
    CString::new(path.as_ref().as_bytes()).expect("no NUL byte in sandbox paths")
}

impl Step {
    /// What this step does, for error messages: "mounting tmpfs on /tmp".
    pub(crate) fn describe(&self) -> String {
        let show = |c: &CString| c.to_string_lossy().into_owned();
        match self {
            Step::SetHostname(name) => format!("setting the hostname to '{}'", show(name)),
            Step::MakeRootPrivate => "making all mounts private (mount --make-rprivate /)".into(),
            Step::Mount { source, target, fstype: Some(fstype), .. } => {
                let _ = source;
                format!("mounting {} on {}", show(fstype), show(target))
            }
            Step::Mount { target, flags, .. } if flags.contains(MsFlags::MS_REMOUNT) => {
                let mode = if flags.contains(MsFlags::MS_RDONLY) { "read-only" } else { "read-write" };
                format!("remounting {} {mode}", show(target))
            }
            Step::ReadOnlyMount { target, .. } => format!("remounting {} read-only", show(target)),
            Step::Overlay { lower, target, .. } => format!("mounting an overlay of {} on {}", show(lower), show(target)),
            Step::Directory { path, .. } => format!("creating directory {}", show(path)),
            Step::Proc { target, .. } => format!("mounting proc on {}", show(target)),
            Step::Mount { source, target, .. } => format!("bind-mounting {} on {}", show(source), show(target)),
            Step::OpenSource { path, .. } => format!("opening bind source {}", show(path)),
            Step::SendLayer { path, .. } => format!("handing the overlay's layer at {} to the launcher", show(path)),
            Step::Move { source, target, .. } => format!("moving the mount {} to {}", show(source), show(target)),
            Step::BindFd { source, target, .. } => format!("bind-mounting {} on {}", show(source), show(target)),
            Step::Mkdir(path) => format!("creating directory {}", show(path)),
            Step::CreateFile(path) => format!("creating mount point {}", show(path)),
            Step::Symlink(link, target) => format!("creating symlink {} -> {}", show(link), show(target)),
            Step::Chdir(path) => format!("changing directory to {}", show(path)),
            Step::PivotRoot => "switching to the new root (pivot_root)".into(),
            Step::DetachOldRoot => "detaching the old root (umount2 MNT_DETACH)".into(),
            Step::LoopbackUp => "bringing up the loopback interface".into(),
            Step::Detach(path) => format!("detaching {} (umount2 MNT_DETACH, or covering it where locked)", show(path)),
            Step::CgroupNamespace => "entering a cgroup namespace (unshare CLONE_NEWCGROUP)".into(),
            Step::ReadOnlyPath(path) => format!("making {} read-only", show(path)),
            Step::ReadOnlyTree { target, .. } => format!("making {} and the mounts below it read-only", show(target)),
        }
    }

    /// Why this step may have failed with `errno` and what to do, where the step knows better
    /// than the error alone.
    pub(crate) fn failure_hint(&self, errno: Errno) -> Option<String> {
        match (self, errno) {
            (Step::Overlay { lower, .. }, Errno::EINVAL) => Some(format!(
                "the kernel refused {} as an overlay's lower layer: overlays stack at most two deep (an overlay \
                 sandbox inside an overlay root, as in a container, is three), and some file systems cannot be a \
                 lower layer (`dmesg` names the reason); use --fs ro or --fs host here",
                lower.to_string_lossy()
            )),
            (Step::Overlay { .. }, Errno::EPERM) if !nix::unistd::geteuid().is_root() => Some(
                "this kernel does not allow an overlay in a user namespace (Linux 5.11 or later does): run as root, \
                 or use --fs ro"
                    .into(),
            ),
            _ => None,
        }
    }

    /// Carries the step out. Runs in the sandbox's init: must not allocate.
    pub(crate) fn apply(&self) -> Result<(), Errno> {
        match self {
            Step::SetHostname(name) => nix::unistd::sethostname(OsStr::from_bytes(name.as_bytes())),
            Step::MakeRootPrivate => {
                mount(None::<&str>, c"/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>)
            }
            Step::Mount { source, target, fstype, flags, data } => {
                mount(Some(source.as_c_str()), target.as_c_str(), fstype.as_deref(), *flags, data.as_deref())
            }
            Step::OpenSource { path, fd } => {
                let flags = nix::fcntl::OFlag::O_PATH | nix::fcntl::OFlag::O_CLOEXEC;
                let opened = nix::fcntl::open(path.as_c_str(), flags, Mode::empty())?;
                let moved = nix::unistd::dup3(opened, *fd, nix::fcntl::OFlag::O_CLOEXEC);
                let _ = nix::unistd::close(opened);
                moved.map(drop)
            }
            Step::BindFd { fd_path, target, .. } => mount(
                Some(fd_path.as_c_str()),
                target.as_c_str(),
                None::<&str>,
                MsFlags::MS_BIND | MsFlags::MS_REC,
                None::<&str>,
            ),
            Step::ReadOnlyMount { target, flags } => match crate::sys::remount_bind_read_only(target, *flags) {
                Err(Errno::EACCES | Errno::ENOENT) => Ok(()),
                other => other,
            },
            Step::Overlay { upper, work, target, flags, data, .. } => {
                for dir in [upper, work] {
                    crate::sys::make_directory(dir, 0o755)?;
                }
                match crate::sys::mount_file_system(c"overlay", target, *flags, data) {
                    Err(Errno::EACCES) => Ok(()),
                    other => other,
                }
            }
            // SAFETY: the plan's socket is the init's end of the pair, which only this step uses
            // and the init runs each step once.
            Step::SendLayer { path, socket } => unsafe { crate::sys::send_directory(*socket, path) },
            Step::Move { source, target, copy_if_refused } => match crate::sys::move_mount(source, target) {
                Err(Errno::EINVAL) if !copy_if_refused => Ok(()),
                Err(Errno::EINVAL) => mount(
                    Some(source.as_c_str()),
                    target.as_c_str(),
                    None::<&str>,
                    MsFlags::MS_BIND | MsFlags::MS_REC,
                    None::<&str>,
                ),
                other => other,
            },
            Step::Directory { path, mode } => {
                crate::sys::make_directory(path, *mode)?;
                // Exactly the host's mode, whatever the umask.
                nix::sys::stat::fchmodat(None, path.as_c_str(), Mode::from_bits_truncate(*mode), nix::sys::stat::FchmodatFlags::FollowSymlink)
            }
            Step::Proc { target, bind_if_refused } => {
                let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
                match mount(Some(c"proc"), target.as_c_str(), Some(c"proc"), flags, None::<&str>) {
                    Err(Errno::EPERM) if *bind_if_refused => {
                        mount(Some(c"/proc"), target.as_c_str(), None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
                    }
                    other => other,
                }
            }
            Step::Mkdir(path) => crate::sys::make_directory(path, 0o755),
            Step::CreateFile(path) => {
                let flags = nix::fcntl::OFlag::O_CREAT | nix::fcntl::OFlag::O_WRONLY | nix::fcntl::OFlag::O_CLOEXEC;
                let fd = nix::fcntl::open(path.as_c_str(), flags, Mode::from_bits_truncate(0o644))?;
                nix::unistd::close(fd)
            }
            Step::Symlink(link, target) => nix::unistd::symlinkat(target.as_c_str(), None, link.as_c_str()),
            Step::Chdir(path) => nix::unistd::chdir(path.as_c_str()),
            Step::PivotRoot => nix::unistd::pivot_root(c".", c"."),
            Step::DetachOldRoot => umount2(c".", MntFlags::MNT_DETACH),
            Step::LoopbackUp => crate::sys::bring_loopback_up(),
            // Every mount stacked there (a VM's init may mount /proc twice), until the path is
            // no mount point: a failure expected every run, so not told through errno.
            Step::Detach(path) => match crate::sys::detach_all(path)? {
                true => {
                    let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
                    mount(Some(c"tmpfs"), path.as_c_str(), Some(c"tmpfs"), flags, Some(c"mode=755,size=4k"))
                }
                _ => Ok(()),
            },
            Step::CgroupNamespace => nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWCGROUP),
            Step::ReadOnlyPath(path) => crate::sys::bind_read_only(path),
            Step::ReadOnlyTree { target, flags } => match crate::sys::make_tree_read_only(target) {
                Err(Errno::EINVAL | Errno::ENOENT) => Ok(()),
                // Before Linux 5.12, or a seccomp filter that does not know the call.
                Err(Errno::ENOSYS | Errno::EPERM) => match crate::sys::remount_bind_read_only(target, *flags) {
                    Err(Errno::EINVAL | Errno::ENOENT) => Ok(()),
                    other => other,
                },
                other => other,
            },
        }
    }
}

/// The set-up steps of a run, and (`fs = overlay`) the trees of its layer that the launcher
/// reads the run's changes from.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct Plan {
    pub(crate) steps: Vec<Step>,
    pub(crate) trees: Vec<Tree>,
    /// The steps from this index on run once the init is in its cgroup (a contained run's
    /// cgroup namespace, see [`containment`]); the others may run before.
    pub(crate) in_cgroup_from: usize,
}

/// What [`plan`] needs besides the config.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct PlanInput<'a> {
    /// The canonical rootfs path, if any.
    pub(crate) rootfs: Option<&'a Path>,
    /// `bind_fds[i]` is the launcher's `O_PATH` descriptor of `config.binds[i].source`.
    pub(crate) bind_fds: &'a [RawFd],
    /// The command's `TMPDIR`, made inside the sandbox's tmpfs when it lies there (a
    /// `/tmp/user/1000` would otherwise be missing in the new, empty `/tmp`).
    pub(crate) tmpdir: Option<&'a Path>,
    /// The mount table the new mount namespace starts with (this process's), read for
    /// [`FsMode::ReadOnly`] and [`FsMode::Overlay`] only.
    pub(crate) host_mounts: &'a [HostMount],
    /// [`FsMode::Overlay`]'s descriptors and mode.
    pub(crate) overlay: Option<OverlayInput>,
    /// The index in `config.binds` of the bind of a working directory the sandbox's tmpfs
    /// hides: under [`FsMode::Overlay`] it gets an overlay, not a bind.
    pub(crate) hidden_cwd_bind: Option<usize>,
    /// A contained run's cgroup namespace, with the hierarchies it mounts.
    pub(crate) cgroup_namespace: Option<&'a [NamespaceMount]>,
}

/// Plans the set-up steps for `config`.
pub(crate) fn plan(config: &Config, input: PlanInput<'_>) -> Plan {
    let PlanInput { rootfs, bind_fds, tmpdir, host_mounts, overlay, hidden_cwd_bind, cgroup_namespace } = input;
    let mut steps = vec![Step::SetHostname(cstring(&config.hostname)), Step::MakeRootPrivate];
    assert_eq!(bind_fds.len(), config.binds.len(), "one descriptor per bind source");
    for (spec, fd) in config.binds.iter().zip(bind_fds) {
        steps.push(Step::OpenSource { path: cstring(&spec.source), fd: *fd });
    }
    if let (Some(root), Some(OverlayInput { rootfs_fd: Some(fd), .. })) = (rootfs, overlay) {
        steps.push(Step::OpenSource { path: cstring(root), fd });
    }
    // The root the sandbox pivots into, if not the host's.
    let new_root: Option<PathBuf> = match overlay {
        Some(_) => Some(overlay::new_root()),
        None => rootfs.map(Path::to_path_buf),
    };
    // Where a path inside the sandbox is before pivot_root.
    let at = |inside: &Path| -> PathBuf {
        match &new_root {
            Some(root) => root.join(inside.strip_prefix("/").unwrap_or(inside)),
            None => inside.to_path_buf(),
        }
    };
    let nodev_nosuid = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    let fs_mount = |fstype: &str, target: &Path, flags: MsFlags, data: Option<String>| Step::Mount {
        source: cstring(fstype),
        target: cstring(target),
        fstype: Some(cstring(fstype)),
        flags,
        data: data.map(cstring),
    };
    let bind = |source: &Path, target: &Path| Step::Mount {
        source: cstring(source),
        target: cstring(target),
        fstype: None,
        flags: MsFlags::MS_BIND | MsFlags::MS_REC,
        data: None,
    };

    if let (Some(root), None) = (rootfs, overlay) {
        // pivot_root needs the new root to be a mount point.
        steps.push(bind(root, root));
    }
    // A contained run's: whether the new root has a place for cgroup mounts. Looked up for
    // contained runs only: the others pay no stat for it.
    let has_cgroup_root = cgroup_namespace.map(|_| rootfs.unwrap_or(Path::new("/")).join("sys/fs/cgroup").is_dir());
    let mut trees = Vec::new();
    if let Some(input) = overlay {
        // The host's cgroup mounts stay in the old tree, which goes as a whole, rather than
        // going along with /sys and being detached there (one grace period fewer).
        let left_behind = (rootfs.is_none() && has_cgroup_root == Some(true)).then_some(Path::new(containment::CGROUP_ROOT));
        trees = overlay::push_steps(&mut steps, config, rootfs, host_mounts, input, left_behind);
        // Holes asked for: written straight to the host.
        for path in &config.writable {
            let on_host = match rootfs {
                Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
                None => path.clone(),
            };
            steps.push(bind(&on_host, &at(path)));
        }
    }
    if config.fs == FsMode::ReadOnly {
        // Every mount read-only first (the root's copy too, stacked on its mount point); then
        // the holes: the writable paths here, the tmpfs mounts and read-write binds below.
        for mount in host_mounts.iter().filter(|mount| mount.made_read_only()) {
            steps.push(Step::ReadOnlyMount { target: cstring(&mount.mount_point), flags: mount.kept_flags });
        }
        if let Some(root) = rootfs {
            steps.push(Step::ReadOnlyMount { target: cstring(root), flags: locked_flags(root) });
        }
        for path in &config.writable {
            let target = at(path);
            steps.push(bind(&target, &target));
            steps.push(remount_writable(&target));
        }
    }
    // A contained run's new /proc covers the host's, which stays below it: the command's user
    // namespace locks both there, so it can neither unmount the run's nor bind the host's out
    // from under it (`containment`). Detaching the host's would cost every run the kernel's
    // grace period of an unmount. Where a new one is refused (nested), `Step::Proc` binds the
    // /proc there is.
    steps.push(Step::Proc { target: cstring(at(Path::new("/proc"))), bind_if_refused: cgroup_namespace.is_some() });
    // A contained run's /sys mount to make read-only (a --rootfs has its own directory there, a
    // mount only where the host put one).
    if let (Some(mounts), Some(has_cgroup_root)) = (cgroup_namespace, has_cgroup_root) {
        let has_sys_mount = rootfs.is_none_or(|root| is_mount_point(&root.join("sys"), root));
        containment::push_before_join(&mut steps, mounts, has_cgroup_root, has_sys_mount, &at);
    }
    if let Some(root) = rootfs {
        if root.join("dev").is_dir() {
            let dev = at(Path::new("/dev"));
            steps.push(fs_mount("tmpfs", &dev, MsFlags::MS_NOSUID, Some("mode=755,size=64k".into())));
            for name in DEVICES {
                let host = Path::new("/dev").join(name);
                if host.exists() {
                    steps.push(Step::CreateFile(cstring(dev.join(name))));
                    steps.push(bind(&host, &dev.join(name)));
                }
            }
            for (link, target) in DEV_LINKS {
                steps.push(Step::Symlink(cstring(dev.join(link)), cstring(target)));
            }
            // Pseudo-terminals of the sandbox's own (a new devpts instance, as containers have)
            // and POSIX shared memory (shm_open) in a tmpfs of its own.
            steps.push(Step::Mkdir(cstring(dev.join("pts"))));
            let devpts_flags = MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC;
            steps.push(fs_mount("devpts", &dev.join("pts"), devpts_flags, Some("newinstance,ptmxmode=0666,mode=0620".into())));
            steps.push(Step::Symlink(cstring(dev.join("ptmx")), cstring("pts/ptmx")));
            steps.push(Step::Mkdir(cstring(dev.join("shm"))));
            steps.push(fs_mount("tmpfs", &dev.join("shm"), nodev_nosuid, Some("mode=1777".into())));
        }
    }
    for tmpfs in &config.tmpfs {
        push_mount_point_dirs(&mut steps, config, &tmpfs.path, true, &at);
        let mut data = "mode=1777".to_string();
        if let Some(size) = tmpfs.size_bytes {
            data.push_str(&format!(",size={size}"));
        }
        steps.push(fs_mount("tmpfs", &at(&tmpfs.path), nodev_nosuid, Some(data)));
    }
    if let Some(tmpdir) = tmpdir.filter(|dir| dir.is_absolute()) {
        push_mount_point_dirs(&mut steps, config, tmpdir, true, &at);
    }
    for (index, (spec, fd)) in config.binds.iter().zip(bind_fds).enumerate() {
        let is_dir = spec.source.is_dir();
        push_mount_point_dirs(&mut steps, config, &spec.target, is_dir, &at);
        let target = at(&spec.target);
        if let (Some(input), true) = (overlay, hidden_cwd_bind == Some(index)) {
            // The working directory, below the sandbox's /tmp: seen through the layer too.
            let lower = PathBuf::from(format!("/proc/self/fd/{fd}"));
            let paths = [lower.as_path(), spec.source.as_path(), spec.target.as_path(), target.as_path()];
            overlay::push_overlay(&mut steps, &mut trees, input.rootless, paths, MsFlags::empty());
            continue;
        }
        steps.push(Step::BindFd {
            fd_path: cstring(format!("/proc/self/fd/{fd}")),
            source: cstring(&spec.source),
            target: cstring(&target),
        });
        if config.fs == FsMode::ReadOnly && !spec.read_only {
            // Bound from a mount made read-only above: a read-write bind is a hole asked for.
            steps.push(remount_writable(&target));
        }
        if spec.read_only {
            steps.push(Step::Mount {
                source: cstring(&spec.source),
                target: cstring(&target),
                fstype: None,
                flags: MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked_flags(&spec.source),
                data: None,
            });
        }
    }
    if let Some(root) = &new_root {
        steps.push(Step::Chdir(cstring(root)));
        steps.push(Step::PivotRoot);
        steps.push(Step::DetachOldRoot);
        steps.push(Step::Chdir(cstring("/")));
    }
    if config.net == NetMode::None {
        steps.push(Step::LoopbackUp);
    }
    let in_cgroup_from = steps.len();
    if let (Some(mounts), Some(has_cgroup_root)) = (cgroup_namespace, has_cgroup_root) {
        containment::push_in_cgroup(&mut steps, mounts, has_cgroup_root);
    }
    Plan { steps, trees, in_cgroup_from }
}

/// Whether `path` is a mount point below `root`: on another device than `root`.
fn is_mount_point(path: &Path, root: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(path), std::fs::metadata(root)) {
        (Ok(path), Ok(root)) => path.dev() != root.dev(),
        _ => false,
    }
}

/// Makes the bind mount at `target` (a copy of a read-only mount) writable again.
fn remount_writable(target: &Path) -> Step {
    Step::Mount {
        source: cstring(target),
        target: cstring(target),
        fstype: None,
        flags: MsFlags::MS_BIND | MsFlags::MS_REMOUNT | locked_flags(target),
        data: None,
    }
}

/// One mount of the host's table, as [`FsMode::ReadOnly`] needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostMount {
    /// Where it is mounted.
    pub(crate) mount_point: PathBuf,
    /// Its file-system type (`ext4`, `proc`).
    pub(crate) fstype: String,
    /// Already read-only.
    pub(crate) read_only: bool,
    /// The flags a remount must keep: `nosuid`, `nodev`, `noexec` and the atime mode.
    pub(crate) kept_flags: MsFlags,
}

/// Where the kernel's API file systems are: they keep their own modes under
/// [`FsMode::ReadOnly`] (a read-only `/dev` would refuse `/dev/shm`, one of `/proc` nothing
/// useful), as under systemd's `ProtectSystem=strict`.
pub(crate) const API_FILE_SYSTEMS: [&str; 3] = ["/proc", "/sys", "/dev"];

impl HostMount {
    /// Whether [`FsMode::ReadOnly`] remounts it: not read-only yet, not an API file system, not
    /// an automount point (touching one mounts it).
    fn made_read_only(&self) -> bool {
        !self.read_only
            && self.fstype != "autofs"
            && !API_FILE_SYSTEMS.iter().any(|api| self.mount_point.starts_with(api))
    }
}

/// This process's mount table (`/proc/self/mountinfo`), read again only once the kernel says it
/// changed ([`crate::mountinfo::table_changed`]): a fork server plans an overlay or read-only
/// sandbox per test, and having the kernel format the table took ~25 µs of each. Kept per
/// process: a forked copy shares the open file, and with it the change mark the other takes.
pub(crate) fn host_mounts() -> std::io::Result<Arc<[HostMount]>> {
    /// The table as read, the file it was read from, and the process that read it.
    struct Cached {
        pid: u32,
        file: std::fs::File,
        mounts: Arc<[HostMount]>,
    }
    static CACHE: Mutex<Option<Cached>> = Mutex::new(None);
    let pid = std::process::id();
    // Held elsewhere (another thread, or a thread of the process this one was forked from, which
    // never lets go here): read without the cache.
    let mut cache = match CACHE.try_lock() {
        Ok(cache) => Some(cache),
        Err(std::sync::TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(std::sync::TryLockError::WouldBlock) => None,
    };
    if let Some(cached) = cache.as_deref().and_then(Option::as_ref) {
        if cached.pid == pid && !crate::mountinfo::table_changed(&cached.file) {
            return Ok(Arc::clone(&cached.mounts));
        }
    }
    let mut file = std::fs::File::open("/proc/self/mountinfo")?;
    let mounts: Arc<[HostMount]> = parse_mountinfo(&crate::mountinfo::read_table(&mut file)?).into();
    if let Some(cache) = cache.as_deref_mut() {
        *cache = Some(Cached { pid, file, mounts: Arc::clone(&mounts) });
    }
    Ok(mounts)
}

/// The mounts of a `mountinfo` text, as [`FsMode::ReadOnly`] needs them.
pub(crate) fn parse_mountinfo(text: &str) -> Vec<HostMount> {
    crate::mountinfo::entries(text)
        .map(|entry| {
            let mut kept_flags = MsFlags::empty();
            let mut read_only = false;
            for option in entry.options.split(',') {
                match option {
                    "ro" => read_only = true,
                    "nosuid" => kept_flags |= MsFlags::MS_NOSUID,
                    "nodev" => kept_flags |= MsFlags::MS_NODEV,
                    "noexec" => kept_flags |= MsFlags::MS_NOEXEC,
                    "noatime" => kept_flags |= MsFlags::MS_NOATIME,
                    "nodiratime" => kept_flags |= MsFlags::MS_NODIRATIME,
                    "relatime" => kept_flags |= MsFlags::MS_RELATIME,
                    _ => {}
                }
            }
            HostMount { mount_point: entry.mount_point, fstype: entry.fstype.to_string(), read_only, kept_flags }
        })
        .collect()
}

/// The flags of the mount holding `path` that a remount in a user namespace must keep (the
/// kernel refuses to clear them there: EPERM).
fn locked_flags(path: &Path) -> MsFlags {
    use nix::sys::statvfs::{statvfs, FsFlags};
    // <sys/statvfs.h>'s ST_RELATIME, which nix names only for glibc.
    const ST_RELATIME: FsFlags = FsFlags::from_bits_retain(4096);
    let Ok(stat) = statvfs(path) else { return MsFlags::empty() };
    let mut flags = MsFlags::empty();
    for (fs, ms) in [
        (FsFlags::ST_NOSUID, MsFlags::MS_NOSUID),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if stat.flags().contains(fs) {
            flags |= ms;
        }
    }
    flags
}

/// A mount point inside one of the sandbox's tmpfs mounts does not exist yet (the tmpfs is
/// new and empty): create it and its parents there. Outside a tmpfs nothing is created, so the
/// host's (or the rootfs's) files are never touched; the mount fails with a clear ENOENT.
fn push_mount_point_dirs(
    steps: &mut Vec<Step>,
    config: &Config,
    inside: &Path,
    is_dir: bool,
    at: &dyn Fn(&Path) -> PathBuf,
) {
    let Some(tmpfs) = config
        .tmpfs
        .iter()
        .filter(|t| inside != t.path && inside.starts_with(&t.path))
        .max_by_key(|t| t.path.components().count())
    else {
        return;
    };
    let relative = inside.strip_prefix(&tmpfs.path).expect("checked by starts_with");
    let mut path = tmpfs.path.clone();
    let parts: Vec<_> = relative.components().collect();
    for (i, part) in parts.iter().enumerate() {
        path.push(part);
        if i + 1 == parts.len() && !is_dir {
            steps.push(Step::CreateFile(cstring(at(&path))));
        } else {
            steps.push(Step::Mkdir(cstring(at(&path))));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{BindMount, TmpfsMount};

    /// The steps of a plan without an overlay.
    fn steps_of(config: &Config, rootfs: Option<&Path>, bind_fds: &[RawFd], tmpdir: Option<&Path>, host_mounts: &[HostMount]) -> Vec<Step> {
        let input = PlanInput { rootfs, bind_fds, tmpdir, host_mounts, ..PlanInput::default() };
        let plan = plan(config, input);
        assert!(plan.trees.is_empty(), "trees only for an overlay");
        plan.steps
    }

    fn describe_all(steps: &[Step]) -> Vec<String> {
        steps.iter().map(Step::describe).collect()
    }

    #[test]
    fn default_plan_privatises_before_mounting() {
        let steps = steps_of(&Config::default(), None, &[], None, &[]);
        assert_eq!(
            describe_all(&steps),
            [
                "setting the hostname to 'sandbox'",
                "making all mounts private (mount --make-rprivate /)",
                "mounting proc on /proc",
                "mounting tmpfs on /tmp",
            ]
        );
    }

    /// A contained run: the host's cgroup mounts detached, its /proc covered, the knobs
    /// read-only, and (v1) a tmpfs of mount points, all before the join; the namespace and its
    /// mounts after.
    #[test]
    fn a_contained_plan_enters_its_cgroup_namespace_after_the_join() {
        let mounts: Vec<NamespaceMount> = ["memory", "pids"]
            .iter()
            .map(|c| NamespaceMount { mount_point: Path::new("/sys/fs/cgroup").join(c), fstype: "cgroup", options: Some(c.to_string()) })
            .collect();
        let input = PlanInput { cgroup_namespace: Some(&mounts), ..PlanInput::default() };
        let plan = plan(&Config::default(), input);
        let described = describe_all(&plan.steps);
        // The kernel's sysrq trigger is made read-only where it has one.
        let sysrq = "making /proc/sysrq-trigger read-only";
        assert_eq!(described.iter().any(|step| step == sysrq), Path::new("/proc/sysrq-trigger").exists());
        let before_join: Vec<&str> =
            described[..plan.in_cgroup_from].iter().map(String::as_str).filter(|step| *step != sysrq).collect();
        assert_eq!(
            before_join,
            [
                "setting the hostname to 'sandbox'",
                "making all mounts private (mount --make-rprivate /)",
                "mounting proc on /proc",
                "detaching /sys/fs/cgroup (umount2 MNT_DETACH, or covering it where locked)",
                "making /proc/sys read-only",
                "making /sys and the mounts below it read-only",
                "mounting tmpfs on /sys/fs/cgroup",
                "creating directory /sys/fs/cgroup/memory",
                "creating directory /sys/fs/cgroup/pids",
                "remounting /sys/fs/cgroup read-only",
                "mounting tmpfs on /tmp",
            ]
        );
        assert_eq!(
            described[plan.in_cgroup_from..],
            [
                "entering a cgroup namespace (unshare CLONE_NEWCGROUP)",
                "mounting cgroup on /sys/fs/cgroup/memory",
                "mounting cgroup on /sys/fs/cgroup/pids",
            ]
        );
        // Not contained: nothing after the join.
        let uncontained = super::plan(&Config::default(), PlanInput::default());
        assert_eq!(uncontained.in_cgroup_from, uncontained.steps.len());
    }

    #[test]
    fn binds_inside_a_tmpfs_get_their_mount_points_created() {
        let mut config = Config::default();
        config.tmpfs.push(TmpfsMount { path: "/scratch".into(), size_bytes: Some(1 << 20) });
        config.binds.push(BindMount { source: "/etc".into(), target: "/tmp/a/etc".into(), read_only: true });
        config.binds.push(BindMount { source: "/etc/hostname".into(), target: "/tmp/hn".into(), read_only: false });
        config.binds.push(BindMount { source: "/usr".into(), target: "/usr".into(), read_only: false });
        config.net = NetMode::None;
        let steps = steps_of(&config, None, &[10, 11, 12], None, &[]);
        assert_eq!(
            describe_all(&steps)[2..5],
            ["opening bind source /etc", "opening bind source /etc/hostname", "opening bind source /usr"]
        );
        assert_eq!(
            describe_all(&steps)[6..],
            [
                "mounting tmpfs on /tmp",
                "mounting tmpfs on /scratch",
                "creating directory /tmp/a",
                "creating directory /tmp/a/etc",
                "bind-mounting /etc on /tmp/a/etc",
                "remounting /tmp/a/etc read-only",
                "creating mount point /tmp/hn",
                "bind-mounting /etc/hostname on /tmp/hn",
                "bind-mounting /usr on /usr",
                "bringing up the loopback interface",
            ]
        );
        assert!(matches!(&steps[12], Step::CreateFile(_)));
        let Step::Mount { data, .. } = &steps[7] else { panic!() };
        assert_eq!(data.as_deref(), Some(c"mode=1777,size=1048576"));
    }

    #[test]
    fn a_tmpdir_below_the_new_tmp_is_made_there() {
        let steps = describe_all(&steps_of(&Config::default(), None, &[], Some(Path::new("/tmp/user/1000")), &[]));
        assert_eq!(steps[3..], ["mounting tmpfs on /tmp", "creating directory /tmp/user", "creating directory /tmp/user/1000"]);
        for elsewhere in ["/var/tmp", "/tmp", "relative/tmp"] {
            let steps = steps_of(&Config::default(), None, &[], Some(Path::new(elsewhere)), &[]);
            assert_eq!(steps, steps_of(&Config::default(), None, &[], None, &[]), "{elsewhere}");
        }
    }

    /// A mount table as this machine's kernel writes it: a space in a path as `\040`, optional
    /// tags before the `-`, the per-mount options in the sixth field.
    const MOUNTINFO: &str = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw
23 22 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:2 - proc proc rw
24 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
25 22 0:5 / /dev rw,nosuid - devtmpfs udev rw
26 22 8:2 / /home/a\\040b rw,nosuid,nodev,noatime master:3 - ext4 /dev/sda2 rw
27 22 8:3 / /usr/share ro,relatime - squashfs /dev/loop0 ro
28 22 0:30 / /mnt/auto rw,relatime - autofs systemd-1 rw
";

    #[test]
    fn mountinfo_lines_give_mount_points_types_and_kept_flags() {
        let mounts = parse_mountinfo(MOUNTINFO);
        assert_eq!(mounts.len(), 7);
        assert_eq!(mounts[4].mount_point, Path::new("/home/a b"));
        assert_eq!(mounts[4].fstype, "ext4");
        assert_eq!(mounts[4].kept_flags, MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME);
        assert!(!mounts[4].read_only && mounts[5].read_only);
        let remounted: Vec<&Path> =
            mounts.iter().filter(|mount| mount.made_read_only()).map(|mount| mount.mount_point.as_path()).collect();
        // Not the API file systems, not what is read-only already, not an automount point.
        assert_eq!(remounted, [Path::new("/"), Path::new("/home/a b")]);
    }

    /// `fs = ro`: every host mount read-only before anything of the sandbox is mounted; the
    /// writable paths bound back writable; a read-write bind made writable again after its bind.
    #[test]
    fn a_read_only_plan_remounts_then_opens_the_holes() {
        let mut config = Config { fs: FsMode::ReadOnly, writable: vec!["/home/a b/work".into()], ..Config::default() };
        config.binds.push(BindMount { source: "/srv".into(), target: "/srv".into(), read_only: false });
        let steps = steps_of(&config, None, &[10], None, &parse_mountinfo(MOUNTINFO));
        assert_eq!(
            describe_all(&steps)[3..],
            [
                "remounting / read-only",
                "remounting /home/a b read-only",
                "bind-mounting /home/a b/work on /home/a b/work",
                "remounting /home/a b/work read-write",
                "mounting proc on /proc",
                "mounting tmpfs on /tmp",
                "bind-mounting /srv on /srv",
                "remounting /srv read-write",
            ]
        );
        assert_eq!(steps[4], Step::ReadOnlyMount { target: cstring("/home/a b"), flags: parse_mountinfo(MOUNTINFO)[4].kept_flags });
        // Without fs = ro the table is not even consulted.
        let host = Config { binds: config.binds.clone(), ..Config::default() };
        assert_eq!(steps_of(&host, None, &[10], None, &parse_mountinfo(MOUNTINFO)), steps_of(&host, None, &[10], None, &[]));
    }

    #[test]
    fn rootfs_plan_pivots_last() {
        let root = std::env::temp_dir().join(format!("sandbox-plan-{}", std::process::id()));
        std::fs::create_dir_all(root.join("dev")).unwrap();
        let steps = describe_all(&steps_of(&Config::default(), Some(&root), &[], None, &[]));
        std::fs::remove_dir_all(&root).unwrap();
        let r = root.display();
        assert_eq!(steps[2], format!("bind-mounting {r} on {r}"));
        assert_eq!(steps[3], format!("mounting proc on {r}/proc"));
        assert_eq!(steps[4], format!("mounting tmpfs on {r}/dev"));
        assert!(steps.contains(&format!("bind-mounting /dev/null on {r}/dev/null")));
        assert!(steps.contains(&format!("mounting devpts on {r}/dev/pts")));
        assert!(steps.contains(&format!("creating symlink {r}/dev/ptmx -> pts/ptmx")));
        assert!(steps.contains(&format!("mounting tmpfs on {r}/dev/shm")));
        assert!(steps.contains(&format!("mounting tmpfs on {r}/tmp")));
        assert_eq!(
            steps[steps.len() - 4..],
            [
                format!("changing directory to {r}"),
                "switching to the new root (pivot_root)".into(),
                "detaching the old root (umount2 MNT_DETACH)".into(),
                "changing directory to /".into(),
            ]
        );
    }

    /// `fs = overlay` as root: the layer on the old /tmp, one overlay per writable mount (parents
    /// first), read-only mounts bound read-only, `/dev` and `/sys` moved, the API file systems
    /// and what the sandbox's tmpfs covers left out; then the usual mounts below the new root,
    /// and pivot_root into it.
    #[test]
    fn an_overlay_plan_rebuilds_the_tree_in_the_layer() {
        let config = Config { fs: FsMode::Overlay, fs_size: Some(1 << 20), ..Config::default() };
        // Mount points that exist here: the plan tells directories from single-file mounts.
        let table = MOUNTINFO.replace("/home/a\\040b", "/var").replace("/mnt/auto", "/mnt/auto-absent")
            + "29 22 0:31 / /tmp rw,nosuid,nodev - tmpfs tmpfs rw\n";
        let overlay = OverlayInput { layer_socket: 20, rootfs_fd: None, rootless: false };
        let input = PlanInput { host_mounts: &parse_mountinfo(&table), overlay: Some(overlay), ..PlanInput::default() };
        let plan = plan(&config, input);
        let described = describe_all(&plan.steps);
        let expected_start = [
            "mounting tmpfs on /tmp",
            "handing the overlay's layer at /tmp to the launcher",
            "creating directory /tmp/upper",
            "creating directory /tmp/work",
            "creating directory /tmp/root",
            "mounting an overlay of / on /tmp/root",
            "mounting an overlay of /var on /tmp/root/var",
            "bind-mounting /usr/share on /tmp/root/usr/share",
            "remounting /tmp/root/usr/share read-only",
        ];
        assert_eq!(described[2..2 + expected_start.len()], expected_start, "{described:#?}");
        let Step::Mount { data, .. } = &plan.steps[2] else { panic!() };
        assert_eq!(data.as_deref(), Some(c"mode=0755,size=1048576"));
        let Step::Overlay { data, flags, .. } = &plan.steps[8] else { panic!("{:?}", plan.steps[8]) };
        assert_eq!(
            data.as_c_str(),
            c"lowerdir=/var,upperdir=/tmp/upper/1,workdir=/tmp/work/1,redirect_dir=on,metacopy=off,index=off"
        );
        assert_eq!(*flags, MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOATIME);
        assert!(described.contains(&"moving the mount /dev to /tmp/root/dev".to_string()));
        assert!(described.contains(&"moving the mount /sys to /tmp/root/sys".to_string()));
        assert!(!described.iter().any(|step| step.contains("/mnt/auto") || step.contains("overlay of /tmp")), "{described:#?}");
        assert_eq!(
            described[described.len() - 6..],
            [
                "mounting proc on /tmp/root/proc",
                "mounting tmpfs on /tmp/root/tmp",
                "changing directory to /tmp/root",
                "switching to the new root (pivot_root)",
                "detaching the old root (umount2 MNT_DETACH)",
                "changing directory to /",
            ]
        );
        assert_eq!(
            plan.trees,
            [
                Tree::Overlay { upper: "upper/0".into(), lower: "/".into(), shown_at: "/".into() },
                Tree::Overlay { upper: "upper/1".into(), lower: "/var".into(), shown_at: "/var".into() },
            ]
        );
    }

    /// A contained overlay run leaves the host's cgroup mounts in the old tree: moved out of
    /// `/sys` into the layer before `/sys` moves into the new root (the detach there, kept for a
    /// kernel that refuses the move, then finds nothing).
    #[test]
    fn a_contained_overlay_plan_leaves_the_host_cgroup_mounts_behind() {
        let mounts = [NamespaceMount { mount_point: "/sys/fs/cgroup/pids".into(), fstype: "cgroup", options: Some("pids".into()) }];
        let config = Config { fs: FsMode::Overlay, ..Config::default() };
        let overlay = OverlayInput { layer_socket: 20, rootfs_fd: None, rootless: false };
        let table = parse_mountinfo(MOUNTINFO);
        let input = PlanInput { host_mounts: &table, overlay: Some(overlay), cgroup_namespace: Some(&mounts), ..PlanInput::default() };
        let described = describe_all(&plan(&config, input).steps);
        let position = |wanted: &str| described.iter().position(|step| step == wanted).unwrap_or_else(|| panic!("{wanted}: {described:#?}"));
        let left = position("moving the mount /sys/fs/cgroup to /tmp/left-behind");
        assert!(position("creating directory /tmp/left-behind") < left);
        assert!(left < position("moving the mount /sys to /tmp/root/sys"));
        assert!(position("detaching /tmp/root/sys/fs/cgroup (umount2 MNT_DETACH, or covering it where locked)") < position("switching to the new root (pivot_root)"));
    }

    /// Option values escape what would end them.
    #[test]
    fn overlay_options_escape_commas_colons_and_backslashes() {
        let mut steps = Vec::new();
        let mut trees = Vec::new();
        let odd = Path::new("/srv/a,b:c\\d");
        overlay::push_overlay(&mut steps, &mut trees, true, [odd, odd, odd, Path::new("/tmp/root/srv")], MsFlags::empty());
        let Step::Overlay { data, .. } = &steps[0] else { panic!() };
        assert_eq!(data.as_c_str(), c"lowerdir=/srv/a\\,b\\:c\\\\d,upperdir=/tmp/upper/0,workdir=/tmp/work/0,userxattr");
    }

    /// The kept mount table is the kernel's: the same table while nothing is mounted, read again
    /// after a mount and after an unmount. In a forked child with a mount namespace of its own
    /// (as root, as CI runs), which also starts with no table kept (another process).
    #[test]
    fn the_kept_mount_table_follows_mounts() {
        assert!(nix::unistd::geteuid().is_root(), "this test mounts a tmpfs: run it as root (CI does)");
        let mount_point = std::env::temp_dir().join(format!("sandbox-kept-table-{}", std::process::id()));
        std::fs::create_dir(&mount_point).unwrap();
        // SAFETY: the child runs only this test's code and ends with `_exit`, never returning
        // into the harness; glibc keeps `malloc` usable after a fork of a threaded process.
        let verdict = match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let checked = std::panic::catch_unwind(|| {
                    nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNS).unwrap();
                    nix::mount::mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).unwrap();
                    let listed = |mounts: &[HostMount]| mounts.iter().any(|mount| mount.mount_point == mount_point);
                    let before = host_mounts().unwrap();
                    assert!(Arc::ptr_eq(&before, &host_mounts().unwrap()), "read again with no change");
                    assert!(!listed(&before));
                    nix::mount::mount(Some("tmpfs"), &mount_point, Some("tmpfs"), MsFlags::empty(), None::<&str>).unwrap();
                    let mounted = host_mounts().unwrap();
                    assert!(listed(&mounted), "a new mount missing");
                    nix::mount::umount(&mount_point).unwrap();
                    assert!(!listed(&host_mounts().unwrap()), "an unmounted mount kept");
                });
                // SAFETY: ends the forked child without running the parent's exit handlers.
                unsafe { libc::_exit(if checked.is_ok() { 0 } else { 1 }) }
            }
            nix::unistd::ForkResult::Parent { child } => nix::sys::wait::waitpid(child, None).unwrap(),
        };
        std::fs::remove_dir(&mount_point).unwrap();
        assert_eq!(verdict, nix::sys::wait::WaitStatus::Exited(verdict.pid().unwrap(), 0), "see the child's panic above");
    }
}
