//! `fs = overlay`: the host's file systems seen through a copy-on-write layer.
//!
//! An overlay covers one file system, not the mounts below it, so the sandbox's tree is
//! rebuilt mount by mount, as BenchExec's container mode does: a tmpfs (the *layer*) is
//! mounted on the old tree's `/tmp` (hidden inside anyway: the sandbox gets a `/tmp` of its
//! own), and in it the new root `root/` is assembled. Each host mount gets an overlay whose
//! lower half is the mount and whose upper half is `upper/N` of the layer, on its own mount
//! point below `root/`, parents first; a read-only mount is bound read-only instead (a write
//! there fails as on the host) and so is a mount of a single file. `/dev` and `/sys` are the
//! host's as under [`FsMode::Host`](crate::config::FsMode::Host), moved over from the old tree
//! (bound, in a user namespace); `/proc`, the tmpfs mounts and the binds come after, as for
//! `--rootfs`, and `pivot_root` ends the set-up.
//!
//! The layer is written by the command's processes, so its pages are charged to the run's
//! memory cgroup: `mem` bounds what a test can write, `fs_size` caps the layer itself
//! (`ENOSPC` beyond). Nothing outlives the run: the layer is mounted only in the run's mount
//! namespace, and the launcher's descriptor of it (for the change list) is closed once read.
//!
//! In a user namespace (a run without root) the kernel refuses an overlay of a directory with
//! mounts below it (they are locked: the overlay could reveal what they cover). There such a
//! directory is *split*: a directory of the layer stands in for it, with one entry per entry of
//! the host's: symlinks copied, subdirectories overlaid one by one (or split again), files
//! bound read-only. [`Tree::Split`] says how its changes are read.

use std::ffi::OsString;
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

use super::{cstring, HostMount, Step, API_FILE_SYSTEMS};
use crate::config::Config;
use crate::fs_changes::Tree;

/// Where the layer is mounted in the old tree: the sandbox's `/tmp` hides the host's anyway.
pub(crate) const LAYER_MOUNT_POINT: &str = "/tmp";
/// The new root, inside the layer.
const NEW_ROOT: &str = "/tmp/root";

/// What an overlay plan needs beyond the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OverlayInput {
    /// The init's end of the socket the layer is sent to the launcher on.
    pub(crate) layer_socket: RawFd,
    /// `--rootfs`: the directory and its `O_PATH` descriptor (the layer on `/tmp` may hide it).
    pub(crate) rootfs_fd: Option<RawFd>,
    /// The run is in a user namespace: `userxattr`, and directories with mounts below split.
    pub(crate) rootless: bool,
}

/// The new root, where [`super::plan`] puts everything else.
pub(crate) fn new_root() -> PathBuf {
    PathBuf::from(NEW_ROOT)
}

/// One file system of the tree to cover: a host mount, or the `--rootfs` directory.
struct Covered<'a> {
    /// The path overlay's `lowerdir` names (inside the init, before the layer is mounted).
    lower: PathBuf,
    /// The same directory as the launcher sees it (for the change list).
    host: PathBuf,
    /// Where it shows inside the sandbox.
    inside: PathBuf,
    mount: Option<&'a HostMount>,
}

/// Where a mount left in the old tree is moved: a directory of the layer, which goes with it.
const LEFT_BEHIND: &str = "/tmp/left-behind";

/// Pushes the steps that build the overlaid tree at [`NEW_ROOT`] and returns the trees whose
/// changes the launcher reads afterwards. `left_behind`, a mount below `/sys` (a contained run's
/// host cgroup mounts), is moved out of it first, so that it stays in the old tree.
pub(crate) fn push_steps(
    steps: &mut Vec<Step>,
    config: &Config,
    rootfs: Option<&Path>,
    host_mounts: &[HostMount],
    input: OverlayInput,
    left_behind: Option<&Path>,
) -> Vec<Tree> {
    let mut layer_data = "mode=0755".to_string();
    if let Some(size) = config.fs_size {
        layer_data.push_str(&format!(",size={size}"));
    }
    steps.push(Step::Mount {
        source: cstring("sandbox-layer"),
        target: cstring(LAYER_MOUNT_POINT),
        fstype: Some(cstring("tmpfs")),
        flags: MsFlags::MS_NOSUID | MsFlags::MS_NODEV,
        data: Some(cstring(layer_data)),
    });
    steps.push(Step::SendLayer { path: cstring(LAYER_MOUNT_POINT), socket: input.layer_socket });
    for dir in ["upper", "work"] {
        steps.push(Step::Mkdir(cstring(Path::new(LAYER_MOUNT_POINT).join(dir))));
    }
    let mut builder = Builder { steps, trees: Vec::new(), rootless: input.rootless, all_mounts: host_mounts };

    let covered = covered_mounts(config, rootfs, input.rootfs_fd, host_mounts);
    for (index, item) in covered.iter().enumerate() {
        let target = at_new_root(&item.inside);
        if index == 0 {
            if builder.rootless && builder.has_mounts_below(&item.host) {
                // A split root is a plain directory, shown as `/`: pivot_root needs a mount point.
                builder.steps.push(Step::Directory { path: cstring(&target), mode: 0o755 });
                builder.bind(&target, &target);
            } else {
                // A mount point only: what is mounted on it hides its mode.
                builder.steps.push(Step::Mkdir(cstring(&target)));
            }
        }
        builder.cover(item, &target);
    }
    if let Some(mount) = left_behind {
        builder.steps.push(Step::Mkdir(cstring(LEFT_BEHIND)));
        builder.steps.push(Step::Move { source: cstring(mount), target: cstring(LEFT_BEHIND), copy_if_refused: false });
    }
    if rootfs.is_none() {
        for api in ["/dev", "/sys"] {
            if !Path::new(api).is_dir() {
                continue;
            }
            let (source, target) = (cstring(api), cstring(at_new_root(Path::new(api))));
            builder.steps.push(if input.rootless {
                // Locked in a user namespace: a move is refused, a recursive bind is not.
                Step::Mount { source, target, fstype: None, flags: MsFlags::MS_BIND | MsFlags::MS_REC, data: None }
            } else {
                Step::Move { source, target, copy_if_refused: true }
            });
        }
    }
    builder.trees
}

