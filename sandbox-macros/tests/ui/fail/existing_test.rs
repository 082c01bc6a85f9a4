use sandbox::isolated;

// Stands in for the tokio crate: `#[tokio::test]` is rejected like any path ending in `test`.
mod tokio {
    pub use core::prelude::v1::test;
}

#[isolated(pids = 20)]
#[test]
fn plain_test() {}

#[isolated(pids = 20)]
#[tokio::test]
fn tokio_test() {}

fn main() {}
