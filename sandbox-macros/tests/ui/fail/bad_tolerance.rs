use sandbox::isolated;

#[isolated(mem = "64M", baseline_tolerance = "10")]
fn a_bare_number_is_ambiguous() {}

#[isolated(baseline_tolerance = 10)]
fn not_a_string() {}

fn main() {}
