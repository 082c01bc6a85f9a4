//! `sandbox check`: what this machine lets a sandbox do, one line each, with the fix for what
//! it does not.

use std::fmt;
use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use nix::unistd::{access, AccessFlags, Uid};

use crate::cgroup::systemd::{ensure_own_scope, ScopePlacement};
use crate::cgroup::{
    v1_default_runs_dir, v2_base_dir, v2_foreign_processes, v2_holds_foreign_processes, v2_resolve_parent, Layout,
};
use crate::sys;

mod diagnose;
mod fs;

pub use fs::fs_finding;
use diagnose::{try_user_namespace, Facts, RUN_NAMESPACES};
pub(crate) use diagnose::{contained_user_namespace_hint, namespace_refusal_hint, user_namespace_mount_hint};

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Works.
    Ok,
    /// Works partly, or is optional.
    Warn,
    /// `sandbox run` cannot work until this is fixed.
    Fail,
}

/// One line of `sandbox check`.
#[derive(Debug, Clone)]
pub struct Finding {
    /// Ok, warn or fail.
    pub status: Status,
    /// What was checked.
    pub topic: String,
    /// What was found, and for failures the fix.
    pub detail: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let tag = match self.status {
            Status::Ok => "ok  ",
            Status::Warn => "warn",
            Status::Fail => "FAIL",
        };
        write!(f, "{tag}  {}: {}", self.topic, self.detail)
    }
}

fn finding(status: Status, topic: &str, detail: impl Into<String>) -> Finding {
    Finding { status, topic: topic.into(), detail: detail.into() }
}

fn writable(path: &Path) -> bool {
    access(path, AccessFlags::W_OK).is_ok()
}

/// The nearest existing ancestor of `path` (where `mkdir -p` would start).
fn existing_ancestor(path: &Path) -> PathBuf {
    path.ancestors().find(|p| p.exists()).unwrap_or(Path::new("/")).to_path_buf()
}

/// Runs every check. `cgroup_parent` is `--cgroup-parent`, if given; otherwise the runs'
/// default applies (`SANDBOX_CGROUP_PARENT`).
///
/// ```
/// use sandbox::check::{run_checks, Status};
///
/// let findings = run_checks(None);
/// for finding in &findings {
///     println!("{finding}");
/// }
/// let works = findings.iter().all(|finding| finding.status != Status::Fail);
/// # let _ = works;
/// ```
pub fn run_checks(cgroup_parent: Option<&Path>) -> Vec<Finding> {
    let inherited = crate::cgroup::parent_from_environment();
    let cgroup_parent = cgroup_parent.or(inherited.as_deref());
    let mut out = Vec::new();
    let uid = Uid::effective();
    let kernel = nix::sys::utsname::uname().map(|u| u.release().to_string_lossy().into_owned()).unwrap_or_default();
    out.push(finding(Status::Ok, "kernel", kernel));
    out.push(finding(
        if uid.is_root() { Status::Ok } else { Status::Warn },
        "user",
        if uid.is_root() {
            "root".to_string()
        } else {
            format!("uid {uid} (not root: namespaces come from a user namespace, limits from a delegated cgroup or rlimits)")
        },
    ));
    let run_flags = if uid.is_root() { RUN_NAMESPACES } else { RUN_NAMESPACES.union(CloneFlags::CLONE_NEWUSER) };
    let facts = Facts::gather(run_flags);
    out.extend(facts.blocker_findings());

    match Layout::detect() {
        Err(err) => out.push(finding(Status::Fail, "cgroup layout", err.to_string())),
        Ok(layout) => {
            out.push(finding(Status::Ok, "cgroup layout", layout.describe()));
            let mut cgroup = cgroup_findings(&layout, cgroup_parent);
            // Without root, a missing cgroup is not fatal: limits fall back to rlimits.
            if !uid.is_root() && cgroup.iter().any(|f| f.status == Status::Fail) {
                for f in cgroup.iter_mut().filter(|f| f.status == Status::Fail) {
                    f.status = Status::Warn;
                }
                cgroup.push(finding(
                    Status::Warn,
                    "limits",
                    format!(
                        "no usable cgroup for uid {uid}: --pids falls back to RLIMIT_NPROC, --mem to RLIMIT_AS, --cpu \
                         to nothing ({}); SANDBOX_REQUIRE=cgroup turns this into an error. To make them exact, \
                         delegate a cgroup (systemd-run --user -p Delegate=yes --shell, or chown one) and pass it \
                         with --cgroup-parent",
                        crate::outcome::RLIMIT_CAVEATS
                    ),
                ));
            }
            out.extend(cgroup);
        }
    }

    // The namespaces every run needs fail the check; the others only some runs ask for.
    for (flag, name) in [
        (CloneFlags::CLONE_NEWPID, "pid"),
        (CloneFlags::CLONE_NEWNS, "mount"),
        (CloneFlags::CLONE_NEWUTS, "uts"),
        (CloneFlags::CLONE_NEWIPC, "ipc"),
        (CloneFlags::CLONE_NEWNET, "net"),
        (CloneFlags::CLONE_NEWUSER, "user"),
        (CloneFlags::CLONE_NEWCGROUP, "cgroup"),
    ] {
        let required = RUN_NAMESPACES.contains(flag);
        let topic = format!("{name} namespace");
        // Without root, every namespace comes with a user namespace that owns it.
        let flags = if uid.is_root() { flag } else { flag | CloneFlags::CLONE_NEWUSER };
        match sys::try_clone_namespaces(flags) {
            Ok(()) => out.push(finding(Status::Ok, &topic, "can be created")),
            Err(errno) => {
                let facts = facts.probing(flags);
                let status = if required { Status::Fail } else { Status::Warn };
                out.push(finding(status, &topic, format!("cannot be created ({errno}): {}", facts.summary(errno))));
            }
        }
    }
    let facts = facts.probing(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS);
    out.push(facts.user_namespace_finding(&try_user_namespace()));
    out
}