/// `inside` below the new root.
fn at_new_root(inside: &Path) -> PathBuf {
    match inside.strip_prefix("/") {
        Ok(relative) if relative.as_os_str().is_empty() => PathBuf::from(NEW_ROOT),
        Ok(relative) => Path::new(NEW_ROOT).join(relative),
        Err(_) => Path::new(NEW_ROOT).join(inside),
    }
}

/// The file systems to cover, parents first: the root (the host's `/` or the rootfs), then
/// every mount below it but the API file systems, the sandbox's own tmpfs mount points
/// (mounted over anyway), automount points and mounts covered by a later one on the same point.
fn covered_mounts<'a>(
    config: &Config,
    rootfs: Option<&Path>,
    rootfs_fd: Option<RawFd>,
    host_mounts: &'a [HostMount],
) -> Vec<Covered<'a>> {
    let tree_root = rootfs.unwrap_or(Path::new("/"));
    // The rootfs is reached through its descriptor: the layer on /tmp may hide its path.
    let lower_root = match rootfs_fd {
        Some(fd) if rootfs.is_some() => PathBuf::from(format!("/proc/self/fd/{fd}")),
        _ => PathBuf::from("/"),
    };
    let root_mount = host_mounts.iter().rev().find(|mount| tree_root.starts_with(&mount.mount_point));
    let mut covered = vec![Covered {
        lower: lower_root.clone(),
        host: tree_root.to_path_buf(),
        inside: PathBuf::from("/"),
        mount: root_mount.filter(|mount| mount.mount_point == tree_root),
    }];
    for (index, mount) in host_mounts.iter().enumerate() {
        let Ok(relative) = mount.mount_point.strip_prefix(tree_root) else { continue };
        if relative.as_os_str().is_empty() {
            continue;
        }
        let inside = Path::new("/").join(relative);
        let hidden_later = host_mounts[index + 1..].iter().any(|later| later.mount_point == mount.mount_point);
        let skipped = API_FILE_SYSTEMS.iter().any(|api| inside.starts_with(api))
            || config.tmpfs.iter().any(|tmpfs| inside.starts_with(&tmpfs.path))
            || inside.starts_with(LAYER_MOUNT_POINT)
            || mount.fstype == "autofs";
        if hidden_later || skipped {
            continue;
        }
        covered.push(Covered { lower: lower_root.join(relative), host: mount.mount_point.clone(), inside, mount: Some(mount) });
    }
    covered
}

struct Builder<'s, 'm> {
    steps: &'s mut Vec<Step>,
    trees: Vec<Tree>,
    rootless: bool,
    all_mounts: &'m [HostMount],
}

impl Builder<'_, '_> {
    /// Covers one file system at `target` (whose mount point exists by now).
    fn cover(&mut self, item: &Covered<'_>, target: &Path) {
        let read_only = item.mount.is_some_and(|mount| mount.read_only);
        let kept_flags = item.mount.map_or(MsFlags::empty(), |mount| mount.kept_flags);
        if !item.host.is_dir() {
            // A mount of one file: no overlay takes it; bound read-only, a write fails.
            self.bind_read_only(&item.lower, target, kept_flags);
        } else if self.rootless && self.has_mounts_below(&item.host) {
            self.split(&item.lower, &item.host, &item.inside, target);
        } else if read_only {
            self.bind_read_only(&item.lower, target, kept_flags);
        } else {
            self.overlay(&item.lower, &item.host, &item.inside, target, kept_flags);
        }
    }

    /// Whether a host mount lies below `dir` (in a user namespace those are locked: no overlay
    /// or non-recursive bind of `dir` is allowed).
    fn has_mounts_below(&self, dir: &Path) -> bool {
        self.all_mounts.iter().any(|mount| mount.mount_point != dir && mount.mount_point.starts_with(dir))
    }

