//! The launcher: creates the run's cgroup, clones the sandbox's init into new namespaces, waits
//! for it with the timeout, and turns what the kernel reports into an [`Outcome`].

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::fcntl::OFlag;
use nix::sched::CloneFlags;
use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use nix::unistd::Pid;
use thiserror::Error;

use crate::cgroup::{plan_run_cgroup, CgroupError, InitJoin, Layout, RunCgroup, Stats};
use crate::config::{Config, ConfigError, NetMode};
use crate::init::{FunctionBody, FunctionCall, InitArgs, Report};
use crate::mounts::{self, Step};
use crate::outcome::{Enforcements, ExitStatus, Outcome};
use crate::sys::{self, Cloned};

/// Why a sandbox could not be set up or waited for. The command's own failures are not errors:
/// they are in the [`Outcome`].
#[derive(Debug, Error)]
pub enum Error {
    /// The configuration cannot work.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The run's cgroup could not be created, used or removed.
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
    /// `clone` with new namespaces was refused.
    #[error("creating the sandbox's namespaces (clone with {flags}) failed: {source}{}", namespace_hint(*source))]
    Namespaces {
        /// The namespace flags asked for.
        flags: String,
        /// The error from the kernel.
        #[source]
        source: Errno,
    },
    /// A set-up step inside the sandbox failed.
    #[error("{step}: {source}{hint}", hint = step_hint(*source))]
    Setup {
        /// What was being done, e.g. "mounting tmpfs on /tmp".
        step: String,
        /// The error from the kernel.
        #[source]
        source: Errno,
    },
    /// The command could not be executed.
    #[error("cannot execute '{program}': {source}")]
    Exec {
        /// The program as given.
        program: String,
        /// The error from `execvp`.
        #[source]
        source: Errno,
    },
    /// No cgroup could be used and `--require cgroup` / `SANDBOX_REQUIRE=cgroup` forbids the
    /// weaker enforcement.
    #[error(
        "a cgroup is required (--require cgroup or SANDBOX_REQUIRE=cgroup) but none can be used: {cause}"
    )]
    CgroupRequired {
        /// Why no cgroup could be created.
        cause: CgroupError,
    },
    /// `SANDBOX_REQUIRE` has a value other than `cgroup`.
    #[error("SANDBOX_REQUIRE='{0}' is not understood: the only value is 'cgroup'")]
    BadRequire(String),
    /// Setting up the sandbox's user namespace (rootless mode) failed.
    #[error("writing {path} for the sandbox's user namespace: {source}")]
    UserNamespace {
        /// The /proc file.
        path: PathBuf,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// An operation of the launcher itself failed.
    #[error("{action}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    /// The exit status the CLI uses: 127/126 when the command could not be executed (as a shell
    /// does), 125 when the sandbox itself failed.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Exec { source: Errno::ENOENT, .. } => 127,
            Error::Exec { .. } => 126,
            _ => 125,
        }
    }
}

/// The cause of a refused namespace clone and its fix: a seccomp filter, else a missing
/// capability, else a user-namespace sysctl (`sandbox check` probes the same).
fn namespace_hint(errno: Errno) -> String {
    crate::check::namespace_refusal_hint(errno)
}

fn step_hint(errno: Errno) -> String {
    match errno {
        Errno::EPERM | Errno::EACCES if !nix::unistd::geteuid().is_root() => crate::check::user_namespace_mount_hint()
            .unwrap_or_else(|| " (permission denied inside the sandbox: run as root)".into()),
        Errno::EPERM | Errno::EACCES => " (permission denied inside the sandbox: run as root)".into(),
        Errno::ENOENT => " (the mount point does not exist: create it, or mount below the sandbox's tmpfs)".into(),
        _ => String::new(),
    }
}

fn io_error(action: &'static str) -> impl FnOnce(Errno) -> Error {
    move |errno| Error::Io { action, source: errno.into() }
}

