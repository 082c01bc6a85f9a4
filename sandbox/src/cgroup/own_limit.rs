//! The memory this process may use: the tightest memory limit on its own cgroup and the
//! cgroups above it (a CI job's limit, a systemd slice's `MemoryMax`), where there is one.

use std::path::Path;

use super::{proc_cgroup_lines, tightest_along, Layout};

/// The tightest memory limit on this process's cgroup and its ancestors (v2 `memory.max`, v1
/// `memory.limit_in_bytes` of the memory hierarchy); `None` without a limit or a way to read it.
pub(crate) fn own_memory_limit() -> Option<u64> {
    let own = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let (root, file, path) = match Layout::current().ok()? {
        Layout::Unified { mount_point } => {
            (mount_point.as_path(), "memory.max", proc_cgroup_lines(&own).find(|line| line.is_v2())?.path)
        }
        layout => {
            let hierarchy = layout.v1_hierarchy("memory")?;
            let line = proc_cgroup_lines(&own).find(|line| line.controllers.split(',').any(|c| c == "memory"))?;
            (hierarchy.mount_point.as_path(), "memory.limit_in_bytes", line.path)
        }
    };
    tightest_limit(root, path, file)
}

/// The smallest number in `file` of cgroup `path` below `root` and of every cgroup above it
/// (`max`, and v1's near-`u64::MAX` "no limit", are no limits).
fn tightest_limit(root: &Path, path: &str, file: &str) -> Option<u64> {
    // A path outside the hierarchy's root (another cgroup namespace's view) has nothing to read.
    if path.split('/').any(|part| part == "..") {
        return None;
    }
    let dir = root.join(path.trim_start_matches('/'));
    tightest_along(&dir, root, file, |text| text.parse::<u64>().ok().filter(|limit| *limit < 1 << 62))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tightest_limit_on_the_way_up_counts() {
        let root = tempfile::tempdir().unwrap();
        let job = root.path().join("ci/job-7");
        std::fs::create_dir_all(job.join("step")).unwrap();
        std::fs::write(root.path().join("memory.max"), "max\n").unwrap();
        std::fs::write(root.path().join("ci/memory.max"), "2147483648\n").unwrap();
        std::fs::write(job.join("memory.max"), "4294967296\n").unwrap();
        std::fs::write(job.join("step/memory.max"), "max\n").unwrap();
        assert_eq!(tightest_limit(root.path(), "/ci/job-7/step", "memory.max"), Some(2 << 30));
        assert_eq!(tightest_limit(root.path(), "/", "memory.max"), None);
        // v1's "no limit" is a number near 2^63.
        std::fs::write(root.path().join("memory.limit_in_bytes"), "9223372036854771712\n").unwrap();
        assert_eq!(tightest_limit(root.path(), "/", "memory.limit_in_bytes"), None);
        assert_eq!(tightest_limit(root.path(), "/../elsewhere", "memory.max"), None);
    }
}
