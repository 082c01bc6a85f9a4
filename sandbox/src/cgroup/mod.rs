//! Control groups: one per run, with its limits, its counters, and its removal.
//!
//! `Layout` says which hierarchies this machine has (read from `/proc/self/mountinfo`, so it
//! works in containers and is testable with a text); `RunCgroup` is one run's cgroup on
//! either version. Every function that touches files takes its directory as a parameter, so
//! unit tests can point it at a temporary directory.

#[doc(hidden)] // for tests that exercise the reuse of run cgroups
pub mod pool;
pub(crate) mod systemd;
mod v1;
mod v2;

use std::fmt;
use std::fs;
use std::io;
use std::ffi::{CStr, CString};
use std::os::fd::{BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

use nix::unistd::Pid;
use thiserror::Error;

use crate::config::Limits;

pub(crate) use v1::V1Cgroup;
pub(crate) use v1::default_runs_dir as v1_default_runs_dir;
pub(crate) use v2::{base_dir as v2_base_dir, resolve_parent as v2_resolve_parent, V2Cgroup};
pub(crate) use v2::foreign_processes_in as v2_foreign_processes;

/// The cgroup version a run's limits and counters came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Legacy hierarchies, one per controller (also the "hybrid" layout).
    V1,
    /// The unified hierarchy.
    V2,
}

impl CgroupVersion {
    /// `1` or `2`.
    pub fn number(self) -> u8 {
        match self {
            CgroupVersion::V1 => 1,
            CgroupVersion::V2 => 2,
        }
    }
}

impl fmt::Display for CgroupVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cgroup v{}", self.number())
    }
}

/// Something went wrong with a cgroup file; always names the file.
#[derive(Debug, Error)]
pub enum CgroupError {
    /// Reading or writing a cgroup file or directory failed.
    #[error("{action} {path}: {source}{hint}", hint = privilege_hint(source))]
    Io {
        /// What was being done: "creating cgroup", "writing".
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// No cgroup hierarchy carries a controller this run needs.
    #[error("{0}")]
    Unavailable(String),
    /// A cgroup file had unexpected contents.
    #[error("unexpected contents in {path}: {text:?}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What it held.
        text: String,
    },
}

fn privilege_hint(err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::PermissionDenied => {
            " (this needs root, or a cgroup delegated to you: pass it with --cgroup-parent; \
             `sandbox check` shows what is writable)"
        }
        io::ErrorKind::ReadOnlyFilesystem => {
            " (the cgroup file system is mounted read-only here, as in many containers: \
             run the container with a writable cgroup mount or cgroupns=private)"
        }
        _ => "",
    }
}

pub(crate) fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> CgroupError + 'a {
    move |source| CgroupError::Io { action, path: path.to_path_buf(), source }
}

/// CFS period used for `--cpu`: the kernel's default, 100 ms.
const CPU_PERIOD_US: u64 = 100_000;

/// The CFS quota and period, in microseconds, for `cores`. The kernel's smallest quota is 1 ms,
/// which is 0.01 cores of a 100 ms period: below that the period grows (up to the kernel's
/// largest, 1 s), so that down to 0.001 cores the share is what was asked.
pub(crate) fn cpu_quota_and_period_us(cores: f64) -> (u64, u64) {
    const MIN_QUOTA_US: u64 = 1_000;
    const MAX_PERIOD_US: u64 = 1_000_000;
    let quota = (cores * CPU_PERIOD_US as f64).round() as u64;
    if quota >= MIN_QUOTA_US {
        return (quota, CPU_PERIOD_US);
    }
    let period = ((MIN_QUOTA_US as f64 / cores).round() as u64).min(MAX_PERIOD_US);
    (((cores * period as f64).round() as u64).max(MIN_QUOTA_US), period)
}

/// Writes `value` to the cgroup file `dir/name`.
pub(crate) fn write_file(dir: &Path, name: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(name);
    fs::write(&path, value).map_err(io_err("writing", &path))
}

/// Cgroup files kept open for the life of a cgroup, which the pool reuses for many runs:
/// opening a cgroup file costs a path walk and kernfs allocations, reading an open one from
/// offset 0 (which restarts the kernel's text) little. A handful per cgroup: a list.
#[derive(Debug, Default)]
pub(crate) struct OpenFiles(std::sync::Mutex<Vec<KeptFile>>);

#[derive(Debug)]
struct KeptFile {
    dir: PathBuf,
    name: &'static str,
    write: bool,
    file: fs::File,
}

