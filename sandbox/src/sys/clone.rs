//! Creating processes: `clone` or `clone3` (into a cgroup) on a stack of our own sharing memory
//! (the init), `clone` borrowing it (vfork, the command), `clone3` with a copy of it where that
//! cannot be done, and glibc's `fork` for the copies that run Rust code (fork servers, the D-Bus
//! helper).

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

/// Whether [`clone_sharing_memory_into`] can create the process inside its cgroup here: it
/// needs a few instructions of its own per architecture (below), written and tested for x86-64
/// only; elsewhere the init is created with a copy of the memory ([`clone_process`]).
pub const CLONE3_SHARES_MEMORY: bool = cfg!(target_arch = "x86_64");

/// [`clone_sharing_memory`], directly inside the cgroup whose directory `cgroup_dir` is open
/// (`CLONE_INTO_CGROUP`). The third value says whether the kernel placed it there: where
/// `clone3` or `CLONE_INTO_CGROUP` is missing it is created by `clone(2)` where this process
/// is, for the caller to move.
///
/// glibc's `clone` runs a function on a new stack but has no cgroup argument, and `clone3` has
/// no wrapper: the child of a raw `clone3` with `CLONE_VM` returns from the system call on the
/// new stack, where no Rust code may go on from the caller's frame. [`clone3_on_stack`] does
/// what glibc's wrapper does for `clone`: in the child, straight from the system call, it calls
/// the function on the new stack, which never returns.
///
/// # Safety
/// As for [`clone_sharing_memory`].
pub unsafe fn clone_sharing_memory_into<T>(
    namespace_flags: CloneFlags,
    cgroup_dir: BorrowedFd<'_>,
    stack: &ChildStack,
    child: fn(&T) -> !,
    arg: &T,
) -> Result<(Pid, OwnedFd, bool), Errno> {
    let mut pidfd: RawFd = -1;
    let call = Call::write_on(stack, child, arg);
    let mut args = CloneArgs {
        flags: clone3_flags(namespace_flags | CloneFlags::CLONE_VM) | CLONE_PIDFD | CLONE_INTO_CGROUP,
        pidfd: &mut pidfd as *mut RawFd as u64,
        exit_signal: libc::SIGCHLD as u64,
        // The kernel starts the child's stack pointer at `stack + stack_size`: the call's slot.
        stack: stack.base as u64,
        stack_size: call as u64 - stack.base as u64,
        cgroup: cgroup_dir.as_raw_fd() as u64,
        ..CloneArgs::default()
    };
    // SAFETY: `args` is a valid clone_args whose stack is the free part of our mapping, below
    // the call; the caller upholds the rest of the contract.
    let ret = unsafe { clone3_on_stack(&mut args, Call::<T>::trampoline, call.cast()) };
    // The raw system call's answer: `-errno` on failure (errno itself is not set).
    let cloned = match ret {
        pid if pid >= 0 => Ok(pid),
        error => Err(Errno::from_raw(-error as i32)),
    };
    match cloned {
        // SAFETY: with CLONE_PIDFD the kernel stored a new, owned file descriptor in pidfd.
        Ok(pid) => Ok((Pid::from_raw(pid as libc::pid_t), unsafe { OwnedFd::from_raw_fd(pidfd) }, true)),
        // As in `clone_process`: no clone3, or no CLONE_INTO_CGROUP.
        Err(Errno::ENOSYS | Errno::E2BIG | Errno::EINVAL) => {
            // SAFETY: forwarded contract.
            let (pid, pidfd) = unsafe { clone_sharing_memory(namespace_flags, stack, child, arg) }?;
            Ok((pid, pidfd, false))
        }
        Err(err) => Err(err),
    }
}

