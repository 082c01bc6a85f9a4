use sandbox::isolated;

mod async_std {
    pub use core::prelude::v1::test;
}

#[isolated]
#[async_std::test]
async fn runs_on_async_std() {}

fn main() {}