impl OpenFiles {
    fn use_file<T>(
        &self,
        dir: &Path,
        name: &'static str,
        write: bool,
        body: impl FnOnce(&mut fs::File) -> io::Result<T>,
    ) -> Result<Option<T>, CgroupError> {
        let action = if write { "writing" } else { "reading" };
        let mut files = self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let found = files.iter().position(|f| f.name == name && f.write == write && f.dir.as_os_str() == dir.as_os_str());
        let index = match found {
            Some(index) => index,
            None => {
                let path = dir.join(name);
                match fs::OpenOptions::new().read(!write).write(write).open(&path) {
                    Ok(file) => files.push(KeptFile { dir: dir.to_path_buf(), name, write, file }),
                    Err(err) if err.kind() == io::ErrorKind::NotFound && !write => return Ok(None),
                    Err(err) => return Err(io_err(action, &path)(err)),
                }
                files.len() - 1
            }
        };
        body(&mut files[index].file).map(Some).map_err(|err| io_err(action, &dir.join(name))(err))
    }

    /// Like [`read_optional`], through a kept descriptor.
    pub(crate) fn read(&self, dir: &Path, name: &'static str) -> Result<Option<String>, CgroupError> {
        use std::os::unix::fs::FileExt;
        self.use_file(dir, name, false, |file| {
            let mut text = Vec::with_capacity(256);
            let mut buffer = [0u8; 4096];
            loop {
                let n = file.read_at(&mut buffer, text.len() as u64)?;
                if n == 0 {
                    break;
                }
                text.extend_from_slice(&buffer[..n]);
            }
            String::from_utf8(text).map_err(|err| io::Error::new(io::ErrorKind::InvalidData, err))
        })
    }

    /// The kept descriptor of `dir/name` opened for writing (opened now if need be); valid
    /// while `self` lives.
    pub(crate) fn writable_fd(&self, dir: &Path, name: &'static str) -> Result<RawFd, CgroupError> {
        use std::os::fd::AsRawFd;
        self.use_file(dir, name, true, |file| Ok(file.as_raw_fd()))?
            .ok_or_else(|| CgroupError::Unavailable(format!("{} is missing", dir.join(name).display())))
    }

    /// Like [`write_file`], through a kept descriptor.
    pub(crate) fn write(&self, dir: &Path, name: &'static str, value: &str) -> Result<(), CgroupError> {
        use std::io::Write;
        self.use_file(dir, name, true, |file| file.write_all(value.as_bytes())).map(drop)
    }

    /// Like [`read_number`].
    pub(crate) fn read_number(&self, dir: &Path, name: &'static str) -> Result<Option<u64>, CgroupError> {
        self.read(dir, name)?.map(|text| parse_number(dir, name, text)).transpose()
    }

    /// Like [`read_key`].
    pub(crate) fn read_key(&self, dir: &Path, name: &'static str, key: &str) -> Result<Option<u64>, CgroupError> {
        self.read(dir, name)?.map(|text| parse_key(dir, name, key, text)).transpose()
    }
}

fn parse_number(dir: &Path, name: &str, text: String) -> Result<u64, CgroupError> {
    text.trim().parse().map_err(|_| CgroupError::Parse { path: dir.join(name), text })
}

fn parse_key(dir: &Path, name: &str, key: &str, text: String) -> Result<u64, CgroupError> {
    for line in text.lines() {
        if let Some((k, v)) = line.split_once(' ') {
            if k == key {
                return v.trim().parse().map_err(|_| CgroupError::Parse { path: dir.join(name), text: text.clone() });
            }
        }
    }
    Ok(0)
}

/// Reads the cgroup file `dir/name`; `None` when the kernel does not have it.
pub(crate) fn read_optional(dir: &Path, name: &str) -> Result<Option<String>, CgroupError> {
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(text) => Ok(Some(text)),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(io_err("reading", &path)(err)),
    }
}

/// Reads a file holding one number (`memory.peak`, `pids.peak`); `None` when absent.
pub(crate) fn read_number(dir: &Path, name: &str) -> Result<Option<u64>, CgroupError> {
    read_optional(dir, name)?.map(|text| parse_number(dir, name, text)).transpose()
}

/// Reads one key of a flat-keyed file (`memory.events`: `oom_kill 3`); 0 when the key is
/// absent, `None` when the file is.
pub(crate) fn read_key(dir: &Path, name: &str, key: &str) -> Result<Option<u64>, CgroupError> {
    read_optional(dir, name)?.map(|text| parse_key(dir, name, key, text)).transpose()
}

