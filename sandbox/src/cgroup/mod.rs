//! Control groups: one per run, with its limits, its counters, and its removal.
//!
//! `RunCgroup` (here) is one run's cgroup on either version (`v1`, `v2`; `systemd` gets the
//! launcher a delegated scope to make them in); `layout` says which hierarchies this machine
//! has, `files` reads and writes their control files, `runs` names run cgroups and removes
//! those whose launcher is gone, `pool` keeps emptied ones for reuse, `enclosure` gives a fork
//! server the cgroups a contained run needs outside its limits' hierarchies, `shared` the
//! contained runs one of their own there where it can. Every function that
//! touches files takes its directory as a parameter, so unit tests can point it at a temporary
//! directory.

#[doc(hidden)] // for tests that exercise the reuse of run cgroups
pub mod pool;
pub(crate) mod systemd;
pub(crate) mod enclosure;
mod error;
mod files;
mod layout;
mod own_cgroup;
mod own_limit;
mod runs;
mod shared;
mod v1;
mod v2;

use std::fmt;
use std::fs;
use std::io;
use std::ffi::{CStr, CString};
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::unistd::Pid;

use crate::config::Limits;

pub use error::*;
pub(crate) use files::*;
pub(crate) use layout::*;
pub(crate) use own_limit::own_memory_limit;
pub(crate) use runs::*;
pub(crate) use v1::V1Cgroup;
pub(crate) use v1::default_runs_dir as v1_default_runs_dir;
pub(crate) use v2::{base_dir as v2_base_dir, resolve_parent as v2_resolve_parent, V2Cgroup};
pub(crate) use v2::{foreign_processes_in as v2_foreign_processes, holds_foreign_processes as v2_holds_foreign_processes};

/// The cgroup version a run's limits and counters came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Legacy hierarchies, one per controller (also the "hybrid" layout).
    V1,
    /// The unified hierarchy.
    V2,
}

impl CgroupVersion {
    /// `1` or `2`.
    pub fn number(self) -> u8 {
        match self {
            CgroupVersion::V1 => 1,
            CgroupVersion::V2 => 2,
        }
    }
}

impl fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cgroup v{}", self.number())
    }
}

/// The child of a contained run's cgroup that the run's processes live in and its cgroup
/// namespace is rooted at: the subtree delegated to the run. The limits are written one level
/// up, in the run's cgroup, which the run cannot see, so that nothing in it can raise them; what
/// it writes into this directory's own limit files only narrows them.
pub(crate) const DELEGATED_DIR: &str = "delegated";

/// What a contained run's cgroup namespace mounts: one cgroup hierarchy that the run has a
/// cgroup in, mounted where the host has it (inside the namespace the kernel roots the mount at
/// the run's [`DELEGATED_DIR`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NamespaceMount {
    /// Where the host mounts the hierarchy.
    pub mount_point: PathBuf,
    /// `cgroup` (v1) or `cgroup2`.
    pub fstype: &'static str,
    /// v1: the hierarchy's controllers, as the mount option that selects it (`cpu,cpuacct`).
    pub options: Option<String>,
}

/// CFS period used for `--cpu`: the kernel's default, 100 ms.
const CPU_PERIOD_US: u64 = 100_000;

/// The CFS quota and period, in microseconds, for `cores`. The kernel's smallest quota is 1 ms,
/// which is 0.01 cores of a 100 ms period: below that the period grows (up to the kernel's
/// largest, 1 s), so that down to 0.001 cores the share is what was asked.
pub(crate) fn cpu_quota_and_period_us(cores: f64) -> (u64, u64) {
    const MIN_QUOTA_US: u64 = 1_000;
    const MAX_PERIOD_US: u64 = 1_000_000;
    let quota = (cores * CPU_PERIOD_US as f64).round() as u64;
    if quota >= MIN_QUOTA_US {
        return (quota, CPU_PERIOD_US);
    }
    let period = ((MIN_QUOTA_US as f64 / cores).round() as u64).min(MAX_PERIOD_US);
    (((cores * period as f64).round() as u64).max(MIN_QUOTA_US), period)
}

/// Whether `pids.events` in `dir` counts hierarchically (kernel 6.14 on, which added
/// `pids.events.local`).
pub(crate) fn pids_events_hierarchical(dir: &Path) -> bool {
    dir.join("pids.events.local").exists()
}

/// All cgroup directories from `dir` down, deepest first (the order `rmdir` needs).
pub(crate) fn subtree_deepest_first(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(subtree_deepest_first(&entry.path()));
            }
        }
    }
    out.push(dir.to_path_buf());
    out
}

/// Sum of `pids.events` `max` over the run's cgroups. Kernels before 6.14 count a refused fork
/// in the *forking task's* cgroup, so with nested cgroups every one must be read; newer ones
/// (which have `pids.events.local`) count hierarchically, so the top one is the total.
pub(crate) fn pids_limit_hits(top: &Path) -> Result<Option<u64>, CgroupError> {
    if pids_events_hierarchical(top) {
        return read_key(top, "pids.events", "max");
    }
    let mut total = None;
    for dir in subtree_deepest_first(top) {
        if let Some(hits) = read_key(&dir, "pids.events", "max")? {
            total = Some(total.unwrap_or(0) + hits);
        }
    }
    Ok(total)
}

