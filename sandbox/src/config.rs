//! What a sandbox should look like: limits, mounts, namespaces. Plain data, checked by
//! [`Config::validate`] before anything is created.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::units::{self, UnitError, MAX_CPU_CORES, MAX_PIDS, MIN_CPU_CORES};

/// Resource limits of one run, enforced by its cgroup.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limits {
    /// Maximum number of tasks (processes and threads), `pids.max`.
    pub pids: Option<u64>,
    /// Maximum memory in bytes, without swap (`memory.max`, `memory.limit_in_bytes`).
    pub memory_bytes: Option<u64>,
    /// CPU bandwidth in cores: `0.3` is 30 ms of CPU time per 100 ms period.
    pub cpu_cores: Option<f64>,
}

/// A tmpfs to mount inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmpfsMount {
    /// Absolute path inside the sandbox.
    pub path: PathBuf,
    /// Size limit of the tmpfs in bytes; the kernel's default (half of RAM) when `None`.
    pub size_bytes: Option<u64>,
}

/// A host path made visible inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BindMount {
    /// Host path.
    pub source: PathBuf,
    /// Absolute path inside the sandbox.
    pub target: PathBuf,
    /// Mount it read-only.
    pub read_only: bool,
}

/// Network namespace choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NetMode {
    /// Share the host's network.
    #[default]
    Host,
    /// A new network namespace with only `lo`, up.
    None,
}

/// How the host's file systems are seen inside the sandbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FsMode {
    /// As they are: what the command writes outside the sandbox's tmpfs mounts reaches the host.
    #[default]
    Host,
    /// Every mount read-only except the kernel's API file systems (`/proc`, `/sys`, `/dev`), the
    /// sandbox's tmpfs mounts, read-write binds and [`Config::writable`] paths: a write anywhere
    /// else fails with `EROFS`, as under systemd's `ProtectSystem=strict`.
    ReadOnly,
    /// Every host mount seen through a copy-on-write layer (an overlay whose upper half is a
    /// tmpfs of the run, charged to its memory cgroup): the command changes what it likes, the
    /// host stays as it was, and the run reports what the command changed
    /// ([`crate::fs_changes`]). The API file systems, the sandbox's tmpfs mounts, read-write
    /// binds and [`Config::writable`] paths are as under [`FsMode::Host`].
    Overlay,
}

impl FsMode {
    /// The values `--fs`, `fs = ".."` and `SANDBOX_FS` take.
    pub const CHOICES: &'static str = "host, ro or overlay";

    /// Parses `host`, `ro` or `overlay`.
    pub fn parse(text: &str) -> Option<FsMode> {
        match text {
            "host" => Some(FsMode::Host),
            "ro" => Some(FsMode::ReadOnly),
            "overlay" => Some(FsMode::Overlay),
            _ => None,
        }
    }
}

/// What an [`FsMode::Overlay`] run's writes to the host's files mean for its verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostWrites {
    /// They are thrown away with the layer; the run reports them.
    #[default]
    Discard,
    /// They are thrown away and fail the run: the way to catch tests that write outside their
    /// own directories.
    Fail,
}

impl HostWrites {
    /// The values `--host-writes`, `host_writes = ".."` and `SANDBOX_HOST_WRITES` take.
    pub const CHOICES: &'static str = "discard or fail";

    /// Parses `discard` or `fail`.
    pub fn parse(text: &str) -> Option<HostWrites> {
        match text {
            "discard" => Some(HostWrites::Discard),
            "fail" => Some(HostWrites::Fail),
            _ => None,
        }
    }
}