/// Whether `pids.events` in `dir` counts hierarchically (kernel 6.14 on, which added
/// `pids.events.local`).
pub(crate) fn pids_events_hierarchical(dir: &Path) -> bool {
    dir.join("pids.events.local").exists()
}

/// All cgroup directories from `dir` down, deepest first (the order `rmdir` needs).
pub(crate) fn subtree_deepest_first(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries.flatten() {
            if entry.file_type().is_ok_and(|t| t.is_dir()) {
                out.extend(subtree_deepest_first(&entry.path()));
            }
        }
    }
    out.push(dir.to_path_buf());
    out
}

/// Sum of `pids.events` `max` over the run's cgroups. Kernels before 6.14 count a refused fork
/// in the *forking task's* cgroup, so with nested cgroups every one must be read; newer ones
/// (which have `pids.events.local`) count hierarchically, so the top one is the total.
pub(crate) fn pids_limit_hits(top: &Path) -> Result<Option<u64>, CgroupError> {
    if pids_events_hierarchical(top) {
        return read_key(top, "pids.events", "max");
    }
    let mut total = None;
    for dir in subtree_deepest_first(top) {
        if let Some(hits) = read_key(&dir, "pids.events", "max")? {
            total = Some(total.unwrap_or(0) + hits);
        }
    }
    Ok(total)
}

/// Removes a cgroup and any children the command created, waiting out the short moment in which
/// the kernel still counts exiting tasks.
pub(crate) fn remove_tree(top: &Path) -> Result<(), CgroupError> {
    // The common case, a cgroup without children and without tasks, needs no directory listing.
    match fs::remove_dir(top) {
        Ok(()) => return Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(_) => {}
    }
    for dir in subtree_deepest_first(top) {
        let mut delay = Duration::from_micros(200);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        loop {
            match fs::remove_dir(&dir) {
                Ok(()) => break,
                Err(err) if err.kind() == io::ErrorKind::NotFound => break,
                Err(err) if err.raw_os_error() == Some(libc::EBUSY) && std::time::Instant::now() < deadline => {
                    kill_listed_processes(&dir);
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(Duration::from_millis(50));
                }
                Err(err) => return Err(io_err("removing cgroup", &dir)(err)),
            }
        }
    }
    Ok(())
}

/// SIGKILLs every process listed in `dir/cgroup.procs`. Used for cgroups whose PID-namespace init
/// is already gone (stale runs) and as the v1 fallback of `cgroup.kill`.
pub(crate) fn kill_listed_processes(dir: &Path) {
    if let Ok(text) = fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in text.lines().filter_map(|l| l.trim().parse::<i32>().ok()) {
            let _ = nix::sys::signal::kill(Pid::from_raw(pid), nix::sys::signal::Signal::SIGKILL);
        }
    }
}

/// Counters read from a run's cgroup after the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Processes killed by the OOM killer in this cgroup.
    pub oom_kills: u64,
    /// Forks refused because of `pids.max`.
    pub pids_limit_hits: u64,
    /// Peak memory usage in bytes, where the kernel records it.
    pub peak_memory_bytes: Option<u64>,
    /// Peak number of tasks, where the kernel records it (`pids.peak`).
    pub peak_pids: Option<u64>,
    /// CPU time used, in microseconds.
    pub cpu_usec: Option<u64>,
}

/// One run's cgroup, on either version. Dropping it kills what is left inside and removes it.
pub(crate) trait RunCgroup: Send {
    /// Which version this is.
    fn version(&self) -> CgroupVersion;
    /// A directory fd for `clone3(CLONE_INTO_CGROUP)`, where the version supports it.
    fn clone_target(&self) -> Option<BorrowedFd<'_>>;
    /// Moves `pid` (all its threads) into the cgroup.
    fn add_process(&self, pid: Pid) -> Result<(), CgroupError>;
    /// How the sandbox's init gets into each of the cgroup's directories itself (v1, in the
    /// order of [`paths`](RunCgroup::paths); see `InitArgs::join_cgroups`); empty where the
    /// launcher places the init.
    fn init_joins(&self) -> Result<Vec<InitJoin>, CgroupError> {
        Ok(Vec::new())
    }
    /// Makes the directories of a cgroup that [`plan_run_cgroup`] only named, and writes its
    /// limits; nothing for one that exists.
    fn finish_creation(&mut self) -> Result<(), CgroupError> {
        Ok(())
    }
    /// SIGKILLs every process in the cgroup.
    fn kill_all(&self);
    /// Reads the counters of the current run.
    fn stats(&mut self) -> Result<Stats, CgroupError>;
    /// After [`stats`](RunCgroup::stats) of a run whose processes are all gone: readies the
    /// cgroup for another run, if the next run's counters can then be told exactly as in a new
    /// cgroup. `false` when not (then remove it). See [`pool`].
    fn ready_for_reuse(&mut self) -> Result<bool, CgroupError> {
        Ok(false)
    }
    /// Writes `limits` for the next run of a reused cgroup (only what changed).
    fn set_limits(&mut self, limits: &Limits) -> Result<(), CgroupError>;
    /// Removes what launchers that died left beside this cgroup (once per process and
    /// directory). Called once the sandbox is running, off the path to the command's start.
    fn remove_stale_runs(&self);
    /// Removes the cgroup (and children the command created); idempotent.
    fn remove(&mut self) -> Result<(), CgroupError>;
    /// The cgroup directories, for diagnostics and tests.
    fn paths(&self) -> Vec<PathBuf>;
}

