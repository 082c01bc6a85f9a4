//! `sandbox run` against the real kernel: each test runs the CLI binary and asserts what the
//! kernel shows (namespace inodes, PIDs, the mount table, cgroup files and counters), never a
//! log line. Every run also checks that the host's mount table is byte-identical afterwards.
//!
//! Runs on the host (cgroup v1 here) and, through `tests/run-all.sh`, in the cgroup-v2 VM in
//! its leaf, root and ns modes.

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod common;
use common::*;

/// `sandbox run --json FILE ARGS...` from `/`, asserting the host mount table did not change.
/// (From `/` because a checkout below `/tmp` would otherwise be bound into the sandbox's /tmp,
/// see `a_working_directory_below_tmp_stays_reachable`.)
fn sandbox(args: &[&str]) -> Run {
    sandbox_in(Path::new("/"), args)
}

/// Runs `script` with `sh -c` in a sandbox with `opts`; asserts it exited 0.
fn sh_ok(opts: &[&str], script: &str) -> Run {
    let mut args = opts.to_vec();
    args.extend(["--", "sh", "-c", script]);
    let run = sandbox(&args);
    assert_eq!(run.code, Some(0), "{run:#?}");
    run
}

fn cgroup_dirs_are_gone(run: &Run) -> Vec<PathBuf> {
    let dirs = json_cgroup_dirs(run);
    assert!(!dirs.is_empty(), "no sandbox cgroup in {run:#?}");
    for dir in &dirs {
        assert!(!dir.exists(), "{} is left behind", dir.display());
    }
    dirs
}

fn ns(kind: &str) -> String {
    fs::read_link(format!("/proc/self/ns/{kind}")).unwrap().to_string_lossy().into_owned()
}

// ---------------------------------------------------------------- 1. namespaces

#[test]
fn pid_mount_uts_namespaces_are_new_net_and_ipc_on_request() {
    let script = "for n in pid mnt uts net ipc; do readlink /proc/self/ns/$n; done";
    let run = sh_ok(&[], script);
    let inside: Vec<&str> = run.stdout.lines().collect();
    assert_ne!(inside[0], ns("pid"));
    assert_ne!(inside[1], ns("mnt"));
    assert_ne!(inside[2], ns("uts"));
    assert_eq!(inside[3], ns("net"), "the host network is the default");
    assert_eq!(inside[4], ns("ipc"), "the host IPC namespace is the default");

    let run = sh_ok(&["--net", "none", "--ipc"], script);
    let inside: Vec<&str> = run.stdout.lines().collect();
    assert_ne!(inside[3], ns("net"));
    assert_ne!(inside[4], ns("ipc"));
}

#[test]
fn net_none_has_only_loopback_and_it_is_up() {
    // /proc/net/dev lists the interfaces of the reader's network namespace; a TCP connection to
    // 127.0.0.1 only works when lo is up.
    let script = "cut -d: -f1 /proc/net/dev | tail -n +3 | tr -d ' '; \
                  python3 -c \"import socket; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); \
                  socket.create_connection(s.getsockname()); print('connected')\"";
    let run = sh_ok(&["--net", "none"], script);
    assert_eq!(run.stdout, "lo\nconnected\n");
}

#[test]
fn net_none_cannot_reach_a_host_listener() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connect = format!(
        "python3 -c \"import socket\ntry:\n socket.create_connection(('127.0.0.1', {port}), timeout=2); print('reached')\nexcept OSError as e: print('refused', e.errno)\""
    );
    assert_eq!(sh_ok(&[], &connect).stdout, "reached\n", "the host network is shared by default");
    let run = sh_ok(&["--net", "none"], &connect);
    assert_eq!(run.stdout, format!("refused {}\n", libc::ECONNREFUSED), "{run:#?}");
}

#[test]
fn host_processes_can_be_neither_seen_nor_signalled() {
    let me = std::process::id();
    let run = sh_ok(&[], &format!("kill -0 {me} 2>/dev/null && echo signalled || echo no-such-process; test -e /proc/{me} && echo visible || echo invisible"));
    // PID numbers inside are the sandbox's own: the host's PID does not exist there (or, should
    // the number be reused inside, it names a sandbox process, never this one).
    assert!(run.stdout == "no-such-process\ninvisible\n", "{run:#?}");
}

// ---------------------------------------------------------------- 2. init

#[test]
fn command_is_not_pid_1_and_sees_only_the_sandbox() {
    let run = sh_ok(&[], "echo $$; cat /proc/1/comm; ls /proc | grep -c '^[0-9]'");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[0], "2", "the command is PID 2, the sandbox's init PID 1");
    assert_eq!(lines[1], "sandbox", "PID 1 is the sandbox's init");
    let visible: u32 = lines[2].parse().unwrap();
    assert!((3..=5).contains(&visible), "only init, sh, ls and grep are visible, not {visible} processes");
}

/// The command's session and process group exist inside: the session is the init's (PID 1),
/// the group the command's own, as for a shell's job, and there is no controlling terminal.
#[test]
fn the_command_has_a_session_and_a_process_group_of_the_sandbox() {
    // /proc/self/stat of sh itself (`read` is a builtin): pid (comm) state ppid pgrp session tty_nr.
    let run = sh_ok(&[], "read -r stat < /proc/self/stat; echo $stat");
    let fields: Vec<&str> = run.stdout.split_whitespace().collect();
    assert_eq!(&fields[..7], ["2", "(sh)", "R", "1", "2", "1", "0"], "pid, ppid, pgrp, session, tty: {run:#?}");
}

