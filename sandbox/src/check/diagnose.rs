//! Why namespaces cannot be created here: what `/proc/self/status`, the container's marks, the
//! user-namespace sysctls and a few probes say, turned into the one cause (and fix) a failed run
//! names and the lines of `sandbox check`.

use std::fmt;
use std::path::Path;

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Uid;

use super::{finding, Finding, Status};
use crate::sys;

/// The namespaces every run creates (with `CLONE_NEWUSER` too without root).
pub(super) const RUN_NAMESPACES: CloneFlags =
    CloneFlags::CLONE_NEWPID.union(CloneFlags::CLONE_NEWNS).union(CloneFlags::CLONE_NEWUTS);

/// `CAP_SYS_ADMIN`'s bit in the capability sets of `/proc/self/status`.
const CAP_SYS_ADMIN_BIT: u32 = 21;

/// What `/proc/self/status` says about seccomp and capabilities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ProcessStatus {
    /// `Seccomp:`: 0 none, 1 strict, 2 filter.
    seccomp_mode: u32,
    /// `Seccomp_filters:` (kernel 5.9 and later).
    seccomp_filters: Option<u32>,
    /// `CapEff:`, the effective capability set.
    effective_caps: Option<u64>,
}

impl ProcessStatus {
    fn parse(status: &str) -> ProcessStatus {
        let field = |name: &str| status.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(':')).map(str::trim);
        ProcessStatus {
            seccomp_mode: field("Seccomp").and_then(|v| v.parse().ok()).unwrap_or(0),
            seccomp_filters: field("Seccomp_filters").and_then(|v| v.parse().ok()),
            effective_caps: field("CapEff").and_then(|v| u64::from_str_radix(v, 16).ok()),
        }
    }

    fn has_seccomp_filter(&self) -> bool {
        self.seccomp_mode == 2
    }

    /// `None` when `CapEff:` could not be read.
    fn has_cap_sys_admin(&self) -> Option<bool> {
        self.effective_caps.map(|caps| caps & (1 << CAP_SYS_ADMIN_BIT) != 0)
    }

    fn describe_seccomp(&self) -> String {
        match self.seccomp_filters {
            Some(n) => format!("Seccomp: {}, Seccomp_filters: {n}", self.seccomp_mode),
            None => format!("Seccomp: {}", self.seccomp_mode),
        }
    }
}

/// The container this process runs in, and the mark that shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Container {
    /// `Docker`, `Podman`, `Kubernetes`, or the `container=` value of PID 1 (`lxc`, ...).
    runtime: String,
    /// The file or variable that shows it.
    evidence: String,
}

impl Container {
    /// The fix for a seccomp profile that refuses namespaces, as an option of this container.
    fn seccomp_fix(&self) -> String {
        match self.runtime.as_str() {
            "Kubernetes" => "set the pod's securityContext.seccompProfile.type to Unconfined (or privileged: true), \
                             or use a profile that allows clone and unshare with namespace flags"
                .into(),
            _ => format!(
                "start it with `{} --security-opt seccomp=unconfined` (or `--privileged`), or with a seccomp profile \
                 that allows clone and unshare with namespace flags",
                self.run_command()
            ),
        }
    }

    /// The fix for a missing `CAP_SYS_ADMIN`, as an option of this container.
    fn capability_fix(&self) -> String {
        match self.runtime.as_str() {
            "Kubernetes" => "add SYS_ADMIN to the pod's securityContext.capabilities.add (or privileged: true)".into(),
            _ => format!("start it with `{} --cap-add SYS_ADMIN` (or `--privileged`)", self.run_command()),
        }
    }

    fn run_command(&self) -> &'static str {
        if self.runtime.eq_ignore_ascii_case("podman") {
            "podman run"
        } else {
            "docker run"
        }
    }
}

impl fmt::Display for Container {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} container ({})", self.runtime, self.evidence)
    }
}