/// How the sandbox's init gets into one cgroup directory itself: by writing `0` (itself) into
/// its `tasks` file, through descriptors opened before the clone.
#[derive(Debug)]
pub(crate) enum InitJoin {
    /// The `tasks` file of a directory that exists, kept open by its cgroup.
    TasksFile(RawFd),
    /// For a directory made after the clone: `tasks` (`<name>/tasks`) below `parent`.
    Below {
        /// The directory's parent.
        parent: OwnedFd,
        /// The path of the `tasks` file below `parent`.
        tasks: CString,
    },
}

impl InitJoin {
    /// For `dir`, made after the clone: its parent opened now (and made, the first time).
    fn below(dir: &Path) -> Result<InitJoin, CgroupError> {
        use nix::fcntl::{open, OFlag};
        let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
            return Err(CgroupError::Unavailable(format!("{} is not a cgroup directory", dir.display())));
        };
        let open_parent = || open(parent, OFlag::O_PATH | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty());
        let fd = match open_parent() {
            Err(nix::errno::Errno::ENOENT) => {
                fs::create_dir_all(parent).map_err(io_err("creating cgroup", parent))?;
                open_parent()
            }
            opened => opened,
        }
        .map_err(|errno| io_err("opening", parent)(errno.into()))?;
        // SAFETY: `open` just returned `fd`; nothing else has it.
        let parent = unsafe { crate::sys::own_fd(fd) };
        let mut tasks = name.as_bytes().to_vec();
        tasks.extend_from_slice(b"/tasks");
        let tasks = CString::new(tasks)
            .map_err(|_| CgroupError::Unavailable(format!("{} has a NUL byte in its name", dir.display())))?;
        Ok(InitJoin::Below { parent, tasks })
    }

    /// What `InitArgs::join_cgroups` takes: a descriptor and, for a directory, the path below it.
    pub(crate) fn for_init(&self) -> (RawFd, Option<&CStr>) {
        use std::os::fd::AsRawFd;
        match self {
            InitJoin::TasksFile(fd) => (*fd, None),
            InitJoin::Below { parent, tasks } => (parent.as_raw_fd(), Some(tasks.as_c_str())),
        }
    }
}

