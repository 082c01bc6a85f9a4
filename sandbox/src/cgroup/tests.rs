//! Unit tests of `cgroup`.

use super::*;

/// `fs_kind` for a made-up machine: these paths and kinds, nothing else.
fn kinds(table: &'static [(&'static str, FsKind)]) -> impl Fn(&Path) -> Option<FsKind> {
    move |path: &Path| table.iter().find(|(p, _)| Path::new(p) == path).map(|(_, kind)| *kind)
}

fn sorted(layout: Layout) -> Layout {
    match layout {
        Layout::Legacy { mut hierarchies } => {
            hierarchies.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
            Layout::Legacy { hierarchies }
        }
        Layout::Hybrid { mut hierarchies, unified } => {
            hierarchies.sort_by(|a, b| a.mount_point.cmp(&b.mount_point));
            Layout::Hybrid { hierarchies, unified }
        }
        unified => unified,
    }
}

#[test]
fn standard_mounts_give_the_layout_the_mount_table_gives() {
    let root = Path::new("/sys/fs/cgroup");
    let v2 = Layout::from_standard_mounts(root, kinds(&[("/sys/fs/cgroup", FsKind::Cgroup2)]), || None);
    assert_eq!(v2, Some(Layout::Unified { mount_point: root.into() }));

    let hybrid_cgroup = "12:name=systemd:/user.slice\n7:cpu,cpuacct:/\n5:memory:/x\n3:pids:/x\n0::/user.slice\n";
    let machine: &[(&str, FsKind)] = &[
        ("/sys/fs/cgroup", FsKind::Tmpfs),
        ("/sys/fs/cgroup/cpu,cpuacct", FsKind::Cgroup1),
        ("/sys/fs/cgroup/memory", FsKind::Cgroup1),
        ("/sys/fs/cgroup/pids", FsKind::Cgroup1),
        ("/sys/fs/cgroup/systemd", FsKind::Cgroup1),
        ("/sys/fs/cgroup/unified", FsKind::Cgroup2),
    ];
    let hybrid = Layout::from_standard_mounts(root, kinds(machine), || Some(hybrid_cgroup.into())).unwrap();
    let mountinfo = "\
30 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw,mode=755
31 30 0:29 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw
32 30 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,xattr,name=systemd
33 30 0:31 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct
34 30 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory
35 30 0:33 / /sys/fs/cgroup/pids rw - cgroup cgroup rw,pids
";
    assert_eq!(sorted(hybrid), sorted(Layout::from_mountinfo(mountinfo).unwrap()));

    // Without the v2 line: legacy.
    let legacy = Layout::from_standard_mounts(root, kinds(machine), || Some("5:memory:/\n3:pids:/\n".into()));
    assert!(matches!(legacy, Some(Layout::Legacy { ref hierarchies }) if hierarchies.len() == 2), "{legacy:?}");

    // Anything unusual leaves it to the mount table.
    let not_mounted: &[(&str, FsKind)] = &[("/sys/fs/cgroup", FsKind::Tmpfs), ("/sys/fs/cgroup/memory", FsKind::Other)];
    assert_eq!(Layout::from_standard_mounts(root, kinds(not_mounted), || Some("5:memory:/\n".into())), None);
    let no_unified: &[(&str, FsKind)] = &[("/sys/fs/cgroup", FsKind::Tmpfs), ("/sys/fs/cgroup/memory", FsKind::Cgroup1)];
    assert_eq!(Layout::from_standard_mounts(root, kinds(no_unified), || Some("5:memory:/\n0::/\n".into())), None);
    assert_eq!(Layout::from_standard_mounts(root, kinds(machine), || None), None);
    assert_eq!(Layout::from_standard_mounts(root, kinds(&[("/sys/fs/cgroup", FsKind::Cgroup1)]), || None), None);
    assert_eq!(Layout::from_standard_mounts(root, kinds(&[]), || None), None);
}

