//! cgroup v1: one directory per hierarchy (`memory`, `pids`, and `cpu` with a CPU limit), which
//! the run's init joins itself (`0` into `tasks`: the one migration that skips the kernel's
//! global `cgroup_threadgroup_rwsem`, see `InitArgs::join_cgroups`). CPU time comes from the
//! init's rusage, not a `cpuacct` cgroup: the init reaps every process of the sandbox itself,
//! also at a timeout ([`crate::init`]), so their CPU time all reaches it, and one hierarchy fewer
//! spares each run a `mkdir`, a migration and an `rmdir` (BENCHMARKS.md).
//!
//! A contained run is also in a cgroup of its own, or one no command can write, in every other
//! hierarchy of the machine (`freezer`, `devices`, `name=systemd`, ..., and the controller-less
//! cgroup2 of a hybrid layout), with no limits: its cgroup namespace is rooted at the cgroup the
//! init is in, hierarchy by hierarchy, and where that is the launcher's, a command that mounts
//! the hierarchy itself would see the machine's cgroups there, a v1 root's `release_agent`
//! among them (`mounts/containment`). Where the launcher is at a hierarchy's root, that is the
//! directory contained runs share (`shared`); elsewhere the run makes its own below the
//! launcher's. The init joins the v1 ones by `tasks`; it is cloned into the cgroup2 one (a move
//! there takes the kernel's global `cgroup_threadgroup_rwsem` for writing: ~7 ms after a quiet
//! spell). A fork server is in them already, once for all its tests (`enclosure`).

use std::fs;
use std::path::{Path, PathBuf};

use std::os::fd::AsFd;

use nix::unistd::Pid;

use super::{
    child_cgroup_count, cpu_quota_and_period_us,
    clean_stale_once, io_err, kill_listed_processes, new_run_name, pids_events_hierarchical, pids_limit_hits,
    read_small_file, remove_tree, CgroupError, CgroupVersion, Hierarchy, InitJoin, Layout, OpenFiles, Placement,
    NamespaceMount, RunCgroup, Stats, settled, subtree_deepest_first, write_file, DELEGATED_DIR, FREEZE_WAIT,
};
use crate::config::Limits;


/// One run's cgroups on v1: a directory in each hierarchy used.
#[derive(Debug)]
pub struct V1Cgroup {
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    cpu: Option<PathBuf>,
    /// Every distinct directory of the run, in creation order. Until they are made, removing
    /// them finds some or all missing, which [`remove_tree`] takes as done.
    dirs: Vec<PathBuf>,
    /// The limits to write once the directories are made ([`V1Cgroup::make`]); `Some` while
    /// they are not.
    pending: Option<Limits>,
    removed: bool,
    /// The limits written into the files now.
    limits: Limits,
    /// What the counters that cannot be reset said when this run started (zero in a new
    /// cgroup; earlier runs' counts in a reused one, see [`V1Cgroup::ready_for_reuse`]).
    start: Counters,
    /// What the last [`RunCgroup::stats`] read, for [`V1Cgroup::ready_for_reuse`].
    last: Option<LastRun>,
    files: OpenFiles,
    /// The `--cgroup-parent` it was made under, for the pool of reused cgroups.
    parent: Option<PathBuf>,
    /// Its directory in the freezer hierarchy, where there is one: made only when a run that
    /// timed out is frozen ([`RunCgroup::set_frozen`]), so that other runs pay nothing for it.
    freezer: Option<PathBuf>,
    /// Whether `freezer` was made (and must be removed).
    freezer_made: bool,
    /// Something in the run changed a limit file: the cgroup is not used again.
    limits_tampered: bool,
    /// Whether `pids.events` counts the whole subtree, looked up at the first run.
    pids_events_hierarchical: std::sync::OnceLock<bool>,
    /// A contained run's: its processes live in each directory's [`DELEGATED_DIR`].
    contained: bool,
    /// The hierarchy of each of `dirs`, for [`RunCgroup::namespace_mounts`].
    hierarchies: Vec<Hierarchy>,
    /// A contained run's own directory in each other v1 hierarchy without a shared one (see the
    /// module doc), made with `dirs`; the processes live in it, no delegated directory below.
    enclosing: Vec<PathBuf>,
    /// The one of `enclosing` in the cpuset hierarchy, whose new cgroups have no CPUs or
    /// memory nodes until given their parent's (unless it has `cgroup.clone_children`).
    enclosing_cpuset: Option<PathBuf>,
    /// The directory contained runs share in each other v1 hierarchy where there is one
    /// (`shared`), joined like `enclosing` but neither made, nor emptied, nor removed by a run.
    shared: Vec<PathBuf>,
    /// A contained run's directory in the controller-less cgroup2 of a hybrid layout (the init
    /// is cloned into it).
    unified: Option<Unified>,
}

