//! What happened in a run, as typed values: how the command ended and what the kernel counted.

use std::fmt;
use std::time::Duration;

use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};

use crate::config::HostWrites;
pub use crate::fs_changes::{ChangeKind, FileKind, FsChange};

use crate::cgroup::{CgroupVersion, Stats};
use crate::config::Limits;
use crate::processes::{EscapedProcess, ProcessInfo};
use crate::units::{format_bytes, format_duration};

/// How the command's process ended, as `wait(2)` reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExitStatus {
    /// It called `exit` with this code.
    Code(i32),
    /// A signal ended it (number; see [`signal_name`]).
    Signal(i32),
}

impl ExitStatus {
    /// Decodes a raw wait status.
    pub fn from_wait_status(status: i32) -> ExitStatus {
        if libc::WIFSIGNALED(status) {
            ExitStatus::Signal(libc::WTERMSIG(status))
        } else {
            ExitStatus::Code(libc::WEXITSTATUS(status))
        }
    }

    /// The shell convention: the exit code, or 128 + the signal number.
    pub fn shell_code(self) -> i32 {
        match self {
            ExitStatus::Code(code) => code,
            ExitStatus::Signal(signal) => 128 + signal,
        }
    }
}

/// `SIGKILL` for 9; `signal 40` for what has no name.
pub fn signal_name(signal: i32) -> String {
    Signal::try_from(signal).map(|s| s.as_str().to_string()).unwrap_or_else(|_| format!("signal {signal}"))
}

/// The one thing that best explains how a run ended, most specific first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The command exited by itself with this code.
    Exited(i32),
    /// The timeout fired and the sandbox killed everything.
    TimedOut(Duration),
    /// The kernel's OOM killer killed the command (memory limit reached).
    OomKilled,
    /// Another signal ended the command.
    Signaled(i32),
}

/// How the kernel enforced one limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enforcement {
    /// Exactly, by the run's cgroup.
    Cgroup,
    /// Approximately, by a resource limit of the processes (no cgroup could be used).
    Rlimit,
    /// Not at all (no cgroup could be used, and no rlimit does this).
    None,
}

impl Enforcement {
    /// `cgroup`, `rlimit`, `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Enforcement::Cgroup => "cgroup",
            Enforcement::Rlimit => "rlimit",
            Enforcement::None => "none",
        }
    }
}

/// How each requested limit was enforced (`None` for limits that were not requested).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Enforcements {
    /// `--pids`: `pids.max`, or `RLIMIT_NPROC` in the sandbox's user namespace.
    pub pids: Option<Enforcement>,
    /// `--mem`: `memory.max`, or `RLIMIT_AS` per process.
    pub memory: Option<Enforcement>,
    /// `--cpu`: `cpu.max`, or nothing.
    pub cpu: Option<Enforcement>,
    /// Why no cgroup was used, when none was.
    pub no_cgroup_reason: Option<String>,
    /// The command had the host's root ([`Config::privileged`](crate::Config::privileged) in a
    /// run as root): nothing kept it from leaving its cgroup or raising its limits. Set by the
    /// run, never by [`Enforcements::for_limits`]; false in a rootless run, which that key does
    /// not change.
    pub privileged: bool,
}

impl Enforcements {
    /// What a run with `limits` gets with or without a cgroup.
    pub fn for_limits(limits: &Limits, no_cgroup_reason: Option<String>) -> Enforcements {
        let with = |requested: bool, fallback: Enforcement| {
            requested.then_some(if no_cgroup_reason.is_some() { fallback } else { Enforcement::Cgroup })
        };
        Enforcements {
            pids: with(limits.pids.is_some(), Enforcement::Rlimit),
            memory: with(limits.memory_bytes.is_some(), Enforcement::Rlimit),
            cpu: with(limits.cpu_cores.is_some(), Enforcement::None),
            no_cgroup_reason,
            privileged: false,
        }
    }

    /// The requested limits that are not enforced exactly, as `pids rlimit, mem rlimit, cpu none`.
    pub fn weaker_than_cgroup(&self) -> Vec<String> {
        [("pids", self.pids), ("mem", self.memory), ("cpu", self.cpu)]
            .into_iter()
            .filter_map(|(name, e)| e.filter(|e| *e != Enforcement::Cgroup).map(|e| format!("{name} {}", e.as_str())))
            .collect()
    }
}

