//! Binding privileged ports for a command that runs as root in a user namespace.
//!
//! Root in a user namespace holds its capabilities over that namespace only. The host's network
//! namespace belongs to the initial one, so there `bind(2)` to a port below 1024 fails with
//! `EACCES`: the command lacks `CAP_NET_BIND_SERVICE` over it, and a test that serves on port 80
//! fails where it passes as real root.
//!
//! The fix: a seccomp filter ([`NOTIFY_BIND`], installed with the host-wide one as a single
//! program by `refuse_host_wide_operations_and_notify_binds`) hands each `bind` of the command and
//! its descendants to a supervisor (`SECCOMP_RET_USER_NOTIF`), the sandbox's init, which stays
//! root in the initial user namespace. For each call, [`answer_bind`] reads the address from the
//! caller's memory; an `AF_INET` or `AF_INET6` address with a port from 1 to 1023 it binds
//! itself, on the caller's own socket (taken with `pidfd_getfd`), and hands back the result.
//! Every other call, and every call it cannot read or whose socket it cannot take, it sends on
//! to the kernel (`SECCOMP_USER_NOTIF_FLAG_CONTINUE`), which does the bind with the caller's own
//! rights. (Ports 1 to 1023 are the kernel's default `net.ipv4.ip_unprivileged_port_start`; a
//! namespace that moved it is answered as if it had not.)
//!
//! The caller's memory and descriptors can change while the supervisor works. A call sent on
//! to the kernel is read and checked again by the kernel. A proxied bind uses the supervisor's
//! own copy of the address, so nothing is granted beyond the privileged port it read, and the
//! supervisor checks that the caller is still in the call (`SECCOMP_IOCTL_NOTIF_ID_VALID`) after
//! reading its memory and after opening its pidfd, so that a recycled process ID cannot point it
//! at another process. Another thread that swaps the descriptor between the notification and
//! `pidfd_getfd` only gets another socket of the same process bound.
//!
//! The filter looks at the native ABI only, with x32's numbers (bit 30 set) on x86_64, which a
//! kernel without x32 would refuse with `ENOSYS`: there, such a bind of a privileged port is
//! done all the same. A compat-ABI bind (i386's `bind` or `socketcall` on x86_64, arm's on
//! aarch64) passes the filter and gets the kernel's answer: a 32-bit program still cannot bind
//! a privileged port.
//!
//! Nesting: the kernel gives a thread one listener at most; a filter with a listener cannot be
//! added where an inherited one has one (`EBUSY`). In a run nested in another, the inner run's
//! processes already carry the outer run's filter, whose init answers their binds, the inner
//! init's included: the host-wide filter is then installed alone, without a listener.
//!
//! No allocation: the filter is installed in a child that shares memory with the launcher, and
//! the init answers. Every system call of [`answer_bind`] goes through rustix, which returns the
//! error without touching `errno`, shared with the launcher's thread (see [`super::errno_free`]);
//! the caller's memory is read through `/proc/<pid>/mem` (rustix has no `process_vm_readv`).
//! Only `seccomp`, at installation, goes through libc and sets `errno` (read at once).

use std::ffi::CStr;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};

use nix::errno::Errno;

use super::errno_free::errno;
use super::seccomp_bpf::{jump, statement, ARCH, ARCHES, BPF_AND_K, BPF_JEQ_K, BPF_LD_W_ABS, BPF_RET_K, NR};
use rustix::event::{PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};
use rustix::ioctl::{Opcode, Setter, Updater};
use rustix::net::addr::{SocketAddrArg, SocketAddrLen, SocketAddrOpaque, SocketAddrStorage};
use rustix::process::{Pid, PidfdFlags, PidfdGetfdFlags};

const BIND: u32 = libc::SYS_bind as u32;

/// The native architecture and the number bits that say which native ABI (x32's).
const NATIVE: (u32, u32) = (ARCHES.0, ARCHES.2);

