//! What `#[isolated(...)]` expands to: a constant [`TestSpec`] per test (sizes and durations
//! already parsed by the macro), a [`TestCase`] registered for the `harness = false` runner, and
//! a body returning [`TestReturn`].

use std::fmt::Debug;
use std::path::PathBuf;
use std::time::Duration;

pub use crate::config::{FsMode, HostWrites};
use crate::config::{Config, Limits, NetMode, TmpfsMount};
pub use crate::units::Tolerance;

/// The event a regression test requires (`expect = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// No expectation: the body must return normally, without OOM kill or timeout.
    Success,
    /// `expect = "oom"`: passes only if the OOM killer killed something in the sandbox.
    Oom,
    /// `expect = "pids_limit"`: passes only if a fork was refused by the pids limit.
    PidsLimit,
    /// `expect = "timeout"`: passes only if the timeout fired.
    Timeout,
}

/// `net = "..."`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Net {
    /// The host's network (default).
    Host,
    /// Own network namespace with only `lo`.
    None,
}

/// `#[should_panic]` as the macro found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShouldPanic {
    /// No `#[should_panic]`.
    No,
    /// `#[should_panic]`.
    Yes,
    /// `#[should_panic(expected = "...")]`.
    WithMessage(&'static str),
}

/// The attribute's arguments, checked and converted at compile time.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TestSpec {
    /// `pids = N`.
    pub pids: Option<u64>,
    /// `mem = "SIZE"`, in bytes.
    pub mem_bytes: Option<u64>,
    /// `cpu = CORES`.
    pub cpu_cores: Option<f64>,
    /// `timeout = "DUR"`, in milliseconds.
    pub timeout_ms: Option<u64>,
    /// `hostname = "NAME"`.
    pub hostname: Option<&'static str>,
    /// `tmpfs = "PATH[:SIZE]"`: extra tmpfs mounts (path, size in bytes).
    pub tmpfs: &'static [(&'static str, Option<u64>)],
    /// `net = "none" | "host"`.
    pub net: Net,
    /// `fs = "host" | "ro" | "overlay"`.
    pub fs: FsMode,
    /// `writable = [..]`: what is written straight to the host under `fs = "ro"` or
    /// `fs = "overlay"`.
    pub writable: &'static [&'static str],
    /// `fs_size = "SIZE"`, in bytes: the most the overlay's layer holds.
    pub fs_size: Option<u64>,
    /// `host_writes = "discard" | "fail"`.
    pub host_writes: HostWrites,
    /// `privileged = true`: as root, the host's root instead of the run's containment.
    pub privileged: bool,
    /// `expect = "oom" | "pids_limit" | "timeout"`.
    pub expect: Expect,
    /// `require = "cgroup"`: fail instead of falling back to rlimits.
    pub require_cgroup: bool,
    /// `baseline_tolerance = "PERCENT%+SIZE"`: how far the peak memory may grow over its
    /// baseline (`--baseline`); the run's tolerance when `None`.
    pub baseline_tolerance: Option<Tolerance>,
}

impl TestSpec {
    /// `#[isolated]` with no arguments.
    pub const DEFAULT: TestSpec = TestSpec {
        pids: None,
        mem_bytes: None,
        cpu_cores: None,
        timeout_ms: None,
        hostname: None,
        tmpfs: &[],
        net: Net::Host,
        fs: FsMode::Host,
        writable: &[],
        fs_size: None,
        host_writes: HostWrites::Discard,
        privileged: false,
        expect: Expect::Success,
        require_cgroup: false,
        baseline_tolerance: None,
    };

    /// The sandbox configuration this spec asks for.
    pub fn config(&self) -> Config {
        let mut config = Config {
            limits: Limits { pids: self.pids, memory_bytes: self.mem_bytes, cpu_cores: self.cpu_cores },
            timeout: self.timeout_ms.map(Duration::from_millis),
            net: match self.net {
                Net::Host => NetMode::Host,
                Net::None => NetMode::None,
            },
            require_cgroup: self.require_cgroup,
            fs: self.fs,
            writable: self.writable.iter().map(PathBuf::from).collect(),
            fs_size: self.fs_size,
            host_writes: self.host_writes,
            privileged: self.privileged,
            ..Config::default()
        };
        if let Some(hostname) = self.hostname {
            config.hostname = hostname.to_string();
        }
        for (path, size_bytes) in self.tmpfs {
            config.tmpfs.retain(|t| t.path.as_os_str() != *path);
            config.tmpfs.push(TmpfsMount { path: path.into(), size_bytes: *size_bytes });
        }
        config
    }
}

