use sandbox::isolated;

#[isolated(pids = 20)]
fn counted_under_the_runner() {
    assert_eq!(coverage_crate::called_by_the_runner_body(3), 9);
}

sandbox::main!();
