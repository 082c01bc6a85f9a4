use sandbox::isolated;

#[isolated]
fn returns_a_number() -> u32 {
    7
}

fn main() {}
