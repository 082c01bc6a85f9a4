//! `sandbox check` and a failed `sandbox run` name the real reason namespaces cannot be made,
//! each triggered for real: a seccomp filter this test installs in the child before exec (as
//! Docker's default profile refuses namespace flags), root with CAP_SYS_ADMIN dropped, and, as
//! uid 65534, a user namespace whose mounts are refused. Each test first checks that the
//! kernel really was in that state.

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Output, Stdio};

/// The CLI under test: this package's build, or `SANDBOX_CLI` (as tests/cli.rs).
fn sandbox_bin() -> String {
    std::env::var("SANDBOX_CLI").unwrap_or_else(|_| env!("CARGO_BIN_EXE_sandbox").to_string())
}

struct Ran {
    code: Option<i32>,
    stdout: String,
    stderr: String,
}

impl std::fmt::Debug for Ran {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "exit {:?}\n--- stdout\n{}--- stderr\n{}", self.code, self.stdout, self.stderr)
    }
}

fn ran(output: Output) -> Ran {
    Ran {
        code: output.status.code(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Runs `program args` from `/` with stdin closed, under `filter` when given.
fn run(program: &str, args: &[&str], filter: Option<&Filter>) -> Ran {
    let mut command = Command::new(program);
    command.args(args).current_dir("/").stdin(Stdio::null());
    if let Some(filter) = filter {
        filter.install_before_exec(&mut command);
    }
    ran(command.output().unwrap())
}

/// Runs `sandbox ARGS` (under `filter`), optionally through `setpriv WRAP...` first.
fn sandbox(wrap: &[&str], args: &[&str], filter: Option<&Filter>) -> Ran {
    let bin = sandbox_bin();
    if wrap.is_empty() {
        return run(&bin, args, filter);
    }
    let mut all: Vec<&str> = wrap.to_vec();
    all.push(&bin);
    all.extend(args);
    run("setpriv", &all, filter)
}

const AS_NOBODY: [&str; 3] = ["--reuid=65534", "--regid=65534", "--clear-groups"];
const WITHOUT_SYS_ADMIN: [&str; 2] = ["--inh-caps=-sys_admin", "--bounding-set=-sys_admin"];

/// The namespace bits of clone's flags that Docker's default profile refuses.
const CLONE_NEW_MASK: libc::c_int = libc::CLONE_NEWNS
    | libc::CLONE_NEWCGROUP
    | libc::CLONE_NEWUTS
    | libc::CLONE_NEWIPC
    | libc::CLONE_NEWUSER
    | libc::CLONE_NEWPID
    | libc::CLONE_NEWNET;

/// `AUDIT_ARCH_*` of this build: the ELF machine, 64-bit, little-endian.
#[cfg(target_arch = "x86_64")]
const AUDIT_ARCH: u32 = libc::EM_X86_64 as u32 | 0x8000_0000 | 0x4000_0000;
#[cfg(target_arch = "aarch64")]
const AUDIT_ARCH: u32 = libc::EM_AARCH64 as u32 | 0x8000_0000 | 0x4000_0000;

/// Offsets into `struct seccomp_data`: `nr`, `arch`, and the low half of `args[i]`.
const NR_OFFSET: u32 = 0;
const ARCH_OFFSET: u32 = 4;
fn arg_offset(index: u32) -> u32 {
    16 + 8 * index
}

/// One refusal of a seccomp filter.
enum Rule {
    /// The system call always fails with this errno.
    Refuse { nr: libc::c_long, errno: i32 },
    /// It fails when argument `arg` has any of `mask`'s bits.
    RefuseIfAnyBit { nr: libc::c_long, arg: u32, mask: u32, errno: i32 },
    /// It fails when argument `arg` is zero.
    RefuseIfZero { nr: libc::c_long, arg: u32, errno: i32 },
}

/// A classic BPF seccomp program that allows everything but its rules.
struct Filter(Vec<libc::sock_filter>);

fn stmt(code: u32, k: u32) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt: 0, jf: 0, k }
}

fn jump(code: u32, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code: code as u16, jt, jf, k }
}

