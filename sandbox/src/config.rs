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

/// Property-based fuzzing of the `--tmpfs`, `--bind`, `--cpu` and `--pids` parsers (RELIABILITY.md,
/// "Bad input"): no input panics, every accepted spec means what it says and reads back the same,
/// and every rejection names the offending text and what to write instead.
///
/// The number of cases comes from `PROPTEST_CASES` (proptest's default, 256, in a plain
/// `cargo test`); a long run is e.g. `PROPTEST_CASES=200000 cargo test -p test-sandbox --lib
/// config::fuzz --release`.
#[cfg(test)]
mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::Config as ProptestConfig;

    /// Proptest's defaults (and `PROPTEST_CASES`), without writing `proptest-regressions` files
    /// into the source tree: a failure found here becomes a plain `#[test]` below instead.
    fn config() -> ProptestConfig {
        ProptestConfig { failure_persistence: None, ..ProptestConfig::default() }
    }

    /// Path-like text: segments that are fine, special (`.`, `..`, empty), or hostile (NUL,
    /// colons, Unicode, newlines), with or without a leading `/`.
    fn path_text() -> impl Strategy<Value = String> {
        let segment = prop::sample::select(vec![
            "", ".", "..", "...", "a", "tmp", "scratch", "a b", "ü", "日本", "\0", "x\0y", "ro", "rw", ":", "a:b", "-",
            "~", "$HOME", "*", "\\", "\n", "🦀", "..a", "a..",
        ]);
        let root = prop::sample::select(vec!["", "/", "/", "/", "//", "./", "../"]);
        (root, prop::collection::vec(segment, 0..6), prop::sample::select(vec!["", "", "/", "/."]))
            .prop_map(|(root, segments, tail)| format!("{root}{}{tail}", segments.join("/")))
    }

    /// Size-like text: valid sizes, zero, overflow, junk.
    fn size_text() -> impl Strategy<Value = String> {
        prop_oneof![
            (any::<u64>(), prop::sample::select(vec!["", "K", "M", "G", "T", "MiB", "kb"]))
                .prop_map(|(n, unit)| format!("{}{unit}", n >> (n % 64))),
            prop::sample::select(vec!["", "0", "64M", "1.5G", "-1M", "lots", "99999999999999999999G", "1e400", "ro"])
                .prop_map(String::from),
            "\\PC{0,6}",
        ]
    }

    /// Specs joined from 1 to 4 colon-separated parts, plus arbitrary text.
    fn spec_text() -> impl Strategy<Value = String> {
        let part = prop_oneof![
            3 => path_text(),
            2 => size_text(),
            1 => prop::sample::select(vec!["ro", "rw", "RO", "r", "rox", "", " ro"]).prop_map(String::from),
        ];
        prop_oneof![
            6 => prop::collection::vec(part, 1..5).prop_map(|parts| parts.join(":")),
            2 => any::<String>(),
            1 => "[ -~]{0,16}",
            1 => prop::sample::select(vec![":", "::", ":::", "", "/", "//", "/:", ":/", "/tmp:", "/a:/b:ro:"])
                .prop_map(String::from),
        ]
    }

    /// A rejection must say what would be accepted: an example, or how to repair the input.
    fn assert_says_the_fix(message: &str) {
        assert!(!message.is_empty());
        assert!(message.contains("e.g.") || message.contains("remove it"), "does not say what to write: {message}");
    }

    /// What the sandbox makes of a path inside it: `//a/./b/` is `/a/b`.
    fn normal(path: &str) -> PathBuf {
        Path::new(path).components().collect()
    }

    /// Whether a path can be mounted on inside the sandbox.
    fn is_sandbox_path(path: &Path) -> bool {
        path.is_absolute()
            && !path.as_os_str().to_string_lossy().contains('\0')
            && path.components().all(|c| matches!(c, Component::RootDir | Component::Normal(_)))
    }

    fn check_tmpfs(spec: &str) -> Result<(), TestCaseError> {
        let (path, size) = match spec.split_once(':') {
            Some((path, size)) => (path, Some(size)),
            None => (spec, None),
        };
        match parse_tmpfs(spec) {
            Ok(mount) => {
                prop_assert_eq!(&mount.path, &normal(path));
                prop_assert!(is_sandbox_path(&mount.path) && mount.path != Path::new("/"), "{:?}", mount);
                prop_assert_eq!(mount.size_bytes, size.map(|size| units::parse_size(size).unwrap()));
                // The normalized spec means the same, and `validate` accepts the path.
                let again = match mount.size_bytes {
                    Some(bytes) => format!("{}:{bytes}", mount.path.display()),
                    None => mount.path.display().to_string(),
                };
                prop_assert_eq!(parse_tmpfs(&again).ok(), Some(mount.clone()));
                prop_assert_eq!(tmpfs_path(&mount.path.to_string_lossy()).ok(), Some(mount.path));
            }
            Err(err) => {
                let message = err.to_string();
                assert_says_the_fix(&message);
                match &err {
                    ConfigError::Spec { what: "--tmpfs", spec: given, .. } => {
                        prop_assert!(given == spec && path.is_empty(), "{message}");
                        prop_assert!(message.contains(&format!("'{spec}'")), "{message}");
                    }
                    ConfigError::SandboxPath { what: "--tmpfs", path: given, .. } => {
                        prop_assert_eq!(given, Path::new(path));
                        prop_assert!(!is_sandbox_path(&normal(path)) || normal(path) == Path::new("/"), "{message}");
                        prop_assert!(message.contains(&format!("'{path}'")), "{message}");
                    }
                    ConfigError::Unit(UnitError::Size { input, .. }) => {
                        prop_assert_eq!(Some(input.as_str()), size);
                        prop_assert!(is_sandbox_path(&normal(path)), "{message}");
                        prop_assert!(message.contains(&format!("'{input}'")), "{message}");
                    }
                    other => prop_assert!(false, "{spec:?}: unexpected {other:?}"),
                }
            }
        }
        Ok(())
    }

    fn check_bind(spec: &str) -> Result<(), TestCaseError> {
        let parts: Vec<&str> = spec.split(':').collect();
        let well_formed = match parts.as_slice() {
            [source] | [source, _] | [source, _, "ro" | "rw"] => !source.is_empty() && !parts.contains(&""),
            _ => false,
        };
        let target = parts.get(1).unwrap_or(&parts[0]);
        match parse_bind(spec) {
            Ok(bind) => {
                prop_assert!(well_formed, "{:?} accepted: {:?}", spec, bind);
                prop_assert_eq!(bind.source.as_os_str(), parts[0]);
                prop_assert_eq!(&bind.target, &normal(target));
                prop_assert!(is_sandbox_path(&bind.target), "{:?}", bind);
                prop_assert_eq!(bind.read_only, parts.get(2) == Some(&"ro"));
                let again = format!(
                    "{}:{}{}",
                    bind.source.display(),
                    bind.target.display(),
                    if bind.read_only { ":ro" } else { "" }
                );
                prop_assert_eq!(parse_bind(&again).ok(), Some(bind));
            }
            Err(err) => {
                let message = err.to_string();
                assert_says_the_fix(&message);
                match &err {
                    ConfigError::Spec { what: "--bind", spec: given, .. } => {
                        prop_assert!(given == spec && !well_formed, "{message}");
                        prop_assert!(message.contains(&format!("'{spec}'")), "{message}");
                    }
                    ConfigError::SandboxPath { what: "--bind target", path, .. } => {
                        prop_assert!(well_formed && path == Path::new(target), "{message}");
                        prop_assert!(!is_sandbox_path(&normal(target)), "{message}");
                        prop_assert!(message.contains(&format!("'{target}'")), "{message}");
                    }
                    other => prop_assert!(false, "{spec:?}: unexpected {other:?}"),
                }
            }
        }
        Ok(())
    }

    fn check_cpu(text: &str) -> Result<(), TestCaseError> {
        match parse_cpu(text) {
            Ok(cores) => {
                prop_assert_eq!(text.trim().parse::<f64>(), Ok(cores));
                prop_assert!((MIN_CPU_CORES..=MAX_CPU_CORES).contains(&cores), "{}", cores);
                // `validate` re-parses the number it is given as text.
                prop_assert_eq!(parse_cpu(&cores.to_string()).ok(), Some(cores));
            }
            Err(err) => {
                let message = err.to_string();
                prop_assert!(matches!(&err, ConfigError::Cpu(given) if given == text), "{}", message);
                prop_assert!(
                    text.trim().parse::<f64>().map_or(true, |x| !(MIN_CPU_CORES..=MAX_CPU_CORES).contains(&x)),
                    "{message}"
                );
                prop_assert!(message.contains(&format!("'{text}'")), "{message}");
                prop_assert!(message.contains("from 0.001 to 4096"), "does not give the range: {message}");
                assert_says_the_fix(&message);
            }
        }
        Ok(())
    }

    fn check_pids(text: &str) -> Result<(), TestCaseError> {
        let number = text.trim().strip_prefix('+').unwrap_or(text.trim());
        let digits = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
        // The number written, saturated; `None` when it is not a whole number.
        let value = digits.then(|| match number.trim_start_matches('0') {
            "" => 0,
            significant => significant.parse::<u128>().unwrap_or(u128::MAX),
        });
        match parse_pids(text) {
            Ok(pids) => {
                prop_assert_eq!(value, Some(u128::from(pids)));
                prop_assert!((1..=MAX_PIDS).contains(&pids), "{}", pids);
                prop_assert_eq!(parse_pids(&pids.to_string()), Ok(pids));
            }
            Err(message) => {
                assert_says_the_fix(&message);
                match value {
                    Some(0) => prop_assert!(message.contains("invalid pids limit 0: "), "{message}"),
                    Some(_) => {
                        prop_assert!(message.contains(&format!("'{text}': it is too large")), "{message}");
                        prop_assert!(message.contains(&MAX_PIDS.to_string()), "{message}");
                    }
                    None => prop_assert!(message.contains(&format!("'{text}': write a whole number")), "{message}"),
                }
            }
        }
        Ok(())
    }

    /// Whole numbers, small, at the kernel's limit, or anywhere in 64 bits.
    fn pids_number() -> impl Strategy<Value = u64> {
        prop_oneof![any::<u64>(), 0..10u64, (MAX_PIDS - 2)..=(MAX_PIDS + 2)]
    }

    /// Number-like text for `--cpu` and `--pids`.
    fn number_text() -> impl Strategy<Value = String> {
        let float = prop_oneof![
            any::<f64>(),
            MIN_CPU_CORES..=MAX_CPU_CORES,
            prop::sample::select(vec![MIN_CPU_CORES, MAX_CPU_CORES, 0.0, -0.0, 0.000_999_999, 4_096.000_000_1]),
        ];
        prop_oneof![
            3 => (float, 0..4).prop_map(|(x, style)| match style {
                0 => format!("{x}"),
                1 => format!("{x:e}"),
                2 => format!("{x:?}"),
                _ => format!(" {x:.3}\n"),
            }),
            3 => (pids_number(), prop::sample::select(vec!["", "+", "-", " ", "0"]))
                .prop_map(|(n, prefix)| format!("{prefix}{n}")),
            1 => "[0-9]{20,30}",
            1 => "[-+0-9.eE_xinfaNI ]{0,8}",
            1 => any::<String>(),
            1 => prop::sample::select(vec![
                "", "NaN", "inf", "-inf", "infinity", "1e400", "-0", "0x10", "1_000", "½", "٣",
            ])
            .prop_map(String::from),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        /// `--tmpfs`: no panic; accepted specs are normalized, absolute, not `/`, and read back
        /// the same; rejections name the part that is wrong and show an example.
        #[test]
        fn tmpfs_specs(spec in spec_text()) {
            check_tmpfs(&spec)?;
        }

        /// `--bind`: the same, for `SRC[:DST[:ro|rw]]`.
        #[test]
        fn bind_specs(spec in spec_text()) {
            check_bind(&spec)?;
        }

        /// `--cpu`: no panic; exactly the numbers from 0.001 to 4096 are accepted, and they
        /// survive `validate`'s round trip through text.
        #[test]
        fn cpu_numbers(text in number_text()) {
            check_cpu(&text)?;
        }

        /// `--pids`: no panic; exactly the whole numbers from 1 to the kernel's maximum.
        #[test]
        fn pids_numbers(text in number_text()) {
            check_pids(&text)?;
        }

        /// `validate` agrees with `--pids` about every number.
        #[test]
        fn pids_validate_agrees(pids in pids_number()) {
            let config = Config { limits: Limits { pids: Some(pids), ..Limits::default() }, ..Config::default() };
            prop_assert_eq!(config.validate().is_ok(), parse_pids(&pids.to_string()).is_ok());
        }
    }

    /// What the first fuzzing runs found, kept as plain tests.
    #[test]
    fn found_by_fuzzing() {
        // A tmpfs over `/` was accepted by --tmpfs (the macro refuses it): the command vanished.
        for spec in ["/", "//", "/.", "/:1M"] {
            let err = parse_tmpfs(spec).unwrap_err().to_string();
            assert!(err.contains("would hide the whole file system; mount it on a directory, e.g. /scratch"), "{err}");
        }
        // A NUL byte passed every check and panicked in the mount plan (mounts.rs, `cstring`).
        assert!(parse_tmpfs("/a\0b").unwrap_err().to_string().contains("NUL byte"));
        assert!(parse_bind("/a:/b\0c").unwrap_err().to_string().contains("NUL byte"));
        let mut config = Config::default();
        config.tmpfs.push(TmpfsMount { path: "/tmp/a\0b".into(), size_bytes: None });
        assert!(matches!(config.validate(), Err(ConfigError::SandboxPath { .. })));
        // `:` was reported as an empty size, not as a missing path.
        assert!(matches!(parse_tmpfs(":"), Err(ConfigError::Spec { .. })));
        // "write a positive number of cores" for a positive number out of range.
        assert!(parse_cpu("5000").unwrap_err().to_string().contains("from 0.001 to 4096"));
        // "write a whole number" for a whole number too large for 64 bits, and limits the kernel
        // refuses in pids.max were accepted.
        assert!(parse_pids("99999999999999999999").unwrap_err().contains("it is too large"));
        // ... but a number that is not whole was "too large" once its digits overflowed.
        assert!(parse_pids("99999999999999999999.5").unwrap_err().contains("write a whole number"));
        assert_eq!(parse_pids("4194304"), Ok(4_194_304));
        assert!(parse_pids("4194305").unwrap_err().contains("at most 4194304"));
        config.tmpfs.pop();
        config.limits.pids = Some(4_194_305);
        assert!(matches!(config.validate(), Err(ConfigError::TooManyPids(_))));
    }
}