/// Everything that describes one sandbox, independent of the command run in it.
///
/// ```
/// use std::time::Duration;
/// use sandbox::config::{parse_tmpfs, Config, NetMode};
/// use sandbox::units::parse_size;
///
/// let mut config = Config::default();
/// config.limits.memory_bytes = Some(parse_size("64M")?);
/// config.limits.pids = Some(50);
/// config.timeout = Some(Duration::from_secs(5));
/// config.net = NetMode::None;
/// // Below the default /tmp tmpfs, so the mount point is created inside.
/// config.tmpfs.push(parse_tmpfs("/tmp/cache:16M")?);
/// config.validate()?;
///
/// config.limits.pids = Some(0);
/// assert!(matches!(config.validate(), Err(sandbox::config::ConfigError::ZeroPids)));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// cgroup limits.
    pub limits: Limits,
    /// Kill the whole sandbox after this long.
    pub timeout: Option<Duration>,
    /// Hostname inside the UTS namespace.
    pub hostname: String,
    /// tmpfs mounts, in order; `/tmp` by default.
    pub tmpfs: Vec<TmpfsMount>,
    /// Bind mounts, in order, after the tmpfs mounts (so a bind may land inside a tmpfs).
    pub binds: Vec<BindMount>,
    /// Switch to this root directory with `pivot_root`.
    pub rootfs: Option<PathBuf>,
    /// Network namespace.
    pub net: NetMode,
    /// A new IPC namespace (System V IPC, POSIX message queues).
    pub private_ipc: bool,
    /// Create the run's cgroup below this cgroup path instead of the default place.
    pub cgroup_parent: Option<PathBuf>,
    /// Fail instead of falling back to weaker enforcement when no cgroup can be used
    /// (`--require cgroup`; `SANDBOX_REQUIRE=cgroup` in the environment does the same).
    pub require_cgroup: bool,
    /// Let the command gain privileges through set-user-ID programs and file capabilities. By
    /// default the command runs with `PR_SET_NO_NEW_PRIVS`, as under bubblewrap.
    pub allow_new_privileges: bool,
    /// How the host's file systems are seen.
    pub fs: FsMode,
    /// With [`FsMode::ReadOnly`] or [`FsMode::Overlay`]: paths written straight to the host
    /// (not listed as changes).
    pub writable: Vec<PathBuf>,
    /// With [`FsMode::Overlay`]: the most the layer holds (bytes); a write beyond it fails with
    /// `ENOSPC`. Without it the run's memory limit bounds the layer.
    pub fs_size: Option<u64>,
    /// With [`FsMode::Overlay`]: whether a change to the host's files fails the run.
    pub host_writes: HostWrites,
    /// With [`FsMode::Overlay`]: copy the changed files into this directory (made, with its
    /// parents; the paths below it as inside the sandbox, deletions listed in its `DELETED`).
    pub keep_changes: Option<PathBuf>,
    /// As root: give the command the host's root, without the run's cgroup namespace and the
    /// containment that comes with it (a test that loads a module or writes a sysctl). Nothing
    /// changes for a rootless run.
    pub privileged: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            limits: Limits::default(),
            timeout: None,
            hostname: "sandbox".to_string(),
            tmpfs: vec![TmpfsMount { path: "/tmp".into(), size_bytes: None }],
            binds: Vec::new(),
            rootfs: None,
            net: NetMode::Host,
            private_ipc: false,
            cgroup_parent: None,
            require_cgroup: false,
            allow_new_privileges: false,
            fs: FsMode::Host,
            writable: Vec::new(),
            fs_size: None,
            host_writes: HostWrites::Discard,
            keep_changes: None,
            privileged: false,
        }
    }
}