/// In a terminal the command keeps the launcher's session (the terminal belongs to it) and
/// becomes the terminal's foreground group, so that an interactive shell has job control.
#[test]
fn an_interactive_command_is_the_terminals_foreground_group() {
    // `script` (util-linux) runs the launcher on a new pseudo-terminal.
    let inner = format!("{} run -- sh -c 'read -r stat < /proc/self/stat; echo $stat'", sandbox_bin());
    let output = Command::new("script").args(["-qec", &inner, "/dev/null"]).current_dir("/").stdin(Stdio::null()).output();
    let output = output.expect("this test needs script(1) from util-linux (Debian: bsdutils)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let fields: Vec<&str> = stdout.lines().next().unwrap_or_default().split_whitespace().collect();
    assert!(fields.len() > 7, "{stdout}");
    // pid (comm) state ppid pgrp session tty_nr tpgid
    assert_eq!(&fields[..5], ["2", "(sh)", "R", "1", "2"], "{stdout}");
    assert_ne!(fields[6], "0", "the terminal is the command's controlling terminal: {stdout}");
    assert_eq!(fields[7], "2", "the command's group is the terminal's foreground: {stdout}");
}

/// `kill(0, ..)` in the sandbox signals the command's own group, never the group the launcher
/// was started in: a witness process in that group must survive.
#[test]
fn a_signal_to_the_own_process_group_stays_inside() {
    use std::os::unix::process::CommandExt;
    let mut witness = Command::new("sleep").arg("60").process_group(0).spawn().unwrap();
    let group = witness.id() as i32;
    let status = Command::new(sandbox_bin())
        .args(["run", "--", "sh", "-c", "kill -TERM 0; sleep 5"])
        .current_dir("/")
        .process_group(group)
        .stdin(Stdio::null())
        .output()
        .unwrap()
        .status;
    let alive = witness.try_wait().unwrap().is_none();
    let _ = witness.kill();
    let _ = witness.wait();
    assert!(alive, "the launcher's process group got the sandbox's SIGTERM");
    assert_eq!(status.code(), Some(128 + libc::SIGTERM), "the command itself is killed by it: {status:?}");
}

/// Directories named `name` anywhere below /sys/fs/cgroup (every hierarchy, the freezer's too).
fn cgroup_dirs_named(name: &std::ffi::OsStr) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![PathBuf::from("/sys/fs/cgroup")];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                if entry.file_name() == name {
                    found.push(entry.path());
                }
                pending.push(entry.path());
            }
        }
    }
    found
}

