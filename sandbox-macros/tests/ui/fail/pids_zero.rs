use sandbox::isolated;

#[isolated(pids = 0)]
fn no_processes() {}

fn main() {}
