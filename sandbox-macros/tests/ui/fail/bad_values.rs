use sandbox::isolated;

#[isolated(cpu = 0, timeout = "5", hostname = "my box", tmpfs = ["/ok", "relative", "/a:1Q"])]
fn everything_wrong() {}

fn main() {}
