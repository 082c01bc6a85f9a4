//! CPU pinning of the runner's fork servers. A trivial test hands work from the runner to its
//! fork server, to the sandbox's init, to the test's process and back, six wake-ups; on
//! different CPUs each is an inter-processor interrupt, and on a virtual machine a trip through
//! the hypervisor (the runner's 200 trivial tests: 267 ms unpinned, 225-233 ms pinned to one
//! CPU). So each server, with its runner thread, stays on one CPU of those the runner may use,
//! and each test body gets the runner's full set back before it runs: tests see the CPUs they
//! would see without the runner (`available_parallelism`, threads they start).

use std::sync::OnceLock;

use nix::sched::{sched_getaffinity, CpuSet};
use nix::unistd::Pid;

/// The runner's CPU set, for test bodies; set in a fork server before it pins itself.
static BODY_CPUS: OnceLock<CpuSet> = OnceLock::new();

/// The CPUs this thread may run on, in order; empty when unknown.
pub(crate) fn allowed_cpus() -> Vec<usize> {
    let Ok(set) = sched_getaffinity(Pid::from_raw(0)) else { return Vec::new() };
    (0..CpuSet::count()).filter(|&cpu| set.is_set(cpu).unwrap_or(false)).collect()
}

/// In a fork server, before it pins itself: keeps its CPU set for the test bodies.
pub(crate) fn keep_for_bodies() {
    if let Ok(all) = sched_getaffinity(Pid::from_raw(0)) {
        let _ = BODY_CPUS.set(all);
    }
}

/// Pins the calling thread to `cpu`.
pub(crate) fn pin_to(cpu: usize) {
    crate::sys::pin_to(cpu);
}

/// In a test body: the runner's CPU set back, if its fork server was pinned.
pub(crate) fn release_body() {
    if let Some(all) = BODY_CPUS.get() {
        crate::sys::unpin(all);
    }
}