/// A contained run's directory in a hybrid layout's cgroup2: its own, made at once, or the
/// shared one.
#[derive(Debug)]
struct Unified {
    dir: PathBuf,
    fd: std::os::fd::OwnedFd,
    shared: bool,
}

/// The counters a v1 cgroup cannot reset.
#[derive(Debug, Clone, Copy, Default)]
struct Counters {
    oom_kills: u64,
    pids_limit_hits: u64,
}

/// What [`RunCgroup::stats`] read that deciding on reuse needs again.
#[derive(Debug, Clone, Copy)]
struct LastRun {
    counters: Counters,
    peak_pids: Option<u64>,
}

/// A reused cgroup must not hold more memory than this: what the kernel frees lazily after a
/// run (kernel objects, and charges it keeps in per-CPU batches of 64 pages) counts towards the
/// next run's peak, so a run's page cache (files it read) must not. Above it, the cgroup is
/// removed and a new one made.
const MAX_REUSED_CHARGE_BYTES: u64 = 1 << 20;

impl V1Cgroup {
    /// Names the run's directory in the memory and pids hierarchies (and cpu with a CPU limit)
    /// without making them: `<hierarchy>/<cgroup_parent>/<run>`, or without a parent below this
    /// process's own cgroup (`default_runs_dir`). The launcher plans the cgroup before the
    /// clone, so that the init knows where to join, and makes it while the init sets up its
    /// mounts ([`V1Cgroup::make`], from [`RunCgroup::place`]; on error, what was made is
    /// removed again).
    pub fn plan(layout: &Layout, cgroup_parent: Option<&Path>, limits: &Limits, contained: bool) -> Result<V1Cgroup, CgroupError> {
        let relative_parent = cgroup_parent.map(|p| p.strip_prefix("/").unwrap_or(p).to_path_buf());
        let proc_self_cgroup = match (&relative_parent, contained) {
            (Some(_), false) => String::new(),
            _ => own_cgroups()?,
        };
        let name = new_run_name();
        // The run's directory in `hierarchy`.
        let run_dir = |hierarchy: &Hierarchy| {
            let runs = match &relative_parent {
                Some(parent) => hierarchy.mount_point.join(parent),
                None => default_runs_dir(hierarchy, &proc_self_cgroup),
            };
            runs.join(&name)
        };
        // Where a contained run's directories outside its limits' hierarchies go: where runs go
        // without a `--cgroup-parent`, which names where the limits go (one made for them would
        // be left in every other hierarchy).
        let enclosing_dir = |hierarchy: &Hierarchy| default_runs_dir(hierarchy, &proc_self_cgroup).join(&name);
        let mut cgroup = V1Cgroup {
            memory: None,
            pids: None,
            cpu: None,
            dirs: Vec::new(),
            pending: Some(limits.clone()),
            removed: false,
            limits: Limits::default(),
            start: Counters::default(),
            last: None,
            files: OpenFiles::default(),
            parent: cgroup_parent.map(Path::to_path_buf),
            freezer: None,
            freezer_made: false,
            limits_tampered: false,
            pids_events_hierarchical: std::sync::OnceLock::new(),
            contained,
            hierarchies: Vec::new(),
            enclosing: Vec::new(),
            enclosing_cpuset: None,
            shared: Vec::new(),
            unified: None,
        };
        let wanted: [(&str, bool); 3] = [
            ("memory", limits.memory_bytes.is_some()),
            ("pids", limits.pids.is_some()),
            ("cpu", limits.cpu_cores.is_some()),
        ];
        for (controller, required) in wanted {
            if controller == "cpu" && !required {
                continue;
            }
            let Some(hierarchy) = layout.v1_hierarchy(controller) else {
                if required {
                    return Err(CgroupError::Unavailable(format!(
                        "the {controller} limit needs the cgroup v1 '{controller}' controller, which is not mounted \
                         (see /proc/self/mountinfo): mount it (mount -t cgroup -o {controller} none \
                         /sys/fs/cgroup/{controller})"
                    )));
                }
                continue;
            };
            let dir = run_dir(hierarchy);
            if !cgroup.dirs.contains(&dir) {
                cgroup.dirs.push(dir.clone());
                cgroup.hierarchies.push(hierarchy.clone());
            }
            match controller {
                "memory" => cgroup.memory = Some(dir),
                "pids" => cgroup.pids = Some(dir),
                _ => cgroup.cpu = Some(dir),
            }
        }
        cgroup.freezer = layout.v1_hierarchy("freezer").map(run_dir);
        // A fork server in an enclosure of its own is in a directory in each of these already.
        if contained && !super::enclosure::is_enclosed() {
            let owner = crate::sys::withheld_ids();
            for hierarchy in layout.v1_hierarchies() {
                if !cgroup.hierarchies.iter().any(|used| used.mount_point == hierarchy.mount_point) {
                    if let Some(dir) = super::shared::dir(hierarchy, &proc_self_cgroup, owner) {
                        cgroup.shared.push(dir);
                        continue;
                    }
                    let dir = enclosing_dir(hierarchy);
                    if hierarchy.controllers.iter().any(|c| c == "cpuset") {
                        cgroup.enclosing_cpuset = Some(dir.clone());
                    }
                    cgroup.enclosing.push(dir);
                }
            }
            if let Layout::Hybrid { unified, .. } = layout {
                let hierarchy = Hierarchy::hybrid_unified(unified);
                let (dir, shared) = match super::shared::dir(&hierarchy, &proc_self_cgroup, owner) {
                    Some(dir) => (dir, true),
                    None => {
                        let dir = enclosing_dir(&hierarchy);
                        make_dir(&dir)?;
                        (dir, false)
                    }
                };
                match super::open_directory(&dir).map_err(|errno| io_err("opening", &dir)(errno.into())) {
                    Ok(fd) => cgroup.unified = Some(Unified { dir, fd, shared }),
                    Err(err) => {
                        if !shared {
                            let _ = fs::remove_dir(&dir);
                        }
                        return Err(err);
                    }
                }
            }
        }
        Ok(cgroup)
    }

