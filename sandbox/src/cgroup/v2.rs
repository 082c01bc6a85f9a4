//! cgroup v2: one directory in the unified hierarchy, inside a subtree this process may write to,
//! and the sandbox's init created directly in it with `CLONE_INTO_CGROUP`.

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use super::own_cgroup::own_cgroup_dir;
use super::systemd::{ensure_own_scope, in_sandbox_scope, ScopePlacement};
use super::{
    cpu_quota_and_period_us,
    clean_stale_once, io_err, kill_listed_processes, new_run_name, pids_limit_hits, read_key, read_number,
    read_optional, remove_tree, subtree_deepest_first, write_file, CgroupError, CgroupVersion, Placement, RunCgroup,
    NamespaceMount, Stats, settled, DELEGATED_DIR, FREEZE_WAIT,
};
use crate::config::Limits;

/// Where the processes of a cgroup go when it needs controllers for children ("no internal
/// processes" rule): a leaf beside the sandbox's runs.
pub const LEAF_NAME: &str = "leaf";
/// The directory, inside the chosen cgroup, that holds the runs.
pub const RUNS_DIR: &str = "sandbox";

/// One run's cgroup on v2.
#[derive(Debug)]
pub struct V2Cgroup {
    dir: PathBuf,
    /// The directory the init is created in: `dir`, or a contained run's [`DELEGATED_DIR`].
    dir_fd: OwnedFd,
    /// A contained run's delegated directory, and the mount point its namespace mounts.
    delegated: Option<(PathBuf, PathBuf)>,
    removed: bool,
    /// The limits written, to see whether they still hold.
    limits: Limits,
}

/// The cgroup whose children the runs become, made ready for them (controllers enabled, its
/// processes moved to a leaf):
/// - `--cgroup-parent P`: P itself (created if missing, since the user asked for it);
/// - otherwise `<own cgroup>/sandbox`, never a cgroup of another service. A launcher that an
///   earlier one moved into `<own>/leaf` uses `<own>/sandbox` too, instead of nesting deeper.
pub fn runs_dir(mount_point: &Path, cgroup_parent: Option<&Path>, required: &[&str], optional: &[&str]) -> Result<PathBuf, CgroupError> {
    let runs = match cgroup_parent {
        Some(parent) => {
            let parent = resolve_parent(mount_point, parent);
            // The controllers must be on all the way down: in the deepest existing ancestor (its
            // processes move to a leaf if need be) and in every directory created below it.
            let existing = parent.ancestors().find(|dir| dir.is_dir()).unwrap_or(mount_point).to_path_buf();
            enable_controllers(&existing, required, optional)?;
            let missing: Vec<&Path> = parent.ancestors().take_while(|dir| *dir != existing).collect();
            for dir in missing.into_iter().rev() {
                match fs::create_dir(dir) {
                    Ok(()) => {}
                    Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                    Err(err) => return Err(io_err("creating cgroup", dir)(err)),
                }
                enable_controllers(dir, required, optional)?;
            }
            parent
        }
        None => {
            let base = base_dir(mount_point)?;
            enable_controllers(&base, required, optional)?;
            let runs = base.join(RUNS_DIR);
            match fs::create_dir(&runs) {
                Ok(()) => {}
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
                Err(err) => return Err(io_err("creating cgroup", &runs)(err)),
            }
            runs
        }
    };
    enable_controllers(&runs, required, optional)?;
    Ok(runs)
}

/// `--cgroup-parent` as a directory: a path below the cgroup mount, or already a full path.
pub fn resolve_parent(mount_point: &Path, parent: &Path) -> PathBuf {
    if parent.starts_with(mount_point) {
        parent.to_path_buf()
    } else {
        mount_point.join(parent.strip_prefix("/").unwrap_or(parent))
    }
}

/// This process's own cgroup, or its parent when this process sits in the `leaf` that an earlier
/// launcher moved it into (recognised by the `sandbox` runs directory beside it).
pub fn base_dir(mount_point: &Path) -> Result<PathBuf, CgroupError> {
    let own = own_cgroup_dir(mount_point)?;
    match own.parent() {
        Some(parent) if own.file_name() == Some(LEAF_NAME.as_ref()) && parent.join(RUNS_DIR).is_dir() => {
            Ok(parent.to_path_buf())
        }
        _ => Ok(own),
    }
}