/// Removes a cgroup and any children the command created, waiting out the short moment in which
/// the kernel still counts exiting tasks.
pub(crate) fn remove_tree(top: &Path) -> Result<(), CgroupError> {
    // The common case, a cgroup without children and without tasks, needs no directory listing.
    match fs::remove_dir(top) {
        Ok(()) => return Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    for dir in subtree_deepest_first(top) {
        let mut delay = Duration::from_micros(200);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match fs::remove_dir(&dir) {
                Ok(()) => break,
                Err(err) if err.kind() == io::ErrorKind::NotFound => break,
                Err(err) if err.raw_os_error() == Some(libc::EBUSY) && std::time::Instant::now() < deadline => {
                    kill_listed_processes(&dir);
                    // Frozen processes (a v1 freezer directory whose launcher died while its run
                    // was frozen) die only once thawed.
                    let freezer_state = dir.join("freezer.state");
                    if freezer_state.exists() {
                        let _ = fs::write(freezer_state, "THAWED");
                    }
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(50));
                }
                Err(err) => return Err(io_err("removing cgroup", &dir)(err)),
            }
        }
    }
    Ok(())
}

/// SIGKILLs every process listed in `dir/cgroup.procs`. Used for cgroups whose PID-namespace init
/// is already gone (stale runs) and as the v1 fallback of `cgroup.kill`.
pub(crate) fn kill_listed_processes(dir: &Path) {
    if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Counters read from a run's cgroup after the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Stats {
    /// Processes killed by the OOM killer in this cgroup.
    pub oom_kills: u64,
    /// Forks refused because of `pids.max`.
    pub pids_limit_hits: u64,
    /// Peak memory usage in bytes, where the kernel records it.
    pub peak_memory_bytes: Option<u64>,
    /// Peak number of tasks, where the kernel records it (`pids.peak`).
    pub peak_pids: Option<u64>,
    /// CPU time used, in microseconds.
    pub cpu_usec: Option<u64>,
}

/// One run's cgroup, on either version. Dropping it kills what is left inside and removes it.
pub(crate) trait RunCgroup: Send {
    /// Which version this is.
    fn version(&self) -> CgroupVersion;
    /// How the sandbox's init is to get in, asked before the clone.
    fn placement(&self) -> Result<Placement<'_>, CgroupError>;
    /// After the clone, before the init may go on: makes what is still to be made (v1 makes its
    /// directories while the init sets up its mounts) and moves the init in, unless the kernel
    /// created it there (`cloned_into`) or it joins itself.
    fn place(&mut self, init: Pid, cloned_into: bool) -> Result<(), CgroupError>;
    /// SIGKILLs every process in the cgroup.
    fn kill_all(&self);
    /// Freezes (`true`) or thaws every process in the cgroup: v2 `cgroup.freeze`, the v1
    /// freezer. Whether it is frozen now; `false` where it cannot be.
    fn set_frozen(&mut self, frozen: bool) -> bool;
    /// Reads the counters of the current run.
    fn stats(&mut self) -> Result<Stats, CgroupError>;
    /// The run's limit files whose value is not what the run set (something in the run, with
    /// the right to, wrote them): `pids.max is max, not 20`. Such a cgroup is not used again.
    fn limits_changed(&mut self) -> Vec<String>;
    /// Ends the run's use of the cgroup, after its stats were read and every process is gone:
    /// removes it, or keeps it for the next run of this process (v1, see [`pool`]).
    fn release(self: Box<Self>) -> Result<(), CgroupError>;
    /// Removes what launchers that died left beside this cgroup (once per process and
    /// directory). Called once the sandbox is running, off the path to the command's start.
    fn remove_stale_runs(&self);
    /// The cgroup directories the run's processes are in, for its joins and escapes.
    fn paths(&self) -> Vec<PathBuf>;
    /// Those of them that are the run's own, made for it and removed with it (not a directory
    /// it shares with other runs): the report's.
    fn own_paths(&self) -> Vec<PathBuf> {
        self.paths()
    }
    /// The hierarchies a contained run's cgroup namespace mounts (empty for a run that is not
    /// contained, see [`plan_run_cgroup`]).
    fn namespace_mounts(&self) -> Vec<NamespaceMount>;
}

/// A limit file that read `value` as `<file> is <value>, not <expected>`, when that differs.
fn limit_changed(file: &str, value: Option<String>, expected: &str) -> Option<String> {
    let value = value?;
    let value = value.trim();
    (value != expected).then(|| format!("{file} is {value}, not {expected}"))
}

/// A memory limit as the kernel keeps it: rounded down to whole pages.
fn page_rounded(bytes: u64) -> u64 {
    let page = nix::unistd::sysconf(nix::unistd::SysconfVar::PAGE_SIZE).ok().flatten().map_or(4096, |size| size as u64);
    bytes / page * page
}

