//! What a run under `fs = overlay` changed on the host, read from the upper layers of its
//! overlays after the command ended.
//!
//! The command wrote into overlays whose upper directories live in one tmpfs, the layer, so the
//! host never saw a byte; what it changed is the difference between each upper directory and
//! the host directory below it. An upper directory holds only what was written (and the
//! directories copied up on the way there), so the walk reads the upper side and looks each
//! entry up on the host: its cost follows what the command wrote, not the size of the host.
//!
//! The upper side is in overlayfs's own format (the kernel's
//! `Documentation/filesystems/overlayfs.rst`): a whiteout (character device 0/0) is a deletion;
//! an `opaque` directory hides the host's directory below it; a directory's `redirect` xattr
//! names where it was renamed from; a copied-up file's `origin` xattr holds the file handle of
//! the host file it came from, which pairs a new file with a deleted one as a rename. Opening a
//! file for writing, `chmod` and `touch` copy it up too, so a copied-up file is compared with
//! the host's (type, mode, owner, size, then bytes) before it counts as modified. Every lookup
//! is relative to an open directory descriptor, and only the shown path of a change is built.

// Until the runner reads a run's changes (the next step of `fs = overlay`), only the tests call it.

use std::collections::{HashMap, HashSet};
use std::ffi::{CStr, CString, OsStr};
use std::fs::{File, OpenOptions, Permissions};
use std::io::{self, Seek};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::dir::Dir;
use nix::fcntl::OFlag;
use nix::sys::stat::FileStat;
use rustix::fs::RawDir;
use serde::{Deserialize, Serialize};

use dirfd::{file_handle, open_at, open_dir, open_dir_at, open_dir_if_any, read_full, readlink_at, stat_at, xattr, FileHandle};

mod dirfd;
#[cfg(test)]
mod tests;

/// What happened to one path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum ChangeKind {
    /// Did not exist before.
    Created,
    /// Its content, type, symlink target, mode or owner differ.
    Modified,
    /// Existed before, is gone.
    Deleted,
    /// Moved here from `from` (content possibly changed too).
    Renamed {
        /// Where it was before, as the command saw it.
        from: PathBuf,
    },
}

/// The type of the file the change is about (after the change; before it for `Deleted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    /// A regular file.
    File,
    /// A directory.
    Directory,
    /// A symbolic link.
    Symlink,
    /// A fifo, socket or device.
    Other,
}

/// One changed host path, as the command saw it (the path inside the sandbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsChange {
    /// The path inside the sandbox.
    pub path: PathBuf,
    /// What happened to it.
    #[serde(flatten)]
    pub kind: ChangeKind,
    /// What it is.
    pub file: FileKind,
    /// Bytes (a regular file's size; 0 for the others); for `Deleted`, the size it had.
    pub size: u64,
}

/// Which xattr namespace the overlay keeps its marks in: `trusted.overlay.*` when mounted by
/// root in the initial user namespace, `user.overlay.*` when mounted with `userxattr` (in a user
/// namespace).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum XattrNamespace {
    Trusted,
    User,
}

/// The names of the overlay xattrs the walk reads.
#[derive(Default)]
struct OverlayXattrs {
    opaque: &'static CStr,
    redirect: &'static CStr,
    origin: &'static CStr,
}

impl XattrNamespace {
    fn names(self) -> OverlayXattrs {
        let (opaque, redirect, origin) = match self {
            Self::Trusted => (c"trusted.overlay.opaque", c"trusted.overlay.redirect", c"trusted.overlay.origin"),
            Self::User => (c"user.overlay.opaque", c"user.overlay.redirect", c"user.overlay.origin"),
        };
        OverlayXattrs { opaque, redirect, origin }
    }
}