    /// Moves the run's processes into its freezer directory (made now) and freezes it: a few
    /// rounds, for what forks meanwhile.
    fn freeze(&mut self) -> Result<bool, CgroupError> {
        let (Some(freezer), Some(source)) = (self.freezer.clone(), self.pids.clone().or_else(|| self.memory.clone())) else {
            return Ok(false);
        };
        let source = self.processes_dir(&source);
        if !self.freezer_made {
            fs::create_dir_all(&freezer).map_err(io_err("creating cgroup", &freezer))?;
            self.freezer_made = true;
        }
        for _ in 0..3 {
            let listed: String =
                subtree_deepest_first(&source).iter().filter_map(|dir| read_small_file(&dir.join("cgroup.procs")).ok()).collect();
            let moved = read_small_file(&freezer.join("cgroup.procs")).unwrap_or_default();
            let missing: Vec<&str> = listed.lines().filter(|pid| !moved.lines().any(|m| m == *pid)).collect();
            if missing.is_empty() {
                break;
            }
            for pid in missing {
                // A process that exited meanwhile (ESRCH) needs no freezing.
                let _ = write_file(&freezer, "cgroup.procs", pid);
            }
        }
        write_file(&freezer, "freezer.state", "FROZEN")?;
        Ok(settled(FREEZE_WAIT, || read_small_file(&freezer.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")))
    }

    /// Writes the limits that differ from those in the files now (all of them in a new cgroup;
    /// what changed for the next run of a reused one). A contained run's delegated directory
    /// gets a copy, for the command to read where it looks (`/sys/fs/cgroup/pids/pids.max`);
    /// what it writes there changes nothing above.
    pub(crate) fn apply_limits(&mut self, limits: &Limits) -> Result<(), CgroupError> {
        // The cpu hierarchy is joined only for a CPU limit: a reused cgroup made with (without)
        // one cannot serve a run without (with) one.
        if limits.cpu_cores.is_some() != self.cpu.is_some() {
            return Err(CgroupError::Unavailable(format!(
                "the run's cgroup was made {} a CPU limit and cannot take limits {} one",
                if self.cpu.is_some() { "with" } else { "without" },
                if limits.cpu_cores.is_some() { "with" } else { "without" },
            )));
        }
        let unlimited = |value: Option<u64>, none: &str| value.map_or_else(|| none.to_string(), |v| v.to_string());
        // The run's directory, then its delegated one: a child's CPU quota may not exceed its
        // parent's.
        let copies = |dir: &PathBuf| -> Vec<PathBuf> {
            let mut dirs = vec![dir.clone()];
            dirs.extend(self.contained.then(|| dir.join(DELEGATED_DIR)));
            dirs
        };
        if let Some(run_dir) = &self.pids {
            if limits.pids != self.limits.pids {
                for dir in &copies(run_dir) {
                    self.files.write(dir, "pids.max", &unlimited(limits.pids, "max"))?;
                }
            }
        }
        for dir in &self.memory.as_ref().map(copies).unwrap_or_default() {
            if limits.memory_bytes != self.limits.memory_bytes {
                // No swap: memory+swap limited to the same amount where the kernel accounts swap
                // (swapaccount=1), otherwise tell reclaim not to swap this cgroup out.
                // Swap accounting is a boot setting: looked up once per process.
                static SWAP_ACCOUNTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
                let swap_accounted = *SWAP_ACCOUNTED.get_or_init(|| dir.join("memory.memsw.limit_in_bytes").exists());
                let value = unlimited(limits.memory_bytes, "-1");
                // memory+swap may never be below memory: raising, it goes first; lowering, last.
                let raising = match (limits.memory_bytes, self.limits.memory_bytes) {
                    (None, _) => true,
                    (Some(new), Some(old)) => new > old,
                    (Some(_), None) => false,
                };
                if swap_accounted && raising {
                    self.files.write(dir, "memory.memsw.limit_in_bytes", &value)?;
                }
                self.files.write(dir, "memory.limit_in_bytes", &value)?;
                if swap_accounted && !raising {
                    self.files.write(dir, "memory.memsw.limit_in_bytes", &value)?;
                }
                if !swap_accounted && self.limits.memory_bytes.is_none() {
                    self.files.write(dir, "memory.swappiness", "0")?;
                }
            }
        }
        if let (Some(run_dir), Some(cores)) = (&self.cpu, limits.cpu_cores) {
            if Some(cores) != self.limits.cpu_cores {
                let (quota, period) = cpu_quota_and_period_us(cores);
                let dirs = copies(run_dir);
                if self.limits.cpu_cores.is_some() {
                    // Reused: the old quota must not meet the new period; unset it meanwhile,
                    // the child's first.
                    for dir in dirs.iter().rev() {
                        self.files.write(dir, "cpu.cfs_quota_us", "-1")?;
                    }
                }
                for dir in &dirs {
                    self.files.write(dir, "cpu.cfs_period_us", &period.to_string())?;
                    self.files.write(dir, "cpu.cfs_quota_us", &quota.to_string())?;
                }
            }
        }
        self.limits = limits.clone();
        Ok(())
    }

    /// Whether no run left anything behind that the next run would inherit: no processes, no
    /// child cgroups, at most [`MAX_REUSED_CHARGE_BYTES`] of memory, and a `pids.peak` (as the
    /// last run's stats read it) of at most 2, the floor of every run (init and command).
    /// `pids.peak` cannot be reset: while it stays at the floor, a run's peak is exactly 2 or
    /// the higher value it reads.
    fn is_clean(&self, last: &LastRun) -> Result<bool, CgroupError> {
        if last.peak_pids.unwrap_or(0) > 2 || self.limits_tampered {
            return Ok(false);
        }
        for dir in &self.dirs {
            // A contained run's one child is its delegated directory, which must have none.
            let children_of_its_own = if self.contained { 1 } else { 0 };
            if child_cgroup_count(dir)? != children_of_its_own || (self.contained && has_child_cgroups(&self.processes_dir(dir))?) {
                return Ok(false);
            }
        }
        for dir in self.outside_limits() {
            if has_child_cgroups(dir)? {
                return Ok(false);
            }
        }
        if let Some(dir) = &self.pids {
            if self.files.read_number(dir, "pids.current")?.unwrap_or(0) != 0 {
                return Ok(false);
            }
        }
        if let Some(dir) = &self.memory {
            if self.files.read_number(dir, "memory.usage_in_bytes")?.unwrap_or(0) > MAX_REUSED_CHARGE_BYTES {
                return Ok(false);
            }
        }
        Ok(true)
    }
}

/// `/proc/self/cgroup`, read once per process: a launcher never changes its own v1 cgroups (its
/// init joins the run's), and a fork server plans many runs. A copy of the process (a test body,
/// whose sandbox may start its own) has another PID and reads its own.
fn own_cgroups() -> Result<String, CgroupError> {
    static OWN: std::sync::Mutex<Option<(u32, String)>> = std::sync::Mutex::new(None);
    let pid = std::process::id();
    let mut own = OWN.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some((_, text)) = own.as_ref().filter(|(owner, _)| *owner == pid) {
        return Ok(text.clone());
    }
    let path = Path::new("/proc/self/cgroup");
    let text = read_small_file(path).map_err(io_err("reading", path))?;
    *own = Some((pid, text.clone()));
    Ok(text)
}

/// Where runs go in `hierarchy` without `--cgroup-parent`: below this process's own cgroup there
/// (its line in `/proc/self/cgroup`), so that every limit the caller is under (a `sandbox run`
/// around a test binary, a CI job's cgroup) bounds the runs too: v1 limits are hierarchical.
/// Directly in the own cgroup, with no runs directory of their own: one left there would keep
/// the caller's cgroup from being removed when its owner ends (a cgroup with children cannot be
/// removed). At the hierarchy's root, in `sandbox`, out of the way of the machine's top-level
/// cgroups. When the own cgroup is not below the mount point (a container that sees only its
/// own cgroup, bind-mounted without a cgroup namespace), the mount point is that cgroup.
pub(crate) fn default_runs_dir(hierarchy: &Hierarchy, proc_self_cgroup: &str) -> PathBuf {
    match own_path(hierarchy, proc_self_cgroup) {
        None | Some("") => hierarchy.mount_point.join("sandbox"),
        Some(own) => {
            let dir = hierarchy.mount_point.join(own);
            if dir.is_dir() {
                dir
            } else {
                hierarchy.mount_point.clone()
            }
        }
    }
}

/// This process's cgroup in `hierarchy`, relative to its mount point (`""` at its root), from
/// the text of `/proc/self/cgroup`: the line that names one of the hierarchy's controllers.
pub(crate) fn own_path<'a>(hierarchy: &Hierarchy, proc_self_cgroup: &'a str) -> Option<&'a str> {
    super::proc_cgroup_lines(proc_self_cgroup).find_map(|line| {
        let listed = line.controllers.split(',').any(|c| hierarchy.controllers.iter().any(|h| h == c));
        listed.then(|| line.path.trim_start_matches('/'))
    })
}

/// Whether the cgroup directory `dir` has child cgroups.
fn has_child_cgroups(dir: &Path) -> Result<bool, CgroupError> {
    Ok(child_cgroup_count(dir)? != 0)
}

/// Makes the cgroup directory `dir`, and its parents where they are missing (the runs
/// directory exists after the first run: tried without checking).
fn make_dir(dir: &Path) -> Result<(), CgroupError> {
    match fs::create_dir(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            let parent = dir.parent().expect("run dir has a parent");
            fs::create_dir_all(parent).map_err(io_err("creating cgroup", parent))?;
            fs::create_dir(dir).map_err(io_err("creating cgroup", dir))
        }
        Err(err) => Err(io_err("creating cgroup", dir)(err)),
    }
}

