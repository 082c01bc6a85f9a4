// The tests of both targets (`stock.rs` under libtest, `runner.rs` under sandbox's runner):
// every way of writing #[isolated] with the attributes of tokio, rstest, test-case, test-log,
// tracing-test and serial_test. Every body first checks that it runs in a sandbox of its own.

use std::time::{Duration, Instant};

use attributes_crate::{assert_isolated, hold_the_serial_marker};
use rstest::{fixture, rstest};
use sandbox::isolated;
use serial_test::serial;
use test_case::test_case;
use tracing_test::traced_test;

// ---- tokio: the runtime is built inside the sandbox, by tokio's own wrapper.

#[isolated(pids = 20)]
#[tokio::test]
async fn tokio_below() {
    assert_isolated();
    tokio::task::yield_now().await;
    assert_eq!(tokio::runtime::Handle::current().runtime_flavor(), tokio::runtime::RuntimeFlavor::CurrentThread);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[isolated(pids = 20)]
async fn tokio_above_multi_thread() {
    assert_isolated();
    assert_eq!(tokio::runtime::Handle::current().runtime_flavor(), tokio::runtime::RuntimeFlavor::MultiThread);
    let spawned = tokio::spawn(async { std::process::id() }).await.unwrap();
    assert_eq!(spawned, 2, "a task on a worker thread runs in the same sandboxed process");
    let threads = std::fs::read_to_string("/proc/self/status").unwrap();
    let threads: u32 = threads.lines().find_map(|l| l.strip_prefix("Threads:")).unwrap().trim().parse().unwrap();
    assert!(threads >= 3, "the runtime's 2 workers beside the test's thread, got {threads} threads");
}

#[isolated]
#[tokio::test(start_paused = true)]
async fn tokio_start_paused() {
    assert_isolated();
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert!(started.elapsed() < Duration::from_secs(30), "the paused clock advanced by itself");
}

#[isolated]
#[tokio::test]
async fn tokio_result_return() -> Result<(), String> {
    assert_isolated();
    tokio::task::yield_now().await;
    Ok(())
}

#[isolated]
#[tokio::test]
#[should_panic(expected = "boom in async")]
async fn tokio_should_panic() {
    assert_isolated();
    tokio::task::yield_now().await;
    panic!("boom in async");
}

#[isolated(mem = "64M", expect = "oom")]
#[tokio::test]
async fn tokio_leak_is_oom_killed() {
    assert_isolated();
    let mut blocks = Vec::new();
    loop {
        blocks.push(vec![1u8; 1 << 20]);
        tokio::task::yield_now().await;
    }
}

#[isolated(pids = 10, expect = "pids_limit", timeout = "20s")]
#[tokio::test]
async fn tokio_fork_bomb_is_contained() {
    assert_isolated();
    while std::process::Command::new("sleep").arg("30").spawn().is_ok() {
        tokio::task::yield_now().await;
    }
}

#[isolated(timeout = "1s", expect = "timeout")]
#[tokio::test]
async fn tokio_timeout_is_expected() {
    assert_isolated();
    tokio::time::sleep(Duration::from_secs(60)).await;
}

// ---- Without a runtime's attribute: the built-in executor.

#[isolated]
async fn builtin_executor_woken_by_a_thread() {
    assert_isolated();
    let (sender, receiver) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        sender.send(7).unwrap();
    });
    assert_eq!(receiver.await.unwrap(), 7);
}

// ---- rstest: every case its own sandbox, named as rstest names it.

#[fixture]
fn base() -> u32 {
    10
}

#[rstest]
#[case(1)]
#[case(2)]
#[case(3)]
#[isolated(pids = 20)]
fn rstest_cases(base: u32, #[case] x: u32) {
    assert_isolated();
    assert!(base + x > 10);
}

#[isolated(pids = 20)]
#[rstest]
#[case(1)]
#[case(2)]
fn rstest_isolated_above(base: u32, #[case] x: u32) {
    assert_isolated();
    assert!(base + x > 10);
}

#[isolated]
#[rstest]
fn rstest_values(#[values(1, 2)] a: u32, #[values(3, 4)] b: u32) {
    assert_isolated();
    assert!(a < b);
}

#[isolated(pids = 20)]
#[rstest]
#[case(1)]
#[case(2)]
#[tokio::test]
async fn rstest_async_cases(#[case] x: u64) {
    assert_isolated();
    tokio::time::sleep(Duration::from_millis(x)).await;
}

// ---- test-case: #[isolated] above #[test_case] (the other order registers each case twice).

#[isolated(pids = 20)]
#[test_case(1 => 2)]
#[test_case(2 => 4; "doubled")]
fn test_cases(x: u32) -> u32 {
    assert_isolated();
    x * 2
}

#[test_case(1)]
#[test_case(2)]
#[isolated]
#[tokio::test]
async fn test_cases_async_isolated_below(x: u64) {
    assert_isolated();
    tokio::time::sleep(Duration::from_millis(x)).await;
}

#[isolated]
#[test_case(3)]
#[tokio::test]
async fn test_cases_async_isolated_above(x: u64) {
    assert_isolated();
    tokio::time::sleep(Duration::from_millis(x)).await;
}

// ---- test-log and tracing-test: the logger is set up inside the sandbox, either order.

#[test_log::test]
#[isolated]
fn test_log_above() {
    assert_isolated();
    log::info!("test_log_above logs through log");
    tracing::info!("test_log_above logs through tracing");
}

#[isolated]
#[test_log::test]
fn test_log_below() {
    assert_isolated();
    log::info!("test_log_below logs through log");
}

#[test_log::test(tokio::test)]
#[isolated]
async fn test_log_tokio() {
    assert_isolated();
    tracing::info!("test_log_tokio logs through tracing");
    tokio::task::yield_now().await;
}

#[isolated]
#[traced_test]
fn traced_below() {
    assert_isolated();
    tracing::info!("traced below");
    assert!(logs_contain("traced below"));
}

#[traced_test]
#[isolated]
fn traced_above() {
    assert_isolated();
    tracing::info!("traced above");
    assert!(logs_contain("traced above"));
}

// ---- serial_test: the lock is taken where the test is dispatched; the bodies fail if two
// overlap.

#[isolated]
#[serial]
fn serial_below_a() {
    hold_the_serial_marker("serial_below_a");
}

#[isolated]
#[serial]
fn serial_below_b() {
    hold_the_serial_marker("serial_below_b");
}

#[serial]
#[isolated]
fn serial_above_a() {
    hold_the_serial_marker("serial_above_a");
}

#[serial]
#[isolated]
fn serial_above_b() {
    hold_the_serial_marker("serial_above_b");
}

#[isolated]
#[tokio::test]
#[serial]
async fn serial_tokio() {
    hold_the_serial_marker("serial_tokio");
    tokio::task::yield_now().await;
}