fn words(text: Option<String>) -> Vec<String> {
    text.unwrap_or_default().split_whitespace().map(str::to_string).collect()
}

/// Makes `dir` able to have children with `controllers` enabled: when it holds processes
/// (and is not the root cgroup, which is exempt), they move into `dir/leaf` first, then the
/// controllers are switched on in `dir/cgroup.subtree_control`. `optional` controllers are
/// enabled where the kernel allows it and skipped otherwise.
pub fn enable_controllers(dir: &Path, required: &[&str], optional: &[&str]) -> Result<(), CgroupError> {
    let enabled = words(read_optional(dir, "cgroup.subtree_control")?);
    let available = words(read_optional(dir, "cgroup.controllers")?);
    let missing: Vec<&str> = required.iter().chain(optional).copied().filter(|c| !enabled.iter().any(|e| e == c)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    if let Some(absent) = required.iter().find(|c| !available.iter().any(|a| a == *c)) {
        let parent = dir.parent().unwrap_or(dir);
        return Err(CgroupError::Unavailable(format!(
            "the cgroup v2 controller '{absent}' is not available in {} (cgroup.controllers: '{}'): enable it \
             in the parent (echo +{absent} > {}/cgroup.subtree_control) or pass --cgroup-parent with a \
             delegated cgroup that has it",
            dir.display(),
            available.join(" "),
            parent.display()
        )));
    }
    let is_root = !dir.join("cgroup.type").exists();
    if !is_root {
        move_processes_to_leaf(dir)?;
    }
    let to_enable: Vec<&str> = missing.iter().copied().filter(|c| available.iter().any(|a| a == c)).collect();
    let line: String = to_enable.iter().map(|c| format!("+{c} ")).collect();
    if write_file(dir, "cgroup.subtree_control", line.trim_end()).is_ok() {
        return Ok(());
    }
    // One controller can refuse (cpu, while real-time tasks exist): enable one by one, and only
    // fail on a required one.
    for controller in to_enable {
        let result = write_file(dir, "cgroup.subtree_control", &format!("+{controller}"));
        if required.contains(&controller) {
            result?;
        }
    }
    Ok(())
}

/// Moves every process of `dir` into `dir/leaf`, repeating while new ones appear (a process
/// of `dir` may fork while we move). Only processes the sandbox started are moved: this
/// process and its descendants, or anything in a run's cgroup or a sandbox scope (see
/// [`foreign_processes`]). A cgroup that also holds others (a CI runner's agent beside the step that runs the
/// tests, a container's entrypoint) is refused, naming them: moving them would change the
/// cgroup of processes that are not the sandbox's.
fn move_processes_to_leaf(dir: &Path) -> Result<(), CgroupError> {
    let leaf = dir.join(LEAF_NAME);
    for _ in 0..100 {
        let procs = read_optional(dir, "cgroup.procs")?.unwrap_or_default();
        let pids: Vec<&str> = procs.split_whitespace().collect();
        if pids.is_empty() {
            return Ok(());
        }
        let foreign = foreign_processes(dir, &pids);
        if !foreign.is_empty() {
            return Err(holds_foreign_processes(dir, &foreign));
        }
        match fs::create_dir(&leaf) {
            Ok(()) => {}
            Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(err) => return Err(io_err("creating cgroup", &leaf)(err)),
        }
        for pid in pids {
            match fs::write(leaf.join("cgroup.procs"), pid) {
                Ok(()) => {}
                // The process exited meanwhile.
                Err(err) if err.raw_os_error() == Some(libc::ESRCH) => {}
                Err(err) => return Err(io_err("moving a process into", &leaf.join("cgroup.procs"))(err)),
            }
        }
    }
    Err(CgroupError::Unavailable(format!("processes kept appearing in {} while moving them to a leaf", dir.display())))
}

/// Why runs cannot go below `dir`, which holds the processes `foreign` the sandbox did not start.
pub(crate) fn holds_foreign_processes(dir: &Path, foreign: &[String]) -> CgroupError {
    CgroupError::Unavailable(format!(
        "{} holds processes the sandbox did not start ({}), and a cgroup with processes cannot have \
         child cgroups with controllers: the sandbox does not move them. Run it in a cgroup of its own \
         (on a systemd host it makes one itself; elsewhere `exec` it as the only process of a \
         delegated cgroup, or have the container's entrypoint move its processes into a child cgroup), \
         or pass --cgroup-parent (SANDBOX_CGROUP_PARENT) with a cgroup that holds no processes",
        dir.display(),
        foreign.join(", ")
    ))
}

/// The processes of `dir` that the sandbox would not move (see `move_processes_to_leaf`), each
/// as `PID (comm)`: for `sandbox check`. None in the root cgroup, which may keep its processes.
pub(crate) fn foreign_processes_in(dir: &Path) -> Vec<String> {
    if !dir.join("cgroup.type").exists() {
        return Vec::new();
    }
    let procs = read_optional(dir, "cgroup.procs").ok().flatten().unwrap_or_default();
    foreign_processes(dir, &procs.split_whitespace().collect::<Vec<_>>())
}

/// Of the processes `pids` of the cgroup `dir`, those the sandbox did not start, each as
/// `PID (comm)`: none in a run's cgroup or a sandbox scope (everything there a sandbox started
/// or moved there itself: a runner shares its scope with its fork servers), otherwise those
/// that are neither this process nor one of its descendants.
fn foreign_processes(dir: &Path, pids: &[&str]) -> Vec<String> {
    if super::in_a_run_cgroup(dir) || in_sandbox_scope(dir) || super::in_a_run_namespace() {
        return Vec::new();
    }
    let me = std::process::id();
    let ours = |pid: u32| {
        let mut current = pid;
        for _ in 0..4096 {
            if current == me {
                return true;
            }
            match super::process_parent(current) {
                Some(parent) if parent > 0 && parent != current => current = parent,
                // Gone meanwhile (it exited: nothing to move) or reached the top.
                None => return fs::metadata(format!("/proc/{pid}")).is_err(),
                _ => return false,
            }
        }
        false
    };
    pids.iter()
        .filter_map(|pid| pid.parse::<u32>().ok())
        .filter(|pid| !ours(*pid))
        .map(|pid| {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            format!("{pid} ({})", comm.trim())
        })
        .collect()
}

impl V2Cgroup {
    /// Creates `<base>/sandbox/<run>` with `limits`, preparing `base` as needed; for a
    /// `contained` run also its [`DELEGATED_DIR`], with the controllers on for it.
    pub fn create(mount_point: &Path, cgroup_parent: Option<&Path>, limits: &Limits, contained: bool) -> Result<V2Cgroup, CgroupError> {
        let cpu_required = limits.cpu_cores.is_some();
        let (required, optional): (&[&str], &[&str]) =
            if cpu_required { (&["memory", "pids", "cpu"], &[]) } else { (&["memory", "pids"], &["cpu"]) };
        // On a systemd host, this process first moves into a delegated scope of its own.
        let placement = match cgroup_parent {
            None => ensure_own_scope(mount_point),
            Some(_) => ScopePlacement::NoSystemd,
        };
        let runs = runs_dir(mount_point, cgroup_parent, required, optional).map_err(|err| match &placement {
            ScopePlacement::Failed(why) => CgroupError::Unavailable(format!("{err}; {why}")),
            _ => err,
        })?;
        let dir = runs.join(new_run_name());
        fs::create_dir(&dir).map_err(io_err("creating cgroup", &dir))?;
        let delegated = contained.then(|| dir.join(DELEGATED_DIR));
        let made = || -> Result<OwnedFd, CgroupError> {
            if let Some(delegated) = &delegated {
                // Its processes, in the child, may use the controllers the run has.
                let available = words(read_optional(&dir, "cgroup.controllers")?);
                let enable: Vec<String> =
                    ["memory", "pids", "cpu"].iter().filter(|c| available.iter().any(|a| a == *c)).map(|c| format!("+{c}")).collect();
                if !enable.is_empty() {
                    write_file(&dir, "cgroup.subtree_control", &enable.join(" "))?;
                }
                fs::create_dir(delegated).map_err(io_err("creating cgroup", delegated))?;
            }
            let target = delegated.as_deref().unwrap_or(&dir);
            // A directory fd for clone3(CLONE_INTO_CGROUP); std opens it O_RDONLY|O_CLOEXEC.
            fs::File::open(target).map(OwnedFd::from).map_err(io_err("opening cgroup", target))
        };
        let dir_fd = match made() {
            Ok(fd) => fd,
            Err(err) => {
                if let Some(delegated) = &delegated {
                    let _ = fs::remove_dir(delegated);
                }
                let _ = fs::remove_dir(&dir);
                return Err(err);
            }
        };
        let delegated = delegated.map(|path| (path, mount_point.to_path_buf()));
        let cgroup = V2Cgroup { dir, dir_fd, delegated, removed: false, limits: limits.clone() };
        cgroup.apply_limits(limits)?;
        Ok(cgroup)
    }

    /// Writes `limits` into the run's cgroup and, for a contained run, a copy into its delegated
    /// one, for the command to read where it looks; what it writes there changes nothing above.
    fn apply_limits(&self, limits: &Limits) -> Result<(), CgroupError> {
        for dir in std::iter::once(&self.dir).chain(self.delegated.as_ref().map(|(delegated, _)| delegated)) {
            if let Some(pids) = limits.pids {
                write_file(dir, "pids.max", &pids.to_string())?;
            }
            if let Some(bytes) = limits.memory_bytes {
                write_file(dir, "memory.max", &bytes.to_string())?;
                // Without swap accounting the file does not exist, and there is nothing to
                // disable; that is the kernel's configuration, looked up once per process.
                static SWAP_ACCOUNTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
                if *SWAP_ACCOUNTED.get_or_init(|| dir.join("memory.swap.max").exists()) {
                    write_file(dir, "memory.swap.max", "0")?;
                }
            }
            if let Some(cores) = limits.cpu_cores {
                let (quota, period) = cpu_quota_and_period_us(cores);
                write_file(dir, "cpu.max", &format!("{quota} {period}"))?;
            }
        }
        Ok(())
    }
}

impl RunCgroup for V2Cgroup {
    fn limits_changed(&mut self) -> Vec<String> {
        let mut expected = Vec::new();
        if let Some(pids) = self.limits.pids {
            expected.push(("pids.max", pids.to_string()));
        }
        if let Some(bytes) = self.limits.memory_bytes {
            expected.push(("memory.max", super::page_rounded(bytes).to_string()));
            if self.dir.join("memory.swap.max").exists() {
                expected.push(("memory.swap.max", "0".to_string()));
            }
        }
        if let Some(cores) = self.limits.cpu_cores {
            let (quota, period) = cpu_quota_and_period_us(cores);
            expected.push(("cpu.max", format!("{quota} {period}")));
        }
        let read = |file: &str| super::read_small_file(&self.dir.join(file)).ok();
        expected.iter().filter_map(|(file, value)| super::limit_changed(file, read(file), value)).collect()
    }

    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn placement(&self) -> Result<Placement<'_>, CgroupError> {
        Ok(Placement { clone_into: Some(self.dir_fd.as_fd()), joins: Vec::new() })
    }

    /// Where `clone3` is missing, the init was cloned outside: it moves in before it goes on.
    fn place(&mut self, init: Pid, cloned_into: bool) -> Result<(), CgroupError> {
        let target = self.delegated.as_ref().map_or(&self.dir, |(delegated, _)| delegated);
        match cloned_into {
            true => Ok(()),
            false => write_file(target, "cgroup.procs", &init.to_string()),
        }
    }

    fn kill_all(&self) {
        if write_file(&self.dir, "cgroup.kill", "1").is_err() {
            for dir in subtree_deepest_first(&self.dir) {
                kill_listed_processes(&dir);
            }
        }
    }

    fn set_frozen(&mut self, frozen: bool) -> bool {
        if write_file(&self.dir, "cgroup.freeze", if frozen { "1" } else { "0" }).is_err() || !frozen {
            return false;
        }
        settled(FREEZE_WAIT, || read_key(&self.dir, "cgroup.events", "frozen").is_ok_and(|state| state == Some(1)))
    }

    fn stats(&mut self) -> Result<Stats, CgroupError> {
        Ok(Stats {
            oom_kills: read_key(&self.dir, "memory.events", "oom_kill")?.unwrap_or(0),
            pids_limit_hits: pids_limit_hits(&self.dir)?.unwrap_or(0),
            peak_memory_bytes: read_number(&self.dir, "memory.peak")?,
            peak_pids: read_number(&self.dir, "pids.peak")?,
            cpu_usec: read_key(&self.dir, "cpu.stat", "usage_usec")?,
        })
    }

    fn remove_stale_runs(&self) {
        if let Some(runs) = self.dir.parent() {
            clean_stale_once(runs);
        }
    }

    /// A v2 cgroup is never reused (its `memory.peak` can be reset only on kernels from 6.12
    /// on): it is removed.
    fn release(mut self: Box<Self>) -> Result<(), CgroupError> {
        self.remove()
    }

    fn paths(&self) -> Vec<PathBuf> {
        vec![self.dir.clone()]
    }

    fn namespace_mounts(&self) -> Vec<NamespaceMount> {
        self.delegated
            .iter()
            .map(|(_, mount_point)| NamespaceMount { mount_point: mount_point.clone(), fstype: "cgroup2", options: None })
            .collect()
    }
}

