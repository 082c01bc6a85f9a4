//! PID 1 of the sandbox: sets up mounts and hostname, starts the command as its child, forwards
//! signals to it, reaps orphans, and reports the command's exit to the launcher.
//!
//! Everything here runs in a process created by [`crate::sys::clone_process`] from a possibly
//! multi-threaded launcher, so it must not allocate: all strings were prepared by the launcher
//! and results go back as fixed-size [`Report`]s over a pipe.

use std::ffi::CStr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

use nix::errno::Errno;
use nix::sys::signal::{kill, sigprocmask, SigSet, SigmaskHow, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;

use crate::mounts::Step;
use crate::sys::{self, Reaped, Wakeup};

/// Signals the init passes on to the command when a process (not the terminal) sent them.
pub(crate) const FORWARDED_SIGNALS: [Signal; 6] =
    [Signal::SIGHUP, Signal::SIGINT, Signal::SIGQUIT, Signal::SIGTERM, Signal::SIGUSR1, Signal::SIGUSR2];

/// The signal with which the launcher asks the init to end the sandbox (at its timeout): the
/// init kills every other process of it and reaps them itself. When the kernel tears a PID
/// namespace down, it reaps what is left without adding its CPU time to the init's, which is
/// where a cgroup-v1 run's CPU time comes from (its rusage, without a cpuacct cgroup to join).
/// Taken only from outside the sandbox: its own processes may send it to no effect.
pub(crate) const END_SIGNAL: Signal = Signal::SIGPWR;

/// What the init tells the launcher; 16 bytes, written atomically to a pipe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Report {
    /// Set-up step `index` failed with `errno`.
    StepFailed { index: u32, errno: i32 },
    /// Redirecting the command's stdio failed.
    StdioFailed { errno: i32 },
    /// Changing to the command's working directory failed.
    ChdirFailed { errno: i32 },
    /// `execvpe` of the command failed.
    ExecFailed { errno: i32 },
    /// Forking the command failed.
    ForkFailed { errno: i32 },
    /// Setting `PR_SET_NO_NEW_PRIVS` for the command failed.
    NoNewPrivsFailed { errno: i32 },
    /// Setting the rlimits of the rootless fallback failed.
    RlimitsFailed { errno: i32 },
    /// Dropping the kernel's capabilities ([`InitArgs::contained`]) failed.
    CapabilitiesFailed { errno: i32 },
    /// Installing the filter of host-wide operations ([`InitArgs::contained`]) failed.
    FilterFailed { errno: i32 },
    /// Entering the run's user namespace ([`InitArgs::user_namespace`]) failed.
    UserNamespaceFailed { errno: i32 },
    /// Joining cgroup `index` of [`InitArgs::join_cgroups`] failed.
    JoinFailed { index: u32, errno: i32 },
    /// Starting a session (`setsid`) or the command's process group (`setpgid`) failed.
    SessionFailed { errno: i32 },
    /// The command ended with this raw wait status.
    Exited { wait_status: i32 },
    /// The command has ended and other processes are left: the init waits on
    /// [`InitArgs::release`] before it kills them, so that the launcher can see where they are
    /// (a process outside the run's cgroup escaped its limits).
    Leftovers,
}

impl Report {
    pub(crate) const SIZE: usize = 16;

    pub(crate) fn encode(self) -> [u8; Report::SIZE] {
        let (kind, a, b): (u32, u32, i32) = match self {
            Report::StepFailed { index, errno } => (1, index, errno),
            Report::StdioFailed { errno } => (2, 0, errno),
            Report::ChdirFailed { errno } => (3, 0, errno),
            Report::ExecFailed { errno } => (4, 0, errno),
            Report::ForkFailed { errno } => (5, 0, errno),
            Report::Exited { wait_status } => (6, 0, wait_status),
            Report::NoNewPrivsFailed { errno } => (7, 0, errno),
            Report::RlimitsFailed { errno } => (8, 0, errno),
            Report::JoinFailed { index, errno } => (9, index, errno),
            Report::SessionFailed { errno } => (10, 0, errno),
            Report::Leftovers => (12, 0, 0),
            Report::CapabilitiesFailed { errno } => (13, 0, errno),
            Report::FilterFailed { errno } => (14, 0, errno),
            Report::UserNamespaceFailed { errno } => (15, 0, errno),
        };
        let mut out = [0u8; Report::SIZE];
        out[0..4].copy_from_slice(&kind.to_ne_bytes());
        out[4..8].copy_from_slice(&a.to_ne_bytes());
        out[8..12].copy_from_slice(&b.to_ne_bytes());
        out
    }

