//! This process's cgroup in the unified hierarchy, as a directory: where its v2 runs go by
//! default, and where a systemd host's scope for them starts from. Both the v2 runs and the
//! systemd scope read it, so it lives below both.

use std::fs;
use std::path::{Path, PathBuf};

use super::{io_err, proc_cgroup_lines, CgroupError};

/// The cgroup of this process, as a directory under `mount_point` (from `/proc/self/cgroup`).
pub(super) fn own_cgroup_dir(mount_point: &Path) -> Result<PathBuf, CgroupError> {
    let path = Path::new("/proc/self/cgroup");
    let text = fs::read_to_string(path).map_err(io_err("reading", path))?;
    cgroup_dir_in(mount_point, &text).ok_or_else(|| CgroupError::Parse { path: path.into(), text })
}

/// The v2 cgroup (the `0::` line) of a `/proc/PID/cgroup` text, as a directory under `mount_point`.
fn cgroup_dir_in(mount_point: &Path, proc_pid_cgroup: &str) -> Option<PathBuf> {
    let line = proc_cgroup_lines(proc_pid_cgroup).find(|line| line.is_v2())?;
    Some(mount_point.join(line.path.trim_start_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_cgroup_is_the_v2_line_under_the_mount() {
        let text = "12:pids:/user.slice\n1:name=systemd:/user.slice/session-2.scope\n0::/user.slice/session-2.scope\n";
        assert_eq!(
            cgroup_dir_in(Path::new("/sys/fs/cgroup/unified"), text),
            Some(PathBuf::from("/sys/fs/cgroup/unified/user.slice/session-2.scope"))
        );
        assert_eq!(cgroup_dir_in(Path::new("/sys/fs/cgroup"), "0::/\n"), Some(PathBuf::from("/sys/fs/cgroup")));
        assert_eq!(cgroup_dir_in(Path::new("/sys/fs/cgroup"), "12:pids:/x\n"), None, "no v2 line");
    }
}