fn cgroup_findings(layout: &Layout, cgroup_parent: Option<&Path>) -> Vec<Finding> {
    let mut out = Vec::new();
    match layout {
        Layout::Unified { mount_point } => {
            // On a systemd host a run first moves its launcher into a delegated scope: so does
            // this check, which then reports on that scope (and systemd removes it when the
            // check exits).
            if cgroup_parent.is_none() {
                let placement = ensure_own_scope(mount_point);
                let status = match &placement {
                    ScopePlacement::Failed(_) => Status::Warn,
                    ScopePlacement::Scope { missing, .. } if missing.iter().any(|c| c != "cpu") => Status::Fail,
                    ScopePlacement::Scope { missing, .. } if !missing.is_empty() => Status::Warn,
                    _ => Status::Ok,
                };
                out.push(finding(status, "systemd", placement.describe()));
            }
            let base = match cgroup_parent {
                Some(parent) => v2_resolve_parent(mount_point, parent),
                None => match v2_base_dir(mount_point) {
                    Ok(base) => base,
                    Err(err) => return vec![finding(Status::Fail, "cgroup placement", err.to_string())],
                },
            };
            let runs = if cgroup_parent.is_some() { base.clone() } else { base.join("sandbox") };
            let controllers = std::fs::read_to_string(base.join("cgroup.controllers")).unwrap_or_default();
            for controller in ["memory", "pids", "cpu"] {
                let present = controllers.split_whitespace().any(|c| c == controller);
                let status = match (present, controller) {
                    (true, _) => Status::Ok,
                    (false, "cpu") => Status::Warn,
                    (false, _) => Status::Fail,
                };
                let detail = if present {
                    format!("available in {}", base.display())
                } else {
                    format!(
                        "not available in {} (cgroup.controllers: '{}'): enable it in the parent's cgroup.subtree_control",
                        base.display(),
                        controllers.trim()
                    )
                };
                out.push(finding(status, &format!("{controller} controller (v2)"), detail));
            }
            let target = existing_ancestor(&runs);
            // The cgroup whose controllers a run would enable: its processes must be the
            // sandbox's to move (the root cgroup may keep its own).
            let enabled_in = if cgroup_parent.is_some() { target.clone() } else { base.clone() };
            let foreign = v2_foreign_processes(&enabled_in);
            if !foreign.is_empty() {
                out.push(finding(Status::Fail, "cgroup placement", v2_holds_foreign_processes(&enabled_in, &foreign).to_string()));
                return out;
            }
            let ok = writable(&target) && writable(&base.join("cgroup.subtree_control"));
            out.push(finding(
                if ok { Status::Ok } else { Status::Fail },
                "cgroup placement",
                if ok {
                    format!("runs go to {}/<run> (writable)", runs.display())
                } else {
                    format!(
                        "{} is not writable: run as root, or pass --cgroup-parent with a cgroup delegated to you \
                         (systemd-run --user -p Delegate=yes --shell)",
                        target.display()
                    )
                },
            ));
        }
        _ => {
            let relative = cgroup_parent.map(|p| p.strip_prefix("/").unwrap_or(p).to_path_buf());
            let proc_self_cgroup = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
            for (controller, required) in [("memory", true), ("pids", true), ("cpu", false)] {
                let topic = format!("{controller} controller (v1)");
                match layout.v1_hierarchy(controller) {
                    None => out.push(finding(
                        if required { Status::Fail } else { Status::Warn },
                        &topic,
                        format!("not mounted: mount -t cgroup -o {controller} none /sys/fs/cgroup/{controller}"),
                    )),
                    Some(h) => {
                        let dir = match &relative {
                            Some(parent) => h.mount_point.join(parent),
                            None => v1_default_runs_dir(h, &proc_self_cgroup),
                        };
                        let target = existing_ancestor(&dir);
                        if writable(&target) {
                            out.push(finding(Status::Ok, &topic, format!("runs go to {}/<run> (writable)", dir.display())));
                        } else {
                            out.push(finding(
                                if required { Status::Fail } else { Status::Warn },
                                &topic,
                                format!(
                                    "{} is not writable: run as root, or chown a cgroup to yourself and pass it \
                                     with --cgroup-parent",
                                    target.display()
                                ),
                            ));
                        }
                    }
                }
            }
        }
    }
    out
}
