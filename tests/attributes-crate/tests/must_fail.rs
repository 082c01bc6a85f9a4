//! Tests that must fail, each run alone by tests/attributes.sh, which checks how.

use std::time::Duration;

use sandbox::isolated;
use test_case::test_case;

/// test-case puts its #[test] above #[isolated], which registers each case a second time: the
/// second run fails, naming the order that works.
#[test_case(1)]
#[test_case(2)]
#[isolated]
fn wrong_order(x: u32) {
    assert!(x > 0);
}

/// An async body that hangs: its timeout ends it, and the failure lists what still ran.
#[isolated(timeout = "2s")]
#[tokio::test]
async fn async_hang() {
    let _sleeper = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
}
