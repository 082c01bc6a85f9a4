use sandbox::isolated;

#[isolated(expect = "oom")]
fn oom_without_mem() {}

#[isolated(mem = "1G", expect = "pids_limit")]
fn pids_limit_without_pids() {}

#[isolated(pids = 10, expect = "timeout")]
fn timeout_without_timeout() {}

fn main() {}
