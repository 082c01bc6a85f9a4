//! Real overlays, mounted in a forked child's own mount namespace: the child makes the host
//! side, mounts the overlay, does what a command would through it, reads the changes and sends
//! them back as JSON; the parent checks them.

use std::fs;
use std::io::Read;
use std::os::fd::AsFd;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::Path;

use nix::mount::{mount, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::stat::{utimensat, Mode, UtimensatFlags};
use nix::sys::time::TimeSpec;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::ForkResult;
use serde::de::DeserializeOwned;
use serde::Serialize;

use super::*;

/// How the child mounts its overlay.
#[derive(Clone, Copy, PartialEq)]
enum Mounter {
    /// Root in the initial user namespace: `trusted.overlay.*`, renamed directories redirected.
    Root,
    /// Root of a user namespace of its own: `userxattr`.
    UserNamespace,
}

fn assert_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the fs_changes tests mount real overlays and tmpfs: run them as root (CI does)"
    );
}

/// In a forked child with a mount namespace of its own: a tmpfs holding the host side (`lower`,
/// filled by `make_host`), a tmpfs layer with the overlay's upper and work directories, the
/// overlay of both at `merged`, on which `command` runs; then `inspect` gets the layer and the
/// tree (shown at `/`), and its result comes back. `dir` holds it all.
fn in_overlay<T: Serialize + DeserializeOwned>(
    mounter: Mounter,
    dir: &Path,
    make_host: impl FnOnce(&Path),
    command: impl FnOnce(&Path),
    inspect: impl FnOnce(BorrowedFd<'_>, &[Tree]) -> T,
) -> T {
    assert_root();
    let (lower, layer, merged) = (dir.join("lower"), dir.join("layer"), dir.join("merged"));
    for made in [&lower, &layer, &merged] {
        fs::create_dir(made).unwrap();
    }
    let (mut from_child, child_end) = nix::unistd::pipe().map(|(read, write)| (File::from(read), write)).unwrap();
    // SAFETY: the child runs only this test's code and ends with `_exit`, never returning into
    // the harness; glibc keeps `malloc` usable after a fork of a threaded process.
    match unsafe { nix::unistd::fork() }.unwrap() {
        ForkResult::Child => {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                enter_namespaces(mounter);
                for tmpfs in [&lower, &layer] {
                    mount(Some("tmpfs"), tmpfs, Some("tmpfs"), MsFlags::empty(), None::<&str>).unwrap();
                }
                make_host(&lower);
                fs::create_dir(layer.join("upper")).unwrap();
                fs::create_dir(layer.join("work")).unwrap();
                let options = format!(
                    "lowerdir={},upperdir={},workdir={},{}",
                    lower.display(),
                    layer.join("upper").display(),
                    layer.join("work").display(),
                    if mounter == Mounter::Root { "redirect_dir=on,metacopy=off" } else { "userxattr,metacopy=off" }
                );
                mount(Some("overlay"), &merged, Some("overlay"), MsFlags::empty(), Some(options.as_str())).unwrap();
                command(&merged);
                let layer_fd = File::open(&layer).unwrap();
                let tree = Tree::Overlay { upper: "upper".into(), lower: lower.clone(), shown_at: "/".into() };
                inspect(layer_fd.as_fd(), &[tree])
            }));
            let sent = outcome.map_err(|panic| {
                panic.downcast_ref::<String>().cloned().or(panic.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_default()
            });
            let written = serde_json::to_writer(File::from(child_end), &sent).is_ok();
            // SAFETY: ends the forked child without running the parent's exit handlers.
            unsafe { libc::_exit(if written { 0 } else { 1 }) }
        }
        ForkResult::Parent { child } => {
            drop(child_end);
            let mut json = String::new();
            from_child.read_to_string(&mut json).unwrap();
            assert_eq!(waitpid(child, None).unwrap(), WaitStatus::Exited(child, 0));
            let sent: Result<T, String> = serde_json::from_str(&json).unwrap();
            sent.unwrap_or_else(|panic| panic!("in the overlay's child: {panic}"))
        }
    }
}

/// Whether this kernel's tmpfs keeps `user.*` xattrs for a user namespace's mounts (Linux
/// 6.6 and later).
fn kernel_tmpfs_keeps_user_xattrs() -> bool {
    let release = nix::sys::utsname::uname().unwrap().release().to_string_lossy().into_owned();
    let mut numbers = release.split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse::<u32>().ok());
    (numbers.next().unwrap_or(0), numbers.next().unwrap_or(0)) >= (6, 6)
}

