//! `crate = "..."` names the library where the dependency lookup cannot see it: here through a
//! module that re-exports it under another name.

mod reexports {
    pub use sandbox as testing_sandbox;
}

#[sandbox::isolated(pids = 4, crate = "crate::reexports::testing_sandbox")]
fn runs_through_a_reexport() {}

#[sandbox::isolated(crate = "::sandbox")]
fn names_the_library_itself() {}

fn main() {}