/// One part of the sandbox's tree that lives in the layer tmpfs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tree {
    /// An overlay: `upper` (relative to the layer's root) over the host directory `lower`,
    /// mounted at `shown_at` inside the sandbox.
    Overlay { upper: PathBuf, lower: PathBuf, shown_at: PathBuf },
    /// A plain directory of the layer (`in_layer`, relative to the layer's root) that stands for
    /// the host directory `lower`, shown at `shown_at`: made where an overlay of `lower` is not
    /// possible (a user namespace cannot overlay a directory with mounts below it). At set-up
    /// it held one entry per entry of `lower` (symlinks copied, the rest mount points), so an
    /// entry of it not in `lower` was created by the command, one of `lower` missing from it
    /// was deleted, a symlink with another target was modified. `mount_points`: its entries
    /// that are mount points of other trees (not compared).
    Split { in_layer: PathBuf, lower: PathBuf, shown_at: PathBuf, mount_points: Vec<std::ffi::OsString> },
}

impl Tree {
    /// Its directory in the layer (relative to the layer's root), host directory, and place in
    /// the sandbox.
    fn paths(&self) -> (&Path, &Path, &Path) {
        match self {
            Self::Overlay { upper: in_layer, lower, shown_at } | Self::Split { in_layer, lower, shown_at, .. } => {
                (in_layer, lower, shown_at)
            }
        }
    }
}

/// The changes of one run, sorted by path.
///
/// `layer` is the layer tmpfs's root; the trees' `lower` directories are read as the caller
/// sees them. The root of each tree is not compared: its attributes are the set-up's.
pub(crate) fn read_changes(layer: BorrowedFd<'_>, trees: &[Tree], xattrs: XattrNamespace) -> io::Result<Vec<FsChange>> {
    let mut walk = Walk::new(xattrs);
    for (index, tree) in trees.iter().enumerate() {
        let (in_layer_path, lower, shown_at) = tree.paths();
        let in_layer = open_dir_at(layer, in_layer_path).map_err(|err| with_context(err, "opening the layer's", in_layer_path))?;
        let lower_root = match open_dir(lower) {
            Ok(fd) => fd,
            // A host directory the launcher may not read, the command (with the same
            // credentials) could not change either: nothing to list, unless the layer holds some.
            Err(err) if err.kind() == io::ErrorKind::PermissionDenied && !holds_entries(in_layer.as_fd())? => continue,
            Err(err) => return Err(with_context(err, "reading", lower)),
        };
        let visit = TreeVisit { index, shown_at, lower, lower_root, overlay: matches!(tree, Tree::Overlay { .. }) };
        match tree {
            Tree::Overlay { .. } => {
                let at = Compared { lower: Some(visit.lower_root.as_fd()), lower_rel: PathBuf::new(), complete: false };
                // On an error the walk's place is the entry it failed at.
                let mut rel = PathBuf::new();
                walk.visit_dir(&visit, in_layer, &at, &mut rel)
                    .map_err(|err| with_context(err, "comparing the run's change of", &shown_at.join(&rel)))?;
            }
            Tree::Split { mount_points, .. } => walk
                .visit_split(&visit, in_layer, mount_points)
                .map_err(|err| with_context(err, "comparing the run's changes below", shown_at))?,
        }
    }
    walk.pair_renamed_files(layer, trees).map_err(|err| io::Error::new(err.kind(), format!("pairing renamed files: {err}")))?;
    Ok(walk.finish())
}

/// `err` as the failure of doing `what` to `path`, with its kind kept.
fn with_context(err: io::Error, what: &str, path: &Path) -> io::Error {
    io::Error::new(err.kind(), format!("{what} {}: {err}", path.display()))
}