    /// Reads one report from the launcher's (non-blocking) end of the report pipe: `None` at
    /// its end (the init is gone) or for bytes that are no report; `EAGAIN` when none is there
    /// yet.
    pub(crate) fn read_from(pipe: std::os::fd::BorrowedFd<'_>) -> Result<Option<Report>, Errno> {
        let mut buffer = [0u8; Report::SIZE];
        match nix::unistd::read(std::os::fd::AsRawFd::as_raw_fd(&pipe), &mut buffer)? {
            Report::SIZE => Ok(Report::decode(&buffer)),
            _ => Ok(None),
        }
    }

    pub(crate) fn decode(bytes: &[u8; Report::SIZE]) -> Option<Report> {
        let word = |i: usize| [bytes[i], bytes[i + 1], bytes[i + 2], bytes[i + 3]];
        let (kind, a, b) = (u32::from_ne_bytes(word(0)), u32::from_ne_bytes(word(4)), i32::from_ne_bytes(word(8)));
        Some(match kind {
            1 => Report::StepFailed { index: a, errno: b },
            2 => Report::StdioFailed { errno: b },
            3 => Report::ChdirFailed { errno: b },
            4 => Report::ExecFailed { errno: b },
            5 => Report::ForkFailed { errno: b },
            6 => Report::Exited { wait_status: b },
            7 => Report::NoNewPrivsFailed { errno: b },
            8 => Report::RlimitsFailed { errno: b },
            9 => Report::JoinFailed { index: a, errno: b },
            10 => Report::SessionFailed { errno: b },
            12 => Report::Leftovers,
            13 => Report::CapabilitiesFailed { errno: b },
            14 => Report::FilterFailed { errno: b },
            15 => Report::UserNamespaceFailed { errno: b },
            _ => return None,
        })
    }
}

/// A test body as a function command runs it (the test runtime's `TestBody`).
pub(crate) type FunctionBody = fn() -> Result<(), String>;

/// What a function command calls in the sandbox instead of an exec: `run(body, report_fd)`
/// runs the body, reports how it ended on `report_fd` and exits. The test runtime hands it down,
/// so that this layer knows nothing of tests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FunctionCall {
    pub run: fn(FunctionBody, Option<RawFd>) -> !,
    pub body: FunctionBody,
    pub report_fd: Option<RawFd>,
}