/// The child's own mount namespace (and user namespace, root mapped to root), `/` private.
fn enter_namespaces(mounter: Mounter) {
    if mounter == Mounter::UserNamespace {
        unshare(CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS).unwrap();
        fs::write("/proc/self/setgroups", "deny").unwrap();
        fs::write("/proc/self/uid_map", "0 0 1").unwrap();
        fs::write("/proc/self/gid_map", "0 0 1").unwrap();
    } else {
        unshare(CloneFlags::CLONE_NEWNS).unwrap();
    }
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_PRIVATE, None::<&str>).unwrap();
}

fn write(path: impl AsRef<Path>, content: &str) {
    let path = path.as_ref();
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, content).unwrap();
}

fn change(path: &str, kind: ChangeKind, file: FileKind, size: u64) -> FsChange {
    FsChange { path: path.into(), kind, file, size }
}

fn renamed(from: &str) -> ChangeKind {
    ChangeKind::Renamed { from: from.into() }
}

/// The host side of the main scenario.
fn make_host(lower: &Path) {
    for (file, content) in [
        ("etc/keep.conf", "keep"),
        ("etc/modify.conf", "old"),
        ("etc/same-size.conf", "aaaa"),
        ("etc/rewritten.conf", "same"),
        ("etc/touched.conf", "touch"),
        ("etc/chmod.conf", "mode"),
        ("etc/delete.conf", "12345"),
        ("etc/old-name.conf", "moved"),
        ("etc/moved-and-changed.conf", "abc"),
        ("var/tree/a/b/c.txt", "deep"),
        ("var/tree/d.txt", "d"),
        ("opt/app/bin/tool", "tool"),
        ("opt/app/doc.txt", "doc"),
        ("data/x", "x"),
        ("data/y", "yy"),
        ("data/sub/z", "z"),
    ] {
        write(lower.join(file), content);
    }
    symlink("target-a", lower.join("etc/link")).unwrap();
    symlink("kept-target", lower.join("etc/link-same")).unwrap();
}

/// What a command does to the host side of [`make_host`], through the overlay at `merged`.
fn run_command(merged: &Path, mounter: Mounter) {
    let at = |path: &str| merged.join(path);
    write(at("etc/new.conf"), "brand new");
    write(at("etc/modify.conf"), "new content");
    write(at("etc/same-size.conf"), "abaa");
    write(at("etc/rewritten.conf"), "same");
    let now = TimeSpec::new(1_000_000, 0);
    utimensat(None, &at("etc/touched.conf"), &now, &now, UtimensatFlags::FollowSymlink).unwrap();
    fs::set_permissions(at("etc/chmod.conf"), fs::Permissions::from_mode(0o600)).unwrap();
    fs::remove_file(at("etc/delete.conf")).unwrap();
    // A user namespace's overlay marks what a removed host directory held with user xattrs.
    let directories_removable = mounter == Mounter::Root || layer_keeps_user_xattrs(merged);
    if directories_removable {
        fs::remove_dir_all(at("var/tree")).unwrap();
    }
    fs::rename(at("etc/old-name.conf"), at("etc/new-name.conf")).unwrap();
    fs::rename(at("etc/moved-and-changed.conf"), at("etc/changed.conf")).unwrap();
    write(at("etc/changed.conf"), "abcdef");
    write(at("srv/new/deep/file"), "deep new");
    if mounter == Mounter::Root {
        fs::rename(at("opt/app"), at("opt/app2")).unwrap();
        write(at("opt/app2/new.txt"), "added");
        fs::rename(at("opt/app2/bin"), at("opt/app2/bin2")).unwrap();
        fs::rename(at("opt/app2/doc.txt"), at("srv/doc.txt")).unwrap();
    }
    fs::create_dir(at("etc/empty-dir")).unwrap();
    fs::remove_file(at("etc/link")).unwrap();
    symlink("target-b", at("etc/link")).unwrap();
    fs::remove_file(at("etc/link-same")).unwrap();
    symlink("kept-target", at("etc/link-same")).unwrap();
    if directories_removable {
        fs::remove_dir_all(at("data")).unwrap();
        fs::create_dir(at("data")).unwrap();
        write(at("data/x"), "x");
    }
    nix::unistd::mkfifo(&at("etc/fifo"), Mode::from_bits_truncate(0o644)).unwrap();
}

