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
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::unistd::Pid;

const CLONE_PIDFD: u64 = 0x1000;
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// The type of `setrlimit`'s resource argument: an enum in glibc, an int in musl.
#[cfg(target_env = "gnu")]
pub type RlimitResource = libc::__rlimit_resource_t;
/// The type of `setrlimit`'s resource argument: an enum in glibc, an int in musl.
#[cfg(not(target_env = "gnu"))]
pub type RlimitResource = libc::c_int;

/// `flags` as `clone(2)` takes them (an `unsigned long`; the flags are the low 32 bits).
fn clone_flags(flags: CloneFlags) -> libc::c_ulong {
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
struct CloneArgs {
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
            let sent = matches!(info.si_code, libc::SI_USER | libc::SI_QUEUE | libc::SI_TKILL);
            // SAFETY: for a signal sent by a process, the kernel filled in the sender's pid.
            let sender = if sent { unsafe { info.si_pid() } } else { -1 };
            return PendingSignal { signal: ret, from_kernel: info.si_code == libc::SI_KERNEL, from_outside: sender == 0 };
        }
    }
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

/// What Rust's runtime start-up does for a `main` that a program without it (`#![no_main]`,
/// the `sandbox` CLI) still needs: standard descriptors 0-2 that are closed get `/dev/null`
/// (so no pipe of ours lands on them and is taken for the command's stdio), and SIGPIPE is
/// ignored (so a write to a pipe whose reader died is an `EPIPE` error, not our death). Returns
/// the arguments (`std::env::args` has them only on glibc, which hands them to Rust's standard
/// library before `main`; on musl only the runtime start-up would).
///
/// # Safety
/// `argv` must point to `argc` valid NUL-terminated strings, as C's `main` receives them.
pub unsafe fn start_without_runtime(argc: libc::c_int, argv: *const *const libc::c_char) -> Vec<std::ffi::OsString> {
    use std::os::unix::ffi::OsStrExt;
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd { fd, events: 0, revents: 0 });
    // SAFETY: `fds` is a valid array of three pollfds for the duration of the call.
    if unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } >= 0 {
        for pollfd in fds.iter().filter(|p| p.revents & libc::POLLNVAL != 0) {
            // SAFETY: a NUL-terminated path; open returns the lowest free descriptor, which is
            // this closed one (lower ones were checked or reopened first).
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if fd != pollfd.fd {
                // Nothing sensible is left to do without usable standard descriptors.
                exit_immediately(125);
            }
        }
    }
    // SAFETY: sets a disposition, installs no handler.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) };
    (0..argc.max(0) as usize)
        .map(|i| {
            // SAFETY: the caller guarantees `argc` valid NUL-terminated strings at `argv`.
            let arg = unsafe { CStr::from_ptr(*argv.add(i)) };
            std::ffi::OsStr::from_bytes(arg.to_bytes()).to_os_string()
        })
        .collect()
}

/// The arena of [`LauncherAllocator`]: more than the CLI allocates in a run (~90 KiB), in
/// `.bss`, so only the pages used are ever touched.
const LAUNCHER_ARENA_BYTES: usize = 256 << 10;

/// A global allocator for a short-lived launcher (the `sandbox` CLI): pieces are cut from a
/// static arena and not given back, except that the last piece can grow, shrink or be freed in
/// place (a growing `Vec`, a temporary); once the arena is used up, the system allocator takes
/// over. musl's allocator returns freed memory to the kernel at once (`munmap`), and while the
/// init shares the launcher's memory each `munmap` costs a TLB shoot-down on the init's CPU
/// (BENCHMARKS.md).
pub struct LauncherAllocator {
    arena: std::cell::UnsafeCell<[u8; LAUNCHER_ARENA_BYTES]>,
    /// Bytes of the arena handed out, from its start.
    used: std::sync::atomic::AtomicUsize,
}

// SAFETY: the arena is handed out in disjoint pieces, each claimed by an atomic update of
// `used`; the allocator itself never reads or writes a piece's bytes.
unsafe impl Sync for LauncherAllocator {}