/// A new v1 cpuset cgroup has no CPUs and no memory nodes, and no process may join it, unless
/// its parent has `cgroup.clone_children`: it gets its parent's, and so does a parent made
/// with it (the runs directory), up to one that has them (the hierarchy's root always does).
pub(super) fn give_parents_cpus(dir: &Path) -> Result<(), CgroupError> {
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let read = |dir: &Path| read_small_file(&dir.join(file)).map(|text| text.trim().to_string()).map_err(io_err("reading", &dir.join(file)));
        let mut empty = vec![dir];
        let mut value = read(dir)?;
        while value.is_empty() {
            let Some(parent) = empty.last().and_then(|dir| dir.parent()) else { break };
            value = read(parent)?;
            empty.push(parent);
        }
        // The last one read has them; the others get them, from the top down.
        empty.pop();
        for dir in empty.iter().rev() {
            write_file(dir, file, &value)?;
        }
    }
    Ok(())
}

impl V1Cgroup {
    /// Whether this is a contained run's cgroup.
    pub(crate) fn is_contained(&self) -> bool {
        self.contained
    }

    /// A contained run's directories outside its limits' hierarchies (see the module doc).
    fn outside_limits(&self) -> impl Iterator<Item = &PathBuf> {
        self.enclosing.iter().chain(&self.shared).chain(self.unified.as_ref().map(|unified| &unified.dir))
    }