/// A configuration that cannot work; found before anything is created.
#[derive(Debug, Error)]
pub enum ConfigError {
    /// A size or duration did not parse.
    #[error(transparent)]
    Unit(#[from] UnitError),
    /// `--pids 0`.
    #[error("invalid pids limit 0: a sandbox needs at least 1 process (its init); use e.g. --pids 20")]
    ZeroPids,
    /// A pids limit above what the kernel accepts in `pids.max`.
    #[error(
        "invalid pids limit '{0}': it is too large, the kernel allows at most {MAX_PIDS} processes in a \
         cgroup; use e.g. --pids 20"
    )]
    TooManyPids(String),
    /// `--cpu 0`, negative, out of range or not a number.
    #[error("invalid cpu limit '{0}': write a number of cores from {MIN_CPU_CORES} to {MAX_CPU_CORES}, e.g. 0.5 or 2")]
    Cpu(String),
    /// A path inside the sandbox that is not absolute, has `..` or cannot be mounted on.
    #[error("invalid {what} path '{path}': {reason}")]
    SandboxPath {
        /// Which option.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// What is wrong with it, and what to write instead.
        reason: &'static str,
    },
    /// A `--bind` or `--tmpfs` spec that does not have the documented shape.
    #[error("invalid {what} '{spec}': expected {expected}")]
    Spec {
        /// Which option.
        what: &'static str,
        /// The text given.
        spec: String,
        /// The documented shape.
        expected: &'static str,
    },
    /// A host path (bind source, rootfs) that does not exist.
    #[error("{what} '{path}' does not exist: {source}")]
    Missing {
        /// Which option.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The error from the lookup.
        #[source]
        source: std::io::Error,
    },
    /// The rootfs lacks a directory the sandbox mounts onto.
    #[error(
        "rootfs '{rootfs}' has no directory '{dir}' to mount {what} on: create it \
         (mkdir -p {rootfs}{dir})"
    )]
    RootfsMountPoint {
        /// The rootfs.
        rootfs: PathBuf,
        /// The missing directory, as seen inside.
        dir: PathBuf,
        /// What would be mounted there.
        what: &'static str,
    },
    /// A tmpfs mount point that does not exist.
    #[error(
        "--tmpfs mount point '{path}' does not exist: create it, or mount below the sandbox's /tmp \
         (e.g. /tmp/cache), where it is created"
    )]
    TmpfsMountPoint {
        /// The path.
        path: PathBuf,
    },
    /// `--writable` without `--fs ro` or `--fs overlay`, where everything is writable already.
    #[error("--writable '{0}' needs --fs ro or --fs overlay (with --fs host every path is writable already)")]
    WritableWithoutReadOnly(PathBuf),
    /// An overlay option (`--fs-size`, `--host-writes fail`, `--keep-changes`) without
    /// `--fs overlay`.
    #[error("{0} needs --fs overlay: only an overlay run has a layer and a list of changes")]
    NeedsOverlay(&'static str),
    /// A `--writable` path inside one of the sandbox's own tmpfs mounts, which hides it.
    #[error(
        "--writable '{path}' lies in the sandbox's tmpfs {tmpfs}, which is writable but hides the host's \
         files there: to write those, bind them instead (--bind {path})"
    )]
    WritableInTmpfs {
        /// The path.
        path: PathBuf,
        /// The tmpfs mount point above it.
        tmpfs: PathBuf,
    },
    /// A hostname the kernel would refuse.
    #[error("invalid hostname '{0}': use 1 to 64 characters out of letters, digits, '-' and '.'")]
    Hostname(String),
}

/// Parses `--tmpfs PATH[:SIZE]`.
///
/// The path is checked before the size so that `:` (no path) is reported as a missing path rather
/// than as an empty size.
pub fn parse_tmpfs(spec: &str) -> Result<TmpfsMount, ConfigError> {
    let (path, size) = match spec.split_once(':') {
        Some((path, size)) => (path, Some(size)),
        None => (spec, None),
    };
    if path.is_empty() {
        return Err(ConfigError::Spec { what: "--tmpfs", spec: spec.into(), expected: "PATH[:SIZE], e.g. /tmp:64M" });
    }
    let path = tmpfs_path(path)?;
    Ok(TmpfsMount { path, size_bytes: size.map(units::parse_size).transpose()? })
}

