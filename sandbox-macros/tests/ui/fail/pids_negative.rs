use sandbox::isolated;

#[isolated(pids = -1)]
fn negative() {}

fn main() {}
