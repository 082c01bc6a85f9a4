//! Creating processes: `clone3` into a cgroup with a pidfd, `clone` on a stack of our own
//! sharing memory (the init) or borrowing it (vfork, the command), and glibc's `fork` for the
//! copies that run Rust code (fork servers, the D-Bus helper).

use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sched::CloneFlags;
use nix::unistd::Pid;

use super::pidfd_open;

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `flags` as `clone(2)` takes them (an `unsigned long`; the flags are the low 32 bits).
pub(super) fn clone_flags(flags: CloneFlags) -> libc::c_ulong {
    flags.bits() as u32 as libc::c_ulong
}

/// `flags` as `clone3(2)`'s `clone_args.flags` takes them.
fn clone3_flags(flags: CloneFlags) -> u64 {
    flags.bits() as u32 as u64
}

/// Flag names joined by `|`, for messages: `CLONE_NEWNS|CLONE_NEWUTS|CLONE_NEWPID`.
pub fn clone_flag_names(flags: CloneFlags) -> String {
    flags.iter_names().map(|(name, _)| name).collect::<Vec<_>>().join("|")
}

/// `struct clone_args` of `clone3(2)`, version 2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
pub(super) struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// Which side of a clone this process is on.
pub enum Cloned {
    /// The new process; it shares nothing with the parent but a copy of memory and fds.
    Child,
    /// The launcher, with a pidfd of the child.
    Parent {
        /// The child's PID in the launcher's PID namespace.
        pid: Pid,
        /// A pidfd of the child: race-free signalling and waiting.
        pidfd: OwnedFd,
        /// Whether the kernel created the child directly inside the requested cgroup.
        placed_in_cgroup: bool,
    },
}

/// Creates a process like `fork(2)` but with `namespace_flags` (`CLONE_NEW*`), and on cgroup v2
/// directly inside the cgroup whose directory `cgroup_dir` is open (`CLONE_INTO_CGROUP`), which
/// spares a migration. Falls back to `clone(2)` + `pidfd_open(2)` where `clone3` is unavailable
/// (old kernels, container seccomp profiles that answer `ENOSYS`).
///
/// # Safety
/// The child side must only make async-signal-safe calls and must end in `exec` or `_exit`: it
/// is a copy of one thread of a possibly multi-threaded process.
pub unsafe fn clone_process(
    namespace_flags: CloneFlags,
    cgroup_dir: Option<BorrowedFd<'_>>,
) -> Result<Cloned, Errno> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: clone3_flags(namespace_flags) | CLONE_PIDFD,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(dir) = cgroup_dir {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = dir.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid, initialised clone_args of the size passed; with a zero stack
    // clone3 behaves like fork, and the caller upholds the child-side contract.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match Errno::result(ret) {
        Ok(0) => Ok(Cloned::Child),
        Ok(pid) => Ok(Cloned::Parent {
            pid: Pid::from_raw(pid as libc::pid_t),
            // SAFETY: with CLONE_PIDFD the kernel stored a new, owned file descriptor in pidfd.
            pidfd: unsafe { OwnedFd::from_raw_fd(pidfd) },
            placed_in_cgroup: cgroup_dir.is_some(),
        }),
        // ENOSYS: no clone3; E2BIG/EINVAL: no CLONE_INTO_CGROUP (kernel < 5.7); EPERM under
        // some seccomp profiles. Each time the classic clone still works.
        Err(Errno::ENOSYS | Errno::E2BIG) => {
            // SAFETY: forwarded contract of this function.
            unsafe { clone_fallback(namespace_flags) }
        }
        Err(Errno::EINVAL) if cgroup_dir.is_some() => {
            // SAFETY: forwarded contract of this function.
            unsafe { clone_fallback(namespace_flags) }
        }
        Err(err) => Err(err),
    }
}

/// `clone(2)` with fork semantics, then `pidfd_open(2)`.
///
/// # Safety
/// As for [`clone_process`].
unsafe fn clone_fallback(namespace_flags: CloneFlags) -> Result<Cloned, Errno> {
    // SAFETY: forwarded contract.
    match unsafe { clone_raw(namespace_flags) }? {
        None => Ok(Cloned::Child),
        Some(pid) => Ok(Cloned::Parent { pid, pidfd: pidfd_open(pid)?, placed_in_cgroup: false }),
    }
}