/// Finds the marks container runtimes leave below `root` (`/`, but for tests): Docker's
/// `/.dockerenv`, Podman's `/run/.containerenv`, the `container=` variable Podman, LXC and
/// systemd-nspawn give PID 1 (readable with enough privilege), or PID 1's cgroup path.
fn detect_container(root: &Path) -> Option<Container> {
    let found = |runtime: &str, evidence: String| Some(Container { runtime: runtime.into(), evidence });
    if root.join(".dockerenv").exists() {
        return found("Docker", "/.dockerenv".into());
    }
    if root.join("run/.containerenv").exists() {
        return found("Podman", "/run/.containerenv".into());
    }
    let environ = std::fs::read(root.join("proc/1/environ")).unwrap_or_default();
    if let Some(value) = environ.split(|&b| b == 0).filter_map(|v| v.strip_prefix(b"container=")).find(|v| !v.is_empty()) {
        let value = String::from_utf8_lossy(value);
        return found(&value, format!("container={value} in /proc/1/environ"));
    }
    let cgroup = std::fs::read_to_string(root.join("proc/1/cgroup")).unwrap_or_default();
    for line in crate::cgroup::proc_cgroup_lines(&cgroup) {
        let path = line.path;
        let runtime = [("kubepods", "Kubernetes"), ("libpod", "Podman"), ("docker", "Docker"), ("/lxc", "lxc")]
            .into_iter()
            .find_map(|(mark, runtime)| path.contains(mark).then_some(runtime));
        if let Some(runtime) = runtime {
            return found(runtime, format!("PID 1's cgroup {path}"));
        }
    }
    None
}

/// The sysctls that restrict unprivileged user namespaces; `None` where the kernel has none.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct UserNamespaceSysctls {
    /// Debian's `kernel.unprivileged_userns_clone`.
    unprivileged_userns_clone: Option<String>,
    /// `user.max_user_namespaces`.
    max_user_namespaces: Option<String>,
    /// Ubuntu's `kernel.apparmor_restrict_unprivileged_userns` (from 23.10).
    apparmor_restrict: Option<String>,
}

/// The fix for Ubuntu's AppArmor restriction of user namespaces.
const APPARMOR_FIX: &str = "`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (e.g. as a CI step), \
                            or an AppArmor profile for this program that grants `userns,`";

impl UserNamespaceSysctls {
    fn read() -> UserNamespaceSysctls {
        let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
        UserNamespaceSysctls {
            unprivileged_userns_clone: read("/proc/sys/kernel/unprivileged_userns_clone"),
            max_user_namespaces: read("/proc/sys/user/max_user_namespaces"),
            apparmor_restrict: read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        }
    }

    fn apparmor_restricts(&self) -> bool {
        self.apparmor_restrict.as_deref() == Some("1")
    }

    /// The sysctl that forbids this process to create a user namespace, with its fix. Root
    /// is bound only by the namespace limit.
    fn creation_blocker(&self, root: bool) -> Option<String> {
        if self.max_user_namespaces.as_deref() == Some("0") {
            return Some(
                "forbidden by sysctl user.max_user_namespaces=0: `sudo sysctl -w user.max_user_namespaces=15000`".into(),
            );
        }
        if root {
            return None;
        }
        if self.unprivileged_userns_clone.as_deref() == Some("0") {
            return Some(
                "forbidden by sysctl kernel.unprivileged_userns_clone=0: `sudo sysctl -w kernel.unprivileged_userns_clone=1`"
                    .into(),
            );
        }
        if self.apparmor_restricts() {
            return Some(format!(
                "forbidden by AppArmor (sysctl kernel.apparmor_restrict_unprivileged_userns=1): {APPARMOR_FIX}"
            ));
        }
        None
    }
}

/// Why namespace creation fails here, in order of precedence.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Blocker {
    /// A seccomp filter refuses clone with namespace flags before the kernel sees it.
    SeccompFilter,
    /// Root without `CAP_SYS_ADMIN` in its effective set.
    MissingCapability,
    /// A sysctl forbids the user namespace of a rootless run (the text names it and the fix).
    Sysctl(String),
    /// None of the above.
    Unknown,
}

/// What decides why this process cannot create namespaces: read from `/proc` and probed.
#[derive(Debug, Clone, Default)]
pub(super) struct Facts {
    /// The effective uid.
    uid: u32,
    /// Seccomp and capabilities.
    status: ProcessStatus,
    /// The container this runs in, if any shows.
    container: Option<Container>,
    /// The user-namespace sysctls.
    sysctls: UserNamespaceSysctls,
    /// What refused `clone` with the run's namespace flags before the kernel's own checks.
    clone_refusal: Option<Errno>,
    /// What refused `clone3` before the kernel's own checks.
    clone3_refusal: Option<Errno>,
}

