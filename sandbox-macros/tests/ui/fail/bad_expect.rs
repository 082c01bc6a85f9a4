use sandbox::isolated;

#[isolated(mem = "10M", expect = "boom")]
fn unknown_expectation() {}

fn main() {}
