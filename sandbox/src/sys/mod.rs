//! Every `unsafe` line of the crate lives here: the raw system calls `nix` does not wrap
//! (`clone3`, pidfds, `sigwaitinfo` with its `siginfo`, bringing `lo` up, `execvpe`).
//!
//! Processes are created with the raw `clone`/`clone3` system calls rather than `fork(3)`:
//! the launcher may be a multi-threaded test harness, and glibc's `fork` runs `atfork` handlers
//! and takes the allocator's locks, which can deadlock in the child. The price is that a child
//! created here must not allocate, lock or unwind until it calls `exec` or `_exit`; the code in
//! [`crate::init`] keeps to that.

use std::ffi::CStr;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64"))]
mod bind_proxy;
mod capabilities;
mod clone;
mod cpus;
mod errno_free;
mod fd_passing;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64"))]
mod host_wide;
mod launcher;
mod probe;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64"))]
mod seccomp_bpf;
mod user_namespace;

#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64"))]
pub use bind_proxy::*;
pub use capabilities::*;
pub use clone::*;
pub use cpus::*;
pub use errno_free::*;
pub use fd_passing::*;
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64"))]
pub use host_wide::*;

/// Where the filter's system call numbers are not written down, nothing is refused (README,
/// "Contained as root").
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64")))]
pub fn refuse_host_wide_operations() -> Result<(), Errno> {
    Ok(())
}

/// Where the filter's numbers are not written down, no bind is proxied: there is no listener,
/// and a privileged port stays root's in the initial user namespace.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64")))]
pub fn refuse_host_wide_operations_and_notify_binds() -> Result<Option<OwnedFd>, Errno> {
    Ok(None)
}

/// Never called where [`refuse_host_wide_operations_and_notify_binds`] gives no listener.
#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64", target_arch = "riscv64")))]
pub fn answer_bind(_listener: BorrowedFd<'_>) -> Result<(), Errno> {
    Err(Errno::ENOSYS)
}
pub use launcher::*;
pub use probe::*;
pub use user_namespace::*;

/// The type of `setrlimit`'s resource argument: an enum in glibc, an int in musl.
#[cfg(target_env = "gnu")]
pub type RlimitResource = libc::__rlimit_resource_t;
/// The type of `setrlimit`'s resource argument: an enum in glibc, an int in musl.
#[cfg(not(target_env = "gnu"))]
pub type RlimitResource = libc::c_int;

/// Runs `check` in a forked child and returns how the child ended: exited with 0 when `check`
/// returned true. For unit tests whose check changes the process for good (a seccomp filter,
/// dropped capabilities), so that the harness keeps its own.
///
/// # Safety
/// `check` runs in the forked child of a multi-threaded harness: system calls only, no
/// allocation and no lock, which another thread may have held at the fork.
#[cfg(test)]
pub(crate) unsafe fn in_forked_child(check: impl FnOnce() -> bool) -> nix::sys::wait::WaitStatus {
    // SAFETY: the child runs `check` (system calls only, the caller's contract), then _exit.
    match unsafe { nix::unistd::fork() }.unwrap() {
        nix::unistd::ForkResult::Child => {
            let passed = check();
            // SAFETY: ends the child without running the harness's exit code.
            unsafe { libc::_exit(if passed { 0 } else { 1 }) }
        }
        nix::unistd::ForkResult::Parent { child } => nix::sys::wait::waitpid(child, None).unwrap(),
    }
}

/// Whether a child of [`in_forked_child`] passed its check.
#[cfg(test)]
pub(crate) fn passed(status: nix::sys::wait::WaitStatus) -> bool {
    matches!(status, nix::sys::wait::WaitStatus::Exited(_, 0))
}

/// `pidfd_open(2)`.
pub fn pidfd_open(pid: Pid) -> Result<OwnedFd, Errno> {
    // SAFETY: plain syscall with integer arguments.
    let fd = Errno::result(unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) })?;
    // SAFETY: on success the kernel returned a new file descriptor that we now own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Whether the process behind the pidfd `fd` has exited (a zero-timeout `poll`).
pub fn pidfd_has_exited(fd: BorrowedFd<'_>) -> bool {
    matches!(poll_either(fd, None, Some(std::time::Duration::ZERO)), Ok((true, _)))
}