/// At its timeout a run lists, before anything is killed, every process still running (pid
/// inside, state, wait channel, system call, age, threads, command line): in the JSON as
/// `processes` and on stderr under the summary. The cgroup it was frozen in is gone afterwards.
#[test]
fn a_timed_out_run_lists_what_was_still_running() {
    // The shell waits until both sleeps have exec'd and sleep (a loaded, emulated machine can
    // take a second for that), then sleeps itself in `wait` until the timeout fires.
    const SCRIPT: &str = r#"sleep 101 & a=$!; sleep 102 & b=$!; for p in $a $b; do until read -r s < /proc/$p/stat && case $s in *"(sleep) S"*) true;; *) false;; esac; do :; done; done; wait"#;
    let run = sandbox(&["--timeout", "2s", "--", "sh", "-c", SCRIPT]);
    assert_eq!(run.code, Some(137), "{run:#?}");
    let processes = run.json["processes"].as_array().unwrap_or_else(|| panic!("{run:#?}"));
    let find = |command: &str| processes.iter().find(|p| p["command"] == command).unwrap_or_else(|| panic!("{command} in {processes:?}"));
    let shell = find(&format!("sh -c {SCRIPT}"));
    assert_eq!((shell["pid"].as_u64(), shell["threads"].as_u64()), (Some(2), Some(1)), "{shell}");
    for command in ["sleep 101", "sleep 102"] {
        let sleep = find(command);
        assert_eq!(sleep["state"], "S", "{sleep}");
        assert_eq!(sleep["syscall"].as_u64(), Some(libc::SYS_clock_nanosleep as u64), "{sleep}");
        assert!(sleep["wchan"].as_str().is_some_and(|w| w.contains("sleep")), "{sleep}");
        // Started after `cat`, and ended by the 2 s timeout (a slow, emulated machine starts
        // them late).
        assert!((100..5000).contains(&sleep["elapsed_ms"].as_u64().unwrap()), "{sleep}");
        assert!(sleep["pid"].as_u64().unwrap() > 2 && sleep["host_pid"] != sleep["pid"], "{sleep}");
    }
    assert_eq!(processes.len(), 3, "the init is not listed: {processes:?}");
    let listed = run.stderr.split_once("sandbox: still running when the timeout fired:\n").map(|(_, list)| list);
    let listed = listed.unwrap_or_else(|| panic!("no list under the summary: {run:#?}"));
    assert!(listed.lines().any(|l| l.starts_with("  pid 2 S") && l.ends_with(&format!(": sh -c {SCRIPT}"))), "{listed}");
    assert!(listed.lines().any(|l| l.contains(" S in ") && l.ends_with(": sleep 101")), "{listed}");
    // Frozen where the run had a cgroup (root here): its freezer directory (v1) is gone too.
    let dirs = json_cgroup_dirs(&run);
    assert!(!dirs.is_empty(), "{run:#?}");
    let name = dirs[0].file_name().unwrap();
    let left = cgroup_dirs_named(name);
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[test]
fn init_reaps_orphans() {
    // The subshell exits at once; its `sleep` is orphaned and re-parented to PID 1, which must
    // reap it when it ends. A zombie would show state Z.
    let run = sh_ok(&[], "(sleep 0.2 &); sleep 1; grep -h '^State:' /proc/[0-9]*/status | grep -c Z || true");
    assert_eq!(run.stdout.trim(), "0", "zombies left: {run:#?}");
}

#[test]
fn signals_to_the_launcher_reach_the_command() {
    for (signal, name) in [(libc::SIGTERM, "TERM"), (libc::SIGINT, "INT"), (libc::SIGHUP, "HUP"), (libc::SIGQUIT, "QUIT")] {
        let script = format!("trap 'echo got-{name}; exit 42' {name}; echo ready; while :; do sleep 0.05; done");
        let mut child = KillOnDrop(
            Command::new(sandbox_bin())
                .args(["run", "--timeout", "60s", "--", "sh", "-c", &script])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap(),
        );
        let mut stdout = BufReader::new(child.0.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        assert_eq!(line, "ready\n");
        // Signal the launcher process only, as a CI runner or `kill PID` would.
        // SAFETY: test code; kill(2) of our own, not yet reaped, child.
        assert_eq!(unsafe { libc::kill(child.0.id() as i32, signal) }, 0);
        let status = child.0.wait().unwrap();
        let mut rest = String::new();
        std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
        assert_eq!(rest, format!("got-{name}\n"));
        assert_eq!(status.code(), Some(42), "SIG{name}");
    }
}

// ---------------------------------------------------------------- 3. mounts

#[test]
fn tmp_is_a_private_tmpfs_and_proc_is_fresh() {
    let marker = unique("tmpfile");
    let run = sh_ok(
        &[],
        &format!("stat -f -c %T /tmp; ls -A /tmp | wc -l; echo x > /tmp/{marker}; awk '$5==\"/proc\"{{t=$9}} END{{print t}}' /proc/self/mountinfo"),
    );
    assert_eq!(run.stdout, "tmpfs\n0\nproc\n");
    assert!(!Path::new("/tmp").join(&marker).exists(), "a file written to the sandbox's /tmp reached the host");
}

#[test]
fn tmpfs_mounts_take_a_size() {
    let run = sandbox(&["--tmpfs", "/tmp:1M", "--", "sh", "-c", "dd if=/dev/zero of=/tmp/f bs=1k count=2048 2>&1; exit 0"]);
    assert!(run.stdout.contains("No space left on device"), "{run:#?}");
    let run = sh_ok(&["--tmpfs", "/tmp/deep/er:64k"], "stat -f -c %T /tmp/deep/er; df -k /tmp/deep/er | tail -1");
    assert!(run.stdout.starts_with("tmpfs\n"), "{run:#?}");
    assert!(run.stdout.contains(" 64 "), "size 64k: {run:#?}");
}

#[test]
fn bind_mounts_are_visible_and_ro_is_enforced() {
    let dir = scratch().join(unique("bind"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("hello"), "from the host\n").unwrap();
    let spec_ro = format!("{}:/tmp/data:ro", dir.display());
    let run = sandbox(&["--bind", &spec_ro, "--", "sh", "-c", "cat /tmp/data/hello; echo x > /tmp/data/new"]);
    assert_ne!(run.code, Some(0));
    assert!(run.stdout.contains("from the host"), "{run:#?}");
    assert!(run.stderr.contains("Read-only file system"), "{run:#?}");
    let spec_rw = format!("{}:/tmp/data", dir.display());
    sh_ok(&["--bind", &spec_rw], "echo written > /tmp/data/new");
    assert_eq!(fs::read_to_string(dir.join("new")).unwrap(), "written\n");
    fs::remove_dir_all(&dir).unwrap();
}

/// `--fs ro`: a write to a host mount fails with EROFS and leaves the host as it was; the
/// sandbox's tmpfs, `/dev`, a `--writable` path and a read-write bind stay writable.
#[test]
fn read_only_file_systems_refuse_writes_but_where_asked() {
    // Below /var/tmp, not the scratch directory: a checkout below /tmp is hidden inside (the
    // sandbox's own /tmp), where a write would fail for that reason instead.
    let dir = Path::new("/var/tmp").join(unique("ro"));
    let bound = Path::new("/var/tmp").join(unique("ro-bind"));
    fs::create_dir_all(&dir).unwrap();
    fs::create_dir_all(&bound).unwrap();
    let (d, b) = (dir.display(), bound.display());

    let run = sandbox(&["--fs", "ro", "--", "sh", "-c", &format!("echo x > {d}/new; echo x > /etc/sandbox-ro-test")]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    assert_eq!(run.stderr.matches("Read-only file system").count(), 2, "{run:#?}");
    assert!(!dir.join("new").exists() && !Path::new("/etc/sandbox-ro-test").exists());

    // Every mount but the API file systems and the sandbox's /tmp is read-only inside.
    let table = sh_ok(&["--fs", "ro"], "echo ok > /tmp/x && echo ok > /dev/null && cat /proc/self/mountinfo").stdout;
    let writable: Vec<&str> = table
        .lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            (fields[5].split(',').any(|o| o == "rw")).then_some(fields[4])
        })
        .filter(|point| !["/proc", "/sys", "/dev"].iter().any(|api| point.starts_with(api)))
        .collect();
    assert_eq!(writable, ["/tmp"], "{table}");

    let writable_arg = dir.display().to_string();
    let bind = format!("{b}:/mnt");
    let both = format!("echo w > {d}/new && echo b > /mnt/new");
    sh_ok(&["--fs", "ro", "--writable", &writable_arg, "--bind", &bind], &both);
    assert_eq!(fs::read_to_string(dir.join("new")).unwrap(), "w\n");
    assert_eq!(fs::read_to_string(bound.join("new")).unwrap(), "b\n");

    // With --rootfs the root directory given is what becomes read-only; /dev and /tmp are the
    // sandbox's own.
    let root = busybox_rootfs();
    let script = "touch /etc/new; touch /tmp/new && echo > /dev/shm/new && echo inside-ok";
    let run = sandbox(&["--rootfs", root.to_str().unwrap(), "--fs", "ro", "--", "/bin/sh", "-c", script]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stderr.contains("Read-only file system") && run.stdout.contains("inside-ok"), "{run:#?}");
    assert!(!root.join("etc/new").exists());

    // SANDBOX_FS=ro makes every run that asks for nothing else read-only.
    let env_run = Command::new(sandbox_bin())
        .args(["run", "--", "sh", "-c", &format!("echo x > {d}/from-env")])
        .env("SANDBOX_FS", "ro")
        .current_dir("/")
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&env_run.stderr).contains("Read-only file system"), "{env_run:?}");
    assert!(!dir.join("from-env").exists());
    fs::remove_dir_all(&dir).unwrap();
    fs::remove_dir_all(&bound).unwrap();
}

