//! The expansion under the stock libtest harness (built with `--test`, unlike tests/ui/pass):
//! the generated `#[test]` functions, with `#[ignore]` and `#[should_panic]`, compile next to the
//! registry entries, and the registry names the tests the way libtest does.
//!
//! The sandboxed tests are ignored because running them needs a machine that allows namespaces
//! and cgroups; `cargo test -p test-sandbox-macros --test stock_harness -- --ignored` runs them there.

use sandbox::__private::{inventory, TestCase};
use sandbox::isolated;

/// Returns a `Result`.
#[isolated(pids = 8, mem = "64M", timeout = "10s")]
#[ignore = "runs in a sandbox"]
fn sandboxed_under_libtest() -> Result<(), String> {
    Ok(())
}

#[isolated]
#[ignore = "runs in a sandbox"]
#[should_panic(expected = "boom")]
fn panics_under_libtest() {
    panic!("boom");
}

mod inner {
    use sandbox::isolated;

    #[isolated(net = "none")]
    #[ignore = "runs in a sandbox"]
    fn nested() {}
}

#[test]
fn registered_under_libtest_names() {
    let mut names: Vec<String> = inventory::iter::<TestCase>.into_iter().map(TestCase::test_name).collect();
    names.sort();
    assert_eq!(names, ["inner::nested", "panics_under_libtest", "sandboxed_under_libtest"]);
}
