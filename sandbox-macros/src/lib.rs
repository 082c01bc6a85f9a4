//! Procedural macros of the `sandbox` crate; use them through `sandbox::isolated`.
//!
//! The `#[isolated]` attribute itself arrives with its own issue; this crate exists now so that the
//! workspace has its final shape.