/// `pidfd_send_signal(2)`: signals exactly the process behind `pidfd`, never a recycled PID.
pub fn pidfd_send_signal(pidfd: BorrowedFd<'_>, signal: Signal) -> Result<(), Errno> {
    // SAFETY: plain syscall; a null siginfo makes the kernel fill in SI_USER.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_pidfd_send_signal,
            pidfd.as_raw_fd(),
            signal as libc::c_int,
            std::ptr::null::<libc::siginfo_t>(),
            0,
        )
    };
    Errno::result(ret).map(drop)
}

/// What the kernel accounted to a reaped process and the descendants it waited for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    /// User plus system CPU time, in microseconds.
    pub cpu_usec: u64,
    /// The largest resident set of any of them, in bytes.
    pub max_rss_bytes: u64,
}

/// Waits for the process behind `pidfd` to end and reaps it; returns its raw wait status
/// (`WIFEXITED`/`WTERMSIG` encoding) and its resource usage.
pub fn wait_pidfd(pidfd: BorrowedFd<'_>) -> Result<(i32, Usage), Errno> {
    const P_PIDFD: libc::c_int = 3;
    loop {
        // SAFETY: siginfo_t and rusage are plain data; all-zero values are valid for the kernel
        // to overwrite.
        let (mut info, mut usage): (libc::siginfo_t, libc::rusage) = unsafe { (std::mem::zeroed(), std::mem::zeroed()) };
        // SAFETY: the raw waitid system call (the libc wrapper has no rusage argument); both
        // out-pointers are valid for the duration of the call.
        let ret = unsafe {
            libc::syscall(
                libc::SYS_waitid,
                P_PIDFD,
                pidfd.as_raw_fd(),
                &mut info as *mut libc::siginfo_t,
                libc::WEXITED,
                &mut usage as *mut libc::rusage,
            )
        };
        match Errno::result(ret) {
            Ok(_) => {
                // SAFETY: waitid succeeded for a child that exited, so the SIGCHLD fields
                // (si_code, si_status) are the initialised members of the union.
                let (code, status) = unsafe { (info.si_code, info.si_status()) };
                let status = match code {
                    libc::CLD_EXITED => (status & 0xff) << 8,
                    libc::CLD_DUMPED => status | 0x80,
                    _ => status,
                };
                let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
                let usage = Usage {
                    cpu_usec: micros(usage.ru_utime) + micros(usage.ru_stime),
                    max_rss_bytes: usage.ru_maxrss as u64 * 1024,
                };
                return Ok((status, usage));
            }
            Err(Errno::EINTR) => continue,
            Err(err) => return Err(err),
        }
    }
}

/// `setrlimit(2)` with soft and hard limit `value`.
pub fn set_rlimit(resource: RlimitResource, value: u64) -> Result<(), Errno> {
    let limit = libc::rlimit { rlim_cur: value, rlim_max: value };
    // SAFETY: a valid rlimit value, passed by pointer for the duration of the call.
    Errno::result(unsafe { libc::setrlimit(resource, &limit) }).map(drop)
}

/// A signal taken from the pending set, with where it came from.
#[derive(Debug, Clone, Copy)]
pub struct PendingSignal {
    /// The signal number.
    pub signal: libc::c_int,
    /// `si_code == SI_KERNEL`: a terminal-generated signal, already sent to the whole
    /// foreground process group, so forwarding it again would deliver it twice.
    pub from_kernel: bool,
    /// Sent by a process outside the receiver's PID namespace (`kill` with `si_pid` 0 there):
    /// the launcher, never a process of the sandbox.
    pub from_outside: bool,
}

/// `sigwaitinfo(2)` on `set`, retrying on `EINTR`.
pub fn wait_signal(set: &SigSet) -> PendingSignal {
    loop {
        // SAFETY: siginfo_t is plain data; zeroed is valid for the kernel to overwrite.
        let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for the duration of the call.
        let ret = unsafe { libc::sigwaitinfo(set.as_ref(), &mut info) };
        if ret > 0 {
            // SAFETY: read only for a signal sent by a process, for which the kernel filled in
            // the sender's pid.
            let sender = || unsafe { info.si_pid() };
            return pending_signal(ret, info.si_code, sender);
        }
    }
}

/// What woke [`wait_signal_or_readable`].
#[derive(Debug, Clone, Copy)]
pub enum Wakeup {
    /// A signal of the set.
    Signal(PendingSignal),
    /// The watched descriptor is readable, or hung up.
    Readable,
}

