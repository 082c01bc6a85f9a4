//! Reuse of run cgroups in a process that runs one sandbox after another (fork servers): making and
//! removing a v1 memory and pids cgroup for every test is about a quarter of what a trivial test
//! costs, and takes the kernel's global `cgroup_mutex` that parallel tests queue on. A cgroup goes
//! back to the pool only when the next run's counters can be told exactly as in a new one
//! (`V1Cgroup::ready_for_reuse`); otherwise it is removed.
//!
//! Off unless [`enable`]d; a process that enables it must call [`drain`] before it exits (a
//! process killed before that leaves its idle cgroups to the stale-run cleanup of the next
//! launcher, as any killed launcher does).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use super::{CgroupError, V1Cgroup};
use crate::config::Limits;

static ENABLED: AtomicBool = AtomicBool::new(false);

/// An idle cgroup, with the `--cgroup-parent` it was made under.
type Idle = (Option<PathBuf>, V1Cgroup);

static IDLE: Mutex<Vec<Idle>> = Mutex::new(Vec::new());

/// Lets this process keep its runs' cgroups for later runs.
pub fn enable() {
    ENABLED.store(true, Ordering::Relaxed);
}

/// Whether [`enable`] was called.
pub fn is_enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// An idle cgroup made under `parent`, for a run `contained` or not, with `limits` written, if
/// there is one.
pub(crate) fn take(parent: Option<&Path>, limits: &Limits, contained: bool) -> Option<V1Cgroup> {
    if !is_enabled() {
        return None;
    }
    let mut idle = IDLE.lock().ok()?;
    let index = idle.iter().position(|(p, cgroup)| p.as_deref() == parent && cgroup.is_contained() == contained)?;
    let (_, mut cgroup) = idle.swap_remove(index);
    drop(idle);
    match cgroup.apply_limits(limits) {
        Ok(()) => Some(cgroup),
        // It cannot take these limits (e.g. a CPU limit it was made without): dropping it
        // removes it, and the caller makes a new one, which reports its own errors.
        Err(_) => None,
    }
}

/// Ends a run's use of `cgroup`, made under `parent` (after its stats were read and every
/// process is gone): into the pool when it is enabled and the cgroup can be reused, otherwise
/// removed.
pub(crate) fn release(parent: Option<&Path>, mut cgroup: V1Cgroup) -> Result<(), CgroupError> {
    if is_enabled() && cgroup.ready_for_reuse().unwrap_or(false) {
        if let Ok(mut idle) = IDLE.lock() {
            idle.push((parent.map(Path::to_path_buf), cgroup));
            return Ok(());
        }
    }
    cgroup.remove()
}

/// Removes every idle cgroup.
pub fn drain() {
    let idle = IDLE.lock().map(|mut idle| std::mem::take(&mut *idle)).unwrap_or_default();
    for (_, mut cgroup) in idle {
        let _ = cgroup.remove();
    }
}
