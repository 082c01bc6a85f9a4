//! What the two hand-written seccomp programs (`host_wide`, `bind_proxy`) share: the classic-BPF
//! opcodes, the layout of `struct seccomp_data`, the architectures and their installation. See
//! `host_wide` for why they are written here rather than generated.

use nix::errno::Errno;

pub(super) const BPF_LD_W_ABS: u16 = (libc::BPF_LD | libc::BPF_W | libc::BPF_ABS) as u16;
pub(super) const BPF_AND_K: u16 = (libc::BPF_ALU | libc::BPF_AND | libc::BPF_K) as u16;
pub(super) const BPF_JEQ_K: u16 = (libc::BPF_JMP | libc::BPF_JEQ | libc::BPF_K) as u16;
pub(super) const BPF_JGE_K: u16 = (libc::BPF_JMP | libc::BPF_JGE | libc::BPF_K) as u16;
pub(super) const BPF_JGT_K: u16 = (libc::BPF_JMP | libc::BPF_JGT | libc::BPF_K) as u16;
pub(super) const BPF_RET_K: u16 = (libc::BPF_RET | libc::BPF_K) as u16;

pub(super) const fn statement(code: u16, k: u32) -> libc::sock_filter {
    libc::sock_filter { code, jt: 0, jf: 0, k }
}

pub(super) const fn jump(code: u16, k: u32, jt: u8, jf: u8) -> libc::sock_filter {
    libc::sock_filter { code, jt, jf, k }
}

/// `struct seccomp_data`: the number, the architecture, and the low word of argument `n`
/// (little-endian).
pub(super) const NR: u32 = 0;
pub(super) const ARCH: u32 = 4;
pub(super) const fn argument(n: u32) -> u32 {
    16 + 8 * n
}

/// `AUDIT_ARCH_*` of the native ABI, its compat ABI (0: none), and the bits of the system call
/// number that say which native ABI (x32's bit 30) and are ignored.
#[cfg(target_arch = "x86_64")]
pub(super) const ARCHES: (u32, u32, u32) = (0xC000_003E, 0x4000_0003, 0x4000_0000);
#[cfg(target_arch = "aarch64")]
pub(super) const ARCHES: (u32, u32, u32) = (0xC000_00B7, 0x4000_0028, 0);
#[cfg(target_arch = "riscv64")]
pub(super) const ARCHES: (u32, u32, u32) = (0xC000_00F3, 0, 0);

/// `seccomp(SECCOMP_SET_MODE_FILTER, flags, program)` for the calling thread: what the kernel
/// returns (a listener's descriptor with `SECCOMP_FILTER_FLAG_NEW_LISTENER`, else 0). The caller
/// has `CAP_SYS_ADMIN` in its user namespace or `no_new_privs`. No allocation.
pub(super) fn install(program: &'static [libc::sock_filter], flags: libc::c_ulong) -> Result<libc::c_long, Errno> {
    let fprog = libc::sock_fprog { len: program.len() as u16, filter: program.as_ptr().cast_mut() };
    // SAFETY: a valid program that the kernel copies during the call; it only reads it.
    Errno::result(unsafe { libc::syscall(libc::SYS_seccomp, libc::SECCOMP_SET_MODE_FILTER, flags, &fprog as *const libc::sock_fprog) })
}
