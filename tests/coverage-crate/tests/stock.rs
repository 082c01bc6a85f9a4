use sandbox::isolated;

#[isolated(pids = 20)]
fn counted_under_the_stock_harness() {
    assert_eq!(coverage_crate::called_by_the_stock_harness_body(3), 6);
}