/// Everything the init needs, prepared by the launcher before the clone.
pub(crate) struct InitArgs<'a> {
    pub steps: &'a [Step],
    pub program: &'a CStr,
    /// An open executable to run instead of looking `program` up.
    pub executable: Option<RawFd>,
    /// Null-terminated.
    pub argv: &'a [*const libc::c_char],
    /// Null-terminated.
    pub envp: &'a [*const libc::c_char],
    pub cwd: Option<&'a CStr>,
    /// Descriptors to install as the command's fd 0, 1, 2 (`None`: inherit).
    pub stdio: [Option<RawFd>; 3],
    /// Make the command the foreground process group of the terminal on fd 0.
    pub take_terminal: bool,
    /// Set `PR_SET_NO_NEW_PRIVS` for the command: set-user-ID programs and file capabilities
    /// grant it nothing.
    pub no_new_privs: bool,
    /// A contained run's command, as root: it gives up `sys::KERNEL_CAPABILITIES` and the
    /// operations of `sys::refuse_host_wide_operations`.
    pub contained: bool,
    /// A contained run's user namespace (`sys::identity_user_namespace`), the launcher's, taken
    /// after "go": the command enters it, with a mount and a cgroup namespace of its own, before
    /// it gives anything up, so that every mount set up here is locked for it.
    pub user_namespace: Option<&'a LaunchersFd>,
    /// Instead of exec: make this call (only from a single-threaded launcher, whose copies may
    /// allocate).
    pub function: Option<FunctionCall>,
    /// Resource limits set in the init before the command starts (rootless fallback).
    pub rlimits: &'a [(sys::RlimitResource, u64)],
    /// Descriptors the command keeps (their close-on-exec flag is cleared).
    pub kept_fds: &'a [RawFd],
    /// The cgroup-v1 `tasks` files the init writes `0` into after "go", joining its cgroups
    /// itself: each an open `tasks` file (path `None`, a reused cgroup's), or a directory and
    /// `<name>/tasks` below it, both opened before the clone (after `pivot_root` the init's
    /// root may not show `/sys/fs/cgroup`). A single-threaded process moving itself is the one
    /// migration that skips the kernel's global `cgroup_threadgroup_rwsem`, whose first writer
    /// after a quiet spell waits ~10 ms for an RCU grace period and which holds up every fork
    /// and exit on the machine while held.
    pub join_cgroups: &'a [(RawFd, Option<&'a CStr>)],
    /// Read end of the "go" pipe: one byte once the launcher has made our cgroup (or, where it
    /// places us, placed us in it).
    pub go_read: RawFd,
    /// The launcher's write end of that pipe, closed here so that its death reads as EOF.
    pub go_write: RawFd,
    /// Apply the set-up steps before waiting for "go" (while the launcher makes the cgroup);
    /// otherwise after it (in a user namespace, whose id maps the launcher writes first).
    pub steps_before_go: bool,
    /// The steps from this index on run only once the init is in its cgroup, after the join
    /// (a contained run's cgroup namespace: `mounts::Plan::in_cgroup_from`).
    pub steps_in_cgroup_from: usize,
    /// Write end of the report pipe.
    pub report: RawFd,
    /// Read end of the release pipe: see [`Report::Leftovers`]. One byte, or end of file when
    /// the launcher is gone, lets the init go on.
    pub release: RawFd,
    /// A pidfd of the launcher, opened before the clone (where pidfds exist).
    pub launcher: Option<BorrowedFd<'a>>,
    /// Where the init, when it shares the launcher's memory, writes one byte once the command
    /// has started: from then on it reads nothing of the launcher's, which may go on.
    pub started: Option<RawFd>,
    /// The launcher's CPU set, taken back after "go" where the launcher started the init on
    /// another CPU (`sys::start_elsewhere`).
    pub cpus: Option<nix::sched::CpuSet>,
}

fn send(report: RawFd, message: Report) {
    // Nothing to do about a failed write: the launcher then sees no report and falls back to
    // the init's own exit status.
    let _ = sys::write_raw(report, &message.encode());
}