/// Parses `--bind SRC:DST[:ro]`; a bare `SRC` binds the path onto itself.
///
/// ```
/// use std::path::Path;
///
/// let bind = sandbox::config::parse_bind("/srv/data:/data:ro")?;
/// assert_eq!((bind.source.as_path(), bind.target.as_path(), bind.read_only), (Path::new("/srv/data"), Path::new("/data"), true));
/// # Ok::<(), sandbox::config::ConfigError>(())
/// ```
pub fn parse_bind(spec: &str) -> Result<BindMount, ConfigError> {
    let bad = || ConfigError::Spec { what: "--bind", spec: spec.into(), expected: "SRC:DST or SRC:DST:ro, e.g. /data:/data:ro" };
    let parts: Vec<&str> = spec.split(':').collect();
    let (source, target, read_only) = match parts.as_slice() {
        [src] => (*src, *src, false),
        [src, dst] => (*src, *dst, false),
        [src, dst, "ro"] => (*src, *dst, true),
        [src, dst, "rw"] => (*src, *dst, false),
        _ => return Err(bad()),
    };
    if source.is_empty() || target.is_empty() {
        return Err(bad());
    }
    Ok(BindMount { source: source.into(), target: sandbox_path("--bind target", target)?, read_only })
}

/// Parses `--cpu CORES`.
pub fn parse_cpu(text: &str) -> Result<f64, ConfigError> {
    match text.trim().parse::<f64>() {
        Ok(cores) if cores.is_finite() && (MIN_CPU_CORES..=MAX_CPU_CORES).contains(&cores) => Ok(cores),
        _ => Err(ConfigError::Cpu(text.into())),
    }
}

/// Parses `--pids N`.
///
/// The digits are checked before the value: `u64::from_str` reports an overflow as soon as it
/// sees one, so `99999999999999999999.5` would be "too large" rather than not a whole number.
pub fn parse_pids(text: &str) -> Result<u64, String> {
    let number = text.trim();
    let digits = number.strip_prefix('+').unwrap_or(number);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid pids limit '{text}': write a whole number of processes, e.g. 20"));
    }
    match digits.parse::<u64>() {
        Ok(0) => Err(ConfigError::ZeroPids.to_string()),
        Ok(n) if n <= MAX_PIDS => Ok(n),
        // Larger than the kernel's limit, or even than 64 bits: a whole number either way.
        _ => Err(ConfigError::TooManyPids(text.into()).to_string()),
    }
}

/// A path inside the sandbox, normalized (`//a/./b/` is `/a/b`).
///
/// A NUL byte is rejected here because no path can hold one: the mount plan turns every path into
/// a C string and panics on one, far from the option that was wrong.
fn sandbox_path(what: &'static str, path: &str) -> Result<PathBuf, ConfigError> {
    let reason = if path.contains('\0') {
        "it contains a NUL byte, which no path can; remove it"
    } else if !Path::new(path).is_absolute() {
        "it is not absolute; write it from the root, e.g. /scratch"
    } else if Path::new(path).components().any(|c| matches!(c, Component::ParentDir)) {
        "it contains '..'; write the path without it, e.g. /scratch"
    } else {
        return Ok(Path::new(path).components().collect());
    };
    Err(ConfigError::SandboxPath { what, path: path.into(), reason })
}

/// A tmpfs mount point: a sandbox path other than `/`, which a tmpfs would hide everything under,
/// the command to run included (the `#[isolated]` macro refuses it too).
fn tmpfs_path(path: &str) -> Result<PathBuf, ConfigError> {
    let normal = sandbox_path("--tmpfs", path)?;
    if normal == Path::new("/") {
        return Err(ConfigError::SandboxPath {
            what: "--tmpfs",
            path: path.into(),
            reason: "a tmpfs over / would hide the whole file system; mount it on a directory, e.g. /scratch",
        });
    }
    Ok(normal)
}