impl LauncherAllocator {
    /// An allocator with its whole arena free.
    pub const fn new() -> LauncherAllocator {
        LauncherAllocator {
            arena: std::cell::UnsafeCell::new([0; LAUNCHER_ARENA_BYTES]),
            used: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    fn base(&self) -> usize {
        self.arena.get() as usize
    }

    /// The offset of `ptr` in the arena, if it points there.
    fn offset(&self, ptr: *mut u8) -> Option<usize> {
        (ptr as usize).checked_sub(self.base()).filter(|&offset| offset < LAUNCHER_ARENA_BYTES)
    }

    /// Moves the end of the last piece from `from` to `to` (offsets), if it still ends at `from`.
    fn move_end(&self, from: usize, to: usize) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        to <= LAUNCHER_ARENA_BYTES && self.used.compare_exchange(from, to, Relaxed, Relaxed).is_ok()
    }
}

impl Default for LauncherAllocator {
    fn default() -> LauncherAllocator {
        LauncherAllocator::new()
    }
}

// SAFETY: every piece is inside the arena, aligned as asked, and disjoint from all others
// handed out (claimed atomically); pieces from the system allocator go back to it.
unsafe impl std::alloc::GlobalAlloc for LauncherAllocator {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        use std::sync::atomic::Ordering::Relaxed;
        let base = self.base();
        let mut used = self.used.load(Relaxed);
        loop {
            let start = (base + used).next_multiple_of(layout.align()) - base;
            let end = start + layout.size();
            if end > LAUNCHER_ARENA_BYTES {
                // SAFETY: the caller's layout, passed on.
                return unsafe { std::alloc::System.alloc(layout) };
            }
            match self.used.compare_exchange_weak(used, end, Relaxed, Relaxed) {
                Ok(_) => return (base + start) as *mut u8,
                Err(now) => used = now,
            }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        match self.offset(ptr) {
            // Only the last piece is taken back.
            Some(start) => {
                self.move_end(start + layout.size(), start);
            }
            // SAFETY: a piece of the system allocator with this layout, as the caller promises.
            None => unsafe { std::alloc::System.dealloc(ptr, layout) },
        }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        let Some(start) = self.offset(ptr) else {
            // SAFETY: a piece of the system allocator, as the caller promises.
            return unsafe { std::alloc::System.realloc(ptr, layout, new_size) };
        };
        if self.move_end(start + layout.size(), start + new_size) || new_size <= layout.size() {
            return ptr;
        }
        // SAFETY: the caller promises a valid size for this alignment.
        let new_layout = unsafe { std::alloc::Layout::from_size_align_unchecked(new_size, layout.align()) };
        // SAFETY: a non-zero size (larger than the old one).
        let new = unsafe { self.alloc(new_layout) };
        if !new.is_null() {
            // SAFETY: both pieces are valid for the old size and do not overlap (the new one
            // was handed out while the old one was still in use).
            unsafe { std::ptr::copy_nonoverlapping(ptr, new, layout.size()) };
            // SAFETY: the old piece with its layout, no longer used.
            unsafe { self.dealloc(ptr, layout) };
        }
        new
    }
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
    let pollfd = |fd: RawFd| libc::pollfd { fd, events: libc::POLLIN, revents: 0 };
    let mut fds = [pollfd(first.as_raw_fd()), pollfd(second.map_or(-1, |fd| fd.as_raw_fd()))];
    let millis = match timeout {
        None => -1,
        // Round up so that a deadline is never reported as reached early.
        Some(t) => t.as_micros().div_ceil(1000).min(i32::MAX as u128) as libc::c_int,
    };
    // SAFETY: two valid pollfds (a negative fd is ignored by poll), count 2.
    Errno::result(unsafe { libc::poll(fds.as_mut_ptr(), 2, millis) })?;
    Ok((fds[0].revents != 0, fds[1].revents != 0))
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

/// [`write_raw`] of `bytes` in one call, a short write being an error (`EIO`): for control
/// files, which take a value whole or not at all.
pub fn write_whole(fd: RawFd, bytes: &[u8]) -> Result<(), Errno> {
    match write_raw(fd, bytes)? {
        n if n == bytes.len() => Ok(()),
        _ => Err(Errno::EIO),
    }
}

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

/// The number of threads of this process (`Threads:` of `/proc/self/status`).
pub fn thread_count() -> Option<usize> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status.lines().find_map(|l| l.strip_prefix("Threads:")).and_then(|n| n.trim().parse().ok())
}

std::thread_local! {
    /// Set on the libtest thread that runs an `#[isolated]` test (see [`mark_libtest_test_thread`]).
    static LIBTEST_TEST_THREAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Marks the calling thread as the one libtest runs an `#[isolated]` test on: called by the
/// stock harness's entry point, and only there.
pub(crate) fn mark_libtest_test_thread() {
    LIBTEST_TEST_THREAD.with(|mark| mark.set(true));
}

/// Whether [`mark_libtest_test_thread`] was called on this thread.
pub(crate) fn on_libtest_test_thread() -> bool {
    LIBTEST_TEST_THREAD.with(|mark| mark.get())
}

/// Which threads may be running when [`fork_copy`] copies the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ForkFrom {
    /// This is the only thread (the runner before it starts any).
    OnlyThread,
    /// A libtest test thread of a test binary that runs just this test (`--test-threads=1`):
    /// the only other thread, libtest's main thread, is blocked waiting for the test, so it
    /// holds no lock the copy could need.
    TestThread,
}

/// glibc's `fork(2)` (which leaves the allocator consistent in the copy), for a copy that has
/// one thread and may run any code. Refuses (`EAGAIN`) when more threads run than `from`
/// allows. Returns `None` in the child.
///
/// # Safety
/// With [`ForkFrom::TestThread`], the one other thread must be libtest's main thread, blocked
/// waiting for the calling test (only a test binary run with `--test-threads=1` for this test
/// is), and the copy must run no code of libtest's: the count of threads cannot tell which
/// thread the second one is, or what locks it holds. [`ForkFrom::OnlyThread`] asks nothing.
pub unsafe fn fork_copy(from: ForkFrom) -> Result<Option<Pid>, Errno> {
    let allowed = match from {
        ForkFrom::OnlyThread => 1,
        ForkFrom::TestThread => 2,
    };
    if thread_count().is_none_or(|n| n > allowed) {
        return Err(Errno::EAGAIN);
    }
    // SAFETY: no other thread can hold a lock the copy needs: there is none, or (the caller
    // guarantees) it is libtest's main thread, blocked, whose code the copy does not run.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Child => Ok(None),
        nix::unistd::ForkResult::Parent { child } => Ok(Some(child)),
    }
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

#[cfg(test)]
mod tests {
    use std::alloc::{GlobalAlloc, Layout};