/// How the sandbox's init gets into its cgroups.
#[derive(Debug, Default)]
pub(crate) struct Placement<'a> {
    /// Created in this cgroup2 directory by `clone3(CLONE_INTO_CGROUP)` (v2; on a hybrid
    /// machine, a contained run's directory in the controller-less cgroup2); where the kernel
    /// cannot, [`RunCgroup::place`] moves it.
    pub clone_into: Option<BorrowedFd<'a>>,
    /// The directories the init joins itself, in the order of [`RunCgroup::paths`] (v1; see
    /// `InitArgs::join_cgroups`).
    pub joins: Vec<InitJoin>,
}

/// Polls `done` every millisecond for at most `limit`: whether it came true (the kernel freezes
/// a cgroup asynchronously).
pub(crate) fn settled(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// How long a freeze may take before the picture is taken unfrozen.
pub(crate) const FREEZE_WAIT: Duration = Duration::from_millis(500);

/// How the sandbox's init gets into one cgroup directory itself: by writing `0` (itself) into
/// its `tasks` file, through descriptors opened before the clone.
#[derive(Debug)]
pub(crate) enum InitJoin {
    /// The `tasks` file of a directory that exists, kept open by its cgroup.
    TasksFile(RawFd),
    /// For a directory made after the clone: `tasks` (`<name>/tasks`) below `parent`.
    Below {
        /// The directory's parent.
        parent: OwnedFd,
        /// The path of the `tasks` file below `parent`.
        tasks: CString,
    },
}

/// A cgroup directory opened `O_PATH` (to join through, or to clone into).
fn open_directory(dir: &Path) -> Result<std::os::fd::OwnedFd, nix::errno::Errno> {
    use nix::fcntl::{open, OFlag};
    let fd = open(dir, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())?;
    // SAFETY: `open` just returned `fd`; nothing else has it.
    Ok(unsafe { crate::sys::own_fd(fd) })
}

impl InitJoin {
    /// For `dir`, made after the clone, or its `sub` directory (a contained run's
    /// [`DELEGATED_DIR`]): the parent of `dir` opened now (and made, the first time).
    fn below(dir: &Path, sub: Option<&str>) -> Result<InitJoin, CgroupError> {
        let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
            return Err(CgroupError::Unavailable(format!("{} is not a cgroup directory", dir.display())));
        };
        let name = match sub {
            Some(sub) => Path::new(name).join(sub).into_os_string(),
            None => name.to_os_string(),
        };
        let open_parent = || open_directory(parent);
        let fd = match open_parent() {
            Err(nix::errno::Errno::ENOENT) => {
                fs::create_dir_all(parent).map_err(io_err("creating cgroup", parent))?;
                open_parent()
            }
            opened => opened,
        }
        .map_err(|errno| io_err("opening", parent)(errno.into()))?;
        let parent = fd;
        let mut tasks = name.as_bytes().to_vec();
        tasks.extend_from_slice(b"/tasks");
        let tasks = CString::new(tasks)
            .map_err(|_| CgroupError::Unavailable(format!("{} has a NUL byte in its name", dir.display())))?;
        Ok(InitJoin::Below { parent, tasks })
    }

    /// What `InitArgs::join_cgroups` takes: a descriptor and, for a directory, the path below it.
    pub(crate) fn for_init(&self) -> (RawFd, Option<&CStr>) {
        use std::os::fd::AsRawFd;
        match self {
            InitJoin::TasksFile(fd) => (*fd, None),
            InitJoin::Below { parent, tasks } => (parent.as_raw_fd(), Some(tasks.as_c_str())),
        }
    }
}

/// The cgroup for one run below `cgroup_parent` (default: `sandbox` in each hierarchy), with
/// `limits`: an idle one of this process's earlier runs where it keeps them ([`pool`]), or a
/// new one, made as `when` says. A v2 cgroup is made at once: the init is created inside it.
/// A `contained` run's processes go into its [`DELEGATED_DIR`], below its limits.
pub(crate) fn plan_run_cgroup(
    cgroup_parent: Option<&Path>,
    limits: &Limits,
    when: Creation,
    contained: bool,
) -> Result<Box<dyn RunCgroup>, CgroupError> {
    if let Some(reused) = pool::take(cgroup_parent, limits, contained) {
        return Ok(Box::new(reused));
    }
    match Layout::current()? {
        Layout::Unified { mount_point } => Ok(Box::new(V2Cgroup::create(mount_point, cgroup_parent, limits, contained)?)),
        layout => {
            let mut cgroup = V1Cgroup::plan(layout, cgroup_parent, limits, contained)?;
            if when == Creation::Now {
                cgroup.make()?;
            }
            Ok(Box::new(cgroup))
        }
    }
}

/// When a run's cgroup is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Creation {
    /// Before the clone (rootless runs, which fall back on rlimits when they cannot make one).
    Now,
    /// Where the version allows, after the clone, while the init sets up its mounts (v1 as
    /// root: the two are the largest parts of a sandbox's start; see [`RunCgroup::place`]).
    WhileTheInitStarts,
}

#[cfg(test)]
mod tests;