/// Bad `--fs`, `--writable`, overlay options and `SANDBOX_FS` values: exit 2 naming the problem,
/// nothing run.
#[test]
fn bad_file_system_options_are_usage_errors() {
    let here = scratch().display().to_string();
    for (args, env, message) in [
        (vec!["--fs", "overly"], None, "invalid value 'overly' for '--fs <MODE>'"),
        (vec!["--writable", &here], None, "needs --fs ro or --fs overlay (with --fs host every path is writable already)"),
        (vec!["--fs", "ro", "--writable", "/nonexistent/path"], None, "--writable path '/nonexistent/path' does not exist"),
        (vec!["--fs", "ro", "--writable", "/tmp/x"], None, "lies in the sandbox's tmpfs /tmp"),
        (vec!["--fs", "overlay", "--fs-size", "12Q"], None, "invalid value '12Q' for '--fs-size <SIZE>': invalid size '12Q': unknown unit; write a whole number with an optional unit K, M, G or T"),
        (vec!["--fs", "overlay", "--host-writes", "maybe"], None, "invalid value 'maybe' for '--host-writes <ACTION>'\n  [possible values: discard, fail]"),
        (vec!["--fs-size", "1M"], None, "--fs-size needs --fs overlay: only an overlay run has a layer and a list of changes"),
        (vec!["--fs", "ro", "--host-writes", "fail"], None, "--host-writes fail needs --fs overlay"),
        (vec!["--keep-changes", "/x"], None, "--keep-changes needs --fs overlay"),
        (vec![], Some("overly"), "SANDBOX_FS='overly' is not understood: write host, ro or overlay"),
    ] {
        let mut command = Command::new(sandbox_bin());
        command.arg("run").args(&args).args(["--", "touch", "/tmp/ran"]).current_dir("/");
        if let Some(value) = env {
            command.env("SANDBOX_FS", value);
        }
        let output = command.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
}

#[test]
fn a_working_directory_below_tmp_stays_reachable() {
    // A project checked out under /tmp (as many CI systems do): the sandbox's own /tmp must not
    // hide the directory the command runs in.
    let dir = PathBuf::from("/tmp").join(unique("cwd"));
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join("file"), "here\n").unwrap();
    let output = Command::new(sandbox_bin())
        .args(["run", "--", "sh", "-c", "pwd; cat file; cd \"$PWD\" && echo cd-ok; stat -f -c %T /tmp"])
        .current_dir(&dir)
        .output()
        .unwrap();
    fs::remove_dir_all(&dir).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout, format!("{}\nhere\ncd-ok\ntmpfs\n", dir.display()), "{output:?}");
}

#[test]
fn hostname_is_set_inside_only() {
    let host = fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(sh_ok(&[], "hostname").stdout, "sandbox\n");
    assert_eq!(sh_ok(&["--hostname", "test-box"], "hostname").stdout, "test-box\n");
    assert_eq!(fs::read_to_string("/proc/sys/kernel/hostname").unwrap(), host);
}

/// A `--rootfs` sandbox's `/dev` has what programs expect besides the device nodes: its own
/// pseudo-terminals (a new devpts instance, `/dev/ptmx` into it) and `/dev/shm` for POSIX
/// shared memory.
#[test]
fn a_rootfs_dev_has_its_own_pseudo_terminals_and_shared_memory() {
    let root = busybox_rootfs();
    let script = "exec 3<>/dev/ptmx && ls /dev/pts; echo shared > /dev/shm/x && cat /dev/shm/x; \
                  awk '$5 == \"/dev/pts\" || $5 == \"/dev/shm\" {print $5, $9}' /proc/self/mountinfo";
    let run = sandbox(&["--rootfs", root.to_str().unwrap(), "--", "/bin/sh", "-c", script]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    // The master just opened is the instance's first terminal, 0: nothing of the host's shows.
    assert_eq!(lines, ["0", "ptmx", "shared", "/dev/pts devpts", "/dev/shm tmpfs"], "{run:#?}");
}

/// A `TMPDIR` below `/tmp` (`/tmp/user/1000` on some systems) exists inside too, where `/tmp` is
/// a new, empty tmpfs: programs that create their temporary files there work as outside.
#[test]
fn a_tmpdir_below_tmp_exists_inside() {
    let tmpdir = format!("/tmp/{}/1000", unique("tmpdir"));
    let output = Command::new(sandbox_bin())
        .args(["run", "--", "sh", "-c", "test -d \"$TMPDIR\" && touch \"$TMPDIR/file\" && echo made"])
        .env("TMPDIR", &tmpdir)
        .current_dir("/")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "made\n", "{}", String::from_utf8_lossy(&output.stderr));
    assert!(!Path::new(&tmpdir).exists(), "nothing is made on the host");
}

#[test]
fn rootfs_switches_root_with_pivot_root() {
    let root = busybox_rootfs();
    let run = sandbox(&[
        "--rootfs",
        root.to_str().unwrap(),
        "--",
        "/bin/sh",
        "-c",
        "ls /; cat /etc/marker; echo null > /dev/null && echo devnull-ok; awk '{print $5}' /proc/self/mountinfo; \
         ls /proc | grep -c '^[0-9]'",
    ]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines[..5], ["bin", "dev", "etc", "proc", "tmp"], "{run:#?}");
    assert_eq!(lines[5], "rootfs");
    assert_eq!(lines[6], "devnull-ok");
    // Only the new root and what the sandbox mounted on it; nothing of the host's.
    let mount_points: Vec<&str> = lines[7..lines.len() - 1].to_vec();
    assert_eq!(mount_points[0], "/", "{mount_points:?}");
    for point in &mount_points {
        assert!(
            *point == "/" || ["/proc", "/dev", "/tmp"].iter().any(|p| point.starts_with(p)),
            "host mount {point} visible inside the rootfs: {mount_points:?}"
        );
    }
    // The host's root is not reachable from the sandbox's /proc either: the init's is the new
    // one (as root, with the machine's root: a contained command may not look at the init).
    let script = "ls /proc/1/root/; cat /proc/1/root/etc/marker";
    let run = sandbox(&["--privileged", "--rootfs", root.to_str().unwrap(), "--", "/bin/sh", "-c", script]);
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.ends_with("rootfs\n"), "{run:#?}");
    // The rootfs directory is left as it was (no put_old directory or mount point created).
    let mut entries: Vec<String> = fs::read_dir(&root).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    entries.sort();
    assert_eq!(entries, ["bin", "dev", "etc", "proc", "tmp"]);
    fs::remove_dir_all(&root).unwrap();
}

