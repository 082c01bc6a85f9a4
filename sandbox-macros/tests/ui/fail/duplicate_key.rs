use sandbox::isolated;

#[isolated(pids = 20, mem = "1G", pids = 30)]
fn twice() {}

fn main() {}