impl Filter {
    fn new(rules: &[Rule]) -> Filter {
        use libc::{BPF_ABS, BPF_JEQ, BPF_JMP, BPF_JSET, BPF_K, BPF_LD, BPF_RET, BPF_W};
        let allow = stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ALLOW);
        let refuse = |errno: i32| stmt(BPF_RET | BPF_K, libc::SECCOMP_RET_ERRNO | (errno as u32 & libc::SECCOMP_RET_DATA));
        let mut program = vec![
            stmt(BPF_LD | BPF_W | BPF_ABS, ARCH_OFFSET),
            // Another architecture's system call numbers mean other calls: let them be.
            jump(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH, 1, 0),
            allow,
            stmt(BPF_LD | BPF_W | BPF_ABS, NR_OFFSET),
        ];
        for rule in rules {
            match *rule {
                Rule::Refuse { nr, errno } => {
                    program.push(jump(BPF_JMP | BPF_JEQ | BPF_K, nr as u32, 0, 1));
                    program.push(refuse(errno));
                }
                Rule::RefuseIfAnyBit { nr, arg, mask, errno } => {
                    program.push(jump(BPF_JMP | BPF_JEQ | BPF_K, nr as u32, 0, 4));
                    program.push(stmt(BPF_LD | BPF_W | BPF_ABS, arg_offset(arg)));
                    program.push(jump(BPF_JMP | BPF_JSET | BPF_K, mask, 0, 1));
                    program.push(refuse(errno));
                    program.push(allow);
                }
                Rule::RefuseIfZero { nr, arg, errno } => {
                    program.push(jump(BPF_JMP | BPF_JEQ | BPF_K, nr as u32, 0, 4));
                    program.push(stmt(BPF_LD | BPF_W | BPF_ABS, arg_offset(arg)));
                    program.push(jump(BPF_JMP | BPF_JEQ | BPF_K, 0, 0, 1));
                    program.push(refuse(errno));
                    program.push(allow);
                }
            }
        }
        program.push(allow);
        Filter(program)
    }

    /// As Docker's default profile for a container without CAP_SYS_ADMIN: `unshare` refused,
    /// `clone` refused with any namespace flag, `clone3` answered ENOSYS.
    fn docker_like() -> Filter {
        Filter::new(&[
            Rule::Refuse { nr: libc::SYS_unshare, errno: libc::EPERM },
            Rule::Refuse { nr: libc::SYS_clone3, errno: libc::ENOSYS },
            Rule::RefuseIfAnyBit { nr: libc::SYS_clone, arg: 0, mask: CLONE_NEW_MASK as u32, errno: libc::EPERM },
        ])
    }

    /// Every `mount(2)` refused, as in a user namespace without capabilities.
    fn no_mounts() -> Filter {
        Filter::new(&[Rule::Refuse { nr: libc::SYS_mount, errno: libc::EPERM }])
    }

    /// `mount(2)` of a new file system (flags 0) refused; propagation changes pass.
    fn no_new_mounts() -> Filter {
        Filter::new(&[Rule::RefuseIfZero { nr: libc::SYS_mount, arg: 3, errno: libc::EPERM }])
    }

    /// Installs the filter in the child between fork and exec.
    fn install_before_exec(&self, command: &mut Command) {
        let program = self.0.clone();
        // SAFETY: the closure makes two system calls on memory it owns (its copy of the
        // program) and allocates nothing.
        unsafe {
            command.pre_exec(move || {
                if libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                let fprog = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr() as *mut libc::sock_filter };
                if libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, 0, &fprog as *const libc::sock_fprog) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
}

/// The line of `sandbox check` output about `topic`.
fn line<'a>(stdout: &'a str, topic: &str) -> &'a str {
    let needle = format!("  {topic}: ");
    stdout.lines().find(|l| l.contains(&needle)).unwrap_or_else(|| panic!("no '{topic}' line in:\n{stdout}"))
}

fn assert_root() {
    assert!(nix::unistd::geteuid().is_root(), "these tests run as root (they drop privileges themselves)");
}

#[test]
fn the_docker_like_filter_is_in_force_and_refuses_namespaces() {
    let filter = Filter::docker_like();
    let status = run("sh", &["-c", "grep -E '^Seccomp(_filters)?:' /proc/self/status"], Some(&filter));
    assert!(status.stdout.contains("Seccomp:\t2\n"), "{status:?}");
    assert!(status.stdout.contains("Seccomp_filters:\t1\n"), "{status:?}");
    let refused = run("unshare", &["--uts", "true"], Some(&filter));
    assert_ne!(refused.code, Some(0), "{refused:?}");
    assert!(refused.stderr.contains("Operation not permitted"), "{refused:?}");
    // Without it the same works, so the filter made the difference.
    let allowed = run("unshare", &["--uts", "true"], None);
    assert_eq!(allowed.code, Some(0), "{allowed:?}");
}