/// A program with arguments to run in a sandbox; like [`std::process::Command`], whose spawning
/// cannot put a process into new namespaces and a cgroup at the same time.
///
/// ```
/// use sandbox::{Command, Config, Sandbox};
///
/// let mut config = Config::default();
/// config.hostname = "box".into();
/// let path = std::env::temp_dir().join(format!("sandbox-doc-{}", std::process::id()));
/// let mut command = Command::new("sh");
/// command.args(["-c", "echo $GREETING from $(uname -n), pid $$"]).env("GREETING", "hello");
/// command.stdout(std::fs::File::create_new(&path)?);
/// let outcome = Sandbox::new(config)?.run(&command)?;
/// assert!(outcome.success(), "{outcome}");
/// // The shell is the first process after the sandbox's init (PID 1).
/// assert_eq!(std::fs::read_to_string(&path)?, "hello from box, pid 2\n");
/// # std::fs::remove_file(&path)?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct Command {
    program: OsString,
    /// Execute this open file instead of looking `program` up (which then is only `argv[0]`).
    executable: Option<OwnedFd>,
    args: Vec<OsString>,
    env: Vec<(OsString, Option<OsString>)>,
    cwd: Option<PathBuf>,
    stdio: [Option<OwnedFd>; 3],
    kept_fds: Vec<OwnedFd>,
    take_terminal: bool,
    /// Make this call instead of exec'ing a program.
    function: Option<FunctionCall>,
}

impl Command {
    /// Runs `program`, looked up in `PATH` (inside the sandbox's root) when it has no `/`.
    pub fn new(program: impl AsRef<OsStr>) -> Command {
        Command {
            program: program.as_ref().to_owned(),
            executable: None,
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            stdio: [None, None, None],
            kept_fds: Vec::new(),
            take_terminal: false,
            function: None,
        }
    }

    /// A "command" that is a copy of this process calling `run(body, report_fd)` (see
    /// [`report_to`](Command::report_to)): no exec.
    ///
    /// # Safety
    /// The process that spawns it must be single-threaded: the sandbox's init forks a full copy
    /// of it to run `body`, and a copy of a multi-threaded process may find a lock held forever
    /// by a thread that does not exist there (see `testing::run_function_isolated`).
    pub(crate) unsafe fn for_function(run: fn(FunctionBody, Option<RawFd>) -> !, body: FunctionBody) -> Command {
        let mut command = Command::new("isolated test");
        command.function = Some(FunctionCall { run, body, report_fd: None });
        command
    }

    /// Where a function command reports how its body ended.
    pub(crate) fn report_to(&mut self, fd: RawFd) -> &mut Command {
        if let Some(call) = &mut self.function {
            call.report_fd = Some(fd);
        }
        self
    }

    /// When stdin is the terminal's foreground, hands the terminal to the command (its own
    /// process group), as a shell does for a job: an interactive `sh` then has job control and
    /// ^C reaches only the sandbox. The launcher takes it back with
    /// [`Running::restore_terminal`]. Off by default (a test harness keeps its terminal).
    pub fn foreground_terminal(&mut self, take: bool) -> &mut Command {
        self.take_terminal = take && sys::is_foreground_terminal(0);
        self
    }

    /// Whether the command will take the terminal (see [`Command::foreground_terminal`]): then
    /// the launcher must take it back when the command has ended.
    pub fn takes_terminal(&self) -> bool {
        self.take_terminal
    }

    /// Runs the program open as `executable` (e.g. `O_PATH`), with `argv0` as `argv[0]`: works
    /// even where the sandbox hides the program's path (a test binary below `/tmp`).
    pub fn from_executable(executable: OwnedFd, argv0: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new(argv0);
        command.executable = Some(executable);
        command
    }

    /// Keeps `fd` open in the command, at the same number (returned), e.g. to pass a pipe to
    /// report through.
    pub fn keep_fd(&mut self, fd: OwnedFd) -> RawFd {
        let number = fd.as_raw_fd();
        self.kept_fds.push(fd);
        number
    }

    /// Adds an argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Command {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<OsStr>>(&mut self, args: I) -> &mut Command {
        self.args.extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Sets an environment variable for the command (the rest is inherited).
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Command {
        self.env.push((key.as_ref().to_owned(), Some(value.as_ref().to_owned())));
        self
    }

    /// Removes an inherited environment variable.
    pub fn env_remove(&mut self, key: impl AsRef<OsStr>) -> &mut Command {
        self.env.push((key.as_ref().to_owned(), None));
        self
    }

    /// Working directory of the command, as seen inside the sandbox.
    pub fn current_dir(&mut self, dir: impl Into<PathBuf>) -> &mut Command {
        self.cwd = Some(dir.into());
        self
    }

