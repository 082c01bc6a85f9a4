//! Off Linux there are no namespaces or cgroups to run a test in. `#[isolated]` marks each test
//! ignored with [`NEEDS_LINUX`] as its reason there; one run anyway (`--include-ignored`) fails
//! with that line, and `#[should_panic]` applies on Linux only, so that failure cannot pass.

use super::{test_name, TestBody, TestSpec};

/// Why an isolated test does not run on this system.
pub const NEEDS_LINUX: &str = "isolated tests need Linux (namespaces and cgroups)";

/// The stock-harness entry point of an `#[isolated]` test off Linux: fails with one line.
#[track_caller]
pub fn run_test(_spec: &'static TestSpec, module_path: &'static str, name: &'static str, _body: TestBody) {
    panic!("{NEEDS_LINUX}: '{}' cannot run on {}", test_name(module_path, name), std::env::consts::OS);
}
