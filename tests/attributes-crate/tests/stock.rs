//! The tests of `common/cases.rs` under the stock harness (cargo test, nextest).
include!("common/cases.rs");