#[test]
fn an_inherited_descriptor_does_not_lead_out_of_the_rootfs() {
    // The launcher inherits fd 3 open on the host's /; the command must not.
    let root = busybox_rootfs();
    let sandbox = sandbox_bin();
    let script = format!(
        "exec 3</ && exec {sandbox} run --rootfs {} -- /bin/sh -c \
         'test -e /proc/self/fd/3 && echo fd-3-inherited || echo fd-3-closed; cat /proc/self/fd/3/etc/hostname 2>/dev/null'",
        root.display()
    );
    let output = Command::new("sh").args(["-c", &script]).output().unwrap();
    fs::remove_dir_all(&root).unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout, "fd-3-closed\n", "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn mounts_do_not_propagate_to_a_host_whose_root_is_shared() {
    // A private "host" whose / is a shared mount, as on systemd machines: without making
    // everything private first, the sandbox's /proc and tmpfs mounts would appear out here.
    let sandbox = sandbox_bin();
    let script = format!(
        "mount --make-rshared / && cat /proc/self/mountinfo > \"$1\" && \
         {sandbox} run --tmpfs /mnt -- sh -c 'grep -c shared: /proc/self/mountinfo >/dev/null; true' && \
         cat /proc/self/mountinfo > \"$2\""
    );
    let before = scratch().join(unique("mi-before"));
    let after = scratch().join(unique("mi-after"));
    let status = Command::new("unshare")
        .args(["--mount", "--propagation", "unchanged", "sh", "-c", &script, "sh"])
        .arg(&before)
        .arg(&after)
        .status()
        .unwrap();
    assert!(status.success());
    let (before_text, after_text) = (fs::read_to_string(&before).unwrap(), fs::read_to_string(&after).unwrap());
    assert!(before_text.lines().next().unwrap().contains("shared:"), "the test's / is not shared");
    assert_eq!(before_text, after_text, "sandbox mounts propagated to a shared host root");
    fs::remove_file(before).unwrap();
    fs::remove_file(after).unwrap();
}

// ---------------------------------------------------------------- 4. cgroups and 5. outcome

#[test]
fn fork_bomb_is_contained_and_reported() {
    let run = sandbox(&[
        "--pids",
        "20",
        "--timeout",
        "3s",
        "--",
        "bash",
        "-c",
        "exec 2>/dev/null; :(){ :|:& };:; sleep 10",
    ]);
    assert!(json_u64(&run, "pids_limit_hits") > 0, "{run:#?}");
    if let Some(peak) = common::peak_pids(run.json["peak_pids"].as_u64()) {
        assert!(peak <= 20, "peak pids {peak} above the limit");
    }
    assert_eq!(run.json["timed_out"], true);
    assert_eq!(run.code, Some(137));
    assert!(run.stderr.contains("pids-limit hits"), "{run:#?}");
    cgroup_dirs_are_gone(&run);
}

#[test]
fn memory_hog_is_oom_killed_and_reported() {
    // dd allocates its 400 MiB block and fills it from /dev/zero.
    let run = sandbox(&[
        "--mem",
        "100M",
        "--",
        "sh",
        "-c",
        "exec dd if=/dev/zero of=/dev/null bs=400M count=1 2>/dev/null",
    ]);
    assert!(json_u64(&run, "oom_kills") >= 1, "{run:#?}");
    assert_eq!(run.json["signal"], 9);
    assert_eq!(run.json["ending"], "oom_killed");
    assert_eq!(run.code, Some(137));
    let peak = json_u64(&run, "peak_memory_bytes");
    assert!(peak <= 100 << 20 && peak > 50 << 20, "peak {peak}");
    assert!(run.stderr.contains("killed by the OOM killer"), "{run:#?}");
    cgroup_dirs_are_gone(&run);
}

/// Memory that no process's size shows (a tmpfs file) past the limit: the OOM killer takes
/// the writer, never the sandbox's init, which may share the launcher's memory (the kernel kills
/// every process of a victim's memory): the launcher lives to report the kill.
#[test]
fn filling_a_tmpfs_past_the_memory_limit_kills_the_writer_and_is_reported() {
    let run = sandbox(&["--mem", "32M", "--", "sh", "-c", "dd if=/dev/zero of=/tmp/big bs=1M count=96 2>/dev/null; echo \"dd=$?\""]);
    // The launcher lived to report: the JSON is there. The killer took dd or its shell, both
    // the command's (before, it took the init, and with it the launcher).
    assert!(json_u64(&run, "oom_kills") >= 1, "{run:#?}");
    let killed = (run.code == Some(0) && run.stdout == "dd=137\n") || (run.code == Some(137) && run.json["ending"] == "oom_killed");
    assert!(killed, "{run:#?}");
}

/// A script whose background process burns 0.3 s of CPU in its shell (its own and its
/// children's time, read from /proc/self/stat with builtins only: no process is forked), then
/// sleeps on; the command waits for the burn, then goes on with `then`.
fn burn_in_background_then(then: &str) -> String {
    "burn() { while :; do read -r _ _ _ _ _ _ _ _ _ _ _ _ _ u s cu cs _ < /proc/self/stat; \
     [ $((u + s + cu + cs)) -ge $(($(getconf CLK_TCK) * 3 / 10)) ] && break; done; : > /tmp/burnt; }; \
     (burn; exec sleep 1000) & until [ -e /tmp/burnt ]; do sleep 0.05; done"
        .to_string()
        + then
}