/// A test body as the sandbox calls it: `Err` carries the failure's message (see [`TestReturn`]).
pub type TestBody = fn() -> Result<(), String>;

/// One `#[isolated]` test, registered with `inventory` so that the `harness = false` runner can
/// find every test of its target.
#[derive(Debug)]
pub struct TestCase {
    /// The function's name.
    pub name: &'static str,
    /// `module_path!()` where it was written (the crate name first).
    pub module_path: &'static str,
    /// The attribute's arguments.
    pub spec: &'static TestSpec,
    /// The test body, its result already converted by [`TestReturn`].
    pub body: TestBody,
    /// `#[ignore]` was present.
    pub ignore: bool,
    /// `#[should_panic]`, if present.
    pub should_panic: ShouldPanic,
    /// serial_test's lock (`#[serial]`, `#[parallel]`), taken by the thread that dispatches the
    /// test.
    pub lock: Option<super::TestLock>,
}

inventory::collect!(TestCase);

impl TestCase {
    /// The name libtest gives the test: the module path without the crate name, then the
    /// function name (`tests::parser_survives`).
    pub fn test_name(&self) -> String {
        test_name(self.module_path, self.name)
    }
}

/// `module_path!()` minus the crate, joined with the function name.
pub fn test_name(module_path: &str, name: &str) -> String {
    match module_path.split_once("::") {
        Some((_crate, rest)) => format!("{rest}::{name}"),
        None => name.to_string(),
    }
}

/// What a test body may return: `()` or `Result<(), E: Debug>`, like `#[test]` functions.
#[diagnostic::on_unimplemented(
    message = "an #[isolated] test must return `()` or `Result<(), E>` with `E: Debug`, not `{Self}`",
    label = "this return type"
)]
pub trait TestReturn {
    /// `Err` with the error's `Debug` text when the body failed by returning an error.
    fn into_result(self) -> Result<(), String>;
}

impl TestReturn for () {
    fn into_result(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Debug> TestReturn for Result<(), E> {
    fn into_result(self) -> Result<(), String> {
        self.map_err(|err| format!("{err:?}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_drop_the_crate() {
        assert_eq!(test_name("cli", "fork_bomb"), "fork_bomb");
        assert_eq!(test_name("mycrate::tests::inner", "t"), "tests::inner::t");
    }

    #[test]
    fn spec_becomes_config() {
        let spec = TestSpec {
            pids: Some(20),
            mem_bytes: Some(100 << 20),
            hostname: Some("box"),
            tmpfs: &[("/tmp", Some(1 << 20)), ("/scratch", None)],
            net: Net::None,
            timeout_ms: Some(1500),
            fs: FsMode::Overlay,
            writable: &["/srv/cache"],
            fs_size: Some(32 << 20),
            host_writes: HostWrites::Fail,
            privileged: true,
            ..TestSpec::DEFAULT
        };
        let config = spec.config();
        assert_eq!(config.limits.pids, Some(20));
        assert_eq!(config.limits.memory_bytes, Some(100 << 20));
        assert_eq!(config.hostname, "box");
        assert_eq!(config.net, NetMode::None);
        assert_eq!(config.timeout, Some(Duration::from_millis(1500)));
        assert_eq!(config.fs, FsMode::Overlay);
        assert_eq!(config.writable, [PathBuf::from("/srv/cache")]);
        assert_eq!((config.fs_size, config.host_writes), (Some(32 << 20), HostWrites::Fail));
        assert!(config.privileged);
        assert_eq!(
            config.tmpfs,
            [
                TmpfsMount { path: "/tmp".into(), size_bytes: Some(1 << 20) },
                TmpfsMount { path: "/scratch".into(), size_bytes: None }
            ]
        );
        assert_eq!(TestSpec::DEFAULT.config(), Config::default());
    }

    #[test]
    fn returns_convert() {
        assert_eq!(().into_result(), Ok(()));
        assert_eq!(Err::<(), _>("bad").into_result(), Err("\"bad\"".to_string()));
    }
}
