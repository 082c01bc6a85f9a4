//! Fixtures of `tests/isolated.rs` and `tests/regression.rs` under sandbox's runner (`harness =
//! false`): tests that must fail, a probe that prints what a test body sees, and probes of the
//! baselines and the memory budget. Not run by `cargo test` (`test = false`).

use sandbox::isolated;

/// The runner pins each fork server to one CPU (fewer cross-CPU wake-ups per test); a test body
/// must still get every CPU the runner may use. Prints the body's CPU list, which
/// `tests/isolated.rs` compares with its own.
#[isolated]
fn probe_body_cpus() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let cpus = status.lines().find_map(|l| l.strip_prefix("Cpus_allowed_list:")).unwrap().trim();
    println!("body cpus: {cpus}");
}

#[isolated]
fn fixture_panics() {
    panic!("runner fixture boom");
}

#[isolated(mem = "64M")]
fn fixture_oom_without_expect() {
    let mut blocks = Vec::new();
    loop {
        blocks.push(vec![1u8; 1 << 20]);
    }
}

/// Hangs until the runner is killed (`tests/isolated.rs` kills it).
#[isolated]
fn runner_hangs_until_killed() {
    loop {
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}

/// Writes into the package directory (its working directory) through the overlay and reads
/// it back: passes, and the runner lists the change, which the host never sees.
#[isolated(fs = "overlay")]
fn overlay_writes_are_listed() {
    std::fs::write("written-by-an-overlay-test", "hi").unwrap();
    assert_eq!(std::fs::read_to_string("written-by-an-overlay-test").unwrap(), "hi");
}

/// The same write under `host_writes = "fail"`: the test fails, naming the path.
#[isolated(fs = "overlay", host_writes = "fail")]
fn pollutes_under_host_writes_fail() {
    std::fs::write("polluted-by-a-test", "x").unwrap();
}

#[isolated]
#[ignore = "proves that the runner honours #[ignore]: never run"]
fn ignored_by_attribute() {
    panic!("an ignored test ran under the runner");
}

/// What the baseline probes use: `SANDBOX_PROBE_ALLOCATE_MIB` MiB allocated and touched
/// (default 4), and `SANDBOX_PROBE_CHILDREN` children alive at once (default 0).
fn use_what_the_environment_says() {
    let number = |name: &str, default: usize| std::env::var(name).map_or(default, |v| v.parse().unwrap());
    let memory = vec![1u8; number("SANDBOX_PROBE_ALLOCATE_MIB", 4) << 20];
    let mut children: Vec<_> = (0..number("SANDBOX_PROBE_CHILDREN", 0))
        .map(|_| std::process::Command::new("sleep").arg("1").spawn().unwrap())
        .collect();
    for child in &mut children {
        child.wait().unwrap();
    }
    std::hint::black_box(memory);
}

/// `tests/regression.rs` saves a baseline of these, then grows what they use.
#[isolated(mem = "256M")]
fn baseline_probe_allocates() {
    use_what_the_environment_says();
}

#[isolated(mem = "256M", baseline_tolerance = "5000%")]
fn baseline_probe_tolerates_growth() {
    use_what_the_environment_says();
}

/// Marks itself running in the directory `SANDBOX_PROBE_DIR` for 400 ms, and writes how many
/// probes were running when it started (itself included) to `seen-NAME` there.
fn count_the_running(name: &str) {
    let dir = std::path::PathBuf::from(std::env::var_os("SANDBOX_PROBE_DIR").expect("SANDBOX_PROBE_DIR names a directory"));
    let marker = dir.join(format!("running-{name}"));
    std::fs::write(&marker, b"").unwrap();
    let running = std::fs::read_dir(&dir).unwrap().flatten().filter(|e| e.file_name().to_string_lossy().starts_with("running-")).count();
    std::fs::write(dir.join(format!("seen-{name}")), running.to_string()).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(400));
    std::fs::remove_file(marker).unwrap();
}

/// Six tests of 100 MiB and one of 400 MiB: `tests/regression.rs` runs them under memory
/// budgets.
#[isolated(mem = "100M")]
fn budget_probe_1() {
    count_the_running("1");
}

#[isolated(mem = "100M")]
fn budget_probe_2() {
    count_the_running("2");
}

#[isolated(mem = "100M")]
fn budget_probe_3() {
    count_the_running("3");
}

#[isolated(mem = "100M")]
fn budget_probe_4() {
    count_the_running("4");
}

#[isolated(mem = "100M")]
fn budget_probe_5() {
    count_the_running("5");
}

#[isolated(mem = "100M")]
fn budget_probe_6() {
    count_the_running("6");
}

#[isolated(mem = "400M")]
fn budget_probe_large() {
    count_the_running("large");
}

sandbox::main!();

/// The path of this process's cgroup in the hierarchy with controller `controller` (v1), or
/// in the unified one; and where that hierarchy is mounted.
fn own_cgroup_dir(controller: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    let v1 = text.lines().find_map(|line| {
        let (_, rest) = line.split_once(':')?;
        let (controllers, path) = rest.split_once(':')?;
        controllers.split(',').any(|c| c == controller).then(|| format!("/sys/fs/cgroup/{controller}{path}"))
    });
    let v2 = || text.lines().find_map(|line| line.strip_prefix("0::")).map(|path| format!("/sys/fs/cgroup{path}"));
    std::path::PathBuf::from(v1.or_else(v2).unwrap())
}

