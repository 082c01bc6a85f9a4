//! Names of run cgroups (who made them, for how long they live) and the removal of those whose
//! launcher is gone.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use super::*;

/// Identity of this launcher process, written into the names of its runs' cgroups
/// (`<pid-namespace inode>-<pid>-<start time>-<sequence>`), so that a later launcher can tell
/// whether the owner of a cgroup it finds is still alive, without confusing a recycled PID or a
/// launcher in another PID namespace with the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub pid_namespace: u64,
    pub pid: u32,
    pub start_time: u64,
}

impl Owner {
    fn current() -> Owner {
        use std::os::unix::fs::MetadataExt;
        let pid_namespace = fs::metadata("/proc/self/ns/pid").map(|m| m.ino()).unwrap_or(0);
        let pid = std::process::id();
        let start_time = process_start_time(pid).unwrap_or(0);
        Owner { pid_namespace, pid, start_time }
    }

    /// Whether the launcher that created a cgroup is gone (same PID namespace, and its PID is
    /// free or now belongs to a process that started at another time).
    pub(super) fn is_dead(&self) -> bool {
        process_start_time(self.pid) != Some(self.start_time)
    }
}

/// A process's `/proc/PID/stat` line, from field 3 (the state) on.
pub(crate) struct ProcStat {
    line: String,
    /// Where field 3 starts.
    state_at: usize,
}

impl ProcStat {
    /// Reads process `pid`'s line; `None` when it is gone.
    pub(crate) fn read(pid: u32) -> Option<ProcStat> {
        let line = read_small_file(Path::new(&format!("/proc/{pid}/stat"))).ok()?;
        // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
        let state_at = line.rfind(')')? + 2;
        (state_at <= line.len()).then_some(ProcStat { line, state_at })
    }

    /// Field `field` (1-based, as proc(5) numbers them; 3 or later).
    pub(crate) fn field(&self, field: usize) -> Option<&str> {
        self.line[self.state_at..].split(' ').nth(field.checked_sub(3)?)
    }
}

fn stat_field(pid: u32, field: usize) -> Option<u64> {
    ProcStat::read(pid)?.field(field)?.trim().parse().ok()
}

/// Field 22 of `/proc/PID/stat`: start time in clock ticks after boot.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    stat_field(pid, 22)
}

/// Field 4 of `/proc/PID/stat`: the parent's PID (0 above the top of a PID namespace).
pub(crate) fn process_parent(pid: u32) -> Option<u32> {
    stat_field(pid, 4).and_then(|parent| u32::try_from(parent).ok())
}

pub(super) fn owner() -> Owner {
    static OWNER: OnceLock<Owner> = OnceLock::new();
    *OWNER.get_or_init(Owner::current)
}

/// A fresh, unique cgroup name for one run of this launcher.
pub(crate) fn new_run_name() -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let o = owner();
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!("{}-{}-{}-{}", o.pid_namespace, o.pid, o.start_time, seq)
}

/// Whether `name` is a run cgroup's name (`<pid namespace>-<pid>-<start time>-<n>`).
pub(crate) fn is_run_name(name: &str) -> bool {
    parse_run_name(name).is_some()
}

/// Whether the cgroup `path` is a run's cgroup or lies below one.
pub(crate) fn in_a_run_cgroup(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str().to_str().is_some_and(is_run_name))
}

/// `SANDBOX_CGROUP_PARENT`: a delegated cgroup for runs that do not name one (e.g. `#[isolated]`
/// tests, which have no command line). Inherited into a run (a bounded job's tests), it is
/// ignored: there runs nest in the run's cgroup, under its limits.
pub(crate) fn parent_from_environment() -> Option<PathBuf> {
    std::env::var_os("SANDBOX_CGROUP_PARENT").filter(|v| !v.is_empty()).filter(|_| !inside_a_run()).map(PathBuf::from)
}

