//! Why a sandbox could not be set up or waited for, with the cause and the fix.

use std::io;
use std::path::PathBuf;

use nix::errno::Errno;
use thiserror::Error;

use crate::cgroup::CgroupError;
use crate::config::ConfigError;

/// Why a sandbox could not be set up or waited for. The command's own failures are not errors:
/// they are in the [`Outcome`](crate::Outcome).
#[derive(Debug, Error)]
pub enum Error {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The run's cgroup could not be created, used or removed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// `clone` with new namespaces was refused.
    #[error("creating the sandbox's namespaces (clone with {flags}) failed: {source}{}", namespace_hint(*source))]
    Namespaces {
        /// The namespace flags asked for.
        flags: String,
        /// The error from the kernel.
        #[source]
        source: Errno,
    },
    /// A set-up step inside the sandbox failed.
    #[error("{step}: {source}{hint}")]
    Setup {
        /// What was being done, e.g. "mounting tmpfs on /tmp".
        step: String,
        /// The error from the kernel.
        #[source]
        source: Errno,
        /// The likely cause and its fix, in parentheses after a space; may be empty.
        hint: String,
    },
    /// The command could not be executed.
    #[error("cannot execute '{program}': {source}")]
    Exec {
        /// The program as given.
        program: String,
        /// The error from `execvp`.
        #[source]
        source: Errno,
    },
    /// No cgroup could be used and `--require cgroup` / `SANDBOX_REQUIRE=cgroup` forbids the
    /// weaker enforcement.
    #[error(
        "a cgroup is required (--require cgroup or SANDBOX_REQUIRE=cgroup) but none can be used: {cause}"
    )]
    CgroupRequired {
        /// Why no cgroup could be created.
        cause: CgroupError,
    },
    /// `SANDBOX_REQUIRE` has a value other than `cgroup`.
    #[error("SANDBOX_REQUIRE='{0}' is not understood: the only value is 'cgroup'")]
    BadRequire(String),
    /// `SANDBOX_FS` has a value other than those of [`FsMode::CHOICES`](crate::FsMode::CHOICES).
    #[error("SANDBOX_FS='{0}' is not understood: write {choices}", choices = crate::config::FsMode::CHOICES)]
    BadFs(String),
    /// `SANDBOX_HOST_WRITES` has a value other than `discard` or `fail`.
    #[error("SANDBOX_HOST_WRITES='{0}' is not understood: write {choices}", choices = crate::config::HostWrites::CHOICES)]
    BadHostWrites(String),
    /// Setting up the sandbox's user namespace (rootless mode) failed.
    #[error("writing {path} for the sandbox's user namespace: {source}")]
    UserNamespace {
        /// The /proc file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// A contained run's user namespace (see `sys::identity_user_namespace`) was refused.
    #[error(
        "creating the sandbox's namespaces (a contained run's user namespace, clone with CLONE_NEWUSER) failed: \
         {source}{} (--privileged runs without one, giving the command the machine's root)",
        crate::check::contained_user_namespace_hint(*source)
    )]
    ContainedUserNamespace {
        /// The error from the kernel.
        #[source]
        source: Errno,
    },
    /// A contained run was asked for where `/proc` shows an outer PID namespace.
    #[error(
        "a contained run cannot start here: /proc shows an outer PID namespace, not this process's (this is a \
         contained sandbox nested in another contained one, where the kernel refuses a /proc of its own under the \
         outer run's locked masks, so its parent's is bound), and the sandbox finds its processes in /proc (run the \
         outermost sandbox with --privileged, or nest one level less)"
    )]
    ForeignProc,
    /// An operation of the launcher itself failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The exit status the CLI uses: 127/126 when the command could not be executed (as a shell
    /// does), 125 when the sandbox itself failed.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Exec { source: Errno::ENOENT, .. } => 127,
            Error::Exec { .. } => 126,
            _ => 125,
        }
    }
}

/// The cause of a refused namespace clone and its fix: a seccomp filter, else a missing
/// capability, else a user-namespace sysctl (`sandbox check` probes the same).
fn namespace_hint(errno: Errno) -> String {
    crate::check::namespace_refusal_hint(errno)
}

/// The likely cause of a failed set-up step and its fix: the step's own (see
/// [`Step::failure_hint`](crate::mounts::Step)), else one for the error.
pub(super) fn step_hint(step: Option<&crate::mounts::Step>, errno: Errno) -> String {
    if let Some(hint) = step.and_then(|step| step.failure_hint(errno)) {
        return format!(" ({hint})");
    }
    errno_hint(errno)
}

fn errno_hint(errno: Errno) -> String {
    match errno {
        Errno::EPERM | Errno::EACCES if !nix::unistd::geteuid().is_root() => crate::check::user_namespace_mount_hint()
            .unwrap_or_else(|| " (permission denied inside the sandbox: run as root)".into()),
        Errno::EPERM | Errno::EACCES => " (permission denied inside the sandbox: run as root)".into(),
        Errno::ENOENT => " (the mount point does not exist: create it, or mount below the sandbox's tmpfs)".into(),
        _ => String::new(),
    }
}

pub(super) fn io_error(action: &'static str) -> impl FnOnce(Errno) -> Error {
    move |errno| Error::Io { action, source: errno.into() }
}
