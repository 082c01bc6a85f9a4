//! Run tests and commands in a fresh Linux PID, mount and UTS namespace with their own cgroup
//! and a private `/tmp`, and report what the kernel saw: exit status, OOM kills, pids-limit
//! hits, peak memory and pids, CPU time.
//!
//! ```no_run
//! use sandbox::{Command, Config, Sandbox};
//!
//! let mut config = Config::default();
//! config.limits.pids = Some(20);
//! config.limits.memory_bytes = Some(100 << 20);
//! let outcome = Sandbox::new(config)?.run(Command::new("sh").args(["-c", "echo hello"]))?;
//! assert!(outcome.success());
//! println!("{outcome}");
//! # Ok::<(), sandbox::Error>(())
//! ```
//!
//! Layout mirrors the kernel's concepts: [`config`] (what to build), `mounts` (the file-system
//! view), [`cgroup`] (v1 and v2 behind one trait), [`outcome`] (typed results), the launcher in
//! [`runner`], the sandbox's PID 1 in `init`, and every `unsafe` line in `sys`.
//!
//! Linux only: built for another system the crate keeps [`config`], [`units`], [`isolated`],
//! [`main!`] and [`harness::main`], so that a crate with isolated tests still builds there; each
//! of its isolated tests is reported ignored, because it needs Linux.

// `::sandbox` names this crate inside it too, as the paths `#[isolated]` expands to do.
extern crate self as sandbox;

#[cfg(target_os = "linux")]
pub mod cgroup;
#[cfg(target_os = "linux")]
pub mod check;
pub mod config;
#[cfg(target_os = "linux")]
pub mod harness;
#[cfg(not(target_os = "linux"))]
#[path = "off_linux/harness.rs"]
pub mod harness;
#[cfg(target_os = "linux")]
pub mod fs_changes;
#[cfg(target_os = "linux")]
mod init;
#[cfg(target_os = "linux")]
mod mountinfo;
#[cfg(target_os = "linux")]
mod mounts;
#[cfg(target_os = "linux")]
pub mod outcome;
#[cfg(target_os = "linux")]
pub mod processes;
#[cfg(target_os = "linux")]
pub mod runner;
#[cfg(target_os = "linux")]
mod sys;
#[doc(hidden)] // the runtime of #[isolated] and main!(): reached through `__private` and `harness`
pub mod testing;
pub use sandbox_units as units;

pub use config::{BindMount, Config, FsMode, HostWrites, Limits, NetMode, TmpfsMount};
#[cfg(target_os = "linux")]
pub use outcome::{Ending, Enforcement, Enforcements, ExitStatus, Outcome};
#[cfg(target_os = "linux")]
pub use runner::{Command, Error, Running, Sandbox};
#[cfg(target_os = "linux")]
pub use sys::LauncherAllocator;

pub use sandbox_macros::isolated;

/// `sandbox::main!();` is the whole `main` of a `harness = false` test target: it runs the
/// target's `#[isolated]` tests with [`harness::main`].
#[macro_export]
macro_rules! main {
    () => {
        fn main() {
            $crate::harness::main()
        }
    };
}

/// For a launcher that starts without Rust's runtime (`#![no_main]`, as the `sandbox` CLI
/// does to start faster): what of that start-up a launcher needs. Closed descriptors 0-2 get
/// `/dev/null`, so that no pipe of the sandbox lands on them and is taken for the command's
/// stdio; SIGPIPE is ignored, so that writing to a pipe whose reader died is an error, not the
/// launcher's death. Returns the program's arguments. Call it first thing in C's `main`.
///
/// # Safety
/// `argv` must point to `argc` valid NUL-terminated strings, as C's `main` receives them.
#[cfg(target_os = "linux")]
pub unsafe fn start_without_runtime(argc: std::ffi::c_int, argv: *const *const std::ffi::c_char) -> Vec<std::ffi::OsString> {
    // SAFETY: passed on from our caller, who guarantees it.
    unsafe { sys::start_without_runtime(argc, argv) }
}

/// What `#[isolated]` expands to refers to these; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use crate::testing::*;
    pub use inventory;
}