/// Copies every created, modified or renamed regular file, symlink and directory of `changes`
/// out of the layer into `dest` (created; paths below it as inside the sandbox: `dest/etc/foo`),
/// keeping their permission bits, and lists the deleted paths in `dest/DELETED`, one a line
/// (written only when something was deleted). A renamed directory is kept as a directory: what
/// it holds from the host is no change. Set-user/group-ID bits are dropped, so that a command
/// that was root in the sandbox cannot leave a set-user-ID root program on the host.
pub(crate) fn keep_changes(layer: BorrowedFd<'_>, trees: &[Tree], changes: &[FsChange], dest: &Path) -> io::Result<()> {
    /// The mode bits a kept file gets: permissions and sticky, not set-user/group-ID.
    const KEPT_MODE_BITS: u32 = 0o1777;
    std::fs::create_dir_all(dest)?;
    let mut deleted = Vec::new();
    // Directory modes are set last, so that a read-only directory still takes its entries.
    let mut dir_modes = Vec::new();
    for change in changes {
        if change.kind == ChangeKind::Deleted {
            deleted.extend_from_slice(change.path.as_os_str().as_bytes());
            deleted.push(b'\n');
            continue;
        }
        let Some(in_layer) = path_in_layer(trees, &change.path) else { continue };
        let Some(stat) = stat_at(layer, in_layer.as_path())? else { continue };
        let target = dest.join(change.path.strip_prefix("/").unwrap_or(&change.path));
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let mode = stat.st_mode & KEPT_MODE_BITS;
        match file_type(&stat) {
            libc::S_IFDIR => {
                std::fs::create_dir_all(&target)?;
                dir_modes.push((target, mode));
            }
            libc::S_IFREG => {
                let mut source = File::from(open_at(layer, in_layer.as_path(), OFlag::O_RDONLY)?);
                let mut options = OpenOptions::new();
                options.write(true).create(true).truncate(true).custom_flags(libc::O_NOFOLLOW).mode(mode);
                let mut copy = options.open(&target)?;
                io::copy(&mut source, &mut copy)?;
                copy.set_permissions(Permissions::from_mode(mode))?;
            }
            libc::S_IFLNK => {
                let link_target = nix::fcntl::readlinkat(Some(layer.as_raw_fd()), in_layer.as_path())?;
                std::os::unix::fs::symlink(link_target, &target)?;
            }
            _ => {}
        }
    }
    for (dir, mode) in dir_modes.iter().rev() {
        std::fs::set_permissions(dir, Permissions::from_mode(*mode))?;
    }
    if !deleted.is_empty() {
        std::fs::write(dest.join("DELETED"), deleted)?;
    }
    Ok(())
}

/// Where the shown `path` lives in the layer: below the directory of the deepest tree shown
/// above it (a tree at `/home` holds `/home/a`, not the one at `/`).
fn path_in_layer(trees: &[Tree], path: &Path) -> Option<PathBuf> {
    trees
        .iter()
        .filter_map(|tree| {
            let (in_layer, _, shown_at) = tree.paths();
            Some((shown_at.components().count(), in_layer.join(path.strip_prefix(shown_at).ok()?)))
        })
        .max_by_key(|(depth, _)| *depth)
        .map(|(_, in_layer)| in_layer)
}

/// The tree being walked.
struct TreeVisit<'t> {
    index: usize,
    shown_at: &'t Path,
    /// The host directory, as the launcher sees it.
    lower: &'t Path,
    lower_root: OwnedFd,
    /// An overlay's upper directory (with overlay xattrs), not a split tree's plain directory.
    overlay: bool,
}

/// What a directory of the layer is compared with.
struct Compared<'a> {
    /// The host directory; `None` below a created directory (all of it is new).
    lower: Option<BorrowedFd<'a>>,
    /// Its path relative to the tree's lower (what a redirect names).
    lower_rel: PathBuf,
    /// The layer's directory is all there is (an opaque directory and what lies below it): the
    /// host's entries missing from it are deleted, with no whiteout to say so.
    complete: bool,
}

/// An entry of a layer directory, and the host's entry of the same name.
struct Entry<'a> {
    name: &'a CStr,
    upper_dir: BorrowedFd<'a>,
    upper: FileStat,
    lower: Option<(BorrowedFd<'a>, FileStat)>,
}