/// What each weaker enforcement misses, for people reading the summary.
pub const RLIMIT_CAVEATS: &str = "RLIMIT_NPROC counts the sandbox's processes and threads but not \
    pids-limit hits; RLIMIT_AS limits each process's virtual memory separately and fails allocations \
    instead of OOM-killing; no CPU bandwidth limit";

/// Everything known about one finished run.
///
/// ```
/// use sandbox::{Command, Config, Ending, Sandbox};
///
/// let mut config = Config::default();
/// config.limits.memory_bytes = Some(64 << 20);
/// let outcome = Sandbox::new(config)?.run(Command::new("sh").args(["-c", "exit 3"]))?;
/// match outcome.ending() {
///     Ending::Exited(code) => assert_eq!(code, 3),
///     Ending::OomKilled => panic!("over {} bytes", outcome.limits.memory_bytes.unwrap()),
///     Ending::TimedOut(after) => panic!("still running after {after:?}"),
///     Ending::Signaled(signal) => panic!("killed by {}", sandbox::outcome::signal_name(signal)),
/// }
/// assert_eq!(outcome.to_json()["exit_code"], 3);
/// # Ok::<(), sandbox::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// How the command's process ended.
    pub status: ExitStatus,
    /// The sandbox killed the run because its timeout fired.
    pub timed_out: bool,
    /// The timeout that was set, if any.
    pub timeout: Option<Duration>,
    /// The limits that were in force.
    pub limits: Limits,
    /// Counters from the run's cgroup.
    pub stats: Stats,
    /// Wall-clock time from clone to the last process reaped.
    pub wall: Duration,
    /// Which cgroup version enforced the limits; `None` when the run had no cgroup.
    pub cgroup_version: Option<CgroupVersion>,
    /// How each limit was enforced.
    pub enforcement: Enforcements,
    /// What was still running when the timeout fired (empty otherwise), read while the run's
    /// cgroup was frozen where it has one.
    pub processes: Vec<ProcessInfo>,
    /// `fs = overlay`: what the command changed on the host's file systems (none of it reached
    /// them), sorted by path; `None` for the other modes, which do not know.
    pub fs_changes: Option<Vec<FsChange>>,
    /// `fs = overlay`: whether those changes fail the run.
    pub host_writes: HostWrites,
    /// Processes of the run found outside its cgroup (when the command ended with others left,
    /// or at the timeout): the limits did not hold for them, and the counters miss them.
    pub escaped: Vec<EscapedProcess>,
    /// The run's limit files that no longer said what the run set (`pids.max is max, not
    /// 20`): something in the run changed its own limits.
    pub limits_changed: Vec<String>,
    /// The run's own cgroup directories as the host names them (one per v1 hierarchy it has a
    /// directory in), for logs and tools outside: the command's own `/proc/self/cgroup` reads
    /// `/` in a contained run. Not the directories contained runs share (`sandbox/contained`).
    pub cgroup_dirs: Vec<std::path::PathBuf>,
}

