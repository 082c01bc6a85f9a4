//! `sandbox run` / `sandbox check`: the command-line face of the library.
//!
//! The program starts without Rust's runtime start-up (`#![no_main]`): that finds the main
//! thread's stack by having the kernel format `/proc/self/maps`, and sets up a signal stack for
//! stack-overflow messages, a noticeable part of each run (BENCHMARKS.md). `cli::main` does the
//! parts a launcher needs. Installed as a static musl program (README), it also allocates from
//! an arena ([`sandbox::LauncherAllocator`]).
//!
//! Namespaces and cgroups are Linux's: built for another system, the program does not compile,
//! with one error saying so.
#![cfg_attr(target_os = "linux", no_main)]

#[cfg(target_os = "linux")]
mod cli;

#[cfg(not(target_os = "linux"))]
compile_error!("the sandbox command runs on Linux only: it is built from Linux namespaces and cgroups");
#[cfg(not(target_os = "linux"))]
fn main() {}
