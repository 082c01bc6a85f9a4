//! Which cgroup hierarchies this machine has: found with a few `statfs` calls where systemd and
//! container runtimes put them, else read from `/proc/self/mountinfo` (testable with a text).

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use super::*;

/// A cgroup hierarchy mounted on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Its controllers (v1: from the mount options; empty for v2 here).
    pub controllers: Vec<String>,
}

impl Hierarchy {
    /// A hybrid layout's cgroup2 mounted at `mount_point`, as a hierarchy: the `0::` line of
    /// `/proc/self/cgroup` is the one with no controllers.
    pub(crate) fn hybrid_unified(mount_point: &std::path::Path) -> Hierarchy {
        Hierarchy { mount_point: mount_point.to_path_buf(), controllers: vec![String::new()] }
    }
}

/// The cgroup layout of this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Layout {
    /// Only v1 hierarchies.
    Legacy {
        /// The v1 hierarchies.
        hierarchies: Vec<Hierarchy>,
    },
    /// v1 hierarchies carry the controllers; a controller-less cgroup2 is mounted beside them.
    Hybrid {
        /// The v1 hierarchies.
        hierarchies: Vec<Hierarchy>,
        /// Where the cgroup2 file system is mounted.
        unified: PathBuf,
    },
    /// Only cgroup2.
    Unified {
        /// Where the cgroup2 file system is mounted.
        mount_point: PathBuf,
    },
}

impl Layout {
    /// This machine's layout, read once per process.
    pub(crate) fn current() -> Result<&'static Layout, CgroupError> {
        static LAYOUT: OnceLock<Layout> = OnceLock::new();
        if let Some(layout) = LAYOUT.get() {
            return Ok(layout);
        }
        let layout = Layout::detect()?;
        Ok(LAYOUT.get_or_init(|| layout))
    }

    /// Finds the layout where systemd and container runtimes put it with a few `statfs`
    /// calls ([`Layout::from_standard_mounts`]), otherwise from this process's mount table.
    pub fn detect() -> Result<Layout, CgroupError> {
        let standard = Layout::from_standard_mounts(Path::new("/sys/fs/cgroup"), fs_kind, || {
            read_small_file(Path::new("/proc/self/cgroup")).ok()
        });
        if let Some(layout) = standard {
            return Ok(layout);
        }
        let path = Path::new("/proc/self/mountinfo");
        let text = crate::mountinfo::read_own_table().map_err(io_err("reading", path))?;
        Layout::from_mountinfo(&text)
    }

    /// The layout if it is the usual one below `root` (`/sys/fs/cgroup`): cgroup2 mounted
    /// there (v2), or a tmpfs there with a directory per v1 hierarchy named after its
    /// controllers (those `/proc/self/cgroup`, read by `proc_self_cgroup`, lists), plus
    /// cgroup2 at `unified` where `/proc/self/cgroup` has a v2 line (hybrid). Having the kernel
    /// format the whole mount table costs ~0.1 ms of a 3 ms `sandbox run`. `None` as soon as
    /// anything differs (a directory that is not a cgroup mount): the mount table decides then.
    pub fn from_standard_mounts(
        root: &Path,
        fs_kind: impl Fn(&Path) -> Option<FsKind>,
        proc_self_cgroup: impl FnOnce() -> Option<String>,
    ) -> Option<Layout> {
        match fs_kind(root)? {
            FsKind::Cgroup2 => return Some(Layout::Unified { mount_point: root.to_path_buf() }),
            FsKind::Tmpfs => {}
            FsKind::Cgroup1 | FsKind::Other => return None,
        }
        let mut hierarchies = Vec::new();
        let mut unified = None;
        for line in proc_cgroup_lines(&proc_self_cgroup()?) {
            let names = line.controllers;
            if line.is_v2() {
                let mount_point = root.join("unified");
                (fs_kind(&mount_point)? == FsKind::Cgroup2).then_some(())?;
                unified = Some(mount_point);
                continue;
            }
            // Every hierarchy, also one without a controller (`name=systemd`, mounted at
            // `systemd`): a contained run gets a directory in each (`V1Cgroup::plan`).
            let controllers: Vec<String> = names.split(',').map(str::to_string).collect();
            let mount_point = root.join(names.strip_prefix("name=").unwrap_or(names));
            (fs_kind(&mount_point)? == FsKind::Cgroup1).then_some(())?;
            hierarchies.push(Hierarchy { mount_point, controllers });
        }
        match (hierarchies.is_empty(), unified) {
            (false, Some(unified)) => Some(Layout::Hybrid { hierarchies, unified }),
            (false, None) => Some(Layout::Legacy { hierarchies }),
            (true, _) => None,
        }
    }

    /// Parses a `/proc/self/mountinfo` text.
    pub fn from_mountinfo(text: &str) -> Result<Layout, CgroupError> {
        let mut hierarchies = Vec::new();
        let mut unified = None;
        for entry in crate::mountinfo::entries(text) {
            let (mount_point, super_opts) = (entry.mount_point, entry.super_options);
            match entry.fstype {
                "cgroup2" => {
                    unified.get_or_insert(mount_point);
                }
                "cgroup" => {
                    let controllers: Vec<String> = super_opts
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o) || o.starts_with("name="))
                        .map(str::to_string)
                        .collect();
                    if !controllers.is_empty() && !hierarchies.iter().any(|h: &Hierarchy| h.controllers == controllers) {
                        hierarchies.push(Hierarchy { mount_point, controllers });
                    }
                }
                _ => {}
            }
        }
        match (hierarchies.is_empty(), unified) {
            (true, Some(mount_point)) => Ok(Layout::Unified { mount_point }),
            (false, Some(unified)) => Ok(Layout::Hybrid { hierarchies, unified }),
            (false, None) => Ok(Layout::Legacy { hierarchies }),
            (true, None) => Err(CgroupError::Unavailable(
                "no cgroup file system is mounted (checked /proc/self/mountinfo): mount cgroup2 on \
                 /sys/fs/cgroup (mount -t cgroup2 none /sys/fs/cgroup)"
                    .into(),
            )),
        }
    }

    /// "v1", "hybrid (v1 controllers, cgroup2 at /sys/fs/cgroup/unified)", "unified (v2)".
    pub fn describe(&self) -> String {
        match self {
            Layout::Legacy { .. } => "legacy (cgroup v1 only)".into(),
            Layout::Hybrid { unified, .. } => {
                format!("hybrid (controllers on cgroup v1, a controller-less cgroup2 at {})", unified.display())
            }
            Layout::Unified { mount_point } => format!("unified (cgroup v2 at {})", mount_point.display()),
        }
    }

    /// Every v1 hierarchy, also those without a controller (`name=systemd`).
    pub fn v1_hierarchies(&self) -> &[Hierarchy] {
        match self {
            Layout::Legacy { hierarchies } | Layout::Hybrid { hierarchies, .. } => hierarchies,
            Layout::Unified { .. } => &[],
        }
    }

    /// The v1 hierarchy carrying `controller`.
    pub fn v1_hierarchy(&self, controller: &str) -> Option<&Hierarchy> {
        match self {
            Layout::Legacy { hierarchies } | Layout::Hybrid { hierarchies, .. } => {
                hierarchies.iter().find(|h| h.controllers.iter().any(|c| c == controller))
            }
            Layout::Unified { .. } => None,
        }
    }
}

