//! The one error type of cgroup work: it always names the file, and the fix where there is one.

use std::io;
use std::path::{Path, PathBuf};

use thiserror::Error;

/// Something went wrong with a cgroup file; always names the file.
#[derive(Debug, Error)]
pub enum CgroupError {
    /// Reading or writing a cgroup file or directory failed.
    #[error("{action} {path}: {source}{hint}", hint = privilege_hint(source))]
    Io {
        /// What was being done: "creating cgroup", "writing".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No cgroup hierarchy carries a controller this run needs.
    #[error("{0}")]
    Unavailable(String),
    /// A cgroup file had unexpected contents.
    #[error("unexpected contents in {path}: {text:?}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held.
        text: String,
    },
}

fn privilege_hint(err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::PermissionDenied => {
            " (this needs root, or a cgroup delegated to you: pass it with --cgroup-parent; \
             `sandbox check` shows what is writable)"
        }
        io::ErrorKind::ReadOnlyFilesystem => {
            " (the cgroup file system is mounted read-only here, as in many containers: \
             run the container with a writable cgroup mount or cgroupns=private)"
        }
        _ => "",
    }
}

pub(crate) fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io { action, path: path.to_path_buf(), source }
}
