//! What composes without any crate of the field: a `#[test]` below `#[isolated]` (taken over),
//! a test attribute below it that expands first (here a stand-in that, like tokio's and
//! test-log's, adds its `#[test]` last), and an `async fn` on the built-in executor.

use sandbox::isolated;

/// Stands in for `tokio::test`: re-exports the plain test attribute under a path ending in
/// `test`, which `#[isolated]` lets expand first.
mod runtime {
    pub use core::prelude::v1::test;
}

#[isolated(pids = 20)]
#[test]
fn plain_test_below() {}

#[isolated(pids = 20)]
#[runtime::test]
fn runtime_test_below() {}

#[isolated(timeout = "5s")]
async fn on_the_builtin_executor() {
    std::future::ready(()).await;
}

#[isolated]
async fn async_result() -> Result<(), String> {
    Ok(())
}

fn main() {}
