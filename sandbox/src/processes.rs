//! What was still running in a sandbox when its timeout fired: each process of its PID namespace
//! (the init left out), read from `/proc` while the run's cgroup is frozen, so that nothing forks
//! or exits meanwhile and the list is one consistent picture.

use std::fmt;
use std::fs;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One process of a sandbox, as `/proc` showed it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessInfo {
    /// Its PID inside the sandbox (the command is 2).
    pub pid: u32,
    /// Its PID on the host.
    pub host_pid: u32,
    /// `/proc/PID/stat`'s state, read before the freeze: `R` running, `S` sleeping, `D` in
    /// uninterruptible sleep, `T` stopped, `Z` a zombie.
    pub state: String,
    /// The kernel function it sleeps in (`/proc/PID/wchan`), if it sleeps.
    pub wchan: Option<String>,
    /// The number of the system call it is in (`/proc/PID/syscall`), if it is in one.
    pub syscall: Option<u64>,
    /// How long it has existed.
    pub elapsed_ms: u64,
    /// Its threads.
    pub threads: u32,
    /// Its command line, arguments joined with spaces; `[name]` while it has none (in the
    /// middle of an exec), as ps shows it.
    pub command: String,
}

impl fmt::Display for ProcessInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pid {} {}", self.pid, self.state)?;
        match (&self.wchan, self.syscall) {
            (Some(wchan), Some(number)) => write!(f, " in {wchan} (syscall {number})")?,
            (Some(wchan), None) => write!(f, " in {wchan}")?,
            (None, Some(number)) => write!(f, " in syscall {number}")?,
            (None, None) => {}
        }
        let threads = if self.threads == 1 { String::new() } else { format!(", {} threads", self.threads) };
        let elapsed = crate::units::format_duration(Duration::from_millis(self.elapsed_ms));
        write!(f, ", for {elapsed}{threads}")?;
        // A zombie has no command line left.
        match self.command.is_empty() {
            true => Ok(()),
            false => write!(f, ": {}", self.command),
        }
    }
}

/// A process of a run found outside the run's cgroup: its limits did not hold for it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscapedProcess {
    /// The process, as a timed-out run lists it.
    #[serde(flatten)]
    pub process: ProcessInfo,
    /// Where it was: its cgroup in the hierarchy it left (a line of `/proc/PID/cgroup`).
    pub cgroup: String,
}

impl fmt::Display for EscapedProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}, in cgroup {}", self.process, self.cgroup)
    }
}

/// The list a timed-out run reports under its summary line, one process per line.
pub fn render(processes: &[ProcessInfo]) -> String {
    let mut text = String::from("still running when the timeout fired:");
    for process in processes {
        text.push_str("\n  ");
        text.push_str(&process.to_string());
    }
    text
}

/// The host PIDs of the processes in the PID namespace of `init` (a host PID), the init left
/// out, with each one's state.
pub(crate) fn in_pid_namespace_of(init: u32) -> Vec<(u32, String)> {
    let Ok(namespace) = fs::read_link(format!("/proc/{init}/ns/pid")) else { return Vec::new() };
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    let mut found: Vec<(u32, String)> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != init)
        .filter(|pid| fs::read_link(format!("/proc/{pid}/ns/pid")).is_ok_and(|ns| ns == namespace))
        .filter_map(|pid| Some((pid, stat_fields(pid)?.state)))
        .collect();
    found.sort();
    found
}

/// The host PIDs in cgroup `dir` and every cgroup below it (`cgroup.procs`).
pub(crate) fn in_cgroup_subtree(dir: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        if let Ok(listed) = fs::read_to_string(dir.join("cgroup.procs")) {
            pids.extend(listed.lines().filter_map(|line| line.trim().parse::<u32>().ok()));
        }
        if let Ok(entries) = fs::read_dir(&dir) {
            dirs.extend(entries.flatten().filter(|e| e.file_type().is_ok_and(|t| t.is_dir())).map(|e| e.path()));
        }
    }
    pids
}

/// Where process `host_pid` is in the hierarchy that holds cgroup directory `dir`: the path of
/// its `/proc/PID/cgroup` line for that hierarchy (v1: the line naming the directory's
/// controllers; v2: `0::`). `None` when it is gone.
pub(crate) fn cgroup_in_hierarchy_of(host_pid: u32, dir: &Path) -> Option<String> {
    let text = fs::read_to_string(format!("/proc/{host_pid}/cgroup")).ok()?;
    // A v1 hierarchy is mounted at /sys/fs/cgroup/<its controllers>.
    let named = dir.strip_prefix("/sys/fs/cgroup").ok().and_then(|rest| rest.components().next()).map(|c| c.as_os_str().to_string_lossy().into_owned());
    let v1_line = named.as_deref().and_then(|named| {
        text.lines().find_map(|line| {
            let (_, rest) = line.split_once(':')?;
            let (controllers, path) = rest.split_once(':')?;
            // `name=systemd` is mounted at `systemd`.
            let shared = controllers
                .split(',')
                .any(|c| !c.is_empty() && named.split(',').any(|n| n == c.strip_prefix("name=").unwrap_or(c)));
            shared.then(|| path.to_string())
        })
    });
    v1_line.or_else(|| text.lines().find_map(|line| line.strip_prefix("0::")).map(str::to_string))
}

