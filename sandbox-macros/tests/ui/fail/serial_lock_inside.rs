use sandbox::isolated;

/// Stands in for serial_test's functions, as its `#[serial]` on an `async fn` calls them.
mod serial_test {
    pub async fn local_async_serial_core(_names: Vec<&str>, _path: Option<&str>, body: impl std::future::Future<Output = ()>) {
        body.await
    }
}

/// What `#[serial] #[tokio::test] async fn` becomes: the lock awaited inside the runtime's block.
#[isolated]
fn serial_above_the_runtime() {
    sandbox::__private::block_on(async {
        serial_test::local_async_serial_core(vec![""], None, async {}).await;
    })
}

fn main() {}