    /// Those of them that are the run's own (not shared with other runs).
    fn own_outside_limits(&self) -> impl Iterator<Item = &PathBuf> {
        let unified = self.unified.as_ref().filter(|unified| !unified.shared);
        self.enclosing.iter().chain(unified.map(|unified| &unified.dir))
    }

    /// Where the run's processes live in the run's directory `dir`.
    fn processes_dir(&self, dir: &Path) -> PathBuf {
        match self.contained {
            true => dir.join(DELEGATED_DIR),
            false => dir.to_path_buf(),
        }
    }

    /// Makes the directories that [`V1Cgroup::plan`] only named, and writes the limits; nothing
    /// for a cgroup that exists.
    pub(crate) fn make(&mut self) -> Result<(), CgroupError> {
        let Some(limits) = self.pending.take() else { return Ok(()) };
        for dir in &self.dirs {
            make_dir(dir)?;
            if self.contained {
                let delegated = dir.join(DELEGATED_DIR);
                fs::create_dir(&delegated).map_err(io_err("creating cgroup", &delegated))?;
            }
        }
        for dir in &self.enclosing {
            make_dir(dir)?;
            if self.enclosing_cpuset.as_ref() == Some(dir) {
                give_parents_cpus(dir)?;
            }
        }
        self.apply_limits(&limits)
    }