/// Waits for a signal of `signals` (a non-blocking signalfd of a blocked set) or for `watched`
/// to be readable. No allocation.
pub fn wait_signal_or_readable(signals: &nix::sys::signalfd::SignalFd, watched: BorrowedFd<'_>) -> Wakeup {
    loop {
        if let Ok(Some(info)) = signals.read_signal() {
            let sender = || info.ssi_pid as libc::pid_t;
            return Wakeup::Signal(pending_signal(info.ssi_signo as libc::c_int, info.ssi_code, sender));
        }
        if let Ok([_, true]) = poll_readable([Some(std::os::fd::AsFd::as_fd(signals)), Some(watched)], None) {
            return Wakeup::Readable;
        }
    }
}

/// A signal as the init tells it apart: `sender` is read for a signal a process sent.
fn pending_signal(signal: libc::c_int, code: libc::c_int, sender: impl FnOnce() -> libc::pid_t) -> PendingSignal {
    let sent = matches!(code, libc::SI_USER | libc::SI_QUEUE | libc::SI_TKILL);
    let sender = if sent { sender() } else { -1 };
    PendingSignal { signal, from_kernel: code == libc::SI_KERNEL, from_outside: sender == 0 }
}

/// Sets the `IFF_UP` flag of the loopback interface of the current network namespace.
pub fn bring_loopback_up() -> Result<(), Errno> {
    // SAFETY: plain syscall with integer arguments.
    let sock = Errno::result(unsafe {
        libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0)
    })?;
    // SAFETY: the kernel just returned this descriptor; we own it.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    // SAFETY: ifreq is plain data; all-zero is valid.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(b"lo\0") {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a valid ifreq naming "lo"; SIOCGIFFLAGS fills in ifru_flags.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS as _, &mut req) })?;
    // SAFETY: SIOCGIFFLAGS initialised the ifru_flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: as above; SIOCSIFFLAGS reads the name and flags.
    Errno::result(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS as _, &req) })?;
    Ok(())
}

/// Restores the default action of SIGPIPE (death), which the launcher inherits ignored from
/// Rust's runtime and exec would pass on. Async-signal-safe.
pub fn default_sigpipe() {
    // SAFETY: sets a disposition, installs no handler; signal(2) is async-signal-safe.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
}

/// `_exit(2)`: ends the process at once, without running destructors or atexit handlers
/// (which belong to the launcher this process was copied from).
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit is always safe to call; it does not return.
    unsafe { libc::_exit(code) }
}

/// `fflush(NULL)`: writes out what C code (a test calling a C library) left in its `stdio`
/// buffers, which `_exit` would drop.
pub fn flush_c_stdio() {
    // SAFETY: fflush(NULL) flushes every open stream; no pointer of ours is involved.
    unsafe { libc::fflush(std::ptr::null_mut()) };
}

/// `dup2(2)` that leaves `target` without `O_CLOEXEC` even when `source == target`.
pub fn dup_onto(source: RawFd, target: RawFd) -> Result<(), Errno> {
    if source == target {
        // SAFETY: fcntl on an fd we were given; clears only FD_CLOEXEC.
        return Errno::result(unsafe { libc::fcntl(source, libc::F_SETFD, 0) }).map(drop);
    }
    // SAFETY: dup2 on descriptors; no memory is involved.
    Errno::result(unsafe { libc::dup2(source, target) }).map(drop)
}

/// What [`reap_any_child`] found.
pub enum Reaped {
    /// This child ended, with this raw wait status.
    Child(Pid, i32),
    /// Children are left, none of them has ended (only without `block`).
    NoneEnded,
    /// No child is left.
    NoChildren,
}

/// `waitpid(-1, __WALL)`: one ended child of any kind (also those made by `clone` with another
/// exit signal), waiting for one if `block`.
pub fn reap_any_child(block: bool) -> Reaped {
    let flags = libc::__WALL | if block { 0 } else { libc::WNOHANG };
    loop {
        let mut status = 0;
        // SAFETY: `status` is a valid out-pointer.
        let pid = unsafe { libc::waitpid(-1, &mut status, flags) };
        match pid {
            0 => return Reaped::NoneEnded,
            pid if pid > 0 => return Reaped::Child(Pid::from_raw(pid), status),
            _ if Errno::last() == Errno::EINTR => continue,
            _ => return Reaped::NoChildren,
        }
    }
}

/// `kill(-1, SIGKILL)` from a PID namespace's init: every other process of the namespace.
pub fn kill_rest_of_namespace() {
    // SAFETY: plain syscall with integer arguments.
    unsafe { libc::kill(-1, libc::SIGKILL) };
}

