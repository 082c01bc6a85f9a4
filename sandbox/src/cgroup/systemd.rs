//! On a machine that systemd runs, a launcher's runs live in a transient scope of its own.
//!
//! The problem: there every cgroup belongs to a unit, and what happens below a unit counts for
//! it. An OOM kill in a run made below the caller's service makes systemd stop that service
//! (`OOMPolicy=stop`, the default for services: a CI runner's job ends with exit 143); the
//! caller's cgroup may hold processes the sandbox did not start (a CI runner's agent beside the
//! step that runs under sudo), which the "no internal processes" rule would have it move; and
//! a cgroup systemd did not delegate is not the launcher's to write into (a login session's
//! scope, root-owned).
//!
//! The fix, as the systemd drivers of podman, crun and runc do it: the launcher asks systemd (the
//! system manager as root, the user's manager otherwise) for a transient scope with
//! `Delegate=yes` holding only itself (`StartTransientUnit`, what `systemd-run --scope -p
//! Delegate=yes` does), and then makes its runs inside it by the v2 rules. The scope is a sibling
//! of the caller's unit, not inside it, so it carries the smallest `memory.max`, `pids.max` and
//! `cpu.max` along the caller's cgroup path: no limit the caller is under is lifted. A delegated
//! scope's OOM kills stop nothing (systemd 253 and later default a delegated scope to
//! `OOMPolicy=continue`; 252 has no OOM policy for scopes). systemd removes the scope, with the
//! cgroups made inside it, when its last process has exited, also after a failure
//! (`CollectMode=inactive-or-failed`): nothing is left when the launcher is killed.
//!
//! One scope per process, asked for at its first v2 run: fork servers forked after it share it,
//! and a launcher inside a sandbox scope (a run's command or test, a re-executed fork server)
//! nests in its own cgroup instead. The race: systemd moves the process when the scope's start
//! job runs, after the call returns; the helper waits until `/proc/PID/cgroup` names the scope.
//!
//! The D-Bus call runs in a forked child: zbus starts threads that outlive its connection, and
//! the launcher must stay single-threaded (fork servers copy it; the init shares its memory).

use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::own_cgroup::own_cgroup_dir;
use super::read_optional;

/// Unit names of the scopes this crate asks for start with this.
const SCOPE_PREFIX: &str = "sandbox-";

/// How long systemd may take to start the scope and move the launcher into it.
const MOVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Where this process's runs go on a systemd host, as decided at its first v2 run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScopePlacement {
    /// systemd does not run this machine (no `/run/systemd/system`), or the runs have a
    /// `--cgroup-parent`: the own cgroup's rules apply.
    NoSystemd,
    /// This process already lives in a sandbox scope (or a run inside one): runs nest there.
    InsideSandboxScope,
    /// This process was moved into a new scope.
    Scope {
        /// The unit, e.g. `sandbox-1234-5678.scope`.
        unit: String,
        /// Its cgroup directory.
        dir: PathBuf,
        /// Controllers the runs need that systemd did not delegate to the scope (it leaves out,
        /// silently, those its manager was not given: a user's manager often lacks `cpu`).
        missing: Vec<String>,
    },
    /// systemd runs the machine, but no scope could be had; why.
    Failed(String),
}

impl ScopePlacement {
    /// One line for `sandbox check` and error messages.
    pub fn describe(&self) -> String {
        match self {
            ScopePlacement::NoSystemd => "no systemd: runs go below the own cgroup".into(),
            ScopePlacement::InsideSandboxScope => "already in a sandbox scope: runs nest below the own cgroup".into(),
            ScopePlacement::Scope { unit, dir, missing } if missing.is_empty() => {
                format!("systemd scope {unit} (Delegate=yes, {})", dir.display())
            }
            ScopePlacement::Scope { unit, dir, missing } => format!(
                "systemd scope {unit} (Delegate=yes, {}), but systemd delegated no {} controller to it: \
                 its manager was not given it (for a user's manager: systemctl edit user@.service, \
                 [Service] Delegate=cpu memory pids)",
                dir.display(),
                missing.join(", ")
            ),
            ScopePlacement::Failed(why) => format!("systemd runs this machine, but no scope could be had: {why}"),
        }
    }
}

/// Whether systemd is this machine's init (its own test, `sd_booted`).
pub fn systemd_runs_machine() -> bool {
    Path::new("/run/systemd/system").is_dir()
}

/// The placement of this process's runs when they have no `--cgroup-parent`: decided once per
/// process. A fork keeps a scope it was made in (fork servers share their runner's); after a
/// failure a forked copy asks again.
pub fn ensure_own_scope(mount_point: &Path) -> ScopePlacement {
    static PLACEMENT: Mutex<Option<(u32, ScopePlacement)>> = Mutex::new(None);
    let pid = std::process::id();
    let mut placement = PLACEMENT.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    // A fork server forked after the scope was made is in it too; a copy that made its own
    // placement in a new PID namespace (a test body) decides again.
    if let Some((_, known)) = placement.as_ref().filter(|(owner, known)| *owner == pid || !matches!(known, ScopePlacement::Failed(_))) {
        return known.clone();
    }
    let decided = decide(mount_point);
    *placement = Some((pid, decided.clone()));
    decided
}