/// The classic `clone(2)` system call with fork semantics and `namespace_flags`; `None` in the
/// child.
///
/// # Safety
/// As for [`clone_process`].
unsafe fn clone_raw(namespace_flags: CloneFlags) -> Result<Option<Pid>, Errno> {
    let flags = clone_flags(namespace_flags) | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: a zero stack pointer gives fork semantics (the child runs on a copy of this
    // stack); no pointer arguments are passed. The caller upholds the child-side contract.
    let ret = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    Ok(match Errno::result(ret)? {
        0 => None,
        pid => Some(Pid::from_raw(pid as libc::pid_t)),
    })
}

/// Forks the calling, single-threaded process without glibc's `fork` wrapper (see the module
/// docs) and without a pidfd (the caller reaps by PID). Returns `None` in the child.
///
/// # Safety
/// As for [`clone_process`]: the child must keep to async-signal-safe calls.
pub unsafe fn fork_raw() -> Result<Option<Pid>, Errno> {
    // SAFETY: forwarded contract.
    unsafe { clone_raw(CloneFlags::empty()) }
}

/// Runs `child(arg)` in a new process that borrows this one's memory until it calls `exec` or
/// `_exit`, while this one waits (vfork semantics, as `posix_spawn` does): no copy of the page
/// tables, which is most of what starting the command costs. Returns the child's PID.
///
/// # Safety
/// `child` must end in `exec` or `_exit` and, as it writes into the caller's memory, must only
/// use its own stack frames and async-signal-safe calls. The caller must be single-threaded.
pub unsafe fn vfork_call<T>(child: fn(&T) -> !, arg: &T) -> Result<Pid, Errno> {
    let stack = ChildStack::new(256 * 1024)?;
    // SAFETY: CLONE_VFORK suspends us until the child has exec'd or exited, so `arg` and the
    // stack (unmapped when it drops, after this call) outlive its use of them; the caller
    // guarantees the child's conduct.
    unsafe { clone_on_stack(libc::CLONE_VM | libc::CLONE_VFORK, &stack, child, arg, std::ptr::null_mut()) }
}

/// A stack for a process that shares this one's memory (the sandbox's init): an anonymous
/// mapping, reserved lazily, with an inaccessible guard page below it; unmapped on drop, which
/// must come after the process using it was reaped.
#[derive(Debug)]
pub struct ChildStack {
    base: *mut libc::c_void,
    len: usize,
}

// SAFETY: the mapping is owned by this value alone; no thread of ours runs on it.
unsafe impl Send for ChildStack {}

impl ChildStack {
    /// Maps `size` bytes of stack plus a guard page.
    pub fn new(size: usize) -> Result<ChildStack, Errno> {
        const GUARD: usize = 4096;
        let len = size + GUARD;
        // SAFETY: a fresh anonymous mapping; no memory of ours is touched.
        let base = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_STACK | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(Errno::last());
        }
        let stack = ChildStack { base, len };
        // SAFETY: the lowest page of the mapping just made; a stack overflow then faults.
        Errno::result(unsafe { libc::mprotect(base, GUARD, libc::PROT_NONE) })?;
        Ok(stack)
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        // SAFETY: our own mapping; its user is gone (the owner's contract).
        unsafe { libc::munmap(self.base, self.len) };
    }
}

/// Creates a process like [`clone_process`], with `namespace_flags`, that shares this process's
/// memory (`CLONE_VM`) and runs `child(arg)` on `stack`: no copy of the page tables at the
/// clone, and none to tear down at its exit. Returns its PID and a pidfd.
///
/// # Safety
/// As for [`clone_process`], and more, since the child runs on our memory while we do:
/// `child` must only touch its own stack and `arg` (no allocation, no unwinding, no thread
/// locals; it shares the calling thread's, glibc's `errno` included), `arg` and what it refers
/// to must stay unchanged until the child no longer reads it (the caller waits for a sign),
/// and `stack` must stay mapped until the child has been reaped.
pub unsafe fn clone_sharing_memory<T>(
    namespace_flags: CloneFlags,
    stack: &ChildStack,
    child: fn(&T) -> !,
    arg: &T,
) -> Result<(Pid, OwnedFd), Errno> {
    let mut pidfd: libc::c_int = -1;
    let flags = (namespace_flags | CloneFlags::CLONE_VM).bits() | libc::CLONE_PIDFD;
    // SAFETY: CLONE_PIDFD stores the pidfd in `pidfd` (the parent_tid argument); the caller
    // upholds the rest of the contract above.
    let pid = unsafe { clone_on_stack(flags, stack, child, arg, &mut pidfd) }?;
    // SAFETY: with CLONE_PIDFD the kernel stored a new, owned file descriptor in pidfd.
    Ok((pid, unsafe { OwnedFd::from_raw_fd(pidfd) }))
}

