//! Where the sandbox's init runs while it sets up.
//!
//! The launcher makes the run's cgroup while the init mounts the sandbox's file systems: two
//! pieces of work that need not wait for each other until "go". But a cloned child is queued on
//! its parent's CPU, where it runs only once the launcher blocks, after the cgroup is made: the
//! two run one after the other. Moved to another CPU the launcher may use, the init sets up
//! meanwhile (measured on the benchmark's 2-CPU machine: `sandbox run --fs overlay` 1.83 ms to
//! 1.66 ms, a contained `sandbox run` 1.47 ms to 1.41 ms). The init takes the launcher's whole
//! CPU set back once it has its "go" (the launcher moves it before it says "go"), so that the
//! command may run wherever the launcher could. A launcher kept to one CPU (a fork server, which
//! stays on one CPU on purpose: `testing::affinity`) is left as it is.

use std::cell::Cell;

use nix::sched::{sched_getaffinity, sched_setaffinity, CpuSet};
use nix::unistd::Pid;

thread_local! {
    /// Whether [`pin_to`] kept this thread to one CPU: it has none to spare then, and
    /// [`spare_cpus`] need not ask the kernel (a fork server spawns a sandbox per test).
    static PINNED: Cell<bool> = const { Cell::new(false) };
}

/// Keeps the calling thread to `cpu`.
pub fn pin_to(cpu: usize) {
    let mut one = CpuSet::new();
    if one.set(cpu).is_ok() && sched_setaffinity(Pid::from_raw(0), &one).is_ok() {
        PINNED.set(true);
    }
}

/// The calling thread's CPU set, if it has another CPU to start the init on.
pub fn spare_cpus() -> Option<CpuSet> {
    if PINNED.get() {
        return None;
    }
    let cpus = sched_getaffinity(Pid::from_raw(0)).ok()?;
    let allowed = (0..CpuSet::count()).filter(|&cpu| cpus.is_set(cpu).unwrap_or(false)).count();
    (allowed > 1).then_some(cpus)
}

/// Moves `child`, just cloned, to the CPUs of `cpus` but the one the caller runs on. Where that
/// fails (a cpuset that changed meanwhile) the child stays where the kernel put it: this is a
/// matter of speed only.
pub fn start_elsewhere(child: Pid, cpus: &CpuSet) {
    // SAFETY: no arguments; -1 when the kernel cannot say.
    let here = unsafe { libc::sched_getcpu() };
    let mut elsewhere = *cpus;
    if usize::try_from(here).is_ok_and(|here| elsewhere.unset(here).is_ok()) {
        let _ = sched_setaffinity(child, &elsewhere);
    }
}

/// Gives the calling thread `cpus` back (see [`start_elsewhere`]). No thread-local access: the
/// init may share the launcher's memory.
pub fn restore_cpus(cpus: &CpuSet) {
    let _ = sched_setaffinity(Pid::from_raw(0), cpus);
}

/// Lets a thread that [`pin_to`] kept to one CPU (or a process forked from it) run on `cpus`.
pub fn unpin(cpus: &CpuSet) {
    if sched_setaffinity(Pid::from_raw(0), cpus).is_ok() {
        PINNED.set(false);
    }
}
