//! Tests as a crate's own suite has them: they fork, signal, open a pseudo-terminal, look at
//! their session and parent, write files and start threads. Two fail and one is ignored on
//! purpose, so that failures are compared too.

use std::io::{Read, Write};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

#[test]
fn a_child_process_runs_and_exits() {
    let status = Command::new("sh").args(["-c", "exit 7"]).status().unwrap();
    assert_eq!(status.code(), Some(7));
}

#[test]
fn a_pipeline_of_children_passes_data() {
    let output = Command::new("sh").args(["-c", "printf 'b\\na\\n' | sort"]).output().unwrap();
    assert_eq!(output.stdout, b"a\nb\n");
}

#[test]
fn a_signalled_child_reports_its_signal() {
    let mut child = Command::new("sleep").arg("30").spawn().unwrap();
    // SAFETY: plain system call on a child we own.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGTERM));
}

#[test]
fn the_own_process_group_can_be_signalled_with_a_handler() {
    // A group of its own, as a test that signals "its" processes makes one.
    let status = Command::new("sh")
        .args(["-c", "trap 'exit 3' USR1; kill -USR1 0; sleep 5"])
        .process_group(0)
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(3));
}

use std::os::unix::process::CommandExt;

#[test]
fn a_pseudo_terminal_echoes_what_is_written() {
    let (mut master, mut slave) = (0, 0);
    // SAFETY: openpty writes the two descriptors; null name, termios and winsize are allowed.
    let opened = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), std::ptr::null()) };
    assert_eq!(opened, 0, "openpty: {}", std::io::Error::last_os_error());
    // SAFETY: both descriptors were just opened and are owned here alone.
    let (mut master, mut slave) = unsafe {
        use std::os::fd::FromRawFd;
        (std::fs::File::from_raw_fd(master), std::fs::File::from_raw_fd(slave))
    };
    slave.write_all(b"hello\n").unwrap();
    let mut buffer = [0u8; 16];
    let n = master.read(&mut buffer).unwrap();
    assert_eq!(&buffer[..n], b"hello\r\n");
}

#[test]
fn the_session_and_process_group_exist() {
    // SAFETY: plain system calls without pointers.
    let (session, group, parent) = unsafe { (libc::getsid(0), libc::getpgrp(), libc::getppid()) };
    assert!(session > 0, "getsid: {session}");
    assert!(group > 0, "getpgrp: {group}");
    assert!(parent > 0, "getppid: {parent}");
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(session, 0) }, 0, "the session leader {session} exists");
}

#[test]
fn the_own_executable_and_directory_are_reachable() {
    let exe = std::env::current_exe().unwrap();
    assert!(exe.exists(), "{}", exe.display());
    assert!(std::env::current_dir().unwrap().join("Cargo.toml").exists());
    assert!(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/behaviour.rs").exists());
}

#[test]
fn temporary_files_can_be_written_and_read() {
    let path = std::env::temp_dir().join(format!("third-party-{}", std::process::id()));
    std::fs::write(&path, b"data").unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"data");
    std::fs::remove_file(&path).unwrap();
}

#[test]
fn devices_are_there() {
    std::fs::OpenOptions::new().write(true).open("/dev/null").unwrap().write_all(b"x").unwrap();
    let mut random = [0u8; 8];
    std::fs::File::open("/dev/urandom").unwrap().read_exact(&mut random).unwrap();
}

#[test]
fn the_environment_is_passed_on() {
    assert!(std::env::var_os("PATH").is_some());
    assert!(std::env::var_os("CARGO_MANIFEST_DIR").is_some() || std::env::var_os("NEXTEST").is_some());
}

#[test]
fn threads_run_side_by_side() {
    let handles: Vec<_> = (0..8).map(|i| std::thread::spawn(move || i * 2)).collect();
    let sum: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, 56);
}

#[test]
fn stdin_is_not_a_terminal_to_read_from() {
    let output = Command::new("sh").args(["-c", "read line; echo \"[$line]\""]).stdin(Stdio::null()).output().unwrap();
    assert_eq!(output.stdout, b"[]\n");
}

#[test]
#[should_panic(expected = "out of range")]
fn a_should_panic_test_panics() {
    let values = [1, 2, 3];
    let index = values.len() + std::hint::black_box(0);
    if index >= values.len() {
        panic!("index {index} out of range");
    }
}

#[test]
fn fails_on_purpose_with_an_assertion() {
    assert_eq!(1 + 1, 3, "this test fails on purpose");
}

#[test]
fn fails_on_purpose_by_using_too_much_memory() {
    // Fails outside by its own check; under the recipe's 64 MiB rule the OOM killer ends it.
    let block = vec![1u8; 96 << 20];
    assert!(block.len() < 64 << 20, "allocated {} MiB: more than this test may", block.len() >> 20);
}

#[test]
#[ignore = "ignored on purpose"]
fn ignored_on_purpose() {
    panic!("never runs");
}