    /// After [`RunCgroup::stats`] of a run whose processes are all gone: readies the cgroup for
    /// another run, if the next run's counters can then be told exactly as in a new cgroup.
    /// `false` when not (then remove it). See [`pool`](super::pool).
    pub(crate) fn ready_for_reuse(&mut self) -> Result<bool, CgroupError> {
        let Some(last) = self.last.take() else { return Ok(false) };
        // A run that was frozen (it timed out) leaves a freezer directory: not reused.
        if self.removed || self.freezer_made || !self.is_clean(&last)? {
            return Ok(false);
        }
        if let Some(dir) = &self.memory {
            // Writing 0 sets the peak to the usage now (at most MAX_REUSED_CHARGE_BYTES).
            self.files.write(dir, "memory.max_usage_in_bytes", "0")?;
        }
        self.start = last.counters;
        Ok(true)
    }

    /// Removes the cgroup (and children the command created); idempotent.
    pub(crate) fn remove(&mut self) -> Result<(), CgroupError> {
        if self.removed {
            return Ok(());
        }
        for dir in &self.dirs {
            if self.contained {
                remove_tree(&dir.join(DELEGATED_DIR))?;
            }
            remove_tree(dir)?;
        }
        for dir in self.own_outside_limits() {
            remove_tree(dir)?;
        }
        if let (true, Some(freezer)) = (self.freezer_made, &self.freezer) {
            remove_tree(freezer)?;
        }
        self.removed = true;
        Ok(())
    }
}