impl Config {
    /// Checks everything that can be checked without creating anything: limits, hostname,
    /// paths that must exist on the host.
    pub fn validate(&self) -> Result<(), ConfigError> {
        match self.limits.pids {
            Some(0) => return Err(ConfigError::ZeroPids),
            Some(pids) if pids > MAX_PIDS => return Err(ConfigError::TooManyPids(pids.to_string())),
            _ => {}
        }
        if let Some(cores) = self.limits.cpu_cores {
            parse_cpu(&cores.to_string())?;
        }
        let host_ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if self.hostname.is_empty() || self.hostname.len() > 64 || !self.hostname.chars().all(host_ok) {
            return Err(ConfigError::Hostname(self.hostname.clone()));
        }
        for tmpfs in &self.tmpfs {
            tmpfs_path(&tmpfs.path.to_string_lossy())?;
            // Without --rootfs the mount point is a host path, which the sandbox never creates
            // (below another of its tmpfs mounts it can, and does).
            if self.rootfs.is_none() && !self.is_inside_tmpfs(&tmpfs.path, tmpfs) && !tmpfs.path.is_dir() {
                return Err(ConfigError::TmpfsMountPoint { path: tmpfs.path.clone() });
            }
        }
        for bind in &self.binds {
            sandbox_path("--bind target", &bind.target.to_string_lossy())?;
            std::fs::metadata(&bind.source).map_err(|source| ConfigError::Missing {
                what: "--bind source",
                path: bind.source.clone(),
                source,
            })?;
        }
        if self.fs != FsMode::Overlay {
            for (set, option) in [
                (self.fs_size.is_some(), "--fs-size"),
                (self.host_writes == HostWrites::Fail, "--host-writes fail"),
                (self.keep_changes.is_some(), "--keep-changes"),
            ] {
                if set {
                    return Err(ConfigError::NeedsOverlay(option));
                }
            }
        }
        for path in &self.writable {
            if self.fs == FsMode::Host {
                return Err(ConfigError::WritableWithoutReadOnly(path.clone()));
            }
            sandbox_path("--writable", &path.to_string_lossy())?;
            if let Some(tmpfs) = self.tmpfs.iter().find(|tmpfs| path.starts_with(&tmpfs.path)) {
                return Err(ConfigError::WritableInTmpfs { path: path.clone(), tmpfs: tmpfs.path.clone() });
            }
            let on_host = match &self.rootfs {
                Some(rootfs) => rootfs.join(path.strip_prefix("/").unwrap_or(path)),
                None => path.clone(),
            };
            std::fs::metadata(&on_host).map_err(|source| ConfigError::Missing { what: "--writable path", path: on_host.clone(), source })?;
        }
        if let Some(rootfs) = &self.rootfs {
            let meta = std::fs::metadata(rootfs).map_err(|source| ConfigError::Missing {
                what: "--rootfs",
                path: rootfs.clone(),
                source,
            })?;
            if !meta.is_dir() {
                return Err(ConfigError::Missing {
                    what: "--rootfs",
                    path: rootfs.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::NotADirectory),
                });
            }
            let need_dir = |dir: &Path, what: &'static str| {
                let inside = rootfs.join(dir.strip_prefix("/").unwrap_or(dir));
                if inside.is_dir() {
                    Ok(())
                } else {
                    Err(ConfigError::RootfsMountPoint { rootfs: rootfs.clone(), dir: dir.into(), what })
                }
            };
            need_dir(Path::new("/proc"), "/proc")?;
            for tmpfs in &self.tmpfs {
                if !self.is_inside_tmpfs(&tmpfs.path, tmpfs) {
                    need_dir(&tmpfs.path, "a tmpfs")?;
                }
            }
        }
        Ok(())
    }

    /// Whether `path` lies strictly inside one of the tmpfs mounts other than `except`, so that
    /// its mount point can be created there without touching the host's files.
    pub(crate) fn is_inside_tmpfs(&self, path: &Path, except: &TmpfsMount) -> bool {
        self.tmpfs
            .iter()
            .filter(|t| *t != except)
            .any(|t| path != t.path && path.starts_with(&t.path))
    }
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod fuzz;