/// `execvpe(3)`: like [`execvp`] with an explicit, null-terminated environment.
pub fn execvpe(program: &CStr, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> Errno {
    assert!(argv.last().is_some_and(|p| p.is_null()), "argv must be null-terminated");
    assert!(envp.last().is_some_and(|p| p.is_null()), "envp must be null-terminated");
    // SAFETY: all three are valid, null-terminated as checked above, built from CStrings that
    // the caller keeps alive.
    unsafe { libc::execvpe(program.as_ptr(), argv.as_ptr(), envp.as_ptr()) };
    Errno::last()
}

/// `poll(2)` for input on `first` and, if given, `second`; which of them are readable.
pub fn poll_either(
    first: BorrowedFd<'_>,
    second: Option<BorrowedFd<'_>>,
    timeout: Option<std::time::Duration>,
) -> Result<(bool, bool), Errno> {
    let [first, second] = poll_readable([Some(first), second], timeout)?;
    Ok((first, second))
}

/// `poll(2)` for input on each descriptor given (`None`: not watched); which of them are
/// readable (or ended).
pub fn poll_readable<const N: usize>(
    watched: [Option<BorrowedFd<'_>>; N],
    timeout: Option<std::time::Duration>,
) -> Result<[bool; N], Errno> {
    poll_for(watched, libc::POLLIN, timeout)
}

/// `poll(2)` for `events` on each descriptor given (`None`: not watched); on which of them
/// something happened (one of `events`, or an error or hang-up).
pub fn poll_for<const N: usize>(
    watched: [Option<BorrowedFd<'_>>; N],
    events: libc::c_short,
    timeout: Option<std::time::Duration>,
) -> Result<[bool; N], Errno> {
    let mut fds = watched.map(|fd| libc::pollfd { fd: fd.map_or(-1, |fd| fd.as_raw_fd()), events, revents: 0 });
    let millis = match timeout {
        None => -1,
        // Round up so that a deadline is never reported as reached early.
        Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
    };
    // SAFETY: N valid pollfds (a negative fd is ignored by poll), count N.
    Errno::result(unsafe { libc::poll(fds.as_mut_ptr(), N as libc::nfds_t, millis) })?;
    Ok(fds.map(|fd| fd.revents != 0))
}

/// `write(2)` on a raw descriptor that the caller knows to be open (used in the sandbox's init,
/// which holds descriptors inherited across the clone, not owned Rust values).
pub fn write_raw(fd: RawFd, bytes: &[u8]) -> Result<usize, Errno> {
    // SAFETY: `bytes` is a valid buffer of its length; a closed fd only yields EBADF.
    Errno::result(unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) }).map(|n| n as usize)
}

/// Opens `path` below the directory `dir` for writing, writes `bytes` in one call, closes it:
/// the init's way into its v1 cgroups (`tasks`), with raw calls only (no allocation).
pub fn write_file_at(dir: RawFd, path: &CStr, bytes: &[u8]) -> Result<(), Errno> {
    // SAFETY: `path` is a valid C string; the flags create nothing.
    let fd = Errno::result(unsafe { libc::openat(dir, path.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) })?;
    let written = write_whole(fd, bytes);
    // SAFETY: `fd` was opened above and is closed once.
    unsafe { libc::close(fd) };
    written
}

/// `mount_setattr(2)` of `path` with `AT_RECURSIVE` and `MOUNT_ATTR_RDONLY`: the mount there and
/// every mount below it read-only (`EINVAL` where `path` is no mount point, `ENOSYS` before
/// Linux 5.12). No allocation.
pub fn make_tree_read_only(path: &std::ffi::CStr) -> Result<(), Errno> {
    /// `struct mount_attr` (linux/mount.h).
    #[repr(C)]
    struct MountAttr {
        attr_set: u64,
        attr_clr: u64,
        propagation: u64,
        userns_fd: u64,
    }
    const MOUNT_ATTR_RDONLY: u64 = 0x1;
    const AT_RECURSIVE: libc::c_uint = 0x8000;
    let attr = MountAttr { attr_set: MOUNT_ATTR_RDONLY, attr_clr: 0, propagation: 0, userns_fd: 0 };
    // SAFETY: a NUL-terminated path and a mount_attr of the size passed, both valid for the call.
    Errno::result(unsafe {
        libc::syscall(libc::SYS_mount_setattr, libc::AT_FDCWD, path.as_ptr(), AT_RECURSIVE, &attr, std::mem::size_of::<MountAttr>())
    })
    .map(drop)
}

/// Makes this process (and what it starts) the OOM killer's first choice: `oom_score_adj`
/// 1000, which any process may set (raising needs no privilege). No allocation.
pub fn prefer_for_oom_kill() -> Result<(), Errno> {
    write_file_at(libc::AT_FDCWD, c"/proc/self/oom_score_adj", b"1000")
}

/// [`write_raw`] of `bytes` in one call, a short write being an error (`EIO`): for control
/// files, which take a value whole or not at all.
pub fn write_whole(fd: RawFd, bytes: &[u8]) -> Result<(), Errno> {
    match write_raw(fd, bytes)? {
        n if n == bytes.len() => Ok(()),
        _ => Err(Errno::EIO),
    }
}

/// Takes ownership of a descriptor that `nix` returned as a bare `RawFd`.
///
/// # Safety
/// `fd` must be open, and nothing else may own it: no other `OwnedFd`, `File` or code that
/// closes it (the descriptor a successful `open` just returned, for example).
///
/// # Panics
/// If `fd` is negative.
pub unsafe fn own_fd(fd: RawFd) -> OwnedFd {
    assert!(fd >= 0, "a valid descriptor");
    // SAFETY: the caller guarantees that `fd` is open and handed over to us alone.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)`: runs the open file `fd`. Returns only on error.
pub fn execveat_fd(fd: RawFd, argv: &[*const libc::c_char], envp: &[*const libc::c_char]) -> Errno {
    assert!(argv.last().is_some_and(|p| p.is_null()), "argv must be null-terminated");
    assert!(envp.last().is_some_and(|p| p.is_null()), "envp must be null-terminated");
    // SAFETY: an empty C string path, and null-terminated argv/envp of valid C strings that
    // the caller keeps alive.
    unsafe {
        libc::syscall(libc::SYS_execveat, fd, c"".as_ptr(), argv.as_ptr(), envp.as_ptr(), libc::AT_EMPTY_PATH)
    };
    Errno::last()
}

/// Puts the calling process into a new process group and makes that group the foreground of the
/// terminal on `fd`, so that an interactive shell in the sandbox gets ^C and job control. The
/// caller must have SIGTTOU blocked (it is still in the background while it asks).
pub fn take_terminal_foreground(fd: RawFd) -> Result<(), Errno> {
    // SAFETY: plain syscalls with integer arguments.
    Errno::result(unsafe { libc::setpgid(0, 0) })?;
    // SAFETY: as above.
    Errno::result(unsafe { libc::tcsetpgrp(fd, libc::getpid()) }).map(drop)
}

/// Makes this process's group the foreground of the terminal on `fd` again (after a sandboxed
/// interactive command took it), with SIGTTOU blocked meanwhile.
pub fn restore_terminal_foreground(fd: RawFd) -> Result<(), Errno> {
    let mut ttou = SigSet::empty();
    ttou.add(Signal::SIGTTOU);
    let mut old = SigSet::empty();
    nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_BLOCK, Some(&ttou), Some(&mut old))?;
    // SAFETY: plain syscalls with integer arguments.
    let result = Errno::result(unsafe { libc::tcsetpgrp(fd, libc::getpgrp()) }).map(drop);
    nix::sys::signal::pthread_sigmask(nix::sys::signal::SigmaskHow::SIG_SETMASK, Some(&old), None)?;
    result
}

/// Whether `fd` is a terminal whose foreground process group is this process's group.
pub fn is_foreground_terminal(fd: RawFd) -> bool {
    // SAFETY: plain syscalls with integer arguments.
    unsafe { libc::isatty(fd) == 1 && libc::tcgetpgrp(fd) == libc::getpgrp() }
}

/// Marks every descriptor from 3 up close-on-exec, so the command inherits only its stdio and
/// what it is explicitly given: an inherited descriptor of a host directory would otherwise lead
/// out of a `--rootfs` sandbox (`/proc/self/fd/N/..`). Async-signal-safe.
pub fn cloexec_from_3() {
    // SAFETY: plain syscall with integer arguments; it only sets flags on our own descriptors.
    let ret = unsafe { libc::syscall(libc::SYS_close_range, 3u32, u32::MAX, libc::CLOSE_RANGE_CLOEXEC) };
    if ret != 0 {
        // Kernels before 5.11: one fcntl per possible descriptor (EBADF for the unused ones).
        for fd in 3..4096 {
            // SAFETY: fcntl on an integer; a closed descriptor just yields EBADF.
            unsafe { libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) };
        }
    }
}

