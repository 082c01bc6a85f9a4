//! Compile-time behaviour of `#[isolated]`: every misuse is an error at the offending token
//! (tests/ui/fail, with the expected messages in the `.stderr` files), and correct uses compile
//! without `--test`, like a `harness = false` target (tests/ui/pass).
//!
//! After changing a message, regenerate the `.stderr` files with
//! `TRYBUILD=overwrite cargo test -p test-sandbox-macros --test ui` and read the diff.

#[test]
fn ui() {
    let cases = trybuild::TestCases::new();
    cases.compile_fail("tests/ui/fail/*.rs");
    cases.pass("tests/ui/pass/*.rs");
}
