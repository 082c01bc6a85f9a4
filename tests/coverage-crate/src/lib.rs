//! Functions each called by one kind of test only, so that the coverage report says which
//! runner's bodies were counted.

/// Called only by the stock harness's isolated test.
pub fn called_by_the_stock_harness_body(n: u32) -> u32 {
    if n > 1 {
        n * 2
    } else {
        n
    }
}

/// Called only by the runner's isolated test.
pub fn called_by_the_runner_body(n: u32) -> u32 {
    if n > 1 {
        n * 3
    } else {
        n
    }
}

/// Called by no test: its count must stay 0, or the report counts what did not run.
pub fn called_by_no_test(n: u32) -> u32 {
    if n > 1 {
        n * 5
    } else {
        n
    }
}