    /// The command's stdin (default: inherited).
    pub fn stdin(&mut self, fd: impl Into<OwnedFd>) -> &mut Command {
        self.stdio[0] = Some(fd.into());
        self
    }

    /// The command's stdout (default: inherited).
    pub fn stdout(&mut self, fd: impl Into<OwnedFd>) -> &mut Command {
        self.stdio[1] = Some(fd.into());
        self
    }

    /// The command's stderr (default: inherited).
    pub fn stderr(&mut self, fd: impl Into<OwnedFd>) -> &mut Command {
        self.stdio[2] = Some(fd.into());
        self
    }

    fn environment(&self) -> Vec<CString> {
        let mut vars: Vec<(OsString, OsString)> = std::env::vars_os().collect();
        for (key, value) in &self.env {
            vars.retain(|(k, _)| k != key);
            if let Some(value) = value {
                vars.push((key.clone(), value.clone()));
            }
        }
        vars.into_iter()
            .filter_map(|(k, v)| {
                let mut entry = k.into_vec();
                entry.push(b'=');
                entry.extend_from_slice(v.as_bytes());
                CString::new(entry).ok()
            })
            .collect()
    }
}

fn c_string(what: &'static str, text: &OsStr) -> Result<CString, Error> {
    CString::new(text.as_bytes()).map_err(|_| Error::Io {
        action: what,
        source: io::Error::new(io::ErrorKind::InvalidInput, format!("{text:?} contains a NUL byte")),
    })
}

fn null_terminated(strings: &[CString]) -> Vec<*const libc::c_char> {
    strings.iter().map(|s| s.as_ptr()).chain(std::iter::once(std::ptr::null())).collect()
}

/// A validated sandbox configuration, ready to run commands.
#[derive(Debug, Clone)]
pub struct Sandbox {
    config: Config,
    rootfs: Option<PathBuf>,
}

impl Sandbox {
    /// Checks `config` (nothing is created yet).
    pub fn new(config: Config) -> Result<Sandbox, Error> {
        config.validate()?;
        let rootfs = match &config.rootfs {
            Some(dir) => Some(std::fs::canonicalize(dir).map_err(|source| ConfigError::Missing {
                what: "--rootfs",
                path: dir.clone(),
                source,
            })?),
            None => None,
        };
        Ok(Sandbox { config, rootfs })
    }

