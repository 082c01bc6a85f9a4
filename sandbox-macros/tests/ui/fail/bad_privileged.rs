use sandbox::isolated;

#[isolated(privileged = "true")]
fn quoted() {}

#[isolated(privileged = 1)]
fn a_number() {}

#[isolated(privileged = true, pids = 20, privileged = false)]
fn twice() {}

fn main() {}
