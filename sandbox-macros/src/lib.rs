//! Procedural macros of the `sandbox` crate; use them through `sandbox::isolated`.
//!
//! [`macro@isolated`] is the only one. Its arguments are parsed in `args` and the code is generated in
//! `expand`; this file is the entry point only.

use proc_macro::TokenStream;

mod args;
mod compose;
mod expand;

/// Makes a function a test that runs in its own sandbox: fresh PID, mount and UTS namespaces, a
/// cgroup with the given limits, and a private `/tmp`.
///
/// ```
/// use sandbox::isolated;
///
/// /// A fork bomb stops at the pids limit instead of taking the machine down.
/// #[isolated(pids = 20, expect = "pids_limit")]
/// fn fork_bomb_is_contained() {
///     // ... fork until it fails ...
/// }
///
/// #[isolated(mem = "100M", timeout = "5s", net = "none")]
/// fn parser_survives_hostile_input() -> Result<(), String> {
///     Ok(())
/// }
/// # fn main() {}
/// ```
///
/// All arguments are optional, and checked at compile time:
///
/// | argument | value | meaning |
/// |---|---|---|
/// | `pids = 20` | integer ≥ 1 | at most this many processes and threads |
/// | `mem = "100M"` | size: bytes, or `K`, `M`, `G`, `T` (powers of 1024) | memory limit |
/// | `cpu = 0.5` | number of cores from 0.001 to 4096 (also `"0.5"`) | CPU bandwidth limit |
/// | `timeout = "5s"` | duration: `ms`, `s`, `m` or `h` | the test is killed after this long |
/// | `hostname = "box"` | 1 to 64 characters of `A-Za-z0-9.-` | the sandbox's host name |
/// | `tmpfs = "/scratch:64M"` | `"PATH"` or `"PATH:SIZE"`, or a list `["/a", "/b:1M"]` | extra tmpfs mounts (`"/tmp:SIZE"` resizes the default `/tmp`) |
/// | `net = "none"` | `"none"` (only loopback) or `"host"` (default) | network |
/// | `fs = "ro"` | `"ro"`, `"overlay"` or `"host"` (default) | `"ro"`: every host mount read-only but `/proc`, `/sys`, `/dev`, the tmpfs mounts and `writable`; `"overlay"`: the host's mounts behind a copy-on-write layer, left unchanged, the test's changes listed |
/// | `writable = "/srv/cache"` | an absolute path, or a list | with `fs = "ro"` or `"overlay"`: paths written straight to the host |
/// | `fs_size = "64M"` | size, as for `mem` | with `fs = "overlay"`: the most the layer holds (a write beyond fails with `ENOSPC`); default: bounded by `mem` |
/// | `host_writes = "fail"` | `"fail"` or `"discard"` (default) | with `fs = "overlay"`: `"fail"` fails the test if it changed the host's files |
/// | `privileged = true` | `true` or `false` (default) | as root: the test gets the host's root, e.g. to load a module or write a sysctl; by default it runs contained, in a cgroup namespace of its own, and cannot leave its cgroup or raise its limits; nothing changes in a rootless run |
/// | `expect = "oom"` | `"oom"`, `"pids_limit"` or `"timeout"` | the test passes only if that happened; needs `mem`, `pids` or `timeout` respectively |
///
/// The function takes no arguments and returns `()` or `Result<(), E>` with `E: Debug`, like a
/// `#[test]` function; it must not be `const`, `unsafe`, `extern` or generic. The attribute makes
/// the function a test, both for the stock harness and for the `harness = false` runner of
/// `sandbox`; a `#[test]` below it is taken over. `#[ignore]` and `#[should_panic]` work as usual.
///
/// It composes with the test attributes a suite already uses. Those below it that generate tests
/// or wrap the body (`#[tokio::test]`, `#[rstest]`, `#[test_case]`, `#[test_log::test]`,
/// `#[traced_test]`, `#[serial]`) expand first, and each test they make runs in a sandbox of its
/// own, with the runtime built inside it; `#[serial]`'s lock is taken where the test is
/// dispatched. An `async fn` without a runtime's attribute runs on a small built-in executor.
/// `#[test_case]` goes below `#[isolated]`: above it, its `#[test]` would register each case
/// twice, which the second run reports.
///
/// The attributes written below `#[isolated]` are sorted: docs, `#[ignore]` and `#[should_panic]`
/// go on the generated test; lint levels (`#[allow]`, `#[expect]`, ...) on the body; `#[cfg]` on
/// everything generated; any other attribute on both.
#[proc_macro_attribute]
pub fn isolated(args: TokenStream, item: TokenStream) -> TokenStream {
    expand::isolated(args.into(), item.into()).into()
}
