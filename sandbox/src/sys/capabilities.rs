//! The capabilities a contained run's command gives up as root: those whose reach is the
//! kernel itself, not the run (loading a module, raw I/O ports and `/dev/mem`, rebooting,
//! setting the clock, the kernel log, BPF and perf on every process). What tests do as root in
//! their own sandbox keeps working: mounts, network namespaces, `chown`, binding port 80.
//!
//! They leave the bounding set, which caps what any later `execve` grants, and the process's
//! own sets, which a test body (forked, never exec'd) runs with. A dropped bounding capability
//! cannot come back, not even through a new user namespace (its capabilities hold inside it
//! only). Raw syscalls: this runs in the sandbox's init, which must not allocate.

use nix::errno::Errno;

/// `CAP_LINUX_IMMUTABLE`, `CAP_SYS_MODULE`, `CAP_SYS_RAWIO`, `CAP_SYS_PACCT`, `CAP_SYS_BOOT`,
/// `CAP_SYS_TIME`, `CAP_SYS_TTY_CONFIG`, `CAP_AUDIT_CONTROL`, `CAP_MAC_OVERRIDE`,
/// `CAP_MAC_ADMIN`, `CAP_SYSLOG`, `CAP_WAKE_ALARM`, `CAP_BLOCK_SUSPEND`, `CAP_PERFMON`, `CAP_BPF`
/// (linux/capability.h).
pub const KERNEL_CAPABILITIES: [u32; 15] = [9, 16, 17, 20, 22, 25, 26, 30, 32, 33, 34, 35, 36, 38, 39];

/// `_LINUX_CAPABILITY_VERSION_3`: two 32-bit words per set.
const VERSION_3: u32 = 0x2008_0522;

#[repr(C)]
struct Header {
    version: u32,
    pid: libc::c_int,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct Data {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

/// Drops `capabilities` from this process's bounding, effective, permitted and inheritable
/// sets. One the kernel does not know (`CAP_BPF` before Linux 5.8) is skipped, and so is one
/// the bounding set lacks already where this process may not change it (a container without
/// `CAP_SETPCAP`). No allocation.
pub fn drop_capabilities(capabilities: &[u32]) -> Result<(), Errno> {
    for &capability in capabilities {
        let capability = capability as libc::c_ulong;
        // SAFETY: prctl with integer arguments only.
        match Errno::result(unsafe { libc::prctl(libc::PR_CAPBSET_DROP, capability, 0, 0, 0) }) {
            Ok(_) | Err(Errno::EINVAL) => {}
            // SAFETY: as above.
            Err(Errno::EPERM) if unsafe { libc::prctl(libc::PR_CAPBSET_READ, capability, 0, 0, 0) } == 0 => {}
            Err(errno) => return Err(errno),
        }
    }
    let mut header = Header { version: VERSION_3, pid: 0 };
    let mut data = [Data::default(); 2];
    // SAFETY: a version-3 header and room for its two data words, valid for the call.
    Errno::result(unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) })?;
    for &capability in capabilities {
        let (word, bit) = ((capability / 32) as usize, 1u32 << (capability % 32));
        for set in [&mut data[word].effective, &mut data[word].permitted, &mut data[word].inheritable] {
            *set &= !bit;
        }
    }
    // SAFETY: as above; the kernel only reads them.
    Errno::result(unsafe { libc::syscall(libc::SYS_capset, &mut header, data.as_ptr()) }).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In a child, so that the test process keeps its own: the kernel's view afterwards (the
    /// child of a threaded harness makes syscalls only).
    #[test]
    fn dropped_capabilities_are_gone_from_every_set() {
        let check = || {
            let dropped = [16u32, 22];
            if !nix::unistd::geteuid().is_root() {
                // Without CAP_SETPCAP the bounding set cannot shrink: the error says so.
                return drop_capabilities(&dropped) == Err(Errno::EPERM);
            }
            let mut ok = drop_capabilities(&dropped).is_ok();
            for capability in dropped {
                // SAFETY: prctl with integer arguments only.
                ok &= unsafe { libc::prctl(libc::PR_CAPBSET_READ, capability as libc::c_ulong, 0, 0, 0) } == 0;
            }
            let mut header = Header { version: VERSION_3, pid: 0 };
            let mut data = [Data::default(); 2];
            // SAFETY: as in drop_capabilities.
            ok &= unsafe { libc::syscall(libc::SYS_capget, &mut header, data.as_mut_ptr()) } == 0;
            let bits = (1u32 << 16) | (1 << 22);
            ok && (data[0].effective | data[0].permitted | data[0].inheritable) & bits == 0
        };
        // SAFETY: the check makes system calls only, on stack data.
        assert!(crate::sys::passed(unsafe { crate::sys::in_forked_child(check) }));
    }
}