#[test]
fn a_seccomp_filter_is_named_with_its_fix_by_run_and_check() {
    assert_root();
    let free = sandbox(&[], &["run", "--", "true"], None);
    assert_eq!(free.code, Some(0), "without the filter the run works here: {free:?}");
    let filter = Filter::docker_like();

    let run = sandbox(&[], &["run", "--", "true"], Some(&filter));
    assert_eq!(run.code, Some(125), "{run:?}");
    assert!(run.stderr.contains("creating the sandbox's namespaces"), "{run:?}");
    assert!(run.stderr.contains("a seccomp filter refuses clone with namespace flags (clone: EPERM"), "{run:?}");
    assert!(run.stderr.contains("clone3: ENOSYS"), "{run:?}");
    assert!(run.stderr.contains("Seccomp: 2, Seccomp_filters: 1"), "{run:?}");
    assert!(run.stderr.contains("--security-opt seccomp=unconfined"), "{run:?}");
    assert!(!run.stderr.contains("run as root"), "{run:?}");
    assert_eq!(run.stderr.lines().count(), 1, "one line: {run:?}");

    let check = sandbox(&[], &["check"], Some(&filter));
    assert_eq!(check.code, Some(1), "{check:?}");
    let seccomp = line(&check.stdout, "seccomp");
    assert!(seccomp.starts_with("FAIL  seccomp: a seccomp filter refuses clone with namespace flags"), "{check:?}");
    assert!(seccomp.contains("--security-opt seccomp=unconfined"), "{check:?}");
    let pid = line(&check.stdout, "pid namespace");
    assert!(pid.contains("cannot be created (EPERM: Operation not permitted): refused by a seccomp filter"), "{check:?}");
    assert!(line(&check.stdout, "capabilities").starts_with("ok    capabilities: uid 0 has CAP_SYS_ADMIN"), "{check:?}");
    assert!(!check.stdout.contains("run as root"), "{check:?}");
    assert!(check.stdout.ends_with("sandbox run cannot work here: fix the FAIL lines above\n"), "{check:?}");
}

#[test]
fn a_seccomp_filter_is_named_without_root_too() {
    let filter = Filter::docker_like();
    let run = sandbox(&AS_NOBODY, &["run", "--", "true"], Some(&filter));
    assert_eq!(run.code, Some(125), "{run:?}");
    assert!(run.stderr.contains("needs a user namespace: a seccomp filter refuses clone with namespace flags"), "{run:?}");
    assert!(run.stderr.contains("--security-opt seccomp=unconfined"), "{run:?}");
    let check = sandbox(&AS_NOBODY, &["check"], Some(&filter));
    assert_eq!(check.code, Some(1), "{check:?}");
    assert!(line(&check.stdout, "seccomp").starts_with("FAIL  seccomp: a seccomp filter refuses"), "{check:?}");
    assert!(line(&check.stdout, "user namespaces").contains("refused by a seccomp filter"), "{check:?}");
}

/// Whether `CapEff:` of the status text has CAP_SYS_ADMIN (bit 21).
fn has_cap_sys_admin(status: &str) -> bool {
    let caps = status.lines().find_map(|l| l.strip_prefix("CapEff:")).expect("a CapEff line").trim();
    u64::from_str_radix(caps, 16).unwrap() & (1 << 21) != 0
}

#[test]
fn root_without_cap_sys_admin_is_told_the_capability_and_its_fix() {
    assert_root();
    let mut wrap = WITHOUT_SYS_ADMIN.to_vec();
    wrap.extend(["grep", "CapEff:", "/proc/self/status"]);
    let status = run("setpriv", &wrap, None);
    assert!(!has_cap_sys_admin(&status.stdout), "setpriv dropped CAP_SYS_ADMIN: {status:?}");
    assert!(has_cap_sys_admin(&std::fs::read_to_string("/proc/self/status").unwrap()), "this test has it");

    let run = sandbox(&WITHOUT_SYS_ADMIN, &["run", "--", "true"], None);
    assert_eq!(run.code, Some(125), "{run:?}");
    assert!(run.stderr.contains("creating the sandbox's namespaces"), "{run:?}");
    assert!(run.stderr.contains("uid 0 lacks CAP_SYS_ADMIN (CapEff: "), "{run:?}");
    assert!(run.stderr.contains("--cap-add SYS_ADMIN"), "{run:?}");
    assert!(run.stderr.contains("run the sandbox as a normal user"), "{run:?}");
    assert!(!run.stderr.contains("run as root"), "{run:?}");

    let check = sandbox(&WITHOUT_SYS_ADMIN, &["check"], None);
    assert_eq!(check.code, Some(1), "{check:?}");
    let capabilities = line(&check.stdout, "capabilities");
    assert!(capabilities.starts_with("FAIL  capabilities: uid 0 lacks CAP_SYS_ADMIN"), "{check:?}");
    assert!(capabilities.contains("--cap-add SYS_ADMIN"), "{check:?}");
    assert!(line(&check.stdout, "seccomp").starts_with("ok    seccomp: no filter"), "{check:?}");
    assert!(line(&check.stdout, "pid namespace").contains("uid 0 lacks CAP_SYS_ADMIN (see the capabilities line)"), "{check:?}");
    assert!(!check.stdout.contains("run as root"), "{check:?}");
}

