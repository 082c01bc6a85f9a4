use sandbox::isolated;

#[isolated(mem = "100Q")]
fn unknown_unit() {}

#[isolated(mem = 100)]
fn not_a_string() {}

fn main() {}