/// Runs the init. Never returns.
pub(crate) fn run(args: &InitArgs<'_>) -> ! {
    let _ = nix::unistd::close(args.go_write);
    // If the launcher dies, so does the sandbox: PID-namespace teardown kills every process in it.
    if nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).is_err() {
        sys::exit_immediately(125);
    }
    // PDEATHSIG fires only for a death after it was armed: a launcher killed between the clone
    // and here would leave this sandbox running (tests/reliability.sh widens that window with
    // strace to check). Its pidfd tells.
    if args.launcher.is_some_and(sys::pidfd_has_exited) {
        sys::exit_immediately(125);
    }
    // Its own session, led by this PID 1, unless the command takes the launcher's terminal
    // (which belongs to the launcher's session): `getsid` then names a process the sandbox
    // sees, not 0, and no process group of the sandbox's reaches outside it.
    if !args.take_terminal {
        if let Err(errno) = nix::unistd::setsid() {
            send(args.report, Report::SessionFailed { errno: errno as i32 });
            sys::exit_immediately(125);
        }
    }
    if args.steps_before_go {
        apply_steps(args, 0..args.steps_in_cgroup_from);
        wait_for_go(args);
        join_cgroups(args);
        apply_steps(args, args.steps_in_cgroup_from..args.steps.len());
    } else {
        wait_for_go(args);
        join_cgroups(args);
        apply_steps(args, 0..args.steps.len());
    }
    let _ = nix::unistd::close(args.go_read);
    let user_namespace = match args.user_namespace.map(|namespace| namespace.take()).transpose() {
        Ok(namespace) => namespace,
        Err(errno) => {
            send(args.report, Report::UserNamespaceFailed { errno: errno as i32 });
            sys::exit_immediately(125);
        }
    };
    // A contained command is root, in a user namespace that maps root to root: the kernel lets
    // a process trace (and read the memory, root and descriptors of) another with the same
    // user IDs unless that one is not dumpable. This init stays root of the machine; it must
    // not be reachable from the command, which starts below. (Where it shares the launcher's
    // memory, the launcher is not dumpable from here on either: the flag belongs to the
    // memory. Not before: the launcher may still be making the user namespace, whose holder
    // shares that memory too, and opening the holder's `/proc/<pid>/ns/user` would then take
    // `CAP_SYS_PTRACE`, which a container's root may lack.)
    if user_namespace.is_some() && nix::sys::prctl::set_dumpable(false).is_err() {
        sys::exit_immediately(125);
    }
    if let Some(cpus) = &args.cpus {
        sys::restore_cpus(cpus);
    }

    for (resource, value) in args.rlimits {
        if let Err(errno) = sys::set_rlimit(*resource, *value) {
            send(args.report, Report::RlimitsFailed { errno: errno as i32 });
            sys::exit_immediately(125);
        }
    }

    let mut waited = SigSet::empty();
    for signal in FORWARDED_SIGNALS {
        waited.add(signal);
    }
    waited.add(Signal::SIGCHLD);
    waited.add(END_SIGNAL);
    // SIGTTOU is blocked (never waited for) so that the command can take the terminal.
    let mut blocked = waited;
    blocked.add(Signal::SIGTTOU);
    if sigprocmask(SigmaskHow::SIG_BLOCK, Some(&blocked), None).is_err() {
        sys::exit_immediately(125);
    }
    // A contained command binds privileged ports of the machine's network through this init
    // (`sys::bind_proxy`): it hands its filter's listener over this pair.
    let handover = match args.user_namespace {
        Some(_) => match sys::handover_pair() {
            Ok(pair) => Some(pair),
            Err(errno) => {
                send(args.report, Report::FilterFailed { errno: errno as i32 });
                sys::exit_immediately(125);
            }
        },
        None => None,
    };
    let command_args = CommandArgs {
        init: args,
        user_namespace,
        listener_socket: handover.as_ref().map(|(_, child)| child.as_raw_fd()),
        init_socket: handover.as_ref().map(|(own, _)| own.as_raw_fd()),
    };
    let command = if args.function.is_some() {
        // A test body runs in a full copy of this process (a fork server of the runner or of
        // the stock harness).
        // SAFETY: this process is single-threaded (a clone child of a single-threaded fork
        // server), whose copies may run anything.
        match unsafe { sys::fork_raw() } {
            Ok(None) => exec_command(&command_args),
            Ok(Some(pid)) => Ok(pid),
            Err(errno) => Err(errno),
        }
    } else {
        // SAFETY: this process is single-threaded (a clone child); exec_command ends in exec or
        // _exit and keeps to async-signal-safe calls on its own stack.
        unsafe { sys::vfork_call(exec_command, &command_args) }
    };
    match command {
        Err(errno) => {
            send(args.report, Report::ForkFailed { errno: errno as i32 });
            sys::exit_immediately(125);
        }
        Ok(command) => {
            // The command's end goes, so that this one sees the end of the pair when the
            // command exec'd or exited without sending a listener (a nested run's command has
            // the outer run's filter, which keeps the one listener a process may have).
            let listener = handover.and_then(|(own, child)| {
                drop(child);
                sys::wait_for_fd(own.as_fd()).ok().flatten()
            });
            let report = args.report;
            if let Some(started) = args.started {
                let _ = sys::write_raw(started, &[1]);
                let _ = nix::unistd::close(started);
            }
            supervise(command, &waited, report, args.release, listener)
        }
    }
}

