//! The `fs` line of `sandbox check`: which file-system modes work here, found the only sure
//! way, by running `true` in a sandbox of each mode (an overlay's refusal depends on the kernel,
//! the mounts, a user namespace and the file systems below, which no single probe covers).

use super::{finding, Finding, Status};
use crate::config::{Config, FsMode};
use crate::runner::{Command, Sandbox};

/// One finding: the modes that work, and for one that does not, why and what to use instead.
pub(super) fn fs_finding(cgroup_parent: Option<&std::path::Path>, rootless: bool) -> Finding {
    let mut works = vec!["host"];
    let mut problems = Vec::new();
    for (mode, name) in [(FsMode::ReadOnly, "ro"), (FsMode::Overlay, "overlay")] {
        let config = Config { fs: mode, cgroup_parent: cgroup_parent.map(Into::into), ..Config::default() };
        let ran = Sandbox::new(config).and_then(|sandbox| sandbox.run(Command::new("true").current_dir("/")));
        match ran {
            Ok(outcome) if outcome.success() => works.push(name),
            Ok(outcome) => problems.push(format!("{name}: `true` did not succeed ({outcome})")),
            Err(err) => problems.push(format!("{name} does not work here: {err}")),
        }
    }
    let mut detail = format!("{} work", works.join(", "));
    if rootless && works.contains(&"overlay") {
        detail.push_str(
            "; in a user namespace an overlay cannot copy up what belongs to ids outside it: writing into a \
             directory of root's (/etc, /var/tmp) fails with EOVERFLOW, your own files ($HOME, a project) work, \
             renaming a host directory fails with EXDEV (mv copies instead), and files directly in a directory \
             that holds mount points (/) are read-only; as root all of it works",
        );
    }
    if !problems.is_empty() {
        detail.push_str(&format!("; {}", problems.join("; ")));
    }
    finding(if problems.is_empty() { Status::Ok } else { Status::Warn }, "fs", detail)
}
