//! Sandboxed tests: the runtime behind `#[isolated]` for the stock harness, and the pieces the
//! `harness = false` runner shares with it. Off Linux only what the attribute expands to is
//! here, and every isolated test reports that it needs Linux.

mod executor;
mod lock;
mod spec;

pub use executor::block_on;
pub use lock::{run_locked, run_locked_test, TestLock};
pub use spec::{test_name, Expect, FsMode, HostWrites, Net, ShouldPanic, TestBody, TestCase, TestReturn, TestSpec, Tolerance};

#[cfg(target_os = "linux")]
pub(crate) mod affinity;
#[cfg(target_os = "linux")]
pub mod baseline;
#[cfg(target_os = "linux")]
mod child;
#[cfg(target_os = "linux")]
mod run;
#[cfg(target_os = "linux")]
pub(crate) mod fork_server;
#[cfg(target_os = "linux")]
mod verdict;

#[cfg(target_os = "linux")]
pub use baseline::{BaselineCheck, BaselineStatus, Baselines};
#[cfg(target_os = "linux")]
pub use child::{ChildReport, CHILD_ENV};
#[cfg(target_os = "linux")]
pub use run::*;
#[cfg(target_os = "linux")]
pub use verdict::{judge, judge_should_panic, Failure, FailureKind, Resources, Verdict};

#[cfg(not(target_os = "linux"))]
mod off_linux;
#[cfg(not(target_os = "linux"))]
pub use off_linux::{run_test, NEEDS_LINUX};