#[test]
fn on_this_machine_the_quick_detection_agrees_with_the_mount_table() {
    let quick = Layout::from_standard_mounts(Path::new("/sys/fs/cgroup"), fs_kind, || {
        fs::read_to_string("/proc/self/cgroup").ok()
    });
    let table = Layout::from_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap()).unwrap();
    match quick {
        Some(quick) => assert_eq!(sorted(quick), sorted(table)),
        // Only a machine whose cgroups are not where systemd puts them may take the slow way.
        None => assert!(!Path::new("/sys/fs/cgroup/memory").exists() && !Path::new("/sys/fs/cgroup/cgroup.controllers").exists(), "{table:?}"),
    }
}

const HYBRID: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
39 31 0:36 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
40 31 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

#[test]
fn detects_hybrid_layout() {
    let layout = Layout::from_mountinfo(HYBRID).unwrap();
    assert!(matches!(&layout, Layout::Hybrid { unified, .. } if unified == Path::new("/sys/fs/cgroup/unified")));
    assert_eq!(layout.v1_hierarchy("memory").unwrap().mount_point, Path::new("/sys/fs/cgroup/memory"));
    assert!(layout.v1_hierarchy("systemd").is_none());
    assert!(layout.v1_hierarchy("freezer").is_none());
    // Every hierarchy is listed, the one without a controller too.
    let mut listed: Vec<&Path> = layout.v1_hierarchies().iter().map(|h| h.mount_point.as_path()).collect();
    listed.sort();
    let expected = ["/sys/fs/cgroup/cpu", "/sys/fs/cgroup/cpuacct", "/sys/fs/cgroup/memory", "/sys/fs/cgroup/pids", "/sys/fs/cgroup/systemd"];
    assert_eq!(listed, expected.map(Path::new));
}

#[test]
fn detects_unified_and_comounted_layouts() {
    let unified = "30 1 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
    assert_eq!(
        Layout::from_mountinfo(unified).unwrap(),
        Layout::Unified { mount_point: "/sys/fs/cgroup".into() }
    );
    let legacy = "32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n";
    let layout = Layout::from_mountinfo(legacy).unwrap();
    assert_eq!(layout.v1_hierarchy("cpuacct"), layout.v1_hierarchy("cpu"));
    assert_eq!(layout.v1_hierarchy("cpu").unwrap().mount_point, Path::new("/sys/fs/cgroup/cpu,cpuacct"));
    let err = Layout::from_mountinfo("1 0 0:1 / / rw - ext4 /dev/vda rw\n").unwrap_err();
    assert!(err.to_string().contains("mount -t cgroup2"), "{err}");
}

#[test]
fn cpu_shares_below_a_hundredth_stretch_the_period() {
    assert_eq!(cpu_quota_and_period_us(0.3), (30_000, 100_000));
    assert_eq!(cpu_quota_and_period_us(2.0), (200_000, 100_000));
    assert_eq!(cpu_quota_and_period_us(0.01), (1_000, 100_000));
    assert_eq!(cpu_quota_and_period_us(0.005), (1_000, 200_000));
    assert_eq!(cpu_quota_and_period_us(0.001), (1_000, 1_000_000));
}

#[test]
fn counters_parse_from_files() {
    let tmp = tempdir("counters");
    let dir = tmp.path();
    fs::write(dir.join("memory.events"), "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\n").unwrap();
    fs::write(dir.join("pids.events"), "max 7\n").unwrap();
    fs::create_dir(dir.join("child")).unwrap();
    fs::write(dir.join("child/pids.events"), "max 5\n").unwrap();
    fs::write(dir.join("memory.peak"), "4096\n").unwrap();
    fs::write(dir.join("garbage"), "many\n").unwrap();
    assert_eq!(read_key(dir, "memory.events", "oom_kill").unwrap(), Some(2));
    assert_eq!(read_key(dir, "memory.events", "absent").unwrap(), Some(0));
    assert_eq!(read_key(dir, "nothing", "max").unwrap(), None);
    assert_eq!(read_number(dir, "memory.peak").unwrap(), Some(4096));
    assert!(read_number(dir, "garbage").unwrap_err().to_string().contains("garbage"));
    // Old kernels: the forking task's cgroup counts, so the subtree is summed...
    assert_eq!(pids_limit_hits(dir).unwrap(), Some(12));
    // ...new ones count hierarchically and say so with pids.events.local.
    fs::write(dir.join("pids.events.local"), "max 2\n").unwrap();
    assert_eq!(pids_limit_hits(dir).unwrap(), Some(7));
}

