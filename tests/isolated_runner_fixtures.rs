//! Fixtures of `tests/isolated.rs` under sandbox's runner (`harness = false`): tests that must
//! fail, and a probe that prints what a test body sees. Not run by `cargo test` (`test = false`).

use sandbox::isolated;

/// The runner pins each fork server to one CPU (fewer cross-CPU wake-ups per test); a test body
/// must still get every CPU the runner may use. Prints the body's CPU list, which
/// `tests/isolated.rs` compares with its own.
#[isolated]
fn probe_body_cpus() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let cpus = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim();
    println!("body cpus: {cpus}");
}

#[isolated]
fn fixture_panics() {
    panic!("runner fixture boom");
}

#[isolated(mem = "64M")]
fn fixture_oom_without_expect() {
    let mut blocks = Vec::new();
    loop {
        blocks.push(vec![1u8; 1 << 20]);
    }
}

#[isolated]
#[ignore = "proves that the runner honours #[ignore]: never run"]
fn ignored_by_attribute() {
    panic!("an ignored test ran under the runner");
}

sandbox::main!();