impl RunCgroup for V1Cgroup {
    fn limits_changed(&mut self) -> Vec<String> {
        let mut expected: Vec<(&Path, &str, String)> = Vec::new();
        if let (Some(dir), Some(pids)) = (&self.pids, self.limits.pids) {
            expected.push((dir, "pids.max", pids.to_string()));
        }
        if let (Some(dir), Some(bytes)) = (&self.memory, self.limits.memory_bytes) {
            let bytes = super::page_rounded(bytes).to_string();
            if dir.join("memory.memsw.limit_in_bytes").exists() {
                expected.push((dir, "memory.memsw.limit_in_bytes", bytes.clone()));
            }
            expected.push((dir, "memory.limit_in_bytes", bytes));
        }
        if let (Some(dir), Some(cores)) = (&self.cpu, self.limits.cpu_cores) {
            let (quota, period) = cpu_quota_and_period_us(cores);
            expected.push((dir, "cpu.cfs_quota_us", quota.to_string()));
            expected.push((dir, "cpu.cfs_period_us", period.to_string()));
        }
        // Through the kept descriptors: a reused cgroup reads its limits without an open.
        let changed_in = |below: Option<&str>| -> Vec<String> {
            expected
                .iter()
                .filter_map(|(dir, file, value)| {
                    let dir = below.map_or_else(|| dir.to_path_buf(), |below| dir.join(below));
                    super::limit_changed(file, self.files.read(&dir, file).ok().flatten(), value)
                })
                .collect()
        };
        let changed = changed_in(None);
        // The delegated copy the command may change: harmless, but the next run of a reused
        // cgroup must not find it changed (a cgroup that is not kept is not read).
        let copy_changed = self.contained && super::pool::is_enabled() && !changed_in(Some(DELEGATED_DIR)).is_empty();
        self.limits_tampered |= !changed.is_empty() || copy_changed;
        changed
    }

    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn placement(&self) -> Result<Placement<'_>, CgroupError> {
        let sub = self.contained.then_some(DELEGATED_DIR);
        let made = self.pending.is_none();
        let own = self.dirs.iter().map(|dir| (dir, sub, made)).chain(self.enclosing.iter().map(|dir| (dir, None, made)));
        let processes_dirs = own.chain(self.shared.iter().map(|dir| (dir, None, true)));
        let joins = processes_dirs
            .map(|(dir, sub, made)| match made {
                // Made (a reused cgroup, a rootless run's, or a shared one): its `tasks` file,
                // kept open for the runs after; the init's join is then a single write.
                true => self.files.writable_fd(&sub.map_or_else(|| dir.clone(), |sub| dir.join(sub)), "tasks").map(InitJoin::TasksFile),
                false => InitJoin::below(dir, sub),
            })
            .collect::<Result<_, _>>()?;
        Ok(Placement { clone_into: self.unified.as_ref().map(|unified| unified.fd.as_fd()), joins })
    }

    /// The init joins its directories itself once they exist: this makes them. Where `clone3`
    /// is missing, the init moves into a hybrid layout's cgroup2 directory here.
    fn place(&mut self, init: Pid, cloned_into: bool) -> Result<(), CgroupError> {
        if let (Some(Unified { dir, .. }), false) = (&self.unified, cloned_into) {
            write_file(dir, "cgroup.procs", &init.to_string())?;
        }
        self.make()
    }

    fn kill_all(&self) {
        for dir in &self.dirs {
            match self.contained {
                true => subtree_deepest_first(dir).iter().for_each(|dir| kill_listed_processes(dir)),
                false => kill_listed_processes(dir),
            }
        }
        for dir in self.own_outside_limits() {
            subtree_deepest_first(dir).iter().for_each(|dir| kill_listed_processes(dir));
        }
    }

    fn set_frozen(&mut self, frozen: bool) -> bool {
        if frozen {
            return self.freeze().unwrap_or(false);
        }
        if let (true, Some(freezer)) = (self.freezer_made, &self.freezer) {
            let _ = write_file(freezer, "freezer.state", "THAWED");
        }
        false
    }

    fn stats(&mut self) -> Result<Stats, CgroupError> {
        let mut stats = Stats::default();
        let mut now = Counters::default();
        if let Some(dir) = &self.memory {
            // v1 counts a kill in the victim's cgroup only: the delegated one, or below it.
            let victims = self.processes_dir(dir);
            now.oom_kills = match has_child_cgroups(&victims)? {
                false => self.files.read_key(&victims, "memory.oom_control", "oom_kill")?.unwrap_or(0),
                true => subtree_deepest_first(&victims)
                    .iter()
                    .map(|dir| super::read_key(dir, "memory.oom_control", "oom_kill").map(Option::unwrap_or_default))
                    .sum::<Result<u64, _>>()?,
            };
            stats.oom_kills = now.oom_kills.saturating_sub(self.start.oom_kills);
            stats.peak_memory_bytes = self.files.read_number(dir, "memory.max_usage_in_bytes")?;
        }
        if let Some(dir) = &self.pids {
            // Where the count is not hierarchical, a subtree the command made must be summed;
            // a cgroup without children (the usual case) needs its own count only.
            let hierarchical = *self.pids_events_hierarchical.get_or_init(|| pids_events_hierarchical(dir));
            let processes = self.processes_dir(dir);
            now.pids_limit_hits = if hierarchical || (!self.contained && !has_child_cgroups(dir)?) {
                self.files.read_key(dir, "pids.events", "max")?.unwrap_or(0)
            } else if self.contained && !has_child_cgroups(&processes)? {
                // The run's directory has the delegated one only, which has none (the usual
                // case): both counts, through kept descriptors.
                let hits = |dir: &Path| self.files.read_key(dir, "pids.events", "max").map(Option::unwrap_or_default);
                hits(dir)? + hits(&processes)?
            } else {
                pids_limit_hits(dir)?.unwrap_or(0)
            };
            stats.pids_limit_hits = now.pids_limit_hits.saturating_sub(self.start.pids_limit_hits);
            stats.peak_pids = self.files.read_number(dir, "pids.peak")?;
        }
        self.last = Some(LastRun { counters: now, peak_pids: stats.peak_pids });
        Ok(stats)
    }

    fn release(self: Box<Self>) -> Result<(), CgroupError> {
        let parent = self.parent.clone();
        super::pool::release(parent.as_deref(), *self)
    }

    fn remove_stale_runs(&self) {
        // The freezer's too: a launcher killed while its run was frozen leaves one there.
        for dir in self.dirs.iter().chain(&self.freezer).chain(self.outside_limits()) {
            if let Some(parent) = dir.parent() {
                clean_stale_once(parent);
            }
        }
    }

    /// The limits' directories, then a contained run's in the other hierarchies.
    fn paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().chain(self.outside_limits()).cloned().collect()
    }

    fn own_paths(&self) -> Vec<PathBuf> {
        self.dirs.iter().chain(self.own_outside_limits()).cloned().collect()
    }

    fn namespace_mounts(&self) -> Vec<NamespaceMount> {
        if !self.contained {
            return Vec::new();
        }
        self.hierarchies
            .iter()
            .map(|hierarchy| NamespaceMount {
                mount_point: hierarchy.mount_point.clone(),
                fstype: "cgroup",
                options: Some(hierarchy.controllers.join(",")),
            })
            .collect()
    }
}

