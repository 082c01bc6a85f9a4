//! Fixtures of `tests/isolated.rs`: `#[isolated]` tests under the stock harness that must fail
//! (each with its own reason), hang, or stay ignored. `tests/isolated.rs` runs this binary and
//! asserts the verdicts and messages; `cargo test` does not run it (`test = false`), so that
//! `cargo test -- --include-ignored` runs the real suite only.

use sandbox::isolated;

/// Allocates 1 MiB blocks (touching every page) until the OOM killer steps in.
fn leak_forever() -> ! {
    let mut blocks = Vec::new();
    loop {
        blocks.push(vec![1u8; 1 << 20]);
    }
}

/// Allocates and touches `SANDBOX_PROBE_ALLOCATE_MIB` MiB (default 4): `tests/regression.rs`
/// saves its baseline, then grows it.
#[isolated(mem = "256M")]
fn baseline_probe_allocates() {
    let mib = std::env::var("SANDBOX_PROBE_ALLOCATE_MIB").map_or(4, |v| v.parse().unwrap());
    std::hint::black_box(vec![1u8; mib << 20]);
}

#[isolated]
#[ignore = "proves that #[ignore] composes: never run"]
fn ignore_composes() {
    panic!("an ignored isolated test ran");
}

#[isolated]
fn fixture_panics() {
    println!("output of the failing test");
    panic!("fixture boom");
}

#[isolated(mem = "64M")]
fn fixture_oom_without_expect() {
    leak_forever();
}

#[isolated(timeout = "300ms")]
fn fixture_times_out() {
    loop {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

#[isolated(pids = 20, expect = "pids_limit")]
fn fixture_expected_event_missing() {}

#[isolated]
fn fixture_returns_err() -> Result<(), String> {
    Err("bad input".to_string())
}

#[isolated]
fn fixture_hangs_without_timeout() {
    loop {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Forks up to a thousand children under its own generous limit, and prints how many it got and
/// its cgroups: run inside a bounded job (`sandbox run --pids 40`), the job's limit must stop it.
#[isolated(pids = 1000, timeout = "30s")]
fn fixture_forks_up_to_a_thousand() {
    let mut children = Vec::new();
    let refusal = loop {
        if children.len() == 1000 {
            break "none".to_string();
        }
        match std::process::Command::new("sleep").arg("30").spawn() {
            Ok(child) => children.push(child),
            Err(err) => break format!("{:?}", err.raw_os_error()),
        }
    };
    println!("spawned {} children, then refused with errno {refusal}", children.len());
    print!("cgroups:\n{}", std::fs::read_to_string("/proc/self/cgroup").unwrap());
    for child in &mut children {
        child.kill().unwrap();
        child.wait().unwrap();
    }
}