impl Facts {
    /// Reads and probes everything for a clone with `namespace_flags`.
    /// The same facts, with the seccomp probe redone for `namespace_flags` (each namespace
    /// type of `sandbox check` is probed on its own).
    pub(super) fn probing(&self, namespace_flags: CloneFlags) -> Facts {
        Facts { clone_refusal: sys::clone_filter_refusal(namespace_flags), ..self.clone() }
    }

    pub(super) fn gather(namespace_flags: CloneFlags) -> Facts {
        Facts {
            uid: Uid::effective().as_raw(),
            status: ProcessStatus::parse(&std::fs::read_to_string("/proc/self/status").unwrap_or_default()),
            container: detect_container(Path::new("/")),
            sysctls: UserNamespaceSysctls::read(),
            clone_refusal: sys::clone_filter_refusal(namespace_flags),
            clone3_refusal: sys::clone3_filter_refusal(),
        }
    }

    fn root(&self) -> bool {
        self.uid == 0
    }

    /// A seccomp filter is installed and refused the probe calls (`ENOSYS` from clone3
    /// alone is not a refusal: runs fall back to clone).
    fn filter_refuses(&self) -> bool {
        self.status.has_seccomp_filter() && (self.clone_refusal.is_some() || self.clone3_refusal == Some(Errno::EPERM))
    }

    fn lacks_cap_sys_admin(&self) -> bool {
        self.root() && self.status.has_cap_sys_admin() == Some(false)
    }

    /// The most specific reason: a seccomp filter, then a missing capability, then a
    /// user-namespace sysctl.
    fn blocker(&self) -> Blocker {
        if self.filter_refuses() {
            Blocker::SeccompFilter
        } else if self.lacks_cap_sys_admin() {
            Blocker::MissingCapability
        } else if let Some(sysctl) = self.sysctls.creation_blocker(self.root()) {
            Blocker::Sysctl(sysctl)
        } else {
            Blocker::Unknown
        }
    }

    /// One line: the cause of `errno` from a clone with namespace flags, and the fix.
    fn explain(&self, errno: Errno) -> String {
        match self.blocker() {
            Blocker::SeccompFilter => self.seccomp_explanation(),
            Blocker::MissingCapability => self.capability_explanation(),
            Blocker::Sysctl(text) => match &self.container {
                Some(container) => format!("{text} (a setting of the host, not of this {container})"),
                None => text,
            },
            Blocker::Unknown if errno == Errno::ENOSPC => {
                "refused: the namespace limit in /proc/sys/user/max_*_namespaces is reached".into()
            }
            Blocker::Unknown if self.root() => format!(
                "refused although uid 0 has CAP_SYS_ADMIN and no seccomp filter stops clone ({errno}): \
                 most likely a security module's policy (SELinux, AppArmor)"
            ),
            Blocker::Unknown => "refused by the kernel or a security module (no seccomp filter stops clone and no \
                                 sysctl forbids user namespaces)"
                .into(),
        }
    }

    /// The cause for a namespace line of `sandbox check`, pointing at the line with the fix.
    pub(super) fn summary(&self, errno: Errno) -> String {
        match self.blocker() {
            Blocker::SeccompFilter => "refused by a seccomp filter (see the seccomp line)".into(),
            Blocker::MissingCapability => "uid 0 lacks CAP_SYS_ADMIN (see the capabilities line)".into(),
            _ => self.explain(errno),
        }
    }

    /// What a failed run says after the kernel's error.
    fn run_hint(&self, errno: Errno) -> String {
        let explained = matches!(errno, Errno::EPERM | Errno::ENOSPC | Errno::ENOSYS)
            || (!self.root() && errno == Errno::EACCES);
        if !explained {
            return String::new();
        }
        let text = self.explain(errno);
        match (self.root(), self.blocker()) {
            (true, _) => format!(" ({text}; `sandbox check` shows what this machine allows)"),
            (false, Blocker::Sysctl(_) | Blocker::Unknown) => {
                format!(" (as a non-root user the sandbox needs a user namespace, and it is {text}; or run as root)")
            }
            (false, _) => format!(" (as a non-root user the sandbox needs a user namespace: {text})"),
        }
    }

