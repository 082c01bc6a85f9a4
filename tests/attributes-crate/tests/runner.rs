//! The tests of `common/cases.rs` under sandbox's runner.
include!("common/cases.rs");

sandbox::main!();