#[test]
fn run_names_identify_their_owner() {
    let name = new_run_name();
    let parsed = parse_run_name(&name).unwrap();
    assert_eq!(parsed, owner());
    assert!(!parsed.is_dead());
    assert_eq!(parse_run_name("supervisor"), None);
    assert_eq!(parse_run_name("1-2-3"), None);
    let gone = Owner { pid: u32::MAX / 2, ..parsed };
    assert!(gone.is_dead());
    let recycled = Owner { start_time: parsed.start_time + 1, ..parsed };
    assert!(recycled.is_dead());
}

#[test]
fn stale_runs_of_dead_owners_are_removed_others_kept() {
    let tmp = tempdir("stale");
    let dir = tmp.path();
    let me = owner();
    let dead = format!("{}-{}-{}-0", me.pid_namespace, u32::MAX / 2, 1);
    let other_namespace = format!("{}-{}-{}-0", me.pid_namespace + 1, u32::MAX / 2, 1);
    let mine = new_run_name();
    for name in [&dead, &other_namespace, &mine, &"unrelated".to_string()] {
        fs::create_dir(dir.join(name)).unwrap();
    }
    let removed = remove_stale_runs(dir);
    assert_eq!(removed, vec![dir.join(&dead)]);
    assert!(dir.join(&other_namespace).exists() && dir.join(&mine).exists());
}

#[test]
fn a_runs_directory_tells_whether_it_holds_other_cgroups() {
    // On the real cgroup file system: where this process's own (v2) or pids (v1) cgroup is.
    let own = fs::read_to_string("/proc/self/cgroup").unwrap();
    let base = match Layout::detect().unwrap() {
        Layout::Unified { mount_point } => {
            mount_point.join(own.lines().find_map(|l| l.strip_prefix("0::/")).expect("a v2 line"))
        }
        layout => layout.v1_hierarchy("pids").expect("a pids hierarchy").mount_point.clone(),
    };
    let parent = base.join(format!("sandbox-unit-nlink-{}", std::process::id()));
    fs::create_dir(&parent).unwrap();
    fs::create_dir(parent.join("mine")).unwrap();
    let alone = holds_other_cgroups(&parent);
    fs::create_dir(parent.join("other")).unwrap();
    let beside_another = holds_other_cgroups(&parent);
    for dir in [parent.join("other"), parent.join("mine"), parent.clone()] {
        fs::remove_dir(dir).unwrap();
    }
    assert!(!alone, "only this run's cgroup in {}", parent.display());
    assert!(beside_another, "another cgroup beside this run's in {}", parent.display());
}

/// A temporary directory for a unit test, removed when the guard drops (also when the test fails).
pub(crate) fn tempdir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("sandbox-unit-{tag}-")).tempdir().unwrap()
}

#[test]
fn proc_cgroup_lines_are_split_into_id_controllers_and_path() {
    let text = "12:cpu,cpuacct:/ci/job-7\n1:name=systemd:/init.scope\nnot a line\n0::/user.slice/a b.scope\n";
    let lines: Vec<_> = proc_cgroup_lines(text).collect();
    assert_eq!(lines.len(), 3, "{lines:?}");
    assert_eq!(lines[0], ProcCgroupLine { id: "12", controllers: "cpu,cpuacct", path: "/ci/job-7" });
    assert_eq!(lines[1].controllers, "name=systemd");
    assert!(lines[2].is_v2() && !lines[0].is_v2());
    assert_eq!(lines[2].path, "/user.slice/a b.scope");
}
