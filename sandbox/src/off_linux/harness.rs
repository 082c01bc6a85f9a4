//! The `harness = false` runner off Linux: lists the target's `#[isolated]` tests as libtest
//! would, and reports each ignored because isolated tests need Linux (run anyway with
//! `--include-ignored`, each fails with that line).

use libtest_mimic::{Arguments, Trial};

use crate::testing::{TestCase, NEEDS_LINUX};

/// Runs the target's `#[isolated]` tests with libtest's command line: off Linux, each is
/// reported ignored (or, with `--include-ignored`, failed) because it needs Linux.
pub fn main() -> ! {
    let args = Arguments::from_args();
    let mut cases: Vec<&'static TestCase> = inventory::iter::<TestCase>.into_iter().collect();
    cases.sort_by_cached_key(|case| case.test_name());
    if !args.list && !cases.is_empty() {
        eprintln!("sandbox: {NEEDS_LINUX}; this is {}, so each is reported ignored", std::env::consts::OS);
    }
    let trials = cases
        .into_iter()
        .map(|case| {
            let os = std::env::consts::OS;
            Trial::test(case.test_name(), move || Err(format!("{NEEDS_LINUX}: it cannot run on {os}").into()))
                .with_ignored_flag(true)
        })
        .collect();
    libtest_mimic::run(&args, trials).exit()
}
