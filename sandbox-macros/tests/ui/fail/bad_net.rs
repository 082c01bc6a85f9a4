use sandbox::isolated;

#[isolated(net = "wifi")]
fn unknown_network() {}

fn main() {}