/// The state of one [`read_changes`].
#[derive(Default)]
struct Walk {
    xattrs: OverlayXattrs,
    changes: Vec<FsChange>,
    /// Deleted regular files of overlays by handle: their change and shown path before the run
    /// (outside any renamed directory). A file copied up from one and found elsewhere is that
    /// file renamed.
    deleted_files: HashMap<FileHandle, (usize, PathBuf)>,
    /// Every deleted regular file of the overlays, for a copied-up file without an `origin`
    /// to match (a host file system without handles, a user namespace's overlay): a copy-up
    /// keeps size, mode, owner and modification time, so a created file with all of those and
    /// the same bytes is that file renamed.
    deleted_regular: Vec<DeletedFile>,
    /// Deleted directories of overlays by (tree, path relative to its lower), and their change.
    deleted_dirs: HashMap<(usize, PathBuf), usize>,
    /// Where renamed directories came from, as `deleted_dirs` keys: the whiteout a rename leaves
    /// there is no deletion.
    renamed_dir_origins: Vec<(usize, PathBuf)>,
    /// Created or modified regular files of overlays (change, tree): maybe renamed ones.
    rename_candidates: Vec<(usize, usize)>,
    /// Deletions that were renames (their change).
    paired_deletions: HashSet<usize>,
    /// Two read buffers for comparing file contents, allocated on first use.
    buffers: (Vec<u8>, Vec<u8>),
}

/// A deleted host file, for [`Walk::deleted_regular`].
#[derive(Debug)]
struct DeletedFile {
    /// Its change.
    index: usize,
    /// Its shown path before the run.
    before: PathBuf,
    /// Its path on the host, to compare bytes.
    host: PathBuf,
    key: RenameKey,
}

/// What a rename and a copy-up keep of a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RenameKey {
    size: i64,
    mtime: (i64, i64),
    mode: libc::mode_t,
    owner: (libc::uid_t, libc::gid_t),
}

impl RenameKey {
    fn of(stat: &FileStat) -> RenameKey {
        RenameKey {
            size: stat.st_size,
            mtime: (stat.st_mtime, stat.st_mtime_nsec),
            mode: stat.st_mode,
            owner: (stat.st_uid, stat.st_gid),
        }
    }
}

impl Walk {
    fn new(xattrs: XattrNamespace) -> Self {
        Self { xattrs: xattrs.names(), ..Self::default() }
    }

    /// Records a change of `rel` (relative to the tree's root) and returns its index.
    fn push(&mut self, tree: &TreeVisit<'_>, rel: &Path, kind: ChangeKind, stat: &FileStat) -> usize {
        let size = if file_type(stat) == libc::S_IFREG { u64::try_from(stat.st_size).unwrap_or(0) } else { 0 };
        self.changes.push(FsChange { path: tree.shown_at.join(rel), kind, file: file_kind(stat), size });
        self.changes.len() - 1
    }

    /// Compares every entry of the layer directory `upper` (taken) with `at`.
    fn visit_dir(&mut self, tree: &TreeVisit<'_>, upper: OwnedFd, at: &Compared<'_>, rel: &mut PathBuf) -> io::Result<()> {
        /// Bytes of directory entries read at a time: a directory a test filled with a thousand
        /// files in a dozen `getdents64`, where libc's `readdir` (musl: 2 KiB) takes a dozen more.
        const LISTING_BUFFER: usize = 32 * 1024;
        let mut buffer = vec![MaybeUninit::<u8>::uninit(); LISTING_BUFFER];
        let mut listing = RawDir::new(&upper, &mut buffer);
        let mut present = HashSet::new();
        while let Some(entry) = listing.next() {
            let entry = entry?;
            let name = entry.file_name();
            if is_dot(name) {
                continue;
            }
            if at.complete {
                present.insert(name.to_owned());
            }
            self.visit_entry(tree, upper.as_fd(), at, name, rel)?;
        }
        if at.complete {
            self.record_missing(tree, at, &present, rel)?;
        }
        Ok(())
    }