/// What `/proc/PID/stat` says that a snapshot needs.
struct StatFields {
    state: String,
    threads: u32,
    start_ticks: u64,
}

fn stat_fields(pid: u32) -> Option<StatFields> {
    let stat = crate::cgroup::ProcStat::read(pid)?;
    // proc(5)'s fields: state (3), num_threads (20), starttime (22).
    Some(StatFields {
        state: stat.field(3)?.to_string(),
        threads: stat.field(20)?.parse().ok()?,
        start_ticks: stat.field(22)?.trim().parse().ok()?,
    })
}

/// Reads process `host_pid` now; `state` is what an earlier look saw (before the freeze, which
/// changes it). `None` when it is gone.
pub(crate) fn read(host_pid: u32, state: String) -> Option<ProcessInfo> {
    let proc = Path::new("/proc").join(host_pid.to_string());
    let stat = stat_fields(host_pid)?;
    let status = fs::read_to_string(proc.join("status")).ok()?;
    // NSpid: the PID in each namespace from the host's down; the last is the sandbox's.
    let pid = status
        .lines()
        .find_map(|line| line.strip_prefix("NSpid:"))
        .and_then(|ids| ids.split_whitespace().last()?.parse().ok())
        .unwrap_or(host_pid);
    let wchan = fs::read_to_string(proc.join("wchan")).ok().filter(|w| !w.is_empty() && w != "0");
    // "running", or the number and the arguments; "-1 ..." when blocked outside a system call.
    let syscall = fs::read_to_string(proc.join("syscall")).ok().and_then(|s| s.split_whitespace().next()?.parse().ok());
    let command = fs::read(proc.join("cmdline")).unwrap_or_default();
    let command = String::from_utf8_lossy(&command).split('\0').filter(|arg| !arg.is_empty()).collect::<Vec<_>>().join(" ");
    // No arguments while its memory is replaced (in the middle of an exec) or gone: its name in
    // brackets, as ps shows it.
    let command = match command.is_empty() {
        true => fs::read_to_string(proc.join("comm")).map(|name| format!("[{}]", name.trim_end())).unwrap_or_default(),
        false => command,
    };
    Some(ProcessInfo {
        pid,
        host_pid,
        state,
        wchan,
        syscall,
        elapsed_ms: uptime().saturating_sub(ticks_to_duration(stat.start_ticks)).as_millis() as u64,
        threads: stat.threads,
        command,
    })
}

fn uptime() -> Duration {
    let text = fs::read_to_string("/proc/uptime").unwrap_or_default();
    let seconds: f64 = text.split_whitespace().next().and_then(|s| s.parse().ok()).unwrap_or(0.0);
    Duration::from_secs_f64(seconds)
}

fn ticks_to_duration(ticks: u64) -> Duration {
    // SAFETY: sysconf with a valid name has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Duration::from_millis(ticks * 1000 / per_second)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sleeping_child_is_read_from_proc() {
        let mut child = std::process::Command::new("sleep").arg("30").spawn().unwrap();
        let pid = child.id();
        // The child first has to exec and reach its nanosleep, which a loaded, emulated machine
        // can take seconds for: read it until it sleeps there, then assert on that last reading.
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let info = loop {
            std::thread::sleep(Duration::from_millis(50));
            let state = stat_fields(pid).unwrap().state;
            let info = read(pid, state).unwrap();
            let asleep = info.state == "S" && info.syscall == Some(libc::SYS_clock_nanosleep as u64);
            if asleep || std::time::Instant::now() > deadline {
                break info;
            }
        };
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!((info.host_pid, info.pid, info.state.as_str(), info.threads), (pid, pid, "S", 1), "{info:?}");
        assert_eq!(info.command, "sleep 30");
        assert!(info.elapsed_ms >= 50 && info.elapsed_ms < 10_000, "{info:?}");
        assert!(info.wchan.as_deref().is_some_and(|w| w.contains("sleep")), "{info:?}");
        assert_eq!(info.syscall, Some(libc::SYS_clock_nanosleep as u64), "{info:?}");
        assert!(info.to_string().starts_with(&format!("pid {pid} S in ")), "{info}");
        assert!(info.to_string().ends_with(": sleep 30"), "{info}");
    }
}
