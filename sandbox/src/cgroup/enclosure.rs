//! A fork server's own cgroups in the v1 hierarchies that hold no limits of its runs (and in a
//! hybrid layout's cgroup2), which it joins once, so that the init of each contained test it
//! runs is in them from its clone on.
//!
//! The problem: a contained run's cgroup namespace is rooted at the cgroup its init is in,
//! hierarchy by hierarchy; where that is the launcher's own, a command that mounts the
//! hierarchy itself sees the launcher's cgroup and everything below it (`v1`). A `sandbox run`
//! therefore gets a directory in every hierarchy, which its init joins, and is cloned into one
//! in the cgroup2 of a hybrid layout. In a fork server that would be seven joins a test.
//!
//! The fix: the server moves itself once into the contained runs' shared directory of each such
//! hierarchy (`shared`), or where there is none into one it makes (in the cgroup2 that move
//! takes the kernel's global `cgroup_threadgroup_rwsem` for writing, ~7 ms after a quiet spell:
//! once per server, not per test); its tests' inits inherit them. A test's command that mounts
//! such a hierarchy sees that directory, which it cannot write, and of its processes only those
//! of its own PID namespace. Leaving ([`leave`]) moves the server back and removes the
//! directories it made; a server killed before leaves them empty, named as a run of its own, to
//! the stale-run cleanup of the next launcher.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use super::{clean_stale_once, io_err, new_run_name, read_small_file, v1_default_runs_dir, write_file, CgroupError, Hierarchy, Layout};

/// One hierarchy's directory of the enclosure, and the cgroup the process came from.
struct Enclosed {
    dir: PathBuf,
    came_from: PathBuf,
    /// `tasks` (v1: a move of the caller alone, without the global lock) or `cgroup.procs`.
    join_file: &'static str,
    /// The contained runs' shared directory (`shared`), left where it is.
    shared: bool,
}

/// The enclosure and the PID of the process that entered it: a copy of that process (a test
/// body) is in it too, but neither owns nor leaves it.
static ENCLOSURE: Mutex<Option<(u32, Vec<Enclosed>)>> = Mutex::new(None);

/// The v1 hierarchies whose runs' directories are made per run anyway (`V1Cgroup::plan`).
const PER_RUN: [&str; 2] = ["memory", "pids"];

/// Makes this process's directories and moves it in, as root on a v1 or hybrid layout (a no-op
/// elsewhere). On an error, what was done is undone and the runs make their own directories.
pub(crate) fn enter() -> Result<(), CgroupError> {
    if !nix::unistd::geteuid().is_root() || is_enclosed() {
        return Ok(());
    }
    let layout = Layout::current()?;
    let proc_self_cgroup = read_small_file(Path::new("/proc/self/cgroup")).map_err(io_err("reading", Path::new("/proc/self/cgroup")))?;
    let mut wanted: Vec<(Hierarchy, &'static str)> = layout
        .v1_hierarchies()
        .iter()
        .filter(|hierarchy| !hierarchy.controllers.iter().any(|c| PER_RUN.contains(&c.as_str())))
        .map(|hierarchy| (hierarchy.clone(), "tasks"))
        .collect();
    if let Layout::Hybrid { unified, .. } = layout {
        wanted.push((Hierarchy::hybrid_unified(unified), "cgroup.procs"));
    }
    if wanted.is_empty() {
        return Ok(());
    }
    let name = new_run_name();
    let mut enclosed = Vec::new();
    let owner = crate::sys::withheld_ids();
    for (hierarchy, join_file) in wanted {
        let came_from = own_dir(&hierarchy, &proc_self_cgroup);
        if let Some(dir) = super::shared::dir(&hierarchy, &proc_self_cgroup, owner) {
            if let Err(err) = write_file(&dir, join_file, "0") {
                undo(enclosed);
                return Err(err);
            }
            enclosed.push(Enclosed { dir, came_from, join_file, shared: true });
            continue;
        }
        let runs = v1_default_runs_dir(&hierarchy, &proc_self_cgroup);
        let dir = runs.join(&name);
        let made = fs::create_dir_all(&runs)
            .and_then(|()| fs::create_dir(&dir))
            .map_err(io_err("creating cgroup", &dir))
            .and_then(|()| {
                // A new cpuset cgroup has no CPUs until given some: its parent's.
                if hierarchy.controllers.iter().any(|c| c == "cpuset") {
                    super::v1::give_parents_cpus(&dir)?;
                }
                write_file(&dir, join_file, "0")
            });
        if let Err(err) = made {
            let _ = fs::remove_dir(&dir);
            undo(enclosed);
            return Err(err);
        }
        clean_stale_once(&runs);
        enclosed.push(Enclosed { dir, came_from, join_file, shared: false });
    }
    if let Ok(mut enclosure) = ENCLOSURE.lock() {
        *enclosure = Some((std::process::id(), enclosed));
    }
    Ok(())
}

/// Whether this process is in an enclosure of its own ([`enter`]).
pub(crate) fn is_enclosed() -> bool {
    ENCLOSURE.lock().is_ok_and(|enclosure| enclosure.as_ref().is_some_and(|(pid, _)| *pid == std::process::id()))
}

/// Moves this process back to where it came from and removes its enclosure.
pub(crate) fn leave() {
    let taken = ENCLOSURE.lock().ok().and_then(|mut enclosure| enclosure.take_if(|(pid, _)| *pid == std::process::id()));
    if let Some((_, enclosed)) = taken {
        undo(enclosed);
    }
}

fn undo(enclosed: Vec<Enclosed>) {
    for Enclosed { dir, came_from, join_file, shared } in enclosed {
        let _ = write_file(&came_from, join_file, "0");
        if !shared {
            let _ = fs::remove_dir(&dir);
        }
    }
}

/// This process's cgroup in `hierarchy` as a directory (the mount point where it is not below
/// it, as `v1::default_runs_dir` takes it).
fn own_dir(hierarchy: &Hierarchy, proc_self_cgroup: &str) -> PathBuf {
    let dir = hierarchy.mount_point.join(super::v1::own_path(hierarchy, proc_self_cgroup).unwrap_or(""));
    if dir.is_dir() {
        dir
    } else {
        hierarchy.mount_point.clone()
    }
}