    /// Compares the entry `name` of the layer directory `upper_dir` with the host's, if any.
    fn visit_entry(
        &mut self,
        tree: &TreeVisit<'_>,
        upper_dir: BorrowedFd<'_>,
        at: &Compared<'_>,
        name: &CStr,
        rel: &mut PathBuf,
    ) -> io::Result<()> {
        let Some(upper) = stat_at(upper_dir, name)? else { return Ok(()) };
        let lower = match at.lower {
            Some(lower_dir) => stat_at(lower_dir, name)?.map(|stat| (lower_dir, stat)),
            None => None,
        };
        rel.push(OsStr::from_bytes(name.to_bytes()));
        let compared = self.compare_entry(tree, at, &Entry { name, upper_dir, upper, lower }, rel);
        rel.pop();
        compared
    }

    fn compare_entry(&mut self, tree: &TreeVisit<'_>, at: &Compared<'_>, entry: &Entry<'_>, rel: &mut PathBuf) -> io::Result<()> {
        let (upper, name) = (&entry.upper, entry.name);
        let change = match (file_type(upper), entry.lower) {
            (libc::S_IFCHR, lower) if upper.st_rdev == 0 => {
                // A whiteout: the host's entry is deleted (none there: nothing was).
                if let Some((_, lower)) = lower {
                    self.record_deleted(tree, at, name, &lower, rel)?;
                }
                return Ok(());
            }
            (libc::S_IFDIR, _) => return self.visit_subdir(tree, at, entry, rel),
            (_, None) => ChangeKind::Created,
            (libc::S_IFREG, Some((lower_dir, lower))) => {
                let unchanged = same_attributes(upper, &lower)
                    && upper.st_size == lower.st_size
                    && self.same_bytes(entry.upper_dir, lower_dir, name)?;
                if unchanged {
                    return Ok(());
                }
                ChangeKind::Modified
            }
            (libc::S_IFLNK, Some((lower_dir, lower))) => {
                if file_type(&lower) == libc::S_IFLNK && readlink_at(entry.upper_dir, name)? == readlink_at(lower_dir, name)? {
                    return Ok(());
                }
                ChangeKind::Modified
            }
            (_, Some((_, lower))) => {
                if same_attributes(upper, &lower) && upper.st_rdev == lower.st_rdev {
                    return Ok(());
                }
                ChangeKind::Modified
            }
        };
        let index = self.push(tree, rel, change, upper);
        if tree.overlay && file_type(upper) == libc::S_IFREG {
            self.rename_candidates.push((index, tree.index));
        }
        Ok(())
    }

    fn visit_subdir(&mut self, tree: &TreeVisit<'_>, at: &Compared<'_>, entry: &Entry<'_>, rel: &mut PathBuf) -> io::Result<()> {
        let upper = open_dir_at(entry.upper_dir, entry.name)?;
        // Where it is on the host unless renamed.
        let lower_rel = at.lower_rel.join(OsStr::from_bytes(entry.name.to_bytes()));
        let redirect = if tree.overlay { xattr(upper.as_fd(), self.xattrs.redirect)? } else { None };
        // A renamed directory's origin: absolute from the overlay's root, or relative to the
        // parent's place on the host. A directory renamed back has its own.
        let origin = redirect.map(|redirect| {
            let redirect = Path::new(OsStr::from_bytes(&redirect));
            redirect.strip_prefix("/").map_or_else(|_| at.lower_rel.join(redirect), Path::to_path_buf)
        });
        if let Some(origin) = origin.filter(|origin| *origin != lower_rel) {
            self.push(tree, rel, ChangeKind::Renamed { from: tree.shown_at.join(&origin) }, &entry.upper);
            let origin_dir = open_dir_if_any(tree.lower_root.as_fd(), &origin)?;
            let inside = Compared { lower: origin_dir.as_ref().map(AsFd::as_fd), lower_rel: origin.clone(), complete: false };
            self.renamed_dir_origins.push((tree.index, origin));
            return self.visit_dir(tree, upper, &inside, rel);
        }
        let lower = match entry.lower {
            Some((parent, lower)) if file_type(&lower) == libc::S_IFDIR => Some((open_dir_at(parent, entry.name)?, lower)),
            _ => None,
        };
        let Some((lower_dir, lower)) = lower else {
            self.push(tree, rel, ChangeKind::Created, &entry.upper);
            return self.visit_dir(tree, upper, &Compared { lower: None, lower_rel, complete: false }, rel);
        };
        if !same_attributes(&entry.upper, &lower) {
            self.push(tree, rel, ChangeKind::Modified, &entry.upper);
        }
        let opaque = || Ok::<_, io::Error>(tree.overlay && xattr(upper.as_fd(), self.xattrs.opaque)?.as_deref() == Some(b"y"));
        let complete = at.complete || opaque()?;
        self.visit_dir(tree, upper, &Compared { lower: Some(lower_dir.as_fd()), lower_rel, complete }, rel)
    }