/// Whether this process lives in a run's cgroup (or below one), in any hierarchy: it is a
/// sandbox's command or test, and what a launcher here starts must nest in that run.
pub(crate) fn inside_a_run() -> bool {
    read_small_file(Path::new("/proc/self/cgroup"))
        .is_ok_and(|text| proc_cgroup_lines(&text).any(|line| in_a_run_cgroup(Path::new(line.path))))
        || in_a_run_namespace()
}

/// The source name of a contained run's cgroup mounts: in its cgroup namespace every cgroup
/// path reads `/`, and these mounts are what tells a launcher there that it nests in a run.
pub(crate) const NAMESPACE_MOUNT_SOURCE: &str = "sandbox-run";

/// Whether this process is in a contained run's cgroup namespace: not the initial one, with a
/// cgroup mount named [`NAMESPACE_MOUNT_SOURCE`].
pub(crate) fn in_a_run_namespace() -> bool {
    // The kernel's fixed inode number of the initial cgroup namespace (PROC_CGROUP_INIT_INO).
    const INITIAL: &str = "cgroup:[4026531835]";
    let initial = fs::read_link("/proc/self/ns/cgroup").map_or(true, |link| link.as_os_str() == INITIAL);
    !initial
        && crate::mountinfo::read_own_table().is_ok_and(|table| {
            table.lines().any(|line| {
                let mut after = line.split(" - ").nth(1).unwrap_or("").split(' ');
                matches!(after.next(), Some("cgroup" | "cgroup2")) && after.next() == Some(NAMESPACE_MOUNT_SOURCE)
            })
        })
}

pub(super) fn parse_run_name(name: &str) -> Option<Owner> {
    let mut parts = name.split('-');
    let owner = Owner {
        pid_namespace: parts.next()?.parse().ok()?,
        pid: parts.next()?.parse().ok()?,
        start_time: parts.next()?.parse().ok()?,
    };
    parts.next()?.parse::<u64>().ok()?;
    parts.next().is_none().then_some(owner)
}

/// Removes the cgroups in `parent` left by launchers of this PID namespace that died (e.g. by
/// SIGKILL) before cleaning up. Their processes died with them (PDEATHSIG on the sandbox's init);
/// anything still listed is killed first. Returns the removed directories.
pub(crate) fn remove_stale_runs(parent: &Path) -> Vec<PathBuf> {
    let me = owner();
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(parent) else { return removed };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(parse_run_name) else { continue };
        if owner.pid_namespace != me.pid_namespace || owner == me || !owner.is_dead() {
            continue;
        }
        let dir = entry.path();
        for sub in subtree_deepest_first(&dir) {
            kill_listed_processes(&sub);
        }
        if remove_tree(&dir).is_ok() {
            removed.push(dir);
        }
    }
    removed
}

/// Stale-run cleanup, once per process and runs directory: at a launcher's first run there.
pub(crate) fn clean_stale_once(parent: &Path) {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static SEEN: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let first = SEEN
        .lock()
        .map(|mut seen| {
            let seen = seen.get_or_insert_with(HashSet::new);
            !seen.contains(parent) && seen.insert(parent.to_path_buf())
        })
        .unwrap_or(false);
    if first && holds_other_cgroups(parent) {
        remove_stale_runs(parent);
    }
}

/// How many child cgroups the cgroup directory `dir` has, without listing it: a directory's link
/// count is 2 plus its subdirectories (kernfs keeps it so, on v1 and v2).
pub(crate) fn child_cgroup_count(dir: &Path) -> Result<u64, CgroupError> {
    use std::os::unix::fs::MetadataExt;
    Ok(fs::metadata(dir).map_err(io_err("reading", dir))?.nlink().saturating_sub(2))
}

/// Whether the runs directory `parent`, which holds this run's cgroup, holds others too.
/// Usually it does not, and then listing it (on v1 ~30 control files besides the runs) is not
/// needed: ~0.2 ms of a 3 ms `sandbox run` here. When in doubt, it is listed.
pub(super) fn holds_other_cgroups(parent: &Path) -> bool {
    child_cgroup_count(parent).map_or(true, |count| count > 1)
}