    fn overlay(&mut self, lower: &Path, host: &Path, inside: &Path, target: &Path, flags: MsFlags) {
        push_overlay(self.steps, &mut self.trees, self.rootless, [lower, host, inside, target], flags);
    }

    /// A non-recursive bind: what is mounted below `source` is covered in its own turn.
    fn bind(&mut self, source: &Path, target: &Path) {
        self.steps.push(Step::Mount {
            source: cstring(source),
            target: cstring(target),
            fstype: None,
            flags: MsFlags::MS_BIND,
            data: None,
        });
    }

    fn bind_read_only(&mut self, source: &Path, target: &Path, kept_flags: MsFlags) {
        self.bind(source, target);
        self.steps.push(Step::ReadOnlyMount { target: cstring(target), flags: kept_flags });
    }

    /// Stands a layer directory in for the host directory `host` (see the module doc).
    fn split(&mut self, lower: &Path, host: &Path, inside: &Path, target: &Path) {
        let Ok(entries) = std::fs::read_dir(host) else {
            // Not readable with the launcher's credentials: the command cannot list it either.
            return;
        };
        let mut mount_points: Vec<OsString> = Vec::new();
        let in_layer = target.strip_prefix(LAYER_MOUNT_POINT).unwrap_or(target).to_path_buf();
        let mut names: Vec<OsString> = entries.filter_map(|entry| entry.ok().map(|entry| entry.file_name())).collect();
        names.sort();
        let split_index = self.trees.len();
        self.trees.push(Tree::Split {
            in_layer,
            lower: host.to_path_buf(),
            shown_at: inside.to_path_buf(),
            mount_points: Vec::new(),
        });
        for name in names {
            let (host_path, lower_path, inside_path, target_path) =
                (host.join(&name), lower.join(&name), inside.join(&name), target.join(&name));
            let Ok(meta) = std::fs::symlink_metadata(&host_path) else { continue };
            if meta.file_type().is_symlink() {
                if let Ok(link) = std::fs::read_link(&host_path) {
                    self.steps.push(Step::Symlink(cstring(&target_path), cstring(link)));
                }
                continue;
            }
            mount_points.push(name.clone());
            let is_mount_point = self.all_mounts.iter().any(|mount| mount.mount_point == host_path);
            if meta.is_dir() {
                self.steps.push(Step::Directory { path: cstring(&target_path), mode: meta.mode() & 0o7777 });
                if is_mount_point {
                    // Covered in its own turn (or by the API binds, /proc, a tmpfs).
                } else if self.has_mounts_below(&host_path) {
                    self.split(&lower_path, &host_path, &inside_path, &target_path);
                } else {
                    self.overlay(&lower_path, &host_path, &inside_path, &target_path, MsFlags::empty());
                }
            } else {
                self.steps.push(Step::CreateFile(cstring(&target_path)));
                if !is_mount_point {
                    self.bind_read_only(&lower_path, &target_path, MsFlags::empty());
                }
            }
        }
        if let Some(Tree::Split { mount_points: slot, .. }) = self.trees.get_mut(split_index) {
            *slot = mount_points;
        }
    }
}

/// Pushes an overlay of `lower` (`host` in the launcher's view, `inside` in the sandbox's) on
/// `target`, keeping the host mount's `flags` (`nosuid`, `nodev`, `noexec`), and its tree.
pub(super) fn push_overlay(
    steps: &mut Vec<Step>,
    trees: &mut Vec<Tree>,
    rootless: bool,
    [lower, host, inside, target]: [&Path; 4],
    flags: MsFlags,
) {
    let index = trees.len();
    let upper = PathBuf::from(format!("upper/{index}"));
    let layer = Path::new(LAYER_MOUNT_POINT);
    let work = layer.join(format!("work/{index}"));
    let options: &[u8] = if rootless { b"userxattr" } else { b"redirect_dir=on,metacopy=off,index=off" };
    let mut data = b"lowerdir=".to_vec();
    escape_option(&mut data, lower);
    data.extend_from_slice(b",upperdir=");
    escape_option(&mut data, &layer.join(&upper));
    data.extend_from_slice(b",workdir=");
    escape_option(&mut data, &work);
    data.push(b',');
    data.extend_from_slice(options);
    steps.push(Step::Overlay {
        lower: cstring(lower),
        upper: cstring(layer.join(&upper)),
        work: cstring(work),
        target: cstring(target),
        flags,
        data: cstring(std::ffi::OsStr::from_bytes(&data)),
    });
    trees.push(Tree::Overlay { upper, lower: host.to_path_buf(), shown_at: inside.to_path_buf() });
}

/// Appends a path as an overlay option value: `\`, `,` and `:` escaped with a backslash (`,`
/// ends an option, `:` separates lower layers).
fn escape_option(out: &mut Vec<u8>, path: &Path) {
    for &byte in path.as_os_str().as_bytes() {
        if matches!(byte, b'\\' | b',' | b':') {
            out.push(b'\\');
        }
        out.push(byte);
    }
}