/// The native ABI's `bind` goes to the listener; every other call goes on to the instructions
/// placed after these (the host-wide filter's: see `super::host_wide`, which installs both as
/// one program).
pub(super) const NOTIFY_BIND: [libc::sock_filter; 6] = [
    /* 0 */ statement(BPF_LD_W_ABS, ARCH),
    /* 1 */ jump(BPF_JEQ_K, NATIVE.0, 0, 4), // -> 2, -> 6
    /* 2 */ statement(BPF_LD_W_ABS, NR),
    /* 3 */ statement(BPF_AND_K, !NATIVE.1),
    /* 4 */ jump(BPF_JEQ_K, BIND, 0, 1), // -> 5, -> 6
    /* 5 */ statement(BPF_RET_K, libc::SECCOMP_RET_USER_NOTIF),
    // 6: what follows
];

/// How [`answer`] answered one notification.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// The supervisor did the bind; the caller got this result.
    Proxied(Result<(), Errno>),
    /// Sent on to the kernel.
    Continued,
    /// The caller left the call (killed) before it was answered.
    Gone,
}

/// Takes one notification from `listener` and answers it: a privileged port bound on the
/// caller's behalf, anything else sent on to the kernel (see the module's documentation). Waits
/// for a notification: poll `listener` for input first. A caller that died meanwhile is no
/// error. `ESRCH`: no process uses the filter any more (the listener polls as hung up, even
/// before the last one is reaped, and would never notify again): close it. `EINTR`: a signal
/// came before any notification. No allocation.
pub fn answer_bind(listener: BorrowedFd<'_>) -> Result<(), Errno> {
    answer(listener).map(drop)
}

const RECV: Opcode = libc::SECCOMP_IOCTL_NOTIF_RECV as Opcode;
const SEND: Opcode = libc::SECCOMP_IOCTL_NOTIF_SEND as Opcode;
const ID_VALID: Opcode = libc::SECCOMP_IOCTL_NOTIF_ID_VALID as Opcode;

fn answer(listener: BorrowedFd<'_>) -> Result<Answer, Errno> {
    // SAFETY: plain data; the kernel wants it zeroed before RECV.
    let mut request: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: RECV reads and writes a `struct seccomp_notif`, which `request` is.
    match unsafe { rustix::ioctl::ioctl(listener, Updater::<RECV, libc::seccomp_notif>::new(&mut request)) } {
        Ok(()) => {}
        Err(err) if err == rustix::io::Errno::NOENT && hung_up(listener) => return Err(Errno::ESRCH),
        Err(err) if err == rustix::io::Errno::NOENT => return Ok(Answer::Gone),
        Err(err) => return Err(errno(err)),
    }
    let answer = decide(listener, &request);
    let mut response = libc::seccomp_notif_resp { id: request.id, val: 0, error: 0, flags: 0 };
    match answer {
        Answer::Gone => return Ok(Answer::Gone),
        Answer::Continued => response.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
        Answer::Proxied(Ok(())) => {}
        Answer::Proxied(Err(err)) => response.error = -(err as i32),
    }
    loop {
        // SAFETY: SEND reads (and may write) a `struct seccomp_notif_resp`, which `response` is.
        match unsafe { rustix::ioctl::ioctl(listener, Updater::<SEND, libc::seccomp_notif_resp>::new(&mut response)) } {
            Ok(()) => return Ok(answer),
            Err(err) if err == rustix::io::Errno::INTR => continue,
            Err(err) if err == rustix::io::Errno::NOENT => return Ok(Answer::Gone),
            Err(err) => return Err(errno(err)),
        }
    }
}

/// Whether no process uses the filter any more: the listener polls as hung up, and RECV fails
/// at once instead of waiting.
fn hung_up(listener: BorrowedFd<'_>) -> bool {
    let mut watched = [PollFd::from_borrowed_fd(listener, PollFlags::IN)];
    let now = rustix::event::Timespec { tv_sec: 0, tv_nsec: 0 };
    let ready = rustix::event::poll(&mut watched, Some(&now));
    let revents = watched[0].revents();
    ready == Ok(1) && revents.contains(PollFlags::HUP) && !revents.contains(PollFlags::IN)
}

