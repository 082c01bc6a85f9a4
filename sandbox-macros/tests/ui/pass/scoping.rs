//! The user's function is moved into a generated body function: it must still see the items of
//! its module, `super::` and `crate::` paths must mean the same, and odd names and `#[cfg]` must
//! work.

use sandbox::isolated;

const ANSWER: u32 = 42;

mod nested {
    use sandbox::isolated;

    fn helper() -> u32 {
        super::ANSWER
    }

    #[isolated(pids = 4)]
    pub(crate) fn uses_super_and_private_items() {
        assert_eq!(helper(), crate::ANSWER);
        assert_eq!(self::helper(), 42);
    }

    /// Same name in another module: no clash.
    #[isolated]
    fn same_name() {}
}

#[isolated]
fn same_name() {}

#[isolated]
fn r#type() {}

#[isolated]
#[cfg(any())]
fn compiled_out() {
    this_does_not_exist();
}

#[isolated(pids = 4)]
#[cfg_attr(all(), allow(unused_variables))]
#[deny(unused_mut)]
fn with_lint_attributes() {
    let unused = 1;
}

fn main() {
    let cases: Vec<_> = sandbox::__private::inventory::iter::<sandbox::__private::TestCase>
        .into_iter()
        .map(|case| sandbox::__private::test_name(case.module_path, case.name))
        .collect();
    for name in [
        "nested::uses_super_and_private_items",
        "nested::same_name",
        "same_name",
        "type",
        "with_lint_attributes",
    ] {
        assert!(cases.contains(&name.to_string()), "{name} missing from {cases:?}");
    }
    assert_eq!(cases.len(), 5, "{cases:?}");
    for case in sandbox::__private::inventory::iter::<sandbox::__private::TestCase> {
        assert_eq!((case.body)(), Ok(()));
    }
}