/// The raw `clone3(2)` call of [`clone_sharing_memory_into`]: returns the child's PID (or
/// `-errno`) in the parent; the child, on `args.stack`, calls `entry(data)` and never returns
/// here.
///
/// # Safety
/// `args` asks for a stack that is mapped, writable and 16-byte aligned at its end, and
/// `entry` may run there on this process's memory (see [`clone_sharing_memory`]).
#[cfg(target_arch = "x86_64")]
unsafe fn clone3_on_stack(args: &mut CloneArgs, entry: extern "C" fn(*mut libc::c_void) -> !, data: *mut libc::c_void) -> isize {
    let ret: isize;
    // SAFETY: the caller's contract. The parent's path is the system call alone. The child's
    // starts on its own stack with every register but rax as the parent had it, reads only
    // registers (r12 and r13 survive a system call), and enters `entry`, which does not return.
    unsafe {
        std::arch::asm!(
            "syscall",
            "test rax, rax",
            "jnz 2f",
            // The child: the outermost frame (no frame pointer), the argument, and `entry`
            // entered as if called from address 0, the end of the stack to an unwinder (a
            // panic's backtrace in a test body forked from the init walks up to here; a real
            // return address would send it on through this function's frame on our stack).
            "xor ebp, ebp",
            "mov rdi, r12",
            "push 0",
            "jmp r13",
            "2:",
            inlateout("rax") libc::SYS_clone3 as isize => ret,
            in("rdi") args as *mut CloneArgs,
            in("rsi") std::mem::size_of::<CloneArgs>(),
            in("r12") data,
            in("r13") entry,
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    ret
}

/// Elsewhere (see [`CLONE3_SHARES_MEMORY`]) the answer of a kernel without `clone3`, so that
/// [`clone_sharing_memory_into`] creates the process with `clone(2)`.
///
/// # Safety
/// None needed: it makes no call.
#[cfg(not(target_arch = "x86_64"))]
unsafe fn clone3_on_stack(_: &mut CloneArgs, _: extern "C" fn(*mut libc::c_void) -> !, _: *mut libc::c_void) -> isize {
    -(libc::ENOSYS as isize)
}

/// What a child created on a [`ChildStack`] calls: `child(arg)`, written at the top of that
/// stack rather than on ours, which we may leave while the child still reads it.
#[repr(C)]
struct Call<T> {
    child: fn(&T) -> !,
    arg: *const T,
}

impl<T> Call<T> {
    /// Writes the call at the top of `stack`, 16-byte aligned: the child's stack starts below
    /// it, at the returned address.
    fn write_on(stack: &ChildStack, child: fn(&T) -> !, arg: &T) -> *mut Call<T> {
        let call_slot = (stack.base as usize + stack.len - std::mem::size_of::<Call<T>>()) & !15;
        let call = call_slot as *mut Call<T>;
        // SAFETY: `call_slot` lies inside the writable part of our mapping, aligned for Call.
        unsafe { call.write(Call { child, arg: arg as *const T }) };
        call
    }

    /// The child's entry: `data` is the `Call` written by [`Call::write_on`].
    extern "C" fn trampoline(data: *mut libc::c_void) -> ! {
        // SAFETY: `data` is the `Call` at the top of the child's stack, which stays mapped as
        // long as the child lives; `arg` is kept alive by the caller.
        let call = unsafe { &*(data as *const Call<T>) };
        // SAFETY: as above.
        let arg = unsafe { &*call.arg };
        (call.child)(arg)
    }

    /// [`Call::trampoline`] as glibc's `clone` takes it (returning an `int`).
    extern "C" fn clone_entry(data: *mut libc::c_void) -> libc::c_int {
        Call::<T>::trampoline(data)
    }
}

/// glibc's `clone(2)` with `flags` (plus `SIGCHLD`) running `child(arg)` on `stack` (see
/// [`Call`]).
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
    let call = Call::write_on(stack, child, arg);
    // SAFETY: the stack pointer is the 16-byte-aligned end of the free part of our mapping;
    // the caller upholds the rest.
    let pid = unsafe { libc::clone(Call::<T>::clone_entry, call.cast(), flags | libc::SIGCHLD, call.cast(), parent_tid) };
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

#[cfg(test)]
mod cgroup_tests {
    use std::os::fd::{AsFd, AsRawFd, RawFd};
    use std::path::PathBuf;

    use nix::sched::CloneFlags;

    use super::{clone_sharing_memory_into, ChildStack, CLONE3_SHARES_MEMORY};
    use crate::cgroup::Layout;

    /// A cgroup2 directory made for the test, removed when it drops (after the child is reaped).
    struct TestCgroup(PathBuf);

    impl Drop for TestCgroup {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir(&self.0);
        }
    }

    /// The child: it walks its own stack as a panic's backtrace does (where glibc has the
    /// call for it), writes `value` on `report`, then waits for the end of the `release` pipe
    /// (its own copy of the write end closed), and exits with `value`. It runs on its own stack
    /// and reads `arg` from our memory.
    fn report_and_wait(&(report, (release, release_write), value): &(RawFd, (RawFd, RawFd), u8)) -> ! {
        #[cfg(target_env = "gnu")]
        {
            let mut frames = [std::ptr::null_mut(); 64];
            // SAFETY: writes at most 64 addresses into the buffer on this stack; the unwinder
            // was loaded by the test before the clone, so nothing is allocated.
            let walked = unsafe { libc::backtrace(frames.as_mut_ptr(), 64) };
            if !(1..64).contains(&walked) {
                super::super::exit_immediately(1);
            }
        }
        let _ = super::super::write_raw(report, &[value]);
        let mut byte = [0u8; 1];
        // SAFETY: closes the child's own copy of a descriptor, then reads into a buffer on this
        // stack.
        unsafe {
            libc::close(release_write);
            libc::read(release, byte.as_mut_ptr().cast(), 1)
        };
        super::super::exit_immediately(value as i32)
    }

    #[test]
    fn a_process_sharing_memory_is_created_inside_its_cgroup() {
        let mount_point = match Layout::current() {
            Ok(Layout::Unified { mount_point }) => mount_point,
            Ok(Layout::Hybrid { unified, .. }) => unified,
            _ => return eprintln!("nothing to check: no cgroup2 hierarchy is mounted"),
        };
        if !nix::unistd::geteuid().is_root() || !CLONE3_SHARES_MEMORY {
            return eprintln!("nothing to check: making a cgroup at the cgroup2 root needs root (and x86-64)");
        }
        let cgroup = TestCgroup(mount_point.join(format!("sandbox-clone-test-{}", std::process::id())));
        std::fs::create_dir(&cgroup.0).unwrap();
        let dir = std::fs::File::open(&cgroup.0).unwrap();
        let (report_read, report_write) = nix::unistd::pipe().unwrap();
        let (release_read, release_write) = nix::unistd::pipe().unwrap();
        let arg = (report_write.as_raw_fd(), (release_read.as_raw_fd(), release_write.as_raw_fd()), 42u8);
        let stack = ChildStack::new(64 * 1024).unwrap();
        #[cfg(target_env = "gnu")]
        {
            // Loads the unwinder (libgcc_s) here, so that the child's walk allocates nothing.
            let mut frames = [std::ptr::null_mut(); 4];
            // SAFETY: writes at most 4 addresses into the buffer.
            unsafe { libc::backtrace(frames.as_mut_ptr(), 4) };
        }
        // SAFETY: the child touches only its stack and `arg`, which outlive it (it is reaped
        // below, before either goes), allocates nothing and ends in _exit.
        let (pid, _pidfd, placed) =
            unsafe { clone_sharing_memory_into(CloneFlags::empty(), dir.as_fd(), &stack, report_and_wait, &arg) }.unwrap();
        // The child has its own copy: a child that died before its report reads as the end.
        drop(report_write);
        let mut byte = [0u8; 1];
        let reported = nix::unistd::read(report_read.as_raw_fd(), &mut byte);
        if reported != Ok(1) {
            let status = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::__WALL));
            panic!("the child ended before its report (it could not walk its stack): {status:?}");
        }
        let cgroups = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        drop(release_write);
        let status = nix::sys::wait::waitpid(pid, Some(nix::sys::wait::WaitPidFlag::__WALL)).unwrap();
        assert_eq!(byte[0], 42, "the child read its argument from our memory");
        assert_eq!(status, nix::sys::wait::WaitStatus::Exited(pid, 42));
        if !placed {
            // Only where a filter answers clone3 before the kernel: the child is created where
            // this process is, for its launcher to move.
            let refusal = super::super::clone3_filter_refusal();
            assert!(refusal.is_some(), "clone3 fell back without a filter's refusal");
            return eprintln!("nothing to check: clone3 answers {refusal:?} here");
        }
        let name = cgroup.0.file_name().unwrap().to_str().unwrap();
        let unified_line = cgroups.lines().find(|line| line.starts_with("0::")).unwrap();
        assert!(unified_line.ends_with(&format!("/{name}")), "the child was created in its cgroup: {cgroups}");
    }
}