/// Whether the tmpfs layer beside `merged` keeps `user.*` xattrs (Linux 6.6 and later), which
/// a user namespace's overlay needs to remove a host directory (and to make one again as
/// opaque): before, the kernel refuses that with EIO, so the user-namespace test leaves it out
/// there. The probe must fail as the kernel's version says (see
/// `kernel_tmpfs_keeps_user_xattrs`), with EOPNOTSUPP.
fn layer_keeps_user_xattrs(merged: &Path) -> bool {
    let probe = merged.parent().unwrap().join("layer/xattr-probe");
    fs::write(&probe, "").unwrap();
    let path = std::ffi::CString::new(probe.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid C string, a one-byte value and its length.
    let set = unsafe { libc::setxattr(path.as_ptr(), c"user.probe".as_ptr(), b"y".as_ptr().cast(), 1, 0) };
    let errno = std::io::Error::last_os_error().raw_os_error();
    fs::remove_file(&probe).unwrap();
    assert!(set == 0 || errno == Some(libc::EOPNOTSUPP), "setting a user xattr on the layer: {errno:?}");
    set == 0
}

/// The changes of [`run_command`] that do not depend on the mounter.
fn common_changes() -> Vec<FsChange> {
    use ChangeKind::{Created, Deleted, Modified};
    use FileKind::{Directory, File, Other, Symlink};
    vec![
        change("/data/sub", Deleted, Directory, 0),
        change("/data/y", Deleted, File, 2),
        change("/etc/changed.conf", renamed("/etc/moved-and-changed.conf"), File, 6),
        change("/etc/chmod.conf", Modified, File, 4),
        change("/etc/delete.conf", Deleted, File, 5),
        change("/etc/empty-dir", Created, Directory, 0),
        change("/etc/fifo", Created, Other, 0),
        change("/etc/link", Modified, Symlink, 0),
        change("/etc/modify.conf", Modified, File, 11),
        change("/etc/new-name.conf", renamed("/etc/old-name.conf"), File, 5),
        change("/etc/new.conf", Created, File, 9),
        change("/etc/same-size.conf", Modified, File, 4),
        change("/srv", Created, Directory, 0),
        change("/srv/new", Created, Directory, 0),
        change("/srv/new/deep", Created, Directory, 0),
        change("/srv/new/deep/file", Created, File, 8),
        change("/var/tree", Deleted, Directory, 0),
    ]
}

/// The changes' order is `Path`'s: a directory, then what it holds, then its siblings.
#[test]
fn changes_sort_as_paths_do() {
    let paths: Vec<&Path> = [
        "/a-b", "/a/b", "/a", "/ab", "/a/b/c", "/a.b", "/", "/a/b-c", "/a/b/c/d", "/Z", "/a0", "/é", "/a/\u{1}",
        // Longer than the eight bytes compared at a time.
        "/work/main/bench/f1", "/work/main/bench/f10", "/work/main/bench-x", "/work/main/bench/f1/g",
        "/work/main/benchmark", "/work/main/bench", "/work/main/bench/f1.txt",
    ]
    .into_iter()
    .map(Path::new)
    .collect();
    let mut by_path = paths.clone();
    by_path.sort();
    let mut by_order = paths;
    by_order.sort_by(|a, b| path_order(a, b));
    assert_eq!(by_order, by_path);
}

fn sorted(mut changes: Vec<FsChange>) -> Vec<FsChange> {
    changes.sort_by(|a, b| a.path.cmp(&b.path));
    changes
}

#[test]
fn an_overlay_upper_gives_what_the_command_changed() {
    let dir = tempfile::tempdir().unwrap();
    let changes = in_overlay(
        Mounter::Root,
        dir.path(),
        make_host,
        |merged| run_command(merged, Mounter::Root),
        |layer, trees| read_changes(layer, trees, XattrNamespace::Trusted).unwrap(),
    );
    let mut expected = common_changes();
    expected.push(change("/opt/app2", renamed("/opt/app"), FileKind::Directory, 0));
    expected.push(change("/opt/app2/new.txt", ChangeKind::Created, FileKind::File, 5));
    expected.push(change("/opt/app2/bin2", renamed("/opt/app/bin"), FileKind::Directory, 0));
    expected.push(change("/srv/doc.txt", renamed("/opt/app/doc.txt"), FileKind::File, 3));
    assert_eq!(changes, sorted(expected));
}

#[test]
fn a_user_namespace_overlay_has_no_origins_so_a_rename_is_known_by_attributes_and_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let changes = in_overlay(
        Mounter::UserNamespace,
        dir.path(),
        make_host,
        |merged| run_command(merged, Mounter::UserNamespace),
        |layer, trees| read_changes(layer, trees, XattrNamespace::User).unwrap(),
    );
    // Without an origin, a file renamed and changed is a creation and a deletion; one renamed
    // as it was is still a rename: what a copy-up keeps (size, mode, owner, modification time)
    // and its bytes are the host file's.
    let mut expected = common_changes();
    if !kernel_tmpfs_keeps_user_xattrs() {
        // Linux before 6.6: a user namespace's layer cannot remove a host directory (see
        // `layer_keeps_user_xattrs`), so the command left both alone.
        expected.retain(|change| !change.path.starts_with("/data") && !change.path.starts_with("/var/tree"));
    }
    let (new, old, size) = ("/etc/changed.conf", "/etc/moved-and-changed.conf", 3);
    expected.iter_mut().find(|c| c.path == Path::new(new)).unwrap().kind = ChangeKind::Created;
    expected.push(change(old, ChangeKind::Deleted, FileKind::File, size));
    assert_eq!(changes, sorted(expected));
}

