//! The `harness = false` example: `#[isolated]` tests run by `sandbox::main!()`, which prints
//! each test's resources (`test fork_bomb_is_contained ... ok (pids-limit hits 1312, peak pids
//! 20, peak mem 4.1 MiB, 212 ms)`) and writes a JSON report with `--report FILE`;
//! `tests/isolated.rs` runs this binary and checks both (its failing fixtures are in
//! `isolated_runner_fixtures.rs`).

use std::process::Command;

use sandbox::isolated;

#[isolated(pids = 20, expect = "pids_limit", timeout = "20s")]
fn fork_bomb_is_contained() {
    let mut children = Vec::new();
    while let Ok(child) = Command::new("sleep").arg("30").spawn() {
        children.push(child);
    }
}

#[isolated(mem = "64M", expect = "oom")]
fn leak_is_oom_killed() {
    let mut blocks = Vec::new();
    loop {
        blocks.push(vec![1u8; 1 << 20]);
    }
}

#[isolated(timeout = "300ms", expect = "timeout")]
fn hang_is_timed_out() {
    loop {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[isolated(hostname = "runner-box")]
fn hostname_is_set() {
    assert_eq!(std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap().trim(), "runner-box");
    assert_eq!(std::process::id(), 2);
}

#[isolated(tmpfs = "/tmp/scratch:1M")]
fn tmpfs_is_private_and_sized() {
    std::fs::write("/tmp/scratch/small", b"fits").unwrap();
    assert!(std::fs::write("/tmp/scratch/big", vec![0u8; 2 << 20]).is_err());
}

#[isolated]
#[should_panic(expected = "as expected")]
fn should_panic_is_honoured() {
    panic!("panicked as expected");
}

sandbox::main!();