fn decide(mount_point: &Path) -> ScopePlacement {
    if !systemd_runs_machine() {
        return ScopePlacement::NoSystemd;
    }
    let own = match own_cgroup_dir(mount_point) {
        Ok(own) => own,
        Err(err) => return ScopePlacement::Failed(err.to_string()),
    };
    // Inside a run (a contained one's cgroup namespace shows no scope), runs nest in it: a
    // scope of systemd's would take this process out of the run's limits.
    if in_sandbox_scope(&own) || super::in_a_run_namespace() {
        return ScopePlacement::InsideSandboxScope;
    }
    let limits = CallerLimits::along(&own, mount_point);
    match start_scope_in_child(&limits) {
        Ok(unit) => match own_cgroup_dir(mount_point) {
            Ok(dir) => {
                let available = read_optional(&dir, "cgroup.controllers").ok().flatten().unwrap_or_default();
                let missing = ["memory", "pids", "cpu"]
                    .into_iter()
                    .filter(|c| !available.split_whitespace().any(|a| a == *c))
                    .map(str::to_string)
                    .collect();
                ScopePlacement::Scope { unit, dir, missing }
            }
            Err(err) => ScopePlacement::Failed(err.to_string()),
        },
        Err(why) => ScopePlacement::Failed(why),
    }
}

/// Whether `dir` is a sandbox scope or lies below one.
pub(crate) fn in_sandbox_scope(dir: &Path) -> bool {
    dir.components().any(|c| {
        let name = c.as_os_str().to_string_lossy();
        name.starts_with(SCOPE_PREFIX) && name.ends_with(".scope")
    })
}

/// The tightest limits along a cgroup's path, which a sibling scope must carry.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct CallerLimits {
    /// The smallest `memory.max`.
    pub memory_max: Option<u64>,
    /// The smallest `pids.max`.
    pub pids_max: Option<u64>,
    /// The smallest `cpu.max`, as CPU time per second of wall time (µs).
    pub cpu_quota_per_sec_usec: Option<u64>,
}

impl CallerLimits {
    /// Reads `dir` and each of its ancestors up to (not including) the root `mount_point`.
    pub(crate) fn along(dir: &Path, mount_point: &Path) -> CallerLimits {
        // `max` (no limit) does not parse as a number.
        let number = |text: &str| text.parse().ok();
        CallerLimits {
            memory_max: super::tightest_along(dir, mount_point, "memory.max", number),
            pids_max: super::tightest_along(dir, mount_point, "pids.max", number),
            cpu_quota_per_sec_usec: super::tightest_along(dir, mount_point, "cpu.max", |text| {
                let mut fields = text.split_whitespace();
                let quota: u64 = fields.next()?.parse().ok()?;
                let period: u64 = fields.next()?.parse().ok()?;
                (period > 0).then(|| quota.saturating_mul(1_000_000) / period)
            }),
        }
    }
}

/// Forks a child that asks systemd for the scope holding this process and waits until this
/// process is in it; returns the unit's name, or why not.
fn start_scope_in_child(limits: &CallerLimits) -> Result<String, String> {
    let pid = std::process::id();
    let start_time = super::process_start_time(pid).unwrap_or(0);
    let unit = format!("{SCOPE_PREFIX}{pid}-{start_time}.scope");
    let (read_end, write_end) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    // The copy runs only the D-Bus call and exits.
    let child = crate::sys::fork_copy()
        .map_err(|e| format!("cannot fork the D-Bus helper ({e}): the process runs several threads"))?;
    let Some(child) = child else {
        drop(read_end);
        let answer = match ask_systemd(&unit, pid, limits) {
            Ok(()) => "ok".to_string(),
            Err(why) => why,
        };
        let mut out = fs::File::from(write_end);
        let _ = out.write_all(answer.as_bytes());
        crate::sys::exit_immediately(0);
    };
    drop(write_end);
    let mut answer = String::new();
    let read = fs::File::from(read_end).read_to_string(&mut answer);
    let _ = nix::sys::wait::waitpid(child, None);
    match read {
        Ok(_) if answer == "ok" => Ok(unit),
        Ok(_) if answer.is_empty() => Err("the D-Bus helper died without an answer".into()),
        Ok(_) => Err(answer),
        Err(err) => Err(format!("reading the D-Bus helper's answer: {err}")),
    }
}