#[test]
fn a_run_that_wrote_nothing_changed_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let changes = in_overlay(
        Mounter::Root,
        dir.path(),
        make_host,
        |merged| assert_eq!(fs::read_to_string(merged.join("etc/keep.conf")).unwrap(), "keep"),
        |layer, trees| read_changes(layer, trees, XattrNamespace::Trusted).unwrap(),
    );
    assert_eq!(changes, []);
}

#[test]
fn kept_changes_hold_the_layer_content_and_the_deleted_paths() {
    let dir = tempfile::tempdir().unwrap();
    let kept = dir.path().join("kept");
    let kept_in_child = kept.clone();
    in_overlay(Mounter::Root, dir.path(), make_host, |merged| run_command(merged, Mounter::Root), |layer, trees| {
        let changes = read_changes(layer, trees, XattrNamespace::Trusted).unwrap();
        keep_changes(layer, trees, &changes, &kept_in_child).unwrap();
    });
    let read = |path: &str| fs::read_to_string(kept.join(path)).unwrap();
    assert_eq!(read("etc/modify.conf"), "new content");
    assert_eq!(read("etc/new-name.conf"), "moved");
    assert_eq!(read("srv/new/deep/file"), "deep new");
    assert_eq!(read("opt/app2/new.txt"), "added");
    assert_eq!(fs::read_link(kept.join("etc/link")).unwrap(), Path::new("target-b"));
    assert_eq!(fs::metadata(kept.join("etc/chmod.conf")).unwrap().permissions().mode() & 0o7777, 0o600);
    assert!(kept.join("etc/empty-dir").is_dir());
    assert!(!kept.join("etc/keep.conf").exists(), "unchanged files are not kept");
    assert!(!kept.join("etc/fifo").exists(), "only files, symlinks and directories are kept");
    assert!(!kept.join("opt/app2/doc.txt").exists(), "a renamed directory's host content is no change");
    assert_eq!(read("DELETED"), "/data/sub\n/data/y\n/etc/delete.conf\n/var/tree\n");
}