/// Raises its own pids limit with the host's root: the test fails as not contained.
#[isolated(pids = 20, privileged = true)]
fn containment_1_raises_its_pids_limit() {
    std::fs::write(own_cgroup_dir("pids").join("pids.max"), "1000").unwrap();
}

/// Runs after the one above in the same fork server: its pids limit is its own, not what the
/// test before it wrote into a cgroup the runner might reuse.
#[isolated(pids = 20, privileged = true)]
fn containment_2_has_its_own_pids_limit() {
    assert_eq!(std::fs::read_to_string(own_cgroup_dir("pids").join("pids.max")).unwrap().trim(), "20");
}

/// The escape with the host's root: one write to another cgroup's `cgroup.procs` (the
/// one `tests/containment.rs` names in `SANDBOX_TEST_ESCAPE_CGROUP`), then children beyond the
/// limit; the test fails as not contained, naming them.
#[isolated(pids = 20, timeout = "20s", privileged = true)]
fn containment_3_escapes_then_forks() {
    let escape = std::env::var("SANDBOX_TEST_ESCAPE_CGROUP").expect("run by tests/containment.rs, which names the cgroup");
    std::fs::write(format!("{escape}/cgroup.procs"), "0").unwrap();
    let children: Vec<_> = (0..30).map(|_| std::process::Command::new("sleep").arg("30").spawn().unwrap()).collect();
    std::mem::forget(children);
}

/// Contained (the default as root): the cgroup outside is not there to write, and the pids
/// limit the test sees and raises is its delegated cgroup's own, below the run's.
#[isolated(pids = 20, timeout = "20s")]
fn containment_4_cannot_leave_or_raise_its_limit() {
    let escape = std::env::var("SANDBOX_TEST_ESCAPE_CGROUP").expect("run by tests/containment.rs, which names the cgroup");
    let moved = std::fs::write(format!("{escape}/cgroup.procs"), "0");
    assert_eq!(moved.map_err(|e| e.kind()), Err(std::io::ErrorKind::NotFound));
    // Where cgroup2 is mounted with nsdelegate the kernel refuses it (EPERM); elsewhere it
    // changes the delegated copy only.
    let _ = std::fs::write(own_cgroup_dir("pids").join("pids.max"), "1000");
    let mut children = Vec::new();
    for _ in 0..30 {
        match std::process::Command::new("sleep").arg("30").spawn() {
            Ok(child) => children.push(child),
            Err(_) => break,
        }
    }
    assert!(children.len() < 20, "{} children under a limit of 20", children.len());
    std::mem::forget(children);
}

/// Contained in a fork server: every hierarchy the test mounts itself (each one
/// `/proc/self/cgroup` lists) is rooted at a cgroup of its own run or its server's, not the
/// machine's: no `release_agent`, no `sandbox` runs directory of the host.
#[isolated(timeout = "20s")]
fn containment_5_mounts_every_hierarchy() {
    let listed = std::fs::read_to_string("/proc/self/cgroup").unwrap();
    for (i, line) in listed.lines().enumerate() {
        let controllers = line.splitn(3, ':').nth(1).unwrap();
        let dir = format!("/tmp/hierarchy-{i}");
        std::fs::create_dir(&dir).unwrap();
        let (fstype, options) = if controllers.is_empty() { ("cgroup2", None) } else { ("cgroup", Some(controllers)) };
        nix::mount::mount(Some("none"), dir.as_str(), Some(fstype), nix::mount::MsFlags::empty(), options)
            .unwrap_or_else(|e| panic!("mounting {line}: {e}"));
        for seen in ["release_agent", "sandbox"] {
            assert!(!std::path::Path::new(&dir).join(seen).exists(), "{line}: {seen} is there");
        }
    }
}

/// Contained in a fork server: the test body is root of a user namespace of its own (the
/// machine's initial one has a fixed inode number), and binds privileged ports of the host's
/// network all the same, from its main thread and from another (the init binds them for it).
#[isolated(timeout = "20s")]
fn containment_6_binds_privileged_ports_in_its_own_user_namespace() {
    use std::os::unix::fs::MetadataExt;
    const INITIAL_USER_NAMESPACE_INODE: u64 = 0xEFFF_FFFD;
    assert_ne!(std::fs::metadata("/proc/self/ns/user").unwrap().ino(), INITIAL_USER_NAMESPACE_INODE);
    let bind_one = || (600..1000).find_map(|port| std::net::TcpListener::bind(("127.0.0.1", port)).ok()).expect("a free privileged port");
    let listener = bind_one();
    let from_a_thread = std::thread::spawn(bind_one).join().unwrap();
    for bound in [&listener, &from_a_thread] {
        assert!(bound.local_addr().unwrap().port() < 1024, "{bound:?}");
    }
}