    /// Records the deletion of the host's `name` in `at` (the entry only, not what a directory
    /// held), noting what a rename may have left behind.
    fn record_deleted(
        &mut self,
        tree: &TreeVisit<'_>,
        at: &Compared<'_>,
        name: &CStr,
        lower: &FileStat,
        rel: &Path,
    ) -> io::Result<()> {
        let index = self.push(tree, rel, ChangeKind::Deleted, lower);
        match (tree.overlay, file_type(lower), at.lower) {
            (true, libc::S_IFREG, Some(lower_dir)) => {
                let lower_rel = at.lower_rel.join(OsStr::from_bytes(name.to_bytes()));
                let before = tree.shown_at.join(&lower_rel);
                if let Some(handle) = file_handle(lower_dir, name)? {
                    self.deleted_files.insert(handle, (index, before.clone()));
                }
                let host = tree.lower.join(&lower_rel);
                self.deleted_regular.push(DeletedFile { index, before, host, key: RenameKey::of(lower) });
            }
            (true, libc::S_IFDIR, _) => {
                self.deleted_dirs.insert((tree.index, at.lower_rel.join(OsStr::from_bytes(name.to_bytes()))), index);
            }
            _ => {}
        }
        Ok(())
    }

    /// Records as deleted every entry of the host directory of `at` not in `present`.
    fn record_missing(
        &mut self,
        tree: &TreeVisit<'_>,
        at: &Compared<'_>,
        present: &HashSet<CString>,
        rel: &mut PathBuf,
    ) -> io::Result<()> {
        let Some(lower_dir) = at.lower else { return Ok(()) };
        let mut listing = Dir::from(open_dir_at(lower_dir, c".")?)?;
        for entry in listing.iter() {
            let entry = entry?;
            let name = entry.file_name();
            if is_dot(name) || present.contains(name) {
                continue;
            }
            let Some(lower) = stat_at(lower_dir, name)? else { continue };
            rel.push(OsStr::from_bytes(name.to_bytes()));
            let recorded = self.record_deleted(tree, at, name, &lower, rel);
            rel.pop();
            recorded?;
        }
        Ok(())
    }

    /// Compares a split tree's directory (one level) with the host's.
    fn visit_split(&mut self, tree: &TreeVisit<'_>, in_layer: OwnedFd, mount_points: &[std::ffi::OsString]) -> io::Result<()> {
        let lower_dir = tree.lower_root.as_fd();
        let mut present: HashSet<CString> = mount_points.iter().filter_map(|name| CString::new(name.as_bytes()).ok()).collect();
        let mut listing = Dir::from(in_layer)?;
        // SAFETY: as in `visit_dir`: `listing` owns the descriptor and outlives the loop.
        let layer_dir = unsafe { BorrowedFd::borrow_raw(listing.as_raw_fd()) };
        let mut rel = PathBuf::new();
        let created = Compared { lower: None, lower_rel: PathBuf::new(), complete: false };
        for entry in listing.iter() {
            let entry = entry?;
            let name = entry.file_name();
            if is_dot(name) || !present.insert(name.to_owned()) {
                continue; // a mount point
            }
            let Some(lower) = stat_at(lower_dir, name)? else {
                self.visit_entry(tree, layer_dir, &created, name, &mut rel)?;
                continue;
            };
            let Some(upper) = stat_at(layer_dir, name)? else { continue };
            let (upper_is_link, lower_is_link) = (file_type(&upper) == libc::S_IFLNK, file_type(&lower) == libc::S_IFLNK);
            if !upper_is_link && !lower_is_link {
                continue; // a mount point of the set-up: what it shows is another tree's
            }
            if !(upper_is_link && lower_is_link && readlink_at(layer_dir, name)? == readlink_at(lower_dir, name)?) {
                self.push(tree, Path::new(OsStr::from_bytes(name.to_bytes())), ChangeKind::Modified, &upper);
            }
        }
        let host = Compared { lower: Some(lower_dir), lower_rel: PathBuf::new(), complete: true };
        self.record_missing(tree, &host, &present, &mut rel)
    }

