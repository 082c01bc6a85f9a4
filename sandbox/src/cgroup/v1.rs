//! cgroup v1: one directory per hierarchy (`memory`, `pids`, `cpuacct`, and `cpu` with a CPU
//! limit), the run's init written into each. CPU time comes from `cpuacct`: the init's rusage
//! misses the processes the kernel kills and reaps when the PID namespace ends.

use std::fs;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use nix::unistd::Pid;

use super::{
    cpu_quota_and_period_us,
    clean_stale_once, io_err, kill_listed_processes, new_run_name, pids_limit_hits, read_key, read_number,
    remove_tree, write_file, CgroupError, CgroupVersion, Layout, RunCgroup, Stats,
};
use crate::config::Limits;


/// One run's cgroups on v1: a directory in each hierarchy used.
#[derive(Debug)]
pub struct V1Cgroup {
    memory: Option<PathBuf>,
    pids: Option<PathBuf>,
    cpu: Option<PathBuf>,
    cpuacct: Option<PathBuf>,
    /// Every distinct directory created, in creation order.
    dirs: Vec<PathBuf>,
    removed: bool,
}

impl V1Cgroup {
    /// Creates `<hierarchy>/<parent or "sandbox">/<run>` in the memory, pids and cpuacct
    /// hierarchies (and cpu with a CPU limit) and writes the limits. On error, what was created
    /// is removed again.
    pub fn create(layout: &Layout, cgroup_parent: Option<&Path>, limits: &Limits) -> Result<V1Cgroup, CgroupError> {
        let relative_parent = cgroup_parent
            .map(|p| p.strip_prefix("/").unwrap_or(p).to_path_buf())
            .unwrap_or_else(|| PathBuf::from("sandbox"));
        let name = new_run_name();
        let mut cgroup = V1Cgroup { memory: None, pids: None, cpu: None, cpuacct: None, dirs: Vec::new(), removed: false };
        let wanted: [(&str, bool); 4] = [
            ("memory", limits.memory_bytes.is_some()),
            ("pids", limits.pids.is_some()),
            ("cpu", limits.cpu_cores.is_some()),
            ("cpuacct", false),
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
            let dir = hierarchy.mount_point.join(&relative_parent).join(&name);
            if !cgroup.dirs.contains(&dir) {
                // The runs directory exists after the first run: try without checking.
                if let Err(err) = fs::create_dir(&dir) {
                    let parent = dir.parent().expect("run dir has a parent");
                    if err.kind() != std::io::ErrorKind::NotFound {
                        return Err(io_err("creating cgroup", &dir)(err));
                    }
                    fs::create_dir_all(parent).map_err(io_err("creating cgroup", parent))?;
                    fs::create_dir(&dir).map_err(io_err("creating cgroup", &dir))?;
                }
                cgroup.dirs.push(dir.clone());
            }
            match controller {
                "memory" => cgroup.memory = Some(dir),
                "pids" => cgroup.pids = Some(dir),
                "cpu" => cgroup.cpu = Some(dir),
                _ => cgroup.cpuacct = Some(dir),
            }
        }
        cgroup.apply_limits(limits)?;
        Ok(cgroup)
    }

    fn apply_limits(&self, limits: &Limits) -> Result<(), CgroupError> {
        if let (Some(dir), Some(pids)) = (&self.pids, limits.pids) {
            write_file(dir, "pids.max", &pids.to_string())?;
        }
        if let (Some(dir), Some(bytes)) = (&self.memory, limits.memory_bytes) {
            write_file(dir, "memory.limit_in_bytes", &bytes.to_string())?;
            // No swap: memory+swap limited to the same amount where the kernel accounts swap
            // (swapaccount=1), otherwise tell reclaim not to swap this cgroup out.
            // Swap accounting is a boot setting: looked up once per process.
            static SWAP_ACCOUNTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
            if *SWAP_ACCOUNTED.get_or_init(|| dir.join("memory.memsw.limit_in_bytes").exists()) {
                write_file(dir, "memory.memsw.limit_in_bytes", &bytes.to_string())?;
            } else {
                write_file(dir, "memory.swappiness", "0")?;
            }
        }
        if let (Some(dir), Some(cores)) = (&self.cpu, limits.cpu_cores) {
            let (quota, period) = cpu_quota_and_period_us(cores);
            write_file(dir, "cpu.cfs_period_us", &period.to_string())?;
            write_file(dir, "cpu.cfs_quota_us", &quota.to_string())?;
        }
        Ok(())
    }
}

impl RunCgroup for V1Cgroup {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn clone_target(&self) -> Option<BorrowedFd<'_>> {
        None
    }

    fn add_process(&self, pid: Pid) -> Result<(), CgroupError> {
        for dir in &self.dirs {
            write_file(dir, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    fn kill_all(&self) {
        for dir in &self.dirs {
            kill_listed_processes(dir);
        }
    }

    fn stats(&self) -> Result<Stats, CgroupError> {
        let mut stats = Stats::default();
        if let Some(dir) = &self.memory {
            stats.oom_kills = read_key(dir, "memory.oom_control", "oom_kill")?.unwrap_or(0);
            stats.peak_memory_bytes = read_number(dir, "memory.max_usage_in_bytes")?;
        }
        if let Some(dir) = &self.pids {
            stats.pids_limit_hits = pids_limit_hits(dir)?.unwrap_or(0);
            stats.peak_pids = read_number(dir, "pids.peak")?;
        }
        if let Some(dir) = &self.cpuacct {
            stats.cpu_usec = read_number(dir, "cpuacct.usage")?.map(|ns| ns / 1_000);
        }
        Ok(stats)
    }

    fn remove_stale_runs(&self) {
        for dir in &self.dirs {
            if let Some(parent) = dir.parent() {
                clean_stale_once(parent);
            }
        }
    }

    fn remove(&mut self) -> Result<(), CgroupError> {
        if self.removed {
            return Ok(());
        }
        for dir in &self.dirs {
            remove_tree(dir)?;
        }
        self.removed = true;
        Ok(())
    }

    fn paths(&self) -> Vec<PathBuf> {
        self.dirs.clone()
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
