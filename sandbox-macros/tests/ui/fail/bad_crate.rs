use sandbox::isolated;

#[isolated(crate = sandbox)]
fn not_a_string() {}

#[isolated(crate = "not a path")]
fn not_a_path() {}

#[isolated(crate = "no_such_crate")]
fn no_such_crate() {}

fn main() {}
