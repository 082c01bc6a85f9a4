//! What every test of this crate checks first: that its body runs inside a sandbox of its own.

use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::time::Duration;

/// Panics unless this process is PID 2 of a sandbox (its init is PID 1) and lives in a run's
/// own cgroup (the last component of its cgroup path is a run's name, `<ns>-<pid>-<start>-<n>`).
pub fn assert_isolated() {
    assert_eq!(std::process::id(), 2, "the body is not the command of a sandbox (PID 2)");
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").expect("reading /proc/self/cgroup");
    // The pids controller's line on v1, the unified one on v2.
    let line = cgroups
        .lines()
        .find(|line| line.split(':').nth(1).is_some_and(|controllers| controllers.split(',').any(|c| c == "pids")))
        .or_else(|| cgroups.lines().find(|line| line.starts_with("0::")))
        .unwrap_or_else(|| panic!("no pids or unified cgroup in {cgroups}"));
    let leaf = line.rsplit('/').next().unwrap_or_default();
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