/// The manager to ask: the system's as root, the user's otherwise.
fn connect() -> Result<zbus::blocking::Connection, String> {
    if nix::unistd::Uid::effective().is_root() {
        return zbus::blocking::Connection::system().map_err(|e| format!("connecting to the system bus: {e}"));
    }
    let address = std::env::var("DBUS_SESSION_BUS_ADDRESS").ok().filter(|a| !a.is_empty()).or_else(|| {
        let runtime = std::env::var("XDG_RUNTIME_DIR")
            .ok()
            .filter(|d| !d.is_empty())
            .unwrap_or_else(|| format!("/run/user/{}", nix::unistd::Uid::effective()));
        let bus = Path::new(&runtime).join("bus");
        bus.exists().then(|| format!("unix:path={}", bus.display()))
    });
    let Some(address) = address else {
        return Err(format!(
            "no user bus to reach your systemd user manager (DBUS_SESSION_BUS_ADDRESS unset, no \
             /run/user/{}/bus): log in through a session manager (ssh, a desktop) or run \
             `loginctl enable-linger $USER`",
            nix::unistd::Uid::effective()
        ));
    };
    zbus::blocking::connection::Builder::address(address.as_str())
        .and_then(|b| b.build())
        .map_err(|e| format!("connecting to the user bus at {address}: {e}"))
}

/// In the helper child: `StartTransientUnit` of a delegated scope holding `pid`, then waits
/// until systemd has moved `pid` into it.
fn ask_systemd(unit: &str, pid: u32, limits: &CallerLimits) -> Result<(), String> {
    use zbus::zvariant::Value;
    let connection = connect()?;
    let manager = zbus::blocking::Proxy::new(
        &connection,
        "org.freedesktop.systemd1",
        "/org/freedesktop/systemd1",
        "org.freedesktop.systemd1.Manager",
    )
    .map_err(|e| format!("systemd's manager object: {e}"))?;
    let mut properties: Vec<(&str, Value<'_>)> = vec![
        ("Description", Value::from(format!("sandbox runs of process {pid}"))),
        ("PIDs", Value::from(vec![pid])),
        ("Delegate", Value::from(true)),
        ("CollectMode", Value::from("inactive-or-failed")),
    ];
    if let Some(bytes) = limits.memory_max {
        properties.push(("MemoryMax", Value::from(bytes)));
    }
    if let Some(tasks) = limits.pids_max {
        properties.push(("TasksMax", Value::from(tasks)));
    }
    if let Some(usec) = limits.cpu_quota_per_sec_usec {
        properties.push(("CPUQuotaPerSecUSec", Value::from(usec)));
    }
    let auxiliary: Vec<(&str, Vec<(&str, Value<'_>)>)> = Vec::new();
    manager
        .call_method("StartTransientUnit", &(unit, "fail", properties, auxiliary))
        .map_err(|e| format!("StartTransientUnit {unit}: {e}"))?;
    let wanted = format!("/{unit}");
    let deadline = Instant::now() + MOVE_TIMEOUT;
    loop {
        let cgroup = fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
        if super::proc_cgroup_lines(&cgroup).any(|line| line.is_v2() && line.path.ends_with(&wanted)) {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("systemd started {unit} but did not move process {pid} into it within {MOVE_TIMEOUT:?}"));
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scope_carries_the_tightest_limit_along_the_callers_path() {
        let tmp = super::super::tests::tempdir("caller-limits");
        let root = tmp.path();
        let service = root.join("system.slice/ci.service");
        fs::create_dir_all(&service).unwrap();
        fs::write(root.join("system.slice/memory.max"), "4294967296\n").unwrap();
        fs::write(service.join("memory.max"), "max\n").unwrap();
        fs::write(service.join("pids.max"), "200\n").unwrap();
        fs::write(root.join("system.slice/pids.max"), "max\n").unwrap();
        fs::write(service.join("cpu.max"), "50000 100000\n").unwrap();
        let limits = CallerLimits::along(&service, root);
        assert_eq!(
            limits,
            CallerLimits { memory_max: Some(4 << 30), pids_max: Some(200), cpu_quota_per_sec_usec: Some(500_000) }
        );
        // The mount's root counts where it has limits: in a contained run's cgroup namespace it
        // is the run's delegated cgroup.
        fs::write(root.join("pids.max"), "100\n").unwrap();
        assert_eq!(CallerLimits::along(&service, root).pids_max, Some(100));
    }

    #[test]
    fn sandbox_scopes_and_runs_inside_them_are_recognised() {
        let scope = Path::new("/sys/fs/cgroup/system.slice/sandbox-12-34.scope");
        assert!(in_sandbox_scope(scope));
        assert!(in_sandbox_scope(&scope.join("sandbox/4026531836-12-34-0")));
        assert!(!in_sandbox_scope(Path::new("/sys/fs/cgroup/user.slice/user-1000.slice/session-3.scope")));
        assert!(!in_sandbox_scope(Path::new("/sys/fs/cgroup/system.slice/sandbox.service")));
    }
}