/// A descriptor of the launcher's that the init needs only for the command, so that the
/// launcher may open it after "go", while the init joins and mounts its cgroups: sent over a
/// socket pair (`SCM_RIGHTS`, which asks no permission of either side), or, open before the
/// clone, in the init's own copy of the descriptor table already.
#[derive(Debug)]
pub(crate) enum LaunchersFd {
    /// Open before the clone, at this number.
    Inherited(RawFd),
    /// Sent by the launcher after the clone, over a pair of sockets made before it.
    SentLater {
        /// The launcher's end.
        launchers: OwnedFd,
        /// The init's end.
        inits: OwnedFd,
    },
}

impl LaunchersFd {
    /// A descriptor the launcher opens after the clone and sends on its end of the pair.
    pub(crate) fn opened_later() -> Result<LaunchersFd, Errno> {
        let (launchers, inits) = sys::handover_pair()?;
        Ok(LaunchersFd::SentLater { launchers, inits })
    }

    /// The init's, after "go": the descriptor in its own table, close-on-exec (it stays open
    /// until the init exits). One sent later is waited for: the launcher makes it after "go",
    /// while this init joins its cgroups and mounts them (a launcher that fails kills the
    /// init). No allocation.
    fn take(&self) -> Result<RawFd, Errno> {
        match self {
            LaunchersFd::Inherited(fd) => Ok(*fd),
            LaunchersFd::SentLater { inits, .. } => match sys::wait_for_fd(inits.as_fd())? {
                Some(fd) => Ok(std::os::fd::IntoRawFd::into_raw_fd(fd)),
                None => Err(Errno::EBADF),
            },
        }
    }
}

/// What the command's process starts from: the init's arguments, and the command's end of the
/// pair over which it hands its bind filter's listener to the init.
struct CommandArgs<'a> {
    init: &'a InitArgs<'a>,
    /// The run's user namespace, in this init's descriptor table ([`InitArgs::user_namespace`]).
    user_namespace: Option<RawFd>,
    listener_socket: Option<RawFd>,
    /// The init's end, which the command closes at once (a test body, not exec'd, would keep it,
    /// and could take the listener before the init does).
    init_socket: Option<RawFd>,
}

/// Waits until the launcher has put us into the cgroup. EOF means it died before (and before
/// PDEATHSIG was armed, possibly): give up.
fn wait_for_go(args: &InitArgs<'_>) {
    let mut byte = [0u8; 1];
    if !matches!(nix::unistd::read(args.go_read, &mut byte), Ok(1)) {
        sys::exit_immediately(125);
    }
}

/// Moves this process (one thread: the clone child) into its v1 cgroups; see
/// [`InitArgs::join_cgroups`].
fn join_cgroups(args: &InitArgs<'_>) {
    for (index, (fd, tasks)) in args.join_cgroups.iter().enumerate() {
        // "0": the writing thread itself.
        let written = match tasks {
            Some(tasks) => sys::write_file_at(*fd, tasks, b"0"),
            None => sys::write_whole(*fd, b"0"),
        };
        if let Err(errno) = written {
            send(args.report, Report::JoinFailed { index: index as u32, errno: errno as i32 });
            sys::exit_immediately(125);
        }
    }
}

/// Mounts, hostname, root switch: the sandbox's view of the system. `range` of the steps.
fn apply_steps(args: &InitArgs<'_>, range: std::ops::Range<usize>) {
    for (index, step) in args.steps.iter().enumerate().take(range.end).skip(range.start) {
        if let Err(errno) = step.apply() {
            send(args.report, Report::StepFailed { index: index as u32, errno: errno as i32 });
            sys::exit_immediately(125);
        }
    }
}