/// Whether the caller of notification `id` is still in its call: then its process ID, read
/// before, was still its own. (A kernel older than 5.7 knows the request by another number and
/// says `EINVAL`; only `ENOENT` means gone.)
fn still_waiting(listener: BorrowedFd<'_>, id: u64) -> bool {
    // SAFETY: ID_VALID reads a u64, which the setter passes by pointer.
    let valid = unsafe { rustix::ioctl::ioctl(listener, Setter::<ID_VALID, u64>::new(id)) };
    valid != Err(rustix::io::Errno::NOENT)
}

/// The supervisor's copy of the caller's address: `len` bytes of `storage`.
struct CopiedAddress {
    storage: MaybeUninit<SocketAddrStorage>,
    len: SocketAddrLen,
}

// SAFETY: `f` gets a pointer to `len` bytes of `storage` (zeroed, then read from the caller's
// memory: see `decide`); the kernel checks the address itself.
unsafe impl SocketAddrArg for CopiedAddress {
    unsafe fn with_sockaddr<R>(&self, f: impl FnOnce(*const SocketAddrOpaque, SocketAddrLen) -> R) -> R {
        f(self.storage.as_ptr().cast(), self.len)
    }
}

fn decide(listener: BorrowedFd<'_>, request: &libc::seccomp_notif) -> Answer {
    let data = &request.data;
    if data.arch != NATIVE.0 || data.nr as u32 & !NATIVE.1 != BIND {
        return Answer::Continued;
    }
    // bind(int fd, struct sockaddr *addr, int addrlen): the kernel reads the low 32 bits.
    let (fd, remote, len) = (data.args[0] as i32, data.args[1], data.args[2] as u32 as i32);
    // A family and a port, within what the kernel accepts.
    if !(4..=std::mem::size_of::<SocketAddrStorage>() as i32).contains(&len) {
        return Answer::Continued;
    }
    let mut address = CopiedAddress { storage: MaybeUninit::zeroed(), len: 0 };
    // SAFETY: the bytes of `storage`, which any value fits (MaybeUninit<u8>).
    let bytes: &mut [MaybeUninit<u8>] = unsafe {
        std::slice::from_raw_parts_mut(address.storage.as_mut_ptr().cast(), std::mem::size_of::<SocketAddrStorage>())
    };
    let Some(bytes) = bytes.get_mut(..len as usize) else {
        return Answer::Continued;
    };
    if !read_memory(request.pid as libc::pid_t, remote, bytes) {
        return Answer::Continued;
    }
    address.len = len as SocketAddrLen;
    if !still_waiting(listener, request.id) {
        return Answer::Gone;
    }
    // SAFETY: the first `len` (at least 4) bytes were written just above.
    let head: [u8; 4] = unsafe { address.storage.as_ptr().cast::<[u8; 4]>().read() };
    let family = libc::c_int::from(u16::from_ne_bytes([head[0], head[1]]));
    // sin_port and sin6_port, in network order, both follow the family.
    let port = u16::from_be_bytes([head[2], head[3]]);
    if !matches!(family, libc::AF_INET | libc::AF_INET6) || !(1..=1023).contains(&port) {
        return Answer::Continued;
    }
    let Some(pidfd) = pidfd_of_thread(request.pid as libc::pid_t) else {
        return Answer::Continued;
    };
    if !still_waiting(listener, request.id) {
        return Answer::Gone;
    }
    // A new descriptor, close-on-exec.
    let Ok(socket) = rustix::process::pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty()) else {
        return Answer::Continued;
    };
    Answer::Proxied(rustix::net::bind(&socket, &address).map_err(errno))
}

/// `/proc/<tid>/<file>` (`file` starts with `/` and ends with a NUL) in `path`. The supervisor's
/// `/proc` is of its PID namespace, in which the kernel numbers the notifications.
fn proc_path<'a>(tid: libc::pid_t, file: &[u8], path: &'a mut [u8; 32]) -> Option<&'a CStr> {
    let mut len = 0;
    for part in [&b"/proc/"[..], decimal(tid.try_into().ok()?, &mut [0; 10]), file] {
        path.get_mut(len..len + part.len())?.copy_from_slice(part);
        len += part.len();
    }
    CStr::from_bytes_with_nul(&path[..len]).ok()
}

