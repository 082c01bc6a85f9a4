use sandbox::isolated;

#[isolated(pids = 20)]
fn takes_input(input: &str, limit: usize) {
    let _ = (input, limit);
}

fn main() {}
