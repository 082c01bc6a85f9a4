use sandbox::isolated;

#[isolated(pids = 2.5)]
fn fraction() {}

#[isolated(pids = "20")]
fn string() {}

fn main() {}