#[test]
fn the_container_line_follows_the_container_marks() {
    let check = sandbox(&[], &["check"], None);
    let container = line(&check.stdout, "container");
    if Path::new("/.dockerenv").exists() {
        assert_eq!(container, "ok    container: in a Docker container (/.dockerenv)", "{check:?}");
    } else if Path::new("/run/.containerenv").exists() {
        assert_eq!(container, "ok    container: in a Podman container (/run/.containerenv)", "{check:?}");
    } else {
        assert!(container.starts_with("ok    container: "), "{check:?}");
    }
    // In a container, a refusal's fix is a container option.
    let filtered = sandbox(&[], &["check"], Some(&Filter::docker_like()));
    if Path::new("/.dockerenv").exists() {
        let fix = "the filter comes with this Docker container (/.dockerenv): start it with `docker run";
        assert!(line(&filtered.stdout, "seccomp").contains(fix), "{filtered:?}");
        assert!(line(&filtered.stdout, "container").starts_with("warn  container: in a Docker container"), "{filtered:?}");
    }
}

#[test]
fn check_without_root_mounts_in_a_user_namespace_of_its_own() {
    let check = sandbox(&AS_NOBODY, &["check"], None);
    assert_eq!(check.code, Some(0), "{check:?}");
    let userns = line(&check.stdout, "user namespaces");
    assert!(userns.starts_with("ok    user namespaces: usable"), "{check:?}");
    assert!(userns.contains("uid 65534 mapped to 0"), "{check:?}");

    // The probe really mounts: refuse mount(2) and it says so, naming the step.
    let check = sandbox(&AS_NOBODY, &["check"], Some(&Filter::no_mounts()));
    assert_eq!(check.code, Some(1), "{check:?}");
    let userns = line(&check.stdout, "user namespaces");
    assert!(userns.starts_with("FAIL  user namespaces: created, but it has no capabilities inside (making / private: EPERM)"), "{check:?}");
    assert!(userns.contains("AppArmor, SELinux"), "{check:?}");
    assert!(userns.contains("this process's seccomp filter refuses mount"), "{check:?}");
    assert!(line(&check.stdout, "pid namespace").starts_with("ok    pid namespace: can be created"), "creation works: {check:?}");

    let check = sandbox(&AS_NOBODY, &["check"], Some(&Filter::no_new_mounts()));
    let userns = line(&check.stdout, "user namespaces");
    assert!(userns.contains("(mounting a tmpfs on /tmp: EPERM)"), "{check:?}");
}

/// Where `mount_setattr(2)` is missing (before Linux 5.12: ENOSYS) or refused by a seccomp filter
/// (EPERM), a contained run still makes `/sys` read-only, its top mount by a remount; a write
/// there (of the value it read: a failure changes nothing) gets `EROFS`.
#[test]
fn sys_is_read_only_without_mount_setattr() {
    assert_root();
    let script = "cat /sys/kernel/mm/ksm/run > /tmp/v && cat /tmp/v > /sys/kernel/mm/ksm/run && echo written";
    for errno in [libc::ENOSYS, libc::EPERM] {
        let filter = Filter::new(&[Rule::Refuse { nr: libc::SYS_mount_setattr, errno }]);
        let run = sandbox(&[], &["run", "--", "sh", "-c", script], Some(&filter));
        assert_eq!(run.code, Some(2), "errno {errno}: {run:?}");
        assert!(run.stderr.contains("Read-only file system"), "errno {errno}: {run:?}");
    }
}
