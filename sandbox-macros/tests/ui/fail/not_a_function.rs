use sandbox::isolated;

#[isolated(pids = 20)]
struct Fixture {
    data: Vec<u8>,
}

#[isolated]
const LIMIT: u64 = 20;

fn main() {}