    /// [`Sandbox::new`] with what the environment adds for runs that have no command line of
    /// their own (the CLI and `#[isolated]` tests use it): `SANDBOX_CGROUP_PARENT` as the cgroup
    /// parent when `config` names none (ignored inside a run, whose cgroup the run nests in),
    /// and `SANDBOX_REQUIRE=cgroup` as [`Config::require_cgroup`].
    pub fn with_environment(mut config: Config) -> Result<Sandbox, Error> {
        match std::env::var("SANDBOX_REQUIRE") {
            Ok(value) if value == "cgroup" => config.require_cgroup = true,
            Ok(value) if !value.is_empty() => return Err(Error::BadRequire(value)),
            _ => {}
        }
        if config.cgroup_parent.is_none() {
            config.cgroup_parent = crate::cgroup::parent_from_environment();
        }
        Sandbox::new(config)
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The configuration for one command, and the directory it starts in. Without `--rootfs` the
    /// command starts where the launcher is (or in [`Command::current_dir`]); when that lies below
    /// one of the sandbox's tmpfs mounts (a project checked out under `/tmp`), the new tmpfs would
    /// hide it, so the directory is bound back at its own path.
    fn with_working_directory(&self, command: &Command) -> (std::borrow::Cow<'_, Config>, Option<PathBuf>) {
        let config = std::borrow::Cow::Borrowed(&self.config);
        if self.rootfs.is_some() {
            return (config, command.cwd.clone());
        }
        let Some(cwd) = command.cwd.clone().or_else(|| std::env::current_dir().ok()) else {
            return (config, None);
        };
        let hidden = config.tmpfs.iter().any(|t| cwd != t.path && cwd.starts_with(&t.path));
        let already_bound = config.binds.iter().any(|b| cwd.starts_with(&b.target));
        if !hidden || already_bound {
            return (config, Some(cwd));
        }
        let mut config = config.into_owned();
        config.binds.push(crate::config::BindMount { source: cwd.clone(), target: cwd.clone(), read_only: false });
        (std::borrow::Cow::Owned(config), Some(cwd))
    }

    /// Runs `command` to the end and reports what happened.
    pub fn run(&self, command: &Command) -> Result<Outcome, Error> {
        self.spawn(command)?.wait()
    }

    /// Starts `command` in a new sandbox. The returned [`Running`] must be waited for from the
    /// same thread (the sandbox's init is tied to this thread's life by `PR_SET_PDEATHSIG`).
    ///
    /// ```
    /// use sandbox::{Command, Config, Ending, Sandbox};
    ///
    /// let running = Sandbox::new(Config::default())?.spawn(Command::new("sleep").arg("60"))?;
    /// running.kill();
    /// let outcome = running.wait()?;
    /// assert_eq!(outcome.ending(), Ending::Signaled(9));
    /// # Ok::<(), sandbox::Error>(())
    /// ```
    pub fn spawn(&self, command: &Command) -> Result<Running, Error> {
        let (config, cwd) = self.with_working_directory(command);
        // Opened here to check them and to reserve descriptor numbers that the init reopens
        // them onto (see mounts::Step::OpenSource).
        let mut bind_sources = Vec::with_capacity(config.binds.len());
        for bind in &config.binds {
            let fd = nix::fcntl::open(&bind.source, OFlag::O_PATH | OFlag::O_CLOEXEC, nix::sys::stat::Mode::empty())
                .map_err(|errno| ConfigError::Missing { what: "--bind source", path: bind.source.clone(), source: errno.into() })?;
            // SAFETY: `open` just returned `fd`; nothing else has it.
            bind_sources.push(unsafe { sys::own_fd(fd) });
        }
        let bind_fds: Vec<RawFd> = bind_sources.iter().map(|fd| fd.as_raw_fd()).collect();
        // Shared with `Running` (which names a failed step): the init reads them meanwhile.
        let steps: std::sync::Arc<[Step]> = mounts::plan(&config, self.rootfs.as_deref(), &bind_fds).into();
        let program = c_string("program name", &command.program)?;
        let mut argv_strings = vec![program.clone()];
        for arg in &command.args {
            argv_strings.push(c_string("argument", arg)?);
        }
        let argv = null_terminated(&argv_strings);
        // A test body (function command) is not exec'd: it keeps this process's environment.
        let env_strings = if command.function.is_some() { Vec::new() } else { command.environment() };
        let envp = null_terminated(&env_strings);
        let cwd = cwd.map(|p| c_string("working directory", p.as_os_str())).transpose()?;

        let require_cgroup = self.config.require_cgroup;
        // Without root, namespaces come from a user namespace and limits from a delegated cgroup,
        // or, where there is none, from rlimits: weaker, and said so in the outcome.
        let rootless = !nix::unistd::geteuid().is_root();
        let cgroup_parent = self.config.cgroup_parent.clone();
        // The cgroup is chosen before the clone: v2 creates the init inside it
        // (CLONE_INTO_CGROUP), and on v1 the init joins its directories itself (opened below).
        // As root, v1 directories are made while the init sets up its mounts (the init only
        // waits for them before it starts the command): the two are the largest parts of a
        // sandbox's start and need not wait for each other. Rootless runs make their cgroup
        // before the clone, to fall back on rlimits when they cannot.
        let make_after_clone = !rootless;
        let cgroup = crate::cgroup::pool::take(cgroup_parent.as_deref(), &self.config.limits)
            .map(Ok)
            .unwrap_or_else(|| {
                Layout::current().and_then(|layout| plan_run_cgroup(layout, cgroup_parent.as_deref(), &self.config.limits))
            })
            .and_then(|mut cgroup| {
                if !make_after_clone {
                    cgroup.finish_creation()?;
                }
                Ok(cgroup)
            });
        let cgroup_error = |cause| match require_cgroup {
            true => Error::CgroupRequired { cause },
            false => Error::Cgroup(cause),
        };
        let (cgroup, no_cgroup_reason) = match cgroup {
            Ok(cgroup) => (Some(cgroup), None),
            Err(cause) if rootless && !require_cgroup => (None, Some(cause.to_string())),
            Err(cause) => return Err(cgroup_error(cause)),
        };
        let joins = cgroup.as_ref().map_or_else(|| Ok(Vec::new()), |c| c.init_joins()).map_err(cgroup_error)?;
        let join_cgroups: Vec<(RawFd, Option<&CStr>)> = joins.iter().map(InitJoin::for_init).collect();
        let enforcement = Enforcements::for_limits(&self.config.limits, no_cgroup_reason.clone());
        let mut rlimits: Vec<(sys::RlimitResource, u64)> = Vec::new();
        if no_cgroup_reason.is_some() {
            if let Some(pids) = self.config.limits.pids {
                rlimits.push((libc::RLIMIT_NPROC, pids));
            }
            if let Some(bytes) = self.config.limits.memory_bytes {
                rlimits.push((libc::RLIMIT_AS, bytes));
            }
        }

        let (go_read, go_write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io_error("creating a pipe"))?;
        // For the init to check that this process still lives once its PDEATHSIG is armed.
        let launcher = sys::pidfd_open(nix::unistd::getpid()).ok();
        let (report_read, report_write) =
            nix::unistd::pipe2(OFlag::O_CLOEXEC | OFlag::O_NONBLOCK).map_err(io_error("creating a pipe"))?;
        // Only the read end is non-blocking for the launcher: the init writes small reports.
        nix::fcntl::fcntl(report_write.as_raw_fd(), nix::fcntl::FcntlArg::F_SETFL(OFlag::empty()))
            .map_err(io_error("configuring a pipe"))?;

        // The init shares this process's memory (no copy of it to make and tear down) unless
        // it must be created inside its v2 cgroup: CLONE_INTO_CGROUP needs clone3, for which
        // glibc has no wrapper that runs a function on a new stack.
        let (stack, started_read, started_write) = if cgroup.as_ref().and_then(|c| c.clone_target()).is_none() {
            let stack = sys::ChildStack::new(INIT_STACK_BYTES).map_err(io_error("mapping the init's stack"))?;
            let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC).map_err(io_error("creating a pipe"))?;
            (Some(stack), Some(read), Some(write))
        } else {
            (None, None, None)
        };

        let mut flags = CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWNS | CloneFlags::CLONE_NEWUTS;
        flags.set(CloneFlags::CLONE_NEWUSER, rootless);
        flags.set(CloneFlags::CLONE_NEWNET, self.config.net == NetMode::None);
        flags.set(CloneFlags::CLONE_NEWIPC, self.config.private_ipc);
        let stdio: [Option<RawFd>; 3] = std::array::from_fn(|i| command.stdio[i].as_ref().map(|fd| fd.as_raw_fd()));
        let kept_fds: Vec<RawFd> = command.kept_fds.iter().map(|fd| fd.as_raw_fd()).collect();
        let init_args = InitArgs {
            steps: &steps,
            program: &program,
            executable: command.executable.as_ref().map(|fd| fd.as_raw_fd()),
            argv: &argv,
            envp: &envp,
            cwd: cwd.as_deref(),
            stdio,
            kept_fds: &kept_fds,
            take_terminal: command.take_terminal,
            no_new_privs: !self.config.allow_new_privileges,
            function: command.function,
            rlimits: &rlimits,
            go_read: go_read.as_raw_fd(),
            go_write: go_write.as_raw_fd(),
            // In a user namespace the mounts need the id maps the launcher writes first.
            steps_before_go: !rootless,
            report: report_write.as_raw_fd(),
            launcher: launcher.as_ref().map(|fd| fd.as_fd()),
            started: started_write.as_ref().map(|fd| fd.as_raw_fd()),
            join_cgroups: &join_cgroups,
        };
        let started = Instant::now();
        // SAFETY: the child side runs only `init::run`, which keeps to async-signal-safe calls
        // on data prepared above, and ends in exec or _exit. The one exception, a function
        // command (`Command::for_function`), is only created by fork servers (the runner's and
        // the stock harness's), which are single-threaded, so their copies may allocate.
        let cloned = match &stack {
            // SAFETY: as above; and `init_args` with all it refers to stays unchanged until the
            // init says it has started the command (below), the stack outlives the init (it
            // goes into `Running`, which reaps the init before dropping it), and this thread
            // allocates nothing between "go" and that sign, so that a test body forked from the
            // init copies a consistent heap.
            Some(stack) => unsafe { sys::clone_sharing_memory(flags, stack, crate::init::run, &init_args) }
                .map(|(pid, pidfd)| Cloned::Parent { pid, pidfd, placed_in_cgroup: false }),
            // SAFETY: as above; the child gets a copy of this process and runs only `init::run`.
            None => unsafe { sys::clone_process(flags, cgroup.as_ref().and_then(|c| c.clone_target())) },
        };
        let (pid, pidfd, placed) = match cloned {
            Ok(Cloned::Child) => crate::init::run(&init_args),
            Ok(Cloned::Parent { pid, pidfd, placed_in_cgroup }) => (pid, pidfd, placed_in_cgroup),
            Err(source) => return Err(Error::Namespaces { flags: sys::clone_flag_names(flags), source }),
        };
        // `go_read` stays open here until "go" is written: an init that failed a set-up step and
        // exited must not turn that write into a SIGPIPE.
        drop((report_write, bind_sources, launcher, started_write));
        let mut running = Running {
            pid,
            pidfd,
            cgroup,
            cgroup_parent: cgroup_parent.clone(),
            report: report_read,
            started,
            timeout: self.config.timeout,
            steps: std::sync::Arc::clone(&steps),
            program: command.program.to_string_lossy().into_owned(),
            limits: self.config.limits.clone(),
            enforcement,
            waited: false,
            _init_stack: stack,
            _spawning_thread: std::marker::PhantomData,
        };
        // From here on, an error drops `running`: it kills the init (still waiting for "go")
        // and removes the cgroup.
        if rootless {
            write_id_maps(pid)?;
        }
        if let Some(cgroup) = running.cgroup.as_mut() {
            let made = cgroup.finish_creation().map_err(cgroup_error);
            let placed = made.and_then(|()| match placed || !joins.is_empty() {
                true => Ok(()),
                false => cgroup.add_process(pid).map_err(Error::from),
            });
            if let Err(err) = placed {
                // An init that already failed a set-up step is gone: that failure is the news.
                return Err(running.setup_failure().unwrap_or(err));
            }
        }
        nix::unistd::write(&go_write, &[1]).map_err(io_error("starting the sandbox's init"))?;
        if let Some(started) = started_read {
            // One byte when the command has started, end of file when the init died first.
            let mut byte = [0u8; 1];
            while nix::unistd::read(started.as_raw_fd(), &mut byte) == Err(Errno::EINTR) {}
        }
        // From here on the init reads nothing of `init_args`. (On an early return above,
        // `running`, declared after them, is dropped first: it kills and reaps the init.)
        drop(go_read);
        if let Some(cgroup) = &running.cgroup {
            cgroup.remove_stale_runs();
        }
        Ok(running)
    }
}