/// `/proc/<tid>/<file>` opened read-only, close-on-exec.
fn open_proc(tid: libc::pid_t, file: &[u8]) -> Option<OwnedFd> {
    let mut path = [0u8; 32];
    let path = proc_path(tid, file, &mut path)?;
    rustix::fs::openat(rustix::fs::CWD, path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty()).ok()
}

/// Whether all of `bytes` were read from `remote` in the memory of thread `tid`, through its
/// `/proc/<tid>/mem` (`PTRACE_MODE_ATTACH`, as `process_vm_readv`). That also reads a page mapped
/// without read permission, where the kernel's own copy fails with `EFAULT`: such a bind of a
/// privileged port is done all the same (the address is the caller's own memory).
fn read_memory(tid: libc::pid_t, remote: u64, bytes: &mut [MaybeUninit<u8>]) -> bool {
    let Some(memory) = open_proc(tid, b"/mem\0") else {
        return false;
    };
    let wanted = bytes.len();
    matches!(rustix::io::pread(&memory, bytes, remote), Ok((read, _)) if read.len() == wanted)
}

/// `pidfd_open(2)` with `flags`, its error dropped.
fn pidfd_open(pid: libc::pid_t, flags: PidfdFlags) -> Option<OwnedFd> {
    let pid = Pid::from_raw(pid.max(0))?;
    rustix::process::pidfd_open(pid, flags).ok()
}

/// `PIDFD_THREAD` (Linux 6.9): a pidfd for one thread. rustix names no such flag; the kernel
/// defines it as `O_EXCL`.
const PIDFD_THREAD: PidfdFlags = PidfdFlags::from_bits_retain(OFlags::EXCL.bits());

/// A pidfd for the thread `tid` (which `pidfd_getfd` reads the descriptor table of), or for its
/// thread group where the kernel gives none for a thread that does not lead its group.
fn pidfd_of_thread(tid: libc::pid_t) -> Option<OwnedFd> {
    pidfd_open(tid, PidfdFlags::empty())
        .or_else(|| pidfd_open(tid, PIDFD_THREAD))
        .or_else(|| pidfd_open(thread_group_of(tid)?, PidfdFlags::empty()))
}

/// The `Tgid:` of `/proc/<tid>/status`.
fn thread_group_of(tid: libc::pid_t) -> Option<libc::pid_t> {
    let file = open_proc(tid, b"/status\0")?;
    // Tgid is the fourth line, after a name of at most 64 bytes escaped.
    let mut status = [0u8; 512];
    let read = rustix::io::read(&file, &mut status).ok()?;
    parse_thread_group(&status[..read])
}

/// `n` in decimal, written at the end of `digits`.
fn decimal(mut n: u32, digits: &mut [u8; 10]) -> &[u8] {
    let mut start = digits.len();
    loop {
        start -= 1;
        digits[start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &digits[start..];
        }
    }
}

