//! What `sandbox check` and the diagnoses probe: may namespaces be created, does a seccomp
//! filter refuse the calls, does a user namespace grant anything inside.

use std::os::fd::{AsRawFd, RawFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

use super::clone::{clone_flags, CloneArgs};
use super::{clone_process, exit_immediately, wait_pidfd, write_raw, Cloned};

/// Whether this process may create namespaces of `flags`: clones a child with them that exits
/// at once. Used by `sandbox check`.
pub fn try_clone_namespaces(flags: CloneFlags) -> Result<(), Errno> {
    // SAFETY: the child only calls _exit.
    match unsafe { clone_process(flags, None)? } {
        Cloned::Child => exit_immediately(0),
        Cloned::Parent { pidfd, .. } => wait_pidfd(std::os::fd::AsFd::as_fd(&pidfd)).map(drop),
    }
}

/// What stops `clone(2)` with `namespace_flags` in front of the kernel, found without creating
/// anything: the call adds `CLONE_NEWNS | CLONE_FS`, a combination the kernel refuses with
/// `EINVAL` before it looks at any other flag or capability, so any other error came from a
/// seccomp filter. `None`: the call reached the kernel's own checks.
pub fn clone_filter_refusal(namespace_flags: CloneFlags) -> Option<Errno> {
    let flags = clone_flags(namespace_flags | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_FS) | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: no pointer arguments; the kernel refuses these flags before it creates a process,
    // and a child it created anyway would only call _exit.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match Errno::result(ret) {
        Ok(0) => exit_immediately(0),
        Ok(pid) => {
            let _ = nix::sys::wait::waitpid(Pid::from_raw(pid as libc::pid_t), None);
            None
        }
        Err(Errno::EINVAL) => None,
        Err(errno) => Some(errno),
    }
}

/// What stops `clone3(2)` in front of the kernel: called with an argument size below any
/// version of `struct clone_args`, which the kernel refuses with `EINVAL` first. A seccomp
/// filter cannot read clone3's flags (they are behind a pointer), so container profiles refuse
/// it whole, with `ENOSYS` (the sandbox then falls back to `clone`) or `EPERM`. `None`: the call
/// reached the kernel.
pub fn clone3_filter_refusal() -> Option<Errno> {
    // SAFETY: a null pointer of size 0, which the kernel rejects before reading anything.
    let ret = unsafe { libc::syscall(libc::SYS_clone3, std::ptr::null_mut::<CloneArgs>(), 0usize) };
    match Errno::result(ret) {
        Err(Errno::EINVAL) | Ok(_) => None,
        Err(errno) => Some(errno),
    }
}

/// A mount that a rootless run's init makes first, tried by [`try_mount_in_user_namespace`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrialMount {
    /// `mount --make-rprivate /`.
    MakeRootPrivate,
    /// `mount -t tmpfs tmpfs /tmp`.
    TmpfsOnTmp,
}

impl TrialMount {
    /// What the mount does, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            TrialMount::MakeRootPrivate => "making / private",
            TrialMount::TmpfsOnTmp => "mounting a tmpfs on /tmp",
        }
    }
}

/// How far a child in new user and mount namespaces got.
#[derive(Debug)]
pub enum UserNamespaceTrial<E> {
    /// `clone` with `CLONE_NEWUSER | CLONE_NEWNS` was refused.
    NotCreated(Errno),
    /// The namespaces were created, but preparing them (the id maps) failed.
    NotPrepared(E),
    /// Created and prepared; this mount was refused inside.
    MountRefused(TrialMount, Errno),
    /// Created and prepared, and both mounts worked: the namespace has capabilities.
    Mounted,
}

/// Creates a child in new user and mount namespaces, runs `prepare(child)` here (writing its
/// id maps, as the launcher does for a rootless run), then lets the child make `/` private and
/// mount a tmpfs on `/tmp`, in its own mount namespace. A user namespace that can be created
/// may still grant nothing inside (AppArmor's `kernel.apparmor_restrict_unprivileged_userns`):
/// only a mount shows it.
pub fn try_mount_in_user_namespace<E>(
    prepare: impl FnOnce(Pid) -> Result<(), E>,
) -> Result<UserNamespaceTrial<E>, Errno> {
    let (go_read, go_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (report_read, report_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let flags = CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS;
    // SAFETY: the child runs only `mount_trial_child`, which makes raw system calls on
    // descriptors and C string literals and ends in _exit.
    let pidfd = match unsafe { clone_process(flags, None) } {
        Err(errno) => return Ok(UserNamespaceTrial::NotCreated(errno)),
        Ok(Cloned::Child) => mount_trial_child(go_read.as_raw_fd(), go_write.as_raw_fd(), report_write.as_raw_fd()),
        Ok(Cloned::Parent { pid, pidfd, .. }) => {
            drop((go_read, report_write));
            if let Err(err) = prepare(pid) {
                // The child reads end of file and exits.
                drop(go_write);
                wait_pidfd(std::os::fd::AsFd::as_fd(&pidfd))?;
                return Ok(UserNamespaceTrial::NotPrepared(err));
            }
            nix::unistd::write(&go_write, &[1])?;
            pidfd
        }
    };
    let mut answer = [0u8; 2];
    let read = loop {
        match nix::unistd::read(report_read.as_raw_fd(), &mut answer) {
            Err(Errno::EINTR) => continue,
            other => break other,
        }
    };
    wait_pidfd(std::os::fd::AsFd::as_fd(&pidfd))?;
    Ok(match (read?, answer) {
        (2, [0, _]) => UserNamespaceTrial::Mounted,
        (2, [1, errno]) => UserNamespaceTrial::MountRefused(TrialMount::MakeRootPrivate, Errno::from_raw(errno.into())),
        (2, [_, errno]) => UserNamespaceTrial::MountRefused(TrialMount::TmpfsOnTmp, Errno::from_raw(errno.into())),
        // The child died without an answer.
        _ => return Err(Errno::EPIPE),
    })
}

/// The child of [`try_mount_in_user_namespace`]: waits for "go", tries the two mounts and
/// writes `[0, 0]`, or the failed step (1, 2) and its errno. Async-signal-safe.
fn mount_trial_child(go_read: RawFd, go_write: RawFd, report: RawFd) -> ! {
    // SAFETY: our copy of the write end; without it, a parent that gives up means end of file.
    unsafe { libc::close(go_write) };
    let mut byte = 0u8;
    loop {
        // SAFETY: a one-byte stack buffer, valid for the call.
        match unsafe { libc::read(go_read, (&mut byte as *mut u8).cast(), 1) } {
            1 => break,
            -1 if Errno::last() == Errno::EINTR => continue,
            _ => exit_immediately(0),
        }
    }
    let flags = libc::MS_REC | libc::MS_PRIVATE;
    // SAFETY: C string literals and null pointers where mount(2) allows them.
    let private = unsafe { libc::mount(std::ptr::null(), c"/".as_ptr(), std::ptr::null(), flags, std::ptr::null()) };
    let answer: [u8; 2] = if private != 0 {
        [1, Errno::last_raw() as u8]
    } else {
        // SAFETY: as above.
        let tmpfs = unsafe { libc::mount(c"tmpfs".as_ptr(), c"/tmp".as_ptr(), c"tmpfs".as_ptr(), 0, std::ptr::null()) };
        if tmpfs != 0 {
            [2, Errno::last_raw() as u8]
        } else {
            [0, 0]
        }
    };
    let _ = write_raw(report, &answer);
    exit_immediately(0)
}