#[test]
fn cpu_time_of_processes_killed_at_the_end_is_counted() {
    // The command ends once a background process has burnt 0.3 s of CPU; that process is still
    // there (sleeping) and is killed when the sandbox ends. Its CPU time must be in the report:
    // on v1 the init's rusage is the source, which misses what the kernel reaps itself.
    let run = sh_ok(&[], &burn_in_background_then(""));
    assert!(json_u64(&run, "cpu_usec") >= 300_000, "cpu time of the killed process missing: {run:#?}");
    cgroup_dirs_are_gone(&run);
}

#[test]
fn cpu_time_of_processes_killed_at_a_timeout_is_counted() {
    let run = sandbox(&["--timeout", "3s", "--", "sh", "-c", &burn_in_background_then("; exec sleep 1000")]);
    assert_eq!(run.json["timed_out"], true, "{run:#?}");
    assert_eq!(run.code, Some(137), "killed at the timeout: {run:#?}");
    assert!(json_u64(&run, "cpu_usec") >= 300_000, "cpu time of the processes killed at the timeout missing: {run:#?}");
    cgroup_dirs_are_gone(&run);
}

#[test]
fn cpu_quota_holds_a_busy_loop_near_its_share() {
    let run = sandbox(&["--cpu", "0.3", "--timeout", "3s", "--", "sh", "-c", "while :; do :; done"]);
    assert_eq!(run.json["timed_out"], true, "{run:#?}");
    let share = json_u64(&run, "cpu_usec") as f64 / (json_u64(&run, "wall_ms") as f64 * 1000.0);
    // The quota caps the share at 0.3 (one period of slack); other tests may slow it down.
    assert!((0.15..=0.36).contains(&share), "cpu share {share:.3} under --cpu 0.3: {run:#?}");
}

/// Below 0.01 cores the kernel's smallest quota (1 ms) needs a longer period than 100 ms.
#[test]
fn tiny_cpu_shares_are_written_exactly() {
    let unified = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    // As the run's cgroup and the delegated copy below it hold the quota: read by the command
    // inside for a share it can start under, from the host for a tiny one (half a percent of a
    // CPU would take the command's start minutes in the emulated cgroup-v2 VM).
    let quota = |dir: &Path| match unified {
        true => fs::read_to_string(dir.join("cpu.max")).unwrap().trim().to_string(),
        false => ["cpu.cfs_quota_us", "cpu.cfs_period_us"].map(|f| fs::read_to_string(dir.join(f)).unwrap().trim().to_string()).join(" "),
    };
    let script = if unified {
        "cat /sys/fs/cgroup$(cut -d: -f3 /proc/self/cgroup)/cpu.max"
    } else {
        "d=/sys/fs/cgroup/cpu$(grep -E '^[0-9]+:([^:]*,)?cpu(,[^:]*)?:' /proc/self/cgroup | cut -d: -f3); \
         echo $(cat $d/cpu.cfs_quota_us) $(cat $d/cpu.cfs_period_us)"
    };
    // Contained, the command reads the copy in its delegated cgroup.
    let run = sh_ok(&["--cpu", "0.3"], script);
    assert_eq!(run.stdout.trim(), "30000 100000", "--cpu 0.3: {run:#?}");

    let json = scratch().join(unique("json"));
    let mut launcher = KillOnDrop(
        Command::new(sandbox_bin())
            .args(["run", "--json"])
            .arg(&json)
            .args(["--cpu", "0.005", "--timeout", "2s", "--", "sleep", "600"])
            .current_dir("/")
            .stdout(Stdio::null())
            .spawn()
            .unwrap(),
    );
    // The init is in its run's cgroup once the limits are written (v2: created there; v1: it
    // joins after them).
    let text = init_cgroup_text(launcher.0.id());
    let cpu_dirs: Vec<PathBuf> = run_cgroup_dirs(&text)
        .into_iter()
        .filter(|dir| if unified { dir.join("cpu.max").exists() } else { dir.join("cpu.cfs_quota_us").exists() })
        .collect();
    assert_eq!(cpu_dirs.len(), 1, "one run cgroup with the cpu controller in {text}");
    let (run_dir, delegated) = (&cpu_dirs[0], cpu_dirs[0].join("delegated"));
    for dir in [run_dir, &delegated] {
        assert_eq!(quota(dir), "1000 200000", "--cpu 0.005 in {}", dir.display());
    }
    // Lifted again from the host, so that the run's end (its timeout: killing, tearing down,
    // reaping) does not crawl at half a percent of an emulated CPU.
    let (file, value) = if unified { ("cpu.max", "max") } else { ("cpu.cfs_quota_us", "-1") };
    for dir in [&delegated, run_dir] {
        fs::write(dir.join(file), value).unwrap();
    }
    let status = launcher.0.wait().unwrap();
    let outcome: Value = serde_json::from_str(&fs::read_to_string(&json).unwrap()).unwrap_or_else(|e| panic!("{e}: {status}"));
    let _ = fs::remove_file(&json);
    assert_eq!(outcome["timed_out"], true, "{outcome}");
    assert!(!run_dir.exists(), "{} is left behind", run_dir.display());
}

