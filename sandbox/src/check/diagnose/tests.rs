//! Unit tests of `diagnose`.

use std::path::PathBuf;

use nix::errno::Errno;
use nix::sched::CloneFlags;

use super::*;
use crate::sys::{TrialMount, UserNamespaceTrial};

/// An empty directory standing in for `/`.
fn fake_root(tag: &str) -> PathBuf {
    let root = std::env::temp_dir().join(format!("sandbox-check-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(root.join("proc/1")).unwrap();
    std::fs::create_dir_all(root.join("run")).unwrap();
    root
}

const DOCKER_STATUS: &str = "Name:\tsandbox\nCapInh:\t0000000000000000\nCapPrm:\t00000000a80425fb\n\
                                 CapEff:\t00000000a80425fb\nNoNewPrivs:\t0\nSeccomp:\t2\nSeccomp_filters:\t1\n";

fn docker() -> Option<Container> {
    Some(Container { runtime: "Docker".into(), evidence: "/.dockerenv".into() })
}

/// Root in a default Docker container: seccomp filter, no CAP_SYS_ADMIN.
fn docker_root() -> Facts {
    Facts {
        uid: 0,
        status: ProcessStatus::parse(DOCKER_STATUS),
        container: docker(),
        clone_refusal: Some(Errno::EPERM),
        clone3_refusal: Some(Errno::ENOSYS),
        ..Facts::default()
    }
}

#[test]
fn status_fields_are_parsed() {
    let status = ProcessStatus::parse(DOCKER_STATUS);
    assert_eq!(status, ProcessStatus { seccomp_mode: 2, seccomp_filters: Some(1), effective_caps: Some(0xa80425fb) });
    assert_eq!(status.has_cap_sys_admin(), Some(false));
    let full = ProcessStatus::parse("CapEff:\t000001ffffffffff\nSeccomp:\t0\n");
    assert_eq!((full.has_cap_sys_admin(), full.has_seccomp_filter(), full.seccomp_filters), (Some(true), false, None));
    assert_eq!(ProcessStatus::parse("").has_cap_sys_admin(), None);
}

#[test]
fn containers_are_found_by_their_marks() {
    let root = fake_root("bare");
    assert_eq!(detect_container(&root), None);
    std::fs::write(root.join("proc/1/cgroup"), "0::/init.scope\n").unwrap();
    std::fs::write(root.join("proc/1/environ"), b"PATH=/bin\0HOME=/\0").unwrap();
    assert_eq!(detect_container(&root), None);

    std::fs::write(root.join("proc/1/cgroup"), "12:pids:/kubepods/besteffort/pod1/abc\n").unwrap();
    assert_eq!(detect_container(&root).unwrap().runtime, "Kubernetes");
    std::fs::write(root.join("proc/1/environ"), b"PATH=/bin\0container=lxc\0").unwrap();
    assert_eq!(
        detect_container(&root),
        Some(Container { runtime: "lxc".into(), evidence: "container=lxc in /proc/1/environ".into() })
    );
    std::fs::write(root.join("run/.containerenv"), "").unwrap();
    assert_eq!(detect_container(&root).unwrap().runtime, "Podman");
    std::fs::write(root.join(".dockerenv"), "").unwrap();
    assert_eq!(detect_container(&root), docker());
    std::fs::remove_dir_all(&root).unwrap();
}

#[test]
fn precedence_is_seccomp_then_capability_then_sysctls() {
    let mut facts = docker_root();
    facts.sysctls.max_user_namespaces = Some("0".into());
    assert_eq!(facts.blocker(), Blocker::SeccompFilter);
    facts.clone_refusal = None;
    // clone3's ENOSYS alone is no refusal: runs fall back to clone.
    assert_eq!(facts.blocker(), Blocker::MissingCapability);
    facts.status.effective_caps = Some(!0);
    assert!(matches!(facts.blocker(), Blocker::Sysctl(s) if s.contains("user.max_user_namespaces=0")));
    facts.sysctls = UserNamespaceSysctls::default();
    assert_eq!(facts.blocker(), Blocker::Unknown);
    // A refusal without a filter is not blamed on seccomp.
    facts.status.seccomp_mode = 0;
    facts.clone_refusal = Some(Errno::EPERM);
    assert_eq!(facts.blocker(), Blocker::Unknown);
    // EPERM from clone3 stops a run (it does not fall back on EPERM).
    let facts = Facts { clone_refusal: None, clone3_refusal: Some(Errno::EPERM), ..docker_root() };
    assert_eq!(facts.blocker(), Blocker::SeccompFilter);
}

#[test]
fn seccomp_message_names_the_filter_the_container_and_the_fix() {
    let hint = docker_root().run_hint(Errno::EPERM);
    let cause = " (a seccomp filter refuses clone with namespace flags (clone: EPERM, clone3: ENOSYS; Seccomp: 2, \
                     Seccomp_filters: 1 in /proc/self/status)";
    assert!(hint.starts_with(cause), "{hint}");
    let fix = "this Docker container (/.dockerenv): start it with `docker run --security-opt seccomp=unconfined` (or \
                   `--privileged`)";
    assert!(hint.contains(fix), "{hint}");
    assert!(hint.contains("also lacks CAP_SYS_ADMIN: add `--cap-add SYS_ADMIN` too"), "{hint}");
    assert!(!hint.contains("run as root"), "{hint}");
    let bare = Facts { container: None, status: ProcessStatus { effective_caps: Some(!0), ..docker_root().status }, ..docker_root() };
    let text = bare.explain(Errno::EPERM);
    assert!(text.contains("run without it (Docker: `docker run --security-opt seccomp=unconfined`"), "{text}");
    assert!(!text.contains("container (") && !text.contains("CAP_SYS_ADMIN"), "{text}");
    let podman = Facts { container: Some(Container { runtime: "Podman".into(), evidence: "/run/.containerenv".into() }), ..bare };
    assert!(podman.explain(Errno::EPERM).contains("`podman run --security-opt seccomp=unconfined`"));
}

#[test]
fn capability_message_names_cap_sys_admin_and_the_fix() {
    let facts = Facts { status: ProcessStatus { seccomp_mode: 0, ..docker_root().status }, ..docker_root() };
    let hint = facts.run_hint(Errno::EPERM);
    assert!(hint.contains("uid 0 lacks CAP_SYS_ADMIN (CapEff: 00000000a80425fb)"), "{hint}");
    let fix = "in this Docker container (/.dockerenv), start it with `docker run --cap-add SYS_ADMIN` (or `--privileged`)";
    assert!(hint.contains(fix), "{hint}");
    assert!(hint.contains("run the sandbox as a normal user"), "{hint}");
    assert!(!hint.contains("run as root"), "{hint}");
    let findings = facts.blocker_findings();
    let topics: Vec<_> = findings.iter().map(|f| (f.topic.as_str(), f.status)).collect();
    assert_eq!(topics, [("seccomp", Status::Ok), ("capabilities", Status::Fail), ("container", Status::Warn)]);
    // Not root: no capability is needed, whatever CapEff holds.
    let rootless = Facts { uid: 1000, ..facts };
    assert_ne!(rootless.blocker(), Blocker::MissingCapability);
    assert_eq!(rootless.blocker_findings()[1].status, Status::Ok);
}

#[test]
fn user_namespace_sysctls_are_named_with_their_fix() {
    let rootless = |sysctls: UserNamespaceSysctls| Facts { uid: 1000, sysctls, ..Facts::default() };
    let no_limit = UserNamespaceSysctls { max_user_namespaces: Some("0".into()), ..Default::default() };
    let debian_off = UserNamespaceSysctls { unprivileged_userns_clone: Some("0".into()), ..Default::default() };
    let apparmor = UserNamespaceSysctls { apparmor_restrict: Some("1".into()), ..Default::default() };

    let hint = rootless(no_limit).run_hint(Errno::ENOSPC);
    // tests/vm-suite.sh looks for this phrase.
    let named = "needs a user namespace, and it is forbidden by sysctl user.max_user_namespaces=0: `sudo sysctl -w";
    assert!(hint.contains(named), "{hint}");
    let hint = rootless(debian_off.clone()).run_hint(Errno::EPERM);
    let named = "forbidden by sysctl kernel.unprivileged_userns_clone=0: `sudo sysctl -w kernel.unprivileged_userns_clone=1`";
    assert!(hint.contains(named), "{hint}");
    let hint = rootless(apparmor).run_hint(Errno::EPERM);
    assert!(hint.contains("forbidden by AppArmor") && hint.contains("userns,"), "{hint}");

    // Root is bound by the namespace limit only.
    let capable = ProcessStatus { effective_caps: Some(!0), ..Default::default() };
    let root = Facts { uid: 0, status: capable, ..rootless(debian_off.clone()) };
    assert_eq!(root.blocker(), Blocker::Unknown);
    let hint = root.run_hint(Errno::EPERM);
    assert!(hint.contains("refused although uid 0 has CAP_SYS_ADMIN and no seccomp filter stops clone"), "{hint}");
    // In a container the sysctl is the host's.
    let contained = Facts { container: docker(), ..rootless(debian_off) };
    let text = contained.explain(Errno::EPERM);
    assert!(text.contains("a setting of the host, not of this Docker container (/.dockerenv)"), "{text}");
    assert_eq!(rootless(UserNamespaceSysctls::default()).run_hint(Errno::EINVAL), "");
}

#[test]
fn a_user_namespace_without_capabilities_is_blamed_on_apparmor() {
    let refused = UserNamespaceTrial::MountRefused(TrialMount::MakeRootPrivate, Errno::EPERM);
    let ubuntu = Facts {
        uid: 1000,
        sysctls: UserNamespaceSysctls { apparmor_restrict: Some("1".into()), ..Default::default() },
        ..Facts::default()
    };
    let line = ubuntu.user_namespace_finding(&refused);
    assert_eq!(line.status, Status::Fail);
    let named = "created, but it has no capabilities inside (making / private: EPERM): AppArmor restricts \
                     unprivileged user namespaces (sysctl kernel.apparmor_restrict_unprivileged_userns=1)";
    assert!(line.detail.starts_with(named), "{line}");
    assert!(line.detail.contains("`sudo sysctl -w kernel.apparmor_restrict_unprivileged_userns=0` (e.g. as a CI step)"), "{line}");
    assert!(line.detail.contains("grants `userns,`"), "{line}");

    // No such sysctl (other kernels): the missing capabilities, with AppArmor as the likely cause.
    let other = Facts { sysctls: UserNamespaceSysctls::default(), ..ubuntu.clone() };
    let line = other.user_namespace_finding(&UserNamespaceTrial::MountRefused(TrialMount::TmpfsOnTmp, Errno::EPERM));
    assert_eq!(line.status, Status::Fail);
    assert!(line.detail.contains("no capabilities inside (mounting a tmpfs on /tmp: EPERM): most likely a security module"), "{line}");
    assert!(line.detail.contains("AppArmor") && !line.detail.contains("seccomp"), "{line}");

    assert_eq!(ubuntu.user_namespace_finding(&UserNamespaceTrial::Mounted).status, Status::Ok);
    let root = Facts { uid: 0, ..ubuntu.clone() };
    assert_eq!(root.user_namespace_finding(&refused).status, Status::Warn, "root does not need one");
    let line = ubuntu.user_namespace_finding(&UserNamespaceTrial::NotCreated(Errno::EPERM));
    assert!(line.detail.contains("forbidden by AppArmor"), "{line}");
    // The rootless run's mount error names it too (this reads the real sysctl).
    let real = UserNamespaceSysctls::read();
    assert_eq!(user_namespace_mount_hint().is_some(), real.apparmor_restricts());
}

#[test]
fn probes_reach_the_kernel_here_and_a_user_namespace_can_mount() {
    // No filter on this process: the probes' invalid calls reach the kernel's EINVAL.
    assert_eq!(ProcessStatus::parse(&std::fs::read_to_string("/proc/self/status").unwrap()).seccomp_mode, 0);
    assert_eq!(sys::clone_filter_refusal(RUN_NAMESPACES | CloneFlags::CLONE_NEWUSER), None);
    assert_eq!(sys::clone3_filter_refusal(), None);
    assert!(matches!(try_user_namespace(), UserNamespaceTrial::Mounted));
    let denied = sys::try_mount_in_user_namespace(|_| Err("refused on purpose")).unwrap();
    assert!(matches!(denied, UserNamespaceTrial::NotPrepared("refused on purpose")));
}