    /// Turns a created or modified file copied up from a deleted host file into that file's
    /// rename. Reads origins only when a regular file was deleted: the common run pays nothing.
    fn pair_renamed_files(&mut self, layer: BorrowedFd<'_>, trees: &[Tree]) -> io::Result<()> {
        if self.deleted_regular.is_empty() {
            return Ok(());
        }
        for (index, tree_index) in std::mem::take(&mut self.rename_candidates) {
            let (in_layer, _, shown_at) = trees[tree_index].paths();
            let Ok(rel) = self.changes[index].path.strip_prefix(shown_at) else { continue };
            let file = open_at(layer, in_layer.join(rel).as_path(), OFlag::O_RDONLY)?;
            let origin = xattr(file.as_fd(), self.xattrs.origin)?;
            let by_handle = origin.as_deref().and_then(origin_handle).and_then(|handle| self.deleted_files.remove(&handle));
            let paired = match by_handle {
                Some(pair) => Some(pair),
                // No origin, or one of no deleted file: the file's attributes and bytes tell.
                None if origin.as_deref().is_none_or(<[u8]>::is_empty) => self.same_as_deleted(file)?,
                None => None,
            };
            let Some((deleted, from)) = paired else { continue };
            self.deleted_regular.retain(|file| file.index != deleted);
            self.changes[index].kind = ChangeKind::Renamed { from };
            self.paired_deletions.insert(deleted);
        }
        Ok(())
    }

    /// The deleted file that `file` is a copy of, if one is: same [`RenameKey`], same bytes.
    fn same_as_deleted(&mut self, file: OwnedFd) -> io::Result<Option<(usize, PathBuf)>> {
        let key = RenameKey::of(&nix::sys::stat::fstat(file.as_raw_fd())?);
        let mut file = File::from(file);
        for position in 0..self.deleted_regular.len() {
            if self.deleted_regular[position].key != key || self.paired_deletions.contains(&self.deleted_regular[position].index) {
                continue;
            }
            let mut host = File::open(&self.deleted_regular[position].host)?;
            file.rewind()?;
            if self.same_content(&mut file, &mut host)? {
                let deleted = &self.deleted_regular[position];
                return Ok(Some((deleted.index, deleted.before.clone())));
            }
        }
        Ok(None)
    }

    /// The changes, sorted by path, without the deletions that were renames.
    fn finish(mut self) -> Vec<FsChange> {
        for origin in &self.renamed_dir_origins {
            self.paired_deletions.extend(self.deleted_dirs.get(origin));
        }
        let mut changes: Vec<FsChange> = (self.changes.into_iter().enumerate())
            .filter_map(|(index, change)| (!self.paired_deletions.contains(&index)).then_some(change))
            .collect();
        changes.sort_unstable_by(|a, b| path_order(&a.path, &b.path));
        changes
    }

    /// Whether the files `name` in `upper_dir` and `lower_dir` (same size) hold the same bytes;
    /// reads up to the first difference.
    fn same_bytes(&mut self, upper_dir: BorrowedFd<'_>, lower_dir: BorrowedFd<'_>, name: &CStr) -> io::Result<bool> {
        let mut upper = File::from(open_at(upper_dir, name, OFlag::O_RDONLY)?);
        let mut lower = File::from(open_at(lower_dir, name, OFlag::O_RDONLY)?);
        self.same_content(&mut upper, &mut lower)
    }

