use sandbox::isolated;

#[isolated]
fn generic<T: Default>() {}

#[isolated]
const fn constant() {}

#[isolated]
unsafe fn not_safe() {}

#[isolated]
extern "C" fn foreign() {}

fn main() {}
