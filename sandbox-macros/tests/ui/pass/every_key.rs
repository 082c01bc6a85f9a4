//! Every argument, every test attribute and a `Result`-returning body. Built without `--test`,
//! like a `harness = false` target: the `#[test]` functions are stripped, and `main` finds the
//! tests through the registry and checks what the macro recorded.

use sandbox::__private::{inventory, Expect, FsMode, HostWrites, Net, ShouldPanic, TestCase, TestSpec, Tolerance};
use sandbox::isolated;

#[derive(Debug)]
struct ParseError;

fn parse(input: &str) -> Result<u32, ParseError> {
    input.parse().map_err(|_| ParseError)
}

/// Uses every argument.
#[isolated(
    pids = 20,
    mem = "100M",
    cpu = 0.5,
    timeout = "5s",
    hostname = "box",
    tmpfs = ["/scratch", "/data:1M"],
    net = "none",
    fs = "overlay",
    writable = ["/srv/cache", "/var/lib/app"],
    fs_size = "32M",
    host_writes = "fail",
    privileged = true,
    expect = "oom",
    require = "cgroup",
    baseline_tolerance = "25%+4M",
)]
#[ignore = "needs a sandbox"]
#[should_panic(expected = "out of memory")]
#[allow(clippy::unit_arg)]
pub fn every_key() -> Result<(), ParseError> {
    assert_eq!(parse("7")?, 7);
    Ok(())
}

/// A body that fails by returning an error.
#[isolated(cpu = "2", tmpfs = "/tmp:64M", net = "host", fs = "ro")]
fn returns_an_error() -> Result<(), ParseError> {
    parse("seven")?;
    Ok(())
}

#[isolated]
#[should_panic]
fn bare() {}

fn case(name: &str) -> &'static TestCase {
    inventory::iter::<TestCase>
        .into_iter()
        .find(|case| case.name == name)
        .unwrap_or_else(|| panic!("{name} is not registered"))
}

fn main() {
    let every = case("every_key");
    assert_eq!(
        *every.spec,
        TestSpec {
            pids: Some(20),
            mem_bytes: Some(100 << 20),
            cpu_cores: Some(0.5),
            timeout_ms: Some(5_000),
            hostname: Some("box"),
            tmpfs: &[("/scratch", None), ("/data", Some(1 << 20))],
            net: Net::None,
            fs: FsMode::Overlay,
            writable: &["/srv/cache", "/var/lib/app"],
            fs_size: Some(32 << 20),
            host_writes: HostWrites::Fail,
            privileged: true,
            expect: Expect::Oom,
            require_cgroup: true,
            baseline_tolerance: Some(Tolerance { percent: 25, bytes: 4 << 20 }),
        }
    );
    assert_eq!(every.module_path, module_path!());
    assert!(every.ignore);
    assert_eq!(every.should_panic, ShouldPanic::WithMessage("out of memory"));
    assert_eq!((every.body)(), Ok(()));

    let error = case("returns_an_error");
    assert_eq!(error.spec.cpu_cores, Some(2.0));
    assert_eq!(error.spec.tmpfs, &[("/tmp", Some(64 << 20))]);
    assert_eq!(error.spec.net, Net::Host);
    assert_eq!(error.spec.fs, FsMode::ReadOnly);
    assert!(!error.ignore);
    assert_eq!(error.should_panic, ShouldPanic::No);
    assert_eq!((error.body)(), Err("ParseError".to_string()));

    let bare = case("bare");
    assert_eq!(*bare.spec, TestSpec::DEFAULT);
    assert_eq!(bare.should_panic, ShouldPanic::Yes);
    assert_eq!((bare.body)(), Ok(()));

    assert_eq!(inventory::iter::<TestCase>.into_iter().count(), 3);
}