/// The command's side: a clean signal mask, its stdio and directory, then exec.
fn exec_command(command: &CommandArgs<'_>) -> ! {
    let args = command.init;
    if let Some(socket) = command.init_socket {
        let _ = nix::unistd::close(socket);
    }
    // The command and everything it starts are the OOM killer's first choice, this init never:
    // it may share the launcher's memory, and the kernel kills every process of a victim's
    // memory, so a memory-limited run that fills a tmpfs (which no process's size shows) would
    // otherwise take the launcher and its report along. Set here, before the command runs, so
    // that no child of it escapes the setting; the kernel keeps a vfork child's setting its own
    // (not that of the processes whose memory it shares until exec).
    let _ = sys::prefer_for_oom_kill();
    // The command leads a process group of its own, as a shell's job does: `kill(0, ..)` in it
    // reaches the command and what it started, neither the init nor anything outside.
    if args.take_terminal {
        // Also the terminal's foreground: without that an interactive shell finds a foreground
        // group it cannot see (it lives in the launcher's PID namespace): no job control, and an
        // error at exit.
        let _ = sys::take_terminal_foreground(0);
    } else if let Err(errno) = nix::unistd::setpgid(Pid::from_raw(0), Pid::from_raw(0)) {
        send(args.report, Report::SessionFailed { errno: errno as i32 });
        sys::exit_immediately(125);
    }
    let _ = sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None);
    if let Some(started) = args.started {
        // The init's to write (a test body is not exec'd, so close-on-exec would not close it).
        let _ = nix::unistd::close(started);
    }
    for (target, source) in args.stdio.iter().enumerate() {
        if let Some(source) = *source {
            if let Err(errno) = sys::dup_onto(source, target as RawFd) {
                send(args.report, Report::StdioFailed { errno: errno as i32 });
                sys::exit_immediately(125);
            }
        }
    }
    sys::cloexec_from_3();
    if args.no_new_privs {
        if let Err(errno) = nix::sys::prctl::set_no_new_privs() {
            send(args.report, Report::NoNewPrivsFailed { errno: errno as i32 });
            sys::exit_immediately(125);
        }
    }
    for fd in args.kept_fds {
        if let Err(errno) = sys::dup_onto(*fd, *fd) {
            send(args.report, Report::StdioFailed { errno: errno as i32 });
            sys::exit_immediately(125);
        }
    }
    if let Some(cwd) = args.cwd {
        if let Err(errno) = nix::unistd::chdir(cwd) {
            send(args.report, Report::ChdirFailed { errno: errno as i32 });
            sys::exit_immediately(125);
        }
    }
    if let Some(namespace) = command.user_namespace {
        if let Err(errno) = sys::enter_user_namespace(namespace) {
            send(args.report, Report::UserNamespaceFailed { errno: errno as i32 });
            sys::exit_immediately(125);
        }
    }
    if args.contained {
        if let Err(errno) = sys::drop_capabilities(&sys::KERNEL_CAPABILITIES) {
            send(args.report, Report::CapabilitiesFailed { errno: errno as i32 });
            sys::exit_immediately(125);
        }
        // With the bind notifier where the init answers binds, in one program; no listener
        // where the outer run's init answers (see `sys::bind_proxy`).
        let filtered = match command.listener_socket {
            Some(socket) => sys::refuse_host_wide_operations_and_notify_binds()
                .and_then(|listener| listener.map_or(Ok(()), |listener| sys::send_fd(socket, listener.as_fd()))),
            None => sys::refuse_host_wide_operations(),
        };
        if let Err(errno) = filtered {
            send(args.report, Report::FilterFailed { errno: errno as i32 });
            sys::exit_immediately(125);
        }
    }
    if let Some(socket) = command.listener_socket {
        let _ = nix::unistd::close(socket);
    }
    if let Some(call) = args.function {
        (call.run)(call.body, call.report_fd);
    }
    // Rust's runtime ignores SIGPIPE in the launcher, and exec keeps an ignored signal ignored:
    // the command gets the default back, as std::process::Command does (tests/faults.rs).
    sys::default_sigpipe();
    let errno = match args.executable {
        Some(fd) => sys::execveat_fd(fd, args.argv, args.envp),
        None => sys::execvpe(args.program, args.argv, args.envp),
    };
    send(args.report, Report::ExecFailed { errno: errno as i32 });
    // The shell's conventions: 127 not found, 126 found but not executable.
    sys::exit_immediately(if errno == Errno::ENOENT { 127 } else { 126 })
}

