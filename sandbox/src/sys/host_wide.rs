//! The operations a contained run's command is refused although the `CAP_SYS_ADMIN` it keeps
//! (for its own mounts and namespaces) would allow them with the machine's root: those that
//! change the whole machine rather than the run. In its user namespace (`super::user_namespace`)
//! the kernel refuses them already; this filter is a second line, for a kernel that lets a
//! user namespace's root reach one of them.
//!
//! - **Reconfiguring a file system** (`mount -o remount,ro /`, `mount(2)` with `MS_REMOUNT` and
//!   without `MS_BIND`, or `fspick(2)`). A superblock is shared by every mount of it, the
//!   host's included: from inside a run, `mount -o remount,ro /var/tmp/x` made the host's file
//!   system read-only. Per-mount flags stay the run's own: `mount -o remount,bind,ro` works.
//! - **Swap** (`swapon`, `swapoff`): an OOM test that turns swap off would turn it off for
//!   the machine.
//! - **BPF** (`bpf(2)`): `CAP_SYS_ADMIN` still grants what `CAP_BPF`, dropped, would.
//! - **Clearing the kernel log or changing the console** (`syslog(2)` actions 4 to 8):
//!   `CAP_SYS_ADMIN` still grants them where `CAP_SYSLOG`, dropped, is missing. Reading stays.
//!
//! Each is refused with `EPERM`. The filter is a classic-BPF seccomp program, written here
//! because the pure-Rust generator (`seccompiler`) kills a process on a foreign architecture
//! and does not see x32 system calls, and `libseccomp` is a C library the static builds cannot
//! link. The program handles the native ABI, x32 (its numbers with bit 30 set, on x86_64) and
//! the compat one (i386 on x86_64, arm on aarch64); an architecture it does not know passes.
//! Installed after `no_new_privs` or with `CAP_SYS_ADMIN`, both of which a contained command
//! has; no allocation (this runs in the sandbox's init).

use std::os::fd::{FromRawFd, OwnedFd};

use nix::errno::Errno;

use super::bind_proxy::NOTIFY_BIND;
use super::seccomp_bpf::{argument, install, jump, statement, ARCH, ARCHES, BPF_AND_K, BPF_JEQ_K, BPF_JGE_K, BPF_JGT_K, BPF_LD_W_ABS, BPF_RET_K, NR};

/// A system call's number in one ABI, for each call the filter looks at.
#[derive(Clone, Copy)]
struct Numbers {
    mount: u32,
    syslog: u32,
    fspick: u32,
    swapon: u32,
    swapoff: u32,
    bpf: u32,
}

const NATIVE: Numbers = Numbers {
    mount: libc::SYS_mount as u32,
    syslog: libc::SYS_syslog as u32,
    fspick: libc::SYS_fspick as u32,
    swapon: libc::SYS_swapon as u32,
    swapoff: libc::SYS_swapoff as u32,
    bpf: libc::SYS_bpf as u32,
};

/// i386's numbers (arch/x86/entry/syscalls/syscall_32.tbl) and arm's (arch/arm/tools/syscall.tbl).
#[cfg(target_arch = "x86_64")]
const COMPAT: Numbers = Numbers { mount: 21, syslog: 103, fspick: 433, swapon: 87, swapoff: 115, bpf: 357 };
#[cfg(target_arch = "aarch64")]
const COMPAT: Numbers = Numbers { mount: 21, syslog: 103, fspick: 433, swapon: 87, swapoff: 115, bpf: 386 };
#[cfg(target_arch = "riscv64")]
const COMPAT: Numbers = NATIVE;

const ALLOW: u32 = libc::SECCOMP_RET_ALLOW;
const REFUSE: u32 = libc::SECCOMP_RET_ERRNO | libc::EPERM as u32;
const MS_REMOUNT: u32 = libc::MS_REMOUNT as u32;
const MS_BIND: u32 = libc::MS_BIND as u32;

const BLOCK: usize = 17;

/// The checks for one ABI; every jump stays inside the block, which ends in its own returns.
const fn block(numbers: Numbers, ignored_bits: u32) -> [libc::sock_filter; BLOCK] {
    [
        /* 0 */ statement(BPF_LD_W_ABS, NR),
        /* 1 */ statement(BPF_AND_K, !ignored_bits),
        /* 2 */ jump(BPF_JEQ_K, numbers.mount, 6, 0), // -> 9
        /* 3 */ jump(BPF_JEQ_K, numbers.syslog, 8, 0), // -> 12
        /* 4 */ jump(BPF_JEQ_K, numbers.fspick, 11, 0), // -> 16
        /* 5 */ jump(BPF_JEQ_K, numbers.swapon, 10, 0),
        /* 6 */ jump(BPF_JEQ_K, numbers.swapoff, 9, 0),
        /* 7 */ jump(BPF_JEQ_K, numbers.bpf, 8, 0),
        /* 8 */ statement(BPF_RET_K, ALLOW),
        // mount(2): a remount that is not a bind remount reconfigures the superblock.
        /* 9 */ statement(BPF_LD_W_ABS, argument(3)),
        /* 10 */ statement(BPF_AND_K, MS_REMOUNT | MS_BIND),
        /* 11 */ jump(BPF_JEQ_K, MS_REMOUNT, 4, 3), // -> 16, -> 15
        // syslog(2): SYSLOG_ACTION_READ_CLEAR (4) to SYSLOG_ACTION_CONSOLE_LEVEL (8).
        /* 12 */ statement(BPF_LD_W_ABS, argument(0)),
        /* 13 */ jump(BPF_JGE_K, 4, 0, 1), // -> 14, -> 15
        /* 14 */ jump(BPF_JGT_K, 8, 0, 1), // -> 15, -> 16
        /* 15 */ statement(BPF_RET_K, ALLOW),
        /* 16 */ statement(BPF_RET_K, REFUSE),
    ]
}