impl V2Cgroup {
    /// Removes the cgroup (and children the command created); idempotent.
    fn remove(&mut self) -> Result<(), CgroupError> {
        if !self.removed {
            if let Some((delegated, _)) = &self.delegated {
                remove_tree(delegated)?;
            }
            remove_tree(&self.dir)?;
            self.removed = true;
        }
        Ok(())
    }
}

impl Drop for V2Cgroup {
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
    use crate::cgroup::tests::tempdir;

    #[test]
    fn missing_controller_names_the_fix() {
        let tmp = tempdir("v2-missing");
        let dir = tmp.path();
        fs::write(dir.join("cgroup.controllers"), "cpu io\n").unwrap();
        fs::write(dir.join("cgroup.subtree_control"), "").unwrap();
        let err = enable_controllers(dir, &["memory", "pids"], &[]).unwrap_err().to_string();
        assert!(err.contains("'memory' is not available"), "{err}");
        assert!(err.contains("cgroup.subtree_control"), "{err}");
    }

    #[test]
    fn processes_move_to_a_leaf_before_controllers_are_enabled() {
        // A file system stand-in: writing cgroup.procs of the leaf does not move anything here,
        // so use an empty procs file and check the order of effects on the files.
        let tmp = tempdir("v2-enable");
        let dir = tmp.path();
        fs::write(dir.join("cgroup.controllers"), "cpu memory pids\n").unwrap();
        fs::write(dir.join("cgroup.subtree_control"), "").unwrap();
        fs::write(dir.join("cgroup.type"), "domain\n").unwrap();
        fs::write(dir.join("cgroup.procs"), "").unwrap();
        enable_controllers(dir, &["memory", "pids"], &["cpu"]).unwrap();
        assert_eq!(fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap(), "+memory +pids +cpu");
        // Already enabled: nothing is written (neither the controllers nor, its file gone, a
        // move to a leaf).
        fs::write(dir.join("cgroup.subtree_control"), "cpu memory pids\n").unwrap();
        fs::remove_file(dir.join("cgroup.procs")).unwrap();
        enable_controllers(dir, &["memory", "pids"], &["cpu"]).unwrap();
        assert_eq!(fs::read_to_string(dir.join("cgroup.subtree_control")).unwrap(), "cpu memory pids\n");
        assert!(!dir.join("leaf").exists(), "no leaf was made");
    }

    #[test]
    fn a_cgroup_parent_is_a_directory_below_the_mount() {
        assert_eq!(resolve_parent(Path::new("/sys/fs/cgroup"), Path::new("/a/b")), Path::new("/sys/fs/cgroup/a/b"));
        assert_eq!(resolve_parent(Path::new("/sys/fs/cgroup"), Path::new("a")), Path::new("/sys/fs/cgroup/a"));
        assert_eq!(
            resolve_parent(Path::new("/sys/fs/cgroup"), Path::new("/sys/fs/cgroup/x")),
            Path::new("/sys/fs/cgroup/x")
        );
    }
}