    use super::{clone_flag_names, clone_flags, LauncherAllocator, LAUNCHER_ARENA_BYTES};
    use nix::sched::CloneFlags;

    #[test]
    fn clone_flags_keep_their_bits_and_names() {
        let flags = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUSER;
        assert_eq!(clone_flags(flags), (libc::CLONE_NEWPID | libc::CLONE_NEWNS | libc::CLONE_NEWUSER) as libc::c_ulong);
        assert_eq!(clone_flag_names(flags), "CLONE_NEWNS|CLONE_NEWUSER|CLONE_NEWPID");
        assert_eq!(clone_flag_names(CloneFlags::empty()), "");
    }

    #[test]
    fn launcher_allocator_cuts_aligned_disjoint_pieces_and_falls_back_to_the_system() {
        static ARENA: LauncherAllocator = LauncherAllocator::new();
        let in_arena = |p: *mut u8| ARENA.offset(p).is_some();
        let small = Layout::from_size_align(24, 8).unwrap();
        let aligned = Layout::from_size_align(100, 64).unwrap();
        // SAFETY: for the whole test: non-zero layouts; every piece is freed with its own layout.
        unsafe {
            let a = ARENA.alloc(small);
            let b = ARENA.alloc(aligned);
            assert!(in_arena(a) && in_arena(b));
            assert_eq!(b as usize % 64, 0, "alignment kept");
            assert!(b as usize >= a as usize + 24, "pieces overlap");
            // The last piece grows in place, a piece before it moves.
            assert_eq!(ARENA.realloc(b, aligned, 4000), b);
            let b_layout = Layout::from_size_align(4000, 64).unwrap();
            b.write_bytes(7, 4000);
            let a2 = ARENA.realloc(a, small, 48);
            assert_ne!(a2, a);
            assert!(a2 as usize >= b as usize + 4000);
            // Freeing the last piece gives its room back to the next one.
            ARENA.dealloc(a2, Layout::from_size_align(48, 8).unwrap());
            let c = ARENA.alloc(small);
            assert_eq!(c, a2);
            assert_eq!(*b.add(3999), 7, "a neighbour's bytes are untouched");
            // Past the arena: the system allocator, whose pieces go back to it.
            let big = Layout::from_size_align(LAUNCHER_ARENA_BYTES, 8).unwrap();
            let d = ARENA.alloc(big);
            assert!(!d.is_null() && !in_arena(d));
            d.write_bytes(1, LAUNCHER_ARENA_BYTES);
            let d2 = ARENA.realloc(d, big, 2 * LAUNCHER_ARENA_BYTES);
            assert!(!in_arena(d2) && *d2.add(LAUNCHER_ARENA_BYTES - 1) == 1);
            ARENA.dealloc(d2, Layout::from_size_align(2 * LAUNCHER_ARENA_BYTES, 8).unwrap());
            ARENA.dealloc(c, small);
            ARENA.dealloc(b, b_layout);
        }
    }
}