/// The init's side: forward signals, reap everything, answer the command's binds of privileged
/// ports (`listener`, a contained run's), and end the sandbox when the command has ended or
/// the launcher asks.
fn supervise(command: Pid, waited: &SigSet, report: RawFd, release: RawFd, listener: Option<OwnedFd>) -> ! {
    // The signals stay blocked: a signalfd reads them beside the listener.
    let signals = listener.as_ref().and_then(|_| SignalFd::with_flags(waited, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC).ok());
    let mut listener = listener.filter(|_| signals.is_some());
    loop {
        let pending = match (&signals, &listener) {
            (Some(signals), Some(watched)) => match sys::wait_signal_or_readable(signals, watched.as_fd()) {
                Wakeup::Signal(pending) => pending,
                Wakeup::Readable => {
                    // ESRCH: no process uses the filter any more; EINTR: nothing to answer yet.
                    if let Err(errno) = sys::answer_bind(watched.as_fd()) {
                        if errno != Errno::EINTR {
                            listener = None;
                        }
                    }
                    continue;
                }
            },
            _ => sys::wait_signal(waited),
        };
        if pending.signal == libc::SIGCHLD {
            loop {
                match sys::reap_any_child(false) {
                    Reaped::Child(pid, status) if pid == command => {
                        send(report, Report::Exited { wait_status: status });
                        end_sandbox(None, report, release);
                    }
                    Reaped::Child(..) => continue,
                    Reaped::NoneEnded | Reaped::NoChildren => break,
                }
            }
        } else if pending.signal == END_SIGNAL as libc::c_int {
            if pending.from_outside {
                end_sandbox(Some(command), report, release);
            }
        } else if !pending.from_kernel {
            if let Ok(signal) = Signal::try_from(pending.signal) {
                let _ = kill(command, signal);
            }
        }
    }
}

/// Kills whatever is left in the sandbox and reaps it here, so that the CPU time of every
/// process reaches this one's rusage (see [`END_SIGNAL`]), then exits. `command`: the command,
/// when it is still running (its end is then reported like any other). When the command has
/// ended and others are left, the launcher looks at them first ([`Report::Leftovers`]); at a
/// timeout it has, before it asked.
fn end_sandbox(command: Option<Pid>, report: RawFd, release: RawFd) -> ! {
    let mut killed = false;
    loop {
        match sys::reap_any_child(killed) {
            Reaped::Child(pid, wait_status) => {
                if Some(pid) == command {
                    send(report, Report::Exited { wait_status });
                }
            }
            // The usual end of a command that left nothing behind: nothing to kill.
            Reaped::NoChildren => sys::exit_immediately(0),
            Reaped::NoneEnded => {
                if command.is_none() && !killed {
                    send(report, Report::Leftovers);
                    let mut byte = [0u8; 1];
                    let _ = nix::unistd::read(release, &mut byte);
                }
                sys::kill_rest_of_namespace();
                killed = true;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_round_trip() {
        for report in [
            Report::StepFailed { index: 7, errno: libc::EPERM },
            Report::StdioFailed { errno: 9 },
            Report::ChdirFailed { errno: 2 },
            Report::ExecFailed { errno: 2 },
            Report::ForkFailed { errno: 11 },
            Report::NoNewPrivsFailed { errno: 22 },
            Report::RlimitsFailed { errno: 1 },
            Report::JoinFailed { index: 1, errno: libc::EACCES },
            Report::CapabilitiesFailed { errno: libc::EPERM },
            Report::FilterFailed { errno: libc::EINVAL },
            Report::UserNamespaceFailed { errno: libc::ENOSPC },
            Report::SessionFailed { errno: libc::EPERM },
            Report::Exited { wait_status: 0x8b },
            Report::Leftovers,
        ] {
            assert_eq!(Report::decode(&report.encode()), Some(report));
        }
        assert_eq!(Report::decode(&[0; Report::SIZE]), None);
    }
}