/// The number on the `Tgid:` line of a `status` file.
fn parse_thread_group(status: &[u8]) -> Option<libc::pid_t> {
    const KEY: &[u8] = b"\nTgid:";
    let start = status.windows(KEY.len()).position(|window| window == KEY)? + KEY.len();
    let rest = &status[start..];
    let rest = &rest[rest.iter().position(|b| !matches!(b, b' ' | b'\t'))?..];
    let digits = rest.iter().position(|b| !b.is_ascii_digit()).unwrap_or(rest.len());
    if digits == 0 {
        return None;
    }
    rest[..digits].iter().try_fold(0 as libc::pid_t, |n, d| n.checked_mul(10)?.checked_add(libc::pid_t::from(d - b'0')))
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;
    use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4, SocketAddrV6};
    use std::os::fd::{AsFd, AsRawFd, RawFd};
    use std::os::unix::ffi::OsStrExt;
    use std::os::unix::fs::FileTypeExt;
    use std::sync::atomic::{AtomicI32, Ordering};
    use std::time::Duration;

    use rustix::net::{AddressFamily, SocketAddrUnix, SocketType};

    use super::*;

    fn gettid() -> libc::pid_t {
        // SAFETY: gettid cannot fail.
        unsafe { libc::gettid() }
    }

    #[test]
    fn the_thread_group_is_read_from_status() {
        let status = b"Name:\tTgid: 7\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nNgid:\t0\nPid:\t4243\n";
        assert_eq!(parse_thread_group(status), Some(4242));
        assert_eq!(parse_thread_group(b"Name:\tx\nTgid:\t\n"), None);
        assert_eq!(parse_thread_group(b"Name:\tx\nTgid:\t99999999999\n"), None);
        assert_eq!(decimal(0, &mut [0; 10]), b"0");
        assert_eq!(decimal(u32::MAX, &mut [0; 10]), b"4294967295");
        let process = std::process::id() as libc::pid_t;
        let (tid, group) = std::thread::spawn(|| (gettid(), thread_group_of(gettid()))).join().unwrap();
        assert_ne!(tid, process);
        assert_eq!(group, Some(process));
    }

    /// A thread that does not lead its group gets a pidfd, and `pidfd_getfd` on it takes a
    /// descriptor of this process.
    #[test]
    fn a_thread_gets_a_pidfd() {
        let probe =
            rustix::fs::open(c"/", rustix::fs::OFlags::PATH | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty())
                .unwrap();
        let target = probe.as_raw_fd();
        let taken = std::thread::spawn(move || {
            let pidfd = pidfd_of_thread(gettid())?;
            rustix::process::pidfd_getfd(&pidfd, target, PidfdGetfdFlags::empty()).ok()
        });
        let taken = taken.join().unwrap().expect("no pidfd for a thread, or pidfd_getfd failed");
        let (a, b) = (rustix::fs::fstat(&probe).unwrap(), rustix::fs::fstat(&taken).unwrap());
        assert_eq!((a.st_dev, a.st_ino), (b.st_dev, b.st_ino));
    }

    /// A second listener is refused where the thread already has one: a nested run, which
    /// gets the host-wide filter alone.
    #[test]
    fn a_nested_filter_gets_no_listener() {
        let check = || {
            // SAFETY: prctl with integer arguments only.
            let no_new_privs = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) } == 0;
            // The first listener stays open: closed, it would leave the filter without one.
            let first = crate::sys::refuse_host_wide_operations_and_notify_binds();
            let second = crate::sys::refuse_host_wide_operations_and_notify_binds();
            no_new_privs && matches!(first, Ok(Some(_))) && matches!(second, Ok(None))
        };
        // SAFETY: the check makes system calls only.
        assert!(crate::sys::passed(unsafe { crate::sys::in_forked_child(check) }));
    }

    /// A port from 600 to 999 that is free on 127.0.0.1 (and on ::1 if `v6`), and a socket bound
    /// to another one, which is then in use.
    fn privileged_ports(v6: bool) -> Option<(u16, (u16, OwnedFd))> {
        let mut busy = None;
        let start = std::process::id() % 400;
        for port in (0..400).map(|i| 600 + ((start + i) % 400) as u16) {
            let Ok(socket) = bound_v4(port) else { continue };
            if v6 && bound_v6(port).is_err() {
                continue;
            }
            match busy {
                None => busy = Some((port, socket)),
                Some(busy) => return Some((port, busy)),
            }
        }
        None
    }

    fn bound_v4(port: u16) -> rustix::io::Result<OwnedFd> {
        let socket = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None)?;
        rustix::net::bind(&socket, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))?;
        Ok(socket)
    }

    fn bound_v6(port: u16) -> rustix::io::Result<OwnedFd> {
        let socket = rustix::net::socket(AddressFamily::INET6, SocketType::STREAM, None)?;
        rustix::net::bind(&socket, &SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0))?;
        Ok(socket)
    }

    /// What the command saw, call by call: 0 for success, an error number, a port; -1 for a
    /// call skipped.
    type Outcomes = [i32; 14];
    const NAMES: [&str; 14] = [
        "unshare(CLONE_NEWUSER)",
        "bind 127.0.0.1:<port> without the filter (the control)",
        "refuse_host_wide_operations_and_notify_binds, send_fd",
        "bind 127.0.0.1:<port>",
        "getsockname's port after it",
        "bind 127.0.0.1:0",
        "whether the kernel gave it a port",
        "bind a unix socket's path",
        "bind an abstract unix address whose bytes read as port 80",
        "bind 127.0.0.1:<port in use>",
        "bind with an unreadable address",
        "bind [::1]:<port>",
        "bind 127.0.0.1:<port> with x32's number",
        "bind 127.0.0.1:<port> from another thread",
    ];

    fn outcome(result: rustix::io::Result<()>) -> i32 {
        result.err().map_or(0, |err| err.raw_os_error())
    }

    /// A new socket of `family` bound to `address`: the outcome, and the socket.
    fn bind_new(family: AddressFamily, address: &impl SocketAddrArg) -> (i32, Option<OwnedFd>) {
        match rustix::net::socket(family, SocketType::STREAM, None) {
            Ok(socket) => (outcome(rustix::net::bind(&socket, address)), Some(socket)),
            Err(err) => (1000 + err.raw_os_error(), None),
        }
    }

    fn bound_port(socket: Option<OwnedFd>) -> i32 {
        let address = socket.and_then(|socket| rustix::net::getsockname(socket).ok());
        address.and_then(|address| SocketAddrV4::try_from(address).ok()).map_or(-2, |address| i32::from(address.port()))
    }

    /// The contained command, in a forked child (system calls only): a new user namespace, the
    /// control, the filter (its listener sent on `to_supervisor`), the binds.
    fn command(port: u16, busy: u16, unix_path: &CStr, v6: bool, to_supervisor: RawFd) -> Outcomes {
        let mut outcomes = [-1; 14];
        // SAFETY: plain syscall; this child is single-threaded.
        outcomes[0] = Errno::result(unsafe { libc::unshare(libc::CLONE_NEWUSER) }).err().map_or(0, |e| e as i32);
        let privileged = SocketAddrV4::new(Ipv4Addr::LOCALHOST, port);
        outcomes[1] = bind_new(AddressFamily::INET, &privileged).0;
        outcomes[2] = match crate::sys::refuse_host_wide_operations_and_notify_binds() {
            Ok(Some(listener)) => crate::sys::send_fd(to_supervisor, listener.as_fd()).err().map_or(0, |e| e as i32),
            Ok(None) => -2,
            Err(err) => err as i32,
        };
        if outcomes[2] != 0 {
            return outcomes;
        }
        let (bound, socket) = bind_new(AddressFamily::INET, &privileged);
        (outcomes[3], outcomes[4]) = (bound, bound_port(socket));
        let (bound, socket) = bind_new(AddressFamily::INET, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
        (outcomes[5], outcomes[6]) = (bound, i32::from(bound_port(socket) > 0));
        outcomes[7] = match SocketAddrUnix::new(unix_path) {
            Ok(address) => bind_new(AddressFamily::UNIX, &address).0,
            Err(err) => 2000 + err.raw_os_error(),
        };
        // An abstract name starting with 'P': where an inet address has its port, 0 and 80.
        let mut name = [0u8; 32];
        name[..11].copy_from_slice(b"Pbind-proxy");
        let mut digits = [0; 10];
        // SAFETY: getpid cannot fail.
        let pid = decimal(unsafe { libc::getpid() } as u32, &mut digits);
        name[11..11 + pid.len()].copy_from_slice(pid);
        outcomes[8] = match SocketAddrUnix::new_abstract_name(&name[..11 + pid.len()]) {
            Ok(address) => bind_new(AddressFamily::UNIX, &address).0,
            Err(err) => 2000 + err.raw_os_error(),
        };
        outcomes[9] = bind_new(AddressFamily::INET, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, busy)).0;
        if let Ok(socket) = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None) {
            // SAFETY: the kernel finds no page at the address; no memory of ours is involved.
            let ret = unsafe { libc::bind(socket.as_raw_fd(), 8 as *const libc::sockaddr, 16) };
            outcomes[10] = if ret == 0 { 0 } else { Errno::last() as i32 };
        }
        if v6 {
            outcomes[11] = bind_new(AddressFamily::INET6, &SocketAddrV6::new(Ipv6Addr::LOCALHOST, port, 0, 0)).0;
        }
        #[cfg(target_arch = "x86_64")]
        if let Ok(socket) = rustix::net::socket(AddressFamily::INET, SocketType::STREAM, None) {
            let address = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr { s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be() },
                sin_zero: [0; 8],
            };
            let size = std::mem::size_of_val(&address);
            // SAFETY: x32's number for bind, with a valid address of `size` bytes.
            let ret = unsafe { libc::syscall(libc::SYS_bind | 0x4000_0000, socket.as_raw_fd(), &address, size) };
            outcomes[12] = if ret == 0 { 0 } else { Errno::last() as i32 };
        }
        outcomes[13] = bind_from_thread(port);
        outcomes
    }

    /// Binds 127.0.0.1:`port` from a new thread of this process (a raw clone: the forked child
    /// must not allocate), whose notification names the thread, not the process.
    fn bind_from_thread(port: u16) -> i32 {
        struct Call {
            port: u16,
            outcome: AtomicI32,
        }
        extern "C" fn run(call: *mut libc::c_void) -> libc::c_int {
            // SAFETY: `call` points at the Call below, alive until the thread is gone.
            let call = unsafe { &*(call as *const Call) };
            let outcome = bind_new(AddressFamily::INET, &SocketAddrV4::new(Ipv4Addr::LOCALHOST, call.port)).0;
            call.outcome.store(outcome, Ordering::SeqCst);
            0
        }
        #[repr(align(16))]
        struct Stack([u8; 64 * 1024]);
        let call = Call { port, outcome: AtomicI32::new(-1) };
        let mut stack = Stack([0; 64 * 1024]);
        let tid = AtomicI32::new(0);
        let flags = libc::CLONE_VM
            | libc::CLONE_FS
            | libc::CLONE_FILES
            | libc::CLONE_SIGHAND
            | libc::CLONE_THREAD
            | libc::CLONE_SYSVSEM
            | libc::CLONE_PARENT_SETTID
            | libc::CLONE_CHILD_CLEARTID;
        // SAFETY: the thread runs `run` on `stack` with `call`, which stay alive until the
        // kernel clears `tid` at the thread's exit, waited for below; `run` makes system calls
        // only (it shares this thread's thread-local storage).
        let created = unsafe {
            libc::clone(
                run,
                stack.0.as_mut_ptr_range().end.cast(),
                flags,
                &call as *const Call as *mut libc::c_void,
                tid.as_ptr(),
                std::ptr::null_mut::<libc::c_void>(),
                tid.as_ptr(),
            )
        };
        if created < 0 {
            return -3;
        }
        loop {
            let current = tid.load(Ordering::SeqCst);
            if current == 0 {
                return call.outcome.load(Ordering::SeqCst);
            }
            // SAFETY: sleeps while `tid` holds `current`; the kernel wakes it as it clears it.
            unsafe { libc::syscall(libc::SYS_futex, tid.as_ptr(), libc::FUTEX_WAIT, current, 0) };
        }
    }

    /// Answers the child's binds until it ends; what it saw and the answers given.
    fn supervise(socket: &OwnedFd, child: nix::unistd::Pid) -> (Outcomes, Vec<Answer>) {
        let pidfd = crate::sys::pidfd_open(child).unwrap();
        let (mut listener, mut received): (Option<OwnedFd>, bool) = (None, false);
        let mut answers = Vec::new();
        loop {
            let waiting = if received { None } else { Some(socket.as_fd()) };
            let watched = [waiting, Some(pidfd.as_fd()), listener.as_ref().map(OwnedFd::as_fd)];
            match crate::sys::poll_readable(watched, Some(Duration::from_secs(20))).unwrap() {
                [_, true, _] => break,
                [true, _, _] => {
                    listener = Some(crate::sys::receive_fd(socket.as_fd()).unwrap().expect("no listener sent"));
                    received = true;
                }
                [_, _, true] => match answer(listener.as_ref().unwrap().as_fd()) {
                    Ok(answer) => answers.push(answer),
                    // No process left with the filter: the child is ending.
                    Err(Errno::ESRCH) => listener = None,
                    Err(err) => panic!("answer: {err}"),
                },
                [false, false, false] => {
                    let _ = crate::sys::pidfd_send_signal(pidfd.as_fd(), nix::sys::signal::Signal::SIGKILL);
                    panic!("the child neither binds nor ends; answers so far: {answers:?}");
                }
            }
        }
        let mut bytes = [0u8; std::mem::size_of::<Outcomes>()];
        let (read, _) = rustix::net::recv(socket, &mut bytes, rustix::net::RecvFlags::DONTWAIT).unwrap();
        assert_eq!(read, bytes.len(), "the child sent no outcomes");
        (std::array::from_fn(|i| i32::from_ne_bytes(bytes[4 * i..4 * i + 4].try_into().unwrap())), answers)
    }

    /// As root in a user namespace, a command binds a privileged port of the host's network
    /// only through the supervisor; its other binds reach the kernel, and the supervisor's
    /// error comes back.
    #[test]
    fn privileged_binds_are_proxied_and_the_rest_continue() {
        if !nix::unistd::geteuid().is_root() {
            eprintln!("skipped: binding a privileged port for another process needs root");
            return;
        }
        let v6 = bound_v6(0).is_ok();
        let Some((port, (busy, _busy_socket))) = privileged_ports(v6) else {
            eprintln!("skipped: not two free ports from 600 to 999 on the loopback");
            return;
        };
        let dir = tempfile::tempdir().unwrap();
        let unix_path = dir.path().join("socket");
        let unix_path_c = CString::new(unix_path.as_os_str().as_bytes()).unwrap();
        let (supervisor_end, command_end) = crate::sys::handover_pair().unwrap();
        // SAFETY: the child makes system calls only (no allocation, no lock), then _exit.
        let child = match unsafe { nix::unistd::fork() }.unwrap() {
            nix::unistd::ForkResult::Child => {
                let outcomes = command(port, busy, &unix_path_c, v6, command_end.as_raw_fd());
                let mut bytes = [0u8; std::mem::size_of::<Outcomes>()];
                for (chunk, outcome) in bytes.chunks_exact_mut(4).zip(outcomes) {
                    chunk.copy_from_slice(&outcome.to_ne_bytes());
                }
                let _ = rustix::net::send(&command_end, &bytes, rustix::net::SendFlags::empty());
                // SAFETY: ends the child without running the harness's exit code.
                unsafe { libc::_exit(0) }
            }
            nix::unistd::ForkResult::Parent { child } => child,
        };
        drop(command_end);
        let (outcomes, answers) = supervise(&supervisor_end, child);
        nix::sys::wait::waitpid(child, None).unwrap();

        let x32 = cfg!(target_arch = "x86_64");
        let skipped_unless = |run: bool| if run { 0 } else { -1 };
        let expected: Outcomes = [
            0,
            libc::EACCES,
            0,
            0,
            i32::from(port),
            0,
            1,
            0,
            0,
            libc::EADDRINUSE,
            libc::EFAULT,
            skipped_unless(v6),
            skipped_unless(x32),
            0,
        ];
        let show = |outcomes: &Outcomes| {
            NAMES.iter().zip(outcomes).map(|(name, o)| format!("\n  {name}: {o}")).collect::<String>()
        };
        assert_eq!(
            outcomes,
            expected,
            "port {port}, in use {busy}; got:{}\nexpected:{}",
            show(&outcomes),
            show(&expected)
        );
        let proxied = Answer::Proxied(Ok(()));
        let mut expected_answers = vec![
            proxied,
            Answer::Continued,
            Answer::Continued,
            Answer::Continued,
            Answer::Proxied(Err(Errno::EADDRINUSE)),
            Answer::Continued,
        ];
        expected_answers.extend(v6.then_some(proxied));
        expected_answers.extend(x32.then_some(proxied));
        expected_answers.push(proxied);
        assert_eq!(answers, expected_answers);
        let made = std::fs::symlink_metadata(&unix_path).expect("the unix socket's path was not made");
        assert!(made.file_type().is_socket());
    }
}
