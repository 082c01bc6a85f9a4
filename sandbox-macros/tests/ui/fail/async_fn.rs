use sandbox::isolated;

#[isolated(timeout = "5s")]
async fn waits() {}

fn main() {}