/// A cgroup hierarchy mounted on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hierarchy {
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Its controllers (v1: from the mount options; empty for v2 here).
    pub controllers: Vec<String>,
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
        let text = fs::read_to_string(path).map_err(io_err("reading", path))?;
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
        for line in proc_self_cgroup()?.lines() {
            // hierarchy-id:controllers:path; "0::path" is cgroup2.
            let mut fields = line.splitn(3, ':');
            let (Some(id), Some(names)) = (fields.next(), fields.next()) else { return None };
            if id == "0" {
                let mount_point = root.join("unified");
                (fs_kind(&mount_point)? == FsKind::Cgroup2).then_some(())?;
                unified = Some(mount_point);
                continue;
            }
            let controllers: Vec<String> =
                names.split(',').filter(|c| V1_CONTROLLERS.contains(c)).map(str::to_string).collect();
            if controllers.is_empty() {
                // name=systemd and other hierarchies without a controller the sandbox knows.
                continue;
            }
            let mount_point = root.join(names);
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
        for line in text.lines() {
            // id parent major:minor root mount-point options [optional...] - fstype source super
            let Some((left, right)) = line.split_once(" - ") else { continue };
            let mount_point = left.split(' ').nth(4).map(unescape_mountinfo);
            let mut right = right.split(' ');
            let (Some(fstype), Some(_source), Some(super_opts)) = (right.next(), right.next(), right.next()) else {
                continue;
            };
            let Some(mount_point) = mount_point else { continue };
            match fstype {
                "cgroup2" => {
                    unified.get_or_insert(mount_point);
                }
                "cgroup" => {
                    let controllers: Vec<String> = super_opts
                        .split(',')
                        .filter(|o| V1_CONTROLLERS.contains(o))
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

/// The v1 controllers the sandbox knows of (others, like `name=systemd`, are not controllers).
const V1_CONTROLLERS: [&str; 12] =
    ["cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "net_cls", "blkio", "perf_event", "net_prio", "hugetlb", "pids"];

/// mountinfo escapes space, tab, newline and backslash as `\040` etc.
fn unescape_mountinfo(field: &str) -> PathBuf {
    let mut out = Vec::with_capacity(field.len());
    let bytes = field.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\' && i + 3 < bytes.len() && bytes[i + 1..i + 4].iter().all(|b| (b'0'..=b'7').contains(b)) {
            let value = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(value);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Identity of this launcher process, written into the names of its runs' cgroups
/// (`<pid-namespace inode>-<pid>-<start time>-<sequence>`), so that a later launcher can tell
/// whether the owner of a cgroup it finds is still alive, without confusing a recycled PID or a
/// launcher in another PID namespace with the owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Owner {
    pub pid_namespace: u64,
    pub pid: u32,
    pub start_time: u64,
}

impl Owner {
    fn current() -> Owner {
        use std::os::unix::fs::MetadataExt;
        let pid_namespace = fs::metadata("/proc/self/ns/pid").map(|m| m.ino()).unwrap_or(0);
        let pid = std::process::id();
        let start_time = process_start_time(pid).unwrap_or(0);
        Owner { pid_namespace, pid, start_time }
    }

    /// Whether the launcher that created a cgroup is gone (same PID namespace, and its PID is
    /// free or now belongs to a process that started at another time).
    fn is_dead(&self) -> bool {
        process_start_time(self.pid) != Some(self.start_time)
    }
}

/// Reads a small file in one `read` where it fits in 4 KiB (`fs::read_to_string` starts with 32
/// bytes for a `/proc` file, whose size reads as 0, and doubles: six reads for `/proc/PID/stat`).
pub(crate) fn read_small_file(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut text = String::with_capacity(4096);
    fs::File::open(path)?.read_to_string(&mut text)?;
    Ok(text)
}

/// Field `field` (1-based, as proc(5) numbers them; 3 or later) of `/proc/PID/stat`.
fn stat_field(pid: u32, field: usize) -> Option<u64> {
    let stat = read_small_file(Path::new(&format!("/proc/{pid}/stat"))).ok()?;
    // The command name (field 2) may contain spaces and parentheses: skip past the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(field - 3)?.parse().ok()
}

/// Field 22 of `/proc/PID/stat`: start time in clock ticks after boot.
pub(crate) fn process_start_time(pid: u32) -> Option<u64> {
    stat_field(pid, 22)
}

/// Field 4 of `/proc/PID/stat`: the parent's PID (0 above the top of a PID namespace).
pub(crate) fn process_parent(pid: u32) -> Option<u32> {
    stat_field(pid, 4).and_then(|parent| u32::try_from(parent).ok())
}

fn owner() -> Owner {
    static OWNER: OnceLock<Owner> = OnceLock::new();
    *OWNER.get_or_init(Owner::current)
}

/// A fresh, unique cgroup name for one run of this launcher.
pub(crate) fn new_run_name() -> String {
    static SEQUENCE: AtomicU64 = AtomicU64::new(0);
    let o = owner();
    let seq = SEQUENCE.fetch_add(1, Ordering::Relaxed);
    format!("{}-{}-{}-{}", o.pid_namespace, o.pid, o.start_time, seq)
}

/// Whether `name` is a run cgroup's name (`<pid namespace>-<pid>-<start time>-<n>`).
pub(crate) fn is_run_name(name: &str) -> bool {
    parse_run_name(name).is_some()
}

/// Whether the cgroup `path` is a run's cgroup or lies below one.
pub(crate) fn in_a_run_cgroup(path: &Path) -> bool {
    path.components().any(|c| c.as_os_str().to_str().is_some_and(is_run_name))
}

/// `SANDBOX_CGROUP_PARENT`: a delegated cgroup for runs that do not name one (e.g. `#[isolated]`
/// tests, which have no command line). Inherited into a run (a bounded job's tests), it is
/// ignored: there runs nest in the run's cgroup, under its limits.
pub(crate) fn parent_from_environment() -> Option<PathBuf> {
    std::env::var_os("SANDBOX_CGROUP_PARENT").filter(|v| !v.is_empty()).filter(|_| !inside_a_run()).map(PathBuf::from)
}

/// Whether this process lives in a run's cgroup (or below one), in any hierarchy: it is a
/// sandbox's command or test, and what a launcher here starts must nest in that run.
pub(crate) fn inside_a_run() -> bool {
    read_small_file(Path::new("/proc/self/cgroup"))
        .is_ok_and(|text| text.lines().any(|line| line.splitn(3, ':').nth(2).is_some_and(|p| in_a_run_cgroup(Path::new(p)))))
}

fn parse_run_name(name: &str) -> Option<Owner> {
    let mut parts = name.split('-');
    let owner = Owner {
        pid_namespace: parts.next()?.parse().ok()?,
        pid: parts.next()?.parse().ok()?,
        start_time: parts.next()?.parse().ok()?,
    };
    parts.next()?.parse::<u64>().ok()?;
    parts.next().is_none().then_some(owner)
}

/// Removes the cgroups in `parent` left by launchers of this PID namespace that died (e.g. by
/// SIGKILL) before cleaning up. Their processes died with them (PDEATHSIG on the sandbox's init);
/// anything still listed is killed first. Returns the removed directories.
pub(crate) fn remove_stale_runs(parent: &Path) -> Vec<PathBuf> {
    let me = owner();
    let mut removed = Vec::new();
    let Ok(entries) = fs::read_dir(parent) else { return removed };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(owner) = name.to_str().and_then(parse_run_name) else { continue };
        if owner.pid_namespace != me.pid_namespace || owner == me || !owner.is_dead() {
            continue;
        }
        let dir = entry.path();
        for sub in subtree_deepest_first(&dir) {
            kill_listed_processes(&sub);
        }
        if remove_tree(&dir).is_ok() {
            removed.push(dir);
        }
    }
    removed
}

/// A new cgroup for one run below `cgroup_parent` (default: `sandbox` in each hierarchy), with
/// `limits`. v1 directories are only named: the launcher makes them with
/// [`RunCgroup::finish_creation`] (after the clone, while the init sets up its mounts). A v2
/// cgroup is made at once: the init is created inside it.
pub(crate) fn plan_run_cgroup(
    layout: &Layout,
    cgroup_parent: Option<&Path>,
    limits: &Limits,
) -> Result<Box<dyn RunCgroup>, CgroupError> {
    match layout {
        Layout::Unified { mount_point } => {
            Ok(Box::new(V2Cgroup::create(mount_point, cgroup_parent, limits)?))
        }
        _ => Ok(Box::new(V1Cgroup::plan(layout, cgroup_parent, limits)?)),
    }
}

/// Stale-run cleanup, once per process and runs directory: at a launcher's first run there.
pub(crate) fn clean_stale_once(parent: &Path) {
    use std::collections::HashSet;
    use std::sync::Mutex;
    static SEEN: Mutex<Option<HashSet<PathBuf>>> = Mutex::new(None);
    let first = SEEN
        .lock()
        .map(|mut seen| {
            let seen = seen.get_or_insert_with(HashSet::new);
            !seen.contains(parent) && seen.insert(parent.to_path_buf())
        })
        .unwrap_or(false);
    if first && holds_other_cgroups(parent) {
        remove_stale_runs(parent);
    }
}

/// How many child cgroups the cgroup directory `dir` has, without listing it: a directory's link
/// count is 2 plus its subdirectories (kernfs keeps it so, on v1 and v2).
pub(crate) fn child_cgroup_count(dir: &Path) -> Result<u64, CgroupError> {
    use std::os::unix::fs::MetadataExt;
    Ok(fs::metadata(dir).map_err(io_err("reading", dir))?.nlink().saturating_sub(2))
}

/// Whether the runs directory `parent`, which holds this run's cgroup, holds others too.
/// Usually it does not, and then listing it (on v1 ~30 control files besides the runs) is not
/// needed: ~0.2 ms of a 3 ms `sandbox run` here. When in doubt, it is listed.
fn holds_other_cgroups(parent: &Path) -> bool {
    child_cgroup_count(parent).map_or(true, |count| count > 1)
}

#[cfg(test)]
mod tests;