/// The stack of an init that shares the launcher's memory: a test body forked from it runs on
/// (a copy of) it, so it is as large as a main thread's usual 8 MiB (reserved lazily).
const INIT_STACK_BYTES: usize = 8 << 20;

/// Maps the launcher's user and group to root inside the sandbox's user namespace (the one
/// mapping an unprivileged process may write).
fn write_id_maps(pid: Pid) -> Result<(), Error> {
    let (uid, gid) = (nix::unistd::getuid(), nix::unistd::getgid());
    for (file, text) in [("setgroups", "deny".to_string()), ("uid_map", format!("0 {uid} 1")), ("gid_map", format!("0 {gid} 1"))] {
        let path = PathBuf::from(format!("/proc/{pid}/{file}"));
        std::fs::write(&path, text).map_err(|source| Error::UserNamespace { path, source })?;
    }
    Ok(())
}

/// How long the init may take to end the sandbox at its timeout before everything is killed at once.
const END_GRACE: Duration = Duration::from_secs(2);

/// A sandbox whose command is running. Dropping it without [`Running::wait`] kills everything in
/// it and removes its cgroup.
pub struct Running {
    pid: Pid,
    pidfd: OwnedFd,
    /// `None` in rootless mode without a delegated cgroup.
    cgroup: Option<Box<dyn RunCgroup>>,
    /// Where the cgroup was made (for the pool of reused cgroups).
    cgroup_parent: Option<PathBuf>,
    report: OwnedFd,
    started: Instant,
    timeout: Option<Duration>,
    steps: std::sync::Arc<[Step]>,
    program: String,
    limits: crate::config::Limits,
    enforcement: Enforcements,
    waited: bool,
    /// The stack of an init that shares our memory; dropped after the init was reaped.
    _init_stack: Option<sys::ChildStack>,
    /// Not `Send`: the init is tied to the spawning thread's life (`PR_SET_PDEATHSIG`), so the
    /// run must be waited for there.
    _spawning_thread: std::marker::PhantomData<*const ()>,
}

