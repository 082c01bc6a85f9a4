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
mod tests {
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
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/a\040b\\"), PathBuf::from(r"/a b\\"));
    }

    #[test]
    fn counters_parse_from_files() {
        let dir = tempdir("counters");
        fs::write(dir.join("memory.events"), "low 0\nhigh 0\nmax 12\noom 2\noom_kill 2\n").unwrap();
        fs::write(dir.join("pids.events"), "max 7\n").unwrap();
        fs::create_dir(dir.join("child")).unwrap();
        fs::write(dir.join("child/pids.events"), "max 5\n").unwrap();
        fs::write(dir.join("memory.peak"), "4096\n").unwrap();
        fs::write(dir.join("garbage"), "many\n").unwrap();
        assert_eq!(read_key(&dir, "memory.events", "oom_kill").unwrap(), Some(2));
        assert_eq!(read_key(&dir, "memory.events", "absent").unwrap(), Some(0));
        assert_eq!(read_key(&dir, "nothing", "max").unwrap(), None);
        assert_eq!(read_number(&dir, "memory.peak").unwrap(), Some(4096));
        assert!(read_number(&dir, "garbage").unwrap_err().to_string().contains("garbage"));
        // Old kernels: the forking task's cgroup counts, so the subtree is summed...
        assert_eq!(pids_limit_hits(&dir).unwrap(), Some(12));
        // ...new ones count hierarchically and say so with pids.events.local.
        fs::write(dir.join("pids.events.local"), "max 2\n").unwrap();
        assert_eq!(pids_limit_hits(&dir).unwrap(), Some(7));
        fs::remove_dir_all(&dir).unwrap();
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
        let dir = tempdir("stale");
        let me = owner();
        let dead = format!("{}-{}-{}-0", me.pid_namespace, u32::MAX / 2, 1);
        let other_namespace = format!("{}-{}-{}-0", me.pid_namespace + 1, u32::MAX / 2, 1);
        let mine = new_run_name();
        for name in [&dead, &other_namespace, &mine, &"unrelated".to_string()] {
            fs::create_dir(dir.join(name)).unwrap();
        }
        let removed = remove_stale_runs(&dir);
        assert_eq!(removed, vec![dir.join(&dead)]);
        assert!(dir.join(&other_namespace).exists() && dir.join(&mine).exists());
        fs::remove_dir_all(&dir).unwrap();
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

    pub(crate) fn tempdir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("sandbox-unit-{tag}-{}-{}", std::process::id(), new_run_name()));
        fs::create_dir_all(&dir).unwrap();
        dir
    }
}
