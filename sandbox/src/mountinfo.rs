//! The kernel's mount table, `/proc/self/mountinfo`, read in one place for those who need it:
//! the cgroup layout (where the hierarchies are mounted) and the read-only file-system plan
//! (which mounts to remount). Parsing takes a text, so both are tested without a kernel.

use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::PathBuf;

/// One line: `ID PARENT MAJ:MIN ROOT MOUNT-POINT OPTIONS [TAGS...] - TYPE SOURCE SUPER-OPTIONS`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MountEntry<'a> {
    /// Where it is mounted, escapes decoded.
    pub(crate) mount_point: PathBuf,
    /// The mount's own options (`rw,nosuid,relatime`).
    pub(crate) options: &'a str,
    /// The file-system type (`ext4`, `cgroup2`).
    pub(crate) fstype: &'a str,
    /// The file system's options (for a v1 cgroup hierarchy, its controllers).
    pub(crate) super_options: &'a str,
}

/// This process's mount table, read in one `read` where it fits in 8 KiB (std reads at most that
/// much at first; a larger buffer would only be memory to make present): read with a growing
/// buffer (`fs::read_to_string` starts with 32 bytes for a `/proc` file), a table of twenty
/// mounts takes eight reads, each of which has the kernel walk the table to where it was.
pub(crate) fn read_own_table() -> std::io::Result<String> {
    read_table(&mut std::fs::File::open("/proc/self/mountinfo")?)
}

/// The whole table from an open mountinfo file, read as [`read_own_table`] does.
pub(crate) fn read_table(file: &mut std::fs::File) -> std::io::Result<String> {
    use std::io::Read;
    let mut text = String::with_capacity(8 * 1024);
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// Whether the mount table changed since `file` (a mountinfo file) was opened or last asked:
/// the kernel marks it `POLLPRI` after a mount or unmount in its namespace, and clears the mark
/// as it reports it. An error counts as a change.
pub(crate) fn table_changed(file: &std::fs::File) -> bool {
    use std::os::fd::AsFd;
    // A failed poll counts as a change: the table is read again.
    !matches!(crate::sys::poll_for([Some(file.as_fd())], libc::POLLPRI, Some(std::time::Duration::ZERO)), Ok([false]))
}

/// The entries of a mountinfo text; malformed lines are skipped.
pub(crate) fn entries(text: &str) -> impl Iterator<Item = MountEntry<'_>> {
    text.lines().filter_map(|line| {
        let (mount, file_system) = line.split_once(" - ")?;
        let mut fields = mount.split(' ').skip(4);
        let (mount_point, options) = (fields.next()?, fields.next()?);
        let mut file_system = file_system.split(' ');
        let (fstype, _source, super_options) = (file_system.next()?, file_system.next()?, file_system.next()?);
        Some(MountEntry { mount_point: unescape(mount_point), options, fstype, super_options })
    })
}

/// mountinfo writes space, tab, newline and backslash in paths as `\040` etc.
pub(crate) fn unescape(field: &str) -> PathBuf {
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
    PathBuf::from(OsString::from_vec(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_give_their_fields_and_escapes_are_decoded() {
        let text = "26 22 8:2 / /home/a\\040b rw,nosuid master:3 - ext4 /dev/sda2 rw,errors=remount-ro\nbroken line\n";
        let entries: Vec<MountEntry<'_>> = entries(text).collect();
        assert_eq!(
            entries,
            [MountEntry {
                mount_point: PathBuf::from("/home/a b"),
                options: "rw,nosuid",
                fstype: "ext4",
                super_options: "rw,errors=remount-ro"
            }]
        );
        assert_eq!(unescape(r"/a\040b\\"), PathBuf::from(r"/a b\\"));
        assert_eq!(unescape(r"a\134b\011"), PathBuf::from("a\\b\t"));
        assert_eq!(unescape(r"\0x"), PathBuf::from(r"\0x"), "not an escape: kept as written");
    }
}