impl Running {
    /// PID of the sandbox's init, in the launcher's PID namespace.
    pub fn init_pid(&self) -> Pid {
        self.pid
    }

    /// The run's cgroup directories.
    pub fn cgroup_paths(&self) -> Vec<PathBuf> {
        self.cgroup.as_ref().map(|c| c.paths()).unwrap_or_default()
    }

    /// Sends `signal` to the sandbox's init, which forwards it to the command.
    pub fn signal(&self, signal: Signal) -> Result<(), Error> {
        sys::pidfd_send_signal(self.pidfd.as_fd(), signal).map_err(io_error("signalling the sandbox"))
    }

    /// Makes the launcher's process group the terminal's foreground again, after a command
    /// started with [`Command::foreground_terminal`] ended.
    pub fn restore_terminal() {
        let _ = sys::restore_terminal_foreground(0);
    }

    /// Kills every process of the sandbox at once.
    pub fn kill(&self) {
        if let Some(cgroup) = &self.cgroup {
            cgroup.kill_all();
        }
        let _ = sys::pidfd_send_signal(self.pidfd.as_fd(), Signal::SIGKILL);
    }

    /// Ends the sandbox at its timeout: asks the init to kill and reap everything (so that all
    /// of its CPU time is accounted), and kills it all at once if that has not happened within
    /// [`END_GRACE`] (a process stuck in the kernel, a stopped init).
    fn end(&self) {
        let asked = sys::pidfd_send_signal(self.pidfd.as_fd(), crate::init::END_SIGNAL).is_ok();
        if !(asked && matches!(sys::poll_either(self.pidfd.as_fd(), None, Some(END_GRACE)), Ok((true, _)))) {
            self.kill();
        }
    }