    /// Whether two open files of the same size hold the same bytes; reads up to the first
    /// difference.
    fn same_content(&mut self, upper: &mut File, lower: &mut File) -> io::Result<bool> {
        /// Bytes read from each file at a time.
        const CHUNK: usize = 64 * 1024;
        let (upper_bytes, lower_bytes) = &mut self.buffers;
        upper_bytes.resize(CHUNK, 0);
        lower_bytes.resize(CHUNK, 0);
        loop {
            let read = read_full(upper, upper_bytes)?;
            if read_full(lower, lower_bytes)? != read || upper_bytes[..read] != lower_bytes[..read] {
                return Ok(false);
            }
            if read < CHUNK {
                return Ok(true);
            }
        }
    }
}

/// The file handle in an overlay `origin` xattr (`struct ovl_fb` in the kernel's
/// `fs/overlayfs/overlayfs.h`): version 0, magic 0xfb, the length of it all, flags, the handle
/// type, the layer's 16-byte uuid, the handle. `None` for an empty origin (a host file system
/// without handles), an upper inode's handle, or a format this code does not know.
fn origin_handle(origin: &[u8]) -> Option<FileHandle> {
    const VERSION: u8 = 0;
    const MAGIC: u8 = 0xfb;
    const FLAG_PATH_UPPER: u8 = 1 << 2;
    const HEADER_LEN: usize = 5 + 16;
    let &[version, magic, len, flags, handle_type] = origin.first_chunk::<5>()?;
    let len = usize::from(len);
    if version != VERSION || magic != MAGIC || flags & FLAG_PATH_UPPER != 0 || len < HEADER_LEN || len > origin.len() {
        return None;
    }
    Some(FileHandle { handle_type: i32::from(handle_type), bytes: origin[HEADER_LEN..len].to_vec() })
}

/// `Path`'s order (component by component, so that what a directory holds follows it) for the
/// paths the walk builds (no `.`, no doubled `/`): their bytes compared with the separator as
/// the smallest byte. `Path`'s own comparison splits both paths into components every time,
/// which for a run of 1,000 changes took longer than listing them; this finds the first
/// difference eight bytes at a time and allocates nothing.
fn path_order(a: &Path, b: &Path) -> std::cmp::Ordering {
    let (a, b) = (a.as_os_str().as_bytes(), b.as_os_str().as_bytes());
    let shorter = a.len().min(b.len());
    let mut same = 0;
    while same + 8 <= shorter && a[same..same + 8] == b[same..same + 8] {
        same += 8;
    }
    while same < shorter && a[same] == b[same] {
        same += 1;
    }
    let rank = |byte: u8| if byte == b'/' { 0 } else { u16::from(byte) + 1 };
    match (a.get(same), b.get(same)) {
        (Some(&x), Some(&y)) => rank(x).cmp(&rank(y)),
        _ => a.len().cmp(&b.len()),
    }
}

/// Whether the directory `dir` has an entry besides `.` and `..`.
fn holds_entries(dir: BorrowedFd<'_>) -> io::Result<bool> {
    let mut listing = nix::dir::Dir::from_fd(nix::unistd::dup(dir.as_raw_fd())?)?;
    for entry in listing.iter() {
        if !is_dot(entry?.file_name()) {
            return Ok(true);
        }
    }
    Ok(false)
}

fn is_dot(name: &CStr) -> bool {
    matches!(name.to_bytes(), b"." | b"..")
}

fn file_type(stat: &FileStat) -> libc::mode_t {
    stat.st_mode & libc::S_IFMT
}

fn file_kind(stat: &FileStat) -> FileKind {
    match file_type(stat) {
        libc::S_IFREG => FileKind::File,
        libc::S_IFDIR => FileKind::Directory,
        libc::S_IFLNK => FileKind::Symlink,
        _ => FileKind::Other,
    }
}

/// Same type, permissions and owner (times do not count: `touch` changes nothing).
fn same_attributes(a: &FileStat, b: &FileStat) -> bool {
    a.st_mode == b.st_mode && a.st_uid == b.st_uid && a.st_gid == b.st_gid
}