impl Drop for V1Cgroup {
    fn drop(&mut self) {
        if !self.removed {
            self.kill_all();
            let _ = self.remove();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_go_below_the_own_cgroup_of_each_hierarchy() {
        let tmp = super::super::tests::tempdir("v1-runs-dir");
        let root = tmp.path();
        let memory = Hierarchy { mount_point: root.join("memory"), controllers: vec!["memory".into()] };
        let cpu = Hierarchy { mount_point: root.join("cpu,cpuacct"), controllers: vec!["cpu".into(), "cpuacct".into()] };
        fs::create_dir_all(memory.mount_point.join("ci/job-7")).unwrap();
        fs::create_dir_all(&cpu.mount_point).unwrap();
        let proc_self_cgroup = "9:name=systemd:/ci/job-7\n4:memory:/ci/job-7\n2:cpu,cpuacct:/\n0::/\n";
        // Nested in the caller's cgroup, with no directory of the sandbox's own in between.
        assert_eq!(default_runs_dir(&memory, proc_self_cgroup), memory.mount_point.join("ci/job-7"));
        // At the root: in `sandbox`.
        assert_eq!(default_runs_dir(&cpu, proc_self_cgroup), cpu.mount_point.join("sandbox"));
        // A cgroup the mount does not show (a container's bind mount of its own cgroup): the
        // mount point is that cgroup.
        assert_eq!(default_runs_dir(&memory, "4:memory:/docker/abc\n"), memory.mount_point);
        // No line for the hierarchy: as at the root.
        assert_eq!(default_runs_dir(&memory, "0::/\n"), memory.mount_point.join("sandbox"));
    }
}