    /// Waits for the command to end (or the timeout to fire), tears the sandbox down and reports.
    pub fn wait(self) -> Result<Outcome, Error> {
        self.wait_inner(Watch::Nothing)
    }

    /// Like [`wait`](Running::wait), and meanwhile passes `signals` sent to this process on to
    /// the command (this thread must have them blocked). Those a terminal generated are not
    /// passed: the terminal sent them to the command's process group already.
    pub fn wait_forwarding(self, signals: &SigSet) -> Result<Outcome, Error> {
        let signalfd = SignalFd::with_flags(signals, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(io_error("creating a signalfd"))?;
        self.wait_inner(Watch::Signals(&signalfd))
    }

    /// Like [`wait`](Running::wait), but ends the sandbox as soon as `client` (the read end of
    /// a pipe whose writer sends nothing while this runs) reads as ended: a fork server's test
    /// must not outlive the test process that asked for it.
    pub(crate) fn wait_unless_hung_up(self, client: BorrowedFd<'_>) -> Result<Outcome, Error> {
        self.wait_inner(Watch::HangUp(client))
    }

    fn wait_inner(mut self, watch: Watch<'_>) -> Result<Outcome, Error> {
        let deadline = self.timeout.map(|t| self.started + t);
        let mut timed_out = false;
        let watched = match &watch {
            Watch::Nothing => None,
            Watch::Signals(fd) => Some(fd.as_fd()),
            Watch::HangUp(fd) => Some(*fd),
        };
        loop {
            let remaining = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match sys::poll_either(self.pidfd.as_fd(), watched, remaining) {
                Ok((true, _)) => break,
                Ok((false, true)) => match &watch {
                    Watch::Signals(signals) => {
                        while let Ok(Some(info)) = signals.read_signal() {
                            let from_terminal = info.ssi_code == libc::SI_KERNEL;
                            if let (false, Ok(signal)) = (from_terminal, Signal::try_from(info.ssi_signo as i32)) {
                                let _ = self.signal(signal);
                            }
                        }
                    }
                    Watch::HangUp(_) => {
                        self.kill();
                        break;
                    }
                    Watch::Nothing => {}
                },
                Ok(_) if deadline.is_some_and(|d| Instant::now() >= d) => {
                    timed_out = true;
                    self.end();
                    break;
                }
                Ok(_) | Err(Errno::EINTR) => continue,
                Err(errno) => return Err(io_error("waiting for the sandbox")(errno)),
            }
        }
        // Reaping the init returns only after every process of its PID namespace is gone.
        let (init_status, usage) = sys::wait_pidfd(self.pidfd.as_fd()).map_err(io_error("waiting for the sandbox"))?;
        self.waited = true;
        let wall = self.started.elapsed();
        let reports = self.read_reports();
        let cgroup_version = self.cgroup.as_ref().map(|c| c.version());
        let stats = match self.cgroup.take() {
            Some(mut cgroup) => {
                let stats = cgroup.stats();
                crate::cgroup::pool::release(self.cgroup_parent.as_deref(), cgroup)?;
                let mut stats = stats?;
                stats.cpu_usec = stats.cpu_usec.or(Some(usage.cpu_usec));
                stats
            }
            // Without a cgroup, what the kernel accounted to the init and the processes it reaped.
            None => Stats { peak_memory_bytes: Some(usage.max_rss_bytes), cpu_usec: Some(usage.cpu_usec), ..Stats::default() },
        };

        let mut exited = None;
        for report in reports {
            if let Report::Exited { wait_status } = report {
                exited = Some(wait_status);
            } else if let Some(err) = self.report_error(report, timed_out) {
                return Err(err);
            }
        }
        // Without a report the init itself was killed (timeout, OOM killer, a SIGKILL from outside):
        // its own status is the best there is.
        let status = ExitStatus::from_wait_status(exited.unwrap_or(init_status));
        Ok(Outcome {
            status,
            timed_out,
            timeout: self.timeout,
            limits: self.limits.clone(),
            stats,
            wall,
            cgroup_version,
            enforcement: self.enforcement.clone(),
        })
    }

    /// The error a failure report of the init stands for (`None` for an exec failure after the
    /// timeout killed the sandbox, and for the command's exit).
    fn report_error(&self, report: Report, timed_out: bool) -> Option<Error> {
        let setup = |step: String, errno: i32| Some(Error::Setup { step, source: Errno::from_raw(errno) });
        match report {
            Report::StepFailed { index, errno } => setup(
                self.steps.get(index as usize).map(Step::describe).unwrap_or_else(|| format!("set-up step {index}")),
                errno,
            ),
            Report::RlimitsFailed { errno } => setup("setting the fallback rlimits (RLIMIT_NPROC, RLIMIT_AS)".into(), errno),
            Report::JoinFailed { index, errno } => {
                let dir = self.cgroup.as_ref().and_then(|c| c.paths().get(index as usize).cloned());
                let tasks = dir.map_or_else(|| format!("cgroup {index}"), |dir| dir.join("tasks").display().to_string());
                setup(format!("joining the run's cgroup (writing 0 to {tasks})"), errno)
            }
            Report::StdioFailed { errno } => setup("redirecting the command's stdio".into(), errno),
            Report::ChdirFailed { errno } => setup("changing to the command's working directory".into(), errno),
            Report::ForkFailed { errno } => setup("starting the command (fork)".into(), errno),
            Report::NoNewPrivsFailed { errno } => setup("setting no_new_privs (prctl PR_SET_NO_NEW_PRIVS)".into(), errno),
            Report::ExecFailed { errno } if !timed_out => {
                Some(Error::Exec { program: self.program.clone(), source: Errno::from_raw(errno) })
            }
            Report::ExecFailed { .. } | Report::Exited { .. } => None,
        }
    }

    /// A set-up failure the init reported before it exited, if it did.
    fn setup_failure(&self) -> Option<Error> {
        self.read_reports().into_iter().find_map(|report| self.report_error(report, false))
    }

    fn read_reports(&self) -> Vec<Report> {
        let mut reports = Vec::new();
        let mut buffer = [0u8; Report::SIZE];
        while let Ok(Report::SIZE) = nix::unistd::read(self.report.as_raw_fd(), &mut buffer) {
            reports.extend(Report::decode(&buffer));
        }
        reports
    }
}

/// What [`Running::wait_inner`] watches besides the sandbox.
enum Watch<'a> {
    Nothing,
    /// Signals to pass on to the command.
    Signals(&'a SignalFd),
    /// A client whose end means the run is no longer wanted.
    HangUp(BorrowedFd<'a>),
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.waited {
            self.kill();
            let _ = sys::wait_pidfd(self.pidfd.as_fd());
        }
        // The cgroup's own Drop removes it.
    }
}
