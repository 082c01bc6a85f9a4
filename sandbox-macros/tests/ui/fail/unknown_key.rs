use sandbox::isolated;

#[isolated(pids = 20, foo = 1)]
fn unknown() {}

#[isolated(memory = "100M")]
fn misspelled() {}

fn main() {}