/// The JSON shape of an outcome: a public contract (CLI `--json`, the test runner's report).
/// Owned, so that a fork server can send it to the runner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct JsonOutcome {
    exit_code: Option<i32>,
    signal: Option<i32>,
    signal_name: Option<String>,
    ending: String,
    oom_kills: u64,
    pids_limit_hits: u64,
    timed_out: bool,
    peak_memory_bytes: Option<u64>,
    peak_pids: Option<u64>,
    cpu_usec: Option<u64>,
    wall_ms: u64,
    cgroup_version: Option<u8>,
    limits: JsonLimits,
    enforcement: JsonEnforcement,
    /// The command had the host's root instead of the run's containment.
    #[serde(default)]
    privileged: bool,
    processes: Vec<ProcessInfo>,
    /// Absent unless `fs = overlay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    fs_changes: Option<Vec<FsChange>>,
    /// `discard` or `fail`; absent unless `fs = overlay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    host_writes: Option<String>,
    #[serde(default)]
    escaped: Vec<EscapedProcess>,
    #[serde(default)]
    limits_changed: Vec<String>,
    #[serde(default)]
    cgroup_dirs: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct JsonEnforcement {
    pids: Option<String>,
    memory: Option<String>,
    cpu: Option<String>,
    no_cgroup_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct JsonLimits {
    pids: Option<u64>,
    memory_bytes: Option<u64>,
    cpu_cores: Option<f64>,
    timeout_ms: Option<u64>,
}

impl Outcome {
    /// The most specific explanation of the ending: a timeout beats the SIGKILL that carried it
    /// out, an OOM kill beats a bare SIGKILL.
    pub fn ending(&self) -> Ending {
        match self.status {
            _ if self.timed_out => Ending::TimedOut(self.timeout.unwrap_or(self.wall)),
            ExitStatus::Signal(libc::SIGKILL) if self.stats.oom_kills > 0 => Ending::OomKilled,
            ExitStatus::Signal(signal) => Ending::Signaled(signal),
            ExitStatus::Code(code) => Ending::Exited(code),
        }
    }

    /// Whether the run ended with exit code 0, nothing was killed, and (under
    /// `host_writes = fail`) the host's files were left alone.
    pub fn success(&self) -> bool {
        self.ending() == Ending::Exited(0) && self.stats.oom_kills == 0 && !self.refused_host_writes() && self.contained()
    }

    /// Whether the limits held for the whole run, as far as the end of it shows: no process of
    /// it outside its cgroup, no limit file changed.
    pub fn contained(&self) -> bool {
        self.escaped.is_empty() && self.limits_changed.is_empty()
    }

    /// The command changed host files under `host_writes = fail`.
    pub fn refused_host_writes(&self) -> bool {
        self.host_writes == HostWrites::Fail && self.fs_changes.as_ref().is_some_and(|changes| !changes.is_empty())
    }

    /// The outcome as the documented JSON object.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self.json_shape()).expect("outcome serialises")
    }

    /// The outcome in the documented JSON shape, as a typed value.
    pub(crate) fn json_shape(&self) -> JsonOutcome {
        let (exit_code, signal) = match self.status {
            ExitStatus::Code(code) => (Some(code), None),
            ExitStatus::Signal(signal) => (None, Some(signal)),
        };
        JsonOutcome {
            exit_code,
            signal,
            signal_name: signal.map(signal_name),
            ending: match self.ending() {
                Ending::Exited(_) => "exited",
                Ending::TimedOut(_) => "timed_out",
                Ending::OomKilled => "oom_killed",
                Ending::Signaled(_) => "signaled",
            }
            .to_string(),
            oom_kills: self.stats.oom_kills,
            pids_limit_hits: self.stats.pids_limit_hits,
            timed_out: self.timed_out,
            peak_memory_bytes: self.stats.peak_memory_bytes,
            peak_pids: self.stats.peak_pids,
            cpu_usec: self.stats.cpu_usec,
            wall_ms: self.wall.as_millis() as u64,
            cgroup_version: self.cgroup_version.map(CgroupVersion::number),
            limits: JsonLimits {
                pids: self.limits.pids,
                memory_bytes: self.limits.memory_bytes,
                cpu_cores: self.limits.cpu_cores,
                timeout_ms: self.timeout.map(|t| t.as_millis() as u64),
            },
            enforcement: JsonEnforcement {
                pids: self.enforcement.pids.map(|e| e.as_str().to_string()),
                memory: self.enforcement.memory.map(|e| e.as_str().to_string()),
                cpu: self.enforcement.cpu.map(|e| e.as_str().to_string()),
                no_cgroup_reason: self.enforcement.no_cgroup_reason.clone(),
            },
            privileged: self.enforcement.privileged,
            processes: self.processes.clone(),
            fs_changes: self.fs_changes.clone(),
            host_writes: self.fs_changes.as_ref().map(|_| match self.host_writes {
                HostWrites::Discard => "discard".to_string(),
                HostWrites::Fail => "fail".to_string(),
            }),
            escaped: self.escaped.clone(),
            limits_changed: self.limits_changed.clone(),
            cgroup_dirs: self.cgroup_dirs.iter().map(|dir| dir.display().to_string()).collect(),
        }
    }
}

impl fmt::Display for Ending {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Ending::Exited(code) => write!(f, "exit {code}"),
            Ending::TimedOut(after) => write!(f, "timed out after {} (killed)", format_duration(after)),
            Ending::OomKilled => write!(f, "killed by the OOM killer"),
            Ending::Signaled(signal) => write!(f, "killed by {}", signal_name(signal)),
        }
    }
}