#[test]
fn a_split_tree_differs_from_its_host_directory_by_entries_and_symlinks() {
    let dir = tempfile::tempdir().unwrap();
    let (lower, layer) = (dir.path().join("host"), dir.path().join("layer"));
    let split = layer.join("split");
    for made in [&lower.join("mounted/inside"), &lower.join("bound"), &split.join("mounted"), &split.join("bound")] {
        fs::create_dir_all(made).unwrap();
    }
    for (target, name) in [("x", "same-link"), ("y", "retargeted"), ("z", "removed-link")] {
        symlink(target, lower.join(name)).unwrap();
    }
    symlink("x", split.join("same-link")).unwrap();
    symlink("other", split.join("retargeted")).unwrap();
    write(split.join("new-file"), "new");
    write(split.join("new-dir/sub/f"), "f");
    let tree = Tree::Split { in_layer: "split".into(), lower, shown_at: "/".into(), mount_points: vec!["mounted".into()] };
    let layer = fs::File::open(&layer).unwrap();
    let changes = read_changes(layer.as_fd(), std::slice::from_ref(&tree), XattrNamespace::User).unwrap();
    use ChangeKind::{Created, Deleted, Modified};
    use FileKind::{Directory, File, Symlink};
    assert_eq!(
        changes,
        [
            change("/new-dir", Created, Directory, 0),
            change("/new-dir/sub", Created, Directory, 0),
            change("/new-dir/sub/f", Created, File, 1),
            change("/new-file", Created, File, 3),
            change("/removed-link", Deleted, Symlink, 0),
            change("/retargeted", Modified, Symlink, 0),
        ]
    );
}

#[test]
fn a_path_belongs_to_the_deepest_tree_shown_above_it() {
    let trees = [
        Tree::Overlay { upper: "root".into(), lower: "/".into(), shown_at: "/".into() },
        Tree::Overlay { upper: "home".into(), lower: "/home".into(), shown_at: "/home".into() },
    ];
    assert_eq!(path_in_layer(&trees, Path::new("/home/a/b")), Some("home/a/b".into()));
    assert_eq!(path_in_layer(&trees, Path::new("/homer")), Some("root/homer".into()));
}

#[test]
fn an_origin_xattr_gives_the_lower_file_handle() {
    let mut origin = vec![0, 0xfb, 33, 0, 1];
    origin.extend([7; 16]);
    origin.extend([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
    assert_eq!(origin_handle(&origin), Some(FileHandle { handle_type: 1, bytes: (1..=12).collect() }));
    assert_eq!(origin_handle(&[]), None, "an empty origin: the lower file system has no handles");
    origin[3] = 1 << 2;
    assert_eq!(origin_handle(&origin), None, "an upper inode's handle");
    origin[3] = 0;
    origin[2] = 40;
    assert_eq!(origin_handle(&origin), None, "longer than the value");
}

/// Not a test of speed (no assertion): prints what [`read_changes`] took for an upper with
/// 1000 new small files in one existing directory, and again when a file was deleted too (which
/// makes it read the new files' origins).
#[test]
#[ignore = "a measurement: cargo test -p test-sandbox --lib fs_changes -- --ignored --nocapture"]
fn time_of_read_changes_for_a_thousand_new_files() {
    for delete_one in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let (count, micros) = in_overlay(
            Mounter::Root,
            dir.path(),
            |lower| write(lower.join("many/existing"), "e"),
            |merged| {
                (0..1000).for_each(|i| write(merged.join(format!("many/file-{i}")), "small"));
                if delete_one {
                    fs::remove_file(merged.join("many/existing")).unwrap();
                }
            },
            |layer, trees| {
                let started = std::time::Instant::now();
                let changes = read_changes(layer, trees, XattrNamespace::Trusted).unwrap();
                (changes.len(), started.elapsed().as_micros())
            },
        );
        assert_eq!(count, 1000 + usize::from(delete_one));
        println!("read_changes: {count} changes (a file deleted: {delete_one}) in {micros} µs");
    }
}

/// A failed read names what it read: the layer's directory of a tree, or the host's.
#[test]
fn a_failed_read_names_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let (lower, layer) = (dir.path().join("host"), dir.path().join("layer"));
    fs::create_dir_all(layer.join("upper")).unwrap();
    let layer = fs::File::open(&layer).unwrap();
    let missing_upper = Tree::Overlay { upper: "missing".into(), lower: dir.path().into(), shown_at: "/".into() };
    let error = read_changes(layer.as_fd(), &[missing_upper], XattrNamespace::User).unwrap_err();
    assert_eq!(error.to_string(), "opening the layer's missing: No such file or directory (os error 2)");
    let missing_lower = Tree::Overlay { upper: "upper".into(), lower: lower.clone(), shown_at: "/".into() };
    let error = read_changes(layer.as_fd(), &[missing_lower], XattrNamespace::User).unwrap_err();
    assert_eq!(error.to_string(), format!("reading {}: No such file or directory (os error 2)", lower.display()));
}
