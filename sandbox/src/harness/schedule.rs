//! Memory-aware scheduling: the runner's test threads take tests from one queue, in order, and
//! a test starts only when its declared memory (`mem`) fits beside the tests already running,
//! within the run's memory budget (`--mem-budget`, by default the memory the runner may use).
//! A suite of `mem = "1G"` tests on a 2 GiB CI runner then runs one test at a time instead of
//! OOM-killing the machine's other work.
//!
//! A test without `mem` counts as [`UNDECLARED_MEMORY`]. A test whose `mem` alone is over the
//! budget waits until nothing runs and then runs alone. The queue is first come, first served:
//! a large test at its head is not overtaken by the small ones behind it, so it cannot starve.

use std::collections::VecDeque;
use std::sync::{Condvar, Mutex};

use crate::testing::TestCase;

/// What a test without `mem` counts as against the budget.
pub(super) const UNDECLARED_MEMORY: u64 = 64 << 20;

/// The memory the runner may use: the tightest limit on its own cgroup and those above it, or
/// the machine's `MemAvailable`, whichever is smaller.
pub(super) fn default_budget() -> Option<u64> {
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| mem_available(&text));
    match (crate::cgroup::own_memory_limit(), available) {
        (Some(limit), Some(available)) => Some(limit.min(available)),
        (limit, available) => limit.or(available),
    }
}

/// `MemAvailable` of a `/proc/meminfo` text, in bytes.
fn mem_available(meminfo: &str) -> Option<u64> {
    let kib = meminfo.lines().find_map(|line| line.strip_prefix("MemAvailable:"))?.trim().strip_suffix("kB")?;
    kib.trim().parse::<u64>().ok()?.checked_mul(1024)
}

/// A test waiting in the queue: (the test, ignored?).
pub(super) type Queued = (&'static TestCase, bool);

/// The tests still to run and the memory of those running.
pub(super) struct Schedule {
    state: Mutex<State>,
    changed: Condvar,
    /// `None`: no budget, a test starts as soon as a thread is free.
    budget: Option<u64>,
}

struct State {
    queue: VecDeque<Queued>,
    /// The declared memory of the tests running now.
    in_use: u64,
    running: usize,
    /// Threads waiting for room: only then does a test's end wake anyone (a futex call per test
    /// otherwise).
    waiting: usize,
}

/// A test taken from the queue; its memory counts until this is dropped.
pub(super) struct Started<'a> {
    schedule: &'a Schedule,
    /// What it counts as against the budget: its `mem`, or [`UNDECLARED_MEMORY`].
    pub memory: u64,
    /// The test.
    pub test: Queued,
    /// It waited for every other test to end, and runs alone: its memory is over the budget.
    pub alone_over: Option<u64>,
}

/// What `test` counts as against the budget: nothing when it will not run.
fn memory_of((case, ignored): Queued) -> u64 {
    if ignored {
        0
    } else {
        case.spec.mem_bytes.unwrap_or(UNDECLARED_MEMORY)
    }
}

impl Schedule {
    pub(super) fn new(tests: Vec<Queued>, budget: Option<u64>) -> Schedule {
        let state = State { queue: tests.into(), in_use: 0, running: 0, waiting: 0 };
        Schedule { state: Mutex::new(state), changed: Condvar::new(), budget }
    }

    /// The next test, once its memory fits beside the running tests; `None` when none is left.
    pub(super) fn next(&self) -> Option<Started<'_>> {
        let mut state = self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        loop {
            let memory = memory_of(*state.queue.front()?);
            let fits = match self.budget {
                None => true,
                Some(budget) => state.running == 0 || state.in_use.saturating_add(memory) <= budget,
            };
            if fits {
                let test = state.queue.pop_front()?;
                state.in_use = state.in_use.saturating_add(memory);
                state.running += 1;
                let alone_over = self.budget.filter(|budget| memory > *budget);
                return Some(Started { schedule: self, memory, test, alone_over });
            }
            state.waiting += 1;
            state = self.changed.wait(state).unwrap_or_else(|poisoned| poisoned.into_inner());
            state.waiting -= 1;
        }
    }
}

impl Drop for Started<'_> {
    fn drop(&mut self) {
        let mut state = self.schedule.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        state.in_use -= self.memory;
        state.running -= 1;
        let wake = state.waiting > 0;
        drop(state);
        if wake {
            self.schedule.changed.notify_all();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{ShouldPanic, TestSpec};

    fn case(mem_bytes: Option<u64>) -> &'static TestCase {
        let spec: &'static TestSpec = Box::leak(Box::new(TestSpec { mem_bytes, ..TestSpec::DEFAULT }));
        Box::leak(Box::new(TestCase {
            name: "t",
            module_path: "m",
            spec,
            body: || Ok(()),
            ignore: false,
            should_panic: ShouldPanic::No,
            lock: None,
        }))
    }

    #[test]
    fn a_test_starts_when_its_memory_fits_and_a_large_one_runs_alone() {
        let schedule = Schedule::new(
            vec![(case(Some(100 << 20)), false), (case(None), false), (case(Some(1 << 30)), false), (case(None), true)],
            Some(200 << 20),
        );
        let first = schedule.next().unwrap();
        let second = schedule.next().unwrap();
        assert_eq!(second.memory, UNDECLARED_MEMORY);
        // The 1 GiB test waits for both, on another thread, and then runs alone.
        std::thread::scope(|scope| {
            let large = scope.spawn(|| {
                let large = schedule.next().unwrap();
                assert_eq!(large.alone_over, Some(200 << 20));
                assert_eq!(schedule.state.lock().unwrap().running, 1);
            });
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!large.is_finished(), "the large test started beside two running ones");
            drop(first);
            std::thread::sleep(std::time::Duration::from_millis(50));
            assert!(!large.is_finished(), "the large test started beside a running one");
            drop(second);
            large.join().unwrap();
        });
        // The ignored test counts nothing.
        let ignored = schedule.next().unwrap();
        assert_eq!((ignored.memory, ignored.alone_over), (0, None));
        drop(ignored);
        assert!(schedule.next().is_none());
    }

    #[test]
    fn mem_available_is_read_in_bytes() {
        let meminfo = "MemTotal:       24567890 kB\nMemFree:         1000 kB\nMemAvailable:   2048 kB\n";
        assert_eq!(mem_available(meminfo), Some(2 << 20));
        assert_eq!(mem_available("MemTotal: 1 kB\n"), None);
    }
}