/// What kind of file system `statfs` finds at a path, as far as finding cgroups needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FsKind {
    /// cgroup v2.
    Cgroup2,
    /// A cgroup v1 hierarchy.
    Cgroup1,
    /// tmpfs (what `/sys/fs/cgroup` is on v1 and hybrid systems).
    Tmpfs,
    /// Anything else.
    Other,
}

/// `statfs(path)`'s file-system magic as an [`FsKind`]; `None` when `path` cannot be reached.
pub(crate) fn fs_kind(path: &Path) -> Option<FsKind> {
    use nix::sys::statfs::{statfs, CGROUP2_SUPER_MAGIC, CGROUP_SUPER_MAGIC, TMPFS_MAGIC};
    let kind = statfs(path).ok()?.filesystem_type();
    Some(match kind {
        k if k == CGROUP2_SUPER_MAGIC => FsKind::Cgroup2,
        k if k == CGROUP_SUPER_MAGIC => FsKind::Cgroup1,
        k if k == TMPFS_MAGIC => FsKind::Tmpfs,
        _ => FsKind::Other,
    })
}

/// The v1 controllers, as the mount table's options name them (beside `name=` for a hierarchy
/// without one, and options such as `rw` or `xattr`).
const V1_CONTROLLERS: [&str; 15] = [
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "blkio", "perf_event", "net_prio", "hugetlb", "pids",
    "rdma", "misc", "debug",
];

/// One line of a `/proc/PID/cgroup` text: `hierarchy-id:controllers:path`, where `0::path` is the
/// cgroup2 hierarchy and `path` is below that hierarchy's root.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcCgroupLine<'a> {
    pub id: &'a str,
    /// Comma-separated (`cpu,cpuacct`, `name=systemd`); empty for cgroup2.
    pub controllers: &'a str,
    pub path: &'a str,
}

impl ProcCgroupLine<'_> {
    /// Whether this is the cgroup2 line.
    pub(crate) fn is_v2(&self) -> bool {
        self.id == "0"
    }
}

/// The lines of a `/proc/PID/cgroup` text (one without two `:` is skipped).
pub(crate) fn proc_cgroup_lines(text: &str) -> impl Iterator<Item = ProcCgroupLine<'_>> {
    text.lines().filter_map(|line| {
        let mut fields = line.splitn(3, ':');
        Some(ProcCgroupLine { id: fields.next()?, controllers: fields.next()?, path: fields.next()?.trim_end() })
    })
}
