//! What every test of this crate checks first: that its body runs inside a sandbox of its own.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::time::Duration;

/// Panics unless this process is PID 2 of a sandbox (its init is PID 1) and lives in a run's
/// own cgroup: as root, the root of a cgroup namespace of its own (the run is contained: its
/// cgroup paths read `/`); otherwise one whose last path component is a run's name,
/// `<ns>-<pid>-<start>-<n>`.
pub fn assert_isolated() {
    assert_eq!(std::process::id(), 2, "the body is not the command of a sandbox (PID 2)");
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").expect("reading /proc/self/cgroup");
    // The pids controller's line on v1, the unified one on v2.
    let line = cgroups
        .lines()
        .find(|line| line.split(':').nth(1).is_some_and(|controllers| controllers.split(',').any(|c| c == "pids")))
        .or_else(|| cgroups.lines().find(|line| line.starts_with("0::")))
        .unwrap_or_else(|| panic!("no pids or unified cgroup in {cgroups}"));
    let path = line.splitn(3, ':').nth(2).unwrap_or_default();
    let status = std::fs::read_to_string("/proc/self/status").expect("reading /proc/self/status");
    let euid = status.lines().find_map(|l| l.strip_prefix("Uid:")).and_then(|ids| ids.split_whitespace().nth(1));
    if euid == Some("0") {
        // The initial cgroup namespace has this fixed inode number (PROC_CGROUP_INIT_INO).
        let namespace = std::fs::read_link("/proc/self/ns/cgroup").expect("reading /proc/self/ns/cgroup");
        assert_ne!(namespace.to_string_lossy(), "cgroup:[4026531835]", "not in a cgroup namespace of its own");
        assert_eq!(path, "/", "not at the root of its cgroup namespace: {line}");
        return;
    }
    let leaf = path.rsplit('/').next().unwrap_or_default();
    let parts: Vec<&str> = leaf.split('-').collect();
    assert!(
        parts.len() == 4 && parts.iter().all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit())),
        "not in a run's own cgroup: {line}"
    );
}

/// Where serial tests mark that one of them is running: in the build's scratch directory,
/// shared with the host (a sandbox's `/tmp` is its own).
fn marker() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target").join("serial-test-running")
}

/// A serial test's body: fails if another serial test is running (its marker exists), else
/// holds the marker for a while, so that an overlap would be seen.
pub fn hold_the_serial_marker(name: &str) {
    assert_isolated();
    let path = marker();
    let created = OpenOptions::new().write(true).create_new(true).open(&path);
    let _file: File = created.unwrap_or_else(|err| {
        let holder = std::fs::read_to_string(&path).unwrap_or_default();
        panic!("{name} overlapped with {holder}, which still holds {}: {err}", path.display())
    });
    std::fs::write(&path, name).unwrap();
    /// Removes the marker however the body ends.
    struct Remove(PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _remove = Remove(path);
    std::thread::sleep(Duration::from_millis(300));
}