/// By default the command runs with no_new_privs: a set-user-ID-root program run by an
/// unprivileged user inside does not make it root. `--allow-new-privs` restores the usual rules.
#[test]
fn set_user_id_programs_grant_nothing_unless_allowed() {
    let dir = scratch().join(unique("suid"));
    fs::create_dir_all(&dir).unwrap();
    let id = dir.join("id");
    fs::copy("/usr/bin/id", &id).unwrap();
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&id, fs::Permissions::from_mode(0o4755)).unwrap();
    let script = format!(
        "grep NoNewPrivs /proc/self/status | tr -d '\\t'; setpriv --reuid=65534 --regid=65534 --clear-groups {} -u",
        id.display()
    );
    // Bound in: a checkout below /tmp would be hidden by the sandbox's own /tmp.
    let bind = format!("{}:{}", dir.display(), dir.display());
    let default = sh_ok(&["--bind", &bind], &script);
    assert_eq!(default.stdout, "NoNewPrivs:1\n65534\n", "{default:#?}");
    let allowed = sh_ok(&["--bind", &bind, "--allow-new-privs"], &script);
    assert_eq!(allowed.stdout, "NoNewPrivs:0\n0\n", "{allowed:#?}");
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn outcome_json_and_exit_codes() {
    let run = sandbox(&["--", "sh", "-c", "exit 7"]);
    assert_eq!(run.code, Some(7));
    assert_eq!(run.json["exit_code"], 7);
    assert_eq!(run.json["signal"], Value::Null);
    let run = sandbox(&["--", "sh", "-c", "kill -USR1 $$"]);
    assert_eq!(run.code, Some(128 + libc::SIGUSR1));
    assert_eq!(run.json["signal"], libc::SIGUSR1);
    let version = json_u64(&run, "cgroup_version");
    let expected = if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() { 2 } else { 1 };
    assert_eq!(version, expected);
    for key in ["oom_kills", "pids_limit_hits", "timed_out", "peak_memory_bytes", "peak_pids", "cpu_usec", "wall_ms"] {
        assert!(run.json.get(key).is_some(), "{key} missing: {:#}", run.json);
    }
    assert!(run.stderr.starts_with("sandbox: killed by SIGUSR1 · wall "), "{run:#?}");
    // --json - prints after the command's own output.
    let output = Command::new(sandbox_bin()).args(["run", "--json", "-", "--", "echo", "hello"]).output().unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let (first, json) = stdout.split_once('\n').unwrap();
    assert_eq!(first, "hello");
    assert_eq!(serde_json::from_str::<Value>(json).unwrap()["exit_code"], 0);
}

#[test]
fn cgroup_parent_places_the_run() {
    let parent = unique("parent");
    let run = sh_ok(&["--cgroup-parent", &parent], "true");
    let dirs = cgroup_dirs_are_gone(&run);
    // The limits' directories (v1: memory and pids; v2: the one) go below the parent; a
    // contained v1 run's others (README, "Contained as root") where runs go without one, so
    // that no parent is made for them.
    let v2 = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    let limits = |dir: &&PathBuf| v2 || ["/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids"].iter().any(|h| dir.starts_with(h));
    let limit_dirs: Vec<&PathBuf> = dirs.iter().filter(limits).collect();
    assert!(!limit_dirs.is_empty(), "{dirs:?}");
    for dir in limit_dirs {
        let parent_dir = dir.parent().unwrap();
        assert!(parent_dir.ends_with(&parent), "{} not under {parent}", dir.display());
        fs::remove_dir(parent_dir).unwrap();
    }
    let left: Vec<PathBuf> = mountinfo()
        .lines()
        .filter(|line| line.contains(" - cgroup"))
        .filter_map(|line| line.split(' ').nth(4))
        .map(|mount| Path::new(mount).join(&parent))
        .filter(|dir| dir.exists())
        .collect();
    assert_eq!(left, Vec::<PathBuf>::new(), "parents made and left behind");
}

/// Every hierarchy that carries a limit has the run's directory (on v1 the init joins its
/// cgroups itself, through descriptors opened before the clone, also inside a `--rootfs` whose
/// root no longer shows `/sys/fs/cgroup` by the time the init joins: a failed join fails the
/// run); the run's directories are gone afterwards.
#[test]
fn the_command_runs_in_its_cgroup_in_every_limited_hierarchy() {
    let root = busybox_rootfs();
    let v1 = !Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    for (opts, v1_controllers) in [
        (vec!["--pids", "20", "--mem", "100M"], vec!["memory", "pids"]),
        (vec!["--pids", "20", "--mem", "100M", "--cpu", "0.5", "--rootfs", root.to_str().unwrap()], vec!["cpu", "memory", "pids"]),
    ] {
        let run = sh_ok(&opts, "true");
        let dirs = cgroup_dirs_are_gone(&run);
        let names: std::collections::BTreeSet<_> = dirs.iter().map(|d| d.file_name().unwrap().to_owned()).collect();
        assert_eq!(names.len(), 1, "one run, one name in every hierarchy: {dirs:?}");
        if v1 {
            // /sys/fs/cgroup/<controllers>/sandbox/<run>; cpu may be co-mounted with cpuacct.
            let mut controllers: Vec<String> = dirs
                .iter()
                .flat_map(|d| d.strip_prefix("/sys/fs/cgroup").unwrap().iter().next().unwrap().to_str().unwrap().split(','))
                .filter(|c| v1_controllers.contains(c))
                .map(str::to_string)
                .collect();
            controllers.sort();
            assert_eq!(controllers, v1_controllers, "{opts:?}: {}", run.stdout);
        } else {
            assert_eq!(dirs.len(), 1, "{opts:?}: {}", run.stdout);
        }
    }
}

// ---------------------------------------------------------------- 6. teardown

/// A launcher started by a test, SIGKILLed when the test ends however it ends.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn timeout_kills_the_whole_process_tree() {
    let marker = format!("1000.{}", std::process::id());
    let script = format!("sleep {marker} & (sleep {marker} &); sleep {marker}");
    // Long enough for the script to print its cgroup first, also on a slow (emulated) machine.
    let run = sandbox(&["--timeout", "2s", "--", "sh", "-c", &script]);
    assert_eq!(run.json["timed_out"], true, "{run:#?}");
    assert!(json_u64(&run, "wall_ms") < 8000);
    assert!(run.stderr.contains("timed out after 2.0 s"), "{run:#?}");
    assert_eq!(sleeps_with(&marker), Vec::<u32>::new(), "processes survived the timeout");
    cgroup_dirs_are_gone(&run);
}