/// One line: `exit 0 · wall 12 ms · cpu 3 ms · peak mem 3.1 MiB · peak pids 2 · oom kills 0 ·
/// pids-limit hits 0 · cgroup v1`.
impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} · wall {}", self.ending(), format_duration(self.wall))?;
        if let Some(usec) = self.stats.cpu_usec {
            write!(f, " · cpu {}", format_duration(Duration::from_micros(usec)))?;
        }
        match self.stats.peak_memory_bytes {
            Some(bytes) => write!(f, " · peak mem {}", format_bytes(bytes))?,
            None => write!(f, " · peak mem n/a")?,
        }
        if let Some(limit) = self.limits.memory_bytes {
            write!(f, " of {}", format_bytes(limit))?;
        }
        match self.stats.peak_pids {
            Some(pids) => write!(f, " · peak pids {pids}")?,
            None => write!(f, " · peak pids n/a")?,
        }
        if let Some(limit) = self.limits.pids {
            write!(f, " of {limit}")?;
        }
        write!(f, " · oom kills {} · pids-limit hits {}", self.stats.oom_kills, self.stats.pids_limit_hits)?;
        match self.cgroup_version {
            Some(version) => write!(f, " · {version}")?,
            None => write!(f, " · no cgroup")?,
        }
        if self.enforcement.privileged {
            write!(f, " · privileged")?;
        }
        let weaker = self.enforcement.weaker_than_cgroup();
        if !weaker.is_empty() {
            write!(f, " · limits not exact: {}", weaker.join(", "))?;
        }
        if !self.escaped.is_empty() {
            write!(f, " · NOT CONTAINED: {} process(es) left the run's cgroup, which the counters above miss", self.escaped.len())?;
        }
        if !self.limits_changed.is_empty() {
            let tag = if self.escaped.is_empty() { "NOT CONTAINED: " } else { "" };
            write!(f, " · {tag}limits changed inside the run: {}", self.limits_changed.join(", "))?;
        }
        if let Some(changes) = &self.fs_changes {
            write!(f, " · host files changed {}", changes.len())?;
            if self.refused_host_writes() {
                write!(f, " (refused: host_writes = fail)")?;
            } else if !changes.is_empty() {
                write!(f, " (discarded)")?;
            }
        }
        Ok(())
    }
}

/// One line of a change list: `created file /etc/motd.d/x (12 B)`,
/// `renamed directory /srv/a -> /srv/b`. Written piece by piece: a run can list thousands, and
/// each `write!` goes through the formatting machinery again.
impl fmt::Display for FsChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let verb = match &self.kind {
            ChangeKind::Created => "created ",
            ChangeKind::Modified => "modified ",
            ChangeKind::Deleted => "deleted ",
            ChangeKind::Renamed { .. } => "renamed ",
        };
        f.write_str(verb)?;
        f.write_str(match self.file {
            FileKind::File => "file ",
            FileKind::Directory => "directory ",
            FileKind::Symlink => "symlink ",
            FileKind::Other => "special file ",
        })?;
        if let ChangeKind::Renamed { from } = &self.kind {
            write_path(f, from)?;
            f.write_str(" -> ")?;
        }
        write_path(f, &self.path)?;
        if self.file == FileKind::File && self.kind != ChangeKind::Deleted {
            f.write_str(" (")?;
            fmt::Display::fmt(&sandbox_units::Bytes(self.size), f)?;
            f.write_str(")")?;
        }
        Ok(())
    }
}

/// A path as `Path::display` shows it, UTF-8 ones written as they are.
fn write_path(f: &mut fmt::Formatter<'_>, path: &std::path::Path) -> fmt::Result {
    match path.to_str() {
        Some(text) => f.write_str(text),
        None => fmt::Display::fmt(&path.display(), f),
    }
}