const LENGTH: usize = 3 + 2 * BLOCK + 1;

const fn program() -> [libc::sock_filter; LENGTH] {
    let (native_arch, compat_arch, ignored_bits) = ARCHES;
    let mut program = [statement(BPF_RET_K, ALLOW); LENGTH];
    program[0] = statement(BPF_LD_W_ABS, ARCH);
    program[1] = jump(BPF_JEQ_K, native_arch, 1, 0); // -> 3
    program[2] = jump(BPF_JEQ_K, compat_arch, BLOCK as u8, 2 * BLOCK as u8); // -> compat, -> the last ALLOW
    let (native, compat) = (block(NATIVE, ignored_bits), block(COMPAT, 0));
    let mut i = 0;
    while i < BLOCK {
        program[3 + i] = native[i];
        program[3 + BLOCK + i] = compat[i];
        i += 1;
    }
    program
}

const HOST_WIDE: [libc::sock_filter; LENGTH] = program();

static PROGRAM: [libc::sock_filter; LENGTH] = HOST_WIDE;

const NOTIFYING_LENGTH: usize = NOTIFY_BIND.len() + LENGTH;

/// The bind notifier's instructions (`super::bind_proxy`), then this filter's: one program.
static NOTIFYING_PROGRAM: [libc::sock_filter; NOTIFYING_LENGTH] = {
    let mut program = [statement(BPF_RET_K, ALLOW); NOTIFYING_LENGTH];
    let mut i = 0;
    while i < NOTIFYING_LENGTH {
        program[i] = if i < NOTIFY_BIND.len() { NOTIFY_BIND[i] } else { HOST_WIDE[i - NOTIFY_BIND.len()] };
        i += 1;
    }
    program
};

/// Installs the filter for this process and every process it starts. No allocation.
pub fn refuse_host_wide_operations() -> Result<(), Errno> {
    install(&PROGRAM, 0).map(drop)
}

