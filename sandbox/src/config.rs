//! What a sandbox should look like: limits, mounts, namespaces. Plain data, checked by
//! [`Config::validate`] before anything is created.

use std::path::{Component, Path, PathBuf};
use std::time::Duration;

use thiserror::Error;

use crate::units::{self, UnitError};

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

/// Everything that describes one sandbox, independent of the command run in it.
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
    /// `--cpu 0`, negative or not a number.
    #[error("invalid cpu limit '{0}': write a positive number of cores, e.g. 0.5 or 2")]
    Cpu(String),
    /// A path inside the sandbox that is not absolute or has `..`.
    #[error("invalid {what} path '{path}': it must be absolute and must not contain '..'")]
    SandboxPath {
        /// Which option.
        what: &'static str,
        /// The path.
        path: PathBuf,
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
    /// A hostname the kernel would refuse.
    #[error("invalid hostname '{0}': use 1 to 64 characters out of letters, digits, '-' and '.'")]
    Hostname(String),
}

/// Parses `--tmpfs PATH[:SIZE]`.
pub fn parse_tmpfs(spec: &str) -> Result<TmpfsMount, ConfigError> {
    let (path, size) = match spec.split_once(':') {
        Some((path, size)) => (path, Some(units::parse_size(size)?)),
        None => (spec, None),
    };
    if path.is_empty() {
        return Err(ConfigError::Spec { what: "--tmpfs", spec: spec.into(), expected: "PATH[:SIZE], e.g. /tmp:64M" });
    }
    let path = sandbox_path("--tmpfs", path)?;
    Ok(TmpfsMount { path, size_bytes: size })
}

/// Parses `--bind SRC:DST[:ro]`; a bare `SRC` binds the path onto itself.
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
        Ok(cores) if cores.is_finite() && cores >= 0.001 && cores <= 4096.0 => Ok(cores),
        _ => Err(ConfigError::Cpu(text.into())),
    }
}

/// Parses `--pids N`.
pub fn parse_pids(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(0) => Err(ConfigError::ZeroPids.to_string()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("invalid pids limit '{text}': write a whole number of processes, e.g. 20")),
    }
}

fn sandbox_path(what: &'static str, path: &str) -> Result<PathBuf, ConfigError> {
    let path = Path::new(path);
    let normal = path.is_absolute() && path.components().all(|c| !matches!(c, Component::ParentDir));
    if normal {
        Ok(path.components().collect())
    } else {
        Err(ConfigError::SandboxPath { what, path: path.into() })
    }
}

impl Config {
    /// Checks everything that can be checked without creating anything: limits, hostname,
    /// paths that must exist on the host.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.limits.pids == Some(0) {
            return Err(ConfigError::ZeroPids);
        }
        if let Some(cores) = self.limits.cpu_cores {
            parse_cpu(&cores.to_string())?;
        }
        let host_ok = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '.';
        if self.hostname.is_empty() || self.hostname.len() > 64 || !self.hostname.chars().all(host_ok) {
            return Err(ConfigError::Hostname(self.hostname.clone()));
        }
        for tmpfs in &self.tmpfs {
            sandbox_path("--tmpfs", &tmpfs.path.to_string_lossy())?;
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
mod tests {
    use super::*;

    #[test]
    fn tmpfs_specs() {
        assert_eq!(parse_tmpfs("/tmp").unwrap(), TmpfsMount { path: "/tmp".into(), size_bytes: None });
        assert_eq!(
            parse_tmpfs("/scratch:64M").unwrap(),
            TmpfsMount { path: "/scratch".into(), size_bytes: Some(64 << 20) }
        );
        assert!(matches!(parse_tmpfs("tmp"), Err(ConfigError::SandboxPath { .. })));
        assert!(matches!(parse_tmpfs("/a/../b"), Err(ConfigError::SandboxPath { .. })));
        assert!(matches!(parse_tmpfs("/tmp:lots"), Err(ConfigError::Unit(_))));
        assert!(matches!(parse_tmpfs(":5M"), Err(ConfigError::Spec { .. })));
    }

    #[test]
    fn bind_specs() {
        assert_eq!(
            parse_bind("/data:/mnt/data:ro").unwrap(),
            BindMount { source: "/data".into(), target: "/mnt/data".into(), read_only: true }
        );
        assert_eq!(parse_bind("/data").unwrap().target, PathBuf::from("/data"));
        assert!(!parse_bind("/a:/b").unwrap().read_only);
        for bad in ["/a:/b:rx", "/a:/b:ro:x", ":/b", "/a:", "/a:b"] {
            assert!(parse_bind(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn numbers() {
        assert_eq!(parse_cpu("0.3").unwrap(), 0.3);
        for bad in ["0", "-1", "nan", "inf", "lots"] {
            assert!(parse_cpu(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_pids("20"), Ok(20));
        assert!(parse_pids("0").unwrap_err().contains("at least 1"));
        assert!(parse_pids("-3").unwrap_err().contains("whole number"));
    }

    #[test]
    fn validation_catches_missing_host_paths() {
        let mut config = Config::default();
        config.validate().unwrap();
        config.rootfs = Some("/nonexistent/rootfs".into());
        let err = config.validate().unwrap_err();
        assert!(err.to_string().starts_with("--rootfs '/nonexistent/rootfs' does not exist"), "{err}");

        let dir = std::env::temp_dir().join(format!("sandbox-rootfs-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        config.rootfs = Some(dir.clone());
        let err = config.validate().unwrap_err();
        assert!(matches!(err, ConfigError::RootfsMountPoint { .. }), "{err}");
        std::fs::create_dir_all(dir.join("proc")).unwrap();
        std::fs::create_dir_all(dir.join("tmp")).unwrap();
        config.validate().unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        config.rootfs = None;
        config.tmpfs.push(TmpfsMount { path: "/nonexistent-mount-point".into(), size_bytes: None });
        assert!(matches!(config.validate(), Err(ConfigError::TmpfsMountPoint { .. })));
        config.tmpfs.pop();
        config.tmpfs.push(TmpfsMount { path: "/tmp/created/below".into(), size_bytes: None });
        config.validate().unwrap();
        config.hostname = "bad host".into();
        assert!(matches!(config.validate(), Err(ConfigError::Hostname(_))));
    }
}
