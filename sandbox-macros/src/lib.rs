//! Procedural macros of the `sandbox` crate; use them through `sandbox::isolated`.

use proc_macro::TokenStream;

/// Placeholder until the attribute lands: passes the item through unchanged.
#[proc_macro_attribute]
pub fn isolated(_args: TokenStream, item: TokenStream) -> TokenStream {
    item
}