/// Installs the filter with the bind notifier of `super::bind_proxy` in front, as one program
/// (the kernel compiles each program it installs, which costs a contained run's start more
/// than running it does), and returns the notifier's listener, on which `answer_bind`
/// answers; the kernel opens it close-on-exec. Where a filter this thread inherited has a
/// listener already (`EBUSY`: a nested run, whose outer init answers), installs the filter
/// alone and returns `None`. No allocation.
pub fn refuse_host_wide_operations_and_notify_binds() -> Result<Option<OwnedFd>, Errno> {
    match install(&NOTIFYING_PROGRAM, libc::SECCOMP_FILTER_FLAG_NEW_LISTENER) {
        // SAFETY: with NEW_LISTENER, success returns a new descriptor that we now own.
        Ok(listener) => Ok(Some(unsafe { OwnedFd::from_raw_fd(listener as libc::c_int) })),
        Err(Errno::EBUSY) => refuse_host_wide_operations().map(|()| None),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each refused call, as the kernel answers it after the filter is installed (in a forked
    /// child, which makes syscalls only), beside the same call with arguments the filter lets
    /// through: the kernel's own error then shows the call reached it.
    #[test]
    fn host_wide_operations_are_refused_and_the_rest_pass() {
        // SAFETY: the check makes system calls only, on static data.
        assert!(crate::sys::passed(unsafe { crate::sys::in_forked_child(|| refuses_host_wide_operations(false)) }));
    }

    /// The same with the bind notifier in front, in one program: its listener leaves every
    /// call but `bind` to the filter behind it.
    #[test]
    fn host_wide_operations_are_refused_behind_the_bind_notifier() {
        // SAFETY: as above.
        assert!(crate::sys::passed(unsafe { crate::sys::in_forked_child(|| refuses_host_wide_operations(true)) }));
    }

    /// Installs the filter (with the bind notifier: `notify_binds`) and checks each call.
    fn refuses_host_wide_operations(notify_binds: bool) -> bool {
        // SAFETY: prctl with integer arguments only.
        let no_new_privs = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == 0;
        // The listener stays open through the checks.
        let (installed, _listener) = match notify_binds {
            true => match refuse_host_wide_operations_and_notify_binds() {
                Ok(Some(listener)) => (true, Some(listener)),
                _ => (false, None),
            },
            false => (refuse_host_wide_operations().is_ok(), None),
        };
        let mut ok = no_new_privs && installed;
        let errno = |ret: libc::c_long| if ret == -1 { Errno::last() as i32 } else { 0 };
        let missing = c"/nonexistent-sandbox-path".as_ptr();
        let x32_mount = libc::SYS_mount | ARCHES.2 as libc::c_long;
        // SAFETY: each call passes a static C string, null pointers and integers.
        let results = unsafe {
            [
                // A superblock remount, plain and in x32's numbering; a bind remount.
                errno(libc::syscall(libc::SYS_mount, 0, missing, 0, libc::MS_REMOUNT | libc::MS_RDONLY, 0)),
                errno(libc::syscall(x32_mount, 0, missing, 0, libc::MS_REMOUNT, 0)),
                errno(libc::syscall(libc::SYS_mount, 0, missing, 0, libc::MS_REMOUNT | libc::MS_BIND | libc::MS_RDONLY, 0)),
                errno(libc::syscall(libc::SYS_fspick, libc::AT_FDCWD, missing, 0)),
                errno(libc::syscall(libc::SYS_swapoff, missing)),
                errno(libc::syscall(libc::SYS_swapon, missing, 0)),
                errno(libc::syscall(libc::SYS_bpf, 0, 0, 0)),
                // SYSLOG_ACTION_CLEAR, and SYSLOG_ACTION_SIZE_BUFFER (reading).
                errno(libc::syscall(libc::SYS_syslog, 5, 0, 0)),
                errno(libc::syscall(libc::SYS_syslog, 10, 0, 0)),
            ]
        };
        let expected_refused = [true, true, false, true, true, true, true, true, false];
        for (errno, refused) in results.into_iter().zip(expected_refused) {
            // A call let through fails (missing path, null arguments) or succeeds (reading
            // the log's size), with EPERM only from the kernel itself, for a process
            // without the capability.
            ok &= if refused { errno == libc::EPERM } else { errno != libc::EPERM || !nix::unistd::geteuid().is_root() };
        }
        ok
    }
}

#[cfg(all(test, target_arch = "x86_64"))]
mod compat_tests {
    use super::*;

    /// An i386 system call from this 64-bit process (`int 0x80`): the kernel sees it as
    /// `AUDIT_ARCH_I386`, with i386's numbers. Returns the raw result (`-errno` on failure).
    fn i386_syscall(number: u32, arguments: [u32; 5]) -> i32 {
        let result: i32;
        // SAFETY: `int 0x80` enters the kernel with the registers below; only null pointers
        // and integers are passed, and rbx, which the compiler reserves, is saved around it.
        unsafe {
            std::arch::asm!(
                "xchg rbx, {ebx:r}",
                "int 0x80",
                "xchg rbx, {ebx:r}",
                ebx = inout(reg) arguments[0] as u64 => _,
                inlateout("eax") number => result,
                in("ecx") arguments[1],
                in("edx") arguments[2],
                in("esi") arguments[3],
                in("edi") arguments[4],
            );
        }
        result
    }

    /// The i386 block of the filter, where the kernel runs i386 programs: a superblock remount,
    /// swapon and bpf refused, a bind remount let through.
    #[test]
    fn i386_calls_are_filtered_too() {
        // A kernel without i386 emulation (`ia32_emulation=0`) faults on `int 0x80`: there is
        // no i386 call to filter there.
        // SAFETY: the check makes one system call.
        let probe = unsafe { crate::sys::in_forked_child(|| i386_syscall(20, [0; 5]) > 0) }; // getpid
        if let nix::sys::wait::WaitStatus::Signaled(_, signal, _) = probe {
            eprintln!("this kernel runs no i386 code ({signal} on int 0x80): nothing to filter");
            return;
        }
        let check = || {
            // SAFETY: prctl with integer arguments only.
            let mut ok = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == 0;
            ok &= refuse_host_wide_operations().is_ok();
            let eperm = -libc::EPERM;
            ok &= i386_syscall(COMPAT.mount, [0, 0, 0, MS_REMOUNT, 0]) == eperm;
            ok &= i386_syscall(COMPAT.mount, [0, 0, 0, MS_REMOUNT | MS_BIND, 0]) != eperm;
            ok &= i386_syscall(COMPAT.swapon, [0, 0, 0, 0, 0]) == eperm;
            ok &= i386_syscall(COMPAT.bpf, [0, 0, 0, 0, 0]) == eperm;
            ok && i386_syscall(COMPAT.syslog, [5, 0, 0, 0, 0]) == eperm
        };
        // SAFETY: the check makes system calls only.
        assert!(crate::sys::passed(unsafe { crate::sys::in_forked_child(check) }));
    }
}