    fn seccomp_explanation(&self) -> String {
        let answers: Vec<String> = [("clone", self.clone_refusal), ("clone3", self.clone3_refusal)]
            .into_iter()
            .filter_map(|(call, errno)| errno.map(|e| format!("{call}: {e:?}")))
            .collect();
        let fix = match &self.container {
            Some(container) => format!("the filter comes with this {container}: {}", container.seccomp_fix()),
            None => "run without it (Docker: `docker run --security-opt seccomp=unconfined` or `--privileged`; systemd: \
                     no SystemCallFilter= or RestrictNamespaces=), or allow clone and unshare with namespace flags"
                .into(),
        };
        let also = if self.lacks_cap_sys_admin() {
            "; uid 0 here also lacks CAP_SYS_ADMIN: add `--cap-add SYS_ADMIN` too (Docker's default profile then \
             allows these calls as well)"
        } else {
            ""
        };
        format!(
            "a seccomp filter refuses clone with namespace flags ({}; {} in /proc/self/status): {fix}{also}",
            answers.join(", "),
            self.status.describe_seccomp()
        )
    }

    fn capability_explanation(&self) -> String {
        let rootless = "run the sandbox as a normal user instead (it then uses a user namespace, which needs no capability)";
        let fix = match &self.container {
            Some(container) => format!("in this {container}, {}; or {rootless}", container.capability_fix()),
            None => format!(
                "give it CAP_SYS_ADMIN (a full root shell, a service's CapabilityBoundingSet=, `docker run --cap-add \
                 SYS_ADMIN`), or {rootless}"
            ),
        };
        format!(
            "uid 0 lacks CAP_SYS_ADMIN (CapEff: {:016x}), which creating PID, mount and UTS namespaces needs: {fix}",
            self.status.effective_caps.unwrap_or_default()
        )
    }

    /// The seccomp, capabilities and container lines of `sandbox check`.
    pub(super) fn blocker_findings(&self) -> Vec<Finding> {
        let mut out = Vec::new();
        let seccomp = self.status.describe_seccomp();
        out.push(match self.status.seccomp_mode {
            _ if self.filter_refuses() => finding(Status::Fail, "seccomp", self.seccomp_explanation()),
            0 => finding(Status::Ok, "seccomp", "no filter (Seccomp: 0)"),
            2 => {
                let clone3 = match self.clone3_refusal {
                    Some(errno) => format!("; clone3 answers {errno:?}, so runs use clone"),
                    None => String::new(),
                };
                let detail = format!("a filter is installed ({seccomp}), but it lets clone with namespace flags through{clone3}");
                finding(Status::Ok, "seccomp", detail)
            }
            _ => finding(Status::Warn, "seccomp", format!("unexpected mode ({seccomp})")),
        });
        out.push(match (self.root(), self.status.effective_caps) {
            (_, None) => finding(Status::Warn, "capabilities", "CapEff: not readable in /proc/self/status"),
            (true, Some(caps)) if !self.lacks_cap_sys_admin() => {
                finding(Status::Ok, "capabilities", format!("uid 0 has CAP_SYS_ADMIN (CapEff: {caps:016x})"))
            }
            (true, Some(_)) => finding(Status::Fail, "capabilities", self.capability_explanation()),
            (false, Some(caps)) => {
                let uid = self.uid;
                let detail = format!("none needed as uid {uid}: the sandbox's user namespace gives it its own (CapEff: {caps:016x})");
                finding(Status::Ok, "capabilities", detail)
            }
        });
        out.push(match &self.container {
            None => {
                let detail = "none found (no /.dockerenv, /run/.containerenv, container= or container cgroup of PID 1)";
                finding(Status::Ok, "container", detail)
            }
            Some(container) if self.filter_refuses() || self.lacks_cap_sys_admin() => finding(
                Status::Warn,
                "container",
                format!("in a {container}: the fixes above are options for starting the container"),
            ),
            Some(container) => finding(Status::Ok, "container", format!("in a {container}")),
        });
        out
    }

