//! What a run under `fs = overlay` changed on the host, read from the upper layers of its
//! overlays after the command ended.
//!
//! INTERFACE ONLY: the implementation is being written.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

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
    Renamed { from: PathBuf },
}

/// The type of the file the change is about (after the change; before it for `Deleted`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    File,
    Directory,
    Symlink,
    Other,
}

/// One changed host path, as the command saw it (the path inside the sandbox).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FsChange {
    pub path: PathBuf,
    #[serde(flatten)]
    pub kind: ChangeKind,
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
