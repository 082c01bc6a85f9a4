//! Reading and writing control files, and the open files a reused cgroup keeps.

use std::fs;
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};

use super::*;

/// Writes `value` to the cgroup file `dir/name`.
pub(crate) fn write_file(dir: &Path, name: &str, value: &str) -> Result<(), CgroupError> {
    let path = dir.join(name);
    fs::write(&path, value).map_err(io_err("writing", &path))
}

/// The smallest limit in control file `file` of cgroup `dir` and of each cgroup above it, up to
/// the mount point `mount_point`: a hierarchy's root has no limit files, while the root of a
/// cgroup namespace's mount (a contained run's delegated cgroup) has them; `parse` reads one
/// file's trimmed text (`None`: no limit there).
pub(crate) fn tightest_along(dir: &Path, mount_point: &Path, file: &str, parse: impl Fn(&str) -> Option<u64>) -> Option<u64> {
    dir.ancestors()
        .take_while(|ancestor| ancestor.starts_with(mount_point))
        .filter_map(|ancestor| fs::read_to_string(ancestor.join(file)).ok().and_then(|text| parse(text.trim())))
        .min()
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

/// Reads a small file in one `read` where it fits in 4 KiB (`fs::read_to_string` starts with 32
/// bytes for a `/proc` file, whose size reads as 0, and doubles: six reads for `/proc/PID/stat`).
pub(crate) fn read_small_file(path: &Path) -> io::Result<String> {
    use std::io::Read;
    let mut text = String::with_capacity(4096);
    fs::File::open(path)?.read_to_string(&mut text)?;
    Ok(text)
}