#[test]
fn killing_the_launcher_kills_the_sandbox_and_the_next_start_cleans_up() {
    let marker = format!("1001.{}", std::process::id());
    // A runs directory of this test's own: any launcher's first start in a directory removes
    // the stale runs there, and the other tests' launchers would race the next start below.
    let parent = unique("killed");
    let mut launcher = KillOnDrop(
        Command::new(sandbox_bin())
            .args(["run", "--cgroup-parent", &parent, "--"])
            .args(["sh", "-c", &format!("sleep {marker} & sleep {marker}")])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let dirs = run_cgroup_dirs(&init_cgroup_text(launcher.0.id()));
    wait_until("the sandboxed sleeps started", Duration::from_secs(10), || sleeps_with(&marker).len() == 2);
    launcher.0.kill().unwrap(); // SIGKILL: no clean-up code of the launcher runs
    launcher.0.wait().unwrap();
    wait_until("the sandboxed processes died with their launcher", Duration::from_secs(5), || {
        sleeps_with(&marker).is_empty()
    });
    assert!(dirs.iter().all(|d| d.exists()), "the killed launcher's cgroups are expected to stay until the next start");
    // The next launcher (same PID namespace) removes them once its own run has started.
    sh_ok(&["--cgroup-parent", &parent], "true");
    for dir in dirs {
        assert!(!dir.exists(), "stale {} was not removed by the next start", dir.display());
    }
    for mount in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup"] {
        let _ = fs::remove_dir(Path::new(mount).join(&parent));
    }
}

// ---------------------------------------------------------------- CLI errors

#[test]
fn bad_input_is_refused_before_anything_is_created() {
    let parent = unique("badinput");
    let cases: [(&[&str], &str); 8] = [
        (&["--mem", "100Q"], "invalid size '100Q'"),
        (&["--pids", "0"], "invalid pids limit 0"),
        (&["--pids", "-3"], "invalid pids limit '-3'"),
        (&["--timeout", "soon"], "invalid duration 'soon'"),
        (&["--cpu", "0"], "invalid cpu limit '0'"),
        (&["--rootfs", "/nonexistent/rootfs"], "--rootfs '/nonexistent/rootfs' does not exist"),
        (&["--bind", "/a:b"], "invalid --bind target path 'b'"),
        (&["--frobnicate"], "unexpected argument '--frobnicate'"),
    ];
    for (args, message) in cases {
        let output = Command::new(sandbox_bin())
            .arg("run")
            .args(["--cgroup-parent", &parent])
            .args(args)
            .args(["--", "true"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
    }
    for mount in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup"] {
        assert!(!Path::new(mount).join(&parent).exists(), "a cgroup was created for bad input");
    }
}

#[test]
fn a_command_that_cannot_be_executed_is_named() {
    let run = sandbox(&["--", "/nonexistent/program"]);
    assert_eq!(run.code, Some(127));
    assert!(run.stderr.contains("cannot execute '/nonexistent/program': ENOENT"), "{run:#?}");
    let not_executable = scratch().join(unique("noexec"));
    fs::write(&not_executable, "data").unwrap();
    // --bind: the scratch directory may lie below /tmp (a checkout under /tmp).
    let scratch_dir = scratch();
    let run = sandbox(&["--bind", scratch_dir.to_str().unwrap(), "--", not_executable.to_str().unwrap()]);
    fs::remove_file(&not_executable).unwrap();
    assert_eq!(run.code, Some(126));
    assert!(run.stderr.contains("EACCES"), "{run:#?}");
}


/// The launcher starts the init on another CPU while it makes the cgroup; the command (and a
/// command under an overlay, whose set-up is the longest) still gets all of the launcher's CPUs.
#[test]
fn the_command_runs_on_every_cpu_the_launcher_may_use() {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let cpus = status.lines().find_map(|line| line.strip_prefix("Cpus_allowed_list:")).unwrap().trim().to_string();
    for fs in ["host", "overlay"] {
        let run = sh_ok(&["--fs", fs], "grep Cpus_allowed_list /proc/self/status");
        assert_eq!(run.stdout.trim(), format!("Cpus_allowed_list:\t{cpus}"), "--fs {fs}: {run:#?}");
    }
}

#[test]
fn a_failed_setup_step_is_named_and_leaves_nothing() {
    // /nonexistent-mount-point is outside the sandbox's tmpfs, so it is not created: the bind
    // fails inside the sandbox, after the cgroup was made.
    let parent = unique("setupfail");
    let run = sandbox(&["--cgroup-parent", &parent, "--bind", "/etc:/nonexistent-mount-point", "--", "true"]);
    assert_eq!(run.code, Some(125), "{run:#?}");
    assert!(run.stderr.contains("bind-mounting /etc on /nonexistent-mount-point: ENOENT"), "{run:#?}");
    assert_eq!(run.json, Value::Null, "no outcome for a sandbox that never ran");
    for mount in ["/sys/fs/cgroup/pids", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup"] {
        let dir = Path::new(mount).join(&parent);
        if dir.exists() {
            let left: Vec<_> = fs::read_dir(&dir).unwrap().filter_map(|e| e.ok()).filter(|e| e.path().is_dir()).map(|e| e.path()).collect();
            assert!(left.is_empty(), "left behind after a failed set-up: {left:?}");
            fs::remove_dir(&dir).unwrap();
        }
    }
}

#[test]
fn check_reports_what_works_and_fails_with_the_fix() {
    let output = Command::new(sandbox_bin()).arg("check").output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{stdout}");
    for topic in ["cgroup layout: ", "pid namespace: can be created", "mount namespace: can be created", "user namespace: "] {
        assert!(stdout.contains(topic), "{topic} missing:\n{stdout}");
    }
    // Every file-system mode runs here (the VM's and this host's kernels allow overlays).
    assert!(stdout.contains("ok    fs: host, ro, overlay work\n"), "{stdout}");
    assert!(stdout.ends_with("sandbox run works here\n"), "{stdout}");

    let output = Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", sandbox_bin(), "check"])
        .output()
        .unwrap();
    // Without root: namespaces from a user namespace, limits weaker without a delegated cgroup.
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}");
    assert!(stdout.contains("ok    pid namespace: can be created"), "{stdout}");
    assert!(stdout.contains("warn  limits: no usable cgroup for uid 65534: --pids falls back to RLIMIT_NPROC"), "{stdout}");
    assert!(stdout.contains("--cgroup-parent"), "{stdout}");
}