/// An outcome for unit tests: `status` after 12 ms on cgroup v1, no limits.
#[cfg(test)]
pub(crate) fn sample_outcome(status: ExitStatus) -> Outcome {
    Outcome {
        status,
        timed_out: false,
        timeout: None,
        limits: Limits::default(),
        stats: Stats { peak_memory_bytes: Some(3 << 20 | 100 << 10), peak_pids: Some(2), cpu_usec: Some(3000), ..Stats::default() },
        wall: Duration::from_millis(12),
        cgroup_version: Some(CgroupVersion::V1),
        enforcement: Enforcements::default(),
        processes: Vec::new(),
        fs_changes: None,
        host_writes: HostWrites::Discard,
        escaped: Vec::new(),
        limits_changed: Vec::new(),
        cgroup_dirs: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(status: ExitStatus) -> Outcome {
        sample_outcome(status)
    }

    #[test]
    fn wait_statuses_decode() {
        assert_eq!(ExitStatus::from_wait_status(3 << 8), ExitStatus::Code(3));
        assert_eq!(ExitStatus::from_wait_status(9), ExitStatus::Signal(9));
        assert_eq!(ExitStatus::from_wait_status(6 | 0x80), ExitStatus::Signal(6));
        assert_eq!(ExitStatus::Signal(9).shell_code(), 137);
    }

    #[test]
    fn endings_prefer_the_specific_cause() {
        let mut o = outcome(ExitStatus::Signal(libc::SIGKILL));
        assert_eq!(o.ending(), Ending::Signaled(9));
        o.stats.oom_kills = 1;
        assert_eq!(o.ending(), Ending::OomKilled);
        o.timed_out = true;
        o.timeout = Some(Duration::from_secs(3));
        assert_eq!(o.ending(), Ending::TimedOut(Duration::from_secs(3)));
        assert_eq!(o.ending().to_string(), "timed out after 3.0 s (killed)");
        assert!(!o.success());
        assert!(outcome(ExitStatus::Code(0)).success());
    }

    #[test]
    fn summary_line_and_json() {
        let mut o = outcome(ExitStatus::Code(0));
        assert_eq!(
            o.to_string(),
            "exit 0 · wall 12 ms · cpu 3 ms · peak mem 3.1 MiB · peak pids 2 · oom kills 0 · pids-limit hits 0 · cgroup v1"
        );
        o.limits.pids = Some(20);
        o.status = ExitStatus::Signal(15);
        assert!(o.to_string().starts_with("killed by SIGTERM"));
        assert!(o.to_string().contains("peak pids 2 of 20"));
        let json = o.to_json();
        assert_eq!(json["exit_code"], serde_json::Value::Null);
        assert_eq!(json["signal"], 15);
        assert_eq!(json["signal_name"], "SIGTERM");
        assert_eq!(json["wall_ms"], 12);
        assert_eq!(json["cgroup_version"], 1);
        for key in ["oom_kills", "pids_limit_hits", "timed_out", "peak_memory_bytes", "peak_pids", "cpu_usec"] {
            assert!(json.get(key).is_some(), "{key}");
        }
    }

    #[test]
    fn weaker_enforcement_is_stated() {
        let limits = Limits { pids: Some(20), memory_bytes: Some(1 << 26), cpu_cores: Some(0.5) };
        let exact = Enforcements::for_limits(&limits, None);
        assert!(exact.weaker_than_cgroup().is_empty());
        let mut o = outcome(ExitStatus::Code(0));
        o.cgroup_version = None;
        o.enforcement = Enforcements::for_limits(&limits, Some("EACCES".into()));
        assert!(o.to_string().ends_with(" · no cgroup · limits not exact: pids rlimit, mem rlimit, cpu none"), "{o}");
        let json = o.to_json();
        assert_eq!(json["enforcement"]["memory"], "rlimit");
        assert_eq!(json["enforcement"]["cpu"], "none");
        assert_eq!(json["enforcement"]["no_cgroup_reason"], "EACCES");
        assert_eq!(json["cgroup_version"], serde_json::Value::Null);
    }

    #[test]
    fn a_run_whose_limits_did_not_hold_says_so_and_fails() {
        let mut outcome = outcome(ExitStatus::Code(0));
        assert!(outcome.contained() && outcome.success());
        outcome.limits_changed = vec!["pids.max is 1000, not 20".into()];
        assert!(!outcome.contained() && !outcome.success());
        assert!(outcome.to_string().ends_with(" · NOT CONTAINED: limits changed inside the run: pids.max is 1000, not 20"), "{outcome}");
        assert_eq!(outcome.to_json()["limits_changed"], serde_json::json!(["pids.max is 1000, not 20"]));
        assert_eq!(outcome.to_json()["escaped"], serde_json::json!([]));
    }

    #[test]
    fn a_privileged_run_says_so() {
        let mut o = outcome(ExitStatus::Code(0));
        assert!(!o.to_string().contains("privileged"), "{o}");
        assert_eq!(o.to_json()["privileged"], false);
        o.enforcement.privileged = true;
        assert_eq!(
            o.to_string(),
            "exit 0 · wall 12 ms · cpu 3 ms · peak mem 3.1 MiB · peak pids 2 · oom kills 0 · pids-limit hits 0 · cgroup v1 · privileged"
        );
        assert!(o.success());
        assert_eq!(o.to_json()["privileged"], true);
        let shape = o.json_shape();
        assert_eq!(serde_json::from_value::<JsonOutcome>(o.to_json()).unwrap(), shape);
        // JSON written before the field: not privileged.
        let mut old = o.to_json();
        old.as_object_mut().unwrap().remove("privileged");
        assert_eq!(serde_json::from_value::<JsonOutcome>(old).unwrap(), JsonOutcome { privileged: false, ..shape });
    }
}
