//! The `fs` line of `sandbox check`: which file-system modes work here. Found the only sure
//! way, by running `true` in a sandbox of each mode ([`crate::runner::probe_fs_modes`]): an
//! overlay's refusal depends on the kernel, the mounts, a user namespace and the file systems
//! below, which no single probe covers. The CLI runs the probes and this renders them.

use super::{finding, Finding, Status};

/// One finding: the modes that work, and for one that does not, why. `probes`: each mode's
/// name and its run's result.
pub fn fs_finding(probes: &[(&str, Result<(), String>)], rootless: bool) -> Finding {
    let mut works = vec!["host"];
    let mut problems = Vec::new();
    for (name, result) in probes {
        match result {
            Ok(()) => works.push(name),
            Err(why) => problems.push(format!("{name} does not work here: {why}")),
        }
    }
    let mut detail = format!("{} work", works.join(", "));
    if rootless && works.contains(&"overlay") {
        detail.push_str(
            "; in a user namespace an overlay cannot copy up what belongs to ids outside it: writing into a \
             directory of root's (/etc, /var/tmp) fails with EOVERFLOW, your own files ($HOME, a project) work, \
             renaming a host directory fails with EXDEV (mv copies instead), files directly in a directory that \
             holds mount points (/) are read-only, and before Linux 6.6 removing a host directory fails with \
             EIO; as root all of it works",
        );
    }
    if !problems.is_empty() {
        detail.push_str(&format!("; {}", problems.join("; ")));
    }
    finding(if problems.is_empty() { Status::Ok } else { Status::Warn }, "fs", detail)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_line_names_what_works_and_why_the_rest_does_not() {
        let ok = fs_finding(&[("ro", Ok(())), ("overlay", Ok(()))], false);
        assert_eq!((ok.status, ok.detail.as_str()), (Status::Ok, "host, ro, overlay work"));
        let refused = fs_finding(&[("ro", Ok(())), ("overlay", Err("mounting an overlay of / on /tmp/root: EINVAL".into()))], false);
        assert_eq!(refused.status, Status::Warn);
        assert_eq!(refused.detail, "host, ro work; overlay does not work here: mounting an overlay of / on /tmp/root: EINVAL");
        let rootless = fs_finding(&[("ro", Ok(())), ("overlay", Ok(()))], true);
        assert!(rootless.detail.contains("EOVERFLOW") && rootless.detail.contains("EXDEV"), "{}", rootless.detail);
    }
}