    /// The "user namespaces" line: whether a user namespace of this user can be created,
    /// mapped, and mounted in (which is what a rootless run needs).
    pub(super) fn user_namespace_finding(&self, trial: &sys::UserNamespaceTrial<String>) -> Finding {
        use sys::UserNamespaceTrial::*;
        let (works, detail) = match trial {
            Mounted => (
                true,
                format!(
                    "usable: in a new user namespace (uid {} mapped to 0) making / private and mounting a tmpfs on \
                     /tmp worked",
                    self.uid
                ),
            ),
            NotCreated(errno) => (false, format!("cannot be created ({errno}): {}", self.summary(*errno))),
            NotPrepared(err) => (false, format!("created, but its id maps could not be written: {err}")),
            MountRefused(step, errno @ (Errno::EPERM | Errno::EACCES)) => {
                let done = format!("created, but it has no capabilities inside ({}: {errno:?})", step.describe());
                let cause = if self.sysctls.apparmor_restricts() {
                    format!(
                        "AppArmor restricts unprivileged user namespaces \
                         (sysctl kernel.apparmor_restrict_unprivileged_userns=1): {APPARMOR_FIX}"
                    )
                } else {
                    let seccomp = match self.status.has_seccomp_filter() {
                        true => ", or this process's seccomp filter refuses mount",
                        false => "",
                    };
                    format!(
                        "most likely a security module restricts user namespaces (AppArmor, SELinux){seccomp}; \
                         with AppArmor, a profile for this program that grants `userns,` lifts it"
                    )
                };
                (false, format!("{done}: {cause}"))
            }
            MountRefused(step, errno) => (false, format!("created, but {} in it failed ({errno:?})", step.describe())),
        };
        match (works, self.root()) {
            (true, _) => finding(Status::Ok, "user namespaces", detail),
            (false, false) => finding(Status::Fail, "user namespaces", detail),
            (false, true) => finding(Status::Warn, "user namespaces", format!("{detail}; runs as root do not use one")),
        }
    }
}

/// Creates a user namespace as a rootless run does (id maps written from outside) and mounts
/// in it; see [`sys::try_mount_in_user_namespace`].
pub(super) fn try_user_namespace() -> sys::UserNamespaceTrial<String> {
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    let write_maps = |pid: nix::unistd::Pid| {
        let maps = [("setgroups", "deny".to_string()), ("uid_map", format!("0 {uid} 1")), ("gid_map", format!("0 {gid} 1"))];
        for (file, text) in maps {
            let path = format!("/proc/{pid}/{file}");
            std::fs::write(&path, text).map_err(|err| format!("writing {path}: {err}"))?;
        }
        Ok(())
    };
    sys::try_mount_in_user_namespace(write_maps).unwrap_or_else(|errno| {
        sys::UserNamespaceTrial::NotPrepared(format!("the trial child gave no answer ({errno})"))
    })
}

/// The hint after a failed clone of a run's namespaces: the cause and the fix.
pub(crate) fn namespace_refusal_hint(errno: Errno) -> String {
    let root = nix::unistd::geteuid().is_root();
    let flags = if root { RUN_NAMESPACES } else { RUN_NAMESPACES | CloneFlags::CLONE_NEWUSER };
    Facts::gather(flags).run_hint(errno)
}

/// The hint after the kernel refused a contained root run its user namespace: what refuses
/// namespaces here, a user namespace among them.
pub(crate) fn contained_user_namespace_hint(errno: Errno) -> String {
    Facts::gather(RUN_NAMESPACES | CloneFlags::CLONE_NEWUSER).run_hint(errno)
}

/// The hint after a mount refused inside a rootless run's user namespace, when AppArmor's
/// restriction explains it (the namespace was created, but has no capabilities).
pub(crate) fn user_namespace_mount_hint() -> Option<String> {
    UserNamespaceSysctls::read().apparmor_restricts().then(|| {
        format!(
            " (the sandbox's user namespace has no capabilities: AppArmor restricts unprivileged user namespaces, \
             sysctl kernel.apparmor_restrict_unprivileged_userns=1: {APPARMOR_FIX})"
        )
    })
}

#[cfg(test)]
mod tests;