/// glibc's `clone(2)` with `flags` (plus `SIGCHLD`) running `child(arg)` on `stack`. The call is
/// written at the top of the stack, not on ours, which we may leave while the child still reads
/// it; the child's stack starts below it, 16-byte aligned.
///
/// # Safety
/// As for the callers: `stack` stays mapped and `arg` alive while the child uses them, and the
/// child keeps to what sharing (or borrowing) our memory allows; `parent_tid` is null or valid
/// for the kernel to write.
unsafe fn clone_on_stack<T>(
    flags: libc::c_int,
    stack: &ChildStack,
    child: fn(&T) -> !,
    arg: &T,
    parent_tid: *mut libc::c_int,
) -> Result<Pid, Errno> {
    #[repr(C)]
    struct Call<T> {
        child: fn(&T) -> !,
        arg: *const T,
    }
    extern "C" fn trampoline<T>(data: *mut libc::c_void) -> libc::c_int {
        // SAFETY: `data` is the `Call` written at the top of the child's stack below, which
        // stays mapped as long as the child lives; `arg` is kept alive by the caller.
        let call = unsafe { &*(data as *const Call<T>) };
        // SAFETY: as above.
        let arg = unsafe { &*call.arg };
        (call.child)(arg)
    }
    let call_slot = (stack.base as usize + stack.len - std::mem::size_of::<Call<T>>()) & !15;
    let call = call_slot as *mut Call<T>;
    // SAFETY: `call_slot` lies inside the writable part of our mapping, aligned for Call.
    unsafe { call.write(Call { child, arg: arg as *const T }) };
    // SAFETY: the stack pointer is the 16-byte-aligned end of the free part of our mapping;
    // the caller upholds the rest.
    let pid = unsafe {
        libc::clone(trampoline::<T>, call_slot as *mut libc::c_void, flags | libc::SIGCHLD, call as *mut libc::c_void, parent_tid)
    };
    Errno::result(pid).map(Pid::from_raw)
}

/// The number of threads of this process (`Threads:` of `/proc/self/status`).
pub fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok())
}

std::thread_local! {
    /// Set on the libtest thread that runs an `#[isolated]` test (see [`mark_libtest_test_thread`]).
    static LIBTEST_TEST_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as the one libtest runs an `#[isolated]` test on, so that
/// [`fork_copy`] may copy the process beside libtest's main thread.
///
/// # Safety
/// The calling thread must be a thread libtest runs a test on: its one sibling while this test
/// runs alone is libtest's main thread, blocked waiting for the test and holding no lock a copy
/// could need. (The stock harness's entry point, called by the `#[test]` that `#[isolated]`
/// generates, is the one caller.)
pub(crate) unsafe fn mark_libtest_test_thread() {
    LIBTEST_TEST_THREAD.with(|mark| mark.set(true));
}

/// Whether [`mark_libtest_test_thread`] was called on this thread.
fn on_libtest_test_thread() -> bool {
    LIBTEST_TEST_THREAD.with(|mark| mark.get())
}

/// Whether a copy of this process made now would be consistent: it has one thread, or this is
/// the thread marked as libtest's test thread and its one sibling is libtest's main thread
/// (see [`mark_libtest_test_thread`]).
pub fn copy_is_consistent() -> bool {
    let allowed = if on_libtest_test_thread() { 2 } else { 1 };
    thread_count().is_some_and(|n| n <= allowed)
}

/// glibc's `fork(2)` (which leaves the allocator consistent in the copy), for a copy that has
/// one thread and may run any code: a fork server, the D-Bus helper. Refuses (`EAGAIN`) when
/// another thread runs, except on a thread marked as libtest's test thread, beside whose one
/// sibling (libtest's main thread, blocked waiting for the test) a copy is consistent too; a
/// test binary running several tests at once has more threads and is refused. Returns `None` in
/// the child, which must end in `exit` rather than return into libtest's code.
pub fn fork_copy() -> Result<Option<Pid>, Errno> {
    if !copy_is_consistent() {
        return Err(Errno::EAGAIN);
    }
    // SAFETY: no other thread can hold a lock the copy needs: there is none, or it is libtest's
    // main thread, blocked (what `mark_libtest_test_thread`'s caller guarantees).
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => {
            // The copy is single-threaded: a thread it starts is not libtest's.
            LIBTEST_TEST_THREAD.with(|mark| mark.set(false));
            Ok(None)
        }
        nix::unistd::ForkResult::Parent { child } => Ok(Some(child)),
    }
}

#[cfg(test)]
mod tests {
    use nix::sched::CloneFlags;

    use super::{clone_flag_names, clone_flags};

    #[test]
    fn clone_flags_keep_their_bits_and_names() {
        let flags = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUSER;
        assert_eq!(clone_flags(flags), (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUSER) as libc::c_ulong);
        assert_eq!(clone_flag_names(flags), "CLONE_NEWNS|CLONE_NEWUSER|CLONE_NEWPID");
        assert_eq!(clone_flag_names(CloneFlags::empty()), "");
    }
}
