//! The cgroup that contained runs share in each v1 hierarchy where they have no limits (and in
//! a hybrid layout's cgroup2): `<hierarchy>/sandbox/contained`, which no command can write.
//!
//! The problem: a contained run's cgroup namespace is rooted where its init is, hierarchy by
//! hierarchy. Where that is the machine's root, a command that mounts such a hierarchy itself
//! sees every cgroup of the machine there, and, as a root whose IDs map to themselves, may move
//! into any of them or write their files. A directory per run fixes that, at the price of a
//! `mkdir` and an `rmdir` under the kernel's global `cgroup_mutex` in each of those hierarchies,
//! for every run (seven v1 hierarchies and the cgroup2 on a hybrid host).
//!
//! The fix: one directory per hierarchy, made once and kept (as `sandbox` above it is), owned
//! with every file in it by the ID the command's user namespace leaves out
//! (`sys::withheld_ids`). The command sees its own processes there (a v1 `cgroup.procs` lists
//! those of the reader's PID namespace only), but cannot write a file of it (`freezer.state`,
//! `cgroup.procs`), make a cgroup below it or give it back: the kernel lets root in a user
//! namespace override permissions and owners only on files whose owner that namespace maps.
//! It holds no limits, and the launcher, root of the machine, puts the init in it.
//!
//! The race: launchers that make it at once. The directory itself is given away last, so one
//! owned by the withheld ID has every file given away; a launcher that finds it otherwise gives
//! them away (again) before a run joins it.
//!
//! Only where the launcher's own cgroup in the hierarchy is the root: a directory kept below a
//! caller's cgroup (a CI job's, a service's) would keep that cgroup from being removed, and one
//! at the root would take the run out of the caller's cgroup. Runs there have their own (`v1`).

use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::Hierarchy;

/// Its name in the hierarchy's `sandbox` directory.
pub(crate) const SHARED_DIR: &str = "contained";

/// The shared directory of `hierarchy`, ready for a run to join, where this process's cgroup
/// there (from the text of `/proc/self/cgroup`) is the root and the directory could be made
/// and given away to `owner` (`sys::withheld_ids`); `None` otherwise, where a run makes its own.
pub(crate) fn dir(hierarchy: &Hierarchy, proc_self_cgroup: &str, owner: Option<(u32, u32)>) -> Option<PathBuf> {
    let owner = owner?;
    if !matches!(super::v1::own_path(hierarchy, proc_self_cgroup), None | Some("")) {
        return None;
    }
    let dir = hierarchy.mount_point.join("sandbox").join(SHARED_DIR);
    let cpuset = hierarchy.controllers.iter().any(|c| c == "cpuset");
    ready(&dir, owner, cpuset).ok().map(|()| dir)
}

/// Makes `dir` where it is missing and gives it away to `owner` where it is not yet.
fn ready(dir: &Path, owner: (u32, u32), cpuset: bool) -> Result<(), super::CgroupError> {
    let given_away = |metadata: &fs::Metadata| (metadata.uid(), metadata.gid()) == owner;
    match fs::metadata(dir) {
        Ok(metadata) if given_away(&metadata) => return Ok(()),
        Ok(_) => {}
        Err(err) if err.kind() == io::ErrorKind::NotFound => {
            let made = dir.parent().map_or(Ok(()), fs::create_dir_all).and_then(|()| match fs::create_dir(dir) {
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => Ok(()),
                made => made,
            });
            made.map_err(super::io_err("creating cgroup", dir))?;
        }
        Err(err) => return Err(super::io_err("reading", dir)(err)),
    }
    // A new cpuset cgroup has no CPUs until given some, and takes no process before.
    if cpuset {
        super::v1::give_parents_cpus(dir)?;
    }
    give_away(dir, owner).map_err(super::io_err("giving away", dir))
}

/// Gives every file of `dir`, then `dir` itself, to `owner`.
fn give_away(dir: &Path, (uid, gid): (u32, u32)) -> io::Result<()> {
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if entry.file_type()?.is_file() {
            std::os::unix::fs::lchown(entry.path(), Some(uid), Some(gid))?;
        }
    }
    std::os::unix::fs::lchown(dir, Some(uid), Some(gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_directory_and_its_files_are_given_away_once() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: giving files away needs root");
            return;
        }
        let tmp = super::super::tests::tempdir("shared-dir");
        let hierarchy = Hierarchy { mount_point: tmp.path().join("freezer"), controllers: vec!["freezer".into()] };
        fs::create_dir_all(&hierarchy.mount_point).unwrap();
        // Below a cgroup of the caller's: none.
        let owner = crate::sys::withheld_ids();
        let dir = |proc_self_cgroup| dir(&hierarchy, proc_self_cgroup, owner);
        assert_eq!(dir("6:freezer:/ci/job-7\n"), None);
        let made = dir("6:freezer:/\n").expect("made at the root");
        assert_eq!(made, hierarchy.mount_point.join("sandbox/contained"));
        let owner = owner.unwrap();
        let owned = |path: &Path| {
            let metadata = fs::metadata(path).unwrap();
            (metadata.uid(), metadata.gid())
        };
        assert_eq!(owned(&made), owner);
        // A file that appeared (a cgroup's files are there from its mkdir on; here, one made
        // after) is given away when the directory is not yet.
        fs::write(made.join("freezer.state"), "THAWED").unwrap();
        std::os::unix::fs::lchown(&made, Some(0), Some(0)).unwrap();
        assert_eq!(dir("6:freezer:/\n"), Some(made.clone()));
        assert_eq!((owned(&made.join("freezer.state")), owned(&made)), (owner, owner));
        // Given away already: left as it is.
        fs::write(made.join("later"), "").unwrap();
        assert_eq!(dir("6:freezer:/\n"), Some(made.clone()));
        assert_eq!(owned(&made.join("later")), (0, 0));
    }
}
